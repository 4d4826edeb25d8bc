/* bench-floor: the floor line of the benchmark. A relay reduced to what
 * cannot be avoided, to read the broker's figures against.
 *
 * It does the broker's job for one local client with nothing else: the
 * parent is the relay, a forked child the client. The child sends
 * requests over a socketpair as length-prefixed records (the payload
 * already as JSON text, so there is no msgpack to transcode) keeping K in
 * flight, and times each one; the relay wraps each record into the same
 * Socket.IO packet the broker sends (daemon:request with a UUID-shaped
 * requestId), frames it as a masked WebSocket text frame and sends the
 * frames of one loop turn in one write; it reads the socket in 64 KiB
 * chunks, finds the requestId of each daemon:response and hands the
 * packet back to the child, also one write per loop turn. Same server,
 * same frames, same batching as the broker; no JSON parsing, no msgpack,
 * no TLS, no timers, no allocation per request.
 *
 * The relay measures itself (CPU from getrusage, system calls from the
 * raw_syscalls:sys_enter tracepoint) between two marker records the child
 * sends around the timed phase, and prints one `RESULT tool=floor ...`
 * line with the child's latency percentiles.
 *
 *   bench-floor --port PORT [--host 127.0.0.1] [-n N] [-k K]
 *               [--payload-bytes B] [--warmup W]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"

#define CHUNK       65536
#define UUID_LEN    36
#define MARK_START  0x80000001u
#define MARK_END    0x80000002u
#define RECORD_HEAD 8 /* u32 length (or marker), u32 slot */

struct options {
    const char *host;
    uint16_t port;
    uint32_t n, k, payload_bytes, warmup;
};

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "bench-floor: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

/* ---- a growable byte buffer with a read position ---------------------- */

struct buf {
    uint8_t *data;
    size_t head, len, cap; /* bytes [head, len) are live */
};

static uint8_t *buf_room(struct buf *b, size_t n)
{
    if (b->head && b->head == b->len)
        b->head = b->len = 0;
    if (b->len + n > b->cap) {
        if (b->head) {
            memmove(b->data, b->data + b->head, b->len - b->head);
            b->len -= b->head;
            b->head = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : CHUNK;
            while (cap < b->len + n)
                cap *= 2;
            b->data = realloc(b->data, cap);
            if (!b->data)
                die("%s", "out of memory");
            b->cap = cap;
        }
    }
    return b->data + b->len;
}

static void buf_put(struct buf *b, const void *p, size_t n)
{
    memcpy(buf_room(b, n), p, n);
    b->len += n;
}

/* Reads what is there (up to CHUNK): the count, 0 on EOF, -1 on an error
 * and 1 when nothing was there to read yet (non-blocking). */
static ssize_t buf_read(struct buf *b, int fd)
{
    ssize_t n = read(fd, buf_room(b, CHUNK), CHUNK);

    if (n > 0)
        b->len += (size_t)n;
    else if (n < 0 && (errno == EAGAIN || errno == EINTR))
        n = 1;
    return n;
}

static void set_nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* One write of everything pending; what is left stays. -1 on error. */
static int buf_flush(struct buf *b, int fd)
{
    ssize_t n;

    if (b->head == b->len)
        return 0;
    n = write(fd, b->data + b->head, b->len - b->head);
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    b->head += (size_t)n;
    return 0;
}

/* ---- WebSocket client framing, the minimum --------------------------- */

static uint8_t random_pool[4096];
static size_t random_used = sizeof(random_pool);

static uint32_t mask_key(void)
{
    uint32_t key;

    if (random_used + 4 > sizeof(random_pool)) {
        if (getrandom(random_pool, sizeof(random_pool), 0) != (ssize_t)sizeof(random_pool))
            die("%s", "getrandom failed");
        random_used = 0;
    }
    memcpy(&key, random_pool + random_used, 4);
    random_used += 4;
    return key;
}

/* Appends a masked text frame whose payload is the concatenation of parts. */
static void ws_put_text(struct buf *out, const void *const *parts, const size_t *lens, int nparts)
{
    size_t len = 0, h = 0;
    uint8_t head[14];
    uint32_t key = mask_key();
    uint64_t key64 = (uint64_t)key << 32 | key;
    uint8_t *p;

    for (int i = 0; i < nparts; i++)
        len += lens[i];
    head[h++] = 0x81;
    if (len < 126) {
        head[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        head[h++] = 0x80 | 126;
        head[h++] = (uint8_t)(len >> 8);
        head[h++] = (uint8_t)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(head + h, &key, 4);
    h += 4;
    p = buf_room(out, h + len);
    memcpy(p, head, h);
    p += h;
    for (int i = 0; i < nparts; i++) {
        memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    p -= len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= key64;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)
        p[i] ^= ((const uint8_t *)&key)[i & 3];
    out->len += h + len;
}

/* The next whole frame in `in`: its opcode and payload (server frames are
 * not masked). 1 when one was taken, 0 when more bytes are needed. */
static int ws_take(struct buf *in, int *opcode, const uint8_t **payload, size_t *len)
{
    const uint8_t *p = in->data + in->head;
    size_t avail = in->len - in->head, h = 2;
    uint64_t n;

    if (avail < 2)
        return 0;
    if (p[1] & 0x80)
        die("%s", "masked frame from the server");
    n = p[1] & 0x7f;
    if (n == 126) {
        if (avail < 4)
            return 0;
        n = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (n == 127) {
        if (avail < 10)
            return 0;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | p[2 + i];
        h = 10;
    }
    if (avail - h < n)
        return 0;
    if (!(p[0] & 0x80))
        die("%s", "fragmented message: not expected from the dev server");
    *opcode = p[0] & 0x0f;
    *payload = p + h;
    *len = (size_t)n;
    in->head += h + (size_t)n;
    return 1;
}

/* ---- the relay -------------------------------------------------------- */

struct relay {
    int ws, local;
    struct buf ws_in, ws_out, local_in, local_out;
    char uuid[UUID_LEN + 1];
    struct rusage ru0;
    int sc_fd, tc_fd;
    int64_t sc0, tc0;
};

static void tcp_connect(struct relay *r, const struct options *o)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->port)};
    int one = 1;

    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        die("not an IPv4 address: %s", o->host);
    r->ws = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->ws < 0 || connect(r->ws, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("cannot connect to %s", o->host);
    setsockopt(r->ws, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Blocking until one whole text message starting with prefix arrived;
 * answers pings meanwhile. */
static void wait_message(struct relay *r, const char *prefix)
{
    for (;;) {
        int op;
        const uint8_t *p;
        size_t len;

        while (ws_take(&r->ws_in, &op, &p, &len)) {
            if (op == 1 && len == 1 && p[0] == '2') {
                const void *parts[] = {"3"};
                size_t lens[] = {1};
                ws_put_text(&r->ws_out, parts, lens, 1);
                buf_flush(&r->ws_out, r->ws);
            } else if (op == 1 && len >= strlen(prefix) && !memcmp(p, prefix, strlen(prefix))) {
                return;
            } else if (op == 8) {
                die("%s", "the server closed the connection during the set-up");
            }
        }
        if (buf_read(&r->ws_in, r->ws) <= 0)
            die("%s", "the server hung up during the set-up");
    }
}

static void send_text(struct relay *r, const char *text)
{
    const void *parts[] = {text};
    size_t lens[] = {strlen(text)};

    ws_put_text(&r->ws_out, parts, lens, 1);
    while (r->ws_out.head != r->ws_out.len)
        if (buf_flush(&r->ws_out, r->ws) < 0)
            die("%s", "write to the server failed");
}

static void relay_handshake(struct relay *r, const struct options *o)
{
    char req[512];
    char *end;

    snprintf(req, sizeof(req),
             "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%u\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             o->host, o->port);
    if (write(r->ws, req, strlen(req)) != (ssize_t)strlen(req))
        die("%s", "cannot send the upgrade");
    for (;;) {
        if (buf_read(&r->ws_in, r->ws) <= 0)
            die("%s", "no answer to the upgrade");
        buf_room(&r->ws_in, 1)[0] = '\0';
        end = strstr((char *)r->ws_in.data, "\r\n\r\n");
        if (end)
            break;
    }
    if (strncmp((char *)r->ws_in.data, "HTTP/1.1 101", 12) != 0)
        die("%s", "upgrade refused");
    r->ws_in.head = (size_t)(end + 4 - (char *)r->ws_in.data);
    wait_message(r, "0{");
    send_text(r,
              "40/control,{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"}");
    wait_message(r, "40/control,{\"sid\"");
    send_text(r, "42/control,1[\"daemon:register\",{\"teamClusterId\":\"cluster-dev\",\"hostname\":"
                 "\"bench-floor\",\"version\":\"0.1.0\",\"handlers\":[]}]");
    wait_message(r, "43/control,1[{\"success\":true}]");
}

/* A requestId in UUID form whose last 8 hex digits are the slot. */
static void uuid_for(char *uuid, uint32_t slot)
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 8; i++)
        uuid[UUID_LEN - 1 - i] = hex[(slot >> (4 * i)) & 15];
}

static void relay_request(struct relay *r, uint32_t slot, const uint8_t *payload, size_t len)
{
    static const char head[] = "42/control,[\"daemon:request\",{\"requestId\":\"";
    static const char mid[] = "\",\"command\":\"echo\",\"payload\":";
    const void *parts[] = {head, r->uuid, mid, payload, "}]"};
    size_t lens[] = {sizeof(head) - 1, UUID_LEN, sizeof(mid) - 1, len, 2};

    uuid_for(r->uuid, slot);
    ws_put_text(&r->ws_out, parts, lens, 5);
}

static void relay_stats(struct relay *r, bool start, const uint8_t *body, const struct options *o)
{
    struct rusage ru;
    int64_t sc;

    int64_t tc;

    getrusage(RUSAGE_SELF, &ru);
    sc = bench_syscall_counter_read(r->sc_fd);
    tc = bench_syscall_counter_read(r->tc_fd);
    if (start) {
        r->ru0 = ru;
        r->sc0 = sc;
        r->tc0 = tc;
        return;
    }
    uint64_t gen[4]; /* p50 ns, p99 ns, elapsed ns, client CPU us */
    memcpy(gen, body, sizeof(gen));
    uint64_t cpu_us = (uint64_t)((ru.ru_utime.tv_sec - r->ru0.ru_utime.tv_sec) +
                                 (ru.ru_stime.tv_sec - r->ru0.ru_stime.tv_sec)) *
                          1000000u +
                      (uint64_t)((ru.ru_utime.tv_usec - r->ru0.ru_utime.tv_usec) +
                                 (ru.ru_stime.tv_usec - r->ru0.ru_stime.tv_usec));
    double seconds = (double)gen[2] / 1e9;
    /* The task clock is exact where getrusage() may count ticks. */
    if (tc >= 0 && r->tc0 >= 0)
        cpu_us = (uint64_t)(tc - r->tc0) / 1000u;
    printf("bench-floor: %" PRIu32 " echo requests, %" PRIu32 " in flight: %.0f req/s, relay CPU "
           "%.1f us/req, %.2f syscalls/req, p50 %.1f us, p99 %.1f us\n",
           o->n, o->k, o->n / seconds, (double)cpu_us / o->n,
           sc < 0 || r->sc0 < 0 ? -1.0 : (double)(sc - r->sc0) / o->n, gen[0] / 1e3, gen[1] / 1e3);
    printf("RESULT tool=floor mode=load clients=1 n=%" PRIu32 " k=%" PRIu32
           " payload_bytes=%" PRIu32 " seconds=%.4f rps=%.0f floor_cpu_us=%" PRIu64
           " floor_syscalls=%" PRId64 " clients_cpu_us=%" PRIu64 " p50_us=%.1f p99_us=%.1f\n",
           o->n, o->k, o->payload_bytes, seconds, o->n / seconds, cpu_us,
           sc < 0 || r->sc0 < 0 ? (int64_t)-1 : sc - r->sc0, gen[3], gen[0] / 1e3, gen[1] / 1e3);
    fflush(stdout);
}

/* Local records: u32 length | u32 slot | body. Returns false at the end marker. */
static bool relay_local_records(struct relay *r, const struct options *o)
{
    struct buf *in = &r->local_in;

    while (in->len - in->head >= RECORD_HEAD) {
        uint32_t head[2];
        const uint8_t *p = in->data + in->head;

        memcpy(head, p, sizeof(head));
        if (head[0] == MARK_START) {
            in->head += RECORD_HEAD;
            relay_stats(r, true, NULL, o);
            continue;
        }
        if (head[0] == MARK_END) {
            if (in->len - in->head < RECORD_HEAD + 32)
                return true;
            relay_stats(r, false, p + RECORD_HEAD, o);
            return false;
        }
        if (in->len - in->head < RECORD_HEAD + head[0])
            return true;
        relay_request(r, head[1], p + RECORD_HEAD, head[0]);
        in->head += RECORD_HEAD + head[0];
    }
    return true;
}

/* The slot from the requestId of a daemon:response, or -1. */
static long response_slot(const uint8_t *p, size_t len)
{
    static const char key[] = "\"requestId\":\"";
    const uint8_t *k = memmem(p, len, key, sizeof(key) - 1);
    uint32_t slot = 0;

    if (!k || (size_t)(p + len - k) < sizeof(key) - 1 + UUID_LEN)
        return -1;
    k += sizeof(key) - 1 + UUID_LEN - 8;
    for (int i = 0; i < 8; i++) {
        uint8_t c = k[i];
        slot = slot << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return slot;
}

static void relay_ws_frames(struct relay *r)
{
    static const char resp[] = "42/control,[\"daemon:response\",";
    int op;
    const uint8_t *p;
    size_t len;

    while (ws_take(&r->ws_in, &op, &p, &len)) {
        if (op == 1 && len == 1 && p[0] == '2') {
            const void *parts[] = {"3"};
            size_t lens[] = {1};
            ws_put_text(&r->ws_out, parts, lens, 1);
        } else if (op == 1 && len > sizeof(resp) && !memcmp(p, resp, sizeof(resp) - 1)) {
            long slot = response_slot(p, len);
            uint32_t head[2] = {(uint32_t)len, (uint32_t)slot};

            if (slot < 0)
                die("%s", "a daemon:response without a requestId");
            buf_put(&r->local_out, head, sizeof(head));
            buf_put(&r->local_out, p, len);
        } else if (op == 8) {
            die("%s", "the server closed the connection");
        }
    }
}

static int relay_main(const struct options *o, int local)
{
    struct relay r = {.local = local};

    memcpy(r.uuid, "00000000-0000-4000-8000-000000000000", UUID_LEN + 1);
    r.sc_fd = bench_syscall_counter_open(0);
    r.tc_fd = bench_task_clock_open(0);
    tcp_connect(&r, o);
    relay_handshake(&r, o);
    if (write(local, "R", 1) != 1) /* ready: the child may start */
        die("%s", "the client is gone");
    set_nonblocking(r.ws);
    set_nonblocking(r.local);
    for (;;) {
        struct pollfd pfd[2] = {
            {r.local, POLLIN | (r.local_out.head != r.local_out.len ? POLLOUT : 0), 0},
            {r.ws, POLLIN | (r.ws_out.head != r.ws_out.len ? POLLOUT : 0), 0},
        };

        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            die("%s", "poll failed");
        if (pfd[0].revents & (POLLIN | POLLHUP)) {
            if (buf_read(&r.local_in, r.local) <= 0)
                die("%s", "the client hung up");
            if (!relay_local_records(&r, o))
                return 0;
        }
        if (pfd[1].revents & (POLLIN | POLLHUP)) {
            if (buf_read(&r.ws_in, r.ws) <= 0)
                die("%s", "the server hung up");
            relay_ws_frames(&r);
        }
        if (buf_flush(&r.ws_out, r.ws) < 0 || buf_flush(&r.local_out, r.local) < 0)
            die("%s", "write failed");
    }
}

/* ---- the client (the child) --------------------------------------------- */

struct client {
    int fd;
    const struct options *o;
    struct buf in, out;
    char *str;
    uint32_t total, sent, answered;
    uint64_t *sent_at, *latency;
};

static void client_send_next(struct client *c)
{
    char body[64];
    uint32_t i = c->sent++;
    int n = snprintf(body, sizeof(body), "{\"i\":%" PRIu32 ",\"s\":\"", i);
    uint32_t head[2] = {(uint32_t)n + c->o->payload_bytes + 2, i};

    buf_put(&c->out, head, sizeof(head));
    buf_put(&c->out, body, (size_t)n);
    buf_put(&c->out, c->str, c->o->payload_bytes);
    buf_put(&c->out, "\"}", 2);
    c->sent_at[i] = bench_now_ns();
}

static void client_check(struct client *c, uint32_t slot, const uint8_t *p, size_t len)
{
    char expect[64];
    int n = snprintf(expect, sizeof(expect), "\"data\":{\"i\":%" PRIu32 ",\"s\":\"", slot);
    const uint8_t *d = memmem(p, len, expect, (size_t)n);

    if (slot >= c->total || c->latency[slot])
        die("%s", "an answer for a request not sent, or twice");
    if (!d || (size_t)(p + len - d) < (size_t)n + c->o->payload_bytes ||
        memcmp(d + n, c->str, c->o->payload_bytes) != 0 || !memmem(p, len, "\"success\":true", 14))
        die("%s", "the echo is not the payload sent");
    c->latency[slot] = bench_now_ns() - c->sent_at[slot];
    if (!c->latency[slot])
        c->latency[slot] = 1;
}

static void client_batch(struct client *c, uint32_t total)
{
    c->total = total;
    c->sent = c->answered = 0;
    memset(c->latency, 0, total * sizeof(uint64_t));
    while (c->sent < total && c->sent - c->answered < c->o->k)
        client_send_next(c);
    while (c->answered < total) {
        struct pollfd pfd = {c->fd, POLLIN | (c->out.head != c->out.len ? POLLOUT : 0), 0};

        if (buf_flush(&c->out, c->fd) < 0)
            die("%s", "write to the relay failed");
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            die("%s", "poll failed");
        if (!(pfd.revents & (POLLIN | POLLHUP)))
            continue;
        if (buf_read(&c->in, c->fd) <= 0)
            die("%s", "the relay hung up");
        while (c->in.len - c->in.head >= RECORD_HEAD) {
            uint32_t head[2];
            memcpy(head, c->in.data + c->in.head, sizeof(head));
            if (c->in.len - c->in.head < RECORD_HEAD + head[0])
                break;
            client_check(c, head[1], c->in.data + c->in.head + RECORD_HEAD, head[0]);
            c->in.head += RECORD_HEAD + head[0];
            c->answered++;
            if (c->sent < total)
                client_send_next(c);
        }
    }
}

static int client_main(const struct options *o, int fd)
{
    struct client c = {.fd = fd, .o = o};
    uint32_t most = o->n > o->warmup ? o->n : o->warmup;
    uint32_t mark[2] = {MARK_START, 0};
    uint64_t stats[4], t0;
    struct rusage ru0, ru1;
    char byte;

    c.str = malloc(o->payload_bytes + 1);
    c.sent_at = malloc((most + 1) * sizeof(uint64_t));
    c.latency = malloc((most + 1) * sizeof(uint64_t));
    if (!c.str || !c.sent_at || !c.latency)
        die("%s", "out of memory");
    for (uint32_t j = 0; j < o->payload_bytes; j++)
        c.str[j] = "0123456789abcdef"[j % 16];
    if (read(fd, &byte, 1) != 1)
        return 1; /* the relay failed its set-up and said why */
    set_nonblocking(fd);
    if (o->warmup)
        client_batch(&c, o->warmup);
    buf_put(&c.out, mark, sizeof(mark));
    getrusage(RUSAGE_SELF, &ru0);
    t0 = bench_now_ns();
    client_batch(&c, o->n);
    stats[2] = bench_now_ns() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    stats[3] = (uint64_t)((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                          (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec)) *
                   1000000u +
               (uint64_t)((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                          (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec));
    stats[0] = bench_percentile(c.latency, o->n, 50);
    stats[1] = bench_percentile(c.latency, o->n, 99);
    mark[0] = MARK_END;
    buf_put(&c.out, mark, sizeof(mark));
    buf_put(&c.out, stats, sizeof(stats));
    while (c.out.head != c.out.len) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (buf_flush(&c.out, fd) < 0)
            return 1;
        poll(&pfd, 1, 1000);
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static uint32_t parse_u32(const char *s, const char *what)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno || v > UINT32_MAX)
        die("bad value for %s", what);
    return (uint32_t)v;
}

int main(int argc, char **argv)
{
    enum { OPT_PORT = 256, OPT_HOST, OPT_PAYLOAD, OPT_WARMUP };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, OPT_PORT},
        {"host", required_argument, NULL, OPT_HOST},
        {"payload-bytes", required_argument, NULL, OPT_PAYLOAD},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {NULL, 0, NULL, 0},
    };
    struct options o = {
        .host = "127.0.0.1", .n = 20000, .k = 100, .payload_bytes = 16, .warmup = 500};
    int sv[2], opt, status = 0, rc;
    pid_t pid;

    while ((opt = getopt_long(argc, argv, "n:k:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            o.n = parse_u32(optarg, "-n");
            break;
        case 'k':
            o.k = parse_u32(optarg, "-k");
            break;
        case OPT_PORT:
            o.port = (uint16_t)parse_u32(optarg, "--port");
            break;
        case OPT_HOST:
            o.host = optarg;
            break;
        case OPT_PAYLOAD:
            o.payload_bytes = parse_u32(optarg, "--payload-bytes");
            break;
        case OPT_WARMUP:
            o.warmup = parse_u32(optarg, "--warmup");
            break;
        default:
            fprintf(stderr, "usage: bench-floor --port PORT [--host IPV4] [-n N] [-k K] "
                            "[--payload-bytes B] [--warmup W]\n");
            return 2;
        }
    }
    if (!o.port || !o.n || !o.k || o.payload_bytes > 16 * 1024 * 1024)
        die("%s", "--port is required; -n, -k at least 1");
    signal(SIGPIPE, SIG_IGN);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("%s", "socketpair failed");
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        die("%s", "fork failed");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[0]);
        _exit(client_main(&o, sv[1]));
    }
    close(sv[1]);
    rc = relay_main(&o, sv[0]);
    waitpid(pid, &status, 0);
    return rc || !WIFEXITED(status) || WEXITSTATUS(status) ? 1 : 0;
}
