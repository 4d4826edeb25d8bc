/* The pending-request table against a model, plus its limits, iteration
 * under removal, growth and hostile ids. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/test-rng.h"
#include "util/idtable.h"
#include "util/timerqueue.h"
#include "util/uuid.h"

static void random_id(uint8_t id[IDTABLE_ID_LEN])
{
    uint64_t a = rng_next(), b = rng_next();

    memcpy(id, &a, 8);
    memcpy(id + 8, &b, 8);
}

/* An id that differs from its neighbours in three bytes only. */
static void counter_id(uint8_t id[IDTABLE_ID_LEN], uint32_t n)
{
    memset(id, 0x42, IDTABLE_ID_LEN);
    id[13] = (uint8_t)(n >> 16);
    id[14] = (uint8_t)(n >> 8);
    id[15] = (uint8_t)n;
}

static void test_new_rejects_bad_limit(void **state)
{
    struct idtable *table = NULL;

    (void)state;
    assert_int_equal(idtable_new(&table, 0), -EINVAL);
    assert_int_equal(idtable_new(&table, (size_t)IDTABLE_MAX_LIMIT + 1), -EINVAL);
    assert_null(table);
    assert_int_equal(idtable_new(&table, 1), 0);
    assert_int_equal(idtable_limit(table), 1);
    idtable_free(table);
    idtable_free(NULL);
}

static void test_insert_find_remove(void **state)
{
    struct idtable *table;
    struct idtable_entry *entry, *again;
    uint8_t id[IDTABLE_ID_LEN];
    int owner;

    (void)state;
    assert_int_equal(idtable_new(&table, 10), 0);
    assert_int_equal(uuid_generate_v4(id), 0);
    assert_null(idtable_find(table, id));
    assert_int_equal(idtable_insert(table, id, &entry), 0);
    assert_memory_equal(entry->id, id, IDTABLE_ID_LEN);
    assert_null(entry->ctx);
    assert_int_equal(entry->tag, 0);
    assert_false(timer_node_is_armed(&entry->timer));
    entry->ctx = &owner;
    entry->tag = 77;
    assert_int_equal(idtable_count(table), 1);

    assert_ptr_equal(idtable_find(table, id), entry);
    idtable_remove(table, entry);
    assert_null(idtable_find(table, id));
    assert_int_equal(idtable_count(table), 0);
    assert_null(idtable_first(table));

    /* The freed entry is reused, and comes back clean. */
    assert_int_equal(idtable_insert(table, id, &again), 0);
    assert_ptr_equal(again, entry);
    assert_null(again->ctx);
    assert_int_equal(again->tag, 0);
    assert_int_equal(idtable_check(table), 0);
    idtable_free(table);
}

static void test_duplicate_insert(void **state)
{
    struct idtable *table;
    struct idtable_entry *entry, *dup = NULL;
    uint8_t id[IDTABLE_ID_LEN];

    (void)state;
    assert_int_equal(idtable_new(&table, 10), 0);
    counter_id(id, 1);
    assert_int_equal(idtable_insert(table, id, &entry), 0);
    entry->tag = 5;
    assert_int_equal(idtable_insert(table, id, &dup), -EEXIST);
    assert_null(dup);
    assert_int_equal(idtable_count(table), 1);
    assert_int_equal(idtable_find(table, id)->tag, 5); /* the first one stays */
    idtable_remove(table, entry);
    assert_int_equal(idtable_insert(table, id, &dup), 0);
    idtable_free(table);
}

static void test_limit(void **state)
{
    enum { LIMIT = 100 };
    struct idtable *table;
    struct idtable_entry *entries[LIMIT], *extra = NULL;
    uint8_t id[IDTABLE_ID_LEN];

    (void)state;
    assert_int_equal(idtable_new(&table, LIMIT), 0);
    for (uint32_t i = 0; i < LIMIT; i++) {
        counter_id(id, i);
        assert_int_equal(idtable_insert(table, id, &entries[i]), 0);
    }
    counter_id(id, LIMIT);
    assert_int_equal(idtable_insert(table, id, &extra), -ENOSPC);
    assert_null(extra);
    assert_null(idtable_find(table, id));
    /* A duplicate is reported as such even when full. */
    counter_id(id, 3);
    assert_int_equal(idtable_insert(table, id, &extra), -EEXIST);
    assert_int_equal(idtable_count(table), LIMIT);

    idtable_remove(table, entries[50]);
    counter_id(id, LIMIT);
    assert_int_equal(idtable_insert(table, id, &extra), 0);
    counter_id(id, LIMIT + 1);
    assert_int_equal(idtable_insert(table, id, &extra), -ENOSPC);
    assert_int_equal(idtable_check(table), 0);
    idtable_free(table);
}

/* 100k random inserts, finds and removes over a pool of ids twice the
 * limit, so that duplicates and the limit both come up. */
static void test_random_against_model(void **state)
{
    enum { POOL = 8000, LIMIT = 4000, OPS = 100000 };
    struct idtable *table;
    uint8_t(*ids)[IDTABLE_ID_LEN] = malloc(POOL * sizeof(*ids));
    struct idtable_entry **model = calloc(POOL, sizeof(*model));
    size_t count = 0, hit_limit = 0, hit_dup = 0;

    (void)state;
    assert_non_null(ids);
    assert_non_null(model);
    rng_state = 7;
    for (uint32_t i = 0; i < POOL; i++) {
        if (i % 2)
            random_id(ids[i]);
        else
            counter_id(ids[i], i); /* near-identical ids too */
    }
    assert_int_equal(idtable_new(&table, LIMIT), 0);
    for (int op = 0; op < OPS; op++) {
        uint32_t i = (uint32_t)(rng_next() % POOL);
        struct idtable_entry *entry = NULL;
        int r;

        switch (rng_next() % 3) {
        case 0:
            r = idtable_insert(table, ids[i], &entry);
            if (model[i]) {
                assert_int_equal(r, -EEXIST);
                hit_dup++;
            } else if (count == LIMIT) {
                assert_int_equal(r, -ENOSPC);
                hit_limit++;
            } else {
                assert_int_equal(r, 0);
                entry->tag = i;
                entry->ctx = &model[i];
                model[i] = entry;
                count++;
            }
            break;
        case 1:
            entry = idtable_find(table, ids[i]);
            assert_ptr_equal(entry, model[i]);
            if (entry) {
                assert_int_equal(entry->tag, i);
                assert_ptr_equal(entry->ctx, &model[i]);
                assert_memory_equal(entry->id, ids[i], IDTABLE_ID_LEN);
            }
            break;
        case 2:
            if (model[i]) {
                idtable_remove(table, model[i]);
                model[i] = NULL;
                count--;
            }
            break;
        }
        assert_int_equal(idtable_count(table), count);
        if (op % 5000 == 0)
            assert_int_equal(idtable_check(table), 0);
    }
    assert_int_equal(idtable_check(table), 0);
    assert_true(hit_limit > 0);
    assert_true(hit_dup > 0);
    for (uint32_t i = 0; i < POOL; i++)
        assert_ptr_equal(idtable_find(table, ids[i]), model[i]);
    idtable_free(table);
    free(model);
    free(ids);
}

/* "Fail everything pending": the body removes the current entry, and also
 * some entries not reached yet, which then must not be visited. */
static void test_iteration_with_removal(void **state)
{
    enum { N = 1000 };
    struct idtable *table;
    struct idtable_entry *entries[N], *e;
    int visits[N] = {0};
    bool removed_early[N] = {false};
    uint8_t id[IDTABLE_ID_LEN];
    size_t visited = 0, n_removed_current = 0, n_removed_early = 0;

    (void)state;
    assert_int_equal(idtable_new(&table, N), 0);
    for (uint32_t i = 0; i < N; i++) {
        counter_id(id, i);
        assert_int_equal(idtable_insert(table, id, &entries[i]), 0);
        entries[i]->tag = i;
    }
    for (e = idtable_first(table); e; e = idtable_next(table, e)) {
        uint32_t i = (uint32_t)e->tag;

        assert_false(removed_early[i]);
        visits[i]++;
        visited++;
        if (i % 3 == 0) {
            idtable_remove(table, e);
            n_removed_current++;
        } else if (i % 3 == 1 && i + 1 < N && visits[i + 1] == 0) {
            idtable_remove(table, entries[i + 1]);
            removed_early[i + 1] = true;
            n_removed_early++;
        }
    }
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(visits[i], removed_early[i] ? 0 : 1);
    assert_int_equal(visited + n_removed_early, N);
    assert_int_equal(idtable_count(table), N - n_removed_current - n_removed_early);
    assert_true(n_removed_early > 0);
    assert_int_equal(idtable_check(table), 0);

    /* Drain: remove everything while iterating. */
    visited = 0;
    for (e = idtable_first(table); e; e = idtable_next(table, e)) {
        idtable_remove(table, e);
        visited++;
    }
    assert_true(visited > 0);
    assert_int_equal(idtable_count(table), 0);
    assert_null(idtable_first(table));
    assert_int_equal(idtable_check(table), 0);
    idtable_free(table);
}

static void test_growth_preserves_entries(void **state)
{
    enum { N = 50000 };
    struct idtable *table;
    struct idtable_entry **entries = calloc(N, sizeof(*entries));
    uint8_t(*ids)[IDTABLE_ID_LEN] = malloc(N * sizeof(*ids));
    struct idtable_stats before, after;

    (void)state;
    assert_non_null(entries);
    assert_non_null(ids);
    assert_int_equal(idtable_new(&table, N), 0);
    idtable_stats(table, &before);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(uuid_generate_v4(ids[i]), 0);
        assert_int_equal(idtable_insert(table, ids[i], &entries[i]), 0);
        entries[i]->ctx = &entries[i];
        entries[i]->tag = i;
    }
    idtable_stats(table, &after);
    assert_true(after.slots >= before.slots * 1024); /* it grew many times */
    assert_true(after.count * 5 <= after.slots * 4);
    assert_int_equal(after.entries, N);
    for (uint32_t i = 0; i < N; i++) {
        struct idtable_entry *e = idtable_find(table, ids[i]);

        assert_ptr_equal(e, entries[i]);
        assert_memory_equal(e->id, ids[i], IDTABLE_ID_LEN);
        assert_ptr_equal(e->ctx, &entries[i]);
        assert_int_equal(e->tag, i);
    }
    assert_int_equal(idtable_check(table), 0);
    idtable_free(table);
    free(ids);
    free(entries);
}

/* Once warm, insert/remove cycles allocate nothing new. */
static void test_reuse_without_growth(void **state)
{
    enum { N = 1000 };
    struct idtable *table;
    struct idtable_entry *entries[N];
    struct idtable_stats warm, later;
    uint8_t id[IDTABLE_ID_LEN];

    (void)state;
    assert_int_equal(idtable_new(&table, N), 0);
    rng_state = 99;
    for (int i = 0; i < N; i++) {
        random_id(id);
        assert_int_equal(idtable_insert(table, id, &entries[i]), 0);
    }
    idtable_stats(table, &warm);
    for (int round = 0; round < 20000; round++) {
        int i = (int)(rng_next() % N);

        idtable_remove(table, entries[i]);
        random_id(id);
        assert_int_equal(idtable_insert(table, id, &entries[i]), 0);
    }
    idtable_stats(table, &later);
    assert_int_equal(later.bytes, warm.bytes);
    assert_int_equal(later.entries, N);
    assert_int_equal(idtable_check(table), 0);
    idtable_free(table);
}

/* Ids chosen to share 13 of 16 bytes (what a server could send) and
 * unknown ids looked up in bulk: probe runs stay short. */
static void test_hostile_ids_stay_short(void **state)
{
    enum { N = 60000 };
    struct idtable *table;
    struct idtable_entry *entry;
    struct idtable_stats stats;
    uint8_t id[IDTABLE_ID_LEN];

    (void)state;
    assert_int_equal(idtable_new(&table, N), 0);
    for (uint32_t i = 0; i < N; i++) {
        counter_id(id, i);
        assert_int_equal(idtable_insert(table, id, &entry), 0);
    }
    idtable_stats(table, &stats);
    assert_true(stats.max_probe < 64);
    for (uint32_t i = N; i < 2 * N; i++) {
        counter_id(id, i);
        assert_null(idtable_find(table, id));
    }
    idtable_free(table);
}

/* The entry's timer in a heap leads back to the entry. */
static void test_entry_timer_in_heap(void **state)
{
    enum { N = 64 };
    struct idtable *table;
    struct minheap heap;
    struct idtable_entry *entry;
    struct minheap_node *node;
    uint8_t id[IDTABLE_ID_LEN];
    uint64_t expect = 0;

    (void)state;
    assert_int_equal(idtable_new(&table, N), 0);
    minheap_init(&heap);
    for (uint32_t i = 0; i < N; i++) {
        counter_id(id, i);
        assert_int_equal(idtable_insert(table, id, &entry), 0);
        entry->tag = N - 1 - i;
        assert_int_equal(minheap_add(&heap, &entry->timer.heap, entry->tag), 0);
    }
    while ((node = minheap_pop(&heap))) {
        entry = container_of(node, struct idtable_entry, timer.heap);
        assert_int_equal(entry->tag, expect++);
        assert_ptr_equal(idtable_find(table, entry->id), entry);
        idtable_remove(table, entry);
    }
    assert_int_equal(expect, N);
    assert_int_equal(idtable_count(table), 0);
    minheap_destroy(&heap);
    idtable_free(table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_limit),
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_duplicate_insert),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_iteration_with_removal),
        cmocka_unit_test(test_growth_preserves_entries),
        cmocka_unit_test(test_reuse_without_growth),
        cmocka_unit_test(test_hostile_ids_stay_short),
        cmocka_unit_test(test_entry_timer_in_heap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
