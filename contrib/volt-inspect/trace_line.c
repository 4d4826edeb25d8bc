#include "trace_line.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "proto/msgpack.h"
#include "util.h"

/* Width of the who column: room for "c12 a-service-name[123456] -> broker". */
#define WHO_WIDTH 32

const char *trace_kind_name(int kind)
{
    switch (kind) {
    case TRACE_FRAME:
        return "frame";
    case TRACE_OPEN:
        return "open";
    case TRACE_CLOSE:
        return "close";
    case TRACE_ERROR:
        return "error";
    default:
        return "?";
    }
}

const char *trace_side_name(int side)
{
    return side == TRACE_UPSTREAM ? "upstream" : "local";
}

const char *trace_dir_name(int dir)
{
    return dir == TRACE_OUT ? "out" : "in";
}

static bool span_eq(struct proto_span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

int trace_from_msg(const struct proto_msg *m, struct trace_ev *ev)
{
    static const struct {
        const char *dir;
        uint8_t side, way;
    } dirs[] = {{"local-in", TRACE_LOCAL, TRACE_IN},
                {"local-out", TRACE_LOCAL, TRACE_OUT},
                {"upstream-in", TRACE_UPSTREAM, TRACE_IN},
                {"upstream-out", TRACE_UPSTREAM, TRACE_OUT}};

    memset(ev, 0, sizeof(*ev));
    ev->kind = TRACE_FRAME;
    ev->time_us = m->time_us;
    ev->peer = m->peer;
    ev->pid = ev->uid = -1;
    ev->data = m->frame.ptr;
    ev->len = m->frame.len;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (span_eq(m->dir, dirs[i].dir)) {
            ev->side = dirs[i].side;
            ev->dir = dirs[i].way;
            return 0;
        }
    }
    return PROTO_E_BAD_REQUEST;
}

/* ---- what a frame is about ---- */

static void copy_span(char *dst, size_t size, struct proto_span s)
{
    size_t n = s.len < size - 1 ? s.len : size - 1;

    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

/* A local frame: its op, command and type fields. */
static void what_local(const struct trace_ev *ev, struct trace_what *w)
{
    struct proto_span body = {ev->data, (uint32_t)ev->len};
    struct proto_msg m = {0};
    const char *why;
    const char *op;

    if (proto_msg_decode(&body, &m, &why) < 0 && m.op == PROTO_OP_NONE)
        return;
    op = proto_op_name(m.op);
    if (op)
        snprintf(w->op, sizeof(w->op), "%s", op);
    if (proto_msg_has(&m, PROTO_F_COMMAND))
        copy_span(w->command, sizeof(w->command), m.command);
    if (proto_msg_has(&m, PROTO_F_TYPE))
        copy_span(w->type, sizeof(w->type), m.type);
}

/* Member `key` (a JSON string) of the object token obj, decoded into dst. */
static void json_member(const struct proto_json_doc *d, int obj, const char *key, char *dst,
                        size_t size)
{
    struct proto_buf s = PROTO_BUF_INIT;
    int t;

    if (obj < 0 || d->tok[obj].type != PROTO_JSON_OBJECT)
        return;
    t = proto_json_find(d, (uint32_t)obj, key);
    if (t >= 0 && d->tok[t].type == PROTO_JSON_STRING &&
        proto_json_string(d, (uint32_t)t, &s, NULL) == 0)
        copy_span(dst, size, (struct proto_span){s.data, (uint32_t)s.len});
    proto_buf_free(&s);
}

/* An upstream text packet: `4` `2` [/nsp,] [ackid] ["event", {...}]. The
 * event name is the op; the command and type are its data's. */
static void what_upstream(const struct trace_ev *ev, struct trace_what *w)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    struct proto_json_doc doc;
    const char *p, *end, *open;

    proto_mp_cursor_init(&c, ev->data, ev->len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_STR || v.v.str.len < 2)
        return;
    p = (const char *)v.v.str.ptr;
    end = p + v.v.str.len;
    if (p[0] != '4' || (p[1] != '2' && p[1] != '5'))
        return; /* not a Socket.IO EVENT (or BINARY_EVENT) */
    open = memchr(p, '[', (size_t)(end - p));
    if (!open)
        return;
    proto_json_doc_init(&doc);
    if (proto_json_parse(&doc, open, (size_t)(end - open), 0, NULL) == 0 &&
        doc.tok[0].type == PROTO_JSON_ARRAY && doc.tok[0].count >= 1 &&
        doc.tok[1].type == PROTO_JSON_STRING) {
        struct proto_buf s = PROTO_BUF_INIT;
        if (proto_json_string(&doc, 1, &s, NULL) == 0)
            copy_span(w->op, sizeof(w->op), (struct proto_span){s.data, (uint32_t)s.len});
        proto_buf_free(&s);
        if (doc.tok[0].count >= 2) {
            int data = (int)doc.tok[1].next;
            json_member(&doc, data, "command", w->command, sizeof(w->command));
            json_member(&doc, data, "type", w->type, sizeof(w->type));
        }
    }
    proto_json_doc_free(&doc);
}

void trace_what(const struct trace_ev *ev, struct trace_what *w)
{
    memset(w, 0, sizeof(*w));
    if (ev->kind != TRACE_FRAME || !ev->data)
        return;
    if (ev->side == TRACE_LOCAL)
        what_local(ev, w);
    else
        what_upstream(ev, w);
}

/* ---- the line ---- */

static void client_label(const struct trace_ev *ev, char *buf, size_t size)
{
    int n = snprintf(buf, size, "c%llu", (unsigned long long)ev->peer);

    if (n < 0 || (size_t)n >= size)
        return;
    if (ev->name && ev->name[0])
        n += snprintf(buf + n, size - (size_t)n, " %s", ev->name);
    else if (ev->pid >= 0)
        n += snprintf(buf + n, size - (size_t)n, " ");
    if (ev->pid >= 0 && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "[%lld]", ev->pid);
}

char *trace_who(const struct trace_ev *ev, char *buf, size_t size)
{
    char client[200];

    if (ev->side == TRACE_UPSTREAM && ev->kind == TRACE_FRAME) {
        snprintf(buf, size, "%s", ev->dir == TRACE_IN ? "server -> broker" : "broker -> server");
        return buf;
    }
    client_label(ev, client, sizeof(client));
    switch (ev->kind) {
    case TRACE_OPEN:
        snprintf(buf, size, "%s + connected", client);
        break;
    case TRACE_CLOSE:
        snprintf(buf, size, "%s - closed", client);
        break;
    default:
        if (ev->dir == TRACE_IN)
            snprintf(buf, size, "%s -> broker%s", client, ev->kind == TRACE_ERROR ? " !" : "");
        else
            snprintf(buf, size, "broker -> %s%s", client, ev->kind == TRACE_ERROR ? " !" : "");
    }
    return buf;
}

/* An upstream packet's text, one line: control characters as \n, \xNN. */
static int put_packet_text(struct proto_buf *out, struct proto_span s)
{
    char esc[8];
    int rc = 0;

    for (uint32_t i = 0; i < s.len && rc == 0; i++) {
        uint8_t c = s.ptr[i];
        if (c == '\n')
            rc = proto_buf_append(out, "\\n", 2);
        else if (c == '\r')
            rc = proto_buf_append(out, "\\r", 2);
        else if (c < 0x20 || c == 0x7f)
            rc = proto_buf_append(out, esc, (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c));
        else
            rc = proto_buf_append_byte(out, c);
    }
    return rc;
}

static bool is_str(const struct trace_ev *ev, struct proto_span *text)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;

    proto_mp_cursor_init(&c, ev->data, ev->len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_STR)
        return false;
    *text = v.v.str;
    return true;
}

/* A JSON string of text that should be UTF-8; text that is not is
 * replaced by a note rather than failing the whole line. */
static int put_json_text(struct proto_buf *out, const uint8_t *s, size_t len)
{
    if (proto_json_put_string(out, (const char *)s, len) == 0)
        return 0;
    /* Not UTF-8: say so rather than fail the line. */
    return proto_json_put_string(out, "(not UTF-8)", 11);
}

/* The frame as JSON (json: as a JSON value; text: the same, or an upstream
 * packet's text). A frame with no JSON form is shown as "(why)". */
static int put_frame(const struct trace_ev *ev, bool json, struct proto_buf *out)
{
    struct proto_json_error je = {0};
    struct proto_span text;
    size_t at = out->len;
    int rc;

    if (!ev->data || ev->len == 0)
        return proto_buf_append(out, json ? "null" : "-", json ? 4 : 1);
    if (!json && ev->side == TRACE_UPSTREAM && is_str(ev, &text))
        return put_packet_text(out, text);
    rc = proto_msgpack_to_json(ev->data, ev->len, out, NULL, &je);
    if (rc == PROTO_E_NOMEM)
        return rc;
    if (rc < 0) {
        char why[200];
        out->len = at;
        snprintf(why, sizeof(why), "(%s)", je.text[0] ? je.text : proto_error_text(rc));
        return json ? put_json_text(out, (const uint8_t *)why, strlen(why))
                    : proto_buf_append(out, why, strlen(why));
    }
    return 0;
}

static int appendf(struct proto_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int appendf(struct proto_buf *out, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return 0;
    return proto_buf_append(out, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static int format_json(const struct trace_ev *ev, struct proto_buf *out)
{
    char t[40];
    int rc;

    inspect_time_iso(ev->time_us, 6, t, sizeof(t));
    rc = appendf(out,
                 "{\"time\":\"%s\",\"time_us\":%llu,\"kind\":\"%s\",\"side\":\"%s\",\"dir\":\"%s\"",
                 t, (unsigned long long)ev->time_us, trace_kind_name(ev->kind),
                 trace_side_name(ev->side), trace_dir_name(ev->dir));
    if (!(ev->side == TRACE_UPSTREAM && ev->kind == TRACE_FRAME)) {
        rc |= appendf(out, ",\"peer\":%llu", (unsigned long long)ev->peer);
        if (ev->name && ev->name[0]) {
            rc |= proto_buf_append(out, ",\"name\":", 8);
            rc |= put_json_text(out, (const uint8_t *)ev->name, strlen(ev->name));
        }
        if (ev->pid >= 0)
            rc |= appendf(out, ",\"pid\":%lld", ev->pid);
        if (ev->uid >= 0)
            rc |= appendf(out, ",\"uid\":%lld", ev->uid);
    }
    if (ev->kind == TRACE_FRAME) {
        rc |= proto_buf_append(out, ",\"frame\":", 9);
        rc |= put_frame(ev, true, out);
    } else {
        rc |= proto_buf_append(out, ",\"text\":", 8);
        rc |= put_json_text(out, ev->data ? ev->data : (const uint8_t *)"", ev->len);
    }
    rc |= proto_buf_append(out, "}\n", 2);
    return rc ? PROTO_E_NOMEM : 0;
}

int trace_format(const struct trace_ev *ev, bool json, struct proto_buf *out)
{
    char t[40], who[300];
    int rc;

    if (json)
        return format_json(ev, out);
    inspect_time_iso(ev->time_us, 6, t, sizeof(t));
    trace_who(ev, who, sizeof(who));
    rc = appendf(out, "%s  %-*s  ", t, WHO_WIDTH, who);
    if (ev->kind == TRACE_FRAME)
        rc |= put_frame(ev, false, out);
    else if (ev->data)
        rc |= put_packet_text(out, (struct proto_span){ev->data, (uint32_t)ev->len});
    rc |= proto_buf_append_byte(out, '\n');
    return rc ? PROTO_E_NOMEM : 0;
}
