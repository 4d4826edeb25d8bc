/* `volt-inspect monitor`: asks the broker to copy every frame it sends or
 * receives to this connection as `trace` frames, and prints them through
 * the trace sink (trace_sink.h) like the proxy and --read do.
 *
 * Naming clients: a trace frame carries only the client's id. Before the
 * monitor starts, one `status` on this same connection fills a cache of
 * id -> name/pid/uid (names.h) and tells which client is this monitor (its
 * own traffic is left out). When a frame of an id the cache does not know
 * arrives, another `status` is sent and the frames that come meanwhile
 * wait (in order) until its answer, or at most NAME_WAIT_MS; each id is
 * asked about once, so a client that came and went between two statuses
 * costs one round trip, not one per frame. A client's hello, seen in the
 * trace, names it before the status does.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "names.h"
#include "proto/errors.h"
#include "trace_line.h"
#include "trace_sink.h"
#include "util.h"

#define STATUS_ID    1
#define MONITOR_ID   2
#define NAME_WAIT_MS 2000

struct held {
    uint8_t *data;
    size_t len;
    uint64_t time_us; /* arrival, for frames that are not traces */
};

struct monitor {
    const struct inspect_opts *o;
    struct trace_sink *sink;
    struct names *names;
    struct conn *c;
    uint64_t self; /* this monitor's client id (0: not known) */
    bool have_self;
    uint64_t next_id;
    uint64_t asking; /* id of the status in flight, 0: none */
    uint64_t ask_deadline;
    struct held *held;
    size_t n_held, cap_held;
    bool done;
};

static void find_self(void *ctx, const struct names_client *cl)
{
    struct monitor *mon = ctx;

    if (cl->pid == (long long)getpid() && strcmp(cl->name, mon->o->name) == 0 &&
        (!mon->have_self || cl->id > mon->self)) {
        mon->self = cl->id;
        mon->have_self = true;
    }
}

static void name_event(struct monitor *mon, struct trace_ev *ev)
{
    const struct names_entry *e = names_get(mon->names, ev->peer);

    if (!e)
        return;
    ev->name = e->name;
    ev->pid = e->pid;
    ev->uid = e->uid;
}

/* Shows one frame received (not the answer to our own status). */
static void show(struct monitor *mon, const uint8_t *data, size_t len, uint64_t arrived_us)
{
    struct proto_span body = {data, (uint32_t)len};
    struct proto_msg m = {0};
    struct trace_ev ev;
    const char *why;

    if (proto_msg_decode(&body, &m, &why) < 0) {
        inspect_error("a frame the monitor cannot read: %s", why ? why : "?");
        return;
    }
    if (m.op == PROTO_OP_TRACE) {
        if (trace_from_msg(&m, &ev) < 0) {
            inspect_error("a trace frame with an unknown dir '%.*s'; skipped", (int)m.dir.len,
                          (const char *)m.dir.ptr);
            return;
        }
    } else {
        /* Sent to this monitor itself (events): shown as what they are. */
        ev = (struct trace_ev){.kind = TRACE_FRAME,
                               .side = TRACE_LOCAL,
                               .dir = TRACE_OUT,
                               .peer = mon->self,
                               .time_us = arrived_us,
                               .pid = -1,
                               .uid = -1,
                               .data = data,
                               .len = len};
    }
    if (ev.side == TRACE_LOCAL)
        name_event(mon, &ev);
    if (trace_sink_emit(mon->sink, &ev))
        mon->done = true;
}

static void flush_held(struct monitor *mon)
{
    for (size_t i = 0; i < mon->n_held; i++) {
        if (!mon->done)
            show(mon, mon->held[i].data, mon->held[i].len, mon->held[i].time_us);
        free(mon->held[i].data);
    }
    mon->n_held = 0;
    mon->asking = 0;
}

static int hold(struct monitor *mon, const struct proto_span *body, uint64_t arrived_us)
{
    struct held h = {malloc(body->len ? body->len : 1), body->len, arrived_us};

    if (!h.data)
        return -1;
    memcpy(h.data, body->ptr, body->len);
    if (mon->n_held == mon->cap_held) {
        size_t cap = mon->cap_held ? mon->cap_held * 2 : 64;
        struct held *v = realloc(mon->held, cap * sizeof(*v));
        if (!v) {
            free(h.data);
            return -1;
        }
        mon->held = v;
        mon->cap_held = cap;
    }
    mon->held[mon->n_held++] = h;
    return 0;
}

/* Sends a status to learn about a new client. */
static void ask_names(struct monitor *mon)
{
    struct proto_msg m = {.op = PROTO_OP_STATUS, .fields = PROTO_F_ID, .id = ++mon->next_id};

    if (conn_send_msg(mon->c, &m) < 0)
        return; /* the read side will see the end */
    mon->asking = m.id;
    mon->ask_deadline = inspect_mono_ms() + NAME_WAIT_MS;
}

/* One frame from the broker. */
static void on_frame(struct monitor *mon, const struct proto_span *body)
{
    struct proto_msg m = {0};
    const char *why;
    uint64_t now = inspect_now_us();

    if (proto_msg_decode(body, &m, &why) == 0) {
        if (m.op == PROTO_OP_RESULT && proto_msg_has(&m, PROTO_F_ID) && m.id > MONITOR_ID) {
            /* The answer to one of our name lookups. */
            if (m.ok && proto_msg_has(&m, PROTO_F_DATA))
                names_update(mon->names, m.data.ptr, m.data.len);
            if (m.id == mon->asking)
                flush_held(mon);
            return;
        }
        if (m.op == PROTO_OP_TRACE && mon->have_self && m.peer == mon->self &&
            (m.dir.len == 8 && memcmp(m.dir.ptr, "local-in", 8) == 0))
            return; /* our own status requests */
        if (m.op == PROTO_OP_TRACE && m.peer != 0 && m.dir.len >= 5 &&
            memcmp(m.dir.ptr, "local", 5) == 0) {
            const struct names_entry *e = names_get(mon->names, m.peer);
            struct proto_msg inner = {0};
            struct proto_span f = m.frame;
            const char *w2;
            if (proto_msg_decode(&f, &inner, &w2) == 0 && inner.op == PROTO_OP_HELLO &&
                proto_msg_has(&inner, PROTO_F_NAME))
                names_learn(mon->names, m.peer, (const char *)inner.name.ptr, inner.name.len);
            e = names_get(mon->names, m.peer);
            if ((!e || e->pid < 0) && !names_asked(mon->names, m.peer)) {
                names_mark_asked(mon->names, m.peer);
                if (!mon->asking)
                    ask_names(mon);
            }
        }
    }
    if (mon->asking) {
        if (hold(mon, body, now) < 0) {
            flush_held(mon);
            show(mon, body->ptr, body->len, now);
        }
        return;
    }
    show(mon, body->ptr, body->len, now);
}

static void before_monitor(void *ctx, const struct proto_span *frame)
{
    on_frame(ctx, frame);
}

static int follow(struct monitor *mon)
{
    struct proto_span body;

    while (!mon->done && !trace_sink_done(mon->sink)) {
        uint64_t deadline = 0;
        int left = trace_sink_timeout_ms(mon->sink);
        int rc;
        if (left >= 0)
            deadline = inspect_mono_ms() + (uint64_t)left;
        if (mon->asking && (!deadline || mon->ask_deadline < deadline))
            deadline = mon->ask_deadline;
        rc = conn_wait_frame(mon->c, deadline, &body);
        if (rc == PROTO_E_TIMEOUT) {
            if (mon->asking && inspect_mono_ms() >= mon->ask_deadline)
                flush_held(mon); /* shown without names, rather than late */
            continue;
        }
        if (rc == PROTO_E_BAD_FRAME) {
            inspect_error("the broker sent a bad frame (%s); skipped", conn_reader_error(mon->c));
            continue;
        }
        if (rc < 0) {
            flush_held(mon);
            inspect_error("monitor ended: %s", rc == PROTO_E_BROKER_GONE
                                                   ? conn_gone_reason(mon->c)
                                                   : conn_reader_error(mon->c));
            return INSPECT_EXIT_CONNECT;
        }
        on_frame(mon, &body);
    }
    flush_held(mon);
    return trace_sink_failed(mon->sink) ? INSPECT_EXIT_FAILED : INSPECT_EXIT_OK;
}

int cmd_monitor(const struct inspect_opts *o)
{
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    struct trace_sink_opts so = cmd_trace_sink_opts(o);
    struct monitor mon = {.o = o, .next_id = MONITOR_ID};
    struct proto_msg m = {.op = PROTO_OP_STATUS}, a;
    struct proto_span answer;
    char err[300];
    int rc;

    if (o->read)
        return cmd_replay(o);
    mon.names = names_new();
    if (!mon.names) {
        inspect_error("out of memory");
        return INSPECT_EXIT_CONNECT;
    }
    if (trace_sink_new(&so, &mon.sink, err, sizeof(err)) < 0) {
        inspect_error("%s", err);
        rc = INSPECT_EXIT_USAGE;
        goto out;
    }
    rc = cmd_connect(o, deadline, &mon.c, NULL, NULL);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    /* Names first (and who we are), then the trace. */
    rc = cmd_roundtrip(mon.c, &m, STATUS_ID, deadline, "status", NULL, NULL, &answer, &a);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (a.op == PROTO_OP_RESULT && a.ok && proto_msg_has(&a, PROTO_F_DATA)) {
        names_update(mon.names, a.data.ptr, a.data.len);
        names_each_client(a.data.ptr, a.data.len, find_self, &mon);
    }
    m = (struct proto_msg){.op = PROTO_OP_MONITOR};
    rc = cmd_roundtrip(mon.c, &m, MONITOR_ID, deadline, "monitor", before_monitor, &mon, &answer,
                       &a);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (a.op != PROTO_OP_RESULT || !a.ok) {
        cmd_report_failure("monitor", &a);
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "# monitoring; Ctrl-C to stop\n");
    rc = follow(&mon);
out:
    for (size_t i = 0; i < mon.n_held; i++)
        free(mon.held[i].data);
    free(mon.held);
    conn_free(mon.c);
    names_free(mon.names);
    trace_sink_free(mon.sink);
    return rc;
}
