/* Link-time fakes of the two APIs the router sits between, for
 * test-router: upstream/session.h (the calls the router makes, plus a way
 * for the test to play the server) and local/peer.h (a client that keeps
 * every frame sent to it). They replace session.c and peer.c in the test
 * binary: no sockets, no server, no Node. One fake session per process. */
#ifndef LOCAL_TEST_ROUTER_FAKES_H
#define LOCAL_TEST_ROUTER_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "local/peer.h"
#include "proto/msg.h"
#include "upstream/session.h"

#define FAKE_TEXT 128

/* One frame a fake peer was sent, decoded into copies. */
struct fake_frame {
    enum proto_op op;
    uint64_t id;
    int code; /* result/error: 0 or PROTO_E_* */
    uint64_t timeout_ms;
    char message[FAKE_TEXT], command[FAKE_TEXT], type[FAKE_TEXT];
    uint8_t data[FAKE_TEXT];
    uint32_t data_len;
};

/* A client (its uid's quota account admitted when quota is not NULL). */
struct peer *fake_peer_new(uint64_t id, uint32_t uid, struct quota *quota);
void fake_peer_free(struct peer *p);
size_t fake_peer_count(const struct peer *p);
/* The i-th frame (asserts it exists); the last one: fake_peer_last(). */
const struct fake_frame *fake_peer_frame(const struct peer *p, size_t i);
const struct fake_frame *fake_peer_last(const struct peer *p);
/* Number of frames of op sent so far. */
size_t fake_peer_count_op(const struct peer *p, enum proto_op op);
void fake_peer_clear(struct peer *p);
/* An evicted peer (closing at the next prepare): sends fail BrokerGone. */
void fake_peer_set_gone(struct peer *p, bool gone);
/* Every send fails with rc, nothing queued (0: sends work again); e.g.
 * PROTO_E_FRAME_TOO_LARGE for a client with a small frame limit. */
void fake_peer_set_send_error(struct peer *p, int rc);
/* Past `frames` queued frames the peer is a slow consumer: like peer.c it
 * is closed on the spot (on_close runs inside peer_send, as the broker's
 * closing callback does) and the send fails LimitExceeded. */
void fake_peer_set_queue_limit(struct peer *p, size_t frames,
                               void (*on_close)(struct peer *, void *), void *ud);
size_t fake_peer_held(const struct peer *p);

/* A request the router made with session_request(). */
struct fake_request {
    char command[FAKE_TEXT];
    uint64_t timeout_ms;
    session_result_cb cb;
    void *ctx;
    bool done, cancelled;
};

/* An inbound server:request and the answers it got (must end up 1). */
struct fake_answer {
    int answers;
    bool ok;
    char code[FAKE_TEXT];
    char message[FAKE_TEXT];
    uint8_t data[FAKE_TEXT];
    uint32_t data_len;
};

struct fake_emit {
    char type[FAKE_TEXT];
    uint8_t data[FAKE_TEXT];
    uint32_t data_len;
};

struct session *fake_session_new(void);
void fake_session_free(struct session *s);
void fake_session_set_ready(struct session *s, bool ready);
/* The next `count` session_emit() calls fail with rc (e.g. EMIT_FAILED). */
void fake_session_fail_emits(struct session *s, int rc, int count);
size_t fake_session_request_count(const struct session *s);
struct fake_request *fake_session_request(struct session *s, size_t i);
/* Plays the server's answer to request i: its callback runs (once). */
void fake_session_complete(struct session *s, size_t i, int code, const char *data_msgpack,
                           uint32_t data_len);
size_t fake_session_cancels(const struct session *s);
/* A new inbound request; its answers are recorded in fake_session_answer(s, i). */
struct session_inbound *fake_session_inbound(struct session *s, size_t *index);
const struct fake_answer *fake_session_answer(const struct session *s, size_t i);
size_t fake_session_emit_count(const struct session *s);
const struct fake_emit *fake_session_emit(const struct session *s, size_t i);
unsigned fake_session_handlers_changed(const struct session *s);
/* What session_handler_room() answers (default: 1 MiB). */
void fake_session_set_handler_room(struct session *s, size_t room);

#endif
