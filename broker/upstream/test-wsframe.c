/* wsframe: the RFC 6455 examples (section 5.7) and every rule a server can
 * break, each fed whole and split at every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/wsframe.h"

#define MAX_MESSAGE (1u << 20)

/* ---- a recorder: the events of a byte stream, fed in pieces ------------- */

struct recorded {
    enum wsframe_kind kind;
    bool binary;
    uint16_t code;
    uint8_t *data;
    size_t len;
    const char *error;
};

struct recording {
    struct recorded ev[64];
    size_t n;
    bool failed;
};

static void recording_free(struct recording *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->ev[i].data);
    r->n = 0;
}

/* Feeds stream[0..len) in pieces ending at the offsets of `cuts` (sorted,
 * the last one len), keeping unconsumed bytes as a transport would. */
static void feed(struct wsframe_parser *p, const uint8_t *stream, size_t len, const size_t *cuts,
                 size_t ncuts, struct recording *r)
{
    uint8_t *buf = malloc(len + 1);
    size_t have = 0, used = 0, from = 0;

    assert_non_null(buf);
    memset(r, 0, sizeof(*r));
    for (size_t c = 0; c < ncuts && !r->failed; c++) {
        memcpy(buf + have, stream + from, cuts[c] - from);
        have += cuts[c] - from;
        from = cuts[c];
        for (;;) {
            struct wsframe_event ev;
            size_t n = wsframe_parse(p, buf + used, have - used, &ev);

            assert_true(n <= have - used);
            used += n;
            if (ev.kind == WSFRAME_NEED_MORE) {
                if (ev.need)
                    assert_true(ev.need > have - used);
                break;
            }
            assert_true(r->n < 64);
            struct recorded *e = &r->ev[r->n++];
            e->kind = ev.kind;
            e->binary = ev.binary;
            e->code = ev.code;
            e->len = ev.len;
            e->error = ev.error;
            e->data = malloc(ev.len + 1);
            assert_non_null(e->data);
            if (ev.len)
                memcpy(e->data, ev.data, ev.len);
            if (ev.kind == WSFRAME_ERROR) {
                r->failed = true;
                break;
            }
        }
    }
    free(buf);
}

static void assert_same(const struct recording *a, const struct recording *b, size_t split)
{
    if (a->n != b->n)
        fail_msg("split at %zu: %zu events, whole: %zu", split, b->n, a->n);
    for (size_t i = 0; i < a->n; i++) {
        if (a->ev[i].kind != b->ev[i].kind || a->ev[i].len != b->ev[i].len ||
            a->ev[i].code != b->ev[i].code || a->ev[i].binary != b->ev[i].binary ||
            memcmp(a->ev[i].data, b->ev[i].data, a->ev[i].len) != 0)
            fail_msg("split at %zu: event %zu differs (kind %d/%d, len %zu/%zu, code %u/%u)", split,
                     i, b->ev[i].kind, a->ev[i].kind, b->ev[i].len, a->ev[i].len, b->ev[i].code,
                     a->ev[i].code);
    }
}

/* Parses the stream whole, then split in two at every offset, then one
 * byte at a time: the events must always be the same. Returns them (whole). */
static void parse_all_ways(const uint8_t *stream, size_t len, struct recording *whole)
{
    struct wsframe_parser *p = wsframe_parser_new(MAX_MESSAGE);
    size_t cut[2], *bytes = malloc((len + 1) * sizeof(size_t));

    assert_non_null(p);
    assert_non_null(bytes);
    cut[0] = len;
    feed(p, stream, len, cut, 1, whole);
    wsframe_parser_free(p);
    for (size_t s = 1; s < len; s++) {
        struct recording r;
        p = wsframe_parser_new(MAX_MESSAGE);
        cut[0] = s;
        cut[1] = len;
        feed(p, stream, len, cut, 2, &r);
        assert_same(whole, &r, s);
        recording_free(&r);
        wsframe_parser_free(p);
    }
    for (size_t i = 0; i < len; i++)
        bytes[i] = i + 1;
    {
        struct recording r;
        p = wsframe_parser_new(MAX_MESSAGE);
        feed(p, stream, len, bytes, len, &r);
        assert_same(whole, &r, 1);
        recording_free(&r);
        wsframe_parser_free(p);
    }
    free(bytes);
}

#define EXPECT_EVENT(rec, i, k, str)                                                               \
    do {                                                                                           \
        assert_int_equal((rec)->ev[i].kind, (k));                                                  \
        assert_int_equal((rec)->ev[i].len, strlen(str));                                           \
        assert_memory_equal((rec)->ev[i].data, (str), strlen(str));                                \
    } while (0)

/* ---- RFC 6455 5.7 ---------------------------------------------------------- */

static void test_rfc_single_unmasked_text(void **state)
{
    static const uint8_t f[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    struct recording r;

    parse_all_ways(f, sizeof(f), &r);
    assert_int_equal(r.n, 1);
    EXPECT_EVENT(&r, 0, WSFRAME_MESSAGE, "Hello");
    assert_false(r.ev[0].binary);
    recording_free(&r);
}

static void test_rfc_masked_text_is_what_we_send_and_refused_from_a_server(void **state)
{
    static const uint8_t rfc[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t out[WSFRAME_MAX_HEADER + 5];
    size_t h = wsframe_put_header(out, WSFRAME_OP_TEXT, 5, key);
    struct recording r;

    assert_int_equal(h, 6);
    memcpy(out + h, "Hello", 5);
    wsframe_mask(out + h, 5, key, 0);
    assert_memory_equal(out, rfc, sizeof(rfc));

    parse_all_ways(rfc, sizeof(rfc), &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].kind, WSFRAME_ERROR);
    assert_int_equal(r.ev[0].code, WSFRAME_CLOSE_PROTOCOL);
    recording_free(&r);
}

static void test_rfc_fragmented_text(void **state)
{
    static const uint8_t f[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    struct recording r;

    parse_all_ways(f, sizeof(f), &r);
    assert_int_equal(r.n, 1);
    EXPECT_EVENT(&r, 0, WSFRAME_MESSAGE, "Hello");
    recording_free(&r);
}

static void test_rfc_ping_and_masked_pong(void **state)
{
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t out[16];
    size_t h = wsframe_put_header(out, WSFRAME_OP_PONG, 5, key);
    struct recording r;

    memcpy(out + h, "Hello", 5);
    wsframe_mask(out + h, 5, key, 0);
    assert_memory_equal(out, pong, sizeof(pong));
    parse_all_ways(ping, sizeof(ping), &r);
    assert_int_equal(r.n, 1);
    EXPECT_EVENT(&r, 0, WSFRAME_PING, "Hello");
    recording_free(&r);
}

static void test_rfc_256_and_64k_binary(void **state)
{
    size_t len = 4 + 256 + 10 + 65536;
    uint8_t *f = malloc(len);
    struct recording r;
    struct wsframe_parser *p = wsframe_parser_new(MAX_MESSAGE);
    struct wsframe_event ev;
    size_t n;

    assert_non_null(f);
    f[0] = 0x82;
    f[1] = 0x7e;
    f[2] = 0x01;
    f[3] = 0x00;
    for (size_t i = 0; i < 256; i++)
        f[4 + i] = (uint8_t)i;
    memcpy(f + 260, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    for (size_t i = 0; i < 65536; i++)
        f[270 + i] = (uint8_t)(i * 7);

    /* Whole, and cut inside each header and payload (every split of 64 KiB
     * would be slow; the small frames below get every split). */
    n = wsframe_parse(p, f, 3, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.kind, WSFRAME_NEED_MORE);
    n = wsframe_parse(p, f, 100, &ev);
    assert_int_equal(ev.kind, WSFRAME_NEED_MORE);
    assert_int_equal(ev.need, 260);
    n = wsframe_parse(p, f, len, &ev);
    assert_int_equal(n, 260);
    assert_int_equal(ev.kind, WSFRAME_MESSAGE);
    assert_true(ev.binary);
    assert_int_equal(ev.len, 256);
    assert_ptr_equal(ev.data, f + 4); /* in place */
    n = wsframe_parse(p, f + 260, 9, &ev);
    assert_int_equal(ev.kind, WSFRAME_NEED_MORE);
    assert_int_equal(n, 0);
    n = wsframe_parse(p, f + 260, 11, &ev);
    assert_int_equal(ev.kind, WSFRAME_NEED_MORE);
    assert_int_equal(ev.need, 65546);
    n = wsframe_parse(p, f + 260, len - 260, &ev);
    assert_int_equal(n, 65546);
    assert_int_equal(ev.kind, WSFRAME_MESSAGE);
    assert_int_equal(ev.len, 65536);
    assert_memory_equal(ev.data, f + 270, 65536);
    wsframe_parser_free(p);

    /* A 300-byte one with every split. */
    f[0] = 0x82;
    f[1] = 0x7e;
    f[2] = 0x01;
    f[3] = 0x2c;
    parse_all_ways(f, 304, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].len, 300);
    recording_free(&r);
    free(f);
}

/* ---- control frames between fragments; empty messages ----------------- */

static void test_control_frames_between_fragments(void **state)
{
    static const uint8_t f[] = {
        0x01, 0x02, 'a',  'b',                   /* text, not final */
        0x89, 0x01, 'P',                         /* ping */
        0x00, 0x02, 'c',  'd',                   /* continuation */
        0x8a, 0x00,                              /* pong, empty */
        0x80, 0x01, 'e',                         /* last */
        0x82, 0x00,                              /* empty binary */
        0x81, 0x00,                              /* empty text */
        0x02, 0x00, 0x00, 0x00, 0x80, 0x00,      /* empty binary in three empty fragments */
        0x88, 0x05, 0x03, 0xe8, 'b',  'y',  'e', /* close 1000 "bye" */
    };
    struct recording r;

    parse_all_ways(f, sizeof(f), &r);
    assert_int_equal(r.n, 7);
    EXPECT_EVENT(&r, 0, WSFRAME_PING, "P");
    EXPECT_EVENT(&r, 1, WSFRAME_PONG, "");
    EXPECT_EVENT(&r, 2, WSFRAME_MESSAGE, "abcde");
    EXPECT_EVENT(&r, 3, WSFRAME_MESSAGE, "");
    assert_true(r.ev[3].binary);
    EXPECT_EVENT(&r, 4, WSFRAME_MESSAGE, "");
    assert_false(r.ev[4].binary);
    EXPECT_EVENT(&r, 5, WSFRAME_MESSAGE, "");
    assert_true(r.ev[5].binary);
    EXPECT_EVENT(&r, 6, WSFRAME_CLOSE, "bye");
    assert_int_equal(r.ev[6].code, 1000);
    recording_free(&r);
}

static void test_reassembled_message_is_terminated(void **state)
{
    static const uint8_t f[] = {0x01, 0x01, 'x', 0x80, 0x01, 'y'};
    struct wsframe_parser *p = wsframe_parser_new(16);
    struct wsframe_event ev;

    assert_int_equal(wsframe_parse(p, f, sizeof(f), &ev), sizeof(f));
    assert_int_equal(ev.kind, WSFRAME_MESSAGE);
    assert_int_equal(ev.len, 2);
    assert_int_equal(ev.data[2], 0);
    assert_true(wsframe_parser_buffered(p) > 0);
    wsframe_parser_trim(p);
    assert_int_equal(wsframe_parser_buffered(p), 0);
    wsframe_parser_free(p);
}

static void test_close_without_code(void **state)
{
    static const uint8_t f[] = {0x88, 0x00};
    struct recording r;

    parse_all_ways(f, sizeof(f), &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].kind, WSFRAME_CLOSE);
    assert_int_equal(r.ev[0].code, WSFRAME_CLOSE_NO_STATUS);
    recording_free(&r);
}

/* ---- what a server may not send ------------------------------------------ */

struct bad_case {
    const char *what;
    uint8_t bytes[32];
    size_t len;
    uint16_t code;
    size_t events_before; /* good events before the error */
};

static void test_protocol_errors(void **state)
{
    static const struct bad_case cases[] = {
        {"RSV1", {0xc1, 0x00}, 2, 1002, 0},
        {"RSV2", {0xa1, 0x00}, 2, 1002, 0},
        {"RSV3", {0x91, 0x00}, 2, 1002, 0},
        {"opcode 3", {0x83, 0x00}, 2, 1002, 0},
        {"opcode 7", {0x87, 0x00}, 2, 1002, 0},
        {"opcode 0xb", {0x8b, 0x00}, 2, 1002, 0},
        {"opcode 0xf", {0x8f, 0x00}, 2, 1002, 0},
        {"masked", {0x81, 0x81, 1, 2, 3, 4, 'x'}, 7, 1002, 0},
        {"fragmented ping", {0x09, 0x00}, 2, 1002, 0},
        {"ping of 126", {0x89, 0x7e, 0x00, 0x7e}, 4, 1002, 0},
        {"continuation first", {0x80, 0x01, 'x'}, 3, 1002, 0},
        {"new message in a fragmented one", {0x01, 0x01, 'a', 0x81, 0x01, 'b'}, 6, 1002, 0},
        {"close with 1 byte", {0x88, 0x01, 0x03}, 3, 1002, 0},
        {"close code 999", {0x88, 0x02, 0x03, 0xe7}, 4, 1002, 0},
        {"close code 1004", {0x88, 0x02, 0x03, 0xec}, 4, 1002, 0},
        {"close code 1005", {0x88, 0x02, 0x03, 0xed}, 4, 1002, 0},
        {"close code 1006", {0x88, 0x02, 0x03, 0xee}, 4, 1002, 0},
        {"close code 1015", {0x88, 0x02, 0x03, 0xf7}, 4, 1002, 0},
        {"close code 2999", {0x88, 0x02, 0x0b, 0xb7}, 4, 1002, 0},
        {"close code 5000", {0x88, 0x02, 0x13, 0x88}, 4, 1002, 0},
        {"close reason not UTF-8", {0x88, 0x04, 0x03, 0xe8, 0xc0, 0xaf}, 6, 1007, 0},
        {"text not UTF-8", {0x81, 0x02, 0xc3, 0x28}, 4, 1007, 0},
        {"text: a surrogate", {0x81, 0x03, 0xed, 0xa0, 0x80}, 5, 1007, 0},
        {"text: fragments not UTF-8 together", {0x01, 0x01, 0xe2, 0x80, 0x01, 0x28}, 6, 1007, 0},
        {"64-bit length top bit", {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 1002, 0},
        {"error after a good message", {0x81, 0x01, 'a', 0xc1, 0x00}, 5, 1002, 1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        struct recording r;

        parse_all_ways(c->bytes, c->len, &r);
        if (r.n != c->events_before + 1 || r.ev[r.n - 1].kind != WSFRAME_ERROR)
            fail_msg("%s: %zu events, the last of kind %d (expected %zu then an error)", c->what,
                     r.n, r.n ? (int)r.ev[r.n - 1].kind : -1, c->events_before);
        if (r.ev[r.n - 1].code != c->code)
            fail_msg("%s: close code %u, expected %u", c->what, r.ev[r.n - 1].code, c->code);
        assert_non_null(r.ev[r.n - 1].error);
        recording_free(&r);
    }
}

static void test_valid_close_codes(void **state)
{
    static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint8_t f[4] = {0x88, 0x02, (uint8_t)(ok[i] >> 8), (uint8_t)ok[i]};
        struct recording r;

        if (!wsframe_close_code_valid(ok[i]))
            fail_msg("code %u refused", ok[i]);
        parse_all_ways(f, sizeof(f), &r);
        assert_int_equal(r.ev[0].kind, WSFRAME_CLOSE);
        assert_int_equal(r.ev[0].code, ok[i]);
        recording_free(&r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (wsframe_close_code_valid(bad[i]))
            fail_msg("code %u accepted", bad[i]);
}

static void test_errors_are_sticky(void **state)
{
    static const uint8_t bad[] = {0xc1, 0x00};
    static const uint8_t good[] = {0x81, 0x01, 'a'};
    struct wsframe_parser *p = wsframe_parser_new(16);
    struct wsframe_event ev;

    assert_int_equal(wsframe_parse(p, bad, sizeof(bad), &ev), 0);
    assert_int_equal(ev.kind, WSFRAME_ERROR);
    assert_int_equal(wsframe_parse(p, good, sizeof(good), &ev), 0);
    assert_int_equal(ev.kind, WSFRAME_ERROR);
    assert_int_equal(ev.code, 1002);
    wsframe_parser_free(p);
}

static void test_size_limit(void **state)
{
    /* 10 allowed: a 10-byte message passes, 11 fails from the header alone,
     * fragments add up. */
    static const uint8_t ten[] = {0x82, 0x0a, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    static const uint8_t eleven_header[] = {0x82, 0x0b};
    static const uint8_t frags[] = {0x02, 0x06, 0, 1, 2, 3, 4, 5, 0x80, 0x05, 6, 7, 8, 9, 10};
    static const uint8_t huge[] = {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct wsframe_parser *p = wsframe_parser_new(10);
    struct wsframe_event ev;

    assert_int_equal(wsframe_parse(p, ten, sizeof(ten), &ev), sizeof(ten));
    assert_int_equal(ev.kind, WSFRAME_MESSAGE);
    assert_int_equal(wsframe_parse(p, eleven_header, sizeof(eleven_header), &ev), 0);
    assert_int_equal(ev.kind, WSFRAME_ERROR);
    assert_int_equal(ev.code, WSFRAME_CLOSE_TOO_BIG);
    wsframe_parser_free(p);

    p = wsframe_parser_new(10);
    wsframe_parse(p, frags, sizeof(frags), &ev);
    assert_int_equal(ev.kind, WSFRAME_ERROR);
    assert_int_equal(ev.code, WSFRAME_CLOSE_TOO_BIG);
    wsframe_parser_free(p);

    p = wsframe_parser_new(SIZE_MAX);
    wsframe_parse(p, huge, sizeof(huge), &ev);
    assert_int_equal(ev.kind, WSFRAME_NEED_MORE);
    assert_int_equal(ev.need, (size_t)10 + (size_t)INT64_MAX);
    wsframe_parser_free(p);
}

/* ---- UTF-8 ---------------------------------------------------------------- */

static void test_utf8(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain ascii, long enough to take the sixteen-byte path twice over", true},
        {"\xc2\x80", true},
        {"\xdf\xbf", true},
        {"\xe0\xa0\x80", true},
        {"\xed\x9f\xbf", true},     /* U+D7FF */
        {"\xee\x80\x80", true},     /* U+E000 */
        {"\xef\xbf\xbf", true},     /* U+FFFF */
        {"\xf0\x90\x80\x80", true}, /* U+10000 */
        {"\xf4\x8f\xbf\xbf", true}, /* U+10FFFF */
        {"0123456789abcde\xc3\xa9 accent after 15 ASCII bytes", true},
        {"\x80", false},
        {"\xbf", false},
        {"\xc0\x80", false}, /* overlong NUL */
        {"\xc1\xbf", false},
        {"\xe0\x9f\xbf", false},     /* overlong */
        {"\xed\xa0\x80", false},     /* U+D800 */
        {"\xed\xbf\xbf", false},     /* U+DFFF */
        {"\xf0\x8f\xbf\xbf", false}, /* overlong */
        {"\xf4\x90\x80\x80", false}, /* U+110000 */
        {"\xf5\x80\x80\x80", false},
        {"\xff", false},
        {"\xc3", false},         /* truncated */
        {"\xe2\x82", false},     /* truncated */
        {"\xf0\x9f\x98", false}, /* truncated */
        {"\xc3\x28", false},
        {"0123456789abcdef0123456789abcde\x80", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = wsframe_utf8_valid((const uint8_t *)cases[i].s, strlen(cases[i].s));
        if (got != cases[i].ok)
            fail_msg("case %zu: valid %d, expected %d", i, got, cases[i].ok);
    }
}

/* The block paths (32, 16 bytes at a time) and the byte path agree: one
 * bad or multi-byte sequence at every position of an ASCII buffer. */
static void test_utf8_at_every_position(void **state)
{
    uint8_t buf[100];

    for (size_t k = 0; k < sizeof(buf); k++) {
        memset(buf, 'a', sizeof(buf));
        buf[k] = 0x80;
        if (wsframe_utf8_valid(buf, sizeof(buf)))
            fail_msg("a stray continuation byte at %zu passed", k);
        if (!wsframe_utf8_valid(buf, k))
            fail_msg("the %zu ASCII bytes before it failed", k);
        if (k + 2 <= sizeof(buf)) {
            buf[k] = 0xc3;
            buf[k + 1] = 0xa9;
            if (!wsframe_utf8_valid(buf, sizeof(buf)))
                fail_msg("an e-acute at %zu failed", k);
            if (wsframe_utf8_valid(buf, k + 1))
                fail_msg("an e-acute cut after its first byte at %zu passed", k);
        }
    }
}

/* A code point split between two fragments is fine: UTF-8 is judged on
 * the whole message. */
static void test_utf8_split_between_fragments(void **state)
{
    static const uint8_t f[] = {0x01, 0x02, 'x', 0xe2, 0x80, 0x02, 0x82, 0xac};
    struct recording r;

    parse_all_ways(f, sizeof(f), &r);
    assert_int_equal(r.n, 1);
    EXPECT_EVENT(&r, 0, WSFRAME_MESSAGE, "x\xe2\x82\xac"); /* "x€" */
    recording_free(&r);
}

/* ---- sending ----------------------------------------------------------------- */

static void test_header_lengths(void **state)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    static const struct {
        uint64_t len;
        size_t header;
        uint8_t b1;
    } cases[] = {
        {0, 6, 0x80},     {125, 6, 0xfd},    {126, 8, 0xfe},
        {65535, 8, 0xfe}, {65536, 14, 0xff}, {UINT64_C(1) << 40, 14, 0xff},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[WSFRAME_MAX_HEADER];
        uint64_t len = 0;
        size_t h = wsframe_put_header(out, WSFRAME_OP_BINARY, cases[i].len, key);

        assert_int_equal(h, cases[i].header);
        assert_int_equal(out[0], 0x82);
        assert_int_equal(out[1], cases[i].b1);
        if (h == 6)
            len = out[1] & 0x7f;
        else if (h == 8)
            len = (uint64_t)out[2] << 8 | out[3];
        else
            for (int j = 0; j < 8; j++)
                len = len << 8 | out[2 + j];
        assert_int_equal(len, cases[i].len);
        assert_memory_equal(out + h - 4, key, 4);
    }
}

static void test_mask_matches_bytewise_at_every_offset(void **state)
{
    static const uint8_t key[4] = {0xa1, 0x5e, 0x07, 0xc3};
    uint8_t data[200], ref[200];

    for (size_t len = 0; len < 90; len++) {
        for (size_t off = 0; off < 8; off++) {
            for (size_t i = 0; i < len; i++)
                data[i] = ref[i] = (uint8_t)(i * 31 + len);
            wsframe_mask(data, len, key, off);
            for (size_t i = 0; i < len; i++)
                ref[i] ^= key[(off + i) & 3];
            assert_memory_equal(data, ref, len);
        }
    }
    /* In pieces of odd sizes, each at its running offset, then unmasked. */
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = ref[i] = (uint8_t)i;
    for (size_t at = 0, piece = 1; at < sizeof(data); at += piece, piece += 3) {
        size_t n = at + piece > sizeof(data) ? sizeof(data) - at : piece;
        wsframe_mask(data + at, n, key, at);
    }
    for (size_t i = 0; i < sizeof(data); i++)
        assert_int_equal(data[i], ref[i] ^ key[i & 3]);
    wsframe_mask(data, sizeof(data), key, 0);
    assert_memory_equal(data, ref, sizeof(data));

    /* Copying: the source is left alone, the copy masked. */
    {
        uint8_t copy[200];
        for (size_t off = 0; off < 4; off++) {
            wsframe_mask_copy(copy, ref, 77, key, off);
            for (size_t i = 0; i < 77; i++)
                assert_int_equal(copy[i], ref[i] ^ key[(off + i) & 3]);
        }
        assert_memory_equal(data, ref, sizeof(data));
    }
}

static void test_close_body(void **state)
{
    uint8_t out[WSFRAME_MAX_CONTROL];
    char reason[200];
    size_t n;

    n = wsframe_put_close_body(out, 1000, NULL);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0x03);
    assert_int_equal(out[1], 0xe8);
    n = wsframe_put_close_body(out, 1009, "message too big");
    assert_int_equal(n, 2 + 15);
    assert_memory_equal(out + 2, "message too big", 15);

    /* Cut to 123 bytes, not inside the 2-byte "é" that straddles byte 123. */
    memset(reason, 'a', sizeof(reason));
    memcpy(reason + 122, "\xc3\xa9", 2);
    reason[150] = '\0';
    n = wsframe_put_close_body(out, 1000, reason);
    assert_int_equal(n, 2 + 122);
    assert_true(wsframe_utf8_valid(out + 2, n - 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_single_unmasked_text),
        cmocka_unit_test(test_rfc_masked_text_is_what_we_send_and_refused_from_a_server),
        cmocka_unit_test(test_rfc_fragmented_text),
        cmocka_unit_test(test_rfc_ping_and_masked_pong),
        cmocka_unit_test(test_rfc_256_and_64k_binary),
        cmocka_unit_test(test_control_frames_between_fragments),
        cmocka_unit_test(test_reassembled_message_is_terminated),
        cmocka_unit_test(test_close_without_code),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_valid_close_codes),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_utf8_at_every_position),
        cmocka_unit_test(test_utf8_split_between_fragments),
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_mask_matches_bytewise_at_every_offset),
        cmocka_unit_test(test_close_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
