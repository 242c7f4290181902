/* walvfs: SQLite's default unix VFS with one change: the frames a
 * transaction appends to the WAL (each a 24-byte header + a page) are
 * written with one pwrite when its commit frame is complete, instead of two
 * per frame. On this kind of machine a system call costs more than copying
 * a page, and a relayed message commits about three frames. The files are
 * byte for byte what the unix VFS writes (the sqlite3 shell reads them as
 * usual); only the number of calls changes. It owns nothing else: locking,
 * shared memory and syncing pass straight through. */
#ifndef LC_WALVFS_H
#define LC_WALVFS_H

#define WALVFS_NAME "longcall-unix"

/* Registers the VFS under WALVFS_NAME (not as the default). Call once,
 * before opening a connection with it. Returns 0, or -1 when SQLite has no
 * "unix" VFS to build on (then open with the default). */
int walvfs_register(void);

/* The same over the VFS registered as base instead of "unix" (the fuzz
 * test puts a fault-injecting VFS there). Registering again replaces the
 * base for connections opened from then on. Returns 0, or -1 when there is
 * no VFS of that name. */
int walvfs_register_on(const char *base);

#endif
