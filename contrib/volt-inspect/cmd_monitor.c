/* `volt-inspect monitor`: asks the broker to copy every frame it sends or
 * receives to this connection as `trace` frames, and prints them. */
#include <unistd.h>

#include "cmd.h"
#include "jsonline.h"
#include "proto/errors.h"
#include "trace_print.h"
#include "util.h"

#define MONITOR_ID 1

struct monitor {
    const struct inspect_opts *o;
    struct jsonline *jl;
    struct proto_buf scratch;
};

static void print_frame(void *ctx, const struct proto_span *body)
{
    struct monitor *mon = ctx;
    struct proto_msg m = {0};
    const char *why;

    if (proto_msg_decode(body, &m, &why) < 0 && !mon->o->json) {
        inspect_error("a frame the monitor cannot read: %s", why ? why : "?");
        return;
    }
    trace_print(stdout, mon->jl, body, &m, mon->o->json, &mon->scratch);
}

static int follow(struct monitor *mon, struct conn *c)
{
    struct proto_span body;

    for (;;) {
        int rc = conn_wait_frame(c, 0, &body);
        if (rc == PROTO_E_BAD_FRAME) {
            inspect_error("the broker sent a bad frame (%s); skipped", conn_reader_error(c));
            continue;
        }
        if (rc == PROTO_E_BROKER_GONE) {
            inspect_error("monitor ended: %s", conn_gone_reason(c));
            return INSPECT_EXIT_CONNECT;
        }
        if (rc < 0) {
            inspect_error("cannot follow the broker's stream: %s", conn_reader_error(c));
            return INSPECT_EXIT_CONNECT;
        }
        print_frame(mon, &body);
    }
}

int cmd_monitor(const struct inspect_opts *o)
{
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    struct monitor mon = {.o = o};
    struct proto_span answer;
    struct proto_msg m;
    struct conn *c = NULL;
    char msg[512];
    int rc;

    mon.jl = jsonline_new();
    if (!mon.jl) {
        inspect_error("out of memory");
        return INSPECT_EXIT_CONNECT;
    }
    rc = cmd_connect(o, deadline, &c, NULL, NULL);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    rc = conn_call_simple(c, PROTO_OP_MONITOR, MONITOR_ID, deadline, print_frame, &mon, &answer, &m,
                          msg, sizeof(msg));
    if (rc < 0) {
        inspect_error("monitor: %s", msg);
        rc = cmd_exit_for(rc);
        goto out;
    }
    if (m.op != PROTO_OP_RESULT || !m.ok) {
        cmd_report_failure("monitor", &m);
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "# monitoring; Ctrl-C to stop\n");
    rc = follow(&mon, c);
out:
    conn_free(c);
    jsonline_free(mon.jl);
    proto_buf_free(&mon.scratch);
    return rc;
}
