/* libcurl is loaded with dlopen() on the first request, not linked.
 *
 * Enrollment is the broker's only HTTP exchange: at most once in a node's
 * life, never when credentials are stored. Linked, libcurl would cost every
 * broker about 3 MiB of RSS for good (its dependency chain: GnuTLS via
 * librtmp and libldap, p11-kit, Kerberos, nettle, gmp, libssh2...),
 * against an idle budget of 8 MiB. So, as systemd does for its optional
 * libraries, we include <curl/curl.h> for types and constants only and
 * call through one table of pointers resolved from "libcurl.so.4" when the
 * first request starts.
 *
 * Once loaded it stays loaded. dlclose() would give most of it back (all
 * but p11-kit, which marks itself NODELETE), but it would run the
 * finalizers of GnuTLS, Kerberos and the rest in a live process, where a
 * thread-specific destructor or a resolver thread they left behind would
 * later call into unmapped code. And the cost is short-lived anyway: a
 * broker that has enrolled stores its credentials, and from its next
 * start on never loads libcurl.
 *
 * When the library cannot be loaded (the package was removed, a broken
 * install) the request fails like a network error, from the loop, with
 * -ELIBACC and a message naming the library and dlerror()'s reason; the
 * next request tries again, so installing the package is enough.
 *
 * The pointers are process-wide and set on the loop's thread: like the
 * rest of this module, only one thread may use it. */
#include "http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_MAX_HEADER_VALUE 256
#define HTTP_USER_AGENT       "volt-broker"
#define HTTP_CURL_SONAME      "libcurl.so.4"

/* Every libcurl function this file calls, without the curl_ prefix: one
 * row each. Their types come from <curl/curl.h> (__typeof__), so a
 * pointer cannot disagree with the header. Calls are curl.NAME(...): a
 * member named curl_easy_setopt would be taken for the header's
 * type-checking macro of that name, and the prefix is no help anyway. */
#define HTTP_CURL_FUNCTIONS(X)                                                                     \
    X(global_init)                                                                                 \
    X(global_cleanup)                                                                              \
    X(easy_init)                                                                                   \
    X(easy_cleanup)                                                                                \
    X(easy_setopt)                                                                                 \
    X(easy_getinfo)                                                                                \
    X(easy_strerror)                                                                               \
    X(multi_init)                                                                                  \
    X(multi_cleanup)                                                                               \
    X(multi_setopt)                                                                                \
    X(multi_assign)                                                                                \
    X(multi_add_handle)                                                                            \
    X(multi_remove_handle)                                                                         \
    X(multi_socket_action)                                                                         \
    X(multi_info_read)                                                                             \
    X(slist_append)                                                                                \
    X(slist_free_all)

static struct {
    void *dl; /* dlopen() handle; NULL: not loaded (and every pointer NULL) */
#define HTTP_CURL_POINTER(name) __typeof__(curl_##name) *name;
    HTTP_CURL_FUNCTIONS(HTTP_CURL_POINTER)
#undef HTTP_CURL_POINTER
} curl;

static const char *curl_soname = HTTP_CURL_SONAME;

void http__set_curl_soname(const char *soname)
{
    curl_soname = soname ? soname : HTTP_CURL_SONAME;
}

bool http_curl_loaded(void)
{
    return curl.dl != NULL;
}

/* Load libcurl and resolve the table, unless done already. 0, or -ELIBACC
 * with one line in `err`; nothing is left half-resolved. */
static int curl_load(char *err, size_t errlen)
{
    const char *why;
    void *dl, *sym;

    if (curl.dl)
        return 0;
    dl = dlopen(curl_soname, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        why = dlerror();
        snprintf(err, errlen, "cannot load %s (needed for HTTP): %s", curl_soname,
                 why ? why : "unknown error");
        return -ELIBACC;
    }
#define HTTP_CURL_RESOLVE(name)                                                                    \
    sym = dlsym(dl, "curl_" #name);                                                                \
    memcpy(&curl.name, &sym, sizeof(sym)); /* ISO C has no object -> function cast */              \
    if (!sym) {                                                                                    \
        snprintf(err, errlen, "cannot load %s (needed for HTTP): it has no %s", curl_soname,       \
                 "curl_" #name);                                                                   \
        goto fail;                                                                                 \
    }
    HTTP_CURL_FUNCTIONS(HTTP_CURL_RESOLVE)
#undef HTTP_CURL_RESOLVE
    curl.dl = dl;
    return 0;
fail:
    memset(&curl, 0, sizeof(curl));
    dlclose(dl);
    return -ELIBACC;
}

/* One watched socket: curl asked for it, curl tells us when to drop it. */
struct http_socket {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_client *client;
    struct http_socket *prev, *next;
};

struct http_request {
    struct http_client *client;
    struct http_request *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    http_done_fn cb;
    void *userdata;
    char *body; /* our copy of the request body: wiped on free */
    size_t body_len;
    char *response; /* NUL-terminated once complete */
    size_t response_len, response_cap, response_max;
    bool too_large;
    int early_result; /* < 0: failed before reaching curl (see on_fail_timer) */
    char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;      /* NULL until the first request that could load libcurl */
    uv_timer_t timer;  /* curl's timeouts (CURLMOPT_TIMERFUNCTION) */
    uv_timer_t failed; /* completes the requests that failed before curl had them */
    bool curl_inited;  /* this client holds one curl_global_init() */
    struct http_request *requests;
    struct http_socket *sockets;
    size_t pending;
    unsigned open_handles; /* uv handles whose close callback has not run */
    bool closing;
};

/* ---- lifetime ---- */

static void client_free_if_done(struct http_client *c)
{
    if (!c->closing || c->open_handles > 0)
        return;
    if (c->curl_inited)
        curl.global_cleanup();
    free(c);
}

static void wipe_free(char *p, size_t len)
{
    if (!p)
        return;
    explicit_bzero(p, len);
    free(p);
}

static void request_unlink(struct http_request *req)
{
    struct http_client *c = req->client;

    if (req->prev)
        req->prev->next = req->next;
    else
        c->requests = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
    c->pending--;
}

static void request_free(struct http_request *req)
{
    /* Both NULL unless libcurl was loaded. */
    if (req->easy)
        curl.easy_cleanup(req->easy);
    if (req->headers)
        curl.slist_free_all(req->headers);
    wipe_free(req->body, req->body_len);
    wipe_free(req->response, req->response_cap);
    free(req);
}

/* ---- sockets: curl -> uv_poll ---- */

static void on_socket_closed(uv_handle_t *handle)
{
    struct http_socket *s = handle->data;
    struct http_client *c = s->client;

    free(s);
    c->open_handles--;
    client_free_if_done(c);
}

static void socket_close(struct http_socket *s)
{
    struct http_client *c = s->client;

    if (s->prev)
        s->prev->next = s->next;
    else
        c->sockets = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_socket_closed);
}

static void process_completed(struct http_client *c);

static void on_socket_ready(uv_poll_t *poll, int status, int events)
{
    struct http_socket *s = poll->data;
    struct http_client *c = s->client;
    int flags = 0, running;

    if (c->closing)
        return;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl.multi_socket_action(c->multi, s->fd, flags, &running);
    process_completed(c);
}

static struct http_socket *socket_open(struct http_client *c, curl_socket_t fd)
{
    struct http_socket *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
        free(s);
        return NULL;
    }
    s->poll.data = s;
    s->fd = fd;
    s->client = c;
    s->next = c->sockets;
    if (s->next)
        s->next->prev = s;
    c->sockets = s;
    c->open_handles++;
    return s;
}

/* CURLMOPT_SOCKETFUNCTION: curl says what it wants to wait for on `fd`. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct http_socket *s = socketp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (s)
            socket_close(s);
        if (!c->closing)
            curl.multi_assign(c->multi, fd, NULL);
        return 0;
    }
    if (c->closing)
        return -1;
    if (!s) {
        s = socket_open(c, fd);
        if (!s)
            return -1;
        curl.multi_assign(c->multi, fd, s);
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_socket_ready) < 0 ? -1 : 0;
}

/* ---- timer: curl -> uv_timer ---- */

static void on_timer(uv_timer_t *timer)
{
    struct http_client *c = timer->data;
    int running;

    if (c->closing)
        return;
    curl.multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    process_completed(c);
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be called after `timeout_ms`
 * (-1: never). Not calling socket_action from here: curl forbids it; a
 * 0 ms uv timer runs it on the next loop iteration instead. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;

    if (c->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- completion ---- */

static int map_curl_error(CURLcode code, long os_errno, bool too_large)
{
    switch (code) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return -EPROTO;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return -ECONNRESET;
    case CURLE_WEIRD_SERVER_REPLY:
        return -EBADMSG;
    case CURLE_FILESIZE_EXCEEDED:
        return -EMSGSIZE;
    case CURLE_WRITE_ERROR:
        return too_large ? -EMSGSIZE : -EIO;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

static void complete(struct http_request *req, CURLcode code)
{
    struct http_client *c = req->client;
    struct http_response res = {.body = "", .error = ""};
    long os_errno = 0;

    curl.easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &res.status);
    curl.easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os_errno);
    curl.multi_remove_handle(c->multi, req->easy);
    request_unlink(req);

    res.result = map_curl_error(code, os_errno, req->too_large);
    if (res.result == -EMSGSIZE)
        snprintf(req->errbuf, sizeof(req->errbuf), "response body larger than %zu bytes",
                 req->response_max);
    else if (res.result < 0 && req->errbuf[0] == '\0')
        snprintf(req->errbuf, sizeof(req->errbuf), "%s", curl.easy_strerror(code));
    if (res.result < 0)
        res.error = req->errbuf;
    if (res.result == 0 && req->response) {
        res.body = req->response;
        res.body_len = req->response_len;
    }
    req->cb(req, &res, req->userdata);
    request_free(req);
}

static void process_completed(struct http_client *c)
{
    CURLMsg *msg;
    int left;

    /* A callback may close the client: stop at once then. */
    while (!c->closing && (msg = curl.multi_info_read(c->multi, &left))) {
        CURLcode code = msg->data.result;
        char *private = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private);
        complete((struct http_request *)private, code);
    }
}

/* CURLOPT_WRITEFUNCTION: collect the body up to the bound. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct http_request *req = userp;
    size_t n = size * nmemb;

    if (n > req->response_max - req->response_len) {
        req->too_large = true;
        return CURL_WRITEFUNC_ERROR;
    }
    if (req->response_len + n + 1 > req->response_cap) {
        size_t cap = req->response_cap ? req->response_cap : 1024;
        char *grown;

        while (cap < req->response_len + n + 1)
            cap *= 2;
        if (cap > req->response_max + 1)
            cap = req->response_max + 1;
        /* No realloc(): the old block may hold a password. */
        grown = malloc(cap);
        if (!grown)
            return CURL_WRITEFUNC_ERROR;
        if (req->response)
            memcpy(grown, req->response, req->response_len);
        wipe_free(req->response, req->response_cap);
        req->response = grown;
        req->response_cap = cap;
    }
    memcpy(req->response + req->response_len, data, n);
    req->response_len += n;
    req->response[req->response_len] = '\0';
    return n;
}

/* ---- client ---- */

int http_client_new(struct http_client **out, uv_loop_t *loop)
{
    struct http_client *c;

    /* No libcurl here: a client may never send a request. */
    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(loop, &c->failed);
    c->failed.data = c;
    c->open_handles = 2;
    *out = c;
    return 0;
}

/* The multi handle, loading libcurl first if need be. 0; -ELIBACC (with
 * `err` set) when libcurl cannot be loaded or initialised; -ENOMEM. */
static int client_start_curl(struct http_client *c, char *err, size_t errlen)
{
    int r;

    if (c->multi)
        return 0;
    r = curl_load(err, errlen);
    if (r < 0)
        return r;
    if (!c->curl_inited) {
        if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "%s loaded, but curl_global_init() failed", curl_soname);
            return -ELIBACC;
        }
        c->curl_inited = true;
    }
    c->multi = curl.multi_init();
    if (!c->multi)
        return -ENOMEM;
    if (curl.multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl.multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
        curl.multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl.multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
        curl.multi_cleanup(c->multi);
        c->multi = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Requests that failed before curl had them (no libcurl) complete here,
 * from the loop like any other outcome. A callback may cancel others or
 * close the client: look for the next one afresh each time. */
static void on_fail_timer(uv_timer_t *timer)
{
    struct http_client *c = timer->data;

    while (!c->closing) {
        struct http_request *req = c->requests;
        struct http_response res = {.body = "", .error = ""};

        while (req && req->early_result == 0)
            req = req->next;
        if (!req)
            return;
        request_unlink(req);
        res.result = req->early_result;
        res.error = req->errbuf;
        req->cb(req, &res, req->userdata);
        request_free(req);
    }
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct http_client *c = handle->data;

    c->open_handles--;
    client_free_if_done(c);
}

void http_client_close(struct http_client *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    while (c->requests) {
        struct http_request *req = c->requests;
        if (req->easy)
            curl.multi_remove_handle(c->multi, req->easy);
        request_unlink(req);
        request_free(req);
    }
    /* May still report CURL_POLL_REMOVE for cached connections. */
    if (c->multi)
        curl.multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->sockets)
        socket_close(c->sockets);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    uv_timer_stop(&c->failed);
    uv_close((uv_handle_t *)&c->failed, on_timer_closed);
}

size_t http_client_pending(const struct http_client *c)
{
    return c->pending;
}

/* ---- requests ---- */

static bool header_value_valid(const char *v)
{
    size_t n = strlen(v);

    return n > 0 && n <= HTTP_MAX_HEADER_VALUE && !strpbrk(v, "\r\n");
}

static int add_header(struct http_request *req, const char *name, const char *value)
{
    char line[HTTP_MAX_HEADER_VALUE + 64];
    struct curl_slist *l;

    /* "Name:" with no value is how curl is told to drop a header. */
    if (value)
        snprintf(line, sizeof(line), "%s: %s", name, value);
    else
        snprintf(line, sizeof(line), "%s:", name);
    l = curl.slist_append(req->headers, line);
    if (!l)
        return -ENOMEM;
    req->headers = l;
    return 0;
}

static int validate(const struct http_request_options *o, bool *post)
{
    if (!o->url || (strncasecmp(o->url, "http://", 7) != 0 && strncasecmp(o->url, "https://", 8)))
        return -EINVAL;
    if (o->body_len > 0 && !o->body)
        return -EINVAL;
    if (o->content_type && !header_value_valid(o->content_type))
        return -EINVAL;
    if (o->accept && !header_value_valid(o->accept))
        return -EINVAL;
    if (!o->method)
        *post = o->body != NULL;
    else if (strcmp(o->method, "POST") == 0)
        *post = true;
    else if (strcmp(o->method, "GET") == 0 && !o->body)
        *post = false;
    else
        return -EINVAL;
    return 0;
}

#define SETOPT(easy, opt, val)                                                                     \
    do {                                                                                           \
        if (curl.easy_setopt(easy, opt, val) != CURLE_OK)                                          \
            goto fail_curl;                                                                        \
    } while (0)

static int configure(struct http_request *req, const struct http_request_options *o, bool post)
{
    CURL *e = req->easy;
    uint32_t timeout = o->timeout_ms ? o->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    uint32_t connect_timeout = o->connect_timeout_ms ? o->connect_timeout_ms
                               : timeout < HTTP_DEFAULT_CONNECT_TIMEOUT_MS
                                   ? timeout
                                   : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    int r;

    /* No Expect: 100-continue round trip, whatever the body size. */
    if ((o->content_type && (r = add_header(req, "Content-Type", o->content_type)) < 0) ||
        (o->accept && (r = add_header(req, "Accept", o->accept)) < 0) ||
        (r = add_header(req, "Expect", NULL)) < 0)
        return r;

    SETOPT(e, CURLOPT_URL, o->url);
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    SETOPT(e, CURLOPT_HTTPHEADER, req->headers);
    SETOPT(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout);
    SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->response_max);
    SETOPT(e, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(e, CURLOPT_WRITEDATA, req);
    SETOPT(e, CURLOPT_PRIVATE, req);
    SETOPT(e, CURLOPT_ERRORBUFFER, req->errbuf);
    if (o->ca_file)
        SETOPT(e, CURLOPT_CAINFO, o->ca_file);
    if (o->fresh_connection) {
        SETOPT(e, CURLOPT_FRESH_CONNECT, 1L);
        SETOPT(e, CURLOPT_FORBID_REUSE, 1L);
    }
    if (o->tls_insecure) {
        SETOPT(e, CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (post) {
        SETOPT(e, CURLOPT_POST, 1L);
        SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        /* Not COPYPOSTFIELDS: curl's copy would outlive us unwiped. */
        SETOPT(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    } else {
        SETOPT(e, CURLOPT_HTTPGET, 1L);
    }
    return 0;
fail_curl:
    return -EIO;
}

int http_request_start(struct http_client *c, const struct http_request_options *opts,
                       http_done_fn cb, void *userdata, struct http_request **out)
{
    struct http_request *req;
    bool post = false;
    int r;

    if (out)
        *out = NULL;
    if (!c || !opts || !cb)
        return -EINVAL;
    if (c->closing)
        return -ESHUTDOWN;
    r = validate(opts, &post);
    if (r < 0)
        return r;

    req = calloc(1, sizeof(*req));
    if (!req)
        return -ENOMEM;
    req->client = c;
    req->cb = cb;
    req->userdata = userdata;
    req->response_max =
        opts->max_response_bytes ? opts->max_response_bytes : HTTP_DEFAULT_MAX_RESPONSE_BYTES;
    if (opts->body) {
        req->body = malloc(opts->body_len + 1);
        if (!req->body) {
            r = -ENOMEM;
            goto fail;
        }
        memcpy(req->body, opts->body, opts->body_len);
        req->body[opts->body_len] = '\0';
        req->body_len = opts->body_len;
    }
    r = client_start_curl(c, req->errbuf, sizeof(req->errbuf));
    if (r == -ELIBACC) {
        /* Not an error of the call: the request fails as a network
         * error would, from the loop, and the next one tries again. */
        req->early_result = r;
        uv_timer_start(&c->failed, on_fail_timer, 0, 0);
        goto started;
    }
    if (r < 0)
        goto fail;
    req->easy = curl.easy_init();
    if (!req->easy) {
        r = -ENOMEM;
        goto fail;
    }
    r = configure(req, opts, post);
    if (r < 0)
        goto fail;
    if (curl.multi_add_handle(c->multi, req->easy) != CURLM_OK) {
        r = -EIO;
        goto fail;
    }
started:
    req->next = c->requests;
    if (req->next)
        req->next->prev = req;
    c->requests = req;
    c->pending++;
    if (out)
        *out = req;
    return 0;
fail:
    request_free(req);
    return r;
}

void http_request_cancel(struct http_request *req)
{
    struct http_client *c;

    if (!req)
        return;
    c = req->client;
    if (req->easy)
        curl.multi_remove_handle(c->multi, req->easy);
    request_unlink(req);
    request_free(req);
}
