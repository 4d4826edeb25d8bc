/* A small asynchronous HTTP client on the broker's libuv loop.
 *
 * libcurl's multi_socket interface does the protocol work; this module is
 * the glue that lets it run inside our loop instead of its own: curl tells
 * us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION -> one
 * uv_poll_t per socket) and when it next needs a timeout callback
 * (CURLMOPT_TIMERFUNCTION -> one uv_timer_t per client), and we hand the
 * readiness events back with curl_multi_socket_action(). Nothing here ever
 * waits: no curl_easy_perform(), no curl_multi_wait(). Name resolution
 * uses libcurl's asynchronous resolver (threaded or c-ares, whichever it
 * was built with); its thread is libcurl's, never the loop.
 *
 * Ownership and callbacks, after hiredis' async.c:
 * - The completion callback runs exactly once per started request, from
 *   the loop, never from inside http_request_start(); or never, if the
 *   request is cancelled (or the client closed) first. After the callback
 *   returns (or after http_request_cancel()) the request is freed: forget
 *   the pointer.
 * - Inside a callback it is safe to start new requests, cancel others, or
 *   close the client.
 * - http_client_close() cancels every request (no callbacks) and releases
 *   the client once the loop has run the close callbacks of its handles:
 *   run the loop before uv_loop_close().
 *
 * libcurl is not linked: the first request loads it (dlopen), so a broker
 * that never enrolls never maps it (http.c says why and how). Without it,
 * requests fail with -ELIBACC, through their callback like a network
 * error.
 *
 * Request bodies are wiped from our memory when a request ends, since the
 * enrollment body carries the token and the password. Never turn on
 * CURLOPT_VERBOSE for these handles: it would print them.
 */
#ifndef UPSTREAM_HTTP_H
#define UPSTREAM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HTTP_DEFAULT_TIMEOUT_MS         30000u
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define HTTP_DEFAULT_MAX_RESPONSE_BYTES (1024u * 1024u)

struct http_client;
struct http_request;

struct http_request_options {
    const char *method;          /* "POST" or "GET"; NULL: POST when there is a body */
    const char *url;             /* http:// or https:// only */
    const char *body;            /* copied; may be NULL */
    size_t body_len;             /* bytes of body */
    const char *content_type;    /* Content-Type of the body, e.g. "application/json"; or NULL */
    const char *accept;          /* Accept header value, or NULL */
    uint32_t timeout_ms;         /* the whole exchange; 0: HTTP_DEFAULT_TIMEOUT_MS */
    uint32_t connect_timeout_ms; /* 0: the smaller of timeout and the default */
    size_t max_response_bytes;   /* body bound; 0: HTTP_DEFAULT_MAX_RESPONSE_BYTES */
    const char *ca_file;         /* PEM CA bundle for https; NULL: the system store */
    bool tls_insecure;           /* skip certificate and host checks (development only) */
    /* A new connection, closed afterwards. libcurl silently re-sends a
     * request once when a reused keep-alive connection dies before any
     * answer; for a POST that must not be repeated (it spends a token),
     * ask for a fresh connection so a failure is reported, not retried. */
    bool fresh_connection;
};

struct http_response {
    /* 0 when a complete response arrived, whatever its status. Otherwise:
     *   -ETIMEDOUT     the timeout ran out (connect or whole request)
     *   -ECONNREFUSED  (or another connect errno) TCP connect failed
     *   -EHOSTUNREACH  the host name did not resolve
     *   -EPROTO        TLS failed (handshake, certificate, CA file)
     *   -ECONNRESET    the connection broke or closed without a response
     *   -EBADMSG       the reply was not HTTP
     *   -EMSGSIZE      the body exceeded max_response_bytes (status set)
     *   -EINVAL        libcurl refused the URL
     *   -ELIBACC       libcurl.so.4 could not be loaded (error says why);
     *                  the next request tries again
     *   -ENOMEM, or -EIO for anything else. */
    int result;
    long status;      /* HTTP status, 0 if no status line arrived */
    const char *body; /* NUL-terminated; "" when none; valid during the callback only */
    size_t body_len;
    const char *error; /* "" on success; else one line for logs (no body, no secrets) */
};

typedef void (*http_done_fn)(struct http_request *req, const struct http_response *res,
                             void *userdata);

/* A client on `loop` (which must outlive it). 0 or -ENOMEM. Loads nothing:
 * libcurl comes with the first request. Released by http_client_close(). */
int http_client_new(struct http_client **out, uv_loop_t *loop);

/* Cancel all requests without calling their callbacks and release the
 * client asynchronously (see above). NULL-safe. */
void http_client_close(struct http_client *c);

/* Requests started and not yet completed or cancelled. */
size_t http_client_pending(const struct http_client *c);

/* Start a request; `cb` is called later with the outcome. `*out` (may be
 * NULL) receives the request for http_request_cancel().
 * 0, -EINVAL (bad option: method, URL scheme, header value with CR/LF),
 * -ENOMEM, -ESHUTDOWN (client closing), -EIO (libcurl refused). On error
 * nothing was started and `cb` will not be called. */
int http_request_start(struct http_client *c, const struct http_request_options *opts,
                       http_done_fn cb, void *userdata, struct http_request **out);

/* Abort a request that has not completed: its callback will not run and
 * it is freed now. Must not be called after its callback ran. */
void http_request_cancel(struct http_request *req);

/* Whether this process has loaded libcurl (for tests and diagnostics). */
bool http_curl_loaded(void);

/* Tests only: the file name the next load tries (NULL: "libcurl.so.4"),
 * to see a missing library handled. No effect once libcurl is loaded. */
void http__set_curl_soname(const char *soname);

#endif
