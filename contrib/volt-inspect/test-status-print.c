/* The status pretty-printer on sample maps: the full layout, missing
 * fields, extra counters and sections of a newer broker, not-a-map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "status_print.h"

/* Prints the status map given as JSON; returns the text (caller frees). */
static char *render(const char *json, int *rc)
{
    struct proto_json_doc doc;
    struct proto_buf mp = PROTO_BUF_INIT;
    struct proto_json_opts opts = {.bin = PROTO_JSON_BIN_MARKER};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    proto_json_doc_init(&doc);
    assert_int_equal(proto_json_to_msgpack(&doc, json, strlen(json), &mp, &opts, NULL), 0);
    *rc = status_print(f, mp.data, mp.len);
    fclose(f);
    proto_json_doc_free(&doc);
    proto_buf_free(&mp);
    return text;
}

static const char sample[] =
    "{\"broker\":{\"version\":\"volt-broker/0.1.0\",\"pid\":4242,\"uptime_ms\":7384000,"
    "\"listen\":\"/run/volt/broker.sock\",\"clients\":2},"
    "\"upstream\":{\"state\":\"backoff\",\"reason\":\"server closed the connection\","
    "\"since_ms\":302000,\"url\":\"https://volt.example.com\",\"team_cluster_id\":\"tc-42\"},"
    "\"counters\":{\"requests\":12,\"responses_ok\":10,\"rejected\":1,\"timeouts\":0,"
    "\"not_ready\":1,\"inbound\":3,\"inbound_no_handler\":0,\"slow_consumers\":0,"
    "\"reconnects\":123456},"
    "\"clients\":["
    "{\"id\":1,\"pid\":5000,\"uid\":1000,\"name\":\"daemon\",\"handlers\":[\"list-files\","
    "\"get-stats\"],\"subscriptions\":[\"all\"],\"queue_bytes\":0,\"in_flight\":2},"
    "{\"id\":12,\"pid\":5123,\"uid\":0,\"name\":\"volt-inspect\",\"handlers\":[],"
    "\"subscriptions\":[\"prefix:session.\",\"exact:ping\"],\"queue_bytes\":1536,"
    "\"in_flight\":0}]}";

static const char sample_text[] =
    "broker    volt-broker/0.1.0  pid 4242  up 2h 03m 04s\n"
    "          listen /run/volt/broker.sock\n"
    "upstream  backoff  for 5m 02s\n"
    "          url https://volt.example.com  team cluster tc-42\n"
    "          reason: server closed the connection\n"
    "counters  requests               12  responses_ok           10  rejected                1\n"
    "          timeouts                0  not_ready               1  inbound                 3\n"
    "          inbound_no_handler      0  slow_consumers          0  reconnects         123456\n"
    "clients   2 connected\n"
    "  ID  PID   UID   NAME          QUEUE  IN-FLIGHT  HANDLERS              SUBSCRIPTIONS\n"
    "  1   5000  1000  daemon        0B     2          list-files,get-stats  all\n"
    "  12  5123  0     volt-inspect  1.5K   0          -                     "
    "prefix:session.,exact:ping\n";

static void test_sample(void **state)
{
    int rc;
    char *text = render(sample, &rc);

    assert_int_equal(rc, 0);
    assert_string_equal(text, sample_text);
    free(text);
}

/* A young broker: nothing connected upstream, no clients, fields absent;
 * since_ms as a wall-clock time; a section and a counter from a newer
 * version. */
static void test_sparse_and_newer(void **state)
{
    int rc;
    char *text = render("{\"broker\":{\"pid\":7},"
                        "\"upstream\":{\"state\":\"idle\",\"reason\":\"\","
                        "\"since_ms\":1795838400000},"
                        "\"counters\":{\"requests\":5,\"future_counter\":\"x\"},"
                        "\"clients\":[],"
                        "\"cluster\":{\"peers\":[1,2]}}",
                        &rc);

    assert_int_equal(rc, 0);
    assert_string_equal(text, "broker    -  pid 7\n"
                              "upstream  idle  since 2026-11-28T04:00:00Z\n"
                              "counters  requests       5  future_counter ?\n"
                              "clients   0 connected\n"
                              "cluster   {\"peers\":[1,2]}\n");
    free(text);

    /* Clients with missing fields print dashes; an empty map prints the
     * skeleton. */
    text = render("{\"clients\":[{\"id\":3}]}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(text, "broker    -\n"
                              "upstream  -\n"
                              "clients   1 connected\n"
                              "  ID  PID  UID  NAME  QUEUE  IN-FLIGHT  HANDLERS  SUBSCRIPTIONS\n"
                              "  3   -    -    -     -      -          -         -\n");
    free(text);
}

static void test_not_a_map(void **state)
{
    int rc;
    char *text = render("[1,2,3]", &rc);

    assert_int_equal(rc, PROTO_E_BAD_FRAME);
    assert_string_equal(text, "");
    free(text);
}

static void test_bytes(void **state)
{
    char buf[16];

    assert_string_equal(status_format_bytes(0, buf, sizeof(buf)), "0B");
    assert_string_equal(status_format_bytes(1023, buf, sizeof(buf)), "1023B");
    assert_string_equal(status_format_bytes(1024, buf, sizeof(buf)), "1.0K");
    assert_string_equal(status_format_bytes(1536, buf, sizeof(buf)), "1.5K");
    assert_string_equal(status_format_bytes(5u << 20, buf, sizeof(buf)), "5.0M");
    assert_string_equal(status_format_bytes(3ull << 30, buf, sizeof(buf)), "3.0G");
    assert_string_equal(status_format_bytes(~0ull, buf, sizeof(buf)), "16.0E");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_sparse_and_newer),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
