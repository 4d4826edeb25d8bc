#include "minheap.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#define INITIAL_CAPACITY 16u
/* Below this the array is never shrunk: not worth a realloc. */
#define SHRINK_FLOOR 1024u

/* The key beside the pointer: see the header. */
struct minheap_slot_ {
    uint64_t key;
    struct minheap_node *node;
};

void minheap_init(struct minheap *heap)
{
    heap->slots_ = NULL;
    heap->count_ = 0;
    heap->capacity_ = 0;
}

void minheap_destroy(struct minheap *heap)
{
    for (uint32_t i = 0; i < heap->count_; i++)
        heap->slots_[i].node->index = MINHEAP_DETACHED;
    free(heap->slots_);
    minheap_init(heap);
}

static int resize(struct minheap *heap, uint32_t capacity)
{
    struct minheap_slot_ *slots = realloc(heap->slots_, (size_t)capacity * sizeof(*slots));

    if (!slots)
        return -ENOMEM;
    heap->slots_ = slots;
    heap->capacity_ = capacity;
    return 0;
}

int minheap_reserve(struct minheap *heap, size_t n)
{
    uint64_t capacity = heap->capacity_ ? heap->capacity_ : INITIAL_CAPACITY;

    if (n > MINHEAP_MAX_NODES)
        return -E2BIG;
    if (n <= heap->capacity_)
        return 0;
    while (capacity < n)
        capacity *= 2;
    return resize(heap, (uint32_t)capacity);
}

static void place(struct minheap *heap, uint32_t i, struct minheap_slot_ slot)
{
    heap->slots_[i] = slot;
    slot.node->index = i;
}

static void sift_up(struct minheap *heap, uint32_t i)
{
    struct minheap_slot_ cur = heap->slots_[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;

        if (heap->slots_[parent].key <= cur.key)
            break;
        place(heap, i, heap->slots_[parent]);
        i = parent;
    }
    place(heap, i, cur);
}

static void sift_down(struct minheap *heap, uint32_t i)
{
    struct minheap_slot_ cur = heap->slots_[i];

    for (;;) {
        uint32_t child = 2 * i + 1;

        if (child >= heap->count_)
            break;
        if (child + 1 < heap->count_ && heap->slots_[child + 1].key < heap->slots_[child].key)
            child++;
        if (cur.key <= heap->slots_[child].key)
            break;
        place(heap, i, heap->slots_[child]);
        i = child;
    }
    place(heap, i, cur);
}

/* Restores the heap around position i after its key changed. */
static void fix(struct minheap *heap, uint32_t i)
{
    if (i > 0 && heap->slots_[i].key < heap->slots_[(i - 1) / 2].key)
        sift_up(heap, i);
    else
        sift_down(heap, i);
}

int minheap_add(struct minheap *heap, struct minheap_node *node, uint64_t key)
{
    int r;

    if (minheap_node_in_heap(node))
        return -EEXIST;
    if (heap->count_ == heap->capacity_) {
        r = minheap_reserve(heap, (size_t)heap->count_ + 1);
        if (r < 0)
            return r;
    }
    place(heap, heap->count_++, (struct minheap_slot_){.key = key, .node = node});
    sift_up(heap, node->index);
    return 0;
}

int minheap_update(struct minheap *heap, struct minheap_node *node, uint64_t key)
{
    if (!minheap_node_in_heap(node))
        return minheap_add(heap, node, key);
    assert(minheap_contains(heap, node));
    heap->slots_[node->index].key = key;
    fix(heap, node->index);
    return 0;
}

/* Halves the array when it is three quarters empty; the hysteresis keeps
 * add/remove near a boundary from reallocating every time. A failed
 * shrink changes nothing. */
static void maybe_shrink(struct minheap *heap)
{
    if (heap->capacity_ > SHRINK_FLOOR && heap->count_ < heap->capacity_ / 4)
        (void)resize(heap, heap->capacity_ / 2);
}

void minheap_remove(struct minheap *heap, struct minheap_node *node)
{
    uint32_t i = node->index;
    struct minheap_slot_ last;

    if (!minheap_node_in_heap(node))
        return;
    assert(minheap_contains(heap, node));
    node->index = MINHEAP_DETACHED;
    last = heap->slots_[--heap->count_];
    if (last.node != node) {
        place(heap, i, last);
        fix(heap, i);
    }
    maybe_shrink(heap);
}

struct minheap_node *minheap_peek(const struct minheap *heap)
{
    return heap->count_ ? heap->slots_[0].node : NULL;
}

struct minheap_node *minheap_pop(struct minheap *heap)
{
    struct minheap_node *node = minheap_peek(heap);

    if (node)
        minheap_remove(heap, node);
    return node;
}

uint64_t minheap_key(const struct minheap *heap, const struct minheap_node *node)
{
    assert(minheap_contains(heap, node));
    return heap->slots_[node->index].key;
}

bool minheap_contains(const struct minheap *heap, const struct minheap_node *node)
{
    return node->index < heap->count_ && heap->slots_[node->index].node == node;
}

size_t minheap_memory(const struct minheap *heap)
{
    return (size_t)heap->capacity_ * sizeof(*heap->slots_);
}

int minheap_check(const struct minheap *heap)
{
    if (heap->count_ > heap->capacity_)
        return -EUCLEAN;
    for (uint32_t i = 0; i < heap->count_; i++) {
        const struct minheap_slot_ *slot = &heap->slots_[i];

        if (slot->node->index != i)
            return -EUCLEAN;
        if (i > 0 && heap->slots_[(i - 1) / 2].key > slot->key)
            return -EUCLEAN;
    }
    return 0;
}
