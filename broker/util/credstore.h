/* Durable daemon credentials: the file that makes an enrollment stick.
 *
 * Enrollment spends the token and may rotate the password, so the result
 * must survive a crash at any instant: `<state_dir>/credentials.json`
 * holds {"teamClusterId", "daemonPassword", "enrolledAt"} and is replaced
 * atomically and durably (util/statefile.h): after a crash the file is
 * either the old credentials or the new ones, never a mix, never empty.
 *
 * A load refuses a file that is not ours (another owner, group/other
 * permission bits, not a regular file, a symlink): a password somebody
 * else could read or replace is a password we must not trust silently.
 *
 * These are plain blocking file calls, on purpose. They run once at
 * startup and once after an enrollment, on a file of a few hundred
 * bytes, and the enrollment ordering requires the credentials to be on
 * disk before the socket connects anyway (statefile.h says why blocking
 * is fine for such files).
 */
#ifndef UTIL_CREDSTORE_H
#define UTIL_CREDSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CREDSTORE_FILE_NAME "credentials.json"

/* credstore_load(): no credentials file: the daemon has not enrolled yet.
 * Positive, so it cannot be mistaken for an error. */
#define CREDSTORE_NOT_ENROLLED 1

/* Upper bounds; longer values are refused on store and on load. */
#define CREDSTORE_MAX_FILE_BYTES  65536
#define CREDSTORE_MAX_VALUE_BYTES 4096

/* Plain data. Strings are NUL-terminated and owned by the struct:
 * credentials_clear() wipes the password and frees both. */
struct credentials {
    char *team_cluster_id;
    char *daemon_password;
    int64_t enrolled_at; /* seconds since the epoch (UTC); 0 = unknown */
};

struct credstore;

/* A store for `state_dir` (copied). The directory need not exist yet:
 * credstore_store() creates it (one level, mode 0700).
 * 0, -EINVAL (empty or over-long path) or -ENOMEM.
 * Freed by credstore_free(). */
int credstore_new(struct credstore **out, const char *state_dir);
void credstore_free(struct credstore *cs);

/* Full path of the credentials file (owned by `cs`). */
const char *credstore_path(const struct credstore *cs);

/* Read the stored credentials into `out` (cleared first; on success the
 * caller owns it and calls credentials_clear()).
 * Returns 0, CREDSTORE_NOT_ENROLLED when there is no file, or:
 *   -EPERM    the file is group/other accessible, not owned by this user,
 *             not a regular file, or a symlink
 *   -EBADMSG  not valid JSON, or a required field missing or malformed
 *   -EFBIG    larger than CREDSTORE_MAX_FILE_BYTES
 *   -ENOMEM, or another -errno from open/read.
 * On failure `errbuf` (may be NULL) receives one line for people: the
 * path and the reason, never the file's contents. */
int credstore_load(struct credstore *cs, struct credentials *out, char *errbuf, size_t errlen);

/* Replace the stored credentials with `creds` (both strings non-empty,
 * at most CREDSTORE_MAX_VALUE_BYTES, no control characters; enrolled_at
 * 0 means "now"). Atomic and durable as described above; the temporary
 * file is removed on every failure path.
 * 0, -EINVAL (bad value), -ENOMEM, or -errno from the file system.
 * `errbuf` as for credstore_load(). */
int credstore_store(struct credstore *cs, const struct credentials *creds, char *errbuf,
                    size_t errlen);

/* Wipe the password, free both strings, zero the struct. NULL-safe. */
void credentials_clear(struct credentials *c);

/* Deep copy; 0 or -ENOMEM (then `dst` is cleared). */
int credentials_copy(struct credentials *dst, const struct credentials *src);

/* Whether `s` may be stored as an id or password: non-empty, at most
 * CREDSTORE_MAX_VALUE_BYTES, no control characters. NULL: false. */
bool credentials_value_valid(const char *s);

#endif
