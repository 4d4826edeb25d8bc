#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;
static int journal_checked;
static int to_journal;

void log_set_level(enum log_level level)
{
    current_level = level;
}

void log_set_format(enum log_format format)
{
    current_format = format;
}

int log_format_parse(const char *name, enum log_format *out)
{
    if (!strcmp(name, "text"))
        *out = LOG_FORMAT_TEXT;
    else if (!strcmp(name, "json"))
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

enum log_level log_get_level(void)
{
    return current_level;
}

static const struct {
    const char *name;
    enum log_level level;
} level_names[] = {
    {"error", LOG_LEVEL_ERROR},
    {"warn", LOG_LEVEL_WARN},
    {"info", LOG_LEVEL_INFO},
    {"debug", LOG_LEVEL_DEBUG},
};

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i].name) == 0) {
            *out = level_names[i].level;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (level_names[i].level == level)
            return level_names[i].name;
    }
    return "?";
}

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected to
 * stderr; only when it still matches is stderr really the journal. */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* The message as a JSON string's contents: quotes, backslashes and
 * control characters escaped; bytes >= 0x80 passed as they are (the
 * broker's messages are UTF-8, and a stray byte must not lose the line). */
static size_t json_escape(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len && n + 6 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[c >> 4];
            out[n + 5] = hex[c & 15];
            n += 6;
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

static size_t timestamp(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char message[2048], line[2 * 2048 + 128];
    size_t n = 0;
    va_list ap;

    if (level > current_level)
        return;
    if (!journal_checked) {
        to_journal = stderr_is_journal();
        journal_checked = 1;
    }
    va_start(ap, fmt);
    int m = vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(message) ? (size_t)m : sizeof(message) - 1;
    if (to_journal)
        n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
    if (current_format == LOG_FORMAT_JSON) {
        n += (size_t)snprintf(line + n, sizeof(line) - n, "{\"time\":\"");
        n += timestamp(line + n, sizeof(line) - n);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"level\":\"%s\",\"message\":\"",
                              log_level_name(level));
        n += json_escape(line + n, sizeof(line) - n - 4, message, mlen);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        if (!to_journal) {
            n += timestamp(line + n, sizeof(line) - n);
            n += (size_t)snprintf(line + n, sizeof(line) - n, " %-5s ", log_level_name(level));
        }
        memcpy(line + n, message, mlen);
        n += mlen;
    }
    line[n++] = '\n';
    /* One write(2) per line so concurrent writers never interleave mid-line. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
