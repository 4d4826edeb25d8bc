/* volt-inspect: a socat/varlinkctl-style inspector for volt-broker.
 * main() parses the command line and hands over to one mode (cmd.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "help.h"
#include "proto/limits.h"
#include "util.h"

#ifndef VOLT_INSPECT_VERSION
#define VOLT_INSPECT_VERSION "unknown"
#endif

enum {
    OPT_NO_HELLO = 256,
    OPT_NO_AUTO_ID,
    OPT_RAW,
};

static const struct option long_options[] = {
    {"socket", required_argument, NULL, 's'},
    {"timeout", required_argument, NULL, 't'},
    {"wait", required_argument, NULL, 'w'},
    {"name", required_argument, NULL, 'n'},
    {"listen", required_argument, NULL, 'l'},
    {"execute", required_argument, NULL, 'e'},
    {"oneshot", no_argument, NULL, '1'},
    {"follow", no_argument, NULL, 'f'},
    {"verbose", no_argument, NULL, 'v'},
    {"json", no_argument, NULL, 'j'},
    {"no-hello", no_argument, NULL, OPT_NO_HELLO},
    {"no-auto-id", no_argument, NULL, OPT_NO_AUTO_ID},
    {"raw", no_argument, NULL, OPT_RAW},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *what, const char *mode)
{
    inspect_error("%s", what);
    fprintf(stderr, "Try 'volt-inspect %s%s--help'.\n", mode ? mode : "", mode ? " " : "");
    return INSPECT_EXIT_USAGE;
}

static int parse_ms(const char *opt, const char *text, int *out)
{
    char what[128];

    if (inspect_parse_ms(text, out) == 0)
        return 0;
    snprintf(what, sizeof(what), "%s wants milliseconds (0..2147483647), not '%s'", opt, text);
    return usage_error(what, NULL);
}

/* Options that belong to one mode only. */
static int check_mode_options(const struct inspect_opts *o, const char *mode)
{
    bool call = strcmp(mode, "call") == 0;

    if (o->listen && strcmp(mode, "proxy") != 0)
        return usage_error("--listen is for the proxy mode", mode);
    if (!o->listen && strcmp(mode, "proxy") == 0)
        return usage_error("proxy needs --listen PATH", mode);
    if (!call && (o->oneshot || o->follow || o->raw || o->no_auto_id || o->verbose))
        return usage_error("--oneshot, -e, --follow, --verbose, --raw and --no-auto-id are "
                           "for the call mode",
                           mode);
    if (o->follow && o->oneshot)
        return usage_error("--follow and --oneshot do not go together", mode);
    if (call && o->json)
        return usage_error("--json is for proxy, monitor and status (call prints JSON anyway)",
                           mode);
    if (o->no_hello && (strcmp(mode, "monitor") == 0 || strcmp(mode, "status") == 0))
        return usage_error("--no-hello is for the call mode", mode);
    return 0;
}

static int parse(int argc, char **argv, struct inspect_opts *o, const char **mode, bool *help)
{
    static const char *execute[256];
    int c, rc;

    while ((c = getopt_long(argc, argv, "s:t:w:n:l:e:1fvjhV", long_options, NULL)) != -1) {
        switch (c) {
        case 's':
            o->socket = optarg;
            break;
        case 't':
            if ((rc = parse_ms("--timeout", optarg, &o->timeout_ms)) != 0)
                return rc;
            break;
        case 'w':
            if ((rc = parse_ms("--wait", optarg, &o->wait_ms)) != 0)
                return rc;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'e':
            if (o->n_execute == sizeof(execute) / sizeof(execute[0]))
                return usage_error("too many -e (256 at most)", NULL);
            execute[o->n_execute++] = optarg;
            o->execute = execute;
            o->oneshot = true;
            break;
        case '1':
            o->oneshot = true;
            break;
        case 'f':
            o->follow = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'j':
            o->json = true;
            break;
        case OPT_NO_HELLO:
            o->no_hello = true;
            break;
        case OPT_NO_AUTO_ID:
            o->no_auto_id = true;
            break;
        case OPT_RAW:
            o->raw = true;
            break;
        case 'h':
            *help = true;
            break;
        case 'V':
            printf("volt-inspect %s (local protocol %u..%u)\n", VOLT_INSPECT_VERSION,
                   PROTO_VERSION_MIN, PROTO_VERSION_MAX);
            exit(INSPECT_EXIT_OK);
        default:
            return usage_error("unknown option", NULL);
        }
    }
    if (optind < argc)
        *mode = argv[optind++];
    if (*mode && strcmp(*mode, "help") == 0) {
        *help = true;
        *mode = optind < argc ? argv[optind++] : NULL;
    }
    if (optind < argc)
        return usage_error("too many arguments", *mode);
    return 0;
}

int main(int argc, char **argv)
{
    struct inspect_opts o = {
        .name = INSPECT_DEFAULT_NAME,
        .timeout_ms = INSPECT_DEFAULT_TIMEOUT_MS,
        .wait_ms = INSPECT_DEFAULT_TIMEOUT_MS,
    };
    const char *mode = NULL;
    bool help = false;
    int rc = parse(argc, argv, &o, &mode, &help);

    if (rc != 0)
        return rc;
    if (help) {
        help_print(stdout, mode);
        return INSPECT_EXIT_OK;
    }
    if (!mode)
        mode = "call";
    if (strcmp(mode, "call") && strcmp(mode, "proxy") && strcmp(mode, "monitor") &&
        strcmp(mode, "status")) {
        char what[160];
        snprintf(what, sizeof(what), "unknown mode '%s' (call, proxy, monitor, status)", mode);
        return usage_error(what, NULL);
    }
    if ((rc = check_mode_options(&o, mode)) != 0)
        return rc;
    if (strcmp(mode, "proxy") == 0)
        return cmd_proxy(&o);
    if (strcmp(mode, "monitor") == 0)
        return cmd_monitor(&o);
    if (strcmp(mode, "status") == 0)
        return cmd_status(&o);
    return cmd_call(&o);
}
