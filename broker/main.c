/* volt-broker: command line, signals, systemd notification, the loop. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <uv.h>

#include "broker.h"
#include "config.h"
#include "util/fdlimit.h"
#include "util/log.h"
#include "util/sdnotify.h"

#define ERRBUF 4096

struct daemon {
    uv_loop_t loop;
    struct broker *broker;
    struct broker_config cfg;
    const char *config_path;
    int argc;
    char **argv;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t watchdog;
    bool watchdog_on;
    int exit_code;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: volt-broker [OPTIONS]\n"
            "\n"
            "Keeps the one upstream socket.io session to the VOLT server and lets local\n"
            "processes share it over a Unix socket (see proto/PROTOCOL.md, libvoltclient,\n"
            "volt-inspect).\n"
            "\n"
            "General options:\n"
            "  -c, --config FILE     JSON configuration file (keys below; default: $VOLT_CONFIG)\n"
            "      --check-config    validate the configuration, explain each problem, exit\n"
            "      --print-config    print the effective configuration as a file --config\n"
            "                        accepts (secrets shown as \"(set)\"), exit\n"
            "      --print-man-settings  the man page's settings section (roff), exit\n"
            "  -h, --help            this help\n"
            "  -V, --version         print the version\n"
            "\n"
            "Settings (file key, environment variable, flag; flags override the environment,\n"
            "which overrides the file). Secrets are never accepted as flags:\n");
    config_print_help(out);
    fprintf(out,
            "\n"
            "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the settings marked\n"
            "\"reloaded by SIGHUP\" above (the others need a restart).\n"
            "Exit status: 0 stopped cleanly; %d the configuration has problems; 1 other\n"
            "failures (e.g. the socket cannot be bound).\n",
            CONFIG_EXIT_STATUS);
}

/* Loads file, environment and flags into cfg. Returns the number of
 * problems, each explained in errors. */
static int load_config(struct daemon *d, struct broker_config *cfg, char *errors, size_t errlen,
                       bool *check_only, bool *print_only)
{
    int problems = 0;

    if (config_init(cfg) < 0) {
        snprintf(errors, errlen, "out of memory\n");
        return 1;
    }
    if (d->config_path)
        problems += config_load_file(cfg, d->config_path, errors, errlen);
    problems += config_load_env(cfg, errors, errlen);
    for (int i = 1; i < d->argc;) {
        const char *a = d->argv[i];
        int used = 0;
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            i += 2;
            continue;
        }
        if (!strncmp(a, "--config=", 9)) {
            i++;
            continue;
        }
        if (!strcmp(a, "--check-config")) {
            *check_only = true;
            i++;
            continue;
        }
        if (!strcmp(a, "--print-config")) {
            *print_only = true;
            i++;
            continue;
        }
        int rc = config_apply_flag(cfg, d->argc - i, d->argv + i, &used, errors, errlen);
        if (rc < 0) {
            problems++;
            i += used ? used : 1;
            continue;
        }
        if (rc > 0) {
            /* Only the name: "--passwd=..." may well carry a secret. */
            size_t n = strlen(errors);
            int name_len = (int)strcspn(a, "=");
            snprintf(errors + n, errlen - n, "unknown option '%.*s' (see --help)\n", name_len, a);
            problems++;
            i++;
            continue;
        }
        i += used;
    }
    problems += config_validate(cfg, errors, errlen);
    return problems;
}

static void on_term(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;

    sdnotify_send("STOPPING=1");
    broker_shutdown(d->broker, signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    if (d->watchdog_on) {
        d->watchdog_on = false;
        uv_close((uv_handle_t *)&d->watchdog, NULL);
    }
}

/* Every client is a descriptor: a maxClients the open-file limit cannot
 * hold would fail in accept(), with nothing said to the client. The soft
 * limit is raised as far as needed, at start and on reload. */
static void fit_max_clients(struct broker_config *cfg)
{
    uint64_t needed = (uint64_t)cfg->max_clients + FDLIMIT_RESERVE;
    uint64_t before = fdlimit_current();
    uint64_t limit = fdlimit_raise(needed);

    if (limit > before)
        log_info("open file limit raised from %llu to %llu for maxClients %u",
                 (unsigned long long)before, (unsigned long long)limit, cfg->max_clients);
    if (limit == 0 || limit >= needed)
        return;
    uint32_t fits = limit > 2 * FDLIMIT_RESERVE ? (uint32_t)(limit - FDLIMIT_RESERVE) : 1;
    log_warn("maxClients %u needs %llu open files but the limit is %llu: serving at most %u "
             "clients (raise LimitNOFILE= or ulimit -n)",
             cfg->max_clients, (unsigned long long)needed, (unsigned long long)limit, fits);
    cfg->max_clients = fits;
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    struct broker_config fresh;
    char errors[ERRBUF] = "";
    bool check = false, print = false;

    (void)signum;
    sdnotify_send("RELOADING=1");
    if (load_config(d, &fresh, errors, sizeof(errors), &check, &print) > 0) {
        /* One log line per problem: a line break inside an entry would
         * reach the journal as lines without a priority. */
        log_error("SIGHUP: configuration has problems, nothing reloaded");
        for (char *save = NULL, *line = strtok_r(errors, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            log_error("SIGHUP: %s", line);
    } else {
        fit_max_clients(&fresh);
        broker_reload(d->broker, &fresh);
    }
    config_free(&fresh);
    sdnotify_send("READY=1");
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    sdnotify_send("WATCHDOG=1");
}

static int run(struct daemon *d)
{
    enum log_level lv;
    uint64_t wd;
    int rc;

    enum log_format lf;
    if (log_level_parse(d->cfg.log_level, &lv) == 0)
        log_set_level(lv);
    if (log_format_parse(d->cfg.log_format, &lf) == 0)
        log_set_format(lf);
    /* A client that vanishes mid-write must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    fit_max_clients(&d->cfg);
    rc = uv_loop_init(&d->loop);
    if (rc < 0) {
        log_error("uv_loop_init: %s", uv_strerror(rc));
        return 1;
    }
    d->broker = broker_new(&d->loop, &d->cfg);
    if (!d->broker) {
        log_error("out of memory");
        return 1;
    }
    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_int);
    uv_signal_init(&d->loop, &d->sig_hup);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
    uv_signal_start(&d->sig_term, on_term, SIGTERM);
    uv_signal_start(&d->sig_int, on_term, SIGINT);
    uv_signal_start(&d->sig_hup, on_hup, SIGHUP);

    rc = broker_start(d->broker);
    if (rc < 0) {
        d->exit_code = 1;
        broker_shutdown(d->broker, "start failed");
        uv_close((uv_handle_t *)&d->sig_term, NULL);
        uv_close((uv_handle_t *)&d->sig_int, NULL);
        uv_close((uv_handle_t *)&d->sig_hup, NULL);
    } else {
        sdnotify_send("READY=1\nSTATUS=listening");
        wd = sdnotify_watchdog_ms();
        if (wd) {
            uv_timer_init(&d->loop, &d->watchdog);
            d->watchdog.data = d;
            d->watchdog_on = true;
            uv_timer_start(&d->watchdog, on_watchdog, wd / 2, wd / 2);
        }
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    broker_free(d->broker);
    rc = uv_loop_close(&d->loop);
    if (rc < 0) {
        log_error("bug: handles still open at exit (%s)", uv_strerror(rc));
        return 1;
    }
    if (d->exit_code == 0)
        log_info("stopped");
    return d->exit_code;
}

int main(int argc, char **argv)
{
    struct daemon d;
    char errors[ERRBUF] = "";
    bool check_only = false, print_only = false;
    int problems, rc;

    memset(&d, 0, sizeof(d));
    d.argc = argc;
    d.argv = argv;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf("volt-broker %s\n", VOLT_VERSION);
            return 0;
        }
        if (!strcmp(argv[i], "--print-man-settings")) {
            config_print_man(stdout);
            return 0;
        }
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "volt-broker: %s needs a file name\n", argv[i]);
                return CONFIG_EXIT_STATUS;
            }
            d.config_path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            d.config_path = argv[i] + 9;
        }
    }
    /* No core dumps and no ptrace by other processes of our user: the
     * daemon password lives in this process's memory. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* Large buffers (a client's 16 MiB frame, a queue behind a slow
     * reader) must go back to the system when freed, or the memory budget
     * bounds what is held but not what the process keeps: glibc raises its
     * mmap threshold after each large free (up to 32 MiB), after which such
     * buffers come from the heap and stay. A fixed threshold keeps them
     * mmap'd (docs/SECURITY.md has the figures). 64 KiB rather than
     * glibc's 128 KiB start: the pending tables' chunks and indexes are
     * 64 KiB and up, and an index left behind when it doubles is otherwise
     * a resident hole in the heap (per pending request 187-224 B over
     * repeated runs with 256 KiB, 175-192 B with 64 KiB; no more mmap
     * calls than before at 16 KiB, K=100: 5 in 10000 requests). */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    if (!d.config_path)
        d.config_path = getenv("VOLT_CONFIG");
    problems = load_config(&d, &d.cfg, errors, sizeof(errors), &check_only, &print_only);
    if (problems) {
        fprintf(stderr, "volt-broker: %d problem%s in the configuration:\n%s", problems,
                problems == 1 ? "" : "s", errors);
        config_free(&d.cfg);
        return CONFIG_EXIT_STATUS;
    }
    char warnings[ERRBUF] = "";
    if (config_warnings(&d.cfg, d.config_path, warnings, sizeof(warnings)) > 0) {
        for (char *save = NULL, *line = strtok_r(warnings, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            log_warn("%s", line);
    }
    if (check_only) {
        printf("configuration OK\n");
        config_free(&d.cfg);
        return 0;
    }
    if (print_only) {
        config_print(&d.cfg, stdout);
        config_free(&d.cfg);
        return 0;
    }
    rc = run(&d);
    config_free(&d.cfg);
    return rc;
}
