/* Fuzz the JSON tokenizer and the msgpack <-> JSON transcoder.
 *
 * Byte 0 picks the direction and the binary mode; the rest is the input.
 * - JSON text: text -> msgpack M1 -> JSON B -> msgpack M2 -> JSON C must
 *   give M1 == M2 and B == C (a fixpoint after the first conversion), and
 *   B must be valid for the tokenizer.
 * - msgpack: M -> JSON J -> msgpack M' must hold equivalent data (numbers
 *   by value, float32 as the float64 of its shortest text, binary markers
 *   and placeholders as the mode defines them), and J -> M' -> J again
 *   must give J. The tokenizer's max_tokens may refuse J (msgpack -> JSON
 *   has no token limit): only when J really has more tokens, and then the
 *   round trip must hold without the limit (issue 11).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/json.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ATT 64

static struct proto_json_doc doc; /* reused across runs, like a connection would */

static bool same_bytes(const struct proto_buf *a, const struct proto_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static int b64v(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Independent base64 check: canonical padded base64 of exactly `bin`? */
static bool b64_matches(struct proto_span text, struct proto_span bin)
{
    if (text.len % 4 != 0 || text.len / 4 * 3 < bin.len || text.len / 4 * 3 > bin.len + 2)
        return false;
    size_t o = 0;
    for (uint32_t i = 0; i < text.len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            uint8_t c = text.ptr[i + k];
            if (c == '=' && i + 4 == text.len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64v(c)) < 0)
                return false;
        }
        uint32_t q =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        uint8_t out[3] = {(uint8_t)(q >> 16), (uint8_t)(q >> 8), (uint8_t)q};
        for (int k = 0; k < 3 - pad; k++, o++)
            if (o >= bin.len || out[k] != bin.ptr[o])
                return false;
        if (pad && (q & ((1u << (8 * pad)) - 1)))
            return false;
    }
    return o == bin.len;
}

struct ctx {
    enum proto_json_bin mode;
    const struct proto_span *att; /* placeholders' attachments */
    uint32_t n_att;
};

static bool key_is(const struct proto_mp_value *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == PROTO_MP_STR && k->v.str.len == n && memcmp(k->v.str.ptr, s, n) == 0;
}

/* Is the map at a (count already read) a binary stand-in in this mode? If
 * so, consumes it and stores the bytes it stands for. */
static bool standin(struct proto_mp_cursor *a, uint32_t count, const struct ctx *cx,
                    struct proto_span *bytes)
{
    struct proto_mp_cursor save = *a;
    struct proto_mp_value k, v, k2, v2;
    if (cx->mode == PROTO_JSON_BIN_MARKER && count == 1) {
        proto_mp_next(a, &k);
        proto_mp_next(a, &v);
        if (key_is(&k, "$bin") && v.type == PROTO_MP_STR) {
            *bytes = v.v.str; /* the base64 text; the caller checks it */
            return true;
        }
    }
    if (cx->mode == PROTO_JSON_BIN_PLACEHOLDER && count == 2) {
        proto_mp_next(a, &k);
        if (proto_mp_next(a, &v) == 0 && v.type != PROTO_MP_ARRAY && v.type != PROTO_MP_MAP) {
            proto_mp_next(a, &k2);
            proto_mp_next(a, &v2);
            if (key_is(&k2, "_placeholder")) {
                struct proto_mp_value t = k;
                k = k2;
                k2 = t;
                t = v;
                v = v2;
                v2 = t;
            }
            uint64_t num;
            if (key_is(&k, "_placeholder") && key_is(&k2, "num") && v.type == PROTO_MP_BOOL &&
                v.v.b && proto_mp_value_u64(&v2, &num) == 0 && num < cx->n_att) {
                *bytes = cx->att[num];
                return true;
            }
        }
    }
    *a = save;
    return false;
}

/* Original msgpack at a vs. its round trip at b. */
static bool equivalent(struct proto_mp_cursor *a, struct proto_mp_cursor *b, const struct ctx *cx)
{
    struct proto_mp_value x, y;
    CHECK(proto_mp_next(a, &x) == 0);
    CHECK(proto_mp_next(b, &y) == 0);
    uint64_t ux, uy;
    switch (x.type) {
    case PROTO_MP_NIL:
        return y.type == PROTO_MP_NIL;
    case PROTO_MP_BOOL:
        return y.type == PROTO_MP_BOOL && x.v.b == y.v.b;
    case PROTO_MP_INT:
        if (x.v.i >= 0)
            return proto_mp_value_u64(&y, &uy) == 0 && uy == (uint64_t)x.v.i;
        return y.type == PROTO_MP_INT && y.v.i == x.v.i;
    case PROTO_MP_UINT:
        ux = x.v.u;
        return proto_mp_value_u64(&y, &uy) == 0 && uy == ux;
    case PROTO_MP_FLOAT64:
        return y.type == PROTO_MP_FLOAT64 && memcmp(&x.v.f, &y.v.f, sizeof(double)) == 0;
    case PROTO_MP_FLOAT32:
        return y.type == PROTO_MP_FLOAT64 && (float)y.v.f == (float)x.v.f &&
               signbit(y.v.f) == signbit(x.v.f);
    case PROTO_MP_STR:
        return y.type == PROTO_MP_STR && x.v.str.len == y.v.str.len &&
               memcmp(x.v.str.ptr, y.v.str.ptr, x.v.str.len) == 0;
    case PROTO_MP_BIN:
        return y.type == PROTO_MP_BIN && x.v.str.len == y.v.str.len &&
               memcmp(x.v.str.ptr, y.v.str.ptr, x.v.str.len) == 0;
    case PROTO_MP_ARRAY:
        if (y.type != PROTO_MP_ARRAY || x.v.count != y.v.count)
            return false;
        for (uint32_t i = 0; i < x.v.count; i++)
            if (!equivalent(a, b, cx))
                return false;
        return true;
    case PROTO_MP_MAP:
        if (y.type == PROTO_MP_BIN) {
            /* a map that reads as a stand-in comes back as binary */
            struct proto_span bytes;
            if (!standin(a, x.v.count, cx, &bytes))
                return false;
            if (cx->mode == PROTO_JSON_BIN_MARKER)
                return b64_matches(bytes, y.v.str);
            return bytes.len == y.v.str.len &&
                   (bytes.len == 0 || memcmp(bytes.ptr, y.v.str.ptr, bytes.len) == 0);
        }
        if (y.type != PROTO_MP_MAP || x.v.count != y.v.count)
            return false;
        for (uint32_t i = 0; i < 2 * x.v.count; i++)
            if (!equivalent(a, b, cx))
                return false;
        return true;
    default:
        return false; /* ext never reaches JSON */
    }
}

static void from_json_side(const uint8_t *text, size_t len, struct proto_json_opts *o)
{
    struct proto_buf m1 = PROTO_BUF_INIT, b = PROTO_BUF_INIT, m2 = PROTO_BUF_INIT,
                     c = PROTO_BUF_INIT;
    struct proto_json_error err;
    struct proto_span att_out[MAX_ATT];
    int rc = proto_json_to_msgpack(&doc, (const char *)text, len, &m1, o, &err);
    if (rc < 0) {
        CHECK(err.code == rc && err.offset <= len && m1.len == 0);
        goto out;
    }
    CHECK(proto_mp_validate(m1.data, m1.len, NULL, NULL, NULL) == 0 || o->max_depth > 64);

    struct proto_json_opts o2 = *o;
    o2.attachments = att_out;
    o2.max_attachments = MAX_ATT;
    o2.n_attachments = 0;
    rc = proto_msgpack_to_json(m1.data, m1.len, &b, &o2, &err);
    if (rc == PROTO_E_LIMIT_EXCEEDED)
        goto out; /* more placeholders than we have room for */
    CHECK(rc == 0);
    struct proto_json_opts o3 = o2; /* substitute what B collected */
    rc = proto_json_to_msgpack(&doc, (const char *)b.data, b.len, &m2, &o3, &err);
    CHECK(rc == 0);
    CHECK(same_bytes(&m1, &m2));
    o2.n_attachments = 0;
    CHECK(proto_msgpack_to_json(m2.data, m2.len, &c, &o2, &err) == 0);
    CHECK(same_bytes(&b, &c));
out:
    proto_buf_free(&m1);
    proto_buf_free(&b);
    proto_buf_free(&m2);
    proto_buf_free(&c);
}

static void from_msgpack_side(const uint8_t *mp, size_t len, struct proto_json_opts *o)
{
    struct proto_buf j = PROTO_BUF_INIT, m = PROTO_BUF_INIT, j2 = PROTO_BUF_INIT;
    struct proto_json_error err;
    struct proto_span att[MAX_ATT];
    o->attachments = att;
    o->max_attachments = MAX_ATT;
    o->n_attachments = 0;
    int rc = proto_msgpack_to_json(mp, len, &j, o, &err);
    if (rc < 0) {
        CHECK(err.code == rc && j.len == 0 && o->n_attachments == 0);
        CHECK(rc != PROTO_E_NOT_JSON || err.offset < len);
        goto out;
    }
    rc = proto_json_to_msgpack(&doc, (const char *)j.data, j.len, &m, o, &err);
    if (rc == PROTO_E_LIMIT_EXCEEDED && doc.max_tokens) {
        /* Issue 11. max_tokens bounds the tokenizer (its token array grows
         * with the count); msgpack -> JSON has no such limit, as the JSON
         * it writes is bounded by its input. So a valid value may come back
         * as JSON the tokenizer refuses, and that is right exactly when the
         * JSON has more tokens than the limit: check that, and that the
         * round trip holds without the limit. */
        static struct proto_json_doc unlimited;
        CHECK(err.code == rc && m.len == 0);
        CHECK(proto_json_parse(&unlimited, (const char *)j.data, j.len, o->max_depth, &err) == 0);
        CHECK(unlimited.n > doc.max_tokens);
        rc = proto_json_to_msgpack(&unlimited, (const char *)j.data, j.len, &m, o, &err);
    }
    CHECK(rc == 0);
    struct proto_mp_cursor a, b;
    proto_mp_cursor_init(&a, mp, len);
    proto_mp_cursor_init(&b, m.data, m.len);
    struct ctx cx = {o->bin, att, o->n_attachments};
    CHECK(equivalent(&a, &b, &cx));
    CHECK(proto_mp_at_end(&a) && proto_mp_at_end(&b));
    /* and JSON is a fixpoint from there */
    struct proto_span att2[MAX_ATT];
    struct proto_json_opts o2 = *o;
    o2.attachments = att2;
    o2.n_attachments = 0;
    CHECK(proto_msgpack_to_json(m.data, m.len, &j2, &o2, &err) == 0);
    CHECK(same_bytes(&j, &j2));
out:
    proto_buf_free(&j);
    proto_buf_free(&m);
    proto_buf_free(&j2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    data++;
    size--;
    static const uint8_t att_bytes[] = "attachment-bytes";
    struct proto_span att[3] = {{att_bytes, 4}, {att_bytes + 4, 0}, {att_bytes, 16}};
    struct proto_json_opts o = {0};
    o.bin = (enum proto_json_bin)((sel >> 1) % 3);
    o.max_depth = (sel & 0x40) ? 0 : 8;
    if (o.bin == PROTO_JSON_BIN_PLACEHOLDER) {
        o.attachments = att;
        o.n_attachments = 3;
    }
    doc.max_tokens = (sel & 0x80) ? 0 : 1000;
    if (sel & 1)
        from_msgpack_side(data, size, &o);
    else
        from_json_side(data, size, &o);

    /* the token accessors on whatever parsed */
    struct proto_json_error err;
    if (proto_json_parse(&doc, (const char *)data, size, 0, &err) == 0) {
        struct proto_buf s = PROTO_BUF_INIT;
        for (uint32_t i = 0; i < doc.n; i++) {
            const struct proto_json_token *t = &doc.tok[i];
            CHECK(t->next > i && t->next <= doc.n);
            CHECK((size_t)t->start + t->len <= size);
            if (t->type == PROTO_JSON_STRING) {
                proto_buf_reset(&s);
                CHECK(proto_json_string(&doc, i, &s, &err) == 0);
                CHECK(s.len <= t->len);
                proto_buf_append_byte(&s, 0);
                if (strlen((const char *)s.data) == s.len - 1)
                    CHECK(proto_json_string_eq(&doc, i, (const char *)s.data));
            } else if (t->type == PROTO_JSON_OBJECT) {
                proto_json_find(&doc, i, "id");
            } else if (t->type == PROTO_JSON_NUMBER) {
                int64_t v;
                proto_json_int64(&doc, i, &v);
            }
        }
        proto_buf_free(&s);
    }
    return 0;
}
