/* libFuzzer target: the configuration file parser (JSON, key table,
 * value parsing, suggestions) on arbitrary bytes. The input goes through
 * a memfd so config_load_file() is exercised exactly as in production. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char path[64];
    char errors[4096] = "";
    struct broker_config cfg;

    if (fd < 0)
        fd = memfd_create("volt-config", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (config_init(&cfg) < 0)
        abort();
    int problems = config_load_file(&cfg, path, errors, sizeof(errors));
    /* Every problem is explained; the text stays inside its buffer. */
    if (problems > 0 && errors[0] == '\0')
        abort();
    if (strnlen(errors, sizeof(errors)) >= sizeof(errors))
        abort();
    /* Validation would read a password file named by the input; keep the
     * fuzzer inside its own data. */
    free(cfg.daemon_password_file);
    cfg.daemon_password_file = NULL;
    free(cfg.listen_group);
    cfg.listen_group = NULL;
    config_validate(&cfg, errors, sizeof(errors));
    config_free(&cfg);
    return 0;
}
