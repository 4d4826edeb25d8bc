/* Exact msgpack <-> JSON transcoding, and a JSON tokenizer. Pure: no I/O.
 *
 * Why our own JSON code next to cJSON: cJSON keeps numbers as doubles, so
 * int64/uint64 would not survive, and it builds a tree per message. Here
 * JSON text is tokenized once into a caller-owned token array (reused, so
 * no allocation per message once it has grown), and any subtree can be
 * written out as msgpack straight from the tokens.
 *
 * Exactness rules:
 * - JSON integers that fit int64/uint64 become msgpack ints; other numbers
 *   become float64 (a number too large for a double is PROTO_E_BAD_FRAME).
 *   msgpack floats are written with the shortest text that reads back to
 *   the same double (float32: to the same float), laid out like JavaScript
 *   prints numbers, always with a '.' or exponent, so the type survives a
 *   round trip (1.0 is "1.0", 1e21 is "1e+21"). NaN/Infinity have no JSON
 *   form: PROTO_E_NOT_JSON.
 * - Strings are written as JSON.stringify writes them: \" \\ \b \t \n \f \r,
 *   other control characters as \u00xx, every other byte as is.
 * - Strings must be valid UTF-8 (msgpack side) / valid JSON with \u escapes
 *   decoded to UTF-8, lone surrogates rejected (JSON side).
 * - msgpack map keys must be strings (JSON has no other keys).
 * - Binary: depends on the mode (see enum proto_json_bin). ext types have
 *   no JSON form.
 */
#ifndef PROTO_JSON_H
#define PROTO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "msgpack.h"

enum proto_json_bin {
    /* bin -> {"$bin":"<base64>"}; that exact one-key object -> bin. For
     * people (volt-inspect) and JSON-only clients. */
    PROTO_JSON_BIN_MARKER,
    /* bin -> {"_placeholder":true,"num":N} with the bytes collected into
     * `attachments`; the reverse replaces placeholders by attachments[num].
     * This is Socket.IO's binary packet layout. */
    PROTO_JSON_BIN_PLACEHOLDER,
    /* bin is an error (PROTO_E_NOT_JSON). */
    PROTO_JSON_BIN_REJECT,
};

struct proto_json_error {
    int code;       /* PROTO_E_BAD_FRAME (malformed input), PROTO_E_NOT_JSON, PROTO_E_NOMEM, ... */
    size_t offset;  /* byte offset in the input where it was detected */
    char text[120]; /* English, e.g. "invalid UTF-8 in string at offset 17" */
};

struct proto_json_opts {
    enum proto_json_bin bin;
    uint32_t max_depth; /* 0 = PROTO_DEFAULT_MAX_DEPTH */
    /* PLACEHOLDER mode. msgpack->JSON: filled with spans into the msgpack
     * input, up to max_attachments (more is PROTO_E_LIMIT_EXCEEDED);
     * numbering starts at n_attachments (set it to 0 for a new packet, or
     * leave it to number several values of one packet in a row) and
     * n_attachments is the total on return (unchanged on error).
     * JSON->msgpack: the attachments to substitute, n_attachments of them;
     * a placeholder with an integer num out of range is PROTO_E_BAD_FRAME
     * (a non-integer num makes it an ordinary object). */
    struct proto_span *attachments;
    uint32_t max_attachments;
    uint32_t n_attachments;
};

/* Writes one msgpack value (data[0..len) must hold exactly one value; trailing
 * bytes are an error) as JSON text appended to out. 0 or negative code
 * (details in *err, which may be NULL). On error out->len is restored.
 * opts NULL means MARKER mode and the default depth. Errors:
 * PROTO_E_BAD_FRAME (malformed msgpack, deeper than max_depth),
 * PROTO_E_NOT_JSON (invalid UTF-8, non-string key, NaN/Inf, ext, bin in
 * REJECT mode; err->offset is the offending byte of data),
 * PROTO_E_LIMIT_EXCEEDED (attachments), PROTO_E_NOMEM. */
int proto_msgpack_to_json(const void *data, size_t len, struct proto_buf *out,
                          struct proto_json_opts *opts, struct proto_json_error *err);

/* Appends s[0..len) as a JSON string literal (quotes and escapes added).
 * s must be valid UTF-8: PROTO_E_NOT_JSON otherwise (out unchanged). For
 * callers that compose JSON around transcoded values (Socket.IO envelopes). */
int proto_json_put_string(struct proto_buf *out, const char *s, size_t len);

/* --- JSON tokenizer --- */

enum proto_json_type {
    PROTO_JSON_NULL,
    PROTO_JSON_FALSE,
    PROTO_JSON_TRUE,
    PROTO_JSON_NUMBER,
    PROTO_JSON_STRING, /* span excludes the quotes; escapes not yet decoded */
    PROTO_JSON_ARRAY,
    PROTO_JSON_OBJECT,
};

struct proto_json_token {
    uint8_t type;    /* enum proto_json_type */
    uint8_t escaped; /* STRING: contains a backslash escape */
    uint32_t start;  /* byte offset of the token's text */
    uint32_t len;    /* byte length of the text (for containers: up to the closing bracket) */
    uint32_t count;  /* ARRAY: elements, OBJECT: members (key+value pairs) */
    uint32_t next;   /* index of the token after this whole subtree */
};

/* Caller-owned, reusable token array: grows as needed up to max_tokens. */
struct proto_json_doc {
    struct proto_json_token *tok;
    uint32_t n;
    uint32_t cap;
    uint32_t max_tokens; /* 0 = unlimited (bounded by the input length);
                            more is PROTO_E_LIMIT_EXCEEDED */
    const char *text;    /* the input of the last parse (not owned) */
    size_t text_len;
};

void proto_json_doc_init(struct proto_json_doc *d);
void proto_json_doc_free(struct proto_json_doc *d);

/* Tokenizes exactly one JSON value (surrounding whitespace allowed). Object
 * keys are STRING tokens followed by their value's token. 0 or a negative
 * code with details in *err (malformed JSON or nesting deeper than
 * max_depth, 0 = PROTO_DEFAULT_MAX_DEPTH: PROTO_E_BAD_FRAME). Tokens stay
 * valid while `text` does. Allocates only to grow d->tok. */
int proto_json_parse(struct proto_json_doc *d, const char *text, size_t len, uint32_t max_depth,
                     struct proto_json_error *err);

/* Finds member `key` of the OBJECT token `obj`; returns its value's token
 * index, or -1. Compares decoded key text. */
int proto_json_find(const struct proto_json_doc *d, uint32_t obj, const char *key);

/* Decodes a STRING token into out (UTF-8, no NUL added). 0 or negative code. */
int proto_json_string(const struct proto_json_doc *d, uint32_t tok, struct proto_buf *out,
                      struct proto_json_error *err);
/* True when the STRING token equals `s` (decoded). */
int proto_json_string_eq(const struct proto_json_doc *d, uint32_t tok, const char *s);
/* NUMBER token as an exact integer: 0, or PROTO_E_BAD_REQUEST if it is not
 * an integer in range. Integer syntax only: "1.0" and "1e2" are not. */
int proto_json_int64(const struct proto_json_doc *d, uint32_t tok, int64_t *out);

/* Writes the subtree at token `tok` as one msgpack value appended to out.
 * opts NULL means MARKER mode. On error out->len is restored. */
int proto_json_to_msgpack_tok(const struct proto_json_doc *d, uint32_t tok, struct proto_buf *out,
                              const struct proto_json_opts *opts, struct proto_json_error *err);

/* Convenience: parse + transcode one JSON document. Uses `doc` as scratch. */
int proto_json_to_msgpack(struct proto_json_doc *doc, const char *text, size_t len,
                          struct proto_buf *out, const struct proto_json_opts *opts,
                          struct proto_json_error *err);

#endif
