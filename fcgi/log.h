/* log: the one way a line reaches the log -- one event a line on stderr,
 * logfmt (the default) or JSON lines, with an RFC 3339 timestamp unless
 * journald adds its own, the level filter and the memo of failures retried
 * every few seconds. It does not decide what deserves a line (the callers
 * do) nor summarise what a client can repeat (addr_log_event, addr.h). */
#ifndef LC_LOG_H
#define LC_LOG_H

#include <stdatomic.h>
#include <stddef.h>

enum lc_log_level { LC_LOG_ERROR = 0, LC_LOG_WARN, LC_LOG_INFO, LC_LOG_DEBUG };
enum lc_log_format { LC_LOG_LOGFMT = 0, LC_LOG_JSON };

/* The longest line written, newline included: one write(2) of at most
 * PIPE_BUF bytes, so lines from threads and processes never interleave. A
 * longer message is cut, ending in "...". */
#define LC_LOG_LINE_MAX 4096

/* One field of a line after level and event: key (a fixed snake_case word
 * from the code, never a client's text) and a text (str) or a whole number
 * (is_num). A field with str NULL and is_num 0 is left out. Build them with
 * LC_STR / LC_NUM / LC_ID inside LC_FIELDS(...). */
typedef struct lc_log_field {
    const char *key;
    const char *str;
    long long num;
    int is_num;
} lc_log_field;

#define LC_STR(k, v) ((lc_log_field){.key = (k), .str = (v)})
#define LC_NUM(k, v) ((lc_log_field){.key = (k), .num = (long long)(v), .is_num = 1})
/* A row id: left out when it is 0 or less (no such row). */
#define LC_ID(k, v) ((lc_log_field){.key = (k), .num = (long long)(v), .is_num = (v) > 0})
/* The fields argument pair (array, count) of lc_log_event. */
#define LC_FIELDS(...)                                                                             \
    (const lc_log_field[]){__VA_ARGS__},                                                           \
        (int)(sizeof((const lc_log_field[]){__VA_ARGS__}) / sizeof(lc_log_field))
#define LC_NOFIELDS NULL, 0

/* At start-up, before any thread: notes whether stderr is journald's
 * stream (JOURNAL_STREAM names stderr's device:inode), then lines carry no
 * timestamp (journald adds its own). The process's own environment: a web
 * server that clears it for its children leaves the timestamp on. */
void lc_log_init(void);

/* Sets the level below which nothing is logged / the format. Not
 * thread-safe: at start-up, before threads exist. */
void lc_log_set_level(enum lc_log_level level);
void lc_log_set_format(enum lc_log_format format);

/* Parses "error", "warn", "info" or "debug" / "logfmt" or "json". Returns
 * 0 and sets *out, or -1 when the word is none of them. */
int lc_log_parse_level(const char *word, enum lc_log_level *out);
int lc_log_parse_format(const char *word, enum lc_log_format *out);

/* Logs one event: a line with level, event (a fixed snake_case name, listed
 * in README's "Logs"), the nf fields of f (LC_FIELDS(...) or LC_NOFIELDS),
 * pid and msg (fmt and its arguments: the sentence for a human, saying the
 * remedy when something is wrong), on stderr in one write(2). Never pass a
 * session token or a secret, in a field or the message. Client text is
 * escaped: it cannot break the line or add a field. */
void lc_log_event(enum lc_log_level level, const char *event, const lc_log_field *f, int nf,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* lc_log_event with no fields and the event "message": for lines no
 * operator acts on (debug traces). */
void lc_log(enum lc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For a failure that is retried every few seconds: logs like lc_log_event
 * with no fields, unless the message is the one last logged through this
 * memo -- then at LC_LOG_DEBUG only -- so that it takes one line per
 * change, not one per attempt. memo is the caller's (zero-initialized,
 * LC_LOG_MEMO bytes, used by one thread at a time); memo[0] = '\0' forgets
 * the last message. */
#define LC_LOG_MEMO 512
void lc_log_changed(char *memo, enum lc_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A summary memo for a line that load, not one client, can repeat at will
 * (the database busy): zero-initialized, static, shared by threads. */
typedef struct lc_log_rate {
    _Atomic long long last_ms; /* monotonic ms of the last line (0: none yet) */
    _Atomic long count;        /* events since it */
} lc_log_rate;

/* Counts one event in r. Returns the number of events since the previous
 * line (this one included) when a line is due now -- the first, or the
 * first period_ms after the previous one -- the caller then logs it with
 * that count; else 0 (the event is counted for the next line). */
long lc_log_due(lc_log_rate *r, long long period_ms);

/* The pure formatter behind lc_log_event (unit-tested): writes the line
 * (newline included, no NUL) into out (cap bytes, at most LC_LOG_LINE_MAX
 * used) in format, time first when time is not NULL (RFC 3339 text), and
 * returns its length. */
size_t lc_log_format_line(char *out, size_t cap, enum lc_log_format format, const char *time,
                          enum lc_log_level level, const char *event, const lc_log_field *f, int nf,
                          const char *msg, int pid);

/* 1 when journal_stream (JOURNAL_STREAM's value, "DEV:INO" in decimal;
 * NULL: unset) names the file fd is open on, else 0. */
int lc_log_journal_matches(const char *journal_stream, int fd);

#endif
