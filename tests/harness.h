/* Integration test harness: real processes, real sockets.
 *
 * - the dev VOLT server (contrib/volt-dev-server, a real socket.io 4.8
 *   server on Node) on an ephemeral port, driven through its HTTP control API;
 * - volt-broker in a child process with a generated config in a private
 *   temp dir (under valgrind when VOLT_TEST_VALGRIND=1: its exit status
 *   then also reports leaks and memory errors);
 * - a raw local-protocol connection that sends and receives frames as JSON
 *   text (through proto/'s transcoder), for tests that need byte-level
 *   control or bad input.
 *
 * Every wait has a deadline; nothing here can hang a test forever.
 * Functions return 0 on success and -1 with a message on stderr otherwise,
 * so tests can assert_int_equal(..., 0).
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define H_PATH 512
#define H_DIR  128 /* temp dirs are short, so paths inside them always fit */

struct h_server {
    pid_t pid;
    int port;
    bool tls; /* started with --tls-cert: the control API is https too */
    char dir[H_DIR];
    char log[H_PATH];
};

/* Starts node server.js --port 0 with extra arguments (NULL-terminated). */
int h_server_start(struct h_server *s, const char *const *extra_args);
/* Sends SIGTERM and waits. */
void h_server_stop(struct h_server *s);
/* Kills the server with SIGKILL (the kernel closes its sockets; it says
 * nothing) and starts a fresh one on the same port. 0 or -1. */
int h_server_kill_and_restart(struct h_server *s, const char *const *extra_args);
/* Pauses / resumes the server process (SIGSTOP / SIGCONT). */
void h_server_pause(struct h_server *s, bool pause);
/* HTTP to the server: body may be NULL. *resp (caller frees) may be NULL.
 * Returns the HTTP status, or -1. */
long h_http(const struct h_server *s, const char *method, const char *path, const char *body,
            char **resp);
/* A counter of the dev server's /_dev/state ("heartbeats", ...), or -1. */
double h_server_counter(const struct h_server *s, const char *name);
/* Waits until that counter is at least min. 0, or -1 with the last value
 * and the expected one on stderr. */
int h_wait_server_counter(const struct h_server *s, const char *name, double min, int timeout_ms);
/* Applies $VOLT_TEST_FILTER (a cmocka test-name glob) if set, so ctest
 * entries and people can run one test of a suite. */
void h_apply_test_filter(void);
/* GET path and parse it as JSON (caller cJSON_Delete()s), or NULL. */
cJSON *h_http_json(const struct h_server *s, const char *method, const char *path,
                   const char *body);

struct h_broker {
    pid_t pid;
    char dir[H_DIR];
    char sock[H_PATH];
    char config[H_PATH];
    char log[H_PATH];
    char state_dir[H_PATH];
    bool valgrind;
    char wait_log[128]; /* h_broker_start_opts' wait_log, while waiting */
};

/* Writes a config (JSON object text; "%SOCK%", "%STATE%" and "%PORT%" are
 * replaced) into a fresh temp dir and starts volt-broker with it; waits
 * until its socket accepts connections. extra_env: NULL-terminated
 * "NAME=value" list or NULL. */
int h_broker_start(struct h_broker *b, const struct h_server *s, const char *config_json,
                   const char *const *extra_env);
/* Same, reusing b's dir and state (for restarts). */
int h_broker_restart(struct h_broker *b, const struct h_server *s, const char *config_json);
/* SIGTERM, wait up to timeout; returns the exit status (0 = clean, and
 * under valgrind: no leaks or errors), or -1 if it had to be killed. */
int h_broker_stop(struct h_broker *b, int timeout_ms);
/* SIGKILL, no checks (for crash tests). */
void h_broker_kill(struct h_broker *b);
/* Removes the temp dir. */
void h_broker_cleanup(struct h_broker *b);
/* True if the broker's log contains `needle`. */
bool h_broker_log_contains(const struct h_broker *b, const char *needle);
/* How many times needle occurs in the log (which a restart appends to). */
int h_broker_log_count(const struct h_broker *b, const char *needle);
/* Prints the broker's log to stderr (for failed tests). */
void h_broker_dump_log(const struct h_broker *b);
/* True if the running broker has a file mapped whose path contains
 * `needle` (/proc/PID/maps), e.g. "libcurl" to see what it loaded. */
bool h_broker_maps_contain(const struct h_broker *b, const char *needle);

/* What h_broker_start_opts() does beyond h_broker_start(); zero-initialise
 * and set what a test needs. */
struct h_broker_opts {
    const char *const *extra_env; /* as for h_broker_start */
    /* Let NOTIFY_SOCKET (set here or in extra_env) reach the broker; by
     * default it is removed, so a test run under systemd cannot confuse it. */
    bool keep_notify_socket;
    /* Socket activation: listen_fd becomes the broker's fd 3, with
     * LISTEN_FDS=1 and LISTEN_PID set to the broker's own pid. */
    bool socket_activation;
    int listen_fd;
    /* Wait until the log contains this line instead of waiting for
     * b->sock to accept connections (NULL: the socket). */
    const char *wait_log;
    /* RLIMIT_NOFILE for the broker (NULL: ours, inherited). */
    const struct rlimit *nofile;
};
int h_broker_start_opts(struct h_broker *b, const struct h_server *s, const char *config_json,
                        const struct h_broker_opts *o);
/* Waits for the broker to exit by itself (no signal is sent); returns its
 * exit status as h_broker_stop() does, or -1 if it is still running after
 * timeout_ms (longer under valgrind) or died of a signal. */
int h_broker_wait(struct h_broker *b, int timeout_ms);
/* Waits until the broker's log contains needle (timeout longer under
 * valgrind). 0, or -1 with the log dumped. */
int h_broker_wait_log(const struct h_broker *b, const char *needle, int timeout_ms);
/* Same, until it occurs `count` times (a restarted broker logs after the
 * last run's lines). */
int h_broker_wait_log_count(const struct h_broker *b, const char *needle, int count,
                            int timeout_ms);

/* Runs a built program (argv[0] is found with h_bin(); under valgrind when
 * VOLT_TEST_VALGRIND=1) to completion with extra_env ("NAME=value" list or
 * NULL) added, collecting its stdout and stderr into *out and *err (caller
 * frees; either may be NULL). Returns the exit status, or -1 if it died of
 * a signal or did not finish within timeout_ms (it is then killed). */
int h_run(const char *const *argv, const char *const *extra_env, char **out, char **err,
          int timeout_ms);

/* The path of a built program (from the build dir). */
const char *h_bin(const char *name);

/* Raw local-protocol connection. */
struct h_conn;
struct h_conn *h_conn_open(const char *sock_path);
void h_conn_close(struct h_conn *c);
int h_conn_fd(const struct h_conn *c);
/* Sends one frame given as JSON object text. */
int h_conn_send(struct h_conn *c, const char *json);
/* Sends raw bytes (for bad-input tests). */
int h_conn_send_raw(struct h_conn *c, const void *data, size_t len);
/* Next frame as parsed JSON (caller cJSON_Delete()s), or NULL on timeout/EOF. */
cJSON *h_conn_recv(struct h_conn *c, int timeout_ms);
/* The JSON text (proto's exact transcoding of the msgpack, integers digit
 * for digit, unlike cJSON's doubles) of the frame last returned by
 * h_conn_recv/h_conn_expect; valid until the next call on c. */
const char *h_conn_last_text(const struct h_conn *c);
/* Receives until a frame whose "op" is op (and, if id >= 0, whose "id" is
 * id) arrives; other frames are discarded. NULL on timeout. */
cJSON *h_conn_expect(struct h_conn *c, const char *op, long long id, int timeout_ms);
/* Receives until an `event` frame named `event` (connected, disconnected,
 * error, state) arrives; others are discarded. NULL on timeout. */
cJSON *h_conn_expect_event(struct h_conn *c, const char *event, int timeout_ms);
/* True when the broker closed the connection within timeout. */
bool h_conn_closed(struct h_conn *c, int timeout_ms);
/* Opens, says hello, waits for welcome. */
struct h_conn *h_conn_hello(const char *sock_path, const char *name);

/* The broker's status map (result data), or NULL. */
cJSON *h_status(const char *sock_path);
/* Waits until the upstream state is `state`. 0 or -1. */
int h_wait_state(const char *sock_path, const char *state, int timeout_ms);
/* Waits until the status number at path (dotted, as h_json_num: e.g.
 * "counters.drops") is at least min. 0, or -1 with the last value and the
 * expected one on stderr. */
int h_wait_status_num(const char *sock_path, const char *path, double min, int timeout_ms);

/* Polls `cond(arg)` every 20 ms until true or timeout. 0 or -1. */
int h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms);
uint64_t h_now_ms(void);
void h_sleep_ms(int ms);

/* True when VOLT_TEST_VALGRIND=1 runs the broker under valgrind. */
bool h_under_valgrind(void);
/* A time limit for something the broker does, with room for a broker slowed
 * down by valgrind: native as is, much more under valgrind. */
int h_slack_ms(int native);

/* Convenience: a string/number field of a JSON object, with a dotted path
 * ("data.files.0": numbers index arrays). */
const char *h_json_str(const cJSON *obj, const char *path);
double h_json_num(const cJSON *obj, const char *path, double dflt);

/* ---- programs with input, and programs in the background ---- */

/* h_run() with `input` (NULL: none) as the program's standard input: a
 * pipe that holds all of it and is closed before the program starts, so
 * the program reads it and then end of input. At most 64 KiB. */
int h_run_input(const char *const *argv, const char *const *extra_env, const char *input,
                char **out, char **err, int timeout_ms);

/* A built program running in the background (never under valgrind), its
 * stdout and stderr written to files in a private temp dir so a test can
 * read them while it runs. Zero-initialise; h_proc_cleanup() always. */
struct h_proc {
    pid_t pid;
    bool reaped; /* it ended and wstatus says how */
    int wstatus;
    char dir[H_DIR];
    char out[H_PATH];
    char err[H_PATH];
};

/* Starts argv (argv[0] found with h_bin()) with extra_env added and input
 * (NULL: none) as its standard input, as for h_run_input(). 0 or -1. */
int h_proc_start(struct h_proc *p, const char *const *argv, const char *const *extra_env,
                 const char *input);
/* What it has written so far (caller frees; never NULL). */
char *h_proc_stdout(const struct h_proc *p);
char *h_proc_stderr(const struct h_proc *p);
/* Waits until its stdout (stderr) contains needle. 0, or -1 with both
 * outputs on stderr; also -1 at once when the program ends without it. */
int h_proc_wait_stdout(struct h_proc *p, const char *needle, int timeout_ms);
int h_proc_wait_stderr(struct h_proc *p, const char *needle, int timeout_ms);
/* True while it runs (reaps it when it has ended). */
bool h_proc_running(struct h_proc *p);
/* Sends sig (0: none) and waits for the end: its exit status, 128 + the
 * signal's number if a signal ended it (as a shell says), or -1 if it
 * still ran after timeout_ms (it is then killed). */
int h_proc_stop(struct h_proc *p, int sig, int timeout_ms);
/* Kills it if it still runs and removes its temp dir. Safe to repeat. */
void h_proc_cleanup(struct h_proc *p);

/* A file's contents (caller frees), or NULL. */
char *h_file_text(const char *path);

#endif
