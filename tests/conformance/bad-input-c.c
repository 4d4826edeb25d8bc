/* The shared bad-input cases (bad-input.json here) run by libvoltclient
 * against its own fake broker (client-lib/fake-broker.c), in this thread:
 * every wait of the fake broker drives the client. One cmocka test per
 * case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <volt/client.h>

#include "../../client-lib/fake-broker.h"

#define WAIT_MS 5000

struct rec {
    volt_client *c;
    int settled, code;
    char code_name[64], message[256];
    int errors[32];
    int n_errors;
    int broker_up;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pump(void *arg)
{
    struct rec *r = arg;
    volt_client_run_for(r->c, 1);
}

#define PUMP_UNTIL(r, cond, what)                                                                  \
    do {                                                                                           \
        int64_t end_ = now_ms() + WAIT_MS;                                                         \
        while (!(cond)) {                                                                          \
            if (now_ms() > end_)                                                                   \
                fail_msg("waited %d ms for %s", WAIT_MS, what);                                    \
            pump(r);                                                                               \
        }                                                                                          \
    } while (0)

static void on_result(volt_client *c, const volt_result *res, void *p)
{
    (void)c;
    struct rec *r = p;
    if (r->settled++)
        return;
    r->code = res->code;
    snprintf(r->code_name, sizeof r->code_name, "%s", res->code_name ? res->code_name : "0");
    snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
}

static void on_error(volt_client *c, int code, const char *message, void *p)
{
    (void)c;
    (void)message;
    struct rec *r = p;
    if (r->n_errors < 32)
        r->errors[r->n_errors++] = code;
}

static void on_broker(volt_client *c, int up, void *p)
{
    (void)c;
    struct rec *r = p;
    if (up)
        r->broker_up++;
}

static bool has_error(const struct rec *r, int code)
{
    for (int i = 0; i < r->n_errors; i++)
        if (r->errors[i] == code)
            return true;
    return false;
}

static void errors_text(const struct rec *r, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < r->n_errors && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "", volt_err_name(r->errors[i]));
}

static void run_case(void **state)
{
    const cJSON *bad = *state;
    const char *hex = cJSON_GetObjectItem(bad, "hex")->valuestring;
    const char *want_error = cJSON_GetObjectItem(bad, "error")->valuestring;
    bool close_after = cJSON_IsTrue(cJSON_GetObjectItem(bad, "close"));
    size_t n = strlen(hex) / 2;
    uint8_t *bytes = malloc(n + 1);
    assert_non_null(bytes);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        bytes[i] = (uint8_t)v;
    }

    struct rec r;
    memset(&r, 0, sizeof r);
    struct fb *fb = fb_new();
    fb_set_pump(fb, pump, &r);
    struct volt_options o;
    volt_options_init(&o);
    o.socket_path = fb->path;
    o.name = "bad-input";
    o.reconnect_min_ms = 10;
    o.reconnect_max_ms = 50;
    r.c = volt_client_new(&o);
    assert_non_null(r.c);
    volt_on_error(r.c, on_error, &r);
    volt_on_broker(r.c, on_broker, &r);

    assert_int_equal(volt_client_connect(r.c), 0);
    fb_handshake(fb, "ready");
    PUMP_UNTIL(&r, volt_client_is_ready(r.c), "ready");
    assert_int_equal(volt_send_command(r.c, "never", NULL, 0, 0, on_result, &r), 0);
    struct proto_msg m;
    fb_expect(fb, PROTO_OP_REQUEST, &m);
    fb_send_raw(fb, bytes, n);
    if (close_after)
        fb_close_conn(fb);
    PUMP_UNTIL(&r, r.settled > 0, "the command in flight to settle");
    if (r.code != VOLT_E_SOCKET_NOT_READY)
        fail_msg("the command in flight: expected SOCKET_NOT_READY, got %s (%s)", r.code_name,
                 r.message);
    int want = volt_err_from_name(want_error);
    char seen[512];
    int64_t end = now_ms() + WAIT_MS;
    while (!has_error(&r, want) && now_ms() < end)
        pump(&r);
    errors_text(&r, seen, sizeof seen);
    if (!has_error(&r, want))
        fail_msg("expected an error %s, got: %s", want_error, seen);

    /* The reconnect, and a command on the new connection. */
    fb_handshake(fb, "ready");
    PUMP_UNTIL(&r, r.broker_up == 2 && volt_client_is_ready(r.c), "the reconnect");
    r.settled = 0;
    static const uint8_t payload[] = {0x81, 0xa1, 0x6b, 0x01}; /* {"k": 1} */
    assert_int_equal(volt_send_command(r.c, "echo", payload, sizeof payload, 0, on_result, &r), 0);
    fb_expect(fb, PROTO_OP_REQUEST, &m);
    fb_result_ok(fb, m.id, payload, sizeof payload);
    PUMP_UNTIL(&r, r.settled > 0, "the echo");
    if (r.code != 0)
        fail_msg("echo: expected 0, got %s (%s)", r.code_name, r.message);
    assert_int_equal(r.settled, 1);

    volt_client_free(r.c);
    fb_free(fb);
    free(bytes);
}

int main(void)
{
    FILE *f = fopen(VOLT_SOURCE_DIR "/tests/conformance/bad-input.json", "rb");
    if (!f) {
        perror(VOLT_SOURCE_DIR "/tests/conformance/bad-input.json");
        return 1;
    }
    static char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    cJSON *spec = cJSON_Parse(text);
    if (!spec) {
        fprintf(stderr, "bad-input.json: not JSON\n");
        return 1;
    }
    const cJSON *cases = cJSON_GetObjectItem(spec, "cases");
    int n = cJSON_GetArraySize(cases);
    struct CMUnitTest *tests = calloc((size_t)n, sizeof *tests);
    if (!tests)
        return 1;
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        tests[i].name = cJSON_GetObjectItem(c, "name")->valuestring;
        tests[i].test_func = run_case;
        tests[i].initial_state = (void *)c;
        i++;
    }
    int rc = _cmocka_run_group_tests("bad-input", tests, (size_t)n, NULL, NULL);
    free(tests);
    cJSON_Delete(spec);
    return rc;
}
