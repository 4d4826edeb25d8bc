/* The short verbs: request, emit, subscribe, clients, handlers.
 *
 * Each does one thing and prints just the answer, the way redis-cli and
 * varlinkctl do: the data of a result (not the frame around it), one JSON
 * line per message, a table of clients. Failures go to stderr with the
 * broker's code and message, and the exit status says what happened
 * (util.h). --raw shows the frames instead, for when the envelope matters.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "names.h"
#include "proto/errors.h"
#include "proto/json.h"
#include "proto/limits.h"
#include "status_print.h"
#include "util.h"
#include "value.h"

/* Time the tool waits beyond a request's own timeout: the broker answers
 * COMMAND_TIMEOUT at the request's timeout, so this is only for a broker
 * that says nothing at all. */
#define ANSWER_SLACK_MS 2000

struct welcome_info {
    uint64_t timeout_ms; /* the broker's commandTimeout (0: not said) */
};

static void on_welcome(void *ctx, const struct proto_span *body, const struct proto_msg *m)
{
    struct welcome_info *w = ctx;

    (void)body;
    if (proto_msg_has(m, PROTO_F_TIMEOUT_MS))
        w->timeout_ms = m->timeout_ms;
}

/* A payload argument into buf; INSPECT_EXIT_OK or USAGE (said why). */
static int load_payload(const char *arg, struct proto_buf *buf, struct proto_span *span)
{
    char err[300];

    if (value_from_arg(arg, buf, err, sizeof(err)) < 0) {
        inspect_error("%s", err);
        return INSPECT_EXIT_USAGE;
    }
    *span = (struct proto_span){buf->data, (uint32_t)buf->len};
    return INSPECT_EXIT_OK;
}

static bool span_is(struct proto_span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

/* ---- request ---- */

int cmd_request(const struct inspect_opts *o)
{
    struct proto_buf payload = PROTO_BUF_INIT;
    struct proto_msg m = {.op = PROTO_OP_REQUEST}, a;
    struct welcome_info w = {0};
    struct proto_span answer;
    struct conn *c = NULL;
    uint64_t start = inspect_mono_ms(), deadline, wait_ms;
    bool pretty = cmd_pretty_stdout(o);
    char what[300];
    int rc;

    m.command = proto_span_str(o->args[0], (uint32_t)strlen(o->args[0]));
    m.fields |= PROTO_F_COMMAND;
    if (o->n_args > 1) {
        if ((rc = load_payload(o->args[1], &payload, &m.payload)) != 0)
            goto out;
        m.fields |= PROTO_F_PAYLOAD;
    }
    /* The connection gets the whole --timeout (or the default) too. */
    rc = cmd_connect(o, start + (uint64_t)o->timeout_ms, &c, on_welcome, &w);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (o->timeout_set) {
        m.timeout_ms = (uint64_t)o->timeout_ms;
        m.fields |= PROTO_F_TIMEOUT_MS;
        wait_ms = (uint64_t)o->timeout_ms;
    } else {
        wait_ms = w.timeout_ms ? w.timeout_ms : INSPECT_DEFAULT_TIMEOUT_MS;
    }
    deadline = inspect_mono_ms() + wait_ms + ANSWER_SLACK_MS;
    snprintf(what, sizeof(what), "request %.200s", o->args[0]);
    rc = cmd_roundtrip(c, &m, 1, deadline, what, NULL, NULL, &answer, &a);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (o->raw)
        value_print(stdout, answer.ptr, answer.len, pretty);
    if (a.op == PROTO_OP_RESULT && a.ok) {
        if (!o->raw && proto_msg_has(&a, PROTO_F_DATA))
            value_print(stdout, a.data.ptr, a.data.len, pretty);
        rc = INSPECT_EXIT_OK;
    } else {
        cmd_report_failure(what, &a);
        rc = span_is(a.code, "COMMAND_TIMEOUT") ? INSPECT_EXIT_TIMEOUT : INSPECT_EXIT_FAILED;
    }
out:
    conn_free(c);
    proto_buf_free(&payload);
    return rc;
}

/* ---- emit ---- */

int cmd_emit(const struct inspect_opts *o)
{
    struct proto_buf data = PROTO_BUF_INIT;
    struct proto_msg m = {.op = PROTO_OP_EMIT}, a;
    struct proto_span answer;
    struct conn *c = NULL;
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    char what[300];
    int rc;

    m.type = proto_span_str(o->args[0], (uint32_t)strlen(o->args[0]));
    m.fields |= PROTO_F_TYPE;
    if (o->n_args > 1) {
        if ((rc = load_payload(o->args[1], &data, &m.data)) != 0)
            goto out;
        m.fields |= PROTO_F_DATA;
    }
    rc = cmd_connect(o, deadline, &c, NULL, NULL);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    snprintf(what, sizeof(what), "emit %.200s", o->args[0]);
    /* With an id the broker says whether it was written upstream. */
    rc = cmd_roundtrip(c, &m, 1, deadline, what, NULL, NULL, &answer, &a);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (a.op != PROTO_OP_RESULT || !a.ok) {
        cmd_report_failure(what, &a);
        rc = INSPECT_EXIT_FAILED;
    }
out:
    conn_free(c);
    proto_buf_free(&data);
    return rc;
}

/* ---- subscribe ---- */

struct sub_state {
    const struct inspect_opts *o;
    long long printed;
    struct proto_buf text;
};

/* One message as {"type":...,"data":...} (or the frame with --raw). */
static void print_message(struct sub_state *s, const struct proto_span *body,
                          const struct proto_msg *m)
{
    char err[160];

    proto_buf_reset(&s->text);
    if (s->o->raw) {
        if (value_to_json(body->ptr, body->len, &s->text, err, sizeof(err)) < 0)
            goto bad;
    } else {
        if (proto_buf_append(&s->text, "{\"type\":", 8) < 0 ||
            proto_json_put_string(&s->text, (const char *)m->type.ptr, m->type.len) < 0 ||
            proto_buf_append(&s->text, ",\"data\":", 8) < 0)
            goto bad_utf8;
        if (!proto_msg_has(m, PROTO_F_DATA))
            proto_buf_append(&s->text, "null", 4);
        else if (value_to_json(m->data.ptr, m->data.len, &s->text, err, sizeof(err)) < 0)
            goto bad;
        proto_buf_append_byte(&s->text, '}');
    }
    fwrite(s->text.data, 1, s->text.len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    s->printed++;
    return;
bad_utf8:
    snprintf(err, sizeof(err), "a type that is not UTF-8");
bad:
    inspect_error("a message that has no JSON form (%s); skipped", err);
}

static void sub_other(void *ctx, const struct proto_span *body)
{
    struct sub_state *s = ctx;
    struct proto_msg m = {0};
    const char *why;

    if (proto_msg_decode(body, &m, &why) == 0 && m.op == PROTO_OP_MESSAGE &&
        (s->o->count < 0 || s->printed < s->o->count))
        print_message(s, body, &m);
}

int cmd_subscribe(const struct inspect_opts *o)
{
    struct sub_state s = {.o = o};
    struct proto_span answer;
    struct proto_msg a;
    struct conn *c = NULL;
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    size_t n = o->n_subs ? o->n_subs : 1;
    int rc;

    rc = cmd_connect(o, deadline, &c, NULL, NULL);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct proto_msg m = {.op = PROTO_OP_SUBSCRIBE, .fields = PROTO_F_MATCH};
        char what[300];
        if (o->n_subs == 0) {
            m.match = proto_span_str("all", 3);
            snprintf(what, sizeof(what), "subscribe");
        } else {
            const char *kind = o->subs[i].prefix ? "prefix" : "exact";
            m.match = proto_span_str(kind, (uint32_t)strlen(kind));
            m.type = proto_span_str(o->subs[i].text, (uint32_t)strlen(o->subs[i].text));
            m.fields |= PROTO_F_TYPE;
            snprintf(what, sizeof(what), "subscribe --%s %.200s",
                     o->subs[i].prefix ? "prefix" : "type", o->subs[i].text);
        }
        /* Messages may already come while later filters are being set. */
        rc = cmd_roundtrip(c, &m, i + 1, deadline, what, sub_other, &s, &answer, &a);
        if (rc != INSPECT_EXIT_OK)
            goto out;
        if (a.op != PROTO_OP_RESULT || !a.ok) {
            cmd_report_failure(what, &a);
            rc = INSPECT_EXIT_FAILED;
            goto out;
        }
    }
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "# subscribed; Ctrl-C to stop\n");
    while (o->count < 0 || s.printed < o->count) {
        rc = conn_wait_frame(c, 0, &answer);
        if (rc == PROTO_E_BAD_FRAME)
            continue;
        if (rc < 0) {
            inspect_error("subscription ended: %s",
                          rc == PROTO_E_BROKER_GONE ? conn_gone_reason(c) : conn_reader_error(c));
            rc = INSPECT_EXIT_CONNECT;
            goto out;
        }
        sub_other(&s, &answer);
    }
    rc = INSPECT_EXIT_OK;
out:
    conn_free(c);
    proto_buf_free(&s.text);
    return rc;
}

/* ---- metrics ---- */

int cmd_metrics(const struct inspect_opts *o)
{
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    struct proto_msg m = {.op = PROTO_OP_METRICS}, a;
    struct proto_span answer;
    struct proto_mp_cursor cur;
    struct proto_mp_value v;
    struct conn *c = NULL;
    int rc = cmd_connect(o, deadline, &c, NULL, NULL);

    if (rc != INSPECT_EXIT_OK)
        return rc;
    rc = cmd_roundtrip(c, &m, 1, deadline, "metrics", NULL, NULL, &answer, &a);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (a.op != PROTO_OP_RESULT || !a.ok) {
        cmd_report_failure("metrics", &a);
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    proto_mp_cursor_init(&cur, a.data.ptr, a.data.len);
    if (!proto_msg_has(&a, PROTO_F_DATA) || proto_mp_next(&cur, &v) < 0 || v.type != PROTO_MP_STR) {
        inspect_error("metrics: the answer is not the OpenMetrics text");
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    if (o->json)
        value_print(stdout, a.data.ptr, a.data.len, false);
    else
        fwrite(v.v.str.ptr, 1, v.v.str.len, stdout);
    rc = INSPECT_EXIT_OK;
out:
    fflush(stdout);
    conn_free(c);
    return rc;
}

/* ---- clients and handlers: both read the status map ---- */

/* Fetches the status map; INSPECT_EXIT_OK with *data pointing into
 * the connection's buffer (valid until c is used again). */
static int fetch_status(const struct inspect_opts *o, struct conn **c, struct proto_span *data)
{
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    struct proto_msg m = {.op = PROTO_OP_STATUS}, a;
    struct proto_span answer;
    int rc = cmd_connect(o, deadline, c, NULL, NULL);

    if (rc != INSPECT_EXIT_OK)
        return rc;
    rc = cmd_roundtrip(*c, &m, 1, deadline, "status", NULL, NULL, &answer, &a);
    if (rc != INSPECT_EXIT_OK)
        return rc;
    if (a.op != PROTO_OP_RESULT || !a.ok || !proto_msg_has(&a, PROTO_F_DATA)) {
        cmd_report_failure("status", &a);
        return INSPECT_EXIT_FAILED;
    }
    *data = a.data;
    return INSPECT_EXIT_OK;
}

struct strlist_ctx {
    FILE *f;
    int n;
};

static void put_word(void *ctx, struct proto_span s)
{
    struct strlist_ctx *l = ctx;

    fprintf(l->f, "%s%.*s", l->n++ ? "," : "", (int)s.len, (const char *)s.ptr);
}

/* The strings of a msgpack array joined by commas ("-" for none). */
static void put_list(FILE *f, struct proto_span array)
{
    struct strlist_ctx l = {f, 0};

    names_each_str(array, put_word, &l);
    if (l.n == 0)
        fputc('-', f);
}

static void put_num(FILE *f, int width, long long v)
{
    if (v < 0)
        fprintf(f, "%-*s", width, "-");
    else
        fprintf(f, "%-*lld", width, v);
}

struct table_ctx {
    const struct inspect_opts *o;
    struct proto_buf text;
    int n;
};

static void client_row(void *ctx, const struct names_client *cl)
{
    struct table_ctx *t = ctx;
    char bytes[16], err[160];

    t->n++;
    if (t->o->json) {
        proto_buf_reset(&t->text);
        if (value_to_json(cl->raw.ptr, cl->raw.len, &t->text, err, sizeof(err)) == 0)
            printf("%.*s\n", (int)t->text.len, (const char *)t->text.data);
        return;
    }
    printf("c%-5llu ", (unsigned long long)cl->id);
    put_num(stdout, 8, cl->pid);
    put_num(stdout, 7, cl->uid);
    printf("%-20s ", cl->name[0] ? cl->name : "-");
    put_num(stdout, 10, cl->in_flight);
    printf("%-7s ", cl->queue_bytes < 0 ? "-"
                                        : status_format_bytes((unsigned long long)cl->queue_bytes,
                                                              bytes, sizeof(bytes)));
    put_list(stdout, cl->handlers);
    fputc(' ', stdout);
    put_list(stdout, cl->subscriptions);
    fputc('\n', stdout);
}

int cmd_clients(const struct inspect_opts *o)
{
    struct table_ctx t = {.o = o};
    struct proto_span data;
    struct conn *c = NULL;
    int rc = fetch_status(o, &c, &data);

    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (!o->json)
        printf("%-6s %-8s%-7s%-20s %-10s%-7s %s %s\n", "ID", "PID", "UID", "NAME", "IN-FLIGHT",
               "QUEUE", "HANDLERS", "SUBSCRIPTIONS");
    if (names_each_client(data.ptr, data.len, client_row, &t) < 0) {
        inspect_error("clients: the status has no client list this tool can read");
        rc = INSPECT_EXIT_FAILED;
    }
out:
    fflush(stdout);
    conn_free(c);
    proto_buf_free(&t.text);
    return rc;
}

/* handlers: command -> the clients serving it, in the broker's order. */
struct served_by {
    char *command;
    struct names_client *clients; /* copies without the spans */
    size_t n;
};

struct handlers_ctx {
    struct served_by *v;
    size_t n;
    const struct names_client *current;
    bool nomem;
};

static void add_handler(void *ctx, struct proto_span cmd)
{
    struct handlers_ctx *h = ctx;
    struct served_by *s = NULL;
    struct names_client *cl;

    for (size_t i = 0; i < h->n && !s; i++)
        if (strlen(h->v[i].command) == cmd.len && memcmp(h->v[i].command, cmd.ptr, cmd.len) == 0)
            s = &h->v[i];
    if (!s) {
        struct served_by *v = realloc(h->v, (h->n + 1) * sizeof(*v));
        if (!v)
            goto nomem;
        h->v = v;
        s = &h->v[h->n];
        *s = (struct served_by){.command = strndup((const char *)cmd.ptr, cmd.len)};
        if (!s->command)
            goto nomem;
        h->n++;
    }
    cl = realloc(s->clients, (s->n + 1) * sizeof(*cl));
    if (!cl)
        goto nomem;
    s->clients = cl;
    s->clients[s->n] = *h->current;
    s->clients[s->n].handlers = s->clients[s->n].subscriptions = s->clients[s->n].raw =
        (struct proto_span){NULL, 0};
    s->n++;
    return;
nomem:
    h->nomem = true;
}

static void collect_handlers(void *ctx, const struct names_client *cl)
{
    struct handlers_ctx *h = ctx;

    h->current = cl;
    names_each_str(cl->handlers, add_handler, h);
}

static void print_served(const struct inspect_opts *o, const struct served_by *s)
{
    if (o->json) {
        struct proto_buf t = PROTO_BUF_INIT;
        proto_buf_append(&t, "{\"command\":", 11);
        proto_json_put_string(&t, s->command, strlen(s->command));
        printf("%.*s,\"group\":%s,\"clients\":[", (int)t.len, (const char *)t.data,
               s->n > 1 ? "true" : "false");
        for (size_t i = 0; i < s->n; i++) {
            proto_buf_reset(&t);
            proto_json_put_string(&t, s->clients[i].name, strlen(s->clients[i].name));
            printf("%s{\"id\":%llu,\"name\":%.*s,\"pid\":%lld,\"uid\":%lld}", i ? "," : "",
                   (unsigned long long)s->clients[i].id, (int)t.len, (const char *)t.data,
                   s->clients[i].pid, s->clients[i].uid);
        }
        printf("]}\n");
        proto_buf_free(&t);
        return;
    }
    printf("%-24s ", s->command);
    if (s->n > 1)
        printf("queue group of %zu: ", s->n);
    for (size_t i = 0; i < s->n; i++) {
        const struct names_client *cl = &s->clients[i];
        printf("%sc%llu %s", i ? ", " : "", (unsigned long long)cl->id,
               cl->name[0] ? cl->name : "-");
        if (cl->pid >= 0)
            printf("[%lld]", cl->pid);
    }
    putchar('\n');
}

int cmd_handlers(const struct inspect_opts *o)
{
    struct handlers_ctx h = {0};
    struct proto_span data;
    struct conn *c = NULL;
    int rc = fetch_status(o, &c, &data);

    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (names_each_client(data.ptr, data.len, collect_handlers, &h) < 0 || h.nomem) {
        inspect_error("handlers: %s", h.nomem ? "out of memory"
                                              : "the status has no client list this tool can read");
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    if (!o->json)
        printf("%-24s %s\n", "COMMAND", "SERVED BY");
    for (size_t i = 0; i < h.n; i++)
        print_served(o, &h.v[i]);
out:
    fflush(stdout);
    for (size_t i = 0; i < h.n; i++) {
        free(h.v[i].command);
        free(h.v[i].clients);
    }
    free(h.v);
    conn_free(c);
    return rc;
}
