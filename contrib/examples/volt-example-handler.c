/* volt-example-handler: a local service that answers commands from the
 * VOLT server, on the libuv adapter.
 *
 * It registers two commands:
 *   list-files  {"path": DIR}  -> the sorted names in DIR (answered at once,
 *                                 JSON in and out through cJSON)
 *   echo-local  any payload    -> the same payload, answered later from a
 *                                 uv timer (raw msgpack, passed through)
 * The handlers stay registered across broker restarts (the library
 * registers them again on every new session).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>
#include <volt/adapters/libuv.h>
#include <volt/client.h>

struct pending_echo {
    uv_timer_t timer;
    volt_call *call;
    struct pending_echo *next;
};

static struct {
    uv_loop_t *loop;
    volt_client *client;
    uv_signal_t sigint, sigterm;
    int delay_ms;
    struct pending_echo *echoes;
} app;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("volt-example-handler: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: volt-example-handler [OPTIONS]\n"
                 "Answer the VOLT server's list-files and echo-local commands through\n"
                 "volt-broker, until SIGINT or SIGTERM.\n"
                 "\n"
                 "  -s, --socket PATH   broker socket (default: $VOLT_BROKER_SOCKET,\n"
                 "                      else /run/volt/broker.sock for root,\n"
                 "                      else $XDG_RUNTIME_DIR/volt/broker.sock)\n"
                 "  -n, --name NAME     client name shown in the broker's status\n"
                 "                      (default: volt-example-handler)\n"
                 "  -d, --delay MS      how long echo-local waits before answering (default: 200)\n"
                 "  -h, --help          show this help\n"
                 "\n"
                 "Commands:\n"
                 "  list-files  {\"path\": DIR}  ->  [\"name\", ...]\n"
                 "  echo-local  PAYLOAD        ->  PAYLOAD, after --delay ms\n");
}

/* --- list-files: answered at once --- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_files(volt_client *c, volt_call *call, void *privdata)
{
    const char *json = volt_call_payload_json(call);
    cJSON *in = json ? cJSON_Parse(json) : NULL;
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(in, "path");
    if (!cJSON_IsString(path)) {
        volt_call_fail(call, VOLT_E_HANDLER_ERROR, "payload must be {\"path\": string}");
        cJSON_Delete(in);
        return;
    }
    DIR *dir = opendir(path->valuestring);
    if (!dir) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot list %s: %s", path->valuestring, strerror(errno));
        volt_call_fail(call, VOLT_E_HANDLER_ERROR, msg);
        cJSON_Delete(in);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(dir);
    qsort(names, n, sizeof *names, by_name);
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(out, cJSON_CreateString(names[i]));
        free(names[i]);
    }
    free(names);
    char *text = cJSON_PrintUnformatted(out);
    int rc = text ? volt_call_reply_json(call, text) : volt_call_fail(call, VOLT_E_NOMEM, NULL);
    if (rc < 0)
        logf_("list-files %s: answer not sent: %s", path->valuestring, volt_strerror(rc));
    else
        logf_("list-files %s: %zu entries", path->valuestring, n);
    cJSON_free(text);
    cJSON_Delete(out);
    cJSON_Delete(in);
}

/* --- echo-local: answered later, from a timer --- */

static void free_echo(uv_handle_t *handle)
{
    free(handle->data);
}

static void unlink_echo(struct pending_echo *p)
{
    for (struct pending_echo **pp = &app.echoes; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

static void echo_fire(uv_timer_t *timer)
{
    struct pending_echo *p = timer->data;
    size_t len;
    const void *payload = volt_call_payload(p->call, &len);
    /* The call may have outlived its broker session; the answer then
     * returns BrokerGone (the broker already answered HandlerError). */
    int rc = volt_call_reply(p->call, payload, len);
    logf_("echo-local: answered after %d ms: %s", app.delay_ms, rc < 0 ? volt_strerror(rc) : "ok");
    unlink_echo(p);
    uv_close((uv_handle_t *)&p->timer, free_echo);
}

static void echo_local(volt_client *c, volt_call *call, void *privdata)
{
    struct pending_echo *p = calloc(1, sizeof *p);
    if (!p) {
        volt_call_fail(call, VOLT_E_NOMEM, NULL);
        return;
    }
    p->call = call;
    uv_timer_init(app.loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, echo_fire, (uint64_t)app.delay_ms, 0);
    p->next = app.echoes;
    app.echoes = p;
}

/* --- events --- */

static void on_broker(volt_client *c, int up, void *privdata)
{
    logf_("broker %s%s%s", up ? "session up: " : "connection lost",
          up ? volt_client_broker_name(c) : "", up ? "" : ", reconnecting");
}

static void on_connected(volt_client *c, void *privdata)
{
    logf_("upstream ready");
}

static void on_disconnected(volt_client *c, const char *reason, void *privdata)
{
    logf_("upstream disconnected: %s", reason);
}

static void on_error(volt_client *c, int code, const char *message, void *privdata)
{
    logf_("error %s: %s", volt_err_name(code), message);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    logf_("stopping (signal %d)", signum);
    /* Answer what is still waiting so the server hears back at once. */
    while (app.echoes) {
        struct pending_echo *p = app.echoes;
        app.echoes = p->next;
        volt_call_fail(p->call, VOLT_E_SHUTTING_DOWN, "handler stopping");
        uv_close((uv_handle_t *)&p->timer, free_echo);
    }
    volt_client_free(app.client); /* closes the adapter's handles */
    app.client = NULL;
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'n'},
        {"delay", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct volt_options opts;
    volt_options_init(&opts);
    opts.name = "volt-example-handler";
    app.delay_ms = 200;
    int opt;
    while ((opt = getopt_long(argc, argv, "s:n:d:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            opts.socket_path = optarg;
            break;
        case 'n':
            opts.name = optarg;
            break;
        case 'd': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > 3600000) {
                fprintf(stderr, "volt-example-handler: bad delay '%s'\n", optarg);
                return 2;
            }
            app.delay_ms = (int)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    app.loop = uv_default_loop();
    app.client = volt_client_new(&opts);
    if (!app.client) {
        fprintf(stderr, "volt-example-handler: cannot create the client\n");
        return 2;
    }
    volt_on_broker(app.client, on_broker, NULL);
    volt_on_connected(app.client, on_connected, NULL);
    volt_on_disconnected(app.client, on_disconnected, NULL);
    volt_on_error(app.client, on_error, NULL);
    volt_register_handler(app.client, "list-files", list_files, NULL);
    volt_register_handler(app.client, "echo-local", echo_local, NULL);
    if (volt_libuv_attach(app.client, app.loop) < 0) {
        fprintf(stderr, "volt-example-handler: cannot attach to the loop\n");
        return 1;
    }
    uv_signal_init(app.loop, &app.sigint);
    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);

    logf_("connecting to %s", volt_client_socket_path(app.client));
    if (volt_client_connect(app.client) < 0) {
        logf_("cannot connect: %s", volt_client_errstr(app.client));
        return 1;
    }
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_loop_close(app.loop);
    return 0;
}
