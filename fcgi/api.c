/* api: endpoint logic; see api.h. Each endpoint is one transaction; wakes
 * are posted only after the commit that made them true. */

#include "api.h"

#include "proto.h"
#include "token.h"
#include "wire.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LONGCALL_VERSION
#define LONGCALL_VERSION "dev"
#endif

#define FETCH_MAX_COUNT 200
#define FETCH_MAX_BYTES (256 * 1024)
#define MAINT_BATCH 200 /* sessions or calls ended per maintenance transaction */
#define PRUNE_BATCH 500 /* history rows deleted per transaction */
#define PRUNE_ROUNDS 20 /* transactions per maintenance run */

/* Maps a store failure to the answer: all mean "try again later" (503 with
 * Retry-After); a full disk says so, and asks for a longer pause. */
static void db_error(http_response *resp, int rc)
{
    http_error(resp, 503, wire_db_sentence(rc));
    resp->retry_after = rc == LC_FULL ? 5 : 1;
}

static void ok(http_response *resp)
{
    resp->status = 200;
    wire_ok(&resp->body);
}

/* Reads sid= into its digest. Returns LC_OK, or LC_NOTFOUND with a 404 in
 * resp (a missing or malformed sid names no session). */
static int parse_sid(const http_request *req, uint8_t hash[32], http_response *resp)
{
    char sid[128];
    int q = http_query(req->query, "sid", sid, sizeof sid);
    if (q != 0 || token_hash(sid, hash) != 0) {
        http_error(resp, 404,
                   q == 1 ? "sid is missing; start a session with POST /rtc/session"
                          : "unknown session; start a new one with POST /rtc/session");
        return LC_NOTFOUND;
    }
    return LC_OK;
}

/* Finds the live session of a token digest inside the open transaction.
 * Returns LC_OK, or fills resp (404 or 503) and returns non-zero. */
static int lookup_session(api_env *e, const uint8_t hash[32], store_session *s, http_response *resp)
{
    int rc = store_session_by_token(e->st, hash, s);
    if (rc == LC_NOTFOUND) {
        http_error(resp, 404, "unknown or expired session; start a new one with POST /rtc/session");
        return rc;
    }
    if (rc != LC_OK) db_error(resp, rc);
    return rc;
}

/* parse_sid + lookup_session. */
static int find_session(api_env *e, const http_request *req, store_session *s, http_response *resp)
{
    uint8_t hash[32];
    int rc = parse_sid(req, hash, resp);
    return rc == LC_OK ? lookup_session(e, hash, s, resp) : rc;
}

/* Token digest -> session id, remembered per process: a poll must read its
 * wake slot before its mailbox snapshot begins, and the slot is the
 * session's. Knowing the id beforehand saves the poll a transaction. A
 * stale or colliding entry costs nothing but that: the id is checked. */
#define SID_CACHE 4096
static struct {
    pthread_mutex_t mu;
    struct {
        uint8_t hash[32];
        int64_t id;
    } e[SID_CACHE];
} sid_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t sid_cache_get(const uint8_t hash[32])
{
    unsigned i = ((unsigned)hash[0] << 8 | hash[1]) % SID_CACHE;
    int64_t id = 0;
    pthread_mutex_lock(&sid_cache.mu);
    if (memcmp(sid_cache.e[i].hash, hash, 32) == 0) id = sid_cache.e[i].id;
    pthread_mutex_unlock(&sid_cache.mu);
    return id;
}

static void sid_cache_put(const uint8_t hash[32], int64_t id)
{
    unsigned i = ((unsigned)hash[0] << 8 | hash[1]) % SID_CACHE;
    pthread_mutex_lock(&sid_cache.mu);
    memcpy(sid_cache.e[i].hash, hash, 32);
    sid_cache.e[i].id = id;
    pthread_mutex_unlock(&sid_cache.mu);
}

/* The mailbox cache: what this process last knew of a session's mailbox,
 * and the value its wake slot had then. Every change to a mailbox or a
 * session (a message, a newer poll, the end) is committed first and posted
 * to the slot after, so while the slot still holds that value the entry is
 * at least as new as a snapshot begun now would be -- the same guarantee a
 * poll gets by reading the slot before its snapshot. A poll that finds its
 * entry current and nothing after its cursor parks without a transaction.
 * An entry is written only from such a snapshot, or by a send that read the
 * slot while holding the write lock and saw no other post before its own. A
 * stale or colliding entry only costs the poll its transaction. */
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

static void mbox_cache_put(int64_t id, const store_mailbox *mb, uint32_t slot_value)
{
    pthread_mutex_lock(&mbox_cache.mu);
    mbox_cache.e[(uint64_t)id % MBOX_CACHE] = (mbox_entry){id, *mb, slot_value};
    pthread_mutex_unlock(&mbox_cache.mu);
}

/* Returns 1 and fills *mb when the entry of id was made at slot value v. */
static int mbox_cache_get(int64_t id, uint32_t v, store_mailbox *mb)
{
    pthread_mutex_lock(&mbox_cache.mu);
    const mbox_entry *x = &mbox_cache.e[(uint64_t)id % MBOX_CACHE];
    int hit = x->id == id && x->slot_value == v;
    if (hit) *mb = x->mb;
    pthread_mutex_unlock(&mbox_cache.mu);
    return hit;
}

/* Reads an optional non-negative integer query parameter. Returns 0 (value
 * or def in *out) or -1 with a 400 in resp. */
static int int_param(const http_request *req, const char *name, long long def, long long *out,
                     http_response *resp)
{
    char v[32], why[96];
    int q = http_query(req->query, name, v, sizeof v);
    *out = def;
    if (q == 1) return 0;
    char *end;
    errno = 0;
    long long n = q == 0 && v[0] >= '0' && v[0] <= '9' ? strtoll(v, &end, 10) : -1;
    if (n < 0 || errno || *end) {
        snprintf(why, sizeof why, "%s must be a whole number of at least 0", name);
        http_error(resp, 400, why);
        return -1;
    }
    *out = n;
    return 0;
}

/* Records w in e->woken (taking its messages) and posts its wake.
 * Returns the slot value before the post. */
static uint32_t post_wake(api_env *e, proto_wake *w)
{
    uint32_t before = wake_post(e->wk, w->session_id);
    /* No other post between the read under the write lock and ours: every
     * change committed before ours is in w, and any later one posts after. */
    if (w->slot_read && w->exact && w->first && before == w->slot_value) {
        store_mailbox mb = {.seq = w->last, .acked = w->acked, .poll_gen = w->poll_gen};
        mbox_cache_put(w->session_id, &mb, before + 1);
    }
    if (e->nwoken == e->capwoken) {
        e->capwoken = e->capwoken ? e->capwoken * 2 : 8;
        e->woken = xrealloc(e->woken, (size_t)e->capwoken * sizeof *e->woken);
    }
    e->woken[e->nwoken++] = *w;
    *w = (proto_wake){.session_id = w->session_id};
    return before;
}

/* After a commit: wakes every session c changed, handing over the messages
 * it queued (c keeps empty records). */
static void post_wakes(api_env *e, proto_ctx *c)
{
    for (int i = 0; i < c->nwake; i++)
        post_wake(e, &c->wake[i]);
}

void api_woken_clear(api_env *e)
{
    for (int i = 0; i < e->nwoken; i++)
        proto_wake_free(&e->woken[i]);
    e->nwoken = 0;
}

void api_env_free(api_env *e)
{
    api_woken_clear(e);
    free(e->woken);
    e->woken = NULL;
    e->capwoken = 0;
}

static void ep_session(api_env *e, http_response *resp)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    int64_t id, now = lc_now_ms();
    if (token_new(sid, hash) != 0) {
        http_error(resp, 500, "could not create a session token");
        return;
    }
    int rc = store_begin(e->st);
    if (rc == LC_OK) rc = store_session_create(e->st, hash, now, &id);
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) {
        store_rollback(e->st);
        db_error(resp, rc);
        return;
    }
    lc_log(LC_LOG_DEBUG, "session %lld created", (long long)id);
    e->due_hint = now + (int64_t)e->cfg->session_expiry * 1000;
    resp->status = 200;
    wire_session(&resp->body, sid, e->cfg->poll_timeout, e->cfg->session_expiry,
                 e->cfg->ice_servers);
}

static void ep_send(api_env *e, const http_request *req, const char *body, size_t len,
                    http_response *resp)
{
    char batch[80], why[200];
    json_error_t jerr;
    json_t *root = NULL;
    proto_ctx c = {.st = e->st, .cfg = e->cfg, .now = lc_now_ms()};
    int q = http_query(req->query, "batch", batch, sizeof batch);
    if (q == -1 || (q == 0 && (batch[0] == '\0' || strlen(batch) > 64))) {
        http_error(resp, 400, "batch must be 1 to 64 characters");
        goto out;
    }
    if (!http_json_type(req)) {
        http_error(resp, 415, "send the body as application/json or text/plain");
        goto out;
    }
    root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        snprintf(why, sizeof why, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        http_error(resp, 400, why);
        goto out;
    }
    if (!json_is_object(root) && !json_is_array(root)) {
        http_error(resp, 400, "the body must be a message object or an array of them");
        goto out;
    }
    if (json_is_array(root) && json_array_size(root) > (size_t)e->cfg->max_batch) {
        snprintf(why, sizeof why, "a batch holds at most %d messages", e->cfg->max_batch);
        http_error(resp, 413, why);
        goto out;
    }
    uint8_t hash[32]; /* hashed before the write lock is taken */
    if (parse_sid(req, hash, resp) != LC_OK) goto out;
    int rc = store_begin(e->st);
    if (rc != LC_OK) {
        db_error(resp, rc);
        goto out;
    }
    if (lookup_session(e, hash, &c.self, resp) != LC_OK) goto rollback;
    int seen = 0;
    if (q == 0 && (rc = store_batch_mark(e->st, c.self.id, batch, c.now, &seen)) != LC_OK) {
        db_error(resp, rc);
        goto rollback;
    }
    if (!seen) {
        size_t n = json_is_array(root) ? json_array_size(root) : 1;
        for (size_t i = 0; i < n && rc == LC_OK; i++)
            rc = proto_apply(&c, json_is_array(root) ? json_array_get(root, i) : root);
    }
    if (rc == LC_QUOTA) {
        snprintf(why, sizeof why,
                 "a mailbox is full (%d unacknowledged messages); nothing was sent, retry later",
                 e->cfg->mailbox_quota);
        http_error(resp, 429, why);
        resp->retry_after = 1;
        goto rollback;
    }
    for (int i = 0; i < c.nwake && rc == LC_OK; i++) {
        c.wake[i].slot_read = 1; /* the write lock is held: see post_wake */
        c.wake[i].slot_value = wake_slot_value(e->wk, wake_slot(c.wake[i].session_id));
    }
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) {
        db_error(resp, rc);
        goto rollback;
    }
    post_wakes(e, &c);
    if (c.calls_placed) e->due_hint = c.now + (int64_t)e->cfg->ring_timeout * 1000;
    ok(resp);
    goto out;
rollback:
    store_rollback(e->st);
out:
    proto_ctx_free(&c);
    json_decref(root);
}

/* A poll's answer from message items built in memory (NULL: none). */
static void poll_answer(http_response *resp, int64_t last, const buf *msgs)
{
    resp->status = 200;
    wire_poll_answer(&resp->body, last, msgs);
}

/* A poll's answer from the rows store_fetch read. */
static void poll_answer_rows(http_response *resp, int64_t last, const store_rows *rows)
{
    resp->status = 200;
    wire_poll_rows(&resp->body, last, rows);
}

/* last_seen (the expiry clock) is rewritten at most this often. */
#define SEEN_EVERY_MS 1000

/* Fills *poll for a poll of session id that waits from now on. Returns
 * API_PARK. */
static int park_poll(api_poll *poll, int64_t id, int64_t after, int64_t gen, uint32_t slot,
                     uint32_t seen, long long timeout)
{
    *poll = (api_poll){.session_id = id,
                       .after = after,
                       .poll_gen = gen,
                       .slot = slot,
                       .seen = seen,
                       .deadline = lc_mono_ms() + timeout * 1000};
    return API_PARK;
}

static int ep_poll(api_env *e, const http_request *req, http_response *resp, api_poll *poll)
{
    long long after, timeout;
    store_session s;
    store_rows rows = {0};
    int result = API_DONE;
    int64_t last, now = lc_now_ms();
    if (int_param(req, "after", 0, &after, resp) ||
        int_param(req, "timeout", e->cfg->poll_timeout, &timeout, resp))
        goto out;
    if (timeout > e->cfg->poll_max) timeout = e->cfg->poll_max;
    /* The wake slot must be read before the snapshot the mailbox is read
     * in: a message committed after that snapshot began then bumps the slot
     * after our read too, so a parked poll can never miss it. The slot is
     * the session's: known from the cache, or looked up in a snapshot of
     * its own first. */
    uint8_t hash[32];
    if (parse_sid(req, hash, resp) != LC_OK) goto out;
    int64_t known = sid_cache_get(hash);
    uint32_t slot = wake_slot(known), seen = wake_slot_value(e->wk, slot);
    store_mailbox mb;
    if (known && e->defer_ack && mbox_cache_get(known, seen, &mb) && after == mb.seq &&
        mb.seq - mb.acked < e->cfg->mailbox_quota / 2 && wake_slot_held_count(e->wk, slot) == 0) {
        /* Nothing new, no older poll to make yield, not near the quota: no
         * transaction. The deferred write records the poll (last_seen). */
        e->defer_ack(e->defer_arg, known, after, now);
        if (timeout == 0) {
            poll_answer(resp, after, NULL);
            goto out;
        }
        result = park_poll(poll, known, after, mb.poll_gen, slot, seen, timeout);
        goto out;
    }
    int rc = store_begin_read(e->st);
    if (rc != LC_OK) {
        db_error(resp, rc);
        goto out;
    }
    if (lookup_session(e, hash, &s, resp) != LC_OK) goto rollback;
    int open = 1; /* a read snapshot that began after the slot read */
    if (s.id != known) {
        store_rollback(e->st);
        open = 0;
        sid_cache_put(hash, s.id);
        slot = wake_slot(s.id);
        seen = wake_slot_value(e->wk, slot);
    }
    if (after > s.last_seq) {
        char why[120];
        snprintf(why, sizeof why, "after=%lld is beyond the last message (%lld)", after,
                 (long long)s.last_seq);
        http_error(resp, 400, why);
        goto rollback;
    }
    /* Another poll may be held on this slot -- perhaps an older poll of this
     * session, which must yield: bump poll_gen (below) and wake it. */
    int supersede = wake_slot_held_count(e->wk, slot) > 0;
    int64_t gen = s.poll_gen;
    int record = after > s.acked || now - s.last_seen >= SEEN_EVERY_MS;
    /* Acknowledgements are history and quota only -- which messages a poll
     * returns depends on its after= alone -- so they may be written a few
     * milliseconds later, many in one transaction, and the poll itself is a
     * read. Written now, though: making an older poll yield, and freeing a
     * mailbox near its quota (the client may send again at once). */
    int near_quota = s.last_seq - s.acked >= e->cfg->mailbox_quota / 2;
    if (record && !supersede && !near_quota && e->defer_ack) {
        e->defer_ack(e->defer_arg, s.id, after, now);
        record = 0;
    }
    int writing = supersede || record;
    if (writing) {
        if (open) store_rollback(e->st);
        rc = store_begin(e->st);
        if (rc == LC_OK) rc = store_session_poll(e->st, s.id, after, now, supersede, &gen);
        if (rc == LC_NOTFOUND) {
            http_error(resp, 404, "the session ended; start a new one with POST /rtc/session");
            goto rollback;
        }
    } else if (!open) {
        rc = store_begin_read(e->st);
    }
    if (rc == LC_OK)
        rc = store_fetch(e->st, s.id, after, FETCH_MAX_COUNT, FETCH_MAX_BYTES, &rows, &last);
    if (rc == LC_OK) rc = store_commit(e->st);
    if (writing && (rc == LC_FULL || (rc == LC_BUSY && !supersede))) {
        /* The write could not be made: storage is full (at the write or at
         * its commit), or another process held the write lock past the busy
         * timeout (a plain CGI poll, which cannot defer, or one near the
         * quota). What is stored is still delivered, from a read snapshot.
         * The acknowledgement waits for the next poll that can write it (it
         * costs history and quota, not delivery), and an older held poll of
         * this session is not made to yield: it is answered by the next
         * message or its time-out. A busy poll that must supersede one
         * gets its 503. */
        store_rollback(e->st);
        supersede = 0;
        gen = s.poll_gen;
        rows.n = 0;
        rc = store_begin_read(e->st);
        if (rc == LC_OK)
            rc = store_fetch(e->st, s.id, after, FETCH_MAX_COUNT, FETCH_MAX_BYTES, &rows, &last);
        if (rc == LC_OK) rc = store_commit(e->st);
    }
    if (rc != LC_OK) {
        db_error(resp, rc);
        goto rollback;
    }
    if (supersede) {
        /* Whether this poll answers now or waits, the older one yields now. */
        proto_wake w = {.session_id = s.id};
        uint32_t before = post_wake(e, &w);
        if (before == seen) seen++; /* only our own bump: nothing new */
    }
    if (!rows.n && after == s.last_seq) {
        store_mailbox now_mb = {.seq = after, .acked = s.acked, .poll_gen = gen};
        mbox_cache_put(s.id, &now_mb, seen); /* seen was read before this snapshot */
    }
    if (rows.n || timeout == 0) {
        poll_answer_rows(resp, last, &rows);
        goto out;
    }
    result = park_poll(poll, s.id, after, gen, slot, seen, timeout);
    goto out;
rollback:
    store_rollback(e->st);
out:
    store_rows_free(&rows);
    return result;
}

static int ack_cmp(const void *a, const void *b)
{
    const api_ack *x = a, *y = b;
    return x->session_id < y->session_id ? -1 : x->session_id > y->session_id;
}

int api_write_acks(api_env *e, api_ack *acks, int n)
{
    int64_t gen;
    /* A busy session polls many times per batch: one write each, with the
     * highest after= and the latest time (an ack never lowers either). */
    qsort(acks, (size_t)n, sizeof *acks, ack_cmp);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && acks[m - 1].session_id == acks[i].session_id) {
            api_ack *k = &acks[m - 1];
            if (acks[i].after > k->after) k->after = acks[i].after;
            if (acks[i].now > k->now) k->now = acks[i].now;
        } else {
            acks[m++] = acks[i];
        }
    }
    int rc = store_begin(e->st);
    for (int i = 0; i < m && rc == LC_OK; i++) {
        rc = store_session_poll(e->st, acks[i].session_id, acks[i].after, acks[i].now, 0, &gen);
        if (rc == LC_NOTFOUND) rc = LC_OK; /* ended meanwhile */
    }
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) store_rollback(e->st);
    return rc;
}

/* The answer of poll from e->woken, when that holds exactly its messages.
 * Returns 1 (resp filled) or 0. */
static int answer_from_woken(const api_env *e, const api_poll *poll, http_response *resp)
{
    for (int i = 0; i < e->nwoken; i++) {
        const proto_wake *w = &e->woken[i];
        if (w->session_id == poll->session_id && w->exact && w->first == poll->after + 1 &&
            w->poll_gen == poll->poll_gen) {
            poll_answer(resp, w->last, &w->msgs);
            resp->allow_origin = poll->allow_origin;
            return 1;
        }
    }
    return 0;
}

int api_poll_resume(api_env *e, api_poll *poll, http_response *resp)
{
    if (answer_from_woken(e, poll, resp)) return API_DONE;
    store_session s;
    store_rows rows = {0};
    int result = API_DONE;
    int64_t last = poll->after;
    uint32_t seen = wake_slot_value(e->wk, poll->slot);
    int rc = store_begin_read(e->st);
    if (rc == LC_OK) rc = store_session_get(e->st, poll->session_id, &s);
    if (rc == LC_OK && s.ended) rc = LC_NOTFOUND;
    if (rc == LC_OK && s.poll_gen == poll->poll_gen)
        rc = store_fetch(e->st, s.id, poll->after, FETCH_MAX_COUNT, FETCH_MAX_BYTES, &rows, &last);
    store_rollback(e->st); /* read-only: nothing to commit */
    if (rc == LC_NOTFOUND) {
        http_error(resp, 404, "the session ended; start a new one with POST /rtc/session");
    } else if (rc != LC_OK) {
        db_error(resp, rc);
    } else if (rows.n || s.poll_gen != poll->poll_gen) {
        /* New messages, or a newer poll of the same session took over. */
        poll_answer_rows(resp, last, &rows);
    } else {
        poll->seen = seen;
        result = API_PARK;
    }
    resp->allow_origin = poll->allow_origin;
    store_rows_free(&rows);
    return result;
}

void api_poll_expire(const api_poll *poll, http_response *resp)
{
    poll_answer(resp, poll->after, NULL);
    resp->allow_origin = poll->allow_origin;
}

static void ep_close(api_env *e, const http_request *req, http_response *resp)
{
    proto_ctx c = {.st = e->st, .cfg = e->cfg, .now = lc_now_ms()};
    store_session s;
    long long after;
    int64_t gen;
    /* after= (optional) acknowledges what the client received last. */
    if (int_param(req, "after", 0, &after, resp)) return;
    int rc = store_begin(e->st);
    if (rc != LC_OK) {
        db_error(resp, rc);
        goto out;
    }
    if (find_session(e, req, &s, resp) != LC_OK) {
        store_rollback(e->st);
        goto out;
    }
    if (after > s.acked) rc = store_session_poll(e->st, s.id, after, c.now, 0, &gen);
    if (rc == LC_OK) rc = proto_end_session(&c, s.id, "closed");
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) {
        store_rollback(e->st);
        db_error(resp, rc);
        goto out;
    }
    post_wakes(e, &c);
    lc_log(LC_LOG_DEBUG, "session %lld closed", (long long)s.id);
    ok(resp);
out:
    proto_ctx_free(&c);
}

static void ep_status(api_env *e, http_response *resp)
{
    wire_status w = {.version = LONGCALL_VERSION, .pid = (int)getpid(), .held_here = e->held_here};
    int rc = store_begin_read(e->st);
    if (rc == LC_OK)
        rc = store_stats(e->st, &w.sessions, &w.registered, &w.queued_messages, &w.calls);
    store_rollback(e->st);
    if (rc != LC_OK) {
        db_error(resp, rc);
        return;
    }
    wake_held_total(e->wk, &w.held_polls, &w.processes);
    w.uptime_s = (lc_now_ms() - e->started_ms) / 1000;
    resp->status = 200;
    wire_status_answer(&resp->body, &w);
}

int api_handle(api_env *e, const http_request *req, const char *body, size_t len,
               http_response *resp, api_poll *poll)
{
    static const char *const want[] = {
        [EP_SESSION] = "POST", [EP_SEND] = "POST",  [EP_POLL] = "GET",
        [EP_CLOSE] = "POST",   [EP_STATUS] = "GET",
    };
    const char *allow;
    e->due_hint = INT64_MAX;
    api_woken_clear(e);
    if (http_origin_ok(req, e->cfg, &allow) != 0) {
        http_error(resp, 403, "this origin is not allowed; see LONGCALL_CORS_ORIGINS");
        return API_DONE;
    }
    resp->allow_origin = allow;
    if (req->endpoint == EP_UNKNOWN) {
        http_error(resp, 404, "unknown endpoint; use session, send, poll, close or status");
        return API_DONE;
    }
    if (strcmp(req->method, "OPTIONS") == 0) {
        resp->status = 204;
        resp->preflight = 1;
        return API_DONE;
    }
    if (strcmp(req->method, want[req->endpoint]) != 0) {
        char why[80];
        snprintf(why, sizeof why, "use %s for this endpoint", want[req->endpoint]);
        http_error(resp, 405, why);
        return API_DONE;
    }
    switch (req->endpoint) {
    case EP_SESSION:
        ep_session(e, resp);
        break;
    case EP_SEND:
        ep_send(e, req, body, len, resp);
        break;
    case EP_CLOSE:
        ep_close(e, req, resp);
        break;
    case EP_STATUS:
        ep_status(e, resp);
        break;
    case EP_POLL:
        if (ep_poll(e, req, resp, poll) == API_PARK) {
            poll->allow_origin = allow;
            return API_PARK;
        }
        break;
    case EP_UNKNOWN:
        break;
    }
    return API_DONE;
}

/* One transaction of expiry and ring timeouts. Sets *more when a batch was
 * full (run again). */
static int expire_round(api_env *e, int64_t now, int *more)
{
    int64_t ids[MAINT_BATCH], cids[MAINT_BATCH];
    int n = 0, nc = 0;
    proto_ctx c = {.st = e->st, .cfg = e->cfg, .now = now};
    int rc = store_begin(e->st);
    if (rc == LC_OK)
        rc = store_sessions_idle(e->st, now - (int64_t)e->cfg->session_expiry * 1000, ids,
                                 MAINT_BATCH, &n);
    for (int i = 0; i < n && rc == LC_OK; i++) {
        rc = proto_end_session(&c, ids[i], "expired");
        if (rc == LC_OK) lc_log(LC_LOG_INFO, "session %lld expired", (long long)ids[i]);
    }
    if (rc == LC_OK)
        rc = store_calls_unanswered(e->st, now - (int64_t)e->cfg->ring_timeout * 1000, cids,
                                    MAINT_BATCH, &nc);
    for (int i = 0; i < nc && rc == LC_OK; i++)
        rc = proto_ring_timeout(&c, cids[i]);
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc == LC_OK)
        post_wakes(e, &c);
    else
        store_rollback(e->st);
    *more = n == MAINT_BATCH || nc == MAINT_BATCH;
    proto_ctx_free(&c);
    return rc;
}

int api_maintain(api_env *e, int64_t *next)
{
    int64_t now = lc_now_ms();
    api_woken_clear(e);
    int64_t retention = (int64_t)e->cfg->history_days * LC_DAY_MS;
    int more = 0, deleted = 0, rc;
    *next = now + 1000; /* on failure: try again in a second */
    for (int round = 0; round < PRUNE_ROUNDS; round++) {
        rc = expire_round(e, now, &more);
        if (rc != LC_OK || !more) break;
    }
    if (rc != LC_OK) return rc;
    for (int round = 0; round < PRUNE_ROUNDS; round++) {
        rc = store_begin(e->st);
        if (rc == LC_OK) rc = store_prune(e->st, now - retention, PRUNE_BATCH, &deleted);
        if (rc == LC_OK) rc = store_commit(e->st);
        if (rc != LC_OK) {
            store_rollback(e->st);
            return rc;
        }
        if (deleted < PRUNE_BATCH) break;
    }
    if (more || deleted == PRUNE_BATCH) return LC_OK; /* backlog: again in a second */
    int64_t live, history;
    rc = store_begin_read(e->st);
    if (rc == LC_OK)
        rc = store_next_due(e->st, (int64_t)e->cfg->session_expiry * 1000,
                            (int64_t)e->cfg->ring_timeout * 1000, retention, &live, &history);
    store_rollback(e->st);
    if (rc != LC_OK) return rc;
    /* History that is due but was not pruned waits for a live session: look
     * again in a minute rather than spin. */
    if (history <= now) history = now + 60000;
    *next = live < history ? live : history;
    /* Rows whose time has come are handled on the next run, not before a
     * short pause, so a clock step cannot spin this loop. */
    if (*next < now + 100) *next = now + 100;
    return LC_OK;
}
