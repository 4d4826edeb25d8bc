/* Zero-copy msgpack cursor and validator; writers on top of msgpack-c.
 *
 * Reading never trusts its input: every header read is bounds-checked, so
 * the cursor is memory-safe even on bytes that were never validated. The
 * validator adds what a cursor cannot know cheaply: nesting depth (a fixed
 * stack of remaining-item counts, PROTO_HARD_MAX_DEPTH deep, so validation
 * never allocates), element counts against max_elements, and element
 * counts against the bytes that are left. The last check comes first: every
 * element takes at least one byte, so a count larger than what remains is a
 * lie and is refused before anything trusts it (a 5-byte frame cannot make
 * anyone loop over 4G elements).
 */
#include "msgpack.h"

#include <msgpack.h>
#include <string.h>

#include "errors.h"

/* --- reading --- */

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

void proto_mp_cursor_init(struct proto_mp_cursor *c, const void *data, size_t len)
{
    c->pos = data;
    c->end = len ? c->pos + len : c->pos; /* NULL + 0 is undefined in C */
}

/* Sets *why to a static reason on failure. */
static int mp_next(struct proto_mp_cursor *c, struct proto_mp_value *out, const char **why)
{
    const uint8_t *p = c->pos;
    size_t avail = (size_t)(c->end - p);
    size_t hdr = 1;  /* header bytes, type byte included */
    size_t body = 0; /* str/bin/ext payload bytes */

    if (avail < 1)
        goto truncated;
    uint8_t b = p[0];
    out->ext_type = 0;

    if (b <= 0x7f) {
        out->type = PROTO_MP_UINT;
        out->v.u = b;
    } else if (b <= 0x8f) {
        out->type = PROTO_MP_MAP;
        out->v.count = b & 0x0f;
    } else if (b <= 0x9f) {
        out->type = PROTO_MP_ARRAY;
        out->v.count = b & 0x0f;
    } else if (b <= 0xbf) {
        out->type = PROTO_MP_STR;
        body = b & 0x1f;
    } else if (b >= 0xe0) {
        out->type = PROTO_MP_INT;
        out->v.i = (int8_t)b;
    } else {
        switch (b) {
        case 0xc0:
            out->type = PROTO_MP_NIL;
            break;
        case 0xc1:
            *why = "reserved byte 0xc1";
            return PROTO_E_BAD_FRAME;
        case 0xc2:
        case 0xc3:
            out->type = PROTO_MP_BOOL;
            out->v.b = b == 0xc3;
            break;
        case 0xc4: /* bin 8/16/32 */
        case 0xc5:
        case 0xc6:
        case 0xd9: /* str 8/16/32 */
        case 0xda:
        case 0xdb: {
            bool is_bin = b <= 0xc6;
            size_t w = (size_t)1 << (is_bin ? b - 0xc4 : b - 0xd9);
            hdr = 1 + w;
            if (avail < hdr)
                goto truncated;
            body = w == 1 ? p[1] : w == 2 ? rd16(p + 1) : rd32(p + 1);
            out->type = is_bin ? PROTO_MP_BIN : PROTO_MP_STR;
            break;
        }
        case 0xc7: /* ext 8/16/32: length, then type */
        case 0xc8:
        case 0xc9: {
            size_t w = (size_t)1 << (b - 0xc7);
            hdr = 1 + w + 1;
            if (avail < hdr)
                goto truncated;
            body = w == 1 ? p[1] : w == 2 ? rd16(p + 1) : rd32(p + 1);
            out->type = PROTO_MP_EXT;
            out->ext_type = (int8_t)p[1 + w];
            break;
        }
        case 0xca:
            hdr = 5;
            if (avail < hdr)
                goto truncated;
            {
                uint32_t bits = rd32(p + 1);
                float f;
                memcpy(&f, &bits, sizeof f);
                out->type = PROTO_MP_FLOAT32;
                out->v.f = f;
            }
            break;
        case 0xcb:
            hdr = 9;
            if (avail < hdr)
                goto truncated;
            {
                uint64_t bits = rd64(p + 1);
                double d;
                memcpy(&d, &bits, sizeof d);
                out->type = PROTO_MP_FLOAT64;
                out->v.f = d;
            }
            break;
        case 0xcc: /* uint 8/16/32/64 */
        case 0xcd:
        case 0xce:
        case 0xcf: {
            size_t w = (size_t)1 << (b - 0xcc);
            hdr = 1 + w;
            if (avail < hdr)
                goto truncated;
            out->type = PROTO_MP_UINT;
            out->v.u = w == 1 ? p[1] : w == 2 ? rd16(p + 1) : w == 4 ? rd32(p + 1) : rd64(p + 1);
            break;
        }
        case 0xd0: /* int 8/16/32/64 */
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            size_t w = (size_t)1 << (b - 0xd0);
            hdr = 1 + w;
            if (avail < hdr)
                goto truncated;
            out->type = PROTO_MP_INT;
            out->v.i = w == 1   ? (int8_t)p[1]
                       : w == 2 ? (int16_t)rd16(p + 1)
                       : w == 4 ? (int32_t)rd32(p + 1)
                                : (int64_t)rd64(p + 1);
            break;
        }
        case 0xd4: /* fixext 1/2/4/8/16: type, then data */
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            hdr = 2;
            if (avail < hdr)
                goto truncated;
            body = (size_t)1 << (b - 0xd4);
            out->type = PROTO_MP_EXT;
            out->ext_type = (int8_t)p[1];
            break;
        case 0xdc: /* array 16/32 */
        case 0xdd:
        case 0xde: /* map 16/32 */
        case 0xdf: {
            size_t w = (b & 1) ? 4 : 2;
            hdr = 1 + w;
            if (avail < hdr)
                goto truncated;
            out->type = b <= 0xdd ? PROTO_MP_ARRAY : PROTO_MP_MAP;
            out->v.count = w == 2 ? rd16(p + 1) : rd32(p + 1);
            break;
        }
        default: /* unreachable: every byte value is covered above */
            *why = "reserved byte";
            return PROTO_E_BAD_FRAME;
        }
    }
    if (out->type == PROTO_MP_STR || out->type == PROTO_MP_BIN || out->type == PROTO_MP_EXT) {
        if (body > avail - hdr)
            goto truncated;
        out->v.str.ptr = p + hdr;
        out->v.str.len = (uint32_t)body;
    }
    c->pos = p + hdr + body;
    return 0;

truncated:
    *why = "truncated";
    return PROTO_E_BAD_FRAME;
}

int proto_mp_next(struct proto_mp_cursor *c, struct proto_mp_value *out)
{
    const char *why;
    return mp_next(c, out, &why);
}

int proto_mp_skip(struct proto_mp_cursor *c, struct proto_span *raw)
{
    /* No stack needed to skip: only the total of items still owed matters.
     * Each item consumes at least one byte, so this loop is bounded by the
     * input length whatever the counts claim. */
    const uint8_t *start = c->pos;
    uint64_t owed = 1;
    struct proto_mp_value v;
    while (owed > 0) {
        int rc = proto_mp_next(c, &v);
        if (rc < 0) {
            c->pos = start;
            return rc;
        }
        owed--;
        if (v.type == PROTO_MP_ARRAY)
            owed += v.v.count;
        else if (v.type == PROTO_MP_MAP)
            owed += 2 * (uint64_t)v.v.count;
        if (owed > (uint64_t)(c->end - c->pos)) {
            c->pos = start;
            return PROTO_E_BAD_FRAME;
        }
    }
    if (raw) {
        raw->ptr = start;
        raw->len = (uint32_t)(c->pos - start);
    }
    return 0;
}

/* The validator behind proto_mp_validate and proto_mp_validate_frame.
 * `frame`: the value must be a map whose keys are strings, with nothing
 * after it. On error *err_off is the offset of the offending item. */
static int mp_walk(const void *data, size_t len, const struct proto_limits *limits, bool frame,
                   size_t *used, const char **why, size_t *err_off)
{
    struct proto_limits def;
    if (!limits) {
        proto_limits_default(&def);
        limits = &def;
    }
    uint32_t max_depth = limits->max_depth;
    if (max_depth > PROTO_HARD_MAX_DEPTH)
        max_depth = PROTO_HARD_MAX_DEPTH;

    /* left[d]: items still owed by the open container at depth d+1 (a map
     * of n pairs owes 2n items: keys and values alternate). */
    uint64_t left[PROTO_HARD_MAX_DEPTH];
    uint32_t depth = 0;
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    const char *reason = NULL;
    proto_mp_cursor_init(&c, data, len);

    for (;;) {
        const uint8_t *item = c.pos;
        bool is_key = frame && depth == 1 && left[0] % 2 == 0;
        if (mp_next(&c, &v, &reason) < 0)
            goto bad_at_item;
        if (depth == 0 && frame && v.type != PROTO_MP_MAP) {
            reason = "top level is not a map";
            goto bad_at_item;
        }
        if (is_key && v.type != PROTO_MP_STR) {
            reason = "map key is not a string";
            goto bad_at_item;
        }
        if (depth > 0)
            left[depth - 1]--;
        if (v.type == PROTO_MP_ARRAY || v.type == PROTO_MP_MAP) {
            uint64_t owed = v.type == PROTO_MP_MAP ? 2 * (uint64_t)v.v.count : v.v.count;
            if (owed > (uint64_t)(c.end - c.pos)) {
                reason = "element count exceeds the remaining bytes";
                goto bad_at_item;
            }
            if (v.v.count > limits->max_elements) {
                reason = "more elements than max_elements";
                goto bad_at_item;
            }
            if (depth + 1 > max_depth) {
                reason = "nesting deeper than max_depth";
                goto bad_at_item;
            }
            if (owed > 0)
                left[depth++] = owed;
        }
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
        if (depth == 0)
            break;
        continue;
    bad_at_item:
        if (why)
            *why = reason;
        if (err_off)
            *err_off = (size_t)(item - (const uint8_t *)data);
        return PROTO_E_BAD_FRAME;
    }
    size_t n = (size_t)(c.pos - (const uint8_t *)data);
    if (frame && n != len) {
        if (why)
            *why = "trailing bytes after the map";
        if (err_off)
            *err_off = n;
        return PROTO_E_BAD_FRAME;
    }
    if (used)
        *used = n;
    return 0;
}

int proto_mp_validate(const void *data, size_t len, const struct proto_limits *limits, size_t *used,
                      const char **why)
{
    return mp_walk(data, len, limits, false, used, why, NULL);
}

int proto_mp_validate_frame(const void *data, size_t len, const struct proto_limits *limits,
                            const char **why, size_t *err_off)
{
    return mp_walk(data, len, limits, true, NULL, why, err_off);
}

int proto_mp_value_u64(const struct proto_mp_value *v, uint64_t *out)
{
    if (v->type == PROTO_MP_UINT) {
        *out = v->v.u;
        return 0;
    }
    if (v->type == PROTO_MP_INT && v->v.i >= 0) {
        *out = (uint64_t)v->v.i;
        return 0;
    }
    return PROTO_E_BAD_REQUEST;
}

/* --- writing: msgpack-c's packer, appending to a proto_buf --- */

static int buf_write(void *data, const char *bytes, size_t len)
{
    return proto_buf_append(data, bytes, len) < 0 ? -1 : 0;
}

#define PACK(b, call)                                                                              \
    do {                                                                                           \
        msgpack_packer pk;                                                                         \
        size_t saved_ = (b)->len;                                                                  \
        msgpack_packer_init(&pk, (b), buf_write);                                                  \
        if ((call) != 0) {                                                                         \
            (b)->len = saved_;                                                                     \
            return PROTO_E_NOMEM;                                                                  \
        }                                                                                          \
        return 0;                                                                                  \
    } while (0)

int proto_mp_put_nil(struct proto_buf *b)
{
    PACK(b, msgpack_pack_nil(&pk));
}

int proto_mp_put_bool(struct proto_buf *b, bool v)
{
    PACK(b, v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

int proto_mp_put_int(struct proto_buf *b, int64_t v)
{
    PACK(b, msgpack_pack_int64(&pk, v));
}

int proto_mp_put_uint(struct proto_buf *b, uint64_t v)
{
    PACK(b, msgpack_pack_uint64(&pk, v));
}

int proto_mp_put_double(struct proto_buf *b, double v)
{
    PACK(b, msgpack_pack_double(&pk, v));
}

int proto_mp_put_str(struct proto_buf *b, const char *s, size_t len)
{
    if (len > UINT32_MAX)
        return PROTO_E_NOMEM;
    if (proto_buf_reserve(b, len + 5) < 0)
        return PROTO_E_NOMEM;
    PACK(b, msgpack_pack_str_with_body(&pk, s, len));
}

int proto_mp_put_cstr(struct proto_buf *b, const char *s)
{
    return proto_mp_put_str(b, s, strlen(s));
}

int proto_mp_put_bin(struct proto_buf *b, const void *data, size_t len)
{
    if (len > UINT32_MAX)
        return PROTO_E_NOMEM;
    if (proto_buf_reserve(b, len + 5) < 0)
        return PROTO_E_NOMEM;
    PACK(b, msgpack_pack_bin_with_body(&pk, data, len));
}

int proto_mp_put_array(struct proto_buf *b, uint32_t count)
{
    PACK(b, msgpack_pack_array(&pk, count));
}

int proto_mp_put_map(struct proto_buf *b, uint32_t count)
{
    PACK(b, msgpack_pack_map(&pk, count));
}

int proto_mp_put_str_header(struct proto_buf *b, uint32_t len)
{
    PACK(b, msgpack_pack_str(&pk, len));
}

int proto_mp_put_bin_header(struct proto_buf *b, uint32_t len)
{
    PACK(b, msgpack_pack_bin(&pk, len));
}

int proto_mp_put_raw(struct proto_buf *b, const void *data, size_t len)
{
    return proto_buf_append(b, data, len);
}
