/* main: configuration, process-wide set-up, and the choice between FastCGI
 * (a listening socket on fd 0, as lighttpd, spawn-fcgi and mod_fcgid hand
 * it over) and plain CGI (anything else); `--check` and `--version` from a
 * shell (check.h). */
#include "check.h"
#include "config.h"
#include "front_cgi.h"
#include "front_fcgi.h"
#include "util.h"

#include <fcgiapp.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* `longcall --check` / `--version` from a shell. Returns the exit status,
 * or -1 when argv asks for neither (serve). Never under CGI: a web server
 * may pass a query string without "=" as arguments (RFC 3875, 4.4), and a
 * client must not make the backend print its settings. */
static int command(int argc, char **argv)
{
    if (argc < 2 || getenv("GATEWAY_INTERFACE")) return -1;
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        check_version(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--check") == 0) {
        lc_config cfg;
        if (config_load(&cfg) != 0) {
            fputs("not ready: a setting is wrong (the line above says which)\n", stdout);
            return 1;
        }
        int rc = check_run(&cfg, stdout);
        config_free(&cfg);
        return rc;
    }
    fprintf(stderr, "usage: %s [--check | --version]\n"
            "  with no argument it serves FastCGI on fd 0 (or one CGI request)\n", argv[0]);
    return 2;
}

int main(int argc, char **argv)
{
    lc_log_init(); /* the environment as the web server gave it, before anything logs */
    /* Before any other OpenSSL call: no OPENSSL_cleanup() at exit. The
     * process ends with exit() while queue workers (and, past STOP_MS, a
     * request still writing) may be inside libcrypto -- a session token's
     * RAND_bytes, a TURN credential's HMAC -- and OpenSSL must not be torn
     * down under a thread using it (its cleanup documents that). Its state
     * stays reachable to the end, so LeakSanitizer has nothing to report,
     * where the torn-down one left 36 objects behind now and then. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    int cmd = command(argc, argv);
    if (cmd >= 0) return cmd;
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
