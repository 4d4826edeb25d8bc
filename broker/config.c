#include "config.h"
#include "config_table.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/paths.h"
#include "upstream/url.h"
#include "util/log.h"
#include "util/secret.h"

#define N_SETTINGS         config_n_settings
#define SECRET_PLACEHOLDER "(set)"
#define settings           config_settings

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

static bool is_string_type(enum setting_type t)
{
    return t == T_STR || t == T_SECRET || t == T_LOGLEVEL || t == T_LOGFORMAT;
}

static int set_from_text(struct broker_config *cfg, const struct setting *st, const char *text,
                         const char *source, char *errors, size_t errlen);

int config_init(struct broker_config *cfg)
{
    char errors[256] = "";

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &settings[i];
        /* A default the table cannot parse is a bug in the table: the unit
         * tests load every default, so it never reaches a user. */
        if (st->def && set_from_text(cfg, st, st->def, "default", errors, sizeof(errors)) < 0)
            return -EINVAL;
    }
    cfg->listen_path = config_default_listen_path();
    cfg->state_dir = default_state_dir();
    if (!cfg->engineio_path || !cfg->listen_path || !cfg->state_dir || !cfg->log_level ||
        !cfg->log_format)
        return -ENOMEM;
    return 0;
}

void config_free(struct broker_config *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &settings[i];
        if (is_string_type(st->type)) {
            char **p = (char **)((char *)cfg + st->offset);
            secret_free(*p);
            *p = NULL;
        }
    }
}

bool config_ids_contain(const struct config_ids *ids, uint32_t id)
{
    for (size_t i = 0; i < ids->n; i++) {
        if (ids->ids[i] == id)
            return true;
    }
    return false;
}

/* One id of a list: a number, or a user/group name. 0 or -1. */
static int parse_id(const char *text, size_t len, enum setting_type t, uint32_t *out)
{
    char name[256];
    char *end;

    if (len == 0 || len >= sizeof(name))
        return -1;
    memcpy(name, text, len);
    name[len] = '\0';
    if (isdigit((unsigned char)name[0])) {
        errno = 0;
        unsigned long v = strtoul(name, &end, 10);
        if (*end || errno || v > UINT32_MAX - 1)
            return -1;
        *out = (uint32_t)v;
        return 0;
    }
    if (t == T_UIDS) {
        struct passwd *pw = getpwnam(name);
        if (!pw)
            return -1;
        *out = (uint32_t)pw->pw_uid;
        return 0;
    }
    struct group *gr = getgrnam(name);
    if (!gr)
        return -1;
    *out = (uint32_t)gr->gr_gid;
    return 0;
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
    case T_LOGFORMAT:
    case T_LOGLEVEL: {
        if (st->type == T_LOGFORMAT && strcmp(text, "text") != 0 && strcmp(text, "json") != 0) {
            add_error(errors, errlen, "%s: %s: '%s' is not text or json", source, st->key, text);
            return -1;
        }
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
        /* Comma-separated ids or names. */
        struct config_ids ids = {.n = 0};
        const char *p = text;
        while (*p) {
            size_t len = strcspn(p, ",");
            if (ids.n >= CONFIG_MAX_IDS || parse_id(p, len, st->type, &ids.ids[ids.n]) < 0) {
                add_error(errors, errlen,
                          "%s: %s: '%s' is not a comma-separated list of at most %d %s ids or "
                          "names (unknown name?)",
                          source, st->key, text, CONFIG_MAX_IDS,
                          st->type == T_UIDS ? "user" : "group");
                return -1;
            }
            ids.n++;
            p += len;
            if (*p == ',')
                p++;
        }
        *(struct config_ids *)field = ids;
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
            if (cJSON_IsString(el) && el->valuestring[0] && !strchr(el->valuestring, ',')) {
                used += (size_t)snprintf(buf + used, len > used ? len - used : 0, "%s%s",
                                         used ? "," : "", el->valuestring);
                continue;
            }
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
        if (st->type == T_SECRET && cJSON_IsString(item) &&
            !strcmp(item->valuestring, SECRET_PLACEHOLDER)) {
            add_error(errors, errlen,
                      "%s: %s: \"%s\" is what --print-config shows for a secret, not its value",
                      file, path, SECRET_PLACEHOLDER);
            problems++;
            continue;
        }
        if (json_value_text(item, st, text, sizeof(text)) < 0) {
            add_error(errors, errlen, "%s: %s: wrong type of value", file, path);
            problems++;
            continue;
        }
        if (set_from_text(cfg, st, text, file, errors, errlen) < 0)
            problems++;
        else if (st->type == T_SECRET)
            cfg->file_has_secret = true;
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
        const struct setting *st = &settings[i];
        char *v;
        if (!st->env || !(v = getenv(st->env)))
            continue;
        if (set_from_text(cfg, st, v, st->env, errors, errlen) < 0)
            problems++;
        if (st->type == T_SECRET) {
            /* Read once, then gone from /proc/PID/environ (which the
             * broker's own user and root may read) and from children. */
            explicit_bzero(v, strlen(v));
            unsetenv(st->env);
        }
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

/* Reads a secret from a file into *value (trailing newlines removed).
 * `what` names the setting in errors. An empty file is an error, unless
 * empty_is_unset (then *value stays as it was). 0, or 1 with an error added. */
static int read_secret_file(const char *path, char **value, const char *what, bool empty_is_unset,
                            char *errors, size_t errlen)
{
    int err = 0;
    char *text = read_small_file(path, 4096, &err);
    size_t len;

    if (!text) {
        add_error(errors, errlen, "%s: cannot read %s: %s", what, path, strerror(err));
        return 1;
    }
    len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    if (!len) {
        secret_free(text);
        if (empty_is_unset)
            return 0;
        add_error(errors, errlen, "%s: %s is empty", what, path);
        return 1;
    }
    secret_free(*value);
    *value = text;
    return 0;
}

/* One secret from one of three places: the value itself, a file named in
 * the configuration, or a systemd credential (LoadCredential=) when the
 * other two are not set (an empty credential counts as not given). Two of them at once is a mistake
 * worth saying. */
static int load_secret(char **value, const char *file, const char *credential,
                       const char *value_key, const char *file_key, char *errors, size_t errlen)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    char path[PATH_MAX];

    if (*value && file) {
        add_error(errors, errlen, "%s and %s are both set: set one of them", value_key, file_key);
        return 1;
    }
    if (file)
        return read_secret_file(file, value, file_key, false, errors, errlen);
    if (*value || !dir || !dir[0])
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, credential);
    if (access(path, F_OK) < 0)
        return 0;
    /* Empty: not given. systemd 252 (Debian 12) fails a start whose
     * LoadCredential= file is missing; the packaged unit pairs it with a
     * SetCredential= of a lone newline, its documented fallback. */
    return read_secret_file(path, value, credential, true, errors, errlen);
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

    problems +=
        load_secret(&cfg->daemon_password, cfg->daemon_password_file, "daemon-password",
                    "credentials.daemonPassword", "credentials.daemonPasswordFile", errors, errlen);
    problems += load_secret(&cfg->enrollment_token, cfg->enrollment_token_file, "enrollment-token",
                            "credentials.enrollmentToken", "credentials.enrollmentTokenFile",
                            errors, errlen);
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
    if (cfg->memory_budget < cfg->max_frame) {
        add_error(errors, errlen, "broker.limits.memoryBudget: must be >= broker.limits.maxFrame");
        problems++;
    }
    if (cfg->max_upstream_queue_bytes < 65536) {
        add_error(errors, errlen, "broker.limits.maxUpstreamQueueBytes: must be >= 65536");
        problems++;
    }
    if (cfg->hello_timeout_ms == 0 || cfg->frame_timeout_ms == 0) {
        add_error(errors, errlen, "broker.limits.helloTimeout and frameTimeout: must be > 0");
        problems++;
    }
    if (cfg->metrics_textfile &&
        (strlen(cfg->metrics_textfile) < 6 ||
         strcmp(cfg->metrics_textfile + strlen(cfg->metrics_textfile) - 5, ".prom") != 0 ||
         cfg->metrics_textfile[0] != '/')) {
        add_error(errors, errlen,
                  "broker.metrics.textfile: must be an absolute path ending in .prom");
        problems++;
    }
    if (cfg->metrics_interval_ms < 1000) {
        add_error(errors, errlen, "broker.metrics.interval: must be >= 1000");
        problems++;
    }
    return problems;
}

/* A file that holds a secret and that users other than its owner may read. */
static void warn_if_readable(const char *path, const char *what, char *warnings, size_t len, int *n)
{
    struct stat st;

    if (!path || stat(path, &st) < 0 || !(st.st_mode & 0044))
        return;
    add_error(warnings, len,
              "%s: %s holds a secret and is readable by %s (mode %04o): chmod go-r it", what, path,
              (st.st_mode & 0004) ? "every user" : "its group", (unsigned)(st.st_mode & 07777));
    (*n)++;
}

int config_warnings(const struct broker_config *cfg, const char *config_path, char *warnings,
                    size_t len)
{
    int n = 0;

    if (config_path && cfg->file_has_secret)
        warn_if_readable(config_path, "configuration", warnings, len, &n);
    warn_if_readable(cfg->daemon_password_file, "credentials.daemonPasswordFile", warnings, len,
                     &n);
    warn_if_readable(cfg->enrollment_token_file, "credentials.enrollmentTokenFile", warnings, len,
                     &n);
    return n;
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
        return "USER,...";
    case T_GIDS:
        return "GROUP,...";
    case T_LOGLEVEL:
        return "LEVEL";
    case T_LOGFORMAT:
        return "FORMAT";
    }
    return "";
}

/* The default as people read it: the table's text, or "none". */
static const char *default_text(const struct setting *st)
{
    if (st->def_text)
        return st->def_text;
    return st->def ? st->def : "none";
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
        fprintf(out, "  %-38s %s\n  %38s key %s%s%s; default %s%s\n", flag, st->help, "", st->key,
                st->env ? ", env " : "", st->env ? st->env : "",
                st->def || !st->def_text ? default_text(st) : "computed",
                st->reload ? "; reloaded by SIGHUP" : "");
    }
}

static cJSON *value_json(const struct broker_config *cfg, const struct setting *st)
{
    const void *field = (const char *)cfg + st->offset;

    switch (st->type) {
    case T_STR:
    case T_LOGLEVEL:
    case T_LOGFORMAT:
        return *(char *const *)field ? cJSON_CreateString(*(char *const *)field)
                                     : cJSON_CreateNull();
    case T_SECRET:
        return *(char *const *)field ? cJSON_CreateString(SECRET_PLACEHOLDER) : cJSON_CreateNull();
    case T_U32:
        return cJSON_CreateNumber(*(const uint32_t *)field);
    case T_BOOL:
        return cJSON_CreateBool(*(const bool *)field);
    case T_RATIO:
        return cJSON_CreateNumber(*(const double *)field);
    case T_MODE: {
        char m[8];
        snprintf(m, sizeof(m), "0%03o", (unsigned)*(const uint32_t *)field);
        return cJSON_CreateString(m);
    }
    case T_UIDS:
    case T_GIDS: {
        const struct config_ids *ids = field;
        cJSON *v = cJSON_CreateArray();
        for (size_t k = 0; k < ids->n && v; k++)
            cJSON_AddItemToArray(v, cJSON_CreateNumber((double)ids->ids[k]));
        return v;
    }
    }
    return NULL;
}

/* The object for the dotted key's parent, created on the way. */
static cJSON *parent_object(cJSON *root, const char *key, const char **leaf)
{
    cJSON *obj = root;
    const char *part = key;
    const char *dot;

    while (obj && (dot = strchr(part, '.'))) {
        char name[64];
        size_t n = (size_t)(dot - part);
        if (n >= sizeof(name))
            return NULL;
        memcpy(name, part, n);
        name[n] = '\0';
        cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, name);
        if (!child)
            child = cJSON_AddObjectToObject(obj, name);
        obj = child;
        part = dot + 1;
    }
    *leaf = part;
    return obj;
}

void config_print(const struct broker_config *cfg, FILE *out)
{
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; i < N_SETTINGS && root; i++) {
        const struct setting *st = &settings[i];
        const char *leaf = NULL;
        cJSON *parent = parent_object(root, st->key, &leaf);
        cJSON *v = value_json(cfg, st);
        if (parent && v)
            cJSON_AddItemToObject(parent, leaf, v);
        else
            cJSON_Delete(v);
    }
    char *text = root ? cJSON_Print(root) : NULL;
    if (text)
        fprintf(out, "%s\n", text);
    free(text);
    cJSON_Delete(root);
}

/* Text for roff: '-' as \-, backslashes doubled, no line starting with a
 * control character ('.' or '\''). */
static void roff_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '-')
            fputs("\\-", out);
        else if (*s == '\\')
            fputs("\\e", out);
        else
            fputc(*s, out);
    }
}

void config_print_man(FILE *out)
{
    static const char *const titles[] = {"Upstream settings", "Broker settings", "Limits"};
    int section = -1;

    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &settings[i];
        if ((int)st->section != section) {
            section = (int)st->section;
            fprintf(out, ".SS %s\n", titles[section]);
        }
        fputs(".TP\n.B ", out);
        roff_text(out, st->key);
        fputc('\n', out);
        if (st->flag) {
            fputs("Flag \\fB\\-\\-", out);
            roff_text(out, st->flag);
            fprintf(out, "\\fR \\fI%s\\fR%s", type_hint(st->type), st->env ? "; " : ".\n.br\n");
        }
        if (st->env) {
            fputs(st->flag ? "environment \\fB" : "Environment \\fB", out);
            roff_text(out, st->env);
            fputs("\\fR.\n.br\n", out);
        }
        roff_text(out, st->doc);
        fputs("\n.br\nDefault: ", out);
        roff_text(out, default_text(st));
        fputs(st->reload ? ". Reloaded by SIGHUP.\n" : ". Needs a restart.\n", out);
    }
}

/* ---- reload ---- */

static bool field_equal(const struct broker_config *a, const struct broker_config *b,
                        const struct setting *st)
{
    const void *fa = (const char *)a + st->offset;
    const void *fb = (const char *)b + st->offset;

    switch (st->type) {
    case T_STR:
    case T_SECRET:
    case T_LOGLEVEL:
    case T_LOGFORMAT: {
        const char *x = *(char *const *)fa, *y = *(char *const *)fb;
        return x == y || (x && y && !strcmp(x, y));
    }
    case T_U32:
    case T_MODE:
        return *(const uint32_t *)fa == *(const uint32_t *)fb;
    case T_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case T_RATIO:
        return *(const double *)fa == *(const double *)fb;
    case T_UIDS:
    case T_GIDS:
        return !memcmp(fa, fb, sizeof(struct config_ids));
    }
    return true;
}

static void copy_field(struct broker_config *dst, const struct broker_config *src,
                       const struct setting *st)
{
    void *fd = (char *)dst + st->offset;
    const void *fs = (const char *)src + st->offset;

    switch (st->type) {
    case T_STR:
    case T_SECRET:
    case T_LOGLEVEL:
    case T_LOGFORMAT: {
        const char *v = *(char *const *)fs;
        char *copy = v ? strdup(v) : NULL;
        if (v && !copy)
            return; /* out of memory: the old value stays */
        secret_free(*(char **)fd);
        *(char **)fd = copy;
        return;
    }
    case T_U32:
    case T_MODE:
        *(uint32_t *)fd = *(const uint32_t *)fs;
        return;
    case T_BOOL:
        *(bool *)fd = *(const bool *)fs;
        return;
    case T_RATIO:
        *(double *)fd = *(const double *)fs;
        return;
    case T_UIDS:
    case T_GIDS:
        memcpy(fd, fs, sizeof(struct config_ids));
        return;
    }
}

static void append_key(char *list, size_t len, const char *key)
{
    size_t used = strnlen(list, len);
    if (used + 1 < len)
        snprintf(list + used, len - used, "%s%s", used ? ", " : "", key);
}

void config_reload(struct broker_config *cfg, const struct broker_config *fresh, char *applied,
                   size_t applied_len, char *needs_restart, size_t needs_restart_len)
{
    applied[0] = needs_restart[0] = '\0';
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &settings[i];
        if (st->type == T_SECRET)
            continue; /* never compared, never named */
        if (st->reload) {
            copy_field(cfg, fresh, st);
            append_key(applied, applied_len, st->key);
        } else if (!field_equal(cfg, fresh, st)) {
            append_key(needs_restart, needs_restart_len, st->key);
        }
    }
}
