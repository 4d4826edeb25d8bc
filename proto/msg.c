/* Typed frames: one table maps each key to its presence bit, its type and
 * its place in struct proto_msg. Decoding is one pass over the top-level
 * map looking each key up in the table; encoding walks the same table and
 * writes the fields that are present, `op` first.
 *
 * Decoding keeps going after the first problem so that a valid `id` is
 * still reported (the broker answers a bad request under its id). The first
 * problem wins, except that an unknown op beats a type error: a newer peer's
 * op may well give a known key another type.
 */
#include "msg.h"

#include <stddef.h>
#include <string.h>

#include "errors.h"

/* The one table of ops: name, who sends it, how it is answered, what it
 * must carry. The codec, the broker's choice between `result` and `error`
 * for a bad frame, the inspector's automatic ids and its help read it. */
#define OP(op_, name_, from_client_, answer_, required_, summary_)                                 \
    [op_] = {name_, from_client_, answer_, required_, summary_}

static const struct proto_op_info ops[PROTO_OP__COUNT] = {
    OP(PROTO_OP_HELLO, "hello", true, PROTO_ANSWER_WELCOME,
       PROTO_F_MIN_VERSION | PROTO_F_MAX_VERSION, "version negotiation and the client's name"),
    OP(PROTO_OP_STATUS, "status", true, PROTO_ANSWER_RESULT, PROTO_F_ID,
       "the broker's state, counters and clients"),
    OP(PROTO_OP_REQUEST, "request", true, PROTO_ANSWER_RESULT, PROTO_F_ID | PROTO_F_COMMAND,
       "a command to the server (sendCommand)"),
    OP(PROTO_OP_EMIT, "emit", true, PROTO_ANSWER_RESULT_IF_ID, PROTO_F_TYPE,
       "a fire-and-forget message to the server"),
    OP(PROTO_OP_REGISTER, "register", true, PROTO_ANSWER_RESULT, PROTO_F_ID | PROTO_F_COMMANDS,
       "handle these commands from the server"),
    OP(PROTO_OP_UNREGISTER, "unregister", true, PROTO_ANSWER_RESULT, PROTO_F_ID | PROTO_F_COMMANDS,
       "stop handling these commands"),
    OP(PROTO_OP_SUBSCRIBE, "subscribe", true, PROTO_ANSWER_RESULT, PROTO_F_ID | PROTO_F_MATCH,
       "receive the server's messages matching a filter"),
    OP(PROTO_OP_UNSUBSCRIBE, "unsubscribe", true, PROTO_ANSWER_RESULT, PROTO_F_ID | PROTO_F_MATCH,
       "drop a subscription"),
    OP(PROTO_OP_REPLY, "reply", true, PROTO_ANSWER_NONE, PROTO_F_ID | PROTO_F_OK,
       "a handler's answer to a call"),
    OP(PROTO_OP_CREDENTIAL, "credential", true, PROTO_ANSWER_RESULT, PROTO_F_ID | PROTO_F_NAME,
       "teamClusterId or daemonPassword"),
    OP(PROTO_OP_PING, "ping", true, PROTO_ANSWER_PONG, PROTO_F_ID, "liveness of the broker"),
    OP(PROTO_OP_MONITOR, "monitor", true, PROTO_ANSWER_RESULT, PROTO_F_ID,
       "trace every frame, local and upstream"),
    OP(PROTO_OP_METRICS, "metrics", true, PROTO_ANSWER_RESULT, PROTO_F_ID,
       "counters and gauges in the OpenMetrics text format"),
    OP(PROTO_OP_WELCOME, "welcome", false, PROTO_ANSWER_NONE, PROTO_F_VERSION | PROTO_F_MAX_FRAME,
       "the answer to hello"),
    OP(PROTO_OP_RESULT, "result", false, PROTO_ANSWER_NONE, PROTO_F_ID | PROTO_F_OK,
       "the answer to an op with an id"),
    OP(PROTO_OP_CALL, "call", false, PROTO_ANSWER_NONE, PROTO_F_ID | PROTO_F_COMMAND,
       "a command from the server for a registered handler"),
    OP(PROTO_OP_MESSAGE, "message", false, PROTO_ANSWER_NONE, PROTO_F_TYPE,
       "a message from the server matching a subscription"),
    OP(PROTO_OP_EVENT, "event", false, PROTO_ANSWER_NONE, PROTO_F_EVENT,
       "connected, disconnected or error"),
    OP(PROTO_OP_PONG, "pong", false, PROTO_ANSWER_NONE, PROTO_F_ID, "the answer to ping"),
    OP(PROTO_OP_ERROR, "error", false, PROTO_ANSWER_NONE, PROTO_F_CODE | PROTO_F_MESSAGE,
       "a problem with a frame that no result answers"),
    OP(PROTO_OP_TRACE, "trace", false, PROTO_ANSWER_NONE, PROTO_F_DIR | PROTO_F_FRAME,
       "one traced frame, for monitors"),
};

const struct proto_op_info *proto_op_info(enum proto_op op)
{
    if (op <= PROTO_OP_NONE || op >= PROTO_OP__COUNT)
        return NULL;
    return &ops[op];
}

const char *proto_op_name(enum proto_op op)
{
    const struct proto_op_info *info = proto_op_info(op);
    return info ? info->name : NULL;
}

enum proto_op proto_op_from_name(const char *name, size_t len)
{
    if (!name)
        return PROTO_OP_NONE;
    for (int op = 1; op < PROTO_OP__COUNT; op++)
        if (strlen(ops[op].name) == len && memcmp(ops[op].name, name, len) == 0)
            return (enum proto_op)op;
    return PROTO_OP_NONE;
}

bool proto_op_answered_by_id(enum proto_op op, bool has_id)
{
    const struct proto_op_info *info = proto_op_info(op);

    if (!has_id)
        return false;
    /* An op this broker does not know (a newer client's) is most likely a
     * request of its own: answering under its id spares it a timeout. */
    if (!info)
        return op == PROTO_OP_NONE;
    return info->answer == PROTO_ANSWER_RESULT || info->answer == PROTO_ANSWER_PONG ||
           info->answer == PROTO_ANSWER_RESULT_IF_ID;
}

enum kind { K_UINT, K_STR, K_BOOL, K_ANY, K_STRS };

#define K_UINT_TEXT "an unsigned integer"
#define K_STR_TEXT  "a string"
#define K_BOOL_TEXT "a boolean"
#define K_ANY_TEXT  "a msgpack value"
#define K_STRS_TEXT "an array of strings"

struct field_desc {
    const char *name;
    uint8_t name_len;
    uint8_t kind;
    uint16_t off; /* offset of the member in struct proto_msg */
    uint32_t bit;
    const char *why_type, *why_missing, *why_dup;
};

#define FIELD(key, bit_, kind_, member)                                                            \
    {                                                                                              \
        key, sizeof(key) - 1, kind_, offsetof(struct proto_msg, member), bit_,                     \
            "field '" key "' must be " kind_##_TEXT, "missing field '" key "'",                    \
            "duplicate field '" key "'"                                                            \
    }

/* In bit order, which is also the order encode writes them in. */
static const struct field_desc fields[] = {
    FIELD("id", PROTO_F_ID, K_UINT, id),
    FIELD("min_version", PROTO_F_MIN_VERSION, K_UINT, min_version),
    FIELD("max_version", PROTO_F_MAX_VERSION, K_UINT, max_version),
    FIELD("version", PROTO_F_VERSION, K_UINT, version),
    FIELD("name", PROTO_F_NAME, K_STR, name),
    FIELD("command", PROTO_F_COMMAND, K_STR, command),
    FIELD("commands", PROTO_F_COMMANDS, K_STRS, commands),
    FIELD("payload", PROTO_F_PAYLOAD, K_ANY, payload),
    FIELD("timeout_ms", PROTO_F_TIMEOUT_MS, K_UINT, timeout_ms),
    FIELD("ok", PROTO_F_OK, K_BOOL, ok),
    FIELD("data", PROTO_F_DATA, K_ANY, data),
    FIELD("code", PROTO_F_CODE, K_STR, code),
    FIELD("message", PROTO_F_MESSAGE, K_STR, message),
    FIELD("server_code", PROTO_F_SERVER_CODE, K_STR, server_code),
    FIELD("type", PROTO_F_TYPE, K_STR, type),
    FIELD("match", PROTO_F_MATCH, K_STR, match),
    FIELD("event", PROTO_F_EVENT, K_STR, event),
    FIELD("reason", PROTO_F_REASON, K_STR, reason),
    FIELD("max_frame", PROTO_F_MAX_FRAME, K_UINT, max_frame),
    FIELD("state", PROTO_F_STATE, K_STR, state),
    FIELD("dir", PROTO_F_DIR, K_STR, dir),
    FIELD("peer", PROTO_F_PEER, K_UINT, peer),
    FIELD("time_us", PROTO_F_TIME_US, K_UINT, time_us),
    FIELD("frame", PROTO_F_FRAME, K_ANY, frame),
    FIELD("team_cluster_id", PROTO_F_TEAM_CLUSTER_ID, K_STR, team_cluster_id),
    FIELD("max_timeout_ms", PROTO_F_MAX_TIMEOUT_MS, K_UINT, max_timeout_ms),
    FIELD("volatile", PROTO_F_VOLATILE, K_BOOL, is_volatile),
    FIELD("about", PROTO_F_ABOUT, K_STR, about),
};

#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

static const struct field_desc *find_field(const struct proto_span *key)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (fields[i].name_len == key->len && memcmp(fields[i].name, key->ptr, key->len) == 0)
            return &fields[i];
    return NULL;
}

#define MEMBER(m, f, type)  ((type *)(void *)((char *)(m) + (f)->off))
#define CMEMBER(m, f, type) ((const type *)(const void *)((const char *)(m) + (f)->off))

/* Reads the value of field f at the cursor into m. 0, PROTO_E_BAD_REQUEST
 * (wrong type; the value has been skipped), or PROTO_E_BAD_FRAME. */
static int decode_field(struct proto_mp_cursor *c, const struct field_desc *f, struct proto_msg *m)
{
    struct proto_mp_cursor at = *c;
    struct proto_mp_value v;
    int rc;

    if (f->kind == K_ANY)
        return proto_mp_skip(c, MEMBER(m, f, struct proto_span));
    if (f->kind == K_STRS) {
        struct proto_span raw;
        if ((rc = proto_mp_skip(c, &raw)) < 0)
            return rc;
        struct proto_mp_cursor in;
        proto_mp_cursor_init(&in, raw.ptr, raw.len);
        if (proto_mp_next(&in, &v) < 0 || v.type != PROTO_MP_ARRAY)
            return PROTO_E_BAD_REQUEST;
        uint32_t count = v.v.count;
        for (uint32_t i = 0; i < count; i++)
            if (proto_mp_next(&in, &v) < 0 || v.type != PROTO_MP_STR)
                return PROTO_E_BAD_REQUEST;
        *MEMBER(m, f, struct proto_span) = raw;
        m->commands_count = count;
        return 0;
    }
    if ((rc = proto_mp_next(c, &v)) < 0)
        return rc;
    switch (f->kind) {
    case K_UINT:
        if (proto_mp_value_u64(&v, MEMBER(m, f, uint64_t)) == 0)
            return 0;
        break;
    case K_STR:
        if (v.type == PROTO_MP_STR) {
            *MEMBER(m, f, struct proto_span) = v.v.str;
            return 0;
        }
        break;
    case K_BOOL:
        if (v.type == PROTO_MP_BOOL) {
            *MEMBER(m, f, bool) = v.v.b;
            return 0;
        }
        break;
    default:
        break;
    }
    /* Wrong type: step over the whole value (it may be a container). */
    *c = at;
    if ((rc = proto_mp_skip(c, NULL)) < 0)
        return rc;
    return PROTO_E_BAD_REQUEST;
}

int proto_msg_decode(const struct proto_span *frame, struct proto_msg *m, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    memset(m, 0, sizeof *m);
    *why = NULL;

    struct proto_mp_cursor c;
    struct proto_mp_value v;
    proto_mp_cursor_init(&c, frame->ptr, frame->len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_MAP) {
        *why = "frame is not a msgpack map";
        return PROTO_E_BAD_FRAME;
    }

    int err = 0;
    const char *err_why = NULL;
    bool have_op = false, unknown_op = false;
    for (uint32_t i = 0; i < v.v.count; i++) {
        struct proto_mp_value key;
        if (proto_mp_next(&c, &key) < 0)
            goto bad_frame;
        if (key.type != PROTO_MP_STR) { /* only without the reader's check */
            if (proto_mp_skip(&c, NULL) < 0)
                goto bad_frame;
            continue;
        }
        if (key.v.str.len == 2 && memcmp(key.v.str.ptr, "op", 2) == 0) {
            struct proto_mp_cursor at = c;
            struct proto_mp_value op;
            if (proto_mp_next(&c, &op) < 0)
                goto bad_frame;
            if (op.type != PROTO_MP_STR) {
                c = at; /* step over the whole value, containers included */
                if (proto_mp_skip(&c, NULL) < 0)
                    goto bad_frame;
            }
            if (have_op) {
                if (!err)
                    err = PROTO_E_BAD_REQUEST, err_why = "duplicate field 'op'";
            } else if (op.type != PROTO_MP_STR) {
                if (!err)
                    err = PROTO_E_BAD_REQUEST, err_why = "field 'op' must be a string";
            } else {
                m->op = proto_op_from_name((const char *)op.v.str.ptr, op.v.str.len);
                if (m->op == PROTO_OP_NONE)
                    unknown_op = true;
            }
            have_op = true;
            continue;
        }
        const struct field_desc *f = find_field(&key.v.str);
        if (!f) {
            if (proto_mp_skip(&c, NULL) < 0)
                goto bad_frame;
            continue;
        }
        if (m->fields & f->bit) {
            if (proto_mp_skip(&c, NULL) < 0)
                goto bad_frame;
            if (!err)
                err = PROTO_E_BAD_REQUEST, err_why = f->why_dup;
            continue;
        }
        int rc = decode_field(&c, f, m);
        if (rc == PROTO_E_BAD_FRAME)
            goto bad_frame;
        if (rc < 0) {
            if (!err)
                err = rc, err_why = f->why_type;
            continue;
        }
        m->fields |= f->bit;
    }
    if (!proto_mp_at_end(&c)) {
        *why = "trailing bytes after the map";
        return PROTO_E_BAD_FRAME;
    }
    if (unknown_op) {
        *why = "unknown op";
        return PROTO_E_UNKNOWN_OP;
    }
    if (!have_op) {
        *why = proto_msg_why_no_op;
        return PROTO_E_UNKNOWN_OP;
    }
    if (err) {
        *why = err_why;
        return err;
    }
    return 0;

bad_frame:
    *why = "truncated msgpack";
    return PROTO_E_BAD_FRAME;
}

const char proto_msg_why_no_op[] = "missing field 'op'";

static const char *missing(enum proto_field bit)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (fields[i].bit == (uint32_t)bit)
            return fields[i].why_missing;
    return "missing field";
}

static bool span_eq(struct proto_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

int proto_msg_check(const struct proto_msg *m, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (m->op <= PROTO_OP_NONE || m->op >= PROTO_OP__COUNT) {
        *why = "unknown op";
        return PROTO_E_UNKNOWN_OP;
    }
    uint32_t need = ops[m->op].required;
    uint32_t lack = need & ~m->fields;
    if (lack) {
        *why = missing((enum proto_field)(lack & -lack)); /* lowest bit first */
        return PROTO_E_BAD_REQUEST;
    }
    switch (m->op) {
    case PROTO_OP_SUBSCRIBE:
    case PROTO_OP_UNSUBSCRIBE:
        if (!span_eq(m->match, "all") && !span_eq(m->match, "exact") &&
            !span_eq(m->match, "prefix")) {
            *why = "field 'match' must be \"all\", \"exact\" or \"prefix\"";
            return PROTO_E_BAD_REQUEST;
        }
        if (!span_eq(m->match, "all") && !proto_msg_has(m, PROTO_F_TYPE)) {
            *why = "missing field 'type' (required unless match is \"all\")";
            return PROTO_E_BAD_REQUEST;
        }
        break;
    case PROTO_OP_RESULT:
        /* A failed result must say why. (A reply may leave `code` out: the
         * broker then uses HandlerError, see PROTOCOL.md.) */
        if (!m->ok && !proto_msg_has(m, PROTO_F_CODE)) {
            *why = "missing field 'code' (required when ok is false)";
            return PROTO_E_BAD_REQUEST;
        }
        break;
    default:
        break;
    }
    return 0;
}

/* --- encoding --- */

static int put_field(struct proto_buf *out, const struct field_desc *f, const struct proto_msg *m)
{
    int rc = proto_mp_put_str(out, f->name, f->name_len);
    if (rc < 0)
        return rc;
    switch (f->kind) {
    case K_UINT:
        return proto_mp_put_uint(out, *CMEMBER(m, f, uint64_t));
    case K_BOOL:
        return proto_mp_put_bool(out, *CMEMBER(m, f, bool));
    case K_STR: {
        const struct proto_span *s = CMEMBER(m, f, struct proto_span);
        return proto_mp_put_str(out, (const char *)s->ptr, s->len);
    }
    default: { /* K_ANY, K_STRS: raw msgpack, verbatim */
        const struct proto_span *s = CMEMBER(m, f, struct proto_span);
        if (s->len == 0) /* present but empty: the only honest encoding is nil */
            return f->kind == K_STRS ? proto_mp_put_array(out, 0) : proto_mp_put_nil(out);
        return proto_mp_put_raw(out, s->ptr, s->len);
    }
    }
}

int proto_msg_encode(struct proto_buf *out, const struct proto_msg *m, uint32_t max_frame)
{
    const char *op = proto_op_name(m->op);
    if (!op)
        return PROTO_E_UNKNOWN_OP;
    if (max_frame == 0)
        max_frame = PROTO_DEFAULT_MAX_FRAME;

    size_t start = out->len;
    uint32_t n = 1;
    for (size_t i = 0; i < N_FIELDS; i++)
        n += (m->fields & fields[i].bit) != 0;

    static const uint8_t zero[PROTO_LENGTH_PREFIX];
    int rc = proto_mp_put_raw(out, zero, sizeof zero);
    if (rc == 0)
        rc = proto_mp_put_map(out, n);
    if (rc == 0)
        rc = proto_mp_put_str(out, "op", 2);
    if (rc == 0)
        rc = proto_mp_put_cstr(out, op);
    for (size_t i = 0; rc == 0 && i < N_FIELDS; i++) {
        if (m->fields & fields[i].bit)
            rc = put_field(out, &fields[i], m);
        if (rc == 0 && out->len - start - PROTO_LENGTH_PREFIX > max_frame)
            rc = PROTO_E_FRAME_TOO_LARGE; /* stop early, not after copying megabytes */
    }
    if (rc < 0) {
        out->len = start;
        return rc;
    }
    size_t body = out->len - start - PROTO_LENGTH_PREFIX;
    if (body > max_frame) {
        out->len = start;
        return PROTO_E_FRAME_TOO_LARGE;
    }
    uint8_t *p = out->data + start;
    p[0] = (uint8_t)(body >> 24);
    p[1] = (uint8_t)(body >> 16);
    p[2] = (uint8_t)(body >> 8);
    p[3] = (uint8_t)body;
    return 0;
}

/* --- commands --- */

void proto_msg_commands(const struct proto_msg *m, struct proto_str_iter *it)
{
    struct proto_mp_value v;
    it->left = 0;
    proto_mp_cursor_init(&it->cur, m->commands.ptr, m->commands.len);
    if (!proto_msg_has(m, PROTO_F_COMMANDS) || m->commands.len == 0)
        return;
    if (proto_mp_next(&it->cur, &v) == 0 && v.type == PROTO_MP_ARRAY)
        it->left = v.v.count;
}

bool proto_str_iter_next(struct proto_str_iter *it, struct proto_span *s)
{
    struct proto_mp_value v;
    if (it->left == 0)
        return false;
    if (proto_mp_next(&it->cur, &v) < 0 || v.type != PROTO_MP_STR) {
        it->left = 0;
        return false;
    }
    it->left--;
    *s = v.v.str;
    return true;
}
