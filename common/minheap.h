/* One binary min-heap for the broker and the client library: deadlines of
 * pending requests, call timeouts, peer timers, a client's request
 * timeouts.
 *
 * Intrusive and index-tracking: the owner of an entry embeds a
 * `struct minheap_node` in its own struct and gets back to it with
 * container_of() when the node comes out of the heap. Each node remembers
 * its position, so removing or re-keying any node (a cancelled or moved
 * timer) is O(log n) instead of a search. The heap's array holds a pointer
 * to each node and a copy of its key, so sifting compares neighbours in
 * the array instead of chasing every node in memory (one cache miss per
 * level, not two or three). Arming and disarming never allocate once the
 * array has grown to the high-water mark: it doubles, and halves only when
 * three quarters empty (and over 1024 slots), so one burst does not pin
 * its peak forever.
 *
 * Equal keys come out in no particular order.
 *
 * The struct is the caller's (embed it): init cannot fail and allocates
 * nothing. Its fields are private. Single-threaded: no locking.
 */
#ifndef COMMON_MINHEAP_H
#define COMMON_MINHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/* `index` of a node that is in no heap. */
#define MINHEAP_DETACHED UINT32_MAX
/* Most nodes one heap holds. The heap never sets the top bit of a node's
 * index, so the owner of a node that is in no heap may use it as a mark
 * (timerqueue.c does, for nodes taken out to fire). */
#define MINHEAP_MAX_NODES (UINT32_C(1) << 31)

struct minheap_node {
    uint32_t index; /* position in the heap, or MINHEAP_DETACHED; the heap's */
};

struct minheap_slot_;

struct minheap {
    struct minheap_slot_ *slots_;
    uint32_t count_;
    uint32_t capacity_;
};

/* Marks a node as in no heap. Call once before its first use. */
static inline void minheap_node_init(struct minheap_node *node)
{
    node->index = MINHEAP_DETACHED;
}

/* True while the node is in a heap. */
static inline bool minheap_node_in_heap(const struct minheap_node *node)
{
    return node->index != MINHEAP_DETACHED;
}

/* An empty heap. Allocates nothing. */
void minheap_init(struct minheap *heap);
/* Frees the array and leaves the heap empty. Nodes still in it are
 * detached, not freed: they belong to their owners. */
void minheap_destroy(struct minheap *heap);

/* Grows the array so that n nodes fit without allocating. 0, -ENOMEM, or
 * -E2BIG when n > MINHEAP_MAX_NODES. */
int minheap_reserve(struct minheap *heap, size_t n);

/* Adds a detached node with `key`. 0; -EEXIST when the node is in a heap
 * (this one or another); -ENOMEM; -E2BIG when full. */
int minheap_add(struct minheap *heap, struct minheap_node *node, uint64_t key);
/* Sets the node's key, adding it when detached. 0, -ENOMEM, -E2BIG (only
 * when it had to add). */
int minheap_update(struct minheap *heap, struct minheap_node *node, uint64_t key);
/* Takes the node out. A detached node is left alone. The node must not be
 * in a different heap. */
void minheap_remove(struct minheap *heap, struct minheap_node *node);

/* The node with the smallest key, or NULL when empty. O(1). */
struct minheap_node *minheap_peek(const struct minheap *heap);
/* Takes out and returns the node with the smallest key, or NULL. */
struct minheap_node *minheap_pop(struct minheap *heap);
/* The key of a node in this heap. */
uint64_t minheap_key(const struct minheap *heap, const struct minheap_node *node);

/* True when the node is in this heap. */
bool minheap_contains(const struct minheap *heap, const struct minheap_node *node);
static inline size_t minheap_count(const struct minheap *heap)
{
    return heap->count_;
}
/* Bytes of the heap's array, for statistics. */
size_t minheap_memory(const struct minheap *heap);
/* Walks the whole heap: 0 when every parent's key is no larger than its
 * children's and every node's index is its position, else -EUCLEAN. O(n),
 * for tests. */
int minheap_check(const struct minheap *heap);

#endif
