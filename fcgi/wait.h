/* wait: a poll from its request to its answer, however long it waits --
 * reading the mailbox, parking, being woken by a send, superseding an older
 * poll, time-out -- and the per-process caches and deferred
 * acknowledgements that keep it cheap. The rules that make a held poll
 * never miss a message are written once in wait.c. It does not own sockets
 * (park watches them, the fronts write answers) nor the protocol (proto). */
#ifndef LC_WAIT_H
#define LC_WAIT_H

#include "env.h"
#include "http.h"
#include "park.h"
#include "proto.h"

#include <stdint.h>

struct api_held_send; /* api.h */

/* A poll waiting for its mailbox. The front sets pe.fd before wait_park;
 * everything else is wait's. */
typedef struct wait_poll {
    park_entry pe;      /* pe.slot: the session's wake slot; pe.seen: the slot
                         * value this poll has accounted for; pe.deadline */
    int64_t session_id;
    int64_t after;      /* the cursor: it waits for seq > after */
    int64_t poll_gen;   /* the session's poll_gen it began under */
    const char *allow_origin; /* echoed in its answer; the front keeps it alive */
    int exchange;             /* a send that also polls (wait_ask.exchange) */
    char addr[ADDR_KEY_MAX];  /* its client (api sets it with pe.addr_bucket), for the log */
    /* Not NULL: no poll but a send whose prev= is not stored yet, waiting
     * for its session's slot to move (wait.c, R9); owned by the holder of
     * the wait_poll (api_held_send_free). */
    struct api_held_send *send;
} wait_poll;

/* The sessions a request woke (posted after its commit), each with what it
 * queued for them: a poll resumed on the same thread is answered from it
 * without reading the database. Owned by whoever holds it (api_result). */
typedef struct wait_woken {
    proto_wake *w;
    int n, cap;
} wait_woken;

/* Frees the records (and their messages) and empties the list; the list
 * can be used again. */
void wait_woken_free(wait_woken *k);

/* WAIT_AGAIN: only for a held send (wait_poll.send), whose slot moved
 * while it was being parked: run it again (api_send_resume). */
enum { WAIT_ANSWER = 0, WAIT_PARK = 1, WAIT_AGAIN = 2 };

/* A poll as the request asked it: the session's token digest, its cursor
 * and how long it may wait (seconds, already capped at LONGCALL_POLL_MAX). */
typedef struct wait_ask {
    const uint8_t *hash; /* 32 bytes */
    int64_t after;
    int64_t timeout;
    int exchange; /* a send that also polls: its answers say "ok": true too */
    /* An exchange's poll part: the poll_gen its send's commit set (that
     * commit superseded every older poll, R4). Under another poll_gen a
     * newer poll or exchange took over meanwhile: answered at once. */
    int64_t gen;
} wait_ask;

/* Serves a poll: answers it from its mailbox (WAIT_ANSWER, resp filled: the
 * messages after the cursor, an empty answer for timeout 0, or an error),
 * or decides it waits (WAIT_PARK, *p filled: park it with wait_park, or in
 * CGI wait on its slot). When it supersedes an older held poll of its
 * session it posts the slot, recorded in woken. */
int wait_poll_start(lc_env *e, const wait_ask *ask, http_response *resp, wait_poll *p,
                    wait_woken *woken);

/* Serves a poll whose slot moved (or that may have missed nothing at all):
 * WAIT_ANSWER with resp filled (new messages, a newer poll took over, the
 * session ended, or a database error), or WAIT_PARK (nothing new after all;
 * p->pe.seen updated: park it again). With woken (may be NULL) holding
 * exactly what it waits for (the request that woke it ran on this thread),
 * no database read. */
int wait_resume(lc_env *e, wait_poll *p, const wait_woken *woken, http_response *resp);

/* The answer of a poll whose deadline passed with nothing new. */
void wait_expire(const wait_poll *p, http_response *resp);

/* Parks p (p->pe.fd set): WAIT_PARK (p belongs to pk until park_next or
 * park_take hands it back), or WAIT_ANSWER with resp filled when it cannot
 * wait there: the park is full or failed (503; a held send: its 409
 * out_of_order), or its slot moved while it was being parked and the
 * resumed poll has its answer; for a held send whose slot moved,
 * WAIT_AGAIN (resp untouched). */
int wait_park(lc_env *e, park *pk, wait_poll *p, http_response *resp);

/* Fills resp for poll p that cannot be held (a limit: status 429 or 503,
 * sentence why, Retry-After retry_after): that error for a poll; for an
 * exchange, whose batch is already stored, the empty answer with "ok":
 * true at its cursor (a 4xx/5xx there would read as "not sent"). */
void wait_cannot_hold(const wait_poll *p, http_response *resp, int status, const char *why,
                      int retry_after);

/* Fills resp with the 409 out_of_order of a send whose prev= batch is not
 * stored (and stores nothing). */
void wait_out_of_order(http_response *resp);

/* After the commit of a transaction whose proto_ctx is c: posts every
 * session c changed (the "commit, then post" rule) and moves each record,
 * with its messages, into woken (c keeps empty records). */
void wait_post_all(lc_env *e, proto_ctx *c, wait_woken *woken);

/* Before the commit, with the write lock held: marks the slot of each of
 * c's wake records (wake_mark; wait.c, R7) and records its value, so that
 * wait_post_all can tell whether another post came between (R5). Every
 * writer that posts calls it; the marks are taken back by wait_post_all
 * after the commit, or by wait_unmark_all when the transaction is rolled
 * back. On a shared (PostgreSQL) store it also sends the slots to the
 * other machines (notify_slots; wait.c, R8). Returns LC_OK, or the store's
 * failure to send them (the caller rolls back and calls wait_unmark_all). */
int wait_mark_slots(lc_env *e, proto_ctx *c);
void wait_unmark_all(lc_env *e, proto_ctx *c);

/* Deferred acknowledgements (e->defer_acks): the monotonic ms at which the
 * oldest one waiting was queued, or INT64_MAX when none waits. */
int64_t wait_acks_since(void);

/* Writes every deferred acknowledgement in one transaction, one write per
 * session (sessions that ended meanwhile are skipped). LC_OK or an error
 * (logged by store; the acknowledgements are lost, which costs history
 * accuracy and quota room only: delivery never depends on them). */
int wait_write_acks(lc_env *e);

#endif
