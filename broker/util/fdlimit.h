/* The open-file budget: every local client is one descriptor, so
 * maxClients is only real when RLIMIT_NOFILE leaves room for it. */
#ifndef UTIL_FDLIMIT_H
#define UTIL_FDLIMIT_H

#include <stdint.h>

/* Descriptors kept for everything that is not a client: stdio, the
 * listener and its lock, the loop's own, the upstream socket, enrollment,
 * credential files, a config reload. */
#define FDLIMIT_RESERVE 64

/* Makes room for `needed` open descriptors: raises the soft RLIMIT_NOFILE
 * to `needed` when it is lower, never above the hard limit and never
 * lowering it. Returns the soft limit in effect afterwards (which may
 * still be below `needed`), or 0 when the limit cannot be read. */
uint64_t fdlimit_raise(uint64_t needed);

/* The soft RLIMIT_NOFILE as it is, or 0 when it cannot be read. */
uint64_t fdlimit_current(void);

#endif
