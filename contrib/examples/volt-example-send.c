/* volt-example-send: send one command to the VOLT server through the
 * broker and print the result as JSON. The blocking API in ~100 lines.
 *
 *     volt-example-send get-container-stats '{"containerId":"c-1"}'
 *
 * The connect waits until the broker's upstream session is ready (like the
 * seed's `await connect()`), so a command sent right after a broker start
 * does not meet SOCKET_NOT_READY; --no-wait sends as soon as the broker
 * answers.
 *
 * Exit status: 0 the command succeeded, 1 it failed (the error is printed
 * on stderr), 2 usage error, 3 the broker could not be reached, 4 the
 * upstream did not become ready (its own error is printed).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <volt/client.h>

enum { EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NO_BROKER = 3, EXIT_NOT_READY = 4 };

static void usage(FILE *out)
{
    fprintf(out, "Usage: volt-example-send [OPTIONS] COMMAND [JSON_PAYLOAD]\n"
                 "Send COMMAND to the VOLT server through volt-broker and print the\n"
                 "result's data as JSON on stdout.\n"
                 "\n"
                 "  -s, --socket PATH           broker socket (default: $VOLT_BROKER_SOCKET,\n"
                 "                              else a per-user broker's socket if one exists,\n"
                 "                              else /run/volt/broker.sock)\n"
                 "  -t, --timeout MS            command timeout (default: the broker's)\n"
                 "  -c, --connect-timeout MS    how long to wait for the broker and its upstream\n"
                 "                              session (default: 20000)\n"
                 "  -n, --no-wait               do not wait for the upstream: send as soon as\n"
                 "                              the broker answers\n"
                 "  -h, --help                  show this help\n"
                 "\n"
                 "Exit status: 0 success, 1 the command failed, 2 usage error,\n"
                 "3 the broker could not be reached, 4 the upstream did not become ready.\n");
}

static int parse_ms(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 86400000)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"no-wait", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *socket_path = NULL;
    int timeout = 0, connect_timeout = 20000, wait_upstream = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "s:t:c:nh", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            socket_path = optarg;
            break;
        case 'n':
            wait_upstream = 0;
            break;
        case 't':
        case 'c': {
            int *dst = opt == 't' ? &timeout : &connect_timeout;
            if (parse_ms(optarg, dst) < 0) {
                fprintf(stderr, "volt-example-send: bad number of milliseconds '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[optind];
    const char *payload = optind + 1 < argc ? argv[optind + 1] : NULL;

    struct volt_options opts;
    volt_options_init(&opts);
    opts.socket_path = socket_path;
    opts.name = "volt-example-send";
    opts.wait_upstream = wait_upstream;
    volt_client *c = volt_client_new(&opts);
    if (!c) {
        fprintf(stderr, "volt-example-send: cannot create the client (bad socket path?)\n");
        return EXIT_USAGE;
    }
    int rc = volt_client_connect_blocking(c, connect_timeout);
    if (rc < 0) {
        bool broker = volt_client_is_connected(c);
        fprintf(stderr, "volt-example-send: %s: %s\n",
                broker ? "the upstream is not ready" : "cannot reach the broker",
                volt_client_errstr(c));
        volt_client_free(c);
        return broker ? EXIT_NOT_READY : EXIT_NO_BROKER;
    }

    volt_result *res = NULL;
    rc = volt_send_command_json_sync(c, command, payload, (uint32_t)timeout, &res);
    int status = 0;
    if (rc == 0) {
        printf("%s\n", res->json);
    } else if (res) {
        fprintf(stderr, "volt-example-send: %s failed: %s: %s", command, res->code_name,
                res->message);
        if (res->server_code)
            fprintf(stderr, " (server code %s)", res->server_code);
        fputc('\n', stderr);
        status = EXIT_FAILED;
    } else {
        fprintf(stderr, "volt-example-send: cannot send %s: %s (%s)\n", command, volt_strerror(rc),
                volt_client_errstr(c));
        status = rc == VOLT_E_BAD_REQUEST ? EXIT_USAGE : EXIT_FAILED;
    }
    volt_result_free(res);
    volt_client_free(c);
    return status;
}
