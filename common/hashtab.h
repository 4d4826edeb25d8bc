/* One open-addressing hash table for the broker and the client library.
 *
 * The table is an index: it holds pointers to the caller's items, never
 * the items, so an item's address is whatever its owner makes it (a chunk
 * of a pool, its own malloc) and stays put while the index grows. Every
 * user keys differently (a 16-byte request id under a keyed SipHash, a
 * command name under FNV-1a, a client's uint64 request id under Fibonacci
 * hashing), so the caller computes the 32-bit hash and says, with an eq
 * function given once at init, whether an item has a key. The table only
 * ever calls eq on an item whose stored hash matches, so a lookup touches
 * items about once, whatever the load.
 *
 * Layout: Robin Hood linear probing with backward-shift deletion, so no
 * tombstones and runs stay as short as if removed items had never been.
 * Hashes and item pointers sit in two arrays (12 bytes a slot, not 16),
 * and a probe walks the hash array only. Hash 0 marks an empty slot, so
 * a caller's hash 0 is stored as 1. The slot count is a power of two; it
 * doubles when the table would be more than 80% full and never shrinks.
 *
 * The struct is the caller's (embed it): init cannot fail and allocates
 * nothing, the first insert (or a reserve) does. Its fields are private.
 * Single-threaded: no locking. Items must not be NULL.
 */
#ifndef COMMON_HASHTAB_H
#define COMMON_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most slots a table grows to (so at most 80% of this many items). */
#define HASHTAB_MAX_SLOTS (UINT32_C(1) << 31)

/* True when `item` has the key `key` (both as the caller gave them). */
typedef bool (*hashtab_eq_fn)(const void *item, const void *key);

struct hashtab {
    uint32_t *hashes_; /* 0: empty */
    void **items_;
    uint32_t mask_; /* slot count - 1, or 0 before the first allocation */
    uint32_t count_;
    hashtab_eq_fn eq_;
};

struct hashtab_stats {
    size_t count;
    size_t slots;
    size_t bytes;     /* of the two slot arrays */
    size_t max_probe; /* longest distance of an item from its home slot */
};

/* An empty table that compares keys with eq. Allocates nothing. */
void hashtab_init(struct hashtab *t, hashtab_eq_fn eq);
/* Frees the slot arrays (the items are the caller's) and leaves the
 * table empty, ready for reuse. */
void hashtab_destroy(struct hashtab *t);

/* Grows the slots so that n items fit without allocating. 0, -ENOMEM,
 * -E2BIG. */
int hashtab_reserve(struct hashtab *t, size_t n);
/* Adds item under hash. The key must not be in the table yet (find first:
 * the table does not look). 0, -ENOMEM or -E2BIG (the table is unchanged). */
int hashtab_insert(struct hashtab *t, uint32_t hash, void *item);
/* The item with this key, or NULL. */
void *hashtab_find(const struct hashtab *t, uint32_t hash, const void *key);
/* Takes this very item (found by address, under the hash it was inserted
 * with) out of the table. False when it is not there. */
bool hashtab_remove(struct hashtab *t, uint32_t hash, const void *item);
/* Takes out and returns the item with this key, or NULL. */
void *hashtab_take(struct hashtab *t, uint32_t hash, const void *key);

/* Iteration in slot order:
 *
 *     size_t pos = 0;
 *     while ((item = hashtab_next(t, &pos)))
 *
 * The table must not change during the walk. */
void *hashtab_next(const struct hashtab *t, size_t *pos);
/* Empties the table and returns its items packed at the front of the
 * table's own array, *n of them, in slot order. The caller may reorder
 * them in place; the array is the table's and is overwritten by the next
 * insert. NULL when empty. For "take everything" without allocating. */
void **hashtab_drain(struct hashtab *t, size_t *n);

static inline size_t hashtab_count(const struct hashtab *t)
{
    return t->count_;
}

/* Fills *stats; O(slots), for tests and benchmarks. */
void hashtab_stats(const struct hashtab *t, struct hashtab_stats *stats);
/* Walks the slots: 0 when the count adds up, no item is NULL and the
 * Robin Hood order holds (so every item is reached from its home slot);
 * else -EUCLEAN. O(slots), for tests. */
int hashtab_check(const struct hashtab *t);

#endif
