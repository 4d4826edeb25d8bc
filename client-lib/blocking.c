/* The client's own poll() loop: the blocking API and volt_client_run().
 *
 * Waiting is always "process until a condition holds": the condition is
 * checked between rounds, and every round dispatches whatever arrived, so
 * callbacks keep running while a *_sync call waits. Deadlines come from the
 * core (volt_client_timeout_ms), so a wait never oversleeps a request
 * timeout or a reconnect. The client's eventfd (volt_client_wakeup_fd) is
 * always polled too: volt_client_stop() (from a signal handler or another
 * thread) and answers made by other threads write to it.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "client-internal.h"

/* One round: poll the socket (and the wake fd) until I/O or the next
 * deadline, bounded by `until` (absolute ms, < 0: none); then process. */
static void poll_once(volt_client *c, int64_t until)
{
    struct pollfd pfd[2];
    int n = 0;
    int fd = volt_client_fd(c);
    if (fd >= 0) {
        int ev = volt_client_events(c);
        pfd[n].fd = fd;
        pfd[n].events =
            (short)(((ev & VOLT_EV_READ) ? POLLIN : 0) | ((ev & VOLT_EV_WRITE) ? POLLOUT : 0));
        pfd[n].revents = 0;
        n++;
    }
    pfd[n].fd = c->wake_fd;
    pfd[n].events = POLLIN;
    pfd[n].revents = 0;
    n++;
    int64_t timeout = volt_client_timeout_ms(c);
    if (until >= 0) {
        int64_t left = until - volt__now_ms();
        if (left < 0)
            left = 0;
        if (timeout < 0 || left < timeout)
            timeout = left;
    }
    if (timeout > INT32_MAX)
        timeout = INT32_MAX;
    int rc = poll(pfd, (nfds_t)n, (int)timeout);
    int events = 0;
    if (rc > 0) {
        for (int i = 0; i < n; i++) {
            if (pfd[i].fd == c->wake_fd) {
                if (pfd[i].revents & POLLIN)
                    events |= VOLT_EV_WAKEUP; /* drained by the core */
                continue;
            }
            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
                events |= VOLT_EV_READ;
            if (pfd[i].revents & POLLOUT)
                events |= VOLT_EV_WRITE;
        }
    }
    volt__process(c, events);
}

int volt__wait(volt_client *c, const bool *done, int64_t deadline)
{
    while (!*done) {
        if (!volt__alive(c))
            return VOLT_E_BROKER_GONE;
        if (deadline >= 0 && volt__now_ms() >= deadline)
            return VOLT_E_TIMEOUT;
        poll_once(c, deadline);
    }
    return 0;
}

void volt_client_stop(volt_client *c)
{
    int saved = errno; /* a signal handler must not change errno */
    atomic_store(&c->stop_requested, 1);
    uint64_t one = 1;
    (void)!write(c->wake_fd, &one, sizeof one);
    errno = saved;
}

static int run_until(volt_client *c, int64_t until)
{
    for (;;) {
        if (atomic_exchange(&c->stop_requested, 0))
            return 0;
        if (!volt__alive(c))
            return 0;
        if (c->state == VOLT__IDLE)
            return (c->flags & VOLT__FATAL) ? VOLT_E_VERSION_MISMATCH : VOLT_E_BROKER_GONE;
        if (until >= 0 && volt__now_ms() >= until)
            return 0;
        poll_once(c, until);
    }
}

int volt_client_run(volt_client *c)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    return volt__leave(c, run_until(c, -1));
}

int volt_client_run_for(volt_client *c, int ms)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    volt__enter(c);
    return volt__leave(c, run_until(c, volt__now_ms() + (ms > 0 ? ms : 0)));
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : volt__now_ms() + timeout_ms;
}

int volt_client_connect_blocking(volt_client *c, int timeout_ms)
{
    return volt__connect_wait(c, timeout_ms, c->opts.wait_upstream);
}

int volt_client_wait_ready(volt_client *c, int timeout_ms)
{
    return volt__connect_wait(c, timeout_ms, true);
}

int volt_client_flush(volt_client *c, int timeout_ms)
{
    if (!volt__alive(c))
        return VOLT_E_BROKER_GONE;
    int64_t until = deadline_of(timeout_ms);
    volt__enter(c);
    int rc;
    for (;;) {
        if (!volt__alive(c) || !volt__has_socket(c)) {
            rc = VOLT_E_BROKER_GONE;
            break;
        }
        if (c->state != VOLT__CONNECTING && volt__out_pending(c) == 0) {
            rc = 0;
            break;
        }
        if (until >= 0 && volt__now_ms() >= until) {
            rc = VOLT_E_TIMEOUT;
            break;
        }
        poll_once(c, until);
    }
    return volt__leave(c, rc);
}
