#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3

/* Whoever controls the socket's directory can swap the socket: with the
 * default under /tmp, another user could have made the directory first.
 * It must be ours (or root's) and writable by nobody else. */
static int check_parent_dir(const char *dir, char *why, size_t why_len)
{
    struct stat st;

    if (lstat(dir, &st) < 0) {
        int e = errno;
        snprintf(why, why_len, "cannot inspect directory %s: %s", dir, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, why_len, "%s is not a directory", dir);
        return -ENOTDIR;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(why, why_len,
                 "directory %s belongs to uid %u, not to us: refusing to put the socket there", dir,
                 (unsigned)st.st_uid);
        return -EPERM;
    }
    /* Sticky or not: in a directory others may create files in (/tmp),
     * someone could plant the lock file first and hold it forever, or
     * race the socket's name. A private subdirectory is the answer
     * (/tmp/volt-UID/, the default there). */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, why_len,
                 "directory %s is writable by other users (mode %04o): refusing to put the socket "
                 "there; use a private subdirectory (e.g. %s/volt-%u/)",
                 dir, (unsigned)(st.st_mode & 07777), dir, (unsigned)geteuid());
        return -EPERM;
    }
    return 0;
}

static int make_parent_dir(const char *path, char *why, size_t why_len)
{
    char dir[PATH_MAX];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    /* Create each missing component, like mkdir -p. */
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            snprintf(why, why_len, "cannot create directory %s: %s", dir, strerror(e));
            return -e;
        }
        *p = '/';
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        int e = errno;
        snprintf(why, why_len, "cannot create directory %s: %s", dir, strerror(e));
        return -e;
    }
    return check_parent_dir(dir, why, why_len);
}

static int take_lock(const char *path, int *lock_fd, char *why, size_t why_len)
{
    char lock_path[PATH_MAX];
    int fd;

    snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
    /* Never through a symlink; and a lock file someone else made is not
     * ours to trust (the directory check makes that unlikely, not
     * impossible: root's files are fine). */
    fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (st.st_uid != geteuid() && st.st_uid != 0)) {
            close(fd);
            snprintf(why, why_len, "lock file %s is not a regular file of ours", lock_path);
            return -EPERM;
        }
    }
    if (fd < 0) {
        int e = errno;
        snprintf(why, why_len, "cannot open lock file %s: %s", lock_path, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(why, why_len,
                     "another volt-broker is running on %s (it holds %s); not taking its socket",
                     path, lock_path);
        else
            snprintf(why, why_len, "cannot lock %s: %s", lock_path, strerror(e));
        return e == EWOULDBLOCK ? -EADDRINUSE : -e;
    }
    *lock_fd = fd;
    return 0;
}

static int remove_stale_socket(const char *path, char *why, size_t why_len)
{
    struct stat st;

    if (lstat(path, &st) < 0) {
        int e = errno;
        if (e == ENOENT)
            return 0;
        snprintf(why, why_len, "cannot inspect %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, why_len, "%s exists and is not a socket; not removing it", path);
        return -EEXIST;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        int e = errno;
        snprintf(why, why_len, "cannot remove stale socket %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

int listener_create(const struct listener_options *o, int *lock_fd, char *why, size_t why_len)
{
    struct sockaddr_un addr;
    mode_t old_mask;
    int fd = -1, rc;

    *lock_fd = -1;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(o->path) >= sizeof(addr.sun_path)) {
        snprintf(why, why_len, "socket path too long (max %zu bytes)", sizeof(addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, o->path, strlen(o->path));

    rc = make_parent_dir(o->path, why, why_len);
    if (rc < 0)
        return rc;
    rc = take_lock(o->path, lock_fd, why, why_len);
    if (rc < 0)
        return rc;
    /* We hold the lock: a socket at the path is a dead broker's. Anything
     * else there is a configuration mistake, and not ours to delete. */
    rc = remove_stale_socket(o->path, why, why_len);
    if (rc < 0)
        goto fail;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(why, why_len, "socket: %s", strerror(-rc));
        goto fail;
    }
    old_mask = umask(0777 & ~o->mode);
    rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old_mask);
    if (rc < 0) {
        rc = -errno;
        snprintf(why, why_len, "cannot bind %s: %s", o->path, strerror(-rc));
        goto fail;
    }
    if (o->group) {
        struct group *g = getgrnam(o->group);
        if (!g || chown(o->path, (uid_t)-1, g->gr_gid) < 0) {
            rc = g ? -errno : -ENOENT;
            snprintf(why, why_len, "cannot give %s to group %s: %s", o->path, o->group,
                     g ? strerror(-rc) : "no such group");
            goto fail_unlink;
        }
    }
    if (listen(fd, SOMAXCONN) < 0) {
        rc = -errno;
        snprintf(why, why_len, "listen on %s: %s", o->path, strerror(-rc));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(o->path);
fail:
    if (fd >= 0)
        close(fd);
    close(*lock_fd);
    *lock_fd = -1;
    return rc;
}

int listener_from_systemd(void)
{
    const char *pid_s = getenv("LISTEN_PID");
    const char *fds_s = getenv("LISTEN_FDS");
    int fd = SD_LISTEN_FDS_START;
    bool ours;

    if (!pid_s || !fds_s)
        return -1;
    ours = strtol(pid_s, NULL, 10) == (long)getpid() && strtol(fds_s, NULL, 10) >= 1;
    /* Like sd_listen_fds(1): unset whether or not they were for us. */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!ours)
        return -1;
    /* The passed fd is not CLOEXEC: make it so (this also proves it is
     * open); and libuv wants it non-blocking. */
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

void listener_remove(const char *path, int lock_fd)
{
    if (lock_fd < 0)
        return;
    unlink(path);
    /* The lock file stays: removing it would let two brokers race on a new
     * one. It is empty and harmless. */
    close(lock_fd);
}
