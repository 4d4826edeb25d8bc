/* Unit tests of the configuration: file, environment, flags, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char path[64];

static const char *write_config(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/volt-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    struct broker_config c;
    char errors[1024] = "";
    (void)state;
    assert_int_equal(config_init(&c), 0);
    assert_int_equal(c.command_timeout_ms, 30000);
    assert_int_equal(c.heartbeat_interval_ms, 30000);
    assert_int_equal(c.reconnection_delay_ms, 1000);
    assert_int_equal(c.reconnection_delay_max_ms, 5000);
    assert_true(c.randomization_factor == 0.5);
    assert_string_equal(c.engineio_path, "/socket.io/");
    assert_int_equal(c.listen_mode, 0660);
    assert_non_null(c.listen_path);
    assert_int_equal(config_validate(&c, errors, sizeof(errors)), 0);
    config_free(&c);
}

static void test_full_file(void **state)
{
    struct broker_config c;
    char errors[2048] = "";
    (void)state;
    config_init(&c);
    const char *p = write_config(
        "{\"serverUrl\":\"https://a.example\",\"controlSocketUrl\":\"wss://a.example/control\","
        "\"credentials\":{\"teamClusterId\":\"c-1\",\"daemonPassword\":\"pw\"},"
        "\"heartbeat\":{\"interval\":1000},\"commandTimeout\":2000,"
        "\"socket\":{\"reconnection\":false,\"randomizationFactor\":0.25},"
        "\"broker\":{\"mode\":\"0600\",\"allowedUids\":[1,2,3],\"logLevel\":\"debug\","
        "\"limits\":{\"maxClients\":7}}}");
    assert_int_equal(config_load_file(&c, p, errors, sizeof(errors)), 0);
    unlink(p);
    assert_string_equal(c.server_url, "https://a.example");
    assert_string_equal(c.team_cluster_id, "c-1");
    assert_string_equal(c.daemon_password, "pw");
    assert_int_equal(c.heartbeat_interval_ms, 1000);
    assert_int_equal(c.command_timeout_ms, 2000);
    assert_false(c.reconnection);
    assert_true(c.randomization_factor == 0.25);
    assert_int_equal(c.listen_mode, 0600);
    assert_int_equal(c.allowed_uids.n, 3);
    assert_int_equal(c.allowed_uids.ids[2], 3);
    assert_int_equal(c.max_clients, 7);
    assert_string_equal(c.log_level, "debug");
    assert_int_equal(config_validate(&c, errors, sizeof(errors)), 0);
    config_free(&c);
}

static void test_errors_are_explained(void **state)
{
    struct broker_config c;
    char errors[2048] = "";
    (void)state;
    config_init(&c);
    const char *p = write_config("{\"credentails\":{},\"commandTimeout\":\"abc\","
                                 "\"broker\":{\"mode\":\"999\",\"logLevel\":\"loud\"},"
                                 "\"socket\":{\"randomizationFactor\":2}}");
    int n = config_load_file(&c, p, errors, sizeof(errors));
    unlink(p);
    assert_int_equal(n, 5);
    assert_non_null(strstr(errors, "unknown key 'credentails' (did you mean 'credentials"));
    assert_non_null(strstr(errors, "commandTimeout"));
    assert_non_null(strstr(errors, "broker.mode"));
    assert_non_null(strstr(errors, "broker.logLevel"));
    assert_non_null(strstr(errors, "socket.randomizationFactor"));
    config_free(&c);

    config_init(&c);
    errors[0] = '\0';
    p = write_config("{\n\"serverUrl\": \"x\",\n oops\n}");
    assert_int_equal(config_load_file(&c, p, errors, sizeof(errors)), 1);
    unlink(p);
    assert_non_null(strstr(errors, ":3: not valid JSON"));
    config_free(&c);
}

static void test_env_and_flags_override(void **state)
{
    struct broker_config c;
    char errors[1024] = "";
    int used = 0;
    (void)state;
    config_init(&c);
    setenv("VOLT_COMMAND_TIMEOUT", "1234", 1);
    setenv("VOLT_DAEMON_PASSWORD", "from-env", 1);
    assert_int_equal(config_load_env(&c, errors, sizeof(errors)), 0);
    unsetenv("VOLT_COMMAND_TIMEOUT");
    unsetenv("VOLT_DAEMON_PASSWORD");
    assert_int_equal(c.command_timeout_ms, 1234);
    assert_string_equal(c.daemon_password, "from-env");

    char *argv1[] = {"--command-timeout", "99"};
    assert_int_equal(config_apply_flag(&c, 2, argv1, &used, errors, sizeof(errors)), 0);
    assert_int_equal(used, 2);
    assert_int_equal(c.command_timeout_ms, 99);
    char *argv2[] = {"--insecure"};
    assert_int_equal(config_apply_flag(&c, 1, argv2, &used, errors, sizeof(errors)), 0);
    assert_true(c.tls_insecure);
    char *argv3[] = {"--log-level=warn"};
    assert_int_equal(config_apply_flag(&c, 1, argv3, &used, errors, sizeof(errors)), 0);
    assert_string_equal(c.log_level, "warn");
    char *argv3b[] = {"--insecure", "false"};
    assert_int_equal(config_apply_flag(&c, 2, argv3b, &used, errors, sizeof(errors)), 0);
    assert_int_equal(used, 2);
    assert_false(c.tls_insecure);
    char *argv3c[] = {"--reconnection", "--insecure"};
    assert_int_equal(config_apply_flag(&c, 2, argv3c, &used, errors, sizeof(errors)), 0);
    assert_int_equal(used, 1); /* the next flag is not taken as a value */
    assert_true(c.reconnection);
    char *argv4[] = {"--not-a-flag"};
    assert_int_equal(config_apply_flag(&c, 1, argv4, &used, errors, sizeof(errors)), 1);
    /* secrets on the command line are refused, loudly */
    char *argv5[] = {"--daemon-password", "x"};
    assert_int_equal(config_apply_flag(&c, 2, argv5, &used, errors, sizeof(errors)), -1);
    assert_non_null(strstr(errors, "secrets are not accepted on the command line"));
    assert_string_equal(c.daemon_password, "from-env");
    config_free(&c);
}

static void test_null_unsets(void **state)
{
    struct broker_config c;
    char errors[1024] = "";
    (void)state;
    config_init(&c);
    const char *p = write_config("{\"socket\":{\"caFile\":null},\"hostname\":\"h\"}");
    assert_int_equal(config_load_file(&c, p, errors, sizeof(errors)), 0);
    unlink(p);
    assert_null(c.ca_file);
    p = write_config("{\"commandTimeout\":null}");
    assert_int_equal(config_load_file(&c, p, errors, sizeof(errors)), 1);
    unlink(p);
    assert_non_null(strstr(errors, "commandTimeout: wrong type"));
    config_free(&c);
}

static void test_validation(void **state)
{
    struct broker_config c;
    char errors[2048] = "";
    (void)state;
    config_init(&c);
    c.server_url = strdup("ftp://x");
    c.control_socket_url = strdup("tcp://x");
    c.reconnection_delay_max_ms = 10;
    c.max_frame = 10;
    free(c.listen_path);
    c.listen_path = strdup("relative.sock");
    int n = config_validate(&c, errors, sizeof(errors));
    assert_int_equal(n, 6);
    assert_non_null(strstr(errors, "serverUrl"));
    assert_non_null(strstr(errors, "controlSocketUrl"));
    assert_non_null(strstr(errors, "credentials.teamClusterId"));
    assert_non_null(strstr(errors, "reconnectionDelayMax"));
    assert_non_null(strstr(errors, "maxFrame"));
    assert_non_null(strstr(errors, "broker.listen"));
    config_free(&c);

    /* what would only fail at start is caught by the check already */
    config_init(&c);
    errors[0] = '\0';
    c.control_socket_url = strdup("ws://");
    c.team_cluster_id = strdup("t");
    c.ca_file = strdup("/nonexistent/ca.pem");
    assert_int_equal(config_validate(&c, errors, sizeof(errors)), 2);
    assert_non_null(strstr(errors, "controlSocketUrl: "));
    assert_non_null(strstr(errors, "socket.caFile: cannot read /nonexistent/ca.pem"));
    config_free(&c);
}

static void test_password_file(void **state)
{
    struct broker_config c;
    char errors[1024] = "";
    (void)state;
    config_init(&c);
    const char *p = write_config("s3cret\n");
    c.daemon_password_file = strdup(p);
    assert_int_equal(config_validate(&c, errors, sizeof(errors)), 0);
    assert_string_equal(c.daemon_password, "s3cret");
    unlink(p);
    config_free(&c);
}

static void test_print_hides_secrets(void **state)
{
    struct broker_config c;
    char buf[8192] = "";
    (void)state;
    config_init(&c);
    c.daemon_password = strdup("hunter2");
    c.enrollment_token = strdup("tok-secret");
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    config_print(&c, f);
    fclose(f);
    assert_null(strstr(buf, "hunter2"));
    assert_null(strstr(buf, "tok-secret"));
    assert_non_null(strstr(buf, "(set)"));
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_errors_are_explained),
        cmocka_unit_test(test_env_and_flags_override),
        cmocka_unit_test(test_null_unsets),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_print_hides_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
