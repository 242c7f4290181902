/* loadgen: the options every scenario reads and the scenarios themselves
 * (one file each: lg_ceiling.c, lg_latency.c, lg_pairs.c, lg_idle.c,
 * lg_fanout.c, lg_slow.c, lg_attack.c, lg_callsetup.c). Each prints key=value lines and a "# " summary on stdout.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#define LG_MAX_SOCKETS 16

typedef struct lg_opts {
    int port;                            /* 127.0.0.1:port */
    int conns;                           /* ceiling: concurrent connections */
    double duration;                     /* seconds of measurement (ceiling, pairs, idle) */
    double warmup;                       /* ceiling: seconds run before measuring */
    long long max_requests;              /* ceiling: stop after this many (0: no limit) */
    const char *url;                     /* ceiling: the path requested */
    long iterations;                     /* latency: messages measured */
    int poll_timeout;                    /* timeout= of held polls, seconds */
    int senders;                         /* fanout: concurrent send connections */
    int setup_conns;                     /* connections used for setup and closing */
    int no_close;                        /* leave the sessions open at the end */
    long n;                              /* pairs P, idle N, fanout N */
    double limit;                        /* hard bound on a whole scenario, seconds */
    const char *sockets[LG_MAX_SOCKETS]; /* slow: the backend's unix sockets */
    int nsockets;
    long status_requests;     /* slow: /rtc/status round trips per phase */
    double drop_wait;         /* slow: seconds to wait for the backend's drops */
    long pairs;               /* attack: the honest ping-pong pairs */
    int slow_per;             /* attack: slow readers per attacker address */
    double attack_rate;       /* attack: requests/s of each kind per attacker */
    const char *attack_kinds; /* attack: l (list), c (call), s (slow readers) */
    int windows;              /* attack: windows with (and as many without) */
    int exchange;             /* pairs, callsetup: sends as exchanges (after=, the poll too) */
    int second_after_ms;      /* callsetup: a second batch waits this long after the first */
    int first_at_once;        /* callsetup: a first batch leaves as it is queued (-I: the
                               * library before it gathered a turn's messages) */
} lg_opts;

/* N connections GET o->url for o->duration seconds. */
int lg_run_ceiling(const lg_opts *o);

/* One call; o->iterations messages A -> B's held poll, timed one by one. */
int lg_run_latency(const lg_opts *o);

/* o->n calls ping-ponging ICE candidates for o->duration seconds (as
 * exchanges when o->exchange). */
int lg_run_pairs(const lg_opts *o);

/* o->n pairs setting up calls back to back for o->duration seconds, the way
 * LongPollSocket batches (exchanges when o->exchange); lg_callsetup.c. */
int lg_run_callsetup(const lg_opts *o);

/* o->n sessions each holding a poll for o->duration seconds. */
int lg_run_idle(const lg_opts *o);

/* o->n held polls, then one message to each; time until all returned. */
int lg_run_fanout(const lg_opts *o);

/* Relay latency and /rtc/status round trips without, then with o->n
 * FastCGI connections to the backend's sockets that never read a large
 * answer. */
int lg_run_slow(const lg_opts *o);

/* Relay latency (o->iterations messages) and the message rate of o->pairs
 * ping-pong pairs (o->duration s) without, then with o->n attackers on
 * 127.0.0.2, ... flooding list, call and slow reads (lg_attack.c). */
int lg_run_attack(const lg_opts *o);

#endif
