/* Payload arguments (JSON text, @FILE, -) and JSON output: indenting
 * keeps every value (strings with brackets, escapes, empty containers). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/errors.h"
#include "value.h"

static char *indent(const char *json)
{
    struct proto_buf out = PROTO_BUF_INIT;
    char *s;

    assert_int_equal(value_indent(json, strlen(json), &out), 0);
    s = strndup((const char *)out.data, out.len);
    proto_buf_free(&out);
    return s;
}

static void test_indent(void **state)
{
    char *s;
    (void)state;

    s = indent("{\"a\":[1,2],\"b\":{},\"c\":[],\"d\":\"x,{[]}:\\\"y\"}");
    assert_string_equal(s, "{\n"
                           "  \"a\": [\n"
                           "    1,\n"
                           "    2\n"
                           "  ],\n"
                           "  \"b\": {},\n"
                           "  \"c\": [],\n"
                           "  \"d\": \"x,{[]}:\\\"y\"\n"
                           "}");
    free(s);
    s = indent("42");
    assert_string_equal(s, "42");
    free(s);
    s = indent("\"a\\\\\"");
    assert_string_equal(s, "\"a\\\\\"");
    free(s);
}

/* JSON text -> msgpack -> JSON text is the same text. */
static char *round_trip(const char *arg, int *rc)
{
    struct proto_buf mp = PROTO_BUF_INIT, text = PROTO_BUF_INIT;
    static char err[300];
    char *s = NULL;

    *rc = value_from_arg(arg, &mp, err, sizeof(err));
    if (*rc == 0) {
        assert_int_equal(value_to_json(mp.data, mp.len, &text, err, sizeof(err)), 0);
        s = strndup((const char *)text.data, text.len);
    } else {
        s = strdup(err);
    }
    proto_buf_free(&mp);
    proto_buf_free(&text);
    return s;
}

static void test_arguments(void **state)
{
    char path[] = "/tmp/volt-test-payloadXXXXXX";
    int fd = mkstemp(path), rc;
    char arg[64], *s;
    (void)state;

    s = round_trip("{\"containerId\":\"c-1\",\"n\":18446744073709551615}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "{\"containerId\":\"c-1\",\"n\":18446744073709551615}");
    free(s);
    s = round_trip("{\"$bin\":\"AAE=\"}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "{\"$bin\":\"AAE=\"}");
    free(s);
    s = round_trip("{nope", &rc);
    assert_true(rc < 0);
    assert_non_null(strstr(s, "not JSON"));
    free(s);

    /* @FILE: the file's contents (whitespace around is fine). */
    assert_true(fd >= 0);
    assert_int_equal(write(fd, " [1, \"two\"]\n", 12), 12);
    close(fd);
    snprintf(arg, sizeof(arg), "@%s", path);
    s = round_trip(arg, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "[1,\"two\"]");
    free(s);
    unlink(path);
    s = round_trip(arg, &rc);
    assert_true(rc < 0);
    assert_non_null(strstr(s, "cannot read /tmp/volt-test-payload"));
    free(s);

    /* -: stdin. */
    int p[2], saved = dup(0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "{\"from\":\"stdin\"}", 16), 16);
    close(p[1]);
    dup2(p[0], 0);
    close(p[0]);
    s = round_trip("-", &rc);
    dup2(saved, 0);
    close(saved);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "{\"from\":\"stdin\"}");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_indent),
        cmocka_unit_test(test_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
