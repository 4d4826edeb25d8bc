/* util/histogram: bucket edges and cumulative counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/histogram.h"

static void edges_are_inclusive(void **state)
{
    (void)state;
    struct histogram h = {0};
    histogram_observe(&h, 0);     /* <= 1 */
    histogram_observe(&h, 1);     /* <= 1 */
    histogram_observe(&h, 2);     /* <= 2 */
    histogram_observe(&h, 3);     /* <= 5 */
    histogram_observe(&h, 30000); /* <= 30000 */
    histogram_observe(&h, 30001); /* +Inf */
    assert_int_equal(histogram_cumulative(&h, 0), 2);
    assert_int_equal(histogram_cumulative(&h, 1), 3);
    assert_int_equal(histogram_cumulative(&h, 2), 4);
    assert_int_equal(histogram_cumulative(&h, HISTOGRAM_BUCKETS - 1), 5);
    assert_int_equal(histogram_cumulative(&h, HISTOGRAM_BUCKETS), 6);
    assert_int_equal(h.count, 6);
    assert_int_equal(h.sum_ms, 0 + 1 + 2 + 3 + 30000 + 30001);
}

static void bounds_increase(void **state)
{
    (void)state;
    for (size_t i = 1; i < HISTOGRAM_BUCKETS; i++)
        assert_true(histogram_bounds_ms[i] > histogram_bounds_ms[i - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edges_are_inclusive),
        cmocka_unit_test(bounds_increase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
