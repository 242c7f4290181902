/* ceiling: the benchmark's no-work FastCGI responder. It answers every
 * request with {"ok":true} as application/json, so that lighttpd + FastCGI
 * can be measured with nothing behind them: the ceiling that the real
 * backend's figures are compared with. CEILING_THREADS threads (default 4,
 * like the backend's workers) each run an FCGX_Accept_r loop. */

#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

static const char answer[] = "Status: 200 OK\r\n"
                             "Content-Type: application/json\r\n"
                             "Content-Length: 11\r\n"
                             "Cache-Control: no-store\r\n"
                             "\r\n"
                             "{\"ok\":true}";

/* Reads and drops the request body, so that a POST costs what it would cost
 * a real responder. */
static void drain(FCGX_Request *req)
{
    char buf[4096];
    while (FCGX_GetStr(buf, (int)sizeof buf, req->in) > 0) {
    }
}

/* One thread: accepts requests on the socket lighttpd passes as stdin
 * (fd 0) and answers each at once; ends the process when accepting fails
 * (lighttpd went away). */
static void *serve(void *arg)
{
    FCGX_Request req;
    (void)arg;
    if (FCGX_InitRequest(&req, 0, 0) != 0) {
        fprintf(stderr, "ceiling: FCGX_InitRequest failed\n");
        return NULL;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        drain(&req);
        FCGX_PutStr(answer, (int)(sizeof answer - 1), req.out);
        FCGX_Finish_r(&req);
    }
    exit(0);
}

/* Starts the threads, then waits for SIGTERM/SIGINT/SIGHUP and exits:
 * threads blocked in accept would not notice libfcgi's own handler. */
int main(void)
{
    pthread_t th[MAX_THREADS];
    sigset_t stop;
    int n = 4, started = 0, rc = 1, sig = 0;
    const char *env = getenv("CEILING_THREADS");
    if (env && *env) n = atoi(env);
    if (n < 1 || n > MAX_THREADS) {
        fprintf(stderr, "ceiling: CEILING_THREADS must be 1 to %d\n", MAX_THREADS);
        goto out;
    }
    if (FCGX_Init() != 0) {
        fprintf(stderr, "ceiling: FCGX_Init failed\n");
        goto out;
    }
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* the threads inherit the mask */
    for (int i = 0; i < n; i++) {
        int err = pthread_create(&th[i], NULL, serve, NULL);
        if (err) {
            fprintf(stderr, "ceiling: pthread_create: %s\n", strerror(err));
            break;
        }
        started++;
    }
    if (started == n) {
        sigwait(&stop, &sig);
        rc = 0;
    }
out:
    return rc;
}
