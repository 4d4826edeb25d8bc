/* Tests of the header-only libuv adapter: a client driven only by a libuv
 * loop talks to the fake broker, answers a call later from a uv timer,
 * survives a reconnect (new fd, new poll handle), times requests out on
 * the uv timer, and leaves no handle behind when freed, also from inside
 * one of its own callbacks. */
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
#include "volt/adapters/libuv.h"
#include "volt/client.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fx {
    uv_loop_t loop;
    struct fb *fb;
    volt_client *c;
    int broker_up, broker_down;
    int results;
    int last_code;
    int last_tag;
    volt_call *pending_call;
    uv_timer_t reply_timer;
    bool timer_inited;
};

static void pump(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

#define PUMP_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        int64_t deadline_ = now_ms() + 3000;                                                       \
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
    if (up)
        f->broker_up++;
    else
        f->broker_down++;
}

static void on_result(volt_client *c, const volt_result *r, void *p)
{
    struct fx *f = ((void **)p)[0];
    f->results++;
    f->last_code = r->code;
    f->last_tag = (int)(intptr_t)((void **)p)[1];
}

static void reply_later(uv_timer_t *t)
{
    struct fx *f = t->data;
    struct proto_buf d = PROTO_BUF_INIT;
    proto_mp_put_cstr(&d, "later");
    assert_int_equal(volt_call_reply(f->pending_call, d.data, d.len), 0);
    f->pending_call = NULL;
    proto_buf_free(&d);
}

static void handler(volt_client *c, volt_call *call, void *p)
{
    struct fx *f = p;
    /* Answer from a timer, after this callback has returned. */
    f->pending_call = call;
    uv_timer_start(&f->reply_timer, reply_later, 30, 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->reply_timer);
    f->reply_timer.data = f;
    f->fb = fb_new();
    fb_set_pump(f->fb, pump, f);
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = f->fb->path;
    o.name = "test-libuv";
    o.reconnect_min_ms = 10;
    o.reconnect_max_ms = 40;
    o.timeout_grace_ms = 0;
    f->c = volt_client_new(&o);
    assert_non_null(f->c);
    volt_on_broker(f->c, on_broker, f);
    assert_int_equal(volt_libuv_attach(f->c, &f->loop), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    volt_client_free(f->c);
    uv_close((uv_handle_t *)&f->reply_timer, NULL);
    /* Every handle of the adapter is closed: the loop must end and close. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fb_free(f->fb);
    free(f);
    return 0;
}

static void test_libuv_roundtrip_reconnect(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_register_handler(f->c, "echo-local", handler, f), 0);
    assert_int_equal(volt_client_connect(f->c), 0);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, f->broker_up == 1);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);

    void *tag1[2] = {f, (void *)1};
    assert_int_equal(volt_send_command(f->c, "status", NULL, 0, 0, on_result, tag1), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);
    PUMP_UNTIL(f, f->results == 1);
    assert_int_equal(f->last_code, 0);

    /* A call answered from a uv timer. */
    struct proto_msg call;
    memset(&call, 0, sizeof call);
    call.op = PROTO_OP_CALL;
    call.fields = PROTO_F_ID | PROTO_F_COMMAND;
    call.id = 11;
    call.command = proto_span_str("echo-local", 10);
    fb_send(f->fb, &call);
    fb_expect(f->fb, PROTO_OP_REPLY, &m);
    assert_int_equal(m.id, 11);
    assert_true(m.ok);
    assert_null(f->pending_call);

    /* Reconnect: a new socket, watched by a new poll handle. */
    int old_fd = volt_client_fd(f->c);
    fb_close_conn(f->fb);
    PUMP_UNTIL(f, f->broker_down == 1);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, f->broker_up == 2);
    fb_expect(f->fb, PROTO_OP_REGISTER, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);
    assert_true(volt_client_fd(f->c) >= 0);
    (void)old_fd;
    void *tag2[2] = {f, (void *)2};
    assert_int_equal(volt_send_command(f->c, "again", NULL, 0, 0, on_result, tag2), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);
    PUMP_UNTIL(f, f->results == 2);
    assert_int_equal(f->last_tag, 2);

    /* A request timing out is driven by the uv timer alone. */
    void *tag3[2] = {f, (void *)3};
    int64_t t0 = now_ms();
    assert_int_equal(volt_send_command(f->c, "slow", NULL, 0, 40, on_result, tag3), 0);
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    PUMP_UNTIL(f, f->results == 3);
    assert_int_equal(f->last_code, VOLT_E_TIMEOUT);
    assert_true(now_ms() - t0 >= 40);
}

static void free_in_result(volt_client *c, const volt_result *r, void *p)
{
    struct fx *f = p;
    f->results++;
    volt_client_free(c);
    f->c = NULL;
}

static void test_libuv_free_in_callback(void **state)
{
    struct fx *f = *state;
    assert_int_equal(volt_client_connect(f->c), 0);
    fb_handshake(f->fb, "ready");
    PUMP_UNTIL(f, f->broker_up == 1);
    assert_int_equal(volt_send_command(f->c, "x", NULL, 0, 0, free_in_result, f), 0);
    struct proto_msg m;
    fb_expect(f->fb, PROTO_OP_REQUEST, &m);
    fb_result_ok(f->fb, m.id, NULL, 0);
    PUMP_UNTIL(f, f->c == NULL);
    assert_int_equal(f->results, 1);
    assert_true(fb_eof(f->fb, 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_libuv_roundtrip_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_libuv_free_in_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
