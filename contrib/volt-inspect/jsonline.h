/* JSON lines <-> frames: the text side of volt-inspect.
 *
 * A person or a script writes one JSON object per line; the broker speaks
 * length-prefixed msgpack maps. This module turns one line into one whole
 * frame and one frame body back into one line, with binary values in the
 * {"$bin":"<base64>"} form both ways (proto/json.h, marker mode), so what
 * volt-inspect prints can be pasted back in unchanged.
 *
 * Automatic ids: an op answered by a `result` under the client's `id`
 * (status, ping, request, register, unregister, subscribe, unsubscribe,
 * credential, monitor) gets `"id":N` inserted right after its `op` when
 * the line has none. N counts up from 1 and always stays above every id
 * the user typed, so automatic ids never collide with typed ones. On
 * request (--oneshot, which needs an answer to wait for) every other op
 * gets one too (emit, unknown ops); otherwise they are left alone, since an
 * emit with an id changes what the broker answers. `hello` and `reply`
 * never get one: hello has no id and a reply's id is the broker's call id.
 *
 * Lines that are empty, only whitespace, or start with '#' are comments:
 * nothing is sent.
 */
#ifndef INSPECT_JSONLINE_H
#define INSPECT_JSONLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/msg.h"

struct jsonline;

/* What a converted line will make the broker do, for the caller's
 * bookkeeping of outstanding answers. */
struct jsonline_sent {
    enum proto_op op; /* PROTO_OP_NONE when absent or not a known op */
    bool has_id;      /* the frame carries an integer id >= 0 */
    bool id_assigned; /* ... and this module inserted it */
    uint64_t id;
    bool expects_answer; /* a result/pong/error with this id will come */
};

/* NULL on out of memory. Freed with jsonline_free. Defaults: automatic ids
 * on (not for emit), op required, max frame PROTO_DEFAULT_MAX_FRAME. */
struct jsonline *jsonline_new(void);
void jsonline_free(struct jsonline *jl);

/* Automatic ids on/off; `all_ops` gives them to every op but hello and
 * reply (--oneshot). */
void jsonline_set_auto_id(struct jsonline *jl, bool on, bool all_ops);
/* Raw mode: any JSON object is sent as typed; no `op` check, no ids added. */
void jsonline_set_raw(struct jsonline *jl, bool raw);
/* The broker's max_frame from its welcome; bigger frames are refused here
 * with a clear message instead of being fatal for the connection. */
void jsonline_set_max_frame(struct jsonline *jl, uint32_t max_frame);
/* The id the next automatic assignment will use. */
uint64_t jsonline_next_id(const struct jsonline *jl);

/* True for the ops whose `id` is the client's and is answered by one
 * result (or pong). `all_ops` as above. */
bool jsonline_op_takes_id(enum proto_op op, bool all_ops);

/* Converts one line (a trailing "\n" or "\r\n" is fine) into one whole
 * frame (length prefix + msgpack map) appended to out.
 * Returns 0 when a frame was appended, 1 for a comment/blank line (nothing
 * appended), or a negative code with an English reason in err:
 * PROTO_E_BAD_FRAME (not JSON, not an object), PROTO_E_BAD_REQUEST (no
 * string `op`), PROTO_E_NOT_JSON (a value with no msgpack form),
 * PROTO_E_FRAME_TOO_LARGE, PROTO_E_NOMEM. On error out is unchanged and
 * no id is used up. *sent is filled on success (may be NULL). */
int jsonline_to_frame(struct jsonline *jl, const char *line, size_t len, struct proto_buf *out,
                      struct jsonline_sent *sent, char *err, size_t err_size);

/* Appends the JSON text of one frame body (one msgpack value; no newline)
 * to out. 0, or a negative code with a reason in err; out unchanged then. */
int jsonline_from_frame(struct jsonline *jl, const void *body, size_t len, struct proto_buf *out,
                        char *err, size_t err_size);

#endif
