#include "metrics.h"

#include <stdio.h>
#include <string.h>

static int put(struct proto_buf *out, const char *s)
{
    return proto_buf_append(out, s, strlen(s));
}

int metrics_family(struct proto_buf *out, const char *name, enum metrics_type type,
                   const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    char line[512];
    int n =
        snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help, name, types[type]);
    return proto_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int put_label_value(struct proto_buf *out, const char *v)
{
    int rc = 0;
    for (; *v && rc == 0; v++) {
        if (*v == '\\' || *v == '"')
            rc = proto_buf_append(out, "\\", 1);
        if (rc == 0 && *v == '\n')
            rc = put(out, "\\n");
        else if (rc == 0)
            rc = proto_buf_append(out, v, 1);
    }
    return rc;
}

/* Whole numbers as such; others with enough digits to round-trip. */
static int put_number(struct proto_buf *out, double n)
{
    char text[40];
    if (n == (double)(int64_t)n && n > -9e15 && n < 9e15)
        snprintf(text, sizeof(text), "%lld", (long long)n);
    else
        snprintf(text, sizeof(text), "%.17g", n);
    return put(out, text);
}

int metrics_sample(struct proto_buf *out, const char *name, const char *label, const char *value,
                   double n)
{
    int rc = put(out, name);
    if (rc == 0 && label) {
        rc |= put(out, "{");
        rc |= put(out, label);
        rc |= put(out, "=\"");
        rc |= put_label_value(out, value);
        rc |= put(out, "\"}");
    }
    rc |= put(out, " ");
    rc |= put_number(out, n);
    rc |= put(out, "\n");
    return rc;
}

int metrics_counter(struct proto_buf *out, const char *name, const char *help, uint64_t n)
{
    int rc = metrics_family(out, name, METRICS_COUNTER, help);
    return rc ? rc : metrics_sample(out, name, NULL, NULL, (double)n);
}

int metrics_gauge(struct proto_buf *out, const char *name, const char *help, double n)
{
    int rc = metrics_family(out, name, METRICS_GAUGE, help);
    return rc ? rc : metrics_sample(out, name, NULL, NULL, n);
}

int metrics_histogram(struct proto_buf *out, const char *name, const char *help,
                      const struct histogram *h)
{
    char series[160], le[32];
    int rc = metrics_family(out, name, METRICS_HISTOGRAM, help);

    snprintf(series, sizeof(series), "%s_bucket", name);
    for (size_t i = 0; i <= HISTOGRAM_BUCKETS && rc == 0; i++) {
        if (i < HISTOGRAM_BUCKETS)
            snprintf(le, sizeof(le), "%g", histogram_bounds_ms[i] / 1000.0);
        else
            snprintf(le, sizeof(le), "+Inf");
        rc = metrics_sample(out, series, "le", le, (double)histogram_cumulative(h, i));
    }
    snprintf(series, sizeof(series), "%s_sum", name);
    rc |= metrics_sample(out, series, NULL, NULL, (double)h->sum_ms / 1000.0);
    snprintf(series, sizeof(series), "%s_count", name);
    rc |= metrics_sample(out, series, NULL, NULL, (double)h->count);
    return rc;
}
