/* libFuzzer target for the enrollment response classifier.
 *
 * Input: byte 0 picks the HTTP status, byte 1 the transport result, the
 * rest is the response body. Besides the sanitizers' checks, it asserts
 * the properties the rest of the broker relies on: a message is always a
 * clean one-line string without the token or a password; credentials
 * exist exactly on success and are valid values then; the error code
 * matches the outcome.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "upstream/enroll.h"

#define FUZZ_TOKEN    "tok-fuzz"
#define FUZZ_PASSWORD "pw-fuzz"
/* Every character of the fixed words in enroll.c's messages, the "***"
 * of a redaction and the '?' of a replaced control character included. */
#define OWN_WORD_CHARS                                                                             \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()[],:;.-_/\"'*?"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = {200, 201, 200, 201, 204, 301, 400, 401, 403, 404,
                                408, 429, 500, 502, 503, 0,   100, 302, 418, 599};
static const int transport[] = {0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                -ETIMEDOUT,
                                -ECONNREFUSED,
                                -EHOSTUNREACH,
                                -EPROTO,
                                -ECONNRESET,
                                -EMSGSIZE,
                                -EINVAL,
                                -EIO};

/* `password`: the configured one, if any (an unconfigured string is not
 * a secret); `returned`: the one the server sent, if any. */
static void check_clean(const char *text, size_t cap, const char *password, const char *returned)
{
    size_t n = strnlen(text, cap);

    if (n == cap)
        abort(); /* not terminated */
    if (strstr(text, FUZZ_TOKEN) || (password && strstr(text, password)) ||
        (returned && strstr(text, returned)))
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch < 0x20 || ch == 0x7f)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct enroll_config cfg = {
        .server_url = "http://127.0.0.1:1",
        .team_cluster_id = "cluster-fuzz",
        .enrollment_token = FUZZ_TOKEN,
        .daemon_password = (size > 1 && (data[1] & 0x80)) ? NULL : FUZZ_PASSWORD,
        .hostname = "fuzz-host",
        .version = "0.0.0",
    };
    struct enroll_result r;
    const char *returned;
    long status;
    int terr;

    if (size < 2)
        return 0;
    status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    terr = transport[data[1] % (sizeof(transport) / sizeof(transport[0]))];
    if (terr == 0 && status == 0)
        status = 200;

    enroll_parse_response(&cfg, terr, terr ? "transport said " FUZZ_TOKEN : "", status,
                          (const char *)data + 2, size - 2, &r);

    returned = r.outcome == ENROLL_OK ? r.credentials.daemon_password : NULL;
    /* A returned password like "HTTP" occurs in our own words by chance;
     * one with a character our words never use can only get into the
     * message through the server's text, which must be redacted. */
    if (returned && !returned[strspn(returned, OWN_WORD_CHARS)])
        returned = NULL;
    check_clean(r.message, sizeof(r.message), cfg.daemon_password, returned);
    check_clean(r.server_code, sizeof(r.server_code), cfg.daemon_password, returned);
    if (r.message[0] == '\0')
        abort();
    if (r.outcome == ENROLL_OK) {
        if (r.error != 0 || terr != 0 || (status != 200 && status != 201))
            abort();
        if (!credentials_value_valid(r.credentials.team_cluster_id) ||
            !credentials_value_valid(r.credentials.daemon_password))
            abort();
        if (!r.password_rotated &&
            (!cfg.daemon_password || strcmp(r.credentials.daemon_password, FUZZ_PASSWORD) != 0))
            abort();
    } else {
        if (r.outcome != ENROLL_FINAL && r.outcome != ENROLL_RETRY)
            abort();
        if (r.error != PROTO_E_ENROLLMENT_FAILED || r.credentials.team_cluster_id ||
            r.credentials.daemon_password)
            abort();
    }
    enroll_result_clear(&r);
    return 0;
}
