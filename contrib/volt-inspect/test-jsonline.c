/* JSON line <-> frame: the frame bytes, automatic ids (which ops, order,
 * never colliding with typed ids), every kind of bad line leaving the
 * output untouched, binary in the $bin form both ways, max_frame. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "jsonline.h"
#include "proto/errors.h"
#include "proto/limits.h"
#include "proto/reader.h"

struct fixture {
    struct jsonline *jl;
    struct proto_buf out;
    struct proto_buf text;
    char err[256];
};

static int setup(void **state)
{
    static struct fixture f;

    memset(&f, 0, sizeof(f));
    f.jl = jsonline_new();
    *state = &f;
    return f.jl ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    jsonline_free(f->jl);
    proto_buf_free(&f->out);
    proto_buf_free(&f->text);
    return 0;
}

/* Converts line into f->out (reset first); returns the rc. */
static int convert(struct fixture *f, const char *line, struct jsonline_sent *sent)
{
    proto_buf_reset(&f->out);
    f->err[0] = '\0';
    return jsonline_to_frame(f->jl, line, strlen(line), &f->out, sent, f->err, sizeof(f->err));
}

/* The frame in f->out, checked to be exactly one well-formed frame, back
 * as JSON text. */
static const char *frame_json(struct fixture *f)
{
    struct proto_reader *r = proto_reader_new(NULL);
    struct proto_span body;

    assert_non_null(r);
    assert_int_equal(proto_reader_feed(r, f->out.data, f->out.len), 0);
    assert_int_equal(proto_reader_next(r, &body), 1);
    assert_int_equal(proto_reader_pending(r), 0);
    proto_buf_reset(&f->text);
    assert_int_equal(
        jsonline_from_frame(f->jl, body.ptr, body.len, &f->text, f->err, sizeof(f->err)), 0);
    assert_int_equal(proto_buf_append_byte(&f->text, 0), 0);
    proto_reader_free(r);
    return (const char *)f->text.data;
}

/* Converts and expects success with the given JSON coming back. */
static struct jsonline_sent roundtrip(struct fixture *f, const char *line, const char *expect)
{
    struct jsonline_sent sent;

    assert_int_equal(convert(f, line, &sent), 0);
    assert_string_equal(frame_json(f), expect);
    return sent;
}

static void test_frame_bytes(void **state)
{
    struct fixture *f = *state;
    struct jsonline_sent sent;
    /* {"op":"ping","id":1} */
    static const uint8_t expect[] = {0,   0,   0,   13,  0x82, 0xa2, 'o', 'p', 0xa4,
                                     'p', 'i', 'n', 'g', 0xa2, 'i',  'd', 1};

    assert_int_equal(convert(f, "{\"op\":\"ping\"}\n", &sent), 0);
    assert_int_equal(f->out.len, sizeof(expect));
    assert_memory_equal(f->out.data, expect, sizeof(expect));
    assert_int_equal(sent.op, PROTO_OP_PING);
    assert_true(sent.has_id);
    assert_true(sent.id_assigned);
    assert_int_equal(sent.id, 1);
    assert_true(sent.expects_answer);

    /* Appends: a second frame goes after the first. */
    proto_buf_reset(&f->out);
    const char *hello = "{\"op\":\"hello\",\"min_version\":1}\r\n";
    assert_int_equal(
        jsonline_to_frame(f->jl, hello, strlen(hello) - 2, &f->out, &sent, f->err, sizeof(f->err)),
        0);
    size_t first = f->out.len;
    assert_int_equal(
        jsonline_to_frame(f->jl, hello, strlen(hello), &f->out, &sent, f->err, sizeof(f->err)), 0);
    assert_int_equal(f->out.len, 2 * first);
    assert_memory_equal(f->out.data, f->out.data + first, first);
    assert_int_equal(sent.op, PROTO_OP_HELLO);
    assert_false(sent.has_id);
    assert_false(sent.expects_answer);
}

static void test_auto_ids(void **state)
{
    struct fixture *f = *state;
    struct jsonline_sent s;

    s = roundtrip(f, "{\"op\":\"status\"}", "{\"op\":\"status\",\"id\":1}");
    assert_int_equal(s.id, 1);
    /* Inserted right after op, wherever op is. */
    s = roundtrip(f, "{\"command\":\"x\",\"op\":\"request\",\"payload\":[1,2]}",
                  "{\"command\":\"x\",\"op\":\"request\",\"id\":2,\"payload\":[1,2]}");
    assert_true(s.id_assigned);
    assert_int_equal(jsonline_next_id(f->jl), 3);

    /* Every op that takes a client id gets one: the op table says which
     * (answered under its id, always), so a new op is covered by itself. */
    uint64_t next = 3;
    for (int op = PROTO_OP_NONE + 1; op < PROTO_OP__COUNT; op++) {
        const struct proto_op_info *info = proto_op_info((enum proto_op)op);
        if (!info->from_client ||
            (info->answer != PROTO_ANSWER_RESULT && info->answer != PROTO_ANSWER_PONG))
            continue;
        char line[64];
        snprintf(line, sizeof(line), "{\"op\":\"%s\"}", info->name);
        assert_int_equal(convert(f, line, &s), 0);
        if (!s.id_assigned || s.id != next || !s.expects_answer)
            fail_msg("op %s: id_assigned %d, id %" PRIu64 " (expected %" PRIu64
                     "), expects_answer %d",
                     info->name, s.id_assigned, s.id, next, s.expects_answer);
        next++;
    }
    assert_true(next > 3 + 6); /* the table was read, and has the ops it should */

    /* Not: hello, reply (the broker's id), emit (changes the answer),
     * unknown ops. */
    s = roundtrip(f, "{\"op\":\"emit\",\"type\":\"t\"}", "{\"op\":\"emit\",\"type\":\"t\"}");
    assert_false(s.has_id);
    assert_false(s.expects_answer);
    s = roundtrip(f, "{\"op\":\"frobnicate\"}", "{\"op\":\"frobnicate\"}");
    assert_int_equal(s.op, PROTO_OP_NONE);
    assert_false(s.has_id);
    assert_int_equal(jsonline_next_id(f->jl), next);
}

static void test_typed_ids(void **state)
{
    struct fixture *f = *state;
    struct jsonline_sent s;

    /* A typed id is kept and pushes the counter past it. */
    s = roundtrip(f, "{\"op\":\"ping\",\"id\":41}", "{\"op\":\"ping\",\"id\":41}");
    assert_false(s.id_assigned);
    assert_true(s.has_id);
    assert_int_equal(s.id, 41);
    assert_true(s.expects_answer);
    s = roundtrip(f, "{\"op\":\"ping\"}", "{\"op\":\"ping\",\"id\":42}");
    assert_int_equal(s.id, 42);

    /* A lower typed id does not move it back. */
    roundtrip(f, "{\"op\":\"ping\",\"id\":5}", "{\"op\":\"ping\",\"id\":5}");
    assert_int_equal(jsonline_next_id(f->jl), 43);

    /* A reply's id is the broker's call id: kept, no answer owed, the
     * counter untouched. */
    s = roundtrip(f, "{\"op\":\"reply\",\"id\":900,\"ok\":true}",
                  "{\"op\":\"reply\",\"id\":900,\"ok\":true}");
    assert_true(s.has_id);
    assert_false(s.expects_answer);
    assert_int_equal(jsonline_next_id(f->jl), 43);

    /* An emit with an id is answered. */
    s = roundtrip(f, "{\"op\":\"emit\",\"type\":\"t\",\"id\":50}",
                  "{\"op\":\"emit\",\"type\":\"t\",\"id\":50}");
    assert_true(s.expects_answer);

    /* A non-integer id is sent as typed (the broker will say BadRequest)
     * and none is added. */
    s = roundtrip(f, "{\"op\":\"ping\",\"id\":\"x\"}", "{\"op\":\"ping\",\"id\":\"x\"}");
    assert_false(s.has_id);
    assert_false(s.expects_answer);
}

static void test_emit_and_switches(void **state)
{
    struct fixture *f = *state;
    struct jsonline_sent s;

    jsonline_set_auto_id(f->jl, true, true);
    s = roundtrip(f, "{\"op\":\"emit\",\"type\":\"t\"}",
                  "{\"op\":\"emit\",\"id\":1,\"type\":\"t\"}");
    assert_true(s.expects_answer);
    s = roundtrip(f, "{\"op\":\"frobnicate\"}", "{\"op\":\"frobnicate\",\"id\":2}");
    assert_true(s.expects_answer);
    s = roundtrip(f, "{\"op\":\"result\"}", "{\"op\":\"result\",\"id\":3}");
    assert_true(s.expects_answer);
    /* Still never hello or reply. */
    s = roundtrip(f, "{\"op\":\"hello\"}", "{\"op\":\"hello\"}");
    assert_false(s.has_id);
    s = roundtrip(f, "{\"op\":\"reply\",\"ok\":true}", "{\"op\":\"reply\",\"ok\":true}");
    assert_false(s.has_id);
    assert_false(s.expects_answer);

    jsonline_set_auto_id(f->jl, false, false);
    s = roundtrip(f, "{\"op\":\"ping\"}", "{\"op\":\"ping\"}");
    assert_false(s.has_id);
    assert_false(s.expects_answer);

    /* Raw: no op needed, nothing added. */
    jsonline_set_auto_id(f->jl, true, false);
    jsonline_set_raw(f->jl, true);
    s = roundtrip(f, "{\"hello\":1}", "{\"hello\":1}");
    assert_int_equal(s.op, PROTO_OP_NONE);
    s = roundtrip(f, "{\"op\":\"ping\"}", "{\"op\":\"ping\"}");
    assert_false(s.has_id);
    /* Even raw, a frame must be a map: {"$bin":..} alone is a binary. */
    assert_int_equal(convert(f, "{\"$bin\":\"AAEC\"}", &s), PROTO_E_BAD_FRAME);
    assert_non_null(strstr(f->err, "one JSON object"));
    assert_int_equal(f->out.len, 0);
    jsonline_set_raw(f->jl, false);
    assert_int_equal(convert(f, "{\"hello\":1}", &s), PROTO_E_BAD_REQUEST);
}

static void test_bad_lines(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *line;
        int rc;
        const char *says;
    } bad[] = {
        {"{\"op\":\"ping\"", PROTO_E_BAD_FRAME, "not valid JSON"},
        {"{op:ping}", PROTO_E_BAD_FRAME, "not valid JSON"},
        {"[1,2]", PROTO_E_BAD_FRAME, "one JSON object"},
        {"\"ping\"", PROTO_E_BAD_FRAME, "one JSON object"},
        {"42", PROTO_E_BAD_FRAME, "one JSON object"},
        {"{\"op\":\"ping\"} {}", PROTO_E_BAD_FRAME, "not valid JSON"},
        {"{\"$bin\":\"AAEC\"}", PROTO_E_BAD_REQUEST, "no string \"op\""},
        {"{\"id\":1}", PROTO_E_BAD_REQUEST, "no string \"op\""},
        {"{\"op\":7}", PROTO_E_BAD_REQUEST, "no string \"op\""},
        {"{\"op\":\"ping\",\"x\":\"\\ud800\"}", PROTO_E_BAD_FRAME, ""},
    };
    struct jsonline_sent s;
    uint64_t next = jsonline_next_id(f->jl);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        proto_buf_reset(&f->out);
        proto_buf_append(&f->out, "keep", 4);
        f->err[0] = '\0';
        int rc = jsonline_to_frame(f->jl, bad[i].line, strlen(bad[i].line), &f->out, &s, f->err,
                                   sizeof(f->err));
        if (rc != bad[i].rc)
            fail_msg("line %s: rc %d, want %d (%s)", bad[i].line, rc, bad[i].rc, f->err);
        assert_int_equal(f->out.len, 4);
        assert_memory_equal(f->out.data, "keep", 4);
        assert_true(f->err[0] != '\0');
        assert_non_null(strstr(f->err, bad[i].says));
    }
    /* No id was used up by a refused line. */
    assert_int_equal(jsonline_next_id(f->jl), next);
}

static void test_comments(void **state)
{
    struct fixture *f = *state;
    static const char *const skip[] = {"", "\n", "   \t\r\n", "# a comment", "  # {\"op\":1}"};

    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++) {
        assert_int_equal(convert(f, skip[i], NULL), 1);
        assert_int_equal(f->out.len, 0);
    }
}

static void test_binary(void **state)
{
    struct fixture *f = *state;
    struct proto_reader *r = proto_reader_new(NULL);
    struct proto_span body;
    struct proto_msg m;
    const char *why;

    /* {"$bin": base64} becomes msgpack bin, and prints back the same. */
    roundtrip(
        f, "{\"op\":\"request\",\"command\":\"up\",\"payload\":{\"$bin\":\"AAEC/w==\"}}",
        "{\"op\":\"request\",\"id\":1,\"command\":\"up\",\"payload\":{\"$bin\":\"AAEC/w==\"}}");
    assert_int_equal(proto_reader_feed(r, f->out.data, f->out.len), 0);
    assert_int_equal(proto_reader_next(r, &body), 1);
    assert_int_equal(proto_msg_decode(&body, &m, &why), 0);
    /* bin 8 of 4 bytes */
    assert_int_equal(m.payload.len, 6);
    assert_memory_equal(m.payload.ptr, "\xc4\x04\x00\x01\x02\xff", 6);
    proto_reader_free(r);

    /* Big integers stay exact; floats keep being floats. */
    roundtrip(
        f,
        "{\"op\":\"emit\",\"type\":\"n\",\"data\":[18446744073709551615,-9223372036854775808,0.5]}",
        "{\"op\":\"emit\",\"type\":\"n\",\"data\":[18446744073709551615,-9223372036854775808,0.5]"
        "}");
}

static void test_max_frame(void **state)
{
    struct fixture *f = *state;
    struct jsonline_sent s;

    /* {"op":"ping","id":1} is 13 bytes of body. */
    jsonline_set_max_frame(f->jl, 13);
    assert_int_equal(convert(f, "{\"op\":\"ping\"}", &s), 0);
    assert_int_equal(convert(f, "{\"op\":\"ping\",\"x\":1}", &s), PROTO_E_FRAME_TOO_LARGE);
    assert_int_equal(f->out.len, 0);
    assert_non_null(strstr(f->err, "max_frame (13)"));
    /* 0 restores the default. */
    jsonline_set_max_frame(f->jl, 0);
    assert_int_equal(convert(f, "{\"op\":\"ping\",\"x\":1}", &s), 0);
}

static void test_from_frame_errors(void **state)
{
    struct fixture *f = *state;

    /* A map with an ext value has no JSON form: an error, nothing written. */
    static const uint8_t ext[] = {0x81, 0xa1, 'x', 0xd4, 0x01, 0x00};
    proto_buf_reset(&f->text);
    assert_true(jsonline_from_frame(f->jl, ext, sizeof(ext), &f->text, f->err, sizeof(f->err)) < 0);
    assert_int_equal(f->text.len, 0);
    assert_non_null(strstr(f->err, "cannot show frame as JSON"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_frame_bytes),       T(test_auto_ids), T(test_typed_ids), T(test_emit_and_switches),
        T(test_bad_lines),         T(test_comments), T(test_binary),    T(test_max_frame),
        T(test_from_frame_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
