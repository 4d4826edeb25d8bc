/* RFC 6455 framing, client side. See wsframe.h for the contract.
 *
 * Why the parser looks at whole frames. A frame is taken only once all of
 * it is in the input; until then the parser consumes nothing and says how
 * many bytes the frame needs. The caller keeps its read buffer and appends
 * to it, so a message that came as one frame (nearly all of them: the
 * socket.io server never fragments) is handed up where it lies, with no
 * copy and no per-byte state machine; the price is a buffer as large as
 * the largest frame, which max_message bounds anyway. The header is
 * re-read when more bytes come, which costs a few comparisons.
 *
 * Masking works on 64-bit words: the key repeated twice, rotated for the
 * offset, XORed eight bytes at a time (the compiler may widen it further).
 */
#include "upstream/wsframe.h"

#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct wsframe_parser {
    size_t max_message;
    bool in_message; /* a fragmented message is under way */
    bool binary;     /* ... and it is binary */
    uint8_t *buf;    /* its payload so far */
    size_t len, cap;
    bool failed; /* sticky error */
    uint16_t fail_code;
    const char *fail_why;
};

struct wsframe_parser *wsframe_parser_new(size_t max_message)
{
    struct wsframe_parser *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->max_message = max_message;
    return p;
}

void wsframe_parser_free(struct wsframe_parser *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p);
}

size_t wsframe_parser_buffered(const struct wsframe_parser *p)
{
    return p->cap;
}

void wsframe_parser_trim(struct wsframe_parser *p)
{
    if (p->in_message)
        return;
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
}

/* ---- UTF-8 ------------------------------------------------------------ */

#define HIGH_BITS UINT64_C(0x8080808080808080)

static inline bool is_cont(uint8_t c)
{
    return (c & 0xc0) == 0x80;
}

bool wsframe_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c;

        /* ASCII a block at a time: JSON text is nearly all ASCII. */
#if defined(__SSE2__)
        while (i + 32 <= len) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 16));

            if (_mm_movemask_epi8(_mm_or_si128(a, b)))
                break;
            i += 32;
        }
#endif
        while (i + 16 <= len) {
            uint64_t a, b;

            memcpy(&a, s + i, 8);
            memcpy(&b, s + i + 8, 8);
            if ((a | b) & HIGH_BITS)
                break;
            i += 16;
        }
        if (i >= len)
            break;
        c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c < 0xc2) {
            return false; /* a continuation byte, or an overlong 2-byte form */
        } else if (c < 0xe0) {
            if (len - i < 2 || !is_cont(s[i + 1]))
                return false;
            i += 2;
        } else if (c < 0xf0) {
            if (len - i < 3 || !is_cont(s[i + 1]) || !is_cont(s[i + 2]))
                return false;
            if (c == 0xe0 && s[i + 1] < 0xa0)
                return false; /* overlong */
            if (c == 0xed && s[i + 1] >= 0xa0)
                return false; /* UTF-16 surrogates */
            i += 3;
        } else if (c < 0xf5) {
            if (len - i < 4 || !is_cont(s[i + 1]) || !is_cont(s[i + 2]) || !is_cont(s[i + 3]))
                return false;
            if (c == 0xf0 && s[i + 1] < 0x90)
                return false; /* overlong */
            if (c == 0xf4 && s[i + 1] >= 0x90)
                return false; /* above U+10FFFF */
            i += 4;
        } else {
            return false;
        }
    }
    return true;
}

/* ---- sending ------------------------------------------------------------ */

size_t wsframe_put_header(uint8_t *out, enum wsframe_opcode opcode, uint64_t len,
                          const uint8_t key[4])
{
    size_t h;

    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
        h = 2;
    } else if (len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        h = 10;
    }
    memcpy(out + h, key, 4);
    return h + 4;
}

void wsframe_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                       size_t offset)
{
    uint8_t k[8];
    uint64_t k64;
    size_t i = 0;

    for (int j = 0; j < 8; j++)
        k[j] = key[(offset + (size_t)j) & 3];
    memcpy(&k64, k, 8);
    for (; i + 32 <= len; i += 32) {
        uint64_t w[4];

        memcpy(w, src + i, 32);
        w[0] ^= k64;
        w[1] ^= k64;
        w[2] ^= k64;
        w[3] ^= k64;
        memcpy(dst + i, w, 32);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w;

        memcpy(&w, src + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    /* i is a multiple of 8, so the key's phase at i is the one at 0. */
    for (; i < len; i++)
        dst[i] = src[i] ^ k[i & 7];
}

void wsframe_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset)
{
    wsframe_mask_copy(data, data, len, key, offset);
}

size_t wsframe_put_close_body(uint8_t *out, uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;

    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (n > WSFRAME_MAX_CONTROL - 2) {
        n = WSFRAME_MAX_CONTROL - 2;
        /* Do not cut a code point in two. */
        while (n > 0 && is_cont((uint8_t)reason[n]))
            n--;
    }
    if (n)
        memcpy(out + 2, reason, n);
    return 2 + n;
}

bool wsframe_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ---- receiving ---------------------------------------------------------- */

static size_t fail(struct wsframe_parser *p, struct wsframe_event *ev, size_t consumed,
                   uint16_t code, const char *why)
{
    p->failed = true;
    p->fail_code = code;
    p->fail_why = why;
    ev->kind = WSFRAME_ERROR;
    ev->code = code;
    ev->error = why;
    return consumed;
}

static bool append(struct wsframe_parser *p, const uint8_t *data, size_t n)
{
    /* +1: room for the 0 byte after a reassembled message. */
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        uint8_t *b;

        while (cap < p->len + n + 1)
            cap *= 2;
        b = realloc(p->buf, cap);
        if (!b)
            return false;
        p->buf = b;
        p->cap = cap;
    }
    if (n)
        memcpy(p->buf + p->len, data, n);
    p->len += n;
    return true;
}

static size_t close_event(struct wsframe_parser *p, struct wsframe_event *ev, size_t pos,
                          const uint8_t *body, size_t n)
{
    if (n == 1)
        return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL, "Close frame with a 1-byte body");
    ev->kind = WSFRAME_CLOSE;
    ev->code = WSFRAME_CLOSE_NO_STATUS;
    if (n >= 2) {
        ev->code = (uint16_t)(body[0] << 8 | body[1]);
        if (!wsframe_close_code_valid(ev->code))
            return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL,
                        "Close frame with a code an endpoint may not send");
        if (!wsframe_utf8_valid(body + 2, n - 2))
            return fail(p, ev, pos, WSFRAME_CLOSE_INVALID_DATA, "Close reason is not UTF-8");
        ev->data = body + 2;
        ev->len = n - 2;
    }
    return pos;
}

size_t wsframe_parse(struct wsframe_parser *p, const uint8_t *in, size_t len,
                     struct wsframe_event *ev)
{
    size_t pos = 0;

    memset(ev, 0, sizeof(*ev));
    if (p->failed)
        return fail(p, ev, 0, p->fail_code, p->fail_why);
    for (;;) {
        const uint8_t *f = in + pos;
        size_t avail = len - pos, h = 2;
        uint64_t n;
        bool fin;
        unsigned op;

        if (avail < 2) {
            ev->kind = WSFRAME_NEED_MORE;
            return pos;
        }
        fin = f[0] & 0x80;
        op = f[0] & 0x0f;
        if (f[0] & 0x70)
            return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL, "reserved bits set (no extension)");
        if (f[1] & 0x80)
            return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL, "masked frame from the server");
        n = f[1] & 0x7f;
        if (n == 126) {
            if (avail < 4) {
                ev->kind = WSFRAME_NEED_MORE;
                return pos;
            }
            n = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (n == 127) {
            if (avail < 10) {
                ev->kind = WSFRAME_NEED_MORE;
                return pos;
            }
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | f[2 + i];
            if (n >> 63)
                return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL,
                            "64-bit length with the top bit set");
            h = 10;
        }
        if (op >= 0x8) {
            if (op > WSFRAME_OP_PONG)
                return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL, "unknown control opcode");
            if (!fin)
                return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL, "fragmented control frame");
            if (n > WSFRAME_MAX_CONTROL)
                return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL, "control frame over 125 bytes");
        } else {
            size_t so_far = op == WSFRAME_OP_CONTINUATION ? p->len : 0;

            if (op > WSFRAME_OP_BINARY)
                return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL, "unknown data opcode");
            if (op == WSFRAME_OP_CONTINUATION && !p->in_message)
                return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL,
                            "continuation frame with no message to continue");
            if (op != WSFRAME_OP_CONTINUATION && p->in_message)
                return fail(p, ev, pos, WSFRAME_CLOSE_PROTOCOL,
                            "new message before the fragmented one ended");
            if (n > (uint64_t)(p->max_message - so_far))
                return fail(p, ev, pos, WSFRAME_CLOSE_TOO_BIG, "message over the size limit");
        }
        if ((uint64_t)(avail - h) < n) {
            ev->kind = WSFRAME_NEED_MORE;
            ev->need = h + (size_t)n;
            return pos;
        }

        const uint8_t *payload = f + h;
        pos += h + (size_t)n;
        switch (op) {
        case WSFRAME_OP_PING:
        case WSFRAME_OP_PONG:
            ev->kind = op == WSFRAME_OP_PING ? WSFRAME_PING : WSFRAME_PONG;
            ev->data = payload;
            ev->len = (size_t)n;
            return pos;
        case WSFRAME_OP_CLOSE:
            return close_event(p, ev, pos, payload, (size_t)n);
        case WSFRAME_OP_TEXT:
        case WSFRAME_OP_BINARY:
            if (fin) {
                if (op == WSFRAME_OP_TEXT && !wsframe_utf8_valid(payload, (size_t)n))
                    return fail(p, ev, pos, WSFRAME_CLOSE_INVALID_DATA,
                                "text message is not UTF-8");
                ev->kind = WSFRAME_MESSAGE;
                ev->binary = op == WSFRAME_OP_BINARY;
                ev->data = payload;
                ev->len = (size_t)n;
                return pos;
            }
            p->in_message = true;
            p->binary = op == WSFRAME_OP_BINARY;
            p->len = 0;
            break;
        default: /* continuation */
            break;
        }
        /* A fragment: the first one of a message or a later one. */
        if (!append(p, payload, (size_t)n))
            return fail(p, ev, pos, 1011, "out of memory reassembling a message");
        if (!fin)
            continue;
        p->in_message = false;
        p->buf[p->len] = 0;
        if (!p->binary && !wsframe_utf8_valid(p->buf, p->len))
            return fail(p, ev, pos, WSFRAME_CLOSE_INVALID_DATA, "text message is not UTF-8");
        ev->kind = WSFRAME_MESSAGE;
        ev->binary = p->binary;
        ev->data = p->buf;
        ev->len = p->len;
        return pos;
    }
}
