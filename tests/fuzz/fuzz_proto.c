/* libFuzzer target: request bodies through JSON parsing, batches and the
 * whole protocol (fcgi/api.c api_handle) against a real store in a
 * temporary database, with the wake file beside it -- as the CGI front
 * (fcgi/front_cgi.c) runs it, or (first input byte odd) with deferred acknowledgements
 * as the FastCGI workers do.
 *
 * The input is a script; each operation is one byte (op = byte % 8) and
 * its arguments, for one of three sessions s = byte % 3 (a session is
 * created on first use):
 *   0 SEND     s, mode, then 1..3 messages from a table of the protocol's
 *              shapes (register with or without a reclaim key, call,
 *              incomingCallResponse accept/reject (with or without block),
 *              onIceCandidate, stop,
 *              answer, list (prefix, after), ping, iceServers, invalid ones) with
 *              fuzzed names and fields; mode: array or single object,
 *              batch id (one of 4, so repeats happen) or none
 *   1 RAW      s, flags, length (2 bytes LE), body bytes: sent as they are
 *              (tests/fuzz/cases2corpus.py turns tests/cases into these)
 *   2 POLL     s, mode: after=cursor (acknowledging correctly), a re-poll
 *              of older messages, a bad after, or a poll that may park
 *              (it stays parked across operations until woken or expired)
 *   3 CLOSE    s, with or without after=
 *   4 MAINT    clock advance (0, 1 s, ring timeout, expiry, ...), then
 *              api_maintain, which must leave no call ringing past the
 *              ring timeout and no session idle past the expiry
 *   5 RENEW    s: the session is abandoned and a new one starts
 *              (re-registration under a name it may still hold)
 *   6 ACKS     write the deferred acknowledgements / expire parked polls
 *   7 OTHER    a request with a fuzzed endpoint, method, sid, Origin
 *
 * Checked after every answer: the status is one of the documented ones and
 * the body valid JSON of the documented form (no 500/503: nothing else uses
 * the database); a 404 for a session only once the database says it ended;
 * a poll answers the messages after+1..seq, contiguous, each identical to
 * what an earlier poll got for that seq (so a poll that acknowledges
 * correctly never gets a message twice or out of order) -- except that a
 * re-poll below an acknowledged seq may miss the transient replies there
 * (listResponse, pong, registerResponse, error: deleted once acknowledged),
 * never anything else. After every
 * operation (SQL of the harness's own): no session has two live calls, no
 * ended session has a live call, a live call's parties are named as their
 * sessions are registered. After the script: every live session is
 * drained and has received all its mailbox holds; every incomingCall's
 * `from`, and every relayed message's sender, is the name the calling
 * session was registered under when it sent.
 *
 * One database for the whole run: each run ends the sessions of the last
 * one (SQL) and starts new ones; every 200 runs the tables are emptied. */
#include "../../fcgi/api.c"
#include "../../fcgi/park.c"
#include "../../fcgi/wait.c"
#include "../../fcgi/notify.c"
#include "../../fcgi/addr.c"
#include "../../fcgi/config.c"
#include "../../fcgi/http.c"
#include "../../fcgi/proto.c"
#include "../../fcgi/token.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/wake.c" /* before store.c: a parameter of it is a static there */
#include "../../fcgi/store.c"
#include "../../fcgi/store_pg.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_proto: " __VA_ARGS__);                                               \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

#define NSESS 3
#define MAX_OPS 48
#define KEEP 256 /* messages remembered per session (seq 1..KEEP) */

static char dir[64], db_path[128], wake_path[160];
static lc_config cfg;
static store *st;
static wake *wk;
static sqlite3 *check_db; /* the harness's own connection */
static sqlite3_stmt *q_two_calls, *q_dead_call, *q_session, *q_from, *q_sender, *q_max_call,
    *q_call_names;
static int64_t first_call; /* calls of this run have ids above it */
static int64_t clock_offset;
static unsigned runs;

typedef struct sess {
    char sid[TOKEN_LEN + 1]; /* "" until created */
    int64_t id;
    int64_t cursor;       /* highest seq received */
    int64_t acked;        /* highest after= sent: every seq <= it may be acknowledged */
    char *seen[KEEP + 1]; /* seen[seq]: the message as first received */
    int parked;           /* a poll is held */
    wait_poll poll;
} sess;

static sess S[NSESS];
static wait_woken woken; /* what the requests of the current op woke */
static int64_t run_ids[64]; /* every session of this run */
static int nrun_ids;

/* ---- input reading ------------------------------------------------------ */

typedef struct in {
    const uint8_t *p;
    size_t n, off;
} in;

static unsigned byte(in *r)
{
    return r->off < r->n ? r->p[r->off++] : 0;
}

static int more(const in *r)
{
    return r->off < r->n;
}

/* ---- set-up ------------------------------------------------------------- */

static void prep(const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v2(check_db, sql, -1, out, NULL) != SQLITE_OK)
        FAIL("prepare %s: %s", sql, sqlite3_errmsg(check_db));
}

static void sql_exec(const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(check_db, sql, NULL, NULL, &err) != SQLITE_OK) FAIL("%s: %s", sql, err);
}

static void cleanup(void)
{
    /* at exit: the temporary folder goes */
    sqlite3_stmt *all[] = {q_two_calls, q_dead_call, q_session,   q_from,
                           q_sender,    q_max_call,  q_call_names};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(check_db);
    store_close(st);
    wake_close(wk);
    char p[200];
    const char *suffix[] = {"", "-wal", "-shm", ".wake"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", db_path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lc_json_init();
    lc_log_set_level(LC_LOG_ERROR);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/lcfuzz.XXXXXX", base);
    if (!mkdtemp(dir)) FAIL("mkdtemp");
    snprintf(db_path, sizeof db_path, "%s/fuzz.db", dir);
    snprintf(wake_path, sizeof wake_path, "%s.wake", db_path);
    static char *no_origins[] = {"https://ok.example", NULL};
    cfg = (lc_config){.db_path = db_path,
                      .poll_timeout = 1,
                      .poll_max = 2,
                      .session_expiry = 60,
                      .ring_timeout = 30,
                      .history_days = 1,
                      .max_body = 65536,
                      .max_batch = 4,
                      .mailbox_quota = 8,
                      .mailbox_share = 4,
                      .max_held = 100,
                      .list_max = 2, /* names: alice, bob, carol -- pages happen */
                      .list_rate = 30,
                      /* every request comes from one (empty) address: the
                       * per-address limits are test_abuse.py's */
                      .addr_sessions_per_min = 1000000,
                      .addr_sessions = 1000000,
                      .addr_held = 100,
                      .threads = 1,
                      .busy_timeout = 1000,
                      .ice_servers = "[]",
                      /* TURN credentials minted on iceServers (issue 13) */
                      .turn_secret = "fuzz-turn-secret",
                      .turn_secret_len = 16,
                      .turn_uris = "[\"turn:127.0.0.1:3478\"]",
                      .turn_ttl = 600,
                      .ice_rate = 10,
                      .cors_origins = no_origins,
                      .name_grace = 300, /* expired names are reserved */
                      /* the call limits as shipped: scripts call often */
                      .call_rate = 20,
                      .call_pair_rate = 6,
                      .call_cooldown = 60,
                      .max_blocks = 2};
    if (store_open(db_path, 1000, &st) != LC_OK) FAIL("store_open");
    if (wake_open(wake_path, &wk) != 0) FAIL("wake_open");
    if (sqlite3_open(db_path, &check_db) != SQLITE_OK) FAIL("sqlite3_open");
    sqlite3_busy_timeout(check_db, 1000);
    /* Calls of earlier runs are all ended (fresh): look at this run's,
     * ids above ?1, only. */
    prep("SELECT s, count(*) FROM (SELECT caller_sid s FROM calls WHERE id > ?1 AND ended IS NULL "
         "UNION ALL SELECT callee_sid FROM calls WHERE id > ?1 AND ended IS NULL) GROUP BY s "
         "HAVING count(*) > 1",
         &q_two_calls);
    prep("SELECT c.id FROM calls c JOIN sessions s ON s.id IN (c.caller_sid, c.callee_sid) "
         "WHERE c.id > ?1 AND c.ended IS NULL AND s.ended IS NOT NULL",
         &q_dead_call);
    prep("SELECT coalesce(max(id), 0) FROM calls", &q_max_call);
    /* A live call's parties are named as their sessions are registered
     * (a name cannot change during a call). */
    prep("SELECT c.id, c.caller, a.name, c.callee, b.name FROM calls c "
         "JOIN sessions a ON a.id = c.caller_sid JOIN sessions b ON b.id = c.callee_sid "
         "WHERE c.id > ?1 AND c.ended IS NULL AND (a.name IS NOT c.caller OR b.name IS NOT "
         "c.callee)",
         &q_call_names);
    prep("SELECT id, ended IS NOT NULL, next_seq FROM sessions WHERE id = ?", &q_session);
    /* incomingCall: from = the call's caller = what the message row says
     * sent it. */
    prep("SELECT m.seq, json_extract(m.body, '$.from'), c.caller, m.sender FROM messages m "
         "JOIN calls c ON c.id = m.call_id WHERE m.session_id = ? AND m.type = 'incomingCall'",
         &q_from);
    /* Every relayed message names a party of its call as sender, the
     * other as recipient. */
    prep("SELECT m.seq, m.sender, m.recipient, c.caller, c.callee FROM messages m "
         "JOIN calls c ON c.id = m.call_id WHERE m.session_id = ? AND m.sender IS NOT NULL",
         &q_sender);
    atexit(cleanup);
    return 0;
}

/* ---- requests ----------------------------------------------------------- */

typedef struct answer {
    int status;
    json_t *json; /* NULL for 204 */
    int parked;
} answer;

/* The statuses api_handle documents (README, "Errors"). */
static int documented(int status)
{
    static const int ok[] = {200, 204, 400, 403, 404, 405, 413, 415, 429};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (status == ok[i]) return 1;
    return 0;
}

/* Checks resp is a documented answer with a JSON body; returns it parsed. */
static json_t *check_resp(const http_response *resp, const char *what)
{
    if (!documented(resp->status))
        FAIL("%s: status %d: %s", what, resp->status, resp->body.data ? resp->body.data : "");
    if (resp->status == 204) return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &jerr);
    if (!json_is_object(j))
        FAIL("%s: status %d, body is not a JSON object: %s", what, resp->status,
             resp->body.data ? resp->body.data : "(none)");
    if (resp->status != 200 && !json_is_string(json_object_get(j, "error")))
        FAIL("%s: status %d without an error sentence", what, resp->status);
    if (resp->retry_after && resp->status != 429) FAIL("%s: Retry-After on %d", what, resp->status);
    buf out = {0};
    http_format(resp, &out); /* the header block is http.c's: fuzz_http checks it */
    buf_free(&out);
    return j;
}

static lc_env env;

static void flush_acks(void)
{
    if (wait_write_acks(&env) != LC_OK) FAIL("wait_write_acks failed");
}

/* Moves the records of k to the end of woken. */
static void keep_woken(wait_woken *k)
{
    for (int i = 0; i < k->n; i++) {
        if (woken.n == woken.cap) {
            woken.cap = woken.cap ? woken.cap * 2 : 8;
            woken.w = xrealloc(woken.w, (size_t)woken.cap * sizeof *woken.w);
        }
        woken.w[woken.n++] = k->w[i];
    }
    k->n = 0;
}

/* Serves one request. A poll that parks is returned parked (*poll filled). */
static answer request(const char *method, const char *uri, const char *query, const char *body,
                      size_t len, const char *origin, wait_poll *poll)
{
    char m[64], u[300], q[400], o[200];
    snprintf(m, sizeof m, "REQUEST_METHOD=%s", method);
    snprintf(u, sizeof u, "REQUEST_URI=%s", uri);
    snprintf(q, sizeof q, "QUERY_STRING=%s", query);
    snprintf(o, sizeof o, "HTTP_ORIGIN=%s", origin ? origin : "");
    char *envp[] = {
        m, u, q, "HTTP_HOST=h.example", "CONTENT_TYPE=application/json", origin ? o : NULL, NULL};
    http_request req;
    http_parse(&req, envp);
    api_result r;
    answer a = {0};
    api_handle(&env, &req, body, len, &r);
    if (r.then_poll) api_then_poll(&env, &r);
    keep_woken(&r.woken);
    if (r.park) {
        if (!poll) FAIL("a request parked that cannot park");
        *poll = r.poll;
        a.parked = 1;
    } else {
        a.status = r.resp.status;
        a.json = check_resp(&r.resp, uri);
    }
    api_result_free(&r);
    return a;
}

/* ---- sessions ----------------------------------------------------------- */

static int64_t session_id_of(const char *sid)
{
    uint8_t hash[32];
    if (token_hash(sid, hash) != 0) FAIL("the server made an invalid token");
    sqlite3_stmt *q;
    prep("SELECT id FROM sessions WHERE token_hash = ?", &q);
    sqlite3_bind_blob(q, 1, hash, 32, SQLITE_STATIC);
    int64_t id = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    if (!id) FAIL("a new session is not in the database");
    return id;
}

/* 1 when session id has ended (or does not exist), per the database; sets
 * *last_seq (when not NULL) to the seq of its last message. */
static int ended(int64_t id, int64_t *last_seq)
{
    sqlite3_reset(q_session);
    sqlite3_bind_int64(q_session, 1, id);
    int e = 1;
    if (sqlite3_step(q_session) == SQLITE_ROW) {
        e = sqlite3_column_int(q_session, 1);
        if (last_seq) *last_seq = sqlite3_column_int64(q_session, 2);
    }
    sqlite3_reset(q_session);
    return e;
}

static void forget(sess *s)
{
    for (int i = 0; i <= KEEP; i++) {
        free(s->seen[i]);
        s->seen[i] = NULL;
    }
    if (s->parked) wake_slot_held(wk, s->poll.pe.slot, -1);
    memset(s, 0, sizeof *s);
}

static sess *need(int i)
{
    sess *s = &S[i];
    if (s->sid[0]) return s;
    answer a = request("POST", "/rtc/session", "", "", 0, NULL, NULL);
    if (a.status != 200) FAIL("session: %d", a.status);
    const char *sid = json_string_value(json_object_get(a.json, "sid"));
    if (!sid || strlen(sid) != TOKEN_LEN) FAIL("session: no sid");
    snprintf(s->sid, sizeof s->sid, "%s", sid);
    json_decref(a.json);
    s->id = session_id_of(s->sid);
    if (nrun_ids < (int)(sizeof run_ids / sizeof run_ids[0])) run_ids[nrun_ids++] = s->id;
    return s;
}

/* A 404 about a session is right only when it has ended. */
static void check_404(const sess *s, const answer *a, const char *what)
{
    if (a->status == 404 && !ended(s->id, NULL)) FAIL("%s: 404 for a live session", what);
}

/* ---- polls -------------------------------------------------------------- */

/* 1 when text (a message as received) is a reply that is not kept once
 * acknowledged: listResponse, pong, registerResponse, error. */
static int transient_text(const char *text)
{
    static const char *const ids[] = {"\"id\":\"listResponse\"", "\"id\":\"pong\"",
                                      "\"id\":\"iceServers\"", "\"id\":\"registerResponse\"",
                                      "\"id\":\"error\""};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (strstr(text, ids[i])) return 1;
    return 0;
}

/* Checks a poll answer for after (contiguous seqs after+1.., same text as
 * before for a seq seen before) and moves the cursor. */
static void take_poll(sess *s, int64_t after, const answer *a, const char *what)
{
    check_404(s, a, what);
    if (getenv("FUZZ_DEBUG")) {
        char *t = a->json ? json_dumps(a->json, JSON_COMPACT) : NULL;
        fprintf(stderr, "# session %lld %s after=%lld: %d %s\n", (long long)s->id, what,
                (long long)after, a->status, t ? t : "");
        free(t);
    }
    if (a->status != 200) return;
    json_t *jseq = json_object_get(a->json, "seq");
    json_t *msgs = json_object_get(a->json, "messages");
    if (!json_is_integer(jseq) || !json_is_array(msgs)) FAIL("%s: not a poll answer", what);
    int64_t last = json_integer_value(jseq), want = after + 1;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *ms = json_object_get(m, "seq");
        /* Skipped: acknowledged transient replies (or ones this client
         * acknowledged without receiving them: a poll past its cursor). */
        while (json_is_integer(ms) && want < json_integer_value(ms) && want <= s->acked &&
               (want > KEEP || !s->seen[want] || transient_text(s->seen[want])))
            want++;
        if (!json_is_integer(ms) || json_integer_value(ms) != want)
            FAIL("%s: after=%lld: message %zu has seq %lld, expected %lld (duplicate, gap or "
                 "disorder)",
                 what, (long long)after, i, (long long)json_integer_value(ms), (long long)want);
        if (!json_is_string(json_object_get(m, "id"))) FAIL("%s: a message without id", what);
        char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
        if (want <= KEEP) {
            if (!s->seen[want])
                s->seen[want] = text, text = NULL;
            else if (strcmp(s->seen[want], text) != 0)
                FAIL("%s: seq %lld delivered as %s, earlier as %s", what, (long long)want, text,
                     s->seen[want]);
        }
        free(text);
        want++;
    }
    if (last != want - 1 || (json_array_size(msgs) == 0 && last != after))
        FAIL("%s: seq %lld does not end the messages (after=%lld)", what, (long long)last,
             (long long)after);
    if (last > s->cursor) s->cursor = last;
}

/* A parked poll that is answered now (woken, superseded or expired). */
static void settle(sess *s, int expire)
{
    if (!s->parked) return;
    http_response resp = {0};
    int done;
    if (expire) {
        wait_expire(&s->poll, &resp);
        done = 1;
    } else if (wake_slot_value(wk, s->poll.pe.slot) != s->poll.pe.seen) {
        done = wait_resume(&env, &s->poll, &woken, &resp) == WAIT_ANSWER;
    } else {
        return;
    }
    if (!done) {
        http_response_free(&resp);
        return;
    }
    answer a = {.status = resp.status, .json = check_resp(&resp, "parked poll")};
    http_response_free(&resp);
    wake_slot_held(wk, s->poll.pe.slot, -1);
    s->parked = 0;
    take_poll(s, s->poll.after, &a, "parked poll");
    json_decref(a.json);
}

static void settle_all(int expire)
{
    for (int i = 0; i < NSESS; i++)
        settle(&S[i], expire);
}

static void poll_once(sess *s, int64_t after, int timeout, const char *bad)
{
    char q[200];
    if (bad)
        snprintf(q, sizeof q, "sid=%s&after=%s&timeout=0", s->sid, bad);
    else
        snprintf(q, sizeof q, "sid=%s&after=%lld&timeout=%d", s->sid, (long long)after, timeout);
    long long n = bad ? strtoll(bad, NULL, 10) : after; /* what it may acknowledge */
    if (n > s->acked) s->acked = n;
    wait_poll p;
    answer a = request("GET", "/rtc/poll", q, "", 0, NULL, &p);
    if (a.parked) {
        /* One held poll per session here: a newer one makes the older yield
         * (it is woken: settle answers it). */
        settle(s, 0);
        if (s->parked) settle(s, 1);
        s->poll = p;
        s->parked = 1;
        wake_slot_held(wk, p.pe.slot, 1);
        return;
    }
    if (bad && a.status == 200 && bad[0] >= '1' && bad[0] <= '9' && strlen(bad) < 19) {
        /* A number past what this client received but not past the
         * mailbox: served (the client skips messages; its cursor stays). */
        int64_t keep = s->cursor;
        take_poll(s, strtoll(bad, NULL, 10), &a, "poll past the cursor");
        s->cursor = keep;
    } else if (bad) {
        if (a.status != 400 && a.status != 404) FAIL("poll after=%s: %d", bad, a.status);
    } else if (after > s->cursor && a.status == 200) {
        FAIL("poll after=%lld beyond what was delivered answered 200", (long long)after);
    }
    if (!bad) take_poll(s, after, &a, "poll");
    check_404(s, &a, "poll");
    json_decref(a.json);
}

/* ---- messages ----------------------------------------------------------- */

static const char *const names[] = {"alice", "bob", "carol"};

/* Appends a JSON string made of up to n raw input bytes (quotes and
 * backslashes escaped, controls as \u00XX, anything else raw: invalid
 * UTF-8 reaches Jansson). */
static void raw_string(buf *b, in *r, unsigned n)
{
    buf_puts(b, "\"");
    for (unsigned i = 0; i < n && more(r); i++) {
        unsigned c = byte(r);
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        else
            buf_append(b, &(char){(char)c}, 1);
    }
    buf_puts(b, "\"");
}

static void name_value(buf *b, in *r)
{
    unsigned k = byte(r) % 10;
    if (k < 6)
        buf_printf(b, "\"%s\"", names[k % 3]);
    else if (k == 6)
        buf_puts(b, "\"\"");
    else if (k == 7)
        buf_puts(b, "\"a\\u0001\"");
    else if (k == 8)
        raw_string(b, r, byte(r) % 12);
    else
        buf_puts(b, "7");
}

static void sdp_value(buf *b, in *r)
{
    static const char *const v[] = {"\"v=0 X\"", "{\"type\":\"offer\",\"sdp\":\"v=0\"}", "null",
                                    "42", "{\"candidate\":\"c\",\"sdpMid\":\"0\"}"};
    unsigned k = byte(r) % 6;
    if (k < 5)
        buf_puts(b, v[k]);
    else
        raw_string(b, r, byte(r) % 16);
}

/* One message from the table of shapes. */
static void message(buf *b, in *r)
{
    switch (byte(r) % 14) {
    case 0:
        buf_puts(b, "{\"id\":\"register\",\"name\":");
        name_value(b, r);
        buf_puts(b, "}");
        break;
    case 1: { /* register with a reclaim key (a name reserved after an expiry) */
        static const char *const key[] = {"\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", "\"\"",
                                          "42", "null"};
        buf_puts(b, "{\"id\":\"register\",\"name\":");
        name_value(b, r);
        buf_puts(b, ",\"reclaim\":");
        unsigned k = byte(r) % 5;
        if (k < 4)
            buf_puts(b, key[k]);
        else
            raw_string(b, r, byte(r) % 48);
        buf_puts(b, "}");
        break;
    }
    case 2:
        buf_puts(b, "{\"id\":\"call\",\"to\":");
        name_value(b, r);
        if (byte(r) % 4) {
            buf_puts(b, ",\"sdpOffer\":");
            sdp_value(b, r);
        }
        if (byte(r) % 4 == 0) buf_puts(b, ",\"from\":\"mallory\"");
        buf_puts(b, "}");
        break;
    case 3:
    case 4: {
        unsigned k = byte(r);
        buf_printf(b, "{\"id\":\"incomingCallResponse\",\"callResponse\":\"%s\"",
                   k % 5 == 0 ? "maybe"
                   : k % 2    ? "accept"
                              : "reject");
        if (k & 8) {
            buf_puts(b, ",\"from\":");
            name_value(b, r);
        }
        if (!(k & 16)) {
            buf_puts(b, ",\"sdpOffer\":");
            sdp_value(b, r);
        }
        if (k & 32) /* "reject and block", or a block that is not a boolean */
            buf_puts(b, k & 64    ? ",\"block\":true"
                        : k & 128 ? ",\"block\":\"yes\""
                                  : ",\"block\":false");
        buf_puts(b, "}");
        break;
    }
    case 5:
    case 6:
        buf_puts(b, "{\"id\":\"onIceCandidate\"");
        if (byte(r) % 5) {
            buf_puts(b, ",\"candidate\":");
            sdp_value(b, r);
        }
        buf_puts(b, "}");
        break;
    case 7:
        buf_puts(b, "{\"id\":\"stop\"}");
        break;
    case 8:
        buf_puts(b, "{\"id\":\"answer\",\"sdp\":");
        sdp_value(b, r);
        buf_puts(b, "}");
        break;
    case 9: { /* list, with prefix and after (pages) now and then */
        unsigned k = byte(r);
        buf_puts(b, "{\"id\":\"list\"");
        if (k & 1) {
            buf_puts(b, ",\"prefix\":");
            name_value(b, r);
        }
        if (k & 2) {
            buf_puts(b, ",\"after\":");
            name_value(b, r);
        }
        buf_puts(b, "}");
        break;
    }
    case 10: /* ping, or iceServers (a TURN credential minted: issue 13) */
        buf_puts(b, byte(r) % 4 ? "{\"id\":\"ping\"}" : "{\"id\":\"iceServers\"}");
        break;
    case 11: {
        static const char *const bad[] = {"{\"id\":5}",        "{}",  "\"ping\"", "[1]",
                                          "{\"id\":\"nope\"}", "null"};
        buf_puts(b, bad[byte(r) % 6]);
        break;
    }
    case 12:
        buf_puts(b, "{\"id\":");
        raw_string(b, r, byte(r) % 8);
        buf_puts(b, "}");
        break;
    default: /* garbage: raw bytes */
        for (unsigned n = byte(r) % 16, i = 0; i < n && more(r); i++)
            buf_append(b, &(char){(char)byte(r)}, 1);
        break;
    }
}

static void do_send(sess *s, const char *body, size_t len, unsigned flags)
{
    char q[200];
    if (flags & 8)
        snprintf(q, sizeof q, "sid=%s&batch=b%u", s->sid, (flags >> 4) % 4);
    else
        snprintf(q, sizeof q, "sid=%s", s->sid);
    answer a = request("POST", "/rtc/send", q, body, len, NULL, NULL);
    check_404(s, &a, "send");
    if (a.status == 200 && !json_is_true(json_object_get(a.json, "ok")))
        FAIL("send: 200 without ok: true");
    json_decref(a.json);
}

static void op_send(in *r)
{
    sess *s = need((int)(byte(r) % NSESS));
    unsigned flags = byte(r);
    buf b = {0};
    int n = 1 + (int)(flags % 3);
    if (flags & 4) {
        buf_puts(&b, "[");
        for (int i = 0; i < n + (flags & 128 ? 3 : 0); i++) {
            if (i) buf_puts(&b, ",");
            message(&b, r);
        }
        buf_puts(&b, "]");
    } else {
        message(&b, r);
    }
    do_send(s, b.data, b.len, flags);
    buf_free(&b);
}

static void op_raw(in *r)
{
    sess *s = need((int)(byte(r) % NSESS));
    unsigned flags = byte(r);
    size_t len = byte(r);
    len |= (size_t)byte(r) << 8;
    if (len > r->n - r->off) len = r->n - r->off;
    do_send(s, (const char *)r->p + r->off, len, flags);
    r->off += len;
}

static void op_poll(in *r)
{
    sess *s = need((int)(byte(r) % NSESS));
    unsigned mode = byte(r);
    switch (mode % 5) {
    case 0:
        poll_once(s, s->cursor, 0, NULL);
        break;
    case 1: /* re-poll: the last few again */
        poll_once(s, s->cursor > (mode >> 3) % 4 ? s->cursor - (mode >> 3) % 4 : 0, 0, NULL);
        break;
    case 2: {
        static const char *const bad[] = {"-1", "x", "1e3", "", "99999999999999999999", "3x"};
        char v[32];
        if (mode & 8) snprintf(v, sizeof v, "%lld", (long long)(s->cursor + 1 + (mode >> 4) % 3));
        poll_once(s, 0, 0, mode & 8 ? v : bad[(mode >> 4) % 6]);
        break;
    }
    default: /* may park */
        poll_once(s, s->cursor, 1, NULL);
        break;
    }
}

static void op_close(in *r)
{
    sess *s = need((int)(byte(r) % NSESS));
    char q[200];
    if (byte(r) & 1)
        snprintf(q, sizeof q, "sid=%s&after=%lld", s->sid, (long long)s->cursor);
    else
        snprintf(q, sizeof q, "sid=%s", s->sid);
    answer a = request("POST", "/rtc/close", q, "", 0, NULL, NULL);
    check_404(s, &a, "close");
    if (a.status == 200 && !ended(s->id, NULL)) FAIL("close answered 200, the session lives on");
    json_decref(a.json);
}

static void op_maint(in *r)
{
    static const int64_t step[] = {0, 1000, 30001, 60001, 5000, 29000};
    clock_offset += step[byte(r) % 6];
    lc_clock_set_offset(clock_offset);
    int64_t next;
    flush_acks(); /* as the server would have by then (50 ms) */
    int64_t now = lc_now_ms();
    if (api_maintain(&env, &woken, &next) != LC_OK) FAIL("api_maintain failed");
    if (next < now) FAIL("maintenance due in the past");
    /* Nothing it should have ended is left: no call ringing past the ring
     * timeout, no session idle past the expiry (its clock is read first). */
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM calls WHERE id > %lld AND ended IS NULL AND "
             "answered IS NULL AND placed < %lld) + (SELECT count(*) FROM sessions WHERE "
             "ended IS NULL AND last_seen < %lld)",
             (long long)first_call, (long long)(now - cfg.ring_timeout * 1000LL),
             (long long)(now - cfg.session_expiry * 1000LL));
    sqlite3_stmt *q;
    prep(sql, &q);
    if (sqlite3_step(q) != SQLITE_ROW || sqlite3_column_int(q, 0) != 0)
        FAIL("maintenance left %d calls ringing past the timeout or sessions idle past expiry",
             sqlite3_column_int(q, 0));
    sqlite3_finalize(q);
}

static void op_other(in *r)
{
    static const char *const uri[] = {"/rtc/session", "/rtc/send", "/rtc/poll",     "/rtc/close",
                                      "/rtc/status",  "/rtc/nope", "/x/rtc/poll?x", "/"};
    static const char *const method[] = {"GET", "POST", "OPTIONS", "PUT"};
    static const char *const origin[] = {NULL, "https://ok.example", "https://evil.example",
                                         "http://h.example"};
    unsigned k = byte(r), s = byte(r);
    char q[200];
    const char *sid = (s & 3) == 3 ? "short" : (s & 3) == 2 ? "" : need((int)(s % NSESS))->sid;
    snprintf(q, sizeof q, "sid=%s&after=%u&timeout=0", sid, (s >> 2) % 3);
    if ((s & 3) < 2 && S[s % NSESS].acked < (s >> 2) % 3) /* a poll (or close) acknowledges */
        S[s % NSESS].acked = (s >> 2) % 3;
    wait_poll p;
    answer a = request(method[(k >> 3) % 4], uri[k % 8], q, "{\"id\":\"ping\"}", 13,
                       origin[(k >> 5) % 4], &p);
    if (a.parked) FAIL("timeout=0 parked");
    if ((k >> 5) % 4 == 2 && a.status != 403) FAIL("foreign origin: %d", a.status);
    json_decref(a.json);
}

/* ---- invariants --------------------------------------------------------- */

static void check_calls(void)
{
    sqlite3_reset(q_two_calls);
    sqlite3_bind_int64(q_two_calls, 1, first_call);
    if (sqlite3_step(q_two_calls) == SQLITE_ROW)
        FAIL("session %lld has %d live calls", (long long)sqlite3_column_int64(q_two_calls, 0),
             sqlite3_column_int(q_two_calls, 1));
    sqlite3_reset(q_two_calls);
    sqlite3_reset(q_dead_call);
    sqlite3_bind_int64(q_dead_call, 1, first_call);
    if (sqlite3_step(q_dead_call) == SQLITE_ROW)
        FAIL("call %lld is live with a party that ended",
             (long long)sqlite3_column_int64(q_dead_call, 0));
    sqlite3_reset(q_dead_call);
    sqlite3_reset(q_call_names);
    sqlite3_bind_int64(q_call_names, 1, first_call);
    if (sqlite3_step(q_call_names) == SQLITE_ROW)
        FAIL("live call %lld of '%s' (now '%s') and '%s' (now '%s')",
             (long long)sqlite3_column_int64(q_call_names, 0),
             (const char *)sqlite3_column_text(q_call_names, 1),
             (const char *)sqlite3_column_text(q_call_names, 2),
             (const char *)sqlite3_column_text(q_call_names, 3),
             (const char *)sqlite3_column_text(q_call_names, 4));
    sqlite3_reset(q_call_names);
}

static void check_senders(int64_t id)
{
    sqlite3_reset(q_from);
    sqlite3_bind_int64(q_from, 1, id);
    while (sqlite3_step(q_from) == SQLITE_ROW) {
        const char *from = (const char *)sqlite3_column_text(q_from, 1);
        const char *caller = (const char *)sqlite3_column_text(q_from, 2);
        const char *sender = (const char *)sqlite3_column_text(q_from, 3);
        if (!from || !caller || !sender || strcmp(from, caller) || strcmp(sender, caller))
            FAIL("incomingCall seq %lld: from '%s', caller '%s', sender '%s'",
                 (long long)sqlite3_column_int64(q_from, 0), from, caller, sender);
    }
    sqlite3_reset(q_from);
    sqlite3_reset(q_sender);
    sqlite3_bind_int64(q_sender, 1, id);
    while (sqlite3_step(q_sender) == SQLITE_ROW) {
        const char *sender = (const char *)sqlite3_column_text(q_sender, 1);
        const char *recip = (const char *)sqlite3_column_text(q_sender, 2);
        const char *caller = (const char *)sqlite3_column_text(q_sender, 3);
        const char *callee = (const char *)sqlite3_column_text(q_sender, 4);
        int ok = recip && ((!strcmp(sender, caller) && !strcmp(recip, callee)) ||
                           (!strcmp(sender, callee) && !strcmp(recip, caller)));
        if (!ok)
            FAIL("message seq %lld relayed from '%s' to '%s' in a call of '%s' and '%s'",
                 (long long)sqlite3_column_int64(q_sender, 0), sender, recip ? recip : "(null)",
                 caller, callee);
    }
    sqlite3_reset(q_sender);
}

/* Every live session receives all its mailbox holds (but what it
 * acknowledged of it unseen, if transient). */
static void drain(void)
{
    settle_all(1);
    flush_acks();
    for (int i = 0; i < NSESS; i++) {
        sess *s = &S[i];
        if (!s->sid[0]) continue;
        int64_t last_seq = 0;
        for (int round = 0; round < 50 && !ended(s->id, &last_seq) && s->cursor < last_seq; round++)
            poll_once(s, s->cursor, 0, NULL);
        /* Short of last_seq only by acknowledged messages the polls no
         * longer give: transient replies, deleted once acknowledged (the
         * client acknowledged them past its cursor without receiving them). */
        if (!ended(s->id, &last_seq) && s->cursor != last_seq && last_seq > s->acked)
            FAIL("session %d received up to %lld of %lld messages", i, (long long)s->cursor,
                 (long long)last_seq);
    }
}

/* Ends the sessions of the last run; every 200 runs empties the tables. */
static void fresh(void)
{
    /* Ending a session posts its wake slot (proto_end_session): so do
     * these, so that no process cache entry of theirs stays current. */
    for (int i = 0; i < nrun_ids; i++)
        wake_post(wk, run_ids[i]);
    for (int i = 0; i < NSESS; i++)
        forget(&S[i]);
    nrun_ids = 0;
    if (++runs % 200 == 0) {
        sql_exec(
            "DELETE FROM messages; DELETE FROM calls; DELETE FROM batches; DELETE FROM sessions;");
        /* Session ids start again from 1: the process caches of wait.c
         * (keyed by id) must not outlive the rows, nor the wake counts. */
        memset(sid_cache.e, 0, sizeof sid_cache.e);
        memset(mbox_cache.e, 0, sizeof mbox_cache.e);
        sql_exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } else {
        /* Ended now, or (every other run) at time 1: older than their
         * messages, as a close whose clock was read before a send's but
         * that committed after it (see tests/unit/test_prune.c). */
        char sql[300];
        long long now = runs % 2 ? 1 : (long long)lc_now_ms();
        snprintf(
            sql, sizeof sql,
            "UPDATE calls SET ended = %lld, outcome = 'reset' WHERE id > %lld AND ended IS NULL;"
            "UPDATE sessions SET ended = %lld, token_hash = NULL WHERE ended IS NULL;"
            "DELETE FROM batches;",
            now, (long long)first_call, now);
        sql_exec(sql);
    }
    sqlite3_reset(q_max_call);
    if (sqlite3_step(q_max_call) != SQLITE_ROW) FAIL("max(calls.id)");
    first_call = sqlite3_column_int64(q_max_call, 0);
    sqlite3_reset(q_max_call);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in r = {data, size, 0};
    fresh();
    unsigned mode = byte(&r);
    env = (lc_env){.cfg = &cfg, .st = st, .wk = wk, .started_ms = lc_now_ms()};
    env.defer_acks = mode & 1;
    for (int ops = 0; ops < MAX_OPS && more(&r); ops++) {
        unsigned op = byte(&r);
        switch (op % 8) {
        case 0:
            op_send(&r);
            break;
        case 1:
            op_raw(&r);
            break;
        case 2:
            op_poll(&r);
            break;
        case 3:
            op_close(&r);
            break;
        case 4:
            op_maint(&r);
            break;
        case 5: {
            sess *s = &S[byte(&r) % NSESS];
            settle(s, 1);
            forget(s);
            break;
        }
        case 6:
            if (op & 8)
                settle_all(1);
            else
                flush_acks();
            break;
        default:
            op_other(&r);
            break;
        }
        settle_all(0); /* what the op woke answers now, as front_fcgi.c does */
        wait_woken_free(&woken);
        check_calls();
    }
    drain();
    for (int i = 0; i < nrun_ids; i++)
        check_senders(run_ids[i]);
    wait_woken_free(&woken);
    flush_acks(); /* nothing left for the next run */
    return 0;
}
