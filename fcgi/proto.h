/* proto: the signalling protocol (register, list, ping, iceServers, call,
 * incomingCallResponse, onIceCandidate, stop, answer) and the server-side
 * events (session end, ring timeout). It runs inside a transaction the
 * caller opened and turns each message into mailbox entries through store;
 * it collects the sessions to wake after the commit. No HTTP, no I/O. */
#ifndef LC_PROTO_H
#define LC_PROTO_H

#include "config.h"
#include "metrics.h"
#include "store.h"

struct wake; /* wake.h */

#include <jansson.h>

/* A session whose mailbox (or state) this transaction changed, with what it
 * queued there. After the commit, a poll of that session waiting with
 * after = first - 1 and the same poll_gen can be answered with msgs as they
 * are, without reading the mailbox again: its messages with seq > after are
 * exactly first..last, all queued by this transaction. */
typedef struct proto_wake {
    int64_t session_id;
    int64_t first, last; /* seqs queued here; first = 0: none */
    int64_t poll_gen;    /* the session's poll_gen when they were queued */
    int64_t acked;       /* and its acknowledged seq */
    int exact;           /* msgs holds exactly first..last, and the session lives on */
    buf msgs;            /* those messages as poll-answer items (wire_message_add) */
    /* Set by the caller before the commit, with the write lock held: the
     * session's wake-slot value then (wait_mark_slots; wait.c, R5). */
    int slot_read;
    uint32_t slot_value;
    int marked; /* its slot is marked (wake_mark) until the post (wait.c, R7) */
    /* The session's mailbox as the transaction leaves it (mb_known:
     * proto_wake_mailbox), for the mailbox cache after the post (wait.c,
     * R5) when the record is not exact. */
    int mb_known;
    store_mailbox mb;
} proto_wake;

/* Frees w's messages. */
void proto_wake_free(proto_wake *w);


/* Why the server refused something or ended a call: the machine-readable
 * "reason" member of every registerResponse / callResponse with response
 * "rejected" and of every error message, beside its sentence ("message",
 * for people; the sentence may be reworded, the reason names stay), and of
 * every stopCommunication (which has no sentence). proto_reason_name gives
 * the wire name; README.md, "The protocol", lists them. */
typedef enum proto_reason {
    /* registerResponse rejected */
    PROTO_INVALID_NAME, /* not a name proto_name_problem accepts */
    PROTO_TAKEN,        /* the name is held by another live session */
    PROTO_RESERVED,     /* the name's session expired within LONGCALL_NAME_GRACE and the
                           register had not its reclaim key */
    PROTO_IN_CALL,      /* the sender is in a call (also: a call while in one) */
    /* callResponse rejected */
    PROTO_UNREGISTERED, /* the caller has no name yet */
    PROTO_SELF,         /* the caller called its own name */
    PROTO_UNKNOWN,      /* nobody holds the callee's name */
    PROTO_BUSY,         /* the callee is ringing or in a call */
    PROTO_REJECTED,     /* the callee declined (also stopCommunication: by stop) */
    PROTO_NO_ANSWER,    /* not answered within the ring timeout (also stopCommunication) */
    /* stopCommunication */
    PROTO_HUNG_UP,   /* the peer sent stop in an answered call */
    PROTO_CANCELLED, /* the caller sent stop while the call rang */
    PROTO_CLOSED,    /* the peer's session was closed */
    PROTO_EXPIRED,   /* the peer's session expired (no poll) */
    /* error */
    PROTO_BAD_MESSAGE,      /* not a JSON object, or no "id" string */
    PROTO_UNKNOWN_ID,       /* an "id" the protocol does not know */
    PROTO_MISSING_FIELD,    /* a member the message needs is absent (or null) */
    PROTO_BAD_FIELD,        /* a member has the wrong type or value */
    PROTO_NO_INCOMING_CALL, /* incomingCallResponse without a call ringing */
    PROTO_WRONG_CALLER,     /* incomingCallResponse whose "from" is not the caller */
    PROTO_NOT_IN_CALL,      /* onIceCandidate / answer outside a call */
    PROTO_LIST_ONCE,        /* a second list in one batch */
    PROTO_RATE_LIMITED,     /* over LONGCALL_LIST_RATE lists a minute (error); over
                               LONGCALL_CALL_RATE calls a minute, or LONGCALL_CALL_PAIR_RATE
                               to one callee (callResponse rejected) */
    /* callResponse rejected (issue 12, item 3a) */
    PROTO_COOLDOWN, /* the caller (its session or another of its client address) rang the
                       callee within LONGCALL_CALL_COOLDOWN without an answer */
    PROTO_BLOCKED,  /* the callee's session blocked this caller (its session or its name) */
    /* the 429 of a send refused for a mailbox (api.c; the batch is not applied) */
    PROTO_MAILBOX_FULL,  /* a mailbox holds its quota of unacknowledged messages */
    PROTO_MAILBOX_SHARE, /* the recipient's mailbox holds LONGCALL_MAILBOX_SHARE of the sender's */
    /* error (issue 13): a second iceServers in one batch (over LONGCALL_ICE_RATE
       a minute is rate_limited) */
    PROTO_ICE_ONCE,
    PROTO_REASONS        /* the number of reasons */
} proto_reason;

/* A log line held until its transaction commits (proto_log_committed):
 * event (a static name: session_closed, session_expired, call_started,
 * call_answered, call_ended), the session it is about or that acted (0:
 * none), the call and its two sessions, the call's outcome (static). */
typedef struct proto_event {
    const char *event, *outcome;
    int64_t session, call, caller, callee;
} proto_event;

typedef struct proto_ctx {
    store *st;
    const lc_config *cfg;
    store_session self; /* the sender (zeroed for server events) */
    int64_t now;        /* wall ms */
    proto_wake *wake;   /* sessions to wake after the commit; owned, free with proto_ctx_free */
    int nwake, capwake;
    int calls_placed; /* a call started ringing (the ring-timeout clock) */
    int lists;        /* list messages seen in this batch (one is answered) */
    int ice_asks;     /* iceServers messages seen in this batch (one is answered) */
    /* Calls refused by the call limits or a block in this batch, for the
     * caller's summarised log (api.c): how many, and the latest one's
     * reason and callee session. */
    int calls_refused;
    proto_reason call_refused_why;
    int64_t call_refused_to;
    /* For the log of refusals (addr_log_event): the wake file (NULL: debug
     * lines only) and the sender's client address key (NULL: "unknown"). */
    struct wake *wk;
    const char *addr;
    /* Set with LC_QUOTA: why (PROTO_MAILBOX_FULL or PROTO_MAILBOX_SHARE),
     * whose mailbox (empty: an unregistered one) and whether it is the
     * sender's own. */
    proto_reason refused;
    char refused_name[LC_NAME_MAX + 1];
    int refused_own;
    /* The sender's live call as the onIceCandidate before it in this batch
     * found it (ice_call_known): a run of candidates looks it up once. Any
     * other message forgets it (proto_apply): only candidates leave calls
     * as they are. */
    store_call ice_call;
    int ice_call_known;
    /* This transaction queued a message in the sender's own mailbox or
     * ended a session: self's last_seq or ended may no longer be what the
     * database holds (api.c reads the row again before its poll part). */
    int self_written;
    /* What this transaction stored, for metrics_committed after its
     * commit: messages by type, calls ended by outcome. */
    metrics_tx mx;
    /* Its log lines, written after its commit (proto_log_committed). */
    proto_event *ev;
    int nev, capev;
} proto_ctx;

/* Adds session sid to the sessions c wakes after its commit (its state
 * changed: a newer poll took over), with no answer from memory: a poll
 * woken on it reads its mailbox (exact = 0). */
void proto_wake_session(proto_ctx *c, int64_t sid);

/* Records, in the wake record of session sid (added if missing), its
 * mailbox *mb as read in the write transaction after its last change
 * (wait.c, R5: the post may then remember it). */
void proto_wake_mailbox(proto_ctx *c, int64_t sid, const store_mailbox *mb);

/* The wire name of r ("busy", "no_answer", ...), a static string; NULL for
 * a value outside the enum. */
const char *proto_reason_name(proto_reason r);

/* What the latest of c's refused calls ran into, for the summarised log
 * line ("over LONGCALL_CALL_RATE=20 calls a minute", "within
 * LONGCALL_CALL_COOLDOWN=60 s of an unanswered call to session 12", ...),
 * NUL-terminated into out (n bytes). */
void proto_call_refusal_text(const proto_ctx *c, char *out, size_t n);

/* Applies one client message from c->self (msg is borrowed). Replies and
 * forwarded messages go to mailboxes; a bad message becomes an error in
 * the sender's mailbox. Returns LC_OK, LC_QUOTA (a mailbox refused a
 * message: c->refused says why; the caller rolls the batch back) or
 * LC_ERR / LC_BUSY.
 *
 * The mailbox rule (issue 12, 3b), per message queued:
 * - from the sender to another session (relayed: incomingCall,
 *   iceCandidate, stopCommunication, callResponse, startCommunication):
 *   refused when the recipient's mailbox holds LONGCALL_MAILBOX_QUOTA
 *   unacknowledged messages (PROTO_MAILBOX_FULL), or LONGCALL_MAILBOX_SHARE
 *   of them from this sender session (PROTO_MAILBOX_SHARE);
 * - to the sender itself (registerResponse, listResponse, pong, error,
 *   rejections, startCommunication): refused only past 2 x the quota.
 *   Other sessions can fill at most the quota, so one's own replies always
 *   have room whoever floods the mailbox;
 * - server events (session end, ring timeout: c->self.id == 0): never. */
int proto_apply(proto_ctx *c, json_t *msg);

/* Ends session_id for reason ("closed" or "expired"): its call, if any,
 * ends and the peer gets stopCommunication with that reason; the name is
 * freed. */
int proto_end_session(proto_ctx *c, int64_t session_id, const char *reason);

/* Ends call_id if it is still unanswered: the caller gets callResponse
 * rejected "no answer", the callee stopCommunication, both with reason
 * no_answer. */
int proto_ring_timeout(proto_ctx *c, int64_t call_id);

/* The one check of a name (register): NULL when name (NUL-terminated) may
 * be registered, else a static sentence saying why not. A name is 1-64
 * bytes of UTF-8 in Unicode NFC (not normalised here: a client sends the
 * NFC form), with no character of general category C (control, format --
 * zero-width, bidi embeddings, overrides and isolates --, surrogate,
 * private use, unassigned), Zl or Zp, no Default_Ignorable_Code_Point, no
 * space separator but U+0020, and no leading or trailing space. Look-alikes
 * in other scripts (Cyrillic U+0430 for Latin "a") are different names.
 * Uses libunistring's tables; README "The protocol". */
const char *proto_name_problem(const char *name);

/* 1 when proto_name_problem(name) is NULL, else 0. */
int proto_name_valid(const char *name);

void proto_ctx_free(proto_ctx *c);

/* After c's transaction committed: logs the sessions and calls it ended or
 * started (session_closed, session_expired, call_started, call_answered,
 * call_ended, at info level, with the session and call row ids -- never a
 * token) and forgets them. Each is bounded by the limits on sessions and
 * calls, not by the log. */
void proto_log_committed(proto_ctx *c);

#endif
