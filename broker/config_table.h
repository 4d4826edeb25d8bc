/* The settings table: every setting of the broker, once. Private to
 * config.c (and its tests); included nowhere else.
 *
 * A row holds what is to be known of a setting: where it is read from (the
 * file's key, the environment variable, the flag), its type, its default
 * (as text, parsed like any other value), whether SIGHUP applies it, a
 * one-line help for --help and the longer text of the man page. Defaults
 * that depend on the process (paths) have def == NULL and a def_text for
 * people; config_init() fills them in code.
 */
#ifndef BROKER_CONFIG_TABLE_H
#define BROKER_CONFIG_TABLE_H

#include <stddef.h>

#include "config.h"

enum setting_type {
    T_STR,
    T_SECRET, /* a string never taken from argv and never printed */
    T_U32,
    T_BOOL,
    T_RATIO, /* double in [0, 1] */
    T_MODE,  /* octal file mode, as a string "0660" or a number */
    T_UIDS,  /* user ids or names */
    T_GIDS,  /* group ids or names */
    T_LOGLEVEL,
    T_LOGFORMAT,
};

enum setting_section {
    S_UPSTREAM, /* the TypeScript client's options */
    S_BROKER,   /* broker.* */
    S_LIMITS,   /* broker.limits.* */
};

struct setting {
    enum setting_section section;
    const char *key;  /* JSON path, dotted */
    const char *env;  /* VOLT_* or NULL */
    const char *flag; /* without the leading "--", or NULL */
    enum setting_type type;
    size_t offset;
    const char *def;      /* default as text; NULL: none, or computed (def_text) */
    const char *def_text; /* the default for people when it is computed, else NULL */
    bool reload;          /* applied by SIGHUP */
    const char *help;     /* one line, for --help */
    const char *doc;      /* the man page's paragraph; plain text */
};

extern const struct setting config_settings[];
extern const size_t config_n_settings;

#endif
