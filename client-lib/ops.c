/* Operations a program starts: commands, emits, handler registrations,
 * subscriptions, broker queries; and the JSON conveniences.
 *
 * Handlers and subscriptions are client state, announced to the broker on
 * every session (volt__session_started): a change made while there is no
 * session is only recorded, and one made during a session is sent at once.
 * Several local subscriptions with the same filter share one broker
 * subscription, so the broker sees each filter once and the client fans a
 * message out to its callbacks itself.
 */
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/msgpack.h"

static bool valid_str(const char *s)
{
    return s && *s && strlen(s) < UINT32_MAX;
}

static struct proto_span span_of(const char *s)
{
    return proto_span_str(s, (uint32_t)strlen(s));
}

int volt__check_msgpack(volt_client *c, const void *data, size_t len)
{
    if (len > PROTO_HARD_MAX_FRAME) {
        volt__set_error(c, "value of %zu bytes is larger than any frame", len);
        return VOLT_E_FRAME_TOO_LARGE;
    }
    struct proto_limits limits;
    proto_limits_default(&limits);
    size_t used = 0;
    const char *why = NULL;
    if (proto_mp_validate(data, len, &limits, &used, &why) < 0) {
        volt__set_error(c, "payload is not valid msgpack: %s", why ? why : "?");
        return VOLT_E_BAD_REQUEST;
    }
    if (used != len) {
        volt__set_error(c, "payload has %zu bytes after its msgpack value", len - used);
        return VOLT_E_BAD_REQUEST;
    }
    return 0;
}

int volt__json_in(volt_client *c, const char *json, struct proto_span *out)
{
    struct proto_json_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.bin = PROTO_JSON_BIN_MARKER;
    struct proto_json_error err;
    memset(&err, 0, sizeof err);
    proto_buf_reset(&c->jbuf);
    int rc = proto_json_to_msgpack(&c->jdoc, json, strlen(json), &c->jbuf, &opts, &err);
    if (rc < 0) {
        volt__set_error(c, "invalid JSON: %s", err.text[0] ? err.text : volt_strerror(rc));
        return rc == PROTO_E_BAD_FRAME ? VOLT_E_BAD_REQUEST : rc;
    }
    *out = (struct proto_span){c->jbuf.data, (uint32_t)c->jbuf.len};
    return 0;
}

/* Payload argument -> span (ptr NULL: none). */
static int payload_span(volt_client *c, const void *data, size_t len, struct proto_span *out)
{
    *out = (struct proto_span){NULL, 0};
    if (!data || !len)
        return 0;
    int rc = volt__check_msgpack(c, data, len);
    if (rc == 0)
        *out = (struct proto_span){data, (uint32_t)len};
    return rc;
}

static int json_span(volt_client *c, const char *json, struct proto_span *out)
{
    *out = (struct proto_span){NULL, 0};
    return json ? volt__json_in(c, json, out) : 0;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

static int command_impl(volt_client *c, const char *command, const struct proto_span *payload,
                        uint32_t timeout_ms, int kind, unsigned flags, void (*cb)(void),
                        void *privdata, uint64_t *id)
{
    uint32_t t = timeout_ms ? timeout_ms : c->opts.command_timeout_ms;
    int64_t local = 0;
    flags |= VOLT__R_COMMAND;
    if (t) {
        local = (int64_t)t + c->opts.timeout_grace_ms;
    } else {
        /* No timeout: the broker's commandTimeout applies, and our deadline
         * follows it (set at the welcome when it is not known yet). */
        flags |= VOLT__R_BROKER_TIMEOUT;
        if (c->state == VOLT__SESSION)
            local = (int64_t)volt__broker_timeout(c) + c->opts.timeout_grace_ms;
    }
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_REQUEST;
    m.fields = PROTO_F_COMMAND;
    m.command = span_of(command);
    if (payload->ptr) {
        m.fields |= PROTO_F_PAYLOAD;
        m.payload = *payload;
    }
    if (t) {
        m.fields |= PROTO_F_TIMEOUT_MS;
        m.timeout_ms = t;
    }
    return volt__request(c, &m, kind, flags, local, cb, privdata, id);
}

/* Starts a command from raw or JSON input. */
static int start_command(volt_client *c, const char *command, const void *payload, size_t len,
                         const char *json, bool is_json, uint32_t timeout_ms, int kind,
                         unsigned flags, void (*cb)(void), void *privdata, uint64_t *id)
{
    if (!valid_str(command)) {
        volt__set_error(c, "command must be a non-empty string");
        return VOLT_E_BAD_REQUEST;
    }
    struct proto_span sp;
    int rc = is_json ? json_span(c, json, &sp) : payload_span(c, payload, len, &sp);
    if (rc < 0)
        return rc;
    return command_impl(c, command, &sp, timeout_ms, kind, flags, cb, privdata, id);
}

int volt_send_command(volt_client *c, const char *command, const void *payload, size_t payload_len,
                      uint32_t timeout_ms, volt_result_cb *cb, void *privdata)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    int rc = start_command(c, command, payload, payload_len, NULL, false, timeout_ms,
                           VOLT__K_RESULT, 0, (void (*)(void))cb, privdata, NULL);
    return volt__leave(c, rc);
}

int volt_send_command_json(volt_client *c, const char *command, const char *json_payload,
                           uint32_t timeout_ms, volt_result_cb *cb, void *privdata)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    int rc = start_command(c, command, NULL, 0, json_payload, true, timeout_ms, VOLT__K_RESULT,
                           VOLT__R_JSON, (void (*)(void))cb, privdata, NULL);
    return volt__leave(c, rc);
}

/* Waits for a K_SYNC/K_SYNC_STRING request started with wait as privdata. */
static int finish_sync(volt_client *c, struct volt__wait *w, uint64_t id)
{
    int rc = volt__wait(c, &w->done, -1);
    if (!w->done) {
        /* Only when the client is being freed under us: our wait slot is
         * on this stack, so the request must not outlive this call. */
        volt__cancel(c, id);
        return rc;
    }
    return w->code;
}

static int command_sync(volt_client *c, const char *command, const void *payload, size_t len,
                        const char *json, bool is_json, uint32_t timeout_ms, volt_result **out)
{
    if (out)
        *out = NULL;
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    struct volt__wait w;
    memset(&w, 0, sizeof w);
    w.flags = is_json ? VOLT__R_JSON : 0;
    uint64_t id = 0;
    int rc = start_command(c, command, payload, len, json, is_json, timeout_ms, VOLT__K_SYNC, 0,
                           NULL, &w, &id);
    if (rc == 0)
        rc = finish_sync(c, &w, id);
    if (out)
        *out = w.result;
    else
        volt_result_free(w.result);
    return volt__leave(c, rc);
}

int volt_send_command_sync(volt_client *c, const char *command, const void *payload,
                           size_t payload_len, uint32_t timeout_ms, volt_result **out)
{
    return command_sync(c, command, payload, payload_len, NULL, false, timeout_ms, out);
}

int volt_send_command_json_sync(volt_client *c, const char *command, const char *json_payload,
                                uint32_t timeout_ms, volt_result **out)
{
    return command_sync(c, command, NULL, 0, json_payload, true, timeout_ms, out);
}

/* ------------------------------------------------------------------ */
/* Emit                                                                */
/* ------------------------------------------------------------------ */

static int emit_impl(volt_client *c, const char *type, const struct proto_span *data,
                     unsigned flags, volt_result_cb *cb, void *privdata, bool acked)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_EMIT;
    m.fields = PROTO_F_TYPE;
    m.type = span_of(type);
    if (data->ptr) {
        m.fields |= PROTO_F_DATA;
        m.data = *data;
    }
    if (flags & VOLT_EMIT_VOLATILE) {
        m.fields |= PROTO_F_VOLATILE;
        m.is_volatile = true;
    }
    if (!acked)
        return volt__send(c, &m);
    return volt__request(c, &m, VOLT__K_RESULT, 0, c->opts.local_timeout_ms, (void (*)(void))cb,
                         privdata, NULL);
}

static int emit_common(volt_client *c, const char *type, const void *data, size_t len,
                       const char *json, bool is_json, unsigned flags, volt_result_cb *cb,
                       void *privdata, bool acked)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    int rc = 0;
    struct proto_span sp;
    if (!valid_str(type)) {
        volt__set_error(c, "message type must be a non-empty string");
        rc = VOLT_E_BAD_REQUEST;
    } else if (flags & ~VOLT_EMIT_VOLATILE) {
        volt__set_error(c, "unknown emit flags 0x%x", flags & ~VOLT_EMIT_VOLATILE);
        rc = VOLT_E_BAD_REQUEST;
    }
    if (rc == 0)
        rc = is_json ? json_span(c, json, &sp) : payload_span(c, data, len, &sp);
    if (rc == 0)
        rc = emit_impl(c, type, &sp, flags, cb, privdata, acked);
    return volt__leave(c, rc);
}

int volt_emit(volt_client *c, const char *type, const void *data, size_t len)
{
    return emit_common(c, type, data, len, NULL, false, 0, NULL, NULL, false);
}

int volt_emit_json(volt_client *c, const char *type, const char *json_data)
{
    return emit_common(c, type, NULL, 0, json_data, true, 0, NULL, NULL, false);
}

int volt_emit_acked(volt_client *c, const char *type, const void *data, size_t len,
                    volt_result_cb *cb, void *privdata)
{
    return emit_common(c, type, data, len, NULL, false, 0, cb, privdata, true);
}

int volt_emit_ex(volt_client *c, const char *type, const void *data, size_t len, unsigned flags,
                 volt_result_cb *cb, void *privdata)
{
    return emit_common(c, type, data, len, NULL, false, flags, cb, privdata, cb != NULL);
}

int volt_emit_json_ex(volt_client *c, const char *type, const char *json_data, unsigned flags,
                      volt_result_cb *cb, void *privdata)
{
    return emit_common(c, type, NULL, 0, json_data, true, flags, cb, privdata, cb != NULL);
}

/* ------------------------------------------------------------------ */
/* Handlers                                                            */
/* ------------------------------------------------------------------ */

/* Sends register/unregister for commands[0..n). */
static int send_commands_op(volt_client *c, enum proto_op op, const char *const *commands, size_t n,
                            const char *what)
{
    struct proto_buf arr = PROTO_BUF_INIT;
    int rc = proto_mp_put_array(&arr, (uint32_t)n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = proto_mp_put_str(&arr, commands[i], strlen(commands[i]));
    if (rc == 0) {
        struct proto_msg m;
        memset(&m, 0, sizeof m);
        m.op = op;
        m.fields = PROTO_F_COMMANDS;
        m.commands = (struct proto_span){arr.data, (uint32_t)arr.len};
        m.commands_count = (uint32_t)n;
        rc = volt__request(c, &m, VOLT__K_INTERNAL, 0, c->opts.local_timeout_ms, NULL, (void *)what,
                           NULL);
    }
    proto_buf_free(&arr);
    return rc;
}

static struct volt__handler *find_handler(volt_client *c, const char *command)
{
    for (size_t i = 0; i < c->n_handlers; i++)
        if (strcmp(c->handlers[i].command, command) == 0)
            return &c->handlers[i];
    return NULL;
}

int volt_register_handler(volt_client *c, const char *command, volt_handler_cb *cb, void *privdata)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    if (!valid_str(command) || !cb) {
        volt__set_error(c, "register needs a non-empty command and a callback");
        return VOLT_E_BAD_REQUEST;
    }
    struct volt__handler *h = find_handler(c, command);
    if (h) {
        h->cb = cb;
        h->privdata = privdata;
        return 0;
    }
    if (c->n_handlers == c->cap_handlers) {
        size_t cap = c->cap_handlers ? c->cap_handlers * 2 : 8;
        struct volt__handler *p = realloc(c->handlers, cap * sizeof *p);
        if (!p)
            return VOLT_E_NOMEM;
        c->handlers = p;
        c->cap_handlers = cap;
    }
    char *copy = strdup(command);
    if (!copy)
        return VOLT_E_NOMEM;
    volt__enter(c);
    int rc = 0;
    if (c->state == VOLT__SESSION)
        rc = send_commands_op(c, PROTO_OP_REGISTER, (const char *const *)&copy, 1, "register");
    if (rc < 0) {
        free(copy);
        return volt__leave(c, rc);
    }
    c->handlers[c->n_handlers++] = (struct volt__handler){copy, cb, privdata};
    return volt__leave(c, 0);
}

int volt_unregister_handler(volt_client *c, const char *command)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    if (!command)
        return VOLT_E_BAD_REQUEST;
    struct volt__handler *h = find_handler(c, command);
    if (!h)
        return VOLT_E_NO_HANDLER;
    volt__enter(c);
    char *name = h->command;
    size_t i = (size_t)(h - c->handlers);
    memmove(&c->handlers[i], &c->handlers[i + 1], (c->n_handlers - i - 1) * sizeof *h);
    c->n_handlers--;
    if (c->state == VOLT__SESSION)
        send_commands_op(c, PROTO_OP_UNREGISTER, (const char *const *)&name, 1, "unregister");
    free(name);
    return volt__leave(c, 0);
}

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */
/* ------------------------------------------------------------------ */

static const char *match_name(enum volt_match match)
{
    switch (match) {
    case VOLT_MATCH_EXACT:
        return "exact";
    case VOLT_MATCH_PREFIX:
        return "prefix";
    default:
        return "all";
    }
}

static bool same_filter(const struct volt__sub *s, enum volt_match match, const char *type)
{
    return s->match == match && (match == VOLT_MATCH_ALL || strcmp(s->type, type) == 0);
}

/* Is the filter used by a live subscription other than `except`? */
static bool filter_in_use(const volt_client *c, enum volt_match match, const char *type,
                          const struct volt__sub *except)
{
    for (size_t i = 0; i < c->n_subs; i++) {
        const struct volt__sub *s = c->subs[i];
        if (s != except && !s->dead && same_filter(s, match, type))
            return true;
    }
    return false;
}

static int send_filter_op(volt_client *c, enum proto_op op, enum volt_match match, const char *type)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = op;
    m.fields = PROTO_F_MATCH;
    m.match = span_of(match_name(match));
    if (match != VOLT_MATCH_ALL) {
        m.fields |= PROTO_F_TYPE;
        m.type = span_of(type);
    }
    return volt__request(c, &m, VOLT__K_INTERNAL, 0, c->opts.local_timeout_ms, NULL,
                         op == PROTO_OP_SUBSCRIBE ? "subscribe" : "unsubscribe", NULL);
}

int volt_on_message(volt_client *c, enum volt_match match, const char *type, unsigned flags,
                    volt_message_cb *cb, void *privdata)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    if (!cb ||
        (match != VOLT_MATCH_ALL && match != VOLT_MATCH_EXACT && match != VOLT_MATCH_PREFIX) ||
        (match != VOLT_MATCH_ALL && !valid_str(type)) || (flags & ~VOLT_MESSAGE_JSON)) {
        volt__set_error(c, "a subscription needs a callback, a valid match, and a type "
                           "unless it matches all");
        return VOLT_E_BAD_REQUEST;
    }
    if (c->next_sub_id <= 0)
        c->next_sub_id = 1; /* wrapped after 2^31 subscriptions */
    if (c->n_subs == c->cap_subs) {
        size_t cap = c->cap_subs ? c->cap_subs * 2 : 8;
        struct volt__sub **p = realloc(c->subs, cap * sizeof *p);
        if (!p)
            return VOLT_E_NOMEM;
        c->subs = p;
        c->cap_subs = cap;
    }
    struct volt__sub *s = calloc(1, sizeof *s);
    if (!s || !(s->type = strdup(match == VOLT_MATCH_ALL ? "" : type))) {
        free(s);
        return VOLT_E_NOMEM;
    }
    s->match = match;
    s->flags = flags;
    s->cb = cb;
    s->privdata = privdata;
    volt__enter(c);
    int rc = 0;
    if (c->state == VOLT__SESSION && !filter_in_use(c, match, s->type, NULL))
        rc = send_filter_op(c, PROTO_OP_SUBSCRIBE, match, s->type);
    if (rc < 0) {
        free(s->type);
        free(s);
        return volt__leave(c, rc);
    }
    s->id = c->next_sub_id++;
    c->subs[c->n_subs++] = s;
    return volt__leave(c, s->id);
}

int volt_off_message(volt_client *c, int subscription)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    struct volt__sub *s = NULL;
    size_t at = 0;
    for (size_t i = 0; i < c->n_subs; i++) {
        if (c->subs[i]->id == subscription && !c->subs[i]->dead) {
            s = c->subs[i];
            at = i;
            break;
        }
    }
    if (!s)
        return VOLT_E_BAD_REQUEST;
    volt__enter(c);
    s->dead = true;
    if (c->state == VOLT__SESSION && !filter_in_use(c, s->match, s->type, s))
        send_filter_op(c, PROTO_OP_UNSUBSCRIBE, s->match, s->type);
    if (c->sub_walkers == 0) {
        /* No dispatch is walking the list: remove now (order kept). */
        memmove(&c->subs[at], &c->subs[at + 1], (c->n_subs - at - 1) * sizeof *c->subs);
        c->n_subs--;
        free(s->type);
        free(s);
    }
    return volt__leave(c, 0);
}

void volt__session_started(volt_client *c)
{
    if (c->n_handlers) {
        const char **names = malloc(c->n_handlers * sizeof *names);
        if (names) {
            for (size_t i = 0; i < c->n_handlers; i++)
                names[i] = c->handlers[i].command;
            int rc = send_commands_op(c, PROTO_OP_REGISTER, names, c->n_handlers, "register");
            free(names);
            if (rc < 0)
                volt__emit_error(c, rc, "cannot register handlers: %s", c->errstr);
        } else {
            volt__emit_error(c, VOLT_E_NOMEM, "cannot register handlers: out of memory");
        }
    }
    for (size_t i = 0; i < c->n_subs && volt__alive(c) && c->state == VOLT__SESSION; i++) {
        struct volt__sub *s = c->subs[i];
        bool first = !s->dead;
        for (size_t j = 0; first && j < i; j++)
            if (!c->subs[j]->dead && same_filter(c->subs[j], s->match, s->type))
                first = false;
        if (!first)
            continue;
        int rc = send_filter_op(c, PROTO_OP_SUBSCRIBE, s->match, s->type);
        if (rc < 0)
            volt__emit_error(c, rc, "cannot subscribe: %s", c->errstr);
    }
}

/* ------------------------------------------------------------------ */
/* Broker queries                                                      */
/* ------------------------------------------------------------------ */

static int64_t sync_timeout(const volt_client *c, int timeout_ms)
{
    return timeout_ms > 0 ? timeout_ms : (int64_t)c->opts.local_timeout_ms;
}

static int query(volt_client *c, enum proto_op op, const char *name, int kind, unsigned flags,
                 int64_t timeout, void (*cb)(void), void *privdata, uint64_t *id)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = op;
    if (name) {
        m.fields |= PROTO_F_NAME;
        m.name = span_of(name);
    }
    return volt__request(c, &m, kind, flags, timeout, cb, privdata, id);
}

static int query_async(volt_client *c, enum proto_op op, const char *name, int kind, unsigned flags,
                       void (*cb)(void), void *privdata)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    if (!cb && kind == VOLT__K_STRING)
        return VOLT_E_BAD_REQUEST;
    volt__enter(c);
    int rc = query(c, op, name, kind, flags, c->opts.local_timeout_ms, cb, privdata, NULL);
    return volt__leave(c, rc);
}

/* Blocking query; the wait slot's result/string is handed to the caller. */
static int query_sync(volt_client *c, enum proto_op op, const char *name, int kind, unsigned flags,
                      int timeout_ms, struct volt__wait *w)
{
    memset(w, 0, sizeof *w);
    w->flags = flags;
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    uint64_t id = 0;
    int rc = query(c, op, name, kind, 0, sync_timeout(c, timeout_ms), NULL, w, &id);
    if (rc == 0)
        rc = finish_sync(c, w, id);
    return volt__leave(c, rc);
}

int volt_get_team_cluster_id(volt_client *c, volt_string_cb *cb, void *privdata)
{
    return query_async(c, PROTO_OP_CREDENTIAL, "teamClusterId", VOLT__K_STRING, 0,
                       (void (*)(void))cb, privdata);
}

int volt_get_daemon_password(volt_client *c, volt_string_cb *cb, void *privdata)
{
    return query_async(c, PROTO_OP_CREDENTIAL, "daemonPassword", VOLT__K_STRING, 0,
                       (void (*)(void))cb, privdata);
}

static int credential_sync(volt_client *c, const char *name, int timeout_ms, char **out)
{
    if (!out)
        return VOLT_E_BAD_REQUEST;
    *out = NULL;
    struct volt__wait w;
    int rc = query_sync(c, PROTO_OP_CREDENTIAL, name, VOLT__K_SYNC_STRING, 0, timeout_ms, &w);
    *out = w.string;
    return rc;
}

int volt_get_team_cluster_id_sync(volt_client *c, int timeout_ms, char **out)
{
    return credential_sync(c, "teamClusterId", timeout_ms, out);
}

int volt_get_daemon_password_sync(volt_client *c, int timeout_ms, char **out)
{
    return credential_sync(c, "daemonPassword", timeout_ms, out);
}

int volt_status(volt_client *c, volt_result_cb *cb, void *privdata)
{
    return query_async(c, PROTO_OP_STATUS, NULL, VOLT__K_RESULT, VOLT__R_JSON, (void (*)(void))cb,
                       privdata);
}

int volt_status_sync(volt_client *c, int timeout_ms, char **json_out)
{
    if (!json_out)
        return VOLT_E_BAD_REQUEST;
    *json_out = NULL;
    struct volt__wait w;
    int rc = query_sync(c, PROTO_OP_STATUS, NULL, VOLT__K_SYNC, VOLT__R_JSON, timeout_ms, &w);
    if (rc == 0 && w.result && w.result->json)
        *json_out = strdup(w.result->json);
    if (rc == 0 && !*json_out)
        rc = VOLT_E_NOMEM;
    volt_result_free(w.result);
    return rc;
}

int volt_ping(volt_client *c, volt_result_cb *cb, void *privdata)
{
    return query_async(c, PROTO_OP_PING, NULL, VOLT__K_RESULT, 0, (void (*)(void))cb, privdata);
}

int volt_ping_sync(volt_client *c, int timeout_ms)
{
    struct volt__wait w;
    int rc = query_sync(c, PROTO_OP_PING, NULL, VOLT__K_SYNC, 0, timeout_ms, &w);
    volt_result_free(w.result);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Event callbacks                                                     */
/* ------------------------------------------------------------------ */

void volt_on_connected(volt_client *c, volt_connected_cb *cb, void *privdata)
{
    c->on_connected = cb;
    c->on_connected_data = privdata;
}

void volt_on_disconnected(volt_client *c, volt_disconnected_cb *cb, void *privdata)
{
    c->on_disconnected = cb;
    c->on_disconnected_data = privdata;
}

void volt_on_error(volt_client *c, volt_error_cb *cb, void *privdata)
{
    c->on_error = cb;
    c->on_error_data = privdata;
}

void volt_on_broker(volt_client *c, volt_broker_cb *cb, void *privdata)
{
    c->on_broker = cb;
    c->on_broker_data = privdata;
}

/* ------------------------------------------------------------------ */
/* JSON <-> msgpack                                                    */
/* ------------------------------------------------------------------ */

int volt_json_from_msgpack(const void *data, size_t len, char **out, size_t *out_len)
{
    if (!out || (!data && len))
        return VOLT_E_BAD_REQUEST;
    *out = NULL;
    if (!data || !len)
        return VOLT_E_BAD_REQUEST;
    struct proto_span sp = {data, (uint32_t)len};
    if (len > UINT32_MAX)
        return VOLT_E_BAD_REQUEST;
    return volt__json_out(&sp, out, out_len);
}

int volt_json_to_msgpack(const char *json, size_t len, void **out, size_t *out_len)
{
    if (!json || !out)
        return VOLT_E_BAD_REQUEST;
    *out = NULL;
    struct proto_json_doc doc;
    proto_json_doc_init(&doc);
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_json_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.bin = PROTO_JSON_BIN_MARKER;
    int rc = proto_json_to_msgpack(&doc, json, len, &b, &opts, NULL);
    proto_json_doc_free(&doc);
    if (rc < 0) {
        proto_buf_free(&b);
        return rc == PROTO_E_BAD_FRAME ? VOLT_E_BAD_REQUEST : rc;
    }
    *out = b.data;
    if (out_len)
        *out_len = b.len;
    return 0;
}
