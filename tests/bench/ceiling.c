/* ceiling: the benchmark's no-work FastCGI responder. It answers every
 * request with {"ok":true} as application/json, so that lighttpd + FastCGI
 * can be measured with nothing behind them: the ceiling that the real
 * backend's figures are compared with. Single-threaded FCGX_Accept_r loop. */

#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Accepts FastCGI requests on the socket lighttpd passes as stdin (fd 0)
 * until accepting fails (lighttpd went away), answering each at once. */
int main(void)
{
    FCGX_Request req;
    int rc = 1;
    if (FCGX_Init() != 0) {
        fprintf(stderr, "ceiling: FCGX_Init failed\n");
        goto out;
    }
    if (FCGX_InitRequest(&req, 0, 0) != 0) {
        fprintf(stderr, "ceiling: FCGX_InitRequest failed\n");
        goto out;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        drain(&req);
        FCGX_PutStr(answer, (int)(sizeof answer - 1), req.out);
        FCGX_Finish_r(&req);
    }
    rc = 0;
out:
    return rc;
}
