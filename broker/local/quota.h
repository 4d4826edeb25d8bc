/* Quotas: what local clients may hold, per client, per user and in total.
 *
 * The broker's promise is that many services share one upstream session
 * without sharing fate. Every client is treated as possibly buggy or
 * hostile, so everything it can make the broker hold is charged to it and
 * to its user (uid: all the connections of one user together), after
 * dbus-broker's user accounting:
 *
 * - connection slots: maxClients in total, maxClientsPerUid per user; the
 *   last reservedClients slots (at most half) only for privileged peers
 *   (root, the broker's own user), so that an operator's `status` and
 *   `monitor` always get in, however many connections others hold;
 * - requests waiting for the server: maxInFlightPerUid per user (the
 *   per-client limit and the table's own size are the router's);
 * - bytes held for clients (read buffers, outbound queues, kept emits):
 *   maxBytesPerUid per user and memoryBudget in total. Bytes are charged
 *   after the fact (a buffer has grown, a frame was queued); when a user or
 *   the total is over, the client holding the most bytes (of that user, or
 *   of all) is the one to cut: quota_charge() names it, the caller closes
 *   it. Cutting the biggest holder, not the client that happened to cross
 *   the line, is what keeps a flood from one client from cutting others.
 *
 * Pure bookkeeping: no I/O, no loop, no allocation per charge (one small
 * record per distinct uid with connections). Every decision is a function
 * of the numbers, so each rule has a unit test (local/test-quota.c).
 */
#ifndef LOCAL_QUOTA_H
#define LOCAL_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct quota_limits {
    uint32_t max_clients;
    uint32_t reserved_clients; /* capped at max_clients / 2 */
    uint32_t max_clients_per_uid;
    uint32_t max_in_flight_per_uid;
    uint64_t max_bytes_per_uid;
    uint64_t memory_budget;
};

struct quota;
struct quota_user;

/* One connection's account. The caller embeds it (zeroed) in its own
 * per-connection state; `owner` is the caller's, the rest is read-only. */
struct quota_client {
    void *owner;
    uint32_t uid;
    bool privileged;
    bool admitted;
    uint64_t bytes;
    uint32_t in_flight;
    /* Private. */
    struct quota_user *user_;
    struct quota_client *prev_, *next_;
};

/* Usage of one user, for status. */
struct quota_usage {
    uint32_t uid;
    uint32_t clients;
    uint32_t in_flight;
    uint64_t bytes;
};

int quota_new(struct quota **out, const struct quota_limits *limits);
/* New limits apply to what comes next; nothing held is taken back. */
void quota_set_limits(struct quota *q, const struct quota_limits *limits);
/* Every client must have left. NULL is fine. */
void quota_free(struct quota *q);

/* Admits a connection of `uid`. 0; or PROTO_E_LIMIT_EXCEEDED with *why
 * naming the limit (the client is then not admitted and must not be
 * charged); or PROTO_E_NOMEM. */
int quota_admit(struct quota *q, struct quota_client *c, uint32_t uid, bool privileged,
                const char **why);
/* Releases everything the client holds (idempotent). */
void quota_leave(struct quota *q, struct quota_client *c);

/* A request of c starts waiting for the server: 0, or
 * PROTO_E_LIMIT_EXCEEDED (user over maxInFlightPerUid) with *why. */
int quota_request_begin(struct quota *q, struct quota_client *c, const char **why);
void quota_request_end(struct quota *q, struct quota_client *c);

/* c now holds `bytes`. Returns the client to cut when a limit is over
 * (c itself, or another: the biggest holder of the user that is over, or
 * of everyone when the total is), with *why; NULL when all is within the
 * limits. The caller cuts it (its bytes then go with quota_leave) and asks
 * again with quota_over(), until NULL. */
struct quota_client *quota_charge(struct quota *q, struct quota_client *c, uint64_t bytes,
                                  const char **why);
/* The next client to cut while over a limit, or NULL. */
struct quota_client *quota_over(struct quota *q, const char **why);

uint32_t quota_clients(const struct quota *q);
uint64_t quota_bytes(const struct quota *q);
uint32_t quota_in_flight(const struct quota *q);
/* Fills up to `max` users' usage; returns how many users there are. */
size_t quota_users(const struct quota *q, struct quota_usage *out, size_t max);
/* How many clients were cut for memory (for status). */
uint64_t quota_memory_cuts(const struct quota *q);
void quota_count_cut(struct quota *q);

#endif
