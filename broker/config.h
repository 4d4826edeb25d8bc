/* Broker configuration: a JSON file whose keys mirror the TypeScript
 * client's options, plus the broker's own under "broker"; then VOLT_*
 * environment variables; then command-line flags (each overrides the one
 * before). Secrets are never accepted on the command line.
 *
 * One table (config.c) describes every setting once: its JSON path, its
 * environment variable, its flag, its type, its default, whether SIGHUP
 * applies it, and its help line. config_init(), loading, --help,
 * --print-config, reload and the man page's settings section all read
 * that table, so a new setting is one row (plus the code that uses it).
 *
 * Only the daemon (main.c, broker.c) includes this header: the modules
 * below it take narrow parameter structs of their own (router_params,
 * session_params, peer_limits), filled from here in broker.c.
 */
#ifndef BROKER_CONFIG_H
#define BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CONFIG_MAX_IDS 32

/* Exit status for a configuration the broker cannot run with (sysexits'
 * EX_CONFIG): systemd's RestartPreventExitStatus= keeps it from looping. */
#define CONFIG_EXIT_STATUS 78

struct config_ids {
    uint32_t ids[CONFIG_MAX_IDS];
    size_t n;
};

struct broker_config {
    /* Upstream: the TypeScript options. */
    char *server_url;
    char *control_socket_url;
    char *team_cluster_id;
    char *daemon_password; /* secret */
    char *daemon_password_file;
    char *enrollment_token; /* secret */
    char *enrollment_token_file;
    char *hostname;
    uint32_t heartbeat_interval_ms;
    uint32_t heartbeat_timeout_ms; /* 0: min(commandTimeout, heartbeat.interval) */
    uint32_t command_timeout_ms;
    char *engineio_path;
    bool reconnection;
    uint32_t reconnection_attempts; /* 0 = forever */
    uint32_t reconnection_delay_ms;
    uint32_t reconnection_delay_max_ms;
    double randomization_factor;
    uint32_t connect_timeout_ms;
    uint32_t registration_timeout_ms; /* 0: commandTimeout */
    char *ca_file;
    bool tls_insecure;

    /* The broker's own. */
    char *listen_path;
    uint32_t listen_mode;
    char *listen_group;
    struct config_ids allowed_uids;
    struct config_ids allowed_gids;
    struct config_ids password_readers; /* uids besides root and the broker's own */
    char *state_dir;
    char *log_level;
    char *log_format;
    uint32_t drain_timeout_ms;
    uint32_t handler_timeout_ms; /* 0: commandTimeout */
    uint32_t announce_delay_ms;
    char *metrics_textfile;
    uint32_t metrics_interval_ms;

    /* broker.limits */
    uint32_t max_clients;
    uint32_t reserved_clients;
    uint32_t max_clients_per_uid;
    uint32_t hello_timeout_ms;
    uint32_t max_handlers_per_client;
    uint32_t max_subscriptions_per_client;
    uint32_t max_in_flight_per_client;
    uint32_t max_in_flight_per_uid;
    uint32_t max_pending;
    uint32_t max_command_timeout_ms;
    uint32_t max_queue_bytes;
    uint32_t max_bytes_per_uid;
    uint32_t memory_budget;
    uint32_t max_frame;
    uint32_t frame_timeout_ms;
    uint32_t max_upstream_queue_bytes;
    uint32_t max_emit_buffer;

    /* Not settings: what loading noticed. */
    bool file_has_secret; /* the config file itself holds a secret */
};

/* Fills the defaults from the table (paths depend on whether we run as
 * root). 0 or -ENOMEM. */
int config_init(struct broker_config *cfg);
void config_free(struct broker_config *cfg);

/* Each step appends one line per problem to `errors` (NUL-terminated,
 * truncated at `errlen`) and returns the number of problems (0 = fine). */
int config_load_file(struct broker_config *cfg, const char *path, char *errors, size_t errlen);
/* VOLT_* variables. A secret taken from the environment is then wiped from
 * it (and unset), so that it does not linger in /proc/PID/environ. */
int config_load_env(struct broker_config *cfg, char *errors, size_t errlen);
/* A flag "--name=value" or "--name value"; *consumed is set to how many argv
 * entries were used (1 or 2). Returns 0, 1 if argv[0] is not a config flag,
 * or -1 with a message in errors. */
int config_apply_flag(struct broker_config *cfg, int argc, char **argv, int *consumed, char *errors,
                      size_t errlen);
/* Cross-field checks after everything is loaded. Reads the secrets' files:
 * daemonPasswordFile / enrollmentTokenFile, else the systemd credentials
 * `daemon-password` / `enrollment-token` in $CREDENTIALS_DIRECTORY when the
 * secret is not set otherwise. Returns the number of problems. */
int config_validate(struct broker_config *cfg, char *errors, size_t errlen);
/* Warnings that do not stop the broker (a file holding a secret that other
 * users may read), one line each in `warnings`. Returns how many. */
int config_warnings(const struct broker_config *cfg, const char *config_path, char *warnings,
                    size_t len);

/* SIGHUP: copies every setting marked reloadable from `fresh` into `cfg`.
 * `applied` and `needs_restart` get comma-separated keys: those applied
 * (all reloadable ones) and those that changed but are not reloadable.
 * Secrets are neither compared nor named. */
void config_reload(struct broker_config *cfg, const struct broker_config *fresh, char *applied,
                   size_t applied_len, char *needs_restart, size_t needs_restart_len);

/* The settings table for --help: one entry per setting. */
void config_print_help(FILE *out);
/* The effective configuration as a JSON file that --config accepts back,
 * with secrets shown as "(set)" (which --config then refuses, loudly). */
void config_print(const struct broker_config *cfg, FILE *out);
/* The man page's settings section (roff), generated from the table. */
void config_print_man(FILE *out);

/* Default listen path (proto_default_socket_path()). Caller frees. */
char *config_default_listen_path(void);

/* True when uid is in the list. */
bool config_ids_contain(const struct config_ids *ids, uint32_t id);

#endif
