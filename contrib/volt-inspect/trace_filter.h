/* --match: which trace lines to show, as `busctl monitor --match`.
 *
 * A filter is a list of alternatives (one per --match); a line is shown
 * when it matches any of them, and all lines when there are none. An
 * alternative is KEY=VALUE terms joined by commas, all of which must hold
 * (KEY!=VALUE: must not). Keys:
 *
 *   client   the client: cN or N (its id), else a pattern on its name
 *   name     a pattern on the client's name
 *   pid, uid, peer   numbers (peer: the client's id)
 *   dir      in (toward the broker) or out (from it); also local-in,
 *            local-out, upstream-in, upstream-out as the broker says them
 *   side     local or upstream
 *   op       a pattern on the op (upstream: the Socket.IO event name)
 *   command  a pattern on the command (request, call, register's none)
 *   type     a pattern on the message type (emit, message, subscribe)
 *   kind     frame, open, close or error
 *
 * Patterns are shell globs (fnmatch: * ? [..]). Lines of the VOLT server's
 * side have no client: a client, name, pid, uid or peer term never matches
 * them.
 */
#ifndef INSPECT_TRACE_FILTER_H
#define INSPECT_TRACE_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "trace_line.h"

struct trace_filter;

/* NULL on out of memory. An empty filter matches everything. */
struct trace_filter *trace_filter_new(void);
void trace_filter_free(struct trace_filter *f);

/* Adds one alternative. 0, or -1 with an English reason in err (an
 * unknown key, a term without '=', a bad number or direction). */
int trace_filter_add(struct trace_filter *f, const char *spec, char *err, size_t size);

bool trace_filter_match(const struct trace_filter *f, const struct trace_ev *ev);

#endif
