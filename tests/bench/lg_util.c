/* lg_util: the monotonic clock, allocation that exits on failure, warnings
 * and this process's CPU time, for every part of the load generator. */
#include "lg_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
int64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * LG_NS_PER_S + ts.tv_nsec;
}

static void oom(size_t n)
{
    fprintf(stderr, "loadgen: out of memory (%zu bytes)\n", n);
    exit(2);
}

/* malloc that exits on failure. */
void *lg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

/* realloc that exits on failure. */
void *lg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

/* calloc that exits on failure. */
void *lg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

/* A warning line on stderr. */
void lg_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* CPU seconds (user + system) used by this process. */
double lg_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}
