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
 * invalid, RFC 3629). n must be at least 1. Inline: the JSON codec's
 * string loops call it per multi-byte character. */
static inline size_t proto_utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

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
