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
 * peer.js is the same program for "one socket.io-client per service"; both
 * print a `RESULT key=value ...` line that run.sh turns into a table. The
 * coordinator can also sample other processes (--sample LABEL=PID: the
 * broker, the dev server) over exactly the timed phase, from /proc/PID/stat.
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

#include <volt/client.h>

#define MAX_CLIENTS     256
#define MAX_SAMPLE_PIDS 8

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct options {
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
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
    bool failed;
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
    if (!W.str || !W.payload || !W.seen) {
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
    rep.kind = rc < 0 ? REPORT_FAILED : REPORT_DONE;
    rep.requests = W.answered;
    rep.cpu_us = cpu_us_of(&after) - cpu_us_of(&before);
    rep.maxrss_kb = (uint64_t)after.ru_maxrss;
    send_report(up_fd, &rep);
    worker_teardown();
    return rc < 0 ? EXIT_FAILED : 0;
}

/* ------------------------------------------------------------------ */
/* Coordinator                                                          */
/* ------------------------------------------------------------------ */

/* utime + stime of pid in microseconds; -1 when it cannot be read. */
static int64_t proc_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long utime, stime;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* The command name may hold spaces and parentheses: start after the last ')'. */
    const char *p = strrchr(buf, ')');
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (int64_t)((utime + stime) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* VmHWM of pid in KiB; -1 when it cannot be read. */
static long proc_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

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

static void print_result(const struct options *o, double seconds, uint64_t cpu_us,
                         uint64_t maxrss_kb, const int64_t *sample_cpu, const long *sample_hwm)
{
    double rps = (double)o->n / seconds;
    printf("bench-broker (libvoltclient %s): %" PRIu32 " client(s), %" PRIu32
           " echo requests, %" PRIu32 " in flight each: %.0f req/s, clients CPU %.1f us/req, "
           "peak RSS %" PRIu64 " KiB in all\n",
           volt_version(), o->clients, o->n, o->k, rps, (double)cpu_us / o->n, maxrss_kb);
    printf("RESULT tool=broker clients=%" PRIu32 " n=%" PRIu32 " k=%" PRIu32
           " payload_bytes=%" PRIu32 " seconds=%.4f rps=%.0f clients_cpu_us=%" PRIu64
           " clients_maxrss_kb=%" PRIu64,
           o->clients, o->n, o->k, o->payload_bytes, seconds, rps, cpu_us, maxrss_kb);
    for (int i = 0; i < o->n_samples; i++)
        printf(" %s_pid=%d %s_cpu_us=%" PRId64 " %s_hwm_kb=%ld", o->samples[i].label,
               (int)o->samples[i].pid, o->samples[i].label, sample_cpu[i], o->samples[i].label,
               sample_hwm[i]);
    printf("\n");
    fflush(stdout);
}

static int coordinate(const struct options *o)
{
    pid_t pids[MAX_CLIENTS];
    int up[2], go[2];
    uint32_t started = 0;
    /* Later than the workers' own deadline, so that they can say what failed. */
    uint64_t deadline = now_ns() + ((uint64_t)o->deadline_ms + 2000u) * 1000000u;
    int64_t sample_cpu[MAX_SAMPLE_PIDS];
    long sample_hwm[MAX_SAMPLE_PIDS];
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
    for (int i = 0; i < o->n_samples; i++)
        sample_cpu[i] = proc_cpu_us(o->samples[i].pid);
    uint64_t t0 = now_ns();
    close(go[1]);

    uint64_t cpu_us = 0, maxrss_kb = 0, requests = 0;
    for (uint32_t done = 0; done < o->clients; done++) {
        if (read_report(up[0], &r, deadline) < 0 || r.kind != REPORT_DONE) {
            fprintf(stderr, "bench-broker: a client failed or timed out\n");
            stop_workers(pids, started, true);
            return EXIT_FAILED;
        }
        cpu_us += r.cpu_us;
        maxrss_kb += r.maxrss_kb;
        requests += r.requests;
    }
    double seconds = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < o->n_samples; i++) {
        int64_t now = proc_cpu_us(o->samples[i].pid);
        sample_cpu[i] = now < 0 || sample_cpu[i] < 0 ? -1 : now - sample_cpu[i];
        sample_hwm[i] = proc_hwm_kb(o->samples[i].pid);
    }
    close(up[0]);
    stop_workers(pids, started, false);
    if (requests != o->n) {
        fprintf(stderr, "bench-broker: %" PRIu64 " requests answered, expected %" PRIu32 "\n",
                requests, o->n);
        return EXIT_FAILED;
    }
    print_result(o, seconds, cpu_us, maxrss_kb, sample_cpu, sample_hwm);
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
            "      --sample LABEL=PID  also report the CPU of PID over the timed phase\n"
            "                          and its peak RSS as LABEL_cpu_us, LABEL_hwm_kb\n"
            "                          (repeatable, up to 8; LABEL is [a-z0-9_]+)\n"
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
    enum { OPT_PAYLOAD = 256, OPT_WARMUP, OPT_SAMPLE, OPT_DEADLINE, OPT_COMMAND };
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"payload-bytes", required_argument, NULL, OPT_PAYLOAD},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"sample", required_argument, NULL, OPT_SAMPLE},
        {"deadline-ms", required_argument, NULL, OPT_DEADLINE},
        {"command", required_argument, NULL, OPT_COMMAND},
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
                          .command = "echo"};
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
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o) < 0)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    return coordinate(&o);
}
