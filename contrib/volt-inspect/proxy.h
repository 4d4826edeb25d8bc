/* The interposer: `socat -v` for the broker's protocol.
 *
 * The proxy listens on a socket of its own; for every client that connects
 * there it opens a connection to the broker and copies bytes both ways,
 * unchanged and in order. Beside the copy it feeds the same bytes into one
 * proto_reader per direction and turns each complete frame, each connect
 * and close, and each error into a trace event (trace_line.h): cN is the
 * proxy's own number for the connection, named by the client's credentials
 * (SO_PEERCRED at accept) and by the name in its hello once seen. Events
 * go to the caller (on_event), or are printed as trace lines:
 *
 *     2026-11-28T04:00:00.123000Z  c1 svc[4711] -> broker  {"op":"hello",...}
 *     2026-11-28T04:00:00.124000Z  broker -> c1 svc[4711]  {"op":"welcome",...}
 *
 * The printing never decides what is forwarded: a frame that does not parse
 * is shown as an error line and its bytes go through all the same, and once
 * a direction's stream can no longer be followed (a length over the hard
 * maximum) the proxy says so once and keeps copying blindly. The broker
 * sees exactly what the client sent, so the proxy can be put in front of a
 * misbehaving client to watch what goes wrong.
 *
 * End of stream is passed on as a half close (shutdown(SHUT_WR)) once the
 * bytes before it are written, so either side may finish first; a session
 * ends when both directions have ended or a socket fails.
 *
 * Back-pressure: a direction whose unwritten bytes exceed PROXY_MAX_QUEUED
 * stops reading its source until the destination catches up, so a slow
 * reader on one side slows the writer on the other instead of growing
 * memory without bound. One poll() loop, no threads.
 */
#ifndef INSPECT_PROXY_H
#define INSPECT_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trace_line.h"

#define PROXY_MAX_QUEUED (1u << 20)
#define PROXY_READ_CHUNK 65536u

struct proxy;

struct proxy_opts {
    const char *listen_path; /* NULL: no listener (sessions come from proxy_adopt) */
    const char *broker_path; /* where each accepted client is connected to */
    /* Where events go; NULL: printed on `out` (trace_format, json or
     * not), flushed per line. The event and its bytes are valid during
     * the call only. */
    void (*on_event)(void *ctx, const struct trace_ev *ev);
    void *ctx;
    FILE *out;
    bool json;
    uint64_t (*now_us)(void); /* wall clock for the time column; NULL = real clock */
};

/* Creates the proxy and, with listen_path, its listening socket (a stale
 * socket file left there is replaced; a live one is an error). 0 and *out
 * (freed with proxy_free), or -errno with an English explanation in msg.
 * The strings in opts must outlive the proxy. */
int proxy_new(const struct proxy_opts *opts, struct proxy **out, char *msg, size_t size);
/* Closes every session and the listener, and removes the socket file it
 * created. NULL is fine. */
void proxy_free(struct proxy *p);

/* Adds a session over two connected stream sockets (ownership of both fds
 * passes to the proxy, also on failure). Returns the session number (c1 is
 * 1) or -ENOMEM. */
int proxy_adopt(struct proxy *p, int client_fd, int broker_fd);

/* One round of the loop: waits up to timeout_ms (-1 forever) for sockets
 * to be ready, then accepts, reads, prints and writes what it can.
 * 0 (also when interrupted by a signal), or -errno when polling fails. */
int proxy_run_once(struct proxy *p, int timeout_ms);

/* Sessions currently open. */
size_t proxy_session_count(const struct proxy *p);
/* The most bytes one direction of one session has held waiting for its
 * destination so far: at most PROXY_MAX_QUEUED + PROXY_READ_CHUNK. */
size_t proxy_peak_queued(const struct proxy *p);

#endif
