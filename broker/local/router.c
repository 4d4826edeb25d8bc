#include "router.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashtab.h"
#include "local/emitq.h"
#include "local/peer.h"
#include "local/quota.h"
#include "proto/errors.h"
#include "proto/json.h"
#include "proto/msgpack.h"
#include "proto/text.h"
#include "util/histogram.h"
#include "util/idtable.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timerqueue.h"

#define COMMAND_NAME_MAX ROUTER_COMMAND_NAME_MAX
#define TYPE_FILTER_MAX  256
#define ERROR_CODE_MAX   64

static const char bad_command_name[] =
    "command names must be 1..256 bytes of UTF-8 without control characters";

enum match_kind { MATCH_ALL, MATCH_EXACT, MATCH_PREFIX };

struct subscription {
    enum match_kind match;
    uint32_t len;
    char *type;
};

struct group; /* the registrants of one command */

/* Routing state of one client that said hello. */
struct rclient {
    struct router *router;
    struct peer *peer;
    struct rclient *prev, *next;
    struct group **handlers; /* the groups this client is a member of */
    uint32_t n_handlers, cap_handlers;
    struct subscription *subs;
    uint32_t n_subs, cap_subs;
    uint32_t in_flight; /* outbound requests waiting for the session */
    uint32_t open_calls;
    size_t kept_bytes; /* of its emits kept for the upstream */
};

struct group {
    char *command;
    uint32_t len;
    uint32_t hash;
    uint64_t serial;    /* creation order: the newest are trimmed first */
    uint32_t json_size; /* of the name as a JSON string */
    struct rclient **members;
    uint32_t n, cap;
    uint32_t next_turn; /* round-robin cursor */
};

struct router {
    uv_loop_t *loop;
    struct router_params p;
    struct session *session;
    struct rclient *clients;
    uint32_t n_clients;
    struct hashtab groups; /* command -> group, under hash_name() */
    uint64_t next_group_serial;
    size_t names_json; /* sum of the groups' json_size */
    /* Outbound requests, keyed by (peer id, client's id): detects reused
     * ids and gives the session a stable context pointer. ctx = the
     * rclient; tag = the session's handle (the client's id is the key's
     * second half). */
    struct idtable *requests;
    struct quota *quota;
    /* Inbound calls, keyed by the call id we hand out. ctx = the
     * session_inbound, tag = the holding rclient's address (all of a
     * client's calls are answered before it is freed, so it never dangles). */
    struct idtable *calls;
    struct timer_queue *call_deadlines;
    uint64_t next_call_id;
    struct emitq *kept;               /* emits waiting for the upstream */
    uv_timer_t *kept_retry;           /* the send queue was full: try again soon */
    struct proto_buf scratch;         /* JSON form checks */
    struct histogram request_latency; /* request -> result */
    struct histogram handler_latency; /* call -> reply */
    struct router_counters counters;
};

/* ---- group map ---- */

static uint32_t hash_name(const uint8_t *s, uint32_t len)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

/* A command name as the groups' key. */
struct name_key {
    const uint8_t *ptr;
    uint32_t len;
};

static bool group_has_name(const void *item, const void *key)
{
    const struct group *g = item;
    const struct name_key *k = key;

    return g->len == k->len && !memcmp(g->command, k->ptr, k->len);
}

static struct group *groups_find(const struct hashtab *m, const uint8_t *name, uint32_t len,
                                 uint32_t hash)
{
    return hashtab_find(m, hash, &(struct name_key){.ptr = name, .len = len});
}

/* ---- helpers ---- */

static void key_for(uint8_t key[IDTABLE_ID_LEN], uint64_t a, uint64_t b)
{
    for (int i = 0; i < 8; i++) {
        key[i] = (uint8_t)(a >> (56 - 8 * i));
        key[8 + i] = (uint8_t)(b >> (56 - 8 * i));
    }
}

static bool valid_name(const struct proto_span *s, uint32_t max)
{
    return proto_name_valid(s->ptr, s->len, max);
}

static struct rclient *client_of(const struct peer *p)
{
    return peer_data(p);
}

static void respond_upstream(struct router *r, struct session_inbound *in, const char *code,
                             const char *message)
{
    struct proto_span msg = proto_span_str(message, (uint32_t)strlen(message));
    session_respond(r->session, in, false, NULL, code, &msg);
}

/* ---- calls (inbound requests held by a client) ---- */

/* Takes the call out of every index; returns its session_inbound. */
static struct session_inbound *call_take(struct router *r, struct idtable_entry *e)
{
    struct session_inbound *in = e->ctx;
    struct rclient *holder = (struct rclient *)(uintptr_t)e->tag;

    timer_queue_remove(r->call_deadlines, &e->timer);
    holder->open_calls--;
    idtable_remove(r->calls, e);
    return in;
}

static void on_call_deadline(struct timer_node *node, void *ud)
{
    struct router *r = ud;
    struct idtable_entry *e = container_of(node, struct idtable_entry, timer);
    struct session_inbound *in;

    struct rclient *holder = (struct rclient *)(uintptr_t)e->tag;
    log_warn("inbound request %.36s: no reply from client %llu (%s) in time",
             session_inbound_id(e->ctx), (unsigned long long)peer_id(holder->peer),
             peer_name(holder->peer));
    r->counters.inbound_timeout++;
    in = call_take(r, e);
    respond_upstream(r, in, "HandlerTimeout", "the handler did not reply in time");
}

void router_inbound_request(struct router *r, struct session_inbound *in,
                            const struct proto_span *command, const struct proto_span *payload)
{
    struct group *g =
        groups_find(&r->groups, command->ptr, command->len, hash_name(command->ptr, command->len));
    struct idtable_entry *e;
    struct rclient *c;
    uint8_t key[IDTABLE_ID_LEN];
    uint64_t call_id;
    struct proto_msg m = {.op = PROTO_OP_CALL};
    int rc;

    if (!g || g->n == 0) {
        r->counters.inbound_no_handler++;
        log_debug("inbound request %.36s: no handler for '%.*s'", session_inbound_id(in),
                  (int)command->len, command->ptr);
        respond_upstream(r, in, "NoHandler", "no handler is registered for this command");
        return;
    }
    m.fields = PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_TIMEOUT_MS;
    m.command = *command;
    m.timeout_ms = r->p.handler_timeout_ms;
    if (payload && payload->len) {
        m.fields |= PROTO_F_PAYLOAD;
        m.payload = *payload;
    }
    /* Each member at most once: one that is being evicted (closed at the
     * next prepare, still a member until then) refuses the call with
     * BrokerGone, and the next one in turn gets it instead. */
    for (uint32_t tries = g->n;; tries--) {
        if (tries == 0) {
            r->counters.inbound_handler_error++;
            respond_upstream(r, in, "HandlerError", "no client of this command is reachable");
            return;
        }
        c = g->members[g->next_turn++ % g->n];
        call_id = ++r->next_call_id;
        key_for(key, 0, call_id);
        rc = idtable_insert(r->calls, key, &e);
        if (rc < 0) {
            r->counters.inbound_handler_error++;
            respond_upstream(r, in, "HandlerError", "too many inbound requests in progress");
            return;
        }
        e->ctx = in;
        e->tag = (uint64_t)(uintptr_t)c;
        e->stamp = uv_now(r->loop);
        c->open_calls++;
        timer_queue_add(r->call_deadlines, &e->timer,
                        timer_queue_deadline_in(r->call_deadlines, r->p.handler_timeout_ms));
        m.id = call_id;
        /* If the send closes the client (slow consumer), router_peer_leave
         * has already answered this call with HandlerError: do not touch e. */
        rc = peer_send(c->peer, &m);
        if (rc != PROTO_E_BROKER_GONE)
            break;
        in = call_take(r, e); /* no close happened: e is still ours */
    }
    if (rc == PROTO_E_FRAME_TOO_LARGE) {
        r->counters.inbound_handler_error++;
        in = call_take(r, e);
        respond_upstream(r, in, "HandlerError",
                         "the request is larger than the client's frame limit");
    }
}

static void handle_reply(struct router *r, struct rclient *c, const struct proto_msg *m)
{
    uint8_t key[IDTABLE_ID_LEN];
    struct idtable_entry *e;
    struct session_inbound *in;

    key_for(key, 0, m->id);
    e = idtable_find(r->calls, key);
    if (!e || e->tag != (uint64_t)(uintptr_t)c) {
        /* Expired, already answered, or not this client's: the server has
         * its answer already (exactly once), so this one is dropped. */
        r->counters.late_replies++;
        log_debug("client %llu: reply to unknown or expired call %llu dropped",
                  (unsigned long long)peer_id(c->peer), (unsigned long long)m->id);
        return;
    }
    histogram_observe(&r->handler_latency, uv_now(r->loop) - e->stamp);
    in = call_take(r, e);
    r->counters.inbound_answered++;
    if (m->ok) {
        session_respond(r->session, in, true, proto_msg_has(m, PROTO_F_DATA) ? &m->data : NULL,
                        NULL, NULL);
        return;
    }
    /* The server gets its one answer whatever the code looks like; a code
     * that cannot travel is replaced by HandlerError and the client told. */
    char code[ERROR_CODE_MAX + 1] = "HandlerError";
    if (proto_msg_has(m, PROTO_F_CODE)) {
        if (valid_name(&m->code, ERROR_CODE_MAX)) {
            memcpy(code, m->code.ptr, m->code.len);
            code[m->code.len] = '\0';
        } else {
            peer_send_frame_error(c->peer, m, PROTO_E_BAD_REQUEST,
                                  "code must be 1..64 bytes of UTF-8 without control "
                                  "characters; the server was answered HandlerError");
        }
    }
    struct proto_span empty = {(const uint8_t *)"", 0};
    session_respond(r->session, in, false, NULL, code,
                    proto_msg_has(m, PROTO_F_MESSAGE) ? &m->message : &empty);
}

/* ---- outbound requests ---- */

static uint64_t key_second(const uint8_t key[IDTABLE_ID_LEN])
{
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | key[i];
    return v;
}

/* Takes a finished or released request out of the router's books. */
static void request_forget(struct router *r, struct rclient *c, struct idtable_entry *e)
{
    c->in_flight--;
    if (r->quota)
        quota_request_end(r->quota, peer_quota(c->peer));
    idtable_remove(r->requests, e);
}

static void on_request_result(void *ctx, const struct session_result *res)
{
    struct idtable_entry *e = ctx;
    struct rclient *c = e->ctx;
    struct router *r = c->router;
    uint64_t id = key_second(e->id);
    char msg[256];

    histogram_observe(&r->request_latency, uv_now(r->loop) - e->stamp);
    request_forget(r, c, e);
    /* A success carries no message: skip the copy on the hot path. */
    if (res->code != 0)
        snprintf(msg, sizeof(msg), "%.*s", (int)res->message.len,
                 res->message.ptr ? (const char *)res->message.ptr : "");
    peer_send_result(c->peer, id, res->code, res->code != 0 ? msg : NULL, &res->data,
                     &res->server_code);
}

static void handle_request(struct router *r, struct rclient *c, const struct proto_msg *m)
{
    uint8_t key[IDTABLE_ID_LEN];
    struct idtable_entry *e;
    struct session_pending *handle = NULL;
    const char *why = "the upstream session is not ready";
    int rc;

    if (!valid_name(&m->command, COMMAND_NAME_MAX)) {
        peer_send_result(c->peer, m->id, PROTO_E_BAD_REQUEST, bad_command_name, NULL, NULL);
        return;
    }
    if (!r->session) {
        peer_send_result(c->peer, m->id, PROTO_E_SOCKET_NOT_READY, "no upstream is configured",
                         NULL, NULL);
        return;
    }
    if (c->in_flight >= r->p.max_in_flight_per_client) {
        peer_send_result(c->peer, m->id, PROTO_E_LIMIT_EXCEEDED,
                         "too many requests in flight for this client (maxInFlightPerClient)", NULL,
                         NULL);
        return;
    }
    key_for(key, peer_id(c->peer), m->id);
    if (idtable_find(r->requests, key)) {
        peer_send_result(c->peer, m->id, PROTO_E_DUPLICATE_ID, "this id is already in flight", NULL,
                         NULL);
        return;
    }
    if (r->quota && quota_request_begin(r->quota, peer_quota(c->peer), &why) < 0) {
        peer_send_result(c->peer, m->id, PROTO_E_LIMIT_EXCEEDED, why, NULL, NULL);
        return;
    }
    rc = idtable_insert(r->requests, key, &e);
    if (rc < 0) {
        if (r->quota)
            quota_request_end(r->quota, peer_quota(c->peer));
        peer_send_result(c->peer, m->id, PROTO_E_LIMIT_EXCEEDED,
                         "too many requests in flight (maxPending)", NULL, NULL);
        return;
    }
    e->ctx = c;
    e->stamp = uv_now(r->loop);
    c->in_flight++;
    /* 0 or absent: the broker's commandTimeout; above the ceiling: lowered
     * to it, so no request holds a slot of the table for longer. */
    uint64_t timeout = proto_msg_has(m, PROTO_F_TIMEOUT_MS) ? m->timeout_ms : 0;
    if (timeout == 0)
        timeout = r->p.command_timeout_ms;
    if (timeout > r->p.max_command_timeout_ms)
        timeout = r->p.max_command_timeout_ms;
    rc = session_request(r->session, &m->command,
                         proto_msg_has(m, PROTO_F_PAYLOAD) ? &m->payload : NULL, timeout,
                         on_request_result, e, &handle, &why);
    if (rc < 0) {
        request_forget(r, c, e);
        peer_send_result(c->peer, m->id, rc, why, NULL, NULL);
        return;
    }
    e->tag = (uint64_t)(uintptr_t)handle;
}

static void emit_answer(struct rclient *c, const struct proto_msg *m, int rc, const char *why)
{
    if (proto_msg_has(m, PROTO_F_ID)) {
        peer_send_result(c->peer, m->id, rc, why, NULL, NULL);
        return;
    }
    if (rc < 0)
        peer_send_frame_error(c->peer, m, rc, why);
}

static void uncharge_kept(struct rclient *c, size_t size)
{
    if (!c)
        return;
    c->kept_bytes -= size;
    peer_set_held(c->peer, c->kept_bytes);
}

static void on_kept_retry(uv_timer_t *t);

/* Sends kept emits, oldest first, while the session takes them. */
static void flush_kept(struct router *r)
{
    void *owner;
    struct proto_span type, data;
    const char *why = NULL;

    while (r->session && session_is_ready(r->session) &&
           emitq_peek(r->kept, &owner, &type, &data)) {
        int rc = session_emit(r->session, &type, &data, &why);
        if (rc == PROTO_E_EMIT_FAILED) {
            /* Ready but its send queue is full: later, in order. */
            uv_timer_start(r->kept_retry, on_kept_retry, 50, 0);
            return;
        }
        if (rc < 0) {
            r->counters.emits_kept_dropped++;
            log_warn("kept emit of type '%.*s' dropped: %s", (int)type.len, type.ptr, why);
        } else {
            r->counters.emits_kept_sent++;
        }
        uncharge_kept(owner, emitq_record_size(&type, &data));
        emitq_pop(r->kept);
    }
}

static void on_kept_retry(uv_timer_t *t)
{
    flush_kept(t->data);
}

/* A value the server will take: it has a JSON form (checked now, when the
 * client can still be told, not when a kept emit is finally sent). */
static int check_json_form(struct router *r, const struct proto_span *v, const char **why)
{
    struct proto_span att[64];
    struct proto_json_opts o = {
        .bin = PROTO_JSON_BIN_PLACEHOLDER, .attachments = att, .max_attachments = 64};
    struct proto_json_error err;

    proto_buf_reset(&r->scratch);
    int rc = proto_msgpack_to_json(v->ptr, v->len, &r->scratch, &o, &err);
    if (rc < 0) {
        *why = err.text[0] ? err.text : "the value has no JSON form";
        return rc == PROTO_E_NOMEM || rc == PROTO_E_LIMIT_EXCEEDED ? rc : PROTO_E_NOT_JSON;
    }
    return 0;
}

static void handle_emit(struct router *r, struct rclient *c, const struct proto_msg *m)
{
    const char *why = "the upstream session is not ready";
    struct proto_span nil = {(const uint8_t *)"\xc0", 1};
    const struct proto_span *data = proto_msg_has(m, PROTO_F_DATA) ? &m->data : &nil;
    bool is_volatile = proto_msg_has(m, PROTO_F_VOLATILE) && m->is_volatile;
    int rc;

    if (!valid_name(&m->type, TYPE_FILTER_MAX)) {
        emit_answer(c, m, PROTO_E_BAD_REQUEST,
                    "type must be 1..256 bytes of UTF-8 without control characters");
        return;
    }
    if (!r->session) {
        emit_answer(c, m, PROTO_E_EMIT_FAILED, "no upstream is configured");
        return;
    }
    if (session_is_ready(r->session) && emitq_count(r->kept) == 0) {
        rc = session_emit(r->session, &m->type, data, &why);
        emit_answer(c, m, rc, why);
        return;
    }
    if (is_volatile || r->p.max_emit_buffer == 0) {
        emit_answer(c, m, PROTO_E_EMIT_FAILED,
                    session_is_ready(r->session)
                        ? "earlier emits are still waiting to be sent (volatile emit)"
                        : "the upstream session is not ready");
        return;
    }
    rc = check_json_form(r, data, &why);
    if (rc < 0) {
        emit_answer(c, m, rc, why);
        return;
    }
    rc = emitq_push(r->kept, c, &m->type, data);
    if (rc < 0) {
        emit_answer(c, m, PROTO_E_EMIT_FAILED,
                    rc == -ENOSPC ? "the upstream session is not ready and the emit buffer "
                                    "(maxEmitBuffer) is full"
                                  : "out of memory");
        return;
    }
    r->counters.emits_kept++;
    c->kept_bytes += emitq_record_size(&m->type, data);
    emit_answer(c, m, 0, NULL);
    /* Answered first: the charge may cut this very client (memory). */
    peer_set_held(c->peer, c->kept_bytes);
    flush_kept(r);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void router_upstream_ready(struct router *r)
{
    flush_kept(r);
}

size_t router_kept_emit_bytes(const struct router *r)
{
    return emitq_bytes(r->kept);
}

/* ---- handlers ---- */

static bool client_has_group(const struct rclient *c, const struct group *g)
{
    for (uint32_t i = 0; i < c->n_handlers; i++) {
        if (c->handlers[i] == g)
            return true;
    }
    return false;
}

static int grow(void **arr, uint32_t *cap, size_t elem)
{
    uint32_t ncap = *cap ? *cap * 2 : 8;
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return -ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

/* Adds c to the group of `name`; *created tells whether the union grew. */
static int group_join(struct router *r, struct rclient *c, const struct proto_span *name,
                      bool *created)
{
    uint32_t hash = hash_name(name->ptr, name->len);
    struct group *g = groups_find(&r->groups, name->ptr, name->len, hash);

    if (!g) {
        if (hashtab_reserve(&r->groups, hashtab_count(&r->groups) + 1) < 0)
            return -ENOMEM;
        g = calloc(1, sizeof(*g));
        if (!g || !(g->command = malloc(name->len + 1))) {
            free(g);
            return -ENOMEM;
        }
        memcpy(g->command, name->ptr, name->len);
        g->command[name->len] = '\0';
        g->len = name->len;
        g->hash = hash;
        g->serial = ++r->next_group_serial;
        g->json_size = (uint32_t)proto_json_str_size(name->ptr, name->len);
        r->names_json += g->json_size;
        (void)hashtab_insert(&r->groups, hash, g); /* reserved: cannot fail */
        *created = true;
    }
    if (client_has_group(c, g))
        return 0;
    if ((g->n == g->cap && grow((void **)&g->members, &g->cap, sizeof(*g->members)) < 0) ||
        (c->n_handlers == c->cap_handlers &&
         grow((void **)&c->handlers, &c->cap_handlers, sizeof(*c->handlers)) < 0))
        return -ENOMEM;
    g->members[g->n++] = c;
    c->handlers[c->n_handlers++] = g;
    return 0;
}

/* Removes c from g; frees g when empty. True when the union shrank. */
static bool group_leave(struct router *r, struct rclient *c, struct group *g)
{
    for (uint32_t i = 0; i < g->n; i++) {
        if (g->members[i] == c) {
            /* Keep order so round-robin stays fair among the rest. */
            memmove(&g->members[i], &g->members[i + 1], (g->n - i - 1) * sizeof(*g->members));
            g->n--;
            break;
        }
    }
    for (uint32_t i = 0; i < c->n_handlers; i++) {
        if (c->handlers[i] == g) {
            c->handlers[i] = c->handlers[--c->n_handlers];
            break;
        }
    }
    if (g->n)
        return false;
    hashtab_remove(&r->groups, g->hash, g);
    r->names_json -= g->json_size;
    free(g->members);
    free(g->command);
    free(g);
    return true;
}

/* JSON bytes of the handler list: "[" names joined by "," "]". */
static size_t list_json(size_t names_json, size_t count)
{
    return 2 + names_json + (count ? count - 1 : 0);
}

/* Would the list, with m's new names, still fit in daemon:register? Names
 * given twice in m are counted twice: a conservative answer is fine. */
static bool handler_list_fits(const struct router *r, const struct proto_msg *m)
{
    struct proto_str_iter it;
    struct proto_span name;
    size_t json = r->names_json, count = hashtab_count(&r->groups);

    if (!r->session)
        return true;
    proto_msg_commands(m, &it);
    while (proto_str_iter_next(&it, &name)) {
        if (groups_find(&r->groups, name.ptr, name.len, hash_name(name.ptr, name.len)))
            continue;
        json += proto_json_str_size(name.ptr, name.len);
        count++;
    }
    return list_json(json, count) <= session_handler_room(r->session);
}

static void handle_register(struct router *r, struct rclient *c, const struct proto_msg *m,
                            bool add)
{
    struct proto_str_iter it;
    struct proto_span name;
    bool changed = false;

    /* Validate everything first so a bad list changes nothing. */
    proto_msg_commands(m, &it);
    uint32_t n_new = 0;
    while (proto_str_iter_next(&it, &name)) {
        if (!valid_name(&name, COMMAND_NAME_MAX)) {
            peer_send_result(c->peer, m->id, PROTO_E_BAD_REQUEST, bad_command_name, NULL, NULL);
            return;
        }
        n_new++;
    }
    if (add && c->n_handlers + n_new > r->p.max_handlers_per_client) {
        peer_send_result(c->peer, m->id, PROTO_E_LIMIT_EXCEEDED,
                         "too many handlers for this client (maxHandlersPerClient)", NULL, NULL);
        return;
    }
    if (add && !handler_list_fits(r, m)) {
        char why[160];
        snprintf(why, sizeof(why),
                 "the handler list of all clients would exceed what the server's maxPayload "
                 "allows (%zu bytes of JSON)",
                 session_handler_room(r->session));
        peer_send_result(c->peer, m->id, PROTO_E_LIMIT_EXCEEDED, why, NULL, NULL);
        return;
    }
    proto_msg_commands(m, &it);
    while (proto_str_iter_next(&it, &name)) {
        if (add) {
            if (group_join(r, c, &name, &changed) < 0) {
                peer_send_result(c->peer, m->id, PROTO_E_NOMEM, "out of memory", NULL, NULL);
                break;
            }
            continue;
        }
        struct group *g =
            groups_find(&r->groups, name.ptr, name.len, hash_name(name.ptr, name.len));
        if (g && client_has_group(c, g))
            changed |= group_leave(r, c, g);
    }
    if (add && r->session)
        session_local_activity(r->session);
    log_info("client %llu (%s) %s %u command%s", (unsigned long long)peer_id(c->peer),
             peer_name(c->peer), add ? "registered" : "unregistered", n_new, n_new == 1 ? "" : "s");
    peer_send_result(c->peer, m->id, 0, NULL, NULL, NULL);
    if (changed && r->session)
        session_handlers_changed(r->session);
}

/* ---- subscriptions ---- */

static int parse_match(const struct proto_span *s, enum match_kind *out)
{
    if (s->len == 3 && !memcmp(s->ptr, "all", 3))
        *out = MATCH_ALL;
    else if (s->len == 5 && !memcmp(s->ptr, "exact", 5))
        *out = MATCH_EXACT;
    else if (s->len == 6 && !memcmp(s->ptr, "prefix", 6))
        *out = MATCH_PREFIX;
    else
        return -1;
    return 0;
}

static int find_sub(const struct rclient *c, enum match_kind k, const struct proto_span *type)
{
    for (uint32_t i = 0; i < c->n_subs; i++) {
        const struct subscription *s = &c->subs[i];
        if (s->match == k &&
            (k == MATCH_ALL || (s->len == type->len && !memcmp(s->type, type->ptr, type->len))))
            return (int)i;
    }
    return -1;
}

static void handle_subscribe(struct router *r, struct rclient *c, const struct proto_msg *m,
                             bool add)
{
    enum match_kind k;
    struct proto_span type = {(const uint8_t *)"", 0};
    int at;

    if (parse_match(&m->match, &k) < 0) {
        peer_send_result(c->peer, m->id, PROTO_E_BAD_REQUEST,
                         "match must be \"all\", \"exact\" or \"prefix\"", NULL, NULL);
        return;
    }
    if (k != MATCH_ALL) {
        if (!proto_msg_has(m, PROTO_F_TYPE) || !valid_name(&m->type, TYPE_FILTER_MAX)) {
            peer_send_result(c->peer, m->id, PROTO_E_BAD_REQUEST,
                             "type must be 1..256 bytes of UTF-8 without control characters", NULL,
                             NULL);
            return;
        }
        type = m->type;
    }
    at = find_sub(c, k, &type);
    if (!add) {
        if (at >= 0) {
            free(c->subs[at].type);
            c->subs[at] = c->subs[--c->n_subs];
        }
        peer_send_result(c->peer, m->id, 0, NULL, NULL, NULL);
        return;
    }
    if (at < 0) {
        if (c->n_subs >= r->p.max_subscriptions_per_client) {
            peer_send_result(c->peer, m->id, PROTO_E_LIMIT_EXCEEDED,
                             "too many subscriptions for this client", NULL, NULL);
            return;
        }
        if (c->n_subs == c->cap_subs && grow((void **)&c->subs, &c->cap_subs, sizeof(*c->subs)) < 0)
            goto nomem;
        struct subscription *s = &c->subs[c->n_subs];
        s->match = k;
        s->len = type.len;
        s->type = malloc(type.len + 1);
        if (!s->type)
            goto nomem;
        memcpy(s->type, type.ptr, type.len);
        s->type[type.len] = '\0';
        c->n_subs++;
    }
    peer_send_result(c->peer, m->id, 0, NULL, NULL, NULL);
    return;
nomem:
    peer_send_result(c->peer, m->id, PROTO_E_NOMEM, "out of memory", NULL, NULL);
}

static bool client_wants(const struct rclient *c, const struct proto_span *type)
{
    for (uint32_t i = 0; i < c->n_subs; i++) {
        const struct subscription *s = &c->subs[i];
        switch (s->match) {
        case MATCH_ALL:
            return true;
        case MATCH_EXACT:
            if (s->len == type->len && !memcmp(s->type, type->ptr, s->len))
                return true;
            break;
        case MATCH_PREFIX:
            if (s->len <= type->len && !memcmp(s->type, type->ptr, s->len))
                return true;
            break;
        }
    }
    return false;
}

void router_inbound_message(struct router *r, const struct proto_span *type,
                            const struct proto_span *data)
{
    struct proto_msg m = {.op = PROTO_OP_MESSAGE};
    struct rclient *c, *next;

    m.fields = PROTO_F_TYPE | PROTO_F_DATA;
    m.type = *type;
    m.data = *data;
    /* `next` is taken first: a send may close (and unlink) the client. */
    for (c = r->clients; c; c = next) {
        next = c->next;
        if (client_wants(c, type))
            peer_send(c->peer, &m);
    }
}

void router_broadcast(struct router *r, const struct proto_msg *m)
{
    struct rclient *c, *next;
    for (c = r->clients; c; c = next) {
        next = c->next;
        peer_send(c->peer, m);
    }
}

/* ---- clients ---- */

int router_peer_join(struct router *r, struct peer *p)
{
    struct rclient *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->router = r;
    c->peer = p;
    c->next = r->clients;
    if (r->clients)
        r->clients->prev = c;
    r->clients = c;
    r->n_clients++;
    peer_set_data(p, c);
    return 0;
}

void router_peer_leave(struct router *r, struct peer *p)
{
    struct rclient *c = client_of(p);
    bool changed = false;
    if (!c)
        return;
    if (peer_is_slow_consumer(p))
        r->counters.slow_consumers++;
    /* Calls it held: answered at once, never left to time out. */
    if (c->open_calls) {
        for (struct idtable_entry *e = idtable_first(r->calls); e; e = idtable_next(r->calls, e)) {
            if (e->tag != (uint64_t)(uintptr_t)c)
                continue;
            r->counters.inbound_handler_error++;
            struct session_inbound *in = call_take(r, e);
            respond_upstream(r, in, "HandlerError", "the handler's process went away");
        }
    }
    /* Its requests are released at once: nobody is left to read their
     * answers, and they would hold slots until their timeouts. The server
     * may still answer; the session drops and counts what it no longer
     * knows (late responses). */
    if (c->in_flight) {
        for (struct idtable_entry *e = idtable_first(r->requests); e;
             e = idtable_next(r->requests, e)) {
            if (e->ctx != c)
                continue;
            session_cancel(r->session, (struct session_pending *)(uintptr_t)e->tag);
            r->counters.requests_released++;
            request_forget(r, c, e);
        }
    }
    /* Its kept emits are still sent (a notification outlives its sender),
     * charged to nobody from now on. */
    if (c->kept_bytes)
        emitq_forget_owner(r->kept, c);
    while (c->n_handlers)
        changed |= group_leave(r, c, c->handlers[c->n_handlers - 1]);
    for (uint32_t i = 0; i < c->n_subs; i++)
        free(c->subs[i].type);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->n_clients--;
    free(c->subs);
    free(c->handlers);
    free(c);
    peer_set_data(p, NULL);
    if (changed && r->session)
        session_handlers_changed(r->session);
}

bool router_handle(struct router *r, struct peer *p, const struct proto_msg *m)
{
    struct rclient *c = client_of(p);

    if (!c)
        return false;
    switch (m->op) {
    case PROTO_OP_REQUEST:
        handle_request(r, c, m);
        return true;
    case PROTO_OP_EMIT:
        handle_emit(r, c, m);
        return true;
    case PROTO_OP_REGISTER:
        handle_register(r, c, m, true);
        return true;
    case PROTO_OP_UNREGISTER:
        handle_register(r, c, m, false);
        return true;
    case PROTO_OP_SUBSCRIBE:
        handle_subscribe(r, c, m, true);
        return true;
    case PROTO_OP_UNSUBSCRIBE:
        handle_subscribe(r, c, m, false);
        return true;
    case PROTO_OP_REPLY:
        handle_reply(r, c, m);
        return true;
    default:
        return false;
    }
}

int router_handler_list(struct router *r, struct proto_buf *out)
{
    int rc = proto_mp_put_array(out, hashtab_count(&r->groups));
    size_t pos = 0;
    const struct group *g;
    while (rc == 0 && (g = hashtab_next(&r->groups, &pos)))
        rc = proto_mp_put_str(out, g->command, g->len);
    return rc;
}

/* The newest group of all (the one trimmed first). */
static struct group *newest_group(const struct router *r)
{
    struct group *best = NULL, *g;
    size_t pos = 0;
    while ((g = hashtab_next(&r->groups, &pos))) {
        if (!best || g->serial > best->serial)
            best = g;
    }
    return best;
}

void router_trim_handlers(struct router *r, size_t room)
{
    struct group *g;

    while (list_json(r->names_json, hashtab_count(&r->groups)) > room && (g = newest_group(r))) {
        /* Each registrant is told and named in the log: the list never
         * silently stops matching what the clients think they serve. */
        while (g->n) {
            struct rclient *c = g->members[g->n - 1];
            char why[360];
            snprintf(why, sizeof(why),
                     "handler '%.256s' dropped: the handler list no longer fits in the server's "
                     "maxPayload",
                     g->command);
            log_warn("client %llu (%s): %s", (unsigned long long)peer_id(c->peer),
                     peer_name(c->peer), why);
            /* Out of the group before it is told: the send may close it. */
            bool freed = group_leave(r, c, g);
            peer_send_error(c->peer, PROTO_E_LIMIT_EXCEEDED, why, NULL);
            if (freed)
                break; /* g went with its last member */
        }
    }
}

size_t router_handler_count(const struct router *r)
{
    return hashtab_count(&r->groups);
}

bool router_has_handler(const struct router *r, const uint8_t *name, size_t len)
{
    if (len > UINT32_MAX)
        return false;
    const struct group *g =
        groups_find(&r->groups, name, (uint32_t)len, hash_name(name, (uint32_t)len));
    return g && g->n > 0;
}

size_t router_client_count(const struct router *r)
{
    return r->n_clients;
}

size_t router_open_calls(const struct router *r)
{
    return idtable_count(r->calls);
}

void router_fail_open_calls(struct router *r, const char *code, const char *message)
{
    for (struct idtable_entry *e = idtable_first(r->calls); e; e = idtable_next(r->calls, e)) {
        r->counters.inbound_handler_error++;
        struct session_inbound *in = call_take(r, e);
        respond_upstream(r, in, code, message);
    }
}

static const char *match_name(enum match_kind k)
{
    return k == MATCH_ALL ? "all" : k == MATCH_EXACT ? "exact" : "prefix";
}

int router_status_clients(const struct router *r, struct proto_buf *o)
{
    int err = proto_mp_put_array(o, r->n_clients);
    char sub[TYPE_FILTER_MAX + 16];

    for (const struct rclient *c = r->clients; c && !err; c = c->next) {
        err |= proto_mp_put_map(o, 9);
        err |= proto_mp_put_cstr(o, "id");
        err |= proto_mp_put_uint(o, peer_id(c->peer));
        err |= proto_mp_put_cstr(o, "pid");
        err |= proto_mp_put_uint(o, (uint64_t)peer_pid(c->peer));
        err |= proto_mp_put_cstr(o, "uid");
        err |= proto_mp_put_uint(o, (uint64_t)peer_uid(c->peer));
        err |= proto_mp_put_cstr(o, "name");
        err |= proto_mp_put_cstr(o, peer_name(c->peer));
        err |= proto_mp_put_cstr(o, "handlers");
        err |= proto_mp_put_array(o, c->n_handlers);
        for (uint32_t i = 0; i < c->n_handlers; i++)
            err |= proto_mp_put_str(o, c->handlers[i]->command, c->handlers[i]->len);
        err |= proto_mp_put_cstr(o, "subscriptions");
        err |= proto_mp_put_array(o, c->n_subs);
        for (uint32_t i = 0; i < c->n_subs; i++) {
            int n = snprintf(sub, sizeof(sub), "%s%s%s", match_name(c->subs[i].match),
                             c->subs[i].match == MATCH_ALL ? "" : ":", c->subs[i].type);
            err |= proto_mp_put_str(o, sub, (size_t)n < sizeof(sub) ? (size_t)n : sizeof(sub) - 1);
        }
        err |= proto_mp_put_cstr(o, "queue_bytes");
        err |= proto_mp_put_uint(o, peer_queue_bytes(c->peer));
        err |= proto_mp_put_cstr(o, "in_flight");
        err |= proto_mp_put_uint(o, c->in_flight);
        err |= proto_mp_put_cstr(o, "memory_bytes");
        err |= proto_mp_put_uint(o, peer_memory(c->peer));
    }
    return err ? PROTO_E_NOMEM : 0;
}

/* Clients aggregated by the name they gave in hello. */
struct by_name {
    const char *name;
    uint32_t clients, in_flight, handlers, open_calls;
    uint64_t memory;
};

int router_metrics(const struct router *r, struct proto_buf *o)
{
    struct by_name *names = calloc(r->n_clients ? r->n_clients : 1, sizeof(*names));
    size_t n = 0;
    int err = 0;

    if (!names)
        return PROTO_E_NOMEM;
    for (const struct rclient *c = r->clients; c; c = c->next) {
        const char *name = peer_name(c->peer);
        size_t i = 0;
        while (i < n && strcmp(names[i].name, name) != 0)
            i++;
        if (i == n)
            names[n++].name = name;
        names[i].clients++;
        names[i].in_flight += c->in_flight;
        names[i].handlers += c->n_handlers;
        names[i].open_calls += c->open_calls;
        names[i].memory += peer_memory(c->peer);
    }
    static const struct {
        const char *metric, *help;
        size_t offset;
        bool wide;
    } columns[] = {
        {"volt_broker_client_connections", "connected clients, by name",
         offsetof(struct by_name, clients), false},
        {"volt_broker_client_in_flight", "requests waiting for the server, by client name",
         offsetof(struct by_name, in_flight), false},
        {"volt_broker_client_handlers", "commands registered, by client name",
         offsetof(struct by_name, handlers), false},
        {"volt_broker_client_open_calls", "inbound calls not answered yet, by client name",
         offsetof(struct by_name, open_calls), false},
        {"volt_broker_client_memory_bytes", "bytes held for the clients, by name",
         offsetof(struct by_name, memory), true},
    };
    for (size_t k = 0; k < sizeof(columns) / sizeof(columns[0]); k++) {
        err |= metrics_family(o, columns[k].metric, METRICS_GAUGE, columns[k].help);
        for (size_t i = 0; i < n; i++) {
            const char *at = (const char *)&names[i] + columns[k].offset;
            double v = columns[k].wide ? (double)*(const uint64_t *)(const void *)at
                                       : (double)*(const uint32_t *)(const void *)at;
            err |= metrics_sample(o, columns[k].metric, "name", names[i].name, v);
        }
    }
    err |= metrics_histogram(o, "volt_broker_request_duration_seconds",
                             "local requests, from the request to its result", &r->request_latency);
    err |= metrics_histogram(o, "volt_broker_handler_duration_seconds",
                             "the server's requests, from the call to a local handler to its reply",
                             &r->handler_latency);
    free(names);
    return err ? PROTO_E_NOMEM : 0;
}

void router_get_counters(const struct router *r, struct router_counters *out)
{
    *out = r->counters;
}

struct router *router_new(uv_loop_t *loop, const struct router_params *params, struct quota *quota)
{
    struct router *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    hashtab_init(&r->groups, group_has_name);
    r->loop = loop;
    r->p = *params;
    r->quota = quota;
    r->kept_retry = malloc(sizeof(*r->kept_retry));
    if (!r->kept_retry) {
        free(r);
        return NULL;
    }
    uv_timer_init(loop, r->kept_retry);
    r->kept_retry->data = r;
    if (emitq_new(&r->kept, params->max_emit_buffer) < 0 ||
        idtable_new(&r->requests, params->max_pending) < 0 ||
        idtable_new(&r->calls, params->max_pending) < 0 ||
        timer_queue_new(&r->call_deadlines, loop, on_call_deadline, r) < 0) {
        router_free(r);
        return NULL;
    }
    return r;
}

void router_set_params(struct router *r, const struct router_params *params)
{
    uint32_t max_pending = r->p.max_pending, max_emit_buffer = r->p.max_emit_buffer;
    r->p = *params;
    r->p.max_pending = max_pending;
    r->p.max_emit_buffer = max_emit_buffer;
}

void router_set_session(struct router *r, struct session *s)
{
    r->session = s;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    if (r->calls && r->session)
        router_fail_open_calls(r, "HandlerError", "the broker is stopping");
    while (r->clients)
        router_peer_leave(r, r->clients->peer);
    size_t pos = 0;
    struct group *g;
    while ((g = hashtab_next(&r->groups, &pos))) {
        free(g->members);
        free(g->command);
        free(g);
    }
    hashtab_destroy(&r->groups);
    if (r->call_deadlines)
        timer_queue_close(r->call_deadlines);
    if (r->kept && emitq_count(r->kept))
        log_warn("stopping with %zu emits kept for the upstream: dropped", emitq_count(r->kept));
    emitq_free(r->kept);
    uv_close((uv_handle_t *)r->kept_retry, free_handle);
    proto_buf_free(&r->scratch);
    idtable_free(r->calls);
    idtable_free(r->requests);
    free(r);
}
