/* The pure heap against a brute-force model, plus the edge cases. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "util/timerheap.h"

/* splitmix64: a seeded generator, so a failure replays exactly. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

struct owner {
    int tag;
    struct timer_node node;
};

/* Nodes live on the test's stack: empty the heap before they go out of
 * scope, or the teardown's timer_heap_free() would write to them. */
static void drain(struct timer_heap *heap)
{
    while (timer_heap_pop(heap))
        ;
}

static int setup(void **state)
{
    struct timer_heap *heap;

    if (timer_heap_new(&heap) < 0)
        return -1;
    *state = heap;
    return 0;
}

static int teardown(void **state)
{
    timer_heap_free(*state);
    return 0;
}

static void test_empty(void **state)
{
    struct timer_heap *heap = *state;

    assert_null(timer_heap_peek(heap));
    assert_null(timer_heap_pop(heap));
    assert_null(timer_heap_pop_expired(heap, UINT64_MAX));
    assert_int_equal(timer_heap_count(heap), 0);
    assert_int_equal(timer_heap_check(heap), 0);
}

static void test_pop_order_and_container_of(void **state)
{
    struct timer_heap *heap = *state;
    enum { N = 10000 };
    struct owner *owners = calloc(N, sizeof(*owners));
    uint64_t last = 0;

    assert_non_null(owners);
    rng_state = 1;
    for (int i = 0; i < N; i++) {
        owners[i].tag = i;
        timer_node_init(&owners[i].node);
        /* Few distinct values: plenty of equal deadlines. */
        assert_int_equal(timer_heap_add(heap, &owners[i].node, rng_below(500)), 0);
    }
    assert_int_equal(timer_heap_count(heap), N);
    assert_int_equal(timer_heap_check(heap), 0);
    for (int i = 0; i < N; i++) {
        struct timer_node *node = timer_heap_pop(heap);
        struct owner *owner;

        assert_non_null(node);
        assert_false(timer_node_is_armed(node));
        assert_true(node->deadline >= last);
        last = node->deadline;
        owner = container_of(node, struct owner, node);
        assert_ptr_equal(owner, &owners[owner->tag]);
        owner->tag = -1; /* popped once only */
    }
    assert_null(timer_heap_pop(heap));
    for (int i = 0; i < N; i++)
        assert_int_equal(owners[i].tag, -1);
    free(owners);
}

static void test_remove_from_middle(void **state)
{
    struct timer_heap *heap = *state;
    struct timer_node nodes[7];
    const uint64_t expect[] = {10, 20, 30, 50, 60};

    for (int i = 0; i < 7; i++) {
        timer_node_init(&nodes[i]);
        assert_int_equal(timer_heap_add(heap, &nodes[i], (uint64_t)(70 - 10 * i)), 0);
    }
    /* 40 sits inside the tree; 70 was the first added. */
    timer_heap_remove(heap, &nodes[3]);
    assert_false(timer_node_is_armed(&nodes[3]));
    assert_false(timer_heap_contains(heap, &nodes[3]));
    timer_heap_remove(heap, &nodes[0]);
    assert_int_equal(timer_heap_check(heap), 0);
    assert_int_equal(timer_heap_count(heap), 5);
    /* Removing a detached node changes nothing. */
    timer_heap_remove(heap, &nodes[3]);
    assert_int_equal(timer_heap_count(heap), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(timer_heap_pop(heap)->deadline, expect[i]);
}

static void test_update_deadline(void **state)
{
    struct timer_heap *heap = *state;
    struct timer_node a, b, c, d;

    timer_node_init(&a);
    timer_node_init(&b);
    timer_node_init(&c);
    timer_node_init(&d);
    assert_int_equal(timer_heap_add(heap, &a, 100), 0);
    assert_int_equal(timer_heap_add(heap, &b, 200), 0);
    assert_int_equal(timer_heap_add(heap, &c, 300), 0);
    assert_ptr_equal(timer_heap_peek(heap), &a);

    assert_int_equal(timer_heap_update(heap, &c, 50), 0); /* earlier: to the top */
    assert_ptr_equal(timer_heap_peek(heap), &c);
    assert_int_equal(c.deadline, 50);
    assert_int_equal(timer_heap_update(heap, &c, 250), 0); /* later: down again */
    assert_ptr_equal(timer_heap_peek(heap), &a);
    assert_int_equal(timer_heap_update(heap, &a, 1000), 0);
    assert_int_equal(timer_heap_update(heap, &d, 150), 0); /* detached: added */
    assert_true(timer_heap_contains(heap, &d));
    assert_int_equal(timer_heap_count(heap), 4);
    assert_int_equal(timer_heap_check(heap), 0);

    assert_ptr_equal(timer_heap_pop(heap), &d);
    assert_ptr_equal(timer_heap_pop(heap), &b);
    assert_ptr_equal(timer_heap_pop(heap), &c);
    assert_ptr_equal(timer_heap_pop(heap), &a);
}

static void test_add_armed_node_fails(void **state)
{
    struct timer_heap *heap = *state;
    struct timer_heap *other;
    struct timer_node node;

    assert_int_equal(timer_heap_new(&other), 0);
    timer_node_init(&node);
    assert_int_equal(timer_heap_add(heap, &node, 5), 0);
    assert_int_equal(timer_heap_add(heap, &node, 6), -EEXIST);
    assert_int_equal(timer_heap_add(other, &node, 6), -EEXIST);
    assert_int_equal(node.deadline, 5);
    assert_false(timer_heap_contains(other, &node));
    assert_int_equal(timer_heap_count(heap), 1);
    timer_heap_free(other);
    drain(heap);
}

static void test_pop_expired(void **state)
{
    struct timer_heap *heap = *state;
    struct timer_node nodes[5];

    for (int i = 0; i < 5; i++) {
        timer_node_init(&nodes[i]);
        assert_int_equal(timer_heap_add(heap, &nodes[i], (uint64_t)(i * 10)), 0);
    }
    assert_ptr_equal(timer_heap_pop_expired(heap, 15), &nodes[0]);
    assert_ptr_equal(timer_heap_pop_expired(heap, 15), &nodes[1]);
    assert_null(timer_heap_pop_expired(heap, 15));
    assert_ptr_equal(timer_heap_pop_expired(heap, 20), &nodes[2]); /* deadline == now is due */
    assert_int_equal(timer_heap_count(heap), 2);
    drain(heap);
}

static void test_free_detaches(void **state)
{
    struct timer_heap *heap;
    struct timer_node nodes[3];

    (void)state;
    assert_int_equal(timer_heap_new(&heap), 0);
    for (int i = 0; i < 3; i++) {
        timer_node_init(&nodes[i]);
        assert_int_equal(timer_heap_add(heap, &nodes[i], 1), 0);
    }
    timer_heap_free(heap);
    for (int i = 0; i < 3; i++)
        assert_false(timer_node_is_armed(&nodes[i]));
}

static void test_grow_shrink_reserve(void **state)
{
    struct timer_heap *heap = *state;
    enum { N = 100000 };
    struct timer_node *nodes = calloc(N, sizeof(*nodes));
    size_t peak, warm;

    assert_non_null(nodes);
    assert_int_equal(timer_heap_reserve(heap, (size_t)TIMER_HEAP_MAX_NODES + 1), -E2BIG);
    assert_int_equal(timer_heap_reserve(heap, N), 0);
    warm = timer_heap_memory(heap);
    for (int i = 0; i < N; i++) {
        timer_node_init(&nodes[i]);
        assert_int_equal(timer_heap_add(heap, &nodes[i], (uint64_t)(N - i)), 0);
    }
    peak = timer_heap_memory(heap);
    assert_int_equal(peak, warm); /* reserved: no growth while adding */
    for (int i = 0; i < N; i++)
        timer_heap_remove(heap, &nodes[i]);
    assert_int_equal(timer_heap_count(heap), 0);
    assert_true(timer_heap_memory(heap) < peak / 16); /* shrunk after the burst */
    /* And grows again. */
    for (int i = 0; i < N; i++)
        assert_int_equal(timer_heap_add(heap, &nodes[i], (uint64_t)i), 0);
    assert_int_equal(timer_heap_check(heap), 0);
    assert_int_equal(timer_heap_pop(heap)->deadline, 0);
    drain(heap);
    free(nodes);
}

/* Random adds, removes, updates and pops on a pool of nodes; after every
 * step the heap must hold exactly the model's armed set, with the model's
 * minimum at the top and the heap property intact. */
static void test_random_against_model(void **state)
{
    struct timer_heap *heap = *state;
    enum { POOL = 300, OPS = 20000 };
    struct timer_node nodes[POOL];
    uint64_t model[POOL]; /* deadline, or UINT64_MAX when not armed */
    size_t armed = 0;

    rng_state = 42;
    for (int i = 0; i < POOL; i++) {
        timer_node_init(&nodes[i]);
        model[i] = UINT64_MAX;
    }
    for (int op = 0; op < OPS; op++) {
        int i = (int)rng_below(POOL);
        uint64_t deadline = rng_below(1000);
        uint64_t min = UINT64_MAX;

        switch (rng_below(5)) {
        case 0:
        case 1:
            if (model[i] == UINT64_MAX) {
                assert_int_equal(timer_heap_add(heap, &nodes[i], deadline), 0);
                model[i] = deadline;
                armed++;
            } else {
                assert_int_equal(timer_heap_add(heap, &nodes[i], deadline), -EEXIST);
            }
            break;
        case 2:
            if (model[i] != UINT64_MAX)
                armed--;
            timer_heap_remove(heap, &nodes[i]);
            model[i] = UINT64_MAX;
            break;
        case 3:
            if (model[i] == UINT64_MAX)
                armed++;
            assert_int_equal(timer_heap_update(heap, &nodes[i], deadline), 0);
            model[i] = deadline;
            break;
        case 4: {
            struct timer_node *top = timer_heap_pop(heap);

            for (int j = 0; j < POOL; j++)
                min = model[j] < min ? model[j] : min;
            if (min == UINT64_MAX) {
                assert_null(top);
                break;
            }
            assert_non_null(top);
            assert_int_equal(top->deadline, min);
            assert_int_equal(model[top - nodes], min);
            model[top - nodes] = UINT64_MAX;
            armed--;
            break;
        }
        }
        assert_int_equal(timer_heap_check(heap), 0);
        assert_int_equal(timer_heap_count(heap), armed);
        min = UINT64_MAX;
        for (int j = 0; j < POOL; j++) {
            assert_int_equal(timer_heap_contains(heap, &nodes[j]), model[j] != UINT64_MAX);
            assert_int_equal(timer_node_is_armed(&nodes[j]), model[j] != UINT64_MAX);
            if (model[j] != UINT64_MAX)
                assert_int_equal(nodes[j].deadline, model[j]);
            min = model[j] < min ? model[j] : min;
        }
        if (armed)
            assert_int_equal(timer_heap_peek(heap)->deadline, min);
        else
            assert_null(timer_heap_peek(heap));
    }
    drain(heap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pop_order_and_container_of, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_from_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_armed_node_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pop_expired, setup, teardown),
        cmocka_unit_test(test_free_detaches),
        cmocka_unit_test_setup_teardown(test_grow_shrink_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
