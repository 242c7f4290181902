/* Unit tests of config.c: defaults, the accept-worker default from the CPUs
 * this process may run on, the store's settings, and refused values. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

/* config_load with only the given LONGCALL_THREADS (NULL: unset). Returns
 * config_load's result; *threads gets the value when it succeeded. */
static int load_threads(const char *v, int *threads)
{
    lc_config cfg;
    if (v)
        setenv("LONGCALL_THREADS", v, 1);
    else
        unsetenv("LONGCALL_THREADS");
    int rc = config_load(&cfg);
    if (rc == 0) *threads = cfg.threads;
    config_free(&cfg);
    return rc;
}

/* LONGCALL_DB and LONGCALL_WAKE_FILE (NULL: unset): config_load's result,
 * and the wake file's path it chose into path (n bytes) when it loaded. */
static int load_store(const char *db, const char *wake_file, char *path, size_t n)
{
    lc_config cfg;
    if (db)
        setenv("LONGCALL_DB", db, 1);
    else
        unsetenv("LONGCALL_DB");
    if (wake_file)
        setenv("LONGCALL_WAKE_FILE", wake_file, 1);
    else
        unsetenv("LONGCALL_WAKE_FILE");
    int rc = config_load(&cfg);
    if (rc == 0) snprintf(path, n, "%s", cfg.wake_path);
    config_free(&cfg);
    unsetenv("LONGCALL_DB");
    unsetenv("LONGCALL_WAKE_FILE");
    return rc;
}

/* The store's settings: the wake file beside a SQLite file by default, or
 * where LONGCALL_WAKE_FILE says; with PostgreSQL it must be said. */
static void test_store_settings(void)
{
    char w[256] = "";
    CHECK("config: the default database's wake file is beside it",
          load_store(NULL, NULL, w, sizeof w) == 0 && strcmp(w, "var/longcall.db.wake") == 0);
    CHECK("config: a SQLite file's wake file is <file>.wake",
          load_store("/srv/lc.db", NULL, w, sizeof w) == 0 && strcmp(w, "/srv/lc.db.wake") == 0);
    CHECK("config: LONGCALL_WAKE_FILE is taken as given",
          load_store("/srv/lc.db", "/run/lc.wake", w, sizeof w) == 0 &&
              strcmp(w, "/run/lc.wake") == 0);
    CHECK("config: a PostgreSQL URI without LONGCALL_WAKE_FILE is refused",
          load_store("postgresql://lc@db/lc", NULL, w, sizeof w) == -1);
    CHECK("config: a PostgreSQL key=value string without LONGCALL_WAKE_FILE is refused",
          load_store("host=/run/postgresql dbname=lc", "", w, sizeof w) == -1);
    CHECK("config: PostgreSQL with LONGCALL_WAKE_FILE loads",
          load_store("postgres://lc@db/lc", "/var/lib/lc/lc.wake", w, sizeof w) == 0 &&
              strcmp(w, "/var/lib/lc/lc.wake") == 0);
}

int main(void)
{
    cpu_set_t all, one;
    test_store_settings();
    int t = 0;
    CHECK("config: affinity readable", sched_getaffinity(0, sizeof all, &all) == 0);
    int want = CPU_COUNT(&all) + 1 > 64 ? 64 : CPU_COUNT(&all) + 1;
    CHECK("config: unset LONGCALL_THREADS is one per CPU plus one",
          load_threads(NULL, &t) == 0 && t == want);
    CHECK("config: an empty LONGCALL_THREADS is the default too",
          load_threads("", &t) == 0 && t == want);
    /* Restricted to one CPU (as taskset or a container's cpuset would):
     * the default follows, and is never below 2. */
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &all)) {
            CPU_SET(i, &one);
            break;
        }
    CHECK("config: restricted to one CPU", sched_setaffinity(0, sizeof one, &one) == 0);
    CHECK("config: one CPU gives 2 workers", load_threads(NULL, &t) == 0 && t == 2);
    sched_setaffinity(0, sizeof all, &all);
    CHECK("config: LONGCALL_THREADS=7 is taken as given", load_threads("7", &t) == 0 && t == 7);
    CHECK("config: LONGCALL_THREADS=1 is refused", load_threads("1", &t) == -1);
    CHECK("config: LONGCALL_THREADS=x is refused", load_threads("x", &t) == -1);
    unsetenv("LONGCALL_THREADS");

    lc_config cfg;
    CHECK("config: defaults load", config_load(&cfg) == 0);
    CHECK("config: default poll 25 s capped at 30, expiry 60 s, ring 30 s",
          cfg.poll_timeout == 25 && cfg.poll_max == 30 && cfg.session_expiry == 60 &&
              cfg.ring_timeout == 30);
    CHECK("config: default ICE servers are []", strcmp(cfg.ice_servers, "[]") == 0);
    CHECK("config: default list: 100 names an answer, 30 lists a minute",
          cfg.list_max == 100 && cfg.list_rate == 30);
    CHECK("config: default calls: 20 a minute, 6 a minute to one callee, 60 s cooldown, 100 "
          "blocks",
          cfg.call_rate == 20 && cfg.call_pair_rate == 6 && cfg.call_cooldown == 60 &&
              cfg.max_blocks == 100);
    config_free(&cfg);
    setenv("LONGCALL_CALL_COOLDOWN", "0", 1);
    CHECK("config: LONGCALL_CALL_COOLDOWN=0 turns the cooldown off",
          config_load(&cfg) == 0 && cfg.call_cooldown == 0);
    config_free(&cfg);
    unsetenv("LONGCALL_CALL_COOLDOWN");
    static const char *const bad_list[][2] = {{"LONGCALL_LIST_MAX", "0"},
                                              {"LONGCALL_LIST_MAX", "1001"},
                                              {"LONGCALL_LIST_RATE", "0"},
                                              {"LONGCALL_LIST_RATE", "x"},
                                              {"LONGCALL_CALL_RATE", "0"},
                                              {"LONGCALL_CALL_PAIR_RATE", "0"},
                                              {"LONGCALL_CALL_PAIR_RATE", "6x"},
                                              {"LONGCALL_CALL_COOLDOWN", "-1"},
                                              {"LONGCALL_CALL_COOLDOWN", "86401"},
                                              {"LONGCALL_MAX_BLOCKS", "0"}};
    for (size_t i = 0; i < sizeof bad_list / sizeof bad_list[0]; i++) {
        char title[96];
        setenv(bad_list[i][0], bad_list[i][1], 1);
        snprintf(title, sizeof title, "config: %s=%s is refused", bad_list[i][0], bad_list[i][1]);
        CHECK(title, config_load(&cfg) == -1);
        config_free(&cfg);
        unsetenv(bad_list[i][0]);
    }
    setenv("LONGCALL_SESSION_EXPIRY", "20", 1);
    CHECK("config: expiry not above the poll cap is refused", config_load(&cfg) == -1);
    config_free(&cfg);
    unsetenv("LONGCALL_SESSION_EXPIRY");

    /* The per-address limits and the trusted proxies (README "Security"). */
    CHECK("config: per-address defaults 60 a minute, 200 live, 200 held, no trusted proxy",
          config_load(&cfg) == 0 && cfg.addr_sessions_per_min == 60 && cfg.addr_sessions == 200 &&
              cfg.addr_held == 200 && cfg.ntrusted == 0 && cfg.forwarded == ADDR_HDR_XFF);
    config_free(&cfg);
    setenv("LONGCALL_MAX_HELD", "50", 1);
    CHECK("config: held per address defaults to at most LONGCALL_MAX_HELD",
          config_load(&cfg) == 0 && cfg.addr_held == 50);
    config_free(&cfg);
    unsetenv("LONGCALL_MAX_HELD");
    CHECK("config: a sender's share of a mailbox defaults to a quarter of the quota (250), "
          "16 slow answers per address",
          config_load(&cfg) == 0 && cfg.mailbox_share == 250 && cfg.addr_writers == 16);
    config_free(&cfg);
    setenv("LONGCALL_MAILBOX_QUOTA", "40", 1);
    CHECK("config: ... of the quota set (10 of 40)",
          config_load(&cfg) == 0 && cfg.mailbox_share == 10);
    config_free(&cfg);
    unsetenv("LONGCALL_MAILBOX_QUOTA");
    static const struct {
        const char *name, *value;
        int ok;
    } rows[] = {
        {"LONGCALL_ADDR_SESSIONS_PER_MIN", "0", 0},
        {"LONGCALL_ADDR_SESSIONS_PER_MIN", "1000", 1},
        {"LONGCALL_ADDR_SESSIONS", "x", 0},
        {"LONGCALL_ADDR_HELD", "-1", 0},
        {"LONGCALL_ADDR_HELD", "5", 1},
        {"LONGCALL_TRUSTED_PROXIES", "127.0.0.1 10.0.0.0/8 ::1 fd00::/8", 1},
        {"LONGCALL_TRUSTED_PROXIES", "10.0.0.0/40", 0},
        {"LONGCALL_TRUSTED_PROXIES", "proxy.example.org", 0},
        {"LONGCALL_FORWARDED_HEADER", "Forwarded", 1},
        {"LONGCALL_FORWARDED_HEADER", "X-Real-IP", 0},
        {"LONGCALL_MAILBOX_SHARE", "1000", 1},
        {"LONGCALL_MAILBOX_SHARE", "1001", 0}, /* more than the quota */
        {"LONGCALL_MAILBOX_SHARE", "0", 0},
        {"LONGCALL_ADDR_WRITERS", "0", 0},
        {"LONGCALL_ADDR_WRITERS", "4", 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char name[160];
        setenv(rows[i].name, rows[i].value, 1);
        snprintf(name, sizeof name, "config: %s=%s %s", rows[i].name, rows[i].value,
                 rows[i].ok ? "accepted" : "refused");
        CHECK(name, config_load(&cfg) == (rows[i].ok ? 0 : -1));
        config_free(&cfg);
        unsetenv(rows[i].name);
    }
    return unit_done();
}
