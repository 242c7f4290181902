/* check: `longcall --check` and `--version`, what an operator runs before
 * a restart: the effective settings, the database's state and whether the
 * backend would start. It reads and reports; it never creates, migrates or
 * writes anything, and it does not serve requests. */
#ifndef LC_CHECK_H
#define LC_CHECK_H

#include "config.h"

#include <stdio.h>

/* Prints the version line ("longcall 0.1.0") to out. */
void check_version(FILE *out);

/* Prints to out the version, cfg's settings one NAME=value line each
 * (defaults filled in; the TURN secret, an ICE server's credential and a
 * PostgreSQL password never shown), what the database is (schema version against this build's, size, whether a
 * migration would run) and the wake file's folder, then a last line "ok:
 * ..." or "problem: ..." per problem found. Returns 0 when the backend
 * would start and serve, 1 otherwise. Changes nothing on disk. */
int check_run(const lc_config *cfg, FILE *out);

#endif
