/* proto: the signalling protocol (register, list, ping, call,
 * incomingCallResponse, onIceCandidate, stop, answer) and the server-side
 * events (session end, ring timeout). It runs inside a transaction the
 * caller opened and turns each message into mailbox entries through store;
 * it collects the sessions to wake after the commit. No HTTP, no I/O. */
#ifndef LC_PROTO_H
#define LC_PROTO_H

#include "config.h"
#include "store.h"

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
     * session's wake-slot value then (wait_note_slots; wait.c, R5). */
    int slot_read;
    uint32_t slot_value;
} proto_wake;

/* Frees w's messages. */
void proto_wake_free(proto_wake *w);

typedef struct proto_ctx {
    store *st;
    const lc_config *cfg;
    store_session self; /* the sender (zeroed for server events) */
    int64_t now;        /* wall ms */
    proto_wake *wake;   /* sessions to wake after the commit; owned, free with proto_ctx_free */
    int nwake, capwake;
    int calls_placed; /* a call started ringing (the ring-timeout clock) */
} proto_ctx;

/* Applies one client message from c->self (msg is borrowed). Replies and
 * forwarded messages go to mailboxes; a bad message becomes an error in
 * the sender's mailbox. Returns LC_OK, LC_QUOTA (a mailbox is full: the
 * caller rolls the batch back) or LC_ERR / LC_BUSY. */
int proto_apply(proto_ctx *c, json_t *msg);

/* Ends session_id for reason ("closed" or "expired"): its call, if any,
 * ends and the peer gets stopCommunication; the name is freed. */
int proto_end_session(proto_ctx *c, int64_t session_id, const char *reason);

/* Ends call_id if it is still unanswered: the caller gets callResponse
 * rejected "no answer", the callee stopCommunication. */
int proto_ring_timeout(proto_ctx *c, int64_t call_id);

/* Returns 1 when name is 1-64 bytes of UTF-8 without control characters
 * (C0, DEL, C1), else 0. */
int proto_name_valid(const char *name);

void proto_ctx_free(proto_ctx *c);

#endif
