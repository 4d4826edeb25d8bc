/* The broker: the listener, the peers, the router and the upstream
 * session on one libuv loop. main.c only parses the command line and runs
 * the loop; everything with a lifetime lives here.
 *
 * Shutdown (SIGTERM/SIGINT) in order: stop accepting; let in-flight
 * inbound calls finish for up to drainTimeout, then answer the rest with
 * HandlerError; close the upstream session cleanly; close every peer; and
 * only then let the loop run dry so uv_loop_close() succeeds.
 */
#ifndef BROKER_BROKER_H
#define BROKER_BROKER_H

#include <uv.h>

#include "config.h"

struct broker;

/* cfg must outlive the broker; it may be replaced by broker_reload(). */
struct broker *broker_new(uv_loop_t *loop, struct broker_config *cfg);
/* Binds the socket (or adopts a socket-activated fd) and starts the
 * session. 0, or negative errno with an explanation already logged. */
int broker_start(struct broker *b);
/* Begins the orderly shutdown above; the loop ends when it is complete. */
void broker_shutdown(struct broker *b, const char *why);
/* Applies what can change at run time (log level, limits, allowed peers)
 * from a freshly loaded config and logs what could not be applied. */
void broker_reload(struct broker *b, const struct broker_config *fresh);
void broker_free(struct broker *b);

#endif
