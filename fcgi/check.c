/* check: `longcall --check` and `--version`; see check.h. */

#include "check.h"

#include "store.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef LONGCALL_VERSION
#define LONGCALL_VERSION "dev"
#endif

void check_version(FILE *out)
{
    fprintf(out, "longcall %s\n", LONGCALL_VERSION);
}

/* The wake file (shared memory of the machine's backend processes): it or
 * its folder must be writable. 0, or 1 after printing the problem. */
static int check_wake(const char *path, FILE *out)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (access(path, F_OK) == 0) {
        if (access(path, R_OK | W_OK) == 0) {
            fprintf(out, "wake file: %s (exists)\n", path);
            return 0;
        }
        fprintf(out, "problem: wake file %s is not readable and writable by this user (%s): "
                "give it to the user the backend runs as, or remove it (it holds only wake-up "
                "hints)\n", path, strerror(errno));
        return 1;
    }
    if (access(dir, W_OK | X_OK) == 0) {
        fprintf(out, "wake file: %s (made at start)\n", path);
        return 0;
    }
    fprintf(out, "problem: wake file %s cannot be made: its folder %s is not writable by this "
            "user (%s); set LONGCALL_WAKE_FILE or give the folder to the backend's user\n",
            path, dir, strerror(errno));
    return 1;
}

int check_run(const lc_config *cfg, FILE *out)
{
    int problems = 0;
    check_version(out);
    fputs("settings (defaults filled in; secrets not shown):\n", out);
    config_describe(cfg, out);
    char db[512], why[1024];
    store_db_describe(cfg->db_path, db, sizeof db);
    store_info info;
    const char *kind = store_db_is_pg(cfg->db_path) ? "PostgreSQL" : "SQLite";
    if (store_inspect(cfg->db_path, &info, why, sizeof why) != LC_OK) {
        fprintf(out, "database: %s (%s)\nproblem: %s\n", db, kind, why);
        problems++;
    } else if (!info.exists) {
        fprintf(out, "database: %s (%s): not made yet; the first start creates it with schema "
                "version %d\n", db, kind, info.latest);
    } else {
        fprintf(out, "database: %s (%s): schema version %d (this build: %d), %lld bytes",
                db, kind, info.version, info.latest, (long long)info.bytes);
        if (info.wal_bytes) fprintf(out, " (WAL %lld bytes)", (long long)info.wal_bytes);
        if (info.version < info.latest)
            fprintf(out, "\nmigrations: would run at start, from version %d to %d\n",
                    info.version, info.latest);
        else
            fputs("\nmigrations: none to run (up to date)\n", out);
    }
    problems += check_wake(cfg->wake_path, out);
    if (problems)
        fprintf(out, "not ready: %d problem%s above\n", problems, problems > 1 ? "s" : "");
    else
        fputs("ok: the backend would start and serve with these settings\n", out);
    return problems ? 1 : 0;
}
