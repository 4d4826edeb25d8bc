#include "credstore.h"

#include "util/secret.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CREDSTORE_MAX_DIR_BYTES 4000
#define TEMP_NAME_ATTEMPTS      16

struct credstore {
    char *dir;
    char *path;
};

static void set_error(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!errbuf || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

int credstore_new(struct credstore **out, const char *state_dir)
{
    struct credstore *cs;
    size_t len;

    *out = NULL;
    if (!state_dir || !*state_dir)
        return -EINVAL;
    len = strlen(state_dir);
    if (len > CREDSTORE_MAX_DIR_BYTES)
        return -EINVAL;
    /* "/a/b/" and "/a/b" name the same directory. */
    while (len > 1 && state_dir[len - 1] == '/')
        len--;

    cs = calloc(1, sizeof(*cs));
    if (!cs)
        return -ENOMEM;
    cs->dir = strndup(state_dir, len);
    cs->path = malloc(len + 1 + sizeof(CREDSTORE_FILE_NAME));
    if (!cs->dir || !cs->path) {
        credstore_free(cs);
        return -ENOMEM;
    }
    sprintf(cs->path, "%s%s%s", cs->dir, strcmp(cs->dir, "/") == 0 ? "" : "/", CREDSTORE_FILE_NAME);
    *out = cs;
    return 0;
}

void credstore_free(struct credstore *cs)
{
    if (!cs)
        return;
    free(cs->dir);
    free(cs->path);
    free(cs);
}

const char *credstore_path(const struct credstore *cs)
{
    return cs->path;
}

void credentials_clear(struct credentials *c)
{
    if (!c)
        return;
    if (c->daemon_password) {
        explicit_bzero(c->daemon_password, strlen(c->daemon_password));
        free(c->daemon_password);
    }
    free(c->team_cluster_id);
    memset(c, 0, sizeof(*c));
}

int credentials_copy(struct credentials *dst, const struct credentials *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->enrolled_at = src->enrolled_at;
    if (src->team_cluster_id && !(dst->team_cluster_id = strdup(src->team_cluster_id)))
        goto nomem;
    if (src->daemon_password && !(dst->daemon_password = strdup(src->daemon_password)))
        goto nomem;
    return 0;
nomem:
    credentials_clear(dst);
    return -ENOMEM;
}

/* Values end up in HTTP bodies, socket auth and maybe logs (the id):
 * no control characters, bounded length. */
bool credentials_value_valid(const char *s)
{
    size_t n = 0;

    if (!s || !*s)
        return false;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (ch < 0x20 || ch == 0x7f || n >= CREDSTORE_MAX_VALUE_BYTES)
            return false;
    }
    return true;
}

static void format_time(int64_t t, char out[32])
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static int parse_time(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int consumed = -1;
    time_t t;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed < 0 || s[consumed] != '\0')
        return -EBADMSG;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -EBADMSG;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EBADMSG;
    *out = (int64_t)t;
    return 0;
}

/* ---- load ---- */

static int read_bounded(int fd, char **out, size_t *out_len)
{
    size_t cap = 1024, len = 0;
    char *buf = malloc(cap);

    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n;
        if (len == cap) {
            char *grown;
            if (cap > CREDSTORE_MAX_FILE_BYTES) {
                explicit_bzero(buf, len);
                free(buf);
                return -EFBIG;
            }
            /* realloc() would leave a stale copy of the password behind. */
            grown = malloc(cap * 2);
            if (!grown) {
                explicit_bzero(buf, len);
                free(buf);
                return -ENOMEM;
            }
            memcpy(grown, buf, len);
            explicit_bzero(buf, len);
            free(buf);
            buf = grown;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = -errno;
            explicit_bzero(buf, len);
            free(buf);
            return err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CREDSTORE_MAX_FILE_BYTES) {
        explicit_bzero(buf, len);
        free(buf);
        return -EFBIG;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static int check_file_is_ours(int fd, const char *path, char *errbuf, size_t errlen)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        int err = -errno;
        set_error(errbuf, errlen, "credentials file %s: stat failed: %s", path, strerror(-err));
        return err;
    }
    if (!S_ISREG(st.st_mode)) {
        set_error(errbuf, errlen, "credentials file %s is not a regular file", path);
        return -EPERM;
    }
    if (st.st_uid != geteuid()) {
        set_error(errbuf, errlen,
                  "credentials file %s is owned by uid %lu, not by this process (uid %lu)", path,
                  (unsigned long)st.st_uid, (unsigned long)geteuid());
        return -EPERM;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        set_error(errbuf, errlen,
                  "credentials file %s has mode %04o: group/others may access it; "
                  "it must be 0600 (chmod 600 it after checking nobody else changed it)",
                  path, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

static int take_string(cJSON *obj, const char *name, char **out)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsString(item) || !credentials_value_valid(item->valuestring))
        return -EBADMSG;
    *out = strdup(item->valuestring);
    return *out ? 0 : -ENOMEM;
}

static int parse_credentials(const char *text, size_t len, struct credentials *out,
                             const char **what)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    cJSON *when;
    int r;

    if (!root) {
        *what = "not valid JSON";
        return -EBADMSG;
    }
    if (!cJSON_IsObject(root)) {
        *what = "not a JSON object";
        r = -EBADMSG;
        goto out;
    }
    *what = "\"teamClusterId\" missing or malformed";
    r = take_string(root, "teamClusterId", &out->team_cluster_id);
    if (r < 0)
        goto out;
    *what = "\"daemonPassword\" missing or malformed";
    r = take_string(root, "daemonPassword", &out->daemon_password);
    if (r < 0)
        goto out;
    when = cJSON_GetObjectItemCaseSensitive(root, "enrolledAt");
    if (when) {
        *what = "\"enrolledAt\" is not a UTC timestamp (YYYY-MM-DDTHH:MM:SSZ)";
        r = cJSON_IsString(when) ? parse_time(when->valuestring, &out->enrolled_at) : -EBADMSG;
    }
out:
    secret_json_delete(root);
    return r;
}

/* The state directory must be ours or root's, and no one else may write
 * to it (who may write there may replace the credentials file): the same
 * rule as the socket's directory. */
static int check_dir(int dfd, const char *dir, char *errbuf, size_t errlen)
{
    struct stat st;

    if (fstat(dfd, &st) < 0)
        return -errno;
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        set_error(errbuf, errlen, "state directory %s belongs to uid %lu, not to us or root", dir,
                  (unsigned long)st.st_uid);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        set_error(errbuf, errlen, "state directory %s is writable by %s (mode %04o)", dir,
                  (st.st_mode & S_IWOTH) ? "every user" : "its group",
                  (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

int credstore_load(struct credstore *cs, struct credentials *out, char *errbuf, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    const char *what = "";
    int fd, r;

    memset(out, 0, sizeof(*out));
    int dfd = open(cs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        r = check_dir(dfd, cs->dir, errbuf, errlen);
        close(dfd);
        if (r < 0)
            return r;
    }
    fd = open(cs->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        if (r == -ENOENT)
            return CREDSTORE_NOT_ENROLLED;
        if (r == -ELOOP) {
            set_error(errbuf, errlen, "credentials file %s is a symlink", cs->path);
            return -EPERM;
        }
        set_error(errbuf, errlen, "credentials file %s: %s", cs->path, strerror(-r));
        return r;
    }
    r = check_file_is_ours(fd, cs->path, errbuf, errlen);
    if (r < 0)
        goto out;
    r = read_bounded(fd, &text, &len);
    if (r == -EFBIG) {
        set_error(errbuf, errlen, "credentials file %s is larger than %d bytes", cs->path,
                  CREDSTORE_MAX_FILE_BYTES);
        goto out;
    }
    if (r < 0) {
        set_error(errbuf, errlen, "credentials file %s: read failed: %s", cs->path, strerror(-r));
        goto out;
    }
    r = parse_credentials(text, len, out, &what);
    if (r == -EBADMSG)
        set_error(errbuf, errlen, "credentials file %s is corrupted: %s", cs->path, what);
    else if (r < 0)
        set_error(errbuf, errlen, "credentials file %s: %s", cs->path, strerror(-r));
out:
    if (r < 0)
        credentials_clear(out);
    if (text) {
        explicit_bzero(text, len);
        free(text);
    }
    close(fd);
    return r;
}

/* ---- store ---- */

static char *render_credentials(const struct credentials *c)
{
    cJSON *root = cJSON_CreateObject();
    char when[32];
    char *text = NULL;

    if (!root)
        return NULL;
    format_time(c->enrolled_at ? c->enrolled_at : (int64_t)time(NULL), when);
    if (cJSON_AddStringToObject(root, "teamClusterId", c->team_cluster_id) &&
        cJSON_AddStringToObject(root, "daemonPassword", c->daemon_password) &&
        cJSON_AddStringToObject(root, "enrolledAt", when))
        text = cJSON_Print(root);
    secret_json_delete(root);
    return text;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int open_state_dir(const char *dir, char *errbuf, size_t errlen)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0 && errno == ENOENT) {
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -errno;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0)
        return -errno;
    int r = check_dir(dfd, dir, errbuf, errlen);
    if (r < 0) {
        close(dfd);
        return r;
    }
    return dfd;
}

/* O_EXCL on a fresh random name: never reuses or follows what another
 * process left there. */
static int create_temp(int dfd, char name[64])
{
    for (int i = 0; i < TEMP_NAME_ATTEMPTS; i++) {
        uint32_t tag;
        int fd;

        if (getrandom(&tag, sizeof(tag), GRND_NONBLOCK) != (ssize_t)sizeof(tag))
            tag = (uint32_t)getpid() * 2654435761u + (uint32_t)i;
        snprintf(name, 64, ".%s.%08x.tmp", CREDSTORE_FILE_NAME, tag);
        fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

int credstore_store(struct credstore *cs, const struct credentials *creds, char *errbuf,
                    size_t errlen)
{
    char temp[64] = "";
    const char *step = "";
    char *text = NULL;
    size_t len = 0;
    int dfd = -1, fd = -1, r;

    if (!credentials_value_valid(creds->team_cluster_id) ||
        !credentials_value_valid(creds->daemon_password)) {
        set_error(errbuf, errlen, "refusing to store empty or malformed credentials");
        return -EINVAL;
    }
    text = render_credentials(creds);
    if (!text) {
        r = -ENOMEM;
        step = "render";
        goto fail;
    }
    len = strlen(text);

    step = "open state directory";
    dfd = open_state_dir(cs->dir, errbuf, errlen);
    if (dfd == -EPERM) {
        r = dfd;
        goto out; /* errbuf says why */
    }
    if (dfd < 0) {
        r = dfd;
        goto fail;
    }
    step = "create temporary file";
    fd = create_temp(dfd, temp);
    if (fd < 0) {
        r = fd;
        temp[0] = '\0';
        goto fail;
    }
    /* The umask may have taken bits away; the mode must be exactly 0600. */
    step = "chmod temporary file";
    if (fchmod(fd, 0600) < 0)
        goto fail_errno;
    step = "write temporary file";
    r = write_all(fd, text, len);
    if (r < 0)
        goto fail;
    step = "fsync temporary file";
    if (fsync(fd) < 0)
        goto fail_errno;
    step = "close temporary file";
    r = close(fd);
    fd = -1;
    if (r < 0)
        goto fail_errno;
    step = "rename temporary file";
    if (renameat(dfd, temp, dfd, CREDSTORE_FILE_NAME) < 0)
        goto fail_errno;
    temp[0] = '\0';
    /* Without this the rename itself may not survive a power loss. */
    step = "fsync state directory";
    if (fsync(dfd) < 0)
        goto fail_errno;
    r = 0;
    goto out;

fail_errno:
    r = -errno;
fail:
    set_error(errbuf, errlen, "storing credentials in %s failed (%s): %s", cs->dir, step,
              strerror(-r));
out:
    if (fd >= 0)
        close(fd);
    if (temp[0])
        unlinkat(dfd, temp, 0);
    if (dfd >= 0)
        close(dfd);
    if (text) {
        explicit_bzero(text, len);
        cJSON_free(text);
    }
    return r;
}
