#include "config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/paths.h"
#include "upstream/url.h"
#include "util/log.h"
#include "util/secret.h"

enum setting_type {
    T_STR,
    T_SECRET, /* a string never taken from argv and never printed */
    T_U32,
    T_BOOL,
    T_RATIO, /* double in [0, 1] */
    T_MODE,  /* octal file mode, as a string "0660" or a number */
    T_UIDS,
    T_GIDS,
    T_LOGLEVEL,
};

struct setting {
    const char *key;  /* JSON path, dotted */
    const char *env;  /* VOLT_* or NULL */
    const char *flag; /* without the leading "--", or NULL */
    enum setting_type type;
    size_t offset;
    const char *help;
};

#define OFF(field) offsetof(struct broker_config, field)

static const struct setting settings[] = {
    {"serverUrl", "VOLT_SERVER_URL", "server-url", T_STR, OFF(server_url),
     "base URL of the VOLT server (enrollment)"},
    {"controlSocketUrl", "VOLT_CONTROL_SOCKET_URL", "control-socket-url", T_STR,
     OFF(control_socket_url), "socket.io URL with the namespace, e.g. wss://host/control"},
    {"credentials.teamClusterId", "VOLT_TEAM_CLUSTER_ID", "team-cluster-id", T_STR,
     OFF(team_cluster_id), "team cluster id"},
    {"credentials.daemonPassword", "VOLT_DAEMON_PASSWORD", NULL, T_SECRET, OFF(daemon_password),
     "daemon password (file or environment only)"},
    {"credentials.daemonPasswordFile", "VOLT_DAEMON_PASSWORD_FILE", "daemon-password-file", T_STR,
     OFF(daemon_password_file), "file holding the daemon password"},
    {"credentials.enrollmentToken", "VOLT_ENROLLMENT_TOKEN", NULL, T_SECRET, OFF(enrollment_token),
     "one-time enrollment token (file or environment only)"},
    {"hostname", "VOLT_HOSTNAME", "hostname", T_STR, OFF(hostname),
     "host name announced to the server (default: gethostname)"},
    {"heartbeat.interval", "VOLT_HEARTBEAT_INTERVAL", "heartbeat-interval", T_U32,
     OFF(heartbeat_interval_ms), "heartbeat interval, ms"},
    {"commandTimeout", "VOLT_COMMAND_TIMEOUT", "command-timeout", T_U32, OFF(command_timeout_ms),
     "default command timeout, ms"},
    {"broker.limits.maxCommandTimeout", NULL, "max-command-timeout", T_U32,
     OFF(max_command_timeout_ms), "largest timeout a request may ask for, ms (more is lowered)"},
    {"socket.path", "VOLT_SOCKET_PATH", "socket-path", T_STR, OFF(engineio_path),
     "Engine.IO path on the server"},
    {"socket.reconnection", NULL, "reconnection", T_BOOL, OFF(reconnection),
     "reconnect after losing the session"},
    {"socket.reconnectionAttempts", NULL, "reconnection-attempts", T_U32,
     OFF(reconnection_attempts), "attempts before giving up (0 = forever)"},
    {"socket.reconnectionDelay", NULL, "reconnection-delay", T_U32, OFF(reconnection_delay_ms),
     "first reconnect delay, ms"},
    {"socket.reconnectionDelayMax", NULL, "reconnection-delay-max", T_U32,
     OFF(reconnection_delay_max_ms), "largest reconnect delay, ms"},
    {"socket.randomizationFactor", NULL, "randomization-factor", T_RATIO, OFF(randomization_factor),
     "reconnect delay jitter, 0..1"},
    {"socket.timeout", NULL, "connect-timeout", T_U32, OFF(connect_timeout_ms),
     "connection attempt timeout, ms"},
    {"socket.caFile", "VOLT_CA_FILE", "ca-file", T_STR, OFF(ca_file),
     "CA certificates (PEM) to verify the server with"},
    {"socket.insecure", NULL, "insecure", T_BOOL, OFF(tls_insecure),
     "DEVELOPMENT ONLY: do not verify the server's certificate"},
    {"broker.listen", "VOLT_LISTEN", "listen", T_STR, OFF(listen_path), "local socket path"},
    {"broker.mode", NULL, "mode", T_MODE, OFF(listen_mode), "local socket file mode (octal)"},
    {"broker.group", NULL, "group", T_STR, OFF(listen_group), "local socket group"},
    {"broker.allowedUids", NULL, "allowed-uids", T_UIDS, OFF(allowed_uids),
     "uids allowed to connect (empty: anyone the file mode lets in)"},
    {"broker.allowedGids", NULL, "allowed-gids", T_GIDS, OFF(allowed_gids),
     "gids allowed to connect"},
    {"broker.stateDir", "VOLT_STATE_DIR", "state-dir", T_STR, OFF(state_dir),
     "where enrolled credentials are kept"},
    {"broker.logLevel", "VOLT_LOG_LEVEL", "log-level", T_LOGLEVEL, OFF(log_level),
     "error, warn, info or debug"},
    {"broker.drainTimeout", NULL, "drain-timeout", T_U32, OFF(drain_timeout_ms),
     "on stop, how long to wait for in-flight handlers, ms"},
    {"broker.limits.maxClients", NULL, "max-clients", T_U32, OFF(max_clients),
     "local clients at once"},
    {"broker.limits.maxHandlersPerClient", NULL, "max-handlers-per-client", T_U32,
     OFF(max_handlers_per_client), "commands one client may register"},
    {"broker.limits.maxSubscriptionsPerClient", NULL, "max-subscriptions-per-client", T_U32,
     OFF(max_subscriptions_per_client), "subscriptions of one client"},
    {"broker.limits.maxInFlightPerClient", NULL, "max-in-flight-per-client", T_U32,
     OFF(max_in_flight_per_client), "requests one client may have waiting"},
    {"broker.limits.maxPending", NULL, "max-pending", T_U32, OFF(max_pending),
     "requests waiting upstream, all clients together"},
    {"broker.limits.maxQueueBytes", NULL, "max-queue-bytes", T_U32, OFF(max_queue_bytes),
     "bytes queued for one client (more: it is closed as slow) or for the server"},
    {"broker.limits.maxFrame", NULL, "max-frame", T_U32, OFF(max_frame),
     "largest local frame, bytes"},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static void add_error(char *errors, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(char *errors, size_t errlen, const char *fmt, ...)
{
    size_t used = strnlen(errors, errlen);
    va_list ap;

    if (used + 1 >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(errors + used, errlen - used, fmt, ap);
    va_end(ap);
    used = strnlen(errors, errlen);
    if (used + 1 < errlen) {
        errors[used] = '\n';
        errors[used + 1] = '\0';
    }
}

char *config_default_listen_path(void)
{
    char buf[PATH_MAX];

    if (proto_default_socket_path(buf, sizeof(buf)) < 0)
        return NULL;
    return strdup(buf);
}

static char *default_state_dir(void)
{
    char buf[PATH_MAX];
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");

    if (geteuid() == 0)
        return strdup("/var/lib/volt-broker");
    if (xdg && xdg[0] == '/')
        snprintf(buf, sizeof(buf), "%s/volt-broker", xdg);
    else if (home && home[0] == '/')
        snprintf(buf, sizeof(buf), "%s/.local/state/volt-broker", home);
    else
        snprintf(buf, sizeof(buf), "/tmp/volt-%u/state", (unsigned)geteuid());
    return strdup(buf);
}

int config_init(struct broker_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->heartbeat_interval_ms = 30000;
    cfg->command_timeout_ms = 30000;
    cfg->max_command_timeout_ms = 600000;
    cfg->engineio_path = strdup("/socket.io/");
    cfg->reconnection = true;
    cfg->reconnection_delay_ms = 1000;
    cfg->reconnection_delay_max_ms = 5000;
    cfg->randomization_factor = 0.5;
    cfg->connect_timeout_ms = 20000;
    cfg->listen_path = config_default_listen_path();
    cfg->listen_mode = 0660;
    cfg->state_dir = default_state_dir();
    cfg->log_level = strdup("info");
    cfg->drain_timeout_ms = 5000;
    cfg->max_clients = 1024;
    cfg->max_handlers_per_client = 1024;
    cfg->max_subscriptions_per_client = 256;
    cfg->max_in_flight_per_client = 100000;
    cfg->max_pending = 200000;
    cfg->max_queue_bytes = 64u << 20;
    cfg->max_frame = 16u << 20;
    if (!cfg->engineio_path || !cfg->listen_path || !cfg->state_dir || !cfg->log_level)
        return -ENOMEM;
    return 0;
}

void config_free(struct broker_config *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &settings[i];
        if (st->type == T_STR || st->type == T_SECRET || st->type == T_LOGLEVEL) {
            char **p = (char **)((char *)cfg + st->offset);
            secret_free(*p);
            *p = NULL;
        }
    }
}

/* Parses `text` for setting `st` into cfg. 0, or -1 with an error added. */
static int set_from_text(struct broker_config *cfg, const struct setting *st, const char *text,
                         const char *source, char *errors, size_t errlen)
{
    void *field = (char *)cfg + st->offset;
    char *end;

    switch (st->type) {
    case T_STR:
    case T_SECRET:
    case T_LOGLEVEL: {
        if (st->type == T_LOGLEVEL) {
            enum log_level lv;
            if (log_level_parse(text, &lv) < 0) {
                add_error(errors, errlen, "%s: %s: '%s' is not one of error, warn, info, debug",
                          source, st->key, text);
                return -1;
            }
        }
        char *copy = strdup(text);
        if (!copy) {
            add_error(errors, errlen, "%s: %s: out of memory", source, st->key);
            return -1;
        }
        secret_free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case T_U32: {
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (!isdigit((unsigned char)text[0]) || *end || errno || v > UINT32_MAX) {
            add_error(errors, errlen, "%s: %s: '%s' is not a whole number (0..%u)", source, st->key,
                      text, UINT32_MAX);
            return -1;
        }
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes")) {
            *(bool *)field = true;
        } else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no")) {
            *(bool *)field = false;
        } else {
            add_error(errors, errlen, "%s: %s: '%s' is not true or false", source, st->key, text);
            return -1;
        }
        return 0;
    case T_RATIO: {
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || *end || errno || !(v >= 0.0 && v <= 1.0)) {
            add_error(errors, errlen, "%s: %s: '%s' is not a number between 0 and 1", source,
                      st->key, text);
            return -1;
        }
        *(double *)field = v;
        return 0;
    }
    case T_MODE: {
        errno = 0;
        unsigned long v = strtoul(text, &end, 8);
        if (end == text || *end || errno || v > 0777) {
            add_error(errors, errlen, "%s: %s: '%s' is not an octal file mode such as 0660", source,
                      st->key, text);
            return -1;
        }
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    }
    case T_UIDS:
    case T_GIDS: {
        /* Comma-separated list of numbers. */
        size_t n = 0;
        const char *p = text;
        while (*p) {
            errno = 0;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p || errno || v > UINT32_MAX - 1 || (*end && *end != ',') ||
                n >= CONFIG_MAX_IDS) {
                add_error(errors, errlen,
                          "%s: %s: '%s' is not a comma-separated list of at most %d ids", source,
                          st->key, text, CONFIG_MAX_IDS);
                return -1;
            }
            if (st->type == T_UIDS)
                cfg->allowed_uids[n++] = (uid_t)v;
            else
                cfg->allowed_gids[n++] = (gid_t)v;
            p = *end ? end + 1 : end;
        }
        if (st->type == T_UIDS)
            cfg->n_allowed_uids = n;
        else
            cfg->n_allowed_gids = n;
        return 0;
    }
    }
    return -1;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[64];

    if (lb >= 63 || la >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost =
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

/* Is `path` a setting or a prefix of one (an object in the JSON)? */
static const struct setting *find_setting(const char *path, bool *is_object)
{
    size_t len = strlen(path);
    *is_object = false;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (!strcmp(settings[i].key, path))
            return &settings[i];
        if (!strncmp(settings[i].key, path, len) && settings[i].key[len] == '.')
            *is_object = true;
    }
    return NULL;
}

/* The known key or object name closest to `path` (at most 3 edits away),
 * written into buf; NULL if none is close. Objects count too: a
 * misspelled "credentials" must suggest "credentials", not nothing. */
static const char *suggest_key(const char *path, char *buf, size_t len)
{
    size_t best_d = 4;
    bool found = false;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *key = settings[i].key;
        /* Each prefix ending at a '.' names an object; the whole key a setting. */
        for (const char *end = strchr(key, '.');; end = strchr(end + 1, '.')) {
            size_t n = end ? (size_t)(end - key) : strlen(key);
            char candidate[128];
            if (n < sizeof(candidate)) {
                memcpy(candidate, key, n);
                candidate[n] = '\0';
                size_t d = edit_distance(path, candidate);
                if (d < best_d) {
                    best_d = d;
                    snprintf(buf, len, "%s", candidate);
                    found = true;
                }
            }
            if (!end)
                break;
        }
    }
    return found ? buf : NULL;
}

static int json_value_text(const cJSON *item, const struct setting *st, char *buf, size_t len)
{
    if (cJSON_IsString(item)) {
        snprintf(buf, len, "%s", item->valuestring);
        return 0;
    }
    if (cJSON_IsBool(item) && st->type == T_BOOL) {
        snprintf(buf, len, "%s", cJSON_IsTrue(item) ? "true" : "false");
        return 0;
    }
    if (cJSON_IsNumber(item) && st->type != T_STR && st->type != T_SECRET) {
        if (st->type == T_MODE)
            snprintf(buf, len, "%o", (unsigned)item->valuedouble);
        else if (st->type == T_RATIO)
            snprintf(buf, len, "%.17g", item->valuedouble);
        else if (item->valuedouble >= 0 && item->valuedouble == (double)(uint64_t)item->valuedouble)
            snprintf(buf, len, "%llu", (unsigned long long)item->valuedouble);
        else
            return -1;
        return 0;
    }
    if (cJSON_IsArray(item) && (st->type == T_UIDS || st->type == T_GIDS)) {
        size_t used = 0;
        const cJSON *el;
        buf[0] = '\0';
        cJSON_ArrayForEach(el, item)
        {
            if (!cJSON_IsNumber(el) || el->valuedouble < 0 ||
                el->valuedouble != (double)(uint32_t)el->valuedouble)
                return -1;
            used += (size_t)snprintf(buf + used, len > used ? len - used : 0, "%s%u",
                                     used ? "," : "", (unsigned)el->valuedouble);
        }
        return used < len ? 0 : -1;
    }
    return -1;
}

static int load_object(struct broker_config *cfg, const cJSON *obj, const char *prefix,
                       const char *file, char *errors, size_t errlen)
{
    int problems = 0;
    const cJSON *item;

    cJSON_ArrayForEach(item, obj)
    {
        char path[256];
        char text[1024];
        bool is_object;

        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", item->string);
        const struct setting *st = find_setting(path, &is_object);
        if (!st && is_object) {
            if (!cJSON_IsObject(item)) {
                add_error(errors, errlen, "%s: %s: must be an object", file, path);
                problems++;
                continue;
            }
            problems += load_object(cfg, item, path, file, errors, errlen);
            continue;
        }
        if (!st) {
            char hint_buf[128];
            const char *hint = suggest_key(path, hint_buf, sizeof(hint_buf));
            if (hint)
                add_error(errors, errlen, "%s: unknown key '%s' (did you mean '%s'?)", file, path,
                          hint);
            else
                add_error(errors, errlen, "%s: unknown key '%s'", file, path);
            problems++;
            continue;
        }
        if (cJSON_IsNull(item) && (st->type == T_STR || st->type == T_SECRET)) {
            /* null: not set (as in the TypeScript options) */
            char **field = (char **)((char *)cfg + st->offset);
            secret_free(*field);
            *field = NULL;
            continue;
        }
        if (json_value_text(item, st, text, sizeof(text)) < 0) {
            add_error(errors, errlen, "%s: %s: wrong type of value", file, path);
            problems++;
            continue;
        }
        if (set_from_text(cfg, st, text, file, errors, errlen) < 0)
            problems++;
        /* Do not leave a copy of a secret on the stack. */
        memset(text, 0, sizeof(text));
    }
    return problems;
}

static char *read_small_file(const char *path, size_t max, int *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    size_t len = 0;

    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    buf = malloc(max + 1);
    if (!buf) {
        *err = ENOMEM;
        close(fd);
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, max - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == max) {
            *err = EFBIG;
            free(buf);
            close(fd);
            return NULL;
        }
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

int config_load_file(struct broker_config *cfg, const char *path, char *errors, size_t errlen)
{
    int err = 0;
    char *text = read_small_file(path, 1 << 20, &err);
    cJSON *root;
    int problems;

    if (!text) {
        add_error(errors, errlen, "%s: cannot read: %s", path, strerror(err));
        return 1;
    }
    root = cJSON_ParseWithOpts(text, NULL, 1);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text ? (size_t)(at - text) : 0;
        size_t line = 1;
        for (size_t i = 0; i < off; i++)
            line += text[i] == '\n';
        add_error(errors, errlen, "%s:%zu: not valid JSON", path, line);
        secret_free(text);
        return 1;
    }
    secret_free(text);
    if (!cJSON_IsObject(root)) {
        add_error(errors, errlen, "%s: the configuration must be a JSON object", path);
        cJSON_Delete(root);
        return 1;
    }
    problems = load_object(cfg, root, "", path, errors, errlen);
    cJSON_Delete(root);
    return problems;
}

int config_load_env(struct broker_config *cfg, char *errors, size_t errlen)
{
    int problems = 0;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v;
        if (!settings[i].env || !(v = getenv(settings[i].env)))
            continue;
        if (set_from_text(cfg, &settings[i], v, settings[i].env, errors, errlen) < 0)
            problems++;
    }
    return problems;
}

int config_apply_flag(struct broker_config *cfg, int argc, char **argv, int *consumed, char *errors,
                      size_t errlen)
{
    const char *arg = argv[0];
    const char *eq;
    size_t name_len;

    *consumed = 0;
    if (strncmp(arg, "--", 2) != 0)
        return 1;
    arg += 2;
    eq = strchr(arg, '=');
    name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &settings[i];
        const char *value;
        if (!st->flag || strlen(st->flag) != name_len || strncmp(st->flag, arg, name_len))
            continue;
        if (eq) {
            value = eq + 1;
            *consumed = 1;
        } else if (st->type == T_BOOL) {
            /* "--insecure" alone is true; "--insecure false" works too. */
            static const char *const words[] = {"true", "false", "yes", "no", "1", "0"};
            value = "true";
            *consumed = 1;
            for (size_t w = 0; argc > 1 && w < sizeof(words) / sizeof(words[0]); w++) {
                if (!strcmp(argv[1], words[w])) {
                    value = argv[1];
                    *consumed = 2;
                }
            }
        } else if (argc > 1) {
            value = argv[1];
            *consumed = 2;
        } else {
            add_error(errors, errlen, "--%s needs a value", st->flag);
            return -1;
        }
        return set_from_text(cfg, st, value, "command line", errors, errlen) < 0 ? -1 : 0;
    }
    /* A secret's name on the command line is refused explicitly, so nobody
     * thinks it was silently ignored. */
    if ((name_len == 15 && !strncmp(arg, "daemon-password", 15)) ||
        (name_len == 16 && !strncmp(arg, "enrollment-token", 16))) {
        /* "--daemon-password VALUE": swallow VALUE too, or it would be
         * reported (and so printed) as an unknown option. */
        *consumed = !eq && argc > 1 ? 2 : 1;
        add_error(errors, errlen,
                  "--%.*s: secrets are not accepted on the command line (visible to every user "
                  "in the process list); use the config file, a password file or the environment",
                  (int)name_len, arg);
        return -1;
    }
    return 1;
}

static int read_password_file(struct broker_config *cfg, char *errors, size_t errlen)
{
    int err = 0;
    char *text = read_small_file(cfg->daemon_password_file, 4096, &err);
    size_t len;

    if (!text) {
        add_error(errors, errlen, "credentials.daemonPasswordFile: cannot read %s: %s",
                  cfg->daemon_password_file, strerror(err));
        return 1;
    }
    len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    if (!len) {
        add_error(errors, errlen, "credentials.daemonPasswordFile: %s is empty",
                  cfg->daemon_password_file);
        secret_free(text);
        return 1;
    }
    secret_free(cfg->daemon_password);
    cfg->daemon_password = text;
    return 0;
}

static bool url_has_scheme(const char *url, const char *const *schemes)
{
    for (; *schemes; schemes++) {
        if (!strncmp(url, *schemes, strlen(*schemes)))
            return true;
    }
    return false;
}

int config_validate(struct broker_config *cfg, char *errors, size_t errlen)
{
    static const char *const http_schemes[] = {"http://", "https://", NULL};
    static const char *const ws_schemes[] = {"ws://", "wss://", "http://", "https://", NULL};
    int problems = 0;

    if (cfg->daemon_password_file)
        problems += read_password_file(cfg, errors, errlen);
    if (cfg->server_url && !url_has_scheme(cfg->server_url, http_schemes)) {
        add_error(errors, errlen, "serverUrl: '%s' must start with http:// or https://",
                  cfg->server_url);
        problems++;
    }
    if (cfg->control_socket_url && !url_has_scheme(cfg->control_socket_url, ws_schemes)) {
        add_error(errors, errlen,
                  "controlSocketUrl: '%s' must start with ws://, wss://, http:// or https://",
                  cfg->control_socket_url);
        problems++;
    }
    if (cfg->control_socket_url && url_has_scheme(cfg->control_socket_url, ws_schemes)) {
        struct url_parts parts;
        const char *why = NULL;
        if (url_parse(cfg->control_socket_url, &parts, &why) < 0) {
            add_error(errors, errlen, "controlSocketUrl: %s", why);
            problems++;
        }
    }
    if (cfg->ca_file && access(cfg->ca_file, R_OK) < 0) {
        add_error(errors, errlen, "socket.caFile: cannot read %s: %s", cfg->ca_file,
                  strerror(errno));
        problems++;
    }
    if (cfg->control_socket_url && !cfg->team_cluster_id) {
        add_error(errors, errlen, "credentials.teamClusterId: required with controlSocketUrl");
        problems++;
    }
    if (cfg->enrollment_token && !cfg->server_url) {
        add_error(errors, errlen, "serverUrl: required to enroll with an enrollmentToken");
        problems++;
    }
    if (cfg->reconnection_delay_ms == 0 ||
        cfg->reconnection_delay_max_ms < cfg->reconnection_delay_ms) {
        add_error(errors, errlen,
                  "socket.reconnectionDelayMax: must be >= socket.reconnectionDelay (> 0)");
        problems++;
    }
    if (cfg->command_timeout_ms == 0) {
        add_error(errors, errlen, "commandTimeout: must be > 0");
        problems++;
    }
    if (cfg->max_command_timeout_ms < cfg->command_timeout_ms) {
        add_error(errors, errlen, "broker.limits.maxCommandTimeout: must be >= commandTimeout");
        problems++;
    }
    if (cfg->heartbeat_interval_ms == 0) {
        add_error(errors, errlen, "heartbeat.interval: must be > 0");
        problems++;
    }
    if (cfg->max_frame < 1024 || cfg->max_frame > (256u << 20)) {
        add_error(errors, errlen, "broker.limits.maxFrame: must be between 1024 and 268435456");
        problems++;
    }
    if (cfg->max_queue_bytes < cfg->max_frame) {
        add_error(errors, errlen, "broker.limits.maxQueueBytes: must be >= broker.limits.maxFrame");
        problems++;
    }
    if (!cfg->listen_path || cfg->listen_path[0] != '/') {
        add_error(errors, errlen, "broker.listen: must be an absolute path");
        problems++;
    } else if (strlen(cfg->listen_path) >= 108) {
        add_error(errors, errlen, "broker.listen: longer than a Unix socket path may be (107)");
        problems++;
    }
    if (cfg->listen_group && !getgrnam(cfg->listen_group)) {
        add_error(errors, errlen, "broker.group: no group named '%s'", cfg->listen_group);
        problems++;
    }
    return problems;
}

static const char *type_hint(enum setting_type t)
{
    switch (t) {
    case T_STR:
        return "TEXT";
    case T_SECRET:
        return "SECRET";
    case T_U32:
        return "N";
    case T_BOOL:
        return "BOOL";
    case T_RATIO:
        return "0..1";
    case T_MODE:
        return "MODE";
    case T_UIDS:
    case T_GIDS:
        return "ID,...";
    case T_LOGLEVEL:
        return "LEVEL";
    }
    return "";
}

void config_print_help(FILE *out)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &settings[i];
        char flag[64];
        if (st->flag)
            snprintf(flag, sizeof(flag), "--%s %s", st->flag, type_hint(st->type));
        else
            snprintf(flag, sizeof(flag), "(no flag)");
        fprintf(out, "  %-38s %s\n  %38s key %s%s%s\n", flag, st->help, "", st->key,
                st->env ? ", env " : "", st->env ? st->env : "");
    }
}

void config_print(const struct broker_config *cfg, FILE *out)
{
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; i < N_SETTINGS && root; i++) {
        const struct setting *st = &settings[i];
        const void *field = (const char *)cfg + st->offset;
        cJSON *v = NULL;
        switch (st->type) {
        case T_STR:
        case T_LOGLEVEL:
            v = *(char *const *)field ? cJSON_CreateString(*(char *const *)field)
                                      : cJSON_CreateNull();
            break;
        case T_SECRET:
            v = *(char *const *)field ? cJSON_CreateString("(set)") : cJSON_CreateNull();
            break;
        case T_U32:
            v = cJSON_CreateNumber(*(const uint32_t *)field);
            break;
        case T_BOOL:
            v = cJSON_CreateBool(*(const bool *)field);
            break;
        case T_RATIO:
            v = cJSON_CreateNumber(*(const double *)field);
            break;
        case T_MODE: {
            char m[8];
            snprintf(m, sizeof(m), "0%03o", (unsigned)*(const uint32_t *)field);
            v = cJSON_CreateString(m);
            break;
        }
        case T_UIDS:
        case T_GIDS: {
            v = cJSON_CreateArray();
            size_t n = st->type == T_UIDS ? cfg->n_allowed_uids : cfg->n_allowed_gids;
            for (size_t k = 0; k < n && v; k++)
                cJSON_AddItemToArray(v, cJSON_CreateNumber(st->type == T_UIDS
                                                               ? (double)cfg->allowed_uids[k]
                                                               : (double)cfg->allowed_gids[k]));
            break;
        }
        }
        if (v)
            cJSON_AddItemToObject(root, st->key, v);
    }
    char *text = root ? cJSON_Print(root) : NULL;
    if (text)
        fprintf(out, "%s\n", text);
    free(text);
    cJSON_Delete(root);
}
