/* Internals of libvoltclient shared by its .c files. Not installed.
 *
 * Re-entrancy in one paragraph: every public function that can run a
 * callback brackets its work with volt__enter()/volt__leave(). `busy`
 * counts how deep we are; volt_client_free() called while busy > 0 only
 * sets VOLT__FREEING, and the outermost volt__leave() does the real free.
 * Code that runs a callback re-checks the client afterwards with
 * volt__alive() (not freeing) and, when it walks connection state, that
 * `conn_gen` did not change (the callback may have dropped or replaced the
 * connection, and with it the read buffer).
 */
#ifndef VOLT_CLIENT_INTERNAL_H
#define VOLT_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include "outq.h"
#include "proto/buf.h"
#include "proto/json.h"
#include "proto/msg.h"
#include "proto/reader.h"
#include "reqtable.h"
#include "volt/client.h"

enum volt__state {
    VOLT__IDLE, /* no socket; not trying (never connected, disconnected, or failed for good) */
    VOLT__CONNECTING, /* socket connect in progress (EINPROGRESS) */
    VOLT__HELLO,      /* hello sent, waiting for welcome */
    VOLT__SESSION,    /* welcome received */
    VOLT__BACKOFF,    /* no socket; a retry is scheduled */
};

enum volt__flag {
    VOLT__FREEING = 1u << 0,  /* volt_client_free() was called */
    VOLT__FATAL = 1u << 1,    /* version mismatch: do not reconnect */
    VOLT__ATTACHED = 1u << 2, /* loop hooks attached */
};

/* Request kinds: how a result is turned into a user callback. */
enum volt__kind {
    VOLT__K_RESULT,     /* volt_result_cb (command, acked emit, status, ping) */
    VOLT__K_STRING,     /* volt_string_cb (credential) */
    VOLT__K_INTERNAL,   /* register/subscribe/...: failures go to on_error */
    VOLT__K_SYNC,       /* a blocking caller's wait slot (privdata = struct volt__wait) */
    VOLT__K_SYNC_STRING /* the same, for credentials */
};

enum volt__req_flag {
    VOLT__R_JSON = 1u << 0,           /* fill volt_result.json */
    VOLT__R_BROKER_TIMEOUT = 1u << 1, /* a command on the broker's commandTimeout */
    /* A command (op request): when the broker connection ends it fails
     * with SOCKET_NOT_READY, as in the other client libraries
     * (PROTOCOL.md, "Client libraries"); other requests with BrokerGone. */
    VOLT__R_COMMAND = 1u << 2,
};

/* What the client shares with the calls it delivered and with the threads
 * that answer them: a call outlives its client, and a worker may answer
 * while the client's thread frees it. Reference counted (the client and
 * each call hold one), everything in it under `lock`. */
struct volt__xanswer;
struct volt__hub {
    pthread_mutex_t lock;
    int refs;
    bool client_gone;                  /* the client was freed */
    int wake_fd;                       /* the client's eventfd; -1 once gone */
    struct volt__xanswer *head, *tail; /* answers queued by other threads */
};

struct volt__handler {
    char *command;
    volt_handler_cb *cb;
    void *privdata;
};

struct volt__sub {
    int id;
    enum volt_match match;
    char *type; /* "" for ALL */
    unsigned flags;
    bool dead; /* removed while a dispatch was walking the list */
    volt_message_cb *cb;
    void *privdata;
};

struct volt_call {
    /* NULL once detached. Written by the client's thread only, under the
     * hub's lock; other threads read it under the lock. */
    volt_client *client;
    struct volt__hub *hub; /* fixed for the call's life */
    pthread_t thread;      /* the thread that delivered it */
    struct volt_call *prev, *next;
    uint64_t id;
    uint32_t timeout_ms;
    int refs;               /* the user's answer + a dispatch in progress; under the hub's lock */
    bool answered;          /* under the hub's lock */
    bool abandoned;         /* a worker could not queue its answer (no memory); under the lock */
    const uint8_t *payload; /* into `storage`; NULL when absent */
    uint32_t payload_len;
    char *payload_json;
    char *command; /* into `storage` */
    uint8_t storage[];
};

/* A blocking caller waiting for its request. */
struct volt__wait {
    bool done;
    int code;
    volt_result *result; /* owned copy (K_SYNC) */
    char *string;        /* K_SYNC_STRING */
    unsigned flags;
};

struct volt_client {
    struct volt_options opts; /* the whole current struct; name owned, socket_path = below */
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

    enum volt__state state;
    unsigned flags;
    int busy;
    bool want_connected; /* connect() called, disconnect() not: reconnect when lost */
    int fd;
    uint64_t conn_gen;        /* +1 for every socket */
    int64_t conn_deadline;    /* CONNECTING/HELLO: give up at */
    int64_t backoff_deadline; /* BACKOFF: retry at */
    uint32_t backoff_attempt;
    int pending_error; /* a write failed in an API call: handled in process */
    char pending_why[128];

    struct proto_reader *reader;
    /* Readers replaced while a callback may still hold pointers into them
     * (a reconnect started from a callback); freed by the outermost leave. */
    struct proto_reader *retired[4];
    int n_retired;
    bool quiet_loss;       /* volt_client_disconnect(): the loss is not an error */
    struct volt__outq out; /* bytes for the broker, not yet written */
    int dispatching;       /* > 0 while read frames are dispatched: sends only queue */
    uint32_t send_max_frame;

    uint64_t next_id;
    struct volt__reqs reqs;

    struct volt__handler *handlers;
    size_t n_handlers, cap_handlers;
    struct volt__sub **subs;
    size_t n_subs, cap_subs;
    int next_sub_id;
    int sub_walkers;         /* dispatches walking subs: removal is deferred */
    struct volt_call *calls; /* outstanding calls of this session */

    /* Upstream view of the current session. */
    bool ready;
    char upstream_state[24];
    char upstream_reason[256];
    char broker_name[64];
    char team_cluster_id[256];
    uint32_t broker_timeout_ms;     /* welcome timeout_ms */
    uint32_t broker_max_timeout_ms; /* welcome max_timeout_ms (v2) */
    bool connected_seen;            /* a `connected` event in this session */
    int upstream_code;              /* last upstream error since ready, 0 none */
    char upstream_message[512];

    /* A connect waiting for completion (volt_client_connect_async and the
     * blocking connects built on it). */
    struct {
        bool active;
        bool upstream; /* complete when the upstream is ready, not at welcome */
        bool recheck;  /* check from the loop as soon as possible */
        int64_t deadline;
        int timeout_ms;
        volt_connect_cb *cb;
        void *privdata;
    } cw;

    volt_connected_cb *on_connected;
    void *on_connected_data;
    volt_disconnected_cb *on_disconnected;
    void *on_disconnected_data;
    volt_error_cb *on_error;
    void *on_error_data;
    volt_broker_cb *on_broker;
    void *on_broker_data;

    struct volt_loop_hooks hooks;
    int hook_fd;
    bool hook_read, hook_write;
    int64_t hook_timer; /* absolute deadline armed, or -1 */

    int wake_fd; /* eventfd: stop and answers from other threads */
    atomic_int stop_requested;
    struct volt__hub *hub;

    struct proto_json_doc jdoc; /* scratch for JSON input */
    struct proto_buf jbuf;      /* scratch for JSON->msgpack */
    uint64_t rng;
    char errstr[640];
};

/* The broker's commandTimeout as its welcome said (30 s, the seed's
 * default, from a broker that did not say). */
static inline uint32_t volt__broker_timeout(const volt_client *c)
{
    return c->broker_timeout_ms ? c->broker_timeout_ms : 30000u;
}

/* Monotonic milliseconds. */
int64_t volt__now_ms(void);

static inline bool volt__alive(const volt_client *c)
{
    return !(c->flags & VOLT__FREEING);
}

void volt__enter(volt_client *c);
/* Leaves a public function: syncs the loop hooks and, when this was the
 * outermost entry of a client being freed, frees it. Returns rc. */
int volt__leave(volt_client *c, int rc);

void volt__set_error(volt_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Connection. */
bool volt__has_socket(const volt_client *c);
int volt__start_connect(volt_client *c);
void volt__connection_lost(volt_client *c, int code, const char *why);
/* Encodes and queues one frame, writing eagerly unless `dispatching`
 * (volt__process() then writes the batch). 0, VOLT_E_FRAME_TOO_LARGE,
 * VOLT_E_LIMIT_EXCEEDED, VOLT_E_NOMEM, VOLT_E_BROKER_GONE (no socket). */
int volt__send(volt_client *c, const struct proto_msg *m);
int volt__flush(volt_client *c);
size_t volt__out_pending(const volt_client *c);
int64_t volt__next_deadline(const volt_client *c);
int volt__process(volt_client *c, int events);

/* Requests. Starts one: inserts it and sends m (m->id is set here).
 * On failure nothing is left behind. */
int volt__request(volt_client *c, struct proto_msg *m, int kind, unsigned flags, int64_t timeout_ms,
                  void (*cb)(void), void *privdata, uint64_t *id_out);
/* Completes r with a local error and runs its callback. */
void volt__complete_local(volt_client *c, struct volt__req *r, int code, const char *message);
/* Removes a request without running its callback (a blocking caller
 * giving up). */
void volt__cancel(volt_client *c, uint64_t id);
/* Runs expired requests' callbacks. */
void volt__expire(volt_client *c, int64_t now);
/* Fails every request in flight with code (broker gone, client freed). */
void volt__fail_all(volt_client *c, int code, const char *message);

/* Connect waiter: runs its callback when its condition holds (or fails);
 * called after anything that changes the session or the upstream view. */
void volt__connect_check(volt_client *c);
void volt__connect_complete(volt_client *c, int code, const char *message);
/* The blocking connects: waits for a waiter (upstream or welcome). */
int volt__connect_wait(volt_client *c, int timeout_ms, bool upstream);

/* Threads: drains the answers queued by other threads (client's thread). */
void volt__drain_answers(volt_client *c);
void volt__hub_unref(struct volt__hub *hub);

/* Dispatch of one frame from the broker. */
void volt__dispatch(volt_client *c, const struct proto_span *frame);
/* Session start: registers handlers and subscriptions again. */
void volt__session_started(volt_client *c);
/* Detaches every outstanding call (connection lost, client freed). */
void volt__detach_calls(volt_client *c);
void volt__free_tables(volt_client *c);

/* Callbacks. */
void volt__emit_error(volt_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* JSON helpers (scratch in c): JSON text -> msgpack into c->jbuf.
 * 0 or VOLT_E_BAD_REQUEST / VOLT_E_NOT_JSON / VOLT_E_NOMEM with errstr. */
int volt__json_in(volt_client *c, const char *json, struct proto_span *out);
/* msgpack -> NUL-terminated JSON in a fresh buffer (caller frees).
 * Absent value (NULL) gives "null". */
int volt__json_out(const struct proto_span *mp, char **out, size_t *out_len);
/* Checks that [data, len) is exactly one msgpack value. */
int volt__check_msgpack(volt_client *c, const void *data, size_t len);

/* Blocking: runs the loop until *done, FREEING, or deadline (< 0 none).
 * 0, VOLT_E_TIMEOUT, VOLT_E_BROKER_GONE (freeing). */
int volt__wait(volt_client *c, const bool *done, int64_t deadline);

#endif
