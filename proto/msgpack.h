/* Zero-copy msgpack reading and writing.
 *
 * Reading: `proto_mp_validate` walks one value and checks it against the
 * limits (depth, element counts, truncation, reserved bytes) without
 * allocating; afterwards a `proto_mp_cursor` can pull values out of the
 * same bytes with no further bounds surprises. Strings and binaries are
 * returned as spans into the input, never copied.
 *
 * Writing: `proto_mp_put_*` append one msgpack item to a proto_buf
 * (the encoding is done by msgpack-c's packer).
 */
#ifndef PROTO_MSGPACK_H
#define PROTO_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "limits.h"

enum proto_mp_type {
    PROTO_MP_NIL,
    PROTO_MP_BOOL,
    PROTO_MP_INT,  /* signed families (and negative fixint): value in .i */
    PROTO_MP_UINT, /* unsigned families (and positive fixint): value in .u */
    PROTO_MP_FLOAT32,
    PROTO_MP_FLOAT64, /* both float kinds: value in .f */
    PROTO_MP_STR,     /* .str, not NUL-terminated, UTF-8 not checked here */
    PROTO_MP_BIN,     /* .str holds the bytes */
    PROTO_MP_ARRAY,   /* .count elements follow */
    PROTO_MP_MAP,     /* .count key/value pairs follow */
    PROTO_MP_EXT,     /* .ext_type, .str holds the data */
};

struct proto_span {
    const uint8_t *ptr;
    uint32_t len;
};

struct proto_mp_value {
    enum proto_mp_type type;
    int8_t ext_type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        uint32_t count;
        struct proto_span str;
    } v;
};

struct proto_mp_cursor {
    const uint8_t *pos;
    const uint8_t *end;
};

/* Checks that data[0..len) starts with one complete, well-formed msgpack
 * value within the limits (max_depth, max_elements; max_frame is not used).
 * Stores its encoded size in *used. Returns 0, or PROTO_E_BAD_FRAME with a
 * static reason in *why (may be NULL). limits may be NULL for the defaults;
 * max_depth is capped at PROTO_HARD_MAX_DEPTH. */
int proto_mp_validate(const void *data, size_t len, const struct proto_limits *limits, size_t *used,
                      const char **why);

/* The frame check of proto_reader, for bytes that did not come through one:
 * data[0..len) must be exactly one map (nothing trailing) whose keys are
 * strings, within the limits. 0, or PROTO_E_BAD_FRAME with a static reason
 * in *why and the offending byte offset in *err_off (both may be NULL). */
int proto_mp_validate_frame(const void *data, size_t len, const struct proto_limits *limits,
                            const char **why, size_t *err_off);

void proto_mp_cursor_init(struct proto_mp_cursor *c, const void *data, size_t len);
/* Reads the next item's header (for containers: just the count; the
 * elements follow). Returns 0, or PROTO_E_BAD_FRAME on truncation. */
int proto_mp_next(struct proto_mp_cursor *c, struct proto_mp_value *out);
/* Skips one whole value (containers included); its bytes in *raw if not NULL. */
int proto_mp_skip(struct proto_mp_cursor *c, struct proto_span *raw);
static inline bool proto_mp_at_end(const struct proto_mp_cursor *c)
{
    return c->pos >= c->end;
}

/* Helpers for integer fields: accept INT >= 0 and UINT. 0 or PROTO_E_BAD_REQUEST. */
int proto_mp_value_u64(const struct proto_mp_value *v, uint64_t *out);

/* Writers: 0 or PROTO_E_NOMEM. */
int proto_mp_put_nil(struct proto_buf *b);
int proto_mp_put_bool(struct proto_buf *b, bool v);
int proto_mp_put_int(struct proto_buf *b, int64_t v);
int proto_mp_put_uint(struct proto_buf *b, uint64_t v);
int proto_mp_put_double(struct proto_buf *b, double v);
int proto_mp_put_str(struct proto_buf *b, const char *s, size_t len);
int proto_mp_put_cstr(struct proto_buf *b, const char *s);
int proto_mp_put_bin(struct proto_buf *b, const void *data, size_t len);
int proto_mp_put_array(struct proto_buf *b, uint32_t count);
int proto_mp_put_map(struct proto_buf *b, uint32_t count);
/* Headers only: the caller appends exactly len bytes of body next (for
 * bodies produced piecewise, e.g. decoded from JSON escapes or base64). */
int proto_mp_put_str_header(struct proto_buf *b, uint32_t len);
int proto_mp_put_bin_header(struct proto_buf *b, uint32_t len);
/* Appends already-encoded msgpack verbatim (the caller vouches for it). */
int proto_mp_put_raw(struct proto_buf *b, const void *data, size_t len);

#endif
