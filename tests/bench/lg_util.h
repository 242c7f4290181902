/* lg_util: the load generator's small shared helpers: the monotonic clock,
 * allocation that exits on failure, and warnings on stderr. */
#ifndef LG_UTIL_H
#define LG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define LG_NS_PER_S 1000000000LL
#define LG_NS_PER_MS 1000000LL

/* Nanoseconds of CLOCK_MONOTONIC. */
int64_t lg_now_ns(void);

/* malloc/realloc/calloc that print a line and exit on failure. */
void *lg_xmalloc(size_t n);
void *lg_xrealloc(void *p, size_t n);
void *lg_xcalloc(size_t n, size_t size);

/* printf-style line on stderr, prefixed with "loadgen: ". */
void lg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CPU seconds (user + system) this process has used so far. */
double lg_cpu_seconds(void);

#endif
