/* libuv adapter for libvoltclient: header-only, public API only.
 *
 *     uv_loop_t *loop = uv_default_loop();
 *     volt_client *c = volt_client_new(NULL);
 *     volt_libuv_attach(c, loop);   // before or after volt_client_connect()
 *     volt_client_connect(c);
 *     uv_run(loop, UV_RUN_DEFAULT);
 *
 * The adapter keeps one uv_poll_t for the client's current socket, one
 * uv_timer_t for its deadlines, and one uv_poll_t on the client's wakeup
 * fd (answers from worker threads, volt_client_stop). The socket changes
 * on reconnect, so its poll handle is closed (close_fd hook) before the
 * library closes the fd and a new one is made for the next fd. volt_client_free() releases
 * everything through the cleanup hook; the handles are freed in their
 * close callbacks, so run the loop once more after freeing the client if
 * you want to close the loop cleanly. The client's thread rule applies:
 * use it only from the loop's thread.
 */
#ifndef VOLT_ADAPTERS_LIBUV_H
#define VOLT_ADAPTERS_LIBUV_H

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../client.h"

typedef struct volt_libuv_events {
    volt_client *client;
    uv_loop_t *loop;
    uv_poll_t *poll; /* for fd, or NULL */
    int fd;
    int events; /* UV_READABLE | UV_WRITABLE wanted */
    uv_timer_t *timer;
    uv_poll_t *wakeup; /* on volt_client_wakeup_fd() */
} volt_libuv_events;

static inline void volt_libuv__free_handle(uv_handle_t *handle)
{
    free(handle);
}

static inline void volt_libuv__on_poll(uv_poll_t *handle, int status, int events)
{
    volt_libuv_events *p = (volt_libuv_events *)handle->data;
    int ev = 0;
    /* On a poll error, let the client find out by reading. */
    if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT)))
        ev |= VOLT_EV_READ;
    if (status == 0 && (events & UV_WRITABLE))
        ev |= VOLT_EV_WRITE;
    /* May free the client (and this adapter): touch nothing afterwards. */
    volt_client_process(p->client, ev);
}

static inline void volt_libuv__on_wakeup(uv_poll_t *handle, int status, int events)
{
    volt_libuv_events *p = (volt_libuv_events *)handle->data;
    (void)status;
    (void)events;
    volt_client_process(p->client, VOLT_EV_WAKEUP);
}

static inline void volt_libuv__on_timer(uv_timer_t *handle)
{
    volt_libuv_events *p = (volt_libuv_events *)handle->data;
    volt_client_process(p->client, 0);
}

static inline void volt_libuv__update(volt_libuv_events *p, int fd, int add, int remove)
{
    if (p->poll && p->fd != fd) {
        uv_close((uv_handle_t *)p->poll, volt_libuv__free_handle);
        p->poll = NULL;
        p->events = 0;
    }
    if (!p->poll) {
        p->poll = (uv_poll_t *)malloc(sizeof *p->poll);
        if (!p->poll)
            return;
        if (uv_poll_init(p->loop, p->poll, fd) != 0) {
            free(p->poll);
            p->poll = NULL;
            return;
        }
        p->poll->data = p;
        p->fd = fd;
        p->events = 0;
    }
    int events = (p->events | add) & ~remove;
    if (events == p->events)
        return;
    p->events = events;
    if (events)
        uv_poll_start(p->poll, events, volt_libuv__on_poll);
    else
        uv_poll_stop(p->poll);
}

static inline void volt_libuv__add_read(void *data, int fd)
{
    volt_libuv__update((volt_libuv_events *)data, fd, UV_READABLE | UV_DISCONNECT, 0);
}

static inline void volt_libuv__del_read(void *data, int fd)
{
    volt_libuv__update((volt_libuv_events *)data, fd, 0, UV_READABLE | UV_DISCONNECT);
}

static inline void volt_libuv__add_write(void *data, int fd)
{
    volt_libuv__update((volt_libuv_events *)data, fd, UV_WRITABLE, 0);
}

static inline void volt_libuv__del_write(void *data, int fd)
{
    volt_libuv__update((volt_libuv_events *)data, fd, 0, UV_WRITABLE);
}

static inline void volt_libuv__close_fd(void *data, int fd)
{
    volt_libuv_events *p = (volt_libuv_events *)data;
    (void)fd;
    if (p->poll) {
        /* uv_close stops the poll first, so the fd may be closed right after. */
        uv_close((uv_handle_t *)p->poll, volt_libuv__free_handle);
        p->poll = NULL;
        p->events = 0;
        p->fd = -1;
    }
}

static inline void volt_libuv__set_timer(void *data, int64_t timeout_ms)
{
    volt_libuv_events *p = (volt_libuv_events *)data;
    if (timeout_ms < 0)
        uv_timer_stop(p->timer);
    else {
        /* The loop's cached time may be old (we run inside a callback):
         * refresh it so the timer does not fire early. */
        uv_update_time(p->loop);
        uv_timer_start(p->timer, volt_libuv__on_timer, (uint64_t)timeout_ms, 0);
    }
}

static inline void volt_libuv__cleanup(void *data)
{
    volt_libuv_events *p = (volt_libuv_events *)data;
    if (p->poll)
        uv_close((uv_handle_t *)p->poll, volt_libuv__free_handle);
    uv_close((uv_handle_t *)p->timer, volt_libuv__free_handle);
    uv_close((uv_handle_t *)p->wakeup, volt_libuv__free_handle);
    free(p);
}

/* Attaches c to loop. 0, VOLT_E_NOMEM, or the error of volt_client_attach(). */
static inline int volt_libuv_attach(volt_client *c, uv_loop_t *loop)
{
    volt_libuv_events *p = (volt_libuv_events *)calloc(1, sizeof *p);
    uv_timer_t *timer = (uv_timer_t *)malloc(sizeof *timer);
    uv_poll_t *wakeup = (uv_poll_t *)malloc(sizeof *wakeup);
    if (!p || !timer || !wakeup || uv_poll_init(loop, wakeup, volt_client_wakeup_fd(c)) != 0) {
        free(p);
        free(timer);
        free(wakeup);
        return VOLT_E_NOMEM;
    }
    p->client = c;
    p->loop = loop;
    p->fd = -1;
    p->timer = timer;
    p->wakeup = wakeup;
    uv_timer_init(loop, timer);
    timer->data = p;
    wakeup->data = p;
    uv_poll_start(wakeup, UV_READABLE, volt_libuv__on_wakeup);

    struct volt_loop_hooks hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.size = sizeof hooks;
    hooks.data = p;
    hooks.add_read = volt_libuv__add_read;
    hooks.del_read = volt_libuv__del_read;
    hooks.add_write = volt_libuv__add_write;
    hooks.del_write = volt_libuv__del_write;
    hooks.close_fd = volt_libuv__close_fd;
    hooks.set_timer = volt_libuv__set_timer;
    hooks.cleanup = volt_libuv__cleanup;
    int rc = volt_client_attach(c, &hooks);
    if (rc < 0) {
        uv_close((uv_handle_t *)timer, volt_libuv__free_handle);
        uv_close((uv_handle_t *)wakeup, volt_libuv__free_handle);
        free(p);
    }
    return rc;
}

#endif
