/* libFuzzer target: the request parser (fcgi/http.c). The input is split
 * at NUL bytes into fields: the first 10 are the values of REQUEST_METHOD,
 * REQUEST_URI, SCRIPT_NAME, PATH_INFO, QUERY_STRING, CONTENT_TYPE,
 * CONTENT_LENGTH, HTTP_ORIGIN, HTTP_HOST and a parameter name (a missing
 * field: the variable is absent; a field that starts with 0x01: absent
 * too); a field after them is a whole extra "NAME=value" entry. Checked:
 * http_parse points into the environment it was given and agrees with
 * http_query / http_json_type / http_origin_ok on a configuration of
 * allowed origins, and http_host_ok with config_host_split on a list of
 * allowed hosts; http_query's output is NUL-terminated within n, and
 * decoding a value it encoded itself gives back the value; http_format
 * of an error answer is a well-formed header block. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/http.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_http: " __VA_ARGS__);                                                \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static const char *const vars[] = {"REQUEST_METHOD", "REQUEST_URI",  "SCRIPT_NAME",
                                   "PATH_INFO",      "QUERY_STRING", "CONTENT_TYPE",
                                   "CONTENT_LENGTH", "HTTP_ORIGIN",  "HTTP_HOST"};
#define NVARS (sizeof vars / sizeof vars[0])
#define MAXENV 24

/* Percent-encodes s (every byte but unreserved ones; space as '+' on odd
 * lengths, %20 otherwise, so both forms are decoded). */
static void encode(const char *s, buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_append(out, &s[i], 1);
        } else if (c == ' ' && (n & 1)) {
            buf_puts(out, "+");
        } else {
            char e[3] = {'%', hex[c >> 4],
                         (char)(i & 1 ? hex[c & 15] : "0123456789abcdef"[c & 15])};
            buf_append(out, e, 3);
        }
    }
}

/* A header block: lines "Name: value\r\n" up to a blank line, first line
 * Status, Content-Length equal to the body that follows. */
static void check_format(const http_response *resp, const buf *out)
{
    const char *p = out->data;
    const char *end = strstr(p, "\r\n\r\n");
    if (!end) FAIL("response has no blank line");
    if (strncmp(p, "Status: ", 8) != 0) FAIL("response does not start with Status");
    size_t clen = (size_t)-1;
    for (const char *l = p; l < end + 2;) {
        const char *eol = strstr(l, "\r\n");
        const char *colon = memchr(l, ':', (size_t)(eol - l));
        if (!colon || colon == l || colon[1] != ' ') FAIL("header line without 'Name: '");
        for (const char *q = l; q < eol; q++)
            if (*q == '\r' || *q == '\n' || *q == '\0') FAIL("CR, LF or NUL inside a header line");
        if (strncmp(l, "Content-Length: ", 16) == 0) clen = strtoul(l + 16, NULL, 10);
        l = eol + 2;
    }
    size_t body = out->len - (size_t)(end + 4 - p);
    if (clen != body) FAIL("Content-Length %zu, body %zu", clen, body);
    if (resp->status != 204 && (body != resp->body.len || memcmp(end + 4, resp->body.data, body)))
        FAIL("body differs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Fields, NUL-separated, copied so that each is a C string. */
    char *copy = xmalloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *field[MAXENV];
    size_t nf = 0;
    for (size_t i = 0; i <= size && nf < MAXENV;) {
        field[nf++] = copy + i;
        i += strlen(copy + i) + 1;
    }
    char *env[MAXENV + 1];
    buf store[MAXENV] = {{0}};
    size_t ne = 0;
    for (size_t i = 0; i < nf && ne < MAXENV; i++) {
        if (i == NVARS) continue; /* the parameter name */
        if (i < NVARS) {
            if (field[i][0] == 1) continue;
            buf_printf(&store[ne], "%s=%s", vars[i], field[i]);
        } else {
            buf_puts(&store[ne], field[i]);
        }
        env[ne] = store[ne].data;
        ne++;
    }
    env[ne] = NULL;
    const char *name = nf > NVARS && field[NVARS][0] ? field[NVARS] : "sid";

    http_request r;
    http_parse(&r, env);
    /* Every string points into env (or is the "" default). */
    const char *ptrs[] = {r.method, r.query, r.origin, r.host, r.content_type};
    for (size_t k = 0; k < sizeof ptrs / sizeof ptrs[0]; k++) {
        const char *s = ptrs[k];
        if (!s || (k < 2 && !*s)) continue;
        int inside = 0;
        for (size_t i = 0; i < ne; i++)
            if (s > env[i] && s <= env[i] + strlen(env[i])) inside = 1;
        if (!inside) FAIL("parsed field %zu points outside the environment", k);
    }
    if (r.content_length < -1) FAIL("content length %lld", r.content_length);
    if ((unsigned)r.endpoint > EP_METRICS) FAIL("endpoint %d", (int)r.endpoint);

    /* http_query: NUL-terminated within n, for several n. */
    static const size_t sizes[] = {1, 2, 5, 33, 128, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        char *out = xmalloc(n + 16);
        memset(out, 'Z', n + 16);
        int q = http_query(r.query, name, out, n);
        if (q < -1 || q > 1) FAIL("http_query returned %d", q);
        for (size_t i = n; i < n + 16; i++)
            if (out[i] != 'Z') FAIL("http_query wrote past n=%zu", n);
        if (q == 0) {
            if (!memchr(out, 0, n)) FAIL("http_query output not NUL-terminated within n");
            /* Round trip: encode the value, decode it again. */
            size_t vlen = strlen(out);
            buf qs = {0};
            buf_printf(&qs, "x=1&%s=", name);
            encode(out, &qs);
            buf_puts(&qs, "&y=2");
            char *again = xmalloc(vlen + 1);
            if (!strchr(name, '&') && !strchr(name, '=')) {
                int q2 = http_query(qs.data, name, again, vlen + 1);
                if (strcmp(name, "x") && strcmp(name, "y") && (q2 != 0 || strcmp(again, out)))
                    FAIL("decoding the encoding of a value is not identity (%d)", q2);
            }
            free(again);
            buf_free(&qs);
        }
        free(out);
    }

    (void)http_json_type(&r);

    /* Origins: none configured, one, and "*". */
    char *one[] = {"https://app.example", NULL};
    char *any[] = {"*", NULL};
    char **lists[] = {NULL, one, any};
    for (int k = 0; k < 3; k++) {
        lc_config cfg = {.cors_origins = lists[k], .cors_any = k == 2};
        const char *allow = (const char *)1;
        int rc = http_origin_ok(&r, &cfg, &allow);
        if (rc != 0 && rc != -1) FAIL("http_origin_ok returned %d", rc);
        if (!r.origin && (rc != 0 || allow)) FAIL("no Origin must be allowed without CORS");
        if (k == 2 && rc != 0) FAIL("'*' refused an origin");
        if (allow && allow != r.origin) FAIL("allow is not the request's origin");
        if (k == 0 && allow) FAIL("a CORS header without configured origins");

        /* An error answer echoing it, formatted. */
        http_response resp = {0};
        static const int codes[] = {200, 204, 400, 403, 404, 405, 413, 415, 429, 500, 503};
        http_error(&resp, codes[(size + (size_t)k) % (sizeof codes / sizeof codes[0])], r.method);
        resp.retry_after = k;
        resp.preflight = k == 1;
        /* A header may only echo an origin without CR/LF: the front end
         * passes header values without them. */
        resp.allow_origin = allow && !strpbrk(allow, "\r\n") ? allow : NULL;
        buf out = {0};
        http_format(&resp, &out);
        check_format(&resp, &out);
        buf_free(&out);
        http_response_free(&resp);
    }

    /* Allowed hosts: unset serves every Host; with a list, a Host is served
     * only when it splits into a name and port that an entry matches, and
     * splitting is stable (the split name splits into itself). */
    lc_host allowed[] = {{"localhost", 8080}, {"[::1]", 0}, {"call.example.org", 443}};
    lc_config hc = {.allowed_hosts = NULL};
    if (http_host_ok(&r, &hc) != 0) FAIL("unset LONGCALL_ALLOWED_HOSTS refused a Host");
    hc.allowed_hosts = allowed;
    hc.n_allowed_hosts = 3;
    int hrc = http_host_ok(&r, &hc);
    if (hrc != 0 && hrc != -1) FAIL("http_host_ok returned %d", hrc);
    lc_host h, h2;
    int split = r.host ? config_host_split(r.host, strlen(r.host), &h) : -1;
    if (hrc == 0 && split != 0) FAIL("a Host that does not split was served");
    if (split == 0) {
        if (!h.name[0] || h.port < 0 || h.port > 65535) FAIL("split gave an empty name or bad port");
        for (const char *c = h.name; *c; c++)
            if (*c >= 'A' && *c <= 'Z') FAIL("split name not in lower case");
        if (config_host_split(h.name, strlen(h.name), &h2) != 0 || strcmp(h.name, h2.name) ||
            h2.port != 0)
            FAIL("a split name does not split into itself: %s", h.name);
        int match = 0;
        for (int i = 0; i < 3; i++)
            if (!strcmp(allowed[i].name, h.name) &&
                (!allowed[i].port || allowed[i].port == h.port ||
                 (!h.port && (allowed[i].port == 80 || allowed[i].port == 443))))
                match = 1;
        if (match != (hrc == 0)) FAIL("http_host_ok disagrees with the entries for %s", h.name);
    }

    for (size_t i = 0; i < ne; i++)
        buf_free(&store[i]);
    free(copy);
    return 0;
}
