#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/url.h"

struct good_case {
    const char *url;
    bool tls;
    uint16_t port;
    const char *host;
    bool ipv6;
    const char *path;
};

static const struct good_case good_cases[] = {
    {"wss://volt.example.com/control", true, 443, "volt.example.com", false, "/control"},
    {"wss://host:9000/control", true, 9000, "host", false, "/control"},
    {"ws://host/control", false, 80, "host", false, "/control"},
    {"ws://host", false, 80, "host", false, "/"},
    {"ws://host/", false, 80, "host", false, "/"},
    {"http://host:8080/control", false, 8080, "host", false, "/control"},
    {"https://host/control", true, 443, "host", false, "/control"},
    {"WSS://Host.Example:1/ns", true, 1, "Host.Example", false, "/ns"},
    {"HTTPS://h", true, 443, "h", false, "/"},
    {"ws://127.0.0.1:65535/control", false, 65535, "127.0.0.1", false, "/control"},
    {"wss://[::1]:8443/control", true, 8443, "::1", true, "/control"},
    {"wss://[2001:db8::42]/control", true, 443, "2001:db8::42", true, "/control"},
    {"ws://[::ffff:10.0.0.1]", false, 80, "::ffff:10.0.0.1", true, "/"},
    {"ws://my_container-1:80/control/", false, 80, "my_container-1", false, "/control/"},
    {"ws://h/a/b%20c", false, 80, "h", false, "/a/b%20c"},
};

static void test_good_urls(void **state)
{
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        const struct good_case *c = &good_cases[i];
        struct url_parts u;
        const char *error = NULL;
        int r = url_parse(c->url, &u, &error);

        if (r != 0)
            fail_msg("%s: refused (%s)", c->url, error ? error : "?");
        if (u.tls != c->tls || u.port != c->port || u.host_is_ipv6 != c->ipv6)
            fail_msg("%s: tls=%d port=%u ipv6=%d", c->url, u.tls, u.port, u.host_is_ipv6);
        if (strcmp(u.host, c->host) != 0)
            fail_msg("%s: host '%s', expected '%s'", c->url, u.host, c->host);
        if (strcmp(u.path, c->path) != 0)
            fail_msg("%s: path '%s', expected '%s'", c->url, u.path, c->path);
    }
}

struct bad_case {
    const char *url;
    const char *error_word; /* a word the error sentence must contain */
};

static const struct bad_case bad_cases[] = {
    {"", "empty"},
    {"host/control", "scheme"},
    {"ftp://host/control", "scheme"},
    {"wsx://host", "scheme"},
    {"ws:/host", "scheme"},
    {"ws://", "host"},
    {"ws:///control", "host"},
    {"ws://:80/control", "host"},
    {"ws://host:/control", "port"},
    {"ws://host:0", "port"},
    {"ws://host:65536", "port"},
    {"ws://host:99999999", "port"},
    {"ws://host:-1", "port"},
    {"ws://host:8o", "port"},
    {"ws://host:80:81", "port"},
    {"ws://user:secret@host/control", "user info"},
    {"ws://host/control?x=1", "query"},
    {"ws://host?x=1", "query"},
    {"ws://host/control#frag", "fragment"},
    {"ws://[::1/control", "IPv6"},
    {"ws://[]:80", "IPv6"},
    {"ws://[zz::1]", "IPv6"},
    {"ws://[fe80::1%25eth0]", "zone"},
    {"ws://[::1]x", "IPv6"},
    {"ws://[::1]:", "port"},
    {"ws://::1/control", "host"},
    {"ws://ho$t/control", "host"},
    {"ws://host name/control", "spaces"},
    {"ws://host/con trol", "spaces"},
    {" ws://host", "spaces"},
    {"ws://host\n", "spaces"},
    {"ws://h\xc3\xa9te/control", "non-ASCII"},
};

static void test_bad_urls(void **state)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct url_parts u;
        const char *error = NULL;
        int r = url_parse(c->url, &u, &error);

        if (r != -EINVAL)
            fail_msg("'%s': expected -EINVAL, got %d", c->url, r);
        if (!error || !strstr(error, c->error_word))
            fail_msg("'%s': error '%s' does not mention '%s'", c->url, error ? error : "(null)",
                     c->error_word);
    }
}

static void test_error_never_quotes_the_input(void **state)
{
    struct url_parts u;
    const char *error = NULL;

    assert_int_equal(url_parse("wss://daemon:hunter2@host/control", &u, &error), -EINVAL);
    assert_non_null(error);
    assert_null(strstr(error, "hunter2"));
}

static void test_host_length_limit(void **state)
{
    char url[400];
    char name[300];
    struct url_parts u;
    const char *error = NULL;

    memset(name, 'a', 253);
    name[253] = '\0';
    snprintf(url, sizeof(url), "ws://%s/control", name);
    assert_int_equal(url_parse(url, &u, &error), 0);
    assert_int_equal(strlen(u.host), 253);

    memset(name, 'a', 254);
    name[254] = '\0';
    snprintf(url, sizeof(url), "ws://%s/control", name);
    assert_int_equal(url_parse(url, &u, &error), -EINVAL);
}

static void test_path_length_limit(void **state)
{
    char url[URL_PATH_MAX + 64];
    struct url_parts u;
    const char *error = NULL;
    size_t prefix = strlen("ws://h");

    memcpy(url, "ws://h", prefix);
    memset(url + prefix, '/', URL_PATH_MAX);
    url[prefix + URL_PATH_MAX] = '\0';
    assert_int_equal(url_parse(url, &u, &error), 0);
    assert_int_equal(strlen(u.path), URL_PATH_MAX);

    url[prefix + URL_PATH_MAX] = '/';
    url[prefix + URL_PATH_MAX + 1] = '\0';
    assert_int_equal(url_parse(url, &u, &error), -EINVAL);
    assert_non_null(strstr(error, "too long"));
}

static void test_null_arguments(void **state)
{
    struct url_parts u;
    const char *error = NULL;

    assert_int_equal(url_parse(NULL, &u, &error), -EINVAL);
    assert_non_null(error);
    assert_int_equal(url_parse("ws://h", NULL, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_error_never_quotes_the_input),
        cmocka_unit_test(test_host_length_limit),
        cmocka_unit_test(test_path_length_limit),
        cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
