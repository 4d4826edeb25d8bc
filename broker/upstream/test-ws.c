/* ws transport against the real socket.io dev server (contrib/volt-dev-server),
 * started as a child process; TLS with a throw-away certificate made by the
 * openssl CLI. Every test closes its transport and asserts that
 * uv_loop_close() succeeds, so a handle left behind by lws or by us fails
 * the test. VOLT_TEST_DEBUG=1 in the environment shows the debug log;
 * VOLT_TEST_FILTER=glob runs only the matching tests. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <uv.h>

#include "upstream/test-devserver.h"
#include "upstream/ws.h"
#include "util/log.h"

#define EIO_PATH "/socket.io/?EIO=4&transport=websocket"
#define AUTH     "{\"teamClusterId\":\"cluster-dev\",\"daemonPassword\":\"dev-password\"}"
#define WAIT_MS  10000

/* ---- the dev server as a child process (test-devserver.h) -------------- */

static void dev_server_start(struct devserver *s, const char *const *extra)
{
    if (devserver_start(s, extra) < 0)
        fail_msg("the dev server did not start");
}

static size_t discard_body(char *data, size_t size, size_t n, void *ud)
{
    return size * n;
}

/* POSTs to the dev server's control API; returns the HTTP status. Blocking:
 * only call it while the test is not inside uv_run(). */
static long dev_post(int port, const char *path, const char *json)
{
    char url[256];
    long status = 0;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *curl = curl_easy_init();

    assert_non_null(curl);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    return status;
}

/* ---- TLS material --------------------------------------------------------- */

static char tls_dir[64];
static char tls_cert[128]; /* names "localhost" only */
static char tls_key[128];
static char tls_cert_ip6[128]; /* "localhost" and the address ::1 */
static char tls_key_ip6[128];

static void make_cert(const char *cert, const char *key, const char *san)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%s' -out '%s' -days 2 -subj /CN=localhost "
             "-addext subjectAltName=%s >/dev/null 2>&1",
             key, cert, san);
    if (system(cmd) != 0)
        fail_msg("openssl req failed: the openssl CLI is needed by this test");
}

/* Self-signed certificates: one for the name "localhost" only (no IP SAN),
 * so that connecting by address proves the address is checked, and one
 * that also names ::1. */
static void tls_make_cert(void)
{
    strcpy(tls_dir, "/tmp/volt-test-ws-XXXXXX");
    assert_non_null(mkdtemp(tls_dir));
    snprintf(tls_cert, sizeof(tls_cert), "%s/cert.pem", tls_dir);
    snprintf(tls_key, sizeof(tls_key), "%s/key.pem", tls_dir);
    snprintf(tls_cert_ip6, sizeof(tls_cert_ip6), "%s/cert6.pem", tls_dir);
    snprintf(tls_key_ip6, sizeof(tls_key_ip6), "%s/key6.pem", tls_dir);
    make_cert(tls_cert, tls_key, "DNS:localhost");
    make_cert(tls_cert_ip6, tls_key_ip6, "DNS:localhost,IP:::1");
}

static void tls_remove_cert(void)
{
    if (!tls_dir[0])
        return;
    unlink(tls_cert);
    unlink(tls_key);
    unlink(tls_cert_ip6);
    unlink(tls_key_ip6);
    rmdir(tls_dir);
    tls_dir[0] = '\0';
}

/* ---- loop fixture ---------------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool deadline_hit;
    struct ws_transport *t;
    bool transport_closed;
};

static struct devserver plain_server; /* fast pings, shared by most tests */

static void on_deadline(uv_timer_t *timer)
{
    struct fixture *fx = timer->data;
    fx->deadline_hit = true;
}

/* Runs the loop until *flag or `ms` elapsed; fails the test on timeout. */
#define RUN_UNTIL(fx, cond, ms, what)                                                              \
    do {                                                                                           \
        (fx)->deadline_hit = false;                                                                \
        uv_timer_start(&(fx)->deadline, on_deadline, (ms), 0);                                     \
        while (!(cond) && !(fx)->deadline_hit)                                                     \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                                                      \
        uv_timer_stop(&(fx)->deadline);                                                            \
        if (!(cond))                                                                               \
            fail_msg("timed out after %d ms waiting for %s", (int)(ms), (what));                   \
    } while (0)

/* Runs the loop for `ms`, whatever happens. */
static void run_for(struct fixture *fx, uint64_t ms)
{
    fx->deadline_hit = false;
    uv_timer_start(&fx->deadline, on_deadline, ms, 0);
    while (!fx->deadline_hit)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static int fixture_setup_with(void **state, const struct ws_transport_options *o)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->deadline);
    fx->deadline.data = fx;
    if (o)
        assert_int_equal(ws_transport_new(&fx->loop, o, &fx->t), 0);
    *state = fx;
    return 0;
}

static int fixture_setup(void **state)
{
    struct ws_transport_options o = {0};
    return fixture_setup_with(state, &o);
}

static int fixture_setup_plain_only(void **state)
{
    struct ws_transport_options o = {.plain_only = true};
    return fixture_setup_with(state, &o);
}

static int fixture_setup_bare(void **state)
{
    return fixture_setup_with(state, NULL);
}

static void on_transport_closed(void *ud)
{
    struct fixture *fx = ud;
    fx->transport_closed = true;
}

static void fixture_close_transport(struct fixture *fx)
{
    if (!fx->t)
        return;
    ws_transport_close(fx->t, on_transport_closed, fx);
    fx->t = NULL;
    RUN_UNTIL(fx, fx->transport_closed, WAIT_MS, "the transport teardown");
}

static int fixture_teardown(void **state)
{
    struct fixture *fx = *state;

    fixture_close_transport(fx);
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* ---- a recording client ------------------------------------------------- */

struct message {
    char *data;
    size_t len;
    bool binary;
};

struct client {
    struct ws_conn *conn;
    bool in_api_call; /* a callback now would be a synchronous one: a bug */
    bool answer_pings;
    int opens;
    int closes;
    int pings;
    struct ws_close_info info;
    char text[256];
    struct message *msgs;
    size_t nmsgs;
    /* Optional: run from on_close (re-entrancy checks). */
    void (*after_close)(struct client *cl);
    void *extra;
};

static void client_free(struct client *cl)
{
    for (size_t i = 0; i < cl->nmsgs; i++)
        free(cl->msgs[i].data);
    free(cl->msgs);
    cl->msgs = NULL;
    cl->nmsgs = 0;
}

static void cl_on_open(void *ud)
{
    struct client *cl = ud;

    if (cl->in_api_call)
        fail_msg("on_open called synchronously from an API call");
    cl->opens++;
}

static void cl_on_message(void *ud, const void *data, size_t len, bool binary)
{
    struct client *cl = ud;
    struct message *m;

    if (cl->in_api_call)
        fail_msg("on_message called synchronously from an API call");
    if (((const char *)data)[len] != '\0')
        fail_msg("message not terminated with a 0 byte");
    if (cl->answer_pings && !binary && len == 1 && ((const char *)data)[0] == '2') {
        cl->pings++;
        assert_int_equal(ws_send(cl->conn, "3", 1, false), 0);
        return;
    }
    cl->msgs = realloc(cl->msgs, (cl->nmsgs + 1) * sizeof(*cl->msgs));
    assert_non_null(cl->msgs);
    m = &cl->msgs[cl->nmsgs++];
    m->data = malloc(len + 1);
    assert_non_null(m->data);
    memcpy(m->data, data, len + 1);
    m->len = len;
    m->binary = binary;
}

static void cl_on_close(void *ud, const struct ws_close_info *info)
{
    struct client *cl = ud;

    if (cl->in_api_call)
        fail_msg("on_close called synchronously from an API call");
    cl->closes++;
    cl->info = *info;
    snprintf(cl->text, sizeof(cl->text), "%s", info->text);
    cl->info.text = cl->text;
    cl->conn = NULL;
    if (cl->after_close)
        cl->after_close(cl);
}

static const struct ws_callbacks client_callbacks = {cl_on_open, cl_on_message, cl_on_close};

static int client_connect(struct fixture *fx, struct client *cl, const struct ws_connect_options *o)
{
    int r;

    cl->in_api_call = true;
    r = ws_connect(fx->t, o, &client_callbacks, cl, &cl->conn);
    cl->in_api_call = false;
    return r;
}

static struct ws_connect_options plain_options(const char *path)
{
    struct ws_connect_options o = {0};

    o.host = "127.0.0.1";
    o.port = (uint16_t)plain_server.port;
    o.path = path;
    o.connect_timeout_ms = WAIT_MS;
    return o;
}

static int client_send(struct client *cl, const char *text)
{
    int r;

    cl->in_api_call = true;
    r = ws_send(cl->conn, text, strlen(text), false);
    cl->in_api_call = false;
    return r;
}

/* Index of the first message at or after `from` that starts with `prefix`. */
static long find_message(const struct client *cl, size_t from, const char *prefix)
{
    size_t n = strlen(prefix);

    for (size_t i = from; i < cl->nmsgs; i++) {
        if (cl->msgs[i].len >= n && memcmp(cl->msgs[i].data, prefix, n) == 0)
            return (long)i;
    }
    return -1;
}

#define WAIT_MESSAGE(fx, cl, from, prefix)                                                         \
    RUN_UNTIL(fx, find_message(cl, from, prefix) >= 0 || (cl)->closes, WAIT_MS, prefix);           \
    if (find_message(cl, from, prefix) < 0)                                                        \
    fail_msg("closed (%s) while waiting for %s", (cl)->text, prefix)

/* Open, Engine.IO open packet, namespace CONNECT with the dev credentials. */
static void client_open_control(struct fixture *fx, struct client *cl,
                                const struct ws_connect_options *o)
{
    assert_int_equal(client_connect(fx, cl, o), 0);
    RUN_UNTIL(fx, cl->opens || cl->closes, WAIT_MS, "on_open");
    if (!cl->opens)
        fail_msg("closed before open: %s", cl->text);
    WAIT_MESSAGE(fx, cl, 0, "0{\"sid\"");
    assert_int_equal(client_send(cl, "40/control," AUTH), 0);
    WAIT_MESSAGE(fx, cl, 0, "40/control,{\"sid\"");
}

static void client_close_and_wait(struct fixture *fx, struct client *cl)
{
    int before = cl->closes;

    cl->in_api_call = true;
    ws_close(cl->conn);
    ws_close(cl->conn); /* idempotent */
    cl->in_api_call = false;
    RUN_UNTIL(fx, cl->closes > before, WAIT_MS, "on_close after ws_close");
}

/* ---- tests ------------------------------------------------------------------ */

static void test_engineio_session(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = true};
    struct ws_connect_options o = plain_options(EIO_PATH);

    assert_int_equal(ws_send(NULL, "x", 1, false), -EINVAL);
    client_open_control(fx, &cl, &o);
    assert_int_equal(cl.opens, 1);

    /* The server pings every 200 ms and gives up 200 ms after a ping that
     * was not answered: still open after 1.5 s means the pongs went out. */
    run_for(fx, 1500);
    assert_int_equal(cl.closes, 0);
    assert_true(cl.pings >= 4);

    client_close_and_wait(fx, &cl);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.info.cause, WS_CLOSE_LOCAL);
    assert_true(cl.info.was_open);
    assert_int_equal(cl.info.code, 1000);
    assert_null(cl.conn);
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    client_free(&cl);
}

/* A transport made for ws:// only (no CA store loaded) connects as usual
 * and refuses wss:// outright instead of failing every verification. */
static void test_plain_only_transport(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = true};
    struct client tls_cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);

    client_open_control(fx, &cl, &o);
    assert_int_equal(cl.opens, 1);
    o.tls = true;
    assert_int_equal(client_connect(fx, &tls_cl, &o), -EINVAL);
    assert_null(tls_cl.conn);
    client_close_and_wait(fx, &cl);
    assert_int_equal(cl.closes, 1);
    client_free(&cl);
    client_free(&tls_cl);
}

static void test_unanswered_pings_end_the_session(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = false};
    struct ws_connect_options o = plain_options(EIO_PATH);

    client_open_control(fx, &cl, &o);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "the server to give up on us");
    assert_int_equal(cl.closes, 1);
    assert_true(cl.info.was_open);
    assert_true(cl.info.cause == WS_CLOSE_REMOTE || cl.info.cause == WS_CLOSE_LOST);
    client_free(&cl);
}

static void test_connect_refused(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* A port that was free a moment ago and has no listener. */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    o.port = ntohs(sa.sin_port);

    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close for a refused connection");
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.opens, 0);
    assert_int_equal(cl.info.cause, WS_CLOSE_CONNECT);
    assert_false(cl.info.was_open);
    assert_non_null(strstr(cl.info.text, "127.0.0.1"));

    /* Same through a name with possibly several addresses. */
    cl.closes = 0;
    o.host = "localhost";
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close for a refused connection by name");
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.info.cause, WS_CLOSE_CONNECT);
    client_free(&cl);
}

/* With no file descriptor left, the socket cannot even be created:
 * uv_tcp_connect() fails at once (rather than in its callback), the other
 * way a connect fails; it is still reported from the loop, once. */
static void test_connect_fails_at_once(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);
    struct rlimit saved, lim;
    int fds[4096];
    int nfds = 0, max_fd = 0, fd;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;

    /* (valgrind keeps fds of its own above the limit it reports) */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_non_null(dir);
    while ((de = readdir(dir))) {
        int n = atoi(de->d_name);
        if (n > max_fd && (rlim_t)n < saved.rlim_cur)
            max_fd = n;
    }
    closedir(dir);
    lim = saved;
    lim.rlim_cur = (rlim_t)max_fd + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    while (nfds < 4096 && (fd = dup(0)) >= 0)
        fds[nfds++] = fd;

    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close without a socket");
    run_for(fx, 100);

    while (nfds > 0)
        close(fds[--nfds]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.opens, 0);
    assert_int_equal(cl.info.cause, WS_CLOSE_CONNECT);
    assert_false(cl.info.was_open);
    client_free(&cl);
}

struct ticker {
    uv_timer_t timer;
    uint64_t last;
    uint64_t max_gap;
    int ticks;
};

static void on_tick(uv_timer_t *timer)
{
    struct ticker *tk = timer->data;
    uint64_t now = uv_hrtime() / 1000000;

    if (tk->last && now - tk->last > tk->max_gap)
        tk->max_gap = now - tk->last;
    tk->last = now;
    tk->ticks++;
}

static void test_dns_failure_does_not_block(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);
    struct ticker tk = {0};

    uv_timer_init(&fx->loop, &tk.timer);
    tk.timer.data = &tk;
    uv_timer_start(&tk.timer, on_tick, 1, 1);

    o.host = "no-such-host.invalid";
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    assert_int_equal(cl.closes, 0);
    RUN_UNTIL(fx, cl.closes, 30000, "on_close for an unknown host");
    run_for(fx, 50);
    uv_close((uv_handle_t *)&tk.timer, NULL);
    run_for(fx, 1); /* the ticker lives on this stack: let the close finish */

    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.info.cause, WS_CLOSE_DNS);
    assert_non_null(strstr(cl.info.text, "no-such-host.invalid"));
    assert_true(tk.ticks > 10);
    /* 1 ms timer: a blocking resolver on the loop would show as a gap. */
    if (tk.max_gap > 200)
        fail_msg("the loop stalled for %" PRIu64 " ms", tk.max_gap);
    client_free(&cl);
}

static void test_upgrade_refused(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options("/socket.io/?EIO=4&transport=foo");

    /* engine.io answers an unknown transport with 400 "Transport unknown". */
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close for a refused upgrade");
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.opens, 0);
    assert_int_equal(cl.info.cause, WS_CLOSE_HANDSHAKE);
    assert_int_equal(cl.info.http_status, 400);
    assert_non_null(strstr(cl.info.text, "400"));

    /* A path engine.io does not serve: it hangs up without an answer. */
    cl.closes = 0;
    o = plain_options("/not-socket-io/");
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close for a wrong path");
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.opens, 0);
    assert_int_equal(cl.info.cause, WS_CLOSE_HANDSHAKE);
    client_free(&cl);
}

static void test_garbage_after_upgrade(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options("/socket.io/?EIO=3&transport=websocket");

    /* engine.io 6 completes the upgrade for EIO=3, then writes an HTTP 400
     * response into the WebSocket stream: not a valid frame. */
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close after garbage frames");
    run_for(fx, 100);
    assert_int_equal(cl.opens, 1);
    assert_int_equal(cl.closes, 1);
    assert_true(cl.info.was_open);
    assert_int_equal(cl.info.cause, WS_CLOSE_LOST);
    assert_int_equal(cl.nmsgs, 0);
    client_free(&cl);
}

static void test_ipv6_literal(void **state)
{
    struct fixture *fx = *state;
    struct devserver v6 = {0};
    const char *extra[] = {"--host", "::1", NULL};
    struct client cl = {.answer_pings = true};
    struct ws_connect_options o = plain_options(EIO_PATH);

    dev_server_start(&v6, extra);
    o.host = "::1";
    o.port = (uint16_t)v6.port;
    client_open_control(fx, &cl, &o);
    client_close_and_wait(fx, &cl);
    assert_int_equal(cl.info.cause, WS_CLOSE_LOCAL);
    devserver_stop(&v6);
    client_free(&cl);
}

static void test_connect_timeout(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint64_t start;

    /* Listening but never accepting nor answering: TCP completes, the
     * upgrade never does. */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    o.port = ntohs(sa.sin_port);
    o.connect_timeout_ms = 300;

    start = uv_now(&fx->loop);
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "the connect timeout");
    assert_true(uv_now(&fx->loop) - start >= 290);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.info.cause, WS_CLOSE_TIMEOUT);
    assert_false(cl.info.was_open);
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    close(fd);
    client_free(&cl);
}

static void test_close_before_open(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);

    assert_int_equal(client_connect(fx, &cl, &o), 0);
    assert_int_equal(client_send(&cl, "x"), -ENOTCONN);
    client_close_and_wait(fx, &cl);
    assert_int_equal(cl.info.cause, WS_CLOSE_LOCAL);
    assert_false(cl.info.was_open);
    run_for(fx, 200);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.opens, 0);

    /* And in the middle of connecting (after DNS, before the upgrade). */
    cl.closes = 0;
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    run_for(fx, 2);
    client_close_and_wait(fx, &cl);
    run_for(fx, 200);
    assert_int_equal(cl.closes, 1);
    assert_int_equal(cl.info.cause, WS_CLOSE_LOCAL);
    client_free(&cl);
}

static char *make_filler(size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (i * 7) % 26);
    s[n] = '\0';
    return s;
}

static void client_register(struct fixture *fx, struct client *cl)
{
    size_t from = cl->nmsgs;

    assert_int_equal(client_send(cl, "42/control,1[\"daemon:register\",{\"teamClusterId\":"
                                     "\"cluster-dev\",\"hostname\":\"test-ws\",\"version\":"
                                     "\"0.1.0\",\"handlers\":[]}]"),
                     0);
    WAIT_MESSAGE(fx, cl, from, "43/control,1[{\"success\":true}]");
}

static void test_large_messages(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = true};
    struct ws_connect_options o = plain_options(EIO_PATH);
    const size_t filler_len = 200 * 1024;
    char *filler = make_filler(filler_len);
    size_t req_len = filler_len + 256;
    char *req = malloc(req_len);
    const char *expect =
        "42/control,[\"daemon:response\",{\"requestId\":\"big-1\",\"success\":true,"
        "\"data\":\"";
    size_t from;
    long i;

    client_open_control(fx, &cl, &o);
    client_register(fx, &cl);

    /* 200 KiB out (several frames of one message), 200 KiB back. */
    snprintf(req, req_len,
             "42/control,[\"daemon:request\",{\"requestId\":\"big-1\",\"command\":\"echo\","
             "\"payload\":\"%s\"}]",
             filler);
    from = cl.nmsgs;
    assert_int_equal(client_send(&cl, req), 0);
    WAIT_MESSAGE(fx, &cl, from, expect);
    i = find_message(&cl, from, expect);
    assert_int_equal(cl.msgs[i].len, strlen(expect) + filler_len + 3);
    assert_false(cl.msgs[i].binary);
    assert_memory_equal(cl.msgs[i].data + strlen(expect), filler, filler_len);
    assert_string_equal(cl.msgs[i].data + strlen(expect) + filler_len, "\"}]");

    /* A binary attachment: text header packet, then one binary message. */
    from = cl.nmsgs;
    assert_int_equal(client_send(&cl, "42/control,[\"daemon:request\",{\"requestId\":\"bin-1\","
                                      "\"command\":\"binary\",\"payload\":{\"size\":100000}}]"),
                     0);
    WAIT_MESSAGE(fx, &cl, from, "451-/control,[\"daemon:response\"");
    RUN_UNTIL(fx, cl.nmsgs >= from + 2 || cl.closes, WAIT_MS, "the binary attachment");
    i = find_message(&cl, from, "451-") + 1;
    assert_true(cl.msgs[i].binary);
    assert_int_equal(cl.msgs[i].len, 100000);
    for (size_t k = 0; k < 100000; k++) {
        if ((uint8_t)cl.msgs[i].data[k] != k % 256)
            fail_msg("binary byte %zu is %u", k, (uint8_t)cl.msgs[i].data[k]);
    }
    assert_int_equal(cl.closes, 0);
    client_close_and_wait(fx, &cl);
    free(filler);
    free(req);
    client_free(&cl);
}

static void test_message_too_big(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = true};
    struct ws_connect_options o = plain_options(EIO_PATH);
    char *filler = make_filler(100 * 1024);
    char *req = malloc(110 * 1024);

    o.max_message_size = 64 * 1024;
    client_open_control(fx, &cl, &o);
    client_register(fx, &cl);
    snprintf(req, 110 * 1024,
             "42/control,[\"daemon:request\",{\"requestId\":\"big-2\",\"command\":\"echo\","
             "\"payload\":\"%s\"}]",
             filler);
    assert_int_equal(client_send(&cl, req), 0);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "the close for a message over the limit");
    assert_int_equal(cl.info.cause, WS_CLOSE_TOO_BIG);
    assert_int_equal(cl.info.code, 1009);
    assert_true(cl.info.was_open);
    assert_int_equal(find_message(&cl, 0, "42/control,[\"daemon:response\""), -1);
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    free(filler);
    free(req);
    client_free(&cl);
}

static void test_send_queue_limit(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = true};
    struct ws_connect_options o = plain_options(EIO_PATH);
    char msg[1000];
    const char *head = "42/control,[\"x-filler\",\"";
    size_t queued = 0;
    int sent = 0, r;

    o.send_queue_limit = 8192;
    client_open_control(fx, &cl, &o);
    assert_int_equal(ws_send_queue_bytes(cl.conn), 0);
    assert_int_equal(ws_send_queue_room(cl.conn), 8192);

    /* The loop does not run meanwhile: nothing is written, the queue fills. */
    /* An event the server does not know: recorded there, otherwise harmless. */
    memset(msg, 'q', sizeof(msg));
    memcpy(msg, head, strlen(head));
    memcpy(msg + sizeof(msg) - 2, "\"]", 2);
    while ((r = ws_send(cl.conn, msg, sizeof(msg), false)) == 0) {
        sent++;
        queued += sizeof(msg) + WS_SEND_OVERHEAD;
        assert_int_equal(ws_send_queue_bytes(cl.conn), queued);
        assert_int_equal(ws_send_queue_room(cl.conn), 8192 - queued);
    }
    assert_int_equal(r, -ENOBUFS);
    assert_true(ws_send_queue_room(cl.conn) < sizeof(msg) + WS_SEND_OVERHEAD);
    assert_int_equal(sent, 8192 / (1000 + WS_SEND_OVERHEAD));
    assert_int_equal(ws_send_queue_bytes(cl.conn), queued);
    {
        char *huge = calloc(1, 9000);
        assert_int_equal(ws_send(cl.conn, huge, 9000, true), -EMSGSIZE);
        free(huge);
    }

    /* Still connected: the queue drains and the session goes on. */
    RUN_UNTIL(fx, ws_send_queue_bytes(cl.conn) == 0 || cl.closes, WAIT_MS, "the queue to drain");
    assert_int_equal(cl.closes, 0);
    client_register(fx, &cl);
    assert_int_equal(cl.closes, 0);
    client_close_and_wait(fx, &cl);
    client_free(&cl);
}

static void test_server_closes(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = true};
    struct ws_connect_options o = plain_options(EIO_PATH);

    /* Engine.IO close: a WebSocket Close frame from the server. */
    client_open_control(fx, &cl, &o);
    assert_int_equal(dev_post(plain_server.port, "/_dev/disconnect", "{\"mode\":\"transport\"}"),
                     200);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close after the server closed");
    assert_int_equal(cl.info.cause, WS_CLOSE_REMOTE);
    assert_true(cl.info.was_open);
    assert_true(cl.info.code >= 1000);
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    client_free(&cl);

    /* The socket torn down without a Close frame. */
    memset(&cl, 0, sizeof(cl));
    cl.answer_pings = true;
    client_open_control(fx, &cl, &o);
    assert_int_equal(dev_post(plain_server.port, "/_dev/disconnect", "{\"mode\":\"terminate\"}"),
                     200);
    RUN_UNTIL(fx, cl.closes, WAIT_MS, "on_close after the connection dropped");
    assert_int_equal(cl.info.cause, WS_CLOSE_LOST);
    assert_int_equal(cl.info.code, 1006);
    assert_true(cl.info.was_open);
    run_for(fx, 100);
    assert_int_equal(cl.closes, 1);
    client_free(&cl);
}

static void test_transport_close_drops_connections(void **state)
{
    struct fixture *fx = *state;
    struct client open_cl = {.answer_pings = true};
    struct client pending_cl = {0};
    struct client resolving_cl = {0};
    struct client late_cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);
    struct ws_connect_options slow = plain_options(EIO_PATH);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    slow.port = ntohs(sa.sin_port);

    client_open_control(fx, &open_cl, &o);
    assert_int_equal(client_connect(fx, &pending_cl, &slow), 0);
    run_for(fx, 50);
    assert_int_equal(pending_cl.closes, 0);

    /* Closed while its name is still being resolved (the loop has not run). */
    o.host = "localhost";
    assert_int_equal(client_connect(fx, &resolving_cl, &o), 0);

    ws_transport_close(fx->t, on_transport_closed, fx);
    assert_int_equal(ws_connect(fx->t, &o, &client_callbacks, &late_cl, &late_cl.conn), -ESHUTDOWN);
    fx->t = NULL;
    RUN_UNTIL(fx, fx->transport_closed, WAIT_MS, "the transport teardown");
    assert_int_equal(open_cl.closes, 1);
    assert_int_equal(open_cl.info.cause, WS_CLOSE_SHUTDOWN);
    assert_true(open_cl.info.was_open);
    assert_int_equal(pending_cl.closes, 1);
    assert_int_equal(pending_cl.info.cause, WS_CLOSE_SHUTDOWN);
    assert_false(pending_cl.info.was_open);
    assert_int_equal(resolving_cl.closes, 1);
    assert_int_equal(resolving_cl.info.cause, WS_CLOSE_SHUTDOWN);
    assert_int_equal(late_cl.closes, 0);
    close(fd);
    client_free(&open_cl);
    client_free(&pending_cl);
}

/* on_close may start the next connection (what a reconnecting session
 * does from its close path). */
static void reconnect_once(struct client *cl)
{
    struct fixture *fx = cl->extra;
    struct ws_connect_options o = plain_options(EIO_PATH);

    if (cl->closes != 1)
        return;
    assert_int_equal(ws_connect(fx->t, &o, &client_callbacks, cl, &cl->conn), 0);
}

static void test_reconnect_from_on_close(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {.answer_pings = true, .after_close = reconnect_once, .extra = fx};
    struct ws_connect_options o = plain_options(EIO_PATH);

    client_open_control(fx, &cl, &o);
    assert_int_equal(dev_post(plain_server.port, "/_dev/disconnect", "{\"mode\":\"terminate\"}"),
                     200);
    RUN_UNTIL(fx, cl.opens == 2 || cl.closes > 1, WAIT_MS, "the second connection");
    assert_int_equal(cl.opens, 2);
    assert_int_equal(cl.closes, 1);
    cl.after_close = NULL;
    client_close_and_wait(fx, &cl);
    assert_int_equal(cl.closes, 2);
    client_free(&cl);
}

static void test_bad_arguments(void **state)
{
    struct fixture *fx = *state;
    struct client cl = {0};
    struct ws_connect_options o = plain_options(EIO_PATH);
    struct ws_transport_options to = {.ca_file = "/nonexistent/ca.pem"};
    struct ws_transport *t = NULL;

    assert_int_equal(ws_transport_new(&fx->loop, &to, &t), -EINVAL);
    assert_null(t);

    o.path = "no-slash";
    assert_int_equal(client_connect(fx, &cl, &o), -EINVAL);
    o = plain_options(EIO_PATH);
    o.host = "";
    assert_int_equal(client_connect(fx, &cl, &o), -EINVAL);
    o.host = "[::1]";
    assert_int_equal(client_connect(fx, &cl, &o), -EINVAL);
    o.host = "bad host";
    assert_int_equal(client_connect(fx, &cl, &o), -EINVAL);
    o.host = "1.2.3.4:80";
    assert_int_equal(client_connect(fx, &cl, &o), -EINVAL);
    o = plain_options(EIO_PATH);
    o.port = 0;
    assert_int_equal(client_connect(fx, &cl, &o), -EINVAL);
    assert_int_equal(cl.closes, 0);
}

/* ---- TLS -------------------------------------------------------------------- */

struct tls_case {
    const char *what;
    struct ws_transport_options transport;
    const char *host;
    bool expect_open;
    const char *expect_text; /* in the close reason of a failure */
};

static void run_tls_case(const struct tls_case *tc, int port)
{
    void *state;
    struct fixture *fx;
    struct client cl = {.answer_pings = true};
    struct ws_connect_options o = {0};

    fixture_setup_with(&state, &tc->transport);
    fx = state;
    o.host = tc->host;
    o.port = (uint16_t)port;
    o.tls = true;
    o.path = EIO_PATH;
    o.connect_timeout_ms = WAIT_MS;
    assert_int_equal(client_connect(fx, &cl, &o), 0);
    RUN_UNTIL(fx, cl.opens || cl.closes, WAIT_MS, tc->what);
    if (tc->expect_open) {
        if (!cl.opens)
            fail_msg("%s: expected open, got %s: %s", tc->what, ws_close_cause_name(cl.info.cause),
                     cl.text);
        WAIT_MESSAGE(fx, &cl, 0, "0{\"sid\"");
        client_close_and_wait(fx, &cl);
        assert_int_equal(cl.info.cause, WS_CLOSE_LOCAL);
    } else {
        if (cl.opens)
            fail_msg("%s: expected a TLS failure, but it opened", tc->what);
        assert_int_equal(cl.info.cause, WS_CLOSE_TLS);
        assert_false(cl.info.was_open);
        if (!strstr(cl.text, tc->expect_text))
            fail_msg("%s: close reason '%s' lacks '%s'", tc->what, cl.text, tc->expect_text);
    }
    client_free(&cl);
    fixture_teardown(&state);
}

static void test_tls(void **state)
{
    struct devserver tls_server = {0}, tls6_server = {0}, tls6_named = {0};
    const char *extra[] = {"--tls-cert", NULL, "--tls-key", NULL, NULL};
    const char *extra6[] = {"--tls-cert", NULL, "--tls-key", NULL, "--host", "::1", NULL};
    const char *extra6_named[] = {"--tls-cert", NULL, "--tls-key", NULL, "--host", "::1", NULL};
    struct tls_case cases[] = {
        {"system CAs refuse a self-signed cert", {0}, "localhost", false, "self-signed"},
        {"ca_file accepts it", {.ca_file = tls_cert}, "localhost", true, NULL},
        {"ca_file, but the name does not match",
         {.ca_file = tls_cert},
         "127.0.0.1",
         false,
         "mismatch"},
        {"insecure accepts it", {.insecure = true}, "localhost", true, NULL},
        {"insecure ignores the name", {.insecure = true}, "127.0.0.1", true, NULL},
    };
    /* IPv6 literals: the address is checked against the certificate's IP
     * names (and no SNI is sent for it). */
    struct tls_case cases6[] = {
        {"an IPv6 address the certificate does not name",
         {.ca_file = tls_cert},
         "::1",
         false,
         "mismatch"},
        {"insecure to an IPv6 address", {.insecure = true}, "::1", true, NULL},
    };
    struct tls_case cases6_named[] = {
        {"an IPv6 address the certificate names", {.ca_file = tls_cert_ip6}, "::1", true, NULL},
    };

    tls_make_cert();
    extra[1] = extra6[1] = tls_cert;
    extra[3] = extra6[3] = tls_key;
    extra6_named[1] = tls_cert_ip6;
    extra6_named[3] = tls_key_ip6;
    dev_server_start(&tls_server, extra);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_tls_case(&cases[i], tls_server.port);
    devserver_stop(&tls_server);
    dev_server_start(&tls6_server, extra6);
    for (size_t i = 0; i < sizeof(cases6) / sizeof(cases6[0]); i++)
        run_tls_case(&cases6[i], tls6_server.port);
    devserver_stop(&tls6_server);
    dev_server_start(&tls6_named, extra6_named);
    for (size_t i = 0; i < sizeof(cases6_named) / sizeof(cases6_named[0]); i++)
        run_tls_case(&cases6_named[i], tls6_named.port);
    devserver_stop(&tls6_named);
    tls_remove_cert();
}

/* ---- Autobahn-style cases against a scripted server ----------------------- */

/* What socket.io never sends, from testdata/ws-cases.js: fragmentation,
 * control frames between fragments, invalid UTF-8, close codes, limits. */
struct ws_case {
    const char *name;
    size_t max_message;        /* 0: the default */
    const char *messages[2];   /* expected text messages, in order */
    size_t pattern_len;        /* else: one binary message of i*7 bytes */
    size_t x_len;              /* else: one text message of 'x's */
    bool echo;                 /* send the message back */
    enum ws_close_cause cause; /* reported */
    int code;                  /* info.code */
    const char *client_close;  /* what the server saw of our Close */
    const char *pong;          /* hex of a pong the server must have seen */
};

static const struct ws_case ws_cases[] = {
    {"fragments",
     0,
     {"Hello, fragmented world"},
     0,
     0,
     false,
     WS_CLOSE_REMOTE,
     1000,
     "\"closeCode\":1000",
     "\"7031\""},
    {"binary-echo",
     0,
     {NULL},
     100000,
     0,
     true,
     WS_CLOSE_REMOTE,
     1000,
     "\"closeCode\":1000",
     "\"6265747765656e\""},
    {"big-frame-echo",
     0,
     {NULL},
     0,
     300000,
     true,
     WS_CLOSE_REMOTE,
     1000,
     "\"closeCode\":1000",
     NULL},
    {"ping-125",
     0,
     {NULL},
     0,
     0,
     false,
     WS_CLOSE_REMOTE,
     1000,
     "\"closeCode\":1000",
     "\"00070e151c"},
    {"ping-126", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"rsv1", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"rsv3", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"opcode-3", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"opcode-b", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"continuation-first", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"fragmented-ping", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"text-inside-fragments",
     0,
     {NULL},
     0,
     0,
     false,
     WS_CLOSE_LOST,
     1006,
     "\"closeCode\":1002",
     NULL},
    {"utf8-invalid", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1007", NULL},
    {"utf8-invalid-fragments",
     0,
     {NULL},
     0,
     0,
     false,
     WS_CLOSE_LOST,
     1006,
     "\"closeCode\":1007",
     NULL},
    {"utf8-split-valid",
     0,
     {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"},
     0,
     0,
     false,
     WS_CLOSE_REMOTE,
     1000,
     "\"closeCode\":1000",
     NULL},
    {"close-3000", 0, {NULL}, 0, 0, false, WS_CLOSE_REMOTE, 3000, "\"closeCode\":3000", NULL},
    {"close-empty", 0, {NULL}, 0, 0, false, WS_CLOSE_REMOTE, 1005, "\"closeBody\":\"\"", NULL},
    {"close-1004", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"close-1-byte", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"close-invalid-reason",
     0,
     {NULL},
     0,
     0,
     false,
     WS_CLOSE_LOST,
     1006,
     "\"closeCode\":1007",
     NULL},
    {"message-after-close",
     0,
     {"before"},
     0,
     0,
     false,
     WS_CLOSE_REMOTE,
     1000,
     "\"closeCode\":1000",
     NULL},
    {"masked", 0, {NULL}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":1002", NULL},
    {"too-big", 1000, {NULL}, 0, 0, false, WS_CLOSE_TOO_BIG, 1009, "\"closeCode\":1009", NULL},
    {"too-big-fragments",
     1000,
     {NULL},
     0,
     0,
     false,
     WS_CLOSE_TOO_BIG,
     1009,
     "\"closeCode\":1009",
     NULL},
    {"drop", 0, {"last words"}, 0, 0, false, WS_CLOSE_LOST, 1006, "\"closeCode\":null", NULL},
};

static void check_case_messages(const struct ws_case *wc, const struct client *cl)
{
    size_t want = wc->pattern_len || wc->x_len ? 1 : 0;

    while (want < 2 && wc->messages[want])
        want++;
    if (cl->nmsgs != want)
        fail_msg("%s: %zu messages, expected %zu", wc->name, cl->nmsgs, want);
    for (size_t i = 0; i < 2 && wc->messages[i]; i++) {
        if (cl->msgs[i].binary || cl->msgs[i].len != strlen(wc->messages[i]) ||
            memcmp(cl->msgs[i].data, wc->messages[i], cl->msgs[i].len) != 0)
            fail_msg("%s: message %zu is '%.*s', expected '%s'", wc->name, i, (int)cl->msgs[i].len,
                     cl->msgs[i].data, wc->messages[i]);
    }
    if (wc->pattern_len) {
        assert_true(cl->msgs[0].binary);
        assert_int_equal(cl->msgs[0].len, wc->pattern_len);
        for (size_t k = 0; k < wc->pattern_len; k++)
            if ((uint8_t)cl->msgs[0].data[k] != (uint8_t)(k * 7))
                fail_msg("%s: byte %zu is %u", wc->name, k, (uint8_t)cl->msgs[0].data[k]);
    }
    if (wc->x_len) {
        assert_false(cl->msgs[0].binary);
        assert_int_equal(cl->msgs[0].len, wc->x_len);
        for (size_t k = 0; k < wc->x_len; k++)
            if (cl->msgs[0].data[k] != 'x')
                fail_msg("%s: byte %zu is %u", wc->name, k, (uint8_t)cl->msgs[0].data[k]);
    }
}

/* The server's report of connection `name`: one JSON line. */
static void read_case_result(struct devserver *srv, const char *name, char *line, size_t size)
{
    char want[96];

    snprintf(want, sizeof(want), "\"case\":\"%s\"", name);
    do {
        if (!devserver_read_line(srv, line, size, WAIT_MS))
            fail_msg("%s: no report from the case server", name);
    } while (!strstr(line, want));
}

static void test_autobahn_style_cases(void **state)
{
    struct fixture *fx = *state;
    struct devserver srv = {0};
    char script[1024], path[128], line[4096];
    const char *argv[] = {"node", script, NULL};

    snprintf(script, sizeof(script), "%s/ws-cases.js", WS_TESTDATA_DIR);
    if (devserver_spawn(&srv, argv) < 0)
        fail_msg("%s did not say it was listening", script);
    for (size_t i = 0; i < sizeof(ws_cases) / sizeof(ws_cases[0]); i++) {
        const struct ws_case *wc = &ws_cases[i];
        struct client cl = {0};
        struct ws_connect_options o = {0};

        snprintf(path, sizeof(path), "/case/%s", wc->name);
        o.host = "127.0.0.1";
        o.port = (uint16_t)srv.port;
        o.path = path;
        o.connect_timeout_ms = WAIT_MS;
        o.max_message_size = wc->max_message;
        assert_int_equal(client_connect(fx, &cl, &o), 0);
        if (wc->echo) {
            RUN_UNTIL(fx, cl.nmsgs || cl.closes, WAIT_MS, wc->name);
            if (!cl.nmsgs)
                fail_msg("%s: closed before the message: %s", wc->name, cl.text);
            assert_int_equal(ws_send(cl.conn, cl.msgs[0].data, cl.msgs[0].len, cl.msgs[0].binary),
                             0);
        }
        RUN_UNTIL(fx, cl.closes, WAIT_MS, wc->name);
        run_for(fx, 20);
        assert_int_equal(cl.opens, 1);
        assert_int_equal(cl.closes, 1);
        assert_true(cl.info.was_open);
        if (cl.info.cause != wc->cause || cl.info.code != wc->code)
            fail_msg("%s: closed (%s, %d: %s), expected (%s, %d)", wc->name,
                     ws_close_cause_name(cl.info.cause), cl.info.code, cl.text,
                     ws_close_cause_name(wc->cause), wc->code);
        check_case_messages(wc, &cl);
        read_case_result(&srv, wc->name, line, sizeof(line));
        if (!strstr(line, wc->client_close))
            fail_msg("%s: the server saw %s, expected %s", wc->name, line, wc->client_close);
        if (wc->pong && !strstr(line, wc->pong))
            fail_msg("%s: no pong %s in %s", wc->name, wc->pong, line);
        if (wc->echo && !strstr(line, "\"echo\":true"))
            fail_msg("%s: the echo did not match: %s", wc->name, line);
        if (!strstr(line, "\"unmasked\":0"))
            fail_msg("%s: we sent unmasked frames: %s", wc->name, line);
        client_free(&cl);
    }
    devserver_stop(&srv);
}

/* ---- main ------------------------------------------------------------------- */

static int group_setup(void **state)
{
    const char *extra[] = {"--ping-interval", "200", "--ping-timeout", "200", NULL};

    signal(SIGPIPE, SIG_IGN);
    if (getenv("VOLT_TEST_DEBUG"))
        log_set_level(LOG_LEVEL_DEBUG);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dev_server_start(&plain_server, extra);
    return 0;
}

static int group_teardown(void **state)
{
    devserver_stop(&plain_server);
    tls_remove_cert();
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_engineio_session, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_plain_only_transport, fixture_setup_plain_only,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_pings_end_the_session, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connect_fails_at_once, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_dns_failure_does_not_block, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_refused, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_after_upgrade, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_literal, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_close_before_open, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_large_messages, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_message_too_big, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_send_queue_limit, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_server_closes, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_transport_close_drops_connections, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_from_on_close, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_autobahn_style_cases, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tls, fixture_setup_bare, fixture_teardown),
    };
    /* e.g. VOLT_TEST_FILTER='test_tls' to run one test (cmocka glob). */
    if (getenv("VOLT_TEST_FILTER"))
        cmocka_set_test_filter(getenv("VOLT_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
