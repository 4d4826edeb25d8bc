/* Growable byte buffer: the one output type of every encoder in proto/.
 *
 * Encoders append to a caller-owned buffer so a connection can keep one
 * buffer for its whole life and never allocate per message once it has
 * grown to its working size. The struct is public (like a libuv handle)
 * because callers hand `data`/`len` straight to write(2).
 */
#ifndef PROTO_BUF_H
#define PROTO_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct proto_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

#define PROTO_BUF_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void proto_buf_init(struct proto_buf *b);
/* Releases the memory; the buffer is empty and reusable afterwards. */
void proto_buf_free(struct proto_buf *b);
/* Grows the buffer to hold `extra` more bytes: the slow path of the three
 * below. 0, or PROTO_E_NOMEM (buffer unchanged). */
int proto_buf_grow(struct proto_buf *b, size_t extra);

/* The fast paths are inline: every encoder appends a few bytes at a time,
 * dozens of times per message, and once a buffer has its working size the
 * call was most of the cost (about a tenth of the broker's instructions
 * per request). */

/* Makes room for `extra` more bytes. 0, or PROTO_E_NOMEM (buffer unchanged). */
static inline int proto_buf_reserve(struct proto_buf *b, size_t extra)
{
    return extra <= b->cap - b->len ? 0 : proto_buf_grow(b, extra);
}

static inline int proto_buf_append(struct proto_buf *b, const void *data, size_t n)
{
    if (n == 0)
        return 0; /* data may be NULL then, which memcpy must not see */
    if (n > b->cap - b->len) {
        int rc = proto_buf_grow(b, n);
        if (rc < 0)
            return rc;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static inline int proto_buf_append_byte(struct proto_buf *b, uint8_t byte)
{
    if (b->len == b->cap) {
        int rc = proto_buf_grow(b, 1);
        if (rc < 0)
            return rc;
    }
    b->data[b->len++] = byte;
    return 0;
}

/* Forgets the content, keeps the memory. */
void proto_buf_reset(struct proto_buf *b);
/* Drops the first n bytes (n <= len), e.g. after a partial write. */
void proto_buf_consume(struct proto_buf *b, size_t n);

#endif
