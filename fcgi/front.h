/* front: what both fronts -- FastCGI (front_fcgi.c) and plain CGI
 * (front_cgi.c) -- do with a request around api: open the process's state,
 * read the body within LONGCALL_MAX_BODY (413), answer 503 while the state
 * cannot be opened, and serve the request. It does no socket I/O of its
 * own: each front passes the reader of its request body. */
#ifndef LC_FRONT_H
#define LC_FRONT_H

#include "api.h"
#include "config.h"
#include "env.h"
#include "http.h"
#include "store.h"

#include <stddef.h>

/* Reads at most n bytes of the request body into p. Returns how many (0 at
 * its end) or -1 on a read error. */
typedef long (*front_read_fn)(void *arg, char *p, size_t n);

/* The body reader of a request. drain: read the body to its end even past
 * the limit (FastCGI: a held socket must have nothing unread, so that
 * readability means the client left); otherwise stop at the limit.
 * unread: set by front_serve, 1 when it answered without reading the body
 * (never a held poll; FastCGI throws away what comes of the body after the
 * answer, in its park, before it closes: front_fcgi.c, drain). */
typedef struct front_body {
    front_read_fn read;
    void *arg;
    int drain;
    int unread;
} front_body;

/* Serves req: answers first of all, without reading its body (rd->unread
 * set), 421 when its Host is not allowed (http_host_ok; logged
 * summarised), then, while the state is open, what api_precheck answers
 * (403, 404, a preflight's 204, 405). Otherwise reads its body through rd
 * and calls api_handle, or answers 413 (over cfg->max_body, by
 * Content-Length or by what was read) or 400 (the body could not be read).
 * While the state cannot be opened (down is not STORE_FINE), answers as
 * front_down_answer says instead, e may then hold only cfg. Fills *r (free
 * with api_result_free). With rd->drain a body it reads is read to its end
 * in every case but a read error. */
void front_serve(lc_env *e, store_problem down, const http_request *req, front_body *rd,
                 api_result *r);

/* The answer to req while the state cannot be opened (problem why): 503
 * with the reason (no path or user: those are in the log) and Retry-After,
 * whatever the endpoint; /rtc/status says {"ok": false, "error": ...}. A
 * preflight from an allowed origin is still answered, so that a page can
 * read the 503. */
void front_down_answer(const lc_config *cfg, const http_request *req, store_problem why,
                       http_response *resp);

/* Opens the database once (migrating it; with check, PRAGMA quick_check
 * too) and the wake file beside it into *wk. Returns LC_OK, or LC_BUSY /
 * LC_FULL / LC_ERR with *why set (logged by store or wake). */
int front_open_shared(const lc_config *cfg, int check, wake **wk, store_problem *why);

/* Seconds between attempts to open the state while it cannot be, and the
 * Retry-After of the 503s meanwhile. */
#define FRONT_RETRY_S 3

#endif
