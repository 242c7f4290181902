/* http: the HTTP side of a request as the web server hands it over (CGI/
 * FastCGI parameters): method, endpoint, query parameters, host and origin
 * checks, and the response format (status line, the headers every answer
 * carries; bodies, errors included, are wire.c's). It does no I/O and
 * knows nothing of sessions or SQLite. */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include "config.h"
#include "util.h"

typedef enum {
    EP_UNKNOWN = 0,
    EP_SESSION,
    EP_SEND,
    EP_POLL,
    EP_CLOSE,
    EP_STATUS,
    EP_METRICS /* the last: tests/fuzz/fuzz_http.c checks the range up to it */
} http_endpoint;

typedef struct http_request {
    const char *method;       /* REQUEST_METHOD, "" if absent */
    http_endpoint endpoint;   /* from the last path segment */
    const char *query;        /* QUERY_STRING, "" if absent */
    const char *origin;       /* HTTP_ORIGIN or NULL */
    const char *host;         /* HTTP_HOST or NULL */
    const char *content_type; /* CONTENT_TYPE or NULL */
    long long content_length; /* CONTENT_LENGTH, -1 if absent or invalid */
    const char *remote_addr;  /* REMOTE_ADDR or NULL */
    const char *forwarded_for; /* HTTP_X_FORWARDED_FOR or NULL */
    const char *forwarded;    /* HTTP_FORWARDED or NULL */
    const char *authorization; /* HTTP_AUTHORIZATION or NULL (GET /rtc/metrics' token) */
} http_request;

typedef struct http_response {
    int status;
    buf body;                 /* JSON text */
    int retry_after;          /* seconds; 0 = no Retry-After header */
    const char *allow_origin; /* echoed in Access-Control-Allow-Origin; not owned */
    int preflight;            /* answer to OPTIONS: CORS method/header list */
    const char *method;       /* with 405 or preflight: the endpoint's method (static) */
    int stream;               /* a poll's answer: X-Accel-Buffering: no (a proxy must pass it
                               * on as it comes; other answers it may buffer, freeing us) */
    const char *content_type; /* NULL: application/json (static) */
} http_response;

/* Fills r from the parameters in envp (a NULL-terminated "NAME=value"
 * array, as FCGX_Request.envp or environ). r points into envp: keep envp
 * alive while r is used. */
void http_parse(http_request *r, char *const *envp);

/* Copies the URL-decoded value of query parameter name into out (size n).
 * Returns 0, 1 when the parameter is absent, -1 when it is longer than n-1
 * bytes or contains a NUL. */
int http_query(const char *query, const char *name, char *out, size_t n);

/* The method endpoint ep answers ("GET" or "POST"; OPTIONS is always
 * answered too), or NULL for EP_UNKNOWN. */
const char *http_method_of(http_endpoint ep);

/* 1 when the request's Content-Type is absent, application/json or
 * text/plain (parameters such as charset ignored), else 0. */
int http_json_type(const http_request *r);

/* Decides whether r's Host is one this server answers for (DNS rebinding:
 * a page of another site whose name now points here sends its own name as
 * Host). Returns 0 when cfg->allowed_hosts is NULL (LONGCALL_ALLOWED_HOSTS
 * unset: every Host) or r->host matches an entry: the same name (case and
 * one trailing dot ignored) and, when the entry has a port, the same port
 * (a Host without a port matches an entry's 80 or 443). Returns -1 for any
 * other Host, a missing one and one that is not a host[:port]. */
int http_host_ok(const http_request *r, const lc_config *cfg);

/* Decides whether a request from r->origin may be served. Returns 0 (same
 * origin, no Origin, or allowed: then *allow is the origin to echo, or NULL
 * when no CORS header is needed) or -1 (a foreign origin not configured). */
int http_origin_ok(const http_request *r, const lc_config *cfg, const char **allow);

/* Writes into key the client address the per-address limits count
 * against (addr_client: REMOTE_ADDR, or behind LONGCALL_TRUSTED_PROXIES
 * the nearest untrusted address of the configured forwarding header). */
void http_client_addr(const http_request *r, const lc_config *cfg, char key[ADDR_KEY_MAX]);

/* Sets resp to status with body {"error": sentence} (wire_error), replacing
 * any body it had. */
void http_error(http_response *resp, int status, const char *sentence);

/* Sets resp to the 503 of a store failure rc (LC_BUSY, LC_FULL, or any
 * other): "try again later", with Retry-After (longer for a full disk). */
void http_db_error(http_response *resp, int rc);

/* Appends the complete CGI-style response (Status and headers, blank line,
 * body) to out. */
void http_format(const http_response *resp, buf *out);

void http_response_free(http_response *resp);

#endif
