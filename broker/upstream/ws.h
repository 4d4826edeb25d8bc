/* WebSocket client transport for the upstream session, on the broker's
 * libuv loop: libuv TCP, OpenSSL for wss:// (through memory BIOs), and
 * RFC 6455 framing of our own (wsframe.h). ws.c says why it is not built
 * on libwebsockets any more, with the figures.
 *
 * A ws_transport holds what connections share (the TLS context, a random
 * pool for masking keys); a ws_conn is one client connection; it hands
 * complete messages up and takes messages down, nothing of Engine.IO is
 * known here.
 *
 * What it does:
 *  - Name resolution with uv_getaddrinfo (never blocking the loop); every
 *    address the name has is tried in turn until a TCP connection is made.
 *  - TLS verified by default: the system store or a CA file, SNI and the
 *    name check for host names, the address check for IP literals (IPv6
 *    included).
 *  - Exactly one on_close per connection, whatever ends it.
 *  - Messages, not frames: fragments are reassembled, bounded by
 *    max_message_size (over it: we close with 1009 and report
 *    WS_CLOSE_TOO_BIG); control frames may come between fragments; pings
 *    are answered; text is checked to be UTF-8 (else Close 1007).
 *  - A bounded send queue: ws_send() masks the message into one growable
 *    buffer as a frame, so once warm a message costs no allocation. Over
 *    the limit ws_send() fails with -ENOBUFS and the connection stays up;
 *    the caller decides. Everything queued in one loop turn goes out in
 *    one write, just before the loop waits again.
 *  - A connect deadline covering DNS, TCP, TLS and the HTTP upgrade.
 *
 * Threading: everything runs on the loop thread; no function may be
 * called from another thread.
 *
 * Callbacks: never called from inside ws_connect(), ws_send() or
 * ws_close(); only from the loop. From any callback the owner may call
 * any function of this module (including ws_close() on the connection
 * being called back, and ws_transport_close()).
 */
#ifndef UPSTREAM_WS_H
#define UPSTREAM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct ws_transport;
struct ws_conn;

struct ws_transport_options {
    /* PEM file of the CAs trusted for wss://, replacing the system store
     * (like curl --cacert). NULL: the system store. Read when the
     * transport is created; an unreadable file is an error then. */
    const char *ca_file;
    /* Accept any server certificate (self-signed, unknown CA, wrong name,
     * expired). Development only: logged as a warning at creation. */
    bool insecure;
    /* Only ws:// will be used: OpenSSL is never set up (the system CA store
     * costs memory and start-up time) and wss:// is refused. */
    bool plain_only;
};

/* Creates the transport on `loop` (which must outlive it). 0 and *out, or
 * -EINVAL (bad options, an unreadable or unusable ca_file; details in the
 * log), -ENOMEM. Freed by ws_transport_close(). */
int ws_transport_new(uv_loop_t *loop, const struct ws_transport_options *options,
                     struct ws_transport **out);

typedef void (*ws_transport_closed_cb)(void *userdata);

/* Starts the teardown: every connection still open is dropped at once (no
 * Close frame; use ws_close() first and wait for on_close for a polite
 * close) and gets its on_close with WS_CLOSE_SHUTDOWN. `closed` (may be
 * NULL) runs from the loop when the transport and everything it put on the
 * loop are gone: from then on the owner may uv_loop_close() (after running
 * the loop once more to let its own handles close). The transport is freed
 * before `closed` runs. Calling it twice is a bug. ws_connect() fails with
 * -ESHUTDOWN meanwhile. */
void ws_transport_close(struct ws_transport *t, ws_transport_closed_cb closed, void *userdata);

/* Why a connection ended. The first five can only happen before on_open. */
enum ws_close_cause {
    WS_CLOSE_DNS = 1,   /* the host name did not resolve */
    WS_CLOSE_CONNECT,   /* no TCP connection to any of its addresses */
    WS_CLOSE_TLS,       /* TLS handshake or certificate verification failed */
    WS_CLOSE_HANDSHAKE, /* HTTP upgrade refused or malformed (http_status) */
    WS_CLOSE_TIMEOUT,   /* not open within connect_timeout_ms */
    WS_CLOSE_REMOTE,    /* the server sent a Close frame (code) */
    WS_CLOSE_LOST,      /* broke without a Close frame from the server (also:
                         * invalid frames, failed writes); code 1006 */
    WS_CLOSE_TOO_BIG,   /* a message exceeded max_message_size; we sent 1009 */
    WS_CLOSE_LOCAL,     /* ws_close() */
    WS_CLOSE_SHUTDOWN,  /* ws_transport_close() */
};

/* "dns", "connect", "tls", "handshake", "timeout", "remote", "lost",
 * "too-big", "local", "shutdown"; "?" for anything else. */
const char *ws_close_cause_name(enum ws_close_cause cause);

struct ws_close_info {
    enum ws_close_cause cause;
    bool was_open;   /* on_open had been called */
    int code;        /* WebSocket close status received (REMOTE; 1005 when the
                      * frame had none), sent (LOCAL 1000 once open, TOO_BIG
                      * 1009) or implied (LOST 1006), else 0 */
    int http_status; /* HANDSHAKE: the server's HTTP status, 0 if it sent none */
    /* One line for the log, never NULL, valid during the callback only. */
    const char *text;
};

struct ws_callbacks {
    /* The upgrade succeeded: ws_send() works from now on. */
    void (*on_open)(void *userdata);
    /* One complete message. data is valid during the call only;
     * data[len] is 0 so text can be read as a C string (it may still
     * contain NULs itself). Not called after ws_close(). */
    void (*on_message)(void *userdata, const void *data, size_t len, bool binary);
    /* Exactly once per successful ws_connect(), last of all callbacks.
     * The connection is freed when it returns: drop the pointer here. */
    void (*on_close)(void *userdata, const struct ws_close_info *info);
};

struct ws_connect_options {
    const char *host; /* DNS name or address; an IPv6 address without brackets */
    uint16_t port;
    bool tls;                    /* wss:// */
    const char *path;            /* request target, starts with '/', e.g.
                                  * "/socket.io/?EIO=4&transport=websocket" */
    uint32_t connect_timeout_ms; /* DNS + TCP + TLS + upgrade; 0: 20000 */
    size_t max_message_size;     /* largest message accepted; 0: 16 MiB */
    size_t send_queue_limit;     /* see ws_send(); 0: 4 MiB */
};

/* Starts connecting; all strings are copied. 0 and *out, or -EINVAL (bad
 * options, wss:// on a plain_only transport), -ENOMEM, -ESHUTDOWN
 * (transport closing). On success on_close will be called exactly once,
 * never from inside this call. */
int ws_connect(struct ws_transport *t, const struct ws_connect_options *options,
               const struct ws_callbacks *callbacks, void *userdata, struct ws_conn **out);

/* Queues one message (copied) to be written when the socket is writable;
 * messages go out in order. 0, or:
 *   -ENOTCONN  not open yet, or closing (ws_close(), or a close decided
 *              here, e.g. for a message over max_message_size);
 *   -EMSGSIZE  the message alone is larger than send_queue_limit;
 *   -ENOBUFS   the queue would exceed send_queue_limit: nothing is queued,
 *              the connection stays up, retry when ws_send_queue_bytes()
 *              has gone down;
 *   -ENOMEM.
 * The limit counts WS_SEND_OVERHEAD bytes per queued message on top of
 * the payload, so that many tiny messages are bounded too. */
int ws_send(struct ws_conn *c, const void *data, size_t len, bool binary);

#define WS_SEND_OVERHEAD 48

/* Bytes held by the send queue (payloads + WS_SEND_OVERHEAD each). */
size_t ws_send_queue_bytes(const struct ws_conn *c);
/* What the queue may still take, counted the same way (so messages of
 * len1..lenN fit together when their sum + N * WS_SEND_OVERHEAD does). */
size_t ws_send_queue_room(const struct ws_conn *c);

/* Closes politely: what is already queued is sent, then a Close frame
 * (1000), then on_close (WS_CLOSE_LOCAL) as soon as that frame is written
 * to the socket (after a few seconds at most, if the socket takes
 * nothing). The socket itself stays open a moment longer in the
 * background, for the server's answer and its end of TCP, then is closed;
 * ws_transport_close() waits for that. Before the connection is open, the
 * attempt is abandoned (on_close follows from the loop). Idempotent; no
 * on_message after it. */
void ws_close(struct ws_conn *c);

#endif
