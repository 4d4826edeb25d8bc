#include "util/fdlimit.h"

#include <sys/resource.h>

uint64_t fdlimit_current(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

uint64_t fdlimit_raise(uint64_t needed)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= needed)
        return fdlimit_current();
    /* Raising only as far as needed: a child (a curl resolver, say)
     * inherits it, and some libraries size tables from it. */
    rl.rlim_cur =
        (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < needed) ? rl.rlim_max : (rlim_t)needed;
    /* Refused (a seccomp filter, say): the old limit stays, and is reported. */
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    return fdlimit_current();
}
