#include "upstream/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static int fail(const char **error, const char *why)
{
    if (error)
        *error = why;
    return -EINVAL;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Printable ASCII without the space: everything else (controls, space,
 * DEL, UTF-8 bytes) means a mangled config value. */
static bool is_visible_ascii(char c)
{
    return c > 0x20 && c < 0x7f;
}

static const struct {
    const char *name;
    bool tls;
    uint16_t port;
} schemes[] = {
    {"ws", false, 80},
    {"wss", true, 443},
    {"http", false, 80},
    {"https", true, 443},
};

static int parse_scheme(const char *text, size_t len, struct url_parts *out)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strlen(schemes[i].name) == len && strncasecmp(text, schemes[i].name, len) == 0) {
            out->tls = schemes[i].tls;
            out->port = schemes[i].port;
            return 0;
        }
    }
    return -EINVAL;
}

/* Decimal 1..65535, digits only (no sign, no spaces, no hex). */
static int parse_port(const char *p, size_t len, uint16_t *out)
{
    unsigned long value = 0;

    if (len == 0 || len > 5)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        value = value * 10 + (unsigned long)(p[i] - '0');
    }
    if (value == 0 || value > 65535)
        return -EINVAL;
    *out = (uint16_t)value;
    return 0;
}

/* A DNS name or an IPv4 address: letters, digits, '-', '.', '_' (the
 * last is not valid DNS but appears in container and compose names). */
static bool is_valid_name(const char *p, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum(p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_')
            return false;
    }
    return true;
}

static int parse_authority(const char *p, size_t len, struct url_parts *out, const char **error)
{
    const char *port_text = NULL;
    size_t port_len = 0;
    const char *host = p;
    size_t host_len;

    if (memchr(p, '@', len))
        return fail(error, "user info (user@host) is not allowed in the URL");

    if (len > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', len);
        struct in6_addr addr;

        if (!close)
            return fail(error, "unterminated IPv6 literal (missing ']')");
        host = p + 1;
        host_len = (size_t)(close - host);
        if (host_len == 0 || host_len > URL_HOST_MAX)
            return fail(error, "empty or overlong IPv6 literal");
        memcpy(out->host, host, host_len);
        out->host[host_len] = '\0';
        if (memchr(out->host, '%', host_len))
            return fail(error, "IPv6 zone ids are not supported");
        if (inet_pton(AF_INET6, out->host, &addr) != 1)
            return fail(error, "invalid IPv6 literal");
        out->host_is_ipv6 = true;
        const char *rest = close + 1;
        size_t rest_len = len - (size_t)(rest - p);
        if (rest_len > 0) {
            if (rest[0] != ':')
                return fail(error, "unexpected characters after the IPv6 literal");
            port_text = rest + 1;
            port_len = rest_len - 1;
        }
    } else {
        const char *colon = memchr(p, ':', len);

        host_len = colon ? (size_t)(colon - p) : len;
        if (colon) {
            port_text = colon + 1;
            port_len = len - host_len - 1;
        }
        if (host_len == 0)
            return fail(error, "missing host");
        if (!is_valid_name(host, host_len))
            return fail(error, "invalid host name (letters, digits, '-', '.' and '_' only; "
                               "IPv6 addresses go in brackets)");
        memcpy(out->host, host, host_len);
        out->host[host_len] = '\0';
    }

    if (port_text && parse_port(port_text, port_len, &out->port) < 0)
        return fail(error, "invalid port (expected a number from 1 to 65535)");
    return 0;
}

int url_parse(const char *text, struct url_parts *out, const char **error)
{
    const char *sep, *authority, *path;
    size_t len, authority_len, path_len;

    if (!text || !out)
        return fail(error, "no URL given");
    memset(out, 0, sizeof(*out));
    len = strlen(text);
    if (len == 0)
        return fail(error, "empty URL");
    for (size_t i = 0; i < len; i++) {
        if (!is_visible_ascii(text[i]))
            return fail(error, "URL contains spaces, control or non-ASCII characters");
    }

    sep = strstr(text, "://");
    if (!sep)
        return fail(error, "missing scheme (expected ws://, wss://, http:// or https://)");
    if (parse_scheme(text, (size_t)(sep - text), out) < 0)
        return fail(error, "unsupported scheme (expected ws, wss, http or https)");

    authority = sep + 3;
    authority_len = strcspn(authority, "/?#");
    if (parse_authority(authority, authority_len, out, error) < 0)
        return -EINVAL;

    path = authority + authority_len;
    path_len = strcspn(path, "?#");
    if (path[path_len] == '?')
        return fail(error, "query strings are not supported in the URL");
    if (path[path_len] == '#')
        return fail(error, "fragments (#...) are not supported in the URL");
    if (path_len == 0) {
        strcpy(out->path, "/");
        return 0;
    }
    if (path_len > URL_PATH_MAX)
        return fail(error, "URL path (namespace) is too long");
    memcpy(out->path, path, path_len);
    out->path[path_len] = '\0';
    return 0;
}
