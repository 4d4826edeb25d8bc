/* Writing metrics in the Prometheus text exposition format (what
 * node_exporter's textfile collector and Prometheus read; OpenMetrics
 * parsers take it too). Pure: text appended to a proto_buf.
 *
 * A family is announced once (metrics_family: # HELP and # TYPE), then
 * has one sample per label set. Counter names end in _total, as the
 * format wants; label values are escaped (\\, ", newline).
 */
#ifndef UTIL_METRICS_H
#define UTIL_METRICS_H

#include <stdint.h>

#include "proto/buf.h"
#include "util/histogram.h"

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* "# HELP name help\n# TYPE name type\n". */
int metrics_family(struct proto_buf *out, const char *name, enum metrics_type type,
                   const char *help);
/* "name{label="value"} n\n"; label NULL: no labels. */
int metrics_sample(struct proto_buf *out, const char *name, const char *label, const char *value,
                   double n);
/* A family and one unlabelled sample. */
int metrics_counter(struct proto_buf *out, const char *name, const char *help, uint64_t n);
int metrics_gauge(struct proto_buf *out, const char *name, const char *help, double n);
/* A histogram in seconds from one in milliseconds: _bucket{le=...}, _sum, _count. */
int metrics_histogram(struct proto_buf *out, const char *name, const char *help,
                      const struct histogram *h);

#endif
