#include "text.h"

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
