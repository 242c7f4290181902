/* libFuzzer target: the WAL VFS wrapper (fcgi/walvfs.c) under a crash.
 *
 * walvfs is registered over "faulty", a VFS of this file over "unix" that
 * counts every write, sync and truncate of the database and its WAL. The
 * input sets up a fresh database (page size, cache size, synchronous,
 * auto-checkpoint) and a fault point N, then runs a random sequence of
 * transactions on table t(id, v): explicit multi-statement transactions
 * (insert or replace, update, delete, delete a range; rows of 0 bytes to
 * 70 KB) that commit or roll back, single statements in autocommit, and
 * checkpoints of every mode. At the N-th write the process "crashes": the
 * write puts only a prefix of its bytes on disk (none, 1/4, 1/2 or 3/4;
 * what a disk that fills up or a process killed inside write(2) leaves),
 * the database and WAL files are copied as they are on disk at that
 * moment, and nothing written afterwards reaches the disk (the connection
 * is closed without its checkpoint). When the input ends first, the copy is
 * taken then (kill -9 between transactions).
 *
 * The copy is opened with a plain sqlite3 connection (default VFS, no -shm:
 * SQLite recovers the WAL): PRAGMA integrity_check must say ok and table t
 * must hold exactly the transactions whose COMMIT returned SQLITE_OK.
 *
 * The one in-flight transaction: when the crash hits while COMMIT (or an
 * autocommit statement) runs, the copy may hold it completely or not at
 * all. Its frames reach the WAL before the commit frame (walvfs writes a
 * transaction's held frames as one run that ends with the commit frame,
 * and a run that outgrows its buffer in order before it); SQLite counts a
 * transaction only when its commit frame and every frame before it carry
 * valid cumulative checksums with the WAL header's salt, so a commit frame
 * that reached the disk whole makes all of it visible and a torn one none
 * of it. A crash while any other statement runs (frames a full page cache
 * spilled into the WAL without a commit frame), during a ROLLBACK or a
 * checkpoint (which copies committed pages only, and resets the WAL only
 * once they are all in the database) must leave exactly the committed
 * state.
 *
 * Disk full (setup byte bit 7): the N-th write puts its prefix on disk and
 * fails with SQLITE_FULL (a sync or truncate fails), and the process goes
 * on. After every operation the connection must see exactly what it
 * committed -- or, after a COMMIT that reported the failure, that
 * transaction whole (then it counts as committed). The copy is taken at the
 * end; it may also hold the last transaction whose COMMIT failed, if no
 * later commit wrote frames over its own: a commit frame written whole before a
 * failing sync is valid in the WAL although SQLite, which never published
 * it, reported the failure. */
#include "../../fcgi/walvfs.c"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_walvfs: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static char dir[64], db_path[128], copy_path[128];

/* ---- the fault-injecting VFS under walvfs ------------------------------- */

typedef struct ffile {
    sqlite3_file base;
    sqlite3_file *real;
    int counted; /* the main database or its WAL */
    int wal;
} ffile;

static sqlite3_vfs *unix_vfs;
static sqlite3_vfs faulty_vfs;
static sqlite3_io_methods faulty_methods;
static long fault_at; /* the I/O call that crashes (1-based), 0: none */
static long io_calls; /* counted calls so far */
static unsigned torn; /* quarters of the crashing write that reach the disk */
static int crashed;   /* the copy is taken; nothing reaches the disk any more */
static int in_commit; /* the harness is running a COMMIT or autocommit statement */
static int crash_in_commit;
static int disk_full; /* the fault is one failing write, not a crash */
static long writes;   /* writes to the WAL that went through */

static void copy_file(const char *from, const char *to)
{
    unlink(to);
    int in = open(from, O_RDONLY);
    if (in < 0) return; /* no WAL yet */
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) FAIL("cannot create %s", to);
    char chunk[65536];
    ssize_t n;
    while ((n = read(in, chunk, sizeof chunk)) > 0)
        if (write(out, chunk, (size_t)n) != n) FAIL("copy to %s", to);
    close(in);
    close(out);
}

/* The crash: the files as they are now. */
static void take_copy(void)
{
    char from[160], to[160];
    copy_file(db_path, copy_path);
    snprintf(from, sizeof from, "%s-wal", db_path);
    snprintf(to, sizeof to, "%s-wal", copy_path);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s-shm", copy_path);
    unlink(to);
    crashed = 1;
    crash_in_commit = in_commit;
}

/* 1 when this call is the crash (or after it): the caller fails it. */
static int fault(sqlite3_file *p)
{
    ffile *f = (ffile *)p;
    if (crashed) return 1;
    if (!f->counted || !fault_at) return 0;
    return ++io_calls == fault_at;
}

#define FREAL(p) (((ffile *)(p))->real)

static int f_close(sqlite3_file *p)
{
    return FREAL(p)->pMethods->xClose(FREAL(p));
}

static int f_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 off)
{
    return FREAL(p)->pMethods->xRead(FREAL(p), out, amt, off);
}

static int f_write(sqlite3_file *p, const void *d, int amt, sqlite3_int64 off)
{
    if (getenv("FUZZ_DEBUG")) fprintf(stderr, "#   write %d at %lld\n", amt, (long long)off);
    if (crashed) return SQLITE_IOERR_WRITE;
    if (fault(p)) {
        int part = (int)((long)amt * torn / 4);
        if (part) FREAL(p)->pMethods->xWrite(FREAL(p), d, part, off);
        if (disk_full) return SQLITE_FULL; /* and the process goes on */
        take_copy();
        return SQLITE_IOERR_WRITE;
    }
    writes += ((ffile *)p)->wal;
    return FREAL(p)->pMethods->xWrite(FREAL(p), d, amt, off);
}

static int f_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    if (crashed) return SQLITE_IOERR_TRUNCATE;
    if (fault(p)) {
        if (!disk_full) take_copy();
        return SQLITE_IOERR_TRUNCATE;
    }
    return FREAL(p)->pMethods->xTruncate(FREAL(p), size);
}

static int f_sync(sqlite3_file *p, int flags)
{
    if (crashed) return SQLITE_IOERR_FSYNC;
    if (fault(p)) {
        if (!disk_full) take_copy();
        return SQLITE_IOERR_FSYNC;
    }
    return FREAL(p)->pMethods->xSync(FREAL(p), flags);
}

static int f_size(sqlite3_file *p, sqlite3_int64 *size)
{
    return FREAL(p)->pMethods->xFileSize(FREAL(p), size);
}
static int f_lock(sqlite3_file *p, int l)
{
    return FREAL(p)->pMethods->xLock(FREAL(p), l);
}
static int f_unlock(sqlite3_file *p, int l)
{
    return FREAL(p)->pMethods->xUnlock(FREAL(p), l);
}
static int f_check(sqlite3_file *p, int *out)
{
    return FREAL(p)->pMethods->xCheckReservedLock(FREAL(p), out);
}
static int f_fcntl(sqlite3_file *p, int op, void *arg)
{
    return FREAL(p)->pMethods->xFileControl(FREAL(p), op, arg);
}
static int f_sector(sqlite3_file *p)
{
    return FREAL(p)->pMethods->xSectorSize(FREAL(p));
}
static int f_caps(sqlite3_file *p)
{
    return FREAL(p)->pMethods->xDeviceCharacteristics(FREAL(p));
}
static int f_shm_map(sqlite3_file *p, int pg, int sz, int extend, void volatile **out)
{
    return FREAL(p)->pMethods->xShmMap(FREAL(p), pg, sz, extend, out);
}
static int f_shm_lock(sqlite3_file *p, int off, int n, int flags)
{
    return FREAL(p)->pMethods->xShmLock(FREAL(p), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *p)
{
    FREAL(p)->pMethods->xShmBarrier(FREAL(p));
}
static int f_shm_unmap(sqlite3_file *p, int del)
{
    return FREAL(p)->pMethods->xShmUnmap(FREAL(p), del);
}
static int f_fetch(sqlite3_file *p, sqlite3_int64 off, int amt, void **out)
{
    *out = NULL; /* no memory mapping: every read goes through xRead */
    (void)p, (void)off, (void)amt;
    return SQLITE_OK;
}
static int f_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
    (void)p, (void)off, (void)ptr;
    return SQLITE_OK;
}

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out_flags)
{
    (void)vfs;
    ffile *f = (ffile *)p;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = unix_vfs->xOpen(unix_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || !f->real->pMethods) {
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    f->counted = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    f->base.pMethods = &faulty_methods;
    return SQLITE_OK;
}

static int f_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    (void)vfs;
    if (crashed) return SQLITE_IOERR_DELETE; /* a dead process deletes nothing */
    return unix_vfs->xDelete(unix_vfs, name, sync);
}

static void cleanup(void)
{
    char p[200];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", db_path, suffix[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s%s", copy_path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/lcwalfuzz.XXXXXX", base);
    if (!mkdtemp(dir)) FAIL("mkdtemp");
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(copy_path, sizeof copy_path, "%s/copy.db", dir);
    unix_vfs = sqlite3_vfs_find("unix");
    faulty_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = f_close,
        .xRead = f_read,
        .xWrite = f_write,
        .xTruncate = f_truncate,
        .xSync = f_sync,
        .xFileSize = f_size,
        .xLock = f_lock,
        .xUnlock = f_unlock,
        .xCheckReservedLock = f_check,
        .xFileControl = f_fcntl,
        .xSectorSize = f_sector,
        .xDeviceCharacteristics = f_caps,
        .xShmMap = f_shm_map,
        .xShmLock = f_shm_lock,
        .xShmBarrier = f_shm_barrier,
        .xShmUnmap = f_shm_unmap,
        .xFetch = f_fetch,
        .xUnfetch = f_unfetch,
    };
    faulty_vfs = *unix_vfs;
    faulty_vfs.zName = "faulty";
    faulty_vfs.szOsFile = (int)sizeof(ffile) + unix_vfs->szOsFile;
    faulty_vfs.xOpen = f_open;
    faulty_vfs.xDelete = f_delete;
    faulty_vfs.pNext = NULL;
    if (sqlite3_vfs_register(&faulty_vfs, 0) != SQLITE_OK) FAIL("register faulty");
    if (walvfs_register_on("faulty") != 0) FAIL("walvfs_register_on");
    atexit(cleanup);
    return 0;
}

/* ---- the model ---------------------------------------------------------- */

#define NROWS 64

typedef struct row {
    int present;
    int len;
    unsigned seed;
} row;

typedef struct model {
    row r[NROWS];
} model;

static void fill(unsigned char *v, int len, unsigned seed, int id)
{
    uint32_t x = seed * 2654435761u + (uint32_t)id * 40503u + 1;
    for (int i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        v[i] = (unsigned char)(x >> 16);
    }
}

typedef struct in {
    const uint8_t *p;
    size_t n, off;
} in;

static unsigned byte(in *r)
{
    return r->off < r->n ? r->p[r->off++] : 0;
}

static const int sizes[] = {0, 1, 10, 100, 700, 1000, 3000, 5000, 20000, 70000};

/* Runs one statement of the input on db, applying it to m when it
 * succeeds; *done gets m with the statement applied either way (what a
 * crashed autocommit statement may have committed). Returns the SQLite
 * result. */
static int statement(sqlite3 *db, in *r, model *m, model *done)
{
    unsigned kind = byte(r) % 5, id = byte(r) % NROWS;
    sqlite3_stmt *s = NULL;
    int rc;
    static unsigned char v[70000];
    if (kind <= 1) { /* insert or replace, update */
        int len = sizes[byte(r) % (sizeof sizes / sizeof sizes[0])];
        unsigned seed = byte(r);
        fill(v, len, seed, (int)id);
        sqlite3_prepare_v2(db,
                           kind == 0 ? "INSERT OR REPLACE INTO t(id, v) VALUES (?1, ?2)"
                                     : "UPDATE t SET v = ?2 WHERE id = ?1",
                           -1, &s, NULL);
        sqlite3_bind_int(s, 1, (int)id);
        sqlite3_bind_blob(s, 2, v, len, SQLITE_STATIC);
        rc = sqlite3_step(s);
        *done = *m;
        if (kind == 0 || done->r[id].present) done->r[id] = (row){1, len, seed};
    } else if (kind <= 3) { /* delete one */
        sqlite3_prepare_v2(db, "DELETE FROM t WHERE id = ?1", -1, &s, NULL);
        sqlite3_bind_int(s, 1, (int)id);
        rc = sqlite3_step(s);
        *done = *m;
        done->r[id].present = 0;
    } else { /* delete a range */
        sqlite3_prepare_v2(db, "DELETE FROM t WHERE id < ?1", -1, &s, NULL);
        sqlite3_bind_int(s, 1, (int)id / 4);
        rc = sqlite3_step(s);
        *done = *m;
        for (unsigned i = 0; i < id / 4; i++)
            done->r[i].present = 0;
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE) *m = *done;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* 1 when the copy holds exactly m. */
static int holds(sqlite3 *db, const model *m, char *why, size_t n)
{
    static unsigned char v[70000];
    int seen[NROWS] = {0};
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT id, v FROM t ORDER BY id", -1, &s, NULL) != SQLITE_OK) {
        snprintf(why, n, "no table t: %s", sqlite3_errmsg(db));
        return 0;
    }
    int ok = 1, rc;
    while (ok && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        int id = sqlite3_column_int(s, 0);
        const void *b = sqlite3_column_blob(s, 1);
        int len = sqlite3_column_bytes(s, 1);
        if (id < 0 || id >= NROWS || !m->r[id].present) {
            snprintf(why, n, "row %d should not be there", id);
            ok = 0;
            break;
        }
        seen[id] = 1;
        fill(v, m->r[id].len, m->r[id].seed, id);
        if (len != m->r[id].len || (len && memcmp(b, v, (size_t)len) != 0)) {
            snprintf(why, n, "row %d holds %d bytes, not the %d committed", id, len, m->r[id].len);
            ok = 0;
        }
    }
    if (ok && rc != SQLITE_DONE) {
        snprintf(why, n, "reading t: %s", sqlite3_errmsg(db));
        ok = 0;
    }
    sqlite3_finalize(s);
    for (int i = 0; ok && i < NROWS; i++)
        if (m->r[i].present && !seen[i]) {
            snprintf(why, n, "committed row %d is missing", i);
            ok = 0;
        }
    return ok;
}

static void check_copy(const model *committed, const model *inflight)
{
    sqlite3 *db;
    if (sqlite3_open_v2(copy_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        FAIL("cannot open the copy: %s", sqlite3_errmsg(db));
    sqlite3_stmt *s;
    const char *ic = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        ic = (const char *)sqlite3_column_text(s, 0);
    if (!ic || strcmp(ic, "ok") != 0)
        FAIL("integrity_check of the copy: %s (%s)", ic ? ic : "no answer", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    char why1[160], why2[160] = "";
    if (!holds(db, committed, why1, sizeof why1) &&
        !(inflight && holds(db, inflight, why2, sizeof why2)))
        FAIL("the copy does not hold the committed transactions: %s%s%s", why1,
             inflight ? "; nor with the one in flight (or whose COMMIT failed): " : "", why2);
    sqlite3_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in r = {data, size, 0};
    static const int pages[] = {512, 1024, 4096, 1024};
    static const int caches[] = {-2000, 5, 10, 50}; /* small: transactions spill */
    static const int autockpt[] = {1000, 0, 5, 30};
    char sql[200];
    sqlite3 *db;
    cleanup();
    if (mkdir(dir, 0700) != 0) FAIL("mkdir %s", dir);
    crashed = crash_in_commit = in_commit = 0;
    io_calls = writes = 0;
    fault_at = 0;
    unsigned setup = byte(&r);
    disk_full = (setup & 128) != 0;
    /* FUZZ_WALVFS_BASE=1: without walvfs (is a finding SQLite's own?) */
    const char *vfs = getenv("FUZZ_WALVFS_BASE") ? "faulty" : WALVFS_NAME;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) != SQLITE_OK)
        FAIL("open: %s", sqlite3_errmsg(db));
    snprintf(sql, sizeof sql,
             "PRAGMA page_size = %d; PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;"
             "PRAGMA cache_size = %d; PRAGMA wal_autocheckpoint = %d;"
             "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL);",
             pages[setup % 4], setup & 4 ? "FULL" : "NORMAL", caches[(setup >> 3) % 4],
             autockpt[(setup >> 5) % 4]);
    if (exec(db, sql) != SQLITE_OK) FAIL("set-up: %s", sqlite3_errmsg(db));
    fault_at = (long)(byte(&r) | byte(&r) << 8); /* 0: no fault, the input's end crashes */
    torn = byte(&r) % 4;

    model committed = {0}, pending, done, failed;
    int inflight = 0, failed_valid = 0;
    for (int ops = 0; ops < 40 && r.off < r.n && !crashed; ops++) {
        unsigned op = byte(&r);
        if (getenv("FUZZ_DEBUG")) fprintf(stderr, "# op %u (%u) io %ld\n", op % 6, op, io_calls);
        pending = committed;
        inflight = 0;
        switch (op % 6) {
        case 0:
        case 1:
        case 2: { /* a transaction: commit, or (op & 8) roll back */
            if (exec(db, "BEGIN") != SQLITE_OK) break;
            int n = 1 + (int)(op >> 4) % 6, rc = SQLITE_OK;
            for (int i = 0; i < n && rc == SQLITE_OK && !crashed; i++)
                rc = statement(db, &r, &pending, &done);
            if (crashed || rc != SQLITE_OK) {
                exec(db, "ROLLBACK");
                break;
            }
            if (op & 8) {
                exec(db, "ROLLBACK");
                break;
            }
            in_commit = 1;
            long w0 = writes;
            rc = exec(db, "COMMIT");
            in_commit = 0;
            if (rc == SQLITE_OK) {
                committed = pending;
                if (writes > w0) failed_valid = 0; /* its frames overwrote the failed one's */
            } else if (crashed) {
                inflight = 1;
            } else {
                exec(db, "ROLLBACK");
                failed = pending;
                failed_valid = 1;
            }
            break;
        }
        case 3: { /* one statement in autocommit */
            in_commit = 1;
            long w0 = writes;
            int rc = statement(db, &r, &pending, &done);
            in_commit = 0;
            if (rc == SQLITE_OK) {
                committed = pending;
                if (writes > w0) failed_valid = 0;
            } else if (crashed) {
                pending = done;
                inflight = 1;
            } else {
                failed = done;
                failed_valid = 1;
            }
            break;
        }
        case 4: { /* a checkpoint */
            static const char *const mode[] = {"PASSIVE", "FULL", "RESTART", "TRUNCATE"};
            snprintf(sql, sizeof sql, "PRAGMA wal_checkpoint(%s)", mode[(op >> 3) % 4]);
            exec(db, sql);
            break;
        }
        default: /* a read: walvfs flushes nothing held on a read-only transaction */
            exec(db, "SELECT count(*), sum(length(v)) FROM t");
            break;
        }
        if (disk_full && !crashed) {
            /* The connection goes on after a failed write: it must see
             * what it committed (or, after a COMMIT that reported the
             * failure, all of that transaction or none of it). */
            char why1[160], why2[160];
            if (!holds(db, &committed, why1, sizeof why1)) {
                if (!failed_valid || !holds(db, &failed, why2, sizeof why2))
                    FAIL("after a failed write the connection sees neither what it committed "
                         "(%s) nor that with the failed transaction",
                         why1);
                if (getenv("FUZZ_DEBUG")) fprintf(stderr, "# the failed commit is visible\n");
                committed = failed; /* its COMMIT failed after the commit took */
                failed_valid = 0;
            }
        }
    }
    if (!crashed) take_copy(); /* kill -9 between transactions */
    sqlite3_close_v2(db);      /* nothing reaches the disk any more */
    /* The copy: what was committed; or with the transaction whose COMMIT
     * the crash interrupted; or (disk full) with the last one whose COMMIT
     * failed and that no later commit overwrote in the WAL. */
    check_copy(&committed, inflight && crash_in_commit ? &pending : failed_valid ? &failed : NULL);
    crashed = 0;
    return 0;
}
