/* UUIDs for request ids: version 4 generation, canonical text form.
 *
 * Randomness comes from getrandom(2), read 4 KiB at a time into a pool so
 * that a request id does not cost a system call. getrandom is called
 * without GRND_NONBLOCK: it blocks only until the kernel's random pool is
 * first initialised, early at boot, and never afterwards; a broker started
 * that early waits for it, which is the right outcome for unpredictable
 * ids. The pool page is marked MADV_WIPEONFORK so that a forked child does
 * not hand out the same ids as its parent (where the kernel refuses the
 * mark, every call goes to getrandom instead).
 *
 * The ids are not secrets; nothing here is meant for key material.
 * Not thread-safe: the broker's loop thread only.
 */
#ifndef UTIL_UUID_H
#define UTIL_UUID_H

#include <stddef.h>
#include <stdint.h>

#define UUID_LEN     16 /* bytes */
#define UUID_STR_LEN 36 /* characters, without the NUL */

/* A fresh random (version 4, RFC 9562 variant) UUID in out. 0, or -errno
 * from getrandom (ENOSYS on kernels before 3.17; nothing else in practice). */
int uuid_generate_v4(uint8_t out[UUID_LEN]);

/* `len` random bytes from the same pool, for non-secret uses such as hash
 * seeds. 0 or -errno as above. */
int uuid_fill_random(void *buf, size_t len);

/* The canonical form, 36 lowercase characters and a NUL, into out. */
void uuid_format(const uint8_t id[UUID_LEN], char out[UUID_STR_LEN + 1]);

/* Parses exactly `len` bytes of untrusted text (no NUL needed). Accepts
 * only the 8-4-4-4-12 hex form (either case, hyphens at 8, 13, 18, 23) and
 * any version or variant; no braces, no "urn:uuid:", no whitespace.
 * 0 and the bytes in out, or -EINVAL with out untouched. */
int uuid_parse(const char *text, size_t len, uint8_t out[UUID_LEN]);

#endif
