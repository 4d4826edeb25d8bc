/* Text that travels upstream: what a string must be before the broker
 * accepts it from a local client, so that it can always be written into
 * the server's JSON. Pure: no I/O, no allocation.
 *
 * Checking at the edge (when a client submits a name) rather than when a
 * packet is built means a bad name is refused to the client that sent it,
 * instead of breaking a packet that carries everyone's names later (the
 * handler list in daemon:register is built from all clients at once).
 */
#ifndef PROTO_TEXT_H
#define PROTO_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if there is none
 * (overlong forms, UTF-16 surrogates and code points past U+10FFFF are
 * invalid, RFC 3629). n must be at least 1. */
size_t proto_utf8_seq(const uint8_t *s, size_t n);

/* True when s[0..n) is valid UTF-8 (an empty string is). */
bool proto_utf8_valid(const uint8_t *s, size_t n);

/* True when s[0..n) is a usable name (a command, a message type, an error
 * code): 1..max bytes of valid UTF-8 without control characters (C0, DEL,
 * C1), so it reads on one line in logs and survives any JSON encoder. */
bool proto_name_valid(const uint8_t *s, size_t n, size_t max);

/* Bytes of s[0..n) (valid UTF-8) written as a JSON string: the quotes,
 * and each of '"' and '\\' escaped with a backslash, control characters
 * as \uXXXX at worst. Names checked by proto_name_valid() need no \u. */
size_t proto_json_str_size(const uint8_t *s, size_t n);

#endif
