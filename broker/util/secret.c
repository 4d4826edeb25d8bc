#include "secret.h"

#include <stdlib.h>
#include <string.h>

char *secret_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void secret_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

void secret_json_delete(cJSON *item)
{
    for (cJSON *it = item; it; it = it->next) {
        if (it->child)
            secret_json_delete(it->child);
        it->child = NULL;
        if (it->valuestring)
            explicit_bzero(it->valuestring, strlen(it->valuestring));
    }
    cJSON_Delete(item);
}
