/* The program runner of `serve --exec`, with real programs (sh): a reply
 * from stdout, a failing program (its stderr is the message), one that
 * prints no JSON, one killed by a signal, a slow one killed at its time
 * limit together with what it started, --jobs holding calls back, one
 * that leaves a child holding its pipes, one that is not there, and
 * several at once. Every child is reaped (no zombie left). */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "runner.h"
#include "util.h"
#include "value.h"

#define MAX_ANSWERS 16

struct got {
    int n;
    uint64_t id[MAX_ANSWERS];
    bool ok[MAX_ANSWERS];
    char text[MAX_ANSWERS][600]; /* the data as JSON, or the message */
    uint64_t at_ms[MAX_ANSWERS];
};

static void on_done(void *ctx, const struct runner_answer *a)
{
    struct got *g = ctx;
    struct proto_buf json = PROTO_BUF_INIT;
    char err[100];

    assert_true(g->n < MAX_ANSWERS);
    g->id[g->n] = a->call_id;
    g->ok[g->n] = a->ok;
    g->at_ms[g->n] = inspect_mono_ms();
    if (a->ok) {
        assert_int_equal(value_to_json(a->data, a->len, &json, err, sizeof(err)), 0);
        snprintf(g->text[g->n], sizeof(g->text[0]), "%.*s", (int)json.len, (char *)json.data);
    } else {
        snprintf(g->text[g->n], sizeof(g->text[0]), "%s", a->message);
    }
    g->n++;
    proto_buf_free(&json);
}

/* Drives the runner until `want` answers came or timeout_ms passed. */
static void run_until(struct runner *r, struct got *g, int want, int timeout_ms)
{
    uint64_t end = inspect_mono_ms() + (uint64_t)timeout_ms;
    struct pollfd pfd[64];

    while (g->n < want && inspect_mono_ms() < end) {
        size_t n = runner_pollfds(r, pfd, 64);
        int t = runner_timeout_ms(r);
        int left = (int)(end - inspect_mono_ms());
        if (t < 0 || t > left)
            t = left;
        if (poll(pfd, n, t) < 0 && errno != EINTR)
            fail();
        runner_handle(r, pfd, n);
    }
    if (g->n < want)
        fprintf(stderr, "only %d of %d answers in %d ms\n", g->n, want, timeout_ms);
    assert_int_equal(g->n, want);
}

static struct runner *start(const char *script, int jobs, struct got *g)
{
    static char *argv[4];
    struct runner_opts o = {
        .argv = argv, .command = "cmd-x", .jobs = jobs, .done = on_done, .ctx = g};
    struct runner *r;

    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = (char *)script;
    argv[3] = NULL;
    memset(g, 0, sizeof(*g));
    assert_int_equal(runner_new(&o, &r), 0);
    return r;
}

/* No child of ours is left, reaped or not. */
static void assert_no_children(void)
{
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_reply_from_stdout(void **state)
{
    struct got g;
    /* The payload on stdin, the environment, the data from stdout. */
    struct runner *r = start("read p; printf '{\"got\":%s,\"cmd\":\"%s\",\"id\":%s}' \"$p\" "
                             "\"$VOLT_COMMAND\" \"$VOLT_CALL_ID\"",
                             2, &g);
    (void)state;

    assert_int_equal(runner_submit(r, 7, "{\"a\":[1,2]}", 11, 5000), 0);
    assert_int_equal(runner_submit(r, 8, NULL, 0, 5000), 0);
    run_until(r, &g, 2, 5000);
    for (int i = 0; i < 2; i++) {
        assert_true(g.ok[i]);
        if (g.id[i] == 7)
            assert_string_equal(g.text[i], "{\"got\":{\"a\":[1,2]},\"cmd\":\"cmd-x\",\"id\":7}");
        else
            assert_string_equal(g.text[i], "{\"got\":null,\"cmd\":\"cmd-x\",\"id\":8}");
    }
    runner_free(r);
    assert_no_children();
}

static void test_failures(void **state)
{
    static const struct {
        const char *script;
        const char *message;
    } cases[] = {
        {"echo 'disk on fire' >&2; exit 3", "disk on fire"},
        {"exit 4", "sh exited with status 4"},
        {"echo not json", "sh printed no JSON (a reply is one JSON value on stdout)"},
        {"true", "sh printed nothing (a reply is one JSON value on stdout)"},
        {"echo '{\"half\":' ; echo 'oops' >&2",
         "sh printed no JSON (a reply is one JSON value on stdout)"},
        {"kill -SEGV $$", "sh was killed by signal 11 (Segmentation fault)"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct got g;
        struct runner *r = start(cases[i].script, 1, &g);
        assert_int_equal(runner_submit(r, i + 1, "1", 1, 5000), 0);
        run_until(r, &g, 1, 5000);
        assert_false(g.ok[0]);
        assert_int_equal(g.id[0], i + 1);
        assert_string_equal(g.text[0], cases[i].message);
        runner_free(r);
        assert_no_children();
    }
}

/* Killed at the limit, with the sleep it started (its process group). */
static void test_time_limit(void **state)
{
    char marker[] = "/tmp/volt-test-runnerXXXXXX";
    char script[256];
    struct got g;
    struct runner *r;
    uint64_t t0;
    int fd = mkstemp(marker);
    (void)state;

    assert_true(fd >= 0);
    close(fd);
    /* The grandchild would write the marker after 0.6 s if it survived. */
    snprintf(script, sizeof(script), "(sleep 0.6; echo alive > %s) & sleep 30", marker);
    r = start(script, 1, &g);
    t0 = inspect_mono_ms();
    assert_int_equal(runner_submit(r, 1, NULL, 0, 300), 0);
    run_until(r, &g, 1, 5000);
    assert_false(g.ok[0]);
    assert_string_equal(g.text[0], "sh did not finish within 300 ms (killed)");
    assert_true(g.at_ms[0] - t0 >= 300 && g.at_ms[0] - t0 < 5000);
    runner_free(r);
    assert_no_children();
    sleep(1);
    char *text = NULL;
    FILE *f = fopen(marker, "r");
    assert_non_null(f);
    char buf[16] = "";
    text = fgets(buf, sizeof(buf), f);
    fclose(f);
    unlink(marker);
    assert_null(text); /* the whole group went */
}

/* --jobs 1: the second call starts when the first ends; one stuck in the
 * queue past its limit is answered without starting. */
static void test_jobs(void **state)
{
    struct got g;
    struct runner *r = start("sleep 0.3; echo 1", 1, &g);
    (void)state;

    assert_int_equal(runner_submit(r, 1, NULL, 0, 5000), 0);
    assert_int_equal(runner_submit(r, 2, NULL, 0, 5000), 0);
    assert_int_equal(runner_submit(r, 3, NULL, 0, 100), 0);
    struct pollfd pfd[16];
    runner_handle(r, pfd, runner_pollfds(r, pfd, 16));
    assert_int_equal(runner_running(r), 1);
    assert_int_equal(runner_queued(r), 2);
    run_until(r, &g, 3, 5000);
    /* 3 first (not started in its 100 ms), then 1, then 2 after it. */
    assert_int_equal(g.id[0], 3);
    assert_false(g.ok[0]);
    assert_non_null(strstr(g.text[0], "all 1 jobs were busy"));
    assert_int_equal(g.id[1], 1);
    assert_int_equal(g.id[2], 2);
    assert_true(g.ok[1] && g.ok[2]);
    assert_true(g.at_ms[2] - g.at_ms[1] >= 250);
    runner_free(r);
    assert_no_children();
}

/* Several at once: with --jobs 4, four calls all run together. */
static void test_concurrent(void **state)
{
    struct got g;
    struct runner *r = start("sleep 0.4; read p; echo \"$p\"", 4, &g);
    struct pollfd pfd[32];
    (void)state;

    for (int i = 1; i <= 4; i++) {
        char p[8];
        snprintf(p, sizeof(p), "%d", i);
        assert_int_equal(runner_submit(r, (uint64_t)i, p, strlen(p), 5000), 0);
    }
    runner_handle(r, pfd, runner_pollfds(r, pfd, 32));
    assert_int_equal(runner_running(r), 4);
    assert_int_equal(runner_queued(r), 0);
    run_until(r, &g, 4, 5000);
    for (int i = 0; i < 4; i++) {
        char want[8];
        snprintf(want, sizeof(want), "%llu", (unsigned long long)g.id[i]);
        assert_true(g.ok[i]);
        assert_string_equal(g.text[i], want);
    }
    runner_free(r);
    assert_no_children();
}

/* It answers and exits, but a child it left holds stdout: answered soon
 * after (RUNNER_LINGER_MS), not at the time limit. */
static void test_lingering_child(void **state)
{
    struct got g;
    struct runner *r = start("echo '\"done\"'; sleep 20 &", 1, &g);
    uint64_t t0 = inspect_mono_ms();
    (void)state;

    assert_int_equal(runner_submit(r, 1, NULL, 0, 10000), 0);
    run_until(r, &g, 1, 5000);
    assert_true(g.ok[0]);
    assert_string_equal(g.text[0], "\"done\"");
    assert_true(inspect_mono_ms() - t0 < 3000);
    runner_free(r);
    assert_no_children();
}

static void test_no_such_program(void **state)
{
    static char *argv[] = {"/nonexistent/volt-handler", NULL};
    struct got g = {0};
    struct runner_opts o = {.argv = argv, .jobs = 1, .done = on_done, .ctx = &g};
    struct runner *r;
    (void)state;

    assert_int_equal(runner_new(&o, &r), 0);
    assert_int_equal(runner_submit(r, 1, NULL, 0, 5000), 0);
    run_until(r, &g, 1, 5000);
    assert_false(g.ok[0]);
    assert_string_equal(g.text[0],
                        "cannot run /nonexistent/volt-handler: No such file or directory");
    runner_free(r);
    assert_no_children();
}

/* A program that does not read its (big) stdin does not stop anything. */
static void test_unread_stdin(void **state)
{
    struct got g;
    struct runner *r = start("echo 5", 1, &g);
    size_t n = 1 << 20;
    char *big = malloc(n + 2);
    (void)state;

    big[0] = '"';
    memset(big + 1, 'a', n);
    big[n + 1] = '"';
    assert_int_equal(runner_submit(r, 1, big, n + 2, 5000), 0);
    run_until(r, &g, 1, 5000);
    assert_true(g.ok[0]);
    assert_string_equal(g.text[0], "5");
    free(big);
    runner_free(r);
    assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_from_stdout), cmocka_unit_test(test_failures),
        cmocka_unit_test(test_time_limit),        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_concurrent),        cmocka_unit_test(test_lingering_child),
        cmocka_unit_test(test_no_such_program),   cmocka_unit_test(test_unread_stdin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
