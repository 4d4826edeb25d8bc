#include "idtable.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashtab.h"
#include "uuid.h"

#define IN_USE          UINT32_C(0x80000000) /* in serial_; serials stay below 2^28 */
#define LINK_END        UINT32_MAX
#define MIN_CHUNK_SHIFT 4u  /* 16 entries */
#define MAX_CHUNK_SHIFT 10u /* 1024 entries, 64 KiB */

struct idtable {
    struct hashtab index; /* hash_ -> entry */
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

/* One load: gcc does not merge a byte loop into one (8 loads, 16 shifts
 * and ors per word, a third of the hash). */
static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
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

static bool entry_has_id(const void *item, const void *id)
{
    return memcmp(((const struct idtable_entry *)item)->id, id, IDTABLE_ID_LEN) == 0;
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
    hashtab_init(&table->index, entry_has_id);
    r = hashtab_reserve(&table->index, 1);
    if (r < 0)
        goto err_table;
    /* Small tables get small chunks; big ones cap at 64 KiB chunks. */
    while (shift < MAX_CHUNK_SHIFT && (UINT32_C(1) << shift) < limit)
        shift++;
    table->chunk_shift = shift;
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
    hashtab_destroy(&table->index);
    free(table);
}

/* An entry from the free list, or a new one carved from the chunks. */
static int take_entry(struct idtable *table, struct idtable_entry **out)
{
    uint32_t chunk_size = UINT32_C(1) << table->chunk_shift;
    struct idtable_entry *entry;

    if (table->free_head != LINK_END) {
        entry = entry_at(table, table->free_head);
        table->free_head = entry->link_; /* serial_ is kept from before */
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

int idtable_insert(struct idtable *table, const uint8_t id[IDTABLE_ID_LEN],
                   struct idtable_entry **out)
{
    uint32_t hash = hash_id(table, id);
    struct idtable_entry *entry;
    int r;

    if (hashtab_find(&table->index, hash, id))
        return -EEXIST;
    if (table->count >= table->limit)
        return -ENOSPC;
    /* Room in the index first: after it, nothing can fail but the entry. */
    r = hashtab_reserve(&table->index, (size_t)table->count + 1);
    if (r < 0)
        return r;
    r = take_entry(table, &entry);
    if (r < 0)
        return r;
    memcpy(entry->id, id, IDTABLE_ID_LEN);
    timer_node_init(&entry->timer);
    entry->ctx = NULL;
    entry->tag = 0;
    entry->stamp = 0;
    entry->hash_ = hash;
    entry->serial_ |= IN_USE;
    (void)hashtab_insert(&table->index, hash, entry); /* reserved: cannot fail */
    table->count++;
    *out = entry;
    return 0;
}

struct idtable_entry *idtable_find(const struct idtable *table, const uint8_t id[IDTABLE_ID_LEN])
{
    return hashtab_find(&table->index, hash_id(table, id), id);
}

void idtable_remove(struct idtable *table, struct idtable_entry *entry)
{
    bool found;

    assert(entry->serial_ & IN_USE);
    assert(!timer_node_is_armed(&entry->timer));
    found = hashtab_remove(&table->index, entry->hash_, entry);
    assert(found);
    (void)found;
    entry->ctx = NULL;
    entry->serial_ &= ~IN_USE;
    entry->link_ = table->free_head;
    table->free_head = entry->serial_;
    table->count--;
}

static struct idtable_entry *first_in_use_from(const struct idtable *table, uint32_t serial)
{
    for (; serial < table->entries; serial++) {
        struct idtable_entry *entry = entry_at(table, serial);

        if (entry->serial_ & IN_USE)
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
    return first_in_use_from(table, (entry->serial_ & ~IN_USE) + 1);
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
    struct hashtab_stats index;

    hashtab_stats(&table->index, &index);
    memset(stats, 0, sizeof(*stats));
    stats->count = table->count;
    stats->limit = table->limit;
    stats->slots = index.slots;
    stats->entries = table->entries;
    stats->bytes = sizeof(*table) + index.bytes +
                   (size_t)table->n_chunks *
                       (sizeof(struct idtable_entry *) +
                        ((size_t)1 << table->chunk_shift) * sizeof(struct idtable_entry));
    stats->max_probe = index.max_probe;
}

int idtable_check(const struct idtable *table)
{
    uint32_t in_use = 0, free_len = 0;

    if (hashtab_check(&table->index) < 0 || hashtab_count(&table->index) != table->count)
        return -EUCLEAN;
    for (uint32_t serial = 0; serial < table->entries; serial++) {
        const struct idtable_entry *entry = entry_at(table, serial);

        if ((entry->serial_ & ~IN_USE) != serial)
            return -EUCLEAN;
        if (!(entry->serial_ & IN_USE))
            continue;
        if (hash_id(table, entry->id) != entry->hash_ ||
            hashtab_find(&table->index, entry->hash_, entry->id) != entry)
            return -EUCLEAN;
        in_use++;
    }
    for (uint32_t s = table->free_head; s != LINK_END; s = entry_at(table, s)->link_) {
        if (s >= table->entries || ++free_len > table->entries)
            return -EUCLEAN;
    }
    if (in_use != table->count || free_len != table->entries - table->count)
        return -EUCLEAN;
    return 0;
}
