/* Where broker and clients meet when nothing is configured: the default
 * socket paths of PROTOCOL.md ("Transport"). One module, so the broker,
 * libvoltclient and volt-inspect can never disagree about them.
 *
 * There are two rules, because the two sides ask different questions:
 *
 * - The broker asks "where do I listen?" and answers from who it runs as:
 *   root gets the system socket, anyone else a per-user socket in their
 *   runtime directory (proto_default_socket_path).
 * - A client asks "where is the broker I should talk to?" A service that is
 *   not root used to look only for a per-user socket, while the broker
 *   that is actually running is usually the system one: every service had
 *   to be told the path. So the client rule is $VOLT_BROKER_SOCKET when set;
 *   else the per-user socket when one exists (a broker this user started
 *   by hand, with its defaults); else the system socket
 *   (proto_client_socket_path). "Exists" means a socket file is there; a
 *   stale one left by a dead broker is reported by the connect that
 *   follows, not guessed at here.
 */
#ifndef PROTO_PATHS_H
#define PROTO_PATHS_H

#include <stddef.h>

#define PROTO_ROOT_SOCKET "/run/volt/broker.sock"
/* The environment variable that names the broker socket for clients. */
#define PROTO_SOCKET_ENV "VOLT_BROKER_SOCKET"

/* The per-user socket of uid: $runtime_dir/volt/broker.sock when
 * runtime_dir (XDG_RUNTIME_DIR) is an absolute path, else
 * /tmp/volt-UID/broker.sock. runtime_dir may be NULL. 0, or -ENAMETOOLONG. */
int proto_user_socket_path(char *buf, size_t size, const char *runtime_dir, unsigned uid);

/* The broker's listening default: /run/volt/broker.sock for root, else the
 * per-user socket of the effective uid. 0, or -ENAMETOOLONG. */
int proto_default_socket_path(char *buf, size_t size);

/* The client rule with every input given: env_socket (the value of
 * $VOLT_BROKER_SOCKET, NULL or "" when unset) wins; else, for a uid other
 * than root, the per-user socket when a socket file exists there; else
 * /run/volt/broker.sock. 0, or -ENAMETOOLONG. */
int proto_client_socket_path_for(char *buf, size_t size, const char *env_socket,
                                 const char *runtime_dir, unsigned uid);

/* The client rule for this process ($VOLT_BROKER_SOCKET, $XDG_RUNTIME_DIR,
 * the effective uid). 0, or -ENAMETOOLONG. */
int proto_client_socket_path(char *buf, size_t size);

#endif
