/* Unit tests of store.c and proto.c on a temporary database: migrations,
 * mailboxes (seq, acknowledgement, quota), session end, ring timeout,
 * history pruning and the maintenance schedule. The protocol's messages and
 * rejections are tests/cases, run in-process by test_cases.c. With
 * $LONGCALL_TEST_PG (unit_pg.h; tests/integration/test_pg.py sets it) the
 * store's contract tests run on a fresh PostgreSQL database instead
 * (store_pg.c), with PostgreSQL's own open and busy checks in place of the
 * SQLite file's. */
#include "../../fcgi/addr.c" /* proto logs refusals through addr and wake */
#include "../../fcgi/proto.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/token.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/store.c"
#include "../../fcgi/store_pg.c"
#include "unit_pg.h"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static lc_config cfg = {.mailbox_quota = 8, .mailbox_share = 8, .session_expiry = 60,
                        .ring_timeout = 30, .list_max = 100, .list_rate = 30, .call_rate = 20,
                        .ice_rate = 10, .call_pair_rate = 6, .call_cooldown = 60, .max_blocks = 100};
static store *st;

static int64_t new_session(int n)
{
    uint8_t h[32] = {0};
    h[0] = (uint8_t)n;
    h[1] = 0xAB;
    int64_t id = 0;
    store_begin(st);
    store_session_create(st, h, 1000, &id);
    store_commit(st);
    return id;
}

/* Applies one message (JSON text) from session id; returns the rc. */
static int send_as(int64_t id, const char *text, int64_t now)
{
    proto_ctx c = {.st = st, .cfg = &cfg, .now = now};
    json_t *m = json_loads(text, 0, NULL);
    store_begin(st);
    store_session_get(st, id, &c.self);
    int rc = proto_apply(&c, m);
    if (rc == LC_OK)
        store_commit(st);
    else
        store_rollback(st);
    json_decref(m);
    proto_ctx_free(&c);
    return rc;
}

/* The mailbox of id after seq `after`, as a poll answer's message items. */
static void mailbox(int64_t id, int64_t after, char *out, size_t n)
{
    store_rows rows = {0};
    buf b = {0};
    int64_t last;
    store_begin_read(st);
    store_fetch(st, id, after, 100, 1 << 20, &rows, &last);
    store_rollback(st);
    for (int i = 0; i < rows.n; i++)
        wire_message_add(&b, rows.row[i].seq, rows.row[i].body, rows.row[i].len);
    snprintf(out, n, "%s", b.data ? b.data : "");
    buf_free(&b);
    store_rows_free(&rows);
}

/* A thread that opens a transaction, lets the main thread act, then
 * commits a new session a moment later. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int begun, go, committed;
} ow = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void *owner_thread(void *arg)
{
    (void)arg;
    store_begin(st);
    pthread_mutex_lock(&ow.mu);
    ow.begun = 1;
    pthread_cond_signal(&ow.cv);
    while (!ow.go)
        pthread_cond_wait(&ow.cv, &ow.mu);
    pthread_mutex_unlock(&ow.mu);
    usleep(100 * 1000); /* the main thread is blocked in store_begin by now */
    uint8_t h[32] = {0x77};
    int64_t id;
    store_session_create(st, h, 1000, &id);
    ow.committed = store_commit(st) == LC_OK;
    return NULL;
}

/* store_rollback on a thread without a transaction (as after a failed
 * begin) must not release or roll back another thread's transaction. */
static void test_rollback_foreign(void)
{
    pthread_t th;
    pthread_create(&th, NULL, owner_thread, NULL);
    pthread_mutex_lock(&ow.mu);
    while (!ow.begun)
        pthread_cond_wait(&ow.cv, &ow.mu);
    pthread_mutex_unlock(&ow.mu);
    store_rollback(st); /* this thread has no transaction: a no-op */
    pthread_mutex_lock(&ow.mu);
    ow.go = 1;
    pthread_cond_signal(&ow.cv);
    pthread_mutex_unlock(&ow.mu);
    int rc = store_begin(st); /* waits for the other thread's commit */
    uint8_t h[32] = {0x77};
    store_session s;
    int found = rc == LC_OK && store_session_by_token(st, h, &s) == LC_OK;
    store_rollback(st);
    /* ow.committed is set once store_commit returned, that is after it
     * released the store: read it after the join, not racing it. */
    pthread_join(th, NULL);
    CHECK("transactions: a rollback without one leaves another thread's alone",
          rc == LC_OK && ow.committed);
    CHECK("transactions: and its commit stands", found);
}

static void *commit_later(void *arg)
{
    usleep(300 * 1000);
    sqlite3_exec(arg, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

/* Another connection holds the write lock of a fresh database (still in
 * rollback-journal mode) for a moment, as a backend started at the same
 * time does: the switch to WAL gets SQLITE_BUSY at once, without the busy
 * handler. store_open must wait it out, not fail. */
static void test_open_while_locked(const char *dir)
{
    char path[160];
    snprintf(path, sizeof path, "%s/locked.db", dir);
    sqlite3 *x = NULL;
    sqlite3_open(path, &x);
    int locked = sqlite3_exec(x, "CREATE TABLE t(a); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)",
                              NULL, NULL, NULL) == SQLITE_OK;
    pthread_t th;
    pthread_create(&th, NULL, commit_later, x);
    store *s2 = NULL;
    int rc = store_open(path, 5000, &s2);
    pthread_join(th, NULL);
    CHECK("store: open waits out another connection's write lock on a fresh database",
          locked && rc == LC_OK);
    store_close(s2);
    sqlite3_close(x);
}

static int64_t count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* Copies file from to to; returns its size, or -1. */
static long copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    long n = 0;
    char chunk[8192];
    size_t k;
    while (in && out && (k = fread(chunk, 1, sizeof chunk, in)) > 0) {
        fwrite(chunk, 1, k, out);
        n += (long)k;
    }
    if (!in || !out) n = -1;
    if (in) fclose(in);
    if (out) fclose(out);
    return n;
}

/* The store writes its WAL through walvfs (a frame's header and page in one
 * write). The database and its WAL, copied as a crash would leave them (no
 * -shm), must open with SQLite's own VFS, as the sqlite3 shell does: that
 * open recovers the WAL, checking every frame's checksum, and a frame
 * written wrong would end the WAL there, losing what follows. */
static void test_plain_reader(const char *path)
{
    store_begin_read(st);
    int64_t sessions = count_rows(st->db, "SELECT count(*) FROM sessions");
    int64_t messages = count_rows(st->db, "SELECT count(*) FROM messages");
    store_rollback(st);
    char from[220], to[220], copy[200];
    snprintf(copy, sizeof copy, "%s-copy", path);
    snprintf(from, sizeof from, "%s-wal", path);
    snprintf(to, sizeof to, "%s-wal", copy);
    long wal = copy_file(from, to);
    long db = copy_file(path, copy);
    sqlite3_vfs *vfs = NULL;
    sqlite3_file_control(st->db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs);
    CHECK("walvfs: the store's connection writes through it",
          vfs && strcmp(vfs->zName, WALVFS_NAME) == 0);
    CHECK("walvfs: the copied WAL holds frames", db > 0 && wal > 32 + 24 + 4096);
    sqlite3 *plain = NULL;
    sqlite3_open_v2(copy, &plain, SQLITE_OPEN_READWRITE, NULL);
    char *ok = NULL;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(plain, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        ok = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    CHECK("walvfs: SQLite's own VFS recovers the WAL with every session and message",
          sessions > 0 && messages > 0 &&
              count_rows(plain, "SELECT count(*) FROM sessions") == sessions &&
              count_rows(plain, "SELECT count(*) FROM messages") == messages);
    CHECK("walvfs: integrity_check ok", ok && strcmp(ok, "ok") == 0);
    sqlite3_free(ok);
    sqlite3_close(plain);
}

/* Write system calls this process made so far (/proc/self/io), -1 if
 * unknown. */
static long write_calls(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %ld", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

/* Queues a message of len bytes of body in one transaction. */
static int enqueue_one(int64_t to, size_t len)
{
    char *body = xmalloc(len + 1);
    memset(body, 'x', len);
    memcpy(body, "{\"id\":\"", 7);
    memcpy(body + len - 2, "\"}", 2);
    body[len] = '\0';
    store_msg m = {.session_id = to, .type = "test", .body = body, .created = 5000};
    store_mailbox mb;
    int rc = store_begin(st);
    if (rc == LC_OK) rc = store_enqueue(st, &m, 1 << 20, 1 << 20, &mb);
    if (rc == LC_OK) rc = store_commit(st);
    if (rc != LC_OK) store_rollback(st);
    free(body);
    return rc;
}

/* walvfs holds the frames SQLite appends and writes them at the commit
 * frame: a transaction is one write, and it is in the file (where another
 * connection, here SQLite's own VFS, reads it) when the commit returns --
 * also one larger than walvfs's buffer, which goes out in pieces. */
static void test_wal_runs(const char *path)
{
    sqlite3 *plain = NULL;
    sqlite3_open_v2(path, &plain, SQLITE_OPEN_READONLY, NULL);
    int64_t to = new_session(77);
    /* Emptied, so that no checkpoint joins in; the next commit starts the
     * WAL again, writing (and syncing) its header first. */
    sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    enqueue_one(to, 200);
    int one = 1, seen = 1;
    for (int i = 1; i < 6; i++) {
        long w0 = write_calls();
        int rc = enqueue_one(to, 200);
        long w1 = write_calls();
        /* The sessions row, the message and its (session, seq) index entry:
         * three frames, written by one call. */
        if (rc != LC_OK || w0 < 0 || w1 - w0 != 1) one = 0;
        char sql[100];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM messages WHERE session_id = %lld",
                 (long long)to);
        if (count_rows(plain, sql) != i + 1) seen = 0;
    }
    CHECK("walvfs: a transaction's frames reach the WAL in one write", one);
    CHECK("walvfs: another connection sees each commit when it returns", seen);
    int big = enqueue_one(to, 3 * RUN_MAX / 2);
    CHECK("walvfs: a transaction larger than the write buffer commits", big == LC_OK);
    char sql[120];
    snprintf(sql, sizeof sql,
             "SELECT length(body) FROM messages WHERE session_id = %lld AND seq = 7",
             (long long)to);
    CHECK("walvfs: ... and another connection reads it whole",
          count_rows(plain, sql) == 3 * RUN_MAX / 2);
    sqlite3_close(plain);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Grows the WAL to at least bytes with messages of len while reader holds
 * a snapshot (no checkpoint can then copy the frames after it, so the WAL
 * cannot start again). At most 2000 transactions. */
static void grow_wal(sqlite3 *reader, const char *wal, int64_t to, long bytes, size_t len)
{
    sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM messages;", NULL, NULL, NULL);
    for (int i = 0; i < 2000 && file_size(wal) < bytes; i++)
        if (enqueue_one(to, len) != LC_OK) break;
    sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
}

/* Frames in the WAL after a passive checkpoint of st's (which copies them
 * all when no reader holds an older snapshot). */
static int wal_frames(void)
{
    int log = -1, done = -1;
    sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    return log;
}

/* Once every frame is copied, the next commit starts the WAL again from its
 * beginning; SQLite then cuts a file longer than journal_size_limit back to
 * it, in that commit, under the write lock, where cutting 30-40 MB took
 * 15-37 ms. Under load the WAL reaches about 42 MB before it starts again
 * (wal_hook's backstop): below the limit, the file is kept as it is. One
 * that grew past the limit (a reader held checkpoints back) is still cut
 * back to it. */
static void test_wal_kept(const char *path)
{
    char wal[200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    sqlite3 *reader = NULL;
    sqlite3_open_v2(path, &reader, SQLITE_OPEN_READONLY, NULL);
    int64_t to = new_session(90);
    sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    grow_wal(reader, wal, to, 12L << 20, 60000);
    long grown = file_size(wal);
    int copied = wal_frames() > 0;
    int rc = enqueue_one(to, 200);
    CHECK("WAL: grown to 12 MB and copied, it starts again with the next commit",
          grown >= 12L << 20 && copied && rc == LC_OK && wal_frames() < 100);
    CHECK("WAL: ... and the file is not cut back (below journal_size_limit, 64 MiB)",
          file_size(wal) >= grown);
    grow_wal(reader, wal, to, 70L << 20, 1 << 20);
    grown = file_size(wal);
    wal_frames();
    rc = enqueue_one(to, 200);
    CHECK("WAL: grown past 64 MiB, it is cut back to 64 MiB when it starts again",
          grown > 64L << 20 && rc == LC_OK && file_size(wal) >= 63L << 20 &&
              file_size(wal) <= (64L << 20) + 4096);
    sqlite3_close(reader);
}

static int contains(int64_t id, int64_t after, const char *needle)
{
    char box[8192];
    mailbox(id, after, box, sizeof box);
    return strstr(box, needle) != NULL;
}

/* A new database gets 1 KiB pages; one made with SQLite's default 4 KiB
 * (by an older longcall, or by hand) keeps them and works as before. */
static void test_page_size(const char *dir)
{
    char old_path[160];
    snprintf(old_path, sizeof old_path, "%s/old.db", dir);
    sqlite3 *raw = NULL;
    sqlite3_open(old_path, &raw);
    sqlite3_exec(raw, "PRAGMA page_size = 4096; CREATE TABLE t(x); DROP TABLE t;", NULL, NULL,
                 NULL);
    sqlite3_close(raw);
    store *old = NULL;
    CHECK("store: a 4 KiB-page database opens and migrates",
          store_open(old_path, 1000, &old) == LC_OK);
    if (!old) return;
    CHECK("store: ... and keeps its page size", pragma_int(old, "PRAGMA page_size") == 4096);
    CHECK("store: ... and its journal is WAL",
          count_rows(old->db,
                     "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'") == 1);
    store_close(old);
}

/* A full disk, as SQLite sees one (PRAGMA max_page_count: SQLITE_FULL
 * without a file system to fill): the write is LC_FULL, the episode is
 * logged once, the store stays usable for reads, and once there is room
 * again the next transaction commits and ends the episode. */
static void test_full(const char *dir)
{
    char path[160];
    snprintf(path, sizeof path, "%s/full.db", dir);
    store *fs = NULL;
    if (store_open(path, 1000, &fs) != LC_OK) {
        CHECK("full: store opened", 0);
        return;
    }
    uint8_t h[32] = {7};
    int64_t id = 0;
    store_begin(fs);
    store_session_create(fs, h, 1000, &id);
    store_commit(fs);
    int pages = pragma_int(fs, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %d", pages);
    sqlite3_exec(fs->db, sql, NULL, NULL, NULL);
    char body[2048];
    memset(body, 'x', sizeof body - 1);
    body[0] = '{';
    body[sizeof body - 2] = '}';
    body[sizeof body - 1] = '\0';
    store_msg m = {.session_id = id, .type = "t", .body = body, .created = 1};
    store_mailbox mb;
    int rc = LC_OK, sent = 0;
    for (int i = 0; i < 100 && rc == LC_OK; i++) {
        rc = store_begin(fs);
        if (rc == LC_OK) rc = store_enqueue(fs, &m, 1000, 1000, &mb);
        if (rc == LC_OK) rc = store_commit(fs);
        if (rc == LC_OK)
            sent++;
        else
            store_rollback(fs);
    }
    CHECK("full: a write on a full database is LC_FULL", rc == LC_FULL);
    CHECK("full: the episode is on, one refusal counted",
          atomic_load(&full_episode) == 1 && atomic_load(&full_refused) == 1);
    rc = store_begin(fs);
    if (rc == LC_OK) rc = store_enqueue(fs, &m, 1000, 1000, &mb);
    store_rollback(fs);
    CHECK("full: again LC_FULL, counted, not logged again",
          rc == LC_FULL && atomic_load(&full_refused) == 2);
    int64_t last = 0;
    store_rows out = {0};
    rc = store_begin_read(fs);
    if (rc == LC_OK) rc = store_fetch(fs, id, 0, 1000, 1 << 20, &out, &last);
    store_rollback(fs);
    CHECK("full: what was stored is still read", rc == LC_OK && out.n == sent && last == sent);
    store_rows_free(&out);
    sqlite3_exec(fs->db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL);
    rc = store_begin(fs);
    if (rc == LC_OK) rc = store_enqueue(fs, &m, 1000, 1000, &mb);
    if (rc == LC_OK) rc = store_commit(fs);
    else store_rollback(fs);
    CHECK("full: with room again, the next transaction commits", rc == LC_OK && mb.seq == sent + 1);
    CHECK("full: ... and the episode is over", atomic_load(&full_episode) == 0);
    store_close(fs);
}

/* store_open_why names what keeps a database from opening. */
static void test_open_problems(const char *dir)
{
    char path[160];
    store *x = NULL;
    store_problem why = STORE_FINE;
    snprintf(path, sizeof path, "%s/newer.db", dir);
    CHECK("open: a new database", store_open_why(path, 1000, 1, &x, &why) == LC_OK &&
                                      why == STORE_FINE);
    if (x) sqlite3_exec(x->db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    store_close(x);
    x = NULL;
    CHECK("open: a newer schema is STORE_NEWER",
          store_open_why(path, 1000, 0, &x, &why) == LC_ERR && why == STORE_NEWER && !x);

    snprintf(path, sizeof path, "%s/garbage.db", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; f && i < 8192; i++)
        fputc((i * 7919) & 0xff, f);
    if (f) fclose(f);
    CHECK("open: a garbage file is STORE_CORRUPT",
          store_open_why(path, 1000, 0, &x, &why) == LC_ERR && why == STORE_CORRUPT);

    snprintf(path, sizeof path, "%s/no/such/folder.db", dir);
    CHECK("open: a missing folder is STORE_OTHER",
          store_open_why(path, 1000, 0, &x, &why) == LC_ERR && why == STORE_OTHER);
    CHECK("open: each problem has a sentence without a path",
          strchr(wire_problem_sentence(STORE_ACCESS), '/') == NULL &&
              strstr(wire_problem_sentence(STORE_FULL), "full") != NULL);
}

/* store_fetch: rows in seq order after `after`, bounded by count and by
 * the bytes of their bodies (a hard limit, but at least one row), bodies as enqueued and
 * NUL-terminated, *last_seq the last row's seq or after; one rows struct
 * reused for every case. */
static void test_fetch_rows(void)
{
    static const char *const bodies[] = {
        "{\"id\":\"pong\",\"n\":\"1\"}", "{\"id\":\"pong\",\"n\":\"2\"}",
        "{\"id\":\"pong\",\"n\":\"3\"}", "{\"id\":\"pong\",\"n\":\"4\"}",
        "{\"id\":\"pong\",\"n\":\"5\"}",
    }; /* 21 bytes each */
    static const struct {
        const char *name;
        int64_t after;
        int max_count;
        size_t max_bytes;
        int n;
        int64_t last;
    } cases[] = {
        {"fetch: every row", 0, 100, 1 << 20, 5, 5},
        {"fetch: rows after the cursor only", 2, 100, 1 << 20, 3, 5},
        {"fetch: at most max_count rows", 0, 2, 1 << 20, 2, 2},
        {"fetch: the bodies never pass max_bytes", 0, 100, 41, 1, 1},
        {"fetch: ... and fill it exactly", 0, 100, 42, 2, 2},
        {"fetch: at least one row, however small max_bytes", 3, 100, 1, 1, 4},
        {"fetch: none after the last: last_seq is after", 5, 100, 1 << 20, 0, 5},
        {"fetch: a cursor beyond the last: last_seq is after", 9, 100, 1 << 20, 0, 9},
    };
    int64_t id = new_session(40);
    int rc = store_begin(st);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0] && rc == LC_OK; i++) {
        store_mailbox mb;
        store_msg m = {.session_id = id, .type = "pong", .body = bodies[i], .created = 1000};
        rc = store_enqueue(st, &m, 100, 100, &mb);
    }
    if (rc == LC_OK) rc = store_commit(st);
    if (rc != LC_OK) store_rollback(st);
    CHECK("fetch: five messages queued", rc == LC_OK);
    store_rows rows = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t last = -1;
        store_begin_read(st);
        rc = store_fetch(st, id, cases[c].after, cases[c].max_count, cases[c].max_bytes, &rows,
                         &last);
        store_rollback(st);
        int same = rc == LC_OK && rows.n == cases[c].n && last == cases[c].last;
        for (int i = 0; same && i < rows.n; i++) {
            const char *want = bodies[cases[c].after + i];
            same = rows.row[i].seq == cases[c].after + i + 1 && rows.row[i].len == strlen(want) &&
                   strcmp(rows.row[i].body, want) == 0;
        }
        CHECK(cases[c].name, same);
    }
    int64_t last = -1;
    store_begin_read(st);
    rc = store_fetch(st, 999999, 0, 100, 1 << 20, &rows, &last);
    store_rollback(st);
    CHECK("fetch: an unknown session has no rows", rc == LC_OK && rows.n == 0 && last == 0);
    store_rows_free(&rows);
    CHECK("fetch: store_rows_free leaves an empty struct",
          rows.row == NULL && rows.n == 0 && rows.text.data == NULL);
}

/* Lists allowed to session id at the times now0, now0 + step, ... (n of
 * them) with LONGCALL_LIST_RATE rate, as proto.c asks (one interval per
 * list, a burst of rate). */
static int lists_allowed(int64_t id, int rate, int64_t now0, int64_t step, int n, int64_t focus)
{
    int64_t interval = 60000 / rate;
    int allowed = 0, yes = 0;
    for (int i = 0; i < n; i++) {
        int64_t now = now0 + i * step;
        int times = focus && i % focus == 0 ? 2 : 1; /* and a focus event now and then */
        for (int k = 0; k < times; k++) {
            store_begin(st);
            store_rate_allow(st, STORE_RATE_LIST, id, now, interval, interval * (rate - 1), &yes, NULL);
            store_commit(st);
            allowed += yes;
        }
    }
    return allowed;
}

/* The list rate (GCRA in the session row) on a simulated clock. */
/* A statement that fails for every request (an I/O error, say) must not
 * write a line per request: 200 failures give one db_error line at once,
 * the rest counted for the next (store.c, fail). */
static void test_error_summary(const char *dir)
{
    char path[160];
    snprintf(path, sizeof path, "%s/errlog", dir);
    error_rate = (lc_log_rate){0};
    lc_log_set_level(LC_LOG_INFO);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    int rcs = 0;
    for (int i = 0; i < 200; i++) rcs += fail(st, SQLITE_ERROR, "the unit test") == LC_ERR;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lc_log_set_level(LC_LOG_ERROR);
    char log[8192];
    lseek(fd, 0, SEEK_SET);
    ssize_t got = read(fd, log, sizeof log - 1);
    log[got > 0 ? got : 0] = '\0';
    close(fd);
    int lines = 0;
    for (const char *c = log; (c = strstr(c, "event=db_error")); c++) lines++;
    CHECK("store: 200 failing statements: each LC_ERR", rcs == 200);
    CHECK("store: 200 failing statements log one db_error line (count=1), the other 199 counted "
          "for the next line a minute later",
          lines == 1 && strstr(log, "count=1 ") && atomic_load(&error_rate.count) == 199);
}

static void test_list_rate(void)
{
    int64_t page = new_session(50), greedy = new_session(51), burst = new_session(52);
    /* The page: a list every 5 s for an hour, a second one on focus every
     * 30 s: 720 + 120 lists, none refused with the default 30 a minute. */
    CHECK("list rate: a page refreshing every 5 s (and on focus) for an hour is never refused",
          lists_allowed(page, 30, 1000000, 5000, 720, 6) == 720 + 120);
    /* One list a second for a minute: the burst of 30, then one per 2 s. */
    int n = lists_allowed(greedy, 30, 1000000, 1000, 60, 0);
    CHECK("list rate: a list a second for a minute gets the burst and one per 2 s",
          n >= 30 + 29 && n <= 30 + 30);
    CHECK("list rate: 31 lists at once: the 31st is refused",
          lists_allowed(burst, 30, 1000000, 0, 31, 0) == 30);
    CHECK("list rate: a minute later the burst is back",
          lists_allowed(burst, 30, 1000000 + 60000, 0, 31, 0) == 30);
}

/* Reservations of names (db/004): kept by an expiry, not by a close,
 * only within the period asked for, released by store_name_unreserve. */
static void test_reservations(void)
{
    int64_t x = new_session(40), y = new_session(41);
    uint8_t key[32], got[32];
    memset(key, 0x5A, sizeof key);
    int64_t ended = 0;
    store_begin(st);
    store_session_set_name_key(st, x, "res-x", key);
    store_session_set_name_key(st, y, "res-y", key);
    CHECK("reservation: none while the holder lives",
          store_name_reserved(st, "res-x", 0, got, &ended) == LC_NOTFOUND);
    store_session_end(st, x, 50000, "expired");
    store_session_end(st, y, 50000, "closed");
    CHECK("reservation: an expired holder's name is reserved for its key's hash",
          store_name_reserved(st, "res-x", 40000, got, &ended) == LC_OK &&
              memcmp(got, key, 32) == 0 && ended == 50000);
    CHECK("reservation: not past the period asked for",
          store_name_reserved(st, "res-x", 50001, got, &ended) == LC_NOTFOUND);
    CHECK("reservation: a closed holder's name is not reserved",
          store_name_reserved(st, "res-y", 0, got, &ended) == LC_NOTFOUND);
    CHECK("reservation: released by store_name_unreserve",
          store_name_unreserve(st, "res-x") == LC_OK &&
              store_name_reserved(st, "res-x", 0, got, &ended) == LC_NOTFOUND);
    store_commit(st);
}

/* A session from client address addr (NULL: none), registered as name. */
static int64_t addr_session(int n, const char *addr, const char *name)
{
    uint8_t h[32] = {0};
    h[0] = (uint8_t)n;
    h[1] = 0xCD;
    int64_t id = 0;
    store_begin(st);
    store_session_create_addr(st, h, 1000, addr, &id);
    store_session_set_name(st, id, name);
    store_commit(st);
    return id;
}

/* A call from caller to callee placed at placed; answered (or not) and
 * ended at ended (0: still live). Returns its id. */
static int64_t past_call(int64_t caller, int64_t callee, int64_t placed, int answered,
                         int64_t ended)
{
    store_call c = {.caller_sid = caller, .callee_sid = callee};
    snprintf(c.caller, sizeof c.caller, "x");
    snprintf(c.callee, sizeof c.callee, "y");
    int64_t id = 0;
    store_begin(st);
    store_call_create(st, &c, placed, &id);
    if (answered) store_call_answer(st, id, placed + 1);
    if (ended) store_call_end(st, id, ended, answered ? "completed" : "rejected");
    store_commit(st);
    return id;
}

/* The call limits' queries (db/005): the call rate's clock, calls per
 * (caller, callee), the cooldown over a client address, blocks. */
static void test_call_limits(void)
{
    int allowed = 0;
    int64_t wait = 0, count = 0, oldest = 0, ended = 0;
    int64_t m1 = addr_session(60, "192.0.2.5", "cl-m1");
    int64_t m2 = addr_session(61, "192.0.2.5", "cl-m2");
    int64_t other = addr_session(62, "198.51.100.9", "cl-o"), none = addr_session(63, NULL, "cl-n");
    int64_t none2 = addr_session(64, NULL, "cl-n2");
    int64_t bob = addr_session(65, "203.0.113.1", "cl-bob");

    /* GCRA: 20 a minute (3 s apart), bursts of 5. */
    int got = 0;
    store_begin(st);
    for (int i = 0; i < 8; i++) {
        store_rate_allow(st, STORE_RATE_CALL, m1, 5000000, 3000, 4 * 3000, &allowed, &wait);
        got += allowed;
    }
    store_commit(st);
    CHECK("call rate: 8 calls at once, the burst of 5 allowed", got == 5);
    CHECK("call rate: the refusal says how long (3 s)", !allowed && wait == 3000);
    store_begin(st);
    store_rate_allow(st, STORE_RATE_CALL, m1, 5000000 + 3000, 3000, 4 * 3000, &allowed, &wait);
    store_commit(st);
    CHECK("call rate: one more after the interval", allowed == 1);

    /* Pair counts: placed at or after since. */
    past_call(m1, bob, 100000, 1, 100500);
    past_call(m1, bob, 110000, 1, 110500);
    past_call(m1, other, 110000, 1, 110500);
    store_begin_read(st);
    store_call_pair(st, m1, bob, 100000, &count, &oldest);
    CHECK("pair: two calls m1 -> bob since 100000, the oldest at 100000",
          count == 2 && oldest == 100000);
    store_call_pair(st, m1, bob, 100001, &count, &oldest);
    CHECK("pair: one since 100001", count == 1 && oldest == 110000);
    store_call_pair(st, m2, bob, 0, &count, &oldest);
    CHECK("pair: none from another session", count == 0 && oldest == 0);
    /* Answered calls start no cooldown. */
    CHECK("cooldown: answered calls start none",
          store_call_cooldown(st, m1, bob, 0, &ended) == LC_NOTFOUND);
    store_rollback(st);

    past_call(m1, bob, 200000, 0, 201000); /* rejected: unanswered */
    past_call(none, bob, 200000, 0, 202000);
    store_begin_read(st);
    CHECK("cooldown: the caller's own unanswered ring",
          store_call_cooldown(st, m1, bob, 201000, &ended) == LC_OK && ended == 201000);
    CHECK("cooldown: another session of the same address",
          store_call_cooldown(st, m2, bob, 201000, &ended) == LC_OK && ended == 201000);
    CHECK("cooldown: not another address",
          store_call_cooldown(st, other, bob, 0, &ended) == LC_NOTFOUND);
    CHECK("cooldown: not before since",
          store_call_cooldown(st, m2, bob, 201001, &ended) == LC_NOTFOUND);
    CHECK("cooldown: not for another callee",
          store_call_cooldown(st, m1, other, 0, &ended) == LC_NOTFOUND);
    CHECK("cooldown: a session without an address counts alone",
          store_call_cooldown(st, none, bob, 0, &ended) == LC_OK && ended == 202000 &&
              store_call_cooldown(st, none2, bob, 0, &ended) == LC_NOTFOUND);
    store_rollback(st);
    int64_t live = past_call(m2, other, 300000, 0, 0);
    store_begin_read(st);
    CHECK("cooldown: a call still ringing starts none",
          store_call_cooldown(st, m2, other, 0, &ended) == LC_NOTFOUND);
    store_rollback(st);
    store_begin(st);
    store_call_end(st, live, 301000, "no answer");
    store_commit(st);

    /* Blocks: by session or by name, at most max per session, the oldest go. */
    int blocked = -1;
    store_begin(st);
    store_block_add(st, bob, m1, "cl-m1", 1000, 2);
    store_blocked(st, bob, m1, "renamed", &blocked);
    CHECK("block: the blocked session, whatever its name", blocked == 1);
    store_blocked(st, bob, other, "cl-m1", &blocked);
    CHECK("block: another session under the blocked name", blocked == 1);
    store_blocked(st, bob, other, "cl-o", &blocked);
    CHECK("block: not another session and name", blocked == 0);
    store_blocked(st, bob, other, NULL, &blocked);
    CHECK("block: not another session without a name", blocked == 0);
    store_blocked(st, other, m1, "cl-m1", &blocked);
    CHECK("block: only for the session that blocked", blocked == 0);
    store_block_add(st, bob, m2, "cl-m2", 2000, 2);
    store_block_add(st, bob, none, "cl-n", 3000, 2);
    store_blocked(st, bob, m1, "cl-m1", &blocked);
    CHECK("block: over the bound (2), the oldest went", blocked == 0);
    store_blocked(st, bob, m2, "cl-m2", &blocked);
    int kept = blocked;
    store_blocked(st, bob, none, "cl-n", &blocked);
    CHECK("block: the newest 2 stay", kept == 1 && blocked == 1);
    store_block_add(st, bob, m2, "cl-m2b", 4000, 2); /* renewed, with its new name */
    store_block_add(st, bob, m1, "cl-m1", 5000, 2);
    store_blocked(st, bob, m2, "x", &blocked);
    kept = blocked;
    store_blocked(st, bob, none, "cl-n", &blocked);
    CHECK("block: a renewed block counts as new", kept == 1 && blocked == 0);
    store_session_end(st, bob, 6000, "closed");
    store_blocked(st, bob, m2, "cl-m2b", &blocked);
    CHECK("block: deleted with the blocking session", blocked == 0);
    store_commit(st);
}

/* One sender's share of a mailbox (store_enqueue's share): counted per
 * sending session over the unacknowledged messages only; other senders,
 * the recipient's own replies (sender_sid 0) and the quota unaffected. */
static void test_share(void)
{
    int64_t bob = new_session(70);
    store_mailbox mb;
    int rc[8];
    store_msg m = {.session_id = bob, .type = "iceCandidate", .body = "{}", .created = 5000};
    store_begin(st);
    for (int i = 0; i < 3; i++) {
        m.sender_sid = 7;
        rc[i] = store_enqueue(st, &m, 10, 3, &mb);
    }
    rc[3] = store_enqueue(st, &m, 10, 3, &mb); /* a fourth from 7 */
    m.sender_sid = 8;
    rc[4] = store_enqueue(st, &m, 10, 3, &mb);
    m.sender_sid = 0;
    rc[5] = rc[6] = LC_OK;
    for (int i = 0; i < 5 && rc[5] == LC_OK; i++)
        rc[5] = store_enqueue(st, &m, 10, 3, &mb); /* own replies: 9 in all */
    rc[6] = store_enqueue(st, &m, 10, 3, &mb);  /* the 10th */
    m.sender_sid = 8;
    rc[7] = store_enqueue(st, &m, 10, 3, &mb); /* full: the quota comes first */
    store_commit(st);
    CHECK("share: a sender's first share of messages is queued",
          rc[0] == LC_OK && rc[1] == LC_OK && rc[2] == LC_OK);
    CHECK("share: one more from the same sender is refused", rc[3] == LC_SHARE);
    CHECK("share: another sender is not affected", rc[4] == LC_OK);
    CHECK("share: the recipient's own replies are not counted", rc[5] == LC_OK && rc[6] == LC_OK);
    CHECK("share: a full mailbox refuses with LC_QUOTA", rc[7] == LC_QUOTA);
    store_begin(st);
    store_session_poll(st, NULL, bob, 2, 1100, 1, NULL); /* acknowledges two of 7's */
    m.sender_sid = 7;
    rc[0] = store_enqueue(st, &m, 20, 3, &mb);
    rc[1] = store_enqueue(st, &m, 20, 3, &mb);
    rc[2] = store_enqueue(st, &m, 20, 3, &mb);
    store_commit(st);
    CHECK("share: acknowledged messages no longer count",
          rc[0] == LC_OK && rc[1] == LC_OK && rc[2] == LC_SHARE);
}

/* The store's contract, on either store: sessions, mailboxes, quota,
 * session end, ring timeout, schedule, pruning (st is open and fresh but
 * for the earlier tests' rows). */
static void test_contract(void)
{
    int64_t a = new_session(1), b = new_session(2), c3 = new_session(3);
    uint8_t h[32] = {0};
    h[0] = 1;
    h[1] = 0xAB;
    store_session s;
    CHECK("session: found by token digest",
          store_session_by_token(st, h, &s) == LC_OK && s.id == a);
    h[0] = 9;
    CHECK("session: unknown digest not found", store_session_by_token(st, h, &s) == LC_NOTFOUND);

    /* alice calls bob, who answers: the state the store checks below start
     * from. The protocol itself (registering, rejections and their reasons,
     * the call flows) is tests/cases, run in-process by test_cases.c. */
    send_as(a, "{\"id\":\"register\",\"name\":\"alice\"}", 2000);
    send_as(b, "{\"id\":\"register\",\"name\":\"bob\"}", 2000);
    send_as(c3, "{\"id\":\"register\",\"name\":\"carol\"}", 2000);
    /* alice's history, old enough to be pruned once her session ends
     * (rejections of calls: kept as history, unlike a pong) */
    for (int i = 0; i < 3; i++)
        send_as(a, "{\"id\":\"call\",\"to\":\"nobody\",\"sdpOffer\":\"o\"}", 2100);
    send_as(a, "{\"id\":\"call\",\"to\":\"bob\",\"sdpOffer\":\"o\"}", 2200);
    send_as(a, "{\"id\":\"onIceCandidate\",\"candidate\":\"c1\"}", 2400);
    CHECK("mailbox: seqs count up from 1 in each session's own mailbox",
          contains(b, 0, "{\"seq\":3,\"id\":\"iceCandidate\",\"candidate\":\"c1\"}") &&
              contains(a, 0, "{\"seq\":4,\"id\":\"callResponse\"") && !contains(a, 4, "\"seq\""));
    CHECK("mailbox: fetch after a seq gives only the later ones",
          !contains(b, 3, "iceCandidate") && contains(b, 2, "iceCandidate"));
    send_as(b,
            "{\"id\":\"incomingCallResponse\",\"from\":\"alice\",\"callResponse\":\"accept\","
            "\"sdpOffer\":\"ans\"}",
            2500);
    CHECK("setup: the call is answered",
          contains(a, 4, "\"response\":\"accepted\"") && contains(b, 3, "startCommunication"));

    /* Quota: bob stops acknowledging; alice's candidates fill his mailbox. */
    int rc = LC_OK, sent = 0;
    for (int i = 0; i < 20 && rc == LC_OK; i++) {
        rc = send_as(a, "{\"id\":\"onIceCandidate\",\"candidate\":\"x\"}", 2600);
        if (rc == LC_OK) sent++;
    }
    CHECK("quota: the send past the quota is refused", rc == LC_QUOTA);
    store_begin_read(st);
    store_session_get(st, b, &s);
    store_rollback(st);
    CHECK("quota: the refused send left no message", s.last_seq - s.acked == cfg.mailbox_quota);
    /* A poll given the row its transaction read (the exchange's supersede,
     * api.c) answers and writes as one that reads the row itself; *left is
     * the mailbox as the commit leaves it. */
    store_session known, after;
    store_mailbox mb1 = {0}, mb2 = {0};
    store_begin(st);
    store_session_get(st, b, &known);
    int prc = store_session_poll(st, &known, b, s.last_seq - 2, 2700, 1, &mb1);
    store_commit(st);
    store_begin_read(st);
    store_session_get(st, b, &after);
    store_rollback(st);
    CHECK("poll: acknowledges and bumps poll_gen from the row it was given",
          prc == LC_OK && after.acked == s.last_seq - 2 && after.poll_gen == known.poll_gen + 1);
    CHECK("poll: *left is the mailbox as the commit left it",
          mb1.seq == after.last_seq && mb1.acked == after.acked && mb1.poll_gen == after.poll_gen);
    store_begin(st);
    prc = store_session_poll(st, NULL, b, s.last_seq, 2700, 1, &mb2);
    store_commit(st);
    store_begin_read(st);
    store_session_get(st, b, &after);
    store_rollback(st);
    CHECK("poll: without a row, reads it: *left again as the commit left it",
          prc == LC_OK && after.acked == s.last_seq && mb2.seq == after.last_seq &&
              mb2.acked == s.last_seq && mb2.poll_gen == mb1.poll_gen + 1 &&
              after.poll_gen == mb2.poll_gen);
    CHECK("quota: acknowledging frees the mailbox",
          send_as(a, "{\"id\":\"onIceCandidate\",\"candidate\":\"y\"}", 2700) == LC_OK);
    CHECK("history: an acknowledged transient reply (registerResponse) is deleted, the "
          "relayed messages stay",
          !contains(b, 0, "registerResponse") && contains(b, 0, "\"seq\":2,\"id\":\"incomingCall\""));

    /* Session end while in a call: the peer is told, the name is free. */
    proto_ctx pc = {.st = st, .cfg = &cfg, .now = 3000};
    store_begin(st);
    CHECK("end: session ends", proto_end_session(&pc, a, "expired") == LC_OK);
    store_commit(st);
    CHECK("end: peer gets stopCommunication, reason expired",
          contains(b, 0, "\"id\":\"stopCommunication\",\"reason\":\"expired\""));
    CHECK("end: her undelivered transient reply (registerResponse) is gone, the rest kept",
          !contains(a, 0, "registerResponse") && contains(a, 0, "\"seq\":2,\"id\":\"callResponse\""));
    int64_t holder;
    CHECK("end: name is free again", store_session_by_name(st, "alice", &holder) == LC_NOTFOUND);
    h[0] = 1;
    CHECK("end: token no longer finds the session",
          store_session_by_token(st, h, &s) == LC_NOTFOUND);
    proto_ctx_free(&pc);

    /* Ring timeout. */
    int64_t d = new_session(4);
    send_as(d, "{\"id\":\"register\",\"name\":\"dave\"}", 4000);
    send_as(d, "{\"id\":\"call\",\"to\":\"carol\",\"sdpOffer\":\"o\"}", 4000);
    int64_t ids[4];
    int n = 0;
    store_begin(st);
    store_calls_unanswered(st, 4000 + 30000 + 1, ids, 4, &n);
    proto_ctx rt = {.st = st, .cfg = &cfg, .now = 40000};
    CHECK("ring: one unanswered call found", n == 1);
    CHECK("ring: timeout applied", n == 1 && proto_ring_timeout(&rt, ids[0]) == LC_OK);
    store_commit(st);
    proto_ctx_free(&rt);
    CHECK("ring: caller told no answer",
          contains(d, 0, "\"message\":\"no answer\",\"reason\":\"no_answer\""));
    CHECK("ring: callee told stopCommunication, reason no_answer",
          contains(c3, 1, "\"id\":\"stopCommunication\",\"reason\":\"no_answer\""));

    int64_t due, hist;
    store_begin_read(st);
    CHECK("schedule: next due computed",
          store_next_due(st, 60000, 30000, 86400000, &due, &hist) == LC_OK);
    store_rollback(st);
    CHECK("schedule: due is the earliest idle session's expiry", due == 1000 + 60000);
    CHECK("schedule: history due after the oldest message's retention", hist == 2000 + 86400000);

    /* Pruning: alice's session ended, so her undelivered messages may go;
     * bob is live and has unacknowledged messages, which must stay. */
    store_begin_read(st);
    store_session_get(st, b, &s);
    store_rollback(st);
    int64_t bob_pending = s.last_seq - s.acked;
    int deleted = 0;
    store_begin(st);
    CHECK("prune: runs", store_prune(st, 2500, 2, &deleted) == LC_OK);
    store_commit(st);
    CHECK("prune: bounded by its limit (3 of alice's messages are older)", deleted == 2);
    store_begin(st);
    for (int i = 0; i < 50; i++)
        store_prune(st, 1 << 30, 100, &deleted);
    store_commit(st);
    char box[8192];
    mailbox(b, s.acked, box, sizeof box);
    int left = 0;
    for (char *q = box; (q = strstr(q, "\"seq\":")); q++)
        left++;
    CHECK("prune: a live session's undelivered messages are kept", left == bob_pending);

    test_fetch_rows(); /* last: its messages would be the oldest history */
    test_share();
}

/* store_db_describe: a password never reaches a log line. */
static void test_describe(void)
{
    static const struct {
        const char *db, *shown;
    } cases[] = {
        {"/var/lib/longcall/longcall.db", "/var/lib/longcall/longcall.db"},
        {"postgresql://lc@db.example.org/longcall", "postgresql://lc@db.example.org/longcall"},
        {"postgresql://lc:s3cret@db.example.org:5432/longcall",
         "postgresql://lc:***@db.example.org:5432/longcall"},
        {"postgres://lc:x@h/d?sslmode=require", "postgres://lc:***@h/d?sslmode=require"},
        {"postgresql://h/d?user=lc&password=s3cret&sslmode=require",
         "postgresql://h/d?user=lc&password=***&sslmode=require"},
        {"host=db dbname=longcall password=s3cret user=lc",
         "host=db dbname=longcall password=*** user=lc"},
        {"host=db password='s3 cr\\'et' dbname=x", "host=db password=*** dbname=x"},
        {"host=db password = s3cret dbname=x", "host=db password = *** dbname=x"},
        {"dbname=x password='' user=y", "dbname=x password=*** user=y"},
    };
    int good = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        store_db_describe(cases[i].db, out, sizeof out);
        if (strcmp(out, cases[i].shown) != 0) {
            printf("# describe %s: %s\n", cases[i].db, out);
            good = 0;
        }
    }
    CHECK("describe: passwords of PostgreSQL URIs and key=value strings are hidden", good);
    CHECK("which store: URIs and key=value strings with dbname= or host= are PostgreSQL",
          store_db_is_pg("postgresql://h/d") && store_db_is_pg("postgres://h/d") &&
              store_db_is_pg("dbname=x") && store_db_is_pg("host=/run/postgresql") &&
              !store_db_is_pg("var/longcall.db") && !store_db_is_pg("/srv/postgres/x.db"));
}

/* A second connection holds the write lock (the advisory lock store_begin
 * takes) until it ends. */
static void *hold_pg_lock(void *arg)
{
    PGconn *c = arg;
    usleep(1500 * 1000);
    PQclear(PQexec(c, "COMMIT"));
    return NULL;
}

/* PostgreSQL's busy and open problems: a writer waits for another's lock
 * (here a psql-like connection's) and gets LC_BUSY past the busy timeout;
 * a newer schema is refused as STORE_NEWER; a server not there is
 * STORE_OTHER; the data written stays. */
static void test_pg_open(const char *uri)
{
    PGconn *c = PQconnectdb(uri);
    PQclear(PQexec(c, "BEGIN"));
    PGresult *r = PQexec(c, "SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE ")");
    CHECK("pg: another connection takes the write lock", PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
    store *quick = NULL;
    CHECK("pg: a second store opens meanwhile (opening takes no write lock)",
          store_open(uri, 200, &quick) == LC_OK);
    int64_t t0 = lc_mono_ms();
    int rc = quick ? store_begin(quick) : LC_ERR;
    if (rc == LC_OK) store_rollback(quick);
    CHECK("pg: a write waits for the lock, then LC_BUSY after the busy timeout",
          rc == LC_BUSY && lc_mono_ms() - t0 >= 150);
    CHECK("pg: reads are not held up by the write lock",
          quick && store_begin_read(quick) == LC_OK && store_commit(quick) == LC_OK);
    pthread_t th;
    pthread_create(&th, NULL, hold_pg_lock, c);
    store *patient = NULL;
    rc = store_open(uri, 10000, &patient);
    if (rc == LC_OK) rc = store_begin(patient); /* waits for the COMMIT */
    int64_t id = 0;
    uint8_t h[32] = {0x91};
    if (rc == LC_OK) rc = store_session_create(patient, h, 1000, &id);
    if (rc == LC_OK) rc = store_commit(patient);
    pthread_join(th, NULL);
    CHECK("pg: a writer within its busy timeout gets the lock once it is free", rc == LC_OK);
    store_close(patient);
    store_close(quick);
    PQfinish(c);

    store_problem why = STORE_FINE;
    store *x = NULL;
    CHECK("pg: the thorough check passes on a good database",
          store_open_why(uri, 1000, 1, &x, &why) == LC_OK && why == STORE_FINE);
    store_close(x);
    x = NULL;
    unit_pg_exec(uri, "UPDATE longcall_schema SET version = 99");
    CHECK("pg: a newer schema is refused as STORE_NEWER",
          store_open_why(uri, 1000, 0, &x, &why) == LC_ERR && why == STORE_NEWER && !x);
    char sql[64];
    snprintf(sql, sizeof sql, "UPDATE longcall_schema SET version = %d", lc_pg_migration_count);
    unit_pg_exec(uri, sql);
    CHECK("pg: a server that is not there is STORE_OTHER",
          store_open_why("postgresql://nobody@127.0.0.1:1/none", 1000, 0, &x, &why) == LC_ERR &&
              why == STORE_OTHER && !x);
    uint8_t h2[32] = {0x91};
    store_session s;
    CHECK("pg: the session committed earlier is there after it all",
          store_open(uri, 1000, &x) == LC_OK && store_begin_read(x) == LC_OK &&
              store_session_by_token(x, h2, &s) == LC_OK && s.id == id);
    store_rollback(x);
    store_close(x);
}

/* store_begin_job on PostgreSQL: a job claimed by one connection (node) is
 * skipped by another -- nothing begun, no wait for the write lock (it
 * would end in LC_BUSY) -- until the first commits. */
static void test_pg_jobs(const char *uri)
{
    store *other = NULL;
    int mine = -1, mine2 = -1;
    CHECK("pg jobs: a second connection", store_open(uri, 1000, &other) == LC_OK);
    if (!other) return;
    int rc = store_begin_job(st, STORE_JOB_EXPIRE, &mine);
    CHECK("pg jobs: the first claim begins a write transaction", rc == LC_OK && mine == 1);
    rc = store_begin_job(other, STORE_JOB_EXPIRE, &mine2);
    CHECK("pg jobs: another connection's claim of that job: LC_OK, not its own, nothing begun",
          rc == LC_OK && mine2 == 0);
    CHECK("pg jobs: that connection is free for other transactions meanwhile",
          store_begin_read(other) == LC_OK && store_commit(other) == LC_OK);
    if (mine == 1) store_commit(st);
    rc = store_begin_job(other, STORE_JOB_EXPIRE, &mine2);
    CHECK("pg jobs: once the first committed, the job is the other's", rc == LC_OK && mine2 == 1);
    if (rc == LC_OK && mine2 == 1) store_commit(other);
    store_close(other);
}

/* The contract on PostgreSQL (store_pg.c): unit_pg.h's server. */
static int main_pg(void)
{
    char uri[512];
    CHECK("pg: a fresh database", unit_pg_database("unit_store", uri, sizeof uri) == 0);
    CHECK("pg: open creates and migrates", store_open(uri, 1000, &st) == LC_OK);
    if (!st) return unit_done();
    store *again = NULL;
    CHECK("pg: second open of a migrated database", store_open(uri, 1000, &again) == LC_OK);
    store_close(again);
    test_describe();
    test_rollback_foreign();
    test_list_rate();
    test_reservations();
    test_call_limits();
    test_contract();
    test_pg_open(uri);
    test_pg_jobs(uri);
    store_close(st);
    unit_pg_drop("unit_store");
    return unit_done();
}

/* Pages written to the WAL by store_session_poll of id at now (bump), in
 * a transaction of its own; -1 when it failed. */
static int poll_pages(int64_t id, int64_t now, int bump)
{
    int cur = 0, hi = 0;
    sqlite3_db_status(st->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 1);
    store_begin(st);
    int rc = store_session_poll(st, NULL, id, 0, now, bump, NULL);
    if (store_commit(st) != LC_OK || rc != LC_OK) return -1;
    sqlite3_db_status(st->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 0);
    return cur;
}

/* last_seen, the expiry clock, is rewritten at most every
 * STORE_SEEN_EVERY_MS: an exchange bumps poll_gen in its session's row on
 * every message, and rewriting last_seen too moved the row in the index
 * of live sessions by last_seen -- one more page to the WAL each time. */
static void test_seen_every(void)
{
    int64_t id = new_session(78); /* last_seen 1000 */
    store_session s = {0};
    int within = poll_pages(id, 1000 + STORE_SEEN_EVERY_MS - 1, 1);
    store_begin_read(st);
    store_session_get(st, id, &s);
    store_rollback(st);
    CHECK("last_seen: a poll within STORE_SEEN_EVERY_MS bumps poll_gen, leaves last_seen",
          s.poll_gen == 1 && s.last_seen == 1000);
    int nothing = poll_pages(id, 1000 + STORE_SEEN_EVERY_MS - 1, 0);
    int later = poll_pages(id, 1000 + STORE_SEEN_EVERY_MS, 1);
    store_begin_read(st);
    store_session_get(st, id, &s);
    store_rollback(st);
    CHECK("last_seen: recorded again STORE_SEEN_EVERY_MS after", s.poll_gen == 2 &&
                                                                    s.last_seen == 1000 + STORE_SEEN_EVERY_MS);
    printf("# pages written: %d within, %d recording last_seen, %d with nothing new\n", within, later,
           nothing);
    CHECK("last_seen: within it, one page (the row; not the index by last_seen); none when "
          "nothing changes",
          within == 1 && later > within && nothing == 0);
}

/* A session's live call, found after 2,000 ended calls in its history
 * (db/009): the lookup's work does not grow with the history. Measured in
 * SQLite's own count of virtual machine steps, not in time: before the
 * partial indexes it stepped over every ended call of the session, as
 * caller and as callee (thousands of steps here); with them a few dozen.
 * SQLite only (PostgreSQL's plan is its planner's choice). */
static void test_live_call_history(void)
{
    int64_t a = addr_session(70, "192.0.2.70", "lh-a"), b = addr_session(71, "192.0.2.71", "lh-b");
    for (int i = 0; i < 1000; i++) {
        past_call(a, b, 2000 + i, 1, 3000 + i); /* a called b */
        past_call(b, a, 2000 + i, 0, 3000 + i); /* b called a */
    }
    int64_t live = past_call(b, a, 9000, 1, 0);
    store_call c = {0};
    sqlite3_stmt *s = stmt(st, S_CALL_LIVE);
    sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 1);
    store_begin_read(st);
    int rc = store_call_live(st, a, &c);
    store_rollback(st);
    int steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
    CHECK("live call: found among 2,000 ended ones of the session",
          rc == LC_OK && c.id == live && c.caller_sid == b);
    printf("# live call lookup: %d virtual machine steps\n", steps);
    CHECK("live call: the lookup's work does not grow with the history (under 200 steps)",
          steps > 0 && steps < 200);
    char plan[512] = "";
    char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql_text[S_CALL_LIVE]);
    sqlite3_stmt *e = NULL;
    if (sqlite3_prepare_v2(st->db, q, -1, &e, NULL) == SQLITE_OK) {
        while (sqlite3_step(e) == SQLITE_ROW) {
            size_t n = strlen(plan);
            snprintf(plan + n, sizeof plan - n, "%s; ", (const char *)sqlite3_column_text(e, 3));
        }
    }
    sqlite3_finalize(e);
    sqlite3_free(q);
    printf("# plan: %s\n", plan);
    CHECK("live call: the plan searches the live-call indexes (db/009)",
          strstr(plan, "calls_live_caller") && strstr(plan, "calls_live_callee"));
}

int main(void)
{
    lc_json_init();
    lc_log_set_level(LC_LOG_ERROR);
    if (unit_pg_server()) return main_pg();
    char dir[] = "/tmp/longcall-unit-XXXXXX", path[128];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    CHECK("store: open creates and migrates", store_open(path, 1000, &st) == LC_OK);
    store *again = NULL;
    CHECK("store: second open of a migrated database", store_open(path, 1000, &again) == LC_OK);
    store_close(again);
    CHECK("store: a new database has 1 KiB pages", pragma_int(st, "PRAGMA page_size") == 1024);
    test_describe();
    test_page_size(dir);
    test_rollback_foreign();
    test_open_while_locked(dir);
    test_full(dir);
    test_open_problems(dir);
    test_list_rate();
    test_error_summary(dir);
    test_reservations();
    test_call_limits();
    test_live_call_history();
    test_seen_every();
    test_contract();
    test_wal_runs(path);
    test_wal_kept(path);
    test_plain_reader(path);
    int mine = 0;
    CHECK("store: store_begin_job on SQLite is store_begin, always the caller's",
          store_begin_job(st, STORE_JOB_PRUNE, &mine) == LC_OK && mine == 1);
    store_rollback(st);
    store_close(st);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return unit_done();
}
