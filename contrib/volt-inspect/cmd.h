/* The verbs of volt-inspect and the options they share.
 *
 * cli.c parses the command line into one struct inspect_opts (checking each
 * option against the verb's row in its table) and calls the verb's cmd_*()
 * function; each returns the process exit status (util.h).
 */
#ifndef INSPECT_CMD_H
#define INSPECT_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "trace_sink.h"

#define INSPECT_DEFAULT_TIMEOUT_MS 30000
#define INSPECT_DEFAULT_NAME       "volt-inspect"
#define INSPECT_MAX_LIST           64 /* --match, --type, --prefix given at most this often */

/* One subscription filter of `subscribe` (--type / --prefix, in order). */
struct inspect_sub {
    bool prefix;
    const char *text;
};

struct inspect_opts {
    const char *verb;     /* the verb's canonical name */
    const char *socket;   /* --socket; NULL = the default path */
    const char *name;     /* hello name */
    const char *listen;   /* proxy --listen */
    const char **execute; /* -e JSON, in order (points into argv) */
    size_t n_execute;
    char **args; /* positional arguments after the verb */
    size_t n_args;
    int timeout_ms;   /* --timeout: connect + answers; request: the request's own timeout */
    bool timeout_set; /* --timeout was given */
    int wait_ms;      /* --wait: after end of input, for outstanding answers (session) */
    bool no_hello;
    bool oneshot;
    bool follow;
    bool verbose;
    bool raw;
    bool no_auto_id;
    bool json;
    bool pretty;  /* --pretty: indent JSON even when stdout is not a terminal */
    bool compact; /* --compact: one line even on a terminal */
    bool no_edit; /* --no-edit: no line editing even on a terminal */
    /* trace (monitor, proxy) */
    const char *matches[INSPECT_MAX_LIST];
    size_t n_matches;
    long long count;    /* --count N; -1 = no limit */
    long long duration; /* --duration MS; -1 = no limit */
    const char *since;  /* --since WHEN (for --read) */
    const char *write;  /* --write FILE */
    const char *read;   /* --read FILE */
    /* subscribe */
    struct inspect_sub subs[INSPECT_MAX_LIST];
    size_t n_subs;
    /* serve */
    const char *reply; /* --reply JSON */
    char **exec_argv;  /* --exec PROG ARG... (NULL-terminated, points into argv) */
    int jobs;          /* --jobs N */
    int time_limit_ms; /* --time-limit MS; 0 = the call's own timeout_ms */
};

int cmd_session(const struct inspect_opts *o);
int cmd_proxy(const struct inspect_opts *o);
int cmd_monitor(const struct inspect_opts *o);
int cmd_status(const struct inspect_opts *o);
int cmd_request(const struct inspect_opts *o);
int cmd_emit(const struct inspect_opts *o);
int cmd_subscribe(const struct inspect_opts *o);
int cmd_clients(const struct inspect_opts *o);
int cmd_handlers(const struct inspect_opts *o);
int cmd_metrics(const struct inspect_opts *o);
int cmd_serve(const struct inspect_opts *o);
/* monitor/proxy --read FILE: replays a capture through the same filters
 * and printer. */
int cmd_replay(const struct inspect_opts *o);

/* Shared by the client modes: resolves the socket path (--socket, else
 * conn_default_path), connects, and unless --no-hello sends hello and
 * waits for the welcome until deadline_ms, calling on_welcome with it
 * (may be NULL). INSPECT_EXIT_OK and *out (conn_free it), or the exit
 * status after printing why on stderr. */
int cmd_connect(const struct inspect_opts *o, uint64_t deadline_ms, struct conn **out,
                void (*on_welcome)(void *ctx, const struct proto_span *body,
                                   const struct proto_msg *m),
                void *ctx);

/* Sends m (its id set to `id`) and waits until deadline_ms for the frame
 * that answers it (a result, or an error frame with that id), passing
 * every other frame to on_other (may be NULL). INSPECT_EXIT_OK with the
 * answer in *answer / *a (valid until the next read on c), or an exit
 * status after printing why ("volt-inspect: what: ..."). */
int cmd_roundtrip(struct conn *c, struct proto_msg *m, uint64_t id, uint64_t deadline_ms,
                  const char *what, void (*on_other)(void *ctx, const struct proto_span *frame),
                  void *ctx, struct proto_span *answer, struct proto_msg *a);

/* Whether a frame received answers our request `id`: a result or pong
 * under it; an error frame only from a version 1 broker (one without
 * `about`): from version 2 on an error frame never answers a request (its
 * id may be a call id, a different numbering). */
bool cmd_answers_id(const struct proto_msg *m, uint64_t id);

/* The trace sink's options from the command line's (--json, --match,
 * --count, --duration, --write): monitor, proxy and replay show traces
 * alike. */
struct trace_sink_opts cmd_trace_sink_opts(const struct inspect_opts *o);

/* Exit status for a negative code from conn_hello / conn_call_simple /
 * conn_wait_frame: TIMEOUT -> 4, BROKER_GONE and stream errors -> 3,
 * codes of the broker's error frames -> 1. */
int cmd_exit_for(int code);

/* "volt-inspect: <what>: CODE: message" (+ server code) on stderr for a
 * failed result or an error frame, plus a hint for the usual codes. */
void cmd_report_failure(const char *what, const struct proto_msg *m);

/* Whether JSON written to stdout is indented (a terminal, or --pretty;
 * never with --compact). */
bool cmd_pretty_stdout(const struct inspect_opts *o);

#endif
