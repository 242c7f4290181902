/* lg_pool: runs a list of independent requests over a few keep-alive
 * connections at once (session creation, registration, fan-out sends,
 * closing), bounded by a deadline. */
#ifndef LG_POOL_H
#define LG_POOL_H

#include "lg_conn.h"
#include "lg_loop.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lg_req {
    const char *method;
    char path[256];
    char body[512];
    size_t body_len; /* 0 with method POST: an empty body */
    int has_body;
} lg_req;

/* Fills req for item i. Returns 0, or -1 to skip the item (counted failed). */
typedef int (*lg_pool_make_fn)(void *arg, size_t i, lg_req *req);

/* Called with item i's outcome (status: HTTP or LG_ERR_*); c is the
 * connection it used (for its timings). Returns 1 to send item i again
 * (at most 3 times in all), else 0. */
typedef int (*lg_pool_done_fn)(void *arg, size_t i, int status, const char *body, size_t len,
                               const lg_conn *c);

typedef struct lg_pool_stats {
    size_t ok;       /* items answered 2xx */
    size_t failed;   /* items that ended otherwise (after retries) */
    size_t retries;  /* resends asked for by done */
    int64_t t_first; /* when the first request was written (ns) */
    int64_t t_last;  /* when the last answer arrived (ns) */
    int finished;    /* every item ended before the deadline */
} lg_pool_stats;

/* Sends items 0..nitems-1 over nconns connections, each request bounded by
 * timeout_ms and the whole by deadline_ns, running the loop (other
 * connections' events are handled meanwhile). Returns 0 if every item ended
 * 2xx, else -1. */
int lg_pool_run(lg_loop *l, size_t nconns, size_t nitems, int timeout_ms, lg_pool_make_fn make,
                lg_pool_done_fn done, void *arg, int64_t deadline_ns, lg_pool_stats *st);

#endif
