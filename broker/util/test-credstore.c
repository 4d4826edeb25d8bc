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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/test-tmpdir.h"

#include "util/credstore.h"

struct fixture {
    char dir[256];
    struct credstore *cs;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-credstore.XXXXXX");
    if (!mkdtemp(f->dir) || credstore_new(&f->cs, f->dir) < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    credstore_free(f->cs);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
    assert_int_equal(tmpdir_write_file(path, content, mode), 0);
}

static void store_sample(struct fixture *f, const char *id, const char *password, int64_t when)
{
    struct credentials c = {
        .team_cluster_id = (char *)id, .daemon_password = (char *)password, .enrolled_at = when};
    char err[256] = "";

    assert_int_equal(credstore_store(f->cs, &c, err, sizeof(err)), 0);
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    char err[256] = "";

    store_sample(f, "cluster-abc123", "s3cret \"quoted\" \\ ünïcode", 1732766340);
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), 0);
    assert_string_equal(got.team_cluster_id, "cluster-abc123");
    assert_string_equal(got.daemon_password, "s3cret \"quoted\" \\ ünïcode");
    assert_int_equal(got.enrolled_at, 1732766340);
    credentials_clear(&got);
    assert_null(got.daemon_password);
}

static void test_file_is_0600_and_temp_is_gone(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    mode_t old = umask(0);

    store_sample(f, "c1", "p1", 0);
    umask(old);
    assert_int_equal(stat(credstore_path(f->cs), &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(tmpdir_count(f->dir), 1);
}

/* A restrictive umask cannot leave us with a file we cannot read back. */
static void test_mode_exact_under_strict_umask(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    struct stat st;
    mode_t old = umask(0277);

    store_sample(f, "c1", "p1", 0);
    umask(old);
    assert_int_equal(stat(credstore_path(f->cs), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(credstore_load(f->cs, &got, NULL, 0), 0);
    credentials_clear(&got);
}

static void test_store_replaces_and_stamps_now(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    time_t before = time(NULL);

    store_sample(f, "cluster-old", "old-pass", 100);
    store_sample(f, "cluster-new", "new-pass", 0);
    assert_int_equal(credstore_load(f->cs, &got, NULL, 0), 0);
    assert_string_equal(got.team_cluster_id, "cluster-new");
    assert_string_equal(got.daemon_password, "new-pass");
    assert_true(got.enrolled_at >= before && got.enrolled_at <= time(NULL));
    credentials_clear(&got);
    assert_int_equal(tmpdir_count(f->dir), 1);
}

static void test_missing_file_is_not_enrolled(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    char err[256] = "";

    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), CREDSTORE_NOT_ENROLLED);
    assert_null(got.team_cluster_id);
    assert_null(got.daemon_password);
    assert_string_equal(err, "");
}

static void test_refuses_group_or_world_readable(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    char err[256] = "";
    static const mode_t modes[] = {0644, 0640, 0604, 0620};

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        write_file(credstore_path(f->cs),
                   "{\"teamClusterId\":\"c\",\"daemonPassword\":\"hunter2\"}", modes[i]);
        err[0] = '\0';
        assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), -EPERM);
        assert_null(got.daemon_password);
        assert_non_null(strstr(err, credstore_path(f->cs)));
        assert_non_null(strstr(err, "must be 0600"));
        assert_null(strstr(err, "hunter2"));
    }
    /* The same file at 0600 loads: the mode alone was the reason. */
    assert_int_equal(chmod(credstore_path(f->cs), 0600), 0);
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), 0);
    credentials_clear(&got);
}

static void test_refuses_foreign_owner(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    char err[256] = "";

    store_sample(f, "c1", "p1", 0);
    if (geteuid() != 0)
        skip(); /* only root can give a file away */
    assert_int_equal(chown(credstore_path(f->cs), 65534, 65534), 0);
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "owned by uid 65534"));
}

static void test_refuses_symlink(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    char target[300], err[256] = "";

    snprintf(target, sizeof(target), "%s/elsewhere.json", f->dir);
    write_file(target, "{\"teamClusterId\":\"c\",\"daemonPassword\":\"p\"}", 0600);
    assert_int_equal(symlink(target, credstore_path(f->cs)), 0);
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "symlink"));
}

static void test_corrupted_json_is_clear_error(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *content;
        const char *reason;
    } cases[] = {
        {"{\"teamClusterId\":\"c\",\"daemonPassword\":\"hunter2\"", "not valid JSON"},
        {"", "not valid JSON"},
        {"[\"hunter2\"]", "not a JSON object"},
        {"{\"daemonPassword\":\"hunter2\"}", "\"teamClusterId\" missing"},
        {"{\"teamClusterId\":\"c\"}", "\"daemonPassword\" missing"},
        {"{\"teamClusterId\":\"c\",\"daemonPassword\":42}", "\"daemonPassword\" missing"},
        {"{\"teamClusterId\":\"\",\"daemonPassword\":\"hunter2\"}", "\"teamClusterId\" missing"},
        {"{\"teamClusterId\":\"c\",\"daemonPassword\":\"hunter2\",\"enrolledAt\":\"yesterday\"}",
         "\"enrolledAt\""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct credentials got;
        char err[256] = "";

        write_file(credstore_path(f->cs), cases[i].content, 0600);
        assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), -EBADMSG);
        if (!strstr(err, "corrupted") || !strstr(err, cases[i].reason))
            fail_msg("case %zu: unexpected message \"%s\"", i, err);
        assert_null(strstr(err, "hunter2"));
        assert_null(got.team_cluster_id);
        assert_null(got.daemon_password);
    }
}

static void test_refuses_huge_file(void **state)
{
    struct fixture *f = *state;
    size_t n = CREDSTORE_MAX_FILE_BYTES + 10;
    char *big = malloc(n + 1);
    struct credentials got;
    char err[256] = "";

    assert_non_null(big);
    memset(big, ' ', n);
    big[n] = '\0';
    write_file(credstore_path(f->cs), big, 0600);
    free(big);
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), -EFBIG);
    assert_non_null(strstr(err, "larger than"));
}

static void test_store_creates_missing_dir(void **state)
{
    struct fixture *f = *state;
    struct credstore *cs;
    struct credentials c = {.team_cluster_id = "c", .daemon_password = "p"}, got;
    char sub[300];
    struct stat st;

    snprintf(sub, sizeof(sub), "%s/state/", f->dir);
    assert_int_equal(credstore_new(&cs, sub), 0);
    assert_int_equal(credstore_store(cs, &c, NULL, 0), 0);
    sub[strlen(sub) - 1] = '\0';
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(credstore_load(cs, &got, NULL, 0), 0);
    assert_string_equal(got.daemon_password, "p");
    credentials_clear(&got);
    credstore_free(cs);
}

static void test_store_rejects_bad_values(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    struct credentials bad[] = {
        {.team_cluster_id = "", .daemon_password = "p"},
        {.team_cluster_id = "c", .daemon_password = NULL},
        {.team_cluster_id = "c\n", .daemon_password = "p"},
        {.team_cluster_id = "c", .daemon_password = "line\nbreak"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(credstore_store(f->cs, &bad[i], err, sizeof(err)), -EINVAL);
    assert_int_equal(tmpdir_count(f->dir), 0);
}

/* A failed store leaves the old file intact and no temporary behind. */
static void test_failed_store_keeps_old_file(void **state)
{
    struct fixture *f = *state;
    struct credstore *cs;
    struct credentials got;
    char err[256] = "";
    char file_as_dir[300];

    store_sample(f, "c-old", "p-old", 0);
    /* A state dir that is really a file: the store fails at open. */
    snprintf(file_as_dir, sizeof(file_as_dir), "%s/" CREDSTORE_FILE_NAME, f->dir);
    assert_int_equal(credstore_new(&cs, file_as_dir), 0);
    struct credentials c = {.team_cluster_id = "c-new", .daemon_password = "p-new"};
    assert_true(credstore_store(cs, &c, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "open state directory"));
    assert_null(strstr(err, "p-new"));
    credstore_free(cs);

    assert_int_equal(credstore_load(f->cs, &got, NULL, 0), 0);
    assert_string_equal(got.daemon_password, "p-old");
    credentials_clear(&got);
    assert_int_equal(tmpdir_count(f->dir), 1);
}

/* Who may write to the state directory may replace the credentials: a
 * directory others may write to is refused on load and on store, with
 * the reason and no secret in the message. */
static void test_refuses_writable_state_dir(void **state)
{
    struct fixture *f = *state;
    struct credentials got;
    char err[256] = "";

    store_sample(f, "c-1", "p-dir-s3cret", 0);
    assert_int_equal(chmod(f->dir, 0770), 0);
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "is writable by its group (mode 0770)"));
    struct credentials c = {.team_cluster_id = "c-2", .daemon_password = "p-dir-new"};
    err[0] = '\0';
    assert_int_equal(credstore_store(f->cs, &c, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "writable by its group"));
    assert_null(strstr(err, "s3cret"));
    assert_int_equal(chmod(f->dir, 0703), 0);
    err[0] = '\0';
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "every user"));
    assert_int_equal(chmod(f->dir, 0700), 0);
    assert_int_equal(credstore_load(f->cs, &got, err, sizeof(err)), 0);
    assert_string_equal(got.daemon_password, "p-dir-s3cret");
    credentials_clear(&got);
}

static void test_copy_and_clear(void **state)
{
    struct credentials src = {.team_cluster_id = "id", .daemon_password = "pw", .enrolled_at = 5};
    struct credentials dst;

    assert_int_equal(credentials_copy(&dst, &src), 0);
    assert_string_equal(dst.team_cluster_id, "id");
    assert_string_equal(dst.daemon_password, "pw");
    assert_int_equal(dst.enrolled_at, 5);
    assert_ptr_not_equal(dst.daemon_password, src.daemon_password);
    credentials_clear(&dst);
    credentials_clear(NULL);
}

static void test_new_rejects_bad_dir(void **state)
{
    struct credstore *cs = (void *)1;

    assert_int_equal(credstore_new(&cs, ""), -EINVAL);
    assert_null(cs);
    assert_int_equal(credstore_new(&cs, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_is_0600_and_temp_is_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_exact_under_strict_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_replaces_and_stamps_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_is_not_enrolled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_group_or_world_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_foreign_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_json_is_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_huge_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_creates_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_rejects_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_store_keeps_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_writable_state_dir, setup, teardown),
        cmocka_unit_test(test_copy_and_clear),
        cmocka_unit_test(test_new_rejects_bad_dir),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
