/* local/router: every rule of the header comment of router.h, against a
 * fake upstream session and fake peers (test-router-fakes.c, linked in
 * place of session.c and peer.c). Deadlines run on a real uv loop with
 * short timeouts; the tests wait for conditions, never for a fixed time.
 *
 * VOLT_TEST_FILTER=glob runs only the matching tests (as in every cmocka
 * test here: cmake/volt-test-filter.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "local/quota.h"
#include "local/router.h"
#include "local/test-router-fakes.h"
#include "proto/errors.h"
#include "proto/msgpack.h"

#define MAX_PEERS 8

struct fixture {
    uv_loop_t loop;
    struct router_params params;
    struct router *r;
    struct session *s;
    struct quota *quota;
    struct peer *peers[MAX_PEERS];
    bool joined[MAX_PEERS];
};

static const struct router_params default_params = {
    .command_timeout_ms = 1000,
    .max_command_timeout_ms = 5000,
    .handler_timeout_ms = 30000,
    .max_handlers_per_client = 16,
    .max_subscriptions_per_client = 16,
    .max_in_flight_per_client = 8,
    .max_pending = 16,
    .max_emit_buffer = 4096,
};

static struct fixture *fixture_new(const struct router_params *params, struct quota *quota)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->params = params ? *params : default_params;
    f->quota = quota;
    f->r = router_new(&f->loop, &f->params, quota);
    assert_non_null(f->r);
    f->s = fake_session_new();
    fake_session_set_ready(f->s, true);
    router_set_session(f->r, f->s);
    return f;
}

static int setup(void **state)
{
    *state = fixture_new(NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    router_free(f->r);
    /* The router's uv handles are freed in their close callbacks. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < MAX_PEERS; i++)
        fake_peer_free(f->peers[i]);
    fake_session_free(f->s);
    quota_free(f->quota);
    free(f);
    return 0;
}

/* Client i (id i + 1, uid 1000 + uid_offset), joined as after hello. */
static struct peer *join_uid(struct fixture *f, int i, uint32_t uid)
{
    assert_null(f->peers[i]);
    f->peers[i] = fake_peer_new((uint64_t)i + 1, uid, f->quota);
    assert_int_equal(router_peer_join(f->r, f->peers[i]), 0);
    f->joined[i] = true;
    return f->peers[i];
}

static struct peer *join(struct fixture *f, int i)
{
    return join_uid(f, i, 1000);
}

static void leave(struct fixture *f, struct peer *p)
{
    router_peer_leave(f->r, p);
}

static struct proto_span sp(const char *s)
{
    return proto_span_str(s, (uint32_t)strlen(s));
}

/* A request op; timeout_ms UINT64_MAX: the field is absent. */
static void request(struct fixture *f, struct peer *p, uint64_t id, const char *command,
                    uint64_t timeout_ms)
{
    struct proto_msg m = {.op = PROTO_OP_REQUEST, .fields = PROTO_F_ID | PROTO_F_COMMAND};

    m.id = id;
    m.command = sp(command);
    if (timeout_ms != UINT64_MAX) {
        m.fields |= PROTO_F_TIMEOUT_MS;
        m.timeout_ms = timeout_ms;
    }
    assert_true(router_handle(f->r, p, &m));
}

/* register (add) or unregister of a NULL-terminated list of names. */
static void registration(struct fixture *f, struct peer *p, bool add, uint64_t id, ...)
{
    struct proto_buf names = PROTO_BUF_INIT;
    struct proto_msg m = {.op = add ? PROTO_OP_REGISTER : PROTO_OP_UNREGISTER,
                          .fields = PROTO_F_ID | PROTO_F_COMMANDS};
    const char *list[16];
    uint32_t n = 0;
    va_list ap;

    va_start(ap, id);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        list[n++] = s;
    va_end(ap);
    assert_int_equal(proto_mp_put_array(&names, n), 0);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(proto_mp_put_cstr(&names, list[i]), 0);
    m.id = id;
    m.commands = proto_span_str((const char *)names.data, (uint32_t)names.len);
    m.commands_count = n;
    assert_true(router_handle(f->r, p, &m));
    proto_buf_free(&names);
}

static void subscription(struct fixture *f, struct peer *p, bool add, uint64_t id,
                         const char *match, const char *type)
{
    struct proto_msg m = {.op = add ? PROTO_OP_SUBSCRIBE : PROTO_OP_UNSUBSCRIBE,
                          .fields = PROTO_F_ID | PROTO_F_MATCH};
    m.id = id;
    m.match = sp(match);
    if (type) {
        m.fields |= PROTO_F_TYPE;
        m.type = sp(type);
    }
    assert_true(router_handle(f->r, p, &m));
}

/* An emit with data a msgpack str; id 0: none. */
static void emit(struct fixture *f, struct peer *p, uint64_t id, const char *type, bool is_volatile)
{
    struct proto_buf data = PROTO_BUF_INIT;
    struct proto_msg m = {.op = PROTO_OP_EMIT, .fields = PROTO_F_TYPE | PROTO_F_DATA};

    assert_int_equal(proto_mp_put_cstr(&data, type), 0);
    m.type = sp(type);
    m.data = proto_span_str((const char *)data.data, (uint32_t)data.len);
    if (id) {
        m.fields |= PROTO_F_ID;
        m.id = id;
    }
    if (is_volatile) {
        m.fields |= PROTO_F_VOLATILE;
        m.is_volatile = true;
    }
    assert_true(router_handle(f->r, p, &m));
    proto_buf_free(&data);
}

static void reply(struct fixture *f, struct peer *p, uint64_t call_id, bool ok, const char *code)
{
    struct proto_msg m = {.op = PROTO_OP_REPLY, .fields = PROTO_F_ID | PROTO_F_OK};

    m.id = call_id;
    m.ok = ok;
    if (ok) {
        m.fields |= PROTO_F_DATA;
        m.data = sp("\xa2ok");
    } else if (code) {
        m.fields |= PROTO_F_CODE | PROTO_F_MESSAGE;
        m.code = sp(code);
        m.message = sp("it broke");
    }
    assert_true(router_handle(f->r, p, &m));
}

/* An inbound server:request for command; returns its index in the fake. */
static size_t inbound(struct fixture *f, const char *command)
{
    size_t i;
    struct session_inbound *in = fake_session_inbound(f->s, &i);
    struct proto_span c = sp(command), payload = sp("\x01");

    router_inbound_request(f->r, in, &c, &payload);
    return i;
}

static void inbound_message(struct fixture *f, const char *type)
{
    struct proto_span t = sp(type), d = sp("\xc3");
    router_inbound_message(f->r, &t, &d);
}

/* The last frame p got: a result under id with code. */
static void assert_result(const struct peer *p, uint64_t id, int code)
{
    const struct fake_frame *fr = fake_peer_last(p);
    if (fr->op != PROTO_OP_RESULT || fr->id != id || fr->code != code)
        fail_msg("expected result id %llu code %d (%s), got op %d id %llu code %d (%s) \"%s\"",
                 (unsigned long long)id, code, proto_error_name(code), (int)fr->op,
                 (unsigned long long)fr->id, fr->code, proto_error_name(fr->code), fr->message);
}

/* The call id of p's last frame, which must be a call of command. */
static uint64_t last_call(const struct peer *p, const char *command)
{
    const struct fake_frame *fr = fake_peer_last(p);
    assert_int_equal(fr->op, PROTO_OP_CALL);
    assert_string_equal(fr->command, command);
    return fr->id;
}

static void assert_answer(const struct fixture *f, size_t i, const char *code)
{
    const struct fake_answer *a = fake_session_answer(f->s, i);
    if (a->answers != 1)
        fail_msg("inbound %zu: expected exactly 1 answer, got %d", i, a->answers);
    if (!code) {
        if (!a->ok)
            fail_msg("inbound %zu: expected ok, got error %s", i, a->code);
        return;
    }
    if (a->ok || strcmp(a->code, code) != 0)
        fail_msg("inbound %zu: expected error %s, got %s", i, code, a->ok ? "ok" : a->code);
}

static struct router_counters counters(const struct fixture *f)
{
    struct router_counters c;
    router_get_counters(f->r, &c);
    return c;
}

/* Runs the loop until cond(f) or timeout_ms pass (then fails). */
static void on_wait_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void wait_for(struct fixture *f, bool (*cond)(struct fixture *), uint32_t timeout_ms,
                     const char *what)
{
    uv_timer_t timer;
    bool expired = false;

    uv_timer_init(&f->loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, on_wait_timer, timeout_ms, 0);
    while (!cond(f) && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (!cond(f))
        fail_msg("waited %u ms for: %s", timeout_ms, what);
}

/* ---- outbound requests ---- */

static void request_gets_exactly_one_result(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    request(f, a, 7, "ping", 300);
    assert_int_equal(fake_session_request_count(f->s), 1);
    assert_string_equal(fake_session_request(f->s, 0)->command, "ping");
    assert_int_equal(fake_peer_count(a), 0); /* nothing before the answer */
    fake_session_complete(f->s, 0, 0, "\xa4pong", 5);
    assert_int_equal(fake_peer_count(a), 1);
    assert_result(a, 7, 0);
    assert_int_equal(fake_peer_last(a)->data_len, 5);
    assert_memory_equal(fake_peer_last(a)->data, "\xa4pong", 5);

    /* An error result also comes once, under the client's id. */
    request(f, a, 8, "ping", 300);
    fake_session_complete(f->s, 1, PROTO_E_COMMAND_REJECTED, NULL, 0);
    assert_int_equal(fake_peer_count(a), 2);
    assert_result(a, 8, PROTO_E_COMMAND_REJECTED);
    assert_string_equal(fake_peer_last(a)->message, "the server said no");

    /* The session refusing at once: answered at once, no slot kept. */
    fake_session_set_ready(f->s, false);
    for (uint64_t id = 100; id < 100 + default_params.max_in_flight_per_client + 1; id++) {
        request(f, a, id, "ping", 300);
        assert_result(a, id, PROTO_E_SOCKET_NOT_READY);
    }
}

static void request_duplicate_id(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    request(f, a, 5, "x", 100);
    request(f, a, 5, "x", 100);
    assert_result(a, 5, PROTO_E_DUPLICATE_ID);
    assert_int_equal(fake_session_request_count(f->s), 1);
    /* Ids are per client. */
    request(f, b, 5, "x", 100);
    assert_int_equal(fake_session_request_count(f->s), 2);
    assert_int_equal(fake_peer_count(b), 0);
    /* The first one still gets its one result; then the id is free again. */
    fake_session_complete(f->s, 0, 0, NULL, 0);
    assert_int_equal(fake_peer_count(a), 2);
    assert_result(a, 5, 0);
    request(f, a, 5, "x", 100);
    assert_int_equal(fake_session_request_count(f->s), 3);
    assert_int_equal(fake_peer_count(a), 2);
}

static void leaving_client_cancels_its_requests(void **state)
{
    struct router_params p = default_params;
    p.max_pending = 4;
    p.max_in_flight_per_client = 4;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0), *b = join(f, 1);

    for (uint64_t id = 1; id <= 4; id++)
        request(f, a, id, "x", 100);
    assert_int_equal(fake_session_request_count(f->s), 4);
    /* The table is full: maxPending. */
    request(f, b, 1, "x", 100);
    assert_result(b, 1, PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(fake_peer_last(b)->message, "maxPending"));

    leave(f, a);
    assert_int_equal(fake_session_cancels(f->s), 4);
    for (size_t i = 0; i < 4; i++)
        assert_true(fake_session_request(f->s, i)->cancelled);
    assert_int_equal(counters(f).requests_released, 4);
    assert_int_equal(fake_peer_count(a), 0); /* no result to a client that left */
    assert_int_equal(router_client_count(f->r), 1);

    /* Its slots are free for others at once. */
    for (uint64_t id = 2; id <= 5; id++) {
        request(f, b, id, "x", 100);
        assert_int_equal(fake_peer_count(b), 1);
    }
    assert_int_equal(fake_session_request_count(f->s), 8);
}

static void in_flight_per_client_limit(void **state)
{
    struct router_params p = default_params;
    p.max_in_flight_per_client = 2;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0), *b = join(f, 1);

    request(f, a, 1, "x", 100);
    request(f, a, 2, "x", 100);
    request(f, a, 3, "x", 100);
    assert_result(a, 3, PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(fake_peer_last(a)->message, "maxInFlightPerClient"));
    /* Another client is not affected. */
    request(f, b, 1, "x", 100);
    assert_int_equal(fake_peer_count(b), 0);
    /* A result frees the slot. */
    fake_session_complete(f->s, 0, 0, NULL, 0);
    request(f, a, 4, "x", 100);
    assert_int_equal(fake_session_request_count(f->s), 4);
}

static void in_flight_per_user_limit(void **state)
{
    struct quota *q = NULL;
    struct quota_limits l = {.max_clients = 100,
                             .max_clients_per_uid = 100,
                             .max_in_flight_per_uid = 3,
                             .max_bytes_per_uid = 1 << 20,
                             .memory_budget = 1 << 24};
    assert_int_equal(quota_new(&q, &l), 0);
    struct fixture *f = fixture_new(NULL, q);
    *state = f;
    struct peer *a = join_uid(f, 0, 1000), *b = join_uid(f, 1, 1000), *c = join_uid(f, 2, 2000);

    request(f, a, 1, "x", 100);
    request(f, a, 2, "x", 100);
    request(f, b, 1, "x", 100);
    assert_int_equal(quota_in_flight(q), 3);
    request(f, b, 2, "x", 100);
    assert_result(b, 2, PROTO_E_LIMIT_EXCEEDED);
    request(f, c, 1, "x", 100); /* another user */
    assert_int_equal(fake_peer_count(c), 0);
    assert_int_equal(fake_session_request_count(f->s), 4);
    /* A result and a leave both give the user's share back. */
    fake_session_complete(f->s, 0, 0, NULL, 0);
    leave(f, a);
    assert_int_equal(quota_in_flight(q), 2);
    request(f, b, 3, "x", 100);
    request(f, b, 4, "x", 100);
    assert_int_equal(fake_peer_count(b), 1);
    assert_int_equal(fake_session_request_count(f->s), 6);
}

static void request_timeout_clamped(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    request(f, a, 1, "x", 999999); /* above maxCommandTimeout */
    request(f, a, 2, "x", 0);      /* 0: the default */
    request(f, a, 3, "x", UINT64_MAX);
    request(f, a, 4, "x", 250);
    assert_int_equal(fake_session_request(f->s, 0)->timeout_ms,
                     default_params.max_command_timeout_ms);
    assert_int_equal(fake_session_request(f->s, 1)->timeout_ms, default_params.command_timeout_ms);
    assert_int_equal(fake_session_request(f->s, 2)->timeout_ms, default_params.command_timeout_ms);
    assert_int_equal(fake_session_request(f->s, 3)->timeout_ms, 250);
}

/* ---- handlers ---- */

static void queue_group_round_robin(void **state)
{
    struct fixture *f = *state;
    struct peer *m[3];

    for (int i = 0; i < 3; i++) {
        m[i] = join(f, i);
        registration(f, m[i], true, 1, "work", NULL);
        assert_result(m[i], 1, 0);
        fake_peer_clear(m[i]);
    }
    for (int turn = 0; turn < 6; turn++) {
        size_t in = inbound(f, "work");
        struct peer *holder = m[turn % 3];
        assert_int_equal(fake_peer_count_op(holder, PROTO_OP_CALL), (size_t)(turn / 3 + 1));
        uint64_t call = last_call(holder, "work");
        assert_int_equal(fake_peer_last(holder)->timeout_ms, default_params.handler_timeout_ms);
        assert_int_equal(fake_session_answer(f->s, in)->answers, 0);
        reply(f, holder, call, true, NULL);
        assert_answer(f, in, NULL);
        assert_int_equal(fake_session_answer(f->s, in)->data_len, 3);
    }
    assert_int_equal(counters(f).inbound_answered, 6);
    assert_int_equal(router_open_calls(f->r), 0);
}

static void failover_when_member_leaves(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    registration(f, a, true, 1, "work", NULL);
    registration(f, b, true, 1, "work", NULL);
    leave(f, a);
    fake_peer_clear(b);
    for (int i = 0; i < 3; i++) {
        size_t in = inbound(f, "work");
        reply(f, b, last_call(b, "work"), true, NULL);
        assert_answer(f, in, NULL);
    }
    assert_int_equal(fake_peer_count_op(b, PROTO_OP_CALL), 3);
    assert_int_equal(fake_peer_count(a), 1); /* its register result and nothing since */
}

static void failover_when_member_is_dead(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    registration(f, a, true, 1, "work", NULL);
    registration(f, b, true, 1, "work", NULL);
    fake_peer_clear(a);
    fake_peer_clear(b);
    /* a is being evicted: still a member until its close, but unreachable. */
    fake_peer_set_gone(a, true);
    for (int i = 0; i < 3; i++) {
        size_t in = inbound(f, "work");
        assert_int_equal(fake_peer_count_op(b, PROTO_OP_CALL), (size_t)i + 1);
        reply(f, b, last_call(b, "work"), true, NULL);
        assert_answer(f, in, NULL);
    }
    assert_int_equal(router_open_calls(f->r), 0);
    /* When nobody is reachable: HandlerError at once, nothing left open. */
    fake_peer_set_gone(b, true);
    size_t in = inbound(f, "work");
    assert_answer(f, in, "HandlerError");
    assert_int_equal(router_open_calls(f->r), 0);
}

static void no_handler_at_once(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    size_t in = inbound(f, "nobody");
    assert_answer(f, in, "NoHandler");
    registration(f, a, true, 1, "work", NULL);
    registration(f, a, false, 2, "work", NULL);
    assert_result(a, 2, 0);
    in = inbound(f, "work");
    assert_answer(f, in, "NoHandler");
    assert_int_equal(counters(f).inbound_no_handler, 2);
    assert_int_equal(fake_peer_count_op(a, PROTO_OP_CALL), 0);
}

static void handler_error_when_holder_leaves(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", "other", NULL);
    size_t in1 = inbound(f, "work");
    size_t in2 = inbound(f, "other");
    assert_int_equal(router_open_calls(f->r), 2);
    leave(f, a);
    assert_answer(f, in1, "HandlerError");
    assert_answer(f, in2, "HandlerError");
    assert_int_equal(router_open_calls(f->r), 0);
    assert_int_equal(counters(f).inbound_handler_error, 2);
}

static bool one_timeout(struct fixture *f)
{
    return counters(f).inbound_timeout >= 1;
}

static void handler_timeout_then_late_reply(void **state)
{
    struct router_params p = default_params;
    p.handler_timeout_ms = 20;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", NULL);
    size_t in = inbound(f, "work");
    uint64_t call = last_call(a, "work");
    assert_int_equal(fake_peer_last(a)->timeout_ms, 20);
    wait_for(f, one_timeout, 5000, "the call's deadline");
    assert_answer(f, in, "HandlerTimeout");
    assert_int_equal(router_open_calls(f->r), 0);
    /* The client answers after all: dropped, counted, still one answer. */
    reply(f, a, call, true, NULL);
    assert_answer(f, in, "HandlerTimeout");
    assert_int_equal(counters(f).late_replies, 1);
    assert_int_equal(counters(f).inbound_answered, 0);
}

static void reply_twice_answers_once(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", NULL);
    size_t in = inbound(f, "work");
    uint64_t call = last_call(a, "work");
    reply(f, a, call, false, "Busy");
    assert_answer(f, in, "Busy");
    assert_string_equal(fake_session_answer(f->s, in)->message, "it broke");
    reply(f, a, call, true, NULL);
    assert_answer(f, in, "Busy");
    assert_int_equal(counters(f).late_replies, 1);
    /* A code that cannot travel: the server gets HandlerError, the client is told. */
    in = inbound(f, "work");
    reply(f, a, last_call(a, "work"), false, "bad\ncode");
    assert_answer(f, in, "HandlerError");
    assert_int_equal(fake_peer_last(a)->op, PROTO_OP_ERROR);
    assert_int_equal(fake_peer_last(a)->code, PROTO_E_BAD_REQUEST);
}

static void reply_after_holder_left_or_by_another_client(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    registration(f, a, true, 1, "work", NULL);
    registration(f, b, true, 1, "work", NULL);
    size_t in_a = inbound(f, "work");
    uint64_t call_a = last_call(a, "work");
    size_t in_b = inbound(f, "work");
    uint64_t call_b = last_call(b, "work");

    /* Not the holder: dropped. */
    reply(f, a, call_b, true, NULL);
    assert_int_equal(fake_session_answer(f->s, in_b)->answers, 0);
    assert_int_equal(counters(f).late_replies, 1);
    /* The holder leaves: HandlerError once; a reply to its call from
     * anyone afterwards is dropped. */
    leave(f, a);
    assert_answer(f, in_a, "HandlerError");
    reply(f, b, call_a, true, NULL);
    assert_answer(f, in_a, "HandlerError");
    assert_int_equal(counters(f).late_replies, 2);
    reply(f, b, call_b, true, NULL);
    assert_answer(f, in_b, NULL);
}

/* The broker's closing callback: the router forgets the client. */
static void closed_by_peer(struct peer *p, void *ud)
{
    struct fixture *f = ud;
    router_peer_leave(f->r, p);
}

static void slow_consumer_holding_a_call(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", NULL);
    fake_peer_set_queue_limit(a, fake_peer_count(a), closed_by_peer, f);
    /* The call overflows a's queue: a is closed inside the send, and the
     * call it was given is answered HandlerError exactly once. */
    size_t in = inbound(f, "work");
    assert_answer(f, in, "HandlerError");
    assert_int_equal(router_open_calls(f->r), 0);
    assert_int_equal(router_client_count(f->r), 0);
    assert_int_equal(router_handler_count(f->r), 0);
    assert_int_equal(counters(f).slow_consumers, 1);
    in = inbound(f, "work");
    assert_answer(f, in, "NoHandler");
}

static void slow_consumer_in_a_fan_out(void **state)
{
    struct fixture *f = *state;
    struct peer *m[3];

    for (int i = 0; i < 3; i++) {
        m[i] = join(f, i);
        subscription(f, m[i], true, 1, "all", NULL);
    }
    /* The middle one overflows while the message goes out: the others
     * still get it, the walk survives the client going away. */
    fake_peer_set_queue_limit(m[1], fake_peer_count(m[1]), closed_by_peer, f);
    inbound_message(f, "t");
    assert_int_equal(router_client_count(f->r), 2);
    assert_int_equal(fake_peer_count_op(m[0], PROTO_OP_MESSAGE), 1);
    assert_int_equal(fake_peer_count_op(m[2], PROTO_OP_MESSAGE), 1);
    assert_int_equal(counters(f).slow_consumers, 1);
    inbound_message(f, "t");
    assert_int_equal(fake_peer_count_op(m[0], PROTO_OP_MESSAGE), 2);
    assert_int_equal(fake_peer_count_op(m[1], PROTO_OP_MESSAGE), 1);
}

/* The handler list, sorted into one string "a,b,c" for comparison. */
static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static void assert_handler_list(struct fixture *f, const char *expected)
{
    struct proto_buf out = PROTO_BUF_INIT;
    struct proto_mp_cursor cur;
    struct proto_mp_value v;
    char names[8][32], joined[256] = "";
    const char *sorted[8];
    uint32_t n;

    assert_int_equal(router_handler_list(f->r, &out), 0);
    proto_mp_cursor_init(&cur, out.data, out.len);
    assert_int_equal(proto_mp_next(&cur, &v), 0);
    assert_int_equal(v.type, PROTO_MP_ARRAY);
    n = v.v.count;
    assert_true(n <= 8);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(proto_mp_next(&cur, &v), 0);
        assert_int_equal(v.type, PROTO_MP_STR);
        snprintf(names[i], sizeof(names[i]), "%.*s", (int)v.v.str.len, (const char *)v.v.str.ptr);
        sorted[i] = names[i];
    }
    qsort(sorted, n, sizeof(sorted[0]), cmp_str);
    for (uint32_t i = 0; i < n; i++) {
        strcat(joined, i ? "," : "");
        strcat(joined, sorted[i]);
    }
    assert_string_equal(joined, expected);
    proto_buf_free(&out);
}

static void handler_list_announced_when_union_changes(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    registration(f, a, true, 1, "x", NULL);
    assert_int_equal(fake_session_handlers_changed(f->s), 1);
    registration(f, b, true, 1, "x", NULL); /* x was there already */
    assert_int_equal(fake_session_handlers_changed(f->s), 1);
    registration(f, a, true, 2, "x", NULL); /* a had it already */
    assert_int_equal(fake_session_handlers_changed(f->s), 1);
    registration(f, a, false, 3, "x", NULL); /* b still has it */
    assert_int_equal(fake_session_handlers_changed(f->s), 1);
    assert_handler_list(f, "x");
    registration(f, a, true, 4, "y", "x", NULL);
    assert_int_equal(fake_session_handlers_changed(f->s), 2);
    assert_handler_list(f, "x,y");
    registration(f, a, false, 5, "nothing", NULL); /* not a member: no change */
    assert_int_equal(fake_session_handlers_changed(f->s), 2);
    leave(f, b); /* a still has x */
    assert_int_equal(fake_session_handlers_changed(f->s), 2);
    leave(f, a);
    assert_int_equal(fake_session_handlers_changed(f->s), 3);
    assert_handler_list(f, "");
}

#define HAS(f, name) router_has_handler((f)->r, (const uint8_t *)(name), strlen(name))

/* The broker asks whether the handlers of the last run are back. */
static void has_handler_follows_registrations(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    assert_false(HAS(f, "x"));
    registration(f, a, true, 1, "x", NULL);
    registration(f, b, true, 1, "x", "y", NULL);
    assert_true(HAS(f, "x"));
    assert_true(HAS(f, "y"));
    assert_false(HAS(f, "xy"));
    assert_false(HAS(f, ""));
    assert_true(router_has_handler(f->r, (const uint8_t *)"xyz", 1)); /* by length, not NUL */
    registration(f, a, false, 2, "x", NULL);                          /* b still serves it */
    assert_true(HAS(f, "x"));
    leave(f, b);
    assert_false(HAS(f, "x"));
    assert_false(HAS(f, "y"));
}

static void handlers_per_client_limit(void **state)
{
    struct router_params p = default_params;
    p.max_handlers_per_client = 2;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "a", "b", "c", NULL);
    assert_result(a, 1, PROTO_E_LIMIT_EXCEEDED);
    assert_int_equal(router_handler_count(f->r), 0); /* all or nothing */
    registration(f, a, true, 2, "a", "b", NULL);
    assert_result(a, 2, 0);
    registration(f, a, true, 3, "bad\x01name", NULL);
    assert_result(a, 3, PROTO_E_BAD_REQUEST);
}

/* ---- subscriptions ---- */

static void subscriptions_deliver_once_per_client(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1), *c = join(f, 2), *d = join(f, 3);

    /* a's three filters all match "t.a": one delivery. */
    subscription(f, a, true, 1, "all", NULL);
    subscription(f, a, true, 2, "exact", "t.a");
    subscription(f, a, true, 3, "prefix", "t.");
    subscription(f, a, true, 4, "prefix", "t."); /* again: no second filter */
    subscription(f, b, true, 1, "exact", "t.b");
    subscription(f, c, true, 1, "prefix", "t");
    subscription(f, d, true, 1, "exact", "t.ab");
    assert_result(a, 4, 0);
    inbound_message(f, "t.a");
    assert_int_equal(fake_peer_count_op(a, PROTO_OP_MESSAGE), 1);
    assert_string_equal(fake_peer_last(a)->type, "t.a");
    assert_int_equal(fake_peer_last(a)->data_len, 1);
    assert_int_equal(fake_peer_count_op(b, PROTO_OP_MESSAGE), 0);
    assert_int_equal(fake_peer_count_op(c, PROTO_OP_MESSAGE), 1);
    assert_int_equal(fake_peer_count_op(d, PROTO_OP_MESSAGE), 0);

    /* Dropping "all" and "exact" leaves the prefix: still once. */
    subscription(f, a, false, 5, "all", NULL);
    subscription(f, a, false, 6, "exact", "t.a");
    inbound_message(f, "t.a");
    assert_int_equal(fake_peer_count_op(a, PROTO_OP_MESSAGE), 2);
    subscription(f, a, false, 7, "prefix", "t.");
    inbound_message(f, "t.a");
    assert_int_equal(fake_peer_count_op(a, PROTO_OP_MESSAGE), 2);
    assert_int_equal(fake_peer_count_op(c, PROTO_OP_MESSAGE), 3);

    subscription(f, b, true, 2, "sometimes", "t");
    assert_result(b, 2, PROTO_E_BAD_REQUEST);
    subscription(f, b, true, 3, "exact", NULL);
    assert_result(b, 3, PROTO_E_BAD_REQUEST);
}

/* ---- emits ---- */

static void emits_kept_while_not_ready_in_order(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    fake_session_set_ready(f->s, false);
    emit(f, a, 1, "first", false);
    assert_result(a, 1, 0);
    emit(f, b, 0, "second", false); /* without an id: no result */
    assert_int_equal(fake_peer_count(b), 0);
    emit(f, a, 2, "third", false);
    assert_int_equal(fake_session_emit_count(f->s), 0);
    assert_true(fake_peer_held(a) > 0); /* charged to its client */
    assert_int_equal(counters(f).emits_kept, 3);

    /* A volatile emit is never kept. */
    emit(f, a, 3, "volatile", true);
    assert_result(a, 3, PROTO_E_EMIT_FAILED);
    assert_int_equal(counters(f).emits_kept, 3);

    /* b goes; its kept emit is still sent. */
    leave(f, b);
    fake_session_set_ready(f->s, true);
    router_upstream_ready(f->r);
    assert_int_equal(fake_session_emit_count(f->s), 3);
    assert_string_equal(fake_session_emit(f->s, 0)->type, "first");
    assert_string_equal(fake_session_emit(f->s, 1)->type, "second");
    assert_string_equal(fake_session_emit(f->s, 2)->type, "third");
    assert_int_equal(fake_peer_held(a), 0);
    assert_int_equal(router_kept_emit_bytes(f->r), 0);
    assert_int_equal(counters(f).emits_kept_sent, 3);

    /* Ready and nothing kept: straight through. */
    emit(f, a, 4, "fourth", true);
    assert_result(a, 4, 0);
    assert_int_equal(fake_session_emit_count(f->s), 4);
}

static bool two_emits(struct fixture *f)
{
    return fake_session_emit_count(f->s) >= 2;
}

static void new_emits_queue_behind_kept_ones(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    fake_session_set_ready(f->s, false);
    emit(f, a, 1, "old", false);
    /* Ready, but not yet told: the new emit must not overtake the old. */
    fake_session_set_ready(f->s, true);
    fake_session_fail_emits(f->s, PROTO_E_EMIT_FAILED, 1); /* send queue full once */
    emit(f, a, 2, "new", false);
    assert_result(a, 2, 0);
    assert_int_equal(fake_session_emit_count(f->s), 0);
    /* While some are kept a volatile emit fails rather than overtake. */
    emit(f, a, 3, "volatile", true);
    assert_result(a, 3, PROTO_E_EMIT_FAILED);
    /* The router retries on its own once the queue has room. */
    wait_for(f, two_emits, 5000, "the kept emits to be retried");
    assert_string_equal(fake_session_emit(f->s, 0)->type, "old");
    assert_string_equal(fake_session_emit(f->s, 1)->type, "new");
    assert_int_equal(router_kept_emit_bytes(f->r), 0);
}

static void emit_buffer_full(void **state)
{
    struct router_params p = default_params;
    p.max_emit_buffer = 64;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0);
    uint64_t id = 1;

    fake_session_set_ready(f->s, false);
    do
        emit(f, a, id++, "some-emit-type", false);
    while (fake_peer_last(a)->code == 0 && id < 100);
    assert_result(a, id - 1, PROTO_E_EMIT_FAILED);
    assert_non_null(strstr(fake_peer_last(a)->message, "maxEmitBuffer"));
}

/* ---- events ---- */

static void events_go_to_every_client_that_said_hello(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);
    /* c is connected but has not said hello: never joined. */
    struct peer *c = f->peers[2] = fake_peer_new(3, 1000, NULL);
    struct proto_msg ev = {.op = PROTO_OP_EVENT, .fields = PROTO_F_EVENT};

    ev.event = sp("connected");
    router_broadcast(f->r, &ev);
    assert_int_equal(fake_peer_count_op(a, PROTO_OP_EVENT), 1);
    assert_int_equal(fake_peer_count_op(b, PROTO_OP_EVENT), 1);
    assert_int_equal(fake_peer_count(c), 0);
    /* A client that is not joined is not routed at all. */
    struct proto_msg req = {.op = PROTO_OP_REQUEST, .fields = PROTO_F_ID | PROTO_F_COMMAND};
    req.id = 1;
    req.command = sp("x");
    assert_false(router_handle(f->r, c, &req));
}

/* ---- more races and edges ---- */

static void on_run_for_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* For negative checks only: runs the loop for ms (something that must not
 * happen would have happened by then). */
static void run_for(struct fixture *f, uint32_t ms)
{
    uv_timer_t timer;
    bool done = false;

    uv_timer_init(&f->loop, &timer);
    timer.data = &done;
    uv_timer_start(&timer, on_run_for_timer, ms, 0);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void holder_leaving_disarms_the_deadline(void **state)
{
    struct router_params p = default_params;
    p.handler_timeout_ms = 20;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", NULL);
    size_t in = inbound(f, "work");
    leave(f, a);
    assert_answer(f, in, "HandlerError");
    /* Negative check: well past the deadline, no HandlerTimeout follows
     * (and under ASan, no timer fires on a freed entry). */
    run_for(f, 80);
    assert_answer(f, in, "HandlerError");
    assert_int_equal(counters(f).inbound_timeout, 0);
}

static void reply_before_the_deadline_is_not_timed_out(void **state)
{
    struct router_params p = default_params;
    p.handler_timeout_ms = 30;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", NULL);
    size_t first = inbound(f, "work");
    uint64_t call = last_call(a, "work");
    size_t second = inbound(f, "work");
    reply(f, a, call, true, NULL);
    /* Both deadlines are the same: when the second has passed, so has the first. */
    wait_for(f, one_timeout, 5000, "the second call's deadline");
    assert_answer(f, first, NULL);
    assert_answer(f, second, "HandlerTimeout");
    assert_int_equal(counters(f).inbound_timeout, 1);
}

static void call_too_large_for_the_client(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", NULL);
    fake_peer_set_send_error(a, PROTO_E_FRAME_TOO_LARGE);
    size_t in = inbound(f, "work");
    assert_answer(f, in, "HandlerError");
    assert_int_equal(router_open_calls(f->r), 0);
    assert_int_equal(router_client_count(f->r), 1); /* the client is fine */
}

static void slow_consumer_closed_by_its_own_result(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    request(f, a, 1, "x", 100);
    request(f, a, 2, "x", 100);
    request(f, b, 1, "x", 100);
    fake_peer_set_queue_limit(a, 0, closed_by_peer, f);
    /* The result of 1 overflows a: it is closed inside the callback, and
     * request 2 is released (cancelled) then, exactly once. */
    fake_session_complete(f->s, 0, 0, NULL, 0);
    assert_int_equal(router_client_count(f->r), 1);
    assert_true(fake_session_request(f->s, 1)->cancelled);
    assert_int_equal(fake_session_cancels(f->s), 1);
    assert_int_equal(counters(f).requests_released, 1);
    assert_int_equal(counters(f).slow_consumers, 1);
    fake_session_complete(f->s, 2, 0, NULL, 0);
    assert_result(b, 1, 0);
}

static void router_free_answers_and_releases_everything(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    registration(f, a, true, 1, "work", NULL);
    registration(f, b, true, 1, "work", NULL);
    size_t in1 = inbound(f, "work"), in2 = inbound(f, "work");
    request(f, a, 7, "x", 100);
    request(f, b, 7, "x", 100);
    router_free(f->r);
    f->r = NULL;
    assert_answer(f, in1, "HandlerError");
    assert_answer(f, in2, "HandlerError");
    assert_string_equal(fake_session_answer(f->s, in1)->message, "the broker is stopping");
    assert_int_equal(fake_session_cancels(f->s), 2);
}

static void fail_open_calls_on_shutdown(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    registration(f, a, true, 1, "work", NULL);
    size_t in1 = inbound(f, "work");
    uint64_t call = last_call(a, "work");
    size_t in2 = inbound(f, "work");
    assert_int_equal(router_open_calls(f->r), 2);
    router_fail_open_calls(f->r, "ShuttingDown", "the broker is stopping");
    assert_int_equal(router_open_calls(f->r), 0);
    assert_answer(f, in1, "ShuttingDown");
    assert_answer(f, in2, "ShuttingDown");
    reply(f, a, call, true, NULL); /* too late: still one answer */
    assert_answer(f, in1, "ShuttingDown");
}

static void handler_list_must_fit_the_server(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0), *b = join(f, 1);

    /* ["aaa","bbb"] is 13 bytes of JSON. */
    fake_session_set_handler_room(f->s, 12);
    registration(f, a, true, 1, "aaa", NULL);
    assert_result(a, 1, 0);
    registration(f, b, true, 1, "bbb", NULL);
    assert_result(b, 1, PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(fake_peer_last(b)->message, "maxPayload"));
    registration(f, b, true, 2, "aaa", NULL); /* adds no name: fits */
    assert_result(b, 2, 0);
    assert_handler_list(f, "aaa");

    /* The server lowers its limit under a list that fitted: the newest
     * names go, and each registrant is told. */
    fake_session_set_handler_room(f->s, 1 << 20);
    registration(f, b, true, 3, "bbb", NULL);
    fake_peer_clear(a);
    fake_peer_clear(b);
    router_trim_handlers(f->r, 8);
    assert_handler_list(f, "aaa");
    assert_int_equal(fake_peer_count(a), 0);
    assert_int_equal(fake_peer_count_op(b, PROTO_OP_ERROR), 1);
    assert_int_equal(fake_peer_last(b)->code, PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(fake_peer_last(b)->message, "'bbb'"));
    size_t in = inbound(f, "bbb");
    assert_answer(f, in, "NoHandler");
}

static void subscriptions_per_client_limit(void **state)
{
    struct router_params p = default_params;
    p.max_subscriptions_per_client = 2;
    struct fixture *f = fixture_new(&p, NULL);
    *state = f;
    struct peer *a = join(f, 0);

    subscription(f, a, true, 1, "exact", "a");
    subscription(f, a, true, 2, "exact", "b");
    subscription(f, a, true, 3, "exact", "c");
    assert_result(a, 3, PROTO_E_LIMIT_EXCEEDED);
    subscription(f, a, true, 4, "exact", "b"); /* the same again: no new filter */
    assert_result(a, 4, 0);
    subscription(f, a, false, 5, "exact", "a");
    subscription(f, a, true, 6, "exact", "c");
    assert_result(a, 6, 0);
}

static void no_upstream_configured(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    router_set_session(f->r, NULL);
    request(f, a, 1, "x", 100);
    assert_result(a, 1, PROTO_E_SOCKET_NOT_READY);
    emit(f, a, 2, "t", false);
    assert_result(a, 2, PROTO_E_EMIT_FAILED);
    registration(f, a, true, 3, "work", NULL);
    assert_result(a, 3, 0);
    assert_int_equal(fake_session_request_count(f->s), 0);
    assert_int_equal(fake_session_handlers_changed(f->s), 0);
}

static void kept_emit_the_server_refuses_is_dropped_in_turn(void **state)
{
    struct fixture *f = *state;
    struct peer *a = join(f, 0);

    fake_session_set_ready(f->s, false);
    emit(f, a, 1, "refused", false);
    emit(f, a, 2, "taken", false);
    fake_session_set_ready(f->s, true);
    fake_session_fail_emits(f->s, PROTO_E_PAYLOAD_TOO_LARGE, 1);
    router_upstream_ready(f->r);
    assert_int_equal(fake_session_emit_count(f->s), 1);
    assert_string_equal(fake_session_emit(f->s, 0)->type, "taken");
    assert_int_equal(counters(f).emits_kept_dropped, 1);
    assert_int_equal(counters(f).emits_kept_sent, 1);
    assert_int_equal(fake_peer_held(a), 0);
}

static void event_fan_out_survives_a_slow_consumer(void **state)
{
    struct fixture *f = *state;
    struct peer *m[3];
    struct proto_msg ev = {.op = PROTO_OP_EVENT, .fields = PROTO_F_EVENT};

    for (int i = 0; i < 3; i++)
        m[i] = join(f, i);
    fake_peer_set_queue_limit(m[1], 0, closed_by_peer, f);
    ev.event = sp("disconnected");
    router_broadcast(f->r, &ev);
    assert_int_equal(router_client_count(f->r), 2);
    assert_int_equal(fake_peer_count_op(m[0], PROTO_OP_EVENT), 1);
    assert_int_equal(fake_peer_count_op(m[2], PROTO_OP_EVENT), 1);
    router_broadcast(f->r, &ev);
    assert_int_equal(fake_peer_count_op(m[0], PROTO_OP_EVENT), 2);
    assert_int_equal(fake_peer_count_op(m[1], PROTO_OP_EVENT), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(request_gets_exactly_one_result, setup, teardown),
        cmocka_unit_test_setup_teardown(request_duplicate_id, setup, teardown),
        cmocka_unit_test_teardown(leaving_client_cancels_its_requests, teardown),
        cmocka_unit_test_teardown(in_flight_per_client_limit, teardown),
        cmocka_unit_test_teardown(in_flight_per_user_limit, teardown),
        cmocka_unit_test_setup_teardown(request_timeout_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(queue_group_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(failover_when_member_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(failover_when_member_is_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(no_handler_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(handler_error_when_holder_leaves, setup, teardown),
        cmocka_unit_test_teardown(handler_timeout_then_late_reply, teardown),
        cmocka_unit_test_setup_teardown(reply_twice_answers_once, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_after_holder_left_or_by_another_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(slow_consumer_holding_a_call, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_consumer_in_a_fan_out, setup, teardown),
        cmocka_unit_test_setup_teardown(handler_list_announced_when_union_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(has_handler_follows_registrations, setup, teardown),
        cmocka_unit_test_teardown(handlers_per_client_limit, teardown),
        cmocka_unit_test_setup_teardown(subscriptions_deliver_once_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(emits_kept_while_not_ready_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(new_emits_queue_behind_kept_ones, setup, teardown),
        cmocka_unit_test_teardown(emit_buffer_full, teardown),
        cmocka_unit_test_setup_teardown(events_go_to_every_client_that_said_hello, setup, teardown),
        cmocka_unit_test_teardown(holder_leaving_disarms_the_deadline, teardown),
        cmocka_unit_test_teardown(reply_before_the_deadline_is_not_timed_out, teardown),
        cmocka_unit_test_setup_teardown(call_too_large_for_the_client, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_consumer_closed_by_its_own_result, setup, teardown),
        cmocka_unit_test_setup_teardown(router_free_answers_and_releases_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(fail_open_calls_on_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(handler_list_must_fit_the_server, setup, teardown),
        cmocka_unit_test_teardown(subscriptions_per_client_limit, teardown),
        cmocka_unit_test_setup_teardown(no_upstream_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(kept_emit_the_server_refuses_is_dropped_in_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(event_fan_out_survives_a_slow_consumer, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
