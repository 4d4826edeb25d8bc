#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int proto_default_socket_path(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;

    if (geteuid() == 0)
        n = snprintf(buf, size, "%s", PROTO_ROOT_SOCKET);
    else if (xdg && xdg[0] == '/')
        n = snprintf(buf, size, "%s/volt/broker.sock", xdg);
    else /* no session runtime dir (no logind): a per-user dir in /tmp */
        n = snprintf(buf, size, "/tmp/volt-%u/broker.sock", (unsigned)geteuid());
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
