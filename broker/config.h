/* Broker configuration: a JSON file whose keys mirror the TypeScript
 * client's options, plus the broker's own under "broker"; then VOLT_*
 * environment variables; then command-line flags (each overrides the one
 * before). Secrets are never accepted on the command line.
 *
 * One table (config.c) describes every setting once: its JSON path, its
 * environment variable, its flag, its type and default. Loading, --help,
 * --check-config and the unknown-key suggestions all read that table.
 */
#ifndef BROKER_CONFIG_H
#define BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CONFIG_MAX_IDS 32

struct broker_config {
    /* Upstream: the TypeScript options. */
    char *server_url;
    char *control_socket_url;
    char *team_cluster_id;
    char *daemon_password; /* secret */
    char *daemon_password_file;
    char *enrollment_token; /* secret */
    char *hostname;
    uint32_t heartbeat_interval_ms;
    uint32_t command_timeout_ms;
    uint32_t max_command_timeout_ms;
    char *engineio_path;
    bool reconnection;
    uint32_t reconnection_attempts; /* 0 = forever */
    uint32_t reconnection_delay_ms;
    uint32_t reconnection_delay_max_ms;
    double randomization_factor;
    uint32_t connect_timeout_ms;
    char *ca_file;
    bool tls_insecure;

    /* The broker's own. */
    char *listen_path;
    uint32_t listen_mode;
    char *listen_group;
    uid_t allowed_uids[CONFIG_MAX_IDS];
    size_t n_allowed_uids;
    gid_t allowed_gids[CONFIG_MAX_IDS];
    size_t n_allowed_gids;
    char *state_dir;
    char *log_level;
    uint32_t drain_timeout_ms;
    uint32_t max_clients;
    uint32_t max_handlers_per_client;
    uint32_t max_subscriptions_per_client;
    uint32_t max_in_flight_per_client;
    uint32_t max_pending;
    uint32_t max_queue_bytes;
    uint32_t max_frame;
};

/* Fills the defaults (paths depend on whether we run as root). */
int config_init(struct broker_config *cfg);
void config_free(struct broker_config *cfg);

/* Each step appends one line per problem to `errors` (NUL-terminated,
 * truncated at `errlen`) and returns the number of problems (0 = fine). */
int config_load_file(struct broker_config *cfg, const char *path, char *errors, size_t errlen);
int config_load_env(struct broker_config *cfg, char *errors, size_t errlen);
/* A flag "--name=value" or "--name value"; *consumed is set to how many argv
 * entries were used (1 or 2). Returns 0, 1 if argv[0] is not a config flag,
 * or -1 with a message in errors. */
int config_apply_flag(struct broker_config *cfg, int argc, char **argv, int *consumed, char *errors,
                      size_t errlen);
/* Cross-field checks after everything is loaded (and reads
 * daemonPasswordFile). Returns the number of problems. */
int config_validate(struct broker_config *cfg, char *errors, size_t errlen);

/* The settings table for --help: one line per flag / env / key. */
void config_print_help(FILE *out);
/* The effective configuration as JSON with secrets shown as "(set)". */
void config_print(const struct broker_config *cfg, FILE *out);

/* Default listen path (proto_default_socket_path()). Caller frees. */
char *config_default_listen_path(void);

#endif
