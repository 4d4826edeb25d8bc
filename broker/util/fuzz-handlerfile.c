/* libFuzzer target for handlerfile_parse(), which reads a file a person
 * may have edited or a disk may have damaged. Beyond "no crash": what it
 * accepts is made of names a client could have registered, and a list
 * rendered again (as the router's list, and as extra names) parses back
 * to the same names. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/msgpack.h"
#include "proto/text.h"
#include "util/handlerfile.h"

/* What the broker passes (ROUTER_COMMAND_NAME_MAX). */
#define NAME_MAX_BYTES 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_names(const struct handlerfile *a, const struct proto_buf *text)
{
    struct handlerfile b;

    handlerfile_parse((const char *)text->data, text->len, NAME_MAX_BYTES, &b);
    if (b.kind != HANDLERFILE_LIST || b.n_names != a->n_names)
        abort();
    for (size_t i = 0; i < a->n_names; i++)
        if (strcmp(a->names[i], b.names[i]) != 0)
            abort();
    handlerfile_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_buf list = PROTO_BUF_INIT, empty = PROTO_BUF_INIT, text = PROTO_BUF_INIT;
    struct handlerfile hf;

    handlerfile_parse((const char *)data, size, NAME_MAX_BYTES, &hf);
    if ((hf.kind == HANDLERFILE_UNUSABLE) != (hf.why != NULL))
        abort();
    if (hf.kind != HANDLERFILE_LIST) {
        if (hf.names || hf.n_names)
            abort();
        handlerfile_free(&hf);
        return 0;
    }
    for (size_t i = 0; i < hf.n_names; i++)
        if (!proto_name_valid((const uint8_t *)hf.names[i], strlen(hf.names[i]), NAME_MAX_BYTES))
            abort();

    if (proto_mp_put_array(&list, (uint32_t)hf.n_names) < 0)
        abort();
    for (size_t i = 0; i < hf.n_names; i++)
        if (proto_mp_put_cstr(&list, hf.names[i]) < 0)
            abort();
    if (handlerfile_render(list.data, list.len, NULL, 0, &text) < 0)
        abort();
    same_names(&hf, &text);

    proto_buf_reset(&text);
    if (proto_mp_put_array(&empty, 0) < 0 ||
        handlerfile_render(empty.data, empty.len, (const char *const *)hf.names, hf.n_names,
                           &text) < 0)
        abort();
    same_names(&hf, &text);

    proto_buf_free(&list);
    proto_buf_free(&empty);
    proto_buf_free(&text);
    handlerfile_free(&hf);
    return 0;
}
