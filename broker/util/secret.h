/* Freeing memory that held a secret (a daemon password, an enrollment
 * token): wiped first, so it does not linger in freed heap. */
#ifndef UTIL_SECRET_H
#define UTIL_SECRET_H

#include <cjson/cJSON.h>

/* A copy of a secret, to be freed with secret_free(). NULL for NULL (and
 * on out of memory: compare with the argument). */
char *secret_dup(const char *s);
/* Wipes a NUL-terminated string and frees it. NULL is fine. */
void secret_free(char *s);
/* cJSON keeps its own copies of strings: wipes every string value in the
 * tree, then cJSON_Delete()s it. NULL is fine. */
void secret_json_delete(cJSON *item);

#endif
