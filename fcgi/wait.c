/* wait: the poll path; see wait.h.
 *
 * Why a held poll never misses a message. Each rule, and where it holds:
 *
 *  R1 Commit, then post. Whatever changes a mailbox or a session (a
 *     message, a newer poll, the end) is committed before its session's
 *     wake slot is bumped: wait_post_all runs after store_commit in every
 *     writer (api.c ep_send, ep_close, api_maintain) and wait_poll_start
 *     posts its own supersede after its commit.
 *  R2 Read the slot, then the mailbox. A poll reads its slot value (seen)
 *     before the snapshot it reads the mailbox in begins (wait_poll_start,
 *     snapshot_session; wait_resume). A message committed after that snapshot
 *     began is posted after the read (R1), so the slot moves past seen.
 *  R3 Park, then check. park_add raises the slot's held count and compares
 *     the slot with seen under the park's lock, which the park thread's
 *     scan also holds: a post before the check is seen there (PARK_MOVED:
 *     wait_park resumes it at once); one after it finds the entry in its
 *     bucket. A post from another process reaches the park thread through
 *     the process's futex word, read once in park_new before any entry can
 *     be parked.
 *  R4 A newer poll supersedes an older one. A poll that finds the slot held
 *     (wake_slot_held_count) bumps the session's poll_gen in its write
 *     transaction and posts the slot after the commit; the older poll,
 *     resumed, sees another poll_gen and answers what it has (wait_resume).
 *     Its own post does not wake the new poll: seen is moved past it when
 *     no other post came between. An exchange supersedes in its send's own
 *     transaction instead (api.c, supersede_in_send: poll_gen bumped, its
 *     session posted with the recipients), so that exchanges of one session
 *     supersede in the order their batches commit: its poll part, begun
 *     later, carries that poll_gen (wait_ask.gen) and answers at once when
 *     it finds another (a newer exchange committed between) instead of
 *     taking over from the newer one.
 *  R5 The mailbox cache is valid only at the slot value stored with it.
 *     Every change posts after its commit (R1), so while the slot holds
 *     that value the entry is at least as new as a snapshot begun now --
 *     the guarantee R2 gives. An entry is written only from a snapshot begun
 *     after its slot value was read, or by a send that read the slot under
 *     the write lock (wait_mark_slots) and saw no other post before its
 *     own (wait_post_all): from the messages it queued (an exact record),
 *     or, for an exchange's own session, from the mailbox its supersede
 *     leaves, the last change the transaction makes to that row
 *     (store_session_poll's *left, proto_wake_mailbox; SQLite only: there
 *     the write lock makes it the state its commit leaves), so that its
 *     poll part parks without a transaction.
 *  R6 An answer from memory. A poll resumed on the thread whose request
 *     woke it is answered from that request's records only when they hold
 *     exactly first..last with first = after + 1 under the same poll_gen
 *     (proto_wake.exact): the same answer a fresh read would give.
 *  R7 A writer may die between its commit and its post (kill -9, a crash):
 *     then no post ever comes, and R5 alone would let every process trust
 *     its cache entry at the unchanged slot value for good -- the message
 *     committed and answered ok would never be delivered. So each writer
 *     marks the slots of the sessions it changes before its commit
 *     (wait_mark_slots) and takes the marks back after its post
 *     (wait_post_all) or rollback (wait_unmark_all); the cache is used only
 *     on a slot without marks, read after the slot value. A mark left by a
 *     dead writer only sends that slot's polls to the database; a poll
 *     parked before the death waits out its time-out and the next poll
 *     reads the message. (A poll's own supersede commit marks nothing: an
 *     unposted poll_gen costs the older poll its time-out, not a message.)
 *  R8 Several machines on one PostgreSQL (notify.c). The wake file is one
 *     machine's, so R1's post reaches only the processes of the committing
 *     machine; the others learn of the commit through a notification:
 *     wait_mark_slots sends the slots with pg_notify inside the write
 *     transaction, PostgreSQL delivers it at the commit (in commit order)
 *     to every connection that LISTENs then, and the machine's listener
 *     (one process per wake file, notify.c) posts those slots in the wake
 *     file, once for every process of the machine (skipping its
 *     own machine's notifications: the poster posted them already, and a
 *     second post would wake a poll it answered). A notification
 *     is thus a post that comes after the commit, as R1 wants, later than
 *     a local one. R2 and R3 then hold across machines as long as the
 *     LISTEN was in effect before the poll read its slot: a commit after
 *     the poll's snapshot began notifies after that, its post moves the
 *     slot past seen. A poll whose slot was read while no LISTEN was in
 *     effect (before the first one took, while its connection was lost
 *     and made again, or after the listening process ended and before
 *     another process of the machine took over) is covered by the
 *     listener posting every slot once each time its LISTEN has taken
 *     effect: that moves the poll's slot too.
 *     R5 does not hold across machines as it stands: a remote commit's
 *     post comes a notification later, so an unchanged slot does not mean
 *     an entry as new as a snapshot begun now. What replaces it: on a
 *     shared store the mailbox cache may let a poll park (its wake-up comes
 *     with the notification of any commit the entry missed, which moves
 *     the slot past seen) but never answer it (from_cache: no cache answer
 *     to timeout=0 polls there); an entry that outlived a lost LISTEN is
 *     made useless by the post of every slot after the LISTEN is back. R7's
 *     marks are per machine too: a writer killed between its commit and its
 *     post on machine A still notified (its commit carried the
 *     notification), so the other machines are woken; A's own processes
 *     fall back on R7. R4's held count is per machine too: a poll held on
 *     another machine is not seen; an exchange supersedes in its send's own
 *     transaction (R4), whose post of its session is notified, so it
 *     supersedes everywhere; a plain poll still supersedes only polls of
 *     its own machine.
 *  R9 A send whose prev= batch is not stored yet waits for it (api.c,
 *     hold_send) instead of its 409 out_of_order: parked like a poll
 *     (wait_poll.send; counted in the park's capacity, on its slot and
 *     against LONGCALL_ADDR_HELD), on its own session's wake slot. What
 *     wakes it is a post of that slot after the commit of the session's
 *     next batch: in its write transaction the waiting send counts itself
 *     on the slot (wake_send_waits) and reads the slot's value (seen)
 *     while it holds the write lock, and every send commits with its own
 *     session among the ones it wakes when it finds its slot counted under
 *     the write lock (api.c ep_send). On one machine the write lock orders
 *     the two: a batch committed after the waiting send's check saw the
 *     count, so its post moves the slot past seen (the park, R3, hands the
 *     send back, which runs again: applied, or parked anew). The slot, not
 *     a timer, so that the overtaken batch's commit resumes the send at
 *     once, on the thread that committed it (park_take). A timer backs it
 *     up: the send also looks again every SEND_RECHECK_MS (50 ms) -- on
 *     PostgreSQL there is no one write lock, and a plain send's commit on
 *     another machine carries no notification of its own session (an
 *     exchange's does: R4) -- and after SEND_WAIT_MS
 *     (2 s) without its prev it is answered 409 out_of_order, storing
 *     nothing, as is one that cannot be parked (a limit:
 *     wait_cannot_hold). The waiting send is the session's newer poll (an
 *     exchange, in LongPollSocket): an exchange that finds its slot counted
 *     makes no poll part of its own, which would supersede that newer one
 *     (R4) -- it is answered at once, ok, with nothing new. A count left by
 *     a killed process costs the slot's sessions a post of their own slot
 *     per send and their exchanges' poll parts (one more poll), never a
 *     message. */

#include "wait.h"

#include "metrics.h"

#include "notify.h"
#include "store.h"
#include "wire.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A poll answer's limits. Its bodies add up to at most FETCH_MAX_BYTES, or
 * to one message when that alone is longer (a message is at most
 * LONGCALL_MAX_BODY plus the members proto adds): an answer stays within
 * what a slow reader can make a writer hold (front_fcgi.c). */
#define FETCH_MAX_COUNT 200
#define FETCH_MAX_BYTES (256 * 1024)

/* ---- session ids by token digest -------------------------------------
 * Remembered per process: a poll must read its wake slot before its
 * mailbox snapshot begins (R2), and the slot is the session's. Knowing the
 * id beforehand saves the poll a transaction. A stale or colliding entry
 * costs nothing but that: the id is checked in the snapshot. */
#define SID_CACHE 4096
static struct {
    pthread_mutex_t mu;
    struct {
        uint8_t hash[32];
        int64_t id;
    } e[SID_CACHE];
} sid_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t sid_get(const uint8_t hash[32])
{
    unsigned i = ((unsigned)hash[0] << 8 | hash[1]) % SID_CACHE;
    int64_t id = 0;
    pthread_mutex_lock(&sid_cache.mu);
    if (memcmp(sid_cache.e[i].hash, hash, 32) == 0) id = sid_cache.e[i].id;
    pthread_mutex_unlock(&sid_cache.mu);
    return id;
}

static void sid_put(const uint8_t hash[32], int64_t id)
{
    unsigned i = ((unsigned)hash[0] << 8 | hash[1]) % SID_CACHE;
    pthread_mutex_lock(&sid_cache.mu);
    memcpy(sid_cache.e[i].hash, hash, 32);
    sid_cache.e[i].id = id;
    pthread_mutex_unlock(&sid_cache.mu);
}

/* ---- the mailbox cache (R5) -------------------------------------------
 * What this process last knew of a session's mailbox, and the value its
 * wake slot had then. A poll that finds its entry current and nothing after
 * its cursor parks without a transaction. A stale or colliding entry only
 * costs the poll its transaction. */
#define MBOX_CACHE 4096
typedef struct mbox_entry {
    int64_t id;
    store_mailbox mb;
    uint32_t slot_value;
} mbox_entry;
static struct {
    pthread_mutex_t mu;
    mbox_entry e[MBOX_CACHE];
} mbox_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void mbox_put(int64_t id, const store_mailbox *mb, uint32_t slot_value)
{
    pthread_mutex_lock(&mbox_cache.mu);
    mbox_cache.e[(uint64_t)id % MBOX_CACHE] = (mbox_entry){id, *mb, slot_value};
    pthread_mutex_unlock(&mbox_cache.mu);
}

/* Returns 1 and fills *mb when the entry of id was made at slot value v. */
static int mbox_get(int64_t id, uint32_t v, store_mailbox *mb)
{
    pthread_mutex_lock(&mbox_cache.mu);
    const mbox_entry *x = &mbox_cache.e[(uint64_t)id % MBOX_CACHE];
    int hit = x->id == id && x->slot_value == v;
    if (hit) *mb = x->mb;
    pthread_mutex_unlock(&mbox_cache.mu);
    return hit;
}

/* ---- deferred acknowledgements ----------------------------------------
 * Acknowledgements are history and quota only -- which messages a poll
 * returns depends on its after= alone -- so a FastCGI process writes them
 * a few milliseconds later, many in one transaction (the acks job of jobs.c). */
typedef struct ack {
    int64_t session_id, after, now;
} ack;
static struct {
    pthread_mutex_t mu;
    ack *a;
    int n, cap;
    int64_t since; /* lc_mono_ms() of the first waiting one */
} acks = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void defer_ack(int64_t session_id, int64_t after, int64_t now)
{
    pthread_mutex_lock(&acks.mu);
    if (acks.n == 0) acks.since = lc_mono_ms();
    if (acks.n == acks.cap) {
        acks.cap = acks.cap ? acks.cap * 2 : 64;
        acks.a = xrealloc(acks.a, (size_t)acks.cap * sizeof *acks.a);
    }
    acks.a[acks.n++] = (ack){session_id, after, now};
    pthread_mutex_unlock(&acks.mu);
}

int64_t wait_acks_since(void)
{
    pthread_mutex_lock(&acks.mu);
    int64_t t = acks.n ? acks.since : INT64_MAX;
    pthread_mutex_unlock(&acks.mu);
    return t;
}

static int ack_cmp(const void *a, const void *b)
{
    const ack *x = a, *y = b;
    return x->session_id < y->session_id ? -1 : x->session_id > y->session_id;
}

/* Sorts a by session and merges each session's into one with the highest
 * after= and the latest time (an ack never lowers either). Returns how
 * many are left. */
static int merge_acks(ack *a, int n)
{
    if (n == 0) return 0;
    qsort(a, (size_t)n, sizeof *a, ack_cmp);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && a[m - 1].session_id == a[i].session_id) {
            ack *k = &a[m - 1];
            if (a[i].after > k->after) k->after = a[i].after;
            if (a[i].now > k->now) k->now = a[i].now;
        } else {
            a[m++] = a[i];
        }
    }
    return m;
}

int wait_write_acks(lc_env *e)
{
    pthread_mutex_lock(&acks.mu);
    ack *a = acks.a;
    int n = acks.n;
    acks.a = NULL;
    acks.n = acks.cap = 0;
    pthread_mutex_unlock(&acks.mu);
    int m = merge_acks(a, n);
    int rc = m ? store_begin(e->st) : LC_OK;
    for (int i = 0; i < m && rc == LC_OK; i++) {
        rc = store_session_poll(e->st, NULL, a[i].session_id, a[i].after, a[i].now, 0, NULL);
        if (rc == LC_NOTFOUND) rc = LC_OK; /* ended meanwhile */
    }
    if (m && rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) store_rollback(e->st);
    free(a);
    return rc;
}

/* ---- answers ---------------------------------------------------------- */

void wait_woken_free(wait_woken *k)
{
    for (int i = 0; i < k->n; i++)
        proto_wake_free(&k->w[i]);
    free(k->w);
    *k = (wait_woken){0};
}

/* A poll answer of the messages in list (wire_message_add's form; NULL:
 * none), seq last. */
static void poll_answer(http_response *resp, int ok, int64_t last, const buf *list)
{
    resp->status = 200;
    resp->stream = 1;
    wire_poll_answer(&resp->body, ok, last, list);
}

/* Reads, in the open transaction, the messages of session id after the
 * cursor into rows. Sets *last (after, when none). */
static int fetch(lc_env *e, int64_t id, int64_t after, store_rows *rows, int64_t *last)
{
    return store_fetch(e->st, id, after, FETCH_MAX_COUNT, FETCH_MAX_BYTES, rows, last);
}

/* The poll answer of rows, seq last. */
static void rows_answer(http_response *resp, int ok, int64_t last, const store_rows *rows)
{
    resp->status = 200;
    resp->stream = 1;
    wire_poll_rows(&resp->body, ok, last, rows);
}

/* Posts w's session (R1: its changes are committed) and moves w, with its
 * messages, into woken. Returns the slot's value before the post. */
static uint32_t post(lc_env *e, proto_wake *w, wait_woken *woken)
{
    uint32_t before = wake_post(e->wk, w->session_id);
    metrics_posted(wake_slot(w->session_id));
    if (w->marked) wake_unmark(e->wk, w->session_id); /* R7: after the post */
    /* R5: no other post between the read under the write lock and ours:
     * every change committed before ours is in w, and any later one posts
     * after. */
    if (w->slot_read && w->exact && w->first && before == w->slot_value) {
        store_mailbox mb = {.seq = w->last, .acked = w->acked, .poll_gen = w->poll_gen};
        mbox_put(w->session_id, &mb, before + 1);
    } else if (w->slot_read && w->mb_known && before == w->slot_value) {
        mbox_put(w->session_id, &w->mb, before + 1); /* read under the write lock */
    }
    if (woken->n == woken->cap) {
        woken->cap = woken->cap ? woken->cap * 2 : 8;
        woken->w = xrealloc(woken->w, (size_t)woken->cap * sizeof *woken->w);
    }
    woken->w[woken->n++] = *w;
    *w = (proto_wake){.session_id = w->session_id};
    return before;
}

void wait_post_all(lc_env *e, proto_ctx *c, wait_woken *woken)
{
    metrics_committed(&c->mx); /* after the commit, as the posts */
    proto_log_committed(c);
    for (int i = 0; i < c->nwake; i++)
        post(e, &c->wake[i], woken);
}

int wait_mark_slots(lc_env *e, proto_ctx *c)
{
    for (int i = 0; i < c->nwake; i++) {
        proto_wake *w = &c->wake[i];
        if (!w->marked) wake_mark(e->wk, w->session_id); /* R7 */
        w->marked = 1;
        w->slot_read = 1;
        w->slot_value = wake_slot_value(e->wk, wake_slot(w->session_id));
    }
    if (!c->nwake || !store_shared(e->st)) return LC_OK;
    /* R8: the other machines' posts, sent at our commit. */
    uint32_t *slots = xmalloc((size_t)c->nwake * sizeof *slots);
    for (int i = 0; i < c->nwake; i++)
        slots[i] = wake_slot(c->wake[i].session_id);
    int rc = notify_slots(e, slots, c->nwake);
    free(slots);
    return rc;
}

void wait_unmark_all(lc_env *e, proto_ctx *c)
{
    for (int i = 0; i < c->nwake; i++) {
        if (c->wake[i].marked) wake_unmark(e->wk, c->wake[i].session_id);
        c->wake[i].marked = 0;
    }
}

/* ---- the poll --------------------------------------------------------- */

/* Fills *p for a poll that waits from now on. Returns WAIT_PARK. */
static int to_park(wait_poll *p, int64_t id, const wait_ask *ask, int64_t gen, uint32_t slot,
                   uint32_t seen)
{
    *p = (wait_poll){.session_id = id, .after = ask->after, .poll_gen = gen,
                     .exchange = ask->exchange};
    p->pe.slot = slot;
    p->pe.seen = seen;
    p->pe.deadline = lc_mono_ms() + ask->timeout * 1000;
    return WAIT_PARK;
}

/* A mailbox so full that its acknowledgement is written at once (the
 * client may send again at once), not deferred: half its quota, or one
 * sender's share (a sender refused over its share retries at once). */
static int near_quota(const lc_env *e, int64_t last, int64_t acked)
{
    int half = e->cfg->mailbox_quota / 2;
    return last - acked >= (e->cfg->mailbox_share < half ? e->cfg->mailbox_share : half);
}

/* The poll that needs no transaction: its session is known, the cached
 * mailbox is current at seen (R5), no change on its slot is committed
 * unposted (R7), nothing is after the cursor, no older
 * poll is held on the slot, and its acknowledgement can wait. Returns
 * WAIT_ANSWER / WAIT_PARK, or -1 when a transaction is needed. */
static int from_cache(lc_env *e, const wait_ask *ask, int64_t id, uint32_t slot, uint32_t seen,
                      http_response *resp, wait_poll *p)
{
    store_mailbox mb;
    if (ask->timeout == 0 && store_shared(e->st)) return -1; /* R8: park only */
    if (!id || !e->defer_acks || wake_slot_marks(e->wk, slot) != 0 /* R7 */ ||
        !mbox_get(id, seen, &mb) || ask->after != mb.seq ||
        near_quota(e, mb.seq, mb.acked) ||
        (ask->exchange ? mb.poll_gen != ask->gen : wake_slot_held_count(e->wk, slot) != 0))
        return -1;
    defer_ack(id, ask->after, lc_now_ms()); /* records the poll (last_seen) */
    if (ask->timeout == 0) {
        poll_answer(resp, ask->exchange, ask->after, NULL);
        return WAIT_ANSWER;
    }
    return to_park(p, id, ask, mb.poll_gen, slot, seen);
}

/* Begins a read snapshot in which the session of ask->hash is read into
 * *s, after its slot value was read into *seen (R2). *known is the id the
 * slot was read for; when the session turns out to be another (a cache
 * miss), the slot is read again and the snapshot begun anew. Returns LC_OK
 * with the snapshot open, or fills resp (404, 503) with none open. */
static int snapshot_session(lc_env *e, const uint8_t *hash, int64_t known, uint32_t *slot,
                        uint32_t *seen, store_session *s, http_response *resp)
{
    for (int round = 0;; round++) {
        int rc = store_begin_read(e->st);
        if (rc == LC_OK) rc = store_session_by_token(e->st, hash, s);
        if (rc == LC_OK && s->id == known) return LC_OK;
        store_rollback(e->st);
        if (rc == LC_NOTFOUND) {
            http_error(resp, 404, WIRE_UNKNOWN_SESSION);
            return rc;
        }
        if (rc != LC_OK || round > 0) {
            http_db_error(resp, rc == LC_OK ? LC_BUSY : rc);
            return rc == LC_OK ? LC_BUSY : rc;
        }
        sid_put(hash, s->id);
        known = s->id;
        *slot = wake_slot(known);
        *seen = wake_slot_value(e->wk, *slot);
    }
}

/* The write a poll makes: acknowledges after=, records last_seen and, with
 * supersede, bumps poll_gen (R4); then reads the mailbox in the same
 * transaction. When the write cannot be made -- storage full, or another
 * process held the write lock past the busy timeout and no older poll must
 * yield -- the messages are still delivered, from a read snapshot: the
 * acknowledgement waits for the next poll that can write it (it costs
 * history and quota, not delivery), and *supersede is cleared: an older
 * held poll is then answered by the next message or its time-out. */
static int poll_write(lc_env *e, const store_session *s, int64_t after, int64_t now,
                      int *supersede, int64_t *gen, store_rows *rows, int64_t *last)
{
    store_mailbox mb;
    int rc = store_begin(e->st);
    if (rc == LC_OK) rc = store_session_poll(e->st, NULL, s->id, after, now, *supersede, &mb);
    if (rc == LC_OK) *gen = mb.poll_gen;
    if (rc == LC_OK) rc = fetch(e, s->id, after, rows, last);
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc == LC_OK || rc == LC_NOTFOUND || !(rc == LC_FULL || (rc == LC_BUSY && !*supersede))) {
        if (rc != LC_OK) store_rollback(e->st);
        return rc;
    }
    store_rollback(e->st);
    *supersede = 0;
    *gen = s->poll_gen;
    rc = store_begin_read(e->st);
    if (rc == LC_OK) rc = fetch(e, s->id, after, rows, last);
    store_rollback(e->st);
    return rc;
}

/* The 400 of a cursor past the mailbox's last message. */
static void beyond_last(http_response *resp, int64_t after, int64_t last)
{
    char why[120];
    snprintf(why, sizeof why, "after=%lld is beyond the last message (%lld)", (long long)after,
             (long long)last);
    http_error(resp, 400, why);
}

int wait_poll_start(lc_env *e, const wait_ask *ask, http_response *resp, wait_poll *p,
                    wait_woken *woken)
{
    int64_t known = sid_get(ask->hash), now = lc_now_ms(), after = ask->after, last, gen;
    uint32_t slot = wake_slot(known), seen = wake_slot_value(e->wk, slot); /* R2 */
    int r = from_cache(e, ask, known, slot, seen, resp, p);
    if (r >= 0) return r;
    store_session s;
    store_rows rows = {0};
    int rc = snapshot_session(e, ask->hash, known, &slot, &seen, &s, resp);
    if (rc != LC_OK) return WAIT_ANSWER;
    if (after > s.last_seq) {
        store_rollback(e->st);
        beyond_last(resp, after, s.last_seq);
        return WAIT_ANSWER;
    }
    /* Another poll held on this slot may be an older one of this session,
     * which must yield (R4). The acknowledgement is deferred unless this
     * poll writes anyway (supersede) or the mailbox is near its quota. */
    int supersede = !ask->exchange && wake_slot_held_count(e->wk, slot) > 0;
    /* An exchange's send superseded in its commit; a newer one since
     * (another poll_gen) makes this one yield at once (R4). */
    int yield = ask->exchange && s.poll_gen != ask->gen;
    int record = after > s.acked || now - s.last_seen >= STORE_SEEN_EVERY_MS;
    if (record && !supersede && !near_quota(e, s.last_seq, s.acked) && e->defer_acks) {
        defer_ack(s.id, after, now);
        record = 0;
    }
    gen = s.poll_gen;
    if (supersede || record) {
        store_rollback(e->st); /* the write transaction reads anew, still after R2 */
        rc = poll_write(e, &s, after, now, &supersede, &gen, &rows, &last);
    } else {
        rc = fetch(e, s.id, after, &rows, &last);
        store_rollback(e->st);
    }
    if (rc != LC_OK) {
        if (rc == LC_NOTFOUND)
            http_error(resp, 404, WIRE_SESSION_ENDED);
        else
            http_db_error(resp, rc);
        store_rows_free(&rows);
        return WAIT_ANSWER;
    }
    if (supersede) {
        proto_wake w = {.session_id = s.id};
        if (post(e, &w, woken) == seen) seen++; /* R4: only our own post */
    }
    if (!rows.n && after == s.last_seq) {
        store_mailbox mb = {.seq = after, .acked = s.acked, .poll_gen = gen};
        mbox_put(s.id, &mb, seen); /* R5: seen was read before this snapshot */
    }
    if (rows.n || ask->timeout == 0 || yield) {
        rows_answer(resp, ask->exchange, last, &rows);
        r = WAIT_ANSWER;
    } else {
        r = to_park(p, s.id, ask, gen, slot, seen);
    }
    store_rows_free(&rows);
    return r;
}

/* R6: the answer of p from woken, when that holds exactly its messages.
 * Returns 1 (resp filled) or 0. */
static int answer_from_woken(const wait_woken *woken, const wait_poll *p, http_response *resp)
{
    for (int i = 0; woken && i < woken->n; i++) {
        const proto_wake *w = &woken->w[i];
        if (w->session_id == p->session_id && w->exact && w->first == p->after + 1 &&
            w->poll_gen == p->poll_gen) {
            poll_answer(resp, p->exchange, w->last, &w->msgs);
            return 1;
        }
    }
    return 0;
}

int wait_resume(lc_env *e, wait_poll *p, const wait_woken *woken, http_response *resp)
{
    resp->allow_origin = p->allow_origin;
    if (answer_from_woken(woken, p, resp)) return WAIT_ANSWER;
    store_session s;
    store_rows rows = {0};
    int r = WAIT_ANSWER;
    int64_t last = p->after;
    uint32_t seen = wake_slot_value(e->wk, p->pe.slot); /* R2 */
    int rc = store_begin_read(e->st);
    if (rc == LC_OK) rc = store_session_get(e->st, p->session_id, &s);
    if (rc == LC_OK && s.ended) rc = LC_NOTFOUND;
    if (rc == LC_OK && s.poll_gen == p->poll_gen)
        rc = fetch(e, s.id, p->after, &rows, &last);
    store_rollback(e->st); /* read-only: nothing to commit */
    if (rc == LC_NOTFOUND) {
        http_error(resp, 404, WIRE_SESSION_ENDED);
    } else if (rc != LC_OK) {
        http_db_error(resp, rc);
    } else if (rows.n || s.poll_gen != p->poll_gen) {
        rows_answer(resp, p->exchange, last, &rows); /* new messages, or a newer poll took over (R4) */
    } else {
        p->pe.seen = seen;
        r = WAIT_PARK;
    }
    store_rows_free(&rows);
    return r;
}

void wait_expire(const wait_poll *p, http_response *resp)
{
    poll_answer(resp, p->exchange, p->after, NULL);
    resp->allow_origin = p->allow_origin;
}

void wait_out_of_order(http_response *resp)
{
    resp->status = 409;
    resp->body.len = 0;
    wire_error_reason(&resp->body,
                      "prev: that batch is not stored (yet); nothing was sent -- send this one "
                      "again once the previous one is answered",
                      "out_of_order");
}

void wait_cannot_hold(const wait_poll *p, http_response *resp, int status, const char *why,
                      int retry_after)
{
    if (p->send) {
        /* A send waiting for its prev= that may not wait: nothing stored,
         * answered as when it could not wait at all (R9). */
        (void)status, (void)why, (void)retry_after;
        wait_out_of_order(resp);
        resp->allow_origin = p->allow_origin;
        return;
    }
    if (p->exchange) {
        /* Its batch is stored: the answer says so, with nothing new (the
         * client's next poll meets the limit itself). */
        wait_expire(p, resp);
        return;
    }
    http_error(resp, status, why);
    resp->retry_after = retry_after;
    resp->allow_origin = p->allow_origin;
}

int wait_park(lc_env *e, park *pk, wait_poll *p, http_response *resp)
{
    for (;;) {
        park_add_rc rc = park_add(pk, &p->pe);
        switch (rc) {
        case PARK_ADDED:
            return WAIT_PARK;
        case PARK_FULL:
            metrics_limit("LONGCALL_MAX_HELD", 1);
            /* fall through */
        case PARK_FAILED: /* logged by park */
            wait_cannot_hold(p, resp, 503, rc == PARK_FULL ? WIRE_TOO_MANY_HELD : WIRE_CANNOT_HOLD,
                             2);
            return WAIT_ANSWER;
        case PARK_ADDR_FULL:
            addr_log_refusal(e->wk, p->addr, "LONGCALL_ADDR_HELD", e->cfg->addr_held);
            wait_cannot_hold(p, resp, 429, WIRE_ADDR_HELD, WIRE_ADDR_HELD_RETRY);
            return WAIT_ANSWER;
        case PARK_CLOSED: /* the process is stopping: the client polls again */
            /* A send still waiting for its prev= stored nothing: 409, and
             * the client sends it again (to the next process). */
            if (p->send) {
                wait_out_of_order(resp);
                resp->allow_origin = p->allow_origin;
            } else {
                wait_expire(p, resp);
            }
            return WAIT_ANSWER;
        case PARK_MOVED: /* R3: woken while parking; read again */
            if (p->send) return WAIT_AGAIN; /* R9: the send runs again */
            if (wait_resume(e, p, NULL, resp) == WAIT_ANSWER) return WAIT_ANSWER;
            http_response_free(resp);
            *resp = (http_response){0};
        }
    }
}
