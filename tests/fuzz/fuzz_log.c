/* libFuzzer target: the log's line writer (fcgi/log.c) on client text.
 * Input: 1 byte of options (bit 0: JSON lines, bit 1: a timestamp, bits
 * 2-7: the buffer's size in 64-byte steps past 256, at most LC_LOG_LINE_MAX),
 * then a field's value and the message, split at the first NUL. The line
 * must be one line (a newline at its end only), within the buffer, valid
 * UTF-8 with no raw control character, and parse: as one JSON object
 * (Jansson) whose members are the writer's, or as logfmt key=value pairs
 * whose keys are the writer's. */
#include "../../fcgi/log.c"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {"time", "level", "event", "host", "session", "pid", "msg"};

static int known(const char *k, size_t n)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0) return 1;
    return 0;
}

/* NULL when s[0..n) is logfmt of known keys, else why not. */
static const char *logfmt_problem(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = i;
        while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            i++;
        if (i == k || i >= n || s[i] != '=') return "no key=";
        if (!known(s + k, i - k)) return "a key the writer does not write";
        i++;
        if (i < n && s[i] == '"') {
            for (i++;; i++) {
                if (i >= n) return "unterminated quoted value";
                if (s[i] == '"') break;
                if (s[i] == '\\') {
                    if (i + 1 >= n || !strchr("\"\\nrtu", s[i + 1])) return "bad escape";
                    i++;
                }
            }
            i++;
        } else {
            size_t v = i;
            while (i < n && s[i] != ' ' && s[i] != '"' && s[i] != '=' && s[i] != '\\')
                i++;
            if (i == v) return "empty bare value";
        }
        if (i < n && (s[i] != ' ' || i + 1 == n)) return "no single space between fields";
        if (i < n) i++;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    enum lc_log_format fmt = data[0] & 1 ? LC_LOG_JSON : LC_LOG_LOGFMT;
    size_t cap = 256 + 64 * (size_t)(data[0] >> 2);
    if (cap > LC_LOG_LINE_MAX) cap = LC_LOG_LINE_MAX;
    const char *end = memchr(data + 1, 0, size - 1);
    size_t vn = end ? (size_t)(end - (const char *)data - 1) : size - 1;
    char *value = strndup((const char *)data + 1, vn);
    char *msg = end ? strndup(end + 1, size - 1 - vn - 1) : strdup("");
    lc_log_field f[] = {LC_STR("host", value), LC_ID("session", 42)};
    char out[LC_LOG_LINE_MAX + 1];
    memset(out, 'Z', sizeof out);
    size_t n = lc_log_format_line(out, cap, fmt, data[0] & 2 ? "2026-11-30T04:05:06.789Z" : NULL,
                                  LC_LOG_WARN, "limit_hit", f, 2, msg, 7);
    const char *why = NULL;
    if (n == 0 || n > cap || out[cap] != 'Z')
        why = "longer than the buffer";
    else if (out[n - 1] != '\n')
        why = "no newline at the end";
    out[n <= cap ? n : cap] = '\0'; /* for strstr below */
    for (size_t i = 0; !why && i + 1 < n; i++) {
        unsigned char c = (unsigned char)out[i];
        size_t k;
        if (c < 0x20 || c == 0x7f)
            why = "a raw control character (or a newline) inside";
        else if (c >= 0x80 && (k = log_utf8_len((const unsigned char *)out + i, n - 1 - i)) == 0)
            why = "not UTF-8";
        else if (c >= 0x80)
            i += k - 1;
    }
    if (!why && fmt == LC_LOG_JSON) {
        json_error_t err;
        json_t *j = json_loadb(out, n - 1, 0, &err);
        if (!j || !json_is_object(j)) why = "not one JSON object";
        const char *k;
        json_t *v;
        if (!why) {
            json_object_foreach(j, k, v)
            {
                if (!known(k, strlen(k))) why = "a member the writer does not write";
            }
        }
        if (!why && (!json_is_string(json_object_get(j, "msg")) ||
                     !json_is_integer(json_object_get(j, "pid"))))
            why = "msg or pid missing (a line that fits them must have them)";
        json_decref(j);
    } else if (!why) {
        why = logfmt_problem(out, n - 1);
        if (!why && (!strstr(out, " msg=") || !strstr(out, " pid=7 ")))
            why = "msg or pid missing (a line that fits them must have them)";
    }
    if (why) {
        fprintf(stderr, "fuzz_log: %s: %.*s\n", why, (int)n, out);
        abort();
    }
    free(value);
    free(msg);
    return 0;
}
