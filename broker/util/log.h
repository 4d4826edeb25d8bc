/* Logging for the broker: one line per event, to stderr, journald-friendly.
 *
 * When stderr is the journal (JOURNAL_STREAM matches), lines carry the
 * syslog "<N>" priority prefix instead of a timestamp and level word.
 * Never pass a secret to these functions: there is no redaction layer,
 * the rule is that secrets do not reach a format string.
 */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

enum log_level { LOG_LEVEL_ERROR = 3, LOG_LEVEL_WARN = 4, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

/* text: "TIME LEVEL message" (or "<N>message" to the journal);
 * json: {"time":"...","level":"info","message":"..."} per line, for log
 * pipelines (to the journal too, as the message). */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
/* "text" | "json" -> 0 and *out, or -1. */
int log_format_parse(const char *name, enum log_format *out);
enum log_level log_get_level(void);
/* "error" | "warn" | "info" | "debug" -> 0 and *out, or -1. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                                    \
            log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                                               \
    } while (0)

#endif
