/* libvoltclient: the C client of volt-broker.
 *
 * volt-broker keeps the one upstream session to the VOLT server; local
 * processes talk to it over a Unix socket. This library is the C form of
 * the TypeScript DaemonClusterClient API (sendCommand, emit,
 * registerHandler, onMessage, onConnected/onDisconnected/onError,
 * getTeamClusterId/getDaemonPassword) on top of that socket.
 *
 * Three ways to drive a client
 * ----------------------------
 * 1. Your own event loop (libpq/hiredis style). Watch volt_client_fd() for
 *    volt_client_events(), wake up after volt_client_timeout_ms(), and call
 *    volt_client_process() with what happened. Re-read all three after
 *    every call into the library: the socket changes on reconnect.
 *    Also watch volt_client_wakeup_fd() for reading (it never changes)
 *    and call volt_client_process(c, VOLT_EV_WAKEUP) when it is readable:
 *    that is how answers made in other threads reach the socket.
 * 2. An adapter: volt_client_attach() takes a small hooks struct
 *    (add/del read, add/del write, close fd, timer, cleanup) and the
 *    library tells your loop what to watch. Header-only adapters built on
 *    it: <volt/adapters/libuv.h>, <volt/adapters/libevent.h> and
 *    <volt/adapters/sd-event.h>.
 * 3. The blocking API: volt_client_connect_blocking(), the *_sync calls
 *    and volt_client_run() run a small poll() loop of the client's own.
 *    Callbacks keep being dispatched while a *_sync call waits.
 *
 * Thread rule
 * -----------
 * A volt_client, and everything obtained from it (results, messages,
 * strings), is used from one thread at a time. Different clients are
 * independent and may live in different threads. Functions that take no
 * client (volt_strerror, volt_json_*, volt_options_init, ...) are
 * thread-safe. The exceptions, callable from any thread:
 * - the answer to a call (volt_call_reply, volt_call_reply_json,
 *   volt_call_fail, volt_call_fail_code): a handler may hand its call to a
 *   worker thread and answer there. An answer from another thread than the
 *   one the call was delivered on is queued and the client's loop is woken
 *   through volt_client_wakeup_fd(); the client's thread sends it on its
 *   next volt_client_process(). An answer from the delivering thread is
 *   sent at once, as before. The other volt_call_* accessors (command,
 *   payload, timeout) read only the call and may be used from the thread
 *   that holds it; volt_call_client() only from the client's thread.
 * - volt_client_stop(), also from a signal handler.
 * A worker may answer while (or after) the client is freed: the answer
 * then returns VOLT_E_BROKER_GONE, like any answer to a detached call.
 *
 * Callbacks and freeing
 * ---------------------
 * Callbacks run only from inside volt_client_process(), the blocking calls,
 * and volt_client_free() (which completes every pending request). A
 * callback may call any function on its client, including
 * volt_client_free(): the free is deferred until the library has unwound
 * and no further callback of that client runs (except the completion of
 * pending requests, see volt_client_free). Functions called on a client
 * that is being freed return VOLT_E_BROKER_GONE.
 *
 * Pointers handed to a callback (payloads, strings, volt_result,
 * volt_message) point into the client's read buffer: they are valid until
 * the callback returns, or until it calls a blocking function (*_sync,
 * volt_client_run*, volt_client_flush) of the same client, whichever comes
 * first (a blocking call reads more into the same buffer). Copy what you
 * keep. volt_call is the exception: it lives until answered.
 *
 * Requests and timeouts
 * ---------------------
 * Every request has its own deadline. A request is completed exactly once:
 * with the broker's result, with VOLT_E_TIMEOUT when its local deadline
 * passes, with VOLT_E_BROKER_GONE when the connection to the broker is lost
 * or the client is freed (a command: VOLT_E_SOCKET_NOT_READY, as in every
 * client library). A function that starts a request and returns a
 * negative code did not start it: its callback will never run.
 *
 * Connecting waits for the upstream
 * ---------------------------------
 * volt_client_connect_blocking() and volt_client_connect_async() complete
 * once the broker's upstream session to the VOLT server is ready, like the
 * seed's `await connect()`: a command sent after that does not meet
 * SOCKET_NOT_READY because the broker had just started. They fail early
 * with the upstream's own error when its state is final ("failed"), and at
 * their deadline with the upstream's last error (SocketRegistrationFailed
 * with the server's reason, ...) when there was one, else VOLT_E_TIMEOUT.
 * A tool that needs only the broker (status, monitoring) turns this off
 * with options.wait_upstream = 0.
 *
 * When no broker answers at the socket path, connecting fails with
 * VOLT_E_BROKER_GONE and volt_client_errstr() says "no broker at PATH: is
 * volt-broker running? set VOLT_BROKER_SOCKET".
 *
 * Reconnecting
 * ------------
 * When the broker goes away (a restart), pending requests fail with
 * VOLT_E_BROKER_GONE at once, outstanding calls become unanswerable, and
 * the client reconnects by itself with exponential backoff (jittered,
 * between reconnect_min_ms and reconnect_max_ms). On every new session it
 * registers all its handlers and subscriptions again: they are client
 * state, not connection state.
 *
 * Payloads
 * --------
 * Payloads and data are raw msgpack (one value), passed through without
 * conversion. The *_json functions take and give JSON text instead;
 * binary values appear as {"$bin":"<base64>"} in JSON and that exact
 * one-key object is sent as binary.
 *
 * Errors
 * ------
 * Functions return 0 (or a positive count/id) on success and a negative
 * VOLT_E_* code on failure. volt_strerror() describes a code,
 * volt_err_name() gives its wire name; volt_client_errstr() has the
 * details of the last local failure (e.g. the path and errno of a failed
 * connect). Argument errors are VOLT_E_BAD_REQUEST.
 */
#ifndef VOLT_CLIENT_H
#define VOLT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. The library's own is volt_version(). Within
 * one major version the ABI only grows (soname libvoltclient.so.0, symbol
 * node VOLTCLIENT_1.0): a program built against 1.x runs with any 1.y,
 * y >= x. */
#define VOLT_VERSION_MAJOR  1
#define VOLT_VERSION_MINOR  0
#define VOLT_VERSION_PATCH  0
#define VOLT_VERSION_STRING "1.0.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if and for comparing with
 * volt_version_number(). */
#define VOLT_VERSION_NUMBER                                                                        \
    (VOLT_VERSION_MAJOR * 10000 + VOLT_VERSION_MINOR * 100 + VOLT_VERSION_PATCH)

#if defined(__GNUC__) && __GNUC__ >= 4
#define VOLT_EXPORT __attribute__((visibility("default")))
#else
#define VOLT_EXPORT
#endif

/* ------------------------------------------------------------------ */
/* Error codes                                                         */
/* ------------------------------------------------------------------ */

/* The codes of the local protocol (proto/PROTOCOL.md), with the seed's
 * names. The values never change. */
enum volt_error {
    VOLT_OK = 0,
    VOLT_E_SOCKET_NOT_READY = -1,           /* SOCKET_NOT_READY: upstream session not ready */
    VOLT_E_COMMAND_TIMEOUT = -2,            /* COMMAND_TIMEOUT: the server did not answer */
    VOLT_E_COMMAND_REJECTED = -3,           /* COMMAND_REJECTED: see volt_result.server_code */
    VOLT_E_ENROLLMENT_FAILED = -4,          /* EnrollmentFailed */
    VOLT_E_SOCKET_CONNECTION_FAILED = -5,   /* SocketConnectionFailed */
    VOLT_E_SOCKET_REGISTRATION_FAILED = -6, /* SocketRegistrationFailed */
    VOLT_E_HANDLER_ERROR = -7,              /* HandlerError */
    VOLT_E_EMIT_FAILED = -8,                /* EmitFailed */
    VOLT_E_NO_HANDLER = -9,                 /* NoHandler */
    VOLT_E_HANDLER_TIMEOUT = -10,           /* HandlerTimeout */
    VOLT_E_HEARTBEAT_FAILED = -11,          /* HeartbeatFailed */
    VOLT_E_BAD_FRAME = -20,                 /* BadFrame */
    VOLT_E_FRAME_TOO_LARGE = -21,           /* FrameTooLarge */
    VOLT_E_UNKNOWN_OP = -22,                /* UnknownOp */
    VOLT_E_BAD_REQUEST = -23,               /* BadRequest; also: invalid argument */
    VOLT_E_VERSION_MISMATCH = -24,          /* VersionMismatch */
    VOLT_E_PERMISSION_DENIED = -25,         /* PermissionDenied */
    VOLT_E_LIMIT_EXCEEDED = -26,            /* LimitExceeded */
    VOLT_E_PAYLOAD_TOO_LARGE = -27,         /* PayloadTooLarge */
    VOLT_E_DUPLICATE_ID = -28,              /* DuplicateId */
    VOLT_E_NOT_JSON = -29,                  /* NotJson */
    VOLT_E_BROKER_GONE = -30,               /* BrokerGone: no connection to the broker */
    VOLT_E_TIMEOUT = -31,                   /* Timeout: a local wait ran out */
    VOLT_E_SHUTTING_DOWN = -32,             /* ShuttingDown */
    VOLT_E_NOMEM = -40,                     /* NoMemory */
    VOLT_E_INTERNAL = -41,                  /* Internal; also: a code this library does not know */
};

/* English description of a code; never NULL. */
VOLT_EXPORT const char *volt_strerror(int code);
/* Wire name of a code ("SOCKET_NOT_READY", "HandlerError", ...); "Unknown"
 * for values outside the table. Never NULL. */
VOLT_EXPORT const char *volt_err_name(int code);
/* Code for a wire name; 0 when the name is unknown. */
VOLT_EXPORT int volt_err_from_name(const char *name);

/* Version of the library running, e.g. "1.0.0", and as a number (see
 * VOLT_VERSION_NUMBER). */
VOLT_EXPORT const char *volt_version(void);
VOLT_EXPORT int volt_version_number(void);

/* Frees memory this library handed over (JSON text, strings). NULL is a no-op. */
VOLT_EXPORT void volt_free(void *p);
/* Like volt_free for a NUL-terminated secret (a daemon password): wipes it first. */
VOLT_EXPORT void volt_free_secret(char *s);

/* ------------------------------------------------------------------ */
/* Client lifecycle                                                    */
/* ------------------------------------------------------------------ */

typedef struct volt_client volt_client;
typedef struct volt_call volt_call;

/* Client options. A 0 in a field marked "0: default" selects its default;
 * elsewhere 0 means what it says.
 *
 * The struct may grow at its end in later versions without a new soname:
 * always fill it with volt_options_init() (a macro that passes the size
 * you compiled with), then change the fields you need. The library reads
 * only the fields that fit in `size`, and gives the rest their defaults. */
struct volt_options {
    /* sizeof(struct volt_options) as the program was compiled: set by
     * volt_options_init(), never by hand. */
    size_t size;
    /* Broker socket; NULL: volt_default_socket_path(). Copied. */
    const char *socket_path;
    /* Label in the broker's logs and status; NULL: the program name. Copied. */
    const char *name;
    /* Budget for one connection attempt: socket connect plus hello/welcome. */
    uint32_t connect_timeout_ms; /* default 5000; 0: default */
    /* Reconnect by itself after the broker went away or a connect failed. */
    int reconnect;             /* default 1 */
    uint32_t reconnect_min_ms; /* first retry delay; default 100; 0: default */
    uint32_t reconnect_max_ms; /* cap of the doubling delay; default 5000; 0: default */
    /* Largest frame body accepted from the broker (what it may send us). */
    uint32_t max_frame; /* default 16 MiB; 0: default; at most 256 MiB */
    /* Timeout of volt_send_command() calls that pass 0. Default 0: the
     * broker's commandTimeout applies (the command carries no timeout, so a
     * broker's configuration is never overridden by a library default), and
     * the local deadline is the broker's timeout from its welcome plus the
     * grace. Another value is sent with each such command. */
    uint32_t command_timeout_ms;
    /* A command's local deadline is its timeout plus this grace, so the
     * broker's COMMAND_TIMEOUT normally arrives before our own Timeout. */
    uint32_t timeout_grace_ms; /* default 1000 */
    /* Deadline of operations the broker answers itself (register,
     * subscribe, status, credential, ping, acknowledged emit). */
    uint32_t local_timeout_ms; /* default 10000; 0: default */
    /* Bytes queued for the broker but not yet written; an op that would go
     * over fails with VOLT_E_LIMIT_EXCEEDED. */
    size_t max_output_bytes; /* default 64 MiB; 0: default */
    /* 1 (default): volt_client_connect_blocking() and
     * volt_client_connect_async() wait until the upstream session is ready.
     * 0: they complete at the broker's welcome (tools that talk only to the
     * broker: status, monitoring). */
    int wait_upstream;
};

/* Fills every field of *opts with its default (and opts->size). */
#define volt_options_init(opts) volt_options_init_size((opts), sizeof *(opts))
/* What volt_options_init() calls: size is the caller's sizeof. */
VOLT_EXPORT void volt_options_init_size(struct volt_options *opts, size_t size);

/* The default broker socket, the client rule shared with the other
 * clients: $VOLT_BROKER_SOCKET when set; else the per-user broker's socket
 * ($XDG_RUNTIME_DIR/volt/broker.sock, or /tmp/volt-<uid>/broker.sock
 * without XDG_RUNTIME_DIR) when one exists; else the system broker's
 * /run/volt/broker.sock. A client made without a path takes it once, in
 * volt_client_new(). Caller frees with volt_free(); NULL on out of memory. */
VOLT_EXPORT char *volt_default_socket_path(void);

/* Creates a client (not connected yet). opts may be NULL for the defaults;
 * it is copied. Caller frees with volt_client_free(). NULL on out of
 * memory or an invalid option (opts not filled by volt_options_init(), a
 * socket path longer than sun_path, reconnect_max_ms < reconnect_min_ms). */
VOLT_EXPORT volt_client *volt_client_new(const struct volt_options *opts);

/* Closes the connection and frees the client. Every pending request, and a
 * pending volt_client_connect_async(), is completed with VOLT_E_BROKER_GONE
 * first (so callers can release their privdata); no other callback runs. Outstanding calls stay
 * valid handles that must still be answered (the answer returns VOLT_E_BROKER_GONE). Called from a
 * callback, the free is deferred until the library has unwound. NULL is a no-op. */
VOLT_EXPORT void volt_client_free(volt_client *c);

/* Starts connecting (non-blocking). 0 when an attempt is under way or, with
 * reconnect on, a retry is scheduled; VOLT_E_BROKER_GONE when the attempt
 * failed and no retry will follow (details in volt_client_errstr()).
 * Connecting an already connected client is a no-op. */
VOLT_EXPORT int volt_client_connect(volt_client *c);

/* Connects and waits until the upstream session is ready (see "Connecting
 * waits for the upstream"; with options.wait_upstream 0:
 * until the broker's welcome), retrying the broker connection (when
 * reconnect is on) until timeout_ms runs out (< 0: no limit). Returns 0;
 * the upstream's own error (VOLT_E_SOCKET_REGISTRATION_FAILED,
 * VOLT_E_SOCKET_CONNECTION_FAILED, VOLT_E_ENROLLMENT_FAILED, ...: its
 * message in volt_client_errstr()) when its state is final, or at the
 * deadline when it reported one; VOLT_E_BROKER_GONE (no broker: see
 * volt_client_errstr()); VOLT_E_VERSION_MISMATCH; or VOLT_E_TIMEOUT. The
 * connection stays up (and keeps trying) after a failure; disconnect or
 * free the client to stop it. */
VOLT_EXPORT int volt_client_connect_blocking(volt_client *c, int timeout_ms);

/* Completion of volt_client_connect_async(): code 0, or an error as for
 * volt_client_connect_blocking(), with its message (never NULL). */
typedef void volt_connect_cb(volt_client *c, int code, const char *message, void *privdata);

/* The same without blocking: starts connecting (if not connected) and runs
 * cb exactly once, later, from the client's loop: when the upstream is
 * ready (or at the welcome, with wait_upstream off), on a final error, at
 * timeout_ms (< 0: no limit), when the client is disconnected or freed
 * (VOLT_E_BROKER_GONE). 0, VOLT_E_BAD_REQUEST (cb NULL, or a connect is
 * already waiting), or VOLT_E_BROKER_GONE when no attempt can be made
 * (reconnect off): then cb never runs. */
VOLT_EXPORT int volt_client_connect_async(volt_client *c, int timeout_ms, volt_connect_cb *cb,
                                          void *privdata);

/* Closes the broker connection and stops reconnecting until the next
 * volt_client_connect(). Pending requests fail with VOLT_E_BROKER_GONE. */
VOLT_EXPORT void volt_client_disconnect(volt_client *c);

/* 1 when the broker session is up (welcome received), else 0. */
VOLT_EXPORT int volt_client_is_connected(const volt_client *c);
/* isReady(): 1 when the broker session is up and its upstream session to
 * the VOLT server is connected and registered, else 0. */
VOLT_EXPORT int volt_client_is_ready(const volt_client *c);
/* Waits until volt_client_is_ready() (connecting first if needed), whatever
 * options.wait_upstream says; returns as
 * volt_client_connect_blocking(). */
VOLT_EXPORT int volt_client_wait_ready(volt_client *c, int timeout_ms);

/* The broker's upstream state ("ready", "connecting", "backoff", ...) as
 * of the last welcome or event; "" without a broker session. */
VOLT_EXPORT const char *volt_client_upstream_state(const volt_client *c);
/* Why the upstream is in its state (the welcome's reason, or the latest
 * disconnect's); "" when the broker did not say. */
VOLT_EXPORT const char *volt_client_upstream_reason(const volt_client *c);
/* The upstream's last error since it was last ready (from the welcome or
 * an `error` event): its code, and in *message (if not NULL) its text, ""
 * when none; 0 when there is none. Valid until the next call on c. */
VOLT_EXPORT int volt_client_upstream_error(const volt_client *c, const char **message);
/* getTeamClusterId() without a round trip: the team cluster id in force,
 * as the broker last said (welcome, `connected` event); "" before the
 * first welcome or when the broker has none. Valid until the next call on c. */
VOLT_EXPORT const char *volt_client_team_cluster_id(const volt_client *c);
/* The broker's commandTimeout (the timeout of commands that give none) and
 * the largest timeout it allows, in ms, from its welcome; 0 before. */
VOLT_EXPORT uint32_t volt_client_command_timeout_ms(const volt_client *c);
VOLT_EXPORT uint32_t volt_client_max_timeout_ms(const volt_client *c);
/* The broker's name and version from its welcome; "" before. */
VOLT_EXPORT const char *volt_client_broker_name(const volt_client *c);
VOLT_EXPORT const char *volt_client_socket_path(const volt_client *c);
/* English details of the last local failure (connect errors, malformed
 * JSON input, ...); "" when none. Valid until the next call on c. */
VOLT_EXPORT const char *volt_client_errstr(const volt_client *c);

/* ------------------------------------------------------------------ */
/* Event loop integration                                              */
/* ------------------------------------------------------------------ */

enum volt_events {
    VOLT_EV_READ = 1,
    VOLT_EV_WRITE = 2,
    VOLT_EV_WAKEUP = 4, /* volt_client_wakeup_fd() was readable */
};

/* The socket to watch, or -1 when there is none right now. */
VOLT_EXPORT int volt_client_fd(const volt_client *c);
/* A second fd to watch for reading, for the client's whole life (it never
 * changes): it becomes readable when another thread answered a call or
 * volt_client_stop() was called. Then call volt_client_process() with
 * VOLT_EV_WAKEUP (the library drains it). */
VOLT_EXPORT int volt_client_wakeup_fd(const volt_client *c);
/* VOLT_EV_READ and/or VOLT_EV_WRITE: what to watch the fd for. */
VOLT_EXPORT int volt_client_events(const volt_client *c);
/* Milliseconds until volt_client_process() must run even without I/O
 * (the next request deadline, connect timeout or reconnect), 0 when it is
 * due now, -1 when there is no deadline. */
VOLT_EXPORT int64_t volt_client_timeout_ms(const volt_client *c);
/* Does the work for `events` that occurred on volt_client_fd() (0: only
 * timers; map POLLERR/POLLHUP to VOLT_EV_READ), for VOLT_EV_WAKEUP (answers
 * queued by other threads) and for every deadline that has passed; runs
 * the callbacks. Returns 0, or VOLT_E_BROKER_GONE when the
 * client is now without a broker connection (it may be reconnecting).
 * A callback may have freed the client: then do not touch it again. */
VOLT_EXPORT int volt_client_process(volt_client *c, int events);

/* Hooks through which the client drives a foreign event loop: the core
 * calls them whenever what it needs changes. fd may differ from one call
 * to the next (reconnect), and a new socket may reuse the number of a
 * closed one: close_fd always comes first. The loop calls
 * volt_client_process() with the events seen, and with 0 when the timer
 * fires. The hooks do not cover volt_client_wakeup_fd(): an adapter
 * watches it itself, from attach until cleanup.
 *
 * The struct may grow at its end in later versions: zero it and set
 * `size` to sizeof(struct volt_loop_hooks) as you compiled it, so the
 * library knows which hooks you filled. */
struct volt_loop_hooks {
    size_t size; /* sizeof(struct volt_loop_hooks) */
    void *data;  /* passed to every hook */
    void (*add_read)(void *data, int fd);
    void (*del_read)(void *data, int fd);
    void (*add_write)(void *data, int fd);
    void (*del_write)(void *data, int fd);
    /* fd is about to be closed: stop watching it for good. */
    void (*close_fd)(void *data, int fd);
    /* Arm the single one-shot timer to fire after timeout_ms (0: as soon as
     * possible), replacing any earlier one; -1: disarm. */
    void (*set_timer)(void *data, int64_t timeout_ms);
    /* The client is being freed: stop watching the wakeup fd, release
     * `data`. Called last. */
    void (*cleanup)(void *data);
};

/* Attaches an event loop (once per client; the hooks are copied). The
 * current state is pushed through the hooks at once. 0, or
 * VOLT_E_BAD_REQUEST when a loop is already attached, size is smaller than
 * the 1.0 struct, or a hook is NULL. */
VOLT_EXPORT int volt_client_attach(volt_client *c, const struct volt_loop_hooks *hooks);

/* ------------------------------------------------------------------ */
/* Blocking loop                                                       */
/* ------------------------------------------------------------------ */

/* Runs the client's own poll() loop until volt_client_stop() or the client
 * is freed by a callback (then 0), or until the broker connection is lost
 * for good (reconnect off, version mismatch): VOLT_E_BROKER_GONE /
 * VOLT_E_VERSION_MISMATCH. Does not connect: call a connect function first. */
VOLT_EXPORT int volt_client_run(volt_client *c);
/* Like volt_client_run() for at most ms milliseconds (then 0). */
VOLT_EXPORT int volt_client_run_for(volt_client *c, int ms);
/* Makes the innermost volt_client_run*() return soon. Async-signal-safe,
 * and callable from any thread while the client exists. */
VOLT_EXPORT void volt_client_stop(volt_client *c);
/* Waits until everything queued has been written to the broker.
 * 0, VOLT_E_TIMEOUT, or VOLT_E_BROKER_GONE. */
VOLT_EXPORT int volt_client_flush(volt_client *c, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Event callbacks (onConnected / onDisconnected / onError)            */
/* ------------------------------------------------------------------ */

/* The upstream session became ready (connected and registered). */
typedef void volt_connected_cb(volt_client *c, void *privdata);
/* The upstream session was lost; also when the broker connection is lost
 * while the upstream was ready (reason "broker gone"). */
typedef void volt_disconnected_cb(volt_client *c, const char *reason, void *privdata);
/* An error: events of the broker (HeartbeatFailed, SocketConnectionFailed,
 * ...), a refused registration or subscription, an emit that failed
 * (EmitFailed), and VOLT_E_BROKER_GONE when the broker connection drops.
 * A wire code this library does not know is VOLT_E_INTERNAL with the name
 * at the start of the message. */
typedef void volt_error_cb(volt_client *c, int code, const char *message, void *privdata);
/* The broker session came up (up = 1, after every welcome) or went down (0). */
typedef void volt_broker_cb(volt_client *c, int up, void *privdata);

/* Set (or with NULL clear) the one callback of each kind. */
VOLT_EXPORT void volt_on_connected(volt_client *c, volt_connected_cb *cb, void *privdata);
VOLT_EXPORT void volt_on_disconnected(volt_client *c, volt_disconnected_cb *cb, void *privdata);
VOLT_EXPORT void volt_on_error(volt_client *c, volt_error_cb *cb, void *privdata);
VOLT_EXPORT void volt_on_broker(volt_client *c, volt_broker_cb *cb, void *privdata);

/* ------------------------------------------------------------------ */
/* Requests (sendCommand)                                              */
/* ------------------------------------------------------------------ */

/* The outcome of a request. Inside a callback every pointer is valid only
 * for the callback (see "Callbacks and freeing"); a *_sync call hands over
 * an owned copy. */
typedef struct volt_result {
    int code;                /* 0, or a VOLT_E_* code */
    const char *code_name;   /* wire name of the code; NULL when code == 0 */
    const char *message;     /* for people; NULL when code == 0 */
    const char *server_code; /* COMMAND_REJECTED: the server's own code; else NULL */
    const void *data;        /* the answer's data as msgpack; NULL when absent */
    size_t data_len;
    /* JSON text of data (NUL-terminated), for the *_json functions and
     * status; "null" when data is absent; NULL when code != 0. */
    const char *json;
    size_t json_len;
} volt_result;

typedef void volt_result_cb(volt_client *c, const volt_result *result, void *privdata);

/* Frees a result handed over by a *_sync function. NULL is a no-op. */
VOLT_EXPORT void volt_result_free(volt_result *r);

/* sendCommand: sends `command` with a msgpack payload (payload NULL or
 * len 0: none) to the VOLT server through the broker. timeout_ms 0:
 * options.command_timeout_ms, by default the broker's commandTimeout (the
 * broker lowers a timeout above its maximum to that maximum).
 * cb (may be NULL) runs exactly once, later.
 * Errors in the result: SOCKET_NOT_READY, COMMAND_TIMEOUT,
 * COMMAND_REJECTED, PayloadTooLarge, NotJson, LimitExceeded, ShuttingDown,
 * Timeout (SOCKET_NOT_READY also when the broker connection ends while it
 * waits). Returns 0 (sent or queued), VOLT_E_BAD_REQUEST (bad argument or
 * payload not one msgpack value), VOLT_E_SOCKET_NOT_READY (no broker
 * connection, not even one being set up), VOLT_E_BROKER_GONE (the client
 * is being freed), VOLT_E_FRAME_TOO_LARGE,
 * VOLT_E_LIMIT_EXCEEDED (output queue full), VOLT_E_NOMEM. */
VOLT_EXPORT int volt_send_command(volt_client *c, const char *command, const void *payload,
                                  size_t payload_len, uint32_t timeout_ms, volt_result_cb *cb,
                                  void *privdata);
/* The same with a JSON payload (NULL: none); result->json is filled. A
 * malformed payload is VOLT_E_BAD_REQUEST (details in volt_client_errstr()). */
VOLT_EXPORT int volt_send_command_json(volt_client *c, const char *command,
                                       const char *json_payload, uint32_t timeout_ms,
                                       volt_result_cb *cb, void *privdata);
/* Blocking forms: run the client's loop (other callbacks keep running)
 * until the result. Return result->code, or a negative code of the send.
 * *out (if out is not NULL) receives the result, which the caller frees
 * with volt_result_free(); it is NULL only when no result exists (the
 * send itself failed, or out of memory). */
VOLT_EXPORT int volt_send_command_sync(volt_client *c, const char *command, const void *payload,
                                       size_t payload_len, uint32_t timeout_ms, volt_result **out);
VOLT_EXPORT int volt_send_command_json_sync(volt_client *c, const char *command,
                                            const char *json_payload, uint32_t timeout_ms,
                                            volt_result **out);

/* ------------------------------------------------------------------ */
/* Fire-and-forget messages (emit)                                     */
/* ------------------------------------------------------------------ */

/* Sends {type, data} upstream without waiting. A failure upstream comes
 * back through the error callback as VOLT_E_EMIT_FAILED. data NULL or
 * len 0: no data. Same return codes as volt_send_command(). */
VOLT_EXPORT int volt_emit(volt_client *c, const char *type, const void *data, size_t len);
VOLT_EXPORT int volt_emit_json(volt_client *c, const char *type, const char *json_data);
/* The same, acknowledged: cb gets code 0 once the message is written
 * upstream (or kept by the broker for when the upstream is ready again),
 * or VOLT_E_EMIT_FAILED / Timeout / BrokerGone. */
VOLT_EXPORT int volt_emit_acked(volt_client *c, const char *type, const void *data, size_t len,
                                volt_result_cb *cb, void *privdata);

/* flags of volt_emit_ex() */
/* While the upstream is not ready the broker keeps an emit and sends it
 * once it is ready again (like socket.io-client's buffer); a volatile one
 * fails with VOLT_E_EMIT_FAILED at once instead. */
#define VOLT_EMIT_VOLATILE 1u

/* Every emit in one: flags (VOLT_EMIT_*), and acknowledged when cb is not
 * NULL. Same return codes as volt_send_command(); an unknown flag is
 * VOLT_E_BAD_REQUEST. */
VOLT_EXPORT int volt_emit_ex(volt_client *c, const char *type, const void *data, size_t len,
                             unsigned flags, volt_result_cb *cb, void *privdata);
VOLT_EXPORT int volt_emit_json_ex(volt_client *c, const char *type, const char *json_data,
                                  unsigned flags, volt_result_cb *cb, void *privdata);

/* ------------------------------------------------------------------ */
/* Inbound commands (registerHandler)                                  */
/* ------------------------------------------------------------------ */

/* A handler receives each inbound command as a volt_call, which it must
 * answer exactly once with volt_call_reply(), volt_call_reply_json(),
 * volt_call_fail() or volt_call_fail_code(): in the callback or later
 * (from a timer, another callback, or a worker thread: see "Thread
 * rule"). The answer frees the call, so do not touch it after.
 *
 * A call outlives its client: when the broker connection is lost or the
 * client is freed, the call is detached and its answer then returns
 * VOLT_E_BROKER_GONE (the broker has already answered HandlerError
 * upstream). It must still be answered to free it. */
typedef void volt_handler_cb(volt_client *c, volt_call *call, void *privdata);

/* Registers (or replaces) the handler of `command`, now and on every
 * future broker session. 0, VOLT_E_BAD_REQUEST, VOLT_E_NOMEM. A refusal by
 * the broker (LimitExceeded, ...) is reported through the error callback. */
VOLT_EXPORT int volt_register_handler(volt_client *c, const char *command, volt_handler_cb *cb,
                                      void *privdata);
/* 0, or VOLT_E_NO_HANDLER when command was not registered. Calls already
 * delivered stay valid. */
VOLT_EXPORT int volt_unregister_handler(volt_client *c, const char *command);

VOLT_EXPORT const char *volt_call_command(const volt_call *call);
/* The payload as msgpack; NULL (and *len 0) when the server sent none.
 * Valid until the call is answered. */
VOLT_EXPORT const void *volt_call_payload(const volt_call *call, size_t *len);
/* The payload as JSON text ("null" when absent), owned by the call and
 * valid until it is answered; NULL on out of memory. */
VOLT_EXPORT const char *volt_call_payload_json(volt_call *call);
/* Milliseconds the broker gave the handler when the call arrived. */
VOLT_EXPORT uint32_t volt_call_timeout_ms(const volt_call *call);
/* The client the call came from; NULL once detached. */
VOLT_EXPORT volt_client *volt_call_client(const volt_call *call);

/* Answers with msgpack data (NULL/0: none). Every answer consumes the
 * call, whatever it returns; when the data cannot be sent (not one msgpack
 * value, too large) a HandlerError answer goes out instead so the server
 * still gets exactly one. 0, VOLT_E_BROKER_GONE (detached), or an encoding
 * error. Any thread (see "Thread rule"): from another thread than the
 * call's, 0 means queued for the client's thread; a later failure to send
 * it is then reported through the error callback. */
VOLT_EXPORT int volt_call_reply(volt_call *call, const void *data, size_t len);
VOLT_EXPORT int volt_call_reply_json(volt_call *call, const char *json_data);
/* Answers with an error: code 0 means VOLT_E_HANDLER_ERROR; message may be NULL. */
VOLT_EXPORT int volt_call_fail(volt_call *call, int code, const char *message);
/* Answers with an error code of the handler's own ("NOT_FOUND"), which
 * reaches the server as is: 1..64 bytes of UTF-8 without control
 * characters. An unusable code (NULL, empty, too long, not UTF-8) is
 * answered HandlerError and returns VOLT_E_BAD_REQUEST; the call is
 * consumed either way. message may be NULL. */
VOLT_EXPORT int volt_call_fail_code(volt_call *call, const char *code, const char *message);

/* ------------------------------------------------------------------ */
/* Inbound messages (onMessage)                                        */
/* ------------------------------------------------------------------ */

enum volt_match {
    VOLT_MATCH_ALL = 0,    /* every message */
    VOLT_MATCH_EXACT = 1,  /* type equal to the filter */
    VOLT_MATCH_PREFIX = 2, /* type starting with the filter, e.g. "session." */
};

/* flags of volt_on_message() */
#define VOLT_MESSAGE_JSON 1u /* fill volt_message.json */

typedef struct volt_message {
    const char *type;
    const void *data; /* msgpack; NULL when absent */
    size_t data_len;
    const char *json; /* with VOLT_MESSAGE_JSON: data as JSON ("null" when absent); else NULL */
    size_t json_len;
} volt_message;

typedef void volt_message_cb(volt_client *c, const volt_message *msg, void *privdata);

/* Subscribes cb to the messages whose type matches (type is ignored for
 * VOLT_MATCH_ALL), now and on every future broker session. A message
 * reaches each matching subscription once. Returns a subscription id
 * (> 0) for volt_off_message(), or VOLT_E_BAD_REQUEST / VOLT_E_NOMEM.
 * A refusal by the broker is reported through the error callback. */
VOLT_EXPORT int volt_on_message(volt_client *c, enum volt_match match, const char *type,
                                unsigned flags, volt_message_cb *cb, void *privdata);
/* 0, or VOLT_E_BAD_REQUEST for an unknown id. */
VOLT_EXPORT int volt_off_message(volt_client *c, int subscription);

/* ------------------------------------------------------------------ */
/* Broker operations: credentials, status, ping                        */
/* ------------------------------------------------------------------ */

/* value is NULL unless code == 0; valid during the callback only. */
typedef void volt_string_cb(volt_client *c, int code, const char *value, void *privdata);

/* getTeamClusterId() / getDaemonPassword(), asked of the broker (the
 * password only for the broker's own uid or root: PermissionDenied). */
VOLT_EXPORT int volt_get_team_cluster_id(volt_client *c, volt_string_cb *cb, void *privdata);
VOLT_EXPORT int volt_get_daemon_password(volt_client *c, volt_string_cb *cb, void *privdata);
/* Blocking forms: *out receives the string (free the id with volt_free,
 * the password with volt_free_secret). timeout_ms <= 0: local_timeout_ms. */
VOLT_EXPORT int volt_get_team_cluster_id_sync(volt_client *c, int timeout_ms, char **out);
VOLT_EXPORT int volt_get_daemon_password_sync(volt_client *c, int timeout_ms, char **out);

/* The broker's status map (PROTOCOL.md); result->json is filled. */
VOLT_EXPORT int volt_status(volt_client *c, volt_result_cb *cb, void *privdata);
/* Blocking form: *json_out gets the status map as JSON text, which the
 * caller frees with volt_free(). timeout_ms <= 0: local_timeout_ms. */
VOLT_EXPORT int volt_status_sync(volt_client *c, int timeout_ms, char **json_out);

/* Round trip to the broker (not upstream). */
VOLT_EXPORT int volt_ping(volt_client *c, volt_result_cb *cb, void *privdata);
VOLT_EXPORT int volt_ping_sync(volt_client *c, int timeout_ms);

/* ------------------------------------------------------------------ */
/* msgpack <-> JSON                                                    */
/* ------------------------------------------------------------------ */

/* Exact conversions ($bin marker for binary, 64-bit integers kept). The
 * caller frees *out with volt_free(); out_len may be NULL. JSON text out is
 * NUL-terminated (the terminator not counted in *out_len); msgpack out is
 * one value. 0, VOLT_E_BAD_REQUEST (malformed input, or no input),
 * VOLT_E_NOT_JSON (e.g. an ext type, a non-string map key), VOLT_E_NOMEM. */
VOLT_EXPORT int volt_json_from_msgpack(const void *data, size_t len, char **out, size_t *out_len);
VOLT_EXPORT int volt_json_to_msgpack(const char *json, size_t len, void **out, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
