#include "reqtable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REQS_MIN_SLOTS 16u
#define REQS_MAX_FREE  64u

void volt__reqs_init(struct volt__reqs *t)
{
    memset(t, 0, sizeof *t);
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
    free(t->slots);
    free(t->heap);
    memset(t, 0, sizeof *t);
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
    r->heap_index = SIZE_MAX;
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

/* --- hash --- */

static size_t slot_of(const struct volt__reqs *t, uint64_t id)
{
    /* Fibonacci hashing: ids are sequential, the multiply spreads them. */
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & t->mask;
}

static void hash_put(struct volt__reqs *t, struct volt__req *r)
{
    size_t i = slot_of(t, r->id);
    while (t->slots[i])
        i = (i + 1) & t->mask;
    t->slots[i] = r;
}

static int hash_grow(struct volt__reqs *t)
{
    size_t old_cap = t->slots ? t->mask + 1 : 0;
    size_t cap = old_cap ? old_cap * 2 : REQS_MIN_SLOTS;
    struct volt__req **old = t->slots;
    struct volt__req **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    t->slots = slots;
    t->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            hash_put(t, old[i]);
    free(old);
    return 0;
}

static size_t hash_find(const struct volt__reqs *t, uint64_t id)
{
    if (!t->slots)
        return SIZE_MAX;
    size_t i = slot_of(t, id);
    while (t->slots[i]) {
        if (t->slots[i]->id == id)
            return i;
        i = (i + 1) & t->mask;
    }
    return SIZE_MAX;
}

/* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
static void hash_remove_at(struct volt__reqs *t, size_t hole)
{
    size_t i = hole;
    t->slots[hole] = NULL;
    for (;;) {
        i = (i + 1) & t->mask;
        struct volt__req *r = t->slots[i];
        if (!r)
            return;
        size_t home = slot_of(t, r->id);
        /* r may move into the hole unless its home lies cyclically in (hole, i]. */
        int home_after_hole = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (home_after_hole)
            continue;
        t->slots[hole] = r;
        t->slots[i] = NULL;
        hole = i;
    }
}

/* --- heap --- */

static void heap_set(struct volt__reqs *t, size_t i, struct volt__req *r)
{
    t->heap[i] = r;
    r->heap_index = i;
}

static void heap_up(struct volt__reqs *t, size_t i)
{
    struct volt__req *r = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t->heap[parent]->deadline <= r->deadline)
            break;
        heap_set(t, i, t->heap[parent]);
        i = parent;
    }
    heap_set(t, i, r);
}

static void heap_down(struct volt__reqs *t, size_t i)
{
    struct volt__req *r = t->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= t->heap_len)
            break;
        if (child + 1 < t->heap_len && t->heap[child + 1]->deadline < t->heap[child]->deadline)
            child++;
        if (r->deadline <= t->heap[child]->deadline)
            break;
        heap_set(t, i, t->heap[child]);
        i = child;
    }
    heap_set(t, i, r);
}

static int heap_push(struct volt__reqs *t, struct volt__req *r)
{
    if (t->heap_len == t->heap_cap) {
        size_t cap = t->heap_cap ? t->heap_cap * 2 : 16;
        struct volt__req **heap = realloc(t->heap, cap * sizeof *heap);
        if (!heap)
            return -ENOMEM;
        t->heap = heap;
        t->heap_cap = cap;
    }
    heap_set(t, t->heap_len++, r);
    heap_up(t, t->heap_len - 1);
    return 0;
}

static void heap_remove(struct volt__reqs *t, struct volt__req *r)
{
    size_t i = r->heap_index;
    if (i == SIZE_MAX)
        return;
    r->heap_index = SIZE_MAX;
    struct volt__req *last = t->heap[--t->heap_len];
    if (i == t->heap_len)
        return;
    heap_set(t, i, last);
    heap_up(t, i);
    heap_down(t, last->heap_index);
}

/* --- table --- */

int volt__reqs_insert(struct volt__reqs *t, struct volt__req *r)
{
    /* Keep the load at most one half so probe chains stay short. */
    if (!t->slots || (t->count + 1) * 2 > t->mask + 1) {
        if (hash_grow(t) < 0)
            return -ENOMEM;
    }
    r->heap_index = SIZE_MAX;
    if (r->deadline != VOLT__NO_DEADLINE && heap_push(t, r) < 0)
        return -ENOMEM;
    hash_put(t, r);
    t->count++;
    return 0;
}

static void remove_req(struct volt__reqs *t, size_t slot, struct volt__req *r)
{
    hash_remove_at(t, slot);
    heap_remove(t, r);
    t->count--;
    r->next = NULL;
}

struct volt__req *volt__reqs_take(struct volt__reqs *t, uint64_t id)
{
    size_t slot = hash_find(t, id);
    if (slot == SIZE_MAX)
        return NULL;
    struct volt__req *r = t->slots[slot];
    remove_req(t, slot, r);
    return r;
}

struct volt__req *volt__reqs_take_expired(struct volt__reqs *t, int64_t now)
{
    if (t->heap_len == 0 || t->heap[0]->deadline > now)
        return NULL;
    return volt__reqs_take(t, t->heap[0]->id);
}

int64_t volt__reqs_next_deadline(const struct volt__reqs *t)
{
    return t->heap_len ? t->heap[0]->deadline : VOLT__NO_DEADLINE;
}

int volt__reqs_set_deadline(struct volt__reqs *t, struct volt__req *r, int64_t deadline)
{
    heap_remove(t, r);
    r->deadline = deadline;
    if (deadline == VOLT__NO_DEADLINE)
        return 0;
    if (heap_push(t, r) < 0) {
        r->deadline = VOLT__NO_DEADLINE;
        return -ENOMEM;
    }
    return 0;
}

void volt__reqs_each(struct volt__reqs *t, void (*fn)(struct volt__req *r, void *arg), void *arg)
{
    for (size_t i = 0; t->slots && i <= t->mask; i++)
        if (t->slots[i])
            fn(t->slots[i], arg);
}

static int by_id(const void *a, const void *b)
{
    const struct volt__req *x = *(struct volt__req *const *)a;
    const struct volt__req *y = *(struct volt__req *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

struct volt__req *volt__reqs_take_all(struct volt__reqs *t)
{
    if (t->count == 0)
        return NULL;
    /* Reuse the slot array as the sort buffer: pack the entries to the front. */
    size_t n = 0;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i])
            t->slots[n++] = t->slots[i];
    qsort(t->slots, n, sizeof *t->slots, by_id);
    struct volt__req *head = NULL;
    for (size_t i = n; i-- > 0;) {
        struct volt__req *r = t->slots[i];
        r->heap_index = SIZE_MAX;
        r->next = head;
        head = r;
    }
    memset(t->slots, 0, (t->mask + 1) * sizeof *t->slots);
    t->count = 0;
    t->heap_len = 0;
    return head;
}
