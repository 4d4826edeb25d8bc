/* controlSocketUrl -> where to connect and which Socket.IO namespace.
 *
 * The contract (volt-upstream-protocol.md, section 2) reads the URL the way
 * socket.io-client does: scheme and authority name the server, the path is
 * the namespace, not an HTTP path ("wss://host:9000/control" connects to
 * host:9000 and joins "/control"; the Engine.IO path is configured apart).
 * http/https are accepted as aliases of ws/wss.
 *
 * Pure and allocation-free: the parts land in fixed arrays of the caller's
 * struct. Anything this module cannot represent exactly is refused with a
 * sentence for the operator rather than guessed at: user info (it would put
 * a secret into a config value that gets logged), query strings, fragments,
 * IPv6 zone ids, out-of-range ports, bytes outside printable ASCII.
 */
#ifndef UPSTREAM_URL_H
#define UPSTREAM_URL_H

#include <stdbool.h>
#include <stdint.h>

/* Longest DNS name (253) with room to spare; an IPv6 literal fits easily. */
#define URL_HOST_MAX 255
#define URL_PATH_MAX 1023

struct url_parts {
    bool tls;          /* wss:// or https:// */
    bool host_is_ipv6; /* host was a bracketed IPv6 literal */
    uint16_t port;     /* explicit, else 80 (ws/http) or 443 (wss/https) */
    /* Host name or address, without the brackets of an IPv6 literal. */
    char host[URL_HOST_MAX + 1];
    /* The Socket.IO namespace: the URL path verbatim, "/" when it has none. */
    char path[URL_PATH_MAX + 1];
};

/* Parses `text` into *out. 0, or -EINVAL with *error (when error is not
 * NULL) pointing at a static sentence saying what is wrong; *out is then
 * unspecified. The sentence never quotes the input. */
int url_parse(const char *text, struct url_parts *out, const char **error);

#endif
