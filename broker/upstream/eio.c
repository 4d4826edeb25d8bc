/* Engine.IO v4 packet codec for the WebSocket transport. See eio.h. */
#include "upstream/eio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "proto/errors.h"

static int fail(const char **why, const char *reason, int code)
{
    if (why)
        *why = reason;
    return code;
}

int eio_decode(const uint8_t *msg, size_t len, bool binary, struct eio_packet *out,
               const char **why)
{
    if (binary) {
        /* v4 sends attachments as they are: no type byte to strip. */
        out->type = EIO_MESSAGE;
        out->binary = true;
        out->data = msg;
        out->len = len;
        return 0;
    }
    if (len == 0)
        return fail(why, "empty Engine.IO text packet", PROTO_E_BAD_FRAME);
    if (msg[0] < '0' || msg[0] > '6')
        return fail(why, "unknown Engine.IO packet type", PROTO_E_BAD_FRAME);
    out->type = (enum eio_packet_type)(msg[0] - '0');
    out->binary = false;
    out->data = msg + 1;
    out->len = len - 1;
    return 0;
}

const char *eio_type_name(int type)
{
    static const char *const names[] = {"open",    "close",   "ping", "pong",
                                        "message", "upgrade", "noop"};
    if (type < 0 || type > EIO_NOOP)
        return "unknown";
    return names[type];
}

/* An integer-valued JSON number in [lo, hi]. cJSON keeps numbers as
 * doubles, which is exact for every integer up to 2^53: enough for ms and
 * byte counts, and the same range the server (JavaScript) has. */
static bool json_int_in(const cJSON *item, double lo, double hi, double *v)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
        return false;
    *v = d;
    return true;
}

static unsigned transport_bit(const char *name)
{
    if (strcmp(name, "polling") == 0)
        return EIO_UPGRADE_POLLING;
    if (strcmp(name, "websocket") == 0)
        return EIO_UPGRADE_WEBSOCKET;
    if (strcmp(name, "webtransport") == 0)
        return EIO_UPGRADE_WEBTRANSPORT;
    return EIO_UPGRADE_OTHER;
}

static int parse_handshake_object(const cJSON *root, struct eio_handshake *hs, const char **why)
{
    if (!cJSON_IsObject(root))
        return fail(why, "handshake is not a JSON object", PROTO_E_BAD_FRAME);

    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(root, "sid");
    if (!sid)
        return fail(why, "handshake has no sid", PROTO_E_BAD_FRAME);
    if (!cJSON_IsString(sid) || !sid->valuestring)
        return fail(why, "handshake sid is not a string", PROTO_E_BAD_FRAME);
    size_t sid_len = strlen(sid->valuestring);
    if (sid_len == 0)
        return fail(why, "handshake sid is empty", PROTO_E_BAD_FRAME);
    if (sid_len > EIO_SID_MAX)
        return fail(why, "handshake sid is too long", PROTO_E_BAD_FRAME);
    for (size_t i = 0; i < sid_len; i++) {
        unsigned char c = (unsigned char)sid->valuestring[i];
        /* It ends up in log lines: no control bytes, no odd encodings. */
        if (c < 0x21 || c > 0x7e)
            return fail(why, "handshake sid has a non-printable character", PROTO_E_BAD_FRAME);
    }

    const cJSON *upgrades = cJSON_GetObjectItemCaseSensitive(root, "upgrades");
    if (!upgrades)
        return fail(why, "handshake has no upgrades", PROTO_E_BAD_FRAME);
    if (!cJSON_IsArray(upgrades))
        return fail(why, "handshake upgrades is not an array", PROTO_E_BAD_FRAME);
    unsigned bits = 0;
    const cJSON *u;
    cJSON_ArrayForEach(u, upgrades)
    {
        if (!cJSON_IsString(u) || !u->valuestring)
            return fail(why, "handshake upgrades holds a non-string", PROTO_E_BAD_FRAME);
        bits |= transport_bit(u->valuestring);
    }

    double interval, timeout, max_payload = EIO_DEFAULT_MAX_PAYLOAD;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "pingInterval");
    if (!item)
        return fail(why, "handshake has no pingInterval", PROTO_E_BAD_FRAME);
    if (!json_int_in(item, 1, INT32_MAX, &interval))
        return fail(why, "handshake pingInterval is not an integer in 1..2^31-1",
                    PROTO_E_BAD_FRAME);
    item = cJSON_GetObjectItemCaseSensitive(root, "pingTimeout");
    if (!item)
        return fail(why, "handshake has no pingTimeout", PROTO_E_BAD_FRAME);
    if (!json_int_in(item, 1, INT32_MAX, &timeout))
        return fail(why, "handshake pingTimeout is not an integer in 1..2^31-1", PROTO_E_BAD_FRAME);
    item = cJSON_GetObjectItemCaseSensitive(root, "maxPayload");
    if (item && !json_int_in(item, 1, 9007199254740992.0, &max_payload))
        return fail(why, "handshake maxPayload is not an integer in 1..2^53", PROTO_E_BAD_FRAME);

    /* All checked: only now touch the caller's struct. */
    memcpy(hs->sid, sid->valuestring, sid_len + 1);
    hs->sid_len = sid_len;
    hs->upgrades = bits;
    hs->ping_interval_ms = (uint32_t)interval;
    hs->ping_timeout_ms = (uint32_t)timeout;
    hs->max_payload = (uint64_t)max_payload;
    hs->has_max_payload = item != NULL;
    return 0;
}

int eio_parse_handshake(const uint8_t *json, size_t len, struct eio_handshake *hs, const char **why)
{
    if (len == 0)
        return fail(why, "open packet has no handshake", PROTO_E_BAD_FRAME);
    /* cJSON stops at a NUL; a JSON text never holds a raw one, so a NUL
     * inside the span means garbage that cJSON would otherwise cut short. */
    if (memchr(json, '\0', len))
        return fail(why, "handshake holds a NUL byte", PROTO_E_BAD_FRAME);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)json, len, &end, 0);
    if (!root) {
        /* cJSON cannot tell a parse error from an allocation failure; the
         * handshake is tiny, so blame the input. */
        return fail(why, "handshake is not valid JSON", PROTO_E_BAD_FRAME);
    }
    const char *stop = (const char *)json + len;
    while (end && end < stop && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    int r;
    if (end != stop)
        r = fail(why, "trailing bytes after the handshake JSON", PROTO_E_BAD_FRAME);
    else
        r = parse_handshake_object(root, hs, why);
    cJSON_Delete(root);
    return r;
}

int eio_encode_text(struct proto_buf *b, enum eio_packet_type type, const void *data, size_t n)
{
    if ((int)type < EIO_OPEN || (int)type > EIO_NOOP)
        return PROTO_E_BAD_REQUEST;
    if (proto_buf_reserve(b, n + 1) < 0)
        return PROTO_E_NOMEM;
    b->data[b->len++] = (uint8_t)('0' + type);
    if (n) {
        memcpy(b->data + b->len, data, n);
        b->len += n;
    }
    return (int)(n + 1);
}

int eio_encode_pong(struct proto_buf *b)
{
    return proto_buf_append_byte(b, '0' + EIO_PONG) < 0 ? PROTO_E_NOMEM : 1;
}

int eio_encode_message_prefix(struct proto_buf *b)
{
    return proto_buf_append_byte(b, '0' + EIO_MESSAGE) < 0 ? PROTO_E_NOMEM : 1;
}

#define EIO_DEFAULT_PATH "/socket.io/"
#define EIO_QUERY        "?EIO=4&transport=websocket"

int eio_handshake_path(struct proto_buf *b, const char *path)
{
    if (!path || !*path)
        path = EIO_DEFAULT_PATH;
    size_t len = strlen(path);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return PROTO_E_BAD_REQUEST;
    }
    /* Keep the body between the leading and the trailing slashes. */
    const char *body = path;
    while (len && body[len - 1] == '/')
        len--;
    while (len && *body == '/') {
        body++;
        len--;
    }
    size_t total = 1 + len + (len ? 1 : 0) + (sizeof EIO_QUERY - 1);
    if (total > (size_t)INT32_MAX)
        return PROTO_E_BAD_REQUEST;
    /* +1: room for the terminating NUL kept past b->len. */
    if (proto_buf_reserve(b, total + 1) < 0)
        return PROTO_E_NOMEM;
    uint8_t *p = b->data + b->len;
    *p++ = '/';
    if (len) {
        memcpy(p, body, len);
        p += len;
        *p++ = '/';
    }
    memcpy(p, EIO_QUERY, sizeof EIO_QUERY - 1);
    p += sizeof EIO_QUERY - 1;
    *p = '\0';
    b->len += total;
    return (int)total;
}
