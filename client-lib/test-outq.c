/* Tests of the output queue: bytes come out in the order they went in,
 * whatever the frame sizes and however the socket splits the writes, and
 * what is queued is never moved to make room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outq.h"
#include "tests/test-rng.h"

static void put(struct volt__outq *q, const uint8_t *data, size_t n)
{
    assert_int_equal(proto_buf_append(volt__outq_tail(q), data, n), 0);
}

/* Copies out up to `max` queued bytes, as a socket taking a piece would,
 * and consumes them. */
static size_t take(struct volt__outq *q, uint8_t *to, size_t max)
{
    struct iovec iov[2];
    int n = volt__outq_peek(q, iov);
    size_t got = 0;

    for (int i = 0; i < n && got < max; i++) {
        size_t k = iov[i].iov_len < max - got ? iov[i].iov_len : max - got;
        memcpy(to + got, iov[i].iov_base, k);
        got += k;
    }
    volt__outq_consume(q, got);
    return got;
}

static void test_in_order_whatever_the_splits(void **state)
{
    (void)state;
    enum { TOTAL = 1 << 20 };
    uint8_t *in = malloc(TOTAL), *out = malloc(TOTAL);
    struct volt__outq q;
    size_t queued = 0, written = 0;

    assert_non_null(in);
    assert_non_null(out);
    rng_state = 7;
    for (size_t i = 0; i < TOTAL; i++)
        in[i] = (uint8_t)rng_next();
    volt__outq_init(&q);
    while (written < TOTAL) {
        /* A few frames of any size, then a write of any size. */
        for (int f = (int)(rng_next() % 4); f > 0 && queued < TOTAL; f--) {
            size_t n = 1 + rng_next() % 20000;
            if (n > TOTAL - queued)
                n = TOTAL - queued;
            put(&q, in + queued, n);
            queued += n;
        }
        assert_int_equal(volt__outq_pending(&q), queued - written);
        written += take(&q, out + written, rng_next() % 30000);
    }
    assert_int_equal(volt__outq_pending(&q), 0);
    assert_memory_equal(in, out, TOTAL);
    volt__outq_free(&q);
    free(in);
    free(out);
}

static void test_nothing_moves(void **state)
{
    (void)state;
    uint8_t frame[1000], to[300];
    struct iovec iov[2];
    struct volt__outq q;

    memset(frame, 'a', sizeof(frame));
    volt__outq_init(&q);
    put(&q, frame, sizeof(frame));
    assert_int_equal(volt__outq_peek(&q, iov), 1);
    const uint8_t *first = iov[0].iov_base;

    /* Part written: the rest is written from where it is. */
    assert_int_equal(take(&q, to, sizeof(to)), sizeof(to));
    /* Frames queued meanwhile go behind it without moving it. */
    for (int i = 0; i < 100; i++)
        put(&q, frame, sizeof(frame));
    assert_int_equal(volt__outq_peek(&q, iov), 2);
    assert_ptr_equal(iov[0].iov_base, first + sizeof(to));
    assert_int_equal(iov[0].iov_len, sizeof(frame) - sizeof(to));
    assert_int_equal(iov[1].iov_len, 100 * sizeof(frame));
    volt__outq_free(&q);
}

static void test_rollback_and_reset(void **state)
{
    (void)state;
    uint8_t frame[64] = {1}, to[16];
    struct iovec iov[2];
    struct volt__outq q;

    volt__outq_init(&q);
    put(&q, frame, sizeof(frame));
    take(&q, to, sizeof(to));
    /* A frame that fails to encode is taken back by its length. */
    struct proto_buf *tail = volt__outq_tail(&q);
    size_t before = tail->len;
    assert_int_equal(proto_buf_append(tail, frame, 10), 0);
    tail->len = before;
    assert_int_equal(volt__outq_pending(&q), sizeof(frame) - sizeof(to));
    /* A new connection starts empty, with the memory kept. */
    volt__outq_reset(&q);
    assert_int_equal(volt__outq_pending(&q), 0);
    assert_int_equal(volt__outq_peek(&q, iov), 0);
    assert_non_null(q.head.data);
    put(&q, frame, 5);
    assert_int_equal(volt__outq_peek(&q, iov), 1);
    assert_int_equal(iov[0].iov_len, 5);
    volt__outq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_whatever_the_splits),
        cmocka_unit_test(test_nothing_moves),
        cmocka_unit_test(test_rollback_and_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
