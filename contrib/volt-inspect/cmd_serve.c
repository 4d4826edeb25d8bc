/* `volt-inspect serve COMMAND (--reply JSON | --exec PROG [ARG...])`: a
 * handler from the shell.
 *
 * Registers COMMAND, then answers every call for it: with the fixed
 * --reply data, or with what PROG prints (runner.h runs one per call, up
 * to --jobs at once). One poll() loop holds the broker connection and
 * every program's pipes, so a slow program never delays another call or
 * the reading of the socket. One line per call goes to stderr:
 *
 *   @7 uptime: ok (12 ms)
 *   @8 uptime: HandlerError: df: /nope: No such file or directory (3 ms)
 *
 * The time limit of a call is the time the broker gives it (the call's
 * timeout_ms, less a margin so our HandlerError arrives before the
 * broker's HandlerTimeout), or --time-limit when that is shorter.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "proto/errors.h"
#include "runner.h"
#include "util.h"
#include "value.h"

#define REGISTER_ID 1
/* Answer this long before the broker would answer HandlerTimeout. */
#define LIMIT_MARGIN_MS 250

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct serve {
    const struct inspect_opts *o;
    struct conn *c;
    struct runner *runner;
    struct proto_buf reply; /* --reply as msgpack */
    struct proto_buf text;
    long long received, answered;
    bool unregistered;
    int status;
};

/* Sends the reply and says so on stderr (ms < 0: no time to tell). */
static void send_reply(struct serve *s, uint64_t id, bool ok, const uint8_t *data, size_t len,
                       const char *message, long long ms)
{
    struct proto_msg r = {
        .op = PROTO_OP_REPLY, .fields = PROTO_F_ID | PROTO_F_OK, .id = id, .ok = ok};

    if (ok) {
        r.data = (struct proto_span){data, (uint32_t)len};
        r.fields |= PROTO_F_DATA;
    } else {
        r.code = proto_span_str("HandlerError", 12);
        r.message = proto_span_str(message, (uint32_t)strlen(message));
        r.fields |= PROTO_F_CODE | PROTO_F_MESSAGE;
    }
    if (conn_send_msg(s->c, &r) == PROTO_E_FRAME_TOO_LARGE) {
        /* Say so instead of leaving the call to time out. */
        struct proto_msg f = {.op = PROTO_OP_REPLY,
                              .fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_CODE | PROTO_F_MESSAGE,
                              .id = id,
                              .code = proto_span_str("HandlerError", 12),
                              .message = proto_span_str("the reply is larger than a frame", 32)};
        conn_send_msg(s->c, &f);
    }
    s->answered++;
    fprintf(stderr, "@%llu %s: %s%s", (unsigned long long)id, s->o->args[0],
            ok ? "ok" : "HandlerError: ", ok ? "" : message);
    if (ms >= 0)
        fprintf(stderr, " (%lld ms)", ms);
    fputc('\n', stderr);
}

static void on_done(void *ctx, const struct runner_answer *a)
{
    struct serve *s = ctx;

    send_reply(s, a->call_id, a->ok, a->data, a->len, a->message, (long long)a->elapsed_ms);
}

static void on_call(struct serve *s, const struct proto_msg *m)
{
    char err[200];
    int limit;

    s->received++;
    if (s->o->count >= 0 && s->received > s->o->count) {
        send_reply(s, m->id, false, NULL, 0, "this volt-inspect serve is stopping (--count)", -1);
        return;
    }
    if (!s->runner) {
        send_reply(s, m->id, true, s->reply.data, s->reply.len, NULL, -1);
        return;
    }
    proto_buf_reset(&s->text);
    if (proto_msg_has(m, PROTO_F_PAYLOAD) &&
        value_to_json(m->payload.ptr, m->payload.len, &s->text, err, sizeof(err)) < 0) {
        char why[300];
        snprintf(why, sizeof(why), "the payload has no JSON form: %s", err);
        send_reply(s, m->id, false, NULL, 0, why, -1);
        return;
    }
    limit = s->o->time_limit_ms;
    if (proto_msg_has(m, PROTO_F_TIMEOUT_MS) && m->timeout_ms > 0) {
        uint64_t t =
            m->timeout_ms > 2 * LIMIT_MARGIN_MS ? m->timeout_ms - LIMIT_MARGIN_MS : m->timeout_ms;
        if (t > 0x7fffffff)
            t = 0x7fffffff;
        if (limit == 0 || (uint64_t)limit > t)
            limit = (int)t;
    }
    if (limit == 0)
        limit = INSPECT_DEFAULT_TIMEOUT_MS;
    if (runner_submit(s->runner, m->id, s->text.len ? (const char *)s->text.data : NULL,
                      s->text.len, limit) < 0) {
        send_reply(s, m->id, false, NULL, 0, "volt-inspect is out of memory", -1);
    }
}

/* After --count calls, the command is given up so no more come. */
static void maybe_unregister(struct serve *s)
{
    struct proto_buf cmds = PROTO_BUF_INIT;
    struct proto_msg u = {
        .op = PROTO_OP_UNREGISTER, .fields = PROTO_F_ID | PROTO_F_COMMANDS, .id = REGISTER_ID + 1};

    if (s->unregistered || s->o->count < 0 || s->received < s->o->count)
        return;
    s->unregistered = true;
    if (proto_mp_put_array(&cmds, 1) == 0 && proto_mp_put_cstr(&cmds, s->o->args[0]) == 0) {
        u.commands = (struct proto_span){cmds.data, (uint32_t)cmds.len};
        u.commands_count = 1;
        conn_send_msg(s->c, &u);
    }
    proto_buf_free(&cmds);
}

static int handle_frames(struct serve *s)
{
    struct proto_span body;
    int rc;

    while ((rc = conn_next(s->c, &body)) != 0) {
        struct proto_msg m = {0};
        const char *why;
        if (rc == PROTO_E_BAD_FRAME)
            continue;
        if (rc < 0) {
            inspect_error("serve: cannot follow the broker's stream: %s", conn_reader_error(s->c));
            return INSPECT_EXIT_CONNECT;
        }
        if (proto_msg_decode(&body, &m, &why) < 0)
            continue;
        if (m.op == PROTO_OP_CALL && proto_msg_has(&m, PROTO_F_ID)) {
            on_call(s, &m);
            maybe_unregister(s);
        } else if (m.op == PROTO_OP_ERROR) {
            cmd_report_failure("serve", &m);
        }
    }
    return 0;
}

static bool finished(const struct serve *s)
{
    if (stop_requested)
        return true;
    return s->o->count >= 0 && s->answered >= s->o->count &&
           (!s->runner || (runner_running(s->runner) == 0 && runner_queued(s->runner) == 0)) &&
           conn_pending_out(s->c) == 0;
}

static int loop(struct serve *s)
{
    struct pollfd *pfd = NULL;
    size_t cap = 1 + 1 + 3 * (size_t)(s->o->jobs ? s->o->jobs : 4) + 64;
    int rc = INSPECT_EXIT_OK;

    pfd = calloc(cap, sizeof(*pfd));
    if (!pfd) {
        inspect_error("out of memory");
        return INSPECT_EXIT_CONNECT;
    }
    while (!finished(s)) {
        size_t n = 1;
        int timeout = -1, prc;
        pfd[0] = (struct pollfd){.fd = conn_fd(s->c), .events = POLLIN};
        if (conn_pending_out(s->c))
            pfd[0].events |= POLLOUT;
        if (s->runner) {
            n += runner_pollfds(s->runner, pfd + 1, cap - 1);
            timeout = runner_timeout_ms(s->runner);
        }
        prc = poll(pfd, n, timeout);
        if (prc < 0 && errno != EINTR) {
            inspect_error("poll: %s", strerror(errno));
            rc = INSPECT_EXIT_CONNECT;
            break;
        }
        if (prc < 0)
            continue; /* a signal: SIGCHLD (the runner looks) or a stop */
        if ((pfd[0].revents & POLLOUT) && conn_flush(s->c) < 0) {
            inspect_error("serve: %s", conn_gone_reason(s->c));
            rc = INSPECT_EXIT_CONNECT;
            break;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got = conn_read(s->c);
            if ((rc = handle_frames(s)) != 0)
                break;
            if (got == 0 || (got < 0 && got != -EAGAIN)) {
                inspect_error("serve: %s", conn_gone_reason(s->c));
                rc = INSPECT_EXIT_CONNECT;
                break;
            }
        }
        if (s->runner)
            runner_handle(s->runner, pfd + 1, n - 1);
    }
    /* Answers already queued still go out (best effort, briefly). */
    if (rc == INSPECT_EXIT_OK && conn_pending_out(s->c)) {
        struct proto_span dummy;
        conn_wait_frame(s->c, inspect_mono_ms() + 1000, &dummy);
    }
    free(pfd);
    return rc;
}

int cmd_serve(const struct inspect_opts *o)
{
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    struct serve s = {.o = o};
    struct proto_buf cmds = PROTO_BUF_INIT;
    struct proto_msg m = {.op = PROTO_OP_REGISTER, .fields = PROTO_F_COMMANDS}, a;
    struct proto_span answer;
    struct sigaction sa;
    char err[300];
    int rc;

    if (o->reply && value_from_arg(o->reply, &s.reply, err, sizeof(err)) < 0) {
        inspect_error("--reply: %s", err);
        return INSPECT_EXIT_USAGE;
    }
    if (proto_mp_put_array(&cmds, 1) < 0 || proto_mp_put_cstr(&cmds, o->args[0]) < 0) {
        rc = INSPECT_EXIT_CONNECT;
        goto out;
    }
    m.commands = (struct proto_span){cmds.data, (uint32_t)cmds.len};
    m.commands_count = 1;
    rc = cmd_connect(o, deadline, &s.c, NULL, NULL);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    rc = cmd_roundtrip(s.c, &m, REGISTER_ID, deadline, "register", NULL, NULL, &answer, &a);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (a.op != PROTO_OP_RESULT || !a.ok) {
        cmd_report_failure("register", &a);
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    if (o->exec_argv) {
        struct runner_opts ro = {.argv = o->exec_argv,
                                 .command = o->args[0],
                                 .jobs = o->jobs ? o->jobs : 4,
                                 .done = on_done,
                                 .ctx = &s};
        if (runner_new(&ro, &s.runner) < 0) {
            inspect_error("serve: cannot set up the program runner: %s", strerror(errno));
            rc = INSPECT_EXIT_CONNECT;
            goto out;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "# serving %s (%s); Ctrl-C to stop\n", o->args[0],
            o->exec_argv ? o->exec_argv[0] : "--reply");
    rc = loop(&s);
out:
    runner_free(s.runner);
    conn_free(s.c);
    proto_buf_free(&cmds);
    proto_buf_free(&s.reply);
    proto_buf_free(&s.text);
    return rc;
}
