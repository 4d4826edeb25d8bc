/* The broker connection: default path rules, the error explanations,
 * connect failures of each kind, frame I/O over a socket pair, hello and
 * the simple request-answer helper against a scripted peer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/paths.h"
#include "proto/reader.h"
#include "util.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-inspect-conn-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void append_msg(struct proto_buf *out, const struct proto_msg *m)
{
    assert_int_equal(proto_msg_encode(out, m, PROTO_DEFAULT_MAX_FRAME), 0);
}

static void write_msg(int fd, const struct proto_msg *m)
{
    struct proto_buf b = PROTO_BUF_INIT;
    append_msg(&b, m);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    proto_buf_free(&b);
}

/* Reads one whole frame the conn wrote to the other end and decodes it. */
static void read_msg(int fd, struct proto_reader *r, struct proto_msg *m)
{
    struct proto_span f;
    const char *why;
    uint8_t buf[4096];
    int rc;

    while ((rc = proto_reader_next(r, &f)) == 0) {
        ssize_t n = read(fd, buf, sizeof(buf));
        assert_true(n > 0);
        assert_int_equal(proto_reader_feed(r, buf, (size_t)n), 0);
    }
    assert_int_equal(rc, 1);
    memset(m, 0, sizeof(*m));
    assert_int_equal(proto_msg_decode(&f, m, &why), 0);
}

static bool span_is(struct proto_span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

static void test_default_path(void **state)
{
    enum conn_path_source src;
    char buf[256];
    char *saved_xdg = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;

    setenv("VOLT_BROKER_SOCKET", "/tmp/x/broker.sock", 1);
    assert_int_equal(conn_default_path(buf, sizeof(buf), &src), 0);
    assert_string_equal(buf, "/tmp/x/broker.sock");
    assert_int_equal(src, CONN_PATH_ENV);
    assert_int_equal(conn_default_path(buf, 8, &src), -ENAMETOOLONG);

    /* Empty counts as unset; then the client rule of proto/paths.h (a
     * per-user socket when one exists, else the system socket), and the
     * source says which. No per-user socket exists under this runtime dir. */
    setenv("VOLT_BROKER_SOCKET", "", 1);
    setenv("XDG_RUNTIME_DIR", "/nonexistent/run/user/4242", 1);
    assert_int_equal(conn_default_path(buf, sizeof(buf), &src), 0);
    assert_string_equal(buf, PROTO_ROOT_SOCKET);
    assert_int_equal(src, CONN_PATH_ROOT);
    char want[256];
    assert_int_equal(proto_client_socket_path(want, sizeof(want)), 0);
    assert_string_equal(buf, want);
    unsetenv("VOLT_BROKER_SOCKET");
    if (saved_xdg)
        setenv("XDG_RUNTIME_DIR", saved_xdg, 1);
    else
        unsetenv("XDG_RUNTIME_DIR");
    free(saved_xdg);
}

static void test_explain_errors(void **state)
{
    char msg[1024];
    struct stat st = {.st_mode = S_IFSOCK | 0660, .st_uid = 0, .st_gid = 0};
    struct stat reg = {.st_mode = S_IFREG | 0644};

    conn_explain_error("/run/volt/broker.sock", CONN_PATH_ROOT, ENOENT, NULL, msg, sizeof(msg));
    assert_non_null(strstr(msg, "cannot connect to /run/volt/broker.sock (the default: the system "
                                "broker's socket)"));
    assert_non_null(strstr(msg, strerror(ENOENT)));
    assert_non_null(strstr(msg, "hint: is volt-broker running?"));

    conn_explain_error("/x.sock", CONN_PATH_XDG, ENOENT, NULL, msg, sizeof(msg));
    assert_non_null(strstr(msg, "$XDG_RUNTIME_DIR"));
    assert_non_null(strstr(msg, "the system broker listens on /run/volt/broker.sock"));

    conn_explain_error("/x.sock", CONN_PATH_ARGUMENT, EACCES, &st, msg, sizeof(msg));
    assert_non_null(strstr(msg, strerror(EACCES)));
    assert_non_null(strstr(msg, "mode 0660"));
    assert_non_null(strstr(msg, "be in group root"));
    assert_non_null(strstr(msg, "usermod -aG root"));

    conn_explain_error("/x.sock", CONN_PATH_ARGUMENT, EACCES, NULL, msg, sizeof(msg));
    assert_non_null(strstr(msg, "not accessible"));

    conn_explain_error("/x.sock", CONN_PATH_ENV, ECONNREFUSED, &st, msg, sizeof(msg));
    assert_non_null(strstr(msg, "(from $VOLT_BROKER_SOCKET)"));
    assert_non_null(strstr(msg, "nobody listens"));

    conn_explain_error("/etc/passwd", CONN_PATH_ARGUMENT, ECONNREFUSED, &reg, msg, sizeof(msg));
    assert_non_null(strstr(msg, "/etc/passwd exists but is not a socket"));

    /* No hint for an error without a usual cause. */
    conn_explain_error("/x.sock", CONN_PATH_ARGUMENT, EIO, NULL, msg, sizeof(msg));
    assert_null(strstr(msg, "hint"));
}

static void test_open_failures(void **state)
{
    char path[96], msg[1024], longpath[200];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct conn *c = NULL;
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "%s/missing.sock", tmpdir);
    assert_int_equal(conn_open(path, CONN_PATH_ARGUMENT, &c, msg, sizeof(msg)), -ENOENT);
    assert_null(c);
    assert_non_null(strstr(msg, path));

    /* A regular file where the socket should be. */
    snprintf(path, sizeof(path), "%s/file", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(conn_open(path, CONN_PATH_ARGUMENT, &c, msg, sizeof(msg)), -ECONNREFUSED);
    assert_non_null(strstr(msg, "is not a socket"));

    /* A stale socket: bound once, nobody listening. */
    snprintf(path, sizeof(path), "%s/stale.sock", tmpdir);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    assert_int_equal(conn_open(path, CONN_PATH_ARGUMENT, &c, msg, sizeof(msg)), -ECONNREFUSED);
    assert_non_null(strstr(msg, "nobody listens"));

    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(conn_open(longpath, CONN_PATH_ARGUMENT, &c, msg, sizeof(msg)), -ENAMETOOLONG);
    assert_non_null(strstr(msg, "shorter than"));
}

static void test_open_and_talk(void **state)
{
    char path[96], msg[256];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct proto_reader *r = proto_reader_new(NULL);
    struct proto_msg ping = {.op = PROTO_OP_PING, .fields = PROTO_F_ID, .id = 9}, m;
    struct conn *c = NULL;
    int lfd, peer;

    snprintf(path, sizeof(path), "%s/live.sock", tmpdir);
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(conn_open(path, CONN_PATH_ARGUMENT, &c, msg, sizeof(msg)), 0);
    peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);

    assert_int_equal(conn_send_msg(c, &ping), 0);
    assert_int_equal(conn_pending_out(c), 0);
    read_msg(peer, r, &m);
    assert_int_equal(m.op, PROTO_OP_PING);
    assert_int_equal(m.id, 9);

    conn_free(c);
    close(peer);
    close(lfd);
    proto_reader_free(r);
}

/* Frames split across writes come out whole; several in one write come
 * out one by one; EOF is BROKER_GONE; a timeout is TIMEOUT. */
static void test_wait_frame(void **state)
{
    int sv[2];
    struct proto_buf b = PROTO_BUF_INIT;
    struct proto_msg pong = {.op = PROTO_OP_PONG, .fields = PROTO_F_ID, .id = 1}, m;
    struct proto_span f;
    const char *why;
    struct conn *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = conn_adopt(sv[0]);
    assert_non_null(c);

    assert_int_equal(conn_wait_frame(c, inspect_mono_ms() + 30, &f), PROTO_E_TIMEOUT);

    append_msg(&b, &pong);
    pong.id = 2;
    append_msg(&b, &pong);
    assert_int_equal(write(sv[1], b.data, 3), 3);
    assert_int_equal(conn_wait_frame(c, inspect_mono_ms() + 30, &f), PROTO_E_TIMEOUT);
    assert_int_equal(write(sv[1], b.data + 3, b.len - 3), (ssize_t)(b.len - 3));
    for (uint64_t id = 1; id <= 2; id++) {
        assert_int_equal(conn_wait_frame(c, inspect_mono_ms() + 1000, &f), 1);
        assert_int_equal(proto_msg_decode(&f, &m, &why), 0);
        assert_int_equal(m.op, PROTO_OP_PONG);
        assert_int_equal(m.id, id);
    }
    /* A body that is not a map: recoverable, the stream goes on. */
    assert_int_equal(write(sv[1], "\0\0\0\1\x01", 5), 5);
    assert_int_equal(conn_wait_frame(c, inspect_mono_ms() + 1000, &f), PROTO_E_BAD_FRAME);

    close(sv[1]);
    assert_int_equal(conn_wait_frame(c, inspect_mono_ms() + 1000, &f), PROTO_E_BROKER_GONE);
    assert_string_equal(conn_gone_reason(c), "the broker closed the connection");
    conn_free(c);
    proto_buf_free(&b);
}

static void test_hello_welcome(void **state)
{
    int sv[2];
    struct proto_reader *r = proto_reader_new(NULL);
    const char *name = "volt-broker/0.1.0";
    struct proto_msg welcome = {.op = PROTO_OP_WELCOME,
                                .fields = PROTO_F_VERSION | PROTO_F_MAX_FRAME | PROTO_F_NAME,
                                .version = 1,
                                .max_frame = 1024,
                                .name = proto_span_str(name, (uint32_t)strlen(name))};
    struct proto_msg m, hello;
    struct proto_span body;
    char msg[512];
    struct conn *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = conn_adopt(sv[0]);
    write_msg(sv[1], &welcome); /* the peer answers before being asked */
    assert_int_equal(conn_hello(c, "tester", inspect_mono_ms() + 1000, &body, &m, msg, sizeof(msg)),
                     0);
    assert_int_equal(m.op, PROTO_OP_WELCOME);
    assert_int_equal(m.max_frame, 1024);
    read_msg(sv[1], r, &hello);
    assert_int_equal(hello.op, PROTO_OP_HELLO);
    assert_int_equal(hello.min_version, PROTO_VERSION_MIN);
    assert_int_equal(hello.max_version, PROTO_VERSION_MAX);
    assert_true(span_is(hello.name, "tester"));
    conn_free(c);
    close(sv[1]);
    proto_reader_free(r);
}

static void test_hello_refused(void **state)
{
    int sv[2];
    const char *code = "VersionMismatch", *text = "no common version";
    struct proto_msg err = {.op = PROTO_OP_ERROR,
                            .fields = PROTO_F_CODE | PROTO_F_MESSAGE,
                            .code = proto_span_str(code, (uint32_t)strlen(code)),
                            .message = proto_span_str(text, (uint32_t)strlen(text))};
    struct proto_msg m;
    struct proto_span body;
    char msg[512];
    struct conn *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = conn_adopt(sv[0]);
    write_msg(sv[1], &err);
    assert_int_equal(conn_hello(c, NULL, inspect_mono_ms() + 1000, &body, &m, msg, sizeof(msg)),
                     PROTO_E_VERSION_MISMATCH);
    assert_non_null(strstr(msg, "VersionMismatch: no common version"));
    conn_free(c);
    close(sv[1]);

    /* Closed at once: the uid is not allowed. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = conn_adopt(sv[0]);
    close(sv[1]);
    assert_int_equal(conn_hello(c, NULL, inspect_mono_ms() + 1000, &body, &m, msg, sizeof(msg)),
                     PROTO_E_BROKER_GONE);
    assert_non_null(strstr(msg, "before answering hello"));
    assert_non_null(strstr(msg, "hint:"));
    conn_free(c);

    /* Silence: a timeout. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = conn_adopt(sv[0]);
    assert_int_equal(conn_hello(c, NULL, inspect_mono_ms() + 30, &body, &m, msg, sizeof(msg)),
                     PROTO_E_TIMEOUT);
    assert_non_null(strstr(msg, "timed out"));
    conn_free(c);
    close(sv[1]);
}

struct others {
    int count;
    enum proto_op last;
};

static void count_other(void *ctx, const struct proto_span *frame)
{
    struct others *o = ctx;
    struct proto_msg m;
    const char *why;

    assert_int_equal(proto_msg_decode(frame, &m, &why), 0);
    o->count++;
    o->last = m.op;
}

static void test_call_simple(void **state)
{
    int sv[2];
    const char *ev = "connected";
    struct proto_msg event = {.op = PROTO_OP_EVENT,
                              .fields = PROTO_F_EVENT,
                              .event = proto_span_str(ev, (uint32_t)strlen(ev))};
    struct proto_msg other_result = {
        .op = PROTO_OP_RESULT, .fields = PROTO_F_ID | PROTO_F_OK, .id = 6, .ok = true};
    struct proto_msg result = {
        .op = PROTO_OP_RESULT, .fields = PROTO_F_ID | PROTO_F_OK, .id = 7, .ok = true};
    struct proto_reader *r = proto_reader_new(NULL);
    struct others others = {0};
    struct proto_msg m, sent;
    struct proto_span answer;
    char msg[256];
    struct conn *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = conn_adopt(sv[0]);
    write_msg(sv[1], &event);
    write_msg(sv[1], &other_result);
    write_msg(sv[1], &result);
    assert_int_equal(conn_call_simple(c, PROTO_OP_STATUS, 7, inspect_mono_ms() + 1000, count_other,
                                      &others, &answer, &m, msg, sizeof(msg)),
                     0);
    assert_int_equal(m.op, PROTO_OP_RESULT);
    assert_int_equal(m.id, 7);
    assert_int_equal(others.count, 2);
    assert_int_equal(others.last, PROTO_OP_RESULT);
    read_msg(sv[1], r, &sent);
    assert_int_equal(sent.op, PROTO_OP_STATUS);
    assert_int_equal(sent.id, 7);

    /* Nothing more comes: timeout, with a message naming the op. */
    assert_int_equal(conn_call_simple(c, PROTO_OP_MONITOR, 8, inspect_mono_ms() + 30, NULL, NULL,
                                      &answer, &m, msg, sizeof(msg)),
                     PROTO_E_TIMEOUT);
    assert_non_null(strstr(msg, "monitor"));
    conn_free(c);
    close(sv[1]);
    proto_reader_free(r);
}

/* A peer that stops reading: the queue holds what the socket would not
 * take, conn_flush reports it, and it drains once the peer reads. */
static void test_send_backlog(void **state)
{
    int sv[2];
    static uint8_t chunk[65536];
    uint8_t sink[65536];
    size_t sent = 0, got = 0;
    struct conn *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c = conn_adopt(sv[0]);
    while (conn_pending_out(c) == 0) {
        assert_int_equal(conn_send_raw(c, chunk, sizeof(chunk)), 0);
        sent += sizeof(chunk);
        assert_true(sent < (64u << 20));
    }
    assert_int_equal(conn_flush(c), 1);
    while (got < sent) {
        ssize_t n = read(sv[1], sink, sizeof(sink));
        assert_true(n > 0);
        got += (size_t)n;
        assert_true(conn_flush(c) >= 0);
    }
    assert_int_equal(conn_pending_out(c), 0);
    close(sv[1]);
    assert_true(conn_send_raw(c, chunk, 1) < 0);
    conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_path),  cmocka_unit_test(test_explain_errors),
        cmocka_unit_test(test_open_failures), cmocka_unit_test(test_open_and_talk),
        cmocka_unit_test(test_wait_frame),    cmocka_unit_test(test_hello_welcome),
        cmocka_unit_test(test_hello_refused), cmocka_unit_test(test_call_simple),
        cmocka_unit_test(test_send_backlog),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
