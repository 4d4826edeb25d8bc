/* `monitor --read FILE` / `proxy --read FILE`: a capture (capture.h)
 * replayed through the same sink as a live trace, so what it prints is
 * what was shown when it was written. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "cmd.h"
#include "trace_sink.h"
#include "util.h"

/* --since: an ISO time in UTC (fraction optional), or +TIME after the
 * first record. *at_us is absolute, or (relative) an offset. 0 or -1. */
static int parse_since(const char *text, uint64_t *at_us, bool *relative)
{
    struct tm tm = {0};
    unsigned long frac = 0;
    int digits = 0;
    const char *p;
    char *end;
    time_t secs;

    if (text[0] == '+') {
        uint64_t ms;
        if (inspect_parse_duration(text + 1, &ms) < 0)
            return -1;
        *at_us = ms * 1000u;
        *relative = true;
        return 0;
    }
    *relative = false;
    p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.') {
        p++;
        frac = strtoul(p, &end, 10);
        digits = (int)(end - p);
        if (digits < 1 || digits > 6)
            return -1;
        for (int i = digits; i < 6; i++)
            frac *= 10u;
        p = end;
    }
    if (strcmp(p, "Z") != 0 && *p)
        return -1;
    secs = timegm(&tm);
    if (secs < 0)
        return -1;
    *at_us = (uint64_t)secs * 1000000u + frac;
    return 0;
}

int cmd_replay(const struct inspect_opts *o)
{
    struct trace_sink_opts so = cmd_trace_sink_opts(o);
    so.write = NULL; /* replaying never writes a capture */
    so.replay = true;
    struct proto_buf rec = PROTO_BUF_INIT;
    struct trace_sink *sink = NULL;
    uint64_t since = 0;
    bool relative = false, first = true;
    char err[300];
    FILE *f;
    int rc = INSPECT_EXIT_OK;

    if (o->since && parse_since(o->since, &since, &relative) < 0) {
        inspect_error("--since wants a UTC time (2026-11-28T04:00:00Z) or +TIME (+30s), not '%s'",
                      o->since);
        return INSPECT_EXIT_USAGE;
    }
    f = strcmp(o->read, "-") == 0 ? stdin : fopen(o->read, "rb");
    if (!f) {
        inspect_error("cannot read %s: %s", o->read, strerror(errno));
        return INSPECT_EXIT_USAGE;
    }
    if (capture_read_header(f, err, sizeof(err)) < 0) {
        inspect_error("%s: %s", o->read, err);
        rc = INSPECT_EXIT_USAGE;
        goto out;
    }
    if (trace_sink_new(&so, &sink, err, sizeof(err)) < 0) {
        inspect_error("%s", err);
        rc = INSPECT_EXIT_USAGE;
        goto out;
    }
    for (;;) {
        struct trace_ev ev;
        int n = capture_read(f, &rec, &ev, err, sizeof(err));
        if (n == 0)
            break;
        if (n < 0) {
            inspect_error("%s: %s", o->read, err);
            rc = INSPECT_EXIT_USAGE;
            break;
        }
        if (first && relative)
            since += ev.time_us;
        first = false;
        if (ev.time_us < since)
            continue;
        if (trace_sink_emit(sink, &ev))
            break;
    }
out:
    trace_sink_free(sink);
    proto_buf_free(&rec);
    if (f != stdin)
        fclose(f);
    return rc;
}
