#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/buf.h"
#include "util.h"
#include "value.h"

struct job {
    uint64_t call_id;
    char *input; /* payload JSON + "\n" */
    size_t input_len, input_off;
    uint64_t deadline; /* inspect_mono_ms() */
    int limit_ms;
    /* running: */
    pid_t pid; /* 0: not started */
    uint64_t started;
    int fd_in, fd_out, fd_err;
    struct proto_buf out, err;
    bool out_too_big;
    bool exited; /* reaped */
    int status;
    uint64_t exited_at;
    bool killed_for_time;
};

struct runner {
    struct runner_opts o;
    struct job **jobs; /* running first (pid != 0), then queued, in order */
    size_t n, cap;
    struct sigaction old_chld, old_pipe;
    /* Which pollfd entries belong to whom, from the last runner_pollfds. */
    struct slot {
        struct job *job;
        int which; /* 0 in, 1 out, 2 err, -1 the SIGCHLD pipe */
    } * slots;
    size_t cap_slots;
};

static int chld_pipe[2] = {-1, -1};

static void on_sigchld(int sig)
{
    int saved = errno;

    (void)sig;
    if (chld_pipe[1] >= 0) {
        ssize_t n = write(chld_pipe[1], "x", 1);
        (void)n; /* a full pipe already says "something exited" */
    }
    errno = saved;
}

int runner_new(const struct runner_opts *o, struct runner **out)
{
    struct runner *r = calloc(1, sizeof(*r));
    struct sigaction sa;

    if (!r)
        return -ENOMEM;
    r->o = *o;
    if (r->o.jobs < 1)
        r->o.jobs = 1;
    if (pipe2(chld_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        int err = errno;
        free(r);
        return -err;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, &r->old_chld);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, &r->old_pipe);
    *out = r;
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void job_free(struct job *j)
{
    close_fd(&j->fd_in);
    close_fd(&j->fd_out);
    close_fd(&j->fd_err);
    proto_buf_free(&j->out);
    proto_buf_free(&j->err);
    free(j->input);
    free(j);
}

void runner_free(struct runner *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct job *j = r->jobs[i];
        if (j->pid > 0 && !j->exited) {
            kill(-j->pid, SIGKILL);
            while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        job_free(j);
    }
    free(r->jobs);
    free(r->slots);
    sigaction(SIGCHLD, &r->old_chld, NULL);
    sigaction(SIGPIPE, &r->old_pipe, NULL);
    close_fd(&chld_pipe[0]);
    close_fd(&chld_pipe[1]);
    free(r);
}

int runner_submit(struct runner *r, uint64_t call_id, const char *payload_json, size_t len,
                  int limit_ms)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!payload_json) {
        payload_json = "null";
        len = 4;
    }
    if (!j || !(j->input = malloc(len + 1))) {
        free(j);
        return -ENOMEM;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct job **v = realloc(r->jobs, cap * sizeof(*v));
        if (!v) {
            free(j->input);
            free(j);
            return -ENOMEM;
        }
        r->jobs = v;
        r->cap = cap;
    }
    memcpy(j->input, payload_json, len);
    j->input[len] = '\n';
    j->input_len = len + 1;
    j->call_id = call_id;
    j->limit_ms = limit_ms > 0 ? limit_ms : 1;
    j->deadline = inspect_mono_ms() + (uint64_t)j->limit_ms;
    j->fd_in = j->fd_out = j->fd_err = -1;
    proto_buf_init(&j->out);
    proto_buf_init(&j->err);
    r->jobs[r->n++] = j;
    return 0;
}

size_t runner_running(const struct runner *r)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n; i++)
        n += r->jobs[i]->pid != 0;
    return n;
}

size_t runner_queued(const struct runner *r)
{
    return r->n - runner_running(r);
}

/* In the child, between fork and exec (the tool has one thread, so the
 * libc calls here are safe). */
static void child(const struct runner *r, const struct job *j, int in, int out, int err)
{
    char id[32], msg[512];
    sigset_t none;
    int n;

    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(127);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)j->call_id);
    setenv("VOLT_CALL_ID", id, 1);
    if (r->o.command)
        setenv("VOLT_COMMAND", r->o.command, 1);
    execvp(r->o.argv[0], r->o.argv);
    n = snprintf(msg, sizeof(msg), "cannot run %s: %s", r->o.argv[0], strerror(errno));
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        _exit(127);
    _exit(127);
}

/* Starts a queued job. 0, or -errno (then it is answered as failed). */
static int job_start(struct runner *r, struct job *j)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    pid_t pid;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        goto fail;
    pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0)
        child(r, j, in[0], out[1], err[1]);
    /* Both sides set the group, so a kill right after fork finds it. */
    setpgid(pid, pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    j->pid = pid;
    j->started = inspect_mono_ms();
    j->fd_in = in[1];
    j->fd_out = out[0];
    j->fd_err = err[0];
    fcntl(j->fd_in, F_SETFL, O_NONBLOCK);
    fcntl(j->fd_out, F_SETFL, O_NONBLOCK);
    fcntl(j->fd_err, F_SETFL, O_NONBLOCK);
    return 0;
fail : {
    int e = errno;
    int *fds[] = {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]};
    for (size_t i = 0; i < 6; i++)
        close_fd(fds[i]);
    return -e;
}
}

static void answer_fail(struct runner *r, struct job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer_fail(struct runner *r, struct job *j, const char *fmt, ...)
{
    struct runner_answer a = {.call_id = j->call_id, .ok = false};
    char msg[RUNNER_MAX_STDERR + 256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    a.message = msg;
    a.elapsed_ms = j->started ? inspect_mono_ms() - j->started : 0;
    r->o.done(r->o.ctx, &a);
}

/* stderr as a message: trailing blanks cut, control characters as spaces. */
static const char *err_text(struct job *j)
{
    size_t n = j->err.len;

    while (n && (j->err.data[n - 1] == '\n' || j->err.data[n - 1] == ' ' ||
                 j->err.data[n - 1] == '\r' || j->err.data[n - 1] == '\t'))
        n--;
    j->err.len = n;
    for (size_t i = 0; i < n; i++)
        if (j->err.data[i] < 0x20)
            j->err.data[i] = ' ';
    proto_buf_append_byte(&j->err, 0);
    return j->err.data ? (const char *)j->err.data : "";
}

static void job_answer(struct runner *r, struct job *j)
{
    const char *prog = r->o.argv[0];
    const char *said = err_text(j);
    struct runner_answer a = {.call_id = j->call_id, .ok = true};
    struct proto_buf data = PROTO_BUF_INIT;
    char why[200];

    if (j->killed_for_time) {
        answer_fail(r, j, "%s did not finish within %d ms (killed)", prog, j->limit_ms);
    } else if (j->out_too_big) {
        answer_fail(r, j, "%s printed more than %u bytes (killed)", prog, RUNNER_MAX_STDOUT);
    } else if (WIFSIGNALED(j->status)) {
        int sig = WTERMSIG(j->status);
        answer_fail(r, j, "%s was killed by signal %d (%s)%s%s", prog, sig, strsignal(sig),
                    said[0] ? ": " : "", said);
    } else if (WIFEXITED(j->status) && WEXITSTATUS(j->status) != 0) {
        if (said[0])
            answer_fail(r, j, "%s", said);
        else
            answer_fail(r, j, "%s exited with status %d", prog, WEXITSTATUS(j->status));
    } else if (value_from_text(j->out.data ? (const char *)j->out.data : "", j->out.len, &data, why,
                               sizeof(why)) < 0) {
        bool empty = true;
        for (size_t i = 0; i < j->out.len && empty; i++)
            empty = strchr(" \t\r\n", j->out.data[i]) != NULL;
        answer_fail(r, j, "%s printed %s (a reply is one JSON value on stdout)", prog,
                    empty ? "nothing" : "no JSON");
    } else {
        a.data = data.data;
        a.len = data.len;
        a.elapsed_ms = inspect_mono_ms() - j->started;
        r->o.done(r->o.ctx, &a);
    }
    proto_buf_free(&data);
}

/* Reads what a pipe has now, keeping at most `keep` bytes (*over is set
 * when there was more). A bounded number of reads, so a program that
 * writes without end cannot hold the loop. Returns false at its end (or an
 * error). */
static bool drain(int fd, struct proto_buf *b, size_t keep, bool *over)
{
    char tmp[65536];

    for (int round = 0; round < 16; round++) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        size_t room = keep > b->len ? keep - b->len : 0;
        size_t take;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK;
        if (n == 0)
            return false;
        if ((size_t)n > room)
            *over = true;
        take = (size_t)n < room ? (size_t)n : room;
        if (take && proto_buf_append(b, tmp, take) < 0)
            return false;
    }
    return true;
}

static void feed_stdin(struct job *j)
{
    while (j->fd_in >= 0 && j->input_off < j->input_len) {
        ssize_t n = write(j->fd_in, j->input + j->input_off, j->input_len - j->input_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                close_fd(&j->fd_in); /* EPIPE: it does not read its stdin; fine */
            return;
        }
        j->input_off += (size_t)n;
    }
    if (j->input_off >= j->input_len)
        close_fd(&j->fd_in);
}

size_t runner_pollfds(struct runner *r, struct pollfd *pfd, size_t max)
{
    size_t n = 0, need = 1 + 3 * r->n;

    if (need > r->cap_slots) {
        struct slot *v = realloc(r->slots, need * sizeof(*v));
        if (!v)
            return 0;
        r->slots = v;
        r->cap_slots = need;
    }
    if (n < max) {
        pfd[n] = (struct pollfd){.fd = chld_pipe[0], .events = POLLIN};
        r->slots[n++] = (struct slot){NULL, -1};
    }
    for (size_t i = 0; i < r->n; i++) {
        struct job *j = r->jobs[i];
        int fds[3] = {j->fd_in, j->fd_out, j->fd_err};
        for (int k = 0; k < 3; k++) {
            if (fds[k] < 0 || n >= max)
                continue;
            pfd[n] = (struct pollfd){.fd = fds[k], .events = k == 0 ? POLLOUT : POLLIN};
            r->slots[n++] = (struct slot){j, k};
        }
    }
    return n;
}

static void reap(struct runner *r)
{
    char buf[64];

    while (read(chld_pipe[0], buf, sizeof(buf)) > 0)
        ;
    for (size_t i = 0; i < r->n; i++) {
        struct job *j = r->jobs[i];
        int status;
        if (j->pid <= 0 || j->exited)
            continue;
        if (waitpid(j->pid, &status, WNOHANG) == j->pid) {
            j->exited = true;
            j->status = status;
            j->exited_at = inspect_mono_ms();
        }
    }
}

static void kill_group(struct job *j)
{
    if (j->pid > 0)
        kill(-j->pid, SIGKILL);
}

void runner_handle(struct runner *r, const struct pollfd *pfd, size_t n)
{
    uint64_t now;
    size_t kept = 0, running = 0;

    for (size_t i = 0; i < n && i < r->cap_slots; i++) {
        struct slot *s = &r->slots[i];
        struct job *j = s->job;
        if (!pfd[i].revents)
            continue;
        if (s->which < 0)
            continue; /* reaped below in any case */
        if (s->which == 0) {
            feed_stdin(j);
        } else if (s->which == 1 && j->fd_out >= 0) {
            if (!drain(j->fd_out, &j->out, RUNNER_MAX_STDOUT, &j->out_too_big) || j->out_too_big) {
                close_fd(&j->fd_out);
                if (j->out_too_big)
                    kill_group(j);
            }
        } else if (s->which == 2 && j->fd_err >= 0) {
            bool over = false; /* the rest of a long stderr is read and dropped */
            if (!drain(j->fd_err, &j->err, RUNNER_MAX_STDERR, &over))
                close_fd(&j->fd_err);
        }
    }
    reap(r);
    now = inspect_mono_ms();
    for (size_t i = 0; i < r->n; i++) {
        struct job *j = r->jobs[i];
        if (j->pid > 0 && !j->exited && now >= j->deadline && !j->killed_for_time) {
            j->killed_for_time = true;
            kill_group(j);
        }
        /* Exited, but something it started holds the pipes: a moment
         * more, then the group goes. */
        if (j->exited && (j->fd_out >= 0 || j->fd_err >= 0) &&
            now >= j->exited_at + RUNNER_LINGER_MS) {
            kill_group(j);
            close_fd(&j->fd_out);
            close_fd(&j->fd_err);
        }
    }
    /* Finished jobs are answered and dropped; the order of the rest stays. */
    for (size_t i = 0; i < r->n; i++) {
        struct job *j = r->jobs[i];
        if (j->pid > 0 && j->exited && j->fd_out < 0 && j->fd_err < 0) {
            close_fd(&j->fd_in);
            job_answer(r, j);
            job_free(j);
            continue;
        }
        if (j->pid == 0 && now >= j->deadline) {
            answer_fail(r, j, "not started within its %d ms: all %d jobs were busy (--jobs)",
                        j->limit_ms, r->o.jobs);
            job_free(j);
            continue;
        }
        r->jobs[kept++] = j;
    }
    r->n = kept;
    for (size_t i = 0; i < r->n; i++)
        running += r->jobs[i]->pid != 0;
    for (size_t i = 0; i < r->n && running < (size_t)r->o.jobs; i++) {
        struct job *j = r->jobs[i];
        int rc;
        if (j->pid != 0)
            continue;
        rc = job_start(r, j);
        if (rc < 0) {
            answer_fail(r, j, "cannot start %s: %s", r->o.argv[0], strerror(-rc));
            job_free(j);
            memmove(&r->jobs[i], &r->jobs[i + 1], (r->n - i - 1) * sizeof(r->jobs[0]));
            r->n--;
            i--;
            continue;
        }
        feed_stdin(j);
        running++;
    }
}

int runner_timeout_ms(const struct runner *r)
{
    uint64_t now = inspect_mono_ms(), next = UINT64_MAX;

    for (size_t i = 0; i < r->n; i++) {
        const struct job *j = r->jobs[i];
        uint64_t t = j->deadline;
        if (j->pid == 0 && runner_running(r) < (size_t)r->o.jobs)
            return 0; /* can start now */
        if (j->exited)
            t = j->exited_at + RUNNER_LINGER_MS;
        if (t < next)
            next = t;
    }
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}
