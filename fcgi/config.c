/* config: LONGCALL_* environment variables -> lc_config, validated once. */

#include "config.h"

#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int env_int(const char *name, int def, int lo, int hi, int *out)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "%s=%s: expected a whole number from %d to %d", name, v, lo, hi);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* The default number of accept workers: one per CPU this process may run
 * on (its affinity, so a container's or taskset's limit counts), plus one
 * that covers a worker waiting for the disk or another process's write lock;
 * at least 2, at most 64. More workers than that only add thread switches:
 * each new request then wakes a sleeping worker instead of being found by
 * one coming back to accept() -- on 2 CPUs, 4 workers relayed about 6% fewer
 * messages a second than 3 (BENCHMARKS.md). */
static int default_threads(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) + 1 : 2;
    return n < 2 ? 2 : n > 64 ? 64 : n;
}

static char **split_origins(const char *v, int *any)
{
    size_t n = 0;
    char **list = xcalloc(1, sizeof *list);
    char *copy = xstrdup(v);
    char *save = NULL;
    for (char *tok = strtok_r(copy, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
        if (strcmp(tok, "*") == 0) *any = 1;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == '/')
            tok[--len] = '\0'; /* "https://a.b/" == "https://a.b" */
        list = xrealloc(list, (n + 2) * sizeof *list);
        list[n++] = xstrdup(tok);
        list[n] = NULL;
    }
    free(copy);
    return list;
}

int config_host_split(const char *s, size_t len, lc_host *h)
{
    size_t hl, i;
    const char *rest;
    memset(h, 0, sizeof *h);
    if (len == 0) return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close == s + 1) return -1;
        hl = (size_t)(close - s) + 1;
        for (i = 1; i + 1 < hl; i++)
            if (!strchr("0123456789abcdefABCDEF:.", s[i])) return -1;
        if (!memchr(s + 1, ':', hl - 2)) return -1;
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        hl = colon ? (size_t)(colon - s) : len;
        for (i = 0; i < hl; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.'))
                return -1;
        }
        if (hl && s[hl - 1] == '.') hl--; /* "example.org." is "example.org" */
        if (hl == 0 || s[hl - 1] == '.') return -1; /* "", ".", "a.." */
        rest = s + (colon ? (size_t)(colon - s) : len);
    }
    if (hl >= sizeof h->name) return -1;
    for (i = 0; i < hl; i++) {
        char c = s[i];
        h->name[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    h->name[hl] = '\0';
    size_t left = len - (size_t)(rest - s);
    if (left == 0) return 0;
    if (*rest != ':') return -1;
    if (left == 1) return 0; /* "name:": an empty port is no port (RFC 3986) */
    if (left > 6) return -1;
    long port = 0;
    for (i = 1; i < left; i++) {
        if (rest[i] < '0' || rest[i] > '9') return -1;
        port = port * 10 + (rest[i] - '0');
    }
    if (port < 1 || port > 65535) return -1;
    h->port = (int)port;
    return 0;
}

/* Parses LONGCALL_ALLOWED_HOSTS (v: entries separated by spaces, tabs or
 * commas) into cfg. No entry, or "*" among them: every Host is served
 * (allowed_hosts stays NULL). Returns 0, or -1 after logging the first
 * entry that is not a host[:port]. */
static int parse_allowed_hosts(const char *v, lc_config *cfg)
{
    int rc = 0, any = 0, n = 0;
    lc_host *list = NULL;
    char *copy = xstrdup(v);
    char *save = NULL;
    for (char *tok = strtok_r(copy, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
        if (strcmp(tok, "*") == 0) {
            any = 1;
            continue;
        }
        list = xrealloc(list, (size_t)(n + 1) * sizeof *list);
        if (config_host_split(tok, strlen(tok), &list[n]) != 0) {
            lc_log_event(
                LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                "LONGCALL_ALLOWED_HOSTS: \"%s\" is not a host[:port] (a name, an IPv4 "
                "address or an IPv6 address in brackets, e.g. localhost:8080 or [::1]:8080)",
                tok);
            rc = -1;
            goto out;
        }
        n++;
    }
    if (!any && n > 0) {
        cfg->allowed_hosts = list;
        cfg->n_allowed_hosts = n;
        list = NULL;
    }
out:
    free(list);
    free(copy);
    return rc;
}

/* The longest TURN secret kept (coturn's static-auth-secret has no stated
 * limit; a longer file is more likely the wrong one). */
#define TURN_SECRET_MAX 4096

/* Reads the secret from path into cfg (one trailing "\n" or "\r\n"
 * dropped). Returns 0, or -1 after logging why -- the path and the reason,
 * never the content. */
static int read_secret_file(const char *path, lc_config *cfg)
{
    int rc = -1, fd = -1;
    char *data = xmalloc(TURN_SECRET_MAX + 2);
    size_t len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_TURN_SECRET_FILE=%s: cannot open it (%s)", path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, data + len, TURN_SECRET_MAX + 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                         "LONGCALL_TURN_SECRET_FILE=%s: cannot read it (%s)", path,
                         strerror(errno));
            goto out;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len > TURN_SECRET_MAX) {
            lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                         "LONGCALL_TURN_SECRET_FILE=%s: over %d bytes; is it the secret?", path,
                         TURN_SECRET_MAX);
            goto out;
        }
    }
    if (len && data[len - 1] == '\n') len--;
    if (len && data[len - 1] == '\r') len--;
    if (len == 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_TURN_SECRET_FILE=%s: the file is empty", path);
        goto out;
    }
    if (memchr(data, '\n', len) || memchr(data, '\0', len)) {
        lc_log_event(
            LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
            "LONGCALL_TURN_SECRET_FILE=%s: the secret is one line (no newline or NUL inside)",
            path);
        goto out;
    }
    cfg->turn_secret = xmalloc(len + 1);
    memcpy(cfg->turn_secret, data, len);
    cfg->turn_secret[len] = '\0';
    cfg->turn_secret_len = len;
    rc = 0;
out:
    if (fd >= 0) close(fd);
    OPENSSL_cleanse(data, TURN_SECRET_MAX + 2);
    free(data);
    return rc;
}

int config_turn_uri_check(const char *uri, const char **why)
{
    const char *p;
    if (strncmp(uri, "turn:", 5) == 0)
        p = uri + 5;
    else if (strncmp(uri, "turns:", 6) == 0)
        p = uri + 6;
    else {
        *why = "a TURN URI starts with turn: or turns:";
        return -1;
    }
    const char *q = strchr(p, '?');
    size_t hl = q ? (size_t)(q - p) : strlen(p);
    lc_host h;
    if (config_host_split(p, hl, &h) != 0) {
        *why = "expected a host[:port] after the scheme (a name, an IPv4 address or an IPv6 "
               "address in brackets; a port from 1 to 65535)";
        return -1;
    }
    if (hl && p[hl - 1] == ':') {
        *why = "an empty port";
        return -1;
    }
    if (q && strcmp(q, "?transport=udp") != 0 && strcmp(q, "?transport=tcp") != 0) {
        *why = "the only query is ?transport=udp or ?transport=tcp";
        return -1;
    }
    return 0;
}

/* Parses the TURN settings into cfg: the secret (from
 * LONGCALL_TURN_SECRET_FILE or LONGCALL_TURN_SECRET, not both), the URIs
 * (each checked; required with a secret and vice versa), the TTL, the
 * iceServers rate and LONGCALL_ICE_TRANSPORT_POLICY. Returns 0, or -1
 * after logging which variable is wrong. */
static int parse_turn(lc_config *cfg)
{
    const char *file = getenv("LONGCALL_TURN_SECRET_FILE");
    const char *inline_secret = getenv("LONGCALL_TURN_SECRET");
    const char *uris = getenv("LONGCALL_TURN_URIS");
    const char *policy = getenv("LONGCALL_ICE_TRANSPORT_POLICY");
    if (env_int("LONGCALL_TURN_TTL", 21600, 60, 604800, &cfg->turn_ttl) ||
        env_int("LONGCALL_ICE_RATE", 10, 1, 6000, &cfg->ice_rate))
        return -1;
    if (!policy || !*policy || strcmp(policy, "all") == 0) {
        cfg->ice_relay = 0;
    } else if (strcmp(policy, "relay") == 0) {
        cfg->ice_relay = 1;
    } else {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_ICE_TRANSPORT_POLICY=%s: expected all or relay", policy);
        return -1;
    }
    if (file && *file && inline_secret && *inline_secret) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_TURN_SECRET_FILE and LONGCALL_TURN_SECRET are both set; "
                     "set one (the file is the safer)");
        return -1;
    }
    if (file && *file) {
        if (read_secret_file(file, cfg) != 0) return -1;
    } else if (inline_secret && *inline_secret) {
        cfg->turn_secret_len = strlen(inline_secret);
        cfg->turn_secret = xstrdup(inline_secret);
    }
    json_t *list = json_array();
    char *copy = xstrdup(uris ? uris : "");
    char *save = NULL;
    int rc = -1;
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        const char *why;
        if (config_turn_uri_check(tok, &why) != 0) {
            lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                         "LONGCALL_TURN_URIS: \"%s\" is not a TURN URI: %s (e.g. "
                         "turn:turn.example.org:3478?transport=udp "
                         "turns:turn.example.org:443?transport=tcp)",
                         tok, why);
            goto out;
        }
        json_array_append_new(list, json_string(tok));
    }
    if (cfg->turn_secret && json_array_size(list) == 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_TURN_URIS: required with a TURN secret "
                     "(LONGCALL_TURN_SECRET_FILE or LONGCALL_TURN_SECRET)");
        goto out;
    }
    if (!cfg->turn_secret && json_array_size(list) > 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_TURN_URIS is set without a secret: set "
                     "LONGCALL_TURN_SECRET_FILE (the secret shared with the TURN server)");
        goto out;
    }
    if (json_array_size(list) > 0) cfg->turn_uris = json_dumps(list, JSON_COMPACT);
    rc = 0;
out:
    free(copy);
    json_decref(list);
    return rc;
}

/* LONGCALL_METRICS_TOKEN_FILE: one line, 16 to 256 bytes (a trailing
 * newline dropped), into *out (*len bytes). 0, or -1 logged (never the
 * token). */
static int read_token_file(const char *path, char **out, size_t *len)
{
    char data[300];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_METRICS_TOKEN_FILE=%s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, data, sizeof data);
    close(fd);
    size_t k = n > 0 ? (size_t)n : 0;
    if (k && data[k - 1] == '\n') k--;
    if (k && data[k - 1] == '\r') k--;
    int bad = n < 0 || k < 16 || k > 256 || memchr(data, '\n', k) || memchr(data, '\0', k);
    if (bad) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_METRICS_TOKEN_FILE=%s: expected one line of 16 to 256 "
                     "bytes (e.g. openssl rand -hex 32 > FILE)",
                     path);
        OPENSSL_cleanse(data, sizeof data);
        return -1;
    }
    *out = xmalloc(k + 1);
    memcpy(*out, data, k);
    (*out)[k] = '\0';
    *len = k;
    OPENSSL_cleanse(data, sizeof data);
    return 0;
}

int config_load(lc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = -1;
    /* First, so that every later line is in the chosen format. */
    const char *lf = getenv("LONGCALL_LOG_FORMAT");
    enum lc_log_format format = LC_LOG_LOGFMT;
    if (lf && *lf && lc_log_parse_format(lf, &format) != 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid",
                     LC_FIELDS(LC_STR("setting", "LONGCALL_LOG_FORMAT")),
                     "LONGCALL_LOG_FORMAT=%s: expected logfmt or json; fix it in the "
                     "environment the web server gives the backend",
                     lf);
        goto out;
    }
    cfg->log_format = (int)format;
    lc_log_set_format(format);
    const char *db = getenv("LONGCALL_DB");
    cfg->db_path = xstrdup(db && *db ? db : "var/longcall.db");
    /* The wake file is this machine's (shared memory between its backend
     * processes): beside a SQLite file by default; a PostgreSQL database
     * has no "beside", so it must be named. */
    const char *wake_file = getenv("LONGCALL_WAKE_FILE");
    if (wake_file && *wake_file) {
        cfg->wake_path = xstrdup(wake_file);
    } else if (store_db_is_pg(cfg->db_path)) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_WAKE_FILE: required when LONGCALL_DB is a PostgreSQL "
                     "database: a file on this machine's disk that the backend may create, e.g. "
                     "/var/lib/longcall/longcall.wake");
        goto out;
    } else {
        size_t n = strlen(cfg->db_path) + sizeof ".wake";
        cfg->wake_path = xmalloc(n);
        snprintf(cfg->wake_path, n, "%s.wake", cfg->db_path);
    }

    int body = 0;
    if (env_int("LONGCALL_POLL_TIMEOUT", 25, 0, 3600, &cfg->poll_timeout) ||
        env_int("LONGCALL_POLL_MAX", 30, 1, 3600, &cfg->poll_max) ||
        env_int("LONGCALL_SESSION_EXPIRY", 60, 2, 86400, &cfg->session_expiry) ||
        env_int("LONGCALL_RING_TIMEOUT", 30, 1, 3600, &cfg->ring_timeout) ||
        env_int("LONGCALL_HISTORY_DAYS", 7, 0, 36500, &cfg->history_days) ||
        env_int("LONGCALL_MAX_BODY", 65536, 256, 16 << 20, &body) ||
        env_int("LONGCALL_MAX_BATCH", 64, 1, 10000, &cfg->max_batch) ||
        env_int("LONGCALL_MAILBOX_QUOTA", 1000, 1, 1000000, &cfg->mailbox_quota) ||
        env_int("LONGCALL_MAX_HELD", 10000, 1, 1000000, &cfg->max_held) ||
        env_int("LONGCALL_LIST_MAX", 100, 1, 1000, &cfg->list_max) ||
        env_int("LONGCALL_LIST_RATE", 30, 1, 6000, &cfg->list_rate) ||
        env_int("LONGCALL_THREADS", default_threads(), 2, 256, &cfg->threads) ||
        env_int("LONGCALL_BUSY_TIMEOUT", 5000, 1, 600000, &cfg->busy_timeout) ||
        env_int("LONGCALL_WRITE_TIMEOUT", 10, 1, 3600, &cfg->write_timeout) ||
        env_int("LONGCALL_ADDR_SESSIONS_PER_MIN", 60, 1, 1000000, &cfg->addr_sessions_per_min) ||
        env_int("LONGCALL_ADDR_SESSIONS", 200, 1, 1000000, &cfg->addr_sessions) ||
        env_int("LONGCALL_NAME_GRACE", 300, 0, 86400, &cfg->name_grace) ||
        env_int("LONGCALL_CALL_RATE", 20, 1, 1000000, &cfg->call_rate) ||
        env_int("LONGCALL_CALL_PAIR_RATE", 6, 1, 1000000, &cfg->call_pair_rate) ||
        env_int("LONGCALL_CALL_COOLDOWN", 60, 0, 86400, &cfg->call_cooldown) ||
        env_int("LONGCALL_MAX_BLOCKS", 100, 1, 100000, &cfg->max_blocks))
        goto out;
    /* Held polls per address: by default as many as live sessions (each
     * holds one poll; a superseded one is answered at once), and never
     * more than one process holds at all. */
    int held_def = cfg->addr_sessions < cfg->max_held ? cfg->addr_sessions : cfg->max_held;
    if (env_int("LONGCALL_ADDR_HELD", held_def, 1, 1000000, &cfg->addr_held) ||
        env_int("LONGCALL_ADDR_WRITERS", 16, 1, 1000000, &cfg->addr_writers))
        goto out;
    /* One sender session's share of a mailbox: by default a quarter of the
     * quota, so that four flooding sessions are needed to fill it. */
    int share_def = cfg->mailbox_quota / 4 > 0 ? cfg->mailbox_quota / 4 : 1;
    if (env_int("LONGCALL_MAILBOX_SHARE", share_def, 1, 1000000, &cfg->mailbox_share))
        goto out;
    if (cfg->mailbox_share > cfg->mailbox_quota) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_MAILBOX_SHARE=%d must be at most LONGCALL_MAILBOX_QUOTA=%d",
                     cfg->mailbox_share, cfg->mailbox_quota);
        goto out;
    }
    cfg->max_body = (size_t)body;
    if (cfg->poll_timeout > cfg->poll_max) cfg->poll_timeout = cfg->poll_max;
    if (cfg->session_expiry <= cfg->poll_max + 1) {
        /* A session with a poll held for poll_max seconds must not look idle
         * (last_seen is recorded to within a second). */
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_SESSION_EXPIRY=%d must be more than LONGCALL_POLL_MAX=%d plus 1",
                     cfg->session_expiry, cfg->poll_max);
        goto out;
    }

    const char *ice = getenv("LONGCALL_ICE_SERVERS");
    json_error_t jerr;
    json_t *j = json_loads(ice && *ice ? ice : "[]", 0, &jerr);
    if (!j || !json_is_array(j)) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_ICE_SERVERS: expected a JSON array (%s)",
                     j ? "not an array" : jerr.text);
        json_decref(j);
        goto out;
    }
    cfg->ice_servers = json_dumps(j, JSON_COMPACT);
    json_decref(j);

    const char *cors = getenv("LONGCALL_CORS_ORIGINS");
    cfg->cors_origins = split_origins(cors ? cors : "", &cfg->cors_any);

    const char *hosts = getenv("LONGCALL_ALLOWED_HOSTS");
    if (parse_allowed_hosts(hosts ? hosts : "", cfg) != 0) goto out;

    const char *lvl = getenv("LONGCALL_LOG_LEVEL");
    enum lc_log_level level = LC_LOG_INFO;
    if (lvl && *lvl && lc_log_parse_level(lvl, &level) != 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_LOG_LEVEL=%s: expected error, warn, info or debug", lvl);
        goto out;
    }
    cfg->log_level = (int)level;

    char why[160];
    const char *tp = getenv("LONGCALL_TRUSTED_PROXIES");
    if (addr_parse_nets(tp, &cfg->trusted, &cfg->ntrusted, why, sizeof why) != 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS, "LONGCALL_TRUSTED_PROXIES: %s",
                     why);
        goto out;
    }
    const char *fh = getenv("LONGCALL_FORWARDED_HEADER");
    if (!fh || !*fh || strcasecmp(fh, "x-forwarded-for") == 0) {
        cfg->forwarded = ADDR_HDR_XFF;
    } else if (strcasecmp(fh, "forwarded") == 0) {
        cfg->forwarded = ADDR_HDR_FORWARDED;
    } else {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_FORWARDED_HEADER=%s: expected X-Forwarded-For or Forwarded", fh);
        goto out;
    }
    if (parse_turn(cfg) != 0) goto out;
    const char *ma = getenv("LONGCALL_METRICS_ALLOW");
    if (ma && *ma &&
        addr_parse_nets(ma, &cfg->metrics_allow, &cfg->nmetrics_allow, why, sizeof why) != 0) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS, "LONGCALL_METRICS_ALLOW: %s",
                     why);
        goto out;
    }
    const char *mt = getenv("LONGCALL_METRICS_TOKEN_FILE");
    if (mt && *mt && read_token_file(mt, &cfg->metrics_token, &cfg->metrics_token_len) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) config_free(cfg); /* what was read before the wrong variable */
    return rc;
}

void config_free(lc_config *cfg)
{
    free(cfg->db_path);
    free(cfg->wake_path);
    free(cfg->ice_servers);
    if (cfg->cors_origins)
        for (char **o = cfg->cors_origins; *o; o++)
            free(*o);
    free(cfg->cors_origins);
    free(cfg->allowed_hosts);
    free(cfg->trusted);
    if (cfg->turn_secret) OPENSSL_cleanse(cfg->turn_secret, cfg->turn_secret_len);
    free(cfg->turn_secret);
    free(cfg->turn_uris);
    free(cfg->metrics_allow);
    if (cfg->metrics_token) OPENSSL_cleanse(cfg->metrics_token, cfg->metrics_token_len);
    free(cfg->metrics_token);
    memset(cfg, 0, sizeof *cfg);
}
