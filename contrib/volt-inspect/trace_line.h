/* One trace line: what monitor, proxy and a replayed capture all print.
 *
 * The three sources see different things (the broker's trace frames, the
 * bytes between a client and the broker, records of a file) but describe
 * the same events, so each turns what it sees into a struct trace_ev and
 * this module alone turns an event into a line. For people:
 *
 *   2026-11-28T04:00:00.123456Z  c3 files-svc[4711] -> broker  {"op":"register",...}
 *   2026-11-28T04:00:00.123900Z  broker -> server              42/control,["daemon:handlers",...]
 *   2026-11-28T04:00:00.130000Z  c3 files-svc[4711] + connected  uid 1000, gid 1000
 *   2026-11-28T04:00:01.000000Z  c3 files-svc[4711] - closed  by the client
 *   2026-11-28T04:00:01.000000Z  c3 files-svc[4711] -> broker !  bad frame: ...
 *
 * time in UTC with microseconds; who: the client as cID NAME[PID] (what is
 * known of it), the VOLT server as "server", with "->" pointing the way the
 * frame went, "+"/"-" for a connection opened/closed and "!" for a frame
 * that could not be read; then the frame (a local frame as JSON, an
 * upstream packet as its text with control characters escaped). With json,
 * one object per line with the same facts as fields:
 *
 *   {"time":"...","time_us":N,"kind":"frame","side":"local","dir":"in",
 *    "peer":3,"name":"files-svc","pid":4711,"uid":1000,"frame":{...}}
 *
 * (name, pid, uid only when known; "text" instead of "frame" for open,
 * close and error events.)
 */
#ifndef INSPECT_TRACE_LINE_H
#define INSPECT_TRACE_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/msg.h"

enum trace_kind {
    TRACE_FRAME = 1, /* a frame or an upstream packet */
    TRACE_OPEN = 2,  /* a client connected (proxy); data: text */
    TRACE_CLOSE = 3, /* a connection ended; data: the reason */
    TRACE_ERROR = 4, /* bytes that are not a frame (proxy); data: why */
};

enum trace_side {
    TRACE_LOCAL = 0,    /* between a local client and the broker */
    TRACE_UPSTREAM = 1, /* between the broker and the VOLT server */
};

enum trace_dir {
    TRACE_IN = 0,  /* toward the broker */
    TRACE_OUT = 1, /* from the broker */
};

struct trace_ev {
    uint64_t time_us; /* µs since the epoch */
    uint8_t kind, side, dir;
    uint64_t peer;      /* the client (monitor: the broker's id; proxy: its connection number) */
    const char *name;   /* the client's name; NULL or "" when unknown */
    long long pid, uid; /* -1 when unknown */
    /* TRACE_FRAME: a local frame's body (one msgpack map) or an upstream
     * packet (one msgpack str for text, bin for binary), as the broker's
     * trace frames carry them. Other kinds: UTF-8 text. */
    const uint8_t *data;
    size_t len;
};

/* What a frame is about, for filters and completion: the op (for an
 * upstream packet, its Socket.IO event name, e.g. "server:request"), the
 * command and the message type, each "" when there is none. */
struct trace_what {
    char op[64];
    char command[257];
    char type[257];
};

/* Fills w from ev (all "" for events that are not frames). */
void trace_what(const struct trace_ev *ev, struct trace_what *w);

/* The text of the who column ("c3 files-svc[4711] -> broker"). Returns
 * buf. */
char *trace_who(const struct trace_ev *ev, char *buf, size_t size);

/* Appends the line for ev (newline included) to out. 0 or PROTO_E_NOMEM;
 * a frame with no JSON form is shown as "(why)" in its place. */
int trace_format(const struct trace_ev *ev, bool json, struct proto_buf *out);

/* A trace frame from the broker (op "trace", decoded as m) as an event;
 * the name fields are left unknown. 0, or PROTO_E_BAD_REQUEST when its
 * dir is not one of the four. */
int trace_from_msg(const struct proto_msg *m, struct trace_ev *ev);

/* "frame", "open", "close", "error"; "local", "upstream"; "in", "out". */
const char *trace_kind_name(int kind);
const char *trace_side_name(int side);
const char *trace_dir_name(int dir);

#endif
