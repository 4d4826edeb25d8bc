/* Enrollment: trade a one-time token for durable daemon credentials.
 *
 *     POST {serverUrl}/api/daemon/enroll
 *     {"teamClusterId", "enrollmentToken", "daemonPassword"?, "hostname", "version"}
 *
 * One attempt per enroll_start(); the caller owns the retry loop (it uses
 * the same backoff as the socket, util/backoff.h) and the persistence.
 * The outcome is one of three, because the caller's next step is one of
 * three:
 *
 *   ENROLL_OK     200/201. The result holds the credentials to use from
 *                 now on: the returned teamClusterId/daemonPassword, or
 *                 the configured ones where the server left a field out.
 *                 `password_rotated` says the password changed. The
 *                 caller must persist them (credstore_store()) *before*
 *                 connecting the socket: the token is spent, and the old
 *                 password may already be dead on the server.
 *   ENROLL_FINAL  Retrying cannot help: 4xx (the token or credentials
 *                 were refused; {"error":{"code","message"}} is reported
 *                 when present), a redirect, a URL libcurl refuses, or a
 *                 success that leaves us without a password.
 *   ENROLL_RETRY  Worth another attempt after a delay: 5xx, 408, 429,
 *                 timeouts, DNS/TCP/TLS failures, a dropped connection, a
 *                 malformed or oversized response, libcurl that cannot be
 *                 loaded (installing it is enough for the next attempt).
 *
 * Secrets: the token and passwords travel only in the request body (wiped
 * after use) and the result's credentials. Every text for people (the
 * result's message, the server's error code and message) has them
 * redacted, even when the server echoes them back, and has control
 * characters replaced so it cannot forge log lines.
 */
#ifndef UPSTREAM_ENROLL_H
#define UPSTREAM_ENROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upstream/http.h"
#include "util/credstore.h"

#define ENROLL_PATH               "/api/daemon/enroll"
#define ENROLL_DEFAULT_TIMEOUT_MS 30000u
/* An enrollment answer is two short strings; anything near this is wrong. */
#define ENROLL_DEFAULT_MAX_RESPONSE_BYTES (64u * 1024u)
#define ENROLL_MESSAGE_MAX                512

struct enroll_config {
    const char *server_url;       /* "https://api.example" (a trailing / is fine) */
    const char *team_cluster_id;  /* the configured id (required) */
    const char *enrollment_token; /* required */
    const char *daemon_password;  /* the configured password, or NULL */
    const char *hostname;         /* NULL: gethostname() */
    const char *version;          /* the daemon's version, e.g. "0.1.0" (required) */
    const char *ca_file;          /* PEM CA bundle for https, or NULL */
    bool tls_insecure;            /* skip certificate checks (development only) */
    uint32_t timeout_ms;          /* 0: ENROLL_DEFAULT_TIMEOUT_MS */
    uint32_t connect_timeout_ms;  /* 0: see http_request_options */
    size_t max_response_bytes;    /* 0: ENROLL_DEFAULT_MAX_RESPONSE_BYTES */
};

enum enroll_outcome {
    ENROLL_OK = 0,
    ENROLL_FINAL = 1,
    ENROLL_RETRY = 2,
};

struct enroll_result {
    enum enroll_outcome outcome;
    int error;           /* 0, or PROTO_E_ENROLLMENT_FAILED */
    int transport_error; /* http_response.result: 0 or -errno */
    long http_status;    /* 0 when no response arrived */
    /* ENROLL_OK only: what to use and persist from now on (enrolled_at =
     * now). Owned by the result; see enroll_result_clear(). */
    struct credentials credentials;
    bool password_rotated;            /* returned password differs from the configured one */
    bool cluster_changed;             /* returned teamClusterId differs from the configured one */
    char server_code[64];             /* error.code of a refusal, redacted; "" if none */
    char message[ENROLL_MESSAGE_MAX]; /* one line for logs, redacted */
};

struct enroll;

/* Called once with the result of the attempt. `result` belongs to the
 * enrollment and is cleared after the callback returns; the callback may
 * take the credentials (move the pointers out and set them to NULL).
 * `e` is freed after the callback: forget it. */
typedef void (*enroll_done_fn)(struct enroll *e, struct enroll_result *result, void *userdata);

/* Start one attempt on `http`. `cfg` is copied (secrets wiped on free).
 * 0, -EINVAL (missing or malformed field: URL scheme, empty token...),
 * -ENOMEM, or an error of http_request_start(). On error `cb` is not
 * called. `*out` (may be NULL) receives the handle for enroll_cancel(). */
int enroll_start(struct http_client *http, const struct enroll_config *cfg, enroll_done_fn cb,
                 void *userdata, struct enroll **out);

/* Abort an attempt whose callback has not run: it never will. */
void enroll_cancel(struct enroll *e);

/* The request body as JSON text (NUL-terminated, `*len` bytes). It holds
 * the token: release it with enroll_body_free(), which wipes it. The
 * hostname is cfg->hostname, or gethostname() when that is NULL.
 * 0, -EINVAL (missing field), -ENOMEM, or -errno from gethostname(). */
int enroll_build_body(const struct enroll_config *cfg, char **body, size_t *len);
void enroll_body_free(char *body, size_t len);

/* Classify the outcome of one exchange: the pure half of enrollment, also
 * the fuzz target. `transport_error`/`transport_text` are the HTTP
 * layer's result and error text; `body` need not be NUL-terminated.
 * `cfg` supplies the current id/password (for "keep current" and
 * rotation detection) and the secrets to redact. Fills `out` (cleared
 * first); release with enroll_result_clear(). Never fails: out of memory
 * while copying credentials yields ENROLL_RETRY. */
void enroll_parse_response(const struct enroll_config *cfg, int transport_error,
                           const char *transport_text, long status, const char *body,
                           size_t body_len, struct enroll_result *out);

/* Wipe and free the credentials, zero the struct. NULL-safe. */
void enroll_result_clear(struct enroll_result *r);

/* "ok", "final", "retry". */
const char *enroll_outcome_name(enum enroll_outcome outcome);

#endif
