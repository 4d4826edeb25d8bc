/* Typed frames: every op through encode -> reader -> decode with its
 * fields, type errors with their reasons, required fields, encode limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/errors.h"
#include "proto/msg.h"
#include "proto/reader.h"

#define S(lit) proto_span_str(lit, sizeof(lit) - 1)

static bool span_equal(struct proto_span a, struct proto_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void assert_msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
    assert_int_equal(a->op, b->op);
    assert_int_equal(a->fields, b->fields);
#define U(f, m)                                                                                    \
    if (a->fields & (f))                                                                           \
    assert_true(a->m == b->m)
#define SP(f, m)                                                                                   \
    if (a->fields & (f))                                                                           \
    assert_true(span_equal(a->m, b->m))
    U(PROTO_F_ID, id);
    U(PROTO_F_MIN_VERSION, min_version);
    U(PROTO_F_MAX_VERSION, max_version);
    U(PROTO_F_VERSION, version);
    U(PROTO_F_TIMEOUT_MS, timeout_ms);
    U(PROTO_F_MAX_FRAME, max_frame);
    U(PROTO_F_PEER, peer);
    U(PROTO_F_TIME_US, time_us);
    U(PROTO_F_OK, ok);
    U(PROTO_F_MAX_TIMEOUT_MS, max_timeout_ms);
    U(PROTO_F_VOLATILE, is_volatile);
    U(PROTO_F_COMMANDS, commands_count);
    SP(PROTO_F_NAME, name);
    SP(PROTO_F_COMMAND, command);
    SP(PROTO_F_CODE, code);
    SP(PROTO_F_MESSAGE, message);
    SP(PROTO_F_SERVER_CODE, server_code);
    SP(PROTO_F_TYPE, type);
    SP(PROTO_F_MATCH, match);
    SP(PROTO_F_EVENT, event);
    SP(PROTO_F_REASON, reason);
    SP(PROTO_F_STATE, state);
    SP(PROTO_F_DIR, dir);
    SP(PROTO_F_COMMANDS, commands);
    SP(PROTO_F_PAYLOAD, payload);
    SP(PROTO_F_DATA, data);
    SP(PROTO_F_FRAME, frame);
    SP(PROTO_F_TEAM_CLUSTER_ID, team_cluster_id);
    SP(PROTO_F_ABOUT, about);
#undef U
#undef SP
}

/* Raw values shared by the cases. */
static struct proto_buf commands_raw, payload_raw, data_raw, frame_raw;

static int setup(void **state)
{
    proto_mp_put_array(&commands_raw, 3);
    proto_mp_put_cstr(&commands_raw, "list-files");
    proto_mp_put_cstr(&commands_raw, "execute-plugin");
    proto_mp_put_cstr(&commands_raw, "");
    proto_mp_put_map(&payload_raw, 2);
    proto_mp_put_cstr(&payload_raw, "containerId");
    proto_mp_put_cstr(&payload_raw, "c-1");
    proto_mp_put_cstr(&payload_raw, "n");
    proto_mp_put_array(&payload_raw, 2);
    proto_mp_put_int(&payload_raw, -5);
    proto_mp_put_double(&payload_raw, 0.25);
    proto_mp_put_bin(&data_raw, "\x00\x01\x02", 3);
    proto_mp_put_map(&frame_raw, 1);
    proto_mp_put_cstr(&frame_raw, "op");
    proto_mp_put_cstr(&frame_raw, "ping");
    return 0;
}

static int teardown(void **state)
{
    proto_buf_free(&commands_raw);
    proto_buf_free(&payload_raw);
    proto_buf_free(&data_raw);
    proto_buf_free(&frame_raw);
    return 0;
}

static struct proto_span raw(const struct proto_buf *b)
{
    struct proto_span s = {b->data, (uint32_t)b->len};
    return s;
}

/* Fills every field of m (the superset any op could carry). */
static void fill_all(struct proto_msg *m)
{
    m->fields = PROTO_F__ALL;
    m->id = UINT64_MAX;
    m->min_version = 1;
    m->max_version = 7;
    m->version = 3;
    m->timeout_ms = 30000;
    m->max_frame = 16777216;
    m->peer = 42;
    m->time_us = 1700000000123456ull;
    m->ok = true;
    m->name = S("teamClusterId");
    m->command = S("get-container-stats");
    m->code = S("COMMAND_REJECTED");
    m->message = S("nope \xe2\x9c\x93");
    m->server_code = S("E_DENIED");
    m->type = S("session.");
    m->match = S("prefix");
    m->event = S("disconnected");
    m->reason = S("transport close");
    m->state = S("backoff");
    m->dir = S("upstream-in");
    m->team_cluster_id = S("cluster-abc123");
    m->about = S("reply");
    m->max_timeout_ms = 600000;
    m->is_volatile = true;
    m->commands = raw(&commands_raw);
    m->commands_count = 3;
    m->payload = raw(&payload_raw);
    m->data = raw(&data_raw);
    m->frame = raw(&frame_raw);
}

/* encode -> reader (fed byte by byte) -> decode, and check() on the result. */
static void round_trip(const struct proto_msg *in, struct proto_buf *wire, struct proto_msg *out,
                       int want_check)
{
    proto_buf_reset(wire);
    assert_int_equal(proto_msg_encode(wire, in, 0), 0);
    struct proto_reader *r = proto_reader_new(NULL);
    struct proto_span f;
    for (size_t i = 0; i + 1 < wire->len; i++) {
        assert_int_equal(proto_reader_feed(r, wire->data + i, 1), 0);
        assert_int_equal(proto_reader_next(r, &f), 0);
    }
    assert_int_equal(proto_reader_feed(r, wire->data + wire->len - 1, 1), 0);
    assert_int_equal(proto_reader_next(r, &f), 1);
    assert_int_equal(f.len + 4, wire->len);
    assert_memory_equal(f.ptr, wire->data + 4, f.len);
    /* decode the reader's span, then again from the wire copy, whose
     * spans outlive the reader */
    const char *why = "unset";
    assert_int_equal(proto_msg_decode(&f, out, &why), 0);
    assert_msg_equal(in, out);
    f.ptr = wire->data + 4;
    assert_int_equal(proto_msg_decode(&f, out, &why), 0);
    assert_null(why);
    assert_msg_equal(in, out);
    assert_int_equal(proto_msg_check(out, &why), want_check);
    assert_int_equal(proto_reader_next(r, &f), 0);
    proto_reader_free(r);
}

static void test_op_names(void **state)
{
    for (int op = 1; op < PROTO_OP__COUNT; op++) {
        const char *n = proto_op_name((enum proto_op)op);
        assert_non_null(n);
        assert_int_equal(proto_op_from_name(n, strlen(n)), op);
    }
    assert_null(proto_op_name(PROTO_OP_NONE));
    assert_null(proto_op_name(PROTO_OP__COUNT));
    assert_int_equal(proto_op_from_name("nope", 4), PROTO_OP_NONE);
    assert_int_equal(proto_op_from_name("pin", 3), PROTO_OP_NONE);
    assert_int_equal(proto_op_from_name("pingx", 5), PROTO_OP_NONE);
    assert_int_equal(proto_op_from_name("request", 7), PROTO_OP_REQUEST);
    assert_int_equal(proto_op_from_name(NULL, 0), PROTO_OP_NONE);
}

/* The op table: every op has a row, and the rule for answering a bad
 * frame follows from it (a reply's id is a call id: never a result). */
static void test_op_table(void **state)
{
    for (int op = 1; op < PROTO_OP__COUNT; op++) {
        const struct proto_op_info *info = proto_op_info((enum proto_op)op);
        assert_non_null(info);
        assert_non_null(info->summary);
        assert_true(info->required != 0);
        if (!info->from_client)
            assert_int_equal(info->answer, PROTO_ANSWER_NONE);
    }
    assert_null(proto_op_info(PROTO_OP_NONE));
    assert_null(proto_op_info(PROTO_OP__COUNT));
    assert_true(proto_op_answered_by_id(PROTO_OP_REQUEST, true));
    assert_true(proto_op_answered_by_id(PROTO_OP_PING, true));
    assert_true(proto_op_answered_by_id(PROTO_OP_EMIT, true));
    assert_false(proto_op_answered_by_id(PROTO_OP_EMIT, false));
    assert_false(proto_op_answered_by_id(PROTO_OP_REPLY, true));
    assert_false(proto_op_answered_by_id(PROTO_OP_HELLO, true));
    assert_false(proto_op_answered_by_id(PROTO_OP_RESULT, true));
    assert_false(proto_op_answered_by_id(PROTO_OP_CALL, true));
    assert_true(proto_op_answered_by_id(PROTO_OP_NONE, true)); /* a newer client's op */
    assert_false(proto_op_answered_by_id(PROTO_OP_NONE, false));
}

/* Each op with the fields PROTOCOL.md gives it. */
static void test_every_op_round_trip(void **state)
{
    struct proto_buf wire = PROTO_BUF_INIT;
    struct proto_msg in, out;
    struct {
        enum proto_op op;
        uint32_t fields;
    } cases[] = {
        {PROTO_OP_HELLO, PROTO_F_MIN_VERSION | PROTO_F_MAX_VERSION | PROTO_F_NAME},
        {PROTO_OP_STATUS, PROTO_F_ID},
        {PROTO_OP_PING, PROTO_F_ID},
        {PROTO_OP_REQUEST, PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_PAYLOAD | PROTO_F_TIMEOUT_MS},
        {PROTO_OP_EMIT, PROTO_F_TYPE | PROTO_F_DATA | PROTO_F_ID},
        {PROTO_OP_EMIT, PROTO_F_TYPE | PROTO_F_DATA | PROTO_F_VOLATILE},
        {PROTO_OP_METRICS, PROTO_F_ID},
        {PROTO_OP_REGISTER, PROTO_F_ID | PROTO_F_COMMANDS},
        {PROTO_OP_UNREGISTER, PROTO_F_ID | PROTO_F_COMMANDS},
        {PROTO_OP_SUBSCRIBE, PROTO_F_ID | PROTO_F_MATCH | PROTO_F_TYPE},
        {PROTO_OP_UNSUBSCRIBE, PROTO_F_ID | PROTO_F_MATCH | PROTO_F_TYPE},
        {PROTO_OP_REPLY, PROTO_F_ID | PROTO_F_OK | PROTO_F_DATA},
        {PROTO_OP_CREDENTIAL, PROTO_F_ID | PROTO_F_NAME},
        {PROTO_OP_MONITOR, PROTO_F_ID},
        {PROTO_OP_WELCOME, PROTO_F_VERSION | PROTO_F_MAX_FRAME | PROTO_F_NAME | PROTO_F_STATE},
        {PROTO_OP_WELCOME, PROTO_F_VERSION | PROTO_F_MAX_FRAME | PROTO_F_NAME | PROTO_F_STATE |
                               PROTO_F_TIMEOUT_MS | PROTO_F_MAX_TIMEOUT_MS |
                               PROTO_F_TEAM_CLUSTER_ID | PROTO_F_REASON | PROTO_F_CODE |
                               PROTO_F_MESSAGE},
        {PROTO_OP_RESULT,
         PROTO_F_ID | PROTO_F_OK | PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_SERVER_CODE},
        {PROTO_OP_RESULT, PROTO_F_ID | PROTO_F_OK | PROTO_F_DATA},
        {PROTO_OP_PONG, PROTO_F_ID},
        {PROTO_OP_CALL, PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_PAYLOAD | PROTO_F_TIMEOUT_MS},
        {PROTO_OP_MESSAGE, PROTO_F_TYPE | PROTO_F_DATA},
        {PROTO_OP_EVENT, PROTO_F_EVENT | PROTO_F_REASON | PROTO_F_STATE},
        {PROTO_OP_EVENT, PROTO_F_EVENT | PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_STATE},
        {PROTO_OP_ERROR, PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_ID},
        {PROTO_OP_ERROR, PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_ID | PROTO_F_ABOUT},
        {PROTO_OP_EVENT, PROTO_F_EVENT | PROTO_F_STATE | PROTO_F_TEAM_CLUSTER_ID},
        {PROTO_OP_TRACE, PROTO_F_DIR | PROTO_F_PEER | PROTO_F_TIME_US | PROTO_F_FRAME},
    };
    bool seen[PROTO_OP__COUNT] = {false};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&in, 0, sizeof in);
        fill_all(&in);
        in.op = cases[i].op;
        in.fields = cases[i].fields;
        if (in.op == PROTO_OP_RESULT && (in.fields & PROTO_F_CODE))
            in.ok = false;
        round_trip(&in, &wire, &out, 0);
        seen[in.op] = true;
        /* the op is the first key */
        assert_memory_equal(wire.data + 5, "\xa2op", 3);
        /* the commands iterator walks what was sent */
        if (in.fields & PROTO_F_COMMANDS) {
            struct proto_str_iter it;
            struct proto_span s;
            proto_msg_commands(&out, &it);
            assert_true(proto_str_iter_next(&it, &s));
            assert_true(span_equal(s, S("list-files")));
            assert_true(proto_str_iter_next(&it, &s));
            assert_true(span_equal(s, S("execute-plugin")));
            assert_true(proto_str_iter_next(&it, &s));
            assert_int_equal(s.len, 0);
            assert_false(proto_str_iter_next(&it, &s));
        }
    }
    for (int op = 1; op < PROTO_OP__COUNT; op++)
        assert_true(seen[op]);

    /* And every op with every field at once. */
    for (int op = 1; op < PROTO_OP__COUNT; op++) {
        memset(&in, 0, sizeof in);
        fill_all(&in);
        in.op = (enum proto_op)op;
        round_trip(&in, &wire, &out, 0);
    }
    /* Boundary values of the integer fields, and false/empty strings. */
    memset(&in, 0, sizeof in);
    in.op = PROTO_OP_RESULT;
    in.fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_CODE | PROTO_F_MESSAGE;
    in.id = 0;
    in.ok = false;
    in.code = S("");
    in.message = S("");
    round_trip(&in, &wire, &out, 0);
    static const uint64_t ids[] = {1,         127, 128, 65535, 65536, UINT32_MAX, (uint64_t)1 << 53,
                                   UINT64_MAX};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        memset(&in, 0, sizeof in);
        in.op = PROTO_OP_PING;
        in.fields = PROTO_F_ID;
        in.id = ids[i];
        round_trip(&in, &wire, &out, 0);
    }
    proto_buf_free(&wire);
}

/* Frame body built by hand: {"op": op, key: <value bytes>, ...}. */
static void body_begin(struct proto_buf *b, uint32_t n, const char *op)
{
    proto_buf_reset(b);
    proto_mp_put_map(b, n + (op ? 1 : 0));
    if (op) {
        proto_mp_put_cstr(b, "op");
        proto_mp_put_cstr(b, op);
    }
}

static int decode_buf(const struct proto_buf *b, struct proto_msg *m, const char **why)
{
    struct proto_span f = {b->data, (uint32_t)b->len};
    assert_int_equal(proto_mp_validate_frame(b->data, b->len, NULL, NULL, NULL), 0);
    return proto_msg_decode(&f, m, why);
}

static void test_wrong_types(void **state)
{
    static const struct {
        const char *key;
        const char *why;
    } cases[] = {
        {"id", "field 'id' must be an unsigned integer"},
        {"min_version", "field 'min_version' must be an unsigned integer"},
        {"timeout_ms", "field 'timeout_ms' must be an unsigned integer"},
        {"time_us", "field 'time_us' must be an unsigned integer"},
        {"name", "field 'name' must be a string"},
        {"command", "field 'command' must be a string"},
        {"dir", "field 'dir' must be a string"},
        {"ok", "field 'ok' must be a boolean"},
        {"commands", "field 'commands' must be an array of strings"},
    };
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_msg m;
    const char *why;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* the bad field before and after a valid id: the id is reported */
        for (int id_first = 0; id_first < 2; id_first++) {
            if (id_first && strcmp(cases[i].key, "id") == 0)
                continue; /* that would be a duplicate */
            body_begin(&b, 2, "request");
            if (id_first) {
                proto_mp_put_cstr(&b, "id");
                proto_mp_put_uint(&b, 77);
            }
            proto_mp_put_cstr(&b, cases[i].key);
            if (strcmp(cases[i].key, "id") == 0 || strcmp(cases[i].key, "ok") == 0 ||
                strcmp(cases[i].key, "commands") == 0) {
                proto_mp_put_map(&b, 1); /* a container, so skipping it matters */
                proto_mp_put_cstr(&b, "x");
                proto_mp_put_array(&b, 2);
                proto_mp_put_nil(&b);
                proto_mp_put_nil(&b);
            } else if (strcmp(cases[i].key, "name") == 0) {
                proto_mp_put_bin(&b, "x", 1);
            } else {
                proto_mp_put_int(&b, -1);
            }
            if (!id_first) {
                proto_mp_put_cstr(&b, strcmp(cases[i].key, "id") == 0 ? "peer" : "id");
                proto_mp_put_uint(&b, 77);
            }
            assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_BAD_REQUEST);
            assert_string_equal(why, cases[i].why);
            assert_int_equal(m.op, PROTO_OP_REQUEST);
            if (strcmp(cases[i].key, "id") != 0) {
                assert_true(proto_msg_has(&m, PROTO_F_ID));
                assert_int_equal(m.id, 77);
            } else {
                assert_false(proto_msg_has(&m, PROTO_F_ID));
            }
        }
    }
    /* commands with a non-string element */
    body_begin(&b, 2, "register");
    proto_mp_put_cstr(&b, "commands");
    proto_mp_put_array(&b, 2);
    proto_mp_put_cstr(&b, "a");
    proto_mp_put_uint(&b, 1);
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 5);
    assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_BAD_REQUEST);
    assert_string_equal(why, "field 'commands' must be an array of strings");
    assert_int_equal(m.id, 5);
    assert_false(proto_msg_has(&m, PROTO_F_COMMANDS));
    /* float is not an integer, uint64 max is */
    body_begin(&b, 1, "ping");
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_double(&b, 1.0);
    assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_BAD_REQUEST);
    /* signed encoding of a non-negative value is fine */
    body_begin(&b, 1, "ping");
    proto_mp_put_cstr(&b, "id");
    proto_buf_append(&b, "\xd3\x00\x00\x00\x00\x00\x00\x00\x09", 9);
    assert_int_equal(decode_buf(&b, &m, &why), 0);
    assert_int_equal(m.id, 9);
    proto_buf_free(&b);
}

static void test_op_errors(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_msg m;
    const char *why;
    /* unknown op: reported as such even with a type error, id kept */
    body_begin(&b, 2, "frobnicate");
    proto_mp_put_cstr(&b, "name");
    proto_mp_put_uint(&b, 1);
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 3);
    assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_UNKNOWN_OP);
    assert_string_equal(why, "unknown op");
    assert_int_equal(m.op, PROTO_OP_NONE);
    assert_int_equal(m.id, 3);
    /* missing op */
    body_begin(&b, 1, NULL);
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 4);
    assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_UNKNOWN_OP);
    assert_string_equal(why, "missing field 'op'");
    assert_ptr_equal(why, proto_msg_why_no_op);
    assert_int_equal(m.id, 4);
    /* op of the wrong type (a container) */
    body_begin(&b, 2, NULL);
    proto_mp_put_cstr(&b, "op");
    proto_mp_put_array(&b, 1);
    proto_mp_put_cstr(&b, "ping");
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 4);
    assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_BAD_REQUEST);
    assert_string_equal(why, "field 'op' must be a string");
    assert_int_equal(m.id, 4);
    /* duplicates */
    body_begin(&b, 2, "ping");
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 1);
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 2);
    assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_BAD_REQUEST);
    assert_string_equal(why, "duplicate field 'id'");
    assert_int_equal(m.id, 1);
    body_begin(&b, 1, "ping");
    proto_mp_put_cstr(&b, "op");
    proto_mp_put_cstr(&b, "ping");
    assert_int_equal(decode_buf(&b, &m, &why), PROTO_E_BAD_REQUEST);
    assert_string_equal(why, "duplicate field 'op'");
    /* unknown keys of any type are ignored, in any position; op need not be first */
    body_begin(&b, 4, NULL);
    proto_mp_put_cstr(&b, "future");
    proto_mp_put_map(&b, 1);
    proto_mp_put_uint(&b, 1);
    proto_mp_put_array(&b, 0);
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 8);
    proto_mp_put_cstr(&b, "op");
    proto_mp_put_cstr(&b, "pong");
    proto_mp_put_cstr(&b, "");
    proto_mp_put_nil(&b);
    assert_int_equal(decode_buf(&b, &m, &why), 0);
    assert_int_equal(m.op, PROTO_OP_PONG);
    assert_int_equal(m.fields, PROTO_F_ID);
    assert_int_equal(m.id, 8);
    /* a raw field may hold nil */
    body_begin(&b, 3, "request");
    proto_mp_put_cstr(&b, "id");
    proto_mp_put_uint(&b, 1);
    proto_mp_put_cstr(&b, "command");
    proto_mp_put_cstr(&b, "c");
    proto_mp_put_cstr(&b, "payload");
    proto_mp_put_nil(&b);
    assert_int_equal(decode_buf(&b, &m, &why), 0);
    assert_int_equal(m.payload.len, 1);
    assert_int_equal(m.payload.ptr[0], 0xc0);
    proto_buf_free(&b);
}

/* decode is safe on bytes that never went through a reader. */
static void test_decode_unvalidated(void **state)
{
    static const struct {
        const char *bytes;
        uint32_t len;
    } cases[] = {
        {"", 0},
        {"\x92\x01\x02", 3},
        {"\x81\xa2op", 4},
        {"\x82\xa2op\xa4ping\xa2id", 12},
        {"\x81\xa2op\xa4ping\x00", 10},
        {"\x81\xa8"
         "commands\xdd\xff\xff\xff\xff",
         14},
        {"\x81\xa7payload\xdf\x7f\xff\xff\xff", 13},
        {"\x81\xa2op\xc1", 5},
    };
    struct proto_msg m;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proto_span f = {(const uint8_t *)cases[i].bytes, cases[i].len};
        const char *why = NULL;
        assert_int_equal(proto_msg_decode(&f, &m, &why), PROTO_E_BAD_FRAME);
        assert_non_null(why);
    }
    /* non-string keys are skipped when nobody checked them */
    struct proto_span f = {(const uint8_t *)"\x82\x01\x02\xa2op\xa4ping", 11};
    assert_int_equal(proto_msg_decode(&f, &m, NULL), 0);
    assert_int_equal(m.op, PROTO_OP_PING);
}

static void test_check_required(void **state)
{
    static const struct {
        enum proto_op op;
        uint32_t drop;
        const char *why;
    } cases[] = {
        {PROTO_OP_HELLO, PROTO_F_MIN_VERSION, "missing field 'min_version'"},
        {PROTO_OP_HELLO, PROTO_F_MAX_VERSION, "missing field 'max_version'"},
        {PROTO_OP_REQUEST, PROTO_F_ID, "missing field 'id'"},
        {PROTO_OP_REQUEST, PROTO_F_COMMAND, "missing field 'command'"},
        {PROTO_OP_EMIT, PROTO_F_TYPE, "missing field 'type'"},
        {PROTO_OP_REGISTER, PROTO_F_COMMANDS, "missing field 'commands'"},
        {PROTO_OP_UNREGISTER, PROTO_F_ID, "missing field 'id'"},
        {PROTO_OP_SUBSCRIBE, PROTO_F_MATCH, "missing field 'match'"},
        {PROTO_OP_SUBSCRIBE, PROTO_F_TYPE,
         "missing field 'type' (required unless match is \"all\")"},
        {PROTO_OP_UNSUBSCRIBE, PROTO_F_ID, "missing field 'id'"},
        {PROTO_OP_REPLY, PROTO_F_OK, "missing field 'ok'"},
        {PROTO_OP_CREDENTIAL, PROTO_F_NAME, "missing field 'name'"},
        {PROTO_OP_STATUS, PROTO_F_ID, "missing field 'id'"},
        {PROTO_OP_PING, PROTO_F_ID, "missing field 'id'"},
        {PROTO_OP_MONITOR, PROTO_F_ID, "missing field 'id'"},
        {PROTO_OP_WELCOME, PROTO_F_VERSION, "missing field 'version'"},
        {PROTO_OP_WELCOME, PROTO_F_MAX_FRAME, "missing field 'max_frame'"},
        {PROTO_OP_RESULT, PROTO_F_OK, "missing field 'ok'"},
        {PROTO_OP_CALL, PROTO_F_COMMAND, "missing field 'command'"},
        {PROTO_OP_MESSAGE, PROTO_F_TYPE, "missing field 'type'"},
        {PROTO_OP_EVENT, PROTO_F_EVENT, "missing field 'event'"},
        {PROTO_OP_ERROR, PROTO_F_CODE, "missing field 'code'"},
        {PROTO_OP_ERROR, PROTO_F_MESSAGE, "missing field 'message'"},
        {PROTO_OP_TRACE, PROTO_F_DIR, "missing field 'dir'"},
        {PROTO_OP_TRACE, PROTO_F_FRAME, "missing field 'frame'"},
        {PROTO_OP_PONG, PROTO_F_ID, "missing field 'id'"},
    };
    struct proto_msg m;
    const char *why;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&m, 0, sizeof m);
        fill_all(&m);
        m.op = cases[i].op;
        assert_int_equal(proto_msg_check(&m, &why), 0);
        m.fields &= ~cases[i].drop;
        assert_int_equal(proto_msg_check(&m, &why), PROTO_E_BAD_REQUEST);
        assert_string_equal(why, cases[i].why);
    }
    /* minimal messages pass */
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_EMIT;
    m.fields = PROTO_F_TYPE;
    assert_int_equal(proto_msg_check(&m, NULL), 0);
    /* subscribe: "all" needs no type; the match value is checked */
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_SUBSCRIBE;
    m.fields = PROTO_F_ID | PROTO_F_MATCH;
    m.match = S("all");
    assert_int_equal(proto_msg_check(&m, &why), 0);
    m.match = S("exact");
    assert_int_equal(proto_msg_check(&m, &why), PROTO_E_BAD_REQUEST);
    m.fields |= PROTO_F_TYPE;
    m.type = S("x");
    assert_int_equal(proto_msg_check(&m, &why), 0);
    m.match = S("regex");
    assert_int_equal(proto_msg_check(&m, &why), PROTO_E_BAD_REQUEST);
    assert_string_equal(why, "field 'match' must be \"all\", \"exact\" or \"prefix\"");
    /* a failed result needs a code; a failed reply may leave it out */
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_RESULT;
    m.fields = PROTO_F_ID | PROTO_F_OK;
    m.ok = true;
    assert_int_equal(proto_msg_check(&m, &why), 0);
    m.ok = false;
    assert_int_equal(proto_msg_check(&m, &why), PROTO_E_BAD_REQUEST);
    assert_string_equal(why, "missing field 'code' (required when ok is false)");
    m.fields |= PROTO_F_CODE;
    assert_int_equal(proto_msg_check(&m, &why), 0);
    m.op = PROTO_OP_REPLY;
    m.fields = PROTO_F_ID | PROTO_F_OK;
    assert_int_equal(proto_msg_check(&m, &why), 0);
    m.op = PROTO_OP_NONE;
    assert_int_equal(proto_msg_check(&m, &why), PROTO_E_UNKNOWN_OP);
}

static void test_encode_limits(void **state)
{
    struct proto_buf out = PROTO_BUF_INIT;
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_EMIT;
    m.fields = PROTO_F_TYPE;
    m.type = S("abc");
    /* {"op":"emit","type":"abc"}: 1 + 3 + 5 + 5 + 4 = 18 bytes */
    assert_int_equal(proto_msg_encode(&out, &m, 18), 0);
    assert_int_equal(out.len, 22);
    assert_memory_equal(out.data,
                        "\x00\x00\x00\x12\x82\xa2op\xa4"
                        "emit\xa4type\xa3"
                        "abc",
                        22);
    /* one over, appended after existing content: out unchanged */
    assert_int_equal(proto_msg_encode(&out, &m, 17), PROTO_E_FRAME_TOO_LARGE);
    assert_int_equal(out.len, 22);
    /* a big payload stops early */
    static uint8_t big[200000];
    struct proto_buf p = PROTO_BUF_INIT;
    proto_mp_put_bin(&p, big, sizeof big);
    m.fields |= PROTO_F_DATA;
    m.data.ptr = p.data;
    m.data.len = (uint32_t)p.len;
    assert_int_equal(proto_msg_encode(&out, &m, 1000), PROTO_E_FRAME_TOO_LARGE);
    assert_int_equal(out.len, 22);
    assert_int_equal(proto_msg_encode(&out, &m, 0), 0); /* default 16 MiB */
    assert_int_equal(out.len, 22 + 4 + 18 + 5 + p.len);
    /* not an op */
    m.op = PROTO_OP_NONE;
    size_t len = out.len;
    assert_int_equal(proto_msg_encode(&out, &m, 0), PROTO_E_UNKNOWN_OP);
    m.op = PROTO_OP__COUNT;
    assert_int_equal(proto_msg_encode(&out, &m, 0), PROTO_E_UNKNOWN_OP);
    assert_int_equal(out.len, len);
    /* present but empty raw values encode as nil / [] */
    proto_buf_reset(&out);
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_REGISTER;
    m.fields = PROTO_F_ID | PROTO_F_COMMANDS | PROTO_F_DATA;
    assert_int_equal(proto_msg_encode(&out, &m, 0), 0);
    struct proto_span f = {out.data + 4, (uint32_t)out.len - 4};
    struct proto_msg d;
    assert_int_equal(proto_mp_validate_frame(f.ptr, f.len, NULL, NULL, NULL), 0);
    assert_int_equal(proto_msg_decode(&f, &d, NULL), 0);
    assert_int_equal(d.commands_count, 0);
    assert_int_equal(d.data.len, 1);
    assert_int_equal(d.data.ptr[0], 0xc0);
    struct proto_str_iter it;
    struct proto_span s;
    proto_msg_commands(&d, &it);
    assert_false(proto_str_iter_next(&it, &s));
    /* commands of a message without them iterate nothing */
    memset(&d, 0, sizeof d);
    proto_msg_commands(&d, &it);
    assert_false(proto_str_iter_next(&it, &s));
    proto_buf_free(&p);
    proto_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_names),
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_every_op_round_trip),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_op_errors),
        cmocka_unit_test(test_decode_unvalidated),
        cmocka_unit_test(test_check_required),
        cmocka_unit_test(test_encode_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
