/* metrics: the site's counters for GET /rtc/metrics, kept in a shared
 * memory file beside the wake file (<wake file>.metrics) so that every
 * process of the machine -- FastCGI ones, CGI requests, mod_fcgid's -- adds
 * to the same figures and a scrape reaching any one of them answers the
 * totals; and their Prometheus text exposition (version 0.0.4). It does not
 * decide who may scrape (api.c), nor read the database: the gauges come
 * from the caller. Every function is a no-op until metrics_open worked. */
#ifndef LC_METRICS_H
#define LC_METRICS_H

#include "http.h"
#include "util.h"

#include <stdint.h>

/* Label sets (metrics.c has their names). */
#define METRICS_TYPES 12   /* message types (metrics_type) */
#define METRICS_OUTCOMES 7 /* how calls end (metrics_outcome) */
/* The endpoint label of a send with after= (the others: http_endpoint). */
#define METRICS_EP_EXCHANGE (EP_METRICS + 1)

/* Maps the file (made or rebuilt when its layout is not this build's) for
 * this process. 0, or -1 after logging (the process runs on without
 * metrics: /rtc/metrics then says so). Call once, before serving. */
int metrics_open(const char *wake_path);

/* The endpoint label of req: its endpoint, "exchange" for a send with
 * after= (a send that also polls). */
int metrics_endpoint(const http_request *req);

/* A request of endpoint label ep (metrics_endpoint) answered with status,
 * usec after it came. */
void metrics_request(int ep, int status, int64_t usec);

/* The index of message type (its "id") in the type label set; the last
 * one ("other") for a type not listed. */
int metrics_type(const char *type);
/* Likewise for a call's outcome as stored (store_call_end). */
int metrics_outcome(const char *outcome);

/* What one transaction stored, counted as it goes (proto_ctx) and added
 * once it commits. */
typedef struct metrics_tx {
    uint32_t stored[METRICS_TYPES];   /* messages, by type */
    uint32_t ended[METRICS_OUTCOMES]; /* calls, by outcome */
    uint32_t turn;                    /* TURN credentials minted (iceServers) */
} metrics_tx;

/* After a commit: adds t to the counters and zeroes it (a rolled back
 * transaction's is just dropped by the caller). */
void metrics_committed(metrics_tx *t);

/* A poll or exchange answer (its body) is written: counts its messages by
 * type. Returns how many messages it has. */
int metrics_delivered(const char *body, size_t len);
/* How many messages that answer body has, counting nothing. */
int metrics_count_messages(const char *body, size_t len);

/* The time of a post of wake slot slot (wait.c's commit, then post), and
 * a parked poll on it answered with messages: relay latency, commit to
 * answer. */
void metrics_posted(uint32_t slot);
void metrics_relayed(uint32_t slot);

/* A limit (a setting's name, LONGCALL_...) refused n requests or
 * messages. */
void metrics_limit(const char *setting, int n);

/* A parked poll woken by a post of its own process (other 0: the
 * poster served it) or of another process (other 1: through the futex). */
void metrics_wakeup(int other, int n);

/* A WAL checkpoint took usec. */
void metrics_checkpoint(int64_t usec);

/* What the caller reads at a scrape. */
typedef struct metrics_gauges {
    int64_t held_polls, sessions, registered, calls, queued;
    int64_t db_bytes, wal_bytes; /* -1: unknown */
    int processes;
    const char *store; /* "sqlite" or "postgresql" (build_info) */
} metrics_gauges;

/* Appends the text exposition of every metric (the site's totals) and g
 * to out. 0, or -1 when metrics_open did not work (out untouched). */
int metrics_render(const metrics_gauges *g, buf *out);

#endif
