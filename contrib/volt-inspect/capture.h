/* Capture files: a trace kept to attach to a bug report, replayed later.
 *
 * `monitor --write FILE` and `proxy --write FILE` write every event they
 * show (after --match) as a record; `--read FILE` replays the records
 * through the same filters and printer, so a replay prints what was shown
 * live, byte for byte, and with --json the same objects. The records carry
 * everything the line needs (time, side, direction, the client's id, name,
 * pid and uid, the frame's bytes), so no broker is needed to read one.
 *
 * The format (all integers big endian), version 1:
 *
 *   header   8 bytes  "VOLTCAP\n"
 *            u16      version (1)
 *            u16      length of the rest of the header (0 in version 1;
 *                     a reader skips what it does not know)
 *   record   u32      length of the rest of the record (30 + name + data)
 *            u64      time, microseconds since the epoch
 *            u8       kind: 1 frame, 2 open, 3 close, 4 error
 *            u8       side: 0 local, 1 upstream
 *            u8       dir: 0 toward the broker, 1 from it
 *            u8       flags: bit 0 pid known, bit 1 uid known
 *            u64      peer (the client's id; 0 for the server's side)
 *            u32      pid
 *            u32      uid
 *            u16      name length, then the name (UTF-8, no NUL)
 *            ...      data: the frame (a local frame's msgpack map, or an
 *                     upstream packet as one msgpack str or bin), or the
 *                     text of an open, close or error event
 *
 * A record is at most CAPTURE_MAX_RECORD bytes; a reader stops at a
 * truncated or longer one and says where.
 */
#ifndef INSPECT_CAPTURE_H
#define INSPECT_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/buf.h"
#include "trace_line.h"

#define CAPTURE_MAGIC      "VOLTCAP\n"
#define CAPTURE_VERSION    1
#define CAPTURE_FIXED      30u /* record bytes after the length, before name and data */
#define CAPTURE_MAX_RECORD (CAPTURE_FIXED + 65535u + (64u << 20))

/* Writes the header. 0 or -errno. */
int capture_write_header(FILE *f);
/* Writes one record (a name longer than 65535 bytes is cut). 0 or -errno. */
int capture_write(FILE *f, const struct trace_ev *ev);

/* Reads and checks the header. 0, or -1 with an English reason in err
 * (not a capture file, a newer version, truncated). */
int capture_read_header(FILE *f, char *err, size_t size);
/* Reads the next record into rec (reused) and points ev into it (the name
 * NUL-terminated in rec too). 1, 0 at the clean end of the file, or -1
 * with a reason in err (truncated, too long, a bad kind). */
int capture_read(FILE *f, struct proto_buf *rec, struct trace_ev *ev, char *err, size_t size);

#endif
