/* Default socket paths: see paths.h for the two rules and why they differ. */
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int put(char *buf, size_t size, int n)
{
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int proto_user_socket_path(char *buf, size_t size, const char *runtime_dir, unsigned uid)
{
    if (runtime_dir && runtime_dir[0] == '/')
        return put(buf, size, snprintf(buf, size, "%s/volt/broker.sock", runtime_dir));
    /* No session runtime dir (no logind): a per-user dir in /tmp. */
    return put(buf, size, snprintf(buf, size, "/tmp/volt-%u/broker.sock", uid));
}

int proto_default_socket_path(char *buf, size_t size)
{
    if (geteuid() == 0)
        return put(buf, size, snprintf(buf, size, "%s", PROTO_ROOT_SOCKET));
    return proto_user_socket_path(buf, size, getenv("XDG_RUNTIME_DIR"), (unsigned)geteuid());
}

int proto_client_socket_path_for(char *buf, size_t size, const char *env_socket,
                                 const char *runtime_dir, unsigned uid)
{
    if (env_socket && env_socket[0])
        return put(buf, size, snprintf(buf, size, "%s", env_socket));
    /* For root the per-user socket is the system one (the broker's rule). */
    if (uid != 0 && proto_user_socket_path(buf, size, runtime_dir, uid) == 0) {
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISSOCK(st.st_mode))
            return 0;
    }
    return put(buf, size, snprintf(buf, size, "%s", PROTO_ROOT_SOCKET));
}

int proto_client_socket_path(char *buf, size_t size)
{
    return proto_client_socket_path_for(buf, size, getenv(PROTO_SOCKET_ENV),
                                        getenv("XDG_RUNTIME_DIR"), (unsigned)geteuid());
}
