/* Output batching. peer_send() only appends to the peer's `queued`
 * buffer; writing one frame at a time would cost a write(2) per result.
 * A peer with a batch to start is linked into the flush list of its
 * peer_list, and one uv_prepare_t per list (the flusher) starts the writes
 * of every linked peer. Prepare callbacks run once per loop turn, right
 * before the loop blocks in poll, so whatever was sent in the turn (from
 * I/O callbacks, timers or close callbacks) goes out in one write, and
 * nothing waits for a later wake-up. A check handle, after poll, would
 * miss frames queued by timers and close callbacks until the next event.
 *
 * A write completing (its callback, in the next turn's pending phase or
 * in poll) links the peer again if more was queued meanwhile; frames are
 * never written out of order, as there is one write in flight at most.
 *
 * The flusher is created with the list's first peer and closed when its
 * last peer is released, so the list needs no teardown call and
 * uv_loop_close() sees nothing left once every peer is gone.
 */
#include "peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proto/buf.h"
#include "proto/errors.h"
#include "proto/reader.h"
#include "util/log.h"
#include "util/timerqueue.h"

#define PEER_NAME_MAX   64
#define READ_HINT       (64 * 1024)
#define PEER_MAX_GROUPS 64
/* An output buffer grown past this by a burst is released once drained,
 * so a peer's memory goes back down with its queue (the reader does the
 * same with its buffer). */
#define OUTPUT_KEEP (1024 * 1024)

struct peer_flusher {
    uv_prepare_t prepare;
    /* The read buffer of every peer with nothing buffered: an idle client
     * holds no read buffer of its own (proto_reader_lend). */
    uint8_t *read_buf;
    struct peer *head;          /* peers with a batch to start */
    struct peer *evict_head;    /* peers to close at the next prepare */
    struct timer_queue *timers; /* peers' deadlines (hello, frame) */
};

enum peer_timer_kind { TIMER_DEADLINE, TIMER_FRAME };

struct peer_timer {
    struct timer_node node;
    struct peer *peer;
    enum peer_timer_kind kind;
};

struct peer {
    uv_pipe_t pipe;
    struct peer_list *list;
    struct peer *prev, *next;
    struct peer *flush_prev, *flush_next;
    bool flush_linked;
    uv_write_t write_req;
    uint64_t id;
    pid_t pid;
    uid_t uid;
    gid_t gid;
    char name[PEER_NAME_MAX + 1];
    struct peer_limits limits;
    struct peer_callbacks cb;
    void *owner;
    void *data;
    uint32_t flags;
    struct proto_reader *reader;
    struct proto_buf writing; /* handed to uv_write, untouched until it completes */
    size_t writing_done;      /* its first bytes, written by uv_try_write() before */
    struct proto_buf queued;  /* collecting the next write */
    bool write_in_flight;
    bool closing;
    bool close_after_flush;
    bool slow_consumer;
    char *close_reason; /* set when closing starts (set_text); NULL: none yet */
    /* Accounting and deadlines. */
    struct quota_client quota;
    size_t charged; /* bytes last charged to the quota */
    struct peer_timer deadline, frame_timer;
    int deadline_code;
    char *deadline_message; /* while a deadline is set */
    bool evicting;
    struct peer *evict_next;
    size_t held;   /* what the owner holds for this peer (kept emits) */
    gid_t *groups; /* supplementary groups (SO_PEERGROUPS), exactly n_groups */
    uint32_t n_groups;
};

/* Text a peer keeps only while it needs it (a close reason, a deadline's
 * message): allocated then, not carried in every peer for its whole life.
 * Out of memory keeps a fixed text rather than losing the event. */
static void set_text(char **slot, const char *text)
{
    char *copy;

    if (*slot == text)
        return;
    copy = strdup(text);
    free(*slot);
    *slot = copy;
}

static const char *text_or(const char *text, const char *fallback)
{
    return text ? text : fallback;
}

static void flusher_closed(uv_handle_t *h)
{
    struct peer_flusher *f = h->data;

    free(f->read_buf);
    free(f);
}

static void on_peer_timer(struct timer_node *node, void *ud);
static bool account(struct peer *p, bool self_ok);

/* The list's flusher, made with its first peer. 0 or -ENOMEM. */
static int flusher_ensure(struct peer_list *l, uv_loop_t *loop)
{
    struct peer_flusher *f;

    if (l->flusher)
        return 0;
    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    if (timer_queue_new(&f->timers, loop, on_peer_timer, NULL) < 0) {
        free(f);
        return -ENOMEM;
    }
    uv_prepare_init(loop, &f->prepare);
    f->prepare.data = f;
    l->flusher = f;
    return 0;
}

/* Called when the last peer is released: no peer is linked any more. */
static void flusher_release(struct peer_list *l)
{
    struct peer_flusher *f = l->flusher;

    l->flusher = NULL;
    timer_queue_close(f->timers);
    uv_close((uv_handle_t *)&f->prepare, flusher_closed);
}

static void flush_unlink(struct peer *p)
{
    struct peer_flusher *f = p->list->flusher;

    if (!p->flush_linked)
        return;
    if (p->flush_prev)
        p->flush_prev->flush_next = p->flush_next;
    else
        f->head = p->flush_next;
    if (p->flush_next)
        p->flush_next->flush_prev = p->flush_prev;
    p->flush_prev = p->flush_next = NULL;
    p->flush_linked = false;
}

static void on_flush(uv_prepare_t *h);

/* Has the peer's batch started before the loop next waits. */
static void flush_link(struct peer *p)
{
    struct peer_flusher *f = p->list->flusher;

    if (p->flush_linked)
        return;
    if (!f->head)
        uv_prepare_start(&f->prepare, on_flush);
    p->flush_prev = NULL;
    p->flush_next = f->head;
    if (f->head)
        f->head->flush_prev = p;
    f->head = p;
    p->flush_linked = true;
}

static void list_remove(struct peer *p)
{
    struct peer_list *l = p->list;

    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (--l->count == 0)
        flusher_release(l);
}

struct peer *peer_list_first(const struct peer_list *l)
{
    return l->head;
}

struct peer *peer_list_next(const struct peer *p)
{
    return p->next;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    list_remove(p);
    proto_reader_free(p->reader);
    proto_buf_free(&p->writing);
    proto_buf_free(&p->queued);
    free(p->close_reason);
    free(p->deadline_message);
    free(p->groups);
    free(p);
}

static void really_close(struct peer *p)
{
    if (uv_is_closing((uv_handle_t *)&p->pipe))
        return;
    uv_close((uv_handle_t *)&p->pipe, on_handle_closed);
}

void peer_close(struct peer *p, const char *reason)
{
    if (p->closing)
        return;
    p->closing = true;
    set_text(&p->close_reason, reason);
    flush_unlink(p);
    timer_queue_remove(p->list->flusher->timers, &p->deadline.node);
    timer_queue_remove(p->list->flusher->timers, &p->frame_timer.node);
    uv_read_stop((uv_stream_t *)&p->pipe);
    p->cb.closing(p, reason);
    /* After the owner's callback: it may still look at the account. */
    if (p->list->quota)
        quota_leave(p->list->quota, &p->quota);
    /* Not waiting for a write in flight: it may never finish (a client
     * that stopped reading). uv_close() cancels it, its callback runs with
     * UV_ECANCELED before the handle's, and the buffers live until then. */
    really_close(p);
}

static void start_write(struct peer *p);

/* The close decided earlier (a flushing close, an eviction), for the
 * reason given then. */
static void close_for_saved_reason(struct peer *p)
{
    peer_close(p, text_or(p->close_reason, "closed"));
}

static void on_write_done(uv_write_t *req, int status)
{
    struct peer *p = req->data;

    p->write_in_flight = false;
    proto_buf_reset(&p->writing);
    p->writing_done = 0;
    if (p->writing.cap > OUTPUT_KEEP)
        proto_buf_free(&p->writing);
    if (p->closing) {
        really_close(p);
        return;
    }
    if (p->evicting)
        return;
    account(p, false);
    if (status < 0) {
        char why[96];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(status));
        peer_close(p, why);
        return;
    }
    if (p->queued.len) {
        flush_link(p);
        return;
    }
    if (p->close_after_flush)
        close_for_saved_reason(p);
}

/* Starts the peer's batch, or finishes a flushing close. */
static void peer_flush(struct peer *p)
{
    if (p->closing || p->evicting || p->write_in_flight)
        return; /* on_write_done() links it again */
    if (p->queued.len) {
        start_write(p);
        return;
    }
    if (p->close_after_flush)
        close_for_saved_reason(p);
}

static void on_flush(uv_prepare_t *h)
{
    struct peer_flusher *f = h->data;
    struct peer *p;

    /* Evictions first: their closing callbacks run here, outside any walk
     * over the clients, and may send to others (linked just below). */
    while ((p = f->evict_head)) {
        f->evict_head = p->evict_next;
        p->evict_next = NULL;
        close_for_saved_reason(p);
    }
    /* A write failing closes its peer, and the closing callback may send
     * to other peers: they are linked here and served in this same run. */
    while ((p = f->head)) {
        flush_unlink(p);
        peer_flush(p);
    }
    uv_prepare_stop(h);
}

/* Closes p at the next prepare, not now: the caller may be in the middle
 * of a walk over the clients (a broadcast) that p's closing callback would
 * unlink. Reading and sending stop at once and its account is released at
 * once, so it is no longer counted while it waits. */
static void peer_evict(struct peer *p, const char *reason)
{
    struct peer_flusher *f = p->list->flusher;

    if (p->closing || p->evicting)
        return;
    p->evicting = true;
    set_text(&p->close_reason, reason);
    uv_read_stop((uv_stream_t *)&p->pipe);
    flush_unlink(p);
    if (p->list->quota)
        quota_leave(p->list->quota, &p->quota);
    p->evict_next = f->evict_head;
    f->evict_head = p;
    uv_prepare_start(&f->prepare, on_flush);
}

size_t peer_memory(const struct peer *p)
{
    return sizeof(*p) + proto_reader_capacity(p->reader) + p->writing.cap + p->queued.cap + p->held;
}

/* Charges what p holds now to its quota and cuts whoever is over a limit:
 * p itself at once when `self_ok` (the caller can take it), others (and p
 * otherwise) at the next prepare. Returns false when p was closed. */
static bool account(struct peer *p, bool self_ok)
{
    struct quota *q = p->list->quota;
    struct quota_client *victim;
    const char *why = NULL;
    size_t now = peer_memory(p);
    char reason[200];

    if (!q || !p->quota.admitted || now == p->charged)
        return true;
    p->charged = now;
    victim = quota_charge(q, &p->quota, now, &why);
    for (; victim; victim = quota_over(q, &why)) {
        struct peer *v = victim->owner;
        snprintf(reason, sizeof(reason), "memory: %s; this client held %llu bytes, the most", why,
                 (unsigned long long)victim->bytes);
        quota_count_cut(q);
        if (v == p && self_ok) {
            peer_close(p, reason);
            return false;
        }
        peer_evict(v, reason); /* releases its account: the loop ends */
    }
    return !p->closing && !p->evicting;
}

static void on_peer_timer(struct timer_node *node, void *ud)
{
    struct peer_timer *t = container_of(node, struct peer_timer, node);
    struct peer *p = t->peer;
    char reason[200];

    (void)ud;
    if (p->closing || p->evicting)
        return;
    if (t->kind == TIMER_FRAME) {
        snprintf(reason, sizeof(reason), "a frame was not completed within %u ms",
                 p->limits.frame_timeout_ms);
        peer_send_error(p, PROTO_E_BAD_FRAME, reason, reason);
        return;
    }
    const char *message = text_or(p->deadline_message, "deadline passed");
    peer_send_error(p, p->deadline_code, message, message);
}

void peer_set_deadline(struct peer *p, uint32_t timeout_ms, int code, const char *message)
{
    struct timer_queue *tq = p->list->flusher->timers;

    p->deadline_code = code;
    set_text(&p->deadline_message, message);
    timer_queue_update(tq, &p->deadline.node, timer_queue_deadline_in(tq, timeout_ms));
}

void peer_clear_deadline(struct peer *p)
{
    timer_queue_remove(p->list->flusher->timers, &p->deadline.node);
    free(p->deadline_message);
    p->deadline_message = NULL;
}

void peer_set_held(struct peer *p, size_t bytes)
{
    p->held = bytes;
    if (!p->closing && !p->evicting)
        account(p, false);
}

struct quota_client *peer_quota(struct peer *p)
{
    return &p->quota;
}

bool peer_in_group(const struct peer *p, gid_t gid)
{
    if (p->gid == gid)
        return true;
    for (uint32_t i = 0; i < p->n_groups; i++) {
        if (p->groups[i] == gid)
            return true;
    }
    return false;
}

static void start_write(struct peer *p)
{
    struct proto_buf tmp = p->writing;
    uv_buf_t b;
    int rc;

    /* Most batches fit in the socket: uv_try_write() writes them without a
     * write request, whose deferred callback costs libuv a zero-timeout
     * poll and an epoll_ctl() per write. Only the rest goes to uv_write(). */
    b = uv_buf_init((char *)p->queued.data, (unsigned)p->queued.len);
    rc = uv_try_write((uv_stream_t *)&p->pipe, &b, 1);
    if (rc < 0 && rc != UV_EAGAIN) {
        char why[96];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(rc));
        peer_close(p, why);
        return;
    }
    if (rc < 0)
        rc = 0;
    if ((size_t)rc == p->queued.len) {
        proto_buf_reset(&p->queued);
        /* Drained at once: as in on_write_done(), a burst's buffer goes. */
        if (p->queued.cap > OUTPUT_KEEP) {
            proto_buf_free(&p->queued);
            if (!account(p, false))
                return;
        }
        if (p->close_after_flush)
            close_for_saved_reason(p);
        return;
    }
    /* The rest goes from where the socket stopped taking it: no moving
     * of what is left (a burst of large results is megabytes). */
    p->writing = p->queued;
    p->writing_done = (size_t)rc;
    p->queued = tmp;
    b = uv_buf_init((char *)p->writing.data + rc, (unsigned)(p->writing.len - (size_t)rc));
    p->write_req.data = p;
    rc = uv_write(&p->write_req, (uv_stream_t *)&p->pipe, &b, 1, on_write_done);
    if (rc < 0) {
        char why[96];
        proto_buf_reset(&p->writing);
        p->writing_done = 0;
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(rc));
        peer_close(p, why);
        return;
    }
    p->write_in_flight = true;
}

size_t peer_queue_bytes(const struct peer *p)
{
    return p->writing.len - p->writing_done + p->queued.len;
}

int peer_send(struct peer *p, const struct proto_msg *m)
{
    size_t before = p->queued.len;
    int rc;

    if (p->closing || p->evicting)
        return PROTO_E_BROKER_GONE;
    rc = proto_msg_encode(&p->queued, m, p->limits.frame.max_frame);
    if (rc < 0)
        return rc;
    if (p->cb.sent)
        p->cb.sent(p, p->queued.data + before + PROTO_LENGTH_PREFIX,
                   p->queued.len - before - PROTO_LENGTH_PREFIX);
    if (peer_queue_bytes(p) > p->limits.max_queue_bytes) {
        char why[128];
        snprintf(why, sizeof(why), "slow consumer: %zu bytes queued, limit %u", peer_queue_bytes(p),
                 p->limits.max_queue_bytes);
        p->slow_consumer = true;
        peer_close(p, why);
        return PROTO_E_LIMIT_EXCEEDED;
    }
    if (!account(p, true))
        return PROTO_E_LIMIT_EXCEEDED;
    if (!p->write_in_flight)
        flush_link(p);
    return 0;
}

void peer_send_and_close(struct peer *p, const struct proto_msg *m, const char *reason)
{
    /* The first fatal frame and its reason win; a second is dropped. */
    if (p->closing || p->evicting || p->close_after_flush)
        return;
    set_text(&p->close_reason, reason);
    p->close_after_flush = true;
    uv_read_stop((uv_stream_t *)&p->pipe);
    /* Sent: on_flush() or on_write_done() closes once it is out. */
    if (peer_send(p, m) < 0)
        peer_close(p, reason);
}

int peer_send_result(struct peer *p, uint64_t id, int code, const char *message,
                     const struct proto_span *data, const struct proto_span *server_code)
{
    struct proto_msg m = {.op = PROTO_OP_RESULT};

    m.fields = PROTO_F_ID | PROTO_F_OK;
    m.id = id;
    m.ok = code == 0;
    if (code == 0) {
        if (data && data->len) {
            m.fields |= PROTO_F_DATA;
            m.data = *data;
        }
        return peer_send(p, &m);
    }
    const char *name = proto_error_name(code);
    m.fields |= PROTO_F_CODE | PROTO_F_MESSAGE;
    m.code = proto_span_str(name, (uint32_t)strlen(name));
    m.message = proto_span_str(message ? message : "", message ? (uint32_t)strlen(message) : 0);
    if (server_code && server_code->len) {
        m.fields |= PROTO_F_SERVER_CODE;
        m.server_code = *server_code;
    }
    return peer_send(p, &m);
}

void peer_send_error(struct peer *p, int code, const char *message, const char *close_reason)
{
    struct proto_msg m = {.op = PROTO_OP_ERROR};
    const char *name = proto_error_name(code);

    m.fields = PROTO_F_CODE | PROTO_F_MESSAGE;
    m.code = proto_span_str(name, (uint32_t)strlen(name));
    m.message = proto_span_str(message, (uint32_t)strlen(message));
    if (close_reason)
        peer_send_and_close(p, &m, close_reason);
    else
        peer_send(p, &m);
}

void peer_send_frame_error(struct peer *p, const struct proto_msg *m, int code, const char *message)
{
    struct proto_msg e = {.op = PROTO_OP_ERROR};
    const char *name = proto_error_name(code);
    const char *about;

    if (m && proto_op_answered_by_id(m->op, proto_msg_has(m, PROTO_F_ID))) {
        peer_send_result(p, m->id, code, message, NULL, NULL);
        return;
    }
    e.fields = PROTO_F_CODE | PROTO_F_MESSAGE;
    e.code = proto_span_str(name, (uint32_t)strlen(name));
    e.message = proto_span_str(message, (uint32_t)strlen(message));
    if (m && proto_msg_has(m, PROTO_F_ID)) {
        e.fields |= PROTO_F_ID;
        e.id = m->id;
    }
    if (m && (about = proto_op_name(m->op))) {
        e.fields |= PROTO_F_ABOUT;
        e.about = proto_span_str(about, (uint32_t)strlen(about));
    }
    peer_send(p, &e);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct peer *p = h->data;
    void *ptr = NULL;
    size_t len = 0;

    (void)suggested;
    /* Between frames: the shared buffer, whose frames are handed out in
     * on_read() before any other peer reads into it. */
    if (proto_reader_pending(p->reader) == 0 && !proto_reader_fatal(p->reader)) {
        struct peer_flusher *f = p->list->flusher;
        if (f->read_buf || (f->read_buf = malloc(READ_HINT))) {
            *buf = uv_buf_init((char *)f->read_buf, READ_HINT);
            return;
        }
    }
    if (proto_reader_space(p->reader, READ_HINT, &ptr, &len) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(ptr, (unsigned)(len > UINT32_MAX ? UINT32_MAX : len));
}

/* Hands out every complete frame; returns how many there were. */
static unsigned drain_frames(struct peer *p)
{
    struct proto_span frame;
    unsigned frames = 0;
    int rc;

    while (!p->closing && !p->evicting && !p->close_after_flush) {
        rc = proto_reader_next(p->reader, &frame);
        if (rc == 0)
            return frames;
        frames++;
        if (rc > 0) {
            p->cb.frame(p, &frame);
            continue;
        }
        if (proto_reader_fatal(p->reader)) {
            const char *why = proto_reader_error(p->reader);
            char reason[200];
            snprintf(reason, sizeof(reason), "protocol error: %s", why);
            peer_send_error(p, rc, why, reason);
            return frames;
        }
        p->cb.bad_frame(p, rc, proto_reader_error(p->reader));
    }
    return frames;
}

/* The clock of the frame in progress starts with its first byte: armed
 * when a partial frame is left and none was (or a new one began after a
 * complete one), disarmed when nothing is left. A client streaming frames
 * back to back is never cut; one that stalls inside a frame is. */
static void watch_partial_frame(struct peer *p, unsigned frames_done)
{
    struct timer_queue *tq = p->list->flusher->timers;
    bool armed = timer_node_is_armed(&p->frame_timer.node);

    if (!p->limits.frame_timeout_ms || p->closing || p->evicting)
        return;
    if (proto_reader_pending(p->reader) == 0) {
        timer_queue_remove(tq, &p->frame_timer.node);
        return;
    }
    if (!armed || frames_done)
        timer_queue_update(tq, &p->frame_timer.node,
                           timer_queue_deadline_in(tq, p->limits.frame_timeout_ms));
}

/* A read into the shared buffer: its whole frames handed out from there,
 * then what is left of a frame copied into the peer's own buffer (charged
 * from then on, like any buffered bytes). */
static void read_lent(struct peer *p, const uint8_t *data, size_t n)
{
    unsigned frames;

    if (proto_reader_lend(p->reader, data, n) < 0) {
        peer_close(p, "internal error: read buffer");
        return;
    }
    frames = drain_frames(p);
    if (proto_reader_unlend(p->reader, READ_HINT) < 0) {
        peer_close(p, "out of memory");
        return;
    }
    watch_partial_frame(p, frames);
    if (!p->closing && !p->evicting)
        account(p, true);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct peer *p = s->data;

    if (nread == UV_EOF) {
        peer_close(p, "client closed the connection");
        return;
    }
    if (nread < 0) {
        char why[96];
        snprintf(why, sizeof(why), "read failed: %s", uv_strerror((int)nread));
        peer_close(p, why);
        return;
    }
    if ((uint8_t *)buf->base == p->list->flusher->read_buf) {
        read_lent(p, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    proto_reader_commit(p->reader, (size_t)nread);
    /* Charged before the frames are handled: a buffer grown by a huge
     * frame counts from its first bytes. */
    if (!account(p, true))
        return;
    unsigned frames = drain_frames(p);
    /* The frame that straddled reads is done: later reads go through the
     * shared buffer again, so this one is not kept. */
    proto_reader_trim(p->reader);
    watch_partial_frame(p, frames);
    if (!p->closing && !p->evicting)
        account(p, true);
}

struct peer *peer_new(uv_loop_t *loop, uv_pipe_t *server, struct peer_list *list, uint64_t id,
                      const struct peer_limits *limits, const struct peer_callbacks *cb,
                      void *owner, int *err)
{
    struct peer *p = calloc(1, sizeof(*p));
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;
    int rc;

    if (!p) {
        *err = -ENOMEM;
        return NULL;
    }
    p->id = id;
    p->limits = *limits;
    p->cb = *cb;
    p->owner = owner;
    p->quota.owner = p;
    timer_node_init(&p->deadline.node);
    timer_node_init(&p->frame_timer.node);
    p->deadline.peer = p->frame_timer.peer = p;
    p->deadline.kind = TIMER_DEADLINE;
    p->frame_timer.kind = TIMER_FRAME;
    p->reader = proto_reader_new(&limits->frame);
    if (!p->reader || flusher_ensure(list, loop) < 0) {
        proto_reader_free(p->reader);
        free(p);
        *err = -ENOMEM;
        return NULL;
    }
    p->list = list;
    p->next = list->head;
    if (list->head)
        list->head->prev = p;
    list->head = p;
    list->count++;
    rc = uv_pipe_init(loop, &p->pipe, 0);
    if (rc == 0)
        rc = uv_accept((uv_stream_t *)server, (uv_stream_t *)&p->pipe);
    p->pipe.data = p;
    if (rc < 0) {
        *err = rc;
        goto fail_handle;
    }
    if (uv_fileno((uv_handle_t *)&p->pipe, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        *err = -errno;
        goto fail_handle;
    }
    p->pid = cred.pid;
    p->uid = cred.uid;
    p->gid = cred.gid;
    /* Supplementary groups count for allowedGids too (Linux 4.13+). */
    gid_t groups[PEER_MAX_GROUPS];
    socklen_t glen = sizeof(groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0 && glen > 0 &&
        (p->groups = malloc(glen)))
        p->n_groups = glen / sizeof(groups[0]);
    if (p->groups)
        memcpy(p->groups, groups, (size_t)p->n_groups * sizeof(groups[0]));
    return p;

fail_handle:
    /* The handle was initialised: it must go through uv_close. */
    p->closing = true;
    really_close(p);
    return NULL;
}

int peer_start(struct peer *p)
{
    return uv_read_start((uv_stream_t *)&p->pipe, on_alloc, on_read);
}

bool peer_is_closing(const struct peer *p)
{
    return p->closing;
}

bool peer_is_slow_consumer(const struct peer *p)
{
    return p->slow_consumer;
}

uint64_t peer_id(const struct peer *p)
{
    return p->id;
}

pid_t peer_pid(const struct peer *p)
{
    return p->pid;
}

uid_t peer_uid(const struct peer *p)
{
    return p->uid;
}

gid_t peer_gid(const struct peer *p)
{
    return p->gid;
}

void *peer_owner(const struct peer *p)
{
    return p->owner;
}

void peer_set_data(struct peer *p, void *data)
{
    p->data = data;
}

void *peer_data(const struct peer *p)
{
    return p->data;
}

const char *peer_name(const struct peer *p)
{
    return p->name;
}

void peer_set_name(struct peer *p, const char *name, size_t len)
{
    size_t n = len < PEER_NAME_MAX ? len : PEER_NAME_MAX;
    /* Keep logs one line and printable whatever a client calls itself. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        p->name[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    p->name[n] = '\0';
}

uint32_t peer_flags(const struct peer *p)
{
    return p->flags;
}

void peer_set_flags(struct peer *p, uint32_t flags)
{
    p->flags = flags;
}
