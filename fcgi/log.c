/* log: one event a line on stderr, logfmt or JSON lines, timestamped unless
 * journald is the reader. See log.h for the policies. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum lc_log_level log_level = LC_LOG_INFO;
static enum lc_log_format log_format = LC_LOG_LOGFMT;
static int log_journal; /* stderr is journald's: no timestamp */
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};
static const char *const log_format_names[] = {"logfmt", "json"};

void lc_log_set_level(enum lc_log_level level)
{
    log_level = level;
}

void lc_log_set_format(enum lc_log_format format)
{
    log_format = format;
}

int lc_log_parse_level(const char *word, enum lc_log_level *out)
{
    for (int i = 0; i <= LC_LOG_DEBUG; i++) {
        if (strcmp(word, log_level_names[i]) == 0) {
            *out = (enum lc_log_level)i;
            return 0;
        }
    }
    return -1;
}

int lc_log_parse_format(const char *word, enum lc_log_format *out)
{
    for (int i = 0; i <= LC_LOG_JSON; i++) {
        if (strcmp(word, log_format_names[i]) == 0) {
            *out = (enum lc_log_format)i;
            return 0;
        }
    }
    return -1;
}

int lc_log_journal_matches(const char *journal_stream, int fd)
{
    unsigned long long dev, ino;
    char end;
    struct stat st;
    if (!journal_stream || sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &end) != 2) return 0;
    if (fstat(fd, &st) != 0) return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void lc_log_init(void)
{
    log_journal = lc_log_journal_matches(getenv("JOURNAL_STREAM"), STDERR_FILENO);
}

long lc_log_due(lc_log_rate *r, long long period_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1; /* never 0 */
    atomic_fetch_add(&r->count, 1);
    long long last = atomic_load(&r->last_ms);
    if (last && now - last < period_ms) return 0;
    if (!atomic_compare_exchange_strong(&r->last_ms, &last, now)) return 0; /* another thread's */
    return atomic_exchange(&r->count, 0);
}

/* ---- the formatter ------------------------------------------------------ */

/* A line being written into out[0..cap): what does not fit below a limit
 * is left out whole (an escape is never cut in two). */
typedef struct log_line {
    char *out;
    size_t len, cap;
    int cut; /* something was left out */
} log_line;

static int log_put(log_line *l, const char *s, size_t n, size_t limit)
{
    if (l->len + n > limit) {
        l->cut = 1;
        return 0;
    }
    memcpy(l->out + l->len, s, n);
    l->len += n;
    return 1;
}

static int log_puts(log_line *l, const char *s, size_t limit)
{
    return log_put(l, s, strlen(s), limit);
}

/* The length of a valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
    size_t k;
    unsigned min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        k = 2, min = 0x80;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        k = 3, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        k = 4, min = 0x10000;
    else
        return 0;
    if (n < k) return 0;
    unsigned cp = s[0] & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k;
}

/* 1 when logfmt may write s bare: printable ASCII without space, '=',
 * '"' or '\\', and not empty. */
static int log_bare(const char *s)
{
    if (!*s) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '=' || *p == '"' || *p == '\\') return 0;
    return 1;
}

/* Writes s as a double-quoted string with the escapes logfmt and JSON
 * share: \" \\ \n \r \t, \u00XX for other control characters, U+FFFD for
 * a byte that is not UTF-8. Stops (adding "...") where the next piece
 * would pass limit; the closing quote is always written (limit leaves 4
 * bytes for "..." and it). */
static void log_put_quoted(log_line *l, const char *s, size_t limit)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    log_put(l, "\"", 1, limit + 4);
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *piece = esc;
        size_t k = 1, len;
        unsigned char ch = p[i];
        switch (ch) {
        case '"':
            piece = "\\\"";
            len = 2;
            break;
        case '\\':
            piece = "\\\\";
            len = 2;
            break;
        case '\n':
            piece = "\\n";
            len = 2;
            break;
        case '\r':
            piece = "\\r";
            len = 2;
            break;
        case '\t':
            piece = "\\t";
            len = 2;
            break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", ch);
            } else if (ch < 0x80) {
                piece = (const char *)p + i;
                len = 1;
            } else if ((k = log_utf8_len(p + i, n - i)) != 0) {
                piece = (const char *)p + i;
                len = k;
            } else {
                piece = "\\ufffd";
                len = 6;
                k = 1;
            }
        }
        if (!log_put(l, piece, len, limit)) {
            log_put(l, "...", 3, limit + 3);
            break;
        }
        i += k;
    }
    log_put(l, "\"", 1, limit + 4);
}

/* Writes one key and its value in format: ` key=value` (logfmt, the value
 * quoted unless bare) or `,"key":value` (JSON). first: no separator. */
static void log_put_field(log_line *l, enum lc_log_format format, int first, const char *key,
                          const char *str, long long num, int is_num, size_t limit)
{
    char nb[24];
    size_t start = l->len;
    int ok = format == LC_LOG_JSON ? log_puts(l, first ? "\"" : ",\"", limit) &&
                                         log_puts(l, key, limit) && log_puts(l, "\":", limit)
                                   : log_puts(l, first ? "" : " ", limit) &&
                                         log_puts(l, key, limit) && log_puts(l, "=", limit);
    if (!ok) {
        l->len = start;
        return;
    }
    if (is_num) {
        snprintf(nb, sizeof nb, "%lld", num);
        if (!log_puts(l, nb, limit)) l->len = start;
    } else if (format == LC_LOG_LOGFMT && log_bare(str) && log_puts(l, str, limit)) {
        /* written bare; one too long for the room left is cut, quoted, below */
    } else if (l->len + 8 > limit) {
        l->len = start;
        l->cut = 1;
    } else {
        log_put_quoted(l, str, limit - 4);
    }
}

size_t lc_log_format_line(char *out, size_t cap, enum lc_log_format format, const char *time,
                          enum lc_log_level level, const char *event, const lc_log_field *f, int nf,
                          const char *msg, int pid)
{
    if (cap > LC_LOG_LINE_MAX) cap = LC_LOG_LINE_MAX;
    log_line l = {.out = out, .cap = cap};
    int json = format == LC_LOG_JSON;
    /* The fields leave room for pid and some of msg; msg ends the line
     * (its closing quote, "}" and the newline always fit). */
    size_t end = cap - 3, fields_end = cap > 400 ? cap - 200 : cap / 2;
    int first = 1;
    if (json) log_put(&l, "{", 1, end);
    if (time) log_put_field(&l, format, first, "time", time, 0, 0, fields_end), first = 0;
    log_put_field(&l, format, first, "level", log_level_names[level], 0, 0, fields_end);
    log_put_field(&l, format, 0, "event", event, 0, 0, fields_end);
    for (int i = 0; i < nf; i++)
        if (f[i].is_num || f[i].str)
            log_put_field(&l, format, 0, f[i].key, f[i].str, f[i].num, f[i].is_num, fields_end);
    log_put_field(&l, format, 0, "pid", NULL, pid, 1, end);
    log_put_field(&l, format, 0, "msg", msg, 0, 0, end - (json ? 1 : 0));
    if (json) log_put(&l, "}", 1, cap - 1);
    log_put(&l, "\n", 1, cap);
    return l.len;
}

/* ---- writing ------------------------------------------------------------- */

/* now as RFC 3339 UTC with milliseconds into t (at least 32 bytes). */
static void log_timestamp(char *t, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(t, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(t + k, n - k, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

static void log_vlog(enum lc_log_level level, const char *event, const lc_log_field *f, int nf,
                     const char *fmt, va_list ap)
{
    char msg[LC_LOG_LINE_MAX], t[40], out[LC_LOG_LINE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (!log_journal) log_timestamp(t, sizeof t);
    size_t n = lc_log_format_line(out, sizeof out, log_format, log_journal ? NULL : t, level, event,
                                  f, nf, msg, (int)getpid());
    ssize_t w = write(STDERR_FILENO, out, n);
    (void)w; /* nowhere left to report a failing stderr */
}

void lc_log_event(enum lc_log_level level, const char *event, const lc_log_field *f, int nf,
                  const char *fmt, ...)
{
    if (level > log_level) return;
    va_list ap;
    va_start(ap, fmt);
    log_vlog(level, event, f, nf, fmt, ap);
    va_end(ap);
}

void lc_log(enum lc_log_level level, const char *fmt, ...)
{
    if (level > log_level) return;
    va_list ap;
    va_start(ap, fmt);
    log_vlog(level, "message", NULL, 0, fmt, ap);
    va_end(ap);
}

void lc_log_changed(char *memo, enum lc_log_level level, const char *event, const char *fmt, ...)
{
    char msg[LC_LOG_MEMO];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int same = strcmp(memo, msg) == 0;
    if (!same) memcpy(memo, msg, sizeof msg);
    lc_log_event(same ? LC_LOG_DEBUG : level, event, LC_NOFIELDS, "%s", msg);
}
