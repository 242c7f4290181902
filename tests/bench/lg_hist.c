/* lg_hist: records durations into fixed buckets (1 µs below 65.536 ms, then
 * 1 ms up to 120 s; longer ones count as 120 s) and reads percentiles back,
 * so a run of millions of requests costs a fixed 0.7 MB. */
#include "lg_hist.h"

#include "lg_util.h"

#include <stdio.h>
#include <stdlib.h>

#define FINE_N 65536
#define COARSE_N 120000

/* Allocates the buckets of an empty histogram. */
void lg_hist_init(lg_hist *h)
{
    h->fine = lg_xcalloc(FINE_N, sizeof *h->fine);
    h->coarse = lg_xcalloc(COARSE_N, sizeof *h->coarse);
    h->count = 0;
    h->sum_us = 0;
    h->max_us = 0;
    h->min_us = -1;
}

/* Frees the buckets. */
void lg_hist_free(lg_hist *h)
{
    free(h->fine);
    free(h->coarse);
    h->fine = NULL;
    h->coarse = NULL;
}

/* Records one duration given in nanoseconds. */
void lg_hist_add(lg_hist *h, int64_t ns)
{
    int64_t us = ns < 0 ? 0 : ns / 1000;
    if (us < FINE_N) {
        h->fine[us]++;
    } else {
        int64_t ms = us / 1000;
        h->coarse[ms < COARSE_N ? ms : COARSE_N - 1]++;
    }
    h->count++;
    h->sum_us += (uint64_t)us;
    if (us > h->max_us) h->max_us = us;
    if (h->min_us < 0 || us < h->min_us) h->min_us = us;
}

/* The p-th percentile in µs: the smallest bucket value with at least p% of
 * the samples at or below it. */
int64_t lg_hist_pct(const lg_hist *h, double p)
{
    if (!h->count) return 0;
    uint64_t want = (uint64_t)((double)h->count * p / 100.0 + 0.999999);
    if (want < 1) want = 1;
    if (want > h->count) want = h->count;
    uint64_t seen = 0;
    for (int64_t i = 0; i < FINE_N; i++) {
        seen += h->fine[i];
        if (seen >= want) return i;
    }
    for (int64_t i = 0; i < COARSE_N; i++) {
        seen += h->coarse[i];
        if (seen >= want) return i * 1000;
    }
    return h->max_us;
}

/* Prints the histogram's summary as key=value lines. */
void lg_hist_print(const lg_hist *h, const char *prefix)
{
    printf("%s_count=%llu\n", prefix, (unsigned long long)h->count);
    printf("%s_p50_us=%lld\n", prefix, (long long)lg_hist_pct(h, 50));
    printf("%s_p90_us=%lld\n", prefix, (long long)lg_hist_pct(h, 90));
    printf("%s_p99_us=%lld\n", prefix, (long long)lg_hist_pct(h, 99));
    printf("%s_max_us=%lld\n", prefix, (long long)h->max_us);
    printf("%s_mean_us=%lld\n", prefix, (long long)(h->count ? h->sum_us / h->count : 0));
}
