#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "proto/limits.h"
#include "util.h"

#ifndef VOLT_INSPECT_VERSION
#define VOLT_INSPECT_VERSION "unknown"
#endif

enum cli_opt {
    O_SOCKET,
    O_NAME,
    O_HELP,
    O_VERSION,
    O_TIMEOUT,
    O_WAIT,
    O_EXECUTE,
    O_ONESHOT,
    O_FOLLOW,
    O_VERBOSE,
    O_NO_HELLO,
    O_NO_AUTO_ID,
    O_NO_EDIT,
    O_RAW,
    O_JSON,
    O_PRETTY,
    O_COMPACT,
    O_LISTEN,
    O_MATCH,
    O_COUNT,
    O_DURATION,
    O_SINCE,
    O_WRITE,
    O_READ,
    O_TYPE,
    O_PREFIX,
    O_REPLY,
    O_EXEC,
    O_JOBS,
    O_TIME_LIMIT,
    O__COUNT
};

#define BIT(o) (1ull << (o))
#define GLOBAL (BIT(O_SOCKET) | BIT(O_NAME) | BIT(O_HELP) | BIT(O_VERSION))

struct cli_option {
    const char *name;
    int short_name;  /* 0: none */
    const char *arg; /* NULL: a flag */
    enum cli_arg kind;
    const char *help;
};

/* Indexed by enum cli_opt. */
static const struct cli_option options[O__COUNT] = {
    [O_SOCKET] = {"socket", 's', "PATH", CLI_ARG_FILE,
                  "the broker's socket (default: $VOLT_BROKER_SOCKET, else your own\n"
                  "broker's when there is one ($XDG_RUNTIME_DIR/volt/broker.sock or\n"
                  "/tmp/volt-UID/broker.sock), else /run/volt/broker.sock)"},
    [O_NAME] = {"name", 'n', "NAME", CLI_ARG_TEXT, "client name sent in hello (volt-inspect)"},
    [O_HELP] = {"help", 'h', NULL, CLI_ARG_NONE, "this help"},
    [O_VERSION] = {"version", 'V', NULL, CLI_ARG_NONE, "print the version"},
    [O_TIMEOUT] = {"timeout", 't', "MS", CLI_ARG_TEXT,
                   "time to connect and get the answer (30000); request: also the\n"
                   "request's own timeout (default: the broker's commandTimeout)"},
    [O_WAIT] = {"wait", 'w', "MS", CLI_ARG_TEXT,
                "after end of input, wait this long for answers (30000)"},
    [O_EXECUTE] = {"execute", 'e', "JSON", CLI_ARG_TEXT,
                   "a frame to send (repeatable; implies --oneshot)"},
    [O_ONESHOT] = {"oneshot", '1', NULL, CLI_ARG_NONE,
                   "send all frames of the input, print only their answers, exit"},
    [O_FOLLOW] = {"follow", 'f', NULL, CLI_ARG_NONE,
                  "after end of input, keep printing until the broker closes"},
    [O_VERBOSE] = {"verbose", 'v', NULL, CLI_ARG_NONE,
                   "also print sent frames; prefix lines with > (sent), < (received)"},
    [O_NO_HELLO] = {"no-hello", 0, NULL, CLI_ARG_NONE, "do not send hello (type it yourself)"},
    [O_NO_AUTO_ID] = {"no-auto-id", 0, NULL, CLI_ARG_NONE, "never add ids"},
    [O_NO_EDIT] = {"no-edit", 0, NULL, CLI_ARG_NONE,
                   "no line editing or history even on a terminal"},
    [O_RAW] = {"raw", 0, NULL, CLI_ARG_NONE,
               "session: send any JSON object as typed (no op check, no ids);\n"
               "request, subscribe: print whole frames, not just the data"},
    [O_JSON] = {"json", 'j', NULL, CLI_ARG_NONE, "machine-readable output: one JSON object a line"},
    [O_PRETTY] = {"pretty", 0, NULL, CLI_ARG_NONE, "indent the JSON even when not on a terminal"},
    [O_COMPACT] = {"compact", 0, NULL, CLI_ARG_NONE, "one line of JSON even on a terminal"},
    [O_LISTEN] = {"listen", 'l', "PATH", CLI_ARG_FILE,
                  "where to listen (a stale socket there is replaced)"},
    [O_MATCH] = {"match", 'm', "KEY=VALUE,...", CLI_ARG_MATCH,
                 "show only what matches (repeatable: any of them); keys: client,\n"
                 "name, pid, uid, peer, dir (in|out), side (local|upstream), op,\n"
                 "command, type, kind (frame|open|close|error); * and ? as in a shell"},
    [O_COUNT] = {"count", 'c', "N", CLI_ARG_TEXT,
                 "stop after N lines shown (subscribe: messages; serve: calls)"},
    [O_DURATION] = {"duration", 'd', "TIME", CLI_ARG_TEXT,
                    "stop after TIME (500ms, 10s, 5m, 2h; a bare number is ms)"},
    [O_SINCE] = {"since", 0, "WHEN", CLI_ARG_TEXT,
                 "with --read: skip what came before WHEN (2026-11-28T04:00:00Z,\n"
                 "or +TIME after the capture's first record)"},
    [O_WRITE] = {"write", 'W', "FILE", CLI_ARG_FILE,
                 "also write what is shown to a capture file (see volt-inspect(1))"},
    [O_READ] = {"read", 'r', "FILE", CLI_ARG_FILE, "replay a capture file instead of connecting"},
    [O_TYPE] = {"type", 0, "TYPE", CLI_ARG_TYPE, "messages of exactly this type (repeatable)"},
    [O_PREFIX] = {"prefix", 0, "PREFIX", CLI_ARG_TYPE,
                  "messages whose type starts with PREFIX (repeatable)"},
    [O_REPLY] = {"reply", 0, "JSON", CLI_ARG_PAYLOAD, "answer every call with this data"},
    [O_EXEC] = {"exec", 0, "PROG [ARG...]", CLI_ARG_FILE,
                "answer each call by running PROG (the rest of the line is its\n"
                "arguments): payload on stdin, reply data from stdout"},
    [O_JOBS] = {"jobs", 0, "N", CLI_ARG_TEXT, "--exec: at most N calls run at once (4)"},
    [O_TIME_LIMIT] = {"time-limit", 0, "MS", CLI_ARG_TEXT,
                      "--exec: kill a call's program after MS (default: the time the\n"
                      "broker gives the call)"},
};

#define TRACE_OPTS                                                                                 \
    (BIT(O_JSON) | BIT(O_MATCH) | BIT(O_COUNT) | BIT(O_DURATION) | BIT(O_SINCE) | BIT(O_WRITE) |   \
     BIT(O_READ))

static const struct cli_verb verbs[] = {
    {"session",
     "",
     "(default) JSON lines in, frames out; line editing on a terminal",
     "Connects, sends hello and prints the welcome; then every line read becomes a\n"
     "frame and every frame received is printed as one JSON line. On a terminal\n"
     "it is an interactive shell with line editing, history (kept per user) and\n"
     "tab completion; besides JSON frames it takes short commands:\n"
     "  request COMMAND [JSON]   emit TYPE [JSON]   subscribe [TYPE|PREFIX*]\n"
     "  register COMMAND...      unregister COMMAND...      status   ping\n"
     "  reply ok [JSON]          reply fail CODE [MESSAGE]\n"
     "  (reply answers the last call; `reply @ID ...` a given one)   help   quit\n"
     "Request ids are shown as #N, call ids as @N.\n"
     "\n"
     "Automatic ids: status, ping, request, register, unregister, subscribe,\n"
     "unsubscribe, credential and monitor get \"id\":N after their op when the\n"
     "line has none (N counts from 1, above any id you typed; with --oneshot\n"
     "every op but hello and reply gets one).\n"
     "\n"
     "At end of input, waits for the answers still owed (--wait), then exits.\n"
     "\n"
     "--oneshot (-1): read all frames first (from -e arguments, else stdin; a bad\n"
     "one sends nothing), send them, print only the answers to their ids, exit:\n"
     "  0 every answer ok:true   1 an answer ok:false (code and message on stderr)\n"
     "  2 bad input   3 cannot connect / broker gone   4 --timeout ran out\n"
     "\n"
     "Examples:\n"
     "  volt-inspect -e '{\"op\":\"request\",\"command\":\"get-container-stats\",\"payload\":{}}'\n"
     "  printf '{\"op\":\"ping\"}\\n' | volt-inspect\n",
     BIT(O_EXECUTE) | BIT(O_ONESHOT) | BIT(O_WAIT) | BIT(O_FOLLOW) | BIT(O_VERBOSE) |
         BIT(O_NO_HELLO) | BIT(O_NO_AUTO_ID) | BIT(O_RAW) | BIT(O_TIMEOUT) | BIT(O_NO_EDIT),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_session},
    {"request",
     "COMMAND [JSON|@FILE|-]",
     "send a command to the VOLT server, print its data",
     "Sends COMMAND with the payload (JSON text, @FILE, or - for stdin; none when\n"
     "absent) through the broker and prints the data of the answer: indented on a\n"
     "terminal, one line otherwise. Exit 0 ok; 1 the server or broker refused (code\n"
     "and message on stderr); 2 bad input; 3 no broker; 4 no answer in time.\n"
     "\n"
     "Example:\n"
     "  volt-inspect request get-container-stats '{\"containerId\":\"c-1\"}'\n",
     BIT(O_TIMEOUT) | BIT(O_RAW) | BIT(O_PRETTY) | BIT(O_COMPACT),
     {CLI_ARG_COMMAND, CLI_ARG_PAYLOAD},
     1,
     2,
     cmd_request},
    {"emit",
     "TYPE [JSON|@FILE|-]",
     "send a message to the VOLT server",
     "Sends a message of TYPE with the data (JSON text, @FILE, or -) and waits until\n"
     "the broker has written it upstream. Prints nothing; exit 0, or 1 (EmitFailed).\n",
     BIT(O_TIMEOUT),
     {CLI_ARG_TYPE, CLI_ARG_PAYLOAD},
     1,
     2,
     cmd_emit},
    {"subscribe",
     "",
     "print messages from the VOLT server, one JSON line each",
     "Subscribes (every type, or only the --type and --prefix given) and prints\n"
     "each message as {\"type\":...,\"data\":...}, until stopped or --count.\n",
     BIT(O_TYPE) | BIT(O_PREFIX) | BIT(O_COUNT) | BIT(O_TIMEOUT) | BIT(O_RAW),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_subscribe},
    {"serve",
     "COMMAND (--reply JSON | --exec PROG [ARG...])",
     "answer a command from the shell: a fixed reply or a program",
     "Registers COMMAND and answers every call for it until stopped (or --count).\n"
     "With --reply, every call gets that data. With --exec, each call runs PROG\n"
     "with the payload as JSON on its stdin (null when the call has none) and\n"
     "VOLT_COMMAND and VOLT_CALL_ID in its environment; what it prints on stdout\n"
     "(one JSON value) is the reply's data. A non-zero exit, output that is not\n"
     "JSON or a program killed at the time limit answers HandlerError with why\n"
     "(its stderr when it said something). Calls run at once up to --jobs; each\n"
     "program runs in its own process group, killed whole at its time limit.\n"
     "\n"
     "Example (a service in a line):\n"
     "  volt-inspect serve uptime --exec sh -c 'printf \"\\\"%s\\\"\" \"$(uptime)\"'\n",
     BIT(O_REPLY) | BIT(O_EXEC) | BIT(O_JOBS) | BIT(O_TIME_LIMIT) | BIT(O_COUNT) | BIT(O_TIMEOUT),
     {CLI_ARG_COMMAND, CLI_ARG_NONE},
     1,
     1,
     cmd_serve},
    {"status",
     "",
     "print the broker's status",
     "Prints the broker's status: upstream state and reason, uptime, counters,\n"
     "and a table of clients (pid, uid, name, handlers, subscriptions, queue).\n"
     "--json prints the status map as one JSON line.\n",
     BIT(O_JSON) | BIT(O_TIMEOUT),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_status},
    {"clients",
     "",
     "list the broker's clients",
     "One line per client: id, pid, uid, name, handlers, subscriptions, queued\n"
     "bytes and requests in flight. --json: one JSON object per client.\n",
     BIT(O_JSON) | BIT(O_TIMEOUT),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_clients},
    {"handlers",
     "",
     "list who serves which command",
     "One line per registered command and the clients serving it; several clients\n"
     "for one command are a queue group (calls are dealt round-robin among them).\n"
     "--json: one JSON object per command.\n",
     BIT(O_JSON) | BIT(O_TIMEOUT),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_handlers},
    {"metrics",
     "",
     "print the broker's metrics (OpenMetrics text)",
     "Prints the broker's counters and gauges in the OpenMetrics text format, as\n"
     "its textfile for node_exporter holds them. --json prints the text as one\n"
     "JSON string.\n",
     BIT(O_JSON) | BIT(O_TIMEOUT),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_metrics},
    {"monitor",
     "",
     "print every frame the broker sends or receives",
     "Asks the broker for a copy of every frame it sends or receives, local and\n"
     "upstream (root or the broker's own user only), and prints one line each:\n"
     "  TIME  c3 my-svc[4711] -> broker  {\"op\":\"request\",...}\n"
     "  TIME  broker -> server  42/control,[\"daemon:request\",...]\n"
     "Clients are named from the broker's status (refreshed when a new one\n"
     "appears); this monitor's own traffic is left out. --match filters, --write\n"
     "keeps a capture, --read replays one (no broker needed).\n",
     TRACE_OPTS | BIT(O_TIMEOUT),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_monitor},
    {"proxy",
     "--listen PATH",
     "sit between clients and the broker, print both directions",
     "Listens on PATH; for every client that connects there, opens a connection\n"
     "to the broker and copies bytes both ways unchanged, printing each frame in\n"
     "the monitor's line format (cN is the proxy's connection number, named from\n"
     "the client's hello and credentials). A frame that does not parse is shown\n"
     "as an error and still forwarded. Point a client at it with\n"
     "VOLT_BROKER_SOCKET=PATH.\n",
     TRACE_OPTS | BIT(O_LISTEN),
     {CLI_ARG_NONE, CLI_ARG_NONE},
     0,
     0,
     cmd_proxy},
    {"help",
     "[VERB]",
     "print the help of volt-inspect or of one verb",
     "",
     0,
     {CLI_ARG_VERB, CLI_ARG_NONE},
     0,
     1,
     NULL},
};

#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

const struct cli_verb *cli_find_verb(const char *name)
{
    if (strcmp(name, "call") == 0) /* the default mode's old name */
        name = "session";
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

const char *cli_verb_name(int i)
{
    return i >= 0 && (size_t)i < N_VERBS ? verbs[i].name : NULL;
}

/* ---- help ---- */

static void option_head(const struct cli_option *opt, char *buf, size_t size)
{
    if (opt->short_name)
        snprintf(buf, size, "-%c, --%s%s%s", opt->short_name, opt->name, opt->arg ? " " : "",
                 opt->arg ? opt->arg : "");
    else
        snprintf(buf, size, "    --%s%s%s", opt->name, opt->arg ? " " : "",
                 opt->arg ? opt->arg : "");
}

static void print_option(FILE *f, const struct cli_option *opt)
{
    char head[64];
    const char *h = opt->help;

    option_head(opt, head, sizeof(head));
    if (strlen(head) > 22)
        fprintf(f, "  %s\n  %-22s ", head, "");
    else
        fprintf(f, "  %-22s ", head);
    while (*h) {
        const char *nl = strchr(h, '\n');
        size_t n = nl ? (size_t)(nl - h) : strlen(h);
        fprintf(f, "%.*s\n", (int)n, h);
        h += n;
        if (*h == '\n') {
            h++;
            fprintf(f, "  %-22s ", "");
        }
    }
}

static void print_options(FILE *f, unsigned long long set)
{
    for (int i = 0; i < O__COUNT; i++)
        if (set & BIT(i))
            print_option(f, &options[i]);
}

void cli_help(FILE *f, const char *name)
{
    const struct cli_verb *v = name ? cli_find_verb(name) : NULL;

    if (v && v->run) {
        fprintf(f, "Usage: volt-inspect [OPTIONS] %s%s%s\n\n%s", v->name, v->args[0] ? " " : "",
                v->args, v->help);
        fputs("\nOptions:\n", f);
        print_options(f, v->options);
        fputs("\nCommon options:\n", f);
        print_options(f, GLOBAL);
        fputs("\nSee volt-inspect(1).\n", f);
        return;
    }
    fputs("Usage: volt-inspect [OPTIONS] [VERB [ARGS]]\n"
          "\n"
          "Talk to volt-broker over its Unix socket: short verbs that print just the\n"
          "answer, a session where each JSON line typed is a frame, and tracing.\n"
          "Binary values are shown and typed as {\"$bin\":\"<base64>\"}.\n"
          "\n"
          "Verbs:\n",
          f);
    for (size_t i = 0; i < N_VERBS; i++)
        fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fputs("\nCommon options:\n", f);
    print_options(f, GLOBAL);
    fputs("\n`volt-inspect VERB --help` (or `help VERB`) tells a verb's options.\n"
          "\n"
          "Exit status: 0 ok, 1 an answer had ok:false, 2 usage or bad input,\n"
          "3 cannot connect or the broker went away, 4 timeout.\n"
          "See volt-inspect(1).\n",
          f);
}

/* ---- parsing ---- */

static int usage_error(const char *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    inspect_verror(fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'volt-inspect %s%s--help'.\n", verb ? verb : "", verb ? " " : "");
    return INSPECT_EXIT_USAGE;
}

static int parse_count(const char *text, long long *out)
{
    char *end;
    long long v;

    if (!text || *text < '0' || *text > '9')
        return -1;
    v = strtoll(text, &end, 10);
    if (*end || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* getopt_long tables built from `options`. */
static void build_getopt(struct option *lo, char *shorts)
{
    size_t s = 0;

    for (int i = 0; i < O__COUNT; i++) {
        lo[i] = (struct option){options[i].name, options[i].arg ? required_argument : no_argument,
                                NULL, 1000 + i};
        if (options[i].short_name) {
            shorts[s++] = (char)options[i].short_name;
            if (options[i].arg)
                shorts[s++] = ':';
        }
    }
    lo[O__COUNT] = (struct option){NULL, 0, NULL, 0};
    shorts[s] = '\0';
}

static int opt_from_short(int c)
{
    for (int i = 0; i < O__COUNT; i++)
        if (options[i].short_name == c)
            return i;
    return -1;
}

/* `serve ... --exec PROG ARG...`: everything after --exec is the program's
 * command line, options included, so it is cut off before getopt sees it. */
static int split_exec(int *argc, char **argv, struct inspect_opts *o)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--exec") == 0) {
            if (i + 1 >= *argc)
                return usage_error("serve", "--exec needs a program");
            o->exec_argv = &argv[i + 1];
            argv[i] = NULL;
            *argc = i;
            return 0;
        }
    }
    return 0;
}

static int apply_option(int id, const char *arg, struct inspect_opts *o)
{
    static const char *execute[256];
    int ms;

    switch (id) {
    case O_SOCKET:
        o->socket = arg;
        break;
    case O_NAME:
        o->name = arg;
        break;
    case O_TIMEOUT:
    case O_WAIT:
    case O_TIME_LIMIT:
        if (inspect_parse_ms(arg, &ms) < 0)
            return usage_error(NULL, "--%s wants milliseconds (0..2147483647), not '%s'",
                               options[id].name, arg);
        if (id == O_TIMEOUT) {
            o->timeout_ms = ms;
            o->timeout_set = true;
        } else if (id == O_WAIT) {
            o->wait_ms = ms;
        } else {
            o->time_limit_ms = ms;
        }
        break;
    case O_EXECUTE:
        if (o->n_execute == sizeof(execute) / sizeof(execute[0]))
            return usage_error(NULL, "too many -e (256 at most)");
        execute[o->n_execute++] = arg;
        o->execute = execute;
        o->oneshot = true;
        break;
    case O_ONESHOT:
        o->oneshot = true;
        break;
    case O_FOLLOW:
        o->follow = true;
        break;
    case O_VERBOSE:
        o->verbose = true;
        break;
    case O_NO_HELLO:
        o->no_hello = true;
        break;
    case O_NO_AUTO_ID:
        o->no_auto_id = true;
        break;
    case O_NO_EDIT:
        o->no_edit = true;
        break;
    case O_RAW:
        o->raw = true;
        break;
    case O_JSON:
        o->json = true;
        break;
    case O_PRETTY:
        o->pretty = true;
        break;
    case O_COMPACT:
        o->compact = true;
        break;
    case O_LISTEN:
        o->listen = arg;
        break;
    case O_MATCH:
        if (o->n_matches == INSPECT_MAX_LIST)
            return usage_error(NULL, "too many --match (%d at most)", INSPECT_MAX_LIST);
        o->matches[o->n_matches++] = arg;
        break;
    case O_COUNT:
        if (parse_count(arg, &o->count) < 0)
            return usage_error(NULL, "--count wants a number, not '%s'", arg);
        break;
    case O_DURATION: {
        uint64_t d;
        if (inspect_parse_duration(arg, &d) < 0)
            return usage_error(NULL, "--duration wants a time such as 500ms, 10s, 5m, not '%s'",
                               arg);
        o->duration = (long long)d;
        break;
    }
    case O_SINCE:
        o->since = arg;
        break;
    case O_WRITE:
        o->write = arg;
        break;
    case O_READ:
        o->read = arg;
        break;
    case O_TYPE:
    case O_PREFIX:
        if (o->n_subs == INSPECT_MAX_LIST)
            return usage_error(NULL, "too many --type/--prefix (%d at most)", INSPECT_MAX_LIST);
        o->subs[o->n_subs++] = (struct inspect_sub){id == O_PREFIX, arg};
        break;
    case O_REPLY:
        o->reply = arg;
        break;
    case O_JOBS: {
        long long n;
        if (parse_count(arg, &n) < 0 || n < 1 || n > 1024)
            return usage_error(NULL, "--jobs wants a number from 1 to 1024, not '%s'", arg);
        o->jobs = (int)n;
        break;
    }
    default:
        break;
    }
    return 0;
}

/* Checks the combination of options the table cannot say. */
static int check_verb(const struct cli_verb *v, const struct inspect_opts *o)
{
    const char *n = v->name;

    if ((int)o->n_args < v->min_args)
        return usage_error(n, "%s needs %s", n, v->args);
    if (v->max_args >= 0 && (int)o->n_args > v->max_args)
        return usage_error(n, "too many arguments for %s ('%s')", n, o->args[v->max_args]);
    if (v->run == cmd_session) {
        if (o->follow && o->oneshot)
            return usage_error(n, "--follow and --oneshot do not go together");
    }
    if (v->run == cmd_proxy && !o->listen && !o->read)
        return usage_error(n, "proxy needs --listen PATH (or --read FILE)");
    if ((v->run == cmd_proxy || v->run == cmd_monitor) && o->read) {
        if (o->listen || o->write)
            return usage_error(n, "--read replays a capture: no --listen or --write with it");
    }
    if (o->since && !o->read)
        return usage_error(n, "--since is for --read (a live trace has no past)");
    if (o->pretty && o->compact)
        return usage_error(n, "--pretty and --compact do not go together");
    if (v->run == cmd_serve) {
        if (!o->reply == !o->exec_argv)
            return usage_error(n, "serve needs one of --reply JSON and --exec PROG");
        if (o->jobs && !o->exec_argv)
            return usage_error(n, "--jobs is for --exec");
        if (o->time_limit_ms && !o->exec_argv)
            return usage_error(n, "--time-limit is for --exec");
    }
    return 0;
}

int cli_parse(int argc, char **argv, struct inspect_opts *o, const struct cli_verb **verb)
{
    struct option lo[O__COUNT + 1];
    char shorts[2 * O__COUNT + 2];
    unsigned long long given = 0;
    int c, rc, idx;
    const struct cli_verb *v;
    bool verb_given;

    if ((rc = split_exec(&argc, argv, o)) != 0)
        return rc;
    build_getopt(lo, shorts);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, shorts, lo, &idx)) != -1) {
        int id = c >= 1000 ? c - 1000 : opt_from_short(c);
        if (c == '?' || id < 0) {
            if (optopt && opt_from_short(optopt) >= 0)
                return usage_error(NULL, "option -%c needs an argument", optopt);
            if (optopt >= 1000)
                return usage_error(NULL, "option --%s needs an argument",
                                   options[optopt - 1000].name);
            return usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        }
        if (id == O_VERSION) {
            printf("volt-inspect %s (local protocol %u..%u)\n", VOLT_INSPECT_VERSION,
                   PROTO_VERSION_MIN, PROTO_VERSION_MAX);
            return INSPECT_EXIT_OK;
        }
        given |= BIT(id);
        if ((rc = apply_option(id, optarg, o)) != 0)
            return rc;
    }
    if (o->exec_argv)
        given |= BIT(O_EXEC);
    verb_given = optind < argc;
    if (optind < argc) {
        const char *name = argv[optind++];
        v = cli_find_verb(name);
        if (!v)
            return usage_error(NULL, "unknown verb '%s' (see the list in --help)", name);
    } else {
        v = cli_find_verb("session");
    }
    o->args = &argv[optind];
    o->n_args = (size_t)(argc - optind);
    if (!v->run) { /* help [VERB] */
        if (o->n_args > 1)
            return usage_error(NULL, "help takes one verb");
        cli_help(stdout, o->n_args ? o->args[0] : NULL);
        return INSPECT_EXIT_OK;
    }
    if (given & BIT(O_HELP)) {
        /* `volt-inspect --help` is the tool's help, not the session's. */
        cli_help(stdout, verb_given ? v->name : NULL);
        return INSPECT_EXIT_OK;
    }
    for (int i = 0; i < O__COUNT; i++) {
        if ((given & BIT(i)) && !((v->options | GLOBAL) & BIT(i)))
            return usage_error(v->name, "--%s is not an option of %s", options[i].name, v->name);
    }
    o->verb = v->name;
    if ((rc = check_verb(v, o)) != 0)
        return rc;
    *verb = v;
    return -1;
}

/* ---- completion ---- */

static void put_if(FILE *f, const char *cand, const char *cur)
{
    if (strncmp(cand, cur, strlen(cur)) == 0)
        fprintf(f, "%s\n", cand);
}

static int option_by_word(const char *w)
{
    if (w[0] == '-' && w[1] == '-') {
        size_t n = strcspn(w + 2, "=");
        for (int i = 0; i < O__COUNT; i++)
            if (strlen(options[i].name) == n && strncmp(options[i].name, w + 2, n) == 0)
                return i;
    } else if (w[0] == '-' && w[1] && !w[2]) {
        return opt_from_short(w[1]);
    }
    return -1;
}

static void complete_match(FILE *f, const char *cur)
{
    static const char *const keys[] = {
        "client=",    "name=",      "pid=",          "uid=",      "peer=",    "dir=in",
        "dir=out",    "side=local", "side=upstream", "op=",       "command=", "type=",
        "kind=frame", "kind=open",  "kind=close",    "kind=error"};
    const char *comma = strrchr(cur, ',');
    size_t head = comma ? (size_t)(comma - cur + 1) : 0;
    char cand[128];

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(cand, sizeof(cand), "%.*s%s", (int)head, cur, keys[i]);
        put_if(f, cand, cur);
    }
}

static void complete_arg(FILE *f, enum cli_arg kind, const char *cur, const char *socket)
{
    switch (kind) {
    case CLI_ARG_FILE:
        fputs(":file\n", f);
        break;
    case CLI_ARG_PAYLOAD:
        if (cur[0] == '@')
            fputs(":file\n", f);
        break;
    case CLI_ARG_COMMAND:
    case CLI_ARG_TYPE: {
        struct names_words words = {0};
        if (names_broker_words(socket, 1500, &words) == 0) {
            char **list = kind == CLI_ARG_COMMAND ? words.commands : words.types;
            size_t n = kind == CLI_ARG_COMMAND ? words.n_commands : words.n_types;
            for (size_t i = 0; i < n; i++)
                put_if(f, list[i], cur);
        }
        names_words_free(&words);
        break;
    }
    case CLI_ARG_MATCH:
        complete_match(f, cur);
        break;
    case CLI_ARG_VERB:
        for (size_t i = 0; i < N_VERBS; i++)
            put_if(f, verbs[i].name, cur);
        break;
    default:
        break;
    }
}

void cli_complete(FILE *f, int n, char **words)
{
    const struct cli_verb *v = NULL;
    const char *cur = n > 0 ? words[n - 1] : "";
    const char *socket = NULL;
    int positional = 0;

    /* Walk the words before the current one: options (and their
     * arguments), the verb, positional arguments. */
    for (int i = 0; i < n - 1; i++) {
        const char *w = words[i];
        int id = option_by_word(w);
        if (strcmp(w, "--exec") == 0 && v && v->run == cmd_serve) {
            if (i == n - 2)
                fputs(":file\n", f); /* the program */
            return;                  /* the rest is the program's own command line */
        }
        if (id >= 0) {
            if (options[id].arg && !strchr(w, '=')) {
                if (i == n - 2) { /* completing this option's argument */
                    complete_arg(f, options[id].kind, cur, socket);
                    return;
                }
                if (id == O_SOCKET)
                    socket = words[i + 1];
                i++;
            }
            continue;
        }
        if (w[0] == '-' && w[1])
            continue;
        if (!v)
            v = cli_find_verb(w);
        else
            positional++;
    }
    if (cur[0] == '-') {
        unsigned long long set = GLOBAL | (v ? v->options : 0);
        char cand[64];
        if (!v)
            set = ~0ull;
        for (int i = 0; i < O__COUNT; i++) {
            if (!(set & BIT(i)))
                continue;
            snprintf(cand, sizeof(cand), "--%s", options[i].name);
            put_if(f, cand, cur);
        }
        return;
    }
    if (!v) {
        for (size_t i = 0; i < N_VERBS; i++)
            put_if(f, verbs[i].name, cur);
        return;
    }
    if (v->max_args >= 0 && positional >= v->max_args)
        return;
    complete_arg(f, v->arg_kind[positional ? 1 : 0], cur, socket);
}
