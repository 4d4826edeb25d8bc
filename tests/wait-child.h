/* Test helper (header-only, for tests/harness.c and the unit tests that run
 * the dev server): wait for a child process to end, with a deadline, and
 * without polling. A pidfd (Linux 5.3) becomes readable when the process
 * ends, so the wait is one poll() on the condition itself.
 */
#ifndef TESTS_WAIT_CHILD_H
#define TESTS_WAIT_CHILD_H

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t wait_child_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reaps child `pid` once it ends, waiting at most timeout_ms. 0 with its
 * wait status in *status; -1 with errno ETIMEDOUT when it is still
 * running at the deadline (it is left running), or the errno of
 * pidfd_open/poll/waitpid. */
static inline int wait_child(pid_t pid, int timeout_ms, int *status)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -1;
    uint64_t end = wait_child_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc;
    for (;;) {
        uint64_t now = wait_child_now_ms();
        rc = poll(&p, 1, now >= end ? 0 : (int)(end - now));
        if (rc >= 0 || errno != EINTR)
            break;
    }
    int saved = errno;
    close(fd);
    if (rc < 0) {
        errno = saved;
        return -1;
    }
    if (rc == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    pid_t r;
    while ((r = waitpid(pid, status, 0)) < 0 && errno == EINTR)
        ;
    return r == pid ? 0 : -1;
}

#endif
