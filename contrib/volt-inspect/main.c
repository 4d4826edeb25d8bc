/* volt-inspect: a redis-cli/busctl/varlinkctl-style inspector for
 * volt-broker. main() parses the command line (cli.h) and hands over to
 * one verb (cmd.h). */
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "util.h"

int main(int argc, char **argv)
{
    struct inspect_opts o = {
        .name = INSPECT_DEFAULT_NAME,
        .timeout_ms = INSPECT_DEFAULT_TIMEOUT_MS,
        .wait_ms = INSPECT_DEFAULT_TIMEOUT_MS,
        .count = -1,
        .duration = -1,
    };
    const struct cli_verb *verb = NULL;
    int rc;

    /* Shell completion (contrib/completions): the words after the program
     * name, the last one being completed. */
    if (argc >= 2 && strcmp(argv[1], "__complete") == 0) {
        cli_complete(stdout, argc - 2, argv + 2);
        return INSPECT_EXIT_OK;
    }
    rc = cli_parse(argc, argv, &o, &verb);
    if (rc >= 0)
        return rc;
    return verb->run(&o);
}
