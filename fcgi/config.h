/* config: reads the LONGCALL_* environment variables once at start-up into
 * one immutable struct. It owns the parsed values (ICE servers JSON, CORS
 * origins, allowed hosts) and the host[:port] syntax they share with http.c;
 * it does not open anything. README "Configuration" lists them. */
#ifndef LC_CONFIG_H
#define LC_CONFIG_H

#include "addr.h"

#include <stddef.h>
#include <stdint.h>

/* Longest host name kept (a DNS name is at most 253 bytes; brackets of an
 * IPv6 address and the NUL fit too). */
#define CONFIG_HOST_MAX 256

/* One entry of LONGCALL_ALLOWED_HOSTS: a host name in lower case without a
 * trailing dot (an IPv6 address with its brackets), and a port (0: any). */
typedef struct lc_host {
    char name[CONFIG_HOST_MAX];
    int port;
} lc_host;

typedef struct lc_config {
    char *db_path;       /* LONGCALL_DB: a SQLite file or a PostgreSQL database */
    char *wake_path;     /* LONGCALL_WAKE_FILE, default <LONGCALL_DB>.wake */
    int poll_timeout;    /* LONGCALL_POLL_TIMEOUT, seconds, default hold */
    int poll_max;        /* LONGCALL_POLL_MAX, seconds, cap on timeout= */
    int session_expiry;  /* LONGCALL_SESSION_EXPIRY, seconds */
    int ring_timeout;    /* LONGCALL_RING_TIMEOUT, seconds */
    int history_days;    /* LONGCALL_HISTORY_DAYS */
    size_t max_body;     /* LONGCALL_MAX_BODY, bytes */
    int max_batch;       /* LONGCALL_MAX_BATCH, messages per send */
    int mailbox_quota;   /* LONGCALL_MAILBOX_QUOTA, unacknowledged messages */
    int mailbox_share;   /* LONGCALL_MAILBOX_SHARE, of them from one sender session */
    int max_held;        /* LONGCALL_MAX_HELD, held polls per process */
    int list_max;        /* LONGCALL_LIST_MAX, names per listResponse */
    int list_rate;       /* LONGCALL_LIST_RATE, lists per session per minute */
    int threads;         /* LONGCALL_THREADS, accept workers per process */
    int busy_timeout;    /* LONGCALL_BUSY_TIMEOUT, ms to wait for the write lock */
    int write_timeout;   /* LONGCALL_WRITE_TIMEOUT, s an answer may wait for its socket */
    char *ice_servers;   /* LONGCALL_ICE_SERVERS, compact JSON array text */
    char **cors_origins; /* LONGCALL_CORS_ORIGINS, NULL-terminated list */
    int cors_any;        /* "*" was given */
    lc_host *allowed_hosts; /* LONGCALL_ALLOWED_HOSTS; NULL: every Host is served */
    int n_allowed_hosts;
    int log_level;       /* LONGCALL_LOG_LEVEL (enum lc_log_level) */
    int log_format;      /* LONGCALL_LOG_FORMAT (enum lc_log_format) */
    addr_net *trusted;   /* LONGCALL_TRUSTED_PROXIES: networks (NULL: none) */
    int ntrusted;
    addr_header forwarded; /* LONGCALL_FORWARDED_HEADER: which header they write */
    int addr_sessions_per_min; /* LONGCALL_ADDR_SESSIONS_PER_MIN, new sessions per address */
    int addr_sessions;   /* LONGCALL_ADDR_SESSIONS, live sessions per address */
    int addr_held;       /* LONGCALL_ADDR_HELD, held polls per address (all processes) */
    int addr_writers;    /* LONGCALL_ADDR_WRITERS, answers per address waiting for a slow
                            reader, per process */
    int name_grace;      /* LONGCALL_NAME_GRACE, s a name freed by expiry stays reserved */
    int call_rate;       /* LONGCALL_CALL_RATE, calls per caller session per minute */
    int call_pair_rate;  /* LONGCALL_CALL_PAIR_RATE, calls a minute from a session to one callee */
    int call_cooldown;   /* LONGCALL_CALL_COOLDOWN, s after an unanswered ring (0: none) */
    int max_blocks;      /* LONGCALL_MAX_BLOCKS, blocked callers kept per session */
    /* TURN credentials (issue 13; turn.c mints them). turn_secret: the
     * shared secret (LONGCALL_TURN_SECRET_FILE's content or
     * LONGCALL_TURN_SECRET), NULL when none is set; kept in memory only,
     * never logged, wiped by config_free. */
    char *turn_secret;
    size_t turn_secret_len;
    char *turn_uris;     /* LONGCALL_TURN_URIS as a compact JSON array of strings (NULL: none) */
    int turn_ttl;        /* LONGCALL_TURN_TTL, seconds a credential lives */
    int ice_rate;        /* LONGCALL_ICE_RATE, iceServers messages per session per minute */
    int ice_relay;       /* LONGCALL_ICE_TRANSPORT_POLICY: 1 relay, 0 all */
    /* GET /rtc/metrics (issue 16): off unless a scraper's address is in
     * LONGCALL_METRICS_ALLOW or it presents LONGCALL_METRICS_TOKEN_FILE's
     * token (Authorization: Bearer); the token is never logged, wiped by
     * config_free. */
    addr_net *metrics_allow;
    int nmetrics_allow;
    char *metrics_token;
    size_t metrics_token_len;
} lc_config;

/* Fills *cfg from the environment. Returns 0, or -1 after logging which
 * variable is wrong and why (the caller exits: a misconfigured server must
 * not start; *cfg is then freed and zeroed, config_free on it is harmless).
 * The strings in *cfg are owned by it: free with config_free. Side effect:
 * the log's format is LONGCALL_LOG_FORMAT's from then on (lc_log_set_format),
 * so that the lines about the other variables are in it. */
int config_load(lc_config *cfg);

/* Splits the host[:port] of s (len bytes: a Host header, or an entry of
 * LONGCALL_ALLOWED_HOSTS) into *h: the name in lower case with one trailing
 * dot dropped ("Example.ORG." -> "example.org"), an IPv6 address kept in its
 * brackets ("[::1]"), and the port (0 when none is given; "name:" has none).
 * Names are letters, digits, '-', '_' and '.'; an IPv6 address is hex
 * digits, ':' and '.' inside brackets. Returns 0, or -1 for anything else
 * (empty, a name ending in two dots, an IPv6 address without brackets, a
 * port that is not 1-65535, other characters, a name over
 * CONFIG_HOST_MAX). */
int config_host_split(const char *s, size_t len, lc_host *h);

/* Checks one TURN URI of LONGCALL_TURN_URIS (NUL-terminated): "turn:" or
 * "turns:", a host (a name, an IPv4 address or an IPv6 address in
 * brackets), an optional ":port" (1-65535) and an optional
 * "?transport=udp" or "?transport=tcp" (RFC 7065). Returns 0, or -1 with
 * a static sentence saying what is wrong in *why. */
int config_turn_uri_check(const char *uri, const char **why);

/* Frees what config_load allocated (the TURN secret is zeroed first). */
void config_free(lc_config *cfg);

#endif
