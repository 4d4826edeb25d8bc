/* The fake broker of the client-lib tests; see fake-broker.h. */
#include "fake-broker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/limits.h"
#include "proto/reader.h"

static struct fb_thread *the_thread;

void fb_fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (the_thread) {
        /* cmocka cannot fail a test from another thread: die loudly. */
        fprintf(stderr, "fake broker (thread): %s\n", msg);
        abort();
    }
    fail_msg("%s", msg);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool span_eq_str(struct proto_span s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && (n == 0 || memcmp(s.ptr, str, n) == 0);
}

void fb_listen(struct fb *fb)
{
    fb->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FB_CHECK(fb->lfd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    FB_CHECK(strlen(fb->path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, fb->path, strlen(fb->path) + 1);
    unlink(fb->path);
    FB_CHECK(bind(fb->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    FB_CHECK(listen(fb->lfd, 16) == 0);
}

struct fb *fb_new(void)
{
    struct fb *fb = calloc(1, sizeof *fb);
    FB_CHECK((fb) != NULL);
    snprintf(fb->dir, sizeof fb->dir, "/tmp/volt-test-XXXXXX");
    FB_CHECK((mkdtemp(fb->dir)) != NULL);
    snprintf(fb->path, sizeof fb->path, "%s/broker.sock", fb->dir);
    fb->cfd = -1;
    proto_buf_init(&fb->frame);
    fb_listen(fb);
    return fb;
}

void fb_stop_listening(struct fb *fb)
{
    if (fb->lfd >= 0)
        close(fb->lfd);
    fb->lfd = -1;
    unlink(fb->path);
}

void fb_close_conn(struct fb *fb)
{
    if (fb->cfd >= 0)
        close(fb->cfd);
    fb->cfd = -1;
    proto_reader_free(fb->reader);
    fb->reader = NULL;
}

void fb_free(struct fb *fb)
{
    if (!fb)
        return;
    fb_close_conn(fb);
    fb_stop_listening(fb);
    rmdir(fb->dir);
    proto_buf_free(&fb->frame);
    free(fb);
}

void fb_set_pump(struct fb *fb, void (*pump)(void *), void *arg)
{
    fb->pump = pump;
    fb->pump_arg = arg;
}

/* Polls fd for `events` for up to 2 ms, pumping the client between polls,
 * until ready or the deadline. */
static bool wait_fd(struct fb *fb, int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int slice = fb->pump ? 2 : 50;
        if (poll(&p, 1, slice) > 0)
            return true;
        if (now_ms() >= deadline)
            return false;
        if (fb->pump)
            fb->pump(fb->pump_arg);
    }
}

bool fb_accept(struct fb *fb, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    if (fb->lfd < 0 || !wait_fd(fb, fb->lfd, POLLIN, deadline))
        return false;
    int fd = accept4(fb->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return false;
    fb_close_conn(fb);
    fb->cfd = fd;
    fb->reader = proto_reader_new(NULL);
    FB_CHECK((fb->reader) != NULL);
    fb->accepted++;
    return true;
}

/* 1 frame, 0 timeout, -1 EOF. */
static int recv_frame(struct fb *fb, struct proto_msg *m, int timeout_ms)
{
    FB_CHECK(fb->cfd >= 0);
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        struct proto_span frame;
        int rc = proto_reader_next(fb->reader, &frame);
        FB_CHECK(rc >= 0);
        if (rc == 1) {
            proto_buf_reset(&fb->frame);
            FB_CHECK(proto_buf_append(&fb->frame, frame.ptr, frame.len) == 0);
            struct proto_span copy = {fb->frame.data, (uint32_t)fb->frame.len};
            const char *why = NULL;
            int drc = proto_msg_decode(&copy, m, &why);
            if (drc == 0)
                drc = proto_msg_check(m, &why);
            if (drc != 0)
                fb_fail("client sent a bad frame: %s", why ? why : "?");
            return 1;
        }
        if (!wait_fd(fb, fb->cfd, POLLIN, deadline))
            return 0;
        void *space;
        size_t len;
        FB_CHECK(proto_reader_space(fb->reader, 4096, &space, &len) == 0);
        ssize_t n = read(fb->cfd, space, len);
        if (n <= 0)
            return -1;
        proto_reader_commit(fb->reader, (size_t)n);
    }
}

bool fb_recv(struct fb *fb, struct proto_msg *m, int timeout_ms)
{
    return recv_frame(fb, m, timeout_ms) == 1;
}

void fb_expect(struct fb *fb, enum proto_op op, struct proto_msg *m)
{
    if (!fb_recv(fb, m, 3000))
        fb_fail("expected a %s frame, got nothing", proto_op_name(op));
    if (m->op != op)
        fb_fail("expected a %s frame, got %s", proto_op_name(op), proto_op_name(m->op));
}

bool fb_quiet(struct fb *fb, int ms)
{
    struct proto_msg m;
    return recv_frame(fb, &m, ms) == 0;
}

bool fb_eof(struct fb *fb, int ms)
{
    struct proto_msg m;
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        int rc = recv_frame(fb, &m, left > 0 ? left : 0);
        if (rc < 0)
            return true;
        if (rc == 0)
            return false;
    }
}

void fb_send_raw(struct fb *fb, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t n = write(fb->cfd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        FB_CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

void fb_encode(struct proto_buf *out, const struct proto_msg *m)
{
    FB_CHECK(proto_msg_encode(out, m, PROTO_HARD_MAX_FRAME) == 0);
}

void fb_send(struct fb *fb, const struct proto_msg *m)
{
    struct proto_buf b = PROTO_BUF_INIT;
    fb_encode(&b, m);
    fb_send_raw(fb, b.data, b.len);
    proto_buf_free(&b);
}

void fb_welcome(struct fb *fb, const char *state)
{
    struct proto_msg w;
    memset(&w, 0, sizeof w);
    w.op = PROTO_OP_WELCOME;
    w.fields = PROTO_F_VERSION | PROTO_F_MAX_FRAME | PROTO_F_NAME | PROTO_F_STATE;
    w.version = 1;
    w.max_frame = PROTO_DEFAULT_MAX_FRAME;
    w.name = proto_span_str("fake-broker/0.0.1", 17);
    w.state = proto_span_str(state, (uint32_t)strlen(state));
    fb_send(fb, &w);
}

void fb_welcome_msg(struct fb *fb, struct proto_msg *w)
{
    w->op = PROTO_OP_WELCOME;
    if (!proto_msg_has(w, PROTO_F_VERSION)) {
        w->fields |= PROTO_F_VERSION;
        w->version = 2;
    }
    if (!proto_msg_has(w, PROTO_F_MAX_FRAME)) {
        w->fields |= PROTO_F_MAX_FRAME;
        w->max_frame = PROTO_DEFAULT_MAX_FRAME;
    }
    if (!proto_msg_has(w, PROTO_F_NAME)) {
        w->fields |= PROTO_F_NAME;
        w->name = proto_span_str("fake-broker/0.0.2", 17);
    }
    fb_send(fb, w);
}

void fb_event_msg(struct fb *fb, struct proto_msg *e)
{
    e->op = PROTO_OP_EVENT;
    fb_send(fb, e);
}

void fb_handshake(struct fb *fb, const char *state)
{
    if (!fb_accept(fb, 3000))
        fb_fail("client did not connect");
    struct proto_msg m;
    fb_expect(fb, PROTO_OP_HELLO, &m);
    FB_CHECK((m.min_version) == (PROTO_VERSION_MIN));
    FB_CHECK((m.max_version) == (PROTO_VERSION_MAX));
    fb_welcome(fb, state);
}

void fb_result_ok(struct fb *fb, uint64_t id, const void *data, size_t len)
{
    struct proto_msg r;
    memset(&r, 0, sizeof r);
    r.op = PROTO_OP_RESULT;
    r.fields = PROTO_F_ID | PROTO_F_OK;
    r.id = id;
    r.ok = true;
    if (data) {
        r.fields |= PROTO_F_DATA;
        r.data = (struct proto_span){data, (uint32_t)len};
    }
    fb_send(fb, &r);
}

void fb_result_err(struct fb *fb, uint64_t id, const char *code, const char *message)
{
    struct proto_msg r;
    memset(&r, 0, sizeof r);
    r.op = PROTO_OP_RESULT;
    r.fields = PROTO_F_ID | PROTO_F_OK | PROTO_F_CODE | PROTO_F_MESSAGE;
    r.id = id;
    r.ok = false;
    r.code = proto_span_str(code, (uint32_t)strlen(code));
    r.message = proto_span_str(message, (uint32_t)strlen(message));
    fb_send(fb, &r);
}

void fb_event(struct fb *fb, const char *event, const char *state, const char *reason)
{
    struct proto_msg e;
    memset(&e, 0, sizeof e);
    e.op = PROTO_OP_EVENT;
    e.fields = PROTO_F_EVENT;
    e.event = proto_span_str(event, (uint32_t)strlen(event));
    if (state) {
        e.fields |= PROTO_F_STATE;
        e.state = proto_span_str(state, (uint32_t)strlen(state));
    }
    if (reason) {
        e.fields |= PROTO_F_REASON;
        e.reason = proto_span_str(reason, (uint32_t)strlen(reason));
    }
    fb_send(fb, &e);
}

/* --- thread mode --- */

struct fb_thread {
    pthread_t tid;
    struct fb *fb;
    void (*script)(struct fb *, void *);
    void *arg;
};

static void *thread_main(void *p)
{
    struct fb_thread *t = p;
    t->script(t->fb, t->arg);
    return NULL;
}

void fb_thread_start(struct fb *fb, void (*script)(struct fb *, void *), void *arg)
{
    FB_CHECK((the_thread) == NULL);
    the_thread = calloc(1, sizeof *the_thread);
    FB_CHECK((the_thread) != NULL);
    the_thread->fb = fb;
    the_thread->script = script;
    the_thread->arg = arg;
    fb->pump = NULL;
    FB_CHECK(pthread_create(&the_thread->tid, NULL, thread_main, the_thread) == 0);
}

void fb_thread_join(struct fb *fb)
{
    FB_CHECK((the_thread) != NULL);
    pthread_join(the_thread->tid, NULL);
    free(the_thread);
    the_thread = NULL;
}
