/* Values given on the command line and values shown: JSON text in, msgpack
 * out, and back, pretty or compact.
 *
 * A payload argument is JSON text, @FILE (the file's contents) or - (all of
 * stdin), as curl and varlinkctl take them. Binary is {"$bin":"<base64>"}
 * both ways, as everywhere in volt-inspect. Output is one line when piped
 * (one JSON document per line, for jq and scripts) and indented by two
 * spaces on a terminal; the indenting works on the compact text, so it
 * cannot change a value.
 */
#ifndef INSPECT_VALUE_H
#define INSPECT_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "proto/buf.h"

/* The most a payload file or stdin may hold (the broker's default frame). */
#define VALUE_MAX_INPUT (16u << 20)

/* One JSON document (text[0..len)) appended to out as one msgpack value.
 * 0, or a negative code with an English reason in err (out unchanged). */
int value_from_text(const char *text, size_t len, struct proto_buf *out, char *err, size_t size);

/* A payload argument: JSON text, "@FILE" or "-" (stdin), as above. The
 * reason names the file. */
int value_from_arg(const char *arg, struct proto_buf *out, char *err, size_t size);

/* One msgpack value appended to out as compact JSON text. 0 or a negative
 * code with a reason in err. */
int value_to_json(const void *data, size_t len, struct proto_buf *out, char *err, size_t size);

/* Compact JSON text (as value_to_json writes it) appended to out indented
 * by two spaces, "key": value, empty containers as {} and []. 0 or
 * PROTO_E_NOMEM. */
int value_indent(const char *json, size_t len, struct proto_buf *out);

/* Prints one msgpack value as JSON and a newline on f (indented when
 * pretty). 0, or -1 after saying why on stderr. */
int value_print(FILE *f, const void *data, size_t len, bool pretty);

#endif
