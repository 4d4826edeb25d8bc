/* The one trace line (every kind, side and direction, text and JSON),
 * what a frame is about (local frames and Socket.IO packets), --match,
 * the capture format (round trip, and refusals of bad files), and the
 * sink that puts them together (--count, --write then --read gives the
 * same lines). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/msgpack.h"
#include "trace_filter.h"
#include "trace_line.h"
#include "trace_sink.h"

/* 2026-11-28T04:00:00.123456Z */
#define T_US   (1795838400ull * 1000000u + 123456u)
#define T_TEXT "2026-11-28T04:00:00.123456Z"

/* A local frame body from a proto_msg. */
static struct proto_buf body_of(const struct proto_msg *m)
{
    struct proto_buf frame = PROTO_BUF_INIT;

    assert_int_equal(proto_msg_encode(&frame, m, PROTO_DEFAULT_MAX_FRAME), 0);
    proto_buf_consume(&frame, PROTO_LENGTH_PREFIX);
    return frame;
}

/* An upstream packet: one msgpack str. */
static struct proto_buf packet_of(const char *text)
{
    struct proto_buf b = PROTO_BUF_INIT;

    assert_int_equal(proto_mp_put_str(&b, text, strlen(text)), 0);
    return b;
}

static char *format(const struct trace_ev *ev, bool json)
{
    struct proto_buf out = PROTO_BUF_INIT;
    char *s;

    assert_int_equal(trace_format(ev, json, &out), 0);
    s = strndup((const char *)out.data, out.len);
    proto_buf_free(&out);
    return s;
}

/* The text line for who and detail (the who column is 32 wide). */
static const char *line(const char *who, const char *detail)
{
    static char buf[512];

    snprintf(buf, sizeof(buf), T_TEXT "  %-32s  %s\n", who, detail);
    return buf;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static struct trace_ev local(uint8_t dir, const struct proto_buf *body)
{
    struct trace_ev ev = {.time_us = T_US,
                          .kind = TRACE_FRAME,
                          .side = TRACE_LOCAL,
                          .dir = dir,
                          .peer = 3,
                          .name = "files-svc",
                          .pid = 4711,
                          .uid = 1000,
                          .data = body->data,
                          .len = body->len};
    return ev;
}

static void test_text_lines(void **state)
{
    struct proto_msg req = {.op = PROTO_OP_REQUEST,
                            .fields = PROTO_F_ID | PROTO_F_COMMAND,
                            .id = 7,
                            .command = proto_span_str("list", 4)};
    struct proto_buf body = body_of(&req), pkt = packet_of("42/control,[\"message\",{}]\n");
    struct trace_ev ev = local(TRACE_IN, &body);
    char *s;
    (void)state;

    s = format(&ev, false);
    assert_string_equal(s, line("c3 files-svc[4711] -> broker",
                                "{\"op\":\"request\",\"id\":7,\"command\":\"list\"}"));
    free(s);
    ev.dir = TRACE_OUT;
    ev.name = NULL; /* what is known, no more */
    ev.pid = -1;
    s = format(&ev, false);
    assert_string_equal(s,
                        line("broker -> c3", "{\"op\":\"request\",\"id\":7,\"command\":\"list\"}"));
    free(s);
    ev.pid = 9;
    ev.dir = TRACE_IN;
    s = format(&ev, false);
    assert_non_null(strstr(s, "  c3 [9] -> broker  "));
    free(s);

    /* Upstream: text escaped onto one line, no client. */
    ev = (struct trace_ev){.time_us = T_US,
                           .kind = TRACE_FRAME,
                           .side = TRACE_UPSTREAM,
                           .dir = TRACE_IN,
                           .pid = -1,
                           .uid = -1,
                           .data = pkt.data,
                           .len = pkt.len};
    s = format(&ev, false);
    assert_string_equal(s, line("server -> broker", "42/control,[\"message\",{}]\\n"));
    free(s);
    ev.dir = TRACE_OUT;
    s = format(&ev, false);
    assert_non_null(strstr(s, "  broker -> server  "));
    free(s);

    /* Events: open, close, error. */
    ev = (struct trace_ev){.time_us = T_US,
                           .kind = TRACE_OPEN,
                           .side = TRACE_LOCAL,
                           .dir = TRACE_IN,
                           .peer = 2,
                           .name = "x",
                           .pid = 5,
                           .uid = 6,
                           .data = (const uint8_t *)"uid 6, gid 7",
                           .len = 12};
    s = format(&ev, false);
    assert_string_equal(s, line("c2 x[5] + connected", "uid 6, gid 7"));
    free(s);
    ev.kind = TRACE_CLOSE;
    ev.data = (const uint8_t *)"by the client";
    ev.len = 13;
    s = format(&ev, false);
    assert_string_equal(s, line("c2 x[5] - closed", "by the client"));
    free(s);
    ev.kind = TRACE_ERROR;
    ev.data = (const uint8_t *)"bad frame";
    ev.len = 9;
    s = format(&ev, false);
    assert_string_equal(s, line("c2 x[5] -> broker !", "bad frame"));
    free(s);
    proto_buf_free(&body);
    proto_buf_free(&pkt);
}

static void test_json_lines(void **state)
{
    struct proto_msg hello = {
        .op = PROTO_OP_HELLO, .fields = PROTO_F_NAME, .name = proto_span_str("a\"b", 3)};
    struct proto_buf body = body_of(&hello), pkt = packet_of("2");
    struct trace_ev ev = local(TRACE_IN, &body);
    char *s;
    (void)state;

    ev.name = "a\"b";
    s = format(&ev, true);
    assert_string_equal(s, "{\"time\":\"" T_TEXT "\",\"time_us\":1795838400123456,"
                           "\"kind\":\"frame\",\"side\":\"local\",\"dir\":\"in\",\"peer\":3,"
                           "\"name\":\"a\\\"b\",\"pid\":4711,\"uid\":1000,"
                           "\"frame\":{\"op\":\"hello\",\"name\":\"a\\\"b\"}}\n");
    free(s);
    ev = (struct trace_ev){.time_us = T_US,
                           .kind = TRACE_FRAME,
                           .side = TRACE_UPSTREAM,
                           .dir = TRACE_OUT,
                           .pid = -1,
                           .uid = -1,
                           .data = pkt.data,
                           .len = pkt.len};
    s = format(&ev, true);
    assert_string_equal(s, "{\"time\":\"" T_TEXT "\",\"time_us\":1795838400123456,"
                           "\"kind\":\"frame\",\"side\":\"upstream\",\"dir\":\"out\","
                           "\"frame\":\"2\"}\n");
    free(s);
    ev = (struct trace_ev){.time_us = T_US,
                           .kind = TRACE_CLOSE,
                           .side = TRACE_LOCAL,
                           .dir = TRACE_OUT,
                           .peer = 1,
                           .pid = -1,
                           .uid = -1,
                           .data = (const uint8_t *)"gone\n",
                           .len = 5};
    s = format(&ev, true);
    assert_string_equal(s, "{\"time\":\"" T_TEXT "\",\"time_us\":1795838400123456,"
                           "\"kind\":\"close\",\"side\":\"local\",\"dir\":\"out\",\"peer\":1,"
                           "\"text\":\"gone\\n\"}\n");
    free(s);
    proto_buf_free(&body);
    proto_buf_free(&pkt);
}

/* A frame with no JSON form (invalid UTF-8) still makes a line. */
static void test_frame_without_json_form(void **state)
{
    struct proto_buf body = PROTO_BUF_INIT;
    struct trace_ev ev;
    char *s;
    (void)state;

    proto_mp_put_map(&body, 1);
    proto_mp_put_cstr(&body, "op");
    proto_mp_put_str(&body, "\xff\xfe", 2);
    ev = local(TRACE_IN, &body);
    s = format(&ev, false);
    assert_non_null(strstr(s, "-> broker      (invalid UTF-8"));
    free(s);
    s = format(&ev, true);
    assert_non_null(strstr(s, "\"frame\":\"(invalid UTF-8"));
    free(s);
    proto_buf_free(&body);
}

static void test_from_msg(void **state)
{
    static const struct {
        const char *dir;
        uint8_t side, way;
    } cases[] = {{"local-in", TRACE_LOCAL, TRACE_IN},
                 {"local-out", TRACE_LOCAL, TRACE_OUT},
                 {"upstream-in", TRACE_UPSTREAM, TRACE_IN},
                 {"upstream-out", TRACE_UPSTREAM, TRACE_OUT}};
    struct trace_ev ev;
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        struct proto_msg m = {.op = PROTO_OP_TRACE,
                              .peer = 4,
                              .time_us = 99,
                              .dir = proto_span_str(cases[i].dir, (uint32_t)strlen(cases[i].dir))};
        assert_int_equal(trace_from_msg(&m, &ev), 0);
        assert_int_equal(ev.side, cases[i].side);
        assert_int_equal(ev.dir, cases[i].way);
        assert_int_equal(ev.peer, 4);
        assert_int_equal(ev.time_us, 99);
        assert_int_equal(ev.pid, -1);
    }
    struct proto_msg bad = {.op = PROTO_OP_TRACE, .dir = proto_span_str("sideways", 8)};
    assert_int_equal(trace_from_msg(&bad, &ev), PROTO_E_BAD_REQUEST);
}

static void test_what(void **state)
{
    struct proto_msg emit = {
        .op = PROTO_OP_EMIT, .fields = PROTO_F_TYPE, .type = proto_span_str("demo.x", 6)};
    struct proto_buf body = body_of(&emit);
    struct proto_buf req = packet_of("42/control,[\"daemon:request\",{\"requestId\":\"u\","
                                     "\"command\":\"get-stats\",\"payload\":{}}]");
    struct proto_buf msg = packet_of("42/control,[\"message\",{\"type\":\"snap\\u0073hot\"}]");
    struct proto_buf ack = packet_of("43/control,1[{\"success\":true}]");
    struct proto_buf ping = packet_of("2");
    struct trace_ev ev = local(TRACE_IN, &body);
    struct trace_what w;
    (void)state;

    trace_what(&ev, &w);
    assert_string_equal(w.op, "emit");
    assert_string_equal(w.type, "demo.x");
    assert_string_equal(w.command, "");
    ev.side = TRACE_UPSTREAM;
    ev.data = req.data;
    ev.len = req.len;
    trace_what(&ev, &w);
    assert_string_equal(w.op, "daemon:request");
    assert_string_equal(w.command, "get-stats");
    ev.data = msg.data;
    ev.len = msg.len;
    trace_what(&ev, &w);
    assert_string_equal(w.op, "message");
    assert_string_equal(w.type, "snapshot"); /* escapes decoded */
    ev.data = ack.data;
    ev.len = ack.len;
    trace_what(&ev, &w);
    assert_string_equal(w.op, "");
    ev.data = ping.data;
    ev.len = ping.len;
    trace_what(&ev, &w);
    assert_string_equal(w.op, "");
    proto_buf_free(&body);
    proto_buf_free(&req);
    proto_buf_free(&msg);
    proto_buf_free(&ack);
    proto_buf_free(&ping);
}

static bool matches(const char *const *specs, size_t n, const struct trace_ev *ev)
{
    struct trace_filter *f = trace_filter_new();
    char err[200];
    bool r;

    for (size_t i = 0; i < n; i++) {
        int rc = trace_filter_add(f, specs[i], err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "--match %s: %s\n", specs[i], err);
        assert_int_equal(rc, 0);
    }
    r = trace_filter_match(f, ev);
    trace_filter_free(f);
    return r;
}

#define M(ev, ...)                                                                                 \
    matches((const char *const[]){__VA_ARGS__},                                                    \
            sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *), ev)

static void test_filter(void **state)
{
    struct proto_msg call = {.op = PROTO_OP_CALL,
                             .fields = PROTO_F_ID | PROTO_F_COMMAND,
                             .id = 1,
                             .command = proto_span_str("list-files", 10)};
    struct proto_buf body = body_of(&call), pkt = packet_of("42/control,[\"message\",{}]");
    struct trace_ev ev = local(TRACE_OUT, &body), up;
    struct trace_filter *f = trace_filter_new();
    char err[200];
    (void)state;

    up = (struct trace_ev){.kind = TRACE_FRAME,
                           .side = TRACE_UPSTREAM,
                           .dir = TRACE_IN,
                           .pid = -1,
                           .uid = -1,
                           .data = pkt.data,
                           .len = pkt.len};
    assert_true(trace_filter_match(f, &ev)); /* no --match: everything */
    assert_true(M(&ev, "client=c3"));
    assert_true(M(&ev, "client=3"));
    assert_true(M(&ev, "client=files-*"));
    assert_false(M(&ev, "client=c4"));
    assert_true(M(&ev, "name=files-svc,pid=4711,uid=1000,peer=3"));
    assert_false(M(&ev, "name=files-svc,pid=1"));
    assert_true(M(&ev, "dir=out,side=local"));
    assert_true(M(&ev, "dir=local-out"));
    assert_false(M(&ev, "dir=upstream-out"));
    assert_false(M(&ev, "dir=in"));
    assert_true(M(&ev, "op=call,command=list-*"));
    assert_false(M(&ev, "op=call,command=get-*"));
    assert_true(M(&ev, "op!=request"));
    assert_true(M(&ev, "kind=frame"));
    assert_false(M(&ev, "kind=open"));
    /* Alternatives: any of them. */
    assert_true(M(&ev, "op=request", "command=list-files"));
    assert_false(M(&ev, "op=request", "side=upstream"));
    /* The server's side has no client. */
    assert_false(M(&up, "client=*"));
    assert_false(M(&up, "pid=4711"));
    assert_true(M(&up, "side=upstream,op=message"));
    assert_true(M(&up, "dir=upstream-in"));

    /* Bad specs are refused with a reason. */
    assert_int_equal(trace_filter_add(f, "colour=red", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown key 'colour'"));
    assert_int_equal(trace_filter_add(f, "pid=abc", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "wants a number"));
    assert_int_equal(trace_filter_add(f, "dir=up", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "in, out"));
    assert_int_equal(trace_filter_add(f, "side=both", err, sizeof(err)), -1);
    assert_int_equal(trace_filter_add(f, "kind=any", err, sizeof(err)), -1);
    assert_int_equal(trace_filter_add(f, "op", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "KEY=VALUE"));
    assert_int_equal(trace_filter_add(f, ",", err, sizeof(err)), -1);
    assert_true(trace_filter_match(f, &ev)); /* refused specs left nothing behind */
    trace_filter_free(f);
    proto_buf_free(&body);
    proto_buf_free(&pkt);
}

/* Events written then read back are the same events. */
static void test_capture_round_trip(void **state)
{
    struct proto_msg req = {.op = PROTO_OP_REQUEST,
                            .fields = PROTO_F_ID | PROTO_F_COMMAND,
                            .id = 7,
                            .command = proto_span_str("list", 4)};
    struct proto_buf body = body_of(&req), pkt = packet_of("3"), rec = PROTO_BUF_INIT;
    struct trace_ev in[3], out;
    char *text = NULL, err[200];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    (void)state;

    in[0] = local(TRACE_IN, &body);
    in[1] = (struct trace_ev){.time_us = T_US + 1,
                              .kind = TRACE_FRAME,
                              .side = TRACE_UPSTREAM,
                              .dir = TRACE_OUT,
                              .pid = -1,
                              .uid = -1,
                              .data = pkt.data,
                              .len = pkt.len};
    in[2] = (struct trace_ev){.time_us = T_US + 2,
                              .kind = TRACE_CLOSE,
                              .side = TRACE_LOCAL,
                              .dir = TRACE_OUT,
                              .peer = 9,
                              .name = "",
                              .pid = 0,
                              .uid = -1,
                              .data = (const uint8_t *)"by the broker",
                              .len = 13};
    assert_int_equal(capture_write_header(f), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(capture_write(f, &in[i]), 0);
    fclose(f);
    assert_memory_equal(text, "VOLTCAP\n\0\1\0\0", 12);

    f = fmemopen(text, len, "rb");
    assert_int_equal(capture_read_header(f, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        char *a, *b;
        assert_int_equal(capture_read(f, &rec, &out, err, sizeof(err)), 1);
        assert_int_equal(out.time_us, in[i].time_us);
        assert_int_equal(out.kind, in[i].kind);
        assert_int_equal(out.side, in[i].side);
        assert_int_equal(out.dir, in[i].dir);
        assert_int_equal(out.peer, in[i].peer);
        assert_int_equal(out.pid, in[i].pid);
        assert_int_equal(out.uid, in[i].uid);
        assert_string_equal(out.name, in[i].name ? in[i].name : "");
        assert_int_equal(out.len, in[i].len);
        assert_memory_equal(out.data, in[i].data, in[i].len);
        a = format(&in[i], false);
        b = format(&out, false);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    assert_int_equal(capture_read(f, &rec, &out, err, sizeof(err)), 0);
    fclose(f);

    /* A file cut in the middle of a record: an error naming where. */
    f = fmemopen(text, len - 3, "rb");
    assert_int_equal(capture_read_header(f, err, sizeof(err)), 0);
    assert_int_equal(capture_read(f, &rec, &out, err, sizeof(err)), 1);
    assert_int_equal(capture_read(f, &rec, &out, err, sizeof(err)), 1);
    assert_int_equal(capture_read(f, &rec, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "truncated record at byte"));
    fclose(f);

    /* Not a capture; a newer version. */
    f = fmemopen("{\"op\":\"hello\"}", 14, "rb");
    assert_int_equal(capture_read_header(f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a volt-inspect capture"));
    fclose(f);
    text[9] = 2;
    f = fmemopen(text, len, "rb");
    assert_int_equal(capture_read_header(f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "version 2"));
    fclose(f);
    /* A record whose length is a lie. */
    text[9] = 1;
    text[12] = (char)0xff;
    f = fmemopen(text, len, "rb");
    assert_int_equal(capture_read_header(f, err, sizeof(err)), 0);
    assert_int_equal(capture_read(f, &rec, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot be right"));
    fclose(f);
    free(text);

    /* A record whose frame is not a frame (the live paths get theirs
     * through a reader; a file can hold anything): refused, not printed. */
    static const uint8_t not_a_map[] = {0xc1};
    text = NULL;
    f = open_memstream(&text, &len);
    struct trace_ev bad = local(TRACE_IN, &body);
    bad.data = not_a_map;
    bad.len = sizeof(not_a_map);
    assert_int_equal(capture_write_header(f), 0);
    assert_int_equal(capture_write(f, &bad), 0);
    fclose(f);
    f = fmemopen(text, len, "rb");
    assert_int_equal(capture_read_header(f, err, sizeof(err)), 0);
    assert_int_equal(capture_read(f, &rec, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is not valid"));
    fclose(f);
    free(text);
    proto_buf_free(&rec);
    proto_buf_free(&body);
    proto_buf_free(&pkt);
}

/* The sink: filter, --count, and a capture that replays to the same
 * lines. */
static void test_sink(void **state)
{
    struct proto_buf body = PROTO_BUF_INIT, rec = PROTO_BUF_INIT;
    char path[] = "/tmp/volt-test-capXXXXXX";
    char *live = NULL, *again = NULL, err[200];
    size_t live_len = 0, again_len = 0;
    const char *match[] = {"dir=in"};
    struct trace_sink *s;
    struct trace_ev ev;
    FILE *f;
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    close(fd);
    proto_mp_put_map(&body, 1);
    proto_mp_put_cstr(&body, "op");
    proto_mp_put_cstr(&body, "ping");
    f = open_memstream(&live, &live_len);
    struct trace_sink_opts o = {
        .out = f, .matches = match, .n_matches = 1, .count = 2, .duration_ms = -1, .write = path};
    assert_int_equal(trace_sink_new(&o, &s, err, sizeof(err)), 0);
    ev = local(TRACE_IN, &body);
    assert_false(trace_sink_emit(s, &ev));
    ev.dir = TRACE_OUT; /* filtered out: neither shown nor counted */
    assert_false(trace_sink_emit(s, &ev));
    ev.dir = TRACE_IN;
    ev.time_us++;
    assert_true(trace_sink_emit(s, &ev)); /* the second shown: done */
    assert_true(trace_sink_done(s));
    assert_int_equal(trace_sink_shown(s), 2);
    trace_sink_free(s);
    fclose(f);

    f = open_memstream(&again, &again_len);
    struct trace_sink_opts r = {.out = f, .count = -1, .duration_ms = -1, .replay = true};
    assert_int_equal(trace_sink_new(&r, &s, err, sizeof(err)), 0);
    FILE *cap = fopen(path, "rb");
    assert_non_null(cap);
    assert_int_equal(capture_read_header(cap, err, sizeof(err)), 0);
    while (capture_read(cap, &rec, &ev, err, sizeof(err)) == 1)
        trace_sink_emit(s, &ev);
    fclose(cap);
    trace_sink_free(s);
    fclose(f);
    assert_int_equal(again_len, live_len);
    assert_string_equal(again, live);

    /* A bad --match and an unwritable capture are refused at the start. */
    const char *bad[] = {"nope=1"};
    struct trace_sink_opts b = {.matches = bad, .n_matches = 1, .count = -1, .duration_ms = -1};
    assert_int_equal(trace_sink_new(&b, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown key"));
    struct trace_sink_opts w = {.count = -1, .duration_ms = -1, .write = "/nonexistent/dir/cap"};
    assert_int_equal(trace_sink_new(&w, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot write the capture /nonexistent/dir/cap"));
    unlink(path);
    free(live);
    free(again);
    proto_buf_free(&body);
    proto_buf_free(&rec);
}

/* The daemon password asked for through the broker never reaches a trace
 * line or a capture: the answer's data is "(redacted)". Other answers, and
 * the same id from another client, are shown as they are. */
static void test_sink_redacts_password(void **state)
{
    struct proto_msg ask = {.op = PROTO_OP_CREDENTIAL,
                            .fields = PROTO_F_ID | PROTO_F_NAME,
                            .id = 4,
                            .name = proto_span_str("daemonPassword", 14)};
    struct proto_msg answer = {.op = PROTO_OP_RESULT,
                               .fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_DATA,
                               .id = 4,
                               .ok = true};
    struct proto_buf secret = PROTO_BUF_INIT, ask_body, ans_body, rec = PROTO_BUF_INIT;
    char path[] = "/tmp/volt-test-secretXXXXXX", *out = NULL, err[200];
    size_t len = 0;
    struct trace_sink *s;
    struct trace_ev ev;
    FILE *f = open_memstream(&out, &len);
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    close(fd);
    proto_mp_put_cstr(&secret, "s3cret-pw");
    answer.data = (struct proto_span){secret.data, (uint32_t)secret.len};
    ask_body = body_of(&ask);
    ans_body = body_of(&answer);
    struct trace_sink_opts o = {.out = f, .count = -1, .duration_ms = -1, .write = path};
    assert_int_equal(trace_sink_new(&o, &s, err, sizeof(err)), 0);
    ev = local(TRACE_OUT, &ans_body); /* an answer nobody asked a secret for */
    ev.peer = 9;
    trace_sink_emit(s, &ev);
    ev = local(TRACE_IN, &ask_body);
    trace_sink_emit(s, &ev);
    ev = local(TRACE_OUT, &ans_body);
    ev.peer = 8; /* another client's id 4 */
    trace_sink_emit(s, &ev);
    ev.peer = 3; /* the answer to the ask */
    trace_sink_emit(s, &ev);
    trace_sink_emit(s, &ev); /* once only: a repeated id is not a secret */
    trace_sink_free(s);
    fclose(f);
    assert_int_equal(count_of(out, "s3cret-pw"), 3);
    assert_int_equal(count_of(out, "\"data\":\"(redacted)\""), 1);
    /* Line 4 is the redacted one. */
    const char *l4 = out;
    for (int i = 0; i < 3; i++)
        l4 = strchr(l4, '\n') + 1;
    assert_non_null(strstr(l4, "c3 files-svc[4711]"));
    assert_true(strstr(l4, "(redacted)") < strchr(l4, '\n'));
    /* The capture has it redacted too. */
    f = fopen(path, "rb");
    assert_int_equal(capture_read_header(f, err, sizeof(err)), 0);
    int redacted = 0, clear = 0;
    while (capture_read(f, &rec, &ev, err, sizeof(err)) == 1) {
        redacted += memmem(ev.data, ev.len, "(redacted)", 10) != NULL;
        clear += memmem(ev.data, ev.len, "s3cret-pw", 9) != NULL;
    }
    fclose(f);
    assert_int_equal(redacted, 1);
    assert_int_equal(clear, 3);
    unlink(path);
    free(out);
    proto_buf_free(&secret);
    proto_buf_free(&ask_body);
    proto_buf_free(&ans_body);
    proto_buf_free(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_lines),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_frame_without_json_form),
        cmocka_unit_test(test_from_msg),
        cmocka_unit_test(test_what),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_capture_round_trip),
        cmocka_unit_test(test_sink),
        cmocka_unit_test(test_sink_redacts_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
