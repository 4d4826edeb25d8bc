/* Time and duration text, millisecond parsing, JSON string escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

static void test_time_iso(void **state)
{
    char buf[40];
    /* 2026-11-28T04:00:00Z is 1795838400 s after the epoch. */
    uint64_t t = 1795838400ull * 1000000u + 123456u;

    assert_string_equal(inspect_time_iso(t, 3, buf, sizeof(buf)), "2026-11-28T04:00:00.123Z");
    assert_string_equal(inspect_time_iso(t, 6, buf, sizeof(buf)), "2026-11-28T04:00:00.123456Z");
    assert_string_equal(inspect_time_iso(t, 0, buf, sizeof(buf)), "2026-11-28T04:00:00Z");
    assert_string_equal(inspect_time_iso(0, 3, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
    /* Truncated to the buffer, still terminated. */
    assert_string_equal(inspect_time_iso(t, 3, buf, 5), "2026");
}

static void test_duration(void **state)
{
    char buf[40];

    assert_string_equal(inspect_duration(0, buf, sizeof(buf)), "0s");
    assert_string_equal(inspect_duration(1250, buf, sizeof(buf)), "1.250s");
    assert_string_equal(inspect_duration(59000, buf, sizeof(buf)), "59s");
    assert_string_equal(inspect_duration(60000, buf, sizeof(buf)), "1m 00s");
    assert_string_equal(inspect_duration(302000, buf, sizeof(buf)), "5m 02s");
    assert_string_equal(inspect_duration(7384000, buf, sizeof(buf)), "2h 03m 04s");
    assert_string_equal(
        inspect_duration((3ull * 86400 + 4 * 3600 + 5 * 60) * 1000, buf, sizeof(buf)),
        "3d 04h 05m");
}

static void test_parse_ms(void **state)
{
    int v = -1;

    assert_int_equal(inspect_parse_ms("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(inspect_parse_ms("30000", &v), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(inspect_parse_ms("2147483647", &v), 0);
    assert_int_equal(v, 2147483647);
    assert_int_equal(inspect_parse_ms("2147483648", &v), -1);
    assert_int_equal(inspect_parse_ms("-1", &v), -1);
    assert_int_equal(inspect_parse_ms("", &v), -1);
    assert_int_equal(inspect_parse_ms("12ms", &v), -1);
    assert_int_equal(inspect_parse_ms(" 5", &v), -1);
    assert_int_equal(inspect_parse_ms(NULL, &v), -1);
}

static void test_json_string(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    inspect_json_string(f, "a\"b\\c\nd\te\x01");
    fclose(f);
    assert_string_equal(text, "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
    free(text);
}

static void test_clocks_move(void **state)
{
    uint64_t a = inspect_now_us(), m = inspect_mono_ms();

    /* After 2020 and not going backwards. */
    assert_true(a > 1577836800ull * 1000000u);
    assert_true(inspect_now_us() >= a);
    assert_true(inspect_mono_ms() >= m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_iso),    cmocka_unit_test(test_duration),
        cmocka_unit_test(test_parse_ms),    cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_clocks_move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
