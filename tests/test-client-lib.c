/* libvoltclient end to end: the TypeScript client's API in C, against a
 * real volt-broker and the real socket.io dev server. Includes the broker
 * restarting under a connected client, the README's first program against
 * a broker that has just started, connect returning the upstream's own
 * error, the broker's commandTimeout, answers from worker threads, and
 * each loop adapter (libuv, libevent, sd-event). */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <volt/adapters/libevent.h>
#include <volt/adapters/libuv.h>
#include <volt/adapters/sd-event.h>
#include <volt/client.h>

#include "harness.h"

static struct h_server server;
static struct h_broker broker;

static const char *const config =
    "{\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
    "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"},"
    "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"
    "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\"}}";

static int setup(void **state)
{
    (void)state;
    if (h_server_start(&server, NULL) < 0 || h_broker_start(&broker, &server, config, NULL) < 0)
        return -1;
    return h_wait_state(broker.sock, "ready", h_slack_ms(15000));
}

/* The dev server only: the test starts the broker itself. */
static int setup_server(void **state)
{
    (void)state;
    memset(&broker, 0, sizeof broker);
    return h_server_start(&server, NULL);
}

static int teardown(void **state)
{
    (void)state;
    int rc = broker.pid > 0 ? h_broker_stop(&broker, 15000) : 0;
    h_broker_cleanup(&broker);
    h_server_stop(&server);
    return rc == 0 ? 0 : -1;
}

static volt_client *new_client(const char *name)
{
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = broker.sock;
    o.name = name;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 200;
    volt_client *c = volt_client_new(&o);
    assert_non_null(c);
    return c;
}

/* Runs the client's loop until *flag is set or timeout. */
static void run_until(volt_client *c, const int *flag, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    while (!*flag && h_now_ms() < end)
        volt_client_run_for(c, 20);
}

/* ---- connect, sendCommand ---- */

static void test_connect_and_send_command(void **state)
{
    (void)state;
    volt_client *c = new_client("t-lib");
    volt_result *r = NULL;

    assert_int_equal(volt_client_connect_blocking(c, 5000), 0);
    assert_int_equal(volt_client_wait_ready(c, 5000), 0);
    assert_int_equal(volt_client_is_ready(c), 1);
    assert_non_null(strstr(volt_client_broker_name(c), "volt-broker/"));
    assert_string_equal(volt_client_upstream_state(c), "ready");
    /* Protocol v2: known from welcome/connected, no round trip. */
    assert_string_equal(volt_client_team_cluster_id(c), "cluster-dev");
    assert_int_equal(volt_client_command_timeout_ms(c), 30000);

    assert_int_equal(volt_send_command_json_sync(c, "echo", "{\"n\":9007199254740991}", 5000, &r),
                     0);
    assert_non_null(r);
    assert_string_equal(r->json, "{\"n\":9007199254740991}");
    volt_result_free(r);

    assert_int_equal(
        volt_send_command_json_sync(c, "reject", "{\"code\":\"E1\",\"message\":\"m\"}", 5000, &r),
        VOLT_E_COMMAND_REJECTED);
    assert_string_equal(r->code_name, "COMMAND_REJECTED");
    assert_string_equal(r->server_code, "E1");
    assert_string_equal(r->message, "m");
    volt_result_free(r);

    assert_int_equal(volt_send_command_json_sync(c, "never", NULL, 300, &r),
                     VOLT_E_COMMAND_TIMEOUT);
    volt_result_free(r);
    assert_string_equal(volt_err_name(VOLT_E_SOCKET_NOT_READY), "SOCKET_NOT_READY");
    assert_non_null(volt_strerror(VOLT_E_HANDLER_ERROR));
    volt_client_free(c);
}

struct async_state {
    int done;
    int code;
    char json[256];
};

static void on_result(volt_client *c, const volt_result *r, void *priv)
{
    struct async_state *s = priv;
    (void)c;
    s->code = r->code;
    snprintf(s->json, sizeof(s->json), "%s", r->json ? r->json : "");
    s->done++;
}

static void test_async_send_and_emit(void **state)
{
    (void)state;
    volt_client *c = new_client("t-async");
    struct async_state s = {0};
    assert_int_equal(volt_client_connect_blocking(c, 5000), 0);
    assert_int_equal(volt_client_wait_ready(c, 5000), 0);
    assert_int_equal(volt_send_command_json(c, "slow", "{\"ms\":100}", 5000, on_result, &s), 0);
    assert_int_equal(s.done, 0); /* never from inside the call */
    run_until(c, &s.done, 5000);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.code, 0);

    assert_int_equal(volt_emit_json(c, "lib.emit", "{\"k\":\"v-123\"}"), 0);
    assert_int_equal(volt_client_flush(c, 2000), 0);
    bool found = false;
    uint64_t end = h_now_ms() + (uint64_t)h_slack_ms(5000);
    for (;;) {
        cJSON *ev = h_http_json(&server, "GET", "/_dev/events?since=0&kind=message_in", NULL);
        char *t = cJSON_PrintUnformatted(ev);
        found = t && strstr(t, "v-123");
        free(t);
        cJSON_Delete(ev);
        if (found || h_now_ms() >= end)
            break;
        h_sleep_ms(50);
    }
    if (!found)
        fail_msg("the server has no message_in with v-123 after %d ms", h_slack_ms(5000));
    volt_client_free(c);
}

/* ---- registerHandler, with an answer given later ---- */

static volt_call *held_call;

static void on_list_files(volt_client *c, volt_call *call, void *priv)
{
    (void)c;
    (void)priv;
    held_call = call; /* answered later, outside the callback */
}

static bool server_has_handler(void *arg)
{
    cJSON *st = h_http_json(&server, "GET", "/_dev/state", NULL);
    char *t = cJSON_PrintUnformatted(st);
    bool ok = t && strstr(t, (const char *)arg);
    free(t);
    cJSON_Delete(st);
    return ok;
}

static pid_t server_request_child(const char *body, const char *want_path, const char *want)
{
    pid_t pid = fork();
    if (pid == 0) {
        cJSON *x = h_http_json(&server, "POST", "/_dev/server-request", body);
        const char *v = x ? h_json_str(x, want_path) : NULL;
        _exit(v && !strcmp(v, want) ? 0 : 1);
    }
    return pid;
}

static int child_status(pid_t pid)
{
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_handler_replies_later(void **state)
{
    (void)state;
    volt_client *c = new_client("t-handler");
    assert_int_equal(volt_register_handler(c, "list-files", on_list_files, NULL), 0);
    assert_int_equal(volt_client_connect_blocking(c, 5000), 0);
    for (int i = 0; i < 50 && !server_has_handler("list-files"); i++)
        volt_client_run_for(c, 20);
    assert_true(server_has_handler("list-files"));

    held_call = NULL;
    pid_t child = server_request_child("{\"command\":\"list-files\",\"payload\":{\"path\":\"/x\"}}",
                                       "response.data.0", "late.txt");
    uint64_t end = h_now_ms() + 5000;
    while (!held_call && h_now_ms() < end)
        volt_client_run_for(c, 20);
    assert_non_null(held_call);
    assert_string_equal(volt_call_command(held_call), "list-files");
    assert_string_equal(volt_call_payload_json(held_call), "{\"path\":\"/x\"}");
    volt_client_run_for(c, 200); /* the answer comes later */
    assert_int_equal(volt_call_reply_json(held_call, "[\"late.txt\"]"), 0);
    held_call = NULL;
    assert_int_equal(volt_client_flush(c, 2000), 0);
    assert_int_equal(child_status(child), 0);

    /* unregister: NoHandler from then on */
    assert_int_equal(volt_unregister_handler(c, "list-files"), 0);
    volt_client_run_for(c, 200);
    cJSON *x = h_http_json(&server, "POST", "/_dev/server-request", "{\"command\":\"list-files\"}");
    assert_string_equal(h_json_str(x, "response.error.code"), "NoHandler");
    cJSON_Delete(x);
    volt_client_free(c);
}

/* ---- onMessage, events, credentials, status ---- */

struct seen {
    int messages;
    int connected;
    int disconnected;
    char last_type[64];
    char last_json[256];
    char reason[128];
};

static void on_msg(volt_client *c, const volt_message *m, void *priv)
{
    struct seen *s = priv;
    (void)c;
    s->messages++;
    snprintf(s->last_type, sizeof(s->last_type), "%s", m->type);
    snprintf(s->last_json, sizeof(s->last_json), "%s", m->json ? m->json : "");
}

static void on_conn(volt_client *c, void *priv)
{
    (void)c;
    ((struct seen *)priv)->connected++;
}

static void on_disc(volt_client *c, const char *reason, void *priv)
{
    struct seen *s = priv;
    (void)c;
    s->disconnected++;
    snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
}

static void test_messages_events_credentials(void **state)
{
    (void)state;
    volt_client *c = new_client("t-events");
    struct seen s = {0};
    char *text = NULL;

    volt_on_connected(c, on_conn, &s);
    volt_on_disconnected(c, on_disc, &s);
    assert_true(volt_on_message(c, VOLT_MATCH_PREFIX, "session.", VOLT_MESSAGE_JSON, on_msg, &s) >
                0);
    assert_int_equal(volt_client_connect_blocking(c, 5000), 0);
    run_until(c, &s.connected, 5000);
    assert_int_equal(s.connected, 1);

    assert_int_equal(
        h_http(&server, "POST", "/_dev/message", "{\"type\":\"other\",\"data\":1}", NULL), 200);
    assert_int_equal(h_http(&server, "POST", "/_dev/message",
                            "{\"type\":\"session.in\",\"data\":{\"a\":1}}", NULL),
                     200);
    run_until(c, &s.messages, 5000);
    volt_client_run_for(c, 100);
    assert_int_equal(s.messages, 1);
    assert_string_equal(s.last_type, "session.in");
    assert_string_equal(s.last_json, "{\"a\":1}");

    assert_int_equal(h_http(&server, "POST", "/_dev/disconnect", "{\"mode\":\"transport\"}", NULL),
                     200);
    run_until(c, &s.disconnected, 5000);
    assert_int_equal(s.disconnected, 1);
    assert_true(s.reason[0] != '\0');
    int want = 2;
    uint64_t end = h_now_ms() + 10000;
    while (s.connected < want && h_now_ms() < end)
        volt_client_run_for(c, 20);
    assert_int_equal(s.connected, 2);

    assert_int_equal(volt_get_team_cluster_id_sync(c, 2000, &text), 0);
    assert_string_equal(text, "cluster-dev");
    volt_free(text);
    assert_int_equal(volt_get_daemon_password_sync(c, 2000, &text), 0);
    assert_string_equal(text, "dev-password");
    volt_free_secret(text);
    assert_int_equal(volt_status_sync(c, 2000, &text), 0);
    assert_non_null(strstr(text, "\"t-events\""));
    volt_free(text);
    assert_int_equal(volt_ping_sync(c, 2000), 0);
    volt_client_free(c);
}

/* ---- the broker restarts under connected clients ---- */

static void echo_handler(volt_client *c, volt_call *call, void *priv)
{
    (void)c;
    (void)priv;
    volt_call_reply_json(call, "\"pong\"");
}

static void test_broker_restart(void **state)
{
    (void)state;
    volt_client *c = new_client("t-restart");
    struct seen s = {0};
    struct async_state pending = {0};

    assert_int_equal(volt_register_handler(c, "ping-me", echo_handler, NULL), 0);
    assert_true(volt_on_message(c, VOLT_MATCH_EXACT, "restart.msg", VOLT_MESSAGE_JSON, on_msg, &s) >
                0);
    assert_int_equal(volt_client_connect_blocking(c, 5000), 0);
    assert_int_equal(volt_client_wait_ready(c, 5000), 0);

    /* a request in flight when the broker goes away fails with
     * SOCKET_NOT_READY, as in every client library */
    assert_int_equal(volt_send_command_json(c, "never", NULL, 20000, on_result, &pending), 0);
    volt_client_run_for(c, 200);
    assert_int_equal(h_broker_stop(&broker, 15000), 0);
    run_until(c, &pending.done, 5000);
    assert_int_equal(pending.done, 1);
    assert_int_equal(pending.code, VOLT_E_SOCKET_NOT_READY);
    assert_int_equal(volt_client_is_connected(c), 0);

    /* the broker comes back; the client reconnects and re-registers by itself */
    assert_int_equal(h_broker_restart(&broker, &server, NULL), 0);
    assert_int_equal(volt_client_wait_ready(c, 15000), 0);
    for (int i = 0; i < 100 && !server_has_handler("ping-me"); i++)
        volt_client_run_for(c, 20);
    assert_true(server_has_handler("ping-me"));
    pid_t child = server_request_child("{\"command\":\"ping-me\"}", "response.data", "pong");
    uint64_t end = h_now_ms() + 5000;
    int st = -1;
    while (h_now_ms() < end) {
        volt_client_run_for(c, 20);
        if (waitpid(child, &st, WNOHANG) == child)
            break;
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(
        h_http(&server, "POST", "/_dev/message", "{\"type\":\"restart.msg\",\"data\":7}", NULL),
        200);
    run_until(c, &s.messages, 5000);
    assert_int_equal(s.messages, 1);
    volt_client_free(c);
}

/* ---- the README's first program, against a broker that has just started ---- */

static bool wait_stdout(struct h_proc *p, const char *needle, int ms)
{
    return h_proc_wait_stdout(p, needle, ms) == 0;
}

static void test_readme_first_program(void **state)
{
    (void)state;
    /* The first registration is refused: the upstream needs a retry (the
     * broker's reconnectionDelay) before it is ready, so a program that
     * sent at the welcome would meet SOCKET_NOT_READY. */
    assert_int_equal(h_http(&server, "POST", "/_dev/behavior", "{\"registerRefuse\":1}", NULL),
                     200);
    assert_int_equal(h_broker_start(&broker, &server, config, NULL), 0);
    char env_sock[H_PATH + 32];
    snprintf(env_sock, sizeof env_sock, "VOLT_BROKER_SOCKET=%s", broker.sock);
    const char *const env[] = {env_sock, NULL};
    const char *const argv[] = {"volt-example-first", NULL};
    struct h_proc p;
    memset(&p, 0, sizeof p);
    assert_int_equal(h_proc_start(&p, argv, env, NULL), 0);

    bool ok = wait_stdout(&p, "status: {\"server\":\"volt-dev-server\"}", h_slack_ms(20000));
    if (!ok)
        h_broker_dump_log(&broker);
    assert_true(ok);
    /* The refusal really happened before the program's command went out. */
    assert_true(h_server_counter(&server, "registrationsRefused") >= 1);

    /* Its handler answers the server. */
    cJSON *x = h_http_json(&server, "POST", "/_dev/server-request", "{\"command\":\"list-files\"}");
    assert_non_null(x);
    assert_string_equal(h_json_str(x, "response.data.1"), "b.txt");
    cJSON_Delete(x);

    assert_int_equal(h_proc_stop(&p, SIGTERM, 10000), 0);
    h_proc_cleanup(&p);
}

static void test_no_broker_message(void **state)
{
    (void)state;
    char path[H_PATH];
    snprintf(path, sizeof path, "%s/nobody-here.sock", server.dir);
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = path;
    volt_client *c = volt_client_new(&o);
    assert_non_null(c);
    assert_int_equal(volt_client_connect_blocking(c, 200), VOLT_E_BROKER_GONE);
    char want[H_PATH + 80];
    snprintf(want, sizeof want, "no broker at %s: is volt-broker running? set VOLT_BROKER_SOCKET",
             path);
    assert_string_equal(volt_client_errstr(c), want);
    volt_client_free(c);
}

/* ---- connect gives the upstream's own error, not a bare Timeout ---- */

static void test_connect_returns_upstream_error(void **state)
{
    (void)state;
    assert_int_equal(h_http(&server, "POST", "/_dev/behavior", "{\"registerRefuse\":100000}", NULL),
                     200);
    assert_int_equal(h_http(&server, "POST", "/_dev/disconnect", "{\"mode\":\"transport\"}", NULL),
                     200);
    /* Until the broker has seen a refusal, its last error may be another. */
    assert_int_equal(h_broker_wait_log(&broker, "registration refused", h_slack_ms(10000)), 0);

    volt_client *c = new_client("t-refused");
    int rc = volt_client_connect_blocking(c, 1000);
    assert_int_equal(rc, VOLT_E_SOCKET_REGISTRATION_FAILED);
    assert_non_null(strstr(volt_client_errstr(c), "registration refused"));
    assert_non_null(strstr(volt_client_errstr(c), "RegistrationRefused"));
    /* The broker session is up; only the upstream is not. */
    assert_int_equal(volt_client_is_connected(c), 1);

    /* The server accepts again: the wait ends with the upstream ready. */
    assert_int_equal(h_http(&server, "POST", "/_dev/reset", NULL, NULL), 200);
    assert_int_equal(volt_client_wait_ready(c, h_slack_ms(15000)), 0);
    volt_client_free(c);
}

/* ---- no timeout given: the broker's commandTimeout ---- */

static const char *const config_short_timeout =
    "{\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
    "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"},"
    "\"commandTimeout\":400,"
    "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"
    "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\"}}";

static void test_command_timeout_is_the_brokers(void **state)
{
    (void)state;
    assert_int_equal(h_broker_start(&broker, &server, config_short_timeout, NULL), 0);
    volt_client *c = new_client("t-timeout");
    assert_int_equal(volt_client_connect_blocking(c, h_slack_ms(15000)), 0);
    assert_int_equal(volt_client_command_timeout_ms(c), 400);
    volt_result *r = NULL;
    uint64_t t0 = h_now_ms();
    assert_int_equal(volt_send_command_json_sync(c, "never", NULL, 0, &r), VOLT_E_COMMAND_TIMEOUT);
    uint64_t took = h_now_ms() - t0;
    /* The broker's 400 ms, answered by the broker (COMMAND_TIMEOUT), not
     * a library default of 30 s nor our own local Timeout. */
    assert_string_equal(r->code_name, "COMMAND_TIMEOUT");
    assert_true(took >= 350 && took < (uint64_t)h_slack_ms(5000));
    volt_result_free(r);
    volt_client_free(c);
}

/* ---- answers from worker threads; a handler's own error code ---- */

/* The thread that runs the client's loop, and whether that loop is idle
 * now, blocked in its wait (poll for the library's own loop, epoll for
 * libuv, libevent and sd-event): /proc/self/task/TID/syscall starts with
 * the number of the system call the thread is in. */
static pid_t loop_tid;

static bool loop_is_waiting(void *arg)
{
    (void)arg;
    char path[64], text[64] = "";
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)loop_tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    long nr = -1;
    if (fgets(text, sizeof(text), f))
        nr = strtol(text, NULL, 10);
    fclose(f);
#ifdef SYS_poll
    if (nr == SYS_poll)
        return true;
#endif
#ifdef SYS_epoll_wait
    if (nr == SYS_epoll_wait)
        return true;
#endif
    return nr == SYS_ppoll || nr == SYS_epoll_pwait;
}

static void *worker_reply(void *arg)
{
    volt_call *call = arg;
    /* The point: the answer comes while the client's loop is blocked in
     * its wait, so only the library's wakeup can get it sent. */
    if (h_wait_for(loop_is_waiting, NULL, h_slack_ms(5000)) < 0)
        return (void *)(intptr_t)-1000; /* join_workers() fails the test */
    const char *json = volt_call_payload_json(call);
    if (json && strstr(json, "missing"))
        return (void *)(intptr_t)volt_call_fail_code(call, "NOT_FOUND", "no such container");
    return (void *)(intptr_t)volt_call_reply_json(call, "{\"by\":\"worker\"}");
}

static pthread_t workers[8];
static int n_workers;

static void to_worker(volt_client *c, volt_call *call, void *priv)
{
    (void)c;
    (void)priv;
    assert_true(n_workers < 8);
    assert_int_equal(pthread_create(&workers[n_workers++], NULL, worker_reply, call), 0);
}

static void join_workers(void)
{
    for (int i = 0; i < n_workers; i++) {
        void *rc;
        pthread_join(workers[i], &rc);
        assert_int_equal((intptr_t)rc, 0);
    }
    n_workers = 0;
}

static void test_worker_thread_answers(void **state)
{
    (void)state;
    volt_client *c = new_client("t-workers");
    n_workers = 0;
    loop_tid = (pid_t)syscall(SYS_gettid);
    assert_int_equal(volt_register_handler(c, "inspect", to_worker, NULL), 0);
    assert_int_equal(volt_client_connect_blocking(c, h_slack_ms(10000)), 0);
    for (uint64_t end = h_now_ms() + (uint64_t)h_slack_ms(5000);
         !server_has_handler("inspect") && h_now_ms() < end;)
        volt_client_run_for(c, 20);
    pid_t a = server_request_child("{\"command\":\"inspect\",\"payload\":{\"id\":\"c-1\"}}",
                                   "response.data.by", "worker");
    pid_t b = server_request_child("{\"command\":\"inspect\",\"payload\":{\"id\":\"missing\"}}",
                                   "response.error.code", "NOT_FOUND");
    int st_a = -1, st_b = -1;
    uint64_t end = h_now_ms() + 10000;
    while ((st_a < 0 || st_b < 0) && h_now_ms() < end) {
        volt_client_run_for(c, 20);
        int st;
        if (st_a < 0 && waitpid(a, &st, WNOHANG) == a)
            st_a = WIFEXITED(st) ? WEXITSTATUS(st) : 99;
        if (st_b < 0 && waitpid(b, &st, WNOHANG) == b)
            st_b = WIFEXITED(st) ? WEXITSTATUS(st) : 99;
    }
    assert_int_equal(st_a, 0);
    assert_int_equal(st_b, 0);
    join_workers();
    volt_client_free(c);
}

/* ---- each loop adapter against the real broker ---- */

struct adapter_run {
    int connected, connect_code;
    int results, result_code;
    char json[128];
};

static void adapter_connected(volt_client *c, int code, const char *message, void *priv)
{
    struct adapter_run *a = priv;
    (void)c;
    (void)message;
    a->connected++;
    a->connect_code = code;
}

static void adapter_result(volt_client *c, const volt_result *r, void *priv)
{
    struct adapter_run *a = priv;
    (void)c;
    a->results++;
    a->result_code = r->code;
    snprintf(a->json, sizeof a->json, "%s", r->json ? r->json : "");
}

enum loop_kind { LOOP_LIBUV, LOOP_LIBEVENT, LOOP_SDEVENT };

struct loop {
    enum loop_kind kind;
    uv_loop_t uv;
    uv_timer_t turn_bound; /* ends a libuv turn that nothing else ends */
    struct event_base *ev;
    struct event *ev_turn_bound; /* the same for libevent */
    sd_event *sd;
};

static void ev_turn_bound_fired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void loop_init(struct loop *l, enum loop_kind kind)
{
    memset(l, 0, sizeof *l);
    l->kind = kind;
    if (kind == LOOP_LIBUV) {
        assert_int_equal(uv_loop_init(&l->uv), 0);
        assert_int_equal(uv_timer_init(&l->uv, &l->turn_bound), 0);
    } else if (kind == LOOP_LIBEVENT) {
        assert_non_null(l->ev = event_base_new());
        assert_non_null(l->ev_turn_bound = evtimer_new(l->ev, ev_turn_bound_fired, NULL));
    } else
        assert_int_equal(sd_event_new(&l->sd), 0);
}

static int loop_attach(struct loop *l, volt_client *c)
{
    if (l->kind == LOOP_LIBUV)
        return volt_libuv_attach(c, &l->uv);
    if (l->kind == LOOP_LIBEVENT)
        return volt_libevent_attach(c, l->ev);
    return volt_sdevent_attach(c, l->sd);
}

static void turn_bound_fired(uv_timer_t *t)
{
    (void)t;
}

/* One turn of the loop: blocked in the loop's own wait until something
 * happens, or for at most TURN_MS (so conditions are checked again). */
#define TURN_MS 10

static void loop_turn(struct loop *l)
{
    if (l->kind == LOOP_LIBUV) {
        uv_timer_start(&l->turn_bound, turn_bound_fired, TURN_MS, 0);
        uv_run(&l->uv, UV_RUN_ONCE);
    } else if (l->kind == LOOP_LIBEVENT) {
        struct timeval bound = {0, TURN_MS * 1000};
        evtimer_add(l->ev_turn_bound, &bound);
        event_base_loop(l->ev, EVLOOP_ONCE);
    } else {
        assert_true(sd_event_run(l->sd, TURN_MS * 1000) >= 0);
    }
}

static void loop_close(struct loop *l)
{
    if (l->kind == LOOP_LIBUV) {
        uv_close((uv_handle_t *)&l->turn_bound, NULL);
        uv_run(&l->uv, UV_RUN_NOWAIT);
        assert_int_equal(uv_loop_close(&l->uv), 0); /* every handle closed */
    } else if (l->kind == LOOP_LIBEVENT) {
        event_free(l->ev_turn_bound);
        assert_int_equal(event_base_get_num_events(l->ev, EVENT_BASE_COUNT_ADDED), 0);
        event_base_free(l->ev);
    } else {
        assert_int_equal(sd_event_run(l->sd, 0), 0);
        sd_event_unref(l->sd);
    }
}

#define TURN_UNTIL(l, cond, ms)                                                                    \
    do {                                                                                           \
        uint64_t end_ = h_now_ms() + (uint64_t)(ms);                                               \
        while (!(cond) && h_now_ms() < end_)                                                       \
            loop_turn(l);                                                                          \
    } while (0)

static void adapter_exchange(enum loop_kind kind, const char *command)
{
    struct loop l;
    loop_init(&l, kind);
    volt_client *c = new_client(command);
    n_workers = 0;
    loop_tid = (pid_t)syscall(SYS_gettid);
    assert_int_equal(volt_register_handler(c, command, to_worker, NULL), 0);
    assert_int_equal(loop_attach(&l, c), 0);
    struct adapter_run a;
    memset(&a, 0, sizeof a);
    assert_int_equal(volt_client_connect_async(c, h_slack_ms(10000), adapter_connected, &a), 0);
    TURN_UNTIL(&l, a.connected, h_slack_ms(12000));
    assert_int_equal(a.connected, 1);
    assert_int_equal(a.connect_code, 0);

    assert_int_equal(
        volt_send_command_json(c, "echo", "{\"via\":\"adapter\"}", 0, adapter_result, &a), 0);
    TURN_UNTIL(&l, a.results, 5000);
    assert_int_equal(a.result_code, 0);
    assert_string_equal(a.json, "{\"via\":\"adapter\"}");

    TURN_UNTIL(&l, server_has_handler((void *)command), 5000);
    char body[128];
    snprintf(body, sizeof body, "{\"command\":\"%s\"}", command);
    pid_t child = server_request_child(body, "response.data.by", "worker");
    int st = -1;
    uint64_t end = h_now_ms() + 10000;
    while (h_now_ms() < end) {
        loop_turn(&l);
        if (waitpid(child, &st, WNOHANG) == child)
            break;
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    join_workers();
    volt_client_free(c);
    loop_close(&l);
}

static void test_adapter_libuv(void **state)
{
    (void)state;
    adapter_exchange(LOOP_LIBUV, "via-libuv");
}

static void test_adapter_libevent(void **state)
{
    (void)state;
    adapter_exchange(LOOP_LIBEVENT, "via-libevent");
}

static void test_adapter_sdevent(void **state)
{
    (void)state;
    adapter_exchange(LOOP_SDEVENT, "via-sdevent");
}

int main(void)
{
    h_apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_and_send_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_send_and_emit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_replies_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_events_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readme_first_program, setup_server, teardown),
        cmocka_unit_test_setup_teardown(test_no_broker_message, setup_server, teardown),
        cmocka_unit_test_setup_teardown(test_connect_returns_upstream_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout_is_the_brokers, setup_server,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_thread_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adapter_libuv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adapter_libevent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adapter_sdevent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
