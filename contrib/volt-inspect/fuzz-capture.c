/* Fuzz what --read does with a file: the capture reader, then every
 * record through the trace line (text and JSON), what it is about, and a
 * filter. A capture is input from anywhere (a bug report's attachment):
 * nothing in it may crash the reader or the printer, and every record the
 * reader accepts must print. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "trace_filter.h"
#include "trace_line.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_buf rec = PROTO_BUF_INIT, line = PROTO_BUF_INIT;
    struct trace_filter *filter = trace_filter_new();
    struct trace_ev ev;
    struct trace_what w;
    char err[200];
    FILE *f;

    if (size == 0 || !filter)
        goto out;
    f = fmemopen((void *)data, size, "rb");
    CHECK(f);
    CHECK(trace_filter_add(filter, "op=re*,dir=in", err, sizeof(err)) == 0);
    CHECK(trace_filter_add(filter, "side=upstream,command!=x", err, sizeof(err)) == 0);
    if (capture_read_header(f, err, sizeof(err)) == 0) {
        int rc;
        while ((rc = capture_read(f, &rec, &ev, err, sizeof(err))) == 1) {
            proto_buf_reset(&line);
            CHECK(trace_format(&ev, false, &line) == 0);
            CHECK(line.len > 0 && line.data[line.len - 1] == '\n');
            proto_buf_reset(&line);
            CHECK(trace_format(&ev, true, &line) == 0);
            CHECK(line.len > 0 && line.data[line.len - 1] == '\n');
            trace_what(&ev, &w);
            CHECK(strlen(w.op) < sizeof(w.op) && strlen(w.command) < sizeof(w.command));
            (void)trace_filter_match(filter, &ev);
        }
        CHECK(rc == 0 || err[0]);
    }
    fclose(f);
out:
    trace_filter_free(filter);
    proto_buf_free(&rec);
    proto_buf_free(&line);
    return 0;
}
