/* The handlers.json rules: what a start accepts from the last stop, and
 * what a stop writes for the next start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/buf.h"
#include "proto/errors.h"
#include "proto/msgpack.h"
#include "util/handlerfile.h"

/* What the broker passes (ROUTER_COMMAND_NAME_MAX); util/ does not see
 * local/router.h. */
#define NAME_MAX_BYTES 256

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define WHY_NOT_OBJECT   "not a JSON object"
#define WHY_NEITHER      "neither \"handlers\" nor \"running\":true"
#define WHY_NOT_ARRAY    "\"handlers\" is not an array"
#define WHY_INVALID_NAME "a handler name is not a valid command name"

/* The list as router_handler_list() writes it: one msgpack array of str. */
static void pack_list(struct proto_buf *b, const char *const *names, size_t n)
{
    proto_buf_init(b);
    assert_int_equal(proto_mp_put_array(b, (uint32_t)n), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(proto_mp_put_cstr(b, names[i]), 0);
}

/* render(list + extra), checked against `expect`; the text in *text. */
static void render_expect(const char *const *list, size_t n_list, const char *const *extra,
                          size_t n_extra, const char *expect, struct proto_buf *text)
{
    struct proto_buf packed;

    pack_list(&packed, list, n_list);
    proto_buf_init(text);
    assert_int_equal(handlerfile_render(packed.data, packed.len, extra, n_extra, text), 0);
    assert_int_equal(text->len, strlen(expect));
    assert_memory_equal(text->data, expect, text->len);
    proto_buf_free(&packed);
}

static void assert_names(const struct handlerfile *hf, const char *const *names, size_t n)
{
    assert_int_equal(hf->kind, HANDLERFILE_LIST);
    assert_null(hf->why);
    assert_int_equal(hf->n_names, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(hf->names[i], names[i]);
}

static void parse_text(const char *text, size_t len, size_t max, struct handlerfile *hf)
{
    /* A copy of exactly len bytes, so that a read past the end (the file
     * text has no NUL guarantee in this API) is a sanitizer error. */
    char *copy = malloc(len ? len : 1);

    assert_non_null(copy);
    memcpy(copy, text, len);
    handlerfile_parse(copy, len, max, hf);
    free(copy);
}

static void expect_unusable(const char *text, size_t len, size_t max, const char *why)
{
    struct handlerfile hf;

    parse_text(text, len, max, &hf);
    if (hf.kind != HANDLERFILE_UNUSABLE)
        fail_msg("accepted: %.*s", (int)len, text);
    assert_non_null(hf.why);
    assert_string_equal(hf.why, why);
    assert_null(hf.names);
    assert_int_equal(hf.n_names, 0);
    handlerfile_free(&hf);
}

#define UNUSABLE(lit, why) expect_unusable(lit, sizeof(lit) - 1, NAME_MAX_BYTES, why)
#define PARSE(lit, hf)     parse_text(lit, sizeof(lit) - 1, NAME_MAX_BYTES, hf)

static void test_round_trip(void **state)
{
    static const char *const names[] = {"alpha", "beta.gamma", "x", "orders:create/v2"};
    struct proto_buf text;
    struct handlerfile hf;

    (void)state;
    render_expect(names, N(names), NULL, 0,
                  "{\"handlers\":[\"alpha\",\"beta.gamma\",\"x\",\"orders:create/v2\"]}\n", &text);
    parse_text((const char *)text.data, text.len, NAME_MAX_BYTES, &hf);
    assert_names(&hf, names, N(names));
    handlerfile_free(&hf);
    proto_buf_free(&text);
}

static void test_empty_list(void **state)
{
    struct proto_buf text;
    struct handlerfile hf;

    (void)state;
    render_expect(NULL, 0, NULL, 0, "{\"handlers\":[]}\n", &text);
    parse_text((const char *)text.data, text.len, NAME_MAX_BYTES, &hf);
    assert_names(&hf, NULL, 0);
    assert_null(hf.names);
    handlerfile_free(&hf);
    proto_buf_free(&text);
}

static void test_running_marker(void **state)
{
    struct handlerfile hf;

    (void)state;
    parse_text(HANDLERFILE_RUNNING_TEXT, strlen(HANDLERFILE_RUNNING_TEXT), NAME_MAX_BYTES, &hf);
    assert_int_equal(hf.kind, HANDLERFILE_RUNNING);
    assert_null(hf.why);
    assert_null(hf.names);
    assert_int_equal(hf.n_names, 0);
    handlerfile_free(&hf);

    /* Other members do not matter... */
    PARSE("{\"pid\":12,\"running\":true}", &hf);
    assert_int_equal(hf.kind, HANDLERFILE_RUNNING);
    handlerfile_free(&hf);

    /* ...but a list does: it is what a graceful stop leaves. */
    PARSE("{\"running\":true,\"handlers\":[\"a\"]}", &hf);
    assert_names(&hf, (const char *const[]){"a"}, 1);
    handlerfile_free(&hf);
}

static void test_unusable_not_json(void **state)
{
    (void)state;
    UNUSABLE("", WHY_NOT_OBJECT);
    UNUSABLE("{", WHY_NOT_OBJECT);
    UNUSABLE("handlers", WHY_NOT_OBJECT);
    UNUSABLE("{\"handlers\":[\"a\",]}", WHY_NOT_OBJECT);
    UNUSABLE("{\"handlers\":[\"a\"", WHY_NOT_OBJECT);
    /* A lone surrogate has no UTF-8 form: cJSON refuses the document. */
    UNUSABLE("{\"handlers\":[\"\\ud800\"]}", WHY_NOT_OBJECT);
}

static void test_unusable_not_an_object(void **state)
{
    (void)state;
    UNUSABLE("[]", WHY_NOT_OBJECT);
    UNUSABLE("[\"a\"]", WHY_NOT_OBJECT);
    UNUSABLE("\"handlers\"", WHY_NOT_OBJECT);
    UNUSABLE("null", WHY_NOT_OBJECT);
    UNUSABLE("true", WHY_NOT_OBJECT);
    UNUSABLE("12", WHY_NOT_OBJECT);
}

static void test_unusable_neither_key(void **state)
{
    (void)state;
    UNUSABLE("{}", WHY_NEITHER);
    UNUSABLE("{\"running\":false}", WHY_NEITHER);
    UNUSABLE("{\"running\":1}", WHY_NEITHER);
    UNUSABLE("{\"running\":\"true\"}", WHY_NEITHER);
    /* Keys are case-sensitive. */
    UNUSABLE("{\"Handlers\":[]}", WHY_NEITHER);
    UNUSABLE("{\"RUNNING\":true}", WHY_NEITHER);
}

static void test_unusable_handlers_not_array(void **state)
{
    (void)state;
    UNUSABLE("{\"handlers\":\"a\"}", WHY_NOT_ARRAY);
    UNUSABLE("{\"handlers\":{\"a\":1}}", WHY_NOT_ARRAY);
    UNUSABLE("{\"handlers\":null}", WHY_NOT_ARRAY);
    UNUSABLE("{\"handlers\":1}", WHY_NOT_ARRAY);
    /* "running" does not rescue a broken list. */
    UNUSABLE("{\"handlers\":true,\"running\":true}", WHY_NOT_ARRAY);
}

static void test_unusable_non_string_item(void **state)
{
    (void)state;
    UNUSABLE("{\"handlers\":[1]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[null]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[true]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[[\"a\"]]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[{\"name\":\"a\"}]}", WHY_INVALID_NAME);
    /* After good names: none of them is kept (expect_unusable checks). */
    UNUSABLE("{\"handlers\":[\"a\",\"b\",2]}", WHY_INVALID_NAME);
}

static void test_unusable_control_character(void **state)
{
    (void)state;
    UNUSABLE("{\"handlers\":[\"a\\u0001b\"]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[\"a\\tb\"]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[\"line\\n\"]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[\"\\u001b[31mred\"]}", WHY_INVALID_NAME); /* ESC */
    UNUSABLE("{\"handlers\":[\"del\\u007f\"]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[\"c1\\u0085\"]}", WHY_INVALID_NAME);         /* NEL */
    UNUSABLE("{\"handlers\":[\"ok\",\"c1\xc2\x9b\"]}", WHY_INVALID_NAME); /* raw CSI */
}

#define SMALL_ABC  "{\"handlers\":[\"abc\"]}"
#define SMALL_ABCD "{\"handlers\":[\"abcd\"]}"
#define SMALL_EE   "{\"handlers\":[\"\xc3\xa9\xc3\xa9\"]}" /* 2 characters, 4 bytes */

static void test_unusable_over_long(void **state)
{
    char text[NAME_MAX_BYTES + 64];
    char name[NAME_MAX_BYTES + 2];
    struct handlerfile hf;

    (void)state;
    /* At the caller's maximum: fine; one more byte: not. */
    memset(name, 'n', NAME_MAX_BYTES);
    name[NAME_MAX_BYTES] = '\0';
    snprintf(text, sizeof(text), "{\"handlers\":[\"%s\"]}", name);
    parse_text(text, strlen(text), NAME_MAX_BYTES, &hf);
    assert_names(&hf, (const char *const[]){name}, 1);
    handlerfile_free(&hf);

    strcat(name, "n");
    snprintf(text, sizeof(text), "{\"handlers\":[\"%s\"]}", name);
    expect_unusable(text, strlen(text), NAME_MAX_BYTES, WHY_INVALID_NAME);

    /* The maximum is the caller's, in bytes, not characters. */
    expect_unusable(SMALL_ABCD, sizeof(SMALL_ABCD) - 1, 3, WHY_INVALID_NAME);
    expect_unusable(SMALL_EE, sizeof(SMALL_EE) - 1, 3, WHY_INVALID_NAME);
    parse_text(SMALL_ABC, sizeof(SMALL_ABC) - 1, 3, &hf);
    assert_names(&hf, (const char *const[]){"abc"}, 1);
    handlerfile_free(&hf);
}

static void test_unusable_empty_name(void **state)
{
    (void)state;
    UNUSABLE("{\"handlers\":[\"\"]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[\"a\",\"\"]}", WHY_INVALID_NAME);
}

static void test_unusable_invalid_utf8(void **state)
{
    (void)state;
    UNUSABLE("{\"handlers\":[\"a\xff\"]}", WHY_INVALID_NAME);
    UNUSABLE("{\"handlers\":[\"\xc3\"]}", WHY_INVALID_NAME);             /* truncated */
    UNUSABLE("{\"handlers\":[\"\xc0\xaf\"]}", WHY_INVALID_NAME);         /* overlong '/' */
    UNUSABLE("{\"handlers\":[\"\xed\xa0\x80\"]}", WHY_INVALID_NAME);     /* surrogate */
    UNUSABLE("{\"handlers\":[\"\xf4\x90\x80\x80\"]}", WHY_INVALID_NAME); /* > U+10FFFF */
}

/* Only len bytes are read: the text from statefile_read() has a NUL, but
 * the module promises nothing about one. */
static void test_parse_reads_only_len(void **state)
{
    static const char text[] = "{\"handlers\":[\"abc\"]}";
    struct handlerfile hf;

    (void)state;
    expect_unusable(text, sizeof(text) - 3, NAME_MAX_BYTES, WHY_NOT_OBJECT);
    parse_text(text, sizeof(text) - 1, NAME_MAX_BYTES, &hf);
    assert_names(&hf, (const char *const[]){"abc"}, 1);
    handlerfile_free(&hf);
}

static void test_render_appends_extra(void **state)
{
    static const char *const list[] = {"a", "b"};
    static const char *const extra[] = {"c", "d"};
    static const char *const all[] = {"a", "b", "c", "d"};
    struct proto_buf text;
    struct handlerfile hf;

    (void)state;
    /* After an existing list. */
    render_expect(list, N(list), extra, N(extra), "{\"handlers\":[\"a\",\"b\",\"c\",\"d\"]}\n",
                  &text);
    parse_text((const char *)text.data, text.len, NAME_MAX_BYTES, &hf);
    assert_names(&hf, all, N(all));
    handlerfile_free(&hf);
    proto_buf_free(&text);

    /* With nobody registered now: only the names still missing. */
    render_expect(NULL, 0, extra, N(extra), "{\"handlers\":[\"c\",\"d\"]}\n", &text);
    parse_text((const char *)text.data, text.len, NAME_MAX_BYTES, &hf);
    assert_names(&hf, extra, N(extra));
    handlerfile_free(&hf);
    proto_buf_free(&text);

    render_expect(NULL, 0, extra, 1, "{\"handlers\":[\"c\"]}\n", &text);
    proto_buf_free(&text);
}

static void test_escaping_round_trip(void **state)
{
    static const char *const names[] = {
        "say \"hi\"",               /* quote */
        "back\\slash",              /* backslash */
        "caf\xc3\xa9",              /* 2-byte UTF-8 */
        "\xe6\x97\xa5\xe6\x9c\xac", /* 3-byte */
        "smile \xf0\x9f\x98\x80",   /* 4-byte */
        "/\\\"\xe2\x80\xa8",        /* U+2028, which JSON allows raw */
    };
    static const char *const extra[] = {"\"quoted\"", "\\"};
    struct proto_buf text;
    struct handlerfile hf;

    (void)state;
    render_expect(names, N(names), extra, N(extra),
                  "{\"handlers\":[\"say \\\"hi\\\"\",\"back\\\\slash\",\"caf\xc3\xa9\","
                  "\"\xe6\x97\xa5\xe6\x9c\xac\",\"smile \xf0\x9f\x98\x80\","
                  "\"/\\\\\\\"\xe2\x80\xa8\",\"\\\"quoted\\\"\",\"\\\\\"]}\n",
                  &text);
    parse_text((const char *)text.data, text.len, NAME_MAX_BYTES, &hf);
    assert_int_equal(hf.n_names, N(names) + N(extra));
    for (size_t i = 0; i < N(names); i++)
        assert_string_equal(hf.names[i], names[i]);
    for (size_t i = 0; i < N(extra); i++)
        assert_string_equal(hf.names[N(names) + i], extra[i]);
    handlerfile_free(&hf);
    proto_buf_free(&text);

    /* A file another JSON writer produced, with \u escapes, reads the same. */
    PARSE("{\"handlers\":[\"caf\\u00e9\",\"smile \\ud83d\\ude00\",\"\\/\"]}", &hf);
    assert_names(&hf, (const char *const[]){"caf\xc3\xa9", "smile \xf0\x9f\x98\x80", "/"}, 3);
    handlerfile_free(&hf);
}

/* render refuses what is not the router's list, leaving out as it was. */
static void expect_render_error(const void *list, size_t len, const char *const *extra,
                                size_t n_extra, int code)
{
    struct proto_buf text;

    proto_buf_init(&text);
    assert_int_equal(proto_buf_append(&text, "kept", 4), 0);
    assert_int_equal(handlerfile_render(list, len, extra, n_extra, &text), code);
    assert_int_equal(text.len, 4);
    assert_memory_equal(text.data, "kept", 4);
    proto_buf_free(&text);
}

static void test_render_errors(void **state)
{
    static const char *const bad_utf8[] = {"ok", "a\xff"};
    struct proto_buf b;

    (void)state;
    expect_render_error("", 0, NULL, 0, PROTO_E_BAD_FRAME); /* nothing */

    proto_buf_init(&b);
    assert_int_equal(proto_mp_put_cstr(&b, "a"), 0); /* not an array */
    expect_render_error(b.data, b.len, NULL, 0, PROTO_E_BAD_FRAME);

    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_array(&b, 2), 0);
    assert_int_equal(proto_mp_put_cstr(&b, "a"), 0);
    assert_int_equal(proto_mp_put_int(&b, 7), 0); /* not a str */
    expect_render_error(b.data, b.len, NULL, 0, PROTO_E_BAD_FRAME);

    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_array(&b, 2), 0);
    assert_int_equal(proto_mp_put_cstr(&b, "a"), 0); /* truncated: one of two */
    expect_render_error(b.data, b.len, NULL, 0, PROTO_E_BAD_FRAME);
    expect_render_error(b.data, b.len - 1, NULL, 0, PROTO_E_BAD_FRAME); /* inside the str */

    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_array(&b, 0), 0);
    assert_int_equal(proto_mp_put_nil(&b), 0); /* trailing bytes */
    expect_render_error(b.data, b.len, NULL, 0, PROTO_E_BAD_FRAME);

    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_array(&b, 2), 0);
    for (size_t i = 0; i < N(bad_utf8); i++)
        assert_int_equal(proto_mp_put_cstr(&b, bad_utf8[i]), 0);
    expect_render_error(b.data, b.len, NULL, 0, PROTO_E_NOT_JSON);

    proto_buf_reset(&b);
    assert_int_equal(proto_mp_put_array(&b, 0), 0);
    expect_render_error(b.data, b.len, bad_utf8, N(bad_utf8), PROTO_E_NOT_JSON);
    proto_buf_free(&b);
}

static void test_render_appends_to_out(void **state)
{
    static const char *const names[] = {"a"};
    struct proto_buf packed, text;

    (void)state;
    pack_list(&packed, names, 1);
    proto_buf_init(&text);
    assert_int_equal(proto_buf_append(&text, "X", 1), 0);
    assert_int_equal(handlerfile_render(packed.data, packed.len, NULL, 0, &text), 0);
    assert_int_equal(text.len, 1 + strlen("{\"handlers\":[\"a\"]}\n"));
    assert_memory_equal(text.data, "X{\"handlers\":[\"a\"]}\n", text.len);
    proto_buf_free(&text);
    proto_buf_free(&packed);
}

static void test_free_is_idempotent(void **state)
{
    struct handlerfile hf = {0};

    (void)state;
    handlerfile_free(&hf);
    PARSE("{\"handlers\":[\"a\",\"b\"]}", &hf);
    assert_int_equal(hf.n_names, 2);
    handlerfile_free(&hf);
    assert_int_equal(hf.kind, HANDLERFILE_LIST);
    assert_null(hf.names);
    assert_int_equal(hf.n_names, 0);
    handlerfile_free(&hf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_list),
        cmocka_unit_test(test_running_marker),
        cmocka_unit_test(test_unusable_not_json),
        cmocka_unit_test(test_unusable_not_an_object),
        cmocka_unit_test(test_unusable_neither_key),
        cmocka_unit_test(test_unusable_handlers_not_array),
        cmocka_unit_test(test_unusable_non_string_item),
        cmocka_unit_test(test_unusable_control_character),
        cmocka_unit_test(test_unusable_over_long),
        cmocka_unit_test(test_unusable_empty_name),
        cmocka_unit_test(test_unusable_invalid_utf8),
        cmocka_unit_test(test_parse_reads_only_len),
        cmocka_unit_test(test_render_appends_extra),
        cmocka_unit_test(test_escaping_round_trip),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_render_appends_to_out),
        cmocka_unit_test(test_free_is_idempotent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
