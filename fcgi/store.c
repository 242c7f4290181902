/* store: the store interface of store.h on SQLite, and the dispatch to
 * PostgreSQL (store_pg.c) when LONGCALL_DB names one: a store is then only
 * its pg pointer, and each function's first line hands the call over. The
 * SQLite SQL is in this file, as prepared statements cached per connection
 * (sqlite3_prepare_v3 PERSISTENT); nothing outside sees sqlite3_stmt. Each
 * function logs its own failure once. No JSON here: bodies are text. */

#include "store.h"

#include "store_pg.h"

#include "walvfs.h"

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Generated from db/NNN-*.sql by the Makefile: migration i sets version i+1. */
extern const char *const lc_migrations[];
extern const int lc_migration_count;

enum stmt_id {
    S_BEGIN_W,
    S_BEGIN_R,
    S_COMMIT,
    S_ROLLBACK,
    S_SESS_NEW,
    S_SESS_BY_TOKEN,
    S_SESS_GET,
    S_SESS_BY_NAME,
    S_SESS_SET_NAME,
    S_NAME_RESERVED,
    S_NAME_UNRESERVE,
    S_SESS_ACK_MSGS,
    S_SESS_ACK_DROP,
    S_SESS_POLL,
    S_SESS_POLL_KEEP,
    S_SESS_END,
    S_SESS_END_BATCHES,
    S_SESS_END_BLOCKS,
    S_SESS_END_DROP,
    S_NAMES,
    S_NAMES_RANGE,
    S_LIST_ALLOW,
    S_SESS_IDLE,
    S_ENQ_SET,
    S_ENQ_INSERT,
    S_ENQ_SHARE,
    S_FETCH,
    S_CALL_LIVE,
    S_CALL_NEW,
    S_CALL_ANSWER,
    S_CALL_END,
    S_CALL_RINGING,
    S_CALL_GET,
    S_CALL_ALLOW,
    S_ICE_ALLOW,
    S_LIST_TAT,
    S_CALL_TAT,
    S_ICE_TAT,
    S_CALL_PAIR,
    S_CALL_COOLDOWN,
    S_BLOCK_ADD,
    S_BLOCK_TRIM,
    S_BLOCKED,
    S_BATCH_MARK,
    S_BATCH_TRIM,
    S_BATCH_COUNT,
    S_BATCH_COUNTED,
    S_BATCH_KNOWN,
    S_ADDR_COUNT,
    S_PRUNE_UNREG_MSGS,
    S_PRUNE_UNREG_SESS,
    S_DUE_UNREG,
    S_PRUNE_MSGS,
    S_PRUNE_CALLS,
    S_PRUNE_SESS,
    S_DUE_IDLE,
    S_DUE_RING,
    S_DUE_OLD,
    S_STATS,
    S_QUICK_CHECK,
    S_COUNT
};

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN_W] = "BEGIN IMMEDIATE",
    [S_BEGIN_R] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    /* sessions.next_seq is store_session.last_seq: the seq of the last
     * message queued (the column keeps its name from schema 1). */
    [S_SESS_NEW] = "INSERT INTO sessions(token_hash, created, last_seen, addr) VALUES (?1, ?2, ?2, ?3)",
    [S_SESS_BY_TOKEN] = "SELECT id, coalesce(name, ''), next_seq, acked, poll_gen,"
                        " ended IS NOT NULL, last_seen FROM sessions WHERE token_hash = ?1",
    [S_SESS_GET] = "SELECT id, coalesce(name, ''), next_seq, acked, poll_gen, ended IS NOT NULL,"
                   " last_seen FROM sessions WHERE id = ?1",
    [S_SESS_BY_NAME] = "SELECT id FROM sessions WHERE name = ?1 AND ended IS NULL",
    [S_SESS_SET_NAME] = "UPDATE sessions SET name = ?2, reclaim_hash = ?3 WHERE id = ?1",
    /* Reservations (db/004): the partial index sessions_reserved. */
    [S_NAME_RESERVED] = "SELECT reclaim_hash, ended FROM sessions WHERE name = ?1"
                        " AND reclaim_hash IS NOT NULL AND ended IS NOT NULL AND ended >= ?2"
                        " AND end_reason = 'expired' ORDER BY ended DESC LIMIT 1",
    [S_NAME_UNRESERVE] = "UPDATE sessions SET reclaim_hash = NULL WHERE name = ?1"
                         " AND reclaim_hash IS NOT NULL AND ended IS NOT NULL",
    [S_SESS_ACK_MSGS] = "UPDATE messages SET delivered = ?4"
                        " WHERE session_id = ?1 AND seq > ?2 AND seq <= ?3",
    /* Transient replies (store_msg.transient) leave no history once
     * acknowledged: deleted before the others are marked delivered. */
    [S_SESS_ACK_DROP] = "DELETE FROM messages WHERE session_id = ?1 AND seq > ?2 AND seq <= ?3"
                        " AND transient IS NOT NULL",
    /* No RETURNING here or below: SQLite collects returned rows in a
     * temporary b-tree, opened and closed per statement; the values are
     * read first instead (one write transaction sees them unchanged). */
    [S_SESS_POLL] = "UPDATE sessions SET acked = ?2, last_seen = ?3, poll_gen = ?4 WHERE id = ?1",
    /* last_seen left as it is: the index by last_seen is not touched. */
    [S_SESS_POLL_KEEP] = "UPDATE sessions SET acked = ?2, poll_gen = ?3 WHERE id = ?1",
    /* Only an expiry keeps the reclaim hash (the name's reservation). */
    [S_SESS_END] = "UPDATE sessions SET ended = ?2, end_reason = ?3, token_hash = NULL,"
                   " reclaim_hash = CASE WHEN ?3 = 'expired' THEN reclaim_hash END"
                   " WHERE id = ?1 AND ended IS NULL",
    [S_SESS_END_BATCHES] = "DELETE FROM batches WHERE session_id = ?1",
    [S_SESS_END_BLOCKS] = "DELETE FROM blocks WHERE session_id = ?1",
    [S_SESS_END_DROP] = "DELETE FROM messages WHERE session_id = ?1 AND seq > ?2"
                        " AND transient IS NOT NULL",
    /* A range of the partial index sessions_live_name (the WHERE terms
     * are its own), read in order and stopped by the LIMIT: a page costs
     * its own rows, not the number of names. */
    [S_NAMES] = "SELECT name FROM sessions WHERE ended IS NULL AND name IS NOT NULL"
                " AND name >= ?1 ORDER BY name LIMIT ?2",
    [S_NAMES_RANGE] = "SELECT name FROM sessions WHERE ended IS NULL AND name IS NOT NULL"
                      " AND name >= ?1 AND name < ?2 ORDER BY name LIMIT ?3",
    /* GCRA (store_rate_allow): list_tat, the session's "theoretical
     * arrival time", moves one interval (?3) on per allowed list; a list is
     * allowed while it is at most the burst tolerance (?4) ahead of now
     * (?2). S_CALL_ALLOW and S_ICE_ALLOW: the same on their own clocks. */
    [S_LIST_ALLOW] = "UPDATE sessions SET list_tat = max(coalesce(list_tat, 0), ?2) + ?3"
                     " WHERE id = ?1 AND ended IS NULL"
                     " AND max(coalesce(list_tat, 0), ?2) - ?2 <= ?4",
    [S_SESS_IDLE] = "SELECT id FROM sessions WHERE ended IS NULL AND last_seen < ?1"
                    " ORDER BY last_seen LIMIT ?2",
    [S_ENQ_SET] = "UPDATE sessions SET next_seq = ?2 WHERE id = ?1",
    [S_ENQ_INSERT] = "INSERT INTO messages(session_id, seq, sender, recipient, type, body,"
                     " call_id, created, transient, sender_sid)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    /* A sender's unacknowledged messages in a mailbox: a range of
     * UNIQUE(session_id, seq), at most last_seq - acked rows (the quota). */
    [S_ENQ_SHARE] = "SELECT count(*) FROM messages WHERE session_id = ?1 AND seq > ?2"
                    " AND sender_sid = ?3",
    [S_FETCH] = "SELECT seq, body FROM messages WHERE session_id = ?1 AND seq > ?2"
                " ORDER BY seq LIMIT ?3",
    /* The latest live call of a session, as two index searches and a
     * rowid lookup: written with OR and ORDER BY it costs a temporary
     * b-tree per lookup, that is per relayed ICE candidate. The searches
     * use the partial indexes of live calls (db/009), not the session's
     * whole call history. */
    [S_CALL_LIVE] =
        "SELECT id, caller_sid, callee_sid, caller, callee, answered IS NOT NULL"
        " FROM calls WHERE id = max("
        "(SELECT coalesce(max(id), 0) FROM calls WHERE caller_sid = ?1 AND ended IS NULL),"
        " (SELECT coalesce(max(id), 0) FROM calls WHERE callee_sid = ?1 AND ended IS NULL))",
    [S_CALL_NEW] = "INSERT INTO calls(caller_sid, callee_sid, caller, callee, placed)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_CALL_ANSWER] = "UPDATE calls SET answered = ?2 WHERE id = ?1",
    [S_CALL_END] = "UPDATE calls SET ended = ?2, outcome = ?3 WHERE id = ?1 AND ended IS NULL",
    [S_CALL_RINGING] = "SELECT id FROM calls WHERE ended IS NULL AND answered IS NULL"
                       " AND placed < ?1 ORDER BY placed LIMIT ?2",
    [S_CALL_GET] = "SELECT id, caller_sid, callee_sid, caller, callee, answered IS NOT NULL,"
                   " ended IS NOT NULL FROM calls WHERE id = ?1",
    [S_CALL_ALLOW] = "UPDATE sessions SET call_tat = max(coalesce(call_tat, 0), ?2) + ?3"
                     " WHERE id = ?1 AND ended IS NULL"
                     " AND max(coalesce(call_tat, 0), ?2) - ?2 <= ?4",
    [S_ICE_ALLOW] = "UPDATE sessions SET ice_tat = max(coalesce(ice_tat, 0), ?2) + ?3"
                    " WHERE id = ?1 AND ended IS NULL"
                    " AND max(coalesce(ice_tat, 0), ?2) - ?2 <= ?4",
    [S_LIST_TAT] = "SELECT coalesce(list_tat, 0) FROM sessions WHERE id = ?1",
    [S_CALL_TAT] = "SELECT coalesce(call_tat, 0) FROM sessions WHERE id = ?1",
    [S_ICE_TAT] = "SELECT coalesce(ice_tat, 0) FROM sessions WHERE id = ?1",
    /* A range of calls_pair (db/005). */
    [S_CALL_PAIR] = "SELECT count(*), min(placed) FROM calls"
                    " WHERE caller_sid = ?1 AND callee_sid = ?2 AND placed >= ?3",
    /* A range of calls_unanswered (db/005: the callee's unanswered rings
     * by end), each caller session looked up by its primary key. */
    [S_CALL_COOLDOWN] =
        "SELECT max(c.ended) FROM calls c JOIN sessions s ON s.id = c.caller_sid"
        " WHERE c.callee_sid = ?2 AND c.answered IS NULL AND c.ended IS NOT NULL"
        " AND c.ended >= ?3 AND (c.caller_sid = ?1"
        " OR s.addr = (SELECT addr FROM sessions WHERE id = ?1))",
    [S_BLOCK_ADD] = "INSERT INTO blocks(session_id, caller_sid, caller, created)"
                    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (session_id, caller_sid)"
                    " DO UPDATE SET caller = excluded.caller, created = excluded.created",
    /* The newest ?2 blocks of a session stay. */
    [S_BLOCK_TRIM] = "DELETE FROM blocks WHERE session_id = ?1 AND caller_sid NOT IN"
                     " (SELECT caller_sid FROM blocks WHERE session_id = ?1"
                     " ORDER BY created DESC, caller_sid DESC LIMIT ?2)",
    /* At most LONGCALL_MAX_BLOCKS rows of the session: a short range. */
    [S_BLOCKED] = "SELECT EXISTS (SELECT 1 FROM blocks WHERE session_id = ?1"
                  " AND (caller_sid = ?2 OR caller = ?3))",
    [S_BATCH_MARK] =
        "INSERT OR IGNORE INTO batches(session_id, batch, created) VALUES (?1, ?2, ?3)",
    /* The newest STORE_BATCHES_KEPT batch ids of a session stay (ties on
     * created broken by the id). Run once per STORE_BATCHES_SLACK batches
     * of the session (store_batch_mark): it sorts the session's ids, at
     * most STORE_BATCHES_KEPT + STORE_BATCHES_SLACK + 1 rows of the
     * primary key's range. */
    [S_BATCH_TRIM] = "DELETE FROM batches WHERE session_id = ?1 AND (created, batch) < (SELECT"
                     " created, batch FROM batches WHERE session_id = ?1 ORDER BY created DESC,"
                     " batch DESC LIMIT 1 OFFSET ?2 - 1)",
    /* The session's ids since its last trim (db/010), this one included,
     * while that keeps them within ?2; no row changed: it would not (a trim
     * is due). One statement: reading the count back cost a second
     * (RETURNING builds a temporary table for its rows). */
    [S_BATCH_COUNT] =
        "UPDATE sessions SET batch_count = batch_count + 1 WHERE id = ?1 AND batch_count < ?2",
    [S_BATCH_COUNTED] = "UPDATE sessions SET batch_count = ?2 WHERE id = ?1",
    [S_BATCH_KNOWN] = "SELECT EXISTS (SELECT 1 FROM batches WHERE session_id = ?1 AND batch = ?2)",
    [S_ADDR_COUNT] = "SELECT (SELECT count(*) FROM sessions WHERE addr = ?1 AND ended IS NULL),"
                     " (SELECT count(*) FROM sessions WHERE addr = ?1 AND created >= ?2),"
                     " (SELECT min(created) FROM sessions WHERE addr = ?1 AND created >= ?2)",
    /* Never-registered sessions are in no call and no other session's
     * mailbox: theirs goes with them. Never the highest id (it would be
     * the next session's id: INTEGER PRIMARY KEY reuses it). */
    [S_PRUNE_UNREG_MSGS] = "DELETE FROM messages WHERE session_id IN (SELECT id FROM sessions"
                           " WHERE ended < ?1 AND name IS NULL"
                           " AND id < (SELECT max(id) FROM sessions) ORDER BY ended LIMIT ?2)",
    [S_PRUNE_UNREG_SESS] = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
                           " WHERE ended < ?1 AND name IS NULL"
                           " AND id < (SELECT max(id) FROM sessions) ORDER BY ended LIMIT ?2)",
    [S_DUE_UNREG] = "SELECT min(ended) FROM sessions WHERE ended IS NOT NULL AND name IS NULL",
    /* Old messages go, but never one still waiting for a live session. */
    [S_PRUNE_MSGS] = "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m"
                     " WHERE m.created < ?1 AND (m.delivered IS NOT NULL OR NOT EXISTS"
                     " (SELECT 1 FROM sessions s WHERE s.id = m.session_id AND s.ended IS NULL))"
                     " ORDER BY m.id LIMIT ?2)",
    /* A call ended before the cutoff has no message younger than it: those
     * went first (messages are pruned before calls). */
    [S_PRUNE_CALLS] = "DELETE FROM calls WHERE id IN (SELECT id FROM calls"
                      " WHERE ended < ?1 LIMIT ?2)",
    /* Nor a session that still has a message (one created after it ended
     * by the clock: a send that took its time before the close that
     * committed after it, or a clock step). Its id would be the next
     * session's if it was the highest, and that session would inherit the
     * mailbox. */
    [S_PRUNE_SESS] = "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s"
                     " WHERE s.ended < ?1"
                     " AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.caller_sid = s.id)"
                     " AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.callee_sid = s.id)"
                     " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id)"
                     " LIMIT ?2)",
    [S_DUE_IDLE] = "SELECT min(last_seen) FROM sessions WHERE ended IS NULL",
    [S_DUE_RING] = "SELECT min(placed) FROM calls WHERE ended IS NULL AND answered IS NULL",
    [S_DUE_OLD] =
        "SELECT min(x) FROM (SELECT (SELECT created FROM messages ORDER BY id LIMIT 1) AS x"
        " UNION ALL SELECT min(ended) FROM calls WHERE ended IS NOT NULL"
        " UNION ALL SELECT min(ended) FROM sessions WHERE ended IS NOT NULL)",
    [S_STATS] = "SELECT count(*), count(name), coalesce(sum(next_seq - acked), 0),"
                " (SELECT count(*) FROM calls WHERE ended IS NULL)"
                " FROM sessions WHERE ended IS NULL",
    [S_QUICK_CHECK] = "PRAGMA quick_check(1)",
};

struct store {
    /* PostgreSQL (store_db_is_pg): every function calls store_pg_X on it,
     * and nothing below is used. NULL: SQLite. On the SQLite path this is
     * one predictable branch per call, no more. */
    store_pg *pg;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[S_COUNT];
    int in_txn;
    int changes0; /* sqlite3_total_changes at store_begin */
    /* store_open: failures are recorded here, for one line that says what
     * is wrong, instead of being logged one by one. */
    int opening;
    int open_rc, open_errno; /* extended result code and errno of the failure */
    int newer;               /* the schema version of a database from a newer build */
    char detail[4400];       /* what quick_check found, or why the copy before a migration failed */
    /* A store may be shared by the threads of a process: each transaction
     * holds mu from begin to commit/rollback. One connection per process
     * keeps its page cache across transactions; with one per thread, every
     * other thread's commit would empty it and each transaction would read
     * its pages again. */
    pthread_mutex_t mu;
    int busy_ms;
    int quiet_busy; /* store_open's retries: a busy moment is not logged */
    int ckpt_pages;           /* store_defer_checkpoints threshold, 0 = off */
    _Atomic int ckpt_wanted;  /* the WAL passed it since store_checkpoint_take */
};

/* The store whose mu this thread holds, if any (a thread holds at most
 * one). Per thread, not per store: store_rollback on a thread with no
 * transaction -- after a failed begin, say -- must leave alone the
 * transaction another thread may have opened since. A flag in the store
 * would say "someone holds mu" and let this thread release it. */
static _Thread_local store *held;

static void unlock(store *st)
{
    if (held == st) {
        held = NULL;
        pthread_mutex_unlock(&st->mu);
    }
}

/* SQLite's default busy handler sleeps in steps of up to 100 ms, which turns
 * a 20 us lock wait between two backend processes into milliseconds. This
 * one sleeps 20 us, doubling to 1 ms, until the busy timeout is spent. */
static int busy_handler(void *arg, int count)
{
    const store *st = arg;
    static const long step_us[] = {20, 40, 80, 160, 320, 640, 1000};
    long total_us = 0, limit_us = st->busy_ms * 1000L;
    for (int i = 0; i < count && total_us < limit_us; i++)
        total_us += step_us[i < 6 ? i : 6];
    if (total_us >= limit_us) return 0;
    long us = step_us[count < 6 ? count : 6];
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
    return 1;
}

/* A full-disk episode of this process: set by the first write that fails
 * for want of space, cleared by the next commit that wrote. */
static atomic_int full_episode;
static atomic_long full_refused; /* writes refused during the episode */

/* rc (a result code, primary or extended) with the connection's errno says
 * the disk is full: SQLITE_FULL, or an I/O error of a write that failed with
 * ENOSPC/EDQUOT (the -shm file and some write paths report those as
 * SQLITE_IOERR_*). */
static int is_full(sqlite3 *db, int rc)
{
    int e = db ? sqlite3_system_errno(db) : 0;
    return (rc & 0xff) == SQLITE_FULL || ((rc & 0xff) == SQLITE_IOERR && (e == ENOSPC || e == EDQUOT));
}

/* Damage is logged once per process: every request meeting the damaged
 * pages would say it again. */
static atomic_int corrupt_logged;
/* The summary of "database busy" lines: at most one a minute per process. */
static lc_log_rate busy_rate;
static lc_log_rate error_rate; /* db_error lines */

static int fail(store *st, int rc, const char *what)
{
    int ext = sqlite3_extended_errcode(st->db);
    if (st->opening) {
        /* store_open_why writes the one line about it. */
        st->open_rc = ext ? ext : rc;
        st->open_errno = sqlite3_system_errno(st->db);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return LC_BUSY;
        return is_full(st->db, ext ? ext : rc) ? LC_FULL : LC_ERR;
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        long n = st->quiet_busy ? 0 : lc_log_due(&busy_rate, 60000);
        if (n)
            lc_log_event(LC_LOG_WARN, "db_busy", LC_FIELDS(LC_NUM("count", n)),
                         "database busy during %s: the request got 503 with Retry-After (%ld such "
                         "in this process since the previous line; at most one a minute); if this "
                         "lasts, look for what holds the write lock (a sqlite3 shell, a backup) or "
                         "raise LONGCALL_BUSY_TIMEOUT",
                         what, n);
        return LC_BUSY;
    }
    if (is_full(st->db, ext ? ext : rc)) {
        atomic_fetch_add(&full_refused, 1);
        if (!atomic_exchange(&full_episode, 1))
            lc_log_event(
                LC_LOG_ERROR, "storage_full", LC_FIELDS(LC_STR("db", st->path)),
                "database %s: storage full (%s during %s): writes are refused with 503 until "
                "space is freed on that file system (or LONGCALL_DB moves); logged once until "
                "a write works again",
                st->path, sqlite3_errmsg(st->db), what);
        return LC_FULL;
    }
    if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
        if (!atomic_exchange(&corrupt_logged, 1))
            lc_log_event(
                LC_LOG_ERROR, "db_corrupt", LC_FIELDS(LC_STR("db", st->path)),
                "database %s is corrupt (%s during %s): requests that need the damaged pages "
                "get 503; stop the server and restore a backup or move the file away; see "
                "README, Troubleshooting",
                st->path, sqlite3_errmsg(st->db), what);
        return LC_ERR;
    }
    /* Whatever fails for every request (an I/O error) must not write a
     * line per request: the first at once, then one a minute with the
     * count. */
    long n = lc_log_due(&error_rate, 60000);
    if (n)
        lc_log_event(LC_LOG_ERROR, "db_error",
                     LC_FIELDS(LC_STR("db", st->path), LC_NUM("count", n)),
                     "database error during %s: %s; the request got 500 or 503 (%ld such in this "
                     "process since the previous line; at most one a minute; see README, "
                     "Troubleshooting, and the database's file system)",
                     what, sqlite3_errmsg(st->db), n);
    return LC_ERR;
}

/* A transaction that wrote has committed: a full-disk episode is over. */
static void full_over(store *st)
{
    if (atomic_load(&full_episode) && atomic_exchange(&full_episode, 0))
        lc_log_event(LC_LOG_INFO, "storage_ok", LC_FIELDS(LC_STR("db", st->path)),
                     "database %s: writes work again (%ld refused while storage was full)",
                     st->path, atomic_exchange(&full_refused, 0));
}

/* Returns the cached statement id, reset and unbound, or NULL after logging. */
static sqlite3_stmt *stmt(store *st, enum stmt_id id)
{
    sqlite3_stmt *s = st->stmt[id];
    if (!s) {
        int rc = sqlite3_prepare_v3(st->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &st->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            fail(st, rc, sql_text[id]);
            return NULL;
        }
        return st->stmt[id];
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Runs a statement that returns no rows. */
static int exec_done(store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return fail(st, rc, what);
    return LC_OK;
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t && *t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Copies a name read from the database into dst (LC_NAME_MAX + 1 bytes),
 * cut at LC_NAME_MAX bytes; NULL gives "". Shared with store_pg.c. */
void store_copy_name(char *dst, const char *src)
{
    size_t n = src ? strlen((const char *)src) : 0;
    if (n > LC_NAME_MAX) n = LC_NAME_MAX;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

static int exec_sql(store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? LC_OK : fail(st, rc, what);
}

/* The integer a pragma answers, 0 if it answers none. */
static int pragma_int(store *st, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int user_version(store *st)
{
    return pragma_int(st, "PRAGMA user_version");
}

/* Copies the database, inside migrate's exclusive transaction and before
 * its first change, to <path>.before-v<target> with SQLite's online backup
 * API (beside the file a symbolic link names): the state as the older build
 * left it, for going back to that build. The copy reads through a second, read-only connection (the backup API
 * refuses a source connection in a write transaction; WAL lets a reader
 * in while this one holds the write lock, so nothing changes meanwhile).
 * A copy already there (a migration to the same version before) is kept;
 * this one goes to <path>.before-v<target>-<unix time>. LC_OK, or the
 * failure recorded for store_open_why's line (nothing migrated then: a
 * full disk must not leave a migrated database without its copy). */
static int backup_before(store *st, int target)
{
    char dst_path[4200];
    /* Beside the file itself, as SQLite puts its -wal (a symbolic link's
     * target: the same file system). */
    char *real = realpath(st->path, NULL);
    const char *base = real ? real : st->path;
    snprintf(dst_path, sizeof dst_path, "%s.before-v%d", base, target);
    if (access(dst_path, F_OK) == 0)
        snprintf(dst_path, sizeof dst_path, "%s.before-v%d-%lld", base, target,
                 (long long)time(NULL));
    free(real);
    sqlite3 *src = NULL, *dst = NULL, *err = NULL;
    sqlite3_backup *b = NULL;
    int rc = sqlite3_open_v2(st->path, &src, SQLITE_OPEN_READONLY, NULL);
    err = src;
    if (rc == SQLITE_OK) {
        rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
        err = dst;
    }
    if (rc == SQLITE_OK) {
        b = sqlite3_backup_init(dst, "main", src, "main");
        rc = b ? sqlite3_backup_step(b, -1) : sqlite3_errcode(dst);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    int finish = b ? sqlite3_backup_finish(b) : SQLITE_OK;
    if (rc == SQLITE_OK) rc = finish;
    /* One file, as `sqlite3 x.db .backup` makes it: the copied header says
     * WAL, which would give the copy -wal and -shm files when opened. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        st->open_rc = err ? sqlite3_extended_errcode(err) : rc;
        st->open_errno = err ? sqlite3_system_errno(err) : 0;
        snprintf(st->detail, sizeof st->detail, "copying it to %s before migrating it: %s",
                 dst_path, err ? sqlite3_errmsg(err) : sqlite3_errstr(rc));
        int full = err ? is_full(err, st->open_rc) : (rc & 0xff) == SQLITE_FULL;
        sqlite3_close(dst);
        sqlite3_close(src);
        unlink(dst_path);
        return full ? LC_FULL : LC_ERR;
    }
    sqlite3_close(dst);
    sqlite3_close(src);
    lc_log_event(LC_LOG_INFO, "db_backup",
                 LC_FIELDS(LC_STR("db", st->path), LC_STR("copy", dst_path)),
                 "database %s: copied to %s before migrating it from schema version %d", st->path,
                 dst_path, user_version(st));
    return LC_OK;
}

static int migrate(store *st)
{
    /* Up to date (the usual case): no lock. A CGI process opens the
     * database for every request, and an exclusive lock each time would
     * serialize them all. */
    int version = user_version(st);
    if (version == lc_migration_count) return LC_OK;
    if (version > lc_migration_count) {
        st->newer = version; /* store_open_why says so; nothing is changed */
        return LC_ERR;
    }
    int rc = exec_sql(st, "BEGIN EXCLUSIVE", "migration lock");
    if (rc != LC_OK) return rc;
    version = user_version(st);
    if (version > lc_migration_count) {
        st->newer = version;
        rc = LC_ERR;
        goto out;
    }
    /* An existing database (0: a new, empty one) is copied first. */
    if (version > 0 && (rc = backup_before(st, lc_migration_count)) != LC_OK) goto out;
    for (int v = version; v < lc_migration_count; v++) {
        char pragma[64];
        rc = exec_sql(st, lc_migrations[v], "schema migration");
        if (rc != LC_OK) goto out;
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        rc = exec_sql(st, pragma, "schema migration");
        if (rc != LC_OK) goto out;
        lc_log_event(LC_LOG_INFO, "migrated",
                     LC_FIELDS(LC_STR("db", st->path), LC_NUM("schema_version", v + 1)),
                     "database migrated to schema version %d", v + 1);
    }
    rc = exec_sql(st, "COMMIT", "schema migration");
out:
    /* A COMMIT that failed (a full disk) has rolled back already: a
     * ROLLBACK now would replace the reason with "no transaction". */
    if (rc != LC_OK && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* WAL: readers (the sqlite3 shell, other processes) never block writers.
 * synchronous=NORMAL: a commit is in the WAL (the OS page cache) before we
 * answer, so it survives the process being killed; only a power loss before
 * the next checkpoint can lose it. Then the schema is brought up to date. */
static int open_setup(store *st)
{
    /* A new database gets 1 KiB pages (an existing one keeps its own: the
     * pragma does nothing once the file has content). A relayed message
     * commits three pages -- its session's row, the message, its index
     * entry -- of which it changes a few hundred bytes: with 4 KiB pages
     * each commit writes and checksums 12 KiB of WAL, with 1 KiB pages 3
     * KiB, and the backend spends about 6% less CPU per message (make
     * bench). Only the rare SDP message grows a longer overflow chain. */
    int rc = exec_sql(st, "PRAGMA page_size = 1024", "opening the database");
    if (rc == LC_OK) rc = exec_sql(st, "PRAGMA journal_mode = WAL", "opening the database");
    if (rc == LC_OK) rc = exec_sql(st, "PRAGMA synchronous = NORMAL", "opening the database");
    /* With the persistent WAL (store_open_why): a WAL that grew past this
     * (a long reader held checkpoints back, say, until the disk filled) is
     * cut back to it once it starts again from its beginning, and a clean
     * close of the last connection empties it -- no stale frames left
     * beside a database that might be replaced. Above what the WAL reaches
     * under steady load: it starts again from its beginning only when a
     * checkpoint has copied every frame with no writer in between, which
     * under load is the WAL hook's backstop (wal_hook: 10 times the
     * checkpoint size, about 42 MB at the FastCGI backend's 4 MB). SQLite
     * cuts the file in the first commit after that, under the write lock:
     * at 8 MiB, cutting 30-40 MB took 15-37 ms on ext4, and every writer
     * of the process waited (relay max 40-48 ms in make bench's pairs 1
     * -x). */
    if (rc == LC_OK)
        rc = exec_sql(st, "PRAGMA journal_size_limit = 67108864", "opening the database");
    if (rc == LC_OK) rc = migrate(st);
    return rc;
}

/* Process-wide SQLite settings, before its first use. Each connection is
 * used by one thread at a time (store.mu), so SQLite's own per-connection
 * mutexes are off (MULTITHREAD); memory statistics are off, as each of
 * SQLite's allocations would otherwise take a global mutex to count it. */
static const char *vfs_name; /* walvfs, or NULL: SQLite's default */

static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (walvfs_register() == 0) vfs_name = WALVFS_NAME;
}

/* "uid 33 (www-data)" for uid into out. */
static void describe_uid(unsigned uid, char *out, size_t n)
{
    struct passwd pw, *res = NULL;
    char tmp[1024];
    if (getpwuid_r((uid_t)uid, &pw, tmp, sizeof tmp, &res) == 0 && res)
        snprintf(out, n, "uid %u (%s)", uid, res->pw_name);
    else
        snprintf(out, n, "uid %u", uid);
}

/* What the file system says about path and its folder for this process:
 * the owner and mode of the file, and whether the folder (where SQLite
 * creates <db>-wal and <db>-shm) is writable. */
static void describe_access(const char *path, char *out, size_t n)
{
    struct stat sb;
    char who[96], dir[1024];
    size_t len = 0;
    out[0] = '\0';
    if (stat(path, &sb) == 0) {
        describe_uid((unsigned)sb.st_uid, who, sizeof who);
        len = (size_t)snprintf(out, n, "; it belongs to %s with mode %04o", who,
                               (unsigned)(sb.st_mode & 07777));
    }
    lc_folder_of(path, dir, sizeof dir);
    if (len < n && access(dir, W_OK | X_OK) != 0)
        snprintf(out + len, n - len, "; its folder %s is not writable (SQLite keeps -wal and -shm"
                 " files beside it)", dir);
}

/* The problem a failed open ran into (lc: what the open returned so far),
 * from SQLite's result code and the errno recorded with it. */
static store_problem classify(const store *st, int lc)
{
    int prim = st->open_rc & 0xff, e = st->open_errno;
    if (st->newer) return STORE_NEWER;
    if (lc == LC_BUSY) return STORE_BUSY;
    if (lc == LC_FULL) return STORE_FULL;
    if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB) return STORE_CORRUPT;
    if (prim == SQLITE_READONLY || prim == SQLITE_AUTH || prim == SQLITE_PERM) return STORE_ACCESS;
    if ((prim == SQLITE_CANTOPEN || prim == SQLITE_IOERR) &&
        (e == EACCES || e == EPERM || e == EROFS))
        return STORE_ACCESS;
    return STORE_OTHER;
}

/* The last open failure logged (store_open_why's retries log a change). */
static char open_memo[LC_LOG_MEMO];
static pthread_mutex_t open_memo_mu = PTHREAD_MUTEX_INITIALIZER;

/* Logs the one line of a failed open. */
static void log_open_problem(const store *st, const char *path, store_problem p)
{
    char who[96], how[1200];
    describe_uid((unsigned)geteuid(), who, sizeof who);
    const char *msg = st->detail[0] ? st->detail : st->db ? sqlite3_errmsg(st->db) : "out of memory";
    pthread_mutex_lock(&open_memo_mu);
    switch (p) {
    case STORE_BUSY:
        lc_log_changed(open_memo, LC_LOG_WARN, "db_busy",
                       "database busy while opening %s: requests get 503 until it opens; look for "
                       "what holds its write lock (a sqlite3 shell, a backup)",
                       path);
        break;
    case STORE_FULL:
        lc_log_changed(open_memo, LC_LOG_ERROR, "storage_full",
                       "database %s: storage full while opening it (%s): free space on that file "
                       "system or set LONGCALL_DB to a file elsewhere; requests get 503 until then",
                       path, msg);
        break;
    case STORE_ACCESS:
        describe_access(path, how, sizeof how);
        lc_log_changed(open_memo, LC_LOG_ERROR, "db_not_writable",
                       "database %s is not readable and writable by %s (%s)%s: give it (and its "
                       "folder) to that user, or set LONGCALL_DB to a file it may write",
                       path, who, msg, how);
        break;
    case STORE_CORRUPT:
        lc_log_changed(open_memo, LC_LOG_ERROR, "db_corrupt",
                       "database %s is corrupt (%s): restore a backup, or move it away (with its "
                       "-wal and -shm files) to start with an empty one; see README, "
                       "Troubleshooting",
                       path, msg);
        break;
    case STORE_NEWER:
        lc_log_changed(open_memo, LC_LOG_ERROR, "db_newer",
                       "database %s is from a newer longcall (schema %d, this build knows %d): "
                       "upgrade longcall or restore a backup",
                       path, st->newer, lc_migration_count);
        break;
    default:
        lc_log_changed(open_memo, LC_LOG_ERROR, "db_open_failed",
                       "cannot open database %s as %s: %s (%s); requests get 503 until it opens: "
                       "check LONGCALL_DB and its folder",
                       path, who, msg, strerror(st->open_errno ? st->open_errno : EIO));
        break;
    }
    pthread_mutex_unlock(&open_memo_mu);
}

/* PRAGMA quick_check(1): LC_OK when it answers "ok". */
static int quick_check(store *st)
{
    sqlite3_stmt *s = stmt(st, S_QUICK_CHECK);
    if (!s) return LC_ERR;
    int rc = sqlite3_step(s);
    int good = rc == SQLITE_ROW && sqlite3_column_text(s, 0) &&
               strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0;
    if (rc == SQLITE_ROW && !good) {
        /* Damage found: say what quick_check says, as the errmsg would. */
        snprintf(st->detail, sizeof st->detail, "integrity check: %s",
                 (const char *)sqlite3_column_text(s, 0));
        for (char *c = st->detail; *c; c++) /* one log line */
            if (*c == '\n' || *c == '\r') *c = ' ';
        sqlite3_reset(s);
        st->open_rc = SQLITE_CORRUPT;
        return LC_ERR;
    }
    sqlite3_reset(s);
    return good ? LC_OK : fail(st, rc, "integrity check");
}

/* open_setup, tried again while it is busy. Backends started together
 * (lighttpd's max-procs, CGI requests) open a fresh database at once.
 * Switching it to WAL takes a read lock and then the write lock; when two
 * connections both hold the read lock and want the write lock, SQLite
 * answers SQLITE_BUSY at once instead of calling the busy handler (it would
 * deadlock). So the set-up is tried again, quietly, until the busy timeout;
 * only the last failure is logged. Returns as open_setup. */
static int open_setup_retrying(store *st, int busy_timeout_ms)
{
    int rc;
    int64_t give_up = lc_mono_ms() + busy_timeout_ms;
    st->quiet_busy = 1;
    for (int attempt = 0;; attempt++) {
        rc = open_setup(st);
        if (rc != LC_BUSY || lc_mono_ms() >= give_up) break;
        struct timespec ts = {0, (2 + attempt % 8) * 1000000L};
        nanosleep(&ts, NULL);
    }
    st->quiet_busy = 0;
    return rc;
}

int store_open_why(const char *path, int busy_timeout_ms, int check, store **out,
                   store_problem *why)
{
    if (store_db_is_pg(path)) {
        store_pg *pg = NULL;
        int rc = store_pg_open_why(path, busy_timeout_ms, check, &pg, why);
        if (rc != LC_OK) return rc;
        *out = xcalloc(1, sizeof **out);
        (*out)->pg = pg;
        return LC_OK;
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    store *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    st->busy_ms = busy_timeout_ms;
    st->path = xstrdup(path);
    st->opening = 1;
    *why = STORE_FINE;
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs_name);
    if (rc != SQLITE_OK) {
        st->open_rc = st->db ? sqlite3_extended_errcode(st->db) : rc;
        st->open_errno = st->db ? sqlite3_system_errno(st->db) : 0;
        rc = LC_ERR;
        goto fail;
    }
    /* A file this user may read but not write: SQLite opens it read-only
     * rather than fail, and every write would fail later. */
    if (sqlite3_db_readonly(st->db, "main") == 1) {
        st->open_rc = SQLITE_READONLY;
        snprintf(st->detail, sizeof st->detail, "it opens read-only");
        rc = LC_ERR;
        goto fail;
    }
    sqlite3_busy_handler(st->db, busy_handler, st);
    /* The -wal and -shm files stay when the last connection closes (a CGI
     * process closes after each request): they are not deleted and made
     * again per request, and their space stays allocated -- on a full
     * disk a new connection can still open the database and read it (a
     * poll delivers what is stored), and a write can reuse WAL space. */
    int persist = 1;
    sqlite3_file_control(st->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    rc = open_setup_retrying(st, busy_timeout_ms);
    if (rc == LC_OK && check) rc = quick_check(st);
    if (rc != LC_OK) goto fail;
    st->opening = 0;
    pthread_mutex_lock(&open_memo_mu);
    open_memo[0] = '\0'; /* the next failure is news again */
    pthread_mutex_unlock(&open_memo_mu);
    *out = st;
    return LC_OK;
fail:
    *why = classify(st, rc);
    log_open_problem(st, path, *why);
    store_close(st);
    return *why == STORE_BUSY ? LC_BUSY : *why == STORE_FULL ? LC_FULL : LC_ERR;
}

int store_open(const char *path, int busy_timeout_ms, store **out)
{
    store_problem why;
    return store_open_why(path, busy_timeout_ms, 0, out, &why);
}

void store_close(store *st)
{
    if (!st) return;
    if (st->pg) {
        store_pg_close(st->pg);
        free(st);
        return;
    }
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st->path);
    free(st);
}

/* Runs after each commit of a connection with deferred checkpoints. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    store *st = arg;
    if (pages >= 10 * st->ckpt_pages) {
        /* The background checkpointer fell behind: do it here, as SQLite's
         * own wal_autocheckpoint hook would. */
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (pages >= st->ckpt_pages) {
        atomic_store(&st->ckpt_wanted, 1);
    }
    return SQLITE_OK;
}

void store_defer_checkpoints(store *st, int bytes)
{
    if (st->pg) return; /* PostgreSQL checkpoints by itself */
    int page = pragma_int(st, "PRAGMA page_size");
    st->ckpt_pages = bytes / (page > 0 ? page : 4096);
    /* sqlite3_wal_hook replaces SQLite's auto-checkpoint (itself a WAL
     * hook): wal_hook keeps a backstop of its own. */
    sqlite3_wal_hook(st->db, wal_hook, st);
}

int store_checkpoint_wanted(store *st)
{
    if (st->pg) return 0;
    return atomic_load(&st->ckpt_wanted);
}

int store_checkpoint_take(store *st)
{
    if (st->pg) return 0;
    return atomic_exchange(&st->ckpt_wanted, 0);
}

int store_checkpoint(store *st)
{
    if (st->pg) return LC_OK;
    int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc == SQLITE_OK) return LC_OK;
    /* Another process is checkpointing: expected with several backends. */
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return LC_BUSY;
    return fail(st, rc, "checkpoint");
}

static int txn(store *st, enum stmt_id id, const char *what)
{
    sqlite3_stmt *s = stmt(st, id);
    if (!s) return LC_ERR;
    int rc = exec_done(st, s, what);
    return rc;
}

/* Threads of one process share the store and so queue on mu, in
 * microseconds; only other processes' writers meet in the busy handler. */
static int begin(store *st, enum stmt_id id)
{
    pthread_mutex_lock(&st->mu);
    held = st;
    int rc = txn(st, id, "begin");
    st->changes0 = sqlite3_total_changes(st->db);
    if (rc == LC_OK)
        st->in_txn = 1;
    else
        unlock(st);
    return rc;
}

int store_begin(store *st)
{
    if (st->pg) return store_pg_begin(st->pg);
    return begin(st, S_BEGIN_W);
}

int store_begin_job(store *st, store_job job, int *mine)
{
    if (st->pg) return store_pg_begin_job(st->pg, job, mine);
    *mine = 1;
    return begin(st, S_BEGIN_W);
}

int store_begin_read(store *st)
{
    if (st->pg) return store_pg_begin_read(st->pg);
    return begin(st, S_BEGIN_R);
}

int store_shared(const store *st)
{
    return st->pg != NULL;
}

int store_notify(store *st, const char *payload)
{
    return st->pg ? store_pg_notify(st->pg, payload) : LC_OK;
}

int store_commit(store *st)
{
    if (st->pg) return store_pg_commit(st->pg);
    int rc = txn(st, S_COMMIT, "commit");
    if (rc == LC_OK) {
        if (sqlite3_total_changes(st->db) != st->changes0) full_over(st);
        st->in_txn = 0;
        unlock(st);
    } else {
        store_rollback(st);
    }
    return rc;
}

void store_rollback(store *st)
{
    if (st->pg) {
        store_pg_rollback(st->pg);
        return;
    }
    if (held != st) return; /* no transaction of this thread's */
    if (st->in_txn && !sqlite3_get_autocommit(st->db)) {
        sqlite3_stmt *s = stmt(st, S_ROLLBACK);
        if (s) exec_done(st, s, "rollback");
    }
    st->in_txn = 0;
    unlock(st);
}

int store_session_create(store *st, const uint8_t hash[32], int64_t now, int64_t *id)
{
    return store_session_create_addr(st, hash, now, NULL, id);
}

int store_session_create_addr(store *st, const uint8_t hash[32], int64_t now, const char *addr,
                              int64_t *id)
{
    if (st->pg) return store_pg_session_create_addr(st->pg, hash, now, addr, id);
    sqlite3_stmt *s = stmt(st, S_SESS_NEW);
    if (!s) return LC_ERR;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    if (addr)
        sqlite3_bind_text(s, 3, addr, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    int rc = exec_done(st, s, "session create");
    if (rc == LC_OK) *id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

static int read_session(store *st, sqlite3_stmt *s, store_session *out, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        store_copy_name(out->name, (const char *)sqlite3_column_text(s, 1));
        out->last_seq = sqlite3_column_int64(s, 2);
        out->acked = sqlite3_column_int64(s, 3);
        out->poll_gen = sqlite3_column_int64(s, 4);
        out->ended = sqlite3_column_int(s, 5);
        out->last_seen = sqlite3_column_int64(s, 6);
        sqlite3_reset(s);
        return LC_OK;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return LC_NOTFOUND;
    return fail(st, rc, what);
}

int store_session_by_token(store *st, const uint8_t hash[32], store_session *out)
{
    if (st->pg) return store_pg_session_by_token(st->pg, hash, out);
    sqlite3_stmt *s = stmt(st, S_SESS_BY_TOKEN);
    if (!s) return LC_ERR;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    return read_session(st, s, out, "session lookup");
}

int store_session_get(store *st, int64_t id, store_session *out)
{
    if (st->pg) return store_pg_session_get(st->pg, id, out);
    sqlite3_stmt *s = stmt(st, S_SESS_GET);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, id);
    return read_session(st, s, out, "session read");
}

int store_session_by_name(store *st, const char *name, int64_t *id)
{
    if (st->pg) return store_pg_session_by_name(st->pg, name, id);
    sqlite3_stmt *s = stmt(st, S_SESS_BY_NAME);
    if (!s) return LC_ERR;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return LC_OK;
    if (rc == SQLITE_DONE) return LC_NOTFOUND;
    return fail(st, rc, "name lookup");
}

int store_session_set_name(store *st, int64_t id, const char *name)
{
    return store_session_set_name_key(st, id, name, NULL);
}

int store_session_set_name_key(store *st, int64_t id, const char *name, const uint8_t reclaim[32])
{
    if (st->pg) return store_pg_session_set_name_key(st->pg, id, name, reclaim);
    sqlite3_stmt *s = stmt(st, S_SESS_SET_NAME);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, id);
    bind_text_or_null(s, 2, name);
    if (reclaim)
        sqlite3_bind_blob(s, 3, reclaim, 32, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    return exec_done(st, s, "register");
}

int store_name_reserved(store *st, const char *name, int64_t since, uint8_t reclaim[32],
                        int64_t *ended)
{
    if (st->pg) return store_pg_name_reserved(st->pg, name, since, reclaim, ended);
    sqlite3_stmt *s = stmt(st, S_NAME_RESERVED);
    if (!s) return LC_ERR;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, since);
    int rc = sqlite3_step(s);
    int found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32) {
        memcpy(reclaim, sqlite3_column_blob(s, 0), 32);
        *ended = sqlite3_column_int64(s, 1);
        found = 1;
    }
    sqlite3_reset(s);
    if (found) return LC_OK;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return LC_NOTFOUND;
    return fail(st, rc, "name reservation lookup");
}

int store_name_unreserve(store *st, const char *name)
{
    if (st->pg) return store_pg_name_unreserve(st->pg, name);
    sqlite3_stmt *s = stmt(st, S_NAME_UNRESERVE);
    if (!s) return LC_ERR;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    return exec_done(st, s, "name reservation");
}

int store_session_poll(store *st, const store_session *known, int64_t id, int64_t after,
                       int64_t now, int bump, store_mailbox *left)
{
    if (st->pg) return store_pg_session_poll(st->pg, id, after, now, bump, left);
    store_session cur;
    int rc = LC_OK;
    if (known && known->id == id)
        cur = *known; /* read in this write transaction, unchanged since */
    else
        rc = store_session_get(st, id, &cur);
    if (rc != LC_OK) return rc;
    if (cur.ended) return LC_NOTFOUND;
    if (after > cur.last_seq) after = cur.last_seq;
    if (after > cur.acked) {
        sqlite3_stmt *d = stmt(st, S_SESS_ACK_DROP);
        if (!d) return LC_ERR;
        sqlite3_bind_int64(d, 1, id);
        sqlite3_bind_int64(d, 2, cur.acked);
        sqlite3_bind_int64(d, 3, after);
        rc = exec_done(st, d, "acknowledge");
        if (rc != LC_OK) return rc;
        sqlite3_stmt *a = stmt(st, S_SESS_ACK_MSGS);
        if (!a) return LC_ERR;
        sqlite3_bind_int64(a, 1, id);
        sqlite3_bind_int64(a, 2, cur.acked);
        sqlite3_bind_int64(a, 3, after);
        sqlite3_bind_int64(a, 4, now);
        rc = exec_done(st, a, "acknowledge");
        if (rc != LC_OK) return rc;
    }
    int64_t gen = cur.poll_gen + (bump ? 1 : 0), acked = after > cur.acked ? after : cur.acked;
    int seen = now - cur.last_seen >= STORE_SEEN_EVERY_MS;
    if (left) *left = (store_mailbox){.seq = cur.last_seq, .acked = acked, .poll_gen = gen};
    if (!seen && acked == cur.acked && gen == cur.poll_gen) return LC_OK; /* nothing to write */
    sqlite3_stmt *s = stmt(st, seen ? S_SESS_POLL : S_SESS_POLL_KEEP);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, acked);
    if (seen) {
        sqlite3_bind_int64(s, 3, now);
        sqlite3_bind_int64(s, 4, gen);
    } else {
        sqlite3_bind_int64(s, 3, gen);
    }
    return exec_done(st, s, "poll");
}

int store_session_end(store *st, int64_t id, int64_t now, const char *reason)
{
    if (st->pg) return store_pg_session_end(st->pg, id, now, reason);
    store_session cur;
    int rc = store_session_get(st, id, &cur);
    if (rc == LC_NOTFOUND || (rc == LC_OK && cur.ended)) return LC_OK;
    if (rc != LC_OK) return rc;
    sqlite3_stmt *s = stmt(st, S_SESS_END_DROP);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, cur.acked);
    rc = exec_done(st, s, "session end");
    if (rc != LC_OK) return rc;
    s = stmt(st, S_SESS_END);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
    rc = exec_done(st, s, "session end");
    if (rc != LC_OK) return rc;
    s = stmt(st, S_SESS_END_BATCHES);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, id);
    rc = exec_done(st, s, "session end");
    if (rc != LC_OK) return rc;
    s = stmt(st, S_SESS_END_BLOCKS);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, id);
    return exec_done(st, s, "session end");
}

/* The smallest string above every string that starts with prefix: prefix
 * with its last byte below 0xff raised by one (trailing 0xff bytes cut).
 * Returns 0 and fills hi (len + 1 bytes), or -1 when there is none. Shared
 * with store_pg.c. */
int store_prefix_bound(const char *prefix, char *hi, size_t cap)
{
    size_t n = strlen(prefix);
    while (n && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (!n || n >= cap) return -1;
    memcpy(hi, prefix, n);
    hi[n - 1] = (char)((unsigned char)hi[n - 1] + 1);
    hi[n] = '\0';
    return 0;
}

int store_names(store *st, const char *prefix, const char *after, int max,
                void (*fn)(void *arg, const char *name), void *arg, int *more)
{
    if (st->pg) return store_pg_names(st->pg, prefix, after, max, fn, arg, more);
    char hi[4 * LC_NAME_MAX + 2];
    if (!prefix) prefix = "";
    if (after && !*after) after = NULL;
    *more = 0;
    /* Names >= lo, lo the larger of prefix and after; a name equal to
     * after is skipped below (names are unique: at most one), so one row
     * more than max + 1 is read: max to give, one to tell "more". */
    const char *lo = after && strcmp(after, prefix) > 0 ? after : prefix;
    int ranged = *prefix && store_prefix_bound(prefix, hi, sizeof hi) == 0;
    sqlite3_stmt *s = stmt(st, ranged ? S_NAMES_RANGE : S_NAMES);
    if (!s) return LC_ERR;
    sqlite3_bind_text(s, 1, lo, -1, SQLITE_STATIC);
    if (ranged) sqlite3_bind_text(s, 2, hi, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, ranged ? 3 : 2, max + 2);
    int rc, n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        if (!name || (after && strcmp(name, after) <= 0)) continue;
        if (strncmp(name, prefix, strlen(prefix)) != 0) break; /* past them (no bound) */
        if (n == max) {
            *more = 1;
            break;
        }
        fn(arg, name);
        n++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? LC_OK : fail(st, rc, "list");
}

static int collect_ids(store *st, sqlite3_stmt *s, int64_t *ids, int max, int *n, const char *what)
{
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        ids[(*n)++] = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? LC_OK : fail(st, rc, what);
}

int store_sessions_idle(store *st, int64_t before, int64_t *ids, int max, int *n)
{
    if (st->pg) return store_pg_sessions_idle(st->pg, before, ids, max, n);
    sqlite3_stmt *s = stmt(st, S_SESS_IDLE);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int(s, 2, max);
    return collect_ids(st, s, ids, max, n, "expiry scan");
}

int store_enqueue(store *st, const store_msg *m, int quota, int share, store_mailbox *out)
{
    if (st->pg) return store_pg_enqueue(st->pg, m, quota, share, out);
    store_session to;
    int rc = store_session_get(st, m->session_id, &to);
    if (rc != LC_OK) return rc;
    int64_t next = to.last_seq + 1, unacked = to.last_seq - to.acked;
    if (unacked >= quota) return LC_QUOTA;
    sqlite3_stmt *s;
    if (m->sender_sid && unacked >= share) { /* fewer in all: the sender cannot have share */
        if (!(s = stmt(st, S_ENQ_SHARE))) return LC_ERR;
        sqlite3_bind_int64(s, 1, m->session_id);
        sqlite3_bind_int64(s, 2, to.acked);
        sqlite3_bind_int64(s, 3, m->sender_sid);
        int64_t mine = 0;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) mine = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc != SQLITE_ROW) return fail(st, rc, "mailbox share");
        if (mine >= share) return LC_SHARE;
    }
    s = stmt(st, S_ENQ_SET);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, m->session_id);
    sqlite3_bind_int64(s, 2, next);
    rc = exec_done(st, s, "enqueue");
    if (rc != LC_OK) return rc;
    s = stmt(st, S_ENQ_INSERT);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, m->session_id);
    sqlite3_bind_int64(s, 2, next);
    bind_text_or_null(s, 3, m->sender);
    bind_text_or_null(s, 4, m->recipient);
    sqlite3_bind_text(s, 5, m->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, m->body, -1, SQLITE_STATIC);
    if (m->call_id > 0)
        sqlite3_bind_int64(s, 7, m->call_id);
    else
        sqlite3_bind_null(s, 7);
    sqlite3_bind_int64(s, 8, m->created);
    if (m->transient)
        sqlite3_bind_int(s, 9, 1);
    else
        sqlite3_bind_null(s, 9);
    if (m->sender_sid)
        sqlite3_bind_int64(s, 10, m->sender_sid);
    else
        sqlite3_bind_null(s, 10);
    rc = exec_done(st, s, "enqueue");
    if (rc == LC_OK)
        *out = (store_mailbox){.seq = next, .acked = to.acked, .poll_gen = to.poll_gen};
    return rc;
}

int store_fetch(store *st, int64_t session_id, int64_t after, int max_count, size_t max_bytes,
                store_rows *out, int64_t *last_seq)
{
    if (st->pg)
        return store_pg_fetch(st->pg, session_id, after, max_count, max_bytes, out, last_seq);
    out->n = 0;
    out->text.len = 0;
    *last_seq = after;
    sqlite3_stmt *s = stmt(st, S_FETCH);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, max_count);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *body = sqlite3_column_text(s, 1);
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        /* A hard limit: the next body would pass it (the first always goes,
         * or nothing could ever be delivered). */
        if (out->n && out->text.len - (size_t)out->n + len > max_bytes) break;
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->row = xrealloc(out->row, (size_t)out->cap * sizeof *out->row);
        }
        out->row[out->n].seq = sqlite3_column_int64(s, 0);
        out->row[out->n].len = len;
        buf_append(&out->text, body ? (const char *)body : "", len);
        buf_append(&out->text, "", 1); /* each body NUL-terminated */
        out->n++;
        *last_seq = out->row[out->n - 1].seq;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        out->n = 0;
        *last_seq = after;
        return fail(st, rc, "fetch");
    }
    /* The bodies lie one after the other, each followed by its NUL: point
     * at them now that text has stopped moving. */
    size_t off = 0;
    for (int i = 0; i < out->n; i++) {
        out->row[i].body = out->text.data + off;
        off += out->row[i].len + 1;
    }
    return LC_OK;
}

void store_rows_free(store_rows *rows)
{
    free(rows->row);
    buf_free(&rows->text);
    *rows = (store_rows){0};
}

static int read_call(store *st, sqlite3_stmt *s, store_call *out, int *ended, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        out->caller_sid = sqlite3_column_int64(s, 1);
        out->callee_sid = sqlite3_column_int64(s, 2);
        store_copy_name(out->caller, (const char *)sqlite3_column_text(s, 3));
        store_copy_name(out->callee, (const char *)sqlite3_column_text(s, 4));
        out->answered = sqlite3_column_int(s, 5);
        if (ended) *ended = sqlite3_column_int(s, 6);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return LC_OK;
    if (rc == SQLITE_DONE) return LC_NOTFOUND;
    return fail(st, rc, what);
}

int store_call_live(store *st, int64_t session_id, store_call *out)
{
    if (st->pg) return store_pg_call_live(st->pg, session_id, out);
    sqlite3_stmt *s = stmt(st, S_CALL_LIVE);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    return read_call(st, s, out, NULL, "call lookup");
}

int store_call_get(store *st, int64_t call_id, store_call *out, int *ended)
{
    if (st->pg) return store_pg_call_get(st->pg, call_id, out, ended);
    sqlite3_stmt *s = stmt(st, S_CALL_GET);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, call_id);
    return read_call(st, s, out, ended, "call read");
}

int store_call_create(store *st, const store_call *c, int64_t now, int64_t *id)
{
    if (st->pg) return store_pg_call_create(st->pg, c, now, id);
    sqlite3_stmt *s = stmt(st, S_CALL_NEW);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, c->caller_sid);
    sqlite3_bind_int64(s, 2, c->callee_sid);
    sqlite3_bind_text(s, 3, c->caller, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, c->callee, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, now);
    int rc = exec_done(st, s, "call create");
    if (rc == LC_OK) *id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int store_call_answer(store *st, int64_t call_id, int64_t now)
{
    if (st->pg) return store_pg_call_answer(st->pg, call_id, now);
    sqlite3_stmt *s = stmt(st, S_CALL_ANSWER);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, call_id);
    sqlite3_bind_int64(s, 2, now);
    return exec_done(st, s, "call answer");
}

int store_call_end(store *st, int64_t call_id, int64_t now, const char *outcome)
{
    if (st->pg) return store_pg_call_end(st->pg, call_id, now, outcome);
    sqlite3_stmt *s = stmt(st, S_CALL_END);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, call_id);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_text(s, 3, outcome, -1, SQLITE_STATIC);
    return exec_done(st, s, "call end");
}

int store_calls_unanswered(store *st, int64_t before, int64_t *ids, int max, int *n)
{
    if (st->pg) return store_pg_calls_unanswered(st->pg, before, ids, max, n);
    sqlite3_stmt *s = stmt(st, S_CALL_RINGING);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int(s, 2, max);
    return collect_ids(st, s, ids, max, n, "ring timeout scan");
}

/* store_rate_allow's statements and log words, by store_rate. */
static const struct {
    int allow, tat;
    const char *what;
} rates[] = {
    [STORE_RATE_LIST] = {S_LIST_ALLOW, S_LIST_TAT, "list rate"},
    [STORE_RATE_CALL] = {S_CALL_ALLOW, S_CALL_TAT, "call rate"},
    [STORE_RATE_ICE] = {S_ICE_ALLOW, S_ICE_TAT, "iceServers rate"},
};

int store_rate_allow(store *st, store_rate kind, int64_t session_id, int64_t now,
                     int64_t interval_ms, int64_t burst_ms, int *allowed, int64_t *wait_ms)
{
    if (st->pg)
        return store_pg_rate_allow(st->pg, kind, session_id, now, interval_ms, burst_ms, allowed,
                                   wait_ms);
    sqlite3_stmt *s = stmt(st, rates[kind].allow);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, interval_ms);
    sqlite3_bind_int64(s, 4, burst_ms);
    int rc = exec_done(st, s, rates[kind].what);
    if (rc != LC_OK) return rc;
    *allowed = sqlite3_changes(st->db) > 0;
    if (*allowed || !wait_ms) return LC_OK;
    /* Refused (the rare case): when the clock is back within the burst. */
    if (!(s = stmt(st, rates[kind].tat))) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    rc = sqlite3_step(s);
    int64_t tat = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(st, rc, rates[kind].what);
    *wait_ms = tat - burst_ms - now;
    if (*wait_ms < 1) *wait_ms = 1;
    return LC_OK;
}

int store_call_pair(store *st, int64_t caller_sid, int64_t callee_sid, int64_t since,
                    int64_t *count, int64_t *oldest)
{
    if (st->pg) return store_pg_call_pair(st->pg, caller_sid, callee_sid, since, count, oldest);
    sqlite3_stmt *s = stmt(st, S_CALL_PAIR);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, caller_sid);
    sqlite3_bind_int64(s, 2, callee_sid);
    sqlite3_bind_int64(s, 3, since);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(s, 0);
        *oldest = sqlite3_column_type(s, 1) == SQLITE_NULL ? since : sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? LC_OK : fail(st, rc, "call pair rate");
}

int store_call_cooldown(store *st, int64_t caller_sid, int64_t callee_sid, int64_t since,
                        int64_t *ended)
{
    if (st->pg) return store_pg_call_cooldown(st->pg, caller_sid, callee_sid, since, ended);
    sqlite3_stmt *s = stmt(st, S_CALL_COOLDOWN);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, caller_sid);
    sqlite3_bind_int64(s, 2, callee_sid);
    sqlite3_bind_int64(s, 3, since);
    int rc = sqlite3_step(s), found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *ended = sqlite3_column_int64(s, 0);
        found = 1;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) return fail(st, rc, "call cooldown");
    return found ? LC_OK : LC_NOTFOUND;
}

int store_block_add(store *st, int64_t session_id, int64_t caller_sid, const char *caller,
                    int64_t now, int max)
{
    if (st->pg) return store_pg_block_add(st->pg, session_id, caller_sid, caller, now, max);
    sqlite3_stmt *s = stmt(st, S_BLOCK_ADD);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, caller_sid);
    sqlite3_bind_text(s, 3, caller, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, now);
    int rc = exec_done(st, s, "block");
    if (rc != LC_OK) return rc;
    if (!(s = stmt(st, S_BLOCK_TRIM))) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int(s, 2, max);
    return exec_done(st, s, "block trim");
}

int store_blocked(store *st, int64_t session_id, int64_t caller_sid, const char *caller,
                  int *blocked)
{
    if (st->pg) return store_pg_blocked(st->pg, session_id, caller_sid, caller, blocked);
    sqlite3_stmt *s = stmt(st, S_BLOCKED);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, caller_sid);
    if (caller && *caller)
        sqlite3_bind_text(s, 3, caller, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *blocked = sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? LC_OK : fail(st, rc, "block lookup");
}

int store_batch_mark(store *st, int64_t session_id, const char *batch, int64_t now, int *seen)
{
    if (st->pg) return store_pg_batch_mark(st->pg, session_id, batch, now, seen);
    sqlite3_stmt *s = stmt(st, S_BATCH_MARK);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_text(s, 2, batch, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    int rc = exec_done(st, s, "batch id");
    if (rc != LC_OK) return rc;
    *seen = sqlite3_changes(st->db) == 0;
    if (*seen) return LC_OK;
    /* Trimmed STORE_BATCHES_SLACK at a time (db/010): a trim per batch
     * wrote two more pages to the WAL on every send. Counted in the
     * session row, in this transaction: a rolled-back batch is not
     * counted, so no client can make the ids outgrow the bound. */
    if (!(s = stmt(st, S_BATCH_COUNT))) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int(s, 2, STORE_BATCHES_KEPT + STORE_BATCHES_SLACK);
    if ((rc = exec_done(st, s, "batch id count")) != LC_OK) return rc;
    if (sqlite3_changes(st->db) == 1) return LC_OK; /* within the bound */
    if (!(s = stmt(st, S_BATCH_TRIM))) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int(s, 2, STORE_BATCHES_KEPT);
    if ((rc = exec_done(st, s, "batch id trim")) != LC_OK) return rc;
    if (!(s = stmt(st, S_BATCH_COUNTED))) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int(s, 2, STORE_BATCHES_KEPT);
    return exec_done(st, s, "batch id count");
}

int store_batch_known(store *st, int64_t session_id, const char *batch, int *known)
{
    if (st->pg) return store_pg_batch_known(st->pg, session_id, batch, known);
    sqlite3_stmt *s = stmt(st, S_BATCH_KNOWN);
    if (!s) return LC_ERR;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_text(s, 2, batch, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *known = rc == SQLITE_ROW && sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? LC_OK : fail(st, rc, "batch id lookup");
}

int store_addr_sessions(store *st, const char *addr, int64_t since, int64_t *live, int64_t *recent,
                        int64_t *oldest)
{
    if (st->pg) return store_pg_addr_sessions(st->pg, addr, since, live, recent, oldest);
    sqlite3_stmt *s = stmt(st, S_ADDR_COUNT);
    if (!s) return LC_ERR;
    sqlite3_bind_text(s, 1, addr, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, since);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *live = sqlite3_column_int64(s, 0);
        *recent = sqlite3_column_int64(s, 1);
        *oldest = sqlite3_column_type(s, 2) == SQLITE_NULL ? since : sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? LC_OK : fail(st, rc, "client address count");
}

int store_prune_unregistered(store *st, int64_t before, int limit, int *deleted)
{
    if (st->pg) return store_pg_prune_unregistered(st->pg, before, limit, deleted);
    static const enum stmt_id order[] = {S_PRUNE_UNREG_MSGS, S_PRUNE_UNREG_SESS};
    *deleted = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        sqlite3_stmt *s = stmt(st, order[i]);
        if (!s) return LC_ERR;
        sqlite3_bind_int64(s, 1, before);
        sqlite3_bind_int(s, 2, limit);
        int rc = exec_done(st, s, "pruning unregistered sessions");
        if (rc != LC_OK) return rc;
        if (order[i] == S_PRUNE_UNREG_SESS) *deleted = sqlite3_changes(st->db);
    }
    return LC_OK;
}

static int min_value(store *st, enum stmt_id id, int64_t *v, int *found);

int store_next_unregistered(store *st, int64_t *ended)
{
    if (st->pg) return store_pg_next_unregistered(st->pg, ended);
    int found, rc = min_value(st, S_DUE_UNREG, ended, &found);
    if (rc == LC_OK && !found) *ended = INT64_MAX;
    return rc;
}

int store_prune(store *st, int64_t before, int limit, int *deleted)
{
    if (st->pg) return store_pg_prune(st->pg, before, limit, deleted);
    static const enum stmt_id order[] = {S_PRUNE_MSGS, S_PRUNE_CALLS, S_PRUNE_SESS};
    *deleted = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        sqlite3_stmt *s = stmt(st, order[i]);
        if (!s) return LC_ERR;
        sqlite3_bind_int64(s, 1, before);
        sqlite3_bind_int(s, 2, limit - *deleted);
        int rc = exec_done(st, s, "history pruning");
        if (rc != LC_OK) return rc;
        *deleted += sqlite3_changes(st->db);
        if (*deleted >= limit) break;
    }
    return LC_OK;
}

static int min_value(store *st, enum stmt_id id, int64_t *v, int *found)
{
    sqlite3_stmt *s = stmt(st, id);
    if (!s) return LC_ERR;
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL;
    if (*found) *v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? LC_OK : fail(st, rc, "schedule");
}

int store_next_due(store *st, int64_t expiry, int64_t ring, int64_t retention, int64_t *live,
                   int64_t *history)
{
    if (st->pg) return store_pg_next_due(st->pg, expiry, ring, retention, live, history);
    const struct {
        enum stmt_id id;
        int64_t add;
        int64_t *out;
    } q[] = {{S_DUE_IDLE, expiry, live}, {S_DUE_RING, ring, live}, {S_DUE_OLD, retention, history}};
    *live = *history = INT64_MAX;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        int64_t v;
        int found, rc = min_value(st, q[i].id, &v, &found);
        if (rc != LC_OK) return rc;
        if (found && v + q[i].add < *q[i].out) *q[i].out = v + q[i].add;
    }
    return LC_OK;
}

int store_stats(store *st, int64_t *sessions, int64_t *registered, int64_t *queued,
                int64_t *live_calls)
{
    if (st->pg) return store_pg_stats(st->pg, sessions, registered, queued, live_calls);
    sqlite3_stmt *s = stmt(st, S_STATS);
    if (!s) return LC_ERR;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *sessions = sqlite3_column_int64(s, 0);
        *registered = sqlite3_column_int64(s, 1);
        *queued = sqlite3_column_int64(s, 2);
        *live_calls = sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? LC_OK : fail(st, rc, "status");
}

/* ---- --check ------------------------------------------------------------------ */

int store_inspect(const char *path, store_info *info, char *why, size_t n)
{
    if (store_db_is_pg(path)) return store_pg_inspect(path, info, why, n);
    memset(info, 0, sizeof *info);
    info->latest = lc_migration_count;
    char dir[1024], who[96], wal[1100];
    lc_folder_of(path, dir, sizeof dir);
    describe_uid((unsigned)geteuid(), who, sizeof who);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT) {
            snprintf(why, n, "cannot look at %s as %s: %s", path, who, strerror(errno));
            return LC_ERR;
        }
        if (access(dir, W_OK | X_OK) != 0) {
            snprintf(why, n, "%s does not exist and its folder %s is not writable by %s (%s): "
                     "make the folder and give it to the user the backend runs as, or set "
                     "LONGCALL_DB to a file it may create", path, dir, who, strerror(errno));
            return LC_ERR;
        }
        return LC_OK;
    }
    info->exists = 1;
    info->bytes = (int64_t)sb.st_size;
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &sb) == 0) {
        info->wal_bytes = (int64_t)sb.st_size;
        info->bytes += info->wal_bytes;
    }
    if (access(path, R_OK | W_OK) != 0 || access(dir, W_OK | X_OK) != 0) {
        snprintf(why, n, "%s (or its folder %s, which holds its -wal and -shm files) is not "
                 "readable and writable by %s: give them to the user the backend runs as",
                 path, dir, who);
        return LC_ERR;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int rc = LC_ERR;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(why, n, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        snprintf(why, n, "%s is not a longcall database (%s): move it away (with its -wal and "
                 "-shm files) or restore a backup", path, sqlite3_errmsg(db));
        goto out;
    }
    info->version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    if (info->version > info->latest) {
        snprintf(why, n, "%s is from a newer longcall (schema %d, this build knows %d): upgrade "
                 "longcall or restore a backup", path, info->version, info->latest);
        goto out;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW || !sqlite3_column_text(s, 0) ||
        strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
        const char *said = s && sqlite3_column_text(s, 0) ? (const char *)sqlite3_column_text(s, 0)
                                                          : sqlite3_errmsg(db);
        snprintf(why, n, "%s is damaged (%s): restore a backup, or move it away (with its -wal "
                 "and -shm files) to start with an empty one", path, said);
        for (char *c = why; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
        goto out;
    }
    rc = LC_OK;
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}

int store_size(store *st, int64_t *db, int64_t *wal)
{
    *db = *wal = -1;
    if (st->pg) return store_pg_size(st->pg, db);
    struct stat sb;
    char w[4200];
    if (stat(st->path, &sb) != 0) return LC_ERR;
    *db = (int64_t)sb.st_size;
    snprintf(w, sizeof w, "%s-wal", st->path);
    *wal = stat(w, &sb) == 0 ? (int64_t)sb.st_size : 0;
    return LC_OK;
}
