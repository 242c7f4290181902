/* store: the signalling state -- sessions, their mailboxes, calls, batch
 * ids and the history -- as transactions that read and write rows. This
 * header is the store's interface: everything above the section "SQLite
 * only" is what a second implementation (PostgreSQL, issue 15) must
 * provide with the same contracts; fcgi/store.c implements it on SQLite.
 * The store knows SQL only: no HTTP, no JSON (a message body is text it
 * keeps and gives back as it was given; wire.c builds the answers), no
 * protocol rules (proto.c decides what to queue) and no wake-ups (wait.c). */
#ifndef LC_STORE_H
#define LC_STORE_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ==== The interface ====================================================
 *
 * Return codes (enum lc_rc). Each function says which "no" it returns
 * (LC_NOTFOUND, LC_QUOTA). "A failure" below means LC_ERR, LC_BUSY or
 * LC_FULL, logged once by the store where it happened; the caller rolls
 * the transaction back and answers 503 (wire_db_sentence).
 *   LC_BUSY: the state stayed locked by someone else past the busy timeout.
 *   LC_FULL: the storage is full. Nothing of the failed write is kept and
 *     the store stays usable: after store_rollback the next transaction
 *     works once there is space again. Logged once per episode per
 *     process (one ERROR line at the first refusal, one INFO line when a
 *     write commits again), not per refusal.
 *   LC_ERR: anything else (I/O, damaged data, a bug).
 *
 * Mailboxes. Each session has one, a sequence: the n-th message queued for
 * a session has seq n (1, 2, 3, ... without gaps). Per session:
 *   last_seq  the seq of the last message queued (0: none yet);
 *   acked     every seq <= acked was delivered (a poll's after= said so);
 *             acked <= last_seq, and neither ever decreases;
 *   poll_gen  counts polls that made an older held poll of the session
 *             yield (store_session_poll with bump): a held poll that finds
 *             poll_gen changed answers at once with what it has.
 * A message is kept until it is delivered (or its session ended) and older
 * than the history retention (store_prune); a transient one (store_msg)
 * only until it is delivered (acknowledged) or its session ends.
 *
 * Ordering, on which the wait path (wait.c, R1-R6) builds its guarantees:
 * - Write transactions (store_begin) are serialized: between the begin and
 *   the commit of one, no other write transaction of any process commits.
 * - A transaction (store_begin_read or store_begin) reads one consistent
 *   snapshot: it sees every transaction whose store_commit returned LC_OK
 *   before its store_begin* was called -- so a send's enqueue is visible to
 *   every snapshot begun after its commit -- and of any other transaction
 *   all or nothing. (It may see more than that: SQLite takes a deferred
 *   snapshot at the first read.)
 * - seq order is commit order: a snapshot that sees message n of a mailbox
 *   sees messages 1..n-1 too (unless pruned after delivery). */

#define LC_NAME_MAX 64

typedef struct store store;

typedef struct store_session {
    int64_t id;
    char name[LC_NAME_MAX + 1]; /* "" until registered */
    int64_t last_seq;           /* the seq of the last message queued (0: none) */
    int64_t acked;              /* every seq <= acked is delivered */
    int64_t poll_gen;           /* see "Mailboxes" above */
    int ended;                  /* the session is over (closed or expired) */
    int64_t last_seen;          /* last recorded poll, wall ms (the expiry clock) */
} store_session;

/* A mailbox as a transaction sees it. */
typedef struct store_mailbox {
    int64_t seq;      /* its last_seq */
    int64_t acked;    /* every seq <= acked was delivered */
    int64_t poll_gen; /* the session's poll_gen */
} store_mailbox;

typedef struct store_call {
    int64_t id;
    int64_t caller_sid, callee_sid;
    char caller[LC_NAME_MAX + 1], callee[LC_NAME_MAX + 1];
    int answered;
} store_call;

/* --- Which store ----------------------------------------------------------
 * LONGCALL_DB names the state: a PostgreSQL database (fcgi/store_pg.c) when
 * it is a libpq URI (postgresql://, postgres://) or a key=value string
 * with dbname= or host=; anything else is a SQLite file (fcgi/store.c).
 * store_open_why picks by this; every function below works on both. */

/* 1 when db (LONGCALL_DB) names a PostgreSQL database, else 0. */
static inline int store_db_is_pg(const char *db)
{
    if (!db) return 0;
    if (strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0) return 1;
    return strstr(db, "dbname=") != NULL || strstr(db, "host=") != NULL;
}

/* Writes db (LONGCALL_DB) into out (n bytes) fit for a log line: a password
 * in a PostgreSQL URI (user:PASSWORD@) or key=value string (password=...)
 * replaced by ***; a SQLite path as it is. */
void store_db_describe(const char *db, char *out, size_t n);

/* What `longcall --check` reports about the state named by path, read
 * without changing it (store_inspect). */
typedef struct store_info {
    int exists;      /* 0: not made yet (the first start creates it) */
    int version;     /* its schema version (0 when it does not exist) */
    int latest;      /* the schema version this build migrates to */
    int64_t bytes;   /* its size: SQLite's file (with its WAL), PostgreSQL's database */
    int64_t wal_bytes; /* SQLite's -wal file (0 for PostgreSQL) */
} store_info;

/* Looks at the state named by path without creating, migrating or
 * writing anything (a SQLite file is opened read-only and checked with
 * PRAGMA quick_check; a PostgreSQL database is connected to and its
 * longcall_schema read). Returns LC_OK with *info filled, or LC_ERR with
 * one sentence in why (n bytes) saying what is wrong and what to do:
 * a file or folder the current user may not write, a damaged file, a
 * schema newer than this build, a server that cannot be reached. Logs
 * nothing. */
int store_inspect(const char *path, store_info *info, char *why, size_t n);

/* The database's size now: SQLite's file and its -wal (stat, no query);
 * PostgreSQL's pg_database_size (*wal -1: not ours). LC_OK, or a failure
 * (both -1). */
int store_size(store *st, int64_t *db, int64_t *wal);

/* --- Opening and closing ------------------------------------------------ */

/* What keeps the state from being opened (store_open_why). */
typedef enum store_problem {
    STORE_FINE = 0,
    STORE_BUSY,    /* locked by another process past the busy timeout */
    STORE_FULL,    /* no space left on its storage */
    STORE_ACCESS,  /* this user may not read and write it */
    STORE_CORRUPT, /* not a database of ours, or damaged */
    STORE_NEWER,   /* its schema is from a newer longcall */
    STORE_OTHER,   /* anything else (the log says what) */
} store_problem;

/* Opens the state named by path (created and brought to the current schema
 * if needed). A writer waits up to busy_timeout_ms for another's lock
 * before LC_BUSY. With check, a thorough integrity check runs too (once per
 * process start, never per request: it reads everything). Returns LC_OK and
 * sets *out (free with store_close), or LC_ERR / LC_BUSY / LC_FULL; *why
 * says which problem (STORE_FINE on success), and the failure is logged as
 * one line naming what is wrong and what to do -- at debug level only when
 * that line is the same as the last failure logged (a caller retrying every
 * few seconds logs once per change). One store is one connection, shared
 * by the threads of a process (see Transactions). */
int store_open_why(const char *path, int busy_timeout_ms, int check, store **out,
                   store_problem *why);

/* store_open_why without the check and without *why. */
int store_open(const char *path, int busy_timeout_ms, store **out);

/* Closes the connection and frees st. NULL is fine. */
void store_close(store *st);

/* --- Transactions -------------------------------------------------------
 * Every function below these four runs inside a transaction of this thread;
 * those marked (write) need a write transaction. A transaction belongs to
 * the thread that began it: other threads' store_begin* wait until its
 * commit or rollback. */

/* Begins a write transaction, taking the write lock at once so that a
 * batch never fails half-way on a lock. LC_OK, or a failure (LC_BUSY: the
 * lock was not had within the busy timeout). */
int store_begin(store *st);
/* The background jobs that must run once per site, not once per node
 * (store_begin_job). */
typedef enum store_job { STORE_JOB_EXPIRE = 0, STORE_JOB_PRUNE = 1 } store_job;
/* store_begin for one run of job. On a shared (PostgreSQL) store it first
 * claims the job's own lock for the transaction (an advisory lock, tried
 * without waiting, before the write lock): when another node holds it --
 * runs that job this very moment -- nothing is begun and *mine is 0 (the
 * caller skips this run: the other node does the work, and whatever is
 * left is seen by the next run, which re-reads). Else as store_begin, with
 * *mine 1. On SQLite: store_begin, *mine 1. */
int store_begin_job(store *st, store_job job, int *mine);
/* Begins a read-only snapshot. LC_OK or a failure. */
int store_begin_read(store *st);
/* Commits (a snapshot just ends). LC_OK, or a failure after which the
 * transaction is rolled back (nothing of it is kept). */
int store_commit(store *st);
/* Ends this thread's transaction without keeping anything. Safe when this
 * thread has none open (after a failed begin, say): it then does nothing,
 * even if another thread has one. */
void store_rollback(store *st);

/* --- Sessions -------------------------------------------------------------
 * Token hashes are 32-byte SHA-256 digests of the session token (the token
 * itself is never stored). */

/* (write) Creates a live session with last_seen = now. LC_OK (sets *id, never
 * the id of a session still stored) or a failure. */
int store_session_create(store *st, const uint8_t hash[32], int64_t now, int64_t *id);
/* (write) The same, recording the client address key addr (addr.h; NULL:
 * none) the per-address limits count (store_addr_sessions). */
int store_session_create_addr(store *st, const uint8_t hash[32], int64_t now, const char *addr,
                              int64_t *id);
/* Sessions of client address addr: *live, those not ended; *recent, those
 * created at or after since (ended or not); *oldest, the earliest creation
 * among the recent ones (since when there is none). LC_OK or a failure. */
int store_addr_sessions(store *st, const char *addr, int64_t since, int64_t *live, int64_t *recent,
                        int64_t *oldest);
/* The live session whose token hashes to hash: LC_OK (fills *out),
 * LC_NOTFOUND (none, or it ended: its hash is forgotten then), a failure. */
int store_session_by_token(store *st, const uint8_t hash[32], store_session *out);
/* Session id, live or ended: LC_OK (fills *out), LC_NOTFOUND, a failure. */
int store_session_get(store *st, int64_t id, store_session *out);
/* The live session registered as name: LC_OK (sets *id), LC_NOTFOUND, a
 * failure. */
int store_session_by_name(store *st, const char *name, int64_t *id);
/* (write) Sets the registered name of session id; the caller found the
 * name free in this transaction (store_session_by_name). The session has
 * no reclaim key then. LC_OK or a failure. */
int store_session_set_name(store *st, int64_t id, const char *name);
/* (write) The same, with the SHA-256 of the reclaim key registerResponse
 * gave the holder (NULL: none; the key itself is never stored). When the
 * session later ends by expiry (store_session_end "expired"), the name
 * stays reserved for that key (store_name_reserved); any other end
 * forgets the hash. LC_OK or a failure. */
int store_session_set_name_key(store *st, int64_t id, const char *name, const uint8_t reclaim[32]);
/* The newest reservation of name: a session registered as name with a
 * reclaim key that expired at or after since (wall ms; the caller passes
 * now - the grace period) and whose reservation was not released
 * (store_name_unreserve). LC_OK (fills reclaim with the key's SHA-256 and
 * *ended with when that session expired), LC_NOTFOUND, or a failure. */
int store_name_reserved(store *st, const char *name, int64_t since, uint8_t reclaim[32],
                        int64_t *ended);
/* (write) Releases every reservation of name (ended sessions forget their
 * reclaim hash), as a register that takes the name does. LC_OK or a
 * failure. */
int store_name_unreserve(store *st, const char *name);
/* (write) Records a poll of the live session id: acknowledges every message
 * with seq <= after (after is capped at last_seq; acked never decreases),
 * marking them delivered at now (transient ones, store_msg, are deleted);
 * sets last_seen = now when it is STORE_SEEN_EVERY_MS or more older (the
 * expiry clock, recorded to within that: rewriting it moves the session in
 * the index of live sessions by last_seen, one more page for the WAL on
 * every exchange); with bump, adds one to poll_gen. Sets *left (may be
 * NULL) to the mailbox as this leaves it: last_seq, acked and poll_gen.
 * known (may be NULL): the session's row as this write transaction read it
 * (store_session_by_token), when nothing has changed its last_seq, acked,
 * poll_gen, last_seen or ended since -- then it is not read again (SQLite
 * only: on PostgreSQL the row is always read). LC_OK, LC_NOTFOUND (no such
 * live session; nothing written) or a failure. */
#define STORE_SEEN_EVERY_MS 1000
int store_session_poll(store *st, const store_session *known, int64_t id, int64_t after,
                       int64_t now, int bump, store_mailbox *left);
/* (write) Ends session id (if live): ended = now, its reason ("closed",
 * "expired"), its token hash forgotten (and its reclaim hash too, unless
 * the reason is "expired": the name's reservation), its batch ids, its
 * blocks (store_block_add) and its transient messages not yet delivered
 * deleted. Its name, calls and other messages
 * stay, as history. LC_OK or a failure. */
int store_session_end(store *st, int64_t id, int64_t now, const char *reason);
/* Calls fn(arg, name) for the names registered by live sessions that start
 * with prefix (NULL or "": any) and sort after `after` (NULL or "": from
 * the first), in byte order (strcmp), at most max of them. Sets *more to 1
 * when further such names exist (ask again with after = the last name
 * given), else 0. Reads about max rows, never all names. LC_OK or a
 * failure. */
int store_names(store *st, const char *prefix, const char *after, int max,
                void (*fn)(void *arg, const char *name), void *arg, int *more);
/* The per-session rates of store_rate_allow, each on its own allowance
 * clock in the session's row: list (db/002 list_tat), call (db/005
 * call_tat), iceServers (db/007 ice_tat). */
typedef enum store_rate { STORE_RATE_LIST, STORE_RATE_CALL, STORE_RATE_ICE } store_rate;
/* (write) The allowance of one more `kind` for the live session
 * session_id, a rate of one per interval_ms with bursts: allowed while the
 * session's clock of that kind is at most burst_ms ahead of now, and then
 * the clock moves one interval on (GCRA; burst_ms = (n - 1) * interval_ms
 * lets n in at once). One statement, so two processes cannot both take the
 * last allowance; kept with the session, so it holds across processes.
 * Sets *allowed (1 or 0; nothing written when 0) and, when 0 and wait_ms
 * is not NULL, *wait_ms to how long until one is allowed again (at least
 * 1). LC_OK or a failure. */
int store_rate_allow(store *st, store_rate kind, int64_t session_id, int64_t now,
                     int64_t interval_ms, int64_t burst_ms, int *allowed, int64_t *wait_ms);
/* Fills ids (at most max, oldest last_seen first) with the live sessions
 * whose last_seen < before; sets *n. LC_OK or a failure. */
int store_sessions_idle(store *st, int64_t before, int64_t *ids, int max, int *n);

/* --- Mailboxes ------------------------------------------------------------ */

/* One message to put in a mailbox. Every pointer is borrowed. */
typedef struct store_msg {
    int64_t session_id;    /* whose mailbox */
    const char *sender;    /* sender's name; NULL: the server */
    const char *recipient; /* recipient's name; NULL: unregistered */
    const char *type;      /* the message id (history only) */
    const char *body;      /* the message as the poll will give it back (text) */
    int64_t call_id;       /* 0: none */
    int64_t created;       /* wall ms */
    int transient;         /* no history: deleted once acknowledged, or when its
                              session ends (a reply without user content) */
    int64_t sender_sid;    /* the sending session, whose unacknowledged messages in
                              this mailbox count against share (store_enqueue);
                              0: the server, or a reply to the recipient itself */
} store_msg;

/* (write) Appends m to the mailbox of m->session_id (live or ended: a
 * message to an ended session is kept as history) with seq last_seq + 1.
 * Returns LC_OK and fills *out (out->seq is m's seq; acked and poll_gen
 * as this transaction sees them), LC_QUOTA when the mailbox already holds
 * quota unacknowledged messages (last_seq - acked >= quota; nothing
 * written), LC_SHARE when m->sender_sid is not 0 and share of those
 * unacknowledged messages came from m->sender_sid (nothing written),
 * LC_NOTFOUND (no such session) or a failure. The caller picks quota and
 * share per message (proto.c: the mailbox rule). Counting a sender's
 * messages costs a read of at most quota rows, and only when the mailbox
 * holds share or more unacknowledged messages at all. */
int store_enqueue(store *st, const store_msg *m, int quota, int share, store_mailbox *out);

/* Messages read from a mailbox: row[0..n-1] in seq order. Each body points
 * into text (NUL-terminated, len bytes before the NUL), and stays valid
 * until the next store_fetch into the same rows or store_rows_free. Start
 * from a zeroed struct; reusing one for the next fetch is fine. */
typedef struct store_row {
    int64_t seq;
    const char *body; /* as store_enqueue was given it */
    size_t len;
} store_row;
typedef struct store_rows {
    store_row *row;
    int n, cap;
    buf text; /* the bodies, one after the other */
} store_rows;

/* Replaces the contents of *out with the messages of session_id with
 * seq > after, in seq order: at most max_count of them, whose bodies add up
 * to at most max_bytes -- except a first one longer than that alone, so
 * that every message can be delivered (at least one, if there is one). Sets *last_seq to the seq of the last row, or to after when there
 * are none. They are the messages after+1, after+2, ... unless some were
 * pruned (only delivered ones are: old history, and transient messages
 * once acknowledged -- so a fetch below acked may skip seqs). LC_OK or a
 * failure (then out->n = 0). */
int store_fetch(store *st, int64_t session_id, int64_t after, int max_count, size_t max_bytes,
                store_rows *out, int64_t *last_seq);

/* Frees what rows holds and zeroes it (not rows itself). */
void store_rows_free(store_rows *rows);

/* --- Calls ------------------------------------------------------------------
 * A call is live from store_call_create until store_call_end; a session
 * has at most one live call (proto checks before it creates one). */

/* The live call of session_id, as caller or callee (the newest, should
 * there be two): LC_OK (fills *out), LC_NOTFOUND, a failure. */
int store_call_live(store *st, int64_t session_id, store_call *out);
/* (write) Creates a ringing call from c's sids and names, placed at now.
 * LC_OK (sets *id) or a failure. */
int store_call_create(store *st, const store_call *c, int64_t now, int64_t *id);
/* (write) Marks call_id answered at now. LC_OK or a failure. */
int store_call_answer(store *st, int64_t call_id, int64_t now);
/* (write) Ends call_id at now with outcome (completed, rejected, no answer,
 * cancelled, caller left, callee left) if it is live; an ended call is left
 * as it is. LC_OK or a failure. */
int store_call_end(store *st, int64_t call_id, int64_t now, const char *outcome);
/* Fills ids (at most max, oldest first) with the live, unanswered calls
 * placed before `before`; sets *n. LC_OK or a failure. */
int store_calls_unanswered(store *st, int64_t before, int64_t *ids, int max, int *n);
/* Call call_id, live or ended: LC_OK (fills *out, and *ended when ended is
 * not NULL), LC_NOTFOUND, a failure. */
int store_call_get(store *st, int64_t call_id, store_call *out, int *ended);
/* Calls placed by session caller_sid to session callee_sid at or after
 * since (answered or not, live or ended): their number into *count and the
 * earliest one's placed into *oldest (since when there is none). LC_OK or a
 * failure. */
int store_call_pair(store *st, int64_t caller_sid, int64_t callee_sid, int64_t since,
                    int64_t *count, int64_t *oldest);
/* The latest ring of callee_sid that ended without an answer (rejected,
 * cancelled, no answer, a party left) at or after since, placed by session
 * caller_sid or by another session of the same client address (the address
 * store_session_create_addr recorded; a session without one counts alone).
 * LC_OK (sets *ended, when it ended), LC_NOTFOUND (none), or a failure. */
int store_call_cooldown(store *st, int64_t caller_sid, int64_t callee_sid, int64_t since,
                        int64_t *ended);

/* --- Blocks ----------------------------------------------------------------
 * A session (the callee) may block callers: a session, together with the
 * name it called with. Blocks are no history: they go when the blocking
 * session ends (store_session_end). */

/* (write) session_id blocks caller_sid, which called as caller (a name),
 * at now (a second block of the same session renews it with this name).
 * Then only the newest max blocks of session_id are kept (the oldest go).
 * LC_OK or a failure. */
int store_block_add(store *st, int64_t session_id, int64_t caller_sid, const char *caller,
                    int64_t now, int max);
/* Whether session_id blocked session caller_sid, or any session that
 * called it as name caller (NULL or "": not looked at): *blocked 1 or 0.
 * LC_OK or a failure. */
int store_blocked(store *st, int64_t session_id, int64_t caller_sid, const char *caller,
                  int *blocked);

/* --- Batch ids ------------------------------------------------------------ */

/* Batch ids kept per session: at least the newest STORE_BATCHES_KEPT; a
 * retry of an older batch would be applied again (a client retries its
 * latest batch only). SQLite lets STORE_BATCHES_SLACK more accumulate and
 * then trims them together (PostgreSQL trims on every batch). */
#define STORE_BATCHES_KEPT 64
#define STORE_BATCHES_SLACK 32

/* (write) Records batch id `batch` of session_id (so that a retried send is
 * applied once), and forgets the session's batch ids older than its newest
 * STORE_BATCHES_KEPT (on SQLite once STORE_BATCHES_SLACK more are kept).
 * LC_OK, with *seen = 1 when it had been recorded before (nothing written)
 * and 0 when it is new; or a failure. */
int store_batch_mark(store *st, int64_t session_id, const char *batch, int64_t now, int *seen);
/* Sets *known to 1 when batch id `batch` of session_id is recorded (one
 * of its newest STORE_BATCHES_KEPT), else 0. LC_OK or a failure. */
int store_batch_known(store *st, int64_t session_id, const char *batch, int *known);

/* --- Maintenance and figures --------------------------------------------- */

/* (write) History pruning: deletes at most limit rows, in this order:
 * messages created before `before` that were delivered or whose session
 * ended (never one still waiting for a live session), calls ended before
 * it, and sessions ended before it that no call or message refers to.
 * Sets *deleted. LC_OK or a failure. */
int store_prune(store *st, int64_t before, int limit, int *deleted);

/* (write) Deletes at most limit sessions that never registered a name and
 * ended before `before` (they are in no call), with every message of their
 * mailboxes; sets *deleted to the sessions deleted. LC_OK or a failure. */
int store_prune_unregistered(store *st, int64_t before, int limit, int *deleted);
/* The earliest end of a session that never registered (INT64_MAX: none)
 * into *ended. LC_OK or a failure. */
int store_next_unregistered(store *st, int64_t *ended);

/* When something is next due, in wall ms: *live, the earliest of a live
 * session's last_seen + expiry and an unanswered call's placed + ring;
 * *history, the oldest message, ended call or ended session's time +
 * retention (it may be unprunable yet: a message waiting for a live
 * session). INT64_MAX when there is none. LC_OK or a failure. */
int store_next_due(store *st, int64_t expiry, int64_t ring, int64_t retention, int64_t *live,
                   int64_t *history);

/* Figures for /rtc/status: live sessions, those registered, messages queued
 * for them and not acknowledged (sum of last_seq - acked), live calls.
 * LC_OK or a failure. */
int store_stats(store *st, int64_t *sessions, int64_t *registered, int64_t *queued,
                int64_t *live_calls);

/* ==== SQLite only ======================================================
 * Not part of the interface: how store.c keeps it on SQLite, and what a
 * caller may tune there.
 * - path is a database file; the schema is db/NNN-*.sql, compiled in and
 *   applied as migrations (PRAGMA user_version), under an exclusive lock
 *   taken only when one is pending.
 * - WAL mode, synchronous=NORMAL (a commit survives the process, not a
 *   power loss before the next checkpoint), 1 KiB pages for a new file,
 *   journal_size_limit 64 MiB, and the -wal/-shm files kept when the last
 *   connection closes (SQLITE_FCNTL_PERSIST_WAL): a full disk can still
 *   open and read the database.
 * - Files are reached through walvfs (walvfs.h) when it registers.
 * - One connection per process, its threads queueing on a mutex per
 *   transaction (the page cache stays warm); other processes' writers meet
 *   in a busy handler that sleeps 20 us to 1 ms until busy_timeout_ms.
 * - store_open_why's check is PRAGMA quick_check(1).
 * - store_begin is BEGIN IMMEDIATE: that is what serializes writers.
 * - A sender's share of a mailbox (store_enqueue) is counted over
 *   messages.sender_sid (db/005) in the range seq > acked of
 *   UNIQUE(session_id, seq), without an index of its own (no extra page
 *   write per message), and only when the mailbox holds share or more.
 * - Wake-ups are not the store's (wake.h: a shared-memory file on this
 *   machine); a store shared by several machines adds notify.c
 *   (store_notify below).
 * On a PostgreSQL store (store_db_is_pg) the four functions below do
 * nothing: PostgreSQL checkpoints by itself (store_checkpoint_wanted and
 * _take answer 0, store_checkpoint LC_OK). How store_pg.c keeps the
 * interface's promises is at the top of that file. */

/* Moves WAL checkpoints off this connection's commits: once the WAL holds
 * `bytes` of pages after a commit, store_checkpoint_wanted(st) becomes 1
 * (until store_checkpoint_take), so that the background jobs (jobs.c) run
 * store_checkpoint on another connection. SQLite's own checkpoint on
 * commit stays as a backstop at ten times that size. Without this, every
 * few hundred commits one request pays for copying the WAL back and two
 * fsyncs. */
void store_defer_checkpoints(store *st, int bytes);
/* 1 when st's WAL grew past its store_defer_checkpoints size since the
 * last store_checkpoint_take; store_checkpoint_take also resets it. */
int store_checkpoint_wanted(store *st);
int store_checkpoint_take(store *st);

/* Runs a passive checkpoint (never blocks writers). LC_OK, or LC_BUSY when
 * another checkpoint runs, or LC_FULL / LC_ERR. */
int store_checkpoint(store *st);

/* --- Wake-ups between machines (PostgreSQL only) -------------------------
 * A SQLite store is one machine's: its wake file carries every wake-up. A
 * PostgreSQL store may be shared by several machines (nodes); a write
 * transaction then also notifies the others (store_notify), and one
 * FastCGI process per machine listens on a connection of its own
 * (store_listen_*, driven by notify.c). */

/* 1 when st is a store other machines may share (PostgreSQL), else 0. */
int store_shared(const store *st);

/* Sends payload (at most 7999 bytes) to every listener at the commit of
 * st's open write transaction (pg_notify on channel "longcall"; nothing
 * when the transaction rolls back). LC_OK, or a failure as any statement
 * (the caller rolls back). On SQLite: LC_OK, nothing done. */
int store_notify(store *st, const char *payload);

typedef struct store_listener store_listener;
/* Opens a connection of its own to the PostgreSQL database db
 * (LONGCALL_DB), application_name "longcall-listen", that LISTENs on
 * "longcall"; a notification committed after this returns LC_OK reaches
 * it. LC_OK and *out (free with store_listen_close), or LC_ERR (logged
 * once per change of reason). */
int store_listen_open(const char *db, store_listener **out);
/* The connection's socket, for poll(2): readable when something came. */
int store_listen_fd(const store_listener *l);
/* Reads what came without blocking and calls fn with each notification's
 * payload (valid during the call). LC_OK, or LC_ERR when the connection is
 * lost (the caller closes it and opens another). */
int store_listen_read(store_listener *l, void (*fn)(void *arg, const char *payload), void *arg);
void store_listen_close(store_listener *l);

#endif
