/* floor: what one stored message costs SQLite at the least on this machine,
 * the store's counterpart of the ceiling responder. In a fresh database in
 * DIR (the file system the backend's state is on), set up as the backend sets
 * up its own (walvfs, 1 KiB pages, WAL, synchronous=NORMAL), it times COUNT
 * write transactions of the least a relayed message needs: BEGIN IMMEDIATE,
 * one session row's UPDATE, one message row's INSERT (200 bytes, indexed by
 * session and seq), COMMIT. Nothing else: no JSON, no FastCGI, no lookups.
 * A relayed message's hop cannot be shorter than the ceiling's round trip
 * plus this (make bench reports that bound beside the ceiling), nor can
 * one process's writers commit messages faster than one per this.
 *
 *   floor DIR [COUNT]   prints key=value lines and a "# floor:" summary;
 *                       exit 0, or 1 (the reason on stderr)
 *
 * Checkpoints run every 500 transactions, outside the timed part, as the
 * backend runs them on a connection of their own. The database is removed
 * at the end. */

#include "../../fcgi/walvfs.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECKPOINT_EVERY 500

static double clock_us(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of the n values in v (sorted here). */
static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)(q * (n - 1) + 0.5);
    return v[i];
}

static int run_step(sqlite3 *db, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    fprintf(stderr, "floor: %s: %s\n", what, sqlite3_errmsg(db));
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: floor DIR [COUNT]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 20000;
    if (n < 100 || n > 1000000) n = 20000;
    char path[4096], side[4200];
    snprintf(path, sizeof path, "%s/floor.db", argv[1]);
    int ret = 1;
    sqlite3 *db = NULL;
    sqlite3_stmt *begin = NULL, *commit = NULL, *upd = NULL, *ins = NULL;
    double *txn = calloc((size_t)n, sizeof *txn), *cpu = calloc((size_t)n, sizeof *cpu);
    double *beg = calloc((size_t)n, sizeof *beg), *com = calloc((size_t)n, sizeof *com);
    if (!txn || !cpu || !beg || !com) goto out;
    unlink(path);
    const char *vfs = walvfs_register() == 0 ? WALVFS_NAME : NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) != SQLITE_OK) {
        fprintf(stderr, "floor: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
        goto out;
    }
    if (sqlite3_exec(db,
                     "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL;"
                     "PRAGMA synchronous = NORMAL;"
                     "CREATE TABLE sessions (id INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL);"
                     "CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL,"
                     " seq INTEGER NOT NULL, body TEXT NOT NULL);"
                     "CREATE UNIQUE INDEX messages_seq ON messages (session_id, seq);"
                     "INSERT INTO sessions VALUES (1, 0);",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: schema: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE sessions SET last_seq = ?1 WHERE id = 1", -1, &upd, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO messages (session_id, seq, body) VALUES (1, ?1, ?2)",
                           -1, &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: prepare: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    char body[201];
    for (int i = 0; i < 200; i++)
        body[i] = (char)('a' + i % 26);
    body[200] = '\0';
    for (int i = 0; i < n; i++) {
        if (i % CHECKPOINT_EVERY == 0)
            sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        double t0 = clock_us(CLOCK_MONOTONIC), c0 = clock_us(CLOCK_THREAD_CPUTIME_ID);
        if (run_step(db, begin, "begin")) goto out;
        double t1 = clock_us(CLOCK_MONOTONIC);
        sqlite3_bind_int64(upd, 1, i + 1);
        sqlite3_bind_int64(ins, 1, i + 1);
        sqlite3_bind_text(ins, 2, body, 200, SQLITE_STATIC);
        if (run_step(db, upd, "update") || run_step(db, ins, "insert")) goto out;
        double t2 = clock_us(CLOCK_MONOTONIC);
        if (run_step(db, commit, "commit")) goto out;
        double t3 = clock_us(CLOCK_MONOTONIC), c1 = clock_us(CLOCK_THREAD_CPUTIME_ID);
        txn[i] = t3 - t0;
        beg[i] = t1 - t0;
        com[i] = t3 - t2;
        cpu[i] = c1 - c0;
    }
    double p50 = quantile(txn, n, 0.5), p99 = quantile(txn, n, 0.99);
    double b50 = quantile(beg, n, 0.5), c50 = quantile(com, n, 0.5), u50 = quantile(cpu, n, 0.5);
    printf("transactions=%d\nvfs=%s\n", n, vfs ? vfs : "unix");
    printf("txn_p50_us=%.1f\ntxn_p99_us=%.1f\n", p50, p99);
    printf("begin_p50_us=%.1f\ncommit_p50_us=%.1f\ncpu_p50_us=%.1f\n", b50, c50, u50);
    printf("# floor: %d bare write transactions in %s: p50 %.1f us (BEGIN %.1f, COMMIT %.1f; "
           "CPU %.1f), p99 %.1f us\n",
           n, argv[1], p50, b50, c50, u50, p99);
    ret = 0;
out:
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_finalize(upd);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    free(txn);
    free(cpu);
    free(beg);
    free(com);
    return ret;
}
