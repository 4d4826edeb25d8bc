/* The listening socket on a real filesystem: modes under any umask, the
 * lock that tells a live broker from a dead one (the other broker is a
 * forked child), groups, path limits, and systemd's LISTEN_FDS. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/listener.h"

struct fixture {
    char dir[64];
    char path[256];
    char lock_path[300];
    char why[256];
    int lock_fd;
    int fd;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/volt-listener-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/run/volt.sock", f->dir);
    snprintf(f->lock_path, sizeof(f->lock_path), "%s.lock", f->path);
    f->lock_fd = -1;
    f->fd = -1;
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->fd >= 0)
        close(f->fd);
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int create(struct fixture *f, const char *path, unsigned mode, const char *group)
{
    struct listener_options o = {.path = path, .mode = mode, .group = group};

    f->why[0] = '\0';
    return listener_create(&o, &f->lock_fd, f->why, sizeof(f->why));
}

/* 0 or -errno of a blocking connect. */
static int try_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;

    assert_true(fd >= 0);
    assert_true(strlen(path) < sizeof(a.sun_path));
    memcpy(a.sun_path, path, strlen(path) + 1);
    rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Connects to the listener and accepts on it: proves it really listens. */
static void assert_accepts(int listen_fd, const char *path)
{
    int c;

    assert_int_equal(try_connect(path), 0);
    c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(c >= 0);
    close(c);
}

static ino_t inode_of(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    return st.st_ino;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static void test_mode_is_exact_under_any_umask(void **state)
{
    struct fixture *f = *state;
    const unsigned modes[] = {0600, 0660, 0666};
    const mode_t masks[] = {0, 0002, 0022, 0077, 0777};

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        for (size_t j = 0; j < sizeof(masks) / sizeof(masks[0]); j++) {
            mode_t before = umask(masks[j]);
            struct stat st;

            f->fd = create(f, f->path, modes[i], NULL);
            assert_true(f->fd >= 0);
            /* The process umask is what it was. */
            assert_int_equal(umask(before), masks[j]);
            assert_int_equal(lstat(f->path, &st), 0);
            assert_true(S_ISSOCK(st.st_mode));
            assert_int_equal(st.st_mode & 07777, modes[i]);
            assert_int_equal(st.st_uid, geteuid());
            assert_accepts(f->fd, f->path);
            listener_remove(f->path, f->lock_fd);
            f->lock_fd = -1;
            close(f->fd);
            f->fd = -1;
        }
    }
}

static void test_parent_directories_are_created(void **state)
{
    struct fixture *f = *state;
    char path[256], dir[256];
    struct stat st;
    mode_t before = umask(0);

    snprintf(path, sizeof(path), "%s/a/b/c/volt.sock", f->dir);
    f->fd = create(f, path, 0660, NULL);
    umask(before);
    assert_true(f->fd >= 0);
    snprintf(dir, sizeof(dir), "%s/a/b/c", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_accepts(f->fd, path);

    /* Existing directories are fine too (the second run of a broker). */
    listener_remove(path, f->lock_fd);
    f->lock_fd = -1;
    close(f->fd);
    f->fd = create(f, path, 0660, NULL);
    assert_true(f->fd >= 0);
    assert_accepts(f->fd, path);
}

/* A broker that died without cleaning up: its socket file is there, its
 * lock went with the process. */
/* Whoever controls the socket's directory could swap the socket. */
static void test_foreign_or_open_directory_is_refused(void **state)
{
    struct fixture *f = *state;
    char dir[sizeof(f->path)];

    snprintf(dir, sizeof(dir), "%s/run", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    /* writable by others, no sticky bit */
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(create(f, f->path, 0660, NULL), -EPERM);
    assert_non_null(strstr(f->why, "writable by other users"));
    assert_false(exists(f->path));
    /* the sticky bit (as /tmp has) does not make it fine: someone could
     * plant the lock file first; the message says what to do instead */
    assert_int_equal(chmod(dir, 01777), 0);
    assert_int_equal(create(f, f->path, 0660, NULL), -EPERM);
    assert_non_null(strstr(f->why, "use a private subdirectory"));
    /* a group-writable one neither */
    assert_int_equal(chmod(dir, 0775), 0);
    assert_int_equal(create(f, f->path, 0660, NULL), -EPERM);
    /* private: fine */
    assert_int_equal(chmod(dir, 0755), 0);
    f->fd = create(f, f->path, 0660, NULL);
    assert_true(f->fd >= 0);
    listener_remove(f->path, f->lock_fd);
    f->lock_fd = -1;
    close(f->fd);
    f->fd = -1;

    /* a lock file that is a symlink is not followed */
    char lock[sizeof(f->path) + 8], target[sizeof(dir) + 16];
    snprintf(lock, sizeof(lock), "%s.lock", f->path);
    snprintf(target, sizeof(target), "%s/elsewhere", dir);
    unlink(lock);
    assert_int_equal(symlink(target, lock), 0);
    assert_true(create(f, f->path, 0660, NULL) < 0);
    assert_non_null(strstr(f->why, "lock"));
    assert_false(exists(target));
    unlink(lock);
    if (geteuid() != 0)
        return; /* giving a directory away needs root; CI runs as root */
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chown(dir, 65534, 65534), 0);
    assert_int_equal(create(f, f->path, 0660, NULL), -EPERM);
    assert_non_null(strstr(f->why, "belongs to uid 65534"));
}

static void test_stale_socket_of_a_dead_broker_is_replaced(void **state)
{
    struct fixture *f = *state;
    int status;
    pid_t child = fork();

    assert_true(child >= 0);
    if (child == 0) {
        struct listener_options o = {.path = f->path, .mode = 0600};
        char why[256];
        int lock_fd;
        _exit(listener_create(&o, &lock_fd, why, sizeof(why)) >= 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(exists(f->path));
    assert_true(exists(f->lock_path));
    /* Nobody listens behind it. */
    assert_int_equal(try_connect(f->path), -ECONNREFUSED);

    f->fd = create(f, f->path, 0660, NULL);
    assert_true(f->fd >= 0);
    assert_true(f->lock_fd >= 0);
    /* (Not an inode comparison: tmpfs reuses the freed number.) */
    assert_accepts(f->fd, f->path);
}

/* A socket file from before there was a lock file at all. */
static void test_stale_socket_without_lock_file_is_replaced(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    char dir[256];

    snprintf(dir, sizeof(dir), "%s/run", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_true(strlen(f->path) < sizeof(a.sun_path));
    memcpy(a.sun_path, f->path, strlen(f->path) + 1);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    close(s);
    assert_false(exists(f->lock_path));

    f->fd = create(f, f->path, 0600, NULL);
    assert_true(f->fd >= 0);
    assert_accepts(f->fd, f->path);
}

/* A path that holds something else than a socket is a configuration
 * mistake: the file is not ours to delete. */
static void test_existing_non_socket_is_not_removed(void **state)
{
    struct fixture *f = *state;
    char dir[256];
    int fd;

    snprintf(dir, sizeof(dir), "%s/run", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "precious", 8), 8);
    close(fd);

    f->fd = create(f, f->path, 0600, NULL);
    assert_int_equal(f->fd, -EEXIST);
    assert_int_equal(f->lock_fd, -1);
    assert_non_null(strstr(f->why, f->path));
    assert_non_null(strstr(f->why, "not a socket"));
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 8);
    /* The lock was released on the way out. */
    fd = open(f->lock_path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
}

/* The other broker is a child process that holds its listener until told
 * to exit (the parent closes `go`). */
static void test_live_broker_is_not_robbed(void **state)
{
    struct fixture *f = *state;
    int ready[2], go[2], status;
    char byte;
    ino_t theirs;
    pid_t child;

    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct listener_options o = {.path = f->path, .mode = 0600};
        char why[256];
        int lock_fd, fd;

        close(ready[0]);
        close(go[1]);
        fd = listener_create(&o, &lock_fd, why, sizeof(why));
        byte = fd >= 0 ? 'y' : 'n';
        if (write(ready[1], &byte, 1) != 1 || fd < 0)
            _exit(1);
        /* Serve connections until the parent lets us go. */
        if (read(go[0], &byte, 1) < 0)
            _exit(2);
        listener_remove(o.path, lock_fd);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    assert_int_equal(read(ready[0], &byte, 1), 1);
    assert_int_equal(byte, 'y');
    theirs = inode_of(f->path);

    f->fd = create(f, f->path, 0600, NULL);
    assert_int_equal(f->fd, -EADDRINUSE);
    assert_int_equal(f->lock_fd, -1);
    assert_non_null(strstr(f->why, "another volt-broker"));
    assert_non_null(strstr(f->why, f->path));
    /* Their socket is untouched and still theirs. */
    assert_int_equal(inode_of(f->path), theirs);
    assert_int_equal(try_connect(f->path), 0);

    /* The same holds within one process: flock is per open file. */
    {
        int other = open(f->lock_path, O_RDWR | O_CLOEXEC);
        assert_true(other >= 0);
        assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
        assert_int_equal(errno, EWOULDBLOCK);
        close(other);
    }

    close(go[1]);
    close(ready[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Gone: now the path is free for us. */
    f->fd = create(f, f->path, 0600, NULL);
    assert_true(f->fd >= 0);
    assert_accepts(f->fd, f->path);
}

static void test_second_create_in_same_process_is_refused(void **state)
{
    struct fixture *f = *state;
    int lock2 = -1, fd2;
    char why[256] = "";
    struct listener_options o = {.path = f->path, .mode = 0600};

    f->fd = create(f, f->path, 0600, NULL);
    assert_true(f->fd >= 0);
    fd2 = listener_create(&o, &lock2, why, sizeof(why));
    assert_int_equal(fd2, -EADDRINUSE);
    assert_int_equal(lock2, -1);
    assert_non_null(strstr(why, "another volt-broker"));
    assert_accepts(f->fd, f->path);
}

/* As root any group will do; otherwise only our own. */
static const struct group *usable_group(void)
{
    const struct group *g = NULL;

    if (geteuid() == 0)
        g = getgrnam("daemon");
    if (!g && geteuid() == 0)
        g = getgrnam("nogroup");
    if (!g)
        g = getgrgid(getegid());
    return g;
}

static void test_group_is_applied(void **state)
{
    struct fixture *f = *state;
    const struct group *g = usable_group();
    char name[64];
    gid_t gid;
    struct stat st;

    assert_non_null(g);
    snprintf(name, sizeof(name), "%s", g->gr_name);
    gid = g->gr_gid;
    if (geteuid() == 0)
        assert_int_not_equal(gid, getegid()); /* or the check proves nothing */
    f->fd = create(f, f->path, 0660, name);
    assert_true(f->fd >= 0);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_gid, gid);
    assert_int_equal(st.st_mode & 07777, 0660);
    assert_accepts(f->fd, f->path);
}

static void test_missing_group_leaves_nothing_behind(void **state)
{
    struct fixture *f = *state;
    const char *group = "volt-no-such-group-7f3a";

    assert_null(getgrnam(group));
    f->fd = create(f, f->path, 0660, group);
    assert_int_equal(f->fd, -ENOENT);
    assert_int_equal(f->lock_fd, -1);
    assert_non_null(strstr(f->why, group));
    assert_non_null(strstr(f->why, "no such group"));
    assert_false(exists(f->path));

    /* The lock was released: a corrected configuration starts. */
    f->fd = create(f, f->path, 0660, NULL);
    assert_true(f->fd >= 0);
    assert_accepts(f->fd, f->path);
}

static void test_path_length_limit(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un a;
    char path[sizeof(a.sun_path) + 64];
    char parent[sizeof(path)];
    size_t base;

    /* dir/x/xxxx...: exactly sizeof(sun_path) bytes is one too many. */
    base = (size_t)snprintf(path, sizeof(path), "%s/x/", f->dir);
    memset(path + base, 'x', sizeof(a.sun_path) - base);
    path[sizeof(a.sun_path)] = '\0';
    assert_int_equal(strlen(path), sizeof(a.sun_path));
    f->fd = create(f, path, 0600, NULL);
    assert_int_equal(f->fd, -ENAMETOOLONG);
    assert_int_equal(f->lock_fd, -1);
    assert_non_null(strstr(f->why, "too long"));
    /* Refused before touching the filesystem. */
    snprintf(parent, sizeof(parent), "%s/x", f->dir);
    assert_false(exists(parent));

    /* Far too long as well. */
    memset(path + base, 'x', sizeof(path) - base - 1);
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(create(f, path, 0600, NULL), -ENAMETOOLONG);

    /* One byte less fits. */
    path[sizeof(a.sun_path) - 1] = '\0';
    f->fd = create(f, path, 0600, NULL);
    assert_true(f->fd >= 0);
    assert_accepts(f->fd, path);
}

static void test_remove_keeps_the_lock_file(void **state)
{
    struct fixture *f = *state;
    int fd;

    f->fd = create(f, f->path, 0600, NULL);
    assert_true(f->fd >= 0);
    assert_true(exists(f->lock_path));

    /* Without the lock it is not ours: nothing happens. */
    listener_remove(f->path, -1);
    assert_true(exists(f->path));

    listener_remove(f->path, f->lock_fd);
    assert_false(exists(f->path));
    assert_true(exists(f->lock_path));
    /* The lock fd was closed, so the lock is free. */
    assert_int_equal(fcntl(f->lock_fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    f->lock_fd = -1;
    fd = open(f->lock_path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
}

/* ---- socket activation ---- */

struct fd3 {
    int saved; /* what was at fd 3 before the test, or -1 */
};

static void fd3_save(struct fd3 *s)
{
    s->saved = fcntl(3, F_DUPFD_CLOEXEC, 10);
}

static void fd3_restore(struct fd3 *s)
{
    close(3);
    if (s->saved >= 0) {
        assert_int_equal(dup2(s->saved, 3), 3);
        close(s->saved);
    }
}

static void set_env(const char *pid, const char *fds)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (pid)
        setenv("LISTEN_PID", pid, 1);
    if (fds)
        setenv("LISTEN_FDS", fds, 1);
    setenv("LISTEN_FDNAMES", "volt-broker.socket", 1);
}

static void assert_env_unset(void)
{
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
}

static void test_systemd_without_variables(void **state)
{
    (void)state;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    assert_int_equal(listener_from_systemd(), -1);
    /* LISTEN_FDS alone, or LISTEN_PID alone, is not activation either. */
    set_env(NULL, "1");
    assert_int_equal(listener_from_systemd(), -1);
    set_env("1", NULL);
    assert_int_equal(listener_from_systemd(), -1);
    set_env(NULL, NULL);
    unsetenv("LISTEN_FDNAMES");
}

static void test_systemd_passes_fd_3(void **state)
{
    struct fixture *f = *state;
    struct fd3 s;
    struct stat a, b;
    char pid[32];

    f->fd = create(f, f->path, 0600, NULL);
    assert_true(f->fd >= 0);
    fd3_save(&s);
    assert_int_equal(dup2(f->fd, 3), 3);
    /* As systemd passes it: blocking and inherited across exec. */
    assert_int_equal(fcntl(3, F_SETFD, 0), 0);
    assert_int_equal(fcntl(3, F_SETFL, fcntl(3, F_GETFL) & ~O_NONBLOCK), 0);

    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    set_env(pid, "1");
    assert_int_equal(listener_from_systemd(), 3);
    assert_env_unset();
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(3, F_GETFL) & O_NONBLOCK);
    assert_int_equal(fstat(3, &a), 0);
    assert_int_equal(fstat(f->fd, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    assert_accepts(3, f->path);

    /* The variables are gone, so a second call finds nothing. */
    assert_int_equal(listener_from_systemd(), -1);
    fd3_restore(&s);
}

static void test_systemd_for_another_process(void **state)
{
    struct fixture *f = *state;
    struct fd3 s;
    char pid[32];

    f->fd = create(f, f->path, 0600, NULL);
    assert_true(f->fd >= 0);
    fd3_save(&s);
    assert_int_equal(dup2(f->fd, 3), 3);
    assert_int_equal(fcntl(3, F_SETFD, 0), 0);

    /* E.g. inherited from a parent that was activated. */
    snprintf(pid, sizeof(pid), "%ld", (long)getppid());
    set_env(pid, "1");
    assert_int_equal(listener_from_systemd(), -1);
    assert_env_unset();
    /* Not ours: left alone. */
    assert_int_equal(fcntl(3, F_GETFD) & FD_CLOEXEC, 0);

    set_env("not-a-pid", "1");
    assert_int_equal(listener_from_systemd(), -1);
    assert_env_unset();

    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    set_env(pid, "0");
    assert_int_equal(listener_from_systemd(), -1);
    assert_env_unset();
    fd3_restore(&s);
}

/* LISTEN_FDS=1 but nothing at fd 3 (a wrapper closed it): no fd. */
static void test_systemd_fd_3_missing(void **state)
{
    struct fd3 s;
    char pid[32];

    (void)state;
    fd3_save(&s);
    close(3);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    set_env(pid, "1");
    assert_int_equal(listener_from_systemd(), -1);
    assert_env_unset();
    fd3_restore(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mode_is_exact_under_any_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_directories_are_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_or_open_directory_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_of_a_dead_broker_is_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_without_lock_file_is_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_existing_non_socket_is_not_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_broker_is_not_robbed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_create_in_same_process_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_is_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_group_leaves_nothing_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_length_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_keeps_the_lock_file, setup, teardown),
        cmocka_unit_test(test_systemd_without_variables),
        cmocka_unit_test_setup_teardown(test_systemd_passes_fd_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_systemd_for_another_process, setup, teardown),
        cmocka_unit_test(test_systemd_fd_3_missing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
