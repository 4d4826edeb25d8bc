/* `volt-inspect status`: one status request, printed for people (or the
 * map as JSON with --json). */
#include "cmd.h"
#include "jsonline.h"
#include "proto/errors.h"
#include "status_print.h"
#include "util.h"

#define STATUS_ID 1

static int print_json(const struct proto_span *data)
{
    struct proto_buf text = PROTO_BUF_INIT;
    struct jsonline *jl = jsonline_new();
    char err[200];
    int rc = -1;

    if (jl)
        rc = jsonline_from_frame(jl, data->ptr, data->len, &text, err, sizeof(err));
    if (rc == 0) {
        fwrite(text.data, 1, text.len, stdout);
        fputc('\n', stdout);
    } else {
        inspect_error("%s", jl ? err : "out of memory");
    }
    jsonline_free(jl);
    proto_buf_free(&text);
    return rc;
}

int cmd_status(const struct inspect_opts *o)
{
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    struct proto_span answer;
    struct proto_msg m;
    struct conn *c = NULL;
    char msg[512];
    int rc;

    rc = cmd_connect(o, deadline, &c, NULL, NULL);
    if (rc != INSPECT_EXIT_OK)
        return rc;
    rc = conn_call_simple(c, PROTO_OP_STATUS, STATUS_ID, deadline, NULL, NULL, &answer, &m, msg,
                          sizeof(msg));
    if (rc < 0) {
        inspect_error("status: %s", msg);
        rc = cmd_exit_for(rc);
        goto out;
    }
    if (m.op != PROTO_OP_RESULT || !m.ok) {
        cmd_report_failure("status", &m);
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    if (!proto_msg_has(&m, PROTO_F_DATA)) {
        inspect_error("status: the result has no data");
        rc = INSPECT_EXIT_FAILED;
        goto out;
    }
    if (o->json)
        rc = print_json(&m.data);
    else
        rc = status_print(stdout, m.data.ptr, m.data.len);
    if (rc < 0 && !o->json)
        inspect_error("status: the data is not a status map (%s)", proto_error_name(rc));
    rc = rc < 0 ? INSPECT_EXIT_FAILED : INSPECT_EXIT_OK;
out:
    fflush(stdout);
    conn_free(c);
    return rc;
}
