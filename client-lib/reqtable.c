#include "reqtable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REQS_MAX_FREE 64u

static bool req_has_id(const void *item, const void *id)
{
    return ((const struct volt__req *)item)->id == *(const uint64_t *)id;
}

/* Fibonacci hashing: ids are sequential, the multiply spreads them. */
static uint32_t hash_id(uint64_t id)
{
    return (uint32_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32);
}

/* The heap orders uint64 keys; flipping the sign bit keeps int64 order. */
static uint64_t heap_key(int64_t deadline)
{
    return (uint64_t)deadline ^ (UINT64_C(1) << 63);
}

static struct volt__req *req_of(struct minheap_node *node)
{
    return container_of(node, struct volt__req, heap);
}

void volt__reqs_init(struct volt__reqs *t)
{
    hashtab_init(&t->by_id, req_has_id);
    minheap_init(&t->by_deadline);
    t->free_list = NULL;
    t->free_count = 0;
}

void volt__reqs_destroy(struct volt__reqs *t)
{
    struct volt__req *r = volt__reqs_take_all(t);
    while (r) {
        struct volt__req *next = r->next;
        free(r);
        r = next;
    }
    r = t->free_list;
    while (r) {
        struct volt__req *next = r->next;
        free(r);
        r = next;
    }
    hashtab_destroy(&t->by_id);
    minheap_destroy(&t->by_deadline);
    volt__reqs_init(t);
}

struct volt__req *volt__reqs_alloc(struct volt__reqs *t)
{
    struct volt__req *r = t->free_list;
    if (r) {
        t->free_list = r->next;
        t->free_count--;
    } else {
        r = malloc(sizeof *r);
        if (!r)
            return NULL;
    }
    memset(r, 0, sizeof *r);
    r->deadline = VOLT__NO_DEADLINE;
    minheap_node_init(&r->heap);
    return r;
}

void volt__reqs_release(struct volt__reqs *t, struct volt__req *r)
{
    if (!r)
        return;
    if (t->free_count >= REQS_MAX_FREE) {
        free(r);
        return;
    }
    r->next = t->free_list;
    t->free_list = r;
    t->free_count++;
}

int volt__reqs_insert(struct volt__reqs *t, struct volt__req *r)
{
    /* Room in the index first, so that a failed heap add leaves nothing. */
    if (hashtab_reserve(&t->by_id, hashtab_count(&t->by_id) + 1) < 0)
        return -ENOMEM;
    minheap_node_init(&r->heap);
    if (r->deadline != VOLT__NO_DEADLINE &&
        minheap_add(&t->by_deadline, &r->heap, heap_key(r->deadline)) < 0)
        return -ENOMEM;
    (void)hashtab_insert(&t->by_id, hash_id(r->id), r); /* reserved: cannot fail */
    return 0;
}

struct volt__req *volt__reqs_take(struct volt__reqs *t, uint64_t id)
{
    struct volt__req *r = hashtab_take(&t->by_id, hash_id(id), &id);
    if (!r)
        return NULL;
    minheap_remove(&t->by_deadline, &r->heap);
    r->next = NULL;
    return r;
}

struct volt__req *volt__reqs_take_expired(struct volt__reqs *t, int64_t now)
{
    struct minheap_node *top = minheap_peek(&t->by_deadline);
    if (!top || req_of(top)->deadline > now)
        return NULL;
    return volt__reqs_take(t, req_of(top)->id);
}

int64_t volt__reqs_next_deadline(const struct volt__reqs *t)
{
    struct minheap_node *top = minheap_peek(&t->by_deadline);
    return top ? req_of(top)->deadline : VOLT__NO_DEADLINE;
}

int volt__reqs_set_deadline(struct volt__reqs *t, struct volt__req *r, int64_t deadline)
{
    r->deadline = deadline;
    if (deadline == VOLT__NO_DEADLINE) {
        minheap_remove(&t->by_deadline, &r->heap);
        return 0;
    }
    if (minheap_update(&t->by_deadline, &r->heap, heap_key(deadline)) < 0) {
        r->deadline = VOLT__NO_DEADLINE;
        return -ENOMEM;
    }
    return 0;
}

void volt__reqs_each(struct volt__reqs *t, void (*fn)(struct volt__req *r, void *arg), void *arg)
{
    size_t pos = 0;
    struct volt__req *r;
    while ((r = hashtab_next(&t->by_id, &pos)))
        fn(r, arg);
}

static int by_id(const void *a, const void *b)
{
    const struct volt__req *x = *(struct volt__req *const *)a;
    const struct volt__req *y = *(struct volt__req *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

struct volt__req *volt__reqs_take_all(struct volt__reqs *t)
{
    /* The index's own array is the sort buffer: no allocation here. */
    size_t n;
    void **all = hashtab_drain(&t->by_id, &n);
    if (!all)
        return NULL;
    qsort(all, n, sizeof *all, by_id);
    struct volt__req *head = NULL;
    for (size_t i = n; i-- > 0;) {
        struct volt__req *r = all[i];
        minheap_node_init(&r->heap);
        r->next = head;
        head = r;
    }
    minheap_destroy(&t->by_deadline); /* every node is detached above */
    return head;
}
