/* Limits of the local protocol, as plain fields (hiredis' reader model).
 * Every parser of untrusted bytes in proto/ takes one of these. */
#ifndef PROTO_LIMITS_H
#define PROTO_LIMITS_H

#include <stdint.h>

/* Frames are a 4-byte big-endian length followed by that many bytes of
 * msgpack (exactly one map). */
#define PROTO_LENGTH_PREFIX        4u
#define PROTO_DEFAULT_MAX_FRAME    (16u * 1024u * 1024u)
#define PROTO_HARD_MAX_FRAME       (256u * 1024u * 1024u)
#define PROTO_DEFAULT_MAX_DEPTH    64u
#define PROTO_DEFAULT_MAX_ELEMENTS (1u << 20)
/* Validators keep a fixed stack per nesting level (no allocation), so a
 * max_depth above this is treated as this. */
#define PROTO_HARD_MAX_DEPTH 1024u

/* Protocol versions this build speaks (negotiated in hello/welcome). */
#define PROTO_VERSION_MIN 1u
#define PROTO_VERSION_MAX 2u

struct proto_limits {
    uint32_t max_frame;    /* body bytes, excluding the length prefix */
    uint32_t max_depth;    /* nesting of arrays/maps; the frame's map is depth 1 */
    uint32_t max_elements; /* entries in any one array or map */
};

void proto_limits_default(struct proto_limits *l);

#endif
