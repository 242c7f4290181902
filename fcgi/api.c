/* api: endpoint logic; see api.h. Each endpoint is one transaction; wakes
 * are posted only after the commit that made them true (wait.c, R1). */

#include "api.h"

#include "metrics.h"

#include "proto.h"
#include "token.h"
#include "turn.h"
#include "wire.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LONGCALL_VERSION
#define LONGCALL_VERSION "dev"
#endif

#define MAINT_BATCH 200 /* sessions or calls ended per maintenance transaction */
#define PRUNE_BATCH 500 /* history rows deleted per transaction */
#define PRUNE_ROUNDS 20 /* transactions per maintenance run */
/* Sessions that never registered a name are kept this long after they end
 * (not LONGCALL_HISTORY_DAYS): long enough for the per-address session rate
 * (a minute) and an operator's look at what just happened. */
#define UNREGISTERED_KEEP_MS (3600 * 1000LL)

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
static int lookup_session(lc_env *e, const uint8_t hash[32], store_session *s, http_response *resp)
{
    int rc = store_session_by_token(e->st, hash, s);
    if (rc == LC_NOTFOUND) {
        http_error(resp, 404, WIRE_UNKNOWN_SESSION);
        return rc;
    }
    if (rc != LC_OK) http_db_error(resp, rc);
    return rc;
}

/* parse_sid + lookup_session. */
static int find_session(lc_env *e, const http_request *req, store_session *s, http_response *resp)
{
    uint8_t hash[32];
    int rc = parse_sid(req, hash, resp);
    return rc == LC_OK ? lookup_session(e, hash, s, resp) : rc;
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

/* Inside the session-creating transaction: LC_OK when client addr may
 * have another session, else LC_QUOTA with the 429 in resp (logged once a
 * minute per address), or a store failure. */
static int addr_may_create(lc_env *e, const char *addr, int64_t now, http_response *resp)
{
    int64_t live, recent, oldest;
    int rc = store_addr_sessions(e->st, addr, now - 60000, &live, &recent, &oldest);
    if (rc != LC_OK) return rc;
    if (recent >= e->cfg->addr_sessions_per_min) {
        http_error(resp, 429, WIRE_ADDR_RATE);
        int64_t wait = (oldest + 60000 - now + 999) / 1000; /* until the oldest leaves the minute */
        resp->retry_after = wait < 1 ? 1 : wait > 60 ? 60 : (int)wait;
        addr_log_refusal(e->wk, addr, "LONGCALL_ADDR_SESSIONS_PER_MIN", e->cfg->addr_sessions_per_min);
        return LC_QUOTA;
    }
    if (live >= e->cfg->addr_sessions) {
        http_error(resp, 429, WIRE_ADDR_SESSIONS);
        resp->retry_after = WIRE_ADDR_SESSIONS_RETRY;
        addr_log_refusal(e->wk, addr, "LONGCALL_ADDR_SESSIONS", e->cfg->addr_sessions);
        return LC_QUOTA;
    }
    return LC_OK;
}

static void ep_session(lc_env *e, const char *addr, api_result *r)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    int64_t id, now = lc_now_ms();
    http_response *resp = &r->resp;
    if (token_new(sid, hash) != 0) {
        http_error(resp, 500, "could not create a session token");
        return;
    }
    int rc = store_begin(e->st);
    if (rc == LC_OK) rc = addr_may_create(e, addr, now, resp);
    if (rc == LC_QUOTA) { /* refused: nothing was written */
        store_rollback(e->st);
        return;
    }
    if (rc == LC_OK) rc = store_session_create_addr(e->st, hash, now, addr, &id);
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) {
        store_rollback(e->st);
        http_db_error(resp, rc);
        return;
    }
    lc_log_event(LC_LOG_INFO, "session_created",
                 LC_FIELDS(LC_ID("session", id), LC_STR("client", addr)),
                 "session %lld created for client %s", (long long)id, addr);
    r->due = now + (int64_t)e->cfg->session_expiry * 1000;
    resp->status = 200;
    char *ice = turn_ice_servers_text(e->cfg, id, now / 1000);
    wire_session(&resp->body, sid, e->cfg->poll_timeout, e->cfg->session_expiry, ice,
                 e->cfg->ice_relay);
    free(ice);
}

/* Parses a send's body: a message object or an array of at most max_batch.
 * Returns it (the caller decrefs), or NULL with resp filled (400, 413). */
static json_t *parse_messages(lc_env *e, const char *body, size_t len, http_response *resp)
{
    char why[200];
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        snprintf(why, sizeof why, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        http_error(resp, 400, why);
    } else if (!json_is_object(root) && !json_is_array(root)) {
        http_error(resp, 400, "the body must be a message object or an array of them");
    } else if (json_is_array(root) && json_array_size(root) == 0) {
        http_error(resp, 400, WIRE_EMPTY_BATCH); /* nothing is stored for it, not even its id */
    } else if (json_is_array(root) && json_array_size(root) > (size_t)e->cfg->max_batch) {
        snprintf(why, sizeof why, "a batch holds at most %d messages", e->cfg->max_batch);
        http_error(resp, 413, why);
    } else {
        return root;
    }
    json_decref(root);
    return NULL;
}

/* Applies the messages of root from c->self, unless batch (may be NULL)
 * was applied before. Inside the write transaction. Returns LC_OK,
 * LC_QUOTA or a store error. */
static int apply_batch(lc_env *e, proto_ctx *c, const char *batch, json_t *root)
{
    int replayed = 0, rc = LC_OK;
    if (batch) rc = store_batch_mark(e->st, c->self.id, batch, c->now, &replayed);
    size_t n = json_is_array(root) ? json_array_size(root) : 1;
    for (size_t i = 0; !replayed && i < n && rc == LC_OK; i++)
        rc = proto_apply(c, json_is_array(root) ? json_array_get(root, i) : root);
    return rc;
}

/* Logs calls the call limits refused in a send of client addr (c counts
 * them) through addr_log_event: at most one line per client a minute over
 * every process, with the number refused since the previous line and the
 * latest one's reason. Never a token. */
static void log_call_refusals(lc_env *e, const char *addr, const proto_ctx *c)
{
    char what[200];
    if (!c->calls_refused) return;
    proto_call_refusal_text(c, what, sizeof what);
    addr_log_event_n(e->wk, "calls", addr, c->calls_refused,
                     "had a call refused by the call limits (session %lld, %s)",
                     (long long)c->self.id, what);
}

/* The 429 of a send a mailbox refused (c->refused, proto.h's mailbox
 * rule): a sentence naming the mailbox, its reason, Retry-After 1; logged
 * at most once a minute per client address. */
static void refuse_send(lc_env *e, const char *addr, const proto_ctx *c, http_response *resp)
{
    char why[300], whose[LC_NAME_MAX + 16];
    int share = c->refused == PROTO_MAILBOX_SHARE;
    if (c->refused_name[0])
        snprintf(whose, sizeof whose, "%s's", c->refused_name);
    else
        snprintf(whose, sizeof whose, "the recipient's");
    if (share)
        snprintf(why, sizeof why,
                 "%s mailbox holds too many of your messages (%d unacknowledged); nothing was "
                 "sent, retry when they have been read",
                 whose, e->cfg->mailbox_share);
    else if (c->refused_own)
        snprintf(why, sizeof why,
                 "your own mailbox is full (%d unacknowledged messages): poll to read them; "
                 "nothing was sent",
                 2 * e->cfg->mailbox_quota);
    else
        snprintf(why, sizeof why,
                 "%s mailbox is full (%d unacknowledged messages); nothing was sent, retry later",
                 whose, e->cfg->mailbox_quota);
    resp->status = 429;
    resp->body.len = 0;
    wire_error_reason(&resp->body, why, proto_reason_name(c->refused));
    resp->retry_after = 1;
    addr_log_refusal(e->wk, addr, share ? "LONGCALL_MAILBOX_SHARE" : "LONGCALL_MAILBOX_QUOTA",
                     share ? e->cfg->mailbox_share : e->cfg->mailbox_quota);
}

/* Hands the poll ask of client addr to wait: r->resp is its answer, or
 * r->park says it waits (counted against addr: LONGCALL_ADDR_HELD). */
static void start_poll(lc_env *e, const wait_ask *ask, const char *addr, api_result *r)
{
    r->park = wait_poll_start(e, ask, &r->resp, &r->poll, &r->woken) == WAIT_PARK;
    if (r->park) {
        r->poll.pe.addr_bucket = wake_addr_bucket(addr);
        snprintf(r->poll.addr, sizeof r->poll.addr, "%s", addr);
    }
}

/* What a send's query asks beyond its batch id (README, "The wire
 * contract"). */
typedef struct send_opts {
    int exchange;             /* after= given: the send is also the session's poll */
    long long after, timeout; /* the poll's, when exchange */
    int has_prev;             /* prev= given: apply only after batch prev */
    char prev[80];
} send_opts;

/* Reads after=, timeout= and prev= of a send into *o. LC_OK, or -1 with
 * the 400 in resp. */
static int send_opts_parse(const lc_config *cfg, const http_request *req, send_opts *o,
                           http_response *resp)
{
    char probe[32];
    *o = (send_opts){0};
    int q = http_query(req->query, "prev", o->prev, sizeof o->prev);
    if (q == -1 || (q == 0 && (o->prev[0] == '\0' || strlen(o->prev) > 64))) {
        http_error(resp, 400, "prev must be 1 to 64 characters");
        return -1;
    }
    o->has_prev = q == 0;
    o->exchange = http_query(req->query, "after", probe, sizeof probe) != 1;
    if (o->exchange && (int_param(req, "after", 0, &o->after, resp) ||
                        int_param(req, "timeout", cfg->poll_timeout, &o->timeout, resp)))
        return -1;
    if (o->timeout > cfg->poll_max) o->timeout = cfg->poll_max;
    return LC_OK;
}

/* How long a send whose prev= batch is not stored yet waits for it before
 * its 409 out_of_order, and how often it looks again meanwhile when no
 * post woke it (wait.c, R9). */
#define SEND_WAIT_MS 2000
#define SEND_RECHECK_MS 50

/* In the send's write transaction, before anything is applied: an
 * exchange's cursor must not be past the session self's last message
 * (400), and batch o->prev must be stored already (else *waiting is set:
 * the send waits for it, or is answered 409 out_of_order). LC_OK (*waiting
 * may be set; resp untouched); LC_NOTFOUND (refused: the 400 in resp); or
 * a store failure (503 in resp). */
static int send_precheck(lc_env *e, const store_session *self, const send_opts *o,
                         http_response *resp, int *waiting)
{
    *waiting = 0;
    if (o->exchange && o->after > self->last_seq) {
        char why[120];
        snprintf(why, sizeof why, "after=%lld is beyond the last message (%lld); nothing was sent",
                 o->after, (long long)self->last_seq);
        http_error(resp, 400, why);
        return LC_NOTFOUND;
    }
    if (!o->has_prev) return LC_OK;
    int known = 0, rc = store_batch_known(e->st, self->id, o->prev, &known);
    if (rc != LC_OK) {
        http_db_error(resp, rc);
        return rc;
    }
    *waiting = !known;
    return LC_OK;
}

/* The bytes of the requests (bodies and queries) held sends of this
 * process keep, at most HELD_SEND_BODIES times LONGCALL_MAX_BODY: a client
 * naming a prev= that never comes, from many addresses and sessions, must
 * not make the process keep a body per held poll (the park's capacity
 * times 64 KiB); past it a send gets its 409 out_of_order at once, as
 * before sends waited. A page waits with one small batch at a time, for
 * milliseconds: 4 MiB by default is thousands of them. */
#define HELD_SEND_BODIES 64
static _Atomic size_t held_bytes;

void api_held_send_free(api_held_send *hs)
{
    if (!hs) return;
    atomic_fetch_sub(&held_bytes, hs->cost);
    if (hs->counted) wake_send_waits(hs->wk, hs->session_id, -1);
    free(hs->query);
    free(hs->content_type);
    free(hs->body);
    free(hs);
}

/* A held send of req (body/len, client addr) for session sid, or NULL
 * when this process keeps HELD_SEND_BODIES bodies' worth already (logged
 * through addr_log_event). */
static api_held_send *held_new(lc_env *e, const http_request *req, const char *body, size_t len,
                               const char *addr, int64_t sid)
{
    size_t cost = len + strlen(req->query ? req->query : "") + sizeof(api_held_send);
    size_t max = (size_t)HELD_SEND_BODIES * e->cfg->max_body;
    if (atomic_fetch_add(&held_bytes, cost) + cost > max) {
        atomic_fetch_sub(&held_bytes, cost);
        addr_log_event(e->wk, "held-send-bytes", addr,
                       "had a send refused 409 at once: this process keeps %zu bytes of sends "
                       "waiting for their prev= batch (at most %d x LONGCALL_MAX_BODY)",
                       max, HELD_SEND_BODIES);
        return NULL;
    }
    api_held_send *hs = xcalloc(1, sizeof *hs);
    hs->cost = cost;
    hs->query = xstrdup(req->query ? req->query : "");
    hs->content_type = req->content_type ? xstrdup(req->content_type) : NULL;
    hs->body = xmalloc(len + 1);
    memcpy(hs->body, body, len);
    hs->body[len] = '\0';
    hs->len = len;
    snprintf(hs->addr, sizeof hs->addr, "%s", addr);
    hs->give_up = lc_mono_ms() + SEND_WAIT_MS;
    hs->session_id = sid;
    hs->wk = e->wk;
    return hs;
}

/* Inside the send's write transaction, whose prev= batch is not stored:
 * makes r the wait of held send hs (created when NULL) on its session's
 * slot (wait.c, R9): counted on the slot while the write lock is held (so
 * the commit of any batch of the session posts it), its value read, a
 * deadline at the next re-check. Returns 0, or -1 when hs's time is up
 * (the 409 out_of_order in r->resp; hs is the caller's still). */
static int hold_send(lc_env *e, const http_request *req, const char *body, size_t len,
                     const char *addr, int64_t sid, api_held_send *hs, api_result *r)
{
    int64_t mono = lc_mono_ms();
    if (hs && mono >= hs->give_up) {
        wait_out_of_order(&r->resp);
        return -1;
    }
    if (!hs) hs = held_new(e, req, body, len, addr, sid);
    if (!hs) {
        wait_out_of_order(&r->resp);
        return -1;
    }
    if (!hs->counted) wake_send_waits(e->wk, sid, 1);
    hs->counted = 1;
    uint32_t slot = wake_slot(sid);
    r->poll = (wait_poll){.session_id = sid, .send = hs};
    r->poll.pe.slot = slot;
    r->poll.pe.seen = wake_slot_value(e->wk, slot);
    r->poll.pe.deadline = mono + SEND_RECHECK_MS < hs->give_up ? mono + SEND_RECHECK_MS : hs->give_up;
    r->poll.pe.addr_bucket = wake_addr_bucket(addr);
    snprintf(r->poll.addr, sizeof r->poll.addr, "%s", addr);
    r->park = 1;
    return 0;
}

/* R4 for an exchange, in its send's own transaction (wait.c, R4): the
 * session's poll_gen bumped (its acknowledgement is left to its poll part,
 * deferred as usual: after=0 here) and the session woken with the
 * recipients, so that an older held poll -- on any process, or on another
 * machine sharing the store (R8: notified) -- yields in commit order. The
 * poll part then begins under *gen and yields itself, answering at once,
 * when a newer exchange committed before it began (api_then_poll). On
 * SQLite the session's mailbox as the commit will leave it is remembered
 * too (wait.c, R5: the write lock makes it so), so that the poll part may
 * park without a transaction (from_cache). LC_OK or the store's failure. */
static int supersede_in_send(lc_env *e, proto_ctx *c, int64_t *gen)
{
    store_mailbox mb;
    /* The row lookup_session read, unless the batch changed it since. */
    const store_session *known = c->self_written ? NULL : &c->self;
    int rc = store_session_poll(e->st, known, c->self.id, 0, c->now, 1, &mb);
    if (rc != LC_OK) return rc;
    *gen = mb.poll_gen;
    proto_wake_session(c, c->self.id);
    if (!store_shared(e->st)) proto_wake_mailbox(c, c->self.id, &mb);
    return LC_OK;
}

/* POST /rtc/send: stores the batch in one transaction (idempotent with
 * batch=), answers {"ok":true}. With after= it is an exchange: once the
 * batch is stored (or found already applied) the request goes on as the
 * session's poll from after= (timeout= as a poll's), and its answer, at
 * once or when held, is the poll answer with "ok": true in front. A cursor
 * beyond the mailbox's last message is a 400 before anything is stored. */
static void ep_send(lc_env *e, const http_request *req, const char *addr, const char *body,
                    size_t len, api_result *r, api_held_send *held)
{
    char batch[80];
    uint8_t hash[32];
    http_response *resp = &r->resp;
    proto_ctx c = {.st = e->st, .cfg = e->cfg, .now = lc_now_ms(), .wk = e->wk, .addr = addr};
    json_t *root = NULL;
    int q = http_query(req->query, "batch", batch, sizeof batch), rc;
    if (q == -1 || (q == 0 && (batch[0] == '\0' || strlen(batch) > 64))) {
        http_error(resp, 400, "batch must be 1 to 64 characters");
        goto out;
    }
    send_opts o;
    if (send_opts_parse(e->cfg, req, &o, resp) != LC_OK) goto out;
    if (!http_json_type(req)) {
        http_error(resp, 415, "send the body as application/json or text/plain");
        goto out;
    }
    /* Parsed and hashed before the write lock is taken. */
    if (!(root = parse_messages(e, body, len, resp)) || parse_sid(req, hash, resp) != LC_OK)
        goto out;
    if ((rc = store_begin(e->st)) != LC_OK) {
        http_db_error(resp, rc);
        goto out;
    }
    int waiting = 0;
    if (lookup_session(e, hash, &c.self, resp) != LC_OK ||
        send_precheck(e, &c.self, &o, resp, &waiting) != LC_OK)
        goto rollback;
    if (waiting) { /* R9: waits for prev, or its 409 after SEND_WAIT_MS */
        hold_send(e, req, body, len, addr, c.self.id, held, r);
        goto rollback;
    }
    if (held && held->counted) { /* its prev is here: it waits no more */
        wake_send_waits(e->wk, held->session_id, -1);
        held->counted = 0;
    }
    rc = apply_batch(e, &c, q == 0 ? batch : NULL, root);
    /* R9: a send of this session waits for a batch: this commit wakes it,
     * and it is the session's newer poll (R4), so an exchange's own poll
     * part is not made: answered at once, nothing new. */
    int sends_wait = rc == LC_OK && wake_slot_sends(e->wk, wake_slot(c.self.id)) != 0;
    if (sends_wait) proto_wake_session(&c, c.self.id);
    if (rc == LC_QUOTA) {
        refuse_send(e, addr, &c, resp);
        goto rollback;
    }
    int64_t gen = 0;
    if (rc == LC_OK && o.exchange) rc = supersede_in_send(e, &c, &gen);
    if (rc == LC_OK) rc = wait_mark_slots(e, &c); /* the write lock is held */
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) {
        http_db_error(resp, rc);
        goto rollback;
    }
    wait_post_all(e, &c, &r->woken);
    log_call_refusals(e, addr, &c);
    if (c.calls_placed) r->due = c.now + (int64_t)e->cfg->ring_timeout * 1000;
    if (o.exchange && sends_wait) {
        wait_poll yield = {.after = o.after, .exchange = 1, .allow_origin = resp->allow_origin};
        wait_expire(&yield, resp);
        goto out;
    }
    if (o.exchange) {
        /* The stored batch is answered with the poll (R1 holds: committed
         * and posted above), which reads its own snapshot once the front
         * has served woken (api_then_poll). */
        r->then_poll = 1;
        memcpy(r->then_hash, hash, sizeof hash);
        r->then_after = o.after;
        r->then_timeout = o.timeout;
        r->then_gen = gen;
        snprintf(r->poll.addr, sizeof r->poll.addr, "%s", addr);
        goto out;
    }
    ok(resp);
    goto out;
rollback:
    store_rollback(e->st);
    wait_unmark_all(e, &c);
out:
    proto_ctx_free(&c);
    json_decref(root);
}

/* Reads a poll's parameters and hands it to wait; a poll to park counts
 * against its client address addr (LONGCALL_ADDR_HELD, in park_add). */
static void ep_poll(lc_env *e, const http_request *req, const char *addr, api_result *r)
{
    long long after, timeout;
    uint8_t hash[32];
    if (int_param(req, "after", 0, &after, &r->resp) ||
        int_param(req, "timeout", e->cfg->poll_timeout, &timeout, &r->resp) ||
        parse_sid(req, hash, &r->resp) != LC_OK)
        return;
    if (timeout > e->cfg->poll_max) timeout = e->cfg->poll_max;
    wait_ask ask = {.hash = hash, .after = after, .timeout = timeout};
    start_poll(e, &ask, addr, r);
}

static void ep_close(lc_env *e, const http_request *req, api_result *r)
{
    proto_ctx c = {.st = e->st, .cfg = e->cfg, .now = lc_now_ms()};
    store_session s;
    long long after;
    /* after= (optional) acknowledges what the client received last. */
    if (int_param(req, "after", 0, &after, &r->resp)) return;
    int rc = store_begin(e->st);
    if (rc != LC_OK) {
        http_db_error(&r->resp, rc);
        goto out;
    }
    if (find_session(e, req, &s, &r->resp) != LC_OK) {
        store_rollback(e->st);
        goto out;
    }
    if (after > s.acked) rc = store_session_poll(e->st, &s, s.id, after, c.now, 0, NULL);
    if (rc == LC_OK) rc = proto_end_session(&c, s.id, "closed");
    if (rc == LC_OK) rc = wait_mark_slots(e, &c); /* the write lock is held */
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc != LC_OK) {
        store_rollback(e->st);
        wait_unmark_all(e, &c);
        http_db_error(&r->resp, rc);
        goto out;
    }
    wait_post_all(e, &c, &r->woken);
    ok(&r->resp);
out:
    proto_ctx_free(&c);
}

static void ep_status(lc_env *e, http_response *resp)
{
    wire_status w = {.version = LONGCALL_VERSION, .pid = (int)getpid(), .held_here = wake_proc_held_here(e->wk)};
    int rc = store_begin_read(e->st);
    if (rc == LC_OK)
        rc = store_stats(e->st, &w.sessions, &w.registered, &w.queued_messages, &w.calls);
    store_rollback(e->st);
    if (rc != LC_OK) {
        http_db_error(resp, rc);
        return;
    }
    wake_held_total(e->wk, &w.held_polls, &w.processes);
    w.dropped_slow = wake_dropped(e->wk);
    w.uptime_s = (lc_now_ms() - e->started_ms) / 1000;
    resp->status = 200;
    wire_status_answer(&resp->body, &w);
}

/* GET /rtc/metrics: the Prometheus text exposition (metrics.h), to a
 * scraper whose address is in LONGCALL_METRICS_ALLOW or that presents
 * LONGCALL_METRICS_TOKEN_FILE's token; anyone else gets a JSON 403 (so
 * does everyone while neither is set: off by default). */
static void ep_metrics(lc_env *e, const http_request *req, http_response *resp)
{
    const lc_config *cfg = e->cfg;
    char key[ADDR_KEY_MAX];
    addr_net who;
    http_client_addr(req, cfg, key);
    int ok = cfg->nmetrics_allow > 0 && addr_parse(key, strlen(key), &who) == 0 &&
             addr_in(&who, cfg->metrics_allow, cfg->nmetrics_allow);
    static const char bearer[] = "Bearer ";
    const char *a = req->authorization;
    if (!ok && cfg->metrics_token && a && strncmp(a, bearer, sizeof bearer - 1) == 0) {
        a += sizeof bearer - 1;
        size_t n = strlen(a);
        ok = n == cfg->metrics_token_len && CRYPTO_memcmp(a, cfg->metrics_token, n) == 0;
    }
    if (!ok) {
        http_error(resp, 403, cfg->nmetrics_allow || cfg->metrics_token
                                  ? "metrics: not allowed (LONGCALL_METRICS_ALLOW does not list "
                                    "this address and no valid bearer token was given)"
                                  : "metrics are off: set LONGCALL_METRICS_ALLOW (scrapers' "
                                    "addresses) or LONGCALL_METRICS_TOKEN_FILE");
        return;
    }
    metrics_gauges g = {.db_bytes = -1,
                        .wal_bytes = -1,
                        .store = store_shared(e->st) ? "postgresql" : "sqlite"};
    int rc = store_begin_read(e->st);
    if (rc == LC_OK) rc = store_stats(e->st, &g.sessions, &g.registered, &g.queued, &g.calls);
    store_rollback(e->st);
    if (rc != LC_OK) {
        http_db_error(resp, rc);
        return;
    }
    store_size(e->st, &g.db_bytes, &g.wal_bytes);
    wake_held_total(e->wk, &g.held_polls, &g.processes);
    resp->body.len = 0;
    if (metrics_render(&g, &resp->body) != 0) {
        http_error(resp, 503, "metrics: the shared counters could not be mapped in this process "
                              "(see its log)");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

void api_then_poll(lc_env *e, api_result *r)
{
    char addr[sizeof r->poll.addr];
    snprintf(addr, sizeof addr, "%s", r->poll.addr);
    const char *allow = r->resp.allow_origin;
    wait_ask ask = {.hash = r->then_hash,
                    .after = r->then_after,
                    .timeout = r->then_timeout,
                    .exchange = 1,
                    .gen = r->then_gen};
    r->then_poll = 0;
    start_poll(e, &ask, addr, r);
    if (r->park) r->poll.allow_origin = allow;
}

void api_send_resume(lc_env *e, api_held_send *hs, const char *allow_origin, api_result *r)
{
    *r = (api_result){.due = INT64_MAX};
    http_request req = {.method = "POST",
                        .endpoint = EP_SEND,
                        .query = hs->query,
                        .content_type = hs->content_type,
                        .content_length = (long long)hs->len};
    r->resp.allow_origin = allow_origin;
    ep_send(e, &req, hs->addr, hs->body, hs->len, r, hs);
    if (r->park && r->poll.send == hs) {
        r->poll.allow_origin = allow_origin;
        return;
    }
    api_held_send_free(hs);
}

void api_result_free(api_result *r)
{
    http_response_free(&r->resp);
    wait_woken_free(&r->woken);
}

int api_precheck(const lc_config *cfg, const http_request *req, http_response *resp)
{
    const char *allow, *method = http_method_of(req->endpoint);
    if (http_origin_ok(req, cfg, &allow) != 0) {
        http_error(resp, 403, "this origin is not allowed; see LONGCALL_CORS_ORIGINS");
        return 1;
    }
    resp->allow_origin = allow;
    if (!method) {
        http_error(resp, 404, "unknown endpoint; use session, send, poll, close or status");
        return 1;
    }
    if (strcmp(req->method, "OPTIONS") == 0) {
        resp->status = 204;
        resp->preflight = 1;
        return 1;
    }
    if (strcmp(req->method, method) != 0) {
        char why[80];
        snprintf(why, sizeof why, "use %s for this endpoint", method);
        http_error(resp, 405, why);
        resp->method = method;
        return 1;
    }
    return 0;
}

void api_handle(lc_env *e, const http_request *req, const char *body, size_t len, api_result *r)
{
    *r = (api_result){.due = INT64_MAX};
    http_response *resp = &r->resp;
    if (api_precheck(e->cfg, req, resp)) return;
    const char *allow = resp->allow_origin;
    char addr[ADDR_KEY_MAX] = "";
    if (req->endpoint == EP_SESSION || req->endpoint == EP_POLL || req->endpoint == EP_SEND)
        http_client_addr(req, e->cfg, addr);
    switch (req->endpoint) {
    case EP_SESSION:
        ep_session(e, addr, r);
        break;
    case EP_SEND:
        ep_send(e, req, addr, body, len, r, NULL);
        if (r->park) r->poll.allow_origin = allow;
        break;
    case EP_POLL:
        ep_poll(e, req, addr, r);
        if (r->park) r->poll.allow_origin = allow;
        break;
    case EP_CLOSE:
        ep_close(e, req, r);
        break;
    case EP_STATUS:
        ep_status(e, resp);
        break;
    case EP_METRICS:
        ep_metrics(e, req, resp);
        break;
    case EP_UNKNOWN:
        break;
    }
}

/* One transaction of expiry and ring timeouts. Sets *more when a batch was
 * full (run again), *elsewhere when another node runs it right now
 * (store_begin_job: nothing done here). */
static int expire_round(lc_env *e, int64_t now, wait_woken *woken, int *more, int *elsewhere)
{
    int64_t ids[MAINT_BATCH], cids[MAINT_BATCH];
    int n = 0, nc = 0, mine = 1;
    proto_ctx c = {.st = e->st, .cfg = e->cfg, .now = now};
    *more = 0;
    int rc = store_begin_job(e->st, STORE_JOB_EXPIRE, &mine);
    *elsewhere = rc == LC_OK && !mine;
    if (*elsewhere) return LC_OK;
    if (rc == LC_OK)
        rc = store_sessions_idle(e->st, now - (int64_t)e->cfg->session_expiry * 1000, ids,
                                 MAINT_BATCH, &n);
    for (int i = 0; i < n && rc == LC_OK; i++)
        rc = proto_end_session(&c, ids[i], "expired");
    if (rc == LC_OK)
        rc = store_calls_unanswered(e->st, now - (int64_t)e->cfg->ring_timeout * 1000, cids,
                                    MAINT_BATCH, &nc);
    for (int i = 0; i < nc && rc == LC_OK; i++)
        rc = proto_ring_timeout(&c, cids[i]);
    if (rc == LC_OK) rc = wait_mark_slots(e, &c); /* the write lock is held */
    if (rc == LC_OK) rc = store_commit(e->st);
    if (rc == LC_OK) {
        wait_post_all(e, &c, woken);
    } else {
        store_rollback(e->st);
        wait_unmark_all(e, &c);
    }
    *more = n == MAINT_BATCH || nc == MAINT_BATCH;
    proto_ctx_free(&c);
    return rc;
}

/* Deletes history past the retention, PRUNE_BATCH rows a transaction.
 * Sets *more when the last batch was full. A transaction that finds
 * another node pruning (store_begin_job) ends the run: that node does it. */
static int prune(lc_env *e, int64_t now, int *more)
{
    int deleted = 0, rc = LC_OK, mine = 1;
    *more = 0;
    for (int round = 0; round < PRUNE_ROUNDS; round++) { /* never-registered sessions */
        rc = store_begin_job(e->st, STORE_JOB_PRUNE, &mine);
        if (rc == LC_OK && !mine) return LC_OK;
        if (rc == LC_OK)
            rc = store_prune_unregistered(e->st, now - UNREGISTERED_KEEP_MS, MAINT_BATCH, &deleted);
        if (rc == LC_OK) rc = store_commit(e->st);
        if (rc != LC_OK) {
            store_rollback(e->st);
            return rc;
        }
        if (deleted < MAINT_BATCH) break;
    }
    deleted = 0;
    for (int round = 0; round < PRUNE_ROUNDS; round++) {
        rc = store_begin_job(e->st, STORE_JOB_PRUNE, &mine);
        if (rc == LC_OK && !mine) return LC_OK;
        if (rc == LC_OK)
            rc = store_prune(e->st, now - (int64_t)e->cfg->history_days * LC_DAY_MS, PRUNE_BATCH,
                             &deleted);
        if (rc == LC_OK) rc = store_commit(e->st);
        if (rc != LC_OK) {
            store_rollback(e->st);
            break;
        }
        if (deleted < PRUNE_BATCH) break;
    }
    *more = deleted == PRUNE_BATCH;
    return rc;
}

int api_maintain_due(lc_env *e, int64_t *when)
{
    int64_t live, history, unreg = INT64_MAX, now = lc_now_ms();
    *when = now + 1000; /* on failure: try again in a second */
    int rc = store_begin_read(e->st);
    if (rc == LC_OK)
        rc = store_next_due(e->st, (int64_t)e->cfg->session_expiry * 1000,
                            (int64_t)e->cfg->ring_timeout * 1000,
                            (int64_t)e->cfg->history_days * LC_DAY_MS, &live, &history);
    if (rc == LC_OK) rc = store_next_unregistered(e->st, &unreg);
    if (rc == LC_OK && unreg != INT64_MAX && unreg + UNREGISTERED_KEEP_MS < history)
        history = unreg + UNREGISTERED_KEEP_MS;
    store_rollback(e->st);
    if (rc != LC_OK) return rc;
    /* History that is due but was not pruned waits for a live session: look
     * again in a minute rather than spin. */
    if (history <= now) history = now + 60000;
    *when = live < history ? live : history;
    return LC_OK;
}

int api_maintain(lc_env *e, wait_woken *woken, int64_t *next)
{
    int64_t now = lc_now_ms();
    int more = 0, pruned_more = 0, elsewhere = 0, rc = LC_OK;
    *next = now + 1000; /* on failure or a backlog: again in a second */
    for (int round = 0; round < PRUNE_ROUNDS; round++) {
        rc = expire_round(e, now, woken, &more, &elsewhere);
        if (rc != LC_OK || !more) break;
    }
    /* Another node is ending what is due right now: look again in a
     * second (whatever it leaves is this node's then), not at once. */
    if (rc == LC_OK && elsewhere) {
        lc_log_event(LC_LOG_DEBUG, "maintenance_elsewhere", LC_NOFIELDS,
                     "maintenance: another node runs expiry and ring time-outs now");
        return rc;
    }
    if (rc == LC_OK) rc = prune(e, now, &pruned_more);
    if (rc != LC_OK || more || pruned_more) return rc;
    rc = api_maintain_due(e, next);
    /* Rows whose time has come are handled on the next run, not before a
     * short pause, so a clock step cannot spin this loop. */
    if (rc == LC_OK && *next < now + 100) *next = now + 100;
    return rc;
}
