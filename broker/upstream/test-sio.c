/* Socket.IO v5 codec and binary reassembly: the spec's examples, every
 * type x namespace x ack id x attachments combination, every malformed
 * input the decoder names, and every frame captured from a real socket.io
 * 4.8 server and client (testdata/frames-socketio-4.8.txt), decoded,
 * checked against socket.io-parser's own reading, re-encoded byte for byte
 * and reassembled. */
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
#include "upstream/sio.h"

#ifndef SIO_TESTDATA_DIR
#define SIO_TESTDATA_DIR "broker/upstream/testdata"
#endif

#define NOID  0, 0 /* table columns has_id, id: none */
#define ID(x) 1, x

static int decode(const char *s, struct sio_packet *p, const char **why)
{
    return sio_decode(NULL, s, strlen(s), p, why);
}

static void assert_span(const char *ptr, size_t len, const char *want)
{
    if (!want) {
        assert_null(ptr);
        assert_int_equal(len, 0);
        return;
    }
    if (len != strlen(want) || memcmp(ptr, want, len) != 0)
        fail_msg("span \"%.*s\", want \"%s\"", (int)len, ptr ? ptr : "", want);
}

/* ---- decode: the spec's examples and the real peers' forms ------------- */

struct good_case {
    const char *wire;
    int type;
    uint32_t att;
    const char *nsp;
    int has_id;
    uint64_t id;
    const char *data;
    int canonical; /* what socket.io-parser itself would write */
};

static const struct good_case good[] = {
    {"0", SIO_CONNECT, 0, "/", NOID, NULL, 1},
    {"0{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}", SIO_CONNECT, 0, "/", NOID,
     "{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}", 1},
    {"0/admin,", SIO_CONNECT, 0, "/admin", NOID, NULL, 1},
    {"0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", SIO_CONNECT, 0, "/admin", NOID,
     "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", 1},
    {"0/control,{\"teamClusterId\":\"c\",\"daemonPassword\":\"p\"}", SIO_CONNECT, 0, "/control",
     NOID, "{\"teamClusterId\":\"c\",\"daemonPassword\":\"p\"}", 1},
    {"1", SIO_DISCONNECT, 0, "/", NOID, NULL, 1},
    {"1/admin,", SIO_DISCONNECT, 0, "/admin", NOID, NULL, 1},
    {"2[\"foo\"]", SIO_EVENT, 0, "/", NOID, "[\"foo\"]", 1},
    {"2/admin,[\"bar\"]", SIO_EVENT, 0, "/admin", NOID, "[\"bar\"]", 1},
    {"2[42]", SIO_EVENT, 0, "/", NOID, "[42]", 1},
    {"212[\"foo\"]", SIO_EVENT, 0, "/", ID(12), "[\"foo\"]", 1},
    {"2/admin,13[\"foo\"]", SIO_EVENT, 0, "/admin", ID(13), "[\"foo\"]", 1},
    {"312[]", SIO_ACK, 0, "/", ID(12), "[]", 1},
    {"3/admin,13[\"bar\"]", SIO_ACK, 0, "/admin", ID(13), "[\"bar\"]", 1},
    {"314[\"bar\"]", SIO_ACK, 0, "/", ID(14), "[\"bar\"]", 1},
    {"4{\"message\":\"Not authorized\"}", SIO_CONNECT_ERROR, 0, "/", NOID,
     "{\"message\":\"Not authorized\"}", 1},
    {"4/control,{\"message\":\"invalid credentials\",\"data\":{\"code\":\"x\"}}", SIO_CONNECT_ERROR,
     0, "/control", NOID, "{\"message\":\"invalid credentials\",\"data\":{\"code\":\"x\"}}", 1},
    {"4\"Invalid namespace\"", SIO_CONNECT_ERROR, 0, "/", NOID, "\"Invalid namespace\"", 1},
    {"4", SIO_CONNECT_ERROR, 0, "/", NOID, NULL, 1},
    {"51-[\"baz\",{\"_placeholder\":true,\"num\":0}]", SIO_BINARY_EVENT, 1, "/", NOID,
     "[\"baz\",{\"_placeholder\":true,\"num\":0}]", 1},
    {"52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
     SIO_BINARY_EVENT, 2, "/admin", NOID,
     "[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", 1},
    {"51-14[\"foo\",{\"_placeholder\":true,\"num\":0}]", SIO_BINARY_EVENT, 1, "/", ID(14),
     "[\"foo\",{\"_placeholder\":true,\"num\":0}]", 1},
    {"61-15[\"bar\",{\"_placeholder\":true,\"num\":0}]", SIO_BINARY_ACK, 1, "/", ID(15),
     "[\"bar\",{\"_placeholder\":true,\"num\":0}]", 1},
    {"610-/control,0[{\"_placeholder\":true,\"num\":9}]", SIO_BINARY_ACK, 10, "/control", ID(0),
     "[{\"_placeholder\":true,\"num\":9}]", 1},
    /* Forms only other writers produce; socket.io-parser reads them too. */
    {"1/admin", SIO_DISCONNECT, 0, "/admin", NOID, NULL, 0},
    {"0/admin", SIO_CONNECT, 0, "/admin", NOID, NULL, 0},
    {"2/,[\"a\"]", SIO_EVENT, 0, "/", NOID, "[\"a\"]", 0},
    {"2007[\"a\"]", SIO_EVENT, 0, "/", ID(7), "[\"a\"]", 0},
    {"501-[\"a\"]", SIO_BINARY_EVENT, 1, "/", NOID, "[\"a\"]", 0},
    {"2[ 1 ]", SIO_EVENT, 0, "/", NOID, "[ 1 ]", 0},
    {"2/\xc3\xa9t\xc3\xa9 a,[\"a\"]", SIO_EVENT, 0, "/\xc3\xa9t\xc3\xa9 a", NOID, "[\"a\"]", 1},
    {"218446744073709551615[\"a\"]", SIO_EVENT, 0, "/", ID(UINT64_MAX), "[\"a\"]", 1},
};

static void check_good(const struct good_case *c, const struct sio_packet *p)
{
    assert_int_equal(p->type, c->type);
    assert_int_equal(p->attachments, c->att);
    assert_span(p->nsp, p->nsp_len, c->nsp);
    assert_true(sio_nsp_equals(p, c->nsp));
    if (!c->has_id) {
        assert_false(p->has_ack_id);
        assert_int_equal(p->ack_id, 0);
    } else {
        assert_true(p->has_ack_id);
        assert_int_equal(p->ack_id, c->id);
    }
    assert_span(p->data, p->data_len, c->data);
}

static void test_decode_good(void **state)
{
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct sio_packet p;
        const char *why = NULL;
        if (decode(good[i].wire, &p, &why) != 0)
            fail_msg("\"%s\" refused: %s", good[i].wire, why);
        check_good(&good[i], &p);
        /* Spans point into the input (no copy), except the implicit "/". */
        if (p.data)
            assert_true(p.data > good[i].wire && p.data < good[i].wire + strlen(good[i].wire));
    }
}

/* The header encoder writes exactly what socket.io-parser writes. */
static void test_encode_good(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        const struct good_case *c = &good[i];
        if (!c->canonical)
            continue;
        uint64_t id = c->id;
        proto_buf_reset(&b);
        int r = sio_encode_header(&b, (enum sio_packet_type)c->type, c->nsp, c->has_id ? &id : NULL,
                                  c->att);
        assert_true(r > 0);
        assert_int_equal((size_t)r, b.len);
        if (c->data)
            assert_int_equal(proto_buf_append(&b, c->data, strlen(c->data)), 0);
        if (b.len != strlen(c->wire) || memcmp(b.data, c->wire, b.len) != 0)
            fail_msg("encoded \"%.*s\", want \"%s\"", (int)b.len, (const char *)b.data, c->wire);
    }
    proto_buf_free(&b);
}

static void test_encode_exact_forms(void **state)
{
    /* The forms the VOLT contract names, byte for byte. */
    struct proto_buf b = PROTO_BUF_INIT;
    uint64_t id = 17;
    assert_int_equal(sio_encode_header(&b, SIO_EVENT, "/control", &id, 0), 12);
    assert_int_equal(sio_encode_header(&b, SIO_BINARY_EVENT, "/control", NULL, 1), 12);
    assert_int_equal(sio_encode_header(&b, SIO_DISCONNECT, "/control", NULL, 0), 10);
    assert_int_equal(sio_encode_header(&b, SIO_CONNECT, "/control", NULL, 0), 10);
    assert_int_equal(sio_encode_header(&b, SIO_CONNECT, "/", NULL, 0), 1);
    assert_int_equal(sio_encode_header(&b, SIO_CONNECT, NULL, NULL, 0), 1);
    assert_int_equal(sio_encode_header(&b, SIO_CONNECT, "", NULL, 0), 1);
    id = 0;
    assert_int_equal(sio_encode_header(&b, SIO_BINARY_ACK, NULL, &id, 12), 5);
    id = UINT64_MAX;
    assert_int_equal(sio_encode_header(&b, SIO_ACK, NULL, &id, 0), 21);
    const char *want = "2/control,1751-/control,1/control,0/control,000612-03"
                       "18446744073709551615";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    proto_buf_free(&b);
}

/* ---- every combination: encode, then decode ---------------------------- */

static const char *data_for(int type, int variant)
{
    switch (type) {
    case SIO_CONNECT:
        return variant ? "{\"token\":\"x\"}" : NULL;
    case SIO_DISCONNECT:
        return NULL;
    case SIO_CONNECT_ERROR:
        return variant == 0 ? NULL : variant == 1 ? "{\"message\":\"no\"}" : "\"no\"";
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        return variant ? "[\"ev\",{\"_placeholder\":true,\"num\":0}]" : "[\"ev\"]";
    default:
        return variant ? "[{\"ok\":true}]" : "[]";
    }
}

static void test_all_combinations(void **state)
{
    static const char *const nsps[] = {"/", "/control", "/a/b-c_d.e", "/x"};
    static const uint64_t ids[] = {0, 1, 17, 4294967296ull, UINT64_MAX};
    static const uint32_t atts[] = {0, 1, 3, 10};
    struct proto_buf b = PROTO_BUF_INIT;
    int accepted = 0, refused = 0;
    for (int type = 0; type <= 6; type++)
        for (size_t n = 0; n < 4; n++)
            for (int with_id = 0; with_id <= 5; with_id++)
                for (size_t a = 0; a < 4; a++)
                    for (int v = 0; v < 3; v++) {
                        const uint64_t *id = with_id ? &ids[with_id - 1] : NULL;
                        bool binary = type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK;
                        bool ok = (binary ? atts[a] > 0 : atts[a] == 0) &&
                                  (id ? type == 2 || type == 3 || binary : type != 3 && type != 6);
                        proto_buf_reset(&b);
                        int r =
                            sio_encode_header(&b, (enum sio_packet_type)type, nsps[n], id, atts[a]);
                        if (!ok) {
                            assert_int_equal(r, PROTO_E_BAD_REQUEST);
                            assert_int_equal(b.len, 0);
                            refused++;
                            continue;
                        }
                        assert_int_equal(r, (int)b.len);
                        const char *data = data_for(type, v);
                        if (data)
                            proto_buf_append(&b, data, strlen(data));
                        struct sio_packet p;
                        const char *why = NULL;
                        if (sio_decode(NULL, b.data, b.len, &p, &why) != 0)
                            fail_msg("\"%.*s\" refused: %s", (int)b.len, (const char *)b.data, why);
                        assert_int_equal(p.type, type);
                        assert_int_equal(p.attachments, atts[a]);
                        assert_true(sio_nsp_equals(&p, nsps[n]));
                        assert_int_equal(p.has_ack_id, id != NULL);
                        if (id)
                            assert_true(p.ack_id == *id);
                        assert_span(p.data, p.data_len, data);
                        accepted++;
                    }
    /* Both branches were really exercised. */
    assert_true(accepted > 500);
    assert_true(refused > 1000);
    proto_buf_free(&b);
}

/* ---- decode: every error ----------------------------------------------- */

struct bad_case {
    const char *wire;
    int code;
    const char *why;
};

#define BAD   PROTO_E_BAD_FRAME
#define LIMIT PROTO_E_LIMIT_EXCEEDED

static const struct bad_case bad[] = {
    {"", BAD, "empty Socket.IO packet"},
    {"7", BAD, "unknown Socket.IO packet type"},
    {"9[\"a\"]", BAD, "unknown Socket.IO packet type"},
    {"x", BAD, "unknown Socket.IO packet type"},
    {"-", BAD, "unknown Socket.IO packet type"},
    {"/admin,0", BAD, "unknown Socket.IO packet type"},
    /* attachments */
    {"5-[\"a\"]", BAD, "binary packet without an attachment count"},
    {"5[\"a\"]", BAD, "binary packet without an attachment count"},
    {"5", BAD, "binary packet without an attachment count"},
    {"5+1-[\"a\"]", BAD, "binary packet without an attachment count"},
    {"5 1-[\"a\"]", BAD, "binary packet without an attachment count"},
    {"6/admin,1[]", BAD, "binary packet without an attachment count"},
    {"51[\"a\"]", BAD, "attachment count not followed by '-'"},
    {"51", BAD, "attachment count not followed by '-'"},
    {"50x1-[\"a\"]", BAD, "attachment count not followed by '-'"},
    {"51.0-[\"a\"]", BAD, "attachment count not followed by '-'"},
    {"50-[\"a\"]", BAD, "binary packet with zero attachments"},
    {"600-1[]", BAD, "binary packet with zero attachments"},
    {"511-[\"a\"]", LIMIT, "too many attachments"},
    {"599999999999999999999999999-[\"a\"]", LIMIT, "too many attachments"},
    /* namespace */
    {"2/con\x01trol,[\"a\"]", BAD, "control character in namespace"},
    {"2/con\ttrol,[\"a\"]", BAD, "control character in namespace"},
    {"2/con\x7ftrol,[\"a\"]", BAD, "control character in namespace"},
    {"2/admin[\"a\"]", BAD, "event without data"}, /* no ',': all of it is the nsp */
    /* ack id */
    {"0123", BAD, "ack id on a packet type that takes none"},
    {"01{}", BAD, "ack id on a packet type that takes none"},
    {"1/admin,5", BAD, "ack id on a packet type that takes none"},
    {"4/x,1{}", BAD, "ack id on a packet type that takes none"},
    {"3[]", BAD, "ack without an ack id"},
    {"3/admin,[]", BAD, "ack without an ack id"},
    {"3", BAD, "ack without an ack id"},
    {"61-[]", BAD, "ack without an ack id"},
    {"218446744073709551616[\"a\"]", BAD, "ack id overflows 64 bits"},
    {"2/x,99999999999999999999[\"a\"]", BAD, "ack id overflows 64 bits"},
    {"3184467440737095516150[]", BAD, "ack id overflows 64 bits"},
    /* data */
    {"0[]", BAD, "CONNECT data is not a JSON object"},
    {"0{", BAD, "CONNECT data is not a JSON object"},
    {"0}", BAD, "CONNECT data is not a JSON object"},
    {"0\"x\"", BAD, "CONNECT data is not a JSON object"},
    {"0/admin,x", BAD, "CONNECT data is not a JSON object"},
    {"0 {}", BAD, "CONNECT data is not a JSON object"},
    {"1{}", BAD, "DISCONNECT carries data"},
    {"1/admin,x", BAD, "DISCONNECT carries data"},
    {"4[1]", BAD, "CONNECT_ERROR data is not a JSON object or string"},
    {"4\"", BAD, "CONNECT_ERROR data is not a JSON object or string"},
    {"4/x,null", BAD, "CONNECT_ERROR data is not a JSON object or string"},
    {"2", BAD, "event without data"},
    {"2/x,", BAD, "event without data"},
    {"217", BAD, "event without data"},
    {"51-", BAD, "event without data"},
    {"51-/x,3", BAD, "event without data"},
    {"2{}", BAD, "event data is not a JSON array"},
    {"2[\"a\"", BAD, "event data is not a JSON array"},
    {"2 [\"a\"]", BAD, "event data is not a JSON array"},
    {"2x[\"a\"]", BAD, "event data is not a JSON array"},
    {"2[", BAD, "event data is not a JSON array"},
    {"2]", BAD, "event data is not a JSON array"},
    {"2[]", BAD, "event data is an empty array (no event name)"},
    {"2[ \t\r\n]", BAD, "event data is an empty array (no event name)"},
    {"51-[]", BAD, "event data is an empty array (no event name)"},
    {"30", BAD, "ack without data"},
    {"3/x,0", BAD, "ack without data"},
    {"30{}", BAD, "ack data is not a JSON array"},
    {"30[", BAD, "ack data is not a JSON array"},
    {"61-0\"x\"", BAD, "ack data is not a JSON array"},
};

static void test_decode_errors(void **state)
{
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct sio_packet p;
        memset(&p, 0x5a, sizeof p);
        const char *why = NULL;
        int r = decode(bad[i].wire, &p, &why);
        if (r != bad[i].code || !why || strcmp(why, bad[i].why) != 0)
            fail_msg("\"%s\": got %d \"%s\", want %d \"%s\"", bad[i].wire, r, why ? why : "(null)",
                     bad[i].code, bad[i].why);
        /* Nothing is written on failure. */
        assert_int_equal(p.attachments, 0x5a5a5a5a);
        /* `why` is optional. */
        assert_int_equal(decode(bad[i].wire, &p, NULL), bad[i].code);
    }
    /* A NUL byte is just another byte: in the namespace it is a control
     * character, in the data it is not ours to judge. */
    struct sio_packet p;
    const char *why;
    assert_int_equal(sio_decode(NULL, "2/a\0b,[1]", 9, &p, &why), BAD);
    assert_string_equal(why, "control character in namespace");
    assert_int_equal(sio_decode(NULL, "2[\"\0\"]", 6, &p, &why), 0);
    assert_int_equal(p.data_len, 5);
}

/* ---- limits and namespace edges ---------------------------------------- */

static void test_limits(void **state)
{
    struct sio_limits lim = {.max_attachments = 2, .max_nsp_len = 8, .max_attachment_bytes = 1};
    struct sio_packet p;
    const char *why = NULL;
    assert_int_equal(sio_decode(&lim, "52-[\"a\"]", 8, &p, &why), 0);
    assert_int_equal(p.attachments, 2);
    assert_int_equal(sio_decode(&lim, "53-[\"a\"]", 8, &p, &why), LIMIT);
    assert_string_equal(why, "too many attachments");
    assert_int_equal(sio_decode(&lim, "502-[\"a\"]", 9, &p, &why), 0);

    /* max_nsp_len counts the leading '/': 8 bytes pass, 9 do not. */
    assert_int_equal(sio_decode(&lim, "2/1234567,[1]", 13, &p, &why), 0);
    assert_int_equal(p.nsp_len, 8);
    assert_int_equal(sio_decode(&lim, "2/12345678,[1]", 14, &p, &why), LIMIT);
    assert_string_equal(why, "namespace too long");
    assert_int_equal(sio_decode(&lim, "1/12345678", 10, &p, &why), LIMIT);
    assert_int_equal(sio_decode(&lim, "1/1234567", 9, &p, &why), 0);

    lim.max_attachments = 0;
    assert_int_equal(sio_decode(&lim, "51-[\"a\"]", 8, &p, &why), LIMIT);

    /* The defaults: 10 attachments, 256-byte namespaces. */
    char buf[300];
    buf[0] = '1';
    buf[1] = '/';
    memset(buf + 2, 'n', 255);
    assert_int_equal(sio_decode(NULL, buf, 257, &p, NULL), 0);
    assert_int_equal(p.nsp_len, 256);
    buf[257] = 'n';
    assert_int_equal(sio_decode(NULL, buf, 258, &p, &why), LIMIT);
    assert_string_equal(why, "namespace too long");
    assert_int_equal(decode("510-[1]", &p, NULL), 0);
    assert_int_equal(decode("511-[1]", &p, NULL), LIMIT);
}

static void test_namespace_edges(void **state)
{
    struct sio_packet p;
    /* The main namespace is the static "/", also when absent. */
    assert_int_equal(decode("2[\"a\"]", &p, NULL), 0);
    assert_true(sio_nsp_equals(&p, "/"));
    assert_true(sio_nsp_equals(&p, ""));
    assert_true(sio_nsp_equals(&p, NULL));
    assert_false(sio_nsp_equals(&p, "/control"));
    assert_int_equal(decode("2/control,[\"a\"]", &p, NULL), 0);
    assert_true(sio_nsp_equals(&p, "/control"));
    assert_false(sio_nsp_equals(&p, "/contro"));
    assert_false(sio_nsp_equals(&p, "/controls"));
    assert_false(sio_nsp_equals(&p, NULL));
    /* A namespace that looks like data or an id is still a namespace. */
    assert_int_equal(decode("2/12,[\"a\"]", &p, NULL), 0);
    assert_true(sio_nsp_equals(&p, "/12"));
    assert_false(p.has_ack_id);
    assert_int_equal(decode("2/[x],7[\"a\"]", &p, NULL), 0);
    assert_true(sio_nsp_equals(&p, "/[x]"));
    assert_int_equal(p.ack_id, 7);
    /* Only the first ',' ends it. */
    assert_int_equal(decode("2/a,,[\"a\"]", &p, NULL), BAD);
    /* Data without a namespace may start with '/'? No: JSON never does, so
     * a leading '/' is always a namespace. */
    assert_int_equal(decode("4/", &p, NULL), 0);
    assert_true(sio_nsp_equals(&p, "/"));
    assert_null(p.data);
}

static void test_type_names(void **state)
{
    assert_string_equal(sio_type_name(SIO_CONNECT), "CONNECT");
    assert_string_equal(sio_type_name(SIO_CONNECT_ERROR), "CONNECT_ERROR");
    assert_string_equal(sio_type_name(SIO_BINARY_ACK), "BINARY_ACK");
    assert_string_equal(sio_type_name(7), "UNKNOWN");
    assert_string_equal(sio_type_name(-1), "UNKNOWN");
}

static void test_encode_errors(void **state)
{
    struct proto_buf b = PROTO_BUF_INIT;
    proto_buf_append(&b, "keep", 4);
    uint64_t id = 1;
    const int E = PROTO_E_BAD_REQUEST;
    assert_int_equal(sio_encode_header(&b, (enum sio_packet_type)7, NULL, NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, (enum sio_packet_type) - 1, NULL, NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_EVENT, NULL, NULL, 1), E);
    assert_int_equal(sio_encode_header(&b, SIO_BINARY_EVENT, NULL, NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_BINARY_ACK, NULL, &id, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_CONNECT, NULL, &id, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_DISCONNECT, "/x", &id, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_CONNECT_ERROR, NULL, &id, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_ACK, "/x", NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_BINARY_ACK, NULL, NULL, 1), E);
    assert_int_equal(sio_encode_header(&b, SIO_EVENT, "control", NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_EVENT, "/a,b", NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_EVENT, "/a\n", NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_EVENT, "/a\x7f", NULL, 0), E);
    assert_int_equal(sio_encode_header(&b, SIO_EVENT, "//", NULL, 0), 4); /* odd, but valid */
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "keep2//,", 8);
    proto_buf_free(&b);
}

/* ---- the assembler ------------------------------------------------------ */

static int feed_text(struct sio_assembler *a, const char *s, struct sio_message *m)
{
    return sio_assembler_feed(a, s, strlen(s), false, m);
}

static int feed_bin(struct sio_assembler *a, const void *d, size_t n, struct sio_message *m)
{
    return sio_assembler_feed(a, d, n, true, m);
}

static void test_asm_plain(void **state)
{
    struct sio_assembler a;
    sio_assembler_init(&a, NULL);
    struct sio_message m;
    const char *msg = "2/control,[\"message\",{}]";
    assert_int_equal(feed_text(&a, msg, &m), SIO_ASM_READY);
    assert_null(a.error);
    assert_int_equal(m.packet.type, SIO_EVENT);
    assert_null(m.attachments);
    /* No copy for a packet that is complete by itself. */
    assert_ptr_equal(m.packet.nsp, msg + 1);
    assert_false(sio_assembler_pending(&a));
    /* Nothing was allocated. */
    assert_null(a.header.data);
    assert_null(a.bytes.data);
    assert_null(a.spans);
    sio_assembler_free(&a);
}

static void test_asm_binary(void **state)
{
    struct sio_assembler a;
    sio_assembler_init(&a, NULL);
    struct sio_message m;
    /* Every message comes from the same scratch buffer, clobbered after
     * each feed as a WebSocket layer's receive buffer would be. */
    char scratch[256];
    const char *hdr =
        "453-/control,7[\"message\",{\"a\":{\"_placeholder\":true,\"num\":0},"
        "\"l\":[{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":2}]}]";
    size_t hlen = strlen(hdr) - 1;
    memcpy(scratch, hdr + 1, hlen);
    assert_int_equal(sio_assembler_feed(&a, scratch, hlen, false, &m), SIO_ASM_MORE);
    assert_true(sio_assembler_pending(&a));
    memset(scratch, '#', sizeof scratch);

    memcpy(scratch, "\x01\x02\x03", 3);
    assert_int_equal(feed_bin(&a, scratch, 3, &m), SIO_ASM_MORE);
    memset(scratch, '#', sizeof scratch);
    assert_int_equal(feed_bin(&a, scratch, 0, &m), SIO_ASM_MORE); /* empty Buffer */
    memcpy(scratch, "hello", 5);
    assert_int_equal(feed_bin(&a, scratch, 5, &m), SIO_ASM_READY);
    memset(scratch, '#', sizeof scratch);

    assert_false(sio_assembler_pending(&a));
    assert_int_equal(m.packet.type, SIO_BINARY_EVENT);
    assert_int_equal(m.packet.attachments, 3);
    assert_true(m.packet.has_ack_id);
    assert_int_equal(m.packet.ack_id, 7);
    assert_true(sio_nsp_equals(&m.packet, "/control"));
    assert_span(m.packet.data, m.packet.data_len, strchr(hdr, '['));
    assert_non_null(m.attachments);
    assert_int_equal(m.attachments[0].len, 3);
    assert_memory_equal(m.attachments[0].data, "\x01\x02\x03", 3);
    assert_int_equal(m.attachments[1].len, 0);
    assert_non_null(m.attachments[1].data);
    assert_int_equal(m.attachments[2].len, 5);
    assert_memory_equal(m.attachments[2].data, "hello", 5);

    /* Next: a BINARY_ACK on the main namespace, whose nsp is the static "/". */
    assert_int_equal(feed_text(&a, "61-0[{\"_placeholder\":true,\"num\":0}]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "\xde\xad", 2, &m), SIO_ASM_READY);
    assert_int_equal(m.packet.type, SIO_BINARY_ACK);
    assert_true(sio_nsp_equals(&m.packet, "/"));
    assert_int_equal(m.packet.ack_id, 0);
    assert_int_equal(m.attachments[0].len, 2);
    assert_memory_equal(m.attachments[0].data, "\xde\xad", 2);
    sio_assembler_free(&a);
}

static void test_asm_all_empty(void **state)
{
    /* Only empty attachments: the byte buffer never gets memory, yet the
     * spans must be usable (non-NULL, zero length). */
    struct sio_assembler a;
    sio_assembler_init(&a, NULL);
    struct sio_message m;
    assert_int_equal(feed_text(&a, "52-[\"e\",1]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, NULL, 0, &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, NULL, 0, &m), SIO_ASM_READY);
    for (int i = 0; i < 2; i++) {
        assert_non_null(m.attachments[i].data);
        assert_int_equal(m.attachments[i].len, 0);
    }
    sio_assembler_free(&a);
}

static void test_asm_violations(void **state)
{
    struct sio_assembler a;
    sio_assembler_init(&a, NULL);
    struct sio_message m;

    /* Binary when nothing is expected. */
    assert_int_equal(feed_bin(&a, "x", 1, &m), PROTO_E_BAD_FRAME);
    assert_string_equal(a.error, "binary message when no attachment is expected");
    assert_int_equal(feed_text(&a, "2[\"ok\"]", &m), SIO_ASM_READY);
    assert_null(a.error);

    /* Text while attachments are pending: error, and the partial packet is
     * gone (its remaining attachment is now unexpected). */
    assert_int_equal(feed_text(&a, "52-[\"b\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "1", 1, &m), SIO_ASM_MORE);
    assert_int_equal(feed_text(&a, "2[\"c\"]", &m), PROTO_E_BAD_FRAME);
    assert_string_equal(a.error, "text message while attachments are pending");
    assert_false(sio_assembler_pending(&a));
    assert_int_equal(feed_bin(&a, "2", 1, &m), PROTO_E_BAD_FRAME);
    assert_string_equal(a.error, "binary message when no attachment is expected");

    /* A decode error comes out with the decoder's reason. */
    assert_int_equal(feed_text(&a, "3[]", &m), PROTO_E_BAD_FRAME);
    assert_string_equal(a.error, "ack without an ack id");
    assert_int_equal(feed_text(&a, "599-[\"x\"]", &m), PROTO_E_LIMIT_EXCEEDED);
    assert_string_equal(a.error, "too many attachments");

    /* And after all that, it works. */
    assert_int_equal(feed_text(&a, "51-[\"d\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "z", 1, &m), SIO_ASM_READY);
    assert_memory_equal(m.attachments[0].data, "z", 1);
    sio_assembler_free(&a);
}

static void test_asm_byte_limit(void **state)
{
    struct sio_limits lim = SIO_LIMITS_DEFAULT;
    lim.max_attachment_bytes = 10;
    struct sio_assembler a;
    sio_assembler_init(&a, &lim);
    struct sio_message m;
    /* Exactly the limit: fine. */
    assert_int_equal(feed_text(&a, "52-[\"a\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "123456", 6, &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "7890", 4, &m), SIO_ASM_READY);
    /* One byte over, on the second attachment. */
    assert_int_equal(feed_text(&a, "52-[\"a\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "123456", 6, &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "78901", 5, &m), PROTO_E_LIMIT_EXCEEDED);
    assert_string_equal(a.error, "attachments exceed max_attachment_bytes");
    assert_false(sio_assembler_pending(&a));
    /* One attachment alone over the limit. */
    assert_int_equal(feed_text(&a, "51-[\"a\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "12345678901", 11, &m), PROTO_E_LIMIT_EXCEEDED);
    /* Limits are plain fields: lowered mid-packet, still enforced. */
    assert_int_equal(feed_text(&a, "52-[\"a\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "123456", 6, &m), SIO_ASM_MORE);
    a.limits.max_attachment_bytes = 4;
    assert_int_equal(feed_bin(&a, "", 0, &m), PROTO_E_LIMIT_EXCEEDED);
    sio_assembler_free(&a);
}

static void test_asm_reuse_without_alloc(void **state)
{
    struct sio_assembler a;
    sio_assembler_init(&a, NULL);
    struct sio_message m;
    uint8_t blob[4096];
    memset(blob, 0xab, sizeof blob);
    const char *hdr = "53-/control,[\"blob\",{\"_placeholder\":true,\"num\":0},"
                      "{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":2}]";
    /* Warm up with the biggest packet. */
    assert_int_equal(feed_text(&a, hdr, &m), SIO_ASM_MORE);
    for (int i = 0; i < 3; i++)
        feed_bin(&a, blob, sizeof blob, &m);
    const void *h = a.header.data, *by = a.bytes.data, *sp = a.spans;
    size_t hcap = a.header.cap, bcap = a.bytes.cap;
    for (int round = 0; round < 1000; round++) {
        assert_int_equal(feed_text(&a, hdr, &m), SIO_ASM_MORE);
        assert_int_equal(feed_bin(&a, blob, 100 + round % 7, &m), SIO_ASM_MORE);
        assert_int_equal(feed_bin(&a, blob, sizeof blob, &m), SIO_ASM_MORE);
        assert_int_equal(feed_bin(&a, blob, (size_t)round % 4096, &m), SIO_ASM_READY);
        assert_int_equal(m.attachments[2].len, (size_t)round % 4096);
        /* Same memory every time: no allocation once warm. */
        assert_ptr_equal(a.header.data, h);
        assert_ptr_equal(a.bytes.data, by);
        assert_ptr_equal(a.spans, sp);
        assert_int_equal(a.header.cap, hcap);
        assert_int_equal(a.bytes.cap, bcap);
    }
    sio_assembler_free(&a);
}

static void test_asm_reset_and_free(void **state)
{
    struct sio_limits lim = SIO_LIMITS_DEFAULT;
    lim.max_attachments = 3;
    struct sio_assembler a;
    sio_assembler_init(&a, &lim);
    struct sio_message m;
    assert_int_equal(feed_text(&a, "53-[\"a\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "1", 1, &m), SIO_ASM_MORE);
    sio_assembler_reset(&a); /* e.g. the connection dropped */
    assert_false(sio_assembler_pending(&a));
    assert_int_equal(feed_text(&a, "51-[\"b\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "2", 1, &m), SIO_ASM_READY);
    assert_memory_equal(m.attachments[0].data, "2", 1);

    sio_assembler_free(&a);
    assert_null(a.spans);
    assert_null(a.bytes.data);
    assert_int_equal(a.limits.max_attachments, 3); /* kept */
    assert_int_equal(feed_text(&a, "54-[\"c\"]", &m), PROTO_E_LIMIT_EXCEEDED);
    /* Usable again after free. */
    assert_int_equal(feed_text(&a, "51-[\"c\"]", &m), SIO_ASM_MORE);
    assert_int_equal(feed_bin(&a, "3", 1, &m), SIO_ASM_READY);
    sio_assembler_free(&a);
    sio_assembler_free(&a); /* twice is harmless */
}

/* ---- the captured frames ------------------------------------------------ */

static size_t b64_decode(const char *in, uint8_t *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *in && *in != '='; in++) {
        const char *p = strchr(alphabet, *in);
        if (!p)
            fail_msg("bad base64 character %c", *in);
        acc = (acc << 6) | (uint32_t)(p - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* One direction of one capture: its own assembler, and copies of the
 * attachments seen so far for the packet being reassembled. */
struct stream {
    struct sio_assembler a;
    uint32_t expect; /* attachments announced by the held header */
    uint8_t *bins[16];
    size_t bin_len[16];
    uint32_t nbins;
};

static void check_reference(const char *frame, const char *expect, struct proto_buf *enc,
                            struct stream *st, int *binary_packets)
{
    /* "= sio <type> <att> <nsp> <id|-> <data|->", as socket.io-parser read it. */
    int type;
    unsigned att;
    char nsp[256], id[32];
    int off = 0;
    assert_int_equal(sscanf(expect, "= sio %d %u %255s %31s %n", &type, &att, nsp, id, &off), 4);
    const char *data = expect + off;

    struct sio_packet p;
    const char *why = NULL;
    if (sio_decode(NULL, frame, strlen(frame), &p, &why) != 0)
        fail_msg("captured packet refused (%s): %s", why, frame);
    assert_int_equal(p.type, type);
    assert_int_equal(p.attachments, att);
    assert_true(sio_nsp_equals(&p, nsp));
    if (strcmp(id, "-") == 0) {
        assert_false(p.has_ack_id);
    } else {
        assert_true(p.has_ack_id);
        assert_int_equal(p.ack_id, strtoull(id, NULL, 10));
    }
    /* The reference re-serialised what it parsed: our raw span must be
     * that very text (both sides write with JSON.stringify). */
    assert_span(p.data, p.data_len, strcmp(data, "-") == 0 ? NULL : data);

    /* Re-encode: byte for byte what the real peer sent. */
    proto_buf_reset(enc);
    assert_true(
        sio_encode_header(enc, p.type, nsp, p.has_ack_id ? &p.ack_id : NULL, p.attachments) > 0);
    if (p.data)
        proto_buf_append(enc, p.data, p.data_len);
    if (enc->len != strlen(frame) || memcmp(enc->data, frame, enc->len) != 0)
        fail_msg("re-encoded \"%.*s\", captured \"%s\"", (int)enc->len, (const char *)enc->data,
                 frame);

    /* And through the assembler of its direction. */
    struct sio_message m;
    int r = sio_assembler_feed(&st->a, frame, strlen(frame), false, &m);
    if (att == 0) {
        assert_int_equal(r, SIO_ASM_READY);
        assert_int_equal(m.packet.type, type);
    } else {
        assert_int_equal(r, SIO_ASM_MORE);
        st->expect = att;
        st->nbins = 0;
        (*binary_packets)++;
    }
}

static void take_binary(struct stream *st, const char *b64, int *attachments)
{
    uint8_t *bytes = malloc(strlen(b64) + 1);
    assert_non_null(bytes);
    size_t n = b64_decode(b64, bytes);
    assert_true(st->expect > 0);
    assert_true(st->nbins < 16);
    st->bins[st->nbins] = bytes;
    st->bin_len[st->nbins++] = n;
    (*attachments)++;
    struct sio_message m;
    int r = sio_assembler_feed(&st->a, bytes, n, true, &m);
    if (st->nbins < st->expect) {
        assert_int_equal(r, SIO_ASM_MORE);
        return;
    }
    assert_int_equal(r, SIO_ASM_READY);
    assert_int_equal(m.packet.attachments, st->expect);
    for (uint32_t i = 0; i < st->nbins; i++) {
        assert_int_equal(m.attachments[i].len, st->bin_len[i]);
        if (st->bin_len[i])
            assert_memory_equal(m.attachments[i].data, st->bins[i], st->bin_len[i]);
        free(st->bins[i]);
    }
    st->expect = 0;
    st->nbins = 0;
}

static void test_captured_frames(void **state)
{
    char *text = read_file(SIO_TESTDATA_DIR "/frames-socketio-4.8.txt");
    struct stream streams[2]; /* 0: server to client, 1: client to server */
    memset(streams, 0, sizeof streams);
    sio_assembler_init(&streams[0].a, NULL);
    sio_assembler_init(&streams[1].a, NULL);
    struct proto_buf enc = PROTO_BUF_INIT;
    const char *frame = NULL;
    int dir = 0, packets = 0, binary_packets = 0, attachments = 0;
    int types_seen[7] = {0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            if (strstr(line, ": GET ")) { /* a new connection: new streams */
                for (int d = 0; d < 2; d++) {
                    assert_false(sio_assembler_pending(&streams[d].a));
                    sio_assembler_reset(&streams[d].a);
                }
            }
            continue;
        }
        if (line[0] == '<' || line[0] == '>') {
            dir = line[0] == '>';
            if (strncmp(line + 1, " text ", 6) == 0) {
                frame = line + 7;
            } else {
                assert_true(strncmp(line + 1, " bin", 4) == 0);
                take_binary(&streams[dir], line[5] ? line + 6 : "", &attachments);
                frame = NULL;
            }
        } else if (strncmp(line, "= sio ", 6) == 0) {
            assert_non_null(frame);
            assert_int_equal(frame[0], '4'); /* an Engine.IO message */
            check_reference(frame + 1, line, &enc, &streams[dir], &binary_packets);
            types_seen[frame[1] - '0']++;
            packets++;
        }
    }
    for (int d = 0; d < 2; d++) {
        assert_false(sio_assembler_pending(&streams[d].a));
        sio_assembler_free(&streams[d].a);
    }
    proto_buf_free(&enc);
    free(text);
    /* The capture must hold what it was made for. */
    assert_true(packets >= 30);
    assert_true(binary_packets >= 5);
    assert_true(attachments >= 10);
    for (int t = 0; t <= 6; t++)
        if (!types_seen[t])
            fail_msg("no captured %s packet", sio_type_name(t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_good),
        cmocka_unit_test(test_encode_good),
        cmocka_unit_test(test_encode_exact_forms),
        cmocka_unit_test(test_all_combinations),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_namespace_edges),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_asm_plain),
        cmocka_unit_test(test_asm_binary),
        cmocka_unit_test(test_asm_all_empty),
        cmocka_unit_test(test_asm_violations),
        cmocka_unit_test(test_asm_byte_limit),
        cmocka_unit_test(test_asm_reuse_without_alloc),
        cmocka_unit_test(test_asm_reset_and_free),
        cmocka_unit_test(test_captured_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
