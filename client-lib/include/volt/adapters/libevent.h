/* libevent 2.1 adapter for libvoltclient: header-only, public API only.
 *
 *     struct event_base *base = event_base_new();
 *     volt_client *c = volt_client_new(NULL);
 *     volt_libevent_attach(c, base);   // before or after connecting
 *     volt_client_connect_async(c, 20000, on_connected, NULL);
 *     event_base_dispatch(base);
 *
 * Link with -levent_core (pkg-config libevent_core) and -lvoltclient.
 *
 * The adapter keeps two events for the client's current socket (read and
 * write, each EV_PERSIST, added and deleted as the client asks), one timer
 * event for its deadlines, and one persistent read event on the client's
 * wakeup fd (answers from worker threads, volt_client_stop). On reconnect
 * the socket's events are freed (close_fd hook) before the library closes
 * the fd, and new ones are made for the next fd. volt_client_free()
 * releases everything through the cleanup hook; nothing is left added to
 * the base afterwards, so event_base_dispatch() returns once no other
 * event of yours is pending.
 *
 * Threads: the client's thread rule applies; the base need not be made
 * thread-aware (evthread_use_pthreads) for worker answers, since those
 * reach the loop through the wakeup fd, not through libevent.
 */
#ifndef VOLT_ADAPTERS_LIBEVENT_H
#define VOLT_ADAPTERS_LIBEVENT_H

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../client.h"

typedef struct volt_libevent_events {
    volt_client *client;
    struct event_base *base;
    int fd;                  /* the socket the two events below are for, or -1 */
    struct event *rev, *wev; /* EV_READ / EV_WRITE on fd */
    int reading, writing;    /* added to the base */
    struct event *timer;
    struct event *wakeup; /* EV_READ on volt_client_wakeup_fd() */
} volt_libevent_events;

static inline void volt_libevent__on_io(evutil_socket_t fd, short what, void *arg)
{
    volt_libevent_events *p = (volt_libevent_events *)arg;
    int ev = 0;
    (void)fd;
    if (what & EV_READ)
        ev |= VOLT_EV_READ;
    if (what & EV_WRITE)
        ev |= VOLT_EV_WRITE;
    /* May free the client (and this adapter): touch nothing afterwards. */
    volt_client_process(p->client, ev);
}

static inline void volt_libevent__on_timer(evutil_socket_t fd, short what, void *arg)
{
    volt_libevent_events *p = (volt_libevent_events *)arg;
    (void)fd;
    (void)what;
    volt_client_process(p->client, 0);
}

static inline void volt_libevent__on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    volt_libevent_events *p = (volt_libevent_events *)arg;
    (void)fd;
    (void)what;
    volt_client_process(p->client, VOLT_EV_WAKEUP);
}

static inline void volt_libevent__drop_fd(volt_libevent_events *p)
{
    /* event_free deletes a pending event first. */
    if (p->rev)
        event_free(p->rev);
    if (p->wev)
        event_free(p->wev);
    p->rev = p->wev = NULL;
    p->reading = p->writing = 0;
    p->fd = -1;
}

/* Makes the two events for fd when they are for another one (or none). */
static inline int volt_libevent__for_fd(volt_libevent_events *p, int fd)
{
    if (p->fd == fd && p->rev)
        return 0;
    volt_libevent__drop_fd(p);
    p->rev = event_new(p->base, fd, EV_READ | EV_PERSIST, volt_libevent__on_io, p);
    p->wev = event_new(p->base, fd, EV_WRITE | EV_PERSIST, volt_libevent__on_io, p);
    if (!p->rev || !p->wev) {
        volt_libevent__drop_fd(p);
        return -1;
    }
    p->fd = fd;
    return 0;
}

static inline void volt_libevent__add_read(void *data, int fd)
{
    volt_libevent_events *p = (volt_libevent_events *)data;
    if (volt_libevent__for_fd(p, fd) == 0 && !p->reading && event_add(p->rev, NULL) == 0)
        p->reading = 1;
}

static inline void volt_libevent__del_read(void *data, int fd)
{
    volt_libevent_events *p = (volt_libevent_events *)data;
    if (p->fd == fd && p->reading) {
        event_del(p->rev);
        p->reading = 0;
    }
}

static inline void volt_libevent__add_write(void *data, int fd)
{
    volt_libevent_events *p = (volt_libevent_events *)data;
    if (volt_libevent__for_fd(p, fd) == 0 && !p->writing && event_add(p->wev, NULL) == 0)
        p->writing = 1;
}

static inline void volt_libevent__del_write(void *data, int fd)
{
    volt_libevent_events *p = (volt_libevent_events *)data;
    if (p->fd == fd && p->writing) {
        event_del(p->wev);
        p->writing = 0;
    }
}

static inline void volt_libevent__close_fd(void *data, int fd)
{
    volt_libevent_events *p = (volt_libevent_events *)data;
    (void)fd;
    volt_libevent__drop_fd(p);
}

static inline void volt_libevent__set_timer(void *data, int64_t timeout_ms)
{
    volt_libevent_events *p = (volt_libevent_events *)data;
    if (timeout_ms < 0) {
        event_del(p->timer);
        return;
    }
    struct timeval tv;
    tv.tv_sec = (time_t)(timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
    event_add(p->timer, &tv); /* re-adding a pending timer reschedules it */
}

static inline void volt_libevent__cleanup(void *data)
{
    volt_libevent_events *p = (volt_libevent_events *)data;
    volt_libevent__drop_fd(p);
    event_free(p->timer);
    event_free(p->wakeup);
    free(p);
}

/* Attaches c to base. 0, VOLT_E_NOMEM, or the error of volt_client_attach(). */
static inline int volt_libevent_attach(volt_client *c, struct event_base *base)
{
    volt_libevent_events *p = (volt_libevent_events *)calloc(1, sizeof *p);
    if (!p)
        return VOLT_E_NOMEM;
    p->client = c;
    p->base = base;
    p->fd = -1;
    p->timer = evtimer_new(base, volt_libevent__on_timer, p);
    p->wakeup = event_new(base, volt_client_wakeup_fd(c), EV_READ | EV_PERSIST,
                          volt_libevent__on_wakeup, p);
    if (!p->timer || !p->wakeup || event_add(p->wakeup, NULL) != 0) {
        if (p->timer)
            event_free(p->timer);
        if (p->wakeup)
            event_free(p->wakeup);
        free(p);
        return VOLT_E_NOMEM;
    }

    struct volt_loop_hooks hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.size = sizeof hooks;
    hooks.data = p;
    hooks.add_read = volt_libevent__add_read;
    hooks.del_read = volt_libevent__del_read;
    hooks.add_write = volt_libevent__add_write;
    hooks.del_write = volt_libevent__del_write;
    hooks.close_fd = volt_libevent__close_fd;
    hooks.set_timer = volt_libevent__set_timer;
    hooks.cleanup = volt_libevent__cleanup;
    int rc = volt_client_attach(c, &hooks);
    if (rc < 0) {
        event_free(p->timer);
        event_free(p->wakeup);
        free(p);
    }
    return rc;
}

#endif
