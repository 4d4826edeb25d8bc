#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/msg.h"
#include "proto/reader.h"
#include "util.h"

enum { TO_BROKER = 0, TO_CLIENT = 1 };

/* One direction of a session: bytes read from `from` wait in `queued`
 * until `to` takes them. */
struct proxy_pipe {
    struct proto_buf queued;
    struct proto_reader *reader;
    bool reader_dead; /* fatal reader error reported; copying blindly now */
    bool eof;         /* the source ended (or failed) */
    bool shut;        /* the end was passed on (or the destination is gone) */
};

struct proxy_session {
    unsigned number;
    int fd[2]; /* [TO_BROKER] = the client's socket, [TO_CLIENT] = the broker's */
    struct proxy_pipe pipe[2];
    bool closing;
    const char *closed_by; /* who ended first: "client", "broker" */
    char name[128];        /* from the client's hello ("" until then) */
    long long pid, uid;    /* SO_PEERCRED at accept (-1: unknown) */
};

struct proxy {
    struct proxy_opts opts;
    int listen_fd;
    bool unlink_on_free;
    unsigned next_number;
    size_t peak_queued;
    struct proxy_session **sessions;
    size_t n_sessions, cap_sessions;
    struct pollfd *pfds;
    size_t cap_pfds;
    struct proto_buf text;
};

/* The socket a pipe reads from / writes to. */
static int pipe_src(const struct proxy_session *s, int dir)
{
    return s->fd[dir == TO_BROKER ? 0 : 1];
}

static int pipe_dst(const struct proxy_session *s, int dir)
{
    return s->fd[dir == TO_BROKER ? 1 : 0];
}

static uint64_t now_us(const struct proxy *p)
{
    return p->opts.now_us ? p->opts.now_us() : inspect_now_us();
}

/* Hands one event to the caller (or prints it). */
static void emit(struct proxy *p, const struct proxy_session *s, int kind, int dir,
                 const void *data, size_t len)
{
    struct trace_ev ev = {.time_us = now_us(p),
                          .kind = (uint8_t)kind,
                          .side = TRACE_LOCAL,
                          .dir = dir == TO_BROKER ? TRACE_IN : TRACE_OUT,
                          .peer = s->number,
                          .name = s->name,
                          .pid = s->pid,
                          .uid = s->uid,
                          .data = data,
                          .len = len};

    if (p->opts.on_event) {
        p->opts.on_event(p->opts.ctx, &ev);
        return;
    }
    proto_buf_reset(&p->text);
    if (trace_format(&ev, p->opts.json, &p->text) == 0) {
        fwrite(p->text.data, 1, p->text.len, p->opts.out);
        fflush(p->opts.out);
    }
}

static void print_error(struct proxy *p, const struct proxy_session *s, int dir, const char *what)
{
    emit(p, s, TRACE_ERROR, dir, what, strlen(what));
}

/* A frame; a hello names the session from then on. */
static void print_frame(struct proxy *p, struct proxy_session *s, int dir,
                        const struct proto_span *frame)
{
    struct proto_msg m = {0};
    const char *why;

    if (dir == TO_BROKER && !s->name[0] && proto_msg_decode(frame, &m, &why) == 0 &&
        m.op == PROTO_OP_HELLO && proto_msg_has(&m, PROTO_F_NAME))
        snprintf(s->name, sizeof(s->name), "%.*s", (int)m.name.len, (const char *)m.name.ptr);
    emit(p, s, TRACE_FRAME, dir, frame->ptr, frame->len);
}

static void print_open(struct proxy *p, struct proxy_session *s)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    char text[96] = "";

    if (getsockopt(s->fd[0], SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        s->pid = cred.pid;
        s->uid = cred.uid;
        snprintf(text, sizeof(text), "uid %u, gid %u", (unsigned)cred.uid, (unsigned)cred.gid);
    }
    emit(p, s, TRACE_OPEN, TO_BROKER, text, strlen(text));
}

static void print_close(struct proxy *p, const struct proxy_session *s, const char *reason)
{
    emit(p, s, TRACE_CLOSE, TO_CLIENT, reason, strlen(reason));
}

/* Prints every frame now complete in the copy of the stream. */
static void parse_copy(struct proxy *p, struct proxy_session *s, int dir, const void *data,
                       size_t len)
{
    struct proxy_pipe *pp = &s->pipe[dir];
    struct proto_span frame;
    char why[200];
    int rc;

    if (pp->reader_dead)
        return;
    rc = proto_reader_feed(pp->reader, data, len);
    while (rc >= 0 && (rc = proto_reader_next(pp->reader, &frame)) != 0) {
        if (rc == 1) {
            print_frame(p, s, dir, &frame);
        } else if (rc == PROTO_E_BAD_FRAME) {
            snprintf(why, sizeof(why), "%s (forwarded unchanged)", proto_reader_error(pp->reader));
            print_error(p, s, dir, why);
            rc = 0;
        }
    }
    if (rc < 0) {
        snprintf(why, sizeof(why),
                 "cannot follow this direction any more: %s; bytes are still forwarded",
                 rc == PROTO_E_NOMEM ? "out of memory" : proto_reader_error(pp->reader));
        print_error(p, s, dir, why);
        pp->reader_dead = true;
    }
}

static void session_free(struct proxy_session *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->fd[i] >= 0)
            close(s->fd[i]);
        proto_buf_free(&s->pipe[i].queued);
        proto_reader_free(s->pipe[i].reader);
    }
    free(s);
}

static void session_fail(struct proxy *p, struct proxy_session *s, const char *side, int err)
{
    char reason[160];

    if (s->closing)
        return;
    snprintf(reason, sizeof(reason), "%s socket: %s", side, strerror(err));
    print_close(p, s, reason);
    s->closing = true;
}

/* Passes the end of a direction on once its bytes are written. */
static void pipe_maybe_shut(struct proxy_session *s, int dir)
{
    struct proxy_pipe *pp = &s->pipe[dir];

    if (pp->eof && !pp->shut && pp->queued.len == 0) {
        shutdown(pipe_dst(s, dir), SHUT_WR);
        pp->shut = true;
    }
}

static void pipe_read(struct proxy *p, struct proxy_session *s, int dir)
{
    struct proxy_pipe *pp = &s->pipe[dir];
    ssize_t n;

    if (proto_buf_reserve(&pp->queued, PROXY_READ_CHUNK) < 0) {
        session_fail(p, s, "proxy", ENOMEM);
        return;
    }
    do {
        n = read(pipe_src(s, dir), pp->queued.data + pp->queued.len, PROXY_READ_CHUNK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        session_fail(p, s, dir == TO_BROKER ? "client" : "broker", errno);
        return;
    }
    if (n == 0) {
        pp->eof = true;
        if (!s->closed_by)
            s->closed_by = dir == TO_BROKER ? "client" : "broker";
        pipe_maybe_shut(s, dir);
        return;
    }
    parse_copy(p, s, dir, pp->queued.data + pp->queued.len, (size_t)n);
    pp->queued.len += (size_t)n;
    if (pp->queued.len > p->peak_queued)
        p->peak_queued = pp->queued.len;
}

static void pipe_write(struct proxy *p, struct proxy_session *s, int dir)
{
    struct proxy_pipe *pp = &s->pipe[dir];

    while (pp->queued.len > 0) {
        ssize_t n = send(pipe_dst(s, dir), pp->queued.data, pp->queued.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            session_fail(p, s, dir == TO_BROKER ? "broker" : "client", errno);
            return;
        }
        proto_buf_consume(&pp->queued, (size_t)n);
    }
    pipe_maybe_shut(s, dir);
}

static bool session_done(struct proxy *p, struct proxy_session *s)
{
    char reason[80];

    if (s->closing)
        return true;
    if (!(s->pipe[TO_BROKER].shut && s->pipe[TO_CLIENT].shut))
        return false;
    snprintf(reason, sizeof(reason), "by the %s", s->closed_by ? s->closed_by : "peer");
    print_close(p, s, reason);
    return true;
}

int proxy_adopt(struct proxy *p, int client_fd, int broker_fd)
{
    struct proto_limits limits;
    struct proxy_session *s = NULL;

    if (p->n_sessions == p->cap_sessions) {
        size_t cap = p->cap_sessions ? p->cap_sessions * 2 : 8;
        struct proxy_session **v = realloc(p->sessions, cap * sizeof(*v));
        if (!v)
            goto fail;
        p->sessions = v;
        p->cap_sessions = cap;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->fd[0] = client_fd;
    s->fd[1] = broker_fd;
    s->pid = s->uid = -1;
    proto_limits_default(&limits);
    limits.max_frame = PROTO_HARD_MAX_FRAME;
    for (int i = 0; i < 2; i++) {
        proto_buf_init(&s->pipe[i].queued);
        s->pipe[i].reader = proto_reader_new(&limits);
        if (!s->pipe[i].reader)
            goto fail;
        fcntl(s->fd[i], F_SETFL, fcntl(s->fd[i], F_GETFL) | O_NONBLOCK);
    }
    s->number = ++p->next_number;
    p->sessions[p->n_sessions++] = s;
    print_open(p, s);
    return (int)s->number;

fail:
    if (s) {
        session_free(s);
    } else {
        close(client_fd);
        close(broker_fd);
    }
    return -ENOMEM;
}

static int connect_broker(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static void accept_clients(struct proxy *p)
{
    for (;;) {
        int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        int broker;
        char why[200];

        if (fd < 0)
            return; /* EAGAIN, or a client that vanished; the listener stays */
        /* The broker sees the proxy's credentials, not the client's: only
         * our own user may go through, or anyone could borrow them (root's
         * proxy would hand out the daemon password and the monitor). */
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.uid != geteuid()) {
            struct proxy_session tmp = {.number = ++p->next_number, .pid = -1, .uid = -1};
            snprintf(why, sizeof(why),
                     "a client of uid %ld refused: the proxy only lets its own user through",
                     clen == sizeof(cred) ? (long)cred.uid : -1L);
            print_close(p, &tmp, why);
            close(fd);
            continue;
        }
        broker = connect_broker(p->opts.broker_path);
        if (broker < 0) {
            struct proxy_session tmp = {.number = ++p->next_number, .pid = -1, .uid = -1};
            snprintf(why, sizeof(why), "cannot connect to the broker at %s: %s; client dropped",
                     p->opts.broker_path, strerror(-broker));
            print_close(p, &tmp, why);
            close(fd);
            continue;
        }
        proxy_adopt(p, fd, broker);
    }
}

/* A socket file at path: a live listener is an error, a stale one goes. */
static int clear_stale_socket(const char *path, char *msg, size_t size)
{
    struct stat st;
    int fd;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(msg, size, "%s exists and is not a socket; not replacing it", path);
        return -EEXIST;
    }
    fd = connect_broker(path);
    if (fd >= 0) {
        close(fd);
        snprintf(msg, size, "%s is in use: something is listening on it", path);
        return -EADDRINUSE;
    }
    if (fd != -ECONNREFUSED)
        return fd;
    return unlink(path) < 0 ? -errno : 0;
}

static int listen_on(struct proxy *p, const char *path, char *msg, size_t size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int rc;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(msg, size, "listen path too long (a Unix socket path is under %zu bytes)",
                 sizeof(addr.sun_path));
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);
    msg[0] = '\0';
    rc = clear_stale_socket(path, msg, size);
    if (rc < 0)
        goto fail;
    p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* 0600 from the start (the umask at bind), not chmod'ed after: no
     * moment when another user could connect. */
    mode_t old_mask = umask(0177);
    rc = p->listen_fd < 0 ? -1 : bind(p->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
    int bind_errno = errno;
    umask(old_mask);
    if (rc < 0) {
        rc = -bind_errno;
        goto fail;
    }
    p->unlink_on_free = true;
    if (listen(p->listen_fd, 64) < 0) {
        rc = -errno;
        goto fail;
    }
    return 0;

fail:
    if (!msg[0])
        snprintf(msg, size, "cannot listen on %s: %s", path, strerror(-rc));
    return rc;
}

int proxy_new(const struct proxy_opts *opts, struct proxy **out, char *msg, size_t size)
{
    struct proxy *p = calloc(1, sizeof(*p));
    int rc;

    if (!p) {
        snprintf(msg, size, "out of memory");
        return -ENOMEM;
    }
    p->opts = *opts;
    if (!p->opts.out)
        p->opts.out = stdout;
    p->listen_fd = -1;
    proto_buf_init(&p->text);
    if (opts->listen_path) {
        rc = listen_on(p, opts->listen_path, msg, size);
        if (rc < 0) {
            proxy_free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_sessions; i++)
        session_free(p->sessions[i]);
    free(p->sessions);
    free(p->pfds);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    if (p->unlink_on_free)
        unlink(p->opts.listen_path);
    proto_buf_free(&p->text);
    free(p);
}

size_t proxy_session_count(const struct proxy *p)
{
    return p->n_sessions;
}

size_t proxy_peak_queued(const struct proxy *p)
{
    return p->peak_queued;
}

/* poll() events for the socket that pipe `in` reads and pipe `out` writes. */
static short socket_events(const struct proxy_session *s, int in, int out)
{
    short ev = 0;

    if (!s->pipe[in].eof && s->pipe[in].queued.len < PROXY_MAX_QUEUED)
        ev |= POLLIN;
    if (s->pipe[out].queued.len > 0 && !s->pipe[out].shut)
        ev |= POLLOUT;
    return ev;
}

static int build_pollset(struct proxy *p, size_t *n)
{
    size_t need = 1 + 2 * p->n_sessions;

    if (need > p->cap_pfds) {
        struct pollfd *v = realloc(p->pfds, need * sizeof(*v));
        if (!v)
            return -ENOMEM;
        p->pfds = v;
        p->cap_pfds = need;
    }
    p->pfds[0] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
    for (size_t i = 0; i < p->n_sessions; i++) {
        const struct proxy_session *s = p->sessions[i];
        short ev0 = socket_events(s, TO_BROKER, TO_CLIENT);
        short ev1 = socket_events(s, TO_CLIENT, TO_BROKER);
        /* A socket we neither read nor write is left out: a hung-up one
         * would otherwise wake poll() at once, forever. */
        p->pfds[1 + 2 * i] = (struct pollfd){.fd = ev0 ? s->fd[0] : -1, .events = ev0};
        p->pfds[2 + 2 * i] = (struct pollfd){.fd = ev1 ? s->fd[1] : -1, .events = ev1};
    }
    *n = need;
    return 0;
}

/* Handles one socket's readiness: `in` is the pipe it feeds, `out` the
 * pipe it drains. */
static void service_socket(struct proxy *p, struct proxy_session *s, short revents, int in, int out)
{
    if (s->closing)
        return;
    if ((revents & POLLOUT) || ((revents & (POLLERR | POLLHUP)) && s->pipe[out].queued.len))
        pipe_write(p, s, out);
    if (!s->closing && !s->pipe[in].eof && (revents & (POLLIN | POLLHUP | POLLERR)))
        pipe_read(p, s, in);
}

int proxy_run_once(struct proxy *p, int timeout_ms)
{
    size_t n, kept = 0;
    int rc = build_pollset(p, &n);

    if (rc < 0)
        return rc;
    rc = poll(p->pfds, n, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    for (size_t i = 0; i < p->n_sessions; i++) {
        struct proxy_session *s = p->sessions[i];
        service_socket(p, s, p->pfds[1 + 2 * i].revents, TO_BROKER, TO_CLIENT);
        service_socket(p, s, p->pfds[2 + 2 * i].revents, TO_CLIENT, TO_BROKER);
    }
    for (size_t i = 0; i < p->n_sessions; i++) {
        struct proxy_session *s = p->sessions[i];
        if (session_done(p, s))
            session_free(s);
        else
            p->sessions[kept++] = s;
    }
    p->n_sessions = kept;
    if (p->listen_fd >= 0 && (p->pfds[0].revents & POLLIN))
        accept_clients(p);
    return 0;
}
