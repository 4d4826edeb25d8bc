/* util/metrics: the text format, exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/metrics.h"

static const char *text(struct proto_buf *b)
{
    proto_buf_append_byte(b, 0);
    b->len--;
    return (const char *)b->data;
}

static void counter_and_gauge(void **state)
{
    (void)state;
    struct proto_buf b = PROTO_BUF_INIT;
    assert_int_equal(metrics_counter(&b, "volt_x_total", "things", 42), 0);
    assert_int_equal(metrics_gauge(&b, "volt_y", "level", 0.25), 0);
    assert_string_equal(text(&b), "# HELP volt_x_total things\n# TYPE volt_x_total counter\n"
                                  "volt_x_total 42\n"
                                  "# HELP volt_y level\n# TYPE volt_y gauge\nvolt_y 0.25\n");
    proto_buf_free(&b);
}

static void labels_are_escaped(void **state)
{
    (void)state;
    struct proto_buf b = PROTO_BUF_INIT;
    assert_int_equal(metrics_sample(&b, "volt_c", "name", "a\"b\\c\nd", 3), 0);
    assert_string_equal(text(&b), "volt_c{name=\"a\\\"b\\\\c\\nd\"} 3\n");
    proto_buf_free(&b);
}

static void histogram_in_seconds(void **state)
{
    (void)state;
    struct proto_buf b = PROTO_BUF_INIT;
    struct histogram h = {0};
    histogram_observe(&h, 3);
    histogram_observe(&h, 40000);
    assert_int_equal(metrics_histogram(&b, "volt_h_seconds", "latency", &h), 0);
    const char *t = text(&b);
    assert_non_null(strstr(t, "# TYPE volt_h_seconds histogram\n"));
    assert_non_null(strstr(t, "volt_h_seconds_bucket{le=\"0.002\"} 0\n"));
    assert_non_null(strstr(t, "volt_h_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(t, "volt_h_seconds_bucket{le=\"30\"} 1\n"));
    assert_non_null(strstr(t, "volt_h_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(t, "volt_h_seconds_sum 40.003\n"));
    assert_non_null(strstr(t, "volt_h_seconds_count 2\n"));
    proto_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_and_gauge),
        cmocka_unit_test(labels_are_escaped),
        cmocka_unit_test(histogram_in_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
