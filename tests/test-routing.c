/* Routing many local clients through the one upstream session: queue
 * groups, handlers dying mid-request, subscription fan-out, events, the
 * credential and peer policies, slow consumers. Real broker, real
 * socket.io dev server, clients in separate processes where it matters. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static struct h_server server;
static struct h_broker broker;

#define CONFIG_HEAD                                                                                \
    "{\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","                                     \
    "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"},"     \
    "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"

static const char *const default_config =
    CONFIG_HEAD "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"mode\":\"0666\","
                "\"logLevel\":\"debug\"}}";

static int start(const char *config)
{
    if (h_server_start(&server, NULL) < 0)
        return -1;
    if (h_broker_start(&broker, &server, config, NULL) < 0)
        return -1;
    return h_wait_state(broker.sock, "ready", 15000);
}

static int setup(void **state)
{
    (void)state;
    return start(default_config);
}

static int teardown(void **state)
{
    (void)state;
    int rc = h_broker_stop(&broker, 15000);
    h_broker_cleanup(&broker);
    h_server_stop(&server);
    return rc == 0 ? 0 : -1;
}

static void expect_ok(struct h_conn *c, long long id)
{
    cJSON *r = h_conn_expect(c, "result", id, 5000);
    assert_non_null(r);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    cJSON_Delete(r);
}

/* Runs POST /_dev/server-request in a child; returns its pid. The child
 * writes the response JSON to `out_fd` and exits. */
static pid_t server_request_async(const char *body, int out_fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        char *resp = NULL;
        h_http(&server, "POST", "/_dev/server-request", body, &resp);
        if (resp && write(out_fd, resp, strlen(resp)) < 0)
            _exit(2);
        _exit(0);
    }
    return pid;
}

static cJSON *read_child_json(int fd, pid_t pid)
{
    char buf[65536];
    size_t n = 0;
    ssize_t r;
    int st;
    waitpid(pid, &st, 0);
    while ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return cJSON_Parse(buf);
}

/* ---- two services share the one upstream ---- */

static void test_two_services_share_one_session(void **state)
{
    (void)state;
    struct h_conn *a = h_conn_hello(broker.sock, "svc-a");
    struct h_conn *b = h_conn_hello(broker.sock, "svc-b");
    for (int i = 1; i <= 20; i++) {
        char frame[200];
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":%d,\"command\":\"echo\",\"payload\":\"a%d\"}", i, i);
        assert_int_equal(h_conn_send(a, frame), 0);
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":%d,\"command\":\"echo\",\"payload\":\"b%d\"}", i, i);
        assert_int_equal(h_conn_send(b, frame), 0);
    }
    /* each gets exactly its own answers, under its own ids */
    for (int i = 1; i <= 20; i++) {
        char want[16];
        cJSON *r = h_conn_expect(a, "result", i, 5000);
        assert_non_null(r);
        snprintf(want, sizeof(want), "a%d", i);
        assert_string_equal(cJSON_GetObjectItem(r, "data")->valuestring, want);
        cJSON_Delete(r);
        r = h_conn_expect(b, "result", i, 5000);
        assert_non_null(r);
        snprintf(want, sizeof(want), "b%d", i);
        assert_string_equal(cJSON_GetObjectItem(r, "data")->valuestring, want);
        cJSON_Delete(r);
    }
    cJSON *st = h_http_json(&server, "GET", "/_dev/state", NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(st, "connected")), 1);
    assert_int_equal((int)h_json_num(st, "counters.connects", 0), 1);
    cJSON_Delete(st);
    /* both show up in the status, with their pid */
    cJSON *status = h_status(broker.sock);
    char *text = cJSON_PrintUnformatted(status);
    assert_non_null(strstr(text, "\"svc-a\""));
    assert_non_null(strstr(text, "\"svc-b\""));
    free(text);
    cJSON_Delete(status);
    h_conn_close(a);
    h_conn_close(b);
}

/* ---- queue group: round robin, and a registrant killed mid-request ---- */

/* A worker process: registers `command`, answers each call with its
 * index (after delay_ms), unless the call's payload says {"hold": index}
 * (then it never answers). Writes one byte to ready_fd once registered,
 * one per call received and one per reply sent. */
static pid_t spawn_worker(const char *command, int index, int delay_ms, int ready_fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char name[32], frame[256];
    snprintf(name, sizeof(name), "worker-%d", index);
    struct h_conn *c = h_conn_hello(broker.sock, name);
    if (!c)
        _exit(1);
    snprintf(frame, sizeof(frame), "{\"op\":\"register\",\"id\":1,\"commands\":[\"%s\"]}", command);
    h_conn_send(c, frame);
    cJSON *r = h_conn_expect(c, "result", 1, 5000);
    if (!r)
        _exit(1);
    cJSON_Delete(r);
    if (write(ready_fd, "r", 1) < 0)
        _exit(1);
    for (;;) {
        cJSON *call = h_conn_expect(c, "call", -1, 60000);
        if (!call)
            _exit(0);
        if (write(ready_fd, "c", 1) < 0)
            _exit(1);
        if (h_json_num(call, "payload.hold", -1) != index) {
            h_sleep_ms(delay_ms);
            snprintf(frame, sizeof(frame),
                     "{\"op\":\"reply\",\"id\":%.0f,\"ok\":true,\"data\":{\"worker\":%d}}",
                     h_json_num(call, "id", 0), index);
            h_conn_send(c, frame);
            if (write(ready_fd, "a", 1) < 0)
                _exit(1);
        }
        cJSON_Delete(call);
    }
}

static void wait_bytes(int fd, int n)
{
    char ch;
    for (int i = 0; i < n; i++)
        assert_int_equal(read(fd, &ch, 1), 1);
}

static void test_queue_group_round_robin_and_kill(void **state)
{
    (void)state;
    int pipefd[2];
    pid_t workers[3];
    assert_int_equal(pipe(pipefd), 0);
    for (int i = 0; i < 3; i++)
        workers[i] = spawn_worker("work", i, 20, pipefd[1]);
    wait_bytes(pipefd[0], 3);

    /* 9 concurrent requests: 3 each. */
    cJSON *resp = h_http_json(&server, "POST", "/_dev/server-request",
                              "{\"command\":\"work\",\"count\":9,\"timeoutMs\":10000}");
    assert_non_null(resp);
    int per_worker[3] = {0};
    cJSON *results = cJSON_GetObjectItem(resp, "results");
    assert_int_equal(cJSON_GetArraySize(results), 9);
    cJSON *it;
    cJSON_ArrayForEach(it, results)
    {
        int w = (int)h_json_num(it, "response.data.worker", -1);
        assert_true(w >= 0 && w < 3);
        per_worker[w]++;
    }
    cJSON_Delete(resp);
    for (int i = 0; i < 3; i++)
        assert_int_equal(per_worker[i], 3);
    wait_bytes(pipefd[0], 18); /* 9 calls, 9 replies */

    /* One of the three is killed -9 while it holds a call: the server gets
     * HandlerError for that one at once, the others their answers. */
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t req = server_request_async(
        "{\"command\":\"work\",\"count\":3,\"payload\":{\"hold\":2},\"timeoutMs\":60000}", out[1]);
    close(out[1]);
    /* Each worker has its call (3 bytes) and workers 0 and 1 have sent
     * their replies (2 more; worker 2 holds its call). */
    wait_bytes(pipefd[0], 5);
    uint64_t t0 = h_now_ms();
    kill(workers[2], SIGKILL);
    waitpid(workers[2], NULL, 0);
    cJSON *r = read_child_json(out[0], req);
    close(out[0]);
    assert_non_null(r);
    /* well before commandTimeout (30 s) would have answered HandlerTimeout */
    assert_true(h_now_ms() - t0 < (uint64_t)h_slack_ms(3000));
    int ok = 0, handler_error = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "results"))
    {
        const char *code = h_json_str(it, "response.error.code");
        if (code && !strcmp(code, "HandlerError"))
            handler_error++;
        else if (h_json_num(it, "response.data.worker", -1) >= 0)
            ok++;
    }
    assert_int_equal(ok, 2);
    assert_int_equal(handler_error, 1);
    cJSON_Delete(r);

    for (int i = 0; i < 2; i++) { /* worker 2 is already gone */
        kill(workers[i], SIGKILL);
        waitpid(workers[i], NULL, 0);
    }
    close(pipefd[0]);
    close(pipefd[1]);
    cJSON *st = h_http_json(&server, "GET", "/_dev/state", NULL);
    assert_int_equal((int)h_json_num(st, "counters.duplicateServerResponses", -1), 0);
    cJSON_Delete(st);
}

/* ---- handler timeout ---- */

static int setup_short_timeout(void **state)
{
    (void)state;
    return start(CONFIG_HEAD "\"commandTimeout\":500,\"broker\":{\"listen\":\"%SOCK%\","
                             "\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\"}}");
}

static void test_handler_timeout(void **state)
{
    (void)state;
    struct h_conn *c = h_conn_hello(broker.sock, "slowpoke");
    assert_int_equal(h_conn_send(c, "{\"op\":\"register\",\"id\":1,\"commands\":[\"slow\"]}"), 0);
    expect_ok(c, 1);
    cJSON *r = h_http_json(&server, "POST", "/_dev/server-request",
                           "{\"command\":\"slow\",\"timeoutMs\":5000}");
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "response.error.code"), "HandlerTimeout");
    cJSON_Delete(r);
    /* the late reply is dropped: still exactly one answer */
    cJSON *call = h_conn_expect(c, "call", -1, 1000);
    assert_non_null(call);
    char frame[128];
    snprintf(frame, sizeof(frame), "{\"op\":\"reply\",\"id\":%.0f,\"ok\":true}",
             h_json_num(call, "id", 0));
    cJSON_Delete(call);
    cJSON *before = h_status(broker.sock);
    double drops = h_json_num(before, "counters.drops", -1);
    cJSON_Delete(before);
    assert_int_equal(h_conn_send(c, frame), 0);
    /* The broker has dropped it (counted), not forwarded it. */
    assert_int_equal(h_wait_status_num(broker.sock, "counters.drops", drops + 1, h_slack_ms(5000)),
                     0);
    cJSON *st = h_http_json(&server, "GET", "/_dev/state", NULL);
    assert_int_equal((int)h_json_num(st, "counters.duplicateServerResponses", -1), 0);
    cJSON_Delete(st);
    h_conn_close(c);
}

/* ---- subscriptions ---- */

static struct h_conn *subscriber(const char *name, const char *const *filters)
{
    struct h_conn *c = h_conn_hello(broker.sock, name);
    int id = 1;
    for (; *filters; filters += 2, id++) {
        char frame[256];
        if (filters[1])
            snprintf(frame, sizeof(frame),
                     "{\"op\":\"subscribe\",\"id\":%d,\"match\":\"%s\",\"type\":\"%s\"}", id,
                     filters[0], filters[1]);
        else
            snprintf(frame, sizeof(frame), "{\"op\":\"subscribe\",\"id\":%d,\"match\":\"%s\"}", id,
                     filters[0]);
        h_conn_send(c, frame);
        expect_ok(c, id);
    }
    return c;
}

static int count_messages(struct h_conn *c, const char *type)
{
    int n = 0;
    cJSON *m;
    while ((m = h_conn_expect(c, "message", -1, 300))) {
        if (!strcmp(h_json_str(m, "type"), type))
            n++;
        cJSON_Delete(m);
    }
    return n;
}

static void test_subscription_fanout(void **state)
{
    (void)state;
    static const char *const all_and_exact[] = {"all", NULL, "exact", "x.y", NULL};
    static const char *const exact[] = {"exact", "x.y", NULL};
    static const char *const prefix_x[] = {"prefix", "x.", NULL};
    static const char *const prefix_z[] = {"prefix", "z.", NULL};
    struct h_conn *a = subscriber("sub-a", all_and_exact);
    struct h_conn *b = subscriber("sub-b", exact);
    struct h_conn *c = subscriber("sub-c", prefix_x);
    struct h_conn *d = subscriber("sub-d", prefix_z);
    struct h_conn *none = h_conn_hello(broker.sock, "sub-none");

    assert_int_equal(
        h_http(&server, "POST", "/_dev/message", "{\"type\":\"x.y\",\"data\":1}", NULL), 200);
    assert_int_equal(count_messages(a, "x.y"), 1); /* once, though two filters match */
    assert_int_equal(count_messages(b, "x.y"), 1);
    assert_int_equal(count_messages(c, "x.y"), 1);
    assert_int_equal(count_messages(d, "x.y"), 0);
    assert_int_equal(count_messages(none, "x.y"), 0);

    assert_int_equal(
        h_http(&server, "POST", "/_dev/message", "{\"type\":\"x.z\",\"data\":2}", NULL), 200);
    assert_int_equal(count_messages(a, "x.z"), 1);
    assert_int_equal(count_messages(b, "x.z"), 0);
    assert_int_equal(count_messages(c, "x.z"), 1);

    /* unsubscribe stops delivery */
    assert_int_equal(h_conn_send(c, "{\"op\":\"unsubscribe\",\"id\":9,\"match\":\"prefix\","
                                    "\"type\":\"x.\"}"),
                     0);
    expect_ok(c, 9);
    assert_int_equal(
        h_http(&server, "POST", "/_dev/message", "{\"type\":\"x.q\",\"data\":3}", NULL), 200);
    assert_int_equal(count_messages(c, "x.q"), 0);
    assert_int_equal(count_messages(a, "x.q"), 1);

    /* bad filters are refused with a clear error */
    assert_int_equal(h_conn_send(d, "{\"op\":\"subscribe\",\"id\":5,\"match\":\"regex\","
                                    "\"type\":\"a\"}"),
                     0);
    cJSON *r = h_conn_expect(d, "result", 5, 5000);
    assert_string_equal(h_json_str(r, "code"), "BadRequest");
    cJSON_Delete(r);
    h_conn_close(a);
    h_conn_close(b);
    h_conn_close(c);
    h_conn_close(d);
    h_conn_close(none);
}

/* ---- events to every client ---- */

static void test_events_on_drop_and_return(void **state)
{
    (void)state;
    struct h_conn *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = h_conn_hello(broker.sock, "evt");
        cJSON *e = h_conn_expect(c[i], "event", -1, 2000); /* told at once: ready */
        assert_non_null(e);
        assert_string_equal(h_json_str(e, "event"), "connected");
        cJSON_Delete(e);
    }
    assert_int_equal(h_http(&server, "POST", "/_dev/disconnect", "{\"mode\":\"transport\"}", NULL),
                     200);
    for (int i = 0; i < 3; i++) {
        cJSON *e = h_conn_expect_event(c[i], "disconnected", 5000);
        assert_non_null(e);
        assert_non_null(h_json_str(e, "reason"));
        cJSON_Delete(e);
        e = h_conn_expect_event(c[i], "connected", 10000);
        assert_non_null(e);
        cJSON_Delete(e);
        h_conn_close(c[i]);
    }
}

/* ---- credentials and peers of other uids ---- */

#define NOBODY 65534

/* In a child running as nobody: hello and ask for `name`; exit code 0 if
 * the result's ok/code matches `expect_code` ("" = ok). */
static int as_nobody(const char *name, const char *expect_code)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
            _exit(10);
        struct h_conn *c = h_conn_hello(broker.sock, "nobody");
        if (!c)
            _exit(11);
        char frame[128];
        snprintf(frame, sizeof(frame), "{\"op\":\"credential\",\"id\":1,\"name\":\"%s\"}", name);
        h_conn_send(c, frame);
        cJSON *r = h_conn_expect(c, "result", 1, 5000);
        if (!r)
            _exit(12);
        bool ok = cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"));
        if (!expect_code[0])
            _exit(ok ? 0 : 13);
        const char *code = h_json_str(r, "code");
        _exit(!ok && code && !strcmp(code, expect_code) ? 0 : 14);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_password_only_for_own_uid(void **state)
{
    (void)state;
    if (getuid() != 0) {
        /* Needs root to become another user; CI runs as root. Fail loudly
         * rather than pretend. */
        fail_msg("this test must run as root (it switches to uid %d)", NOBODY);
    }
    assert_int_equal(as_nobody("teamClusterId", ""), 0);
    assert_int_equal(as_nobody("daemonPassword", "PermissionDenied"), 0);
    /* the broker's own uid gets it */
    struct h_conn *c = h_conn_hello(broker.sock, "root");
    assert_int_equal(h_conn_send(c, "{\"op\":\"credential\",\"id\":1,\"name\":\"daemonPassword\"}"),
                     0);
    cJSON *r = h_conn_expect(c, "result", 1, 5000);
    assert_string_equal(cJSON_GetObjectItem(r, "data")->valuestring, "dev-password");
    cJSON_Delete(r);
    h_conn_close(c);
    assert_int_equal(h_broker_wait_log(&broker, "refused the daemon password", 3000), 0);
}

static int setup_allowed_uids(void **state)
{
    (void)state;
    return start(CONFIG_HEAD "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\","
                             "\"mode\":\"0666\",\"allowedUids\":[12345],\"logLevel\":\"debug\"}}");
}

static void test_uid_outside_allowed_set_refused(void **state)
{
    (void)state;
    if (getuid() != 0)
        fail_msg("this test must run as root (it switches to uid %d)", NOBODY);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
            _exit(10);
        struct h_conn *c = h_conn_open(broker.sock);
        if (!c)
            _exit(11);
        h_conn_send(c, "{\"op\":\"hello\",\"min_version\":1,\"max_version\":1}");
        cJSON *e = h_conn_expect(c, "error", -1, 5000);
        const char *code = e ? h_json_str(e, "code") : NULL;
        _exit(code && !strcmp(code, "PermissionDenied") && h_conn_closed(c, 5000) ? 0 : 12);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(h_broker_wait_log(&broker, "not in the allowed set", 3000), 0);
    /* root (and the broker's own uid) is always allowed */
    struct h_conn *c = h_conn_hello(broker.sock, "root");
    assert_non_null(c);
    h_conn_close(c);
}

/* ---- slow consumer ---- */

static int setup_small_queue(void **state)
{
    (void)state;
    return start(CONFIG_HEAD "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\","
                             "\"logLevel\":\"info\",\"limits\":{\"maxFrame\":65536,"
                             "\"maxQueueBytes\":262144}}}");
}

static void test_slow_consumer_disconnected(void **state)
{
    (void)state;
    static const char *const all[] = {"all", NULL, NULL};
    struct h_conn *slow = subscriber("slow", all);
    struct h_conn *fast = subscriber("fast", all);
    char body[16384];
    int n = snprintf(body, sizeof(body), "{\"type\":\"bulk\",\"data\":\"");
    memset(body + n, 'x', 12000);
    snprintf(body + n + 12000, sizeof(body) - (size_t)n - 12000, "\"}");

    /* 200 messages of 12 KB: 2.4 MB, far more than the socket buffer plus
     * 256 KiB of queue. The fast client reads as they come; the slow one
     * never reads. */
    int got = 0;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(h_http(&server, "POST", "/_dev/message", body, NULL), 200);
        cJSON *m;
        while ((m = h_conn_expect(fast, "message", -1, i == 199 ? 2000 : 1))) {
            got++;
            cJSON_Delete(m);
        }
    }
    cJSON *m;
    while (got < 200 && (m = h_conn_expect(fast, "message", -1, 2000))) {
        got++;
        cJSON_Delete(m);
    }
    assert_int_equal(got, 200);
    assert_true(h_conn_closed(slow, 5000));
    assert_int_equal(h_broker_wait_log(&broker, "slow consumer", 3000), 0);
    cJSON *st = h_status(broker.sock);
    assert_true(h_json_num(st, "counters.slow_consumers", 0) >= 1);
    cJSON_Delete(st);
    h_conn_close(slow);
    h_conn_close(fast);
}

/* ---- limits ---- */

static int setup_limits(void **state)
{
    (void)state;
    return start(CONFIG_HEAD "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\","
                             "\"limits\":{\"maxClients\":3,\"maxHandlersPerClient\":2,"
                             "\"maxSubscriptionsPerClient\":1}}}");
}

static void test_limits(void **state)
{
    (void)state;
    struct h_conn *a = h_conn_hello(broker.sock, "lim-a");
    cJSON *r;
    assert_int_equal(
        h_conn_send(a, "{\"op\":\"register\",\"id\":1,\"commands\":[\"c1\",\"c2\",\"c3\"]}"), 0);
    r = h_conn_expect(a, "result", 1, 5000);
    assert_string_equal(h_json_str(r, "code"), "LimitExceeded");
    cJSON_Delete(r);
    assert_int_equal(h_conn_send(a, "{\"op\":\"subscribe\",\"id\":2,\"match\":\"all\"}"), 0);
    expect_ok(a, 2);
    assert_int_equal(
        h_conn_send(a, "{\"op\":\"subscribe\",\"id\":3,\"match\":\"exact\",\"type\":\"t\"}"), 0);
    r = h_conn_expect(a, "result", 3, 5000);
    assert_string_equal(h_json_str(r, "code"), "LimitExceeded");
    cJSON_Delete(r);
    /* maxClients 3 (the status helper's connection counts while open) */
    struct h_conn *b = h_conn_hello(broker.sock, "lim-b");
    struct h_conn *c = h_conn_hello(broker.sock, "lim-c");
    assert_non_null(b);
    assert_non_null(c);
    struct h_conn *d = h_conn_open(broker.sock);
    r = h_conn_expect(d, "error", -1, 5000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "code"), "LimitExceeded");
    cJSON_Delete(r);
    assert_true(h_conn_closed(d, 5000));
    h_conn_close(d);
    h_conn_close(a);
    h_conn_close(b);
    h_conn_close(c);
}

/* ---- a client killed with requests in flight ---- */

static bool late_answers_dropped(void *arg)
{
    cJSON *st = h_status(broker.sock);
    bool done = h_json_num(st, "counters.drops", 0) >= *(int *)arg &&
                h_json_num(st, "counters.pending", -1) == 0;
    cJSON_Delete(st);
    return done;
}

/* The answers to a dead client's requests arrive later: each is dropped
 * (and counted) once, nothing stays pending, and nobody else notices. */
static void test_client_killed_mid_request(void **state)
{
    (void)state;
    enum { N = 50 };
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct h_conn *c = h_conn_hello(broker.sock, "doomed");
        char frame[160];
        for (int i = 0; c && i < N; i++) {
            snprintf(frame, sizeof(frame),
                     "{\"op\":\"request\",\"id\":%d,\"command\":\"slow\",\"payload\":{\"ms\":300}}",
                     i + 1);
            if (h_conn_send(c, frame) < 0)
                _exit(1);
        }
        /* the broker has read them all once it answers this */
        if (!c || h_conn_send(c, "{\"op\":\"ping\",\"id\":99}") < 0 ||
            !h_conn_expect(c, "pong", 99, h_slack_ms(5000)) || write(ready[1], "r", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char b;
    assert_int_equal(read(ready[0], &b, 1), 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    int drops = N;
    assert_int_equal(h_wait_for(late_answers_dropped, &drops, h_slack_ms(5000)), 0);
    /* each reached the server once (heartbeats are requests too) */
    assert_int_equal(
        h_server_counter(&server, "requests") - h_server_counter(&server, "heartbeats"), N);
    struct h_conn *c = h_conn_hello(broker.sock, "survivor");
    assert_int_equal(
        h_conn_send(c, "{\"op\":\"request\",\"id\":1,\"command\":\"echo\",\"payload\":1}"), 0);
    expect_ok(c, 1);
    h_conn_close(c);
}

/* ---- a thousand clients at once ---- */

static int many_clients;

/* As many clients as our own open-file limit allows, up to 1000. Called
 * before any broker starts, so that the brokers inherit the raised limit
 * (under valgrind they cannot raise it themselves). */
static int thousand_or_what_fits(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 100;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1100 &&
        (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > rl.rlim_cur)) {
        rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 1100 ? rl.rlim_max : 1100;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 1100)
        return 1000;
    return rl.rlim_cur > 200 ? (int)rl.rlim_cur - 100 : 100;
}

/* All of one user: the per-user connection limit is raised for this one
 * (it has its own test in test-isolation). */
static int setup_many(void **state)
{
    (void)state;
    return start(CONFIG_HEAD "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\","
                             "\"logLevel\":\"info\",\"limits\":{\"maxClientsPerUid\":2000}}}");
}

/* 1000 clients connected at once, each with a request in flight through
 * the one upstream session: every one gets its own answer, once. */
static void test_thousand_clients(void **state)
{
    (void)state;
    int n = many_clients;
    struct h_conn **conns = calloc((size_t)n, sizeof(*conns));
    char frame[256];

    assert_non_null(conns);
    for (int i = 0; i < n; i++) {
        conns[i] = h_conn_open(broker.sock);
        assert_non_null(conns[i]);
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"hello\",\"min_version\":1,\"max_version\":1,\"name\":\"many-%d\"}", i);
        assert_int_equal(h_conn_send(conns[i], frame), 0);
    }
    for (int i = 0; i < n; i++) {
        cJSON *w = h_conn_expect(conns[i], "welcome", -1, h_slack_ms(10000));
        assert_non_null(w);
        cJSON_Delete(w);
    }
    cJSON *st = h_status(broker.sock);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(st, "clients")), n + 1);
    cJSON_Delete(st);

    for (int i = 0; i < n; i++) {
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":7,\"command\":\"echo\",\"payload\":{\"i\":%d}}", i);
        assert_int_equal(h_conn_send(conns[i], frame), 0);
    }
    for (int i = 0; i < n; i++) {
        cJSON *r = h_conn_expect(conns[i], "result", 7, h_slack_ms(10000));
        assert_non_null(r);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
        assert_int_equal((int)h_json_num(r, "data.i", -1), i);
        cJSON_Delete(r);
        /* and nothing else for this client */
        assert_null(h_conn_expect(conns[i], "result", -1, 0));
    }
    for (int i = 0; i < n; i++)
        h_conn_close(conns[i]);
    free(conns);
    assert_int_equal(h_server_counter(&server, "connects"), 1); /* one upstream session */
}

int main(void)
{
    h_apply_test_filter();
    many_clients = thousand_or_what_fits();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_services_share_one_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_group_round_robin_and_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_timeout, setup_short_timeout, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_on_drop_and_return, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_only_for_own_uid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uid_outside_allowed_set_refused, setup_allowed_uids,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer_disconnected, setup_small_queue,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup_limits, teardown),
        cmocka_unit_test_setup_teardown(test_client_killed_mid_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thousand_clients, setup_many, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
