/* A latency histogram with fixed buckets, as Prometheus histograms are:
 * cumulative counts per upper bound, a count and a sum. Observing is a
 * few comparisons and additions, no allocation (the bounds are shared and
 * constant), so it can sit on the request path. Pure. */
#ifndef UTIL_HISTOGRAM_H
#define UTIL_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

/* Upper bounds in milliseconds (the last, +Inf, is implicit). */
#define HISTOGRAM_BUCKETS 14
extern const uint32_t histogram_bounds_ms[HISTOGRAM_BUCKETS];

struct histogram {
    uint64_t buckets[HISTOGRAM_BUCKETS + 1]; /* not cumulative; [last] is +Inf */
    uint64_t count;
    uint64_t sum_ms;
};

void histogram_observe(struct histogram *h, uint64_t ms);
/* Observations at or under bucket i's bound (i == HISTOGRAM_BUCKETS: all). */
uint64_t histogram_cumulative(const struct histogram *h, size_t i);

#endif
