/* Test helper (header-only) for tests that work in a temporary directory:
 * counting what is in it, and removing it with everything in it, subdirectories too (never
 * following a symlink: a test that plants one must not make the cleanup delete what it points to).
 */
#ifndef TESTS_TEST_TMPDIR_H
#define TESTS_TEST_TMPDIR_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline void tmpdir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        int n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(path))
            continue;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            tmpdir_remove(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Entries in dir besides . and .. (-1 when it cannot be read): what a
 * failed write left behind, say. */
static inline int tmpdir_count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Writes `content` to path (created or truncated) with exactly `mode`
 * (fchmod: the umask does not take bits away). 0 or -1. */
static inline int tmpdir_write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, mode);
    size_t len = strlen(content);
    int rc = 0;

    if (fd < 0)
        return -1;
    if (write(fd, content, len) != (ssize_t)len || fchmod(fd, mode) < 0)
        rc = -1;
    close(fd);
    return rc;
}

#endif
