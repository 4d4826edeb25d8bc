/* The VOLT events (volt.h): one test per rule. Inbound: well-formed and
 * malformed events, missing, wrong-typed and extra fields, requestId
 * handling, non-UTF-8, depth limits, binary attachments, salvage of events
 * that do not parse, the recovery offset, the register ack and the
 * namespace CONNECT. Outbound: every builder, byte for byte, and its
 * refusals; the room left for the handler list within maxPayload; the
 * heartbeat payload and its three-in-a-row rule.
 *
 * Values are written as JSON in the tests and compared as JSON: the msgpack
 * goes through proto_json's MARKER mode ({"$bin":"<base64>"} is binary). */
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
#include "proto/json.h"
#include "proto/limits.h"
#include "proto/msg.h"
#include "upstream/volt.h"

#define UUID_A "0b6a2c1e-4f3d-4a5b-9c8d-7e6f5a4b3c2d"

static struct volt_parser *v;
static struct proto_buf mpbuf, jsonbuf, outbuf;
static struct proto_json_doc tdoc;

static int setup(void **state)
{
    (void)state;
    v = volt_parser_new();
    proto_buf_init(&mpbuf);
    proto_buf_init(&jsonbuf);
    proto_buf_init(&outbuf);
    proto_json_doc_init(&tdoc);
    return v ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    volt_parser_free(v);
    v = NULL;
    proto_buf_free(&mpbuf);
    proto_buf_free(&jsonbuf);
    proto_buf_free(&outbuf);
    proto_json_doc_free(&tdoc);
    return 0;
}

/* A msgpack value from JSON text (MARKER mode), in mpbuf. */
static struct proto_span mp(const char *json)
{
    proto_buf_reset(&mpbuf);
    if (proto_json_to_msgpack(&tdoc, json, strlen(json), &mpbuf, NULL, NULL) < 0)
        fail_msg("test value does not convert: %s", json);
    struct proto_span s = {mpbuf.data, (uint32_t)mpbuf.len};
    return s;
}

/* A msgpack value as JSON text (MARKER mode), NUL-terminated in jsonbuf. */
static const char *js(struct proto_span s)
{
    proto_buf_reset(&jsonbuf);
    if (proto_msgpack_to_json(s.ptr, s.len, &jsonbuf, NULL, NULL) < 0)
        return "(no JSON form)";
    proto_buf_append_byte(&jsonbuf, 0);
    return (const char *)jsonbuf.data;
}

static void assert_span_eq(struct proto_span s, const char *want)
{
    if (s.len != strlen(want) || (s.len && memcmp(s.ptr, want, s.len) != 0))
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.ptr ? (const char *)s.ptr : "", want);
}

static void assert_out(const char *want)
{
    if (outbuf.len != strlen(want) || memcmp(outbuf.data, want, outbuf.len) != 0)
        fail_msg("built\n  %.*s\nwant\n  %s", (int)outbuf.len, (const char *)outbuf.data, want);
}

static struct volt_event parse_att(const char *json, const struct proto_span *att, uint32_t n,
                                   bool offset)
{
    struct volt_event ev;
    assert_int_equal(volt_parse_event(v, json, strlen(json), att, n, offset, &ev), 0);
    return ev;
}

static struct volt_event parse(const char *json)
{
    return parse_att(json, NULL, 0, false);
}

static const char *kind_name(enum volt_event_kind k)
{
    static const char *const names[] = {"IGNORED", "RESPONSE",         "SERVER_REQUEST",
                                        "MESSAGE", "SALVAGE_RESPONSE", "SALVAGE_REQUEST"};
    return (unsigned)k < 6 ? names[k] : "?";
}

#define assert_kind(ev, k)                                                                         \
    do {                                                                                           \
        if ((ev).kind != (k))                                                                      \
            fail_msg("kind %s, want %s (why: %s)", kind_name((ev).kind), kind_name(k),             \
                     (ev).why ? (ev).why : "-");                                                   \
    } while (0)

/* Nesting of n arrays around 0, as text. */
static char *nested(unsigned n)
{
    char *s = malloc(2 * n + 2);
    assert_non_null(s);
    memset(s, '[', n);
    s[n] = '0';
    memset(s + n + 1, ']', n);
    s[2 * n + 1] = '\0';
    return s;
}

static char *event_with(const char *fmt, const char *value)
{
    size_t n = strlen(fmt) + strlen(value) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, fmt, value);
    return s;
}

static struct volt_out out_begin(void)
{
    struct volt_out o;
    proto_buf_reset(&outbuf);
    volt_out_init(&o, &outbuf);
    return o;
}

/* ---- daemon:response ---- */

static void test_response_ok(void **state)
{
    (void)state;
    struct volt_event ev =
        parse("[\"daemon:response\",{\"requestId\":\"" UUID_A
              "\",\"success\":true,\"data\":{\"a\":[1,2,3],\"s\":\"\\u00e9\"}}]");
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_true(ev.ok);
    assert_string_equal(ev.id, UUID_A);
    assert_int_equal(ev.uuid[0], 0x0b);
    assert_int_equal(ev.uuid[15], 0x2d);
    struct proto_span data;
    const char *why = NULL;
    assert_int_equal(volt_response_data(v, &data, &why), 0);
    assert_string_equal(js(data), "{\"a\":[1,2,3],\"s\":\"é\"}");
}

static void test_response_ok_without_data(void **state)
{
    (void)state;
    struct volt_event ev =
        parse("[\"daemon:response\",{\"success\":true,\"requestId\":\"" UUID_A "\"}]");
    assert_kind(ev, VOLT_EV_RESPONSE);
    struct proto_span data;
    const char *why = NULL;
    assert_int_equal(volt_response_data(v, &data, &why), 0);
    assert_int_equal(data.len, 0);
}

static void test_response_data_only_after_a_response(void **state)
{
    (void)state;
    struct proto_span data;
    const char *why = NULL;
    parse("[\"message\",{\"type\":\"t\"}]");
    assert_int_equal(volt_response_data(v, &data, &why), PROTO_E_INTERNAL);
    /* a rejection has no data to read either */
    parse("[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":false}]");
    assert_int_equal(volt_response_data(v, &data, &why), PROTO_E_INTERNAL);
}

static void test_response_rejected(void **state)
{
    (void)state;
    struct volt_event ev =
        parse("[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":false,"
              "\"error\":{\"code\":\"E_NOPE\",\"message\":\"not today\"}}]");
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_false(ev.ok);
    assert_span_eq(ev.server_code, "E_NOPE");
    assert_span_eq(ev.message, "not today");
}

static void test_response_rejected_without_words(void **state)
{
    (void)state;
    /* success false, no error: an empty code and our default message */
    struct volt_event ev =
        parse("[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":false}]");
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_false(ev.ok);
    assert_span_eq(ev.server_code, "");
    assert_span_eq(ev.message, "rejected by the server");
    /* error of the wrong type, code and message of the wrong types */
    ev = parse("[\"daemon:response\",{\"requestId\":\"" UUID_A
               "\",\"success\":false,\"error\":\"boom\"}]");
    assert_span_eq(ev.message, "rejected by the server");
    ev = parse("[\"daemon:response\",{\"requestId\":\"" UUID_A
               "\",\"success\":false,\"error\":{\"code\":7,\"message\":[]}}]");
    assert_span_eq(ev.server_code, "");
    assert_span_eq(ev.message, "rejected by the server");
}

static void test_response_success_must_be_true(void **state)
{
    (void)state;
    /* Missing, "true" as a string, 1: all rejections, never a success. */
    const char *const forms[] = {
        "[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"data\":1}]",
        "[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":\"true\",\"data\":1}]",
        "[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":1,\"data\":1}]",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct volt_event ev = parse(forms[i]);
        assert_kind(ev, VOLT_EV_RESPONSE);
        assert_false(ev.ok);
    }
}

static void test_response_request_id(void **state)
{
    (void)state;
    /* Our ids are uuids: anything else cannot be ours and is ignored. */
    const char *const bad[] = {
        "[\"daemon:response\",{\"success\":true}]",
        "[\"daemon:response\",{\"requestId\":42,\"success\":true}]",
        "[\"daemon:response\",{\"requestId\":\"\",\"success\":true}]",
        "[\"daemon:response\",{\"requestId\":\"not-a-uuid\",\"success\":true}]",
        "[\"daemon:response\",{\"requestId\":\"{" UUID_A "}\",\"success\":true}]",
        "[\"daemon:response\",{\"requestId\":\" " UUID_A "\",\"success\":true}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct volt_event ev = parse(bad[i]);
        assert_kind(ev, VOLT_EV_IGNORED);
        assert_false(ev.unanswerable);
        assert_string_equal(ev.why, "daemon:response without a valid requestId");
    }
    /* Upper case and an escaped hyphen are the same uuid. */
    struct volt_event ev = parse("[\"daemon:response\",{\"requestId\":\"0B6A2C1E-4F3D-4A5B-9C8D-"
                                 "7E6F5A4B3C2D\",\"success\":true}]");
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_int_equal(ev.uuid[0], 0x0b);
    ev = parse("[\"daemon:response\",{\"requestId\":\"0b6a2c1e\\u002d4f3d-4a5b-9c8d-7e6f5a4b3c2d\","
               "\"success\":true}]");
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_string_equal(ev.id, UUID_A);
}

static void test_response_extra_fields(void **state)
{
    (void)state;
    /* Fields we do not know, in any order, change nothing. */
    struct volt_event ev =
        parse("[\"daemon:response\",{\"x\":{\"y\":[1]},\"data\":2,\"requestId\":\"" UUID_A
              "\",\"success\":true,\"z\":null},\"extra\",3]");
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_true(ev.ok);
    struct proto_span data;
    const char *why;
    assert_int_equal(volt_response_data(v, &data, &why), 0);
    assert_string_equal(js(data), "2");
}

static void test_response_data_depth(void **state)
{
    (void)state;
    const unsigned ok = PROTO_DEFAULT_MAX_DEPTH - 1;
    struct proto_span data;
    const char *why = NULL;
    char *deep = nested(ok);
    char *ev_text = event_with(
        "[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":true,\"data\":%s}]", deep);
    struct volt_event ev = parse(ev_text);
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_int_equal(volt_response_data(v, &data, &why), 0);
    free(deep);
    free(ev_text);

    deep = nested(ok + 1);
    ev_text = event_with(
        "[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":true,\"data\":%s}]", deep);
    ev = parse(ev_text);
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_int_equal(volt_response_data(v, &data, &why), PROTO_E_BAD_FRAME);
    assert_non_null(strstr(why, "nested deeper than the local protocol allows (63 levels)"));
    free(deep);
    free(ev_text);

    /* far deeper than any limit still parses, and is refused the same way */
    deep = nested(PROTO_HARD_MAX_DEPTH - 8);
    ev_text = event_with(
        "[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":true,\"data\":%s}]", deep);
    ev = parse(ev_text);
    assert_kind(ev, VOLT_EV_RESPONSE);
    assert_int_equal(volt_response_data(v, &data, &why), PROTO_E_BAD_FRAME);
    free(deep);
    free(ev_text);
}

static void test_response_data_not_utf8(void **state)
{
    (void)state;
    /* A raw invalid byte: the event does not parse, it is salvaged. */
    struct volt_event ev = parse("[\"daemon:response\",{\"requestId\":\"" UUID_A
                                 "\",\"success\":true,\"data\":\"\xff\"}]");
    assert_kind(ev, VOLT_EV_SALVAGE_RESPONSE);
    assert_true(ev.malformed);
    assert_non_null(strstr(ev.refusal, "the server's message could not be read"));
    /* A lone surrogate escape parses, but has no UTF-8 form. */
    ev = parse("[\"daemon:response\",{\"requestId\":\"" UUID_A
               "\",\"success\":true,\"data\":\"\\ud800\"}]");
    if (ev.kind == VOLT_EV_RESPONSE) {
        struct proto_span data;
        const char *why = NULL;
        assert_int_equal(volt_response_data(v, &data, &why), PROTO_E_BAD_FRAME);
        assert_non_null(strstr(why, "'data'"));
    } else {
        assert_kind(ev, VOLT_EV_SALVAGE_RESPONSE);
    }
}

static void test_response_binary(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0, 1, 2, 0xff};
    struct proto_span att[1] = {{bytes, sizeof(bytes)}};
    struct volt_event ev =
        parse_att("[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":true,"
                  "\"data\":{\"b\":{\"_placeholder\":true,\"num\":0}}}]",
                  att, 1, false);
    assert_kind(ev, VOLT_EV_RESPONSE);
    struct proto_span data;
    const char *why = NULL;
    assert_int_equal(volt_response_data(v, &data, &why), 0);
    assert_string_equal(js(data), "{\"b\":{\"$bin\":\"AAEC/w==\"}}");
    /* a placeholder beyond the attachments is a frame we cannot deliver */
    ev = parse_att("[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":true,"
                   "\"data\":{\"_placeholder\":true,\"num\":1}}]",
                   att, 1, false);
    assert_int_equal(volt_response_data(v, &data, &why), PROTO_E_BAD_FRAME);
}

/* ---- server:request ---- */

static void test_server_request(void **state)
{
    (void)state;
    struct volt_event ev = parse("[\"server:request\",{\"requestId\":\"r-1\",\"command\":"
                                 "\"execute-plugin\",\"payload\":{\"n\":1}}]");
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_string_equal(ev.id, "r-1");
    assert_int_equal(ev.id_len, 3);
    assert_null(ev.refusal);
    assert_span_eq(ev.command, "execute-plugin");
    assert_string_equal(js(ev.payload), "{\"n\":1}");
}

static void test_server_request_without_payload(void **state)
{
    (void)state;
    struct volt_event ev =
        parse("[\"server:request\",{\"requestId\":\"r-1\",\"command\":\"list-files\"}]");
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_null(ev.refusal);
    assert_int_equal(ev.payload.len, 0);
    /* an explicit null is a value */
    ev = parse("[\"server:request\",{\"requestId\":\"r-1\",\"command\":\"c\",\"payload\":null}]");
    assert_string_equal(js(ev.payload), "null");
}

static void test_server_request_id(void **state)
{
    (void)state;
    char id[VOLT_ID_MAX + 2];
    char text[400];

    /* Not a uuid, any string of 1..128 bytes: the server's ids are its own. */
    memset(id, 'x', VOLT_ID_MAX);
    id[VOLT_ID_MAX] = '\0';
    snprintf(text, sizeof(text), "[\"server:request\",{\"requestId\":\"%s\",\"command\":\"c\"}]",
             id);
    struct volt_event ev = parse(text);
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_int_equal(ev.id_len, VOLT_ID_MAX);

    /* Without a usable one it cannot be answered: ignored, and said so. */
    memset(id, 'x', VOLT_ID_MAX + 1);
    id[VOLT_ID_MAX + 1] = '\0';
    snprintf(text, sizeof(text), "[\"server:request\",{\"requestId\":\"%s\",\"command\":\"c\"}]",
             id);
    const char *const bad[] = {
        text,
        "[\"server:request\",{\"command\":\"c\"}]",
        "[\"server:request\",{\"requestId\":\"\",\"command\":\"c\"}]",
        "[\"server:request\",{\"requestId\":7,\"command\":\"c\"}]",
        "[\"server:request\",{\"requestId\":null,\"command\":\"c\"}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ev = parse(bad[i]);
        assert_kind(ev, VOLT_EV_IGNORED);
        assert_true(ev.unanswerable);
    }
    /* Escapes are decoded: the answer carries the id as the server meant it. */
    ev = parse("[\"server:request\",{\"requestId\":\"a\\\"b\\u00e9\",\"command\":\"c\"}]");
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_string_equal(ev.id, "a\"bé");
}

static void test_server_request_without_command(void **state)
{
    (void)state;
    /* Still a request: it is owed a HandlerError. */
    const char *const forms[] = {
        "[\"server:request\",{\"requestId\":\"r-9\",\"payload\":{}}]",
        "[\"server:request\",{\"requestId\":\"r-9\",\"command\":3}]",
    };
    for (size_t i = 0; i < 2; i++) {
        struct volt_event ev = parse(forms[i]);
        assert_kind(ev, VOLT_EV_SERVER_REQUEST);
        assert_string_equal(ev.id, "r-9");
        assert_string_equal(ev.refusal, "the request has no command");
        assert_false(ev.undeliverable);
    }
}

static void test_server_request_payload_undeliverable(void **state)
{
    (void)state;
    char *deep = nested(PROTO_DEFAULT_MAX_DEPTH);
    char *text = event_with(
        "[\"server:request\",{\"requestId\":\"r-5\",\"command\":\"c\",\"payload\":%s}]", deep);
    struct volt_event ev = parse(text);
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_string_equal(ev.id, "r-5");
    assert_true(ev.undeliverable);
    assert_non_null(strstr(ev.refusal, "the payload cannot be delivered to a handler: 'payload' is "
                                       "nested deeper"));
    free(deep);
    free(text);
    /* a placeholder without its attachment */
    ev = parse("[\"server:request\",{\"requestId\":\"r-6\",\"command\":\"c\",\"payload\":"
               "{\"_placeholder\":true,\"num\":0}}]");
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_true(ev.undeliverable);
    assert_non_null(strstr(ev.refusal, "'payload'"));
}

static void test_server_request_binary_payload(void **state)
{
    (void)state;
    const uint8_t a0[] = {'h', 'i'}, a1[] = {0};
    struct proto_span att[2] = {{a0, 2}, {a1, 1}};
    struct volt_event ev =
        parse_att("[\"server:request\",{\"requestId\":\"r-7\",\"command\":\"upload\",\"payload\":"
                  "[{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0},"
                  "{\"_placeholder\":true,\"num\":\"0\"}]}]",
                  att, 2, false);
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_null(ev.refusal);
    /* a non-integer num makes it an ordinary object */
    assert_string_equal(js(ev.payload), "[{\"$bin\":\"AA==\"},{\"$bin\":\"aGk=\"},"
                                        "{\"_placeholder\":true,\"num\":\"0\"}]");
}

/* Integers are exact over all of int64 and uint64, both ways; digits
 * beyond them become a float64 (proto/PROTOCOL.md, "Values"). */
static void test_integers_64bit_both_ways(void **state)
{
    (void)state;
    const char *ints = "[18446744073709551615,-9223372036854775808,9223372036854775807,"
                       "9007199254740993,-9007199254740993,0]";
    char *text = event_with(
        "[\"server:request\",{\"requestId\":\"r-1\",\"command\":\"c\",\"payload\":%s}]", ints);
    struct volt_event ev = parse(text);
    free(text);
    assert_kind(ev, VOLT_EV_SERVER_REQUEST);
    assert_string_equal(js(ev.payload), ints);
    /* uint64 max as msgpack 0xcf, int64 min as 0xd3: no float in between */
    assert_int_equal(ev.payload.ptr[1], 0xcf);
    assert_int_equal(ev.payload.ptr[10], 0xd3);

    struct proto_span data = mp(ints);
    struct volt_out o = out_begin();
    assert_int_equal(volt_put_answer(&o, "r-1", 3, true, &data, NULL, NULL), 0);
    assert_out("[\"server:response\",{\"requestId\":\"r-1\",\"success\":true,\"data\":["
               "18446744073709551615,"
               "-9223372036854775808,9223372036854775807,9007199254740993,-9007199254740993,0]}]");

    /* one past either end: a float, as a JavaScript server's digits may be */
    ev = parse(
        "[\"message\",{\"type\":\"t\",\"data\":[18446744073709551616,-9223372036854775809]}]");
    assert_kind(ev, VOLT_EV_MESSAGE);
    assert_int_equal(ev.data.ptr[1], 0xcb);
    assert_int_equal(ev.data.ptr[10], 0xcb);
}

/* ---- message ---- */

static void test_message(void **state)
{
    (void)state;
    struct volt_event ev =
        parse("[\"message\",{\"type\":\"exposure-snapshot\",\"data\":{\"k\":[true,null]}}]");
    assert_kind(ev, VOLT_EV_MESSAGE);
    assert_span_eq(ev.type, "exposure-snapshot");
    assert_string_equal(js(ev.data), "{\"k\":[true,null]}");
    /* no data: nil */
    ev = parse("[\"message\",{\"type\":\"ping\"}]");
    assert_kind(ev, VOLT_EV_MESSAGE);
    assert_string_equal(js(ev.data), "null");
}

static void test_message_malformed(void **state)
{
    (void)state;
    struct volt_event ev = parse("[\"message\",{\"data\":1}]");
    assert_kind(ev, VOLT_EV_IGNORED);
    assert_string_equal(ev.why, "message without a type");
    ev = parse("[\"message\",{\"type\":1,\"data\":1}]");
    assert_kind(ev, VOLT_EV_IGNORED);
    char *deep = nested(PROTO_DEFAULT_MAX_DEPTH);
    char *text = event_with("[\"message\",{\"type\":\"t\",\"data\":%s}]", deep);
    ev = parse(text);
    assert_kind(ev, VOLT_EV_IGNORED);
    assert_true(ev.undeliverable);
    assert_non_null(strstr(ev.why, "nested deeper"));
    free(deep);
    free(text);
}

/* ---- events in general ---- */

static void test_event_shape(void **state)
{
    (void)state;
    const struct {
        const char *text, *why;
    } cases[] = {
        {"{\"a\":1}", "event without a name"},
        {"[]", "event without a name"},
        {"[1,{}]", "event without a name"},
        {"\"message\"", "event without a name"},
        {"[\"message\"]", "event without an object argument"},
        {"[\"message\",1]", "event without an object argument"},
        {"[\"message\",[{\"type\":\"t\"}]]", "event without an object argument"},
        {"[\"daemon:request\",{\"requestId\":\"" UUID_A "\"}]", "unknown event"},
        {"[\"server:response\",{}]", "unknown event"},
        {"[\"Message\",{\"type\":\"t\"}]", "unknown event"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct volt_event ev = parse(cases[i].text);
        assert_kind(ev, VOLT_EV_IGNORED);
        assert_false(ev.malformed);
        assert_string_equal(ev.why, cases[i].why);
    }
    /* an escaped name is the same name */
    struct volt_event ev = parse("[\"mess\\u0061ge\",{\"type\":\"t\"}]");
    assert_kind(ev, VOLT_EV_MESSAGE);
}

static void test_event_recovery_offset(void **state)
{
    (void)state;
    const char *text = "[\"message\",{\"type\":\"t\"},\"MzUx-0\"]";
    struct volt_event ev = parse_att(text, NULL, 0, true);
    assert_kind(ev, VOLT_EV_MESSAGE);
    assert_true(ev.has_offset);
    assert_string_equal(ev.offset, "MzUx-0");
    /* only when asked for */
    ev = parse_att(text, NULL, 0, false);
    assert_false(ev.has_offset);
    /* the last argument, whatever the event, even one we ignore */
    ev = parse_att("[\"other\",1,2,\"off-9\"]", NULL, 0, true);
    assert_kind(ev, VOLT_EV_IGNORED);
    assert_string_equal(ev.offset, "off-9");
    /* two arguments only: no offset; a non-string or too long one: none */
    ev = parse_att("[\"message\",{\"type\":\"t\"}]", NULL, 0, true);
    assert_false(ev.has_offset);
    ev = parse_att("[\"message\",{\"type\":\"t\"},7]", NULL, 0, true);
    assert_false(ev.has_offset);
    char long_off[VOLT_OFFSET_MAX + 2];
    memset(long_off, 'o', VOLT_OFFSET_MAX + 1);
    long_off[VOLT_OFFSET_MAX + 1] = '\0';
    char *t = event_with("[\"message\",{\"type\":\"t\"},\"%s\"]", long_off);
    ev = parse_att(t, NULL, 0, true);
    assert_false(ev.has_offset);
    free(t);
    long_off[VOLT_OFFSET_MAX] = '\0';
    t = event_with("[\"message\",{\"type\":\"t\"},\"%s\"]", long_off);
    ev = parse_att(t, NULL, 0, true);
    assert_true(ev.has_offset);
    assert_int_equal(strlen(ev.offset), VOLT_OFFSET_MAX);
    free(t);
}

static void test_event_salvage(void **state)
{
    (void)state;
    /* A response that does not parse still ends its request. */
    struct volt_event ev =
        parse("[\"daemon:response\",{\"requestId\":\"" UUID_A "\",\"success\":true,\"data\":{");
    assert_kind(ev, VOLT_EV_SALVAGE_RESPONSE);
    assert_true(ev.malformed);
    assert_true(ev.undeliverable);
    assert_string_equal(ev.id, UUID_A);
    assert_int_equal(ev.uuid[0], 0x0b);
    assert_non_null(strstr(ev.refusal, "the server's message could not be read: "));
    /* A request that does not parse still gets its HandlerError. */
    ev = parse(" \n[\"server:request\",{\"requestId\" : \"r-1\",\"command\":\"c\",,}]");
    assert_kind(ev, VOLT_EV_SALVAGE_REQUEST);
    assert_string_equal(ev.id, "r-1");
    assert_non_null(ev.refusal);
    /* What cannot be told apart is only logged. */
    const char *const lost[] = {
        "[\"daemon:response\",{\"requestId\":\"not-a-uuid\",",
        "[\"daemon:response\",{\"success\":true,",
        "[\"server:request\",{\"requestId\":\"a\\\"b\",",
        "[\"server:request\",{\"requestId\":\"\",",
        "[\"server:request\",{\"requestId\":7,",
        "[\"message\",{\"requestId\":\"r-1\",",
        "{\"requestId\":\"r-1\"",
        "[\"server:requests\",{\"requestId\":\"r-1\",",
        "",
        "\xff",
    };
    for (size_t i = 0; i < sizeof(lost) / sizeof(lost[0]); i++) {
        ev = parse(lost[i]);
        assert_kind(ev, VOLT_EV_IGNORED);
        assert_true(ev.malformed);
        assert_non_null(ev.why);
        assert_null(ev.refusal);
    }
}

static void test_event_not_utf8(void **state)
{
    (void)state;
    /* invalid UTF-8 in a name, a key or a command: the event does not parse */
    const char *const bad[] = {
        "[\"mess\xc3\x28ge\",{\"type\":\"t\"}]", "[\"message\",{\"ty\xffpe\":\"t\"}]",
        "[\"message\",{\"type\":\"\xed\xa0\x80\"}]", /* an encoded surrogate */
        "[\"message\",{\"type\":\"\xc0\xaf\"}]",     /* overlong */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct volt_event ev = parse(bad[i]);
        assert_kind(ev, VOLT_EV_IGNORED);
        assert_true(ev.malformed);
    }
    struct volt_event ev =
        parse("[\"server:request\",{\"requestId\":\"r-2\",\"command\":\"\xff\",\"payload\":1}]");
    assert_kind(ev, VOLT_EV_SALVAGE_REQUEST);
    assert_string_equal(ev.id, "r-2");
}

static void test_event_parser_reused(void **state)
{
    (void)state;
    /* One parser for every packet: nothing of an event leaks into the next. */
    struct volt_event ev = parse("[\"daemon:response\",{\"requestId\":\"" UUID_A
                                 "\",\"success\":false,\"error\":{\"code\":\"X\"}},\"o-1\"]");
    ev = parse_att("[\"message\",{\"type\":\"t\"}]", NULL, 0, true);
    assert_kind(ev, VOLT_EV_MESSAGE);
    assert_false(ev.has_offset);
    assert_int_equal(ev.id_len, 0);
    assert_string_equal(ev.id, "");
    assert_null(ev.refusal);
    assert_int_equal(ev.server_code.len, 0);
}

/* ---- register ack, CONNECT, CONNECT_ERROR ---- */

static void test_register_ack(void **state)
{
    (void)state;
    struct volt_register_ack ack;
    const char *t = "[{\"success\":true}]";
    volt_parse_register_ack(v, t, strlen(t), &ack);
    assert_true(ack.ok);
    t = "[{\"success\":false,\"error\":{\"code\":\"Unauthorized\",\"message\":\"bad password\"}}]";
    volt_parse_register_ack(v, t, strlen(t), &ack);
    assert_false(ack.ok);
    assert_string_equal(ack.code, "Unauthorized");
    assert_string_equal(ack.message, "bad password");
    const char *const refused[] = {
        "[{\"success\":false}]",
        "[{\"success\":\"true\"}]",
        "[]",
        "[true]",
        "{\"success\":true}",
        "[{\"success\":true",
        "",
        "[{\"success\":false,\"error\":\"no\"}]",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        volt_parse_register_ack(v, refused[i], strlen(refused[i]), &ack);
        assert_false(ack.ok);
        assert_string_equal(ack.code, "");
        assert_string_equal(ack.message, "");
    }
    /* long words are cut, not overflowed */
    char text[600], code[200];
    memset(code, 'c', sizeof(code) - 1);
    code[sizeof(code) - 1] = '\0';
    snprintf(text, sizeof(text), "[{\"success\":false,\"error\":{\"code\":\"%s\"}}]", code);
    volt_parse_register_ack(v, text, strlen(text), &ack);
    assert_int_equal(strlen(ack.code), sizeof(ack.code) - 1);
}

static void test_connect(void **state)
{
    (void)state;
    char pid[VOLT_PID_MAX + 1];
    const char *t = "{\"sid\":\"abc\",\"pid\":\"p-123\"}";
    volt_parse_connect(v, t, strlen(t), pid);
    assert_string_equal(pid, "p-123");
    const char *const none[] = {"{\"sid\":\"abc\"}", "{\"pid\":1}", "[\"pid\"]", "", "{"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        strcpy(pid, "stale");
        volt_parse_connect(v, none[i], strlen(none[i]), pid);
        assert_string_equal(pid, "");
    }
    char text[200], long_pid[VOLT_PID_MAX + 2];
    memset(long_pid, 'p', VOLT_PID_MAX + 1);
    long_pid[VOLT_PID_MAX + 1] = '\0';
    snprintf(text, sizeof(text), "{\"pid\":\"%s\"}", long_pid);
    volt_parse_connect(v, text, strlen(text), pid);
    assert_string_equal(pid, "");
}

static void test_connect_error(void **state)
{
    (void)state;
    const char *t = "{\"message\":\"invalid credentials\"}";
    assert_string_equal(volt_parse_connect_error(v, t, strlen(t)), "invalid credentials");
    t = "\"a bare string\"";
    assert_string_equal(volt_parse_connect_error(v, t, strlen(t)), "refused");
    assert_string_equal(volt_parse_connect_error(v, NULL, 0), "refused");
    t = "{\"message\":5}";
    assert_string_equal(volt_parse_connect_error(v, t, strlen(t)), "refused");
}

/* ---- builders ---- */

static void test_put_request(void **state)
{
    (void)state;
    struct volt_out o = out_begin();
    struct proto_span cmd = proto_span_str("get-container-stats", 19);
    struct proto_span payload = mp("{\"n\":1,\"b\":{\"$bin\":\"AQI=\"}}");
    assert_int_equal(volt_put_request(&o, UUID_A, 36, &cmd, &payload), 0);
    assert_out("[\"daemon:request\",{\"requestId\":\"" UUID_A
               "\",\"command\":\"get-container-stats\","
               "\"payload\":{\"n\":1,\"b\":{\"_placeholder\":true,\"num\":0}}}]");
    assert_int_equal(o.n_att, 1);
    assert_int_equal(o.att[0].len, 2);
    /* no payload (NULL or empty): no key at all */
    o = out_begin();
    assert_int_equal(volt_put_request(&o, UUID_A, 36, &cmd, NULL), 0);
    assert_out("[\"daemon:request\",{\"requestId\":\"" UUID_A
               "\",\"command\":\"get-container-stats\"}]");
    struct proto_span empty = {NULL, 0};
    o = out_begin();
    assert_int_equal(volt_put_request(&o, UUID_A, 36, &cmd, &empty), 0);
    assert_out("[\"daemon:request\",{\"requestId\":\"" UUID_A
               "\",\"command\":\"get-container-stats\"}]");
}

static void test_put_request_refused(void **state)
{
    (void)state;
    struct volt_out o = out_begin();
    struct proto_span cmd = proto_span_str("\xff", 1);
    assert_int_equal(volt_put_request(&o, UUID_A, 36, &cmd, NULL), PROTO_E_NOT_JSON);
    assert_string_equal(o.why, "the command name is not valid UTF-8");
    /* a payload with no JSON form: an int key, an ext, invalid UTF-8 */
    static const uint8_t int_key[] = {0x81, 0x01, 0x02};
    static const uint8_t ext[] = {0xd4, 0x01, 0x00};
    static const uint8_t bad_str[] = {0xa1, 0xff};
    const struct proto_span bad[] = {{int_key, 3}, {ext, 3}, {bad_str, 2}};
    cmd = proto_span_str("c", 1);
    for (size_t i = 0; i < 3; i++) {
        o = out_begin();
        assert_int_equal(volt_put_request(&o, UUID_A, 36, &cmd, &bad[i]), PROTO_E_NOT_JSON);
        assert_non_null(o.why);
    }
}

static void test_put_message(void **state)
{
    (void)state;
    struct volt_out o = out_begin();
    struct proto_span type = proto_span_str("t\"1", 3);
    struct proto_span data = mp("[1,\"é\"]");
    assert_int_equal(volt_put_message(&o, &type, &data), 0);
    assert_out("[\"message\",{\"type\":\"t\\\"1\",\"data\":[1,\"é\"]}]");
    o = out_begin();
    type = proto_span_str("\xc3", 1);
    assert_int_equal(volt_put_message(&o, &type, &data), PROTO_E_NOT_JSON);
    assert_string_equal(o.why, "the message type is not valid UTF-8");
}

static void test_put_answer(void **state)
{
    (void)state;
    struct volt_out o = out_begin();
    struct proto_span data = mp("{\"ok\":1}");
    assert_int_equal(volt_put_answer(&o, "r-1", 3, true, &data, NULL, NULL), 0);
    assert_out(
        "[\"server:response\",{\"requestId\":\"r-1\",\"success\":true,\"data\":{\"ok\":1}}]");
    /* no data: no key */
    o = out_begin();
    assert_int_equal(volt_put_answer(&o, "r-1", 3, true, NULL, NULL, NULL), 0);
    assert_out("[\"server:response\",{\"requestId\":\"r-1\",\"success\":true}]");
    /* refusals */
    struct proto_span msg = proto_span_str("no such plugin", 14);
    o = out_begin();
    assert_int_equal(volt_put_answer(&o, "r-1", 3, false, NULL, "NoHandler", &msg), 0);
    assert_out("[\"server:response\",{\"requestId\":\"r-1\",\"success\":false,\"error\":"
               "{\"code\":\"NoHandler\",\"message\":\"no such plugin\"}}]");
    /* a message that is not UTF-8, or none: replaced, the answer still goes */
    msg = proto_span_str("bad \xff", 5);
    o = out_begin();
    assert_int_equal(volt_put_answer(&o, "r-1", 3, false, NULL, "HandlerError", &msg), 0);
    assert_out("[\"server:response\",{\"requestId\":\"r-1\",\"success\":false,\"error\":"
               "{\"code\":\"HandlerError\",\"message\":\"(the handler's message was not valid "
               "UTF-8)\"}}]");
    o = out_begin();
    assert_int_equal(volt_put_answer(&o, "r-1", 3, false, NULL, "HandlerTimeout", NULL), 0);
    /* the server's id goes back exactly, escaped as JSON */
    o = out_begin();
    assert_int_equal(volt_put_answer(&o, "a\"b", 3, true, NULL, NULL, NULL), 0);
    assert_out("[\"server:response\",{\"requestId\":\"a\\\"b\",\"success\":true}]");
    /* data with no JSON form: refused, for the session to send a HandlerError */
    static const uint8_t ext[] = {0xd4, 0x01, 0x00};
    struct proto_span bad = {ext, 3};
    o = out_begin();
    assert_int_equal(volt_put_answer(&o, "r-1", 3, true, &bad, NULL, NULL), PROTO_E_NOT_JSON);
    assert_non_null(o.why);
    o = out_begin();
    assert_int_equal(volt_put_handler_error(&o, "r-1", 3, "the answer is too \"large\""), 0);
    assert_out("[\"server:response\",{\"requestId\":\"r-1\",\"success\":false,\"error\":"
               "{\"code\":\"HandlerError\",\"message\":\"the answer is too \\\"large\\\"\"}}]");
}

static void test_put_register_and_handlers(void **state)
{
    (void)state;
    struct volt_out o = out_begin();
    struct proto_span list = mp("[\"execute-plugin\",\"list-files\"]");
    assert_int_equal(volt_put_register(&o, "cluster-abc123", "node-7", "0.1.0", &list), 0);
    assert_out("[\"daemon:register\",{\"teamClusterId\":\"cluster-abc123\",\"hostname\":"
               "\"node-7\",\"version\":\"0.1.0\",\"handlers\":[\"execute-plugin\","
               "\"list-files\"]}]");
    o = out_begin();
    list = mp("[]");
    assert_int_equal(volt_put_handlers(&o, &list), 0);
    assert_out("[\"daemon:handlers\",{\"handlers\":[]}]");
    o = out_begin();
    assert_int_equal(volt_put_register(&o, "c\xff", "h", "0.1.0", &list), PROTO_E_NOT_JSON);
    assert_non_null(o.why);
}

static void test_put_auth(void **state)
{
    (void)state;
    size_t at, end;
    struct volt_out o = out_begin();
    assert_int_equal(volt_put_auth(&o, "cluster-dev", "pa\"ss", "", "o-1", &at, &end), 0);
    assert_out("{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"pa\\\"ss\"}");
    assert_int_equal(end - at, 8);
    assert_memory_equal(outbuf.data + at, "\"pa\\\"ss\"", 8);
    /* recovery: both pid and offset, or neither */
    o = out_begin();
    assert_int_equal(volt_put_auth(&o, "c", NULL, "p-1", "o-1", &at, &end), 0);
    assert_out("{\"teamClusterId\":\"c\",\"daemonPassword\":\"\",\"pid\":\"p-1\",\"offset\":"
               "\"o-1\"}");
    assert_int_equal(end - at, 2);
    o = out_begin();
    assert_int_equal(volt_put_auth(&o, "c", "p", "p-1", "", &at, &end), 0);
    assert_out("{\"teamClusterId\":\"c\",\"daemonPassword\":\"p\"}");
}

/* ---- sizes: the handler list against maxPayload ---- */

static void test_names_json_size(void **state)
{
    (void)state;
    const char *const lists[] = {"[]", "[\"a\"]", "[\"a\",\"bc\"]", "[\"q\\\"\\u0001é\"]"};
    for (size_t i = 0; i < 4; i++) {
        struct proto_span l = mp(lists[i]);
        struct volt_out o = out_begin();
        assert_int_equal(volt_put_handlers(&o, &l), 0);
        /* exactly what the builder writes for it */
        size_t want = outbuf.len - strlen("[\"daemon:handlers\",{\"handlers\":}]");
        assert_int_equal(volt_names_json_size(&l), want);
    }
    struct proto_span l = mp("[\"a\",1]");
    assert_int_equal(volt_names_json_size(&l), SIZE_MAX);
    l = mp("{\"a\":\"b\"}");
    assert_int_equal(volt_names_json_size(&l), SIZE_MAX);
    struct proto_span empty = {NULL, 0};
    assert_int_equal(volt_names_json_size(&empty), SIZE_MAX);
}

static void test_handler_room(void **state)
{
    (void)state;
    /* A list of exactly `room` bytes makes a daemon:register that fits,
     * even with an id and host name that escape every byte. */
    const size_t max_payload = 4096, header_max = 48 + 8;
    const char *id = "\x01\x02\x03\x04", *host = "\x05\x06";
    size_t room = volt_handler_room(max_payload, header_max, id, host);
    assert_int_equal(room, max_payload - header_max - 128 - 6 * 6);
    /* names of 10 bytes ("xxxxxxxxxx" with quotes and comma: 13) up to room */
    char json[8192] = "[";
    size_t n = 1;
    while (n + 13 + 1 <= room) {
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"xxxxxxxxxx\"", n > 1 ? "," : "");
    }
    json[n++] = ']';
    json[n] = '\0';
    struct proto_span list = mp(json);
    assert_true(volt_names_json_size(&list) <= room);
    struct volt_out o = out_begin();
    assert_int_equal(volt_put_register(&o, id, host, "0.1.0-rc.1+build", &list), 0);
    if (outbuf.len + header_max > max_payload)
        fail_msg("daemon:register of %zu bytes + header %zu exceeds maxPayload %zu", outbuf.len,
                 header_max, max_payload);
    /* too small a maxPayload: no room at all, never a wrap-around */
    assert_int_equal(volt_handler_room(100, 48, "c", "h"), 0);
    assert_int_equal(volt_handler_room(0, 0, NULL, NULL), 0);
    assert_int_equal(volt_handler_room(1000, 0, NULL, NULL), 1000 - 128);
}

/* ---- heartbeat ---- */

static void test_heartbeat_payload(void **state)
{
    (void)state;
    uint8_t buf[VOLT_HEARTBEAT_PAYLOAD_MAX];
    size_t n = volt_heartbeat_payload(buf, 1234, 5, 6);
    struct proto_span p = {buf, (uint32_t)n};
    assert_string_equal(js(p), "{\"uptimeMs\":1234,\"clients\":5,\"handlers\":6}");
    n = volt_heartbeat_payload(buf, UINT64_MAX, 0, UINT64_MAX);
    assert_true(n <= VOLT_HEARTBEAT_PAYLOAD_MAX);
    p.len = (uint32_t)n;
    assert_string_equal(
        js(p),
        "{\"uptimeMs\":18446744073709551615,\"clients\":0,\"handlers\":18446744073709551615}");
    /* and it goes out as the daemon:request the server expects */
    struct proto_span cmd =
        proto_span_str(VOLT_HEARTBEAT_COMMAND, sizeof(VOLT_HEARTBEAT_COMMAND) - 1);
    n = volt_heartbeat_payload(buf, 1, 2, 3);
    p.len = (uint32_t)n;
    struct volt_out o = out_begin();
    assert_int_equal(volt_put_request(&o, UUID_A, 36, &cmd, &p), 0);
    assert_out("[\"daemon:request\",{\"requestId\":\"" UUID_A
               "\",\"command\":\"runtime.heartbeat\","
               "\"payload\":{\"uptimeMs\":1,\"clients\":2,\"handlers\":3}}]");
}

static void test_heartbeat_result(void **state)
{
    (void)state;
    uint32_t failures = 0;
    assert_int_equal(volt_heartbeat_result(&failures, PROTO_E_COMMAND_TIMEOUT), VOLT_HB_REPORT);
    assert_int_equal(volt_heartbeat_result(&failures, PROTO_E_COMMAND_REJECTED), VOLT_HB_REPORT);
    /* the link going away is reported on its own and counts for nothing */
    assert_int_equal(volt_heartbeat_result(&failures, PROTO_E_SOCKET_NOT_READY), VOLT_HB_NONE);
    assert_int_equal(failures, 2);
    assert_int_equal(volt_heartbeat_result(&failures, PROTO_E_BAD_FRAME), VOLT_HB_DROP);
    assert_int_equal(failures, VOLT_HEARTBEATS_BEFORE_RECONNECT);
    /* one success and the count starts again */
    assert_int_equal(volt_heartbeat_result(&failures, 0), VOLT_HB_NONE);
    assert_int_equal(failures, 0);
    assert_int_equal(volt_heartbeat_result(&failures, PROTO_E_COMMAND_TIMEOUT), VOLT_HB_REPORT);
    assert_int_equal(volt_heartbeat_result(&failures, 0), VOLT_HB_NONE);
    assert_int_equal(volt_heartbeat_result(&failures, PROTO_E_COMMAND_TIMEOUT), VOLT_HB_REPORT);
    assert_int_equal(volt_heartbeat_result(&failures, PROTO_E_COMMAND_TIMEOUT), VOLT_HB_REPORT);
}

/* The first registration's hold: every branch. */
static void test_register_hold(void **state)
{
    (void)state;
    const uint64_t t0 = 1000;

    /* announceDelay 0: never, whatever is known */
    assert_int_equal(volt_register_hold(t0, t0, 0, 0, VOLT_HANDLERS_WAITING), 0);
    assert_int_equal(volt_register_hold(t0, t0, 0, 0, VOLT_HANDLERS_UNKNOWN), 0);
    /* nothing missing (first start, empty list, list complete): at once */
    assert_int_equal(volt_register_hold(t0, t0, 2000, 0, VOLT_HANDLERS_RESTORED), 0);
    assert_int_equal(volt_register_hold(t0 + 5, t0, 2000, t0 + 5, VOLT_HANDLERS_RESTORED), 0);
    /* waiting for a known list: up to the deadline, activity or not */
    assert_int_equal(volt_register_hold(t0, t0, 2000, 0, VOLT_HANDLERS_WAITING), 2000);
    assert_int_equal(volt_register_hold(t0 + 500, t0, 2000, 0, VOLT_HANDLERS_WAITING), 1500);
    assert_int_equal(volt_register_hold(t0 + 500, t0, 2000, t0 + 490, VOLT_HANDLERS_WAITING), 1500);
    assert_int_equal(volt_register_hold(t0 + 1999, t0, 2000, 0, VOLT_HANDLERS_WAITING), 1);
    assert_int_equal(volt_register_hold(t0 + 2000, t0, 2000, 0, VOLT_HANDLERS_WAITING), 0);
    assert_int_equal(volt_register_hold(t0 + 9000, t0, 2000, 0, VOLT_HANDLERS_WAITING), 0);
    /* unknown: the quiet rule, a tenth of announceDelay without activity,
     * counted from the start when there was none since */
    assert_int_equal(volt_register_hold(t0, t0, 2000, 0, VOLT_HANDLERS_UNKNOWN), 200);
    assert_int_equal(volt_register_hold(t0 + 150, t0, 2000, 0, VOLT_HANDLERS_UNKNOWN), 50);
    assert_int_equal(volt_register_hold(t0 + 150, t0, 2000, t0 - 10, VOLT_HANDLERS_UNKNOWN), 50);
    assert_int_equal(volt_register_hold(t0 + 200, t0, 2000, 0, VOLT_HANDLERS_UNKNOWN), 0);
    assert_int_equal(volt_register_hold(t0 + 300, t0, 2000, t0 + 250, VOLT_HANDLERS_UNKNOWN), 150);
    assert_int_equal(volt_register_hold(t0 + 450, t0, 2000, t0 + 250, VOLT_HANDLERS_UNKNOWN), 0);
    /* ... and never past the deadline, however busy the clients are */
    assert_int_equal(volt_register_hold(t0 + 1900, t0, 2000, t0 + 1890, VOLT_HANDLERS_UNKNOWN),
                     100);
    assert_int_equal(volt_register_hold(t0 + 2000, t0, 2000, t0 + 1999, VOLT_HANDLERS_UNKNOWN), 0);
    /* a delay under 10 ms has no quiet period left */
    assert_int_equal(volt_register_hold(t0, t0, 9, 0, VOLT_HANDLERS_UNKNOWN), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_ok_without_data),
        cmocka_unit_test(test_response_data_only_after_a_response),
        cmocka_unit_test(test_response_rejected),
        cmocka_unit_test(test_response_rejected_without_words),
        cmocka_unit_test(test_response_success_must_be_true),
        cmocka_unit_test(test_response_request_id),
        cmocka_unit_test(test_response_extra_fields),
        cmocka_unit_test(test_response_data_depth),
        cmocka_unit_test(test_response_data_not_utf8),
        cmocka_unit_test(test_response_binary),
        cmocka_unit_test(test_server_request),
        cmocka_unit_test(test_server_request_without_payload),
        cmocka_unit_test(test_server_request_id),
        cmocka_unit_test(test_server_request_without_command),
        cmocka_unit_test(test_server_request_payload_undeliverable),
        cmocka_unit_test(test_server_request_binary_payload),
        cmocka_unit_test(test_integers_64bit_both_ways),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_message_malformed),
        cmocka_unit_test(test_event_shape),
        cmocka_unit_test(test_event_recovery_offset),
        cmocka_unit_test(test_event_salvage),
        cmocka_unit_test(test_event_not_utf8),
        cmocka_unit_test(test_event_parser_reused),
        cmocka_unit_test(test_register_ack),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_connect_error),
        cmocka_unit_test(test_put_request),
        cmocka_unit_test(test_put_request_refused),
        cmocka_unit_test(test_put_message),
        cmocka_unit_test(test_put_answer),
        cmocka_unit_test(test_put_register_and_handlers),
        cmocka_unit_test(test_put_auth),
        cmocka_unit_test(test_names_json_size),
        cmocka_unit_test(test_handler_room),
        cmocka_unit_test(test_heartbeat_payload),
        cmocka_unit_test(test_heartbeat_result),
        cmocka_unit_test(test_register_hold),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
