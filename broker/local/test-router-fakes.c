/* Fakes of session.c and peer.c for test-router: see test-router-fakes.h. */
#include "local/test-router-fakes.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"

#define FAKE_MAX_FRAMES   256
#define FAKE_MAX_REQUESTS 256
#define FAKE_MAX_INBOUND  256
#define FAKE_MAX_EMITS    64

static void copy_text(char *dst, const struct proto_span *s)
{
    uint32_t n = s && s->ptr ? s->len : 0;
    if (n >= FAKE_TEXT)
        n = FAKE_TEXT - 1;
    if (n)
        memcpy(dst, s->ptr, n);
    dst[n] = '\0';
}

static uint32_t copy_bytes(uint8_t *dst, const struct proto_span *s)
{
    uint32_t n = s && s->ptr ? s->len : 0;
    assert(n <= FAKE_TEXT);
    if (n)
        memcpy(dst, s->ptr, n);
    return n;
}

/* ---- peer ---- */

struct peer {
    uint64_t id;
    void *data;
    struct quota *quota;
    struct quota_client account;
    int send_error; /* 0, or what every send fails with */
    bool closed, slow;
    size_t held;
    size_t queue_limit; /* frames */
    bool limited;
    void (*on_close)(struct peer *, void *);
    void *on_close_ud;
    struct fake_frame frames[FAKE_MAX_FRAMES];
    size_t n_frames;
};

struct peer *fake_peer_new(uint64_t id, uint32_t uid, struct quota *quota)
{
    struct peer *p = calloc(1, sizeof(*p));
    const char *why = NULL;

    assert(p);
    p->id = id;
    p->quota = quota;
    if (quota) {
        int rc = quota_admit(quota, &p->account, uid, false, &why);
        assert(rc == 0);
        (void)rc;
    }
    return p;
}

void fake_peer_free(struct peer *p)
{
    if (p && p->quota)
        quota_leave(p->quota, &p->account); /* no-op when it already left */
    free(p);
}

size_t fake_peer_count(const struct peer *p)
{
    return p->n_frames;
}

const struct fake_frame *fake_peer_frame(const struct peer *p, size_t i)
{
    assert(i < p->n_frames);
    return &p->frames[i];
}

const struct fake_frame *fake_peer_last(const struct peer *p)
{
    assert(p->n_frames > 0);
    return &p->frames[p->n_frames - 1];
}

size_t fake_peer_count_op(const struct peer *p, enum proto_op op)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_frames; i++)
        n += p->frames[i].op == op;
    return n;
}

void fake_peer_clear(struct peer *p)
{
    p->n_frames = 0;
}

void fake_peer_set_gone(struct peer *p, bool gone)
{
    p->send_error = gone ? PROTO_E_BROKER_GONE : 0;
}

void fake_peer_set_send_error(struct peer *p, int rc)
{
    p->send_error = rc;
}

void fake_peer_set_queue_limit(struct peer *p, size_t frames,
                               void (*on_close)(struct peer *, void *), void *ud)
{
    p->queue_limit = frames;
    p->limited = true;
    p->on_close = on_close;
    p->on_close_ud = ud;
}

size_t fake_peer_held(const struct peer *p)
{
    return p->held;
}

/* Queues f; a full queue closes the peer as a slow consumer. */
static int queue_frame(struct peer *p, const struct fake_frame *f)
{
    if (p->closed)
        return PROTO_E_BROKER_GONE;
    if (p->send_error)
        return p->send_error;
    assert(p->n_frames < FAKE_MAX_FRAMES);
    p->frames[p->n_frames++] = *f;
    if (p->limited && p->n_frames > p->queue_limit) {
        p->slow = true;
        p->closed = true;
        if (p->on_close)
            p->on_close(p, p->on_close_ud);
        if (p->quota)
            quota_leave(p->quota, &p->account); /* after the owner, as peer.c */
        return PROTO_E_LIMIT_EXCEEDED;
    }
    return 0;
}

int peer_send(struct peer *p, const struct proto_msg *m)
{
    struct fake_frame f = {.op = m->op, .id = m->id, .timeout_ms = m->timeout_ms};

    if (proto_msg_has(m, PROTO_F_COMMAND))
        copy_text(f.command, &m->command);
    if (proto_msg_has(m, PROTO_F_TYPE))
        copy_text(f.type, &m->type);
    if (proto_msg_has(m, PROTO_F_MESSAGE))
        copy_text(f.message, &m->message);
    if (proto_msg_has(m, PROTO_F_DATA))
        f.data_len = copy_bytes(f.data, &m->data);
    else if (proto_msg_has(m, PROTO_F_PAYLOAD))
        f.data_len = copy_bytes(f.data, &m->payload);
    return queue_frame(p, &f);
}

int peer_send_result(struct peer *p, uint64_t id, int code, const char *message,
                     const struct proto_span *data, const struct proto_span *server_code)
{
    struct fake_frame f = {.op = PROTO_OP_RESULT, .id = id, .code = code};

    (void)server_code;
    if (message)
        snprintf(f.message, sizeof(f.message), "%s", message);
    if (code == 0)
        f.data_len = copy_bytes(f.data, data);
    return queue_frame(p, &f);
}

void peer_send_error(struct peer *p, int code, const char *message, const char *close_reason)
{
    struct fake_frame f = {.op = PROTO_OP_ERROR, .code = code};

    (void)close_reason;
    snprintf(f.message, sizeof(f.message), "%s", message);
    queue_frame(p, &f);
}

void peer_send_frame_error(struct peer *p, const struct proto_msg *m, int code, const char *message)
{
    struct fake_frame f = {.op = PROTO_OP_ERROR, .code = code};

    if (m && proto_msg_has(m, PROTO_F_ID) && proto_op_answered_by_id(m->op, true)) {
        peer_send_result(p, m->id, code, message, NULL, NULL);
        return;
    }
    if (m)
        f.id = m->id;
    snprintf(f.message, sizeof(f.message), "%s", message);
    queue_frame(p, &f);
}

void *peer_data(const struct peer *p)
{
    return p->data;
}

void peer_set_data(struct peer *p, void *data)
{
    p->data = data;
}

uint64_t peer_id(const struct peer *p)
{
    return p->id;
}

const char *peer_name(const struct peer *p)
{
    (void)p;
    return "fake";
}

pid_t peer_pid(const struct peer *p)
{
    (void)p;
    return 1;
}

uid_t peer_uid(const struct peer *p)
{
    return p->account.uid;
}

struct quota_client *peer_quota(struct peer *p)
{
    return &p->account;
}

bool peer_is_slow_consumer(const struct peer *p)
{
    return p->slow;
}

size_t peer_memory(const struct peer *p)
{
    return p->held;
}

size_t peer_queue_bytes(const struct peer *p)
{
    return p->n_frames;
}

void peer_set_held(struct peer *p, size_t bytes)
{
    p->held = bytes;
}

/* ---- session ---- */

struct session_pending {
    size_t index;
};

struct session_inbound {
    size_t index;
};

struct session {
    bool ready;
    int emit_fail_rc, emit_fail_count;
    struct fake_request requests[FAKE_MAX_REQUESTS];
    struct session_pending handles[FAKE_MAX_REQUESTS];
    size_t n_requests, cancels;
    struct fake_answer answers[FAKE_MAX_INBOUND];
    struct session_inbound inbound[FAKE_MAX_INBOUND];
    size_t n_inbound;
    struct fake_emit emits[FAKE_MAX_EMITS];
    size_t n_emits;
    unsigned handlers_changed;
    size_t handler_room;
};

struct session *fake_session_new(void)
{
    struct session *s = calloc(1, sizeof(*s));
    assert(s);
    s->handler_room = 1 << 20;
    return s;
}

void fake_session_free(struct session *s)
{
    free(s);
}

void fake_session_set_ready(struct session *s, bool ready)
{
    s->ready = ready;
}

void fake_session_fail_emits(struct session *s, int rc, int count)
{
    s->emit_fail_rc = rc;
    s->emit_fail_count = count;
}

size_t fake_session_request_count(const struct session *s)
{
    return s->n_requests;
}

struct fake_request *fake_session_request(struct session *s, size_t i)
{
    assert(i < s->n_requests);
    return &s->requests[i];
}

void fake_session_complete(struct session *s, size_t i, int code, const char *data_msgpack,
                           uint32_t data_len)
{
    struct fake_request *q = fake_session_request(s, i);
    struct session_result r = {.code = code};
    static const char text[] = "the server said no";

    /* The session's promise: one callback, never after session_cancel(). */
    assert(!q->done && !q->cancelled);
    q->done = true;
    if (code == 0) {
        r.data.ptr = (const uint8_t *)data_msgpack;
        r.data.len = data_len;
    } else {
        r.message = proto_span_str(text, sizeof(text) - 1);
    }
    q->cb(q->ctx, &r);
}

size_t fake_session_cancels(const struct session *s)
{
    return s->cancels;
}

struct session_inbound *fake_session_inbound(struct session *s, size_t *index)
{
    assert(s->n_inbound < FAKE_MAX_INBOUND);
    *index = s->n_inbound;
    s->inbound[s->n_inbound].index = s->n_inbound;
    return &s->inbound[s->n_inbound++];
}

const struct fake_answer *fake_session_answer(const struct session *s, size_t i)
{
    assert(i < s->n_inbound);
    return &s->answers[i];
}

size_t fake_session_emit_count(const struct session *s)
{
    return s->n_emits;
}

const struct fake_emit *fake_session_emit(const struct session *s, size_t i)
{
    assert(i < s->n_emits);
    return &s->emits[i];
}

unsigned fake_session_handlers_changed(const struct session *s)
{
    return s->handlers_changed;
}

int session_request(struct session *s, const struct proto_span *command,
                    const struct proto_span *payload, uint64_t timeout_ms, session_result_cb cb,
                    void *ctx, struct session_pending **handle, const char **why)
{
    (void)payload;
    if (!s->ready) {
        *why = "the upstream session is not ready";
        return PROTO_E_SOCKET_NOT_READY;
    }
    assert(s->n_requests < FAKE_MAX_REQUESTS);
    struct fake_request *q = &s->requests[s->n_requests];
    memset(q, 0, sizeof(*q));
    copy_text(q->command, command);
    q->timeout_ms = timeout_ms;
    q->cb = cb;
    q->ctx = ctx;
    s->handles[s->n_requests].index = s->n_requests;
    if (handle)
        *handle = &s->handles[s->n_requests];
    s->n_requests++;
    return 0;
}

void session_cancel(struct session *s, struct session_pending *handle)
{
    struct fake_request *q = fake_session_request(s, handle->index);
    assert(!q->done && !q->cancelled);
    q->cancelled = true;
    s->cancels++;
}

void session_respond(struct session *s, struct session_inbound *in, bool ok,
                     const struct proto_span *data, const char *code,
                     const struct proto_span *message)
{
    struct fake_answer *a = &s->answers[in->index];

    a->answers++;
    a->ok = ok;
    snprintf(a->code, sizeof(a->code), "%s", code ? code : "");
    copy_text(a->message, message);
    a->data_len = copy_bytes(a->data, data);
}

const char *session_inbound_id(const struct session_inbound *in)
{
    static char id[37];
    snprintf(id, sizeof(id), "%036zu", in->index);
    return id;
}

int session_emit(struct session *s, const struct proto_span *type, const struct proto_span *data,
                 const char **why)
{
    if (!s->ready) {
        *why = "the upstream session is not ready";
        return PROTO_E_EMIT_FAILED;
    }
    if (s->emit_fail_count > 0) {
        s->emit_fail_count--;
        *why = "the send queue is full";
        return s->emit_fail_rc;
    }
    assert(s->n_emits < FAKE_MAX_EMITS);
    copy_text(s->emits[s->n_emits].type, type);
    s->emits[s->n_emits].data_len = copy_bytes(s->emits[s->n_emits].data, data);
    s->n_emits++;
    return 0;
}

bool session_is_ready(const struct session *s)
{
    return s->ready;
}

void fake_session_set_handler_room(struct session *s, size_t room)
{
    s->handler_room = room;
}

size_t session_handler_room(const struct session *s)
{
    return s->handler_room;
}

void session_handlers_changed(struct session *s)
{
    s->handlers_changed++;
}

void session_local_activity(struct session *s)
{
    (void)s;
}
