/* lg_held: many sessions each holding one poll, put in chunk by chunk and
 * confirmed with /rtc/status, for the idle and fanout scenarios. */
#ifndef LG_HELD_H
#define LG_HELD_H

#include "lg_conn.h"
#include "lg_rtc.h"

#include <stddef.h>
#include <stdint.h>

/* Puts in a poll of s (after=s->seq, timeout seconds) that calls fn with
 * arg s. Returns 0 or -1. */
int lg_held_poll(lg_sess *s, int timeout, lg_done_fn fn);

/* Puts one poll in for each of s[0..n), chunk at a time; after each chunk
 * waits (at most 10 s) until /rtc/status, asked on status, counts them
 * held on top of those held before. Sets *held to the last count seen
 * (minus those held before). Returns 0 when all n were seen held. */
int lg_held_ramp(lg_sess *s, size_t n, int timeout, size_t chunk, lg_done_fn fn, lg_conn *status,
                 int64_t deadline, long long *held);

#endif
