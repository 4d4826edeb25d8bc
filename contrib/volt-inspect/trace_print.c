#include "trace_print.h"

#include <string.h>

#include "proto/errors.h"
#include "util.h"

static bool span_eq(struct proto_span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

char *trace_direction(const struct proto_msg *m, char *buf, size_t size)
{
    unsigned long long peer = (unsigned long long)m->peer;

    if (span_eq(m->dir, "local-in"))
        snprintf(buf, size, "c%llu -> broker", peer);
    else if (span_eq(m->dir, "local-out"))
        snprintf(buf, size, "broker -> c%llu", peer);
    else if (span_eq(m->dir, "upstream-in"))
        snprintf(buf, size, "server -> broker");
    else if (span_eq(m->dir, "upstream-out"))
        snprintf(buf, size, "broker -> server");
    else
        snprintf(buf, size, "%.*s", (int)m->dir.len, m->dir.ptr ? (const char *)m->dir.ptr : "");
    return buf;
}

/* An upstream packet's text, one line: control characters as \n, \xNN. */
static void put_packet_text(FILE *f, struct proto_span s)
{
    for (uint32_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

static bool frame_is_str(const struct proto_msg *m, struct proto_span *text)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;

    proto_mp_cursor_init(&c, m->frame.ptr, m->frame.len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_STR)
        return false;
    *text = v.v.str;
    return true;
}

static int print_json_of(FILE *f, struct jsonline *jl, const void *data, size_t len,
                         struct proto_buf *scratch)
{
    char err[160];
    int rc;

    proto_buf_reset(scratch);
    rc = jsonline_from_frame(jl, data, len, scratch, err, sizeof(err));
    if (rc < 0) {
        fprintf(f, "(%s)", err);
        return rc;
    }
    fwrite(scratch->data, 1, scratch->len, f);
    return 0;
}

int trace_print(FILE *f, struct jsonline *jl, const struct proto_span *body,
                const struct proto_msg *m, bool json, struct proto_buf *scratch)
{
    char t[40], dir[64];
    struct proto_span text;
    int rc;

    if (json) {
        rc = print_json_of(f, jl, body->ptr, body->len, scratch);
        fputc('\n', f);
        fflush(f);
        return rc;
    }
    if (m->op == PROTO_OP_TRACE) {
        inspect_time_iso(m->time_us, 6, t, sizeof(t));
        trace_direction(m, dir, sizeof(dir));
    } else {
        inspect_time_iso(inspect_now_us(), 6, t, sizeof(t));
        snprintf(dir, sizeof(dir), "(monitor)");
    }
    fprintf(f, "%s  %-*s ", t, TRACE_DIR_WIDTH, dir);
    if (m->op != PROTO_OP_TRACE)
        rc = print_json_of(f, jl, body->ptr, body->len, scratch);
    else if (!proto_msg_has(m, PROTO_F_FRAME))
        rc = (fputs("-", f), 0);
    else if (frame_is_str(m, &text))
        rc = (put_packet_text(f, text), 0);
    else
        rc = print_json_of(f, jl, m->frame.ptr, m->frame.len, scratch);
    fputc('\n', f);
    fflush(f);
    return rc;
}
