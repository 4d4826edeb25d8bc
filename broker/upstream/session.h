/* The upstream session: the one Socket.IO conversation with the VOLT server.
 *
 * It owns enrollment, the WebSocket, registration, the heartbeat, the
 * pending table of outbound requests and the reconnect backoff. The local
 * side (router) sees only this interface: it sends requests and messages,
 * answers inbound requests, and is told about state changes, inbound
 * requests and inbound messages through `struct session_events`.
 *
 * Values cross this interface as msgpack (struct proto_span); the session
 * transcodes to and from the JSON of the wire in one pass each way.
 *
 * Exactly-once rules the router relies on:
 * - every session_request() that returns 0 ends in exactly one call of its
 *   result callback (response, rejection, timeout, or SOCKET_NOT_READY when
 *   the session is lost), possibly from inside session_free();
 * - every inbound request handed out by events->inbound_request must be
 *   answered with exactly one session_respond() (the session keeps the
 *   request id; a response after the session was lost is dropped quietly,
 *   since the server has forgotten the request with the connection).
 */
#ifndef UPSTREAM_SESSION_H
#define UPSTREAM_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto/buf.h"
#include "proto/msgpack.h"
#include "upstream/volt.h"

struct session;

/* What the session needs to know, copied by session_new() (strings too:
 * the caller's may go away). Times in ms. */
struct session_params {
    /* Where the server is. */
    const char *server_url;         /* enrollment; NULL: none */
    const char *control_socket_url; /* required */
    const char *engineio_path;      /* e.g. "/socket.io/" */
    const char *hostname;           /* announced; NULL: gethostname() */
    const char *ca_file;            /* NULL: the system's trust store */
    bool tls_insecure;
    const char *state_dir; /* enrolled credentials; NULL: not kept */
    /* Who we are (secrets: wiped when the session is freed). */
    const char *team_cluster_id;
    const char *daemon_password;
    const char *enrollment_token;
    /* Timing. */
    uint32_t connect_timeout_ms;
    uint32_t registration_timeout_ms;
    uint32_t heartbeat_interval_ms;
    uint32_t heartbeat_timeout_ms;
    bool reconnection;
    uint32_t reconnection_attempts; /* 0: forever */
    uint32_t reconnection_delay_ms;
    uint32_t reconnection_delay_max_ms;
    double randomization_factor;
    uint32_t announce_delay_ms; /* longest hold of the first registration (volt.h) */
    /* Sizes. */
    uint32_t max_pending;        /* outbound requests waiting for the server */
    uint32_t max_message;        /* largest message accepted from the server */
    uint32_t max_upstream_queue; /* bytes waiting to be written (answers: +1/4) */
};

enum session_state {
    SESSION_IDLE,        /* not started, or no server configured */
    SESSION_ENROLLING,   /* HTTP enrollment in progress */
    SESSION_CONNECTING,  /* DNS, TCP, TLS, WebSocket, Engine.IO handshake, namespace CONNECT */
    SESSION_REGISTERING, /* daemon:register sent, waiting for its ack */
    SESSION_READY,       /* registered: requests and messages flow */
    SESSION_BACKOFF,     /* waiting before the next attempt */
    SESSION_STOPPING,    /* closing for good */
    SESSION_FAILED,      /* a final error (e.g. enrollment refused); no retry */
};

const char *session_state_name(enum session_state st);

/* Outcome of an outbound request, valid only during the callback. */
struct session_result {
    int code; /* 0, or PROTO_E_COMMAND_REJECTED / _COMMAND_TIMEOUT / _SOCKET_NOT_READY / ... */
    struct proto_span data;        /* msgpack value of the response's data (len 0: none) */
    struct proto_span server_code; /* COMMAND_REJECTED: the server's error code */
    struct proto_span message;     /* English text: the server's message or ours */
};

typedef void (*session_result_cb)(void *ctx, const struct session_result *r);

/* An inbound server:request; owned by the session until session_respond(). */
struct session_inbound;

struct session_events {
    void *ud;
    void (*state_changed)(void *ud, enum session_state st, const char *reason);
    /* An error worth telling local clients about (heartbeat failure,
     * connection or registration failure); code is a PROTO_E_* value. */
    void (*error)(void *ud, int code, const char *message);
    void (*inbound_request)(void *ud, struct session_inbound *in, const struct proto_span *command,
                            const struct proto_span *payload);
    void (*inbound_message)(void *ud, const struct proto_span *type, const struct proto_span *data);
    /* Appends the current handler names (a msgpack array of str) to out. */
    int (*handler_list)(void *ud, struct proto_buf *out);
    /* The handler list does not fit in a packet within the server's
     * maxPayload (it lowered it, or a check was missed): drop names until
     * their JSON takes at most `room` bytes. Called before the packet is
     * built again; never leaves the session looping on a list it cannot
     * send. */
    void (*handler_trim)(void *ud, size_t room);
    /* Monitoring: every WebSocket message sent (out = true) or received,
     * while enabled with session_set_tap(). May be NULL. */
    void (*tap)(void *ud, bool out, const void *data, size_t len, bool binary);
    /* Local figures for the heartbeat payload. */
    void (*local_counts)(void *ud, uint64_t *clients, uint64_t *handlers);
    /* Whether the handlers registered at the last stop are back (asked
     * while the first registration is held: on the hold's timer and on
     * every session_handlers_changed()). NULL: always UNKNOWN. */
    enum volt_handlers_back (*handlers_back)(void *ud);
};

/* Creates an idle session; nothing happens before session_start(). The
 * params are copied. NULL on out of memory or an unusable URL/path (logged). */
struct session *session_new(uv_loop_t *loop, const struct session_params *params,
                            const struct session_events *events);
/* Starts enrolling/connecting. 0 or negative errno. */
int session_start(struct session *s);
/* Closes the upstream cleanly (Socket.IO DISCONNECT, WebSocket close) and
 * fails what is pending with SOCKET_NOT_READY; done is called once every
 * handle is closed (the loop can then be closed). */
void session_stop(struct session *s, void (*done)(void *ud), void *ud);
/* Frees a stopped session. */
void session_free(struct session *s);

enum session_state session_state(const struct session *s);
/* Why the session entered its current state (English, no secrets). */
const char *session_reason(const struct session *s);
/* Milliseconds (uv_now) at which the current state began. */
uint64_t session_since(const struct session *s);
bool session_is_ready(const struct session *s);
/* The last error reported (SocketConnectionFailed, SocketRegistrationFailed,
 * EnrollmentFailed, ...) since the session was last ready, with its message
 * in *message; 0 and NULL when there was none. */
int session_last_error(const struct session *s, const char **message);
/* Why enrolled credentials are held in memory only (the store failed and
 * is being retried), or NULL when they are stored (or none were enrolled). */
const char *session_credentials_unsaved(const struct session *s);

/* A request waiting for the server, until its callback or session_cancel(). */
struct session_pending;

/* Sends daemon:request with a timeout (> 0). Returns 0 (the
 * callback will follow exactly once, never from inside this call, unless
 * the request is cancelled first; *handle identifies it until then; handle
 * may be NULL), or an error answered by the caller:
 * PROTO_E_SOCKET_NOT_READY, PROTO_E_NOT_JSON, PROTO_E_PAYLOAD_TOO_LARGE,
 * PROTO_E_LIMIT_EXCEEDED. *why is set on error. */
int session_request(struct session *s, const struct proto_span *command,
                    const struct proto_span *payload, uint64_t timeout_ms, session_result_cb cb,
                    void *ctx, struct session_pending **handle, const char **why);
/* Forgets a pending request: its callback will not run, its slot is free;
 * an answer from the server arriving later is dropped and counted
 * (late_responses). The handle must be one whose callback has not run. */
void session_cancel(struct session *s, struct session_pending *handle);

/* Answers an inbound request exactly once. ok: data (may be empty) is the
 * handler's result; !ok: code names the error (HandlerError, NoHandler,
 * HandlerTimeout) and message explains it. Frees `in`. */
void session_respond(struct session *s, struct session_inbound *in, bool ok,
                     const struct proto_span *data, const char *code,
                     const struct proto_span *message);
/* The request id of an inbound request, for logs (36 chars, not NUL-terminated). */
const char *session_inbound_id(const struct session_inbound *in);

/* Sends a message upstream. 0, or PROTO_E_EMIT_FAILED / PROTO_E_NOT_JSON /
 * PROTO_E_PAYLOAD_TOO_LARGE with *why. */
int session_emit(struct session *s, const struct proto_span *type, const struct proto_span *data,
                 const char **why);

/* Turns the tap on or off (off costs one branch per packet). */
void session_set_tap(struct session *s, bool on);

/* A local client said hello or registered: while the handlers of the
 * last run are unknown, the first registration waits for the clients to
 * settle (announceDelay; volt_register_hold()). */
void session_local_activity(struct session *s);
/* The handler list changed: announce it (daemon:handlers) if ready, or
 * end the first registration's hold if that completes what it waits for. */
void session_handlers_changed(struct session *s);
/* Bytes the handler list's JSON may take so that daemon:register fits in
 * one packet within the server's maxPayload (its default before the first
 * handshake). */
size_t session_handler_room(const struct session *s);

/* Credentials as currently in force (after rotation). Never log them. */
const char *session_team_cluster_id(const struct session *s);
const char *session_daemon_password(const struct session *s);

struct session_counters {
    uint64_t requests, responses_ok, rejected, timeouts, not_ready;
    uint64_t inbound, messages_in, messages_out, reconnects, late_responses, cancelled;
    uint64_t undeliverable; /* server answers/requests that could not be made local frames */
    uint64_t recovered;     /* reconnections where the server restored the session */
    uint64_t pending;
};
void session_get_counters(const struct session *s, struct session_counters *out);

#endif
