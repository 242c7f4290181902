/* Unit tests of log.c: the line writer (logfmt and JSON lines) from
 * inputs to the exact line, client text that tries to break a line or forge
 * a field, the cut of an overlong message, the level and format words, and
 * JOURNAL_STREAM matched against a descriptor. Data-driven: one row a case. */
#include "../../fcgi/log.c"
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#define F(...) LC_FIELDS(__VA_ARGS__)

static const lc_log_field f_session[] = {LC_ID("session", 12), LC_STR("client", "192.0.2.7")};
static const lc_log_field f_absent[] = {LC_ID("session", 0), LC_STR("client", NULL),
                                        LC_NUM("count", 0)};
static const lc_log_field f_quoted[] = {LC_STR("limit", "a b"), LC_STR("empty", ""),
                                        LC_STR("eq", "x=y"), LC_STR("bs", "c:\\d")};
static const lc_log_field f_forge[] = {LC_STR("name", "bob\" event=forged\nlevel=error x=\"")};
static const lc_log_field f_neg[] = {LC_NUM("count", -3), LC_NUM("big", 9223372036854775807LL)};

static const struct {
    const char *name;
    enum lc_log_format fmt;
    const char *time;
    enum lc_log_level level;
    const char *event;
    const lc_log_field *f;
    int nf;
    const char *msg;
    const char *want;
} rows[] = {
    {"logfmt plain", LC_LOG_LOGFMT, "2026-11-30T04:05:06.789Z", LC_LOG_INFO, "serving", NULL, 0,
     "serving FastCGI",
     "time=2026-11-30T04:05:06.789Z level=info event=serving pid=42 "
     "msg=\"serving FastCGI\"\n"},
    {"logfmt no time (journald)", LC_LOG_LOGFMT, NULL, LC_LOG_WARN, "db_busy", NULL, 0, "busy",
     "level=warn event=db_busy pid=42 msg=busy\n"},
    {"logfmt fields", LC_LOG_LOGFMT, NULL, LC_LOG_INFO, "session_created", f_session, 2,
     "session 12 created",
     "level=info event=session_created session=12 client=192.0.2.7 pid=42 "
     "msg=\"session 12 created\"\n"},
    {"logfmt absent fields left out", LC_LOG_LOGFMT, NULL, LC_LOG_DEBUG, "x", f_absent, 3, "m",
     "level=debug event=x count=0 pid=42 msg=m\n"},
    {"logfmt quoting", LC_LOG_LOGFMT, NULL, LC_LOG_ERROR, "e", f_quoted, 4, "",
     "level=error event=e limit=\"a b\" empty=\"\" eq=\"x=y\" bs=\"c:\\\\d\" pid=42 msg=\"\"\n"},
    {"logfmt forged field stays in its value", LC_LOG_LOGFMT, NULL, LC_LOG_WARN, "limit_hit",
     f_forge, 1, "Host \"evil\"\r\n event=forged\t\x01\x7f",
     "level=warn event=limit_hit name=\"bob\\\" event=forged\\nlevel=error x=\\\"\" pid=42 "
     "msg=\"Host \\\"evil\\\"\\r\\n event=forged\\t\\u0001\\u007f\"\n"},
    {"logfmt UTF-8 kept, bad bytes replaced", LC_LOG_LOGFMT, NULL, LC_LOG_INFO, "u", NULL, 0,
     "caf\xc3\xa9 \xff\xc3 \xed\xa0\x80 \xe2\x82\xac",
     "level=info event=u pid=42 msg=\"caf\xc3\xa9 \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd "
     "\xe2\x82\xac\"\n"},
    {"logfmt numbers", LC_LOG_LOGFMT, NULL, LC_LOG_INFO, "n", f_neg, 2, "n",
     "level=info event=n count=-3 big=9223372036854775807 pid=42 msg=n\n"},
    {"json plain", LC_LOG_JSON, "2026-11-30T04:05:06.789Z", LC_LOG_INFO, "serving", NULL, 0,
     "serving FastCGI",
     "{\"time\":\"2026-11-30T04:05:06.789Z\",\"level\":\"info\",\"event\":\"serving\","
     "\"pid\":42,\"msg\":\"serving FastCGI\"}\n"},
    {"json fields, numbers bare", LC_LOG_JSON, NULL, LC_LOG_INFO, "session_created", f_session, 2,
     "s",
     "{\"level\":\"info\",\"event\":\"session_created\",\"session\":12,"
     "\"client\":\"192.0.2.7\",\"pid\":42,\"msg\":\"s\"}\n"},
    {"json forged field stays in its value", LC_LOG_JSON, NULL, LC_LOG_WARN, "limit_hit", f_forge,
     1, "a\"}\n{\"event\":\"forged\"\\",
     "{\"level\":\"warn\",\"event\":\"limit_hit\",\"name\":\"bob\\\" event=forged\\nlevel=error "
     "x=\\\"\",\"pid\":42,\"msg\":\"a\\\"}\\n{\\\"event\\\":\\\"forged\\\"\\\\\"}\n"},
    {"json bad UTF-8 replaced", LC_LOG_JSON, NULL, LC_LOG_INFO, "u", NULL, 0, "\xc0\xaf",
     "{\"level\":\"info\",\"event\":\"u\",\"pid\":42,\"msg\":\"\\ufffd\\ufffd\"}\n"},
};

/* An overlong message: cut with "...", the line still ends as it must. */
static void check_cut(enum lc_log_format fmt, const char *name)
{
    size_t big = 3 * LC_LOG_LINE_MAX;
    char *msg = malloc(big + 1), out[LC_LOG_LINE_MAX];
    for (size_t i = 0; i < big; i++)
        msg[i] = i % 7 == 0 ? '"' : 'a'; /* escapes: 2 bytes each */
    msg[big] = '\0';
    size_t n = lc_log_format_line(out, sizeof out, fmt, "T", LC_LOG_INFO, "e", NULL, 0, msg, 1);
    const char *tail = fmt == LC_LOG_JSON ? "...\"}\n" : "...\"\n";
    size_t tn = strlen(tail);
    CHECK(name, n <= LC_LOG_LINE_MAX && n > LC_LOG_LINE_MAX - 16 &&
                    memcmp(out + n - tn, tail, tn) == 0 && memchr(out, '\n', n) == out + n - 1);
    /* A field of client text as long: cut too, the message and pid kept. */
    lc_log_field f[] = {LC_STR("host", msg)};
    n = lc_log_format_line(out, sizeof out, fmt, NULL, LC_LOG_INFO, "e", f, 1, "kept", 1);
    out[n < sizeof out ? n : sizeof out - 1] = '\0';
    CHECK(name, n <= LC_LOG_LINE_MAX && strstr(out, "kept") && strstr(out, "pid") &&
                    memchr(out, '\n', n) == out + n - 1);
    free(msg);
}

int main(void)
{
    char out[LC_LOG_LINE_MAX + 1];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n =
            lc_log_format_line(out, LC_LOG_LINE_MAX, rows[i].fmt, rows[i].time, rows[i].level,
                               rows[i].event, rows[i].f, rows[i].nf, rows[i].msg, 42);
        out[n] = '\0';
        int same = strcmp(out, rows[i].want) == 0;
        if (!same) printf("# got:  %s# want: %s", out, rows[i].want);
        CHECK(rows[i].name, same);
    }
    check_cut(LC_LOG_LOGFMT, "logfmt: an overlong message is cut with ...");
    check_cut(LC_LOG_JSON, "json: an overlong message is cut with ...");

    /* A message with nothing to quote, too long: cut (quoted), not left
     * out (found by fuzz_log). */
    char *bare = malloc(2 * LC_LOG_LINE_MAX);
    memset(bare, 'b', 2 * LC_LOG_LINE_MAX - 1);
    bare[2 * LC_LOG_LINE_MAX - 1] = '\0';
    size_t bn = lc_log_format_line(out, LC_LOG_LINE_MAX, LC_LOG_LOGFMT, NULL, LC_LOG_INFO, "e",
                                   NULL, 0, bare, 1);
    out[bn] = '\0';
    CHECK("logfmt: a long bare message is cut and quoted, not left out",
          strncmp(out, "level=info event=e pid=1 msg=\"bbb", 33) == 0 &&
              strcmp(out + bn - 7, "bb...\"\n") == 0);
    free(bare);

    /* A small buffer: the line is cut, never overrun. */
    char small[64];
    memset(small, 'Z', sizeof small);
    size_t n = lc_log_format_line(small, 60, LC_LOG_LOGFMT, NULL, LC_LOG_INFO, "event_name",
                                  f_session, 2, "a long message that does not fit here", 7);
    CHECK("a 60-byte buffer: at most 60 bytes, ends with a newline",
          n <= 60 && small[n - 1] == '\n' && small[60] == 'Z');

    enum lc_log_level lv;
    enum lc_log_format fm;
    CHECK("level words", lc_log_parse_level("warn", &lv) == 0 && lv == LC_LOG_WARN &&
                             lc_log_parse_level("WARN", &lv) == -1);
    CHECK("format words", lc_log_parse_format("json", &fm) == 0 && fm == LC_LOG_JSON &&
                              lc_log_parse_format("logfmt", &fm) == 0 && fm == LC_LOG_LOGFMT &&
                              lc_log_parse_format("text", &fm) == -1 &&
                              lc_log_parse_format("", &fm) == -1);

    /* JOURNAL_STREAM: matches the descriptor's device:inode only. */
    char path[] = "/tmp/test_log_XXXXXX", js[64];
    int fd = mkstemp(path);
    struct stat st;
    fstat(fd, &st);
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    CHECK("JOURNAL_STREAM of the file matches", lc_log_journal_matches(js, fd) == 1);
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    CHECK("another inode does not", lc_log_journal_matches(js, fd) == 0);
    CHECK("unset, empty or garbage does not",
          lc_log_journal_matches(NULL, fd) == 0 && lc_log_journal_matches("", fd) == 0 &&
              lc_log_journal_matches("1:2x", fd) == 0 && lc_log_journal_matches("12", fd) == 0);
    close(fd);
    unlink(path);

    lc_log_rate r = {0};
    long first = lc_log_due(&r, 60000), second = lc_log_due(&r, 60000);
    lc_log_due(&r, 60000);
    CHECK("lc_log_due: the first is due with count 1, the next ones are counted",
          first == 1 && second == 0 && atomic_load(&r.count) == 2);
    return unit_done();
}
