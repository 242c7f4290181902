/* http: CGI/FastCGI parameters in, CGI response text out. See http.h. */

#include "http.h"

#include "wire.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *param(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

static http_endpoint endpoint_of(const char *uri)
{
    /* The mount point differs between servers (/rtc, /app/rtc, ...): the
     * endpoint is the last segment of the path, before any query. */
    static const struct {
        const char *name;
        http_endpoint ep;
    } eps[] = {{"session", EP_SESSION},
               {"send", EP_SEND},
               {"poll", EP_POLL},
               {"close", EP_CLOSE},
               {"status", EP_STATUS},
               {"metrics", EP_METRICS}};
    if (!uri) return EP_UNKNOWN;
    size_t len = strcspn(uri, "?#");
    const char *start = uri;
    for (size_t i = 0; i < len; i++)
        if (uri[i] == '/') start = uri + i + 1;
    size_t seg = (size_t)(uri + len - start);
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
        if (strlen(eps[i].name) == seg && strncmp(start, eps[i].name, seg) == 0) return eps[i].ep;
    return EP_UNKNOWN;
}

void http_parse(http_request *r, char *const *envp)
{
    const char *v;
    memset(r, 0, sizeof *r);
    r->method = (v = param(envp, "REQUEST_METHOD")) ? v : "";
    r->query = (v = param(envp, "QUERY_STRING")) ? v : "";
    r->origin = param(envp, "HTTP_ORIGIN");
    r->host = param(envp, "HTTP_HOST");
    r->content_type = param(envp, "CONTENT_TYPE");
    r->remote_addr = param(envp, "REMOTE_ADDR");
    r->authorization = param(envp, "HTTP_AUTHORIZATION");
    r->forwarded_for = param(envp, "HTTP_X_FORWARDED_FOR");
    r->forwarded = param(envp, "HTTP_FORWARDED");
    /* REQUEST_URI is set by lighttpd, Apache and nginx; plain CGI servers
     * may only give SCRIPT_NAME + PATH_INFO. */
    const char *uri = param(envp, "REQUEST_URI");
    const char *pi = param(envp, "PATH_INFO");
    r->endpoint = endpoint_of(uri);
    if (r->endpoint == EP_UNKNOWN && pi) r->endpoint = endpoint_of(pi);
    r->content_length = -1;
    if ((v = param(envp, "CONTENT_LENGTH")) && *v) {
        char *end;
        long long n = strtoll(v, &end, 10);
        if (!*end && n >= 0) r->content_length = n;
    } else {
        r->content_length = 0;
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int http_query(const char *query, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                int c = (unsigned char)p[i];
                if (c == '+')
                    c = ' ';
                else if (c == '%' && i + 2 < len + 1 && hexval(p[i + 1]) >= 0 &&
                         hexval(p[i + 2]) >= 0) {
                    c = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
                    i += 2;
                }
                if (c == 0 || o + 1 >= n) return -1;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return 0;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 1;
}

int http_json_type(const http_request *r)
{
    const char *t = r->content_type;
    if (!t || !*t) return 1;
    size_t n = strcspn(t, "; \t");
    return (n == 16 && strncasecmp(t, "application/json", n) == 0) ||
           (n == 10 && strncasecmp(t, "text/plain", n) == 0);
}

int http_host_ok(const http_request *r, const lc_config *cfg)
{
    if (!cfg->allowed_hosts) return 0;
    lc_host h;
    if (!r->host || config_host_split(r->host, strlen(r->host), &h) != 0) return -1;
    for (int i = 0; i < cfg->n_allowed_hosts; i++) {
        const lc_host *a = &cfg->allowed_hosts[i];
        if (strcmp(a->name, h.name) != 0) continue;
        /* A Host without a port is the scheme's default port (browsers
         * leave out :80 and :443); the backend cannot tell which scheme. */
        if (a->port == 0 || a->port == h.port || (h.port == 0 && (a->port == 80 || a->port == 443)))
            return 0;
    }
    return -1;
}

int http_origin_ok(const http_request *r, const lc_config *cfg, const char **allow)
{
    *allow = NULL;
    if (!r->origin) return 0;
    /* Same origin: the host[:port] after "scheme://" is the Host header's
     * (case and a trailing dot ignored, as http_host_ok does; some servers
     * pass Host on normalised). The scheme is not compared: behind a
     * TLS-terminating proxy the backend cannot know it. */
    const char *h = strstr(r->origin, "://");
    lc_host oh, hh;
    if (h && r->host && config_host_split(h + 3, strlen(h + 3), &oh) == 0 &&
        config_host_split(r->host, strlen(r->host), &hh) == 0 && strcmp(oh.name, hh.name) == 0 &&
        oh.port == hh.port)
        return 0;
    for (char **o = cfg->cors_origins; o && *o; o++) {
        if (strcmp(*o, "*") == 0 || strcasecmp(*o, r->origin) == 0) {
            *allow = r->origin;
            return 0;
        }
    }
    return -1;
}

void http_client_addr(const http_request *r, const lc_config *cfg, char key[ADDR_KEY_MAX])
{
    addr_client(r->remote_addr, cfg->forwarded == ADDR_HDR_FORWARDED ? r->forwarded : r->forwarded_for,
                cfg->forwarded, cfg->trusted, cfg->ntrusted, key);
}

void http_error(http_response *resp, int status, const char *sentence)
{
    resp->status = status;
    resp->body.len = 0;
    wire_error(&resp->body, sentence);
}

const char *http_method_of(http_endpoint ep)
{
    static const char *const want[] = {
        [EP_UNKNOWN] = NULL,   [EP_SESSION] = "POST", [EP_SEND] = "POST",
        [EP_POLL] = "GET",     [EP_CLOSE] = "POST",   [EP_STATUS] = "GET",
        [EP_METRICS] = "GET",
    };
    return ep >= EP_UNKNOWN && ep <= EP_METRICS ? want[ep] : NULL;
}

void http_db_error(http_response *resp, int rc)
{
    http_error(resp, 503, wire_db_sentence(rc));
    resp->retry_after = rc == LC_FULL ? 5 : 1;
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

void http_format(const http_response *resp, buf *out)
{
    const char *body = resp->body.data ? resp->body.data : "";
    size_t len = resp->status == 204 ? 0 : resp->body.len;
    buf_printf(out,
               "Status: %d %s\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "Cache-Control: no-store\r\n"
               "X-Content-Type-Options: nosniff\r\n",
               resp->status, reason(resp->status),
               resp->content_type ? resp->content_type : "application/json", len);
    if (resp->stream) buf_puts(out, "X-Accel-Buffering: no\r\n");
    if (resp->retry_after > 0) buf_printf(out, "Retry-After: %d\r\n", resp->retry_after);
    if (resp->status == 405 && resp->method) buf_printf(out, "Allow: %s, OPTIONS\r\n", resp->method);
    if (resp->allow_origin) {
        buf_puts(out, "Access-Control-Allow-Origin: ");
        buf_puts(out, resp->allow_origin);
        buf_puts(out, "\r\nVary: Origin\r\n");
    }
    if (resp->preflight)
        buf_puts(out, "Access-Control-Allow-Methods: GET, POST\r\n"
                      "Access-Control-Allow-Headers: Content-Type\r\n"
                      "Access-Control-Max-Age: 600\r\n");
    buf_puts(out, "\r\n");
    buf_append(out, body, len);
}

void http_response_free(http_response *resp)
{
    buf_free(&resp->body);
}
