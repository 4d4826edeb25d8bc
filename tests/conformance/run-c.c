/* The conformance scenarios (scenarios.json here) run by libvoltclient,
 * against a real broker and the dev server started by tests/harness.c
 * (the broker under valgrind with VOLT_TEST_VALGRIND=1). One cmocka test
 * per scenario; VOLT_TEST_FILTER (a glob of scenario names) runs some.
 *
 * Values are compared as JSON text made by proto's msgpack->JSON
 * transcoder (binary as {"$bin": base64}, integers exact to 64 bits), the
 * expected value going scenario JSON -> msgpack -> JSON the same way.
 * Control-API calls that make the server wait for one of our handlers run
 * on a thread while this one drives the clients. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <volt/client.h>

#include "../harness.h"
#include "proto/buf.h"
#include "proto/json.h"

#define WAIT_MS      10000 /* anything the broker or the server does (h_slack_ms stretches it) */
#define MAX_CLIENTS  4
#define MAX_HANDLERS 8
#define MAX_EVENTS   16
#define MAX_MSGS     32
#define MAX_BG       4

static struct h_server server;
static struct h_broker broker;
static char *broker_config; /* the harness's config with the scenarios' `broker` merged in */
static cJSON *spec;

/* ---- values ---- */

struct sb {
    char *p;
    size_t n, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printed(struct sb *b, const cJSON *v)
{
    char *t = cJSON_PrintUnformatted(v);
    assert_non_null(t);
    sb_str(b, t);
    cJSON_free(t);
}

/* A scenario value as JSON text: {"$int": "digits"} becomes the number
 * itself (cJSON would round it to a double), everything else as it is. */
static void put_value(struct sb *b, const cJSON *v)
{
    if (cJSON_IsObject(v)) {
        const cJSON *only = v->child;
        if (only && !only->next && strcmp(only->string, "$int") == 0 && cJSON_IsString(only)) {
            sb_str(b, only->valuestring);
            return;
        }
        sb_str(b, "{");
        for (const cJSON *m = v->child; m; m = m->next) {
            cJSON *key = cJSON_CreateString(m->string);
            sb_printed(b, key);
            cJSON_Delete(key);
            sb_str(b, ":");
            put_value(b, m);
            if (m->next)
                sb_str(b, ",");
        }
        sb_str(b, "}");
    } else if (cJSON_IsArray(v)) {
        sb_str(b, "[");
        for (const cJSON *m = v->child; m; m = m->next) {
            put_value(b, m);
            if (m->next)
                sb_str(b, ",");
        }
        sb_str(b, "]");
    } else {
        sb_printed(b, v);
    }
}

static char *value_text(const cJSON *v)
{
    struct sb b = {0};
    put_value(&b, v);
    return b.p;
}

/* Scenario value -> msgpack (binary markers become bin). */
static void to_msgpack(const cJSON *v, struct proto_buf *out)
{
    char *text = value_text(v);
    struct proto_json_doc doc;
    proto_json_doc_init(&doc);
    struct proto_json_error err = {0};
    int rc = proto_json_to_msgpack(&doc, text, strlen(text), out, NULL, &err);
    if (rc < 0)
        fail_msg("scenario value %s: no msgpack form: %s", text, err.text);
    proto_json_doc_free(&doc);
    free(text);
}

/* msgpack -> JSON text (malloc'd); "null" when absent. */
static char *mp_text(const void *data, size_t len)
{
    if (!data || !len)
        return strdup("null");
    struct proto_buf out;
    proto_buf_init(&out);
    struct proto_json_error err = {0};
    if (proto_msgpack_to_json(data, len, &out, NULL, &err) < 0) {
        proto_buf_free(&out);
        char *t;
        if (asprintf(&t, "(no JSON form: %s)", err.text) < 0)
            return NULL;
        return t;
    }
    proto_buf_append_byte(&out, 0);
    return (char *)out.data;
}

/* A scenario value in the same form as mp_text() gives received ones. */
static char *canonical(const cJSON *v)
{
    struct proto_buf mp;
    proto_buf_init(&mp);
    to_msgpack(v, &mp);
    char *t = mp_text(mp.data, mp.len);
    proto_buf_free(&mp);
    return t;
}

/* ---- clients and what they see ---- */

struct handler {
    char command[128];
    const cJSON *step;
    int calls;
};

struct msg {
    char *type;
    char *json;
};

struct cli {
    char id[16];
    volt_client *c;
    struct handler handlers[MAX_HANDLERS];
    int n_handlers;
    const char *events[MAX_EVENTS];
    int n_events;
    struct msg msgs[MAX_MSGS];
    int n_msgs;
};

struct outcome {
    int settled;
    int code;
    char *code_name, *message, *server_code, *json;
};

struct bg {
    char name[32];
    struct outcome o;
};

struct run {
    const char *name;
    struct cli clis[MAX_CLIENTS];
    int n_clis;
    struct bg bgs[MAX_BG];
    int n_bg;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void on_result(volt_client *c, const volt_result *r, void *p)
{
    (void)c;
    struct outcome *o = p;
    if (o->settled++)
        return; /* counted: settled_once checks it */
    o->code = r->code;
    o->code_name = dup_or_null(r->code_name);
    o->message = dup_or_null(r->message);
    o->server_code = dup_or_null(r->server_code);
    if (r->code == 0)
        o->json = mp_text(r->data, r->data_len);
}

static void outcome_free(struct outcome *o)
{
    free(o->code_name);
    free(o->message);
    free(o->server_code);
    free(o->json);
}

static void on_call(volt_client *c, volt_call *call, void *p)
{
    (void)c;
    struct handler *h = p;
    const cJSON *s = h->step;
    h->calls++;
    const cJSON *fail = cJSON_GetObjectItem(s, "fail");
    const cJSON *thrown = cJSON_GetObjectItem(s, "throw");
    int rc;
    if (cJSON_IsTrue(cJSON_GetObjectItem(s, "echo"))) {
        size_t len;
        const void *d = volt_call_payload(call, &len);
        rc = volt_call_reply(call, d, len);
    } else if (fail) {
        rc = volt_call_fail_code(call, cJSON_GetObjectItem(fail, "code")->valuestring,
                                 cJSON_GetObjectItem(fail, "message")->valuestring);
    } else if (thrown) {
        rc = volt_call_fail(call, 0, thrown->valuestring);
    } else {
        const cJSON *reply = cJSON_GetObjectItem(s, "reply");
        struct proto_buf mp;
        proto_buf_init(&mp);
        if (reply)
            to_msgpack(reply, &mp);
        rc = volt_call_reply(call, mp.data, mp.len);
        proto_buf_free(&mp);
    }
    if (rc != 0)
        print_error("handler of %s: the answer failed: %s\n", h->command, volt_err_name(rc));
}

static void on_message(volt_client *c, const volt_message *m, void *p)
{
    (void)c;
    struct cli *k = p;
    if (k->n_msgs == MAX_MSGS)
        return;
    k->msgs[k->n_msgs].type = strdup(m->type);
    k->msgs[k->n_msgs].json = mp_text(m->data, m->data_len);
    k->n_msgs++;
}

static void on_connected(volt_client *c, void *p)
{
    (void)c;
    struct cli *k = p;
    if (k->n_events < MAX_EVENTS)
        k->events[k->n_events++] = "connected";
}

static void on_disconnected(volt_client *c, const char *reason, void *p)
{
    (void)c;
    (void)reason;
    struct cli *k = p;
    if (k->n_events < MAX_EVENTS)
        k->events[k->n_events++] = "disconnected";
}

static struct cli *client_of(struct run *r, const char *id)
{
    for (int i = 0; i < r->n_clis; i++)
        if (strcmp(r->clis[i].id, id) == 0)
            return &r->clis[i];
    assert_true(r->n_clis < MAX_CLIENTS);
    struct cli *k = &r->clis[r->n_clis++];
    snprintf(k->id, sizeof k->id, "%s", id);
    char name[64];
    snprintf(name, sizeof name, "conformance-c-%s", id);
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = broker.sock;
    o.name = name;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 300;
    o.connect_timeout_ms = (uint32_t)h_slack_ms(5000);
    o.local_timeout_ms = (uint32_t)h_slack_ms(10000);
    k->c = volt_client_new(&o);
    assert_non_null(k->c);
    volt_on_connected(k->c, on_connected, k);
    volt_on_disconnected(k->c, on_disconnected, k);
    return k;
}

/* Drives every client for about ms (each one's own poll loop in turn). */
static void pump(struct run *r, int ms)
{
    uint64_t end = h_now_ms() + (uint64_t)ms;
    do {
        for (int i = 0; i < r->n_clis; i++)
            volt_client_run_for(r->clis[i].c, 1);
        if (r->n_clis == 0)
            h_sleep_ms(1);
    } while (h_now_ms() < end);
}

/* Waits for cond while driving the clients; ok says whether it came true
 * before the deadline. */
#define PUMP_UNTIL(ok, r, cond, ms)                                                                \
    do {                                                                                           \
        uint64_t end_ = h_now_ms() + (uint64_t)h_slack_ms(ms);                                     \
        for (;;) {                                                                                 \
            if (cond) {                                                                            \
                (ok) = true;                                                                       \
                break;                                                                             \
            }                                                                                      \
            if (h_now_ms() >= end_) {                                                              \
                (ok) = false;                                                                      \
                break;                                                                             \
            }                                                                                      \
            pump((r), 5);                                                                          \
        }                                                                                          \
    } while (0)

/* ---- the control API, on a thread ---- */

struct http_job {
    const char *method, *path, *body;
    char *resp;
    long status;
    atomic_bool done;
};

static void *http_main(void *p)
{
    struct http_job *j = p;
    j->status = h_http(&server, j->method, j->path, j->body, &j->resp);
    atomic_store(&j->done, true);
    return NULL;
}

/* HTTP to the dev server while the clients keep running; the parsed
 * answer (caller deletes). Fails the test on a status other than 200. */
static cJSON *http_pumped(struct run *r, const char *what, const char *method, const char *path,
                          const char *body)
{
    struct http_job j = {.method = method, .path = path, .body = body};
    atomic_init(&j.done, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, http_main, &j), 0);
    while (!atomic_load(&j.done))
        pump(r, 5);
    pthread_join(t, NULL);
    if (j.status != 200)
        fail_msg("%s: %s %s: expected HTTP 200, got %ld: %s", what, method, path, j.status,
                 j.resp ? j.resp : "");
    cJSON *out = cJSON_Parse(j.resp ? j.resp : "null");
    free(j.resp);
    assert_non_null(out);
    return out;
}

/* ---- checks ---- */

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_outcome(const struct outcome *o, const cJSON *expect, const char *what)
{
    const char *err = str_of(expect, "error");
    if (err) {
        if (o->code == 0)
            fail_msg("%s: expected error %s, got data %s", what, err, o->json);
        if (strcmp(o->code_name, err) != 0)
            fail_msg("%s: expected code %s, got %s (%s)", what, err, o->code_name,
                     o->message ? o->message : "");
        const char *sc = str_of(expect, "server_code");
        if (sc && (!o->server_code || strcmp(o->server_code, sc) != 0))
            fail_msg("%s: expected server code %s, got %s", what, sc,
                     o->server_code ? o->server_code : "(none)");
        const char *m = str_of(expect, "message");
        if (m && (!o->message || !strstr(o->message, m)))
            fail_msg("%s: expected a message with \"%s\", got \"%s\"", what, m,
                     o->message ? o->message : "(none)");
        return;
    }
    char *want = canonical(cJSON_GetObjectItem(expect, "data"));
    if (o->code != 0)
        fail_msg("%s: expected data %s, got error %s (%s)", what, want, o->code_name,
                 o->message ? o->message : "");
    if (strcmp(want, o->json) != 0)
        fail_msg("%s: expected %s, got %s", what, want, o->json);
    free(want);
}

static bool has_string(const cJSON *arr, const char *s)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (cJSON_IsString(x) && strcmp(x->valuestring, s) == 0) return true;
    return false;
}

/* Broker status predicates. */
static int clients_with(const char *field, const char *command)
{
    cJSON *st = h_status(broker.sock);
    if (!st)
        return -1;
    int n = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItem(st, "clients"))
    {
        const cJSON *arr = cJSON_GetObjectItem(k, field);
        if (command ? has_string(arr, command) : cJSON_GetArraySize(arr) > 0)
            n++;
    }
    cJSON_Delete(st);
    return n;
}

static bool server_has_handler(const char *command)
{
    cJSON *st = h_http_json(&server, "GET", "/_dev/state", NULL);
    bool found = false;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(st, "connected"))
    {
        if (cJSON_IsTrue(cJSON_GetObjectItem(d, "registered")) &&
            has_string(cJSON_GetObjectItem(d, "handlers"), command))
            found = true;
    }
    cJSON_Delete(st);
    return found;
}

static double pending_at_broker(void)
{
    cJSON *st = h_status(broker.sock);
    double n = st ? h_json_num(st, "counters.pending", -1) : -1;
    cJSON_Delete(st);
    return n;
}

static cJSON *server_emit_of(const char *type)
{
    cJSON *evs = h_http_json(&server, "GET", "/_dev/events?since=0&kind=message_in", NULL);
    cJSON *found = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(evs, "events"))
    {
        const char *t = str_of(e, "type");
        if (!found && t && strcmp(t, type) == 0)
            found = cJSON_Duplicate(e, 1);
    }
    cJSON_Delete(evs);
    return found;
}

static struct bg *bg_of(struct run *r, const char *name)
{
    for (int i = 0; i < r->n_bg; i++)
        if (strcmp(r->bgs[i].name, name) == 0)
            return &r->bgs[i];
    fail_msg("no background request \"%s\"", name);
    return NULL;
}

static char *events_text(const struct cli *k)
{
    struct sb b = {0};
    sb_str(&b, "[");
    for (int i = 0; i < k->n_events; i++) {
        sb_str(&b, i ? ",\"" : "\"");
        sb_str(&b, k->events[i]);
        sb_str(&b, "\"");
    }
    sb_str(&b, "]");
    return b.p;
}

static bool events_are(const struct cli *k, const char *want)
{
    char *got = events_text(k);
    bool same = strcmp(got, want) == 0;
    free(got);
    return same;
}

static struct msg *msg_of(struct cli *k, const char *type)
{
    for (int j = 0; j < k->n_msgs; j++)
        if (strcmp(k->msgs[j].type, type) == 0)
            return &k->msgs[j];
    return NULL;
}

/* ---- steps ---- */

static void send_outcome(struct cli *k, const cJSON *s, struct outcome *o)
{
    const cJSON *payload = cJSON_GetObjectItem(s, "payload");
    const cJSON *t = cJSON_GetObjectItem(s, "timeout_ms");
    struct proto_buf mp;
    proto_buf_init(&mp);
    if (payload)
        to_msgpack(payload, &mp);
    int rc = volt_send_command(k->c, str_of(s, "command"), mp.data, mp.len,
                               t ? (uint32_t)t->valuedouble : 0, on_result, o);
    proto_buf_free(&mp);
    if (rc < 0) { /* not started: the outcome is the code returned */
        o->settled = 1;
        o->code = rc;
        o->code_name = strdup(volt_err_name(rc));
        o->message = strdup(volt_client_errstr(k->c));
    }
}

static void step(struct run *r, const cJSON *s, int i)
{
    char what[160];
    const char *op = str_of(s, "do");
    snprintf(what, sizeof what, "%s step %d (%s)", r->name, i, op);
    const char *cid = str_of(s, "client");
    struct cli *k = cid ? client_of(r, cid) : NULL;

    if (strcmp(op, "connect") == 0) {
        int rc = volt_client_connect_blocking(k->c, h_slack_ms(WAIT_MS));
        if (rc != 0)
            fail_msg("%s: expected 0, got %s (%s)", what, volt_err_name(rc),
                     volt_client_errstr(k->c));
    } else if (strcmp(op, "handle") == 0) {
        assert_true(k->n_handlers < MAX_HANDLERS);
        struct handler *h = &k->handlers[k->n_handlers++];
        snprintf(h->command, sizeof h->command, "%s", str_of(s, "command"));
        h->step = s;
        assert_int_equal(volt_register_handler(k->c, h->command, on_call, h), 0);
    } else if (strcmp(op, "subscribe") == 0) {
        assert_true(volt_on_message(k->c, VOLT_MATCH_ALL, NULL, 0, on_message, k) > 0);
    } else if (strcmp(op, "send") == 0) {
        struct outcome o = {0};
        send_outcome(k, s, &o);
        const cJSON *t = cJSON_GetObjectItem(s, "timeout_ms");
        int limit = WAIT_MS + 3000 + (t ? (int)t->valuedouble : 0);
        bool ok;
        PUMP_UNTIL(ok, r, o.settled > 0, limit);
        if (!ok)
            fail_msg("%s: no outcome within %d ms", what, h_slack_ms(limit));
        check_outcome(&o, cJSON_GetObjectItem(s, "expect"), what);
        outcome_free(&o);
    } else if (strcmp(op, "send_bg") == 0) {
        assert_true(r->n_bg < MAX_BG);
        struct bg *b = &r->bgs[r->n_bg++];
        snprintf(b->name, sizeof b->name, "%s", str_of(s, "as"));
        send_outcome(k, s, &b->o);
    } else if (strcmp(op, "settle") == 0) {
        struct bg *b = bg_of(r, str_of(s, "as"));
        bool ok;
        PUMP_UNTIL(ok, r, b->o.settled > 0, WAIT_MS);
        if (!ok)
            fail_msg("%s: \"%s\" did not settle within %d ms", what, b->name, h_slack_ms(WAIT_MS));
        check_outcome(&b->o, cJSON_GetObjectItem(s, "expect"), what);
    } else if (strcmp(op, "settled_once") == 0) {
        struct bg *b = bg_of(r, str_of(s, "as"));
        if (b->o.settled != 1)
            fail_msg("%s: expected 1 settlement of \"%s\", got %d", what, b->name, b->o.settled);
    } else if (strcmp(op, "emit") == 0) {
        struct proto_buf mp;
        proto_buf_init(&mp);
        to_msgpack(cJSON_GetObjectItem(s, "data"), &mp);
        int rc = volt_emit(k->c, str_of(s, "type"), mp.data, mp.len);
        proto_buf_free(&mp);
        if (rc != 0)
            fail_msg("%s: expected 0, got %s", what, volt_err_name(rc));
    } else if (strcmp(op, "wait_handlers") == 0) {
        const char *cmd = str_of(s, "command");
        int want = (int)h_json_num(s, "clients", 1);
        bool ok;
        PUMP_UNTIL(ok, r, clients_with("handlers", cmd) >= want && server_has_handler(cmd),
                   WAIT_MS);
        if (!ok)
            fail_msg("%s: expected %d client(s) with handler %s at the broker and the server, got "
                     "%d",
                     what, want, cmd, clients_with("handlers", cmd));
    } else if (strcmp(op, "wait_subscribers") == 0) {
        int want = (int)h_json_num(s, "clients", 1);
        bool ok;
        PUMP_UNTIL(ok, r, clients_with("subscriptions", NULL) >= want, WAIT_MS);
        if (!ok)
            fail_msg("%s: expected %d subscriber(s), got %d", what, want,
                     clients_with("subscriptions", NULL));
    } else if (strcmp(op, "wait_pending") == 0) {
        double want = h_json_num(s, "count", 1);
        bool ok;
        PUMP_UNTIL(ok, r, pending_at_broker() >= want, WAIT_MS);
        if (!ok)
            fail_msg("%s: expected %g request(s) pending at the broker, got %g", what, want,
                     pending_at_broker());
    } else if (strcmp(op, "server_request") == 0) {
        struct sb body = {0};
        cJSON *cmd = cJSON_CreateString(str_of(s, "command"));
        sb_str(&body, "{\"timeoutMs\":10000,\"command\":");
        sb_printed(&body, cmd);
        cJSON_Delete(cmd);
        const cJSON *payload = cJSON_GetObjectItem(s, "payload");
        if (payload) {
            sb_str(&body, ",\"payload\":");
            put_value(&body, payload);
        }
        sb_str(&body, "}");
        cJSON *ans = http_pumped(r, what, "POST", "/_dev/server-request", body.p);
        free(body.p);
        const cJSON *resp = cJSON_GetObjectItem(ans, "response");
        char *got = cJSON_PrintUnformatted(resp);
        const cJSON *expect = cJSON_GetObjectItem(s, "expect");
        const char *err = str_of(expect, "error");
        if (err) {
            const cJSON *e = cJSON_GetObjectItem(resp, "error");
            if (!cJSON_IsFalse(cJSON_GetObjectItem(resp, "success")) || !str_of(e, "code") ||
                strcmp(str_of(e, "code"), err) != 0)
                fail_msg("%s: expected error %s, got %s", what, err, got);
            const char *m = str_of(expect, "message");
            if (m && (!str_of(e, "message") || !strstr(str_of(e, "message"), m)))
                fail_msg("%s: expected a message with \"%s\", got %s", what, m, got);
        } else {
            if (!cJSON_IsTrue(cJSON_GetObjectItem(resp, "success")))
                fail_msg("%s: expected success, got %s", what, got);
            const cJSON *data = cJSON_GetObjectItem(expect, "data");
            if (data && !cJSON_Compare(data, cJSON_GetObjectItem(resp, "data"), 1)) {
                char *want = cJSON_PrintUnformatted(data);
                fail_msg("%s: expected data %s, got %s", what, want, got);
            }
        }
        cJSON_free(got);
        cJSON_Delete(ans);
    } else if (strcmp(op, "expect_calls") == 0) {
        const char *cmd = str_of(s, "command");
        int want = (int)h_json_num(s, "count", 1);
        struct handler *h = NULL;
        for (int j = 0; j < k->n_handlers; j++)
            if (strcmp(k->handlers[j].command, cmd) == 0)
                h = &k->handlers[j];
        assert_non_null(h);
        bool ok;
        PUMP_UNTIL(ok, r, h->calls >= want, WAIT_MS);
        (void)ok; /* the count is what is checked */
        if (h->calls != want)
            fail_msg("%s: expected %d call(s) of %s, got %d", what, want, cmd, h->calls);
    } else if (strcmp(op, "server_message") == 0) {
        struct sb body = {0};
        cJSON *type = cJSON_CreateString(str_of(s, "type"));
        sb_str(&body, "{\"type\":");
        sb_printed(&body, type);
        cJSON_Delete(type);
        sb_str(&body, ",\"data\":");
        put_value(&body, cJSON_GetObjectItem(s, "data"));
        sb_str(&body, "}");
        cJSON_Delete(http_pumped(r, what, "POST", "/_dev/message", body.p));
        free(body.p);
    } else if (strcmp(op, "expect_message") == 0) {
        const char *type = str_of(s, "type");
        struct msg *m = NULL;
        bool ok;
        PUMP_UNTIL(ok, r, (m = msg_of(k, type)) != NULL, WAIT_MS);
        if (!ok)
            fail_msg("%s: no message %s within %d ms", what, type, h_slack_ms(WAIT_MS));
        char *want = canonical(cJSON_GetObjectItem(s, "data"));
        if (strcmp(want, m->json) != 0)
            fail_msg("%s: expected %s, got %s", what, want, m->json);
        free(want);
    } else if (strcmp(op, "server_expect_emit") == 0) {
        const char *type = str_of(s, "type");
        cJSON *ev = NULL;
        bool ok;
        PUMP_UNTIL(ok, r, (ev = server_emit_of(type)) != NULL, WAIT_MS);
        if (!ok)
            fail_msg("%s: the server saw no message %s within %d ms", what, type,
                     h_slack_ms(WAIT_MS));
        const cJSON *want = cJSON_GetObjectItem(s, "data");
        if (!cJSON_Compare(want, cJSON_GetObjectItem(ev, "data"), 1)) {
            char *w = cJSON_PrintUnformatted(want);
            char *g = cJSON_PrintUnformatted(cJSON_GetObjectItem(ev, "data"));
            fail_msg("%s: expected %s, got %s", what, w, g);
        }
        cJSON_Delete(ev);
    } else if (strcmp(op, "server_behavior") == 0) {
        char *body = cJSON_PrintUnformatted(cJSON_GetObjectItem(s, "body"));
        cJSON_Delete(http_pumped(r, what, "POST", "/_dev/behavior", body));
        cJSON_free(body);
    } else if (strcmp(op, "drop_upstream") == 0) {
        char body[96];
        snprintf(body, sizeof body, "{\"mode\":\"%s\"}", str_of(s, "mode"));
        cJSON_Delete(http_pumped(r, what, "POST", "/_dev/disconnect", body));
    } else if (strcmp(op, "expect_events") == 0) {
        const cJSON *want = cJSON_GetObjectItem(s, "events");
        char *wt = cJSON_PrintUnformatted(want);
        int n = cJSON_GetArraySize(want);
        bool ok;
        PUMP_UNTIL(ok, r, events_are(k, wt) || k->n_events > n, WAIT_MS);
        (void)ok; /* the list is what is checked */
        char *got = events_text(k);
        if (strcmp(got, wt) != 0)
            fail_msg("%s: expected events %s, got %s", what, wt, got);
        free(got);
        cJSON_free(wt);
    } else if (strcmp(op, "stop_broker") == 0) {
        if (strcmp(str_of(s, "how"), "kill") == 0) {
            h_broker_kill(&broker);
        } else {
            int rc = h_broker_stop(&broker, 15000);
            if (rc != 0)
                fail_msg("%s: expected a clean exit (0), got %d", what, rc);
        }
    } else if (strcmp(op, "start_broker") == 0) {
        assert_int_equal(h_broker_restart(&broker, &server, broker_config), 0);
    } else {
        fail_msg("%s: unknown step", what);
    }
}

static void run_scenario(void **state)
{
    const cJSON *sc = *state;
    if (broker.pid <= 0)
        assert_int_equal(h_broker_restart(&broker, &server, broker_config), 0);
    assert_int_equal(h_http(&server, "POST", "/_dev/reset", "{}", NULL), 200);
    assert_int_equal(h_wait_state(broker.sock, "ready", h_slack_ms(WAIT_MS)), 0);

    struct run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->name = cJSON_GetObjectItem(sc, "name")->valuestring;
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(sc, "steps")) step(r, s, i++);
    /* Only reached when every step passed (cmocka's failures longjmp out;
     * the process then ends with the group). */
    for (int j = 0; j < r->n_clis; j++) {
        struct cli *k = &r->clis[j];
        volt_client_free(k->c);
        for (int m = 0; m < k->n_msgs; m++) {
            free(k->msgs[m].type);
            free(k->msgs[m].json);
        }
    }
    for (int j = 0; j < r->n_bg; j++)
        outcome_free(&r->bgs[j].o);
    free(r);
}

static int group_setup(void **state)
{
    (void)state;
    cJSON *cfg = cJSON_Parse(
        "{\"controlSocketUrl\":\"ws://127.0.0.1:%PORT%/control\","
        "\"credentials\":{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"},"
        "\"socket\":{\"reconnectionDelay\":100,\"reconnectionDelayMax\":300},"
        "\"broker\":{\"listen\":\"%SOCK%\",\"stateDir\":\"%STATE%\",\"logLevel\":\"debug\"}}");
    const cJSON *extra;
    cJSON_ArrayForEach(extra, cJSON_GetObjectItem(spec, "broker"))
    {
        cJSON_DeleteItemFromObject(cfg, extra->string);
        cJSON_AddItemToObject(cfg, extra->string, cJSON_Duplicate(extra, 1));
    }
    broker_config = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    if (h_server_start(&server, NULL) < 0 ||
        h_broker_start(&broker, &server, broker_config, NULL) < 0)
        return -1;
    return h_wait_state(broker.sock, "ready", h_slack_ms(15000));
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = broker.pid > 0 ? h_broker_stop(&broker, 15000) : 0;
    if (rc != 0) {
        fprintf(stderr, "the broker did not exit cleanly (%d; valgrind: leaks or errors)\n", rc);
        h_broker_dump_log(&broker);
    }
    h_broker_cleanup(&broker);
    h_server_stop(&server);
    cJSON_free(broker_config);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    char *text = h_file_text(VOLT_SOURCE_DIR "/tests/conformance/scenarios.json");
    if (!text) {
        fprintf(stderr, "cannot read %s\n", VOLT_SOURCE_DIR "/tests/conformance/scenarios.json");
        return 1;
    }
    spec = cJSON_Parse(text);
    free(text);
    if (!spec) {
        fprintf(stderr, "scenarios.json: not JSON\n");
        return 1;
    }
    const cJSON *list = cJSON_GetObjectItem(spec, "scenarios");
    int n = cJSON_GetArraySize(list);
    struct CMUnitTest *tests = calloc((size_t)n, sizeof *tests);
    if (!tests)
        return 1;
    int i = 0;
    const cJSON *sc;
    cJSON_ArrayForEach(sc, list)
    {
        tests[i].name = cJSON_GetObjectItem(sc, "name")->valuestring;
        tests[i].test_func = run_scenario;
        tests[i].initial_state = (void *)sc;
        i++;
    }
    h_apply_test_filter();
    int rc = _cmocka_run_group_tests("conformance", tests, (size_t)n, group_setup, group_teardown);
    free(tests);
    cJSON_Delete(spec);
    return rc;
}
