#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "proto/errors.h"
#include "util.h"

int cmd_exit_for(int code)
{
    switch (code) {
    case PROTO_E_TIMEOUT:
        return INSPECT_EXIT_TIMEOUT;
    case PROTO_E_BROKER_GONE:
    case PROTO_E_FRAME_TOO_LARGE:
        return INSPECT_EXIT_CONNECT;
    default:
        return INSPECT_EXIT_FAILED;
    }
}

int cmd_connect(const struct inspect_opts *o, uint64_t deadline_ms, struct conn **out,
                void (*on_welcome)(void *ctx, const struct proto_span *body,
                                   const struct proto_msg *m),
                void *ctx)
{
    enum conn_path_source source = CONN_PATH_ARGUMENT;
    char path[512], msg[1024];
    struct proto_span welcome;
    struct proto_msg m;
    int rc;

    if (o->socket) {
        snprintf(path, sizeof(path), "%s", o->socket);
    } else if ((rc = conn_default_path(path, sizeof(path), &source)) < 0) {
        (void)rc;
        inspect_error("no broker socket given and the default path is too long; use --socket "
                      "PATH or $VOLT_BROKER_SOCKET");
        return INSPECT_EXIT_CONNECT;
    }
    if (conn_open(path, source, out, msg, sizeof(msg)) < 0) {
        inspect_error("%s", msg);
        return INSPECT_EXIT_CONNECT;
    }
    if (o->no_hello)
        return INSPECT_EXIT_OK;
    rc = conn_hello(*out, o->name, deadline_ms, &welcome, &m, msg, sizeof(msg));
    if (rc < 0) {
        inspect_error("%s: %s", path, msg);
        conn_free(*out);
        *out = NULL;
        return cmd_exit_for(rc);
    }
    if (on_welcome)
        on_welcome(ctx, &welcome, &m);
    return INSPECT_EXIT_OK;
}

static bool span_is(struct proto_span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

void cmd_report_failure(const char *what, const struct proto_msg *m)
{
    const char *hint = NULL;

    if (span_is(m->code, "PermissionDenied"))
        hint = "this needs the broker's own uid or root";
    else if (span_is(m->code, "UnknownOp"))
        hint = "the broker does not know this op (an older broker?)";
    else if (span_is(m->code, "SOCKET_NOT_READY"))
        hint = "the broker is not connected to the VOLT server; see `volt-inspect status`";
    fflush(stdout);
    fprintf(stderr, INSPECT_PROG ": %s: %.*s: %.*s", what, (int)(m->code.len ? m->code.len : 7),
            m->code.len ? (const char *)m->code.ptr : "unknown", (int)m->message.len,
            m->message.len ? (const char *)m->message.ptr : "");
    if (proto_msg_has(m, PROTO_F_SERVER_CODE))
        fprintf(stderr, " (server code %.*s)", (int)m->server_code.len,
                (const char *)m->server_code.ptr);
    fputc('\n', stderr);
    if (hint)
        fprintf(stderr, "  hint: %s\n", hint);
}

int cmd_roundtrip(struct conn *c, struct proto_msg *m, uint64_t id, uint64_t deadline_ms,
                  const char *what, void (*on_other)(void *ctx, const struct proto_span *frame),
                  void *ctx, struct proto_span *answer, struct proto_msg *a)
{
    const char *why;
    int rc;

    m->id = id;
    m->fields |= PROTO_F_ID;
    rc = conn_send_msg(c, m);
    if (rc < 0) {
        inspect_error("%s: cannot send: %s", what,
                      rc == PROTO_E_FRAME_TOO_LARGE ? "the frame is too large"
                                                    : conn_gone_reason(c));
        return rc == PROTO_E_FRAME_TOO_LARGE ? INSPECT_EXIT_USAGE : INSPECT_EXIT_CONNECT;
    }
    for (;;) {
        rc = conn_wait_frame(c, deadline_ms, answer);
        if (rc == PROTO_E_BAD_FRAME) {
            inspect_error("the broker sent a bad frame (%s); skipped", conn_reader_error(c));
            continue;
        }
        if (rc == PROTO_E_TIMEOUT) {
            inspect_error("%s: no answer in time (--timeout)", what);
            return INSPECT_EXIT_TIMEOUT;
        }
        if (rc == PROTO_E_BROKER_GONE) {
            inspect_error("%s: %s before answering", what, conn_gone_reason(c));
            return INSPECT_EXIT_CONNECT;
        }
        if (rc < 0) {
            inspect_error("%s: cannot follow the broker's stream: %s", what, conn_reader_error(c));
            return INSPECT_EXIT_CONNECT;
        }
        memset(a, 0, sizeof(*a));
        if (proto_msg_decode(answer, a, &why) == 0) {
            if (cmd_answers_id(a, id))
                return INSPECT_EXIT_OK;
            /* An error frame without an id is about a frame of ours that
             * could not be read, and this is the only one in flight. */
            if (a->op == PROTO_OP_ERROR && !proto_msg_has(a, PROTO_F_ID))
                return INSPECT_EXIT_OK;
        }
        if (on_other)
            on_other(ctx, answer);
    }
}

bool cmd_answers_id(const struct proto_msg *m, uint64_t id)
{
    if (!proto_msg_has(m, PROTO_F_ID) || m->id != id)
        return false;
    if (m->op == PROTO_OP_RESULT || m->op == PROTO_OP_PONG)
        return true;
    return m->op == PROTO_OP_ERROR && !proto_msg_has(m, PROTO_F_ABOUT);
}

bool cmd_pretty_stdout(const struct inspect_opts *o)
{
    if (o->compact)
        return false;
    return o->pretty || isatty(STDOUT_FILENO);
}

struct trace_sink_opts cmd_trace_sink_opts(const struct inspect_opts *o)
{
    return (struct trace_sink_opts){.json = o->json,
                                    .matches = o->matches,
                                    .n_matches = o->n_matches,
                                    .count = o->count,
                                    .duration_ms = o->duration,
                                    .write = o->write};
}
