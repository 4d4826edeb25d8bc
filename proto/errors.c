/* The error table: code, wire name, English text. The wire names are
 * byte-exact with the TypeScript client where it has a code; the local
 * protocol's own codes are CamelCase like the seed's newer names. */
#include "errors.h"

#include <string.h>

struct error_row {
    int code;
    const char *name;
    const char *text;
};

static const struct error_row error_table[] = {
    {PROTO_OK, "OK", "success"},
    {PROTO_E_SOCKET_NOT_READY, "SOCKET_NOT_READY",
     "socket is not connected or registration incomplete"},
    {PROTO_E_COMMAND_TIMEOUT, "COMMAND_TIMEOUT", "server did not respond within the timeout"},
    {PROTO_E_COMMAND_REJECTED, "COMMAND_REJECTED", "server explicitly rejected the command"},
    {PROTO_E_ENROLLMENT_FAILED, "EnrollmentFailed", "HTTP enrollment request failed"},
    {PROTO_E_SOCKET_CONNECTION_FAILED, "SocketConnectionFailed",
     "could not establish the socket.io connection"},
    {PROTO_E_SOCKET_REGISTRATION_FAILED, "SocketRegistrationFailed",
     "socket connected but registration was rejected"},
    {PROTO_E_HANDLER_ERROR, "HandlerError", "an inbound command handler failed"},
    {PROTO_E_EMIT_FAILED, "EmitFailed", "fire-and-forget emit failed"},
    {PROTO_E_NO_HANDLER, "NoHandler", "no handler is registered for the command"},
    {PROTO_E_HANDLER_TIMEOUT, "HandlerTimeout", "the handler did not reply in time"},
    {PROTO_E_HEARTBEAT_FAILED, "HeartbeatFailed", "heartbeat to the server failed"},
    {PROTO_E_BAD_FRAME, "BadFrame", "malformed frame (not msgpack, or over a limit)"},
    {PROTO_E_FRAME_TOO_LARGE, "FrameTooLarge", "frame length exceeds the maximum frame size"},
    {PROTO_E_UNKNOWN_OP, "UnknownOp", "unknown operation"},
    {PROTO_E_BAD_REQUEST, "BadRequest", "missing field or field of the wrong type"},
    {PROTO_E_VERSION_MISMATCH, "VersionMismatch", "no common protocol version"},
    {PROTO_E_PERMISSION_DENIED, "PermissionDenied", "permission denied"},
    {PROTO_E_LIMIT_EXCEEDED, "LimitExceeded", "a broker limit was exceeded"},
    {PROTO_E_PAYLOAD_TOO_LARGE, "PayloadTooLarge", "payload exceeds the server's maximum size"},
    {PROTO_E_DUPLICATE_ID, "DuplicateId", "correlation id is already in flight"},
    {PROTO_E_NOT_JSON, "NotJson", "value has no JSON representation"},
    {PROTO_E_BROKER_GONE, "BrokerGone", "connection to the broker was lost"},
    {PROTO_E_TIMEOUT, "Timeout", "timed out"},
    {PROTO_E_SHUTTING_DOWN, "ShuttingDown", "shutting down"},
    {PROTO_E_NOMEM, "NoMemory", "out of memory"},
    {PROTO_E_INTERNAL, "Internal", "internal error"},
};

/* The seed documents a second spelling for three codes (its "Error Codes"
 * table); accept both when reading, always write the first. */
static const struct error_row error_alias[] = {
    {PROTO_E_SOCKET_NOT_READY, "SocketNotReady", NULL},
    {PROTO_E_COMMAND_TIMEOUT, "CommandTimeout", NULL},
    {PROTO_E_COMMAND_REJECTED, "CommandRejected", NULL},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct error_row *find_code(int code)
{
    for (size_t i = 0; i < COUNT(error_table); i++)
        if (error_table[i].code == code)
            return &error_table[i];
    return NULL;
}

const char *proto_error_name(int code)
{
    const struct error_row *r = find_code(code);
    return r ? r->name : "Unknown";
}

const char *proto_error_text(int code)
{
    const struct error_row *r = find_code(code);
    return r ? r->text : "unknown error";
}

static int match_name(const struct error_row *rows, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(rows[i].name) == len && memcmp(rows[i].name, name, len) == 0)
            return rows[i].code;
    return 0;
}

int proto_error_from_name(const char *name, size_t len)
{
    if (!name)
        return 0;
    int code = match_name(error_table, COUNT(error_table), name, len);
    if (code == 0)
        code = match_name(error_alias, COUNT(error_alias), name, len);
    return code;
}
