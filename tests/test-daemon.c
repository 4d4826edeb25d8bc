/* volt-broker as a real daemon (issue 5), always against real processes:
 *
 * - configuration errors and precedence, through the command line the way
 *   an administrator meets them (--check-config, --print-config, --help);
 * - SIGTERM with an inbound request in flight: the drain lets the handler
 *   answer, or answers HandlerError for it when drainTimeout runs out, and
 *   accepts nobody new meanwhile (with the real dev server upstream);
 * - SIGHUP: what may change at run time changes; a broken file changes
 *   nothing and the broker keeps serving;
 * - the systemd contract: sd_notify READY/WATCHDOG/RELOADING/STOPPING on a
 *   datagram socket of our own, and socket activation with a listening
 *   socket we made ourselves;
 * - the log: who connected (pid, uid), why the upstream state changed, and
 *   never a secret.
 *
 * Timing assertions are about the broker's own timers (drainTimeout, the
 * watchdog interval); valgrind slows everything, so there they only get
 * more slack, never less checking.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* Exit status of a configuration with problems (EX_CONFIG, so that
 * systemd's RestartPreventExitStatus= can keep it from restarting). */
#define CONFIG_EXIT 78

#define DRAIN_MS 3000

/* ---- small helpers ---- */

struct tmpdir {
    char path[H_DIR];
};

static void tmpdir_make(struct tmpdir *t)
{
    snprintf(t->path, sizeof(t->path), "/tmp/volt-test-daemon-XXXXXX");
    assert_non_null(mkdtemp(t->path));
}

static void tmpdir_remove(struct tmpdir *t)
{
    char cmd[H_DIR + 16];
    if (!t->path[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", t->path);
    t->path[0] = '\0';
}

/* Writes text to path atomically (a reload must never see half a file). */
static void write_file(const char *path, const char *text)
{
    char tmp[H_PATH + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* A file in dir holding text; its path in out. */
static void make_config(const struct tmpdir *t, const char *name, const char *text, char *out,
                        size_t len)
{
    snprintf(out, len, "%s/%s", t->path, name);
    write_file(out, text);
}

/* volt-broker with args (NULL-terminated, program name not included). */
struct run {
    int status;
    char *out;
    char *err;
};

/* Everything a test may leave behind when an assertion ends it early:
 * the teardown stops, closes and removes whatever is still there. */
#define MAX_CONNS 4
struct notify_sock {
    char path[H_PATH];
    int fd;
};

static struct {
    struct tmpdir dir;
    struct run run, run2;
    struct h_server server;
    struct h_broker broker;
    struct h_conn *conns[MAX_CONNS];
    struct notify_sock notify;
    int listen_fd;
} ts;

static void run_broker(struct run *r, const char *const *args, const char *const *env)
{
    const char *argv[32] = {"volt-broker"};
    int n = 1;
    for (; args && *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    r->status = h_run(argv, env, &r->out, &r->err, 10000);
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!haystack || !strstr(haystack, needle)) {
        fprintf(stderr, "expected to find '%s' in:\n%s\n", needle, haystack ? haystack : "(null)");
        fail();
    }
}

static void assert_not_contains(const char *haystack, const char *needle)
{
    if (haystack && strstr(haystack, needle)) {
        fprintf(stderr, "'%s' must not appear in:\n%s\n", needle, haystack);
        fail();
    }
}

/* Waits for a child of ours (not the broker) without hanging: its exit
 * status, or -1 (it is then killed). */
static int wait_child(pid_t pid, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r < 0 || h_now_ms() >= end)
            break;
        h_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Our temp paths are short; a longer one is a bug in the test. */
static void set_sun_path(struct sockaddr_un *a, const char *path)
{
    size_t n = strlen(path);
    assert_true(n < sizeof(a->sun_path));
    memcpy(a->sun_path, path, n + 1);
}

/* True when nothing accepts connections at path. */
static bool connect_refused(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool refused;
    set_sun_path(&a, path);
    refused = connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
              (errno == ENOENT || errno == ECONNREFUSED);
    close(fd);
    return refused;
}

static void expect_result_ok(struct h_conn *c, long long id)
{
    cJSON *r = h_conn_expect(c, "result", id, h_slack_ms(5000));
    assert_non_null(r);
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
        char *t = cJSON_PrintUnformatted(r);
        fprintf(stderr, "expected ok, got %s\n", t);
        free(t);
        fail();
    }
    cJSON_Delete(r);
}

/* A round trip: when the pong is back, the broker has handled (and
 * logged) everything this client sent before. */
static void ping(struct h_conn *c, long long id)
{
    char frame[64];
    snprintf(frame, sizeof(frame), "{\"op\":\"ping\",\"id\":%lld}", id);
    assert_int_equal(h_conn_send(c, frame), 0);
    cJSON *p = h_conn_expect(c, "pong", id, h_slack_ms(5000));
    assert_non_null(p);
    cJSON_Delete(p);
}

/* ==== 1. configuration errors, precedence, secrets ==== */

static const char *const valid_config =
    "{\"broker\":{\"listen\":\"/tmp/volt-test-daemon-unused.sock\",\"logLevel\":\"info\"}}";

static void test_config_unknown_key_suggests(void **state)
{
    char path[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "typo.json",
                "{\"credentails\":{\"teamClusterId\":\"c\"},"
                "\"broker\":{\"listen\":\"/tmp/x.sock\",\"logLevl\":\"info\"}}",
                path, sizeof(path));
    const char *const args[] = {"--check-config", "--config", path, NULL};
    run_broker(r, args, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "unknown key 'credentails'");
    assert_contains(r->err, "did you mean 'credentials'");
    /* nested keys are suggested by their full path */
    assert_contains(r->err, "did you mean 'broker.logLevel'");
    assert_contains(r->err, path);
    assert_not_contains(r->out, "configuration OK");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

static void test_config_wrong_type_names_key(void **state)
{
    char path[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "type.json",
                "{\"commandTimeout\":\"abc\",\"socket\":{\"reconnection\":\"maybe\"},"
                "\"broker\":{\"listen\":\"/tmp/x.sock\",\"drainTimeout\":true}}",
                path, sizeof(path));
    const char *const args[] = {"--check-config", "-c", path, NULL};
    run_broker(r, args, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    /* every problem at once, each naming its key */
    assert_contains(r->err, "3 problems");
    assert_contains(r->err, "commandTimeout");
    assert_contains(r->err, "'abc'");
    assert_contains(r->err, "socket.reconnection");
    assert_contains(r->err, "broker.drainTimeout");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

static void test_config_invalid_json_file_line(void **state)
{
    char path[H_PATH], where[H_PATH + 8];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "broken.json",
                "{\n  \"broker\": {\n    \"logLevel\": \"info\",\n    oops\n  }\n}\n", path,
                sizeof(path));
    const char *const args[] = {"--check-config", "--config", path, NULL};
    run_broker(r, args, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    snprintf(where, sizeof(where), "%s:4:", path);
    assert_contains(r->err, where);
    assert_contains(r->err, "not valid JSON");
    run_free(r);

    /* a file that is not there: its name and why */
    snprintf(where, sizeof(where), "%s/missing.json", ts.dir.path);
    const char *const args2[] = {"--check-config", "--config", where, NULL};
    run_broker(r, args2, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, where);
    assert_contains(r->err, "No such file");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

static void test_config_valid_ok(void **state)
{
    char path[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "ok.json", valid_config, path, sizeof(path));
    const char *const args[] = {"--config", path, "--check-config", NULL};
    run_broker(r, args, NULL);
    assert_int_equal(r->status, 0);
    assert_contains(r->out, "configuration OK");
    assert_string_equal(r->err, "");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

static void test_secret_on_argv_refused(void **state)
{
    char path[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "ok.json", valid_config, path, sizeof(path));
    const char *const args[] = {"--config", path, "--daemon-password", "x", "--check-config", NULL};
    run_broker(r, args, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "--daemon-password");
    assert_contains(r->err, "secrets are not accepted on the command line");
    /* exactly one problem: the value is not reported as a stray argument */
    assert_contains(r->err, "1 problem in");
    run_free(r);

    /* neither form ever echoes the value */
    const char *const args2[] = {
        "--config",       path, "--enrollment-token=tok-argv-5ecret", "--daemon-password",
        "pw-argv-5ecret", NULL};
    run_broker(r, args2, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "--enrollment-token");
    assert_contains(r->err, "--daemon-password");
    assert_not_contains(r->err, "5ecret");
    assert_not_contains(r->out, "5ecret");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

/* The item at a dotted path of nested objects, or NULL. */
static const cJSON *json_at(const cJSON *j, const char *path)
{
    char part[128];
    while (j && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        j = cJSON_GetObjectItemCaseSensitive(j, part);
        path += n + (path[n] == '.');
    }
    return j;
}

/* The value of a dotted key in --print-config's output (nested objects,
 * as a configuration file has them). */
static char *printed_value(const char *out, const char *key)
{
    cJSON *j = cJSON_Parse(out);
    const cJSON *v = json_at(j, key);
    char *text = v ? cJSON_PrintUnformatted(v) : NULL;
    cJSON_Delete(j);
    return text;
}

static void assert_log_level(const char *const *args, const char *const *env, const char *expected)
{
    struct run *r = &ts.run;
    run_broker(r, args, env);
    assert_int_equal(r->status, 0);
    char *v = printed_value(r->out, "broker.logLevel");
    assert_non_null(v);
    assert_string_equal(v, expected);
    free(v);
    run_free(r);
}

static void test_env_and_flag_override(void **state)
{
    char path[H_PATH];
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "ok.json", valid_config, path, sizeof(path));
    const char *const args[] = {"--config", path, "--print-config", NULL};
    const char *const args_flag[] = {"--config",       path, "--log-level", "warn",
                                     "--print-config", NULL};
    const char *const args_flag_eq[] = {"--print-config", "--log-level=error", "--config", path,
                                        NULL};
    const char *const env_debug[] = {"VOLT_LOG_LEVEL=debug", NULL};

    assert_log_level(args, NULL, "\"info\"");           /* the file */
    assert_log_level(args, env_debug, "\"debug\"");     /* env over file */
    assert_log_level(args_flag, env_debug, "\"warn\""); /* flag over env */
    assert_log_level(args_flag_eq, env_debug, "\"error\"");

    /* a bad value from the environment is named by its variable */
    struct run *r = &ts.run;
    const char *const env_bad[] = {"VOLT_LOG_LEVEL=loud", NULL};
    run_broker(r, args, env_bad);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "VOLT_LOG_LEVEL");
    assert_contains(r->err, "'loud'");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

static void test_print_config_hides_secrets(void **state)
{
    char path[H_PATH], pwfile[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "pw.txt", "file-s3cr3t-value\n", pwfile, sizeof(pwfile));
    make_config(&ts.dir, "secret.json",
                "{\"serverUrl\":\"http://127.0.0.1:1\",\"credentials\":{\"teamClusterId\":\"c\","
                "\"daemonPassword\":\"json-s3cr3t-value\",\"enrollmentToken\":\"tok-s3cr3t-json\"},"
                "\"broker\":{\"listen\":\"/tmp/x.sock\"}}",
                path, sizeof(path));
    const char *const env[] = {"VOLT_DAEMON_PASSWORD=s3cr3t-value",
                               "VOLT_ENROLLMENT_TOKEN=tok-s3cr3t-env", NULL};
    const char *const args[] = {"--config", path, "--print-config", NULL};
    run_broker(r, args, env);
    assert_int_equal(r->status, 0);
    char *pw = printed_value(r->out, "credentials.daemonPassword");
    char *tok = printed_value(r->out, "credentials.enrollmentToken");
    assert_non_null(pw);
    assert_non_null(tok);
    assert_string_equal(pw, "\"(set)\"");
    assert_string_equal(tok, "\"(set)\"");
    free(pw);
    free(tok);
    assert_not_contains(r->out, "s3cr3t");
    assert_not_contains(r->err, "s3cr3t");
    run_free(r);

    /* a password and a password file at once: refused, neither shown */
    const char *const args_both[] = {"--config",       path, "--daemon-password-file", pwfile,
                                     "--print-config", NULL};
    run_broker(r, args_both, env);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "credentials.daemonPassword and credentials.daemonPasswordFile are "
                            "both set");
    assert_not_contains(r->err, "s3cr3t");
    run_free(r);

    /* the password file alone is read (and checked), its content never shown */
    char nopw[H_PATH];
    make_config(
        &ts.dir, "nopw.json",
        "{\"controlSocketUrl\":\"ws://127.0.0.1:1/control\","
        "\"credentials\":{\"teamClusterId\":\"c\"},\"broker\":{\"listen\":\"/tmp/x.sock\"}}",
        nopw, sizeof(nopw));
    const char *const args_file[] = {"--config",       nopw, "--daemon-password-file", pwfile,
                                     "--print-config", NULL};
    run_broker(r, args_file, NULL);
    assert_int_equal(r->status, 0);
    assert_contains(r->out, pwfile);
    assert_not_contains(r->out, "s3cr3t");
    run_free(r);

    /* without any secret: null, so "(set)" really means set */
    make_config(&ts.dir, "nosecret.json", valid_config, path, sizeof(path));
    const char *const args_none[] = {"--config", path, "--print-config", NULL};
    run_broker(r, args_none, NULL);
    assert_int_equal(r->status, 0);
    pw = printed_value(r->out, "credentials.daemonPassword");
    assert_non_null(pw);
    assert_string_equal(pw, "null");
    free(pw);
    run_free(r);
    tmpdir_remove(&ts.dir);
}

/* Every leaf of the printed configuration is explained by --help: "key
 * NAME" followed by "," (an env) or ";" (the default), so that a key that
 * is a prefix of another (reconnectionDelay) is matched whole. Returns the
 * number of leaves. */
static int check_help_explains(const cJSON *obj, const char *prefix, const char *help)
{
    const cJSON *item;
    int keys = 0;

    cJSON_ArrayForEach(item, obj)
    {
        char path[256], with_env[300], alone[300];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", item->string);
        if (cJSON_IsObject(item)) {
            keys += check_help_explains(item, path, help);
            continue;
        }
        snprintf(with_env, sizeof(with_env), "key %s,", path);
        snprintf(alone, sizeof(alone), "key %s;", path);
        if (!strstr(help, with_env) && !strstr(help, alone)) {
            fprintf(stderr, "--help does not explain '%s'\n", path);
            fail();
        }
        keys++;
    }
    return keys;
}

/* --print-config writes a file that --config takes back, whatever the
 * settings; a secret's "(set)" is refused with a message saying why. */
static void test_print_config_round_trip(void **state)
{
    char path[H_PATH], printed[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "orig.json",
                "{\"controlSocketUrl\":\"ws://127.0.0.1:1/control\",\"commandTimeout\":1234,"
                "\"credentials\":{\"teamClusterId\":\"c-rt\"},"
                "\"socket\":{\"randomizationFactor\":0.25,\"reconnection\":false},"
                "\"broker\":{\"listen\":\"/tmp/x-rt.sock\",\"mode\":\"0600\","
                "\"allowedUids\":[0,\"root\"],\"limits\":{\"maxClients\":77}}}",
                path, sizeof(path));
    const char *const print[] = {"--config", path, "--print-config", NULL};
    run_broker(r, print, NULL);
    assert_int_equal(r->status, 0);
    make_config(&ts.dir, "printed.json", r->out, printed, sizeof(printed));
    char *first = r->out;
    r->out = NULL;
    run_free(r);

    /* accepted back, and printing it again gives the same file */
    const char *const again[] = {"--config", printed, "--print-config", NULL};
    run_broker(r, again, NULL);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->out, first);
    assert_contains(r->out, "\"maxClients\":\t77");
    assert_contains(r->out, "\"mode\":\t\"0600\"");
    free(first);
    run_free(r);

    /* with a secret: "(set)" is named as the placeholder it is */
    const char *const env[] = {"VOLT_DAEMON_PASSWORD=rt-s3cr3t", NULL};
    run_broker(r, print, env);
    assert_int_equal(r->status, 0);
    make_config(&ts.dir, "printed-secret.json", r->out, printed, sizeof(printed));
    run_free(r);
    const char *const check[] = {"--config", printed, "--check-config", NULL};
    run_broker(r, check, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "credentials.daemonPassword: \"(set)\" is what --print-config shows");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

/* Secrets from systemd's LoadCredential= ($CREDENTIALS_DIRECTORY), used
 * when the configuration sets no other source. */
static void test_secrets_from_credentials_directory(void **state)
{
    char path[H_PATH], pw[H_PATH], env_dir[H_PATH + 32];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "daemon-password", "cred-s3cr3t\n", pw, sizeof(pw));
    make_config(&ts.dir, "enrollment-token", "tok-cred-s3cr3t\n", pw, sizeof(pw));
    make_config(&ts.dir, "c.json",
                "{\"serverUrl\":\"http://127.0.0.1:1\",\"controlSocketUrl\":"
                "\"ws://127.0.0.1:1/control\",\"credentials\":{\"teamClusterId\":\"c\"},"
                "\"broker\":{\"listen\":\"/tmp/x-cred.sock\"}}",
                path, sizeof(path));
    snprintf(env_dir, sizeof(env_dir), "CREDENTIALS_DIRECTORY=%s", ts.dir.path);
    const char *const env[] = {env_dir, NULL};
    const char *const print[] = {"--config", path, "--print-config", NULL};
    run_broker(r, print, env);
    assert_int_equal(r->status, 0);
    char *v = printed_value(r->out, "credentials.daemonPassword");
    assert_string_equal(v, "\"(set)\"");
    free(v);
    v = printed_value(r->out, "credentials.enrollmentToken");
    assert_string_equal(v, "\"(set)\"");
    free(v);
    assert_not_contains(r->out, "s3cr3t");
    run_free(r);

    /* without the directory, nothing is set */
    run_broker(r, print, NULL);
    assert_int_equal(r->status, 0);
    v = printed_value(r->out, "credentials.daemonPassword");
    assert_string_equal(v, "null");
    free(v);
    run_free(r);

    /* an empty credential (a lone newline: systemd 252's SetCredential=
     * fallback for a LoadCredential= file that is not there) is not given */
    make_config(&ts.dir, "daemon-password", "\n", pw, sizeof(pw));
    run_broker(r, print, env);
    assert_int_equal(r->status, 0);
    v = printed_value(r->out, "credentials.daemonPassword");
    assert_string_equal(v, "null");
    free(v);
    run_free(r);
    /* but an empty password file named in the configuration is an error */
    char nopw[H_PATH];
    make_config(&ts.dir, "empty-pw", "\n", nopw, sizeof(nopw));
    const char *const print_file[] = {"--config",       path, "--daemon-password-file", nopw,
                                      "--print-config", NULL};
    run_broker(r, print_file, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "is empty");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

/* A configuration file holding a secret that others may read is worth a
 * warning (the broker still starts). */
static void test_readable_secret_file_warns(void **state)
{
    char path[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "s.json",
                "{\"credentials\":{\"daemonPassword\":\"w-s3cr3t\"},"
                "\"broker\":{\"listen\":\"/tmp/x-w.sock\"}}",
                path, sizeof(path));
    const char *const check[] = {"--config", path, "--check-config", NULL};
    assert_int_equal(chmod(path, 0644), 0);
    run_broker(r, check, NULL);
    assert_int_equal(r->status, 0);
    assert_contains(r->err, "holds a secret and is readable by every user (mode 0644)");
    assert_not_contains(r->err, "w-s3cr3t");
    run_free(r);
    assert_int_equal(chmod(path, 0600), 0);
    run_broker(r, check, NULL);
    assert_int_equal(r->status, 0);
    assert_not_contains(r->err, "holds a secret");
    run_free(r);
    tmpdir_remove(&ts.dir);
}

static void test_help_lists_every_key(void **state)
{
    char path[H_PATH];
    struct run *help = &ts.run, *printed = &ts.run2;
    int keys = 0;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "ok.json", valid_config, path, sizeof(path));
    const char *const args_help[] = {"--help", NULL};
    run_broker(help, args_help, NULL);
    assert_int_equal(help->status, 0);
    assert_contains(help->out, "Usage: volt-broker");
    assert_contains(help->out, "SIGHUP");
    /* --print-config shows every setting; --help must explain each one */
    const char *const args_print[] = {"--config", path, "--print-config", NULL};
    run_broker(printed, args_print, NULL);
    assert_int_equal(printed->status, 0);
    cJSON *all = cJSON_Parse(printed->out);
    assert_true(cJSON_IsObject(all));
    keys = check_help_explains(all, "", help->out);
    assert_true(keys >= 30);
    cJSON_Delete(all);
    run_free(help);
    run_free(printed);

    const char *const args_h[] = {"-h", NULL};
    run_broker(help, args_h, NULL);
    assert_int_equal(help->status, 0);
    assert_contains(help->out, "Usage: volt-broker");
    run_free(help);
    tmpdir_remove(&ts.dir);
}

static void test_unknown_flag(void **state)
{
    char path[H_PATH];
    struct run *r = &ts.run;
    (void)state;

    tmpdir_make(&ts.dir);
    make_config(&ts.dir, "ok.json", valid_config, path, sizeof(path));
    const char *const args[] = {"--config", path, "--no-such-flag", NULL};
    run_broker(r, args, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "unknown option '--no-such-flag'");
    run_free(r);

    /* a mistyped secret flag with its value: the name, never the value */
    const char *const args2[] = {"--config", path, "--passwd=hunter2-5ecret", NULL};
    run_broker(r, args2, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "unknown option '--passwd'");
    assert_not_contains(r->err, "5ecret");
    run_free(r);

    /* a flag without its value */
    const char *const args3[] = {"--config", path, "--log-level", NULL};
    run_broker(r, args3, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    assert_contains(r->err, "--log-level needs a value");
    run_free(r);

    /* -c without a file */
    const char *const args4[] = {"-c", NULL};
    run_broker(r, args4, NULL);
    assert_int_equal(r->status, CONFIG_EXIT);
    run_free(r);
    tmpdir_remove(&ts.dir);
}

/* ---- setup and teardown shared by every test ---- */

static int setup_nothing(void **state)
{
    (void)state;
    memset(&ts, 0, sizeof(ts));
    ts.notify.fd = -1;
    ts.listen_fd = -1;
    return 0;
}

/* A client kept in ts, so that a failing test does not leak it. */
static struct h_conn *keep_conn(struct h_conn *c)
{
    assert_non_null(c);
    for (int i = 0; i < MAX_CONNS; i++) {
        if (!ts.conns[i]) {
            ts.conns[i] = c;
            return c;
        }
    }
    h_conn_close(c);
    fail_msg("more than %d clients in one test", MAX_CONNS);
    return NULL;
}

static void drop_conn(struct h_conn *c)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        if (ts.conns[i] == c)
            ts.conns[i] = NULL;
    }
    h_conn_close(c);
}

static int teardown_all(void **state)
{
    int rc = 0;
    (void)state;
    for (int i = 0; i < MAX_CONNS; i++)
        drop_conn(ts.conns[i]);
    /* The tests stop their broker and check how it went; one still running
     * here means a test failed already, so it is only cleaned up. */
    if (ts.broker.pid > 0)
        rc = h_broker_stop(&ts.broker, 10000) == 0 ? 0 : -1;
    h_broker_cleanup(&ts.broker);
    h_server_stop(&ts.server);
    if (ts.notify.fd >= 0)
        close(ts.notify.fd);
    if (ts.listen_fd >= 0)
        close(ts.listen_fd);
    run_free(&ts.run);
    run_free(&ts.run2);
    tmpdir_remove(&ts.dir);
    return rc;
}

/* ==== 2. SIGTERM drain (broker + dev server) ==== */

static const char *const drain_config =
    "{\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
    "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"
    "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"},"
    "\"commandTimeout\":10000,"
    "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"info\","
    "\"drainTimeout\":3000}}";

static int setup_drain(void **state)
{
    setup_nothing(state);
    if (h_server_start(&ts.server, NULL) < 0)
        return -1;
    return h_broker_start(&ts.broker, &ts.server, drain_config, NULL);
}

/* A client that handles "slow-handler". */
static struct h_conn *register_slow_handler(void)
{
    assert_int_equal(h_wait_state(ts.broker.sock, "ready", h_slack_ms(15000)), 0);
    struct h_conn *c = keep_conn(h_conn_hello(ts.broker.sock, "t-drain"));
    assert_int_equal(
        h_conn_send(c, "{\"op\":\"register\",\"id\":1,\"commands\":[\"slow-handler\"]}"), 0);
    expect_result_ok(c, 1);
    return c;
}

/* The dev server sends server:request "slow-handler" from a child process
 * (the HTTP call blocks until it is answered). The child exits 0 when the
 * answer is what we expect: the handler's data when expect_code is NULL,
 * else an error with that code. */
static pid_t server_request_in_child(const char *expect_code)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    cJSON *x = h_http_json(&ts.server, "POST", "/_dev/server-request",
                           "{\"command\":\"slow-handler\",\"payload\":{\"n\":7},"
                           "\"timeoutMs\":15000}");
    bool ok;
    if (expect_code) {
        const char *code = x ? h_json_str(x, "response.error.code") : NULL;
        ok = code && !strcmp(code, expect_code);
    } else {
        const char *answer = x ? h_json_str(x, "response.data.answer") : NULL;
        ok = answer && !strcmp(answer, "real-answer") && h_json_num(x, "response.data.n", 0) == 7;
    }
    if (!ok) {
        char *t = x ? cJSON_PrintUnformatted(x) : NULL;
        fprintf(stderr, "server-request got %s\n", t ? t : "(nothing)");
        free(t);
    }
    _exit(ok ? 0 : 1);
}

/* The server's answer, as judged by the child; on failure, what the broker
 * and the server saw. */
static void expect_child_ok(pid_t child, const char *what)
{
    if (wait_child(child, h_slack_ms(10000)) == 0)
        return;
    h_broker_dump_log(&ts.broker);
    char *events = NULL;
    h_http(&ts.server, "GET", "/_dev/events?since=0", NULL, &events);
    fprintf(stderr, "dev server events: %s\n", events ? events : "(none)");
    free(events);
    fail_msg("%s", what);
}

/* While draining: the socket is gone and the live client's new requests
 * are refused, but the broker is still there. */
static void check_draining(struct h_conn *c)
{
    char line[128];
    snprintf(line, sizeof(line), "waiting up to %d ms for 1 inbound", DRAIN_MS);
    assert_int_equal(h_broker_wait_log(&ts.broker, "stopping: SIGTERM", 2000), 0);
    assert_int_equal(h_broker_wait_log(&ts.broker, line, 2000), 0);
    assert_int_equal(kill(ts.broker.pid, 0), 0);
    assert_true(connect_refused(ts.broker.sock));
    assert_int_equal(
        h_conn_send(c, "{\"op\":\"request\",\"id\":2,\"command\":\"echo\",\"timeout_ms\":1000}"),
        0);
    cJSON *r = h_conn_expect(c, "result", 2, h_slack_ms(2000));
    assert_non_null(r);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    assert_string_equal(h_json_str(r, "code"), "ShuttingDown");
    cJSON_Delete(r);
}

static void test_sigterm_drain_lets_handler_answer(void **state)
{
    (void)state;
    struct h_conn *c = register_slow_handler();
    pid_t child = server_request_in_child(NULL);

    cJSON *call = h_conn_expect(c, "call", -1, h_slack_ms(5000));
    assert_non_null(call);
    assert_string_equal(h_json_str(call, "command"), "slow-handler");
    long long call_id = (long long)h_json_num(call, "id", 0);
    cJSON_Delete(call);

    uint64_t t0 = h_now_ms();
    assert_int_equal(kill(ts.broker.pid, SIGTERM), 0);
    check_draining(c);

    /* The handler takes its time, then answers for real. */
    int64_t wait = 300 - (int64_t)(h_now_ms() - t0);
    if (wait > 0)
        h_sleep_ms((int)wait);
    char reply[256];
    snprintf(reply, sizeof(reply),
             "{\"op\":\"reply\",\"id\":%lld,\"ok\":true,\"data\":{\"answer\":\"real-answer\","
             "\"n\":7}}",
             call_id);
    assert_int_equal(h_conn_send(c, reply), 0);

    expect_child_ok(child, "the server did not get the handler's answer");
    assert_int_equal(h_broker_wait(&ts.broker, DRAIN_MS), 0);
    uint64_t elapsed = h_now_ms() - t0;
    /* It stopped because the call finished, well before drainTimeout. */
    assert_true(elapsed >= 300);
    if (!h_under_valgrind())
        assert_true(elapsed < DRAIN_MS);
    assert_false(h_broker_log_contains(&ts.broker, "drain timeout"));
    assert_true(h_broker_log_contains(&ts.broker, "upstream session closed"));
    assert_true(h_broker_log_contains(&ts.broker, "stopped"));
    /* the client was let go, and the server saw exactly one answer */
    assert_true(h_conn_closed(c, 2000));
    drop_conn(c);
    assert_int_equal(h_server_counter(&ts.server, "duplicateServerResponses"), 0);
    assert_int_equal(h_server_counter(&ts.server, "lateServerResponses"), 0);
}

static void test_sigterm_drain_timeout_answers_handler_error(void **state)
{
    (void)state;
    struct h_conn *c = register_slow_handler();
    pid_t child = server_request_in_child("HandlerError");

    cJSON *call = h_conn_expect(c, "call", -1, h_slack_ms(5000));
    assert_non_null(call);
    cJSON_Delete(call);

    uint64_t t0 = h_now_ms();
    assert_int_equal(kill(ts.broker.pid, SIGTERM), 0);
    check_draining(c);
    /* never answered */
    assert_int_equal(h_broker_wait(&ts.broker, DRAIN_MS + 3000), 0);
    uint64_t elapsed = h_now_ms() - t0;
    assert_true(elapsed >= DRAIN_MS - 100);
    if (!h_under_valgrind())
        assert_true(elapsed < DRAIN_MS + 2000);
    assert_true(h_broker_log_contains(
        &ts.broker, "drain timeout: answering 1 unfinished inbound requests with HandlerError"));
    expect_child_ok(child, "the server did not get HandlerError for the unanswered call");
    assert_true(h_conn_closed(c, 2000));
    drop_conn(c);
    assert_int_equal(h_server_counter(&ts.server, "duplicateServerResponses"), 0);
}

/* ==== 3. SIGHUP ==== */

static int setup_local(void **state)
{
    setup_nothing(state);
    return h_broker_start(&ts.broker, NULL,
                          "{\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\","
                          "\"logLevel\":\"info\",\"limits\":{\"maxClients\":8}}}",
                          NULL);
}

static void rewrite_config(const char *level, const char *max_clients, const char *extra)
{
    char text[2 * H_PATH + 512];
    snprintf(text, sizeof(text),
             "{%s\"broker\":{\"listen\":\"%s\",\"stateDir\":\"%s\",\"logLevel\":\"%s\","
             "\"limits\":{\"maxClients\":%s}}}",
             extra, ts.broker.sock, ts.broker.state_dir, level, max_clients);
    write_file(ts.broker.config, text);
}

/* A reply for a call that never was: logged only at debug level. */
static void send_stray_reply(struct h_conn *c, int call_id)
{
    char frame[128];
    snprintf(frame, sizeof(frame), "{\"op\":\"reply\",\"id\":%d,\"ok\":true}", call_id);
    assert_int_equal(h_conn_send(c, frame), 0);
    ping(c, call_id);
}

static bool stray_reply_logged(int call_id)
{
    char line[128];
    snprintf(line, sizeof(line), "reply to unknown or expired call %d dropped", call_id);
    return h_broker_log_contains(&ts.broker, line);
}

/* A second client is turned away with LimitExceeded (maxClients 1). */
static void expect_refused_over_max_clients(void)
{
    struct h_conn *c = keep_conn(h_conn_open(ts.broker.sock));
    h_conn_send(c, "{\"op\":\"hello\",\"min_version\":1,\"max_version\":1}");
    cJSON *e = h_conn_expect(c, "error", -1, h_slack_ms(5000));
    assert_non_null(e);
    assert_string_equal(h_json_str(e, "code"), "LimitExceeded");
    cJSON_Delete(e);
    assert_true(h_conn_closed(c, h_slack_ms(5000)));
    drop_conn(c);
}

static int count_log_lines(const char *needle)
{
    FILE *f = fopen(ts.broker.log, "r");
    char line[4096];
    int n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void test_sighup_reload(void **state)
{
    (void)state;
    struct h_conn *a = keep_conn(h_conn_hello(ts.broker.sock, "t-hup-a"));

    /* info: the debug line does not appear; two clients fit */
    send_stray_reply(a, 501);
    assert_false(stray_reply_logged(501));
    drop_conn(keep_conn(h_conn_hello(ts.broker.sock, "t-hup-b")));
    assert_int_equal(h_broker_wait_log(&ts.broker, "disconnected: name=t-hup-b ", 5000), 0);

    rewrite_config("debug", "1", "");
    assert_int_equal(kill(ts.broker.pid, SIGHUP), 0);
    assert_int_equal(h_broker_wait_log(&ts.broker, "reloaded: commandTimeout", 5000), 0);
    /* debug now */
    send_stray_reply(a, 502);
    assert_true(stray_reply_logged(502));
    /* maxClients 1, and a is connected */
    expect_refused_over_max_clients();
    ping(a, 1);

    /* a broken file: explained, nothing applied, still serving */
    rewrite_config("error", "8", "\"commandTimeout\":\"abc\",");
    assert_int_equal(kill(ts.broker.pid, SIGHUP), 0);
    assert_int_equal(
        h_broker_wait_log(&ts.broker, "SIGHUP: configuration has problems, nothing reloaded", 5000),
        0);
    /* each problem on a log line of its own, naming the file and the key */
    char problem[H_PATH + 128];
    snprintf(problem, sizeof(problem), "error SIGHUP: %s: commandTimeout: 'abc' is not",
             ts.broker.config);
    assert_int_equal(h_broker_wait_log(&ts.broker, problem, 3000), 0);
    send_stray_reply(a, 503);
    assert_true(stray_reply_logged(503)); /* still debug */
    expect_refused_over_max_clients();    /* still 1 */
    assert_int_equal(kill(ts.broker.pid, 0), 0);

    /* fixed again: applied (a second "reloaded" line) */
    rewrite_config("info", "8", "");
    assert_int_equal(kill(ts.broker.pid, SIGHUP), 0);
    uint64_t end = h_now_ms() + (uint64_t)h_slack_ms(5000);
    while (count_log_lines("reloaded: commandTimeout") < 2) {
        assert_true(h_now_ms() < end);
        h_sleep_ms(20);
    }
    send_stray_reply(a, 504);
    assert_false(stray_reply_logged(504));
    drop_conn(keep_conn(h_conn_hello(ts.broker.sock, "t-hup-b2")));
    drop_conn(a);
    assert_int_equal(h_broker_stop(&ts.broker, 10000), 0);
}

/* ==== 4. sd_notify ==== */

static void notify_open(struct notify_sock *n)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    tmpdir_make(&ts.dir);
    snprintf(n->path, sizeof(n->path), "%s/notify", ts.dir.path);
    set_sun_path(&a, n->path);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(n->fd >= 0);
    assert_int_equal(bind(n->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

/* Receives datagrams until one has the line `want` (then true; a final '*'
 * in want matches any rest of the line), counting WATCHDOG=1 datagrams
 * seen on the way into *watchdogs if not NULL. */
static bool notify_expect(struct notify_sock *n, const char *want, int timeout_ms, int *watchdogs)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        char msg[1024];
        int64_t left = (int64_t)end - (int64_t)h_now_ms();
        struct pollfd pfd = {n->fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        ssize_t r = recv(n->fd, msg, sizeof(msg) - 1, 0);
        if (r < 0)
            return false;
        msg[r] = '\0';
        /* line by line: "READY=1\nSTATUS=..." */
        bool hit = false;
        for (char *save = NULL, *line = strtok_r(msg, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            if (watchdogs && !strcmp(line, "WATCHDOG=1"))
                (*watchdogs)++;
            size_t wl = want ? strlen(want) : 0;
            if (want && wl && want[wl - 1] == '*' ? !strncmp(line, want, wl - 1)
                                                  : want && !strcmp(line, want))
                hit = true;
        }
        if (hit)
            return true;
    }
}

static const char *const local_config =
    "{\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"info\"}}";

static void start_with_notify(const char *watchdog_pid)
{
    char env_notify[H_PATH + 16];
    notify_open(&ts.notify);
    snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", ts.notify.path);
    const char *const env[] = {env_notify, "WATCHDOG_USEC=200000", watchdog_pid, NULL};
    struct h_broker_opts o = {.extra_env = env, .keep_notify_socket = true};
    assert_int_equal(h_broker_start_opts(&ts.broker, NULL, local_config, &o), 0);
}

static void test_sdnotify(void **state)
{
    (void)state;
    start_with_notify(NULL);
    assert_true(notify_expect(&ts.notify, "READY=1", h_slack_ms(5000), NULL));
    /* WATCHDOG_USEC 200 ms, WATCHDOG_PID unset: a ping every 100 ms or so */
    int watchdogs = 0;
    notify_expect(&ts.notify, NULL, 1000, &watchdogs);
    if (watchdogs < 3 || watchdogs > 25)
        fail_msg("%d WATCHDOG=1 in one second, expected about 10", watchdogs);
    /* a reload is announced and completed */
    assert_int_equal(kill(ts.broker.pid, SIGHUP), 0);
    assert_true(notify_expect(&ts.notify, "RELOADING=1", h_slack_ms(5000), NULL));
    assert_true(notify_expect(&ts.notify, "READY=1", h_slack_ms(5000), NULL));

    assert_int_equal(kill(ts.broker.pid, SIGTERM), 0);
    assert_true(notify_expect(&ts.notify, "STOPPING=1", h_slack_ms(5000), NULL));
    assert_int_equal(h_broker_wait(&ts.broker, 5000), 0);
}

/* systemctl status shows the upstream state and why. */
static void test_sdnotify_upstream_status(void **state)
{
    (void)state;
    char env_notify[H_PATH + 16];
    notify_open(&ts.notify);
    snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", ts.notify.path);
    const char *const env[] = {env_notify, NULL};
    struct h_broker_opts o = {.extra_env = env, .keep_notify_socket = true};
    assert_int_equal(h_server_start(&ts.server, NULL), 0);
    assert_int_equal(h_broker_start_opts(&ts.broker, &ts.server, drain_config, &o), 0);
    assert_true(notify_expect(&ts.notify, "STATUS=upstream ready: registered as cluster-dev",
                              h_slack_ms(10000), NULL));
    assert_int_equal(h_http(&ts.server, "POST", "/_dev/disconnect", "{}", NULL), 200);
    assert_true(notify_expect(&ts.notify, "STATUS=upstream backoff: *", h_slack_ms(10000), NULL));
    assert_true(notify_expect(&ts.notify, "STATUS=upstream ready: registered as cluster-dev",
                              h_slack_ms(10000), NULL));
    assert_int_equal(h_broker_stop(&ts.broker, 5000), 0);
}

static void test_sdnotify_watchdog_for_another_pid(void **state)
{
    (void)state;
    /* systemd asked pid 1 for pings, not us */
    start_with_notify("WATCHDOG_PID=1");
    assert_true(notify_expect(&ts.notify, "READY=1", h_slack_ms(5000), NULL));
    int watchdogs = 0;
    notify_expect(&ts.notify, NULL, 600, &watchdogs);
    assert_int_equal(watchdogs, 0);
    assert_int_equal(h_broker_stop(&ts.broker, 5000), 0);
}

/* ==== 5. socket activation ==== */

static void test_socket_activation(void **state)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct stat st;
    char path[H_PATH];
    (void)state;

    tmpdir_make(&ts.dir);
    snprintf(path, sizeof(path), "%s/activated.sock", ts.dir.path);
    set_sun_path(&a, path);
    ts.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ts.listen_fd >= 0);
    assert_int_equal(bind(ts.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ts.listen_fd, 16), 0);

    /* The configured listen path is elsewhere; the passed socket wins. */
    struct h_broker_opts o = {
        .socket_activation = true,
        .listen_fd = ts.listen_fd,
        .wait_log = "listening on",
    };
    assert_int_equal(h_broker_start_opts(&ts.broker, NULL, local_config, &o), 0);
    struct h_conn *c = keep_conn(h_conn_hello(path, "t-activated"));
    /* it is this broker that answers */
    assert_int_equal(h_conn_send(c, "{\"op\":\"status\",\"id\":1}"), 0);
    cJSON *r = h_conn_expect(c, "result", 1, h_slack_ms(5000));
    assert_non_null(r);
    assert_int_equal((int)h_json_num(r, "data.broker.pid", 0), (int)ts.broker.pid);
    cJSON_Delete(r);
    drop_conn(c);
    assert_int_equal(
        h_broker_wait_log(&ts.broker, "listening on the socket passed by systemd", 3000), 0);
    assert_int_equal(access(ts.broker.sock, F_OK), -1); /* never bound its own */

    assert_int_equal(h_broker_stop(&ts.broker, 5000), 0);
    /* systemd's socket is systemd's to remove */
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
}

static void test_socket_activation_for_another_pid_ignored(void **state)
{
    (void)state;
    /* LISTEN_PID names someone else: the variables are not ours, the broker
     * binds its configured socket (and does not touch fd 3). */
    const char *const env[] = {"LISTEN_FDS=1", "LISTEN_PID=1", NULL};
    assert_int_equal(h_broker_start(&ts.broker, NULL, local_config, env), 0);
    drop_conn(keep_conn(h_conn_hello(ts.broker.sock, "t-not-activated")));
    assert_false(h_broker_log_contains(&ts.broker, "passed by systemd"));
    assert_int_equal(h_broker_stop(&ts.broker, 5000), 0);
    assert_int_equal(access(ts.broker.sock, F_OK), -1); /* its own socket is removed */
}

/* ==== the open-file budget ==== */

static void start_with_nofile(const struct rlimit *nofile, unsigned max_clients)
{
    char config[256];
    snprintf(config, sizeof(config),
             "{\"broker\":{\"listen\":\"%%SOCK%%\",\"stateDir\":\"%%STATE%%\","
             "\"limits\":{\"maxClients\":%u}}}",
             max_clients);
    struct h_broker_opts o = {.nofile = nofile};
    assert_int_equal(h_broker_start_opts(&ts.broker, NULL, config, &o), 0);
}

/* A soft limit below what maxClients needs, a hard limit above it: the
 * broker raises the soft limit as far as needed, not further. */
static void test_open_file_limit_raised(void **state)
{
    (void)state;
    struct rlimit ours;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &ours), 0);
    rlim_t target = ours.rlim_max != RLIM_INFINITY && ours.rlim_max < 464 ? ours.rlim_max : 464;
    struct rlimit low = {target / 2, ours.rlim_max};
    unsigned max_clients = (unsigned)target - 64;
    char line[128];

    start_with_nofile(&low, max_clients);
    if (h_under_valgrind()) {
        /* valgrind keeps descriptors of its own above the limit it shows a
         * program and refuses to raise it: the broker must say so. */
        assert_int_equal(h_broker_wait_log(&ts.broker, "serving at most ", 3000), 0);
        assert_int_equal(h_broker_stop(&ts.broker, 5000), 0);
        return;
    }
    snprintf(line, sizeof(line), " to %u for maxClients %u", (unsigned)target, max_clients);
    assert_int_equal(h_broker_wait_log(&ts.broker, line, 3000), 0);
    assert_false(h_broker_log_contains(&ts.broker, "serving at most"));
    char path[64], *limits;
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)ts.broker.pid);
    limits = h_file_text(path);
    assert_non_null(limits);
    snprintf(line, sizeof(line), "Max open files            %u", (unsigned)target);
    assert_non_null(strstr(limits, line));
    free(limits);
    assert_int_equal(h_broker_stop(&ts.broker, 5000), 0);
}

/* A hard limit too low for maxClients: said so, and the clients that fit
 * are served while the next one is told LimitExceeded (rather than failing
 * in accept() with nothing said). */
static void test_open_file_limit_caps_max_clients(void **state)
{
    (void)state;
    struct rlimit tight = {160, 160};
    struct h_conn *conns[160];
    unsigned fits = 0;
    char *log, *at;

    start_with_nofile(&tight, 1000);
    assert_int_equal(h_broker_wait_log(&ts.broker, "serving at most ", 3000), 0);
    log = h_file_text(ts.broker.log);
    at = strstr(log, "serving at most ");
    assert_int_equal(sscanf(at, "serving at most %u clients", &fits), 1);
    free(log);
    assert_true(fits > 0 && fits < 160);
    for (unsigned i = 0; i < fits; i++) {
        conns[i] = h_conn_hello(ts.broker.sock, "t-fd");
        assert_non_null(conns[i]);
    }
    expect_refused_over_max_clients();
    for (unsigned i = 0; i < fits; i++)
        h_conn_close(conns[i]);
    assert_int_equal(h_broker_stop(&ts.broker, 10000), 0);
}

/* ==== 6. the log ==== */

#define LOG_PASSWORD "pw-S3cr3t-4711"
#define LOG_TOKEN    "tok-S3cr3t-0815"

static int setup_log(void **state)
{
    static const char *const args[] = {"--password", LOG_PASSWORD, "--token", LOG_TOKEN, NULL};
    setup_nothing(state);
    if (h_server_start(&ts.server, args) < 0)
        return -1;
    return h_broker_start(&ts.broker, &ts.server,
                          "{\"serverUrl\":\"http://127.0.0.1:%PORT%\","
                          "\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
                          "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"
                          "\"credentials\":{\"teamClusterId\":\"cluster-dev\","
                          "\"daemonPassword\":\"" LOG_PASSWORD "\","
                          "\"enrollmentToken\":\"" LOG_TOKEN "\"},"
                          "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\","
                          "\"logLevel\":\"debug\"}}",
                          NULL);
}

/* Checks every line of the log: no secret, and every upstream state change
 * ("upstream: A -> B: reason") with a reason. Returns the number of
 * state changes; *left_ready tells whether one went from ready elsewhere. */
static int check_log_lines(const char *rotated, bool *left_ready)
{
    FILE *f = fopen(ts.broker.log, "r");
    char line[4096];
    int transitions = 0;

    assert_non_null(f);
    *left_ready = false;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "S3cr3t") || strstr(line, rotated)) {
            fclose(f);
            fail_msg("a secret in the log: %s", line);
        }
        const char *u = strstr(line, "upstream: ");
        const char *arrow = u ? strstr(u, " -> ") : NULL;
        if (!arrow)
            continue;
        const char *colon = strstr(arrow + 4, ": ");
        if (!colon || strlen(colon + 2) < 4) {
            fclose(f);
            fail_msg("a state change without a reason: %s", line);
        }
        transitions++;
        *left_ready |= strstr(u, "ready -> ") == u + 10;
    }
    fclose(f);
    return transitions;
}

static void test_log_contents(void **state)
{
    char line[256];
    (void)state;

    assert_int_equal(h_wait_state(ts.broker.sock, "ready", h_slack_ms(15000)), 0);
    cJSON *cred = h_http_json(&ts.server, "GET", "/_dev/credentials", NULL);
    char rotated[128];
    assert_non_null(h_json_str(cred, "daemonPassword"));
    snprintf(rotated, sizeof(rotated), "%s", h_json_str(cred, "daemonPassword"));
    cJSON_Delete(cred);
    assert_string_not_equal(rotated, LOG_PASSWORD);

    /* The client asks for the password (allowed: our uid): the answer goes
     * to the client, not to the log. */
    struct h_conn *c = keep_conn(h_conn_hello(ts.broker.sock, "t-logs"));
    assert_int_equal(h_conn_send(c, "{\"op\":\"credential\",\"id\":1,\"name\":\"daemonPassword\"}"),
                     0);
    cJSON *r = h_conn_expect(c, "result", 1, h_slack_ms(5000));
    assert_non_null(r);
    assert_string_equal(h_json_str(r, "data"), rotated);
    cJSON_Delete(r);
    /* A state change with a reason: the server drops us, we come back. */
    assert_int_equal(
        h_http(&ts.server, "POST", "/_dev/disconnect", "{\"mode\":\"transport\"}", NULL), 200);
    r = h_conn_expect_event(c, "disconnected", h_slack_ms(5000));
    assert_non_null(r);
    cJSON_Delete(r);
    assert_int_equal(h_wait_state(ts.broker.sock, "ready", h_slack_ms(15000)), 0);
    drop_conn(c);

    /* connect, hello and disconnect name the peer's pid and uid (ours) */
    snprintf(line, sizeof(line), "connected: pid=%d uid=%u gid=%u", (int)getpid(),
             (unsigned)getuid(), (unsigned)getgid());
    assert_int_equal(h_broker_wait_log(&ts.broker, line, 2000), 0);
    snprintf(line, sizeof(line), "hello: name=t-logs pid=%d uid=%u", (int)getpid(),
             (unsigned)getuid());
    assert_true(h_broker_log_contains(&ts.broker, line));
    snprintf(line, sizeof(line), "disconnected: name=t-logs pid=%d uid=%u: ", (int)getpid(),
             (unsigned)getuid());
    assert_int_equal(h_broker_wait_log(&ts.broker, line, 5000), 0);

    assert_int_equal(h_broker_stop(&ts.broker, 10000), 0);

    /* enrolling, connecting, registering, ready; dropped; ..., ready again;
     * stopping */
    bool left_ready;
    assert_true(check_log_lines(rotated, &left_ready) >= 6);
    assert_true(left_ready);
    assert_true(h_broker_log_contains(&ts.broker, "-> ready: registered as cluster-dev"));
    assert_true(h_broker_log_contains(&ts.broker, "enrolled as cluster-dev"));
}

/* ==== metrics and JSON logs ==== */

static char prom[H_PATH + 16];

static int setup_metrics(void **state)
{
    char config[2 * H_PATH + 256];
    setup_nothing(state);
    tmpdir_make(&ts.dir);
    snprintf(prom, sizeof(prom), "%s/volt.prom", ts.dir.path);
    snprintf(config, sizeof(config),
             "{\"broker\":{\"listen\":\"%%SOCK%%\",\"stateDir\":\"%%STATE%%\","
             "\"logLevel\":\"info\",\"logFormat\":\"json\","
             "\"metrics\":{\"textfile\":\"%s\",\"interval\":1000}}}",
             prom);
    return h_broker_start(&ts.broker, NULL, config, NULL);
}

/* Written again since our client came (every interval, whole or not at all). */
static bool textfile_written(void *arg)
{
    char *text = h_file_text(arg);
    bool ok = text && strstr(text, "volt_broker_client_connections{name=\"t-metrics\"} 1\n") &&
              strstr(text, "# EOF\n");
    free(text);
    return ok;
}

/* The metrics op and the node_exporter textfile carry the same families;
 * every log line is one JSON object. */
static void test_metrics_and_json_logs(void **state)
{
    (void)state;
    struct h_conn *c = keep_conn(h_conn_hello(ts.broker.sock, "t-metrics"));
    assert_int_equal(h_conn_send(c, "{\"op\":\"metrics\",\"id\":1}"), 0);
    cJSON *r = h_conn_expect(c, "result", 1, h_slack_ms(5000));
    assert_non_null(r);
    const char *text = h_json_str(r, "data");
    assert_non_null(text);
    static const char *const families[] = {
        "# TYPE volt_broker_upstream_state gauge\n",
        "volt_broker_upstream_state{state=\"idle\"} 1\n",
        "volt_broker_upstream_state{state=\"ready\"} 0\n",
        "# TYPE volt_broker_requests_total counter\n",
        "volt_broker_client_connections{name=\"t-metrics\"} 1\n",
        "# TYPE volt_broker_request_duration_seconds histogram\n",
        "volt_broker_request_duration_seconds_bucket{le=\"+Inf\"} 0\n",
        "volt_broker_memory_budget_bytes 268435456\n",
        "# EOF\n",
    };
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (!strstr(text, families[i]))
            fail_msg("metrics lack '%s' in:\n%s", families[i], text);
    }
    cJSON_Delete(r);

    assert_int_equal(h_wait_for(textfile_written, prom, h_slack_ms(5000)), 0);
    char *file = h_file_text(prom);
    assert_non_null(strstr(file, "volt_broker_upstream_state{state=\"idle\"} 1\n"));
    assert_non_null(strstr(file, "volt_broker_client_connections{name=\"t-metrics\"} 1\n"));
    free(file);
    struct stat st;
    assert_int_equal(stat(prom, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    drop_conn(c);
    assert_int_equal(h_broker_stop(&ts.broker, 10000), 0);
    /* JSON lines: each parses, with time, level and message. */
    char *log = h_file_text(ts.broker.log);
    assert_non_null(log);
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (!j || !h_json_str(j, "time") || !h_json_str(j, "level") || !h_json_str(j, "message"))
            fail_msg("not a JSON log line: %s", line);
        cJSON_Delete(j);
        lines++;
    }
    assert_true(lines > 3);
    free(log);
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, teardown_all)

int main(void)
{
    /* Our own environment must not leak into the brokers we start. */
    static const char *const scrub[] = {
        "NOTIFY_SOCKET",   "WATCHDOG_USEC",           "WATCHDOG_PID",          "LISTEN_FDS",
        "LISTEN_PID",      "LISTEN_FDNAMES",          "VOLT_CONFIG",           "VOLT_LOG_LEVEL",
        "VOLT_LISTEN",     "VOLT_DAEMON_PASSWORD",    "VOLT_ENROLLMENT_TOKEN", "JOURNAL_STREAM",
        "VOLT_SERVER_URL", "VOLT_CONTROL_SOCKET_URL", "CREDENTIALS_DIRECTORY",
    };
    for (size_t i = 0; i < sizeof(scrub) / sizeof(scrub[0]); i++)
        unsetenv(scrub[i]);
    h_apply_test_filter();

    const struct CMUnitTest tests[] = {
        T(test_config_unknown_key_suggests, setup_nothing),
        T(test_config_wrong_type_names_key, setup_nothing),
        T(test_config_invalid_json_file_line, setup_nothing),
        T(test_config_valid_ok, setup_nothing),
        T(test_secret_on_argv_refused, setup_nothing),
        T(test_env_and_flag_override, setup_nothing),
        T(test_print_config_hides_secrets, setup_nothing),
        T(test_print_config_round_trip, setup_nothing),
        T(test_secrets_from_credentials_directory, setup_nothing),
        T(test_readable_secret_file_warns, setup_nothing),
        T(test_help_lists_every_key, setup_nothing),
        T(test_unknown_flag, setup_nothing),
        T(test_sigterm_drain_lets_handler_answer, setup_drain),
        T(test_sigterm_drain_timeout_answers_handler_error, setup_drain),
        T(test_sighup_reload, setup_local),
        T(test_sdnotify, setup_nothing),
        T(test_sdnotify_watchdog_for_another_pid, setup_nothing),
        T(test_sdnotify_upstream_status, setup_nothing),
        T(test_socket_activation, setup_nothing),
        T(test_socket_activation_for_another_pid_ignored, setup_nothing),
        T(test_open_file_limit_raised, setup_nothing),
        T(test_open_file_limit_caps_max_clients, setup_nothing),
        T(test_log_contents, setup_log),
        T(test_metrics_and_json_logs, setup_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
