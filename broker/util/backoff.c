#include "backoff.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/random.h>
#include <time.h>

/* Keeps min * factor^attempts finite (see the header): far above any
 * max_ms, and small enough that ms + deviation cannot overflow either. */
#define BACKOFF_MS_CEILING (DBL_MAX / 4)

static bool options_valid(const struct backoff_options *o)
{
    if (o->min_ms == 0 || o->max_ms < o->min_ms || o->max_ms > INT32_MAX)
        return false;
    if (!(o->factor >= 1.0) || !isfinite(o->factor))
        return false;
    return o->jitter >= 0.0 && o->jitter <= 1.0;
}

int backoff_init(struct backoff *b, const struct backoff_options *opts)
{
    b->opts = BACKOFF_OPTIONS_DEFAULT;
    b->attempts = 0;
    b->random = backoff_default_random;
    b->random_ctx = NULL;
    if (!opts)
        return 0;
    if (!options_valid(opts))
        return -EINVAL;
    b->opts = *opts;
    return 0;
}

void backoff_set_random(struct backoff *b, backoff_random_fn fn, void *ctx)
{
    b->random = fn ? fn : backoff_default_random;
    b->random_ctx = fn ? ctx : NULL;
}

uint32_t backoff_attempts(const struct backoff *b)
{
    return b->attempts;
}

void backoff_reset(struct backoff *b)
{
    b->attempts = 0;
}

uint32_t backoff_duration(struct backoff *b)
{
    double ms = (double)b->opts.min_ms * pow(b->opts.factor, (double)b->attempts);

    if (b->attempts < UINT32_MAX)
        b->attempts++;
    if (!(ms <= BACKOFF_MS_CEILING))
        ms = BACKOFF_MS_CEILING;

    if (b->opts.jitter > 0.0) {
        double rand = b->random(b->random_ctx);
        /* Same evaluation order as JavaScript's `rand * jitter * ms`. */
        double deviation = floor(rand * b->opts.jitter * ms);
        long digit = (long)floor(rand * 10);

        ms = (digit & 1) == 0 ? ms - deviation : ms + deviation;
    }
    if (ms > (double)b->opts.max_ms)
        ms = (double)b->opts.max_ms;
    /* `| 0`: truncation toward zero; ms is never negative here since
     * deviation <= jitter * ms <= ms. */
    return ms > 0 ? (uint32_t)ms : 0;
}

/* splitmix64: only for the unlikely case getrandom() fails (seccomp,
 * ancient kernel); the delays still differ between processes. */
static uint64_t fallback_next(void)
{
    static uint64_t state;
    uint64_t z;

    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
    }
    z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

double backoff_default_random(void *ctx)
{
    uint64_t bits;

    (void)ctx;
    if (getrandom(&bits, sizeof(bits), GRND_NONBLOCK) != (ssize_t)sizeof(bits))
        bits = fallback_next();
    /* 53 random bits -> a double in [0, 1), like Math.random(). */
    return (double)(bits >> 11) * (1.0 / 9007199254740992.0);
}
