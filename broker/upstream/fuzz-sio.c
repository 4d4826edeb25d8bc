/* libFuzzer target: random WebSocket messages through the Engine.IO
 * decoder, the Socket.IO decoder and the binary assembler, as the session
 * will drive them.
 *
 * Input: messages separated by '\n'. A message starting with 'B' is a
 * binary WebSocket message (the rest of it); anything else is a text
 * message, Engine.IO type digit included ("42/control,[...]"). Seeds in
 * testdata/corpus-sio are real captured conversations in this form.
 *
 * Beyond "no crash, no leak, no UB" it checks two properties and traps when
 * they fail: every packet the decoder accepts re-encodes (header encoder +
 * the data span) to a packet that decodes to the same fields, and every
 * packet the assembler yields is consistent with its limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"
#include "upstream/eio.h"
#include "upstream/sio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Small limits so the fuzzer reaches them. */
static const struct sio_limits fuzz_limits = {
    .max_attachments = 4, .max_nsp_len = 32, .max_attachment_bytes = 1024};

static void roundtrip(const struct sio_packet *p, struct proto_buf *enc)
{
    char nsp[64];
    CHECK(p->nsp_len > 0 && p->nsp_len < sizeof nsp);
    memcpy(nsp, p->nsp, p->nsp_len);
    nsp[p->nsp_len] = '\0';

    proto_buf_reset(enc);
    int r = sio_encode_header(enc, p->type, nsp, p->has_ack_id ? &p->ack_id : NULL, p->attachments);
    CHECK(r > 0 && (size_t)r == enc->len);
    if (p->data_len)
        CHECK(proto_buf_append(enc, p->data, p->data_len) == 0);

    struct sio_packet q;
    CHECK(sio_decode(&fuzz_limits, enc->data, enc->len, &q, NULL) == 0);
    CHECK(q.type == p->type);
    CHECK(q.attachments == p->attachments);
    CHECK(q.nsp_len == p->nsp_len && memcmp(q.nsp, p->nsp, p->nsp_len) == 0);
    CHECK(q.has_ack_id == p->has_ack_id && q.ack_id == p->ack_id);
    CHECK(q.data_len == p->data_len);
    CHECK(!q.data_len || memcmp(q.data, p->data, q.data_len) == 0);
}

static void check_message(const struct sio_message *m)
{
    const struct sio_packet *p = &m->packet;
    CHECK(p->attachments <= fuzz_limits.max_attachments);
    CHECK(p->nsp_len >= 1 && p->nsp[0] == '/');
    if (!p->attachments) {
        CHECK(m->attachments == NULL);
        return;
    }
    size_t total = 0;
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < p->attachments; i++) {
        CHECK(m->attachments[i].data != NULL);
        total += m->attachments[i].len;
        /* Touch every byte: ASan tells when a span is stale. */
        for (size_t j = 0; j < m->attachments[i].len; j++)
            sink ^= m->attachments[i].data[j];
    }
    (void)sink;
    CHECK(total <= fuzz_limits.max_attachment_bytes);
    /* The held header was copied: its spans must be readable too. */
    for (size_t j = 0; j < p->data_len; j++)
        sink ^= (uint8_t)p->data[j];
}

static void one_message(struct sio_assembler *a, struct proto_buf *enc, const uint8_t *msg,
                        size_t len)
{
    bool binary = len && msg[0] == 'B';
    if (binary) {
        msg++;
        len--;
    }
    /* Hand the codecs an exact-size heap copy, so ASan sees any read past
     * the message (the fuzzer's input continues after it). */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    if (len)
        memcpy(copy, msg, len);

    struct eio_packet pkt;
    if (eio_decode(copy, len, binary, &pkt, NULL) < 0)
        goto out;

    struct sio_message m;
    switch (pkt.type) {
    case EIO_OPEN: {
        struct eio_handshake hs;
        if (eio_parse_handshake(pkt.data, pkt.len, &hs, NULL) == 0) {
            CHECK(hs.sid_len > 0 && hs.sid_len <= EIO_SID_MAX);
            CHECK(strlen(hs.sid) == hs.sid_len);
            CHECK(hs.ping_interval_ms > 0 && hs.ping_timeout_ms > 0 && hs.max_payload > 0);
        }
        break;
    }
    case EIO_MESSAGE: {
        if (!pkt.binary) {
            struct sio_packet sp;
            if (sio_decode(&fuzz_limits, pkt.data, pkt.len, &sp, NULL) == 0)
                roundtrip(&sp, enc);
        }
        int r = sio_assembler_feed(a, pkt.data, pkt.len, pkt.binary, &m);
        if (r == SIO_ASM_READY)
            check_message(&m);
        else if (r < 0)
            CHECK(a->error != NULL && !sio_assembler_pending(a));
        break;
    }
    case EIO_NOOP: {
        /* Never sent over a WebSocket: borrow it to fuzz the path builder. */
        char path[128];
        size_t n = pkt.len < sizeof path - 1 ? pkt.len : sizeof path - 1;
        memcpy(path, pkt.data, n);
        path[n] = '\0';
        proto_buf_reset(enc);
        int r = eio_handshake_path(enc, path);
        if (r > 0)
            CHECK(enc->data[0] == '/' && enc->data[enc->len] == '\0');
        break;
    }
    default: {
        /* Encode what we decoded: same packet. */
        proto_buf_reset(enc);
        CHECK(eio_encode_text(enc, pkt.type, pkt.data, pkt.len) == (int)(pkt.len + 1));
        struct eio_packet again;
        CHECK(eio_decode(enc->data, enc->len, false, &again, NULL) == 0);
        CHECK(again.type == pkt.type && again.len == pkt.len);
        break;
    }
    }
out:
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sio_assembler a;
    sio_assembler_init(&a, &fuzz_limits);
    struct proto_buf enc = PROTO_BUF_INIT;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n') {
            one_message(&a, &enc, data + start, i - start);
            start = i + 1;
        }
    }
    sio_assembler_free(&a);
    proto_buf_free(&enc);
    return 0;
}
