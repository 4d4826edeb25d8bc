#include "timerheap.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#define INITIAL_CAPACITY 16u
/* Below this the array is never shrunk: not worth a realloc. */
#define SHRINK_FLOOR 1024u

/* The deadline is kept beside the pointer so that sifting compares
 * neighbours in the array instead of chasing every node in memory: the
 * difference between one cache miss per level and two or three. */
struct heap_slot {
    uint64_t deadline;
    struct timer_node *node;
};

struct timer_heap {
    struct heap_slot *slots;
    uint32_t count;
    uint32_t capacity;
};

int timer_heap_new(struct timer_heap **out)
{
    struct timer_heap *heap = calloc(1, sizeof(*heap));

    if (!heap)
        return -ENOMEM;
    *out = heap;
    return 0;
}

void timer_heap_free(struct timer_heap *heap)
{
    if (!heap)
        return;
    for (uint32_t i = 0; i < heap->count; i++)
        heap->slots[i].node->index = TIMER_NODE_DETACHED;
    free(heap->slots);
    free(heap);
}

static int resize(struct timer_heap *heap, uint32_t capacity)
{
    struct heap_slot *slots = realloc(heap->slots, (size_t)capacity * sizeof(*slots));

    if (!slots)
        return -ENOMEM;
    heap->slots = slots;
    heap->capacity = capacity;
    return 0;
}

int timer_heap_reserve(struct timer_heap *heap, size_t n)
{
    uint64_t capacity = heap->capacity ? heap->capacity : INITIAL_CAPACITY;

    if (n > TIMER_HEAP_MAX_NODES)
        return -E2BIG;
    if (n <= heap->capacity)
        return 0;
    while (capacity < n)
        capacity *= 2;
    return resize(heap, (uint32_t)capacity);
}

static void place(struct timer_heap *heap, uint32_t i, struct heap_slot slot)
{
    heap->slots[i] = slot;
    slot.node->index = i;
}

static void sift_up(struct timer_heap *heap, uint32_t i)
{
    struct heap_slot cur = heap->slots[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;

        if (heap->slots[parent].deadline <= cur.deadline)
            break;
        place(heap, i, heap->slots[parent]);
        i = parent;
    }
    place(heap, i, cur);
}

static void sift_down(struct timer_heap *heap, uint32_t i)
{
    struct heap_slot cur = heap->slots[i];

    for (;;) {
        uint32_t child = 2 * i + 1;

        if (child >= heap->count)
            break;
        if (child + 1 < heap->count &&
            heap->slots[child + 1].deadline < heap->slots[child].deadline)
            child++;
        if (cur.deadline <= heap->slots[child].deadline)
            break;
        place(heap, i, heap->slots[child]);
        i = child;
    }
    place(heap, i, cur);
}

/* Restores the heap around position i after its deadline changed. */
static void fix(struct timer_heap *heap, uint32_t i)
{
    if (i > 0 && heap->slots[i].deadline < heap->slots[(i - 1) / 2].deadline)
        sift_up(heap, i);
    else
        sift_down(heap, i);
}

int timer_heap_add(struct timer_heap *heap, struct timer_node *node, uint64_t deadline)
{
    int r;

    if (timer_node_is_armed(node))
        return -EEXIST;
    if (heap->count == heap->capacity) {
        r = timer_heap_reserve(heap, (size_t)heap->count + 1);
        if (r < 0)
            return r;
    }
    node->deadline = deadline;
    place(heap, heap->count++, (struct heap_slot){.deadline = deadline, .node = node});
    sift_up(heap, node->index);
    return 0;
}

int timer_heap_update(struct timer_heap *heap, struct timer_node *node, uint64_t deadline)
{
    if (!timer_node_is_armed(node))
        return timer_heap_add(heap, node, deadline);
    assert(timer_heap_contains(heap, node));
    node->deadline = deadline;
    heap->slots[node->index].deadline = deadline;
    fix(heap, node->index);
    return 0;
}

/* Halves the array when it is three quarters empty, so that one burst does
 * not pin its peak forever; the hysteresis keeps add/remove near a boundary
 * from reallocating every time. A failed shrink changes nothing. */
static void maybe_shrink(struct timer_heap *heap)
{
    if (heap->capacity > SHRINK_FLOOR && heap->count < heap->capacity / 4)
        (void)resize(heap, heap->capacity / 2);
}

void timer_heap_remove(struct timer_heap *heap, struct timer_node *node)
{
    uint32_t i = node->index;
    struct heap_slot last;

    if (!timer_node_is_armed(node))
        return;
    assert(timer_heap_contains(heap, node));
    node->index = TIMER_NODE_DETACHED;
    last = heap->slots[--heap->count];
    if (last.node != node) {
        place(heap, i, last);
        fix(heap, i);
    }
    maybe_shrink(heap);
}

struct timer_node *timer_heap_peek(const struct timer_heap *heap)
{
    return heap->count ? heap->slots[0].node : NULL;
}

struct timer_node *timer_heap_pop(struct timer_heap *heap)
{
    struct timer_node *node = timer_heap_peek(heap);

    if (node)
        timer_heap_remove(heap, node);
    return node;
}

struct timer_node *timer_heap_pop_expired(struct timer_heap *heap, uint64_t now)
{
    struct timer_node *node = timer_heap_peek(heap);

    if (!node || node->deadline > now)
        return NULL;
    timer_heap_remove(heap, node);
    return node;
}

bool timer_heap_contains(const struct timer_heap *heap, const struct timer_node *node)
{
    return node->index < heap->count && heap->slots[node->index].node == node;
}

size_t timer_heap_count(const struct timer_heap *heap)
{
    return heap->count;
}

size_t timer_heap_memory(const struct timer_heap *heap)
{
    return sizeof(*heap) + (size_t)heap->capacity * sizeof(*heap->slots);
}

int timer_heap_check(const struct timer_heap *heap)
{
    if (heap->count > heap->capacity)
        return -EUCLEAN;
    for (uint32_t i = 0; i < heap->count; i++) {
        const struct heap_slot *slot = &heap->slots[i];

        if (slot->node->index != i || slot->node->deadline != slot->deadline)
            return -EUCLEAN;
        if (i > 0 && heap->slots[(i - 1) / 2].deadline > slot->deadline)
            return -EUCLEAN;
    }
    return 0;
}
