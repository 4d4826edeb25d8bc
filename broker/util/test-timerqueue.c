/* The uv glue on a real loop: ordering, laziness, re-entrancy, close.
 * Deadlines are a few ms away; nothing sleeps longer than that. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "util/timerqueue.h"

#define MAX_FIRES 20000

struct item {
    int id;
    struct timer_node node;
};

struct fixture {
    uv_loop_t loop;
    uv_check_t check;
    uint64_t iteration; /* loop iterations, counted by the check handle */
    struct timer_queue *queue;
    bool closed;
    int fired[MAX_FIRES];
    uint64_t fired_at[MAX_FIRES];
    uint64_t fired_iteration[MAX_FIRES];
    size_t n_fired;
    /* What the callback does, per test. */
    void (*action)(struct fixture *f, struct item *item);
};

static void on_check(uv_check_t *check)
{
    struct fixture *f = check->data;

    f->iteration++;
}

static void on_expire(struct timer_node *node, void *userdata)
{
    struct fixture *f = userdata;
    struct item *item = container_of(node, struct item, node);

    assert_false(timer_node_is_armed(node));
    assert_true(f->n_fired < MAX_FIRES);
    assert_true(uv_now(&f->loop) >= node->deadline);
    f->fired[f->n_fired] = item->id;
    f->fired_at[f->n_fired] = uv_now(&f->loop);
    f->fired_iteration[f->n_fired] = f->iteration;
    f->n_fired++;
    if (f->action)
        f->action(f, item);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f || uv_loop_init(&f->loop) < 0)
        return -1;
    uv_check_init(&f->loop, &f->check);
    f->check.data = f;
    uv_check_start(&f->check, on_check);
    uv_unref((uv_handle_t *)&f->check); /* counts, but keeps nothing alive */
    if (timer_queue_new(&f->queue, &f->loop, on_expire, f) < 0)
        return -1;
    *state = f;
    return 0;
}

static void close_queue(struct fixture *f)
{
    if (!f->closed)
        timer_queue_close(f->queue);
    f->closed = true;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close_queue(f);
    uv_close((uv_handle_t *)&f->check, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void arm_in(struct fixture *f, struct item *item, int id, uint64_t ms)
{
    item->id = id;
    timer_node_init(&item->node);
    assert_int_equal(timer_queue_add(f->queue, &item->node, timer_queue_deadline_in(f->queue, ms)),
                     0);
}

static void test_fires_in_deadline_order(void **state)
{
    struct fixture *f = *state;
    struct item items[5];
    const uint64_t ms[5] = {5, 1, 3, 2, 4};

    uv_update_time(&f->loop);
    for (int i = 0; i < 5; i++)
        arm_in(f, &items[i], i, ms[i]);
    assert_int_equal(timer_queue_count(f->queue), 5);
    assert_true(uv_loop_alive(&f->loop));
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns only once nothing is armed */
    assert_int_equal(f->n_fired, 5);
    assert_int_equal(f->fired[0], 1);
    assert_int_equal(f->fired[1], 3);
    assert_int_equal(f->fired[2], 2);
    assert_int_equal(f->fired[3], 4);
    assert_int_equal(f->fired[4], 0);
    assert_int_equal(timer_queue_count(f->queue), 0);
    for (int i = 0; i < 5; i++)
        assert_false(timer_node_is_armed(&items[i].node));
}

static void test_add_armed_node_fails(void **state)
{
    struct fixture *f = *state;
    struct item item;

    arm_in(f, &item, 0, 1000);
    assert_int_equal(timer_queue_add(f->queue, &item.node, 1), -EEXIST);
    timer_queue_remove(f->queue, &item.node);
    assert_false(timer_node_is_armed(&item.node));
    timer_queue_remove(f->queue, &item.node); /* disarmed: no-op */
}

/* Removing everything stops the uv timer: an idle queue must not hold the
 * loop for the 10 s the removed deadline was away. */
static void test_remove_all_releases_loop(void **state)
{
    struct fixture *f = *state;
    struct item items[3];

    uv_update_time(&f->loop);
    for (int i = 0; i < 3; i++)
        arm_in(f, &items[i], i, 10000);
    for (int i = 0; i < 3; i++)
        timer_queue_remove(f->queue, &items[i].node);
    assert_false(uv_loop_alive(&f->loop));
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->n_fired, 0);
}

static void test_removed_node_never_fires(void **state)
{
    struct fixture *f = *state;
    struct item early, far, later;
    uint64_t start;

    uv_update_time(&f->loop);
    start = uv_now(&f->loop);
    arm_in(f, &early, 1, 1);
    arm_in(f, &far, 2, 10000);
    arm_in(f, &later, 3, 4);
    /* The earliest goes: the uv timer stays armed for it (lazily) and must
     * wake, find nothing, and wait on for `later`. */
    timer_queue_remove(f->queue, &early.node);
    timer_queue_remove(f->queue, &far.node);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, 1);
    assert_int_equal(f->fired[0], 3);
    assert_true(f->fired_at[0] >= start + 4);
    assert_true(uv_now(&f->loop) - start < 1000);
}

static void test_update_moves_deadline(void **state)
{
    struct fixture *f = *state;
    struct item sooner, postponed;
    uint64_t start;

    uv_update_time(&f->loop);
    start = uv_now(&f->loop);
    arm_in(f, &sooner, 1, 10000);
    arm_in(f, &postponed, 2, 1);
    /* Earlier than what the uv timer waits for: must re-arm. */
    assert_int_equal(timer_queue_update(f->queue, &sooner.node, start + 2), 0);
    /* Later than the armed time: the early wake must not fire it. */
    assert_int_equal(timer_queue_update(f->queue, &postponed.node, start + 20), 0);
    assert_int_equal(timer_queue_count(f->queue), 2);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, 2);
    assert_int_equal(f->fired[0], 1);
    assert_int_equal(f->fired[1], 2);
    assert_true(f->fired_at[1] >= start + 20);
    assert_true(uv_now(&f->loop) - start < 1000);
}

/* --- re-entrancy: the callback changes the queue under the dispatch --- */

static struct item reentrant[4];

static void remove_the_others(struct fixture *f, struct item *item)
{
    for (int i = 0; i < 4; i++) {
        if (&reentrant[i] != item)
            timer_queue_remove(f->queue, &reentrant[i].node);
    }
}

static void test_callback_removes_expired_siblings(void **state)
{
    struct fixture *f = *state;

    uv_update_time(&f->loop);
    for (int i = 0; i < 4; i++)
        arm_in(f, &reentrant[i], i, 0); /* all due in the same dispatch */
    f->action = remove_the_others;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, 1);
    assert_int_equal(timer_queue_count(f->queue), 0);
    for (int i = 0; i < 4; i++)
        assert_false(timer_node_is_armed(&reentrant[i].node));
}

static void rearm_self_three_times(struct fixture *f, struct item *item)
{
    if (f->n_fired < 4)
        assert_int_equal(timer_queue_add(f->queue, &item->node, uv_now(&f->loop)), 0);
}

/* Re-armed with a deadline already due, the node fires again on the next
 * loop iteration, not in the same dispatch (which would never end). */
static void test_callback_rearms_itself(void **state)
{
    struct fixture *f = *state;
    struct item item;

    uv_update_time(&f->loop);
    arm_in(f, &item, 7, 0);
    f->action = rearm_self_three_times;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, 4);
    for (size_t i = 1; i < f->n_fired; i++)
        assert_true(f->fired_iteration[i] > f->fired_iteration[i - 1]);
    assert_false(timer_node_is_armed(&item.node));
}

/* The first callback postpones an expired sibling (update moves it out of
 * the batch) and adds a brand-new node. */
static void postpone_and_add(struct fixture *f, struct item *item)
{
    if (f->n_fired != 1)
        return;
    for (int i = 0; i < 2; i++) {
        if (&reentrant[i] != item)
            assert_int_equal(timer_queue_update(f->queue, &reentrant[i].node,
                                                timer_queue_deadline_in(f->queue, 3)),
                             0);
    }
    arm_in(f, &reentrant[2], 2, 1);
}

static void test_callback_postpones_sibling_and_adds(void **state)
{
    struct fixture *f = *state;
    uint64_t start;

    uv_update_time(&f->loop);
    start = uv_now(&f->loop);
    arm_in(f, &reentrant[0], 0, 0);
    arm_in(f, &reentrant[1], 1, 0);
    f->action = postpone_and_add;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, 3);
    assert_int_equal(f->fired[1], 2);               /* the new one, due at +1 */
    assert_int_equal(f->fired[2], 1 - f->fired[0]); /* the postponed sibling */
    assert_true(f->fired_at[2] >= start + 3);
}

static void close_from_callback(struct fixture *f, struct item *item)
{
    close_queue(f);
}

static void test_close_from_callback(void **state)
{
    struct fixture *f = *state;

    uv_update_time(&f->loop);
    for (int i = 0; i < 4; i++)
        arm_in(f, &reentrant[i], i, 0);
    f->action = close_from_callback;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, 1);
    for (int i = 0; i < 4; i++)
        assert_false(timer_node_is_armed(&reentrant[i].node));
}

static void test_close_with_armed_nodes(void **state)
{
    struct fixture *f = *state;
    struct item items[3];

    for (int i = 0; i < 3; i++)
        arm_in(f, &items[i], i, (uint64_t)i);
    close_queue(f);
    for (int i = 0; i < 3; i++)
        assert_false(timer_node_is_armed(&items[i].node));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, 0);
    /* teardown: uv_loop_close() must return 0 */
}

static void test_many_random_deadlines(void **state)
{
    struct fixture *f = *state;
    enum { N = 10000 };
    struct item *items = calloc(N, sizeof(*items));
    uint64_t x = 12345;

    assert_non_null(items);
    uv_update_time(&f->loop);
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        arm_in(f, &items[i], i, x % 20);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_fired, N);
    for (int i = 1; i < N; i++)
        assert_true(items[f->fired[i]].node.deadline >= items[f->fired[i - 1]].node.deadline);
    for (int i = 0; i < N; i++)
        assert_false(timer_node_is_armed(&items[i].node));
    assert_true(timer_queue_memory(f->queue) > 0);
    free(items);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fires_in_deadline_order),  T(test_add_armed_node_fails),
        T(test_remove_all_releases_loop), T(test_removed_node_never_fires),
        T(test_update_moves_deadline),    T(test_callback_removes_expired_siblings),
        T(test_callback_rearms_itself),   T(test_callback_postpones_sibling_and_adds),
        T(test_close_from_callback),      T(test_close_with_armed_nodes),
        T(test_many_random_deadlines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
