/* Engine.IO v4 codec: every packet type, the handshake and each way it can
 * be wrong, the encoders, and every frame captured from a real socket.io
 * 4.8 server (testdata/frames-socketio-4.8.txt, made by testdata/capture.js). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/buf.h"
#include "proto/errors.h"
#include "upstream/eio.h"

#ifndef SIO_TESTDATA_DIR
#define SIO_TESTDATA_DIR "broker/upstream/testdata"
#endif

static int decode_text(const char *s, struct eio_packet *p, const char **why)
{
    return eio_decode((const uint8_t *)s, strlen(s), false, p, why);
}

static int parse_hs(const char *json, struct eio_handshake *hs, const char **why)
{
    return eio_parse_handshake((const uint8_t *)json, strlen(json), hs, why);
}

/* ---- decode ----------------------------------------------------------- */

static void test_decode_every_type(void **state)
{
    for (int t = 0; t <= 6; t++) {
        char msg[8];
        struct eio_packet p;
        /* Without data, */
        snprintf(msg, sizeof msg, "%d", t);
        assert_int_equal(decode_text(msg, &p, NULL), 0);
        assert_int_equal(p.type, t);
        assert_false(p.binary);
        assert_int_equal(p.len, 0);
        assert_ptr_equal(p.data, (const uint8_t *)msg + 1);
        /* and with: the span is everything after the digit. */
        snprintf(msg, sizeof msg, "%dabc", t);
        assert_int_equal(decode_text(msg, &p, NULL), 0);
        assert_int_equal(p.type, t);
        assert_int_equal(p.len, 3);
        assert_memory_equal(p.data, "abc", 3);
    }
}

static void test_decode_probe_and_message(void **state)
{
    struct eio_packet p;
    assert_int_equal(decode_text("3probe", &p, NULL), 0);
    assert_int_equal(p.type, EIO_PONG);
    assert_int_equal(p.len, 5);
    assert_memory_equal(p.data, "probe", 5);

    const char *m = "42/control,[\"message\",{}]";
    assert_int_equal(decode_text(m, &p, NULL), 0);
    assert_int_equal(p.type, EIO_MESSAGE);
    assert_int_equal(p.len, strlen(m) - 1);
    assert_memory_equal(p.data, m + 1, p.len);

    /* Bytes after the digit are data, whatever they are: NUL included. */
    assert_int_equal(eio_decode((const uint8_t *)"4\0x", 3, false, &p, NULL), 0);
    assert_int_equal(p.len, 2);
}

static void test_decode_binary(void **state)
{
    const uint8_t bytes[] = {0x04, 0x00, 0xff, '4'};
    struct eio_packet p;
    assert_int_equal(eio_decode(bytes, sizeof bytes, true, &p, NULL), 0);
    assert_int_equal(p.type, EIO_MESSAGE);
    assert_true(p.binary);
    /* v4: the first byte is data, not a type. */
    assert_ptr_equal(p.data, bytes);
    assert_int_equal(p.len, sizeof bytes);

    /* An empty Buffer attachment is an empty binary message. */
    assert_int_equal(eio_decode(bytes, 0, true, &p, NULL), 0);
    assert_true(p.binary);
    assert_int_equal(p.len, 0);
}

static void test_decode_errors(void **state)
{
    struct eio_packet p;
    const char *why = NULL;
    assert_int_equal(eio_decode((const uint8_t *)"", 0, false, &p, &why), PROTO_E_BAD_FRAME);
    assert_string_equal(why, "empty Engine.IO text packet");

    const char *bad[] = {"7", "9x", "a", "/", " 4", "b4AAA"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why = NULL;
        assert_int_equal(decode_text(bad[i], &p, &why), PROTO_E_BAD_FRAME);
        assert_string_equal(why, "unknown Engine.IO packet type");
    }
    assert_int_equal(eio_decode((const uint8_t *)"\0", 1, false, &p, &why), PROTO_E_BAD_FRAME);
    /* why is optional. */
    assert_int_equal(decode_text("8", &p, NULL), PROTO_E_BAD_FRAME);
}

static void test_type_names(void **state)
{
    assert_string_equal(eio_type_name(EIO_OPEN), "open");
    assert_string_equal(eio_type_name(EIO_PING), "ping");
    assert_string_equal(eio_type_name(EIO_NOOP), "noop");
    assert_string_equal(eio_type_name(-1), "unknown");
    assert_string_equal(eio_type_name(7), "unknown");
}

/* ---- handshake -------------------------------------------------------- */

static void test_handshake_real(void **state)
{
    /* As socket.io 4.8 sends it over a WebSocket (no upgrades left). */
    struct eio_handshake hs;
    memset(&hs, 0xaa, sizeof hs);
    assert_int_equal(parse_hs("{\"sid\":\"7WPJnk_1bDDN6J9cAAAA\",\"upgrades\":[],\"pingInterval\""
                              ":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}",
                              &hs, NULL),
                     0);
    assert_string_equal(hs.sid, "7WPJnk_1bDDN6J9cAAAA");
    assert_int_equal(hs.sid_len, 20);
    assert_int_equal(hs.upgrades, 0);
    assert_int_equal(hs.ping_interval_ms, 25000);
    assert_int_equal(hs.ping_timeout_ms, 20000);
    assert_int_equal(hs.max_payload, 1000000);
    assert_true(hs.has_max_payload);
}

static void test_handshake_optional_and_extra(void **state)
{
    struct eio_handshake hs;
    /* Polling-first handshake, no maxPayload (before engine.io 5), an
     * unknown member, blanks around: all fine. */
    assert_int_equal(parse_hs(" {\"sid\":\"a\",\"upgrades\":[\"websocket\",\"webtransport\","
                              "\"carrier-pigeon\"],\"pingInterval\":1,\"pingTimeout\":2147483647,"
                              "\"future\":{\"x\":[1]}}\r\n",
                              &hs, NULL),
                     0);
    assert_string_equal(hs.sid, "a");
    assert_int_equal(hs.upgrades,
                     EIO_UPGRADE_WEBSOCKET | EIO_UPGRADE_WEBTRANSPORT | EIO_UPGRADE_OTHER);
    assert_int_equal(hs.ping_interval_ms, 1);
    assert_int_equal(hs.ping_timeout_ms, 2147483647u);
    assert_false(hs.has_max_payload);
    assert_int_equal(hs.max_payload, EIO_DEFAULT_MAX_PAYLOAD);

    assert_int_equal(parse_hs("{\"sid\":\"s\",\"upgrades\":[\"polling\"],\"pingInterval\":5,"
                              "\"pingTimeout\":5,\"maxPayload\":9007199254740992}",
                              &hs, NULL),
                     0);
    assert_int_equal(hs.upgrades, EIO_UPGRADE_POLLING);
    assert_int_equal(hs.max_payload, 9007199254740992ull);
    /* 1e3 is an integer in JSON's eyes, and in ours. */
    assert_int_equal(parse_hs("{\"sid\":\"s\",\"upgrades\":[],\"pingInterval\":1e3,"
                              "\"pingTimeout\":2.5e3}",
                              &hs, NULL),
                     0);
    assert_int_equal(hs.ping_interval_ms, 1000);
    assert_int_equal(hs.ping_timeout_ms, 2500);

    /* The longest sid accepted. */
    char json[256];
    snprintf(json, sizeof json,
             "{\"sid\":\"%064d\",\"upgrades\":[],\"pingInterval\":1,\"pingTimeout\":1}", 7);
    assert_int_equal(parse_hs(json, &hs, NULL), 0);
    assert_int_equal(hs.sid_len, EIO_SID_MAX);
}

struct hs_case {
    const char *json;
    const char *why;
};

#define GOOD_TAIL "\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000"

static void test_handshake_errors(void **state)
{
    static const struct hs_case cases[] = {
        {"", "open packet has no handshake"},
        {"{", "handshake is not valid JSON"},
        {"nope", "handshake is not valid JSON"},
        {"{\"sid\":\"a\"} x", "trailing bytes after the handshake JSON"},
        {"{\"sid\":\"a\"}{}", "trailing bytes after the handshake JSON"},
        {"[1,2]", "handshake is not a JSON object"},
        {"\"sid\"", "handshake is not a JSON object"},
        {"{" GOOD_TAIL "}", "handshake has no sid"},
        {"{\"SID\":\"a\"," GOOD_TAIL "}", "handshake has no sid"},
        {"{\"sid\":7," GOOD_TAIL "}", "handshake sid is not a string"},
        {"{\"sid\":null," GOOD_TAIL "}", "handshake sid is not a string"},
        {"{\"sid\":\"\"," GOOD_TAIL "}", "handshake sid is empty"},
        {"{\"sid\":\"a b\"," GOOD_TAIL "}", "handshake sid has a non-printable character"},
        {"{\"sid\":\"a\\n\"," GOOD_TAIL "}", "handshake sid has a non-printable character"},
        {"{\"sid\":\"\\u00e9\"," GOOD_TAIL "}", "handshake sid has a non-printable character"},
        {"{\"sid\":\"a\",\"pingInterval\":1,\"pingTimeout\":1}", "handshake has no upgrades"},
        {"{\"sid\":\"a\",\"upgrades\":\"websocket\",\"pingInterval\":1,\"pingTimeout\":1}",
         "handshake upgrades is not an array"},
        {"{\"sid\":\"a\",\"upgrades\":[1],\"pingInterval\":1,\"pingTimeout\":1}",
         "handshake upgrades holds a non-string"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingTimeout\":1}", "handshake has no pingInterval"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":\"25000\",\"pingTimeout\":1}",
         "handshake pingInterval is not an integer in 1..2^31-1"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":0,\"pingTimeout\":1}",
         "handshake pingInterval is not an integer in 1..2^31-1"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":-5,\"pingTimeout\":1}",
         "handshake pingInterval is not an integer in 1..2^31-1"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":2.5,\"pingTimeout\":1}",
         "handshake pingInterval is not an integer in 1..2^31-1"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":2147483648,\"pingTimeout\":1}",
         "handshake pingInterval is not an integer in 1..2^31-1"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":1}", "handshake has no pingTimeout"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":1,\"pingTimeout\":true}",
         "handshake pingTimeout is not an integer in 1..2^31-1"},
        {"{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":1,\"pingTimeout\":1e300}",
         "handshake pingTimeout is not an integer in 1..2^31-1"},
        {"{\"sid\":\"a\"," GOOD_TAIL ",\"maxPayload\":0}",
         "handshake maxPayload is not an integer in 1..2^53"},
        {"{\"sid\":\"a\"," GOOD_TAIL ",\"maxPayload\":null}",
         "handshake maxPayload is not an integer in 1..2^53"},
        {"{\"sid\":\"a\"," GOOD_TAIL ",\"maxPayload\":1e16}",
         "handshake maxPayload is not an integer in 1..2^53"},
        {"{\"sid\":\"a\"," GOOD_TAIL ",\"maxPayload\":0.5}",
         "handshake maxPayload is not an integer in 1..2^53"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct eio_handshake hs;
        memset(&hs, 0x5a, sizeof hs);
        const char *why = NULL;
        int r = parse_hs(cases[i].json, &hs, &why);
        if (r != PROTO_E_BAD_FRAME || !why || strcmp(why, cases[i].why) != 0)
            fail_msg("case %zu (%s): got %d \"%s\", want \"%s\"", i, cases[i].json, r,
                     why ? why : "(null)", cases[i].why);
        /* A failed parse leaves the caller's struct alone. */
        assert_int_equal(hs.sid[0], 0x5a);
    }

    /* sid one byte too long. */
    char json[256];
    snprintf(json, sizeof json, "{\"sid\":\"%065d\"," GOOD_TAIL "}", 7);
    struct eio_handshake hs;
    const char *why = NULL;
    assert_int_equal(parse_hs(json, &hs, &why), PROTO_E_BAD_FRAME);
    assert_string_equal(why, "handshake sid is too long");

    /* A NUL inside the span would make cJSON stop early and accept it. */
    static const char nul[] = "{\"sid\":\"a\"," GOOD_TAIL "}\0garbage";
    assert_int_equal(eio_parse_handshake((const uint8_t *)nul, sizeof nul - 1, &hs, &why),
                     PROTO_E_BAD_FRAME);
    assert_string_equal(why, "handshake holds a NUL byte");
    /* The span's length is honoured: a prefix of a valid document is not. */
    static const char full[] = "{\"sid\":\"a\"," GOOD_TAIL "}";
    assert_int_equal(eio_parse_handshake((const uint8_t *)full, sizeof full - 2, &hs, &why),
                     PROTO_E_BAD_FRAME);
    assert_int_equal(eio_parse_handshake((const uint8_t *)full, sizeof full - 1, &hs, &why), 0);
}

/* ---- encoders --------------------------------------------------------- */

static void test_encode(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    assert_int_equal(eio_encode_pong(&b), 1);
    assert_int_equal(eio_encode_message_prefix(&b), 1);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "34", 2);

    proto_buf_reset(&b);
    assert_int_equal(eio_encode_text(&b, EIO_PING, "probe", 5), 6);
    assert_int_equal(eio_encode_text(&b, EIO_CLOSE, NULL, 0), 1);
    assert_int_equal(eio_encode_text(&b, EIO_NOOP, NULL, 0), 1);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "2probe16", 8);
    assert_int_equal(eio_encode_text(&b, (enum eio_packet_type)7, "x", 1), PROTO_E_BAD_REQUEST);
    assert_int_equal(eio_encode_text(&b, (enum eio_packet_type) - 1, "x", 1), PROTO_E_BAD_REQUEST);
    assert_int_equal(b.len, 8);

    /* What we encode, we decode. */
    for (int t = 0; t <= 6; t++) {
        proto_buf_reset(&b);
        assert_int_equal(eio_encode_text(&b, (enum eio_packet_type)t, "xyz", 3), 4);
        struct eio_packet p;
        assert_int_equal(eio_decode(b.data, b.len, false, &p, NULL), 0);
        assert_int_equal(p.type, t);
        assert_int_equal(p.len, 3);
    }
    proto_buf_free(&b);
}

static void expect_path(const char *in, const char *want)
{
    struct proto_buf b = PROTO_BUF_INIT;
    int r = eio_handshake_path(&b, in);
    if (r != (int)strlen(want) || b.len != strlen(want) || memcmp(b.data, want, b.len) != 0 ||
        b.data[b.len] != '\0')
        fail_msg("path \"%s\": got %d \"%.*s\", want \"%s\"", in ? in : "(null)", r, (int)b.len,
                 b.data ? (const char *)b.data : "", want);
    proto_buf_free(&b);
}

static void test_handshake_path(void **state)
{
    expect_path(NULL, "/socket.io/?EIO=4&transport=websocket");
    expect_path("", "/socket.io/?EIO=4&transport=websocket");
    expect_path("/socket.io/", "/socket.io/?EIO=4&transport=websocket");
    expect_path("/socket.io", "/socket.io/?EIO=4&transport=websocket");
    expect_path("socket.io", "/socket.io/?EIO=4&transport=websocket");
    expect_path("socket.io/", "/socket.io/?EIO=4&transport=websocket");
    expect_path("//socket.io//", "/socket.io/?EIO=4&transport=websocket");
    expect_path("/", "/?EIO=4&transport=websocket");
    expect_path("///", "/?EIO=4&transport=websocket");
    expect_path("/api/volt/ws", "/api/volt/ws/?EIO=4&transport=websocket");
    expect_path("a%20b", "/a%20b/?EIO=4&transport=websocket");

    const char *bad[] = {"/a?b", "/a#b", "/a b", "/a\tb", "/a\x01", "/\xc3\xa9", "/a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct proto_buf b = PROTO_BUF_INIT;
        assert_int_equal(eio_handshake_path(&b, bad[i]), PROTO_E_BAD_REQUEST);
        assert_int_equal(b.len, 0);
        proto_buf_free(&b);
    }

    /* Appends: what was in the buffer stays. */
    struct proto_buf b = PROTO_BUF_INIT;
    assert_int_equal(proto_buf_append(&b, "GET ", 4), 0);
    assert_int_equal(eio_handshake_path(&b, "/x"), 29);
    assert_int_equal(b.len, 33);
    assert_string_equal((const char *)b.data, "GET /x/?EIO=4&transport=websocket");
    proto_buf_free(&b);
}

/* ---- the captured frames ---------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_captured_frames(void **state)
{
    size_t len;
    char *text = read_file(SIO_TESTDATA_DIR "/frames-socketio-4.8.txt", &len);
    struct eio_packet last;
    bool have_last = false, last_binary = false;
    int frames = 0, checked = 0, handshakes = 0, pings = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if ((line[0] == '<' || line[0] == '>') && strncmp(line + 1, " text ", 6) == 0) {
            const char *frame = line + 7;
            const char *why = NULL;
            if (eio_decode((const uint8_t *)frame, strlen(frame), false, &last, &why) != 0)
                fail_msg("captured frame refused (%s): %s", why, frame);
            have_last = true;
            last_binary = false;
            frames++;
        } else if ((line[0] == '<' || line[0] == '>') && strncmp(line + 1, " bin", 4) == 0) {
            /* Any binary message is a binary `message` packet. */
            assert_int_equal(eio_decode((const uint8_t *)line, strlen(line), true, &last, NULL), 0);
            assert_int_equal(last.type, EIO_MESSAGE);
            have_last = true;
            last_binary = true;
            frames++;
        } else if (strncmp(line, "= eio ", 6) == 0) {
            assert_true(have_last && !last_binary);
            assert_int_equal(last.type, atoi(line + 6));
            if (last.type == EIO_PING)
                pings++;
            checked++;
        } else if (strncmp(line, "= hs ", 5) == 0) {
            /* = hs <sid> <n_upgrades> <pingInterval> <pingTimeout> <maxPayload> */
            char sid[128];
            unsigned n_up;
            unsigned long interval, timeout, max_payload;
            assert_int_equal(sscanf(line + 5, "%127s %u %lu %lu %lu", sid, &n_up, &interval,
                                    &timeout, &max_payload),
                             5);
            assert_int_equal(last.type, EIO_OPEN);
            struct eio_handshake hs;
            const char *why = NULL;
            if (eio_parse_handshake(last.data, last.len, &hs, &why) != 0)
                fail_msg("captured handshake refused: %s", why);
            assert_string_equal(hs.sid, sid);
            assert_int_equal(n_up == 0, hs.upgrades == 0);
            assert_int_equal(hs.ping_interval_ms, interval);
            assert_int_equal(hs.ping_timeout_ms, timeout);
            assert_true(hs.has_max_payload);
            assert_int_equal(hs.max_payload, max_payload);
            handshakes++;
        }
    }
    free(text);
    /* The capture has three connections, pings, and dozens of frames: a
     * truncated or empty file must not pass quietly. */
    assert_true(frames >= 40);
    assert_true(checked >= 30);
    assert_int_equal(handshakes, 3);
    assert_true(pings >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_every_type),
        cmocka_unit_test(test_decode_probe_and_message),
        cmocka_unit_test(test_decode_binary),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_handshake_real),
        cmocka_unit_test(test_handshake_optional_and_extra),
        cmocka_unit_test(test_handshake_errors),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_handshake_path),
        cmocka_unit_test(test_captured_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
