#include "value.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "proto/errors.h"
#include "proto/json.h"
#include "util.h"

int value_from_text(const char *text, size_t len, struct proto_buf *out, char *err, size_t size)
{
    struct proto_json_doc doc;
    struct proto_json_error je = {0};
    int rc;

    proto_json_doc_init(&doc);
    rc = proto_json_to_msgpack(&doc, text, len, out, NULL, &je);
    proto_json_doc_free(&doc);
    if (rc < 0)
        snprintf(err, size, "not JSON: %s", je.text[0] ? je.text : proto_error_text(rc));
    return rc;
}

/* Reads all of fd into buf, at most VALUE_MAX_INPUT bytes. 0 or -errno
 * (-EFBIG when there is more). */
static int read_all(int fd, struct proto_buf *buf)
{
    for (;;) {
        ssize_t n;
        if (proto_buf_reserve(buf, 65536) < 0)
            return -ENOMEM;
        n = read(fd, buf->data + buf->len, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        buf->len += (size_t)n;
        if (buf->len > VALUE_MAX_INPUT)
            return -EFBIG;
    }
}

int value_from_arg(const char *arg, struct proto_buf *out, char *err, size_t size)
{
    struct proto_buf text = PROTO_BUF_INIT;
    const char *from = NULL;
    char why[200];
    int fd = -1, rc;

    if (strcmp(arg, "-") == 0) {
        from = "stdin";
        fd = STDIN_FILENO;
    } else if (arg[0] == '@') {
        from = arg + 1;
        fd = open(from, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, size, "cannot read %s: %s", from, strerror(errno));
            return PROTO_E_BAD_REQUEST;
        }
    }
    if (!from)
        return value_from_text(arg, strlen(arg), out, err, size);
    rc = read_all(fd, &text);
    if (fd != STDIN_FILENO)
        close(fd);
    if (rc < 0) {
        snprintf(err, size, "cannot read %s: %s", from,
                 rc == -EFBIG ? "more than 16 MiB" : strerror(-rc));
        proto_buf_free(&text);
        return PROTO_E_BAD_REQUEST;
    }
    rc = value_from_text((const char *)text.data, text.len, out, why, sizeof(why));
    if (rc < 0)
        snprintf(err, size, "%s: %s", from, why);
    proto_buf_free(&text);
    return rc;
}

int value_to_json(const void *data, size_t len, struct proto_buf *out, char *err, size_t size)
{
    struct proto_json_error je = {0};
    int rc = proto_msgpack_to_json(data, len, out, NULL, &je);

    if (rc < 0)
        snprintf(err, size, "%s", je.text[0] ? je.text : proto_error_text(rc));
    return rc;
}

static int newline(struct proto_buf *out, int depth)
{
    int rc = proto_buf_append_byte(out, '\n');

    for (int i = 0; i < depth && rc == 0; i++)
        rc = proto_buf_append(out, "  ", 2);
    return rc;
}

int value_indent(const char *json, size_t len, struct proto_buf *out)
{
    int depth = 0, rc = 0;
    bool in_str = false;

    for (size_t i = 0; i < len && rc == 0; i++) {
        char c = json[i];
        if (in_str) {
            rc = proto_buf_append_byte(out, (uint8_t)c);
            if (c == '\\' && i + 1 < len)
                rc |= proto_buf_append_byte(out, (uint8_t)json[++i]);
            else if (c == '"')
                in_str = false;
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            rc = proto_buf_append_byte(out, '"');
            break;
        case '{':
        case '[':
            rc = proto_buf_append_byte(out, (uint8_t)c);
            if (i + 1 < len && (json[i + 1] == '}' || json[i + 1] == ']')) {
                rc |= proto_buf_append_byte(out, (uint8_t)json[++i]);
                break;
            }
            rc |= newline(out, ++depth);
            break;
        case '}':
        case ']':
            rc = newline(out, --depth);
            rc |= proto_buf_append_byte(out, (uint8_t)c);
            break;
        case ',':
            rc = proto_buf_append_byte(out, ',');
            rc |= newline(out, depth);
            break;
        case ':':
            rc = proto_buf_append(out, ": ", 2);
            break;
        default:
            rc = proto_buf_append_byte(out, (uint8_t)c);
        }
    }
    return rc ? PROTO_E_NOMEM : 0;
}

int value_print(FILE *f, const void *data, size_t len, bool pretty)
{
    struct proto_buf text = PROTO_BUF_INIT, ind = PROTO_BUF_INIT;
    char err[160];
    int rc = value_to_json(data, len, &text, err, sizeof(err));

    if (rc < 0) {
        inspect_error("cannot show the answer as JSON: %s", err);
    } else if (pretty && (rc = value_indent((const char *)text.data, text.len, &ind)) == 0) {
        fwrite(ind.data, 1, ind.len, f);
        fputc('\n', f);
    } else if (rc == 0) {
        fwrite(text.data, 1, text.len, f);
        fputc('\n', f);
    }
    fflush(f);
    proto_buf_free(&text);
    proto_buf_free(&ind);
    return rc < 0 ? -1 : 0;
}
