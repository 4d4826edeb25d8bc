/* WebSocket transport on libwebsockets 4.1.6 with a foreign libuv loop.
 *
 * The header says what this module promises; this is how it keeps the
 * promises on top of the lws version Debian 12 ships, whose behaviour
 * below was read in its source (tag v4.1.6) and checked by test-ws.c.
 *
 * Who owns a wsi. lws calls one protocol callback for every wsi, with the
 * ws_conn pointer we stored as the wsi's opaque user data. A wsi can
 * outlive our interest in it: lws_client_connect_via_info() may return
 * NULL after it already put the wsi on the loop (its socket then closes
 * through uv_close() and WSI_DESTROY arrives later), and after we report a
 * connection closed lws still calls back while it tears the wsi down. So
 * a callback is only believed when the opaque pointer is a live conn
 * (conn_from_wsi() checks the transport's list) whose current wsi is this
 * one; everything else is ignored. While inside connect_via_info() the
 * new wsi is not known yet, yet lws may already call back for it (for
 * example WSI_CREATE when a loopback connect() completes at once): the
 * conn being connected adopts the first wsi it hears about.
 *
 * One report. Every way a connection ends goes through conn_report():
 * a NULL return of connect_via_info() (lws suppresses CONNECTION_ERROR
 * inside that call), CLIENT_CONNECTION_ERROR (pre-open failures; lws makes
 * it exclusive with CLIENT_CLOSED), CLIENT_CLOSED, WSI_DESTROY as a last
 * resort, and our own decisions (timeout, ws_close() before open,
 * shutdown). The first cause decided is kept in conn->end, later ones are
 * ignored, and conn_report() detaches the wsi before calling on_close.
 * Inside connect_via_info() lws may even deliver CLIENT_CLOSED or
 * WSI_DESTROY for the wsi it is about to give up on (seen when socket()
 * fails): those are only noted, and conn_connect_next() acts once the
 * call returned, since reporting from in there could free the conn under
 * its caller.
 *
 * Where the failure happened. lws says "Unable to connect", "HS: ..." or
 * an OpenSSL sentence; we classify by how far the conn got instead:
 * WSI_CREATE means TCP is up (lws calls it right after connect()
 * completes), APPEND_HANDSHAKE_HEADER means TLS is done and the upgrade
 * request is being written. The HTTP status of a refused upgrade is still
 * readable (lws_http_client_http_response()) during CONNECTION_ERROR.
 * For a refused certificate lws only offers an OpenSSL error stack
 * ("error:00000001:lib(0)::reason(1)"), so the verification error is
 * taken from OpenSSL in PERFORM_SERVER_CERT_VERIFICATION.
 *
 * Receiving. Never return nonzero from CLIENT_RECEIVE: lws 4.1.6 then
 * skips resetting its rx buffer index and, if the frame goes on, writes
 * the rest of it past the end of that buffer (a heap overflow, found by
 * valgrind when closing on a message over max_message_size). Closing is
 * requested from the next WRITEABLE instead.
 *
 * Doing things outside lws callbacks. lws must not be re-entered from its
 * own callbacks for some operations (connecting the next address, killing
 * a wsi), and ws_close() must not report synchronously. One transport
 * timer does that work: conns carry `work` flags and a deadline, and
 * transport_schedule() arms the timer for the earliest of them. Killing
 * uses LWS_TO_KILL_SYNC from that timer: LWS_TO_KILL_ASYNC is not enough
 * with a foreign libuv loop in 4.1.6, because inserting the 0 s timeout
 * does not re-arm lws's uv timer, so the kill waits for unrelated
 * traffic.
 *
 * Sending. Each message is a record in one byte array: a header, LWS_PRE
 * bytes of headroom and the payload. Messages larger than TX_CHUNK go out
 * as several frames of one message (NO_FIN + CONTINUATION): lws 4.1 sends
 * at most tx_packet_size per write and copies the rest into a heap
 * buflist, which is the allocation we avoid. The headroom of frame k is
 * the tail of frame k-1, already on the wire (or in lws's buflist).
 *
 * Asking for WRITEABLE is what costs: lws's libuv glue turns every change
 * of the wanted events into uv_poll_start(), which is an epoll_ctl(DEL)
 * at once and an epoll_ctl(ADD) at the next poll, and lws clears POLLOUT
 * before each WRITEABLE. So one WRITEABLE writes frames until the queue is
 * empty, the socket is full or a bound is reached (fairness to reading),
 * and asks again only if something is left; ws_send() asks only when the
 * queue was empty (otherwise a WRITEABLE is already due: the queue is
 * never left non-empty without one). The socket is full when a write was
 * partial: lws then keeps the rest in its buflist, reports the whole frame
 * written and says so in lws_partial_buffered(). Nothing more may be
 * written until the next WRITEABLE (lws flushes the buflist first): a
 * further lws_write() would be appended behind the buflist and report what
 * was drained instead. lws_partial_buffered() costs nothing, where
 * lws_send_pipe_choked() is a poll(2) per call, a system call per frame;
 * the price is that a full socket is found by a write that is refused
 * (EAGAIN) and a frame copied to the buflist, as any partial write does.
 *
 * Teardown (lws 4.1.6, foreign loop). lws_context_destroy() closes every
 * wsi and, once their uv handles are closed, closes its own idle and
 * timer handles, and then stops: the context is only freed by a second
 * lws_context_destroy() call, which must come after those handles are
 * closed (they live inside the context). lws gives no signal for that,
 * so we poll the loop (uv_walk) for handles whose data is the context,
 * which is how lws tags its static handles, and call it again when none
 * is left. info.pcontext tells us the context is gone.
 */
#include "upstream/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 20000u
#define DEFAULT_MAX_MESSAGE        (16u << 20)
#define DEFAULT_SEND_QUEUE_LIMIT   (4u << 20)
/* How long a polite close may take (queued data, Close handshake). */
#define CLOSE_GRACE_MS 5000u
/* lws hands received data up in pieces of this size and sends at most
 * this much per write; also our frame size for large messages. */
#define TX_CHUNK (32u * 1024u)
/* At most this much per WRITEABLE callback (see "Sending" above). */
#define TX_BATCH_FRAMES 64u
#define TX_BATCH_BYTES  (256u * 1024u)
/* Teardown: how often to look for lws's handles, and when to complain. */
#define TEARDOWN_POLL_MS 1u
#define TEARDOWN_WARN_MS 5000u
#define TEXT_MAX         256

enum conn_state {
    CONN_RESOLVING,  /* uv_getaddrinfo() running */
    CONN_CONNECTING, /* TCP connect to one of the addresses */
    CONN_TLS,        /* TCP up, TLS handshake */
    CONN_UPGRADING,  /* upgrade request written, waiting for 101 */
    CONN_OPEN,
    CONN_CLOSED, /* on_close delivered; freed once the resolver returned */
};

enum conn_work {
    WORK_NEXT_ADDRESS = 1u << 0, /* TCP failed, try the next address */
    WORK_ABORT = 1u << 1,        /* drop now, conn->end says why */
};

/* The cause of the end of a connection, decided once. */
struct conn_end {
    bool set;
    enum ws_close_cause cause;
    int code;
    int http_status;
    char text[TEXT_MAX];
};

/* Send queue record; LWS_PRE bytes of headroom and the payload follow. */
struct tx_record {
    size_t len;  /* payload bytes */
    size_t size; /* whole record, aligned */
    bool binary;
};

struct ws_conn {
    struct ws_transport *t;
    struct ws_conn *prev, *next;
    struct ws_callbacks cb;
    void *userdata;

    char *host;        /* as given: for DNS and messages */
    char *host_header; /* Host header, also lws's name for SNI and the cert check */
    char *path;
    uint16_t port;
    bool tls;
    size_t max_message;
    size_t queue_limit;

    enum conn_state state;
    bool was_open;
    bool close_requested; /* ws_close(): no more sends or messages */
    bool close_frame_due; /* send a Close with end.code at the next WRITEABLE */
    unsigned work;
    uint64_t deadline; /* uv_now() ms; 0: none */
    struct conn_end end;

    uv_getaddrinfo_t resolver;
    bool resolving;
    struct addrinfo *addrs;
    struct addrinfo *next_addr;
    char address[INET6_ADDRSTRLEN]; /* the one being tried */
    char tls_error[128];            /* certificate verification failure */
    bool failed_in_call;            /* the wsi died inside connect_via_info() */
    char fail_detail[TEXT_MAX];     /* ... and lws's words for it */
    struct lws *wsi;

    uint8_t *rx; /* reassembly of a fragmented message */
    size_t rx_len, rx_cap;
    bool rx_binary;

    uint8_t *tx; /* records from tx_head to tx_tail */
    size_t tx_head, tx_tail, tx_cap;
    size_t tx_sent;  /* payload bytes of the head record already written */
    size_t tx_bytes; /* accounted against queue_limit */
};

enum teardown_phase {
    TEARDOWN_NONE,
    TEARDOWN_START,    /* conns being dropped */
    TEARDOWN_LWS,      /* first lws_context_destroy() done, waiting for its handles */
    TEARDOWN_RESOLVER, /* waiting for getaddrinfo requests to come back */
    TEARDOWN_DONE,
};

struct ws_transport {
    uv_loop_t *loop;
    struct lws_context *lws; /* set to NULL by lws when freed (info.pcontext) */
    struct ws_conn *conns;
    struct ws_conn *connecting; /* inside lws_client_connect_via_info() */
    uv_timer_t timer;
    bool insecure;
    bool plain_only;
    enum teardown_phase teardown;
    uint64_t teardown_since;
    bool teardown_warned;
    ws_transport_closed_cb closed_cb;
    void *closed_userdata;
};

_Static_assert(sizeof(struct tx_record) + LWS_PRE + 7 <= WS_SEND_OVERHEAD,
               "WS_SEND_OVERHEAD must cover a record's bookkeeping");

static void transport_schedule(struct ws_transport *t);
static void conn_report(struct ws_conn *c);

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

/* ---- lws logging ---------------------------------------------------- */

/* lws lines look like "[2024/01/01 00:00:00:0000] E: text\n": keep the text. */
static void lws_log_to_ours(int level, const char *line)
{
    const char *text = line;
    size_t len;

    if (text[0] == '[') {
        const char *end = strstr(text, "] ");
        if (end && end[2] && end[3] == ':' && end[4] == ' ')
            text = end + 5;
    }
    len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (level & LLL_ERR)
        log_warn("lws: %.*s", (int)len, text);
    else if (level & LLL_WARN)
        log_info("lws: %.*s", (int)len, text);
    else
        log_debug("lws: %.*s", (int)len, text);
}

/* ---- conn bookkeeping ----------------------------------------------- */

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

/* A callback's wsi -> our conn, or NULL when the wsi is not (or no
 * longer) ours. See the essay at the top. */
static struct ws_conn *conn_from_wsi(struct ws_transport *t, struct lws *wsi)
{
    void *p = lws_get_opaque_user_data(wsi);

    if (!p)
        return NULL;
    for (struct ws_conn *c = t->conns; c; c = c->next) {
        if (c != p)
            continue;
        if (c->wsi == wsi)
            return c;
        if (c == t->connecting && !c->wsi) {
            c->wsi = wsi;
            return c;
        }
        return NULL;
    }
    return NULL;
}

/* Forgets the wsi; lws keeps it until its own close completes, and any
 * later callback for it finds no owner. Only for a wsi lws still has. */
static void conn_detach_wsi(struct ws_conn *c)
{
    if (!c->wsi)
        return;
    lws_set_opaque_user_data(c->wsi, NULL);
    c->wsi = NULL;
}

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
    free(c->host);
    free(c->host_header);
    free(c->path);
    free(c->rx);
    free(c->tx);
    free(c);
    if (t->teardown != TEARDOWN_NONE)
        transport_schedule(t);
}

static void conn_free_if_done(struct ws_conn *c)
{
    if (c->state == CONN_CLOSED && !c->resolving)
        conn_free(c);
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
        /* lws's own sentence for a refused certificate is only an
         * OpenSSL error stack ("error:00000001:lib(0)::reason(1)"). */
        conn_set_end(c, WS_CLOSE_TLS, 0, 0, "TLS with %s port %u failed: %s", c->host, c->port,
                     c->tls_error[0] ? c->tls_error : detail);
        break;
    case CONN_UPGRADING:
        conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, 0, "WebSocket upgrade at %s port %u failed: %s",
                     c->host, c->port, detail);
        break;
    case CONN_OPEN:
    case CONN_CLOSED:
        conn_set_end(c, WS_CLOSE_LOST, 1006, 0, "connection to %s port %u lost: %s", c->host,
                     c->port, detail);
        break;
    }
}

/* Delivers on_close once; the conn may be freed on return. */
static void conn_report(struct ws_conn *c)
{
    struct ws_close_info info;

    if (c->state == CONN_CLOSED)
        return;
    conn_set_default_end(c, "closed");
    conn_detach_wsi(c);
    c->state = CONN_CLOSED;
    c->work = 0;
    c->deadline = 0;
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->resolver);

    info.cause = c->end.cause;
    info.was_open = c->was_open;
    info.code = c->end.code;
    info.http_status = c->end.http_status;
    info.text = c->end.text;
    log_debug("ws %s port %u closed (%s): %s", c->host, c->port, ws_close_cause_name(info.cause),
              info.text);
    if (c->cb.on_close)
        c->cb.on_close(c->userdata, &info);
    conn_free_if_done(c);
}

/* Drops the connection now, without a Close frame, reporting conn->end. */
static void conn_abort(struct ws_conn *c)
{
    struct lws *wsi = c->wsi;

    /* Detach first: the kill calls back synchronously and those
     * callbacks must not report a cause of their own. */
    conn_detach_wsi(c);
    if (wsi)
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    conn_report(c);
}

/* ---- connecting ------------------------------------------------------ */

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

static int conn_ssl_flags(const struct ws_conn *c)
{
    /* No redirects: lws would resolve the new host itself, blocking. */
    int flags = LCCSCF_HTTP_NO_FOLLOW_REDIRECT;

    if (!c->tls)
        return flags;
    flags |= LCCSCF_USE_SSL;
    if (c->t->insecure)
        flags |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                 LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    return flags;
}

/* Starts lws on the next address. On failure of all of them reports
 * (the conn may be freed on return). */
static void conn_connect_next(struct ws_conn *c)
{
    struct ws_transport *t = c->t;

    while (c->next_addr) {
        struct lws_client_connect_info info;
        const struct addrinfo *ai = c->next_addr;
        struct lws *wsi;

        c->next_addr = ai->ai_next;
        if (!conn_format_address(c, ai))
            continue;
        c->state = CONN_CONNECTING;
        log_debug("ws %s port %u: trying %s", c->host, c->port, c->address);

        memset(&info, 0, sizeof(info));
        info.context = t->lws;
        info.address = c->address;
        info.port = c->port;
        info.ssl_connection = conn_ssl_flags(c);
        info.path = c->path;
        info.host = c->host_header;
        info.alpn = "http/1.1";
        info.opaque_user_data = c;

        c->wsi = NULL;
        c->failed_in_call = false;
        strcpy(c->fail_detail, "refused at once");
        t->connecting = c;
        wsi = lws_client_connect_via_info(&info);
        t->connecting = NULL;
        if (wsi && !c->failed_in_call) {
            c->wsi = wsi;
            return;
        }
        /* Gone or going; lws may even have freed it already, so the
         * pointer is dropped without touching the wsi. */
        c->wsi = NULL;
        if (c->state != CONN_CONNECTING) {
            conn_set_default_end(c, c->fail_detail);
            conn_report(c);
            return;
        }
        log_debug("ws %s port %u: connecting to %s failed at once: %s", c->host, c->port,
                  c->address, c->fail_detail);
    }
    conn_set_end(c, WS_CLOSE_CONNECT, 0, 0, "cannot connect to %s port %u (last tried %s: %s)",
                 c->host, c->port, c->address[0] ? c->address : "none", c->fail_detail);
    conn_report(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ws_conn *c = req->data;
    struct ws_transport *t = c->t;

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
        transport_schedule(t);
        return;
    }
    c->addrs = res;
    c->next_addr = res;
    conn_connect_next(c);
    transport_schedule(t);
}

/* ---- the transport timer: deferred work and deadlines ----------------- */

static void conn_service(struct ws_conn *c, uint64_t now)
{
    if (c->state == CONN_CLOSED)
        return;
    if (c->work & WORK_ABORT) {
        conn_abort(c);
        return;
    }
    if (c->work & WORK_NEXT_ADDRESS) {
        c->work &= ~(unsigned)WORK_NEXT_ADDRESS;
        if (!c->deadline || now < c->deadline) {
            conn_connect_next(c);
            return;
        }
    }
    if (c->deadline && now >= c->deadline) {
        if (c->state != CONN_OPEN)
            conn_set_end(c, WS_CLOSE_TIMEOUT, 0, 0, "no WebSocket to %s port %u within the timeout",
                         c->host, c->port);
        /* else a polite close ran out of time: conn->end is LOCAL. */
        conn_abort(c);
    }
}

static bool lws_handles_left(struct ws_transport *t);
static void transport_teardown_step(struct ws_transport *t);

static void on_timer(uv_timer_t *timer)
{
    struct ws_transport *t = timer->data;
    uint64_t now = uv_now(t->loop);
    struct ws_conn *c = t->conns;

    /* A callback may free only the conn being serviced (see conn_report);
     * conns added meanwhile go to the head and wait for the next run. */
    while (c) {
        struct ws_conn *next = c->next;
        conn_service(c, now);
        c = next;
    }
    if (t->teardown != TEARDOWN_NONE)
        transport_teardown_step(t);
    else
        transport_schedule(t);
}

static void transport_schedule(struct ws_transport *t)
{
    uint64_t now = uv_now(t->loop);
    uint64_t due = UINT64_MAX;

    if (t->teardown == TEARDOWN_DONE)
        return;
    for (struct ws_conn *c = t->conns; c; c = c->next) {
        if (c->state == CONN_CLOSED)
            continue;
        if (c->work)
            due = now;
        else if (c->deadline && c->deadline < due)
            due = c->deadline;
    }
    if (t->teardown != TEARDOWN_NONE)
        due = now + (t->teardown == TEARDOWN_LWS ? TEARDOWN_POLL_MS : 0);
    if (due == UINT64_MAX) {
        uv_timer_stop(&t->timer);
        return;
    }
    uv_timer_start(&t->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- receiving --------------------------------------------------------- */

static int conn_rx_reserve(struct ws_conn *c, size_t need)
{
    size_t cap = c->rx_cap ? c->rx_cap : 4096;
    uint8_t *p;

    if (need <= c->rx_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    p = realloc(c->rx, cap);
    if (!p)
        return -ENOMEM;
    c->rx = p;
    c->rx_cap = cap;
    return 0;
}

static void conn_deliver(struct ws_conn *c, const void *data, size_t len, bool binary)
{
    if (c->close_requested || !c->cb.on_message)
        return;
    c->cb.on_message(c->userdata, data, len, binary);
}

/* Closes with conn->end.code once the socket is writable (see
 * "Receiving" at the top for why not from CLIENT_RECEIVE). */
static void conn_close_from_writeable(struct ws_conn *c, struct lws *wsi)
{
    c->close_frame_due = true;
    lws_callback_on_writable(wsi);
}

/* Always 0 (see conn_close_from_writeable()). */
static int conn_receive(struct ws_conn *c, struct lws *wsi, const uint8_t *in, size_t len)
{
    bool first = lws_is_first_fragment(wsi);
    bool final = lws_is_final_fragment(wsi);

    if (c->state != CONN_OPEN || c->close_requested || c->end.set)
        return 0;
    if (first) {
        c->rx_len = 0;
        c->rx_binary = lws_frame_is_binary(wsi);
    }
    if (len > c->max_message || c->rx_len > c->max_message - len) {
        conn_set_end(c, WS_CLOSE_TOO_BIG, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, 0,
                     "message from %s port %u exceeds %zu bytes", c->host, c->port, c->max_message);
        conn_close_from_writeable(c, wsi);
        return 0;
    }
    /* Whole message in one piece: hand lws's buffer up as is (lws
     * terminates it with a 0 byte). */
    if (first && final) {
        conn_deliver(c, len ? in : (const uint8_t *)"", len, c->rx_binary);
        return 0;
    }
    if (conn_rx_reserve(c, c->rx_len + len + 1) < 0) {
        conn_set_end(c, WS_CLOSE_LOST, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, 0,
                     "out of memory for a message from %s", c->host);
        conn_close_from_writeable(c, wsi);
        return 0;
    }
    if (len)
        memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!final)
        return 0;
    c->rx[c->rx_len] = 0;
    len = c->rx_len;
    c->rx_len = 0;
    conn_deliver(c, c->rx, len, c->rx_binary);
    return 0;
}

/* ---- sending ----------------------------------------------------------- */

static size_t record_size(size_t len)
{
    return (sizeof(struct tx_record) + LWS_PRE + len + 7) & ~(size_t)7;
}

static int conn_tx_reserve(struct ws_conn *c, size_t size)
{
    size_t used = c->tx_tail - c->tx_head;
    size_t cap;
    uint8_t *p;

    if (c->tx_tail + size <= c->tx_cap)
        return 0;
    if (c->tx_head > 0 && used + size <= c->tx_cap) {
        memmove(c->tx, c->tx + c->tx_head, used);
        c->tx_head = 0;
        c->tx_tail = used;
        return 0;
    }
    cap = c->tx_cap ? c->tx_cap : 4096;
    while (cap < c->tx_tail + size)
        cap *= 2;
    p = realloc(c->tx, cap);
    if (!p)
        return -ENOMEM;
    c->tx = p;
    c->tx_cap = cap;
    return 0;
}

int ws_send(struct ws_conn *c, const void *data, size_t len, bool binary)
{
    struct tx_record rec;
    size_t size;
    bool was_empty;
    int r;

    if (!c || (!data && len))
        return -EINVAL;
    if (c->state != CONN_OPEN || c->close_requested || c->end.set)
        return -ENOTCONN;
    if (len > c->queue_limit - WS_SEND_OVERHEAD)
        return -EMSGSIZE;
    if (c->tx_bytes + len + WS_SEND_OVERHEAD > c->queue_limit)
        return -ENOBUFS;
    size = record_size(len);
    r = conn_tx_reserve(c, size);
    if (r < 0)
        return r;
    was_empty = c->tx_head == c->tx_tail;
    rec.len = len;
    rec.size = size;
    rec.binary = binary;
    memcpy(c->tx + c->tx_tail, &rec, sizeof(rec));
    if (len)
        memcpy(c->tx + c->tx_tail + sizeof(rec) + LWS_PRE, data, len);
    c->tx_tail += size;
    c->tx_bytes += len + WS_SEND_OVERHEAD;
    /* A non-empty queue already has its WRITEABLE coming. */
    if (was_empty)
        lws_callback_on_writable(c->wsi);
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

/* Writes the next frame of the head record. Its payload bytes, or -1
 * when the write failed (lws then drops the connection). */
static long conn_write_next(struct ws_conn *c, struct lws *wsi)
{
    struct tx_record rec;
    uint8_t *payload;
    size_t chunk;
    bool first, last;
    int flags, n;

    memcpy(&rec, c->tx + c->tx_head, sizeof(rec));
    payload = c->tx + c->tx_head + sizeof(rec) + LWS_PRE;
    chunk = rec.len - c->tx_sent;
    if (chunk > TX_CHUNK)
        chunk = TX_CHUNK;
    first = c->tx_sent == 0;
    last = c->tx_sent + chunk == rec.len;
    flags = lws_write_ws_flags(rec.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, first, last);
    /* The LWS_PRE bytes before payload + tx_sent are the record's
     * headroom or the end of the previous frame, already sent. */
    n = lws_write(wsi, payload + c->tx_sent, chunk, (enum lws_write_protocol)flags);
    if (n < (int)chunk) {
        conn_set_end(c, WS_CLOSE_LOST, 1006, 0, "write to %s port %u failed", c->host, c->port);
        return -1;
    }
    c->tx_sent += chunk;
    if (!last)
        return (long)chunk;
    c->tx_sent = 0;
    c->tx_head += rec.size;
    c->tx_bytes -= rec.len + WS_SEND_OVERHEAD;
    if (c->tx_head == c->tx_tail)
        c->tx_head = c->tx_tail = 0;
    return (long)chunk;
}

/* Writes queued frames while the socket takes them, within the bounds of
 * one callback. 1 when the queue is empty; 0 when something is left (and
 * WRITEABLE asked for again); -1 when a write failed. */
static int conn_write_queued(struct ws_conn *c, struct lws *wsi)
{
    size_t frames = 0, bytes = 0;

    while (c->tx_head != c->tx_tail) {
        long n;

        if (frames >= TX_BATCH_FRAMES || bytes >= TX_BATCH_BYTES) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        n = conn_write_next(c, wsi);
        if (n < 0)
            return -1;
        frames++;
        bytes += (size_t)n;
        /* The socket is full; lws has asked for WRITEABLE to flush it. */
        if (lws_partial_buffered(wsi))
            return c->tx_head == c->tx_tail ? 1 : 0;
    }
    return 1;
}

static int conn_writeable(struct ws_conn *c, struct lws *wsi)
{
    if (c->state != CONN_OPEN)
        return 0;
    if (c->close_frame_due) {
        static const char why[] = "message too big";
        bool too_big = c->end.cause == WS_CLOSE_TOO_BIG;

        lws_close_reason(wsi, (enum lws_close_status)c->end.code,
                         too_big ? (unsigned char *)why : NULL, too_big ? sizeof(why) - 1 : 0);
        return -1;
    }
    if (c->tx_head != c->tx_tail) {
        int r = conn_write_queued(c, wsi);

        if (r < 0)
            return -1;
        /* All out with a close pending: the Close frame goes in a
         * WRITEABLE of its own. (Left over: asked for already.) */
        if (r > 0 && c->close_requested)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->close_requested) {
        /* Everything queued is out: send the Close frame (lws waits for
         * the answer, then CLIENT_CLOSED). */
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    return 0;
}

/* ---- the lws protocol callback --------------------------------------- */

static void conn_on_connection_error(struct ws_conn *c, struct lws *wsi, const char *in, size_t len)
{
    char detail[TEXT_MAX];
    size_t n = in ? strnlen(in, len) : 0;

    if (n)
        snprintf(detail, sizeof(detail), "%.*s", (int)n, in);
    else
        strcpy(detail, "unknown error");
    if (c->state == CONN_CONNECTING && c->next_addr && !c->end.set) {
        log_debug("ws %s port %u: %s: %s, trying the next address", c->host, c->port, c->address,
                  detail);
        conn_detach_wsi(c);
        c->work |= WORK_NEXT_ADDRESS;
        transport_schedule(c->t);
        return;
    }
    if (c->state == CONN_UPGRADING) {
        int status = (int)lws_http_client_http_response(wsi);

        if (status)
            conn_set_end(c, WS_CLOSE_HANDSHAKE, 0, status,
                         "WebSocket upgrade at %s port %u refused: HTTP %d (%s)", c->host, c->port,
                         status, detail);
    }
    conn_set_default_end(c, detail);
    conn_report(c);
}

/* A terminal callback for the wsi being created, from inside
 * lws_client_connect_via_info(): conn_connect_next() deals with it. */
static void conn_note_failure_in_call(struct ws_conn *c, const char *in, size_t len)
{
    size_t n = in ? strnlen(in, len) : 0;

    c->failed_in_call = true;
    if (n)
        snprintf(c->fail_detail, sizeof(c->fail_detail), "%.*s", (int)n, in);
    else
        strcpy(c->fail_detail, "closed at once");
    conn_detach_wsi(c);
}

static void conn_on_peer_close(struct ws_conn *c, const uint8_t *in, size_t len)
{
    int code = 1005; /* "no status received" */
    char reason[124];
    size_t n = 0;

    if (len >= 2) {
        code = (in[0] << 8) | in[1];
        for (size_t i = 2; i < len && n < sizeof(reason) - 1; i++)
            reason[n++] = (in[i] >= 0x20 && in[i] < 0x7f) ? (char)in[i] : '?';
    }
    reason[n] = '\0';
    conn_set_end(c, WS_CLOSE_REMOTE, code, 0, "server %s port %u closed the connection: %d%s%s",
                 c->host, c->port, code, n ? " " : "", reason);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct lws_context *context = lws_get_context(wsi);
    struct ws_transport *t = context ? lws_context_user(context) : NULL;
    struct ws_conn *c;

    if (!t)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_WSI_CREATE:
        c = conn_from_wsi(t, wsi);
        if (c && c->state == CONN_CONNECTING)
            c->state = c->tls ? CONN_TLS : CONN_UPGRADING;
        return 0;

    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        c = conn_from_wsi(t, wsi);
        if (c && c->state < CONN_UPGRADING)
            c->state = CONN_UPGRADING;
        return 0;

    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        /* user: the X509_STORE_CTX, len: OpenSSL's preverify_ok. lws has
         * already cleared the errors the insecure flags allow. */
        c = conn_from_wsi(t, wsi);
        if (c && !len && !c->tls_error[0]) {
            X509_STORE_CTX *store = user;
            int err = X509_STORE_CTX_get_error(store);

            if (err != X509_V_OK)
                snprintf(c->tls_error, sizeof(c->tls_error),
                         "certificate verification failed: %s (depth %d)",
                         X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(store));
        }
        return 0; /* keep OpenSSL's verdict */

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c = conn_from_wsi(t, wsi);
        if (!c || c->state == CONN_CLOSED)
            return 0;
        c->state = CONN_OPEN;
        c->was_open = true;
        c->deadline = 0;
        log_debug("ws %s port %u: open via %s", c->host, c->port, c->address);
        if (c->cb.on_open)
            c->cb.on_open(c->userdata);
        /* on_open may have queued messages or asked to close. */
        if (c->state == CONN_OPEN && (c->tx_head != c->tx_tail || c->close_requested))
            lws_callback_on_writable(wsi);
        return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
        c = conn_from_wsi(t, wsi);
        return c ? conn_receive(c, wsi, in, len) : 0;

    case LWS_CALLBACK_CLIENT_WRITEABLE:
        c = conn_from_wsi(t, wsi);
        return c ? conn_writeable(c, wsi) : 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        c = conn_from_wsi(t, wsi);
        if (c)
            conn_on_peer_close(c, in, len);
        return 0; /* lws answers the Close, then CLIENT_CLOSED */

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        c = conn_from_wsi(t, wsi);
        if (!c)
            return 0;
        if (c == t->connecting) {
            /* Never report (and so maybe free c) under conn_connect_next(). */
            conn_note_failure_in_call(c, reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR ? in : NULL,
                                      len);
            return 0;
        }
        if (reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR) {
            conn_on_connection_error(c, wsi, in, len);
            return 0;
        }
        conn_set_default_end(c, "connection closed");
        conn_report(c);
        return 0;

    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {
        .name = "volt-upstream",
        .callback = ws_callback,
        .rx_buffer_size = TX_CHUNK,
        .tx_packet_size = TX_CHUNK,
    },
    {0},
};

/* ---- public API ---------------------------------------------------------- */

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
    if (t->teardown != TEARDOWN_NONE)
        return -ESHUTDOWN;
    if (!is_valid_host(o->host) || !is_valid_path(o->path))
        return -EINVAL;
    if (o->tls && t->plain_only) {
        log_error("wss:// to %s on a transport created for ws:// only", o->host);
        return -EINVAL;
    }
    if (o->tls && !t->insecure && is_ipv6_literal(o->host)) {
        /* lws 4.1.6 cuts the name it verifies at the first ':'. */
        log_error("wss:// to the IPv6 address %s cannot be verified by libwebsockets 4.1; "
                  "use a host name",
                  o->host);
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
    if (!c->host || !c->path || !c->host_header) {
        r = -ENOMEM;
        goto fail;
    }
    c->state = CONN_RESOLVING;
    c->deadline = uv_now(t->loop) +
                  (o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS);

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

    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    transport_schedule(t);
    *out = c;
    return 0;

fail:
    free(c->host);
    free(c->path);
    free(c->host_header);
    free(c);
    return r;
}

void ws_close(struct ws_conn *c)
{
    struct ws_transport *t;

    if (!c || c->state == CONN_CLOSED || c->close_requested)
        return;
    t = c->t;
    c->close_requested = true;
    conn_set_end(c, WS_CLOSE_LOCAL, c->state == CONN_OPEN ? LWS_CLOSE_STATUS_NORMAL : 0, 0,
                 "closed by the broker");
    if (c->state == CONN_OPEN) {
        c->deadline = uv_now(t->loop) + CLOSE_GRACE_MS;
        lws_callback_on_writable(c->wsi);
    } else {
        c->work |= WORK_ABORT;
    }
    transport_schedule(t);
}

int ws_transport_new(uv_loop_t *loop, const struct ws_transport_options *o,
                     struct ws_transport **out)
{
    struct lws_context_creation_info info;
    void *foreign_loops[1];
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

    lws_set_log_level(LLL_ERR | LLL_WARN | (log_get_level() >= LOG_LEVEL_DEBUG ? LLL_NOTICE : 0),
                      lws_log_to_ours);

    memset(&info, 0, sizeof(info));
    foreign_loops[0] = loop;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = t;
    info.foreign_loops = foreign_loops;
    info.pcontext = &t->lws;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (o && o->ca_file)
        info.client_ssl_ca_filepath = o->ca_file;
    if ((o && o->ca_file) || t->plain_only)
        info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    t->lws = lws_create_context(&info);
    if (!t->lws) {
        log_error("libwebsockets could not create its context");
        free(t);
        return -EIO;
    }
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    if (t->insecure)
        log_warn("upstream TLS certificate verification is DISABLED (insecure option): "
                 "for development only, never in production");
    *out = t;
    return 0;
}

struct walk_state {
    const void *context;
    bool found;
};

static void walk_find_context(uv_handle_t *handle, void *arg)
{
    struct walk_state *w = arg;

    if (handle->data == w->context)
        w->found = true;
}

static bool lws_handles_left(struct ws_transport *t)
{
    struct walk_state w = {t->lws, false};

    uv_walk(t->loop, walk_find_context, &w);
    return w.found;
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct ws_transport *t = handle->data;
    ws_transport_closed_cb cb = t->closed_cb;
    void *userdata = t->closed_userdata;

    free(t);
    if (cb)
        cb(userdata);
}

static void transport_teardown_step(struct ws_transport *t)
{
    uint64_t now = uv_now(t->loop);

    if (t->teardown == TEARDOWN_START) {
        /* on_timer() normally has just dropped every conn, but not those
         * it had passed when an on_close called ws_transport_close(). */
        for (struct ws_conn *c = t->conns; c; c = c->next) {
            if (c->state != CONN_CLOSED) {
                transport_schedule(t);
                return;
            }
        }
        t->teardown = TEARDOWN_LWS;
        t->teardown_since = now;
        lws_context_destroy(t->lws); /* first call: starts closing */
    }
    if (t->teardown == TEARDOWN_LWS) {
        if (t->lws && lws_handles_left(t)) {
            if (!t->teardown_warned && now - t->teardown_since > TEARDOWN_WARN_MS) {
                t->teardown_warned = true;
                log_warn("libwebsockets is slow to close its handles; still waiting");
            }
            transport_schedule(t);
            return;
        }
        if (t->lws)
            lws_context_destroy(t->lws); /* second call: frees it */
        if (t->lws) {
            log_error("libwebsockets did not free its context");
            t->lws = NULL;
        }
        t->teardown = TEARDOWN_RESOLVER;
    }
    if (t->teardown == TEARDOWN_RESOLVER) {
        if (t->conns)
            return; /* conn_free() of the last one calls back here */
        t->teardown = TEARDOWN_DONE;
        uv_close((uv_handle_t *)&t->timer, on_timer_closed);
    }
}

void ws_transport_close(struct ws_transport *t, ws_transport_closed_cb closed, void *userdata)
{
    if (!t || t->teardown != TEARDOWN_NONE)
        return;
    t->teardown = TEARDOWN_START;
    t->closed_cb = closed;
    t->closed_userdata = userdata;
    for (struct ws_conn *c = t->conns; c; c = c->next) {
        if (c->state == CONN_CLOSED)
            continue;
        conn_set_end(c, WS_CLOSE_SHUTDOWN, 0, 0, "transport shutting down");
        c->work |= WORK_ABORT;
    }
    transport_schedule(t);
}
