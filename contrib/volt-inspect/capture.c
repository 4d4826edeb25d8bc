#include "capture.h"

#include "proto/msgpack.h"

#include <errno.h>
#include <string.h>

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

int capture_write_header(FILE *f)
{
    uint8_t h[12];

    memcpy(h, CAPTURE_MAGIC, 8);
    put_u16(h + 8, CAPTURE_VERSION);
    put_u16(h + 10, 0);
    if (fwrite(h, 1, sizeof(h), f) != sizeof(h) || fflush(f) != 0)
        return -(errno ? errno : EIO);
    return 0;
}

int capture_write(FILE *f, const struct trace_ev *ev)
{
    size_t name_len = ev->name ? strlen(ev->name) : 0;
    uint8_t h[4 + CAPTURE_FIXED];

    if (name_len > 65535)
        name_len = 65535;
    if (ev->len > CAPTURE_MAX_RECORD - CAPTURE_FIXED - name_len)
        return -EFBIG;
    put_u32(h, (uint32_t)(CAPTURE_FIXED + name_len + ev->len));
    put_u64(h + 4, ev->time_us);
    h[12] = ev->kind;
    h[13] = ev->side;
    h[14] = ev->dir;
    h[15] = (uint8_t)((ev->pid >= 0 ? 1 : 0) | (ev->uid >= 0 ? 2 : 0));
    put_u64(h + 16, ev->peer);
    put_u32(h + 24, ev->pid >= 0 ? (uint32_t)ev->pid : 0);
    put_u32(h + 28, ev->uid >= 0 ? (uint32_t)ev->uid : 0);
    put_u16(h + 32, (uint16_t)name_len);
    errno = 0;
    if (fwrite(h, 1, sizeof(h), f) != sizeof(h) ||
        (name_len && fwrite(ev->name, 1, name_len, f) != name_len) ||
        (ev->len && fwrite(ev->data, 1, ev->len, f) != ev->len) || fflush(f) != 0)
        return -(errno ? errno : EIO);
    return 0;
}

int capture_read_header(FILE *f, char *err, size_t size)
{
    uint8_t h[12];
    uint16_t version, extra;

    if (fread(h, 1, sizeof(h), f) != sizeof(h) || memcmp(h, CAPTURE_MAGIC, 8) != 0) {
        snprintf(err, size, "not a volt-inspect capture file (no VOLTCAP header)");
        return -1;
    }
    version = get_u16(h + 8);
    extra = get_u16(h + 10);
    if (version != CAPTURE_VERSION) {
        snprintf(err, size, "capture format version %u; this volt-inspect reads version %u",
                 version, CAPTURE_VERSION);
        return -1;
    }
    for (unsigned i = 0; i < extra; i++) {
        if (fgetc(f) == EOF) {
            snprintf(err, size, "the capture header is truncated");
            return -1;
        }
    }
    return 0;
}

int capture_read(FILE *f, struct proto_buf *rec, struct trace_ev *ev, char *err, size_t size)
{
    uint8_t lenb[4];
    size_t got = fread(lenb, 1, 4, f);
    uint32_t len;
    uint16_t name_len;
    const uint8_t *p;
    long at = ftell(f);

    if (got == 0 && feof(f))
        return 0;
    if (got != 4) {
        snprintf(err, size, "truncated record at byte %ld", at);
        return -1;
    }
    len = get_u32(lenb);
    if (len < CAPTURE_FIXED || len > CAPTURE_MAX_RECORD) {
        snprintf(err, size, "a record of %u bytes at byte %ld cannot be right", len, at - 4);
        return -1;
    }
    /* Read as it comes: a length that lies costs no more memory than
     * the bytes that are really there. */
    proto_buf_reset(rec);
    while (rec->len < len) {
        size_t want = len - rec->len < (1u << 20) ? len - rec->len : (1u << 20);
        if (proto_buf_reserve(rec, want) < 0) {
            snprintf(err, size, "out of memory");
            return -1;
        }
        if (fread(rec->data + rec->len, 1, want, f) != want) {
            snprintf(err, size, "truncated record at byte %ld", at - 4);
            return -1;
        }
        rec->len += want;
    }
    p = rec->data;
    name_len = get_u16(p + 28);
    if ((uint32_t)name_len > len - CAPTURE_FIXED || p[8] < TRACE_FRAME || p[8] > TRACE_ERROR ||
        p[9] > TRACE_UPSTREAM || p[10] > TRACE_OUT) {
        snprintf(err, size, "a bad record at byte %ld", at - 4);
        return -1;
    }
    if (proto_buf_reserve(rec, (size_t)name_len + 1) < 0) {
        snprintf(err, size, "out of memory");
        return -1;
    }
    p = rec->data;
    memset(ev, 0, sizeof(*ev));
    ev->time_us = get_u64(p);
    ev->kind = p[8];
    ev->side = p[9];
    ev->dir = p[10];
    ev->peer = get_u64(p + 12);
    ev->pid = (p[11] & 1) ? (long long)get_u32(p + 20) : -1;
    ev->uid = (p[11] & 2) ? (long long)get_u32(p + 24) : -1;
    /* The name is copied after the record so it can end with a NUL. */
    memcpy(rec->data + len, p + CAPTURE_FIXED, name_len);
    rec->data[len + name_len] = '\0';
    ev->name = (const char *)rec->data + len;
    ev->data = p + CAPTURE_FIXED + name_len;
    ev->len = len - CAPTURE_FIXED - name_len;
    /* A frame is checked as the live paths check theirs (a reader did it
     * there): a local one is one msgpack map with string keys, an
     * upstream one one msgpack value; a file can hold anything. */
    if (ev->kind == TRACE_FRAME && ev->len) {
        const char *why = NULL;
        size_t used = 0;
        int rc = ev->side == TRACE_LOCAL
                     ? proto_mp_validate_frame(ev->data, ev->len, NULL, &why, NULL)
                     : proto_mp_validate(ev->data, ev->len, NULL, &used, &why);
        if (rc < 0 || (ev->side == TRACE_UPSTREAM && used != ev->len)) {
            snprintf(err, size, "the frame of the record at byte %ld is not valid: %s", at - 4,
                     why ? why : "bytes after the value");
            return -1;
        }
    }
    return 1;
}
