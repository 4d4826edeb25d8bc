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
 * 2. An adapter: volt_client_attach() takes a small hooks struct
 *    (add/del read, add/del write, close fd, timer, cleanup) and the
 *    library tells your loop what to watch. <volt/adapters/libuv.h> is a
 *    header-only adapter for libuv built on it.
 * 3. The blocking API: volt_client_connect_blocking(), the *_sync calls
 *    and volt_client_run() run a small poll() loop of the client's own.
 *    Callbacks keep being dispatched while a *_sync call waits.
 *
 * Thread rule
 * -----------
 * A volt_client, and everything obtained from it (volt_call, results,
 * messages), is used from one thread at a time. Different clients are
 * independent and may live in different threads. Functions that take no
 * client (volt_strerror, volt_json_*, ...) are thread-safe. The single
 * exception is volt_client_stop(), which may be called from a signal
 * handler of the thread running the client.
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
 * or the client is freed. A function that starts a request and returns a
 * negative code did not start it: its callback will never run.
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

/* Version of this library, e.g. "0.1.0". */
VOLT_EXPORT const char *volt_version(void);

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
 * elsewhere 0 means what it says. */
struct volt_options {
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
    /* Timeout of volt_send_command() calls that pass 0: sent to the broker
     * as the command's timeout. 0 here means "the broker's commandTimeout",
     * and then such requests have no local deadline. */
    uint32_t command_timeout_ms; /* default 30000 (the seed's default) */
    /* A command's local deadline is its timeout plus this grace, so the
     * broker's COMMAND_TIMEOUT normally arrives before our own Timeout. */
    uint32_t timeout_grace_ms; /* default 1000 */
    /* Deadline of operations the broker answers itself (register,
     * subscribe, status, credential, ping, acknowledged emit). */
    uint32_t local_timeout_ms; /* default 10000; 0: default */
    /* Bytes queued for the broker but not yet written; an op that would go
     * over fails with VOLT_E_LIMIT_EXCEEDED. */
    size_t max_output_bytes; /* default 64 MiB; 0: default */
};

/* Fills every field with its default. Always start from this: later
 * versions may add fields. */
VOLT_EXPORT void volt_options_init(struct volt_options *opts);

/* The default broker socket: $VOLT_BROKER_SOCKET if set, else
 * /run/volt/broker.sock for root, else $XDG_RUNTIME_DIR/volt/broker.sock
 * (/tmp/volt-<uid>/broker.sock without XDG_RUNTIME_DIR): the broker's own default.
 * Caller frees with volt_free(); NULL on out of memory. */
VOLT_EXPORT char *volt_default_socket_path(void);

/* Creates a client (not connected yet). opts may be NULL for the defaults;
 * it is copied. Caller frees with volt_client_free(). NULL on out of
 * memory or an invalid option (e.g. a socket path longer than sun_path). */
VOLT_EXPORT volt_client *volt_client_new(const struct volt_options *opts);

/* Closes the connection and frees the client. Every pending request is
 * completed with VOLT_E_BROKER_GONE first (so callers can release their
 * privdata); no other callback runs. Outstanding calls stay valid handles
 * that must still be answered (the answer returns VOLT_E_BROKER_GONE).
 * Called from a callback, the free is deferred until the library has
 * unwound. NULL is a no-op. */
VOLT_EXPORT void volt_client_free(volt_client *c);

/* Starts connecting (non-blocking). 0 when an attempt is under way or, with
 * reconnect on, a retry is scheduled; VOLT_E_BROKER_GONE when the attempt
 * failed and no retry will follow (details in volt_client_errstr()).
 * Connecting an already connected client is a no-op. */
VOLT_EXPORT int volt_client_connect(volt_client *c);

/* Connects and waits for the broker's welcome, retrying (when reconnect is
 * on) until timeout_ms runs out (< 0: no limit). 0, VOLT_E_BROKER_GONE
 * (could not connect; see volt_client_errstr()), VOLT_E_VERSION_MISMATCH,
 * or VOLT_E_TIMEOUT (connected but no welcome in time). */
VOLT_EXPORT int volt_client_connect_blocking(volt_client *c, int timeout_ms);

/* Closes the broker connection and stops reconnecting until the next
 * volt_client_connect(). Pending requests fail with VOLT_E_BROKER_GONE. */
VOLT_EXPORT void volt_client_disconnect(volt_client *c);

/* 1 when the broker session is up (welcome received), else 0. */
VOLT_EXPORT int volt_client_is_connected(const volt_client *c);
/* isReady(): 1 when the broker session is up and its upstream session to
 * the VOLT server is connected and registered, else 0. */
VOLT_EXPORT int volt_client_is_ready(const volt_client *c);
/* Waits until volt_client_is_ready() (connecting first if needed).
 * 0, VOLT_E_TIMEOUT (timeout_ms < 0: no limit), or a connect error. */
VOLT_EXPORT int volt_client_wait_ready(volt_client *c, int timeout_ms);

/* The broker's upstream state ("ready", "connecting", "backoff", ...) as
 * of the last welcome or event; "" without a broker session. */
VOLT_EXPORT const char *volt_client_upstream_state(const volt_client *c);
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
};

/* The socket to watch, or -1 when there is none right now. */
VOLT_EXPORT int volt_client_fd(const volt_client *c);
/* VOLT_EV_READ and/or VOLT_EV_WRITE: what to watch the fd for. */
VOLT_EXPORT int volt_client_events(const volt_client *c);
/* Milliseconds until volt_client_process() must run even without I/O
 * (the next request deadline, connect timeout or reconnect), 0 when it is
 * due now, -1 when there is no deadline. */
VOLT_EXPORT int64_t volt_client_timeout_ms(const volt_client *c);
/* Does the work for `events` that occurred on volt_client_fd() (0: only
 * timers; map POLLERR/POLLHUP to VOLT_EV_READ) and for every deadline that
 * has passed; runs the callbacks. Returns 0, or VOLT_E_BROKER_GONE when the
 * client is now without a broker connection (it may be reconnecting).
 * A callback may have freed the client: then do not touch it again. */
VOLT_EXPORT int volt_client_process(volt_client *c, int events);

/* Hooks through which the client drives a foreign event loop: the core
 * calls them whenever what it needs changes. fd may differ from one call
 * to the next (reconnect), and a new socket may reuse the number of a
 * closed one: close_fd always comes first. The loop calls
 * volt_client_process() with the events seen, and with 0 when the timer
 * fires. */
struct volt_loop_hooks {
    void *data; /* passed to every hook */
    void (*add_read)(void *data, int fd);
    void (*del_read)(void *data, int fd);
    void (*add_write)(void *data, int fd);
    void (*del_write)(void *data, int fd);
    /* fd is about to be closed: stop watching it for good. */
    void (*close_fd)(void *data, int fd);
    /* Arm the single one-shot timer to fire after timeout_ms (0: as soon as
     * possible), replacing any earlier one; -1: disarm. */
    void (*set_timer)(void *data, int64_t timeout_ms);
    /* The client is being freed: release `data`. Called last. */
    void (*cleanup)(void *data);
};

/* Attaches an event loop (once per client; the hooks are copied). The
 * current state is pushed through the hooks at once. 0, or
 * VOLT_E_BAD_REQUEST when a loop is already attached or a hook is NULL. */
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
/* Makes the innermost volt_client_run*() return soon. Async-signal-safe. */
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
 * len 0: none) to the VOLT server through the broker. timeout_ms 0 uses
 * options.command_timeout_ms. cb (may be NULL) runs exactly once, later.
 * Errors in the result: SOCKET_NOT_READY, COMMAND_TIMEOUT,
 * COMMAND_REJECTED, PayloadTooLarge, NotJson, LimitExceeded, ShuttingDown,
 * Timeout, BrokerGone. Returns 0 (sent or queued), VOLT_E_BAD_REQUEST
 * (bad argument or payload not one msgpack value), VOLT_E_BROKER_GONE (no
 * connection, not even one being set up), VOLT_E_FRAME_TOO_LARGE,
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
 * upstream, or VOLT_E_EMIT_FAILED / Timeout / BrokerGone. */
VOLT_EXPORT int volt_emit_acked(volt_client *c, const char *type, const void *data, size_t len,
                                volt_result_cb *cb, void *privdata);

/* ------------------------------------------------------------------ */
/* Inbound commands (registerHandler)                                  */
/* ------------------------------------------------------------------ */

/* A handler receives each inbound command as a volt_call, which it must
 * answer exactly once with volt_call_reply(), volt_call_reply_json() or
 * volt_call_fail(): in the callback or later (from a timer, another
 * callback, ...). The answer frees the call, so do not touch it after.
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
 * error. */
VOLT_EXPORT int volt_call_reply(volt_call *call, const void *data, size_t len);
VOLT_EXPORT int volt_call_reply_json(volt_call *call, const char *json_data);
/* Answers with an error: code 0 means VOLT_E_HANDLER_ERROR; message may be NULL. */
VOLT_EXPORT int volt_call_fail(volt_call *call, int code, const char *message);

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
