/* WebSocket transport: libuv TCP, OpenSSL through memory BIOs, and our own
 * RFC 6455 framing (wsframe.c). The header says what this module promises;
 * this is how, and why it no longer sits on libwebsockets.
 *
 * Why not libwebsockets (measured, issue 13). Debian 12's lws 4.1.6, in its
 * WebSocket role, runs its receive state machine once per byte, masks and
 * checks UTF-8 byte by byte, reads 4 bytes of /dev/urandom for every
 * frame's mask, sends one frame per sendto(), reads 4 KiB at a time, and
 * its libuv glue turns every change of the wanted events into epoll_ctl()
 * calls. Kept only for connecting and TLS, in its raw-socket client role,
 * with our framing on top (a prototype: RAW_RX into our parser, all frames
 * of a loop turn in one lws_write(), 64 KiB pt_serv_buf_size), it still
 * runs its service path on every event, copies every read out of its own
 * buffer and every write into a buffer with LWS_PRE headroom, its context
 * (with OpenSSL's global init) added 1.5 MiB to a test program's RSS, and
 * it cannot check a certificate for
 * an IPv6 literal (4.1.6 cuts the name at the first ':'). What is left to
 * a transport of our own is libuv's TCP and OpenSSL's TLS, so that is what
 * this is. wslay (libwslay-dev 1.1.1) was read, not measured: its frame
 * layer also masks byte by byte, through a 4 KiB stack buffer, with a send
 * callback per header and per 4 KiB, and reads through a fixed 4 KiB
 * buffer.
 *
 * The three, head to head (the same tree otherwise, the same dev server,
 * interleaved, medians of 3; 2 shared cores, load average 3-5): broker CPU
 * from its task clock and system calls per request.
 *
 *                          lws WS role (*)      lws raw + wsframe    this file
 *   16 B, K=100            14.7 us  3.30 sc     8.0 us  1.36 sc      7.6 us  1.29 sc
 *   16 KiB, K=100          217.7 us 16.2 sc     40.5 us 3.70 sc      33.2 us 3.58 sc
 *   16 B, K=1 (p50)        59.3 us  13.9 sc     44.9 us 6.0 sc       32.0 us 6.0 sc
 *                          (131 us)             (132 us)             (94 us)
 *   (*) the tree before this work: without the JSON and local-write
 *   changes that the other two columns have.
 *
 * Connecting. The name is resolved with uv_getaddrinfo (never on the
 * loop); each address is tried in turn with a fresh uv_tcp_t until one
 * connects. The socket belongs to a small heap object of its own (struct
 * ws_sock), so a failed attempt closes its handle asynchronously while the
 * next one starts. One timer per connection covers DNS + TCP + TLS +
 * upgrade, then the close handshake, and runs deferred work (a report must
 * never come from inside ws_connect() or ws_close()).
 *
 * TLS. One SSL_CTX per transport, made when a wss:// connection first
 * needs it (a ws://-only broker never initialises OpenSSL for us): the
 * system store (SSL_CTX_set_default_verify_paths) or the CA file,
 * TLS 1.2 at least, peer verification unless insecure. Per connection:
 * SNI for names, SSL_set1_host() for names and X509_VERIFY_PARAM_set1_ip_asc()
 * for address literals (IPv6 included), ALPN http/1.1. OpenSSL reads and
 * writes memory BIOs; the bytes move through the same libuv stream as in
 * the plain case. The first verification error is kept from the verify
 * callback for the close reason ("certificate verification failed:
 * self-signed certificate (depth 0)"), which OpenSSL's error queue alone
 * does not say.
 *
 * The upgrade. We send the GET with a fresh Sec-WebSocket-Key and check
 * the server's 101: Upgrade, Connection and Sec-WebSocket-Accept, no
 * extension or subprotocol we did not offer. Another status is a
 * WS_CLOSE_HANDSHAKE with that status; frames may follow the header in the
 * same read.
 *
 * Receiving. libuv reads straight into the connection's buffer, 64 KiB at
 * a time (or as much as the frame under way needs); with TLS, into a
 * ciphertext buffer and SSL_read() into the same buffer. wsframe_parse()
 * hands out whole messages where they lie; the byte after a message is
 * saved, set to 0 for on_message (which promises data[len] == 0) and put
 * back. The buffer only moves between reads, never while a message is out.
 *
 * Sending. ws_send() masks the payload into the send buffer as a complete
 * frame (header, key from a 4 KiB getrandom() pool, payload XORed a word at
 * a time while copying), so a queued message costs no allocation once the
 * buffer has grown. Nothing is written from ws_send(): a uv_prepare_t runs
 * once per loop turn, right before the loop blocks, and writes everything
 * queued in that turn with one uv_try_write(). What the socket does not
 * take goes to uv_write(), which owns that buffer until it completes while
 * new frames collect in the other one; only then does libuv watch for
 * POLLOUT. So the socket is registered with epoll once, for reading, and
 * writability costs an epoll_ctl() only when the socket is really full.
 * With TLS, the frames of a turn are encrypted together (SSL_write() into
 * the memory BIO) and the ciphertext written the same way, and frames are
 * only encrypted while no write is in flight, so the queue's limit still
 * bounds what waits.
 *
 * The send queue's limit counts each message as its payload plus
 * WS_SEND_OVERHEAD, as before; a message stops counting once its last byte
 * is written to the socket (with TLS: handed to OpenSSL). The ends of the
 * messages are kept as stream offsets in a small ring (`marks`).
 *
 * Closing. Every end of an open connection queues a Close frame of ours
 * behind what is queued: ws_close() with 1000, an answer to the server's
 * Close with its code, a frame the server may not send (wsframe's rules)
 * with the RFC's code (1002, 1007, 1009; reported as WS_CLOSE_LOST or
 * WS_CLOSE_TOO_BIG). Once that frame is written the connection is
 * reported (on_close), and the socket lingers, reading and discarding,
 * until the server ends TCP or LINGER_MS pass: closing a socket with
 * unread data sends a reset, which may destroy what the kernel has not
 * sent yet. So the session learns at once (a paused server does not hold
 * it for seconds) and the last answers still arrive. A socket that does not
 * take the Close within CLOSE_GRACE_MS is dropped. Whatever ends a
 * connection goes through conn_report_ex(): the first cause decided is
 * the one reported, on_close runs once, and the struct is freed when the
 * last of its handles is closed (so it is still valid when on_close
 * returns); ws_transport_close() waits for lingering sockets too.
 */
#include "upstream/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "upstream/wsframe.h"
#include "util/log.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 20000u
#define DEFAULT_MAX_MESSAGE        (16u << 20)
#define DEFAULT_SEND_QUEUE_LIMIT   (4u << 20)
/* How long a polite close may take (queued data, Close handshake). */
#define CLOSE_GRACE_MS 3000
/* After a Close both ways (or a protocol error), how long the server has
 * to end the TCP connection before we do. */
#define LINGER_MS 1000
/* Reads of the socket, and the buffer kept between messages. */
#define READ_CHUNK (64 * 1024)
/* A buffer grown past this for one large message is let go afterwards. */
#define KEEP_BUFFER (1024 * 1024)
/* The 101 response's header, at most. */
#define MAX_RESPONSE_HEADER (16 * 1024)
#define TEXT_MAX            256
#define RANDOM_POOL         4096

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum conn_state {
    CONN_RESOLVING,
    CONN_CONNECTING, /* TCP */
    CONN_TLS,        /* TLS handshake */
    CONN_UPGRADING,  /* GET sent, waiting for the 101 */
    CONN_OPEN,
    CONN_CLOSING, /* a Close of ours is queued: no more messages */
    CONN_CLOSED,  /* reported */
};

/* Why the connection ends: decided once, reported by conn_report(). */
struct conn_end {
    bool set;
    enum ws_close_cause cause;
    int code;
    int http_status;
    char text[TEXT_MAX];
};

/* A growable byte buffer; [head, len) is live. */
struct obuf {
    uint8_t *data;
    size_t head, len, cap;
};

/* Where a queued message ends in the stream of frame bytes, and what it
 * counts against the queue's limit. */
struct tx_mark {
    uint64_t end;
    size_t cost;
};

/* One TCP connection attempt; freed when its handle is closed. Its
 * callbacks act only while it is still its conn's `sock`. */
struct ws_sock {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    struct ws_conn *c;
};

struct ws_conn {
    struct ws_transport *t;
    struct ws_conn *prev, *next;
    struct ws_callbacks cb;
    void *userdata;

    char *host;        /* as given: for DNS, SNI, the certificate check, messages */
    char *host_header; /* Host header */
    char *path;
    uint16_t port;
    bool tls;
    size_t max_message;
    size_t queue_limit;

    enum conn_state state;
    bool was_open;
    bool close_requested; /* ws_close(): no more sends or messages */
    bool close_sent;      /* our Close frame is queued */
    bool abort_due;       /* drop the connection from the timer */
    bool lingering;       /* reported; waiting for the server to end TCP */
    bool finished;        /* socket and handles closed (or closing) */
    struct conn_end end;

    uv_getaddrinfo_t resolver;
    bool resolving;
    struct addrinfo *addrs;
    struct addrinfo *next_addr;
    char address[INET6_ADDRSTRLEN]; /* the one being tried */
    char last_error[TEXT_MAX];      /* of the last address tried */

    struct ws_sock *sock; /* the current attempt; NULL between attempts */
    bool sock_connected;
    uv_timer_t timer;
    uv_prepare_t flusher;
    bool flush_pending;
    unsigned handles; /* timer, flusher and socks still to close */

    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    char tls_error[160];
    uint8_t *net_in; /* TLS: ciphertext read from the socket */

    char accept[32]; /* the Sec-WebSocket-Accept we expect */
    struct wsframe_parser *parser;
    struct obuf rx;
    size_t rx_need; /* bytes the frame under way needs, from rx.head */

    struct obuf tx;      /* frames not yet written (plain) or encrypted (TLS) */
    struct obuf wire;    /* TLS: ciphertext not yet written */
    struct obuf writing; /* owned by the uv_write in flight */
    uv_write_t write_req;
    bool write_in_flight;
    uint64_t tx_in;          /* frame bytes queued, ever */
    uint64_t tx_out;         /* frame bytes written (or encrypted), ever */
    uint64_t writing_frames; /* plain: frame bytes in `writing` */
    struct tx_mark *marks;
    size_t marks_head, marks_len, marks_cap;
    size_t tx_bytes; /* accounted against queue_limit */
};

struct ws_transport {
    uv_loop_t *loop;
    struct ws_conn *conns;
    SSL_CTX *ssl_ctx; /* made when first needed */
    char *ca_file;
    bool insecure;
    bool plain_only;
    bool closing;
    uv_timer_t defer; /* runs `closed` from the loop */
    ws_transport_closed_cb closed_cb;
    void *closed_userdata;
    uint8_t pool[RANDOM_POOL];
    size_t pool_used;
};

_Static_assert(WSFRAME_MAX_HEADER + sizeof(struct tx_mark) <= WS_SEND_OVERHEAD,
               "WS_SEND_OVERHEAD must cover a message's header and bookkeeping");

static int ssl_conn_index = -1;

static void conn_report(struct ws_conn *c);
static void conn_want_flush(struct ws_conn *c);
static void conn_process_rx(struct ws_conn *c);

const char *ws_close_cause_name(enum ws_close_cause cause)
{
    switch (cause) {
    case WS_CLOSE_DNS:
        return "dns";
    case WS_CLOSE_CONNECT:
        return "connect";
    case WS_CLOSE_TLS:
        return "tls";
    case WS_CLOSE_HANDSHAKE:
        return "handshake";
    case WS_CLOSE_TIMEOUT:
        return "timeout";
    case WS_CLOSE_REMOTE:
        return "remote";
    case WS_CLOSE_LOST:
        return "lost";
    case WS_CLOSE_TOO_BIG:
        return "too-big";
    case WS_CLOSE_LOCAL:
        return "local";
    case WS_CLOSE_SHUTDOWN:
        return "shutdown";
    }
    return "?";
}

/* ---- buffers and randomness ------------------------------------------ */

/* Room for n more bytes after len (plus one spare byte, for the 0 put
 * after a message in place), moving the live bytes down first. Only for a
 * buffer no write or message points into. */
static int obuf_reserve(struct obuf *b, size_t n)
{
    size_t live = b->len - b->head;
    size_t cap;
    uint8_t *p;

    if (b->len + n + 1 <= b->cap)
        return 0;
    if (b->head) {
        memmove(b->data, b->data + b->head, live);
        b->head = 0;
        b->len = live;
        if (live + n + 1 <= b->cap)
            return 0;
    }
    cap = b->cap ? b->cap : 4096;
    while (cap < live + n + 1)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static void obuf_free(struct obuf *b)
{
    free(b->data);
    *b = (struct obuf){0};
}

/* Lets a buffer grown for one large message go once it is empty. */
static void obuf_settle(struct obuf *b)
{
    if (b->head == b->len)
        b->head = b->len = 0;
    if (b->len == 0 && b->cap > KEEP_BUFFER)
        obuf_free(b);
}

static void random_bytes(struct ws_transport *t, uint8_t *out, size_t n)
{
    if (t->pool_used + n > sizeof(t->pool)) {
        size_t got = 0;

        while (got < sizeof(t->pool)) {
            ssize_t r = getrandom(t->pool + got, sizeof(t->pool) - got, 0);
            if (r < 0 && errno != EINTR) {
                /* Not expected on Linux >= 3.17; a mask must still vary. */
                log_error("getrandom failed: %s", strerror(errno));
                for (size_t i = got; i < sizeof(t->pool); i++)
                    t->pool[i] = (uint8_t)(t->pool[i] * 167u + (uint8_t)i + 13u);
                break;
            }
            if (r > 0)
                got += (size_t)r;
        }
        t->pool_used = 0;
    }
    memcpy(out, t->pool + t->pool_used, n);
    t->pool_used += n;
}

/* ---- ending a connection ------------------------------------------------ */

static void conn_set_end(struct ws_conn *c, enum ws_close_cause cause, int code, int http_status,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void conn_set_end(struct ws_conn *c, enum ws_close_cause cause, int code, int http_status,
                         const char *fmt, ...)
{
    va_list ap;

    if (c->end.set)
        return;
    c->end.set = true;
    c->end.cause = cause;
    c->end.code = code;
    c->end.http_status = http_status;
    va_start(ap, fmt);
    vsnprintf(c->end.text, sizeof(c->end.text), fmt, ap);
    va_end(ap);
}

/* The cause when nothing decided one: judged by how far the conn got. */
static void conn_set_default_end(struct ws_conn *c, const char *detail)
{
    switch (c->state) {
    case CONN_RESOLVING:
    case CONN_CONNECTING:
        conn_set_end(c, WS_CLOSE_CONNECT, 0, 0, "cannot connect to %s port %u: %s", c->host,
                     c->port, detail);
        break;
    case CONN_TLS:
        conn_set_end(c, WS_CLOSE_TLS, 0, 0, "TLS with %s port %u failed: %s", c->host, c->port,
                     c->tls_error[0] ? c->tls_error : detail);
        break;
    case CONN_UPGRADING:
        conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 0, "WebSocket upgrade at %s port %u failed: %s",
                     c->host, c->port, detail);
        break;
    case CONN_OPEN:
    case CONN_CLOSING:
    case CONN_CLOSED:
        conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0,
                     "connection to %s port %u lost: %s", c->host, c->port, detail);
        break;
    }
}

static void transport_maybe_done(struct ws_transport *t);

static void conn_free(struct ws_conn *c)
{
    struct ws_transport *t = c->t;

    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->addrs)
        uv_freeaddrinfo(c->addrs);
    wsframe_parser_free(c->parser);
    obuf_free(&c->rx);
    obuf_free(&c->tx);
    obuf_free(&c->wire);
    obuf_free(&c->writing);
    free(c->marks);
    free(c->net_in);
    free(c->host);
    free(c->host_header);
    free(c->path);
    free(c);
    if (t->closing)
        transport_maybe_done(t);
}

static void conn_free_if_done(struct ws_conn *c)
{
    if (c->state == CONN_CLOSED && !c->resolving && c->handles == 0)
        conn_free(c);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct ws_conn *c = h->data;

    c->handles--;
    conn_free_if_done(c);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct ws_sock *s = h->data;
    struct ws_conn *c = s->c;

    free(s);
    if (c) {
        c->handles--;
        conn_free_if_done(c);
    }
}

/* Closes the current socket, if any (its connect or write callbacks then
 * come with UV_ECANCELED and find it given up). */
static void conn_drop_sock(struct ws_conn *c)
{
    struct ws_sock *s = c->sock;

    if (!s)
        return;
    c->sock = NULL;
    c->sock_connected = false;
    uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
}

/* Closes the socket and the conn's handles; it is freed when the last
 * handle is closed. */
static void conn_finish(struct ws_conn *c)
{
    if (c->finished)
        return;
    c->finished = true;
    c->lingering = false;
    conn_drop_sock(c);
    c->write_in_flight = false; /* its callback finds the sock given up */
    uv_timer_stop(&c->timer);
    uv_prepare_stop(&c->flusher);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->flusher, on_conn_handle_closed);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
}

static void on_conn_timer(uv_timer_t *timer);

/* Delivers on_close once; the conn is freed later, when its handles are
 * closed, so it is still valid when this returns. With `linger` (our Close
 * frame is written), the socket stays open, reading and discarding, until
 * the server ends the TCP connection or LINGER_MS pass: closing it with
 * unread data would send a reset, and a reset may destroy what is still in
 * the kernel's send buffer. */
static void conn_report_ex(struct ws_conn *c, bool linger)
{
    struct ws_close_info info;

    if (c->state == CONN_CLOSED)
        return;
    conn_set_default_end(c, "closed");
    c->state = CONN_CLOSED;
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->resolver);
    if (linger && c->sock_connected && !c->write_in_flight) {
        c->lingering = true;
        uv_prepare_stop(&c->flusher);
        uv_timer_start(&c->timer, on_conn_timer, LINGER_MS, 0);
    } else {
        conn_finish(c);
    }

    info.cause = c->end.cause;
    info.was_open = c->was_open;
    info.code = c->end.code;
    info.http_status = c->end.http_status;
    info.text = c->end.text;
    log_debug("ws %s port %u closed (%s): %s", c->host, c->port, ws_close_cause_name(info.cause),
              info.text);
    if (c->cb.on_close)
        c->cb.on_close(c->userdata, &info);
}

static void conn_report(struct ws_conn *c)
{
    conn_report_ex(c, false);
}

/* A Close of ours is queued: once it and everything before it are
 * written, the connection is reported closed (and lingers). */
static void conn_check_close_written(struct ws_conn *c)
{
    if (c->state != CONN_CLOSING || c->write_in_flight || c->tx.head != c->tx.len ||
        c->wire.head != c->wire.len || (c->ssl && BIO_ctrl_pending(c->wbio)))
        return;
    conn_report_ex(c, true);
}

/* Drops the connection from the loop (never from inside an API call). */
static void conn_abort_soon(struct ws_conn *c)
{
    c->abort_due = true;
    uv_timer_start(&c->timer, on_conn_timer, 0, 0);
}

/* Ends an open connection with a Close frame of our own (code, reason),
 * then waits for the server to end the TCP connection. */
static void conn_close_with(struct ws_conn *c, uint16_t code, const char *reason);

/* ---- sending ------------------------------------------------------------- */

static int conn_mark(struct ws_conn *c, size_t cost)
{
    if (c->marks_head + c->marks_len == c->marks_cap) {
        if (c->marks_head) {
            memmove(c->marks, c->marks + c->marks_head, c->marks_len * sizeof(*c->marks));
            c->marks_head = 0;
        } else {
            size_t cap = c->marks_cap ? c->marks_cap * 2 : 64;
            struct tx_mark *m = realloc(c->marks, cap * sizeof(*m));
            if (!m)
                return -ENOMEM;
            c->marks = m;
            c->marks_cap = cap;
        }
    }
    c->marks[c->marks_head + c->marks_len++] = (struct tx_mark){c->tx_in, cost};
    return 0;
}

/* n more frame bytes are written (or encrypted): messages wholly out stop
 * counting against the limit. */
static void conn_sent(struct ws_conn *c, size_t n)
{
    c->tx_out += n;
    while (c->marks_len && c->marks[c->marks_head].end <= c->tx_out) {
        c->tx_bytes -= c->marks[c->marks_head].cost;
        c->marks_head++;
        c->marks_len--;
    }
    if (!c->marks_len)
        c->marks_head = 0;
}

/* Appends one masked frame to the send buffer. */
static int conn_put_frame(struct ws_conn *c, enum wsframe_opcode op, const void *data, size_t len)
{
    uint8_t key[4], *p;
    size_t h;

    if (obuf_reserve(&c->tx, WSFRAME_MAX_HEADER + len) < 0)
        return -ENOMEM;
    random_bytes(c->t, key, sizeof(key));
    p = c->tx.data + c->tx.len;
    h = wsframe_put_header(p, op, len, key);
    if (len)
        wsframe_mask_copy(p + h, data, len, key, 0);
    c->tx.len += h + len;
    c->tx_in += h + len;
    conn_want_flush(c);
    return 0;
}

int ws_send(struct ws_conn *c, const void *data, size_t len, bool binary)
{
    int r;

    if (!c || (!data && len))
        return -EINVAL;
    if (c->state != CONN_OPEN || c->close_requested || c->end.set)
        return -ENOTCONN;
    if (len > c->queue_limit - WS_SEND_OVERHEAD)
        return -EMSGSIZE;
    if (c->tx_bytes + len + WS_SEND_OVERHEAD > c->queue_limit)
        return -ENOBUFS;
    r = conn_put_frame(c, binary ? WSFRAME_OP_BINARY : WSFRAME_OP_TEXT, data, len);
    if (r == 0)
        r = conn_mark(c, len + WS_SEND_OVERHEAD);
    if (r < 0)
        return r; /* a frame without its mark is only written, never counted */
    c->tx_bytes += len + WS_SEND_OVERHEAD;
    return 0;
}

size_t ws_send_queue_bytes(const struct ws_conn *c)
{
    return c ? c->tx_bytes : 0;
}

size_t ws_send_queue_room(const struct ws_conn *c)
{
    return c && c->tx_bytes < c->queue_limit ? c->queue_limit - c->tx_bytes : 0;
}

static void conn_write_failed(struct ws_conn *c, int status)
{
    conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0, "write to %s port %u failed: %s",
                 c->host, c->port, uv_strerror(status));
    conn_report(c);
}

static void on_write_done(uv_write_t *req, int status)
{
    struct ws_sock *s = req->data;
    struct ws_conn *c = s->c;

    if (!c || c->sock != s || !c->write_in_flight)
        return; /* given up: the buffers belong to the conn, freed with it */
    c->write_in_flight = false;
    if (!c->tls)
        conn_sent(c, (size_t)c->writing_frames);
    c->writing_frames = 0;
    c->writing.head = c->writing.len = 0;
    if (c->writing.cap > KEEP_BUFFER)
        obuf_free(&c->writing);
    if (status < 0) {
        conn_write_failed(c, status);
        return;
    }
    if (c->tx.head != c->tx.len || c->wire.head != c->wire.len)
        conn_want_flush(c);
    else
        conn_check_close_written(c);
}

/* TLS: encrypts what is queued (only with nothing in flight: the queue is
 * what bounds memory) and moves OpenSSL's output to `wire`. */
static int conn_tls_pump(struct ws_conn *c)
{
    size_t pending;

    if (c->state >= CONN_UPGRADING && c->tx.head != c->tx.len) {
        int n = SSL_write(c->ssl, c->tx.data + c->tx.head, (int)(c->tx.len - c->tx.head));

        if (n <= 0) {
            unsigned long e = ERR_get_error();
            char buf[120];

            ERR_error_string_n(e, buf, sizeof(buf));
            conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0,
                         "TLS write to %s port %u failed: %s", c->host, c->port,
                         e ? buf : "no detail");
            return -1;
        }
        c->tx.head += (size_t)n;
        conn_sent(c, (size_t)n);
        obuf_settle(&c->tx);
    }
    pending = BIO_ctrl_pending(c->wbio);
    if (pending) {
        if (obuf_reserve(&c->wire, pending) < 0) {
            conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0, "out of memory writing to %s",
                         c->host);
            return -1;
        }
        c->wire.len += (size_t)BIO_read(c->wbio, c->wire.data + c->wire.len, (int)pending);
    }
    return 0;
}

/* Writes what is queued: one uv_try_write(), the rest through uv_write(). */
static void conn_flush(struct ws_conn *c)
{
    struct obuf *src = c->tls ? &c->wire : &c->tx;
    struct obuf tmp;
    uv_buf_t buf;
    size_t len;
    int n;

    if (c->state == CONN_CLOSED || !c->sock_connected || c->write_in_flight)
        return;
    if (c->tls && conn_tls_pump(c) < 0) {
        conn_report(c);
        return;
    }
    len = src->len - src->head;
    if (!len) {
        conn_check_close_written(c);
        return;
    }
    buf = uv_buf_init((char *)src->data + src->head, (unsigned)len);
    n = uv_try_write((uv_stream_t *)&c->sock->tcp, &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
        conn_write_failed(c, n);
        return;
    }
    if (n < 0)
        n = 0;
    src->head += (size_t)n;
    if (!c->tls)
        conn_sent(c, (size_t)n);
    if (src->head == src->len) {
        obuf_settle(src);
        conn_check_close_written(c);
        return;
    }
    /* The socket is full: uv_write() takes this buffer over until it is
     * done, and the next frames collect in the (empty) other one. */
    tmp = c->writing;
    c->writing = *src;
    *src = tmp;
    c->writing_frames = c->tls ? 0 : c->writing.len - c->writing.head;
    buf = uv_buf_init((char *)c->writing.data + c->writing.head,
                      (unsigned)(c->writing.len - c->writing.head));
    c->write_req.data = c->sock;
    n = uv_write(&c->write_req, (uv_stream_t *)&c->sock->tcp, &buf, 1, on_write_done);
    if (n < 0) {
        conn_write_failed(c, n);
        return;
    }
    c->write_in_flight = true;
}

static void on_flush(uv_prepare_t *h)
{
    struct ws_conn *c = h->data;

    uv_prepare_stop(h);
    c->flush_pending = false;
    conn_flush(c);
}

static void conn_want_flush(struct ws_conn *c)
{
    if (c->flush_pending || c->state == CONN_CLOSED)
        return;
    c->flush_pending = true;
    uv_prepare_start(&c->flusher, on_flush);
}

static void conn_close_with(struct ws_conn *c, uint16_t code, const char *reason)
{
    uint8_t body[WSFRAME_MAX_CONTROL];
    size_t n = code ? wsframe_put_close_body(body, code, reason) : 0;

    if (c->close_sent)
        return;
    c->close_sent = true;
    c->state = CONN_CLOSING;
    if (conn_put_frame(c, WSFRAME_OP_CLOSE, body, n) < 0) {
        conn_report(c);
        return;
    }
    /* Reported once written (conn_check_close_written), or after this if
     * the socket does not take it. */
    uv_timer_start(&c->timer, on_conn_timer, CLOSE_GRACE_MS, 0);
}

/* ---- receiving ------------------------------------------------------------ */

static bool header_token(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);

    for (size_t i = 0; i + tlen <= len; i++) {
        if (strncasecmp(value + i, token, tlen) == 0 &&
            (i == 0 || value[i - 1] == ' ' || value[i - 1] == ',' || value[i - 1] == '\t') &&
            (i + tlen == len || value[i + tlen] == ',' || value[i + tlen] == ' ' ||
             value[i + tlen] == '\t'))
            return true;
    }
    return false;
}

/* Checks the server's answer to the upgrade once its header is whole.
 * 1: open (rx.head past the header), 0: more bytes needed, -1: reported. */
static int conn_check_upgrade(struct ws_conn *c)
{
    const char *text = (const char *)c->rx.data + c->rx.head;
    size_t avail = c->rx.len - c->rx.head;
    const char *end = NULL, *line, *next;
    bool upgrade = false, connection = false, accept = false;
    int status = 0;
    char reason[64] = "";

    for (size_t i = 3; i < avail; i++) {
        if (text[i] == '\n' && text[i - 1] == '\r' && text[i - 2] == '\n' && text[i - 3] == '\r') {
            end = text + i + 1;
            break;
        }
    }
    if (!end) {
        if (avail > MAX_RESPONSE_HEADER) {
            conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 0,
                         "WebSocket upgrade at %s port %u: response header over %d bytes", c->host,
                         c->port, MAX_RESPONSE_HEADER);
            conn_report(c);
            return -1;
        }
        return 0;
    }
    /* The buffer is not a C string: the three digits are read by hand. */
    for (size_t i = 9; i < 12 && i < avail; i++)
        status = text[i] >= '0' && text[i] <= '9' ? status * 10 + (text[i] - '0') : -1000;
    if (avail < 12 || memcmp(text, "HTTP/1.1 ", 9) != 0 || status < 100) {
        conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 0,
                     "WebSocket upgrade at %s port %u: not an HTTP/1.1 response", c->host, c->port);
        conn_report(c);
        return -1;
    }
    line = memchr(text, '\r', (size_t)(end - text));
    if (line - text > 13) {
        size_t n = (size_t)(line - (text + 13));
        if (n >= sizeof(reason))
            n = sizeof(reason) - 1;
        for (size_t i = 0; i < n; i++)
            reason[i] = text[13 + i] >= 0x20 && text[13 + i] < 0x7f ? text[13 + i] : '?';
        reason[n] = '\0';
    }
    if (status != 101) {
        conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, status,
                     "WebSocket upgrade at %s port %u refused: HTTP %d (%s)", c->host, c->port,
                     status, reason[0] ? reason : "no reason given");
        conn_report(c);
        return -1;
    }
    for (line = line + 2; line < end - 2; line = next + 2) {
        const char *colon, *v;
        size_t vlen;

        next = memchr(line, '\r', (size_t)(end - line));
        colon = memchr(line, ':', (size_t)(next - line));
        if (!colon)
            continue;
        v = colon + 1;
        while (v < next && (*v == ' ' || *v == '\t'))
            v++;
        vlen = (size_t)(next - v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
#define IS(name)                                                                                   \
    ((size_t)(colon - line) == sizeof(name) - 1 && !strncasecmp(line, name, sizeof(name) - 1))
        if (IS("upgrade"))
            upgrade = vlen == 9 && !strncasecmp(v, "websocket", 9);
        else if (IS("connection"))
            connection = header_token(v, vlen, "upgrade");
        else if (IS("sec-websocket-accept"))
            accept = vlen == strlen(c->accept) && !memcmp(v, c->accept, vlen);
        else if (IS("sec-websocket-extensions") || IS("sec-websocket-protocol")) {
            conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 101,
                         "WebSocket upgrade at %s port %u: the server chose an extension or "
                         "subprotocol that was not offered",
                         c->host, c->port);
            conn_report(c);
            return -1;
        }
#undef IS
    }
    if (!upgrade || !connection || !accept) {
        conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 101,
                     "WebSocket upgrade at %s port %u: 101 without a valid %s", c->host, c->port,
                     !upgrade      ? "Upgrade header"
                     : !connection ? "Connection header"
                                   : "Sec-WebSocket-Accept");
        conn_report(c);
        return -1;
    }
    c->rx.head += (size_t)(end - text);
    return 1;
}

static void conn_on_open(struct ws_conn *c)
{
    c->state = CONN_OPEN;
    c->was_open = true;
    uv_timer_stop(&c->timer);
    log_debug("ws %s port %u: open via %s", c->host, c->port, c->address);
    if (c->cb.on_open)
        c->cb.on_open(c->userdata);
}

/* A message where it lies: the byte after it becomes 0 for the call. */
static void conn_deliver(struct ws_conn *c, const struct wsframe_event *ev)
{
    uint8_t *end = (uint8_t *)ev->data + ev->len;
    uint8_t saved = *end;

    if (c->close_requested || c->state != CONN_OPEN || !c->cb.on_message)
        return;
    *end = 0;
    c->cb.on_message(c->userdata, ev->data, ev->len, ev->binary);
    *end = saved;
}

static void conn_on_close_frame(struct ws_conn *c, const struct wsframe_event *ev)
{
    char reason[124];
    size_t n = 0;

    for (size_t i = 0; i < ev->len && n < sizeof(reason) - 1; i++)
        reason[n++] = ev->data[i] >= 0x20 && ev->data[i] < 0x7f ? (char)ev->data[i] : '?';
    reason[n] = '\0';
    conn_set_end(c, WS_CLOSE_REMOTE, ev->code, 0, "server %s port %u closed the connection: %d%s%s",
                 c->host, c->port, ev->code, n ? " " : "", reason);
    /* Echo the code (none if none came); then the server ends TCP. */
    conn_close_with(c, ev->code == WSFRAME_CLOSE_NO_STATUS ? 0 : ev->code, NULL);
    conn_want_flush(c);
}

static void conn_on_frame_error(struct ws_conn *c, const struct wsframe_event *ev)
{
    if (ev->code == WSFRAME_CLOSE_TOO_BIG)
        conn_set_end(c, WS_CLOSE_TOO_BIG, WSFRAME_CLOSE_TOO_BIG, 0,
                     "message from %s port %u exceeds %zu bytes", c->host, c->port, c->max_message);
    else
        conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0,
                     "connection to %s port %u lost: %s (sent Close %u)", c->host, c->port,
                     ev->error, ev->code);
    conn_close_with(c, ev->code, ev->code == WSFRAME_CLOSE_TOO_BIG ? "message too big" : ev->error);
}

/* Handles what rx holds: the 101, then frames. */
static void conn_process_rx(struct ws_conn *c)
{
    if (c->state == CONN_UPGRADING) {
        int r = conn_check_upgrade(c);
        if (r <= 0)
            return;
        conn_on_open(c);
    }
    /* Once a Close of ours is queued (or a shutdown decided), what comes
     * is not looked at. */
    while (c->state == CONN_OPEN && !c->end.set) {
        struct wsframe_event ev;
        size_t n;

        n = wsframe_parse(c->parser, c->rx.data + c->rx.head, c->rx.len - c->rx.head, &ev);
        c->rx.head += n;
        switch (ev.kind) {
        case WSFRAME_NEED_MORE:
            c->rx_need = ev.need;
            obuf_settle(&c->rx);
            if (wsframe_parser_buffered(c->parser) > KEEP_BUFFER)
                wsframe_parser_trim(c->parser); /* no-op while a message is under way */
            return;
        case WSFRAME_MESSAGE:
            conn_deliver(c, &ev);
            break;
        case WSFRAME_PING:
            if (!c->close_sent && conn_put_frame(c, WSFRAME_OP_PONG, ev.data, ev.len) < 0) {
                conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0,
                             "out of memory answering a ping from %s", c->host);
                conn_report(c);
                return;
            }
            break;
        case WSFRAME_PONG:
            break;
        case WSFRAME_CLOSE:
            conn_on_close_frame(c, &ev);
            return;
        case WSFRAME_ERROR:
            conn_on_frame_error(c, &ev);
            return;
        }
        if (c->state == CONN_CLOSED)
            return;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ws_sock *s = h->data;
    struct ws_conn *c = s->c;
    size_t want = READ_CHUNK;

    if (!c) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    if (c->tls) {
        if (!c->net_in)
            c->net_in = malloc(READ_CHUNK);
        *buf = uv_buf_init((char *)c->net_in, c->net_in ? READ_CHUNK : 0);
        return;
    }
    /* A frame under way is read in as few pieces as it takes. */
    if (c->rx_need > c->rx.len - c->rx.head && c->rx_need - (c->rx.len - c->rx.head) > want)
        want = c->rx_need - (c->rx.len - c->rx.head);
    if (obuf_reserve(&c->rx, want) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)c->rx.data + c->rx.len, (unsigned)(c->rx.cap - c->rx.len - 1));
}

static void conn_tls_failed(struct ws_conn *c, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[120];

    ERR_error_string_n(e, buf, sizeof(buf));
    if (c->state == CONN_TLS)
        conn_set_end(c, WS_CLOSE_TLS, 0, 0, "TLS with %s port %u failed: %s", c->host, c->port,
                     c->tls_error[0] ? c->tls_error
                     : e             ? buf
                                     : what);
    else
        conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0,
                     "connection to %s port %u lost: TLS: %s", c->host, c->port, e ? buf : what);
    conn_report(c);
}

static void conn_start_upgrade(struct ws_conn *c);

/* TLS: ciphertext in, handshake on or plaintext into rx. -1 when reported. */
static int conn_tls_read(struct ws_conn *c, const uint8_t *data, size_t len)
{
    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        conn_tls_failed(c, "cannot buffer what was read");
        return -1;
    }
    if (c->state == CONN_TLS) {
        int r = SSL_do_handshake(c->ssl);

        if (r != 1) {
            int err = SSL_get_error(c->ssl, r);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                conn_tls_failed(c, "handshake failed");
                return -1;
            }
            conn_want_flush(c);
            return 0;
        }
        conn_start_upgrade(c);
    }
    for (;;) {
        size_t want = READ_CHUNK;
        int n, err;

        if (c->rx_need > c->rx.len - c->rx.head && c->rx_need - (c->rx.len - c->rx.head) > want)
            want = c->rx_need - (c->rx.len - c->rx.head);
        if (obuf_reserve(&c->rx, want) < 0) {
            conn_set_end(c, WS_CLOSE_LOST, WSFRAME_CLOSE_ABNORMAL, 0,
                         "out of memory reading from %s", c->host);
            conn_report(c);
            return -1;
        }
        n = SSL_read(c->ssl, c->rx.data + c->rx.len, (int)(c->rx.cap - c->rx.len - 1));
        if (n > 0) {
            c->rx.len += (size_t)n;
            continue;
        }
        err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_ZERO_RETURN) {
            conn_process_rx(c);
            if (c->state != CONN_CLOSED) {
                conn_set_default_end(c, "the server closed TLS");
                conn_report(c);
            }
            return -1;
        }
        conn_tls_failed(c, "read failed");
        return -1;
    }
    if (BIO_ctrl_pending(c->wbio))
        conn_want_flush(c);
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct ws_sock *s = stream->data;
    struct ws_conn *c = s->c;

    if (!c || c->sock != s || nread == 0)
        return;
    if (c->state >= CONN_CLOSING) {
        /* Our Close is queued, or written and we linger: what comes is
         * dropped (not even decrypted); the end of the stream ends it. */
        if (nread < 0) {
            if (c->lingering)
                conn_finish(c);
            else
                conn_report(c);
        }
        return;
    }
    if (nread < 0) {
        const char *why =
            nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread);
        if (c->state == CONN_UPGRADING)
            conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 0,
                         "WebSocket upgrade at %s port %u failed: %s, no response", c->host,
                         c->port, why);
        conn_set_default_end(c, why);
        conn_report(c);
        return;
    }
    if (c->tls) {
        if (conn_tls_read(c, (const uint8_t *)buf->base, (size_t)nread) < 0)
            return;
    } else {
        c->rx.len += (size_t)nread;
    }
    conn_process_rx(c);
}

/* ---- connecting -------------------------------------------------------- */

static SSL_CTX *transport_ssl_ctx(struct ws_transport *t);

static int verify_cb(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct ws_conn *c = ssl ? SSL_get_ex_data(ssl, ssl_conn_index) : NULL;

    if (!ok && c && !c->tls_error[0]) {
        int err = X509_STORE_CTX_get_error(store);
        snprintf(c->tls_error, sizeof(c->tls_error),
                 "certificate verification failed: %s (depth %d)",
                 X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(store));
    }
    return ok;
}

static bool is_ip_literal(const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;

    return inet_pton(AF_INET6, host, &a6) == 1 || inet_pton(AF_INET, host, &a4) == 1;
}

static int conn_start_tls(struct ws_conn *c)
{
    SSL_CTX *ctx = transport_ssl_ctx(c->t);
    static const unsigned char alpn[] = "\x08http/1.1";
    int r;

    if (!ctx)
        return -1;
    c->ssl = SSL_new(ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        return -1;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_ex_data(c->ssl, ssl_conn_index, c);
    SSL_set_connect_state(c->ssl);
    SSL_set_alpn_protos(c->ssl, alpn, sizeof(alpn) - 1);
    if (is_ip_literal(c->host)) {
        /* No SNI for an address (RFC 6066); the certificate must name it. */
        if (!c->t->insecure && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host))
            return -1;
    } else {
        if (!SSL_set_tlsext_host_name(c->ssl, c->host))
            return -1;
        if (!c->t->insecure) {
            SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (!SSL_set1_host(c->ssl, c->host))
                return -1;
        }
    }
    SSL_set_verify(c->ssl, c->t->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                   c->t->insecure ? NULL : verify_cb);
    c->state = CONN_TLS;
    r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        int err = SSL_get_error(c->ssl, r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            return -1;
    }
    conn_want_flush(c);
    return 0;
}

static void base64(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Queues the GET that asks for the upgrade, with a fresh key. */
static void conn_start_upgrade(struct ws_conn *c)
{
    uint8_t nonce[16], digest[SHA_DIGEST_LENGTH];
    char key[32], keyguid[64];
    int n;

    c->state = CONN_UPGRADING;
    random_bytes(c->t, nonce, sizeof(nonce));
    base64(nonce, sizeof(nonce), key);
    n = snprintf(keyguid, sizeof(keyguid), "%s%s", key, ws_guid);
    SHA1((const unsigned char *)keyguid, (size_t)n, digest);
    base64(digest, sizeof(digest), c->accept);

    n = snprintf(NULL, 0,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "User-Agent: volt-broker/" VOLT_VERSION "\r\n\r\n",
                 c->path, c->host_header, key);
    if (obuf_reserve(&c->tx, (size_t)n + 1) < 0) {
        conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 0, "out of memory");
        conn_abort_soon(c);
        return;
    }
    snprintf((char *)c->tx.data + c->tx.len, (size_t)n + 1,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
             "User-Agent: volt-broker/" VOLT_VERSION "\r\n\r\n",
             c->path, c->host_header, key);
    c->tx.len += (size_t)n;
    c->tx_in += (size_t)n;
    conn_want_flush(c);
}

static bool conn_format_address(struct ws_conn *c, const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET)
        return uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, c->address,
                           sizeof(c->address)) == 0;
    if (ai->ai_family == AF_INET6)
        return uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, c->address,
                           sizeof(c->address)) == 0;
    return false;
}

static void conn_connect_next(struct ws_conn *c);

static void on_connected(uv_connect_t *req, int status)
{
    struct ws_sock *s = req->data;
    struct ws_conn *c = s->c;
    int r;

    if (!c || c->sock != s)
        return; /* given up (closed): nothing to do */
    if (status < 0) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", uv_strerror(status));
        log_debug("ws %s port %u: %s: %s", c->host, c->port, c->address, c->last_error);
        conn_drop_sock(c);
        conn_connect_next(c);
        return;
    }
    c->sock_connected = true;
    uv_tcp_nodelay(&s->tcp, 1);
    r = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (r < 0) {
        conn_set_end(c, WS_CLOSE_CONNECT, 0, 0, "cannot read from %s port %u: %s", c->host, c->port,
                     uv_strerror(r));
        conn_report(c);
        return;
    }
    if (!c->tls) {
        conn_start_upgrade(c);
        return;
    }
    if (conn_start_tls(c) < 0) {
        c->state = CONN_TLS;
        conn_tls_failed(c, "cannot set up TLS");
    }
}

/* Tries the next address; with none left, reports. Only from the loop. */
static void conn_connect_next(struct ws_conn *c)
{
    while (c->next_addr) {
        const struct addrinfo *ai = c->next_addr;
        struct sockaddr_storage sa;
        struct ws_sock *s;
        int r;

        c->next_addr = ai->ai_next;
        if (!conn_format_address(c, ai) || ai->ai_addrlen > sizeof(sa))
            continue;
        /* getaddrinfo() was asked for no service: the port is ours to set. */
        memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET)
            ((struct sockaddr_in *)&sa)->sin_port = htons(c->port);
        else
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons(c->port);
        c->state = CONN_CONNECTING;
        log_debug("ws %s port %u: trying %s", c->host, c->port, c->address);
        s = calloc(1, sizeof(*s));
        if (!s) {
            snprintf(c->last_error, sizeof(c->last_error), "out of memory");
            break;
        }
        s->c = c;
        uv_tcp_init(c->t->loop, &s->tcp);
        s->tcp.data = s;
        s->connect_req.data = s;
        c->sock = s;
        c->handles++;
        r = uv_tcp_connect(&s->connect_req, &s->tcp, (const struct sockaddr *)&sa, on_connected);
        if (r == 0)
            return;
        snprintf(c->last_error, sizeof(c->last_error), "%s", uv_strerror(r));
        log_debug("ws %s port %u: connecting to %s failed at once: %s", c->host, c->port,
                  c->address, c->last_error);
        conn_drop_sock(c);
    }
    conn_set_end(c, WS_CLOSE_CONNECT, 0, 0, "cannot connect to %s port %u (last tried %s: %s)",
                 c->host, c->port, c->address[0] ? c->address : "none",
                 c->last_error[0] ? c->last_error : "no address");
    conn_report(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ws_conn *c = req->data;

    c->resolving = false;
    if (c->state == CONN_CLOSED) {
        if (res)
            uv_freeaddrinfo(res);
        conn_free_if_done(c);
        return;
    }
    if (status < 0) {
        conn_set_end(c, WS_CLOSE_DNS, 0, 0, "cannot resolve %s: %s", c->host, uv_strerror(status));
        conn_report(c);
        return;
    }
    c->addrs = res;
    c->next_addr = res;
    conn_connect_next(c);
}

/* Deadlines (connect, close handshake) and deferred aborts. */
static void on_conn_timer(uv_timer_t *timer)
{
    struct ws_conn *c = timer->data;

    if (c->lingering) {
        conn_finish(c); /* the server did not end TCP in time: we do */
        return;
    }
    if (c->state == CONN_CLOSED)
        return;
    if (!c->abort_due && c->state < CONN_OPEN)
        conn_set_end(c, WS_CLOSE_TIMEOUT, 0, 0, "no WebSocket to %s port %u within the timeout",
                     c->host, c->port);
    /* Else a close handshake ran out of time, or an abort was asked for:
     * conn->end already says why. */
    conn_report(c);
}

/* ---- public API ------------------------------------------------------------ */

static bool is_ipv6_literal(const char *host)
{
    struct in6_addr addr;

    return strchr(host, ':') && inet_pton(AF_INET6, host, &addr) == 1;
}

static bool is_valid_host(const char *host)
{
    size_t len = strlen(host);

    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '[' || ch == ']' || ch == '@')
            return false;
    }
    return !strchr(host, ':') || is_ipv6_literal(host);
}

static bool is_valid_path(const char *path)
{
    if (path[0] != '/')
        return false;
    for (const char *p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    }
    return true;
}

static char *host_header(const char *host, uint16_t port, bool tls)
{
    bool v6 = strchr(host, ':') != NULL;
    bool default_port = port == (tls ? 443 : 80);
    size_t size = strlen(host) + sizeof("[]:65535");
    char *s = malloc(size);

    if (!s)
        return NULL;
    if (default_port)
        snprintf(s, size, v6 ? "[%s]" : "%s", host);
    else
        snprintf(s, size, v6 ? "[%s]:%u" : "%s:%u", host, port);
    return s;
}

int ws_connect(struct ws_transport *t, const struct ws_connect_options *o,
               const struct ws_callbacks *cb, void *userdata, struct ws_conn **out)
{
    struct addrinfo hints;
    struct ws_conn *c;
    int r;

    if (!t || !o || !cb || !out || !o->host || !o->path || o->port == 0)
        return -EINVAL;
    if (t->closing)
        return -ESHUTDOWN;
    if (!is_valid_host(o->host) || !is_valid_path(o->path))
        return -EINVAL;
    if (o->tls && t->plain_only) {
        log_error("wss:// to %s on a transport created for ws:// only", o->host);
        return -EINVAL;
    }

    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->t = t;
    c->cb = *cb;
    c->userdata = userdata;
    c->port = o->port;
    c->tls = o->tls;
    c->max_message = o->max_message_size ? o->max_message_size : DEFAULT_MAX_MESSAGE;
    c->queue_limit = o->send_queue_limit ? o->send_queue_limit : DEFAULT_SEND_QUEUE_LIMIT;
    if (c->queue_limit < WS_SEND_OVERHEAD)
        c->queue_limit = WS_SEND_OVERHEAD;
    c->host = strdup(o->host);
    c->path = strdup(o->path);
    c->host_header = host_header(o->host, o->port, o->tls);
    c->parser = wsframe_parser_new(c->max_message);
    if (!c->host || !c->path || !c->host_header || !c->parser) {
        r = -ENOMEM;
        goto fail;
    }
    c->state = CONN_RESOLVING;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    c->resolver.data = c;
    r = uv_getaddrinfo(t->loop, &c->resolver, on_resolved, c->host, NULL, &hints);
    if (r < 0) {
        log_error("ws %s: cannot start resolving: %s", c->host, uv_strerror(r));
        r = -ENOMEM;
        goto fail;
    }
    c->resolving = true;
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    uv_prepare_init(t->loop, &c->flusher);
    c->flusher.data = c;
    c->handles = 2;
    uv_timer_start(&c->timer, on_conn_timer,
                   o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS, 0);

    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    *out = c;
    return 0;

fail:
    wsframe_parser_free(c->parser);
    free(c->host);
    free(c->path);
    free(c->host_header);
    free(c);
    return r;
}

void ws_close(struct ws_conn *c)
{
    if (!c || c->state == CONN_CLOSED || c->close_requested)
        return;
    c->close_requested = true;
    if (c->state == CONN_OPEN) {
        conn_set_end(c, WS_CLOSE_LOCAL, WSFRAME_CLOSE_NORMAL, 0, "closed by the broker");
        conn_close_with(c, WSFRAME_CLOSE_NORMAL, NULL);
        return;
    }
    if (c->state == CONN_CLOSING)
        return; /* a Close is already under way: it ends as decided */
    conn_set_end(c, WS_CLOSE_LOCAL, 0, 0, "closed by the broker");
    conn_abort_soon(c);
}

/* ---- the transport ------------------------------------------------------ */

static SSL_CTX *transport_ssl_ctx(struct ws_transport *t)
{
    SSL_CTX *ctx;

    if (t->ssl_ctx)
        return t->ssl_ctx;
    if (ssl_conn_index < 0) {
        ssl_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        if (ssl_conn_index < 0)
            return NULL;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (t->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1) {
            log_error("cannot load the CA file %s", t->ca_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (!t->insecure && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        log_error("cannot load the system's CA certificates");
        SSL_CTX_free(ctx);
        return NULL;
    }
    t->ssl_ctx = ctx;
    return ctx;
}

int ws_transport_new(uv_loop_t *loop, const struct ws_transport_options *o,
                     struct ws_transport **out)
{
    struct ws_transport *t;
    int r;

    if (!loop || !out)
        return -EINVAL;
    if (o && o->ca_file) {
        FILE *f = fopen(o->ca_file, "r");
        if (!f) {
            r = -errno;
            log_error("cannot read the CA file %s: %s", o->ca_file, strerror(-r));
            return -EINVAL;
        }
        fclose(f);
    }

    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->loop = loop;
    t->insecure = o && o->insecure;
    t->plain_only = o && o->plain_only;
    t->pool_used = sizeof(t->pool); /* filled at the first use */
    if (o && o->ca_file) {
        t->ca_file = strdup(o->ca_file);
        if (!t->ca_file) {
            free(t);
            return -ENOMEM;
        }
        /* A file that is not PEM is an error now, not at the first wss://. */
        if (!t->plain_only && !transport_ssl_ctx(t)) {
            free(t->ca_file);
            free(t);
            return -EINVAL;
        }
    }
    uv_timer_init(loop, &t->defer);
    t->defer.data = t;
    if (t->insecure)
        log_warn("upstream TLS certificate verification is DISABLED (insecure option): "
                 "for development only, never in production");
    *out = t;
    return 0;
}

static void on_defer_closed(uv_handle_t *handle)
{
    struct ws_transport *t = handle->data;
    ws_transport_closed_cb cb = t->closed_cb;
    void *userdata = t->closed_userdata;

    if (t->ssl_ctx)
        SSL_CTX_free(t->ssl_ctx);
    free(t->ca_file);
    free(t);
    if (cb)
        cb(userdata);
}

static void on_defer(uv_timer_t *timer)
{
    transport_maybe_done(timer->data);
}

/* Once every conn is freed: the transport's own handle, then `closed`. */
static void transport_maybe_done(struct ws_transport *t)
{
    if (t->conns || uv_is_closing((uv_handle_t *)&t->defer))
        return;
    uv_close((uv_handle_t *)&t->defer, on_defer_closed);
}

void ws_transport_close(struct ws_transport *t, ws_transport_closed_cb closed, void *userdata)
{
    if (!t || t->closing)
        return;
    t->closing = true;
    t->closed_cb = closed;
    t->closed_userdata = userdata;
    for (struct ws_conn *c = t->conns; c; c = c->next) {
        if (c->state == CONN_CLOSED)
            continue;
        conn_set_end(c, WS_CLOSE_SHUTDOWN, 0, 0, "transport shutting down");
        conn_abort_soon(c);
    }
    /* Nothing to wait for: `closed` still comes from the loop. */
    uv_timer_start(&t->defer, on_defer, 0, 0);
}
