#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "util/fdlimit.h"

static void set_limits(rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static struct rlimit get_limits(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    return rl;
}

/* A quarter and a half of the hard limit (capped): room to raise below it
 * on any machine. */
static rlim_t usable_hard(void)
{
    rlim_t hard = get_limits().rlim_max;
    return hard == RLIM_INFINITY || hard > 4096 ? 4096 : hard;
}

static void test_raises_soft_limit_to_what_is_needed(void **state)
{
    (void)state;
    rlim_t hard = get_limits().rlim_max, low = usable_hard() / 4, high = usable_hard() / 2;
    set_limits(low, hard);
    assert_int_equal(fdlimit_current(), low);
    assert_int_equal(fdlimit_raise(high), high);
    assert_int_equal(get_limits().rlim_cur, high);
    assert_int_equal(get_limits().rlim_max, hard); /* hard untouched */
}

static void test_never_lowers(void **state)
{
    (void)state;
    rlim_t hard = get_limits().rlim_max, high = usable_hard() / 2;
    set_limits(high, hard);
    assert_int_equal(fdlimit_raise(high / 4), high);
    assert_int_equal(get_limits().rlim_cur, high);
}

/* Runs last: lowering the hard limit cannot be undone without privileges. */
static void test_stops_at_hard_limit(void **state)
{
    (void)state;
    rlim_t hard = usable_hard() / 2;
    set_limits(hard / 2, hard);
    assert_int_equal(fdlimit_raise(hard * 4), hard);
    assert_int_equal(get_limits().rlim_cur, hard);
    assert_int_equal(get_limits().rlim_max, hard);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raises_soft_limit_to_what_is_needed),
        cmocka_unit_test(test_never_lowers),
        cmocka_unit_test(test_stops_at_hard_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
