/* Unit tests of the wait path (wait.c) and the background jobs (jobs.c),
 * in-process on a real store and wake file: a poll is answered or parks;
 * each ordering rule of wait.c (R1-R6) holds, including the orderings that
 * once lost wake-ups -- a post between a poll's snapshot and its parking, a
 * message committed but not yet posted while the mailbox cache says
 * "nothing new", a newer poll superseding an older one; acknowledgements
 * are deferred and written by the acks job; jobs fall due and run once. */
#include "../../fcgi/api.c"
#include "../../fcgi/addr.c"
#include "../../fcgi/config.c"
#include "../../fcgi/http.c"
#include "../../fcgi/jobs.c"
#include "../../fcgi/park.c"
#include "../../fcgi/proto.c"
#include "../../fcgi/token.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/wait.c"
#include "../../fcgi/notify.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/wake.c" /* before store.c: a parameter of it is a static there */
#include "../../fcgi/store.c"
#include "../../fcgi/store_pg.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

#include <sys/socket.h>

static lc_config cfg;
static lc_env env;
static int sockets[2];

/* Serves one request through api_handle; *r is the caller's to free. */
static void request(const char *method, const char *uri, const char *query, const char *body,
                    api_result *r)
{
    char m[64], u[128], q[256];
    snprintf(m, sizeof m, "REQUEST_METHOD=%s", method);
    snprintf(u, sizeof u, "REQUEST_URI=%s", uri);
    snprintf(q, sizeof q, "QUERY_STRING=%s", query);
    char *envp[] = {m, u, q, "CONTENT_TYPE=application/json", NULL};
    http_request req;
    http_parse(&req, envp);
    api_handle(&env, &req, body, strlen(body), r);
    if (r->then_poll) api_then_poll(&env, r);
}

/* Starts a session; its sid into sid, its token digest into hash. */
static int64_t new_session(char sid[TOKEN_LEN + 1], uint8_t hash[32])
{
    api_result r;
    request("POST", "/rtc/session", "", "", &r);
    json_t *j = json_loads(r.resp.body.data ? r.resp.body.data : "", 0, NULL);
    snprintf(sid, TOKEN_LEN + 1, "%s", json_string_value(json_object_get(j, "sid")));
    json_decref(j);
    api_result_free(&r);
    token_hash(sid, hash);
    store_session s = {0};
    store_begin_read(env.st);
    store_session_by_token(env.st, hash, &s);
    store_rollback(env.st);
    return s.id;
}

/* Sends body as sid; returns the status. The woken records go to *woken
 * when it is not NULL (the caller frees them). */
static int send_msg(const char *sid, const char *body, wait_woken *woken)
{
    char q[128];
    api_result r;
    snprintf(q, sizeof q, "sid=%s", sid);
    request("POST", "/rtc/send", q, body, &r);
    int status = r.resp.status;
    if (woken) {
        *woken = r.woken;
        r.woken = (wait_woken){0};
    }
    api_result_free(&r);
    return status;
}

/* Starts a poll of hash after= after, waiting up to timeout s. */
static int poll_start(const uint8_t hash[32], int64_t after, int64_t timeout, http_response *resp,
                      wait_poll *p, wait_woken *woken)
{
    wait_ask ask = {.hash = hash, .after = after, .timeout = timeout};
    *resp = (http_response){0};
    int r = wait_poll_start(&env, &ask, resp, p, woken);
    p->pe.fd = dup(sockets[0]);
    return r;
}

/* The number of messages in a poll answer, and its seq. */
static int answer_count(const http_response *resp, int64_t *seq)
{
    json_t *j = json_loads(resp->body.data ? resp->body.data : "", 0, NULL);
    int n = j ? (int)json_array_size(json_object_get(j, "messages")) : -1;
    if (seq) *seq = j ? json_integer_value(json_object_get(j, "seq")) : -1;
    json_decref(j);
    return resp->status == 200 ? n : -1;
}

static int64_t acked_of(int64_t id)
{
    store_session s = {0};
    store_begin_read(env.st);
    store_session_get(env.st, id, &s);
    store_rollback(env.st);
    return s.acked;
}

/* Applies a ping from session id into its own mailbox as a send does (its
 * slot marked before the end, R7) and commits it without posting -- the
 * moment between a send's commit and its post (R1), or a writer killed
 * there -- or, with rollback, rolls it back as a refused send does (and
 * takes the marks back). Returns the slot's marks just before the end. */
static uint32_t write_unposted(int64_t id, int rollback)
{
    proto_ctx c = {.st = env.st, .cfg = &cfg, .now = lc_now_ms()};
    store_begin(env.st);
    store_session_get(env.st, id, &c.self);
    json_t *ping = json_pack("{ss}", "id", "ping");
    proto_apply(&c, ping);
    json_decref(ping);
    wait_mark_slots(&env, &c);
    uint32_t marks = wake_slot_marks(env.wk, wake_slot(id));
    if (rollback) {
        store_rollback(env.st);
        wait_unmark_all(&env, &c);
    } else {
        store_commit(env.st);
    }
    proto_ctx_free(&c);
    return marks;
}


static void test_answer_or_park(park *pk)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    http_response resp;
    wait_poll p;
    wait_woken woken = {0};
    new_session(sid, hash);
    int r = poll_start(hash, 0, 0, &resp, &p, &woken);
    CHECK("poll: timeout=0 with nothing new answers at once, empty",
          r == WAIT_ANSWER && answer_count(&resp, NULL) == 0);
    close(p.pe.fd);
    http_response_free(&resp);
    r = poll_start(hash, 0, 30, &resp, &p, &woken);
    CHECK("poll: nothing new parks", r == WAIT_PARK && resp.status == 0);
    /* R2/R3: a send commits and posts between the poll's snapshot and its
     * parking: park_add sees the slot moved, and the poll is answered. */
    send_msg(sid, "{\"id\":\"ping\"}", NULL);
    r = wait_park(&env, pk, &p, &resp);
    CHECK("R3: a post between snapshot and parking answers the poll, not parks it",
          r == WAIT_ANSWER && answer_count(&resp, NULL) == 1);
    close(p.pe.fd);
    http_response_free(&resp);
    r = poll_start(hash, 5, 0, &resp, &p, &woken);
    CHECK("poll: after= beyond the last message is a 400", r == WAIT_ANSWER && resp.status == 400);
    close(p.pe.fd);
    http_response_free(&resp);
    wait_woken_free(&woken);
}

static void test_woken_by_send(park *pk)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    http_response resp, resp2 = {0};
    wait_poll p;
    wait_woken woken = {0};
    new_session(sid, hash);
    poll_start(hash, 0, 30, &resp, &p, &woken);
    CHECK("woken: the poll parks", wait_park(&env, pk, &p, &resp) == WAIT_PARK);
    send_msg(sid, "[{\"id\":\"ping\"},{\"id\":\"ping\"}]", &woken);
    park_entry *taken[4];
    int n = park_take(pk, p.pe.slot, taken, 4);
    CHECK("R1: the send's post moved the slot: the poll is taken out of the park",
          n == 1 && taken[0] == &p.pe);
    CHECK("R6: the send's records answer the poll without a read",
          answer_from_woken(&woken, &p, &resp) && answer_count(&resp, NULL) == 2);
    CHECK("R6: the same answer as a fresh read",
          wait_resume(&env, &p, NULL, &resp2) == WAIT_ANSWER &&
              strcmp(resp.body.data, resp2.body.data) == 0);
    http_response_free(&resp);
    http_response_free(&resp2);
    /* Records of another cursor are not the answer: an answer from memory
     * only when they hold exactly what the poll waits for. */
    wait_poll later = p;
    later.after = 1;
    resp = (http_response){0};
    CHECK("R6: records that do not start at after+1 are not used",
          !answer_from_woken(&woken, &later, &resp) &&
              wait_resume(&env, &later, &woken, &resp) == WAIT_ANSWER &&
              answer_count(&resp, NULL) == 1);
    http_response_free(&resp);
    close(p.pe.fd);
    wait_woken_free(&woken);
}

static void test_stale_cache(park *pk)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    http_response resp;
    wait_poll p;
    wait_woken woken = {0};
    int64_t id = new_session(sid, hash);
    /* A first poll fills the mailbox cache: nothing after 0, at slot value v. */
    poll_start(hash, 0, 0, &resp, &p, &woken);
    close(p.pe.fd);
    http_response_free(&resp);
    store_mailbox mb;
    uint32_t slot = wake_slot(id), v = wake_slot_value(env.wk, slot);
    CHECK("R5: the cache holds the mailbox at the slot value read", mbox_get(id, v, &mb) && mb.seq == 0);
    /* A poll parks from the cache; then a message is committed, its post
     * not made yet: the parked poll waits on v ... */
    int r = poll_start(hash, 0, 30, &resp, &p, &woken);
    CHECK("R5: a poll with nothing new parks from the cache", r == WAIT_PARK && p.pe.seen == v);
    CHECK("R5: ... and parks", wait_park(&env, pk, &p, &resp) == WAIT_PARK);
    write_unposted(id, 0);
    /* ... and the post that follows the commit wakes it with the message. */
    CHECK("R7: the commit's slot is marked until its post", wake_slot_marks(env.wk, slot) == 1);
    woken.n = 0;
    proto_wake w = {.session_id = id, .marked = 1};
    post(&env, &w, &woken);
    wait_woken_free(&woken);
    park_entry *taken[2];
    CHECK("R1+R5: the post after the commit wakes it",
          park_take(pk, p.pe.slot, taken, 2) == 1 &&
              wait_resume(&env, &p, NULL, &resp) == WAIT_ANSWER && answer_count(&resp, NULL) == 1);
    CHECK("R7: the post takes the mark back", wake_slot_marks(env.wk, slot) == 0);
    close(p.pe.fd);
    http_response_free(&resp);
    wait_woken_free(&woken);
}

/* The loss kill -9 under load once found (test_killload): a writer killed
 * between its commit and its post. No post ever comes; the cache entry
 * still matches the slot value; a poll must read the database anyway. */
static void test_writer_killed(void)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    http_response resp;
    wait_poll p;
    wait_woken woken = {0};
    int64_t id = new_session(sid, hash), seq = -1;
    poll_start(hash, 0, 0, &resp, &p, &woken); /* fills the cache at v */
    close(p.pe.fd);
    http_response_free(&resp);
    store_mailbox mb;
    uint32_t slot = wake_slot(id), v = wake_slot_value(env.wk, slot);
    write_unposted(id, 0); /* ... and the writer dies: no post, no unmark */
    CHECK("R7: with the writer dead the slot and the cache entry are unchanged",
          wake_slot_value(env.wk, slot) == v && mbox_get(id, v, &mb) && mb.seq == 0);
    int r = poll_start(hash, 0, 30, &resp, &p, &woken);
    CHECK("R7: a poll after the writer died reads the message from the database",
          r == WAIT_ANSWER && answer_count(&resp, &seq) == 1 && seq == 1);
    close(p.pe.fd);
    http_response_free(&resp);
    /* Acknowledged, the next poll waits; the slot stays uncached but right. */
    r = poll_start(hash, 1, 0, &resp, &p, &woken);
    CHECK("R7: the next poll is answered empty at its cursor",
          r == WAIT_ANSWER && answer_count(&resp, &seq) == 0 && seq == 1);
    close(p.pe.fd);
    http_response_free(&resp);
    write_unposted(id, 0); /* a second writer dies on the same slot */
    r = poll_start(hash, 1, 30, &resp, &p, &woken);
    CHECK("R7: a second death on the slot: its message is read too",
          r == WAIT_ANSWER && answer_count(&resp, &seq) == 1 && seq == 2);
    close(p.pe.fd);
    http_response_free(&resp);
    /* A send that is rolled back takes its marks back. */
    uint32_t marks = write_unposted(id, 1);
    CHECK("R7: a rolled-back writer takes its mark back",
          marks == 3 && wake_slot_marks(env.wk, slot) == 2);
    /* The two dead writers' marks, taken back so that the other tests
     * find this slot as a new wake file has it. */
    wake_unmark(env.wk, id);
    wake_unmark(env.wk, id);
    wait_woken_free(&woken);
}

static void test_supersede(park *pk)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    http_response resp, resp2;
    wait_poll older, newer;
    wait_woken woken = {0};
    new_session(sid, hash);
    poll_start(hash, 0, 30, &resp, &older, &woken);
    wait_park(&env, pk, &older, &resp);
    int r = poll_start(hash, 0, 30, &resp2, &newer, &woken);
    CHECK("R4: a newer poll of the session parks too", r == WAIT_PARK);
    CHECK("R4: it posted its session (the older must yield)",
          woken.n == 1 && woken.w[0].session_id == older.session_id);
    CHECK("R4: its own post does not wake it",
          newer.pe.seen == wake_slot_value(env.wk, newer.pe.slot) && newer.poll_gen > older.poll_gen);
    park_entry *taken[2];
    CHECK("R4: the older poll is woken",
          park_take(pk, older.pe.slot, taken, 2) == 1 && taken[0] == &older.pe);
    int64_t seq = -1;
    CHECK("R4: the older poll answers empty at its cursor",
          wait_resume(&env, &older, &woken, &resp) == WAIT_ANSWER &&
              answer_count(&resp, &seq) == 0 && seq == 0);
    CHECK("R4: the newer one still waits", wait_park(&env, pk, &newer, &resp2) == WAIT_PARK);
    send_msg(sid, "{\"id\":\"ping\"}", NULL);
    http_response_free(&resp2);
    resp2 = (http_response){0};
    CHECK("R4: the newer one gets the next message",
          park_take(pk, newer.pe.slot, taken, 2) == 1 &&
              wait_resume(&env, &newer, NULL, &resp2) == WAIT_ANSWER &&
              answer_count(&resp2, NULL) == 1);
    close(older.pe.fd);
    close(newer.pe.fd);
    http_response_free(&resp);
    http_response_free(&resp2);
    wait_woken_free(&woken);
}

static void test_ended_and_cache_miss(park *pk)
{
    char sid[TOKEN_LEN + 1], q[128];
    uint8_t hash[32];
    http_response resp;
    wait_poll p;
    wait_woken woken = {0};
    int64_t id = new_session(sid, hash);
    /* A stale session-id cache entry (another session's id): the poll
     * reads the slot of the right session in a fresh snapshot. */
    sid_put(hash, id + 1000);
    send_msg(sid, "{\"id\":\"ping\"}", NULL);
    int r = poll_start(hash, 0, 30, &resp, &p, &woken);
    CHECK("sid cache: a wrong id is corrected and the answer is right",
          r == WAIT_ANSWER && answer_count(&resp, NULL) == 1 && sid_get(hash) == id);
    close(p.pe.fd);
    http_response_free(&resp);
    poll_start(hash, 1, 30, &resp, &p, &woken);
    wait_park(&env, pk, &p, &resp);
    api_result r2;
    snprintf(q, sizeof q, "sid=%s", sid);
    request("POST", "/rtc/close", q, "", &r2);
    park_entry *taken[2];
    CHECK("ended: a close wakes the held poll, which answers 404",
          park_take(pk, p.pe.slot, taken, 2) == 1 &&
              wait_resume(&env, &p, &r2.woken, &resp) == WAIT_ANSWER && resp.status == 404);
    api_result_free(&r2);
    close(p.pe.fd);
    http_response_free(&resp);
    wait_woken_free(&woken);
}

static void test_acks_and_jobs(void)
{
    char sid[TOKEN_LEN + 1];
    uint8_t hash[32];
    http_response resp;
    wait_poll p;
    wait_woken woken = {0};
    int64_t id = new_session(sid, hash);
    jobs *jb = jobs_new(NULL);
    int64_t first = jobs_next(jb, &env);
    CHECK("jobs: maintenance is due by the database (a session's expiry)",
          first > lc_mono_ms() && first != INT64_MAX);
    send_msg(sid, "{\"id\":\"ping\"}", NULL);
    wait_write_acks(&env);
    poll_start(hash, 1, 0, &resp, &p, &woken);
    close(p.pe.fd);
    http_response_free(&resp);
    int64_t since = wait_acks_since();
    CHECK("acks: a poll's acknowledgement is deferred (FastCGI)",
          since != INT64_MAX && acked_of(id) == 0);
    CHECK("jobs: the acks job is due 50 ms after the first deferred one",
          jobs_next(jb, &env) == since + ACKS_DELAY_MS);
    CHECK("jobs: nothing runs before it is due", jobs_run_due(jb, &env, &woken) == 0);
    struct timespec ts = {0, 60 * 1000000};
    nanosleep(&ts, NULL);
    CHECK("jobs: the due acks job runs and writes the acknowledgement",
          jobs_run_due(jb, &env, &woken) == 1 && acked_of(id) == 1 &&
              wait_acks_since() == INT64_MAX);
    /* CGI: each poll writes its own. */
    env.defer_acks = 0;
    send_msg(sid, "{\"id\":\"ping\"}", NULL);
    poll_start(hash, 2, 0, &resp, &p, &woken);
    close(p.pe.fd);
    http_response_free(&resp);
    CHECK("acks: without deferral (CGI) the poll writes its acknowledgement",
          acked_of(id) == 2 && wait_acks_since() == INT64_MAX);
    env.defer_acks = 1;
    /* Maintenance: due now (a request noted it), runs once, then not again. */
    jobs_note(jb, lc_now_ms() - 1);
    CHECK("jobs: maintenance noted as due runs", jobs_run_due(jb, &env, &woken) == 1);
    CHECK("jobs: and is next due later", jobs_next(jb, &env) > lc_mono_ms());
    jobs_free(jb);
    wait_woken_free(&woken);
}

/* notify.c's reading of a notification: another machine's slots are
 * posted, each once, out-of-range ones skipped; this machine's own (its
 * wake file's origin) and malformed payloads post nothing. On SQLite
 * notify_slots sends nothing and succeeds. */
static void test_notify_payload(void)
{
    nt.wk = env.wk;
    char own[64], other[64];
    uint64_t origin = wake_origin(env.wk);
    CHECK("notify: the wake file has an origin", origin != 0);
    snprintf(own, sizeof own, "%016" PRIx64 " 5 6", origin);
    snprintf(other, sizeof other, "%016" PRIx64 " 5 6 99999 x", origin ^ 1);
    uint32_t v5 = wake_slot_value(env.wk, 5), v6 = wake_slot_value(env.wk, 6);
    uint32_t v7 = wake_slot_value(env.wk, 7);
    int woke = 0;
    on_payload(&woke, own);
    CHECK("notify: this machine's own notification posts nothing",
          wake_slot_value(env.wk, 5) == v5 && wake_slot_value(env.wk, 6) == v6 && !woke);
    on_payload(&woke, other);
    CHECK("notify: another machine's slots are posted once each, the rest skipped",
          wake_slot_value(env.wk, 5) == v5 + 1 && wake_slot_value(env.wk, 6) == v6 + 1 &&
              wake_slot_value(env.wk, 7) == v7 && woke);
    woke = 0;
    on_payload(&woke, "zz");
    on_payload(&woke, "");
    on_payload(&woke, "0123456789abcdefX 5");
    CHECK("notify: malformed payloads post nothing",
          wake_slot_value(env.wk, 5) == v5 + 1 && !woke);
    uint32_t slots[2] = {5, 5};
    CHECK("notify: on SQLite notify_slots sends nothing and succeeds",
          notify_slots(&env, slots, 2) == LC_OK && wake_slot_value(env.wk, 5) == v5 + 1);
}

int main(void)
{
    lc_json_init();
    lc_log_set_level(LC_LOG_ERROR);
    char dir[] = "/tmp/longcall-wait-XXXXXX", path[128], wpath[160];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    snprintf(wpath, sizeof wpath, "%s/t.db.wake", dir);
    cfg = (lc_config){.poll_timeout = 25, .poll_max = 60, .session_expiry = 60,
                      .ring_timeout = 30, .history_days = 7, .mailbox_quota = 100, .mailbox_share = 25,
                      .max_batch = 64, .max_body = 65536, .ice_servers = "[]",
                      .list_max = 100, .list_rate = 30, .ice_rate = 10,
                      .addr_sessions_per_min = 100000, .addr_sessions = 100000, .addr_held = 1000,
                      .call_rate = 1000000, .call_pair_rate = 1000000, .max_blocks = 100};
    env = (lc_env){.cfg = &cfg, .defer_acks = 1, .started_ms = lc_now_ms()};
    CHECK("store opens", store_open(path, 1000, &env.st) == LC_OK);
    CHECK("wake file opens", wake_open(wpath, &env.wk) == 0);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sockets);
    park *pk = park_new(env.wk, 16, 16);
    test_answer_or_park(pk);
    test_woken_by_send(pk);
    test_stale_cache(pk);
    test_writer_killed();
    test_supersede(pk);
    test_ended_and_cache_miss(pk);
    test_acks_and_jobs();
    test_notify_payload();
    CHECK("nothing is left in the park", park_count(pk) == 0);
    park_free(pk);
    store_close(env.st);
    wake_close(env.wk);
    unlink(path);
    unlink(wpath);
    char side[200];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    rmdir(dir);
    return unit_done();
}
