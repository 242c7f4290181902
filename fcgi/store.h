/* store: the SQLite database -- schema migration, and every SQL statement
 * the program runs (prepared once per connection, cached). One store is one
 * connection; threads may share it, as each transaction holds the store's
 * mutex from begin to commit or rollback (call the other functions only
 * inside a transaction). It does not know HTTP, JSON
 * message semantics or wake-ups: callers (proto, server) decide what to do. */
#ifndef LC_STORE_H
#define LC_STORE_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

#define LC_NAME_MAX 64

typedef struct store store;

typedef struct store_session {
    int64_t id;
    char name[LC_NAME_MAX + 1]; /* "" until registered */
    int64_t next_seq;           /* last seq queued for this session */
    int64_t acked;              /* every seq <= acked is delivered */
    int64_t poll_gen;
    int ended;         /* the session is over (closed or expired) */
    int64_t last_seen; /* last recorded poll (ms) */
} store_session;

typedef struct store_call {
    int64_t id;
    int64_t caller_sid, callee_sid;
    char caller[LC_NAME_MAX + 1], callee[LC_NAME_MAX + 1];
    int answered;
} store_call;

/* Opens (creating if needed) the database at path, switches it to WAL and
 * applies pending migrations from db/ (compiled in). A writer waits up to
 * busy_timeout_ms for another's lock before LC_BUSY. Returns LC_OK and sets
 * *out (free with store_close), or LC_ERR / LC_BUSY / LC_FULL after logging
 * (see store_open_why). The -wal and -shm files are kept when the last
 * connection closes (SQLITE_FCNTL_PERSIST_WAL). */
int store_open(const char *path, int busy_timeout_ms, store **out);

/* What keeps a database from being opened (store_open_why). */
typedef enum store_problem {
    STORE_FINE = 0,
    STORE_BUSY,    /* locked by another process past the busy timeout */
    STORE_FULL,    /* no space left on its disk */
    STORE_ACCESS,  /* the file or its folder is not readable and writable by this user */
    STORE_CORRUPT, /* not a database, or damaged pages */
    STORE_NEWER,   /* its schema is from a newer longcall */
    STORE_OTHER,   /* anything else (the log says what) */
} store_problem;

/* store_open, saying why it failed: *why is set (STORE_FINE on success), and
 * the failure is logged as one line naming the file, what is wrong and what
 * to do -- or at debug level only when that line is the same as the last
 * failure of store_open_why logged (a caller retrying every few seconds
 * logs once per change). With check, PRAGMA quick_check runs too (it reads
 * every page: once per process start, not per request), so that a damaged
 * file is found at start rather than by the request that meets it. Returns
 * as store_open, or LC_FULL when the disk is full. */
int store_open_why(const char *path, int busy_timeout_ms, int check, store **out,
                   store_problem *why);

/* A sentence for the clients of a server whose database has problem p (no
 * path or user name in it: those are for the log). */
const char *store_problem_text(store_problem p);

/* Finalizes every cached statement and closes the connection. NULL is fine. */
void store_close(store *st);

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

/* Every function below that writes returns LC_FULL when the disk holding
 * the database is full (SQLITE_FULL, or a write failing with ENOSPC or
 * EDQUOT): nothing was written, and the store stays usable -- after
 * store_rollback, the next transaction works once there is space again.
 * A full disk is logged once per episode (per process), not per failure:
 * one ERROR line when the first write fails, one INFO line when a write
 * commits again.
 *
 * Transactions. store_begin takes the write lock at once (BEGIN IMMEDIATE) so
 * that a batch never fails half-way on a lock; store_begin_read is a plain
 * snapshot. Return LC_OK, LC_BUSY (lock not had within the busy timeout) or
 * LC_ERR. A transaction belongs to the thread that began it: it holds the
 * store's mutex until its commit or rollback. store_rollback is safe to call
 * when this thread has no transaction open (it then does nothing, even if
 * another thread has one). */
int store_begin(store *st);
int store_begin_read(store *st);
int store_commit(store *st);
void store_rollback(store *st);

/* Sessions. Token hashes are 32-byte SHA-256 digests. */
int store_session_create(store *st, const uint8_t hash[32], int64_t now, int64_t *id);
/* Finds the live session whose token hashes to hash: LC_OK, LC_NOTFOUND, LC_ERR. */
int store_session_by_token(store *st, const uint8_t hash[32], store_session *out);
/* Reads session id, live or ended: LC_OK, LC_NOTFOUND, LC_ERR. */
int store_session_get(store *st, int64_t id, store_session *out);
/* Finds the live session registered as name: LC_OK (sets *id), LC_NOTFOUND. */
int store_session_by_name(store *st, const char *name, int64_t *id);
/* Sets the registered name of session id (the caller checked it is free). */
int store_session_set_name(store *st, int64_t id, const char *name);
/* Records a poll: acknowledges (marks delivered at now) every message of the
 * live session id with seq <= after (capped at its last seq), sets
 * last_seen = now and, if bump, adds one to poll_gen. Sets *poll_gen to its
 * value. LC_OK, LC_NOTFOUND (no such live session) or an error. */
int store_session_poll(store *st, int64_t id, int64_t after, int64_t now, int bump,
                       int64_t *poll_gen);
/* Ends the session: ended = now, the reason, token hash cleared, its batch
 * ids deleted. Calls and messages stay. LC_OK or LC_ERR. */
int store_session_end(store *st, int64_t id, int64_t now, const char *reason);
/* Calls fn for each live registered name in order. LC_OK or LC_ERR. */
int store_names(store *st, void (*fn)(void *arg, const char *name), void *arg);
/* Fills ids (up to max) with live sessions whose last_seen < before; sets *n. */
int store_sessions_idle(store *st, int64_t before, int64_t *ids, int max, int *n);

/* One message to put in a mailbox. Every pointer is borrowed. */
typedef struct store_msg {
    int64_t session_id;    /* whose mailbox */
    const char *sender;    /* sender's name; NULL: the server */
    const char *recipient; /* recipient's name; NULL: unregistered */
    const char *type;      /* the message id */
    const char *body;      /* the JSON object as serialized, "{...}" */
    int64_t call_id;       /* 0: none */
    int64_t created;       /* wall ms */
} store_msg;

/* A mailbox as a transaction sees it. */
typedef struct store_mailbox {
    int64_t seq;      /* its last message's seq (sessions.next_seq) */
    int64_t acked;    /* every seq <= acked was delivered */
    int64_t poll_gen; /* sessions.poll_gen */
} store_mailbox;

/* Mailboxes. Appends m to its mailbox with the next seq. Returns LC_OK and
 * fills *out (out->seq is m's seq), LC_QUOTA when the mailbox already holds
 * quota unacknowledged messages (nothing written), or LC_ERR. */
int store_enqueue(store *st, const store_msg *m, int quota, store_mailbox *out);
/* Appends to out one message as a poll answer carries it: body ("{...}",
 * as store_enqueue stored it) with "seq" spliced in as its first member.
 * The one definition of that form, shared by store_fetch and the answers
 * built from memory (api). */
void store_format_message(buf *out, int64_t seq, const char *body, size_t len);
/* Appends to out the messages of session_id with seq > after, in order, as
 * JSON objects separated by commas, each with its "seq" first; stops after
 * max_count messages or once max_bytes is passed. Sets *count and *last_seq
 * (after, when none). LC_OK or LC_ERR. */
int store_fetch(store *st, int64_t session_id, int64_t after, int max_count, size_t max_bytes,
                buf *out, int *count, int64_t *last_seq);

/* Calls. */
/* Finds the live (not ended) call of session_id: LC_OK, LC_NOTFOUND, LC_ERR. */
int store_call_live(store *st, int64_t session_id, store_call *out);
int store_call_create(store *st, const store_call *c, int64_t now, int64_t *id);
int store_call_answer(store *st, int64_t call_id, int64_t now);
int store_call_end(store *st, int64_t call_id, int64_t now, const char *outcome);
/* Fills ids with calls still ringing that were placed before `before`. */
int store_calls_unanswered(store *st, int64_t before, int64_t *ids, int max, int *n);
/* Reads a call by id (live or ended): LC_OK, LC_NOTFOUND, LC_ERR. */
int store_call_get(store *st, int64_t call_id, store_call *out, int *ended);

/* Batches: records batch id for session_id. LC_OK if it is new, LC_NOTFOUND
 * is never returned; *seen is set to 1 if it had been applied before. */
int store_batch_mark(store *st, int64_t session_id, const char *batch, int64_t now, int *seen);

/* History pruning: deletes at most limit rows of messages (delivered, or of
 * ended sessions), ended calls and ended sessions older than before. Sets
 * *deleted. LC_OK or LC_ERR. */
int store_prune(store *st, int64_t before, int limit, int *deleted);

/* When something is next due: *live, an idle session's expiry or an
 * unanswered call's ring timeout; *history, the oldest row passing the
 * retention (it may be unprunable yet: a message waiting for a live
 * session). INT64_MAX when nothing is pending. All in ms. */
int store_next_due(store *st, int64_t expiry, int64_t ring, int64_t retention, int64_t *live,
                   int64_t *history);

/* Counters for /rtc/status. */
int store_stats(store *st, int64_t *sessions, int64_t *registered, int64_t *queued,
                int64_t *live_calls);

#endif
