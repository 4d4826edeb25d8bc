/* The router: what local clients ask for, mapped onto the one upstream
 * session, and what the server sends, delivered to the right clients.
 *
 * Routing rules (the contract of PROTOCOL.md, in one place):
 *
 * - Outbound requests. A client's `request` becomes one session_request();
 *   the session promises exactly one result callback, which the router
 *   turns into exactly one `result` under the client's own id. A client
 *   may not reuse an id that is still in flight. When a client goes away
 *   its requests are released at once (session_cancel): no callback comes
 *   for them, the slots are free for others, and an answer the server
 *   sends later is dropped and counted by the session.
 * - Quotas: a request counts against the client's in-flight limit, its
 *   user's (quota.h) and the table's size (maxPending); its timeout is at
 *   most maxCommandTimeout.
 *
 * - Handlers form queue groups: a command maps to the list of clients that
 *   registered it, and each inbound request goes to the next one in
 *   round-robin order. The router answers upstream itself when no client
 *   can: NoHandler at once when nobody has the command, HandlerError at
 *   once when the client holding a call goes away, HandlerTimeout when the
 *   call's deadline passes. Every inbound request is answered exactly once:
 *   the call record is removed from every index before its answer is sent.
 *
 * - The handler list upstream is the union of live registrations; any
 *   change in that union (not in a single client's set) is announced.
 *
 * - Subscriptions are (match, type) filters per client; an inbound message
 *   goes once to each client with a matching filter.
 *
 * - Emits made while the upstream is not ready are kept (emitq.h), in
 *   order, charged to their client's memory, and sent once it is ready
 *   again; while any are kept, new emits queue behind them. A volatile
 *   emit is never kept: it fails at once instead.
 *
 * - Events (connected / disconnected / error) go to every client that has
 *   said hello.
 */
#ifndef LOCAL_ROUTER_H
#define LOCAL_ROUTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto/buf.h"
#include "proto/msg.h"
#include "upstream/session.h"

/* Longest command name a client may register (bytes). */
#define ROUTER_COMMAND_NAME_MAX 256

struct router;
struct quota;
struct peer;

/* The router's settings; router_set_params() changes them at run time
 * (SIGHUP), except max_pending, which sizes its tables at router_new(). */
struct router_params {
    uint32_t command_timeout_ms;     /* a request's timeout when it gives none */
    uint32_t max_command_timeout_ms; /* longer ones are lowered to this */
    uint32_t handler_timeout_ms;     /* a call's deadline (then HandlerTimeout) */
    uint32_t max_handlers_per_client;
    uint32_t max_subscriptions_per_client;
    uint32_t max_in_flight_per_client;
    uint32_t max_pending;
    uint32_t max_emit_buffer; /* bytes of emits kept while not ready; fixed at router_new */
};

struct router_counters {
    uint64_t inbound_no_handler, inbound_handler_error, inbound_timeout, inbound_answered;
    uint64_t late_replies, requests_released, slow_consumers;
    uint64_t emits_kept, emits_kept_sent, emits_kept_dropped;
};

/* quota: the broker's (requests are charged to their user); NULL: none. */
struct router *router_new(uv_loop_t *loop, const struct router_params *params, struct quota *quota);
void router_set_params(struct router *r, const struct router_params *params);
/* The session is created after the router (it needs the router's events). */
void router_set_session(struct router *r, struct session *s);
/* Answers every open call with HandlerError (or ShuttingDown) and frees. */
void router_free(struct router *r);

/* A client finished hello: it takes part in routing from now on. 0 or -ENOMEM. */
int router_peer_join(struct router *r, struct peer *p);
/* A client is going: its calls are answered HandlerError upstream, its
 * handlers and subscriptions are dropped, its requests are detached. */
void router_peer_leave(struct router *r, struct peer *p);

/* Handles request, emit, register, unregister, subscribe, unsubscribe and
 * reply. Returns false if the op is not a routing op. */
bool router_handle(struct router *r, struct peer *p, const struct proto_msg *m);

/* Session events. */
void router_inbound_request(struct router *r, struct session_inbound *in,
                            const struct proto_span *command, const struct proto_span *payload);
void router_inbound_message(struct router *r, const struct proto_span *type,
                            const struct proto_span *data);
int router_handler_list(struct router *r, struct proto_buf *out);
/* Drops the newest handlers (their registrants told with an `error`
 * frame, and logged by name) until the list's JSON takes at most `room`
 * bytes. For a server that lowered its maxPayload under a list that was
 * checked against the old one. */
void router_trim_handlers(struct router *r, size_t room);
/* Sends an event frame to every joined client. */
void router_broadcast(struct router *r, const struct proto_msg *m);
/* The upstream is registered again: kept emits go out, in order. */
void router_upstream_ready(struct router *r);
/* Bytes and number of emits kept for the upstream. */
size_t router_kept_emit_bytes(const struct router *r);

/* Number of calls not yet answered (for draining on shutdown). */
size_t router_open_calls(const struct router *r);
/* Answers every open call upstream with `code` (shutdown after the drain). */
void router_fail_open_calls(struct router *r, const char *code, const char *message);

/* Status: appends the "clients" array (msgpack) to out. */
int router_status_clients(const struct router *r, struct proto_buf *out);
size_t router_handler_count(const struct router *r);
/* Whether a client serves the command name[0..len) now. */
bool router_has_handler(const struct router *r, const uint8_t *name, size_t len);
size_t router_client_count(const struct router *r);
void router_get_counters(const struct router *r, struct router_counters *out);
/* Appends the per-client-name gauges and the latency histograms
 * (Prometheus text, util/metrics.h). 0 or PROTO_E_NOMEM. */
int router_metrics(const struct router *r, struct proto_buf *out);

#endif
