/* Emits kept while the upstream session is not ready.
 *
 * socket.io-client buffers what a program emits while it is disconnected
 * and sends it on reconnect; the seed's emit() relies on that, so a
 * notification made during a blip is not lost. The broker does the same
 * for its clients: an emit that finds the session down is kept here, in
 * order, and sent once the session is registered again (the router drains
 * it, and while anything is kept new emits queue behind it, so the order
 * of one client's emits is never changed).
 *
 * A FIFO of (owner, type, data) records in one buffer, bounded in bytes:
 * a push that does not fit fails (the caller reports EmitFailed) rather
 * than dropping an older record. The owner is the caller's tag for who
 * pushed a record (for charging its memory); it may be forgotten (the
 * client left: its emits are still sent, charged to nobody). Pure: no I/O.
 */
#ifndef LOCAL_EMITQ_H
#define LOCAL_EMITQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msgpack.h"

struct emitq;

int emitq_new(struct emitq **out, size_t max_bytes);
/* Frees the queue and whatever it still holds. NULL is fine. */
void emitq_free(struct emitq *q);

/* Bytes a record of this type and data takes (what it is charged). */
size_t emitq_record_size(const struct proto_span *type, const struct proto_span *data);

/* Appends a copy. 0; -ENOSPC when it does not fit in max_bytes; -ENOMEM. */
int emitq_push(struct emitq *q, void *owner, const struct proto_span *type,
               const struct proto_span *data);
/* The oldest record (spans valid until the next push or pop). false: empty. */
bool emitq_peek(const struct emitq *q, void **owner, struct proto_span *type,
                struct proto_span *data);
void emitq_pop(struct emitq *q);
/* Records of `owner` are kept, with no owner from now on. */
void emitq_forget_owner(struct emitq *q, void *owner);

size_t emitq_bytes(const struct emitq *q);
size_t emitq_count(const struct emitq *q);

#endif
