/* A fake volt-broker for the client-lib tests: a listening Unix socket in
 * a temp dir and one accepted connection, speaking the local protocol with
 * proto/. It is a test double of our own protocol's peer (the real broker
 * is tested against the real client in tests/); it never mocks socket.io.
 *
 * Two ways to use it:
 * - in the test's thread, with a pump callback: every wait of the fake
 *   broker calls pump() between short polls, so the client under test
 *   keeps running (async API);
 * - in a thread of its own (fb_thread_start), so the test thread can block
 *   in the client's *_sync calls while the script answers.
 */
#ifndef VOLT_FAKE_BROKER_H
#define VOLT_FAKE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/msg.h"

struct fb {
    char dir[64];
    char path[128];
    int lfd; /* listening socket, -1 when stopped */
    int cfd; /* current connection, -1 when none */
    struct proto_reader *reader;
    struct proto_buf frame; /* copy of the last frame received (m points into it) */
    void (*pump)(void *arg);
    void *pump_arg;
    int accepted; /* connections accepted so far */
};

struct fb *fb_new(void);
void fb_free(struct fb *fb);
void fb_set_pump(struct fb *fb, void (*pump)(void *), void *arg);

/* Waits for a connection (replacing the current one). */
bool fb_accept(struct fb *fb, int timeout_ms);
/* Next frame, decoded into *m (valid until the next fb_recv). */
bool fb_recv(struct fb *fb, struct proto_msg *m, int timeout_ms);
/* fb_recv and check the op; fails the test otherwise. */
void fb_expect(struct fb *fb, enum proto_op op, struct proto_msg *m);
/* True when no frame arrives within ms (and the connection stays open). */
bool fb_quiet(struct fb *fb, int ms);
/* True when the peer closed the connection within ms. */
bool fb_eof(struct fb *fb, int ms);

void fb_send(struct fb *fb, const struct proto_msg *m);
void fb_send_raw(struct fb *fb, const void *data, size_t len);
/* Encodes m and appends it to out (to send several frames as one write). */
void fb_encode(struct proto_buf *out, const struct proto_msg *m);

/* accept + expect hello (checks the versions) + welcome with `state`. */
void fb_handshake(struct fb *fb, const char *state);
void fb_welcome(struct fb *fb, const char *state);
/* A welcome with what the test set in *w (v2 fields: timeout_ms,
 * team_cluster_id, code/message, ...); version, max_frame and name are
 * filled in when absent. */
void fb_welcome_msg(struct fb *fb, struct proto_msg *w);
/* An `event` with whatever fields the test set in *e (op is set here). */
void fb_event_msg(struct fb *fb, struct proto_msg *e);
/* Answers request `id` with ok and raw data (NULL: none). */
void fb_result_ok(struct fb *fb, uint64_t id, const void *data, size_t len);
void fb_result_err(struct fb *fb, uint64_t id, const char *code, const char *message);
void fb_event(struct fb *fb, const char *event, const char *state, const char *reason);

void fb_close_conn(struct fb *fb);
/* Closes and unlinks the listening socket (broker stopped) / binds again. */
void fb_stop_listening(struct fb *fb);
void fb_listen(struct fb *fb);

/* Runs script(fb, arg) in a thread; fb_thread_join waits for it. */
void fb_thread_start(struct fb *fb, void (*script)(struct fb *, void *), void *arg);
void fb_thread_join(struct fb *fb);

bool span_eq_str(struct proto_span s, const char *str);

/* Fails the test; from the script thread it aborts (cmocka cannot fail a
 * test from another thread). */
void fb_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define FB_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fb_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);                         \
    } while (0)

#endif
