/* The bytes queued for the broker, written in order and never moved.
 *
 * A client that sends faster than the broker reads keeps a deep queue
 * (K requests of 16 KiB in flight is over a megabyte) that the socket
 * takes a piece at a time. Moving the rest to the front once half was
 * written copied much of the queue again (a fifth of the client's memcpy
 * at 16 KiB, K=100; 3 % of its CPU). So there are two buffers: the one
 * being written, from `pos`, and the one frames are appended to
 * meanwhile. When the first is written out, the second takes its place:
 * one write of both (sendmsg, two iovecs) and no copy beyond the one that
 * encodes a frame. Both keep their capacity, so after a burst the queue
 * may hold up to twice what it held at once (the old single buffer, grown
 * before it compacted, could too).
 */
#ifndef VOLT_OUTQ_H
#define VOLT_OUTQ_H

#include <stddef.h>
#include <sys/uio.h>

#include "proto/buf.h"

struct volt__outq {
    struct proto_buf head; /* being written, from pos */
    size_t pos;
    struct proto_buf tail; /* appended to while head is partly written */
};

void volt__outq_init(struct volt__outq *q);
void volt__outq_free(struct volt__outq *q);
/* Drops what is queued; the buffers are kept for the next connection. */
void volt__outq_reset(struct volt__outq *q);

/* Where the next frame goes: encode into it, and on failure set its len
 * back to what it was. Valid until the next call on q. */
struct proto_buf *volt__outq_tail(struct volt__outq *q);

/* Bytes queued and not yet written. */
size_t volt__outq_pending(const struct volt__outq *q);

/* The queued bytes in order, in at most two pieces: the number of iovecs
 * filled (0 when nothing is queued). */
int volt__outq_peek(const struct volt__outq *q, struct iovec iov[2]);

/* n bytes from the front were written (at most volt__outq_pending()). */
void volt__outq_consume(struct volt__outq *q, size_t n);

#endif
