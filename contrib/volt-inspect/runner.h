/* Runs a program per call, several at once, from a poll() loop:
 * `volt-inspect serve COMMAND --exec PROG [ARG...]`.
 *
 * Each call starts PROG (fork + exec, found on $PATH) in a process group of
 * its own, with the payload's JSON text on its stdin, VOLT_COMMAND and
 * VOLT_CALL_ID in its environment, and its stdout and stderr on pipes. All
 * three pipes are non-blocking and driven by the caller's poll(), so one
 * slow or stuck program never holds up the others or the connection to the
 * broker. At most `jobs` run at once; more calls wait in order.
 *
 * The answer, once the program has exited and both pipes have ended:
 *   exit 0 and stdout one JSON value  -> ok, data = that value
 *   exit 0, stdout empty or not JSON  -> fail, "PROG printed no JSON: ..."
 *   exit N (not 0)                    -> fail, its stderr (or "PROG exited
 *                                        with status N" when it said nothing)
 *   killed by a signal                -> fail, "PROG was killed by SIGSEGV"
 *   over the time limit               -> the whole process group is killed
 *                                        (SIGKILL), fail "PROG did not
 *                                        finish within N ms (killed)"
 * A program that exits while something it started still holds its pipes
 * open gets RUNNER_LINGER_MS more, then its group is killed. Every child is
 * reaped: exits are noticed through SIGCHLD (a self-pipe polled with the
 * rest), and runner_free kills and reaps what still runs.
 *
 * Process-wide effects, fine for a command-line tool: SIGPIPE is ignored
 * (a program that does not read its stdin must not kill us) and SIGCHLD has
 * a handler while a runner exists. One runner per process.
 */
#ifndef INSPECT_RUNNER_H
#define INSPECT_RUNNER_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RUNNER_MAX_STDOUT (16u << 20) /* a reply larger than a frame cannot be sent */
#define RUNNER_MAX_STDERR 4096u       /* what is kept for the error message */
#define RUNNER_LINGER_MS  200

/* The answer to one call: data (one msgpack value) when ok, else message.
 * Both valid during the callback only. */
struct runner_answer {
    uint64_t call_id;
    bool ok;
    const uint8_t *data;
    size_t len;
    const char *message;
    uint64_t elapsed_ms; /* from the start of the program (0: never started) */
};

struct runner_opts {
    char *const *argv;   /* PROG and its arguments, NULL-terminated */
    const char *command; /* for VOLT_COMMAND */
    int jobs;            /* at most this many at once (>= 1) */
    void (*done)(void *ctx, const struct runner_answer *a);
    void *ctx;
};

struct runner;

/* 0 and *out, or -errno. */
int runner_new(const struct runner_opts *o, struct runner **out);
/* Kills every program still running (its whole group), reaps them, frees.
 * Calls not answered yet get no callback. NULL is fine. */
void runner_free(struct runner *r);

/* Queues a call: payload_json (may be NULL: "null") goes to the program's
 * stdin with a newline; limit_ms (> 0) counts from now, queued time
 * included. 0 or -ENOMEM. */
int runner_submit(struct runner *r, uint64_t call_id, const char *payload_json, size_t len,
                  int limit_ms);

/* The descriptors to poll: fills up to max entries of pfd and returns how
 * many it used (at most 1 + 3 * jobs). */
size_t runner_pollfds(struct runner *r, struct pollfd *pfd, size_t max);
/* After poll(): handles what the entries runner_pollfds filled say, reaps,
 * enforces time limits, starts queued calls, and calls done for each call
 * that finished. */
void runner_handle(struct runner *r, const struct pollfd *pfd, size_t n);
/* The longest poll() may wait (ms) before a time limit needs looking at;
 * -1 when nothing runs or waits. */
int runner_timeout_ms(const struct runner *r);

/* Calls running / waiting for a free job. */
size_t runner_running(const struct runner *r);
size_t runner_queued(const struct runner *r);

#endif
