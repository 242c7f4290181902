/* main: configuration, process-wide set-up, and the choice between FastCGI
 * (a listening socket on fd 0, as lighttpd, spawn-fcgi and mod_fcgid hand
 * it over) and plain CGI (anything else). */
#include "config.h"
#include "front_cgi.h"
#include "front_fcgi.h"
#include "util.h"

#include <fcgiapp.h>
#include <signal.h>

int main(void)
{
    lc_config cfg;
    lc_json_init();
    /* A client that left while we write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (config_load(&cfg) != 0) return 1;
    lc_log_set_level((enum lc_log_level)cfg.log_level);
    int rc = FCGX_IsCGI() ? front_cgi_run(&cfg) : front_fcgi_run(&cfg);
    config_free(&cfg);
    return rc;
}
