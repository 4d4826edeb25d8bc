/* libvoltclient end to end: the TypeScript client's API in C, against a
 * real volt-broker and the real socket.io dev server. Includes the broker
 * restarting under a connected client. */
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
    return h_wait_state(broker.sock, "ready", 15000);
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
    for (int i = 0; i < 100 && !found; i++) {
        cJSON *ev = h_http_json(&server, "GET", "/_dev/events?since=0&kind=message_in", NULL);
        char *t = cJSON_PrintUnformatted(ev);
        found = t && strstr(t, "v-123");
        free(t);
        cJSON_Delete(ev);
        if (!found)
            h_sleep_ms(50);
    }
    assert_true(found);
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

    /* a request in flight when the broker goes away fails with BrokerGone */
    assert_int_equal(volt_send_command_json(c, "never", NULL, 20000, on_result, &pending), 0);
    volt_client_run_for(c, 200);
    assert_int_equal(h_broker_stop(&broker, 15000), 0);
    run_until(c, &pending.done, 5000);
    assert_int_equal(pending.done, 1);
    assert_int_equal(pending.code, VOLT_E_BROKER_GONE);
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

int main(void)
{
    h_apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_and_send_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_send_and_emit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_replies_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_events_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
