/* Tests of the request table: lookup by id in any order, deadline order,
 * removal from the middle of the heap, take_all, recycling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "reqtable.h"

static struct volt__req *add(struct volt__reqs *t, uint64_t id, int64_t deadline)
{
    struct volt__req *r = volt__reqs_alloc(t);
    assert_non_null(r);
    r->id = id;
    r->deadline = deadline;
    assert_int_equal(volt__reqs_insert(t, r), 0);
    return r;
}

static void test_take_any_order(void **state)
{
    struct volt__reqs t;
    volt__reqs_init(&t);
    for (uint64_t id = 1; id <= 1000; id++)
        add(&t, id, VOLT__NO_DEADLINE);
    assert_int_equal(volt__reqs_count(&t), 1000);
    /* Odd ids from the top, then even ids from the bottom. */
    for (uint64_t id = 999; id >= 1 && id <= 999; id -= 2) {
        struct volt__req *r = volt__reqs_take(&t, id);
        assert_non_null(r);
        assert_int_equal(r->id, id);
        assert_null(volt__reqs_take(&t, id));
        volt__reqs_release(&t, r);
    }
    for (uint64_t id = 2; id <= 1000; id += 2) {
        struct volt__req *r = volt__reqs_take(&t, id);
        assert_non_null(r);
        assert_int_equal(r->id, id);
        volt__reqs_release(&t, r);
    }
    assert_int_equal(volt__reqs_count(&t), 0);
    assert_null(volt__reqs_take(&t, 5));
    volt__reqs_destroy(&t);
}

static void test_deadline_order(void **state)
{
    struct volt__reqs t;
    volt__reqs_init(&t);
    /* Deadlines in a scrambled order: id i expires at (i * 37) % 101. */
    for (uint64_t id = 1; id <= 100; id++)
        add(&t, id, (int64_t)((id * 37) % 101));
    add(&t, 500, VOLT__NO_DEADLINE);
    assert_int_equal(volt__reqs_next_deadline(&t), 1);
    assert_null(volt__reqs_take_expired(&t, 0));
    int64_t last = -1;
    int n = 0;
    struct volt__req *r;
    while ((r = volt__reqs_take_expired(&t, 1000))) {
        assert_true(r->deadline >= last);
        last = r->deadline;
        n++;
        volt__reqs_release(&t, r);
    }
    assert_int_equal(n, 100);
    assert_int_equal(volt__reqs_next_deadline(&t), VOLT__NO_DEADLINE);
    assert_int_equal(volt__reqs_count(&t), 1);
    volt__reqs_destroy(&t);
}

static void set_later(struct volt__req *r, void *arg)
{
    struct volt__reqs *t = arg;
    if (r->id % 2 == 0)
        assert_int_equal(volt__reqs_set_deadline(t, r, 2000 + (int64_t)r->id), 0);
}

/* Deadlines given later (the broker's default timeout, known at welcome). */
static void test_set_deadline(void **state)
{
    struct volt__reqs t;
    volt__reqs_init(&t);
    for (uint64_t id = 1; id <= 50; id++)
        add(&t, id, id % 2 ? (int64_t)id : VOLT__NO_DEADLINE);
    volt__reqs_each(&t, set_later, &t);
    /* Odd ids keep theirs, even ids now expire after every odd one. */
    int64_t last = -1;
    uint64_t n = 0;
    struct volt__req *r;
    while ((r = volt__reqs_take_expired(&t, 5000))) {
        assert_true(r->deadline >= last);
        assert_int_equal(r->deadline, r->id % 2 ? (int64_t)r->id : 2000 + (int64_t)r->id);
        if (n < 25)
            assert_int_equal(r->id % 2, 1);
        last = r->deadline;
        n++;
        volt__reqs_release(&t, r);
    }
    assert_int_equal(n, 50);
    /* And taken away again. */
    r = add(&t, 77, 10);
    assert_int_equal(volt__reqs_set_deadline(&t, r, VOLT__NO_DEADLINE), 0);
    assert_int_equal(volt__reqs_next_deadline(&t), VOLT__NO_DEADLINE);
    assert_ptr_equal(volt__reqs_take(&t, 77), r);
    volt__reqs_release(&t, r);
    volt__reqs_destroy(&t);
}

static void test_remove_middle_keeps_heap(void **state)
{
    struct volt__reqs t;
    volt__reqs_init(&t);
    for (uint64_t id = 1; id <= 64; id++)
        add(&t, id, (int64_t)(1000 - id * 10));
    /* Remove every third by id (out of heap order), then check the rest
     * still comes out sorted by deadline. */
    for (uint64_t id = 3; id <= 64; id += 3)
        volt__reqs_release(&t, volt__reqs_take(&t, id));
    int64_t last = INT64_MIN;
    size_t n = 0;
    struct volt__req *r;
    while ((r = volt__reqs_take_expired(&t, INT64_MAX - 1))) {
        assert_true(r->deadline >= last);
        assert_true(r->id % 3 != 0);
        last = r->deadline;
        n++;
        volt__reqs_release(&t, r);
    }
    assert_int_equal(n, 64 - 21);
    volt__reqs_destroy(&t);
}

static void test_take_all_in_id_order(void **state)
{
    struct volt__reqs t;
    volt__reqs_init(&t);
    uint64_t ids[] = {42, 7, 1000000, 3, 99, 8};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        add(&t, ids[i], (int64_t)i);
    struct volt__req *list = volt__reqs_take_all(&t);
    assert_int_equal(volt__reqs_count(&t), 0);
    assert_int_equal(volt__reqs_next_deadline(&t), VOLT__NO_DEADLINE);
    uint64_t expect[] = {3, 7, 8, 42, 99, 1000000};
    size_t n = 0;
    while (list) {
        struct volt__req *next = list->next;
        assert_int_equal(list->id, expect[n]);
        n++;
        volt__reqs_release(&t, list);
        list = next;
    }
    assert_int_equal(n, 6);
    /* The table works after being emptied. */
    add(&t, 5, 1);
    struct volt__req *r = volt__reqs_take(&t, 5);
    assert_non_null(r);
    volt__reqs_release(&t, r);
    volt__reqs_destroy(&t);
}

static void test_recycles_and_collisions(void **state)
{
    struct volt__reqs t;
    volt__reqs_init(&t);
    struct volt__req *r = add(&t, 1, 10);
    assert_ptr_equal(volt__reqs_take(&t, 1), r);
    volt__reqs_release(&t, r);
    struct volt__req *again = volt__reqs_alloc(&t);
    assert_ptr_equal(again, r); /* from the free list, zeroed */
    assert_int_equal(again->id, 0);
    assert_int_equal(again->deadline, VOLT__NO_DEADLINE);
    volt__reqs_release(&t, again);
    /* Ids spaced by the table size land in one probe chain; delete from
     * the middle of it and find the others. */
    for (uint64_t k = 1; k <= 8; k++)
        add(&t, k << 20, VOLT__NO_DEADLINE);
    volt__reqs_release(&t, volt__reqs_take(&t, 3u << 20));
    for (uint64_t k = 1; k <= 8; k++) {
        struct volt__req *x = volt__reqs_take(&t, k << 20);
        if (k == 3)
            assert_null(x);
        else
            assert_non_null(x);
        volt__reqs_release(&t, x);
    }
    volt__reqs_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_any_order),
        cmocka_unit_test(test_deadline_order),
        cmocka_unit_test(test_set_deadline),
        cmocka_unit_test(test_remove_middle_keeps_heap),
        cmocka_unit_test(test_take_all_in_id_order),
        cmocka_unit_test(test_recycles_and_collisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
