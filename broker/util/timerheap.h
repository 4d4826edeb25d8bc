/* An intrusive binary min-heap of deadlines.
 *
 * The owner of a deadline embeds a `struct timer_node` in its own struct
 * and gets back to it with container_of() when the node comes out of the
 * heap. The heap's array holds a pointer to each node and a copy of its
 * deadline (so sifting stays inside the array), so arming and disarming a
 * deadline never allocates once the array has grown to the high-water
 * mark (it doubles, and halves only when three quarters empty).
 * Each node remembers its own position (`index`), which is what makes
 * removing or moving an arbitrary node O(log n) instead of a search.
 *
 * Equal deadlines come out in no particular order.
 *
 * This file knows nothing of libuv; timerqueue.h puts a heap behind one
 * uv_timer_t. Single-threaded: no locking.
 */
#ifndef UTIL_TIMERHEAP_H
#define UTIL_TIMERHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/* `index` of a node that is in no heap. */
#define TIMER_NODE_DETACHED UINT32_MAX
/* Most nodes one heap holds. The top bit of `index` stays free for
 * timerqueue.c, which marks nodes it has taken out to fire with it. */
#define TIMER_HEAP_MAX_NODES (UINT32_C(1) << 31)

struct timer_node {
    uint64_t deadline; /* ms on the caller's monotonic clock (uv_now); change it only
                          through timer_heap_update() while armed */
    uint32_t index;    /* private: position in the heap, or TIMER_NODE_DETACHED */
};

struct timer_heap;

/* Marks a node as in no heap. Call once before its first use. */
static inline void timer_node_init(struct timer_node *node)
{
    node->deadline = 0;
    node->index = TIMER_NODE_DETACHED;
}

/* True while the node is in a heap (or, for a timer_queue, waiting to fire). */
static inline bool timer_node_is_armed(const struct timer_node *node)
{
    return node->index != TIMER_NODE_DETACHED;
}

/* A new empty heap in *out. 0 or -ENOMEM. Free with timer_heap_free(). */
int timer_heap_new(struct timer_heap **out);
/* Frees the heap (NULL is fine). Nodes still in it are detached, not freed:
 * they belong to their owners. */
void timer_heap_free(struct timer_heap *heap);

/* Grows the array so that `n` nodes fit without allocating. 0, -ENOMEM, or
 * -E2BIG when n > TIMER_HEAP_MAX_NODES. */
int timer_heap_reserve(struct timer_heap *heap, size_t n);

/* Adds a detached node with `deadline`. 0; -EEXIST when the node is
 * already armed (in this heap or another); -ENOMEM; -E2BIG when full. */
int timer_heap_add(struct timer_heap *heap, struct timer_node *node, uint64_t deadline);
/* Sets the node's deadline, adding it when detached. 0, -ENOMEM, -E2BIG
 * (only when it had to add). */
int timer_heap_update(struct timer_heap *heap, struct timer_node *node, uint64_t deadline);
/* Takes the node out. A detached node is left alone. The node must not be
 * in a different heap. */
void timer_heap_remove(struct timer_heap *heap, struct timer_node *node);

/* The node with the earliest deadline, or NULL when empty. O(1). */
struct timer_node *timer_heap_peek(const struct timer_heap *heap);
/* Takes out and returns the earliest node, or NULL when empty. */
struct timer_node *timer_heap_pop(struct timer_heap *heap);
/* Takes out and returns the earliest node if its deadline is <= now. */
struct timer_node *timer_heap_pop_expired(struct timer_heap *heap, uint64_t now);

/* True when the node is in this heap. */
bool timer_heap_contains(const struct timer_heap *heap, const struct timer_node *node);
size_t timer_heap_count(const struct timer_heap *heap);
/* Bytes the heap holds (struct and array), for statistics. */
size_t timer_heap_memory(const struct timer_heap *heap);
/* Walks the whole heap: 0 when every parent is due no later than its
 * children and every node's index is its position, else -EUCLEAN. O(n),
 * for tests. */
int timer_heap_check(const struct timer_heap *heap);

#endif
