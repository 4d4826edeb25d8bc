#include "quota.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"

struct quota_user {
    struct quota_user *next;
    uint32_t uid;
    uint32_t clients;
    uint32_t in_flight;
    uint64_t bytes;
};

struct quota {
    struct quota_limits limits;
    struct quota_user *users; /* those with at least one client */
    struct quota_client *clients;
    uint32_t n_clients;
    uint32_t in_flight;
    uint64_t bytes;
    uint64_t memory_cuts;
};

int quota_new(struct quota **out, const struct quota_limits *limits)
{
    struct quota *q = calloc(1, sizeof(*q));

    if (!q)
        return -ENOMEM;
    q->limits = *limits;
    *out = q;
    return 0;
}

void quota_set_limits(struct quota *q, const struct quota_limits *limits)
{
    q->limits = *limits;
}

void quota_free(struct quota *q)
{
    if (!q)
        return;
    while (q->users) {
        struct quota_user *u = q->users;
        q->users = u->next;
        free(u);
    }
    free(q);
}

static struct quota_user *user_find(const struct quota *q, uint32_t uid)
{
    for (struct quota_user *u = q->users; u; u = u->next) {
        if (u->uid == uid)
            return u;
    }
    return NULL;
}

static void user_release(struct quota *q, struct quota_user *u)
{
    if (u->clients)
        return;
    for (struct quota_user **pp = &q->users; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            free(u);
            return;
        }
    }
}

static uint32_t reserved(const struct quota_limits *l)
{
    return l->reserved_clients < l->max_clients / 2 ? l->reserved_clients : l->max_clients / 2;
}

int quota_admit(struct quota *q, struct quota_client *c, uint32_t uid, bool privileged,
                const char **why)
{
    const struct quota_limits *l = &q->limits;
    struct quota_user *u = user_find(q, uid);

    if (q->n_clients >= l->max_clients) {
        *why = "too many clients (maxClients)";
        return PROTO_E_LIMIT_EXCEEDED;
    }
    if (!privileged && q->n_clients >= l->max_clients - reserved(l)) {
        *why = "too many clients: the remaining slots are kept for root and the broker's user "
               "(reservedClients)";
        return PROTO_E_LIMIT_EXCEEDED;
    }
    if (u && u->clients >= l->max_clients_per_uid) {
        *why = "too many clients of this user (maxClientsPerUid)";
        return PROTO_E_LIMIT_EXCEEDED;
    }
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u) {
            *why = "out of memory";
            return PROTO_E_NOMEM;
        }
        u->uid = uid;
        u->next = q->users;
        q->users = u;
    }
    c->uid = uid;
    c->privileged = privileged;
    c->admitted = true;
    c->bytes = 0;
    c->in_flight = 0;
    c->user_ = u;
    c->prev_ = NULL;
    c->next_ = q->clients;
    if (q->clients)
        q->clients->prev_ = c;
    q->clients = c;
    q->n_clients++;
    u->clients++;
    return 0;
}

void quota_leave(struct quota *q, struct quota_client *c)
{
    struct quota_user *u = c->user_;

    if (!c->admitted)
        return;
    c->admitted = false;
    u->bytes -= c->bytes;
    q->bytes -= c->bytes;
    u->in_flight -= c->in_flight;
    q->in_flight -= c->in_flight;
    c->bytes = 0;
    c->in_flight = 0;
    if (c->prev_)
        c->prev_->next_ = c->next_;
    else
        q->clients = c->next_;
    if (c->next_)
        c->next_->prev_ = c->prev_;
    c->prev_ = c->next_ = NULL;
    c->user_ = NULL;
    q->n_clients--;
    u->clients--;
    user_release(q, u);
}

int quota_request_begin(struct quota *q, struct quota_client *c, const char **why)
{
    struct quota_user *u = c->user_;

    if (!c->admitted) {
        *why = "the client is leaving";
        return PROTO_E_LIMIT_EXCEEDED;
    }
    if (u->in_flight >= q->limits.max_in_flight_per_uid) {
        *why = "too many requests in flight for this user (maxInFlightPerUid)";
        return PROTO_E_LIMIT_EXCEEDED;
    }
    u->in_flight++;
    c->in_flight++;
    q->in_flight++;
    return 0;
}

void quota_request_end(struct quota *q, struct quota_client *c)
{
    if (!c->admitted || !c->in_flight)
        return;
    c->in_flight--;
    c->user_->in_flight--;
    q->in_flight--;
}

/* The client of `uid` (any uid when !by_uid) holding the most bytes. */
static struct quota_client *biggest(const struct quota *q, bool by_uid, uint32_t uid)
{
    struct quota_client *best = NULL;

    for (struct quota_client *c = q->clients; c; c = c->next_) {
        if (by_uid && c->uid != uid)
            continue;
        if (!best || c->bytes > best->bytes)
            best = c;
    }
    return best;
}

struct quota_client *quota_over(struct quota *q, const char **why)
{
    const struct quota_limits *l = &q->limits;

    if (q->bytes > l->memory_budget) {
        *why = "the broker's memory budget (memoryBudget) is used up";
        return biggest(q, false, 0);
    }
    for (struct quota_user *u = q->users; u; u = u->next) {
        if (u->bytes > l->max_bytes_per_uid) {
            *why = "this user's clients hold too many bytes (maxBytesPerUid)";
            return biggest(q, true, u->uid);
        }
    }
    return NULL;
}

struct quota_client *quota_charge(struct quota *q, struct quota_client *c, uint64_t bytes,
                                  const char **why)
{
    if (!c->admitted)
        return NULL;
    c->user_->bytes = c->user_->bytes - c->bytes + bytes;
    q->bytes = q->bytes - c->bytes + bytes;
    c->bytes = bytes;
    return quota_over(q, why);
}

uint32_t quota_clients(const struct quota *q)
{
    return q->n_clients;
}

uint64_t quota_bytes(const struct quota *q)
{
    return q->bytes;
}

uint32_t quota_in_flight(const struct quota *q)
{
    return q->in_flight;
}

size_t quota_users(const struct quota *q, struct quota_usage *out, size_t max)
{
    size_t n = 0;

    for (const struct quota_user *u = q->users; u; u = u->next, n++) {
        if (n < max) {
            out[n].uid = u->uid;
            out[n].clients = u->clients;
            out[n].in_flight = u->in_flight;
            out[n].bytes = u->bytes;
        }
    }
    return n;
}

uint64_t quota_memory_cuts(const struct quota *q)
{
    return q->memory_cuts;
}

void quota_count_cut(struct quota *q)
{
    q->memory_cuts++;
}
