/* server: the process model. FastCGI: a fixed pool of accept workers that
 * each accept and serve requests, the park thread that holds polls, and a
 * queue worker that answers the polls the park hands back; no thread ever
 * waits on a held poll. CGI: one request on stdin/stdout, waiting for a
 * poll on the wake futex. Owns the sockets and libfcgi requests; the
 * endpoint logic is api's. */
#ifndef LC_SERVER_H
#define LC_SERVER_H

#include "config.h"

/* Serves FastCGI requests on the listening socket (fd 0) until the process
 * is killed. While the database or the wake file cannot be opened (full
 * disk, permissions, damage, a newer schema: logged once), it answers every
 * request 503 with the reason and tries again every few seconds, rather
 * than exit and be respawned in a loop. Returns non-zero only when it
 * cannot start at all (threads, libfcgi). */
int server_run_fastcgi(const lc_config *cfg);

/* Serves the single CGI request described by the environment and stdin,
 * writing the answer to stdout. Returns the process exit code. */
int server_run_cgi(const lc_config *cfg);

#endif
