/* Fuzz the frame reader and the typed codec.
 *
 * The input is a byte stream. It is fed to one reader in a single piece
 * and to another in pseudo-random splits (taking turns: feed(), the
 * zero-copy space()/commit(), and lending the bytes when nothing is
 * buffered); both must produce the same frames, the same
 * errors and the same fatal end. Every frame must pass the frame check
 * again, and every frame that decodes must re-encode, read back through a
 * fresh reader, decode to the same message, and re-encode to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "proto/msg.h"
#include "proto/reader.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool span_eq(struct proto_span a, struct proto_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void check_same_msg(const struct proto_msg *a, const struct proto_msg *b)
{
    CHECK(a->op == b->op && a->fields == b->fields);
    if (a->fields & PROTO_F_ID)
        CHECK(a->id == b->id);
    if (a->fields & PROTO_F_MIN_VERSION)
        CHECK(a->min_version == b->min_version);
    if (a->fields & PROTO_F_MAX_VERSION)
        CHECK(a->max_version == b->max_version);
    if (a->fields & PROTO_F_VERSION)
        CHECK(a->version == b->version);
    if (a->fields & PROTO_F_TIMEOUT_MS)
        CHECK(a->timeout_ms == b->timeout_ms);
    if (a->fields & PROTO_F_MAX_FRAME)
        CHECK(a->max_frame == b->max_frame);
    if (a->fields & PROTO_F_PEER)
        CHECK(a->peer == b->peer);
    if (a->fields & PROTO_F_TIME_US)
        CHECK(a->time_us == b->time_us);
    if (a->fields & PROTO_F_OK)
        CHECK(a->ok == b->ok);
    if (a->fields & PROTO_F_COMMANDS)
        CHECK(a->commands_count == b->commands_count && span_eq(a->commands, b->commands));
    CHECK(span_eq(a->name, b->name) && span_eq(a->command, b->command));
    CHECK(span_eq(a->code, b->code) && span_eq(a->message, b->message));
    CHECK(span_eq(a->server_code, b->server_code) && span_eq(a->type, b->type));
    CHECK(span_eq(a->match, b->match) && span_eq(a->event, b->event));
    CHECK(span_eq(a->reason, b->reason) && span_eq(a->state, b->state));
    CHECK(span_eq(a->dir, b->dir));
    CHECK(span_eq(a->payload, b->payload));
    CHECK(span_eq(a->data, b->data));
    CHECK(span_eq(a->frame, b->frame));
}

static void check_frame(const struct proto_span *f, const struct proto_limits *l)
{
    CHECK(proto_mp_validate_frame(f->ptr, f->len, l, NULL, NULL) == 0);
    struct proto_msg m;
    const char *why = NULL;
    int rc = proto_msg_decode(f, &m, &why);
    if (rc < 0) {
        CHECK(why != NULL);
        CHECK(rc == PROTO_E_UNKNOWN_OP || rc == PROTO_E_BAD_REQUEST);
        return;
    }
    CHECK(why == NULL);
    proto_msg_check(&m, &why);

    /* the commands iterator agrees with the count */
    struct proto_str_iter it;
    struct proto_span s;
    uint32_t n = 0;
    proto_msg_commands(&m, &it);
    while (proto_str_iter_next(&it, &s))
        n++;
    CHECK(n == m.commands_count);

    /* Re-encoding never grows a frame (unknown keys dropped, minimal
     * headers), so it fits the same max_frame. */
    struct proto_buf out = PROTO_BUF_INIT;
    CHECK(proto_msg_encode(&out, &m, l->max_frame) == 0);
    CHECK(out.len - 4 <= f->len);
    struct proto_reader *r = proto_reader_new(l);
    CHECK(r);
    CHECK(proto_reader_feed(r, out.data, out.len) == 0);
    struct proto_span g;
    CHECK(proto_reader_next(r, &g) == 1);
    CHECK(proto_reader_next(r, &g) == 0);
    struct proto_msg m2;
    CHECK(proto_reader_pending(r) == 0);
    g.ptr = out.data + 4;
    g.len = (uint32_t)(out.len - 4);
    CHECK(proto_msg_decode(&g, &m2, &why) == 0);
    check_same_msg(&m, &m2);
    struct proto_buf out2 = PROTO_BUF_INIT;
    CHECK(proto_msg_encode(&out2, &m2, l->max_frame) == 0);
    CHECK(out2.len == out.len && memcmp(out2.data, out.data, out.len) == 0);
    /* one byte less room is too little */
    size_t before = out2.len;
    CHECK(proto_msg_encode(&out2, &m2, (uint32_t)(out.len - 5)) == PROTO_E_FRAME_TOO_LARGE);
    CHECK(out2.len == before);
    proto_buf_free(&out2);
    proto_buf_free(&out);
    proto_reader_free(r);

    /* the frame as JSON, for coverage of the transcoder on real frames */
    struct proto_buf js = PROTO_BUF_INIT;
    struct proto_json_error err;
    proto_msgpack_to_json(f->ptr, f->len, &js, NULL, &err);
    proto_buf_free(&js);
}

struct event {
    int rc;
    uint32_t len;
    uint32_t hash;
};

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Drains r, recording what came out. Returns the new count. */
static size_t drain(struct proto_reader *r, struct event *ev, size_t n, size_t max,
                    const struct proto_limits *l, bool check)
{
    struct proto_span f;
    int rc;
    while (n < max && (rc = proto_reader_next(r, &f)) != 0) {
        ev[n].rc = rc;
        ev[n].len = rc == 1 ? f.len : 0;
        ev[n].hash = rc == 1 ? fnv(f.ptr, f.len) : 0;
        n++;
        if (rc == 1 && check)
            check_frame(&f, l);
        if (rc < 0)
            CHECK(proto_reader_error(r)[0] != 0);
        if (rc < 0 && proto_reader_fatal(r))
            break;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* byte 0 picks the limits, byte 1 seeds the splits */
    struct proto_limits l;
    l.max_frame = 16u << (data[0] & 7);        /* 16 .. 2048 */
    l.max_depth = 1 + ((data[0] >> 3) & 7);    /* 1 .. 8 */
    l.max_elements = 1u << (data[0] >> 6) * 3; /* 1, 8, 64, 512 */
    uint32_t seed = data[1] * 2654435761u + 1;
    data += 2;
    size -= 2;

    enum { MAX_EV = 4096 };
    static struct event a[MAX_EV], b[MAX_EV];
    size_t na = 0, nb = 0;

    struct proto_reader *ra = proto_reader_new(&l);
    CHECK(ra);
    int rc = proto_reader_feed(ra, data, size);
    CHECK(rc == 0);
    na = drain(ra, a, 0, MAX_EV, &l, true);
    bool fatal_a = proto_reader_fatal(ra);
    size_t pending_a = proto_reader_pending(ra);

    struct proto_reader *rb = proto_reader_new(&l);
    CHECK(rb);
    size_t pos = 0;
    unsigned mode = 0; /* feed, space/commit, lend (when nothing is buffered) */
    static uint8_t lent[64];
    while (pos < size && !proto_reader_fatal(rb)) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 64;
        if ((seed >> 8) % 8 == 0)
            n = 1;
        if (n > size - pos)
            n = size - pos;
        if (mode == 2 && proto_reader_pending(rb) == 0) {
            /* as a server reading many clients through one buffer does:
             * frames from the caller's bytes, the rest copied at unlend,
             * the bytes overwritten before the next read */
            memcpy(lent, data + pos, n);
            CHECK(proto_reader_lend(rb, lent, n) == 0);
            nb = drain(rb, b, nb, MAX_EV, &l, false);
            CHECK(proto_reader_unlend(rb, (seed >> 4) % 128) == 0);
            memset(lent, 0xc1, sizeof lent);
            /* what is left is less than a frame: nothing more to drain
             * (and a fatal error must not be read twice) */
            CHECK(proto_reader_fatal(rb) || proto_reader_next(rb, &(struct proto_span){0}) == 0);
            mode = 0;
            pos += n;
            continue;
        } else if (mode == 1) {
            void *p;
            size_t room;
            CHECK(proto_reader_space(rb, n, &p, &room) == 0);
            CHECK(room >= n);
            memcpy(p, data + pos, n);
            proto_reader_commit(rb, n);
        } else {
            CHECK(proto_reader_feed(rb, data + pos, n) == 0);
        }
        mode = (mode + 1) % 3;
        pos += n;
        nb = drain(rb, b, nb, MAX_EV, &l, false);
    }
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++)
        CHECK(a[i].rc == b[i].rc && a[i].len == b[i].len && a[i].hash == b[i].hash);
    CHECK(fatal_a == proto_reader_fatal(rb));
    if (!fatal_a && na < MAX_EV)
        CHECK(pending_a == proto_reader_pending(rb) && pos == size);
    if (fatal_a) {
        struct proto_span f;
        CHECK(proto_reader_next(ra, &f) == a[na - 1].rc);
        CHECK(proto_reader_feed(ra, "x", 1) == a[na - 1].rc);
    }
    proto_reader_free(ra);
    proto_reader_free(rb);
    return 0;
}
