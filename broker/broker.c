#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "local/listener.h"
#include "local/peer.h"
#include "local/quota.h"
#include "local/router.h"
#include "proto/errors.h"
#include "proto/msgpack.h"
#include "upstream/session.h"
#include "upstream/volt.h"
#include "util/handlerfile.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/sdnotify.h"
#include "util/statefile.h"

#define BROKER_NAME  "volt-broker/" VOLT_VERSION
#define MAX_MONITORS 16

/* peer_flags bits */
enum {
    PEER_SAID_HELLO = 1u << 0,
    PEER_IS_MONITOR = 1u << 1,
};

struct broker {
    uv_loop_t *loop;
    struct broker_config *cfg;
    uv_pipe_t server;
    bool server_open;
    bool socket_activated;
    int lock_fd;
    uint64_t next_peer_id;
    struct peer_list peers;
    uint32_t n_peers; /* connected and not closing */
    enum session_state last_state;
    uint64_t started_ms;
    struct router *router;
    struct session *session;
    struct quota *quota;
    struct peer *monitors[MAX_MONITORS];
    uint32_t n_monitors;
    struct proto_buf scratch;     /* status maps and other composed values */
    struct proto_buf tap_scratch; /* upstream packets for monitors */
    bool shutting_down;
    bool sending_secret; /* the frame being sent holds the daemon password */
    uint64_t secret_id;  /* ... in answer to this request */
    uv_timer_t metrics_timer;
    bool metrics_timer_open;
    struct textfile *textfile;
    uv_timer_t drain_timer;
    uint64_t drain_deadline;
    bool drain_timer_open;
    /* The handler list of the last run (handlerfile.h): what the first
     * registration waits for while `back` is WAITING. */
    enum volt_handlers_back back;
    struct handlerfile expected;
    bool handlers_file_ours;   /* read at this start: written at the stop */
    bool handlers_file_warned; /* the state directory already failed once */
};

static struct proto_span span_cstr(const char *s)
{
    return proto_span_str(s ? s : "", s ? (uint32_t)strlen(s) : 0);
}

static const char *team_cluster_id(const struct broker *b)
{
    return b->session ? session_team_cluster_id(b->session) : b->cfg->team_cluster_id;
}

/* The `connected` event: the upstream is registered, with the team cluster
 * id in force (enrollment may have replaced the configured one). */
static const struct proto_msg *connected_event(const struct broker *b, struct proto_msg *ev)
{
    ev->op = PROTO_OP_EVENT;
    ev->fields = PROTO_F_EVENT | PROTO_F_STATE | PROTO_F_TEAM_CLUSTER_ID;
    ev->event = span_cstr("connected");
    ev->state = span_cstr("ready");
    ev->team_cluster_id = span_cstr(team_cluster_id(b));
    return ev;
}

static uint64_t now_wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* ---- monitors ---- */

static void monitor_remove(struct broker *b, struct peer *p)
{
    for (uint32_t i = 0; i < b->n_monitors; i++) {
        if (b->monitors[i] == p) {
            b->monitors[i] = b->monitors[--b->n_monitors];
            break;
        }
    }
    if (b->session && b->n_monitors == 0)
        session_set_tap(b->session, false);
}

static void trace_to_monitors(struct broker *b, const char *dir, uint64_t peer,
                              const uint8_t *frame, size_t len)
{
    struct proto_msg t = {.op = PROTO_OP_TRACE};

    t.fields = PROTO_F_DIR | PROTO_F_PEER | PROTO_F_TIME_US | PROTO_F_FRAME;
    t.dir = proto_span_str(dir, (uint32_t)strlen(dir));
    t.peer = peer;
    t.time_us = now_wall_us();
    t.frame.ptr = frame;
    t.frame.len = (uint32_t)len;
    /* Copy the list: a monitor that overflows is closed (and removed) while
     * we iterate. */
    struct peer *list[MAX_MONITORS];
    uint32_t n = b->n_monitors;
    memcpy(list, b->monitors, n * sizeof(list[0]));
    for (uint32_t i = 0; i < n; i++) {
        if (peer_id(list[i]) != peer && !peer_is_closing(list[i]))
            peer_send(list[i], &t);
    }
}

static void on_peer_sent(struct peer *p, const uint8_t *body, size_t len)
{
    struct broker *b = peer_owner(p);
    /* What goes to a monitor is not traced: with two monitors, each
     * trace would be traced to the other, forever. */
    if (!b->n_monitors || (peer_flags(p) & PEER_IS_MONITOR))
        return;
    if (b->sending_secret) {
        /* The daemon password's answer: monitors see that it was given,
         * not what it is (traces end up in bug reports). */
        struct proto_msg red = {.op = PROTO_OP_RESULT};
        struct proto_buf *o = &b->tap_scratch;
        red.fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_DATA;
        red.id = b->secret_id;
        red.ok = true;
        red.data = proto_span_str("\xaa(redacted)", 11);
        proto_buf_reset(o);
        if (proto_msg_encode(o, &red, 0) == 0)
            trace_to_monitors(b, "local-out", peer_id(p), o->data + PROTO_LENGTH_PREFIX,
                              o->len - PROTO_LENGTH_PREFIX);
        return;
    }
    trace_to_monitors(b, "local-out", peer_id(p), body, len);
}

/* ---- status ---- */

static int put_kv_str(struct proto_buf *o, const char *k, const char *v)
{
    int rc = proto_mp_put_cstr(o, k);
    return rc ? rc : proto_mp_put_cstr(o, v ? v : "");
}

static int put_kv_uint(struct proto_buf *o, const char *k, uint64_t v)
{
    int rc = proto_mp_put_cstr(o, k);
    return rc ? rc : proto_mp_put_uint(o, v);
}

/* What is held, against the limits, in total and per user. */
static int build_quota_status(const struct broker *b, struct proto_buf *o)
{
    struct quota_usage users[64];
    size_t n = quota_users(b->quota, users, 64);
    int err = 0;

    if (n > 64)
        n = 64; /* status is for people; the metrics have every user */
    err |= proto_mp_put_map(o, 5);
    err |= put_kv_uint(o, "memory_bytes", quota_bytes(b->quota));
    err |= put_kv_uint(o, "memory_budget", b->cfg->memory_budget);
    err |= put_kv_uint(o, "in_flight", quota_in_flight(b->quota));
    err |= put_kv_uint(o, "max_pending", b->cfg->max_pending);
    err |= proto_mp_put_cstr(o, "users");
    err |= proto_mp_put_array(o, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        err |= proto_mp_put_map(o, 4);
        err |= put_kv_uint(o, "uid", users[i].uid);
        err |= put_kv_uint(o, "clients", users[i].clients);
        err |= put_kv_uint(o, "in_flight", users[i].in_flight);
        err |= put_kv_uint(o, "memory_bytes", users[i].bytes);
    }
    return err;
}

/* The counters, once: status shows them under their key, the metrics
 * under their metric name (gauges are marked). */
struct counter_row {
    const char *key;
    const char *metric;
    const char *help;
    bool gauge;
    uint64_t value;
};

#define MAX_COUNTERS 32

static size_t collect_counters(const struct broker *b, struct counter_row *rows)
{
    struct session_counters sc;
    struct router_counters rc;
    size_t n = 0;

    memset(&sc, 0, sizeof(sc));
    if (b->session)
        session_get_counters(b->session, &sc);
    router_get_counters(b->router, &rc);
#define ROW(key, metric, gauge, help, value)                                                       \
    rows[n++] = (struct counter_row){key, metric, help, gauge, value}
    ROW("requests", "volt_broker_requests_total", false, "requests sent to the server",
        sc.requests);
    ROW("responses_ok", "volt_broker_responses_ok_total", false, "successful answers",
        sc.responses_ok);
    ROW("rejected", "volt_broker_rejected_total", false, "requests the server rejected",
        sc.rejected);
    ROW("timeouts", "volt_broker_timeouts_total", false,
        "requests the server did not answer in time", sc.timeouts);
    ROW("not_ready", "volt_broker_not_ready_total", false,
        "requests refused or failed with SOCKET_NOT_READY", sc.not_ready);
    ROW("inbound", "volt_broker_inbound_total", false, "requests from the server", sc.inbound);
    ROW("inbound_no_handler", "volt_broker_inbound_no_handler_total", false,
        "requests from the server answered NoHandler", rc.inbound_no_handler);
    ROW("inbound_handler_error", "volt_broker_inbound_handler_error_total", false,
        "requests from the server answered HandlerError by the broker", rc.inbound_handler_error);
    ROW("inbound_timeout", "volt_broker_inbound_timeout_total", false,
        "requests from the server answered HandlerTimeout", rc.inbound_timeout);
    ROW("messages_in", "volt_broker_messages_in_total", false, "messages from the server",
        sc.messages_in);
    ROW("messages_out", "volt_broker_messages_out_total", false, "messages sent to the server",
        sc.messages_out);
    ROW("drops", "volt_broker_drops_total", false, "late answers and replies dropped",
        sc.late_responses + rc.late_replies);
    ROW("released", "volt_broker_released_total", false,
        "requests released because their client left", rc.requests_released);
    ROW("memory_cuts", "volt_broker_memory_cuts_total", false,
        "clients disconnected for a memory limit", quota_memory_cuts(b->quota));
    ROW("undeliverable", "volt_broker_undeliverable_total", false,
        "server values no local frame could carry", sc.undeliverable);
    ROW("recovered", "volt_broker_recovered_total", false,
        "reconnections where the server restored the session", sc.recovered);
    ROW("emits_kept", "volt_broker_emits_kept_total", false,
        "emits kept while the upstream was not ready", rc.emits_kept);
    ROW("emits_kept_dropped", "volt_broker_emits_kept_dropped_total", false,
        "kept emits the server would not take", rc.emits_kept_dropped);
    ROW("slow_consumers", "volt_broker_slow_consumers_total", false,
        "clients disconnected for not reading", rc.slow_consumers);
    ROW("reconnects", "volt_broker_reconnects_total", false, "upstream sessions lost",
        sc.reconnects);
    ROW("pending", "volt_broker_pending", true, "requests waiting for the server", sc.pending);
#undef ROW
    return n;
}

static int build_status(struct broker *b, struct proto_buf *o)
{
    uint64_t now = uv_now(b->loop);
    int err = 0;

    err |= proto_mp_put_map(o, 5);
    err |= proto_mp_put_cstr(o, "broker");
    err |= proto_mp_put_map(o, 5);
    err |= put_kv_str(o, "version", VOLT_VERSION);
    err |= put_kv_uint(o, "pid", (uint64_t)getpid());
    err |= put_kv_uint(o, "uptime_ms", now - b->started_ms);
    err |=
        put_kv_str(o, "listen", b->socket_activated ? "(socket activation)" : b->cfg->listen_path);
    err |= put_kv_uint(o, "clients", b->n_peers);

    err |= proto_mp_put_cstr(o, "upstream");
    err |= proto_mp_put_map(o, 6);
    if (b->session) {
        err |= put_kv_str(o, "state", session_state_name(session_state(b->session)));
        err |= put_kv_str(o, "reason", session_reason(b->session));
        err |= put_kv_uint(o, "since_ms", now - session_since(b->session));
        err |= put_kv_str(o, "team_cluster_id", session_team_cluster_id(b->session));
    } else {
        err |= put_kv_str(o, "state", "idle");
        err |= put_kv_str(o, "reason", "no controlSocketUrl configured");
        err |= put_kv_uint(o, "since_ms", now - b->started_ms);
        err |= put_kv_str(o, "team_cluster_id", b->cfg->team_cluster_id);
    }
    err |= put_kv_str(o, "url", b->cfg->control_socket_url);
    /* Enrolled credentials the state directory could not take are held in
     * memory (and lost with the process): an operator must see it. */
    const char *unsaved = b->session ? session_credentials_unsaved(b->session) : NULL;
    char cred[320];
    snprintf(cred, sizeof(cred), "%s%s", unsaved ? "in memory only: " : "ok",
             unsaved ? unsaved : "");
    err |= put_kv_str(o, "credentials", cred);

    struct counter_row rows[MAX_COUNTERS];
    size_t n = collect_counters(b, rows);
    err |= proto_mp_put_cstr(o, "counters");
    err |= proto_mp_put_map(o, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        err |= put_kv_uint(o, rows[i].key, rows[i].value);

    err |= proto_mp_put_cstr(o, "quotas");
    err |= build_quota_status(b, o);

    err |= proto_mp_put_cstr(o, "clients");
    err |= router_status_clients(b->router, o);
    return err ? PROTO_E_NOMEM : 0;
}

/* ---- metrics ---- */

/* Everything of status that is a number, as Prometheus text: the counters,
 * the upstream state (one gauge per state), memory against the budget, per
 * user and per client name, and the latency histograms. */
static int build_metrics(struct broker *b, struct proto_buf *o)
{
    static const enum session_state states[] = {
        SESSION_IDLE,  SESSION_ENROLLING, SESSION_CONNECTING, SESSION_REGISTERING,
        SESSION_READY, SESSION_BACKOFF,   SESSION_STOPPING,   SESSION_FAILED};
    struct counter_row rows[MAX_COUNTERS];
    struct quota_usage users[256];
    uint64_t now = uv_now(b->loop);
    enum session_state current = b->session ? session_state(b->session) : SESSION_IDLE;
    char uid[16];
    int err = 0;

    err |= metrics_family(o, "volt_broker_info", METRICS_GAUGE, "the broker's version");
    err |= metrics_sample(o, "volt_broker_info", "version", VOLT_VERSION, 1);
    err |= metrics_gauge(o, "volt_broker_uptime_seconds", "since the broker started",
                         (double)(now - b->started_ms) / 1000.0);
    err |= metrics_family(o, "volt_broker_upstream_state", METRICS_GAUGE,
                          "1 for the upstream session's current state");
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        err |= metrics_sample(o, "volt_broker_upstream_state", "state",
                              session_state_name(states[i]), states[i] == current);
    err |= metrics_gauge(o, "volt_broker_upstream_state_seconds", "in the current state",
                         (double)(now - (b->session ? session_since(b->session) : b->started_ms)) /
                             1000.0);
    size_t n = collect_counters(b, rows);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].gauge)
            err |= metrics_gauge(o, rows[i].metric, rows[i].help, (double)rows[i].value);
        else
            err |= metrics_counter(o, rows[i].metric, rows[i].help, rows[i].value);
    }
    err |= metrics_gauge(o, "volt_broker_clients", "local connections", b->n_peers);
    err |= metrics_gauge(o, "volt_broker_memory_bytes", "bytes held for clients",
                         (double)quota_bytes(b->quota));
    err |= metrics_gauge(o, "volt_broker_memory_budget_bytes", "broker.limits.memoryBudget",
                         b->cfg->memory_budget);
    err |= metrics_gauge(o, "volt_broker_kept_emit_bytes", "emits kept for the upstream",
                         (double)router_kept_emit_bytes(b->router));
    size_t nu = quota_users(b->quota, users, 256);
    if (nu > 256)
        nu = 256;
    static const char *const user_metrics[][2] = {
        {"volt_broker_user_connections", "connections, by uid"},
        {"volt_broker_user_in_flight", "requests waiting for the server, by uid"},
        {"volt_broker_user_memory_bytes", "bytes held for the clients of a uid"},
    };
    for (size_t k = 0; k < 3; k++) {
        err |= metrics_family(o, user_metrics[k][0], METRICS_GAUGE, user_metrics[k][1]);
        for (size_t i = 0; i < nu; i++) {
            snprintf(uid, sizeof(uid), "%u", users[i].uid);
            double v = k == 0   ? users[i].clients
                       : k == 1 ? users[i].in_flight
                                : (double)users[i].bytes;
            err |= metrics_sample(o, user_metrics[k][0], "uid", uid, v);
        }
    }
    err |= router_metrics(b->router, o);
    err |= proto_buf_append(o, "# EOF\n", 6);
    return err ? PROTO_E_NOMEM : 0;
}

static void handle_metrics(struct broker *b, struct peer *p, const struct proto_msg *m)
{
    struct proto_buf text = PROTO_BUF_INIT;
    struct proto_buf *o = &b->scratch;

    proto_buf_reset(o);
    if (build_metrics(b, &text) < 0 || proto_mp_put_str(o, (const char *)text.data, text.len) < 0) {
        peer_send_result(p, m->id, PROTO_E_NOMEM, "out of memory", NULL, NULL);
    } else {
        struct proto_span data = {o->data, (uint32_t)o->len};
        peer_send_result(p, m->id, 0, NULL, &data, NULL);
    }
    proto_buf_free(&text);
}

/* The textfile for node_exporter: written beside its name and renamed
 * over it, asynchronously (uv_fs_*: no blocking call on the loop), one
 * write at a time; a write still going when the next is due is skipped. */
struct textfile {
    struct broker *b;
    uv_fs_t req;
    uv_file fd;
    struct proto_buf text;
    char tmp[4096 + 16];
    bool busy;
};

static void textfile_done(struct textfile *t, const char *step, ssize_t rc)
{
    if (rc < 0)
        log_warn("metrics textfile %s: %s failed: %s", t->b->cfg->metrics_textfile, step,
                 uv_strerror((int)rc));
    t->busy = false;
}

static void on_textfile_renamed(uv_fs_t *req)
{
    struct textfile *t = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    textfile_done(t, "rename", rc < 0 ? rc : 0);
}

static void on_textfile_closed(uv_fs_t *req)
{
    struct textfile *t = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    if (rc < 0) {
        textfile_done(t, "close", rc);
        return;
    }
    if (uv_fs_rename(t->b->loop, &t->req, t->tmp, t->b->cfg->metrics_textfile,
                     on_textfile_renamed) < 0)
        textfile_done(t, "rename", -1);
}

static void on_textfile_written(uv_fs_t *req)
{
    struct textfile *t = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    if (rc >= 0 && (size_t)rc != t->text.len)
        rc = UV_EIO; /* a short write to a regular file: the disk is full */
    if (rc < 0)
        log_warn("metrics textfile %s: write failed: %s", t->tmp, uv_strerror((int)rc));
    uv_fs_close(t->b->loop, &t->req, t->fd, rc < 0 ? on_textfile_renamed : on_textfile_closed);
}

static void on_textfile_opened(uv_fs_t *req)
{
    struct textfile *t = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    if (rc < 0) {
        textfile_done(t, "open", rc);
        return;
    }
    t->fd = (uv_file)rc;
    uv_buf_t buf = uv_buf_init((char *)t->text.data, (unsigned)t->text.len);
    uv_fs_write(t->b->loop, &t->req, t->fd, &buf, 1, 0, on_textfile_written);
}

static void on_metrics_tick(uv_timer_t *timer)
{
    struct broker *b = timer->data;
    struct textfile *t = b->textfile;

    if (!b->cfg->metrics_textfile || t->busy)
        return;
    proto_buf_reset(&t->text);
    if (build_metrics(b, &t->text) < 0)
        return;
    snprintf(t->tmp, sizeof(t->tmp), "%s.tmp", b->cfg->metrics_textfile);
    t->busy = true;
    t->req.data = t;
    /* 0644: node_exporter runs as its own user. The temp name is fixed,
     * O_TRUNC without O_EXCL, so a crash mid-write leaves nothing behind
     * for the next tick to trip on; O_NOFOLLOW keeps it off symlinks. */
    if (uv_fs_open(b->loop, &t->req, t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                   0644, on_textfile_opened) < 0)
        textfile_done(t, "open", -1);
}

static void metrics_textfile_start(struct broker *b)
{
    if (!b->cfg->metrics_textfile || b->metrics_timer_open)
        return;
    if (!b->textfile && !(b->textfile = calloc(1, sizeof(*b->textfile))))
        return;
    b->textfile->b = b;
    uv_timer_init(b->loop, &b->metrics_timer);
    b->metrics_timer.data = b;
    b->metrics_timer_open = true;
    uv_timer_start(&b->metrics_timer, on_metrics_tick, 0, b->cfg->metrics_interval_ms);
}

/* ---- ops handled by the broker itself ---- */

static void handle_hello(struct broker *b, struct peer *p, const struct proto_msg *m)
{
    uint64_t lo = m->min_version > PROTO_VERSION_MIN ? m->min_version : PROTO_VERSION_MIN;
    uint64_t hi = m->max_version < PROTO_VERSION_MAX ? m->max_version : PROTO_VERSION_MAX;
    struct proto_msg w = {.op = PROTO_OP_WELCOME};
    const char *state = b->session ? session_state_name(session_state(b->session)) : "idle";

    if (peer_flags(p) & PEER_SAID_HELLO) {
        peer_send_frame_error(p, m, PROTO_E_BAD_REQUEST, "hello was already said");
        return;
    }
    if (lo > hi) {
        char why[128];
        snprintf(why, sizeof(why), "client speaks versions %llu..%llu, broker speaks %u..%u",
                 (unsigned long long)m->min_version, (unsigned long long)m->max_version,
                 PROTO_VERSION_MIN, PROTO_VERSION_MAX);
        peer_send_error(p, PROTO_E_VERSION_MISMATCH, why, "no common protocol version");
        return;
    }
    if (proto_msg_has(m, PROTO_F_NAME))
        peer_set_name(p, (const char *)m->name.ptr, m->name.len);
    if (router_peer_join(b->router, p) < 0) {
        peer_close(p, "out of memory");
        return;
    }
    peer_set_flags(p, peer_flags(p) | PEER_SAID_HELLO);
    peer_clear_deadline(p);
    if (b->session)
        session_local_activity(b->session);
    log_info("client %llu hello: name=%s pid=%d uid=%u version=%llu",
             (unsigned long long)peer_id(p), peer_name(p), (int)peer_pid(p), (unsigned)peer_uid(p),
             (unsigned long long)hi);
    w.fields = PROTO_F_VERSION | PROTO_F_MAX_FRAME | PROTO_F_NAME | PROTO_F_STATE |
               PROTO_F_TIMEOUT_MS | PROTO_F_MAX_TIMEOUT_MS | PROTO_F_TEAM_CLUSTER_ID |
               PROTO_F_REASON;
    w.version = hi;
    w.timeout_ms = b->cfg->command_timeout_ms;
    w.max_timeout_ms = b->cfg->max_command_timeout_ms;
    w.max_frame = b->cfg->max_frame;
    w.name = proto_span_str(BROKER_NAME, (uint32_t)strlen(BROKER_NAME));
    w.state = proto_span_str(state, (uint32_t)strlen(state));
    w.team_cluster_id = span_cstr(team_cluster_id(b));
    w.reason =
        span_cstr(b->session ? session_reason(b->session) : "no controlSocketUrl configured");
    if (b->session) {
        const char *last = NULL;
        int code = session_last_error(b->session, &last);
        if (code) {
            w.fields |= PROTO_F_CODE | PROTO_F_MESSAGE;
            w.code = span_cstr(proto_error_name(code));
            w.message = span_cstr(last);
        }
    }
    if (peer_send(p, &w) < 0)
        return;
    if (b->session && session_is_ready(b->session))
        peer_send(p, connected_event(b, &(struct proto_msg){.op = PROTO_OP_EVENT}));
}

static bool is_privileged(const struct peer *p)
{
    return peer_uid(p) == 0 || peer_uid(p) == geteuid();
}

static bool may_read_password(const struct broker *b, const struct peer *p)
{
    return is_privileged(p) || config_ids_contain(&b->cfg->password_readers, peer_uid(p));
}

static void handle_credential(struct broker *b, struct peer *p, const struct proto_msg *m)
{
    const char *value = NULL;
    struct proto_buf *o = &b->scratch;

    if (m->name.len == 13 && !memcmp(m->name.ptr, "teamClusterId", 13)) {
        value = team_cluster_id(b);
    } else if (m->name.len == 14 && !memcmp(m->name.ptr, "daemonPassword", 14)) {
        if (!may_read_password(b, p)) {
            log_info("client %llu (uid %u) refused the daemon password",
                     (unsigned long long)peer_id(p), (unsigned)peer_uid(p));
            peer_send_result(p, m->id, PROTO_E_PERMISSION_DENIED,
                             "the daemon password is only given to root, the broker's own user "
                             "and the users in broker.passwordReaders",
                             NULL, NULL);
            return;
        }
        value = b->session ? session_daemon_password(b->session) : b->cfg->daemon_password;
    } else {
        peer_send_result(p, m->id, PROTO_E_BAD_REQUEST,
                         "name must be \"teamClusterId\" or \"daemonPassword\"", NULL, NULL);
        return;
    }
    if (!value) {
        peer_send_result(p, m->id, PROTO_E_SOCKET_NOT_READY, "not configured", NULL, NULL);
        return;
    }
    proto_buf_reset(o);
    if (proto_mp_put_cstr(o, value) < 0) {
        peer_send_result(p, m->id, PROTO_E_NOMEM, "out of memory", NULL, NULL);
        return;
    }
    struct proto_span data = {o->data, (uint32_t)o->len};
    b->sending_secret = value != team_cluster_id(b);
    b->secret_id = m->id;
    peer_send_result(p, m->id, 0, NULL, &data, NULL);
    b->sending_secret = false;
    /* The password must not linger in a reused buffer. */
    memset(o->data, 0, o->len);
    proto_buf_reset(o);
}

static void handle_status(struct broker *b, struct peer *p, const struct proto_msg *m)
{
    struct proto_buf *o = &b->scratch;

    proto_buf_reset(o);
    if (build_status(b, o) < 0) {
        peer_send_result(p, m->id, PROTO_E_NOMEM, "out of memory", NULL, NULL);
        return;
    }
    struct proto_span data = {o->data, (uint32_t)o->len};
    peer_send_result(p, m->id, 0, NULL, &data, NULL);
}

static void handle_monitor(struct broker *b, struct peer *p, const struct proto_msg *m)
{
    if (!is_privileged(p)) {
        peer_send_result(p, m->id, PROTO_E_PERMISSION_DENIED,
                         "monitoring is only for root and the broker's own user", NULL, NULL);
        return;
    }
    if (peer_flags(p) & PEER_IS_MONITOR) {
        peer_send_result(p, m->id, 0, NULL, NULL, NULL);
        return;
    }
    if (b->n_monitors >= MAX_MONITORS) {
        peer_send_result(p, m->id, PROTO_E_LIMIT_EXCEEDED, "too many monitors", NULL, NULL);
        return;
    }
    b->monitors[b->n_monitors++] = p;
    peer_set_flags(p, peer_flags(p) | PEER_IS_MONITOR);
    if (b->session)
        session_set_tap(b->session, true);
    log_info("client %llu (%s) is monitoring", (unsigned long long)peer_id(p), peer_name(p));
    peer_send_result(p, m->id, 0, NULL, NULL, NULL);
}

static void on_peer_frame(struct peer *p, const struct proto_span *frame)
{
    struct broker *b = peer_owner(p);
    struct proto_msg m;
    const char *why = NULL;
    int rc;

    if (b->n_monitors)
        trace_to_monitors(b, "local-in", peer_id(p), frame->ptr, frame->len);
    rc = proto_msg_decode(frame, &m, &why);
    if (rc == 0)
        rc = proto_msg_check(&m, &why);
    if (rc < 0) {
        peer_send_frame_error(p, &m, rc, why ? why : "bad frame");
        return;
    }
    if (!(peer_flags(p) & PEER_SAID_HELLO) && m.op != PROTO_OP_HELLO) {
        peer_send_error(p, PROTO_E_BAD_REQUEST, "the first frame must be hello",
                        "first frame was not hello");
        return;
    }
    switch (m.op) {
    case PROTO_OP_HELLO:
        handle_hello(b, p, &m);
        return;
    case PROTO_OP_STATUS:
        handle_status(b, p, &m);
        return;
    case PROTO_OP_PING: {
        struct proto_msg pong = {.op = PROTO_OP_PONG, .fields = PROTO_F_ID, .id = m.id};
        peer_send(p, &pong);
        return;
    }
    case PROTO_OP_CREDENTIAL:
        handle_credential(b, p, &m);
        return;
    case PROTO_OP_MONITOR:
        handle_monitor(b, p, &m);
        return;
    case PROTO_OP_METRICS:
        handle_metrics(b, p, &m);
        return;
    default:
        break;
    }
    if (b->shutting_down && m.op == PROTO_OP_REQUEST) {
        peer_send_result(p, m.id, PROTO_E_SHUTTING_DOWN, "the broker is stopping", NULL, NULL);
        return;
    }
    if (!router_handle(b->router, p, &m))
        peer_send_frame_error(p, &m, PROTO_E_UNKNOWN_OP, "this op is not sent by clients");
}

static void on_peer_bad_frame(struct peer *p, int code, const char *why)
{
    peer_send_frame_error(p, NULL, code, why);
}

static void on_peer_closing(struct peer *p, const char *reason)
{
    struct broker *b = peer_owner(p);

    log_info("client %llu disconnected: name=%s pid=%d uid=%u: %s", (unsigned long long)peer_id(p),
             peer_name(p), (int)peer_pid(p), (unsigned)peer_uid(p), reason);
    if (peer_flags(p) & PEER_IS_MONITOR)
        monitor_remove(b, p);
    if (peer_flags(p) & PEER_SAID_HELLO)
        router_peer_leave(b->router, p);
    b->n_peers--;
}

static const struct peer_callbacks peer_cb = {
    .frame = on_peer_frame,
    .bad_frame = on_peer_bad_frame,
    .closing = on_peer_closing,
    .sent = on_peer_sent,
};

static bool peer_allowed(const struct broker *b, const struct peer *p)
{
    const struct broker_config *c = b->cfg;

    if (!c->allowed_uids.n && !c->allowed_gids.n)
        return true;
    if (peer_uid(p) == geteuid() || peer_uid(p) == 0)
        return true;
    if (config_ids_contain(&c->allowed_uids, peer_uid(p)))
        return true;
    for (size_t i = 0; i < c->allowed_gids.n; i++) {
        if (peer_in_group(p, (gid_t)c->allowed_gids.ids[i]))
            return true;
    }
    return false;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct broker *b = server->data;
    struct peer_limits limits;
    struct peer *p;
    const char *why = NULL;
    char message[96];
    int err = 0;

    if (status < 0) {
        log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    proto_limits_default(&limits.frame);
    limits.frame.max_frame = b->cfg->max_frame;
    limits.max_queue_bytes = b->cfg->max_queue_bytes;
    limits.frame_timeout_ms = b->cfg->frame_timeout_ms;
    p = peer_new(b->loop, &b->server, &b->peers, ++b->next_peer_id, &limits, &peer_cb, b, &err);
    if (!p) {
        log_warn("accept failed: %s", uv_strerror(err));
        return;
    }
    b->n_peers++;
    log_info("client %llu connected: pid=%d uid=%u gid=%u", (unsigned long long)peer_id(p),
             (int)peer_pid(p), (unsigned)peer_uid(p), (unsigned)peer_gid(p));
    if (!peer_allowed(b, p)) {
        peer_send_error(p, PROTO_E_PERMISSION_DENIED, "this user may not use the broker",
                        "uid/gid not in the allowed set");
        return;
    }
    if (b->shutting_down) {
        peer_send_error(p, PROTO_E_SHUTTING_DOWN, "the broker is stopping", "broker is stopping");
        return;
    }
    err = quota_admit(b->quota, peer_quota(p), peer_uid(p), is_privileged(p), &why);
    if (err < 0) {
        peer_send_error(p, err, why, why);
        return;
    }
    /* A slot is not held by a process that never speaks. */
    snprintf(message, sizeof(message), "no hello within %u ms", b->cfg->hello_timeout_ms);
    peer_set_deadline(p, b->cfg->hello_timeout_ms, PROTO_E_BAD_REQUEST, message);
    if (peer_start(p) < 0)
        peer_close(p, "cannot start reading");
}

/* ---- the handler list across restarts ---- */

/* What the file says is handlerfile.h's; here is when it is read and
 * written, and what the first registration's hold (volt_register_hold())
 * makes of it. */

/* The last run's handlers that no client serves now: how many, and (when
 * out is given, room for all of them) which. */
static size_t missing_handlers(const struct broker *b, const char **out)
{
    size_t n = 0;

    for (size_t i = 0; i < b->expected.n_names; i++) {
        const char *name = b->expected.names[i];
        if (router_has_handler(b->router, (const uint8_t *)name, strlen(name)))
            continue;
        if (out)
            out[n] = name;
        n++;
    }
    return n;
}

/* Once at start, after the socket's lock is ours (a second broker that
 * cannot listen must not touch the running one's state): read what the
 * last stop left, then mark the file "running". Blocking calls, as
 * statefile.h explains. */
static void handlers_file_start(struct broker *b)
{
    const char *dir = b->cfg->state_dir;
    char err[512] = "";
    char *text = NULL;
    size_t len = 0;
    int r;

    b->handlers_file_ours = true;
    r = statefile_read(dir, HANDLERFILE_NAME, HANDLERFILE_WHAT, HANDLERFILE_MAX, &text, &len, err,
                       sizeof(err));
    if (r == STATEFILE_ABSENT) {
        b->back = VOLT_HANDLERS_RESTORED; /* a first start: nobody to wait for */
        log_debug("no handler list from a previous run: the first registration is not held");
    } else if (r < 0) {
        b->back = VOLT_HANDLERS_UNKNOWN;
        b->handlers_file_warned = true;
        log_warn("%s; the first registration waits for local clients to settle instead", err);
    } else {
        handlerfile_parse(text, len, ROUTER_COMMAND_NAME_MAX, &b->expected);
        if (b->expected.kind == HANDLERFILE_UNUSABLE) {
            b->back = VOLT_HANDLERS_UNKNOWN;
            b->handlers_file_warned = true;
            log_warn("handler list file %s/%s is unusable (%s); the first registration waits for "
                     "local clients to settle instead",
                     dir, HANDLERFILE_NAME, b->expected.why);
        } else if (b->expected.kind == HANDLERFILE_RUNNING) {
            b->back = VOLT_HANDLERS_UNKNOWN;
            log_info("the last run did not stop cleanly: its handlers are unknown; the first "
                     "registration waits for local clients to settle");
        } else if (b->expected.n_names == 0) {
            b->back = VOLT_HANDLERS_RESTORED;
            log_debug("the last run stopped with no handler registered: the first registration "
                      "is not held");
        } else if (b->cfg->announce_delay_ms) {
            b->back = VOLT_HANDLERS_WAITING;
            log_info("the last run stopped with %zu handler%s registered: the first registration "
                     "waits up to %u ms for them",
                     b->expected.n_names, b->expected.n_names == 1 ? "" : "s",
                     b->cfg->announce_delay_ms);
        } else {
            b->back = VOLT_HANDLERS_WAITING;
            log_debug("the last run stopped with %zu handler%s registered; broker.announceDelay "
                      "is 0: the first registration is not held",
                      b->expected.n_names, b->expected.n_names == 1 ? "" : "s");
        }
    }
    statefile_text_free(text, len);
    err[0] = '\0';
    r = statefile_write(dir, HANDLERFILE_NAME, HANDLERFILE_WHAT, HANDLERFILE_RUNNING_TEXT,
                        strlen(HANDLERFILE_RUNNING_TEXT), err, sizeof(err));
    if (r < 0 && !b->handlers_file_warned) {
        b->handlers_file_warned = true;
        log_warn("%s; the next start cannot tell a crash from a clean stop", err);
    }
}

/* At a graceful stop: the list the session would announce now, and, if
 * the first registration has not gone out yet, the last run's names that
 * are not back: the server still knows those, and a quick second restart
 * must not forget them. */
static void handlers_file_stop(struct broker *b)
{
    struct proto_buf list, text;
    const char **missing = NULL;
    size_t n_missing = 0;
    char err[512] = "";
    int r;

    if (!b->handlers_file_ours || !b->router)
        return;
    b->handlers_file_ours = false;
    proto_buf_init(&list);
    proto_buf_init(&text);
    r = router_handler_list(b->router, &list);
    if (r == 0 && b->back == VOLT_HANDLERS_WAITING && b->expected.n_names) {
        missing = calloc(b->expected.n_names, sizeof(*missing));
        if (!missing)
            r = PROTO_E_NOMEM;
        else
            n_missing = missing_handlers(b, missing);
    }
    if (r == 0)
        r = handlerfile_render(list.data, list.len, missing, n_missing, &text);
    if (r < 0) {
        log_warn("cannot write the handler list for the next start (%s)", proto_error_text(r));
    } else {
        r = statefile_write(b->cfg->state_dir, HANDLERFILE_NAME, HANDLERFILE_WHAT, text.data,
                            text.len, err, sizeof(err));
        if (r < 0 && b->handlers_file_warned)
            log_debug("%s", err);
        else if (r < 0)
            log_warn("%s; the next start will wait for local clients to settle", err);
        else
            log_debug("kept the handler list for the next start");
    }
    free(missing);
    proto_buf_free(&list);
    proto_buf_free(&text);
}

static enum volt_handlers_back on_session_handlers_back(void *ud)
{
    struct broker *b = ud;

    if (b->back != VOLT_HANDLERS_WAITING || !b->router)
        return b->back;
    if (missing_handlers(b, NULL))
        return VOLT_HANDLERS_WAITING;
    log_info("the %zu handler%s of the last run %s registered again", b->expected.n_names,
             b->expected.n_names == 1 ? "" : "s", b->expected.n_names == 1 ? "is" : "are");
    handlerfile_free(&b->expected);
    b->back = VOLT_HANDLERS_RESTORED;
    return b->back;
}

/* The first registration went out while some of the last run's handlers
 * were still missing (announceDelay passed): say which. */
static void report_missing_handlers(struct broker *b)
{
    char names[512];
    size_t used = 0, missing = 0;
    const char **which = calloc(b->expected.n_names ? b->expected.n_names : 1, sizeof(*which));

    names[0] = '\0';
    missing = missing_handlers(b, which);
    for (size_t i = 0; which && i < missing && used < sizeof(names); i++) {
        int w = snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "", which[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    free(which);
    if (used >= sizeof(names))
        memcpy(names + sizeof(names) - 4, "...", 4);
    if (missing && b->cfg->announce_delay_ms)
        log_warn("registering after %u ms (broker.announceDelay) with %zu of the %zu handlers of "
                 "the last run still missing: %s",
                 b->cfg->announce_delay_ms, missing, b->expected.n_names, names);
    handlerfile_free(&b->expected);
    b->back = VOLT_HANDLERS_RESTORED;
}

/* ---- session events ---- */

static void on_session_state(void *ud, enum session_state st, const char *reason)
{
    struct broker *b = ud;
    struct proto_msg ev = {.op = PROTO_OP_EVENT};
    const char *name = session_state_name(st);
    char status[320];

    /* systemctl status shows where the upstream is and why. */
    snprintf(status, sizeof(status), "STATUS=upstream %s: %s", name, reason);
    sdnotify_send(status);
    /* v2: every transition, with its reason: a client waiting for the
     * upstream learns at once that it went `failed`, or why it is in
     * backoff. The seed's connected/disconnected follow. */
    struct proto_msg state = {.op = PROTO_OP_EVENT};
    state.fields = PROTO_F_EVENT | PROTO_F_STATE | PROTO_F_REASON;
    state.event = span_cstr("state");
    state.state = span_cstr(name);
    state.reason = span_cstr(reason);
    router_broadcast(b->router, &state);
    if (st == SESSION_REGISTERING && b->back == VOLT_HANDLERS_WAITING)
        report_missing_handlers(b);
    if (st == SESSION_READY) {
        b->last_state = st;
        router_broadcast(b->router, connected_event(b, &ev));
        router_upstream_ready(b->router);
        return;
    }
    if (b->last_state == SESSION_READY) {
        ev.fields = PROTO_F_EVENT | PROTO_F_STATE | PROTO_F_REASON;
        ev.event = span_cstr("disconnected");
        ev.reason = span_cstr(reason);
        ev.state = span_cstr(name);
        router_broadcast(b->router, &ev);
    }
    b->last_state = st;
}

static void on_session_error(void *ud, int code, const char *message)
{
    struct broker *b = ud;
    struct proto_msg ev = {.op = PROTO_OP_EVENT};
    const char *name = proto_error_name(code);
    const char *state = session_state_name(session_state(b->session));

    ev.fields = PROTO_F_EVENT | PROTO_F_CODE | PROTO_F_MESSAGE | PROTO_F_STATE;
    ev.event = proto_span_str("error", 5);
    ev.code = proto_span_str(name, (uint32_t)strlen(name));
    ev.message = proto_span_str(message, (uint32_t)strlen(message));
    ev.state = proto_span_str(state, (uint32_t)strlen(state));
    router_broadcast(b->router, &ev);
}

static void on_session_inbound(void *ud, struct session_inbound *in,
                               const struct proto_span *command, const struct proto_span *payload)
{
    struct broker *b = ud;
    router_inbound_request(b->router, in, command, payload);
}

static void on_session_message(void *ud, const struct proto_span *type,
                               const struct proto_span *data)
{
    struct broker *b = ud;
    router_inbound_message(b->router, type, data);
}

static int on_session_handler_list(void *ud, struct proto_buf *out)
{
    struct broker *b = ud;
    return router_handler_list(b->router, out);
}

static void on_session_handler_trim(void *ud, size_t room)
{
    struct broker *b = ud;
    router_trim_handlers(b->router, room);
}

/* Upstream packets are traced as a msgpack str (text) or bin (binary). */
static void on_session_tap(void *ud, bool out, const void *data, size_t len, bool binary)
{
    struct broker *b = ud;
    struct proto_buf *o = &b->tap_scratch;

    if (!b->n_monitors)
        return;
    proto_buf_reset(o);
    if ((binary ? proto_mp_put_bin(o, data, len) : proto_mp_put_str(o, data, len)) < 0)
        return;
    trace_to_monitors(b, out ? "upstream-out" : "upstream-in", 0, o->data, o->len);
}

static void on_session_local_counts(void *ud, uint64_t *clients, uint64_t *handlers)
{
    struct broker *b = ud;
    *clients = router_client_count(b->router);
    *handlers = router_handler_count(b->router);
}

/* ---- lifecycle ---- */

/* A derived default: a setting left at 0 means `fallback`. */
static uint32_t or_default(uint32_t v, uint32_t fallback)
{
    return v ? v : fallback;
}

static void router_params_from(const struct broker_config *c, struct router_params *p)
{
    memset(p, 0, sizeof(*p));
    p->command_timeout_ms = c->command_timeout_ms;
    p->max_command_timeout_ms = c->max_command_timeout_ms;
    p->handler_timeout_ms = or_default(c->handler_timeout_ms, c->command_timeout_ms);
    p->max_handlers_per_client = c->max_handlers_per_client;
    p->max_subscriptions_per_client = c->max_subscriptions_per_client;
    p->max_in_flight_per_client = c->max_in_flight_per_client;
    p->max_pending = c->max_pending;
    p->max_emit_buffer = c->max_emit_buffer;
}

static void quota_limits_from(const struct broker_config *c, struct quota_limits *l)
{
    memset(l, 0, sizeof(*l));
    l->max_clients = c->max_clients;
    l->reserved_clients = c->reserved_clients;
    l->max_clients_per_uid = c->max_clients_per_uid;
    l->max_in_flight_per_uid = c->max_in_flight_per_uid;
    l->max_bytes_per_uid = c->max_bytes_per_uid;
    l->memory_budget = c->memory_budget;
}

static void session_params_from(const struct broker_config *c, struct session_params *p)
{
    memset(p, 0, sizeof(*p));
    p->server_url = c->server_url;
    p->control_socket_url = c->control_socket_url;
    p->engineio_path = c->engineio_path;
    p->hostname = c->hostname;
    p->ca_file = c->ca_file;
    p->tls_insecure = c->tls_insecure;
    p->state_dir = c->state_dir;
    p->team_cluster_id = c->team_cluster_id;
    p->daemon_password = c->daemon_password;
    p->enrollment_token = c->enrollment_token;
    p->connect_timeout_ms = c->connect_timeout_ms;
    p->registration_timeout_ms = or_default(c->registration_timeout_ms, c->command_timeout_ms);
    p->heartbeat_interval_ms = c->heartbeat_interval_ms;
    p->heartbeat_timeout_ms =
        or_default(c->heartbeat_timeout_ms, c->command_timeout_ms < c->heartbeat_interval_ms
                                                ? c->command_timeout_ms
                                                : c->heartbeat_interval_ms);
    p->reconnection = c->reconnection;
    p->reconnection_attempts = c->reconnection_attempts;
    p->reconnection_delay_ms = c->reconnection_delay_ms;
    p->reconnection_delay_max_ms = c->reconnection_delay_max_ms;
    p->randomization_factor = c->randomization_factor;
    p->announce_delay_ms = c->announce_delay_ms;
    p->max_pending = c->max_pending;
    p->max_message = c->max_frame;
    p->max_upstream_queue = c->max_upstream_queue_bytes;
}

struct broker *broker_new(uv_loop_t *loop, struct broker_config *cfg)
{
    struct broker *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->loop = loop;
    b->cfg = cfg;
    b->lock_fd = -1;
    b->started_ms = uv_now(loop);
    proto_buf_init(&b->scratch);
    struct router_params rp;
    struct quota_limits ql;
    router_params_from(cfg, &rp);
    quota_limits_from(cfg, &ql);
    if (quota_new(&b->quota, &ql) < 0) {
        free(b);
        return NULL;
    }
    b->peers.quota = b->quota;
    b->router = router_new(loop, &rp, b->quota);
    if (!b->router) {
        quota_free(b->quota);
        free(b);
        return NULL;
    }
    if (cfg->control_socket_url) {
        struct session_params sp;
        session_params_from(cfg, &sp);
        struct session_events ev = {
            .ud = b,
            .state_changed = on_session_state,
            .error = on_session_error,
            .inbound_request = on_session_inbound,
            .inbound_message = on_session_message,
            .handler_list = on_session_handler_list,
            .handler_trim = on_session_handler_trim,
            .local_counts = on_session_local_counts,
            .tap = on_session_tap,
            .handlers_back = on_session_handlers_back,
        };
        b->session = session_new(loop, &sp, &ev);
        if (!b->session) {
            router_free(b->router);
            free(b);
            return NULL;
        }
        router_set_session(b->router, b->session);
    }
    return b;
}

int broker_start(struct broker *b)
{
    char why[256] = "";
    int fd, rc;

    fd = listener_from_systemd();
    if (fd >= 0) {
        b->socket_activated = true;
        log_info("using the socket passed by systemd (fd %d)", fd);
    } else {
        struct listener_options lo = {
            .path = b->cfg->listen_path,
            .mode = b->cfg->listen_mode,
            .group = b->cfg->listen_group,
        };
        fd = listener_create(&lo, &b->lock_fd, why, sizeof(why));
        if (fd < 0) {
            log_error("cannot listen: %s", why);
            return fd;
        }
    }
    rc = uv_pipe_init(b->loop, &b->server, 0);
    if (rc == 0) {
        b->server_open = true;
        b->server.data = b;
        rc = uv_pipe_open(&b->server, fd);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&b->server, SOMAXCONN, on_connection);
    if (rc < 0) {
        log_error("cannot listen on %s: %s", b->cfg->listen_path, uv_strerror(rc));
        return rc;
    }
    /* A passed socket's path and mode are systemd's (the .socket unit). */
    if (b->socket_activated)
        log_info("listening on the socket passed by systemd");
    else
        log_info("listening on %s (mode %04o%s%s)", b->cfg->listen_path, b->cfg->listen_mode,
                 b->cfg->listen_group ? ", group " : "",
                 b->cfg->listen_group ? b->cfg->listen_group : "");
    metrics_textfile_start(b);
    if (!b->session) {
        log_warn("no controlSocketUrl configured: serving local clients without an upstream");
        return 0;
    }
    handlers_file_start(b);
    rc = session_start(b->session);
    if (rc < 0)
        log_error("cannot start the upstream session: %s", strerror(-rc));
    return rc;
}

static void close_server(struct broker *b)
{
    if (!b->server_open)
        return;
    b->server_open = false;
    uv_close((uv_handle_t *)&b->server, NULL);
    if (!b->socket_activated)
        listener_remove(b->cfg->listen_path, b->lock_fd);
    b->lock_fd = -1;
}

static void on_session_stopped(void *ud)
{
    (void)ud;
    log_info("upstream session closed");
}

/* Order matters: calls are answered upstream while the session can still
 * send; session_stop fails pending requests synchronously (so the router
 * releases their records; the clients, closed in the same turn, see the
 * broker go away instead, which their library reports as BrokerGone);
 * then the peers go; the router goes last because the peers' close
 * callbacks report to it. */
static void finish_shutdown(struct broker *b)
{
    size_t open = router_open_calls(b->router);

    if (open) {
        log_warn("drain timeout: answering %zu unfinished inbound requests with HandlerError",
                 open);
        router_fail_open_calls(b->router, "HandlerError", "the broker is stopping");
    }
    if (b->drain_timer_open) {
        b->drain_timer_open = false;
        uv_close((uv_handle_t *)&b->drain_timer, NULL);
    }
    if (b->metrics_timer_open) {
        b->metrics_timer_open = false;
        uv_close((uv_handle_t *)&b->metrics_timer, NULL);
    }
    if (b->session)
        session_stop(b->session, on_session_stopped, b);
    for (struct peer *p = peer_list_first(&b->peers); p; p = peer_list_next(p))
        peer_close(p, "broker is stopping");
    router_free(b->router);
    b->router = NULL;
}

/* Polls rather than hooking every reply: a drain happens once per process
 * life, and a 50 ms tick keeps the router free of shutdown special cases. */
static void on_drain_tick(uv_timer_t *t)
{
    struct broker *b = t->data;

    if (router_open_calls(b->router) == 0 || uv_now(b->loop) >= b->drain_deadline)
        finish_shutdown(b);
}

void broker_shutdown(struct broker *b, const char *why)
{
    if (b->shutting_down)
        return;
    b->shutting_down = true;
    log_info("stopping: %s", why);
    handlers_file_stop(b);
    close_server(b);
    if (router_open_calls(b->router) == 0 || b->cfg->drain_timeout_ms == 0) {
        finish_shutdown(b);
        return;
    }
    log_info("waiting up to %u ms for %zu inbound requests to finish", b->cfg->drain_timeout_ms,
             router_open_calls(b->router));
    b->drain_deadline = uv_now(b->loop) + b->cfg->drain_timeout_ms;
    uv_timer_init(b->loop, &b->drain_timer);
    b->drain_timer.data = b;
    b->drain_timer_open = true;
    uv_timer_start(&b->drain_timer, on_drain_tick, 50, 50);
}

void broker_reload(struct broker *b, const struct broker_config *fresh)
{
    enum log_level lv;
    char applied[2048], restart[1024];
    struct router_params rp;

    config_reload(b->cfg, fresh, applied, sizeof(applied), restart, sizeof(restart));
    enum log_format lf;
    if (b->cfg->log_level && log_level_parse(b->cfg->log_level, &lv) == 0)
        log_set_level(lv);
    if (b->cfg->log_format && log_format_parse(b->cfg->log_format, &lf) == 0)
        log_set_format(lf);
    struct quota_limits ql;
    router_params_from(b->cfg, &rp);
    router_set_params(b->router, &rp);
    quota_limits_from(b->cfg, &ql);
    quota_set_limits(b->quota, &ql);
    if (b->metrics_timer_open && !b->cfg->metrics_textfile) {
        b->metrics_timer_open = false;
        uv_close((uv_handle_t *)&b->metrics_timer, NULL);
    } else if (b->metrics_timer_open) {
        uv_timer_start(&b->metrics_timer, on_metrics_tick, 0, b->cfg->metrics_interval_ms);
    } else if (!b->shutting_down) {
        metrics_textfile_start(b);
    }
    log_info("reloaded: %s", applied);
    if (restart[0])
        log_warn("changed but only applied at the next start: %s", restart);
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    if (b->session)
        session_free(b->session);
    if (b->router)
        router_free(b->router);
    proto_buf_free(&b->scratch);
    proto_buf_free(&b->tap_scratch);
    handlerfile_free(&b->expected);
    quota_free(b->quota);
    if (b->textfile) {
        proto_buf_free(&b->textfile->text);
        free(b->textfile);
    }
    free(b);
}
