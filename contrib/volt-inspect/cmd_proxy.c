/* `volt-inspect proxy`: runs the interposer (proxy.h) until SIGINT or
 * SIGTERM, then removes its socket. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "cmd.h"
#include "proxy.h"
#include "trace_sink.h"
#include "util.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* Clients are only forwarded once they come, but a broker that cannot be
 * reached now is worth saying at the start rather than per client. */
static void warn_if_broker_unreachable(const char *path, enum conn_path_source source)
{
    struct conn *c = NULL;
    char msg[1024];

    if (conn_open(path, source, &c, msg, sizeof(msg)) < 0)
        inspect_error("warning: %s\n  (clients will be dropped until it can be reached)", msg);
    conn_free(c);
}

static void on_event(void *ctx, const struct trace_ev *ev)
{
    trace_sink_emit(ctx, ev);
}

int cmd_proxy(const struct inspect_opts *o)
{
    enum conn_path_source source = CONN_PATH_ARGUMENT;
    struct trace_sink_opts so = cmd_trace_sink_opts(o);
    struct proxy_opts popts = {.listen_path = o->listen, .on_event = on_event};
    struct trace_sink *sink = NULL;
    struct proxy *p = NULL;
    char broker[512], msg[512];
    int rc;

    if (o->read)
        return cmd_replay(o);
    if (o->socket) {
        snprintf(broker, sizeof(broker), "%s", o->socket);
    } else if (conn_default_path(broker, sizeof(broker), &source) < 0) {
        inspect_error("no broker socket given and the default path is too long; use --socket");
        return INSPECT_EXIT_CONNECT;
    }
    if (strcmp(broker, o->listen) == 0) {
        inspect_error("proxy: --listen is the broker's own socket (%s); pick another path", broker);
        return INSPECT_EXIT_USAGE;
    }
    popts.broker_path = broker;
    if (trace_sink_new(&so, &sink, msg, sizeof(msg)) < 0) {
        inspect_error("%s", msg);
        return INSPECT_EXIT_USAGE;
    }
    popts.ctx = sink;
    warn_if_broker_unreachable(broker, source);
    if (proxy_new(&popts, &p, msg, sizeof(msg)) < 0) {
        inspect_error("proxy: %s", msg);
        trace_sink_free(sink);
        return INSPECT_EXIT_USAGE;
    }
    install_stop_handlers();
    fprintf(stderr,
            "# proxying %s -> %s; point clients at it with VOLT_BROKER_SOCKET=%s; Ctrl-C to stop\n",
            o->listen, broker, o->listen);
    rc = 0;
    /* --count and --duration end the proxy like Ctrl-C: every session is
     * closed (the clients see the broker go away). */
    while (!stop_requested && rc == 0 && !trace_sink_done(sink))
        rc = proxy_run_once(p, trace_sink_timeout_ms(sink));
    if (rc < 0)
        inspect_error("proxy: %s", strerror(-rc));
    proxy_free(p);
    if (rc == 0 && trace_sink_failed(sink))
        rc = 1;
    trace_sink_free(sink);
    return rc < 0 ? INSPECT_EXIT_CONNECT : rc > 0 ? INSPECT_EXIT_FAILED : INSPECT_EXIT_OK;
}
