/* proto/text: the checks a name passes before it may travel upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/text.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void utf8_accepts_valid_text(void **state)
{
    (void)state;
    assert_true(proto_utf8_valid(S("")));
    assert_true(proto_utf8_valid(S("plain ascii")));
    assert_true(proto_utf8_valid(S("caf\xc3\xa9")));      /* é */
    assert_true(proto_utf8_valid(S("\xe2\x82\xac")));     /* € */
    assert_true(proto_utf8_valid(S("\xf0\x9f\x98\x80"))); /* U+1F600 */
    assert_true(proto_utf8_valid(S("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
    assert_true(proto_utf8_valid(S("\xed\x9f\xbf")));     /* U+D7FF */
}

static void utf8_refuses_every_kind_of_invalid(void **state)
{
    (void)state;
    assert_false(proto_utf8_valid(S("\xff")));             /* never valid */
    assert_false(proto_utf8_valid(S("\x80")));             /* lone continuation */
    assert_false(proto_utf8_valid(S("\xc0\xaf")));         /* overlong '/' */
    assert_false(proto_utf8_valid(S("\xe0\x80\xaf")));     /* overlong, 3 bytes */
    assert_false(proto_utf8_valid(S("\xf0\x80\x80\xaf"))); /* overlong, 4 bytes */
    assert_false(proto_utf8_valid(S("\xed\xa0\x80")));     /* surrogate U+D800 */
    assert_false(proto_utf8_valid(S("\xf4\x90\x80\x80"))); /* past U+10FFFF */
    assert_false(proto_utf8_valid(S("ab\xc3")));           /* truncated at the end */
    assert_false(proto_utf8_valid(S("\xe2\x82")));         /* truncated */
    assert_false(proto_utf8_valid(S("\xe2\x28\xa1")));     /* bad continuation */
}

static void names_are_bounded_printable_utf8(void **state)
{
    (void)state;
    uint8_t long_name[300];
    memset(long_name, 'a', sizeof(long_name));

    assert_true(proto_name_valid(S("list-files"), 256));
    assert_true(proto_name_valid(S("caf\xc3\xa9.stats"), 256));
    assert_true(proto_name_valid(long_name, 256, 256));
    assert_false(proto_name_valid(long_name, 257, 256)); /* one byte too long */
    assert_false(proto_name_valid(S(""), 256));          /* empty */
    assert_false(proto_name_valid(S("a\nb"), 256));      /* C0 control */
    assert_false(proto_name_valid(S("a\x7f"), 256));     /* DEL */
    assert_false(proto_name_valid(S("a\xc2\x85"), 256)); /* C1 control NEL */
    assert_true(proto_name_valid(S("a\xc2\xa0"), 256));  /* NBSP is not a control */
    assert_false(proto_name_valid(S("bad\xff"), 256));   /* not UTF-8 */
}

static void json_string_sizes(void **state)
{
    (void)state;
    assert_int_equal(proto_json_str_size(S("")), 2);
    assert_int_equal(proto_json_str_size(S("list-files")), 12);
    assert_int_equal(proto_json_str_size(S("a\"b\\c")), 9);     /* "a\"b\\c" */
    assert_int_equal(proto_json_str_size(S("\x01")), 8);        /* "\u0001" */
    assert_int_equal(proto_json_str_size(S("caf\xc3\xa9")), 7); /* UTF-8 as is */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_accepts_valid_text),
        cmocka_unit_test(utf8_refuses_every_kind_of_invalid),
        cmocka_unit_test(names_are_bounded_printable_utf8),
        cmocka_unit_test(json_string_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
