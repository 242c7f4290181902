/* store_pg: the store interface of store.h on PostgreSQL through libpq
 * (store_pg.h). All its SQL is here, prepared once per connection (at first use)
 * (PQprepare) and run with PQexecPrepared; the schema is db/pg/NNN-*.sql.
 * It owns the connection, its transactions and the schema migrations; not
 * the wake-ups (wake.h, per machine) nor the dispatch (store.c). Each
 * function logs its own failure once, never a token or a password.
 *
 * How store.h's promises are kept here:
 * - Serialized writers: store_begin is BEGIN (READ COMMITTED) and then
 *   pg_advisory_xact_lock(PG_LOCK_WRITE), held to the commit. Every writer
 *   of the database takes it first, so between one's lock and its commit no
 *   other write transaction commits, and seq order is commit order. READ
 *   COMMITTED, not REPEATABLE READ: each statement then sees every commit
 *   before it -- in particular the previous lock holder's, which PostgreSQL
 *   makes visible before it releases the lock -- while a REPEATABLE READ
 *   snapshot would be taken by the lock statement itself, before the wait.
 *   With no other writer between lock and commit the statements of one
 *   transaction all see the same data: one consistent snapshot. One lock
 *   for the whole site is the simple correct choice. Its cost is the time
 *   it is held, the round trips from the lock to COMMIT: so BEGIN and the
 *   lock go as one simple query (PG_BEGIN_LOCK_W), and the transaction's
 *   pg_notify calls with its COMMIT (pg_commit_notify); a send is then
 *   BEGIN+lock, its statements, notify+COMMIT (BENCHMARKS.md has the
 *   figures before and after).
 * - Snapshots: store_begin_read is BEGIN ISOLATION LEVEL REPEATABLE READ
 *   READ ONLY: the snapshot of its first statement, which sees everything
 *   committed before store_begin_read was called (and maybe more).
 * - LC_BUSY: lock_timeout (= LONGCALL_BUSY_TIMEOUT) passed waiting for the
 *   write lock (SQLSTATE 55P03), a serialization failure or deadlock
 *   (40001, 40P01), a cancelled statement (57014), too many connections
 *   (53300) or a server starting or stopping (57P03). LC_FULL: disk full
 *   (53100), logged once per episode as on SQLite. LC_ERR: anything else.
 * - One connection per process, shared by its threads: each transaction
 *   holds mu from begin to commit or rollback (as store.c does). A lost
 *   connection is reset at the next begin (statements prepared again).
 *
 * Several nodes (issue 15, part 2): the wake file stays per machine; a
 * write transaction that posts wake slots also sends them with pg_notify
 * (store_pg_notify: kept and sent with the COMMIT; delivered at commit, in
 * commit order), and
 * one FastCGI process per machine LISTENs on a second connection
 * (store_listen_*, application_name longcall-listen), driven by notify.c,
 * which posts the slots into its machine's wake file and, after that
 * connection is lost and made again, posts every slot once. Why no wake-up
 * is lost, and what replaces the mailbox cache's slot check across
 * machines: wait.c, rule R8. Once-per-site jobs (ring time-outs, expiry,
 * pruning) run inside the write lock and re-read what they end, so two
 * nodes never both end one call; store_pg_begin_job also tries a per-job
 * advisory lock first (pg_try_advisory_xact_lock, PG_LOCK_JOB + job), so
 * that the second node does not even try while the first runs it. */

#include "store_pg.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated from db/pg/NNN-*.sql by the Makefile: migration i sets version i+1. */
extern const char *const lc_pg_migrations[];
extern const int lc_pg_migration_count;

/* Advisory lock keys (bigint, per database): "longcall" in ASCII, and one
 * more for migrations. */
#define PG_LOCK_WRITE "7813586462003126636"
#define PG_LOCK_MIGRATE "7813586462003126637"
/* store_begin_job: PG_LOCK_JOB + the job's number. */
#define PG_LOCK_JOB "7813586462003126640"

enum pg_stmt {
    P_BEGIN_W,
    P_LOCK_W,
    P_LOCK_JOB,
    P_BEGIN_R,
    P_COMMIT,
    P_ROLLBACK,
    P_SESS_NEW,
    P_SESS_BY_TOKEN,
    P_SESS_GET,
    P_SESS_BY_NAME,
    P_SESS_SET_NAME,
    P_NAME_RESERVED,
    P_NAME_UNRESERVE,
    P_SESS_ACK_MSGS,
    P_SESS_ACK_DROP,
    P_SESS_POLL,
    P_SESS_END,
    P_SESS_END_BATCHES,
    P_SESS_END_BLOCKS,
    P_SESS_END_DROP,
    P_NAMES,
    P_NAMES_RANGE,
    P_LIST_ALLOW,
    P_CALL_ALLOW,
    P_ICE_ALLOW,
    P_LIST_TAT,
    P_CALL_TAT,
    P_ICE_TAT,
    P_SESS_IDLE,
    P_ENQ_SET,
    P_ENQ_INSERT,
    P_ENQ_SHARE,
    P_FETCH,
    P_CALL_LIVE,
    P_CALL_NEW,
    P_CALL_ANSWER,
    P_CALL_END,
    P_CALL_RINGING,
    P_CALL_GET,
    P_CALL_PAIR,
    P_CALL_COOLDOWN,
    P_BLOCK_ADD,
    P_BLOCK_TRIM,
    P_BLOCKED,
    P_BATCH_MARK,
    P_BATCH_TRIM,
    P_BATCH_KNOWN,
    P_ADDR_COUNT,
    P_PRUNE_UNREG_MSGS,
    P_PRUNE_UNREG_SESS,
    P_DUE_UNREG,
    P_PRUNE_MSGS,
    P_PRUNE_CALLS,
    P_PRUNE_SESS,
    P_DUE_IDLE,
    P_DUE_RING,
    P_DUE_OLD,
    P_STATS,
    P_NOTIFY,
    P_COUNT
};

/* The statements of store.c's sql_text, in PostgreSQL's dialect: $n
 * parameters, greatest() for SQLite's scalar max(), booleans as integers,
 * RETURNING for new ids, ON CONFLICT DO NOTHING for INSERT OR IGNORE. */
static const char *const pg_sql[P_COUNT] = {
    [P_BEGIN_W] = "BEGIN ISOLATION LEVEL READ COMMITTED",
    [P_LOCK_W] = "SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE ")",
    [P_LOCK_JOB] = "SELECT pg_try_advisory_xact_lock(" PG_LOCK_JOB " + $1)::int",
    [P_BEGIN_R] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    [P_COMMIT] = "COMMIT",
    [P_ROLLBACK] = "ROLLBACK",
    [P_SESS_NEW] = "INSERT INTO sessions(token_hash, created, last_seen, addr)"
                   " VALUES ($1, $2, $2, $3) RETURNING id",
    [P_SESS_BY_TOKEN] = "SELECT id, coalesce(name, ''), next_seq, acked, poll_gen,"
                        " (ended IS NOT NULL)::int, last_seen FROM sessions WHERE token_hash = $1",
    [P_SESS_GET] = "SELECT id, coalesce(name, ''), next_seq, acked, poll_gen,"
                   " (ended IS NOT NULL)::int, last_seen FROM sessions WHERE id = $1",
    [P_SESS_BY_NAME] = "SELECT id FROM sessions WHERE name = $1 AND ended IS NULL",
    [P_SESS_SET_NAME] = "UPDATE sessions SET name = $2, reclaim_hash = $3 WHERE id = $1",
    [P_NAME_RESERVED] = "SELECT reclaim_hash, ended FROM sessions WHERE name = $1"
                        " AND reclaim_hash IS NOT NULL AND ended IS NOT NULL AND ended >= $2"
                        " AND end_reason = 'expired' ORDER BY ended DESC LIMIT 1",
    [P_NAME_UNRESERVE] = "UPDATE sessions SET reclaim_hash = NULL WHERE name = $1"
                         " AND reclaim_hash IS NOT NULL AND ended IS NOT NULL",
    [P_SESS_ACK_MSGS] = "UPDATE messages SET delivered = $4"
                        " WHERE session_id = $1 AND seq > $2 AND seq <= $3",
    [P_SESS_ACK_DROP] = "DELETE FROM messages WHERE session_id = $1 AND seq > $2 AND seq <= $3"
                        " AND transient IS NOT NULL",
    [P_SESS_POLL] = "UPDATE sessions SET acked = $2, last_seen = $3, poll_gen = $4 WHERE id = $1",
    [P_SESS_END] = "UPDATE sessions SET ended = $2, end_reason = $3::text, token_hash = NULL,"
                   " reclaim_hash = CASE WHEN $3::text = 'expired' THEN reclaim_hash END"
                   " WHERE id = $1 AND ended IS NULL",
    [P_SESS_END_BATCHES] = "DELETE FROM batches WHERE session_id = $1",
    [P_SESS_END_BLOCKS] = "DELETE FROM blocks WHERE session_id = $1",
    [P_SESS_END_DROP] = "DELETE FROM messages WHERE session_id = $1 AND seq > $2"
                        " AND transient IS NOT NULL",
    [P_NAMES] = "SELECT name FROM sessions WHERE ended IS NULL AND name IS NOT NULL"
                " AND name >= $1 ORDER BY name LIMIT $2",
    [P_NAMES_RANGE] = "SELECT name FROM sessions WHERE ended IS NULL AND name IS NOT NULL"
                      " AND name >= $1 AND name < $2 ORDER BY name LIMIT $3",
    /* GCRA, as store.c's S_LIST_ALLOW (store_rate_allow). */
    [P_LIST_ALLOW] = "UPDATE sessions SET list_tat = greatest(coalesce(list_tat, 0), $2) + $3"
                     " WHERE id = $1 AND ended IS NULL"
                     " AND greatest(coalesce(list_tat, 0), $2) - $2 <= $4",
    [P_CALL_ALLOW] = "UPDATE sessions SET call_tat = greatest(coalesce(call_tat, 0), $2) + $3"
                     " WHERE id = $1 AND ended IS NULL"
                     " AND greatest(coalesce(call_tat, 0), $2) - $2 <= $4",
    [P_ICE_ALLOW] = "UPDATE sessions SET ice_tat = greatest(coalesce(ice_tat, 0), $2) + $3"
                    " WHERE id = $1 AND ended IS NULL"
                    " AND greatest(coalesce(ice_tat, 0), $2) - $2 <= $4",
    [P_LIST_TAT] = "SELECT coalesce(list_tat, 0) FROM sessions WHERE id = $1",
    [P_CALL_TAT] = "SELECT coalesce(call_tat, 0) FROM sessions WHERE id = $1",
    [P_ICE_TAT] = "SELECT coalesce(ice_tat, 0) FROM sessions WHERE id = $1",
    [P_SESS_IDLE] = "SELECT id FROM sessions WHERE ended IS NULL AND last_seen < $1"
                    " ORDER BY last_seen LIMIT $2",
    [P_ENQ_SET] = "UPDATE sessions SET next_seq = $2 WHERE id = $1",
    [P_ENQ_INSERT] = "INSERT INTO messages(session_id, seq, sender, recipient, type, body,"
                     " call_id, created, transient, sender_sid)"
                     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    [P_ENQ_SHARE] = "SELECT count(*) FROM messages WHERE session_id = $1 AND seq > $2"
                    " AND sender_sid = $3",
    [P_FETCH] = "SELECT seq, body FROM messages WHERE session_id = $1 AND seq > $2"
                " ORDER BY seq LIMIT $3",
    [P_CALL_LIVE] =
        "SELECT id, caller_sid, callee_sid, caller, callee, (answered IS NOT NULL)::int"
        " FROM calls WHERE id = greatest("
        "(SELECT coalesce(max(id), 0) FROM calls WHERE caller_sid = $1 AND ended IS NULL),"
        " (SELECT coalesce(max(id), 0) FROM calls WHERE callee_sid = $1 AND ended IS NULL))",
    [P_CALL_NEW] = "INSERT INTO calls(caller_sid, callee_sid, caller, callee, placed)"
                   " VALUES ($1, $2, $3, $4, $5) RETURNING id",
    [P_CALL_ANSWER] = "UPDATE calls SET answered = $2 WHERE id = $1",
    [P_CALL_END] = "UPDATE calls SET ended = $2, outcome = $3 WHERE id = $1 AND ended IS NULL",
    [P_CALL_RINGING] = "SELECT id FROM calls WHERE ended IS NULL AND answered IS NULL"
                       " AND placed < $1 ORDER BY placed LIMIT $2",
    [P_CALL_GET] = "SELECT id, caller_sid, callee_sid, caller, callee,"
                   " (answered IS NOT NULL)::int, (ended IS NOT NULL)::int"
                   " FROM calls WHERE id = $1",
    [P_CALL_PAIR] = "SELECT count(*), min(placed) FROM calls"
                    " WHERE caller_sid = $1 AND callee_sid = $2 AND placed >= $3",
    [P_CALL_COOLDOWN] = "SELECT max(c.ended) FROM calls c JOIN sessions s ON s.id = c.caller_sid"
                        " WHERE c.callee_sid = $2 AND c.answered IS NULL AND c.ended IS NOT NULL"
                        " AND c.ended >= $3 AND (c.caller_sid = $1"
                        " OR s.addr = (SELECT addr FROM sessions WHERE id = $1))",
    [P_BLOCK_ADD] = "INSERT INTO blocks(session_id, caller_sid, caller, created)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, caller_sid)"
                    " DO UPDATE SET caller = excluded.caller, created = excluded.created",
    [P_BLOCK_TRIM] = "DELETE FROM blocks WHERE session_id = $1 AND caller_sid NOT IN"
                     " (SELECT caller_sid FROM blocks WHERE session_id = $1"
                     " ORDER BY created DESC, caller_sid DESC LIMIT $2)",
    [P_BLOCKED] = "SELECT EXISTS (SELECT 1 FROM blocks WHERE session_id = $1"
                  " AND (caller_sid = $2 OR caller = $3::text))::int",
    [P_BATCH_MARK] = "INSERT INTO batches(session_id, batch, created) VALUES ($1, $2, $3)"
                     " ON CONFLICT DO NOTHING",
    /* The newest $2 stay: both halves walk batches_age (db/pg/002), as
     * SQLite's S_BATCH_TRIM does. */
    [P_BATCH_TRIM] = "DELETE FROM batches WHERE session_id = $1 AND (created, batch) < (SELECT"
                     " created, batch FROM batches WHERE session_id = $1 ORDER BY created DESC,"
                     " batch DESC LIMIT 1 OFFSET $2::int - 1)",
    [P_BATCH_KNOWN] = "SELECT EXISTS (SELECT 1 FROM batches WHERE session_id = $1"
                      " AND batch = $2)::int",
    [P_ADDR_COUNT] = "SELECT (SELECT count(*) FROM sessions WHERE addr = $1 AND ended IS NULL),"
                     " (SELECT count(*) FROM sessions WHERE addr = $1 AND created >= $2),"
                     " (SELECT min(created) FROM sessions WHERE addr = $1 AND created >= $2)",
    /* The "never the highest id" term of store.c is not needed: an identity
     * never hands out an id twice. */
    [P_PRUNE_UNREG_MSGS] = "DELETE FROM messages WHERE session_id IN (SELECT id FROM sessions"
                           " WHERE ended < $1 AND name IS NULL ORDER BY ended LIMIT $2)",
    [P_PRUNE_UNREG_SESS] = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
                           " WHERE ended < $1 AND name IS NULL ORDER BY ended LIMIT $2)",
    [P_DUE_UNREG] = "SELECT min(ended) FROM sessions WHERE ended IS NOT NULL AND name IS NULL",
    [P_PRUNE_MSGS] = "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m"
                     " WHERE m.created < $1 AND (m.delivered IS NOT NULL OR NOT EXISTS"
                     " (SELECT 1 FROM sessions s WHERE s.id = m.session_id AND s.ended IS NULL))"
                     " ORDER BY m.id LIMIT $2)",
    [P_PRUNE_CALLS] = "DELETE FROM calls WHERE id IN (SELECT id FROM calls"
                      " WHERE ended < $1 LIMIT $2)",
    [P_PRUNE_SESS] = "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s"
                     " WHERE s.ended < $1"
                     " AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.caller_sid = s.id)"
                     " AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.callee_sid = s.id)"
                     " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id)"
                     " LIMIT $2)",
    [P_DUE_IDLE] = "SELECT min(last_seen) FROM sessions WHERE ended IS NULL",
    [P_DUE_RING] = "SELECT min(placed) FROM calls WHERE ended IS NULL AND answered IS NULL",
    [P_DUE_OLD] =
        "SELECT min(x) FROM (SELECT (SELECT created FROM messages ORDER BY id LIMIT 1) AS x"
        " UNION ALL SELECT min(ended) FROM calls WHERE ended IS NOT NULL"
        " UNION ALL SELECT min(ended) FROM sessions WHERE ended IS NOT NULL) AS due",
    [P_STATS] = "SELECT count(*), count(name), coalesce(sum(next_seq - acked), 0)::bigint,"
                " (SELECT count(*) FROM calls WHERE ended IS NULL)"
                " FROM sessions WHERE ended IS NULL",
    /* Delivered at commit, in commit order, to every LISTEN longcall. */
    [P_NOTIFY] = "SELECT pg_notify('longcall', $1)",
};

struct store_pg {
    PGconn *conn;
    char *what; /* the database for log lines (store_db_describe) */
    int busy_ms;
    int ready;                       /* the connection is set up (pg_connect) */
    unsigned char prepared[P_COUNT]; /* statement i is prepared on this connection */
    int in_txn;
    int wrote; /* this transaction is a write transaction */
    /* store_pg_notify's payloads of this transaction, sent with its COMMIT
     * (pg_commit_notify): "SELECT pg_notify('longcall','...');" each. */
    char *notes;
    size_t notes_len, notes_cap;
    /* store_pg_open_why: the failure, for one line saying what is wrong. */
    int opening;
    char sqlstate[6];
    char detail[256];
    int newer; /* the schema version of a database from a newer build */
    pthread_mutex_t mu;
};

/* The store whose mu this thread holds (as store.c's `held`). */
static _Thread_local store_pg *pg_held;

static void pg_unlock(store_pg *pg)
{
    if (pg_held == pg) {
        pg_held = NULL;
        pthread_mutex_unlock(&pg->mu);
    }
}

/* ---- parameters and results ------------------------------------------------ */

#define PG_MAX_PARAMS 10

/* The parameters of one statement, as libpq wants them: text, except
 * bytea values, passed as binary. */
typedef struct pg_params {
    const char *v[PG_MAX_PARAMS];
    int len[PG_MAX_PARAMS];
    int fmt[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][24];
    int n;
} pg_params;

static void p_int(pg_params *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)x);
    p->v[p->n] = p->num[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

/* NULL stays NULL. */
static void p_text(pg_params *p, const char *t)
{
    p->v[p->n] = t;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

/* NULL or "" is SQL NULL (store.c's bind_text_or_null). */
static void p_text_or_null(pg_params *p, const char *t)
{
    p_text(p, t && *t ? t : NULL);
}

static void p_null(pg_params *p)
{
    p_text(p, NULL);
}

static void p_blob(pg_params *p, const uint8_t *b, int n)
{
    p->v[p->n] = (const char *)b;
    p->len[p->n] = n;
    p->fmt[p->n++] = 1;
}

static int64_t v_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* ---- failures ------------------------------------------------------------------ */

/* A full-disk episode of this process, as in store.c. */
static atomic_int pg_full_episode;
/* The summary of "database busy" lines: at most one a minute per process. */
static lc_log_rate pg_busy_rate;
/* db_error lines: the first at once, then at most one a minute. */
static lc_log_rate pg_error_rate;
static atomic_long pg_full_refused;

static int sqlstate_is(const char *s, const char *code)
{
    return s && strcmp(s, code) == 0;
}

/* The failure of a statement (r: its result, or NULL when libpq gave
 * none): logs it once (quietly while opening: store_pg_open_why writes
 * the line) and returns LC_BUSY, LC_FULL or LC_ERR. */
static int pg_fail(store_pg *pg, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg || !*msg) msg = PQerrorMessage(pg->conn);
    char line[256];
    snprintf(line, sizeof line, "%s", msg && *msg ? msg : "no answer from the server");
    for (char *c = line; *c; c++) /* one log line */
        if (*c == '\n' || *c == '\r') *c = ' ';
    int busy = sqlstate_is(state, "55P03") || sqlstate_is(state, "40001") ||
               sqlstate_is(state, "40P01") || sqlstate_is(state, "57014") ||
               sqlstate_is(state, "53300") || sqlstate_is(state, "57P03");
    int full = sqlstate_is(state, "53100");
    long n;
    if (pg->opening) {
        snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state ? state : "");
        snprintf(pg->detail, sizeof pg->detail, "%s", line);
        return busy ? LC_BUSY : full ? LC_FULL : LC_ERR;
    }
    if (busy) {
        n = lc_log_due(&pg_busy_rate, 60000);
        if (n)
            lc_log_event(LC_LOG_WARN, "db_busy", LC_FIELDS(LC_NUM("count", n)),
                         "database busy during %s: %s: the request got 503 with Retry-After (%ld "
                         "such in this process since the previous line; at most one a minute); if "
                         "this lasts, look for what holds the lock (pg_locks) or raise "
                         "LONGCALL_BUSY_TIMEOUT",
                         what, line, n);
        return LC_BUSY;
    }
    if (full) {
        atomic_fetch_add(&pg_full_refused, 1);
        if (!atomic_exchange(&pg_full_episode, 1))
            lc_log_event(
                LC_LOG_ERROR, "storage_full", LC_FIELDS(LC_STR("db", pg->what)),
                "database %s: storage full (%s during %s): writes are refused with 503 until "
                "space is freed on the PostgreSQL server; logged once until a write works "
                "again",
                pg->what, line, what);
        return LC_FULL;
    }
    if (PQstatus(pg->conn) != CONNECTION_OK)
        lc_log_event(LC_LOG_ERROR, "db_connection_lost", LC_FIELDS(LC_STR("db", pg->what)),
                     "database %s: connection lost during %s (%s): made again at the "
                     "next transaction (if it is not, see PostgreSQL's log and that it runs)",
                     pg->what, what, line);
    else if ((n = lc_log_due(&pg_error_rate, 60000)) != 0)
        /* the first at once, then one a minute with the count: not a line
         * per request when every request fails */
        lc_log_event(LC_LOG_ERROR, "db_error",
                     LC_FIELDS(LC_STR("db", pg->what), LC_NUM("count", n)),
                     "database error during %s: %s%s%s; the request got 500 or 503 (%ld such in "
                     "this process since the previous line; at most one a minute; see "
                     "PostgreSQL's log for the statement)",
                     what, line, state ? "; SQLSTATE " : "", state ? state : "", n);
    return LC_ERR;
}

static void pg_full_over(store_pg *pg)
{
    if (atomic_load(&pg_full_episode) && atomic_exchange(&pg_full_episode, 0))
        lc_log_event(LC_LOG_INFO, "storage_ok", LC_FIELDS(LC_STR("db", pg->what)),
                     "database %s: writes work again (%ld refused while storage was full)",
                     pg->what, atomic_exchange(&pg_full_refused, 0));
}

/* Prepares statement id on this connection, once (its first use: a CGI
 * process, one request long, prepares only what that request runs).
 * LC_OK or a failure. */
static int pg_prepare(store_pg *pg, enum pg_stmt id, const char *name)
{
    if (pg->prepared[id]) return LC_OK;
    PGresult *r = PQprepare(pg->conn, name, pg_sql[id], 0, NULL);
    int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? LC_OK : pg_fail(pg, r, pg_sql[id]);
    PQclear(r);
    if (rc == LC_OK) pg->prepared[id] = 1;
    return rc;
}

/* Runs prepared statement id with p (NULL: none). Returns its result
 * (PGRES_COMMAND_OK or PGRES_TUPLES_OK; the caller PQclear()s it), or NULL
 * after pg_fail with *rc set to its code. */
static PGresult *run(store_pg *pg, enum pg_stmt id, const pg_params *p, const char *what, int *rc)
{
    char name[16];
    snprintf(name, sizeof name, "lc%d", (int)id);
    if ((*rc = pg_prepare(pg, id, name)) != LC_OK) return NULL;
    PGresult *r = PQexecPrepared(pg->conn, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                                 p ? p->fmt : NULL, 0);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        *rc = LC_OK;
        return r;
    }
    *rc = pg_fail(pg, r, what);
    PQclear(r);
    return NULL;
}

/* A statement whose rows are not needed. LC_OK or a failure; *changed
 * (when not NULL) is the number of rows it wrote. */
static int run_done(store_pg *pg, enum pg_stmt id, const pg_params *p, const char *what,
                    int *changed)
{
    int rc;
    PGresult *r = run(pg, id, p, what, &rc);
    if (!r) return rc;
    if (changed) *changed = atoi(PQcmdTuples(r));
    PQclear(r);
    return LC_OK;
}

/* A statement that answers one row of one integer (NULL: *found = 0). */
static int run_int(store_pg *pg, enum pg_stmt id, const pg_params *p, const char *what, int64_t *v,
                   int *found)
{
    int rc;
    PGresult *r = run(pg, id, p, what, &rc);
    if (!r) return rc;
    *found = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0);
    if (*found) *v = v_int(r, 0, 0);
    PQclear(r);
    return LC_OK;
}

/* ---- opening -------------------------------------------------------------------- */

void store_db_describe(const char *db, char *out, size_t n)
{
    if (!store_db_is_pg(db)) {
        snprintf(out, n, "%s", db);
        return;
    }
    /* Room for what is put in (at most 3 bytes more than it replaces). */
    if (strlen(db) + 8 > n) {
        snprintf(out, n, "(a PostgreSQL database: its name is too long to show)");
        return;
    }
    snprintf(out, n, "%s", db);
    char *p = strstr(out, "://");
    if (strncmp(out, "postgres", 8) == 0 && p) {
        /* scheme://user:password@host/...: the password runs from the
         * first ':' of the user part to its '@'. */
        char *user = p + 3, *at = strchr(user, '@'), *slash = strchr(user, '/');
        char *colon = strchr(user, ':');
        if (at && (!slash || at < slash) && colon && colon < at) {
            memmove(colon + 4, at, strlen(at) + 1);
            memcpy(colon, ":***", 4);
        }
    }
    /* password=... of a key=value string (spaces around '=' allowed), or
     * of a URI's query part. */
    for (p = strstr(out, "password"); p; p = strstr(p + 1, "password")) {
        char *v = p + 8;
        while (*v == ' ')
            v++;
        if (*v != '=') continue;
        v++;
        while (*v == ' ')
            v++;
        char *end = v;
        if (*v == '\'') { /* 'a quoted value' */
            end = v + 1;
            while (*end && *end != '\'')
                end += (*end == '\\' && end[1]) ? 2 : 1;
            if (*end) end++;
        } else {
            while (*end && *end != ' ' && *end != '&')
                end++;
        }
        if (end - v < 3 && strlen(out) + 3 >= n) { /* no room for the stars */
            snprintf(out, n, "(a PostgreSQL database: its name is too long to show)");
            return;
        }
        memmove(v + 3, end, strlen(end) + 1);
        memcpy(v, "***", 3);
    }
}

/* Runs sql (no parameters: set-up and schema only) through the simple
 * query protocol. LC_OK or a failure. */
static int pg_exec(store_pg *pg, const char *sql, const char *what)
{
    PGresult *r = PQexec(pg->conn, sql);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        PQclear(r);
        return LC_OK;
    }
    int rc = pg_fail(pg, r, what);
    PQclear(r);
    return rc;
}

/* Notices (NOTICE, WARNING from the server) go to the debug log. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    lc_log_event(LC_LOG_DEBUG, "db_notice", LC_NOFIELDS, "database notice: %.*s",
                 (int)strcspn(message, "\n"), message);
}

/* The connection's settings: the busy timeout as lock_timeout (the write
 * lock's wait), UTF-8 text. LC_OK or a failure. */
static int pg_session_setup(store_pg *pg)
{
    char sql[160];
    PQsetNoticeProcessor(pg->conn, pg_notice, NULL);
    const char *enc = PQparameterStatus(pg->conn, "server_encoding");
    if (!enc || strcmp(enc, "UTF8") != 0) {
        snprintf(pg->detail, sizeof pg->detail,
                 "the database's encoding is %s, not UTF8 (create it with ENCODING 'UTF8')",
                 enc ? enc : "unknown");
        return LC_ERR;
    }
    snprintf(sql, sizeof sql,
             "SET lock_timeout = %d; SET client_encoding = 'UTF8';"
             " SET client_min_messages = warning",
             pg->busy_ms);
    return pg_exec(pg, sql, "connection set-up");
}

/* The schema version recorded in longcall_schema (0: no row yet) into *v;
 * the table exists. LC_OK or a failure. */
static int pg_schema_version(store_pg *pg, int *v)
{
    PGresult *r = PQexec(pg->conn, "SELECT coalesce(max(version), 0) FROM longcall_schema");
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = pg_fail(pg, r, "schema version");
        PQclear(r);
        return rc;
    }
    *v = (int)v_int(r, 0, 0);
    PQclear(r);
    return LC_OK;
}

/* Brings the schema to lc_pg_migration_count: each pending migration in a
 * transaction of its own, under a session advisory lock that the first
 * process (of any node) to get there holds while the others wait for it
 * (lock_timeout bounds that wait: LC_BUSY, and they try again). Up to
 * date (the usual case): one query, no lock. */
static int pg_migrate(store_pg *pg)
{
    int version = 0, rc;
    PGresult *probe = PQexec(pg->conn, "SELECT to_regclass('longcall_schema') IS NOT NULL");
    int exists = probe && PQresultStatus(probe) == PGRES_TUPLES_OK &&
                 strcmp(PQgetvalue(probe, 0, 0), "t") == 0;
    if (!probe || PQresultStatus(probe) != PGRES_TUPLES_OK) {
        rc = pg_fail(pg, probe, "schema version");
        PQclear(probe);
        return rc;
    }
    PQclear(probe);
    if (exists) {
        rc = pg_schema_version(pg, &version);
        if (rc != LC_OK) return rc;
        if (version == lc_pg_migration_count) return LC_OK;
    }
    rc = pg_exec(pg, "SELECT pg_advisory_lock(" PG_LOCK_MIGRATE ")", "migration lock");
    if (rc != LC_OK) return rc;
    rc = pg_exec(pg, "CREATE TABLE IF NOT EXISTS longcall_schema (version integer NOT NULL)",
                 "schema migration");
    if (rc == LC_OK) rc = pg_schema_version(pg, &version);
    if (rc != LC_OK) goto out;
    if (version > lc_pg_migration_count) {
        pg->newer = version;
        rc = LC_ERR;
        goto out;
    }
    for (int v = version; v < lc_pg_migration_count; v++) {
        char mark[128];
        rc = pg_exec(pg, "BEGIN", "schema migration");
        if (rc == LC_OK) rc = pg_exec(pg, lc_pg_migrations[v], "schema migration");
        snprintf(mark, sizeof mark,
                 "DELETE FROM longcall_schema; INSERT INTO longcall_schema VALUES (%d)", v + 1);
        if (rc == LC_OK) rc = pg_exec(pg, mark, "schema migration");
        if (rc == LC_OK) rc = pg_exec(pg, "COMMIT", "schema migration");
        if (rc != LC_OK) {
            PQclear(PQexec(pg->conn, "ROLLBACK"));
            goto out;
        }
        lc_log_event(LC_LOG_INFO, "migrated",
                     LC_FIELDS(LC_STR("db", pg->what), LC_NUM("schema_version", v + 1)),
                     "database migrated to PostgreSQL schema version %d", v + 1);
    }
out:
    PQclear(PQexec(pg->conn, "SELECT pg_advisory_unlock(" PG_LOCK_MIGRATE ")"));
    return rc;
}

/* check (store_open_why's thorough check): PostgreSQL keeps its own pages
 * checked (data checksums, WAL replay); what SQLite's quick_check finds on
 * a file -- "not a database of ours, or damaged" -- is here a table of
 * ours that cannot be read. So every table is read once, in full (count):
 * a damaged page or a missing table fails it (once per process start). */
static int pg_check(store_pg *pg)
{
    static const char *const tables[] = {"sessions", "calls", "messages", "batches", "blocks"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
        int rc = pg_exec(pg, sql, "integrity check");
        if (rc != LC_OK) return rc;
    }
    return LC_OK;
}

/* Connects (or connects again) and sets the connection up: settings,
 * schema (when migrate); statements are prepared at their first use. LC_OK
 * or a failure (pg->detail and pg->sqlstate say which while opening). */
static int pg_connect(store_pg *pg, int migrate)
{
    pg->ready = 0;
    memset(pg->prepared, 0, sizeof pg->prepared);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        snprintf(pg->detail, sizeof pg->detail, "%s", PQerrorMessage(pg->conn));
        for (char *c = pg->detail; *c; c++)
            if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
        return LC_ERR;
    }
    int rc = pg_session_setup(pg);
    if (rc == LC_OK && migrate) rc = pg_migrate(pg);
    if (rc == LC_OK) pg->ready = 1;
    return rc;
}

/* The problem behind a failed open, from what was recorded. */
static store_problem pg_classify(const store_pg *pg, int lc)
{
    const char *s = pg->sqlstate;
    if (pg->newer) return STORE_NEWER;
    if (lc == LC_BUSY) return STORE_BUSY;
    if (lc == LC_FULL) return STORE_FULL;
    if (strncmp(s, "28", 2) == 0 || strcmp(s, "42501") == 0) return STORE_ACCESS;
    if (strncmp(s, "XX", 2) == 0) return STORE_CORRUPT;
    if (pg->conn && PQstatus(pg->conn) != CONNECTION_OK) {
        if (PQconnectionNeedsPassword(pg->conn) || strstr(pg->detail, "authentication failed") ||
            strstr(pg->detail, "no pg_hba.conf entry"))
            return STORE_ACCESS;
        if (strstr(pg->detail, "starting up") || strstr(pg->detail, "shutting down") ||
            strstr(pg->detail, "too many clients"))
            return STORE_BUSY;
    }
    return STORE_OTHER;
}

static char pg_open_memo[LC_LOG_MEMO];
static pthread_mutex_t pg_open_memo_mu = PTHREAD_MUTEX_INITIALIZER;

static void pg_log_open_problem(const store_pg *pg, store_problem p)
{
    const char *msg = pg->detail[0] ? pg->detail : "unknown error";
    pthread_mutex_lock(&pg_open_memo_mu);
    switch (p) {
    case STORE_BUSY:
        lc_log_changed(pg_open_memo, LC_LOG_WARN, "db_busy",
                       "database busy while opening %s (%s): requests get 503 until it opens",
                       pg->what, msg);
        break;
    case STORE_FULL:
        lc_log_changed(pg_open_memo, LC_LOG_ERROR, "storage_full",
                       "database %s: storage full while opening it (%s): free space on the "
                       "PostgreSQL server; requests get 503 until then",
                       pg->what, msg);
        break;
    case STORE_ACCESS:
        lc_log_changed(pg_open_memo, LC_LOG_ERROR, "db_not_writable",
                       "database %s refuses this backend (%s): give its role the right to "
                       "connect and to create and write tables in that database (or fix the "
                       "password in LONGCALL_DB, or pg_hba.conf)",
                       pg->what, msg);
        break;
    case STORE_CORRUPT:
        lc_log_changed(pg_open_memo, LC_LOG_ERROR, "db_corrupt",
                       "database %s is damaged (%s): see PostgreSQL's log; restore a backup",
                       pg->what, msg);
        break;
    case STORE_NEWER:
        lc_log_changed(pg_open_memo, LC_LOG_ERROR, "db_newer",
                       "database %s is from a newer longcall (PostgreSQL schema %d, this build "
                       "knows %d): upgrade longcall or restore a backup",
                       pg->what, pg->newer, lc_pg_migration_count);
        break;
    default:
        lc_log_changed(pg_open_memo, LC_LOG_ERROR, "db_open_failed",
                       "cannot open database %s: %s; requests get 503 until it opens: check "
                       "LONGCALL_DB and that PostgreSQL runs",
                       pg->what, msg);
        break;
    }
    pthread_mutex_unlock(&pg_open_memo_mu);
}

int store_pg_open_why(const char *conninfo, int busy_timeout_ms, int check, store_pg **out,
                      store_problem *why)
{
    store_pg *pg = xcalloc(1, sizeof *pg);
    char what[512];
    store_db_describe(conninfo, what, sizeof what);
    pg->what = xstrdup(what);
    pg->busy_ms = busy_timeout_ms;
    pg->opening = 1;
    pthread_mutex_init(&pg->mu, NULL);
    *why = STORE_FINE;
    /* Defaults first: LONGCALL_DB's own settings (expanded from dbname)
     * override them. A server that stops answering over TCP (a machine
     * gone, a network cut) must not hold a thread -- and with it the
     * store's mutex -- for the kernel's hours: keepalives find a silent
     * peer in about 25 s, tcp_user_timeout unacknowledged data in 30 s;
     * the statement then fails (503) and the next begin connects again. */
    const char *const keys[] = {"application_name", "connect_timeout", "keepalives",
                                "keepalives_idle", "keepalives_interval", "keepalives_count",
                                "tcp_user_timeout", "dbname", NULL};
    const char *const vals[] = {"longcall", "10", "1", "10", "5", "3", "30000", conninfo, NULL};
    pg->conn = PQconnectdbParams(keys, vals, 1);
    int rc = pg->conn ? pg_connect(pg, 1) : LC_ERR;
    if (rc == LC_OK && check) rc = pg_check(pg);
    if (rc != LC_OK) {
        *why = pg_classify(pg, rc);
        pg_log_open_problem(pg, *why);
        store_pg_close(pg);
        return *why == STORE_BUSY ? LC_BUSY : *why == STORE_FULL ? LC_FULL : LC_ERR;
    }
    pg->opening = 0;
    pthread_mutex_lock(&pg_open_memo_mu);
    pg_open_memo[0] = '\0';
    pthread_mutex_unlock(&pg_open_memo_mu);
    *out = pg;
    return LC_OK;
}

void store_pg_close(store_pg *pg)
{
    if (!pg) return;
    PQfinish(pg->conn);
    pthread_mutex_destroy(&pg->mu);
    free(pg->what);
    free(pg->notes);
    free(pg);
}

/* ---- transactions ------------------------------------------------------------- */

/* A connection lost since the last transaction (server restart, network)
 * is made again here, once per begin: LC_OK, or LC_ERR (logged once per
 * change of reason) and the caller answers 503. */
static int pg_ensure(store_pg *pg)
{
    if (PQstatus(pg->conn) == CONNECTION_OK && pg->ready) return LC_OK;
    static char memo[LC_LOG_MEMO];
    PQreset(pg->conn);
    pg->opening = 1;
    pg->detail[0] = '\0';
    int rc = pg_connect(pg, 0);
    pg->opening = 0;
    if (rc != LC_OK) {
        lc_log_changed(memo, LC_LOG_ERROR, "db_connection_lost",
                       "database %s: cannot connect again: %s; requests get 503 until it can "
                       "(is PostgreSQL running and reachable?)",
                       pg->what, pg->detail[0] ? pg->detail : "unknown error");
        return rc == LC_BUSY ? LC_BUSY : LC_ERR;
    }
    memo[0] = '\0';
    lc_log_event(LC_LOG_INFO, "db_connection_back", LC_FIELDS(LC_STR("db", pg->what)),
                 "database %s: connected again", pg->what);
    return LC_OK;
}

/* A plain write transaction's start in one round trip: BEGIN and the
 * write lock as one simple query (no parameters; a constant string).
 * PQexec answers the last statement's result, or the first failure's (the
 * statements after it are not run). */
#define PG_BEGIN_LOCK_W                                                                        \
    "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE ")"

/* Sends BEGIN (write: READ COMMITTED; else a read-only snapshot); lock:
 * BEGIN and the write lock together (PG_BEGIN_LOCK_W, one round trip). A
 * connection the server closed since the last transaction (PostgreSQL
 * restarted, an idle timeout) is only found out by using it: then, as
 * nothing ran in this transaction yet, it is made again and BEGIN sent
 * once more -- the request does not notice. A failure after BEGIN took
 * (the lock's lock_timeout) leaves the transaction open: the caller rolls
 * it back (PQtransactionStatus not PQTRANS_IDLE). */
static int pg_send_begin(store_pg *pg, int write, int lock)
{
    enum pg_stmt id = write ? P_BEGIN_W : P_BEGIN_R;
    char name[16];
    snprintf(name, sizeof name, "lc%d", (int)id);
    int rc = LC_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *r = NULL;
        if (lock) {
            r = PQexec(pg->conn, PG_BEGIN_LOCK_W);
            rc = r && PQresultStatus(r) == PGRES_TUPLES_OK ? LC_OK : LC_ERR;
        } else {
            rc = pg_prepare(pg, id, name);
            if (rc == LC_OK) {
                r = PQexecPrepared(pg->conn, name, 0, NULL, NULL, NULL, 0);
                rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? LC_OK : LC_ERR;
            }
        }
        if (rc == LC_OK || attempt || PQstatus(pg->conn) == CONNECTION_OK) {
            if (rc != LC_OK && r) rc = pg_fail(pg, r, lock ? "the write lock" : "begin");
            PQclear(r);
            return rc;
        }
        PQclear(r);
        pg->ready = 0; /* lost: made again, then once more */
        if ((rc = pg_ensure(pg)) != LC_OK) return rc;
    }
    return rc;
}

/* BEGIN, and for a write the write lock; job >= 0 first tries that job's
 * lock (store_begin_job): *mine 0 when another holds it (nothing begun). */
static int pg_begin(store_pg *pg, int write, int job, int *mine)
{
    pthread_mutex_lock(&pg->mu);
    pg_held = pg;
    pg->notes_len = 0;
    /* A plain write (no job lock to try first) takes BEGIN and the write
     * lock in one round trip. */
    int lock = write && job < 0;
    int rc = pg_ensure(pg);
    if (rc == LC_OK) rc = pg_send_begin(pg, write, lock);
    if (rc != LC_OK && lock && PQstatus(pg->conn) == CONNECTION_OK &&
        PQtransactionStatus(pg->conn) != PQTRANS_IDLE) {
        pg->in_txn = 1; /* BEGIN took, the lock did not: roll it back */
        store_pg_rollback(pg);
        return rc;
    }
    if (rc == LC_OK) {
        pg->in_txn = 1;
        pg->wrote = write;
        if (job >= 0) {
            pg_params p = {0};
            int64_t got = 0;
            int found = 0;
            p_int(&p, job);
            rc = run_int(pg, P_LOCK_JOB, &p, "a job's lock", &got, &found);
            *mine = rc == LC_OK && found && got == 1;
            if (rc == LC_OK && !*mine) {
                store_pg_rollback(pg);
                return LC_OK;
            }
        }
        if (rc == LC_OK && write && !lock)
            rc = run_done(pg, P_LOCK_W, NULL, "the write lock", NULL);
        if (rc != LC_OK) {
            store_pg_rollback(pg);
            return rc;
        }
        return LC_OK;
    }
    pg_unlock(pg);
    return rc;
}

int store_pg_begin(store_pg *pg)
{
    return pg_begin(pg, 1, -1, NULL);
}

int store_pg_begin_job(store_pg *pg, store_job job, int *mine)
{
    *mine = 0;
    return pg_begin(pg, 1, (int)job, mine);
}

int store_pg_begin_read(store_pg *pg)
{
    return pg_begin(pg, 0, -1, NULL);
}

/* COMMIT with this transaction's pending notifications in front of it,
 * one simple query ("SELECT pg_notify(...); ...; COMMIT": one round trip).
 * Returns COMMIT's result, or NULL after pg_fail with *rc set. */
static PGresult *pg_commit_notify(store_pg *pg, int *rc)
{
    static const char commit[] = "COMMIT";
    if (pg->notes_len + sizeof commit > pg->notes_cap) {
        pg->notes_cap = pg->notes_len + sizeof commit;
        pg->notes = xrealloc(pg->notes, pg->notes_cap);
    }
    memcpy(pg->notes + pg->notes_len, commit, sizeof commit);
    PGresult *r = PQexec(pg->conn, pg->notes);
    pg->notes_len = 0;
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
        *rc = LC_OK;
        return r;
    }
    *rc = pg_fail(pg, r, "commit");
    PQclear(r);
    return NULL;
}

int store_pg_commit(store_pg *pg)
{
    int rc;
    PGresult *r = pg->notes_len ? pg_commit_notify(pg, &rc) : run(pg, P_COMMIT, NULL, "commit", &rc);
    if (r) {
        /* COMMIT of a transaction that failed earlier answers ROLLBACK. */
        if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
            if (lc_log_due(&pg_error_rate, 60000))
                lc_log_event(LC_LOG_ERROR, "db_error", LC_FIELDS(LC_STR("db", pg->what)),
                             "database error during commit: the transaction was rolled back "
                             "(an earlier statement failed: see the db_error lines); the "
                             "request got 500 or 503");
            rc = LC_ERR;
        }
        PQclear(r);
    }
    if (rc == LC_OK && pg->wrote) pg_full_over(pg);
    if (rc != LC_OK && PQtransactionStatus(pg->conn) != PQTRANS_IDLE) {
        store_pg_rollback(pg);
        return rc;
    }
    pg->in_txn = 0;
    pg_unlock(pg);
    return rc;
}

void store_pg_rollback(store_pg *pg)
{
    if (pg_held != pg) return;
    pg->notes_len = 0;
    if (pg->in_txn && PQtransactionStatus(pg->conn) != PQTRANS_IDLE &&
        PQstatus(pg->conn) == CONNECTION_OK) {
        int rc;
        PQclear(run(pg, P_ROLLBACK, NULL, "rollback", &rc));
    }
    pg->in_txn = 0;
    pg_unlock(pg);
}

/* ---- sessions ------------------------------------------------------------------ */

int store_pg_session_create_addr(store_pg *pg, const uint8_t hash[32], int64_t now,
                                 const char *addr, int64_t *id)
{
    pg_params p = {0};
    p_blob(&p, hash, 32);
    p_int(&p, now);
    p_text(&p, addr);
    int rc;
    PGresult *r = run(pg, P_SESS_NEW, &p, "session create", &rc);
    if (!r) return rc;
    *id = v_int(r, 0, 0);
    PQclear(r);
    return LC_OK;
}

static int pg_read_session(store_pg *pg, enum pg_stmt id, const pg_params *p, store_session *out,
                           const char *what)
{
    int rc;
    PGresult *r = run(pg, id, p, what, &rc);
    if (!r) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return LC_NOTFOUND;
    }
    out->id = v_int(r, 0, 0);
    store_copy_name(out->name, PQgetvalue(r, 0, 1));
    out->last_seq = v_int(r, 0, 2);
    out->acked = v_int(r, 0, 3);
    out->poll_gen = v_int(r, 0, 4);
    out->ended = (int)v_int(r, 0, 5);
    out->last_seen = v_int(r, 0, 6);
    PQclear(r);
    return LC_OK;
}

int store_pg_session_by_token(store_pg *pg, const uint8_t hash[32], store_session *out)
{
    pg_params p = {0};
    p_blob(&p, hash, 32);
    return pg_read_session(pg, P_SESS_BY_TOKEN, &p, out, "session lookup");
}

int store_pg_session_get(store_pg *pg, int64_t id, store_session *out)
{
    pg_params p = {0};
    p_int(&p, id);
    return pg_read_session(pg, P_SESS_GET, &p, out, "session read");
}

int store_pg_session_by_name(store_pg *pg, const char *name, int64_t *id)
{
    pg_params p = {0};
    p_text(&p, name);
    int found, rc = run_int(pg, P_SESS_BY_NAME, &p, "name lookup", id, &found);
    if (rc != LC_OK) return rc;
    return found ? LC_OK : LC_NOTFOUND;
}

int store_pg_session_set_name_key(store_pg *pg, int64_t id, const char *name,
                                  const uint8_t reclaim[32])
{
    pg_params p = {0};
    p_int(&p, id);
    p_text_or_null(&p, name);
    if (reclaim)
        p_blob(&p, reclaim, 32);
    else
        p_null(&p);
    return run_done(pg, P_SESS_SET_NAME, &p, "register", NULL);
}

/* bytea in text form ("\x" and hex digits) into out (n bytes): 0 when it
 * is exactly that long. */
static int pg_unhex(const char *t, uint8_t *out, size_t n)
{
    if (strncmp(t, "\\x", 2) != 0 || strlen(t + 2) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(t + 2 + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

int store_pg_name_reserved(store_pg *pg, const char *name, int64_t since, uint8_t reclaim[32],
                           int64_t *ended)
{
    pg_params p = {0};
    p_text(&p, name);
    p_int(&p, since);
    int rc;
    PGresult *r = run(pg, P_NAME_RESERVED, &p, "name reservation lookup", &rc);
    if (!r) return rc;
    int found = PQntuples(r) > 0 && pg_unhex(PQgetvalue(r, 0, 0), reclaim, 32) == 0;
    if (found) *ended = v_int(r, 0, 1);
    PQclear(r);
    return found ? LC_OK : LC_NOTFOUND;
}

int store_pg_name_unreserve(store_pg *pg, const char *name)
{
    pg_params p = {0};
    p_text(&p, name);
    return run_done(pg, P_NAME_UNRESERVE, &p, "name reservation", NULL);
}

int store_pg_session_poll(store_pg *pg, int64_t id, int64_t after, int64_t now, int bump,
                          store_mailbox *left)
{
    store_session cur;
    int rc = store_pg_session_get(pg, id, &cur);
    if (rc != LC_OK) return rc;
    if (cur.ended) return LC_NOTFOUND;
    if (after > cur.last_seq) after = cur.last_seq;
    if (after > cur.acked) {
        pg_params p = {0};
        p_int(&p, id);
        p_int(&p, cur.acked);
        p_int(&p, after);
        rc = run_done(pg, P_SESS_ACK_DROP, &p, "acknowledge", NULL);
        if (rc != LC_OK) return rc;
        p_int(&p, now);
        rc = run_done(pg, P_SESS_ACK_MSGS, &p, "acknowledge", NULL);
        if (rc != LC_OK) return rc;
    }
    int64_t gen = cur.poll_gen + (bump ? 1 : 0), acked = after > cur.acked ? after : cur.acked;
    pg_params p = {0};
    p_int(&p, id);
    p_int(&p, acked);
    p_int(&p, now);
    p_int(&p, gen);
    rc = run_done(pg, P_SESS_POLL, &p, "poll", NULL);
    if (rc == LC_OK && left)
        *left = (store_mailbox){.seq = cur.last_seq, .acked = acked, .poll_gen = gen};
    return rc;
}

int store_pg_session_end(store_pg *pg, int64_t id, int64_t now, const char *reason)
{
    store_session cur;
    int rc = store_pg_session_get(pg, id, &cur);
    if (rc == LC_NOTFOUND || (rc == LC_OK && cur.ended)) return LC_OK;
    if (rc != LC_OK) return rc;
    pg_params p = {0};
    p_int(&p, id);
    p_int(&p, cur.acked);
    rc = run_done(pg, P_SESS_END_DROP, &p, "session end", NULL);
    if (rc != LC_OK) return rc;
    p = (pg_params){0};
    p_int(&p, id);
    p_int(&p, now);
    p_text(&p, reason);
    rc = run_done(pg, P_SESS_END, &p, "session end", NULL);
    if (rc != LC_OK) return rc;
    p = (pg_params){0};
    p_int(&p, id);
    rc = run_done(pg, P_SESS_END_BATCHES, &p, "session end", NULL);
    if (rc != LC_OK) return rc;
    return run_done(pg, P_SESS_END_BLOCKS, &p, "session end", NULL);
}

int store_pg_names(store_pg *pg, const char *prefix, const char *after, int max,
                   void (*fn)(void *arg, const char *name), void *arg, int *more)
{
    char hi[4 * LC_NAME_MAX + 2];
    if (!prefix) prefix = "";
    if (after && !*after) after = NULL;
    *more = 0;
    /* As store.c's store_names: names >= lo, one equal to after skipped. */
    const char *lo = after && strcmp(after, prefix) > 0 ? after : prefix;
    int ranged = *prefix && store_prefix_bound(prefix, hi, sizeof hi) == 0;
    pg_params p = {0};
    p_text(&p, lo);
    if (ranged) p_text(&p, hi);
    p_int(&p, max + 2);
    int rc;
    PGresult *r = run(pg, ranged ? P_NAMES_RANGE : P_NAMES, &p, "list", &rc);
    if (!r) return rc;
    int n = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        if (after && strcmp(name, after) <= 0) continue;
        if (strncmp(name, prefix, strlen(prefix)) != 0) break;
        if (n == max) {
            *more = 1;
            break;
        }
        fn(arg, name);
        n++;
    }
    PQclear(r);
    return LC_OK;
}

/* The first column of every row into ids (at most max), *n of them. */
static int pg_collect_ids(store_pg *pg, enum pg_stmt id, int64_t before, int64_t *ids, int max,
                          int *n, const char *what)
{
    pg_params p = {0};
    p_int(&p, before);
    p_int(&p, max);
    int rc;
    *n = 0;
    PGresult *r = run(pg, id, &p, what, &rc);
    if (!r) return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        ids[(*n)++] = v_int(r, i, 0);
    PQclear(r);
    return LC_OK;
}

int store_pg_sessions_idle(store_pg *pg, int64_t before, int64_t *ids, int max, int *n)
{
    return pg_collect_ids(pg, P_SESS_IDLE, before, ids, max, n, "expiry scan");
}

static const struct {
    enum pg_stmt allow, tat;
    const char *what;
} pg_rates[] = {
    [STORE_RATE_LIST] = {P_LIST_ALLOW, P_LIST_TAT, "list rate"},
    [STORE_RATE_CALL] = {P_CALL_ALLOW, P_CALL_TAT, "call rate"},
    [STORE_RATE_ICE] = {P_ICE_ALLOW, P_ICE_TAT, "iceServers rate"},
};

int store_pg_rate_allow(store_pg *pg, store_rate kind, int64_t session_id, int64_t now,
                        int64_t interval_ms, int64_t burst_ms, int *allowed, int64_t *wait_ms)
{
    pg_params p = {0};
    p_int(&p, session_id);
    p_int(&p, now);
    p_int(&p, interval_ms);
    p_int(&p, burst_ms);
    int changed = 0, rc = run_done(pg, pg_rates[kind].allow, &p, pg_rates[kind].what, &changed);
    if (rc != LC_OK) return rc;
    *allowed = changed > 0;
    if (*allowed || !wait_ms) return LC_OK;
    p = (pg_params){0};
    p_int(&p, session_id);
    int64_t tat = 0;
    int found;
    rc = run_int(pg, pg_rates[kind].tat, &p, pg_rates[kind].what, &tat, &found);
    if (rc != LC_OK) return rc;
    *wait_ms = tat - burst_ms - now;
    if (*wait_ms < 1) *wait_ms = 1;
    return LC_OK;
}

/* ---- mailboxes ------------------------------------------------------------------ */

int store_pg_enqueue(store_pg *pg, const store_msg *m, int quota, int share, store_mailbox *out)
{
    store_session to;
    int rc = store_pg_session_get(pg, m->session_id, &to);
    if (rc != LC_OK) return rc;
    int64_t next = to.last_seq + 1, unacked = to.last_seq - to.acked;
    if (unacked >= quota) return LC_QUOTA;
    if (m->sender_sid && unacked >= share) {
        pg_params p = {0};
        p_int(&p, m->session_id);
        p_int(&p, to.acked);
        p_int(&p, m->sender_sid);
        int64_t mine = 0;
        int found;
        rc = run_int(pg, P_ENQ_SHARE, &p, "mailbox share", &mine, &found);
        if (rc != LC_OK) return rc;
        if (mine >= share) return LC_SHARE;
    }
    pg_params p = {0};
    p_int(&p, m->session_id);
    p_int(&p, next);
    rc = run_done(pg, P_ENQ_SET, &p, "enqueue", NULL);
    if (rc != LC_OK) return rc;
    p_text_or_null(&p, m->sender);
    p_text_or_null(&p, m->recipient);
    p_text(&p, m->type);
    p_text(&p, m->body);
    if (m->call_id > 0)
        p_int(&p, m->call_id);
    else
        p_null(&p);
    p_int(&p, m->created);
    if (m->transient)
        p_int(&p, 1);
    else
        p_null(&p);
    if (m->sender_sid)
        p_int(&p, m->sender_sid);
    else
        p_null(&p);
    rc = run_done(pg, P_ENQ_INSERT, &p, "enqueue", NULL);
    if (rc == LC_OK)
        *out = (store_mailbox){.seq = next, .acked = to.acked, .poll_gen = to.poll_gen};
    return rc;
}

int store_pg_fetch(store_pg *pg, int64_t session_id, int64_t after, int max_count, size_t max_bytes,
                   store_rows *out, int64_t *last_seq)
{
    out->n = 0;
    out->text.len = 0;
    *last_seq = after;
    pg_params p = {0};
    p_int(&p, session_id);
    p_int(&p, after);
    p_int(&p, max_count);
    int rc;
    PGresult *r = run(pg, P_FETCH, &p, "fetch", &rc);
    if (!r) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        size_t len = (size_t)PQgetlength(r, i, 1);
        /* As store.c: the first always goes, then a hard limit. */
        if (out->n && out->text.len - (size_t)out->n + len > max_bytes) break;
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->row = xrealloc(out->row, (size_t)out->cap * sizeof *out->row);
        }
        out->row[out->n].seq = v_int(r, i, 0);
        out->row[out->n].len = len;
        buf_append(&out->text, PQgetvalue(r, i, 1), len);
        buf_append(&out->text, "", 1);
        out->n++;
        *last_seq = out->row[out->n - 1].seq;
    }
    PQclear(r);
    size_t off = 0;
    for (int i = 0; i < out->n; i++) {
        out->row[i].body = out->text.data + off;
        off += out->row[i].len + 1;
    }
    return LC_OK;
}

/* ---- calls ---------------------------------------------------------------------- */

static int pg_read_call(store_pg *pg, enum pg_stmt id, int64_t key, store_call *out, int *ended,
                        const char *what)
{
    pg_params p = {0};
    p_int(&p, key);
    int rc;
    PGresult *r = run(pg, id, &p, what, &rc);
    if (!r) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return LC_NOTFOUND;
    }
    out->id = v_int(r, 0, 0);
    out->caller_sid = v_int(r, 0, 1);
    out->callee_sid = v_int(r, 0, 2);
    store_copy_name(out->caller, PQgetvalue(r, 0, 3));
    store_copy_name(out->callee, PQgetvalue(r, 0, 4));
    out->answered = (int)v_int(r, 0, 5);
    if (ended) *ended = (int)v_int(r, 0, 6);
    PQclear(r);
    return LC_OK;
}

int store_pg_call_live(store_pg *pg, int64_t session_id, store_call *out)
{
    return pg_read_call(pg, P_CALL_LIVE, session_id, out, NULL, "call lookup");
}

int store_pg_call_get(store_pg *pg, int64_t call_id, store_call *out, int *ended)
{
    return pg_read_call(pg, P_CALL_GET, call_id, out, ended, "call read");
}

int store_pg_call_create(store_pg *pg, const store_call *c, int64_t now, int64_t *id)
{
    pg_params p = {0};
    p_int(&p, c->caller_sid);
    p_int(&p, c->callee_sid);
    p_text(&p, c->caller);
    p_text(&p, c->callee);
    p_int(&p, now);
    int found, rc = run_int(pg, P_CALL_NEW, &p, "call create", id, &found);
    return rc;
}

int store_pg_call_answer(store_pg *pg, int64_t call_id, int64_t now)
{
    pg_params p = {0};
    p_int(&p, call_id);
    p_int(&p, now);
    return run_done(pg, P_CALL_ANSWER, &p, "call answer", NULL);
}

int store_pg_call_end(store_pg *pg, int64_t call_id, int64_t now, const char *outcome)
{
    pg_params p = {0};
    p_int(&p, call_id);
    p_int(&p, now);
    p_text(&p, outcome);
    return run_done(pg, P_CALL_END, &p, "call end", NULL);
}

int store_pg_calls_unanswered(store_pg *pg, int64_t before, int64_t *ids, int max, int *n)
{
    return pg_collect_ids(pg, P_CALL_RINGING, before, ids, max, n, "ring timeout scan");
}

int store_pg_call_pair(store_pg *pg, int64_t caller_sid, int64_t callee_sid, int64_t since,
                       int64_t *count, int64_t *oldest)
{
    pg_params p = {0};
    p_int(&p, caller_sid);
    p_int(&p, callee_sid);
    p_int(&p, since);
    int rc;
    PGresult *r = run(pg, P_CALL_PAIR, &p, "call pair rate", &rc);
    if (!r) return rc;
    *count = v_int(r, 0, 0);
    *oldest = PQgetisnull(r, 0, 1) ? since : v_int(r, 0, 1);
    PQclear(r);
    return LC_OK;
}

int store_pg_call_cooldown(store_pg *pg, int64_t caller_sid, int64_t callee_sid, int64_t since,
                           int64_t *ended)
{
    pg_params p = {0};
    p_int(&p, caller_sid);
    p_int(&p, callee_sid);
    p_int(&p, since);
    int found, rc = run_int(pg, P_CALL_COOLDOWN, &p, "call cooldown", ended, &found);
    if (rc != LC_OK) return rc;
    return found ? LC_OK : LC_NOTFOUND;
}

/* ---- blocks and batch ids ------------------------------------------------------- */

int store_pg_block_add(store_pg *pg, int64_t session_id, int64_t caller_sid, const char *caller,
                       int64_t now, int max)
{
    pg_params p = {0};
    p_int(&p, session_id);
    p_int(&p, caller_sid);
    p_text(&p, caller);
    p_int(&p, now);
    int rc = run_done(pg, P_BLOCK_ADD, &p, "block", NULL);
    if (rc != LC_OK) return rc;
    p = (pg_params){0};
    p_int(&p, session_id);
    p_int(&p, max);
    return run_done(pg, P_BLOCK_TRIM, &p, "block trim", NULL);
}

int store_pg_blocked(store_pg *pg, int64_t session_id, int64_t caller_sid, const char *caller,
                     int *blocked)
{
    pg_params p = {0};
    p_int(&p, session_id);
    p_int(&p, caller_sid);
    p_text_or_null(&p, caller);
    int64_t v = 0;
    int found, rc = run_int(pg, P_BLOCKED, &p, "block lookup", &v, &found);
    if (rc == LC_OK) *blocked = v != 0;
    return rc;
}

int store_pg_batch_mark(store_pg *pg, int64_t session_id, const char *batch, int64_t now, int *seen)
{
    pg_params p = {0};
    p_int(&p, session_id);
    p_text(&p, batch);
    p_int(&p, now);
    int changed = 0, rc = run_done(pg, P_BATCH_MARK, &p, "batch id", &changed);
    if (rc != LC_OK) return rc;
    *seen = changed == 0;
    if (*seen) return LC_OK;
    p = (pg_params){0};
    p_int(&p, session_id);
    p_int(&p, STORE_BATCHES_KEPT);
    return run_done(pg, P_BATCH_TRIM, &p, "batch id trim", NULL);
}

int store_pg_batch_known(store_pg *pg, int64_t session_id, const char *batch, int *known)
{
    pg_params p = {0};
    p_int(&p, session_id);
    p_text(&p, batch);
    int64_t v = 0;
    int found, rc = run_int(pg, P_BATCH_KNOWN, &p, "batch id lookup", &v, &found);
    *known = rc == LC_OK && v != 0;
    return rc;
}

int store_pg_addr_sessions(store_pg *pg, const char *addr, int64_t since, int64_t *live,
                           int64_t *recent, int64_t *oldest)
{
    pg_params p = {0};
    p_text(&p, addr);
    p_int(&p, since);
    int rc;
    PGresult *r = run(pg, P_ADDR_COUNT, &p, "client address count", &rc);
    if (!r) return rc;
    *live = v_int(r, 0, 0);
    *recent = v_int(r, 0, 1);
    *oldest = PQgetisnull(r, 0, 2) ? since : v_int(r, 0, 2);
    PQclear(r);
    return LC_OK;
}

/* ---- maintenance and figures ---------------------------------------------------- */

int store_pg_prune_unregistered(store_pg *pg, int64_t before, int limit, int *deleted)
{
    static const enum pg_stmt order[] = {P_PRUNE_UNREG_MSGS, P_PRUNE_UNREG_SESS};
    *deleted = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        pg_params p = {0};
        p_int(&p, before);
        p_int(&p, limit);
        int changed = 0;
        int rc = run_done(pg, order[i], &p, "pruning unregistered sessions", &changed);
        if (rc != LC_OK) return rc;
        if (order[i] == P_PRUNE_UNREG_SESS) *deleted = changed;
    }
    return LC_OK;
}

int store_pg_next_unregistered(store_pg *pg, int64_t *ended)
{
    int found, rc = run_int(pg, P_DUE_UNREG, NULL, "schedule", ended, &found);
    if (rc == LC_OK && !found) *ended = INT64_MAX;
    return rc;
}

int store_pg_prune(store_pg *pg, int64_t before, int limit, int *deleted)
{
    static const enum pg_stmt order[] = {P_PRUNE_MSGS, P_PRUNE_CALLS, P_PRUNE_SESS};
    *deleted = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        pg_params p = {0};
        p_int(&p, before);
        p_int(&p, limit - *deleted);
        int changed = 0;
        int rc = run_done(pg, order[i], &p, "history pruning", &changed);
        if (rc != LC_OK) return rc;
        *deleted += changed;
        if (*deleted >= limit) break;
    }
    return LC_OK;
}

int store_pg_next_due(store_pg *pg, int64_t expiry, int64_t ring, int64_t retention, int64_t *live,
                      int64_t *history)
{
    const struct {
        enum pg_stmt id;
        int64_t add;
        int64_t *out;
    } q[] = {{P_DUE_IDLE, expiry, live}, {P_DUE_RING, ring, live}, {P_DUE_OLD, retention, history}};
    *live = *history = INT64_MAX;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        int64_t v;
        int found, rc = run_int(pg, q[i].id, NULL, "schedule", &v, &found);
        if (rc != LC_OK) return rc;
        if (found && v + q[i].add < *q[i].out) *q[i].out = v + q[i].add;
    }
    return LC_OK;
}

int store_pg_stats(store_pg *pg, int64_t *sessions, int64_t *registered, int64_t *queued,
                   int64_t *live_calls)
{
    int rc;
    PGresult *r = run(pg, P_STATS, NULL, "status", &rc);
    if (!r) return rc;
    *sessions = v_int(r, 0, 0);
    *registered = v_int(r, 0, 1);
    *queued = v_int(r, 0, 2);
    *live_calls = v_int(r, 0, 3);
    PQclear(r);
    return LC_OK;
}

/* ---- cross-node wake-ups -------------------------------------------------------- */

/* The payload may go into a simple query's text as a literal: only the
 * characters notify.c builds it from (hex digits, decimal digits, spaces),
 * none of which needs quoting. */
static int payload_plain(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || *s == ' ')) return 0;
    return 1;
}

int store_pg_notify(store_pg *pg, const char *payload)
{
    if (!payload_plain(payload)) { /* not ours: a parameter, now */
        pg_params p = {0};
        p_text(&p, payload);
        return run_done(pg, P_NOTIFY, &p, "notify", NULL);
    }
    /* Kept for the COMMIT (pg_commit_notify): NOTIFY is delivered at commit
     * wherever in the transaction it runs, so sending it with the COMMIT
     * saves a round trip and changes nothing. Payload plain (checked
     * above): safe between the quotes of a literal. */
    static const char head[] = "SELECT pg_notify('longcall','", tail[] = "');";
    size_t n = strlen(payload), need = pg->notes_len + sizeof head + n + sizeof tail;
    if (need + sizeof "COMMIT" > pg->notes_cap) {
        pg->notes_cap = 2 * (need + sizeof "COMMIT");
        pg->notes = xrealloc(pg->notes, pg->notes_cap);
    }
    char *w = pg->notes + pg->notes_len;
    memcpy(w, head, sizeof head - 1);
    w += sizeof head - 1;
    memcpy(w, payload, n);
    w += n;
    memcpy(w, tail, sizeof tail); /* with its NUL */
    pg->notes_len = (size_t)(w - pg->notes) + sizeof tail - 1;
    return LC_OK;
}

struct store_listener {
    PGconn *conn;
};

int store_listen_open(const char *db, store_listener **out)
{
    static char memo[LC_LOG_MEMO];
    char what[512];
    store_db_describe(db, what, sizeof what);
    /* As store_pg_open_why's (keepalives: a silent server is found out in
     * about 25 s), named so that an operator (and the tests) can tell it
     * from the transaction connection in pg_stat_activity. */
    const char *const keys[] = {"application_name", "connect_timeout", "keepalives",
                                "keepalives_idle", "keepalives_interval", "keepalives_count",
                                "tcp_user_timeout", "dbname", NULL};
    const char *const vals[] = {"longcall-listen", "10", "1", "10", "5", "3", "30000", db, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    PGresult *r = NULL;
    int rc = LC_ERR;
    if (c && PQstatus(c) == CONNECTION_OK) r = PQexec(c, "LISTEN longcall");
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK || PQsetnonblocking(c, 1) != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", c ? PQerrorMessage(c) : "out of memory");
        for (char *x = why; *x; x++)
            if (*x == '\n' || *x == '\r' || *x == '\t') *x = ' ';
        lc_log_changed(memo, LC_LOG_ERROR, "listener_failed",
                       "database %s: cannot listen for other nodes' wake-ups: %s; trying again "
                       "(meanwhile a poll held here waits for its timeout when another node "
                       "writes); check that PostgreSQL runs and takes connections",
                       what, why);
        goto out;
    }
    memo[0] = '\0';
    *out = xcalloc(1, sizeof **out);
    (*out)->conn = c;
    c = NULL; /* now *out's */
    rc = LC_OK;
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int store_listen_fd(const store_listener *l)
{
    return PQsocket(l->conn);
}

int store_listen_read(store_listener *l, void (*fn)(void *arg, const char *payload), void *arg)
{
    int ok = PQconsumeInput(l->conn);
    PGnotify *n;
    while ((n = PQnotifies(l->conn)) != NULL) {
        fn(arg, n->extra);
        PQfreemem(n);
    }
    return ok && PQstatus(l->conn) == CONNECTION_OK ? LC_OK : LC_ERR;
}

void store_listen_close(store_listener *l)
{
    if (!l) return;
    PQfinish(l->conn);
    free(l);
}

/* ---- --check ------------------------------------------------------------------ */

/* One line of conn's last error into why. */
static void pg_why(PGconn *c, const PGresult *r, const char *what, char *why, size_t n)
{
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg) msg = c ? PQerrorMessage(c) : "out of memory";
    snprintf(why, n, "database %s: %s", what, msg);
    for (char *x = why; *x; x++)
        if (*x == '\n' || *x == '\r' || *x == '\t') *x = ' ';
}

int store_pg_inspect(const char *conninfo, store_info *info, char *why, size_t n)
{
    memset(info, 0, sizeof *info);
    info->latest = lc_pg_migration_count;
    char what[512];
    store_db_describe(conninfo, what, sizeof what);
    const char *const keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *const vals[] = {"longcall-check", "10", conninfo, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    PGresult *r = NULL;
    int rc = LC_ERR;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        pg_why(c, NULL, what, why, n);
        goto out;
    }
    r = PQexec(c, "SELECT pg_database_size(current_database()),"
                  " to_regclass('longcall_schema') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        pg_why(c, r, what, why, n);
        goto out;
    }
    info->bytes = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    info->exists = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    r = NULL;
    if (info->exists) {
        r = PQexec(c, "SELECT coalesce(max(version), 0) FROM longcall_schema");
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            pg_why(c, r, what, why, n);
            goto out;
        }
        info->version = atoi(PQgetvalue(r, 0, 0));
    }
    if (info->version > info->latest) {
        snprintf(why, n, "database %s is from a newer longcall (schema %d, this build knows %d): "
                 "upgrade longcall or restore a backup", what, info->version, info->latest);
        goto out;
    }
    rc = LC_OK;
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int store_pg_size(store_pg *pg, int64_t *db)
{
    pthread_mutex_lock(&pg->mu);
    PGresult *r = PQexec(pg->conn, "SELECT pg_database_size(current_database())");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) *db = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    pthread_mutex_unlock(&pg->mu);
    return ok ? LC_OK : LC_ERR;
}
