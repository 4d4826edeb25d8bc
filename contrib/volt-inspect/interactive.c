#include "interactive.h"

#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

#include "cli.h"
#include "jsonline.h"
#include "names.h"
#include "proto/errors.h"
#include "proto/json.h"
#include "proto/limits.h"
#include "util.h"

#define HISTORY_SIZE  1000
#define PROMPT        "volt> "
#define BROKER_ASK_MS 1500 /* completion asks the broker at most this long */

static const char *const shell_verbs[] = {
    "request", "emit",       "subscribe", "unsubscribe", "register", "unregister", "status",
    "ping",    "credential", "reply",     "help",        "quit",     NULL,
};

struct idlist {
    uint64_t *v;
    size_t n, cap;
};

static int idlist_add(struct idlist *l, uint64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return 0;
}

/* Removes id keeping the order (the last call is the newest). */
static bool idlist_remove(struct idlist *l, uint64_t id)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i] == id) {
            memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
            l->n--;
            return true;
        }
    }
    return false;
}

struct shell {
    const struct inspect_opts *o;
    EditLine *el;
    History *hist;
    HistEvent hev;
    char history_path[512];
    struct conn *c;
    struct jsonline *jl;
    struct proto_buf text, line, frame;
    struct idlist owed;  /* our request ids not answered yet */
    struct idlist calls; /* call ids not replied to yet */
    char **types;        /* message types seen, for completion */
    size_t n_types;
    mbstate_t mb;
    bool editing; /* inside el_gets: async output must redraw the line */
    bool gone;
    bool told_reply;
    int status;
};

int interactive_history_path(char *buf, size_t size)
{
    const char *env = getenv("VOLT_INSPECT_HISTORY");
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;

    if (env && *env)
        n = snprintf(buf, size, "%s", env);
    else if (state && *state)
        n = snprintf(buf, size, "%s/volt-inspect/history", state);
    else if (home && *home)
        n = snprintf(buf, size, "%s/.local/state/volt-inspect/history", home);
    else
        return -1;
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* mkdir -p of the history file's directory (0700: it is private). */
static void make_parent_dirs(const char *path)
{
    char dir[512];

    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
}

/* ---- output ---- */

/* Output that arrives while a line is being edited goes above it. */
static void async_begin(struct shell *sh)
{
    if (sh->editing) {
        fputs("\r\033[K", stdout);
    }
}

static void async_end(struct shell *sh)
{
    fflush(stdout);
    if (sh->editing)
        el_set(sh->el, EL_REFRESH);
}

static void remember_type(struct shell *sh, struct proto_span type)
{
    names_words_add(&sh->types, &sh->n_types, (const char *)type.ptr, type.len);
}

static void print_frame(struct shell *sh, const struct proto_span *body)
{
    struct proto_msg m = {0};
    const char *why;
    char tag[32] = "  ";
    char err[200];
    bool call = false;

    if (proto_msg_decode(body, &m, &why) == 0) {
        if (proto_msg_has(&m, PROTO_F_ID) && cmd_answers_id(&m, m.id) &&
            idlist_remove(&sh->owed, m.id))
            snprintf(tag, sizeof(tag), "#%llu", (unsigned long long)m.id);
        else if (m.op == PROTO_OP_CALL && proto_msg_has(&m, PROTO_F_ID)) {
            idlist_add(&sh->calls, m.id);
            snprintf(tag, sizeof(tag), "@%llu", (unsigned long long)m.id);
            call = true;
        } else if (m.op == PROTO_OP_MESSAGE && proto_msg_has(&m, PROTO_F_TYPE)) {
            remember_type(sh, m.type);
        } else if (m.op == PROTO_OP_WELCOME) {
            if (proto_msg_has(&m, PROTO_F_MAX_FRAME) && m.max_frame <= PROTO_HARD_MAX_FRAME)
                jsonline_set_max_frame(sh->jl, (uint32_t)m.max_frame);
        }
    }
    proto_buf_reset(&sh->text);
    async_begin(sh);
    if (jsonline_from_frame(sh->jl, body->ptr, body->len, &sh->text, err, sizeof(err)) < 0)
        printf("%s < (a frame with no JSON form: %s)\n", tag, err);
    else
        printf("%s < %.*s\n", tag, (int)sh->text.len, (const char *)sh->text.data);
    if (call && !sh->told_reply) {
        printf("   (answer with: reply ok JSON | reply fail CODE MESSAGE; "
               "reply @%llu ... for this one later)\n",
               (unsigned long long)m.id);
        sh->told_reply = true;
    }
    async_end(sh);
}

static void say(struct shell *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct shell *sh, const char *fmt, ...)
{
    va_list ap;

    async_begin(sh);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    async_end(sh);
}

/* Reads what the broker sent and prints every whole frame. */
static void read_broker(struct shell *sh)
{
    struct proto_span body;
    ssize_t n = conn_read(sh->c);
    int rc;

    while ((rc = conn_next(sh->c, &body)) != 0) {
        if (rc == PROTO_E_BAD_FRAME) {
            say(sh, "# the broker sent a bad frame (%s); skipped", conn_reader_error(sh->c));
            continue;
        }
        if (rc < 0) {
            say(sh, "# cannot follow the broker's stream: %s", conn_reader_error(sh->c));
            sh->gone = true;
            break;
        }
        print_frame(sh, &body);
    }
    if (n == 0 || (n < 0 && n != -EAGAIN)) {
        say(sh, "# %s", conn_gone_reason(sh->c));
        sh->gone = true;
    }
    if (sh->gone)
        sh->status = INSPECT_EXIT_CONNECT;
}

/* libedit reads characters through this: it waits for the terminal and
 * the broker together, printing frames as they come. */
static int shell_getc(EditLine *el, wchar_t *wc)
{
    struct shell *sh = NULL;

    el_get(el, EL_CLIENTDATA, &sh);
    for (;;) {
        struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                              {.fd = conn_fd(sh->c), .events = POLLIN}};
        char ch;
        ssize_t n;
        if (sh->gone)
            return 0;
        if (conn_pending_out(sh->c))
            p[1].events |= POLLOUT;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if ((p[1].revents & POLLOUT) && conn_flush(sh->c) < 0) {
            say(sh, "# cannot send: %s", conn_gone_reason(sh->c));
            sh->gone = true;
            sh->status = INSPECT_EXIT_CONNECT;
            continue;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
            read_broker(sh);
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        n = read(STDIN_FILENO, &ch, 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return n == 0 ? 0 : -1;
        {
            wchar_t w;
            size_t r = mbrtowc(&w, &ch, 1, &sh->mb);
            if (r == (size_t)-2)
                continue; /* more bytes of this character to come */
            if (r == (size_t)-1) {
                memset(&sh->mb, 0, sizeof(sh->mb));
                w = (unsigned char)ch;
            }
            *wc = w;
            return 1;
        }
    }
}

/* ---- lines into frames ---- */

/* Appends s[0..len) as a JSON string. */
static void put_str(struct proto_buf *b, const char *s, size_t len)
{
    if (proto_json_put_string(b, s, len) < 0)
        proto_json_put_string(b, "", 0); /* not UTF-8: the broker would refuse it anyway */
}

static void put_lit(struct proto_buf *b, const char *s)
{
    proto_buf_append(b, s, strlen(s));
}

/* The next word of *p (spaces skipped); *p moves past it. */
static bool next_word(const char **p, const char **w, size_t *len)
{
    const char *s = *p;

    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return false;
    *w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    *len = (size_t)(s - *w);
    *p = s;
    return true;
}

static const char *rest_of(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static bool word_is(const char *w, size_t len, const char *s)
{
    return len == strlen(s) && strncmp(w, s, len) == 0;
}

/* A subscribe/unsubscribe filter: none = all, TEXT* = prefix, else exact. */
static void put_filter(struct proto_buf *b, const char *w, size_t len, bool have)
{
    if (!have) {
        put_lit(b, ",\"match\":\"all\"");
    } else if (len > 1 && w[len - 1] == '*') {
        put_lit(b, ",\"match\":\"prefix\",\"type\":");
        put_str(b, w, len - 1);
    } else {
        put_lit(b, ",\"match\":\"exact\",\"type\":");
        put_str(b, w, len);
    }
}

/* A JSON value given on the line is copied as typed (jsonline checks it). */
static void put_json_field(struct proto_buf *b, const char *key, const char *json)
{
    if (!*json)
        return;
    put_lit(b, ",\"");
    put_lit(b, key);
    put_lit(b, "\":");
    put_lit(b, json);
}

static void shell_help(struct shell *sh)
{
    say(sh, "Type a JSON frame ({\"op\":...}) or one of:\n"
            "  request COMMAND [JSON]        emit TYPE [JSON]\n"
            "  subscribe [TYPE | PREFIX*]    unsubscribe [TYPE | PREFIX*]\n"
            "  register COMMAND...           unregister COMMAND...\n"
            "  status   ping   credential NAME\n"
            "  reply ok [JSON]               reply fail CODE [MESSAGE...]\n"
            "  reply @ID ok|fail ...         (without @ID: the last open call)\n"
            "  help   quit (or Ctrl-D)\n"
            "#N marks answers to our request ids, @N calls from the broker.\n"
            "Tab completes; a line typed with a leading space stays out of the history.");
}

/* Turns a short command into the JSON text of a frame in sh->line. 0, 1
 * when handled without a frame (help), or -1 after saying why. */
static int command_to_json(struct shell *sh, const char *text)
{
    struct proto_buf *b = &sh->line;
    const char *p = text, *w, *a;
    size_t wl, al;

    proto_buf_reset(b);
    if (!next_word(&p, &w, &wl))
        return 1;
    if (word_is(w, wl, "help") || word_is(w, wl, "?")) {
        shell_help(sh);
        return 1;
    }
    if (word_is(w, wl, "request")) {
        if (!next_word(&p, &a, &al)) {
            say(sh, "# request COMMAND [JSON]");
            return -1;
        }
        put_lit(b, "{\"op\":\"request\",\"command\":");
        put_str(b, a, al);
        put_json_field(b, "payload", rest_of(p));
    } else if (word_is(w, wl, "emit")) {
        if (!next_word(&p, &a, &al)) {
            say(sh, "# emit TYPE [JSON]");
            return -1;
        }
        put_lit(b, "{\"op\":\"emit\",\"type\":");
        put_str(b, a, al);
        put_json_field(b, "data", rest_of(p));
    } else if (word_is(w, wl, "subscribe") || word_is(w, wl, "unsubscribe")) {
        bool have = next_word(&p, &a, &al);
        put_lit(b, "{\"op\":\"");
        proto_buf_append(b, w, wl);
        put_lit(b, "\"");
        put_filter(b, a, have ? al : 0, have);
    } else if (word_is(w, wl, "register") || word_is(w, wl, "unregister")) {
        int n = 0;
        put_lit(b, "{\"op\":\"");
        proto_buf_append(b, w, wl);
        put_lit(b, "\",\"commands\":[");
        while (next_word(&p, &a, &al)) {
            if (n++)
                put_lit(b, ",");
            put_str(b, a, al);
        }
        put_lit(b, "]");
        if (!n) {
            say(sh, "# %.*s COMMAND...", (int)wl, w);
            return -1;
        }
    } else if (word_is(w, wl, "status") || word_is(w, wl, "ping")) {
        put_lit(b, "{\"op\":\"");
        proto_buf_append(b, w, wl);
        put_lit(b, "\"");
    } else if (word_is(w, wl, "credential")) {
        if (!next_word(&p, &a, &al)) {
            say(sh, "# credential teamClusterId|daemonPassword");
            return -1;
        }
        put_lit(b, "{\"op\":\"credential\",\"name\":");
        put_str(b, a, al);
    } else if (word_is(w, wl, "reply")) {
        uint64_t id;
        bool ok;
        if (!next_word(&p, &a, &al)) {
            say(sh, "# reply [@ID] ok [JSON] | reply [@ID] fail CODE [MESSAGE]");
            return -1;
        }
        if (a[0] == '@') {
            char num[32];
            char *end;
            snprintf(num, sizeof(num), "%.*s", (int)(al - 1), a + 1);
            id = strtoull(num, &end, 10);
            if (!num[0] || *end) {
                say(sh, "# reply @ID: '%.*s' is not a call id", (int)al, a);
                return -1;
            }
            if (!next_word(&p, &a, &al)) {
                say(sh, "# reply @ID ok [JSON] | reply @ID fail CODE [MESSAGE]");
                return -1;
            }
        } else if (sh->calls.n) {
            id = sh->calls.v[sh->calls.n - 1];
        } else {
            say(sh, "# no call to reply to (calls come as @N < {\"op\":\"call\",...})");
            return -1;
        }
        if (word_is(a, al, "ok")) {
            ok = true;
        } else if (word_is(a, al, "fail")) {
            ok = false;
        } else {
            say(sh, "# reply ... ok [JSON] or reply ... fail CODE [MESSAGE], not '%.*s'", (int)al,
                a);
            return -1;
        }
        {
            char head[64];
            snprintf(head, sizeof(head), "{\"op\":\"reply\",\"id\":%llu,\"ok\":%s",
                     (unsigned long long)id, ok ? "true" : "false");
            put_lit(b, head);
        }
        if (ok) {
            put_json_field(b, "data", rest_of(p));
        } else {
            const char *msg;
            if (!next_word(&p, &a, &al)) {
                say(sh, "# reply fail CODE [MESSAGE]");
                return -1;
            }
            put_lit(b, ",\"code\":");
            put_str(b, a, al);
            msg = rest_of(p);
            if (*msg) {
                put_lit(b, ",\"message\":");
                put_str(b, msg, strlen(msg));
            }
        }
        idlist_remove(&sh->calls, id);
    } else {
        say(sh, "# unknown command '%.*s' (help lists them; a frame starts with {)", (int)wl, w);
        return -1;
    }
    put_lit(b, "}");
    return 0;
}

static void send_line(struct shell *sh, const char *text)
{
    struct jsonline_sent sent;
    char err[300];
    int rc;

    if (text[0] != '{') {
        rc = command_to_json(sh, text);
        if (rc != 0)
            return;
        proto_buf_append_byte(&sh->line, 0);
        text = (const char *)sh->line.data;
    }
    proto_buf_reset(&sh->frame);
    rc = jsonline_to_frame(sh->jl, text, strlen(text), &sh->frame, &sent, err, sizeof(err));
    if (rc == 1)
        return;
    if (rc < 0) {
        say(sh, "# %s; nothing sent", err);
        return;
    }
    if (sent.expects_answer)
        idlist_add(&sh->owed, sent.id);
    if (sent.id_assigned)
        say(sh, "# sent as #%llu", (unsigned long long)sent.id);
    if (conn_send_raw(sh->c, sh->frame.data, sh->frame.len) < 0) {
        say(sh, "# cannot send: %s", conn_gone_reason(sh->c));
        sh->gone = true;
        sh->status = INSPECT_EXIT_CONNECT;
    }
}

/* ---- completion ---- */

struct cands {
    char **v;
    size_t n;
    const char *prefix;
    size_t plen;
};

static void cand(struct cands *c, const char *s)
{
    if (strncmp(s, c->prefix, c->plen) == 0)
        names_words_add(&c->v, &c->n, s, strlen(s));
}

static void cands_free(struct cands *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
}

/* The candidates for the word being typed, given the words before it. */
static void gather(struct shell *sh, const char *line, size_t upto, struct cands *c,
                   const char **suffix)
{
    const char *words[4] = {NULL};
    size_t lens[4] = {0}, nw = 0;
    const char *p, *w = "";
    size_t wl;
    char copy[1024];

    *suffix = " ";
    snprintf(copy, sizeof(copy), "%.*s", (int)upto, line);
    if (copy[0] == '{') {
        /* Inside a frame: the op's name after "op":" */
        const char *op = strstr(copy, "\"op\":\"");
        if (op && !strchr(op + 6, '"') &&
            (size_t)(op + 6 - copy) + strlen(op + 6) == strlen(copy)) {
            c->prefix = op + 6;
            c->plen = strlen(c->prefix);
            for (int i = PROTO_OP_HELLO; i < PROTO_OP__COUNT; i++) {
                const struct proto_op_info *info = proto_op_info((enum proto_op)i);
                if (info && info->from_client)
                    cand(c, info->name);
            }
            *suffix = "\"";
        }
        return;
    }
    p = copy;
    while (next_word(&p, &w, &wl)) {
        if (*p == '\0')
            break; /* the word under the cursor */
        if (nw < 4) {
            words[nw] = w;
            lens[nw] = wl;
        }
        nw++;
    }
    if (upto == 0 || copy[upto - 1] == ' ')
        c->prefix = "";
    else
        c->prefix = w;
    c->plen = strlen(c->prefix);
    if (nw == 0) {
        for (size_t i = 0; shell_verbs[i]; i++)
            cand(c, shell_verbs[i]);
        return;
    }
    if (word_is(words[0], lens[0], "request") || word_is(words[0], lens[0], "register") ||
        word_is(words[0], lens[0], "unregister")) {
        struct names_words bw = {0};
        if (nw > 1 && word_is(words[0], lens[0], "request"))
            return; /* the payload */
        if (names_broker_words(sh->o->socket, BROKER_ASK_MS, &bw) == 0)
            for (size_t i = 0; i < bw.n_commands; i++)
                cand(c, bw.commands[i]);
        names_words_free(&bw);
    } else if ((word_is(words[0], lens[0], "emit") || word_is(words[0], lens[0], "subscribe") ||
                word_is(words[0], lens[0], "unsubscribe")) &&
               nw == 1) {
        struct names_words bw = {0};
        for (size_t i = 0; i < sh->n_types; i++)
            cand(c, sh->types[i]);
        if (names_broker_words(sh->o->socket, BROKER_ASK_MS, &bw) == 0)
            for (size_t i = 0; i < bw.n_types; i++)
                cand(c, bw.types[i]);
        names_words_free(&bw);
    } else if (word_is(words[0], lens[0], "credential") && nw == 1) {
        cand(c, "teamClusterId");
        cand(c, "daemonPassword");
    } else if (word_is(words[0], lens[0], "help") && nw == 1) {
        for (size_t i = 0; shell_verbs[i]; i++)
            cand(c, shell_verbs[i]);
    } else if (word_is(words[0], lens[0], "reply")) {
        size_t at = nw > 1 && words[1][0] == '@' ? 2 : 1; /* where ok/fail goes */
        if (nw == 1) {
            char id[32];
            for (size_t i = 0; i < sh->calls.n; i++) {
                snprintf(id, sizeof(id), "@%llu", (unsigned long long)sh->calls.v[i]);
                cand(c, id);
            }
        }
        if (nw == at) {
            cand(c, "ok");
            cand(c, "fail");
        } else if (nw == at + 1 && word_is(words[at], lens[at], "fail")) {
            cand(c, "HandlerError");
            cand(c, "HandlerTimeout");
            cand(c, "NoHandler");
        }
    }
}

static unsigned char shell_complete(EditLine *el, int ch)
{
    const LineInfo *li = el_line(el);
    struct shell *sh = NULL;
    struct cands c = {0};
    const char *suffix;
    size_t upto = (size_t)(li->cursor - li->buffer);
    size_t common;
    unsigned char rc = CC_REFRESH;

    (void)ch;
    el_get(el, EL_CLIENTDATA, &sh);
    c.prefix = "";
    gather(sh, li->buffer, upto, &c, &suffix);
    if (c.n == 0)
        return CC_REFRESH_BEEP;
    common = strlen(c.v[0]);
    for (size_t i = 1; i < c.n; i++) {
        size_t k = 0;
        while (k < common && c.v[i][k] == c.v[0][k])
            k++;
        common = k;
    }
    if (c.n == 1) {
        char ins[512];
        snprintf(ins, sizeof(ins), "%s%s", c.v[0] + c.plen, suffix);
        el_insertstr(el, ins);
    } else if (common > c.plen) {
        char ins[512];
        snprintf(ins, sizeof(ins), "%.*s", (int)(common - c.plen), c.v[0] + c.plen);
        el_insertstr(el, ins);
    } else {
        /* Nothing to add: show the choices under the line. */
        putchar('\n');
        for (size_t i = 0; i < c.n; i++)
            printf("%s%s", c.v[i], i + 1 < c.n ? "  " : "\n");
        fflush(stdout);
        rc = CC_REDISPLAY;
    }
    cands_free(&c);
    return rc;
}

/* ---- the shell ---- */

static void on_welcome(void *ctx, const struct proto_span *body, const struct proto_msg *m)
{
    struct shell *sh = ctx;

    (void)m;
    print_frame(sh, body);
}

static char *prompt(EditLine *el)
{
    (void)el;
    return (char *)PROMPT;
}

static int setup_editor(struct shell *sh)
{
    sh->hist = history_init();
    sh->el = el_init(INSPECT_PROG, stdin, stdout, stderr);
    if (!sh->hist || !sh->el)
        return -1;
    history(sh->hist, &sh->hev, H_SETSIZE, HISTORY_SIZE);
    history(sh->hist, &sh->hev, H_SETUNIQUE, 1);
    if (interactive_history_path(sh->history_path, sizeof(sh->history_path)) == 0)
        history(sh->hist, &sh->hev, H_LOAD, sh->history_path);
    else
        sh->history_path[0] = '\0';
    el_set(sh->el, EL_EDITOR, "emacs");
    el_set(sh->el, EL_SIGNAL, 1);
    el_set(sh->el, EL_PROMPT, prompt);
    el_set(sh->el, EL_HIST, history, sh->hist);
    el_set(sh->el, EL_CLIENTDATA, sh);
    el_set(sh->el, EL_GETCFN, shell_getc);
    /* The wide form: libedit's narrow EL_ADDFN keeps (and leaks) wide
     * copies of the name and help it is given. */
    el_wset(sh->el, EL_ADDFN, L"volt-complete", L"complete the word", shell_complete);
    el_set(sh->el, EL_BIND, "^I", "volt-complete", NULL);
    el_source(sh->el, NULL); /* ~/.editrc, as other libedit programs do */
    return 0;
}

static void save_history(struct shell *sh)
{
    mode_t old;

    if (!sh->history_path[0])
        return;
    make_parent_dirs(sh->history_path);
    old = umask(077);
    history(sh->hist, &sh->hev, H_SAVE, sh->history_path);
    umask(old);
    chmod(sh->history_path, 0600);
}

int interactive_run(const struct inspect_opts *o)
{
    struct shell sh = {.o = o, .status = INSPECT_EXIT_OK};
    uint64_t deadline = inspect_mono_ms() + (uint64_t)o->timeout_ms;
    int rc;

    setlocale(LC_CTYPE, "");
    sh.jl = jsonline_new();
    if (!sh.jl) {
        inspect_error("out of memory");
        return INSPECT_EXIT_CONNECT;
    }
    jsonline_set_raw(sh.jl, o->raw);
    jsonline_set_auto_id(sh.jl, !o->no_auto_id, false);
    rc = cmd_connect(o, deadline, &sh.c, on_welcome, &sh);
    if (rc != INSPECT_EXIT_OK)
        goto out;
    if (setup_editor(&sh) < 0) {
        inspect_error("cannot set up line editing");
        rc = INSPECT_EXIT_CONNECT;
        goto out;
    }
    /* Frames that came with the welcome (the connected event) first. */
    {
        struct proto_span body;
        while (conn_next(sh.c, &body) == 1)
            print_frame(&sh, &body);
    }
    printf("# connected; a JSON frame or a command a line (help), Tab completes, Ctrl-D ends\n");
    fflush(stdout);
    for (;;) {
        int count = 0;
        const char *line;
        char *copy;
        size_t len;
        sh.editing = true;
        line = el_gets(sh.el, &count);
        sh.editing = false;
        if (!line || sh.gone) {
            if (!line && !sh.gone)
                putchar('\n');
            break;
        }
        len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        copy = strndup(line, len);
        if (!copy)
            break;
        if (copy[0] && copy[0] != ' ')
            history(sh.hist, &sh.hev, H_ENTER, copy);
        {
            const char *t = rest_of(copy);
            if (strcmp(t, "quit") == 0 || strcmp(t, "exit") == 0) {
                free(copy);
                break;
            }
            if (*t && *t != '#')
                send_line(&sh, t);
        }
        free(copy);
        fflush(stdout);
    }
    save_history(&sh);
    rc = sh.status;
out:
    if (sh.el)
        el_end(sh.el);
    if (sh.hist)
        history_end(sh.hist);
    conn_free(sh.c);
    jsonline_free(sh.jl);
    proto_buf_free(&sh.text);
    proto_buf_free(&sh.line);
    proto_buf_free(&sh.frame);
    free(sh.owed.v);
    free(sh.calls.v);
    for (size_t i = 0; i < sh.n_types; i++)
        free(sh.types[i]);
    free(sh.types);
    return rc;
}
