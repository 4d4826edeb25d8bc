#include "status_print.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/errors.h"
#include "proto/json.h"
#include "proto/msgpack.h"
#include "util.h"

/* A value of the status map: raw msgpack bytes of one whole value. A span
 * with ptr == NULL is "absent". */
typedef struct proto_span value_t;

#define LABEL_WIDTH      10
#define COUNTERS_PER_ROW 3

struct map_iter {
    struct proto_mp_cursor cur;
    uint32_t left;
};

static bool map_open(value_t map, struct map_iter *it)
{
    struct proto_mp_value v;

    if (!map.ptr)
        return false;
    proto_mp_cursor_init(&it->cur, map.ptr, map.len);
    if (proto_mp_next(&it->cur, &v) < 0 || v.type != PROTO_MP_MAP)
        return false;
    it->left = v.v.count;
    return true;
}

/* Next member: its key (a string, else skipped) and raw value. */
static bool map_next(struct map_iter *it, struct proto_span *key, value_t *val)
{
    struct proto_mp_value k;

    while (it->left > 0) {
        it->left--;
        if (proto_mp_next(&it->cur, &k) < 0 || proto_mp_skip(&it->cur, val) < 0)
            return false;
        if (k.type != PROTO_MP_STR)
            continue;
        *key = k.v.str;
        return true;
    }
    return false;
}

static bool key_is(struct proto_span key, const char *name)
{
    return key.len == strlen(name) && memcmp(key.ptr, name, key.len) == 0;
}

static value_t map_get(value_t map, const char *name)
{
    struct map_iter it;
    struct proto_span key;
    value_t val, none = {NULL, 0};

    if (!map_open(map, &it))
        return none;
    while (map_next(&it, &key, &val))
        if (key_is(key, name))
            return val;
    return none;
}

static bool value_uint(value_t val, uint64_t *out)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;

    if (!val.ptr)
        return false;
    proto_mp_cursor_init(&c, val.ptr, val.len);
    return proto_mp_next(&c, &v) == 0 && proto_mp_value_u64(&v, out) == 0;
}

static bool get_uint(value_t map, const char *name, uint64_t *out)
{
    return value_uint(map_get(map, name), out);
}

/* A string member, or NULL span when absent or not a string. */
static struct proto_span get_str(value_t map, const char *name)
{
    value_t val = map_get(map, name);
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    struct proto_span none = {NULL, 0};

    if (!val.ptr)
        return none;
    proto_mp_cursor_init(&c, val.ptr, val.len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_STR)
        return none;
    return v.v.str;
}

static void put_str_or_dash(FILE *f, struct proto_span s)
{
    if (s.ptr && s.len)
        fwrite(s.ptr, 1, s.len, f);
    else
        fputc('-', f);
}

char *status_format_bytes(unsigned long long n, char *buf, size_t size)
{
    static const char units[] = "KMGTPE";
    double v = (double)n;
    int u = -1;

    if (n < 1024u) {
        snprintf(buf, size, "%lluB", n);
        return buf;
    }
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.1f%c", v, units[u]);
    return buf;
}

static void print_broker(FILE *f, value_t broker)
{
    struct proto_span listen;
    uint64_t n;
    char d[48];

    fprintf(f, "%-*s", LABEL_WIDTH, "broker");
    put_str_or_dash(f, get_str(broker, "version"));
    if (get_uint(broker, "pid", &n))
        fprintf(f, "  pid %llu", (unsigned long long)n);
    if (get_uint(broker, "uptime_ms", &n))
        fprintf(f, "  up %s", inspect_duration(n, d, sizeof(d)));
    fputc('\n', f);
    listen = get_str(broker, "listen");
    if (listen.ptr && listen.len) {
        fprintf(f, "%-*slisten ", LABEL_WIDTH, "");
        put_str_or_dash(f, listen);
        fputc('\n', f);
    }
}

/* since_ms: a wall-clock time in ms when it looks like one (after 2001),
 * else the time spent in the state. */
static void print_since(FILE *f, uint64_t since_ms)
{
    char t[48];

    if (since_ms >= 1000000000000ull)
        fprintf(f, "  since %s", inspect_time_iso(since_ms * 1000u, 0, t, sizeof(t)));
    else
        fprintf(f, "  for %s", inspect_duration(since_ms, t, sizeof(t)));
}

static void print_upstream(FILE *f, value_t up)
{
    struct proto_span url = get_str(up, "url");
    struct proto_span team = get_str(up, "team_cluster_id");
    struct proto_span reason = get_str(up, "reason");
    uint64_t n;

    fprintf(f, "%-*s", LABEL_WIDTH, "upstream");
    put_str_or_dash(f, get_str(up, "state"));
    if (get_uint(up, "since_ms", &n))
        print_since(f, n);
    fputc('\n', f);
    if (url.ptr || team.ptr) {
        fprintf(f, "%-*surl ", LABEL_WIDTH, "");
        put_str_or_dash(f, url);
        fputs("  team cluster ", f);
        put_str_or_dash(f, team);
        fputc('\n', f);
    }
    if (reason.ptr && reason.len) {
        fprintf(f, "%-*sreason: ", LABEL_WIDTH, "");
        put_str_or_dash(f, reason);
        fputc('\n', f);
    }
}

static void format_uint_value(value_t val, char *buf, size_t size)
{
    uint64_t n;

    if (value_uint(val, &n))
        snprintf(buf, size, "%llu", (unsigned long long)n);
    else
        snprintf(buf, size, "?");
}

/* Counters in a grid, COUNTERS_PER_ROW to a row, names and numbers
 * aligned across rows. */
static void print_counters(FILE *f, value_t counters)
{
    struct map_iter it;
    struct proto_span key;
    value_t val;
    size_t name_w = 0, value_w = 0;
    unsigned col = 0;
    bool first_row = true;
    char num[24];

    if (!map_open(counters, &it))
        return;
    while (map_next(&it, &key, &val)) {
        format_uint_value(val, num, sizeof(num));
        if (key.len > name_w)
            name_w = key.len;
        if (strlen(num) > value_w)
            value_w = strlen(num);
    }
    map_open(counters, &it);
    while (map_next(&it, &key, &val)) {
        format_uint_value(val, num, sizeof(num));
        if (col == 0) {
            fprintf(f, "%-*s", LABEL_WIDTH, first_row ? "counters" : "");
            first_row = false;
        } else {
            fputs("  ", f);
        }
        fprintf(f, "%.*s%*s %*s", (int)key.len, (const char *)key.ptr, (int)(name_w - key.len), "",
                (int)value_w, num);
        if (++col == COUNTERS_PER_ROW) {
            fputc('\n', f);
            col = 0;
        }
    }
    if (col)
        fputc('\n', f);
}

/* Columns of the clients table. */
enum client_col {
    COL_ID,
    COL_PID,
    COL_UID,
    COL_NAME,
    COL_QUEUE,
    COL_IN_FLIGHT,
    COL_HANDLERS,
    COL_SUBSCRIPTIONS,
    COL__COUNT
};

static const char *const col_title[COL__COUNT] = {
    "ID", "PID", "UID", "NAME", "QUEUE", "IN-FLIGHT", "HANDLERS", "SUBSCRIPTIONS",
};

/* The strings of an array, joined by ",", or "-" when empty/absent. */
static int join_strings(value_t arr, struct proto_buf *out)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    uint32_t count, written = 0;
    int rc = 0;

    if (arr.ptr) {
        proto_mp_cursor_init(&c, arr.ptr, arr.len);
        if (proto_mp_next(&c, &v) == 0 && v.type == PROTO_MP_ARRAY) {
            count = v.v.count;
            for (uint32_t i = 0; i < count && rc == 0; i++) {
                struct proto_mp_cursor item = c;
                if (proto_mp_skip(&c, NULL) < 0 || proto_mp_next(&item, &v) < 0)
                    break;
                if (v.type != PROTO_MP_STR)
                    continue;
                if (written++)
                    rc = proto_buf_append_byte(out, ',');
                if (rc == 0)
                    rc = proto_buf_append(out, v.v.str.ptr, v.v.str.len);
            }
        }
    }
    if (rc == 0 && written == 0)
        rc = proto_buf_append_byte(out, '-');
    return rc;
}

/* Text of one cell into out (reset first). 0 or PROTO_E_NOMEM. */
static int client_cell(value_t client, enum client_col col, struct proto_buf *out)
{
    static const char *const uint_key[] = {
        [COL_ID] = "id", [COL_PID] = "pid", [COL_UID] = "uid", [COL_IN_FLIGHT] = "in_flight"};
    char text[32];
    uint64_t n;
    struct proto_span s;

    proto_buf_reset(out);
    switch (col) {
    case COL_NAME:
        s = get_str(client, "name");
        if (s.ptr && s.len)
            return proto_buf_append(out, s.ptr, s.len);
        return proto_buf_append_byte(out, '-');
    case COL_QUEUE:
        if (!get_uint(client, "queue_bytes", &n))
            return proto_buf_append_byte(out, '-');
        status_format_bytes(n, text, sizeof(text));
        return proto_buf_append(out, text, strlen(text));
    case COL_HANDLERS:
        return join_strings(map_get(client, "handlers"), out);
    case COL_SUBSCRIPTIONS:
        return join_strings(map_get(client, "subscriptions"), out);
    default:
        if (!get_uint(client, uint_key[col], &n))
            return proto_buf_append_byte(out, '-');
        snprintf(text, sizeof(text), "%llu", (unsigned long long)n);
        return proto_buf_append(out, text, strlen(text));
    }
}

/* Walks the clients array: calls fn for each client map. */
static int for_each_client(value_t clients, int (*fn)(void *ctx, value_t client), void *ctx)
{
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    value_t client;
    int rc;

    if (!clients.ptr)
        return 0;
    proto_mp_cursor_init(&c, clients.ptr, clients.len);
    if (proto_mp_next(&c, &v) < 0 || v.type != PROTO_MP_ARRAY)
        return 0;
    for (uint32_t i = v.v.count; i > 0; i--) {
        if (proto_mp_skip(&c, &client) < 0)
            break;
        if ((rc = fn(ctx, client)) < 0)
            return rc;
    }
    return 0;
}

struct table {
    FILE *f;
    size_t width[COL__COUNT];
    size_t rows;
    struct proto_buf cell;
};

static int measure_row(void *ctx, value_t client)
{
    struct table *t = ctx;
    int rc;

    t->rows++;
    for (int col = 0; col < COL__COUNT; col++) {
        if ((rc = client_cell(client, col, &t->cell)) < 0)
            return rc;
        if (t->cell.len > t->width[col])
            t->width[col] = t->cell.len;
    }
    return 0;
}

static void print_cell(struct table *t, int col, const void *text, size_t len)
{
    fputs("  ", t->f);
    fwrite(text, 1, len, t->f);
    if (col + 1 < COL__COUNT)
        fprintf(t->f, "%*s", (int)(t->width[col] - len), "");
}

static int print_row(void *ctx, value_t client)
{
    struct table *t = ctx;
    int rc;

    for (int col = 0; col < COL__COUNT; col++) {
        if ((rc = client_cell(client, col, &t->cell)) < 0)
            return rc;
        print_cell(t, col, t->cell.data, t->cell.len);
    }
    fputc('\n', t->f);
    return 0;
}

static int print_clients(FILE *f, value_t clients)
{
    struct table t = {.f = f};
    int rc;

    proto_buf_init(&t.cell);
    for (int col = 0; col < COL__COUNT; col++)
        t.width[col] = strlen(col_title[col]);
    rc = for_each_client(clients, measure_row, &t);
    if (rc < 0)
        goto out;
    fprintf(f, "%-*s%zu connected\n", LABEL_WIDTH, "clients", t.rows);
    if (t.rows == 0)
        goto out;
    for (int col = 0; col < COL__COUNT; col++)
        print_cell(&t, col, col_title[col], strlen(col_title[col]));
    fputc('\n', f);
    rc = for_each_client(clients, print_row, &t);
out:
    proto_buf_free(&t.cell);
    return rc;
}

/* A section this version does not know: its name and its JSON. */
static int print_other(FILE *f, struct proto_span key, value_t val)
{
    struct proto_buf json = PROTO_BUF_INIT;
    struct proto_json_opts opts = {.bin = PROTO_JSON_BIN_MARKER};
    int rc = proto_msgpack_to_json(val.ptr, val.len, &json, &opts, NULL);

    if (rc == 0) {
        int pad = key.len < LABEL_WIDTH ? LABEL_WIDTH - (int)key.len : 1;
        fprintf(f, "%.*s%*s%.*s\n", (int)key.len, (const char *)key.ptr, pad, "", (int)json.len,
                (const char *)json.data);
    }
    proto_buf_free(&json);
    return rc == PROTO_E_NOMEM ? rc : 0;
}

int status_print(FILE *f, const void *data, size_t len)
{
    value_t map = {data, (uint32_t)len};
    struct map_iter it;
    struct proto_span key;
    value_t val;
    int rc;

    if (!map_open(map, &it))
        return PROTO_E_BAD_FRAME;
    print_broker(f, map_get(map, "broker"));
    print_upstream(f, map_get(map, "upstream"));
    print_counters(f, map_get(map, "counters"));
    if ((rc = print_clients(f, map_get(map, "clients"))) < 0)
        return rc;
    while (map_next(&it, &key, &val)) {
        if (key_is(key, "broker") || key_is(key, "upstream") || key_is(key, "counters") ||
            key_is(key, "clients"))
            continue;
        if ((rc = print_other(f, key, val)) < 0)
            return rc;
    }
    return 0;
}
