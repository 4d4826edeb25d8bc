/* Socket.IO v5 packet codec and binary reassembly. See sio.h. */
#include "upstream/sio.h"

#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"

static const struct sio_limits default_limits = SIO_LIMITS_DEFAULT;
static const char main_nsp[] = "/";

static int fail(const char **why, const char *reason, int code)
{
    if (why)
        *why = reason;
    return code;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_binary_type(int type)
{
    return type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK;
}

/* Ack ids are only meaningful on packets that can be (or are) answered. */
static bool takes_ack_id(int type)
{
    return type == SIO_EVENT || type == SIO_ACK || is_binary_type(type);
}

static bool needs_ack_id(int type)
{
    return type == SIO_ACK || type == SIO_BINARY_ACK;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The outer shape of the JSON data: enough to refuse a truncated packet or
 * a payload of the wrong kind without parsing it (the session parses it
 * exactly once, later). JSON.stringify never emits surrounding blanks. */
static int check_data(int type, const char *d, size_t n, const char **why)
{
    char first = n ? d[0] : 0, last = n ? d[n - 1] : 0;
    bool object = n >= 2 && first == '{' && last == '}';
    bool array = n >= 2 && first == '[' && last == ']';
    bool string = n >= 2 && first == '"' && last == '"';

    switch (type) {
    case SIO_CONNECT:
        if (n && !object)
            return fail(why, "CONNECT data is not a JSON object", PROTO_E_BAD_FRAME);
        return 0;
    case SIO_DISCONNECT:
        if (n)
            return fail(why, "DISCONNECT carries data", PROTO_E_BAD_FRAME);
        return 0;
    case SIO_CONNECT_ERROR:
        if (n && !object && !string)
            return fail(why, "CONNECT_ERROR data is not a JSON object or string",
                        PROTO_E_BAD_FRAME);
        return 0;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        if (!n)
            return fail(why, "event without data", PROTO_E_BAD_FRAME);
        if (!array)
            return fail(why, "event data is not a JSON array", PROTO_E_BAD_FRAME);
        for (size_t i = 1; i + 1 < n; i++)
            if (!is_blank(d[i]))
                return 0;
        return fail(why, "event data is an empty array (no event name)", PROTO_E_BAD_FRAME);
    default: /* SIO_ACK, SIO_BINARY_ACK */
        if (!n)
            return fail(why, "ack without data", PROTO_E_BAD_FRAME);
        if (!array)
            return fail(why, "ack data is not a JSON array", PROTO_E_BAD_FRAME);
        return 0;
    }
}

int sio_decode(const struct sio_limits *lim, const void *msg, size_t len, struct sio_packet *out,
               const char **why)
{
    const char *s = msg;
    size_t i = 0;
    if (!lim)
        lim = &default_limits;

    if (len == 0)
        return fail(why, "empty Socket.IO packet", PROTO_E_BAD_FRAME);
    if (s[0] < '0' || s[0] > '6')
        return fail(why, "unknown Socket.IO packet type", PROTO_E_BAD_FRAME);
    int type = s[0] - '0';
    i = 1;

    uint32_t attachments = 0;
    if (is_binary_type(type)) {
        size_t start = i;
        uint64_t n = 0;
        while (i < len && is_digit(s[i])) {
            n = n * 10 + (uint64_t)(s[i] - '0');
            /* Checked per digit: the running value never overflows. */
            if (n > lim->max_attachments)
                return fail(why, "too many attachments", PROTO_E_LIMIT_EXCEEDED);
            i++;
        }
        if (i == start)
            return fail(why, "binary packet without an attachment count", PROTO_E_BAD_FRAME);
        if (i == len || s[i] != '-')
            return fail(why, "attachment count not followed by '-'", PROTO_E_BAD_FRAME);
        if (n == 0)
            return fail(why, "binary packet with zero attachments", PROTO_E_BAD_FRAME);
        attachments = (uint32_t)n;
        i++;
    }

    const char *nsp = main_nsp;
    size_t nsp_len = 1;
    if (i < len && s[i] == '/') {
        size_t start = i;
        while (i < len && s[i] != ',') {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f)
                return fail(why, "control character in namespace", PROTO_E_BAD_FRAME);
            if (i - start >= lim->max_nsp_len)
                return fail(why, "namespace too long", PROTO_E_LIMIT_EXCEEDED);
            i++;
        }
        nsp = s + start;
        nsp_len = i - start;
        /* The ',' may be missing only when the namespace ends the packet
         * (socket.io-parser reads "1/admin" as "1/admin,"). */
        if (i < len)
            i++;
    }

    bool has_id = false;
    uint64_t id = 0;
    if (i < len && is_digit(s[i])) {
        if (!takes_ack_id(type))
            return fail(why, "ack id on a packet type that takes none", PROTO_E_BAD_FRAME);
        while (i < len && is_digit(s[i])) {
            uint64_t d = (uint64_t)(s[i] - '0');
            if (id > (UINT64_MAX - d) / 10)
                return fail(why, "ack id overflows 64 bits", PROTO_E_BAD_FRAME);
            id = id * 10 + d;
            i++;
        }
        has_id = true;
    } else if (needs_ack_id(type)) {
        return fail(why, "ack without an ack id", PROTO_E_BAD_FRAME);
    }

    int r = check_data(type, s + i, len - i, why);
    if (r < 0)
        return r;

    out->type = (enum sio_packet_type)type;
    out->attachments = attachments;
    out->nsp = nsp;
    out->nsp_len = nsp_len;
    out->has_ack_id = has_id;
    out->ack_id = id;
    out->data = i < len ? s + i : NULL;
    out->data_len = len - i;
    return 0;
}

bool sio_nsp_equals(const struct sio_packet *p, const char *nsp)
{
    if (!nsp || !*nsp)
        nsp = main_nsp;
    size_t n = strlen(nsp);
    return p->nsp_len == n && memcmp(p->nsp, nsp, n) == 0;
}

const char *sio_type_name(int type)
{
    static const char *const names[] = {"CONNECT",       "DISCONNECT",   "EVENT",     "ACK",
                                        "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"};
    if (type < SIO_CONNECT || type > SIO_BINARY_ACK)
        return "UNKNOWN";
    return names[type];
}

/* Decimal digits of v, written backwards into the end of buf[20]. */
static size_t put_u64(char buf[20], uint64_t v)
{
    size_t n = 0;
    do {
        buf[19 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return n;
}

int sio_encode_header(struct proto_buf *b, enum sio_packet_type type, const char *nsp,
                      const uint64_t *ack_id, uint32_t attachments)
{
    if ((int)type < SIO_CONNECT || (int)type > SIO_BINARY_ACK)
        return PROTO_E_BAD_REQUEST;
    if (is_binary_type(type) ? attachments == 0 : attachments != 0)
        return PROTO_E_BAD_REQUEST;
    if (ack_id ? !takes_ack_id(type) : needs_ack_id(type))
        return PROTO_E_BAD_REQUEST;
    size_t nsp_len = nsp ? strlen(nsp) : 0;
    if (nsp_len == 1 && nsp[0] == '/')
        nsp_len = 0; /* the main namespace is implicit */
    if (nsp_len) {
        if (nsp[0] != '/')
            return PROTO_E_BAD_REQUEST;
        for (size_t i = 0; i < nsp_len; i++) {
            unsigned char c = (unsigned char)nsp[i];
            if (c < 0x20 || c == 0x7f || c == ',')
                return PROTO_E_BAD_REQUEST;
        }
    }

    /* Build the small parts on the stack, then one reserve: on failure the
     * buffer is untouched. */
    char att[20], id[20];
    size_t att_n = is_binary_type(type) ? put_u64(att, attachments) : 0;
    size_t id_n = ack_id ? put_u64(id, *ack_id) : 0;
    size_t total = 1 + (att_n ? att_n + 1 : 0) + (nsp_len ? nsp_len + 1 : 0) + id_n;
    if (total > (size_t)INT32_MAX)
        return PROTO_E_BAD_REQUEST;
    if (proto_buf_reserve(b, total) < 0)
        return PROTO_E_NOMEM;

    uint8_t *p = b->data + b->len;
    *p++ = (uint8_t)('0' + type);
    if (att_n) {
        memcpy(p, att + 20 - att_n, att_n);
        p += att_n;
        *p++ = '-';
    }
    if (nsp_len) {
        memcpy(p, nsp, nsp_len);
        p += nsp_len;
        *p++ = ',';
    }
    if (id_n)
        memcpy(p, id + 20 - id_n, id_n);
    b->len += total;
    return (int)total;
}

/* ---- Binary reassembly ------------------------------------------------ */

void sio_assembler_init(struct sio_assembler *a, const struct sio_limits *lim)
{
    memset(a, 0, sizeof *a);
    a->limits = lim ? *lim : default_limits;
    proto_buf_init(&a->header);
    proto_buf_init(&a->bytes);
}

void sio_assembler_free(struct sio_assembler *a)
{
    struct sio_limits lim = a->limits;
    proto_buf_free(&a->header);
    proto_buf_free(&a->bytes);
    free(a->spans);
    sio_assembler_init(a, &lim);
}

void sio_assembler_reset(struct sio_assembler *a)
{
    a->collecting = false;
    a->received = 0;
    proto_buf_reset(&a->header);
    proto_buf_reset(&a->bytes);
}

bool sio_assembler_pending(const struct sio_assembler *a)
{
    return a->collecting;
}

static int asm_fail(struct sio_assembler *a, const char *reason, int code)
{
    sio_assembler_reset(a);
    a->error = reason;
    return code;
}

/* A span into `from` (the caller's message) now points to the same place
 * in `to`; NULL and the static "/" are the only spans elsewhere. */
static const char *rebase(const char *p, const char *from, const uint8_t *to)
{
    if (!p || p == main_nsp)
        return p;
    return (const char *)to + (p - from);
}

static int hold_header(struct sio_assembler *a, const struct sio_packet *pkt, const char *msg,
                       size_t len)
{
    if (pkt->attachments > a->spans_cap) {
        /* reallocarray: the count is bounded by the limits, but a caller may
         * set max_attachments to anything. */
        struct sio_bytes *s = reallocarray(a->spans, pkt->attachments, sizeof *s);
        if (!s)
            return asm_fail(a, "out of memory", PROTO_E_NOMEM);
        a->spans = s;
        a->spans_cap = pkt->attachments;
    }
    proto_buf_reset(&a->header);
    proto_buf_reset(&a->bytes);
    /* len >= 1: a binary header is at least "51-[...]". */
    if (proto_buf_append(&a->header, msg, len) < 0)
        return asm_fail(a, "out of memory", PROTO_E_NOMEM);
    a->pending = *pkt;
    a->pending.nsp = rebase(pkt->nsp, msg, a->header.data);
    a->pending.data = rebase(pkt->data, msg, a->header.data);
    a->received = 0;
    a->collecting = true;
    return SIO_ASM_MORE;
}

static int take_attachment(struct sio_assembler *a, const uint8_t *msg, size_t len,
                           struct sio_message *out)
{
    size_t max = a->limits.max_attachment_bytes;
    /* The first test only matters when `limits` was lowered mid-packet. */
    if (a->bytes.len > max || len > max - a->bytes.len)
        return asm_fail(a, "attachments exceed max_attachment_bytes", PROTO_E_LIMIT_EXCEEDED);
    if (len && proto_buf_append(&a->bytes, msg, len) < 0)
        return asm_fail(a, "out of memory", PROTO_E_NOMEM);
    /* Only the length for now: `bytes` may still move as it grows. */
    a->spans[a->received].data = NULL;
    a->spans[a->received].len = len;
    if (++a->received < a->pending.attachments)
        return SIO_ASM_MORE;

    size_t off = 0;
    for (uint32_t i = 0; i < a->received; i++) {
        /* An empty attachment may sit at the very end of an empty buffer
         * (data NULL): point it at a valid, zero-length place instead. */
        a->spans[i].data = a->bytes.data ? a->bytes.data + off : (const uint8_t *)"";
        off += a->spans[i].len;
    }
    a->collecting = false;
    out->packet = a->pending;
    out->attachments = a->spans;
    return SIO_ASM_READY;
}

int sio_assembler_feed(struct sio_assembler *a, const void *msg, size_t len, bool binary,
                       struct sio_message *out)
{
    a->error = NULL;
    if (binary) {
        if (!a->collecting)
            return asm_fail(a, "binary message when no attachment is expected", PROTO_E_BAD_FRAME);
        return take_attachment(a, msg, len, out);
    }
    if (a->collecting)
        return asm_fail(a, "text message while attachments are pending", PROTO_E_BAD_FRAME);

    struct sio_packet pkt;
    const char *why = NULL;
    int r = sio_decode(&a->limits, msg, len, &pkt, &why);
    if (r < 0)
        return asm_fail(a, why, r);
    if (pkt.attachments)
        return hold_header(a, &pkt, msg, len);
    out->packet = pkt;
    out->attachments = NULL;
    return SIO_ASM_READY;
}
