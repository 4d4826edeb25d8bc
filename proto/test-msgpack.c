/* The zero-copy cursor, the validator and the writers. msgpack-c's own
 * unpacker is the independent oracle for the cursor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "proto/errors.h"
#include "proto/msgpack.h"

/* Deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void bytes_of(struct proto_buf *b, const char *hex)
{
    proto_buf_reset(b);
    while (hex[0] && hex[1]) {
        unsigned v;
        assert_int_equal(sscanf(hex, "%2x", &v), 1);
        proto_buf_append_byte(b, (uint8_t)v);
        hex += 2;
        while (*hex == ' ')
            hex++;
    }
}

static void read_one(const struct proto_buf *b, struct proto_mp_value *v)
{
    struct proto_mp_cursor c;
    proto_mp_cursor_init(&c, b->data, b->len);
    assert_int_equal(proto_mp_next(&c, v), 0);
    assert_true(proto_mp_at_end(&c));
}

static void test_int_boundaries(void **state)
{
    static const int64_t ints[] = {0,
                                   1,
                                   127,
                                   128,
                                   255,
                                   256,
                                   65535,
                                   65536,
                                   -1,
                                   -32,
                                   -33,
                                   -128,
                                   -129,
                                   -32768,
                                   -32769,
                                   INT32_MIN,
                                   (int64_t)INT32_MIN - 1,
                                   INT64_MIN,
                                   INT64_MAX,
                                   (int64_t)UINT32_MAX + 1};
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_mp_value v;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        proto_buf_reset(&b);
        assert_int_equal(proto_mp_put_int(&b, ints[i]), 0);
        read_one(&b, &v);
        if (ints[i] >= 0) { /* msgpack-c writes the unsigned families for these */
            assert_int_equal(v.type, PROTO_MP_UINT);
            assert_true(v.v.u == (uint64_t)ints[i]);
        } else {
            assert_int_equal(v.type, PROTO_MP_INT);
            assert_true(v.v.i == ints[i]);
        }
    }
    static const uint64_t uints[] = {
        0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        proto_buf_reset(&b);
        assert_int_equal(proto_mp_put_uint(&b, uints[i]), 0);
        read_one(&b, &v);
        assert_int_equal(v.type, PROTO_MP_UINT);
        assert_true(v.v.u == uints[i]);
    }
    /* Every signed family, including non-negative values in them. */
    bytes_of(&b, "d0 05");
    read_one(&b, &v);
    assert_int_equal(v.type, PROTO_MP_INT);
    assert_int_equal(v.v.i, 5);
    bytes_of(&b, "d1 ff 7f");
    read_one(&b, &v);
    assert_int_equal(v.v.i, -129);
    bytes_of(&b, "d2 80 00 00 00");
    read_one(&b, &v);
    assert_true(v.v.i == INT32_MIN);
    bytes_of(&b, "d3 80 00 00 00 00 00 00 00");
    read_one(&b, &v);
    assert_true(v.v.i == INT64_MIN);
    bytes_of(&b, "cd 01 00");
    read_one(&b, &v);
    assert_int_equal(v.type, PROTO_MP_UINT);
    assert_int_equal(v.v.u, 256);
    proto_buf_free(&b);
}

static void test_value_u64(void **state)
{
    struct proto_mp_value v = {.type = PROTO_MP_INT};
    uint64_t u = 99;
    v.v.i = 7;
    assert_int_equal(proto_mp_value_u64(&v, &u), 0);
    assert_int_equal(u, 7);
    v.v.i = -1;
    assert_int_equal(proto_mp_value_u64(&v, &u), PROTO_E_BAD_REQUEST);
    v.type = PROTO_MP_UINT;
    v.v.u = UINT64_MAX;
    assert_int_equal(proto_mp_value_u64(&v, &u), 0);
    assert_true(u == UINT64_MAX);
    v.type = PROTO_MP_FLOAT64;
    v.v.f = 1.0;
    assert_int_equal(proto_mp_value_u64(&v, &u), PROTO_E_BAD_REQUEST);
    v.type = PROTO_MP_STR;
    assert_int_equal(proto_mp_value_u64(&v, &u), PROTO_E_BAD_REQUEST);
}

static void test_scalars(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_mp_value v;
    assert_int_equal(proto_mp_put_nil(&b), 0);
    read_one(&b, &v);
    assert_int_equal(v.type, PROTO_MP_NIL);
    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_bool(&b, true), 0);
    read_one(&b, &v);
    assert_int_equal(v.type, PROTO_MP_BOOL);
    assert_true(v.v.b);
    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_bool(&b, false), 0);
    read_one(&b, &v);
    assert_false(v.v.b);
    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_double(&b, -0.0), 0);
    assert_int_equal(b.len, 9);
    read_one(&b, &v);
    assert_int_equal(v.type, PROTO_MP_FLOAT64);
    assert_true(v.v.f == 0.0 && 1 / v.v.f < 0);
    bytes_of(&b, "ca 3f c0 00 00"); /* float32 1.5 */
    read_one(&b, &v);
    assert_int_equal(v.type, PROTO_MP_FLOAT32);
    assert_true(v.v.f == 1.5);
    proto_buf_free(&b);
}

static void test_str_bin_lengths(void **state)
{
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 100000};
    static char big[100000];
    memset(big, 'x', sizeof big);
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_mp_value v;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int bin = 0; bin < 2; bin++) {
            proto_buf_reset(&b);
            int rc = bin ? proto_mp_put_bin(&b, big, lens[i]) : proto_mp_put_str(&b, big, lens[i]);
            assert_int_equal(rc, 0);
            read_one(&b, &v);
            assert_int_equal(v.type, bin ? PROTO_MP_BIN : PROTO_MP_STR);
            assert_int_equal(v.v.str.len, lens[i]);
            assert_ptr_equal(v.v.str.ptr, b.data + b.len - lens[i]); /* zero-copy span */
            /* Every proper prefix is truncated. */
            for (size_t cut = 0; cut < b.len; cut += cut < 8 ? 1 : 997) {
                struct proto_mp_cursor c;
                proto_mp_cursor_init(&c, b.data, cut);
                assert_int_equal(proto_mp_next(&c, &v), PROTO_E_BAD_FRAME);
                assert_ptr_equal(c.pos, b.data); /* not advanced */
            }
        }
    }
    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_cstr(&b, "héllo"), 0);
    read_one(&b, &v);
    assert_int_equal(v.v.str.len, 6);
    assert_memory_equal(v.v.str.ptr, "héllo", 6);
    proto_buf_free(&b);
}

static void test_ext(void **state)
{
    static const struct {
        const char *hex;
        int8_t type;
        uint32_t len;
    } cases[] = {
        {"d4 01 aa", 1, 1},
        {"d5 02 aa bb", 2, 2},
        {"d6 ff 01 02 03 04", -1, 4},
        {"d7 05 01 02 03 04 05 06 07 08", 5, 8},
        {"d8 06 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f", 6, 16},
        {"c7 03 07 01 02 03", 7, 3},
        {"c8 00 02 08 01 02", 8, 2},
        {"c9 00 00 00 01 09 01", 9, 1},
        {"c7 00 0a", 10, 0},
    };
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_mp_value v;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes_of(&b, cases[i].hex);
        read_one(&b, &v);
        assert_int_equal(v.type, PROTO_MP_EXT);
        assert_int_equal(v.ext_type, cases[i].type);
        assert_int_equal(v.v.str.len, cases[i].len);
        assert_ptr_equal(v.v.str.ptr + v.v.str.len, b.data + b.len);
        size_t used;
        assert_int_equal(proto_mp_validate(b.data, b.len, NULL, &used, NULL), 0);
        assert_int_equal(used, b.len);
        assert_int_not_equal(proto_mp_validate(b.data, b.len - 1, NULL, &used, NULL), 0);
    }
    proto_buf_free(&b);
}

static void test_containers_and_skip(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    /* {"a": [1, {"b": nil}, "x"], "c": true} 7 */
    proto_mp_put_map(&b, 2);
    proto_mp_put_cstr(&b, "a");
    size_t arr_at = b.len;
    proto_mp_put_array(&b, 3);
    proto_mp_put_uint(&b, 1);
    proto_mp_put_map(&b, 1);
    proto_mp_put_cstr(&b, "b");
    proto_mp_put_nil(&b);
    proto_mp_put_cstr(&b, "x");
    size_t arr_end = b.len;
    proto_mp_put_cstr(&b, "c");
    proto_mp_put_bool(&b, true);
    size_t map_end = b.len;
    proto_mp_put_uint(&b, 7);

    struct proto_mp_cursor c;
    struct proto_mp_value v;
    struct proto_span raw;
    proto_mp_cursor_init(&c, b.data, b.len);
    assert_int_equal(proto_mp_next(&c, &v), 0);
    assert_int_equal(v.type, PROTO_MP_MAP);
    assert_int_equal(v.v.count, 2);
    assert_int_equal(proto_mp_next(&c, &v), 0);
    assert_int_equal(v.type, PROTO_MP_STR);
    assert_int_equal(proto_mp_skip(&c, &raw), 0);
    assert_ptr_equal(raw.ptr, b.data + arr_at);
    assert_int_equal(raw.len, arr_end - arr_at);
    assert_int_equal(proto_mp_skip(&c, NULL), 0); /* "c" */
    assert_int_equal(proto_mp_skip(&c, NULL), 0); /* true */
    assert_ptr_equal(c.pos, b.data + map_end);

    /* skip the whole map; a truncated copy leaves the cursor where it was */
    proto_mp_cursor_init(&c, b.data, b.len);
    assert_int_equal(proto_mp_skip(&c, &raw), 0);
    assert_int_equal(raw.len, map_end);
    for (size_t cut = 0; cut < map_end; cut++) {
        proto_mp_cursor_init(&c, b.data, cut);
        assert_int_equal(proto_mp_skip(&c, &raw), PROTO_E_BAD_FRAME);
        assert_ptr_equal(c.pos, b.data);
    }

    size_t used = 0;
    assert_int_equal(proto_mp_validate(b.data, b.len, NULL, &used, NULL), 0);
    assert_int_equal(used, map_end); /* trailing bytes are the caller's business */
    const char *why = NULL;
    assert_int_equal(proto_mp_validate_frame(b.data, b.len, NULL, &why, NULL), PROTO_E_BAD_FRAME);
    assert_string_equal(why, "trailing bytes after the map");
    assert_int_equal(proto_mp_validate_frame(b.data, map_end, NULL, &why, NULL), 0);
    proto_buf_free(&b);
}

static void test_validate_malformed(void **state)
{
    static const struct {
        const char *hex;
        const char *why;
        size_t off;
    } cases[] = {
        {"", "truncated", 0},
        {"c1", "reserved byte 0xc1", 0},
        {"92 01 c1", "reserved byte 0xc1", 2},
        {"92 01", "element count exceeds the remaining bytes", 0},
        {"92 01 a2 61", "truncated", 2},
        {"a3 61 62", "truncated", 0},
        {"cb 00 00", "truncated", 0},
        {"d9", "truncated", 0},
        {"c6 00 00 00 05 01", "truncated", 0},
        /* a count larger than what is left is refused at the header */
        {"dd ff ff ff ff 01", "element count exceeds the remaining bytes", 0},
        {"df 80 00 00 00 01 02", "element count exceeds the remaining bytes", 0},
        {"83 a1 61 01 a1 62", "element count exceeds the remaining bytes", 0},
        {"83 a1 61 01 a1 62 02", "truncated", 7},
        {"91 dc 00 02 01", "element count exceeds the remaining bytes", 1},
    };
    struct proto_buf b = PROTO_BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes_of(&b, cases[i].hex);
        const char *why = NULL;
        size_t off = 99, used = 99;
        assert_int_equal(proto_mp_validate(b.data, b.len, NULL, &used, &why), PROTO_E_BAD_FRAME);
        assert_string_equal(why, cases[i].why);
        assert_int_equal(used, 99); /* untouched on error */
        assert_int_equal(proto_mp_validate_frame(b.data, b.len, NULL, &why, &off),
                         PROTO_E_BAD_FRAME);
        if (b.len > 0 && b.data[0] != 0x92 && b.data[0] != 0x91)
            assert_int_equal(off, cases[i].off);
    }
    /* frame-only rules */
    const char *why;
    size_t off;
    bytes_of(&b, "92 01 02");
    assert_int_equal(proto_mp_validate(b.data, b.len, NULL, NULL, NULL), 0);
    assert_int_equal(proto_mp_validate_frame(b.data, b.len, NULL, &why, &off), PROTO_E_BAD_FRAME);
    assert_string_equal(why, "top level is not a map");
    assert_int_equal(off, 0);
    bytes_of(&b, "82 a1 61 01 02 03"); /* {"a":1, 2:3} */
    assert_int_equal(proto_mp_validate_frame(b.data, b.len, NULL, &why, &off), PROTO_E_BAD_FRAME);
    assert_string_equal(why, "map key is not a string");
    assert_int_equal(off, 4);
    bytes_of(&b, "81 a1 61 81 01 02"); /* {"a": {1: 2}}: nested keys may be anything */
    assert_int_equal(proto_mp_validate_frame(b.data, b.len, NULL, &why, &off), 0);
    bytes_of(&b, "81 a1 61 01 c0");
    assert_int_equal(proto_mp_validate_frame(b.data, b.len, NULL, &why, &off), PROTO_E_BAD_FRAME);
    assert_string_equal(why, "trailing bytes after the map");
    assert_int_equal(off, 4);
    bytes_of(&b, "80");
    assert_int_equal(proto_mp_validate_frame(b.data, b.len, NULL, &why, &off), 0);
    proto_buf_free(&b);
}

/* [[[...]]] nested `depth` deep (the outer array is depth 1). */
static void nest(struct proto_buf *b, uint32_t depth, bool map)
{
    proto_buf_reset(b);
    for (uint32_t i = 1; i < depth; i++) {
        if (map) {
            proto_mp_put_map(b, 1);
            proto_mp_put_cstr(b, "k");
        } else {
            proto_mp_put_array(b, 1);
        }
    }
    if (map)
        proto_mp_put_map(b, 0);
    else
        proto_mp_put_array(b, 0);
}

static void test_validate_limits(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_limits l = {.max_frame = 1000, .max_depth = 5, .max_elements = 10};
    const char *why;
    for (int map = 0; map < 2; map++) {
        nest(&b, 5, map);
        assert_int_equal(proto_mp_validate(b.data, b.len, &l, NULL, &why), 0);
        nest(&b, 6, map);
        assert_int_equal(proto_mp_validate(b.data, b.len, &l, NULL, &why), PROTO_E_BAD_FRAME);
        assert_string_equal(why, "nesting deeper than max_depth");
    }
    /* Defaults: 64. */
    nest(&b, 64, false);
    assert_int_equal(proto_mp_validate(b.data, b.len, NULL, NULL, &why), 0);
    nest(&b, 65, false);
    assert_int_equal(proto_mp_validate(b.data, b.len, NULL, NULL, &why), PROTO_E_BAD_FRAME);
    /* A huge max_depth is capped, not a stack overflow. */
    struct proto_limits deep = {.max_depth = UINT32_MAX, .max_elements = 10};
    nest(&b, PROTO_HARD_MAX_DEPTH, false);
    assert_int_equal(proto_mp_validate(b.data, b.len, &deep, NULL, &why), 0);
    nest(&b, PROTO_HARD_MAX_DEPTH + 1, false);
    assert_int_equal(proto_mp_validate(b.data, b.len, &deep, NULL, &why), PROTO_E_BAD_FRAME);

    for (int map = 0; map < 2; map++) {
        for (uint32_t n = 9; n <= 11; n++) {
            proto_buf_reset(&b);
            if (map)
                proto_mp_put_map(&b, n);
            else
                proto_mp_put_array(&b, n);
            for (uint32_t i = 0; i < n * (map ? 2 : 1); i++)
                proto_mp_put_uint(&b, i);
            int rc = proto_mp_validate(b.data, b.len, &l, NULL, &why);
            if (n <= 10) {
                assert_int_equal(rc, 0);
            } else {
                assert_int_equal(rc, PROTO_E_BAD_FRAME);
                assert_string_equal(why, "more elements than max_elements");
            }
        }
    }
    proto_buf_free(&b);
}

/* --- cross-check against msgpack-c --- */

static void gen(struct proto_buf *b, int depth)
{
    int kind = (int)(rnd() % (depth > 4 ? 9 : 12));
    uint8_t tmp[32];
    switch (kind) {
    case 0:
        proto_mp_put_nil(b);
        break;
    case 1:
        proto_mp_put_bool(b, rnd() & 1);
        break;
    case 2:
        proto_mp_put_int(b, (int64_t)(rnd() >> (rnd() % 64)) * ((rnd() & 1) ? -1 : 1));
        break;
    case 3:
        proto_mp_put_uint(b, rnd() >> (rnd() % 64));
        break;
    case 4: {
        uint64_t bits = rnd();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (d != d)
            d = 0.25;
        proto_mp_put_double(b, d);
        break;
    }
    case 5: { /* float32, written by hand */
        uint32_t bits = (uint32_t)rnd() & 0x3fffffffu;
        tmp[0] = 0xca;
        for (int i = 0; i < 4; i++)
            tmp[1 + i] = (uint8_t)(bits >> (24 - 8 * i));
        proto_buf_append(b, tmp, 5);
        break;
    }
    case 6:
    case 7: {
        size_t n = rnd() % 40;
        for (size_t i = 0; i < n; i++)
            tmp[i % 32] = (uint8_t)rnd();
        if (kind == 6)
            proto_mp_put_str(b, (const char *)tmp, n % 32);
        else
            proto_mp_put_bin(b, tmp, n % 32);
        break;
    }
    case 8: { /* ext: fixext 4 or ext 8 */
        if (rnd() & 1) {
            uint8_t e[] = {0xd6, (uint8_t)rnd(), 1, 2, 3, 4};
            proto_buf_append(b, e, sizeof e);
        } else {
            uint8_t e[] = {0xc7, 3, (uint8_t)rnd(), 9, 8, 7};
            proto_buf_append(b, e, sizeof e);
        }
        break;
    }
    case 9:
    case 10: {
        uint32_t n = (uint32_t)(rnd() % 6);
        proto_mp_put_array(b, n);
        for (uint32_t i = 0; i < n; i++)
            gen(b, depth + 1);
        break;
    }
    default: {
        uint32_t n = (uint32_t)(rnd() % 5);
        proto_mp_put_map(b, n);
        for (uint32_t i = 0; i < 2 * n; i++)
            gen(b, depth + 1);
        break;
    }
    }
}

/* Walks one value with our cursor and compares it with msgpack-c's object. */
static void compare(struct proto_mp_cursor *c, const msgpack_object *o)
{
    struct proto_mp_value v;
    assert_int_equal(proto_mp_next(c, &v), 0);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        assert_int_equal(v.type, PROTO_MP_NIL);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        assert_int_equal(v.type, PROTO_MP_BOOL);
        assert_int_equal(v.v.b, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: {
        uint64_t u;
        assert_int_equal(proto_mp_value_u64(&v, &u), 0);
        assert_true(u == o->via.u64);
        break;
    }
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        assert_int_equal(v.type, PROTO_MP_INT);
        assert_true(v.v.i == o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
        assert_int_equal(v.type, PROTO_MP_FLOAT32);
        assert_memory_equal(&v.v.f, &o->via.f64, sizeof(double));
        break;
    case MSGPACK_OBJECT_FLOAT64:
        assert_int_equal(v.type, PROTO_MP_FLOAT64);
        assert_memory_equal(&v.v.f, &o->via.f64, sizeof(double));
        break;
    case MSGPACK_OBJECT_STR:
        assert_int_equal(v.type, PROTO_MP_STR);
        assert_int_equal(v.v.str.len, o->via.str.size);
        assert_memory_equal(v.v.str.ptr, o->via.str.ptr, v.v.str.len);
        break;
    case MSGPACK_OBJECT_BIN:
        assert_int_equal(v.type, PROTO_MP_BIN);
        assert_int_equal(v.v.str.len, o->via.bin.size);
        assert_memory_equal(v.v.str.ptr, o->via.bin.ptr, v.v.str.len);
        break;
    case MSGPACK_OBJECT_EXT:
        assert_int_equal(v.type, PROTO_MP_EXT);
        assert_int_equal(v.ext_type, o->via.ext.type);
        assert_int_equal(v.v.str.len, o->via.ext.size);
        assert_memory_equal(v.v.str.ptr, o->via.ext.ptr, v.v.str.len);
        break;
    case MSGPACK_OBJECT_ARRAY:
        assert_int_equal(v.type, PROTO_MP_ARRAY);
        assert_int_equal(v.v.count, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            compare(c, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        assert_int_equal(v.type, PROTO_MP_MAP);
        assert_int_equal(v.v.count, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            compare(c, &o->via.map.ptr[i].key);
            compare(c, &o->via.map.ptr[i].val);
        }
        break;
    default:
        fail_msg("unexpected msgpack-c type %d", o->type);
    }
}

static void test_cross_check_msgpack_c(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    msgpack_unpacked u;
    for (int round = 0; round < 1000; round++) {
        proto_buf_reset(&b);
        int n = 1 + (int)(rnd() % 3); /* a few values back to back */
        for (int i = 0; i < n; i++)
            gen(&b, 0);
        struct proto_mp_cursor c;
        proto_mp_cursor_init(&c, b.data, b.len);
        size_t off = 0;
        msgpack_unpacked_init(&u);
        for (int i = 0; i < n; i++) {
            const uint8_t *at = c.pos;
            size_t used;
            assert_int_equal(proto_mp_validate(at, (size_t)(c.end - at), NULL, &used, NULL), 0);
            assert_int_equal(msgpack_unpack_next(&u, (const char *)b.data, b.len, &off),
                             MSGPACK_UNPACK_SUCCESS);
            compare(&c, &u.data);
            assert_int_equal(c.pos - b.data, off);
            assert_int_equal(used, (size_t)(c.pos - at));
            /* skip lands where the walk did */
            struct proto_mp_cursor s;
            proto_mp_cursor_init(&s, at, (size_t)(c.end - at));
            assert_int_equal(proto_mp_skip(&s, NULL), 0);
            assert_ptr_equal(s.pos, c.pos);
        }
        assert_true(proto_mp_at_end(&c));
        msgpack_unpacked_destroy(&u);

        /* Every truncation of the first value: both reject it. */
        size_t first;
        assert_int_equal(proto_mp_validate(b.data, b.len, NULL, &first, NULL), 0);
        for (size_t cut = 0; cut < first; cut++) {
            assert_int_equal(proto_mp_validate(b.data, cut, NULL, NULL, NULL), PROTO_E_BAD_FRAME);
            size_t o2 = 0;
            msgpack_unpacked_init(&u);
            assert_int_not_equal(msgpack_unpack_next(&u, (const char *)b.data, cut, &o2),
                                 MSGPACK_UNPACK_SUCCESS);
            msgpack_unpacked_destroy(&u);
        }
    }
    proto_buf_free(&b);
}

/* Random bytes: wherever msgpack-c parses a value, we agree on its size
 * (we are stricter only through limits, which these bytes cannot reach). */
static void test_cross_check_random_bytes(void **state)
{
    uint8_t bytes[24];
    msgpack_unpacked u;
    struct proto_limits l = {.max_frame = 1000, .max_depth = 1000, .max_elements = UINT32_MAX};
    for (int round = 0; round < 50000; round++) {
        size_t len = rnd() % sizeof bytes;
        for (size_t i = 0; i < len; i++) {
            bytes[i] = (uint8_t)rnd();
            /* msgpack-c allocates a claimed 32-bit count before checking it
             * against the input (we refuse those outright, see
             * test_validate_malformed); keep the oracle to 16-bit counts. */
            if (bytes[i] == 0xdd || bytes[i] == 0xdf)
                bytes[i]--;
        }
        size_t used = 0, off = 0;
        int ours = proto_mp_validate(bytes, len, &l, &used, NULL);
        msgpack_unpacked_init(&u);
        int theirs = msgpack_unpack_next(&u, (const char *)bytes, len, &off);
        msgpack_unpacked_destroy(&u);
        if (theirs == MSGPACK_UNPACK_SUCCESS) {
            assert_int_equal(ours, 0);
            assert_int_equal(used, off);
        } else {
            assert_int_equal(ours, PROTO_E_BAD_FRAME);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_boundaries),
        cmocka_unit_test(test_value_u64),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_str_bin_lengths),
        cmocka_unit_test(test_ext),
        cmocka_unit_test(test_containers_and_skip),
        cmocka_unit_test(test_validate_malformed),
        cmocka_unit_test(test_validate_limits),
        cmocka_unit_test(test_cross_check_msgpack_c),
        cmocka_unit_test(test_cross_check_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
