#include "hashtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 16u

void hashtab_init(struct hashtab *t, hashtab_eq_fn eq)
{
    memset(t, 0, sizeof(*t));
    t->eq_ = eq;
}

void hashtab_destroy(struct hashtab *t)
{
    free(t->hashes_);
    free(t->items_);
    hashtab_init(t, t->eq_);
}

static uint32_t stored(uint32_t hash)
{
    return hash ? hash : 1;
}

static uint32_t distance(const struct hashtab *t, uint32_t pos, uint32_t hash)
{
    return (pos - hash) & t->mask_;
}

/* Places (hash, item) Robin Hood style: whoever is further from home keeps
 * the slot, the other walks on. There is always an empty slot. */
static void place(uint32_t *hashes, void **items, uint32_t mask, uint32_t hash, void *item)
{
    uint32_t pos = hash & mask;

    for (uint32_t dist = 0;; dist++, pos = (pos + 1) & mask) {
        uint32_t h = hashes[pos], h_dist;

        if (h == 0) {
            hashes[pos] = hash;
            items[pos] = item;
            return;
        }
        h_dist = (pos - h) & mask;
        if (h_dist < dist) {
            void *tmp = items[pos];

            hashes[pos] = hash;
            items[pos] = item;
            hash = h;
            item = tmp;
            dist = h_dist;
        }
    }
}

static int resize(struct hashtab *t, uint64_t n_slots)
{
    uint32_t old_n = t->hashes_ ? t->mask_ + 1 : 0;
    uint32_t *hashes;
    void **items;

    if (n_slots > HASHTAB_MAX_SLOTS)
        return -E2BIG;
    hashes = calloc(n_slots, sizeof(*hashes));
    items = malloc(n_slots * sizeof(*items));
    if (!hashes || !items) {
        free(hashes);
        free(items);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < old_n; i++) {
        if (t->hashes_[i])
            place(hashes, items, (uint32_t)n_slots - 1, t->hashes_[i], t->items_[i]);
    }
    free(t->hashes_);
    free(t->items_);
    t->hashes_ = hashes;
    t->items_ = items;
    t->mask_ = (uint32_t)n_slots - 1;
    return 0;
}

/* At most 80% full: Robin Hood keeps probe runs short up to there. */
static bool fits(uint64_t n_slots, uint64_t n)
{
    return n * 5 <= n_slots * 4;
}

int hashtab_reserve(struct hashtab *t, size_t n)
{
    uint64_t n_slots = t->hashes_ ? (uint64_t)t->mask_ + 1 : 0;
    uint64_t want = n_slots ? n_slots : INITIAL_SLOTS;

    if (n_slots && fits(n_slots, n))
        return 0;
    while (!fits(want, n)) {
        if (want >= HASHTAB_MAX_SLOTS)
            return -E2BIG;
        want *= 2;
    }
    return resize(t, want);
}

int hashtab_insert(struct hashtab *t, uint32_t hash, void *item)
{
    int r = hashtab_reserve(t, (size_t)t->count_ + 1);

    if (r < 0)
        return r;
    place(t->hashes_, t->items_, t->mask_, stored(hash), item);
    t->count_++;
    return 0;
}

/* The slot, in the run from the hash's home, of the item with this stored
 * hash that has `key` (by_key: through eq) or is `key` (by address), or
 * UINT32_MAX. */
static uint32_t lookup(const struct hashtab *t, uint32_t hash, const void *key, bool by_key)
{
    uint32_t pos = hash & t->mask_;

    if (!t->hashes_)
        return UINT32_MAX;
    for (uint32_t dist = 0;; dist++, pos = (pos + 1) & t->mask_) {
        uint32_t h = t->hashes_[pos];

        /* Robin Hood: a slot nearer its home than we are to ours ends the run. */
        if (h == 0 || distance(t, pos, h) < dist)
            return UINT32_MAX;
        if (h != hash)
            continue;
        if (by_key ? t->eq_(t->items_[pos], key) : t->items_[pos] == key)
            return pos;
    }
}

void *hashtab_find(const struct hashtab *t, uint32_t hash, const void *key)
{
    uint32_t pos = lookup(t, stored(hash), key, true);

    return pos == UINT32_MAX ? NULL : t->items_[pos];
}

/* Backward shift: pull each following item of the run one slot back until
 * an empty slot or one already at home. */
static void remove_at(struct hashtab *t, uint32_t pos)
{
    for (;;) {
        uint32_t next = (pos + 1) & t->mask_;
        uint32_t h = t->hashes_[next];

        if (h == 0 || distance(t, next, h) == 0)
            break;
        t->hashes_[pos] = h;
        t->items_[pos] = t->items_[next];
        pos = next;
    }
    t->hashes_[pos] = 0;
    t->count_--;
}

bool hashtab_remove(struct hashtab *t, uint32_t hash, const void *item)
{
    uint32_t pos = lookup(t, stored(hash), item, false);

    if (pos == UINT32_MAX)
        return false;
    remove_at(t, pos);
    return true;
}

void *hashtab_take(struct hashtab *t, uint32_t hash, const void *key)
{
    uint32_t pos = lookup(t, stored(hash), key, true);
    void *item;

    if (pos == UINT32_MAX)
        return NULL;
    item = t->items_[pos];
    remove_at(t, pos);
    return item;
}

void *hashtab_next(const struct hashtab *t, size_t *pos)
{
    if (!t->hashes_)
        return NULL;
    for (; *pos <= t->mask_; (*pos)++) {
        if (t->hashes_[*pos])
            return t->items_[(*pos)++];
    }
    return NULL;
}

void **hashtab_drain(struct hashtab *t, size_t *n)
{
    size_t k = 0;

    *n = 0;
    if (!t->count_)
        return NULL;
    for (uint32_t i = 0; i <= t->mask_; i++) {
        if (t->hashes_[i]) {
            t->items_[k++] = t->items_[i];
            t->hashes_[i] = 0;
        }
    }
    t->count_ = 0;
    *n = k;
    return t->items_;
}

void hashtab_stats(const struct hashtab *t, struct hashtab_stats *stats)
{
    size_t n_slots = t->hashes_ ? (size_t)t->mask_ + 1 : 0;

    memset(stats, 0, sizeof(*stats));
    stats->count = t->count_;
    stats->slots = n_slots;
    stats->bytes = n_slots * (sizeof(*t->hashes_) + sizeof(*t->items_));
    for (uint32_t pos = 0; pos < n_slots; pos++) {
        uint32_t h = t->hashes_[pos];

        if (h && distance(t, pos, h) > stats->max_probe)
            stats->max_probe = distance(t, pos, h);
    }
}

int hashtab_check(const struct hashtab *t)
{
    uint32_t used = 0;

    if (!t->hashes_)
        return t->count_ == 0 ? 0 : -EUCLEAN;
    for (uint32_t pos = 0; pos <= t->mask_; pos++) {
        uint32_t h = t->hashes_[pos], prev_pos = (pos - 1) & t->mask_;
        uint32_t dist = distance(t, pos, h), prev = t->hashes_[prev_pos];

        if (h == 0)
            continue;
        if (!t->items_[pos])
            return -EUCLEAN;
        /* Robin Hood order: a run never jumps by more than one step. */
        if (dist > 0 && (prev == 0 || distance(t, prev_pos, prev) + 1 < dist))
            return -EUCLEAN;
        used++;
    }
    if (used != t->count_ || !fits((uint64_t)t->mask_ + 1, used))
        return -EUCLEAN;
    return 0;
}
