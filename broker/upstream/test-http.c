/* The HTTP client against the real dev server (contrib/volt-dev-server):
 * plain and TLS, slow, hanging and dropped answers, refusals, limits,
 * cancellation and closing in every awkward place. Every test runs on a
 * fresh loop and ends with uv_loop_close() == 0, so a leaked handle fails.
 */
#include <cjson/cJSON.h>
#include <errno.h>
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

#include "upstream/http.h"
#include "upstream/test-devserver.h"

struct suite {
    struct devserver server;
    struct devserver tls_server; /* started by the first TLS test */
    char tmpdir[64];
    char cert[128], key[128];
};

struct fixture {
    struct suite *suite;
    uv_loop_t loop;
    struct http_client *http;
    uv_timer_t ticker;
    int ticks;
    long last_seq;
};

/* One completion, recorded for the test to inspect. */
struct outcome {
    int calls;
    int result;
    long status;
    char body[8192];
    size_t body_len;
    char error[512];
};

static void record_outcome(struct http_request *req, const struct http_response *res, void *ud)
{
    struct outcome *o = ud;

    o->calls++;
    o->result = res->result;
    o->status = res->status;
    o->body_len = res->body_len;
    snprintf(o->body, sizeof(o->body), "%.*s", (int)res->body_len, res->body);
    snprintf(o->error, sizeof(o->error), "%s", res->error);
}

static struct suite *the_suite;

static int suite_setup(void **state)
{
    static const char *const args[] = {"--token", "tok-1", "--cluster", "cluster-http", NULL};
    struct suite *s = calloc(1, sizeof(*s));

    if (!s || devserver_start(&s->server, args) < 0)
        return -1;
    the_suite = s;
    *state = s;
    return 0;
}

static int suite_teardown(void **state)
{
    struct suite *s = *state;

    devserver_stop(&s->server);
    devserver_stop(&s->tls_server);
    if (s->tmpdir[0]) {
        unlink(s->cert);
        unlink(s->key);
        rmdir(s->tmpdir);
    }
    free(s);
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    struct fixture *f = t->data;

    f->ticks++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct devserver_call *call = malloc(sizeof(*call));

    if (!f || !call)
        return -1;
    f->suite = the_suite;
    if (uv_loop_init(&f->loop) < 0 || http_client_new(&f->http, &f->loop) < 0)
        return -1;
    uv_timer_init(&f->loop, &f->ticker);
    f->ticker.data = f;
    /* Fresh behaviour and counters for every test. */
    if (devserver_request(&f->loop, f->http, &f->suite->server, "POST", "/_dev/reset", "{}",
                          call) != 200) {
        free(call);
        return -1;
    }
    cJSON *root = cJSON_Parse(call->body);
    cJSON *seq = cJSON_GetObjectItem(root, "lastSeq");
    f->last_seq = cJSON_IsNumber(seq) ? (long)seq->valuedouble : 0;
    cJSON_Delete(root);
    free(call);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    http_client_close(f->http);
    uv_close((uv_handle_t *)&f->ticker, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void run_until(struct fixture *f, const int *flag)
{
    while (!*flag)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void url_for(const struct devserver *d, const char *path, char *out, size_t len)
{
    snprintf(out, len, "%s%s", d->url, path);
}

static const char enroll_body[] =
    "{\"teamClusterId\":\"cluster-http\",\"enrollmentToken\":\"tok-1\","
    "\"hostname\":\"test-host\",\"version\":\"0.1.0\"}";

/* ---- libcurl loaded on first use ---- */

/* Whether this process has a file mapped whose path contains `needle`. */
static bool maps_contain(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool found = false;

    assert_non_null(f);
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Runs first, before any fixture has made a request: this test program
 * does not link libcurl, so it is mapped only once http.c has loaded it.
 * A missing library fails the request from the loop, as a network error
 * does, and the next request loads the real one. */
static void test_libcurl_loaded_by_first_request(void **state)
{
    struct suite *s = the_suite;
    struct outcome o = {0}, cancelled = {0}, closed = {0};
    struct http_request *req = NULL;
    struct http_client *http, *other;
    uv_loop_t loop;
    char url[256];

    assert_false(http_curl_loaded());
    assert_false(maps_contain("libcurl"));
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&http, &loop), 0);
    assert_false(maps_contain("libcurl"));
    url_for(&s->server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};

    (void)state;
    http__set_curl_soname("libcurl-volt-test-missing.so.4");
    assert_int_equal(http_request_start(http, &opts, record_outcome, &o, NULL), 0);
    assert_int_equal(http_request_start(http, &opts, record_outcome, &cancelled, &req), 0);
    assert_int_equal(o.calls, 0); /* never from inside http_request_start() */
    assert_int_equal(http_client_pending(http), 2);
    http_request_cancel(req);
    /* A client closed with such a failure not yet reported: no callback. */
    assert_int_equal(http_client_new(&other, &loop), 0);
    assert_int_equal(http_request_start(other, &opts, record_outcome, &closed, NULL), 0);
    http_client_close(other);
    while (!o.calls)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(o.calls, 1);
    assert_int_equal(cancelled.calls, 0);
    assert_int_equal(closed.calls, 0);
    assert_int_equal(o.result, -ELIBACC);
    assert_non_null(strstr(o.error, "cannot load libcurl-volt-test-missing.so.4"));
    assert_non_null(strstr(o.error, "cannot open shared object file")); /* dlerror() */
    assert_int_equal(http_client_pending(http), 0);
    assert_false(http_curl_loaded());

    /* The next request tries again, and this time finds libcurl. */
    http__set_curl_soname(NULL);
    memset(&o, 0, sizeof(o));
    assert_int_equal(http_request_start(http, &opts, record_outcome, &o, NULL), 0);
    assert_true(http_curl_loaded());
    assert_true(maps_contain("libcurl.so.4"));
    while (!o.calls)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.status, 200);

    http_client_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- plain exchanges ---- */

static void test_post_json_gets_response(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char url[256];
    struct http_request *req = NULL;

    url_for(&f->suite->server, "/api/daemon/enroll", url, sizeof(url));
    struct http_request_options opts = {
        .url = url,
        .body = enroll_body,
        .body_len = strlen(enroll_body),
        .content_type = "application/json",
        .accept = "application/json",
    };
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, &req), 0);
    assert_non_null(req);
    assert_int_equal(o.calls, 0); /* never from inside start */
    assert_int_equal(http_client_pending(f->http), 1);
    run_until(f, &o.calls);

    assert_int_equal(o.calls, 1);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.error, "");
    assert_int_equal(http_client_pending(f->http), 0);
    cJSON *root = cJSON_Parse(o.body);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "teamClusterId")->valuestring, "cluster-http");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(root, "daemonPassword")));
    cJSON_Delete(root);

    /* The server saw our body: its event log has the hostname we sent. */
    struct devserver_call *call = malloc(sizeof(*call));
    assert_int_equal(devserver_request(&f->loop, f->http, &f->suite->server, "GET",
                                       "/_dev/events?kind=enroll", NULL, call),
                     200);
    assert_non_null(strstr(call->body, "\"hostname\":\"test-host\""));
    free(call);
}

static void test_error_status_is_a_response(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char url[256];
    static const char body[] = "{\"teamClusterId\":\"cluster-http\",\"enrollmentToken\":\"bad\","
                               "\"hostname\":\"h\",\"version\":\"0.1.0\"}";

    url_for(&f->suite->server, "/api/daemon/enroll", url, sizeof(url));
    struct http_request_options opts = {
        .url = url, .body = body, .body_len = strlen(body), .content_type = "application/json"};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.body, "InvalidToken"));
}

static void test_get_request(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char url[256];

    url_for(&f->suite->server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.status, 200);
    assert_non_null(strstr(o.body, "\"counters\""));
    assert_int_equal(strlen(o.body), o.body_len);
}

static void test_many_concurrent_requests(void **state)
{
    struct fixture *f = *state;
    enum { N = 16 };
    struct outcome o[N];
    char url[256];
    int all_done = 0;

    memset(o, 0, sizeof(o));
    url_for(&f->suite->server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};
    for (int i = 0; i < N; i++)
        assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o[i], NULL), 0);
    assert_int_equal(http_client_pending(f->http), N);
    while (!all_done) {
        uv_run(&f->loop, UV_RUN_ONCE);
        all_done = 1;
        for (int i = 0; i < N; i++)
            all_done &= o[i].calls == 1;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].result, 0);
        assert_int_equal(o[i].status, 200);
    }
}

/* ---- the loop keeps running ---- */

/* A long-poll on /_dev/events answers after `wait` ms: while it is out,
 * a 10 ms timer on the same loop keeps firing. */
static void test_loop_not_blocked_during_slow_request(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char path[128], url[256];

    snprintf(path, sizeof(path), "/_dev/events?since=%ld&wait=800", f->last_seq);
    url_for(&f->suite->server, path, url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};
    uv_update_time(&f->loop);
    uint64_t started = uv_now(&f->loop);
    uv_timer_start(&f->ticker, on_tick, 10, 10);
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    uv_timer_stop(&f->ticker);

    assert_int_equal(o.result, 0);
    assert_int_equal(o.status, 200);
    assert_true(uv_now(&f->loop) - started >= 500); /* it really was slow */
    if (f->ticks < 3)
        fail_msg("the loop was blocked: %d ticks of 10 ms during a ~800 ms request", f->ticks);
}

static void test_timeout(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char url[256];

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"hang\"]}"),
                     0);
    url_for(&f->suite->server, "/api/daemon/enroll", url, sizeof(url));
    struct http_request_options opts = {.url = url,
                                        .body = enroll_body,
                                        .body_len = strlen(enroll_body),
                                        .content_type = "application/json",
                                        .timeout_ms = 400};
    uv_timer_start(&f->ticker, on_tick, 10, 10);
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    uv_timer_stop(&f->ticker);

    assert_int_equal(o.result, -ETIMEDOUT);
    assert_int_equal(o.status, 0);
    assert_true(strlen(o.error) > 0);
    assert_null(strstr(o.error, "tok-1"));
    assert_true(f->ticks >= 3);
}

/* ---- transport failures ---- */

static int unused_port(void)
{
    uv_loop_t loop;
    uv_tcp_t tcp;
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);

    uv_loop_init(&loop);
    uv_tcp_init(&loop, &tcp);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&tcp, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&tcp, (struct sockaddr *)&bound, &len), 0);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void test_connection_refused(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char url[256];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/daemon/enroll", unused_port());
    struct http_request_options opts = {.url = url, .body = "{}", .body_len = 2};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    assert_int_equal(o.result, -ECONNREFUSED);
    assert_int_equal(o.status, 0);
    assert_true(strlen(o.error) > 0);
}

static void test_connection_closed_without_answer(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char url[256];

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"close\"]}"),
                     0);
    url_for(&f->suite->server, "/api/daemon/enroll", url, sizeof(url));
    struct http_request_options opts = {.url = url,
                                        .body = enroll_body,
                                        .body_len = strlen(enroll_body),
                                        .content_type = "application/json",
                                        .fresh_connection = true};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    assert_int_equal(o.result, -ECONNRESET);
    assert_int_equal(o.status, 0);
}

static void test_unresolvable_host(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    struct http_request_options opts = {
        .method = "GET", .url = "http://volt-no-such-host.invalid/", .timeout_ms = 5000};

    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    /* NXDOMAIN normally; a resolver that cannot reach its server times out. */
    if (o.result != -EHOSTUNREACH && o.result != -ETIMEDOUT)
        fail_msg("unexpected result %d (%s)", o.result, o.error);
    assert_int_equal(o.status, 0);
}

static void test_response_over_limit(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    char url[256];

    url_for(&f->suite->server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url, .max_response_bytes = 16};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, NULL), 0);
    run_until(f, &o.calls);
    assert_int_equal(o.result, -EMSGSIZE);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.body_len, 0);
    assert_string_equal(o.error, "response body larger than 16 bytes");
}

/* Exactly at the limit is fine: the bound is inclusive. */
static void test_response_at_limit(void **state)
{
    struct fixture *f = *state;
    struct outcome first = {0}, second = {0};
    char url[256];

    url_for(&f->suite->server, "/_dev/behavior", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &first, NULL), 0);
    run_until(f, &first.calls);
    assert_int_equal(first.result, 0);
    assert_true(first.body_len > 0);

    opts.max_response_bytes = first.body_len;
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &second, NULL), 0);
    run_until(f, &second.calls);
    assert_int_equal(second.result, 0);
    assert_string_equal(second.body, first.body);
}

/* ---- cancel and close ---- */

struct cancel_ctx {
    struct http_request *req;
    int fired;
};

static void cancel_on_timer(uv_timer_t *t)
{
    struct cancel_ctx *c = t->data;

    http_request_cancel(c->req);
    c->fired = 1;
}

static void test_cancel_in_flight(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    struct cancel_ctx ctx = {0};
    uv_timer_t timer;
    char url[256];

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"hang\"]}"),
                     0);
    url_for(&f->suite->server, "/api/daemon/enroll", url, sizeof(url));
    struct http_request_options opts = {.url = url,
                                        .body = enroll_body,
                                        .body_len = strlen(enroll_body),
                                        .content_type = "application/json",
                                        .timeout_ms = 5000};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, &ctx.req), 0);
    uv_timer_init(&f->loop, &timer);
    timer.data = &ctx;
    uv_timer_start(&timer, cancel_on_timer, 150, 0);
    run_until(f, &ctx.fired);
    assert_int_equal(http_client_pending(f->http), 0);

    /* Nothing is left to wake the loop for that request: it ends, with no
     * callback, long before the 5 s timeout. */
    uv_close((uv_handle_t *)&timer, NULL);
    uint64_t before = uv_now(&f->loop);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(uv_now(&f->loop) - before < 2000);
    assert_int_equal(o.calls, 0);
}

static void test_cancel_before_loop_runs(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    struct http_request *req;
    char url[256];

    url_for(&f->suite->server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o, &req), 0);
    http_request_cancel(req);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(o.calls, 0);
    assert_int_equal(http_client_pending(f->http), 0);
}

static void test_close_with_requests_in_flight(void **state)
{
    struct fixture *f = *state;
    struct outcome o[3] = {{0}};
    char url[256];

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"hang\",\"hang\",\"hang\"]}"),
                     0);
    url_for(&f->suite->server, "/api/daemon/enroll", url, sizeof(url));
    struct http_request_options opts = {.url = url,
                                        .body = enroll_body,
                                        .body_len = strlen(enroll_body),
                                        .content_type = "application/json"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o[i], NULL), 0);
    /* Let them connect and send. */
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    http_client_close(f->http);
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, &o[0], NULL), -ESHUTDOWN);
    f->http = NULL; /* released by the loop below */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(o[i].calls, 0);
}

struct closer {
    struct http_client *http;
    int calls;
    int other_calls;
};

static void close_from_callback(struct http_request *req, const struct http_response *res, void *ud)
{
    struct closer *c = ud;

    c->calls++;
    http_client_close(c->http);
}

static void count_other(struct http_request *req, const struct http_response *res, void *ud)
{
    struct closer *c = ud;

    c->other_calls++;
}

static void test_close_from_callback(void **state)
{
    struct fixture *f = *state;
    struct closer c = {.http = f->http};
    char url[256], hang_url[128];

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"hang\"]}"),
                     0);
    url_for(&f->suite->server, "/api/daemon/enroll", hang_url, sizeof(hang_url));
    struct http_request_options hang = {.url = hang_url,
                                        .body = enroll_body,
                                        .body_len = strlen(enroll_body),
                                        .content_type = "application/json"};
    assert_int_equal(http_request_start(f->http, &hang, count_other, &c, NULL), 0);
    url_for(&f->suite->server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};
    assert_int_equal(http_request_start(f->http, &opts, close_from_callback, &c, NULL), 0);
    f->http = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.other_calls, 0);
}

/* A callback may start the next request on the same client. */
struct chain {
    struct http_client *http;
    const char *url;
    int remaining;
    int completed;
};

static void chain_next(struct http_request *req, const struct http_response *res, void *ud)
{
    struct chain *c = ud;
    struct http_request_options opts = {.method = "GET", .url = c->url};

    assert_int_equal(res->status, 200);
    c->completed++;
    if (--c->remaining > 0)
        assert_int_equal(http_request_start(c->http, &opts, chain_next, c, NULL), 0);
}

static void test_start_from_callback(void **state)
{
    struct fixture *f = *state;
    char url[256];
    struct chain c = {.http = f->http, .url = url, .remaining = 5};

    url_for(&f->suite->server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {.method = "GET", .url = url};
    assert_int_equal(http_request_start(f->http, &opts, chain_next, &c, NULL), 0);
    while (c.remaining > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c.completed, 5);
}

static void test_rejects_bad_options(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    struct http_request *req = (void *)1;
    struct http_request_options bad[] = {
        {.url = NULL},
        {.url = "ftp://127.0.0.1/"},
        {.url = "file:///etc/passwd"},
        {.method = "GET", .url = "http://127.0.0.1/", .body = "x", .body_len = 1},
        {.method = "PUT", .url = "http://127.0.0.1/"},
        {.url = "http://127.0.0.1/", .content_type = "text/plain\r\nX-Evil: 1"},
        {.url = "http://127.0.0.1/", .accept = "a\nb"},
        {.url = "http://127.0.0.1/", .body = NULL, .body_len = 4},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (http_request_start(f->http, &bad[i], record_outcome, &o, &req) != -EINVAL)
            fail_msg("case %zu accepted", i);
        assert_null(req);
    }
    assert_int_equal(http_client_pending(f->http), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(o.calls, 0);
}

/* ---- TLS ---- */

static int run_openssl(const char *cert, const char *key)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        execlp("openssl", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
               "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert,
               (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void ensure_tls_server(struct suite *s)
{
    if (s->tls_server.pid > 0)
        return;
    snprintf(s->tmpdir, sizeof(s->tmpdir), "/tmp/test-http.XXXXXX");
    assert_non_null(mkdtemp(s->tmpdir));
    snprintf(s->cert, sizeof(s->cert), "%s/cert.pem", s->tmpdir);
    snprintf(s->key, sizeof(s->key), "%s/key.pem", s->tmpdir);
    assert_int_equal(run_openssl(s->cert, s->key), 0);
    const char *const args[] = {"--tls-cert", s->cert, "--tls-key", s->key, NULL};
    assert_int_equal(devserver_start(&s->tls_server, args), 0);
    assert_int_equal(strncmp(s->tls_server.url, "https://", 8), 0);
}

static void tls_get(struct fixture *f, const char *ca_file, bool insecure, struct outcome *o)
{
    char url[256];

    url_for(&f->suite->tls_server, "/_dev/state", url, sizeof(url));
    struct http_request_options opts = {
        .method = "GET", .url = url, .ca_file = ca_file, .tls_insecure = insecure};
    assert_int_equal(http_request_start(f->http, &opts, record_outcome, o, NULL), 0);
    run_until(f, &o->calls);
}

static void test_https_with_ca_file(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};

    ensure_tls_server(f->suite);
    tls_get(f, f->suite->cert, false, &o);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.status, 200);
    assert_non_null(strstr(o.body, "\"tls\":true"));
}

static void test_https_untrusted_certificate(void **state)
{
    struct fixture *f = *state;
    struct outcome system_store = {0}, missing_ca = {0}, insecure = {0};

    ensure_tls_server(f->suite);
    /* The self-signed certificate is not in the system store. */
    tls_get(f, NULL, false, &system_store);
    assert_int_equal(system_store.result, -EPROTO);
    assert_int_equal(system_store.status, 0);
    assert_true(strlen(system_store.error) > 0);

    tls_get(f, "/nonexistent/ca.pem", false, &missing_ca);
    assert_int_equal(missing_ca.result, -EPROTO);

    tls_get(f, NULL, true, &insecure);
    assert_int_equal(insecure.result, 0);
    assert_int_equal(insecure.status, 200);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        /* First: it needs a process that has not loaded libcurl yet. */
        cmocka_unit_test(test_libcurl_loaded_by_first_request),
        T(test_post_json_gets_response),
        T(test_error_status_is_a_response),
        T(test_get_request),
        T(test_many_concurrent_requests),
        T(test_loop_not_blocked_during_slow_request),
        T(test_timeout),
        T(test_connection_refused),
        T(test_connection_closed_without_answer),
        T(test_unresolvable_host),
        T(test_response_over_limit),
        T(test_response_at_limit),
        T(test_cancel_in_flight),
        T(test_cancel_before_loop_runs),
        T(test_close_with_requests_in_flight),
        T(test_close_from_callback),
        T(test_start_from_callback),
        T(test_rejects_bad_options),
        T(test_https_with_ca_file),
        T(test_https_untrusted_certificate),
    };
#undef T

    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
