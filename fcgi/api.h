/* api: the five endpoints (session, send, poll, close, status) and the
 * periodic maintenance, each as "parse, one transaction, answer or park,
 * wake". It owns no thread and does no socket I/O: a front reads the
 * request, calls in, and answers, parks or waits as the result says. A
 * poll's path after its parameters are read is wait's. */
#ifndef LC_API_H
#define LC_API_H

#include "env.h"
#include "http.h"
#include "wait.h"

#include <stddef.h>
#include <stdint.h>

/* What a call left for its front to do. Free with api_result_free. */
typedef struct api_result {
    int park;           /* 1: the poll waits (poll filled, resp empty); 0: answer resp */
    http_response resp; /* the answer */
    wait_poll poll;     /* the waiting poll (poll.allow_origin points into the request's
                         * parameters: a front that keeps the poll longer copies it) */
    wait_woken woken;   /* sessions this call posted, with what it queued for them: the
                         * front serves its own parked polls of those sessions now */
    int64_t due;        /* wall ms by which maintenance should run, or INT64_MAX */
    /* An exchange whose batch is stored (resp still empty): the front first
     * answers the polls in woken -- a peer waiting for that batch is what a
     * call set-up waits on -- then calls api_then_poll, which makes the
     * request the session's poll. */
    int then_poll;
    uint8_t then_hash[32];
    int64_t then_after, then_timeout;
    int64_t then_gen; /* the session's poll_gen its commit set (api.c, supersede_in_send) */
} api_result;

/* A send whose prev= batch was not stored yet when it came (README, "The
 * wire contract"): what it needs to run again once its session's slot
 * moves or its re-check time comes (wait.c, R9). Held by the front in
 * wait_poll.send; free with api_held_send_free. */
typedef struct api_held_send {
    char *query, *content_type; /* the request's QUERY_STRING, CONTENT_TYPE (may be NULL) */
    char *body;
    size_t len;
    char addr[ADDR_KEY_MAX];
    int64_t give_up;  /* lc_mono_ms() after which it is answered 409 out_of_order */
    int64_t session_id;
    wake *wk;         /* whose count (counted) api_held_send_free takes back */
    int counted;      /* counted on its slot (wake_send_waits) while it waits */
    size_t cost;      /* its bytes in the process's budget (api.c, HELD_SEND_BODIES) */
} api_held_send;

/* Takes back hs's mark and frees it (NULL: nothing). */
void api_held_send_free(api_held_send *hs);

/* Runs held send hs again (its session's slot moved, or its re-check time
 * came): fills *r as api_handle does -- applied (then_poll for an
 * exchange), refused, or still waiting (r->park with r->poll.send == hs;
 * after hs->give_up it is answered 409 out_of_order instead). Takes hs:
 * unless it waits again it is freed here. allow_origin is the request's
 * (api_precheck), copied into the answer and a poll it becomes. */
void api_send_resume(lc_env *e, api_held_send *hs, const char *allow_origin, api_result *r);

/* What api_handle answers before it looks at the body: 403 (an Origin not
 * allowed), 404 (no such endpoint), 204 (a preflight) or 405 (the wrong
 * method), written into resp (which must be zeroed; the caller frees it).
 * Returns 1 when resp is the answer, 0 when the request goes on (then
 * resp->allow_origin is set). No state is touched: a front can answer these
 * without reading the body. */
int api_precheck(const lc_config *cfg, const http_request *req, http_response *resp);

/* Serves one request: body/len is its body (at most cfg->max_body bytes,
 * NUL-terminated). Fills *r (any earlier content is not freed). */
void api_handle(lc_env *e, const http_request *req, const char *body, size_t len, api_result *r);

/* For r->then_poll (and nothing else): goes on with the request as the
 * session's poll from r->then_after, as a poll does (README, "The wire
 * contract"): fills r->resp, or r->park and r->poll; appends to r->woken the
 * older poll it superseded (from index n of woken on: the front serves
 * those too). Clears then_poll. */
void api_then_poll(lc_env *e, api_result *r);

/* Frees what r holds (the answer's body, the woken records). */
void api_result_free(api_result *r);

/* Expires idle sessions, ends unanswered calls, prunes history (in small
 * batches). Appends the sessions it woke (the peers told) to woken and sets
 * *next to the wall ms when it should run again. Returns LC_OK or an error
 * (logged; *next is a second away). */
int api_maintain(lc_env *e, wait_woken *woken, int64_t *next);

/* Sets *when to the wall ms when api_maintain next has something to do
 * (an idle session's expiry, a ring time-out, history past its retention).
 * Returns LC_OK or an error (then *when is a second away). */
int api_maintain_due(lc_env *e, int64_t *when);

#endif
