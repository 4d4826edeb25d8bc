/* The session on a terminal: a shell for the broker, as redis-cli is one
 * for Redis.
 *
 * libedit reads the lines: emacs-style editing, history kept per user
 * ($VOLT_INSPECT_HISTORY, else $XDG_STATE_HOME/volt-inspect/history, else
 * ~/.local/state/volt-inspect/history; mode 0600; a line typed with a
 * leading space is not kept), and tab completion of the shell's commands,
 * of ops inside a JSON frame, of the commands the broker knows (asked of
 * it at the moment of completion), of message types seen, of call ids and
 * error codes after `reply`.
 *
 * Frames that arrive while a line is being typed are printed above it and
 * the line is drawn again: libedit reads through our own getc function,
 * which polls the terminal and the broker socket together.
 *
 * Besides JSON frames, a line may be a short command that becomes one:
 *   request COMMAND [JSON]        emit TYPE [JSON]
 *   subscribe [TYPE | PREFIX* ]   unsubscribe [TYPE | PREFIX*]
 *   register COMMAND...           unregister COMMAND...
 *   status   ping   credential NAME
 *   reply ok [JSON]               reply fail CODE [MESSAGE...]
 *   reply @ID ok|fail ...         (without @ID: the last call still open)
 *   help   quit
 * Answers to our requests are shown as `#N <`, calls from the broker as
 * `@N <`: request ids and call ids are two different numberings.
 */
#ifndef INSPECT_INTERACTIVE_H
#define INSPECT_INTERACTIVE_H

#include "cmd.h"

/* Runs the shell until quit, Ctrl-D or the broker going away. Returns the
 * exit status. */
int interactive_run(const struct inspect_opts *o);

/* The history file's path into buf (see above). 0, or -1 when no home is
 * known (then there is no history file). */
int interactive_history_path(char *buf, size_t size);

#endif
