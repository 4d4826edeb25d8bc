/* The command line of volt-inspect, written down once.
 *
 * One table of verbs and one of options are the source of everything the
 * tool says about its command line: parsing (which options each verb
 * takes, so `request --listen` is refused with a clear message), the help
 * of the tool and of each verb, and shell completion (`volt-inspect
 * __complete WORD...`, which the bash and zsh scripts in
 * contrib/completions call). A new option costs one row here plus its
 * behaviour.
 */
#ifndef INSPECT_CLI_H
#define INSPECT_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "cmd.h"

/* What an argument is, for completion. */
enum cli_arg {
    CLI_ARG_NONE = 0,
    CLI_ARG_FILE,    /* a path (socket, capture, program) */
    CLI_ARG_PAYLOAD, /* JSON, @FILE or - */
    CLI_ARG_COMMAND, /* a command name (the broker's handlers) */
    CLI_ARG_TYPE,    /* a message type */
    CLI_ARG_MATCH,   /* a trace filter KEY=VALUE,... */
    CLI_ARG_VERB,    /* a verb name (help VERB) */
    CLI_ARG_TEXT,    /* anything else: nothing to offer */
};

struct cli_verb {
    const char *name;
    const char *args;           /* usage after the verb, e.g. "COMMAND [JSON]" */
    const char *summary;        /* one line for the verb list */
    const char *help;           /* the verb's own help text (before its options) */
    unsigned long long options; /* bits (1 << enum cli_opt) the verb accepts */
    enum cli_arg arg_kind[2];   /* first and further positional arguments */
    int min_args, max_args;     /* positional arguments (-1: any number) */
    int (*run)(const struct inspect_opts *o);
};

/* Parses argv into o. Returns -1 when the verb should run, or an exit
 * status to exit with at once (help and --version print and give 0;
 * usage errors are reported on stderr and give INSPECT_EXIT_USAGE). The
 * verb to run is *verb. */
int cli_parse(int argc, char **argv, struct inspect_opts *o, const struct cli_verb **verb);

/* The help of one verb, or of the whole tool for NULL / an unknown name. */
void cli_help(FILE *f, const char *verb);

/* Candidates for completing the last of words[0..n) (the words after the
 * program name; the last may be empty), one per line on f. A line ":file"
 * asks the shell to complete file names instead. Broker-dependent
 * candidates (commands) are asked of the broker with a short timeout and
 * silently left out when it cannot be reached. */
void cli_complete(FILE *f, int n, char **words);

/* The verb table row for a name (aliases included), or NULL. */
const struct cli_verb *cli_find_verb(const char *name);
/* Each verb name in order (NULL after the last), for the interactive mode. */
const char *cli_verb_name(int i);

#endif
