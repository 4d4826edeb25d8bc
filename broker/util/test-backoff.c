/* The expected sequences with jitter were produced by socket.io-client
 * 4.8.4's own build/cjs/contrib/backo2.js with Math.random replaced by
 * the same fixed sequences fed to backoff_set_random() here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/backoff.h"

struct fixed_random {
    const double *values;
    size_t count;
    size_t next;
};

static double fixed_random_next(void *ctx)
{
    struct fixed_random *r = ctx;
    double v = r->values[r->next % r->count];

    r->next++;
    return v;
}

static void expect_sequence(struct backoff *b, const uint32_t *expected, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t got = backoff_duration(b);
        if (got != expected[i])
            fail_msg("attempt %zu: expected %u ms, got %u ms", i, expected[i], got);
    }
}

static void test_no_jitter_doubles_then_caps(void **state)
{
    struct backoff b;
    struct backoff_options opts = BACKOFF_OPTIONS_DEFAULT;
    static const uint32_t expected[] = {1000, 2000, 4000, 5000, 5000, 5000};

    opts.jitter = 0;
    assert_int_equal(backoff_init(&b, &opts), 0);
    expect_sequence(&b, expected, 6);
    assert_int_equal(backoff_attempts(&b), 6);
}

static void test_reset_starts_over(void **state)
{
    struct backoff b;
    struct backoff_options opts = BACKOFF_OPTIONS_DEFAULT;
    static const uint32_t expected[] = {1000, 2000, 4000};

    opts.jitter = 0;
    assert_int_equal(backoff_init(&b, &opts), 0);
    expect_sequence(&b, expected, 3);
    backoff_reset(&b);
    assert_int_equal(backoff_attempts(&b), 0);
    expect_sequence(&b, expected, 3);
}

static void test_jitter_matches_socket_io_client(void **state)
{
    static const double rands[] = {0.0,  0.05, 0.15, 0.999999,    0.5, 0.37,
                                   0.73, 0.21, 0.88, 0.123456789, 0.6, 0.95};
    static const uint32_t expected[] = {1000, 1950, 4300, 5000, 5000, 5000,
                                        5000, 5000, 5000, 5000, 5000, 5000};
    struct fixed_random r = {rands, 12, 0};
    struct backoff b;

    assert_int_equal(backoff_init(&b, NULL), 0);
    backoff_set_random(&b, fixed_random_next, &r);
    expect_sequence(&b, expected, 12);
}

/* 0.85: floor(8.5) is even, so the deviation is subtracted: the first
 * delay drops below min and the fourth below max, as in JavaScript. */
static void test_jitter_subtracts_on_even_digit(void **state)
{
    static const double rands[] = {0.85};
    static const uint32_t expected[] = {575, 1150, 2300, 4600, 5000, 5000};
    struct fixed_random r = {rands, 1, 0};
    struct backoff b;

    assert_int_equal(backoff_init(&b, NULL), 0);
    backoff_set_random(&b, fixed_random_next, &r);
    expect_sequence(&b, expected, 6);
}

static void test_jitter_adds_on_odd_digit(void **state)
{
    static const double rands[] = {0.55};
    static const uint32_t expected[] = {1275, 2550, 5000, 5000};
    struct fixed_random r = {rands, 1, 0};
    struct backoff b;

    assert_int_equal(backoff_init(&b, NULL), 0);
    backoff_set_random(&b, fixed_random_next, &r);
    expect_sequence(&b, expected, 4);
}

static void test_custom_options_match_socket_io_client(void **state)
{
    static const double rands[] = {0.0,  0.05, 0.15, 0.999999,    0.5, 0.37,
                                   0.73, 0.21, 0.88, 0.123456789, 0.6, 0.95};
    static const uint32_t expected[] = {300,  445,  700,  1265,  1707,  2488,
                                        4040, 4856, 5997, 11888, 14705, 32111};
    struct backoff_options opts = {.min_ms = 300, .max_ms = 100000, .factor = 1.5, .jitter = 0.25};
    struct fixed_random r = {rands, 12, 0};
    struct backoff b;

    assert_int_equal(backoff_init(&b, &opts), 0);
    backoff_set_random(&b, fixed_random_next, &r);
    expect_sequence(&b, expected, 12);
}

/* Any random value keeps the delay within [min*(1-j), max]. */
static void test_jitter_stays_within_bounds(void **state)
{
    struct backoff b;
    uint32_t lowest = UINT32_MAX, highest = 0;

    assert_int_equal(backoff_init(&b, NULL), 0);
    for (int round = 0; round < 2000; round++) {
        if (round % 8 == 0)
            backoff_reset(&b);
        int first_of_round = backoff_attempts(&b) == 0;
        uint32_t d = backoff_duration(&b);
        assert_true(d >= 500);
        assert_true(d <= 5000);
        if (first_of_round)
            assert_true(d <= 1500);
        lowest = d < lowest ? d : lowest;
        highest = d > highest ? d : highest;
    }
    /* The default source is random: over 2000 draws the spread shows. */
    assert_true(lowest < 1000);
    assert_int_equal(highest, 5000);
}

static void test_default_random_in_unit_interval(void **state)
{
    double sum = 0;

    for (int i = 0; i < 10000; i++) {
        double v = backoff_default_random(NULL);
        assert_true(v >= 0.0 && v < 1.0);
        sum += v;
    }
    assert_true(sum / 10000 > 0.4 && sum / 10000 < 0.6);
}

/* JavaScript degrades to a 0 ms delay once factor^attempts overflows;
 * we stay at max (documented divergence). */
static void test_many_attempts_stay_at_max(void **state)
{
    static const double rands[] = {0.85, 0.55, 0.0, 0.999};
    struct fixed_random r = {rands, 4, 0};
    struct backoff b;

    assert_int_equal(backoff_init(&b, NULL), 0);
    backoff_set_random(&b, fixed_random_next, &r);
    for (int i = 0; i < 5000; i++) {
        uint32_t d = backoff_duration(&b);
        if (i >= 4)
            assert_int_equal(d, 5000);
    }
}

static void test_rejects_bad_options(void **state)
{
    struct backoff b;
    struct backoff_options bad[] = {
        {.min_ms = 0, .max_ms = 5000, .factor = 2, .jitter = 0.5},
        {.min_ms = 1000, .max_ms = 999, .factor = 2, .jitter = 0.5},
        {.min_ms = 1000, .max_ms = 5000, .factor = 0.5, .jitter = 0.5},
        {.min_ms = 1000, .max_ms = 5000, .factor = 2, .jitter = 1.5},
        {.min_ms = 1000, .max_ms = 5000, .factor = 2, .jitter = -0.1},
        {.min_ms = 1000, .max_ms = UINT32_MAX, .factor = 2, .jitter = 0.5},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(backoff_init(&b, &bad[i]), -EINVAL);
        /* Left usable, at the defaults. */
        backoff_set_random(&b, NULL, NULL);
        uint32_t d = backoff_duration(&b);
        assert_true(d >= 500 && d <= 1500);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_jitter_doubles_then_caps),
        cmocka_unit_test(test_reset_starts_over),
        cmocka_unit_test(test_jitter_matches_socket_io_client),
        cmocka_unit_test(test_jitter_subtracts_on_even_digit),
        cmocka_unit_test(test_jitter_adds_on_odd_digit),
        cmocka_unit_test(test_custom_options_match_socket_io_client),
        cmocka_unit_test(test_jitter_stays_within_bounds),
        cmocka_unit_test(test_default_random_in_unit_interval),
        cmocka_unit_test(test_many_attempts_stay_at_max),
        cmocka_unit_test(test_rejects_bad_options),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
