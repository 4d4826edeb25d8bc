#include "outq.h"

#include <assert.h>

void volt__outq_init(struct volt__outq *q)
{
    proto_buf_init(&q->head);
    proto_buf_init(&q->tail);
    q->pos = 0;
}

void volt__outq_free(struct volt__outq *q)
{
    proto_buf_free(&q->head);
    proto_buf_free(&q->tail);
    q->pos = 0;
}

void volt__outq_reset(struct volt__outq *q)
{
    proto_buf_reset(&q->head);
    proto_buf_reset(&q->tail);
    q->pos = 0;
}

struct proto_buf *volt__outq_tail(struct volt__outq *q)
{
    /* Nothing in the socket's way: append where the next write starts. */
    if (q->pos == q->head.len && q->tail.len == 0) {
        proto_buf_reset(&q->head);
        q->pos = 0;
        return &q->head;
    }
    return &q->tail;
}

size_t volt__outq_pending(const struct volt__outq *q)
{
    return q->head.len - q->pos + q->tail.len;
}

int volt__outq_peek(const struct volt__outq *q, struct iovec iov[2])
{
    int n = 0;

    if (q->pos < q->head.len) {
        iov[n].iov_base = q->head.data + q->pos;
        iov[n++].iov_len = q->head.len - q->pos;
    }
    if (q->tail.len) {
        iov[n].iov_base = q->tail.data;
        iov[n++].iov_len = q->tail.len;
    }
    return n;
}

void volt__outq_consume(struct volt__outq *q, size_t n)
{
    size_t in_head = q->head.len - q->pos;

    assert(n <= volt__outq_pending(q));
    if (n < in_head) {
        q->pos += n;
        return;
    }
    /* The head is written out: the tail takes its place (buffers swap, so
     * both keep their capacity). */
    struct proto_buf done = q->head;

    q->head = q->tail;
    q->tail = done;
    proto_buf_reset(&q->tail);
    q->pos = n - in_head;
}
