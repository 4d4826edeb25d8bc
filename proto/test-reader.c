/* The frame reader: any split point yields the same frames, every limit at
 * and over, each kind of malformed frame, fatal vs recoverable errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/errors.h"
#include "proto/reader.h"

static void put_prefix(struct proto_buf *out, size_t n)
{
    uint8_t p[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    proto_buf_append(out, p, 4);
}

/* Appends a frame with the given body. */
static void put_frame(struct proto_buf *out, const void *body, size_t n)
{
    put_prefix(out, n);
    proto_buf_append(out, body, n);
}

/* A frame {"op": "x", "n": i, "pad": "<len bytes>"}. */
static void put_sample(struct proto_buf *out, uint32_t i, size_t pad)
{
    static char filler[70000];
    memset(filler, 'a' + (int)(i % 26), sizeof filler);
    struct proto_buf body = PROTO_BUF_INIT;
    proto_mp_put_map(&body, 3);
    proto_mp_put_cstr(&body, "op");
    proto_mp_put_cstr(&body, "x");
    proto_mp_put_cstr(&body, "n");
    proto_mp_put_uint(&body, i);
    proto_mp_put_cstr(&body, "pad");
    proto_mp_put_str(&body, filler, pad);
    put_frame(out, body.data, body.len);
    proto_buf_free(&body);
}

struct collected {
    struct proto_buf bytes; /* frames' bodies, each preceded by its length */
    int frames;
    int errors;
};

static void drain(struct proto_reader *r, struct collected *c)
{
    struct proto_span f;
    int rc;
    while ((rc = proto_reader_next(r, &f)) != 0) {
        if (rc < 0) {
            assert_int_equal(rc, PROTO_E_BAD_FRAME);
            c->errors++;
            continue;
        }
        assert_int_equal(rc, 1);
        put_frame(&c->bytes, f.ptr, f.len);
        c->frames++;
    }
}

static void collected_free(struct collected *c)
{
    proto_buf_free(&c->bytes);
}

/* got has the frames and errors of ref, byte for byte (the length checked
 * too: a stream cut short must not pass as its prefix). */
static void assert_same_collected(const struct collected *got, const struct collected *ref,
                                  int frames, int errors)
{
    assert_int_equal(got->frames, frames);
    assert_int_equal(got->errors, errors);
    assert_int_equal(got->bytes.len, ref->bytes.len);
    assert_memory_equal(got->bytes.data, ref->bytes.data, ref->bytes.len);
}

/* The stream: small frames, one that crosses the initial 4 KiB buffer, a
 * bad one in the middle (recoverable), an empty one (recoverable). */
static void build_stream(struct proto_buf *s, int *good, int *bad)
{
    put_sample(s, 0, 0);
    put_sample(s, 1, 10);
    put_sample(s, 2, 5000);
    put_frame(s, "\x92\x01\x02", 3); /* not a map */
    put_sample(s, 3, 1);
    put_frame(s, "", 0); /* empty */
    put_sample(s, 4, 300);
    put_sample(s, 5, 9000);
    *good = 6;
    *bad = 2;
}

static void test_every_split_point(void **state)
{
    struct proto_buf s = PROTO_BUF_INIT;
    int good, bad;
    build_stream(&s, &good, &bad);

    /* Reference: fed in one piece. */
    struct collected ref = {PROTO_BUF_INIT, 0, 0};
    struct proto_reader *r = proto_reader_new(NULL);
    assert_non_null(r);
    assert_int_equal(proto_reader_feed(r, s.data, s.len), 0);
    drain(r, &ref);
    assert_int_equal(ref.frames, good);
    assert_int_equal(ref.errors, bad);
    assert_int_equal(proto_reader_pending(r), 0);
    proto_reader_free(r);

    for (size_t cut = 0; cut <= s.len; cut++) {
        struct collected got = {PROTO_BUF_INIT, 0, 0};
        r = proto_reader_new(NULL);
        assert_int_equal(proto_reader_feed(r, s.data, cut), 0);
        drain(r, &got);
        assert_int_equal(proto_reader_feed(r, s.data + cut, s.len - cut), 0);
        drain(r, &got);
        assert_same_collected(&got, &ref, good, bad);
        assert_int_equal(proto_reader_pending(r), 0);
        proto_reader_free(r);
        collected_free(&got);
    }

    /* Byte by byte. */
    struct collected got = {PROTO_BUF_INIT, 0, 0};
    r = proto_reader_new(NULL);
    for (size_t i = 0; i < s.len; i++) {
        assert_int_equal(proto_reader_feed(r, s.data + i, 1), 0);
        drain(r, &got);
        assert_true(proto_reader_pending(r) < 70000 + 4);
    }
    assert_same_collected(&got, &ref, good, bad);
    proto_reader_free(r);
    collected_free(&got);

    collected_free(&ref);
    proto_buf_free(&s);
}

/* Feeds [data, data + len) the way a server with one read buffer for all
 * its connections does: lent when nothing is buffered, fed otherwise;
 * the caller's bytes are scribbled over after unlend, as the next read
 * into the shared buffer would. */
static void lend_or_feed(struct proto_reader *r, const uint8_t *data, size_t len,
                         struct collected *c)
{
    static uint8_t shared[70000 * 2];

    assert_true(len <= sizeof shared);
    if (proto_reader_pending(r) != 0) {
        assert_int_equal(proto_reader_lend(r, data, len), PROTO_E_INTERNAL);
        assert_int_equal(proto_reader_feed(r, data, len), 0);
        drain(r, c);
        return;
    }
    memcpy(shared, data, len);
    assert_int_equal(proto_reader_lend(r, shared, len), 0);
    drain(r, c);
    assert_int_equal(proto_reader_unlend(r, 0), 0);
    memset(shared, 0xc1, len); /* 0xc1: never valid msgpack */
    drain(r, c);
}

static void test_lending_at_every_split_point(void **state)
{
    struct proto_buf s = PROTO_BUF_INIT;
    int good, bad;
    build_stream(&s, &good, &bad);

    struct collected ref = {PROTO_BUF_INIT, 0, 0};
    struct proto_reader *r = proto_reader_new(NULL);
    assert_int_equal(proto_reader_feed(r, s.data, s.len), 0);
    drain(r, &ref);
    proto_reader_free(r);

    for (size_t cut = 0; cut <= s.len; cut++) {
        struct collected got = {PROTO_BUF_INIT, 0, 0};
        r = proto_reader_new(NULL);
        lend_or_feed(r, s.data, cut, &got);
        lend_or_feed(r, s.data + cut, s.len - cut, &got);
        assert_same_collected(&got, &ref, good, bad);
        assert_int_equal(proto_reader_pending(r), 0);
        proto_reader_free(r);
        collected_free(&got);
    }
    collected_free(&ref);
    proto_buf_free(&s);
}

/* Whole frames through lending never give the reader a buffer: an idle
 * connection costs no read buffer of its own. */
static void test_lending_whole_frames_allocates_nothing(void **state)
{
    struct proto_buf s = PROTO_BUF_INIT;
    struct collected got = {PROTO_BUF_INIT, 0, 0};
    struct proto_reader *r = proto_reader_new(NULL);

    put_sample(&s, 1, 10);
    put_sample(&s, 2, 3000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(proto_reader_lend(r, s.data, s.len), 0);
        drain(r, &got);
        assert_int_equal(proto_reader_unlend(r, 0), 0);
    }
    assert_int_equal(got.frames, 6);
    assert_int_equal(proto_reader_capacity(r), 0);
    /* While lent, the own buffer is what counts, and feed/space refuse. */
    assert_int_equal(proto_reader_lend(r, s.data, 3), 0);
    assert_int_equal(proto_reader_capacity(r), 0);
    assert_int_equal(proto_reader_feed(r, "x", 1), PROTO_E_INTERNAL);
    assert_int_equal(proto_reader_unlend(r, 65536), 0);
    assert_int_equal(proto_reader_pending(r), 3);
    assert_true(proto_reader_capacity(r) >= 3 + 65536); /* the next read fits */
    proto_reader_trim(r);                               /* three bytes buffered: kept */
    assert_int_equal(proto_reader_pending(r), 3);
    assert_int_equal(proto_reader_feed(r, s.data + 3, s.len - 3), 0);
    drain(r, &got);
    assert_int_equal(got.frames, 8);
    proto_reader_trim(r); /* empty: let go */
    assert_int_equal(proto_reader_capacity(r), 0);
    proto_reader_free(r);
    /* Freed while lent: its own buffer goes, the caller's stays. */
    r = proto_reader_new(NULL);
    assert_int_equal(proto_reader_feed(r, s.data, s.len), 0);
    drain(r, &got);
    assert_int_equal(proto_reader_lend(r, s.data, s.len), 0);
    proto_reader_free(r);
    collected_free(&got);
    proto_buf_free(&s);
}

/* Two split points everywhere over a shorter stream (all pairs). */
static void test_every_pair_of_split_points(void **state)
{
    struct proto_buf s = PROTO_BUF_INIT;
    put_sample(&s, 0, 3);
    put_frame(&s, "\x81\x01\x02", 3); /* non-string key */
    put_sample(&s, 1, 0);
    put_sample(&s, 2, 20);
    struct collected ref = {PROTO_BUF_INIT, 0, 0};
    struct proto_reader *r = proto_reader_new(NULL);
    proto_reader_feed(r, s.data, s.len);
    drain(r, &ref);
    proto_reader_free(r);
    assert_int_equal(ref.frames, 3);
    assert_int_equal(ref.errors, 1);
    for (size_t a = 0; a <= s.len; a++) {
        for (size_t b = a; b <= s.len; b++) {
            struct collected got = {PROTO_BUF_INIT, 0, 0};
            r = proto_reader_new(NULL);
            proto_reader_feed(r, s.data, a);
            drain(r, &got);
            proto_reader_feed(r, s.data + a, b - a);
            drain(r, &got);
            proto_reader_feed(r, s.data + b, s.len - b);
            drain(r, &got);
            assert_same_collected(&got, &ref, 3, 1);
            proto_reader_free(r);
            collected_free(&got);
        }
    }
    collected_free(&ref);
    proto_buf_free(&s);
}

/* Zero-copy feeding with space/commit, in uneven reads. */
/* A big frame read in socket-sized pieces: the buffer grows once to the
 * frame's own size, never to the next power of two (a 16 MiB frame must
 * not hold 32 MiB while it arrives: that is what a client is charged). */
static void test_big_frame_buffer_is_frame_sized(void **state)
{
    (void)state;
    const uint32_t body = 16u * 1024 * 1024 - 64;
    struct proto_limits lim = {.max_frame = 16u * 1024 * 1024};
    struct proto_reader *r = proto_reader_new(&lim);
    /* {"op": bin32(body - 9)} */
    uint8_t head[] = {(uint8_t)(body >> 24),
                      (uint8_t)(body >> 16),
                      (uint8_t)(body >> 8),
                      (uint8_t)body,
                      0x81,
                      0xa2,
                      'o',
                      'p',
                      0xc6,
                      0,
                      0,
                      0,
                      0};
    uint32_t bin = body - 9;
    head[9] = (uint8_t)(bin >> 24);
    head[10] = (uint8_t)(bin >> 16);
    head[11] = (uint8_t)(bin >> 8);
    head[12] = (uint8_t)bin;
    size_t total = 4 + body, pos = 0, max_cap = 0;
    struct proto_span f;
    while (pos < total) {
        void *p;
        size_t room;
        assert_int_equal(proto_reader_space(r, 65536, &p, &room), 0);
        size_t n = room < 65536 ? room : 65536;
        if (n > total - pos)
            n = total - pos;
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)p)[i] = pos + i < sizeof(head) ? head[pos + i] : 0x5a;
        proto_reader_commit(r, n);
        pos += n;
        if (proto_reader_capacity(r) > max_cap)
            max_cap = proto_reader_capacity(r);
        if (pos < total)
            assert_int_equal(proto_reader_next(r, &f), 0);
    }
    assert_int_equal(proto_reader_next(r, &f), 1);
    assert_int_equal(f.len, body);
    if (max_cap > total + 65536)
        fail_msg("the buffer grew to %zu bytes for a frame of %zu", max_cap, total);
    proto_reader_free(r);
}

static void test_space_commit(void **state)
{
    struct proto_buf s = PROTO_BUF_INIT;
    int good, bad;
    build_stream(&s, &good, &bad);
    put_sample(&s, 6, 65536); /* and one big frame */
    good++;
    struct collected ref = {PROTO_BUF_INIT, 0, 0};
    struct proto_reader *r = proto_reader_new(NULL);
    proto_reader_feed(r, s.data, s.len);
    drain(r, &ref);
    proto_reader_free(r);
    assert_int_equal(ref.frames, good);

    static const size_t reads[] = {1, 7, 4096, 3, 100000, 13, 2};
    for (size_t k = 0; k < sizeof reads / sizeof reads[0]; k++) {
        struct collected got = {PROTO_BUF_INIT, 0, 0};
        r = proto_reader_new(NULL);
        size_t pos = 0, step = 0;
        while (pos < s.len) {
            void *p;
            size_t room;
            size_t want = reads[(k + step++) % (sizeof reads / sizeof reads[0])];
            assert_int_equal(proto_reader_space(r, want, &p, &room), 0);
            assert_true(room >= want);
            size_t n = want < s.len - pos ? want : s.len - pos;
            memcpy(p, s.data + pos, n);
            proto_reader_commit(r, n);
            pos += n;
            drain(r, &got);
        }
        assert_same_collected(&got, &ref, good, bad);
        /* hint 0 still gives room (a read of 0 bytes would look like EOF) */
        void *p;
        size_t room = 0;
        assert_int_equal(proto_reader_space(r, 0, &p, &room), 0);
        assert_true(room > 0);
        proto_reader_free(r);
        collected_free(&got);
    }
    collected_free(&ref);
    proto_buf_free(&s);
}

/* Warm reader: no growth after the first big frame when traffic repeats. */
static void test_compaction_reuses_buffer(void **state)
{
    struct proto_buf s = PROTO_BUF_INIT;
    for (uint32_t i = 0; i < 50; i++)
        put_sample(&s, i, 1000);
    struct proto_reader *r = proto_reader_new(NULL);
    struct collected got = {PROTO_BUF_INIT, 0, 0};
    void *first = NULL;
    for (size_t pos = 0; pos < s.len; pos += 1500) {
        size_t n = s.len - pos < 1500 ? s.len - pos : 1500;
        void *p;
        size_t room;
        assert_int_equal(proto_reader_space(r, 1500, &p, &room), 0);
        if (pos == 0)
            first = p;
        assert_true((uint8_t *)p >= (uint8_t *)first && (uint8_t *)p < (uint8_t *)first + 4096);
        memcpy(p, s.data + pos, n);
        proto_reader_commit(r, n);
        drain(r, &got);
    }
    assert_int_equal(got.frames, 50);
    proto_reader_free(r);
    collected_free(&got);
    proto_buf_free(&s);
}

static void test_max_frame(void **state)
{
    struct proto_limits l = {.max_frame = 100, .max_depth = 8, .max_elements = 100};
    struct proto_buf body = PROTO_BUF_INIT, s = PROTO_BUF_INIT;
    /* exactly max_frame bytes: {"p": "<str>"} padded to 100 */
    proto_mp_put_map(&body, 1);
    proto_mp_put_cstr(&body, "p");
    char pad[100];
    memset(pad, 'z', sizeof pad);
    proto_mp_put_str(&body, pad, 100 - body.len - 2); /* str8 header: 2 bytes */
    assert_int_equal(body.len, 100);
    put_frame(&s, body.data, body.len);

    struct proto_reader *r = proto_reader_new(&l);
    struct proto_span f;
    assert_int_equal(proto_reader_feed(r, s.data, s.len), 0);
    assert_int_equal(proto_reader_next(r, &f), 1);
    assert_int_equal(f.len, 100);
    assert_memory_equal(f.ptr, body.data, 100);

    /* 101: fatal as soon as the prefix is in, before the body arrives */
    put_prefix(&s, 101);
    assert_int_equal(proto_reader_feed(r, s.data + s.len - 4, 4), 0);
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_FRAME_TOO_LARGE);
    assert_true(proto_reader_fatal(r));
    assert_string_equal(proto_reader_error(r), "frame of 101 bytes exceeds max_frame 100");
    /* sticky */
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_FRAME_TOO_LARGE);
    assert_int_equal(proto_reader_feed(r, "x", 1), PROTO_E_FRAME_TOO_LARGE);
    void *p;
    size_t room;
    assert_int_equal(proto_reader_space(r, 10, &p, &room), PROTO_E_FRAME_TOO_LARGE);
    proto_reader_free(r);

    /* Default limit, the example of the error text. */
    r = proto_reader_new(NULL);
    assert_int_equal(proto_reader_feed(r, "\x01\x31\x2d\x00", 4), 0);
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_FRAME_TOO_LARGE);
    assert_string_equal(proto_reader_error(r),
                        "frame of 20000000 bytes exceeds max_frame 16777216");
    proto_reader_free(r);
    r = proto_reader_new(NULL);
    assert_int_equal(proto_reader_feed(r, "\xff\xff\xff\xff", 4), 0);
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_FRAME_TOO_LARGE);
    proto_reader_free(r);

    /* Limits above the hard cap are capped; zero fields mean the default. */
    struct proto_limits huge = {.max_frame = UINT32_MAX};
    r = proto_reader_new(&huge);
    put_prefix(&s, PROTO_HARD_MAX_FRAME + 1);
    assert_int_equal(proto_reader_feed(r, s.data + s.len - 4, 4), 0);
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_FRAME_TOO_LARGE);
    proto_reader_free(r);

    proto_buf_free(&body);
    proto_buf_free(&s);
}

static void test_limits_depth_elements(void **state)
{
    struct proto_limits l = {.max_frame = 1000, .max_depth = 3, .max_elements = 4};
    struct proto_buf s = PROTO_BUF_INIT, body = PROTO_BUF_INIT;
    /* depth 3: {"a": [[1]]} ok; depth 4: {"a": [[[1]]]} bad */
    for (int d = 3; d <= 4; d++) {
        proto_buf_reset(&body);
        proto_mp_put_map(&body, 1);
        proto_mp_put_cstr(&body, "a");
        for (int i = 1; i < d; i++)
            proto_mp_put_array(&body, 1);
        proto_mp_put_uint(&body, 1);
        put_frame(&s, body.data, body.len);
    }
    /* 4 elements ok, 5 bad (array and map) */
    for (uint32_t n = 4; n <= 5; n++) {
        proto_buf_reset(&body);
        proto_mp_put_map(&body, 1);
        proto_mp_put_cstr(&body, "a");
        proto_mp_put_array(&body, n);
        for (uint32_t i = 0; i < n; i++)
            proto_mp_put_uint(&body, i);
        put_frame(&s, body.data, body.len);
    }
    for (uint32_t n = 4; n <= 5; n++) {
        proto_buf_reset(&body);
        proto_mp_put_map(&body, n);
        for (uint32_t i = 0; i < n; i++) {
            char k[2] = {(char)('a' + i), 0};
            proto_mp_put_cstr(&body, k);
            proto_mp_put_uint(&body, i);
        }
        put_frame(&s, body.data, body.len);
    }
    struct proto_reader *r = proto_reader_new(&l);
    proto_reader_feed(r, s.data, s.len);
    struct proto_span f;
    assert_int_equal(proto_reader_next(r, &f), 1);
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_BAD_FRAME);
    assert_false(proto_reader_fatal(r));
    assert_string_equal(proto_reader_error(r),
                        "bad frame of 7 bytes: nesting deeper than max_depth 3 at offset 5");
    assert_int_equal(proto_reader_next(r, &f), 1);
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_BAD_FRAME);
    assert_string_equal(proto_reader_error(r),
                        "bad frame of 9 bytes: more elements than max_elements 4 at offset 3");
    assert_int_equal(proto_reader_next(r, &f), 1);
    assert_int_equal(proto_reader_next(r, &f), PROTO_E_BAD_FRAME);
    assert_int_equal(proto_reader_next(r, &f), 0);
    proto_reader_free(r);
    proto_buf_free(&s);
    proto_buf_free(&body);
}

static void test_malformed_recoverable(void **state)
{
    static const struct {
        const char *body;
        size_t len;
        const char *err;
    } cases[] = {
        {"\x82\xa1\x61\x01", 4,
         "bad frame of 4 bytes: element count exceeds the remaining bytes "
         "at offset 0"},
        {"\x81\xa1\x61\xa5\x61", 5, "bad frame of 5 bytes: truncated at offset 3"},
        {"\x81\xa1\x61\xc1", 4, "bad frame of 4 bytes: reserved byte 0xc1 at offset 3"},
        {"\x92\x01\x02", 3, "bad frame of 3 bytes: top level is not a map at offset 0"},
        {"\xa1\x61", 2, "bad frame of 2 bytes: top level is not a map at offset 0"},
        {"\x81\x01\x02", 3, "bad frame of 3 bytes: map key is not a string at offset 1"},
        {"\x81\xa1\x61\x01\x00", 5,
         "bad frame of 5 bytes: trailing bytes after the map at "
         "offset 4"},
        {"\x80\x80", 2, "bad frame of 2 bytes: trailing bytes after the map at offset 1"},
        {"", 0, "empty frame (length 0)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proto_buf s = PROTO_BUF_INIT;
        put_frame(&s, cases[i].body, cases[i].len);
        put_frame(&s, "\x81\xa2op\xa4ping", 9); /* a good frame right after */
        struct proto_reader *r = proto_reader_new(NULL);
        proto_reader_feed(r, s.data, s.len);
        struct proto_span f;
        assert_int_equal(proto_reader_next(r, &f), PROTO_E_BAD_FRAME);
        assert_false(proto_reader_fatal(r));
        assert_string_equal(proto_reader_error(r), cases[i].err);
        assert_int_equal(proto_reader_next(r, &f), 1); /* still in sync */
        assert_int_equal(f.len, 9);
        assert_memory_equal(f.ptr, "\x81\xa2op\xa4ping", 9);
        assert_int_equal(proto_reader_next(r, &f), 0);
        proto_reader_free(r);
        proto_buf_free(&s);
    }
}

static void test_partial_prefix_and_pending(void **state)
{
    struct proto_reader *r = proto_reader_new(NULL);
    struct proto_span f;
    assert_int_equal(proto_reader_next(r, &f), 0);
    assert_int_equal(proto_reader_feed(r, "\x00\x00", 2), 0);
    assert_int_equal(proto_reader_next(r, &f), 0);
    assert_int_equal(proto_reader_pending(r), 2);
    assert_int_equal(proto_reader_feed(r, "\x00\x01", 2), 0);
    assert_int_equal(proto_reader_next(r, &f), 0);
    assert_int_equal(proto_reader_pending(r), 4);
    assert_int_equal(proto_reader_feed(r, "\x80", 1), 0);
    assert_int_equal(proto_reader_next(r, &f), 1);
    assert_int_equal(f.len, 1);
    assert_int_equal(proto_reader_pending(r), 0);
    assert_int_equal(proto_reader_feed(r, NULL, 0), 0);
    assert_int_equal(proto_reader_next(r, &f), 0);
    proto_reader_free(r);
    proto_reader_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_every_pair_of_split_points),
        cmocka_unit_test(test_lending_at_every_split_point),
        cmocka_unit_test(test_lending_whole_frames_allocates_nothing),
        cmocka_unit_test(test_space_commit),
        cmocka_unit_test(test_big_frame_buffer_is_frame_sized),
        cmocka_unit_test(test_compaction_reuses_buffer),
        cmocka_unit_test(test_max_frame),
        cmocka_unit_test(test_limits_depth_elements),
        cmocka_unit_test(test_malformed_recoverable),
        cmocka_unit_test(test_partial_prefix_and_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
