/* The status map (PROTOCOL.md, "Status map") for people.
 *
 * Reads the map straight from its msgpack bytes and prints a short report:
 * broker, upstream state and why, counters in a grid, one table row per
 * client. Every field is optional ("-" when missing) and counters are
 * printed in the order the broker sends them, so a newer broker's extra
 * counters show up without a change here; unknown top-level sections are
 * printed as JSON under their own name. `volt-inspect status --json`
 * gives the exact map instead.
 */
#ifndef INSPECT_STATUS_PRINT_H
#define INSPECT_STATUS_PRINT_H

#include <stddef.h>
#include <stdio.h>

/* data[0..len) is one validated msgpack value (the `data` of the status
 * result). 0, PROTO_E_BAD_FRAME when it is not a map, PROTO_E_NOMEM. */
int status_print(FILE *f, const void *data, size_t len);

/* "512B", "1.5K", "2.0M", "3.1G": a byte count for people. Returns buf. */
char *status_format_bytes(unsigned long long n, char *buf, size_t size);

#endif
