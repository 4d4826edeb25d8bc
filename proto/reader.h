/* Incremental frame reader (hiredis' reader is the model).
 *
 * Feed it bytes in any split; ask it for the next frame. It knows nothing
 * of sockets. A frame is handed out as a span into the reader's own buffer,
 * valid until the next call on the reader; its body has been validated as
 * one msgpack map within the limits, so decoders can trust its structure.
 *
 * Errors come in two kinds:
 * - recoverable (PROTO_E_BAD_FRAME): the length prefix was fine, the body
 *   was not valid msgpack / not a map / over a limit. That frame is dropped
 *   and the stream is still in sync; the caller answers with an error and
 *   keeps reading. A length prefix of 0 (empty body) is of this kind too:
 *   the stream is still in sync, only 4 bytes are dropped.
 * - fatal (PROTO_E_FRAME_TOO_LARGE, PROTO_E_NOMEM): the stream can no
 *   longer be trusted; every later call returns the same error.
 */
#ifndef PROTO_READER_H
#define PROTO_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "limits.h"
#include "msgpack.h"

struct proto_reader;

/* limits may be NULL for the defaults; they are copied, a field of 0 means
 * its default, and max_frame is capped at PROTO_HARD_MAX_FRAME. Caller frees
 * with proto_reader_free. NULL on out of memory.
 * Memory: one buffer, grown as needed, never allocated again once it has
 * reached the connection's working size; a buffer grown past 1 MiB (by a
 * big frame) is released when it next becomes empty. */
struct proto_reader *proto_reader_new(const struct proto_limits *limits);
void proto_reader_free(struct proto_reader *r);

/* Copies len bytes in. 0, or a fatal error. */
int proto_reader_feed(struct proto_reader *r, const void *data, size_t len);

/* Zero-copy feeding: get at least `hint` writable bytes (fewer never; the
 * reader may grow up to max_frame + prefix), read(2) into them, then
 * commit what was read. 0 or PROTO_E_NOMEM. hint 0 means 4096. *len may be
 * more than hint (all the free room); commit at most *len. Like feed, this
 * may move buffered bytes, so it ends the life of the last frame. */
int proto_reader_space(struct proto_reader *r, size_t hint, void **ptr, size_t *len);
void proto_reader_commit(struct proto_reader *r, size_t n);
/* Lending: frames parsed straight from the caller's bytes, so that a
 * connection between frames needs no buffer of its own (a server with
 * many idle clients reads them all through one). Only when nothing is
 * buffered (proto_reader_pending() is 0); then proto_reader_next() as
 * usual, its frames pointing into data, and proto_reader_unlend() before
 * data goes away: it copies what is left (the start of a frame) into the
 * reader's own buffer, made with room for `room` more bytes (the caller's
 * next read: one allocation, not a second to grow it). No feed() or
 * space() in between.
 * lend: 0, PROTO_E_INTERNAL when bytes are buffered, or the fatal error.
 * unlend: 0 or PROTO_E_NOMEM (then fatal). */
int proto_reader_lend(struct proto_reader *r, const void *data, size_t len);
int proto_reader_unlend(struct proto_reader *r, size_t room);
/* Lets the own buffer go when nothing is buffered (not while lent): for a
 * reader that lends, the buffer is only for a frame that straddles reads. */
void proto_reader_trim(struct proto_reader *r);

/* 1: *frame is the body (msgpack map) of the next frame.
 * 0: need more bytes.
 * <0: error, see above; proto_reader_error() says why in English. */
int proto_reader_next(struct proto_reader *r, struct proto_span *frame);

bool proto_reader_fatal(const struct proto_reader *r);
const char *proto_reader_error(const struct proto_reader *r);
/* Bytes buffered but not yet returned as frames. */
size_t proto_reader_pending(const struct proto_reader *r);
/* Bytes the reader's buffer takes (its capacity), for memory accounting. */
size_t proto_reader_capacity(const struct proto_reader *r);

#endif
