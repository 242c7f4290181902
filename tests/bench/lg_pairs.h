/* lg_pairs: the ping-pong measurement the pairs and attack scenarios share:
 * P calls already set up, each ping-ponging one ICE candidate for a given
 * time, in two-request mode (a send, and the peer's poll) or exchange mode
 * (each reply is an exchange: POST /rtc/send with after=, which is also the
 * sender's poll), figures added to an lg_pp. The scenarios' setup and
 * output stay in lg_pairs.c and lg_attack.c. */
#ifndef LG_PAIRS_H
#define LG_PAIRS_H

#include "lg_hist.h"
#include "lg_loop.h"
#include "lg_rtc.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lg_pp {
    lg_hist relay;    /* a send written -> the peer's poll answer read */
    lg_hist send_rtt; /* send request round trips (two-request mode) */
    lg_hist round;    /* A's message sent -> B's reply read by A (one-way = half) */
    long long delivered, send_errors, poll_errors, empty_polls, bad, lost, send_waits;
    long long requests; /* HTTP requests made in the measured window (sends, exchanges, polls) */
    double secs;        /* measured seconds, summed over the runs */
} lg_pp;

/* Empty figures (lg_pp_free frees them). */
void lg_pp_init(lg_pp *r);

/* Frees r's histograms. */
void lg_pp_free(lg_pp *r);

/* s[2i] and s[2i+1] (i < np, paired by lg_sess_pair) ping-pong for
 * duration seconds (not past end); then the messages on their way are let
 * arrive (at most 2 s) and the held polls are ended (a poll with timeout=0
 * of each session answers them), so that the sessions can run again. Polls use timeout poll_timeout
 * s. exchange: each message is sent as an exchange (the sender's poll
 * too), else as a send beside a held poll. Adds the figures to r. */
void lg_pairs_run(lg_loop *l, lg_sess *s, size_t np, int poll_timeout, double duration, int64_t end,
                  int exchange, lg_pp *r);

#endif
