/* walvfs: a thin SQLite VFS over the default one ("unix") that writes each
 * WAL frame -- a 24-byte header, then the page -- with one pwrite instead of
 * two. Everything else, and every other file, goes straight through. It
 * does not know the schema, transactions or locking: those stay SQLite's.
 * See walvfs.h for why. Memory: one join buffer per open WAL file (a page
 * plus 24 bytes), freed at close; if it cannot be had, the two writes are
 * made as SQLite asked. */

#include "walvfs.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_HDR 24

typedef struct wfile {
    sqlite3_file base;  /* our methods */
    sqlite3_file *real; /* the unix VFS's file, allocated right after us */
    int wal;            /* a -wal file: frame headers are held back */
    int held;           /* hdr waits to be written at hdr_off */
    sqlite3_int64 hdr_off;
    unsigned char hdr[FRAME_HDR];
    unsigned char *joined; /* header + page, one buffer reused per file */
    int joined_cap;
} wfile;

static sqlite3_vfs *base_vfs;
static sqlite3_vfs wal_vfs;
static sqlite3_io_methods wal_methods;

/* Writes a held-back header on its own. Called before anything else that
 * reaches the file, so that SQLite's view (what it wrote, in what order) is
 * what the file shows whenever SQLite can look. */
static int flush_held(wfile *f)
{
    if (!f->held) return SQLITE_OK;
    f->held = 0;
    return f->real->pMethods->xWrite(f->real, f->hdr, FRAME_HDR, f->hdr_off);
}

static int w_close(sqlite3_file *p)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->joined);
    f->joined = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 off)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amt, off);
}

static int w_write(sqlite3_file *p, const void *data, int amt, sqlite3_int64 off)
{
    wfile *f = (wfile *)p;
    if (f->wal && !f->held && amt == FRAME_HDR) {
        /* Probably a frame header (the WAL's own header is 32 bytes): hold
         * it until its page comes, or anything else touches the file. */
        memcpy(f->hdr, data, FRAME_HDR);
        f->hdr_off = off;
        f->held = 1;
        return SQLITE_OK;
    }
    if (f->held && off == f->hdr_off + FRAME_HDR) {
        if (f->joined_cap < FRAME_HDR + amt) {
            unsigned char *b = realloc(f->joined, (size_t)FRAME_HDR + (size_t)amt);
            if (!b) {
                int rc = flush_held(f);
                return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, amt, off);
            }
            f->joined = b;
            f->joined_cap = FRAME_HDR + amt;
        }
        memcpy(f->joined, f->hdr, FRAME_HDR);
        memcpy(f->joined + FRAME_HDR, data, (size_t)amt);
        f->held = 0;
        return f->real->pMethods->xWrite(f->real, f->joined, FRAME_HDR + amt, f->hdr_off);
    }
    int rc = flush_held(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, amt, off);
}

static int w_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    wfile *f = (wfile *)p;
    int rc = flush_held(f);
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

/* The rest pass through (a held header is written first where the call
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
    base_vfs = sqlite3_vfs_find("unix");
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
