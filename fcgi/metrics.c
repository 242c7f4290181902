/* metrics: shared counters and their Prometheus exposition; see metrics.h.
 * Every counter is a 64-bit atomic in a file every process of the machine
 * maps (MAP_SHARED), so increments from any process (or thread) add up
 * without a lock; a scrape reads them with relaxed loads (a histogram read
 * while another process adds may be one observation behind in one bucket:
 * Prometheus tolerates that, as it does for any client library). */

#include "metrics.h"

#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LONGCALL_VERSION
#define LONGCALL_VERSION "dev"
#endif

#define METRICS_MAGIC 0x4c434d58u /* "LCMX" */
#define METRICS_VERSION 2u

/* ---- label sets -------------------------------------------------------- */

/* http_endpoint's, then a send with after= */
enum { EPS = METRICS_EP_EXCHANGE + 1 };
static const char *const ep_names[EPS] = {"other", "session", "send",    "poll",
                                          "close", "status",  "metrics", "exchange"};

static const int codes[] = {200, 400, 403, 404, 405, 409, 413, 415, 421, 429, 500, 503};
enum { CODES = sizeof codes / sizeof codes[0] + 1 }; /* + "other" */

static const char *const type_names[METRICS_TYPES] = {
    "registerResponse", "incomingCall",      "callResponse", "startCommunication",
    "iceCandidate",     "stopCommunication", "listResponse", "pong",
    "iceServers",       "error",             "closed",       "other"};

static const char *const outcome_stored[METRICS_OUTCOMES] = {
    "completed", "rejected", "cancelled", "no answer", "caller left", "callee left", NULL};
static const char *const outcome_names[METRICS_OUTCOMES] = {
    "completed", "rejected", "cancelled", "no_answer", "caller_left", "callee_left", "other"};

/* The limits that refuse (the settings' names, as addr_log_event's kinds). */
static const char *const limit_names[] = {
    "LONGCALL_ADDR_HELD",       "LONGCALL_ADDR_SESSIONS",  "LONGCALL_ADDR_SESSIONS_PER_MIN",
    "LONGCALL_ADDR_WRITERS",    "LONGCALL_ALLOWED_HOSTS",  "LONGCALL_CALL_COOLDOWN",
    "LONGCALL_CALL_PAIR_RATE",  "LONGCALL_CALL_RATE",      "LONGCALL_ICE_RATE",
    "LONGCALL_LIST_RATE",       "LONGCALL_MAILBOX_QUOTA",  "LONGCALL_MAILBOX_SHARE",
    "LONGCALL_MAX_BATCH",       "LONGCALL_MAX_BLOCKS",     "LONGCALL_MAX_BODY",
    "LONGCALL_MAX_HELD",        "LONGCALL_NAME_GRACE",     "LONGCALL_WRITE_TIMEOUT",
    "other"};
enum { LIMITS = sizeof limit_names / sizeof limit_names[0] };

/* Histogram bounds, seconds (each metric's own). */
static const double dur_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                0.25,   0.5,   1,      2.5,   5,    10,    30,    60};
enum { DUR_B = sizeof dur_le / sizeof dur_le[0] };
static const double relay_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                  0.01,   0.025,   0.05,   0.1,   0.25,   1};
enum { RELAY_B = sizeof relay_le / sizeof relay_le[0] };
static const double ckpt_le[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
enum { CKPT_B = sizeof ckpt_le / sizeof ckpt_le[0] };

/* A histogram of n bounds: bucket[i] counts observations <= le[i] (not
 * cumulative here; the exposition adds them up), bucket[n] the rest. */
#define HIST(n)                      \
    struct {                         \
        _Atomic uint64_t bucket[(n) + 1]; \
        _Atomic uint64_t sum_us;     \
    }

struct metrics_shm {
    uint32_t magic, version;
    int64_t started; /* unix seconds the counters began */
    _Atomic uint64_t requests[EPS][CODES];
    HIST(DUR_B) duration[EPS];
    _Atomic uint64_t stored[METRICS_TYPES], delivered[METRICS_TYPES];
    HIST(RELAY_B) relay;
    _Atomic uint64_t ended[METRICS_OUTCOMES];
    _Atomic uint64_t limits[LIMITS];
    _Atomic uint64_t wakeups[2];
    _Atomic uint64_t turn;
    HIST(CKPT_B) checkpoint;
    /* When each wake slot was last posted (monotonic microseconds). */
    _Atomic int64_t posted[WAKE_SLOTS];
};

static struct metrics_shm *mx; /* NULL: metrics_open did not work */

static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int metrics_open(const char *wake_path)
{
    if (mx) return 0; /* mapped already (a state opened again) */
    const size_t size = sizeof(struct metrics_shm);
    char path[4200];
    snprintf(path, sizeof path, "%s.metrics", wake_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660), rc = -1;
    struct stat sb;
    void *m = MAP_FAILED;
    if (fd < 0) goto out;
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) goto out;
    if (fstat(fd, &sb) != 0) goto out;
    if ((size_t)sb.st_size < size && ftruncate(fd, (off_t)size) != 0) goto out;
    if (posix_fallocate(fd, 0, (off_t)size) != 0) goto out;
    m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) goto out;
    struct metrics_shm *s = m;
    if (s->magic != METRICS_MAGIC || s->version != METRICS_VERSION) {
        /* New, or another layout: the counters start again (a counter
         * reset, which Prometheus' rate() handles). */
        memset(s, 0, size);
        s->started = (int64_t)time(NULL);
        s->version = METRICS_VERSION;
        atomic_thread_fence(memory_order_release);
        s->magic = METRICS_MAGIC;
    }
    mx = s;
    m = MAP_FAILED;
    rc = 0;
out:
    if (rc != 0)
        lc_log_event(LC_LOG_WARN, "metrics_off", LC_NOFIELDS,
                     "cannot map the metrics file %s (%s): /rtc/metrics is off in this process; "
                     "give the backend write access and space in that folder, then restart it",
                     path, strerror(errno));
    if (m != MAP_FAILED) munmap(m, size);
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
    return rc;
}

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void observe(_Atomic uint64_t *bucket, _Atomic uint64_t *sum_us, const double *le, int n,
                    int64_t usec)
{
    if (usec < 0) usec = 0;
    int i = 0;
    while (i < n && (double)usec > le[i] * 1e6)
        i++;
    add(&bucket[i], 1);
    add(sum_us, (uint64_t)usec);
}

int metrics_endpoint(const http_request *req)
{
    /* A parameter named after, anywhere in the query (its value is api's
     * to check). */
    for (const char *q = req->query; req->endpoint == EP_SEND && q && *q;) {
        if (strncmp(q, "after=", 6) == 0) return METRICS_EP_EXCHANGE;
        q = strchr(q, '&');
        if (q) q++;
    }
    int ep = (int)req->endpoint;
    return ep >= 0 && ep < METRICS_EP_EXCHANGE ? ep : 0;
}

void metrics_request(int ep, int status, int64_t usec)
{
    if (!mx) return;
    int e = (int)ep >= 0 && (int)ep < EPS ? (int)ep : 0, c = CODES - 1;
    for (int i = 0; i < CODES - 1; i++)
        if (codes[i] == status) c = i;
    add(&mx->requests[e][c], 1);
    observe(mx->duration[e].bucket, &mx->duration[e].sum_us, dur_le, DUR_B, usec);
}

int metrics_type(const char *type)
{
    for (int i = 0; i < METRICS_TYPES - 1; i++)
        if (type && strcmp(type, type_names[i]) == 0) return i;
    return METRICS_TYPES - 1;
}

int metrics_outcome(const char *outcome)
{
    for (int i = 0; i < METRICS_OUTCOMES - 1; i++)
        if (outcome && strcmp(outcome, outcome_stored[i]) == 0) return i;
    return METRICS_OUTCOMES - 1;
}

void metrics_committed(metrics_tx *t)
{
    for (int i = 0; mx && i < METRICS_TYPES; i++)
        if (t->stored[i]) add(&mx->stored[i], t->stored[i]);
    for (int i = 0; mx && i < METRICS_OUTCOMES; i++)
        if (t->ended[i]) add(&mx->ended[i], t->ended[i]);
    if (mx && t->turn) add(&mx->turn, t->turn);
    memset(t, 0, sizeof *t);
}

/* Counts the messages of a poll answer body, by type into mx->delivered
 * when add_them. A poll answer is {"seq":M,"messages":[{"seq":N,"id":
 * "TYPE",...},...]} (wire.c: seq, then the stored body, whose first key is
 * id): the objects opened at depth 2 (outside strings) are the messages;
 * what a client put inside one (a candidate object with an "id" of its
 * own) is deeper and not counted. */
static int scan_messages(const char *body, size_t len, int add_them)
{
    static const char seq[] = "{\"seq\":", id[] = ",\"id\":\"";
    int n = 0, depth = 0, in_str = 0;
    for (size_t i = 0; body && i < len; i++) {
        char ch = body[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (ch == '{' && depth == 2 && len - i > sizeof seq - 1 &&
                memcmp(body + i, seq, sizeof seq - 1) == 0) {
                size_t k = i + sizeof seq - 1;
                while (k < len && body[k] >= '0' && body[k] <= '9')
                    k++;
                if (len - k > sizeof id - 1 && memcmp(body + k, id, sizeof id - 1) == 0) {
                    k += sizeof id - 1;
                    const char *q = memchr(body + k, '"', len - k);
                    char type[32];
                    size_t tn = q ? (size_t)(q - (body + k)) : 0;
                    if (tn > sizeof type - 1) tn = sizeof type - 1;
                    memcpy(type, body + k, tn);
                    type[tn] = '\0';
                    if (mx && add_them) add(&mx->delivered[metrics_type(type)], 1);
                    n++;
                }
            }
            depth++;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return n;
}

int metrics_delivered(const char *body, size_t len)
{
    return scan_messages(body, len, 1);
}

int metrics_count_messages(const char *body, size_t len)
{
    return scan_messages(body, len, 0);
}

void metrics_posted(uint32_t slot)
{
    if (mx && slot < WAKE_SLOTS)
        atomic_store_explicit(&mx->posted[slot], mono_us(), memory_order_relaxed);
}

void metrics_relayed(uint32_t slot)
{
    if (!mx || slot >= WAKE_SLOTS) return;
    int64_t at = atomic_load_explicit(&mx->posted[slot], memory_order_relaxed);
    if (at > 0) observe(mx->relay.bucket, &mx->relay.sum_us, relay_le, RELAY_B, mono_us() - at);
}

void metrics_limit(const char *setting, int n)
{
    if (!mx || n <= 0) return;
    int i = 0;
    while (i < LIMITS - 1 && strcmp(setting ? setting : "", limit_names[i]) != 0)
        i++;
    add(&mx->limits[i], (uint64_t)n);
}

void metrics_wakeup(int other, int n)
{
    if (mx && n > 0) add(&mx->wakeups[other ? 1 : 0], (uint64_t)n);
}

void metrics_checkpoint(int64_t usec)
{
    if (mx) observe(mx->checkpoint.bucket, &mx->checkpoint.sum_us, ckpt_le, CKPT_B, usec);
}

/* ---- exposition ------------------------------------------------------------ */

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void head(buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP longcall_%s %s\n# TYPE longcall_%s %s\n", name, help, name, type);
}

/* One histogram's series; labels: "" or `name="value",`. */
static void hist(buf *out, const char *name, const char *labels, _Atomic uint64_t *bucket,
                 _Atomic uint64_t *sum_us, const double *le, int n)
{
    uint64_t cum = 0;
    for (int i = 0; i <= n; i++) {
        cum += get(&bucket[i]);
        if (i < n)
            buf_printf(out, "longcall_%s_bucket{%sle=\"%g\"} %llu\n", name, labels, le[i],
                       (unsigned long long)cum);
        else
            buf_printf(out, "longcall_%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                       (unsigned long long)cum);
    }
    char bare[80] = "";
    if (*labels) snprintf(bare, sizeof bare, "{%.*s}", (int)strlen(labels) - 1, labels);
    buf_printf(out, "longcall_%s_sum%s %.6f\nlongcall_%s_count%s %llu\n", name, bare,
               (double)get(sum_us) / 1e6, name, bare, (unsigned long long)cum);
}

/* A counter with one label: n series, label="names[i]" counting c[i]. */
static void counters(buf *out, const char *name, const char *help, const char *label,
                     const char *const *names, _Atomic uint64_t *c, int n)
{
    head(out, name, "counter", help);
    for (int i = 0; i < n; i++)
        buf_printf(out, "longcall_%s{%s=\"%s\"} %llu\n", name, label, names[i],
                   (unsigned long long)get(&c[i]));
}

static void gauge(buf *out, const char *name, const char *help, int64_t v)
{
    if (v < 0) return;
    head(out, name, "gauge", help);
    buf_printf(out, "longcall_%s %lld\n", name, (long long)v);
}

int metrics_render(const metrics_gauges *g, buf *out)
{
    if (!mx) return -1;
    head(out, "build_info", "gauge", "Always 1; the version of the backend answering, its store.");
    buf_printf(out, "longcall_build_info{version=\"%s\",store=\"%s\"} 1\n", LONGCALL_VERSION,
               g->store ? g->store : "sqlite");
    head(out, "start_time_seconds", "gauge",
         "When these counters began (unix time): the first process's start.");
    buf_printf(out, "longcall_start_time_seconds %lld\n", (long long)mx->started);

    head(out, "requests_total", "counter", "Requests answered, by endpoint and status.");
    for (int e = 0; e < EPS; e++)
        for (int c = 0; c < CODES; c++) {
            uint64_t v = get(&mx->requests[e][c]);
            if (!v) continue;
            if (c < CODES - 1)
                buf_printf(out, "longcall_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
                           ep_names[e], codes[c], (unsigned long long)v);
            else
                buf_printf(out, "longcall_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n",
                           ep_names[e], (unsigned long long)v);
        }
    head(out, "request_duration_seconds", "histogram",
         "Time from a request's arrival to its answer (a held poll's hold included), by "
         "endpoint.");
    for (int e = 0; e < EPS; e++) {
        char labels[40];
        snprintf(labels, sizeof labels, "endpoint=\"%s\",", ep_names[e]);
        hist(out, "request_duration_seconds", labels, mx->duration[e].bucket,
             &mx->duration[e].sum_us, dur_le, DUR_B);
    }
    counters(out, "messages_stored_total",
             "Messages committed to a mailbox, by type (the id the recipient gets).", "type",
             type_names, mx->stored, METRICS_TYPES);
    counters(out, "messages_delivered_total",
             "Messages written in poll and exchange answers, by type (one sent again after a "
             "lost answer counts again).",
             "type", type_names, mx->delivered, METRICS_TYPES);
    head(out, "relay_latency_seconds", "histogram",
         "From the commit that woke a held poll to its answer being written.");
    hist(out, "relay_latency_seconds", "", mx->relay.bucket, &mx->relay.sum_us, relay_le,
         RELAY_B);
    counters(out, "calls_ended_total", "Calls ended, by outcome.", "outcome", outcome_names,
             mx->ended, METRICS_OUTCOMES);
    counters(out, "limit_hits_total",
             "Requests or messages refused by a limit, by the setting that sets it.", "limit",
             limit_names, mx->limits, LIMITS);
    static const char *const wake_kinds[2] = {"same_process", "other_process"};
    counters(out, "wakeups_total",
             "Held polls woken by a commit, by whether the committing process was their own.",
             "kind", wake_kinds, mx->wakeups, 2);
    head(out, "turn_credentials_total", "counter",
         "TURN credentials minted (iceServers answers with LONGCALL_TURN_SECRET_FILE set).");
    buf_printf(out, "longcall_turn_credentials_total %llu\n", (unsigned long long)get(&mx->turn));
    head(out, "checkpoint_duration_seconds", "histogram", "SQLite WAL checkpoints' duration.");
    hist(out, "checkpoint_duration_seconds", "", mx->checkpoint.bucket, &mx->checkpoint.sum_us,
         ckpt_le, CKPT_B);

    gauge(out, "held_polls", "Polls (and exchanges) held now, all processes.", g->held_polls);
    gauge(out, "sessions", "Live sessions.", g->sessions);
    gauge(out, "registered_names", "Live sessions with a registered name.", g->registered);
    gauge(out, "calls_in_progress", "Calls ringing or connected.", g->calls);
    gauge(out, "queued_messages", "Messages stored and not yet acknowledged.", g->queued);
    gauge(out, "processes", "Backend processes running (FastCGI).", g->processes);
    gauge(out, "database_size_bytes", "The database's size (SQLite: the file).", g->db_bytes);
    gauge(out, "wal_size_bytes", "SQLite's write-ahead log's size.", g->wal_bytes);
    return 0;
}
