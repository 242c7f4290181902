/* addr: client addresses for the per-address limits; see addr.h. */

#include "addr.h"

#include "metrics.h"

#include "util.h"
#include "wake.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WALK_MAX 64 /* entries of a forwarding header looked at */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces around [*s, *s + *n) and one pair of double quotes. */
static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s))
        (*s)++, (*n)--;
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
    if (*n >= 2 && (*s)[0] == '"' && (*s)[*n - 1] == '"') (*s)++, *n -= 2;
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 5) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes IPv4. */
static void unmap(addr_net *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->family == 6 && memcmp(a->a, mapped, 12) == 0) {
        memmove(a->a, a->a + 12, 4);
        memset(a->a + 4, 0, 12);
        a->family = 4;
        a->bits = a->bits >= 96 ? a->bits - 96 : 0;
    }
}

/* inet_pton of s (n bytes) into *out as family 4 or 6 with bits. */
static int pton(const char *s, size_t n, int v6, addr_net *out)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(v6 ? AF_INET6 : AF_INET, tmp, out->a) != 1) return -1;
    out->family = v6 ? 6 : 4;
    out->bits = v6 ? 128 : 32;
    return 0;
}

int addr_parse(const char *text, size_t len, addr_net *out)
{
    const char *s = text;
    size_t n = len;
    trim(&s, &n);
    if (n && s[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(s, ']', n);
        if (!close) return -1;
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest && (close[1] != ':' || !all_digits(close + 2, rest - 1))) return -1;
        if (pton(s + 1, (size_t)(close - s - 1), 1, out) != 0) return -1;
    } else {
        int colons = 0;
        size_t last = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') colons++, last = i;
        if (colons == 1) { /* v4:port */
            if (!all_digits(s + last + 1, n - last - 1)) return -1;
            n = last;
        }
        if (pton(s, n, colons > 1, out) != 0) return -1;
    }
    unmap(out);
    return 0;
}

int addr_parse_nets(const char *list, addr_net **out, int *n, char *why, size_t whyn)
{
    *out = NULL;
    *n = 0;
    const char *p = list ? list : "";
    while (*p) {
        size_t len = strcspn(p, " \t,");
        if (len == 0) {
            p++;
            continue;
        }
        addr_net net;
        const char *slash = memchr(p, '/', len);
        size_t alen = slash ? (size_t)(slash - p) : len;
        int v6 = memchr(p, ':', alen) != NULL, ok = pton(p, alen, v6, &net) == 0;
        if (ok && slash) {
            char *end;
            size_t blen = len - alen - 1;
            char bits[8] = "";
            if (blen == 0 || blen >= sizeof bits) ok = 0;
            if (ok) {
                memcpy(bits, slash + 1, blen);
                long b = strtol(bits, &end, 10);
                if (*end || b < 0 || b > (v6 ? 128 : 32) || bits[0] < '0' || bits[0] > '9')
                    ok = 0;
                else
                    net.bits = (int)b;
            }
        }
        if (!ok) {
            snprintf(why, whyn, "\"%.*s\" is not an IPv4 or IPv6 address or network (a.b.c.d/n, x:y::/n)",
                     (int)(len > 60 ? 60 : len), p);
            free(*out);
            *out = NULL;
            *n = 0;
            return -1;
        }
        unmap(&net);
        *out = xrealloc(*out, (size_t)(*n + 1) * sizeof **out);
        (*out)[(*n)++] = net;
        p += len;
    }
    return 0;
}

int addr_in(const addr_net *a, const addr_net *nets, int n)
{
    for (int i = 0; i < n; i++) {
        const addr_net *m = &nets[i];
        if (m->family != a->family) continue;
        int full = m->bits / 8, rest = m->bits % 8;
        if (memcmp(a->a, m->a, (size_t)full) != 0) continue;
        if (rest) {
            uint8_t mask = (uint8_t)(0xff << (8 - rest));
            if ((a->a[full] & mask) != (m->a[full] & mask)) continue;
        }
        return 1;
    }
    return 0;
}

void addr_key(const addr_net *a, char out[ADDR_KEY_MAX])
{
    char text[INET6_ADDRSTRLEN];
    if (a->family == 4) {
        inet_ntop(AF_INET, a->a, out, ADDR_KEY_MAX);
        return;
    }
    uint8_t p[16] = {0};
    memcpy(p, a->a, 8);
    inet_ntop(AF_INET6, p, text, sizeof text);
    snprintf(out, ADDR_KEY_MAX, "%s/64", text);
}

/* The for= value of one Forwarded element [s, s + n): 1 with *v, *vn set,
 * or 0 when it has none. */
static int forwarded_for(const char *s, size_t n, const char **v, size_t *vn)
{
    const char *end = s + n;
    while (s < end) {
        const char *semi = memchr(s, ';', (size_t)(end - s));
        const char *pe = semi ? semi : end;
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        if (eq) {
            const char *k = s;
            size_t kn = (size_t)(eq - s);
            trim(&k, &kn);
            if (kn == 3 && strncasecmp(k, "for", 3) == 0) {
                *v = eq + 1;
                *vn = (size_t)(pe - eq - 1);
                return 1;
            }
        }
        s = semi ? semi + 1 : end;
    }
    return 0;
}

void addr_client(const char *remote, const char *hdr, addr_header which, const addr_net *trusted,
                 int ntrusted, char out[ADDR_KEY_MAX])
{
    addr_net cur, e;
    if (!remote || addr_parse(remote, strlen(remote), &cur) != 0) {
        snprintf(out, ADDR_KEY_MAX, "unknown");
        return;
    }
    if (ntrusted > 0 && hdr && addr_in(&cur, trusted, ntrusted)) {
        const char *end = hdr + strlen(hdr);
        for (int k = 0; k < WALK_MAX && end > hdr; k++) {
            const char *p = end; /* the element is [p, end): back to a comma outside quotes */
            int quoted = 0;
            while (p > hdr && (quoted || p[-1] != ','))
                if (*--p == '"') quoted = !quoted;
            const char *v = p;
            size_t vn = (size_t)(end - p);
            end = p > hdr ? p - 1 : hdr;
            trim(&v, &vn);
            if (vn == 0) continue; /* "a, , b": an empty element */
            if (which == ADDR_HDR_FORWARDED && !forwarded_for(v, vn, &v, &vn)) break;
            if (addr_parse(v, vn, &e) != 0) break;
            cur = e;
            if (!addr_in(&cur, trusted, ntrusted)) break;
        }
    }
    addr_key(&cur, out);
}

static void log_event(wake *w, const char *kind, const char *key, int n, const char *fmt,
                      va_list ap)
{
    char what[400];
    long before = 0;
    metrics_limit(kind, n); /* every refusal is counted; its line is summarised */
    if (w && !wake_log_due_kind_n(w, kind, key, n, &before)) return;
    vsnprintf(what, sizeof what, fmt, ap);
    /* A dropped reader is a client gone; every other kind a limit hit. */
    const char *event = strcmp(kind, "LONGCALL_WRITE_TIMEOUT") == 0 ? "client_gone" : "limit_hit";
    long count = (before < 0 ? 0 : before) + 1; /* before counts the batch's other n - 1 */
    if (!w) {
        lc_log_event(LC_LOG_DEBUG, event,
                     LC_FIELDS(LC_STR("client", key), LC_STR("limit", kind), LC_NUM("count", n)),
                     "client %s %s", key, what);
        return;
    }
    lc_log_event(LC_LOG_WARN, event,
                 LC_FIELDS(LC_STR("client", key), LC_STR("limit", kind), LC_NUM("count", count)),
                 "client %s %s (%ld more since the previous line; at most one such line per "
                 "client a minute)",
                 key, what, count - 1);
}

void addr_log_event(wake *w, const char *kind, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_event(w, kind, key, 1, fmt, ap);
    va_end(ap);
}

void addr_log_event_n(wake *w, const char *kind, const char *key, int n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_event(w, kind, key, n, fmt, ap);
    va_end(ap);
}

void addr_log_refusal(wake *w, const char *key, const char *what, int limit)
{
    addr_log_event(w, what, key, "is over %s=%d: refused with 429", what, limit);
}
