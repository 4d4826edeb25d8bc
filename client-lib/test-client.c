/* Tests of libvoltclient against a fake broker (fake-broker.c) that speaks
 * the local protocol through proto/: the session handshake, request
 * matching and timeouts, BrokerGone, inbound calls and late answers,
 * freeing from callbacks, subscriptions, events, reconnecting, frames split
 * at every byte, the blocking API and the loop hooks. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-broker.h"
#include "proto/limits.h"
#include "proto/msgpack.h"
#include "volt/client.h"

#define MAXREC 64

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Recording callbacks                                                 */
/* ------------------------------------------------------------------ */

struct result_rec {
    int tag;
    int code;
    char code_name[64];
    char message[256];
    char server_code[64];
    uint8_t data[512];
    size_t data_len;
    bool has_data;
    char json[512];
    bool has_json;
    int64_t at;
};

struct msg_rec {
    int tag;
    char type[64];
    uint8_t data[256];
    size_t data_len;
    char json[256];
    bool has_json;
};

static struct {
    struct result_rec results[MAXREC];
    int n_results;
    int connected;
    int disconnected;
    char reason[128];
    int errors[MAXREC];
    char error_msg[MAXREC][256];
    int n_errors;
    int broker_up, broker_down;
    struct msg_rec msgs[MAXREC];
    int n_msgs;
    volt_call *calls[MAXREC];
    int n_calls;
    int string_code;
    char string_value[128];
    int n_strings;
} R;

struct fx {
    struct fb *fb;
    volt_client *c;
};

static void rec_result(volt_client *c, const volt_result *r, void *p)
{
    assert_true(R.n_results < MAXREC);
    struct result_rec *x = &R.results[R.n_results++];
    memset(x, 0, sizeof *x);
    x->tag = (int)(intptr_t)p;
    x->code = r->code;
    x->at = now_ms();
    if (r->code_name)
        snprintf(x->code_name, sizeof x->code_name, "%s", r->code_name);
    if (r->message)
        snprintf(x->message, sizeof x->message, "%s", r->message);
    if (r->server_code)
        snprintf(x->server_code, sizeof x->server_code, "%s", r->server_code);
    if (r->data) {
        assert_true(r->data_len <= sizeof x->data);
        memcpy(x->data, r->data, r->data_len);
        x->data_len = r->data_len;
        x->has_data = true;
    }
    if (r->json) {
        snprintf(x->json, sizeof x->json, "%s", r->json);
        assert_int_equal(strlen(r->json), r->json_len);
        x->has_json = true;
    }
}

static const struct result_rec *result_of(int tag)
{
    for (int i = 0; i < R.n_results; i++)
        if (R.results[i].tag == tag)
            return &R.results[i];
    return NULL;
}

static void rec_connected(volt_client *c, void *p)
{
    R.connected++;
}

static void rec_disconnected(volt_client *c, const char *reason, void *p)
{
    R.disconnected++;
    snprintf(R.reason, sizeof R.reason, "%s", reason);
}

static void rec_error(volt_client *c, int code, const char *message, void *p)
{
    assert_true(R.n_errors < MAXREC);
    R.errors[R.n_errors] = code;
    snprintf(R.error_msg[R.n_errors], sizeof R.error_msg[0], "%s", message);
    R.n_errors++;
}

static void rec_broker(volt_client *c, int up, void *p)
{
    if (up)
        R.broker_up++;
    else
        R.broker_down++;
}

static void rec_message(volt_client *c, const volt_message *m, void *p)
{
    assert_true(R.n_msgs < MAXREC);
    struct msg_rec *x = &R.msgs[R.n_msgs++];
    memset(x, 0, sizeof *x);
    x->tag = (int)(intptr_t)p;
    snprintf(x->type, sizeof x->type, "%s", m->type);
    if (m->data) {
        assert_true(m->data_len <= sizeof x->data);
        memcpy(x->data, m->data, m->data_len);
        x->data_len = m->data_len;
    }
    if (m->json) {
        snprintf(x->json, sizeof x->json, "%s", m->json);
        x->has_json = true;
    }
}

static int count_msgs(int tag)
{
    int n = 0;
    for (int i = 0; i < R.n_msgs; i++)
        n += R.msgs[i].tag == tag;
    return n;
}

static void keep_call(volt_client *c, volt_call *call, void *p)
{
    assert_true(R.n_calls < MAXREC);
    R.calls[R.n_calls++] = call;
}

static void rec_string(volt_client *c, int code, const char *value, void *p)
{
    R.n_strings++;
    R.string_code = code;
    snprintf(R.string_value, sizeof R.string_value, "%s", value ? value : "(null)");
}

/* ------------------------------------------------------------------ */
/* msgpack helpers                                                     */
/* ------------------------------------------------------------------ */

struct mp {
    struct proto_buf b;
};

static struct mp mp_str(const char *s)
{
    struct mp m = {PROTO_BUF_INIT};
    assert_int_equal(proto_mp_put_cstr(&m.b, s), 0);
    return m;
}

static struct mp mp_uint(uint64_t v)
{
    struct mp m = {PROTO_BUF_INIT};
    assert_int_equal(proto_mp_put_uint(&m.b, v), 0);
    return m;
}

static void mp_free(struct mp *m)
{
    proto_buf_free(&m->b);
}

static bool data_is_str(const void *data, size_t len, const char *s)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    proto_mp_cursor_init(&c, data, len);
    return proto_mp_next(&c, &v) == 0 && v.type == PROTO_MP_STR && span_eq_str(v.v.str, s) &&
           proto_mp_at_end(&c);
}

static bool span_is_str(struct proto_span sp, const char *s)
{
    return data_is_str(sp.ptr, sp.len, s);
}

static bool span_eq_mp(struct proto_span sp, const struct mp *m)
{
    return sp.len == m->b.len && memcmp(sp.ptr, m->b.data, sp.len) == 0;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static void pump_client(void *arg)
{
    struct fx *f = arg;
    if (f->c)
        volt_client_run_for(f->c, 1);
}

#define PUMP_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        int64_t deadline_ = now_ms() + 3000;                                                       \
        while (!(cond)) {                                                                          \
            if (now_ms() > deadline_)                                                              \
                fail_msg("timed out waiting for %s", #cond);                                       \
            pump_client(f);                                                                        \
        }                                                                                          \
    } while (0)

static void pump_for(struct fx *f, int ms)
{
    int64_t until = now_ms() + ms;
    while (now_ms() < until)
        pump_client(f);
}

static void base_options(struct fx *f, struct volt_options *o)
{
    volt_options_init(o);
    o->socket_path = f->fb->path;
    o->name = "test-client";
    o->reconnect_min_ms = 10;
    o->reconnect_max_ms = 40;
}

static void install_recorders(volt_client *c)
{
    volt_on_connected(c, rec_connected, NULL);
    volt_on_disconnected(c, rec_disconnected, NULL);
    volt_on_error(c, rec_error, NULL);
    volt_on_broker(c, rec_broker, NULL);
}

static volt_client *make_client(struct fx *f, const struct volt_options *o)
{
    volt_client *c = volt_client_new(o);
    assert_non_null(c);
    install_recorders(c);
    f->c = c;
    return c;
}

static int setup(void **state)
{
    memset(&R, 0, sizeof R);
    struct fx *f = calloc(1, sizeof *f);
    f->fb = fb_new();
    fb_set_pump(f->fb, pump_client, f);
    struct volt_options o;
    base_options(f, &o);
    make_client(f, &o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    volt_client_free(f->c);
    fb_free(f->fb);
    free(f);
    return 0;
}

/* Connects (async) and completes the handshake. */
static void connect_session(struct fx *f, const char *state)
{
    int up = R.broker_up;
    assert_int_equal(volt_client_connect(f->c), 0);
    fb_handshake(f->fb, state);
    PUMP_UNTIL(f, R.broker_up == up + 1);
}

/* ------------------------------------------------------------------ */
/* Errors and options                                                  */
/* ------------------------------------------------------------------ */

static void test_error_names(void **state)
{
    static const struct {
        int code;
        const char *name;
    } table[] = {
        {VOLT_E_SOCKET_NOT_READY, "SOCKET_NOT_READY"},
        {VOLT_E_COMMAND_TIMEOUT, "COMMAND_TIMEOUT"},
        {VOLT_E_COMMAND_REJECTED, "COMMAND_REJECTED"},
        {VOLT_E_ENROLLMENT_FAILED, "EnrollmentFailed"},
        {VOLT_E_SOCKET_CONNECTION_FAILED, "SocketConnectionFailed"},
        {VOLT_E_SOCKET_REGISTRATION_FAILED, "SocketRegistrationFailed"},
        {VOLT_E_HANDLER_ERROR, "HandlerError"},
        {VOLT_E_EMIT_FAILED, "EmitFailed"},
        {VOLT_E_NO_HANDLER, "NoHandler"},
        {VOLT_E_HANDLER_TIMEOUT, "HandlerTimeout"},
        {VOLT_E_HEARTBEAT_FAILED, "HeartbeatFailed"},
        {VOLT_E_BAD_FRAME, "BadFrame"},
        {VOLT_E_FRAME_TOO_LARGE, "FrameTooLarge"},
        {VOLT_E_UNKNOWN_OP, "UnknownOp"},
        {VOLT_E_BAD_REQUEST, "BadRequest"},
        {VOLT_E_VERSION_MISMATCH, "VersionMismatch"},
        {VOLT_E_PERMISSION_DENIED, "PermissionDenied"},
        {VOLT_E_LIMIT_EXCEEDED, "LimitExceeded"},
        {VOLT_E_PAYLOAD_TOO_LARGE, "PayloadTooLarge"},
        {VOLT_E_DUPLICATE_ID, "DuplicateId"},
        {VOLT_E_NOT_JSON, "NotJson"},
        {VOLT_E_BROKER_GONE, "BrokerGone"},
        {VOLT_E_TIMEOUT, "Timeout"},
        {VOLT_E_SHUTTING_DOWN, "ShuttingDown"},
        {VOLT_E_NOMEM, "NoMemory"},
        {VOLT_E_INTERNAL, "Internal"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        assert_string_equal(volt_err_name(table[i].code), table[i].name);
        assert_int_equal(volt_err_from_name(table[i].name), table[i].code);
        const char *text = volt_strerror(table[i].code);
        assert_non_null(text);
        assert_true(strlen(text) > 3);
    }
    assert_string_equal(volt_err_name(-999), "Unknown");
    assert_non_null(volt_strerror(-999));
    assert_int_equal(volt_err_from_name("NoSuchCode"), 0);
    assert_int_equal(volt_err_from_name(NULL), 0);
    assert_string_equal(volt_version(), VOLT_TEST_VERSION);
}

static void test_default_socket_path(void **state)
{
    setenv("VOLT_BROKER_SOCKET", "/tmp/custom.sock", 1);
    char *p = volt_default_socket_path();
    assert_string_equal(p, "/tmp/custom.sock");
    volt_free(p);
    unsetenv("VOLT_BROKER_SOCKET");
    /* No per-user broker there: the system broker, whoever we are (the
     * per-user case is proto/test-paths.c's, with real socket files). */
    setenv("XDG_RUNTIME_DIR", "/nonexistent-volt-test/run/user/4242", 1);
    p = volt_default_socket_path();
    assert_string_equal(p, "/run/volt/broker.sock");
    volt_free(p);
    unsetenv("XDG_RUNTIME_DIR");

    /* The default applies to a client made without a path. */
    setenv("VOLT_BROKER_SOCKET", "/tmp/other.sock", 1);
    volt_client *c = volt_client_new(NULL);
    assert_non_null(c);
    assert_string_equal(volt_client_socket_path(c), "/tmp/other.sock");
    volt_client_free(c);
    unsetenv("VOLT_BROKER_SOCKET");

    /* A path that cannot fit sun_path is refused up front. */
    char longpath[300];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = longpath;
    assert_null(volt_client_new(&o));
    /* So is one from the environment. */
    setenv("VOLT_BROKER_SOCKET", longpath, 1);
    assert_null(volt_client_new(NULL));
    unsetenv("VOLT_BROKER_SOCKET");
}

/* The options struct can grow: the library reads only what the caller's
 * size covers and defaults the rest. */
static void test_options_size(void **state)
{
    struct volt_options o;
    memset(&o, 0xa5, sizeof o);
    volt_options_init(&o);
    assert_int_equal(o.size, sizeof o);
    assert_null(o.socket_path);
    assert_int_equal(o.command_timeout_ms, 0); /* the broker's */
    assert_int_equal(o.timeout_grace_ms, 1000);
    assert_int_equal(o.wait_upstream, 1);
    assert_int_equal(o.reconnect, 1);

    /* A program built against a later, longer struct. */
    struct {
        struct volt_options o;
        uint64_t later_field;
    } big;
    memset(&big, 0xa5, sizeof big);
    volt_options_init_size(&big.o, sizeof big);
    assert_int_equal(big.o.size, sizeof big);
    assert_int_equal(big.later_field, 0);
    big.o.socket_path = "/tmp/x.sock";
    volt_client *c = volt_client_new(&big.o);
    assert_non_null(c);
    assert_string_equal(volt_client_socket_path(c), "/tmp/x.sock");
    volt_client_free(c);

    /* Not filled by volt_options_init(): refused rather than misread. */
    struct volt_options raw;
    memset(&raw, 0, sizeof raw);
    assert_null(volt_client_new(&raw));
    volt_options_init(&o);
    o.reconnect_min_ms = 500;
    o.reconnect_max_ms = 100;
    assert_null(volt_client_new(&o));
}

/* ------------------------------------------------------------------ */
/* Session                                                             */
/* ------------------------------------------------------------------ */

static void test_hello_welcome(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_client_is_connected(f->c), 0);
    assert_int_equal(volt_client_connect(f->c), 0);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    assert_int_equal(m.min_version, PROTO_VERSION_MIN);
    assert_int_equal(m.max_version, PROTO_VERSION_MAX);
    assert_true(span_eq_str(m.name, "test-client"));
    assert_int_equal(volt_client_is_connected(f->c), 0);

    fb_welcome(f->fb, "connecting");
    PUMP_UNTIL(f, R.broker_up == 1);
    assert_int_equal(volt_client_is_connected(f->c), 1);
    assert_int_equal(volt_client_is_ready(f->c), 0);
    assert_string_equal(volt_client_upstream_state(f->c), "connecting");
    assert_string_equal(volt_client_broker_name(f->c), "fake-broker/0.0.1");
    assert_int_equal(R.connected, 0);

    fb_event(f->fb, "connected", "ready", NULL);
    PUMP_UNTIL(f, R.connected == 1);
    assert_int_equal(volt_client_is_ready(f->c), 1);
    assert_string_equal(volt_client_upstream_state(f->c), "ready");
    /* No handlers or subscriptions: nothing else was sent. */
    assert_true(fb_quiet(f->fb, 50));
    assert_int_equal(R.n_errors, 0);
}

static void test_connect_no_broker(void **state)
{
    struct fx *f = *state;
    fb_stop_listening(f->fb);
    /* With reconnect on, the blocking connect retries until its timeout. */
    int64_t t0 = now_ms();
    assert_int_equal(volt_client_connect_blocking(f->c, 200), VOLT_E_BROKER_GONE);
    assert_true(now_ms() - t0 >= 190);
    /* Says where it looked and what to do, not "connection lost". */
    char want[300];
    snprintf(want, sizeof want, "no broker at %s: is volt-broker running? set VOLT_BROKER_SOCKET",
             f->fb->path);
    assert_string_equal(volt_client_errstr(f->c), want);
    assert_int_equal(R.broker_up, 0);
    volt_client_disconnect(f->c);

    /* Without reconnect the async connect fails at once; nothing is pending. */
    struct volt_options o;
    base_options(f, &o);
    o.reconnect = 0;
    volt_client_free(f->c);
    make_client(f, &o);
    assert_int_equal(volt_client_connect(f->c), VOLT_E_BROKER_GONE);
    assert_string_equal(volt_client_errstr(f->c), want);
    assert_int_equal(volt_client_fd(f->c), -1);
    assert_int_equal(volt_client_timeout_ms(f->c), -1);
    assert_int_equal(volt_client_run(f->c), VOLT_E_BROKER_GONE);

    /* The broker appears: a later connect works. */
    fb_listen(f->fb);
    assert_int_equal(volt_client_connect(f->c), 0);
    fb_handshake(f->fb, "idle");
    PUMP_UNTIL(f, R.broker_up == 1);
}

static void test_version_mismatch(void **state)
{
    struct fx *f = *state;
    /* The broker refuses our versions: error frame, then close. */
    assert_int_equal(volt_client_connect(f->c), 0);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    struct proto_msg e;
    memset(&e, 0, sizeof e);
    e.op = PROTO_OP_ERROR;
    e.fields = PROTO_F_CODE | PROTO_F_MESSAGE;
    e.code = proto_span_str("VersionMismatch", 15);
    e.message = proto_span_str("no common version", 17);
    fb_send(f->fb, &e);
    fb_close_conn(f->fb);
    PUMP_UNTIL(f, R.n_errors >= 1);
    assert_int_equal(R.errors[0], VOLT_E_VERSION_MISMATCH);
    assert_int_equal(volt_client_run_for(f->c, 10), VOLT_E_VERSION_MISMATCH);
    /* No retry: a version mismatch does not heal by itself. */
    assert_false(fb_accept(f->fb, 150));
    assert_int_equal(R.broker_up, 0);

    /* The broker picks a version we do not speak: also fatal. */
    assert_int_equal(volt_client_connect(f->c), 0);
    assert_true(fb_accept(f->fb, 3000));
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    struct proto_msg w;
    memset(&w, 0, sizeof w);
    w.op = PROTO_OP_WELCOME;
    w.fields = PROTO_F_VERSION | PROTO_F_MAX_FRAME;
    w.version = 7;
    w.max_frame = 1024;
    fb_send(f->fb, &w);
    PUMP_UNTIL(f, R.n_errors >= 2);
    assert_int_equal(R.errors[1], VOLT_E_VERSION_MISMATCH);
    assert_non_null(strstr(R.error_msg[1], "version 7"));
    assert_true(fb_eof(f->fb, 1000)); /* the client hung up */
    assert_false(fb_accept(f->fb, 100));
}

static void test_welcome_timeout_then_retry(void **state)
{
    struct fx *f = *state;
    struct volt_options o;
    base_options(f, &o);
    o.connect_timeout_ms = 80;
    volt_client_free(f->c);
    make_client(f, &o);
    assert_int_equal(volt_client_connect(f->c), 0);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    /* Say nothing: the client gives up on this socket and tries again. */
    assert_true(fb_eof(f->fb, 2000));
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 1);
    assert_int_equal(f->fb->accepted, 2);
    /* A failed attempt that is retried is not reported as an error. */
    assert_int_equal(R.n_errors, 0);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static void test_results_out_of_order(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    struct mp p1 = mp_str("c-1");
    assert_int_equal(volt_send_command(f->c, "get-container-stats", p1.b.data, p1.b.len, 0,
                                       rec_result, (void *)1),
                     0);
    assert_int_equal(volt_send_command(f->c, "second", NULL, 0, 5000, rec_result, (void *)2), 0);
    assert_int_equal(volt_send_command(f->c, "third", NULL, 0, 0, rec_result, (void *)3), 0);

    struct proto_msg m;
    uint64_t ids[3];
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    ids[0] = m.id;
    assert_true(span_eq_str(m.command, "get-container-stats"));
    assert_true(span_eq_mp(m.payload, &p1));             /* raw msgpack passed through */
    assert_false(proto_msg_has(&m, PROTO_F_TIMEOUT_MS)); /* the broker's commandTimeout */
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    ids[1] = m.id;
    assert_false(proto_msg_has(&m, PROTO_F_PAYLOAD));
    assert_int_equal(m.timeout_ms, 5000);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    ids[2] = m.id;
    assert_true(ids[0] < ids[1] && ids[1] < ids[2]);

    struct mp d3 = mp_str("three"), d1 = mp_str("one");
    fb_result_ok(f->fb, ids[2], d3.b.data, d3.b.len);
    fb_result_ok(f->fb, ids[0], d1.b.data, d1.b.len);
    struct proto_msg r;
    memset(&r, 0, sizeof r);
    r.op = PROTO_OP_RESULT;
    r.fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_SERVER_CODE;
    r.id = ids[1];
    r.code = proto_span_str("COMMAND_REJECTED", 16);
    r.message = proto_span_str("container not found", 19);
    r.server_code = proto_span_str("E_NOTFOUND", 10);
    fb_send(f->fb, &r);
    PUMP_UNTIL(f, R.n_results == 3);

    assert_int_equal(R.results[0].tag, 3);
    assert_int_equal(R.results[1].tag, 1);
    assert_int_equal(R.results[2].tag, 2);
    const struct result_rec *x = result_of(1);
    assert_int_equal(x->code, 0);
    assert_true(data_is_str(x->data, x->data_len, "one"));
    assert_false(x->has_json);
    x = result_of(3);
    assert_true(data_is_str(x->data, x->data_len, "three"));
    x = result_of(2);
    assert_int_equal(x->code, VOLT_E_COMMAND_REJECTED);
    assert_string_equal(x->code_name, "COMMAND_REJECTED");
    assert_string_equal(x->message, "container not found");
    assert_string_equal(x->server_code, "E_NOTFOUND");
    assert_false(x->has_data);
    mp_free(&p1);
    mp_free(&d1);
    mp_free(&d3);
}

static void test_request_timeout(void **state)
{
    struct fx *f = *state;
    struct volt_options o;
    base_options(f, &o);
    o.timeout_grace_ms = 0;
    volt_client_free(f->c);
    make_client(f, &o);
    connect_session(f, "ready");

    int64_t t0 = now_ms();
    assert_int_equal(volt_send_command(f->c, "slow", NULL, 0, 60, rec_result, (void *)1), 0);
    assert_int_equal(volt_send_command(f->c, "slower", NULL, 0, 5000, rec_result, (void *)2), 0);
    int64_t left = volt_client_timeout_ms(f->c);
    assert_true(left > 0 && left <= 60);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    uint64_t id1 = m.id;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    uint64_t id2 = m.id;

    PUMP_UNTIL(f, R.n_results == 1);
    assert_int_equal(R.results[0].tag, 1);
    assert_int_equal(R.results[0].code, VOLT_E_TIMEOUT);
    assert_string_equal(R.results[0].code_name, "Timeout");
    assert_true(R.results[0].at - t0 >= 60);
    /* The other keeps its own deadline. */
    left = volt_client_timeout_ms(f->c);
    assert_true(left > 4000 && left <= 5000);

    /* A late answer to the expired request is dropped; the other completes. */
    fb_result_ok(f->fb, id1, NULL, 0);
    fb_result_ok(f->fb, id2, NULL, 0);
    PUMP_UNTIL(f, R.n_results == 2);
    pump_for(f, 20);
    assert_int_equal(R.n_results, 2);
    assert_int_equal(R.results[1].tag, 2);
    assert_int_equal(R.results[1].code, 0);
    assert_false(R.results[1].has_data);
    assert_int_equal(volt_client_timeout_ms(f->c), -1);
}

static void test_broker_gone_fails_pending(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    assert_int_equal(volt_client_is_ready(f->c), 1);
    for (intptr_t i = 1; i <= 3; i++)
        assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, rec_result, (void *)i), 0);
    assert_int_equal(volt_ping(f->c, rec_result, (void *)4), 0);
    struct proto_msg m;
    for (int i = 0; i < 3; i++)
        fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    fb_expect(f->fb, PROTO_OP_PING, &m);

    /* The broker goes away for good for now: the retries find nobody, so
     * the client stays without a connection however slow this machine is. */
    fb_stop_listening(f->fb);
    fb_close_conn(f->fb);
    PUMP_UNTIL(f, R.n_results == 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(R.results[i].tag, i + 1); /* in request order */
        /* Commands fail SOCKET_NOT_READY (as in every client library), the
         * broker's own operations (the ping) BrokerGone. */
        int want = i < 3 ? VOLT_E_SOCKET_NOT_READY : VOLT_E_BROKER_GONE;
        assert_int_equal(R.results[i].code, want);
        assert_string_equal(R.results[i].code_name, volt_err_name(want));
    }
    assert_int_equal(R.disconnected, 1);
    assert_string_equal(R.reason, "broker gone");
    assert_int_equal(R.broker_down, 1);
    assert_true(R.n_errors >= 1);
    assert_int_equal(R.errors[0], VOLT_E_BROKER_GONE);
    assert_int_equal(volt_client_is_ready(f->c), 0);
    assert_int_equal(volt_client_is_connected(f->c), 0);
    assert_string_equal(volt_client_upstream_state(f->c), "");

    /* Nothing can be sent until the client is back... */
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, rec_result, (void *)9),
                     VOLT_E_SOCKET_NOT_READY);
    assert_int_equal(volt_ping(f->c, rec_result, (void *)10), VOLT_E_BROKER_GONE);
    /* ...which it is by itself once the broker is back. */
    fb_listen(f->fb);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 2);
    pump_for(f, 10);
    assert_int_equal(R.n_results, 4); /* the refused send never calls back */
}

static void test_send_before_welcome_is_queued(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, rec_result, (void *)1),
                     VOLT_E_SOCKET_NOT_READY);
    assert_int_equal(volt_client_connect(f->c), 0);
    /* Pipelined behind hello. */
    assert_int_equal(volt_send_command(f->c, "early", NULL, 0, 0, rec_result, (void *)2), 0);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    assert_true(span_eq_str(m.command, "early"));
    uint64_t id = m.id;
    fb_welcome(f->fb, "ready");
    fb_result_ok(f->fb, id, NULL, 0);
    PUMP_UNTIL(f, R.n_results == 1);
    assert_int_equal(R.results[0].tag, 2);
    assert_int_equal(R.results[0].code, 0);
}

/* PROTOCOL.md v2: an error frame never completes a request, even one that
 * carries the id of a request in flight (its id may be a call id: an error
 * about a reply). The request completes with its own result. */
static void test_error_frame_never_completes_request(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, rec_result, (void *)1), 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    struct proto_msg e;
    memset(&e, 0, sizeof e);
    e.op = PROTO_OP_ERROR;
    e.fields = PROTO_F_ID | PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_ABOUT;
    e.id = m.id;
    e.code = proto_span_str("HandlerError", 12);
    e.message = proto_span_str("reply code unusable", 19);
    e.about = proto_span_str("reply", 5);
    fb_send(f->fb, &e);
    /* And one without id: goes to the error callback. */
    e.fields &= ~(uint32_t)(PROTO_F_ID | PROTO_F_ABOUT);
    e.code = proto_span_str("EmitFailed", 10);
    e.message = proto_span_str("upstream write failed", 21);
    fb_send(f->fb, &e);
    /* A code this library does not know. */
    e.code = proto_span_str("FutureCode", 10);
    e.message = proto_span_str("new", 3);
    fb_send(f->fb, &e);
    PUMP_UNTIL(f, R.n_errors == 3);
    assert_int_equal(R.n_results, 0);
    assert_int_equal(R.errors[0], VOLT_E_HANDLER_ERROR);
    char want[96];
    snprintf(want, sizeof want, "reply code unusable (about reply %llu)", (unsigned long long)m.id);
    assert_string_equal(R.error_msg[0], want);
    assert_int_equal(R.errors[1], VOLT_E_EMIT_FAILED);
    assert_string_equal(R.error_msg[1], "upstream write failed");
    assert_int_equal(R.errors[2], VOLT_E_INTERNAL);
    assert_string_equal(R.error_msg[2], "FutureCode: new");
    /* The request is still in flight, and its result completes it. */
    struct mp d = mp_str("fine");
    fb_result_ok(f->fb, m.id, d.b.data, d.b.len);
    PUMP_UNTIL(f, R.n_results == 1);
    assert_int_equal(R.results[0].code, 0);
    assert_true(data_is_str(R.results[0].data, R.results[0].data_len, "fine"));
    mp_free(&d);
}

static void test_invalid_arguments(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    static const uint8_t reserved[] = {0xc1};
    static const uint8_t two_values[] = {0x01, 0x02};
    static const uint8_t truncated[] = {0x92, 0x01};
    assert_int_equal(volt_send_command(f->c, NULL, NULL, 0, 0, NULL, NULL), VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_send_command(f->c, "", NULL, 0, 0, NULL, NULL), VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_send_command(f->c, "x", reserved, 1, 0, NULL, NULL), VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_send_command(f->c, "x", two_values, 2, 0, NULL, NULL),
                     VOLT_E_BAD_REQUEST);
    assert_non_null(strstr(volt_client_errstr(f->c), "after its msgpack value"));
    assert_int_equal(volt_send_command(f->c, "x", truncated, 2, 0, NULL, NULL), VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_emit(f->c, NULL, NULL, 0), VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_register_handler(f->c, "", keep_call, NULL), VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_register_handler(f->c, "x", NULL, NULL), VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_unregister_handler(f->c, "never"), VOLT_E_NO_HANDLER);
    assert_int_equal(volt_on_message(f->c, VOLT_MATCH_EXACT, NULL, 0, rec_message, NULL),
                     VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_on_message(f->c, (enum volt_match)9, "x", 0, rec_message, NULL),
                     VOLT_E_BAD_REQUEST);
    assert_int_equal(volt_off_message(f->c, 12345), VOLT_E_BAD_REQUEST);
    /* None of it reached the broker. */
    assert_true(fb_quiet(f->fb, 30));
}

static void test_frame_too_large_to_send(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_client_connect(f->c), 0);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    struct proto_msg w;
    memset(&w, 0, sizeof w);
    w.op = PROTO_OP_WELCOME;
    w.fields = PROTO_F_VERSION | PROTO_F_MAX_FRAME;
    w.version = 1;
    w.max_frame = 100; /* the broker accepts small frames only */
    fb_send(f->fb, &w);
    PUMP_UNTIL(f, R.broker_up == 1);
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct mp p = mp_str(big);
    assert_int_equal(volt_send_command(f->c, "x", p.b.data, p.b.len, 0, rec_result, NULL),
                     VOLT_E_FRAME_TOO_LARGE);
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, rec_result, NULL), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    assert_true(span_eq_str(m.command, "x"));
    mp_free(&p);
}

static void test_output_limit(void **state)
{
    struct fx *f = *state;
    struct volt_options o;
    base_options(f, &o);
    o.max_output_bytes = 256 * 1024;
    volt_client_free(f->c);
    make_client(f, &o);
    connect_session(f, "ready");
    /* The fake broker stops reading: the kernel buffer fills, then ours. */
    static char blob[60000];
    memset(blob, 'b', sizeof blob - 1);
    struct mp p = mp_str(blob);
    int rc = 0, sent = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
        rc = volt_send_command(f->c, "bulk", p.b.data, p.b.len, 0, NULL, NULL);
        sent += rc == 0;
    }
    assert_int_equal(rc, VOLT_E_LIMIT_EXCEEDED);
    assert_true(sent >= 4);
    assert_true(volt_client_events(f->c) & VOLT_EV_WRITE);
    mp_free(&p);
}

/* ------------------------------------------------------------------ */
/* Inbound calls                                                       */
/* ------------------------------------------------------------------ */

static void send_call(struct fb *fb, uint64_t id, const char *command, const struct mp *payload)
{
    struct proto_msg call;
    memset(&call, 0, sizeof call);
    call.op = PROTO_OP_CALL;
    call.fields = PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_TIMEOUT_MS;
    call.id = id;
    call.command = proto_span_str(command, (uint32_t)strlen(command));
    call.timeout_ms = 30000;
    if (payload) {
        call.fields |= PROTO_F_PAYLOAD;
        call.payload = (struct proto_span){payload->b.data, (uint32_t)payload->b.len};
    }
    fb_send(fb, &call);
}

static void reply_now(volt_client *c, volt_call *call, void *p)
{
    struct mp d = mp_str("now");
    assert_int_equal(volt_call_reply(call, d.b.data, d.b.len), 0);
    mp_free(&d);
}

static void test_call_and_delayed_reply(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_register_handler(f->c, "list-files", keep_call, NULL), 0);
    assert_int_equal(volt_register_handler(f->c, "echo-local", reply_now, NULL), 0);
    connect_session(f, "ready");
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    assert_int_equal(m.commands_count, 2);
    struct proto_str_iter it;
    struct proto_span s;
    proto_msg_commands(&m, &it);
    assert_true(proto_str_iter_next(&it, &s) && span_eq_str(s, "list-files"));
    assert_true(proto_str_iter_next(&it, &s) && span_eq_str(s, "echo-local"));
    fb_result_ok(f->fb, m.id, NULL, 0);

    struct mp payload = mp_str("/tmp");
    send_call(f->fb, 77, "list-files", &payload);
    PUMP_UNTIL(f, R.n_calls == 1);
    volt_call *call = R.calls[0];
    assert_string_equal(volt_call_command(call), "list-files");
    size_t len;
    const void *pl = volt_call_payload(call, &len);
    assert_true(data_is_str(pl, len, "/tmp"));
    assert_int_equal(volt_call_timeout_ms(call), 30000);
    assert_ptr_equal(volt_call_client(call), f->c);
    /* Nothing is answered until the handler says so. */
    assert_true(fb_quiet(f->fb, 30));
    /* The payload outlives the frame it came in. */
    send_call(f->fb, 78, "list-files", NULL);
    PUMP_UNTIL(f, R.n_calls == 2);
    pl = volt_call_payload(call, &len);
    assert_true(data_is_str(pl, len, "/tmp"));
    assert_null(volt_call_payload(R.calls[1], &len));
    assert_int_equal(len, 0);

    struct mp files = mp_str("a.txt");
    assert_int_equal(volt_call_reply(call, files.b.data, files.b.len), 0);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 77);
    assert_true(m.ok);
    assert_true(span_eq_mp(m.data, &files));

    assert_int_equal(volt_call_fail(R.calls[1], 0, "boom"), 0);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 78);
    assert_false(m.ok);
    assert_true(span_eq_str(m.code, "HandlerError"));
    assert_true(span_eq_str(m.message, "boom"));

    /* Answered inside the handler. */
    send_call(f->fb, 79, "echo-local", NULL);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 79);
    assert_true(m.ok);
    assert_true(span_is_str(m.data, "now"));

    /* A call for a command we do not (any longer) handle. */
    assert_int_equal(volt_unregister_handler(f->c, "echo-local"), 0);
    fb_expect(f->fb, PROTO_OP_UNREGISTER, &m);
    assert_int_equal(m.commands_count, 1);
    send_call(f->fb, 80, "echo-local", NULL);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 80);
    assert_false(m.ok);
    assert_true(span_eq_str(m.code, "NoHandler"));
    mp_free(&payload);
    mp_free(&files);
}

static void test_reply_with_bad_data_still_answers(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_register_handler(f->c, "h", keep_call, NULL), 0);
    connect_session(f, "ready");
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    send_call(f->fb, 5, "h", NULL);
    PUMP_UNTIL(f, R.n_calls == 1);
    static const uint8_t bad[] = {0xc1};
    assert_int_equal(volt_call_reply(R.calls[0], bad, 1), VOLT_E_BAD_REQUEST);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 5);
    assert_false(m.ok);
    assert_true(span_eq_str(m.code, "HandlerError"));
    assert_true(fb_quiet(f->fb, 30)); /* exactly one answer */
}

static void test_reply_after_free_is_safe(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_register_handler(f->c, "h", keep_call, NULL), 0);
    connect_session(f, "ready");
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    send_call(f->fb, 1, "h", NULL);
    send_call(f->fb, 2, "h", NULL);
    PUMP_UNTIL(f, R.n_calls == 2);
    volt_client_free(f->c);
    f->c = NULL;
    assert_null(volt_call_client(R.calls[0]));
    assert_string_equal(volt_call_command(R.calls[0]), "h");
    struct mp d = mp_str("late");
    assert_int_equal(volt_call_reply(R.calls[0], d.b.data, d.b.len), VOLT_E_BROKER_GONE);
    assert_int_equal(volt_call_fail(R.calls[1], VOLT_E_HANDLER_ERROR, "late"), VOLT_E_BROKER_GONE);
    /* The broker saw the client go, and no reply. */
    assert_true(fb_eof(f->fb, 1000));
    mp_free(&d);
}

static void test_reply_after_reconnect_not_sent(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_register_handler(f->c, "h", keep_call, NULL), 0);
    connect_session(f, "ready");
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    send_call(f->fb, 1, "h", NULL);
    PUMP_UNTIL(f, R.n_calls == 1);
    fb_close_conn(f->fb);
    PUMP_UNTIL(f, R.broker_down == 1);
    assert_null(volt_call_client(R.calls[0]));
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 2);
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    /* Call id 1 of the old session must not be answered in the new one. */
    assert_int_equal(volt_call_reply(R.calls[0], NULL, 0), VOLT_E_BROKER_GONE);
    pump_for(f, 10);
    assert_true(fb_quiet(f->fb, 30));
}

/* ------------------------------------------------------------------ */
/* Freeing from callbacks                                              */
/* ------------------------------------------------------------------ */

static struct fx *free_fx;

static void free_in_result(volt_client *c, const volt_result *r, void *p)
{
    rec_result(c, r, p);
    volt_client_free(c);
    free_fx->c = NULL;
    /* Everything after the free is refused, nothing crashes. */
    assert_int_equal(volt_send_command(c, "x", NULL, 0, 0, NULL, NULL), VOLT_E_BROKER_GONE);
    assert_int_equal(volt_client_is_connected(c), 0);
}

static void test_free_in_result_callback(void **state)
{
    struct fx *f = *state;
    free_fx = f;
    connect_session(f, "ready");
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, rec_message, (void *)1);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    assert_int_equal(volt_send_command(f->c, "a", NULL, 0, 0, free_in_result, (void *)1), 0);
    assert_int_equal(volt_send_command(f->c, "b", NULL, 0, 0, rec_result, (void *)2), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    uint64_t a = m.id;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    uint64_t b = m.id;
    /* Both results and a message in one write: the free happens while the
     * rest of the buffer is still to be dispatched. */
    struct proto_buf out = PROTO_BUF_INIT;
    struct proto_msg r;
    memset(&r, 0, sizeof r);
    r.op = PROTO_OP_RESULT;
    r.fields = PROTO_F_ID | PROTO_F_OK;
    r.ok = true;
    r.id = a;
    fb_encode(&out, &r);
    r.id = b;
    fb_encode(&out, &r);
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE;
    msg.type = proto_span_str("t", 1);
    fb_encode(&out, &msg);
    fb_send_raw(f->fb, out.data, out.len);
    proto_buf_free(&out);
    PUMP_UNTIL(f, f->c == NULL);
    /* The second request was completed by the free, not by its result. */
    assert_int_equal(R.n_results, 2);
    assert_int_equal(R.results[0].tag, 1);
    assert_int_equal(R.results[0].code, 0);
    assert_int_equal(R.results[1].tag, 2);
    assert_int_equal(R.results[1].code, VOLT_E_SOCKET_NOT_READY);
    assert_int_equal(R.n_msgs, 0);
    assert_true(fb_eof(f->fb, 1000));
}

static void free_in_message(volt_client *c, const volt_message *m, void *p)
{
    rec_message(c, m, p);
    volt_client_free(c);
    free_fx->c = NULL;
}

static void free_in_handler(volt_client *c, volt_call *call, void *p)
{
    keep_call(c, call, p);
    volt_client_free(c);
    free_fx->c = NULL;
    /* The call is detached at once: answering now is refused. */
    assert_null(volt_call_client(call));
}

static void free_in_connected(volt_client *c, void *p)
{
    R.connected++;
    volt_client_free(c);
    free_fx->c = NULL;
}

static void test_free_in_other_callbacks(void **state)
{
    struct fx *f = *state;
    free_fx = f;
    struct proto_msg m;

    /* From a message callback, with a second subscription also matching. */
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, free_in_message, (void *)1);
    volt_on_message(f->c, VOLT_MATCH_PREFIX, "t", 0, rec_message, (void *)2);
    connect_session(f, "ready");
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE;
    msg.type = proto_span_str("t", 1);
    fb_send(f->fb, &msg);
    PUMP_UNTIL(f, f->c == NULL);
    assert_int_equal(R.n_msgs, 1);
    assert_int_equal(R.msgs[0].tag, 1);

    /* From a handler: the call it got stays answerable (refused). */
    struct volt_options o;
    base_options(f, &o);
    make_client(f, &o);
    volt_register_handler(f->c, "h", free_in_handler, NULL);
    connect_session(f, "ready");
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    send_call(f->fb, 3, "h", NULL);
    PUMP_UNTIL(f, f->c == NULL);
    assert_int_equal(volt_call_reply(R.calls[0], NULL, 0), VOLT_E_BROKER_GONE);

    /* From onConnected. */
    make_client(f, &o);
    volt_on_connected(f->c, free_in_connected, NULL);
    connect_session(f, "connecting");
    fb_event(f->fb, "connected", "ready", NULL);
    PUMP_UNTIL(f, f->c == NULL);
    assert_int_equal(R.connected, 1);
}

static void reconnect_in_message(volt_client *c, const volt_message *m, void *p)
{
    char type_before[64];
    snprintf(type_before, sizeof type_before, "%s", m->type);
    volt_client_disconnect(c);
    assert_int_equal(volt_client_connect(c), 0);
    /* The frame this message came in is still readable (the old read
     * buffer is retired, not freed, until the library unwinds). */
    assert_string_equal(m->type, type_before);
    assert_int_equal(m->data_len, 1);
    assert_int_equal(((const uint8_t *)m->data)[0], 0x07);
    rec_message(c, m, p);
}

static void test_reconnect_from_callback(void **state)
{
    struct fx *f = *state;
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, reconnect_in_message, (void *)1);
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, rec_message, (void *)2);
    connect_session(f, "ready");
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    /* Two messages in one write: the second belongs to the old session and
     * must not be delivered after the reconnect. */
    struct mp seven = mp_uint(7);
    struct proto_buf out = PROTO_BUF_INIT;
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE | PROTO_F_DATA;
    msg.type = proto_span_str("first", 5);
    msg.data = (struct proto_span){seven.b.data, (uint32_t)seven.b.len};
    fb_encode(&out, &msg);
    msg.type = proto_span_str("second", 6);
    fb_encode(&out, &msg);
    fb_send_raw(f->fb, out.data, out.len);
    proto_buf_free(&out);
    PUMP_UNTIL(f, R.n_msgs == 1);
    assert_int_equal(R.msgs[0].tag, 1);
    assert_string_equal(R.msgs[0].type, "first");
    /* A disconnect asked for by the program is not reported as an error. */
    assert_int_equal(R.n_errors, 0);
    assert_int_equal(R.broker_down, 1);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 2);
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    pump_for(f, 20);
    assert_int_equal(R.n_msgs, 1);
    mp_free(&seven);
}

/* ------------------------------------------------------------------ */
/* Subscriptions and events                                            */
/* ------------------------------------------------------------------ */

static void send_message(struct fb *fb, const char *type, const struct mp *data)
{
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE;
    msg.type = proto_span_str(type, (uint32_t)strlen(type));
    if (data) {
        msg.fields |= PROTO_F_DATA;
        msg.data = (struct proto_span){data->b.data, (uint32_t)data->b.len};
    }
    fb_send(fb, &msg);
}

static void expect_filter(struct fb *fb, enum proto_op op, const char *match, const char *type)
{
    struct proto_msg m;
    fb_expect(fb, op, &m);
    assert_true(span_eq_str(m.match, match));
    if (type)
        assert_true(span_eq_str(m.type, type));
    else
        assert_false(proto_msg_has(&m, PROTO_F_TYPE));
    fb_result_ok(fb, m.id, NULL, 0);
}

static void test_subscriptions_and_filters(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    int all = volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, rec_message, (void *)1);
    int exact = volt_on_message(f->c, VOLT_MATCH_EXACT, "a.b", 0, rec_message, (void *)2);
    int pre1 = volt_on_message(f->c, VOLT_MATCH_PREFIX, "session.", 0, rec_message, (void *)3);
    int pre2 = volt_on_message(f->c, VOLT_MATCH_PREFIX, "session.", 0, rec_message, (void *)4);
    assert_true(all > 0 && exact > 0 && pre1 > 0 && pre2 > 0);
    assert_true(all != exact && pre1 != pre2);
    expect_filter(f->fb, PROTO_OP_SUBSCRIBE, "all", NULL);
    expect_filter(f->fb, PROTO_OP_SUBSCRIBE, "exact", "a.b");
    expect_filter(f->fb, PROTO_OP_SUBSCRIBE, "prefix", "session.");
    assert_true(fb_quiet(f->fb, 30)); /* the duplicate filter is not sent twice */

    struct mp one = mp_uint(1);
    send_message(f->fb, "a.b", &one);
    send_message(f->fb, "session.input", NULL);
    send_message(f->fb, "a.bc", NULL);
    send_message(f->fb, "other", NULL);
    PUMP_UNTIL(f, count_msgs(1) == 4);
    pump_for(f, 10);
    assert_int_equal(count_msgs(2), 1);
    assert_int_equal(count_msgs(3), 1);
    assert_int_equal(count_msgs(4), 1);
    assert_int_equal(R.n_msgs, 7);
    assert_string_equal(R.msgs[0].type, "a.b");
    assert_int_equal(R.msgs[0].data_len, one.b.len);
    assert_memory_equal(R.msgs[0].data, one.b.data, one.b.len);
    assert_false(R.msgs[0].has_json);

    /* Removing one of two identical filters keeps the broker subscription. */
    assert_int_equal(volt_off_message(f->c, pre1), 0);
    assert_true(fb_quiet(f->fb, 30));
    assert_int_equal(volt_off_message(f->c, pre2), 0);
    expect_filter(f->fb, PROTO_OP_UNSUBSCRIBE, "prefix", "session.");
    assert_int_equal(volt_off_message(f->c, pre2), VOLT_E_BAD_REQUEST);
    R.n_msgs = 0;
    send_message(f->fb, "session.x", NULL);
    PUMP_UNTIL(f, R.n_msgs == 1);
    pump_for(f, 10);
    assert_int_equal(R.n_msgs, 1);
    assert_int_equal(R.msgs[0].tag, 1);

    /* A refused subscription is reported through onError. */
    volt_on_message(f->c, VOLT_MATCH_EXACT, "z", 0, rec_message, (void *)5);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    fb_result_err(f->fb, m.id, "LimitExceeded", "too many subscriptions");
    PUMP_UNTIL(f, R.n_errors == 1);
    assert_int_equal(R.errors[0], VOLT_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(R.error_msg[0], "subscribe"));
    assert_non_null(strstr(R.error_msg[0], "too many subscriptions"));
    mp_free(&one);
}

static int unsub_target;

static void unsub_in_callback(volt_client *c, const volt_message *m, void *p)
{
    rec_message(c, m, p);
    /* Remove the other subscription while the dispatch walks the list. */
    assert_int_equal(volt_off_message(c, unsub_target), 0);
}

static void test_unsubscribe_during_dispatch(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, unsub_in_callback, (void *)1);
    unsub_target = volt_on_message(f->c, VOLT_MATCH_PREFIX, "x", 0, rec_message, (void *)2);
    expect_filter(f->fb, PROTO_OP_SUBSCRIBE, "all", NULL);
    expect_filter(f->fb, PROTO_OP_SUBSCRIBE, "prefix", "x");
    send_message(f->fb, "xy", NULL);
    PUMP_UNTIL(f, R.n_msgs == 1);
    expect_filter(f->fb, PROTO_OP_UNSUBSCRIBE, "prefix", "x");
    pump_for(f, 10);
    assert_int_equal(R.n_msgs, 1); /* the removed one was not called */
}

static void test_events(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    assert_int_equal(volt_client_is_ready(f->c), 1);
    fb_event(f->fb, "disconnected", "backoff", "transport close");
    PUMP_UNTIL(f, R.disconnected == 1);
    assert_string_equal(R.reason, "transport close");
    assert_int_equal(volt_client_is_ready(f->c), 0);
    assert_int_equal(volt_client_is_connected(f->c), 1);
    assert_string_equal(volt_client_upstream_state(f->c), "backoff");

    struct proto_msg e;
    memset(&e, 0, sizeof e);
    e.op = PROTO_OP_EVENT;
    e.fields = PROTO_F_EVENT | PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_STATE;
    e.event = proto_span_str("error", 5);
    e.code = proto_span_str("HeartbeatFailed", 15);
    e.message = proto_span_str("no pong", 7);
    e.state = proto_span_str("backoff", 7);
    fb_send(f->fb, &e);
    e.event = proto_span_str("future-event", 12); /* ignored */
    fb_send(f->fb, &e);
    fb_event(f->fb, "connected", "ready", NULL);
    PUMP_UNTIL(f, R.connected == 1);
    assert_int_equal(R.n_errors, 1);
    assert_int_equal(R.errors[0], VOLT_E_HEARTBEAT_FAILED);
    assert_string_equal(R.error_msg[0], "no pong");
    assert_int_equal(volt_client_is_ready(f->c), 1);
}

/* ------------------------------------------------------------------ */
/* Reconnect                                                           */
/* ------------------------------------------------------------------ */

static void expect_reannounce(struct fb *fb)
{
    struct proto_msg m;
    fb_expect(fb, PROTO_OP_REGISTER, &m);
    assert_int_equal(m.commands_count, 2);
    struct proto_str_iter it;
    struct proto_span s;
    proto_msg_commands(&m, &it);
    assert_true(proto_str_iter_next(&it, &s) && span_eq_str(s, "a"));
    assert_true(proto_str_iter_next(&it, &s) && span_eq_str(s, "b"));
    fb_result_ok(fb, m.id, NULL, 0);
    expect_filter(fb, PROTO_OP_SUBSCRIBE, "exact", "x");
    expect_filter(fb, PROTO_OP_SUBSCRIBE, "prefix", "y.");
    assert_true(fb_quiet(fb, 30));
}

static void test_reconnect_reregisters(void **state)
{
    struct fx *f = *state;
    volt_register_handler(f->c, "a", keep_call, NULL);
    volt_register_handler(f->c, "b", keep_call, NULL);
    volt_on_message(f->c, VOLT_MATCH_EXACT, "x", 0, rec_message, (void *)1);
    volt_on_message(f->c, VOLT_MATCH_PREFIX, "y.", 0, rec_message, (void *)2);
    volt_on_message(f->c, VOLT_MATCH_EXACT, "x", 0, rec_message, (void *)3);
    connect_session(f, "ready");
    expect_reannounce(f->fb);

    /* The connection drops. */
    fb_close_conn(f->fb);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 2);
    expect_reannounce(f->fb);
    send_call(f->fb, 1, "b", NULL);
    PUMP_UNTIL(f, R.n_calls == 1);
    assert_int_equal(volt_call_reply(R.calls[0], NULL, 0), 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REPLY, &m);

    /* The broker restarts: the socket disappears for a while. */
    fb_close_conn(f->fb);
    fb_stop_listening(f->fb);
    PUMP_UNTIL(f, R.broker_down == 2);
    pump_for(f, 150); /* several failed attempts */
    assert_int_equal(volt_client_is_connected(f->c), 0);
    fb_listen(f->fb);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 3);
    expect_reannounce(f->fb);
    send_message(f->fb, "x", NULL);
    PUMP_UNTIL(f, R.n_msgs == 2); /* both "x" subscriptions */
    /* disconnect() stops the retries. */
    volt_client_disconnect(f->c);
    assert_true(fb_eof(f->fb, 1000));
    assert_false(fb_accept(f->fb, 150));
}

static void test_broker_sends_garbage(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, rec_result, (void *)1), 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    /* A frame whose body is not a map: the broker never sends one, so its
     * stream is not trusted any more: BadFrame, the command in flight fails
     * SOCKET_NOT_READY, a reconnect (tests/conformance/bad-input.json). */
    static const uint8_t not_a_map[] = {0, 0, 0, 1, 0x01};
    fb_send_raw(f->fb, not_a_map, sizeof not_a_map);
    PUMP_UNTIL(f, R.n_results == 1);
    assert_int_equal(R.results[0].code, VOLT_E_SOCKET_NOT_READY);
    assert_int_equal(R.n_errors, 1);
    assert_int_equal(R.errors[0], VOLT_E_BAD_FRAME);
    PUMP_UNTIL(f, R.broker_down == 1);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 2);
    /* A result we cannot read is bad input too: the command fails at once
     * (SOCKET_NOT_READY, not by timeout), BadFrame, a reconnect. */
    assert_int_equal(volt_send_command(f->c, "y", NULL, 0, 0, rec_result, (void *)2), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    struct proto_msg r;
    memset(&r, 0, sizeof r);
    r.op = PROTO_OP_RESULT;
    r.fields = PROTO_F_ID | PROTO_F_OK; /* ok false without a code */
    r.id = m.id;
    fb_send(f->fb, &r);
    PUMP_UNTIL(f, R.n_results == 2);
    assert_int_equal(R.results[1].code, VOLT_E_SOCKET_NOT_READY);
    assert_int_equal(R.errors[R.n_errors - 1], VOLT_E_BAD_FRAME);
    PUMP_UNTIL(f, R.broker_down == 2);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 3);
    /* A length over max_frame is fatal for the connection: reconnect. */
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    fb_send_raw(f->fb, huge, sizeof huge);
    PUMP_UNTIL(f, R.broker_down == 3);
    assert_int_equal(R.errors[R.n_errors - 1], VOLT_E_FRAME_TOO_LARGE);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 4);
}

/* ------------------------------------------------------------------ */
/* Frames split at every byte                                          */
/* ------------------------------------------------------------------ */

static void test_frames_split_at_every_byte(void **state)
{
    struct fx *f = *state;
    volt_register_handler(f->c, "h", reply_now, NULL);
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, rec_message, (void *)1);
    assert_int_equal(volt_client_connect(f->c), 0);
    assert_int_equal(volt_send_command(f->c, "early", NULL, 0, 0, rec_result, (void *)1), 0);
    assert_int_equal(volt_ping(f->c, rec_result, (void *)2), 0);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    uint64_t req = m.id;
    fb_expect(f->fb, PROTO_OP_PING, &m);
    uint64_t ping = m.id;

    struct proto_buf out = PROTO_BUF_INIT;
    struct proto_msg w;
    memset(&w, 0, sizeof w);
    w.op = PROTO_OP_WELCOME;
    w.fields = PROTO_F_VERSION | PROTO_F_MAX_FRAME | PROTO_F_NAME | PROTO_F_STATE;
    w.version = 1;
    w.max_frame = PROTO_DEFAULT_MAX_FRAME;
    w.name = proto_span_str("split", 5);
    w.state = proto_span_str("connecting", 10);
    fb_encode(&out, &w);
    struct proto_msg e;
    memset(&e, 0, sizeof e);
    e.op = PROTO_OP_EVENT;
    e.fields = PROTO_F_EVENT | PROTO_F_STATE;
    e.event = proto_span_str("connected", 9);
    e.state = proto_span_str("ready", 5);
    fb_encode(&out, &e);
    struct mp data = mp_str("result-data");
    struct proto_msg r;
    memset(&r, 0, sizeof r);
    r.op = PROTO_OP_RESULT;
    r.fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_DATA;
    r.id = req;
    r.ok = true;
    r.data = (struct proto_span){data.b.data, (uint32_t)data.b.len};
    fb_encode(&out, &r);
    struct proto_msg pong;
    memset(&pong, 0, sizeof pong);
    pong.op = PROTO_OP_PONG;
    pong.fields = PROTO_F_ID;
    pong.id = ping;
    fb_encode(&out, &pong);
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE | PROTO_F_DATA;
    msg.type = proto_span_str("session.input", 13);
    msg.data = r.data;
    fb_encode(&out, &msg);
    struct proto_msg call;
    memset(&call, 0, sizeof call);
    call.op = PROTO_OP_CALL;
    call.fields = PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_PAYLOAD | PROTO_F_TIMEOUT_MS;
    call.id = 9;
    call.command = proto_span_str("h", 1);
    call.payload = r.data;
    call.timeout_ms = 1000;
    fb_encode(&out, &call);

    for (size_t i = 0; i < out.len; i++) {
        fb_send_raw(f->fb, out.data + i, 1);
        assert_true(volt_client_process(f->c, VOLT_EV_READ) != VOLT_E_BROKER_GONE);
    }
    assert_int_equal(R.broker_up, 1);
    assert_int_equal(R.connected, 1);
    assert_int_equal(R.n_results, 2);
    assert_int_equal(R.results[0].tag, 1);
    assert_true(data_is_str(R.results[0].data, R.results[0].data_len, "result-data"));
    assert_int_equal(R.results[1].tag, 2);
    assert_int_equal(R.results[1].code, 0);
    assert_int_equal(R.n_msgs, 1);
    assert_string_equal(R.msgs[0].type, "session.input");
    assert_int_equal(R.n_errors, 0);
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 9);
    assert_true(span_is_str(m.data, "now"));
    proto_buf_free(&out);
    mp_free(&data);
}

/* ------------------------------------------------------------------ */
/* Emit                                                                */
/* ------------------------------------------------------------------ */

static void test_emit(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    struct mp d = mp_str("complete");
    assert_int_equal(volt_emit(f->c, "exposure-snapshot", d.b.data, d.b.len), 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_EMIT, &m);
    assert_false(proto_msg_has(&m, PROTO_F_ID));
    assert_true(span_eq_str(m.type, "exposure-snapshot"));
    assert_true(span_eq_mp(m.data, &d));
    assert_int_equal(volt_emit_acked(f->c, "t", NULL, 0, rec_result, (void *)1), 0);
    fb_expect(f->fb, PROTO_OP_EMIT, &m);
    assert_true(proto_msg_has(&m, PROTO_F_ID));
    assert_false(proto_msg_has(&m, PROTO_F_DATA));
    fb_result_err(f->fb, m.id, "EmitFailed", "not ready");
    PUMP_UNTIL(f, R.n_results == 1);
    assert_int_equal(R.results[0].code, VOLT_E_EMIT_FAILED);
    mp_free(&d);
}

/* ------------------------------------------------------------------ */
/* JSON conveniences                                                   */
/* ------------------------------------------------------------------ */

static void test_json_payloads(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, VOLT_MESSAGE_JSON, rec_message, (void *)1);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_SUBSCRIBE, &m);
    assert_int_equal(volt_send_command_json(f->c, "get-container-stats",
                                            "{\"containerId\":\"c-1\",\"n\":18446744073709551615,"
                                            "\"b\":{\"$bin\":\"AAE=\"}}",
                                            0, rec_result, (void *)1),
                     0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    /* The broker got msgpack: a map with a uint64 and real binary. */
    struct proto_mp_cursor cur;
    struct proto_mp_value v;
    proto_mp_cursor_init(&cur, m.payload.ptr, m.payload.len);
    assert_int_equal(proto_mp_next(&cur, &v), 0);
    assert_int_equal(v.type, PROTO_MP_MAP);
    assert_int_equal(v.v.count, 3);
    bool saw_uint = false, saw_bin = false;
    for (int i = 0; i < 3; i++) {
        struct proto_mp_value k, val;
        assert_int_equal(proto_mp_next(&cur, &k), 0);
        assert_int_equal(proto_mp_next(&cur, &val), 0);
        if (span_eq_str(k.v.str, "n")) {
            assert_int_equal(val.type, PROTO_MP_UINT);
            assert_true(val.v.u == UINT64_MAX);
            saw_uint = true;
        } else if (span_eq_str(k.v.str, "b")) {
            assert_int_equal(val.type, PROTO_MP_BIN);
            assert_int_equal(val.v.str.len, 2);
            saw_bin = true;
        }
    }
    assert_true(saw_uint && saw_bin);

    struct proto_buf data = PROTO_BUF_INIT;
    proto_mp_put_map(&data, 1);
    proto_mp_put_cstr(&data, "cpu");
    proto_mp_put_double(&data, 0.25);
    fb_result_ok(f->fb, m.id, data.data, data.len);
    PUMP_UNTIL(f, R.n_results == 1);
    assert_true(R.results[0].has_json);
    assert_string_equal(R.results[0].json, "{\"cpu\":0.25}");

    send_message(f->fb, "t", NULL);
    PUMP_UNTIL(f, R.n_msgs == 1);
    assert_true(R.msgs[0].has_json);
    assert_string_equal(R.msgs[0].json, "null");

    /* Malformed JSON never reaches the broker. */
    assert_int_equal(volt_send_command_json(f->c, "x", "{\"a\":", 0, NULL, NULL),
                     VOLT_E_BAD_REQUEST);
    assert_non_null(strstr(volt_client_errstr(f->c), "JSON"));
    assert_int_equal(volt_emit_json(f->c, "t", "[1,2]"), 0);
    fb_expect(f->fb, PROTO_OP_EMIT, &m);
    static const uint8_t arr[] = {0x92, 0x01, 0x02};
    assert_int_equal(m.data.len, 3);
    assert_memory_equal(m.data.ptr, arr, 3);

    char *text = NULL;
    size_t tlen = 0;
    assert_int_equal(volt_json_from_msgpack(data.data, data.len, &text, &tlen), 0);
    assert_string_equal(text, "{\"cpu\":0.25}");
    assert_int_equal(tlen, strlen(text));
    void *mp = NULL;
    size_t mlen = 0;
    assert_int_equal(volt_json_to_msgpack(text, tlen, &mp, &mlen), 0);
    assert_int_equal(mlen, data.len);
    assert_memory_equal(mp, data.data, mlen);
    volt_free(mp);
    volt_free(text);
    proto_buf_free(&data);
}

static void reply_json_handler(volt_client *c, volt_call *call, void *p)
{
    const char *in = volt_call_payload_json(call);
    assert_non_null(in);
    assert_string_equal(in, "{\"path\":\"/tmp\"}");
    assert_int_equal(volt_call_reply_json(call, "[\"a.txt\",{\"$bin\":\"/w==\"}]"), 0);
}

static void test_call_json(void **state)
{
    struct fx *f = *state;
    volt_register_handler(f->c, "list-files", reply_json_handler, NULL);
    connect_session(f, "ready");
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    struct mp payload = {PROTO_BUF_INIT};
    proto_mp_put_map(&payload.b, 1);
    proto_mp_put_cstr(&payload.b, "path");
    proto_mp_put_cstr(&payload.b, "/tmp");
    send_call(f->fb, 4, "list-files", &payload);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_true(m.ok);
    struct proto_buf want = PROTO_BUF_INIT;
    proto_mp_put_array(&want, 2);
    proto_mp_put_cstr(&want, "a.txt");
    static const uint8_t ff[] = {0xff};
    proto_mp_put_bin(&want, ff, 1);
    assert_int_equal(m.data.len, want.len);
    assert_memory_equal(m.data.ptr, want.data, want.len);
    proto_buf_free(&want);
    mp_free(&payload);
}

/* ------------------------------------------------------------------ */
/* Blocking API (the fake broker runs in a thread)                     */
/* ------------------------------------------------------------------ */

static void script_blocking(struct fb *fb, void *arg)
{
    struct proto_msg m;
    fb_handshake(fb, "ready");
    fb_event(fb, "connected", "ready", NULL);
    fb_expect(fb, PROTO_OP_SUBSCRIBE, &m);
    fb_result_ok(fb, m.id, NULL, 0);

    fb_expect(fb, PROTO_OP_REQUEST, &m);
    FB_CHECK(span_eq_str(m.command, "get-container-stats"));
    uint64_t id = m.id;
    /* Something else arrives while the caller waits. */
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE;
    msg.type = proto_span_str("during-wait", 11);
    fb_send(fb, &msg);
    struct mp d = mp_str("stats");
    fb_result_ok(fb, id, d.b.data, d.b.len);
    mp_free(&d);

    fb_expect(fb, PROTO_OP_REQUEST, &m);
    fb_result_err(fb, m.id, "SOCKET_NOT_READY", "upstream not ready");

    fb_expect(fb, PROTO_OP_STATUS, &m);
    struct proto_buf st = PROTO_BUF_INIT;
    proto_mp_put_map(&st, 1);
    proto_mp_put_cstr(&st, "broker");
    proto_mp_put_map(&st, 1);
    proto_mp_put_cstr(&st, "pid");
    proto_mp_put_uint(&st, 42);
    fb_result_ok(fb, m.id, st.data, st.len);
    proto_buf_free(&st);

    fb_expect(fb, PROTO_OP_CREDENTIAL, &m);
    FB_CHECK(span_eq_str(m.name, "teamClusterId"));
    struct mp tc = mp_str("cluster-abc123");
    fb_result_ok(fb, m.id, tc.b.data, tc.b.len);
    mp_free(&tc);

    fb_expect(fb, PROTO_OP_CREDENTIAL, &m);
    FB_CHECK(span_eq_str(m.name, "daemonPassword"));
    fb_result_err(fb, m.id, "PermissionDenied", "not the broker's uid");

    fb_expect(fb, PROTO_OP_PING, &m);
    struct proto_msg pong;
    memset(&pong, 0, sizeof pong);
    pong.op = PROTO_OP_PONG;
    pong.fields = PROTO_F_ID;
    pong.id = m.id;
    fb_send(fb, &pong);

    /* Async credential, then a status that is never answered. */
    fb_expect(fb, PROTO_OP_CREDENTIAL, &m);
    struct mp tc2 = mp_str("cluster-xyz");
    fb_result_ok(fb, m.id, tc2.b.data, tc2.b.len);
    mp_free(&tc2);
    fb_expect(fb, PROTO_OP_STATUS, &m);
    FB_CHECK(fb_eof(fb, 5000));
}

static void test_blocking_api(void **state)
{
    struct fx *f = *state;
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, rec_message, (void *)1);
    fb_thread_start(f->fb, script_blocking, NULL);
    assert_int_equal(volt_client_wait_ready(f->c, 3000), 0);
    assert_int_equal(volt_client_is_ready(f->c), 1);

    volt_result *res = NULL;
    assert_int_equal(volt_send_command_sync(f->c, "get-container-stats", NULL, 0, 0, &res), 0);
    assert_non_null(res);
    assert_int_equal(res->code, 0);
    assert_true(data_is_str(res->data, res->data_len, "stats"));
    volt_result_free(res);
    assert_int_equal(R.n_msgs, 1); /* dispatched during the wait */
    assert_string_equal(R.msgs[0].type, "during-wait");

    assert_int_equal(volt_send_command_sync(f->c, "x", NULL, 0, 0, &res), VOLT_E_SOCKET_NOT_READY);
    assert_string_equal(res->code_name, "SOCKET_NOT_READY");
    assert_string_equal(res->message, "upstream not ready");
    volt_result_free(res);

    char *json = NULL;
    assert_int_equal(volt_status_sync(f->c, 3000, &json), 0);
    assert_string_equal(json, "{\"broker\":{\"pid\":42}}");
    volt_free(json);

    char *s = NULL;
    assert_int_equal(volt_get_team_cluster_id_sync(f->c, 3000, &s), 0);
    assert_string_equal(s, "cluster-abc123");
    volt_free(s);
    assert_int_equal(volt_get_daemon_password_sync(f->c, 3000, &s), VOLT_E_PERMISSION_DENIED);
    assert_null(s);
    assert_int_equal(volt_ping_sync(f->c, 3000), 0);

    assert_int_equal(volt_get_team_cluster_id(f->c, rec_string, NULL), 0);
    for (int i = 0; i < 300 && R.n_strings == 0; i++)
        volt_client_run_for(f->c, 10);
    assert_int_equal(R.string_code, 0);
    assert_string_equal(R.string_value, "cluster-xyz");

    int64_t t0 = now_ms();
    assert_int_equal(volt_status_sync(f->c, 100, &json), VOLT_E_TIMEOUT);
    assert_null(json);
    assert_true(now_ms() - t0 >= 100);
    volt_client_free(f->c);
    f->c = NULL;
    fb_thread_join(f->fb);
}

static void script_connect_only(struct fb *fb, void *arg)
{
    fb_handshake(fb, "connecting");
    FB_CHECK(fb_eof(fb, 5000));
}

static void test_wait_ready_timeout(void **state)
{
    struct fx *f = *state;
    struct volt_options o;
    base_options(f, &o);
    o.wait_upstream = 0; /* a tool that needs the broker only */
    volt_client_free(f->c);
    make_client(f, &o);
    fb_thread_start(f->fb, script_connect_only, NULL);
    assert_int_equal(volt_client_connect_blocking(f->c, 3000), 0);
    assert_int_equal(volt_client_is_connected(f->c), 1);
    assert_int_equal(volt_client_wait_ready(f->c, 100), VOLT_E_TIMEOUT);
    assert_string_equal(volt_client_errstr(f->c),
                        "upstream not ready within 100 ms (state connecting)");
    volt_client_free(f->c);
    f->c = NULL;
    fb_thread_join(f->fb);
}

/* ------------------------------------------------------------------ */
/* Run loop and stop                                                   */
/* ------------------------------------------------------------------ */

static volt_client *signal_client;

static void on_usr1(int sig)
{
    volt_client_stop(signal_client);
}

static void stop_on_message(volt_client *c, const volt_message *m, void *p)
{
    rec_message(c, m, p);
    volt_client_stop(c);
}

static void script_messages(struct fb *fb, void *arg)
{
    struct proto_msg m;
    fb_handshake(fb, "ready");
    fb_event(fb, "connected", "ready", NULL);
    fb_expect(fb, PROTO_OP_SUBSCRIBE, &m);
    fb_result_ok(fb, m.id, NULL, 0);
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE;
    msg.type = proto_span_str("stop", 4);
    fb_send(fb, &msg);
    FB_CHECK(fb_eof(fb, 5000));
}

static void test_run_and_stop(void **state)
{
    struct fx *f = *state;
    volt_on_message(f->c, VOLT_MATCH_ALL, NULL, 0, stop_on_message, (void *)1);
    fb_thread_start(f->fb, script_messages, NULL);
    assert_int_equal(volt_client_connect_blocking(f->c, 3000), 0);
    assert_int_equal(volt_client_run(f->c), 0); /* returns when the callback stops it */
    assert_int_equal(R.n_msgs, 1);

    /* From a signal handler, while run() sleeps in poll(). */
    signal_client = f->c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    int64_t t0 = now_ms();
    pid_t self = getpid();
    /* A child signals us after 100 ms: the point is a signal that comes
     * while run() is asleep in poll(), so the delay stays. */
    pid_t child = fork();
    if (child == 0) {
        usleep(100 * 1000);
        kill(self, SIGUSR1);
        _exit(0);
    }
    assert_int_equal(volt_client_run(f->c), 0);
    assert_true(now_ms() - t0 >= 90);
    waitpid(child, NULL, 0);
    signal(SIGUSR1, SIG_DFL);
    volt_client_free(f->c);
    f->c = NULL;
    fb_thread_join(f->fb);
}

/* ------------------------------------------------------------------ */
/* Loop hooks                                                          */
/* ------------------------------------------------------------------ */

static struct {
    int add_read, del_read, add_write, del_write, close_fd, cleanup, timer_calls;
    int fd;
    int closed_fd;
    int64_t timer;
    /* The smallest timer asked for since it was last reset to INT64_MAX
     * (armed timers only: -1 disarms). */
    int64_t min_timer;
} H;

static void h_add_read(void *d, int fd)
{
    H.add_read++;
    H.fd = fd;
}
static void h_del_read(void *d, int fd)
{
    H.del_read++;
}
static void h_add_write(void *d, int fd)
{
    H.add_write++;
}
static void h_del_write(void *d, int fd)
{
    H.del_write++;
}
static void h_close_fd(void *d, int fd)
{
    H.close_fd++;
    H.closed_fd = fd;
    /* The fd must still be open when we are told. */
    assert_true(fcntl(fd, F_GETFD) >= 0);
}
static void h_set_timer(void *d, int64_t ms)
{
    H.timer_calls++;
    H.timer = ms;
    if (ms >= 0 && ms < H.min_timer)
        H.min_timer = ms;
}
static void h_cleanup(void *d)
{
    H.cleanup++;
}

static void test_loop_hooks(void **state)
{
    struct fx *f = *state;
    memset(&H, 0, sizeof H);
    H.timer = -2;
    struct volt_loop_hooks hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.add_read = h_add_read;
    hooks.del_read = h_del_read;
    hooks.add_write = h_add_write;
    hooks.del_write = h_del_write;
    hooks.close_fd = h_close_fd;
    hooks.set_timer = h_set_timer;
    hooks.cleanup = h_cleanup;
    /* The size says which hooks the caller knows; less than 1.0's is an error. */
    assert_int_equal(volt_client_attach(f->c, &hooks), VOLT_E_BAD_REQUEST);
    hooks.size = offsetof(struct volt_loop_hooks, cleanup);
    assert_int_equal(volt_client_attach(f->c, &hooks), VOLT_E_BAD_REQUEST);
    /* A later caller's longer struct is fine. */
    struct {
        struct volt_loop_hooks h;
        void (*later_hook)(void *);
    } big;
    memset(&big, 0, sizeof big);
    big.h = hooks;
    big.h.size = sizeof big;
    assert_int_equal(volt_client_attach(f->c, &big.h), 0);
    assert_int_equal(volt_client_attach(f->c, &hooks), VOLT_E_BAD_REQUEST);
    assert_int_equal(H.add_read, 0);
    assert_int_equal(H.timer_calls, 0);

    assert_int_equal(volt_client_connect(f->c), 0);
    assert_int_equal(H.add_read, 1);
    assert_int_equal(H.fd, volt_client_fd(f->c));
    assert_true(H.timer > 0 && H.timer <= 5000); /* the welcome deadline */
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 1);
    assert_int_equal(H.timer, -1); /* nothing pending */
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 1000, rec_result, NULL), 0);
    assert_true(H.timer > 1000 && H.timer <= 2000); /* timeout + grace */

    int old_fd = H.fd;
    H.min_timer = INT64_MAX;
    fb_close_conn(f->fb);
    PUMP_UNTIL(f, R.broker_down == 1);
    assert_int_equal(H.close_fd, 1);
    assert_int_equal(H.closed_fd, old_fd);
    /* The reconnect backoff was armed; on a slow machine (ThreadSanitizer)
     * the backoff may have run out inside the same process call, and the
     * next attempt, with its own welcome deadline, already started. */
    bool backoff_armed = H.min_timer >= 0 && H.min_timer <= 40;
    bool next_attempt = volt_client_fd(f->c) >= 0 && H.min_timer > 4000 && H.min_timer <= 5000;
    if (!backoff_armed && !next_attempt)
        fail_msg("timer after the loss: %lld ms, fd %d", (long long)H.min_timer,
                 volt_client_fd(f->c));
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, R.broker_up == 2);
    assert_int_equal(H.add_read, 2);
    assert_int_equal(H.fd, volt_client_fd(f->c));
    assert_int_equal(H.cleanup, 0);
    volt_client_free(f->c);
    f->c = NULL;
    assert_int_equal(H.close_fd, 2);
    assert_int_equal(H.cleanup, 1);
}

/* ------------------------------------------------------------------ */
/* Protocol v2: welcome fields, the broker's command timeout, volatile  */
/* ------------------------------------------------------------------ */

static struct proto_span cspan(const char *s)
{
    return proto_span_str(s, (uint32_t)strlen(s));
}

/* A welcome as volt-broker 2 sends it, state and error chosen by the test. */
static void welcome_v2(struct fb *fb, const char *state, uint32_t timeout_ms, const char *code,
                       const char *message)
{
    struct proto_msg w;
    memset(&w, 0, sizeof w);
    w.fields = PROTO_F_STATE | PROTO_F_TIMEOUT_MS | PROTO_F_MAX_TIMEOUT_MS |
               PROTO_F_TEAM_CLUSTER_ID | PROTO_F_REASON;
    w.state = cspan(state);
    w.timeout_ms = timeout_ms;
    w.max_timeout_ms = 600000;
    w.team_cluster_id = cspan("cluster-v2");
    w.reason = cspan(strcmp(state, "ready") == 0 ? "registered" : "waiting to retry");
    if (code) {
        w.fields |= PROTO_F_CODE | PROTO_F_MESSAGE;
        w.code = cspan(code);
        w.message = cspan(message);
    }
    fb_welcome_msg(fb, &w);
}

static void event_connected(struct fb *fb, const char *team)
{
    struct proto_msg e;
    memset(&e, 0, sizeof e);
    e.fields = PROTO_F_EVENT | PROTO_F_STATE | PROTO_F_TEAM_CLUSTER_ID;
    e.event = cspan("connected");
    e.state = cspan("ready");
    e.team_cluster_id = cspan(team);
    fb_event_msg(fb, &e);
}

static void event_error(struct fb *fb, const char *code, const char *message, const char *state)
{
    struct proto_msg e;
    memset(&e, 0, sizeof e);
    e.fields = PROTO_F_EVENT | PROTO_F_STATE | PROTO_F_CODE | PROTO_F_MESSAGE;
    e.event = cspan("error");
    e.state = cspan(state);
    e.code = cspan(code);
    e.message = cspan(message);
    fb_event_msg(fb, &e);
}

static void test_welcome_v2_getters(void **state)
{
    struct fx *f = *state;
    assert_string_equal(volt_client_team_cluster_id(f->c), "");
    assert_int_equal(volt_client_command_timeout_ms(f->c), 0);
    assert_int_equal(volt_client_connect(f->c), 0);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    assert_int_equal(m.max_version, 2);
    welcome_v2(f->fb, "backoff", 45000, "SocketRegistrationFailed",
               "RegistrationRefused: bad password");
    PUMP_UNTIL(f, R.broker_up == 1);
    /* Synchronous: no round trip for getTeamClusterId(). */
    assert_string_equal(volt_client_team_cluster_id(f->c), "cluster-v2");
    assert_int_equal(volt_client_command_timeout_ms(f->c), 45000);
    assert_int_equal(volt_client_max_timeout_ms(f->c), 600000);
    assert_string_equal(volt_client_upstream_reason(f->c), "waiting to retry");
    const char *msg = NULL;
    assert_int_equal(volt_client_upstream_error(f->c, &msg), VOLT_E_SOCKET_REGISTRATION_FAILED);
    assert_string_equal(msg, "RegistrationRefused: bad password");
    /* `connected` carries the id in force and clears the error. */
    event_connected(f->fb, "cluster-rotated");
    PUMP_UNTIL(f, R.connected == 1);
    assert_string_equal(volt_client_team_cluster_id(f->c), "cluster-rotated");
    assert_int_equal(volt_client_upstream_error(f->c, &msg), 0);
    assert_string_equal(msg, "");
    assert_int_equal(volt_client_is_ready(f->c), 1);
}

/* A command without a timeout carries none (the broker's commandTimeout
 * applies), and its local deadline is the broker's timeout plus the grace. */
static void test_command_timeout_unset_means_brokers(void **state)
{
    struct fx *f = *state;
    struct volt_options o;
    base_options(f, &o);
    o.timeout_grace_ms = 50;
    volt_client_free(f->c);
    make_client(f, &o);
    assert_int_equal(volt_client_connect(f->c), 0);
    /* Sent before the welcome: the deadline comes with the welcome. */
    assert_int_equal(volt_send_command(f->c, "early", NULL, 0, 0, rec_result, (void *)1), 0);
    assert_int_equal(volt_client_timeout_ms(f->c) > 1000, 1); /* only the connect deadline */
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    assert_true(span_eq_str(m.command, "early"));
    assert_false(proto_msg_has(&m, PROTO_F_TIMEOUT_MS));
    int64_t t0 = now_ms();
    welcome_v2(f->fb, "ready", 150, NULL, NULL);
    PUMP_UNTIL(f, R.broker_up == 1);
    assert_int_equal(volt_send_command(f->c, "later", NULL, 0, 0, rec_result, (void *)2), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    assert_false(proto_msg_has(&m, PROTO_F_TIMEOUT_MS));
    /* An explicit timeout is sent as is. */
    assert_int_equal(volt_send_command(f->c, "explicit", NULL, 0, 4000, rec_result, (void *)3), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    assert_true(proto_msg_has(&m, PROTO_F_TIMEOUT_MS));
    assert_int_equal(m.timeout_ms, 4000);
    /* Both broker-timeout requests expire at about 150 + 50 ms. */
    PUMP_UNTIL(f, R.n_results == 2);
    int64_t took = now_ms() - t0;
    assert_true(took >= 190 && took < 2000);
    assert_int_equal(R.results[0].code, VOLT_E_TIMEOUT);
    assert_int_equal(R.results[1].code, VOLT_E_TIMEOUT);
    assert_int_equal(R.results[0].tag + R.results[1].tag, 3);

    /* An option sets a client-wide default that is sent. */
    base_options(f, &o);
    o.command_timeout_ms = 7000;
    volt_client_free(f->c);
    make_client(f, &o);
    connect_session(f, "ready");
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, rec_result, (void *)4), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    assert_true(proto_msg_has(&m, PROTO_F_TIMEOUT_MS));
    assert_int_equal(m.timeout_ms, 7000);
}

static void test_emit_volatile(void **state)
{
    struct fx *f = *state;
    connect_session(f, "ready");
    struct proto_msg m;
    assert_int_equal(volt_emit_ex(f->c, "tick", NULL, 0, VOLT_EMIT_VOLATILE, NULL, NULL), 0);
    fb_expect(f->fb, PROTO_OP_EMIT, &m);
    assert_true(proto_msg_has(&m, PROTO_F_VOLATILE));
    assert_true(m.is_volatile);
    assert_false(proto_msg_has(&m, PROTO_F_ID));
    /* Kept (the default) says nothing. */
    assert_int_equal(volt_emit_json(f->c, "kept", "{\"a\":1}"), 0);
    fb_expect(f->fb, PROTO_OP_EMIT, &m);
    assert_false(proto_msg_has(&m, PROTO_F_VOLATILE));
    /* Acknowledged and volatile: the broker's EmitFailed comes back. */
    assert_int_equal(
        volt_emit_json_ex(f->c, "tick", "[1]", VOLT_EMIT_VOLATILE, rec_result, (void *)1), 0);
    fb_expect(f->fb, PROTO_OP_EMIT, &m);
    assert_true(proto_msg_has(&m, PROTO_F_ID) && m.is_volatile);
    fb_result_err(f->fb, m.id, "EmitFailed", "upstream not ready (volatile)");
    PUMP_UNTIL(f, R.n_results == 1);
    assert_int_equal(R.results[0].code, VOLT_E_EMIT_FAILED);
    assert_int_equal(volt_emit_ex(f->c, "tick", NULL, 0, 0x80, NULL, NULL), VOLT_E_BAD_REQUEST);
    assert_true(fb_quiet(f->fb, 30));
}

static void test_fail_code(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_register_handler(f->c, "get", keep_call, NULL), 0);
    connect_session(f, "ready");
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);
    for (uint64_t id = 1; id <= 5; id++)
        send_call(f->fb, id, "get", NULL);
    PUMP_UNTIL(f, R.n_calls == 5);

    assert_int_equal(volt_call_fail_code(R.calls[0], "NOT_FOUND", "no such file"), 0);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 1);
    assert_false(m.ok);
    assert_true(span_eq_str(m.code, "NOT_FOUND"));
    assert_true(span_eq_str(m.message, "no such file"));

    /* 64 bytes is the limit; UTF-8 is fine. */
    char code64[65];
    memset(code64, 'C', 64);
    code64[64] = '\0';
    assert_int_equal(volt_call_fail_code(R.calls[1], code64, NULL), 0);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_true(span_eq_str(m.code, code64));
    assert_false(proto_msg_has(&m, PROTO_F_MESSAGE));

    /* Unusable codes: the call is still answered, as HandlerError. */
    char code65[66];
    memset(code65, 'C', 65);
    code65[65] = '\0';
    const char *bad[] = {code65, "TWO\nLINES", NULL};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(volt_call_fail_code(R.calls[2 + i], bad[i], "why"), VOLT_E_BAD_REQUEST);
        fb_expect(f->fb, PROTO_OP_REPLY, &m);
        assert_int_equal(m.id, (uint64_t)(3 + i));
        assert_true(span_eq_str(m.code, "HandlerError"));
        assert_true(m.message.len > 0);
    }
}

/* ------------------------------------------------------------------ */
/* Connecting waits for the upstream (the seed's `await connect()`)     */
/* ------------------------------------------------------------------ */

static void script_ready_later(struct fb *fb, void *arg)
{
    fb_handshake(fb, "connecting");
    /* A broker that has just started: the upstream comes up a bit later. */
    struct timespec ts = {0, 150 * 1000000L};
    nanosleep(&ts, NULL);
    event_connected(fb, "cluster-late");
    FB_CHECK(fb_eof(fb, 5000));
}

static void test_connect_waits_for_upstream(void **state)
{
    struct fx *f = *state;
    fb_thread_start(f->fb, script_ready_later, NULL);
    int64_t t0 = now_ms();
    assert_int_equal(volt_client_connect_blocking(f->c, 5000), 0);
    assert_true(now_ms() - t0 >= 140);
    assert_int_equal(volt_client_is_ready(f->c), 1);
    assert_int_equal(R.connected, 1); /* onConnected ran before connect returned */
    assert_string_equal(volt_client_team_cluster_id(f->c), "cluster-late");
    volt_client_free(f->c);
    f->c = NULL;
    fb_thread_join(f->fb);
}

static void script_failed(struct fb *fb, void *arg)
{
    if (!fb_accept(fb, 3000))
        fb_fail("client did not connect");
    struct proto_msg m;
    fb_expect(fb, PROTO_OP_HELLO, &m);
    welcome_v2(fb, "failed", 30000, "EnrollmentFailed", "enrollment refused: token already used");
    FB_CHECK(fb_eof(fb, 5000));
}

static void test_connect_fails_early_when_upstream_failed(void **state)
{
    struct fx *f = *state;
    fb_thread_start(f->fb, script_failed, NULL);
    int64_t t0 = now_ms();
    assert_int_equal(volt_client_connect_blocking(f->c, 10000), VOLT_E_ENROLLMENT_FAILED);
    assert_true(now_ms() - t0 < 5000);
    assert_string_equal(volt_client_errstr(f->c),
                        "upstream failed: enrollment refused: token already used");
    /* The broker session itself is fine. */
    assert_int_equal(volt_client_is_connected(f->c), 1);
    volt_client_free(f->c);
    f->c = NULL;
    fb_thread_join(f->fb);
}

struct deadline_case {
    const char *welcome_code, *welcome_msg; /* in the welcome */
    const char *event_code, *event_msg;     /* or in a later error event */
};

static void script_never_ready(struct fb *fb, void *arg)
{
    const struct deadline_case *dc = arg;
    if (!fb_accept(fb, 3000))
        fb_fail("client did not connect");
    struct proto_msg m;
    fb_expect(fb, PROTO_OP_HELLO, &m);
    welcome_v2(fb, "backoff", 30000, dc->welcome_code, dc->welcome_msg);
    if (dc->event_code)
        event_error(fb, dc->event_code, dc->event_msg, "backoff");
    FB_CHECK(fb_eof(fb, 5000));
}

static void test_connect_deadline_returns_upstream_error(void **state)
{
    struct fx *f = *state;
    static const struct deadline_case cases[] = {
        {"SocketRegistrationFailed", "RegistrationRefused: unknown teamClusterId", NULL, NULL},
        {NULL, NULL, "SocketConnectionFailed", "connect ECONNREFUSED 127.0.0.1:9"},
        {NULL, NULL, NULL, NULL},
    };
    static const int want[] = {VOLT_E_SOCKET_REGISTRATION_FAILED, VOLT_E_SOCKET_CONNECTION_FAILED,
                               VOLT_E_TIMEOUT};
    static const char *const want_msg[] = {
        "upstream not ready within 300 ms: RegistrationRefused: unknown teamClusterId",
        "upstream not ready within 300 ms: connect ECONNREFUSED 127.0.0.1:9",
        "upstream not ready within 300 ms (state backoff: waiting to retry)",
    };
    for (int i = 0; i < 3; i++) {
        fb_thread_start(f->fb, script_never_ready, (void *)&cases[i]);
        int64_t t0 = now_ms();
        assert_int_equal(volt_client_connect_blocking(f->c, 300), want[i]);
        assert_true(now_ms() - t0 >= 290);
        assert_string_equal(volt_client_errstr(f->c), want_msg[i]);
        volt_client_disconnect(f->c);
        fb_thread_join(f->fb);
    }
}

struct conn_rec {
    int n;
    int code;
    char message[256];
    bool in_call;
};

static bool in_connect_call;

static void rec_connect(volt_client *c, int code, const char *message, void *p)
{
    struct conn_rec *r = p;
    r->n++;
    r->code = code;
    snprintf(r->message, sizeof r->message, "%s", message);
    r->in_call = in_connect_call;
}

static void test_connect_async(void **state)
{
    struct fx *f = *state;
    struct conn_rec r = {0};
    in_connect_call = true;
    assert_int_equal(volt_client_connect_async(f->c, 5000, rec_connect, &r), 0);
    in_connect_call = false;
    /* One waiter at a time. */
    assert_int_equal(volt_client_connect_async(f->c, 5000, rec_connect, &r), VOLT_E_BAD_REQUEST);
    assert_true(fb_accept(f->fb, 3000));
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_HELLO, &m);
    welcome_v2(f->fb, "connecting", 30000, NULL, NULL);
    PUMP_UNTIL(f, R.broker_up == 1);
    pump_for(f, 20);
    assert_int_equal(r.n, 0); /* the broker is there, the upstream not yet */
    event_connected(f->fb, "cluster-v2");
    PUMP_UNTIL(f, r.n == 1);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.message, "");
    assert_false(r.in_call);

    /* Already ready: completes from the loop, never inside the call. */
    in_connect_call = true;
    assert_int_equal(volt_client_connect_async(f->c, 5000, rec_connect, &r), 0);
    in_connect_call = false;
    assert_int_equal(r.n, 1);
    PUMP_UNTIL(f, r.n == 2);
    assert_int_equal(r.code, 0);
    assert_false(r.in_call);

    /* Freed while waiting: BrokerGone, so privdata can be released. */
    fb_event(f->fb, "disconnected", "backoff", "transport close");
    PUMP_UNTIL(f, R.disconnected == 1);
    assert_int_equal(volt_client_connect_async(f->c, -1, rec_connect, &r), 0);
    pump_for(f, 20);
    assert_int_equal(r.n, 2);
    volt_client_free(f->c);
    f->c = NULL;
    assert_int_equal(r.n, 3);
    assert_int_equal(r.code, VOLT_E_BROKER_GONE);
}

static void test_connect_async_broker_only_and_no_broker(void **state)
{
    struct fx *f = *state;
    struct volt_options o;
    base_options(f, &o);
    o.wait_upstream = 0;
    volt_client_free(f->c);
    make_client(f, &o);
    struct conn_rec r = {0};
    assert_int_equal(volt_client_connect_async(f->c, 5000, rec_connect, &r), 0);
    fb_handshake(f->fb, "idle");
    PUMP_UNTIL(f, r.n == 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(volt_client_is_ready(f->c), 0);

    /* No broker, reconnect on: the waiter ends at its deadline, saying so. */
    volt_client_disconnect(f->c);
    fb_stop_listening(f->fb);
    assert_int_equal(volt_client_connect_async(f->c, 150, rec_connect, &r), 0);
    PUMP_UNTIL(f, r.n == 2);
    assert_int_equal(r.code, VOLT_E_BROKER_GONE);
    assert_non_null(strstr(r.message, "no broker at "));
    assert_non_null(strstr(r.message, "is volt-broker running? set VOLT_BROKER_SOCKET"));

    /* Reconnect off: the attempt fails at once and the callback never runs. */
    base_options(f, &o);
    o.reconnect = 0;
    volt_client_free(f->c);
    make_client(f, &o);
    assert_int_equal(volt_client_connect_async(f->c, 150, rec_connect, &r), VOLT_E_BROKER_GONE);
    pump_for(f, 20);
    assert_int_equal(r.n, 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_default_socket_path),
        cmocka_unit_test(test_options_size),
        cmocka_unit_test_setup_teardown(test_hello_welcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_no_broker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_welcome_timeout_then_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_gone_fails_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_before_welcome_is_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_frame_never_completes_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_too_large_to_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_and_delayed_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_with_bad_data_still_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_after_free_is_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_after_reconnect_not_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_result_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_other_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe_during_dispatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_reregisters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_sends_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_split_at_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocking_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_ready_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_welcome_v2_getters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout_unset_means_brokers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emit_volatile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_waits_for_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_fails_early_when_upstream_failed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connect_deadline_returns_upstream_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connect_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_async_broker_only_and_no_broker, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
