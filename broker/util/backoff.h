/* Reconnection backoff, byte-for-byte the one socket.io-client uses.
 *
 * The TypeScript client we replace reconnects through socket.io-client's
 * Manager, whose `Backoff.duration()` (contrib/backo2) is:
 *
 *     ms = min * factor^attempts++
 *     if jitter:
 *         rand = random()                       # [0, 1)
 *         deviation = floor(rand * jitter * ms)
 *         ms = floor(rand * 10) is even ? ms - deviation : ms + deviation
 *     return min(ms, max) | 0
 *
 * with the Manager's defaults min 1000 ms, max 5000 ms, factor 2,
 * randomizationFactor (jitter) 0.5, and `reset()` after a successful
 * connection. The server sees the same retry pattern from us as from the
 * Node daemon, so we keep the arithmetic exact, quirks included: the same
 * random number picks both the size and the sign of the deviation, the
 * first delay can be as low as min * (1 - jitter), and past the cap the
 * jitter mostly disappears (min(ms, max) is taken after the deviation).
 *
 * One deliberate difference: in JavaScript, after ~1000 attempts
 * factor^attempts overflows to Infinity and the jittered delay becomes
 * NaN | 0 == 0 half of the time (a hot reconnect loop). Here the
 * exponential is clamped to a finite value, so the delay stays at max.
 * For every attempt where JavaScript's value is finite the results are
 * identical.
 *
 * `struct backoff` is caller-allocated (embedded in its owner, like a
 * libuv handle): it cannot fail after init and needs no free. Its fields
 * are private.
 */
#ifndef UTIL_BACKOFF_H
#define UTIL_BACKOFF_H

#include <stdint.h>

/* A random number in [0, 1). */
typedef double (*backoff_random_fn)(void *ctx);

struct backoff_options {
    uint32_t min_ms; /* first delay (before jitter); > 0 */
    uint32_t max_ms; /* cap; >= min_ms, <= INT32_MAX (JavaScript's "| 0") */
    double factor;   /* growth per attempt; >= 1 */
    double jitter;   /* randomization factor; 0 (off) .. 1 */
};

/* socket.io-client's Manager defaults: 1000, 5000, 2, 0.5. */
#define BACKOFF_OPTIONS_DEFAULT                                                                    \
    ((struct backoff_options){.min_ms = 1000, .max_ms = 5000, .factor = 2.0, .jitter = 0.5})

struct backoff {
    /* private */
    struct backoff_options opts;
    uint32_t attempts;
    backoff_random_fn random;
    void *random_ctx;
};

/* Initialise with `opts` (NULL: BACKOFF_OPTIONS_DEFAULT) and the default
 * random source (the kernel's getrandom()). 0, or -EINVAL when an option
 * is out of range (then `b` is left at the defaults). */
int backoff_init(struct backoff *b, const struct backoff_options *opts);

/* Replace the random source (tests inject a fixed sequence). `fn` NULL
 * restores the default. `fn` must return values in [0, 1). */
void backoff_set_random(struct backoff *b, backoff_random_fn fn, void *ctx);

/* The delay before the next attempt, in ms; counts one attempt. */
uint32_t backoff_duration(struct backoff *b);

/* Attempts counted since init or the last reset. */
uint32_t backoff_attempts(const struct backoff *b);

/* After a success: the next delay is the first one again. */
void backoff_reset(struct backoff *b);

/* The default random source, exposed for tests: [0, 1) from getrandom(),
 * falling back to a clock-seeded generator if the kernel refuses. */
double backoff_default_random(void *ctx);

#endif
