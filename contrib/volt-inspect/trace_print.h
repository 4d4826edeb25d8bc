/* Lines of `volt-inspect monitor`.
 *
 * For people, a trace frame becomes
 *
 *     2026-11-28T04:00:00.123456Z  c3 -> broker      {"op":"request",...}
 *     2026-11-28T04:00:00.123900Z  broker -> server  42["request",...]
 *
 * time (the broker's, µs), a direction column naming both ends (local
 * clients as cN, the VOLT server as "server"), then the frame: a local
 * frame as JSON, an upstream packet as its text (control characters
 * escaped so it stays one line). With json set, every frame is printed
 * unchanged as one JSON line instead.
 */
#ifndef INSPECT_TRACE_PRINT_H
#define INSPECT_TRACE_PRINT_H

#include <stdbool.h>
#include <stdio.h>

#include "jsonline.h"
#include "proto/buf.h"
#include "proto/msg.h"
#include "proto/msgpack.h"

/* Width of the direction column. */
#define TRACE_DIR_WIDTH 17

/* The direction column text of a trace ("c3 -> broker"; the raw dir for
 * an unknown one) into buf. Returns buf. */
char *trace_direction(const struct proto_msg *m, char *buf, size_t size);

/* Prints one received frame (body, decoded as m) as one line. A trace
 * frame in the format above; any other frame (events to this monitor
 * connection) with the current time and "(monitor)" in the direction
 * column. scratch is reused text space. 0, or a negative code after
 * printing an error line instead. */
int trace_print(FILE *f, struct jsonline *jl, const struct proto_span *body,
                const struct proto_msg *m, bool json, struct proto_buf *scratch);

#endif
