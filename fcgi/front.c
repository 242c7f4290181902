/* front: the request step both fronts share; see front.h. */

#include "front.h"

#include "metrics.h"

#include "addr.h"
#include "wire.h"

#include <errno.h>
#include <string.h>

/* Reads the body into *body (NUL-terminated). Returns 0, 1 when it is
 * longer than max (read to its end with rd->drain), -1 on a read error. */
static int read_body(const front_body *rd, size_t max, buf *body)
{
    char chunk[8192];
    long n;
    int over = 0;
    buf_append(body, "", 0);
    while ((n = rd->read(rd->arg, chunk, sizeof chunk)) > 0) {
        if (body->len + (size_t)n > max) {
            over = 1;
            if (!rd->drain) break;
        } else {
            buf_append(body, chunk, (size_t)n);
        }
    }
    return n < 0 ? -1 : over;
}

/* Logs a refused Host name through addr_log_event: at most one line per
 * client address a minute (CGI refuses before opening the wake file: a
 * debug line each). The name is the client's: cut at 64 bytes, it goes
 * into the message, where the log's escaping keeps it from breaking the
 * line or adding a field. */
static void log_host_refused(const lc_env *e, const http_request *req)
{
    char key[ADDR_KEY_MAX];
    http_client_addr(req, e->cfg, key);
    addr_log_event(e->wk, "LONGCALL_ALLOWED_HOSTS", key,
                   "sent a Host not in LONGCALL_ALLOWED_HOSTS: refused with 421 (this one: Host "
                   "\"%.64s\")",
                   req->host ? req->host : "");
}

void front_serve(lc_env *e, store_problem down, const http_request *req, front_body *rd,
                 api_result *r)
{
    const lc_config *cfg = e->cfg;
    buf body = {0};
    int rb = 1;
    *r = (api_result){.due = INT64_MAX};
    rd->unread = 0;
    /* What needs no body is answered before any of it is read: a refused
     * Host or a request api refuses anyway costs no read of a body that
     * may be up to LONGCALL_MAX_BODY long, or never come. */
    if (http_host_ok(req, cfg) != 0) {
        /* Before anything else, preflights included: a page on a name that
         * was rebound to this server's address must learn nothing. */
        http_error(&r->resp, 421, WIRE_HOST_REFUSED);
        log_host_refused(e, req);
        rd->unread = 1;
        return;
    }
    if (down == STORE_FINE && api_precheck(cfg, req, &r->resp)) {
        rd->unread = 1;
        return;
    }
    /* A body over the limit by its Content-Length is not read at all,
     * unless the socket must be read to its end (drain). */
    if (rd->drain || req->content_length <= (long long)cfg->max_body)
        rb = read_body(rd, cfg->max_body, &body);
    if (rb == 0 && req->content_length > (long long)cfg->max_body) rb = 1;
    if (down != STORE_FINE) {
        front_down_answer(cfg, req, down, &r->resp);
    } else if (rb != 0) {
        http_response_free(&r->resp); /* api_precheck's allow_origin: not for an error */
        r->resp = (http_response){0};
        http_error(&r->resp, rb > 0 ? 413 : 400,
                   rb > 0 ? WIRE_BODY_TOO_LARGE : "the request body could not be read");
    } else {
        http_response_free(&r->resp);
        api_handle(e, req, body.data, body.len, r);
    }
    buf_free(&body);
}

void front_down_answer(const lc_config *cfg, const http_request *req, store_problem why,
                       http_response *resp)
{
    const char *allow = NULL, *text = wire_problem_sentence(why);
    if (http_origin_ok(req, cfg, &allow) == 0 && strcmp(req->method, "OPTIONS") == 0 &&
        req->endpoint != EP_UNKNOWN) {
        resp->status = 204;
        resp->preflight = 1;
    } else if (req->endpoint == EP_STATUS) {
        resp->status = 503;
        wire_status_down(&resp->body, text);
    } else {
        http_error(resp, 503, text);
    }
    if (resp->status == 503) resp->retry_after = why == STORE_BUSY ? 1 : FRONT_RETRY_S;
    resp->allow_origin = allow;
}

/* The problem behind a wake_open failure (its errno). */
static store_problem wake_problem(int err)
{
    if (err == ENOSPC || err == EDQUOT) return STORE_FULL;
    if (err == EACCES || err == EPERM || err == EROFS) return STORE_ACCESS;
    return STORE_OTHER;
}

int front_open_shared(const lc_config *cfg, int check, wake **wk, store_problem *why)
{
    store *st = NULL;
    int rc = store_open_why(cfg->db_path, cfg->busy_timeout, check, &st, why);
    store_close(st);
    if (rc != LC_OK) return rc; /* LC_BUSY, LC_FULL or LC_ERR, logged */
    if (wake_open(cfg->wake_path, wk) != 0) {
        *why = wake_problem(errno);
        return *why == STORE_FULL ? LC_FULL : LC_ERR;
    }
    metrics_open(cfg->wake_path); /* without it the process serves, unmeasured */
    return rc;
}
