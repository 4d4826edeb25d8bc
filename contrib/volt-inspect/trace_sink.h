/* Where trace events go: --match, then the printer and the capture file,
 * then --count and --duration. monitor, proxy and --read each feed their
 * events into one of these, which is what makes them print the same lines
 * and keep the same files.
 */
#ifndef INSPECT_TRACE_SINK_H
#define INSPECT_TRACE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "trace_line.h"

struct trace_sink_opts {
    FILE *out; /* lines go here (flushed per line); NULL: stdout */
    bool json;
    const char *const *matches; /* --match alternatives */
    size_t n_matches;
    long long count;       /* stop after this many lines shown; -1: no limit */
    long long duration_ms; /* stop this long after the start; -1: no limit */
    const char *write;     /* capture file to write (NULL: none) */
    /* Replaying: --duration counts in the records' own time from the first
     * one shown, not on the wall clock. */
    bool replay;
};

struct trace_sink;

/* 0 and *out, or -1 with an English reason in err (a bad --match, a
 * capture file that cannot be created). */
int trace_sink_new(const struct trace_sink_opts *o, struct trace_sink **out, char *err,
                   size_t size);
void trace_sink_free(struct trace_sink *s);

/* Shows ev if it matches. Returns true once the sink wants no more
 * (--count reached, --duration over, or the capture could not be written:
 * see trace_sink_failed). */
bool trace_sink_emit(struct trace_sink *s, const struct trace_ev *ev);
/* True once done (also when --duration ran out on the wall clock). */
bool trace_sink_done(struct trace_sink *s);
/* Milliseconds until --duration ends (for poll), -1 without one. */
int trace_sink_timeout_ms(const struct trace_sink *s);
/* True when writing the capture failed (said on stderr once). */
bool trace_sink_failed(const struct trace_sink *s);
/* Lines shown so far. */
long long trace_sink_shown(const struct trace_sink *s);

#endif
