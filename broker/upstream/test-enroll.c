/* Enrollment: the classification table (pure), then real exchanges with
 * the dev server: rotation, refusal, 503-then-success with the backoff,
 * a spent token, and the transport failures, with the secrets checked
 * out of every message.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/errors.h"
#include "upstream/enroll.h"
#include "upstream/test-devserver.h"
#include "util/backoff.h"
#include "util/credstore.h"

#define TOKEN        "tok-1-secret-token"
#define OLD_PASSWORD "old-pass-secret"
#define CLUSTER      "cluster-enroll"

static void assert_no_secret(const char *text, const char *extra_secret)
{
    if (strstr(text, TOKEN) || strstr(text, OLD_PASSWORD) ||
        (extra_secret && *extra_secret && strstr(text, extra_secret)))
        fail_msg("secret in text: \"%s\"", text);
}

static struct enroll_config base_config(void)
{
    return (struct enroll_config){
        .server_url = "http://127.0.0.1:1",
        .team_cluster_id = CLUSTER,
        .enrollment_token = TOKEN,
        .daemon_password = OLD_PASSWORD,
        .hostname = "node-7",
        .version = "0.1.0",
    };
}

/* ---- request body ---- */

static void test_body_has_every_field(void **state)
{
    struct enroll_config cfg = base_config();
    char *body;
    size_t len;

    assert_int_equal(enroll_build_body(&cfg, &body, &len), 0);
    assert_int_equal(strlen(body), len);
    cJSON *root = cJSON_Parse(body);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "teamClusterId")->valuestring, CLUSTER);
    assert_string_equal(cJSON_GetObjectItem(root, "enrollmentToken")->valuestring, TOKEN);
    assert_string_equal(cJSON_GetObjectItem(root, "daemonPassword")->valuestring, OLD_PASSWORD);
    assert_string_equal(cJSON_GetObjectItem(root, "hostname")->valuestring, "node-7");
    assert_string_equal(cJSON_GetObjectItem(root, "version")->valuestring, "0.1.0");
    assert_int_equal(cJSON_GetArraySize(root), 5);
    cJSON_Delete(root);
    enroll_body_free(body, len);
}

static void test_body_without_password_and_default_hostname(void **state)
{
    struct enroll_config cfg = base_config();
    char host[HOST_NAME_MAX + 1] = "";
    char *body;
    size_t len;

    cfg.daemon_password = NULL;
    cfg.hostname = NULL;
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    assert_int_equal(enroll_build_body(&cfg, &body, &len), 0);
    cJSON *root = cJSON_Parse(body);
    assert_null(cJSON_GetObjectItem(root, "daemonPassword"));
    assert_string_equal(cJSON_GetObjectItem(root, "hostname")->valuestring, host);
    cJSON_Delete(root);
    enroll_body_free(body, len);
}

static void test_body_requires_fields(void **state)
{
    char *body = (void *)1;
    size_t len = 1;
    struct enroll_config cfg;

    cfg = base_config();
    cfg.enrollment_token = "";
    assert_int_equal(enroll_build_body(&cfg, &body, &len), -EINVAL);
    assert_null(body);
    cfg = base_config();
    cfg.team_cluster_id = NULL;
    assert_int_equal(enroll_build_body(&cfg, &body, &len), -EINVAL);
    cfg = base_config();
    cfg.version = NULL;
    assert_int_equal(enroll_build_body(&cfg, &body, &len), -EINVAL);
}

/* ---- classification ---- */

struct parse_case {
    int transport_error;
    long status;
    const char *body;
    enum enroll_outcome outcome;
    const char *message_part; /* must appear in the message */
};

static void check_case(const struct enroll_config *cfg, const struct parse_case *c, size_t i)
{
    struct enroll_result r;

    enroll_parse_response(cfg, c->transport_error, c->transport_error ? "curl says no" : "",
                          c->status, c->body, c->body ? strlen(c->body) : 0, &r);
    if (r.outcome != c->outcome)
        fail_msg("case %zu (HTTP %ld): outcome %s, expected %s: %s", i, c->status,
                 enroll_outcome_name(r.outcome), enroll_outcome_name(c->outcome), r.message);
    if (!strstr(r.message, c->message_part))
        fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, r.message, c->message_part);
    assert_no_secret(r.message, NULL);
    assert_no_secret(r.server_code, NULL);
    for (const char *p = r.message; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    if (r.outcome == ENROLL_OK) {
        assert_int_equal(r.error, 0);
        assert_non_null(r.credentials.team_cluster_id);
        assert_non_null(r.credentials.daemon_password);
        assert_true(r.credentials.enrolled_at > 0);
    } else {
        assert_int_equal(r.error, PROTO_E_ENROLLMENT_FAILED);
        assert_null(r.credentials.team_cluster_id);
        assert_null(r.credentials.daemon_password);
    }
    enroll_result_clear(&r);
}

static void test_classification_table(void **state)
{
    struct enroll_config cfg = base_config();
    static const struct parse_case cases[] = {
        /* success */
        {0, 200, "{\"teamClusterId\":\"c2\",\"daemonPassword\":\"p2\"}", ENROLL_OK,
         "password rotated, teamClusterId changed"},
        {0, 201, "{\"teamClusterId\":\"" CLUSTER "\",\"daemonPassword\":\"" OLD_PASSWORD "\"}",
         ENROLL_OK, "enrolled as " CLUSTER " (HTTP 201)"},
        {0, 200, "", ENROLL_OK, "(HTTP 200)"},
        {0, 200, " \n", ENROLL_OK, "(HTTP 200)"},
        {0, 200, "{}", ENROLL_OK, "(HTTP 200)"},
        {0, 200, "{\"daemonPassword\":null,\"extra\":[1,2]}", ENROLL_OK, "(HTTP 200)"},
        /* malformed success: retry */
        {0, 200, "[]", ENROLL_RETRY, "not a JSON object"},
        {0, 200, "<html>", ENROLL_RETRY, "not a JSON object"},
        {0, 200, "{\"daemonPassword\":5}", ENROLL_RETRY, "bad \"daemonPassword\""},
        {0, 200, "{\"daemonPassword\":\"\"}", ENROLL_RETRY, "bad \"daemonPassword\""},
        {0, 201, "{\"teamClusterId\":\"a\\nb\"}", ENROLL_RETRY, "bad \"teamClusterId\""},
        /* refusals: final */
        {0, 401, "{\"error\":{\"code\":\"InvalidToken\",\"message\":\"token spent\"}}",
         ENROLL_FINAL, "enrollment refused (HTTP 401 InvalidToken): token spent"},
        {0, 400, "<html>bad</html>", ENROLL_FINAL, "enrollment refused (HTTP 400)"},
        {0, 403, "{\"error\":\"forbidden\"}", ENROLL_FINAL, "(HTTP 403): forbidden"},
        {0, 404, NULL, ENROLL_FINAL, "(HTTP 404)"},
        {0, 302, "", ENROLL_FINAL, "redirect"},
        /* try again later */
        {0, 408, "", ENROLL_RETRY, "will retry (HTTP 408)"},
        {0, 429, "{\"error\":{\"code\":\"TooManyRequests\"}}", ENROLL_RETRY,
         "(HTTP 429 TooManyRequests)"},
        {0, 500, "oops", ENROLL_RETRY, "(HTTP 500)"},
        {0, 503, "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"later\"}}",
         ENROLL_RETRY, "(HTTP 503 ServiceUnavailable): later"},
        {0, 204, "", ENROLL_RETRY, "(HTTP 204)"},
        /* transport */
        {-ETIMEDOUT, 0, NULL, ENROLL_RETRY, "timed out: curl says no"},
        {-ECONNREFUSED, 0, NULL, ENROLL_RETRY, "connection refused"},
        {-EHOSTUNREACH, 0, NULL, ENROLL_RETRY, "host name lookup failed"},
        {-EPROTO, 0, NULL, ENROLL_RETRY, "TLS failure"},
        {-ECONNRESET, 0, NULL, ENROLL_RETRY, "connection closed"},
        {-EMSGSIZE, 200, NULL, ENROLL_RETRY, "response too large (HTTP 200)"},
        {-EMSGSIZE, 401, NULL, ENROLL_FINAL, "response too large (HTTP 401)"},
        {-EINVAL, 0, NULL, ENROLL_FINAL, "URL refused"},
        /* libcurl is dlopen()ed: a broken install is worth retrying */
        {-ELIBACC, 0, NULL, ENROLL_RETRY, "will retry: HTTP library missing: curl says no"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cfg, &cases[i], i);
}

static void test_success_keeps_or_replaces(void **state)
{
    struct enroll_config cfg = base_config();
    struct enroll_result r;
    static const char rotated[] = "{\"daemonPassword\":\"new-pass\"}";
    static const char same[] = "{\"teamClusterId\":\"" CLUSTER "\"}";

    enroll_parse_response(&cfg, 0, "", 200, rotated, strlen(rotated), &r);
    assert_int_equal(r.outcome, ENROLL_OK);
    assert_string_equal(r.credentials.team_cluster_id, CLUSTER);
    assert_string_equal(r.credentials.daemon_password, "new-pass");
    assert_true(r.password_rotated);
    assert_false(r.cluster_changed);
    assert_no_secret(r.message, "new-pass");
    enroll_result_clear(&r);

    enroll_parse_response(&cfg, 0, "", 200, same, strlen(same), &r);
    assert_int_equal(r.outcome, ENROLL_OK);
    assert_string_equal(r.credentials.daemon_password, OLD_PASSWORD);
    assert_false(r.password_rotated);
    assert_false(r.cluster_changed);
    enroll_result_clear(&r);

    /* No password configured: the returned one is new by definition. */
    cfg.daemon_password = NULL;
    enroll_parse_response(&cfg, 0, "", 201, rotated, strlen(rotated), &r);
    assert_int_equal(r.outcome, ENROLL_OK);
    assert_true(r.password_rotated);
    enroll_result_clear(&r);

    /* ... and without one returned, there is nothing to connect with. */
    enroll_parse_response(&cfg, 0, "", 200, same, strlen(same), &r);
    assert_int_equal(r.outcome, ENROLL_FINAL);
    assert_non_null(strstr(r.message, "no daemonPassword"));
    enroll_result_clear(&r);
}

/* A server that echoes the secrets back (or a hostile one) cannot get
 * them into our logs, nor forge log lines. */
static void test_secrets_redacted_from_server_text(void **state)
{
    struct enroll_config cfg = base_config();
    struct enroll_result r;
    static const char body[] = "{\"error\":{\"code\":\"Bad" TOKEN "\",\"message\":\"token " TOKEN
                               " with password " OLD_PASSWORD "\\nFAKE LOG LINE\"}}";

    enroll_parse_response(&cfg, 0, "", 401, body, strlen(body), &r);
    assert_int_equal(r.outcome, ENROLL_FINAL);
    assert_no_secret(r.message, NULL);
    assert_no_secret(r.server_code, NULL);
    assert_string_equal(r.server_code, "Bad***");
    assert_non_null(strstr(r.message, "token *** with password ***?FAKE LOG LINE"));
    assert_null(strchr(r.message, '\n'));
    enroll_result_clear(&r);

    /* Transport text is cleaned the same way. */
    enroll_parse_response(&cfg, -ECONNRESET, "reset while sending " TOKEN, 0, NULL, 0, &r);
    assert_no_secret(r.message, NULL);
    enroll_result_clear(&r);
}

/* A message cut at the buffer size never ends in part of a secret. */
static void test_long_server_message_truncated_cleanly(void **state)
{
    struct enroll_config cfg = base_config();
    struct enroll_result r;
    size_t cap = 4 * ENROLL_MESSAGE_MAX;
    char *body = malloc(cap + 64);
    size_t n;

    n = (size_t)sprintf(body, "{\"error\":{\"message\":\"");
    /* Filler keeps the redacted text longer than the buffer. */
    while (n < cap) {
        memcpy(body + n, "abc " TOKEN " ", sizeof(TOKEN) + 4);
        n += sizeof(TOKEN) + 4;
    }
    strcpy(body + n, "\"}}");
    enroll_parse_response(&cfg, 0, "", 400, body, strlen(body), &r);
    assert_int_equal(strlen(r.message), ENROLL_MESSAGE_MAX - 1);
    assert_no_secret(r.message, NULL);
    /* No prefix of the token either: only filler and *** after the colon. */
    const char *tail = strstr(r.message, "): ");
    assert_non_null(tail);
    for (const char *p = tail + 3; *p; p++)
        assert_non_null(strchr("abc *", *p));
    enroll_result_clear(&r);
    free(body);
}

/* ---- against the dev server ---- */

struct suite {
    struct devserver server;
};

static struct suite *the_suite;

struct fixture {
    struct suite *suite;
    uv_loop_t loop;
    struct http_client *http;
    struct enroll_config cfg;
    char url[64];
    uv_timer_t ticker;
    int ticks;
};

struct captured {
    int calls;
    enum enroll_outcome outcome;
    int error, transport_error;
    long status;
    bool rotated, cluster_changed;
    struct credentials creds;
    char code[64];
    char message[ENROLL_MESSAGE_MAX];
};

static void capture(struct enroll *e, struct enroll_result *r, void *ud)
{
    struct captured *c = ud;

    c->calls++;
    c->outcome = r->outcome;
    c->error = r->error;
    c->transport_error = r->transport_error;
    c->status = r->http_status;
    c->rotated = r->password_rotated;
    c->cluster_changed = r->cluster_changed;
    /* Take the credentials: the result is cleared after we return. */
    c->creds = r->credentials;
    memset(&r->credentials, 0, sizeof(r->credentials));
    snprintf(c->code, sizeof(c->code), "%s", r->server_code);
    snprintf(c->message, sizeof(c->message), "%s", r->message);
}

static int suite_setup(void **state)
{
    static const char *const args[] = {"--token",    TOKEN,        "--cluster", CLUSTER,
                                       "--password", OLD_PASSWORD, NULL};
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
    free(s);
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    ((struct fixture *)t->data)->ticks++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    f->suite = the_suite;
    if (uv_loop_init(&f->loop) < 0 || http_client_new(&f->http, &f->loop) < 0)
        return -1;
    uv_timer_init(&f->loop, &f->ticker);
    f->ticker.data = f;
    /* Every test starts from: one fresh token, the old password, rotation on. */
    if (devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/reset", "{}") < 0 ||
        devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                       "{\"tokens\":[\"" TOKEN "\"],\"rotate\":true,\"credentials\":"
                       "{\"teamClusterId\":\"" CLUSTER "\",\"daemonPassword\":\"" OLD_PASSWORD
                       "\"}}") < 0)
        return -1;
    snprintf(f->url, sizeof(f->url), "%s", f->suite->server.url);
    f->cfg = base_config();
    f->cfg.server_url = f->url;
    f->cfg.timeout_ms = 5000;
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

static void enroll_once(struct fixture *f, const struct enroll_config *cfg, struct captured *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(enroll_start(f->http, cfg, capture, c, NULL), 0);
    assert_int_equal(c->calls, 0);
    while (!c->calls)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c->calls, 1);
    assert_no_secret(c->message, c->creds.daemon_password);
    assert_no_secret(c->code, c->creds.daemon_password);
}

/* Runs first, before any fixture has loaded libcurl: without the library
 * (here: a name that does not exist) the attempt fails from the loop, is
 * worth retrying, and says which library and why. */
static void test_missing_libcurl_is_retryable(void **state)
{
    struct enroll_config cfg = base_config();
    struct http_client *http;
    struct captured c = {0};
    uv_loop_t loop;

    (void)state;
    assert_false(http_curl_loaded());
    cfg.server_url = the_suite->server.url;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_new(&http, &loop), 0);
    http__set_curl_soname("libcurl-volt-test-missing.so.4");
    assert_int_equal(enroll_start(http, &cfg, capture, &c, NULL), 0);
    assert_int_equal(c.calls, 0);
    while (!c.calls)
        uv_run(&loop, UV_RUN_ONCE);
    http__set_curl_soname(NULL);
    assert_int_equal(c.outcome, ENROLL_RETRY);
    assert_int_equal(c.transport_error, -ELIBACC);
    assert_int_equal(c.error, PROTO_E_ENROLLMENT_FAILED);
    assert_non_null(strstr(c.message, "HTTP library missing"));
    assert_non_null(strstr(c.message, "cannot load libcurl-volt-test-missing.so.4"));
    assert_no_secret(c.message, NULL);
    assert_false(http_curl_loaded());
    http_client_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The dev server's view of the credentials (its password included). */
static void server_credentials(struct fixture *f, char *password, size_t len)
{
    struct devserver_call *call = malloc(sizeof(*call));

    assert_int_equal(devserver_request(&f->loop, f->http, &f->suite->server, "GET",
                                       "/_dev/credentials", NULL, call),
                     200);
    cJSON *root = cJSON_Parse(call->body);
    cJSON *pw = cJSON_GetObjectItem(root, "daemonPassword");
    assert_true(cJSON_IsString(pw));
    snprintf(password, len, "%s", pw->valuestring);
    cJSON_Delete(root);
    free(call);
}

static void test_enroll_rotates_password(void **state)
{
    struct fixture *f = *state;
    struct captured c;
    char server_password[256];

    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_OK);
    assert_int_equal(c.error, 0);
    assert_int_equal(c.status, 200);
    assert_true(c.rotated);
    assert_false(c.cluster_changed);
    assert_string_equal(c.creds.team_cluster_id, CLUSTER);
    assert_string_not_equal(c.creds.daemon_password, OLD_PASSWORD);
    server_credentials(f, server_password, sizeof(server_password));
    assert_string_equal(c.creds.daemon_password, server_password);
    assert_non_null(strstr(c.message, "password rotated"));

    /* What the server received: our hostname, version and password flag. */
    struct devserver_call *call = malloc(sizeof(*call));
    assert_int_equal(devserver_request(&f->loop, f->http, &f->suite->server, "GET",
                                       "/_dev/events?kind=enroll", NULL, call),
                     200);
    assert_non_null(strstr(call->body, "\"hostname\":\"node-7\""));
    assert_non_null(strstr(call->body, "\"version\":\"0.1.0\""));
    assert_non_null(strstr(call->body, "\"passwordGiven\":true"));
    assert_non_null(strstr(call->body, "\"status\":200"));
    free(call);

    /* The caller's next step: persist, then the stored copy is what counts. */
    char dir[] = "/tmp/test-enroll.XXXXXX";
    struct credstore *cs;
    struct credentials loaded;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(credstore_new(&cs, dir), 0);
    assert_int_equal(credstore_store(cs, &c.creds, NULL, 0), 0);
    assert_int_equal(credstore_load(cs, &loaded, NULL, 0), 0);
    assert_string_equal(loaded.daemon_password, server_password);
    credentials_clear(&loaded);
    unlink(credstore_path(cs));
    rmdir(dir);
    credstore_free(cs);
    credentials_clear(&c.creds);
}

static void test_enroll_without_rotation(void **state)
{
    struct fixture *f = *state;
    struct captured c;

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"rotate\":false}"),
                     0);
    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_OK);
    assert_false(c.rotated);
    assert_string_equal(c.creds.daemon_password, OLD_PASSWORD);
    credentials_clear(&c.creds);
}

static void test_enroll_bad_token_is_final(void **state)
{
    struct fixture *f = *state;
    struct captured c;

    f->cfg.enrollment_token = "tok-wrong-secret";
    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_FINAL);
    assert_int_equal(c.error, PROTO_E_ENROLLMENT_FAILED);
    assert_int_equal(c.status, 401);
    assert_string_equal(c.code, "InvalidToken");
    assert_non_null(strstr(c.message, "enrollment refused (HTTP 401 InvalidToken)"));
    assert_null(strstr(c.message, "tok-wrong-secret"));
    assert_null(c.creds.daemon_password);
}

static void test_token_is_spent_after_success(void **state)
{
    struct fixture *f = *state;
    struct captured first, second;

    enroll_once(f, &f->cfg, &first);
    assert_int_equal(first.outcome, ENROLL_OK);
    credentials_clear(&first.creds);
    enroll_once(f, &f->cfg, &second);
    assert_int_equal(second.outcome, ENROLL_FINAL);
    assert_int_equal(second.status, 401);
}

struct retry_loop {
    struct fixture *f;
    struct backoff backoff;
    uv_timer_t timer;
    struct captured attempts[4];
    uint32_t delays[4];
    int n;
    int finished;
};

static void retry_attempt(uv_timer_t *t);

static void retry_done(struct enroll *e, struct enroll_result *r, void *ud)
{
    struct retry_loop *l = ud;

    capture(e, r, &l->attempts[l->n++]);
    if (r->outcome == ENROLL_RETRY && l->n < 4) {
        l->delays[l->n] = backoff_duration(&l->backoff);
        uv_timer_start(&l->timer, retry_attempt, l->delays[l->n], 0);
        return;
    }
    if (r->outcome == ENROLL_OK)
        backoff_reset(&l->backoff);
    l->finished = 1;
}

static void retry_attempt(uv_timer_t *t)
{
    struct retry_loop *l = t->data;

    assert_int_equal(enroll_start(l->f->http, &l->f->cfg, retry_done, l, NULL), 0);
}

/* 503 then 200: the first attempt says retry, the backoff picks the delay,
 * the second attempt enrolls. */
static void test_503_then_success(void **state)
{
    struct fixture *f = *state;
    struct retry_loop l = {.f = f};
    struct backoff_options fast = {.min_ms = 50, .max_ms = 200, .factor = 2, .jitter = 0};

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[503,200]}"),
                     0);
    assert_int_equal(backoff_init(&l.backoff, &fast), 0);
    uv_timer_init(&f->loop, &l.timer);
    l.timer.data = &l;
    uv_update_time(&f->loop);
    uint64_t started = uv_now(&f->loop);
    retry_attempt(&l.timer);
    while (!l.finished)
        uv_run(&f->loop, UV_RUN_ONCE);

    assert_int_equal(l.n, 2);
    assert_int_equal(l.attempts[0].outcome, ENROLL_RETRY);
    assert_int_equal(l.attempts[0].status, 503);
    assert_string_equal(l.attempts[0].code, "ServiceUnavailable");
    assert_int_equal(l.delays[1], 50);
    assert_true(uv_now(&f->loop) - started >= 50);
    assert_int_equal(l.attempts[1].outcome, ENROLL_OK);
    assert_int_equal(l.attempts[1].status, 200);
    assert_true(l.attempts[1].rotated);
    assert_int_equal(backoff_attempts(&l.backoff), 0);
    credentials_clear(&l.attempts[1].creds);
    uv_close((uv_handle_t *)&l.timer, NULL);
}

static void test_connection_refused_is_retryable(void **state)
{
    struct fixture *f = *state;
    struct captured c;
    uv_tcp_t tcp;
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    char url[64];

    /* A port that was just free: bind, read it, close. */
    uv_tcp_init(&f->loop, &tcp);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&tcp, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&tcp, (struct sockaddr *)&bound, &len), 0);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/",
             ntohs(((struct sockaddr_in *)&bound)->sin_port));

    f->cfg.server_url = url;
    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_RETRY);
    assert_int_equal(c.transport_error, -ECONNREFUSED);
    assert_int_equal(c.status, 0);
    assert_non_null(strstr(c.message, "connection refused"));
}

static void test_timeout_is_retryable(void **state)
{
    struct fixture *f = *state;
    struct captured c;

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"hang\"]}"),
                     0);
    f->cfg.timeout_ms = 400;
    uv_timer_start(&f->ticker, on_tick, 10, 10);
    enroll_once(f, &f->cfg, &c);
    uv_timer_stop(&f->ticker);
    assert_int_equal(c.outcome, ENROLL_RETRY);
    assert_int_equal(c.transport_error, -ETIMEDOUT);
    assert_non_null(strstr(c.message, "timed out"));
    /* The loop ran while we waited for the server. */
    assert_true(f->ticks > 0);
}

static void test_dropped_connection_is_retryable(void **state)
{
    struct fixture *f = *state;
    struct captured c;

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"close\"]}"),
                     0);
    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_RETRY);
    assert_int_equal(c.transport_error, -ECONNRESET);
}

static void test_oversized_response(void **state)
{
    struct fixture *f = *state;
    struct captured c;

    f->cfg.max_response_bytes = 8;
    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_RETRY);
    assert_int_equal(c.transport_error, -EMSGSIZE);
    assert_int_equal(c.status, 200);
    assert_non_null(
        strstr(c.message, "response too large (HTTP 200): response body larger than 8 bytes"));
    assert_null(c.creds.daemon_password);
}

static void test_default_hostname_is_sent(void **state)
{
    struct fixture *f = *state;
    struct captured c;
    char host[HOST_NAME_MAX + 1] = "", expect[HOST_NAME_MAX + 32];

    assert_int_equal(gethostname(host, sizeof(host)), 0);
    f->cfg.hostname = NULL;
    f->cfg.daemon_password = NULL;
    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_OK);
    credentials_clear(&c.creds);
    struct devserver_call *call = malloc(sizeof(*call));
    assert_int_equal(devserver_request(&f->loop, f->http, &f->suite->server, "GET",
                                       "/_dev/events?kind=enroll", NULL, call),
                     200);
    snprintf(expect, sizeof(expect), "\"hostname\":\"%s\"", host);
    assert_non_null(strstr(call->body, expect));
    assert_non_null(strstr(call->body, "\"passwordGiven\":false"));
    free(call);
}

static void test_cancel(void **state)
{
    struct fixture *f = *state;
    struct captured c = {0};
    struct enroll *e = NULL;

    assert_int_equal(devserver_post(&f->loop, f->http, &f->suite->server, "/_dev/behavior",
                                    "{\"enrollStatuses\":[\"hang\"]}"),
                     0);
    assert_int_equal(enroll_start(f->http, &f->cfg, capture, &c, &e), 0);
    assert_non_null(e);
    for (int i = 0; i < 10; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    enroll_cancel(e);
    assert_int_equal(http_client_pending(f->http), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(c.calls, 0);
}

static void test_start_rejects_bad_config(void **state)
{
    struct fixture *f = *state;
    struct captured c = {0};
    struct enroll *e = (void *)1;
    struct enroll_config cfg;

    cfg = f->cfg;
    cfg.server_url = NULL;
    assert_int_equal(enroll_start(f->http, &cfg, capture, &c, &e), -EINVAL);
    assert_null(e);
    cfg = f->cfg;
    cfg.server_url = "ftp://127.0.0.1/";
    assert_int_equal(enroll_start(f->http, &cfg, capture, &c, NULL), -EINVAL);
    cfg = f->cfg;
    cfg.enrollment_token = NULL;
    assert_int_equal(enroll_start(f->http, &cfg, capture, &c, NULL), -EINVAL);
    cfg = f->cfg;
    cfg.version = "";
    assert_int_equal(enroll_start(f->http, &cfg, capture, &c, NULL), -EINVAL);
    assert_int_equal(http_client_pending(f->http), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(c.calls, 0);
}

/* The server URL may end in '/'; the path is appended once. */
static void test_trailing_slash_in_server_url(void **state)
{
    struct fixture *f = *state;
    struct captured c;
    char url[80];

    snprintf(url, sizeof(url), "%s//", f->suite->server.url);
    f->cfg.server_url = url;
    enroll_once(f, &f->cfg, &c);
    assert_int_equal(c.outcome, ENROLL_OK);
    credentials_clear(&c.creds);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_body_has_every_field),
        cmocka_unit_test(test_body_without_password_and_default_hostname),
        cmocka_unit_test(test_body_requires_fields),
        cmocka_unit_test(test_classification_table),
        cmocka_unit_test(test_success_keeps_or_replaces),
        cmocka_unit_test(test_secrets_redacted_from_server_text),
        cmocka_unit_test(test_long_server_message_truncated_cleanly),
    };
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest live[] = {
        /* First: it needs a process that has not loaded libcurl yet. */
        cmocka_unit_test(test_missing_libcurl_is_retryable),
        T(test_enroll_rotates_password),
        T(test_enroll_without_rotation),
        T(test_enroll_bad_token_is_final),
        T(test_token_is_spent_after_success),
        T(test_503_then_success),
        T(test_connection_refused_is_retryable),
        T(test_timeout_is_retryable),
        T(test_dropped_connection_is_retryable),
        T(test_oversized_response),
        T(test_default_hostname_is_sent),
        T(test_cancel),
        T(test_start_rejects_bad_config),
        T(test_trailing_slash_in_server_url),
    };
#undef T
    int failed = cmocka_run_group_tests_name("enroll-pure", pure, NULL, NULL);

    failed += cmocka_run_group_tests_name("enroll-devserver", live, suite_setup, suite_teardown);
    return failed;
}
