/* proto_buf, plus the small tables beside it (errors, limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/buf.h"
#include "proto/errors.h"
#include "proto/limits.h"

static void test_buf_append_grow(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(proto_buf_append_byte(&b, (uint8_t)i), 0);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap >= 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(b.data[i], (uint8_t)i);
    assert_int_equal(proto_buf_append(&b, "abc", 3), 0);
    assert_memory_equal(b.data + 1000, "abc", 3);
    assert_int_equal(proto_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 1003);
    proto_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* reusable after free */
    assert_int_equal(proto_buf_append(&b, "x", 1), 0);
    proto_buf_free(&b);
}

static void test_buf_reserve_reset_consume(void **state)
{
    struct proto_buf b;
    proto_buf_init(&b);
    assert_int_equal(proto_buf_reserve(&b, 100), 0);
    assert_true(b.cap >= 100);
    size_t cap = b.cap;
    uint8_t *data = b.data;
    assert_int_equal(proto_buf_append(&b, "hello world", 11), 0);
    assert_ptr_equal(b.data, data); /* no realloc within the reservation */
    proto_buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    proto_buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    assert_int_equal(proto_buf_append(&b, "abc", 3), 0);
    proto_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap); /* memory kept */
    assert_int_equal(proto_buf_reserve(&b, SIZE_MAX), PROTO_E_NOMEM);
    assert_int_equal(b.cap, cap); /* unchanged on failure */
    proto_buf_free(&b);
}

static void test_errors_table(void **state)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {PROTO_E_SOCKET_NOT_READY, "SOCKET_NOT_READY"},
        {PROTO_E_COMMAND_TIMEOUT, "COMMAND_TIMEOUT"},
        {PROTO_E_COMMAND_REJECTED, "COMMAND_REJECTED"},
        {PROTO_E_ENROLLMENT_FAILED, "EnrollmentFailed"},
        {PROTO_E_SOCKET_CONNECTION_FAILED, "SocketConnectionFailed"},
        {PROTO_E_SOCKET_REGISTRATION_FAILED, "SocketRegistrationFailed"},
        {PROTO_E_HANDLER_ERROR, "HandlerError"},
        {PROTO_E_EMIT_FAILED, "EmitFailed"},
        {PROTO_E_NO_HANDLER, "NoHandler"},
        {PROTO_E_HANDLER_TIMEOUT, "HandlerTimeout"},
        {PROTO_E_HEARTBEAT_FAILED, "HeartbeatFailed"},
        {PROTO_E_BAD_FRAME, "BadFrame"},
        {PROTO_E_FRAME_TOO_LARGE, "FrameTooLarge"},
        {PROTO_E_UNKNOWN_OP, "UnknownOp"},
        {PROTO_E_BAD_REQUEST, "BadRequest"},
        {PROTO_E_VERSION_MISMATCH, "VersionMismatch"},
        {PROTO_E_PERMISSION_DENIED, "PermissionDenied"},
        {PROTO_E_LIMIT_EXCEEDED, "LimitExceeded"},
        {PROTO_E_PAYLOAD_TOO_LARGE, "PayloadTooLarge"},
        {PROTO_E_DUPLICATE_ID, "DuplicateId"},
        {PROTO_E_NOT_JSON, "NotJson"},
        {PROTO_E_BROKER_GONE, "BrokerGone"},
        {PROTO_E_TIMEOUT, "Timeout"},
        {PROTO_E_SHUTTING_DOWN, "ShuttingDown"},
        {PROTO_E_NOMEM, "NoMemory"},
        {PROTO_E_INTERNAL, "Internal"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_string_equal(proto_error_name(names[i].code), names[i].name);
        assert_int_equal(proto_error_from_name(names[i].name, strlen(names[i].name)),
                         names[i].code);
        assert_non_null(proto_error_text(names[i].code));
        assert_string_not_equal(proto_error_text(names[i].code), "unknown error");
    }
    assert_string_equal(proto_error_name(-999), "Unknown");
    assert_string_equal(proto_error_text(-999), "unknown error");
    assert_int_equal(proto_error_from_name("NoSuchCode", 10), 0);
    assert_int_equal(proto_error_from_name("BadFrameX", 8), PROTO_E_BAD_FRAME); /* uses len */
    assert_int_equal(proto_error_from_name("BadFram", 7), 0);
    assert_int_equal(proto_error_from_name(NULL, 0), 0);
    /* the seed's second spellings */
    assert_int_equal(proto_error_from_name("CommandTimeout", 14), PROTO_E_COMMAND_TIMEOUT);
    assert_int_equal(proto_error_from_name("CommandRejected", 15), PROTO_E_COMMAND_REJECTED);
    assert_int_equal(proto_error_from_name("SocketNotReady", 14), PROTO_E_SOCKET_NOT_READY);
}

static void test_limits_default(void **state)
{
    struct proto_limits l;
    proto_limits_default(&l);
    assert_int_equal(l.max_frame, 16u * 1024 * 1024);
    assert_int_equal(l.max_depth, 64);
    assert_int_equal(l.max_elements, 1u << 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_grow),
        cmocka_unit_test(test_buf_reserve_reset_consume),
        cmocka_unit_test(test_errors_table),
        cmocka_unit_test(test_limits_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
