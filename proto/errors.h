/* Error codes of the local protocol.
 *
 * One table for the whole project: the wire carries the *name* (a string,
 * byte-exact with the TypeScript client's codes where it has one), C code
 * uses the enum. The client library's public enum mirrors these values
 * (negated) and is checked against them at compile time.
 *
 * Convention inside proto/ (after dbus-broker): functions return 0 or a
 * positive count on success and a negative `enum proto_error` on failure.
 */
#ifndef PROTO_ERRORS_H
#define PROTO_ERRORS_H

#include <stddef.h>

enum proto_error {
    PROTO_OK = 0,
    /* Seed codes: sendCommand / emit / connect / handlers. */
    PROTO_E_SOCKET_NOT_READY = -1,           /* SOCKET_NOT_READY */
    PROTO_E_COMMAND_TIMEOUT = -2,            /* COMMAND_TIMEOUT */
    PROTO_E_COMMAND_REJECTED = -3,           /* COMMAND_REJECTED */
    PROTO_E_ENROLLMENT_FAILED = -4,          /* EnrollmentFailed */
    PROTO_E_SOCKET_CONNECTION_FAILED = -5,   /* SocketConnectionFailed */
    PROTO_E_SOCKET_REGISTRATION_FAILED = -6, /* SocketRegistrationFailed */
    PROTO_E_HANDLER_ERROR = -7,              /* HandlerError */
    PROTO_E_EMIT_FAILED = -8,                /* EmitFailed */
    PROTO_E_NO_HANDLER = -9,                 /* NoHandler */
    PROTO_E_HANDLER_TIMEOUT = -10,           /* HandlerTimeout */
    PROTO_E_HEARTBEAT_FAILED = -11,          /* HeartbeatFailed */
    /* Local protocol. */
    PROTO_E_BAD_FRAME = -20,         /* BadFrame: not msgpack, or over a limit */
    PROTO_E_FRAME_TOO_LARGE = -21,   /* FrameTooLarge: length prefix over max_frame */
    PROTO_E_UNKNOWN_OP = -22,        /* UnknownOp */
    PROTO_E_BAD_REQUEST = -23,       /* BadRequest: missing field or wrong type */
    PROTO_E_VERSION_MISMATCH = -24,  /* VersionMismatch */
    PROTO_E_PERMISSION_DENIED = -25, /* PermissionDenied */
    PROTO_E_LIMIT_EXCEEDED = -26,    /* LimitExceeded: a quota of the broker */
    PROTO_E_PAYLOAD_TOO_LARGE = -27, /* PayloadTooLarge: over the server's maxPayload */
    PROTO_E_DUPLICATE_ID = -28,      /* DuplicateId: correlation id already in flight */
    PROTO_E_NOT_JSON = -29,          /* NotJson: value has no JSON form */
    PROTO_E_BROKER_GONE = -30,       /* BrokerGone: connection to the broker lost */
    PROTO_E_TIMEOUT = -31,           /* Timeout: local wait ran out */
    PROTO_E_SHUTTING_DOWN = -32,     /* ShuttingDown */
    PROTO_E_NOMEM = -40,             /* NoMemory */
    PROTO_E_INTERNAL = -41,          /* Internal */
};

/* Wire name of a code ("SOCKET_NOT_READY", "HandlerError", ...); "Unknown"
 * for a value outside the table. Never NULL. */
const char *proto_error_name(int code);
/* Code for a wire name of `len` bytes, or 0 when the name is not in the
 * table (callers keep the unknown string, e.g. a server's own code). */
int proto_error_from_name(const char *name, size_t len);
/* One-line English description for people. Never NULL. */
const char *proto_error_text(int code);

#endif
