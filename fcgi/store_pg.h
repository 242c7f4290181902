/* store_pg: the store interface of store.h on PostgreSQL (libpq), for
 * store.c's dispatch only -- callers use store.h, never this header. Each
 * store_pg_X has the contract of store.h's store_X (same arguments, same
 * return codes) on a store_pg instead of a store. It knows SQL and libpq;
 * not HTTP, JSON, the protocol or wake-ups (wake.h stays per machine). */
#ifndef LC_STORE_PG_H
#define LC_STORE_PG_H

#include "store.h"

typedef struct store_pg store_pg;

/* As store_open_why; conninfo is LONGCALL_DB. busy_timeout_ms becomes the
 * connection's lock_timeout. check: see store_pg.c (the PostgreSQL stand-in
 * for SQLite's quick_check). */
/* (store_db_is_pg and store_db_describe, in store.h, are defined in
 * store_pg.c too.) */
int store_pg_open_why(const char *conninfo, int busy_timeout_ms, int check, store_pg **out,
                      store_problem *why);
void store_pg_close(store_pg *pg);
/* As store_inspect, on PostgreSQL. */
int store_pg_inspect(const char *conninfo, store_info *info, char *why, size_t n);
/* As store_size: the database's size (a query on the connection). */
int store_pg_size(store_pg *pg, int64_t *db);

int store_pg_begin(store_pg *pg);
int store_pg_begin_job(store_pg *pg, store_job job, int *mine);
int store_pg_begin_read(store_pg *pg);
int store_pg_commit(store_pg *pg);
void store_pg_rollback(store_pg *pg);

int store_pg_session_create_addr(store_pg *pg, const uint8_t hash[32], int64_t now,
                                 const char *addr, int64_t *id);
int store_pg_addr_sessions(store_pg *pg, const char *addr, int64_t since, int64_t *live,
                           int64_t *recent, int64_t *oldest);
int store_pg_session_by_token(store_pg *pg, const uint8_t hash[32], store_session *out);
int store_pg_session_get(store_pg *pg, int64_t id, store_session *out);
int store_pg_session_by_name(store_pg *pg, const char *name, int64_t *id);
int store_pg_session_set_name_key(store_pg *pg, int64_t id, const char *name,
                                  const uint8_t reclaim[32]);
int store_pg_name_reserved(store_pg *pg, const char *name, int64_t since, uint8_t reclaim[32],
                           int64_t *ended);
int store_pg_name_unreserve(store_pg *pg, const char *name);
int store_pg_session_poll(store_pg *pg, int64_t id, int64_t after, int64_t now, int bump,
                          store_mailbox *left);
int store_pg_session_end(store_pg *pg, int64_t id, int64_t now, const char *reason);
int store_pg_names(store_pg *pg, const char *prefix, const char *after, int max,
                   void (*fn)(void *arg, const char *name), void *arg, int *more);
int store_pg_rate_allow(store_pg *pg, store_rate kind, int64_t session_id, int64_t now,
                        int64_t interval_ms, int64_t burst_ms, int *allowed, int64_t *wait_ms);
int store_pg_sessions_idle(store_pg *pg, int64_t before, int64_t *ids, int max, int *n);
int store_pg_enqueue(store_pg *pg, const store_msg *m, int quota, int share, store_mailbox *out);
int store_pg_fetch(store_pg *pg, int64_t session_id, int64_t after, int max_count, size_t max_bytes,
                   store_rows *out, int64_t *last_seq);
int store_pg_call_live(store_pg *pg, int64_t session_id, store_call *out);
int store_pg_call_create(store_pg *pg, const store_call *c, int64_t now, int64_t *id);
int store_pg_call_answer(store_pg *pg, int64_t call_id, int64_t now);
int store_pg_call_end(store_pg *pg, int64_t call_id, int64_t now, const char *outcome);
int store_pg_calls_unanswered(store_pg *pg, int64_t before, int64_t *ids, int max, int *n);
int store_pg_call_get(store_pg *pg, int64_t call_id, store_call *out, int *ended);
int store_pg_call_pair(store_pg *pg, int64_t caller_sid, int64_t callee_sid, int64_t since,
                       int64_t *count, int64_t *oldest);
int store_pg_call_cooldown(store_pg *pg, int64_t caller_sid, int64_t callee_sid, int64_t since,
                           int64_t *ended);
int store_pg_block_add(store_pg *pg, int64_t session_id, int64_t caller_sid, const char *caller,
                       int64_t now, int max);
int store_pg_blocked(store_pg *pg, int64_t session_id, int64_t caller_sid, const char *caller,
                     int *blocked);
int store_pg_batch_mark(store_pg *pg, int64_t session_id, const char *batch, int64_t now,
                        int *seen);
int store_pg_batch_known(store_pg *pg, int64_t session_id, const char *batch, int *known);
int store_pg_prune(store_pg *pg, int64_t before, int limit, int *deleted);
int store_pg_prune_unregistered(store_pg *pg, int64_t before, int limit, int *deleted);
int store_pg_next_unregistered(store_pg *pg, int64_t *ended);
int store_pg_next_due(store_pg *pg, int64_t expiry, int64_t ring, int64_t retention, int64_t *live,
                      int64_t *history);
int store_pg_stats(store_pg *pg, int64_t *sessions, int64_t *registered, int64_t *queued,
                   int64_t *live_calls);

/* As store_notify, in pg's open write transaction: a payload of hex
 * digits, digits and spaces (notify.c's) is kept and sent with the COMMIT
 * (one round trip less); any other runs now as a parameter. LC_OK or a
 * failure. */
int store_pg_notify(store_pg *pg, const char *payload);

/* Shared by both stores (defined in store.c). The smallest string above
 * every string that starts with prefix (store_names' range): 0 and fills
 * hi, or -1 when there is none. */
int store_prefix_bound(const char *prefix, char *hi, size_t cap);
/* Copies a name read from the database into dst (LC_NAME_MAX + 1 bytes),
 * cut at LC_NAME_MAX bytes; NULL gives "". */
void store_copy_name(char *dst, const char *src);

#endif
