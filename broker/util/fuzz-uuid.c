/* libFuzzer target for uuid_parse(), which reads server-chosen text.
 * Beyond "no crash": whatever parses must format back to the same text
 * (modulo case) and parse again to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t id[UUID_LEN], again[UUID_LEN];
    char text[UUID_STR_LEN + 1];

    if (uuid_parse((const char *)data, size, id) < 0)
        return 0;
    uuid_format(id, text);
    if (size != UUID_STR_LEN || strncasecmp(text, (const char *)data, UUID_STR_LEN) != 0)
        abort();
    if (uuid_parse(text, UUID_STR_LEN, again) < 0 || memcmp(id, again, UUID_LEN) != 0)
        abort();
    return 0;
}
