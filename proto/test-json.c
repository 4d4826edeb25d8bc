/* JSON tokenizer strictness, exact numbers, strings, binary modes, limits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/errors.h"
#include "proto/json.h"

static struct proto_json_doc doc;
static struct proto_buf mp, js, mp2;

static int setup(void **state)
{
    proto_json_doc_init(&doc);
    return 0;
}

static int teardown(void **state)
{
    proto_json_doc_free(&doc);
    proto_buf_free(&mp);
    proto_buf_free(&js);
    proto_buf_free(&mp2);
    return 0;
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* msgpack in `mp` -> JSON text (NUL-terminated in js), asserting success. */
static const char *to_json(struct proto_json_opts *o)
{
    struct proto_json_error err = {0};
    proto_buf_reset(&js);
    int rc = proto_msgpack_to_json(mp.data, mp.len, &js, o, &err);
    if (rc != 0)
        fail_msg("msgpack_to_json: %d %s", rc, err.text);
    proto_buf_append_byte(&js, 0);
    js.len--;
    return (const char *)js.data;
}

static int to_json_err(struct proto_json_opts *o, struct proto_json_error *err)
{
    proto_buf_reset(&js);
    proto_buf_append(&js, "keep", 4);
    int rc = proto_msgpack_to_json(mp.data, mp.len, &js, o, err);
    assert_int_equal(js.len, 4); /* restored */
    return rc;
}

/* JSON text -> msgpack in `out`, asserting success. */
static void from_json(const char *text, struct proto_buf *out, const struct proto_json_opts *o)
{
    struct proto_json_error err = {0};
    proto_buf_reset(out);
    int rc = proto_json_to_msgpack(&doc, text, strlen(text), out, o, &err);
    if (rc != 0)
        fail_msg("json_to_msgpack(%s): %d %s", text, rc, err.text);
}

static int parse_err(const char *text, size_t len, struct proto_json_error *err)
{
    memset(err, 0, sizeof *err);
    int rc = proto_json_parse(&doc, text, len, 0, err);
    if (rc == 0)
        fail_msg("accepted invalid JSON: %.*s", (int)len, text);
    assert_int_equal(err->code, rc);
    return rc;
}

static void read_value(const struct proto_buf *b, struct proto_mp_value *v)
{
    struct proto_mp_cursor c;
    proto_mp_cursor_init(&c, b->data, b->len);
    assert_int_equal(proto_mp_next(&c, v), 0);
}

static void test_tokens(void **state)
{
    const char *t = " {\"a\": [1, \"x\\n\", {\"b\": null}], \"c\\u00e9\": true, \"d\": {}} ";
    struct proto_json_error err;
    assert_int_equal(proto_json_parse(&doc, t, strlen(t), 0, &err), 0);
    /* {  a  [  1  "x\n"  {  b  null  }  c\u00e9  true  d  {} */
    assert_int_equal(doc.n, 12);
    assert_int_equal(doc.tok[0].type, PROTO_JSON_OBJECT);
    assert_int_equal(doc.tok[0].count, 3);
    assert_int_equal(doc.tok[0].next, 12);
    assert_int_equal(doc.tok[0].start, 1);
    assert_int_equal(doc.tok[0].len, strlen(t) - 2);
    assert_int_equal(doc.tok[2].type, PROTO_JSON_ARRAY);
    assert_int_equal(doc.tok[2].count, 3);
    assert_int_equal(doc.tok[2].next, 8);
    assert_int_equal(doc.tok[4].type, PROTO_JSON_STRING);
    assert_int_equal(doc.tok[4].escaped, 1);
    assert_int_equal(doc.tok[4].len, 3);
    assert_int_equal(doc.tok[5].count, 1);
    assert_int_equal(doc.tok[5].next, 8);
    assert_int_equal(doc.tok[3].type, PROTO_JSON_NUMBER);
    assert_int_equal(doc.tok[3].len, 1);

    assert_int_equal(proto_json_find(&doc, 0, "a"), 2);
    assert_int_equal(proto_json_find(&doc, 0, "c\xc3\xa9"), 9);
    assert_int_equal(proto_json_find(&doc, 0, "d"), 11);
    assert_int_equal(proto_json_find(&doc, 0, "b"), -1); /* not a member of the top */
    assert_int_equal(proto_json_find(&doc, 5, "b"), 7);
    assert_int_equal(proto_json_find(&doc, 2, "a"), -1); /* not an object */
    assert_int_equal(doc.tok[9].type, PROTO_JSON_TRUE);
    assert_true(proto_json_string_eq(&doc, 1, "a"));
    assert_false(proto_json_string_eq(&doc, 1, "ab"));
    assert_false(proto_json_string_eq(&doc, 1, ""));
    assert_true(proto_json_string_eq(&doc, 4, "x\n"));
    assert_false(proto_json_string_eq(&doc, 4, "x\\n"));
    assert_false(proto_json_string_eq(&doc, 3, "1")); /* a number */
    struct proto_buf s = PROTO_BUF_INIT;
    assert_int_equal(proto_json_string(&doc, 8, &s, &err), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.data, "c\xc3\xa9", 3);
    assert_int_equal(proto_json_string(&doc, 3, &s, &err), PROTO_E_BAD_REQUEST);
    int64_t i;
    assert_int_equal(proto_json_int64(&doc, 3, &i), 0);
    assert_int_equal(i, 1);
    assert_int_equal(proto_json_int64(&doc, 4, &i), PROTO_E_BAD_REQUEST);

    /* every escape and surrogate pairs */
    const char *e = "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u0000\"";
    assert_int_equal(proto_json_parse(&doc, e, strlen(e), 0, &err), 0);
    proto_buf_reset(&s);
    assert_int_equal(proto_json_string(&doc, 0, &s, &err), 0);
    const char want[] = "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    assert_int_equal(s.len, sizeof want); /* includes the decoded \u0000 */
    assert_memory_equal(s.data, want, sizeof want);
    proto_buf_free(&s);

    /* scalars at the top, with whitespace */
    static const char *ok[] = {"1",
                               " \t\r\n1\n",
                               "\"\"",
                               "[]",
                               "{}",
                               "-0",
                               "0.0e+0",
                               "1E5",
                               "-1.5e-3",
                               "true",
                               "false",
                               "null",
                               "[[],[{}]]",
                               "{\"\":{\"\":[]}}",
                               "\"\xf4\x8f\xbf\xbf\""};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++)
        if (proto_json_parse(&doc, ok[k], strlen(ok[k]), 0, &err) != 0)
            fail_msg("rejected %s: %s", ok[k], err.text);
}

static void test_strict_rejects(void **state)
{
    static const struct {
        const char *text;
        size_t off;
    } bad[] = {
        {"", 0},
        {"   ", 3},
        {"[1,]", 3},
        {"[,1]", 1},
        {"{\"a\":1,}", 7},
        {"{,}", 1},
        {"{\"a\"}", 4},
        {"{\"a\" 1}", 5},
        {"{1:2}", 1},
        {"[1 2]", 3},
        {"01", 0},
        {"-01", 0},
        {"00", 0},
        {"-", 1},
        {"1.", 2},
        {".5", 0},
        {"+1", 0},
        {"1e", 2},
        {"1e+", 3},
        {"NaN", 0},
        {"Infinity", 0},
        {"-Infinity", 1},
        {"'a'", 0},
        {"tru", 0},
        {"nul", 0},
        {"truex", 4},
        {"1 2", 2},
        {"[1]]", 3},
        {"[", 1},
        {"{", 1},
        {"{\"a\":", 5},
        {"\"abc", 0},
        {"\"a\tb\"", 2},
        {"\"a\nb\"", 2},
        {"\"\\x\"", 1},
        {"\"\\u12\"", 1},
        {"\"\\u12G4\"", 1},
        {"\"\\ud800\"", 1},
        {"\"\\ud800x\"", 1},
        {"\"\\ud800\\u0041\"", 1},
        {"\"\\udc00\"", 1},
        {"\"\\udc00\\ud800\"", 1},
        {"\"a\xc0\x80\"", 2},        /* overlong */
        {"\"ab\xed\xa0\x80\"", 3},   /* UTF-8 encoded surrogate */
        {"\"\xf5\x80\x80\x80\"", 1}, /* past U+10FFFF */
        {"\"\xf4\x90\x80\x80\"", 1}, /* past U+10FFFF */
        {"\"\xe2\x82\"", 1},         /* truncated sequence */
        {"\"\x80\"", 1},             /* lone continuation byte */
        {"\xef\xbb\xbf{}", 0},       /* BOM */
        {"[1]\x00", 3},
    };
    struct proto_json_error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i].text);
        if (i == sizeof bad / sizeof bad[0] - 1)
            len = 4; /* with its NUL */
        assert_int_equal(parse_err(bad[i].text, len, &err), PROTO_E_BAD_FRAME);
        if (err.offset != bad[i].off)
            fail_msg("%s: offset %zu, want %zu (%s)", bad[i].text, err.offset, bad[i].off,
                     err.text);
    }
    parse_err("\"a\xc0\x80\"", 5, &err);
    assert_string_equal(err.text, "invalid UTF-8 in string at offset 2");
    parse_err("\"\\ud800\"", 8, &err);
    assert_string_equal(err.text, "lone high surrogate \\ud800 at offset 1");
    parse_err("[1,]", 4, &err);
    assert_string_equal(err.text, "unexpected byte 0x5d at offset 3 (expected a JSON value)");
    parse_err("01", 2, &err);
    assert_string_equal(err.text, "number with a leading zero at offset 0");
}

static void nest_json(char *buf, int depth)
{
    for (int i = 0; i < depth; i++)
        buf[i] = '[';
    for (int i = 0; i < depth; i++)
        buf[depth + i] = ']';
    buf[2 * depth] = 0;
}

static void test_depth_and_token_limits(void **state)
{
    static char buf[2 * 2000 + 1];
    struct proto_json_error err;
    nest_json(buf, 5);
    assert_int_equal(proto_json_parse(&doc, buf, strlen(buf), 5, &err), 0);
    nest_json(buf, 6);
    assert_int_equal(proto_json_parse(&doc, buf, strlen(buf), 5, &err), PROTO_E_BAD_FRAME);
    assert_string_equal(err.text, "nesting deeper than max_depth 5 at offset 5");
    nest_json(buf, 64);
    assert_int_equal(proto_json_parse(&doc, buf, strlen(buf), 0, &err), 0);
    nest_json(buf, 65);
    assert_int_equal(proto_json_parse(&doc, buf, strlen(buf), 0, &err), PROTO_E_BAD_FRAME);
    nest_json(buf, 2000); /* capped at PROTO_HARD_MAX_DEPTH */
    assert_int_equal(proto_json_parse(&doc, buf, strlen(buf), UINT32_MAX, &err), PROTO_E_BAD_FRAME);
    nest_json(buf, PROTO_HARD_MAX_DEPTH);
    assert_int_equal(proto_json_parse(&doc, buf, strlen(buf), UINT32_MAX, &err), 0);
    /* deep nesting both ways */
    proto_buf_reset(&mp);
    assert_int_equal(proto_json_to_msgpack_tok(&doc, 0, &mp, NULL, &err), 0);
    struct proto_json_opts o = {.bin = PROTO_JSON_BIN_MARKER, .max_depth = UINT32_MAX};
    assert_string_equal(to_json(&o), buf);
    o.max_depth = 0;
    assert_int_equal(to_json_err(&o, &err), PROTO_E_BAD_FRAME);
    assert_string_equal(err.text, "bad msgpack: nesting deeper than max_depth");

    /* A bin's JSON stand-in is an object, one level deeper: a bin inside
     * max_depth arrays has no JSON form that would parse back. */
    static const uint8_t bin_at_2[] = {0x91, 0x91, 0xc4, 0x00}; /* [[bin]] */
    proto_buf_reset(&mp);
    proto_buf_append(&mp, bin_at_2, sizeof(bin_at_2));
    o.max_depth = 3;
    assert_string_equal(to_json(&o), "[[{\"$bin\":\"\"}]]");
    o.max_depth = 2;
    assert_int_equal(to_json_err(&o, &err), PROTO_E_BAD_FRAME);
    assert_non_null(strstr(err.text, "would nest deeper than max_depth 2"));

    doc.max_tokens = 3;
    assert_int_equal(proto_json_parse(&doc, "[1,2]", 5, 0, &err), 0);
    assert_int_equal(proto_json_parse(&doc, "[1,2,3]", 7, 0, &err), PROTO_E_LIMIT_EXCEEDED);
    assert_string_equal(err.text, "more than 3 JSON tokens at offset 5");
    doc.max_tokens = 0;
}

static void test_integers(void **state)
{
    static const struct {
        const char *text;
        enum proto_mp_type type;
        int64_t i;
        uint64_t u;
    } cases[] = {
        {"0", PROTO_MP_UINT, 0, 0},
        {"-0", PROTO_MP_UINT, 0, 0},
        {"-1", PROTO_MP_INT, -1, 0},
        {"9223372036854775807", PROTO_MP_UINT, 0, INT64_MAX},
        {"-9223372036854775808", PROTO_MP_INT, INT64_MIN, 0},
        {"9223372036854775808", PROTO_MP_UINT, 0, (uint64_t)INT64_MAX + 1},
        {"18446744073709551615", PROTO_MP_UINT, 0, UINT64_MAX},
        {"9007199254740993", PROTO_MP_UINT, 0, 9007199254740993ull}, /* 2^53 + 1 */
        {"-9007199254740993", PROTO_MP_INT, -9007199254740993ll, 0},
    };
    struct proto_mp_value v;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        from_json(cases[k].text, &mp, NULL);
        read_value(&mp, &v);
        assert_int_equal(v.type, cases[k].type);
        if (v.type == PROTO_MP_INT)
            assert_true(v.v.i == cases[k].i);
        else
            assert_true(v.v.u == cases[k].u);
        /* and back: the same digits */
        const char *want = strcmp(cases[k].text, "-0") == 0 ? "0" : cases[k].text;
        assert_string_equal(to_json(NULL), want);
    }
    /* beyond 64 bits: float64 */
    from_json("18446744073709551616", &mp, NULL);
    read_value(&mp, &v);
    assert_int_equal(v.type, PROTO_MP_FLOAT64);
    assert_true(v.v.f == 18446744073709551616.0);
    assert_string_equal(to_json(NULL), "18446744073709552000.0");
    from_json("-9223372036854775809", &mp, NULL);
    read_value(&mp, &v);
    assert_int_equal(v.type, PROTO_MP_FLOAT64);
    assert_true(v.v.f == -9223372036854775808.0);
    /* int64 helper */
    struct proto_json_error err;
    int64_t i;
    assert_int_equal(proto_json_parse(&doc,
                                      "[-9223372036854775808,9223372036854775807,"
                                      "9223372036854775808,1.0,1e2]",
                                      strlen("[-9223372036854775808,9223372036854775807,"
                                             "9223372036854775808,1.0,1e2]"),
                                      0, &err),
                     0);
    assert_int_equal(proto_json_int64(&doc, 1, &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(proto_json_int64(&doc, 2, &i), 0);
    assert_true(i == INT64_MAX);
    assert_int_equal(proto_json_int64(&doc, 3, &i), PROTO_E_BAD_REQUEST);
    assert_int_equal(proto_json_int64(&doc, 4, &i), PROTO_E_BAD_REQUEST);
    assert_int_equal(proto_json_int64(&doc, 5, &i), PROTO_E_BAD_REQUEST);
    /* out of range for a double */
    proto_buf_reset(&mp);
    assert_int_equal(proto_json_to_msgpack(&doc, "[1, 1e400]", 10, &mp, NULL, &err),
                     PROTO_E_BAD_FRAME);
    assert_int_equal(mp.len, 0);
    assert_int_equal(err.offset, 4);
    assert_int_equal(proto_json_to_msgpack(&doc, "-1e400", 6, &mp, NULL, &err), PROTO_E_BAD_FRAME);
}

static uint64_t bits_of(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* msgpack float64 -> JSON -> msgpack, bit for bit; returns the JSON. */
static const char *double_round_trip(double d)
{
    proto_buf_reset(&mp);
    proto_mp_put_double(&mp, d);
    const char *text = to_json(NULL);
    assert_true(strchr(text, '.') || strchr(text, 'e'));
    from_json(text, &mp2, NULL);
    struct proto_mp_value v;
    read_value(&mp2, &v);
    assert_int_equal(v.type, PROTO_MP_FLOAT64);
    if (bits_of(v.v.f) != bits_of(d))
        fail_msg("%.17g -> %s -> %.17g", d, text, v.v.f);
    assert_int_equal(mp2.len, mp.len);
    assert_memory_equal(mp2.data, mp.data, mp.len);
    return text;
}

static void test_floats(void **state)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1e300, "1e+300"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {5e-324, "5e-324"},
        {1.0, "1.0"},
        {-1.5, "-1.5"},
        {1e21, "1e+21"},
        {123456.789, "123456.789"},
        {9007199254740992.0, "9007199254740992.0"},
        {0.30000000000000004, "0.30000000000000004"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {1e-7, "1e-7"},
        {1.5e-7, "1.5e-7"},
        {0.000001, "0.000001"},
        {1.5e20, "150000000000000000000.0"},
        {-2.5e-300, "-2.5e-300"},
        {100.0, "100.0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        assert_string_equal(double_round_trip(cases[k].d), cases[k].text);
    for (int k = 0; k < 20000; k++) {
        uint64_t b = rnd();
        double d;
        memcpy(&d, &b, sizeof d);
        if (isfinite(d))
            double_round_trip(d);
    }

    /* float32: the shortest text for the float, read back as float64 */
    static const struct {
        float f;
        const char *text;
    } singles[] = {
        {0.1f, "0.1"},
        {1.0f, "1.0"},
        {16777216.0f, "16777216.0"},
        {3.4028235e38f, "3.4028235e+38"},
        {1e-45f, "1e-45"},
        {-2.5f, "-2.5"},
    };
    for (size_t k = 0; k < sizeof singles / sizeof singles[0]; k++) {
        uint32_t bits;
        memcpy(&bits, &singles[k].f, 4);
        uint8_t raw[5] = {0xca, (uint8_t)(bits >> 24), (uint8_t)(bits >> 16), (uint8_t)(bits >> 8),
                          (uint8_t)bits};
        proto_buf_reset(&mp);
        proto_buf_append(&mp, raw, 5);
        assert_string_equal(to_json(NULL), singles[k].text);
        from_json(singles[k].text, &mp2, NULL);
        struct proto_mp_value v;
        read_value(&mp2, &v);
        assert_true((float)v.v.f == singles[k].f);
    }
    for (int k = 0; k < 20000; k++) {
        uint32_t bits = (uint32_t)rnd();
        float f;
        memcpy(&f, &bits, 4);
        if (!isfinite(f))
            continue;
        uint8_t raw[5] = {0xca, (uint8_t)(bits >> 24), (uint8_t)(bits >> 16), (uint8_t)(bits >> 8),
                          (uint8_t)bits};
        proto_buf_reset(&mp);
        proto_buf_append(&mp, raw, 5);
        from_json(to_json(NULL), &mp2, NULL);
        struct proto_mp_value v;
        read_value(&mp2, &v);
        assert_true((float)v.v.f == f);
    }

    /* NaN and infinities have no JSON form */
    struct proto_json_error err;
    double bad[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        proto_buf_reset(&mp);
        proto_mp_put_array(&mp, 2);
        proto_mp_put_uint(&mp, 1);
        proto_mp_put_double(&mp, bad[k]);
        assert_int_equal(to_json_err(NULL, &err), PROTO_E_NOT_JSON);
        assert_int_equal(err.offset, 2);
    }
    proto_buf_reset(&mp);
    proto_buf_append(&mp, "\xca\x7f\xc0\x00\x00", 5); /* float32 NaN */
    assert_int_equal(to_json_err(NULL, &err), PROTO_E_NOT_JSON);
    assert_string_equal(err.text, "NaN at offset 0 has no JSON form");
}

static void test_strings(void **state)
{
    struct proto_json_error err;
    proto_buf_reset(&mp);
    const char s[] = "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z";
    proto_mp_put_str(&mp, s, sizeof s - 1);
    assert_string_equal(to_json(NULL), "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f "
                                       "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\u0000z\"");
    from_json((const char *)js.data, &mp2, NULL);
    assert_int_equal(mp2.len, mp.len);
    assert_memory_equal(mp2.data, mp.data, mp.len);

    /* invalid UTF-8: rejected with the offset in the msgpack input */
    static const char *invalid[] = {"ab\xc0\x80", "ab\xed\xa0\x80",     "ab\xff",
                                    "ab\xe2\x82", "ab\xf4\x90\x80\x80", "ab\x80"};
    for (size_t k = 0; k < sizeof invalid / sizeof invalid[0]; k++) {
        proto_buf_reset(&mp);
        proto_mp_put_array(&mp, 1);
        proto_mp_put_cstr(&mp, invalid[k]);
        assert_int_equal(to_json_err(NULL, &err), PROTO_E_NOT_JSON);
        assert_int_equal(err.offset, 4);
        assert_string_equal(err.text, "invalid UTF-8 in string at offset 4");
    }
    /* keys are checked too, and must be strings */
    proto_buf_reset(&mp);
    proto_mp_put_map(&mp, 1);
    proto_mp_put_cstr(&mp, "\xff");
    proto_mp_put_nil(&mp);
    assert_int_equal(to_json_err(NULL, &err), PROTO_E_NOT_JSON);
    proto_buf_reset(&mp);
    proto_mp_put_map(&mp, 2);
    proto_mp_put_cstr(&mp, "a");
    proto_mp_put_nil(&mp);
    proto_mp_put_uint(&mp, 1);
    proto_mp_put_nil(&mp);
    assert_int_equal(to_json_err(NULL, &err), PROTO_E_NOT_JSON);
    assert_int_equal(err.offset, 4);
    assert_string_equal(err.text, "map key must be a string (offset 4)");
    /* ext */
    proto_buf_reset(&mp);
    proto_buf_append(&mp, "\x91\xd4\x05\x00", 4);
    assert_int_equal(to_json_err(NULL, &err), PROTO_E_NOT_JSON);
    assert_string_equal(err.text, "ext type 5 at offset 1 has no JSON form");
    /* malformed msgpack and trailing bytes */
    proto_buf_reset(&mp);
    proto_buf_append(&mp, "\x92\x01", 2);
    assert_int_equal(to_json_err(NULL, &err), PROTO_E_BAD_FRAME);
    proto_buf_reset(&mp);
    proto_buf_append(&mp, "\x01\x02", 2);
    assert_int_equal(to_json_err(NULL, &err), PROTO_E_BAD_FRAME);
    assert_int_equal(err.offset, 1);
}

static void test_canonical_text(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {" { \"a\" : [ 1 , -2 , 3.5 , \"x\" , true , false , null , { } ] , \"b\" : { \"c\" : [ ] "
         "} } ",
         "{\"a\":[1,-2,3.5,\"x\",true,false,null,{}],\"b\":{\"c\":[]}}"},
        {"\"\\u00e9\\/\"", "\"\xc3\xa9/\""},
        {"1E2", "100.0"},
        {"2.50", "2.5"},
        {"[1e-400]", "[0.0]"},
        {"{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}"}, /* duplicates pass through */
        {"[[[[]]],{}]", "[[[[]]],{}]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        from_json(cases[k].in, &mp, NULL);
        assert_string_equal(to_json(NULL), cases[k].out);
    }
    /* a subtree on its own */
    const char *t = "{\"op\":\"request\",\"payload\":{\"x\":[1,2]},\"id\":3}";
    struct proto_json_error err;
    assert_int_equal(proto_json_parse(&doc, t, strlen(t), 0, &err), 0);
    int p = proto_json_find(&doc, 0, "payload");
    assert_true(p > 0);
    proto_buf_reset(&mp);
    assert_int_equal(proto_json_to_msgpack_tok(&doc, (uint32_t)p, &mp, NULL, &err), 0);
    assert_string_equal(to_json(NULL), "{\"x\":[1,2]}");
    assert_int_equal(proto_json_to_msgpack_tok(&doc, 99, &mp, NULL, &err), PROTO_E_INTERNAL);
}

static void test_bin_marker(void **state)
{
    static const struct {
        const char *bytes;
        const char *b64;
    } vectors[] = {
        /* RFC 4648 section 10 */
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    char want[64];
    for (size_t k = 0; k < sizeof vectors / sizeof vectors[0]; k++) {
        proto_buf_reset(&mp);
        proto_mp_put_bin(&mp, vectors[k].bytes, strlen(vectors[k].bytes));
        snprintf(want, sizeof want, "{\"$bin\":\"%s\"}", vectors[k].b64);
        assert_string_equal(to_json(NULL), want);
        from_json(want, &mp2, NULL);
        assert_int_equal(mp2.len, mp.len);
        assert_memory_equal(mp2.data, mp.data, mp.len);
    }
    /* every byte value, nested */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    proto_buf_reset(&mp);
    proto_mp_put_map(&mp, 1);
    proto_mp_put_cstr(&mp, "k");
    proto_mp_put_array(&mp, 2);
    proto_mp_put_bin(&mp, all, 256);
    proto_mp_put_bin(&mp, all + 1, 255);
    from_json(to_json(NULL), &mp2, NULL);
    assert_int_equal(mp2.len, mp.len);
    assert_memory_equal(mp2.data, mp.data, mp.len);

    /* escapes in the marker are decoded first */
    from_json("{\"\\u0024bin\":\"Zm\\u0039v\"}", &mp2, NULL);
    struct proto_mp_value v;
    read_value(&mp2, &v);
    assert_int_equal(v.type, PROTO_MP_BIN);
    assert_int_equal(v.v.str.len, 3);
    from_json("{\"$bin\":\"\\/w==\"}", &mp2, NULL);
    read_value(&mp2, &v);
    assert_int_equal(v.type, PROTO_MP_BIN);
    assert_int_equal(v.v.str.ptr[0], 0xff);

    /* anything else is an ordinary object */
    static const char *plain[] = {
        "{\"$bin\":\"Zm9\"}",          "{\"$bin\":\"Zg=\"}",    "{\"$bin\":\"Zh==\"}",
        "{\"$bin\":\"Zm9v\",\"x\":1}", "{\"$bin\":1}",          "{\"$bin\":\"Zm 9v\"}",
        "{\"$bin\":\"Zg==Zg==\"}",     "{\"$BIN\":\"Zm9v\"}",   "{\"$bin\":\"Z===\"}",
        "{\"$bin\":\"Zm9v\\u00e9\"}",  "{\"$bin\":[\"Zm9v\"]}", "{\"$bin\":\"Zm-_\"}",
    };
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
        from_json(plain[k], &mp2, NULL);
        read_value(&mp2, &v);
        if (v.type != PROTO_MP_MAP)
            fail_msg("%s became type %d", plain[k], v.type);
    }
    /* the marker only applies in MARKER mode */
    struct proto_json_opts o = {.bin = PROTO_JSON_BIN_REJECT};
    from_json("{\"$bin\":\"Zm9v\"}", &mp2, &o);
    read_value(&mp2, &v);
    assert_int_equal(v.type, PROTO_MP_MAP);
    /* and REJECT refuses bin the other way */
    struct proto_json_error err;
    proto_buf_reset(&mp);
    proto_mp_put_array(&mp, 1);
    proto_mp_put_bin(&mp, "x", 1);
    assert_int_equal(to_json_err(&o, &err), PROTO_E_NOT_JSON);
    assert_string_equal(err.text, "binary at offset 1 has no JSON form");
}

static void test_bin_placeholder(void **state)
{
    struct proto_span att[4];
    struct proto_json_opts o = {
        .bin = PROTO_JSON_BIN_PLACEHOLDER, .attachments = att, .max_attachments = 4};
    /* ["ev", bin A, {"x": [bin B, {"y": bin C}]}, "tail"] */
    proto_buf_reset(&mp);
    proto_mp_put_array(&mp, 4);
    proto_mp_put_cstr(&mp, "ev");
    proto_mp_put_bin(&mp, "AAA", 3);
    proto_mp_put_map(&mp, 1);
    proto_mp_put_cstr(&mp, "x");
    proto_mp_put_array(&mp, 2);
    proto_mp_put_bin(&mp, "", 0);
    proto_mp_put_map(&mp, 1);
    proto_mp_put_cstr(&mp, "y");
    proto_mp_put_bin(&mp, "\x00\xff", 2);
    proto_mp_put_cstr(&mp, "tail");
    const char *text = to_json(&o);
    assert_string_equal(text, "[\"ev\",{\"_placeholder\":true,\"num\":0},{\"x\":[{\"_placeholder\":"
                              "true,\"num\":1},{\"y\":{\"_placeholder\":true,\"num\":2}}]},"
                              "\"tail\"]");
    assert_int_equal(o.n_attachments, 3);
    assert_int_equal(att[0].len, 3);
    assert_memory_equal(att[0].ptr, "AAA", 3);
    assert_true(att[0].ptr > mp.data && att[0].ptr < mp.data + mp.len); /* zero-copy */
    assert_int_equal(att[1].len, 0);
    assert_int_equal(att[2].len, 2);
    assert_memory_equal(att[2].ptr, "\x00\xff", 2);

    /* and back: placeholders replaced by the attachments */
    from_json(text, &mp2, &o);
    assert_int_equal(mp2.len, mp.len);
    assert_memory_equal(mp2.data, mp.data, mp.len);

    /* numbering continues from n_attachments (several values, one packet) */
    proto_buf_reset(&mp);
    proto_mp_put_bin(&mp, "Z", 1);
    assert_string_equal(to_json(&o), "{\"_placeholder\":true,\"num\":3}");
    assert_int_equal(o.n_attachments, 4);
    /* more than max_attachments: refused, count restored */
    struct proto_json_error err;
    assert_int_equal(to_json_err(&o, &err), PROTO_E_LIMIT_EXCEEDED);
    assert_int_equal(o.n_attachments, 4);
    o.n_attachments = 1;
    proto_buf_reset(&mp);
    proto_mp_put_array(&mp, 4);
    for (int i = 0; i < 4; i++)
        proto_mp_put_bin(&mp, "q", 1);
    assert_int_equal(to_json_err(&o, &err), PROTO_E_LIMIT_EXCEEDED);
    assert_int_equal(o.n_attachments, 1);

    /* JSON side: exactly the two members, in either order */
    o.n_attachments = 3;
    struct proto_mp_value v;
    from_json("{\"num\":0,\"_placeholder\":true}", &mp2, &o);
    read_value(&mp2, &v);
    assert_int_equal(v.type, PROTO_MP_BIN);
    assert_int_equal(v.v.str.len, 3);
    static const char *plain[] = {
        "{\"_placeholder\":false,\"num\":0}",        "{\"_placeholder\":true,\"num\":1.0}",
        "{\"_placeholder\":true,\"num\":\"0\"}",     "{\"_placeholder\":true}",
        "{\"_placeholder\":true,\"num\":0,\"x\":1}", "{\"_placeholder\":[true],\"num\":0}",
        "{\"placeholder\":true,\"num\":0}",
    };
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
        from_json(plain[k], &mp2, &o);
        read_value(&mp2, &v);
        if (v.type != PROTO_MP_MAP)
            fail_msg("%s became type %d", plain[k], v.type);
    }
    /* num out of range: an error, output restored */
    static const char *range[] = {"[1,{\"_placeholder\":true,\"num\":3}]",
                                  "{\"_placeholder\":true,\"num\":-1}",
                                  "{\"_placeholder\":true,\"num\":99999999999999999999}"};
    for (size_t k = 0; k < sizeof range / sizeof range[0]; k++) {
        proto_buf_reset(&mp2);
        int rc = proto_json_to_msgpack(&doc, range[k], strlen(range[k]), &mp2, &o, &err);
        if (k == 2) { /* not an integer that fits: an ordinary object */
            assert_int_equal(rc, 0);
            continue;
        }
        assert_int_equal(rc, PROTO_E_BAD_FRAME);
        assert_int_equal(mp2.len, 0);
    }
    /* placeholders are ordinary objects in MARKER mode */
    from_json("{\"_placeholder\":true,\"num\":0}", &mp2, NULL);
    read_value(&mp2, &v);
    assert_int_equal(v.type, PROTO_MP_MAP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_strict_rejects),
        cmocka_unit_test(test_depth_and_token_limits),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_canonical_text),
        cmocka_unit_test(test_bin_marker),
        cmocka_unit_test(test_bin_placeholder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
