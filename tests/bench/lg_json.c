/* lg_json: a skip-parser: it walks JSON text far enough to find a member of
 * an object or the elements of an array, checking brackets and strings but
 * not building anything. Inputs are the server's answers, bounded in size. */
#include "lg_json.h"

#include <stdlib.h>
#include <string.h>

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p is at '"': returns the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Returns the position after the value starting at p (after white space),
 * or NULL on bad JSON. */
static const char *skip_value(const char *p, const char *e)
{
    p = ws(p, e);
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = skip_string(p, e);
                if (!p) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' &&
           *p != '\t')
        p++;
    return p > s ? p : NULL;
}

/* Finds member key of the object in s[0..n). */
const char *lgj_member(const char *s, size_t n, const char *key, size_t *vlen)
{
    const char *e = s + n, *p = ws(s, e);
    size_t kl = strlen(key);
    if (p >= e || *p != '{') return NULL;
    p = ws(p + 1, e);
    if (p < e && *p == '}') return NULL;
    while (p < e && *p == '"') {
        const char *k = p + 1, *ke = skip_string(p, e);
        if (!ke) return NULL;
        int match = (size_t)(ke - 1 - k) == kl && memcmp(k, key, kl) == 0;
        p = ws(ke, e);
        if (p >= e || *p != ':') return NULL;
        const char *v = ws(p + 1, e), *ve = skip_value(v, e);
        if (!ve) return NULL;
        if (match) {
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = ws(ve, e);
        if (p >= e || *p != ',') return NULL;
        p = ws(p + 1, e);
    }
    return NULL;
}

/* The member key as an integer. */
int lgj_int(const char *s, size_t n, const char *key, long long *out)
{
    size_t vl;
    const char *v = lgj_member(s, n, key, &vl);
    if (!v || vl == 0 || vl > 30 || !(*v == '-' || (*v >= '0' && *v <= '9'))) return -1;
    char tmp[32];
    memcpy(tmp, v, vl);
    tmp[vl] = '\0';
    *out = strtoll(tmp, NULL, 10);
    return 0;
}

/* The member key as a string. */
int lgj_str(const char *s, size_t n, const char *key, char *out, size_t cap)
{
    size_t vl;
    const char *v = lgj_member(s, n, key, &vl);
    if (!v || vl < 2 || *v != '"' || vl - 2 >= cap) return -1;
    memcpy(out, v + 1, vl - 2);
    out[vl - 2] = '\0';
    return 0;
}

/* Does member key hold the string want? */
int lgj_str_is(const char *s, size_t n, const char *key, const char *want)
{
    size_t vl, wl = strlen(want);
    const char *v = lgj_member(s, n, key, &vl);
    return v && vl == wl + 2 && *v == '"' && memcmp(v + 1, want, wl) == 0;
}

/* Calls fn for each element of the array member key. */
int lgj_each(const char *s, size_t n, const char *key, lgj_elem_fn fn, void *arg)
{
    size_t vl;
    const char *v = lgj_member(s, n, key, &vl);
    if (!v || *v != '[') return -1;
    const char *e = v + vl - 1; /* at the closing ']' */
    const char *p = ws(v + 1, e);
    int count = 0;
    while (p < e) {
        const char *ve = skip_value(p, e);
        if (!ve) return -1;
        if (fn) fn(p, (size_t)(ve - p), arg);
        count++;
        p = ws(ve, e);
        if (p < e && *p != ',') return -1;
        if (p < e) p = ws(p + 1, e);
    }
    return count;
}
