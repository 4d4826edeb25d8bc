/* Many deadlines on one uv_timer_t.
 *
 * 100k requests in flight each have a deadline; 100k uv timers would put
 * 100k entries in libuv's own heap and cost a uv_timer_start per request.
 * A timer_queue keeps the deadlines in a binary min-heap (common/minheap.h)
 * and arms its single uv timer for the earliest one. When it fires, every node whose deadline has
 * passed is handed to the queue's callback, once, already disarmed.
 *
 * Arming is lazy in one direction: disarming the earliest node leaves the
 * uv timer where it is (it fires early, finds nothing due and re-arms),
 * which saves a uv_timer_start per answered request. When the queue empties
 * the uv timer is stopped, so an idle queue does not keep the loop alive.
 *
 * Re-entrancy. Expired nodes are first collected, then fired one by one.
 * The callback may arm or disarm any node (also one collected but not yet
 * fired: disarming it means it does not fire; re-arming it moves it back
 * to the heap with its new deadline) and may arm its own node again. A node
 * armed during a dispatch never fires in that same dispatch, even with a
 * deadline already passed: it fires on a later loop iteration, 1 ms on,
 * after the loop has polled for I/O, so a callback that keeps re-arming
 * itself cannot starve the loop. The callback may also call
 * timer_queue_close().
 *
 * Deadlines are absolute ms on the loop's clock (uv_now()); note that
 * uv_now() is cached per loop iteration. Single-threaded: loop thread only.
 */
#ifndef UTIL_TIMERQUEUE_H
#define UTIL_TIMERQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/minheap.h"

/* One deadline. The owner embeds it in its own struct and gets back to it
 * with container_of() in the expire callback. */
struct timer_node {
    uint64_t deadline;        /* ms on the loop's clock (uv_now); set by timer_queue_add()
                                 and timer_queue_update(), read-only otherwise */
    struct minheap_node heap; /* private to timerqueue.c */
};

struct timer_queue;

/* Marks a node as disarmed. Call once before its first use. */
static inline void timer_node_init(struct timer_node *node)
{
    node->deadline = 0;
    minheap_node_init(&node->heap);
}

/* True while the node is armed (in the heap, or expired and waiting to fire). */
static inline bool timer_node_is_armed(const struct timer_node *node)
{
    return node->heap.index != MINHEAP_DETACHED;
}

/* Called for each expired node, already disarmed (the owner may free it). */
typedef void (*timer_queue_expire_fn)(struct timer_node *node, void *userdata);

/* A new queue on `loop` in *out. 0 or -ENOMEM. Freed by timer_queue_close(). */
int timer_queue_new(struct timer_queue **out, uv_loop_t *loop, timer_queue_expire_fn on_expire,
                    void *userdata);
/* Disarms every node (without calling the callback) and closes the uv
 * timer; the queue's memory is freed in the close callback, so the loop
 * must run once more before uv_loop_close(). NULL is fine. No other
 * timer_queue_* call is allowed afterwards. */
void timer_queue_close(struct timer_queue *queue);

/* Makes room for `n` armed nodes without allocating. 0, -ENOMEM, -E2BIG. */
int timer_queue_reserve(struct timer_queue *queue, size_t n);

/* Arms a disarmed node for the absolute `deadline`. 0; -EEXIST when the
 * node is already armed; -ENOMEM; -E2BIG. */
int timer_queue_add(struct timer_queue *queue, struct timer_node *node, uint64_t deadline);
/* Arms the node for `deadline`, moving it when already armed. 0, -ENOMEM,
 * -E2BIG (only when it was disarmed). */
int timer_queue_update(struct timer_queue *queue, struct timer_node *node, uint64_t deadline);
/* Disarms the node; it will not fire. A disarmed node is left alone. */
void timer_queue_remove(struct timer_queue *queue, struct timer_node *node);

/* The loop's cached now (uv_now), the base for deadlines. */
uint64_t timer_queue_now(const struct timer_queue *queue);
/* now + timeout_ms, saturating at UINT64_MAX (which never fires in practice). */
uint64_t timer_queue_deadline_in(const struct timer_queue *queue, uint64_t timeout_ms);
/* Armed nodes, counting those expired and waiting to fire in this dispatch. */
size_t timer_queue_count(const struct timer_queue *queue);
/* Bytes the queue holds, for statistics. */
size_t timer_queue_memory(const struct timer_queue *queue);

#endif
