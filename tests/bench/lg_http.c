/* lg_http: parses HTTP/1.1 responses as their bytes arrive: finds the header
 * block, reads the status and the framing headers, then gathers a
 * Content-Length, chunked or close-delimited body into r->body. */
#include "lg_http.h"

#include "lg_util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Makes r ready for the next response. */
void lg_resp_reset(lg_resp *r)
{
    r->state = LG_RESP_HEAD;
    r->status = 0;
    r->close = 0;
    r->left = 0;
    r->body_len = 0; /* the old bytes stay readable until new ones come */
}

/* Frees the body buffer. */
void lg_resp_free(lg_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->body_cap = r->body_len = 0;
}

static void body_append(lg_resp *r, const char *p, size_t n)
{
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 256;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        r->body = lg_xrealloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* Does the header value v[0..n) contain the token tok (comma-separated,
 * case-insensitive)? */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0) return 1;
    return 0;
}

/* Parses the status line and headers in head[0..n) (without the final empty
 * line) and chooses how the body is framed. */
static int parse_head(lg_resp *r, const char *head, size_t n)
{
    long long clen = -1;
    int chunked = 0, http10 = 0;
    const char *eol = memmem(head, n, "\r\n", 2);
    size_t first = eol ? (size_t)(eol - head) : n;
    if (first < 12 || strncmp(head, "HTTP/1.", 7) != 0) return LG_PARSE_ERROR;
    http10 = head[7] == '0';
    r->status = atoi(head + 9);
    if (r->status < 100 || r->status > 599) return LG_PARSE_ERROR;
    r->close = http10;
    const char *p = eol ? eol + 2 : head + n;
    const char *end = head + n;
    while (p < end) {
        const char *le = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!le) le = end;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            size_t kl = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(le - v);
            if (kl == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
                clen = strtoll(v, NULL, 10);
                if (clen < 0) return LG_PARSE_ERROR;
            } else if (kl == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
                chunked = has_token(v, vl, "chunked");
            } else if (kl == 10 && strncasecmp(p, "Connection", 10) == 0) {
                if (has_token(v, vl, "close")) r->close = 1;
                if (has_token(v, vl, "keep-alive")) r->close = 0;
            }
        }
        p = le + 2;
    }
    if (r->status == 204 || r->status == 304 || r->status < 200) {
        r->state = LG_RESP_DONE;
    } else if (chunked) {
        r->state = LG_RESP_CHUNK_SIZE;
    } else if (clen >= 0) {
        r->left = (size_t)clen;
        r->state = clen ? LG_RESP_BODY_LEN : LG_RESP_DONE;
    } else {
        r->close = 1;
        r->state = LG_RESP_BODY_EOF;
    }
    return LG_PARSE_MORE;
}

/* Parses as much of buf as it can; see lg_http.h. */
int lg_resp_parse(lg_resp *r, const char *buf, size_t len, size_t *used)
{
    size_t off = 0;
    int rc = LG_PARSE_MORE;
    while (rc == LG_PARSE_MORE && r->state != LG_RESP_DONE) {
        const char *p = buf + off;
        size_t n = len - off;
        if (r->state == LG_RESP_HEAD) {
            const char *e = memmem(p, n, "\r\n\r\n", 4);
            if (!e) break;
            rc = parse_head(r, p, (size_t)(e - p));
            off += (size_t)(e - p) + 4;
        } else if (r->state == LG_RESP_BODY_LEN || r->state == LG_RESP_CHUNK_DATA) {
            if (!n) break;
            size_t take = n < r->left ? n : r->left;
            body_append(r, p, take);
            off += take;
            r->left -= take;
            if (!r->left)
                r->state = r->state == LG_RESP_BODY_LEN ? LG_RESP_DONE : LG_RESP_CHUNK_CRLF;
        } else if (r->state == LG_RESP_CHUNK_SIZE) {
            const char *e = memmem(p, n, "\r\n", 2);
            if (!e) break;
            char *end = NULL;
            unsigned long long sz = strtoull(p, &end, 16);
            if (end == p) rc = LG_PARSE_ERROR;
            off += (size_t)(e - p) + 2;
            r->left = (size_t)sz;
            r->state = sz ? LG_RESP_CHUNK_DATA : LG_RESP_TRAILER;
        } else if (r->state == LG_RESP_CHUNK_CRLF) {
            if (n < 2) break;
            if (p[0] != '\r' || p[1] != '\n') rc = LG_PARSE_ERROR;
            off += 2;
            r->state = LG_RESP_CHUNK_SIZE;
        } else if (r->state == LG_RESP_TRAILER) {
            const char *e = memmem(p, n, "\r\n", 2);
            if (!e) break;
            off += (size_t)(e - p) + 2;
            if (e == p) r->state = LG_RESP_DONE;
        } else { /* LG_RESP_BODY_EOF */
            body_append(r, p, n);
            off += n;
            break;
        }
    }
    *used = off;
    if (rc == LG_PARSE_ERROR) return rc;
    return r->state == LG_RESP_DONE ? LG_PARSE_DONE : LG_PARSE_MORE;
}

/* The peer closed: completes a close-delimited body, else it was cut. */
int lg_resp_eof(lg_resp *r)
{
    if (r->state == LG_RESP_BODY_EOF || r->state == LG_RESP_DONE) {
        r->state = LG_RESP_DONE;
        return LG_PARSE_DONE;
    }
    return LG_PARSE_ERROR;
}
