#include "names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "proto/errors.h"
#include "util.h"

struct names {
    struct names_entry *v;
    size_t n, cap;
    uint64_t *asked;
    size_t n_asked, cap_asked;
};

/* ---- reading the status map ---- */

static bool key_is(struct proto_span key, const char *name)
{
    return key.len == strlen(name) && memcmp(key.ptr, name, key.len) == 0;
}

/* The member `name` of the map at the cursor's value (raw span), or a
 * span with ptr NULL. */
static struct proto_span map_get(struct proto_span map, const char *name)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v, k;
    struct proto_span val, none = {NULL, 0};

    if (!map.ptr)
        return none;
    proto_mp_cursor_init(&c, map.ptr, map.len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_MAP)
        return none;
    for (uint32_t i = 0; i < v.v.count; i++) {
        if (proto_mp_next(&c, &k) < 0 || proto_mp_skip(&c, &val) < 0)
            return none;
        if (k.type == PROTO_MP_STR && key_is(k.v.str, name))
            return val;
    }
    return none;
}

static long long get_num(struct proto_span map, const char *name)
{
    struct proto_span val = map_get(map, name);
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    uint64_t u;

    if (!val.ptr)
        return -1;
    proto_mp_cursor_init(&c, val.ptr, val.len);
    if (proto_mp_next(&c, &v) < 0 || proto_mp_value_u64(&v, &u) < 0 || u > (uint64_t)INT64_MAX)
        return -1;
    return (long long)u;
}

static void get_str(struct proto_span map, const char *name, char *buf, size_t size)
{
    struct proto_span val = map_get(map, name);
    struct proto_mp_cursor c;
    struct proto_mp_value v;

    buf[0] = '\0';
    if (!val.ptr)
        return;
    proto_mp_cursor_init(&c, val.ptr, val.len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_STR)
        return;
    snprintf(buf, size, "%.*s", (int)v.v.str.len, (const char *)v.v.str.ptr);
}

int names_each_client(const void *data, size_t len,
                      void (*cb)(void *ctx, const struct names_client *c), void *ctx)
{
    struct proto_span status = {data, (uint32_t)len};
    struct proto_span list;
    struct proto_mp_cursor c;
    struct proto_mp_value v;

    proto_mp_cursor_init(&c, data, len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_MAP)
        return PROTO_E_BAD_FRAME;
    list = map_get(status, "clients");
    if (!list.ptr)
        return 0;
    proto_mp_cursor_init(&c, list.ptr, list.len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_ARRAY)
        return PROTO_E_BAD_FRAME;
    for (uint32_t i = 0; i < v.v.count; i++) {
        struct names_client cl;
        struct proto_span item;
        long long id;
        if (proto_mp_skip(&c, &item) < 0)
            return PROTO_E_BAD_FRAME;
        id = get_num(item, "id");
        if (id < 0)
            continue; /* not a client entry this tool understands */
        memset(&cl, 0, sizeof(cl));
        cl.id = (uint64_t)id;
        cl.pid = get_num(item, "pid");
        cl.uid = get_num(item, "uid");
        cl.queue_bytes = get_num(item, "queue_bytes");
        cl.in_flight = get_num(item, "in_flight");
        get_str(item, "name", cl.name, sizeof(cl.name));
        cl.handlers = map_get(item, "handlers");
        cl.subscriptions = map_get(item, "subscriptions");
        cl.raw = item;
        cb(ctx, &cl);
    }
    return 0;
}

void names_each_str(struct proto_span array, void (*cb)(void *ctx, struct proto_span s), void *ctx)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v, s;

    if (!array.ptr)
        return;
    proto_mp_cursor_init(&c, array.ptr, array.len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_ARRAY)
        return;
    for (uint32_t i = 0; i < v.v.count; i++) {
        struct proto_span raw;
        struct proto_mp_cursor one;
        if (proto_mp_skip(&c, &raw) < 0)
            return;
        proto_mp_cursor_init(&one, raw.ptr, raw.len);
        if (proto_mp_next(&one, &s) == 0 && s.type == PROTO_MP_STR)
            cb(ctx, s.v.str);
    }
}

/* ---- the cache ---- */

struct names *names_new(void)
{
    return calloc(1, sizeof(struct names));
}

void names_free(struct names *n)
{
    if (!n)
        return;
    free(n->v);
    free(n->asked);
    free(n);
}

static struct names_entry *entry_for(struct names *n, uint64_t id, bool create)
{
    for (size_t i = 0; i < n->n; i++)
        if (n->v[i].id == id)
            return &n->v[i];
    if (!create)
        return NULL;
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 16;
        struct names_entry *v = realloc(n->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        n->v = v;
        n->cap = cap;
    }
    n->v[n->n] = (struct names_entry){.id = id, .pid = -1, .uid = -1};
    return &n->v[n->n++];
}

struct update_ctx {
    struct names *n;
    int rc;
};

static void update_one(void *ctx, const struct names_client *c)
{
    struct update_ctx *u = ctx;
    struct names_entry *e = entry_for(u->n, c->id, true);

    if (!e) {
        u->rc = PROTO_E_NOMEM;
        return;
    }
    e->pid = c->pid;
    e->uid = c->uid;
    if (c->name[0])
        snprintf(e->name, sizeof(e->name), "%s", c->name);
}

int names_update(struct names *n, const void *status, size_t len)
{
    struct update_ctx u = {n, 0};
    int rc = names_each_client(status, len, update_one, &u);

    return rc < 0 ? rc : u.rc;
}

void names_learn(struct names *n, uint64_t id, const char *name, size_t len)
{
    struct names_entry *e = entry_for(n, id, true);

    if (e && len)
        snprintf(e->name, sizeof(e->name), "%.*s", (int)len, name);
}

const struct names_entry *names_get(const struct names *n, uint64_t id)
{
    return entry_for((struct names *)n, id, false);
}

bool names_asked(const struct names *n, uint64_t id)
{
    for (size_t i = 0; i < n->n_asked; i++)
        if (n->asked[i] == id)
            return true;
    return false;
}

void names_mark_asked(struct names *n, uint64_t id)
{
    if (n->n_asked == n->cap_asked) {
        size_t cap = n->cap_asked ? n->cap_asked * 2 : 16;
        uint64_t *v = realloc(n->asked, cap * sizeof(*v));
        if (!v)
            return; /* then it may be asked again: harmless */
        n->asked = v;
        n->cap_asked = cap;
    }
    n->asked[n->n_asked++] = id;
}

/* ---- asking the broker ---- */

int names_fetch_status(const char *socket, int timeout_ms, void **data, size_t *len)
{
    uint64_t deadline = inspect_mono_ms() + (uint64_t)timeout_ms;
    enum conn_path_source source = CONN_PATH_ARGUMENT;
    struct proto_span welcome, answer;
    struct proto_msg m;
    struct conn *c = NULL;
    char path[512], msg[512];
    int rc = -1;

    if (socket)
        snprintf(path, sizeof(path), "%s", socket);
    else if (conn_default_path(path, sizeof(path), &source) < 0)
        return -1;
    if (conn_open(path, source, &c, msg, sizeof(msg)) < 0)
        return -1;
    if (conn_hello(c, INSPECT_PROG, deadline, &welcome, &m, msg, sizeof(msg)) < 0)
        goto out;
    if (conn_call_simple(c, PROTO_OP_STATUS, 1, deadline, NULL, NULL, &answer, &m, msg,
                         sizeof(msg)) < 0)
        goto out;
    if (m.op != PROTO_OP_RESULT || !m.ok || !proto_msg_has(&m, PROTO_F_DATA))
        goto out;
    *data = malloc(m.data.len ? m.data.len : 1);
    if (!*data)
        goto out;
    memcpy(*data, m.data.ptr, m.data.len);
    *len = m.data.len;
    rc = 0;
out:
    conn_free(c);
    return rc;
}

int names_words_add(char ***list, size_t *n, const char *s, size_t len)
{
    char **v;

    for (size_t i = 0; i < *n; i++)
        if (strlen((*list)[i]) == len && memcmp((*list)[i], s, len) == 0)
            return 0;
    v = realloc(*list, (*n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    *list = v;
    v[*n] = strndup(s, len);
    if (!v[*n])
        return -ENOMEM;
    (*n)++;
    return 0;
}

static void add_command(void *ctx, struct proto_span s)
{
    struct names_words *w = ctx;

    names_words_add(&w->commands, &w->n_commands, (const char *)s.ptr, s.len);
}

/* "exact:TYPE" and "prefix:TYPE" name a type; "all" does not. */
static void add_type(void *ctx, struct proto_span s)
{
    struct names_words *w = ctx;
    const char *p = (const char *)s.ptr;
    const char *colon = memchr(p, ':', s.len);

    if (colon && colon + 1 < p + s.len)
        names_words_add(&w->types, &w->n_types, colon + 1, (size_t)(p + s.len - colon - 1));
}

static void words_of_client(void *ctx, const struct names_client *c)
{
    names_each_str(c->handlers, add_command, ctx);
    names_each_str(c->subscriptions, add_type, ctx);
}

int names_broker_words(const char *socket, int timeout_ms, struct names_words *w)
{
    void *data = NULL;
    size_t len = 0;
    int rc;

    if (names_fetch_status(socket, timeout_ms, &data, &len) < 0)
        return -1;
    rc = names_each_client(data, len, words_of_client, w);
    free(data);
    return rc < 0 ? -1 : 0;
}

void names_words_free(struct names_words *w)
{
    for (size_t i = 0; i < w->n_commands; i++)
        free(w->commands[i]);
    for (size_t i = 0; i < w->n_types; i++)
        free(w->types[i]);
    free(w->commands);
    free(w->types);
    memset(w, 0, sizeof(*w));
}
