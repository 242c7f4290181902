/* util: the process-wide conventions every module shares -- return codes,
 * the out-of-memory policy (abort), clocks, a growable byte buffer and the
 * folder of a path (the log is log.h's, included here). It owns no state but the test clock
 * offset. */
#ifndef LC_UTIL_H
#define LC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* One error convention for the whole program: 0 is success, a positive value
 * is an expected "no" that the caller turns into an answer, a negative value
 * is a failure that has already been logged where it happened. */
enum lc_rc {
    LC_OK = 0,
    LC_NOTFOUND = 1, /* no such row / session / name */
    LC_QUOTA = 2,    /* a mailbox is over its quota */
    LC_SHARE = 3,    /* one sender's share of a mailbox is used up (store_enqueue) */
    LC_ERR = -1,     /* logged failure (I/O, corrupt database, ...) */
    LC_BUSY = -2,    /* the database stayed locked past the busy timeout */
    LC_FULL = -3,    /* the disk holding the database is full (nothing written) */
};

/* Out-of-memory policy: allocation failure aborts the process after logging.
 * The web server respawns the backend; every request in flight was either
 * committed to SQLite or not, so nothing half-done survives. Jansson is set
 * up to allocate through xmalloc too (see lc_json_init). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Routes Jansson's allocations through xmalloc/free. Call once at start. */
void lc_json_init(void);

/* One day in milliseconds (history retention is configured in days). */
#define LC_DAY_MS 86400000LL

/* Wall-clock milliseconds since the Unix epoch (what the database stores),
 * plus the test offset (0 unless a test set one). */
int64_t lc_now_ms(void);
/* Test seam: moves lc_now_ms() by offset_ms from now on (expiry and ring
 * timeouts without waiting). Only tests call it; not thread-safe. */
void lc_clock_set_offset(int64_t offset_ms);
/* Monotonic milliseconds, for deadlines that must not jump with the clock. */
int64_t lc_mono_ms(void);
/* The monotonic time of a wall-clock time (both ms). */
int64_t lc_mono_of(int64_t wall_ms);
/* The folder of path into dir (n bytes): everything before the last '/',
 * "/" for a file at the root, "." for a bare file name. */
void lc_folder_of(const char *path, char *dir, size_t n);
/* Milliseconds in a day (history retention is in days). */
#define LC_DAY_MS 86400000LL

/* A growable byte buffer; always NUL-terminated after the first append. The
 * owner frees buf.data with free() (or buf_free). */
typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

void buf_append(buf *b, const void *p, size_t n);
void buf_puts(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void buf_json_string(buf *b, const char *s);
void buf_free(buf *b);

#endif
