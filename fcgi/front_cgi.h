/* front_cgi: plain CGI -- one request from the environment and stdin, its
 * answer to stdout; a poll that waits blocks on the wake futex, running the
 * background jobs that fall due meanwhile (no resident process would). The
 * request step is front's, the endpoints api's. */
#ifndef LC_FRONT_CGI_H
#define LC_FRONT_CGI_H

#include "config.h"

/* Serves the single CGI request described by the environment and stdin,
 * writing the answer to stdout. Returns the process exit code. */
int front_cgi_run(const lc_config *cfg);

#endif
