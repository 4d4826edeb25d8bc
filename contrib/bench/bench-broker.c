/* bench-broker: the volt-broker side of the benchmark (see README.md).
 *
 * The process started from the command line is only a coordinator. It
 * forks C worker processes (C services sharing one broker), each with its
 * own libvoltclient connection. A worker connects, waits until the
 * broker's upstream session is ready, warms up, and reports "ready" on the
 * shared up-pipe; when all are ready the coordinator closes the go-pipe,
 * which releases them together, and times them until the last one is done.
 * Each worker sends its share of the N `echo` commands keeping K in flight
 * (asynchronous volt_send_command, the next request sent from the
 * previous one's callback), checks that every request is completed exactly
 * once with its own payload echoed back, and reports the CPU it spent in
 * the timed phase (getrusage) and its peak RSS.
 *
 * A worker keeps its state in one file-scope struct: there is exactly one
 * client per process, and a request's callback needs both the request's
 * index (its privdata) and the worker.
 *
 * Each request is timed (send to result) for the latency percentiles of
 * the sequential (K=1) runs.
 *
 * Other modes (--mode):
 *  - inbound: one worker registers a handler that answers with the payload;
 *    the coordinator makes the dev server send server:requests, K at a
 *    time, through its control API (--server URL), and measures the
 *    dispatch path server -> broker -> handler -> answer.
 *  - memory: no workers; the coordinator itself reads the broker's idle
 *    RSS, connects M clients to see what each costs the broker, and keeps P
 *    requests pending (the dev server never answers `never`) to see what
 *    each of those costs.
 *  - startup: connects as soon as the socket exists and reports the time
 *    from --since-ns (wall clock, taken by run.sh just before it started
 *    the broker) to the upstream being ready.
 *
 * peer.js is the same program for "one socket.io-client per service"; both
 * print a `RESULT key=value ...` line that run.sh turns into a table. The
 * coordinator can also sample other processes (--sample LABEL=PID: the
 * broker, the dev server) over exactly the timed phase: CPU from
 * /proc/PID/stat, and the system calls of the process's main thread from
 * the raw_syscalls:sys_enter tracepoint.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <volt/client.h>

#include "bench-util.h"

#define MAX_CLIENTS     256
#define MAX_SAMPLE_PIDS 8

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

enum mode { MODE_LOAD, MODE_INBOUND, MODE_MEMORY, MODE_STARTUP };

struct options {
    enum mode mode;
    const char *server_url; /* inbound, memory: the dev server's http://host:port */
    uint32_t mem_clients;   /* memory: idle clients connected at once */
    uint32_t mem_pending;   /* memory: requests kept pending */
    uint64_t since_ns;      /* startup: wall clock when the broker was started */
    const char *socket_path;
    const char *command;    /* echo; anything else shows the checks failing */
    uint32_t n;             /* timed requests, split over the clients */
    uint32_t k;             /* in flight per client */
    uint32_t clients;       /* worker processes */
    uint32_t payload_bytes; /* length of the payload's string */
    uint32_t warmup;        /* untimed requests per client first */
    int deadline_ms;
    struct sample {
        const char *label; /* [a-z0-9_]+, from argv */
        pid_t pid;
    } samples[MAX_SAMPLE_PIDS];
    int n_samples;
};

/* What a worker tells the coordinator: one write each, under PIPE_BUF, so
 * the messages of several workers never interleave. */
enum report_kind { REPORT_READY = 1, REPORT_DONE, REPORT_FAILED };
struct report {
    int32_t worker;
    int32_t kind;
    uint64_t requests;
    uint64_t cpu_us;
    uint64_t maxrss_kb;
    uint64_t p50_ns, p99_ns; /* send to result, over the timed requests */
    uint64_t done_ns;        /* CLOCK_MONOTONIC when the last one was answered */
};

#define now_ns bench_now_ns

/* ------------------------------------------------------------------ */
/* The payload: {"i": <index>, "s": "0123456789abcdef0123..."}          */
/* ------------------------------------------------------------------ */

static size_t put_uint(uint8_t *p, uint32_t v)
{
    if (v < 128) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v <= UINT8_MAX) {
        p[0] = 0xcc;
        p[1] = (uint8_t)v;
        return 2;
    }
    if (v <= UINT16_MAX) {
        p[0] = 0xcd;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)v;
        return 3;
    }
    p[0] = 0xce;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (uint8_t)(v >> (24 - 8 * i));
    return 5;
}

static size_t put_str_header(uint8_t *p, uint32_t len)
{
    if (len < 32) {
        p[0] = (uint8_t)(0xa0 | len);
        return 1;
    }
    if (len <= UINT8_MAX) {
        p[0] = 0xd9;
        p[1] = (uint8_t)len;
        return 2;
    }
    if (len <= UINT16_MAX) {
        p[0] = 0xda;
        p[1] = (uint8_t)(len >> 8);
        p[2] = (uint8_t)len;
        return 3;
    }
    p[0] = 0xdb;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (uint8_t)(len >> (24 - 8 * i));
    return 5;
}

/* Room for the map header, both keys, the largest int and str headers. */
#define PAYLOAD_OVERHEAD 16u

static size_t encode_payload(uint8_t *p, uint32_t index, const char *str, uint32_t str_len)
{
    size_t n = 0;
    p[n++] = 0x82;
    p[n++] = 0xa1;
    p[n++] = 'i';
    n += put_uint(p + n, index);
    p[n++] = 0xa1;
    p[n++] = 's';
    n += put_str_header(p + n, str_len);
    memcpy(p + n, str, str_len);
    return n + str_len;
}

/* A minimal msgpack cursor: just what the echoed payload needs. */
struct cursor {
    const uint8_t *p, *end;
};

static bool take_be(struct cursor *c, int bytes, uint64_t *out)
{
    if (c->end - c->p < bytes)
        return false;
    *out = 0;
    for (int i = 0; i < bytes; i++)
        *out = *out << 8 | *c->p++;
    return true;
}

/* Any integer encoding of a non-negative value. */
static bool read_uint(struct cursor *c, uint64_t *out)
{
    if (c->p >= c->end)
        return false;
    uint8_t t = *c->p++;
    if (t < 0x80) {
        *out = t;
        return true;
    }
    if (t >= 0xcc && t <= 0xcf)
        return take_be(c, 1 << (t - 0xcc), out);
    if (t >= 0xd0 && t <= 0xd3) {
        int bytes = 1 << (t - 0xd0);
        if (!take_be(c, bytes, out))
            return false;
        return bytes == 8 ? (int64_t)*out >= 0 : !(*out >> (8 * bytes - 1));
    }
    return false;
}

static bool read_str(struct cursor *c, const uint8_t **s, uint64_t *len)
{
    if (c->p >= c->end)
        return false;
    uint8_t t = *c->p++;
    if ((t & 0xe0) == 0xa0)
        *len = t & 0x1f;
    else if (t >= 0xd9 && t <= 0xdb) {
        if (!take_be(c, 1 << (t - 0xd9), len))
            return false;
    } else {
        return false;
    }
    if ((uint64_t)(c->end - c->p) < *len)
        return false;
    *s = c->p;
    c->p += *len;
    return true;
}

/* True when data is exactly {"i": index, "s": str} (keys in any order). */
static bool payload_matches(const void *data, size_t len, uint32_t index, const char *str,
                            uint32_t str_len)
{
    struct cursor c = {data, (const uint8_t *)data + len};
    bool have_i = false, have_s = false;

    if (len < 1 || *c.p++ != 0x82)
        return false;
    for (int field = 0; field < 2; field++) {
        const uint8_t *key, *s;
        uint64_t key_len, v, s_len;
        if (!read_str(&c, &key, &key_len) || key_len != 1)
            return false;
        if (key[0] == 'i' && !have_i) {
            if (!read_uint(&c, &v) || v != index)
                return false;
            have_i = true;
        } else if (key[0] == 's' && !have_s) {
            if (!read_str(&c, &s, &s_len) || s_len != str_len || memcmp(s, str, str_len) != 0)
                return false;
            have_s = true;
        } else {
            return false;
        }
    }
    return c.p == c.end;
}

/* ------------------------------------------------------------------ */
/* Worker                                                               */
/* ------------------------------------------------------------------ */

static struct worker {
    volt_client *client;
    const char *command;
    char *str; /* the payload's string */
    uint32_t str_len;
    uint32_t k;
    uint8_t *payload; /* reused for every request */
    /* the batch under way */
    uint32_t total, sent, answered;
    uint8_t *seen;
    uint64_t *sent_at; /* per index: when it was sent */
    uint64_t *latency; /* per index: send to result */
    bool failed;
    /* inbound: calls answered so far, and when to stop */
    uint32_t calls, calls_goal;
    uint32_t calls_warm; /* the timed phase starts after this many */
    struct rusage calls_ru0;
} W;

static void on_result(volt_client *c, const volt_result *r, void *privdata);

static void worker_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void worker_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench-broker[%d]: ", (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    W.failed = true;
    volt_client_stop(W.client);
}

static void send_next(void)
{
    uint32_t index = W.sent++;
    size_t len = encode_payload(W.payload, index, W.str, W.str_len);
    W.sent_at[index] = now_ns();
    int rc = volt_send_command(W.client, W.command, W.payload, len, 0, on_result,
                               (void *)(uintptr_t)index);
    if (rc < 0)
        worker_fail("send of request %" PRIu32 ": %s (%s)", index, volt_strerror(rc),
                    volt_client_errstr(W.client));
}

static void on_result(volt_client *c, const volt_result *r, void *privdata)
{
    uint32_t index = (uint32_t)(uintptr_t)privdata;

    if (W.failed)
        return;
    if (index >= W.total || W.seen[index]) {
        worker_fail("request %" PRIu32 " completed twice (or out of the batch)", index);
        return;
    }
    W.seen[index] = 1;
    W.latency[index] = now_ns() - W.sent_at[index];
    W.answered++;
    if (r->code != 0) {
        worker_fail("request %" PRIu32 ": %s: %s", index, r->code_name, r->message);
        return;
    }
    if (!payload_matches(r->data, r->data_len, index, W.str, W.str_len)) {
        worker_fail("request %" PRIu32 ": the echo is not the payload sent (%zu bytes)", index,
                    r->data_len);
        return;
    }
    if (W.sent < W.total)
        send_next();
    else if (W.answered == W.total)
        volt_client_stop(c);
}

/* Runs one batch of `total` requests with at most W.k in flight. */
static int run_batch(uint32_t total, uint64_t deadline_ns)
{
    W.total = total;
    W.sent = W.answered = 0;
    memset(W.seen, 0, total);
    while (!W.failed && W.sent < total && W.sent - W.answered < W.k)
        send_next();
    while (!W.failed && W.answered < total) {
        if (now_ns() > deadline_ns) {
            worker_fail("%" PRIu32 " of %" PRIu32 " requests answered before the deadline",
                        W.answered, total);
            break;
        }
        int rc = volt_client_run_for(W.client, 200);
        if (rc < 0)
            worker_fail("broker connection: %s (%s)", volt_strerror(rc),
                        volt_client_errstr(W.client));
    }
    return W.failed ? -1 : 0;
}

static uint64_t cpu_us_of(const struct rusage *ru)
{
    return (uint64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec);
}

static void send_report(int fd, const struct report *r)
{
    if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
        _exit(EXIT_FAILED);
}

static uint32_t share_of(uint32_t n, uint32_t clients, uint32_t worker)
{
    return n / clients + (worker < n % clients ? 1 : 0);
}

static int worker_setup(const struct options *o, uint32_t index, uint32_t max_batch)
{
    struct volt_options vo;
    char name[32];

    W.command = o->command;
    W.k = o->k;
    W.str_len = o->payload_bytes;
    W.str = malloc(W.str_len + 1);
    W.payload = malloc(W.str_len + PAYLOAD_OVERHEAD);
    W.seen = malloc(max_batch ? max_batch : 1);
    W.sent_at = malloc((max_batch ? max_batch : 1) * sizeof(uint64_t));
    W.latency = malloc((max_batch ? max_batch : 1) * sizeof(uint64_t));
    if (!W.str || !W.payload || !W.seen || !W.sent_at || !W.latency) {
        fprintf(stderr, "bench-broker: out of memory\n");
        return -1;
    }
    for (uint32_t j = 0; j < W.str_len; j++)
        W.str[j] = "0123456789abcdef"[j % 16];
    W.str[W.str_len] = '\0';

    snprintf(name, sizeof(name), "bench-broker-%" PRIu32, index);
    volt_options_init(&vo);
    vo.socket_path = o->socket_path;
    vo.name = name;
    vo.reconnect = 0; /* a lost broker is a failed run, not something to hide */
    W.client = volt_client_new(&vo);
    if (!W.client) {
        fprintf(stderr, "bench-broker: cannot create the client (bad socket path?)\n");
        return -1;
    }
    int rc = volt_client_connect_blocking(W.client, 5000);
    if (rc == 0)
        rc = volt_client_wait_ready(W.client, 10000);
    if (rc < 0) {
        fprintf(stderr, "bench-broker: broker not ready: %s (%s)\n", volt_strerror(rc),
                volt_client_errstr(W.client));
        return -1;
    }
    return 0;
}

/* Pending requests complete here with W.failed set: nothing more is sent. */
static void worker_teardown(void)
{
    W.failed = true;
    volt_client_free(W.client);
    free(W.str);
    free(W.payload);
    free(W.seen);
    free(W.sent_at);
    free(W.latency);
    W = (struct worker){0};
}

static int worker_main(const struct options *o, uint32_t index, int up_fd, int go_fd)
{
    uint32_t share = share_of(o->n, o->clients, index);
    uint64_t deadline = now_ns() + (uint64_t)o->deadline_ms * 1000000u;
    struct report rep = {.worker = (int32_t)index, .kind = REPORT_FAILED};
    struct rusage before, after;
    char byte;

    if (worker_setup(o, index, share > o->warmup ? share : o->warmup) < 0 ||
        (o->warmup && run_batch(o->warmup, deadline) < 0)) {
        send_report(up_fd, &rep);
        worker_teardown();
        return EXIT_FAILED;
    }
    rep.kind = REPORT_READY;
    send_report(up_fd, &rep);
    /* The coordinator closes the go-pipe to start everyone at once. */
    while (read(go_fd, &byte, 1) < 0 && errno == EINTR)
        ;
    getrusage(RUSAGE_SELF, &before);
    int rc = run_batch(share, deadline);
    getrusage(RUSAGE_SELF, &after);
    rep.done_ns = now_ns();
    rep.kind = rc < 0 ? REPORT_FAILED : REPORT_DONE;
    rep.requests = W.answered;
    rep.p50_ns = bench_percentile(W.latency, W.answered, 50);
    rep.p99_ns = bench_percentile(W.latency, W.answered, 99);
    rep.cpu_us = cpu_us_of(&after) - cpu_us_of(&before);
    rep.maxrss_kb = (uint64_t)after.ru_maxrss;
    send_report(up_fd, &rep);
    worker_teardown();
    return rc < 0 ? EXIT_FAILED : 0;
}

/* ------------------------------------------------------------------ */
/* Inbound worker: a handler answering with the payload it was sent     */
/* ------------------------------------------------------------------ */

static void on_call(volt_client *c, volt_call *call, void *privdata)
{
    size_t len;
    const void *payload = volt_call_payload(call, &len);
    int rc = volt_call_reply(call, payload, len);

    if (rc < 0) {
        worker_fail("answering call %" PRIu32 ": %s", W.calls, volt_strerror(rc));
        return;
    }
    if (++W.calls == W.calls_warm)
        getrusage(RUSAGE_SELF, &W.calls_ru0);
    if (W.calls == W.calls_goal)
        volt_client_stop(c);
}

static int inbound_worker_main(const struct options *o, int up_fd)
{
    uint64_t deadline = now_ns() + (uint64_t)o->deadline_ms * 1000000u;
    struct report rep = {.kind = REPORT_FAILED};
    volt_result *res = NULL;
    struct rusage after;
    int rc;

    if (worker_setup(o, 0, 1) < 0)
        goto fail;
    W.calls_warm = o->warmup;
    W.calls_goal = o->warmup + o->n;
    if (W.calls_warm == 0)
        getrusage(RUSAGE_SELF, &W.calls_ru0);
    rc = volt_register_handler(W.client, "bench-echo", on_call, NULL);
    /* A round trip after it: the broker has the handler before the
     * coordinator makes the server call it. */
    if (rc == 0)
        rc = volt_send_command_sync(W.client, "status", NULL, 0, 10000, &res);
    volt_result_free(res);
    if (rc < 0) {
        fprintf(stderr, "bench-broker: registering the handler: %s\n", volt_strerror(rc));
        goto fail;
    }
    rep.kind = REPORT_READY;
    send_report(up_fd, &rep);
    while (!W.failed && W.calls < W.calls_goal) {
        if (now_ns() > deadline) {
            worker_fail("%" PRIu32 " of %" PRIu32 " calls answered before the deadline", W.calls,
                        W.calls_goal);
            break;
        }
        rc = volt_client_run_for(W.client, 200);
        if (rc < 0)
            worker_fail("broker connection: %s", volt_strerror(rc));
    }
    getrusage(RUSAGE_SELF, &after);
    rep.kind = W.failed ? REPORT_FAILED : REPORT_DONE;
    rep.requests = W.calls - W.calls_warm;
    rep.cpu_us = cpu_us_of(&after) - cpu_us_of(&W.calls_ru0);
    rep.maxrss_kb = (uint64_t)after.ru_maxrss;
    rep.done_ns = now_ns();
fail:
    send_report(up_fd, &rep);
    worker_teardown();
    return rep.kind == REPORT_DONE ? 0 : EXIT_FAILED;
}

/* ------------------------------------------------------------------ */
/* The dev server's control API (inbound and memory modes)             */
/* ------------------------------------------------------------------ */

struct http_body {
    char *data;
    size_t len, cap;
};

static size_t collect_body(char *data, size_t size, size_t n, void *ud)
{
    struct http_body *b = ud;
    size_t len = size * n;

    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

/* GET (json NULL) or POST json to server_url + path; the body in *b.
 * Returns the HTTP status, or -1. */
static long http_call(CURL *curl, const char *server_url, const char *path, const char *json,
                      struct http_body *b)
{
    char url[512];
    long status = -1;

    snprintf(url, sizeof(url), "%s%s", server_url, path);
    b->len = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    if (json)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (!b->data)
        status = -1;
    return status;
}

static size_t count_substr(const char *s, const char *sub)
{
    size_t n = 0, len = strlen(sub);

    while ((s = strstr(s, sub))) {
        n++;
        s += len;
    }
    return n;
}

/* One server-request call with count k; every answer must be a success. */
static int post_batch(CURL *curl, const struct options *o, const char *body, struct http_body *b)
{
    char expect[64];
    long status = http_call(curl, o->server_url, "/_dev/server-request", body, b);

    snprintf(expect, sizeof(expect), "\"answered\":%" PRIu32 ",", o->k);
    if (status != 200 || !strstr(b->data, expect) ||
        count_substr(b->data, "\"success\":true") != o->k) {
        fprintf(stderr, "bench-broker: server-request batch failed (HTTP %ld): %.300s\n", status,
                b->data ? b->data : "");
        return -1;
    }
    return 0;
}

/* The dev server's counters.requests, or -1. */
static long dev_requests(CURL *curl, const struct options *o, struct http_body *b)
{
    const char *p;

    if (http_call(curl, o->server_url, "/_dev/state", NULL, b) != 200)
        return -1;
    p = strstr(b->data, "\"requests\":");
    return p ? strtol(p + 11, NULL, 10) : -1;
}

/* ------------------------------------------------------------------ */
/* Coordinator                                                          */
/* ------------------------------------------------------------------ */

/* Reads one report, waiting until deadline_ns; -1 on timeout or EOF. */
static int read_report(int fd, struct report *r, uint64_t deadline_ns)
{
    size_t got = 0;
    while (got < sizeof(*r)) {
        uint64_t now = now_ns();
        if (now >= deadline_ns)
            return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll(&pfd, 1, (int)((deadline_ns - now) / 1000000u) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        ssize_t n = read(fd, (char *)r + got, sizeof(*r) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static void stop_workers(const pid_t *pids, uint32_t n, bool kill_them)
{
    for (uint32_t i = 0; i < n; i++) {
        if (kill_them)
            kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
}

/* What the coordinator measures of the sampled processes. */
struct samples {
    int64_t cpu[MAX_SAMPLE_PIDS];
    long hwm[MAX_SAMPLE_PIDS];
    int sc_fd[MAX_SAMPLE_PIDS];
    int64_t syscalls[MAX_SAMPLE_PIDS];
    int tc_fd[MAX_SAMPLE_PIDS];
    int64_t task_ns[MAX_SAMPLE_PIDS]; /* main thread, exact */
};

static void samples_start(const struct options *o, struct samples *s)
{
    for (int i = 0; i < o->n_samples; i++) {
        s->sc_fd[i] = bench_syscall_counter_open(o->samples[i].pid);
        s->syscalls[i] = bench_syscall_counter_read(s->sc_fd[i]);
        s->tc_fd[i] = bench_task_clock_open(o->samples[i].pid);
        s->task_ns[i] = bench_syscall_counter_read(s->tc_fd[i]);
        s->cpu[i] = bench_proc_cpu_us(o->samples[i].pid);
    }
}

static void samples_stop(const struct options *o, struct samples *s)
{
    for (int i = 0; i < o->n_samples; i++) {
        int64_t now = bench_proc_cpu_us(o->samples[i].pid);
        int64_t sc = bench_syscall_counter_read(s->sc_fd[i]);
        int64_t tc = bench_syscall_counter_read(s->tc_fd[i]);

        s->cpu[i] = now < 0 || s->cpu[i] < 0 ? -1 : now - s->cpu[i];
        s->syscalls[i] = sc < 0 || s->syscalls[i] < 0 ? -1 : sc - s->syscalls[i];
        s->task_ns[i] = tc < 0 || s->task_ns[i] < 0 ? -1 : tc - s->task_ns[i];
        s->hwm[i] = bench_proc_status_kb(o->samples[i].pid, "VmHWM");
        if (s->sc_fd[i] >= 0)
            close(s->sc_fd[i]);
        if (s->tc_fd[i] >= 0)
            close(s->tc_fd[i]);
    }
}

static const char *mode_name(enum mode m)
{
    return m == MODE_INBOUND   ? "inbound"
           : m == MODE_MEMORY  ? "memory"
           : m == MODE_STARTUP ? "startup"
                               : "load";
}

struct outcome {
    double seconds;
    uint64_t cpu_us, maxrss_kb, requests;
    uint64_t p50_ns, p99_ns;
    double fairness; /* slowest over fastest client, from the release */
};

static void print_result(const struct options *o, const struct outcome *out,
                         const struct samples *s)
{
    double rps = (double)out->requests / out->seconds;

    printf("bench-broker (libvoltclient %s, %s): %" PRIu32 " client(s), %" PRIu64
           " requests, %" PRIu32 " in flight each: %.0f req/s, clients CPU %.1f us/req, "
           "p50 %.1f us, p99 %.1f us, peak RSS %" PRIu64 " KiB in all\n",
           volt_version(), mode_name(o->mode), o->clients, out->requests, o->k, rps,
           (double)out->cpu_us / (double)out->requests, (double)out->p50_ns / 1000.0,
           (double)out->p99_ns / 1000.0, out->maxrss_kb);
    printf("RESULT tool=broker mode=%s clients=%" PRIu32 " n=%" PRIu64 " k=%" PRIu32
           " payload_bytes=%" PRIu32 " seconds=%.4f rps=%.0f clients_cpu_us=%" PRIu64
           " clients_maxrss_kb=%" PRIu64 " p50_us=%.1f p99_us=%.1f fairness=%.3f",
           mode_name(o->mode), o->clients, out->requests, o->k, o->payload_bytes, out->seconds, rps,
           out->cpu_us, out->maxrss_kb, (double)out->p50_ns / 1000.0, (double)out->p99_ns / 1000.0,
           out->fairness);
    for (int i = 0; i < o->n_samples; i++)
        printf(" %s_pid=%d %s_cpu_us=%" PRId64
               " %s_task_us=%.1f %s_hwm_kb=%ld %s_syscalls=%" PRId64,
               o->samples[i].label, (int)o->samples[i].pid, o->samples[i].label, s->cpu[i],
               o->samples[i].label, s->task_ns[i] < 0 ? -1.0 : (double)s->task_ns[i] / 1000.0,
               o->samples[i].label, s->hwm[i], o->samples[i].label, s->syscalls[i]);
    printf("\n");
    fflush(stdout);
}

/* Inbound: K calls at a time through the control API, warm-up first. */
static int drive_inbound(const struct options *o, struct samples *s, uint64_t *t0)
{
    CURL *curl = curl_easy_init();
    struct http_body b = {0};
    uint32_t warm_batches = o->warmup / o->k, batches = o->n / o->k;
    size_t body_len = o->payload_bytes + 256;
    char *body = malloc(body_len), *str = malloc(o->payload_bytes + 1);
    int rc = -1;

    if (!curl || !body || !str)
        goto out;
    for (uint32_t j = 0; j < o->payload_bytes; j++)
        str[j] = "0123456789abcdef"[j % 16];
    str[o->payload_bytes] = '\0';
    snprintf(body, body_len,
             "{\"command\":\"bench-echo\",\"payload\":{\"i\":1,\"s\":\"%s\"},\"count\":%" PRIu32
             ",\"timeoutMs\":20000}",
             str, o->k);
    for (uint32_t i = 0; i < warm_batches; i++)
        if (post_batch(curl, o, body, &b) < 0)
            goto out;
    samples_start(o, s);
    *t0 = now_ns();
    for (uint32_t i = 0; i < batches; i++)
        if (post_batch(curl, o, body, &b) < 0)
            goto out;
    rc = 0;
out:
    if (curl)
        curl_easy_cleanup(curl);
    free(b.data);
    free(body);
    free(str);
    return rc;
}

static int coordinate(const struct options *o)
{
    pid_t pids[MAX_CLIENTS];
    int up[2], go[2];
    uint32_t started = 0;
    /* Later than the workers' own deadline, so that they can say what failed. */
    uint64_t deadline = now_ns() + ((uint64_t)o->deadline_ms + 2000u) * 1000000u;
    struct samples s = {0};
    struct outcome out = {0};
    uint64_t t0 = 0, first_done = UINT64_MAX, last_done = 0;
    struct report r;

    if (pipe(up) < 0 || pipe(go) < 0) {
        perror("bench-broker: pipe");
        return EXIT_FAILED;
    }
    fflush(NULL);
    for (; started < o->clients; started++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("bench-broker: fork");
            stop_workers(pids, started, true);
            return EXIT_FAILED;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            close(up[0]);
            close(go[1]);
            if (o->mode == MODE_INBOUND)
                _exit(inbound_worker_main(o, up[1]));
            _exit(worker_main(o, started, up[1], go[0]));
        }
        pids[started] = pid;
    }
    close(up[1]);
    close(go[0]);

    for (uint32_t ready = 0; ready < o->clients; ready++) {
        if (read_report(up[0], &r, deadline) < 0 || r.kind != REPORT_READY) {
            fprintf(stderr, "bench-broker: a client did not get ready\n");
            stop_workers(pids, started, true);
            return EXIT_FAILED;
        }
    }
    if (o->mode == MODE_INBOUND) {
        if (drive_inbound(o, &s, &t0) < 0) {
            stop_workers(pids, started, true);
            return EXIT_FAILED;
        }
    } else {
        samples_start(o, &s);
        t0 = now_ns();
    }
    close(go[1]);

    for (uint32_t done = 0; done < o->clients; done++) {
        if (read_report(up[0], &r, deadline) < 0 || r.kind != REPORT_DONE) {
            fprintf(stderr, "bench-broker: a client failed or timed out\n");
            stop_workers(pids, started, true);
            return EXIT_FAILED;
        }
        out.cpu_us += r.cpu_us;
        out.maxrss_kb += r.maxrss_kb;
        out.requests += r.requests;
        /* The slowest client's percentiles: what a service would see. */
        if (r.p50_ns > out.p50_ns)
            out.p50_ns = r.p50_ns;
        if (r.p99_ns > out.p99_ns)
            out.p99_ns = r.p99_ns;
        if (r.done_ns < first_done)
            first_done = r.done_ns;
        if (r.done_ns > last_done)
            last_done = r.done_ns;
    }
    out.seconds = (double)(now_ns() - t0) / 1e9;
    samples_stop(o, &s);
    out.fairness = first_done > t0 ? (double)(last_done - t0) / (double)(first_done - t0) : 0;
    close(up[0]);
    stop_workers(pids, started, false);
    if (out.requests != o->n) {
        fprintf(stderr, "bench-broker: %" PRIu64 " requests answered, expected %" PRIu32 "\n",
                out.requests, o->n);
        return EXIT_FAILED;
    }
    print_result(o, &out, &s);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Memory and start-up modes                                           */
/* ------------------------------------------------------------------ */

static pid_t sample_pid(const struct options *o, const char *label)
{
    for (int i = 0; i < o->n_samples; i++)
        if (strcmp(o->samples[i].label, label) == 0)
            return o->samples[i].pid;
    return 0;
}

static volt_client *connect_client(const struct options *o, const char *name, int timeout_ms)
{
    struct volt_options vo;
    volt_client *c;

    volt_options_init(&vo);
    vo.socket_path = o->socket_path;
    vo.name = name;
    vo.reconnect = 0;
    c = volt_client_new(&vo);
    if (!c)
        return NULL;
    if (volt_client_connect_blocking(c, timeout_ms) < 0 || volt_client_wait_ready(c, 10000) < 0) {
        volt_client_free(c);
        return NULL;
    }
    return c;
}

static uint32_t pending_failed;

static void on_pending_result(volt_client *c, const volt_result *r, void *privdata)
{
    if (r->code != VOLT_E_BROKER_GONE)
        pending_failed++;
}

/* Half the broker's default maxInFlightPerClient. */
#define PENDING_PER_HOLDER 5000u

static int memory_main(const struct options *o)
{
    pid_t broker = sample_pid(o, "broker");
    volt_client **clients = calloc(o->mem_clients ? o->mem_clients : 1, sizeof(*clients));
    CURL *curl = curl_easy_init();
    struct http_body b = {0};
    long idle_kb, before_kb, after_kb, pend_before_kb, pend_after_kb, base_requests, now_requests;
    uint64_t deadline = now_ns() + (uint64_t)o->deadline_ms * 1000000u;
    uint32_t sent = 0, holders;
    int rc = EXIT_FAILED;

    if (!broker || !clients || !curl || !o->server_url) {
        fprintf(stderr, "bench-broker: memory mode needs --sample broker=PID and --server URL\n");
        goto out;
    }
    idle_kb = bench_proc_status_kb(broker, "VmRSS");
    before_kb = idle_kb;
    for (uint32_t i = 0; i < o->mem_clients; i++) {
        clients[i] = connect_client(o, "bench-idle", 5000);
        if (!clients[i]) {
            fprintf(stderr, "bench-broker: idle client %" PRIu32 " could not connect\n", i);
            goto out;
        }
    }
    after_kb = bench_proc_status_kb(broker, "VmRSS");
    /* The pending requests are spread over enough clients to stay within
     * the broker's default maxInFlightPerClient (10000): the figure is
     * what a pending request costs, not what a refused one does. */
    holders = (o->mem_pending + PENDING_PER_HOLDER - 1) / PENDING_PER_HOLDER;
    if (holders == 0)
        holders = 1;
    if (holders > o->mem_clients) {
        fprintf(stderr,
                "bench-broker: %" PRIu32 " pending requests need %" PRIu32 " clients (--clients)\n",
                o->mem_pending, holders);
        goto out;
    }
    for (uint32_t i = holders; i < o->mem_clients; i++) {
        volt_client_free(clients[i]);
        clients[i] = NULL;
    }

    /* Requests the server never answers, with a timeout longer than the run. */
    base_requests = dev_requests(curl, o, &b);
    pend_before_kb = bench_proc_status_kb(broker, "VmRSS");
    while (sent < o->mem_pending) {
        volt_client *holder = clients[sent % holders];
        int r = volt_send_command(holder, "never", "\xc0", 1, 600000, on_pending_result, NULL);
        if (r == VOLT_E_LIMIT_EXCEEDED) {
            volt_client_run_for(holder, 1);
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "bench-broker: pending request %" PRIu32 ": %s\n", sent,
                    volt_strerror(r));
            goto out;
        }
        sent++;
    }
    do {
        if (now_ns() > deadline) {
            fprintf(stderr, "bench-broker: the server did not see the pending requests in time\n");
            goto out;
        }
        for (uint32_t i = 0; i < holders; i++)
            volt_client_run_for(clients[i], 50 / holders + 1);
        now_requests = dev_requests(curl, o, &b);
    } while (base_requests < 0 || now_requests < base_requests + (long)o->mem_pending);
    pend_after_kb = bench_proc_status_kb(broker, "VmRSS");
    if (pending_failed) {
        fprintf(stderr, "bench-broker: %" PRIu32 " pending requests ended early\n", pending_failed);
        goto out;
    }
    printf("bench-broker (memory): broker idle RSS %ld KiB, %.0f B per client (%" PRIu32
           " clients), %.0f B per pending request (%" PRIu32 ")\n",
           idle_kb, (double)(after_kb - before_kb) * 1024.0 / o->mem_clients, o->mem_clients,
           (double)(pend_after_kb - pend_before_kb) * 1024.0 / o->mem_pending, o->mem_pending);
    printf("RESULT tool=broker mode=memory idle_rss_kb=%ld per_client_b=%.0f per_pending_b=%.0f "
           "mem_clients=%" PRIu32 " mem_pending=%" PRIu32 "\n",
           idle_kb, (double)(after_kb - before_kb) * 1024.0 / o->mem_clients,
           (double)(pend_after_kb - pend_before_kb) * 1024.0 / o->mem_pending, o->mem_clients,
           o->mem_pending);
    fflush(stdout);
    rc = 0;
out:
    for (uint32_t i = 0; clients && i < o->mem_clients; i++)
        if (clients[i])
            volt_client_free(clients[i]);
    free(clients);
    if (curl)
        curl_easy_cleanup(curl);
    free(b.data);
    return rc;
}

static int startup_main(const struct options *o)
{
    uint64_t deadline = now_ns() + (uint64_t)o->deadline_ms * 1000000u;
    struct volt_options vo;
    volt_client *c;
    uint64_t elapsed;

    volt_options_init(&vo);
    vo.socket_path = o->socket_path;
    vo.name = "bench-startup";
    vo.reconnect = 0;
    c = volt_client_new(&vo);
    if (!c)
        return EXIT_FAILED;
    /* The socket appears some time after the start: try every 0.5 ms. */
    while (volt_client_connect_blocking(c, 1000) < 0) {
        if (now_ns() > deadline) {
            fprintf(stderr, "bench-broker: the broker socket did not appear\n");
            volt_client_free(c);
            return EXIT_FAILED;
        }
        usleep(500);
    }
    if (volt_client_wait_ready(c, o->deadline_ms) < 0) {
        fprintf(stderr, "bench-broker: the upstream did not get ready\n");
        volt_client_free(c);
        return EXIT_FAILED;
    }
    elapsed = bench_wall_ns() - o->since_ns;
    volt_client_free(c);
    printf("bench-broker (startup): ready %.1f ms after the start\n", (double)elapsed / 1e6);
    printf("RESULT tool=broker mode=startup start_to_ready_us=%.0f\n", (double)elapsed / 1e3);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bench-broker [OPTIONS]\n"
            "Send echo commands to the VOLT server through volt-broker and measure.\n"
            "\n"
            "  -s, --socket PATH       broker socket (default: $VOLT_BROKER_SOCKET, ...)\n"
            "  -n N                    requests in the timed phase, split over the\n"
            "                          clients (default 20000)\n"
            "  -k K                    requests in flight per client (default 100)\n"
            "  -c C                    client processes sharing the broker (default 1)\n"
            "      --payload-bytes B   length of the string in each payload (default 16)\n"
            "      --warmup W          requests per client before the timed phase (default 500)\n"
            "      --sample LABEL=PID  also report the CPU of PID over the timed phase,\n"
            "                          its system calls and peak RSS as LABEL_cpu_us,\n"
            "                          LABEL_syscalls, LABEL_hwm_kb (repeatable, up to 8;\n"
            "                          LABEL is [a-z0-9_]+)\n"
            "      --mode MODE         load (default), inbound, memory or startup\n"
            "      --server URL        the dev server (inbound, memory), http://host:port\n"
            "      --clients M         memory: idle clients connected at once (default 200)\n"
            "      --pending P         memory: requests kept pending (default 20000)\n"
            "      --since-ns T        startup: CLOCK_REALTIME ns when the broker started\n"
            "      --deadline-ms MS    give up after MS (default 90000)\n"
            "      --command NAME      send NAME instead of echo (to see the checks fail)\n"
            "  -h, --help              show this help\n");
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "-n" or "--payload-bytes", for messages; the static buffer is enough
 * for a program that reports one bad option and exits. */
static const char *option_name(int opt, const struct option *longopts)
{
    static char name[32];

    for (; longopts->name; longopts++) {
        if (longopts->val == opt) {
            snprintf(name, sizeof(name), "--%s", longopts->name);
            return name;
        }
    }
    snprintf(name, sizeof(name), "-%c", opt);
    return name;
}

/* LABEL=PID; the label is cut out of arg in place. */
static int parse_sample(char *arg, struct sample *out)
{
    char *eq = strchr(arg, '=');
    uint32_t pid;

    if (!eq || eq == arg || parse_u32(eq + 1, 1, INT32_MAX, &pid) < 0)
        return -1;
    for (const char *p = arg; p < eq; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return -1;
    *eq = '\0';
    out->label = arg;
    out->pid = (pid_t)pid;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_PAYLOAD = 256,
        OPT_WARMUP,
        OPT_SAMPLE,
        OPT_DEADLINE,
        OPT_COMMAND,
        OPT_MODE,
        OPT_SERVER,
        OPT_CLIENTS,
        OPT_PENDING,
        OPT_SINCE
    };
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"payload-bytes", required_argument, NULL, OPT_PAYLOAD},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"sample", required_argument, NULL, OPT_SAMPLE},
        {"deadline-ms", required_argument, NULL, OPT_DEADLINE},
        {"command", required_argument, NULL, OPT_COMMAND},
        {"mode", required_argument, NULL, OPT_MODE},
        {"server", required_argument, NULL, OPT_SERVER},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"pending", required_argument, NULL, OPT_PENDING},
        {"since-ns", required_argument, NULL, OPT_SINCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint32_t v;
    int opt;

    *o = (struct options){.n = 20000,
                          .k = 100,
                          .clients = 1,
                          .payload_bytes = 16,
                          .warmup = 500,
                          .deadline_ms = 90000,
                          .command = "echo",
                          .mem_clients = 200,
                          .mem_pending = 20000};
    while ((opt = getopt_long(argc, argv, "s:n:k:c:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 's':
            o->socket_path = optarg;
            break;
        case 'n':
            bad = parse_u32(optarg, 1, 100000000, &o->n);
            break;
        case 'k':
            bad = parse_u32(optarg, 1, 1000000, &o->k);
            break;
        case 'c':
            bad = parse_u32(optarg, 1, MAX_CLIENTS, &o->clients);
            break;
        case OPT_PAYLOAD:
            bad = parse_u32(optarg, 0, 64 * 1024 * 1024, &o->payload_bytes);
            break;
        case OPT_WARMUP:
            bad = parse_u32(optarg, 0, 100000000, &o->warmup);
            break;
        case OPT_SAMPLE:
            bad =
                o->n_samples == MAX_SAMPLE_PIDS || parse_sample(optarg, &o->samples[o->n_samples]);
            if (!bad)
                o->n_samples++;
            break;
        case OPT_COMMAND:
            o->command = optarg;
            break;
        case OPT_MODE:
            if (strcmp(optarg, "load") == 0)
                o->mode = MODE_LOAD;
            else if (strcmp(optarg, "inbound") == 0)
                o->mode = MODE_INBOUND;
            else if (strcmp(optarg, "memory") == 0)
                o->mode = MODE_MEMORY;
            else if (strcmp(optarg, "startup") == 0)
                o->mode = MODE_STARTUP;
            else
                bad = 1;
            break;
        case OPT_SERVER:
            o->server_url = optarg;
            break;
        case OPT_CLIENTS:
            bad = parse_u32(optarg, 1, 10000, &o->mem_clients);
            break;
        case OPT_PENDING:
            bad = parse_u32(optarg, 1, 1000000, &o->mem_pending);
            break;
        case OPT_SINCE: {
            char *end;
            errno = 0;
            o->since_ns = strtoull(optarg, &end, 10);
            bad = *optarg == '\0' || *end != '\0' || errno != 0;
            break;
        }
        case OPT_DEADLINE:
            bad = parse_u32(optarg, 1, 3600000, &v);
            o->deadline_ms = (int)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "bench-broker: bad value '%s' for %s\n", optarg,
                    option_name(opt, longopts));
            return -1;
        }
    }
    if (optind != argc || o->n < o->clients) {
        usage(stderr);
        return -1;
    }
    if (o->mode == MODE_INBOUND) {
        /* One service; whole batches of K calls through the control API. */
        if (!o->server_url || o->k > 10000) {
            fprintf(stderr, "bench-broker: --mode inbound needs --server and -k <= 10000\n");
            return -1;
        }
        o->clients = 1;
        o->n = o->n / o->k * o->k;
        o->warmup = o->warmup / o->k * o->k;
        if (o->n == 0)
            o->n = o->k;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o) < 0)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    if (o.mode == MODE_MEMORY)
        return memory_main(&o);
    if (o.mode == MODE_STARTUP)
        return startup_main(&o);
    return coordinate(&o);
}
