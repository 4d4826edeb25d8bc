/* Small shared pieces of volt-inspect: exit statuses, time text, messages.
 *
 * The exit statuses are part of the tool's interface (scripts test them),
 * so every mode uses this one table; the man page lists it.
 */
#ifndef INSPECT_UTIL_H
#define INSPECT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum inspect_exit {
    INSPECT_EXIT_OK = 0,      /* done; every answer had ok:true */
    INSPECT_EXIT_FAILED = 1,  /* an answer had ok:false, or an error frame */
    INSPECT_EXIT_USAGE = 2,   /* bad arguments or bad input */
    INSPECT_EXIT_CONNECT = 3, /* cannot connect, or the broker went away */
    INSPECT_EXIT_TIMEOUT = 4, /* --timeout / --wait ran out */
};

#define INSPECT_PROG "volt-inspect"

/* Wall clock, microseconds since the epoch. */
uint64_t inspect_now_us(void);
/* Monotonic clock, milliseconds (for deadlines). */
uint64_t inspect_mono_ms(void);

/* "2026-11-28T04:00:00.123Z" (UTC) with `frac_digits` digits after the
 * second (0, 3 or 6). Writes into buf (NUL-terminated, truncated to size);
 * returns buf. */
char *inspect_time_iso(uint64_t time_us, int frac_digits, char *buf, size_t size);

/* "0s", "1.250s", "5m 02s", "2h 03m 04s", "3d 04h 05m": a duration in
 * milliseconds for people. Returns buf. */
char *inspect_duration(uint64_t ms, char *buf, size_t size);

/* Parses a decimal number of milliseconds (0 .. 2^31-1). 0 or -1. */
int inspect_parse_ms(const char *text, int *out);

/* Parses a duration: a number with an optional unit ms, s, m, h or d (no
 * unit: milliseconds), into milliseconds. 0 or -1. */
int inspect_parse_duration(const char *text, uint64_t *ms);

/* Writes s as a JSON string literal (quotes included) to f. */
void inspect_json_string(FILE *f, const char *s);

/* "volt-inspect: <message>\n" on stderr. */
void inspect_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* inspect_error() without the newline, for a caller that adds a line. */
void inspect_verror(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
