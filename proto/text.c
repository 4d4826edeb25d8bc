#include "text.h"

size_t proto_utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

bool proto_utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = proto_utf8_seq(s + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

bool proto_name_valid(const uint8_t *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n;) {
        size_t k = proto_utf8_seq(s + i, n - i);
        if (!k)
            return false;
        if (k == 1 && (s[i] < 0x20 || s[i] == 0x7f))
            return false;
        /* C1 controls, U+0080..U+009F: 0xc2 0x80..0x9f */
        if (k == 2 && s[i] == 0xc2 && s[i + 1] <= 0x9f)
            return false;
        i += k;
    }
    return true;
}

size_t proto_json_str_size(const uint8_t *s, size_t n)
{
    size_t size = n + 2;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            size += 1;
        else if (s[i] < 0x20)
            size += 5;
    }
    return size;
}
