/* local/emitq: kept emits, in order, bounded, owners forgettable. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "local/emitq.h"

static struct proto_span sp(const char *s)
{
    struct proto_span v = {(const uint8_t *)s, (uint32_t)strlen(s)};
    return v;
}

static void expect_front(struct emitq *q, void *owner, const char *type, const char *data)
{
    void *o;
    struct proto_span t, d;
    assert_true(emitq_peek(q, &o, &t, &d));
    assert_ptr_equal(o, owner);
    assert_int_equal(t.len, strlen(type));
    assert_memory_equal(t.ptr, type, t.len);
    assert_int_equal(d.len, strlen(data));
    assert_memory_equal(d.ptr, data, d.len);
}

static void fifo_order_across_owners(void **state)
{
    (void)state;
    struct emitq *q = NULL;
    int a, b;
    struct proto_span t1 = sp("snap"), d1 = sp("\x01"), t2 = sp("odd-len-type"), d2 = sp("abc");

    assert_int_equal(emitq_new(&q, 4096), 0);
    assert_int_equal(emitq_push(q, &a, &t1, &d1), 0);
    assert_int_equal(emitq_push(q, &b, &t2, &d2), 0);
    assert_int_equal(emitq_push(q, &a, &t2, &d1), 0);
    assert_int_equal(emitq_count(q), 3);
    expect_front(q, &a, "snap", "\x01");
    emitq_pop(q);
    expect_front(q, &b, "odd-len-type", "abc"); /* unaligned records read fine */
    emitq_pop(q);
    expect_front(q, &a, "odd-len-type", "\x01");
    emitq_pop(q);
    void *o;
    struct proto_span t, d;
    assert_false(emitq_peek(q, &o, &t, &d));
    assert_int_equal(emitq_bytes(q), 0);
    emitq_pop(q); /* empty: nothing */
    emitq_free(q);
}

/* Full means the new one is refused; nothing older is dropped. */
static void bounded_refuses_new(void **state)
{
    (void)state;
    struct emitq *q = NULL;
    struct proto_span t = sp("t"), d = sp("0123456789");
    size_t one = emitq_record_size(&t, &d);

    assert_int_equal(emitq_new(&q, 2 * one), 0);
    assert_int_equal(emitq_push(q, NULL, &t, &d), 0);
    assert_int_equal(emitq_push(q, NULL, &t, &d), 0);
    assert_int_equal(emitq_push(q, NULL, &t, &d), -ENOSPC);
    assert_int_equal(emitq_count(q), 2);
    assert_int_equal(emitq_bytes(q), 2 * one);
    emitq_pop(q);
    assert_int_equal(emitq_push(q, NULL, &t, &d), 0); /* room again */
    emitq_free(q);
}

/* Many pushes and pops: the front is reclaimed, order holds. */
static void churn_keeps_order(void **state)
{
    (void)state;
    struct emitq *q = NULL;
    char text[16];
    int next_out = 0;

    assert_int_equal(emitq_new(&q, 1 << 16), 0);
    for (int i = 0; i < 5000; i++) {
        snprintf(text, sizeof(text), "%d", i);
        struct proto_span t = sp("n"), d = sp(text);
        assert_int_equal(emitq_push(q, NULL, &t, &d), 0);
        if (i % 3 == 2) {
            for (int k = 0; k < 2; k++) {
                snprintf(text, sizeof(text), "%d", next_out++);
                expect_front(q, NULL, "n", text);
                emitq_pop(q);
            }
        }
    }
    while (emitq_count(q)) {
        snprintf(text, sizeof(text), "%d", next_out++);
        expect_front(q, NULL, "n", text);
        emitq_pop(q);
    }
    assert_int_equal(next_out, 5000);
    emitq_free(q);
}

static void forgotten_owner_keeps_records(void **state)
{
    (void)state;
    struct emitq *q = NULL;
    int a, b;
    struct proto_span t = sp("x"), d = sp("y");

    assert_int_equal(emitq_new(&q, 4096), 0);
    emitq_push(q, &a, &t, &d);
    emitq_push(q, &b, &t, &d);
    emitq_push(q, &a, &t, &d);
    emitq_forget_owner(q, &a);
    expect_front(q, NULL, "x", "y");
    emitq_pop(q);
    expect_front(q, &b, "x", "y");
    emitq_pop(q);
    expect_front(q, NULL, "x", "y");
    emitq_free(q); /* frees what it still holds */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_order_across_owners),
        cmocka_unit_test(bounded_refuses_new),
        cmocka_unit_test(churn_keeps_order),
        cmocka_unit_test(forgotten_owner_keeps_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
