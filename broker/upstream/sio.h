/* Socket.IO v5 packets (the payload of an Engine.IO `message`): a pure codec
 * plus the reassembly of binary packets.
 *
 * Wire format of one packet, as socket.io-parser 4.x writes it:
 *
 *     <type>[<attachments>-][<nsp>,][<ack id>][<JSON data>]
 *
 *   type         one digit, CONNECT(0) .. BINARY_ACK(6)
 *   attachments  BINARY_EVENT/BINARY_ACK only: decimal count >= 1, then '-'
 *   nsp          only when not the main namespace "/": starts with '/',
 *                always followed by ',' (even when nothing follows, as in
 *                `41/control,` or `40/control,`)
 *   ack id       decimal, when the sender wants an ACK (and in every ACK)
 *   data         JSON: an object for CONNECT (the auth payload, or the
 *                server's {"sid":...}), an array for EVENT/ACK, an object
 *                or string for CONNECT_ERROR, nothing for DISCONNECT
 *
 * Binary values travel out of band: the JSON holds
 * {"_placeholder":true,"num":N} and the packet's N attachments follow as the
 * next N binary WebSocket messages, in order. `struct sio_assembler` glues
 * them back together; the JSON itself is never parsed here (the session
 * parses it once, with the placeholders, and looks attachments up by num).
 *
 * Decoding is a single pass over the header and never allocates: namespace
 * and data are spans into the input. The data is checked for its outer
 * shape only (first and last byte) so that a truncated or mis-typed packet
 * fails here, with a reason, rather than deep in the session. Encoding
 * writes only the header: the session appends the JSON straight after it in
 * the same buffer, so an outgoing packet is never copied.
 *
 * Return values: 0 or a positive count on success, a negative
 * `enum proto_error` on failure (PROTO_E_BAD_FRAME for malformed input,
 * PROTO_E_LIMIT_EXCEEDED for input over a `struct sio_limits` bound,
 * PROTO_E_NOMEM, PROTO_E_BAD_REQUEST for a bad encoder argument).
 */
#ifndef BROKER_UPSTREAM_SIO_H
#define BROKER_UPSTREAM_SIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

enum sio_packet_type {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
};

/* Plain-field limits, like hiredis' reader: the caller may change them. */
struct sio_limits {
    uint32_t max_attachments;    /* per packet (socket.io-parser's default: 10) */
    size_t max_nsp_len;          /* bytes, the leading '/' included */
    size_t max_attachment_bytes; /* all attachments of one packet, summed */
};

/* 10 is socket.io-parser's own maxAttachments (the peers refuse more
 * anyway); a namespace is short ("/control"); 16 MiB bounds what one binary
 * packet may pin in memory while it is reassembled. */
/* clang-format off */
#define SIO_LIMITS_DEFAULT {.max_attachments = 10, .max_nsp_len = 256, \
                            .max_attachment_bytes = (size_t)16 << 20}
/* clang-format on */

/* One decoded packet. Spans are not NUL-terminated and live as long as the
 * decoded message (the main namespace is a static "/"). */
struct sio_packet {
    enum sio_packet_type type;
    uint32_t attachments; /* >= 1 for BINARY_*, 0 otherwise */
    const char *nsp;      /* "/" when absent on the wire */
    size_t nsp_len;
    bool has_ack_id;
    uint64_t ack_id;
    const char *data; /* raw JSON text; NULL (and data_len 0) when absent */
    size_t data_len;
};

/* Decodes one Socket.IO packet (the data of an Engine.IO text `message`).
 * `lim` NULL means SIO_LIMITS_DEFAULT. Stricter than socket.io-parser where
 * it is lenient by accident (it takes counts such as "0x1" or " 1", ack ids
 * on CONNECT, blanks around the JSON) and just as lenient where that is
 * harmless (leading zeros in numbers; a namespace that ends the packet
 * without its ',', "1/admin"). Rules:
 *   - attachments: digits only, 1..max_attachments, then '-'
 *   - nsp: printable bytes (no control characters), <= max_nsp_len
 *   - ack id: digits, fits in 64 bits; required on ACK/BINARY_ACK, refused
 *     on CONNECT/DISCONNECT/CONNECT_ERROR
 *   - data: CONNECT {..} or none; DISCONNECT none; EVENT/BINARY_EVENT a
 *     non-empty [..]; ACK/BINARY_ACK [..]; CONNECT_ERROR {..}, "..", or none
 * 0, or a negative error with a static reason in `*why` (when non-NULL). */
int sio_decode(const struct sio_limits *lim, const void *msg, size_t len, struct sio_packet *out,
               const char **why);

/* True when the packet's namespace is `nsp` (NULL or "" mean "/"). */
bool sio_nsp_equals(const struct sio_packet *p, const char *nsp);

/* Printable name of a packet type ("BINARY_EVENT"), "UNKNOWN" outside the enum. */
const char *sio_type_name(int type);

/* Appends a packet header: type, "<attachments>-" for the BINARY_* types,
 * "<nsp>," for a namespace other than "/", then the ack id. The caller
 * appends the JSON data (if any) right after, e.g.
 *   sio_encode_header(b, SIO_EVENT, "/control", &id, 0)    ->  2/control,17
 *   sio_encode_header(b, SIO_BINARY_EVENT, "/control", NULL, 1) -> 51-/control,
 *   sio_encode_header(b, SIO_DISCONNECT, "/control", NULL, 0)   ->  1/control,
 *   sio_encode_header(b, SIO_CONNECT, "/", NULL, 0)             ->  0
 * `nsp`: NULL, "" or "/" for the main namespace; otherwise it starts with
 * '/' and holds no ',' and no control character. `ack_id`: NULL for none;
 * required for ACK/BINARY_ACK, refused for CONNECT/DISCONNECT/CONNECT_ERROR.
 * `attachments`: >= 1 for the BINARY_* types, 0 for the others.
 * Returns the bytes appended, PROTO_E_BAD_REQUEST (buffer unchanged),
 * PROTO_E_NOMEM (buffer unchanged). */
int sio_encode_header(struct proto_buf *b, enum sio_packet_type type, const char *nsp,
                      const uint64_t *ack_id, uint32_t attachments);

/* ---- Binary reassembly ------------------------------------------------ */

struct sio_bytes {
    const uint8_t *data;
    size_t len;
};

/* A complete packet. For BINARY_* packets `attachments` holds
 * packet.attachments entries, in order (entry N is placeholder num N). */
struct sio_message {
    struct sio_packet packet;
    const struct sio_bytes *attachments; /* NULL when packet.attachments is 0 */
};

/* Feed it every Engine.IO `message` of one connection, in order, text
 * (the Socket.IO packet) and binary alike. A text packet without
 * attachments comes straight back out; a BINARY_EVENT/BINARY_ACK header is
 * held, with copies of the next N binary messages (the WebSocket layer's
 * buffers do not outlive its callback), and comes out after the last one.
 *
 * Memory: the header copy, the attachment bytes and the span array live in
 * buffers owned by the assembler and reused for every packet, so once they
 * have grown to the working size nothing is allocated. They only grow up to
 * the limits: attachment bytes are bounded by max_attachment_bytes.
 *
 * The struct is caller-allocated (embed it in the connection); treat every
 * field as private except `limits` (may be changed between packets) and
 * `error`. */
struct sio_assembler {
    struct sio_limits limits;
    const char *error; /* static reason of the last failed feed, else NULL */

    /* private */
    struct sio_packet pending; /* held header; spans into `header` */
    uint32_t received;         /* attachments copied so far */
    bool collecting;
    struct proto_buf header; /* copy of the held header message */
    struct proto_buf bytes;  /* attachment bytes, back to back */
    struct sio_bytes *spans; /* lengths while collecting, spans once complete */
    uint32_t spans_cap;
};

/* `lim` NULL means SIO_LIMITS_DEFAULT. Allocates nothing. */
void sio_assembler_init(struct sio_assembler *a, const struct sio_limits *lim);
/* Frees the buffers; the assembler is as after init (limits kept). */
void sio_assembler_free(struct sio_assembler *a);
/* Drops a partly received packet (e.g. on reconnect), keeps the memory. */
void sio_assembler_reset(struct sio_assembler *a);
/* True while attachments of a held packet are still expected. */
bool sio_assembler_pending(const struct sio_assembler *a);

#define SIO_ASM_MORE  0 /* consumed; no complete packet yet */
#define SIO_ASM_READY 1 /* *out holds a complete packet */

/* Feeds one Engine.IO message: a text message's data after the "4", or a
 * binary message's bytes (`binary` true). On SIO_ASM_READY, *out is valid
 * until the next feed, reset or free of this assembler (for a packet with no
 * attachments its spans point into `msg` itself, so they also last no longer
 * than the caller's message).
 * Errors (the assembler is reset and `error` says why): everything
 * sio_decode() refuses; a binary message when no attachment is expected and
 * a text message while attachments are pending (PROTO_E_BAD_FRAME); the
 * attachments outgrowing max_attachment_bytes (PROTO_E_LIMIT_EXCEEDED);
 * PROTO_E_NOMEM. */
int sio_assembler_feed(struct sio_assembler *a, const void *msg, size_t len, bool binary,
                       struct sio_message *out);

#endif
