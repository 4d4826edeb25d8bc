#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/paths.h"
#include "proto/reader.h"
#include "util.h"

#define CONN_READ_CHUNK 65536u

struct conn {
    int fd;
    int sys_errno; /* socket error that ended the connection, 0 for EOF */
    struct proto_reader *reader;
    struct proto_buf out;
    struct proto_buf scratch; /* encoding of conn_send_msg */
};

int conn_default_path(char *buf, size_t size, enum conn_path_source *source)
{
    const char *env = getenv(PROTO_SOCKET_ENV);
    int rc = proto_client_socket_path(buf, size);

    if (rc < 0)
        return rc;
    if (env && *env)
        *source = CONN_PATH_ENV;
    else
        *source = strcmp(buf, PROTO_ROOT_SOCKET) == 0 ? CONN_PATH_ROOT : CONN_PATH_XDG;
    return 0;
}

static const char *source_text(enum conn_path_source source)
{
    switch (source) {
    case CONN_PATH_ENV:
        return " (from $VOLT_BROKER_SOCKET)";
    case CONN_PATH_ROOT:
        return " (the default: the system broker's socket)";
    case CONN_PATH_XDG:
        return " (the default: this user's broker socket, found in $XDG_RUNTIME_DIR/volt or "
               "/tmp/volt-UID)";
    default:
        return "";
    }
}

static void explain_permission(const struct stat *st, char *hint, size_t size)
{
    struct passwd *pw;
    struct group *gr;
    char user[64], group[64];

    if (!st) {
        snprintf(hint, size,
                 "the socket or a directory above it is not accessible to you; "
                 "check their permissions");
        return;
    }
    pw = getpwuid(st->st_uid);
    gr = getgrgid(st->st_gid);
    if (pw)
        snprintf(user, sizeof(user), "%s", pw->pw_name);
    else
        snprintf(user, sizeof(user), "uid %u", (unsigned)st->st_uid);
    if (gr)
        snprintf(group, sizeof(group), "%s", gr->gr_name);
    else
        snprintf(group, sizeof(group), "gid %u", (unsigned)st->st_gid);
    snprintf(hint, size,
             "the socket belongs to %s, group %s, mode %04o; to connect, be in group %s "
             "(e.g. `usermod -aG %s $USER`, then log in again) or run as %s",
             user, group, (unsigned)(st->st_mode & 07777), group, group, user);
}

void conn_explain_error(const char *path, enum conn_path_source source, int errnum,
                        const struct stat *st, char *msg, size_t size)
{
    char hint[640];

    hint[0] = '\0';
    if (st && !S_ISSOCK(st->st_mode) && errnum != EACCES && errnum != EPERM) {
        snprintf(hint, sizeof(hint), "%s exists but is not a socket; is the path right?", path);
    } else {
        switch (errnum) {
        case ENOENT:
            snprintf(hint, sizeof(hint),
                     "is volt-broker running? Give the path with --socket PATH or "
                     "$VOLT_BROKER_SOCKET%s",
                     source == CONN_PATH_XDG ? "; the system broker listens on " PROTO_ROOT_SOCKET
                     : source == CONN_PATH_ROOT && geteuid() != 0
                         ? " (no broker of your own was found either: its socket would be "
                           "$XDG_RUNTIME_DIR/volt/broker.sock, or /tmp/volt-UID/broker.sock)"
                         : "");
            break;
        case ECONNREFUSED:
            snprintf(hint, sizeof(hint),
                     "the socket exists but nobody listens on it: a broker that stopped "
                     "without cleaning up? Start volt-broker");
            break;
        case EACCES:
        case EPERM:
            explain_permission(st, hint, sizeof(hint));
            break;
        case ENAMETOOLONG:
            snprintf(hint, sizeof(hint), "a Unix socket path must be shorter than %zu bytes",
                     sizeof(((struct sockaddr_un *)0)->sun_path));
            break;
        case EAGAIN:
            snprintf(hint, sizeof(hint), "the broker's accept queue is full; try again");
            break;
        default:
            break;
        }
    }
    snprintf(msg, size, "cannot connect to %s%s: %s%s%s", path, source_text(source),
             strerror(errnum), hint[0] ? "\n  hint: " : "", hint);
}

static struct conn *conn_alloc(int fd)
{
    struct proto_limits limits;
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    proto_limits_default(&limits);
    /* The broker never sends more than its own max_frame; accept anything
     * the protocol allows rather than guess its configuration. */
    limits.max_frame = PROTO_HARD_MAX_FRAME;
    c->reader = proto_reader_new(&limits);
    if (!c->reader) {
        free(c);
        return NULL;
    }
    c->fd = fd;
    proto_buf_init(&c->out);
    proto_buf_init(&c->scratch);
    return c;
}

struct conn *conn_adopt(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    struct conn *c;

    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    c = conn_alloc(fd);
    if (!c)
        close(fd);
    return c;
}

int conn_open(const char *path, enum conn_path_source source, struct conn **out, char *msg,
              size_t size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, err;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        err = ENAMETOOLONG;
        goto fail;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = errno;
        goto fail;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        err = errno;
        close(fd);
        goto fail;
    }
    *out = conn_adopt(fd);
    if (!*out) {
        snprintf(msg, size, "out of memory");
        return -ENOMEM;
    }
    return 0;

fail:
    conn_explain_error(path, source, err, stat(path, &st) == 0 ? &st : NULL, msg, size);
    return -err;
}

void conn_free(struct conn *c)
{
    if (!c)
        return;
    close(c->fd);
    proto_reader_free(c->reader);
    proto_buf_free(&c->out);
    proto_buf_free(&c->scratch);
    free(c);
}

int conn_fd(const struct conn *c)
{
    return c->fd;
}

size_t conn_pending_out(const struct conn *c)
{
    return c->out.len;
}

int conn_flush(struct conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            c->sys_errno = errno;
            return -errno;
        }
        proto_buf_consume(&c->out, (size_t)n);
    }
    return 0;
}

int conn_send_raw(struct conn *c, const void *data, size_t len)
{
    int rc = proto_buf_append(&c->out, data, len);

    if (rc < 0)
        return rc;
    rc = conn_flush(c);
    return rc < 0 ? rc : 0;
}

int conn_send_msg(struct conn *c, const struct proto_msg *m)
{
    int rc;

    proto_buf_reset(&c->scratch);
    rc = proto_msg_encode(&c->scratch, m, PROTO_HARD_MAX_FRAME);
    if (rc < 0)
        return rc;
    return conn_send_raw(c, c->scratch.data, c->scratch.len);
}

ssize_t conn_read(struct conn *c)
{
    void *space;
    size_t len;
    ssize_t n;

    if (proto_reader_space(c->reader, CONN_READ_CHUNK, &space, &len) < 0)
        return PROTO_E_NOMEM;
    do {
        n = read(c->fd, space, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            c->sys_errno = errno;
        return -errno;
    }
    proto_reader_commit(c->reader, (size_t)n);
    return n;
}

int conn_next(struct conn *c, struct proto_span *frame)
{
    return proto_reader_next(c->reader, frame);
}

const char *conn_reader_error(const struct conn *c)
{
    const char *why = proto_reader_error(c->reader);
    return why ? why : "bad frame";
}

const char *conn_gone_reason(const struct conn *c)
{
    return c->sys_errno ? strerror(c->sys_errno) : "the broker closed the connection";
}

static int poll_timeout(uint64_t deadline_ms)
{
    uint64_t now;

    if (deadline_ms == 0)
        return -1;
    now = inspect_mono_ms();
    if (now >= deadline_ms)
        return 0;
    return deadline_ms - now > 0x7fffffff ? 0x7fffffff : (int)(deadline_ms - now);
}

int conn_wait_frame(struct conn *c, uint64_t deadline_ms, struct proto_span *frame)
{
    for (;;) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        ssize_t n;
        int rc = conn_next(c, frame);

        if (rc != 0)
            return rc;
        rc = conn_flush(c);
        if (rc < 0)
            return PROTO_E_BROKER_GONE;
        if (rc > 0)
            pfd.events |= POLLOUT;
        rc = poll(&pfd, 1, poll_timeout(deadline_ms));
        if (rc < 0 && errno != EINTR)
            return PROTO_E_INTERNAL;
        if (rc == 0)
            return PROTO_E_TIMEOUT;
        if (rc < 0)
            continue;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            n = conn_read(c);
            if (n == 0 || (n < 0 && n != -EAGAIN))
                return n == PROTO_E_NOMEM ? PROTO_E_NOMEM : PROTO_E_BROKER_GONE;
        }
    }
}

/* Text of a string span for printf("%.*s"). */
#define SPAN_ARGS(s) (int)(s).len, (const char *)(s).ptr

static int error_frame_code(const struct proto_msg *m, char *msg, size_t size, const char *what)
{
    int code = proto_msg_has(m, PROTO_F_CODE)
                   ? proto_error_from_name((const char *)m->code.ptr, m->code.len)
                   : 0;
    snprintf(msg, size, "%s: %.*s: %.*s", what, SPAN_ARGS(m->code), SPAN_ARGS(m->message));
    return code ? code : PROTO_E_BAD_REQUEST; /* a code this build does not know */
}

static int wait_error_text(struct conn *c, int rc, const char *what, char *msg, size_t size)
{
    if (rc == PROTO_E_TIMEOUT)
        snprintf(msg, size, "timed out waiting for %s", what);
    else if (rc == PROTO_E_BROKER_GONE)
        snprintf(msg, size, "%s while waiting for %s", conn_gone_reason(c), what);
    else
        snprintf(msg, size, "while waiting for %s: %s", what,
                 rc == PROTO_E_NOMEM ? "out of memory" : conn_reader_error(c));
    return rc;
}

void conn_hello_msg(const char *name, struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->op = PROTO_OP_HELLO;
    m->fields = PROTO_F_MIN_VERSION | PROTO_F_MAX_VERSION;
    m->min_version = PROTO_VERSION_MIN;
    m->max_version = PROTO_VERSION_MAX;
    if (name && *name) {
        m->fields |= PROTO_F_NAME;
        m->name = proto_span_str(name, (uint32_t)strlen(name));
    }
}

int conn_hello(struct conn *c, const char *name, uint64_t deadline_ms, struct proto_span *welcome,
               struct proto_msg *m, char *msg, size_t size)
{
    struct proto_msg hello;
    const char *why = NULL;
    int rc;

    conn_hello_msg(name, &hello);
    rc = conn_send_msg(c, &hello);
    if (rc == PROTO_E_NOMEM) {
        snprintf(msg, size, "cannot send hello: out of memory");
        return rc;
    }
    bool sent = rc == 0; /* a broker that refuses us may close before reading */
    for (;;) {
        rc = sent ? conn_wait_frame(c, deadline_ms, welcome) : PROTO_E_BROKER_GONE;
        if (rc == PROTO_E_BROKER_GONE) {
            snprintf(msg, size,
                     "%s before answering hello\n  hint: the broker refuses peers whose uid or "
                     "gid it does not allow (see its configuration and log)",
                     conn_gone_reason(c));
            return rc;
        }
        if (rc == PROTO_E_BAD_FRAME)
            continue;
        if (rc < 0)
            return wait_error_text(c, rc, "the welcome", msg, size);
        memset(m, 0, sizeof(*m));
        if (proto_msg_decode(welcome, m, &why) < 0)
            continue; /* not a frame we understand; the welcome comes next */
        if (m->op == PROTO_OP_WELCOME)
            return 0;
        if (m->op == PROTO_OP_ERROR)
            return error_frame_code(m, msg, size, "the broker refused hello");
    }
}

int conn_call_simple(struct conn *c, enum proto_op op, uint64_t id, uint64_t deadline_ms,
                     void (*on_other)(void *ctx, const struct proto_span *frame), void *ctx,
                     struct proto_span *answer, struct proto_msg *m, char *msg, size_t size)
{
    struct proto_msg req = {.op = op, .fields = PROTO_F_ID, .id = id};
    const char *why = NULL;
    const char *name = proto_op_name(op);
    char what[64];
    int rc;

    snprintf(what, sizeof(what), "the answer to %s", name ? name : "the request");
    rc = conn_send_msg(c, &req);
    if (rc < 0) {
        snprintf(msg, size, "cannot send %s: %s", name ? name : "the request",
                 rc == PROTO_E_NOMEM ? "out of memory" : conn_gone_reason(c));
        return rc == PROTO_E_NOMEM ? rc : PROTO_E_BROKER_GONE;
    }
    for (;;) {
        rc = conn_wait_frame(c, deadline_ms, answer);
        if (rc == PROTO_E_BAD_FRAME)
            continue;
        if (rc < 0)
            return wait_error_text(c, rc, what, msg, size);
        memset(m, 0, sizeof(*m));
        if (proto_msg_decode(answer, m, &why) == 0) {
            bool same_id = proto_msg_has(m, PROTO_F_ID) && m->id == id;
            if ((m->op == PROTO_OP_RESULT || m->op == PROTO_OP_PONG) && same_id)
                return 0;
            /* From protocol version 2 on an error frame (it has `about`)
             * never answers a request; one without an id is about a frame
             * that could not be read, ours. */
            if (m->op == PROTO_OP_ERROR &&
                ((same_id && !proto_msg_has(m, PROTO_F_ABOUT)) || !proto_msg_has(m, PROTO_F_ID)))
                return 0;
        }
        if (on_other)
            on_other(ctx, answer);
    }
}
