/* The local listening socket, created without a window in which a user
 * outside the allowed set could connect.
 *
 * Order of operations (why it is safe):
 * 1. The parent directory is created if missing (0755; the socket file's
 *    own mode is what restricts access).
 * 2. A lock file next to the socket (`PATH.lock`) is flock()ed. If another
 *    process holds it, a live broker owns the socket: we refuse to start
 *    rather than steal it. If we get the lock, any socket file left at
 *    PATH is from a dead broker and is removed.
 * 3. bind() runs under a umask that yields the configured mode, so the file
 *    never exists with looser permissions; chown to the group follows.
 * 4. Only then listen(): until listen() a connect() is refused anyway.
 *
 * Socket activation (systemd LISTEN_FDS) skips all of this: the fd comes
 * ready-made.
 */
#ifndef LOCAL_LISTENER_H
#define LOCAL_LISTENER_H

#include <stdbool.h>
#include <sys/types.h>

struct listener_options {
    const char *path;
    unsigned mode;     /* e.g. 0660 */
    const char *group; /* NULL: keep the broker's group */
};

/* Creates and listens. Returns the listening fd (>= 0), or a negative
 * errno with an English explanation in why[]: -EADDRINUSE when a live
 * broker holds the lock, -EEXIST when something other than a socket is at
 * the path, -ENAMETOOLONG, -ENOENT for an unknown group. *lock_fd receives
 * the lock file's fd (keep it open for the broker's life), -1 on error. */
int listener_create(const struct listener_options *o, int *lock_fd, char *why, size_t why_len);

/* The fd passed by systemd socket activation (LISTEN_PID/LISTEN_FDS), or
 * -1 when there is none (or it is for another process, or fd 3 is not
 * open). Unsets the variables in every case, so children do not inherit
 * them. */
int listener_from_systemd(void);

/* Removes the socket file at shutdown and releases the lock (only if we
 * made them: lock_fd >= 0). The lock file stays, see listener.c. */
void listener_remove(const char *path, int lock_fd);

#endif
