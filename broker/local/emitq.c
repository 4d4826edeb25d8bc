#include "emitq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"

/* A record: header, then the type's bytes, then the data's. */
struct record {
    void *owner;
    uint32_t type_len;
    uint32_t data_len;
};

struct emitq {
    struct proto_buf buf; /* records from `head` to buf.len */
    size_t head;
    size_t max_bytes;
    size_t bytes; /* what the records are charged: emitq_record_size() each */
    size_t count;
};

int emitq_new(struct emitq **out, size_t max_bytes)
{
    struct emitq *q = calloc(1, sizeof(*q));

    if (!q)
        return -ENOMEM;
    proto_buf_init(&q->buf);
    q->max_bytes = max_bytes;
    *out = q;
    return 0;
}

void emitq_free(struct emitq *q)
{
    if (!q)
        return;
    proto_buf_free(&q->buf);
    free(q);
}

size_t emitq_record_size(const struct proto_span *type, const struct proto_span *data)
{
    return sizeof(struct record) + type->len + data->len;
}

int emitq_push(struct emitq *q, void *owner, const struct proto_span *type,
               const struct proto_span *data)
{
    size_t size = emitq_record_size(type, data);
    struct record r = {.owner = owner, .type_len = type->len, .data_len = data->len};

    if (size > q->max_bytes - q->bytes || q->bytes > q->max_bytes)
        return -ENOSPC;
    /* Reclaim the consumed front before growing. */
    if (q->head && q->head == q->buf.len) {
        proto_buf_reset(&q->buf);
        q->head = 0;
    } else if (q->head > q->buf.len / 2) {
        proto_buf_consume(&q->buf, q->head);
        q->head = 0;
    }
    if (proto_buf_reserve(&q->buf, size) < 0)
        return -ENOMEM;
    proto_buf_append(&q->buf, &r, sizeof(r));
    proto_buf_append(&q->buf, type->ptr, type->len);
    proto_buf_append(&q->buf, data->ptr, data->len);
    q->bytes += size;
    q->count++;
    return 0;
}

/* Records are packed: read their headers with memcpy (no alignment). */
static const uint8_t *front(const struct emitq *q)
{
    return q->head < q->buf.len ? q->buf.data + q->head : NULL;
}

bool emitq_peek(const struct emitq *q, void **owner, struct proto_span *type,
                struct proto_span *data)
{
    struct record r;
    const uint8_t *at = front(q);

    if (!at)
        return false;
    memcpy(&r, at, sizeof(r));
    const uint8_t *p = at + sizeof(r);
    *owner = r.owner;
    type->ptr = p;
    type->len = r.type_len;
    data->ptr = p + r.type_len;
    data->len = r.data_len;
    return true;
}

void emitq_pop(struct emitq *q)
{
    struct record r;
    const uint8_t *at = front(q);

    if (!at)
        return;
    memcpy(&r, at, sizeof(r));
    size_t size = sizeof(r) + r.type_len + r.data_len;
    q->head += size;
    q->bytes -= size;
    q->count--;
    if (q->head == q->buf.len) {
        proto_buf_reset(&q->buf);
        q->head = 0;
    }
}

void emitq_forget_owner(struct emitq *q, void *owner)
{
    for (size_t at = q->head; at < q->buf.len;) {
        struct record r;
        memcpy(&r, q->buf.data + at, sizeof(r));
        if (r.owner == owner) {
            r.owner = NULL;
            memcpy(q->buf.data + at, &r, sizeof(r));
        }
        at += sizeof(r) + r.type_len + r.data_len;
    }
}

size_t emitq_bytes(const struct emitq *q)
{
    return q->bytes;
}

size_t emitq_count(const struct emitq *q)
{
    return q->count;
}
