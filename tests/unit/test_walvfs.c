/* Unit tests of walvfs.c: what a committed transaction leaves on disk
 * while the connection stays open (the files are copied as a kill -9 would
 * leave them, then opened with the default VFS). */
#include "../../fcgi/walvfs.c"
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/lc-walvfs-XXXXXX";
static char db_path[64], copy_path[64];

static void copy_file(const char *from, const char *to)
{
    unlink(to);
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char b[65536];
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, b, sizeof b)) > 0)
        if (write(out, b, (size_t)n) != n) break;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
}

/* Copies the database and its WAL as they are now, then counts the rows
 * of t in the copy with a plain connection (-1: unreadable). */
static int rows_on_disk(void)
{
    char from[80], to[80];
    copy_file(db_path, copy_path);
    snprintf(from, sizeof from, "%s-wal", db_path);
    snprintf(to, sizeof to, "%s-wal", copy_path);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s-shm", copy_path);
    unlink(to);
    sqlite3 *c;
    sqlite3_stmt *s;
    int n = -1;
    if (sqlite3_open(copy_path, &c) == SQLITE_OK &&
        sqlite3_prepare_v2(c, "SELECT count(*) FROM t", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(c);
    return n;
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(copy_path, sizeof copy_path, "%s/copy.db", dir);
    CHECK("walvfs registers over unix", walvfs_register() == 0);
    sqlite3 *db;
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, WALVFS_NAME);
    /* A small page cache: a transaction that touches more pages spills
     * some into the WAL before its commit, rewrites them there, and SQLite
     * then rewrites the checksums of its frames, the commit frame's last
     * (found by tests/fuzz/fuzz_walvfs: that header stayed held in memory,
     * and the committed transaction was not on disk). */
    sqlite3_exec(db,
                 "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                 "PRAGMA cache_size = 5;"
                 "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
                 NULL, NULL, NULL);
    sqlite3_exec(db, "INSERT INTO t VALUES (45, randomblob(70000))", NULL, NULL, NULL);
    CHECK("a committed insert is on disk", rows_on_disk() == 1);
    int rc = sqlite3_exec(db, "DELETE FROM t WHERE id = 45", NULL, NULL, NULL);
    CHECK("a committed delete whose frames were rewritten is on disk",
          rc == SQLITE_OK && rows_on_disk() == 0);
    sqlite3_exec(db, "INSERT INTO t VALUES (1, randomblob(10)); INSERT INTO t VALUES (2, 'x')",
                 NULL, NULL, NULL);
    CHECK("small transactions after it are on disk", rows_on_disk() == 2);
    sqlite3_close(db);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[80];
        snprintf(p, sizeof p, "%s%s", db_path, suffix[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s%s", copy_path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
    return unit_done();
}
