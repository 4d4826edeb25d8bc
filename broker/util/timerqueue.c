#include "timerqueue.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

/* A node collected for firing has IN_BATCH | its batch position as index:
 * still armed (timer_node_is_armed() is true), but in no heap. */
#define IN_BATCH      UINT32_C(0x80000000)
#define BATCH_MAX     (UINT32_C(1) << 30)
#define BATCH_INITIAL 64u
/* A batch array bigger than this is freed after its dispatch. */
#define BATCH_KEEP_MAX 4096u

struct timer_queue {
    uv_timer_t timer;
    struct minheap heap;
    timer_queue_expire_fn on_expire;
    void *userdata;
    /* When the uv timer is active: at or before every deadline in the heap. */
    uint64_t armed_deadline;
    struct timer_node **batch;
    uint32_t batch_len; /* collected this dispatch, fired or not */
    uint32_t batch_cap;
    uint32_t batch_live; /* collected and neither fired nor disarmed */
    bool dispatching;
    bool closing;
};

static void on_timer(uv_timer_t *timer);

int timer_queue_new(struct timer_queue **out, uv_loop_t *loop, timer_queue_expire_fn on_expire,
                    void *userdata)
{
    struct timer_queue *queue = calloc(1, sizeof(*queue));

    if (!queue)
        return -ENOMEM;
    minheap_init(&queue->heap);
    uv_timer_init(loop, &queue->timer); /* cannot fail: only fills the struct */
    queue->on_expire = on_expire;
    queue->userdata = userdata;
    *out = queue;
    return 0;
}

static void on_closed(uv_handle_t *handle)
{
    struct timer_queue *queue = container_of(handle, struct timer_queue, timer);

    free(queue->batch);
    free(queue);
}

void timer_queue_close(struct timer_queue *queue)
{
    if (!queue || queue->closing)
        return;
    queue->closing = true;
    for (uint32_t i = 0; i < queue->batch_len; i++) {
        if (queue->batch[i]) {
            queue->batch[i]->heap.index = MINHEAP_DETACHED;
            queue->batch[i] = NULL;
        }
    }
    queue->batch_live = 0;
    minheap_destroy(&queue->heap); /* detaches the rest */
    uv_close((uv_handle_t *)&queue->timer, on_closed);
}

int timer_queue_reserve(struct timer_queue *queue, size_t n)
{
    return minheap_reserve(&queue->heap, n);
}

static bool in_batch(const struct timer_node *node)
{
    return node->heap.index != MINHEAP_DETACHED && (node->heap.index & IN_BATCH);
}

static void take_from_batch(struct timer_queue *queue, struct timer_node *node)
{
    uint32_t i = node->heap.index & ~IN_BATCH;

    assert(i < queue->batch_len && queue->batch[i] == node);
    queue->batch[i] = NULL;
    queue->batch_live--;
    node->heap.index = MINHEAP_DETACHED;
}

static void start_for(struct timer_queue *queue, uint64_t deadline)
{
    uint64_t now = uv_now(queue->timer.loop);

    uv_timer_start(&queue->timer, on_timer, deadline > now ? deadline - now : 0, 0);
    queue->armed_deadline = deadline;
}

/* Keeps the invariant: an active uv timer fires at or before the earliest
 * deadline. Only an earlier deadline needs a restart. */
static void after_arm(struct timer_queue *queue, const struct timer_node *node)
{
    if (queue->dispatching)
        return; /* the dispatch re-arms once at its end */
    if (!uv_is_active((uv_handle_t *)&queue->timer) || node->deadline < queue->armed_deadline)
        start_for(queue, node->deadline);
}

int timer_queue_add(struct timer_queue *queue, struct timer_node *node, uint64_t deadline)
{
    int r = minheap_add(&queue->heap, &node->heap, deadline);

    if (r < 0)
        return r;
    node->deadline = deadline;
    after_arm(queue, node);
    return 0;
}

int timer_queue_update(struct timer_queue *queue, struct timer_node *node, uint64_t deadline)
{
    int r;

    if (in_batch(node)) {
        /* Room first, so that a failure leaves the node armed as it was. */
        r = minheap_reserve(&queue->heap, minheap_count(&queue->heap) + 1);
        if (r < 0)
            return r;
        take_from_batch(queue, node);
    }
    r = minheap_update(&queue->heap, &node->heap, deadline);
    if (r < 0)
        return r;
    node->deadline = deadline;
    after_arm(queue, node);
    return 0;
}

void timer_queue_remove(struct timer_queue *queue, struct timer_node *node)
{
    if (!timer_node_is_armed(node))
        return;
    if (in_batch(node))
        take_from_batch(queue, node);
    else
        minheap_remove(&queue->heap, &node->heap);
    if (!queue->dispatching && timer_queue_count(queue) == 0)
        uv_timer_stop(&queue->timer);
}

/* The node with the earliest deadline, or NULL. */
static struct timer_node *first_node(const struct timer_queue *queue)
{
    struct minheap_node *top = minheap_peek(&queue->heap);

    return top ? container_of(top, struct timer_node, heap) : NULL;
}

static bool batch_push(struct timer_queue *queue, struct timer_node *node)
{
    if (queue->batch_len == queue->batch_cap) {
        uint32_t cap = queue->batch_cap ? queue->batch_cap * 2 : BATCH_INITIAL;
        struct timer_node **batch;

        if (cap > BATCH_MAX)
            return false;
        batch = realloc(queue->batch, (size_t)cap * sizeof(*batch));
        if (!batch)
            return false;
        queue->batch = batch;
        queue->batch_cap = cap;
    }
    minheap_remove(&queue->heap, &node->heap);
    queue->batch[queue->batch_len] = node;
    node->heap.index = IN_BATCH | queue->batch_len;
    queue->batch_len++;
    queue->batch_live++;
    return true;
}

/* Collects what is due now, then fires it. Collecting first is what keeps
 * a node re-armed by a callback from firing again in the same dispatch. If
 * the batch cannot grow, the rest stays in the heap for the next round. */
static void dispatch(struct timer_queue *queue)
{
    uint64_t now = uv_now(queue->timer.loop);
    struct timer_node *node;

    queue->dispatching = true;
    while ((node = first_node(queue)) && node->deadline <= now) {
        if (!batch_push(queue, node))
            break;
    }
    for (uint32_t i = 0; i < queue->batch_len; i++) {
        node = queue->batch[i];
        if (!node)
            continue;
        take_from_batch(queue, node);
        queue->on_expire(node, queue->userdata);
        if (queue->closing)
            return; /* close cleaned up; the memory goes in on_closed */
    }
    queue->batch_len = 0;
    queue->dispatching = false;
    if (queue->batch_cap > BATCH_KEEP_MAX) {
        free(queue->batch);
        queue->batch = NULL;
        queue->batch_cap = 0;
    }
}

static void on_timer(uv_timer_t *timer)
{
    struct timer_queue *queue = container_of(timer, struct timer_queue, timer);
    struct timer_node *first;

    dispatch(queue);
    if (queue->closing)
        return;
    first = first_node(queue);
    if (!first) {
        uv_timer_stop(&queue->timer);
        return;
    }
    /* Due already (armed by a callback, or left over by a failed batch
     * grow): wait 1 ms, not 0. libuv runs a timer restarted with 0 from
     * its own callback again within the same timer phase (1.44 does), so
     * a callback that keeps re-arming itself would starve all I/O. */
    if (first->deadline <= uv_now(queue->timer.loop)) {
        uv_timer_start(&queue->timer, on_timer, 1, 0);
        queue->armed_deadline = first->deadline;
        return;
    }
    start_for(queue, first->deadline);
}

uint64_t timer_queue_now(const struct timer_queue *queue)
{
    return uv_now(queue->timer.loop);
}

uint64_t timer_queue_deadline_in(const struct timer_queue *queue, uint64_t timeout_ms)
{
    uint64_t now = timer_queue_now(queue);

    return timeout_ms > UINT64_MAX - now ? UINT64_MAX : now + timeout_ms;
}

size_t timer_queue_count(const struct timer_queue *queue)
{
    return minheap_count(&queue->heap) + queue->batch_live;
}

size_t timer_queue_memory(const struct timer_queue *queue)
{
    return sizeof(*queue) + minheap_memory(&queue->heap) +
           (size_t)queue->batch_cap * sizeof(*queue->batch);
}
