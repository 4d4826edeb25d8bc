/* UUID generation, formatting, and the strict parser for server input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/uuid.h"

static void test_v4_bits(void **state)
{
    uint8_t id[UUID_LEN];
    int seen_high[UUID_LEN] = {0}; /* every other bit must vary somewhere */

    (void)state;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(uuid_generate_v4(id), 0);
        assert_int_equal(id[6] >> 4, 4); /* version */
        assert_int_equal(id[8] >> 6, 2); /* variant 10xx */
        for (int b = 0; b < UUID_LEN; b++)
            seen_high[b] |= id[b];
    }
    for (int b = 0; b < UUID_LEN; b++) {
        if (b == 6)
            assert_int_equal(seen_high[b], 0x4f);
        else if (b == 8)
            assert_int_equal(seen_high[b], 0xbf);
        else
            assert_int_equal(seen_high[b], 0xff);
    }
}

static int compare_ids(const void *a, const void *b)
{
    return memcmp(a, b, UUID_LEN);
}

static void test_unique_over_100k(void **state)
{
    enum { N = 100000 };
    uint8_t(*ids)[UUID_LEN] = malloc(N * sizeof(*ids));

    (void)state;
    assert_non_null(ids);
    for (int i = 0; i < N; i++)
        assert_int_equal(uuid_generate_v4(ids[i]), 0);
    qsort(ids, N, sizeof(*ids), compare_ids);
    for (int i = 1; i < N; i++)
        assert_int_not_equal(memcmp(ids[i - 1], ids[i], UUID_LEN), 0);
    free(ids);
}

static void test_format_known_value(void **state)
{
    const uint8_t id[UUID_LEN] = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
                                  0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00};
    char text[UUID_STR_LEN + 1];
    uint8_t back[UUID_LEN];

    (void)state;
    memset(text, 'x', sizeof(text));
    uuid_format(id, text);
    assert_string_equal(text, "123e4567-e89b-12d3-a456-426614174000");
    assert_int_equal(uuid_parse(text, strlen(text), back), 0);
    assert_memory_equal(back, id, UUID_LEN);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < 10000; i++) {
        uint8_t id[UUID_LEN], back[UUID_LEN];
        char text[UUID_STR_LEN + 1];

        assert_int_equal(uuid_fill_random(id, sizeof(id)), 0); /* any version */
        uuid_format(id, text);
        assert_int_equal(strlen(text), UUID_STR_LEN);
        for (int c = 0; c < UUID_STR_LEN; c++)
            assert_true(strchr("0123456789abcdef-", text[c]) != NULL);
        assert_int_equal(uuid_parse(text, UUID_STR_LEN, back), 0);
        assert_memory_equal(back, id, UUID_LEN);
    }
}

static void test_parse_accepts_uppercase_and_any_version(void **state)
{
    uint8_t id[UUID_LEN];
    const uint8_t ones[UUID_LEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t zeros[UUID_LEN] = {0};

    (void)state;
    assert_int_equal(uuid_parse("FFFFFFFF-FFFF-ffff-FfFf-FFFFFFFFFFFF", UUID_STR_LEN, id), 0);
    assert_memory_equal(id, ones, UUID_LEN);
    assert_int_equal(uuid_parse("00000000-0000-0000-0000-000000000000", UUID_STR_LEN, id), 0);
    assert_memory_equal(id, zeros, UUID_LEN);
    /* Length is what the caller says; no NUL is needed after the text. */
    assert_int_equal(uuid_parse("00000000-0000-0000-0000-000000000000trailing", UUID_STR_LEN, id),
                     0);
}

static void expect_reject(const char *text, size_t len)
{
    uint8_t id[UUID_LEN];
    uint8_t before[UUID_LEN];

    memset(id, 0xa5, sizeof(id));
    memcpy(before, id, sizeof(id));
    assert_int_equal(uuid_parse(text, len, id), -EINVAL);
    assert_memory_equal(id, before, UUID_LEN); /* untouched on failure */
}

static void test_parse_rejects_wrong_length(void **state)
{
    const char *good = "123e4567-e89b-12d3-a456-426614174000";

    (void)state;
    expect_reject(good, 0);
    expect_reject(good, 35);
    expect_reject("123e4567-e89b-12d3-a456-4266141740000", 37);
    expect_reject("123e4567e89b12d3a456426614174000", 32);       /* no hyphens */
    expect_reject("{123e4567-e89b-12d3-a456-426614174000}", 38); /* braces */
    expect_reject("urn:uuid:123e4567-e89b-12d3-a456-426614174000", 45);
}

/* Every position in turn gets every kind of wrong character. */
static void test_parse_rejects_each_position(void **state)
{
    const char *good = "123e4567-e89b-12d3-a456-426614174000";
    const char bad_for_hex[] = {'g',        'G',        'z', '-', ' ', '\0', '\n', '+',
                                (char)0x80, (char)0xff, '/', ':', '@', '`',  '{'};
    const char bad_for_hyphen[] = {'0', 'a', '_', ' ', '\0', (char)0xad};

    (void)state;
    for (int pos = 0; pos < UUID_STR_LEN; pos++) {
        char text[UUID_STR_LEN];
        int hyphen = pos == 8 || pos == 13 || pos == 18 || pos == 23;
        const char *bad = hyphen ? bad_for_hyphen : bad_for_hex;
        size_t n_bad = hyphen ? sizeof(bad_for_hyphen) : sizeof(bad_for_hex);

        for (size_t k = 0; k < n_bad; k++) {
            memcpy(text, good, UUID_STR_LEN);
            text[pos] = bad[k];
            expect_reject(text, UUID_STR_LEN);
        }
    }
}

static void test_parse_rejects_shifted_hyphens(void **state)
{
    (void)state;
    expect_reject("123e456-7e89b-12d3-a456-426614174000", UUID_STR_LEN);
    expect_reject("123e4567-e89b1-2d3-a456-426614174000", UUID_STR_LEN);
    expect_reject("123e4567-e89b-12d3a-456-426614174000", UUID_STR_LEN);
    expect_reject("123e4567-e89b-12d3-a4564-26614174000", UUID_STR_LEN);
    expect_reject("123e4567-e89b-12d3-a456-42661417400-", UUID_STR_LEN);
    expect_reject("------------------------------------", UUID_STR_LEN);
}

static void test_fill_random_any_size(void **state)
{
    enum { BIG = 10000 };
    uint8_t *buf = calloc(1, BIG);
    size_t sizes[] = {1, 3, 100, 4000, 4090, 4096, BIG};
    size_t zeros = 0;

    (void)state;
    assert_non_null(buf);
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        memset(buf, 0, BIG);
        assert_int_equal(uuid_fill_random(buf, sizes[s]), 0);
        for (size_t i = sizes[s]; i < BIG; i++)
            assert_int_equal(buf[i], 0); /* no overrun */
    }
    /* The big one came out random: zero bytes near 1/256 of them. */
    for (size_t i = 0; i < BIG; i++)
        zeros += buf[i] == 0;
    assert_true(zeros < BIG / 64);
    assert_int_equal(uuid_fill_random(buf, 0), 0);
    free(buf);
}

/* A forked child must not replay the parent's pool. */
static void test_fork_gives_fresh_ids(void **state)
{
    uint8_t parent_next[UUID_LEN], child_next[UUID_LEN], warm[UUID_LEN];
    int fds[2];
    pid_t pid;
    int status;

    (void)state;
    assert_int_equal(uuid_generate_v4(warm), 0); /* the pool is filled */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t id[UUID_LEN];

        close(fds[0]);
        if (uuid_generate_v4(id) < 0 || write(fds[1], id, sizeof(id)) != sizeof(id))
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child_next, sizeof(child_next)), sizeof(child_next));
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(uuid_generate_v4(parent_next), 0);
    assert_memory_not_equal(parent_next, child_next, UUID_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_bits),
        cmocka_unit_test(test_unique_over_100k),
        cmocka_unit_test(test_format_known_value),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_accepts_uppercase_and_any_version),
        cmocka_unit_test(test_parse_rejects_wrong_length),
        cmocka_unit_test(test_parse_rejects_each_position),
        cmocka_unit_test(test_parse_rejects_shifted_hyphens),
        cmocka_unit_test(test_fill_random_any_size),
        cmocka_unit_test(test_fork_gives_fresh_ids),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
