#include "handlerfile.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "proto/msgpack.h"
#include "proto/text.h"
#include <cjson/cJSON.h>

static void unusable(struct handlerfile *out, const char *why)
{
    handlerfile_free(out);
    out->kind = HANDLERFILE_UNUSABLE;
    out->why = why;
}

void handlerfile_parse(const char *text, size_t len, size_t name_max, struct handlerfile *out)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "handlers");
    const cJSON *item;
    int size;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(root)) {
        unusable(out, "not a JSON object");
        goto out;
    }
    if (!list) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "running")))
            out->kind = HANDLERFILE_RUNNING;
        else
            unusable(out, "neither \"handlers\" nor \"running\":true");
        goto out;
    }
    if (!cJSON_IsArray(list)) {
        unusable(out, "\"handlers\" is not an array");
        goto out;
    }
    out->kind = HANDLERFILE_LIST;
    size = cJSON_GetArraySize(list);
    if (size == 0)
        goto out;
    out->names = calloc((size_t)size, sizeof(*out->names));
    if (!out->names) {
        unusable(out, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(item, list)
    {
        const char *name = cJSON_GetStringValue(item);
        if (!name || !proto_name_valid((const uint8_t *)name, strlen(name), name_max)) {
            unusable(out, "a handler name is not a valid command name");
            goto out;
        }
        if (!(out->names[out->n_names] = strdup(name))) {
            unusable(out, "out of memory");
            goto out;
        }
        out->n_names++;
    }
out:
    cJSON_Delete(root);
}

void handlerfile_free(struct handlerfile *hf)
{
    for (size_t i = 0; i < hf->n_names; i++)
        free(hf->names[i]);
    free(hf->names);
    memset(hf, 0, sizeof(*hf));
}

static int put_name(struct proto_buf *out, bool first, const char *s, size_t len)
{
    int rc = first ? 0 : proto_buf_append_byte(out, ',');
    return rc < 0 ? rc : proto_json_put_string(out, s, len);
}

int handlerfile_render(const void *list, size_t len, const char *const *extra, size_t n_extra,
                       struct proto_buf *out)
{
    size_t before = out->len;
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    uint32_t count;
    int rc;

    proto_mp_cursor_init(&c, list, len);
    rc = proto_mp_next(&c, &v);
    if (rc == 0 && v.type != PROTO_MP_ARRAY)
        rc = PROTO_E_BAD_FRAME;
    count = rc == 0 ? v.v.count : 0;
    if (rc == 0)
        rc = proto_buf_append(out, "{\"handlers\":[", 13);
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        rc = proto_mp_next(&c, &v);
        if (rc == 0 && v.type != PROTO_MP_STR)
            rc = PROTO_E_BAD_FRAME;
        if (rc == 0)
            rc = put_name(out, i == 0, (const char *)v.v.str.ptr, v.v.str.len);
    }
    /* Trailing bytes would mean the caller handed something else than
     * the list: better no file than a list that is not the one meant. */
    if (rc == 0 && !proto_mp_at_end(&c))
        rc = PROTO_E_BAD_FRAME;
    for (size_t i = 0; rc == 0 && i < n_extra; i++)
        rc = put_name(out, count == 0 && i == 0, extra[i], strlen(extra[i]));
    if (rc == 0)
        rc = proto_buf_append(out, "]}\n", 3);
    if (rc < 0)
        out->len = before;
    return rc;
}
