/* Error names and texts: the proto table is the one source; the public
 * enum is checked against it here, value by value. */
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "volt/client.h"

#define SAME(v, p) _Static_assert((int)(v) == (int)(p), #v " must equal " #p)
SAME(VOLT_OK, PROTO_OK);
SAME(VOLT_E_SOCKET_NOT_READY, PROTO_E_SOCKET_NOT_READY);
SAME(VOLT_E_COMMAND_TIMEOUT, PROTO_E_COMMAND_TIMEOUT);
SAME(VOLT_E_COMMAND_REJECTED, PROTO_E_COMMAND_REJECTED);
SAME(VOLT_E_ENROLLMENT_FAILED, PROTO_E_ENROLLMENT_FAILED);
SAME(VOLT_E_SOCKET_CONNECTION_FAILED, PROTO_E_SOCKET_CONNECTION_FAILED);
SAME(VOLT_E_SOCKET_REGISTRATION_FAILED, PROTO_E_SOCKET_REGISTRATION_FAILED);
SAME(VOLT_E_HANDLER_ERROR, PROTO_E_HANDLER_ERROR);
SAME(VOLT_E_EMIT_FAILED, PROTO_E_EMIT_FAILED);
SAME(VOLT_E_NO_HANDLER, PROTO_E_NO_HANDLER);
SAME(VOLT_E_HANDLER_TIMEOUT, PROTO_E_HANDLER_TIMEOUT);
SAME(VOLT_E_HEARTBEAT_FAILED, PROTO_E_HEARTBEAT_FAILED);
SAME(VOLT_E_BAD_FRAME, PROTO_E_BAD_FRAME);
SAME(VOLT_E_FRAME_TOO_LARGE, PROTO_E_FRAME_TOO_LARGE);
SAME(VOLT_E_UNKNOWN_OP, PROTO_E_UNKNOWN_OP);
SAME(VOLT_E_BAD_REQUEST, PROTO_E_BAD_REQUEST);
SAME(VOLT_E_VERSION_MISMATCH, PROTO_E_VERSION_MISMATCH);
SAME(VOLT_E_PERMISSION_DENIED, PROTO_E_PERMISSION_DENIED);
SAME(VOLT_E_LIMIT_EXCEEDED, PROTO_E_LIMIT_EXCEEDED);
SAME(VOLT_E_PAYLOAD_TOO_LARGE, PROTO_E_PAYLOAD_TOO_LARGE);
SAME(VOLT_E_DUPLICATE_ID, PROTO_E_DUPLICATE_ID);
SAME(VOLT_E_NOT_JSON, PROTO_E_NOT_JSON);
SAME(VOLT_E_BROKER_GONE, PROTO_E_BROKER_GONE);
SAME(VOLT_E_TIMEOUT, PROTO_E_TIMEOUT);
SAME(VOLT_E_SHUTTING_DOWN, PROTO_E_SHUTTING_DOWN);
SAME(VOLT_E_NOMEM, PROTO_E_NOMEM);
SAME(VOLT_E_INTERNAL, PROTO_E_INTERNAL);

const char *volt_strerror(int code)
{
    return proto_error_text(code);
}

const char *volt_err_name(int code)
{
    return proto_error_name(code);
}

int volt_err_from_name(const char *name)
{
    return name ? proto_error_from_name(name, strlen(name)) : 0;
}

/* The header is the one source of the version: CMake reads the
 * library's VERSION (libvoltclient.so.1.0.0), the .pc and the package
 * config version from it. */
const char *volt_version(void)
{
    return VOLT_VERSION_STRING;
}

int volt_version_number(void)
{
    return VOLT_VERSION_NUMBER;
}

void volt_free(void *p)
{
    free(p);
}

void volt_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}
