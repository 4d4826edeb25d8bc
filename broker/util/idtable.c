#include "idtable.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "uuid.h"

#define SLOT_EMPTY      UINT32_MAX
#define LINK_IN_USE     UINT32_MAX
#define LINK_END        (UINT32_MAX - 1)
#define INITIAL_SLOTS   16u
#define MIN_CHUNK_SHIFT 4u  /* 16 entries */
#define MAX_CHUNK_SHIFT 10u /* 1024 entries, 64 KiB */

/* One index slot: the entry's hash, to skip most mismatches without
 * touching the entry, and its serial number in the chunks. */
struct slot {
    uint32_t hash;
    uint32_t serial; /* SLOT_EMPTY when free */
};

struct idtable {
    struct slot *slots;
    uint32_t mask; /* slot count - 1; the count is a power of two */
    uint32_t count;
    uint32_t limit;
    uint64_t key[2];
    struct idtable_entry **chunks;
    uint32_t chunk_shift;
    uint32_t n_chunks;
    uint32_t entries;   /* carved from the chunks so far */
    uint32_t free_head; /* serial of the first free entry, or LINK_END */
};

/* SipHash-1-3 (Aumasson and Bernstein) of exactly 16 bytes: a keyed hash,
 * so ids chosen by the server cannot be aimed at one probe run. The round
 * counts can be overridden only to check the code against the published
 * SipHash-2-4 vectors. */
#ifndef SIP_C_ROUNDS
#define SIP_C_ROUNDS 1
#define SIP_D_ROUNDS 3
#endif

static uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t hash_id(const struct idtable *table, const uint8_t id[IDTABLE_ID_LEN])
{
    uint64_t v0 = table->key[0] ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = table->key[1] ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = table->key[0] ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = table->key[1] ^ UINT64_C(0x7465646279746573);
    uint64_t m[3] = {load_le64(id), load_le64(id + 8), (uint64_t)IDTABLE_ID_LEN << 56};

    for (int i = 0; i < 3; i++) {
        v3 ^= m[i];
        for (int r = 0; r < SIP_C_ROUNDS; r++)
            SIPROUND;
        v0 ^= m[i];
    }
    v2 ^= 0xff;
    for (int r = 0; r < SIP_D_ROUNDS; r++)
        SIPROUND;
    return (uint32_t)(v0 ^ v1 ^ v2 ^ v3);
}

static struct idtable_entry *entry_at(const struct idtable *table, uint32_t serial)
{
    uint32_t chunk_mask = (UINT32_C(1) << table->chunk_shift) - 1;

    return &table->chunks[serial >> table->chunk_shift][serial & chunk_mask];
}

static uint32_t probe_distance(const struct idtable *table, uint32_t pos, uint32_t hash)
{
    return (pos - hash) & table->mask;
}

static struct slot *alloc_slots(size_t n)
{
    struct slot *slots = malloc(n * sizeof(*slots));

    if (slots) {
        for (size_t i = 0; i < n; i++)
            slots[i].serial = SLOT_EMPTY;
    }
    return slots;
}

int idtable_new(struct idtable **out, size_t limit)
{
    struct idtable *table;
    uint32_t shift = MIN_CHUNK_SHIFT;
    int r;

    if (limit == 0 || limit > IDTABLE_MAX_LIMIT)
        return -EINVAL;
    table = calloc(1, sizeof(*table));
    if (!table)
        return -ENOMEM;
    r = uuid_fill_random(table->key, sizeof(table->key));
    if (r < 0)
        goto err_table;
    r = -ENOMEM;
    table->slots = alloc_slots(INITIAL_SLOTS);
    if (!table->slots)
        goto err_table;
    /* Small tables get small chunks; big ones cap at 64 KiB chunks. */
    while (shift < MAX_CHUNK_SHIFT && (UINT32_C(1) << shift) < limit)
        shift++;
    table->chunk_shift = shift;
    table->mask = INITIAL_SLOTS - 1;
    table->limit = (uint32_t)limit;
    table->free_head = LINK_END;
    *out = table;
    return 0;

err_table:
    free(table);
    return r;
}

void idtable_free(struct idtable *table)
{
    if (!table)
        return;
    for (uint32_t i = 0; i < table->n_chunks; i++)
        free(table->chunks[i]);
    free(table->chunks);
    free(table->slots);
    free(table);
}

/* Places (hash, serial) Robin Hood style: whoever is further from home
 * keeps the slot, the other walks on. */
static void place(struct slot *slots, uint32_t mask, struct slot cur)
{
    uint32_t pos = cur.hash & mask;
    uint32_t dist = 0;

    for (;;) {
        struct slot *s = &slots[pos];
        uint32_t s_dist;

        if (s->serial == SLOT_EMPTY) {
            *s = cur;
            return;
        }
        s_dist = (pos - s->hash) & mask;
        if (s_dist < dist) {
            struct slot tmp = *s;

            *s = cur;
            cur = tmp;
            dist = s_dist;
        }
        pos = (pos + 1) & mask;
        dist++;
    }
}

static int grow_slots(struct idtable *table)
{
    uint32_t old_n = table->mask + 1;
    uint32_t new_mask = old_n * 2 - 1;
    struct slot *slots = alloc_slots((size_t)old_n * 2);

    if (!slots)
        return -ENOMEM;
    for (uint32_t i = 0; i < old_n; i++) {
        if (table->slots[i].serial != SLOT_EMPTY)
            place(slots, new_mask, table->slots[i]);
    }
    free(table->slots);
    table->slots = slots;
    table->mask = new_mask;
    return 0;
}

static bool over_load(const struct idtable *table, uint32_t count)
{
    return (uint64_t)count * 5 > (uint64_t)(table->mask + 1) * 4;
}

/* An entry from the free list, or a new one carved from the chunks. */
static int take_entry(struct idtable *table, struct idtable_entry **out)
{
    uint32_t chunk_size = UINT32_C(1) << table->chunk_shift;
    struct idtable_entry *entry;

    if (table->free_head != LINK_END) {
        entry = entry_at(table, table->free_head);
        table->free_head = entry->link_;
        *out = entry;
        return 0;
    }
    if ((table->entries & (chunk_size - 1)) == 0) {
        uint32_t n = table->n_chunks;
        struct idtable_entry **chunks = realloc(table->chunks, ((size_t)n + 1) * sizeof(*chunks));

        if (!chunks)
            return -ENOMEM;
        table->chunks = chunks;
        chunks[n] = malloc((size_t)chunk_size * sizeof(**chunks));
        if (!chunks[n])
            return -ENOMEM;
        table->n_chunks = n + 1;
    }
    entry = entry_at(table, table->entries);
    entry->serial_ = table->entries++;
    *out = entry;
    return 0;
}

static struct idtable_entry *lookup(const struct idtable *table, const uint8_t id[IDTABLE_ID_LEN],
                                    uint32_t hash)
{
    uint32_t pos = hash & table->mask;

    for (uint32_t dist = 0;; dist++, pos = (pos + 1) & table->mask) {
        const struct slot *s = &table->slots[pos];
        struct idtable_entry *entry;

        /* Robin Hood: a slot nearer its home than we are to ours ends the run. */
        if (s->serial == SLOT_EMPTY || probe_distance(table, pos, s->hash) < dist)
            return NULL;
        if (s->hash != hash)
            continue;
        entry = entry_at(table, s->serial);
        if (memcmp(entry->id, id, IDTABLE_ID_LEN) == 0)
            return entry;
    }
}

int idtable_insert(struct idtable *table, const uint8_t id[IDTABLE_ID_LEN],
                   struct idtable_entry **out)
{
    uint32_t hash = hash_id(table, id);
    struct idtable_entry *entry;
    int r;

    if (lookup(table, id, hash))
        return -EEXIST;
    if (table->count >= table->limit)
        return -ENOSPC;
    if (over_load(table, table->count + 1)) {
        r = grow_slots(table);
        if (r < 0)
            return r;
    }
    r = take_entry(table, &entry);
    if (r < 0)
        return r;
    memcpy(entry->id, id, IDTABLE_ID_LEN);
    timer_node_init(&entry->timer);
    entry->ctx = NULL;
    entry->tag = 0;
    entry->stamp = 0;
    entry->hash_ = hash;
    entry->link_ = LINK_IN_USE;
    place(table->slots, table->mask, (struct slot){.hash = hash, .serial = entry->serial_});
    table->count++;
    *out = entry;
    return 0;
}

struct idtable_entry *idtable_find(const struct idtable *table, const uint8_t id[IDTABLE_ID_LEN])
{
    return lookup(table, id, hash_id(table, id));
}

/* Backward-shift deletion: pull each following entry of the run one slot
 * back until an empty slot or one already at home, so that no tombstone
 * is needed and runs stay as short as if the entry had never been. */
static void unlink_slot(struct idtable *table, uint32_t pos)
{
    for (;;) {
        uint32_t next = (pos + 1) & table->mask;
        struct slot *s = &table->slots[next];

        if (s->serial == SLOT_EMPTY || probe_distance(table, next, s->hash) == 0)
            break;
        table->slots[pos] = *s;
        pos = next;
    }
    table->slots[pos].serial = SLOT_EMPTY;
}

void idtable_remove(struct idtable *table, struct idtable_entry *entry)
{
    uint32_t pos = entry->hash_ & table->mask;

    assert(entry->link_ == LINK_IN_USE);
    assert(!timer_node_is_armed(&entry->timer));
    while (table->slots[pos].serial != entry->serial_) {
        assert(table->slots[pos].serial != SLOT_EMPTY);
        pos = (pos + 1) & table->mask;
    }
    unlink_slot(table, pos);
    entry->ctx = NULL;
    entry->link_ = table->free_head;
    table->free_head = entry->serial_;
    table->count--;
}

static struct idtable_entry *first_in_use_from(const struct idtable *table, uint32_t serial)
{
    for (; serial < table->entries; serial++) {
        struct idtable_entry *entry = entry_at(table, serial);

        if (entry->link_ == LINK_IN_USE)
            return entry;
    }
    return NULL;
}

struct idtable_entry *idtable_first(const struct idtable *table)
{
    return first_in_use_from(table, 0);
}

struct idtable_entry *idtable_next(const struct idtable *table, const struct idtable_entry *entry)
{
    return first_in_use_from(table, entry->serial_ + 1);
}

size_t idtable_count(const struct idtable *table)
{
    return table->count;
}

size_t idtable_limit(const struct idtable *table)
{
    return table->limit;
}

void idtable_stats(const struct idtable *table, struct idtable_stats *stats)
{
    size_t n_slots = (size_t)table->mask + 1;

    memset(stats, 0, sizeof(*stats));
    stats->count = table->count;
    stats->limit = table->limit;
    stats->slots = n_slots;
    stats->entries = table->entries;
    stats->bytes = sizeof(*table) + n_slots * sizeof(struct slot) +
                   (size_t)table->n_chunks *
                       (sizeof(struct idtable_entry *) +
                        ((size_t)1 << table->chunk_shift) * sizeof(struct idtable_entry));
    for (uint32_t pos = 0; pos < n_slots; pos++) {
        const struct slot *s = &table->slots[pos];
        size_t dist;

        if (s->serial == SLOT_EMPTY)
            continue;
        dist = probe_distance(table, pos, s->hash);
        if (dist > stats->max_probe)
            stats->max_probe = dist;
    }
}

static bool slot_ok(const struct idtable *table, uint32_t pos)
{
    const struct slot *s = &table->slots[pos];
    const struct slot *prev = &table->slots[(pos - 1) & table->mask];
    uint32_t dist = probe_distance(table, pos, s->hash);
    const struct idtable_entry *entry;

    if (s->serial >= table->entries)
        return false;
    entry = entry_at(table, s->serial);
    if (entry->link_ != LINK_IN_USE || entry->hash_ != s->hash ||
        hash_id(table, entry->id) != s->hash)
        return false;
    /* Robin Hood order: a run never jumps by more than one step. */
    if (dist > 0 && (prev->serial == SLOT_EMPTY ||
                     probe_distance(table, (pos - 1) & table->mask, prev->hash) + 1 < dist))
        return false;
    return true;
}

int idtable_check(const struct idtable *table)
{
    uint32_t in_slots = 0, in_use = 0, free_len = 0;

    for (uint32_t pos = 0; pos <= table->mask; pos++) {
        if (table->slots[pos].serial == SLOT_EMPTY)
            continue;
        if (!slot_ok(table, pos))
            return -EUCLEAN;
        in_slots++;
    }
    for (uint32_t serial = 0; serial < table->entries; serial++) {
        const struct idtable_entry *entry = entry_at(table, serial);

        if (entry->serial_ != serial)
            return -EUCLEAN;
        if (entry->link_ != LINK_IN_USE)
            continue;
        if (lookup(table, entry->id, entry->hash_) != entry)
            return -EUCLEAN;
        in_use++;
    }
    for (uint32_t s = table->free_head; s != LINK_END; s = entry_at(table, s)->link_) {
        if (s >= table->entries || ++free_len > table->entries)
            return -EUCLEAN;
    }
    if (in_slots != table->count || in_use != table->count ||
        free_len != table->entries - table->count)
        return -EUCLEAN;
    return 0;
}
