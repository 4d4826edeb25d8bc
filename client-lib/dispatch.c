/* Frames from the broker, and what they complete or start: request
 * results, inbound calls, messages, events.
 *
 * Strings on the wire are not NUL-terminated and frames live in the read
 * buffer, so each dispatch copies the few strings a callback sees into a
 * small arena on the stack (heap only for long ones) and hands out raw
 * msgpack as pointers into the frame: nothing is allocated per message in
 * the common case.
 *
 * A call (inbound command) is different: its handler may answer long after
 * the frame is gone, so the call object owns a copy of command and payload.
 * It is reference counted between the user (until the answer) and the
 * dispatch that delivers it (until the handler returns), which makes an
 * answer given inside the handler and one given later the same code path.
 * When the session ends the client detaches its calls (call->client =
 * NULL) instead of freeing them: the user may still hold one, and its
 * answer must then be refused, never sent into a later session where the
 * broker's call ids mean other calls.
 *
 * Answers from other threads. A handler may hand its call to a worker
 * thread; the worker must not touch the client (one thread at a time), so
 * its answer goes through the hub the client shares with its calls: under
 * the hub's lock the worker marks the call answered, checks it is still
 * attached, appends the encoded answer to a queue and writes the client's
 * eventfd; the client's thread drains the queue on its next
 * volt_client_process() and sends each answer exactly as an answer made in
 * the handler would be. Which path an answer takes is decided by the
 * thread: the one that delivered the call answers directly (no lock held
 * across the send, no extra loop round), any other queues. Everything a
 * worker may see of a call (answered, client, refs) is read and written
 * under the hub's lock; the hub itself is reference counted by the client
 * and every live call, so a worker answering after the client was freed
 * finds client_gone and returns BrokerGone without touching freed memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client-internal.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/msgpack.h"
#include "proto/text.h"

/* ------------------------------------------------------------------ */
/* Small string arena                                                  */
/* ------------------------------------------------------------------ */

struct strs {
    char buf[512];
    size_t used;
    char *heap[8];
    int n_heap;
};

static void strs_init(struct strs *s)
{
    s->used = 0;
    s->n_heap = 0;
}

static void strs_free(struct strs *s)
{
    for (int i = 0; i < s->n_heap; i++)
        free(s->heap[i]);
    s->n_heap = 0;
}

/* NUL-terminated copy of sp; "" on out of memory (the callback still runs). */
static const char *strs_put(struct strs *s, const struct proto_span *sp)
{
    size_t need = (size_t)sp->len + 1;
    char *p;
    if (need <= sizeof s->buf - s->used) {
        p = s->buf + s->used;
        s->used += need;
    } else if (s->n_heap < (int)(sizeof s->heap / sizeof s->heap[0]) && (p = malloc(need))) {
        s->heap[s->n_heap++] = p;
    } else {
        return "";
    }
    if (sp->len)
        memcpy(p, sp->ptr, sp->len);
    p[sp->len] = '\0';
    return p;
}

static const char *strs_field(struct strs *s, const struct proto_msg *m, enum proto_field f,
                              const struct proto_span *sp)
{
    return proto_msg_has(m, f) ? strs_put(s, sp) : NULL;
}

/* ------------------------------------------------------------------ */
/* JSON helpers                                                        */
/* ------------------------------------------------------------------ */

int volt__json_out(const struct proto_span *mp, char **out, size_t *out_len)
{
    struct proto_buf b = PROTO_BUF_INIT;
    int rc = 0;
    if (!mp || !mp->ptr || mp->len == 0) {
        rc = proto_buf_append(&b, "null", 4);
    } else {
        struct proto_json_opts opts;
        memset(&opts, 0, sizeof opts);
        opts.bin = PROTO_JSON_BIN_MARKER;
        rc = proto_msgpack_to_json(mp->ptr, mp->len, &b, &opts, NULL);
    }
    if (rc == 0)
        rc = proto_buf_append_byte(&b, '\0');
    if (rc < 0) {
        proto_buf_free(&b);
        return rc == PROTO_E_BAD_FRAME ? VOLT_E_BAD_REQUEST : rc;
    }
    *out = (char *)b.data;
    if (out_len)
        *out_len = b.len - 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

struct answer {
    int code;
    const char *code_name;
    const char *message;
    const char *server_code;
    struct proto_span data; /* ptr NULL when absent */
};

int volt__request(volt_client *c, struct proto_msg *m, int kind, unsigned flags, int64_t timeout_ms,
                  void (*cb)(void), void *privdata, uint64_t *id_out)
{
    if (!volt__alive(c) || !volt__has_socket(c)) {
        volt__set_error(c, "not connected to the broker");
        /* A command of a live client: the upstream is not reachable, as
         * for the other client libraries. */
        return volt__alive(c) && (flags & VOLT__R_COMMAND) ? VOLT_E_SOCKET_NOT_READY
                                                           : VOLT_E_BROKER_GONE;
    }
    struct volt__req *r = volt__reqs_alloc(&c->reqs);
    if (!r)
        return VOLT_E_NOMEM;
    r->id = c->next_id++;
    r->kind = kind;
    r->flags = flags;
    r->cb = cb;
    r->privdata = privdata;
    r->deadline = timeout_ms > 0 ? volt__now_ms() + timeout_ms : VOLT__NO_DEADLINE;
    m->id = r->id;
    m->fields |= PROTO_F_ID;
    if (volt__reqs_insert(&c->reqs, r) < 0) {
        volt__reqs_release(&c->reqs, r);
        return VOLT_E_NOMEM;
    }
    int rc = volt__send(c, m);
    if (rc < 0) {
        volt__reqs_release(&c->reqs, volt__reqs_take(&c->reqs, m->id));
        return rc;
    }
    if (id_out)
        *id_out = m->id;
    return 0;
}

/* One allocation: the struct, then data, json, and the strings. */
static volt_result *result_dup(const volt_result *src)
{
    size_t cn = src->code_name ? strlen(src->code_name) + 1 : 0;
    size_t mn = src->message ? strlen(src->message) + 1 : 0;
    size_t sn = src->server_code ? strlen(src->server_code) + 1 : 0;
    size_t jn = src->json ? src->json_len + 1 : 0;
    volt_result *r = malloc(sizeof *r + src->data_len + jn + cn + mn + sn);
    if (!r)
        return NULL;
    char *p = (char *)(r + 1);
    *r = *src;
    if (src->data) {
        memcpy(p, src->data, src->data_len);
        r->data = p;
        p += src->data_len;
    }
    if (src->json) {
        memcpy(p, src->json, jn);
        r->json = p;
        p += jn;
    }
    if (src->code_name) {
        memcpy(p, src->code_name, cn);
        r->code_name = p;
        p += cn;
    }
    if (src->message) {
        memcpy(p, src->message, mn);
        r->message = p;
        p += mn;
    }
    if (src->server_code) {
        memcpy(p, src->server_code, sn);
        r->server_code = p;
    }
    return r;
}

void volt_result_free(volt_result *r)
{
    free(r);
}

/* Builds the user's view of an answer; *json_heap (to free) when JSON was asked. */
static void build_result(const struct answer *a, unsigned flags, volt_result *res, char **json_heap)
{
    memset(res, 0, sizeof *res);
    *json_heap = NULL;
    res->code = a->code;
    if (a->code) {
        res->code_name = a->code_name ? a->code_name : volt_err_name(a->code);
        res->message = a->message ? a->message : volt_strerror(a->code);
        res->server_code = a->server_code;
    }
    if (a->data.ptr) {
        res->data = a->data.ptr;
        res->data_len = a->data.len;
    }
    if ((flags & VOLT__R_JSON) && a->code == 0) {
        int rc = volt__json_out(&a->data, json_heap, &res->json_len);
        if (rc < 0) {
            res->code = rc;
            res->code_name = volt_err_name(rc);
            res->message = "the result has no JSON form";
        } else {
            res->json = *json_heap;
        }
    }
}

/* A credential's value: the data must be one msgpack string. */
static int string_value(const struct answer *a, char **out)
{
    *out = NULL;
    if (a->code)
        return a->code;
    struct proto_mp_cursor cur;
    struct proto_mp_value v;
    proto_mp_cursor_init(&cur, a->data.ptr, a->data.len);
    if (!a->data.ptr || proto_mp_next(&cur, &v) < 0 || v.type != PROTO_MP_STR)
        return VOLT_E_BAD_REQUEST;
    char *s = malloc((size_t)v.v.str.len + 1);
    if (!s)
        return VOLT_E_NOMEM;
    if (v.v.str.len)
        memcpy(s, v.v.str.ptr, v.v.str.len);
    s[v.v.str.len] = '\0';
    *out = s;
    return 0;
}

static void complete(volt_client *c, struct volt__req *r, const struct answer *a)
{
    int kind = r->kind;
    unsigned flags = r->flags;
    void (*cb)(void) = r->cb;
    void *privdata = r->privdata;
    /* Recycle first: the callback may start new requests. */
    volt__reqs_release(&c->reqs, r);

    switch (kind) {
    case VOLT__K_RESULT: {
        volt_result res;
        char *json;
        build_result(a, flags, &res, &json);
        if (cb)
            ((volt_result_cb *)cb)(c, &res, privdata);
        free(json);
        break;
    }
    case VOLT__K_SYNC: {
        struct volt__wait *w = privdata;
        volt_result res;
        char *json;
        build_result(a, w->flags, &res, &json);
        w->result = result_dup(&res);
        w->code = res.code;
        w->done = true;
        free(json);
        break;
    }
    case VOLT__K_STRING: {
        char *value;
        int code = string_value(a, &value);
        ((volt_string_cb *)cb)(c, code, value, privdata);
        if (value) {
            explicit_bzero(value, strlen(value));
            free(value);
        }
        break;
    }
    case VOLT__K_SYNC_STRING: {
        struct volt__wait *w = privdata;
        w->code = string_value(a, &w->string);
        w->done = true;
        break;
    }
    case VOLT__K_INTERNAL:
        /* BrokerGone: the session ended, the next one announces it all again. */
        if (a->code && a->code != VOLT_E_BROKER_GONE)
            volt__emit_error(c, a->code, "%s refused by the broker: %s%s%s",
                             privdata ? (const char *)privdata : "operation",
                             a->code_name ? a->code_name : volt_err_name(a->code),
                             a->message ? ": " : "", a->message ? a->message : "");
        break;
    default:
        break;
    }
}

void volt__complete_local(volt_client *c, struct volt__req *r, int code, const char *message)
{
    struct answer a;
    memset(&a, 0, sizeof a);
    a.code = code;
    a.code_name = volt_err_name(code);
    a.message = message;
    complete(c, r, &a);
}

void volt__cancel(volt_client *c, uint64_t id)
{
    volt__reqs_release(&c->reqs, volt__reqs_take(&c->reqs, id));
}

void volt__expire(volt_client *c, int64_t now)
{
    struct volt__req *r;
    while (volt__alive(c) && (r = volt__reqs_take_expired(&c->reqs, now))) {
        char msg[96];
        snprintf(msg, sizeof msg, "no answer from the broker in time (request %llu)",
                 (unsigned long long)r->id);
        volt__complete_local(c, r, VOLT_E_TIMEOUT, msg);
    }
}

void volt__fail_all(volt_client *c, int code, const char *message)
{
    /* Take them all first: callbacks may start requests on a new session. */
    struct volt__req *r = volt__reqs_take_all(&c->reqs);
    while (r) {
        struct volt__req *next = r->next;
        /* Commands in flight fail with SOCKET_NOT_READY, once, as in every
         * client library; the broker's own operations with `code`. */
        volt__complete_local(c, r, (r->flags & VOLT__R_COMMAND) ? VOLT_E_SOCKET_NOT_READY : code,
                             message);
        r = next;
    }
}

/* ------------------------------------------------------------------ */
/* Handler and subscription tables                                     */
/* ------------------------------------------------------------------ */

static void sub_free(struct volt__sub *s)
{
    free(s->type);
    free(s);
}

void volt__free_tables(volt_client *c)
{
    for (size_t i = 0; i < c->n_handlers; i++)
        free(c->handlers[i].command);
    free(c->handlers);
    c->handlers = NULL;
    c->n_handlers = c->cap_handlers = 0;
    for (size_t i = 0; i < c->n_subs; i++)
        sub_free(c->subs[i]);
    free(c->subs);
    c->subs = NULL;
    c->n_subs = c->cap_subs = 0;
}

static bool sub_matches(const struct volt__sub *s, const char *type)
{
    switch (s->match) {
    case VOLT_MATCH_ALL:
        return true;
    case VOLT_MATCH_EXACT:
        return strcmp(s->type, type) == 0;
    case VOLT_MATCH_PREFIX:
        return strncmp(s->type, type, strlen(s->type)) == 0;
    }
    return false;
}

static void compact_subs(volt_client *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_subs; i++) {
        if (c->subs[i]->dead)
            sub_free(c->subs[i]);
        else
            c->subs[n++] = c->subs[i];
    }
    c->n_subs = n;
}

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

/* Takes the call off its client's list (client's thread). Under the hub's
 * lock: a worker may be reading call->client. Returns true when a worker
 * gave up on the call (abandoned): the list's reference is then the
 * last one, for the caller to drop. */
static bool call_unlink(struct volt_call *call)
{
    volt_client *c = call->client;
    if (!c)
        return false;
    pthread_mutex_lock(&call->hub->lock);
    bool abandoned = call->abandoned;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    call->client = NULL;
    pthread_mutex_unlock(&call->hub->lock);
    return abandoned;
}

static void call_unref(struct volt_call *call)
{
    struct volt__hub *hub = call->hub;
    pthread_mutex_lock(&hub->lock);
    bool last = --call->refs == 0;
    pthread_mutex_unlock(&hub->lock);
    if (!last)
        return;
    free(call->payload_json);
    free(call);
    volt__hub_unref(hub);
}

void volt__detach_calls(volt_client *c)
{
    while (c->calls) {
        struct volt_call *call = c->calls;
        if (call_unlink(call))
            call_unref(call);
    }
}

static int send_reply_fail_name(volt_client *c, uint64_t id, const char *name, const char *message)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_REPLY;
    m.fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_CODE;
    m.id = id;
    m.ok = false;
    m.code = proto_span_str(name, (uint32_t)strlen(name));
    if (message) {
        m.fields |= PROTO_F_MESSAGE;
        size_t n = strnlen(message, 4096);
        m.message = proto_span_str(message, (uint32_t)n);
    }
    return volt__send(c, &m);
}

static int send_reply_fail(volt_client *c, uint64_t id, int code, const char *message)
{
    return send_reply_fail_name(c, id, volt_err_name(code), message);
}

static int send_reply_ok(volt_client *c, uint64_t id, const struct proto_span *data)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_REPLY;
    m.fields = PROTO_F_ID | PROTO_F_OK;
    m.id = id;
    m.ok = true;
    if (data && data->ptr && data->len) {
        m.fields |= PROTO_F_DATA;
        m.data = *data;
    }
    return volt__send(c, &m);
}

/* An answer, ready to send: ok with msgpack data (ptr NULL: none), or a
 * failure with a wire code name and a message. */
struct answer_out {
    bool ok;
    struct proto_span data;
    const char *code_name;
    const char *message;
};

/* Sends one answer on the client's thread; when it cannot be sent (data
 * too large for a frame, output full) a HandlerError goes out in its place
 * so the server still gets exactly one. Returns the first error. */
static int send_answer(volt_client *c, uint64_t id, const struct answer_out *a)
{
    int rc = a->ok ? send_reply_ok(c, id, &a->data)
                   : send_reply_fail_name(c, id, a->code_name, a->message);
    if (rc < 0 && rc != VOLT_E_BROKER_GONE) {
        char why[400];
        snprintf(why, sizeof why, "handler reply could not be sent: %s (%.300s)", volt_strerror(rc),
                 c->errstr);
        send_reply_fail(c, id, VOLT_E_HANDLER_ERROR, why);
    }
    return rc;
}

/* An answer queued by another thread: one allocation, data and strings
 * after the struct. */
struct volt__xanswer {
    struct volt__xanswer *next;
    struct volt_call *call;
    bool ok;
    uint32_t data_len;
    char *code_name; /* !ok */
    char *message;   /* may be NULL */
    uint8_t data[];
};

static struct volt__xanswer *xanswer_new(struct volt_call *call, const struct answer_out *a)
{
    size_t dn = a->ok && a->data.ptr ? a->data.len : 0;
    size_t cn = a->ok ? 0 : strlen(a->code_name) + 1;
    size_t mn = !a->ok && a->message ? strnlen(a->message, 4096) + 1 : 0;
    struct volt__xanswer *x = malloc(sizeof *x + dn + cn + mn);
    if (!x)
        return NULL;
    memset(x, 0, sizeof *x);
    x->call = call;
    x->ok = a->ok;
    x->data_len = (uint32_t)dn;
    char *p = (char *)x->data + dn;
    if (dn)
        memcpy(x->data, a->data.ptr, dn);
    if (cn) {
        memcpy(p, a->code_name, cn);
        x->code_name = p;
        p += cn;
    }
    if (mn) {
        memcpy(p, a->message, mn - 1);
        p[mn - 1] = '\0';
        x->message = p;
    }
    return x;
}

void volt__drain_answers(volt_client *c)
{
    struct volt__hub *hub = c->hub;
    pthread_mutex_lock(&hub->lock);
    struct volt__xanswer *x = hub->head;
    hub->head = hub->tail = NULL;
    pthread_mutex_unlock(&hub->lock);
    while (x) {
        struct volt__xanswer *next = x->next;
        struct volt_call *call = x->call;
        /* Detached since it was queued (session lost, client freed): the
         * broker has answered the server already. */
        if (call->client == c && volt__alive(c) && volt__has_socket(c)) {
            volt__enter(c);
            call_unlink(call);
            struct answer_out a = {
                x->ok, {x->data_len ? x->data : NULL, x->data_len}, x->code_name, x->message};
            int rc = send_answer(c, call->id, &a);
            if (rc < 0 && rc != VOLT_E_BROKER_GONE)
                volt__emit_error(c, rc, "answer to call %llu (%s) from another thread: %s",
                                 (unsigned long long)call->id, call->command, c->errstr);
            volt__leave(c, 0);
        } else {
            call_unlink(call);
        }
        call_unref(call);
        free(x);
        x = next;
    }
}

enum answer_kind { ANSWER_DATA, ANSWER_JSON, ANSWER_FAIL };

/* Turns what the user gave into an answer. Errors (bad data, bad code)
 * become a HandlerError answer saying why, and are returned: the call is
 * answered either way. jdoc/jbuf: scratch (the client's on its thread, a
 * local one on another). */
static int prepare_answer(enum answer_kind kind, const void *data, size_t len, const char *json,
                          const char *code_name, const char *message, struct proto_json_doc *jdoc,
                          struct proto_buf *jbuf, struct answer_out *a, char *why, size_t why_size)
{
    memset(a, 0, sizeof *a);
    int rc = 0;
    why[0] = '\0';
    switch (kind) {
    case ANSWER_FAIL:
        a->code_name = code_name;
        a->message = message;
        return 0;
    case ANSWER_JSON:
        a->ok = true;
        if (!json)
            return 0;
        {
            struct proto_json_opts opts;
            memset(&opts, 0, sizeof opts);
            opts.bin = PROTO_JSON_BIN_MARKER;
            struct proto_json_error err;
            memset(&err, 0, sizeof err);
            proto_buf_reset(jbuf);
            rc = proto_json_to_msgpack(jdoc, json, strlen(json), jbuf, &opts, &err);
            if (rc == 0) {
                a->data = (struct proto_span){jbuf->data, (uint32_t)jbuf->len};
                return 0;
            }
            snprintf(why, why_size, "invalid JSON: %s", err.text[0] ? err.text : volt_strerror(rc));
            rc = rc == PROTO_E_BAD_FRAME ? VOLT_E_BAD_REQUEST : rc;
        }
        break;
    case ANSWER_DATA:
        a->ok = true;
        if (!data || !len)
            return 0;
        if (len > PROTO_HARD_MAX_FRAME) {
            snprintf(why, why_size, "value of %zu bytes is larger than any frame", len);
            rc = VOLT_E_FRAME_TOO_LARGE;
            break;
        }
        {
            struct proto_limits limits;
            proto_limits_default(&limits);
            size_t used = 0;
            const char *bad = NULL;
            if (proto_mp_validate(data, len, &limits, &used, &bad) < 0) {
                snprintf(why, why_size, "payload is not valid msgpack: %s", bad ? bad : "?");
                rc = VOLT_E_BAD_REQUEST;
            } else if (used != len) {
                snprintf(why, why_size, "payload has %zu bytes after its msgpack value",
                         len - used);
                rc = VOLT_E_BAD_REQUEST;
            } else {
                a->data = (struct proto_span){data, (uint32_t)len};
                return 0;
            }
        }
        break;
    }
    /* The server must still get exactly one answer. */
    a->ok = false;
    a->code_name = volt_err_name(VOLT_E_HANDLER_ERROR);
    a->message = why;
    return rc;
}

/* Marks the call answered (once); false when it already was. */
static bool claim(struct volt_call *call, volt_client **client, bool *gone)
{
    pthread_mutex_lock(&call->hub->lock);
    bool first = !call->answered;
    call->answered = true;
    *client = call->client;
    *gone = call->hub->client_gone;
    pthread_mutex_unlock(&call->hub->lock);
    return first;
}

/* The answer from a thread other than the call's: encode here, queue for
 * the client's thread, wake it. */
static int answer_queued(volt_call *call, enum answer_kind kind, const void *data, size_t len,
                         const char *json, const char *code_name, const char *message)
{
    struct proto_json_doc jdoc;
    struct proto_buf jbuf = PROTO_BUF_INIT;
    proto_json_doc_init(&jdoc);
    struct answer_out a;
    char why[300];
    int rc = prepare_answer(kind, data, len, json, code_name, message, &jdoc, &jbuf, &a, why,
                            sizeof why);
    struct volt__xanswer *x = xanswer_new(call, &a);
    proto_json_doc_free(&jdoc);
    proto_buf_free(&jbuf);

    struct volt__hub *hub = call->hub;
    pthread_mutex_lock(&hub->lock);
    bool attached = call->client && !hub->client_gone;
    if (attached && x) {
        x->next = NULL;
        if (hub->tail)
            hub->tail->next = x;
        else
            hub->head = x;
        hub->tail = x;
        uint64_t one = 1;
        (void)!write(hub->wake_fd, &one, sizeof one);
    }
    pthread_mutex_unlock(&hub->lock);
    if (attached && x)
        return rc; /* the queue owns the call's last reference now */
    free(x);
    if (attached) {
        /* Out of memory: the call stays on the client's list, the broker
         * answers HandlerTimeout in the end, and the client drops it when
         * it detaches its calls. */
        pthread_mutex_lock(&hub->lock);
        call->abandoned = true;
        pthread_mutex_unlock(&hub->lock);
        return VOLT_E_NOMEM;
    }
    call_unref(call);
    return VOLT_E_BROKER_GONE;
}

/* The one path of every answer: exactly one reply goes out (or none when
 * detached), the call is consumed. */
static int call_answer(volt_call *call, enum answer_kind kind, const void *data, size_t len,
                       const char *json, const char *code_name, const char *message)
{
    if (!call)
        return VOLT_E_BAD_REQUEST;
    volt_client *c;
    bool gone;
    if (!claim(call, &c, &gone))
        return VOLT_E_BAD_REQUEST; /* only visible while the handler still runs */
    if (!pthread_equal(pthread_self(), call->thread)) {
        if (!c || gone) {
            call_unref(call);
            return VOLT_E_BROKER_GONE;
        }
        return answer_queued(call, kind, data, len, json, code_name, message);
    }
    int rc = VOLT_E_BROKER_GONE;
    if (c && volt__alive(c) && volt__has_socket(c)) {
        volt__enter(c);
        call_unlink(call);
        struct answer_out a;
        char why[300];
        rc = prepare_answer(kind, data, len, json, code_name, message, &c->jdoc, &c->jbuf, &a, why,
                            sizeof why);
        if (rc < 0)
            volt__set_error(c, "%s", why);
        int src = send_answer(c, call->id, &a);
        if (rc == 0)
            rc = src;
        volt__leave(c, 0);
    } else {
        call_unlink(call);
    }
    call_unref(call);
    return rc;
}

int volt_call_reply(volt_call *call, const void *data, size_t len)
{
    return call_answer(call, ANSWER_DATA, data, len, NULL, NULL, NULL);
}

int volt_call_reply_json(volt_call *call, const char *json_data)
{
    return call_answer(call, ANSWER_JSON, NULL, 0, json_data, NULL, NULL);
}

int volt_call_fail(volt_call *call, int code, const char *message)
{
    if (code >= 0)
        code = VOLT_E_HANDLER_ERROR;
    return call_answer(call, ANSWER_FAIL, NULL, 0, NULL, volt_err_name(code), message);
}

int volt_call_fail_code(volt_call *call, const char *code, const char *message)
{
    if (code && proto_name_valid((const uint8_t *)code, strlen(code), 64))
        return call_answer(call, ANSWER_FAIL, NULL, 0, NULL, code, message);
    /* The call is consumed all the same, with a HandlerError that says why. */
    char why[300];
    snprintf(why, sizeof why, "handler failed with an unusable error code (%s)%s%.200s",
             code ? "not 1..64 bytes of UTF-8 without control characters" : "none",
             message ? ": " : "", message ? message : "");
    int rc =
        call_answer(call, ANSWER_FAIL, NULL, 0, NULL, volt_err_name(VOLT_E_HANDLER_ERROR), why);
    return rc == VOLT_E_BAD_REQUEST || rc == 0 ? VOLT_E_BAD_REQUEST : rc;
}

const char *volt_call_command(const volt_call *call)
{
    return call->command;
}

const void *volt_call_payload(const volt_call *call, size_t *len)
{
    if (len)
        *len = call->payload ? call->payload_len : 0;
    return call->payload;
}

const char *volt_call_payload_json(volt_call *call)
{
    if (!call->payload_json) {
        struct proto_span sp = {call->payload, call->payload_len};
        if (volt__json_out(&sp, &call->payload_json, NULL) < 0)
            return NULL;
    }
    return call->payload_json;
}

uint32_t volt_call_timeout_ms(const volt_call *call)
{
    return call->timeout_ms;
}

volt_client *volt_call_client(const volt_call *call)
{
    return call->client;
}

static void on_call(volt_client *c, const struct proto_msg *m)
{
    const struct volt__handler *h = NULL;
    for (size_t i = 0; i < c->n_handlers; i++) {
        const char *cmd = c->handlers[i].command;
        if (strlen(cmd) == m->command.len && memcmp(cmd, m->command.ptr, m->command.len) == 0) {
            h = &c->handlers[i];
            break;
        }
    }
    if (!h) {
        /* Unregistered while the call was on its way. */
        send_reply_fail(c, m->id, VOLT_E_NO_HANDLER, "no handler for this command in this client");
        return;
    }
    bool has_payload = proto_msg_has(m, PROTO_F_PAYLOAD) && m->payload.len;
    size_t plen = has_payload ? m->payload.len : 0;
    struct volt_call *call = malloc(sizeof *call + plen + m->command.len + 1);
    if (!call) {
        send_reply_fail(c, m->id, VOLT_E_HANDLER_ERROR, "client out of memory");
        return;
    }
    memset(call, 0, sizeof *call);
    call->id = m->id;
    call->timeout_ms = (uint32_t)(m->timeout_ms > UINT32_MAX ? UINT32_MAX : m->timeout_ms);
    if (has_payload) {
        memcpy(call->storage, m->payload.ptr, plen);
        call->payload = call->storage;
        call->payload_len = (uint32_t)plen;
    }
    call->command = (char *)call->storage + plen;
    if (m->command.len)
        memcpy(call->command, m->command.ptr, m->command.len);
    call->command[m->command.len] = '\0';
    call->thread = pthread_self();
    call->hub = c->hub;
    pthread_mutex_lock(&c->hub->lock);
    c->hub->refs++;
    call->refs = 2;
    call->client = c;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    pthread_mutex_unlock(&c->hub->lock);

    volt_handler_cb *cb = h->cb;
    void *privdata = h->privdata;
    cb(c, call, privdata);
    call_unref(call);
}

/* ------------------------------------------------------------------ */
/* Frames                                                              */
/* ------------------------------------------------------------------ */

static void answer_from_msg(const struct proto_msg *m, struct strs *s, struct answer *a)
{
    memset(a, 0, sizeof *a);
    if (m->op == PROTO_OP_PONG || (proto_msg_has(m, PROTO_F_OK) && m->ok)) {
        a->code = 0;
    } else {
        a->code_name = strs_field(s, m, PROTO_F_CODE, &m->code);
        a->code = a->code_name ? proto_error_from_name(a->code_name, strlen(a->code_name)) : 0;
        if (a->code >= 0)
            a->code = VOLT_E_INTERNAL; /* a code this library does not know */
        a->message = strs_field(s, m, PROTO_F_MESSAGE, &m->message);
        a->server_code = strs_field(s, m, PROTO_F_SERVER_CODE, &m->server_code);
    }
    if (proto_msg_has(m, PROTO_F_DATA) && m->data.len)
        a->data = m->data;
}

static void on_result(volt_client *c, const struct proto_msg *m)
{
    struct volt__req *r = volt__reqs_take(&c->reqs, m->id);
    if (!r)
        return; /* already timed out locally */
    struct strs s;
    strs_init(&s);
    struct answer a;
    answer_from_msg(m, &s, &a);
    complete(c, r, &a);
    strs_free(&s);
}

/* An error frame never completes a request (PROTOCOL.md, "Results and
 * errors"): a problem with a request comes back as its result. The frame
 * is about something that has no result (a reply, an emit without id, a
 * frame the broker could not read): it goes to the error callback, with
 * the op and id it is about when the broker says. */
static void on_error_frame(volt_client *c, const struct proto_msg *m)
{
    struct strs s;
    strs_init(&s);
    const char *name = strs_put(&s, &m->code);
    const char *message = strs_put(&s, &m->message);
    const char *about = strs_field(&s, m, PROTO_F_ABOUT, &m->about);
    int code = proto_error_from_name(name, strlen(name));
    char where[96] = "";
    if (about && proto_msg_has(m, PROTO_F_ID))
        snprintf(where, sizeof where, " (about %s %llu)", about, (unsigned long long)m->id);
    else if (about)
        snprintf(where, sizeof where, " (about %s)", about);
    if (code == VOLT_E_VERSION_MISMATCH && c->state == VOLT__HELLO) {
        c->flags |= VOLT__FATAL;
        volt__connection_lost(c, code, message);
    } else if (code < 0) {
        volt__emit_error(c, code, "%s%s", message, where);
    } else {
        volt__emit_error(c, VOLT_E_INTERNAL, "%s: %s%s", name, message, where);
    }
    strs_free(&s);
}

static void set_state(volt_client *c, const struct proto_msg *m)
{
    if (!proto_msg_has(m, PROTO_F_STATE))
        return;
    size_t n =
        m->state.len < sizeof c->upstream_state - 1 ? m->state.len : sizeof c->upstream_state - 1;
    if (n)
        memcpy(c->upstream_state, m->state.ptr, n);
    c->upstream_state[n] = '\0';
}

/* Copies a span into a fixed buffer, cut to fit. */
static void copy_span(char *dst, size_t size, const struct proto_span *sp)
{
    size_t n = sp->len < size - 1 ? sp->len : size - 1;
    if (n)
        memcpy(dst, sp->ptr, n);
    dst[n] = '\0';
}

/* Records the upstream's latest error (welcome code/message, event error). */
static void set_upstream_error(volt_client *c, const struct proto_msg *m)
{
    if (!proto_msg_has(m, PROTO_F_CODE))
        return;
    char name[64];
    copy_span(name, sizeof name, &m->code);
    int code = proto_error_from_name(name, strlen(name));
    c->upstream_code = code < 0 ? code : VOLT_E_INTERNAL;
    if (proto_msg_has(m, PROTO_F_MESSAGE))
        copy_span(c->upstream_message, sizeof c->upstream_message, &m->message);
    else
        snprintf(c->upstream_message, sizeof c->upstream_message, "%s", volt_strerror(code));
}

struct rearm {
    volt_client *c;
    int64_t deadline;
};

static void rearm_one(struct volt__req *r, void *arg)
{
    struct rearm *a = arg;
    if ((r->flags & VOLT__R_BROKER_TIMEOUT) && r->deadline == VOLT__NO_DEADLINE)
        volt__reqs_set_deadline(&a->c->reqs, r, a->deadline);
}

static void on_welcome(volt_client *c, const struct proto_msg *m)
{
    if (c->state != VOLT__HELLO) {
        /* The broker sends one welcome per connection: a second one is bad
         * input, which ends the connection as in every client library. */
        volt__connection_lost(c, VOLT_E_BAD_FRAME, "bad frame from broker: a second welcome");
        return;
    }
    if (m->version < PROTO_VERSION_MIN || m->version > PROTO_VERSION_MAX) {
        char why[120];
        snprintf(why, sizeof why, "broker chose protocol version %llu; this client speaks %u..%u",
                 (unsigned long long)m->version, PROTO_VERSION_MIN, PROTO_VERSION_MAX);
        c->flags |= VOLT__FATAL;
        volt__connection_lost(c, VOLT_E_VERSION_MISMATCH, why);
        return;
    }
    uint64_t mf = m->max_frame;
    c->send_max_frame =
        (uint32_t)(mf == 0 || mf > PROTO_HARD_MAX_FRAME ? PROTO_DEFAULT_MAX_FRAME : mf);
    size_t n = m->name.len < sizeof c->broker_name - 1 ? m->name.len : sizeof c->broker_name - 1;
    if (n)
        memcpy(c->broker_name, m->name.ptr, n);
    c->broker_name[n] = '\0';
    set_state(c, m);
    c->ready = strcmp(c->upstream_state, "ready") == 0;
    if (proto_msg_has(m, PROTO_F_REASON))
        copy_span(c->upstream_reason, sizeof c->upstream_reason, &m->reason);
    if (proto_msg_has(m, PROTO_F_TEAM_CLUSTER_ID))
        copy_span(c->team_cluster_id, sizeof c->team_cluster_id, &m->team_cluster_id);
    set_upstream_error(c, m);
    c->broker_timeout_ms =
        proto_msg_has(m, PROTO_F_TIMEOUT_MS) && m->timeout_ms && m->timeout_ms <= UINT32_MAX
            ? (uint32_t)m->timeout_ms
            : 0;
    c->broker_max_timeout_ms =
        proto_msg_has(m, PROTO_F_MAX_TIMEOUT_MS) && m->max_timeout_ms <= UINT32_MAX
            ? (uint32_t)m->max_timeout_ms
            : 0;
    c->state = VOLT__SESSION;
    c->conn_deadline = VOLT__NO_DEADLINE;
    c->backoff_attempt = 0;
    c->errstr[0] = '\0';
    /* Commands sent before the welcome on the broker's commandTimeout get
     * their local deadline now: the broker reads them after this hello, so
     * its clock for them starts no earlier than ours does here. */
    struct rearm a = {c, volt__now_ms() + volt__broker_timeout(c) + c->opts.timeout_grace_ms};
    volt__reqs_each(&c->reqs, rearm_one, &a);
    volt__session_started(c);
    if (volt__alive(c) && c->state == VOLT__SESSION && c->on_broker)
        c->on_broker(c, 1, c->on_broker_data);
    if (volt__alive(c) && c->state == VOLT__SESSION)
        volt__connect_check(c);
}

static void on_event(volt_client *c, const struct proto_msg *m)
{
    set_state(c, m);
    struct strs s;
    strs_init(&s);
    const char *event = strs_put(&s, &m->event);
    uint64_t gen = c->conn_gen;
    if (strcmp(event, "connected") == 0) {
        c->ready = true;
        c->connected_seen = true;
        c->upstream_code = 0;
        c->upstream_message[0] = '\0';
        c->upstream_reason[0] = '\0';
        if (proto_msg_has(m, PROTO_F_TEAM_CLUSTER_ID))
            copy_span(c->team_cluster_id, sizeof c->team_cluster_id, &m->team_cluster_id);
        if (c->on_connected)
            c->on_connected(c, c->on_connected_data);
    } else if (strcmp(event, "disconnected") == 0) {
        c->ready = false;
        c->connected_seen = false;
        const char *reason = strs_field(&s, m, PROTO_F_REASON, &m->reason);
        snprintf(c->upstream_reason, sizeof c->upstream_reason, "%s", reason ? reason : "");
        if (c->on_disconnected)
            c->on_disconnected(c, reason ? reason : "", c->on_disconnected_data);
    } else if (strcmp(event, "error") == 0) {
        const char *name = strs_field(&s, m, PROTO_F_CODE, &m->code);
        const char *message = strs_field(&s, m, PROTO_F_MESSAGE, &m->message);
        int code = name ? proto_error_from_name(name, strlen(name)) : 0;
        set_upstream_error(c, m);
        if (code < 0)
            volt__emit_error(c, code, "%s", message ? message : volt_strerror(code));
        else
            volt__emit_error(c, VOLT_E_INTERNAL, "%s: %s", name ? name : "Unknown",
                             message ? message : "");
    }
    /* Unknown events come from a newer broker: ignored. */
    strs_free(&s);
    if (volt__alive(c) && gen == c->conn_gen && c->state == VOLT__SESSION)
        volt__connect_check(c);
}

static void on_message(volt_client *c, const struct proto_msg *m)
{
    struct strs s;
    strs_init(&s);
    volt_message msg;
    memset(&msg, 0, sizeof msg);
    msg.type = strs_put(&s, &m->type);
    struct proto_span data = {NULL, 0};
    if (proto_msg_has(m, PROTO_F_DATA) && m->data.len) {
        data = m->data;
        msg.data = data.ptr;
        msg.data_len = data.len;
    }
    char *json = NULL;
    size_t json_len = 0;
    bool json_failed = false;
    uint64_t gen = c->conn_gen;

    c->sub_walkers++;
    size_t n = c->n_subs; /* subscriptions added by a callback start with the next message */
    for (size_t i = 0; i < n; i++) {
        struct volt__sub *sub = c->subs[i];
        if (sub->dead || !sub_matches(sub, msg.type))
            continue;
        msg.json = NULL;
        msg.json_len = 0;
        if (sub->flags & VOLT_MESSAGE_JSON) {
            if (!json && !json_failed)
                json_failed = volt__json_out(&data, &json, &json_len) < 0;
            if (json_failed) {
                /* Only for values the broker should have refused (ext types). */
                volt__emit_error(c, VOLT_E_NOT_JSON, "message of type %s has no JSON form",
                                 msg.type);
                break;
            }
            msg.json = json;
            msg.json_len = json_len;
        }
        sub->cb(c, &msg, sub->privdata);
        if (!volt__alive(c) || gen != c->conn_gen)
            break;
    }
    if (--c->sub_walkers == 0)
        compact_subs(c);
    free(json);
    strs_free(&s);
}

void volt__dispatch(volt_client *c, const struct proto_span *frame)
{
    struct proto_msg m;
    const char *why = NULL;
    int rc = proto_msg_decode(frame, &m, &why);
    if (rc == PROTO_E_UNKNOWN_OP && why == proto_msg_why_no_op) {
        /* Not a frame of the protocol at all: bad input, which ends the
         * connection as in every client library. */
        volt__connection_lost(c, VOLT_E_BAD_FRAME, "bad frame from broker: no op");
        return;
    }
    if (rc == PROTO_E_UNKNOWN_OP)
        return; /* a newer broker's op */
    if (rc == 0)
        rc = proto_msg_check(&m, &why);
    if (rc < 0) {
        /* A known frame with a field missing or of the wrong type: the
         * broker never sends one, so its stream is not trusted any more.
         * BadFrame, and the connection ends (what was in flight fails, the
         * client reconnects), as in every client library. */
        char msg[200];
        snprintf(msg, sizeof msg, "bad frame from broker: invalid %s frame: %s",
                 proto_op_name(m.op) ? proto_op_name(m.op) : "?", why ? why : "");
        volt__connection_lost(c, VOLT_E_BAD_FRAME, msg);
        return;
    }
    if (c->state == VOLT__HELLO && m.op != PROTO_OP_WELCOME && m.op != PROTO_OP_ERROR) {
        volt__emit_error(c, VOLT_E_BAD_REQUEST, "broker sent %s before welcome",
                         proto_op_name(m.op));
        return;
    }
    switch (m.op) {
    case PROTO_OP_WELCOME:
        on_welcome(c, &m);
        break;
    case PROTO_OP_RESULT:
    case PROTO_OP_PONG:
        on_result(c, &m);
        break;
    case PROTO_OP_CALL:
        on_call(c, &m);
        break;
    case PROTO_OP_MESSAGE:
        on_message(c, &m);
        break;
    case PROTO_OP_EVENT:
        on_event(c, &m);
        break;
    case PROTO_OP_ERROR:
        on_error_frame(c, &m);
        break;
    default:
        break; /* trace (we never ask for it), or a client op: ignore */
    }
}
