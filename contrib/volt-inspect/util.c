#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t inspect_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t inspect_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char *inspect_time_iso(uint64_t time_us, int frac_digits, char *buf, size_t size)
{
    time_t secs = (time_t)(time_us / 1000000u);
    unsigned long micros = (unsigned long)(time_us % 1000000u);
    struct tm tm;
    char base[32];

    if (!gmtime_r(&secs, &tm) || strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(buf, size, "?");
        return buf;
    }
    if (frac_digits == 6)
        snprintf(buf, size, "%s.%06luZ", base, micros);
    else if (frac_digits == 3)
        snprintf(buf, size, "%s.%03luZ", base, micros / 1000u);
    else
        snprintf(buf, size, "%sZ", base);
    return buf;
}

char *inspect_duration(uint64_t ms, char *buf, size_t size)
{
    uint64_t s = ms / 1000u;
    uint64_t m = s / 60u, h = m / 60u, d = h / 24u;

    if (s < 60u) {
        if (ms % 1000u)
            snprintf(buf, size, "%llu.%03llus", (unsigned long long)s,
                     (unsigned long long)(ms % 1000u));
        else
            snprintf(buf, size, "%llus", (unsigned long long)s);
    } else if (m < 60u) {
        snprintf(buf, size, "%llum %02llus", (unsigned long long)m, (unsigned long long)(s % 60u));
    } else if (h < 24u) {
        snprintf(buf, size, "%lluh %02llum %02llus", (unsigned long long)h,
                 (unsigned long long)(m % 60u), (unsigned long long)(s % 60u));
    } else {
        snprintf(buf, size, "%llud %02lluh %02llum", (unsigned long long)d,
                 (unsigned long long)(h % 24u), (unsigned long long)(m % 60u));
    }
    return buf;
}

int inspect_parse_ms(const char *text, int *out)
{
    char *end;
    long v;

    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || *end || v < 0 || v > 0x7fffffffL)
        return -1;
    *out = (int)v;
    return 0;
}

int inspect_parse_duration(const char *text, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    unsigned long long v;
    char *end;

    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || v > 1000000000ull)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            *ms = (uint64_t)v * units[i].ms;
            return 0;
        }
    }
    return -1;
}

void inspect_verror(const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs(INSPECT_PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
}

void inspect_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    inspect_verror(fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void inspect_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}
