/* volt-example-subscribe: print the VOLT server's messages as JSON lines.
 * A service on the client's own blocking run loop.
 *
 *     volt-example-subscribe --prefix session. --exact exposure-snapshot
 *
 * Each message is one line {"type":T,"data":D}; upstream and broker events
 * are lines {"event":...} too, so the output can be piped into jq.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <volt/client.h>

static volt_client *client;
static long remaining = -1; /* messages until exit; -1: forever */

static void usage(FILE *out)
{
    fprintf(out, "Usage: volt-example-subscribe [OPTIONS]\n"
                 "Subscribe to the VOLT server's messages through volt-broker and print\n"
                 "each as a JSON line {\"type\":...,\"data\":...}; events as {\"event\":...}.\n"
                 "\n"
                 "  -s, --socket PATH     broker socket (default: $VOLT_BROKER_SOCKET, ...)\n"
                 "  -a, --all             every message (the default without filters)\n"
                 "  -e, --exact TYPE      messages whose type is TYPE (repeatable)\n"
                 "  -p, --prefix PREFIX   messages whose type starts with PREFIX (repeatable)\n"
                 "  -n, --count N         exit after N messages\n"
                 "  -h, --help            show this help\n"
                 "\n"
                 "Keeps running (and reconnecting to the broker) until SIGINT or SIGTERM.\n");
}

/* Prints s as a JSON string. */
static void put_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void on_message(volt_client *c, const volt_message *m, void *privdata)
{
    fputs("{\"type\":", stdout);
    put_json_string(m->type);
    printf(",\"data\":%s}\n", m->json);
    if (remaining > 0 && --remaining == 0)
        volt_client_stop(c);
}

static void on_connected(volt_client *c, void *privdata)
{
    printf("{\"event\":\"connected\"}\n");
}

static void on_disconnected(volt_client *c, const char *reason, void *privdata)
{
    fputs("{\"event\":\"disconnected\",\"reason\":", stdout);
    put_json_string(reason);
    fputs("}\n", stdout);
}

static void on_error(volt_client *c, int code, const char *message, void *privdata)
{
    fputs("{\"event\":\"error\",\"code\":", stdout);
    put_json_string(volt_err_name(code));
    fputs(",\"message\":", stdout);
    put_json_string(message);
    fputs("}\n", stdout);
}

static void on_broker(volt_client *c, int up, void *privdata)
{
    printf("{\"event\":\"broker\",\"up\":%s}\n", up ? "true" : "false");
}

static void on_signal(int sig)
{
    volt_client_stop(client);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"all", no_argument, NULL, 'a'},
        {"exact", required_argument, NULL, 'e'},
        {"prefix", required_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct volt_options opts;
    volt_options_init(&opts);
    opts.name = "volt-example-subscribe";
    /* Filters are collected first: the socket option may come after them. */
    struct {
        enum volt_match match;
        const char *type;
    } filters[64];
    int n_filters = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "s:ae:p:n:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            opts.socket_path = optarg;
            break;
        case 'a':
        case 'e':
        case 'p':
            if (n_filters == (int)(sizeof filters / sizeof filters[0])) {
                fprintf(stderr, "volt-example-subscribe: too many filters\n");
                return 2;
            }
            filters[n_filters].match = opt == 'a'   ? VOLT_MATCH_ALL
                                       : opt == 'e' ? VOLT_MATCH_EXACT
                                                    : VOLT_MATCH_PREFIX;
            filters[n_filters].type = opt == 'a' ? NULL : optarg;
            n_filters++;
            break;
        case 'n': {
            char *end;
            remaining = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || remaining <= 0) {
                fprintf(stderr, "volt-example-subscribe: bad count '%s'\n", optarg);
                return 2;
            }
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
    if (n_filters == 0) {
        filters[0].match = VOLT_MATCH_ALL;
        filters[0].type = NULL;
        n_filters = 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    client = volt_client_new(&opts);
    if (!client) {
        fprintf(stderr, "volt-example-subscribe: cannot create the client\n");
        return 2;
    }
    volt_on_connected(client, on_connected, NULL);
    volt_on_disconnected(client, on_disconnected, NULL);
    volt_on_error(client, on_error, NULL);
    volt_on_broker(client, on_broker, NULL);
    for (int i = 0; i < n_filters; i++) {
        if (volt_on_message(client, filters[i].match, filters[i].type, VOLT_MESSAGE_JSON,
                            on_message, NULL) < 0) {
            fprintf(stderr, "volt-example-subscribe: bad filter\n");
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* Reconnect is on: a missing broker is waited for, not an error. */
    int rc = volt_client_connect(client);
    if (rc == 0)
        rc = volt_client_run(client);
    if (rc < 0)
        fprintf(stderr, "volt-example-subscribe: %s (%s)\n", volt_strerror(rc),
                volt_client_errstr(client));
    volt_client_free(client);
    return rc < 0 ? 1 : 0;
}
