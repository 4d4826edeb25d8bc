/* The table of requests in flight: found by id when the result arrives,
 * ordered by deadline so the earliest can expire.
 *
 * Ids are chosen by the client (monotonic, never reused), so a hash on the
 * id (common/hashtab.h, Fibonacci hashing of the id) finds a result's
 * request in O(1) whatever order results come in, and a binary min-heap
 * (common/minheap.h) of the requests that have a deadline gives the next
 * timeout in O(1) and removes any request in O(log n) (each request knows
 * its heap slot). Request structs are recycled through a small free list,
 * so a client in steady state does not allocate per request.
 */
#ifndef VOLT_REQTABLE_H
#define VOLT_REQTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/hashtab.h"
#include "common/minheap.h"

#define VOLT__NO_DEADLINE INT64_MAX

struct volt__req {
    uint64_t id;
    int64_t deadline;         /* monotonic ms, VOLT__NO_DEADLINE for none */
    struct minheap_node heap; /* in the heap while it has a deadline */
    int kind;                 /* owner-defined */
    unsigned flags;           /* owner-defined */
    void (*cb)(void);         /* owner-defined callback (cast back by the owner) */
    void *privdata;
    struct volt__req *next; /* free list / list returned by take_all */
};

struct volt__reqs {
    struct hashtab by_id;
    struct minheap by_deadline;
    struct volt__req *free_list;
    size_t free_count;
};

void volt__reqs_init(struct volt__reqs *t);
/* Frees the table and the free list; requests still in it are freed too
 * (their callbacks are not run: take_all first). */
void volt__reqs_destroy(struct volt__reqs *t);

/* A zeroed request (from the free list when possible), not in the table.
 * NULL on out of memory. Give it back with volt__reqs_release or insert. */
struct volt__req *volt__reqs_alloc(struct volt__reqs *t);
void volt__reqs_release(struct volt__reqs *t, struct volt__req *r);

/* Adds r (r->id unique and nonzero, r->deadline set). 0 or -ENOMEM. */
int volt__reqs_insert(struct volt__reqs *t, struct volt__req *r);
/* Removes and returns the request with this id; NULL when absent. */
struct volt__req *volt__reqs_take(struct volt__reqs *t, uint64_t id);
/* Removes and returns the request with the earliest deadline if it is
 * <= now; NULL otherwise. */
struct volt__req *volt__reqs_take_expired(struct volt__reqs *t, int64_t now);
/* Earliest deadline, VOLT__NO_DEADLINE when none. */
int64_t volt__reqs_next_deadline(const struct volt__reqs *t);
/* Gives r (in the table) a new deadline (VOLT__NO_DEADLINE: none).
 * 0, or -ENOMEM (r is then left without a deadline). */
int volt__reqs_set_deadline(struct volt__reqs *t, struct volt__req *r, int64_t deadline);
/* Calls fn for every request in the table, in no particular order. fn may
 * change deadlines but must not insert or take requests. */
void volt__reqs_each(struct volt__reqs *t, void (*fn)(struct volt__req *r, void *arg), void *arg);
/* Empties the table; returns its requests linked by `next` in id order. */
struct volt__req *volt__reqs_take_all(struct volt__reqs *t);
static inline size_t volt__reqs_count(const struct volt__reqs *t)
{
    return hashtab_count(&t->by_id);
}

#endif
