/* Monitor lines: the direction column for each dir, local frames as JSON,
 * upstream packets as one line of text, --json as raw frames. */
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
#include "proto/limits.h"
#include "trace_print.h"

/* 2026-11-28T04:00:00.123456Z */
#define T_US (1795838400ull * 1000000u + 123456u)

static struct proto_msg trace(const char *dir, uint64_t peer, struct proto_span frame)
{
    struct proto_msg m = {.op = PROTO_OP_TRACE,
                          .fields = PROTO_F_DIR | PROTO_F_PEER | PROTO_F_TIME_US | PROTO_F_FRAME,
                          .dir = proto_span_str(dir, (uint32_t)strlen(dir)),
                          .peer = peer,
                          .time_us = T_US,
                          .frame = frame};
    return m;
}

/* Encodes m, decodes it back (so spans point into a real frame body) and
 * prints it; returns the printed text (caller frees). */
static char *print_trace(const struct proto_msg *in, bool json)
{
    struct proto_buf frame = PROTO_BUF_INIT, scratch = PROTO_BUF_INIT;
    struct jsonline *jl = jsonline_new();
    struct proto_span body;
    struct proto_msg m;
    const char *why;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_int_equal(proto_msg_encode(&frame, in, PROTO_DEFAULT_MAX_FRAME), 0);
    body.ptr = frame.data + PROTO_LENGTH_PREFIX;
    body.len = (uint32_t)(frame.len - PROTO_LENGTH_PREFIX);
    assert_int_equal(proto_msg_decode(&body, &m, &why), 0);
    assert_int_equal(trace_print(f, jl, &body, &m, json, &scratch), 0);
    fclose(f);
    jsonline_free(jl);
    proto_buf_free(&frame);
    proto_buf_free(&scratch);
    return text;
}

static void test_direction(void **state)
{
    struct proto_span none = {NULL, 0};
    char buf[64];
    struct proto_msg m;

    m = trace("local-in", 3, none);
    assert_string_equal(trace_direction(&m, buf, sizeof(buf)), "c3 -> broker");
    m = trace("local-out", 12, none);
    assert_string_equal(trace_direction(&m, buf, sizeof(buf)), "broker -> c12");
    m = trace("upstream-in", 0, none);
    assert_string_equal(trace_direction(&m, buf, sizeof(buf)), "server -> broker");
    m = trace("upstream-out", 0, none);
    assert_string_equal(trace_direction(&m, buf, sizeof(buf)), "broker -> server");
    m = trace("sideways", 0, none);
    assert_string_equal(trace_direction(&m, buf, sizeof(buf)), "sideways");
}

static void test_local_frame(void **state)
{
    /* {"op":"ping","id":1} */
    static const uint8_t ping[] = {0x82, 0xa2, 'o',  'p', 0xa4, 'p', 'i',
                                   'n',  'g',  0xa2, 'i', 'd',  1};
    struct proto_span frame = {ping, sizeof(ping)};
    struct proto_msg m = trace("local-in", 3, frame);
    char *text = print_trace(&m, false);

    assert_string_equal(
        text, "2026-11-28T04:00:00.123456Z  c3 -> broker      {\"op\":\"ping\",\"id\":1}\n");
    free(text);

    text = print_trace(&m, true);
    assert_string_equal(text,
                        "{\"op\":\"trace\",\"dir\":\"local-in\",\"peer\":3,"
                        "\"time_us\":1795838400123456,\"frame\":{\"op\":\"ping\",\"id\":1}}\n");
    free(text);
}

static void test_upstream_packet(void **state)
{
    /* str 8: 42["message",{"a":"b\nc"}] with a real newline and a tab */
    static const char packet[] = "42[\"message\",{\"a\":\"b\nc\t\"}]\x01";
    struct proto_buf mp = PROTO_BUF_INIT;
    struct proto_span frame;
    struct proto_msg m;
    char *text;

    assert_int_equal(proto_mp_put_str(&mp, packet, strlen(packet)), 0);
    frame.ptr = mp.data;
    frame.len = (uint32_t)mp.len;
    m = trace("upstream-out", 0, frame);
    text = print_trace(&m, false);
    assert_string_equal(text, "2026-11-28T04:00:00.123456Z  broker -> server  "
                              "42[\"message\",{\"a\":\"b\\nc\\x09\"}]\\x01\n");
    free(text);

    /* A binary packet shows as $bin. */
    proto_buf_reset(&mp);
    assert_int_equal(proto_mp_put_bin(&mp, "\x01\x02\x03", 3), 0);
    frame.ptr = mp.data;
    frame.len = (uint32_t)mp.len;
    m = trace("upstream-in", 0, frame);
    text = print_trace(&m, false);
    assert_string_equal(text,
                        "2026-11-28T04:00:00.123456Z  server -> broker  {\"$bin\":\"AQID\"}\n");
    free(text);
    proto_buf_free(&mp);
}

static void test_other_frames(void **state)
{
    const char *ev = "connected";
    struct proto_msg m = {.op = PROTO_OP_EVENT,
                          .fields = PROTO_F_EVENT,
                          .event = proto_span_str(ev, (uint32_t)strlen(ev))};
    char *text = print_trace(&m, false);
    const char *tail = "  (monitor)         {\"op\":\"event\",\"event\":\"connected\"}\n";

    /* The current time, then the rest. */
    assert_int_equal(strlen(text), 27 + strlen(tail));
    assert_memory_equal(text, "20", 2);
    assert_int_equal(text[26], 'Z');
    assert_string_equal(text + 27, tail);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direction),
        cmocka_unit_test(test_local_frame),
        cmocka_unit_test(test_upstream_packet),
        cmocka_unit_test(test_other_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
