/* The broker's local protocol, end to end: a real volt-broker process (no
 * upstream configured), raw frames over its Unix socket. Covers the hello
 * exchange, status, ping, and every kind of bad input: each must get a
 * clear error, only the offending client may be closed, and the broker
 * must keep serving everybody else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static const char *const config =
    "{\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\","
    "\"limits\":{\"maxFrame\":65536,\"maxQueueBytes\":1048576}}}";

static int setup(void **state)
{
    static struct h_broker b;
    if (h_broker_start(&b, NULL, config, NULL) < 0)
        return -1;
    *state = &b;
    return 0;
}

static int teardown(void **state)
{
    struct h_broker *b = *state;
    int rc = h_broker_stop(b, 10000);
    h_broker_cleanup(b);
    /* A clean exit (and, under valgrind, no leak) is part of every test. */
    return rc == 0 ? 0 : -1;
}

static void expect_error_code(cJSON *f, const char *code)
{
    assert_non_null(f);
    assert_string_equal(h_json_str(f, "code"), code);
    assert_non_null(h_json_str(f, "message"));
}

static void test_hello_welcome_status_ping(void **state)
{
    struct h_broker *b = *state;
    struct h_conn *c = h_conn_open(b->sock);
    cJSON *f;

    assert_non_null(c);
    assert_int_equal(h_conn_send(c, "{\"op\":\"hello\",\"min_version\":1,\"max_version\":7,"
                                    "\"name\":\"t-hello\"}"),
                     0);
    f = h_conn_expect(c, "welcome", -1, 5000);
    assert_non_null(f);
    assert_int_equal((int)h_json_num(f, "version", 0), 2);
    assert_int_equal((int)h_json_num(f, "max_frame", 0), 65536);
    assert_non_null(strstr(h_json_str(f, "name"), "volt-broker/"));
    assert_string_equal(h_json_str(f, "state"), "idle");
    /* Version 2: what a client needs to answer its own getters and waits. */
    assert_int_equal((long)h_json_num(f, "timeout_ms", 0), 30000);
    assert_int_equal((long)h_json_num(f, "max_timeout_ms", 0), 600000);
    assert_string_equal(h_json_str(f, "team_cluster_id"), "");
    assert_string_equal(h_json_str(f, "reason"), "no controlSocketUrl configured");
    assert_null(h_json_str(f, "code")); /* no upstream error to tell */
    cJSON_Delete(f);

    assert_int_equal(h_conn_send(c, "{\"op\":\"ping\",\"id\":42}"), 0);
    f = h_conn_expect(c, "pong", 42, 5000);
    assert_non_null(f);
    cJSON_Delete(f);

    assert_int_equal(h_conn_send(c, "{\"op\":\"status\",\"id\":7}"), 0);
    f = h_conn_expect(c, "result", 7, 5000);
    assert_non_null(f);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(f, "ok")));
    assert_string_equal(h_json_str(f, "data.upstream.state"), "idle");
    assert_int_equal((int)h_json_num(f, "data.broker.pid", 0), (int)b->pid);
    const cJSON *clients = cJSON_GetObjectItem(cJSON_GetObjectItem(f, "data"), "clients");
    assert_true(cJSON_IsArray(clients));
    assert_int_equal(cJSON_GetArraySize(clients), 1);
    const cJSON *me = cJSON_GetArrayItem(clients, 0);
    assert_string_equal(h_json_str(me, "name"), "t-hello");
    assert_int_equal((int)h_json_num(me, "pid", 0), (int)getpid());
    assert_int_equal((int)h_json_num(me, "uid", -1), (int)getuid());
    cJSON_Delete(f);
    h_conn_close(c);
}

static void test_first_frame_must_be_hello(void **state)
{
    struct h_broker *b = *state;
    struct h_conn *c = h_conn_open(b->sock);

    assert_int_equal(h_conn_send(c, "{\"op\":\"status\",\"id\":1}"), 0);
    cJSON *f = h_conn_expect(c, "error", -1, 5000);
    expect_error_code(f, "BadRequest");
    cJSON_Delete(f);
    assert_true(h_conn_closed(c, 5000));
    h_conn_close(c);
    assert_int_equal(h_broker_wait_log(b, "first frame was not hello", 3000), 0);
}

static void test_version_mismatch(void **state)
{
    struct h_broker *b = *state;
    struct h_conn *c = h_conn_open(b->sock);

    assert_int_equal(h_conn_send(c, "{\"op\":\"hello\",\"min_version\":3,\"max_version\":4}"), 0);
    cJSON *f = h_conn_expect(c, "error", -1, 5000);
    expect_error_code(f, "VersionMismatch");
    cJSON_Delete(f);
    assert_true(h_conn_closed(c, 5000));
    h_conn_close(c);
}

static void test_bad_input_keeps_connection(void **state)
{
    struct h_broker *b = *state;
    struct h_conn *c = h_conn_hello(b->sock, "t-bad");
    cJSON *f;

    /* Unknown op, with an id: answered under that id. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"frobnicate\",\"id\":5}"), 0);
    f = h_conn_expect(c, "result", 5, 5000);
    expect_error_code(f, "UnknownOp");
    cJSON_Delete(f);
    /* Wrong type of a known field. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":6,\"command\":17}"), 0);
    f = h_conn_expect(c, "result", 6, 5000);
    expect_error_code(f, "BadRequest");
    assert_non_null(strstr(h_json_str(f, "message"), "command"));
    cJSON_Delete(f);
    /* Missing required field. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":8}"), 0);
    f = h_conn_expect(c, "result", 8, 5000);
    expect_error_code(f, "BadRequest");
    cJSON_Delete(f);
    /* No op at all and no id: an error frame. */
    assert_int_equal(h_conn_send(c, "{\"hello\":1}"), 0);
    f = h_conn_expect(c, "error", -1, 5000);
    assert_non_null(f);
    cJSON_Delete(f);
    /* Not msgpack / not a map, correctly framed: BadFrame, stream in sync. */
    static const uint8_t not_a_map[] = {0, 0, 0, 1, 0x01};
    static const uint8_t reserved[] = {0, 0, 0, 2, 0x81, 0xc1};
    static const uint8_t truncated[] = {0, 0, 0, 3, 0x81, 0xa2, 'o'};
    assert_int_equal(h_conn_send_raw(c, not_a_map, sizeof(not_a_map)), 0);
    f = h_conn_expect(c, "error", -1, 5000);
    expect_error_code(f, "BadFrame");
    cJSON_Delete(f);
    assert_int_equal(h_conn_send_raw(c, reserved, sizeof(reserved)), 0);
    f = h_conn_expect(c, "error", -1, 5000);
    expect_error_code(f, "BadFrame");
    cJSON_Delete(f);
    assert_int_equal(h_conn_send_raw(c, truncated, sizeof(truncated)), 0);
    f = h_conn_expect(c, "error", -1, 5000);
    expect_error_code(f, "BadFrame");
    cJSON_Delete(f);
    /* Still served. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"ping\",\"id\":9}"), 0);
    f = h_conn_expect(c, "pong", 9, 5000);
    assert_non_null(f);
    cJSON_Delete(f);
    /* A reply with a wrong-typed field: its id is a call id, not one of
     * this client's request ids, so the answer is an `error` frame naming
     * the op, never a `result` that could complete a request of ours. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"reply\",\"id\":9,\"ok\":\"yes\"}"), 0);
    f = h_conn_expect(c, "error", 9, 5000);
    expect_error_code(f, "BadRequest");
    assert_string_equal(h_json_str(f, "about"), "reply");
    cJSON_Delete(f);
    /* A second hello is an error frame too (hello is answered by welcome). */
    assert_int_equal(h_conn_send(c, "{\"op\":\"hello\",\"id\":9,\"min_version\":1,"
                                    "\"max_version\":2}"),
                     0);
    f = h_conn_expect(c, "error", 9, 5000);
    expect_error_code(f, "BadRequest");
    assert_string_equal(h_json_str(f, "about"), "hello");
    cJSON_Delete(f);
    /* A request without an upstream: SOCKET_NOT_READY at once. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"request\",\"id\":10,\"command\":\"x\"}"), 0);
    f = h_conn_expect(c, "result", 10, 5000);
    expect_error_code(f, "SOCKET_NOT_READY");
    cJSON_Delete(f);
    h_conn_close(c);
}

static void test_oversize_frame_closes_only_that_client(void **state)
{
    struct h_broker *b = *state;
    struct h_conn *bystander = h_conn_hello(b->sock, "t-bystander");
    struct h_conn *c = h_conn_hello(b->sock, "t-oversize");
    static const uint8_t huge[] = {0x00, 0x10, 0x00, 0x00}; /* 1 MiB > maxFrame 64 KiB */
    cJSON *f;

    assert_int_equal(h_conn_send_raw(c, huge, sizeof(huge)), 0);
    f = h_conn_expect(c, "error", -1, 5000);
    expect_error_code(f, "FrameTooLarge");
    cJSON_Delete(f);
    assert_true(h_conn_closed(c, 5000));
    h_conn_close(c);
    assert_int_equal(h_conn_send(bystander, "{\"op\":\"ping\",\"id\":1}"), 0);
    f = h_conn_expect(bystander, "pong", 1, 5000);
    assert_non_null(f);
    cJSON_Delete(f);
    h_conn_close(bystander);
    assert_int_equal(h_broker_wait_log(b, "exceeds", 3000), 0);
}

static void test_credentials_and_monitor_for_own_uid(void **state)
{
    struct h_broker *b = *state;
    struct h_conn *c = h_conn_hello(b->sock, "t-cred");
    cJSON *f;

    /* Same uid as the broker: allowed, but nothing is configured. */
    assert_int_equal(h_conn_send(c, "{\"op\":\"credential\",\"id\":1,\"name\":\"daemonPassword\"}"),
                     0);
    f = h_conn_expect(c, "result", 1, 5000);
    expect_error_code(f, "SOCKET_NOT_READY");
    cJSON_Delete(f);
    assert_int_equal(h_conn_send(c, "{\"op\":\"credential\",\"id\":2,\"name\":\"nope\"}"), 0);
    f = h_conn_expect(c, "result", 2, 5000);
    expect_error_code(f, "BadRequest");
    cJSON_Delete(f);
    assert_int_equal(h_conn_send(c, "{\"op\":\"monitor\",\"id\":3}"), 0);
    f = h_conn_expect(c, "result", 3, 5000);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(f, "ok")));
    cJSON_Delete(f);
    /* Another client's traffic is now traced to us. */
    struct h_conn *other = h_conn_hello(b->sock, "t-traced");
    assert_int_equal(h_conn_send(other, "{\"op\":\"ping\",\"id\":77}"), 0);
    f = h_conn_expect(c, "trace", -1, 5000);
    assert_non_null(f);
    assert_non_null(h_json_str(f, "dir"));
    cJSON_Delete(f);
    h_conn_close(other);
    h_conn_close(c);
}

static void test_socket_mode(void **state)
{
    struct h_broker *b = *state;
    struct stat st;
    assert_int_equal(stat(b->sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_true(S_ISSOCK(st.st_mode));
}

static void test_second_broker_refuses_live_socket(void **state)
{
    struct h_broker *b = *state;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --config '%s' >/dev/null 2>&1", h_bin("volt-broker"),
             b->config);
    int rc = system(cmd);
    assert_int_not_equal(rc, 0);
    /* The live broker still answers. */
    struct h_conn *c = h_conn_hello(b->sock, "t-still-alive");
    assert_non_null(c);
    h_conn_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_welcome_status_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_frame_must_be_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_keeps_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_frame_closes_only_that_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_credentials_and_monitor_for_own_uid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_broker_refuses_live_socket, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
