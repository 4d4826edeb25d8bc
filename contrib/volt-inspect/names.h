/* Who the broker's clients are, from its status map.
 *
 * The broker numbers its clients; people know them by name and pid. The
 * status map's `clients` list has both, so everything here reads that list:
 * `clients` and `handlers` print it, the monitor keeps a cache of
 * id -> name/pid/uid to name the client of each trace line (refreshed when
 * an unknown id shows up, and taught names from the hello frames it sees),
 * and completion asks it for the commands and message types the broker
 * knows. No broker change is needed for any of it.
 */
#ifndef INSPECT_NAMES_H
#define INSPECT_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msgpack.h"

#define NAMES_NAME_MAX 128

/* One entry of the status map's `clients` (absent numbers are -1). */
struct names_client {
    uint64_t id;
    long long pid, uid, queue_bytes, in_flight;
    char name[NAMES_NAME_MAX];       /* cut at NAMES_NAME_MAX - 1 bytes; "" when absent */
    struct proto_span handlers;      /* raw msgpack array of str (len 0: absent) */
    struct proto_span subscriptions; /* raw msgpack array of str */
    struct proto_span raw;           /* the whole entry (a msgpack map) */
};

/* Calls cb for each client of a status map (data[0..len): one validated
 * msgpack value). 0, or PROTO_E_BAD_FRAME when it is not a map. A map
 * without `clients` has none. */
int names_each_client(const void *data, size_t len,
                      void (*cb)(void *ctx, const struct names_client *c), void *ctx);

/* Calls cb for each string of a raw msgpack array (others are skipped). */
void names_each_str(struct proto_span array, void (*cb)(void *ctx, struct proto_span s), void *ctx);

/* The cache of client names. */
struct names;

struct names_entry {
    uint64_t id;
    long long pid, uid; /* -1 unknown */
    char name[NAMES_NAME_MAX];
};

/* NULL on out of memory. */
struct names *names_new(void);
void names_free(struct names *n);
/* Learns every client of a status map; entries of clients that left stay
 * (their late lines are still named). 0 or PROTO_E_BAD_FRAME/NOMEM. */
int names_update(struct names *n, const void *status, size_t len);
/* Learns a name from a hello frame the client sent. */
void names_learn(struct names *n, uint64_t id, const char *name, size_t len);
/* The entry for id, or NULL when nothing is known of it. */
const struct names_entry *names_get(const struct names *n, uint64_t id);
/* Whether a refresh was already asked for this id (then it is not asked
 * again, so a client that left before the status was taken costs one). */
bool names_asked(const struct names *n, uint64_t id);
void names_mark_asked(struct names *n, uint64_t id);

/* The commands the broker's clients registered and the message types they
 * subscribed to (exact and prefix filters), each once, for completion.
 * socket NULL: the default path. 0, or -1 when the broker cannot be asked
 * within timeout_ms (nothing is printed). */
struct names_words {
    char **commands;
    size_t n_commands;
    char **types;
    size_t n_types;
};
int names_broker_words(const char *socket, int timeout_ms, struct names_words *w);
void names_words_free(struct names_words *w);
/* Adds a word once (a set of strings in insertion order). 0 or -ENOMEM. */
int names_words_add(char ***list, size_t *n, const char *s, size_t len);

/* Fetches the broker's status map into *data (caller frees with free()),
 * for names_broker_words and the clients/handlers verbs' tests. 0 or -1. */
int names_fetch_status(const char *socket, int timeout_ms, void **data, size_t *len);

#endif
