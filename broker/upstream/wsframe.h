/* WebSocket framing (RFC 6455) for the client side, as a pure codec: bytes
 * in, events out; frames out into a caller's buffer. No sockets, no loop,
 * no clock, no randomness (masking keys come from the caller).
 *
 * Receiving. wsframe_parse() is given the bytes not consumed yet and
 * returns how many it consumed and one event: a whole message, a ping, a
 * pong, a Close, an error, or "need more" (with how many bytes the frame
 * under way needs in all, so that the caller can size its buffer). A
 * message that came as one frame is handed out in place, pointing into
 * the caller's bytes (no copy); only a fragmented message is copied, into
 * the parser's reassembly buffer. Control frames may come between the
 * fragments of a message, as the RFC allows.
 *
 * What a server may not send is an error whose `code` is the Close status
 * to answer with: 1002 (protocol error: reserved bits, unknown opcodes, a
 * masked frame, a control frame fragmented or over 125 bytes, a
 * continuation with nothing to continue or a new message before the last
 * one ended, a Close with a 1-byte body or a code nobody may send), 1007
 * (a text message or Close reason that is not UTF-8) or 1009 (a message
 * over the limit; known from the header, before its payload arrives).
 * Errors are sticky: the parser gives the same one again.
 *
 * UTF-8 is checked once per text message, whole (a code point may be split
 * between fragments), with an ASCII fast path a word at a time.
 *
 * Sending. wsframe_put_header() writes a frame header with the masking key
 * given; wsframe_mask() masks the payload in place, eight bytes at a time.
 * Messages are sent unfragmented: the caller writes the header and the
 * payload after it and masks the payload.
 */
#ifndef UPSTREAM_WSFRAME_H
#define UPSTREAM_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wsframe_opcode {
    WSFRAME_OP_CONTINUATION = 0x0,
    WSFRAME_OP_TEXT = 0x1,
    WSFRAME_OP_BINARY = 0x2,
    WSFRAME_OP_CLOSE = 0x8,
    WSFRAME_OP_PING = 0x9,
    WSFRAME_OP_PONG = 0xa,
};

/* Close status codes used here. */
#define WSFRAME_CLOSE_NORMAL       1000
#define WSFRAME_CLOSE_PROTOCOL     1002
#define WSFRAME_CLOSE_NO_STATUS    1005 /* received a Close without a code */
#define WSFRAME_CLOSE_ABNORMAL     1006 /* never on the wire */
#define WSFRAME_CLOSE_INVALID_DATA 1007
#define WSFRAME_CLOSE_TOO_BIG      1009

/* The longest header: 2 + 8 (64-bit length) + 4 (mask). */
#define WSFRAME_MAX_HEADER 14
/* The longest control frame payload. */
#define WSFRAME_MAX_CONTROL 125

enum wsframe_kind {
    WSFRAME_NEED_MORE, /* nothing whole yet: feed more bytes */
    WSFRAME_MESSAGE,   /* data, len, binary */
    WSFRAME_PING,      /* data, len: answer with a pong of the same payload */
    WSFRAME_PONG,      /* data, len */
    WSFRAME_CLOSE,     /* code (1005: none given), data, len: the reason (UTF-8) */
    WSFRAME_ERROR,     /* code: the Close status to send; error: why */
};

struct wsframe_event {
    enum wsframe_kind kind;
    bool binary;
    /* MESSAGE: into the bytes given to wsframe_parse() (one frame) or into
     * the parser's buffer (reassembled, then followed by a 0 byte); valid
     * until the next call or until those bytes change. */
    const uint8_t *data;
    size_t len;
    uint16_t code;
    const char *error; /* static text */
    /* NEED_MORE: bytes from the first one not consumed that the frame
     * under way needs in all, when its header is known (else 0). */
    size_t need;
};

struct wsframe_parser;

/* A parser for one connection; max_message bounds a message's payload
 * (reassembled or not). NULL on out of memory. */
struct wsframe_parser *wsframe_parser_new(size_t max_message);
void wsframe_parser_free(struct wsframe_parser *p);

/* Parses from in[0..len): returns the bytes consumed (they are done with,
 * except that a MESSAGE's data may point into them) and fills *ev. Call it
 * again on what follows until it says NEED_MORE. On out of memory
 * (reassembly) the event is ERROR with code 1011. */
size_t wsframe_parse(struct wsframe_parser *p, const uint8_t *in, size_t len,
                     struct wsframe_event *ev);

/* Bytes the reassembly buffer holds now (for memory accounting), and a way
 * to let it go while no fragmented message is under way. */
size_t wsframe_parser_buffered(const struct wsframe_parser *p);
void wsframe_parser_trim(struct wsframe_parser *p);

/* Writes the header of a masked frame (FIN set) with a payload of len bytes
 * and returns its length (6..14). out must have WSFRAME_MAX_HEADER bytes. */
size_t wsframe_put_header(uint8_t *out, enum wsframe_opcode opcode, uint64_t len,
                          const uint8_t key[4]);

/* XORs data[0..len) with the key, as if it started at byte `offset` of the
 * payload (so a payload may be masked in pieces). */
void wsframe_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset);
/* The same while copying: dst = src ^ key, in one pass (dst may be src). */
void wsframe_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                       size_t offset);

/* Writes the body of a Close frame (code, then the reason cut to fit 123
 * bytes at a UTF-8 boundary) and returns its length. out: 125 bytes. */
size_t wsframe_put_close_body(uint8_t *out, uint16_t code, const char *reason);

/* True for the codes an endpoint may put in a Close frame (RFC 6455 7.4,
 * IANA registry: 1000-1003, 1007-1014, 3000-4999). */
bool wsframe_close_code_valid(unsigned code);

/* True when s[0..len) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
bool wsframe_utf8_valid(const uint8_t *s, size_t len);

#endif
