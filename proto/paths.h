/* Where broker and clients meet when nothing is configured: the default
 * socket path of PROTOCOL.md ("Transport"). One function, so the broker,
 * libvoltclient and volt-inspect can never disagree about it. */
#ifndef PROTO_PATHS_H
#define PROTO_PATHS_H

#include <stddef.h>

#define PROTO_ROOT_SOCKET "/run/volt/broker.sock"

/* /run/volt/broker.sock for root; $XDG_RUNTIME_DIR/volt/broker.sock when
 * that variable holds an absolute path; else /tmp/volt-UID/broker.sock.
 * (Clients check $VOLT_BROKER_SOCKET before calling this.) Writes a
 * NUL-terminated path into buf. 0, or -ENAMETOOLONG. */
int proto_default_socket_path(char *buf, size_t size);

#endif
