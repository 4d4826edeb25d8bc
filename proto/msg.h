/* Typed frames of the local protocol: decode a frame body into a
 * `struct proto_msg`, encode one into a proto_buf. Pure: no I/O.
 *
 * Every frame is a msgpack map with string keys; `op` names the operation.
 * The set of keys is small and shared by all ops, so a message is one flat
 * struct with a presence bit per field rather than a union per op: decoding
 * is one pass over the map, encoding writes only the present fields, and a
 * new op costs a row in a table. Unknown keys are ignored (a newer peer may
 * send more); a known key with the wrong type is PROTO_E_BAD_REQUEST.
 *
 * Strings and msgpack values (payload, data, ...) are spans into the frame:
 * nothing is copied or allocated by the decoder, and an encoder copies raw
 * values verbatim. See proto/PROTOCOL.md for each op's required fields.
 */
#ifndef PROTO_MSG_H
#define PROTO_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "msgpack.h"

enum proto_op {
    PROTO_OP_NONE = 0,
    /* client -> broker */
    PROTO_OP_HELLO,       /* version negotiation, client name */
    PROTO_OP_STATUS,      /* -> result(data = status map) */
    PROTO_OP_REQUEST,     /* sendCommand -> result */
    PROTO_OP_EMIT,        /* fire-and-forget message upstream; result only if id given */
    PROTO_OP_REGISTER,    /* register handlers for commands -> result */
    PROTO_OP_UNREGISTER,  /* -> result */
    PROTO_OP_SUBSCRIBE,   /* onMessage with a filter -> result */
    PROTO_OP_UNSUBSCRIBE, /* -> result */
    PROTO_OP_REPLY,       /* a handler's answer to a call */
    PROTO_OP_CREDENTIAL,  /* teamClusterId / daemonPassword -> result */
    PROTO_OP_PING,        /* -> pong */
    PROTO_OP_MONITOR,     /* start tapping all traffic -> result, then trace frames */
    PROTO_OP_METRICS,     /* -> result(data = OpenMetrics text) */
    /* broker -> client */
    PROTO_OP_WELCOME, /* answer to hello */
    PROTO_OP_RESULT,  /* answer to any client op that carried an id */
    PROTO_OP_CALL,    /* an inbound command for a registered handler */
    PROTO_OP_MESSAGE, /* an inbound message matching a subscription */
    PROTO_OP_EVENT,   /* connected / disconnected / error */
    PROTO_OP_PONG,
    PROTO_OP_ERROR, /* a problem with a frame that no result answers */
    PROTO_OP_TRACE, /* one tapped frame, for monitors */
    PROTO_OP__COUNT
};

/* Presence bits, one per field. */
enum proto_field {
    PROTO_F_ID = 1u << 0, /* uint: correlation id (client's for requests, broker's for calls) */
    PROTO_F_MIN_VERSION = 1u << 1, /* uint: hello */
    PROTO_F_MAX_VERSION = 1u << 2, /* uint: hello */
    PROTO_F_VERSION = 1u << 3,     /* uint: welcome */
    PROTO_F_NAME =
        1u << 4, /* str: hello (client name), welcome (broker name), credential (which) */
    PROTO_F_COMMAND = 1u << 5,      /* str: request, call */
    PROTO_F_COMMANDS = 1u << 6,     /* array of str: register, unregister */
    PROTO_F_PAYLOAD = 1u << 7,      /* any: request, call */
    PROTO_F_TIMEOUT_MS = 1u << 8,   /* uint: request (0 = broker default), call (time left) */
    PROTO_F_OK = 1u << 9,           /* bool: result, reply */
    PROTO_F_DATA = 1u << 10,        /* any: result, reply, emit, message */
    PROTO_F_CODE = 1u << 11,        /* str: error code name (result, reply, event, error) */
    PROTO_F_MESSAGE = 1u << 12,     /* str: error message (result, reply, event, error) */
    PROTO_F_SERVER_CODE = 1u << 13, /* str: the server's own code of a COMMAND_REJECTED */
    PROTO_F_TYPE = 1u << 14,        /* str: emit/message type; subscribe filter text */
    PROTO_F_MATCH = 1u << 15,       /* str: subscribe/unsubscribe: "all" | "exact" | "prefix" */
    PROTO_F_EVENT = 1u << 16,       /* str: event: "connected" | "disconnected" | "error" */
    PROTO_F_REASON = 1u << 17,      /* str: event: why (disconnected) */
    PROTO_F_MAX_FRAME = 1u << 18,   /* uint: welcome */
    PROTO_F_STATE = 1u << 19,       /* str: welcome/event: upstream state */
    PROTO_F_DIR = 1u << 20,         /* str: trace: direction */
    PROTO_F_PEER = 1u << 21,        /* uint: trace: peer id */
    PROTO_F_TIME_US = 1u << 22,     /* uint: trace: microseconds since the epoch */
    PROTO_F_FRAME = 1u << 23,       /* any: trace: the frame (map) or upstream packet (str/bin) */
    PROTO_F_TEAM_CLUSTER_ID = 1u << 24, /* str: welcome, event connected (v2) */
    PROTO_F_MAX_TIMEOUT_MS = 1u << 25,  /* uint: welcome: the largest request timeout (v2) */
    PROTO_F_VOLATILE = 1u << 26,        /* bool: emit: drop rather than buffer (v2) */
    PROTO_F_ABOUT = 1u << 27,           /* str: error: op of the frame it is about (v2) */
};
/* Every field bit (for tests and tools that walk them all). */
#define PROTO_F__ALL ((PROTO_F_ABOUT << 1) - 1u)

struct proto_msg {
    enum proto_op op;
    uint32_t fields; /* enum proto_field bits present */
    uint64_t id;
    uint64_t min_version, max_version, version;
    uint64_t timeout_ms;
    uint64_t max_frame;
    uint64_t peer;
    uint64_t time_us;
    uint64_t max_timeout_ms;
    bool ok;
    bool is_volatile;
    struct proto_span name, command, code, message, server_code, type, match, event, reason, state,
        dir, team_cluster_id, about;
    struct proto_span commands; /* raw msgpack array; every element checked to be a str */
    uint32_t commands_count;
    struct proto_span payload, data, frame; /* raw msgpack values */
};

static inline bool proto_msg_has(const struct proto_msg *m, enum proto_field f)
{
    return (m->fields & f) != 0;
}

/* How the broker answers a client op. */
enum proto_answer {
    PROTO_ANSWER_NONE,         /* nothing (reply; every op the broker sends) */
    PROTO_ANSWER_RESULT,       /* one `result` under the op's id */
    PROTO_ANSWER_RESULT_IF_ID, /* a `result` when the op carries an id (emit) */
    PROTO_ANSWER_PONG,         /* one `pong` under the op's id (ping) */
    PROTO_ANSWER_WELCOME,      /* `welcome` (hello) */
};

/* One row of the op table: every fact about an op, written once. */
struct proto_op_info {
    const char *name;         /* on the wire */
    bool from_client;         /* sent by clients (else by the broker) */
    enum proto_answer answer; /* how the broker answers it */
    uint32_t required;        /* enum proto_field bits that must be present */
    const char *summary;      /* one line for people (help texts) */
};

/* The row of op; NULL for PROTO_OP_NONE and out-of-range values. */
const struct proto_op_info *proto_op_info(enum proto_op op);
/* True when a client frame of this op, with (has_id) or without an id, is
 * answered under its id: then a problem with it is a `result` (or `pong`)
 * under that id; otherwise it is an `error` frame, which never answers a
 * request of the client (a reply's id is a call id, not a request id).
 * An unknown op (PROTO_OP_NONE) with an id counts as answered by id. */
bool proto_op_answered_by_id(enum proto_op op, bool has_id);

/* Op name on the wire ("request", ...) and back. NULL / PROTO_OP_NONE when unknown. */
const char *proto_op_name(enum proto_op op);
enum proto_op proto_op_from_name(const char *name, size_t len);

/* Decodes a frame body that proto_reader returned (already validated).
 * On error returns PROTO_E_UNKNOWN_OP or PROTO_E_BAD_REQUEST with a static
 * English reason in *why (e.g. "field 'id' must be an unsigned integer");
 * m->id/PROTO_F_ID are still filled when the frame had a valid id, so the
 * error can be answered under it. A missing or unknown `op` is
 * PROTO_E_UNKNOWN_OP (it wins over type errors); a known key given twice is
 * PROTO_E_BAD_REQUEST. Bytes that did not come from a reader are read
 * safely: malformed msgpack is PROTO_E_BAD_FRAME. */
int proto_msg_decode(const struct proto_span *frame, struct proto_msg *m, const char **why);
/* The *why of proto_msg_decode's PROTO_E_UNKNOWN_OP when the map has no
 * `op` at all (compare the pointer): not a newer peer's op, but no frame
 * of the protocol. */
extern const char proto_msg_why_no_op[];

/* Checks that the op's required fields are present (see PROTOCOL.md).
 * 0, or PROTO_E_BAD_REQUEST with *why naming the missing field. */
int proto_msg_check(const struct proto_msg *m, const char **why);

/* Appends one whole frame (length prefix + map) to out. Raw fields are
 * copied verbatim (a present raw field with an empty span is written as nil,
 * an empty `commands` as []). 0, PROTO_E_NOMEM, PROTO_E_UNKNOWN_OP (m->op is
 * not an op), or PROTO_E_FRAME_TOO_LARGE if the body exceeds max_frame (0
 * means PROTO_DEFAULT_MAX_FRAME). On error out->len is as it was. */
int proto_msg_encode(struct proto_buf *out, const struct proto_msg *m, uint32_t max_frame);

/* Iterates the `commands` array (validated by decode: all strings). */
struct proto_str_iter {
    struct proto_mp_cursor cur;
    uint32_t left;
};
void proto_msg_commands(const struct proto_msg *m, struct proto_str_iter *it);
bool proto_str_iter_next(struct proto_str_iter *it, struct proto_span *s);

/* Helpers to fill a span from a C string. */
static inline struct proto_span proto_span_str(const char *s, uint32_t len)
{
    struct proto_span sp = {(const uint8_t *)s, len};
    return sp;
}

#endif
