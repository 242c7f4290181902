/* Unit tests of http.c: query decoding, endpoint routing, origin rules and
 * the response format. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/http.c"
#include "../../fcgi/util.c"
#include "../../fcgi/wire.c"
#include "unit.h"

int main(void)
{
    char v[64];
    CHECK("query: plain value",
          http_query("sid=abc&after=3", "after", v, sizeof v) == 0 && strcmp(v, "3") == 0);
    CHECK("query: percent and plus decoding",
          http_query("a=1&batch=x%2Fy+z", "batch", v, sizeof v) == 0 && strcmp(v, "x/y z") == 0);
    CHECK("query: absent parameter", http_query("sidx=1&xsid=2", "sid", v, sizeof v) == 1);
    CHECK("query: prefix of another name is not a match",
          http_query("sidx=1", "sid", v, sizeof v) == 1);
    CHECK("query: encoded NUL refused", http_query("sid=a%00b", "sid", v, sizeof v) == -1);
    CHECK("query: too long refused", http_query("sid=0123456789", "sid", v, 5) == -1);
    CHECK("query: truncated escape kept literally",
          http_query("sid=ab%4", "sid", v, sizeof v) == 0 && strcmp(v, "ab%4") == 0);
    CHECK("query: empty query string", http_query("", "sid", v, sizeof v) == 1);

    char *env1[] = {
        "REQUEST_METHOD=POST", "REQUEST_URI=/rtc/send?sid=x",           "QUERY_STRING=sid=x",
        "CONTENT_LENGTH=12",   "CONTENT_TYPE=text/plain;charset=UTF-8", NULL};
    http_request r;
    http_parse(&r, env1);
    CHECK("parse: endpoint from REQUEST_URI", r.endpoint == EP_SEND);
    CHECK("parse: method", strcmp(r.method, "POST") == 0);
    CHECK("parse: content length", r.content_length == 12);
    CHECK("parse: text/plain with charset is accepted", http_json_type(&r));
    char *env2[] = {"REQUEST_METHOD=GET", "SCRIPT_NAME=/app/rtc",
                    "PATH_INFO=/poll",    "CONTENT_TYPE=application/x-www-form-urlencoded",
                    "CONTENT_LENGTH=abc", NULL};
    http_parse(&r, env2);
    CHECK("parse: endpoint from PATH_INFO when no REQUEST_URI", r.endpoint == EP_POLL);
    CHECK("parse: form content type refused", !http_json_type(&r));
    CHECK("parse: invalid content length is -1", r.content_length == -1);
    char *env3[] = {"REQUEST_URI=/rtc/sessions", NULL};
    http_parse(&r, env3);
    CHECK("parse: unknown endpoint", r.endpoint == EP_UNKNOWN && strcmp(r.method, "") == 0);
    char *env4[] = {"REQUEST_URI=/deep/mount/rtc/status?x=/send", NULL};
    http_parse(&r, env4);
    CHECK("parse: slash inside the query does not move the endpoint", r.endpoint == EP_STATUS);
    char *env5[] = {"HTTP_HOSTNAME=evil",       "HTTP_HOS=evil",
                    "NOEQUALSIGN",              "HTTP_HOST=127.0.0.1:8080",
                    "HTTP_ORIGIN=http://a.b",   "QUERY_STRING=sid=x&after=3",
                    "HTTP_HOST=second.example", "REQUEST_URI=/rtc/poll?sid=x&after=3",
                    NULL};
    http_parse(&r, env5);
    CHECK("parse: names match whole, not as prefixes; the first of a name counts",
          r.host && strcmp(r.host, "127.0.0.1:8080") == 0);
    CHECK("parse: origin, and a value holding '='",
          r.origin && strcmp(r.origin, "http://a.b") == 0 &&
              strcmp(r.query, "sid=x&after=3") == 0 && r.endpoint == EP_POLL);
    CHECK("parse: absent CONTENT_LENGTH is 0, absent CONTENT_TYPE is NULL",
          r.content_length == 0 && r.content_type == NULL);

    lc_config cfg = {0};
    char *none[] = {NULL};
    char *list[] = {"https://app.example", NULL};
    const char *allow;
    cfg.cors_origins = none;
    http_request o = {.origin = "http://127.0.0.1:8080", .host = "127.0.0.1:8080"};
    CHECK("origin: same origin allowed without CORS header",
          http_origin_ok(&o, &cfg, &allow) == 0 && allow == NULL);
    o.origin = "https://evil.example";
    CHECK("origin: foreign origin refused by default", http_origin_ok(&o, &cfg, &allow) == -1);
    o.origin = "null";
    CHECK("origin: opaque origin refused", http_origin_ok(&o, &cfg, &allow) == -1);
    cfg.cors_origins = list;
    o.origin = "https://app.example";
    CHECK("origin: listed origin echoed",
          http_origin_ok(&o, &cfg, &allow) == 0 && allow && strcmp(allow, o.origin) == 0);
    o.origin = NULL;
    CHECK("origin: no Origin header allowed", http_origin_ok(&o, &cfg, &allow) == 0);

    http_response resp = {0};
    buf out = {0};
    http_error(&resp, 429, "full \"box\"");
    resp.retry_after = 3;
    http_format(&resp, &out);
    CHECK("format: status line", strncmp(out.data, "Status: 429 Too Many Requests\r\n", 31) == 0);
    CHECK("format: JSON error body escaped",
          strstr(out.data, "\r\n\r\n{\"error\":\"full \\\"box\\\"\"}") != NULL);
    CHECK("format: Retry-After", strstr(out.data, "Retry-After: 3\r\n") != NULL);
    CHECK("format: no-store and no buffering", strstr(out.data, "Cache-Control: no-store\r\n") &&
                                                   strstr(out.data, "X-Accel-Buffering: no\r\n"));
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", resp.body.len);
    CHECK("format: Content-Length matches the body", strstr(out.data, cl) != NULL);
    buf_free(&out);
    http_response_free(&resp);
    return unit_done();
}
