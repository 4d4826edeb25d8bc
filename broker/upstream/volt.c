/* The VOLT events: see volt.h for the rules. What is not obvious here:
 *
 * - One JSON parse per packet. The tokens stay in the parser until the next
 *   call, so a daemon:response's data is converted only once the session
 *   knows someone waits for it (volt_response_data).
 * - Two scratch buffers: `a` holds converted values (data, payload), `b`
 *   holds decoded strings (command, type, code, message). An event never
 *   needs two of one kind at once.
 * - Salvage reads raw text on purpose: the event did not parse, so only a
 *   literal "requestId":"..." (no escapes) is trusted, and only when the
 *   text plainly starts with the event's name.
 */
#include "volt.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "proto/limits.h"
#include "proto/text.h"
#include "util/uuid.h"

struct volt_parser {
    struct proto_json_doc doc;
    struct proto_buf a; /* converted values */
    struct proto_buf b; /* decoded strings */
    const struct proto_span *att;
    uint32_t n_att;
    int response_obj; /* token of the last RESPONSE's object, -1 when none */
    char value_error[200];
    char text[320]; /* refusals and reasons handed out */
};

struct volt_parser *volt_parser_new(void)
{
    struct volt_parser *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    proto_json_doc_init(&v->doc);
    proto_buf_init(&v->a);
    proto_buf_init(&v->b);
    v->response_obj = -1;
    return v;
}

void volt_parser_free(struct volt_parser *v)
{
    if (!v)
        return;
    proto_json_doc_free(&v->doc);
    proto_buf_free(&v->a);
    proto_buf_free(&v->b);
    free(v);
}

static struct proto_span span_of(const struct proto_buf *b)
{
    struct proto_span s = {b->data, (uint32_t)b->len};
    return s;
}

/* The string member `key` of `obj`, decoded into out. 0 or -1. */
static int string_field(struct volt_parser *v, uint32_t obj, const char *key, struct proto_buf *out)
{
    int tok = proto_json_find(&v->doc, obj, key);

    if (tok < 0 || v->doc.tok[tok].type != PROTO_JSON_STRING)
        return -1;
    proto_buf_reset(out);
    return proto_json_string(&v->doc, (uint32_t)tok, out, NULL) < 0 ? -1 : 0;
}

/* True when the subtree at `tok` nests more than `max` containers. Tokens
 * are in preorder and each container knows where its subtree ends, so a
 * stack of those ends gives every token's depth in one pass. */
static bool depth_over(const struct proto_json_doc *d, uint32_t tok, uint32_t max)
{
    uint32_t ends[PROTO_DEFAULT_MAX_DEPTH + 1];
    uint32_t depth = 0;
    uint32_t end = d->tok[tok].next;

    for (uint32_t i = tok; i < end && i < d->n; i++) {
        while (depth && ends[depth - 1] <= i)
            depth--;
        uint8_t type = d->tok[i].type;
        if (type != PROTO_JSON_ARRAY && type != PROTO_JSON_OBJECT)
            continue;
        if (depth == max)
            return true;
        ends[depth++] = d->tok[i].next;
    }
    return false;
}

/* The value of `key` as msgpack in v->a (len 0 when absent). 0, or -1 with
 * the reason in v->value_error. */
static int value_field(struct volt_parser *v, uint32_t obj, const char *key)
{
    int tok = proto_json_find(&v->doc, obj, key);
    struct proto_span att[VOLT_MAX_ATTACHMENTS];
    struct proto_json_opts o = {.bin = PROTO_JSON_BIN_PLACEHOLDER, .attachments = att};
    struct proto_json_error err;

    proto_buf_reset(&v->a);
    if (tok < 0)
        return 0;
    /* The value lands one level inside a local frame (result data, call
     * payload, message data): what is deeper cannot be delivered. */
    if (depth_over(&v->doc, (uint32_t)tok, PROTO_DEFAULT_MAX_DEPTH - 1)) {
        snprintf(v->value_error, sizeof(v->value_error),
                 "'%s' is nested deeper than the local protocol allows (%u levels)", key,
                 PROTO_DEFAULT_MAX_DEPTH - 1);
        return -1;
    }
    o.n_attachments = v->n_att < VOLT_MAX_ATTACHMENTS ? v->n_att : VOLT_MAX_ATTACHMENTS;
    for (uint32_t i = 0; i < o.n_attachments; i++)
        att[i] = v->att[i];
    if (proto_json_to_msgpack_tok(&v->doc, (uint32_t)tok, &v->a, &o, &err) < 0) {
        snprintf(v->value_error, sizeof(v->value_error), "'%s': %s", key, err.text);
        return -1;
    }
    return 0;
}

/* ---- salvage ---- */

/* The value of the first "requestId":"..." in raw text, when it is a
 * plain string of 1..VOLT_ID_MAX bytes. */
static bool find_request_id(const char *text, size_t len, char *out, uint32_t *out_len)
{
    static const char key[] = "\"requestId\"";
    const char *end = text + len;
    const char *at = len ? memmem(text, len, key, sizeof(key) - 1) : NULL;

    if (!at)
        return false;
    at += sizeof(key) - 1;
    while (at < end && (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r' || *at == ':'))
        at++;
    if (at >= end || *at++ != '"')
        return false;
    const char *close = memchr(at, '"', (size_t)(end - at));
    if (!close || close == at || (size_t)(close - at) > VOLT_ID_MAX ||
        memchr(at, '\\', (size_t)(close - at)))
        return false;
    *out_len = (uint32_t)(close - at);
    memcpy(out, at, *out_len);
    out[*out_len] = '\0';
    return true;
}

static bool starts_event(const char *text, size_t len, const char *name)
{
    size_t n = strlen(name);
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    return len - i >= n + 3 && text[i] == '[' && text[i + 1] == '"' &&
           !memcmp(text + i + 2, name, n) && text[i + 2 + n] == '"';
}

static void salvage(struct volt_parser *v, const char *text, size_t len, const char *why,
                    struct volt_event *ev)
{
    ev->why = why;
    if (!find_request_id(text, len, ev->id, &ev->id_len))
        return;
    snprintf(v->text, sizeof(v->text), "the server's message could not be read: %s", why);
    if (starts_event(text, len, "daemon:response")) {
        if (uuid_parse(ev->id, ev->id_len, ev->uuid) < 0)
            return;
        ev->kind = VOLT_EV_SALVAGE_RESPONSE;
    } else if (starts_event(text, len, "server:request")) {
        ev->kind = VOLT_EV_SALVAGE_REQUEST;
    } else {
        return;
    }
    ev->refusal = v->text;
    ev->undeliverable = true;
}

/* ---- events ---- */

static void note_offset(struct volt_parser *v, struct volt_event *ev)
{
    uint32_t last = 1;
    for (uint32_t i = 1; i < v->doc.tok[0].count; i++)
        last = v->doc.tok[last].next;
    if (last >= v->doc.n || v->doc.tok[last].type != PROTO_JSON_STRING)
        return;
    proto_buf_reset(&v->b);
    if (proto_json_string(&v->doc, last, &v->b, NULL) == 0 && v->b.len <= VOLT_OFFSET_MAX) {
        memcpy(ev->offset, v->b.data, v->b.len);
        ev->offset[v->b.len] = '\0';
        ev->has_offset = true;
    }
}

static void on_response(struct volt_parser *v, uint32_t obj, struct volt_event *ev)
{
    if (string_field(v, obj, "requestId", &v->b) < 0 ||
        uuid_parse((const char *)v->b.data, v->b.len, ev->uuid) < 0) {
        ev->why = "daemon:response without a valid requestId";
        return;
    }
    ev->kind = VOLT_EV_RESPONSE;
    ev->id_len = (uint32_t)v->b.len; /* a uuid: 36 bytes */
    memcpy(ev->id, v->b.data, v->b.len);
    ev->id[ev->id_len] = '\0';
    int tok = proto_json_find(&v->doc, obj, "success");
    if (tok >= 0 && v->doc.tok[tok].type == PROTO_JSON_TRUE) {
        ev->ok = true;
        v->response_obj = (int)obj;
        return;
    }
    /* success false (or missing): a rejection with the server's words. */
    int err_tok = proto_json_find(&v->doc, obj, "error");
    proto_buf_reset(&v->a);
    proto_buf_reset(&v->b);
    if (err_tok >= 0 && v->doc.tok[err_tok].type == PROTO_JSON_OBJECT) {
        int c = proto_json_find(&v->doc, (uint32_t)err_tok, "code");
        int m = proto_json_find(&v->doc, (uint32_t)err_tok, "message");
        if (c >= 0 && v->doc.tok[c].type == PROTO_JSON_STRING &&
            proto_json_string(&v->doc, (uint32_t)c, &v->a, NULL) < 0)
            proto_buf_reset(&v->a);
        if (m >= 0 && v->doc.tok[m].type == PROTO_JSON_STRING &&
            proto_json_string(&v->doc, (uint32_t)m, &v->b, NULL) < 0)
            proto_buf_reset(&v->b);
    }
    if (!v->b.len)
        proto_buf_append(&v->b, "rejected by the server", 22);
    ev->server_code = span_of(&v->a);
    ev->message = span_of(&v->b);
}

int volt_response_data(struct volt_parser *v, struct proto_span *out, const char **why)
{
    out->ptr = NULL;
    out->len = 0;
    if (v->response_obj < 0) {
        *why = "no response to read";
        return PROTO_E_INTERNAL;
    }
    if (value_field(v, (uint32_t)v->response_obj, "data") < 0) {
        snprintf(v->text, sizeof(v->text), "the server's answer cannot be delivered: %s",
                 v->value_error);
        *why = v->text;
        return PROTO_E_BAD_FRAME;
    }
    *out = span_of(&v->a);
    return 0;
}

static void on_server_request(struct volt_parser *v, uint32_t obj, struct volt_event *ev)
{
    if (string_field(v, obj, "requestId", &v->b) < 0 || !v->b.len || v->b.len > VOLT_ID_MAX) {
        ev->why = "server:request without a usable requestId";
        ev->unanswerable = true;
        return;
    }
    ev->kind = VOLT_EV_SERVER_REQUEST;
    ev->id_len = (uint32_t)v->b.len;
    memcpy(ev->id, v->b.data, v->b.len);
    ev->id[ev->id_len] = '\0';
    if (string_field(v, obj, "command", &v->b) < 0) {
        ev->refusal = "the request has no command";
        return;
    }
    if (value_field(v, obj, "payload") < 0) {
        snprintf(v->text, sizeof(v->text), "the payload cannot be delivered to a handler: %s",
                 v->value_error);
        ev->refusal = v->text;
        ev->undeliverable = true;
        return;
    }
    ev->command = span_of(&v->b);
    ev->payload = span_of(&v->a);
}

static void on_message(struct volt_parser *v, uint32_t obj, struct volt_event *ev)
{
    static const uint8_t nil = 0xc0;

    if (string_field(v, obj, "type", &v->b) < 0) {
        ev->why = "message without a type";
        return;
    }
    if (value_field(v, obj, "data") < 0) {
        snprintf(v->text, sizeof(v->text), "message data cannot be delivered: %s", v->value_error);
        ev->why = v->text;
        ev->undeliverable = true;
        return;
    }
    ev->kind = VOLT_EV_MESSAGE;
    ev->type = span_of(&v->b);
    ev->data.ptr = v->a.len ? v->a.data : &nil;
    ev->data.len = v->a.len ? (uint32_t)v->a.len : 1;
}

int volt_parse_event(struct volt_parser *v, const char *json, size_t len,
                     const struct proto_span *att, uint32_t n_att, bool want_offset,
                     struct volt_event *ev)
{
    struct proto_json_error err;
    uint32_t obj;
    int rc;

    memset(ev, 0, offsetof(struct volt_event, offset));
    ev->offset[0] = '\0';
    ev->kind = VOLT_EV_IGNORED;
    v->att = att;
    v->n_att = att ? n_att : 0;
    v->response_obj = -1;
    /* Any depth parses (the tokenizer's stack is fixed): a value too deep
     * for a local frame is refused where it is converted, with the request
     * it belongs to answered, not dropped. */
    rc = proto_json_parse(&v->doc, json, len, PROTO_HARD_MAX_DEPTH, &err);
    if (rc == PROTO_E_NOMEM)
        return rc;
    if (rc < 0) {
        snprintf(v->value_error, sizeof(v->value_error), "%s", err.text);
        ev->malformed = true;
        salvage(v, json, len, v->value_error, ev);
        return 0;
    }
    if (v->doc.n < 2 || v->doc.tok[0].type != PROTO_JSON_ARRAY ||
        v->doc.tok[1].type != PROTO_JSON_STRING) {
        ev->why = "event without a name";
        return 0;
    }
    /* With recovery on, the server appends the event's offset as a last,
     * extra string argument: the position to resume from. Noted whatever
     * the event is. */
    if (want_offset && v->doc.tok[0].count >= 3)
        note_offset(v, ev);
    obj = v->doc.tok[1].next;
    if (obj >= v->doc.n || v->doc.tok[obj].type != PROTO_JSON_OBJECT || v->doc.tok[0].count < 2) {
        ev->why = "event without an object argument";
        return 0;
    }
    if (proto_json_string_eq(&v->doc, 1, "daemon:response"))
        on_response(v, obj, ev);
    else if (proto_json_string_eq(&v->doc, 1, "server:request"))
        on_server_request(v, obj, ev);
    else if (proto_json_string_eq(&v->doc, 1, "message"))
        on_message(v, obj, ev);
    else
        ev->why = "unknown event";
    return 0;
}

/* ---- acks and namespace packets ---- */

static void copy_field(struct volt_parser *v, uint32_t obj, const char *key, char *out, size_t size)
{
    if (string_field(v, obj, key, &v->b) == 0)
        snprintf(out, size, "%.*s", (int)v->b.len, (const char *)v->b.data);
}

void volt_parse_register_ack(struct volt_parser *v, const char *json, size_t len,
                             struct volt_register_ack *ack)
{
    memset(ack, 0, sizeof(*ack));
    v->response_obj = -1;
    if (proto_json_parse(&v->doc, json, len, 0, NULL) < 0 || v->doc.n < 2 ||
        v->doc.tok[0].type != PROTO_JSON_ARRAY || v->doc.tok[1].type != PROTO_JSON_OBJECT)
        return;
    int ok = proto_json_find(&v->doc, 1, "success");
    if (ok >= 0 && v->doc.tok[ok].type == PROTO_JSON_TRUE) {
        ack->ok = true;
        return;
    }
    int e = proto_json_find(&v->doc, 1, "error");
    if (e >= 0 && v->doc.tok[e].type == PROTO_JSON_OBJECT) {
        copy_field(v, (uint32_t)e, "code", ack->code, sizeof(ack->code));
        copy_field(v, (uint32_t)e, "message", ack->message, sizeof(ack->message));
    }
}

void volt_parse_connect(struct volt_parser *v, const char *json, size_t len,
                        char pid[VOLT_PID_MAX + 1])
{
    pid[0] = '\0';
    v->response_obj = -1;
    if (proto_json_parse(&v->doc, json, len, 0, NULL) == 0 && v->doc.n &&
        v->doc.tok[0].type == PROTO_JSON_OBJECT && string_field(v, 0, "pid", &v->b) == 0 &&
        v->b.len <= VOLT_PID_MAX) {
        memcpy(pid, v->b.data, v->b.len);
        pid[v->b.len] = '\0';
    }
}

const char *volt_parse_connect_error(struct volt_parser *v, const char *json, size_t len)
{
    v->response_obj = -1;
    if (proto_json_parse(&v->doc, json, len, 0, NULL) == 0 && v->doc.n &&
        v->doc.tok[0].type == PROTO_JSON_OBJECT && string_field(v, 0, "message", &v->b) == 0 &&
        proto_buf_append_byte(&v->b, 0) == 0)
        return (const char *)v->b.data;
    return "refused";
}

/* ---- outbound ---- */

static int put(struct volt_out *o, const char *text)
{
    return proto_buf_append(o->buf, text, strlen(text));
}

/* Appends a msgpack value as JSON; binary values become placeholders
 * numbered on from o->n_att (several values may carry binary in one
 * packet). */
static int put_value(struct volt_out *o, const struct proto_span *val)
{
    struct proto_json_opts jo = {
        .bin = PROTO_JSON_BIN_PLACEHOLDER,
        .attachments = o->att,
        .max_attachments = VOLT_MAX_ATTACHMENTS,
        .n_attachments = o->n_att,
    };
    int rc;

    o->err.text[0] = '\0';
    rc = proto_msgpack_to_json(val->ptr, val->len, o->buf, &jo, &o->err);
    if (rc < 0) {
        o->why = o->err.text[0] ? o->err.text : "value has no JSON form";
        return rc == PROTO_E_NOMEM ? rc : PROTO_E_NOT_JSON;
    }
    o->n_att = jo.n_attachments;
    return 0;
}

static int put_str(struct volt_out *o, const char *s, size_t len)
{
    return proto_json_put_string(o->buf, s, len);
}

static int put_request_id(struct volt_out *o, const char *head, const char *id, size_t id_len)
{
    if (put(o, head) < 0 || put_str(o, id, id_len) < 0)
        return PROTO_E_NOMEM;
    return 0;
}

int volt_put_request(struct volt_out *o, const char *id, size_t id_len,
                     const struct proto_span *command, const struct proto_span *payload)
{
    int rc;

    if (put_request_id(o, "[\"daemon:request\",{\"requestId\":", id, id_len) < 0 ||
        put(o, ",\"command\":") < 0)
        return PROTO_E_NOMEM;
    if (put_str(o, (const char *)command->ptr, command->len) < 0) {
        o->why = "the command name is not valid UTF-8";
        return PROTO_E_NOT_JSON;
    }
    if (payload && payload->len) {
        if (put(o, ",\"payload\":") < 0)
            return PROTO_E_NOMEM;
        rc = put_value(o, payload);
        if (rc < 0)
            return rc;
    }
    return put(o, "}]") < 0 ? PROTO_E_NOMEM : 0;
}

int volt_put_message(struct volt_out *o, const struct proto_span *type,
                     const struct proto_span *data)
{
    int rc;

    if (put(o, "[\"message\",{\"type\":") < 0)
        return PROTO_E_NOMEM;
    if (put_str(o, (const char *)type->ptr, type->len) < 0) {
        o->why = "the message type is not valid UTF-8";
        return PROTO_E_NOT_JSON;
    }
    if (put(o, ",\"data\":") < 0)
        return PROTO_E_NOMEM;
    rc = put_value(o, data);
    if (rc < 0)
        return rc;
    return put(o, "}]") < 0 ? PROTO_E_NOMEM : 0;
}

int volt_put_answer(struct volt_out *o, const char *id, size_t id_len, bool ok,
                    const struct proto_span *data, const char *code,
                    const struct proto_span *message)
{
    int rc = put_request_id(o, "[\"server:response\",{\"requestId\":", id, id_len);

    if (ok) {
        rc |= put(o, ",\"success\":true");
        if (data && data->len) {
            rc |= put(o, ",\"data\":");
            if (rc == 0) {
                int vr = put_value(o, data);
                if (vr < 0)
                    return vr;
            }
        }
    } else {
        rc |= put(o, ",\"success\":false,\"error\":{\"code\":");
        rc |= put_str(o, code, strlen(code));
        rc |= put(o, ",\"message\":");
        /* A message that is not UTF-8 is replaced rather than failing the answer. */
        if (!message || put_str(o, (const char *)message->ptr, message->len) < 0)
            rc |= put(o, "\"(the handler's message was not valid UTF-8)\"");
        rc |= put(o, "}");
    }
    rc |= put(o, "}]");
    return rc < 0 ? PROTO_E_NOMEM : 0;
}

int volt_put_handler_error(struct volt_out *o, const char *id, size_t id_len, const char *why)
{
    int rc = put_request_id(o, "[\"server:response\",{\"requestId\":", id, id_len);
    rc |= put(o, ",\"success\":false,\"error\":{\"code\":\"HandlerError\",\"message\":");
    rc |= put_str(o, why, strlen(why));
    rc |= put(o, "}}]");
    return rc < 0 ? PROTO_E_NOMEM : 0;
}

int volt_put_register(struct volt_out *o, const char *team_cluster_id, const char *hostname,
                      const char *version, const struct proto_span *handlers)
{
    int rc;

    if (put(o, "[\"daemon:register\",{\"teamClusterId\":") < 0)
        return PROTO_E_NOMEM;
    if (put_str(o, team_cluster_id, strlen(team_cluster_id)) < 0 || put(o, ",\"hostname\":") < 0 ||
        put_str(o, hostname, strlen(hostname)) < 0 || put(o, ",\"version\":") < 0 ||
        put_str(o, version, strlen(version)) < 0) {
        o->why = "the cluster id, host name or version is not valid UTF-8";
        return PROTO_E_NOT_JSON;
    }
    if (put(o, ",\"handlers\":") < 0)
        return PROTO_E_NOMEM;
    rc = put_value(o, handlers);
    if (rc < 0)
        return rc;
    return put(o, "}]") < 0 ? PROTO_E_NOMEM : 0;
}

int volt_put_handlers(struct volt_out *o, const struct proto_span *handlers)
{
    int rc;

    if (put(o, "[\"daemon:handlers\",{\"handlers\":") < 0)
        return PROTO_E_NOMEM;
    rc = put_value(o, handlers);
    if (rc < 0)
        return rc;
    return put(o, "}]") < 0 ? PROTO_E_NOMEM : 0;
}

int volt_put_auth(struct volt_out *o, const char *team_cluster_id, const char *password,
                  const char *pid, const char *offset, size_t *secret_at, size_t *secret_end)
{
    int rc = put(o, "{\"teamClusterId\":");
    rc |= put_str(o, team_cluster_id, strlen(team_cluster_id));
    rc |= put(o, ",\"daemonPassword\":");
    *secret_at = o->buf->len;
    rc |= put_str(o, password ? password : "", password ? strlen(password) : 0);
    *secret_end = o->buf->len;
    /* Connection state recovery (socket.io 4.6+): with the session id
     * and the offset of the last event we got, a server that keeps
     * sessions replays what it sent while we were away. */
    if (pid && pid[0] && offset && offset[0]) {
        rc |= put(o, ",\"pid\":");
        rc |= put_str(o, pid, strlen(pid));
        rc |= put(o, ",\"offset\":");
        rc |= put_str(o, offset, strlen(offset));
    }
    rc |= put(o, "}");
    return rc < 0 ? PROTO_E_NOMEM : 0;
}

/* ---- sizes ---- */

size_t volt_handler_room(size_t max_payload, size_t header_max, const char *team_cluster_id,
                         const char *hostname)
{
    size_t rest =
        header_max + 128 +
        6 * (strlen(team_cluster_id ? team_cluster_id : "") + strlen(hostname ? hostname : ""));
    return max_payload > rest ? max_payload - rest : 0;
}

size_t volt_names_json_size(const struct proto_span *list)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    size_t size = 2;

    proto_mp_cursor_init(&c, list->ptr, list->len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_ARRAY)
        return SIZE_MAX;
    for (uint32_t i = 0; i < v.v.count; i++) {
        struct proto_mp_value name;
        if (proto_mp_next(&c, &name) < 0 || name.type != PROTO_MP_STR)
            return SIZE_MAX;
        size += proto_json_str_size(name.v.str.ptr, name.v.str.len) + (i ? 1 : 0);
    }
    return size;
}

/* ---- heartbeat ---- */

size_t volt_heartbeat_payload(uint8_t buf[VOLT_HEARTBEAT_PAYLOAD_MAX], uint64_t uptime_ms,
                              uint64_t clients, uint64_t handlers)
{
    /* Three fixed keys and uint64 values (0xcf), written by hand: 3 * (1 +
     * key + 9) + 1 = 57 bytes at most, no buffer to grow. */
    static const char *const keys[3] = {"uptimeMs", "clients", "handlers"};
    const uint64_t vals[3] = {uptime_ms, clients, handlers};
    size_t n = 0;

    buf[n++] = 0x83;
    for (int i = 0; i < 3; i++) {
        size_t kl = strlen(keys[i]);
        buf[n++] = (uint8_t)(0xa0 | kl);
        memcpy(buf + n, keys[i], kl);
        n += kl;
        buf[n++] = 0xcf;
        for (int b = 7; b >= 0; b--)
            buf[n++] = (uint8_t)(vals[i] >> (8 * b));
    }
    return n;
}

enum volt_heartbeat_action volt_heartbeat_result(uint32_t *failures, int code)
{
    if (code == 0) {
        *failures = 0;
        return VOLT_HB_NONE;
    }
    if (code == PROTO_E_SOCKET_NOT_READY)
        return VOLT_HB_NONE; /* the link went away: that is reported on its own */
    (*failures)++;
    return *failures >= VOLT_HEARTBEATS_BEFORE_RECONNECT ? VOLT_HB_DROP : VOLT_HB_REPORT;
}

uint64_t volt_register_hold(uint64_t now, uint64_t started, uint32_t announce_delay,
                            uint64_t last_activity, enum volt_handlers_back back)
{
    uint64_t end = started + announce_delay;

    if (announce_delay == 0 || now >= end || back == VOLT_HANDLERS_RESTORED)
        return 0;
    if (back == VOLT_HANDLERS_WAITING)
        return end - now;
    /* Nothing tells what to wait for: a client arriving now and then
     * keeps the hold going; a quiet moment ends it. */
    uint64_t last = last_activity > started ? last_activity : started;
    uint64_t quiet_end = last + announce_delay / 10;
    if (now >= quiet_end)
        return 0;
    return (quiet_end < end ? quiet_end : end) - now;
}
