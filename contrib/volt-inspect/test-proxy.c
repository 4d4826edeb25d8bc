/* The interposer against fake peers: bytes arrive unchanged both ways
 * whatever the split, every frame is printed once in order (text and JSON
 * envelopes), a bad frame is shown and still forwarded, a stream that can
 * no longer be followed is still forwarded, half closes pass through,
 * a big frame survives partial writes, and the listener replaces a stale
 * socket, refuses a live one, and drops clients when the broker is down. */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/msg.h"
#include "proxy.h"
#include "util.h"

/* 2026-11-28T04:00:00.123456Z */
#define T_US        (1795838400ull * 1000000u + 123456u)
#define T_TEXT      "2026-11-28T04:00:00.123456Z"
#define PUMP_ROUNDS 500

static uint64_t fixed_clock(void)
{
    return T_US;
}

struct fixture {
    struct proxy *p;
    int client; /* the test's end of the client connection */
    int broker; /* the test's end of the broker connection */
    char *out;  /* what the proxy printed */
    size_t out_len;
    FILE *out_f;
    char dir[64];
};

static int setup_pair(void **state, bool json)
{
    static struct fixture f;
    struct proxy_opts opts = {.now_us = fixed_clock, .json = json};
    int cs[2], bs[2];
    char msg[256];

    memset(&f, 0, sizeof(f));
    f.out_f = open_memstream(&f.out, &f.out_len);
    opts.out = f.out_f;
    if (proxy_new(&opts, &f.p, msg, sizeof(msg)) < 0)
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, cs) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, bs) < 0)
        return -1;
    f.client = cs[0];
    f.broker = bs[1];
    fcntl(f.client, F_SETFL, O_NONBLOCK);
    fcntl(f.broker, F_SETFL, O_NONBLOCK);
    if (proxy_adopt(f.p, cs[1], bs[0]) != 1)
        return -1;
    *state = &f;
    return 0;
}

static int setup_text(void **state)
{
    return setup_pair(state, false);
}

static int setup_json(void **state)
{
    return setup_pair(state, true);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    proxy_free(f->p);
    if (f->client >= 0)
        close(f->client);
    if (f->broker >= 0)
        close(f->broker);
    fclose(f->out_f);
    free(f->out);
    return 0;
}

/* What the proxy printed so far, as a string. */
static const char *output(struct fixture *f)
{
    fflush(f->out_f);
    return f->out ? f->out : "";
}

/* A text line as trace_format makes it: time, who (padded), detail. */
static const char *text_line(char *buf, size_t size, const char *who, const char *detail)
{
    snprintf(buf, size, T_TEXT "  %-32s  %s", who, detail);
    return buf;
}

/* "c1 NAME[PID] REST" for this process (NAME "" : "c1 [PID] REST"). */
static const char *me(const char *name, const char *rest)
{
    static char buf[4][128];
    static int next;
    char *b = buf[next++ % 4];

    snprintf(b, sizeof(buf[0]), "c1 %s[%d]%s%s", name, (int)getpid(), rest[0] ? " " : "", rest);
    return b;
}

/* Line n (0-based) of the output into buf, without the newline. */
static const char *output_line(struct fixture *f, int n, char *buf, size_t size)
{
    const char *s = output(f);

    for (int i = 0; i < n && s; i++) {
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    assert_non_null(s);
    const char *end = strchr(s, '\n');
    assert_non_null(end);
    snprintf(buf, size, "%.*s", (int)(end - s), s);
    return buf;
}

static int count_lines(struct fixture *f)
{
    int n = 0;
    for (const char *s = output(f); *s; s++)
        n += *s == '\n';
    return n;
}

static void write_all(int fd, const void *data, size_t len)
{
    assert_int_equal(write(fd, data, len), (ssize_t)len);
}

/* Runs the proxy until `want` bytes have been read from fd (appended to
 * got). */
static void pump_read(struct fixture *f, int fd, size_t want, struct proto_buf *got)
{
    for (int i = 0; i < PUMP_ROUNDS && got->len < want; i++) {
        uint8_t buf[65536];
        ssize_t n;
        assert_int_equal(proxy_run_once(f->p, 10), 0);
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            proto_buf_append(got, buf, (size_t)n);
    }
    assert_int_equal(got->len, want);
}

/* Runs the proxy until fd reads end of stream. */
static void pump_eof(struct fixture *f, int fd)
{
    for (int i = 0; i < PUMP_ROUNDS; i++) {
        uint8_t buf[256];
        assert_int_equal(proxy_run_once(f->p, 10), 0);
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0)
            return;
        assert_true(n < 0 && errno == EAGAIN);
    }
    fail_msg("no end of stream");
}

static void pump_until_closed(struct fixture *f)
{
    for (int i = 0; i < PUMP_ROUNDS && proxy_session_count(f->p) > 0; i++)
        assert_int_equal(proxy_run_once(f->p, 10), 0);
    assert_int_equal(proxy_session_count(f->p), 0);
}

static void frame_of(struct proto_buf *out, const struct proto_msg *m)
{
    assert_int_equal(proto_msg_encode(out, m, PROTO_DEFAULT_MAX_FRAME), 0);
}

static void hello_frame(struct proto_buf *out)
{
    struct proto_msg hello = {.op = PROTO_OP_HELLO,
                              .fields = PROTO_F_MIN_VERSION | PROTO_F_MAX_VERSION | PROTO_F_NAME,
                              .min_version = 1,
                              .max_version = 1,
                              .name = proto_span_str("t", 1)};
    frame_of(out, &hello);
}

static void welcome_frame(struct proto_buf *out)
{
    struct proto_msg w = {.op = PROTO_OP_WELCOME,
                          .fields = PROTO_F_VERSION | PROTO_F_MAX_FRAME | PROTO_F_STATE,
                          .version = 1,
                          .max_frame = PROTO_DEFAULT_MAX_FRAME,
                          .state = proto_span_str("ready", 5)};
    frame_of(out, &w);
}

static void expect_connected_line(struct fixture *f, char *line, size_t size)
{
    char want[200], detail[64];

    snprintf(detail, sizeof(detail), "uid %u, gid %u", (unsigned)getuid(), (unsigned)getgid());
    text_line(want, sizeof(want), me("", "+ connected"), detail);
    assert_string_equal(output_line(f, 0, line, size), want);
}

static void test_forward_and_print(void **state)
{
    struct fixture *f = *state;
    struct proto_buf sent = PROTO_BUF_INIT, got = PROTO_BUF_INIT;
    static const uint8_t bad[] = {0, 0, 0, 2, 0xc1, 0x00}; /* 0xc1: never used */
    char line[512], want[512];

    /* Client -> broker, split inside the length prefix. */
    hello_frame(&sent);
    write_all(f->client, sent.data, 3);
    assert_int_equal(proxy_run_once(f->p, 50), 0);
    write_all(f->client, sent.data + 3, sent.len - 3);
    pump_read(f, f->broker, sent.len, &got);
    assert_memory_equal(got.data, sent.data, sent.len);

    /* Broker -> client. */
    proto_buf_reset(&sent);
    proto_buf_reset(&got);
    welcome_frame(&sent);
    write_all(f->broker, sent.data, sent.len);
    pump_read(f, f->client, sent.len, &got);
    assert_memory_equal(got.data, sent.data, sent.len);

    /* A bad frame: shown as an error, forwarded byte for byte. */
    proto_buf_reset(&got);
    write_all(f->client, bad, sizeof(bad));
    pump_read(f, f->broker, sizeof(bad), &got);
    assert_memory_equal(got.data, bad, sizeof(bad));

    /* The stream is still in sync after it. */
    proto_buf_reset(&sent);
    proto_buf_reset(&got);
    hello_frame(&sent);
    write_all(f->client, sent.data, sent.len);
    pump_read(f, f->broker, sent.len, &got);

    /* The client leaves; the broker sees the end and leaves too. */
    close(f->client);
    f->client = -1;
    pump_eof(f, f->broker);
    close(f->broker);
    f->broker = -1;
    pump_until_closed(f);

    assert_int_equal(count_lines(f), 6);
    expect_connected_line(f, line, sizeof(line));
    /* The hello names the client from its own line on. */
    assert_string_equal(output_line(f, 1, line, sizeof(line)),
                        text_line(want, sizeof(want), me("t", "-> broker"),
                                  "{\"op\":\"hello\",\"min_version\":1,\"max_version\":1,"
                                  "\"name\":\"t\"}"));
    char who[128];
    snprintf(who, sizeof(who), "broker -> %s", me("t", ""));
    assert_string_equal(output_line(f, 2, line, sizeof(line)),
                        text_line(want, sizeof(want), who,
                                  "{\"op\":\"welcome\",\"version\":1,\"max_frame\":16777216,"
                                  "\"state\":\"ready\"}"));
    output_line(f, 3, line, sizeof(line));
    text_line(want, sizeof(want), me("t", "-> broker !"), "bad frame");
    assert_memory_equal(line, want, strlen(want));
    assert_non_null(strstr(line, "(forwarded unchanged)"));
    text_line(want, sizeof(want), me("t", "-> broker"), "{\"op\":\"hello\"");
    assert_memory_equal(output_line(f, 4, line, sizeof(line)), want, strlen(want));
    assert_string_equal(output_line(f, 5, line, sizeof(line)),
                        text_line(want, sizeof(want), me("t", "- closed"), "by the client"));
    proto_buf_free(&sent);
    proto_buf_free(&got);
}

static void test_json_envelopes(void **state)
{
    struct fixture *f = *state;
    struct proto_buf sent = PROTO_BUF_INIT, got = PROTO_BUF_INIT;
    static const uint8_t bad[] = {0, 0, 0, 1, 0x91}; /* an array header, cut short */
    char line[512], want[512];

    welcome_frame(&sent);
    write_all(f->broker, sent.data, sent.len);
    pump_read(f, f->client, sent.len, &got);
    proto_buf_reset(&got);
    write_all(f->client, bad, sizeof(bad));
    pump_read(f, f->broker, sizeof(bad), &got);
    close(f->broker);
    f->broker = -1;
    pump_eof(f, f->client);
    close(f->client);
    f->client = -1;
    pump_until_closed(f);

    assert_int_equal(count_lines(f), 4);
    /* The same fields as monitor's --json lines (trace_line.h). */
    char head[200];
    snprintf(head, sizeof(head),
             "{\"time\":\"" T_TEXT "\",\"time_us\":%llu,\"kind\":\"%%s\",\"side\":\"local\","
             "\"dir\":\"%%s\",\"peer\":1,\"pid\":%d,\"uid\":%u,",
             (unsigned long long)T_US, (int)getpid(), (unsigned)getuid());
    snprintf(want, sizeof(want), head, "open", "in");
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "\"text\":\"uid %u, gid %u\"}",
             (unsigned)getuid(), (unsigned)getgid());
    assert_string_equal(output_line(f, 0, line, sizeof(line)), want);
    snprintf(want, sizeof(want), head, "frame", "out");
    strcat(want, "\"frame\":{\"op\":\"welcome\",\"version\":1,\"max_frame\":16777216,"
                 "\"state\":\"ready\"}}");
    assert_string_equal(output_line(f, 1, line, sizeof(line)), want);
    output_line(f, 2, line, sizeof(line));
    snprintf(want, sizeof(want), head, "error", "in");
    strcat(want, "\"text\":\"");
    assert_memory_equal(line, want, strlen(want));
    snprintf(want, sizeof(want), head, "close", "out");
    strcat(want, "\"text\":\"by the broker\"}");
    assert_string_equal(output_line(f, 3, line, sizeof(line)), want);
    proto_buf_free(&sent);
    proto_buf_free(&got);
}

/* The client stops writing but still reads: the broker's late answer
 * reaches it. */
static void test_half_close(void **state)
{
    struct fixture *f = *state;
    struct proto_buf sent = PROTO_BUF_INIT, got = PROTO_BUF_INIT;
    struct proto_msg ping = {.op = PROTO_OP_PING, .fields = PROTO_F_ID, .id = 1};
    struct proto_msg pong = {.op = PROTO_OP_PONG, .fields = PROTO_F_ID, .id = 1};
    char line[256];

    frame_of(&sent, &ping);
    write_all(f->client, sent.data, sent.len);
    shutdown(f->client, SHUT_WR);
    pump_read(f, f->broker, sent.len, &got);
    pump_eof(f, f->broker);
    assert_int_equal(proxy_session_count(f->p), 1);

    proto_buf_reset(&sent);
    proto_buf_reset(&got);
    frame_of(&sent, &pong);
    write_all(f->broker, sent.data, sent.len);
    pump_read(f, f->client, sent.len, &got);
    assert_memory_equal(got.data, sent.data, sent.len);
    close(f->broker);
    f->broker = -1;
    pump_eof(f, f->client);
    pump_until_closed(f);
    char want[256], who[128];
    snprintf(who, sizeof(who), "broker -> %s", me("", ""));
    assert_string_equal(output_line(f, 2, line, sizeof(line)),
                        text_line(want, sizeof(want), who, "{\"op\":\"pong\",\"id\":1}"));
    assert_string_equal(output_line(f, 3, line, sizeof(line)),
                        text_line(want, sizeof(want), me("", "- closed"), "by the client"));
    proto_buf_free(&sent);
    proto_buf_free(&got);
}

/* A length over the hard maximum: reported once, then bytes go through
 * blindly (no more frame lines for that direction). */
static void test_unfollowable_stream(void **state)
{
    struct fixture *f = *state;
    struct proto_buf sent = PROTO_BUF_INIT, got = PROTO_BUF_INIT;
    struct proto_msg ping = {.op = PROTO_OP_PING, .fields = PROTO_F_ID, .id = 1};
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    char line[256];

    proto_buf_append(&sent, huge, sizeof(huge));
    frame_of(&sent, &ping);
    write_all(f->client, sent.data, sent.len);
    pump_read(f, f->broker, sent.len, &got);
    assert_memory_equal(got.data, sent.data, sent.len);
    proto_buf_reset(&got);
    write_all(f->client, sent.data, sent.len);
    pump_read(f, f->broker, sent.len, &got);

    assert_int_equal(count_lines(f), 2);
    output_line(f, 1, line, sizeof(line));
    char want[256], who[128];
    text_line(want, sizeof(want), me("", "-> broker !"), "cannot follow this direction any more: ");
    assert_memory_equal(line, want, strlen(want));
    assert_non_null(strstr(line, "bytes are still forwarded"));

    /* The other direction is still followed. */
    proto_buf_reset(&sent);
    proto_buf_reset(&got);
    frame_of(&sent, &ping);
    write_all(f->broker, sent.data, sent.len);
    pump_read(f, f->client, sent.len, &got);
    snprintf(who, sizeof(who), "broker -> %s", me("", ""));
    assert_string_equal(output_line(f, 2, line, sizeof(line)),
                        text_line(want, sizeof(want), who, "{\"op\":\"ping\",\"id\":1}"));
    proto_buf_free(&sent);
    proto_buf_free(&got);
}

/* A frame far bigger than socket buffers and PROXY_MAX_QUEUED: written
 * by the client in pieces while the broker reads; arrives intact and is
 * printed exactly once. */
static void test_big_frame(void **state)
{
    struct fixture *f = *state;
    struct proto_buf sent = PROTO_BUF_INIT, got = PROTO_BUF_INIT;
    size_t payload_len = 3u << 20, off = 0;
    uint8_t *payload = malloc(payload_len);
    struct proto_msg emit = {.op = PROTO_OP_EMIT, .fields = PROTO_F_TYPE | PROTO_F_DATA};
    struct proto_buf data = PROTO_BUF_INIT;

    for (size_t i = 0; i < payload_len; i++)
        payload[i] = (uint8_t)(i * 7);
    assert_int_equal(proto_mp_put_bin(&data, payload, payload_len), 0);
    emit.type = proto_span_str("blob", 4);
    emit.data.ptr = data.data;
    emit.data.len = (uint32_t)data.len;
    frame_of(&sent, &emit);

    for (int i = 0; i < 100000 && got.len < sent.len; i++) {
        uint8_t buf[65536];
        ssize_t n;
        if (off < sent.len) {
            n = write(f->client, sent.data + off, sent.len - off);
            if (n > 0)
                off += (size_t)n;
        }
        assert_int_equal(proxy_run_once(f->p, 1), 0);
        /* The broker reads slowly: one small chunk per round, so the
         * proxy's queue fills and back-pressure kicks in. */
        n = read(f->broker, buf, 16384);
        if (n > 0)
            proto_buf_append(&got, buf, (size_t)n);
    }
    assert_int_equal(got.len, sent.len);
    assert_memory_equal(got.data, sent.data, sent.len);
    /* The slow reader held the queue at its bound: it filled, it did not
     * grow past it. */
    assert_true(proxy_peak_queued(f->p) > PROXY_MAX_QUEUED / 2);
    assert_true(proxy_peak_queued(f->p) <= PROXY_MAX_QUEUED + PROXY_READ_CHUNK);
    assert_int_equal(count_lines(f), 2);
    assert_non_null(strstr(output(f), "-> broker"));
    assert_non_null(strstr(output(f), "  {\"op\":\"emit\",\"data\":{\"$bin\":\"AAcOFRwj"));
    assert_non_null(strstr(output(f), "\"},\"type\":\"blob\"}\n"));
    free(payload);
    proto_buf_free(&data);
    proto_buf_free(&sent);
    proto_buf_free(&got);
}

/* --- the listener --- */

static char tmpdir[64];

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-inspect-proxy-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int unix_socket(const char *path, bool do_listen, bool do_connect)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    if (do_connect)
        return connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 ? fd : -errno;
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    if (do_listen)
        assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static void test_listener(void **state)
{
    char ppath[96], bpath[96], msg[256];
    struct proto_buf sent = PROTO_BUF_INIT, got = PROTO_BUF_INIT;
    struct fixture f = {.client = -1, .broker = -1};
    struct proxy_opts opts = {.now_us = fixed_clock};
    struct proxy *other;
    struct stat st;
    int blisten;

    snprintf(ppath, sizeof(ppath), "%s/proxy.sock", tmpdir);
    snprintf(bpath, sizeof(bpath), "%s/broker.sock", tmpdir);
    blisten = unix_socket(bpath, true, false);
    close(unix_socket(ppath, false, false)); /* stale: bound, nobody listening */

    f.out_f = open_memstream(&f.out, &f.out_len);
    opts.out = f.out_f;
    opts.listen_path = ppath;
    opts.broker_path = bpath;
    assert_int_equal(proxy_new(&opts, &f.p, msg, sizeof(msg)), 0);
    /* Only our user may connect: the broker would see our credentials. */
    assert_int_equal(stat(ppath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    if (geteuid() == 0) {
        /* root: another user is refused at accept even past the mode */
        chmod(ppath, 0666);
        chmod(tmpdir, 0711);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) < 0 || setuid(65534) < 0)
                _exit(2);
            int c = unix_socket(ppath, false, true);
            char b;
            /* closed by the proxy without a byte */
            _exit(c >= 0 && read(c, &b, 1) == 0 ? 0 : 1);
        }
        int st_child = -1;
        for (int i = 0; i < PUMP_ROUNDS && waitpid(pid, &st_child, WNOHANG) == 0; i++)
            assert_int_equal(proxy_run_once(f.p, 10), 0);
        assert_true(WIFEXITED(st_child) && WEXITSTATUS(st_child) == 0);
        assert_int_equal(proxy_session_count(f.p), 0);
        assert_non_null(strstr(output(&f), "uid 65534 refused"));
        chmod(ppath, 0600);
    }

    /* Two clients, each with its own broker connection. */
    int c1 = unix_socket(ppath, false, true), c2 = unix_socket(ppath, false, true);
    assert_true(c1 >= 0 && c2 >= 0);
    for (int i = 0; i < PUMP_ROUNDS && proxy_session_count(f.p) < 2; i++)
        assert_int_equal(proxy_run_once(f.p, 10), 0);
    assert_int_equal(proxy_session_count(f.p), 2);
    int b1 = accept(blisten, NULL, NULL), b2 = accept(blisten, NULL, NULL);
    assert_true(b1 >= 0 && b2 >= 0);
    fcntl(b2, F_SETFL, O_NONBLOCK);

    hello_frame(&sent);
    write_all(c2, sent.data, sent.len);
    pump_read(&f, b2, sent.len, &got);
    assert_memory_equal(got.data, sent.data, sent.len);
    /* c2, or c3 when the refused client above took a number */
    assert_non_null(strstr(output(&f), geteuid() == 0 ? "  c3 t[" : "  c2 t["));
    assert_non_null(strstr(output(&f), "  {\"op\":\"hello\""));
    /* One frame line, c2's: c1 only connected. */
    const char *first = strstr(output(&f), "-> broker");
    assert_non_null(first);
    assert_null(strstr(first + 1, "-> broker"));

    /* A second proxy on the same path: in use (its probe shows up as a
     * short session of the first). */
    assert_int_equal(proxy_new(&opts, &other, msg, sizeof(msg)), -EADDRINUSE);
    assert_non_null(strstr(msg, "is in use"));

    close(c1);
    close(c2);
    close(b1);
    close(b2);
    close(blisten);
    proxy_free(f.p);
    f.p = NULL;
    /* The socket file goes with the proxy. */
    assert_int_equal(stat(ppath, &st), -1);
    assert_int_equal(errno, ENOENT);
    fclose(f.out_f);
    free(f.out);
    proto_buf_free(&sent);
    proto_buf_free(&got);
}

static void test_listener_refusals(void **state)
{
    char ppath[96], bpath[96], msg[256];
    struct fixture f = {.client = -1, .broker = -1};
    struct proxy_opts opts = {.now_us = fixed_clock};
    struct proxy *p;
    FILE *file;

    snprintf(ppath, sizeof(ppath), "%s/not-a-socket", tmpdir);
    snprintf(bpath, sizeof(bpath), "%s/no-broker.sock", tmpdir);
    file = fopen(ppath, "w");
    fclose(file);
    opts.listen_path = ppath;
    opts.broker_path = bpath;
    assert_int_equal(proxy_new(&opts, &p, msg, sizeof(msg)), -EEXIST);
    assert_non_null(strstr(msg, "not a socket"));
    unlink(ppath);

    /* No broker behind it: the client is told by a close, and the
     * output says why. */
    f.out_f = open_memstream(&f.out, &f.out_len);
    opts.out = f.out_f;
    snprintf(ppath, sizeof(ppath), "%s/p2.sock", tmpdir);
    assert_int_equal(proxy_new(&opts, &f.p, msg, sizeof(msg)), 0);
    f.client = unix_socket(ppath, false, true);
    assert_true(f.client >= 0);
    fcntl(f.client, F_SETFL, O_NONBLOCK);
    pump_eof(&f, f.client);
    assert_int_equal(proxy_session_count(f.p), 0);
    assert_non_null(strstr(output(&f), T_TEXT
                           "  c1 - closed                       cannot connect to the broker at "));
    assert_non_null(strstr(output(&f), strerror(ENOENT)));
    struct fixture *fp = &f;
    teardown((void **)&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forward_and_print, setup_text, teardown),
        cmocka_unit_test_setup_teardown(test_json_envelopes, setup_json, teardown),
        cmocka_unit_test_setup_teardown(test_half_close, setup_text, teardown),
        cmocka_unit_test_setup_teardown(test_unfollowable_stream, setup_text, teardown),
        cmocka_unit_test_setup_teardown(test_big_frame, setup_text, teardown),
        cmocka_unit_test(test_listener),
        cmocka_unit_test(test_listener_refusals),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
