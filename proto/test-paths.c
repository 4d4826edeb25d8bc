/* The default socket paths: the broker's listening rule and the client's
 * lookup rule ($VOLT_BROKER_SOCKET, else an existing per-user socket, else
 * the system socket), with real socket files in a temp dir. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "paths.h"

/* A temp dir standing for $XDG_RUNTIME_DIR, with a volt/ subdir. */
struct rt {
    char dir[64];
    char volt[96];
    char sock[128];
};

static void rt_make(struct rt *r)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/volt-paths-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->volt, sizeof r->volt, "%s/volt", r->dir);
    snprintf(r->sock, sizeof r->sock, "%s/broker.sock", r->volt);
    assert_int_equal(mkdir(r->volt, 0700), 0);
}

static void rt_bind(struct rt *r)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    assert_true(strlen(r->sock) < sizeof sa.sun_path);
    memcpy(sa.sun_path, r->sock, strlen(r->sock) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd); /* the socket file stays, as one of a live broker would */
}

static void rt_free(struct rt *r)
{
    unlink(r->sock);
    rmdir(r->volt);
    rmdir(r->dir);
}

static void test_user_socket_path(void **state)
{
    (void)state;
    char buf[256];
    assert_int_equal(proto_user_socket_path(buf, sizeof buf, "/run/user/1000", 1000), 0);
    assert_string_equal(buf, "/run/user/1000/volt/broker.sock");
    /* Not absolute, or unset: the /tmp rule. */
    assert_int_equal(proto_user_socket_path(buf, sizeof buf, "run/user", 1000), 0);
    assert_string_equal(buf, "/tmp/volt-1000/broker.sock");
    assert_int_equal(proto_user_socket_path(buf, sizeof buf, NULL, 42), 0);
    assert_string_equal(buf, "/tmp/volt-42/broker.sock");
    assert_int_equal(proto_user_socket_path(buf, 10, "/run/user/1000", 1000), -ENAMETOOLONG);
}

static void test_broker_default_unchanged(void **state)
{
    (void)state;
    char buf[256], want[256];
    setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
    assert_int_equal(proto_default_socket_path(buf, sizeof buf), 0);
    if (geteuid() == 0)
        snprintf(want, sizeof want, "%s", PROTO_ROOT_SOCKET);
    else
        snprintf(want, sizeof want, "/run/user/4242/volt/broker.sock");
    assert_string_equal(buf, want);
    unsetenv("XDG_RUNTIME_DIR");
    assert_int_equal(proto_default_socket_path(buf, sizeof buf), 0);
    if (geteuid() != 0) {
        snprintf(want, sizeof want, "/tmp/volt-%u/broker.sock", (unsigned)geteuid());
        assert_string_equal(buf, want);
    }
}

static void test_client_env_wins(void **state)
{
    (void)state;
    struct rt r;
    rt_make(&r);
    rt_bind(&r);
    char buf[256];
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, "/srv/x.sock", r.dir, 1000), 0);
    assert_string_equal(buf, "/srv/x.sock");
    /* Set but empty counts as unset. */
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, "", r.dir, 1000), 0);
    assert_string_equal(buf, r.sock);
    assert_int_equal(proto_client_socket_path_for(buf, 8, "/srv/x.sock", r.dir, 1000),
                     -ENAMETOOLONG);
    rt_free(&r);
}

static void test_client_per_user_socket_when_it_exists(void **state)
{
    (void)state;
    struct rt r;
    rt_make(&r);
    char buf[256];
    /* No per-user broker: the system socket, even for a user that is not root. */
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, NULL, r.dir, 1000), 0);
    assert_string_equal(buf, PROTO_ROOT_SOCKET);

    /* A regular file where the socket would be is not a broker. */
    FILE *f = fopen(r.sock, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, NULL, r.dir, 1000), 0);
    assert_string_equal(buf, PROTO_ROOT_SOCKET);
    unlink(r.sock);

    /* A per-user broker's socket: that one. */
    rt_bind(&r);
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, NULL, r.dir, 1000), 0);
    assert_string_equal(buf, r.sock);

    /* Root's own broker listens on the system socket: root looks there. */
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, NULL, r.dir, 0), 0);
    assert_string_equal(buf, PROTO_ROOT_SOCKET);
    rt_free(&r);
}

static void test_client_tmp_rule(void **state)
{
    (void)state;
    /* Without XDG_RUNTIME_DIR a per-user broker listens in /tmp/volt-UID:
     * an unlikely uid keeps the test away from real users' dirs. */
    unsigned uid = 3000000000u + (unsigned)getpid() % 100000u;
    struct rt r;
    snprintf(r.dir, sizeof r.dir, "/tmp");
    snprintf(r.volt, sizeof r.volt, "/tmp/volt-%u", uid);
    snprintf(r.sock, sizeof r.sock, "%s/broker.sock", r.volt);
    assert_int_equal(mkdir(r.volt, 0700), 0);
    char buf[256];
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, NULL, NULL, uid), 0);
    assert_string_equal(buf, PROTO_ROOT_SOCKET);
    rt_bind(&r);
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, NULL, NULL, uid), 0);
    assert_string_equal(buf, r.sock);
    assert_int_equal(proto_client_socket_path_for(buf, sizeof buf, NULL, "relative", uid), 0);
    assert_string_equal(buf, r.sock);
    unlink(r.sock);
    rmdir(r.volt);
}

static void test_client_rule_from_environment(void **state)
{
    (void)state;
    char buf[256];
    setenv(PROTO_SOCKET_ENV, "/tmp/from-env.sock", 1);
    assert_int_equal(proto_client_socket_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/tmp/from-env.sock");
    unsetenv(PROTO_SOCKET_ENV);

    struct rt r;
    rt_make(&r);
    setenv("XDG_RUNTIME_DIR", r.dir, 1);
    assert_int_equal(proto_client_socket_path(buf, sizeof buf), 0);
    assert_string_equal(buf, PROTO_ROOT_SOCKET);
    rt_bind(&r);
    assert_int_equal(proto_client_socket_path(buf, sizeof buf), 0);
    assert_string_equal(buf, geteuid() == 0 ? PROTO_ROOT_SOCKET : r.sock);
    unsetenv("XDG_RUNTIME_DIR");
    rt_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_socket_path),
        cmocka_unit_test(test_broker_default_unchanged),
        cmocka_unit_test(test_client_env_wins),
        cmocka_unit_test(test_client_per_user_socket_when_it_exists),
        cmocka_unit_test(test_client_tmp_rule),
        cmocka_unit_test(test_client_rule_from_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
