#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/test-tmpdir.h"

#include "util/statefile.h"

#define NAME "thing.json"
#define WHAT "thing"

struct fixture {
    char dir[256];
    char path[300];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-statefile.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/" NAME, f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    chmod(f->dir, 0700);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void write_raw(const char *path, const char *content, mode_t mode)
{
    assert_int_equal(tmpdir_write_file(path, content, mode), 0);
}

static void put(struct fixture *f, const char *text)
{
    char err[256] = "";

    if (statefile_write(f->dir, NAME, WHAT, text, strlen(text), err, sizeof(err)) != 0)
        fail_msg("write: %s", err);
}

/* Returns statefile_read's result; the text (if any) must equal `want`. */
static int get(struct fixture *f, const char *want, size_t max, char *err, size_t errlen)
{
    char *text = (char *)1;
    size_t len = 99;
    int r = statefile_read(f->dir, NAME, WHAT, max, &text, &len, err, errlen);

    if (r == 0) {
        assert_non_null(text);
        assert_int_equal(len, strlen(want));
        assert_string_equal(text, want);
    } else {
        assert_null(text);
        assert_int_equal(len, 0);
    }
    statefile_text_free(text, len);
    return r;
}

static void test_round_trip_0600_no_temp(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    mode_t old = umask(0);

    put(f, "{\"a\":1}");
    umask(old);
    assert_int_equal(get(f, "{\"a\":1}", 1024, NULL, 0), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(tmpdir_count(f->dir), 1);
    /* replaced, not appended */
    put(f, "x");
    assert_int_equal(get(f, "x", 1024, NULL, 0), 0);
    assert_int_equal(tmpdir_count(f->dir), 1);
}

/* A strict umask cannot leave a file we cannot read back. */
static void test_mode_exact_under_strict_umask(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    mode_t old = umask(0277);

    put(f, "y");
    umask(old);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(get(f, "y", 16, NULL, 0), 0);
}

static void test_empty_file_reads_empty(void **state)
{
    struct fixture *f = *state;

    put(f, "");
    assert_int_equal(get(f, "", 16, NULL, 0), 0);
}

static void test_absent_file_and_dir(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    char *text;
    size_t len;
    char sub[300];

    assert_int_equal(get(f, "", 16, err, sizeof(err)), STATEFILE_ABSENT);
    assert_string_equal(err, "");
    snprintf(sub, sizeof(sub), "%s/not-yet", f->dir);
    assert_int_equal(statefile_read(sub, NAME, WHAT, 16, &text, &len, err, sizeof(err)),
                     STATEFILE_ABSENT);
    assert_null(text);
    assert_string_equal(err, "");
}

static void test_write_creates_dir(void **state)
{
    struct fixture *f = *state;
    char sub[300], err[256] = "";
    char *text;
    size_t len;
    struct stat st;

    snprintf(sub, sizeof(sub), "%s/state/", f->dir);
    assert_int_equal(statefile_write(sub, NAME, WHAT, "z", 1, err, sizeof(err)), 0);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(statefile_read(sub, NAME, WHAT, 16, &text, &len, NULL, 0), 0);
    assert_string_equal(text, "z");
    statefile_text_free(text, len);
}

/* Only one level is created: a missing parent is an error, with the step. */
static void test_write_missing_parent_fails(void **state)
{
    struct fixture *f = *state;
    char sub[300], err[256] = "";

    snprintf(sub, sizeof(sub), "%s/a/b", f->dir);
    assert_int_equal(statefile_write(sub, NAME, WHAT, "z", 1, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "storing thing in"));
    assert_non_null(strstr(err, "open state directory"));
}

static void test_refuses_group_readable(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";

    put(f, "secret-ish");
    assert_int_equal(chmod(f->path, 0640), 0);
    assert_int_equal(get(f, "", 1024, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "thing file"));
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "must be 0600"));
    assert_null(strstr(err, "secret-ish"));
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_int_equal(get(f, "secret-ish", 1024, NULL, 0), 0);
}

static void test_refuses_symlink_and_non_regular(void **state)
{
    struct fixture *f = *state;
    char err[256] = "", target[300];

    snprintf(target, sizeof(target), "%s/target", f->dir);
    write_raw(target, "t", 0600);
    assert_int_equal(symlink(target, f->path), 0);
    assert_int_equal(get(f, "", 1024, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "symlink"));
    assert_int_equal(unlink(f->path), 0);
    assert_int_equal(mkdir(f->path, 0700), 0);
    err[0] = '\0';
    assert_int_equal(get(f, "", 1024, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "not a regular file"));
}

static void test_refuses_writable_dir(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";

    put(f, "v");
    assert_int_equal(chmod(f->dir, 0770), 0);
    assert_int_equal(get(f, "", 1024, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "is writable by its group (mode 0770)"));
    err[0] = '\0';
    assert_int_equal(statefile_write(f->dir, NAME, WHAT, "w", 1, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "writable by its group"));
    assert_int_equal(chmod(f->dir, 0703), 0);
    assert_int_equal(get(f, "", 1024, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "every user"));
    assert_int_equal(chmod(f->dir, 0700), 0);
    assert_int_equal(get(f, "v", 1024, NULL, 0), 0);
}

/* Exactly max_bytes reads; one more is refused, whatever the buffer
 * growth steps are. */
static void test_bound(void **state)
{
    struct fixture *f = *state;
    static const size_t maxes[] = {0, 1, 1023, 1024, 1025, 5000};
    char err[256] = "";

    for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
        size_t max = maxes[i];
        char *text = malloc(max + 2);
        assert_non_null(text);
        memset(text, 'q', max + 1);
        text[max] = '\0';
        put(f, text);
        assert_int_equal(get(f, text, max, NULL, 0), 0);
        text[max] = 'q';
        text[max + 1] = '\0';
        put(f, text);
        err[0] = '\0';
        assert_int_equal(get(f, "", max, err, sizeof(err)), -EFBIG);
        assert_non_null(strstr(err, "larger than"));
        free(text);
    }
}

/* A failed write leaves the old file intact and no temporary behind. */
static void test_failed_write_keeps_old(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";

    put(f, "old");
    /* a "directory" that is a file: the write fails at open */
    assert_true(statefile_write(f->path, NAME, WHAT, "new", 3, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "open state directory"));
    assert_int_equal(get(f, "old", 16, NULL, 0), 0);
    assert_int_equal(tmpdir_count(f->dir), 1);
}

static void test_path(void **state)
{
    char out[64];
    (void)state;

    assert_int_equal(statefile_path(out, sizeof(out), "/a/b", "f"), 0);
    assert_string_equal(out, "/a/b/f");
    assert_int_equal(statefile_path(out, sizeof(out), "/a/b//", "f"), 0);
    assert_string_equal(out, "/a/b/f");
    assert_int_equal(statefile_path(out, sizeof(out), "/", "f"), 0);
    assert_string_equal(out, "/f");
    assert_int_equal(statefile_path(out, sizeof(out), "", "f"), -EINVAL);
    assert_int_equal(statefile_path(out, sizeof(out), NULL, "f"), -EINVAL);
    assert_int_equal(statefile_path(out, sizeof(out), "/a", ""), -EINVAL);
    assert_int_equal(statefile_path(out, sizeof(out), "/a", "x/y"), -EINVAL);
    assert_int_equal(statefile_path(out, 7, "/a/b", "f"), 0);
    assert_int_equal(statefile_path(out, 6, "/a/b", "f"), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_0600_no_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_exact_under_strict_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_reads_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_file_and_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_creates_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_missing_parent_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_group_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_symlink_and_non_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_writable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_keeps_old, setup, teardown),
        cmocka_unit_test(test_path),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
