/* Growable byte buffer. Doubling growth, never shrinks on its own: a
 * connection's buffer settles at its working size and stays there. */
#include "buf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void proto_buf_init(struct proto_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void proto_buf_free(struct proto_buf *b)
{
    free(b->data);
    proto_buf_init(b);
}

int proto_buf_grow(struct proto_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > (size_t)PTRDIFF_MAX - b->len) /* no object can be larger */
        return PROTO_E_NOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return PROTO_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

void proto_buf_reset(struct proto_buf *b)
{
    b->len = 0;
}

void proto_buf_consume(struct proto_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
