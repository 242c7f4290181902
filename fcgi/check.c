/* check: `longcall --check` and `--version`; see check.h. */

#include "check.h"

#include "store.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
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

/* LONGCALL_ICE_SERVERS as given, with each "credential" replaced by
 * "(masked)" (a static TURN password may be there). Caller frees. */
static char *ice_masked(const char *ice)
{
    json_t *j = json_loads(ice ? ice : "[]", 0, NULL);
    size_t i;
    json_t *server;
    json_array_foreach(j, i, server) {
        if (json_is_object(server) && json_object_get(server, "credential"))
            json_object_set_new(server, "credential", json_string("(masked)"));
    }
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out ? out : xstrdup("[]");
}

/* Writes the effective settings to out, one NAME=value line each (defaults
 * filled in). Secrets are never written: the TURN secret as its length, an
 * ICE server's credential and a PostgreSQL password masked. */
static void describe_settings(const lc_config *cfg, FILE *out)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    char db[512];
    store_db_describe(cfg->db_path, db, sizeof db);
    fprintf(out, "LONGCALL_DB=%s\n", db);
    fprintf(out, "LONGCALL_WAKE_FILE=%s\n", cfg->wake_path);
    const struct {
        const char *name;
        long long v;
    } ints[] = {
        {"LONGCALL_POLL_TIMEOUT", cfg->poll_timeout},
        {"LONGCALL_POLL_MAX", cfg->poll_max},
        {"LONGCALL_SESSION_EXPIRY", cfg->session_expiry},
        {"LONGCALL_RING_TIMEOUT", cfg->ring_timeout},
        {"LONGCALL_HISTORY_DAYS", cfg->history_days},
        {"LONGCALL_MAX_BODY", (long long)cfg->max_body},
        {"LONGCALL_MAX_BATCH", cfg->max_batch},
        {"LONGCALL_MAILBOX_QUOTA", cfg->mailbox_quota},
        {"LONGCALL_MAILBOX_SHARE", cfg->mailbox_share},
        {"LONGCALL_MAX_HELD", cfg->max_held},
        {"LONGCALL_LIST_MAX", cfg->list_max},
        {"LONGCALL_LIST_RATE", cfg->list_rate},
        {"LONGCALL_THREADS", cfg->threads},
        {"LONGCALL_BUSY_TIMEOUT", cfg->busy_timeout},
        {"LONGCALL_WRITE_TIMEOUT", cfg->write_timeout},
        {"LONGCALL_ADDR_SESSIONS_PER_MIN", cfg->addr_sessions_per_min},
        {"LONGCALL_ADDR_SESSIONS", cfg->addr_sessions},
        {"LONGCALL_ADDR_HELD", cfg->addr_held},
        {"LONGCALL_ADDR_WRITERS", cfg->addr_writers},
        {"LONGCALL_NAME_GRACE", cfg->name_grace},
        {"LONGCALL_CALL_RATE", cfg->call_rate},
        {"LONGCALL_CALL_PAIR_RATE", cfg->call_pair_rate},
        {"LONGCALL_CALL_COOLDOWN", cfg->call_cooldown},
        {"LONGCALL_MAX_BLOCKS", cfg->max_blocks},
        {"LONGCALL_TURN_TTL", cfg->turn_ttl},
        {"LONGCALL_ICE_RATE", cfg->ice_rate},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        fprintf(out, "%s=%lld\n", ints[i].name, ints[i].v);
    char *ice = ice_masked(cfg->ice_servers);
    fprintf(out, "LONGCALL_ICE_SERVERS=%s\n", ice);
    free(ice);
    fputs("LONGCALL_CORS_ORIGINS=", out);
    for (char **o = cfg->cors_origins; o && *o; o++)
        fprintf(out, "%s%s", o == cfg->cors_origins ? "" : ",", *o);
    fputs(cfg->cors_origins && *cfg->cors_origins ? "\n" : "(none: same origin only)\n", out);
    fputs("LONGCALL_ALLOWED_HOSTS=", out);
    for (int i = 0; i < cfg->n_allowed_hosts; i++) {
        fprintf(out, "%s%s", i ? "," : "", cfg->allowed_hosts[i].name);
        if (cfg->allowed_hosts[i].port) fprintf(out, ":%d", cfg->allowed_hosts[i].port);
    }
    fputs(cfg->allowed_hosts ? "\n" : "(not set: any Host is served)\n", out);
    int lvl = cfg->log_level >= 0 && cfg->log_level < 4 ? cfg->log_level : 2;
    fprintf(out, "LONGCALL_LOG_LEVEL=%s\n", levels[lvl]);
    fprintf(out, "LONGCALL_LOG_FORMAT=%s\n", cfg->log_format == LC_LOG_JSON ? "json" : "logfmt");
    const char *tp = getenv("LONGCALL_TRUSTED_PROXIES");
    fprintf(out, "LONGCALL_TRUSTED_PROXIES=%s\n", tp && *tp ? tp : "(none)");
    fprintf(out, "LONGCALL_FORWARDED_HEADER=%s\n",
            cfg->forwarded == ADDR_HDR_FORWARDED ? "Forwarded" : "X-Forwarded-For");
    const char *file = getenv("LONGCALL_TURN_SECRET_FILE");
    if (cfg->turn_secret && file && *file)
        fprintf(out, "LONGCALL_TURN_SECRET_FILE=%s (%zu bytes read; the secret is not shown)\n",
                file, cfg->turn_secret_len);
    else if (cfg->turn_secret)
        fprintf(out, "LONGCALL_TURN_SECRET=(set, %zu bytes; not shown)\n", cfg->turn_secret_len);
    else
        fputs("LONGCALL_TURN_SECRET_FILE=(none: no TURN credentials are minted)\n", out);
    fprintf(out, "LONGCALL_TURN_URIS=%s\n", cfg->turn_uris ? cfg->turn_uris : "(none)");
    fprintf(out, "LONGCALL_ICE_TRANSPORT_POLICY=%s\n", cfg->ice_relay ? "relay" : "all");
    const char *ma = getenv("LONGCALL_METRICS_ALLOW");
    fprintf(out, "LONGCALL_METRICS_ALLOW=%s\n", ma && *ma ? ma : "(none)");
    const char *mt = getenv("LONGCALL_METRICS_TOKEN_FILE");
    if (cfg->metrics_token)
        fprintf(out, "LONGCALL_METRICS_TOKEN_FILE=%s (%zu bytes read; the token is not shown)\n",
                mt ? mt : "", cfg->metrics_token_len);
    else
        fputs("LONGCALL_METRICS_TOKEN_FILE=(none)\n", out);
    fputs(cfg->nmetrics_allow || cfg->metrics_token ? ""
                                                    : "(GET /rtc/metrics is off: neither is set)\n",
          out);
}

/* The wake file (shared memory of the machine's backend processes): it or
 * its folder must be writable. 0, or 1 after printing the problem. */
static int check_wake(const char *path, FILE *out)
{
    char dir[1024];
    lc_folder_of(path, dir, sizeof dir);
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
    describe_settings(cfg, out);
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
