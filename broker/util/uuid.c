#include "uuid.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#define POOL_SIZE 4096

/* One page. Bytes are handed out from the end down, so `avail` doubles as
 * the fill state: zeroed by the kernel in a forked child, it reads "empty"
 * and the child refills from getrandom. */
struct pool {
    size_t avail;
    uint8_t bytes[POOL_SIZE - sizeof(size_t)];
};

enum pool_state { POOL_UNTRIED, POOL_READY, POOL_UNAVAILABLE };

static struct pool *pool;
static enum pool_state pool_state = POOL_UNTRIED;

static int read_random(void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Without MADV_WIPEONFORK a pool would be copied into a forked child and
 * both would hand out the same ids, so then there is no pool. */
static void pool_setup(void)
{
    void *page;

    pool_state = POOL_UNAVAILABLE;
#ifdef MADV_WIPEONFORK
    page =
        mmap(NULL, sizeof(struct pool), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return;
    if (madvise(page, sizeof(struct pool), MADV_WIPEONFORK) < 0) {
        munmap(page, sizeof(struct pool));
        return;
    }
    pool = page;
    pool_state = POOL_READY;
#else
    (void)page;
#endif
}

int uuid_fill_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    int r;

    if (pool_state == POOL_UNTRIED)
        pool_setup();
    if (pool_state != POOL_READY || len >= sizeof(pool->bytes))
        return read_random(buf, len);
    while (len > 0) {
        size_t take;

        if (pool->avail == 0) {
            r = read_random(pool->bytes, sizeof(pool->bytes));
            if (r < 0)
                return r;
            pool->avail = sizeof(pool->bytes);
        }
        take = len < pool->avail ? len : pool->avail;
        pool->avail -= take;
        memcpy(p, pool->bytes + pool->avail, take);
        p += take;
        len -= take;
    }
    return 0;
}

int uuid_generate_v4(uint8_t out[UUID_LEN])
{
    int r = uuid_fill_random(out, UUID_LEN);

    if (r < 0)
        return r;
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* variant 10xx */
    return 0;
}

/* Where each byte's two hex digits start in the text form
 * (8-4-4-4-12 digits, hyphens at 8, 13, 18 and 23): a fixed layout, so
 * both directions are straight-line loops with no branch per character. */
static const uint8_t digit_at[UUID_LEN] = {0,  2,  4,  6,  9,  11, 14, 16,
                                           19, 21, 24, 26, 28, 30, 32, 34};

void uuid_format(const uint8_t id[UUID_LEN], char out[UUID_STR_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < UUID_LEN; i++) {
        out[digit_at[i]] = digits[id[i] >> 4];
        out[digit_at[i] + 1] = digits[id[i] & 0x0f];
    }
    out[8] = out[13] = out[18] = out[23] = '-';
    out[UUID_STR_LEN] = '\0';
}

/* A hex digit's value plus one, 0 for anything else (so that the rest of
 * the table can stay zero): one load per character on the path of every
 * response, which carries its requestId as text. */
static const uint8_t hex_plus_one[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int uuid_parse(const char *text, size_t len, uint8_t out[UUID_LEN])
{
    const uint8_t *t = (const uint8_t *)text;
    uint8_t id[UUID_LEN];
    unsigned missing = 0; /* becomes nonzero at the first non-digit */

    if (len != UUID_STR_LEN || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-')
        return -EINVAL;
    for (size_t i = 0; i < UUID_LEN; i++) {
        unsigned hi = hex_plus_one[t[digit_at[i]]];
        unsigned lo = hex_plus_one[t[digit_at[i] + 1]];

        missing |= (hi == 0) | (lo == 0);
        id[i] = (uint8_t)(((hi - 1) << 4) | ((lo - 1) & 0x0f));
    }
    if (missing)
        return -EINVAL;
    memcpy(out, id, UUID_LEN);
    return 0;
}
