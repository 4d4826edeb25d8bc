/* The client side of one connection to the broker: find the socket,
 * connect with an explanation people can act on when it fails, queue and
 * write frames without blocking, read frames through a proto_reader.
 *
 * Every mode of volt-inspect except the proxy drives one of these from a
 * poll() loop (or the blocking helpers conn_wait_frame / conn_hello for
 * the simple request-answer modes). No threads, no libuv: a tool.
 */
#ifndef INSPECT_CONN_H
#define INSPECT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "proto/buf.h"
#include "proto/msg.h"
#include "proto/msgpack.h"

struct conn;

/* Where the default path came from (for hints in error messages). */
enum conn_path_source {
    CONN_PATH_ARGUMENT, /* --socket */
    CONN_PATH_ENV,      /* $VOLT_BROKER_SOCKET */
    CONN_PATH_ROOT,     /* the system socket, /run/volt/broker.sock */
    CONN_PATH_XDG,      /* this user's socket ($XDG_RUNTIME_DIR/volt or /tmp/volt-UID), found */
};

/* The default socket path, the client rule of proto/paths.h (as
 * libvoltclient finds it): $VOLT_BROKER_SOCKET if set and not empty, else
 * this user's broker socket when one exists, else the system socket. 0 or
 * -ENAMETOOLONG. */
int conn_default_path(char *buf, size_t size, enum conn_path_source *source);

/* Fills msg with "cannot connect to PATH: <strerror>" and a hint line for
 * the usual causes (no broker, stale socket, permissions: names the
 * socket's owner, group and mode from st, which may be NULL). */
void conn_explain_error(const char *path, enum conn_path_source source, int errnum,
                        const struct stat *st, char *msg, size_t size);

/* Connects to the Unix socket at path. 0 and *out (caller frees with
 * conn_free), or -errno with the explanation above in msg. */
int conn_open(const char *path, enum conn_path_source source, struct conn **out, char *msg,
              size_t size);
/* Wraps an already connected stream socket; takes ownership of fd even on
 * failure. NULL on out of memory. */
struct conn *conn_adopt(int fd);
/* Closes the socket and frees everything. NULL is fine. */
void conn_free(struct conn *c);

int conn_fd(const struct conn *c);
/* Bytes queued but not yet written; poll for POLLOUT while non-zero. */
size_t conn_pending_out(const struct conn *c);

/* Queues bytes that already form whole frames and writes what the socket
 * takes now. 0, PROTO_E_NOMEM, or -errno of the write (the connection is
 * then unusable: EPIPE, ECONNRESET, ...). */
int conn_send_raw(struct conn *c, const void *data, size_t len);
/* Encodes m as a frame and queues it as above. */
int conn_send_msg(struct conn *c, const struct proto_msg *m);
/* Writes queued bytes. 0 when all are written, 1 when some remain, -errno. */
int conn_flush(struct conn *c);

/* Reads what the socket has into the frame reader. >0 bytes read, 0 at end
 * of stream, -EAGAIN when there was nothing, other -errno, PROTO_E_NOMEM. */
ssize_t conn_read(struct conn *c);
/* Next complete frame body (valid until the next call on c): 1, 0 when
 * more bytes are needed, or a proto_reader error (PROTO_E_BAD_FRAME is
 * recoverable, the others fatal); conn_reader_error says why. */
int conn_next(struct conn *c, struct proto_span *frame);
const char *conn_reader_error(const struct conn *c);

/* Blocking: writes the queue, then waits until a frame is complete.
 * deadline_ms is inspect_mono_ms() based; 0 waits forever.
 * 1 and *frame; PROTO_E_TIMEOUT; PROTO_E_BROKER_GONE (end of stream or a
 * socket error, see conn_gone_reason); a reader error as for conn_next. */
int conn_wait_frame(struct conn *c, uint64_t deadline_ms, struct proto_span *frame);
/* Why the connection ended, for people: "the broker closed the
 * connection" or the socket error's text. */
const char *conn_gone_reason(const struct conn *c);

/* The hello this tool sends: versions PROTO_VERSION_MIN..MAX and the
 * client name (borrowed; omitted when NULL or empty). */
void conn_hello_msg(const char *name, struct proto_msg *m);

/* Sends hello (versions PROTO_VERSION_MIN..MAX, the given client name)
 * and waits for the answer. 0 with the welcome's body in *welcome (valid
 * until the next read) and *m decoded from it; otherwise a negative code
 * with an explanation in msg: PROTO_E_BROKER_GONE, PROTO_E_TIMEOUT, or the
 * code of the broker's error frame (e.g. PROTO_E_VERSION_MISMATCH). */
int conn_hello(struct conn *c, const char *name, uint64_t deadline_ms, struct proto_span *welcome,
               struct proto_msg *m, char *msg, size_t size);

/* Sends {"op":<op>,"id":id} (status, monitor, ping) and waits for the frame
 * that answers it (result, pong, or an error with that id), skipping
 * others; every skipped frame is passed to on_other (may be NULL). 0 with
 * the answer in *answer and *m; PROTO_E_TIMEOUT, PROTO_E_BROKER_GONE, or
 * a fatal reader error, with msg filled. */
int conn_call_simple(struct conn *c, enum proto_op op, uint64_t id, uint64_t deadline_ms,
                     void (*on_other)(void *ctx, const struct proto_span *frame), void *ctx,
                     struct proto_span *answer, struct proto_msg *m, char *msg, size_t size);

#endif
