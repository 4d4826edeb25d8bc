/* Test helper (header-only, for test-http.c, test-enroll.c and test-ws.c):
 * run the real dev server (contrib/volt-dev-server), or another Node script
 * that announces its port the same way, in a child process, and talk to
 * the dev server's /_dev/ control API synchronously through the HTTP client
 * under test, driving the test's own loop until the answer is in.
 *
 * VOLT_DEV_SERVER_DIR is set by CMake. The server prints
 * {"event":"listening","port":N,...} on stdout once it listens; we wait
 * for that line (bounded) and keep the pipe open until it stops.
 */
#ifndef UPSTREAM_TEST_DEVSERVER_H
#define UPSTREAM_TEST_DEVSERVER_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tests/wait-child.h"
#include "upstream/http.h"

#ifndef VOLT_DEV_SERVER_DIR
#error "VOLT_DEV_SERVER_DIR must name contrib/volt-dev-server"
#endif

#define DEVSERVER_MAX_ARGS 24

struct devserver {
    pid_t pid;
    int out_fd;
    int port;
    char url[64]; /* "http://127.0.0.1:N" (https:// with TLS) */
};

static inline int64_t devserver_now_ms(void)
{
    return (int64_t)wait_child_now_ms();
}

/* Installs the dev server's npm packages when they are missing (a build
 * tree used before contrib/ci/setup.sh ran). */
static inline int devserver_ensure_node_modules(void)
{
    char cmd[1024];

    if (access(VOLT_DEV_SERVER_DIR "/node_modules/socket.io", F_OK) == 0)
        return 0;
    snprintf(cmd, sizeof(cmd), "cd '%s' && npm ci --silent --no-audit --no-fund",
             VOLT_DEV_SERVER_DIR);
    return system(cmd) == 0 ? 0 : -1;
}

/* One line of the child's stdout (without the newline) within ms; false at
 * the deadline or EOF. Byte by byte, so nothing after the line is taken. */
static inline bool devserver_read_line(struct devserver *d, char *line, size_t size, int ms)
{
    int64_t deadline = devserver_now_ms() + ms;
    size_t used = 0;

    while (used + 1 < size) {
        struct pollfd pfd = {.fd = d->out_fd, .events = POLLIN};
        int64_t left = deadline - devserver_now_ms();

        if (left <= 0 || poll(&pfd, 1, (int)left) != 1 || read(d->out_fd, line + used, 1) != 1)
            return false;
        if (line[used] == '\n')
            break;
        used++;
    }
    line[used] = '\0';
    return true;
}

/* Runs `node argv[1] argv[2]...` (argv[0] is "node", NULL-terminated) and
 * waits until it prints {"event":"listening","port":N,...}: the dev server,
 * or another Node script that says so. 0 or -1 (message on stderr). */
static inline int devserver_spawn(struct devserver *d, const char *const *argv)
{
    char line[512];
    int pipefd[2];
    int64_t deadline = devserver_now_ms() + 20000;

    memset(d, 0, sizeof(*d));
    d->out_fd = -1;
    if (devserver_ensure_node_modules() < 0) {
        fprintf(stderr, "devserver: npm ci in %s failed\n", VOLT_DEV_SERVER_DIR);
        return -1;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    d->pid = fork();
    if (d->pid < 0)
        return -1;
    if (d->pid == 0) {
        /* Never outlive a crashed test. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(pipefd[1], STDOUT_FILENO);
        execvp("node", (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    d->out_fd = pipefd[0];

    for (;;) {
        int64_t left = deadline - devserver_now_ms();
        const char *p;

        if (left <= 0 || !devserver_read_line(d, line, sizeof(line), (int)left))
            break;
        p = strstr(line, "\"port\":");
        if (p && strstr(line, "\"listening\"")) {
            d->port = atoi(p + 7);
            snprintf(d->url, sizeof(d->url), "%s://127.0.0.1:%d",
                     strstr(line, "\"tls\":true") ? "https" : "http", d->port);
            return 0;
        }
    }
    fprintf(stderr, "devserver: no \"listening\" line from node %s\n", argv[1]);
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    close(d->out_fd);
    d->pid = 0;
    return -1;
}

/* `extra` is a NULL-terminated list of arguments after
 * "server.js --port 0 --quiet". 0 or -1 (message on stderr). */
static inline int devserver_start(struct devserver *d, const char *const *extra)
{
    const char *argv[DEVSERVER_MAX_ARGS + 6];
    int n = 0;

    argv[n++] = "node";
    argv[n++] = VOLT_DEV_SERVER_DIR "/server.js";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--quiet";
    for (int i = 0; extra && extra[i] && i < DEVSERVER_MAX_ARGS; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return devserver_spawn(d, argv);
}

/* SIGTERM, up to 5 s for it to end, then SIGKILL. */
static inline void devserver_stop(struct devserver *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    if (wait_child(d->pid, 5000, NULL) < 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    close(d->out_fd);
    d->pid = 0;
}

/* ---- synchronous calls through the client under test ---- */

struct devserver_call {
    int done;
    int result;
    long status;
    char body[65536];
};

static inline void devserver_call_done(struct http_request *req, const struct http_response *res,
                                       void *userdata)
{
    struct devserver_call *call = userdata;

    call->done = 1;
    call->result = res->result;
    call->status = res->status;
    snprintf(call->body, sizeof(call->body), "%.*s", (int)res->body_len, res->body);
}

/* Runs `loop` until the request is answered (its 10 s timeout bounds the
 * wait). Returns the HTTP status, or a negative result; the body lands in
 * call->body. */
static inline long devserver_request(uv_loop_t *loop, struct http_client *http,
                                     const struct devserver *d, const char *method,
                                     const char *path, const char *json,
                                     struct devserver_call *call)
{
    char url[256];
    struct http_request_options opts = {
        .method = method,
        .url = url,
        .body = json,
        .body_len = json ? strlen(json) : 0,
        .content_type = json ? "application/json" : NULL,
        .timeout_ms = 10000,
    };

    memset(call, 0, sizeof(*call));
    snprintf(url, sizeof(url), "%s%s", d->url, path);
    if (http_request_start(http, &opts, devserver_call_done, call, NULL) < 0)
        return -EIO;
    while (!call->done)
        uv_run(loop, UV_RUN_ONCE);
    return call->result < 0 ? call->result : call->status;
}

/* POST a control request, expecting 200. */
static inline int devserver_post(uv_loop_t *loop, struct http_client *http,
                                 const struct devserver *d, const char *path, const char *json)
{
    struct devserver_call *call = malloc(sizeof(*call));
    long status;

    if (!call)
        return -ENOMEM;
    status = devserver_request(loop, http, d, "POST", path, json, call);
    if (status != 200)
        fprintf(stderr, "devserver: POST %s -> %ld %s\n", path, status, call->body);
    free(call);
    return status == 200 ? 0 : -1;
}

#endif
