#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/json.h"
#include "proto/reader.h"
#include "tests/wait-child.h"

#ifndef VOLT_SOURCE_DIR
#error "VOLT_SOURCE_DIR must be defined"
#endif
#ifndef VOLT_BUILD_DIR
#error "VOLT_BUILD_DIR must be defined"
#endif

static int h_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int h_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "harness: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return -1;
}

uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool h_under_valgrind(void)
{
    const char *v = getenv("VOLT_TEST_VALGRIND");
    return v && v[0] == '1';
}

int h_slack_ms(int native)
{
    return h_under_valgrind() ? native * 4 + 10000 : native;
}

int h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    do {
        if (cond(arg))
            return 0;
        h_sleep_ms(20);
    } while (h_now_ms() < end);
    return cond(arg) ? 0 : -1;
}

const char *h_bin(const char *name)
{
    static char path[H_PATH];
    static const char *const dirs[] = {"broker", "contrib/volt-inspect", "contrib/examples",
                                       "tests", ""};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s%s%s", VOLT_BUILD_DIR, dirs[i], dirs[i][0] ? "/" : "",
                 name);
        if (access(path, X_OK) == 0)
            return path;
    }
    snprintf(path, sizeof(path), "%s/%s", VOLT_BUILD_DIR, name);
    return path;
}

static int make_temp_dir(char *out, size_t len, const char *what)
{
    snprintf(out, len, "/tmp/volt-test-%s-XXXXXX", what);
    if (!mkdtemp(out))
        return h_fail("mkdtemp: %s", strerror(errno));
    return 0;
}

/* ---- dev server ---- */

static int server_start_on(struct h_server *s, int port, const char *const *extra_args)
{
    char script[H_PATH], port_arg[16];
    const char *argv[64];
    int n = 0, out_pipe[2];

    memset(s, 0, sizeof(*s));
    if (make_temp_dir(s->dir, sizeof(s->dir), "server") < 0)
        return -1;
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    snprintf(script, sizeof(script), "%s/contrib/volt-dev-server/server.js", VOLT_SOURCE_DIR);
    argv[n++] = "node";
    argv[n++] = script;
    snprintf(port_arg, sizeof(port_arg), "%d", port);
    argv[n++] = "--port";
    argv[n++] = port_arg;
    for (; extra_args && *extra_args && n < 60; extra_args++) {
        if (!strcmp(*extra_args, "--tls-cert"))
            s->tls = true;
        argv[n++] = *extra_args;
    }
    argv[n] = NULL;
    if (pipe(out_pipe) < 0)
        return h_fail("pipe: %s", strerror(errno));
    s->pid = fork();
    if (s->pid < 0)
        return h_fail("fork: %s", strerror(errno));
    if (s->pid == 0) {
        int logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(out_pipe[1], STDOUT_FILENO);
        if (logfd >= 0)
            dup2(logfd, STDERR_FILENO);
        close(out_pipe[0]);
        execvp("node", (char *const *)argv);
        _exit(127);
    }
    close(out_pipe[1]);
    /* The first stdout line is {"event":"listening","port":N,...}. */
    char line[512];
    size_t used = 0;
    uint64_t end = h_now_ms() + 15000;
    while (h_now_ms() < end && used < sizeof(line) - 1) {
        struct pollfd pfd = {out_pipe[0], POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(out_pipe[0], line + used, 1);
        if (r <= 0)
            break;
        if (line[used] == '\n')
            break;
        used++;
    }
    line[used] = '\0';
    const char *p = strstr(line, "\"port\":");
    if (!p) {
        close(out_pipe[0]);
        h_server_stop(s);
        return h_fail("dev server did not start (log: %s): '%s'", s->log, line);
    }
    s->port = atoi(p + 7);
    /* Keep draining its stdout in the background by handing the pipe to a
     * child that copies it to the log: node must never block on a full pipe. */
    pid_t drain = fork();
    if (drain == 0) {
        int logfd = open(s->log, O_WRONLY | O_APPEND);
        char buf[4096];
        ssize_t r;
        while ((r = read(out_pipe[0], buf, sizeof(buf))) > 0)
            if (logfd >= 0 && write(logfd, buf, (size_t)r) < 0)
                break;
        _exit(0);
    }
    close(out_pipe[0]);
    return 0;
}

int h_server_start(struct h_server *s, const char *const *extra_args)
{
    return server_start_on(s, 0, extra_args);
}

/* -1 on timeout (the child is left running), or after saying why. */
static int wait_pid(pid_t pid, int timeout_ms, int *status)
{
    if (wait_child(pid, timeout_ms, status) == 0)
        return 0;
    if (errno == ETIMEDOUT)
        return -1;
    return h_fail("waiting for child %d: %s", (int)pid, strerror(errno));
}

static void server_end(struct h_server *s, int signum)
{
    int st;
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, signum);
    if (wait_pid(s->pid, 5000, &st) < 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
    }
    s->pid = 0;
    /* Reap the stdout drainer too. */
    while (waitpid(-1, &st, WNOHANG) > 0)
        ;
    char cmd[H_PATH + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", s->dir);
}

void h_server_stop(struct h_server *s)
{
    server_end(s, SIGTERM);
}

int h_server_kill_and_restart(struct h_server *s, const char *const *extra_args)
{
    int port = s->port;
    server_end(s, SIGKILL);
    return server_start_on(s, port, extra_args);
}

void h_server_pause(struct h_server *s, bool pause)
{
    kill(s->pid, pause ? SIGSTOP : SIGCONT);
}

struct membuf {
    char *data;
    size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    struct membuf *m = ud;
    char *p = realloc(m->data, m->len + size * n + 1);
    if (!p)
        return 0;
    memcpy(p + m->len, ptr, size * n);
    m->data = p;
    m->len += size * n;
    m->data[m->len] = '\0';
    return size * n;
}

long h_http(const struct h_server *s, const char *method, const char *path, const char *body,
            char **resp)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    struct membuf m = {NULL, 0};
    char url[H_PATH];
    long status = -1;

    if (!curl)
        return -1;
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", s->tls ? "https" : "http", s->port, path);
    if (s->tls) /* the test's own self-signed server */
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &m);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (resp)
        *resp = m.data ? m.data : strdup("");
    else
        free(m.data);
    return status;
}

cJSON *h_http_json(const struct h_server *s, const char *method, const char *path, const char *body)
{
    char *text = NULL;
    cJSON *j;
    long st = h_http(s, method, path, body, &text);
    j = text ? cJSON_Parse(text) : NULL;
    if (!j)
        h_fail("%s %s: status %ld, body '%s'", method, path, st, text ? text : "");
    free(text);
    return j;
}

void h_apply_test_filter(void)
{
    const char *filter = getenv("VOLT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
}

double h_server_counter(const struct h_server *s, const char *name)
{
    char path[128];
    cJSON *st = h_http_json(s, "GET", "/_dev/state", NULL);
    snprintf(path, sizeof(path), "counters.%s", name);
    double v = h_json_num(st, path, -1);
    cJSON_Delete(st);
    return v;
}

int h_wait_server_counter(const struct h_server *s, const char *name, double min, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    double v;
    while ((v = h_server_counter(s, name)) < min) {
        if (h_now_ms() >= end)
            return h_fail("server counter %s is %g, waited %d ms for at least %g", name, v,
                          timeout_ms, min);
        h_sleep_ms(20);
    }
    return 0;
}

/* ---- broker ---- */

static char *substitute(const char *in, const struct h_broker *b, const struct h_server *s)
{
    size_t cap = strlen(in) * 2 + 4096, len = 0;
    char *out = malloc(cap);
    char port[16];

    snprintf(port, sizeof(port), "%d", s ? s->port : 0);
    while (*in && len + 600 < cap) {
        const char *rep = NULL;
        size_t skip = 0;
        if (!strncmp(in, "%SOCK%", 6)) {
            rep = b->sock;
            skip = 6;
        } else if (!strncmp(in, "%STATE%", 7)) {
            rep = b->state_dir;
            skip = 7;
        } else if (!strncmp(in, "%PORT%", 6)) {
            rep = port;
            skip = 6;
        }
        if (rep) {
            len += (size_t)snprintf(out + len, cap - len, "%s", rep);
            in += skip;
        } else {
            out[len++] = *in++;
        }
    }
    out[len] = '\0';
    return out;
}

static void set_sun_path(struct sockaddr_un *a, const char *path)
{
    size_t n = strlen(path);
    if (n >= sizeof(a->sun_path))
        n = sizeof(a->sun_path) - 1;
    memcpy(a->sun_path, path, n);
    a->sun_path[n] = '\0';
}

static int last_connect_errno; /* of sock_connectable(), for the failure message */

static bool sock_connectable(void *arg)
{
    const struct h_broker *b = arg;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    bool ok;
    set_sun_path(&a, b->sock);
    ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    last_connect_errno = ok ? 0 : errno;
    close(fd);
    return ok;
}

/* In the child, before exec: the socket-activation fd becomes fd 3, with
 * LISTEN_PID naming this very process (which exec keeps). */
static void pass_listen_fd(int fd)
{
    char pid[32];
    if (fd != 3) {
        dup2(fd, 3);
        close(fd);
    }
    fcntl(3, F_SETFD, 0);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
}

static bool log_has_wait_line(void *arg)
{
    const struct h_broker *b = arg;
    return h_broker_log_contains(b, b->wait_log);
}

static int spawn_broker_opts(struct h_broker *b, const struct h_broker_opts *o)
{
    const char *const *extra_env = o->extra_env;
    char supp[H_PATH];

    b->valgrind = h_under_valgrind();
    snprintf(supp, sizeof(supp), "--suppressions=%s/tests/valgrind.supp", VOLT_SOURCE_DIR);
    b->pid = fork();
    if (b->pid < 0)
        return h_fail("fork: %s", strerror(errno));
    if (b->pid == 0) {
        int logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (logfd >= 0) {
            dup2(logfd, STDOUT_FILENO);
            dup2(logfd, STDERR_FILENO);
        }
        for (; extra_env && *extra_env; extra_env++)
            putenv((char *)*extra_env);
        if (!o->keep_notify_socket)
            unsetenv("NOTIFY_SOCKET");
        if (o->socket_activation)
            pass_listen_fd(o->listen_fd);
        if (o->nofile && setrlimit(RLIMIT_NOFILE, o->nofile) < 0)
            _exit(126);
        const char *bin = h_bin("volt-broker");
        if (b->valgrind)
            execlp("valgrind", "valgrind", "--quiet", "--leak-check=full",
                   "--show-leak-kinds=definite,indirect,possible",
                   "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
                   supp, bin, "--config", b->config, (char *)NULL);
        else
            execl(bin, bin, "--config", b->config, (char *)NULL);
        _exit(127);
    }
    if (o->wait_log) {
        snprintf(b->wait_log, sizeof(b->wait_log), "%s", o->wait_log);
        if (h_wait_for(log_has_wait_line, b, b->valgrind ? 60000 : 10000) < 0) {
            h_broker_dump_log(b);
            return h_fail("the broker never logged '%s'", o->wait_log);
        }
        return 0;
    }
    if (h_wait_for(sock_connectable, b, b->valgrind ? 60000 : 10000) < 0) {
        h_broker_dump_log(b);
        return h_fail("broker socket %s never accepted connections (last connect: %s)", b->sock,
                      strerror(last_connect_errno));
    }
    return 0;
}

static int spawn_broker(struct h_broker *b, const char *const *extra_env)
{
    struct h_broker_opts o = {.extra_env = extra_env};
    return spawn_broker_opts(b, &o);
}

static int write_config(struct h_broker *b, const struct h_server *s, const char *config_json)
{
    char *text = substitute(config_json, b, s);
    FILE *f = fopen(b->config, "w");
    if (!f) {
        free(text);
        return h_fail("cannot write %s: %s", b->config, strerror(errno));
    }
    fputs(text, f);
    fclose(f);
    free(text);
    return 0;
}

int h_broker_start(struct h_broker *b, const struct h_server *s, const char *config_json,
                   const char *const *extra_env)
{
    struct h_broker_opts o = {.extra_env = extra_env};
    return h_broker_start_opts(b, s, config_json, &o);
}

int h_broker_start_opts(struct h_broker *b, const struct h_server *s, const char *config_json,
                        const struct h_broker_opts *o)
{
    memset(b, 0, sizeof(*b));
    if (make_temp_dir(b->dir, sizeof(b->dir), "broker") < 0)
        return -1;
    /* Tests connect as other users too; the socket's own mode decides. */
    chmod(b->dir, 0755);
    snprintf(b->sock, sizeof(b->sock), "%s/broker.sock", b->dir);
    snprintf(b->config, sizeof(b->config), "%s/broker.json", b->dir);
    snprintf(b->log, sizeof(b->log), "%s/broker.log", b->dir);
    snprintf(b->state_dir, sizeof(b->state_dir), "%s/state", b->dir);
    if (write_config(b, s, config_json) < 0)
        return -1;
    return spawn_broker_opts(b, o);
}

int h_broker_restart(struct h_broker *b, const struct h_server *s, const char *config_json)
{
    if (config_json && write_config(b, s, config_json) < 0)
        return -1;
    return spawn_broker(b, NULL);
}

int h_broker_stop(struct h_broker *b, int timeout_ms)
{
    int st = 0;
    if (b->pid <= 0)
        return h_fail("h_broker_stop: no broker is running");
    kill(b->pid, SIGTERM);
    if (wait_pid(b->pid, b->valgrind ? timeout_ms * 4 + 20000 : timeout_ms, &st) < 0) {
        h_fail("broker did not stop within %d ms; killing it", timeout_ms);
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &st, 0);
        b->pid = 0;
        h_broker_dump_log(b);
        return -1;
    }
    b->pid = 0;
    if (!WIFEXITED(st)) {
        h_broker_dump_log(b);
        return h_fail("broker died of signal %d", WTERMSIG(st));
    }
    if (WEXITSTATUS(st) != 0)
        h_broker_dump_log(b);
    return WEXITSTATUS(st);
}

void h_broker_kill(struct h_broker *b)
{
    int st;
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &st, 0);
    b->pid = 0;
}

void h_broker_cleanup(struct h_broker *b)
{
    char cmd[H_PATH + 16];
    h_broker_kill(b);
    if (!b->dir[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", b->dir);
}

/* Reads to EOF (so /proc files, whose size says 0, work too). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t len = 0, cap = 4096;
    char *buf = f ? malloc(cap) : NULL;

    while (buf) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (len < cap - 1)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf)
        buf[len] = '\0';
    if (f)
        fclose(f);
    return buf;
}

bool h_broker_log_contains(const struct h_broker *b, const char *needle)
{
    return h_broker_log_count(b, needle) > 0;
}

int h_broker_log_count(const struct h_broker *b, const char *needle)
{
    char *text = read_file(b->log);
    int n = 0;

    for (const char *at = text; at && (at = strstr(at, needle)); at += strlen(needle))
        n++;
    free(text);
    return n;
}

void h_broker_dump_log(const struct h_broker *b)
{
    char *text = read_file(b->log);
    fprintf(stderr, "---- broker log (%s) ----\n%s---- end of broker log ----\n", b->log,
            text ? text : "(none)\n");
    free(text);
}

int h_broker_wait(struct h_broker *b, int timeout_ms)
{
    int st = 0;
    if (b->pid <= 0)
        return h_fail("h_broker_wait: no broker is running");
    if (wait_pid(b->pid, b->valgrind ? timeout_ms * 4 + 20000 : timeout_ms, &st) < 0)
        return h_fail("broker (pid %d) did not exit within %d ms", (int)b->pid, timeout_ms);
    b->pid = 0;
    if (!WIFEXITED(st)) {
        h_broker_dump_log(b);
        return h_fail("broker died of signal %d", WTERMSIG(st));
    }
    if (WEXITSTATUS(st) != 0)
        h_broker_dump_log(b);
    return WEXITSTATUS(st);
}

int h_broker_wait_log(const struct h_broker *b, const char *needle, int timeout_ms)
{
    return h_broker_wait_log_count(b, needle, 1, timeout_ms);
}

int h_broker_wait_log_count(const struct h_broker *b, const char *needle, int count, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)(b->valgrind ? timeout_ms * 4 : timeout_ms);
    do {
        if (h_broker_log_count(b, needle) >= count)
            return 0;
        h_sleep_ms(20);
    } while (h_now_ms() < end);
    int seen = h_broker_log_count(b, needle);
    if (seen >= count)
        return 0;
    h_broker_dump_log(b);
    return h_fail("the broker logged '%s' %d times, waited %d ms for %d", needle, seen, timeout_ms,
                  count);
}

/* Appends what is readable on fd to *buf; false at EOF or error. */
static bool drain_fd(int fd, struct membuf *m)
{
    char chunk[4096];
    ssize_t r = read(fd, chunk, sizeof(chunk));
    if (r < 0 && errno == EINTR)
        return true;
    if (r <= 0)
        return false;
    return on_body(chunk, 1, (size_t)r, m) == (size_t)r;
}

int h_run(const char *const *argv, const char *const *extra_env, char **out, char **err,
          int timeout_ms)
{
    bool under_valgrind = h_under_valgrind();
    char supp[H_PATH], bin[H_PATH];
    const char *args[64];
    int n = 0, out_pipe[2], err_pipe[2], st;
    struct membuf mo = {NULL, 0}, me = {NULL, 0};
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s", h_bin(argv[0]));
    snprintf(supp, sizeof(supp), "--suppressions=%s/tests/valgrind.supp", VOLT_SOURCE_DIR);
    if (under_valgrind) {
        static const char *const vg[] = {"valgrind",
                                         "--quiet",
                                         "--leak-check=full",
                                         "--show-leak-kinds=definite,indirect,possible",
                                         "--errors-for-leak-kinds=definite,indirect,possible",
                                         "--error-exitcode=99"};
        for (size_t i = 0; i < sizeof(vg) / sizeof(vg[0]); i++)
            args[n++] = vg[i];
        args[n++] = supp;
    }
    args[n++] = bin;
    for (const char *const *a = argv + 1; *a && n < 63; a++)
        args[n++] = *a;
    args[n] = NULL;
    if (pipe2(out_pipe, O_CLOEXEC) < 0)
        return h_fail("pipe: %s", strerror(errno));
    if (pipe2(err_pipe, O_CLOEXEC) < 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        return h_fail("pipe: %s", strerror(errno));
    }
    pid = fork();
    if (pid < 0)
        return h_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        for (; extra_env && *extra_env; extra_env++)
            putenv((char *)*extra_env);
        execvp(args[0], (char *const *)args);
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    uint64_t end = h_now_ms() + (uint64_t)h_slack_ms(timeout_ms);
    struct pollfd pfd[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    bool timed_out = false;
    while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
        int64_t left = (int64_t)end - (int64_t)h_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (poll(pfd, 2, (int)left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd >= 0 && pfd[i].revents && !drain_fd(pfd[i].fd, i ? &me : &mo)) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pfd[i].fd >= 0)
            close(pfd[i].fd);
    if (timed_out || wait_pid(pid, 5000, &st) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        h_fail("%s did not finish within %d ms", argv[0], timeout_ms);
        st = -1;
    }
    if (out)
        *out = mo.data ? mo.data : strdup("");
    else
        free(mo.data);
    if (err)
        *err = me.data ? me.data : strdup("");
    else
        free(me.data);
    if (st == -1)
        return -1;
    if (!WIFEXITED(st))
        return h_fail("%s died of signal %d", argv[0], WTERMSIG(st));
    return WEXITSTATUS(st);
}

/* ---- raw connection ---- */

struct h_conn {
    int fd;
    struct proto_reader *reader;
    struct proto_json_doc doc;
    struct proto_buf buf;
};

struct h_conn *h_conn_open(const char *sock_path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct h_conn *c = calloc(1, sizeof(*c));

    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    set_sun_path(&a, sock_path);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        h_fail("connect %s: %s", sock_path, strerror(errno));
        close(c->fd);
        free(c);
        return NULL;
    }
    c->reader = proto_reader_new(NULL);
    proto_json_doc_init(&c->doc);
    proto_buf_init(&c->buf);
    return c;
}

void h_conn_close(struct h_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    proto_reader_free(c->reader);
    proto_json_doc_free(&c->doc);
    proto_buf_free(&c->buf);
    free(c);
}

int h_conn_fd(const struct h_conn *c)
{
    return c ? c->fd : -1;
}

/* A connection that could not be made is NULL: every use of it fails the
 * test with an assertion instead of crashing the test program. */
int h_conn_send_raw(struct h_conn *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!c)
        return h_fail("send on a connection that was never made");
    while (len) {
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return h_fail("send: %s", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int h_conn_send(struct h_conn *c, const char *json)
{
    struct proto_json_opts o = {.bin = PROTO_JSON_BIN_MARKER};
    struct proto_json_error err;
    uint8_t prefix[4];

    if (!c)
        return h_fail("send on a connection that was never made");
    proto_buf_reset(&c->buf);
    if (proto_json_to_msgpack(&c->doc, json, strlen(json), &c->buf, &o, &err) < 0)
        return h_fail("bad test JSON '%s': %s", json, err.text);
    uint32_t n = (uint32_t)c->buf.len;
    prefix[0] = (uint8_t)(n >> 24);
    prefix[1] = (uint8_t)(n >> 16);
    prefix[2] = (uint8_t)(n >> 8);
    prefix[3] = (uint8_t)n;
    if (h_conn_send_raw(c, prefix, 4) < 0)
        return -1;
    return h_conn_send_raw(c, c->buf.data, c->buf.len);
}

cJSON *h_conn_recv(struct h_conn *c, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    struct proto_span frame;

    if (!c)
        return NULL;
    for (;;) {
        int rc = proto_reader_next(c->reader, &frame);
        if (rc > 0) {
            struct proto_json_opts o = {.bin = PROTO_JSON_BIN_MARKER};
            struct proto_json_error err;
            proto_buf_reset(&c->buf);
            if (proto_msgpack_to_json(frame.ptr, frame.len, &c->buf, &o, &err) < 0) {
                h_fail("frame has no JSON form: %s", err.text);
                return NULL;
            }
            proto_buf_append_byte(&c->buf, 0);
            return cJSON_Parse((const char *)c->buf.data);
        }
        if (rc < 0) {
            h_fail("bad frame from the broker: %s", proto_reader_error(c->reader));
            return NULL;
        }
        int64_t left = (int64_t)end - (int64_t)h_now_ms();
        if (left <= 0)
            return NULL;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            h_fail("poll: %s", strerror(errno));
        if (ready <= 0)
            return NULL; /* a timeout is no error: negative checks expect it */
        void *space;
        size_t len;
        proto_reader_space(c->reader, 65536, &space, &len);
        ssize_t r = read(c->fd, space, len);
        if (r < 0 && errno != ECONNRESET) /* a reset is the broker closing */
            h_fail("read from the broker: %s", strerror(errno));
        if (r <= 0)
            return NULL;
        proto_reader_commit(c->reader, (size_t)r);
    }
}

cJSON *h_conn_expect_event(struct h_conn *c, const char *event, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = h_now_ms();
        if (now >= end)
            return NULL;
        cJSON *f = h_conn_expect(c, "event", -1, (int)(end - now));
        if (!f)
            return NULL;
        const char *name = h_json_str(f, "event");
        if (name && !strcmp(name, event))
            return f;
        cJSON_Delete(f);
    }
}

const char *h_conn_last_text(const struct h_conn *c)
{
    return c->buf.len ? (const char *)c->buf.data : "";
}

cJSON *h_conn_expect(struct h_conn *c, const char *op, long long id, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int64_t left = (int64_t)end - (int64_t)h_now_ms();
        if (left <= 0)
            return NULL;
        cJSON *f = h_conn_recv(c, (int)left);
        if (!f)
            return NULL;
        const char *fop = h_json_str(f, "op");
        if (fop && !strcmp(fop, op) && (id < 0 || h_json_num(f, "id", -1) == (double)id))
            return f;
        cJSON_Delete(f);
    }
}

bool h_conn_closed(struct h_conn *c, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    char buf[4096];
    if (!c)
        return false;
    for (;;) {
        int64_t left = (int64_t)end - (int64_t)h_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            return false;
        ssize_t r = read(c->fd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false;
    }
}

struct h_conn *h_conn_hello(const char *sock_path, const char *name)
{
    char hello[256];
    struct h_conn *c = h_conn_open(sock_path);
    cJSON *w;

    if (!c)
        return NULL;
    snprintf(hello, sizeof(hello),
             "{\"op\":\"hello\",\"min_version\":1,\"max_version\":1,\"name\":\"%s\"}", name);
    if (h_conn_send(c, hello) < 0 || !(w = h_conn_expect(c, "welcome", -1, h_slack_ms(5000)))) {
        h_fail("no welcome from the broker");
        h_conn_close(c);
        return NULL;
    }
    cJSON_Delete(w);
    return c;
}

cJSON *h_status(const char *sock_path)
{
    struct h_conn *c = h_conn_hello(sock_path, "harness-status");
    cJSON *r, *data = NULL;
    if (!c)
        return NULL;
    if (h_conn_send(c, "{\"op\":\"status\",\"id\":1}") == 0 &&
        (r = h_conn_expect(c, "result", 1, h_slack_ms(5000)))) {
        data = cJSON_DetachItemFromObject(r, "data");
        cJSON_Delete(r);
    }
    h_conn_close(c);
    return data;
}

int h_wait_state(const char *sock_path, const char *state, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    char last[64] = "?";
    do {
        cJSON *st = h_status(sock_path);
        const char *now = st ? h_json_str(st, "upstream.state") : NULL;
        bool ok = now && !strcmp(now, state);
        if (now)
            snprintf(last, sizeof(last), "%s", now);
        cJSON_Delete(st);
        if (ok)
            return 0;
        h_sleep_ms(50);
    } while (h_now_ms() < end);
    return h_fail("upstream state is '%s', waited %d ms for '%s'", last, timeout_ms, state);
}

int h_wait_status_num(const char *sock_path, const char *path, double min, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    double v;
    for (;;) {
        cJSON *st = h_status(sock_path);
        v = h_json_num(st, path, -1);
        cJSON_Delete(st);
        if (v >= min)
            return 0;
        if (h_now_ms() >= end)
            return h_fail("status %s is %g, waited %d ms for at least %g", path, v, timeout_ms,
                          min);
        h_sleep_ms(20);
    }
}

/* ---- JSON helpers ---- */

static const cJSON *walk(const cJSON *obj, const char *path)
{
    char key[128];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        /* A number walks into an array: "files.0". */
        if (cJSON_IsArray(obj) && key[0] >= '0' && key[0] <= '9')
            obj = cJSON_GetArrayItem(obj, atoi(key));
        else
            obj = cJSON_GetObjectItemCaseSensitive(obj, key);
        path += n + (dot ? 1 : 0);
    }
    return obj;
}

const char *h_json_str(const cJSON *obj, const char *path)
{
    const cJSON *v = walk(obj, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double h_json_num(const cJSON *obj, const char *path, double dflt)
{
    const cJSON *v = walk(obj, path);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* ---- programs with input, and programs in the background ---- */

char *h_file_text(const char *path)
{
    return read_file(path);
}

bool h_broker_maps_contain(const struct h_broker *b, const char *needle)
{
    char path[64], line[1024];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/maps", (long)b->pid);
    f = fopen(path, "r");
    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* A pipe that already holds all of input and whose write end is closed;
 * its read end, or -1. */
static int input_pipe(const char *input)
{
    size_t len = input ? strlen(input) : 0;
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) < 0)
        return h_fail("pipe: %s", strerror(errno));
    /* Non-blocking: input that does not fit fails instead of hanging. */
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    if (len > 0 && write(fds[1], input, len) != (ssize_t)len) {
        close(fds[0]);
        close(fds[1]);
        return h_fail("input of %zu bytes does not fit in a pipe", len);
    }
    close(fds[1]);
    return fds[0];
}

int h_run_input(const char *const *argv, const char *const *extra_env, const char *input,
                char **out, char **err, int timeout_ms)
{
    /* h_run()'s child inherits our stdin: lend it the pipe meanwhile. */
    int saved, in, rc;

    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    saved = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    in = input_pipe(input);
    if (in < 0) {
        if (saved >= 0)
            close(saved);
        return -1;
    }
    if (in != STDIN_FILENO) {
        dup2(in, STDIN_FILENO);
        close(in);
    }
    rc = h_run(argv, extra_env, out, err, timeout_ms);
    if (saved >= 0) {
        dup2(saved, STDIN_FILENO);
        close(saved);
    } else {
        close(STDIN_FILENO);
    }
    return rc;
}

int h_proc_start(struct h_proc *p, const char *const *argv, const char *const *extra_env,
                 const char *input)
{
    char bin[H_PATH];
    const char *args[64];
    int n = 0, in;

    memset(p, 0, sizeof(*p));
    if (make_temp_dir(p->dir, sizeof(p->dir), "proc") < 0)
        return -1;
    snprintf(p->out, sizeof(p->out), "%s/stdout", p->dir);
    snprintf(p->err, sizeof(p->err), "%s/stderr", p->dir);
    snprintf(bin, sizeof(bin), "%s", h_bin(argv[0]));
    args[n++] = bin;
    for (const char *const *a = argv + 1; *a && n < 63; a++)
        args[n++] = *a;
    args[n] = NULL;
    if ((in = input_pipe(input)) < 0)
        return -1;
    p->pid = fork();
    if (p->pid < 0) {
        close(in);
        p->pid = 0;
        return h_fail("fork: %s", strerror(errno));
    }
    if (p->pid == 0) {
        int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int errfd = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || errfd < 0)
            _exit(126);
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(errfd, STDERR_FILENO);
        for (; extra_env && *extra_env; extra_env++)
            putenv((char *)*extra_env);
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    close(in);
    return 0;
}

static char *file_text_or_empty(const char *path)
{
    char *text = read_file(path);
    return text ? text : strdup("");
}

char *h_proc_stdout(const struct h_proc *p)
{
    return file_text_or_empty(p->out);
}

char *h_proc_stderr(const struct h_proc *p)
{
    return file_text_or_empty(p->err);
}

bool h_proc_running(struct h_proc *p)
{
    if (p->pid <= 0 || p->reaped)
        return false;
    if (waitpid(p->pid, &p->wstatus, WNOHANG) == p->pid)
        p->reaped = true;
    return !p->reaped;
}

static bool file_contains(const char *path, const char *needle)
{
    char *text = read_file(path);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

static void proc_dump(const struct h_proc *p)
{
    char *out = h_proc_stdout(p), *err = h_proc_stderr(p);
    fprintf(stderr, "---- stdout of pid %d ----\n%s\n---- stderr ----\n%s\n---- end ----\n",
            (int)p->pid, out, err);
    free(out);
    free(err);
}

static int proc_wait_file(struct h_proc *p, const char *path, const char *needle, int timeout_ms)
{
    uint64_t end = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        bool running = h_proc_running(p);
        if (file_contains(path, needle))
            return 0;
        if (!running || h_now_ms() >= end)
            break;
        h_sleep_ms(20);
    }
    proc_dump(p);
    return h_fail("pid %d %s without writing '%s' to %s", (int)p->pid,
                  h_proc_running(p) ? "went on for too long" : "ended", needle, path);
}

int h_proc_wait_stdout(struct h_proc *p, const char *needle, int timeout_ms)
{
    return proc_wait_file(p, p->out, needle, timeout_ms);
}

int h_proc_wait_stderr(struct h_proc *p, const char *needle, int timeout_ms)
{
    return proc_wait_file(p, p->err, needle, timeout_ms);
}

int h_proc_stop(struct h_proc *p, int sig, int timeout_ms)
{
    if (p->pid <= 0)
        return h_fail("h_proc_stop: nothing was started");
    if (!p->reaped) {
        if (sig)
            kill(p->pid, sig);
        if (wait_pid(p->pid, timeout_ms, &p->wstatus) < 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &p->wstatus, 0);
            p->reaped = true;
            proc_dump(p);
            return h_fail("pid %d still ran %d ms after signal %d; killed", (int)p->pid, timeout_ms,
                          sig);
        }
        p->reaped = true;
    }
    if (WIFSIGNALED(p->wstatus))
        return 128 + WTERMSIG(p->wstatus);
    return WEXITSTATUS(p->wstatus);
}

void h_proc_cleanup(struct h_proc *p)
{
    char cmd[H_PATH + 16];

    if (p->pid > 0 && !p->reaped) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->wstatus, 0);
        p->reaped = true;
    }
    if (!p->dir[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", p->dir);
    p->dir[0] = '\0';
}
