/* A caller's error buffer: the modules that explain a failure in English
 * (the state directory's files, say) write into char errbuf[errlen]
 * rather than logging, so the caller decides how and whether to log. */
#ifndef UTIL_ERRBUF_H
#define UTIL_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Formats into errbuf (cut to fit); no-op when errbuf is NULL or errlen 0. */
static inline void errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!errbuf || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

#endif
