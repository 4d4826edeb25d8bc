#include "trace_filter.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key { K_CLIENT, K_NAME, K_PID, K_UID, K_PEER, K_DIR, K_SIDE, K_OP, K_COMMAND, K_TYPE, K_KIND };

static const char *const key_names[] = {"client", "name", "pid",     "uid",  "peer", "dir",
                                        "side",   "op",   "command", "type", "kind"};

struct term {
    enum key key;
    bool negate;
    char *value;
    long long number; /* pid, uid, peer, client id (-1: client is a name pattern) */
    int side, dir;    /* dir: -1 any; side: -1 any */
    int kind;
};

struct alt {
    struct term *terms;
    size_t n;
};

struct trace_filter {
    struct alt *alts;
    size_t n;
};

struct trace_filter *trace_filter_new(void)
{
    return calloc(1, sizeof(struct trace_filter));
}

void trace_filter_free(struct trace_filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        for (size_t j = 0; j < f->alts[i].n; j++)
            free(f->alts[i].terms[j].value);
        free(f->alts[i].terms);
    }
    free(f->alts);
    free(f);
}

static int parse_number(const char *s, long long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || *end ? -1 : 0;
}

/* Fills the parsed form of t->value for its key. 0 or -1 with err. */
static int parse_value(struct term *t, char *err, size_t size)
{
    const char *v = t->value;

    t->number = -1;
    t->side = t->dir = -1;
    switch (t->key) {
    case K_CLIENT:
        if ((v[0] == 'c' && parse_number(v + 1, &t->number) == 0) ||
            parse_number(v, &t->number) == 0)
            return 0;
        t->number = -1; /* a name pattern */
        return 0;
    case K_PID:
    case K_UID:
    case K_PEER:
        if (parse_number(v, &t->number) == 0)
            return 0;
        snprintf(err, size, "--match %s= wants a number, not '%s'", key_names[t->key], v);
        return -1;
    case K_DIR: {
        static const struct {
            const char *name;
            int side, dir;
        } dirs[] = {{"in", -1, TRACE_IN},
                    {"out", -1, TRACE_OUT},
                    {"local-in", TRACE_LOCAL, TRACE_IN},
                    {"local-out", TRACE_LOCAL, TRACE_OUT},
                    {"upstream-in", TRACE_UPSTREAM, TRACE_IN},
                    {"upstream-out", TRACE_UPSTREAM, TRACE_OUT}};
        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
            if (strcmp(v, dirs[i].name) == 0) {
                t->side = dirs[i].side;
                t->dir = dirs[i].dir;
                return 0;
            }
        }
        snprintf(err, size,
                 "--match dir= is in, out, local-in, local-out, upstream-in or "
                 "upstream-out, not '%s'",
                 v);
        return -1;
    }
    case K_SIDE:
        if (strcmp(v, "local") == 0 || strcmp(v, "upstream") == 0) {
            t->side = strcmp(v, "local") == 0 ? TRACE_LOCAL : TRACE_UPSTREAM;
            return 0;
        }
        snprintf(err, size, "--match side= is local or upstream, not '%s'", v);
        return -1;
    case K_KIND:
        for (int k = TRACE_FRAME; k <= TRACE_ERROR; k++) {
            if (strcmp(v, trace_kind_name(k)) == 0) {
                t->kind = k;
                return 0;
            }
        }
        snprintf(err, size, "--match kind= is frame, open, close or error, not '%s'", v);
        return -1;
    default:
        return 0;
    }
}

int trace_filter_add(struct trace_filter *f, const char *spec, char *err, size_t size)
{
    struct alt alt = {0};
    char *copy = strdup(spec), *save = NULL, *tok;
    struct alt *v;

    if (!copy)
        goto nomem;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        struct term t = {0}, *nt;
        size_t klen;
        bool found = false;
        if (!eq || eq == tok) {
            snprintf(err, size, "--match wants KEY=VALUE terms, not '%s'", tok);
            goto fail;
        }
        t.negate = eq[-1] == '!';
        klen = (size_t)(eq - tok) - (t.negate ? 1 : 0);
        for (size_t k = 0; k < sizeof(key_names) / sizeof(key_names[0]); k++) {
            if (strlen(key_names[k]) == klen && strncmp(key_names[k], tok, klen) == 0) {
                t.key = (enum key)k;
                found = true;
            }
        }
        if (!found) {
            snprintf(err, size,
                     "--match: unknown key '%.*s' (client, name, pid, uid, peer, dir, side, op, "
                     "command, type, kind)",
                     (int)klen, tok);
            goto fail;
        }
        t.value = strdup(eq + 1);
        if (!t.value)
            goto nomem;
        if (parse_value(&t, err, size) < 0) {
            free(t.value);
            goto fail;
        }
        nt = realloc(alt.terms, (alt.n + 1) * sizeof(*nt));
        if (!nt) {
            free(t.value);
            goto nomem;
        }
        alt.terms = nt;
        alt.terms[alt.n++] = t;
    }
    if (alt.n == 0) {
        snprintf(err, size, "--match wants at least one KEY=VALUE");
        goto fail;
    }
    v = realloc(f->alts, (f->n + 1) * sizeof(*v));
    if (!v)
        goto nomem;
    f->alts = v;
    f->alts[f->n++] = alt;
    free(copy);
    return 0;
nomem:
    snprintf(err, size, "out of memory");
fail:
    for (size_t i = 0; i < alt.n; i++)
        free(alt.terms[i].value);
    free(alt.terms);
    free(copy);
    return -1;
}

static bool has_client(const struct trace_ev *ev)
{
    return !(ev->side == TRACE_UPSTREAM && ev->kind == TRACE_FRAME);
}

static bool glob(const char *pattern, const char *text)
{
    return text && fnmatch(pattern, text, 0) == 0;
}

static bool term_holds(const struct term *t, const struct trace_ev *ev, const struct trace_what *w)
{
    switch (t->key) {
    case K_CLIENT:
        if (!has_client(ev))
            return false;
        if (t->number >= 0)
            return ev->peer == (unsigned long long)t->number;
        return glob(t->value, ev->name);
    case K_NAME:
        return has_client(ev) && glob(t->value, ev->name);
    case K_PID:
        return has_client(ev) && ev->pid == t->number;
    case K_UID:
        return has_client(ev) && ev->uid == t->number;
    case K_PEER:
        return has_client(ev) && ev->peer == (unsigned long long)t->number;
    case K_DIR:
        return (t->side < 0 || ev->side == t->side) && ev->dir == t->dir;
    case K_SIDE:
        return ev->side == t->side;
    case K_OP:
        return glob(t->value, w->op);
    case K_COMMAND:
        return glob(t->value, w->command);
    case K_TYPE:
        return glob(t->value, w->type);
    case K_KIND:
        return ev->kind == t->kind;
    }
    return false;
}

bool trace_filter_match(const struct trace_filter *f, const struct trace_ev *ev)
{
    struct trace_what w = {.op = ""};
    bool have_what = false;

    if (!f || f->n == 0)
        return true;
    for (size_t i = 0; i < f->n; i++) {
        bool all = true;
        for (size_t j = 0; j < f->alts[i].n && all; j++) {
            const struct term *t = &f->alts[i].terms[j];
            if (!have_what && (t->key == K_OP || t->key == K_COMMAND || t->key == K_TYPE)) {
                trace_what(ev, &w);
                have_what = true;
            }
            all = term_holds(t, ev, &w) != t->negate;
        }
        if (all)
            return true;
    }
    return false;
}
