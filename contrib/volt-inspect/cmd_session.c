/* The default mode (`session`; `call` in older versions): JSON lines in,
 * JSON lines out; and --oneshot. On a terminal the shell of interactive.h
 * takes over instead.
 *
 * Scripted: after the welcome, every line read on stdin
 * becomes a frame and every frame received is printed on stdout as one
 * JSON line, as they come. When stdin ends the tool still waits for the
 * answers to what it sent (the ids it is owed), up to --wait ms, so
 * `printf '{"op":"ping"}\n' | volt-inspect` prints the pong and exits;
 * --follow keeps printing after that until the broker closes.
 *
 * --oneshot: all input is read and converted first (a bad line sends
 * nothing: exit 2), then sent, then the tool prints only the answers to
 * its own ids and exits with a status telling how they went.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "interactive.h"
#include "jsonline.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "util.h"

#define STDIN_CHUNK 65536u
/* Stop reading stdin while this much is queued for the broker. */
#define MAX_QUEUED_OUT (1u << 20)

/* The ids the broker still owes an answer for. Small: one entry per
 * request in flight. */
struct idset {
    uint64_t *ids;
    size_t n, cap;
};

static int idset_add(struct idset *s, uint64_t id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        uint64_t *v = realloc(s->ids, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->ids = v;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
    return 0;
}

static bool idset_remove(struct idset *s, uint64_t id)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->ids[i] == id) {
            s->ids[i] = s->ids[--s->n];
            return true;
        }
    }
    return false;
}

struct call {
    const struct inspect_opts *o;
    struct conn *c;
    struct jsonline *jl;
    struct proto_buf input;  /* stdin bytes not yet a whole line */
    struct proto_buf frames; /* frames converted, not yet handed to conn */
    struct proto_buf text;   /* output scratch */
    struct idset owed;
    unsigned long line_no;
    bool stdin_open;
    bool person;       /* stdin and stderr are terminals */
    bool want_welcome; /* a hello was typed (--no-hello) */
    bool done;         /* oneshot: an unattributable error ended it */
    int status;
};

/* Prints a frame body as one JSON line with an optional prefix. */
static void print_body(struct call *k, FILE *f, const char *prefix, const void *body, size_t len)
{
    char err[200];

    proto_buf_reset(&k->text);
    if (jsonline_from_frame(k->jl, body, len, &k->text, err, sizeof(err)) < 0) {
        inspect_error("received %zu bytes: %s", len, err);
        return;
    }
    fputs(prefix, f);
    fwrite(k->text.data, 1, k->text.len, f);
    fputc('\n', f);
    fflush(f);
}

static void on_welcome(void *ctx, const struct proto_span *body, const struct proto_msg *m)
{
    struct call *k = ctx;

    if (proto_msg_has(m, PROTO_F_MAX_FRAME) && m->max_frame <= PROTO_HARD_MAX_FRAME)
        jsonline_set_max_frame(k->jl, (uint32_t)m->max_frame);
    if (k->o->verbose) {
        /* Show the hello conn_hello sent, as it went out. */
        FILE *f = k->o->oneshot ? stderr : stdout;
        struct proto_buf hello_frame = PROTO_BUF_INIT;
        struct proto_msg hello;
        conn_hello_msg(k->o->name, &hello);
        if (proto_msg_encode(&hello_frame, &hello, PROTO_HARD_MAX_FRAME) == 0)
            print_body(k, f, "> ", hello_frame.data + PROTO_LENGTH_PREFIX,
                       hello_frame.len - PROTO_LENGTH_PREFIX);
        proto_buf_free(&hello_frame);
        print_body(k, f, "< ", body->ptr, body->len);
    } else if (!k->o->oneshot) {
        print_body(k, stdout, "", body->ptr, body->len);
    }
}

/* One converted frame (in k->frames at offset `at`): bookkeeping and echo. */
static int note_sent(struct call *k, size_t at, const struct jsonline_sent *sent)
{
    const uint8_t *body = k->frames.data + at + PROTO_LENGTH_PREFIX;
    size_t len = k->frames.len - at - PROTO_LENGTH_PREFIX;

    if (sent->expects_answer && idset_add(&k->owed, sent->id) < 0)
        return -ENOMEM;
    if (sent->op == PROTO_OP_HELLO)
        k->want_welcome = true;
    if (k->o->verbose)
        print_body(k, k->o->oneshot ? stderr : stdout, "> ", body, len);
    else if (k->person && sent->id_assigned)
        fprintf(stderr, "# sent with id %llu\n", (unsigned long long)sent->id);
    return 0;
}

/* Converts one input line; a bad one is reported and skipped. Returns 0,
 * INSPECT_EXIT_USAGE for a bad line, or -ENOMEM. */
static int take_line(struct call *k, const char *line, size_t len)
{
    struct jsonline_sent sent;
    size_t at = k->frames.len;
    char err[300];
    int rc;

    k->line_no++;
    rc = jsonline_to_frame(k->jl, line, len, &k->frames, &sent, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc == PROTO_E_NOMEM)
        return -ENOMEM;
    if (rc < 0) {
        if (k->person)
            inspect_error("%s; nothing sent", err);
        else
            inspect_error("line %lu: %s; nothing sent", k->line_no, err);
        return INSPECT_EXIT_USAGE;
    }
    return note_sent(k, at, &sent);
}

/* Splits k->input into lines; with `last`, a final line without newline
 * counts too. Returns the worst take_line result. */
static int take_lines(struct call *k, bool last)
{
    size_t start = 0;
    int worst = 0, rc;

    for (size_t i = 0; i < k->input.len; i++) {
        if (k->input.data[i] != '\n')
            continue;
        rc = take_line(k, (const char *)k->input.data + start, i - start);
        if (rc < 0)
            return rc;
        if (rc > worst)
            worst = rc;
        start = i + 1;
    }
    if (last && start < k->input.len) {
        rc = take_line(k, (const char *)k->input.data + start, k->input.len - start);
        if (rc < 0)
            return rc;
        if (rc > worst)
            worst = rc;
        start = k->input.len;
    }
    proto_buf_consume(&k->input, start);
    return worst;
}

/* Reads once from stdin into k->input. >0, 0 at end, -errno. */
static ssize_t read_stdin(struct call *k)
{
    ssize_t n;

    if (proto_buf_reserve(&k->input, STDIN_CHUNK) < 0)
        return -ENOMEM;
    do {
        n = read(STDIN_FILENO, k->input.data + k->input.len, STDIN_CHUNK);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    k->input.len += (size_t)n;
    return n;
}

/* Hands converted frames to the connection. 0, or an exit status. */
static int send_frames(struct call *k)
{
    int rc;

    if (k->frames.len == 0)
        return 0;
    rc = conn_send_raw(k->c, k->frames.data, k->frames.len);
    proto_buf_reset(&k->frames);
    if (rc < 0) {
        inspect_error("cannot send: %s", conn_gone_reason(k->c));
        return INSPECT_EXIT_CONNECT;
    }
    return 0;
}

static void oneshot_frame(struct call *k, const struct proto_span *body, const struct proto_msg *m,
                          bool answer)
{
    char what[48];

    if (m->op == PROTO_OP_ERROR && !proto_msg_has(m, PROTO_F_ID)) {
        /* About one of our frames, but which one cannot be told: the
         * answer it owes will never come. */
        print_body(k, stdout, "", body->ptr, body->len);
        cmd_report_failure("the broker refused a frame", m);
        k->status = INSPECT_EXIT_FAILED;
        k->done = true;
        return;
    }
    if (!answer) {
        if (k->o->verbose)
            print_body(k, stderr, "< ", body->ptr, body->len);
        return;
    }
    print_body(k, stdout, "", body->ptr, body->len);
    if (m->op == PROTO_OP_ERROR || (m->op == PROTO_OP_RESULT && !m->ok)) {
        snprintf(what, sizeof(what), "id %llu", (unsigned long long)m->id);
        cmd_report_failure(what, m);
        k->status = INSPECT_EXIT_FAILED;
    }
}

static void handle_frame(struct call *k, const struct proto_span *body)
{
    struct proto_msg m = {0};
    const char *why = NULL;
    bool decoded = proto_msg_decode(body, &m, &why) == 0;
    bool answer = false;

    if (decoded && proto_msg_has(&m, PROTO_F_ID) && cmd_answers_id(&m, m.id))
        answer = idset_remove(&k->owed, m.id);
    if (decoded && m.op == PROTO_OP_WELCOME && k->want_welcome) {
        k->want_welcome = false;
        answer = true;
        if (proto_msg_has(&m, PROTO_F_MAX_FRAME) && m.max_frame <= PROTO_HARD_MAX_FRAME)
            jsonline_set_max_frame(k->jl, (uint32_t)m.max_frame);
    }
    if (k->o->oneshot && decoded) {
        oneshot_frame(k, body, &m, answer);
        return;
    }
    if (k->o->oneshot)
        return;
    print_body(k, stdout, k->o->verbose ? "< " : "", body->ptr, body->len);
}

/* Handles every complete frame. 0, or an exit status. */
static int drain_frames(struct call *k)
{
    struct proto_span body;
    int rc;

    while ((rc = conn_next(k->c, &body)) != 0) {
        if (rc == PROTO_E_BAD_FRAME) {
            inspect_error("the broker sent a bad frame (%s); skipped", conn_reader_error(k->c));
            continue;
        }
        if (rc < 0) {
            inspect_error("cannot follow the broker's stream: %s", conn_reader_error(k->c));
            return INSPECT_EXIT_CONNECT;
        }
        handle_frame(k, &body);
    }
    return 0;
}

static bool finished(const struct call *k)
{
    if (k->done)
        return true;
    return !k->stdin_open && k->owed.n == 0 && !k->want_welcome && !k->o->follow &&
           conn_pending_out(k->c) == 0;
}

static void report_owed(const struct call *k, const char *why)
{
    fflush(stdout);
    fprintf(stderr, INSPECT_PROG ": %s; no answer for id", why);
    for (size_t i = 0; i < k->owed.n && i < 10; i++)
        fprintf(stderr, "%s%llu", i ? ", " : " ", (unsigned long long)k->owed.ids[i]);
    fprintf(stderr, "%s%s\n", k->owed.n > 10 ? ", ..." : "", k->want_welcome ? " (and hello)" : "");
}

static int poll_timeout(uint64_t deadline)
{
    uint64_t now = inspect_mono_ms();

    if (deadline == 0)
        return -1;
    return now >= deadline ? 0 : (int)(deadline - now);
}

/* The loop shared by both modes. Returns the exit status. */
static int run(struct call *k, uint64_t deadline)
{
    int rc;

    for (;;) {
        struct pollfd pfd[2] = {{.fd = -1}, {.fd = conn_fd(k->c), .events = POLLIN}};
        ssize_t n;

        if ((rc = drain_frames(k)) != 0)
            return rc;
        if (finished(k))
            return k->status;
        if (k->stdin_open && conn_pending_out(k->c) < MAX_QUEUED_OUT)
            pfd[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        if (conn_pending_out(k->c))
            pfd[1].events |= POLLOUT;
        rc = poll(pfd, 2, poll_timeout(deadline));
        if (rc < 0 && errno != EINTR) {
            inspect_error("poll: %s", strerror(errno));
            return INSPECT_EXIT_CONNECT;
        }
        if (rc == 0) {
            char why[96];
            if (k->o->oneshot)
                snprintf(why, sizeof(why), "timed out after %d ms (--timeout)", k->o->timeout_ms);
            else
                snprintf(why, sizeof(why), "gave up %d ms after the end of input (--wait)",
                         k->o->wait_ms);
            report_owed(k, why);
            return INSPECT_EXIT_TIMEOUT;
        }
        if (rc < 0)
            continue;
        if ((pfd[1].revents & POLLOUT) && conn_flush(k->c) < 0) {
            inspect_error("cannot send: %s", conn_gone_reason(k->c));
            return INSPECT_EXIT_CONNECT;
        }
        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            n = conn_read(k->c);
            if (n == 0 || (n < 0 && n != -EAGAIN)) {
                if ((rc = drain_frames(k)) != 0)
                    return rc;
                if (finished(k))
                    return k->status;
                report_owed(k, conn_gone_reason(k->c));
                return INSPECT_EXIT_CONNECT;
            }
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            n = read_stdin(k);
            if (n < 0 && n != -EAGAIN) {
                inspect_error("reading stdin: %s", strerror((int)-n));
                return INSPECT_EXIT_USAGE;
            }
            if (n == 0) {
                k->stdin_open = false;
                if (!k->o->follow)
                    deadline = inspect_mono_ms() + (uint64_t)k->o->wait_ms;
            }
            rc = take_lines(k, n == 0);
            if (rc < 0) {
                inspect_error("out of memory");
                return INSPECT_EXIT_CONNECT;
            }
            if (rc > k->status)
                k->status = rc; /* a bad line: reported, skipped, remembered */
            if ((rc = send_frames(k)) != 0)
                return rc;
        }
    }
}

/* --oneshot input: the -e arguments, else all of stdin. Converted before
 * connecting, so bad input sends nothing. 0 or an exit status. */
static int oneshot_input(struct call *k)
{
    int worst = 0, rc;
    ssize_t n;

    for (size_t i = 0; i < k->o->n_execute; i++) {
        rc = take_line(k, k->o->execute[i], strlen(k->o->execute[i]));
        if (rc < 0 || rc > worst)
            worst = rc < 0 ? INSPECT_EXIT_CONNECT : rc;
    }
    if (k->o->n_execute == 0) {
        while ((n = read_stdin(k)) > 0)
            ;
        if (n < 0) {
            inspect_error("reading stdin: %s", strerror((int)-n));
            return INSPECT_EXIT_USAGE;
        }
        rc = take_lines(k, true);
        if (rc < 0 || rc > worst)
            worst = rc < 0 ? INSPECT_EXIT_CONNECT : rc;
    }
    if (worst)
        return worst;
    if (k->frames.len == 0) {
        inspect_error("--oneshot: nothing to send (give -e JSON or JSON lines on stdin)");
        return INSPECT_EXIT_USAGE;
    }
    return 0;
}

int cmd_session(const struct inspect_opts *o)
{
    struct call k = {.o = o, .stdin_open = !o->oneshot};
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    int rc;

    /* A person at a terminal gets the shell (line editing, history,
     * completion, short commands); pipes and files get JSON lines. */
    if (!o->oneshot && !o->no_edit && !o->no_hello && !o->verbose && isatty(STDIN_FILENO) &&
        isatty(STDOUT_FILENO))
        return interactive_run(o);

    k.jl = jsonline_new();
    if (!k.jl) {
        inspect_error("out of memory");
        return INSPECT_EXIT_CONNECT;
    }
    k.person = isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
    jsonline_set_raw(k.jl, o->raw);
    jsonline_set_auto_id(k.jl, !o->no_auto_id, o->oneshot);
    if (o->oneshot && (rc = oneshot_input(&k)) != 0)
        goto out;

    rc = cmd_connect(o, deadline, &k.c, on_welcome, &k);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (k.person && !o->oneshot)
        fprintf(stderr,
                "# connected; type one JSON object per line (ids are added), Ctrl-D to end\n");
    if ((rc = send_frames(&k)) != 0)
        goto out;
    rc = run(&k, o->oneshot ? deadline : 0);
out:
    conn_free(k.c);
    jsonline_free(k.jl);
    proto_buf_free(&k.input);
    proto_buf_free(&k.frames);
    proto_buf_free(&k.text);
    free(k.owed.ids);
    return rc;
}
