#include "credstore.h"

#include "util/errbuf.h"
#include "util/secret.h"
#include "util/statefile.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CREDSTORE_MAX_DIR_BYTES STATEFILE_MAX_DIR_BYTES

struct credstore {
    char *dir;
    char *path;
};

int credstore_new(struct credstore **out, const char *state_dir)
{
    struct credstore *cs;
    size_t len;

    *out = NULL;
    if (!state_dir || !*state_dir)
        return -EINVAL;
    len = strlen(state_dir);
    if (len > CREDSTORE_MAX_DIR_BYTES)
        return -EINVAL;
    /* "/a/b/" and "/a/b" name the same directory. */
    while (len > 1 && state_dir[len - 1] == '/')
        len--;

    cs = calloc(1, sizeof(*cs));
    if (!cs)
        return -ENOMEM;
    cs->dir = strndup(state_dir, len);
    cs->path = malloc(len + 1 + sizeof(CREDSTORE_FILE_NAME));
    if (!cs->dir || !cs->path) {
        credstore_free(cs);
        return -ENOMEM;
    }
    sprintf(cs->path, "%s%s%s", cs->dir, strcmp(cs->dir, "/") == 0 ? "" : "/", CREDSTORE_FILE_NAME);
    *out = cs;
    return 0;
}

void credstore_free(struct credstore *cs)
{
    if (!cs)
        return;
    free(cs->dir);
    free(cs->path);
    free(cs);
}

const char *credstore_path(const struct credstore *cs)
{
    return cs->path;
}

void credentials_clear(struct credentials *c)
{
    if (!c)
        return;
    if (c->daemon_password) {
        explicit_bzero(c->daemon_password, strlen(c->daemon_password));
        free(c->daemon_password);
    }
    free(c->team_cluster_id);
    memset(c, 0, sizeof(*c));
}

int credentials_copy(struct credentials *dst, const struct credentials *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->enrolled_at = src->enrolled_at;
    if (src->team_cluster_id && !(dst->team_cluster_id = strdup(src->team_cluster_id)))
        goto nomem;
    if (src->daemon_password && !(dst->daemon_password = strdup(src->daemon_password)))
        goto nomem;
    return 0;
nomem:
    credentials_clear(dst);
    return -ENOMEM;
}

/* Values end up in HTTP bodies, socket auth and maybe logs (the id):
 * no control characters, bounded length. */
bool credentials_value_valid(const char *s)
{
    size_t n = 0;

    if (!s || !*s)
        return false;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (ch < 0x20 || ch == 0x7f || n >= CREDSTORE_MAX_VALUE_BYTES)
            return false;
    }
    return true;
}

static void format_time(int64_t t, char out[32])
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static int parse_time(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int consumed = -1;
    time_t t;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed < 0 || s[consumed] != '\0')
        return -EBADMSG;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -EBADMSG;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EBADMSG;
    *out = (int64_t)t;
    return 0;
}

/* ---- load ---- */

static int take_string(cJSON *obj, const char *name, char **out)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsString(item) || !credentials_value_valid(item->valuestring))
        return -EBADMSG;
    *out = strdup(item->valuestring);
    return *out ? 0 : -ENOMEM;
}

static int parse_credentials(const char *text, size_t len, struct credentials *out,
                             const char **what)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    cJSON *when;
    int r;

    if (!root) {
        *what = "not valid JSON";
        return -EBADMSG;
    }
    if (!cJSON_IsObject(root)) {
        *what = "not a JSON object";
        r = -EBADMSG;
        goto out;
    }
    *what = "\"teamClusterId\" missing or malformed";
    r = take_string(root, "teamClusterId", &out->team_cluster_id);
    if (r < 0)
        goto out;
    *what = "\"daemonPassword\" missing or malformed";
    r = take_string(root, "daemonPassword", &out->daemon_password);
    if (r < 0)
        goto out;
    when = cJSON_GetObjectItemCaseSensitive(root, "enrolledAt");
    if (when) {
        *what = "\"enrolledAt\" is not a UTC timestamp (YYYY-MM-DDTHH:MM:SSZ)";
        r = cJSON_IsString(when) ? parse_time(when->valuestring, &out->enrolled_at) : -EBADMSG;
    }
out:
    secret_json_delete(root);
    return r;
}

int credstore_load(struct credstore *cs, struct credentials *out, char *errbuf, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    const char *what = "";
    int r;

    memset(out, 0, sizeof(*out));
    r = statefile_read(cs->dir, CREDSTORE_FILE_NAME, "credentials", CREDSTORE_MAX_FILE_BYTES, &text,
                       &len, errbuf, errlen);
    if (r == STATEFILE_ABSENT)
        return CREDSTORE_NOT_ENROLLED;
    if (r < 0)
        return r;
    r = parse_credentials(text, len, out, &what);
    if (r == -EBADMSG)
        errbuf_set(errbuf, errlen, "credentials file %s is corrupted: %s", cs->path, what);
    else if (r < 0)
        errbuf_set(errbuf, errlen, "credentials file %s: %s", cs->path, strerror(-r));
    if (r < 0)
        credentials_clear(out);
    statefile_text_free(text, len);
    return r;
}

/* ---- store ---- */

static char *render_credentials(const struct credentials *c)
{
    cJSON *root = cJSON_CreateObject();
    char when[32];
    char *text = NULL;

    if (!root)
        return NULL;
    format_time(c->enrolled_at ? c->enrolled_at : (int64_t)time(NULL), when);
    if (cJSON_AddStringToObject(root, "teamClusterId", c->team_cluster_id) &&
        cJSON_AddStringToObject(root, "daemonPassword", c->daemon_password) &&
        cJSON_AddStringToObject(root, "enrolledAt", when))
        text = cJSON_Print(root);
    secret_json_delete(root);
    return text;
}

int credstore_store(struct credstore *cs, const struct credentials *creds, char *errbuf,
                    size_t errlen)
{
    char *text;
    size_t len;
    int r;

    if (!credentials_value_valid(creds->team_cluster_id) ||
        !credentials_value_valid(creds->daemon_password)) {
        errbuf_set(errbuf, errlen, "refusing to store empty or malformed credentials");
        return -EINVAL;
    }
    text = render_credentials(creds);
    if (!text) {
        errbuf_set(errbuf, errlen, "storing credentials in %s failed (render): %s", cs->dir,
                   strerror(ENOMEM));
        return -ENOMEM;
    }
    len = strlen(text);
    r = statefile_write(cs->dir, CREDSTORE_FILE_NAME, "credentials", text, len, errbuf, errlen);
    explicit_bzero(text, len);
    cJSON_free(text);
    return r;
}
