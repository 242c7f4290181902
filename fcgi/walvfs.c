/* walvfs: a thin SQLite VFS over the default one ("unix") that writes the
 * frames SQLite appends to a WAL -- a 24-byte header, then the page, frame
 * after frame -- with one pwrite per transaction instead of two per frame.
 * Everything else, and every other file, goes straight through. It does not
 * know the schema, transactions or locking: those stay SQLite's. See
 * walvfs.h for why. Memory: one run buffer per WAL file that has been
 * written (up to RUN_MAX), freed at close; without it, writes go through as
 * SQLite made them. */

#include "walvfs.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_HDR 24
/* A run is written when it would grow past this. Below 128 KiB: the unix
 * VFS's seekAndWrite() keeps only the low 17 bits of a write's size (it
 * never gets more than a page from SQLite). */
#define RUN_MAX (64 * 1024)

typedef struct wfile {
    sqlite3_file base;      /* our methods */
    sqlite3_file *real;     /* the unix VFS's file, allocated right after us */
    int wal;                /* a -wal file: appended writes are held back */
    sqlite3_int64 run_off;  /* file offset of run[0] */
    int run_len;            /* bytes held, not yet written */
    int commit_hdr;         /* the last frame header written is a commit frame's */
    sqlite3_int64 page_off; /* where that header's page goes */
    sqlite3_int64 hi;       /* end of the furthest write through this handle */
    unsigned char *run;
    int run_cap;
} wfile;

static sqlite3_vfs *base_vfs;
static sqlite3_vfs wal_vfs;
static sqlite3_io_methods wal_methods;

/* Writes what is held, as one write. Called before anything else that
 * reaches the file and when a transaction's commit frame is complete, so
 * that SQLite's view (what it wrote, in what order) is what the file shows
 * whenever SQLite -- this connection or another, in this process or another
 * -- can look: a frame is read only once a commit names it in the
 * wal-index, and SQLite updates the wal-index only after the commit frame's
 * write returned. An error is SQLite's to see on the call that flushed. */
static int flush_held(wfile *f)
{
    if (!f->run_len) return SQLITE_OK;
    int n = f->run_len;
    f->run_len = 0;
    return f->real->pMethods->xWrite(f->real, f->run, n, f->run_off);
}

static int w_close(sqlite3_file *p)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->run);
    f->run = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 off)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amt, off);
}

/* Makes room for need bytes in f->run. Returns 0, or -1 (nothing held then
 * can be added: write through). */
static int run_room(wfile *f, int need)
{
    if (need <= f->run_cap) return 0;
    int cap = f->run_cap ? f->run_cap : 16 * 1024;
    while (cap < need)
        cap *= 2;
    if (cap > RUN_MAX) cap = RUN_MAX;
    unsigned char *b = realloc(f->run, (size_t)cap);
    if (!b) return -1;
    f->run = b;
    f->run_cap = cap;
    return 0;
}

static int w_write(sqlite3_file *p, const void *data, int amt, sqlite3_int64 off)
{
    wfile *f = (wfile *)p;
    if (!f->wal) return f->real->pMethods->xWrite(f->real, data, amt, off);
    int rc = SQLITE_OK;
    /* A write that does not continue the run (a new run, an in-place
     * rewrite of an earlier frame, or a full buffer) writes the run first. */
    if (f->run_len && (off != f->run_off + f->run_len || f->run_len + amt > RUN_MAX))
        rc = flush_held(f);
    if (rc != SQLITE_OK) return rc;
    if (off + amt > f->hi) f->hi = off + amt;
    int hdr = amt == FRAME_HDR;
    if (hdr) {
        /* A frame header (the WAL's own header is 32 bytes). Bytes 4-7: the
         * database size after a commit, 0 in the other frames. */
        const unsigned char *h = data;
        f->commit_hdr = (h[4] | h[5] | h[6] | h[7]) != 0;
        f->page_off = off + FRAME_HDR;
    }
    /* A header that neither continues the run nor extends the file is
     * rewritten in place: the new checksums SQLite writes over a
     * transaction's frames when it rewrote one of their pages
     * (walRewriteChecksums), last of all the commit frame's, with no page
     * after it. Held, that commit header would wait for a page that never
     * comes and the committed transaction would not be on disk. */
    int rewrite = hdr && !f->run_len && off + amt < f->hi;
    if (rewrite || amt > RUN_MAX || run_room(f, f->run_len + amt) != 0) {
        rc = flush_held(f); /* before: this may be the page of a held commit header */
        return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, amt, off);
    }
    if (!f->run_len) f->run_off = off;
    memcpy(f->run + f->run_len, data, (size_t)amt);
    f->run_len += amt;
    if (hdr) return SQLITE_OK;
    /* The page of a commit frame ends the transaction's frames. */
    if (f->commit_hdr && off == f->page_off) {
        f->commit_hdr = 0;
        return flush_held(f);
    }
    return SQLITE_OK;
}

static int w_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
    if (size < f->hi) f->hi = size;
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int w_sync(sqlite3_file *p, int flags)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int w_size(sqlite3_file *p, sqlite3_int64 *size)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

/* The rest pass through (held frames are written first where the call
 * may look at or reshape the file). */
#define REAL(p) (((wfile *)(p))->real)

static int w_lock(sqlite3_file *p, int l)
{
    return REAL(p)->pMethods->xLock(REAL(p), l);
}

static int w_unlock(sqlite3_file *p, int l)
{
    return REAL(p)->pMethods->xUnlock(REAL(p), l);
}

static int w_check(sqlite3_file *p, int *out)
{
    return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out);
}

static int w_fcntl(sqlite3_file *p, int op, void *arg)
{
    int rc = flush_held((wfile *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xFileControl(REAL(p), op, arg);
}

static int w_sector(sqlite3_file *p)
{
    return REAL(p)->pMethods->xSectorSize(REAL(p));
}

static int w_caps(sqlite3_file *p)
{
    return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}

static int w_shm_map(sqlite3_file *p, int pg, int sz, int extend, void volatile **out)
{
    return REAL(p)->pMethods->xShmMap(REAL(p), pg, sz, extend, out);
}

static int w_shm_lock(sqlite3_file *p, int off, int n, int flags)
{
    return REAL(p)->pMethods->xShmLock(REAL(p), off, n, flags);
}

static void w_shm_barrier(sqlite3_file *p)
{
    REAL(p)->pMethods->xShmBarrier(REAL(p));
}

static int w_shm_unmap(sqlite3_file *p, int del)
{
    return REAL(p)->pMethods->xShmUnmap(REAL(p), del);
}

static int w_fetch(sqlite3_file *p, sqlite3_int64 off, int amt, void **out)
{
    int rc = flush_held((wfile *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xFetch(REAL(p), off, amt, out);
}

static int w_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
    return REAL(p)->pMethods->xUnfetch(REAL(p), off, ptr);
}

static int w_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out_flags)
{
    (void)vfs;
    wfile *f = (wfile *)p;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || !f->real->pMethods) {
        /* xClose is only called when pMethods is set. */
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    f->base.pMethods = &wal_methods;
    return SQLITE_OK;
}

int walvfs_register(void)
{
    return walvfs_register_on("unix");
}

int walvfs_register_on(const char *base)
{
    base_vfs = sqlite3_vfs_find(base);
    if (!base_vfs) return -1;
    wal_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = w_close,
        .xRead = w_read,
        .xWrite = w_write,
        .xTruncate = w_truncate,
        .xSync = w_sync,
        .xFileSize = w_size,
        .xLock = w_lock,
        .xUnlock = w_unlock,
        .xCheckReservedLock = w_check,
        .xFileControl = w_fcntl,
        .xSectorSize = w_sector,
        .xDeviceCharacteristics = w_caps,
        .xShmMap = w_shm_map,
        .xShmLock = w_shm_lock,
        .xShmBarrier = w_shm_barrier,
        .xShmUnmap = w_shm_unmap,
        .xFetch = w_fetch,
        .xUnfetch = w_unfetch,
    };
    wal_vfs = *base_vfs;
    wal_vfs.zName = WALVFS_NAME;
    wal_vfs.szOsFile = (int)sizeof(wfile) + base_vfs->szOsFile;
    wal_vfs.xOpen = w_open;
    wal_vfs.pNext = NULL;
    return sqlite3_vfs_register(&wal_vfs, 0) == SQLITE_OK ? 0 : -1;
}
