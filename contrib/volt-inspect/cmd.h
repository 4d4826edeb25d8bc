/* The modes of volt-inspect and the options they share.
 *
 * main.c parses the command line into one struct inspect_opts and calls
 * one cmd_*() function; each returns the process exit status (util.h).
 */
#ifndef INSPECT_CMD_H
#define INSPECT_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

#define INSPECT_DEFAULT_TIMEOUT_MS 30000
#define INSPECT_DEFAULT_NAME       "volt-inspect"

struct inspect_opts {
    const char *socket;   /* --socket; NULL = the default path */
    const char *name;     /* hello name */
    const char *listen;   /* proxy --listen */
    const char **execute; /* -e JSON, in order (points into argv) */
    size_t n_execute;
    int timeout_ms; /* --timeout: connect + answers (oneshot, status, monitor's start) */
    int wait_ms;    /* --wait: after end of input, for outstanding answers (call) */
    bool no_hello;
    bool oneshot;
    bool follow;
    bool verbose;
    bool raw;
    bool no_auto_id;
    bool json;
};

int cmd_call(const struct inspect_opts *o);
int cmd_proxy(const struct inspect_opts *o);
int cmd_monitor(const struct inspect_opts *o);
int cmd_status(const struct inspect_opts *o);

/* Shared by the client modes: resolves the socket path (--socket, else
 * conn_default_path), connects, and unless --no-hello sends hello and
 * waits for the welcome until deadline_ms, calling on_welcome with it
 * (may be NULL). INSPECT_EXIT_OK and *out (conn_free it), or the exit
 * status after printing why on stderr. */
int cmd_connect(const struct inspect_opts *o, uint64_t deadline_ms, struct conn **out,
                void (*on_welcome)(void *ctx, const struct proto_span *body,
                                   const struct proto_msg *m),
                void *ctx);

/* Exit status for a negative code from conn_hello / conn_call_simple /
 * conn_wait_frame: TIMEOUT -> 4, BROKER_GONE and stream errors -> 3,
 * codes of the broker's error frames -> 1. */
int cmd_exit_for(int code);

/* "volt-inspect: <what>: CODE: message" (+ server code) on stderr for a
 * failed result or an error frame, plus a hint for the usual codes. */
void cmd_report_failure(const char *what, const struct proto_msg *m);

#endif
