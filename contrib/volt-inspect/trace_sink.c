#include "trace_sink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "proto/buf.h"
#include "proto/limits.h"
#include "proto/msg.h"
#include "trace_filter.h"
#include "util.h"

/* A daemonPassword asked for: its answer is not shown (peer, request id). */
struct asked_secret {
    uint64_t peer, id;
};

struct trace_sink {
    struct trace_sink_opts o;
    struct asked_secret *secrets;
    size_t n_secrets, cap_secrets;
    struct proto_buf redacted; /* the frame shown in place of a secret's answer */
    struct trace_filter *filter;
    FILE *capture;
    struct proto_buf line;
    long long shown;
    uint64_t end_ms;   /* wall: inspect_mono_ms() at which --duration ends */
    uint64_t first_us; /* replay: time of the first record shown */
    bool done, failed;
};

int trace_sink_new(const struct trace_sink_opts *o, struct trace_sink **out, char *err, size_t size)
{
    struct trace_sink *s = calloc(1, sizeof(*s));

    if (!s || !(s->filter = trace_filter_new())) {
        free(s);
        snprintf(err, size, "out of memory");
        return -1;
    }
    s->o = *o;
    if (!s->o.out)
        s->o.out = stdout;
    proto_buf_init(&s->line);
    for (size_t i = 0; i < o->n_matches; i++) {
        if (trace_filter_add(s->filter, o->matches[i], err, size) < 0)
            goto fail;
    }
    if (o->write) {
        s->capture = fopen(o->write, "wb"); /* as tcpdump -w: an old file is replaced */
        if (!s->capture || capture_write_header(s->capture) < 0) {
            snprintf(err, size, "cannot write the capture %s: %s", o->write, strerror(errno));
            goto fail;
        }
    }
    if (o->duration_ms >= 0 && !o->replay)
        s->end_ms = inspect_mono_ms() + (uint64_t)o->duration_ms;
    if (o->count == 0)
        s->done = true;
    *out = s;
    return 0;
fail:
    trace_sink_free(s);
    return -1;
}

void trace_sink_free(struct trace_sink *s)
{
    if (!s)
        return;
    if (s->capture)
        fclose(s->capture);
    trace_filter_free(s->filter);
    proto_buf_free(&s->line);
    proto_buf_free(&s->redacted);
    free(s->secrets);
    free(s);
}

bool trace_sink_done(struct trace_sink *s)
{
    if (!s->done && s->end_ms && inspect_mono_ms() >= s->end_ms)
        s->done = true;
    return s->done;
}

int trace_sink_timeout_ms(const struct trace_sink *s)
{
    uint64_t now = inspect_mono_ms();

    if (!s->end_ms)
        return -1;
    return now >= s->end_ms ? 0 : (int)(s->end_ms - now);
}

bool trace_sink_failed(const struct trace_sink *s)
{
    return s->failed;
}

long long trace_sink_shown(const struct trace_sink *s)
{
    return s->shown;
}

static bool span_is(struct proto_span sp, const char *text)
{
    return sp.len == strlen(text) && memcmp(sp.ptr, text, sp.len) == 0;
}

/* The broker hands the daemon password to whoever may ask for it, and
 * traces the answer like any frame; a trace is something people paste into
 * bug reports, so the answer to a `credential` request for daemonPassword
 * is shown (and kept in captures) with its data as "(redacted)". Returns
 * ev itself, or a copy pointing at s->redacted. */
static const struct trace_ev *redact(struct trace_sink *s, const struct trace_ev *ev,
                                     struct trace_ev *copy)
{
    struct proto_span body = {ev->data, (uint32_t)ev->len};
    struct proto_msg m = {0};
    const char *why;

    if (ev->kind != TRACE_FRAME || ev->side != TRACE_LOCAL || !ev->data ||
        proto_msg_decode(&body, &m, &why) < 0 || !proto_msg_has(&m, PROTO_F_ID))
        return ev;
    if (ev->dir == TRACE_IN && m.op == PROTO_OP_CREDENTIAL && span_is(m.name, "daemonPassword")) {
        if (s->n_secrets == s->cap_secrets) {
            size_t cap = s->cap_secrets ? s->cap_secrets * 2 : 8;
            struct asked_secret *v = realloc(s->secrets, cap * sizeof(*v));
            if (!v)
                return ev;
            s->secrets = v;
            s->cap_secrets = cap;
        }
        s->secrets[s->n_secrets++] = (struct asked_secret){ev->peer, m.id};
        return ev;
    }
    if (ev->dir != TRACE_OUT || m.op != PROTO_OP_RESULT)
        return ev;
    for (size_t i = 0; i < s->n_secrets; i++) {
        if (s->secrets[i].peer != ev->peer || s->secrets[i].id != m.id)
            continue;
        s->secrets[i] = s->secrets[--s->n_secrets];
        if (!proto_msg_has(&m, PROTO_F_DATA))
            return ev;
        proto_buf_reset(&s->redacted);
        m.data = (struct proto_span){(const uint8_t *)"\xaa(redacted)", 11};
        if (proto_msg_encode(&s->redacted, &m, PROTO_HARD_MAX_FRAME) < 0) {
            /* Rather nothing than the secret. */
            *copy = *ev;
            copy->data = NULL;
            copy->len = 0;
            return copy;
        }
        *copy = *ev;
        copy->data = s->redacted.data + PROTO_LENGTH_PREFIX;
        copy->len = s->redacted.len - PROTO_LENGTH_PREFIX;
        return copy;
    }
    return ev;
}

bool trace_sink_emit(struct trace_sink *s, const struct trace_ev *in)
{
    struct trace_ev copy;
    const struct trace_ev *ev;

    if (trace_sink_done(s))
        return true;
    ev = redact(s, in, &copy);
    if (!trace_filter_match(s->filter, ev))
        return false;
    if (s->o.replay && s->o.duration_ms >= 0) {
        if (s->shown == 0)
            s->first_us = ev->time_us;
        else if (ev->time_us >= s->first_us &&
                 ev->time_us - s->first_us > (uint64_t)s->o.duration_ms * 1000u)
            return s->done = true;
    }
    proto_buf_reset(&s->line);
    if (trace_format(ev, s->o.json, &s->line) == 0) {
        fwrite(s->line.data, 1, s->line.len, s->o.out);
        fflush(s->o.out);
    }
    if (s->capture) {
        int rc = capture_write(s->capture, ev);
        if (rc < 0) {
            inspect_error("cannot write the capture %s: %s; stopping", s->o.write, strerror(-rc));
            s->failed = s->done = true;
        }
    }
    s->shown++;
    if (s->o.count >= 0 && s->shown >= s->o.count)
        s->done = true;
    return s->done;
}
