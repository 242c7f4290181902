/* Unit tests of http.c: query decoding, endpoint routing, origin rules,
 * allowed hosts (with config.c's host[:port] syntax) and the response
 * format. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/http.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

/* Host header matching against LONGCALL_ALLOWED_HOSTS: the setting, the
 * Host header (NULL: none) and whether it is served. */
static const struct {
    const char *setting, *host;
    int ok;
} host_cases[] = {
    /* unset or "*": every Host, even none */
    {"", "evil.example", 1},
    {"", NULL, 1},
    {"localhost *", "evil.example:8080", 1},
    /* make run's setting */
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "127.0.0.1:8080", 1},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "localhost:8080", 1},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "[::1]:8080", 1},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "rebind.evil.example:8080", 0},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "127.0.0.2:8080", 0},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", NULL, 0},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "", 0},
    /* ports: an entry's port must match; none in the entry: any port */
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "127.0.0.1:8081", 0},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "127.0.0.1", 0},
    {"127.0.0.1:8080 localhost:8080 [::1]:8080", "localhost:80", 0},
    {"127.0.0.1:8080", "127.0.0.1:08080", 1},
    {"localhost", "localhost:9999", 1},
    {"localhost", "localhost", 1},
    {"localhost", "localhost:", 1},
    {"call.example.org:443", "call.example.org", 1},
    {"call.example.org:80", "call.example.org", 1},
    {"call.example.org:8443", "call.example.org", 0},
    {"call.example.org", "call.example.org:65535", 1},
    {"call.example.org", "call.example.org:65536", 0},
    {"call.example.org", "call.example.org:0", 0},
    {"call.example.org", "call.example.org:80:80", 0},
    {"call.example.org", "call.example.org:x", 0},
    /* case and one trailing dot, on either side */
    {"Call.Example.ORG", "call.example.org", 1},
    {"call.example.org", "CALL.example.Org:443", 1},
    {"call.example.org.", "call.example.org", 1},
    {"call.example.org", "call.example.org.:8443", 1},
    {"call.example.org", "call.example.org..", 0},
    {"call.example.org", ".", 0},
    /* a name is the whole name, not a part of it */
    {"example.org", "call.example.org", 0},
    {"call.example.org", "call.example.org.evil.example", 0},
    {"call.example.org", "xcall.example.org", 0},
    {"call.example.org", "call.example.or", 0},
    /* IPv6: in brackets, compared as written (case ignored) */
    {"[::1]", "[::1]:8080", 1},
    {"[::1]:8080", "[::1]", 0},
    {"[::1]:8080", "::1", 0},
    {"[::1]:8080", "::1:8080", 0},
    {"[fe80::a:B]", "[FE80::A:b]", 1},
    {"[::1]", "[::1", 0},
    {"[::1]", "[::1]x", 0},
    {"[::1]", "[zz::1]", 0},
    /* bytes a name never has */
    {"call.example.org", "call.example.org\r\nX: y", 0},
    {"call.example.org", "call.example.org/", 0},
    {"call.example.org", "user@call.example.org", 0},
    {"call.example.org", " call.example.org", 0},
    {"a,b c\td", "c", 1},
    {"a,b c\td", "d:1", 1},
};

/* config_load of LONGCALL_ALLOWED_HOSTS=v (NULL: unset). Returns its result
 * and leaves the configuration in *cfg (free with config_free). */
static int load_hosts(const char *v, lc_config *cfg)
{
    if (v)
        setenv("LONGCALL_ALLOWED_HOSTS", v, 1);
    else
        unsetenv("LONGCALL_ALLOWED_HOSTS");
    return config_load(cfg);
}

static void test_hosts(void)
{
    char name[160];
    for (size_t i = 0; i < sizeof host_cases / sizeof host_cases[0]; i++) {
        lc_config cfg;
        http_request r = {.host = host_cases[i].host};
        int loaded = load_hosts(host_cases[i].setting, &cfg) == 0;
        int ok = loaded && (http_host_ok(&r, &cfg) == 0) == host_cases[i].ok;
        snprintf(name, sizeof name, "host: \"%s\" with LONGCALL_ALLOWED_HOSTS=\"%s\" is %s",
                 host_cases[i].host ? host_cases[i].host : "(none)", host_cases[i].setting,
                 host_cases[i].ok ? "served" : "refused");
        for (char *c = name; *c; c++)
            if ((unsigned char)*c < 0x20) *c = '?'; /* one TAP line */
        CHECK(name, ok);
        config_free(&cfg);
    }
    static const char *const bad[] = {"::1",         "::1:8080",     "[::1",  "localhost:0",
                                      "host:65536",  "host:80x",     "a/b",   "[]",
                                      "[::1]x",      "http://a.b",   ".",     "[g::1]",
                                      "a@b",         "localhost:80:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lc_config cfg;
        snprintf(name, sizeof name, "host: LONGCALL_ALLOWED_HOSTS=\"%s\" stops the start", bad[i]);
        CHECK(name, load_hosts(bad[i], &cfg) == -1);
        config_free(&cfg);
    }
    lc_config cfg;
    CHECK("host: unset means every host",
          load_hosts(NULL, &cfg) == 0 && cfg.allowed_hosts == NULL);
    config_free(&cfg);
    CHECK("host: entries kept in lower case without the trailing dot",
          load_hosts(" Localhost.:8080,,[::1] ", &cfg) == 0 && cfg.n_allowed_hosts == 2 &&
              strcmp(cfg.allowed_hosts[0].name, "localhost") == 0 &&
              cfg.allowed_hosts[0].port == 8080 && strcmp(cfg.allowed_hosts[1].name, "[::1]") == 0 &&
              cfg.allowed_hosts[1].port == 0);
    config_free(&cfg);
    unsetenv("LONGCALL_ALLOWED_HOSTS");
}

int main(void)
{
    test_hosts();
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
    o.origin = "http://LOCALHOST.:8080";
    o.host = "localhost:8080";
    CHECK("origin: same origin whatever the case and a trailing dot",
          http_origin_ok(&o, &cfg, &allow) == 0 && allow == NULL);
    o.origin = "http://localhost:8081";
    CHECK("origin: another port is another origin", http_origin_ok(&o, &cfg, &allow) == -1);
    o.origin = "http://localhost";
    CHECK("origin: no port is not port 8080", http_origin_ok(&o, &cfg, &allow) == -1);
    o.origin = "http://localhost:8080/x";
    CHECK("origin: an origin with a path is not one", http_origin_ok(&o, &cfg, &allow) == -1);
    o.host = "127.0.0.1:8080";
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
    CHECK("format: nosniff", strstr(out.data, "X-Content-Type-Options: nosniff\r\n") != NULL);
    CHECK("format: no-store, and buffering left alone for an answer that is not a poll's",
          strstr(out.data, "Cache-Control: no-store\r\n") &&
              !strstr(out.data, "X-Accel-Buffering"));
    buf_free(&out);
    resp.stream = 1;
    http_format(&resp, &out);
    CHECK("format: a poll answer is not buffered by a proxy",
          strstr(out.data, "X-Accel-Buffering: no\r\n") != NULL);
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", resp.body.len);
    CHECK("format: Content-Length matches the body", strstr(out.data, cl) != NULL);
    buf_free(&out);
    http_response_free(&resp);
    return unit_done();
}
