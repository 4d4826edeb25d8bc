#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/errbuf.h"

#define TEMP_NAME_ATTEMPTS 16
#define TEMP_NAME_BYTES    300

int statefile_path(char *out, size_t outlen, const char *dir, const char *name)
{
    size_t len;
    int n;

    if (!dir || !*dir || !name || !*name || strchr(name, '/'))
        return -EINVAL;
    len = strlen(dir);
    if (len > STATEFILE_MAX_DIR_BYTES)
        return -ENAMETOOLONG;
    /* "/a/b/" and "/a/b" name the same directory. */
    while (len > 1 && dir[len - 1] == '/')
        len--;
    n = snprintf(out, outlen, "%.*s%s%s", (int)len, dir, len == 1 && dir[0] == '/' ? "" : "/",
                 name);
    if (n < 0 || (size_t)n >= outlen)
        return -ENAMETOOLONG;
    return 0;
}

void statefile_text_free(char *text, size_t len)
{
    if (!text)
        return;
    explicit_bzero(text, len);
    free(text);
}

/* ---- read ---- */

/* Grows by copying, never realloc(): a secret must not be left behind in
 * a freed block. */
static int read_bounded(int fd, size_t max_bytes, char **out, size_t *out_len)
{
    size_t cap = 1024, len = 0;
    char *buf = malloc(cap);

    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            char *grown;
            if (len > max_bytes) {
                statefile_text_free(buf, len);
                return -EFBIG;
            }
            grown = malloc(cap * 2);
            if (!grown) {
                statefile_text_free(buf, len);
                return -ENOMEM;
            }
            memcpy(grown, buf, len);
            statefile_text_free(buf, len);
            buf = grown;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = -errno;
            statefile_text_free(buf, len);
            return err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max_bytes) {
        statefile_text_free(buf, len);
        return -EFBIG;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

static int check_file_is_ours(int fd, const char *what, const char *path, char *errbuf,
                              size_t errlen)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        int err = -errno;
        errbuf_set(errbuf, errlen, "%s file %s: stat failed: %s", what, path, strerror(-err));
        return err;
    }
    if (!S_ISREG(st.st_mode)) {
        errbuf_set(errbuf, errlen, "%s file %s is not a regular file", what, path);
        return -EPERM;
    }
    if (st.st_uid != geteuid()) {
        errbuf_set(errbuf, errlen, "%s file %s is owned by uid %lu, not by this process (uid %lu)",
                   what, path, (unsigned long)st.st_uid, (unsigned long)geteuid());
        return -EPERM;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        errbuf_set(errbuf, errlen,
                   "%s file %s has mode %04o: group/others may access it; "
                   "it must be 0600 (chmod 600 it after checking nobody else changed it)",
                   what, path, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

/* The state directory must be ours or root's, and no one else may write
 * to it (who may write there may replace its files): the same rule as
 * the socket's directory. */
static int check_dir(int dfd, const char *dir, char *errbuf, size_t errlen)
{
    struct stat st;

    if (fstat(dfd, &st) < 0)
        return -errno;
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        errbuf_set(errbuf, errlen, "state directory %s belongs to uid %lu, not to us or root", dir,
                   (unsigned long)st.st_uid);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        errbuf_set(errbuf, errlen, "state directory %s is writable by %s (mode %04o)", dir,
                   (st.st_mode & S_IWOTH) ? "every user" : "its group",
                   (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

int statefile_read(const char *dir, const char *name, const char *what, size_t max_bytes,
                   char **text, size_t *len, char *errbuf, size_t errlen)
{
    char path[STATEFILE_MAX_DIR_BYTES + TEMP_NAME_BYTES];
    int fd, r;

    *text = NULL;
    *len = 0;
    r = statefile_path(path, sizeof(path), dir, name);
    if (r < 0) {
        errbuf_set(errbuf, errlen, "%s file: unusable state directory or name", what);
        return r;
    }
    /* A directory we cannot open (no read permission) is still checked
     * through the file's own open below. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        r = check_dir(dfd, dir, errbuf, errlen);
        close(dfd);
        if (r < 0)
            return r;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        if (r == -ENOENT)
            return STATEFILE_ABSENT;
        if (r == -ELOOP) {
            errbuf_set(errbuf, errlen, "%s file %s is a symlink", what, path);
            return -EPERM;
        }
        errbuf_set(errbuf, errlen, "%s file %s: %s", what, path, strerror(-r));
        return r;
    }
    r = check_file_is_ours(fd, what, path, errbuf, errlen);
    if (r == 0) {
        r = read_bounded(fd, max_bytes, text, len);
        if (r == -EFBIG)
            errbuf_set(errbuf, errlen, "%s file %s is larger than %zu bytes", what, path,
                       max_bytes);
        else if (r < 0)
            errbuf_set(errbuf, errlen, "%s file %s: read failed: %s", what, path, strerror(-r));
    }
    close(fd);
    return r;
}

/* ---- write ---- */

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int open_state_dir(const char *dir, char *errbuf, size_t errlen)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0 && errno == ENOENT) {
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -errno;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0)
        return -errno;
    int r = check_dir(dfd, dir, errbuf, errlen);
    if (r < 0) {
        close(dfd);
        return r;
    }
    return dfd;
}

/* O_EXCL on a fresh random name: never reuses or follows what another
 * process left there. */
static int create_temp(int dfd, const char *name, char temp[TEMP_NAME_BYTES])
{
    for (int i = 0; i < TEMP_NAME_ATTEMPTS; i++) {
        uint32_t tag;
        int fd;

        if (getrandom(&tag, sizeof(tag), GRND_NONBLOCK) != (ssize_t)sizeof(tag))
            tag = (uint32_t)getpid() * 2654435761u + (uint32_t)i;
        snprintf(temp, TEMP_NAME_BYTES, ".%s.%08x.tmp", name, tag);
        fd = openat(dfd, temp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

int statefile_write(const char *dir, const char *name, const char *what, const void *data,
                    size_t len, char *errbuf, size_t errlen)
{
    char temp[TEMP_NAME_BYTES] = "";
    char path[STATEFILE_MAX_DIR_BYTES + TEMP_NAME_BYTES];
    const char *step = "";
    int dfd = -1, fd = -1, r;

    step = "name the file";
    r = statefile_path(path, sizeof(path), dir, name);
    if (r == 0 && strlen(name) > TEMP_NAME_BYTES - 32)
        r = -ENAMETOOLONG;
    if (r < 0)
        goto fail;
    step = "open state directory";
    dfd = open_state_dir(dir, errbuf, errlen);
    if (dfd == -EPERM) {
        r = dfd;
        dfd = -1;
        goto out; /* errbuf says why */
    }
    if (dfd < 0) {
        r = dfd;
        dfd = -1;
        goto fail;
    }
    step = "create temporary file";
    fd = create_temp(dfd, name, temp);
    if (fd < 0) {
        r = fd;
        temp[0] = '\0';
        goto fail;
    }
    /* The umask may have taken bits away; the mode must be exactly 0600. */
    step = "chmod temporary file";
    if (fchmod(fd, 0600) < 0)
        goto fail_errno;
    step = "write temporary file";
    r = write_all(fd, data, len);
    if (r < 0)
        goto fail;
    step = "fsync temporary file";
    if (fsync(fd) < 0)
        goto fail_errno;
    step = "close temporary file";
    r = close(fd);
    fd = -1;
    if (r < 0)
        goto fail_errno;
    step = "rename temporary file";
    if (renameat(dfd, temp, dfd, name) < 0)
        goto fail_errno;
    temp[0] = '\0';
    /* Without this the rename itself may not survive a power loss. */
    step = "fsync state directory";
    if (fsync(dfd) < 0)
        goto fail_errno;
    r = 0;
    goto out;

fail_errno:
    r = -errno;
fail:
    errbuf_set(errbuf, errlen, "storing %s in %s failed (%s): %s", what, dir ? dir : "(none)", step,
               strerror(-r));
out:
    if (fd >= 0)
        close(fd);
    if (temp[0])
        unlinkat(dfd, temp, 0);
    if (dfd >= 0)
        close(dfd);
    return r;
}
