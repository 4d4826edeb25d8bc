/* Exact msgpack <-> JSON transcoding and a strict JSON tokenizer.
 *
 * Tokenizer. jsmn's idea: one flat array of tokens in document order, a
 * container's children following it; `next` (the index after a whole
 * subtree) makes skipping a value O(1), so JSON -> msgpack is one linear
 * pass over the tokens with no recursion and no stack (a container's count
 * is known before its children, which is what a msgpack header needs).
 * While a container is still open its `next` field holds its parent's
 * index; that is the tokenizer's whole stack, so depth costs no memory.
 * The grammar is RFC 8259 exactly: no trailing commas, no leading zeros, no
 * NaN/Infinity, no control characters in strings, \u escapes with surrogate
 * pairs (a lone surrogate is an error), the whole input valid UTF-8.
 *
 * Numbers. JSON has one number type; msgpack has three. Integer syntax that
 * fits int64 becomes an int, above INT64_MAX up to UINT64_MAX a uint, and
 * anything else (fraction, exponent, or out of range) a float64 parsed by
 * strtod, which is correctly rounded in glibc. The other way, a float is
 * printed with the fewest significant digits (1..17) that strtod reads back
 * to the same bits, laid out like JavaScript prints numbers, and always
 * with '.' or 'e' so it comes back a float (1.0 is "1.0").
 * A float32 is printed with the fewest digits (1..9) that read back to the
 * same float; it returns as the float64 of that text.
 *
 * Locale: printf/strtod use LC_NUMERIC's radix character. The program never
 * calls setlocale, so it is "C"; but we do not rely on it: formatting
 * replaces whatever radix printf used with '.', and parsing retries with
 * the radix printf uses ("%.1f" of 0.5) if strtod stopped at the '.'.
 *
 * Binary has no JSON form; enum proto_json_bin says what happens instead.
 */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "errors.h"
#include "text.h"

static int set_err(struct proto_json_error *err, int code, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_err(struct proto_json_error *err, int code, size_t offset, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->offset = offset;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return code;
}

static uint32_t depth_limit(uint32_t max_depth)
{
    if (max_depth == 0)
        return PROTO_DEFAULT_MAX_DEPTH;
    return max_depth > PROTO_HARD_MAX_DEPTH ? PROTO_HARD_MAX_DEPTH : max_depth;
}

/* How many bytes at s[0..n) from the start are plain string content: no
 * quote, no backslash, no control character, no byte of a multi-byte
 * UTF-8 sequence. Strings are mostly such bytes, so both directions skip
 * them a block at a time and land on the first byte that needs a look (the
 * last few bytes of the input, less than a block, are left to the caller).
 * With SSE2 (every x86-64) sixteen at a time: a signed compare below 0x20
 * catches the bytes from 0x80 up too. Else eight at a time (SWAR: a byte
 * of x is zero when (x - 0x01) & ~x has its top bit; with every byte below
 * 0x80, one is below 0x20 when x - 0x20 has its top bit; a borrow can only
 * mark bytes above the first true one, so the lowest mark is exact). */
static inline size_t plain_run(const uint8_t *s, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);

    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                                 _mm_cmplt_epi8(x, space));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);

        if (bits)
            return i + (size_t)__builtin_ctz(bits);
    }
#endif
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);

    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, b, t;

        memcpy(&w, s + i, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        t = (((q - ones) & ~q) | ((b - ones) & ~b) | (w - ones * 0x20) | w) & high;
        if (t) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return i + (size_t)(__builtin_ctzll(t) >> 3);
#else
            return i; /* the byte loop finds it */
#endif
        }
    }
    return i;
}

static size_t utf8_put(uint8_t *b, uint32_t cp)
{
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (uint8_t)(0xf0 | cp >> 18);
    b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    b[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at s, or -1. */
static int32_t hex4(const uint8_t *s)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* --- tokenizer --- */

void proto_json_doc_init(struct proto_json_doc *d)
{
    memset(d, 0, sizeof *d);
}

void proto_json_doc_free(struct proto_json_doc *d)
{
    free(d->tok);
    d->tok = NULL;
    d->n = d->cap = 0;
    d->text = NULL;
    d->text_len = 0;
}

#define NO_PARENT UINT32_MAX

struct parser {
    struct proto_json_doc *d;
    const uint8_t *s;
    size_t len, pos;
    uint32_t depth, max_depth;
    uint32_t open; /* innermost open container, or NO_PARENT */
    struct proto_json_error *err;
};

static int new_token(struct parser *p, uint8_t type, size_t start, uint32_t *index)
{
    struct proto_json_doc *d = p->d;
    if (d->max_tokens && d->n >= d->max_tokens)
        return set_err(p->err, PROTO_E_LIMIT_EXCEEDED, start,
                       "more than %" PRIu32 " JSON tokens at offset %zu", d->max_tokens, start);
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 64;
        if (cap < d->cap) /* cannot happen: n <= input length < 4G */
            return set_err(p->err, PROTO_E_NOMEM, start, "too many JSON tokens");
        struct proto_json_token *t = realloc(d->tok, (size_t)cap * sizeof *t);
        if (!t)
            return set_err(p->err, PROTO_E_NOMEM, start, "out of memory for JSON tokens");
        d->tok = t;
        d->cap = cap;
    }
    struct proto_json_token *t = &d->tok[d->n];
    t->type = type;
    t->escaped = 0;
    t->start = (uint32_t)start;
    t->len = 0;
    t->count = 0;
    t->next = d->n + 1;
    *index = d->n++;
    return 0;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        uint8_t c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int unexpected(struct parser *p, const char *wanted)
{
    if (p->pos >= p->len)
        return set_err(p->err, PROTO_E_BAD_FRAME, p->pos,
                       "unexpected end of JSON at offset %zu (expected %s)", p->pos, wanted);
    return set_err(p->err, PROTO_E_BAD_FRAME, p->pos,
                   "unexpected byte 0x%02x at offset %zu (expected %s)", p->s[p->pos], p->pos,
                   wanted);
}

/* p->pos at the opening quote. */
static int parse_string(struct parser *p)
{
    uint32_t ti;
    size_t start = p->pos + 1;
    int rc = new_token(p, PROTO_JSON_STRING, start, &ti);
    if (rc < 0)
        return rc;
    const uint8_t *s = p->s;
    size_t i = start;
    bool escaped = false;
    for (;;) {
        i += plain_run(s + i, p->len - i);
        if (i >= p->len)
            return set_err(p->err, PROTO_E_BAD_FRAME, p->pos,
                           "unterminated string starting at offset %zu", p->pos);
        uint8_t c = s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return set_err(p->err, PROTO_E_BAD_FRAME, i,
                           "control character 0x%02x in string at offset %zu", c, i);
        if (c == '\\') {
            escaped = true;
            if (i + 1 >= p->len)
                return set_err(p->err, PROTO_E_BAD_FRAME, i, "unterminated escape at offset %zu",
                               i);
            uint8_t e = s[i + 1];
            if (e != 'u') {
                if (!strchr("\"\\/bfnrt", e) || e == 0)
                    return set_err(p->err, PROTO_E_BAD_FRAME, i,
                                   "invalid escape '\\%c' at offset %zu",
                                   e >= 0x20 && e < 0x7f ? e : '?', i);
                i += 2;
                continue;
            }
            int32_t cp = i + 6 <= p->len ? hex4(s + i + 2) : -1;
            if (cp < 0)
                return set_err(p->err, PROTO_E_BAD_FRAME, i, "invalid \\u escape at offset %zu", i);
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return set_err(p->err, PROTO_E_BAD_FRAME, i,
                               "lone low surrogate \\u%04" PRIx32 " at offset %zu", cp, i);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                int32_t lo = -1;
                if (i + 12 <= p->len && s[i + 6] == '\\' && s[i + 7] == 'u')
                    lo = hex4(s + i + 8);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return set_err(p->err, PROTO_E_BAD_FRAME, i,
                                   "lone high surrogate \\u%04" PRIx32 " at offset %zu", cp, i);
                i += 12;
            } else {
                i += 6;
            }
            continue;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n = proto_utf8_seq(s + i, p->len - i);
        if (n == 0)
            return set_err(p->err, PROTO_E_BAD_FRAME, i, "invalid UTF-8 in string at offset %zu",
                           i);
        i += n;
    }
    struct proto_json_token *t = &p->d->tok[ti];
    t->len = (uint32_t)(i - start);
    t->escaped = escaped;
    p->pos = i + 1;
    return 0;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct parser *p)
{
    const uint8_t *s = p->s;
    size_t i = p->pos, start = p->pos;
    if (s[i] == '-')
        i++;
    if (i >= p->len || !is_digit(s[i])) {
        p->pos = i;
        return unexpected(p, "a digit");
    }
    if (s[i] == '0') {
        i++;
        if (i < p->len && is_digit(s[i]))
            return set_err(p->err, PROTO_E_BAD_FRAME, start,
                           "number with a leading zero at offset %zu", start);
    } else {
        while (i < p->len && is_digit(s[i]))
            i++;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(s[i])) {
            p->pos = i;
            return unexpected(p, "a digit after '.'");
        }
        while (i < p->len && is_digit(s[i]))
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->len || !is_digit(s[i])) {
            p->pos = i;
            return unexpected(p, "a digit in the exponent");
        }
        while (i < p->len && is_digit(s[i]))
            i++;
    }
    uint32_t ti;
    int rc = new_token(p, PROTO_JSON_NUMBER, start, &ti);
    if (rc < 0)
        return rc;
    p->d->tok[ti].len = (uint32_t)(i - start);
    p->pos = i;
    return 0;
}

static int parse_literal(struct parser *p, const char *word, uint8_t type)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return unexpected(p, "a JSON value");
    uint32_t ti;
    int rc = new_token(p, type, p->pos, &ti);
    if (rc < 0)
        return rc;
    p->d->tok[ti].len = (uint32_t)n;
    p->pos += n;
    return 0;
}

static int open_container(struct parser *p, uint8_t type)
{
    if (p->depth + 1 > p->max_depth)
        return set_err(p->err, PROTO_E_BAD_FRAME, p->pos,
                       "nesting deeper than max_depth %" PRIu32 " at offset %zu", p->max_depth,
                       p->pos);
    uint32_t ti;
    int rc = new_token(p, type, p->pos, &ti);
    if (rc < 0)
        return rc;
    p->d->tok[ti].next = p->open; /* parent, until closed */
    p->open = ti;
    p->depth++;
    p->pos++;
    return 0;
}

static void close_container(struct parser *p)
{
    struct proto_json_token *t = &p->d->tok[p->open];
    uint32_t parent = t->next;
    t->next = p->d->n;
    t->len = (uint32_t)(p->pos + 1 - t->start);
    p->open = parent;
    p->depth--;
    p->pos++;
}

int proto_json_parse(struct proto_json_doc *d, const char *text, size_t len, uint32_t max_depth,
                     struct proto_json_error *err)
{
    struct parser p = {d, (const uint8_t *)text, len, 0, 0, depth_limit(max_depth), NO_PARENT, err};
    d->n = 0;
    d->text = text;
    d->text_len = len;
    if (len >= UINT32_MAX)
        return set_err(err, PROTO_E_BAD_FRAME, 0, "JSON text of %zu bytes is too long", len);

    /* States: want a value; want a key (or '}' right after '{'); want ','
     * or a closing bracket after a value. */
    enum { VALUE, KEY, FIRST_KEY, FIRST_VALUE, AFTER } state = VALUE;
    int rc;
    skip_ws(&p);
    for (;;) {
        switch (state) {
        case FIRST_KEY:
            skip_ws(&p);
            if (p.pos < len && p.s[p.pos] == '}') {
                close_container(&p);
                state = AFTER;
                continue;
            }
            /* fall through */
        case KEY:
            skip_ws(&p);
            if (p.pos >= len || p.s[p.pos] != '"')
                return unexpected(&p, state == KEY ? "a string key" : "a string key or '}'");
            d->tok[p.open].count++;
            if ((rc = parse_string(&p)) < 0)
                return rc;
            skip_ws(&p);
            if (p.pos >= len || p.s[p.pos] != ':')
                return unexpected(&p, "':'");
            p.pos++;
            state = VALUE;
            continue;
        case FIRST_VALUE:
            skip_ws(&p);
            if (p.pos < len && p.s[p.pos] == ']') {
                close_container(&p);
                state = AFTER;
                continue;
            }
            /* fall through */
        case VALUE:
            skip_ws(&p);
            if (p.pos >= len)
                return unexpected(&p, "a JSON value");
            if (p.open != NO_PARENT && d->tok[p.open].type == PROTO_JSON_ARRAY)
                d->tok[p.open].count++;
            switch (p.s[p.pos]) {
            case '{':
                rc = open_container(&p, PROTO_JSON_OBJECT);
                state = FIRST_KEY;
                break;
            case '[':
                rc = open_container(&p, PROTO_JSON_ARRAY);
                state = FIRST_VALUE;
                break;
            case '"':
                rc = parse_string(&p);
                state = AFTER;
                break;
            case 't':
                rc = parse_literal(&p, "true", PROTO_JSON_TRUE);
                state = AFTER;
                break;
            case 'f':
                rc = parse_literal(&p, "false", PROTO_JSON_FALSE);
                state = AFTER;
                break;
            case 'n':
                rc = parse_literal(&p, "null", PROTO_JSON_NULL);
                state = AFTER;
                break;
            default:
                if (p.s[p.pos] == '-' || is_digit(p.s[p.pos])) {
                    rc = parse_number(&p);
                    state = AFTER;
                } else {
                    rc = unexpected(&p, "a JSON value");
                }
                break;
            }
            if (rc < 0)
                return rc;
            continue;
        case AFTER:
            skip_ws(&p);
            if (p.open == NO_PARENT) {
                if (p.pos != len)
                    return unexpected(&p, "end of input");
                return 0;
            }
            bool obj = d->tok[p.open].type == PROTO_JSON_OBJECT;
            if (p.pos < len && p.s[p.pos] == ',') {
                p.pos++;
                state = obj ? KEY : VALUE;
            } else if (p.pos < len && p.s[p.pos] == (obj ? '}' : ']')) {
                close_container(&p);
            } else {
                return unexpected(&p, obj ? "',' or '}'" : "',' or ']'");
            }
            continue;
        }
    }
}

/* --- reading tokens --- */

/* Decodes one character of a tokenized (hence valid) string body at s[*i],
 * writing its UTF-8 bytes to b. Returns how many. */
static size_t jstr_char(const uint8_t *s, size_t *i, uint8_t b[4])
{
    uint8_t c = s[*i];
    if (c != '\\') {
        b[0] = c;
        (*i)++;
        return 1;
    }
    uint8_t e = s[*i + 1];
    *i += 2;
    switch (e) {
    case 'b':
        b[0] = '\b';
        return 1;
    case 'f':
        b[0] = '\f';
        return 1;
    case 'n':
        b[0] = '\n';
        return 1;
    case 'r':
        b[0] = '\r';
        return 1;
    case 't':
        b[0] = '\t';
        return 1;
    case 'u': {
        uint32_t cp = (uint32_t)hex4(s + *i);
        *i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo = (uint32_t)hex4(s + *i + 2);
            *i += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        return utf8_put(b, cp);
    }
    default: /* " \ / */
        b[0] = e;
        return 1;
    }
}

static const uint8_t *tok_text(const struct proto_json_doc *d, const struct proto_json_token *t)
{
    return (const uint8_t *)d->text + t->start;
}

/* Decoded length of a STRING token. */
static size_t jstr_len(const struct proto_json_doc *d, const struct proto_json_token *t)
{
    if (!t->escaped)
        return t->len;
    const uint8_t *s = tok_text(d, t);
    size_t i = 0, n = 0;
    uint8_t b[4];
    while (i < t->len)
        n += jstr_char(s, &i, b);
    return n;
}

static bool tok_str_eq(const struct proto_json_doc *d, const struct proto_json_token *t,
                       const char *lit, size_t n)
{
    const uint8_t *s = tok_text(d, t);
    if (!t->escaped)
        return t->len == n && memcmp(s, lit, n) == 0;
    size_t i = 0, k = 0;
    uint8_t b[4];
    while (i < t->len) {
        size_t m = jstr_char(s, &i, b);
        if (k + m > n || memcmp(lit + k, b, m) != 0)
            return false;
        k += m;
    }
    return k == n;
}

int proto_json_string_eq(const struct proto_json_doc *d, uint32_t tok, const char *s)
{
    if (tok >= d->n || d->tok[tok].type != PROTO_JSON_STRING)
        return 0;
    return tok_str_eq(d, &d->tok[tok], s, strlen(s));
}

int proto_json_find(const struct proto_json_doc *d, uint32_t obj, const char *key)
{
    if (obj >= d->n || d->tok[obj].type != PROTO_JSON_OBJECT)
        return -1;
    size_t n = strlen(key);
    uint32_t k = obj + 1;
    for (uint32_t m = 0; m < d->tok[obj].count; m++) {
        if (tok_str_eq(d, &d->tok[k], key, n))
            return (int)(k + 1);
        k = d->tok[k + 1].next;
    }
    return -1;
}

static int put_jstr_body(struct proto_buf *out, const struct proto_json_doc *d,
                         const struct proto_json_token *t)
{
    const uint8_t *s = tok_text(d, t);
    if (!t->escaped)
        return proto_buf_append(out, s, t->len);
    if (proto_buf_reserve(out, t->len) < 0) /* decoded is never longer */
        return PROTO_E_NOMEM;
    size_t i = 0;
    while (i < t->len) {
        /* copy the run up to the next escape in one go */
        size_t j = i;
        while (j < t->len && s[j] != '\\')
            j++;
        memcpy(out->data + out->len, s + i, j - i);
        out->len += j - i;
        i = j;
        if (i < t->len)
            out->len += jstr_char(s, &i, out->data + out->len);
    }
    return 0;
}

int proto_json_string(const struct proto_json_doc *d, uint32_t tok, struct proto_buf *out,
                      struct proto_json_error *err)
{
    if (tok >= d->n || d->tok[tok].type != PROTO_JSON_STRING)
        return set_err(err, PROTO_E_BAD_REQUEST, tok < d->n ? d->tok[tok].start : 0,
                       "JSON token %" PRIu32 " is not a string", tok);
    if (put_jstr_body(out, d, &d->tok[tok]) < 0)
        return set_err(err, PROTO_E_NOMEM, d->tok[tok].start, "out of memory");
    return 0;
}

/* Integer syntax (no fraction or exponent) at s[0..n): 1 with *neg and *mag set if
 * it fits 64 bits of magnitude, 0 otherwise. */
static int parse_integer(const uint8_t *s, size_t n, bool *neg, uint64_t *mag)
{
    size_t i = 0;
    *neg = false;
    if (n > 0 && s[0] == '-') {
        *neg = true;
        i = 1;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i]))
            return 0;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return 0;
        v = v * 10 + dgt;
    }
    *mag = v;
    return 1;
}

int proto_json_int64(const struct proto_json_doc *d, uint32_t tok, int64_t *out)
{
    if (tok >= d->n || d->tok[tok].type != PROTO_JSON_NUMBER)
        return PROTO_E_BAD_REQUEST;
    bool neg;
    uint64_t mag;
    if (!parse_integer(tok_text(d, &d->tok[tok]), d->tok[tok].len, &neg, &mag))
        return PROTO_E_BAD_REQUEST;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return PROTO_E_BAD_REQUEST;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > INT64_MAX)
            return PROTO_E_BAD_REQUEST;
        *out = (int64_t)mag;
    }
    return 0;
}

/* The radix character printf and strtod use in the current locale. */
static char locale_radix(void)
{
    char b[8];
    snprintf(b, sizeof b, "%.1f", 0.5);
    return b[1];
}

/* strtod over s[0..n) (JSON number syntax). 0, 1 if out of range, or a
 * negative code. */
static int parse_double(const uint8_t *s, size_t n, double *out)
{
    char small[128];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return PROTO_E_NOMEM;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + n) { /* a locale whose radix is not '.' */
        char *dot = strchr(buf, '.');
        if (dot)
            *dot = locale_radix();
        v = strtod(buf, &end);
    }
    int rc = end == buf + n ? 0 : PROTO_E_INTERNAL;
    if (buf != small)
        free(buf);
    if (rc == 0 && (v == HUGE_VAL || v == -HUGE_VAL))
        rc = 1;
    *out = v;
    return rc;
}

/* --- base64 (RFC 4648, standard alphabet, padded) --- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int b64_encode(struct proto_buf *out, const uint8_t *p, size_t n)
{
    size_t need = (n + 2) / 3 * 4;
    if (proto_buf_reserve(out, need) < 0)
        return PROTO_E_NOMEM;
    uint8_t *o = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = (uint8_t)b64_chars[v >> 18];
        *o++ = (uint8_t)b64_chars[v >> 12 & 63];
        *o++ = (uint8_t)b64_chars[v >> 6 & 63];
        *o++ = (uint8_t)b64_chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = (uint8_t)b64_chars[v >> 18];
        *o++ = (uint8_t)b64_chars[v >> 12 & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = (uint8_t)b64_chars[v >> 18];
        *o++ = (uint8_t)b64_chars[v >> 12 & 63];
        *o++ = (uint8_t)b64_chars[v >> 6 & 63];
        *o++ = '=';
    }
    out->len += need;
    return 0;
}

/* Decodes the (JSON-escaped) base64 in STRING token t. With out NULL only
 * checks it and stores the decoded size in *size. Returns 0, or -1 if it is
 * not canonical padded base64 (so every accepted text is exactly what
 * b64_encode would write for its bytes). */
static int b64_decode_tok(const struct proto_json_doc *d, const struct proto_json_token *t,
                          uint8_t *out, size_t *size)
{
    const uint8_t *s = tok_text(d, t);
    size_t i = 0, n = 0, pad = 0, chars = 0;
    uint32_t acc = 0;
    uint8_t b[4];
    while (i < t->len) {
        size_t m = jstr_char(s, &i, b);
        if (m != 1)
            return -1;
        if (b[0] == '=') {
            pad++;
            chars++;
            continue;
        }
        int v = b64_val(b[0]);
        if (v < 0 || pad > 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        chars++;
        if (chars % 4 == 0) {
            if (out) {
                out[n] = (uint8_t)(acc >> 16);
                out[n + 1] = (uint8_t)(acc >> 8);
                out[n + 2] = (uint8_t)acc;
            }
            n += 3;
            acc = 0;
        }
    }
    if (chars % 4 != 0 || pad > 2)
        return -1;
    if (pad) {
        /* the last quantum had 4 - pad characters in acc */
        size_t bits = (4 - pad) * 6;
        size_t bytes = pad == 1 ? 2 : 1;
        uint32_t extra = (uint32_t)(bits - bytes * 8);
        if (acc & ((1u << extra) - 1))
            return -1; /* non-zero padding bits: not canonical */
        acc >>= extra;
        if (out) {
            if (bytes == 2) {
                out[n] = (uint8_t)(acc >> 8);
                out[n + 1] = (uint8_t)acc;
            } else {
                out[n] = (uint8_t)acc;
            }
        }
        n += bytes;
    }
    *size = n;
    return 0;
}

/* --- JSON -> msgpack --- */

static const struct proto_json_opts default_opts = {PROTO_JSON_BIN_MARKER, 0, NULL, 0, 0};

/* MARKER: {"$bin": "<base64>"} exactly. Sets *size on a match. */
static bool is_marker(const struct proto_json_doc *d, uint32_t i, size_t *size)
{
    const struct proto_json_token *t = &d->tok[i];
    if (t->count != 1 || d->tok[i + 2].type != PROTO_JSON_STRING)
        return false;
    if (!tok_str_eq(d, &d->tok[i + 1], "$bin", 4))
        return false;
    return b64_decode_tok(d, &d->tok[i + 2], NULL, size) == 0;
}

/* PLACEHOLDER: {"_placeholder": true, "num": N} exactly (either order).
 * Returns 1 on a match with *num set, 0 if it is an ordinary object, or
 * -1 if it is a placeholder whose num is an integer out of range. */
static int is_placeholder(const struct proto_json_doc *d, uint32_t i,
                          const struct proto_json_opts *o, uint32_t *num)
{
    const struct proto_json_token *t = &d->tok[i];
    if (t->count != 2)
        return 0;
    /* Members are key, scalar value: tokens i+1..i+4 when both values are
     * scalars, which a match needs anyway. */
    uint32_t k1 = i + 1, k2 = d->tok[k1 + 1].next;
    if (k2 + 1 >= d->n)
        return 0;
    uint32_t kp, kn;
    if (tok_str_eq(d, &d->tok[k1], "_placeholder", 12) && tok_str_eq(d, &d->tok[k2], "num", 3)) {
        kp = k1;
        kn = k2;
    } else if (tok_str_eq(d, &d->tok[k1], "num", 3) &&
               tok_str_eq(d, &d->tok[k2], "_placeholder", 12)) {
        kp = k2;
        kn = k1;
    } else {
        return 0;
    }
    if (d->tok[kp + 1].type != PROTO_JSON_TRUE || d->tok[kn + 1].type != PROTO_JSON_NUMBER)
        return 0;
    bool neg;
    uint64_t mag;
    const struct proto_json_token *nt = &d->tok[kn + 1];
    if (!parse_integer(tok_text(d, nt), nt->len, &neg, &mag))
        return 0; /* not an integer: an ordinary object */
    if ((neg && mag != 0) || mag >= o->n_attachments || !o->attachments)
        return -1;
    *num = (uint32_t)mag;
    return 1;
}

static int number_to_msgpack(const struct proto_json_doc *d, const struct proto_json_token *t,
                             struct proto_buf *out, struct proto_json_error *err)
{
    const uint8_t *s = tok_text(d, t);
    bool neg;
    uint64_t mag;
    int rc;
    if (parse_integer(s, t->len, &neg, &mag)) {
        if (!neg)
            rc = mag <= INT64_MAX ? proto_mp_put_int(out, (int64_t)mag)
                                  : proto_mp_put_uint(out, mag);
        else if (mag <= (uint64_t)INT64_MAX)
            rc = proto_mp_put_int(out, -(int64_t)mag);
        else if (mag == (uint64_t)INT64_MAX + 1)
            rc = proto_mp_put_int(out, INT64_MIN);
        else
            goto as_double;
        return rc < 0 ? set_err(err, rc, t->start, "out of memory") : 0;
    }
as_double:;
    double v;
    rc = parse_double(s, t->len, &v);
    if (rc == 1)
        return set_err(err, PROTO_E_BAD_FRAME, t->start,
                       "number at offset %" PRIu32 " is too large for a double", t->start);
    if (rc < 0)
        return set_err(err, rc, t->start, "cannot parse the number at offset %" PRIu32, t->start);
    rc = proto_mp_put_double(out, v);
    return rc < 0 ? set_err(err, rc, t->start, "out of memory") : 0;
}

int proto_json_to_msgpack_tok(const struct proto_json_doc *d, uint32_t tok, struct proto_buf *out,
                              const struct proto_json_opts *opts, struct proto_json_error *err)
{
    const struct proto_json_opts *o = opts ? opts : &default_opts;
    if (tok >= d->n)
        return set_err(err, PROTO_E_INTERNAL, 0, "JSON token %" PRIu32 " does not exist", tok);
    size_t saved = out->len;
    uint32_t end = d->tok[tok].next;
    int rc = 0;
    for (uint32_t i = tok; i < end && rc == 0;) {
        const struct proto_json_token *t = &d->tok[i];
        switch (t->type) {
        case PROTO_JSON_NULL:
            rc = proto_mp_put_nil(out);
            i++;
            break;
        case PROTO_JSON_TRUE:
        case PROTO_JSON_FALSE:
            rc = proto_mp_put_bool(out, t->type == PROTO_JSON_TRUE);
            i++;
            break;
        case PROTO_JSON_NUMBER:
            rc = number_to_msgpack(d, t, out, err);
            if (rc < 0)
                goto fail; /* err already set */
            i++;
            break;
        case PROTO_JSON_STRING: {
            size_t n = jstr_len(d, t);
            rc = proto_mp_put_str_header(out, (uint32_t)n);
            if (rc == 0)
                rc = put_jstr_body(out, d, t);
            i++;
            break;
        }
        case PROTO_JSON_ARRAY:
            rc = proto_mp_put_array(out, t->count);
            i++;
            break;
        case PROTO_JSON_OBJECT: {
            size_t size;
            uint32_t num;
            if (o->bin == PROTO_JSON_BIN_MARKER && is_marker(d, i, &size)) {
                rc = proto_mp_put_bin_header(out, (uint32_t)size);
                if (rc == 0)
                    rc = proto_buf_reserve(out, size);
                if (rc == 0) {
                    b64_decode_tok(d, &d->tok[i + 2], out->data + out->len, &size);
                    out->len += size;
                }
                i = t->next;
                break;
            }
            if (o->bin == PROTO_JSON_BIN_PLACEHOLDER) {
                int m = is_placeholder(d, i, o, &num);
                if (m < 0) {
                    rc = set_err(err, PROTO_E_BAD_FRAME, t->start,
                                 "placeholder at offset %" PRIu32 " has a num out of range "
                                 "(%" PRIu32 " attachments)",
                                 t->start, o->n_attachments);
                    goto fail;
                }
                if (m > 0) {
                    const struct proto_span *a = &o->attachments[num];
                    rc = proto_mp_put_bin(out, a->ptr, a->len);
                    i = t->next;
                    break;
                }
            }
            rc = proto_mp_put_map(out, t->count);
            i++;
            break;
        }
        default:
            rc = set_err(err, PROTO_E_INTERNAL, t->start, "bad JSON token type %u", t->type);
            goto fail;
        }
    }
    if (rc < 0) {
        set_err(err, PROTO_E_NOMEM, 0, "out of memory");
        goto fail;
    }
    return 0;
fail:
    out->len = saved;
    return rc;
}

int proto_json_to_msgpack(struct proto_json_doc *doc, const char *text, size_t len,
                          struct proto_buf *out, const struct proto_json_opts *opts,
                          struct proto_json_error *err)
{
    const struct proto_json_opts *o = opts ? opts : &default_opts;
    int rc = proto_json_parse(doc, text, len, o->max_depth, err);
    if (rc < 0)
        return rc;
    return proto_json_to_msgpack_tok(doc, 0, out, o, err);
}

/* --- msgpack -> JSON --- */

static int put_lit(struct proto_buf *out, const char *s)
{
    return proto_buf_append(out, s, strlen(s));
}

/* Decimal digits of v, as "%" PRIu64 writes them (with a '-' first when
 * neg): no snprintf per number, which was the cost of a small payload. */
static int put_u64(struct proto_buf *out, uint64_t v, bool neg)
{
    char b[21];
    size_t i = sizeof b;

    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        b[--i] = '-';
    return proto_buf_append(out, b + i, sizeof b - i);
}

/* A JSON string of s[0..n), after checking it is UTF-8 (base: offset of s
 * in the msgpack input, for the error). Escapes like JSON.stringify: the
 * quote, the backslash, \b \t \n \f \r, other controls as \u00xx; every
 * other byte as is. */
static int put_json_string(struct proto_buf *out, const uint8_t *s, size_t n, size_t base,
                           struct proto_json_error *err)
{
    static const char hex[] = "0123456789abcdef";
    if (proto_buf_append_byte(out, '"') < 0)
        return PROTO_E_NOMEM;
    size_t i = 0, run = 0;
    while (i < n) {
        i += plain_run(s + i, n - i);
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c >= 0x80) {
            size_t m = proto_utf8_seq(s + i, n - i);
            if (m == 0)
                return set_err(err, PROTO_E_NOT_JSON, base + i,
                               "invalid UTF-8 in string at offset %zu", base + i);
            i += m;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (proto_buf_append(out, s + run, i - run) < 0)
            return PROTO_E_NOMEM;
        char e[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\t':
            e[1] = 't';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '\r':
            e[1] = 'r';
            break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        }
        if (proto_buf_append(out, e, el) < 0)
            return PROTO_E_NOMEM;
        run = ++i;
    }
    if (proto_buf_append(out, s + run, n - run) < 0 || proto_buf_append_byte(out, '"') < 0)
        return PROTO_E_NOMEM;
    return 0;
}

/* Shortest text that reads back to the same value, laid out the way
 * JavaScript's Number.prototype.toString lays it out (plain digits for
 * decimal exponents -7 < e < 21, else d.ddde+X), plus ".0" on anything
 * that would otherwise read as an integer. */
static int put_float(struct proto_buf *out, double v, bool single)
{
    char b[48];
    int len = 0;
    for (int prec = 1; prec <= (single ? 9 : 17); prec++) {
        len = snprintf(b, sizeof b, "%.*e", prec - 1, v);
        if (single ? strtof(b, NULL) == (float)v : strtod(b, NULL) == v)
            break;
    }
    /* b is [-]d[<radix>ddd]e<sign>dd; the radix depends on the locale,
     * so read digits and exponent without caring what it is. */
    char digits[24];
    int k = 0, i = 0;
    bool neg = b[0] == '-';
    for (; i < len && b[i] != 'e'; i++)
        if (b[i] >= '0' && b[i] <= '9')
            digits[k++] = b[i];
    int exp10 = atoi(b + i + 1);
    while (k > 1 && digits[k - 1] == '0')
        k--;
    int n = exp10 + 1; /* position of the decimal point relative to the digits */

    char o[64];
    int w = 0;
    if (neg)
        o[w++] = '-';
    if (k <= n && n <= 21) {
        memcpy(o + w, digits, (size_t)k);
        w += k;
        for (int z = k; z < n; z++)
            o[w++] = '0';
        o[w++] = '.';
        o[w++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o + w, digits, (size_t)n);
        w += n;
        o[w++] = '.';
        memcpy(o + w, digits + n, (size_t)(k - n));
        w += k - n;
    } else if (-6 < n && n <= 0) {
        o[w++] = '0';
        o[w++] = '.';
        for (int z = 0; z < -n; z++)
            o[w++] = '0';
        memcpy(o + w, digits, (size_t)k);
        w += k;
    } else {
        o[w++] = digits[0];
        if (k > 1) {
            o[w++] = '.';
            memcpy(o + w, digits + 1, (size_t)(k - 1));
            w += k - 1;
        }
        w += snprintf(o + w, sizeof o - (size_t)w, "e%c%d", n - 1 < 0 ? '-' : '+',
                      n - 1 < 0 ? 1 - n : n - 1);
    }
    return proto_buf_append(out, o, (size_t)w);
}

struct level {
    uint32_t left;  /* items (maps: pairs) not yet started */
    uint32_t count; /* items (pairs) in all */
    uint8_t map;
};

int proto_msgpack_to_json(const void *data, size_t len, struct proto_buf *out,
                          struct proto_json_opts *opts, struct proto_json_error *err)
{
    struct proto_json_opts def = default_opts;
    struct proto_json_opts *o = opts ? opts : &def;
    uint32_t first_attachment = o->n_attachments;
    size_t saved = out->len;
    const uint8_t *base = data;
    int rc;

    struct proto_limits lim = {0, depth_limit(o->max_depth), INT32_MAX};
    size_t used = 0;
    const char *why = NULL;
    if (proto_mp_validate(data, len, &lim, &used, &why) < 0)
        return set_err(err, PROTO_E_BAD_FRAME, 0, "bad msgpack: %s", why);
    if (used != len)
        return set_err(err, PROTO_E_BAD_FRAME, used, "trailing bytes after the value at offset %zu",
                       used);

    struct level stack[PROTO_HARD_MAX_DEPTH];
    uint32_t depth = 0;
    struct proto_mp_cursor c;
    struct proto_mp_value v;
    proto_mp_cursor_init(&c, data, len);
    do {
        /* separators, and the key rule */
        bool is_key = false;
        if (depth > 0) {
            struct level *l = &stack[depth - 1];
            /* a map's pair is started at its key; its value needs ':' */
            if (l->map && l->left & 0x80000000u) {
                l->left &= ~0x80000000u;
                rc = proto_buf_append_byte(out, ':');
            } else {
                rc = l->left != l->count ? proto_buf_append_byte(out, ',') : 0;
                l->left--;
                if (l->map) {
                    is_key = true;
                    l->left |= 0x80000000u; /* value pending */
                }
            }
            if (rc < 0)
                goto nomem;
        }
        size_t at = (size_t)(c.pos - base);
        proto_mp_next(&c, &v); /* validated: cannot fail */
        if (is_key && v.type != PROTO_MP_STR) {
            rc = set_err(err, PROTO_E_NOT_JSON, at, "map key must be a string (offset %zu)", at);
            goto fail;
        }
        switch (v.type) {
        case PROTO_MP_NIL:
            rc = put_lit(out, "null");
            break;
        case PROTO_MP_BOOL:
            rc = put_lit(out, v.v.b ? "true" : "false");
            break;
        case PROTO_MP_INT:
            /* The magnitude as unsigned: -INT64_MIN does not fit int64. */
            rc = v.v.i < 0 ? put_u64(out, (uint64_t)0 - (uint64_t)v.v.i, true)
                           : put_u64(out, (uint64_t)v.v.i, false);
            break;
        case PROTO_MP_UINT:
            rc = put_u64(out, v.v.u, false);
            break;
        case PROTO_MP_FLOAT32:
        case PROTO_MP_FLOAT64:
            if (v.v.f != v.v.f || v.v.f - v.v.f != 0) {
                rc = set_err(err, PROTO_E_NOT_JSON, at, "%s at offset %zu has no JSON form",
                             v.v.f != v.v.f ? "NaN" : "Infinity", at);
                goto fail;
            }
            rc = put_float(out, v.v.f, v.type == PROTO_MP_FLOAT32);
            break;
        case PROTO_MP_STR:
            rc = put_json_string(out, v.v.str.ptr, v.v.str.len, (size_t)(v.v.str.ptr - base), err);
            if (rc == PROTO_E_NOT_JSON)
                goto fail;
            break;
        case PROTO_MP_BIN:
            /* Its JSON stand-in is an object: one level deeper than the
             * bin itself, and the way back must not exceed max_depth. */
            if (o->bin != PROTO_JSON_BIN_REJECT && depth + 1 > lim.max_depth) {
                rc = set_err(err, PROTO_E_BAD_FRAME, at,
                             "binary at offset %zu would nest deeper than max_depth %" PRIu32
                             " as JSON",
                             at, lim.max_depth);
                goto fail;
            }
            if (o->bin == PROTO_JSON_BIN_MARKER) {
                rc = put_lit(out, "{\"$bin\":\"");
                if (rc == 0)
                    rc = b64_encode(out, v.v.str.ptr, v.v.str.len);
                if (rc == 0)
                    rc = put_lit(out, "\"}");
            } else if (o->bin == PROTO_JSON_BIN_PLACEHOLDER) {
                if (o->n_attachments >= o->max_attachments || !o->attachments) {
                    rc = set_err(err, PROTO_E_LIMIT_EXCEEDED, at,
                                 "more than %" PRIu32 " binary attachments (offset %zu)",
                                 o->max_attachments, at);
                    goto fail;
                }
                o->attachments[o->n_attachments] = v.v.str;
                rc = put_lit(out, "{\"_placeholder\":true,\"num\":");
                if (rc == 0)
                    rc = put_u64(out, o->n_attachments++, false);
                if (rc == 0)
                    rc = proto_buf_append_byte(out, '}');
            } else {
                rc =
                    set_err(err, PROTO_E_NOT_JSON, at, "binary at offset %zu has no JSON form", at);
                goto fail;
            }
            break;
        case PROTO_MP_EXT:
            rc = set_err(err, PROTO_E_NOT_JSON, at, "ext type %d at offset %zu has no JSON form",
                         v.ext_type, at);
            goto fail;
        case PROTO_MP_ARRAY:
        case PROTO_MP_MAP:
            rc = proto_buf_append_byte(out, v.type == PROTO_MP_MAP ? '{' : '[');
            if (rc == 0 && v.v.count > 0) {
                /* count < 2^31: each element takes a byte, and len < 4 GiB
                 * leaves the top bit free for the pending-value flag */
                stack[depth].left = stack[depth].count = v.v.count;
                stack[depth].map = v.type == PROTO_MP_MAP;
                depth++;
                continue;
            }
            if (rc == 0)
                rc = proto_buf_append_byte(out, v.type == PROTO_MP_MAP ? '}' : ']');
            break;
        }
        if (rc < 0)
            goto nomem;
        /* close every container that is now complete */
        while (depth > 0 && stack[depth - 1].left == 0) {
            depth--;
            if (proto_buf_append_byte(out, stack[depth].map ? '}' : ']') < 0)
                goto nomem;
        }
    } while (depth > 0);
    return 0;

nomem:
    rc = set_err(err, PROTO_E_NOMEM, 0, "out of memory");
fail:
    out->len = saved;
    o->n_attachments = first_attachment;
    return rc;
}

int proto_json_put_string(struct proto_buf *out, const char *s, size_t len)
{
    size_t before = out->len;
    int rc = put_json_string(out, (const uint8_t *)s, len, 0, NULL);
    if (rc < 0)
        out->len = before;
    return rc;
}
