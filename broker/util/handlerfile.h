/* The handler list kept across a graceful restart: the text of
 * <stateDir>/handlers.json, parsed and rendered. Pure: bytes in, values
 * out; reading and writing the file is statefile.h's, deciding what the
 * list means for the first registration is the broker's.
 *
 * After a graceful stop the file is {"handlers":[names]}: the names the
 * next start waits for before its first daemon:register. While the broker
 * runs it is {"running":true}, so that a crash leaves that behind and
 * never a stale list.
 *
 * The file is the broker's own, but a hand-edited or damaged one must not
 * put odd text into logs or into the hold: every name must be one a
 * client could have registered (proto_name_valid()), and anything else
 * makes the whole file unusable rather than half read.
 */
#ifndef UTIL_HANDLERFILE_H
#define UTIL_HANDLERFILE_H

#include <stddef.h>

#include "proto/buf.h"

#define HANDLERFILE_NAME "handlers.json"
/* Names the file in statefile.h's messages ("handler list file ..."). */
#define HANDLERFILE_WHAT "handler list"
/* The list must fit in one daemon:register (the server's maxPayload, 1 MB
 * by default), so twice that bounds the file. */
#define HANDLERFILE_MAX (2u << 20)
/* Written at start, before anything can register. */
#define HANDLERFILE_RUNNING_TEXT "{\"running\":true}\n"

enum handlerfile_kind {
    HANDLERFILE_LIST,     /* the last run stopped gracefully: names[0..n_names) */
    HANDLERFILE_RUNNING,  /* the last run did not stop cleanly: its list is unknown */
    HANDLERFILE_UNUSABLE, /* why says what is wrong, in English */
};

struct handlerfile {
    enum handlerfile_kind kind;
    char **names; /* LIST: NUL-terminated names, owned; NULL when there are none */
    size_t n_names;
    const char *why; /* UNUSABLE: a static reason for a log line; NULL otherwise */
};

/* Parses text[0..len) (no NUL needed) into *out, accepting names of
 * 1..name_max bytes (see proto_name_valid()). Never fails as a call:
 * anything that is not one of the two forms above, and running out of
 * memory, is UNUSABLE with no names. Free *out with handlerfile_free(). */
void handlerfile_parse(const char *text, size_t len, size_t name_max, struct handlerfile *out);

/* Frees the names; *hf is then an empty LIST. */
void handlerfile_free(struct handlerfile *hf);

/* Appends {"handlers":[...]}\n to out: the names of `list` (data[0..len),
 * one msgpack array of str, as router_handler_list() writes it), then
 * extra[0..n_extra) (NUL-terminated; the caller leaves out what the list
 * already holds). Strings must be valid UTF-8. 0, or on error out->len
 * restored and PROTO_E_BAD_FRAME (list not exactly one array of str),
 * PROTO_E_NOT_JSON (invalid UTF-8) or PROTO_E_NOMEM. */
int handlerfile_render(const void *list, size_t len, const char *const *extra, size_t n_extra,
                       struct proto_buf *out);

#endif
