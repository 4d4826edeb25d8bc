/* local/quota: each admission and memory rule on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "local/quota.h"
#include "proto/errors.h"

static const struct quota_limits limits = {
    .max_clients = 10,
    .reserved_clients = 2,
    .max_clients_per_uid = 4,
    .max_in_flight_per_uid = 3,
    .max_bytes_per_uid = 1000,
    .memory_budget = 1500,
};

static struct quota *make(void)
{
    struct quota *q = NULL;
    assert_int_equal(quota_new(&q, &limits), 0);
    return q;
}

static void admit_ok(struct quota *q, struct quota_client *c, uint32_t uid, bool privileged)
{
    const char *why = NULL;
    memset(c, 0, sizeof(*c));
    int rc = quota_admit(q, c, uid, privileged, &why);
    if (rc != 0)
        fail_msg("uid %u refused: %s", uid, why);
}

static int admit(struct quota *q, struct quota_client *c, uint32_t uid, bool privileged,
                 const char **why)
{
    memset(c, 0, sizeof(*c));
    return quota_admit(q, c, uid, privileged, why);
}

/* One user cannot take every slot: the per-user limit stops it first. */
static void per_uid_connection_limit(void **state)
{
    (void)state;
    struct quota *q = make();
    struct quota_client c[6];
    const char *why = NULL;

    for (int i = 0; i < 4; i++)
        admit_ok(q, &c[i], 1000, false);
    assert_int_equal(admit(q, &c[4], 1000, false, &why), PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(why, "maxClientsPerUid"));
    assert_false(c[4].admitted);
    admit_ok(q, &c[5], 1001, false); /* another user still gets in */
    quota_leave(q, &c[0]);
    admit_ok(q, &c[4], 1000, false); /* a slot of its own came back */
    for (int i = 1; i < 6; i++)
        quota_leave(q, &c[i]);
    assert_int_equal(quota_clients(q), 0);
    quota_free(q);
}

/* The last reserved slots go to root and the broker's user only. */
static void reserved_slots_for_privileged(void **state)
{
    (void)state;
    struct quota *q = make();
    struct quota_client c[11];
    const char *why = NULL;

    for (int i = 0; i < 8; i++)
        admit_ok(q, &c[i], 2000 + (uint32_t)i / 4, false);
    assert_int_equal(admit(q, &c[8], 3000, false, &why), PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(why, "reservedClients"));
    admit_ok(q, &c[8], 0, true);
    admit_ok(q, &c[9], 0, true);
    assert_int_equal(admit(q, &c[10], 0, true, &why), PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(why, "maxClients"));
    for (int i = 0; i < 10; i++)
        quota_leave(q, &c[i]);
    quota_free(q);
}

/* Reserved slots are capped at half of maxClients: a small maxClients
 * still serves ordinary users. */
static void reserved_capped_at_half(void **state)
{
    (void)state;
    struct quota_limits l = limits;
    struct quota *q = NULL;
    struct quota_client c[3];
    const char *why = NULL;

    l.max_clients = 2;
    l.reserved_clients = 8;
    assert_int_equal(quota_new(&q, &l), 0);
    admit_ok(q, &c[0], 5, false);
    assert_int_equal(admit(q, &c[1], 5, false, &why), PROTO_E_LIMIT_EXCEEDED);
    admit_ok(q, &c[1], 0, true);
    quota_leave(q, &c[0]);
    quota_leave(q, &c[1]);
    quota_free(q);
}

/* In-flight requests are counted per user, across its connections, and
 * released with the client. */
static void in_flight_per_uid(void **state)
{
    (void)state;
    struct quota *q = make();
    struct quota_client a, b, other;
    const char *why = NULL;

    admit_ok(q, &a, 7, false);
    admit_ok(q, &b, 7, false);
    admit_ok(q, &other, 8, false);
    assert_int_equal(quota_request_begin(q, &a, &why), 0);
    assert_int_equal(quota_request_begin(q, &b, &why), 0);
    assert_int_equal(quota_request_begin(q, &a, &why), 0);
    assert_int_equal(quota_request_begin(q, &b, &why), PROTO_E_LIMIT_EXCEEDED);
    assert_non_null(strstr(why, "maxInFlightPerUid"));
    assert_int_equal(quota_request_begin(q, &other, &why), 0);
    assert_int_equal(quota_in_flight(q), 4);
    quota_request_end(q, &b);
    assert_int_equal(quota_request_begin(q, &b, &why), 0);
    quota_leave(q, &a); /* its two go with it */
    assert_int_equal(quota_in_flight(q), 2);
    quota_request_end(q, &a); /* after leaving: ignored, never negative */
    assert_int_equal(quota_in_flight(q), 2);
    quota_leave(q, &b);
    quota_leave(q, &other);
    assert_int_equal(quota_in_flight(q), 0);
    quota_free(q);
}

/* Over a user's byte limit, that user's biggest holder is cut, not the
 * client that crossed the line, and nobody of another user. */
static void per_uid_bytes_cut_biggest_of_that_user(void **state)
{
    (void)state;
    struct quota *q = make();
    struct quota_client big, small, bystander;
    const char *why = NULL;

    admit_ok(q, &big, 10, false);
    admit_ok(q, &small, 10, false);
    admit_ok(q, &bystander, 11, false);
    assert_null(quota_charge(q, &bystander, 400, &why));
    assert_null(quota_charge(q, &big, 700, &why));
    assert_ptr_equal(quota_charge(q, &small, 301, &why), &big);
    assert_non_null(strstr(why, "maxBytesPerUid"));
    quota_leave(q, &big);
    assert_null(quota_over(q, &why));
    assert_int_equal(quota_bytes(q), 701);
    quota_leave(q, &small);
    quota_leave(q, &bystander);
    assert_int_equal(quota_bytes(q), 0);
    quota_free(q);
}

/* Over the total budget, the biggest holder of all is cut; the charge may
 * also shrink (a buffer released). */
static void budget_cut_biggest_of_all(void **state)
{
    (void)state;
    struct quota *q = make();
    struct quota_client a, b, c;
    const char *why = NULL;

    admit_ok(q, &a, 20, false);
    admit_ok(q, &b, 21, false);
    admit_ok(q, &c, 22, false);
    assert_null(quota_charge(q, &a, 900, &why));
    assert_null(quota_charge(q, &b, 500, &why));
    assert_ptr_equal(quota_charge(q, &c, 200, &why), &a); /* 1600 > 1500 */
    assert_non_null(strstr(why, "memoryBudget"));
    assert_null(quota_charge(q, &a, 100, &why)); /* a shrank instead: fine again */
    assert_int_equal(quota_bytes(q), 800);
    quota_leave(q, &a);
    quota_leave(q, &b);
    quota_leave(q, &c);
    quota_free(q);
}

/* Users appear with their first client and go with their last; usage is
 * reported per user. */
static void users_listed_with_usage(void **state)
{
    (void)state;
    struct quota *q = make();
    struct quota_client a, b;
    struct quota_usage u[4];
    const char *why = NULL;

    admit_ok(q, &a, 30, false);
    admit_ok(q, &b, 31, false);
    quota_charge(q, &a, 123, &why);
    assert_int_equal(quota_request_begin(q, &b, &why), 0);
    assert_int_equal(quota_users(q, u, 4), 2);
    for (int i = 0; i < 2; i++) {
        if (u[i].uid == 30) {
            assert_int_equal(u[i].bytes, 123);
            assert_int_equal(u[i].clients, 1);
        } else {
            assert_int_equal(u[i].uid, 31);
            assert_int_equal(u[i].in_flight, 1);
        }
    }
    quota_leave(q, &a);
    quota_leave(q, &a); /* twice: nothing more */
    assert_int_equal(quota_users(q, u, 4), 1);
    quota_leave(q, &b);
    assert_int_equal(quota_users(q, u, 4), 0);
    quota_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(per_uid_connection_limit),
        cmocka_unit_test(reserved_slots_for_privileged),
        cmocka_unit_test(reserved_capped_at_half),
        cmocka_unit_test(in_flight_per_uid),
        cmocka_unit_test(per_uid_bytes_cut_biggest_of_that_user),
        cmocka_unit_test(budget_cut_biggest_of_all),
        cmocka_unit_test(users_listed_with_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
