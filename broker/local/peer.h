/* A local peer: one accepted client connection.
 *
 * The peer owns the socket handle, the frame reader and the outbound
 * queue; it knows nothing of routing. Frames read are handed to the owner
 * through `peer_frame_cb`; frames to send are encoded straight into the
 * outbound buffer (no allocation per frame once the buffers are warm).
 *
 * Output uses two buffers: one being written by libuv, one collecting the
 * next batch. When the write completes they swap. peer_send() only
 * queues: the batch is written once per loop turn, right before the loop
 * waits for events (see peer.c), so everything sent to a peer in one turn
 * goes out in one write(2). The bytes queued to a peer are bounded: past
 * `max_queue_bytes` the peer is a slow consumer and is closed (the policy
 * of dbus-broker and NATS: nobody waits for it).
 *
 * Lifetime: the owner calls peer_close(); the close callback (after libuv
 * has released the handle) is the last thing the peer reports, and the
 * peer frees itself after it returns.
 */
#ifndef LOCAL_PEER_H
#define LOCAL_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "local/quota.h"
#include "proto/limits.h"
#include "proto/msg.h"

struct peer;

struct peer_callbacks {
    /* One frame body (validated msgpack map), valid during the call. The
     * callback may close the peer. */
    void (*frame)(struct peer *p, const struct proto_span *frame);
    /* A frame the reader rejected but the stream is still in sync. */
    void (*bad_frame)(struct peer *p, int code, const char *why);
    /* The connection is over (EOF, error, fatal frame error, slow consumer,
     * or peer_close()); called once, before the handle is released. The
     * owner drops every reference to the peer here. */
    void (*closing)(struct peer *p, const char *reason);
    /* For monitors: every frame as it is queued (body only). May be NULL. */
    void (*sent)(struct peer *p, const uint8_t *body, size_t len);
};

struct peer_limits {
    struct proto_limits frame;
    uint32_t max_queue_bytes;
    /* A frame must arrive whole within this of its first byte (0: no
     * limit): a client cannot hold a read buffer by stalling part-way. */
    uint32_t frame_timeout_ms;
};

struct peer_flusher;
struct timer_queue;

/* All peers of one owner, for shutdown and counting. A peer is in the list
 * from peer_new until its handle is released. Zero-initialised by the
 * owner; it needs no teardown of its own: the loop handle that writes the
 * peers' batches exists while the list has peers and is closed when the
 * last one is released, so running the loop after closing every peer
 * leaves nothing of it behind (uv_loop_close() succeeds). */
struct peer_list {
    struct peer *head;
    uint32_t count;
    /* The owner's: bytes held for each peer (read buffer, output buffers)
     * are charged to it; when a limit is over, the client it names is
     * closed (see quota.h). NULL: no accounting. */
    struct quota *quota;
    struct peer_flusher *flusher; /* private to peer.c */
};
/* First/next peer in the list; closing peers included. */
struct peer *peer_list_first(const struct peer_list *l);
struct peer *peer_list_next(const struct peer *p);

/* Takes an accepted pipe handle's fd; reads SO_PEERCRED. NULL on error
 * with *err (negative errno); the caller then closes the client handle. */
struct peer *peer_new(uv_loop_t *loop, uv_pipe_t *accepted_from, struct peer_list *list,
                      uint64_t id, const struct peer_limits *limits,
                      const struct peer_callbacks *cb, void *owner, int *err);

/* Starts reading. */
int peer_start(struct peer *p);

/* The peer's account in its list's quota (admitted by the owner with
 * quota_admit(); released by the peer when it closes). */
struct quota_client *peer_quota(struct peer *p);

/* Closes the peer with an `error` frame (code, message) unless cleared
 * before timeout_ms: e.g. a connection that does not say hello in time.
 * One such deadline per peer; setting it again moves it. */
void peer_set_deadline(struct peer *p, uint32_t timeout_ms, int code, const char *message);
void peer_clear_deadline(struct peer *p);

/* True when the peer's primary group or one of its supplementary groups
 * (SO_PEERGROUPS, read at accept) is gid. */
bool peer_in_group(const struct peer *p, gid_t gid);

/* Encodes and queues one frame, written before the loop next waits for
 * events. 0; PROTO_E_FRAME_TOO_LARGE (nothing queued, peer still fine);
 * PROTO_E_BROKER_GONE (the peer is closing); or PROTO_E_LIMIT_EXCEEDED when
 * the peer is over its queue limit and is being closed as a slow consumer. */
int peer_send(struct peer *p, const struct proto_msg *m);

/* Queues the frame, flushes, then closes (for fatal protocol errors).
 * Reading stops at once. Once called, a second call is ignored (the first
 * reason stands); peer_close() still closes at once. */
void peer_send_and_close(struct peer *p, const struct proto_msg *m, const char *reason);

/* A `result` frame for a client op with `id`: code 0 is ok:true with data
 * (NULL or empty: none); otherwise ok:false with the code's wire name,
 * message and (when not empty) the server's own code. Returns as peer_send(). */
int peer_send_result(struct peer *p, uint64_t id, int code, const char *message,
                     const struct proto_span *data, const struct proto_span *server_code);
/* An `error` frame (code name + message). With close_reason the peer is
 * closed once it is written (after errors that leave the stream or the
 * client untrusted), and close_reason is logged. */
void peer_send_error(struct peer *p, int code, const char *message, const char *close_reason);

/* A problem with a frame from the client: a `result` under its id when the
 * frame's op is answered by id (proto_op_answered_by_id), else an `error`
 * frame carrying the frame's id (when readable) and its op as `about`. m
 * may be NULL (the frame could not be decoded at all). */
void peer_send_frame_error(struct peer *p, const struct proto_msg *m, int code,
                           const char *message);

/* Starts closing; `reason` is logged. Idempotent. Output not yet written
 * is dropped, a write in flight included, and so is everything sent in
 * the current loop turn: it does not wait for a client that may never
 * read (peer_send_and_close() is the flushing close). */
void peer_close(struct peer *p, const char *reason);

bool peer_is_closing(const struct peer *p);
/* True when the peer was closed for falling behind its queue limit. */
bool peer_is_slow_consumer(const struct peer *p);
/* Bytes the broker holds for this peer now (what its quota is charged). */
size_t peer_memory(const struct peer *p);
/* The owner holds `bytes` elsewhere on this peer's behalf (kept emits):
 * charged with the rest; over a limit, the biggest holder is cut at the
 * next prepare. */
void peer_set_held(struct peer *p, size_t bytes);
uint64_t peer_id(const struct peer *p);
pid_t peer_pid(const struct peer *p);
uid_t peer_uid(const struct peer *p);
gid_t peer_gid(const struct peer *p);
void *peer_owner(const struct peer *p);
/* Owner's per-peer data (e.g. the router's state). */
void peer_set_data(struct peer *p, void *data);
void *peer_data(const struct peer *p);
size_t peer_queue_bytes(const struct peer *p);
/* Bits the owner keeps per peer (e.g. "said hello", "is a monitor"). */
uint32_t peer_flags(const struct peer *p);
void peer_set_flags(struct peer *p, uint32_t flags);
/* The client's name from hello (NUL-terminated, "" before hello). */
const char *peer_name(const struct peer *p);
void peer_set_name(struct peer *p, const char *name, size_t len);

#endif
