/* Unit test of history pruning (store.c) -- sessions that never registered,
 * the bound on batch ids and the per-address counts too -- and of pruning when a session's end is older by
 * the clock than a message in its mailbox: found by tests/fuzz/fuzz_proto,
 * whose sessions of the previous run were ended with an older time than
 * their messages. Pruning the session first let the next session take its
 * id (the highest) and inherit its mailbox. */
#include "../../fcgi/addr.c" /* proto logs refusals through addr and wake */
#include "../../fcgi/proto.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/token.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/store.c"
#include "../../fcgi/store_pg.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

#include <unistd.h>

static int64_t count(store *st, const char *sql)
{
    sqlite3_stmt *q;
    int64_t n = -1;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* Sessions that never registered go an hour after they end (api.c asks
 * for that cutoff), with their mailboxes; registered ones stay as history;
 * the newest session is never pruned (its id would be reused). */
static void test_unregistered(store *st)
{
    uint8_t h[32] = {42};
    int64_t a, b, c, due = 0;
    store_mailbox mb;
    int deleted = -1;
    store_begin(st);
    store_session_create_addr(st, h, 20000, "192.0.2.1", &a);
    h[0]++;
    store_session_create_addr(st, h, 20000, "192.0.2.1", &b);
    h[0]++;
    store_session_create_addr(st, h, 20000, "192.0.2.1", &c);
    store_session_set_name(st, b, "bob");
    store_msg m = {.session_id = a, .type = "pong", .body = "{\"id\":\"pong\"}", .created = 21000};
    store_enqueue(st, &m, 100, 100, &mb);
    store_session_end(st, a, 22000, "closed");
    store_session_end(st, b, 22000, "closed");
    store_session_end(st, c, 22000, "closed");
    store_commit(st);
    store_begin_read(st);
    CHECK("unregistered: the earliest end of one is due", store_next_unregistered(st, &due) == LC_OK && due == 22000);
    store_rollback(st);
    store_begin(st);
    int rc = store_prune_unregistered(st, 22000, 100, &deleted);
    store_commit(st);
    CHECK("unregistered: none ended before the cutoff, none pruned", rc == LC_OK && deleted == 0);
    store_begin(st);
    rc = store_prune_unregistered(st, 30000, 100, &deleted);
    store_commit(st);
    char q[160];
    snprintf(q, sizeof q, "SELECT count(*) FROM messages WHERE session_id = %lld", (long long)a);
    CHECK("unregistered: pruned with its mailbox; the registered one and the newest stay",
          rc == LC_OK && deleted == 1 && count(st, q) == 0 &&
              count(st, "SELECT count(*) FROM sessions WHERE name = 'bob'") == 1 &&
              count(st, "SELECT count(*) FROM sessions WHERE addr = '192.0.2.1'") == 2);
}

/* Batch ids: at least the newest STORE_BATCHES_KEPT of a session are
 * kept, and never more than STORE_BATCHES_KEPT + STORE_BATCHES_SLACK
 * (SQLite trims that many at a time; PostgreSQL keeps exactly the newest). */
static void test_batches(store *st)
{
    uint8_t h[32] = {77};
    int64_t id;
    int seen = -1, all_new = 1, most = 0, fewest_after_kept = 1 << 30;
    char b[32], q[160];
    store_begin(st);
    store_session_create(st, h, 40000, &id);
    store_commit(st);
    snprintf(q, sizeof q, "SELECT count(*) FROM batches WHERE session_id = %lld", (long long)id);
    for (int i = 0; i < 300; i++) {
        /* A batch whose transaction rolls back (a refused send) counts for
         * nothing, trim included. */
        snprintf(b, sizeof b, "r%d", i);
        store_begin(st);
        store_batch_mark(st, id, b, 40000 + i, &seen);
        store_rollback(st);
        snprintf(b, sizeof b, "b%d", i);
        store_begin(st);
        store_batch_mark(st, id, b, 40000 + i, &seen);
        store_commit(st);
        all_new &= seen == 0;
        int n = count(st, q);
        if (n > most) most = n;
        if (i >= STORE_BATCHES_KEPT - 1 && n < fewest_after_kept) fewest_after_kept = n;
    }
    char name[160];
    snprintf(name, sizeof name,
             "batches: 300 new ids (and 300 rolled back), at most %d kept at any time (%d), "
             "never fewer than %d (%d)",
             STORE_BATCHES_KEPT + STORE_BATCHES_SLACK, most, STORE_BATCHES_KEPT, fewest_after_kept);
    CHECK(name, all_new && most <= STORE_BATCHES_KEPT + STORE_BATCHES_SLACK &&
                    fewest_after_kept >= STORE_BATCHES_KEPT);
    int newest_known = 1;
    store_begin(st);
    for (int i = 299; i > 299 - STORE_BATCHES_KEPT; i--) {
        snprintf(b, sizeof b, "b%d", i);
        int known = 0;
        store_batch_known(st, id, b, &known);
        newest_known &= known;
    }
    store_batch_mark(st, id, "b299", 50000, &seen);
    int retried = seen;
    store_batch_mark(st, id, "b0", 50002, &seen);
    store_commit(st);
    CHECK("batches: the newest 64 are all known (a retry is seen), the oldest is not",
          newest_known && retried == 1 && seen == 0);
}

/* Sessions per client address: live ones, and those created since. */
static void test_addr_counts(store *st)
{
    uint8_t h[32] = {99};
    int64_t id, live = -1, recent = -1, oldest = -1;
    store_begin(st);
    for (int i = 0; i < 5; i++) {
        h[1] = (uint8_t)i;
        store_session_create_addr(st, h, 60000 + i * 1000, "198.51.100.7", &id);
    }
    store_session_end(st, id, 65000, "closed");
    int rc = store_addr_sessions(st, "198.51.100.7", 62000, &live, &recent, &oldest);
    store_commit(st);
    CHECK("address: 4 live of 5, 3 created since the cutoff, the oldest of those at its time",
          rc == LC_OK && live == 4 && recent == 3 && oldest == 62000);
    store_begin_read(st);
    rc = store_addr_sessions(st, "198.51.100.8", 62000, &live, &recent, &oldest);
    store_rollback(st);
    CHECK("address: another address has none", rc == LC_OK && live == 0 && recent == 0);
}

int main(void)
{
    lc_json_init();
    lc_log_set_level(LC_LOG_ERROR);
    char dir[] = "/tmp/longcall-prune-XXXXXX", path[128];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    store *st = NULL;
    CHECK("store opens", store_open(path, 1000, &st) == LC_OK);
    uint8_t h[32] = {1, 2, 3};
    int64_t id = 0, id2 = 0;
    store_mailbox mb;
    store_begin(st);
    store_session_create(st, h, 1000, &id);
    /* A message queued at 5000 (the send read its clock before it waited
     * for the write lock) to a session a close then ended at 4000. */
    store_msg m = {.session_id = id, .type = "pong", .body = "{\"id\":\"pong\"}", .created = 5000};
    store_enqueue(st, &m, 100, 100, &mb);
    store_session_end(st, id, 4000, "closed");
    store_commit(st);
    int deleted = 0;
    store_begin(st);
    int rc = store_prune(st, 4500, 100, &deleted); /* after the end, before the message */
    store_commit(st);
    h[0] = 9;
    store_begin(st);
    store_session_create(st, h, 6000, &id2);
    store_commit(st);
    store_rows rows = {.n = -1};
    int64_t last = -1;
    store_begin_read(st);
    int fetched = store_fetch(st, id2, 0, 100, 1 << 20, &rows, &last);
    store_rollback(st);
    CHECK("pruning keeps a session that still has a message", rc == LC_OK && id2 != id);
    CHECK("a new session's mailbox is empty", fetched == LC_OK && rows.n == 0 && last == 0);
    store_begin(st);
    rc = store_prune(st, 10000, 100, &deleted); /* both are old now */
    store_commit(st);
    store_session s;
    store_begin_read(st);
    int gone = store_session_get(st, id, &s) == LC_NOTFOUND;
    store_rollback(st);
    CHECK("once its messages are pruned, the session is", rc == LC_OK && gone);
    test_unregistered(st);
    test_batches(st);
    test_addr_counts(st);
    store_rows_free(&rows);
    store_close(st);
    char p[160];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
    return unit_done();
}
