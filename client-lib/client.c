/* libvoltclient core: lifecycle, the broker connection, I/O and timers.
 *
 * The core owns one non-blocking Unix socket at a time and never blocks or
 * sleeps; whoever drives it (your loop, an adapter, or blocking.c) watches
 * volt_client_fd() and calls volt_client_process(). Everything that happens
 * on the socket is a small state machine:
 *
 *   IDLE --connect--> CONNECTING --writable--> HELLO --welcome--> SESSION
 *     ^                    |                     |                   |
 *     |                    +------ failure / timeout / EOF ----------+
 *     |                                    |
 *     +---- no retry (reconnect off, ------+----> BACKOFF --timer--> connect
 *           version mismatch, disconnect)
 *
 * `hello` is queued as soon as the socket exists, and requests made before
 * the welcome are queued behind it (the broker reads in order), so a
 * program can connect and send at once. Handlers and subscriptions are
 * (re)announced at every welcome.
 *
 * Output is one buffer written eagerly: an op tries send() at once and only
 * waits for writability when the kernel buffer is full. The exception is
 * an op made by a callback while the frames of one read are dispatched
 * (typically the next request, sent from a result callback): those are
 * only queued, and volt_client_process() sends them all with one send()
 * once the batch is dispatched, before it returns. Output is never left
 * queued past that, and volt_client_events() reports VOLT_EV_WRITE
 * whenever some is (a blocking call made inside a callback polls for it).
 * A write error in the middle of an API call is not handled there (that
 * would run callbacks inside the caller's call); it is parked in
 * `pending_error` and handled by the next volt_client_process(), which the
 * timer asks for at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client-internal.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/paths.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define DEFAULT_RECONNECT_MIN_MS   100u
#define DEFAULT_RECONNECT_MAX_MS   5000u
#define DEFAULT_COMMAND_TIMEOUT_MS 30000u
#define DEFAULT_GRACE_MS           1000u
#define DEFAULT_LOCAL_TIMEOUT_MS   10000u
#define DEFAULT_MAX_OUTPUT         ((size_t)64 * 1024 * 1024)
#define READ_CHUNK                 65536u
#define READ_ROUNDS                4

int64_t volt__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void volt__set_error(volt_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
}

void volt__emit_error(volt_client *c, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->on_error && volt__alive(c))
        c->on_error(c, code, msg, c->on_error_data);
}

/* ------------------------------------------------------------------ */
/* Options and lifecycle                                               */
/* ------------------------------------------------------------------ */

static void options_defaults(struct volt_options *o)
{
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    o->reconnect = 1;
    o->reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    o->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
    o->max_frame = PROTO_DEFAULT_MAX_FRAME;
    o->command_timeout_ms = 0; /* the broker's commandTimeout */
    o->timeout_grace_ms = DEFAULT_GRACE_MS;
    o->local_timeout_ms = DEFAULT_LOCAL_TIMEOUT_MS;
    o->max_output_bytes = DEFAULT_MAX_OUTPUT;
    o->wait_upstream = 1;
}

/* The 1.0 struct ends with wait_upstream. */
#define OPTIONS_SIZE_1_0 (offsetof(struct volt_options, wait_upstream) + sizeof(int))

void volt_options_init_size(struct volt_options *opts, size_t size)
{
    struct volt_options d;
    options_defaults(&d);
    /* A newer program's struct is longer: its extra fields are zeroed, a
     * later library fills them. An older one's is shorter: only what fits. */
    memset(opts, 0, size);
    memcpy(opts, &d, size < sizeof d ? size : sizeof d);
    opts->size = size;
}

/* The caller's options over the defaults; false when they are unusable. */
static bool options_take(struct volt_options *o, const struct volt_options *in)
{
    options_defaults(o);
    if (!in)
        return true;
    if (in->size < OPTIONS_SIZE_1_0)
        return false; /* not filled by volt_options_init() */
    memcpy(o, in, in->size < sizeof *o ? in->size : sizeof *o);
    o->size = sizeof *o;
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!o->reconnect_min_ms)
        o->reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    if (!o->reconnect_max_ms)
        o->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
    if (o->reconnect_max_ms < o->reconnect_min_ms)
        return false;
    if (!o->max_frame)
        o->max_frame = PROTO_DEFAULT_MAX_FRAME;
    if (o->max_frame > PROTO_HARD_MAX_FRAME)
        o->max_frame = PROTO_HARD_MAX_FRAME;
    if (!o->local_timeout_ms)
        o->local_timeout_ms = DEFAULT_LOCAL_TIMEOUT_MS;
    if (!o->max_output_bytes)
        o->max_output_bytes = DEFAULT_MAX_OUTPUT;
    return true;
}

char *volt_default_socket_path(void)
{
    char path[PATH_MAX];
    if (proto_client_socket_path(path, sizeof(path)) < 0)
        return NULL;
    return strdup(path);
}

static struct proto_reader *new_reader(const volt_client *c)
{
    struct proto_limits limits;
    proto_limits_default(&limits);
    limits.max_frame = c->opts.max_frame;
    return proto_reader_new(&limits);
}

static struct volt__hub *hub_new(int wake_fd)
{
    struct volt__hub *hub = calloc(1, sizeof *hub);
    if (!hub)
        return NULL;
    if (pthread_mutex_init(&hub->lock, NULL) != 0) {
        free(hub);
        return NULL;
    }
    hub->refs = 1;
    hub->wake_fd = wake_fd;
    return hub;
}

void volt__hub_unref(struct volt__hub *hub)
{
    pthread_mutex_lock(&hub->lock);
    bool last = --hub->refs == 0;
    pthread_mutex_unlock(&hub->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&hub->lock);
    free(hub);
}

volt_client *volt_client_new(const struct volt_options *opts)
{
    volt_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (!options_take(&c->opts, opts)) {
        free(c);
        return NULL;
    }
    const char *path = c->opts.socket_path, *name = c->opts.name;
    c->opts.socket_path = NULL;
    c->opts.name = NULL;
    c->fd = -1;
    c->hook_fd = -1;
    c->hook_timer = -1;
    c->next_id = 1;
    c->next_sub_id = 1;
    c->send_max_frame = PROTO_DEFAULT_MAX_FRAME;
    c->conn_deadline = VOLT__NO_DEADLINE;
    c->backoff_deadline = VOLT__NO_DEADLINE;
    volt__reqs_init(&c->reqs);
    volt__outq_init(&c->out);
    proto_buf_init(&c->jbuf);
    proto_json_doc_init(&c->jdoc);
    c->rng = (uint64_t)volt__now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;

    /* The default path is taken once: a client does not wander between
     * brokers as sockets come and go. */
    int rc = 0;
    if (path)
        rc = strlen(path) < sizeof c->socket_path ? 0 : -1;
    if (path && rc == 0)
        memcpy(c->socket_path, path, strlen(path) + 1);
    else if (!path)
        rc = proto_client_socket_path(c->socket_path, sizeof c->socket_path);
    char *name_copy = strdup(name ? name : program_invocation_short_name);
    c->opts.name = name_copy;
    c->opts.socket_path = c->socket_path;
    c->reader = new_reader(c);
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd >= 0)
        c->hub = hub_new(c->wake_fd);
    if (rc < 0 || !c->socket_path[0] || !c->opts.name || !c->reader || !c->hub)
        goto fail;
    return c;

fail:
    if (c->hub)
        volt__hub_unref(c->hub);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    proto_reader_free(c->reader);
    free(name_copy);
    free(c);
    return NULL;
}

static void free_retired(volt_client *c)
{
    while (c->n_retired > 0)
        proto_reader_free(c->retired[--c->n_retired]);
}

static void close_socket(volt_client *c)
{
    if (c->fd < 0)
        return;
    if ((c->flags & VOLT__ATTACHED) && c->hook_fd >= 0) {
        c->hooks.close_fd(c->hooks.data, c->hook_fd);
        c->hook_fd = -1;
        c->hook_read = c->hook_write = false;
    }
    close(c->fd);
    c->fd = -1;
    volt__outq_reset(&c->out);
    c->pending_error = 0;
}

static void free_now(volt_client *c)
{
    c->flags |= VOLT__FREEING;
    c->busy++; /* nothing below may recurse into a free */
    volt__detach_calls(c);
    volt__fail_all(c, VOLT_E_BROKER_GONE, "client freed");
    if (c->cw.active)
        volt__connect_complete(c, VOLT_E_BROKER_GONE, "client freed");
    close_socket(c);
    if (c->flags & VOLT__ATTACHED)
        c->hooks.cleanup(c->hooks.data);
    /* Answers queued by workers are dropped with their calls (detached:
     * the broker answers them HandlerError); from now on a worker's answer
     * sees client_gone and never touches the eventfd again. */
    volt__drain_answers(c);
    pthread_mutex_lock(&c->hub->lock);
    c->hub->client_gone = true;
    c->hub->wake_fd = -1;
    pthread_mutex_unlock(&c->hub->lock);
    volt__hub_unref(c->hub);
    close(c->wake_fd);
    volt__free_tables(c);
    volt__reqs_destroy(&c->reqs);
    proto_reader_free(c->reader);
    free_retired(c);
    volt__outq_free(&c->out);
    proto_buf_free(&c->jbuf);
    proto_json_doc_free(&c->jdoc);
    free((char *)c->opts.name);
    free(c);
}

void volt_client_free(volt_client *c)
{
    if (!c || (c->flags & VOLT__FREEING))
        return;
    if (c->busy > 0) {
        /* Deferred: the outermost volt__leave() frees. Calls are detached
         * now so an answer given in the meantime is refused, not sent. */
        c->flags |= VOLT__FREEING;
        volt__detach_calls(c);
        return;
    }
    free_now(c);
}

void volt__enter(volt_client *c)
{
    c->busy++;
}

static void sync_hooks(volt_client *c);

int volt__leave(volt_client *c, int rc)
{
    c->busy--;
    if (c->busy == 0 && c->n_retired)
        free_retired(c);
    if (c->flags & VOLT__FREEING) {
        if (c->busy == 0)
            free_now(c);
        return rc;
    }
    sync_hooks(c);
    return rc;
}

/* ------------------------------------------------------------------ */
/* State accessors                                                     */
/* ------------------------------------------------------------------ */

bool volt__has_socket(const volt_client *c)
{
    return c->state == VOLT__CONNECTING || c->state == VOLT__HELLO || c->state == VOLT__SESSION;
}

int volt_client_is_connected(const volt_client *c)
{
    return c->state == VOLT__SESSION && volt__alive(c);
}

int volt_client_is_ready(const volt_client *c)
{
    return volt_client_is_connected(c) && c->ready;
}

const char *volt_client_upstream_state(const volt_client *c)
{
    return c->state == VOLT__SESSION ? c->upstream_state : "";
}

const char *volt_client_broker_name(const volt_client *c)
{
    return c->state == VOLT__SESSION ? c->broker_name : "";
}

const char *volt_client_upstream_reason(const volt_client *c)
{
    return c->state == VOLT__SESSION ? c->upstream_reason : "";
}

int volt_client_upstream_error(const volt_client *c, const char **message)
{
    int code = c->state == VOLT__SESSION ? c->upstream_code : 0;
    if (message)
        *message = code ? c->upstream_message : "";
    return code;
}

const char *volt_client_team_cluster_id(const volt_client *c)
{
    /* Kept across a lost session: it is the broker's configuration, and a
     * program asking between two sessions wants the last known value. */
    return c->team_cluster_id;
}

uint32_t volt_client_command_timeout_ms(const volt_client *c)
{
    return c->broker_timeout_ms;
}

uint32_t volt_client_max_timeout_ms(const volt_client *c)
{
    return c->broker_max_timeout_ms;
}

const char *volt_client_socket_path(const volt_client *c)
{
    return c->socket_path;
}

int volt_client_wakeup_fd(const volt_client *c)
{
    return c->wake_fd;
}

const char *volt_client_errstr(const volt_client *c)
{
    return c->errstr;
}

size_t volt__out_pending(const volt_client *c)
{
    return volt__outq_pending(&c->out);
}

int volt_client_fd(const volt_client *c)
{
    return volt__has_socket(c) ? c->fd : -1;
}

int volt_client_events(const volt_client *c)
{
    if (!volt__has_socket(c))
        return 0;
    if (c->state == VOLT__CONNECTING)
        return VOLT_EV_WRITE;
    return VOLT_EV_READ | (volt__out_pending(c) ? VOLT_EV_WRITE : 0);
}

int64_t volt__next_deadline(const volt_client *c)
{
    if (c->flags & VOLT__FREEING)
        return VOLT__NO_DEADLINE;
    if (c->pending_error)
        return 0;
    int64_t d = volt__reqs_next_deadline(&c->reqs);
    if ((c->state == VOLT__CONNECTING || c->state == VOLT__HELLO) && c->conn_deadline < d)
        d = c->conn_deadline;
    if (c->state == VOLT__BACKOFF && c->backoff_deadline < d)
        d = c->backoff_deadline;
    if (c->cw.active && c->cw.recheck)
        return 0;
    if (c->cw.active && c->cw.deadline < d)
        d = c->cw.deadline;
    return d;
}

int64_t volt_client_timeout_ms(const volt_client *c)
{
    int64_t d = volt__next_deadline(c);
    if (d == VOLT__NO_DEADLINE)
        return -1;
    int64_t left = d - volt__now_ms();
    return left > 0 ? left : 0;
}

/* ------------------------------------------------------------------ */
/* Loop hooks                                                          */
/* ------------------------------------------------------------------ */

static void sync_hooks(volt_client *c)
{
    if (!(c->flags & VOLT__ATTACHED))
        return;
    int fd = volt_client_fd(c);
    if (c->hook_fd != fd) {
        if (c->hook_fd >= 0)
            c->hooks.close_fd(c->hooks.data, c->hook_fd);
        c->hook_fd = fd;
        c->hook_read = c->hook_write = false;
    }
    if (fd >= 0) {
        int ev = volt_client_events(c);
        bool want_read = (ev & VOLT_EV_READ) != 0;
        bool want_write = (ev & VOLT_EV_WRITE) != 0;
        if (want_read != c->hook_read) {
            c->hook_read = want_read;
            (want_read ? c->hooks.add_read : c->hooks.del_read)(c->hooks.data, fd);
        }
        if (want_write != c->hook_write) {
            c->hook_write = want_write;
            (want_write ? c->hooks.add_write : c->hooks.del_write)(c->hooks.data, fd);
        }
    }
    int64_t d = volt__next_deadline(c);
    if (d == VOLT__NO_DEADLINE) {
        if (c->hook_timer != -1) {
            c->hook_timer = -1;
            c->hooks.set_timer(c->hooks.data, -1);
        }
    } else if (d != c->hook_timer) {
        c->hook_timer = d;
        int64_t left = d - volt__now_ms();
        c->hooks.set_timer(c->hooks.data, left > 0 ? left : 0);
    }
}

/* The size of the 1.0 struct: every hook up to cleanup. */
#define HOOKS_SIZE_1_0 (offsetof(struct volt_loop_hooks, cleanup) + sizeof(void (*)(void *)))

int volt_client_attach(volt_client *c, const struct volt_loop_hooks *hooks)
{
    if (!hooks || hooks->size < HOOKS_SIZE_1_0)
        return VOLT_E_BAD_REQUEST;
    /* A newer caller's struct may be longer: take what this version knows;
     * an older one's shorter (in later versions): the rest stays NULL. */
    struct volt_loop_hooks h;
    memset(&h, 0, sizeof h);
    memcpy(&h, hooks, hooks->size < sizeof h ? hooks->size : sizeof h);
    if (!h.add_read || !h.del_read || !h.add_write || !h.del_write || !h.close_fd || !h.set_timer ||
        !h.cleanup)
        return VOLT_E_BAD_REQUEST;
    if (c->flags & (VOLT__ATTACHED | VOLT__FREEING))
        return VOLT_E_BAD_REQUEST;
    c->hooks = h;
    c->flags |= VOLT__ATTACHED;
    c->hook_fd = -1;
    c->hook_timer = -1;
    sync_hooks(c);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Connection                                                          */
/* ------------------------------------------------------------------ */

static uint32_t next_random(volt_client *c)
{
    /* xorshift64*: jitter only, nothing secret. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (uint32_t)((c->rng * UINT64_C(2685821657736338717)) >> 32);
}

/* Exponential backoff with jitter in [delay/2, delay], so a broker restart
 * is not met by every client at the same millisecond. */
static uint32_t backoff_delay(volt_client *c)
{
    uint64_t delay = c->opts.reconnect_min_ms;
    for (uint32_t i = 0; i < c->backoff_attempt && delay < c->opts.reconnect_max_ms; i++)
        delay *= 2;
    if (delay > c->opts.reconnect_max_ms)
        delay = c->opts.reconnect_max_ms;
    if (c->backoff_attempt < 64)
        c->backoff_attempt++;
    uint64_t half = delay / 2;
    return (uint32_t)(half + next_random(c) % (delay - half + 1));
}

/* After a failed attempt or a lost session: schedule a retry, or stop.
 * Returns true when a retry is scheduled. */
static bool schedule_retry(volt_client *c)
{
    if (c->want_connected && c->opts.reconnect && !(c->flags & VOLT__FATAL) && volt__alive(c)) {
        c->state = VOLT__BACKOFF;
        c->backoff_deadline = volt__now_ms() + backoff_delay(c);
        return true;
    }
    c->state = VOLT__IDLE;
    c->want_connected = false;
    return false;
}

static int queue_hello(volt_client *c)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_HELLO;
    m.fields = PROTO_F_MIN_VERSION | PROTO_F_MAX_VERSION | PROTO_F_NAME;
    m.min_version = PROTO_VERSION_MIN;
    m.max_version = PROTO_VERSION_MAX;
    m.name = proto_span_str(c->opts.name, (uint32_t)strlen(c->opts.name));
    return volt__send(c, &m);
}

/* Frames of the old reader may still be in a callback's hands: free it
 * when the library has unwound, not now. */
static void retire_reader(volt_client *c, struct proto_reader *r)
{
    if (c->busy == 0) {
        proto_reader_free(r);
        return;
    }
    if (c->n_retired == (int)(sizeof c->retired / sizeof c->retired[0]))
        proto_reader_free(c->retired[--c->n_retired]); /* reconnect storm inside one callback */
    c->retired[c->n_retired++] = r;
}

/* Nothing listens at the path (no file, or a socket nobody accepts on):
 * the words of the issue, since "connection lost" sent people looking in
 * the wrong place. */
static void set_no_broker(volt_client *c)
{
    volt__set_error(c, "no broker at %s: is volt-broker running? set VOLT_BROKER_SOCKET",
                    c->socket_path);
}

/* Opens a socket and starts connecting. 0 when under way (or a retry is
 * scheduled), VOLT_E_BROKER_GONE when no attempt will follow. Runs no
 * callbacks. */
int volt__start_connect(volt_client *c)
{
    const char *what = "socket";
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, c->socket_path, strlen(c->socket_path) + 1);
    bool in_progress = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        /* EAGAIN on a Unix socket means the listen backlog is full: the
         * connect did not happen, retry later like any other failure. */
        if (errno != EINPROGRESS && errno != EINTR) {
            what = "connect";
            goto fail;
        }
        in_progress = true;
    }

    struct proto_reader *reader = new_reader(c);
    if (!reader) {
        errno = ENOMEM;
        what = "read buffer";
        goto fail;
    }
    retire_reader(c, c->reader);
    c->reader = reader;
    c->fd = fd;
    c->conn_gen++;
    volt__outq_reset(&c->out);
    c->pending_error = 0;
    c->send_max_frame = PROTO_DEFAULT_MAX_FRAME;
    c->ready = false;
    c->upstream_state[0] = '\0';
    c->upstream_reason[0] = '\0';
    c->broker_name[0] = '\0';
    c->upstream_code = 0;
    c->upstream_message[0] = '\0';
    c->connected_seen = false;
    c->conn_deadline = volt__now_ms() + c->opts.connect_timeout_ms;
    c->state = in_progress ? VOLT__CONNECTING : VOLT__HELLO;
    int rc = queue_hello(c);
    if (rc < 0) {
        close_socket(c);
        volt__set_error(c, "cannot queue hello: %s", volt_strerror(rc));
        schedule_retry(c);
        return c->state == VOLT__BACKOFF ? 0 : VOLT_E_BROKER_GONE;
    }
    return 0;

fail:
    if (fd >= 0 && (errno == ENOENT || errno == ECONNREFUSED))
        set_no_broker(c);
    else
        volt__set_error(c, "%s %s: %s", what, c->socket_path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return schedule_retry(c) ? 0 : VOLT_E_BROKER_GONE;
}

/* The socket is gone (EOF, error, fatal frame, timeout, disconnect()):
 * drop it, fail what depended on it, tell the user, maybe schedule a retry.
 * Runs callbacks; the caller re-checks volt__alive() afterwards. */
void volt__connection_lost(volt_client *c, int code, const char *why)
{
    if (!volt__has_socket(c))
        return;
    bool was_session = c->state == VOLT__SESSION;
    bool was_ready = was_session && c->ready;
    volt__set_error(c, "%s", why);
    close_socket(c);
    c->ready = false;
    c->conn_deadline = VOLT__NO_DEADLINE;
    volt__detach_calls(c);
    bool retry = schedule_retry(c);

    volt__fail_all(c, code, why);
    if (!volt__alive(c))
        return;
    if (was_ready && c->on_disconnected) {
        c->on_disconnected(c, "broker gone", c->on_disconnected_data);
        if (!volt__alive(c))
            return;
    }
    if (was_session && c->on_broker) {
        c->on_broker(c, 0, c->on_broker_data);
        if (!volt__alive(c))
            return;
    }
    /* A failed attempt that will be retried is not news, nor is a
     * disconnect the program asked for; a lost session or giving up is. */
    if ((was_session || !retry) && !c->quiet_loss)
        volt__emit_error(c, code, "%s", why);
    if (!retry && volt__alive(c) && c->cw.active)
        volt__connect_complete(c, (c->flags & VOLT__FATAL) ? VOLT_E_VERSION_MISMATCH : code, why);
}

/* volt_client_connect() inside the library. */
static int connect_start(volt_client *c)
{
    if (volt__has_socket(c) || (c->state == VOLT__BACKOFF && c->want_connected))
        return 0;
    c->want_connected = true;
    c->flags &= ~(unsigned)VOLT__FATAL;
    c->backoff_attempt = 0;
    c->errstr[0] = '\0';
    return volt__start_connect(c);
}

int volt_client_connect(volt_client *c)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    return volt__leave(c, connect_start(c));
}

/* ------------------------------------------------------------------ */
/* Connecting that waits (the seed's `await connect()`)                */
/* ------------------------------------------------------------------ */

/* The waiter completes once, from the client's loop:
 *   - at the welcome, when it waits for the broker only;
 *   - when the upstream is ready: the `connected` event of this session
 *     (the broker sends one right after a welcome that says ready);
 *   - early, when the upstream's state is "failed" (final: e.g. a refused
 *     enrollment token), with the upstream's own code and message;
 *   - at its deadline: with the upstream's last error when it reported
 *     one (SocketRegistrationFailed and the server's reason beat a bare
 *     Timeout: they say what to fix), else Timeout; without a broker
 *     session, BrokerGone ("no broker at ...") or Timeout (connected, no
 *     welcome);
 *   - when the broker connection is given up, the client disconnected or
 *     freed: BrokerGone.
 * A broker that goes away meanwhile is not an end: the client reconnects
 * and the waiter keeps waiting for the next session's upstream. */

void volt__connect_complete(volt_client *c, int code, const char *message)
{
    if (!c->cw.active)
        return;
    volt_connect_cb *cb = c->cw.cb;
    void *privdata = c->cw.privdata;
    memset(&c->cw, 0, sizeof c->cw);
    if (!message)
        message = "";
    if (code && message != c->errstr)
        volt__set_error(c, "%s", message);
    cb(c, code, code ? c->errstr : "", privdata);
}

void volt__connect_check(volt_client *c)
{
    if (!c->cw.active || !volt__alive(c))
        return;
    c->cw.recheck = false;
    char msg[sizeof c->errstr];
    if (c->state == VOLT__SESSION) {
        if (!c->cw.upstream || (c->ready && c->connected_seen)) {
            volt__connect_complete(c, 0, NULL);
            return;
        }
        if (strcmp(c->upstream_state, "failed") == 0) {
            int code = c->upstream_code ? c->upstream_code : VOLT_E_SOCKET_CONNECTION_FAILED;
            snprintf(msg, sizeof msg, "upstream failed: %.500s",
                     c->upstream_code        ? c->upstream_message
                     : c->upstream_reason[0] ? c->upstream_reason
                                             : "no reason given");
            volt__connect_complete(c, code, msg);
            return;
        }
    }
    if (volt__now_ms() < c->cw.deadline)
        return;
    int code;
    switch (c->state) {
    case VOLT__SESSION:
        code = c->upstream_code ? c->upstream_code : VOLT_E_TIMEOUT;
        if (c->upstream_code)
            snprintf(msg, sizeof msg, "upstream not ready within %d ms: %.500s", c->cw.timeout_ms,
                     c->upstream_message);
        else
            snprintf(msg, sizeof msg, "upstream not ready within %d ms (state %s%s%.300s)",
                     c->cw.timeout_ms, c->upstream_state, c->upstream_reason[0] ? ": " : "",
                     c->upstream_reason);
        break;
    case VOLT__CONNECTING:
    case VOLT__HELLO:
        code = VOLT_E_TIMEOUT;
        snprintf(msg, sizeof msg, "no welcome from the broker at %s within %d ms", c->socket_path,
                 c->cw.timeout_ms);
        break;
    default:
        /* Between attempts: errstr holds why the last one failed. */
        code = VOLT_E_BROKER_GONE;
        snprintf(msg, sizeof msg, "%s", c->errstr[0] ? c->errstr : "not connected to the broker");
        break;
    }
    volt__connect_complete(c, code, msg);
}

/* Starts a waiter (and the connection, if needed). */
static int waiter_start(volt_client *c, int timeout_ms, bool upstream, volt_connect_cb *cb,
                        void *privdata)
{
    if (!cb || c->cw.active) {
        volt__set_error(c, "%s", cb ? "a connect is already waiting" : "no callback given");
        return VOLT_E_BAD_REQUEST;
    }
    int rc = connect_start(c);
    if (rc < 0)
        return rc;
    c->cw.active = true;
    c->cw.upstream = upstream;
    c->cw.timeout_ms = timeout_ms;
    c->cw.deadline = timeout_ms < 0 ? VOLT__NO_DEADLINE : volt__now_ms() + timeout_ms;
    c->cw.cb = cb;
    c->cw.privdata = privdata;
    /* The condition may hold already (connected and ready): checked from
     * the loop, since a callback never runs inside the call that asked. */
    c->cw.recheck = true;
    return 0;
}

int volt_client_connect_async(volt_client *c, int timeout_ms, volt_connect_cb *cb, void *privdata)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    return volt__leave(c, waiter_start(c, timeout_ms, c->opts.wait_upstream, cb, privdata));
}

struct blocking_wait {
    bool done;
    int code;
};

static void blocking_done(volt_client *c, int code, const char *message, void *privdata)
{
    struct blocking_wait *w = privdata;
    (void)c;
    (void)message;
    w->done = true;
    w->code = code;
}

int volt__connect_wait(volt_client *c, int timeout_ms, bool upstream)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    struct blocking_wait w = {false, 0};
    int rc = waiter_start(c, timeout_ms, upstream, blocking_done, &w);
    if (rc == 0) {
        /* The waiter has the deadline; this only ends early when the
         * client is freed under us (then the free completes it). */
        rc = volt__wait(c, &w.done, -1);
        if (w.done)
            rc = w.code;
    }
    return volt__leave(c, rc);
}

void volt_client_disconnect(volt_client *c)
{
    if (!volt__alive(c))
        return;
    volt__enter(c);
    c->want_connected = false;
    if (c->state == VOLT__BACKOFF)
        c->state = VOLT__IDLE;
    if (c->cw.active)
        volt__connect_complete(c, VOLT_E_BROKER_GONE, "disconnected by the client");
    c->quiet_loss = true;
    volt__connection_lost(c, VOLT_E_BROKER_GONE, "disconnected by the client");
    c->quiet_loss = false;
    volt__leave(c, 0);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

int volt__flush(volt_client *c)
{
    struct iovec iov[2];
    int n_iov;

    while ((n_iov = volt__outq_peek(&c->out, iov)) > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            volt__outq_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        c->pending_error = VOLT_E_BROKER_GONE;
        snprintf(c->pending_why, sizeof c->pending_why, "write to broker: %s",
                 n < 0 ? strerror(errno) : "no progress");
        return VOLT_E_BROKER_GONE;
    }
    return 0;
}

int volt__send(volt_client *c, const struct proto_msg *m)
{
    if (!volt__alive(c) || !volt__has_socket(c)) {
        volt__set_error(c, "not connected to the broker");
        return VOLT_E_BROKER_GONE;
    }
    struct proto_buf *out = volt__outq_tail(&c->out);
    size_t before = out->len;
    int rc = proto_msg_encode(out, m, c->send_max_frame);
    if (rc < 0) {
        out->len = before;
        if (rc == PROTO_E_FRAME_TOO_LARGE)
            volt__set_error(c, "frame exceeds the broker's max_frame of %u bytes",
                            c->send_max_frame);
        return rc;
    }
    if (volt__outq_pending(&c->out) > c->opts.max_output_bytes) {
        out->len = before;
        volt__set_error(c, "more than %zu bytes queued for the broker", c->opts.max_output_bytes);
        return VOLT_E_LIMIT_EXCEEDED;
    }
    if (c->state != VOLT__CONNECTING && !c->pending_error && !c->dispatching)
        volt__flush(c);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Input and processing                                                */
/* ------------------------------------------------------------------ */

static void dispatch_frames(volt_client *c)
{
    uint64_t gen = c->conn_gen;
    for (;;) {
        struct proto_span frame;
        int rc = proto_reader_next(c->reader, &frame);
        if (rc == 0)
            return;
        if (rc < 0) {
            /* The broker never sends a frame it cannot read: its stream is
             * not to be trusted any more, so the connection ends (and the
             * client reconnects), as in every client library. */
            char why[200];
            snprintf(why, sizeof why, "bad frame from broker: %s", proto_reader_error(c->reader));
            volt__connection_lost(c, rc, why);
            return;
        } else {
            volt__dispatch(c, &frame);
        }
        if (!volt__alive(c) || gen != c->conn_gen || !volt__has_socket(c))
            return;
    }
}

static void read_input(volt_client *c)
{
    uint64_t gen = c->conn_gen;
    for (int round = 0; round < READ_ROUNDS; round++) {
        void *space;
        size_t len;
        int rc = proto_reader_space(c->reader, READ_CHUNK, &space, &len);
        if (rc < 0) {
            volt__connection_lost(c, rc, "out of memory for the read buffer");
            return;
        }
        ssize_t n = recv(c->fd, space, len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            char why[160];
            size_t part = proto_reader_pending(c->reader);
            if (n == 0 && part) {
                /* A truncated frame: bad input, as in every client library. */
                snprintf(why, sizeof why,
                         "broker closed the connection in the middle of a frame (%zu bytes of it)",
                         part);
                volt__connection_lost(c, VOLT_E_BAD_FRAME, why);
                return;
            }
            if (n == 0)
                snprintf(why, sizeof why, "broker closed the connection");
            else
                snprintf(why, sizeof why, "read from broker: %s", strerror(errno));
            volt__connection_lost(c, VOLT_E_BROKER_GONE, why);
            return;
        }
        proto_reader_commit(c->reader, (size_t)n);
        dispatch_frames(c);
        if (!volt__alive(c) || gen != c->conn_gen || !volt__has_socket(c))
            return;
        if ((size_t)n < len)
            return; /* drained */
    }
}

static void finish_connect(volt_client *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        char why[200];
        if (err == ENOENT || err == ECONNREFUSED)
            snprintf(why, sizeof why,
                     "no broker at %s: is volt-broker running? set VOLT_BROKER_SOCKET",
                     c->socket_path);
        else
            snprintf(why, sizeof why, "connect %s: %s", c->socket_path, strerror(err));
        volt__connection_lost(c, VOLT_E_BROKER_GONE, why);
        return;
    }
    c->state = VOLT__HELLO;
    volt__flush(c);
}

static void run_timers(volt_client *c)
{
    int64_t now = volt__now_ms();
    if ((c->state == VOLT__CONNECTING || c->state == VOLT__HELLO) && now >= c->conn_deadline) {
        char why[160];
        snprintf(why, sizeof why, "no welcome from the broker within %u ms",
                 c->opts.connect_timeout_ms);
        volt__connection_lost(c, VOLT_E_TIMEOUT, why);
        if (!volt__alive(c))
            return;
    }
    if (c->state == VOLT__BACKOFF && now >= c->backoff_deadline)
        volt__start_connect(c);
    volt__expire(c, now);
    if (volt__alive(c) && c->cw.active && (c->cw.recheck || now >= c->cw.deadline))
        volt__connect_check(c);
}

int volt__process(volt_client *c, int events)
{
    /* A deadline already passed: the one-shot hook timer has fired or is
     * about to; sync_hooks() arms it again if something is still due. */
    if (c->hook_timer != -1 && volt__now_ms() >= c->hook_timer)
        c->hook_timer = -1;
    if (c->pending_error && volt__has_socket(c)) {
        char why[sizeof c->pending_why];
        memcpy(why, c->pending_why, sizeof why);
        volt__connection_lost(c, c->pending_error, why);
    }
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    if (events & VOLT_EV_WAKEUP) {
        uint64_t n;
        (void)!read(c->wake_fd, &n, sizeof n);
    }
    /* Cheap when nothing is queued (one uncontended lock); done on every
     * call so a loop that coalesced the wakeup with other events, or an
     * own loop that does not watch the wakeup fd, still sends them. */
    volt__drain_answers(c);
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    if (c->state == VOLT__CONNECTING && (events & (VOLT_EV_READ | VOLT_EV_WRITE)))
        finish_connect(c);
    if (volt__alive(c) && c->state != VOLT__CONNECTING && volt__has_socket(c) &&
        (events & VOLT_EV_READ)) {
        c->dispatching++;
        read_input(c);
        c->dispatching--;
    }
    /* Writable, or what the callbacks of the batch queued. */
    if (volt__alive(c) && c->state != VOLT__CONNECTING && volt__has_socket(c) &&
        ((events & VOLT_EV_WRITE) || (volt__out_pending(c) && !c->pending_error)))
        volt__flush(c);
    if (volt__alive(c) && c->pending_error && volt__has_socket(c)) {
        char why[sizeof c->pending_why];
        memcpy(why, c->pending_why, sizeof why);
        volt__connection_lost(c, c->pending_error, why);
    }
    if (volt__alive(c))
        run_timers(c);
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    return volt__has_socket(c) ? 0 : VOLT_E_BROKER_GONE;
}

int volt_client_process(volt_client *c, int events)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    /* From a loop, a call without events is the one-shot hook timer firing.
     * A loop's clock may run a little early, so whether or not our deadline
     * has passed, the timer is spent: sync_hooks() arms it again if needed. */
    if (events == 0)
        c->hook_timer = -1;
    events &= VOLT_EV_READ | VOLT_EV_WRITE | VOLT_EV_WAKEUP;
    int rc = volt__process(c, events);
    return volt__leave(c, rc);
}
