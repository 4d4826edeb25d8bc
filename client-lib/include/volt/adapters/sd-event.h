/* sd-event adapter for libvoltclient (systemd's event loop, libsystemd
 * 247 or later): header-only, public API only.
 *
 *     sd_event *e = NULL;
 *     sd_event_default(&e);
 *     volt_client *c = volt_client_new(NULL);
 *     volt_sdevent_attach(c, e);       // before or after connecting
 *     volt_client_connect_async(c, 20000, on_connected, NULL);
 *     sd_event_loop(e);
 *
 * Link with -lsystemd (pkg-config libsystemd) and -lvoltclient.
 *
 * The adapter keeps one IO source for the client's current socket (its
 * EPOLLIN/EPOLLOUT mask changed as the client asks, disabled when it asks
 * for nothing), one CLOCK_MONOTONIC time source for its deadlines (one
 * shot, 1 µs accuracy: sd-event's default accuracy of 250 ms would make
 * every request timeout late), and one IO source on the client's wakeup fd
 * (answers from worker threads, volt_client_stop). On reconnect the
 * socket's source is released (close_fd hook) before the library closes
 * the fd. volt_client_free() releases every source through the cleanup
 * hook. sd-event objects are not thread-safe: use the client and the loop
 * from one thread (worker answers come in through the wakeup fd).
 */
#ifndef VOLT_ADAPTERS_SD_EVENT_H
#define VOLT_ADAPTERS_SD_EVENT_H

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "../client.h"

typedef struct volt_sdevent_events {
    volt_client *client;
    sd_event *event;
    sd_event_source *io; /* for fd, or NULL */
    int fd;
    uint32_t mask; /* EPOLLIN | EPOLLOUT wanted */
    sd_event_source *timer;
    sd_event_source *wakeup;
} volt_sdevent_events;

static inline int volt_sdevent__on_io(sd_event_source *s, int fd, uint32_t revents, void *data)
{
    volt_sdevent_events *p = (volt_sdevent_events *)data;
    int ev = 0;
    (void)s;
    (void)fd;
    /* Errors and hang-ups are found by reading. */
    if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        ev |= VOLT_EV_READ;
    if (revents & EPOLLOUT)
        ev |= VOLT_EV_WRITE;
    /* May free the client (and this adapter): touch nothing afterwards. */
    volt_client_process(p->client, ev);
    return 0;
}

static inline int volt_sdevent__on_timer(sd_event_source *s, uint64_t usec, void *data)
{
    volt_sdevent_events *p = (volt_sdevent_events *)data;
    (void)s;
    (void)usec;
    volt_client_process(p->client, 0);
    return 0;
}

static inline int volt_sdevent__on_wakeup(sd_event_source *s, int fd, uint32_t revents, void *data)
{
    volt_sdevent_events *p = (volt_sdevent_events *)data;
    (void)s;
    (void)fd;
    (void)revents;
    volt_client_process(p->client, VOLT_EV_WAKEUP);
    return 0;
}

static inline void volt_sdevent__drop_fd(volt_sdevent_events *p)
{
    /* Disabled first: a source still referenced elsewhere (sd-event holds
     * one while dispatching it) must not fire for a closed fd. */
    p->io = sd_event_source_disable_unref(p->io);
    p->mask = 0;
    p->fd = -1;
}

static inline void volt_sdevent__update(volt_sdevent_events *p, int fd, uint32_t add,
                                        uint32_t remove)
{
    if (p->io && p->fd != fd)
        volt_sdevent__drop_fd(p);
    uint32_t mask = (p->mask | add) & ~remove;
    if (!p->io) {
        if (!mask)
            return;
        if (sd_event_add_io(p->event, &p->io, fd, mask, volt_sdevent__on_io, p) < 0) {
            p->io = NULL;
            return;
        }
        p->fd = fd;
        p->mask = mask;
        return;
    }
    if (mask == p->mask)
        return;
    p->mask = mask;
    if (mask) {
        sd_event_source_set_io_events(p->io, mask);
        sd_event_source_set_enabled(p->io, SD_EVENT_ON);
    } else {
        sd_event_source_set_enabled(p->io, SD_EVENT_OFF);
    }
}

static inline void volt_sdevent__add_read(void *data, int fd)
{
    volt_sdevent__update((volt_sdevent_events *)data, fd, EPOLLIN, 0);
}

static inline void volt_sdevent__del_read(void *data, int fd)
{
    volt_sdevent__update((volt_sdevent_events *)data, fd, 0, EPOLLIN);
}

static inline void volt_sdevent__add_write(void *data, int fd)
{
    volt_sdevent__update((volt_sdevent_events *)data, fd, EPOLLOUT, 0);
}

static inline void volt_sdevent__del_write(void *data, int fd)
{
    volt_sdevent__update((volt_sdevent_events *)data, fd, 0, EPOLLOUT);
}

static inline void volt_sdevent__close_fd(void *data, int fd)
{
    (void)fd;
    volt_sdevent__drop_fd((volt_sdevent_events *)data);
}

static inline void volt_sdevent__set_timer(void *data, int64_t timeout_ms)
{
    volt_sdevent_events *p = (volt_sdevent_events *)data;
    if (timeout_ms < 0) {
        sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
        return;
    }
    sd_event_source_set_time_relative(p->timer, (uint64_t)timeout_ms * 1000u);
    sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

static inline void volt_sdevent__cleanup(void *data)
{
    volt_sdevent_events *p = (volt_sdevent_events *)data;
    volt_sdevent__drop_fd(p);
    sd_event_source_disable_unref(p->timer);
    sd_event_source_disable_unref(p->wakeup);
    free(p);
}

/* Attaches c to the sd-event loop e. 0, VOLT_E_NOMEM, or the error of
 * volt_client_attach(). */
static inline int volt_sdevent_attach(volt_client *c, sd_event *e)
{
    volt_sdevent_events *p = (volt_sdevent_events *)calloc(1, sizeof *p);
    if (!p)
        return VOLT_E_NOMEM;
    p->client = c;
    p->event = e;
    p->fd = -1;
    /* Created disabled; set_timer arms it. */
    if (sd_event_add_time_relative(e, &p->timer, CLOCK_MONOTONIC, UINT64_MAX / 2, 1,
                                   volt_sdevent__on_timer, p) < 0 ||
        sd_event_source_set_enabled(p->timer, SD_EVENT_OFF) < 0 ||
        sd_event_add_io(e, &p->wakeup, volt_client_wakeup_fd(c), EPOLLIN, volt_sdevent__on_wakeup,
                        p) < 0) {
        sd_event_source_disable_unref(p->timer);
        sd_event_source_disable_unref(p->wakeup);
        free(p);
        return VOLT_E_NOMEM;
    }

    struct volt_loop_hooks hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.size = sizeof hooks;
    hooks.data = p;
    hooks.add_read = volt_sdevent__add_read;
    hooks.del_read = volt_sdevent__del_read;
    hooks.add_write = volt_sdevent__add_write;
    hooks.del_write = volt_sdevent__del_write;
    hooks.close_fd = volt_sdevent__close_fd;
    hooks.set_timer = volt_sdevent__set_timer;
    hooks.cleanup = volt_sdevent__cleanup;
    int rc = volt_client_attach(c, &hooks);
    if (rc < 0) {
        sd_event_source_disable_unref(p->timer);
        sd_event_source_disable_unref(p->wakeup);
        free(p);
    }
    return rc;
}

#endif
