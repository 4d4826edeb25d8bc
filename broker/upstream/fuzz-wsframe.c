/* libFuzzer target for the WebSocket frame parser (wsframe.c).
 *
 * The input's first byte picks the size limit and a chunk size; the rest
 * is the byte stream from a "server". It is parsed twice, whole and in
 * chunks (the way a transport feeds what each read brought, keeping what
 * was not consumed), and the two event sequences must be identical. Every
 * event must respect the contract: nothing consumed beyond the input, no
 * message over the limit, text messages and Close reasons valid UTF-8,
 * control payloads at most 125 bytes, a NEED_MORE `need` larger than what
 * is there, errors sticky with a Close code of 1002, 1007 or 1009.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/wsframe.h"

#define MAX_EVENTS 256

struct trace {
    enum wsframe_kind kind[MAX_EVENTS];
    size_t len[MAX_EVENTS];
    uint32_t sum[MAX_EVENTS]; /* a checksum of the payload */
    uint16_t code[MAX_EVENTS];
    size_t n;
};

static uint32_t checksum(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void check_event(const struct wsframe_event *ev, size_t max_message)
{
    switch (ev->kind) {
    case WSFRAME_MESSAGE:
        if (ev->len > max_message || (!ev->binary && !wsframe_utf8_valid(ev->data, ev->len)))
            abort();
        break;
    case WSFRAME_PING:
    case WSFRAME_PONG:
        if (ev->len > WSFRAME_MAX_CONTROL)
            abort();
        break;
    case WSFRAME_CLOSE:
        if (ev->len > WSFRAME_MAX_CONTROL - 2 || !wsframe_utf8_valid(ev->data, ev->len))
            abort();
        if (ev->code != WSFRAME_CLOSE_NO_STATUS && !wsframe_close_code_valid(ev->code))
            abort();
        break;
    case WSFRAME_ERROR:
        if (!ev->error ||
            (ev->code != 1002 && ev->code != 1007 && ev->code != 1009 && ev->code != 1011))
            abort();
        break;
    case WSFRAME_NEED_MORE:
        break;
    }
}

/* Parses data[0..len) arriving `chunk` bytes at a time (0: all at once). */
static void run(const uint8_t *data, size_t len, size_t chunk, size_t max_message, struct trace *t)
{
    struct wsframe_parser *p = wsframe_parser_new(max_message);
    uint8_t *buf = malloc(len + 1);
    size_t have = 0, used = 0, from = 0;
    bool failed = false;

    if (!p || !buf)
        abort();
    t->n = 0;
    while (from < len && !failed) {
        size_t n = chunk && len - from > chunk ? chunk : len - from;

        memcpy(buf + have, data + from, n);
        have += n;
        from += n;
        for (;;) {
            struct wsframe_event ev;
            size_t took = wsframe_parse(p, buf + used, have - used, &ev);

            if (took > have - used)
                abort();
            used += took;
            check_event(&ev, max_message);
            if (ev.kind == WSFRAME_NEED_MORE) {
                if (ev.need && ev.need <= have - used)
                    abort();
                break;
            }
            if (t->n < MAX_EVENTS) {
                t->kind[t->n] = ev.kind;
                t->len[t->n] = ev.len;
                t->sum[t->n] = checksum(ev.data, ev.len);
                t->code[t->n] = ev.code;
                t->n++;
            }
            if (ev.kind == WSFRAME_ERROR) {
                struct wsframe_event again;
                if (wsframe_parse(p, buf, have, &again) != 0 || again.kind != WSFRAME_ERROR ||
                    again.code != ev.code)
                    abort(); /* errors are sticky */
                failed = true;
                break;
            }
        }
    }
    wsframe_parser_free(p);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct trace whole, chunked;
    static const size_t limits[4] = {16, 300, 70000, 1u << 20};
    size_t max_message, chunk;

    if (size < 1)
        return 0;
    max_message = limits[data[0] & 3];
    chunk = (size_t)(data[0] >> 2) + 1; /* 1..64 */
    data++;
    size--;
    run(data, size, 0, max_message, &whole);
    run(data, size, chunk, max_message, &chunked);
    if (whole.n != chunked.n)
        abort();
    for (size_t i = 0; i < whole.n; i++) {
        if (whole.kind[i] != chunked.kind[i] || whole.len[i] != chunked.len[i] ||
            whole.sum[i] != chunked.sum[i] || whole.code[i] != chunked.code[i])
            abort();
    }
    return 0;
}
