/* The upstream session state machine.
 *
 *   idle -> [enrolling] -> connecting -> registering -> ready
 *             ^   |            |              |          |
 *             |   v            v              v          v
 *             +-- backoff <----+--------------+----------+
 *
 * - enrolling: only without stored credentials and with a token. The
 *   rotated password is written to the credential store (fsync'd, renamed,
 *   directory fsync'd) before the socket is even opened, so a crash can
 *   never lose it. A 4xx is final (state failed); anything else retries.
 * - connecting covers the WebSocket upgrade, the Engine.IO open packet and
 *   the namespace CONNECT (with the credentials as auth), under one
 *   deadline (socket.timeout).
 * - registering: daemon:register with an ack id; ready only on
 *   {success:true} within commandTimeout.
 * - Every way out of a live connection (transport close, ping timeout,
 *   server DISCONNECT, three failed heartbeats, refusal) goes through the
 *   WebSocket's on_close: that is the single place where pending requests
 *   fail with SOCKET_NOT_READY and the backoff starts. Deciding to drop
 *   the link just records the reason and calls ws_close().
 *
 * What each event means and how each is written is volt.c's (pure, unit
 * tested, fuzzed): this file only performs what it decides (finish a
 * pending request, hand a call to the router, answer, drop the link).
 *
 * Outbound packets are built in one buffer with a gap in front: the JSON
 * is written first (transcoded straight from the local msgpack), and the
 * Engine.IO/Socket.IO header, whose attachment count is only known after
 * transcoding, is written into the gap just before it. No second copy.
 */
#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "proto/msg.h"
#include "proto/text.h"
#include "upstream/eio.h"
#include "upstream/enroll.h"
#include "upstream/http.h"
#include "upstream/sio.h"
#include "upstream/url.h"
#include "upstream/volt.h"
#include "upstream/ws.h"
#include "util/backoff.h"
#include "util/credstore.h"
#include "util/idtable.h"
#include "util/log.h"
#include "util/secret.h"
#include "util/timerqueue.h"
#include "util/uuid.h"

#define HEADER_GAP_BASE 48

struct session_inbound {
    struct session_inbound *next_free;
    uint32_t generation;
    uint32_t id_len;
    char id[VOLT_ID_MAX + 1];
};

struct session {
    uv_loop_t *loop;
    struct session_params p; /* strings owned (see params_copy) */
    struct session_events ev;
    enum session_state state;
    char reason[256];
    uint64_t since;
    uint64_t started;

    struct url_parts url;
    struct proto_buf handshake_path;
    const char *nsp;
    char hostname[256];

    char *team_cluster_id;
    char *daemon_password;
    bool need_enrollment;
    struct credstore *store;
    struct http_client *http;
    struct enroll *enroll;

    struct ws_transport *transport;
    struct ws_conn *conn;
    char drop_reason[256]; /* set when we close the link on purpose */
    struct eio_handshake hs;
    bool got_open;
    struct sio_assembler sio;
    uint64_t next_ack_id;
    uint64_t register_ack_id;
    uint32_t generation; /* bumped per connection: stale inbound answers are dropped */
    char recovery_pid[VOLT_PID_MAX + 1]; /* the server's session id, when it keeps sessions */
    bool ever_registered;                /* register_when_settled() holds only the first */
    bool holding_register;
    bool handlers_changed_in_flight; /* the list changed after daemon:register was built */
    uint64_t last_local_activity;
    char recovery_offset[VOLT_OFFSET_MAX + 1]; /* of the last event received in it */

    struct backoff backoff;
    uint32_t attempts;
    uv_timer_t phase_timer; /* connect deadline, register deadline, backoff delay */
    uv_timer_t ping_timer;  /* liveness: pingInterval + pingTimeout after the last ping */
    uv_timer_t heartbeat_timer;
    uint32_t heartbeat_failures;
    bool heartbeat_outstanding;
    /* Enrolled credentials the store could not take yet (see on_cred_retry). */
    uv_timer_t cred_timer;
    struct backoff cred_backoff;
    bool cred_unsaved;
    char cred_error[256];
    int64_t enrolled_at;

    struct idtable *pending;
    struct timer_queue *deadlines;

    struct proto_buf out;
    struct proto_buf header;
    struct volt_out vo; /* the packet being built in `out` (volt.h) */
    struct proto_buf scratch;
    struct volt_parser *volt; /* the event parser */
    struct session_inbound *inbound_free;
    uint64_t refused_while_full; /* packets refused since the queue filled; logged once */
    size_t answer_headroom;      /* send-queue bytes only answers may use (see packet_send) */
    bool building_handlers;      /* inside build_handler_list() */

    /* The last error reported since the session was last ready, for
     * clients that arrive after it was broadcast. */
    int last_error_code;
    char last_error[256];

    struct session_counters counters;
    bool tap_on;
    void (*stopped)(void *ud);
    void *stopped_ud;
    int handles_open;
};

const char *session_state_name(enum session_state st)
{
    static const char *const names[] = {"idle",  "enrolling", "connecting", "registering",
                                        "ready", "backoff",   "stopping",   "failed"};
    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static void set_state(struct session *s, enum session_state st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_state(struct session *s, enum session_state st, const char *fmt, ...)
{
    va_list ap;
    enum session_state old = s->state;

    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
    va_end(ap);
    s->state = st;
    s->since = uv_now(s->loop);
    if (st == SESSION_READY)
        s->last_error_code = 0;
    log_info("upstream: %s -> %s: %s", session_state_name(old), session_state_name(st), s->reason);
    if (s->ev.state_changed)
        s->ev.state_changed(s->ev.ud, st, s->reason);
}

static void report_error(struct session *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_error(struct session *s, int code, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_warn("upstream error %s: %s", proto_error_name(code), text);
    /* Heartbeat failures happen while ready: they are not why a client
     * waiting for the upstream is still waiting. */
    if (code != PROTO_E_HEARTBEAT_FAILED) {
        s->last_error_code = code;
        snprintf(s->last_error, sizeof(s->last_error), "%s", text);
    }
    if (s->ev.error)
        s->ev.error(s->ev.ud, code, text);
}

/* ---- building packets ---- */

static size_t header_gap(const struct session *s)
{
    return HEADER_GAP_BASE + strlen(s->nsp);
}

/* Starts a packet: leaves room for the header in front. */
static int packet_begin(struct session *s)
{
    proto_buf_reset(&s->out);
    if (proto_buf_reserve(&s->out, header_gap(s) + 256) < 0)
        return PROTO_E_NOMEM;
    s->out.len = header_gap(s);
    volt_out_init(&s->vo, &s->out);
    return 0;
}

static int send_message(struct session *s, const void *data, size_t len, bool binary)
{
    if (s->tap_on && s->ev.tap)
        s->ev.tap(s->ev.ud, true, data, len, binary);
    return ws_send(s->conn, data, len, binary);
}

void session_set_tap(struct session *s, bool on)
{
    s->tap_on = on;
}

/* Send-queue room that packets leave free for pongs: a ping left without
 * its pong ends the session, so a queue filled by local traffic must not
 * refuse it. Eight pongs: more pings than that unanswered means the server
 * stopped reading long ago and its own pingTimeout has ended the link. */
#define PONG_RESERVE (8 * (1 + WS_SEND_OVERHEAD))

/* What a packet may take of the send queue. Our own traffic stops at
 * max_upstream_queue; answers to the server's requests may go a quarter beyond
 * (answer_headroom), so that a queue filled by local requests does not cost
 * the server the one answer each of its requests is owed. */
enum packet_class { PACKET_OURS, PACKET_ANSWER };

/* Writes the header into the gap and sends the packet and its attachments.
 * Returns 0, PROTO_E_PAYLOAD_TOO_LARGE (nothing sent), or
 * PROTO_E_EMIT_FAILED (the link is gone or its queue is full). */
static int packet_send(struct session *s, enum sio_packet_type type, const uint64_t *ack_id,
                       enum packet_class class)
{
    uint32_t n_attach = s->vo.n_att;
    const struct proto_span *att = s->vo.att;
    size_t gap = header_gap(s);
    size_t body = s->out.len - gap;
    int rc;

    if (!s->conn)
        return PROTO_E_EMIT_FAILED;
    if (n_attach)
        type = type == SIO_ACK ? SIO_BINARY_ACK : SIO_BINARY_EVENT;
    proto_buf_reset(&s->header);
    if (eio_encode_message_prefix(&s->header) < 0 ||
        sio_encode_header(&s->header, type, s->nsp, ack_id, n_attach) < 0)
        return PROTO_E_NOMEM;
    if (s->header.len > gap)
        return PROTO_E_INTERNAL;
    if (s->hs.max_payload && s->header.len + body > s->hs.max_payload)
        return PROTO_E_PAYLOAD_TOO_LARGE;
    for (uint32_t i = 0; i < n_attach; i++) {
        if (s->hs.max_payload && att[i].len > s->hs.max_payload)
            return PROTO_E_PAYLOAD_TOO_LARGE;
    }
    /* All of a packet or none of it: a packet queued without all of its
     * attachments would have the server read the next packets as them. */
    size_t need = s->header.len + body + WS_SEND_OVERHEAD;
    for (uint32_t i = 0; i < n_attach; i++)
        need += att[i].len + WS_SEND_OVERHEAD;
    size_t keep_free = PONG_RESERVE + (class == PACKET_ANSWER ? 0 : s->answer_headroom);
    size_t room = ws_send_queue_room(s->conn);
    if (room < keep_free || need > room - keep_free) {
        /* Once per episode, not once per packet: the log must not grow
         * with the load that filled the queue. */
        if (s->refused_while_full++ == 0)
            log_warn("upstream: send queue full (%zu bytes waiting): packets are refused "
                     "until it drains",
                     ws_send_queue_bytes(s->conn));
        return PROTO_E_EMIT_FAILED;
    }
    if (s->refused_while_full) {
        log_info("upstream: send queue has room again; %llu packets were refused",
                 (unsigned long long)s->refused_while_full);
        s->refused_while_full = 0;
    }
    uint8_t *start = s->out.data + gap - s->header.len;
    memcpy(start, s->header.data, s->header.len);
    rc = send_message(s, start, s->header.len + body, false);
    for (uint32_t i = 0; rc == 0 && i < n_attach; i++)
        rc = send_message(s, att[i].ptr, att[i].len, true);
    if (rc < 0) {
        log_warn("upstream: cannot queue a packet (%s)", strerror(-rc));
        return PROTO_E_EMIT_FAILED;
    }
    return 0;
}

/* ---- ids ---- */

static void on_request_timeout(struct timer_node *node, void *ud);

/* ---- heartbeat ---- */

static void drop_link(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void drop_link(struct session *s, const char *fmt, ...)
{
    va_list ap;

    if (!s->conn)
        return;
    va_start(ap, fmt);
    vsnprintf(s->drop_reason, sizeof(s->drop_reason), fmt, ap);
    va_end(ap);
    ws_close(s->conn);
}

static void on_heartbeat_result(void *ctx, const struct session_result *r)
{
    struct session *s = ctx;

    s->heartbeat_outstanding = false;
    enum volt_heartbeat_action act = volt_heartbeat_result(&s->heartbeat_failures, r->code);
    if (act == VOLT_HB_NONE)
        return;
    report_error(s, PROTO_E_HEARTBEAT_FAILED, "heartbeat failed (%s%s%.*s), %u in a row",
                 proto_error_name(r->code), r->message.len ? ": " : "", (int)r->message.len,
                 r->message.ptr ? (const char *)r->message.ptr : "", s->heartbeat_failures);
    if (act == VOLT_HB_DROP)
        drop_link(s, "%u heartbeats failed in a row", s->heartbeat_failures);
}

static void on_heartbeat_tick(uv_timer_t *t)
{
    struct session *s = t->data;
    uint64_t clients = 0, handlers = 0;
    const char *why = NULL;
    uint8_t payload[VOLT_HEARTBEAT_PAYLOAD_MAX];
    size_t n;
    struct proto_span command =
        proto_span_str(VOLT_HEARTBEAT_COMMAND, sizeof(VOLT_HEARTBEAT_COMMAND) - 1);

    if (s->state != SESSION_READY || s->heartbeat_outstanding)
        return;
    if (s->ev.local_counts)
        s->ev.local_counts(s->ev.ud, &clients, &handlers);
    n = volt_heartbeat_payload(payload, uv_now(s->loop) - s->started, clients, handlers);
    struct proto_span p = {payload, (uint32_t)n};
    uint64_t timeout = s->p.heartbeat_timeout_ms;
    if (session_request(s, &command, &p, timeout, on_heartbeat_result, s, NULL, &why) == 0)
        s->heartbeat_outstanding = true;
}

/* ---- outbound requests ---- */

static void finish_request(struct session *s, struct idtable_entry *e,
                           const struct session_result *r)
{
    session_result_cb cb = (session_result_cb)(uintptr_t)e->tag;
    void *ctx = e->ctx;

    timer_queue_remove(s->deadlines, &e->timer);
    idtable_remove(s->pending, e);
    s->counters.pending = idtable_count(s->pending);
    cb(ctx, r);
}

void session_cancel(struct session *s, struct session_pending *handle)
{
    struct idtable_entry *e = (struct idtable_entry *)handle;

    if (s->deadlines)
        timer_queue_remove(s->deadlines, &e->timer);
    idtable_remove(s->pending, e);
    s->counters.pending = idtable_count(s->pending);
    s->counters.cancelled++;
}

static void fail_request(struct session *s, struct idtable_entry *e, int code, const char *text)
{
    struct session_result r = {.code = code};
    r.message = proto_span_str(text, (uint32_t)strlen(text));
    finish_request(s, e, &r);
}

static void on_request_timeout(struct timer_node *node, void *ud)
{
    struct session *s = ud;
    struct idtable_entry *e = container_of(node, struct idtable_entry, timer);

    s->counters.timeouts++;
    fail_request(s, e, PROTO_E_COMMAND_TIMEOUT, "the server did not answer in time");
}

static void fail_all_pending(struct session *s, const char *why)
{
    for (struct idtable_entry *e = idtable_first(s->pending); e; e = idtable_next(s->pending, e)) {
        s->counters.not_ready++;
        fail_request(s, e, PROTO_E_SOCKET_NOT_READY, why);
    }
}

int session_request(struct session *s, const struct proto_span *command,
                    const struct proto_span *payload, uint64_t timeout_ms, session_result_cb cb,
                    void *ctx, struct session_pending **handle, const char **why)
{
    uint8_t id[UUID_LEN];
    char id_text[UUID_STR_LEN + 1];
    struct idtable_entry *e;
    int rc;

    if (s->state != SESSION_READY) {
        s->counters.not_ready++;
        *why = "the upstream session is not ready";
        return PROTO_E_SOCKET_NOT_READY;
    }
    if (packet_begin(s) < 0)
        goto nomem;
    if (uuid_generate_v4(id) < 0) {
        *why = "no randomness for a request id";
        return PROTO_E_INTERNAL;
    }
    uuid_format(id, id_text);
    rc = volt_put_request(&s->vo, id_text, UUID_STR_LEN, command, payload);
    if (rc == PROTO_E_NOMEM)
        goto nomem;
    if (rc < 0) {
        *why = s->vo.why;
        return rc;
    }

    rc = idtable_insert(s->pending, id, &e);
    if (rc < 0) {
        *why = rc == -ENOSPC ? "too many requests waiting for the server" : "request id collision";
        return PROTO_E_LIMIT_EXCEEDED;
    }
    rc = packet_send(s, SIO_EVENT, NULL, PACKET_OURS);
    if (rc < 0) {
        idtable_remove(s->pending, e);
        *why = rc == PROTO_E_PAYLOAD_TOO_LARGE ? "the request exceeds the server's maxPayload"
                                               : "the request could not be written upstream";
        if (rc == PROTO_E_EMIT_FAILED) {
            s->counters.not_ready++;
            return PROTO_E_SOCKET_NOT_READY;
        }
        return rc;
    }
    e->ctx = ctx;
    e->tag = (uint64_t)(uintptr_t)cb;
    timer_queue_add(s->deadlines, &e->timer, timer_queue_deadline_in(s->deadlines, timeout_ms));
    s->counters.requests++;
    s->counters.pending = idtable_count(s->pending);
    if (handle)
        *handle = (struct session_pending *)e;
    return 0;
nomem:
    *why = "out of memory";
    return PROTO_E_NOMEM;
}

int session_emit(struct session *s, const struct proto_span *type, const struct proto_span *data,
                 const char **why)
{
    int rc;

    if (s->state != SESSION_READY) {
        *why = "the upstream session is not ready";
        return PROTO_E_EMIT_FAILED;
    }
    if (packet_begin(s) < 0)
        goto nomem;
    rc = volt_put_message(&s->vo, type, data);
    if (rc == PROTO_E_NOMEM)
        goto nomem;
    if (rc < 0) {
        *why = s->vo.why;
        return rc;
    }
    rc = packet_send(s, SIO_EVENT, NULL, PACKET_OURS);
    if (rc < 0) {
        *why = rc == PROTO_E_PAYLOAD_TOO_LARGE ? "the message exceeds the server's maxPayload"
                                               : "the message could not be written upstream";
        return rc == PROTO_E_PAYLOAD_TOO_LARGE ? rc : PROTO_E_EMIT_FAILED;
    }
    s->counters.messages_out++;
    return 0;
nomem:
    *why = "out of memory";
    return PROTO_E_NOMEM;
}

/* ---- inbound requests ---- */

const char *session_inbound_id(const struct session_inbound *in)
{
    return in->id;
}

/* A HandlerError answer to `in` saying why, in place of one that cannot go. */
static int put_handler_error(struct session *s, const struct session_inbound *in, const char *why)
{
    if (packet_begin(s) < 0)
        return PROTO_E_NOMEM;
    return volt_put_handler_error(&s->vo, in->id, in->id_len, why);
}

void session_respond(struct session *s, struct session_inbound *in, bool ok,
                     const struct proto_span *data, const char *code,
                     const struct proto_span *message)
{
    const char *why = NULL;
    int rc;

    if (in->generation != s->generation || !s->conn || s->state == SESSION_STOPPING) {
        /* The server forgot this request with the connection it came on. */
        log_debug("upstream: answer to %s dropped: the connection it came on is gone", in->id);
        goto done;
    }
    /* Whatever happens to the handler's answer, the server gets exactly one:
     * it, or a HandlerError saying why it could not be sent. */
    rc = packet_begin(s);
    if (rc == 0)
        rc = volt_put_answer(&s->vo, in->id, in->id_len, ok, data, code, message);
    if (rc == PROTO_E_NOT_JSON)
        why = s->vo.why;
    if (rc == 0) {
        rc = packet_send(s, SIO_EVENT, NULL, PACKET_ANSWER);
        if (rc == PROTO_E_PAYLOAD_TOO_LARGE)
            why = "the handler's answer exceeds the server's maxPayload";
        else if (rc == PROTO_E_EMIT_FAILED && s->conn)
            why = "the handler's answer did not fit in the send queue";
    } else if (why) {
        log_warn("upstream: result for %s has no JSON form (%s)", in->id, why);
    } else {
        why = "the handler's answer could not be encoded";
    }
    if (why) {
        log_warn("upstream: answering %s with HandlerError: %s", in->id, why);
        rc = put_handler_error(s, in, why);
        if (rc == 0)
            rc = packet_send(s, SIO_EVENT, NULL, PACKET_ANSWER);
    }
    if (rc < 0)
        log_warn("upstream: could not send the answer to %s", in->id);
done:
    in->next_free = s->inbound_free;
    s->inbound_free = in;
}

/* ---- inbound packets ---- */

static struct session_inbound *inbound_new(struct session *s, const struct volt_event *ev)
{
    struct session_inbound *in = s->inbound_free;
    if (in)
        s->inbound_free = in->next_free;
    else if (!(in = malloc(sizeof(*in))))
        return NULL;
    in->generation = s->generation;
    in->id_len = ev->id_len;
    memcpy(in->id, ev->id, ev->id_len + 1);
    s->counters.inbound++;
    return in;
}

static void on_daemon_response(struct session *s, const struct volt_event *ev)
{
    struct idtable_entry *e = idtable_find(s->pending, ev->uuid);
    struct session_result r = {0};
    const char *why = NULL;

    if (!e) {
        s->counters.late_responses++;
        log_debug("upstream: response to unknown or expired request %s dropped", ev->id);
        return;
    }
    if (!ev->ok) {
        r.code = PROTO_E_COMMAND_REJECTED;
        r.server_code = ev->server_code;
        r.message = ev->message;
        s->counters.rejected++;
        finish_request(s, e, &r);
        return;
    }
    if (volt_response_data(s->volt, &r.data, &why) < 0) {
        log_info("upstream: %s", why);
        s->counters.undeliverable++;
        fail_request(s, e, PROTO_E_BAD_FRAME, why);
        return;
    }
    s->counters.responses_ok++;
    finish_request(s, e, &r);
}

/* A server:request is owed exactly one answer: the handler's, or the
 * HandlerError the parser decided on (no command, undeliverable payload,
 * an event that did not parse). */
static void on_server_request(struct session *s, const struct volt_event *ev)
{
    struct session_inbound *in = inbound_new(s, ev);

    if (!in)
        return;
    if (ev->refusal) {
        struct proto_span m = proto_span_str(ev->refusal, (uint32_t)strlen(ev->refusal));
        if (ev->undeliverable)
            s->counters.undeliverable++;
        session_respond(s, in, false, NULL, "HandlerError", &m);
        return;
    }
    s->ev.inbound_request(s->ev.ud, in, &ev->command, &ev->payload);
}

static void on_event(struct session *s, const struct sio_message *msg)
{
    const struct sio_packet *p = &msg->packet;
    struct proto_span att[VOLT_MAX_ATTACHMENTS];
    uint32_t n_att = p->attachments < VOLT_MAX_ATTACHMENTS ? p->attachments : VOLT_MAX_ATTACHMENTS;
    struct volt_event ev;

    for (uint32_t i = 0; i < n_att; i++) {
        att[i].ptr = msg->attachments[i].data;
        att[i].len = (uint32_t)msg->attachments[i].len;
    }
    if (volt_parse_event(s->volt, p->data, p->data_len, att, n_att, s->recovery_pid[0] != '\0',
                         &ev) < 0) {
        log_warn("upstream: out of memory reading an event");
        return;
    }
    if (ev.malformed)
        log_warn("upstream: event with bad JSON: %s", ev.why);
    if (ev.has_offset)
        memcpy(s->recovery_offset, ev.offset, sizeof(ev.offset));
    switch (ev.kind) {
    case VOLT_EV_RESPONSE:
        on_daemon_response(s, &ev);
        return;
    case VOLT_EV_SALVAGE_RESPONSE: {
        struct idtable_entry *e = idtable_find(s->pending, ev.uuid);
        if (!e)
            return;
        s->counters.undeliverable++;
        fail_request(s, e, PROTO_E_BAD_FRAME, ev.refusal);
        return;
    }
    case VOLT_EV_SERVER_REQUEST:
    case VOLT_EV_SALVAGE_REQUEST:
        if (ev.kind == VOLT_EV_SERVER_REQUEST && ev.undeliverable)
            log_info("upstream: %s", ev.refusal);
        on_server_request(s, &ev);
        return;
    case VOLT_EV_MESSAGE:
        s->counters.messages_in++;
        s->ev.inbound_message(s->ev.ud, &ev.type, &ev.data);
        return;
    case VOLT_EV_IGNORED:
        if (ev.undeliverable)
            log_info("upstream: %s", ev.why);
        else if (ev.unanswerable)
            log_warn("upstream: %s ignored", ev.why);
        else if (!ev.malformed)
            log_debug("upstream: %s ignored", ev.why);
        return;
    }
}

static void on_register_ack(struct session *s, const struct sio_packet *p)
{
    struct volt_register_ack ack;

    if (s->state != SESSION_REGISTERING)
        return;
    volt_parse_register_ack(s->volt, p->data, p->data_len, &ack);
    if (ack.ok) {
        uv_timer_stop(&s->phase_timer);
        backoff_reset(&s->backoff);
        s->attempts = 0;
        s->heartbeat_failures = 0;
        s->heartbeat_outstanding = false;
        uv_timer_start(&s->heartbeat_timer, on_heartbeat_tick, s->p.heartbeat_interval_ms,
                       s->p.heartbeat_interval_ms);
        set_state(s, SESSION_READY, "registered as %s", s->team_cluster_id);
        if (s->handlers_changed_in_flight)
            session_handlers_changed(s);
        return;
    }
    report_error(s, PROTO_E_SOCKET_REGISTRATION_FAILED, "registration refused: %s%s%s",
                 ack.code[0] ? ack.code : "no reason given", ack.message[0] ? ": " : "",
                 ack.message);
    drop_link(s, "registration refused%s%s", ack.code[0] ? ": " : "", ack.code);
}

static void register_when_settled(struct session *s);

/* The server's CONNECT: {"sid", "pid"} when it keeps sessions. The same
 * pid as before means the session was recovered (and missed events are
 * being replayed); a new one, or none, means a fresh session. */
static void note_recovery(struct session *s, const struct sio_packet *p)
{
    char pid[VOLT_PID_MAX + 1];

    volt_parse_connect(s->volt, p->data, p->data_len, pid);
    if (pid[0] && !strcmp(pid, s->recovery_pid) && s->recovery_offset[0]) {
        s->counters.recovered++;
        log_info("upstream: session recovered: the server replays what it sent meanwhile");
    } else {
        s->recovery_offset[0] = '\0';
    }
    memcpy(s->recovery_pid, pid, sizeof(pid));
}

static void on_sio_packet(struct session *s, const struct sio_message *msg)
{
    const struct sio_packet *p = &msg->packet;

    if (!sio_nsp_equals(p, s->nsp)) {
        log_debug("upstream: packet for namespace %.*s ignored", (int)p->nsp_len, p->nsp);
        return;
    }
    switch (p->type) {
    case SIO_CONNECT:
        if (s->state == SESSION_CONNECTING && !s->holding_register) {
            note_recovery(s, p);
            register_when_settled(s);
        }
        return;
    case SIO_CONNECT_ERROR: {
        const char *text = volt_parse_connect_error(s->volt, p->data, p->data_len);
        report_error(s, PROTO_E_SOCKET_REGISTRATION_FAILED, "the server refused the connection: %s",
                     text);
        drop_link(s, "namespace connection refused: %s", text);
        return;
    }
    case SIO_DISCONNECT:
        drop_link(s, "the server disconnected the session");
        return;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        /* A recovered session's missed events are replayed as soon as the
         * server restores it, before its CONNECT reaches us (socket.io
         * writes them from the socket's constructor): taken while
         * connecting when we asked for a recovery, and while registering. */
        if (s->state == SESSION_READY || s->state == SESSION_REGISTERING ||
            (s->state == SESSION_CONNECTING && s->recovery_offset[0]))
            on_event(s, msg);
        return;
    case SIO_ACK:
    case SIO_BINARY_ACK:
        if (p->has_ack_id && p->ack_id == s->register_ack_id)
            on_register_ack(s, p);
        return;
    }
}

/* ---- the link ---- */

static void on_phase_timeout(uv_timer_t *t);
static void begin_attempt(struct session *s);
static void send_register(struct session *s);

/* The first registration after the broker starts may be held back
 * (volt_register_hold() has the rule and why): until the handlers of the
 * last run are back, or, when they are unknown, while local clients are
 * still arriving; announceDelay at most. Later registrations (reconnects)
 * never wait: the handlers are all known then. */
static void register_when_settled(struct session *s)
{
    uint64_t now = uv_now(s->loop);
    uint64_t wait = 0;

    if (!s->ever_registered) {
        enum volt_handlers_back back =
            s->ev.handlers_back ? s->ev.handlers_back(s->ev.ud) : VOLT_HANDLERS_UNKNOWN;
        wait = volt_register_hold(now, s->started, s->p.announce_delay_ms, s->last_local_activity,
                                  back);
        if (wait && !s->holding_register)
            log_info("upstream: holding the first registration up to %" PRIu64
                     " ms while local clients register %s",
                     s->started + s->p.announce_delay_ms - now,
                     back == VOLT_HANDLERS_WAITING ? "the handlers of the last run again"
                                                   : "their handlers");
    }
    if (wait) {
        s->holding_register = true;
        uv_timer_start(&s->phase_timer, on_phase_timeout, wait, 0);
        return;
    }
    s->holding_register = false;
    s->ever_registered = true;
    send_register(s);
}

void session_local_activity(struct session *s)
{
    s->last_local_activity = uv_now(s->loop);
}

size_t session_handler_room(const struct session *s)
{
    size_t max = s->hs.max_payload ? s->hs.max_payload : EIO_DEFAULT_MAX_PAYLOAD;
    return volt_handler_room(max, header_gap(s), s->team_cluster_id, s->hostname);
}

/* The handler list as msgpack in s->scratch, trimmed first when its JSON
 * would not leave the packet within maxPayload. */
static int build_handler_list(struct session *s)
{
    /* A trim may close a client, whose leaving announces a change: the
     * list being built has it anyway. */
    s->building_handlers = true;
    int rc = PROTO_E_PAYLOAD_TOO_LARGE;
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        proto_buf_reset(&s->scratch);
        if (s->ev.handler_list(s->ev.ud, &s->scratch) < 0) {
            rc = PROTO_E_NOMEM;
            break;
        }
        struct proto_span list = {s->scratch.data, (uint32_t)s->scratch.len};
        size_t room = session_handler_room(s);
        size_t json = volt_names_json_size(&list);
        if (json <= room) {
            rc = 0;
            break;
        }
        log_warn("upstream: the handler list (%zu bytes of JSON) exceeds what the server's "
                 "maxPayload leaves for it (%zu): dropping handlers",
                 json, room);
        if (s->ev.handler_trim)
            s->ev.handler_trim(s->ev.ud, room);
    }
    s->building_handlers = false;
    return rc;
}

static void send_register(struct session *s)
{
    int rc;

    if (build_handler_list(s) < 0 || packet_begin(s) < 0) {
        drop_link(s, "cannot build daemon:register");
        return;
    }
    s->handlers_changed_in_flight = false;
    struct proto_span handlers = {s->scratch.data, (uint32_t)s->scratch.len};
    rc = volt_put_register(&s->vo, s->team_cluster_id, s->hostname, VOLT_VERSION, &handlers);
    s->register_ack_id = s->next_ack_id++;
    if (rc == 0)
        rc = packet_send(s, SIO_EVENT, &s->register_ack_id, PACKET_OURS);
    if (rc < 0) {
        drop_link(s, "cannot send daemon:register");
        return;
    }
    set_state(s, SESSION_REGISTERING, "namespace %s connected, daemon:register sent", s->nsp);
    uv_timer_start(&s->phase_timer, on_phase_timeout, s->p.registration_timeout_ms, 0);
}

void session_handlers_changed(struct session *s)
{
    int rc;

    if (s->building_handlers)
        return; /* the list being built carries it */
    if (s->state == SESSION_CONNECTING && s->holding_register) {
        register_when_settled(s); /* it may have been waiting for this one */
        return;
    }
    if (s->state == SESSION_REGISTERING) {
        /* daemon:register is on its way with the list as it was: this
         * change is announced once the server has acknowledged it. */
        s->handlers_changed_in_flight = true;
        return;
    }
    if (s->state != SESSION_READY)
        return; /* the next registration carries it */
    s->handlers_changed_in_flight = false;
    if (build_handler_list(s) < 0 || packet_begin(s) < 0)
        return;
    struct proto_span handlers = {s->scratch.data, (uint32_t)s->scratch.len};
    rc = volt_put_handlers(&s->vo, &handlers);
    if (rc == 0)
        rc = packet_send(s, SIO_EVENT, NULL, PACKET_OURS);
    if (rc < 0)
        log_warn("upstream: could not announce the handler list");
}

static void on_ping_timeout(uv_timer_t *t)
{
    struct session *s = t->data;
    drop_link(s, "no ping from the server for %u ms (pingInterval + pingTimeout)",
              s->hs.ping_interval_ms + s->hs.ping_timeout_ms);
}

static void arm_ping_watchdog(struct session *s)
{
    uv_timer_start(&s->ping_timer, on_ping_timeout,
                   (uint64_t)s->hs.ping_interval_ms + s->hs.ping_timeout_ms, 0);
}

static void send_connect(struct session *s)
{
    bool tap = s->tap_on;
    int rc = 0;

    size_t secret_at = 0, secret_end = 0;

    if (packet_begin(s) < 0)
        return;
    rc = volt_put_auth(&s->vo, s->team_cluster_id, s->daemon_password, s->recovery_pid,
                       s->recovery_offset, &secret_at, &secret_end);
    /* Monitors see the packet with the password replaced. */
    s->tap_on = false;
    if (rc == 0)
        rc = packet_send(s, SIO_CONNECT, NULL, PACKET_OURS);
    s->tap_on = tap;
    if (rc == 0 && tap && s->ev.tap) {
        size_t gap = header_gap(s);
        proto_buf_reset(&s->scratch);
        proto_buf_append(&s->scratch, s->header.data, s->header.len);
        proto_buf_append(&s->scratch, s->out.data + gap, secret_at - gap);
        proto_buf_append(&s->scratch, "\"(redacted)\"", 12);
        proto_buf_append(&s->scratch, s->out.data + secret_end, s->out.len - secret_end);
        s->ev.tap(s->ev.ud, true, s->scratch.data, s->scratch.len, false);
    }
    /* The buffer held the password: wipe it. */
    memset(s->out.data, 0, s->out.len);
    if (rc < 0)
        drop_link(s, "cannot send the namespace CONNECT");
}

static void on_ws_open(void *ud)
{
    (void)ud;
    log_debug("upstream: WebSocket open, waiting for the Engine.IO handshake");
}

static void on_ws_message(void *ud, const void *data, size_t len, bool binary)
{
    struct session *s = ud;
    struct eio_packet pkt;
    struct sio_message msg;
    const char *why = NULL;

    if (s->tap_on && s->ev.tap)
        s->ev.tap(s->ev.ud, false, data, len, binary);
    if (eio_decode(data, len, binary, &pkt, &why) < 0) {
        drop_link(s, "bad Engine.IO packet: %s", why);
        return;
    }
    switch (pkt.type) {
    case EIO_OPEN:
        if (s->got_open) {
            log_debug("upstream: second Engine.IO open ignored");
            return;
        }
        if (eio_parse_handshake(pkt.data, pkt.len, &s->hs, &why) < 0) {
            drop_link(s, "bad Engine.IO handshake: %s", why);
            return;
        }
        if (!s->hs.has_max_payload)
            s->hs.max_payload = EIO_DEFAULT_MAX_PAYLOAD;
        s->got_open = true;
        arm_ping_watchdog(s);
        send_connect(s);
        return;
    case EIO_PING: {
        uint8_t pong = '3';
        arm_ping_watchdog(s);
        if (send_message(s, &pong, 1, false) < 0)
            drop_link(s, "cannot answer the server's ping");
        return;
    }
    case EIO_CLOSE:
        drop_link(s, "the server closed the Engine.IO session");
        return;
    case EIO_MESSAGE:
        break;
    default:
        return; /* pong, upgrade, noop: nothing to do over WebSocket */
    }
    int rc = sio_assembler_feed(&s->sio, pkt.data, pkt.len, pkt.binary, &msg);
    if (rc < 0) {
        drop_link(s, "bad Socket.IO packet: %s", s->sio.error ? s->sio.error : "malformed");
        return;
    }
    if (rc == SIO_ASM_READY)
        on_sio_packet(s, &msg);
}

static void on_transport_closed(void *ud);

static void on_ws_close(void *ud, const struct ws_close_info *info)
{
    struct session *s = ud;
    const char *why = s->drop_reason[0] ? s->drop_reason : info->text;
    enum session_state was = s->state;
    char reason[300];

    snprintf(reason, sizeof(reason), "%s", why);
    s->conn = NULL;
    s->drop_reason[0] = '\0';
    s->holding_register = false;
    s->generation++;
    s->got_open = false;
    sio_assembler_reset(&s->sio);
    uv_timer_stop(&s->phase_timer);
    uv_timer_stop(&s->ping_timer);
    uv_timer_stop(&s->heartbeat_timer);
    fail_all_pending(s, "the upstream session was lost");
    if (was == SESSION_STOPPING) {
        /* session_stop's polite close is complete: what was queued (the
         * last answers) is out; now the transport. */
        if (s->transport)
            ws_transport_close(s->transport, on_transport_closed, s);
        return;
    }
    if (was == SESSION_READY)
        s->counters.reconnects++;
    if (was == SESSION_CONNECTING && !info->was_open)
        report_error(s, PROTO_E_SOCKET_CONNECTION_FAILED, "%s", reason);
    {
        uint32_t delay;
        if (!s->p.reconnection ||
            (s->p.reconnection_attempts && ++s->attempts > s->p.reconnection_attempts)) {
            set_state(s, SESSION_FAILED, "%s; not reconnecting", reason);
            return;
        }
        delay = backoff_duration(&s->backoff);
        set_state(s, SESSION_BACKOFF, "%s; retrying in %u ms", reason, delay);
        uv_timer_start(&s->phase_timer, on_phase_timeout, delay, 0);
    }
}

static void connect_socket(struct session *s)
{
    static const struct ws_callbacks cb = {
        .on_open = on_ws_open,
        .on_message = on_ws_message,
        .on_close = on_ws_close,
    };
    struct ws_connect_options o = {
        .host = s->url.host,
        .port = s->url.port,
        .tls = s->url.tls,
        .path = (const char *)s->handshake_path.data,
        .connect_timeout_ms = s->p.connect_timeout_ms,
        .max_message_size = (size_t)s->p.max_message + 4096,
        /* the queue limit for our own traffic, and the answers' headroom */
        .send_queue_limit = (size_t)s->p.max_upstream_queue + s->p.max_upstream_queue / 4,
    };
    int rc;

    s->answer_headroom = s->p.max_upstream_queue / 4;
    set_state(s, SESSION_CONNECTING, "connecting to %s://%s:%u%s", s->url.tls ? "wss" : "ws",
              s->url.host, s->url.port, s->nsp);
    rc = ws_connect(s->transport, &o, &cb, s, &s->conn);
    if (rc < 0) {
        struct ws_close_info info = {.cause = WS_CLOSE_CONNECT, .text = "cannot start connecting"};
        s->conn = NULL;
        on_ws_close(s, &info);
        return;
    }
    /* ws covers DNS..upgrade; this covers the rest up to the namespace CONNECT. */
    uv_timer_start(&s->phase_timer, on_phase_timeout, s->p.connect_timeout_ms, 0);
}

static void on_phase_timeout(uv_timer_t *t)
{
    struct session *s = t->data;

    switch (s->state) {
    case SESSION_CONNECTING:
        if (s->holding_register) {
            register_when_settled(s);
            return;
        }
        drop_link(s, "no namespace connection within %u ms", s->p.connect_timeout_ms);
        return;
    case SESSION_REGISTERING:
        report_error(s, PROTO_E_SOCKET_REGISTRATION_FAILED,
                     "no answer to daemon:register within %u ms", s->p.registration_timeout_ms);
        drop_link(s, "no answer to daemon:register within %u ms", s->p.registration_timeout_ms);
        return;
    case SESSION_BACKOFF:
        begin_attempt(s);
        return;
    default:
        return;
    }
}

/* ---- enrollment ---- */

static void credentials_unsaved(struct session *s, const char *err);

/* Credentials held only in memory: retried with a backoff of its own
 * (1 s doubling to 5 min) until they are on disk. */
static void on_cred_retry(uv_timer_t *t)
{
    struct session *s = t->data;
    struct credentials c = {
        .team_cluster_id = s->team_cluster_id,
        .daemon_password = s->daemon_password,
        .enrolled_at = s->enrolled_at,
    };
    char err[256];

    if (!s->cred_unsaved || !s->store)
        return;
    if (credstore_store(s->store, &c, err, sizeof(err)) == 0) {
        s->cred_unsaved = false;
        s->cred_error[0] = '\0';
        log_info("upstream: the enrolled credentials are now stored in %s",
                 credstore_path(s->store));
        return;
    }
    credentials_unsaved(s, err);
}

static void credentials_unsaved(struct session *s, const char *err)
{
    uint32_t delay = backoff_duration(&s->cred_backoff);

    if (strcmp(s->cred_error, err) != 0)
        log_warn("upstream: cannot store the credentials: %s; retrying in %u ms", err, delay);
    s->cred_unsaved = true;
    snprintf(s->cred_error, sizeof(s->cred_error), "%s", err);
    uv_timer_start(&s->cred_timer, on_cred_retry, delay, 0);
}

static void on_enrolled(struct enroll *e, struct enroll_result *res, void *ud)
{
    struct session *s = ud;
    char err[256];

    (void)e;
    s->enroll = NULL;
    if (res->outcome == ENROLL_OK) {
        free(s->team_cluster_id);
        secret_free(s->daemon_password);
        s->team_cluster_id = strdup(res->credentials.team_cluster_id);
        s->daemon_password = secret_dup(res->credentials.daemon_password);
        s->enrolled_at = res->credentials.enrolled_at;
        s->need_enrollment = false;
        if (credstore_store(s->store, &res->credentials, err, sizeof(err)) < 0) {
            /* The server has spent the token and may have rotated the
             * password: the new one is the only one that works now. Keep
             * it, use it, and keep trying to write it down. */
            log_error("upstream: enrolled as %s%s, but the credentials cannot be stored (%s): "
                      "using them from memory and retrying the write",
                      s->team_cluster_id, res->password_rotated ? " (password rotated)" : "", err);
            credentials_unsaved(s, err);
        } else {
            log_info("upstream: enrolled as %s%s; credentials stored in %s", s->team_cluster_id,
                     res->password_rotated ? " (password rotated)" : "", credstore_path(s->store));
        }
        connect_socket(s);
        return;
    }
    report_error(s, PROTO_E_ENROLLMENT_FAILED, "%s", res->message);
    if (res->outcome == ENROLL_FINAL) {
        set_state(s, SESSION_FAILED, "enrollment refused: %s", res->message);
        return;
    }
    uint32_t delay = backoff_duration(&s->backoff);
    set_state(s, SESSION_BACKOFF, "enrollment failed: %s; retrying in %u ms", res->message, delay);
    uv_timer_start(&s->phase_timer, on_phase_timeout, delay, 0);
}

static void begin_attempt(struct session *s)
{
    if (!s->need_enrollment) {
        connect_socket(s);
        return;
    }
    struct enroll_config ec = {
        .server_url = s->p.server_url,
        .team_cluster_id = s->team_cluster_id,
        .enrollment_token = s->p.enrollment_token,
        .daemon_password = s->daemon_password,
        .hostname = s->hostname,
        .version = VOLT_VERSION,
        .ca_file = s->p.ca_file,
        .tls_insecure = s->p.tls_insecure,
        .timeout_ms = s->p.connect_timeout_ms,
    };
    set_state(s, SESSION_ENROLLING, "enrolling at %s", s->p.server_url);
    /* libcurl only when there is something to enroll: its global state
     * costs about 2 MiB of RSS a broker with stored credentials never needs. */
    if ((!s->http && http_client_new(&s->http, s->loop) < 0) ||
        enroll_start(s->http, &ec, on_enrolled, s, &s->enroll) < 0) {
        s->enroll = NULL;
        uint32_t delay = backoff_duration(&s->backoff);
        set_state(s, SESSION_BACKOFF, "cannot start enrollment; retrying in %u ms", delay);
        uv_timer_start(&s->phase_timer, on_phase_timeout, delay, 0);
    }
}

/* ---- lifecycle ---- */

static void load_credentials(struct session *s, const char **fatal)
{
    struct credentials stored = {0};
    char err[256];
    int rc = 1;

    s->team_cluster_id = strdup(s->p.team_cluster_id ? s->p.team_cluster_id : "");
    s->daemon_password = s->p.daemon_password ? strdup(s->p.daemon_password) : NULL;
    if (s->store)
        rc = credstore_load(s->store, &stored, err, sizeof(err));
    if (rc == 0) {
        free(s->team_cluster_id);
        secret_free(s->daemon_password);
        s->team_cluster_id = strdup(stored.team_cluster_id);
        s->daemon_password = stored.daemon_password ? strdup(stored.daemon_password) : NULL;
        log_info("upstream: using the credentials stored in %s (not enrolling again)",
                 credstore_path(s->store));
        credentials_clear(&stored);
        return;
    }
    if (rc < 0) {
        log_error("upstream: %s", err);
        *fatal = "the stored credentials cannot be read";
        return;
    }
    if (s->p.enrollment_token && s->p.server_url) {
        s->need_enrollment = true;
        return;
    }
    if (!s->daemon_password)
        *fatal = "no daemonPassword, no stored credentials and no enrollmentToken";
}

/* The params with every string copied, secrets with secret_dup(). 0 or -ENOMEM. */
static int params_copy(struct session_params *dst, const struct session_params *src)
{
    *dst = *src;
    dst->server_url = src->server_url ? strdup(src->server_url) : NULL;
    dst->control_socket_url = strdup(src->control_socket_url ? src->control_socket_url : "");
    dst->engineio_path = strdup(src->engineio_path ? src->engineio_path : "/socket.io/");
    dst->hostname = src->hostname ? strdup(src->hostname) : NULL;
    dst->ca_file = src->ca_file ? strdup(src->ca_file) : NULL;
    dst->state_dir = src->state_dir ? strdup(src->state_dir) : NULL;
    dst->team_cluster_id = src->team_cluster_id ? strdup(src->team_cluster_id) : NULL;
    dst->daemon_password = secret_dup(src->daemon_password);
    dst->enrollment_token = secret_dup(src->enrollment_token);
    if ((src->server_url && !dst->server_url) || !dst->control_socket_url || !dst->engineio_path ||
        (src->hostname && !dst->hostname) || (src->ca_file && !dst->ca_file) ||
        (src->state_dir && !dst->state_dir) || (src->team_cluster_id && !dst->team_cluster_id) ||
        (src->daemon_password && !dst->daemon_password) ||
        (src->enrollment_token && !dst->enrollment_token))
        return -ENOMEM;
    return 0;
}

static void params_free(struct session_params *p)
{
    free((char *)p->server_url);
    free((char *)p->control_socket_url);
    free((char *)p->engineio_path);
    free((char *)p->hostname);
    free((char *)p->ca_file);
    free((char *)p->state_dir);
    free((char *)p->team_cluster_id);
    secret_free((char *)p->daemon_password);
    secret_free((char *)p->enrollment_token);
    memset(p, 0, sizeof(*p));
}

struct session *session_new(uv_loop_t *loop, const struct session_params *params,
                            const struct session_events *events)
{
    struct session *s = calloc(1, sizeof(*s));
    const char *why = NULL;
    struct sio_limits lim = SIO_LIMITS_DEFAULT;
    struct backoff_options bo;

    if (!s)
        return NULL;
    s->loop = loop;
    if (params_copy(&s->p, params) < 0) {
        log_error("out of memory");
        goto fail;
    }
    s->ev = *events;
    s->state = SESSION_IDLE;
    s->since = s->started = uv_now(loop);
    s->next_ack_id = 0;
    snprintf(s->reason, sizeof(s->reason), "not started");
    if (url_parse(s->p.control_socket_url, &s->url, &why) < 0) {
        log_error("controlSocketUrl: %s", why);
        goto fail;
    }
    s->nsp = s->url.path;
    if (s->p.hostname)
        snprintf(s->hostname, sizeof(s->hostname), "%s", s->p.hostname);
    else if (gethostname(s->hostname, sizeof(s->hostname) - 1) < 0)
        snprintf(s->hostname, sizeof(s->hostname), "unknown");
    proto_buf_init(&s->handshake_path);
    if (eio_handshake_path(&s->handshake_path, s->p.engineio_path) < 0) {
        log_error("socket.path: '%s' is not a usable Engine.IO path", s->p.engineio_path);
        goto fail;
    }
    lim.max_attachment_bytes = s->p.max_message;
    lim.max_attachments = VOLT_MAX_ATTACHMENTS;
    sio_assembler_init(&s->sio, &lim);
    s->volt = volt_parser_new();
    if (!s->volt) {
        log_error("out of memory");
        goto fail;
    }
    bo.min_ms = s->p.reconnection_delay_ms;
    bo.max_ms = s->p.reconnection_delay_max_ms;
    bo.factor = 2.0;
    bo.jitter = s->p.randomization_factor;
    backoff_init(&s->backoff, &bo);
    bo.min_ms = 1000;
    bo.max_ms = 300000;
    bo.jitter = 0;
    backoff_init(&s->cred_backoff, &bo);
    return s;

fail:
    volt_parser_free(s->volt);
    proto_buf_free(&s->handshake_path);
    params_free(&s->p);
    free(s);
    return NULL;
}

int session_start(struct session *s)
{
    const char *fatal = NULL;
    struct ws_transport_options wo = {
        .ca_file = s->p.ca_file,
        .insecure = s->p.tls_insecure,
        .plain_only = !s->url.tls,
    };
    int rc;

    if (s->p.state_dir && credstore_new(&s->store, s->p.state_dir) < 0)
        s->store = NULL;
    rc = idtable_new(&s->pending, s->p.max_pending);
    if (rc == 0)
        rc = timer_queue_new(&s->deadlines, s->loop, on_request_timeout, s);
    if (rc == 0)
        rc = ws_transport_new(s->loop, &wo, &s->transport);
    if (rc < 0)
        return rc;
    uv_timer_init(s->loop, &s->phase_timer);
    uv_timer_init(s->loop, &s->ping_timer);
    uv_timer_init(s->loop, &s->heartbeat_timer);
    uv_timer_init(s->loop, &s->cred_timer);
    s->phase_timer.data = s->ping_timer.data = s->heartbeat_timer.data = s->cred_timer.data = s;
    s->handles_open = 4;
    load_credentials(s, &fatal);
    if (fatal) {
        report_error(s, PROTO_E_SOCKET_CONNECTION_FAILED, "%s", fatal);
        set_state(s, SESSION_FAILED, "%s", fatal);
        return 0;
    }
    begin_attempt(s);
    return 0;
}

static void maybe_stopped(struct session *s)
{
    if (s->handles_open == 0 && s->stopped) {
        void (*cb)(void *) = s->stopped;
        s->stopped = NULL;
        cb(s->stopped_ud);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    s->handles_open--;
    maybe_stopped(s);
}

static void on_transport_closed(void *ud)
{
    struct session *s = ud;
    s->transport = NULL;
    s->handles_open--;
    maybe_stopped(s);
}

void session_stop(struct session *s, void (*done)(void *ud), void *ud)
{
    if (s->state == SESSION_STOPPING)
        return;
    s->stopped = done;
    s->stopped_ud = ud;
    /* No Socket.IO DISCONNECT: a socket.io server handles an event on the
     * next tick and drops it if the DISCONNECT that follows in the same
     * read came first ("ignore packet received after disconnection"), so
     * the last server:response answers would be lost. The WebSocket close
     * below sends everything queued, then the Close frame; the server
     * reads that as "transport close" after the events are handled. */
    set_state(s, SESSION_STOPPING, "the broker is stopping");
    if (s->enroll) {
        enroll_cancel(s->enroll);
        s->enroll = NULL;
    }
    if (s->pending)
        fail_all_pending(s, "the broker is stopping");
    if (s->conn)
        ws_close(s->conn);
    if (s->handles_open) {
        uv_close((uv_handle_t *)&s->phase_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->ping_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->heartbeat_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->cred_timer, on_handle_closed);
    }
    if (s->cred_unsaved)
        log_error("upstream: stopping with the enrolled credentials still not stored (%s): the "
                  "daemon password in force is lost",
                  s->cred_error);
    timer_queue_close(s->deadlines);
    s->deadlines = NULL;
    http_client_close(s->http);
    s->http = NULL;
    if (s->transport) {
        /* Counted now, released by on_transport_closed. With a connection
         * up, ws_close() above first sends what is queued and on_ws_close
         * closes the transport; closing it right away would drop the
         * queue (ws.h: "use ws_close() first and wait for on_close"). */
        s->handles_open++;
        if (!s->conn)
            ws_transport_close(s->transport, on_transport_closed, s);
    }
    maybe_stopped(s);
}

void session_free(struct session *s)
{
    if (!s)
        return;
    while (s->inbound_free) {
        struct session_inbound *in = s->inbound_free;
        s->inbound_free = in->next_free;
        free(in);
    }
    idtable_free(s->pending);
    credstore_free(s->store);
    sio_assembler_free(&s->sio);
    volt_parser_free(s->volt);
    proto_buf_free(&s->handshake_path);
    proto_buf_free(&s->out);
    proto_buf_free(&s->header);
    proto_buf_free(&s->scratch);
    free(s->team_cluster_id);
    secret_free(s->daemon_password);
    params_free(&s->p);
    free(s);
}

enum session_state session_state(const struct session *s)
{
    return s->state;
}

const char *session_reason(const struct session *s)
{
    return s->reason;
}

uint64_t session_since(const struct session *s)
{
    return s->since;
}

const char *session_credentials_unsaved(const struct session *s)
{
    return s->cred_unsaved ? s->cred_error : NULL;
}

int session_last_error(const struct session *s, const char **message)
{
    *message = s->last_error_code ? s->last_error : NULL;
    return s->last_error_code;
}

bool session_is_ready(const struct session *s)
{
    return s->state == SESSION_READY;
}

const char *session_team_cluster_id(const struct session *s)
{
    return s->team_cluster_id     ? s->team_cluster_id
           : s->p.team_cluster_id ? s->p.team_cluster_id
                                  : "";
}

const char *session_daemon_password(const struct session *s)
{
    return s->daemon_password;
}

void session_get_counters(const struct session *s, struct session_counters *out)
{
    *out = s->counters;
    out->pending = s->pending ? idtable_count(s->pending) : 0;
}
