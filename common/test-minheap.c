/* The heap against a brute-force model, plus the edge cases. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/minheap.h"
#include "tests/test-rng.h"

static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

struct owner {
    int tag;
    struct minheap_node node;
};

/* Pops the top node and gives its key in *key. */
static struct minheap_node *pop_key(struct minheap *heap, uint64_t *key)
{
    struct minheap_node *node = minheap_peek(heap);

    if (node)
        *key = minheap_key(heap, node);
    return minheap_pop(heap);
}

static uint64_t pop_only_key(struct minheap *heap)
{
    uint64_t key = UINT64_MAX;

    assert_non_null(pop_key(heap, &key));
    return key;
}

/* Nodes live on the test's stack: empty the heap before they go out of
 * scope, or the teardown's minheap_destroy() would write to them. */
static void drain(struct minheap *heap)
{
    while (minheap_pop(heap))
        ;
}

static int setup(void **state)
{
    struct minheap *heap = malloc(sizeof(*heap));

    if (!heap)
        return -1;
    minheap_init(heap);
    *state = heap;
    return 0;
}

static int teardown(void **state)
{
    minheap_destroy(*state);
    free(*state);
    return 0;
}

static void test_empty(void **state)
{
    struct minheap *heap = *state;

    assert_null(minheap_peek(heap));
    assert_null(minheap_pop(heap));
    assert_int_equal(minheap_count(heap), 0);
    assert_int_equal(minheap_check(heap), 0);
}

static void test_pop_order_and_container_of(void **state)
{
    struct minheap *heap = *state;
    enum { N = 10000 };
    struct owner *owners = calloc(N, sizeof(*owners));
    uint64_t last = 0;

    assert_non_null(owners);
    rng_state = 1;
    for (int i = 0; i < N; i++) {
        owners[i].tag = i;
        minheap_node_init(&owners[i].node);
        /* Few distinct values: plenty of equal keys. */
        assert_int_equal(minheap_add(heap, &owners[i].node, rng_below(500)), 0);
    }
    assert_int_equal(minheap_count(heap), N);
    assert_int_equal(minheap_check(heap), 0);
    for (int i = 0; i < N; i++) {
        uint64_t key = 0;
        struct minheap_node *node = pop_key(heap, &key);
        struct owner *owner;

        assert_non_null(node);
        assert_false(minheap_node_in_heap(node));
        assert_true(key >= last);
        last = key;
        owner = container_of(node, struct owner, node);
        assert_ptr_equal(owner, &owners[owner->tag]);
        owner->tag = -1; /* popped once only */
    }
    assert_null(minheap_pop(heap));
    for (int i = 0; i < N; i++)
        assert_int_equal(owners[i].tag, -1);
    free(owners);
}

static void test_remove_from_middle(void **state)
{
    struct minheap *heap = *state;
    struct minheap_node nodes[7];
    const uint64_t expect[] = {10, 20, 30, 50, 60};

    for (int i = 0; i < 7; i++) {
        minheap_node_init(&nodes[i]);
        assert_int_equal(minheap_add(heap, &nodes[i], (uint64_t)(70 - 10 * i)), 0);
    }
    /* 40 sits inside the tree; 70 was the first added. */
    minheap_remove(heap, &nodes[3]);
    assert_false(minheap_node_in_heap(&nodes[3]));
    assert_false(minheap_contains(heap, &nodes[3]));
    minheap_remove(heap, &nodes[0]);
    assert_int_equal(minheap_check(heap), 0);
    assert_int_equal(minheap_count(heap), 5);
    /* Removing a detached node changes nothing. */
    minheap_remove(heap, &nodes[3]);
    assert_int_equal(minheap_count(heap), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pop_only_key(heap), expect[i]);
}

static void test_update_deadline(void **state)
{
    struct minheap *heap = *state;
    struct minheap_node a, b, c, d;

    minheap_node_init(&a);
    minheap_node_init(&b);
    minheap_node_init(&c);
    minheap_node_init(&d);
    assert_int_equal(minheap_add(heap, &a, 100), 0);
    assert_int_equal(minheap_add(heap, &b, 200), 0);
    assert_int_equal(minheap_add(heap, &c, 300), 0);
    assert_ptr_equal(minheap_peek(heap), &a);

    assert_int_equal(minheap_update(heap, &c, 50), 0); /* earlier: to the top */
    assert_ptr_equal(minheap_peek(heap), &c);
    assert_int_equal(minheap_key(heap, &c), 50);
    assert_int_equal(minheap_update(heap, &c, 250), 0); /* later: down again */
    assert_ptr_equal(minheap_peek(heap), &a);
    assert_int_equal(minheap_update(heap, &a, 1000), 0);
    assert_int_equal(minheap_update(heap, &d, 150), 0); /* detached: added */
    assert_true(minheap_contains(heap, &d));
    assert_int_equal(minheap_count(heap), 4);
    assert_int_equal(minheap_check(heap), 0);

    assert_ptr_equal(minheap_pop(heap), &d);
    assert_ptr_equal(minheap_pop(heap), &b);
    assert_ptr_equal(minheap_pop(heap), &c);
    assert_ptr_equal(minheap_pop(heap), &a);
}

static void test_add_armed_node_fails(void **state)
{
    struct minheap *heap = *state;
    struct minheap other;
    struct minheap_node node;

    minheap_init(&other);
    minheap_node_init(&node);
    assert_int_equal(minheap_add(heap, &node, 5), 0);
    assert_int_equal(minheap_add(heap, &node, 6), -EEXIST);
    assert_int_equal(minheap_add(&other, &node, 6), -EEXIST);
    assert_int_equal(minheap_key(heap, &node), 5);
    assert_false(minheap_contains(&other, &node));
    assert_int_equal(minheap_count(heap), 1);
    minheap_destroy(&other);
    drain(heap);
}

static void test_free_detaches(void **state)
{
    struct minheap heap;
    struct minheap_node nodes[3];

    (void)state;
    minheap_init(&heap);
    for (int i = 0; i < 3; i++) {
        minheap_node_init(&nodes[i]);
        assert_int_equal(minheap_add(&heap, &nodes[i], 1), 0);
    }
    minheap_destroy(&heap);
    for (int i = 0; i < 3; i++)
        assert_false(minheap_node_in_heap(&nodes[i]));
}

static void test_grow_shrink_reserve(void **state)
{
    struct minheap *heap = *state;
    enum { N = 100000 };
    struct minheap_node *nodes = calloc(N, sizeof(*nodes));
    size_t peak, warm;

    assert_non_null(nodes);
    assert_int_equal(minheap_reserve(heap, (size_t)MINHEAP_MAX_NODES + 1), -E2BIG);
    assert_int_equal(minheap_reserve(heap, N), 0);
    warm = minheap_memory(heap);
    for (int i = 0; i < N; i++) {
        minheap_node_init(&nodes[i]);
        assert_int_equal(minheap_add(heap, &nodes[i], (uint64_t)(N - i)), 0);
    }
    peak = minheap_memory(heap);
    assert_int_equal(peak, warm); /* reserved: no growth while adding */
    for (int i = 0; i < N; i++)
        minheap_remove(heap, &nodes[i]);
    assert_int_equal(minheap_count(heap), 0);
    assert_true(minheap_memory(heap) < peak / 16); /* shrunk after the burst */
    /* And grows again. */
    for (int i = 0; i < N; i++)
        assert_int_equal(minheap_add(heap, &nodes[i], (uint64_t)i), 0);
    assert_int_equal(minheap_check(heap), 0);
    assert_int_equal(pop_only_key(heap), 0);
    drain(heap);
    free(nodes);
}

/* Random adds, removes, updates and pops on a pool of nodes; after every
 * step the heap must hold exactly the model's armed set, with the model's
 * minimum at the top and the heap property intact. */
static void test_random_against_model(void **state)
{
    struct minheap *heap = *state;
    enum { POOL = 300, OPS = 20000 };
    struct minheap_node nodes[POOL];
    uint64_t model[POOL]; /* key, or UINT64_MAX when not armed */
    size_t armed = 0;

    rng_state = 42;
    for (int i = 0; i < POOL; i++) {
        minheap_node_init(&nodes[i]);
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
                assert_int_equal(minheap_add(heap, &nodes[i], deadline), 0);
                model[i] = deadline;
                armed++;
            } else {
                assert_int_equal(minheap_add(heap, &nodes[i], deadline), -EEXIST);
            }
            break;
        case 2:
            if (model[i] != UINT64_MAX)
                armed--;
            minheap_remove(heap, &nodes[i]);
            model[i] = UINT64_MAX;
            break;
        case 3:
            if (model[i] == UINT64_MAX)
                armed++;
            assert_int_equal(minheap_update(heap, &nodes[i], deadline), 0);
            model[i] = deadline;
            break;
        case 4: {
            uint64_t key = UINT64_MAX;
            struct minheap_node *top = pop_key(heap, &key);

            for (int j = 0; j < POOL; j++)
                min = model[j] < min ? model[j] : min;
            if (min == UINT64_MAX) {
                assert_null(top);
                break;
            }
            assert_non_null(top);
            assert_int_equal(key, min);
            assert_int_equal(model[top - nodes], min);
            model[top - nodes] = UINT64_MAX;
            armed--;
            break;
        }
        }
        assert_int_equal(minheap_check(heap), 0);
        assert_int_equal(minheap_count(heap), armed);
        min = UINT64_MAX;
        for (int j = 0; j < POOL; j++) {
            assert_int_equal(minheap_contains(heap, &nodes[j]), model[j] != UINT64_MAX);
            assert_int_equal(minheap_node_in_heap(&nodes[j]), model[j] != UINT64_MAX);
            if (model[j] != UINT64_MAX)
                assert_int_equal(minheap_key(heap, &nodes[j]), model[j]);
            min = model[j] < min ? model[j] : min;
        }
        if (armed)
            assert_int_equal(minheap_key(heap, minheap_peek(heap)), min);
        else
            assert_null(minheap_peek(heap));
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
        cmocka_unit_test(test_free_detaches),
        cmocka_unit_test_setup_teardown(test_grow_shrink_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
