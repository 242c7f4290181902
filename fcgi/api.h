/* api: the five endpoints (session, send, poll, close, status) and the
 * periodic maintenance, each as "parse, one transaction, answer or park,
 * wake". It owns no thread and does no socket I/O: the caller (server.c for
 * FastCGI and CGI) reads the request, calls in, then writes, parks or waits. */
#ifndef LC_API_H
#define LC_API_H

#include "config.h"
#include "http.h"
#include "proto.h"
#include "store.h"
#include "wake.h"

#include <stddef.h>
#include <stdint.h>

/* One per thread that serves requests. */
typedef struct api_env {
    const lc_config *cfg;
    store *st; /* this thread's connection */
    wake *wk;
    int64_t started_ms; /* process start, wall ms */
    int held_here;      /* polls this process holds now (for status) */
    int64_t due_hint;   /* out: wall ms by which maintenance should run, or INT64_MAX */
    proto_wake *woken;  /* out: sessions this call posted a wake for, with the
                         * messages it queued for them (owned by env; the
                         * caller serves the woken polls, then api_woken_clear) */
    int nwoken, capwoken;
    /* When set, a poll hands its acknowledgement (session, after, time) to
     * this function instead of writing it: the caller writes many at once
     * later (api_write_acks). NULL: every poll writes its own (CGI). */
    void (*defer_ack)(void *arg, int64_t session_id, int64_t after, int64_t now);
    void *defer_arg;
} api_env;

/* One deferred acknowledgement. */
typedef struct api_ack {
    int64_t session_id, after, now;
} api_ack;

/* Writes deferred acknowledgements in one transaction, one write per
 * session (sessions that ended meanwhile are skipped). Sorts and merges
 * acks in place (the array stays the caller's to free). LC_OK or an error (logged;
 * the acknowledgements are lost, which costs history accuracy only:
 * delivery never depends on them). */
int api_write_acks(api_env *e, api_ack *acks, int n);

/* Frees what an api_env accumulated (not the store or wake it points to). */
void api_env_free(api_env *e);

/* Forgets the woken list (and the messages it kept) once the caller has
 * served those polls. */
void api_woken_clear(api_env *e);

/* A poll waiting for its mailbox. */
typedef struct api_poll {
    int64_t session_id;
    int64_t after;
    int64_t poll_gen;
    uint32_t slot, seen; /* wake slot and the value read before the query */
    int64_t deadline;    /* monotonic ms */
    const char *allow_origin;
} api_poll;

enum { API_DONE = 0, API_PARK = 1 };

/* Serves one request (e->nwoken is reset, then lists the woken sessions).
 * body/len is the request body (already limited to
 * cfg->max_body). Returns API_DONE with resp filled, or API_PARK with *poll
 * filled (nothing in resp yet): hold the request, then api_poll_resume on a
 * wake-up or api_poll_expire at the deadline. */
int api_handle(api_env *e, const http_request *req, const char *body, size_t len,
               http_response *resp, api_poll *poll);

/* Re-reads the mailbox of a parked poll that was woken. Returns API_DONE
 * (resp filled) or API_PARK (nothing new after all; poll->seen updated).
 * When e->woken holds exactly the messages the poll waits for (the call
 * that woke it ran on this env), they are the answer: no database read. */
int api_poll_resume(api_env *e, api_poll *poll, http_response *resp);

/* The answer of a poll whose deadline passed with nothing new. */
void api_poll_expire(const api_poll *poll, http_response *resp);

/* Expires idle sessions, ends unanswered calls, prunes history (in small
 * batches). Sets *next to the wall ms when it should run again. Returns
 * LC_OK or an error (logged; try again later). */
int api_maintain(api_env *e, int64_t *next);

#endif
