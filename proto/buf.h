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
/* Makes room for `extra` more bytes. 0, or -ENOMEM (buffer unchanged). */
int proto_buf_reserve(struct proto_buf *b, size_t extra);
int proto_buf_append(struct proto_buf *b, const void *data, size_t n);
int proto_buf_append_byte(struct proto_buf *b, uint8_t byte);
/* Forgets the content, keeps the memory. */
void proto_buf_reset(struct proto_buf *b);
/* Drops the first n bytes (n <= len), e.g. after a partial write. */
void proto_buf_consume(struct proto_buf *b, size_t n);

#endif
