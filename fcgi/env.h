/* env: what a thread that runs transactions works with -- the settings, its
 * store connection and the wake file -- handed to api, wait and jobs as
 * one argument. It owns none of them (the fronts open and close them). */
#ifndef LC_ENV_H
#define LC_ENV_H

#include "config.h"
#include "store.h"
#include "wake.h"

#include <stdint.h>

typedef struct lc_env {
    const lc_config *cfg;
    store *st; /* this thread's connection (threads of a process may share one) */
    wake *wk;
    /* 1 (FastCGI): a poll queues its acknowledgement for the acks job of
     * jobs.c, which writes many in one transaction; 0 (CGI, no resident
     * process to run that job): each poll writes its own. */
    int defer_acks;
    int64_t started_ms; /* process start, wall ms (for /rtc/status) */
} lc_env;

#endif
