/* front_fcgi: the FastCGI process. A fixed pool of accept workers accept
 * and serve requests; the park thread holds polls; two queue workers serve
 * what leaves the park and run the background jobs (jobs.c) when its timer
 * fires. No thread ever waits on a held poll. It owns the sockets and
 * libfcgi requests; the request step is front's, the endpoints api's. */
#ifndef LC_FRONT_FCGI_H
#define LC_FRONT_FCGI_H

#include "config.h"

/* Serves FastCGI requests on the listening socket (fd 0) until the process
 * is killed. While the database or the wake file cannot be opened (full
 * disk, permissions, damage, a newer schema: logged once), it answers every
 * request 503 with the reason and tries again every few seconds, rather
 * than exit and be respawned in a loop. Returns non-zero only when it
 * cannot start at all (threads, libfcgi). */
int front_fcgi_run(const lc_config *cfg);

#endif
