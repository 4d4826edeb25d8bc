/* One accepted connection on a real libuv loop and a real listening pipe.
 *
 * The test is the client: a plain non-blocking socket it writes to and
 * reads from (or, for the slow-consumer cases, deliberately does not read
 * from), so it controls exactly how bytes are split. "The peer has read
 * what we wrote" is observed with SIOCOUTQ (bytes not yet consumed by the
 * other end), which lets a test hand the peer one byte per read.
 *
 * Every test ends in finish(): all handles closed, every peer released
 * (freed: run under valgrind or ASan to prove it), uv_loop_close() == 0.
 */
#include <errno.h>
#include <grp.h>
#include <linux/sockios.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/peer.h"
#include "proto/errors.h"
#include "proto/reader.h"

#define MAX_FRAMES 4096
#define TIMEOUT_MS 5000

struct frame_copy {
    uint8_t *data;
    size_t len;
};

struct frame_log {
    struct frame_copy f[MAX_FRAMES];
    size_t n;
};

struct fixture {
    uv_loop_t loop;
    uv_pipe_t server;
    uv_timer_t tick; /* keeps uv_run(UV_RUN_ONCE) from blocking for long */
    bool server_closed;
    bool loop_closed;
    char dir[64];
    char path[128];
    struct peer_list peers;
    struct peer_limits limits;
    struct peer_callbacks cb;
    uint64_t next_id;
    struct peer *peer; /* the last accepted, until its closing callback */
    int client;
    size_t want; /* for the predicates below */

    /* What the peer reported. */
    struct frame_log got;
    struct frame_log sent;
    int n_bad;
    int bad_code;
    char bad_why[200];
    int n_closing;
    char reason[200];
    bool closing_saw_slow;
    bool closing_saw_closing;

    /* Behaviour asked for by a test. */
    bool close_in_frame_cb;
    bool close_again_in_closing_cb;

    /* What the client received. */
    struct proto_reader *client_reader;
    struct frame_log received;
    bool client_eof;
    int client_errno;
};

/* ---- bookkeeping ---- */

static void log_add(struct frame_log *l, const void *data, size_t len)
{
    assert_true(l->n < MAX_FRAMES);
    l->f[l->n].data = malloc(len ? len : 1);
    assert_non_null(l->f[l->n].data);
    memcpy(l->f[l->n].data, data, len);
    l->f[l->n].len = len;
    l->n++;
}

static void log_clear(struct frame_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->f[i].data);
    l->n = 0;
}

static struct proto_msg decode(const struct frame_copy *c)
{
    struct proto_span span = {c->data, (uint32_t)c->len};
    struct proto_msg m;
    const char *why = NULL;

    assert_int_equal(proto_msg_decode(&span, &m, &why), 0);
    return m;
}

static bool span_is(struct proto_span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

/* ---- peer callbacks ---- */

static struct fixture *fixture_of(struct peer *p)
{
    return peer_owner(p);
}

static void on_frame(struct peer *p, const struct proto_span *frame)
{
    struct fixture *f = fixture_of(p);

    assert_false(peer_is_closing(p));
    log_add(&f->got, frame->ptr, frame->len);
    if (f->close_in_frame_cb)
        peer_close(p, "closed by the frame callback");
}

static void on_bad_frame(struct peer *p, int code, const char *why)
{
    struct fixture *f = fixture_of(p);

    f->n_bad++;
    f->bad_code = code;
    snprintf(f->bad_why, sizeof(f->bad_why), "%s", why);
}

static void on_closing(struct peer *p, const char *reason)
{
    struct fixture *f = fixture_of(p);

    f->n_closing++;
    snprintf(f->reason, sizeof(f->reason), "%s", reason ? reason : "(null)");
    f->closing_saw_slow = peer_is_slow_consumer(p);
    f->closing_saw_closing = peer_is_closing(p);
    if (f->close_again_in_closing_cb)
        peer_close(p, "again, from the closing callback");
    if (p == f->peer)
        f->peer = NULL;
}

static void on_sent(struct peer *p, const uint8_t *body, size_t len)
{
    struct fixture *f = fixture_of(p);

    log_add(&f->sent, body, len);
}

static const struct peer_callbacks default_callbacks = {
    .frame = on_frame,
    .bad_frame = on_bad_frame,
    .closing = on_closing,
    .sent = on_sent,
};

static void on_connection(uv_stream_t *server, int status)
{
    struct fixture *f = server->data;
    int err = 0;

    assert_int_equal(status, 0);
    f->peer = peer_new(&f->loop, &f->server, &f->peers, ++f->next_id, &f->limits, &f->cb, f, &err);
    assert_non_null(f->peer);
    assert_int_equal(err, 0);
    assert_int_equal(peer_start(f->peer), 0);
}

/* ---- the loop ---- */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

typedef bool (*predicate)(struct fixture *f);

/* Runs the loop until pred holds, at most TIMEOUT_MS. */
static bool run_until(struct fixture *f, predicate pred)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)TIMEOUT_MS * 1000000u;
    bool ok;

    uv_timer_start(&f->tick, on_tick, 1, 1);
    while (!(ok = pred(f)) && uv_hrtime() < deadline)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->tick);
    return ok;
}

/* ---- the client side ---- */

static void client_pump(struct fixture *f)
{
    uint8_t buf[65536];
    struct proto_span frame;
    ssize_t n;
    int rc;

    if (f->client < 0)
        return;
    while ((n = read(f->client, buf, sizeof(buf))) > 0)
        assert_int_equal(proto_reader_feed(f->client_reader, buf, (size_t)n), 0);
    if (n == 0)
        f->client_eof = true;
    else if (errno != EAGAIN)
        f->client_errno = errno;
    while ((rc = proto_reader_next(f->client_reader, &frame)) > 0)
        log_add(&f->received, frame.ptr, frame.len);
    assert_int_equal(rc, 0);
}

static int client_outq(struct fixture *f)
{
    int n = -1;

    assert_int_equal(ioctl(f->client, SIOCOUTQ, &n), 0);
    return n;
}

static int client_inq(struct fixture *f)
{
    int n = -1;

    assert_int_equal(ioctl(f->client, SIOCINQ, &n), 0);
    return n;
}

static bool peer_accepted(struct fixture *f)
{
    return f->peer != NULL;
}

static bool peer_consumed_all(struct fixture *f)
{
    return client_outq(f) == 0;
}

static bool peer_got_want(struct fixture *f)
{
    return f->got.n >= f->want;
}

static bool client_received_want(struct fixture *f)
{
    client_pump(f);
    return f->received.n >= f->want;
}

static bool client_at_end(struct fixture *f)
{
    client_pump(f);
    return f->client_eof || f->client_errno;
}

static bool peers_released(struct fixture *f)
{
    return f->peers.count == 0;
}

static bool all_closed(struct fixture *f)
{
    return f->peers.count == 0 && f->server_closed;
}

static int open_client(struct fixture *f)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memcpy(a.sun_path, f->path, strlen(f->path) + 1);
    /* A listening Unix socket with backlog room accepts at once. */
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Connects f->client and waits until the peer exists. */
static struct peer *connect_client(struct fixture *f)
{
    f->peer = NULL;
    f->client = open_client(f);
    assert_true(run_until(f, peer_accepted));
    return f->peer;
}

/* Writes all of it; when the socket is full, lets the peer read. */
static void client_write(struct fixture *f, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len) {
        ssize_t n = write(f->client, p, len);
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            assert_true(run_until(f, peer_consumed_all));
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Hands the bytes to the peer in pieces of the given sizes (cycled), each
 * one consumed by the peer before the next is written: one read per piece. */
static void client_write_split(struct fixture *f, const uint8_t *data, size_t len,
                               size_t (*next_piece)(uint32_t *seed), uint32_t seed)
{
    size_t off = 0;

    while (off < len) {
        size_t n = next_piece(&seed);
        if (n > len - off)
            n = len - off;
        client_write(f, data + off, n);
        assert_true(run_until(f, peer_consumed_all));
        off += n;
    }
}

static size_t one_byte(uint32_t *seed)
{
    (void)seed;
    return 1;
}

/* 1..1500 bytes, from a fixed LCG so a failure replays. */
static size_t random_piece(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 1500;
}

/* ---- frames ---- */

static void encode(struct proto_buf *out, const struct proto_msg *m)
{
    assert_int_equal(proto_msg_encode(out, m, 0), 0);
}

static void encode_ping(struct proto_buf *out, uint64_t id)
{
    struct proto_msg m = {.op = PROTO_OP_PING, .fields = PROTO_F_ID, .id = id};

    encode(out, &m);
}

/* A request whose payload is `n` patterned bytes (msgpack bin). */
static void encode_request(struct proto_buf *out, uint64_t id, size_t n)
{
    struct proto_buf payload = PROTO_BUF_INIT;
    uint8_t *bytes = malloc(n ? n : 1);
    struct proto_msg m = {
        .op = PROTO_OP_REQUEST, .fields = PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_PAYLOAD, .id = id};

    assert_non_null(bytes);
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)(i * 31 + id);
    assert_int_equal(proto_mp_put_bin(&payload, bytes, n), 0);
    m.command = proto_span_str("test.echo", 9);
    m.payload.ptr = payload.data;
    m.payload.len = (uint32_t)payload.len;
    encode(out, &m);
    proto_buf_free(&payload);
    free(bytes);
}

static struct proto_msg result_msg(uint64_t id)
{
    struct proto_msg m = {.op = PROTO_OP_RESULT, .fields = PROTO_F_ID | PROTO_F_OK, .id = id};

    m.ok = true;
    return m;
}

/* A result carrying `data` (raw msgpack), for frames of a chosen size. */
static struct proto_msg result_with_data(uint64_t id, const struct proto_buf *data)
{
    struct proto_msg m = result_msg(id);

    m.fields |= PROTO_F_DATA;
    m.data.ptr = data->data;
    m.data.len = (uint32_t)data->len;
    return m;
}

static uint32_t prefix_of(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Splits an encoded stream into its frame bodies. */
static size_t split_frames(const struct proto_buf *stream, struct frame_copy *out, size_t max)
{
    size_t n = 0;

    for (size_t off = 0; off < stream->len; n++) {
        uint32_t len = prefix_of(stream->data + off);
        assert_true(n < max);
        out[n].data = stream->data + off + PROTO_LENGTH_PREFIX;
        out[n].len = len;
        off += PROTO_LENGTH_PREFIX + len;
    }
    return n;
}

static void assert_same_frames(const struct frame_log *log, const struct frame_copy *want, size_t n)
{
    assert_int_equal(log->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(log->f[i].len, want[i].len);
        assert_memory_equal(log->f[i].data, want[i].data, want[i].len);
    }
}

/* ---- fixture ---- */

static void on_server_closed(uv_handle_t *h)
{
    struct fixture *f = h->data;

    f->server_closed = true;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/volt-peer-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/peer.sock", f->dir);
    if (uv_loop_init(&f->loop) < 0 || uv_pipe_init(&f->loop, &f->server, 0) < 0)
        return -1;
    f->server.data = f;
    if (uv_pipe_bind(&f->server, f->path) < 0 ||
        uv_listen((uv_stream_t *)&f->server, 16, on_connection) < 0)
        return -1;
    uv_timer_init(&f->loop, &f->tick);
    f->tick.data = f;
    proto_limits_default(&f->limits.frame);
    f->limits.max_queue_bytes = 1u << 20;
    f->cb = default_callbacks;
    f->client = -1;
    f->client_reader = proto_reader_new(NULL);
    if (!f->client_reader)
        return -1;
    *state = f;
    return 0;
}

/* The end of every test: nothing may stay open or allocated. */
static void finish(struct fixture *f)
{
    if (f->client >= 0)
        close(f->client);
    f->client = -1;
    for (struct peer *p = peer_list_first(&f->peers); p; p = peer_list_next(p))
        peer_close(p, "test finished");
    uv_close((uv_handle_t *)&f->server, on_server_closed);
    assert_true(run_until(f, all_closed));
    uv_close((uv_handle_t *)&f->tick, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    f->loop_closed = true;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char lock[200];

    /* A failed test leaves its loop as it was: leaking it is the lesser evil. */
    if (f->client >= 0)
        close(f->client);
    log_clear(&f->got);
    log_clear(&f->sent);
    log_clear(&f->received);
    proto_reader_free(f->client_reader);
    unlink(f->path);
    snprintf(lock, sizeof(lock), "%s.lock", f->path);
    unlink(lock);
    rmdir(f->dir);
    if (f->loop_closed)
        free(f);
    return 0;
}

/* ---- tests ---- */

static void test_accept_reads_peer_credentials(void **state)
{
    struct fixture *f = *state;
    struct peer *p = connect_client(f);

    assert_int_equal(peer_pid(p), getpid());
    assert_int_equal(peer_uid(p), getuid());
    assert_int_equal(peer_gid(p), getgid());
    assert_int_equal(peer_id(p), 1);
    assert_ptr_equal(peer_owner(p), f);
    assert_int_equal(f->peers.count, 1);
    assert_ptr_equal(peer_list_first(&f->peers), p);
    assert_null(peer_list_next(p));
    assert_false(peer_is_closing(p));
    assert_false(peer_is_slow_consumer(p));
    assert_int_equal(peer_queue_bytes(p), 0);
    assert_string_equal(peer_name(p), "");

    /* The client hangs up: one closing callback, then the peer is gone. */
    close(f->client);
    f->client = -1;
    assert_true(run_until(f, peers_released));
    assert_int_equal(f->n_closing, 1);
    assert_string_equal(f->reason, "client closed the connection");
    assert_true(f->closing_saw_closing);
    assert_null(f->peer);
    finish(f);
}

static void check_stream_in_pieces(struct fixture *f, const struct proto_buf *stream,
                                   size_t (*next_piece)(uint32_t *seed), uint32_t seed)
{
    struct frame_copy want[64];
    size_t n = split_frames(stream, want, 64);

    log_clear(&f->got);
    f->want = n;
    if (next_piece)
        client_write_split(f, stream->data, stream->len, next_piece, seed);
    else
        client_write(f, stream->data, stream->len);
    assert_true(run_until(f, peer_got_want));
    assert_same_frames(&f->got, want, n);
    for (size_t i = 0; i < n; i++)
        assert_true(decode(&f->got.f[i]).op == PROTO_OP_PING ||
                    decode(&f->got.f[i]).op == PROTO_OP_REQUEST);
    assert_int_equal(f->n_bad, 0);
    assert_int_equal(f->n_closing, 0);
}

static void test_frames_arrive_intact_in_any_split(void **state)
{
    struct fixture *f = *state;
    struct proto_buf small = PROTO_BUF_INIT, big = PROTO_BUF_INIT;

    connect_client(f);
    /* Small frames of assorted sizes, for byte-by-byte feeding. */
    for (uint64_t id = 1; id <= 6; id++)
        encode_ping(&small, id);
    encode_request(&small, 7, 300);
    encode_request(&small, 8, 0);
    encode_ping(&small, 9);
    /* A frame larger than the peer's 64 KiB read hint, among small ones. */
    encode_ping(&big, 10);
    encode_request(&big, 11, 200000);
    encode_ping(&big, 12);
    encode_request(&big, 13, 70000);

    check_stream_in_pieces(f, &small, NULL, 0);
    check_stream_in_pieces(f, &small, one_byte, 0);
    check_stream_in_pieces(f, &small, random_piece, 1);
    check_stream_in_pieces(f, &big, NULL, 0);
    check_stream_in_pieces(f, &big, random_piece, 2);
    assert_false(peer_is_closing(f->peer));

    proto_buf_free(&small);
    proto_buf_free(&big);
    finish(f);
}

static void append_raw_frame(struct proto_buf *b, const uint8_t *body, uint32_t len)
{
    uint8_t prefix[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                         (uint8_t)len};

    assert_int_equal(proto_buf_append(b, prefix, 4), 0);
    if (len)
        assert_int_equal(proto_buf_append(b, body, len), 0);
}

static void test_bad_frame_keeps_the_stream(void **state)
{
    struct fixture *f = *state;
    struct proto_buf s = PROTO_BUF_INIT;
    static const uint8_t array[] = {0x92, 0x01, 0x02}; /* [1, 2]: msgpack, not a map */
    static const uint8_t never_used[] = {0xc1};
    static const uint8_t truncated_map[] = {0x81, 0xa1, 'a'}; /* {"a": <missing>} */
    static const uint8_t two_maps[] = {0x80, 0x80};           /* trailing bytes */
    struct proto_msg m;
    struct peer *p = connect_client(f);

    append_raw_frame(&s, array, sizeof(array));
    append_raw_frame(&s, never_used, sizeof(never_used));
    append_raw_frame(&s, NULL, 0);
    append_raw_frame(&s, truncated_map, sizeof(truncated_map));
    append_raw_frame(&s, two_maps, sizeof(two_maps));
    encode_ping(&s, 7);
    client_write(f, s.data, s.len);
    f->want = 1;
    assert_true(run_until(f, peer_got_want));
    assert_int_equal(f->n_bad, 5);
    assert_int_equal(f->bad_code, PROTO_E_BAD_FRAME);
    assert_true(strlen(f->bad_why) > 0);
    assert_int_equal(f->got.n, 1);
    m = decode(&f->got.f[0]);
    assert_int_equal(m.op, PROTO_OP_PING);
    assert_int_equal(m.id, 7);

    /* Bad and good frames in separate reads, the bad one split too. */
    proto_buf_reset(&s);
    append_raw_frame(&s, array, sizeof(array));
    client_write_split(f, s.data, s.len, one_byte, 0);
    assert_int_equal(f->n_bad, 6);
    proto_buf_reset(&s);
    encode_ping(&s, 8);
    client_write(f, s.data, s.len);
    f->want = 2;
    assert_true(run_until(f, peer_got_want));
    assert_int_equal(decode(&f->got.f[1]).id, 8);
    assert_false(peer_is_closing(p));
    assert_int_equal(f->n_closing, 0);

    /* And the other direction still works. */
    m = (struct proto_msg){.op = PROTO_OP_PONG, .fields = PROTO_F_ID, .id = 8};
    assert_int_equal(peer_send(p, &m), 0);
    f->want = 1;
    assert_true(run_until(f, client_received_want));
    m = decode(&f->received.f[0]);
    assert_int_equal(m.op, PROTO_OP_PONG);
    assert_int_equal(m.id, 8);

    proto_buf_free(&s);
    finish(f);
}

/* The largest frame body the limit allows is delivered; one byte more is
 * the fatal error of the next test. */
static void test_frame_of_exactly_max_frame_is_accepted(void **state)
{
    struct fixture *f = *state;
    struct proto_buf s = PROTO_BUF_INIT;
    size_t overhead;

    f->limits.frame.max_frame = 1024;
    connect_client(f);
    encode_request(&s, 1, 300);
    overhead = s.len - PROTO_LENGTH_PREFIX - 300; /* same bin16 header at 300 and ~1000 */
    proto_buf_reset(&s);
    encode_request(&s, 1, 1024 - overhead);
    assert_int_equal(prefix_of(s.data), 1024);
    client_write(f, s.data, s.len);
    f->want = 1;
    assert_true(run_until(f, peer_got_want));
    assert_int_equal(f->got.f[0].len, 1024);
    assert_int_equal(f->n_closing, 0);
    proto_buf_free(&s);
    finish(f);
}

static void test_oversize_length_prefix_is_fatal(void **state)
{
    struct fixture *f = *state;
    static const uint8_t prefix[4] = {0x00, 0x00, 0x04, 0x01}; /* 1025 */
    struct proto_msg m;

    f->limits.frame.max_frame = 1024;
    connect_client(f);
    client_write(f, prefix, sizeof(prefix));
    assert_true(run_until(f, client_at_end));
    /* One error frame, then an orderly end of stream. */
    assert_true(f->client_eof);
    assert_int_equal(f->client_errno, 0);
    assert_int_equal(proto_reader_pending(f->client_reader), 0);
    assert_int_equal(f->received.n, 1);
    m = decode(&f->received.f[0]);
    assert_int_equal(m.op, PROTO_OP_ERROR);
    assert_true(span_is(m.code, "FrameTooLarge"));
    assert_string_equal(proto_error_name(PROTO_E_FRAME_TOO_LARGE), "FrameTooLarge");
    assert_true(proto_msg_has(&m, PROTO_F_MESSAGE) && m.message.len > 0);
    assert_non_null(memmem(m.message.ptr, m.message.len, "1025", 4));

    assert_true(run_until(f, peers_released));
    assert_int_equal(f->n_closing, 1);
    assert_non_null(strstr(f->reason, "protocol error"));
    assert_non_null(strstr(f->reason, "max_frame"));
    assert_int_equal(f->got.n, 0);
    assert_int_equal(f->n_bad, 0);
    finish(f);
}

static void test_sends_are_batched_and_in_order(void **state)
{
    struct fixture *f = *state;
    const size_t n = 1000;
    size_t total = 0, first;
    struct peer *p = connect_client(f);

    for (size_t i = 0; i < n; i++) {
        struct proto_msg m = result_msg(i);
        assert_int_equal(peer_send(p, &m), 0);
    }
    assert_int_equal(f->sent.n, n);
    for (size_t i = 0; i < n; i++)
        total += PROTO_LENGTH_PREFIX + f->sent.f[i].len;
    first = PROTO_LENGTH_PREFIX + f->sent.f[0].len;
    /* Without the loop running, at most the first frame went to the
     * socket: the other 999 wait in one buffer for one write. */
    assert_true((size_t)client_inq(f) <= first);
    assert_int_equal(peer_queue_bytes(p), total);

    f->want = n;
    assert_true(run_until(f, client_received_want));
    assert_same_frames(&f->received, f->sent.f, n);
    for (size_t i = 0; i < n; i++) {
        struct proto_msg m = decode(&f->received.f[i]);
        assert_int_equal(m.op, PROTO_OP_RESULT);
        assert_int_equal(m.id, i);
    }
    assert_int_equal(peer_queue_bytes(p), 0);
    assert_int_equal(f->n_closing, 0);
    finish(f);
}

/* A batch larger than the socket takes: what the socket took at once is
 * not counted as queued, and the rest follows, intact and in order. */
static void test_a_batch_larger_than_the_socket_arrives_whole(void **state)
{
    struct fixture *f = *state;
    struct proto_buf data = PROTO_BUF_INIT, payload = PROTO_BUF_INIT;
    const size_t n = 200;
    size_t total = 0;
    struct peer *p;

    assert_int_equal(proto_buf_reserve(&payload, 16384), 0);
    for (size_t i = 0; i < 16384; i++)
        payload.data[i] = (uint8_t)(i * 7);
    payload.len = 16384;
    assert_int_equal(proto_mp_put_bin(&data, payload.data, payload.len), 0);
    f->limits.max_queue_bytes = 64u << 20;
    p = connect_client(f);
    for (size_t i = 0; i < n; i++) {
        struct proto_msg m = result_with_data(i, &data);
        assert_int_equal(peer_send(p, &m), 0);
        total += PROTO_LENGTH_PREFIX + f->sent.f[i].len;
    }
    /* One turn: the batch's first bytes go at once, the rest is written
     * from where the socket stopped, as it drains. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(client_inq(f) > 0);
    assert_true(peer_queue_bytes(p) > 0);
    assert_int_equal(peer_queue_bytes(p) + (size_t)client_inq(f), total);

    f->want = n;
    assert_true(run_until(f, client_received_want));
    assert_same_frames(&f->received, f->sent.f, n);
    assert_int_equal(peer_queue_bytes(p), 0);
    assert_int_equal(f->n_closing, 0);
    proto_buf_free(&data);
    proto_buf_free(&payload);
    finish(f);
}

static void test_slow_consumer_is_closed(void **state)
{
    struct fixture *f = *state;
    struct proto_buf data = PROTO_BUF_INIT;
    uint8_t kib[1000];
    struct peer *p;
    size_t i;
    int rc = 0;

    memset(kib, 'x', sizeof(kib));
    assert_int_equal(proto_mp_put_bin(&data, kib, sizeof(kib)), 0);
    f->limits.max_queue_bytes = 64 * 1024;
    p = connect_client(f);
    /* The client never reads; the loop runs between sends, as in the
     * broker, so the socket buffer fills first and then the queue. */
    for (i = 0; i < 100000; i++) {
        struct proto_msg m = result_with_data(i, &data);
        rc = peer_send(p, &m);
        if (rc < 0)
            break;
        assert_true(peer_queue_bytes(p) <= f->limits.max_queue_bytes);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(rc, PROTO_E_LIMIT_EXCEEDED);
    assert_true(i > 64); /* the queue limit, not something else, stopped it */
    assert_true(peer_is_closing(p));
    assert_true(peer_is_slow_consumer(p));
    assert_int_equal(f->n_closing, 1);
    assert_true(f->closing_saw_slow);
    assert_true(strncmp(f->reason, "slow consumer", 13) == 0);
    {
        struct proto_msg m = result_msg(0);
        assert_int_equal(peer_send(p, &m), PROTO_E_BROKER_GONE);
    }

    /* Nobody waits for it: the peer is released while the client still
     * does not read. */
    assert_true(run_until(f, peers_released));
    assert_int_equal(f->n_closing, 1);

    /* What did reach the client is whole frames in order, then the end. */
    assert_true(run_until(f, client_at_end));
    assert_true(f->client_eof);
    assert_true(f->received.n > 0 && f->received.n < i);
    for (size_t k = 0; k < f->received.n; k++)
        assert_int_equal(decode(&f->received.f[k]).id, k);
    proto_buf_free(&data);
    finish(f);
}

/* Closing (e.g. at broker shutdown) with a write stuck on a client that
 * does not read must not wait for that client. */
static void test_close_with_a_stuck_write_does_not_wait(void **state)
{
    struct fixture *f = *state;
    struct proto_buf data = PROTO_BUF_INIT;
    uint8_t kib[1000];
    struct peer *p;

    memset(kib, 'y', sizeof(kib));
    assert_int_equal(proto_mp_put_bin(&data, kib, sizeof(kib)), 0);
    f->limits.max_queue_bytes = 64u << 20;
    p = connect_client(f);
    for (uint64_t i = 0; peer_queue_bytes(p) < 512 * 1024; i++) {
        struct proto_msg m = result_with_data(i, &data);
        assert_true(i < 100000);
        assert_int_equal(peer_send(p, &m), 0);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    peer_close(p, "broker is stopping");
    assert_int_equal(f->n_closing, 1);
    assert_false(f->closing_saw_slow);
    assert_true(run_until(f, peers_released));
    assert_true(run_until(f, client_at_end));
    assert_true(f->client_eof);
    assert_int_equal(f->n_closing, 1);
    assert_string_equal(f->reason, "broker is stopping");
    proto_buf_free(&data);
    finish(f);
}

static void send_error_and_close(struct peer *p, const char *reason)
{
    struct proto_msg e = {.op = PROTO_OP_ERROR, .fields = PROTO_F_CODE | PROTO_F_MESSAGE};

    e.code = proto_span_str("PermissionDenied", 16);
    e.message = proto_span_str("go away", 7);
    peer_send_and_close(p, &e, reason);
}

static void test_send_and_close_delivers_then_closes(void **state)
{
    struct fixture *f = *state;
    struct proto_msg m;
    struct peer *p;

    f->cb.sent = NULL; /* optional */
    p = connect_client(f);
    for (uint64_t i = 0; i < 3; i++) {
        m = result_msg(i);
        assert_int_equal(peer_send(p, &m), 0);
    }
    send_error_and_close(p, "refused by the test");
    /* It flushes first. */
    assert_int_equal(f->n_closing, 0);
    assert_false(peer_is_closing(p));
    /* Idempotent while flushing. */
    send_error_and_close(p, "refused twice");

    assert_true(run_until(f, client_at_end));
    assert_true(f->client_eof);
    assert_int_equal(f->received.n, 4);
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(decode(&f->received.f[i]).id, i);
    m = decode(&f->received.f[3]);
    assert_int_equal(m.op, PROTO_OP_ERROR);
    assert_true(span_is(m.code, "PermissionDenied"));
    assert_true(run_until(f, peers_released));
    assert_int_equal(f->n_closing, 1);
    assert_string_equal(f->reason, "refused by the test");
    assert_int_equal(f->sent.n, 0);

    /* Straight after accept, with nothing in flight (the broker's refusal). */
    close(f->client);
    f->client_eof = false;
    log_clear(&f->received);
    proto_reader_free(f->client_reader);
    f->client_reader = proto_reader_new(NULL);
    p = connect_client(f);
    send_error_and_close(p, "refused again");
    assert_true(run_until(f, client_at_end));
    assert_true(f->client_eof);
    assert_int_equal(f->received.n, 1);
    assert_true(span_is(decode(&f->received.f[0]).code, "PermissionDenied"));
    assert_true(run_until(f, peers_released));
    assert_int_equal(f->n_closing, 2);
    assert_string_equal(f->reason, "refused again");
    finish(f);
}

static void test_close_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct proto_msg m = result_msg(1);
    struct peer *p = connect_client(f);

    f->close_again_in_closing_cb = true;
    peer_close(p, "first");
    peer_close(p, "second");
    assert_int_equal(f->n_closing, 1);
    assert_string_equal(f->reason, "first");
    assert_true(peer_is_closing(p));
    assert_false(peer_is_slow_consumer(p));
    assert_int_equal(peer_send(p, &m), PROTO_E_BROKER_GONE);
    send_error_and_close(p, "third");
    assert_int_equal(f->n_closing, 1);
    /* Still listed until libuv has released the handle. */
    assert_int_equal(f->peers.count, 1);

    assert_true(run_until(f, peers_released));
    assert_true(run_until(f, client_at_end));
    assert_true(f->client_eof);
    assert_int_equal(f->received.n, 0);
    assert_int_equal(f->n_closing, 1);
    finish(f);
}

static void test_close_from_the_frame_callback(void **state)
{
    struct fixture *f = *state;
    struct proto_buf s = PROTO_BUF_INIT;

    connect_client(f);
    f->close_in_frame_cb = true;
    for (uint64_t id = 1; id <= 3; id++)
        encode_ping(&s, id);
    client_write(f, s.data, s.len); /* three frames in one read */
    assert_true(run_until(f, peers_released));
    assert_int_equal(f->got.n, 1);
    assert_int_equal(f->n_closing, 1);
    assert_string_equal(f->reason, "closed by the frame callback");
    proto_buf_free(&s);
    finish(f);
}

static bool peers_at_most_want(struct fixture *f)
{
    return f->peers.count <= f->want;
}

/* allowedGids counts supplementary groups: the connecting process's, as
 * they were when it connected, all of them and no other. */
static void test_supplementary_groups_are_the_clients(void **state)
{
    struct fixture *f = *state;
    gid_t saved[256], mine[3] = {4242, 4343, 4545};
    int n_saved;
    struct peer *p;

    if (geteuid() != 0)
        skip(); /* setgroups() needs root; CI runs as root */
    n_saved = getgroups(256, saved);
    assert_true(n_saved >= 0);
    assert_int_equal(setgroups(3, mine), 0);
    p = connect_client(f);
    assert_int_equal(setgroups((size_t)n_saved, saved), 0);
    assert_non_null(p);
    for (int i = 0; i < 3; i++)
        assert_true(peer_in_group(p, mine[i]));
    assert_false(peer_in_group(p, 4444));
    finish(f);
}

static void test_owner_state_and_the_peer_list(void **state)
{
    struct fixture *f = *state;
    struct peer *a = connect_client(f), *b;
    int a_fd = f->client;
    char long_name[100];
    int marker;

    peer_set_data(a, &marker);
    assert_ptr_equal(peer_data(a), &marker);
    peer_set_flags(a, 0x5);
    assert_int_equal(peer_flags(a), 0x5);
    /* Printable, one line, whatever the client calls itself. */
    peer_set_name(a, "svc\n\x01\xc3\xa9!", 8);
    assert_string_equal(peer_name(a), "svc???\?!"); /* \? dodges the ??! trigraph */
    memset(long_name, 'n', sizeof(long_name));
    peer_set_name(a, long_name, sizeof(long_name));
    assert_int_equal(strlen(peer_name(a)), 64);

    /* A second client: newest first, ids count up. */
    b = connect_client(f);
    assert_ptr_not_equal(b, a);
    assert_int_equal(f->peers.count, 2);
    assert_ptr_equal(peer_list_first(&f->peers), b);
    assert_ptr_equal(peer_list_next(b), a);
    assert_null(peer_list_next(a));
    assert_int_equal(peer_id(b), peer_id(a) + 1);
    assert_null(peer_data(b));
    assert_int_equal(peer_flags(b), 0);
    assert_string_equal(peer_name(b), "");

    /* One goes; the other stays listed and open. */
    peer_close(a, "first one");
    f->want = 1;
    assert_true(run_until(f, peers_at_most_want));
    assert_int_equal(f->peers.count, 1);
    assert_ptr_equal(peer_list_first(&f->peers), b);
    assert_null(peer_list_next(b));
    assert_false(peer_is_closing(b));
    close(a_fd);
    finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accept_reads_peer_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_arrive_intact_in_any_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_frame_keeps_the_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_of_exactly_max_frame_is_accepted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_oversize_length_prefix_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sends_are_batched_and_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_larger_than_the_socket_arrives_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_a_stuck_write_does_not_wait, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_and_close_delivers_then_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_the_frame_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_supplementary_groups_are_the_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_state_and_the_peer_list, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
