/* The pending-request table: 16-byte request id -> entry.
 *
 * Used for the requests we send upstream (ids are our own v4 UUIDs) and
 * for the server:request ids the server sends us (any 16 bytes, chosen by
 * the other side). Three properties matter more than raw speed:
 *
 * - A lookup of an id the server made up stays O(1). The index hashes the
 *   id with SipHash-1-3 under a random per-table key, so a server cannot
 *   choose ids that pile into one probe run; a probe compares a stored
 *   32-bit hash before it touches an entry.
 * - No allocation per request once warm. Entries live in fixed-size
 *   chunks that are never freed before the table; removed entries go to a
 *   free list and are reused first. The index is common/hashtab.h (Robin
 *   Hood with backward-shift deletion, so no tombstones; 12-byte slots)
 *   and doubles when 80% full; it never shrinks.
 * - Bounded: at most `limit` entries; the next insert fails with -ENOSPC
 *   and the caller answers LimitExceeded.
 *
 * Entry addresses are stable from insert to remove (growth moves slots,
 * not entries), so a timer_node inside an entry can sit in a timer heap
 * and lead back to the entry with container_of().
 *
 * Single-threaded: no locking.
 */
#ifndef UTIL_IDTABLE_H
#define UTIL_IDTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "timerqueue.h"

#define IDTABLE_ID_LEN    16
#define IDTABLE_MAX_LIMIT (UINT32_C(1) << 28)

struct idtable;

struct idtable_entry {
    uint8_t id[IDTABLE_ID_LEN]; /* the key; read-only */
    struct timer_node timer;    /* the caller's deadline; disarmed after insert and
                                   must be disarmed again before idtable_remove() */
    void *ctx;                  /* the caller's; NULL after insert */
    uint64_t tag;               /* the caller's; 0 after insert */
    uint64_t stamp;             /* the caller's (e.g. when it began); 0 after insert */
    /* Private to idtable.c: 8 bytes, so that an entry is 64. */
    union {
        uint32_t hash_; /* in use: the id's hash, to find its index slot */
        uint32_t link_; /* free: the next free entry */
    };
    uint32_t serial_; /* position in the chunks | IN_USE */
};

struct idtable_stats {
    size_t count;
    size_t limit;
    size_t slots;     /* index capacity */
    size_t entries;   /* entries carved from chunks: the high-water mark */
    size_t bytes;     /* everything the table holds */
    size_t max_probe; /* longest distance of an entry from its home slot */
};

/* A new empty table for at most `limit` entries (1..IDTABLE_MAX_LIMIT) in
 * *out. 0, -EINVAL, -ENOMEM, or -errno of getrandom for the hash key.
 * Free with idtable_free(). */
int idtable_new(struct idtable **out, size_t limit);
/* Frees the table and every entry still in it (NULL is fine). The entries'
 * timers must be disarmed and their ctx dealt with first. */
void idtable_free(struct idtable *table);

/* Adds an entry for `id` and returns it in *out, with ctx NULL, tag 0 and
 * a disarmed timer. 0; -EEXIST when the id is already in the table (*out
 * untouched: use idtable_find() for it); -ENOSPC when the table holds
 * `limit` entries; -ENOMEM. The entry belongs to the table. */
int idtable_insert(struct idtable *table, const uint8_t id[IDTABLE_ID_LEN],
                   struct idtable_entry **out);
/* The entry for `id`, or NULL. */
struct idtable_entry *idtable_find(const struct idtable *table, const uint8_t id[IDTABLE_ID_LEN]);
/* Takes the entry out; its memory goes back to the table for reuse, so
 * the pointer is dead afterwards (except as an iteration cursor, below). */
void idtable_remove(struct idtable *table, struct idtable_entry *entry);

/* Iteration in no particular order:
 *
 *     for (e = idtable_first(t); e; e = idtable_next(t, e))
 *
 * The body may remove `e` and any other entry; removed entries that were
 * not reached yet are not visited. Entries inserted during the iteration
 * may or may not be visited. Cost: the table's high-water mark of entries,
 * not its current count. */
struct idtable_entry *idtable_first(const struct idtable *table);
struct idtable_entry *idtable_next(const struct idtable *table, const struct idtable_entry *entry);

size_t idtable_count(const struct idtable *table);
size_t idtable_limit(const struct idtable *table);
/* Fills *stats; O(slots) because of max_probe, meant for tests and benchmarks. */
void idtable_stats(const struct idtable *table, struct idtable_stats *stats);
/* Walks the index and the entries: 0 when the index is sound and holds
 * exactly the entries in use, each under its id's hash, and the free list
 * and the count add up; else -EUCLEAN.
 * O(slots + entries), for tests. */
int idtable_check(const struct idtable *table);

#endif
