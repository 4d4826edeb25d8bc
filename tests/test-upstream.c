/* The upstream contract (shared/volt-upstream-protocol.md, sections 1-9)
 * against the real socket.io 4.8 dev server, through a real volt-broker
 * driven over its local socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

struct fixture {
    struct h_server server;
    struct h_broker broker;
};

/* more: further "broker" settings (",\"name\":value..."), or "" */
#define BASE_CONFIG_WITH(more)                                                                     \
    "\"serverUrl\":\"http://127.0.0.1:%PORT%\","                                                   \
    "\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","                                      \
    "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"                         \
    "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\"" more "}"
#define BASE_CONFIG BASE_CONFIG_WITH("")

static const char *const plain_config =
    "{" BASE_CONFIG ",\"credentials\":{\"teamClusterId\":\"cluster-dev\","
    "\"daemonPassword\":\"dev-password\"},\"commandTimeout\":3000}";

static struct fixture fx;

static int start_all(const char *const *server_args, const char *config)
{
    memset(&fx, 0, sizeof(fx));
    if (h_server_start(&fx.server, server_args) < 0)
        return -1;
    if (h_broker_start(&fx.broker, &fx.server, config, NULL) < 0) {
        h_server_stop(&fx.server);
        return -1;
    }
    return 0;
}

static int stop_all(void)
{
    int rc = h_broker_stop(&fx.broker, 15000);
    h_broker_cleanup(&fx.broker);
    h_server_stop(&fx.server);
    return rc;
}

static int setup_plain(void **state)
{
    static const char *const args[] = {"--ping-interval", "500", "--ping-timeout", "500", NULL};
    (void)state;
    return start_all(args, plain_config);
}

static int teardown(void **state)
{
    (void)state;
    return stop_all() == 0 ? 0 : -1;
}

/* The handler list the server has for the (single) connected daemon, as
 * compact JSON text (caller frees), or NULL. */
static char *server_handlers(void)
{
    cJSON *st = h_http_json(&fx.server, "GET", "/_dev/state", NULL);
    cJSON *conn = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "connected"), 0);
    cJSON *h = cJSON_GetObjectItem(conn, "handlers");
    char *text = h ? cJSON_PrintUnformatted(h) : NULL;
    cJSON_Delete(st);
    return text;
}

static cJSON *request(struct h_conn *c, long long id, const char *command, const char *payload,
                      int timeout_ms)
{
    char frame[8192];
    if (payload)
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":%lld,\"command\":\"%s\",\"payload\":%s,"
                 "\"timeout_ms\":%d}",
                 id, command, payload, timeout_ms);
    else
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":%lld,\"command\":\"%s\",\"timeout_ms\":%d}", id,
                 command, timeout_ms);
    if (h_conn_send(*&c, frame) < 0)
        return NULL;
    return h_conn_expect(c, "result", id, timeout_ms + 5000);
}

static void assert_ok(cJSON *r)
{
    assert_non_null(r);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
        char *t = cJSON_PrintUnformatted(r);
        fprintf(stderr, "expected ok, got %s\n", t);
        free(t);
        fail();
    }
}

static void assert_code(cJSON *r, const char *code)
{
    assert_non_null(r);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    assert_string_equal(h_json_str(r, "code"), code);
}

/* Registers commands (a JSON array) and expects ok. */
static void register_commands(struct h_conn *c, int id, const char *commands)
{
    char frame[256];
    snprintf(frame, sizeof(frame), "{\"op\":\"register\",\"id\":%d,\"commands\":%s}", id, commands);
    assert_int_equal(h_conn_send(c, frame), 0);
    cJSON *r = h_conn_expect(c, "result", id, 5000);
    assert_ok(r);
    cJSON_Delete(r);
}

/* Replies to a call frame and frees it; `fields` follow the id
 * ("\"ok\":true,\"data\":1"). */
static void answer_call(struct h_conn *c, cJSON *call, const char *fields)
{
    assert_non_null(call);
    size_t n = strlen(fields) + 64;
    char *reply = malloc(n);
    assert_non_null(reply);
    snprintf(reply, n, "{\"op\":\"reply\",\"id\":%.0f,%s}", h_json_num(call, "id", 0), fields);
    cJSON_Delete(call);
    int rc = h_conn_send(c, reply);
    free(reply);
    assert_int_equal(rc, 0);
}

/* A child that ran a check (exit 0: it held) has finished well. */
static void expect_child_ok(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- 2, 3, 4: connect, register, commands ---- */

static void test_commands(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-commands");
    cJSON *r;

    /* echo, with a float and a non-ASCII string (integers: test_integers_64bit). */
    r = request(c, 1, "echo", "{\"a\":[1,2,3],\"f\":0.1,\"s\":\"é\"}", 3000);
    assert_ok(r);
    assert_int_equal((int)h_json_num(r, "data.a", -1), -1); /* an array, not a number */
    assert_string_equal(h_json_str(r, "data.s"), "é");
    assert_true(h_json_num(r, "data.f", 0) == 0.1);
    cJSON_Delete(r);

    /* reject: COMMAND_REJECTED with the server's code and message */
    r = request(c, 2, "reject", "{\"code\":\"E_NOPE\",\"message\":\"not today\"}", 3000);
    assert_code(r, "COMMAND_REJECTED");
    assert_string_equal(h_json_str(r, "server_code"), "E_NOPE");
    assert_string_equal(h_json_str(r, "message"), "not today");
    cJSON_Delete(r);

    /* never: COMMAND_TIMEOUT after the per-request timeout */
    uint64_t t0 = h_now_ms();
    r = request(c, 3, "never", NULL, 400);
    assert_code(r, "COMMAND_TIMEOUT");
    assert_true(h_now_ms() - t0 >= 350);
    cJSON_Delete(r);

    /* late: times out, and the response arriving later is dropped */
    r = request(c, 4, "late", "{\"ms\":600}", 300);
    assert_code(r, "COMMAND_TIMEOUT");
    cJSON_Delete(r);
    /* The server's answer comes about 300 ms after the timeout: dropped. */
    assert_int_equal(h_wait_status_num(fx.broker.sock, "counters.drops", 1, h_slack_ms(5000)), 0);
    /* nothing else arrived for id 4 */
    assert_null(h_conn_expect(c, "result", 4, 200));

    /* no payload: the server sees no payload key */
    r = request(c, 5, "status", NULL, 3000);
    assert_ok(r);
    assert_string_equal(h_json_str(r, "data.server"), "volt-dev-server");
    cJSON_Delete(r);

    /* many in flight at once, answered out of order by id */
    for (int i = 0; i < 200; i++) {
        char frame[256];
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":%d,\"command\":\"echo\",\"payload\":{\"i\":%d}}",
                 1000 + i, i);
        assert_int_equal(h_conn_send(c, frame), 0);
    }
    int seen[200] = {0};
    for (int i = 0; i < 200; i++) {
        r = h_conn_expect(c, "result", -1, 5000);
        assert_ok(r);
        int id = (int)h_json_num(r, "id", 0) - 1000;
        assert_true(id >= 0 && id < 200);
        assert_int_equal((int)h_json_num(r, "data.i", -1), id);
        seen[id]++;
        cJSON_Delete(r);
    }
    for (int i = 0; i < 200; i++)
        assert_int_equal(seen[i], 1);

    /* the same id twice while in flight */
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":77,\"command\":\"slow\","
                                    "\"payload\":{\"ms\":300}}"),
                     0);
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":77,\"command\":\"echo\"}"), 0);
    r = h_conn_expect(c, "result", 77, 5000);
    assert_code(r, "DuplicateId");
    cJSON_Delete(r);
    r = h_conn_expect(c, "result", 77, 5000);
    assert_ok(r);
    cJSON_Delete(r);
    h_conn_close(c);
}

/* ---- 4: a disconnect fails what is pending with SOCKET_NOT_READY ---- */

static void wait_server_requests(int n);

static void test_disconnect_fails_pending(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-pending");
    cJSON *r;

    int sent = (int)(h_server_counter(&fx.server, "requests") -
                     h_server_counter(&fx.server, "heartbeats"));
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":1,\"command\":\"never\","
                                    "\"timeout_ms\":20000}"),
                     0);
    /* The request is pending at the server when the connection drops. */
    wait_server_requests(sent + 1);
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/disconnect", "{\"mode\":\"transport\"}", NULL), 200);
    r = h_conn_expect(c, "result", 1, 5000);
    assert_code(r, "SOCKET_NOT_READY");
    cJSON_Delete(r);
    /* events: disconnected, then connected again (state events between) */
    r = h_conn_expect_event(c, "disconnected", 5000);
    assert_non_null(r);
    assert_non_null(h_json_str(r, "reason"));
    cJSON_Delete(r);
    r = h_conn_expect_event(c, "connected", 10000);
    assert_non_null(r);
    cJSON_Delete(r);
    h_conn_close(c);
}

/* ---- 4, 6: 64-bit integers ---- */

/* The member `key` of the first object in `text` that has it, as its raw
 * JSON text (balanced brackets), into out. */
static const char *member_text(const char *text, const char *key, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *at = text ? strstr(text, pat) : NULL;
    if (!at)
        return "(absent)";
    at += strlen(pat);
    size_t n = 0;
    int depth = 0;
    do {
        if (at[n] == '[' || at[n] == '{')
            depth++;
        else if (at[n] == ']' || at[n] == '}')
            depth--;
        n++;
    } while (at[n] && depth > 0);
    if (n >= size)
        n = size - 1;
    memcpy(out, at, n);
    out[n] = '\0';
    return out;
}

/* Fails, printing both, unless member `key` of `text` is exactly `want`. */
static bool member_is(const char *where, const char *text, const char *key, const char *want)
{
    char got[512];
    member_text(text, key, got, sizeof(got));
    if (strcmp(got, want) == 0)
        return true;
    fprintf(stderr, "%s: \"%s\"\n  expected %s\n  actual   %s\n", where, key, want, got);
    return false;
}

/* The text of the next WebSocket message the broker sends upstream that
 * contains `needle`, as the monitor `m` traces it (caller frees), or NULL. */
static char *traced_upstream_out(struct h_conn *m, const char *needle)
{
    uint64_t end = h_now_ms() + 5000;
    while (h_now_ms() < end) {
        cJSON *t = h_conn_expect(m, "trace", -1, 1000);
        if (!t)
            continue;
        const char *dir = h_json_str(t, "dir");
        const char *frame = h_json_str(t, "frame");
        char *found = NULL;
        if (dir && !strcmp(dir, "upstream-out") && frame && strstr(frame, needle))
            found = strdup(frame);
        cJSON_Delete(t);
        if (found)
            return found;
    }
    return NULL;
}

/* Integers through the broker, digit for digit.
 *
 * The broker is exact over all of int64 and uint64, both ways
 * (proto/PROTOCOL.md, "Values"): what a client gives goes upstream as the
 * same decimal digits, and the digits the server writes come back as the
 * same integer. This checks it at the wire (the monitor shows the
 * WebSocket messages) and end to end.
 *
 * End to end, what comes back also depends on the server. The dev server
 * is Node, whose JSON.parse makes every number a double, as a VOLT server
 * in JavaScript does:
 * - integers a double holds exactly (|n| <= 2^53 - 1: SAFE_INTS, both signs
 *   of every msgpack width up to there) come back exact, local -> server ->
 *   local (daemon:request, echoed) and server -> handler -> server
 *   (server:request, answered);
 * - beyond that the server keeps the nearest double and writes it in its
 *   shortest form; the broker reads those digits exactly: an integer when
 *   they fit int64/uint64, else a float64 (PROTOCOL.md, "Values"). So
 *   2^53 + 1 comes back 2^53, 2^63 - 1 comes back 9223372036854776000 (an
 *   integer, not 2^63), 2^64 - 1 and -2^63 come back as floats. */
#define SAFE_INTS "[9007199254740991,-9007199254740991,4294967296,-2147483649,65536,-129,0,-1]"
#define OVER_INTS "[9007199254740993,18446744073709551615,-9223372036854775808,9223372036854775807]"
/* OVER_INTS as a JavaScript server holds them (its JSON.stringify)... */
#define OVER_INTS_IN_JS                                                                            \
    "[9007199254740992,18446744073709552000,-9223372036854776000,9223372036854776000]"
/* ...and as the broker then reads those digits (floats print with ".0"). */
#define OVER_INTS_VIA_JS                                                                           \
    "[9007199254740992,18446744073709552000.0,-9223372036854776000.0,9223372036854776000]"

static void test_integers_64bit(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-integers");
    struct h_conn *m = h_conn_hello(fx.broker.sock, "t-integers-monitor");
    bool ok = true;
    char *wire;

    assert_int_equal(h_conn_send(m, "{\"op\":\"monitor\",\"id\":1}"), 0);
    cJSON *r = h_conn_expect(m, "result", 1, 5000);
    assert_ok(r);
    cJSON_Delete(r);

    /* local -> server -> local: the dev server's echo */
    r = request(c, 1, "echo", "{\"safe\":" SAFE_INTS ",\"over\":" OVER_INTS "}", 3000);
    assert_ok(r);
    ok &= member_is("echo result", h_conn_last_text(c), "safe", SAFE_INTS);
    ok &= member_is("echo result", h_conn_last_text(c), "over", OVER_INTS_VIA_JS);
    cJSON_Delete(r);
    wire = traced_upstream_out(m, "daemon:request");
    assert_non_null(wire);
    ok &= member_is("daemon:request on the wire", wire, "safe", SAFE_INTS);
    ok &= member_is("daemon:request on the wire", wire, "over", OVER_INTS);
    free(wire);

    /* server -> handler -> server: a server:request answered with the same
     * integers, and with those a double cannot hold */
    register_commands(c, 2, "[\"ints\"]");
    pid_t pid = fork();
    if (pid == 0) {
        char *resp = NULL;
        long st = h_http(&fx.server, "POST", "/_dev/server-request",
                         "{\"command\":\"ints\",\"payload\":{\"safe\":" SAFE_INTS "}}", &resp);
        bool child_ok = st == 200;
        if (!child_ok)
            fprintf(stderr, "server-request: expected HTTP 200, actual %ld\n", st);
        child_ok &= member_is("server:response as the server read it", resp, "safe", SAFE_INTS);
        child_ok &=
            member_is("server:response as the server read it", resp, "over", OVER_INTS_IN_JS);
        _exit(child_ok ? 0 : 1);
    }
    r = h_conn_expect(c, "call", -1, 5000);
    assert_non_null(r);
    ok &= member_is("call", h_conn_last_text(c), "safe", SAFE_INTS);
    answer_call(c, r, "\"ok\":true,\"data\":{\"safe\":" SAFE_INTS ",\"over\":" OVER_INTS "}");
    wire = traced_upstream_out(m, "server:response");
    assert_non_null(wire);
    ok &= member_is("server:response on the wire", wire, "safe", SAFE_INTS);
    ok &= member_is("server:response on the wire", wire, "over", OVER_INTS);
    free(wire);
    expect_child_ok(pid);
    h_conn_close(m);
    h_conn_close(c);
    assert_true(ok);
}

/* ---- 3, 6: handlers, registration, server:request ---- */

static void test_handlers_and_server_requests(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-handler");
    cJSON *r;
    char *text;

    /* No registrant: NoHandler at once. */
    cJSON *resp = h_http_json(&fx.server, "POST", "/_dev/server-request",
                              "{\"command\":\"list-files\",\"timeoutMs\":30000}");
    assert_non_null(resp);
    assert_string_equal(h_json_str(resp, "response.error.code"), "NoHandler");
    assert_true(h_json_num(resp, "elapsedMs", 1e9) < h_slack_ms(2000));
    cJSON_Delete(resp);

    register_commands(c, 1, "[\"list-files\",\"run\"]");
    /* The server hears about it (daemon:handlers). */
    uint64_t end = h_now_ms() + 5000;
    while ((text = server_handlers()) && !strstr(text, "list-files") && h_now_ms() < end) {
        free(text);
        h_sleep_ms(50);
    }
    assert_non_null(text);
    assert_non_null(strstr(text, "list-files"));
    assert_non_null(strstr(text, "run"));
    free(text);

    /* A server:request reaches us as a call; our reply goes back. Run the
     * HTTP call from a child so we can answer meanwhile. */
    pid_t pid = fork();
    if (pid == 0) {
        cJSON *x = h_http_json(&fx.server, "POST", "/_dev/server-request",
                               "{\"command\":\"list-files\",\"payload\":{\"path\":\"/tmp\"}}");
        const char *ok = x ? h_json_str(x, "response.data.files.0") : NULL;
        _exit(ok && !strcmp(ok, "a.txt") ? 0 : 1);
    }
    r = h_conn_expect(c, "call", -1, 5000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "command"), "list-files");
    assert_string_equal(h_json_str(r, "payload.path"), "/tmp");
    answer_call(c, r, "\"ok\":true,\"data\":{\"files\":[\"a.txt\"]}");
    expect_child_ok(pid);

    /* A handler error goes back as HandlerError with the message. */
    pid = fork();
    if (pid == 0) {
        cJSON *x = h_http_json(&fx.server, "POST", "/_dev/server-request", "{\"command\":\"run\"}");
        const char *code = x ? h_json_str(x, "response.error.code") : NULL;
        const char *msg = x ? h_json_str(x, "response.error.message") : NULL;
        _exit(code && !strcmp(code, "HandlerError") && msg && !strcmp(msg, "boom") ? 0 : 1);
    }
    answer_call(c, h_conn_expect(c, "call", -1, 5000), "\"ok\":false,\"message\":\"boom\"");
    expect_child_ok(pid);

    /* After the server drops us, the new registration carries the handlers. */
    cJSON *st = h_status(fx.broker.sock);
    double reconnects = h_json_num(st, "counters.reconnects", -1);
    cJSON_Delete(st);
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/disconnect", "{\"mode\":\"namespace\"}", NULL), 200);
    /* The broker has seen the drop (else "ready" would be the old session). */
    assert_int_equal(
        h_wait_status_num(fx.broker.sock, "counters.reconnects", reconnects + 1, h_slack_ms(5000)),
        0);
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    text = server_handlers();
    assert_non_null(text);
    assert_non_null(strstr(text, "list-files"));
    free(text);

    /* The client goes away: the union shrinks to nothing. */
    h_conn_close(c);
    end = h_now_ms() + 5000;
    while ((text = server_handlers()) && strcmp(text, "[]") && h_now_ms() < end) {
        free(text);
        h_sleep_ms(50);
    }
    assert_non_null(text);
    assert_string_equal(text, "[]");
    free(text);
    assert_int_equal(h_server_counter(&fx.server, "duplicateServerResponses"), 0);
}

/* ---- 9: nothing lost on a blip ---- */

/* A reconnection delay long enough (3 s, no jitter) that the test acts
 * while the broker is away, whatever the machine's load. */
static const char *const blip_config =
    "{\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
    "\"socket\":{\"reconnectionDelay\":3000,\"reconnectionDelayMax\":3000,"
    "\"randomizationFactor\":0},"
    "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\"},"
    "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"}}";

static int setup_recovery(void **state)
{
    static const char *const args[] = {"--recovery", "60000", NULL};
    (void)state;
    return start_all(args, blip_config);
}

static int setup_blip(void **state)
{
    (void)state;
    return start_all(NULL, blip_config);
}

static bool upstream_in_backoff(void *arg)
{
    cJSON *st = h_status(arg);
    const char *state = h_json_str(st, "upstream.state");
    bool backoff = state && !strcmp(state, "backoff");
    cJSON_Delete(st);
    return backoff;
}

/* The server drops the transport (no DISCONNECT: an unexpected loss, the
 * kind socket.io keeps a session for); returns once the broker is away. */
static void drop_transport(void)
{
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/disconnect", "{\"mode\":\"transport\"}", NULL), 200);
    assert_int_equal(h_wait_for(upstream_in_backoff, fx.broker.sock, h_slack_ms(5000)), 0);
}

/* The `recovered` flag of the n-th (from 0) registration the server saw. */
static int registration_recovered(int n)
{
    cJSON *ev = h_http_json(&fx.server, "GET", "/_dev/events?since=0&kind=register", NULL);
    cJSON *one = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "events"), n);
    int recovered = one ? cJSON_IsTrue(cJSON_GetObjectItem(one, "recovered")) : -1;
    cJSON_Delete(ev);
    return recovered;
}

static struct h_conn *subscribed_handler(const char *name, const char *commands)
{
    struct h_conn *c = h_conn_hello(fx.broker.sock, name);
    assert_non_null(c);
    assert_int_equal(h_conn_send(c, "{\"op\":\"subscribe\",\"id\":100,\"match\":\"all\"}"), 0);
    cJSON *r = h_conn_expect(c, "result", 100, 5000);
    assert_ok(r);
    cJSON_Delete(r);
    register_commands(c, 101, commands);
    return c;
}

static void expect_message(struct h_conn *c, const char *type)
{
    cJSON *m = h_conn_expect(c, "message", -1, h_slack_ms(10000));
    assert_non_null(m);
    assert_string_equal(h_json_str(m, "type"), type);
    cJSON_Delete(m);
}

/* With connection state recovery on the server, what it sent while the
 * broker was away (a message, a server:request) arrives after the
 * reconnection: the broker resumes the session with its pid and offset. */
static void test_recovery_replays_missed_packets(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = subscribed_handler("t-recovery", "[\"during-blip\"]");
    /* One event before the blip gives the broker an offset to resume from. */
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/message", "{\"type\":\"before\",\"data\":1}", NULL), 200);
    expect_message(c, "before");

    drop_transport();
    cJSON *sent = h_http_json(&fx.server, "POST", "/_dev/message",
                              "{\"type\":\"during\",\"data\":{\"n\":2}}");
    assert_int_equal((int)h_json_num(sent, "sent", -1), 1); /* to its room, stored */
    cJSON_Delete(sent);
    pid_t pid = fork();
    if (pid == 0) {
        cJSON *x = h_http_json(&fx.server, "POST", "/_dev/server-request",
                               "{\"command\":\"during-blip\",\"timeoutMs\":30000}");
        const char *got = x ? h_json_str(x, "response.data") : NULL;
        _exit(got && !strcmp(got, "answered after the blip") ? 0 : 1);
    }

    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    expect_message(c, "during");
    cJSON *call = h_conn_expect(c, "call", -1, h_slack_ms(10000));
    assert_non_null(call);
    assert_string_equal(h_json_str(call, "command"), "during-blip");
    answer_call(c, call, "\"ok\":true,\"data\":\"answered after the blip\"");
    expect_child_ok(pid);
    assert_int_equal(registration_recovered(0), 0);
    assert_int_equal(registration_recovered(1), 1);
    assert_true(h_broker_log_contains(&fx.broker, "session recovered"));
    assert_int_equal(h_server_counter(&fx.server, "duplicateServerResponses"), 0);
    h_conn_close(c);
}

/* Without recovery on the server: a fresh session after the blip (no
 * replay; the broker sends no pid), everything else as usual. */
static void test_no_recovery_fresh_session(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = subscribed_handler("t-no-recovery", "[\"x\"]");
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/message", "{\"type\":\"before\",\"data\":1}", NULL), 200);
    expect_message(c, "before");
    drop_transport();
    cJSON *sent = h_http_json(&fx.server, "POST", "/_dev/message", "{\"type\":\"lost\"}");
    assert_int_equal((int)h_json_num(sent, "sent", -1), 0); /* nobody to send it to */
    cJSON_Delete(sent);
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/message", "{\"type\":\"after\",\"data\":1}", NULL), 200);
    expect_message(c, "after");
    assert_int_equal(registration_recovered(1), 0);
    assert_false(h_broker_log_contains(&fx.broker, "session recovered"));
    h_conn_close(c);
}

/* Emits made while the upstream is away are kept and sent, in order, once
 * it is registered again; a volatile emit fails at once instead. */
static void test_emits_kept_during_blip(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-kept");
    drop_transport();

    assert_int_equal(
        h_conn_send(c, "{\"op\":\"emit\",\"id\":1,\"type\":\"kept-1\",\"data\":{\"n\":1}}"), 0);
    cJSON *r = h_conn_expect(c, "result", 1, 5000);
    assert_ok(r);
    cJSON_Delete(r);
    assert_int_equal(h_conn_send(c, "{\"op\":\"emit\",\"type\":\"kept-2\",\"data\":[2]}"), 0);
    assert_int_equal(h_conn_send(c, "{\"op\":\"emit\",\"id\":3,\"type\":\"gone\","
                                    "\"volatile\":true}"),
                     0);
    r = h_conn_expect(c, "result", 3, 5000);
    assert_code(r, "EmitFailed");
    cJSON_Delete(r);
    /* A value with no JSON form is refused now, not dropped later. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"emit\",\"id\":4,\"type\":\"kept-3\","
                                    "\"data\":{\"$bin\":\"AQI=\"}}"),
                     0);
    r = h_conn_expect(c, "result", 4, 5000);
    assert_ok(r); /* binary travels as an attachment: fine */
    cJSON_Delete(r);
    cJSON *st = h_status(fx.broker.sock);
    assert_true(h_json_num(st, "counters.emits_kept", 0) == 3);
    cJSON_Delete(st);

    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    uint64_t end = h_now_ms() + (uint64_t)h_slack_ms(5000);
    char *text = NULL;
    for (;;) {
        cJSON *ev = h_http_json(&fx.server, "GET", "/_dev/events?since=0&kind=message_in", NULL);
        free(text);
        text = cJSON_PrintUnformatted(ev);
        cJSON_Delete(ev);
        if ((text && strstr(text, "kept-3")) || h_now_ms() >= end)
            break;
        h_sleep_ms(50);
    }
    assert_non_null(text);
    char *k1 = strstr(text, "kept-1"), *k2 = strstr(text, "kept-2"), *k3 = strstr(text, "kept-3");
    if (!k1 || !k2 || !k3 || !(k1 < k2 && k2 < k3) || strstr(text, "gone")) {
        fprintf(stderr, "server saw: %s\n", text);
        fail();
    }
    free(text);
    h_conn_close(c);
}

/* The number of the last event the dev server recorded. */
static double last_event_seq(void)
{
    cJSON *ev = h_http_json(&fx.server, "GET", "/_dev/events?since=0&kind=register", NULL);
    double seq = h_json_num(ev, "lastSeq", -1);
    cJSON_Delete(ev);
    assert_true(seq >= 0);
    return seq;
}

/* The handlers of the first daemon:register after event `since`, as JSON
 * text (caller frees), or NULL. */
static char *first_register_since(double since)
{
    char path[128];
    snprintf(path, sizeof(path), "/_dev/events?since=%.0f&kind=register", since);
    cJSON *ev = h_http_json(&fx.server, "GET", path, NULL);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "events"), 0);
    char *handlers = first ? cJSON_PrintUnformatted(cJSON_GetObjectItem(first, "handlers")) : NULL;
    cJSON_Delete(ev);
    return handlers;
}

static char *handlers_file(void)
{
    char path[H_PATH + 32];
    snprintf(path, sizeof(path), "%s/handlers.json", fx.broker.state_dir);
    return h_file_text(path);
}

/* After a graceful restart, the first registration waits for the
 * handlers the broker had when it stopped: the server's first
 * daemon:register already has them, so a server request in between does
 * not get NoHandler. (With broker.announceDelay 0 this fails: the broker
 * registers first.) */
static void test_first_registration_waits_for_clients(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-early");
    register_commands(c, 1, "[\"early-cmd\"]");
    assert_int_equal(h_broker_stop(&fx.broker, 15000), 0);
    h_conn_close(c);
    char *kept = handlers_file();
    assert_non_null(kept);
    assert_non_null(strstr(kept, "{\"handlers\":[\"early-cmd\"]}"));
    free(kept);

    double since = last_event_seq();
    assert_int_equal(h_broker_restart(&fx.broker, &fx.server, NULL), 0);
    /* h_broker_restart returned as soon as the socket accepted: register
     * at once, as a service reconnecting after a broker restart does. */
    c = h_conn_hello(fx.broker.sock, "t-early");
    register_commands(c, 1, "[\"early-cmd\"]");
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    char *handlers = first_register_since(since);
    assert_non_null(handlers);
    assert_string_equal(handlers, "[\"early-cmd\"]");
    free(handlers);
    /* It held (whether the session had to wait for the client or the
     * client was back before the server's CONNECT is a race; the hold is
     * decided and logged at start either way), and it knew what for. */
    assert_true(h_broker_log_contains(
        &fx.broker, "stopped with 1 handler registered: the first registration waits up to"));
    assert_true(h_broker_log_contains(&fx.broker, "of the last run is registered again"));
    /* while it runs, the file says nothing about handlers */
    kept = handlers_file();
    assert_non_null(kept);
    assert_non_null(strstr(kept, "\"running\":true"));
    assert_null(strstr(kept, "early-cmd"));
    free(kept);
    h_conn_close(c);
}

/* Stopped again before the first registration went out: the names that
 * are not back yet are still what the server knows, so they are kept. */
static void test_quick_second_restart_keeps_missing_handlers(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-quick");
    register_commands(c, 1, "[\"gone-cmd\"]");
    assert_int_equal(h_broker_stop(&fx.broker, 15000), 0);
    h_conn_close(c);
    /* a hold far longer than the test: the restarted broker is still
     * holding when it is stopped */
    assert_int_equal(
        h_broker_restart(
            &fx.broker, &fx.server,
            "{" BASE_CONFIG_WITH(
                ",\"announceDelay\":600000") ","
                                             "\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                                             "\"daemonPassword\":\"dev-password\"}}"),
        0);
    c = h_conn_hello(fx.broker.sock, "t-quick-2");
    register_commands(c, 1, "[\"new-cmd\"]");
    assert_int_equal(h_broker_stop(&fx.broker, 15000), 0);
    h_conn_close(c);
    char *kept = handlers_file();
    assert_non_null(kept);
    assert_string_equal(kept, "{\"handlers\":[\"new-cmd\",\"gone-cmd\"]}\n");
    free(kept);
    /* the fixture's teardown stops a running broker */
    assert_int_equal(h_broker_restart(&fx.broker, &fx.server, NULL), 0);
}

/* The last run's handlers do not all come back: the hold ends at
 * announceDelay, and the log says which are missing. */
static void test_hold_ends_at_deadline_naming_missing(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-missing");
    register_commands(c, 1, "[\"back-cmd\",\"lost-cmd\"]");
    assert_int_equal(h_broker_stop(&fx.broker, 15000), 0);
    h_conn_close(c);
    double since = last_event_seq();
    assert_int_equal(
        h_broker_restart(
            &fx.broker, &fx.server,
            "{" BASE_CONFIG_WITH(
                ",\"announceDelay\":300") ","
                                          "\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                                          "\"daemonPassword\":\"dev-password\"}}"),
        0);
    c = h_conn_hello(fx.broker.sock, "t-missing");
    register_commands(c, 1, "[\"back-cmd\"]");
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    assert_true(h_broker_log_contains(&fx.broker, "stopped with 2 handlers registered"));
    assert_true(h_broker_log_contains(
        &fx.broker, "with 1 of the 2 handlers of the last run still missing: lost-cmd"));
    char *handlers = first_register_since(since);
    assert_non_null(handlers);
    assert_string_equal(handlers, "[\"back-cmd\"]");
    free(handlers);
    h_conn_close(c);
}

/* A first start (nothing kept in the state directory) has nobody to wait
 * for: ready without any hold, long before announceDelay would end one. */
static int setup_long_announce_delay(void **state)
{
    static const char *const args[] = {NULL};
    (void)state;
    return start_all(
        args, "{" BASE_CONFIG_WITH(
                  ",\"announceDelay\":10000") ","
                                              "\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                                              "\"daemonPassword\":\"dev-password\"}}");
}

static void test_first_start_does_not_hold(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(5000)), 0);
    assert_false(h_broker_log_contains(&fx.broker, "holding the first registration"));
    assert_true(h_broker_log_contains(&fx.broker, "no handler list from a previous run"));
}

/* The quiet rule holds until local clients have been quiet for a tenth
 * of announceDelay, counted from the session's start; whether the
 * namespace CONNECT (which is when a hold shows in the log) comes before
 * that window ends depends on how fast the broker starts. A window of 3 s
 * outlasts a start under valgrind on a loaded machine; the default 200 ms
 * did not (seen once). */
#define QUIET_RULE_DELAY "30000"
static int restart_for_quiet_rule(void)
{
    return h_broker_restart(
        &fx.broker, &fx.server,
        "{" BASE_CONFIG_WITH(
            ",\"announceDelay\":" QUIET_RULE_DELAY) ","
                                                    "\"credentials\":{\"teamClusterId\":\"cluster-"
                                                    "dev\","
                                                    "\"daemonPassword\":\"dev-password\"}}");
}

/* After a crash the handlers of the last run are unknown (the file says
 * "running"): the next start waits for local clients to settle. */
static void test_crash_restart_uses_quiet_rule(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    assert_false(h_broker_log_contains(&fx.broker, "holding the first registration"));
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-crash");
    register_commands(c, 1, "[\"crash-cmd\"]");
    h_broker_kill(&fx.broker);
    h_conn_close(c);
    char *kept = handlers_file();
    assert_non_null(kept);
    assert_string_equal(kept, "{\"running\":true}\n");
    free(kept);

    assert_int_equal(restart_for_quiet_rule(), 0);
    /* Read from the log (the second time: the last run logged it once),
     * not by asking for the status: every status client says hello, which
     * is activity that keeps the hold going. */
    assert_int_equal(
        h_broker_wait_log_count(&fx.broker, "registering -> ready", 2, h_slack_ms(15000)), 0);
    assert_true(h_broker_log_contains(&fx.broker, "the last run did not stop cleanly"));
    assert_true(h_broker_log_contains(&fx.broker, "holding the first registration"));
    assert_true(h_broker_log_contains(&fx.broker, "while local clients register their handlers"));
}

/* A damaged file is no reason to fail or to trust it: one warning, and
 * the quiet rule. */
static void test_corrupt_handler_file_warns(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    assert_int_equal(h_broker_stop(&fx.broker, 15000), 0);
    char path[H_PATH + 32];
    snprintf(path, sizeof(path), "%s/handlers.json", fx.broker.state_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"handlers\":[\"ok\",\"bad\\u0001name\"]}", f);
    fclose(f);
    assert_int_equal(restart_for_quiet_rule(), 0);
    /* Read from the log (the second time: the last run logged it once),
     * not by asking for the status: every status client says hello, which
     * is activity that keeps the hold going. */
    assert_int_equal(
        h_broker_wait_log_count(&fx.broker, "registering -> ready", 2, h_slack_ms(15000)), 0);
    assert_true(h_broker_log_contains(&fx.broker, "not a valid command name"));
    assert_true(h_broker_log_contains(&fx.broker, "holding the first registration"));
}

/* ---- 7, 8: messages and binary, both ways ---- */

static void test_messages_and_binary(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-messages");
    cJSON *r;

    assert_int_equal(h_conn_send(c, "{\"op\":\"subscribe\",\"id\":1,\"match\":\"prefix\","
                                    "\"type\":\"session.\"}"),
                     0);
    r = h_conn_expect(c, "result", 1, 5000);
    assert_ok(r);
    cJSON_Delete(r);
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/message", "{\"type\":\"other\",\"data\":1}", NULL), 200);
    assert_int_equal(
        h_http(&fx.server, "POST", "/_dev/message",
               "{\"type\":\"session.input\",\"data\":{\"blob\":{\"$bin\":\"AAEC/w==\"},"
               "\"n\":[{\"$bin\":\"aGk=\"}]}}",
               NULL),
        200);
    r = h_conn_expect(c, "message", -1, 5000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "type"), "session.input");
    assert_string_equal(h_json_str(r, "data.blob.$bin"), "AAEC/w==");
    cJSON *n0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "data"), "n"), 0);
    assert_string_equal(h_json_str(n0, "$bin"), "aGk=");
    cJSON_Delete(r);

    /* emit: acknowledged when an id is given; the server records it. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"emit\",\"id\":2,\"type\":\"exposure-snapshot\","
                                    "\"data\":{\"raw\":{\"$bin\":\"AQID\"},\"ok\":true}}"),
                     0);
    r = h_conn_expect(c, "result", 2, 5000);
    assert_ok(r);
    cJSON_Delete(r);
    uint64_t end = h_now_ms() + 5000;
    bool found = false;
    while (!found && h_now_ms() < end) {
        cJSON *ev = h_http_json(&fx.server, "GET", "/_dev/events?since=0", NULL);
        char *t = cJSON_PrintUnformatted(ev);
        found = t && strstr(t, "exposure-snapshot") && strstr(t, "AQID");
        free(t);
        cJSON_Delete(ev);
        if (!found)
            h_sleep_ms(50);
    }
    assert_true(found);

    /* binary request payload, echoed back as binary, several attachments */
    r = request(c, 3, "echo",
                "{\"a\":{\"$bin\":\"AAAA\"},\"b\":[{\"$bin\":\"//79\"},{\"c\":{\"$bin\":\"\"}}]}",
                5000);
    assert_ok(r);
    assert_string_equal(h_json_str(r, "data.a.$bin"), "AAAA");
    cJSON *b0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "data"), "b"), 0);
    assert_string_equal(h_json_str(b0, "$bin"), "//79");
    cJSON_Delete(r);
    h_conn_close(c);
}

/* ---- 5: heartbeat ---- */

static int setup_heartbeat(void **state)
{
    (void)state;
    return start_all(NULL, "{" BASE_CONFIG ",\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                           "\"daemonPassword\":\"dev-password\"},\"heartbeat\":{\"interval\":200},"
                           "\"commandTimeout\":300}");
}

static void test_heartbeat(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-heartbeat");
    uint64_t end = h_now_ms() + 5000;
    while (h_server_counter(&fx.server, "heartbeats") < 3 && h_now_ms() < end)
        h_sleep_ms(50);
    assert_true(h_server_counter(&fx.server, "heartbeats") >= 3);
    /* the payload carries the figures */
    cJSON *ev = h_http_json(&fx.server, "GET", "/_dev/events?since=0", NULL);
    char *t = cJSON_PrintUnformatted(ev);
    assert_non_null(strstr(t, "uptimeMs"));
    assert_non_null(strstr(t, "\"clients\""));
    free(t);
    cJSON_Delete(ev);
    /* three failures in a row: an error event each, then a reconnect */
    double connects = h_server_counter(&fx.server, "connects");
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/behavior", "{\"heartbeat\":\"fail\"}", NULL),
                     200);
    /* skip the "connected" that greeted us */
    cJSON *r = h_conn_expect_event(c, "error", 5000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "code"), "HeartbeatFailed");
    cJSON_Delete(r);
    r = h_conn_expect_event(c, "disconnected", 5000);
    assert_non_null(r);
    assert_non_null(strstr(h_json_str(r, "reason"), "heartbeat"));
    cJSON_Delete(r);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/behavior", "{\"heartbeat\":\"ok\"}", NULL),
                     200);
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    assert_true(h_server_counter(&fx.server, "connects") > connects);
    h_conn_close(c);
}

/* ---- 2: refusals ---- */

static int setup_bad_password(void **state)
{
    (void)state;
    return start_all(NULL, "{" BASE_CONFIG ",\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                           "\"daemonPassword\":\"wrong\"}}");
}

static void test_connect_error(void **state)
{
    (void)state;
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-refused");
    cJSON *r = h_conn_expect_event(c, "error", 10000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "code"), "SocketRegistrationFailed");
    assert_non_null(strstr(h_json_str(r, "message"), "invalid credentials"));
    cJSON_Delete(r);
    r = request(c, 1, "echo", NULL, 1000);
    assert_code(r, "SOCKET_NOT_READY");
    cJSON_Delete(r);
    h_conn_close(c);
    assert_false(h_broker_log_contains(&fx.broker, "\"wrong\""));
}

static bool server_has_late_cmd(void *arg)
{
    (void)arg;
    char *text = server_handlers();
    bool there = text && strstr(text, "late-cmd");
    free(text);
    return there;
}

/* A handler registered while daemon:register is on its way (sent with the
 * list as it was, not yet acknowledged) reaches the server once the
 * registration is acknowledged: it is neither in that packet nor lost. */
static void test_handler_registered_while_registering(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-late");
    assert_non_null(c);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/behavior", "{\"registerHold\":1}", NULL),
                     200);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/disconnect", "{}", NULL), 200);
    assert_int_equal(h_wait_state(fx.broker.sock, "registering", 10000), 0);
    register_commands(c, 1, "[\"late-cmd\"]");
    cJSON *released = h_http_json(&fx.server, "POST", "/_dev/release-registrations", "{}");
    assert_int_equal((int)h_json_num(released, "released", -1), 1);
    cJSON_Delete(released);
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 10000), 0);
    if (h_wait_for(server_has_late_cmd, NULL, h_slack_ms(5000)) < 0) {
        char *text = server_handlers();
        fail_msg("the server's handler list is %s, expected it to hold late-cmd",
                 text ? text : "(none)");
    }
    h_conn_close(c);
}

static void test_registration_refused_then_ready(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-register");
    cJSON *r = h_conn_expect_event(c, "connected", 2000);
    cJSON_Delete(r);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/behavior",
                            "{\"registerRefuse\":1,\"registerSilent\":0}", NULL),
                     200);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/disconnect", "{}", NULL), 200);
    bool saw_refusal = false;
    uint64_t end = h_now_ms() + 10000;
    while (!saw_refusal && h_now_ms() < end) {
        r = h_conn_expect(c, "event", -1, 1000);
        if (r && !strcmp(h_json_str(r, "event"), "error") &&
            !strcmp(h_json_str(r, "code"), "SocketRegistrationFailed"))
            saw_refusal = true;
        cJSON_Delete(r);
    }
    assert_true(saw_refusal);
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    assert_true(h_server_counter(&fx.server, "registrationsRefused") >= 1);

    /* No ack: the broker stays out of ready and gives up after commandTimeout. */
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/behavior", "{\"registerSilent\":1}", NULL),
                     200);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/disconnect", "{}", NULL), 200);
    assert_int_equal(h_wait_state(fx.broker.sock, "registering", 5000), 0);
    r = request(c, 2, "echo", NULL, 1000);
    assert_code(r, "SOCKET_NOT_READY");
    cJSON_Delete(r);
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 20000), 0);
    h_conn_close(c);
}

/* ---- 1: enrollment ---- */

static const char *const enroll_config =
    "{" BASE_CONFIG ",\"credentials\":{\"teamClusterId\":\"cluster-dev\","
    "\"enrollmentToken\":\"tok-e2e\"}}";

static int setup_enroll(void **state)
{
    static const char *const args[] = {"--token", "tok-e2e", NULL};
    (void)state;
    return start_all(args, enroll_config);
}

static void test_enrollment_rotation_persisted(void **state)
{
    (void)state;
    char path[600];
    struct stat st;

    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    assert_int_equal(h_server_counter(&fx.server, "enrollments"), 1);
    /* libcurl is loaded for the enrollment (upstream/http.c)... */
    assert_true(h_broker_maps_contain(&fx.broker, "libcurl"));
    cJSON *cred = h_http_json(&fx.server, "GET", "/_dev/credentials", NULL);
    const char *rotated = h_json_str(cred, "daemonPassword");
    assert_non_null(rotated);
    assert_string_not_equal(rotated, "dev-password");
    /* persisted, 0600, with the rotated password */
    snprintf(path, sizeof(path), "%s/credentials.json", fx.broker.state_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    char buf[4096] = "";
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, rotated));
    /* the password is never logged */
    assert_false(h_broker_log_contains(&fx.broker, rotated));
    assert_false(h_broker_log_contains(&fx.broker, "tok-e2e"));
    /* a client of the broker's own uid may read it */
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-cred");
    assert_int_equal(h_conn_send(c, "{\"op\":\"credential\",\"id\":1,\"name\":\"daemonPassword\"}"),
                     0);
    cJSON *r = h_conn_expect(c, "result", 1, 5000);
    assert_ok(r);
    assert_string_equal(cJSON_GetObjectItem(r, "data")->valuestring, rotated);
    cJSON_Delete(r);
    h_conn_close(c);

    /* Restart: stored credentials are used, the spent token is not sent. */
    assert_int_equal(h_broker_stop(&fx.broker, 10000), 0);
    assert_int_equal(h_broker_restart(&fx.broker, &fx.server, NULL), 0);
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    assert_int_equal(h_server_counter(&fx.server, "enrollments"), 1);
    assert_true(h_broker_log_contains(&fx.broker, "not enrolling again"));
    /* ...and never by a broker with stored credentials: it costs ~3 MiB. */
    assert_false(h_broker_maps_contain(&fx.broker, "libcurl"));
    assert_false(h_broker_maps_contain(&fx.broker, "libgnutls"));
    cJSON_Delete(cred);
}

/* The state directory cannot take the enrolled credentials (here: its
 * parent does not exist yet). The server has spent the token and rotated
 * the password: the broker keeps the new one in memory, uses it, says so
 * in status, and stores it as soon as it can. */
static int setup_enroll_unsaved(void **state)
{
    static const char *const args[] = {"--token", "tok-e2e", NULL};
    (void)state;
    return start_all(args, "{\"serverUrl\":\"http://127.0.0.1:%PORT%\","
                           "\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
                           "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%/later\","
                           "\"logLevel\":\"debug\"},"
                           "\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                           "\"enrollmentToken\":\"tok-e2e\"}}");
}

static bool credentials_ok(void *arg)
{
    (void)arg;
    cJSON *st = h_status(fx.broker.sock);
    const char *c = h_json_str(st, "upstream.credentials");
    bool ok = c && !strcmp(c, "ok");
    cJSON_Delete(st);
    return ok;
}

static void test_enrolled_credentials_kept_when_unsaved(void **state)
{
    (void)state;
    char path[600];
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    cJSON *st = h_status(fx.broker.sock);
    const char *cred = h_json_str(st, "upstream.credentials");
    assert_non_null(cred);
    assert_non_null(strstr(cred, "in memory only: "));
    cJSON_Delete(st);
    /* The rotated password is in use (the old one is refused now). */
    cJSON *server_cred = h_http_json(&fx.server, "GET", "/_dev/credentials", NULL);
    const char *rotated = h_json_str(server_cred, "daemonPassword");
    assert_non_null(rotated);
    assert_string_not_equal(rotated, "dev-password");
    assert_false(h_broker_log_contains(&fx.broker, rotated));
    /* The directory becomes possible: stored at the next retry. */
    assert_int_equal(mkdir(fx.broker.state_dir, 0700), 0);
    assert_int_equal(h_wait_for(credentials_ok, NULL, h_slack_ms(10000)), 0);
    snprintf(path, sizeof(path), "%s/later/credentials.json", fx.broker.state_dir);
    char *text = h_file_text(path);
    assert_non_null(text);
    assert_non_null(strstr(text, rotated));
    free(text);
    cJSON_Delete(server_cred);
}

static int setup_enroll_refused(void **state)
{
    (void)state;
    /* The server knows no such token. */
    return start_all(NULL, enroll_config);
}

static void test_enrollment_401_is_final(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "failed", 10000), 0);
    cJSON *st = h_status(fx.broker.sock);
    assert_non_null(strstr(h_json_str(st, "upstream.reason"), "refused"));
    cJSON_Delete(st);
    /* A negative check: a retry (the backoff's first delay is well under
     * this) would have reached the server by now. */
    h_sleep_ms(1500);
    assert_int_equal(h_server_counter(&fx.server, "enrollments"), 0);
    assert_true(h_server_counter(&fx.server, "enrollmentsRefused") <= 1);
}

static int setup_enroll_503(void **state)
{
    static const char *const args[] = {"--token", "tok-e2e", NULL};
    (void)state;
    memset(&fx, 0, sizeof(fx));
    if (h_server_start(&fx.server, args) < 0)
        return -1;
    if (h_http(&fx.server, "POST", "/_dev/behavior", "{\"enrollStatuses\":[503,503]}", NULL) != 200)
        return -1;
    return h_broker_start(&fx.broker, &fx.server, enroll_config, NULL);
}

static void test_enrollment_503_then_success(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 20000), 0);
    assert_int_equal(h_server_counter(&fx.server, "enrollments"), 1);
    assert_int_equal(h_broker_wait_log(&fx.broker, "503", 3000), 0);
}

/* ---- 9: reconnection ---- */

static void test_fifty_drops(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-drops");
    cJSON *r;
    register_commands(c, 1, "[\"a\",\"b\"]");
    double registrations = h_server_counter(&fx.server, "registrations");
    for (int i = 0; i < 50; i++) {
        const char *mode = i % 2 ? "{\"mode\":\"transport\"}" : "{\"mode\":\"namespace\"}";
        assert_int_equal(h_http(&fx.server, "POST", "/_dev/disconnect", mode, NULL), 200);
        /* wait for this drop to be noticed, then for the new session */
        r = h_conn_expect_event(c, "connected", 15000);
        assert_non_null(r);
        cJSON_Delete(r);
        char *text = server_handlers();
        assert_non_null(text);
        assert_true(!strcmp(text, "[\"a\",\"b\"]") || !strcmp(text, "[\"b\",\"a\"]"));
        free(text);
    }
    assert_true(h_server_counter(&fx.server, "registrations") >= registrations + 50);
    cJSON *st = h_status(fx.broker.sock);
    assert_true(h_json_num(st, "counters.reconnects", 0) >= 50);
    cJSON_Delete(st);
    h_conn_close(c);
}

/* Sends n requests for `slow` (held ms by the server), ids first..first+n-1. */
static void send_slow(struct h_conn *c, int first, int n, int ms)
{
    for (int i = 0; i < n; i++) {
        char frame[160];
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":%d,\"command\":\"slow\",\"payload\":{\"ms\":%d}}",
                 first + i, ms);
        assert_int_equal(h_conn_send(c, frame), 0);
    }
}

/* Waits until the server has received n requests (not counting heartbeats). */
static void wait_server_requests(int n)
{
    uint64_t end = h_now_ms() + (uint64_t)h_slack_ms(5000);
    double got;
    while ((got = h_server_counter(&fx.server, "requests") -
                  h_server_counter(&fx.server, "heartbeats")) < n) {
        if (h_now_ms() >= end)
            fail_msg("the server has %g requests (heartbeats aside), waited for %d", got, n);
        h_sleep_ms(20);
    }
}

/* Each of ids first..first+n-1 is answered with `code`, exactly once. */
static void expect_each_once(struct h_conn *c, int first, int n, const char *code)
{
    int *seen = calloc((size_t)n, sizeof(*seen));
    assert_non_null(seen);
    for (int i = 0; i < n; i++) {
        cJSON *r = h_conn_expect(c, "result", -1, h_slack_ms(5000));
        assert_code(r, code);
        int k = (int)h_json_num(r, "id", 0) - first;
        assert_true(k >= 0 && k < n);
        seen[k]++;
        cJSON_Delete(r);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
}

/* The server process dies (SIGKILL) with 100 requests in flight and a new
 * one takes its port: every request fails SOCKET_NOT_READY exactly once,
 * then the broker is back, registered with its handlers, and serving. */
static void test_server_killed_under_load(void **state)
{
    (void)state;
    enum { N = 100 };
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-killed");
    cJSON *r;
    register_commands(c, 1, "[\"k\"]");
    send_slow(c, 100, N, 5000);
    wait_server_requests(N); /* all of them reached the server before it dies */
    assert_int_equal(h_server_kill_and_restart(&fx.server, NULL), 0);
    expect_each_once(c, 100, N, "SOCKET_NOT_READY");

    assert_int_equal(h_wait_state(fx.broker.sock, "ready", h_slack_ms(15000)), 0);
    char *text = server_handlers();
    assert_non_null(text);
    assert_string_equal(text, "[\"k\"]");
    free(text);
    r = request(c, 7, "echo", "\"after\"", 3000);
    assert_ok(r);
    assert_string_equal(h_json_str(r, "data"), "after");
    cJSON_Delete(r);
    /* nothing more for the dead session's requests */
    assert_null(h_conn_expect(c, "result", -1, 300));
    h_conn_close(c);
}

/* ---- a full upstream send queue ---- */

static int setup_small_upstream_queue(void **state)
{
    (void)state;
    return start_all(NULL, "{\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
                           "\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                           "\"daemonPassword\":\"dev-password\"},\"commandTimeout\":60000,"
                           "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\","
                           "\"limits\":{\"maxUpstreamQueueBytes\":262144,\"maxFrame\":131072}}}");
}

#define QUEUE_TEST_MAX 3000

/* A request that did not fit the send queue: SOCKET_NOT_READY, as the
 * TypeScript client answers a command it cannot write, with why. */
static void expect_refused_whole(cJSON *r)
{
    assert_code(r, "SOCKET_NOT_READY");
    assert_non_null(strstr(h_json_str(r, "message"), "could not be written upstream"));
}

/* Requests written to a stopped server until the send queue is full and
 * several were refused; then, once it reads again, every answer. */
struct flood {
    int sent, refused, answered;
    int outcome[QUEUE_TEST_MAX]; /* 0 none yet, 1 rejected by the server, 2 refused here */
};

static void flood_record(struct flood *fl, cJSON *r)
{
    int id = (int)h_json_num(r, "id", -1);
    assert_true(id >= 0 && id < fl->sent && fl->outcome[id] == 0);
    if (!strcmp(h_json_str(r, "code"), "SOCKET_NOT_READY")) {
        expect_refused_whole(r);
        fl->outcome[id] = 2;
        fl->refused++;
    } else {
        char code[16];
        snprintf(code, sizeof(code), "R%d", id);
        assert_code(r, "COMMAND_REJECTED");
        assert_string_equal(h_json_str(r, "server_code"), code);
        fl->outcome[id] = 1;
        fl->answered++;
    }
    cJSON_Delete(r);
}

/* The server is stopped: writes requests with two 30 KiB attachments each
 * (or, small, none: then the queue is left with less room than one small
 * request) until `refusals` more were refused. */
static void flood_until_refused(struct h_conn *c, struct flood *fl, bool small, int refusals)
{
    static char frame[90000];
    static char bin[40961];
    int goal = fl->refused + refusals;
    cJSON *r;

    memset(bin, 'A', sizeof(bin) - 1); /* 30 KiB of zero bytes in base64 */
    bin[sizeof(bin) - 1] = '\0';
    while (fl->sent < QUEUE_TEST_MAX && fl->refused < goal) {
        if (small)
            snprintf(frame, sizeof(frame),
                     "{\"op\":\"request\",\"id\":%d,\"command\":\"reject\",\"payload\":"
                     "{\"code\":\"R%d\"}}",
                     fl->sent, fl->sent);
        else
            snprintf(frame, sizeof(frame),
                     "{\"op\":\"request\",\"id\":%d,\"command\":\"reject\",\"payload\":"
                     "{\"code\":\"R%d\",\"a\":{\"$bin\":\"%s\"},\"b\":[{\"$bin\":\"%s\"}]}}",
                     fl->sent, fl->sent, bin, bin);
        assert_int_equal(h_conn_send(c, frame), 0);
        fl->sent++;
        while ((r = h_conn_expect(c, "result", -1, 1))) {
            /* nothing can be answered by the stopped server */
            expect_refused_whole(r);
            flood_record(fl, r);
        }
    }
    assert_true(fl->refused >= 1); /* the queue did fill */
}

/* The server reads again: every request gets exactly one answer. */
static void flood_collect(struct h_conn *c, struct flood *fl)
{
    while (fl->answered + fl->refused < fl->sent) {
        cJSON *r = h_conn_expect(c, "result", -1, h_slack_ms(10000));
        assert_non_null(r);
        flood_record(fl, r);
    }
    assert_true(fl->answered >= 1);
}

static void expect_no_reconnect(void)
{
    cJSON *st = h_status(fx.broker.sock);
    assert_int_equal((int)h_json_num(st, "counters.reconnects", -1), 0);
    cJSON_Delete(st);
}

/* Once the send queue is full each packet is refused whole or queued
 * whole. A packet queued without all of its attachments would have the
 * server read the next packets as its attachments and drop the
 * connection; instead each request the server got is answered with its
 * own code once it reads again, and the session never breaks. */
static void test_full_upstream_queue_refuses_whole_packets(void **state)
{
    (void)state;
    static struct flood fl;
    memset(&fl, 0, sizeof(fl));
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-full-queue");
    h_server_pause(&fx.server, true);
    flood_until_refused(c, &fl, false, 20);
    h_server_pause(&fx.server, false);
    flood_collect(c, &fl);
    /* one session all along, and it still carries binary both ways */
    expect_no_reconnect();
    cJSON *r = request(c, 100000, "echo", "{\"a\":{\"$bin\":\"AAECAw==\"}}", 5000);
    assert_ok(r);
    assert_string_equal(h_json_str(r, "data.a.$bin"), "AAECAw==");
    cJSON_Delete(r);
    h_conn_close(c);
}

/* Larger than a small request, so that it would not fit where they do not. */
#define ANSWER                                                                                     \
    "held-held-held-held-held-held-held-held-held-held-held-held-held-held-held-held-held-held-"   \
    "held-held-held-held-held-held-held-held-held-held-held-held-held-held-held-held-held-held"

/* A handler answers while local requests keep the send queue full: the
 * answer still goes out (answers have headroom beyond maxUpstreamQueueBytes), so
 * the server's request gets its one real answer. */
static void test_answer_goes_out_while_queue_full(void **state)
{
    (void)state;
    static struct flood fl;
    memset(&fl, 0, sizeof(fl));
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-answer-full");
    register_commands(c, 1, "[\"hold\"]");
    pid_t pid = fork();
    if (pid == 0) {
        cJSON *x = h_http_json(&fx.server, "POST", "/_dev/server-request",
                               "{\"command\":\"hold\",\"timeoutMs\":25000}");
        const char *got = x ? h_json_str(x, "response.data") : NULL;
        _exit(got && !strcmp(got, ANSWER) ? 0 : 1);
    }
    cJSON *call = h_conn_expect(c, "call", -1, 5000);
    assert_non_null(call);

    h_server_pause(&fx.server, true);
    flood_until_refused(c, &fl, false, 5);
    flood_until_refused(c, &fl, true, 5); /* now less room than the answer needs */
    answer_call(c, call, "\"ok\":true,\"data\":\"" ANSWER "\"");
    /* The broker has it before the server reads again. A fixed time: no
     * frame can prove it on this connection without reading (and losing)
     * the flood's results, and the broker's status does not show it. */
    h_sleep_ms(200);
    h_server_pause(&fx.server, false);
    flood_collect(c, &fl);
    expect_child_ok(pid);
    assert_int_equal(h_server_counter(&fx.server, "serverResponses"), 1);
    expect_no_reconnect();
    h_conn_close(c);
}

static int setup_fast_ping(void **state)
{
    static const char *const args[] = {"--ping-interval", "300", "--ping-timeout", "300", NULL};
    (void)state;
    return start_all(args, plain_config);
}

static void test_paused_server(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    /* under load: requests the server holds, and more written to a server
     * that no longer reads */
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-paused");
    send_slow(c, 100, 50, 5000);
    wait_server_requests(50);
    h_server_pause(&fx.server, true);
    send_slow(c, 150, 10, 5000);
    /* pingInterval + pingTimeout = 600 ms without a ping: dead */
    int rc = h_wait_state(fx.broker.sock, "backoff", 5000);
    if (rc != 0)
        rc = h_wait_state(fx.broker.sock, "connecting", 3000);
    h_server_pause(&fx.server, false);
    assert_int_equal(rc, 0);
    assert_int_equal(h_broker_wait_log(&fx.broker, "no ping from the server", 3000), 0);
    expect_each_once(c, 100, 60, "SOCKET_NOT_READY");
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 20000), 0);
    /* the old session's answers, if the woken server sent any, went nowhere */
    assert_null(h_conn_expect(c, "result", -1, 300));
    h_conn_close(c);
}

/* ---- 2: maxPayload ---- */

static int setup_small_payload(void **state)
{
    static const char *const args[] = {"--max-payload", "2000", NULL};
    (void)state;
    return start_all(args, plain_config);
}

static void test_max_payload(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-big");
    char payload[4000];
    memset(payload, 'x', sizeof(payload));
    payload[0] = '"';
    payload[sizeof(payload) - 2] = '"';
    payload[sizeof(payload) - 1] = '\0';
    cJSON *r = request(c, 1, "echo", payload, 3000);
    assert_code(r, "PayloadTooLarge");
    cJSON_Delete(r);
    r = request(c, 2, "echo", "\"small\"", 3000);
    assert_ok(r);
    cJSON_Delete(r);

    /* An answer over maxPayload: the server still gets exactly one, a
     * HandlerError saying why. */
    register_commands(c, 3, "[\"big\"]");
    pid_t pid = fork();
    if (pid == 0) {
        cJSON *x = h_http_json(&fx.server, "POST", "/_dev/server-request", "{\"command\":\"big\"}");
        const char *code = x ? h_json_str(x, "response.error.code") : NULL;
        const char *msg = x ? h_json_str(x, "response.error.message") : NULL;
        _exit(code && !strcmp(code, "HandlerError") && msg && strstr(msg, "maxPayload") ? 0 : 1);
    }
    char fields[4100];
    snprintf(fields, sizeof(fields), "\"ok\":true,\"data\":%s", payload);
    answer_call(c, h_conn_expect(c, "call", -1, 5000), fields);
    expect_child_ok(pid);
    assert_int_equal(h_server_counter(&fx.server, "serverResponses"), 1);
    h_conn_close(c);
}

/* ---- monitors: local and upstream traffic, two at once, no secrets ---- */

static bool trace_seen(struct h_conn *m, const char *dir, const char *needle)
{
    uint64_t end = h_now_ms() + 5000;
    while (h_now_ms() < end) {
        cJSON *t = h_conn_expect(m, "trace", -1, 1000);
        if (!t)
            continue;
        char *text = cJSON_PrintUnformatted(t);
        bool hit = !strcmp(h_json_str(t, "dir"), dir) && strstr(text, needle);
        assert_null(strstr(text, "dev-password"));
        free(text);
        cJSON_Delete(t);
        if (hit)
            return true;
    }
    return false;
}

static void test_two_monitors(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *m[2];
    for (int i = 0; i < 2; i++) {
        m[i] = h_conn_hello(fx.broker.sock, "t-monitor");
        assert_int_equal(h_conn_send(m[i], "{\"op\":\"monitor\",\"id\":1}"), 0);
        cJSON *r = h_conn_expect(m[i], "result", 1, 5000);
        assert_ok(r);
        cJSON_Delete(r);
    }
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-traced");
    cJSON *r = request(c, 5, "echo", "{\"marker\":\"m-42\"}", 3000);
    assert_ok(r);
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++) {
        assert_true(trace_seen(m[i], "local-in", "m-42"));
        assert_true(trace_seen(m[i], "upstream-out", "daemon:request"));
        assert_true(trace_seen(m[i], "upstream-in", "daemon:response"));
        assert_true(trace_seen(m[i], "local-out", "m-42"));
    }
    /* the password given to a client is traced as given, not as it is */
    assert_int_equal(h_conn_send(c, "{\"op\":\"credential\",\"id\":6,\"name\":\"daemonPassword\"}"),
                     0);
    r = h_conn_expect(c, "result", 6, 5000);
    assert_string_equal(h_json_str(r, "data"), "dev-password");
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++)
        assert_true(trace_seen(m[i], "local-out", "(redacted)"));
    /* the namespace CONNECT after a reconnect is traced without the password */
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/disconnect", "{}", NULL), 200);
    assert_true(trace_seen(m[0], "upstream-out", "(redacted)"));
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    for (int i = 0; i < 2; i++)
        h_conn_close(m[i]);
    h_conn_close(c);
}

/* ---- 2: TLS, a transport failure, and the refusal of an unknown CA ---- */

static char tls_dir[H_DIR];

/* A self-signed certificate for localhost / 127.0.0.1, made fresh. */
static int make_cert(void)
{
    char cmd[1024];
    snprintf(tls_dir, sizeof(tls_dir), "/tmp/volt-test-tls-XXXXXX");
    if (!mkdtemp(tls_dir))
        return -1;
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
             "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
             tls_dir, tls_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup_tls(bool with_ca)
{
    char cert[H_PATH], key[H_PATH], config[2048];
    if (make_cert() < 0)
        return -1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", tls_dir);
    snprintf(key, sizeof(key), "%s/key.pem", tls_dir);
    const char *const args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    snprintf(
        config, sizeof(config),
        "{\"controlSocketUrl\":\"wss://localhost:%%PORT%%/control\","
        "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300%s%s%s},"
        "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"},"
        "\"broker\":{\"listen\":\"%%SOCK%%\",\"stateDir\":\"%%STATE%%\",\"logLevel\":\"debug\"}}",
        with_ca ? ",\"caFile\":\"" : "", with_ca ? cert : "", with_ca ? "\"" : "");
    return start_all(args, config);
}

static int setup_tls_no_ca(void **state)
{
    (void)state;
    return setup_tls(false);
}

static int setup_tls_ca(void **state)
{
    (void)state;
    return setup_tls(true);
}

static int teardown_tls(void **state)
{
    char cmd[H_PATH];
    int rc = teardown(state);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tls_dir);
    if (system(cmd) != 0)
        rc = -1;
    return rc;
}

static void test_tls_refused_without_ca(void **state)
{
    (void)state;
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-tls");
    cJSON *r = h_conn_expect_event(c, "error", 10000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "code"), "SocketConnectionFailed");
    cJSON_Delete(r);
    cJSON *st = h_status(fx.broker.sock);
    assert_string_not_equal(h_json_str(st, "upstream.state"), "ready");
    cJSON_Delete(st);
    assert_int_equal(h_server_counter(&fx.server, "connects"), 0);
    h_conn_close(c);
}

static void test_tls_accepted_with_ca(void **state)
{
    (void)state;
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-tls");
    cJSON *r = request(c, 1, "echo", "{\"over\":\"tls\"}", 3000);
    assert_ok(r);
    assert_string_equal(h_json_str(r, "data.over"), "tls");
    cJSON_Delete(r);
    h_conn_close(c);
}

static int setup_no_server(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    /* A port nobody listens on: a server started and stopped again. */
    if (h_server_start(&fx.server, NULL) < 0)
        return -1;
    int port = fx.server.port;
    h_server_stop(&fx.server);
    fx.server.port = port;
    return h_broker_start(&fx.broker, &fx.server, plain_config, NULL);
}

static int teardown_no_server(void **state)
{
    (void)state;
    int rc = h_broker_stop(&fx.broker, 15000);
    h_broker_cleanup(&fx.broker);
    return rc == 0 ? 0 : -1;
}

static void test_connection_failed_and_backoff(void **state)
{
    (void)state;
    struct h_conn *c = h_conn_hello(fx.broker.sock, "t-noserver");
    cJSON *r = h_conn_expect_event(c, "error", 10000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "code"), "SocketConnectionFailed");
    cJSON_Delete(r);
    /* it keeps trying, with backoff, and says why */
    r = h_conn_expect_event(c, "state", 10000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "state"), "backoff");
    assert_non_null(strstr(h_json_str(r, "reason"), "retrying in"));
    cJSON_Delete(r);
    assert_int_equal(h_broker_wait_log(&fx.broker, "retrying in", 3000), 0);
    h_conn_close(c);
}

int main(void)
{
    h_apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commands, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_fails_pending, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_handlers_and_server_requests, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_integers_64bit, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_messages_and_binary, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_replays_missed_packets, setup_recovery,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_recovery_fresh_session, setup_blip, teardown),
        cmocka_unit_test_setup_teardown(test_emits_kept_during_blip, setup_blip, teardown),
        cmocka_unit_test_setup_teardown(test_first_registration_waits_for_clients, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_first_start_does_not_hold, setup_long_announce_delay,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_restart_uses_quiet_rule, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_hold_ends_at_deadline_naming_missing, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quick_second_restart_keeps_missing_handlers,
                                        setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_handler_file_warns, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat, setup_heartbeat, teardown),
        cmocka_unit_test_setup_teardown(test_connect_error, setup_bad_password, teardown),
        cmocka_unit_test_setup_teardown(test_handler_registered_while_registering, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registration_refused_then_ready, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_enrollment_rotation_persisted, setup_enroll, teardown),
        cmocka_unit_test_setup_teardown(test_enrolled_credentials_kept_when_unsaved,
                                        setup_enroll_unsaved, teardown),
        cmocka_unit_test_setup_teardown(test_enrollment_401_is_final, setup_enroll_refused,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_enrollment_503_then_success, setup_enroll_503,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fifty_drops, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed_under_load, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_full_upstream_queue_refuses_whole_packets,
                                        setup_small_upstream_queue, teardown),
        cmocka_unit_test_setup_teardown(test_answer_goes_out_while_queue_full,
                                        setup_small_upstream_queue, teardown),
        cmocka_unit_test_setup_teardown(test_paused_server, setup_fast_ping, teardown),
        cmocka_unit_test_setup_teardown(test_max_payload, setup_small_payload, teardown),
        cmocka_unit_test_setup_teardown(test_two_monitors, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_tls_refused_without_ca, setup_tls_no_ca, teardown_tls),
        cmocka_unit_test_setup_teardown(test_tls_accepted_with_ca, setup_tls_ca, teardown_tls),
        cmocka_unit_test_setup_teardown(test_connection_failed_and_backoff, setup_no_server,
                                        teardown_no_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
