/* lg_hist: a latency histogram with 1 µs buckets below 65.536 ms and 1 ms
 * buckets up to 120 s, its percentiles, and its key=value printing. */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

typedef struct lg_hist {
    uint32_t *fine;   /* [0, 65536) µs, 1 µs each */
    uint32_t *coarse; /* [0, 120000) ms, 1 ms each; only values >= 65536 µs */
    uint64_t count;
    uint64_t sum_us;
    int64_t max_us;
    int64_t min_us;
} lg_hist;

/* Allocates the buckets of an empty histogram. */
void lg_hist_init(lg_hist *h);

/* Frees the buckets. */
void lg_hist_free(lg_hist *h);

/* Records one duration given in nanoseconds. */
void lg_hist_add(lg_hist *h, int64_t ns);

/* The p-th percentile (0 < p <= 100) in µs; 0 for an empty histogram. */
int64_t lg_hist_pct(const lg_hist *h, double p);

/* Prints PREFIX_count, PREFIX_p50_us, _p90_us, _p99_us, _max_us, _mean_us as
 * key=value lines on stdout. */
void lg_hist_print(const lg_hist *h, const char *prefix);

#endif
