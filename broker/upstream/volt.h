/* The VOLT events (shared/volt-upstream-protocol.md, sections 2-7) as a pure
 * module: bytes in, values out. It sits above sio.h (which gives it the
 * JSON text of an EVENT or ACK and its attachments) and below session.c
 * (which owns the socket, the timers, the pending table and the state
 * machine, and performs what this module decides).
 *
 * Inbound, one parser with its scratch (struct volt_parser, opaque, reused for
 * every packet) turns the JSON of a packet into a `struct volt_event`:
 *
 *   ["daemon:response", {"requestId": <uuid>, "success": true, "data": X}]
 *       VOLT_EV_RESPONSE, ok; X converted on demand (volt_response_data):
 *       a response to a request we no longer wait for costs no conversion.
 *   ["daemon:response", {"requestId": <uuid>, "success": <anything else>,
 *                        "error": {"code": C, "message": M}}]
 *       VOLT_EV_RESPONSE, !ok: a rejection; a missing message reads
 *       "rejected by the server", a missing code is empty.
 *   ["server:request", {"requestId": R, "command": C, "payload": P}]
 *       VOLT_EV_SERVER_REQUEST. R is any string of 1..VOLT_ID_MAX bytes (the
 *       server's ids are not ours to check). No command, or a payload that
 *       cannot become a local value, is still a request that is owed an
 *       answer: `refusal` then holds the HandlerError message to send.
 *   ["message", {"type": T, "data": D}]
 *       VOLT_EV_MESSAGE; data absent is nil.
 *   An event whose JSON does not parse, but whose text starts like a
 *   daemon:response or server:request and holds a plain "requestId":"..."
 *       VOLT_EV_SALVAGE_RESPONSE / VOLT_EV_SALVAGE_REQUEST: the request it
 *       was about is answered at once (BadFrame / HandlerError), not left
 *       to its timeout or unanswered.
 *   Anything else (no name, no object argument, an unknown name, a
 *   daemon:response without a valid uuid, a server:request without a
 *   usable id, a message without a type or with undeliverable data)
 *       VOLT_EV_IGNORED with `why` for the debug log: the contract says
 *       unknown traffic is tolerated, never fatal.
 *
 * Values (data, payload) are converted to msgpack with binary placeholders
 * replaced by the packet's attachments. Whatever parses is accepted at any
 * depth, but a value that lands deeper than a local frame may nest
 * (PROTO_DEFAULT_MAX_DEPTH - 1 levels below the frame) is refused where it
 * is converted, so that its request is still answered.
 *
 * Outbound, plain functions append the JSON of one event to a caller buffer
 * (the Socket.IO header goes in front later, by the session), taking values
 * as msgpack and collecting binary values into a `struct volt_out`.
 *
 * Return values: 0 on success, a negative `enum proto_error` on failure,
 * as in the sibling codecs. Nothing here allocates except to grow the
 * caller's buffers and the parser's scratch.
 */
#ifndef BROKER_UPSTREAM_VOLT_H
#define BROKER_UPSTREAM_VOLT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/json.h"
#include "proto/msgpack.h"

#define VOLT_ID_MAX          128 /* bytes of a server:request requestId */
#define VOLT_UUID_LEN        16
#define VOLT_MAX_ATTACHMENTS 64 /* binary values per packet, both ways */
#define VOLT_OFFSET_MAX      63 /* bytes of a recovery offset we keep */
#define VOLT_PID_MAX         63 /* bytes of a recovery session id we keep */

/* Three failed heartbeats in a row mean the session is dead (section 5). */
#define VOLT_HEARTBEATS_BEFORE_RECONNECT 3

/* ---- inbound ---- */

struct volt_parser;

/* NULL on out of memory. volt_parser_free(NULL) is a no-op. (Not
 * volt_new/volt_free: the client library's public volt_free() has that name.) */
struct volt_parser *volt_parser_new(void);
void volt_parser_free(struct volt_parser *v);

enum volt_event_kind {
    VOLT_EV_IGNORED,
    VOLT_EV_RESPONSE,
    VOLT_EV_SERVER_REQUEST,
    VOLT_EV_MESSAGE,
    VOLT_EV_SALVAGE_RESPONSE,
    VOLT_EV_SALVAGE_REQUEST,
};

/* A parsed event. Spans point into the parser's scratch and the packet
 * (ids into the event itself): valid until the next volt_* call on the
 * same parser. */
struct volt_event {
    enum volt_event_kind kind;
    bool malformed;  /* the JSON did not parse (IGNORED or SALVAGE_*) */
    const char *why; /* IGNORED: static English reason; SALVAGE_*: the JSON error */
    /* RESPONSE, SALVAGE_RESPONSE: the request's uuid. */
    uint8_t uuid[VOLT_UUID_LEN];
    /* Every kind but IGNORED and MESSAGE: the requestId text, NUL-terminated. */
    char id[VOLT_ID_MAX + 1];
    uint32_t id_len;
    /* RESPONSE. */
    bool ok;
    struct proto_span server_code; /* !ok: the server's error code (may be empty) */
    struct proto_span message;     /* !ok: the server's message, or our default */
    /* SERVER_REQUEST. */
    struct proto_span command;
    struct proto_span payload; /* msgpack, len 0 when absent */
    /* MESSAGE. */
    struct proto_span type;
    struct proto_span data; /* msgpack; nil when absent */
    /* SERVER_REQUEST, SALVAGE_*: the answer it must get instead of a
     * handler's, NULL when none (NUL-terminated, in the parser). */
    const char *refusal;
    bool undeliverable; /* the refusal (or IGNORED message) is about a value we could not convert */
    bool unanswerable;  /* IGNORED: a server:request without a usable id, owed an answer we
                           cannot address */
    /* The recovery offset (the extra last string argument a server with
     * connection state recovery appends), when asked for and present. */
    bool has_offset;
    char offset[VOLT_OFFSET_MAX + 1];
};

/* Parses the JSON data of an EVENT/BINARY_EVENT packet with its n_att
 * attachments (placeholder num N is att[N]). want_offset: look for the
 * recovery offset (only a server that keeps sessions appends it). Always
 * fills *ev; returns 0, or PROTO_E_NOMEM. */
int volt_parse_event(struct volt_parser *v, const char *json, size_t len,
                     const struct proto_span *att, uint32_t n_att, bool want_offset,
                     struct volt_event *ev);

/* The data of the RESPONSE just parsed (ok) as msgpack in *out (len 0 when
 * the response has none). 0, or a negative code with the reason, ready to
 * give the requester, in *why (valid until the next call). */
int volt_response_data(struct volt_parser *v, struct proto_span *out, const char **why);

/* The ack of daemon:register: [{"success": true}] or
 * [{"success": false, "error": {"code": C, "message": M}}]. */
struct volt_register_ack {
    bool ok;
    char code[64];     /* "" when not given (truncated when longer) */
    char message[192]; /* "" when not given */
};
void volt_parse_register_ack(struct volt_parser *v, const char *json, size_t len,
                             struct volt_register_ack *ack);

/* The namespace CONNECT's data: {"sid": ..., "pid": P}. P into pid
 * (VOLT_PID_MAX + 1 bytes), "" when absent, not a string or too long. */
void volt_parse_connect(struct volt_parser *v, const char *json, size_t len,
                        char pid[VOLT_PID_MAX + 1]);

/* The CONNECT_ERROR's message ({"message": M}), NUL-terminated in the
 * parser, or "refused". */
const char *volt_parse_connect_error(struct volt_parser *v, const char *json, size_t len);

/* ---- outbound ---- */

/* One packet's JSON being built: the buffer it is appended to, and the
 * binary values found in the msgpack values put in it (spans into those
 * values: they must outlive the send). */
struct volt_out {
    struct proto_buf *buf;
    struct proto_span att[VOLT_MAX_ATTACHMENTS];
    uint32_t n_att;
    const char *why; /* on PROTO_E_NOT_JSON: why the value has no JSON form */
    struct proto_json_error err;
};

static inline void volt_out_init(struct volt_out *o, struct proto_buf *buf)
{
    o->buf = buf;
    o->n_att = 0;
    o->why = NULL;
    o->err.text[0] = '\0';
}

/* ["daemon:request",{"requestId":id,"command":command[,"payload":payload]}]
 * with payload omitted when NULL or empty. PROTO_E_NOT_JSON (command not
 * UTF-8, payload with no JSON form: o->why), PROTO_E_NOMEM. */
int volt_put_request(struct volt_out *o, const char *id, size_t id_len,
                     const struct proto_span *command, const struct proto_span *payload);

/* ["message",{"type":type,"data":data}]. Errors as volt_put_request. */
int volt_put_message(struct volt_out *o, const struct proto_span *type,
                     const struct proto_span *data);

/* ["server:response",{"requestId":id,"success":true[,"data":data]}] or,
 * !ok, {"success":false,"error":{"code":code,"message":message}}; a
 * message that is not UTF-8 is replaced by a note saying so (the answer
 * still goes). PROTO_E_NOT_JSON only for ok data with no JSON form. */
int volt_put_answer(struct volt_out *o, const char *id, size_t id_len, bool ok,
                    const struct proto_span *data, const char *code,
                    const struct proto_span *message);

/* A HandlerError answer saying why, in place of one that cannot go. */
int volt_put_handler_error(struct volt_out *o, const char *id, size_t id_len, const char *why);

/* ["daemon:register",{"teamClusterId":..,"hostname":..,"version":..,
 * "handlers":handlers}] (handlers: a msgpack array of str). PROTO_E_NOT_JSON
 * when a string is not UTF-8 (o->why), PROTO_E_NOMEM. */
int volt_put_register(struct volt_out *o, const char *team_cluster_id, const char *hostname,
                      const char *version, const struct proto_span *handlers);

/* ["daemon:handlers",{"handlers":handlers}]. */
int volt_put_handlers(struct volt_out *o, const struct proto_span *handlers);

/* The namespace CONNECT's auth object, with pid and offset when both are
 * non-empty (connection state recovery). [*secret_at, *secret_end) is
 * where the password's JSON string is in o->buf, to redact or wipe. */
int volt_put_auth(struct volt_out *o, const char *team_cluster_id, const char *password,
                  const char *pid, const char *offset, size_t *secret_at, size_t *secret_end);

/* ---- sizes ---- */

/* Bytes the handler list's JSON may take so that daemon:register fits in
 * one packet of max_payload bytes, whose header takes at most header_max:
 * everything but the list, at its worst (every byte of the id and the host
 * name escaped as \u00XX). 0 when nothing fits. */
size_t volt_handler_room(size_t max_payload, size_t header_max, const char *team_cluster_id,
                         const char *hostname);

/* Bytes of a msgpack array of str once written as a JSON array; SIZE_MAX
 * when it is not such an array. */
size_t volt_names_json_size(const struct proto_span *list);

/* ---- heartbeat (section 5) ---- */

#define VOLT_HEARTBEAT_COMMAND     "runtime.heartbeat"
#define VOLT_HEARTBEAT_PAYLOAD_MAX 64

/* {"uptimeMs":N,"clients":N,"handlers":N} as msgpack into buf; its length. */
size_t volt_heartbeat_payload(uint8_t buf[VOLT_HEARTBEAT_PAYLOAD_MAX], uint64_t uptime_ms,
                              uint64_t clients, uint64_t handlers);

/* What to do about a heartbeat's outcome. */
enum volt_heartbeat_action {
    VOLT_HB_NONE,   /* answered, or the link went away (reported on its own) */
    VOLT_HB_REPORT, /* report the failure */
    VOLT_HB_DROP,   /* report it, and drop the link: too many in a row */
};

/* Updates *failures (in a row) from a heartbeat's result code (0,
 * PROTO_E_SOCKET_NOT_READY, or another failure). */
enum volt_heartbeat_action volt_heartbeat_result(uint32_t *failures, int code);

/* ---- the first registration's hold ---- */

/* What the broker knows about the handlers that were registered when it
 * last stopped. */
enum volt_handlers_back {
    VOLT_HANDLERS_UNKNOWN,  /* after a crash, or the list could not be read */
    VOLT_HANDLERS_WAITING,  /* the last stop's handlers are not all registered again */
    VOLT_HANDLERS_RESTORED, /* they are (or there were none, or this is a first start) */
};

/* Whether the first daemon:register after a start may go now (0) or
 * should wait: the ms until it is worth asking again (a handler list
 * change is also worth asking again). After a restart the services come
 * back and register within moments; a server request arriving before
 * their handlers are announced would get NoHandler. So, within
 * announce_delay ms of `started` (0: never hold):
 *   RESTORED  register now: nothing known is missing;
 *   WAITING   wait until the deadline (the list may complete earlier);
 *   UNKNOWN   wait while local clients are still arriving: until no
 *             client activity (hello, register) for announce_delay / 10,
 *             counted from `started` when there was none since.
 * Times in ms on one clock (uv_now). */
uint64_t volt_register_hold(uint64_t now, uint64_t started, uint32_t announce_delay,
                            uint64_t last_activity, enum volt_handlers_back back);

#endif
