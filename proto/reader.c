/* Incremental frame reader.
 *
 * One growable buffer holds [start, end) unread bytes. A frame is returned
 * as a span into it once the whole frame is there, so bytes are copied
 * exactly once (by feed, or not at all with space/commit). Consumed bytes
 * are reclaimed lazily: when the buffer empties both indices go back to 0
 * (free), and when room is needed at the tail the unread rest is moved to
 * the front before growing. Once the buffer has reached the working size of
 * a connection the reader does not allocate again.
 *
 * Frames are cut only on the length prefix, so where the caller's reads
 * split the stream makes no difference to what comes out.
 */
#include "reader.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* A buffer left this large after a big frame is released once empty, so a
 * single burst does not pin megabytes for the life of an idle connection. */
#define READER_IDLE_MAX  (1u << 20)
#define READER_MIN_SPACE 4096u

struct proto_reader {
    uint8_t *buf; /* the reader's own buffer, or while lent the caller's */
    size_t start, end, cap;
    uint8_t *own; /* while lent: the own buffer and its capacity */
    size_t own_cap;
    bool lent;
    struct proto_limits limits;
    int fatal; /* 0, or the error every call now returns */
    char err[160];
};

struct proto_reader *proto_reader_new(const struct proto_limits *limits)
{
    struct proto_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    proto_limits_default(&r->limits);
    if (limits) {
        if (limits->max_frame)
            r->limits.max_frame = limits->max_frame;
        if (limits->max_depth)
            r->limits.max_depth = limits->max_depth;
        if (limits->max_elements)
            r->limits.max_elements = limits->max_elements;
    }
    if (r->limits.max_frame > PROTO_HARD_MAX_FRAME)
        r->limits.max_frame = PROTO_HARD_MAX_FRAME;
    return r;
}

void proto_reader_free(struct proto_reader *r)
{
    if (!r)
        return;
    free(r->lent ? r->own : r->buf);
    free(r);
}

static int set_fatal(struct proto_reader *r, int code)
{
    r->fatal = code;
    return code;
}

/* Makes cap - end >= need, moving unread bytes to the front first. */
static int make_room(struct proto_reader *r, size_t need)
{
    if (r->cap - r->end >= need)
        return 0;
    if (r->start > 0) {
        size_t n = r->end - r->start;
        memmove(r->buf, r->buf + r->start, n);
        r->start = 0;
        r->end = n;
        if (r->cap - r->end >= need)
            return 0;
    }
    if (need > SIZE_MAX / 2 - r->end) {
        snprintf(r->err, sizeof r->err, "out of memory growing the read buffer");
        return set_fatal(r, PROTO_E_NOMEM);
    }
    /* Double while small; past READER_IDLE_MAX take exactly what is
     * asked: a big frame (see proto_reader_space) gets a buffer of its
     * own size plus one read, not the next power of two (a 16 MiB frame
     * would otherwise hold 32, and that is what its client is charged). */
    size_t cap = r->cap ? r->cap * 2 : READER_MIN_SPACE;
    if (r->cap >= READER_IDLE_MAX || cap - r->end < need || cap < r->end)
        cap = r->end + need;
    uint8_t *p = realloc(r->buf, cap);
    if (!p) {
        snprintf(r->err, sizeof r->err, "out of memory growing the read buffer to %zu bytes", cap);
        return set_fatal(r, PROTO_E_NOMEM);
    }
    r->buf = p;
    r->cap = cap;
    return 0;
}

int proto_reader_feed(struct proto_reader *r, const void *data, size_t len)
{
    if (r->fatal)
        return r->fatal;
    if (r->lent)
        return PROTO_E_INTERNAL;
    if (len == 0)
        return 0;
    int rc = make_room(r, len);
    if (rc < 0)
        return rc;
    memcpy(r->buf + r->end, data, len);
    r->end += len;
    return 0;
}

int proto_reader_space(struct proto_reader *r, size_t hint, void **ptr, size_t *len)
{
    if (r->fatal)
        return r->fatal;
    if (r->lent)
        return PROTO_E_INTERNAL;
    if (hint == 0)
        hint = READER_MIN_SPACE;
    /* Inside a frame whose length is known: room for all of its rest at
     * once (one allocation, and nothing beyond the frame). */
    size_t avail = r->end - r->start;
    if (avail >= PROTO_LENGTH_PREFIX) {
        const uint8_t *p = r->buf + r->start;
        uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        size_t total = (size_t)PROTO_LENGTH_PREFIX + n;
        if (n <= r->limits.max_frame && avail < total && total - avail > hint)
            hint = total - avail;
    }
    int rc = make_room(r, hint);
    if (rc < 0)
        return rc;
    *ptr = r->buf + r->end;
    *len = r->cap - r->end;
    return 0;
}

void proto_reader_commit(struct proto_reader *r, size_t n)
{
    if (r->lent)
        return;              /* caller bug: space() refused while lent */
    if (n > r->cap - r->end) /* caller bug: never write past what space() gave */
        n = r->cap - r->end;
    r->end += n;
}

static void drop_consumed(struct proto_reader *r)
{
    if (r->start != r->end || r->lent)
        return;
    r->start = r->end = 0;
    if (r->cap > READER_IDLE_MAX) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
}

int proto_reader_next(struct proto_reader *r, struct proto_span *frame)
{
    if (r->fatal)
        return r->fatal;
    drop_consumed(r);
    size_t avail = r->end - r->start;
    if (avail < PROTO_LENGTH_PREFIX)
        return 0;
    const uint8_t *p = r->buf + r->start;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n > r->limits.max_frame) {
        snprintf(r->err, sizeof r->err, "frame of %u bytes exceeds max_frame %u", n,
                 r->limits.max_frame);
        return set_fatal(r, PROTO_E_FRAME_TOO_LARGE);
    }
    if (n == 0) {
        /* The stream is still in sync (the next prefix follows), so this
         * is the recoverable kind. */
        r->start += PROTO_LENGTH_PREFIX;
        snprintf(r->err, sizeof r->err, "empty frame (length 0)");
        return PROTO_E_BAD_FRAME;
    }
    if (avail - PROTO_LENGTH_PREFIX < n)
        return 0;
    const uint8_t *body = p + PROTO_LENGTH_PREFIX;
    r->start += PROTO_LENGTH_PREFIX + (size_t)n;
    const char *why = NULL;
    size_t off = 0;
    if (proto_mp_validate_frame(body, n, &r->limits, &why, &off) < 0) {
        const char *limit = "";
        uint32_t value = 0;
        if (strstr(why, "max_depth")) {
            limit = " ";
            value = r->limits.max_depth;
        } else if (strstr(why, "max_elements")) {
            limit = " ";
            value = r->limits.max_elements;
        }
        if (*limit)
            snprintf(r->err, sizeof r->err, "bad frame of %u bytes: %s %u at offset %zu", n, why,
                     value, off);
        else
            snprintf(r->err, sizeof r->err, "bad frame of %u bytes: %s at offset %zu", n, why, off);
        return PROTO_E_BAD_FRAME;
    }
    frame->ptr = body;
    frame->len = n;
    return 1;
}

int proto_reader_lend(struct proto_reader *r, const void *data, size_t len)
{
    if (r->fatal)
        return r->fatal;
    if (r->lent || r->start != r->end)
        return PROTO_E_INTERNAL;
    r->own = r->buf;
    r->own_cap = r->cap;
    r->buf = (uint8_t *)(uintptr_t)data; /* read only while lent: nothing writes to it */
    r->start = 0;
    r->end = r->cap = len;
    r->lent = true;
    return 0;
}

int proto_reader_unlend(struct proto_reader *r, size_t room)
{
    const uint8_t *rest;
    size_t n;

    if (!r->lent)
        return 0;
    rest = r->buf + r->start;
    n = r->end - r->start;
    r->buf = r->own;
    r->cap = r->own_cap;
    r->own = NULL;
    r->own_cap = 0;
    r->start = r->end = 0;
    r->lent = false;
    if (n == 0 || r->fatal)
        return 0; /* nothing left, or nothing more will be read */
    int rc = make_room(r, n + (room < SIZE_MAX / 2 ? room : 0));
    if (rc < 0)
        return rc;
    memcpy(r->buf, rest, n);
    r->end = n;
    return 0;
}

void proto_reader_trim(struct proto_reader *r)
{
    if (r->lent || r->start != r->end)
        return;
    free(r->buf);
    r->buf = NULL;
    r->cap = r->start = r->end = 0;
}

bool proto_reader_fatal(const struct proto_reader *r)
{
    return r->fatal != 0;
}

const char *proto_reader_error(const struct proto_reader *r)
{
    return r->err;
}

size_t proto_reader_pending(const struct proto_reader *r)
{
    return r->end - r->start;
}

size_t proto_reader_capacity(const struct proto_reader *r)
{
    return r->lent ? r->own_cap : r->cap;
}
