#include "limits.h"

void proto_limits_default(struct proto_limits *l)
{
    l->max_frame = PROTO_DEFAULT_MAX_FRAME;
    l->max_depth = PROTO_DEFAULT_MAX_DEPTH;
    l->max_elements = PROTO_DEFAULT_MAX_ELEMENTS;
}
