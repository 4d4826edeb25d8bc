/* systemd's notify protocol (sd_notify(3)) without linking libsystemd:
 * one datagram to $NOTIFY_SOCKET. Harmless when not run by systemd. */
#ifndef UTIL_SDNOTIFY_H
#define UTIL_SDNOTIFY_H

#include <stdint.h>

/* Sends "READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1", ... (several
 * lines allowed). 1 sent, 0 no NOTIFY_SOCKET, negative errno on failure. */
int sdnotify_send(const char *state);
/* Watchdog interval in ms asked for by systemd ($WATCHDOG_USEC, for this
 * pid), or 0. */
uint64_t sdnotify_watchdog_ms(void);

#endif
