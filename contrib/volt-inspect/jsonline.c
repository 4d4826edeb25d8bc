#include "jsonline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "proto/limits.h"

struct jsonline {
    struct proto_json_doc doc;
    struct proto_buf scratch; /* decoded op name */
    uint64_t next_id;
    uint32_t max_frame;
    bool auto_id;
    bool auto_id_all;
    bool raw;
};

struct jsonline *jsonline_new(void)
{
    struct jsonline *jl = calloc(1, sizeof(*jl));

    if (!jl)
        return NULL;
    proto_json_doc_init(&jl->doc);
    proto_buf_init(&jl->scratch);
    jl->next_id = 1;
    jl->max_frame = PROTO_DEFAULT_MAX_FRAME;
    jl->auto_id = true;
    return jl;
}

void jsonline_free(struct jsonline *jl)
{
    if (!jl)
        return;
    proto_json_doc_free(&jl->doc);
    proto_buf_free(&jl->scratch);
    free(jl);
}

void jsonline_set_auto_id(struct jsonline *jl, bool on, bool all_ops)
{
    jl->auto_id = on;
    jl->auto_id_all = all_ops;
}

void jsonline_set_raw(struct jsonline *jl, bool raw)
{
    jl->raw = raw;
}

void jsonline_set_max_frame(struct jsonline *jl, uint32_t max_frame)
{
    jl->max_frame = max_frame ? max_frame : PROTO_DEFAULT_MAX_FRAME;
}

uint64_t jsonline_next_id(const struct jsonline *jl)
{
    return jl->next_id;
}

bool jsonline_op_takes_id(enum proto_op op, bool all_ops)
{
    /* proto's op table says how each op is answered. */
    const struct proto_op_info *info = proto_op_info(op);

    if (!info || !info->from_client)
        return all_ops; /* unknown ops, the broker's own ops */
    switch (info->answer) {
    case PROTO_ANSWER_RESULT:
    case PROTO_ANSWER_PONG:
        return true;
    case PROTO_ANSWER_RESULT_IF_ID:
        return all_ops; /* emit: an id changes what the broker answers */
    default:
        return false; /* hello; reply (its id is the broker's call id) */
    }
}

static bool is_blank_or_comment(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        return c == '#';
    }
    return true;
}

/* Reads the line's `op` (PROTO_OP_NONE if unknown) and `id`. Returns 0, or
 * PROTO_E_BAD_REQUEST when there is no string op (and ops are required). */
static int read_op_and_id(struct jsonline *jl, int *id_tok, struct jsonline_sent *sent, char *err,
                          size_t err_size)
{
    const struct proto_json_doc *d = &jl->doc;
    int op_tok = proto_json_find(d, 0, "op");
    int64_t id;

    if (op_tok >= 0 && d->tok[op_tok].type == PROTO_JSON_STRING) {
        proto_buf_reset(&jl->scratch);
        if (proto_json_string(d, (uint32_t)op_tok, &jl->scratch, NULL) == 0)
            sent->op = proto_op_from_name((const char *)jl->scratch.data, jl->scratch.len);
    } else if (!jl->raw) {
        snprintf(err, err_size, "the object has no string \"op\" (e.g. {\"op\":\"ping\"})");
        return PROTO_E_BAD_REQUEST;
    }

    *id_tok = proto_json_find(d, 0, "id");
    if (*id_tok >= 0 && d->tok[*id_tok].type == PROTO_JSON_NUMBER &&
        proto_json_int64(d, (uint32_t)*id_tok, &id) == 0 && id >= 0) {
        sent->has_id = true;
        sent->id = (uint64_t)id;
    }
    return 0;
}

/* Writes the top-level object as a map with `"id": id` inserted after the
 * `op` member (or first, when there is no op). */
static int encode_with_id(struct jsonline *jl, uint64_t id, struct proto_buf *out,
                          const struct proto_json_opts *opts, struct proto_json_error *jerr)
{
    const struct proto_json_doc *d = &jl->doc;
    uint32_t count = d->tok[0].count;
    uint32_t key = 1;
    bool id_written = false;
    int rc;

    if ((rc = proto_mp_put_map(out, count + 1)) < 0)
        return rc;
    if (proto_json_find(d, 0, "op") < 0) {
        if ((rc = proto_mp_put_cstr(out, "id")) < 0 || (rc = proto_mp_put_uint(out, id)) < 0)
            return rc;
        id_written = true;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t value = key + 1;
        if ((rc = proto_json_to_msgpack_tok(d, key, out, opts, jerr)) < 0 ||
            (rc = proto_json_to_msgpack_tok(d, value, out, opts, jerr)) < 0)
            return rc;
        if (!id_written && proto_json_string_eq(d, key, "op")) {
            if ((rc = proto_mp_put_cstr(out, "id")) < 0 || (rc = proto_mp_put_uint(out, id)) < 0)
                return rc;
            id_written = true;
        }
        key = d->tok[value].next;
    }
    return 0;
}

int jsonline_to_frame(struct jsonline *jl, const char *line, size_t len, struct proto_buf *out,
                      struct jsonline_sent *sent, char *err, size_t err_size)
{
    struct proto_json_opts opts = {.bin = PROTO_JSON_BIN_MARKER};
    struct proto_json_error jerr = {0};
    struct jsonline_sent info = {.op = PROTO_OP_NONE};
    size_t start = out->len;
    size_t body_len;
    int id_tok = -1;
    bool assign;
    int rc;

    if (is_blank_or_comment(line, len))
        return 1;
    rc = proto_json_parse(&jl->doc, line, len, 0, &jerr);
    if (rc < 0) {
        snprintf(err, err_size, "not valid JSON: %s", jerr.text[0] ? jerr.text : "parse error");
        return rc == PROTO_E_NOMEM ? rc : PROTO_E_BAD_FRAME;
    }
    if (jl->doc.n == 0 || jl->doc.tok[0].type != PROTO_JSON_OBJECT) {
        snprintf(err, err_size, "a frame must be one JSON object per line");
        return PROTO_E_BAD_FRAME;
    }
    if ((rc = read_op_and_id(jl, &id_tok, &info, err, err_size)) < 0)
        return rc;

    assign =
        !jl->raw && jl->auto_id && id_tok < 0 && jsonline_op_takes_id(info.op, jl->auto_id_all);
    if (assign) {
        info.has_id = true;
        info.id_assigned = true;
        info.id = jl->next_id;
    }

    if ((rc = proto_buf_append(out, "\0\0\0\0", PROTO_LENGTH_PREFIX)) < 0)
        goto fail_nomem;
    if (assign)
        rc = encode_with_id(jl, info.id, out, &opts, &jerr);
    else
        rc = proto_json_to_msgpack_tok(&jl->doc, 0, out, &opts, &jerr);
    if (rc < 0) {
        out->len = start;
        if (rc == PROTO_E_NOMEM)
            goto fail_nomem;
        snprintf(err, err_size, "cannot encode: %s", jerr.text[0] ? jerr.text : "bad value");
        return rc;
    }
    /* {"$bin":"..."} alone is one binary value, not a map. */
    if ((out->data[start + PROTO_LENGTH_PREFIX] & 0xf0) != 0x80 &&
        out->data[start + PROTO_LENGTH_PREFIX] != 0xde &&
        out->data[start + PROTO_LENGTH_PREFIX] != 0xdf) {
        out->len = start;
        snprintf(err, err_size, "a frame must be one JSON object per line");
        return PROTO_E_BAD_FRAME;
    }
    body_len = out->len - start - PROTO_LENGTH_PREFIX;
    if (body_len > jl->max_frame) {
        out->len = start;
        snprintf(err, err_size, "frame of %zu bytes is over the broker's max_frame (%u)", body_len,
                 jl->max_frame);
        return PROTO_E_FRAME_TOO_LARGE;
    }
    out->data[start] = (uint8_t)(body_len >> 24);
    out->data[start + 1] = (uint8_t)(body_len >> 16);
    out->data[start + 2] = (uint8_t)(body_len >> 8);
    out->data[start + 3] = (uint8_t)body_len;

    if (assign)
        jl->next_id++;
    else if (info.has_id && jsonline_op_takes_id(info.op, true) && info.id >= jl->next_id &&
             info.id < UINT64_MAX)
        jl->next_id = info.id + 1;
    info.expects_answer = info.has_id && info.op != PROTO_OP_REPLY && info.op != PROTO_OP_HELLO;
    if (sent)
        *sent = info;
    return 0;

fail_nomem:
    out->len = start;
    snprintf(err, err_size, "out of memory");
    return PROTO_E_NOMEM;
}

int jsonline_from_frame(struct jsonline *jl, const void *body, size_t len, struct proto_buf *out,
                        char *err, size_t err_size)
{
    struct proto_json_opts opts = {.bin = PROTO_JSON_BIN_MARKER};
    struct proto_json_error jerr = {0};
    int rc;

    (void)jl;
    rc = proto_msgpack_to_json(body, len, out, &opts, &jerr);
    if (rc < 0)
        snprintf(err, err_size, "cannot show frame as JSON: %s",
                 jerr.text[0] ? jerr.text : proto_error_text(rc));
    return rc;
}
