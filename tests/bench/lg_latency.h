/* lg_latency: the relay measurement the latency and slow scenarios share:
 * one call (A and B), and for each message B's held poll confirmed by
 * /rtc/status, A's send, and the time until B's poll answer is read. The
 * scenarios' setup and output stay in lg_latency.c and lg_slow.c. */
#ifndef LG_LATENCY_H
#define LG_LATENCY_H

#include "lg_conn.h"
#include "lg_hist.h"
#include "lg_loop.h"
#include "lg_rtc.h"

#include <stdint.h>

typedef struct lg_relay {
    /* in (set after lg_relay_init): A's sends are exchanges (after= A's
     * cursor, timeout=0: the exchange's poll part answers at once, after
     * B's held poll was served, so nothing of A's stays held) */
    int exchange;
    lg_hist relay;    /* A's send written -> B's poll answer read */
    lg_hist send_rtt; /* A's send round trip */
    long long done, errors, unheld, unconfirmed, bad, lost;
    long long other; /* B's poll answers without A's message (polled again) */
} lg_relay;

/* Empty counters and histograms (lg_relay_free frees them). */
void lg_relay_init(lg_relay *r);

/* Frees r's histograms. */
void lg_relay_free(lg_relay *r);

/* Relays up to iterations messages A -> B one by one (as exchanges when
 * r->exchange; B's polls use timeout poll_timeout s; status is a spare
 * connection for /rtc/status),
 * stopping at deadline end (lg_now_ns clock) or after too many errors or
 * lost messages; adds the samples and counts to r. B's poll connection is
 * left idle. */
void lg_relay_run(lg_loop *l, lg_sess *a, lg_sess *b, lg_conn *status, long iterations,
                  int poll_timeout, int64_t end, lg_relay *r);

#endif
