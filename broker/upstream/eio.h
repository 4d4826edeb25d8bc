/* Engine.IO v4 over WebSocket: the packet codec (pure: bytes in, values out).
 *
 * With the WebSocket transport Engine.IO has no framing of its own: each
 * WebSocket message is exactly one packet. A text message is a one-digit
 * packet type followed by the packet data ("2" is a ping, "4..." a message
 * carrying a Socket.IO packet); a binary message is a `message` packet whose
 * data is the whole message (v4 dropped v3's leading type byte). There is
 * no HTTP long-polling here, so the payload format (packets joined by
 * '\x1e') and the upgrade dance never appear: the broker opens the
 * WebSocket directly with `{path}?EIO=4&transport=websocket`.
 *
 * Decoding never allocates: packet data is a span into the caller's
 * message. The handshake (once per connection) is parsed with cJSON into a
 * plain struct. Encoders append to a caller-owned `struct proto_buf`.
 *
 * Return values: 0 or a positive byte count on success, a negative
 * `enum proto_error` on failure. Decoders that can fail take an optional
 * `const char **why` that receives a static English reason.
 */
#ifndef BROKER_UPSTREAM_EIO_H
#define BROKER_UPSTREAM_EIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

enum eio_packet_type {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
};

/* One decoded packet. `data` points into the decoded message (not
 * NUL-terminated) and lives as long as it: copy what must outlive it. */
struct eio_packet {
    enum eio_packet_type type;
    bool binary; /* a binary WebSocket message: type is EIO_MESSAGE */
    const uint8_t *data;
    size_t len;
};

/* Decodes one WebSocket message (`binary` tells its opcode). Text: the first
 * byte must be a known type digit, the rest is the data (possibly empty,
 * e.g. "2"; "3probe" keeps "probe"). Binary: any bytes, even none (an empty
 * Buffer attachment is an empty message).
 * 0, or PROTO_E_BAD_FRAME (empty text message, unknown type). */
int eio_decode(const uint8_t *msg, size_t len, bool binary, struct eio_packet *out,
               const char **why);

/* Printable name of a packet type ("ping"), "unknown" outside the enum. */
const char *eio_type_name(int type);

/* Engine.IO session ids are 20 characters today; the bound leaves room and
 * keeps the struct self-contained (no allocation to free). */
#define EIO_SID_MAX 64
/* The server's maxHttpBufferSize default: what an old server that does not
 * announce maxPayload enforces. */
#define EIO_DEFAULT_MAX_PAYLOAD 1000000u

/* Transports named in the handshake's `upgrades` (bits of `upgrades`). Over
 * a WebSocket the server offers none; kept for logging and diagnostics. */
#define EIO_UPGRADE_POLLING      (1u << 0)
#define EIO_UPGRADE_WEBSOCKET    (1u << 1)
#define EIO_UPGRADE_WEBTRANSPORT (1u << 2)
#define EIO_UPGRADE_OTHER        (1u << 7)

struct eio_handshake {
    char sid[EIO_SID_MAX + 1]; /* NUL-terminated */
    size_t sid_len;
    unsigned upgrades; /* EIO_UPGRADE_* bits */
    uint32_t ping_interval_ms;
    uint32_t ping_timeout_ms;
    uint64_t max_payload; /* bytes per packet the server accepts */
    bool has_max_payload; /* false: absent (servers before 4.1), the default is used */
};

/* Parses the data of the `open` packet (the JSON after "0"):
 *   {"sid":"...","upgrades":[...],"pingInterval":N,"pingTimeout":N,"maxPayload":N}
 * sid: non-empty printable ASCII, at most EIO_SID_MAX bytes. upgrades: array
 * of strings. pingInterval/pingTimeout: integers in 1..INT32_MAX (ms; the
 * range of a timer). maxPayload: optional, an integer in 1..2^53. Unknown
 * members are ignored (a newer server may add some).
 * 0, or PROTO_E_BAD_FRAME with `why` naming the field; PROTO_E_NOMEM. */
int eio_parse_handshake(const uint8_t *json, size_t len, struct eio_handshake *hs,
                        const char **why);

/* Appends the text packet `<type><data>`; data may be NULL when n is 0.
 * Returns the bytes appended, PROTO_E_BAD_REQUEST for a type outside the
 * enum, PROTO_E_NOMEM (buffer unchanged). */
int eio_encode_text(struct proto_buf *b, enum eio_packet_type type, const void *data, size_t n);
/* Appends "3": the answer to the server's ping "2". Returns 1 or PROTO_E_NOMEM. */
int eio_encode_pong(struct proto_buf *b);
/* Appends "4", the prefix of a text message packet: the caller appends the
 * Socket.IO packet right after it. Returns 1 or PROTO_E_NOMEM. */
int eio_encode_message_prefix(struct proto_buf *b);

/* Appends the request target of the WebSocket handshake,
 *   {path}?EIO=4&transport=websocket
 * `path` is the configured Engine.IO path; NULL or "" mean "/socket.io/".
 * It is normalised the way socket.io-client treats its `path` option: it
 * starts and ends with exactly one '/' ("socket.io", "/socket.io" and
 * "//socket.io//" all give "/socket.io/"; "/" stays "/"). A path holding '?', '#', a space, a
 * control character or a non-ASCII byte is refused (it would change the request line or need
 * escaping the server would not undo). The buffer's bytes are NUL-terminated after the call (the
 * NUL is not counted in b->len) so `(char *)b->data` is a C string when the buffer was empty.
 * Returns the bytes appended, PROTO_E_BAD_REQUEST, PROTO_E_NOMEM. */
int eio_handshake_path(struct proto_buf *b, const char *path);

#endif
