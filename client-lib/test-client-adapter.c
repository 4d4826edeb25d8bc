/* The header-only loop adapters, one test source for all of them: built
 * once per adapter (-DVOLT_TEST_LIBUV, -DVOLT_TEST_LIBEVENT,
 * -DVOLT_TEST_SDEVENT), each run drives a client only through that loop
 * against the fake broker: connect waiting for the upstream, a command and
 * its result, a call answered in its handler and one answered by a worker
 * thread (which reaches the loop through the wakeup fd the adapter
 * watches), a request timing out on the adapter's timer, a reconnect (new
 * fd), and a free from inside a callback that leaves nothing behind in the
 * loop. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-broker.h"
#include "proto/msgpack.h"
#include "volt/client.h"

/* ---- the loop under test: new, run once without blocking, attach, free ---- */

#if defined(VOLT_TEST_LIBUV)
#include "volt/adapters/libuv.h"
typedef uv_loop_t loop_t;
static loop_t *loop_new(void)
{
    uv_loop_t *l = malloc(sizeof *l);
    assert_int_equal(uv_loop_init(l), 0);
    return l;
}
static void loop_once(loop_t *l)
{
    uv_run(l, UV_RUN_NOWAIT);
}
static int loop_attach(volt_client *c, loop_t *l)
{
    return volt_libuv_attach(c, l);
}
/* Nothing of the adapter may be left: every handle closed. */
static void loop_free_empty(loop_t *l)
{
    uv_run(l, UV_RUN_NOWAIT); /* close callbacks */
    assert_int_equal(uv_loop_alive(l), 0);
    assert_int_equal(uv_loop_close(l), 0);
    free(l);
}
#elif defined(VOLT_TEST_LIBEVENT)
#include "volt/adapters/libevent.h"
typedef struct event_base loop_t;
static loop_t *loop_new(void)
{
    struct event_base *b = event_base_new();
    assert_non_null(b);
    return b;
}
static void loop_once(loop_t *l)
{
    event_base_loop(l, EVLOOP_NONBLOCK);
}
static int loop_attach(volt_client *c, loop_t *l)
{
    return volt_libevent_attach(c, l);
}
static void loop_free_empty(loop_t *l)
{
    assert_int_equal(event_base_get_num_events(l, EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(l);
}
#elif defined(VOLT_TEST_SDEVENT)
#include "volt/adapters/sd-event.h"
typedef sd_event loop_t;
static loop_t *loop_new(void)
{
    sd_event *e = NULL;
    assert_int_equal(sd_event_new(&e), 0);
    return e;
}
static void loop_once(loop_t *l)
{
    assert_true(sd_event_run(l, 0) >= 0);
}
static int loop_attach(volt_client *c, loop_t *l)
{
    return volt_sdevent_attach(c, l);
}
static void loop_free_empty(loop_t *l)
{
    /* A loop with no source left has nothing to run. */
    assert_int_equal(sd_event_run(l, 0), 0);
    assert_null(sd_event_unref(l));
}
#else
#error "define VOLT_TEST_LIBUV, VOLT_TEST_LIBEVENT or VOLT_TEST_SDEVENT"
#endif

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fx {
    loop_t *loop;
    struct fb *fb;
    volt_client *c;
    int broker_up, broker_down;
    int connects, connect_code;
    int results, last_code;
    pthread_t worker;
    bool worker_started;
    int worker_rc;
};

static void pump(void *arg)
{
    struct fx *f = arg;
    loop_once(f->loop);
}

#define PUMP_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        int64_t deadline_ = now_ms() + 5000;                                                       \
        while (!(cond)) {                                                                          \
            if (now_ms() > deadline_)                                                              \
                fail_msg("timed out waiting for %s", #cond);                                       \
            pump(f);                                                                               \
            usleep(200);                                                                           \
        }                                                                                          \
    } while (0)

static void on_broker(volt_client *c, int up, void *p)
{
    struct fx *f = p;
    (void)c;
    if (up)
        f->broker_up++;
    else
        f->broker_down++;
}

static void on_connect(volt_client *c, int code, const char *message, void *p)
{
    struct fx *f = p;
    (void)c;
    (void)message;
    f->connects++;
    f->connect_code = code;
}

static void on_result(volt_client *c, const volt_result *r, void *p)
{
    struct fx *f = p;
    (void)c;
    f->results++;
    f->last_code = r->code;
}

static void reply_now(volt_client *c, volt_call *call, void *p)
{
    (void)c;
    (void)p;
    volt_call_reply_json(call, "\"now\"");
}

static void *worker_main(void *arg)
{
    volt_call *call = arg;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL); /* the loop is idle in the meantime */
    intptr_t rc = volt_call_reply_json(call, "{\"from\":\"worker\"}");
    return (void *)rc;
}

/* Hands the call to a worker thread, like a handler with blocking work. */
static void reply_from_worker(volt_client *c, volt_call *call, void *p)
{
    struct fx *f = p;
    (void)c;
    assert_int_equal(pthread_create(&f->worker, NULL, worker_main, call), 0);
    f->worker_started = true;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->loop = loop_new();
    f->fb = fb_new();
    fb_set_pump(f->fb, pump, f);
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = f->fb->path;
    o.reconnect_min_ms = 10;
    o.reconnect_max_ms = 40;
    f->c = volt_client_new(&o);
    assert_non_null(f->c);
    volt_on_broker(f->c, on_broker, f);
    assert_int_equal(loop_attach(f->c, f->loop), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    volt_client_free(f->c);
    fb_free(f->fb);
    loop_free_empty(f->loop);
    free(f);
    return 0;
}

static void handshake_ready(struct fb *fb)
{
    fb_handshake(fb, "ready");
    fb_event(fb, "connected", "ready", NULL);
}

static void test_exchange_and_worker_reply(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_register_handler(f->c, "now", reply_now, f), 0);
    assert_int_equal(volt_register_handler(f->c, "work", reply_from_worker, f), 0);
    assert_int_equal(volt_client_connect_async(f->c, 5000, on_connect, f), 0);
    handshake_ready(f->fb);
    PUMP_UNTIL(f, f->connects == 1);
    assert_int_equal(f->connect_code, 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);

    assert_int_equal(volt_send_command_json(f->c, "echo", "[1]", 0, on_result, f), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);
    PUMP_UNTIL(f, f->results == 1);
    assert_int_equal(f->last_code, 0);

    struct proto_msg call;
    memset(&call, 0, sizeof call);
    call.op = PROTO_OP_CALL;
    call.fields = PROTO_F_ID | PROTO_F_COMMAND | PROTO_F_TIMEOUT_MS;
    call.id = 5;
    call.command = proto_span_str("now", 3);
    call.timeout_ms = 30000;
    fb_send(f->fb, &call);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 5);
    assert_true(m.ok);

    /* The worker answers while the loop sits idle: only the wakeup fd can
     * get the answer out. */
    call.id = 6;
    call.command = proto_span_str("work", 4);
    fb_send(f->fb, &call);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 6);
    assert_true(m.ok);
    assert_true(f->worker_started);
    void *rc;
    pthread_join(f->worker, &rc);
    assert_int_equal((intptr_t)rc, 0);
}

static void test_timeout_and_reconnect(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_client_connect(f->c), 0);
    handshake_ready(f->fb);
    PUMP_UNTIL(f, f->broker_up == 1);
    int64_t t0 = now_ms();
    assert_int_equal(volt_send_command(f->c, "slow", NULL, 0, 80, on_result, f), 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    PUMP_UNTIL(f, f->results == 1);
    assert_int_equal(f->last_code, VOLT_E_TIMEOUT);
    assert_true(now_ms() - t0 >= 80);

    int old_fd = volt_client_fd(f->c);
    fb_close_conn(f->fb);
    PUMP_UNTIL(f, f->broker_down == 1);
    handshake_ready(f->fb);
    PUMP_UNTIL(f, f->broker_up == 2);
    assert_true(volt_client_fd(f->c) >= 0);
    (void)old_fd; /* the new socket may reuse the number: close_fd came first */
    assert_int_equal(volt_ping(f->c, on_result, f), 0);
    fb_expect(f->fb, PROTO_OP_PING, &m);
    struct proto_msg pong;
    memset(&pong, 0, sizeof pong);
    pong.op = PROTO_OP_PONG;
    pong.fields = PROTO_F_ID;
    pong.id = m.id;
    fb_send(f->fb, &pong);
    PUMP_UNTIL(f, f->results == 2);
    assert_int_equal(f->last_code, 0);
}

static void free_in_result(volt_client *c, const volt_result *r, void *p)
{
    struct fx *f = p;
    f->results++;
    volt_client_free(c);
    f->c = NULL;
}

static void test_free_from_callback(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_client_connect(f->c), 0);
    handshake_ready(f->fb);
    PUMP_UNTIL(f, f->broker_up == 1);
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 5000, free_in_result, f), 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);
    PUMP_UNTIL(f, f->results == 1);
    assert_null(f->c);
    /* teardown checks that the loop holds nothing of the client. */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exchange_and_worker_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
