/* The hash table against a brute-force model, with every kind of key its
 * users have (uint64, strings, fixed-size ids), forced collisions, hash 0,
 * iteration and drain. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hashtab.h"
#include "tests/test-rng.h"

struct item {
    uint64_t id;
    bool in;
};

static bool item_eq(const void *item, const void *key)
{
    return ((const struct item *)item)->id == *(const uint64_t *)key;
}

static uint32_t fib(uint64_t id)
{
    return (uint32_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32);
}

static void test_empty(void **state)
{
    struct hashtab t;
    uint64_t key = 1;
    size_t pos = 0, n = 7;
    struct hashtab_stats stats;

    (void)state;
    hashtab_init(&t, item_eq);
    assert_null(hashtab_find(&t, 5, &key));
    assert_null(hashtab_take(&t, 5, &key));
    assert_false(hashtab_remove(&t, 5, &key));
    assert_null(hashtab_next(&t, &pos));
    assert_null(hashtab_drain(&t, &n));
    assert_int_equal(n, 0);
    assert_int_equal(hashtab_count(&t), 0);
    assert_int_equal(hashtab_check(&t), 0);
    hashtab_stats(&t, &stats);
    assert_int_equal(stats.slots, 0);
    assert_int_equal(stats.bytes, 0);
    hashtab_destroy(&t);
}

static void test_insert_find_take(void **state)
{
    enum { N = 1000 };
    struct hashtab t;
    struct item *items = calloc(N, sizeof(*items));
    struct hashtab_stats stats;

    (void)state;
    assert_non_null(items);
    hashtab_init(&t, item_eq);
    for (uint64_t i = 0; i < N; i++) {
        items[i].id = i + 1;
        assert_int_equal(hashtab_insert(&t, fib(items[i].id), &items[i]), 0);
    }
    assert_int_equal(hashtab_count(&t), N);
    assert_int_equal(hashtab_check(&t), 0);
    hashtab_stats(&t, &stats);
    assert_true(stats.count * 5 <= stats.slots * 4);
    assert_int_equal(stats.bytes, stats.slots * (sizeof(uint32_t) + sizeof(void *)));
    /* Odd ids from the top, then even ids from the bottom. */
    for (uint64_t id = N - 1; id >= 1 && id < N; id -= 2) {
        assert_ptr_equal(hashtab_find(&t, fib(id), &id), &items[id - 1]);
        assert_ptr_equal(hashtab_take(&t, fib(id), &id), &items[id - 1]);
        assert_null(hashtab_find(&t, fib(id), &id));
    }
    for (uint64_t id = 2; id <= N; id += 2)
        assert_true(hashtab_remove(&t, fib(id), &items[id - 1]));
    assert_int_equal(hashtab_count(&t), 0);
    assert_int_equal(hashtab_check(&t), 0);
    hashtab_destroy(&t);
    free(items);
}

/* Every item under one hash (and under hash 0, which the table stores
 * as 1): eq tells them apart, remove goes by address. */
static void test_collisions_and_hash_zero(void **state)
{
    struct hashtab t;
    struct item items[40];
    uint64_t absent = 999;

    (void)state;
    hashtab_init(&t, item_eq);
    for (int i = 0; i < 40; i++) {
        items[i].id = (uint64_t)i;
        assert_int_equal(hashtab_insert(&t, i < 20 ? 0 : 1, &items[i]), 0);
    }
    assert_int_equal(hashtab_check(&t), 0);
    for (int i = 0; i < 40; i++)
        assert_ptr_equal(hashtab_find(&t, i < 20 ? 0 : 1, &items[i].id), &items[i]);
    assert_null(hashtab_find(&t, 0, &absent));
    assert_false(hashtab_remove(&t, 0, &absent)); /* not an item of the table */
    for (int i = 0; i < 40; i += 3)
        assert_true(hashtab_remove(&t, i < 20 ? 0 : 1, &items[i]));
    assert_int_equal(hashtab_check(&t), 0);
    for (int i = 0; i < 40; i++)
        assert_true((hashtab_find(&t, i < 20 ? 0 : 1, &items[i].id) != NULL) == (i % 3 != 0));
    hashtab_destroy(&t);
}

/* String keys as the router has them: pointer and length, not NUL-ended. */
struct name {
    const char *ptr;
    size_t len;
};

static bool name_eq(const void *item, const void *key)
{
    const struct name *a = item, *b = key;

    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

static uint32_t fnv(const struct name *n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n->len; i++)
        h = (h ^ (uint8_t)n->ptr[i]) * 16777619u;
    return h;
}

static void test_string_keys(void **state)
{
    static const char text[] = "ping.pong.pingpong";
    struct name names[] = {{text, 4}, {text + 5, 4}, {text + 10, 8}, {text, 9}, {text, 0}};
    struct name probe = {"pong", 4}, missing = {"pon", 3};
    struct hashtab t;

    (void)state;
    hashtab_init(&t, name_eq);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(hashtab_insert(&t, fnv(&names[i]), &names[i]), 0);
    assert_ptr_equal(hashtab_find(&t, fnv(&probe), &probe), &names[1]);
    assert_null(hashtab_find(&t, fnv(&missing), &missing));
    assert_ptr_equal(hashtab_take(&t, fnv(&names[4]), &names[4]), &names[4]);
    assert_int_equal(hashtab_count(&t), 4);
    hashtab_destroy(&t);
}

static int by_id(const void *a, const void *b)
{
    const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;

    return x->id < y->id ? -1 : x->id > y->id;
}

static void test_next_and_drain(void **state)
{
    enum { N = 300 };
    struct hashtab t;
    struct item items[N];
    struct item *it;
    void **all;
    size_t pos = 0, seen = 0, n = 0;

    (void)state;
    hashtab_init(&t, item_eq);
    for (int i = 0; i < N; i++) {
        items[i] = (struct item){.id = (uint64_t)i * 7919};
        assert_int_equal(hashtab_insert(&t, fib(items[i].id), &items[i]), 0);
    }
    while ((it = hashtab_next(&t, &pos))) {
        assert_false(it->in);
        it->in = true;
        seen++;
    }
    assert_int_equal(seen, N);
    all = hashtab_drain(&t, &n);
    assert_int_equal(n, N);
    assert_int_equal(hashtab_count(&t), 0);
    qsort(all, n, sizeof(*all), by_id);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(all[i], &items[i]);
    assert_int_equal(hashtab_check(&t), 0);
    /* Empty but usable. */
    assert_null(hashtab_find(&t, fib(items[5].id), &items[5].id));
    assert_int_equal(hashtab_insert(&t, fib(items[5].id), &items[5]), 0);
    assert_ptr_equal(hashtab_find(&t, fib(items[5].id), &items[5].id), &items[5]);
    hashtab_destroy(&t);
}

static void test_reserve(void **state)
{
    struct hashtab t;
    struct hashtab_stats before, after;
    struct item items[1000];

    (void)state;
    hashtab_init(&t, item_eq);
    assert_int_equal(hashtab_reserve(&t, (size_t)HASHTAB_MAX_SLOTS), -E2BIG);
    assert_int_equal(hashtab_reserve(&t, 1000), 0);
    hashtab_stats(&t, &before);
    assert_true(before.slots * 4 >= 1000 * 5);
    for (int i = 0; i < 1000; i++) {
        items[i].id = (uint64_t)i;
        assert_int_equal(hashtab_insert(&t, fib(items[i].id), &items[i]), 0);
    }
    hashtab_stats(&t, &after);
    assert_int_equal(after.slots, before.slots); /* reserved: no growth */
    hashtab_destroy(&t);
}

/* Random inserts, takes and removes on a pool of ids, some of them with
 * a weak hash (few bits) so runs get long; after every step the table
 * holds exactly the model's set. */
static void test_random_against_model(void **state)
{
    enum { POOL = 500, OPS = 30000 };
    struct hashtab t;
    struct item items[POOL];
    size_t in = 0;

    (void)state;
    rng_state = 7;
    hashtab_init(&t, item_eq);
    for (int i = 0; i < POOL; i++)
        items[i] = (struct item){.id = rng_next()};
    for (int op = 0; op < OPS; op++) {
        int i = (int)(rng_next() % POOL);
        /* A hash with only 6 distinct values for half the ids. */
        uint32_t h = i % 2 ? fib(items[i].id) : (uint32_t)(items[i].id % 6);

        switch (rng_next() % 3) {
        case 0:
            if (!items[i].in) {
                assert_int_equal(hashtab_insert(&t, h, &items[i]), 0);
                items[i].in = true;
                in++;
            }
            break;
        case 1:
            assert_ptr_equal(hashtab_take(&t, h, &items[i].id), items[i].in ? &items[i] : NULL);
            in -= items[i].in;
            items[i].in = false;
            break;
        case 2:
            assert_int_equal(hashtab_remove(&t, h, &items[i]), items[i].in);
            in -= items[i].in;
            items[i].in = false;
            break;
        }
        assert_int_equal(hashtab_count(&t), in);
        if (op % 97 == 0) {
            assert_int_equal(hashtab_check(&t), 0);
            for (int j = 0; j < POOL; j++) {
                uint32_t hj = j % 2 ? fib(items[j].id) : (uint32_t)(items[j].id % 6);

                assert_ptr_equal(hashtab_find(&t, hj, &items[j].id),
                                 items[j].in ? &items[j] : NULL);
            }
        }
    }
    assert_int_equal(hashtab_check(&t), 0);
    hashtab_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_insert_find_take),
        cmocka_unit_test(test_collisions_and_hash_zero),
        cmocka_unit_test(test_string_keys),
        cmocka_unit_test(test_next_and_drain),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_random_against_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
