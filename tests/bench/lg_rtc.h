/* lg_rtc: longcall's wire contract as the load generator uses it: sessions
 * with their own poll and send connections, creating them, pairing them into
 * accepted calls, reading poll answers, /rtc/status, and closing. */
#ifndef LG_RTC_H
#define LG_RTC_H

#include "lg_conn.h"
#include "lg_loop.h"

#include <stddef.h>
#include <stdint.h>

/* Bound on every setup request (create, register, call, close). */
#define LG_SETUP_TIMEOUT_MS 30000

typedef struct lg_sess {
    char sid[64];
    char name[48]; /* the name lg_sess_pair registered (empty before) */
    long long seq; /* last seq received: the next poll's after= */
    lg_conn poll;  /* held polls */
    lg_conn send;  /* sends (initialised only when asked for) */
    int has_send;
    struct lg_sess *peer; /* the other side of the call, if paired */
    int64_t t_mark;       /* scenario use: when its pending message was sent */
    int64_t t_sent;       /* scenario use: when it last sent a message */
    long long counter;    /* scenario use */
    int flags;            /* scenario use */
} lg_sess;

/* Allocates n sessions with their connections (a send connection too when
 * with_send). */
lg_sess *lg_sess_alloc(lg_loop *l, size_t n, int with_send);

/* Frees the sessions' connections and the array. */
void lg_sess_free(lg_sess *s, size_t n);

/* POST /rtc/session for each, over conns connections. Returns 0 when all
 * got a sid. */
int lg_sess_create(lg_loop *l, lg_sess *s, size_t n, size_t conns, int64_t deadline);

/* Registers s[i] (i < 2 * pairs) with unique names (s[i].name) and sets
 * peer (s[2i] and s[2i+1]); no call. Returns 0 when all registered. */
int lg_sess_register(lg_loop *l, lg_sess *s, size_t pairs, size_t conns, int64_t deadline);

/* Makes pairs (s[2i] calls s[2i+1], which accepts) with unique names, then
 * reads each mailbox once (timeout=0) and checks the call is up; sets seq
 * and peer. Returns 0 when every pair is in a call. */
int lg_sess_pair(lg_loop *l, lg_sess *s, size_t pairs, size_t conns, int64_t deadline);

/* POST /rtc/close for each (ends their held polls). Returns 0 when all
 * closed. */
int lg_sess_close(lg_loop *l, lg_sess *s, size_t n, size_t conns, int64_t deadline);

/* The path of a poll of s with its cursor and timeout (seconds). */
void lg_poll_path(const lg_sess *s, int timeout, char *out, size_t cap);

/* The path of a send for s. */
void lg_send_path(const lg_sess *s, char *out, size_t cap);

/* Reads a poll answer: advances s->seq, returns the number of messages and
 * sets *matched to how many have id want (want may be NULL) and a seq above
 * s->seq (one an exchange and the poll it superseded both brought counts
 * once). -1 when the body is not a poll answer. */
int lg_poll_read(lg_sess *s, const char *body, size_t len, const char *want, int *matched);

/* GET /rtc/status on c and waits for it (running the loop). Sets *held and
 * *sessions (either may be NULL). Returns 0 or -1. */
int lg_status(lg_conn *c, long long *held, long long *sessions, int64_t deadline);

/* GET /rtc/status on c and waits for it; sets *value to its integer key.
 * Returns 0, or -1 (no answer, not 200, or no such key). */
int lg_status_int(lg_conn *c, const char *key, long long *value, int64_t deadline);

#endif
