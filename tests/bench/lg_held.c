/* lg_held: ramps up held polls: a chunk of polls goes out, then /rtc/status
 * is asked every 20 ms until the backend counts them held, so the count
 * printed as "all held" is the server's, not the load generator's guess. */
#include "lg_held.h"

#include "lg_loop.h"
#include "lg_util.h"

#include <stdio.h>

/* Puts in one poll of s. */
int lg_held_poll(lg_sess *s, int timeout, lg_done_fn fn)
{
    char path[256];
    lg_poll_path(s, timeout, path, sizeof path);
    return lg_conn_request(&s->poll, "GET", path, NULL, 0, (timeout + 15) * 1000, fn, s);
}

/* Ramps up n held polls; see lg_held.h. */
int lg_held_ramp(lg_sess *s, size_t n, int timeout, size_t chunk, lg_done_fn fn, lg_conn *status,
                 int64_t deadline, long long *held)
{
    long long base = 0, now_held = 0;
    size_t issued = 0;
    lg_loop *l = status->loop;
    if (lg_status(status, &base, NULL, deadline) != 0) return -1;
    *held = 0;
    while (issued < n) {
        size_t stop = issued + chunk < n ? issued + chunk : n;
        for (; issued < stop; issued++)
            if (lg_held_poll(&s[issued], timeout, fn) != 0)
                lg_warn("poll %zu did not start", issued);
        int64_t wait_end = lg_now_ns() + 10 * LG_NS_PER_S;
        if (wait_end > deadline) wait_end = deadline;
        for (;;) {
            lg_loop_run(l, NULL, NULL, lg_now_ns() + 20 * LG_NS_PER_MS);
            if (lg_status(status, &now_held, NULL, deadline) != 0) return -1;
            *held = now_held - base;
            if (*held >= (long long)issued) break;
            if (lg_now_ns() >= wait_end) {
                lg_warn("only %lld of %zu polls held", *held, issued);
                break;
            }
        }
        if (lg_now_ns() >= deadline) break;
    }
    return *held >= (long long)n ? 0 : -1;
}
