#include "histogram.h"

/* From a millisecond to half a minute: local handlers and a server across
 * a network both land in the middle, timeouts at the top. */
const uint32_t histogram_bounds_ms[HISTOGRAM_BUCKETS] = {1,   2,   5,    10,   25,   50,    100,
                                                         250, 500, 1000, 2500, 5000, 10000, 30000};

void histogram_observe(struct histogram *h, uint64_t ms)
{
    size_t i = 0;
    while (i < HISTOGRAM_BUCKETS && ms > histogram_bounds_ms[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum_ms += ms;
}

uint64_t histogram_cumulative(const struct histogram *h, size_t i)
{
    uint64_t n = 0;
    for (size_t k = 0; k <= i && k <= HISTOGRAM_BUCKETS; k++)
        n += h->buckets[k];
    return n;
}
