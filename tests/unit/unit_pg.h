/* unit_pg: a fresh PostgreSQL database for a unit test that runs the store
 * contract on PostgreSQL too (test_store.c, test_cases.c). The server is
 * the one tests/integration/test_pg.py starts (tests/lib/postgres.py): its
 * URI without a database name, postgresql://USER@127.0.0.1:PORT, comes in
 * $LONGCALL_TEST_PG; unset, the tests run on SQLite alone. Include after
 * store_pg.c (libpq). */
#ifndef LC_UNIT_PG_H
#define LC_UNIT_PG_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

static void unit_pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The server's URI ($LONGCALL_TEST_PG), or NULL: SQLite only. */
static inline const char *unit_pg_server(void)
{
    const char *s = getenv("LONGCALL_TEST_PG");
    return s && *s ? s : NULL;
}

/* Makes database name on the server anew (dropped first if it exists) and
 * writes its URI into uri. Returns 0, or -1 (printed on stderr). */
static inline int unit_pg_database(const char *name, char *uri, size_t n)
{
    const char *server = unit_pg_server();
    char sql[256];
    snprintf(uri, n, "%s/postgres", server);
    PGconn *c = PQconnectdb(uri);
    PQsetNoticeProcessor(c, unit_pg_quiet, NULL);
    int ok = PQstatus(c) == CONNECTION_OK;
    for (int i = 0; ok && i < 2; i++) {
        snprintf(sql, sizeof sql, i ? "CREATE DATABASE \"%s\"" : "DROP DATABASE IF EXISTS \"%s\"",
                 name);
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (!ok) fprintf(stderr, "unit_pg_database %s: %s", name, PQerrorMessage(c));
    PQfinish(c);
    snprintf(uri, n, "%s/%s", server, name);
    return ok ? 0 : -1;
}

/* Drops database name (its connections ended first). */
static inline void unit_pg_drop(const char *name)
{
    char uri[512], sql[256];
    snprintf(uri, sizeof uri, "%s/postgres", unit_pg_server());
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    PGconn *c = PQconnectdb(uri);
    PQsetNoticeProcessor(c, unit_pg_quiet, NULL);
    PQclear(PQexec(c, sql));
    PQfinish(c);
}

/* Runs sql (no rows wanted) on the database of uri on a connection of its
 * own. Returns 0 or -1. */
static inline int unit_pg_exec(const char *uri, const char *sql)
{
    PGconn *c = PQconnectdb(uri);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    int ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    if (!ok) fprintf(stderr, "unit_pg_exec: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

#endif
