/* volt-inspect in each of its modes, as a person or a script runs it,
 * against a real volt-broker connected to the real socket.io dev server.
 *
 * The tool is a separate process here: short runs go through h_run_input()
 * (stdin as a pipe, stdout/stderr/exit status collected), the long-lived
 * modes (monitor, proxy, call --follow) through h_proc_start(), stopped by
 * a signal. What the tool prints is checked against what the broker and
 * the dev server really did: the broker's status, the dev server's
 * counters, the frames a raw h_conn client saw.
 */
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 10000
#define MAX_PROCS      8

static const char *const plain_config =
    "{\"serverUrl\":\"http://127.0.0.1:%PORT%\","
    "\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
    "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"
    "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\"},"
    "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"},"
    "\"commandTimeout\":3000}";

struct fixture {
    struct h_server server;
    struct h_broker broker;
    bool broker_stopped; /* a test stopped it and checked its exit */
    struct h_proc procs[MAX_PROCS];
    int n_procs;
};

static struct fixture fx;

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    /* The server's default heartbeat (25 s + 20 s): a busy machine must not
     * turn a slow ping into a lost session in the middle of a test. */
    if (h_server_start(&fx.server, NULL) < 0)
        return -1;
    if (h_broker_start(&fx.broker, &fx.server, plain_config, NULL) < 0) {
        h_server_stop(&fx.server);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    int rc = 0;
    (void)state;
    /* Tools first, so a failed test leaves nothing behind. */
    for (int i = 0; i < fx.n_procs; i++)
        h_proc_cleanup(&fx.procs[i]);
    if (!fx.broker_stopped)
        rc = h_broker_stop(&fx.broker, 10000);
    h_broker_cleanup(&fx.broker);
    h_server_stop(&fx.server);
    return rc == 0 ? 0 : -1;
}

/* ---- running the tool ---- */

#define MAX_ARGS 24

static void collect_args(const char **argv, const char *first, va_list ap)
{
    int n = 0;
    argv[n++] = "volt-inspect";
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(n < MAX_ARGS - 1);
        argv[n++] = a;
    }
    argv[n] = NULL;
}

/* Runs volt-inspect with the arguments (NULL-terminated) and input on its
 * stdin, and checks that its exit status is `expected`; *out and *err
 * (caller frees) hold what it printed. */
static void inspect_expect(int expected, const char *input, char **out, char **err,
                           const char *first, ...)
{
    const char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, first);
    collect_args(argv, first, ap);
    va_end(ap);
    int rc = h_run_input(argv, NULL, input, out, err, RUN_TIMEOUT_MS);
    if (rc != expected)
        fprintf(stderr, "volt-inspect exited %d, not %d\n  stdout: %s\n  stderr: %s\n", rc,
                expected, *out ? *out : "?", *err ? *err : "?");
    assert_int_equal(rc, expected);
}

/* Starts volt-inspect in the background; the fixture cleans it up. */
static struct h_proc *start_inspect(const char *input, const char *first, ...)
{
    const char *argv[MAX_ARGS];
    va_list ap;
    assert_true(fx.n_procs < MAX_PROCS);
    struct h_proc *p = &fx.procs[fx.n_procs++];
    va_start(ap, first);
    collect_args(argv, first, ap);
    va_end(ap);
    assert_int_equal(h_proc_start(p, argv, NULL, input), 0);
    return p;
}

/* ---- reading what it printed ---- */

/* Every line of text parsed as JSON, in an array (caller deletes); fails
 * the test on a line that is not JSON. */
static cJSON *json_lines(const char *text)
{
    cJSON *all = cJSON_CreateArray();
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        cJSON *j = cJSON_Parse(line);
        if (!j)
            fprintf(stderr, "not a JSON line: '%s'\n", line);
        free(line);
        assert_non_null(j);
        cJSON_AddItemToArray(all, j);
        p += len + (nl ? 1 : 0);
    }
    return all;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* The first element of arr whose op is op and, when id >= 0, whose id is id. */
static cJSON *find_frame(const cJSON *arr, const char *op, long long id)
{
    cJSON *f;
    cJSON_ArrayForEach(f, arr)
    {
        const char *fop = h_json_str(f, "op");
        if (fop && !strcmp(fop, op) && (id < 0 || h_json_num(f, "id", -1) == (double)id))
            return f;
    }
    return NULL;
}

/* The number after the word `label` and blanks ("requests   12"), or -1. */
static long long number_after(const char *text, const char *label)
{
    size_t n = strlen(label);
    for (const char *p = strstr(text, label); p; p = strstr(p + 1, label)) {
        bool word = (p == text || p[-1] == ' ' || p[-1] == '\n') && p[n] == ' ';
        if (word)
            return strtoll(p + n, NULL, 10);
    }
    return -1;
}

/* The line of text that starts with prefix (caller frees), or NULL. */
static char *line_starting(const char *text, const char *prefix)
{
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, prefix, strlen(prefix))) {
            const char *nl = strchr(p, '\n');
            return strndup(p, nl ? (size_t)(nl - p) : strlen(p));
        }
    }
    return NULL;
}

static double server_requests(void)
{
    cJSON *st = h_http_json(&fx.server, "GET", "/_dev/state", NULL);
    double v = h_json_num(st, "counters.requests", -1);
    cJSON_Delete(st);
    return v;
}

static double broker_counter(const char *name)
{
    char path[96];
    cJSON *st = h_status(fx.broker.sock);
    snprintf(path, sizeof(path), "counters.%s", name);
    double v = h_json_num(st, path, -1);
    cJSON_Delete(st);
    return v;
}

/* The broker's client id for the client that said hello with name. */
static long long client_id(const char *name)
{
    cJSON *st = h_status(fx.broker.sock);
    cJSON *c;
    long long id = -1;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "clients"))
    {
        const char *n = h_json_str(c, "name");
        if (n && !strcmp(n, name))
            id = (long long)h_json_num(c, "id", -1);
    }
    cJSON_Delete(st);
    return id;
}

/* strcmp that takes NULL (as a value equal to nothing). */
static bool streq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static void assert_result_ok(cJSON *r)
{
    assert_non_null(r);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
        char *text = cJSON_PrintUnformatted(r);
        fprintf(stderr, "expected ok:true, got %.500s\n", text);
        free(text);
        h_broker_dump_log(&fx.broker);
        fail();
    }
}

static void wait_ready(void)
{
    assert_int_equal(h_wait_state(fx.broker.sock, "ready", 15000), 0);
}

/* ---- 1: --oneshot ---- */

static void test_oneshot_answers_and_exit_status(void **state)
{
    char *out, *err;
    cJSON *lines, *r;
    (void)state;
    wait_ready();

    /* ok:true: exit 0, exactly the answer on stdout. */
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "-e",
                   "{\"op\":\"request\",\"command\":\"echo\",\"payload\":{\"x\":1}}", NULL);
    assert_int_equal(count_lines(out), 1);
    lines = json_lines(out);
    r = cJSON_GetArrayItem(lines, 0);
    assert_string_equal(h_json_str(r, "op"), "result");
    assert_int_equal((int)h_json_num(r, "id", -1), 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    assert_int_equal((int)h_json_num(r, "data.x", -1), 1);
    assert_string_equal(err, "");
    cJSON_Delete(lines);
    free(out);
    free(err);

    /* ok:false: exit 1, the answer on stdout, code, message and the
     * server's code on stderr. */
    inspect_expect(1, NULL, &out, &err, "-s", fx.broker.sock, "-e",
                   "{\"op\":\"request\",\"command\":\"reject\","
                   "\"payload\":{\"code\":\"E_NOPE\",\"message\":\"not today\"}}",
                   NULL);
    lines = json_lines(out);
    assert_int_equal(cJSON_GetArraySize(lines), 1);
    r = cJSON_GetArrayItem(lines, 0);
    assert_string_equal(h_json_str(r, "code"), "COMMAND_REJECTED");
    assert_non_null(strstr(err, "COMMAND_REJECTED"));
    assert_non_null(strstr(err, "not today"));
    assert_non_null(strstr(err, "E_NOPE"));
    cJSON_Delete(lines);
    free(out);
    free(err);

    /* No answer within --timeout: exit 4, well before the broker's own
     * commandTimeout (3 s) would have answered COMMAND_TIMEOUT (exit 1). */
    uint64_t t0 = h_now_ms();
    inspect_expect(4, NULL, &out, &err, "-s", fx.broker.sock, "--timeout", "300", "-e",
                   "{\"op\":\"request\",\"command\":\"never\"}", NULL);
    uint64_t took = h_now_ms() - t0;
    assert_true(took >= 300 && took < (uint64_t)h_slack_ms(2500));
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "no answer for id 1"));
    free(out);
    free(err);

    /* Several frames from stdin: automatic ids 1 and 2, both answers. */
    inspect_expect(0,
                   "# the deploy check\n"
                   "{\"op\":\"request\",\"command\":\"echo\",\"payload\":\"hi\"}\n"
                   "{\"op\":\"credential\",\"name\":\"teamClusterId\"}\n",
                   &out, &err, "-s", fx.broker.sock, "--oneshot", NULL);
    lines = json_lines(out);
    assert_int_equal(cJSON_GetArraySize(lines), 2);
    assert_string_equal(h_json_str(find_frame(lines, "result", 1), "data"), "hi");
    assert_string_equal(h_json_str(find_frame(lines, "result", 2), "data"), "cluster-dev");
    cJSON_Delete(lines);
    free(out);
    free(err);
}

static bool listener_has_client(int fd)
{
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0)
        close(c);
    return c >= 0;
}

static void test_oneshot_bad_input_and_no_socket(void **state)
{
    char *out, *err, path[H_PATH];
    (void)state;
    wait_ready();

    /* A bad frame among good ones: exit 2, nothing sent, not even the
     * good one before it. */
    double upstream_before = server_requests();
    double broker_before = broker_counter("requests");
    assert_true(upstream_before >= 0 && broker_before >= 0);
    inspect_expect(2, NULL, &out, &err, "-s", fx.broker.sock, "-e",
                   "{\"op\":\"request\",\"command\":\"echo\"}", "-e", "{\"op\":\"request\",", NULL);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "not valid JSON"));
    assert_non_null(strstr(err, "nothing sent"));
    free(out);
    free(err);
    assert_true(server_requests() == upstream_before);
    assert_true(broker_counter("requests") == broker_before);

    /* ... and it does not even connect: a listener of our own hears
     * nobody. */
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(path, sizeof(path), "%s/listener.sock", fx.broker.dir);
    assert_true(strlen(path) < sizeof(a.sun_path));
    memcpy(a.sun_path, path, strlen(path) + 1);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    inspect_expect(2, NULL, &out, &err, "-s", path, "-e", "{\"op\":\"ping\"}", "-e", "[1,2]", NULL);
    assert_false(listener_has_client(lfd));
    close(lfd);
    free(out);
    free(err);

    /* Not JSON lines on stdin: the same, with the line number. */
    inspect_expect(2, "{\"op\":\"ping\"}\n{\"id\":3}\n", &out, &err, "-s", fx.broker.sock,
                   "--oneshot", NULL);
    assert_non_null(strstr(err, "line 2"));
    free(out);
    free(err);

    /* No socket there: exit 3, naming the path. */
    snprintf(path, sizeof(path), "%s/no-such-broker.sock", fx.broker.dir);
    inspect_expect(3, NULL, &out, &err, "-s", path, "-e", "{\"op\":\"ping\"}", NULL);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, path));
    free(out);
    free(err);

    /* The same through $VOLT_BROKER_SOCKET. */
    char env[H_PATH + 32];
    snprintf(env, sizeof(env), "VOLT_BROKER_SOCKET=%s", path);
    const char *const argv[] = {"volt-inspect", "-e", "{\"op\":\"ping\"}", NULL};
    const char *const envv[] = {env, NULL};
    assert_int_equal(h_run_input(argv, envv, NULL, &out, &err, RUN_TIMEOUT_MS), 3);
    assert_non_null(strstr(err, path));
    free(out);
    free(err);
}

/* ---- 2: call mode, a script on stdin ---- */

static void test_call_piped_stdin(void **state)
{
    char *out, *err;
    (void)state;
    wait_ready();

    /* Lines 4 (comment) and 6 (empty) are skipped; 5 and 7 are bad; the
     * typed id 10 pushes the automatic ids above it. */
    const char *script = "{\"op\":\"ping\"}\n"
                         "{\"op\":\"status\"}\n"
                         "{\"op\":\"request\",\"command\":\"echo\",\"payload\":{\"y\":2}}\n"
                         "# a comment\n"
                         "{bad\n"
                         "\n"
                         "[1,2]\n"
                         "{\"op\":\"ping\",\"id\":10}\n"
                         "{\"op\":\"ping\"}"; /* no final newline: still a line */
    inspect_expect(2, script, &out, &err, "-s", fx.broker.sock, "-n", "call-script", NULL);

    /* One JSON line per frame received, nothing else. */
    cJSON *lines = json_lines(out);
    assert_int_equal(cJSON_GetArraySize(lines), 7);
    cJSON *welcome = cJSON_GetArrayItem(lines, 0);
    assert_string_equal(h_json_str(welcome, "op"), "welcome");
    assert_string_equal(h_json_str(welcome, "state"), "ready");
    assert_non_null(find_frame(lines, "event", -1));
    assert_non_null(find_frame(lines, "pong", 1));
    cJSON *status = find_frame(lines, "result", 2);
    assert_result_ok(status);
    assert_string_equal(h_json_str(status, "data.upstream.state"), "ready");
    cJSON *echo = find_frame(lines, "result", 3);
    assert_result_ok(echo);
    assert_int_equal((int)h_json_num(echo, "data.y", -1), 2);
    assert_non_null(find_frame(lines, "pong", 10));
    assert_non_null(find_frame(lines, "pong", 11));
    cJSON_Delete(lines);

    /* The bad lines, by number, on stderr; nothing else there. */
    assert_non_null(strstr(err, "line 5:"));
    assert_non_null(strstr(err, "line 7:"));
    assert_int_equal(count_lines(err), 2);
    free(out);
    free(err);

    /* Only good lines: exit 0. */
    inspect_expect(0, "{\"op\":\"ping\"}\n", &out, &err, "-s", fx.broker.sock, NULL);
    assert_non_null(strstr(out, "\"op\":\"pong\",\"id\":1"));
    free(out);
    free(err);
}

static void test_call_wait_and_follow(void **state)
{
    char *out, *err;
    (void)state;
    wait_ready();

    /* An answer still owed after --wait: exit 4, the id named. */
    uint64_t t0 = h_now_ms();
    inspect_expect(4, "{\"op\":\"request\",\"command\":\"never\"}\n", &out, &err, "-s",
                   fx.broker.sock, "--wait", "300", NULL);
    assert_true(h_now_ms() - t0 < (uint64_t)h_slack_ms(2500));
    assert_non_null(strstr(err, "no answer for id 1"));
    free(out);
    free(err);

    /* --follow: subscribe, then keep printing what comes after the end of
     * input. */
    struct h_proc *p =
        start_inspect("{\"op\":\"subscribe\",\"match\":\"prefix\",\"type\":\"insp.\"}\n", "-s",
                      fx.broker.sock, "--follow", NULL);
    assert_int_equal(h_proc_wait_stdout(p, "\"op\":\"result\",\"id\":1,\"ok\":true", 5000), 0);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/message",
                            "{\"type\":\"insp.note\",\"data\":{\"n\":5}}", NULL),
                     200);
    assert_int_equal(h_proc_wait_stdout(p, "insp.note", 5000), 0);
    assert_true(h_proc_running(p));
    out = h_proc_stdout(p);
    cJSON *lines = json_lines(out);
    cJSON *msg = find_frame(lines, "message", -1);
    assert_non_null(msg);
    assert_int_equal((int)h_json_num(msg, "data.n", -1), 5);
    cJSON_Delete(lines);
    free(out);
    assert_int_equal(h_proc_stop(p, SIGTERM, 3000), 128 + SIGTERM);
}

/* ---- 3: status ---- */

static void test_status(void **state)
{
    char *out, *err;
    (void)state;
    wait_ready();

    /* Something to count and a client to list. */
    struct h_conn *c = h_conn_hello(fx.broker.sock, "status-peer");
    assert_non_null(c);
    assert_int_equal(h_conn_send(c, "{\"op\":\"register\",\"id\":1,\"commands\":[\"insp.cmd\"]}"),
                     0);
    cJSON *r = h_conn_expect(c, "result", 1, 5000);
    assert_result_ok(r);
    cJSON_Delete(r);
    for (int i = 2; i <= 4; i++) {
        char frame[128];
        snprintf(frame, sizeof(frame), "{\"op\":\"request\",\"id\":%d,\"command\":\"echo\"}", i);
        assert_int_equal(h_conn_send(c, frame), 0);
        r = h_conn_expect(c, "result", i, 5000);
        assert_result_ok(r);
        cJSON_Delete(r);
    }
    double requests = broker_counter("requests");
    double ok = broker_counter("responses_ok");
    assert_true(requests >= 3 && ok >= 3);

    /* For people. */
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "-n", "status-text", "status", NULL);
    char *upstream = line_starting(out, "upstream");
    assert_non_null(upstream);
    assert_non_null(strstr(upstream, "ready"));
    free(upstream);
    assert_true(number_after(out, "requests") == (long long)requests);
    assert_true(number_after(out, "responses_ok") == (long long)ok);
    for (const char *const *k =
             (const char *const[]){"rejected", "timeouts", "not_ready", "inbound", "drops",
                                   "slow_consumers", "reconnects", "pending", NULL};
         *k; k++) {
        if (number_after(out, *k) < 0)
            fprintf(stderr, "no counter %s in:\n%s\n", *k, out);
        assert_true(number_after(out, *k) >= 0);
    }
    assert_non_null(strstr(out, fx.broker.sock));
    assert_non_null(strstr(out, "cluster-dev"));
    assert_non_null(strstr(out, "HANDLERS")); /* the table's heading */
    assert_non_null(strstr(out, "status-peer"));
    assert_non_null(strstr(out, "insp.cmd"));
    assert_non_null(strstr(out, "status-text")); /* itself */
    free(out);
    free(err);

    /* For scripts: one JSON line, the status map. */
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "-n", "status-json", "status",
                   "--json", NULL);
    assert_int_equal(count_lines(out), 1);
    cJSON *st = cJSON_Parse(out);
    assert_non_null(st);
    assert_string_equal(h_json_str(st, "upstream.state"), "ready");
    assert_string_equal(h_json_str(st, "broker.listen"), fx.broker.sock);
    assert_true(h_json_num(st, "counters.requests", -1) == requests);
    cJSON *clients = cJSON_GetObjectItem(st, "clients");
    assert_true(cJSON_IsArray(clients));
    bool saw_peer = false, saw_self = false;
    cJSON *cl;
    cJSON_ArrayForEach(cl, clients)
    {
        const char *name = h_json_str(cl, "name");
        assert_non_null(name);
        /* h_status()'s connection may not be gone yet; nobody else is here. */
        assert_true(!strcmp(name, "status-peer") || !strcmp(name, "status-json") ||
                    !strcmp(name, "harness-status"));
        if (!strcmp(name, "status-peer")) {
            saw_peer = true;
            assert_string_equal(h_json_str(cl, "handlers.0"), "insp.cmd");
            assert_int_equal((int)h_json_num(cl, "pid", -1), (int)getpid());
        }
        saw_self |= !strcmp(name, "status-json");
    }
    assert_true(saw_peer && saw_self);
    cJSON_Delete(st);
    free(out);
    free(err);
    h_conn_close(c);
}

/* ---- 4: monitor ---- */

/* Pings through probe until every monitor has printed the trace of the
 * pong: from then on each of them sees everything. */
static void wait_monitors_ready(struct h_conn *probe, struct h_proc **mons, int n)
{
    uint64_t end = h_now_ms() + 5000;
    for (int id = 9001; h_now_ms() < end; id++) {
        char ping[64], needle[64];
        snprintf(ping, sizeof(ping), "{\"op\":\"ping\",\"id\":%d}", id);
        snprintf(needle, sizeof(needle), "\"op\":\"pong\",\"id\":%d}", id);
        assert_int_equal(h_conn_send(probe, ping), 0);
        cJSON *pong = h_conn_expect(probe, "pong", id, 1000);
        assert_non_null(pong);
        cJSON_Delete(pong);
        h_sleep_ms(50);
        int ready = 0;
        for (int i = 0; i < n; i++) {
            char *out = h_proc_stdout(mons[i]);
            ready += strstr(out, needle) != NULL;
            free(out);
        }
        if (ready == n)
            return;
        for (int i = 0; i < n; i++)
            assert_true(h_proc_running(mons[i]));
    }
    fail_msg("the monitors did not start tracing within 5 s");
}

/* The Socket.IO packet text of an upstream trace (`42/control,[...]`) as
 * its JSON array, or NULL. */
static cJSON *packet_args(const cJSON *trace)
{
    const char *text = h_json_str(trace, "frame");
    const char *bracket = text ? strchr(text, '[') : NULL;
    return bracket ? cJSON_Parse(bracket) : NULL;
}

/* A --json trace line's side and dir as the broker names them:
 * "local-in", "local-out", "upstream-in", "upstream-out". */
static void trace_dir_of(const cJSON *t, char *buf, size_t size)
{
    snprintf(buf, size, "%s-%s", h_json_str(t, "side") ? h_json_str(t, "side") : "?",
             h_json_str(t, "dir") ? h_json_str(t, "dir") : "?");
}

/* The text line the trace printer makes for who and the start of the
 * detail column (the who column is 32 wide), to look for in its output. */
static const char *trace_text(const char *who, const char *detail)
{
    static char buf[4][600];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof(buf[0]), "Z  %-32s  %s", who, detail);
    return b;
}

/* The index of the first trace from `from` on with dir, and for local
 * ones peer and frame op/id; for upstream ones the packet's event and
 * requestId (when not NULL). -1 if none. */
static int find_trace(const cJSON *lines, int from, const char *dir, long long peer, const char *op,
                      long long id, const char *event, const char *request_id)
{
    for (int i = from; i < cJSON_GetArraySize(lines); i++) {
        const cJSON *t = cJSON_GetArrayItem(lines, i);
        char d[32];
        trace_dir_of(t, d, sizeof(d));
        if (strcmp(d, dir) ||
            (strncmp(dir, "local", 5) == 0 && h_json_num(t, "peer", -1) != (double)peer))
            continue;
        if (op) {
            const char *fop = h_json_str(t, "frame.op");
            if (fop && !strcmp(fop, op) && h_json_num(t, "frame.id", -1) == (double)id)
                return i;
            continue;
        }
        cJSON *args = packet_args(t);
        const char *ev = h_json_str(args, "0");
        const char *rid = h_json_str(cJSON_GetArrayItem(args, 1), "requestId");
        bool match = ev && !strcmp(ev, event) && (!request_id || (rid && !strcmp(rid, request_id)));
        cJSON_Delete(args);
        if (match)
            return i;
    }
    return -1;
}

static void test_monitor_json(void **state)
{
    (void)state;
    wait_ready();
    struct h_conn *c = h_conn_hello(fx.broker.sock, "mon-target");
    assert_non_null(c);
    struct h_proc *mon =
        start_inspect(NULL, "-s", fx.broker.sock, "-n", "mon-json", "monitor", "--json", NULL);
    wait_monitors_ready(c, &mon, 1);
    long long peer = client_id("mon-target");
    long long mon_peer = client_id("mon-json");
    assert_true(peer > 0 && mon_peer > 0);

    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":7,\"command\":\"echo\","
                                    "\"payload\":{\"marker\":\"m-7\"}}"),
                     0);
    cJSON *r = h_conn_expect(c, "result", 7, 5000);
    assert_result_ok(r);
    cJSON_Delete(r);
    assert_int_equal(h_proc_wait_stdout(mon, "\"frame\":{\"op\":\"result\",\"id\":7", 5000), 0);

    char *out = h_proc_stdout(mon);
    cJSON *lines = json_lines(out);
    free(out);
    /* Frames only; of the monitor itself only the events every client
     * gets (its own status lookups are left out, and frames sent to a
     * monitor are not traced). Every local line names its client. */
    cJSON *t;
    cJSON_ArrayForEach(t, lines)
    {
        char dir[32];
        assert_string_equal(h_json_str(t, "kind"), "frame");
        assert_non_null(h_json_str(t, "time"));
        trace_dir_of(t, dir, sizeof(dir));
        if (h_json_num(t, "peer", -1) == mon_peer)
            assert_string_equal(h_json_str(t, "frame.op"), "event");
        if (h_json_num(t, "peer", -1) == peer) {
            assert_string_equal(h_json_str(t, "name"), "mon-target");
            assert_int_equal((int)h_json_num(t, "pid", -1), (int)getpid());
            assert_int_equal((int)h_json_num(t, "uid", -1), (int)getuid());
        }
        if (!strncmp(dir, "upstream", 8))
            assert_null(cJSON_GetObjectItem(t, "peer"));
    }

    /* The request's way: in from the client, out to the server as
     * daemon:request, its daemon:response back in, the result out. */
    int in = find_trace(lines, 0, "local-in", peer, "request", 7, NULL, NULL);
    assert_true(in >= 0);
    assert_string_equal(h_json_str(cJSON_GetArrayItem(lines, in), "frame.payload.marker"), "m-7");
    int up = find_trace(lines, in, "upstream-out", 0, NULL, 0, "daemon:request", NULL);
    assert_true(up > in);
    cJSON *args = packet_args(cJSON_GetArrayItem(lines, up));
    cJSON *req = cJSON_GetArrayItem(args, 1);
    assert_string_equal(h_json_str(req, "command"), "echo");
    assert_string_equal(h_json_str(req, "payload.marker"), "m-7");
    assert_non_null(h_json_str(req, "requestId"));
    char *rid = strdup(h_json_str(req, "requestId"));
    cJSON_Delete(args);
    int down = find_trace(lines, up, "upstream-in", 0, NULL, 0, "daemon:response", rid);
    free(rid);
    assert_true(down > up);
    int back = find_trace(lines, down, "local-out", peer, "result", 7, NULL, NULL);
    assert_true(back > down);
    cJSON *result = cJSON_GetArrayItem(lines, back);
    assert_string_equal(h_json_str(result, "frame.data.marker"), "m-7");
    /* Broker times, in order. */
    assert_true(h_json_num(cJSON_GetArrayItem(lines, in), "time_us", 0) > 1e15);
    assert_true(h_json_num(cJSON_GetArrayItem(lines, in), "time_us", 0) <=
                h_json_num(result, "time_us", 0));
    cJSON_Delete(lines);

    /* Binary goes upstream as an attachment: its own WebSocket message,
     * traced as bin and printed as {"$bin":...}. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":9,\"command\":\"echo\","
                                    "\"payload\":{\"blob\":{\"$bin\":\"3q2+7w==\"}}}"),
                     0);
    r = h_conn_expect(c, "result", 9, 5000);
    assert_result_ok(r);
    assert_string_equal(h_json_str(r, "data.blob.$bin"), "3q2+7w==");
    cJSON_Delete(r);
    assert_int_equal(h_proc_wait_stdout(mon, "\"frame\":{\"op\":\"result\",\"id\":9", 5000), 0);
    out = h_proc_stdout(mon);
    lines = json_lines(out);
    free(out);
    int attachments_out = 0, attachments_in = 0;
    cJSON_ArrayForEach(t, lines)
    {
        char dir[32];
        if (!streq(h_json_str(t, "frame.$bin"), "3q2+7w=="))
            continue;
        trace_dir_of(t, dir, sizeof(dir));
        attachments_out += streq(dir, "upstream-out");
        attachments_in += streq(dir, "upstream-in");
    }
    assert_int_equal(attachments_out, 1);
    assert_int_equal(attachments_in, 1);
    cJSON_Delete(lines);

    /* Interrupted: it ends with the signal; the broker carries on. */
    assert_int_equal(h_proc_stop(mon, SIGTERM, 3000), 128 + SIGTERM);
    assert_int_equal(h_conn_send(c, "{\"op\":\"ping\",\"id\":8}"), 0);
    cJSON *pong = h_conn_expect(c, "pong", 8, 1000);
    assert_non_null(pong);
    cJSON_Delete(pong);
    h_conn_close(c);
}

static void test_two_monitors(void **state)
{
    (void)state;
    wait_ready();
    struct h_conn *c = h_conn_hello(fx.broker.sock, "two-mon-target");
    assert_non_null(c);
    struct h_proc *mons[2];
    mons[0] = start_inspect(NULL, "-s", fx.broker.sock, "-n", "mon-a", "monitor", "--json", NULL);
    mons[1] = start_inspect(NULL, "-s", fx.broker.sock, "-n", "mon-b", "monitor", NULL);
    wait_monitors_ready(c, mons, 2);
    long long peer = client_id("two-mon-target");
    assert_true(peer > 0);

    /* Traffic while both watch. */
    for (int i = 0; i < 20; i++) {
        char frame[160];
        snprintf(frame, sizeof(frame),
                 "{\"op\":\"request\",\"id\":%d,\"command\":\"echo\",\"payload\":\"two-%d\"}",
                 100 + i, i);
        assert_int_equal(h_conn_send(c, frame), 0);
    }
    for (int i = 0; i < 20; i++) {
        cJSON *r = h_conn_expect(c, "result", -1, 5000);
        assert_result_ok(r);
        cJSON_Delete(r);
    }
    /* The broker still answers at once. */
    uint64_t t0 = h_now_ms();
    assert_int_equal(h_conn_send(c, "{\"op\":\"ping\",\"id\":1}"), 0);
    cJSON *pong = h_conn_expect(c, "pong", 1, h_slack_ms(1000));
    assert_non_null(pong);
    cJSON_Delete(pong);
    assert_true(h_now_ms() - t0 < (uint64_t)h_slack_ms(1000));

    /* Both saw all of it. */
    assert_int_equal(h_proc_wait_stdout(mons[0], "\"op\":\"result\",\"id\":119", 5000), 0);
    assert_int_equal(h_proc_wait_stdout(mons[1], "\"op\":\"result\",\"id\":119", 5000), 0);
    char *json_out = h_proc_stdout(mons[0]);
    char *text_out = h_proc_stdout(mons[1]);
    cJSON *lines = json_lines(json_out);
    for (int i = 0; i < 20; i++) {
        assert_true(find_trace(lines, 0, "local-in", peer, "request", 100 + i, NULL, NULL) >= 0);
        assert_true(find_trace(lines, 0, "local-out", peer, "result", 100 + i, NULL, NULL) >= 0);
    }
    /* One monitor's traces are not traced to the other (no echo chamber). */
    cJSON *t;
    cJSON_ArrayForEach(t, lines)
    {
        assert_false(streq(h_json_str(t, "frame.op"), "trace"));
    }
    cJSON_Delete(lines);
    /* The text monitor: one line per trace, the client named. */
    char who[96];
    snprintf(who, sizeof(who), "c%lld two-mon-target[%d] -> broker", peer, (int)getpid());
    assert_non_null(strstr(text_out, trace_text(who, "{\"op\":\"request\",\"id\":119,")));
    snprintf(who, sizeof(who), "broker -> c%lld two-mon-target[%d]", peer, (int)getpid());
    assert_non_null(strstr(text_out, trace_text(who, "{\"op\":\"result\",\"id\":119,")));
    assert_non_null(
        strstr(text_out, trace_text("broker -> server", "42/control,[\"daemon:request\"")));
    assert_non_null(
        strstr(text_out, trace_text("server -> broker", "42/control,[\"daemon:response\"")));
    assert_non_null(strstr(text_out, "daemon:request"));
    assert_non_null(strstr(text_out, "daemon:response"));
    assert_non_null(strstr(text_out, "two-19"));
    free(json_out);
    free(text_out);

    /* Quiet again: the output stops growing. A negative check, so it
     * takes a fixed time: 200 ms for what is in flight, then 600 ms in
     * which nearly nothing may be added. */
    h_sleep_ms(200);
    char *before = h_proc_stdout(mons[0]);
    h_sleep_ms(600);
    char *after = h_proc_stdout(mons[0]);
    assert_true(count_lines(after) - count_lines(before) < 10);
    free(before);
    free(after);

    /* The broker stops cleanly with both attached; both end with 3. */
    h_conn_close(c);
    assert_int_equal(h_broker_stop(&fx.broker, 5000), 0);
    fx.broker_stopped = true;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(h_proc_stop(mons[i], 0, 3000), 3);
        char *err = h_proc_stderr(mons[i]);
        assert_non_null(strstr(err, "monitor ended"));
        free(err);
    }
}

/* ---- 5: proxy ---- */

static bool path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static struct h_proc *start_proxy(const char *path, bool json)
{
    struct h_proc *p =
        json ? start_inspect(NULL, "-s", fx.broker.sock, "proxy", "--listen", path, "--json", NULL)
             : start_inspect(NULL, "-s", fx.broker.sock, "proxy", "--listen", path, NULL);
    /* Printed once it listens. */
    assert_int_equal(h_proc_wait_stderr(p, "# proxying", 5000), 0);
    return p;
}

static const char bad_frame[] = {0, 0, 0, 2, (char)0xc1, (char)0xc1}; /* 0xc1: never used */

static void test_proxy_text(void **state)
{
    char path[H_PATH], needle[128];
    (void)state;
    wait_ready();
    snprintf(path, sizeof(path), "%s/tap.sock", fx.broker.dir);
    struct h_proc *proxy = start_proxy(path, false);

    /* Two clients through it at once, each with its own answers. */
    struct h_conn *c1 = h_conn_hello(path, "via-proxy-1");
    assert_non_null(c1);
    struct h_conn *c2 = h_conn_hello(path, "via-proxy-2");
    assert_non_null(c2);
    assert_int_equal(h_conn_send(c1, "{\"op\":\"request\",\"id\":1,\"command\":\"echo\","
                                     "\"payload\":{\"who\":\"one\"}}"),
                     0);
    assert_int_equal(h_conn_send(c2, "{\"op\":\"request\",\"id\":1,\"command\":\"echo\","
                                     "\"payload\":{\"who\":\"two\"}}"),
                     0);
    cJSON *r = h_conn_expect(c1, "result", 1, 5000);
    assert_result_ok(r);
    assert_string_equal(h_json_str(r, "data.who"), "one");
    cJSON_Delete(r);
    r = h_conn_expect(c2, "result", 1, 5000);
    assert_result_ok(r);
    assert_string_equal(h_json_str(r, "data.who"), "two");
    cJSON_Delete(r);
    /* The broker sees them as two clients of their own. */
    assert_true(client_id("via-proxy-1") > 0 && client_id("via-proxy-2") > 0);

    /* A bad frame is forwarded as it is: the broker answers BadFrame, and
     * the connection goes on. */
    assert_int_equal(h_conn_send_raw(c1, bad_frame, sizeof(bad_frame)), 0);
    r = h_conn_expect(c1, "error", -1, 5000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "code"), "BadFrame");
    cJSON_Delete(r);
    assert_int_equal(h_conn_send(c1, "{\"op\":\"ping\",\"id\":2}"), 0);
    r = h_conn_expect(c1, "pong", 2, 5000);
    assert_non_null(r);
    cJSON_Delete(r);
    h_conn_close(c1);
    h_conn_close(c2);
    /* Each client named by its hello and pid from then on. */
    char n1[64], n2[64], to1[80], to2[80], who[96];
    snprintf(n1, sizeof(n1), "c1 via-proxy-1[%d]", (int)getpid());
    snprintf(n2, sizeof(n2), "c2 via-proxy-2[%d]", (int)getpid());
    snprintf(to1, sizeof(to1), "broker -> %s", n1);
    snprintf(to2, sizeof(to2), "broker -> %s", n2);
    snprintf(needle, sizeof(needle), "%s - closed", n1);
    assert_int_equal(h_proc_wait_stdout(proxy, needle, 5000), 0);
    snprintf(needle, sizeof(needle), "%s - closed", n2);
    assert_int_equal(h_proc_wait_stdout(proxy, needle, 5000), 0);

    char *out = h_proc_stdout(proxy);
    snprintf(who, sizeof(who), "c1 [%d] + connected", (int)getpid());
    snprintf(needle, sizeof(needle), "uid %u, gid %u", (unsigned)getuid(), (unsigned)getgid());
    assert_non_null(strstr(out, trace_text(who, needle)));
    snprintf(who, sizeof(who), "%s -> broker", n1);
    assert_non_null(strstr(out, trace_text(who, "{\"op\":\"hello\"")));
    assert_non_null(strstr(out, "\"name\":\"via-proxy-1\""));
    assert_non_null(strstr(out, trace_text(to1, "{\"op\":\"welcome\"")));
    assert_non_null(strstr(out, trace_text(who, "{\"op\":\"request\",\"id\":1,\"command\":\"echo\","
                                                "\"payload\":{\"who\":\"one\"}}")));
    assert_non_null(strstr(out, trace_text(to1, "{\"op\":\"result\",\"id\":1,\"ok\":true,"
                                                "\"data\":{\"who\":\"one\"}}")));
    assert_non_null(strstr(out, trace_text(to2, "{\"op\":\"result\",\"id\":1,\"ok\":true,"
                                                "\"data\":{\"who\":\"two\"}}")));
    snprintf(who, sizeof(who), "%s -> broker !", n1);
    assert_non_null(strstr(out, trace_text(who, "bad frame")));
    char *bf = strstr(out, trace_text(to1, "{\"op\":\"error\""));
    assert_non_null(bf);
    assert_non_null(strstr(bf, "BadFrame"));
    snprintf(who, sizeof(who), "%s -> broker", n1);
    assert_non_null(strstr(out, trace_text(who, "{\"op\":\"ping\",\"id\":2}")));
    snprintf(who, sizeof(who), "%s - closed", n1);
    assert_non_null(strstr(out, trace_text(who, "by the client")));
    free(out);

    /* A second proxy on the same path refuses: something listens there. */
    char *o2, *e2;
    inspect_expect(2, NULL, &o2, &e2, "-s", fx.broker.sock, "proxy", "--listen", path, NULL);
    assert_non_null(strstr(e2, "in use"));
    free(o2);
    free(e2);

    /* SIGTERM: exit 0 and the socket is gone. */
    assert_true(path_exists(path));
    assert_int_equal(h_proc_stop(proxy, SIGTERM, 3000), 0);
    assert_false(path_exists(path));

    /* A proxy killed outright leaves its socket; the next one replaces it. */
    proxy = start_proxy(path, false);
    assert_int_equal(h_proc_stop(proxy, SIGKILL, 3000), 128 + SIGKILL);
    assert_true(path_exists(path));
    proxy = start_proxy(path, false);
    c1 = h_conn_hello(path, "via-proxy-3");
    assert_non_null(c1);
    h_conn_close(c1);
    assert_int_equal(h_proc_stop(proxy, SIGINT, 3000), 0);
    assert_false(path_exists(path));
}

static void test_proxy_json(void **state)
{
    char path[H_PATH];
    (void)state;
    wait_ready();
    snprintf(path, sizeof(path), "%s/tap-json.sock", fx.broker.dir);
    struct h_proc *proxy = start_proxy(path, true);

    struct h_conn *c = h_conn_hello(path, "via-json-proxy");
    assert_non_null(c);
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":5,\"command\":\"echo\","
                                    "\"payload\":{\"bin\":{\"$bin\":\"AAEC\"}}}"),
                     0);
    cJSON *r = h_conn_expect(c, "result", 5, 5000);
    assert_result_ok(r);
    assert_string_equal(h_json_str(r, "data.bin.$bin"), "AAEC");
    cJSON_Delete(r);
    assert_int_equal(h_conn_send_raw(c, bad_frame, sizeof(bad_frame)), 0);
    r = h_conn_expect(c, "error", -1, 5000);
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "code"), "BadFrame");
    cJSON_Delete(r);

    /* A 3 MB answer, read late: more than the proxy holds per direction,
     * so it has to pass on the back pressure, and arrives whole. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":6,\"command\":\"binary\","
                                    "\"payload\":{\"size\":3000000},\"timeout_ms\":15000}"),
                     0);
    h_sleep_ms(300); /* the point: the answer is read late (back pressure) */
    r = h_conn_expect(c, "result", 6, 16000);
    assert_result_ok(r);
    const char *blob = h_json_str(r, "data.blob.$bin");
    assert_non_null(blob);
    assert_int_equal(strlen(blob), 4000000);    /* base64 of 3,000,000 bytes */
    assert_true(!strncmp(blob, "AAECAwQF", 8)); /* bytes 0, 1, 2, ... */
    cJSON_Delete(r);
    h_conn_close(c);
    assert_int_equal(h_proc_wait_stdout(proxy, "\"kind\":\"close\"", 5000), 0);

    char *out = h_proc_stdout(proxy);
    cJSON *lines = json_lines(out);
    free(out);
    bool open = false, hello = false, request = false, result = false, error_line = false,
         bad_answer = false, big = false, closed = false;
    cJSON *l;
    cJSON_ArrayForEach(l, lines)
    {
        /* The monitor's fields: the proxy's connection number as peer,
         * the client's credentials on every line. */
        const char *dir = h_json_str(l, "dir"), *kind = h_json_str(l, "kind");
        const char *op = h_json_str(l, "frame.op");
        assert_non_null(h_json_str(l, "time"));
        assert_true(h_json_num(l, "time_us", 0) > 1e15);
        assert_string_equal(h_json_str(l, "side"), "local");
        assert_int_equal((int)h_json_num(l, "peer", -1), 1);
        assert_int_equal((int)h_json_num(l, "pid", -1), (int)getpid());
        assert_int_equal((int)h_json_num(l, "uid", -1), (int)getuid());
        assert_non_null(kind);
        if (!strcmp(kind, "open")) {
            open = true;
            assert_non_null(strstr(h_json_str(l, "text"), "gid"));
        } else if (!strcmp(kind, "close")) {
            closed = true;
            assert_non_null(h_json_str(l, "text"));
        } else {
            assert_non_null(dir);
            bool to_broker = !strcmp(dir, "in");
            assert_true(to_broker || !strcmp(dir, "out"));
            if (!strcmp(kind, "error")) {
                error_line |= to_broker && h_json_str(l, "text");
                continue;
            }
            assert_string_equal(kind, "frame");
            assert_non_null(op);
            hello |= to_broker && !strcmp(op, "hello") &&
                     streq(h_json_str(l, "frame.name"), "via-json-proxy");
            request |= to_broker && !strcmp(op, "request") && h_json_num(l, "frame.id", -1) == 5 &&
                       streq(h_json_str(l, "frame.payload.bin.$bin"), "AAEC");
            result |= !to_broker && !strcmp(op, "result") &&
                      streq(h_json_str(l, "frame.data.bin.$bin"), "AAEC");
            bad_answer |= !to_broker && !strcmp(op, "error") &&
                          streq(h_json_str(l, "frame.code"), "BadFrame");
            const char *b = h_json_str(l, "frame.data.blob.$bin");
            big |= !to_broker && !strcmp(op, "result") && b && strlen(b) == 4000000;
        }
    }
    cJSON_Delete(lines);
    assert_true(open);
    assert_true(hello);
    assert_true(request);
    assert_true(result);
    assert_true(error_line);
    assert_true(bad_answer);
    assert_true(big);
    assert_true(closed);

    /* SIGINT: exit 0 and the socket is gone. */
    assert_int_equal(h_proc_stop(proxy, SIGINT, 3000), 0);
    assert_false(path_exists(path));
}

/* ---- 6: help and version (no broker needed) ---- */

static void test_help_and_version(void **state)
{
    char *out, *err;
    (void)state;
    static const struct {
        const char *args[3];
        const char *expect;
    } helps[] = {
        {{"--help"}, "Verbs:"},
        {{"-h"}, "Verbs:"},
        {{"help"}, "Verbs:"},
        {{"session", "--help"}, "Automatic ids"},
        {{"call", "--help"}, "Automatic ids"}, /* the old name still works */
        {{"help", "session"}, "Automatic ids"},
        {{"proxy", "--help"}, "--listen PATH"},
        {{"help", "proxy"}, "--listen PATH"},
        {{"monitor", "--help"}, "--match KEY=VALUE"},
        {{"status", "--help"}, "status map"},
        {{"request", "--help"}, "COMMAND [JSON|@FILE|-]"},
        {{"emit", "--help"}, "TYPE [JSON|@FILE|-]"},
        {{"subscribe", "--help"}, "--prefix PREFIX"},
        {{"serve", "--help"}, "--exec PROG [ARG...]"},
        {{"clients", "--help"}, "One line per client"},
        {{"handlers", "--help"}, "queue group"},
        {{"metrics", "--help"}, "OpenMetrics"},
    };
    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
        inspect_expect(0, NULL, &out, &err, helps[i].args[0], helps[i].args[1], NULL);
        assert_true(!strncmp(out, "Usage: volt-inspect", 19));
        if (!strstr(out, helps[i].expect))
            fprintf(stderr, "help for '%s %s' lacks '%s'\n", helps[i].args[0],
                    helps[i].args[1] ? helps[i].args[1] : "", helps[i].expect);
        assert_non_null(strstr(out, helps[i].expect));
        assert_string_equal(err, "");
        free(out);
        free(err);
    }

    inspect_expect(0, NULL, &out, &err, "--version", NULL);
    assert_true(
        !strncmp(out, "volt-inspect " VOLT_VERSION " ", strlen("volt-inspect " VOLT_VERSION " ")));
    assert_non_null(strstr(out, "local protocol 1"));
    free(out);
    free(err);

    /* Usage errors are 2, with a pointer to the help. */
    static const char *const bad[][3] = {
        {"frobnicate"},         {"proxy"},        {"--json", "call"},      {"--bogus"},
        {"--timeout", "soon"},  {"request"},      {"request", "--listen"}, {"serve", "x"},
        {"--count", "-1"},      {"--match", "x"}, {"--since", "5m"},       {"emit"},
        {"--duration", "soon"}, {"--jobs", "0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *argv[] = {"volt-inspect", bad[i][0], bad[i][1], NULL};
        assert_int_equal(h_run_input(argv, NULL, NULL, &out, &err, RUN_TIMEOUT_MS), 2);
        assert_string_equal(out, "");
        assert_non_null(strstr(err, "--help"));
        free(out);
        free(err);
    }
}

/* ---- 7: the verbs ---- */

/* POST /_dev/server-request in a child (the answer comes from a process
 * the test drives meanwhile); read_server_request() collects it. */
struct bg_request {
    pid_t pid;
    int fd;
};

static struct bg_request server_request_async(const char *body)
{
    int p[2];
    struct bg_request r;
    assert_int_equal(pipe(p), 0);
    r.pid = fork();
    assert_true(r.pid >= 0);
    if (r.pid == 0) {
        char *resp = NULL;
        close(p[0]);
        h_http(&fx.server, "POST", "/_dev/server-request", body, &resp);
        if (resp && write(p[1], resp, strlen(resp)) < 0)
            _exit(2);
        _exit(0);
    }
    close(p[1]);
    r.fd = p[0];
    return r;
}

static cJSON *read_server_request(struct bg_request r)
{
    char buf[65536];
    size_t n = 0;
    ssize_t got;
    int st;
    while ((got = read(r.fd, buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)got;
    buf[n] = '\0';
    close(r.fd);
    waitpid(r.pid, &st, 0);
    return cJSON_Parse(buf);
}

/* POST /_dev/server-request and wait: the dev server's whole answer. */
static cJSON *server_request(const char *command, const char *payload_json)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"command\":\"%s\",\"payload\":%s,\"timeoutMs\":8000}", command,
             payload_json);
    return read_server_request(server_request_async(body));
}

static void test_request_and_emit(void **state)
{
    char *out, *err, path[H_PATH];
    (void)state;
    wait_ready();

    /* Just the data, one line when piped. */
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "request", "echo",
                   "{\"x\":[1,2],\"s\":\"a b\"}", NULL);
    assert_string_equal(out, "{\"x\":[1,2],\"s\":\"a b\"}\n");
    assert_string_equal(err, "");
    free(out);
    free(err);
    /* --pretty indents; --raw gives the whole result frame. */
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "request", "echo", "{\"x\":[1]}",
                   "--pretty", NULL);
    assert_string_equal(out, "{\n  \"x\": [\n    1\n  ]\n}\n");
    free(out);
    free(err);
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "request", "--raw", "echo", "7",
                   NULL);
    assert_string_equal(out, "{\"op\":\"result\",\"id\":1,\"ok\":true,\"data\":7}\n");
    free(out);
    free(err);
    /* The payload from stdin and from a file. */
    inspect_expect(0, "{\"from\":\"stdin\"}", &out, &err, "-s", fx.broker.sock, "request", "echo",
                   "-", NULL);
    assert_string_equal(out, "{\"from\":\"stdin\"}\n");
    free(out);
    free(err);
    snprintf(path, sizeof(path), "%s/payload.json", fx.broker.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\n  \"from\": \"file\"\n}\n", f);
    fclose(f);
    char at[H_PATH + 1];
    snprintf(at, sizeof(at), "@%s", path);
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "request", "echo", at, NULL);
    assert_string_equal(out, "{\"from\":\"file\"}\n");
    free(out);
    free(err);

    /* Refused by the server: exit 1, code, message and the server's code
     * on stderr, nothing on stdout. */
    inspect_expect(1, NULL, &out, &err, "-s", fx.broker.sock, "request", "reject",
                   "{\"code\":\"E_NOPE\",\"message\":\"not today\"}", NULL);
    assert_string_equal(out, "");
    assert_non_null(
        strstr(err, "request reject: COMMAND_REJECTED: not today (server code E_NOPE)"));
    free(out);
    free(err);
    /* --timeout is the request's own: the broker answers COMMAND_TIMEOUT
     * (exit 4) at 300 ms, long before its commandTimeout (3 s). */
    uint64_t t0 = h_now_ms();
    inspect_expect(4, NULL, &out, &err, "-s", fx.broker.sock, "request", "never", "--timeout",
                   "300", NULL);
    uint64_t took = h_now_ms() - t0;
    assert_true(took >= 300 && took < (uint64_t)h_slack_ms(2500));
    assert_non_null(strstr(err, "COMMAND_TIMEOUT"));
    free(out);
    free(err);
    /* Bad input sends nothing: exit 2. */
    double before = server_requests();
    inspect_expect(2, NULL, &out, &err, "-s", fx.broker.sock, "request", "echo", "{oops", NULL);
    assert_non_null(strstr(err, "not JSON"));
    free(out);
    free(err);
    inspect_expect(2, NULL, &out, &err, "-s", fx.broker.sock, "request", "echo", "@/nonexistent/p",
                   NULL);
    assert_non_null(strstr(err, "cannot read /nonexistent/p"));
    free(out);
    free(err);
    assert_true(server_requests() == before);
    /* No broker: exit 3. */
    snprintf(path, sizeof(path), "%s/none.sock", fx.broker.dir);
    inspect_expect(3, NULL, &out, &err, "-s", path, "request", "echo", NULL);
    assert_non_null(strstr(err, "cannot connect"));
    free(out);
    free(err);

    /* emit: written upstream, the dev server received it. */
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "emit", "inspect.test", "{\"n\":5}",
                   NULL);
    assert_string_equal(out, "");
    free(out);
    free(err);
    cJSON *ev = h_http_json(&fx.server, "GET", "/_dev/events?kind=message_in&wait=5000", NULL);
    cJSON *e, *found = NULL;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(ev, "events"))
    {
        if (streq(h_json_str(e, "type"), "inspect.test"))
            found = e;
    }
    assert_non_null(found);
    assert_int_equal((int)h_json_num(found, "data.n", -1), 5);
    cJSON_Delete(ev);
}

static void test_subscribe(void **state)
{
    (void)state;
    wait_ready();
    struct h_proc *sub =
        start_inspect(NULL, "-s", fx.broker.sock, "-n", "sub-test", "subscribe", "--prefix", "sub.",
                      "--type", "exact-one", "--count", "3", NULL);
    /* Subscribed once the broker lists both filters. */
    uint64_t end = h_now_ms() + 5000;
    for (;;) {
        cJSON *st = h_status(fx.broker.sock);
        cJSON *c;
        int subs = 0;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "clients"))
        {
            if (streq(h_json_str(c, "name"), "sub-test"))
                subs = cJSON_GetArraySize(cJSON_GetObjectItem(c, "subscriptions"));
        }
        cJSON_Delete(st);
        if (subs == 2)
            break;
        assert_true(h_now_ms() < end);
        h_sleep_ms(20);
    }
    static const char *const msgs[] = {
        "{\"type\":\"sub.a\",\"data\":{\"i\":1}}",
        "{\"type\":\"other\",\"data\":2}",
        "{\"type\":\"exact-one\",\"data\":[3]}",
        "{\"type\":\"exact-one-not\",\"data\":4}",
        "{\"type\":\"sub.b\"}",
    };
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
        assert_int_equal(h_http(&fx.server, "POST", "/_dev/message", msgs[i], NULL), 200);
    /* --count 3: it stops by itself after the third matching one. */
    assert_int_equal(h_proc_stop(sub, 0, 5000), 0);
    /* --raw: the whole message frames. */
    struct h_proc *raw = start_inspect(NULL, "-s", fx.broker.sock, "-n", "sub-raw", "subscribe",
                                       "--type", "raw.one", "--raw", "--count", "1", NULL);
    end = h_now_ms() + 5000;
    for (;;) {
        assert_int_equal(h_http(&fx.server, "POST", "/_dev/message",
                                "{\"type\":\"raw.one\",\"data\":true}", NULL),
                         200);
        if (!h_proc_running(raw))
            break;
        assert_true(h_now_ms() < end);
        h_sleep_ms(50);
    }
    assert_int_equal(h_proc_stop(raw, 0, 5000), 0);
    char *raw_out = h_proc_stdout(raw);
    assert_string_equal(raw_out, "{\"op\":\"message\",\"data\":true,\"type\":\"raw.one\"}\n");
    free(raw_out);
    char *out = h_proc_stdout(sub);
    assert_string_equal(out, "{\"type\":\"sub.a\",\"data\":{\"i\":1}}\n"
                             "{\"type\":\"exact-one\",\"data\":[3]}\n"
                             "{\"type\":\"sub.b\",\"data\":null}\n");
    free(out);
}

static void test_clients_and_handlers(void **state)
{
    char *out, *err, want[160];
    (void)state;
    wait_ready();
    struct h_conn *a = h_conn_hello(fx.broker.sock, "svc-alpha");
    struct h_conn *b = h_conn_hello(fx.broker.sock, "svc-beta");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(h_conn_send(a, "{\"op\":\"register\",\"id\":1,\"commands\":[\"only-a\","
                                    "\"shared\"]}"),
                     0);
    assert_int_equal(h_conn_send(b, "{\"op\":\"register\",\"id\":1,\"commands\":[\"shared\"]}"), 0);
    assert_int_equal(h_conn_send(b, "{\"op\":\"subscribe\",\"id\":2,\"match\":\"prefix\","
                                    "\"type\":\"beta.\"}"),
                     0);
    cJSON *r = h_conn_expect(a, "result", 1, 5000);
    assert_result_ok(r);
    cJSON_Delete(r);
    r = h_conn_expect(b, "result", 2, 5000);
    assert_result_ok(r);
    cJSON_Delete(r);
    long long ida = client_id("svc-alpha"), idb = client_id("svc-beta");

    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "handlers", NULL);
    snprintf(want, sizeof(want), "only-a                   c%lld svc-alpha[%d]\n", ida,
             (int)getpid());
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "shared                   queue group of 2: "));
    free(out);
    free(err);
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "handlers", "--json", NULL);
    cJSON *lines = json_lines(out), *l, *shared = NULL;
    cJSON_ArrayForEach(l, lines)
    {
        if (streq(h_json_str(l, "command"), "shared"))
            shared = l;
    }
    assert_non_null(shared);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(shared, "group")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(shared, "clients")), 2);
    cJSON_Delete(lines);
    free(out);
    free(err);

    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "clients", NULL);
    snprintf(want, sizeof(want), "c%lld", idb);
    char *row = strstr(out, want);
    assert_non_null(row);
    assert_non_null(strstr(row, "svc-beta"));
    assert_non_null(strstr(row, "shared prefix:beta."));
    free(out);
    free(err);
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "clients", "--json", NULL);
    lines = json_lines(out);
    bool saw = false;
    cJSON_ArrayForEach(l, lines)
    {
        if (h_json_num(l, "id", -1) == (double)ida) {
            saw = true;
            assert_string_equal(h_json_str(l, "name"), "svc-alpha");
            assert_int_equal((int)h_json_num(l, "pid", -1), (int)getpid());
        }
    }
    assert_true(saw);
    cJSON_Delete(lines);
    free(out);
    free(err);

    /* Completion asks the broker for the commands it knows. */
    const char *argv[] = {"volt-inspect", "__complete", "-s", fx.broker.sock,
                          "request",      "sh",         NULL};
    assert_int_equal(h_run_input(argv, NULL, NULL, &out, &err, RUN_TIMEOUT_MS), 0);
    assert_string_equal(out, "shared\n");
    free(out);
    free(err);
    const char *argv2[] = {"volt-inspect", "__complete", "-s", fx.broker.sock, "emit", "", NULL};
    assert_int_equal(h_run_input(argv2, NULL, NULL, &out, &err, RUN_TIMEOUT_MS), 0);
    assert_string_equal(out, "beta.\n");
    free(out);
    free(err);
    h_conn_close(a);
    h_conn_close(b);
}

/* metrics: the broker's OpenMetrics text as it is, or (a broker that
 * does not know the op yet) UnknownOp with the hint for older brokers. */
static void test_metrics(void **state)
{
    char *out, *err;
    (void)state;
    wait_ready();
    const char *argv[] = {"volt-inspect", "-s", fx.broker.sock, "metrics", NULL};
    int rc = h_run_input(argv, NULL, NULL, &out, &err, RUN_TIMEOUT_MS);
    if (rc == 0) {
        size_t n = strlen(out);
        assert_true(n > 6 && !strcmp(out + n - 6, "# EOF\n"));
        assert_string_equal(err, "");
    } else {
        assert_int_equal(rc, 1);
        assert_string_equal(out, "");
        assert_non_null(strstr(err, "metrics: UnknownOp"));
        assert_non_null(strstr(err, "an older broker?"));
    }
    free(out);
    free(err);
}

/* ---- 8: serve ---- */

static void expect_served(const char *command, const char *payload, bool ok,
                          const char *data_or_msg)
{
    cJSON *r = server_request(command, payload);
    assert_non_null(r);
    cJSON *resp = cJSON_GetObjectItem(r, "response");
    if (cJSON_IsTrue(cJSON_GetObjectItem(resp, "success")) != ok) {
        char *t = cJSON_PrintUnformatted(r);
        fprintf(stderr, "%s: %s\n", command, t);
        free(t);
    }
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(resp, "success")), ok);
    if (ok) {
        char *t = cJSON_PrintUnformatted(cJSON_GetObjectItem(resp, "data"));
        assert_string_equal(t, data_or_msg);
        free(t);
    } else {
        assert_string_equal(h_json_str(resp, "error.code"), "HandlerError");
        assert_string_equal(h_json_str(resp, "error.message"), data_or_msg);
    }
    cJSON_Delete(r);
}

/* Waits until the broker lists `command` as registered. */
static void wait_handler(const char *command)
{
    uint64_t end = h_now_ms() + 5000;
    for (;;) {
        char *out, *err;
        const char *argv[] = {"volt-inspect", "-s", fx.broker.sock, "handlers", NULL};
        assert_int_equal(h_run_input(argv, NULL, NULL, &out, &err, RUN_TIMEOUT_MS), 0);
        bool there = false;
        for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
            there |= !strncmp(p, command, strlen(command)) && p[strlen(command)] == ' ';
        free(out);
        free(err);
        if (there)
            return;
        assert_true(h_now_ms() < end);
        h_sleep_ms(20);
    }
}

static void test_serve_reply(void **state)
{
    (void)state;
    wait_ready();
    struct h_proc *s = start_inspect(NULL, "-s", fx.broker.sock, "serve", "fixed-answer", "--reply",
                                     "{\"v\":1}", "--count", "2", NULL);
    wait_handler("fixed-answer");
    expect_served("fixed-answer", "{}", true, "{\"v\":1}");
    expect_served("fixed-answer", "[1]", true, "{\"v\":1}");
    /* --count 2: done, exit 0, the command given up. */
    assert_int_equal(h_proc_stop(s, 0, 5000), 0);
    char *err = h_proc_stderr(s);
    assert_non_null(strstr(err, "fixed-answer: ok"));
    free(err);
    cJSON *r = server_request("fixed-answer", "{}");
    assert_string_equal(h_json_str(r, "response.error.code"), "NoHandler");
    cJSON_Delete(r);
}

static void test_serve_exec(void **state)
{
    char marker[H_PATH], script[H_PATH + 128];
    (void)state;
    wait_ready();
    snprintf(marker, sizeof(marker), "%s/survived", fx.broker.dir);
    /* A service in a line of shell: the payload in, JSON out. */
    start_inspect(NULL, "-s", fx.broker.sock, "serve", "sh-echo", "--exec", "sh", "-c",
                  "read p; printf '{\"got\":%s,\"cmd\":\"%s\"}' \"$p\" \"$VOLT_COMMAND\"", NULL);
    /* Failing: its stderr is the message. */
    start_inspect(NULL, "-s", fx.broker.sock, "serve", "sh-fail", "--exec", "sh", "-c",
                  "echo 'disk on fire' >&2; exit 3", NULL);
    /* Crashing. */
    start_inspect(NULL, "-s", fx.broker.sock, "serve", "sh-crash", "--exec", "sh", "-c",
                  "kill -SEGV $$", NULL);
    /* Slow: killed at its limit with what it started (a marker that
     * would be written after 1 s). */
    snprintf(script, sizeof(script), "(sleep 1; touch %s) & sleep 30", marker);
    start_inspect(NULL, "-s", fx.broker.sock, "serve", "sh-slow", "--time-limit", "400", "--exec",
                  "sh", "-c", script, NULL);
    /* Two at once with --jobs 2: each call waits until the other has
     * started, so they can only both succeed if they run together. */
    char par_dir[H_PATH], par_script[2 * H_PATH + 160];
    snprintf(par_dir, sizeof(par_dir), "%s/par", fx.broker.dir);
    assert_int_equal(mkdir(par_dir, 0700), 0);
    snprintf(par_script, sizeof(par_script),
             "touch %s/$VOLT_CALL_ID; while [ \"$(ls %s | wc -l)\" -lt 2 ]; do sleep 0.02; done; "
             "echo $VOLT_CALL_ID",
             par_dir, par_dir);
    struct h_proc *par = start_inspect(NULL, "-s", fx.broker.sock, "serve", "sh-par", "--jobs", "2",
                                       "--exec", "sh", "-c", par_script, NULL);
    wait_handler("sh-echo");
    wait_handler("sh-fail");
    wait_handler("sh-crash");
    wait_handler("sh-slow");
    wait_handler("sh-par");

    expect_served("sh-echo", "{\"a\":[1,\"x\"]}", true,
                  "{\"got\":{\"a\":[1,\"x\"]},\"cmd\":\"sh-echo\"}");
    expect_served("sh-fail", "{}", false, "disk on fire");
    expect_served("sh-crash", "{}", false, "sh was killed by signal 11 (Segmentation fault)");
    uint64_t t0 = h_now_ms();
    expect_served("sh-slow", "{}", false, "sh did not finish within 400 ms (killed)");
    assert_true(h_now_ms() - t0 >= 400);

    struct bg_request r1 = server_request_async("{\"command\":\"sh-par\",\"timeoutMs\":8000}");
    struct bg_request r2 = server_request_async("{\"command\":\"sh-par\",\"timeoutMs\":8000}");
    cJSON *a1 = read_server_request(r1), *a2 = read_server_request(r2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(a1, "response"), "success")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(a2, "response"), "success")));
    /* Each got its own answer (its call id). */
    assert_true(h_json_num(a1, "response.data", -1) != h_json_num(a2, "response.data", -1));
    cJSON_Delete(a1);
    cJSON_Delete(a2);
    char *err = h_proc_stderr(par);
    assert_int_equal(count_lines(err), 3); /* "# serving" and two calls */
    free(err);

    /* The slow program's group was killed: its child never wrote. A
     * negative check: the child would have written within this time. */
    h_sleep_ms(1200);
    assert_false(path_exists(marker));
}

/* ---- 9: trace filters, counts and captures ---- */

static char *file_text_or_empty(const char *path)
{
    char *t = h_file_text(path);
    return t ? t : strdup("");
}

static void test_monitor_match_and_capture(void **state)
{
    char cap[H_PATH], notcap[H_PATH], *out, *err;
    (void)state;
    wait_ready();
    snprintf(cap, sizeof(cap), "%s/trace.vcap", fx.broker.dir);
    struct h_proc *mon = start_inspect(NULL, "-s", fx.broker.sock, "-n", "mon-cap", "monitor",
                                       "--match", "client=cap-*", "--write", cap, NULL);
    /* Ready once the probe's pong shows (the probe matches cap-*). */
    struct h_conn *probe = h_conn_hello(fx.broker.sock, "cap-probe");
    assert_non_null(probe);
    wait_monitors_ready(probe, &mon, 1);
    h_conn_close(probe);

    struct h_conn *c = h_conn_hello(fx.broker.sock, "cap-target");
    struct h_conn *other = h_conn_hello(fx.broker.sock, "not-shown");
    assert_non_null(c);
    assert_non_null(other);
    assert_int_equal(h_conn_send(other, "{\"op\":\"ping\",\"id\":77}"), 0);
    cJSON *r = h_conn_expect(other, "pong", 77, 5000);
    assert_non_null(r);
    cJSON_Delete(r);
    /* The daemon password, asked for through the broker: the client gets
     * it, the trace and the capture do not. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"credential\",\"id\":2,\"name\":\"daemonPassword\"}"),
                     0);
    r = h_conn_expect(c, "result", 2, 5000);
    assert_string_equal(h_json_str(r, "data"), "dev-password");
    cJSON_Delete(r);
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":3,\"command\":\"echo\","
                                    "\"payload\":\"captured\"}"),
                     0);
    r = h_conn_expect(c, "result", 3, 5000);
    assert_result_ok(r);
    cJSON_Delete(r);
    char who[96];
    snprintf(who, sizeof(who), "broker -> c%lld cap-target[%d]", client_id("cap-target"),
             (int)getpid());
    assert_int_equal(h_proc_wait_stdout(mon, trace_text(who, "{\"op\":\"result\",\"id\":3,"), 5000),
                     0);
    assert_int_equal(h_proc_stop(mon, SIGTERM, 3000), 128 + SIGTERM);
    char *live = h_proc_stdout(mon);
    /* Only cap-* lines: no server side, nobody else. */
    assert_null(strstr(live, "not-shown"));
    assert_null(strstr(live, "server -> broker"));
    assert_non_null(strstr(live, "\"payload\":\"captured\""));
    assert_null(strstr(live, "dev-password"));
    assert_non_null(
        strstr(live, "{\"op\":\"result\",\"id\":2,\"ok\":true,\"data\":\"(redacted)\"}"));
    h_conn_close(c);
    h_conn_close(other);

    /* The capture replays byte for byte, with no broker needed; the
     * password is not in it either. */
    {
        FILE *cf = fopen(cap, "rb");
        char chunk[65536];
        size_t got = cf ? fread(chunk, 1, sizeof(chunk), cf) : 0;
        assert_non_null(cf);
        fclose(cf);
        assert_true(got > 12);
        assert_null(memmem(chunk, got, "dev-password", 12));
    }
    inspect_expect(0, NULL, &out, &err, "monitor", "--read", cap, NULL);
    assert_string_equal(out, live);
    free(out);
    free(err);
    inspect_expect(0, NULL, &out, &err, "proxy", "--read", cap, NULL); /* either verb reads it */
    assert_string_equal(out, live);
    free(out);
    free(err);
    /* Replayed through the same filters, --count and --json. */
    inspect_expect(0, NULL, &out, &err, "monitor", "--read", cap, "--match", "name=cap-target",
                   "--match", "op=nothing", "--count", "2", "--json", NULL);
    cJSON *lines = json_lines(out);
    assert_int_equal(cJSON_GetArraySize(lines), 2);
    cJSON *l;
    cJSON_ArrayForEach(l, lines)
    {
        assert_string_equal(h_json_str(l, "name"), "cap-target");
        assert_int_equal((int)h_json_num(l, "pid", -1), (int)getpid());
    }
    assert_string_equal(h_json_str(cJSON_GetArrayItem(lines, 0), "frame.op"), "hello");
    /* --since the second line's time: the first is left out. */
    char since[64];
    snprintf(since, sizeof(since), "%s", h_json_str(cJSON_GetArrayItem(lines, 1), "time"));
    cJSON_Delete(lines);
    free(out);
    free(err);
    inspect_expect(0, NULL, &out, &err, "monitor", "--read", cap, "--match", "name=cap-target",
                   "--since", since, "--count", "1", "--json", NULL);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, since));
    free(out);
    free(err);
    inspect_expect(0, NULL, &out, &err, "monitor", "--read", cap, "--since", "+1h", NULL);
    assert_string_equal(out, "");
    free(out);
    free(err);

    /* Not a capture; a cut one; usage errors. */
    snprintf(notcap, sizeof(notcap), "%s/not.vcap", fx.broker.dir);
    FILE *f = fopen(notcap, "w");
    fputs("{\"op\":\"trace\"}\n", f);
    fclose(f);
    inspect_expect(2, NULL, &out, &err, "monitor", "--read", notcap, NULL);
    assert_non_null(strstr(err, "not a volt-inspect capture file"));
    free(out);
    free(err);
    char *bytes = file_text_or_empty(cap);
    size_t n = 0;
    { /* the capture has NULs: take its size from the file */
        struct stat st;
        assert_int_equal(stat(cap, &st), 0);
        n = (size_t)st.st_size;
    }
    free(bytes);
    assert_int_equal(truncate(cap, (off_t)(n - 5)), 0);
    inspect_expect(2, NULL, &out, &err, "monitor", "--read", cap, NULL);
    assert_non_null(strstr(err, "truncated record"));
    assert_true(count_lines(out) == count_lines(live) - 1); /* all but the cut one */
    free(out);
    free(err);
    inspect_expect(2, NULL, &out, &err, "monitor", "--read", cap, "--write", notcap, NULL);
    free(out);
    free(err);
    inspect_expect(2, NULL, &out, &err, "monitor", "--since", "+1s", NULL);
    assert_non_null(strstr(err, "--since is for --read"));
    free(out);
    free(err);
    free(live);

    /* --duration ends a quiet monitor by itself, exit 0. */
    uint64_t t0 = h_now_ms();
    inspect_expect(0, NULL, &out, &err, "-s", fx.broker.sock, "monitor", "--duration", "300ms",
                   "--match", "client=nobody", NULL);
    assert_true(h_now_ms() - t0 >= 300);
    assert_string_equal(out, "");
    free(out);
    free(err);
}

static void test_proxy_count_and_capture(void **state)
{
    char path[H_PATH], cap[H_PATH], *out, *err;
    (void)state;
    wait_ready();
    snprintf(path, sizeof(path), "%s/tap-cap.sock", fx.broker.dir);
    snprintf(cap, sizeof(cap), "%s/proxy.vcap", fx.broker.dir);
    /* Frames only (no open/close), the first four: hello, welcome, the
     * connected event and the request; then the proxy ends by itself. */
    struct h_proc *proxy =
        start_inspect(NULL, "-s", fx.broker.sock, "proxy", "--listen", path, "--match",
                      "kind=frame", "--count", "4", "--write", cap, NULL);
    assert_int_equal(h_proc_wait_stderr(proxy, "# proxying", 5000), 0);
    struct h_conn *c = h_conn_hello(path, "proxied");
    assert_non_null(c);
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":1,\"command\":\"echo\"}"), 0);
    assert_int_equal(h_proc_stop(proxy, 0, 5000), 0);
    assert_false(path_exists(path));
    h_conn_close(c);
    char *live = h_proc_stdout(proxy);
    assert_int_equal(count_lines(live), 4);
    char who[96];
    snprintf(who, sizeof(who), "c1 proxied[%d] -> broker", (int)getpid());
    assert_non_null(strstr(live, trace_text(who, "{\"op\":\"request\",\"id\":1,")));
    inspect_expect(0, NULL, &out, &err, "proxy", "--read", cap, NULL);
    assert_string_equal(out, live);
    free(out);
    free(err);
    free(live);
}

/* ---- 10: the interactive session, through a pseudo-terminal ---- */

struct pty {
    pid_t pid;
    int fd;
    char *screen; /* everything it wrote, escape sequences removed */
    size_t len, cap;
    bool in_escape;
};

/* Appends output with CSI/ESC sequences and carriage returns left out,
 * so what a person would read can be searched for. */
static void pty_take(struct pty *t, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (t->in_escape) {
            if ((ch >= '@' && ch <= '~' && ch != '[') || ch == '\a')
                t->in_escape = false;
            continue;
        }
        if (ch == '\033') {
            t->in_escape = true;
            continue;
        }
        if (ch == '\r' || ch == '\a' || ch == '\b' || ch == '\0') /* NUL: terminal padding */
            continue;
        if (t->len + 2 > t->cap) {
            t->cap = t->cap ? t->cap * 2 : 65536;
            t->screen = realloc(t->screen, t->cap);
            assert_non_null(t->screen);
        }
        t->screen[t->len++] = ch;
        t->screen[t->len] = '\0';
    }
}

static void pty_read(struct pty *t, int timeout_ms)
{
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    char buf[4096];
    if (poll(&p, 1, timeout_ms) > 0) {
        ssize_t n = read(t->fd, buf, sizeof(buf));
        if (n > 0)
            pty_take(t, buf, (size_t)n);
    }
}

/* Waits until the screen (from `from` on) shows needle; its offset. */
static size_t pty_wait(struct pty *t, size_t from, const char *needle, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        const char *at = t->len > from ? strstr(t->screen + from, needle) : NULL;
        if (at)
            return (size_t)(at - t->screen);
        if (h_now_ms() >= end) {
            fprintf(stderr, "the screen never showed '%s'; it shows:\n%s\n", needle,
                    t->screen ? t->screen : "");
            fail();
        }
        pty_read(t, 50);
    }
}

static void pty_keys(struct pty *t, const char *keys)
{
    size_t n = strlen(keys);
    assert_int_equal(write(t->fd, keys, n), (ssize_t)n);
}

/* Types keys at a fresh prompt, once the line editor has the terminal
 * in raw mode (typed before that, the terminal would echo them itself:
 * libedit draws the prompt first, then sets the mode). */
static size_t pty_line(struct pty *t, size_t at, const char *keys)
{
    struct termios tio;
    uint64_t end = h_now_ms() + 5000;
    at = pty_wait(t, at, "volt> ", 5000);
    for (;;) {
        assert_int_equal(tcgetattr(t->fd, &tio), 0);
        if (!(tio.c_lflag & ICANON))
            break;
        assert_true(h_now_ms() < end);
        pty_read(t, 10);
    }
    pty_keys(t, keys);
    return at;
}

static void pty_start_args(struct pty *t, const char *home, const char *extra);

static void pty_start(struct pty *t, const char *home)
{
    pty_start_args(t, home, NULL);
}

/* The shell in a pseudo-terminal, with one extra argument (or NULL). */
static void pty_start_args(struct pty *t, const char *home, const char *extra)
{
    char hist[H_PATH + 16], homevar[H_PATH + 8];
    struct winsize ws = {.ws_row = 50, .ws_col = 250};
    memset(t, 0, sizeof(*t));
    snprintf(hist, sizeof(hist), "VOLT_INSPECT_HISTORY=%s/history", home);
    snprintf(homevar, sizeof(homevar), "HOME=%s", home);
    t->pid = forkpty(&t->fd, NULL, NULL, &ws);
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        const char *argv[] = {"volt-inspect", "-s", fx.broker.sock, "-n", "pty-shell", extra, NULL};
        putenv("TERM=vt100");
        putenv(hist);
        putenv(homevar);
        execv(h_bin("volt-inspect"), (char **)argv);
        _exit(127);
    }
}

/* Ctrl-D: the shell ends; its exit status. */
static int pty_end(struct pty *t)
{
    int st = -1;
    uint64_t end = h_now_ms() + 5000;
    pty_keys(t, "\004");
    while (h_now_ms() < end) {
        if (waitpid(t->pid, &st, WNOHANG) == t->pid)
            break;
        pty_read(t, 50);
    }
    if (h_now_ms() >= end) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &st, 0);
    }
    close(t->fd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_interactive_shell(void **state)
{
    struct pty t;
    size_t at;
    (void)state;
    wait_ready();
    /* A command for completion to find, served by another client. */
    struct h_conn *svc = h_conn_hello(fx.broker.sock, "pty-helper");
    assert_non_null(svc);
    assert_int_equal(
        h_conn_send(svc, "{\"op\":\"register\",\"id\":1,\"commands\":[\"pty-known\"]}"), 0);
    cJSON *r = h_conn_expect(svc, "result", 1, 5000);
    assert_result_ok(r);
    cJSON_Delete(r);

    pty_start(&t, fx.broker.dir);
    at = pty_wait(&t, 0, "# connected", 5000);
    pty_wait(&t, 0, "{\"op\":\"event\",\"event\":\"connected\"", 5000);

    /* Tab completes the verb, then a command the broker knows. */
    at = pty_line(&t, at, "req\t");
    at = pty_wait(&t, at, "volt> request ", 5000);
    pty_keys(&t, "pty-k\t");
    at = pty_wait(&t, at, "pty-known ", 5000);
    pty_keys(&t, "\025"); /* Ctrl-U: the line is dropped */
    pty_keys(&t, "request echo {\"k\":1}\r");
    at = pty_wait(&t, at, "# sent as #1", 5000);
    at = pty_wait(&t, at, "#1 < {\"op\":\"result\",\"id\":1,\"ok\":true,\"data\":{\"k\":1}}", 5000);

    /* Inside a frame, Tab completes the op. */
    at = pty_line(&t, at, "{\"op\":\"pi\t");
    at = pty_wait(&t, at, "{\"op\":\"ping\"", 5000);
    pty_keys(&t, "}\r");
    at = pty_wait(&t, at, "#2 < {\"op\":\"pong\",\"id\":2}", 5000);

    /* A call: shown with its call id, answered with `reply`. */
    at = pty_line(&t, at, "register pty-svc\r");
    at = pty_wait(&t, at, "#3 < {\"op\":\"result\",\"id\":3,\"ok\":true}", 5000);
    struct bg_request req =
        server_request_async("{\"command\":\"pty-svc\",\"payload\":{\"q\":1},\"timeoutMs\":8000}");
    at = pty_wait(&t, at, "< {\"op\":\"call\",\"id\":", 8000);
    assert_true(t.screen[at - 2] == ' ' || t.screen[at - 1] == ' ');
    pty_wait(&t, at, "reply ok JSON | reply fail CODE MESSAGE", 5000);
    at = pty_line(&t, at, "reply o\t");
    at = pty_wait(&t, at, "reply ok ", 5000);
    pty_keys(&t, "{\"answer\":42}\r");
    cJSON *resp = read_server_request(req);
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "response"), "success")));
    assert_int_equal((int)h_json_num(resp, "response.data.answer", -1), 42);
    cJSON_Delete(resp);
    /* A second call answered as failed. */
    req = server_request_async("{\"command\":\"pty-svc\",\"timeoutMs\":8000}");
    at = pty_wait(&t, at, "< {\"op\":\"call\",\"id\":", 8000);
    at = pty_line(&t, at, "reply fail HandlerError not today\r");
    resp = read_server_request(req);
    assert_string_equal(h_json_str(resp, "response.error.code"), "HandlerError");
    assert_string_equal(h_json_str(resp, "response.error.message"), "not today");
    cJSON_Delete(resp);
    at = pty_line(&t, at, "reply ok\r");
    at = pty_wait(&t, at, "# no call to reply to", 5000);

    /* A message while a line is half typed: printed above it, and the
     * line is still there to finish. */
    at = pty_line(&t, at, "subscribe pty.*\r");
    at = pty_wait(&t, at, "#4 < {\"op\":\"result\",\"id\":4,\"ok\":true}", 5000);
    at = pty_line(&t, at, "sta");
    pty_wait(&t, at, "volt> sta", 5000);
    assert_int_equal(h_http(&fx.server, "POST", "/_dev/message",
                            "{\"type\":\"pty.async\",\"data\":{\"z\":1}}", NULL),
                     200);
    at = pty_wait(&t, at, "\"type\":\"pty.async\"", 5000);
    pty_keys(&t, "tus\r");
    at =
        pty_wait(&t, at, "#5 < {\"op\":\"result\",\"id\":5,\"ok\":true,\"data\":{\"broker\"", 5000);

    /* Bad input is refused with a reason, nothing sent. */
    at = pty_line(&t, at, "frobnicate\r");
    at = pty_wait(&t, at, "# unknown command 'frobnicate'", 5000);
    at = pty_line(&t, at, "{\"op\":\r");
    at = pty_wait(&t, at, "nothing sent", 5000);
    /* A line with a leading space stays out of the history. */
    at = pty_line(&t, at, " ping\r");
    at = pty_wait(&t, at, "< {\"op\":\"pong\"", 5000);
    assert_int_equal(pty_end(&t), 0);
    free(t.screen);

    /* History, kept per user: the next session recalls the last line
     * with the up arrow (the ping typed with a space is not there). */
    char hist[H_PATH + 16];
    snprintf(hist, sizeof(hist), "%s/history", fx.broker.dir);
    char *h = h_file_text(hist);
    assert_non_null(h);
    assert_non_null(strstr(h, "register\\040pty-svc"));
    assert_null(strstr(h, " ping"));
    assert_null(strstr(h, "\\040ping"));
    free(h);
    struct stat st;
    assert_int_equal(stat(hist, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    pty_start(&t, fx.broker.dir);
    at = pty_wait(&t, 0, "# connected", 5000);
    at = pty_line(&t, at, "\033[A");
    at = pty_wait(&t, at, "volt> {\"op\":", 5000);
    /* Newest first: the bad frame, frobnicate, status, subscribe. */
    pty_keys(&t, "\033[A\033[A\033[A");
    at = pty_wait(&t, at, "subscribe pty.*", 5000);
    pty_keys(&t, "\r");
    at = pty_wait(&t, at, "#1 < {\"op\":\"result\",\"id\":1,\"ok\":true}", 5000);
    at = pty_line(&t, at, "quit\r");
    uint64_t end = h_now_ms() + 5000;
    int wst = -1;
    while (h_now_ms() < end && waitpid(t.pid, &wst, WNOHANG) != t.pid)
        pty_read(&t, 50);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    close(t.fd);
    free(t.screen);
    h_conn_close(svc);

    /* --no-edit: plain JSON lines even on a terminal (no prompt, no
     * short commands). */
    pty_start_args(&t, fx.broker.dir, "--no-edit");
    at = pty_wait(&t, 0, "{\"op\":\"welcome\"", 5000);
    pty_keys(&t, "{\"op\":\"ping\"}\r");
    at = pty_wait(&t, at, "{\"op\":\"pong\",\"id\":1}", 5000);
    pty_keys(&t, "status\r");
    at = pty_wait(&t, at, "not valid JSON", 5000);
    assert_null(strstr(t.screen, "volt> "));
    assert_int_equal(pty_end(&t), 2); /* a bad line was typed */
    free(t.screen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test_setup_teardown(test_oneshot_answers_and_exit_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oneshot_bad_input_and_no_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_piped_stdin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_wait_and_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_monitors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_and_emit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients_and_handlers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_exec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_match_and_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_count_and_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interactive_shell, setup, teardown),
    };
    h_apply_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
