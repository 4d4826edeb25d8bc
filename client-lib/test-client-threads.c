/* Answers from worker threads (the documented thread-safe part of the
 * API), run under ThreadSanitizer in CI: many calls answered concurrently
 * by a pool of workers while the client's thread runs its loop, answers
 * racing a lost session and the client's free, and volt_client_stop() from
 * another thread. The fake broker runs in a thread of its own, or in the
 * test's thread with the client pumped between its polls. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-broker.h"
#include "proto/msgpack.h"
#include "volt/client.h"

#define N_CALLS   300
#define N_WORKERS 4

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a small work queue of calls, served by worker threads ---- */

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    volt_call *q[N_CALLS];
    int head, tail;
    bool closing;
    bool held;    /* workers wait until released */
    int answered; /* answers that returned 0 */
    int gone;     /* answers that returned VOLT_E_BROKER_GONE */
    int other;    /* anything else: a failure */
    pthread_t threads[N_WORKERS];
};

static struct pool P;

static void answer(volt_call *call)
{
    size_t len;
    const void *pl = volt_call_payload(call, &len);
    struct proto_mp_cursor cur;
    struct proto_mp_value v;
    uint64_t i = 0;
    proto_mp_cursor_init(&cur, pl, len);
    if (pl && proto_mp_next(&cur, &v) == 0 && v.type == PROTO_MP_UINT)
        i = v.v.u;
    int rc;
    if (i % 3 == 0) {
        uint8_t buf[16];
        struct proto_buf b = PROTO_BUF_INIT;
        proto_mp_put_uint(&b, i * 2);
        memcpy(buf, b.data, b.len);
        size_t n = b.len;
        proto_buf_free(&b);
        rc = volt_call_reply(call, buf, n);
    } else if (i % 3 == 1) {
        char json[64];
        snprintf(json, sizeof json, "{\"i\":%llu}", (unsigned long long)i);
        rc = volt_call_reply_json(call, json);
    } else {
        rc = volt_call_fail_code(call, "ODD_CODE", "from a worker");
    }
    pthread_mutex_lock(&P.lock);
    if (rc == 0)
        P.answered++;
    else if (rc == VOLT_E_BROKER_GONE)
        P.gone++;
    else
        P.other++;
    pthread_mutex_unlock(&P.lock);
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&P.lock);
    for (;;) {
        while (!P.closing && (P.held || P.head == P.tail))
            pthread_cond_wait(&P.cond, &P.lock);
        if (P.head == P.tail && P.closing)
            break;
        if (P.held)
            continue;
        volt_call *call = P.q[P.head++];
        pthread_mutex_unlock(&P.lock);
        answer(call);
        pthread_mutex_lock(&P.lock);
    }
    pthread_mutex_unlock(&P.lock);
    return NULL;
}

static void pool_start(bool held)
{
    memset(&P, 0, sizeof P);
    pthread_mutex_init(&P.lock, NULL);
    pthread_cond_init(&P.cond, NULL);
    P.held = held;
    for (int i = 0; i < N_WORKERS; i++)
        assert_int_equal(pthread_create(&P.threads[i], NULL, worker_main, NULL), 0);
}

static void pool_release(void)
{
    pthread_mutex_lock(&P.lock);
    P.held = false;
    pthread_cond_broadcast(&P.cond);
    pthread_mutex_unlock(&P.lock);
}

static void pool_stop(void)
{
    pthread_mutex_lock(&P.lock);
    P.closing = true;
    P.held = false;
    pthread_cond_broadcast(&P.cond);
    pthread_mutex_unlock(&P.lock);
    for (int i = 0; i < N_WORKERS; i++)
        pthread_join(P.threads[i], NULL);
    pthread_cond_destroy(&P.cond);
    pthread_mutex_destroy(&P.lock);
}

static int pool_queued(void)
{
    pthread_mutex_lock(&P.lock);
    int n = P.tail;
    pthread_mutex_unlock(&P.lock);
    return n;
}

/* The handler: hand the call over, return at once. */
static void to_pool(volt_client *c, volt_call *call, void *priv)
{
    (void)c;
    (void)priv;
    pthread_mutex_lock(&P.lock);
    P.q[P.tail++] = call;
    pthread_cond_signal(&P.cond);
    pthread_mutex_unlock(&P.lock);
}

/* ---- many calls, answered by the pool while the client runs ---- */

static void send_call_n(struct fb *fb, uint64_t id)
{
    struct proto_buf pl = PROTO_BUF_INIT;
    proto_mp_put_uint(&pl, id);
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.op = PROTO_OP_CALL;
    m.fields = PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_PAYLOAD | PROTO_F_TIMEOUT_MS;
    m.id = id;
    m.command = proto_span_str("work", 4);
    m.payload = (struct proto_span){pl.data, (uint32_t)pl.len};
    m.timeout_ms = 30000;
    fb_send(fb, &m);
    proto_buf_free(&pl);
}

static void script_many(struct fb *fb, void *arg)
{
    (void)arg;
    struct proto_msg m;
    fb_handshake(fb, "ready");
    fb_event(fb, "connected", "ready", NULL);
    fb_expect(fb, PROTO_OP_REGISTER, &m);
    fb_result_ok(fb, m.id, NULL, 0);
    fb_expect(fb, PROTO_OP_SUBSCRIBE, &m);
    fb_result_ok(fb, m.id, NULL, 0);
    for (uint64_t id = 1; id <= N_CALLS; id++)
        send_call_n(fb, id);
    static bool seen[N_CALLS + 1];
    memset(seen, 0, sizeof seen);
    for (int n = 0; n < N_CALLS; n++) {
        if (!fb_recv(fb, &m, 10000))
            fb_fail("only %d of %d replies arrived", n, N_CALLS);
        FB_CHECK(m.op == PROTO_OP_REPLY);
        FB_CHECK(m.id >= 1 && m.id <= N_CALLS && !seen[m.id]);
        seen[m.id] = true;
        uint64_t i = m.id;
        if (i % 3 == 0) {
            struct proto_mp_cursor cur;
            struct proto_mp_value v;
            proto_mp_cursor_init(&cur, m.data.ptr, m.data.len);
            FB_CHECK(m.ok && proto_mp_next(&cur, &v) == 0 && v.type == PROTO_MP_UINT &&
                     v.v.u == i * 2);
        } else if (i % 3 == 1) {
            FB_CHECK(m.ok && proto_msg_has(&m, PROTO_F_DATA));
        } else {
            FB_CHECK(!m.ok && span_eq_str(m.code, "ODD_CODE") &&
                     span_eq_str(m.message, "from a worker"));
        }
    }
    /* Every call answered once: tell the client's loop to stop. */
    struct proto_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.op = PROTO_OP_MESSAGE;
    msg.fields = PROTO_F_TYPE;
    msg.type = proto_span_str("done", 4);
    fb_send(fb, &msg);
    FB_CHECK(fb_eof(fb, 10000));
}

static void stop_on_done(volt_client *c, const volt_message *m, void *p)
{
    (void)m;
    (void)p;
    volt_client_stop(c);
}

static void *watchdog_main(void *arg)
{
    /* A test that hangs is a failure, not a CI timeout. */
    volt_client *c = arg;
    for (int i = 0; i < 300; i++) { /* 30 s: a limit, not a wait for a condition */
        usleep(100 * 1000);
        pthread_testcancel();
    }
    volt_client_stop(c);
    return NULL;
}

static void test_workers_answer_many_calls(void **state)
{
    (void)state;
    struct fb *fb = fb_new();
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = fb->path;
    volt_client *c = volt_client_new(&o);
    assert_non_null(c);
    assert_int_equal(volt_register_handler(c, "work", to_pool, NULL), 0);
    assert_true(volt_on_message(c, VOLT_MATCH_EXACT, "done", 0, stop_on_done, NULL) > 0);
    pool_start(false);
    fb_thread_start(fb, script_many, NULL);
    pthread_t dog;
    pthread_create(&dog, NULL, watchdog_main, c);

    assert_int_equal(volt_client_connect_blocking(c, 5000), 0);
    int64_t t0 = now_ms();
    assert_int_equal(volt_client_run(c), 0);
    pthread_cancel(dog);
    pthread_join(dog, NULL);
    assert_true(now_ms() - t0 < 29000); /* stopped by "done", not the watchdog */

    pool_stop();
    assert_int_equal(P.answered, N_CALLS);
    assert_int_equal(P.gone, 0);
    assert_int_equal(P.other, 0);
    volt_client_free(c);
    fb_thread_join(fb);
    fb_free(fb);
}

/* ---- answers racing a lost session and the client's free ---- */

static void pump_client(void *arg)
{
    volt_client **cp = arg;
    if (*cp)
        volt_client_run_for(*cp, 1);
}

static void test_answers_race_loss_and_free(void **state)
{
    (void)state;
    struct fb *fb = fb_new();
    volt_client *c = NULL;
    fb_set_pump(fb, pump_client, &c);
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = fb->path;
    o.reconnect_min_ms = 10;
    o.reconnect_max_ms = 20;
    c = volt_client_new(&o);
    assert_non_null(c);
    assert_int_equal(volt_register_handler(c, "work", to_pool, NULL), 0);
    pool_start(true);

    /* Session 1: calls held by the workers until the session is gone. */
    assert_int_equal(volt_client_connect(c), 0);
    fb_handshake(fb, "ready");
    struct proto_msg m;
    fb_expect(fb, PROTO_OP_REGISTER, &m);
    fb_result_ok(fb, m.id, NULL, 0);
    for (uint64_t id = 1; id <= 20; id++)
        send_call_n(fb, id);
    int64_t end = now_ms() + 5000;
    while (pool_queued() < 20 && now_ms() < end)
        volt_client_run_for(c, 5);
    assert_int_equal(pool_queued(), 20);
    fb_close_conn(fb);
    end = now_ms() + 5000;
    while (volt_client_is_connected(c) && now_ms() < end)
        volt_client_run_for(c, 5);
    assert_int_equal(volt_client_is_connected(c), 0);
    pool_release();
    end = now_ms() + 5000;
    for (;;) {
        pthread_mutex_lock(&P.lock);
        int done = P.answered + P.gone + P.other;
        pthread_mutex_unlock(&P.lock);
        if (done == 20 || now_ms() > end)
            break;
        volt_client_run_for(c, 5);
    }
    assert_int_equal(P.gone, 20); /* detached: refused, never sent into a new session */
    assert_int_equal(P.other, 0);

    /* Session 2: workers answer while the client is freed under them. */
    fb_handshake(fb, "ready");
    fb_expect(fb, PROTO_OP_REGISTER, &m);
    fb_result_ok(fb, m.id, NULL, 0);
    for (uint64_t id = 21; id <= 60; id++)
        send_call_n(fb, id);
    end = now_ms() + 5000;
    while (pool_queued() < 60 && now_ms() < end)
        volt_client_run_for(c, 5);
    assert_int_equal(pool_queued(), 60);
    volt_client *doomed = c;
    c = NULL;
    volt_client_free(doomed);
    pool_stop();
    /* Each answer either got queued before the free (0: dropped with the
     * client) or found the client gone; nothing else, and nothing leaks. */
    assert_int_equal(P.answered + P.gone, 60);
    assert_int_equal(P.other, 0);
    fb_free(fb);
}

/* ---- volt_client_stop() from another thread ---- */

static void *stopper_main(void *arg)
{
    /* The point: the stop comes while run_for() is waiting (it must
     * return then, not at its 20 s limit). */
    usleep(50 * 1000);
    volt_client_stop(arg);
    return NULL;
}

static void test_stop_from_another_thread(void **state)
{
    (void)state;
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = "/nonexistent/volt-threads.sock";
    volt_client *c = volt_client_new(&o);
    assert_non_null(c);
    assert_int_equal(volt_client_connect(c), 0); /* retrying in the background */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper_main, c), 0);
    int64_t t0 = now_ms();
    assert_int_equal(volt_client_run_for(c, 20000), 0);
    int64_t took = now_ms() - t0;
    pthread_join(t, NULL);
    assert_true(took >= 40 && took < 10000);
    volt_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_answer_many_calls),
        cmocka_unit_test(test_answers_race_loss_and_free),
        cmocka_unit_test(test_stop_from_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
