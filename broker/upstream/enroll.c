#include "enroll.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "proto/errors.h"
#include "util/log.h"
#include "util/secret.h"

struct enroll {
    struct enroll_config cfg; /* every string below is our own copy */
    char *url;
    struct http_request *request;
    enroll_done_fn cb;
    void *userdata;
};

/* ---- text hygiene ---- */

/* The secrets that must never reach a message, longest first so that a
 * secret containing another is redacted whole. */
struct secrets {
    const char *s[3];
    size_t len[3];
    int n;
};

static void secrets_add(struct secrets *sec, const char *s)
{
    size_t len;
    int i;

    if (!s || !*s || sec->n == 3)
        return;
    len = strlen(s);
    for (i = sec->n; i > 0 && sec->len[i - 1] < len; i--) {
        sec->s[i] = sec->s[i - 1];
        sec->len[i] = sec->len[i - 1];
    }
    sec->s[i] = s;
    sec->len[i] = len;
    sec->n++;
}

/* Append `src` (`len` bytes) to the string in `dst` (capacity `cap`),
 * replacing every secret by "***" and every control character by '?'.
 * Secrets are matched in the full source before anything is written, so
 * truncation at `cap` can cut the text but never leave part of one. */
static void append_clean(char *dst, size_t cap, const char *src, size_t len,
                         const struct secrets *sec)
{
    size_t out = strlen(dst);

    for (size_t i = 0; i < len && out + 1 < cap;) {
        int hit = -1;
        for (int k = 0; k < sec->n; k++) {
            if (sec->len[k] <= len - i && memcmp(src + i, sec->s[k], sec->len[k]) == 0) {
                hit = k;
                break;
            }
        }
        if (hit >= 0) {
            for (const char *r = "***"; *r && out + 1 < cap; r++)
                dst[out++] = *r;
            i += sec->len[hit];
            continue;
        }
        unsigned char ch = (unsigned char)src[i++];
        dst[out++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[out] = '\0';
}

static void append_text(char *dst, size_t cap, const char *text, const struct secrets *sec)
{
    if (text)
        append_clean(dst, cap, text, strlen(text), sec);
}

/* Our own words: no secret can be in them, and they are short. */
static void append_fmt(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append_fmt(char *dst, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(dst);
    va_list ap;

    if (used + 1 >= cap)
        return;
    va_start(ap, fmt);
    vsnprintf(dst + used, cap - used, fmt, ap);
    va_end(ap);
}

/* ---- classification ---- */

const char *enroll_outcome_name(enum enroll_outcome outcome)
{
    switch (outcome) {
    case ENROLL_OK:
        return "ok";
    case ENROLL_FINAL:
        return "final";
    case ENROLL_RETRY:
        return "retry";
    }
    return "?";
}

void enroll_result_clear(struct enroll_result *r)
{
    if (!r)
        return;
    credentials_clear(&r->credentials);
    memset(r, 0, sizeof(*r));
}

static const char *transport_words(int err)
{
    switch (err) {
    case -ETIMEDOUT:
        return "timed out";
    case -ECONNREFUSED:
        return "connection refused";
    case -EHOSTUNREACH:
        return "host name lookup failed";
    case -EPROTO:
        return "TLS failure";
    case -ECONNRESET:
        return "connection closed without a response";
    case -EBADMSG:
        return "malformed HTTP reply";
    case -EMSGSIZE:
        return "response too large";
    case -EINVAL:
        return "URL refused";
    case -ENOMEM:
        return "out of memory";
    case -ELIBACC:
        /* libcurl is loaded on first use (http.c); installing it is
         * enough for the next attempt. The HTTP text says which and why. */
        return "HTTP library missing";
    default:
        return err < 0 ? strerror(-err) : "transport error";
    }
}

/* 408 and 429 are 4xx by number but "try again later" by meaning. */
static enum enroll_outcome outcome_for_status(long status)
{
    if (status == 408 || status == 429)
        return ENROLL_RETRY;
    if (status >= 300 && status < 500)
        return ENROLL_FINAL;
    return ENROLL_RETRY;
}

static void fail(struct enroll_result *out, enum enroll_outcome outcome)
{
    out->outcome = outcome;
    out->error = PROTO_E_ENROLLMENT_FAILED;
    snprintf(out->message, sizeof(out->message), "%s",
             outcome == ENROLL_FINAL ? "enrollment refused" : "enrollment failed, will retry");
}

/* {"error": {"code": "...", "message": "..."}} or {"error": "..."}. */
static void describe_refusal(struct enroll_result *out, const char *body, size_t len,
                             const struct secrets *sec)
{
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *code = NULL, *text = NULL;

    if (cJSON_IsObject(error)) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(error, "code");
        cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");
        code = cJSON_IsString(c) ? c->valuestring : NULL;
        text = cJSON_IsString(m) ? m->valuestring : NULL;
    } else if (cJSON_IsString(error)) {
        text = error->valuestring;
    }
    append_text(out->server_code, sizeof(out->server_code), code, sec);
    append_fmt(out->message, sizeof(out->message), " (HTTP %ld%s", out->http_status,
               out->server_code[0] ? " " : "");
    append_text(out->message, sizeof(out->message), out->server_code, sec);
    append_fmt(out->message, sizeof(out->message), ")");
    if (text) {
        append_fmt(out->message, sizeof(out->message), ": ");
        append_text(out->message, sizeof(out->message), text, sec);
    }
    cJSON_Delete(root);
}

/* A returned field: absent or null keeps the current value (NULL here);
 * anything else must be a valid credential string. */
static int returned_value(cJSON *root, const char *name, const char **out)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);

    *out = NULL;
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsString(item) || !credentials_value_valid(item->valuestring))
        return -EBADMSG;
    *out = item->valuestring;
    return 0;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    }
    return true;
}

static void accept_success(const struct enroll_config *cfg, const char *body, size_t len,
                           struct enroll_result *out, struct secrets *sec)
{
    cJSON *root = NULL;
    const char *id = NULL, *password = NULL;
    const char *problem = NULL;

    if (body && len > 0 && !blank(body, len)) {
        root = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(root))
            problem = "malformed enrollment response: not a JSON object";
        else if (returned_value(root, "teamClusterId", &id) < 0)
            problem = "malformed enrollment response: bad \"teamClusterId\"";
        else if (returned_value(root, "daemonPassword", &password) < 0)
            problem = "malformed enrollment response: bad \"daemonPassword\"";
    }
    if (problem) {
        fail(out, ENROLL_RETRY);
        append_fmt(out->message, sizeof(out->message), " (HTTP %ld): %s", out->http_status,
                   problem);
        goto out;
    }
    secrets_add(sec, password);
    if (!id)
        id = cfg->team_cluster_id;
    if (!password)
        password = cfg->daemon_password;
    if (!credentials_value_valid(id) || !credentials_value_valid(password)) {
        fail(out, ENROLL_FINAL);
        append_fmt(out->message, sizeof(out->message),
                   " (HTTP %ld): the server returned no %s and none is configured",
                   out->http_status,
                   credentials_value_valid(id) ? "daemonPassword" : "teamClusterId");
        goto out;
    }
    out->credentials.team_cluster_id = strdup(id);
    out->credentials.daemon_password = strdup(password);
    out->credentials.enrolled_at = (int64_t)time(NULL);
    if (!out->credentials.team_cluster_id || !out->credentials.daemon_password) {
        credentials_clear(&out->credentials);
        fail(out, ENROLL_RETRY);
        append_fmt(out->message, sizeof(out->message), ": out of memory");
        goto out;
    }
    out->outcome = ENROLL_OK;
    out->error = 0;
    out->password_rotated = !cfg->daemon_password || strcmp(password, cfg->daemon_password) != 0;
    out->cluster_changed = !cfg->team_cluster_id || strcmp(id, cfg->team_cluster_id) != 0;
    snprintf(out->message, sizeof(out->message), "enrolled as ");
    append_text(out->message, sizeof(out->message), id, sec);
    append_fmt(out->message, sizeof(out->message), " (HTTP %ld%s%s)", out->http_status,
               out->password_rotated ? ", password rotated" : "",
               out->cluster_changed ? ", teamClusterId changed" : "");
out:
    secret_json_delete(root);
}

void enroll_parse_response(const struct enroll_config *cfg, int transport_error,
                           const char *transport_text, long status, const char *body,
                           size_t body_len, struct enroll_result *out)
{
    struct secrets sec = {0};

    memset(out, 0, sizeof(*out));
    out->transport_error = transport_error;
    out->http_status = status;
    secrets_add(&sec, cfg->enrollment_token);
    secrets_add(&sec, cfg->daemon_password);

    if (transport_error != 0) {
        /* A bad URL stays bad; an oversized 4xx is still a refusal. */
        bool final = transport_error == -EINVAL ||
                     (status > 0 && outcome_for_status(status) == ENROLL_FINAL);
        fail(out, final ? ENROLL_FINAL : ENROLL_RETRY);
        append_fmt(out->message, sizeof(out->message), ": %s", transport_words(transport_error));
        if (status > 0)
            append_fmt(out->message, sizeof(out->message), " (HTTP %ld)", status);
        if (transport_text && *transport_text) {
            append_fmt(out->message, sizeof(out->message), ": ");
            append_text(out->message, sizeof(out->message), transport_text, &sec);
        }
        return;
    }
    if (status == 200 || status == 201) {
        accept_success(cfg, body, body_len, out, &sec);
        return;
    }
    fail(out, outcome_for_status(status));
    if (status >= 300 && status < 400) {
        append_fmt(out->message, sizeof(out->message),
                   " (HTTP %ld): unexpected redirect; check the server URL", status);
        return;
    }
    describe_refusal(out, body, body_len, &sec);
}

/* ---- request ---- */

static bool nonempty(const char *s)
{
    return s && *s;
}

static bool url_scheme_ok(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

int enroll_build_body(const struct enroll_config *cfg, char **body, size_t *len)
{
    char host[HOST_NAME_MAX + 1];
    const char *hostname = cfg->hostname;
    cJSON *root;
    char *text = NULL;

    *body = NULL;
    *len = 0;
    if (!nonempty(cfg->team_cluster_id) || !nonempty(cfg->enrollment_token) ||
        !nonempty(cfg->version))
        return -EINVAL;
    if (!hostname) {
        if (gethostname(host, sizeof(host)) < 0)
            return -errno;
        host[sizeof(host) - 1] = '\0';
        hostname = host;
    }
    root = cJSON_CreateObject();
    if (!root)
        return -ENOMEM;
    if (cJSON_AddStringToObject(root, "teamClusterId", cfg->team_cluster_id) &&
        cJSON_AddStringToObject(root, "enrollmentToken", cfg->enrollment_token) &&
        (!cfg->daemon_password ||
         cJSON_AddStringToObject(root, "daemonPassword", cfg->daemon_password)) &&
        cJSON_AddStringToObject(root, "hostname", hostname) &&
        cJSON_AddStringToObject(root, "version", cfg->version))
        text = cJSON_PrintUnformatted(root);
    secret_json_delete(root);
    if (!text)
        return -ENOMEM;
    *body = text;
    *len = strlen(text);
    return 0;
}

void enroll_body_free(char *body, size_t len)
{
    if (!body)
        return;
    explicit_bzero(body, len);
    cJSON_free(body);
}

static void enroll_free(struct enroll *e)
{
    free((char *)e->cfg.server_url);
    free((char *)e->cfg.team_cluster_id);
    secret_free((char *)e->cfg.enrollment_token);
    secret_free((char *)e->cfg.daemon_password);
    free((char *)e->cfg.hostname);
    free((char *)e->cfg.version);
    free((char *)e->cfg.ca_file);
    free(e->url);
    free(e);
}

static int copy_string(const char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

static int copy_config(struct enroll *e, const struct enroll_config *cfg)
{
    e->cfg.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : ENROLL_DEFAULT_TIMEOUT_MS;
    e->cfg.connect_timeout_ms = cfg->connect_timeout_ms;
    e->cfg.tls_insecure = cfg->tls_insecure;
    e->cfg.max_response_bytes =
        cfg->max_response_bytes ? cfg->max_response_bytes : ENROLL_DEFAULT_MAX_RESPONSE_BYTES;
    if (copy_string(&e->cfg.server_url, cfg->server_url) < 0 ||
        copy_string(&e->cfg.team_cluster_id, cfg->team_cluster_id) < 0 ||
        copy_string(&e->cfg.enrollment_token, cfg->enrollment_token) < 0 ||
        copy_string(&e->cfg.daemon_password, cfg->daemon_password) < 0 ||
        copy_string(&e->cfg.hostname, cfg->hostname) < 0 ||
        copy_string(&e->cfg.version, cfg->version) < 0 ||
        copy_string(&e->cfg.ca_file, cfg->ca_file) < 0)
        return -ENOMEM;
    return 0;
}

static char *build_url(const char *server_url)
{
    size_t len = strlen(server_url);
    char *url;

    while (len > 0 && server_url[len - 1] == '/')
        len--;
    url = malloc(len + sizeof(ENROLL_PATH));
    if (!url)
        return NULL;
    memcpy(url, server_url, len);
    memcpy(url + len, ENROLL_PATH, sizeof(ENROLL_PATH));
    return url;
}

static void on_http_done(struct http_request *req, const struct http_response *res, void *userdata)
{
    struct enroll *e = userdata;
    struct enroll_result result;

    e->request = NULL;
    enroll_parse_response(&e->cfg, res->result, res->error, res->status, res->body, res->body_len,
                          &result);
    log_debug("enrollment: POST %s: %s: %s", e->url, enroll_outcome_name(result.outcome),
              result.message);
    e->cb(e, &result, e->userdata);
    enroll_result_clear(&result);
    enroll_free(e);
}

int enroll_start(struct http_client *http, const struct enroll_config *cfg, enroll_done_fn cb,
                 void *userdata, struct enroll **out)
{
    struct enroll *e;
    char *body = NULL;
    size_t body_len = 0;
    int r;

    if (out)
        *out = NULL;
    if (!http || !cfg || !cb || !nonempty(cfg->server_url) || !url_scheme_ok(cfg->server_url))
        return -EINVAL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->cb = cb;
    e->userdata = userdata;
    r = copy_config(e, cfg);
    if (r < 0)
        goto fail;
    e->url = build_url(e->cfg.server_url);
    if (!e->url) {
        r = -ENOMEM;
        goto fail;
    }
    r = enroll_build_body(&e->cfg, &body, &body_len);
    if (r < 0)
        goto fail;

    struct http_request_options opts = {
        .method = "POST",
        .url = e->url,
        .body = body,
        .body_len = body_len,
        .content_type = "application/json",
        .accept = "application/json",
        .timeout_ms = e->cfg.timeout_ms,
        .connect_timeout_ms = e->cfg.connect_timeout_ms,
        .tls_insecure = e->cfg.tls_insecure,
        .fresh_connection = true,
        .max_response_bytes = e->cfg.max_response_bytes,
        .ca_file = e->cfg.ca_file,
    };
    /* The HTTP layer keeps (and later wipes) its own copy of the body. */
    r = http_request_start(http, &opts, on_http_done, e, &e->request);
    enroll_body_free(body, body_len);
    if (r < 0)
        goto fail;
    if (out)
        *out = e;
    return 0;
fail:
    enroll_free(e);
    return r;
}

void enroll_cancel(struct enroll *e)
{
    if (!e)
        return;
    http_request_cancel(e->request);
    enroll_free(e);
}
