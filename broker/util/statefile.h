/* Small files in the broker's state directory (broker.stateDir), written
 * atomically and durably and read back only when they are ours.
 *
 * A write creates a new file beside the target (0600, O_EXCL on a fresh
 * random name, so it is never briefly readable by others and never
 * follows a planted symlink), fsyncs it, renames it over the target and
 * fsyncs the directory: after a crash the file is either the old content
 * or the new one, never a mix, never empty. The directory is created
 * (one level, 0700) when missing.
 *
 * A read refuses a file that is not ours (another owner, group/other
 * permission bits, not a regular file, a symlink) in a directory someone
 * else may write to: what others could plant or replace must not steer
 * the broker silently. Reads are bounded.
 *
 * Users: the enrolled credentials (credstore.h) and the handler list
 * kept across a graceful restart (handlerfile.h, read and written by
 * broker.c).
 *
 * These are plain blocking file calls, on purpose: each file is small
 * (a few KiB at most) and is touched once at start, once at stop or once
 * after an enrollment; splitting open/write/fsync/rename/fsync into
 * uv_fs_* callbacks would buy no concurrency worth the extra states. The
 * worst pause of the loop is one fsync, once.
 *
 * Messages (errbuf, may be NULL) are one line for people: the path and
 * the reason, never the file's contents. `what` names the file in them
 * ("credentials" gives "credentials file /x/credentials.json is ...").
 */
#ifndef UTIL_STATEFILE_H
#define UTIL_STATEFILE_H

#include <stddef.h>

/* statefile_read(): the file, or its directory, does not exist. Positive,
 * so it cannot be mistaken for an error. */
#define STATEFILE_ABSENT 1

/* Longest directory path accepted. */
#define STATEFILE_MAX_DIR_BYTES 4000

/* `dir`/`name` into out (a trailing slash of dir is not doubled).
 * 0, or -ENAMETOOLONG when it does not fit, -EINVAL for an empty dir or
 * a name with a slash. */
int statefile_path(char *out, size_t outlen, const char *dir, const char *name);

/* Reads `dir`/`name` (at most max_bytes) into *text (NUL-terminated,
 * *len bytes without the NUL; free with statefile_text_free()).
 * Returns 0, STATEFILE_ABSENT, or:
 *   -EPERM    the file or its directory is not ours (see above)
 *   -EFBIG    larger than max_bytes
 *   -ENOMEM, -EINVAL (see statefile_path) or another -errno. */
int statefile_read(const char *dir, const char *name, const char *what, size_t max_bytes,
                   char **text, size_t *len, char *errbuf, size_t errlen);

/* Replaces `dir`/`name` with `len` bytes of data, atomically and durably
 * as described above; the temporary file is removed on every failure
 * path. 0, -EPERM (directory not ours), or -errno from the file system.
 * errbuf says "storing <what> in <dir> failed (<step>): <reason>". */
int statefile_write(const char *dir, const char *name, const char *what, const void *data,
                    size_t len, char *errbuf, size_t errlen);

/* Wipes and frees a text returned by statefile_read(). NULL-safe. */
void statefile_text_free(char *text, size_t len);

#endif
