/* lg_slow: the slow-readers scenario (issue 12, item 2). Two calls: A-B for
 * the relay measurement, and X-Y where X fills Y's mailbox with 4 x 60 KB
 * candidates. Measures the A -> B relay latency and /rtc/status round trips
 * without the attack (half of them), then with N FastCGI connections
 * straight to the backend's unix socket(s), each asking for Y's ~240 KB
 * poll answer and never reading it; waits until the backend has dropped
 * them (dropped_slow in /rtc/status) and closes them; measures the other
 * half without; checks Y's mailbox is whole. The attackers are kept open
 * and unread for the whole measurement with the attack. */
#include "lg_fcgi.h"
#include "lg_latency.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG_MESSAGES 4
#define BIG_CHARS 60000
#define ATTACK_RCVBUF 4096

typedef struct phase {
    lg_relay relay;
    lg_hist status;              /* /rtc/status round trips */
    long long status_unanswered; /* of o->status_requests */
    double secs;
} phase;

typedef struct wait1 {
    int done, status;
    size_t len;
    int matched, n;
    lg_sess *s; /* when set: the answer is read as s's poll answer */
} wait1;

static void on_done(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    wait1 *w = arg;
    (void)c;
    w->done = 1;
    w->status = status;
    w->len = len;
    if (w->s && status == 200) w->n = lg_poll_read(w->s, body, len, "iceCandidate", &w->matched);
}

static int is_done(void *arg)
{
    return ((wait1 *)arg)->done;
}

/* One request on c, waited for. Returns the HTTP status or LG_ERR_*; *w
 * holds what on_done saw. */
static int request(lg_conn *c, const char *method, const char *path, const char *body, size_t len,
                   int64_t deadline, wait1 *w)
{
    w->done = 0;
    if (lg_conn_request(c, method, path, body, len, 10000, on_done, w) != 0) return LG_ERR_IO;
    if (!lg_loop_run(c->loop, is_done, w, deadline)) {
        lg_conn_close(c); /* calls on_done with an error */
        return LG_ERR_TIMEOUT;
    }
    return w->status;
}

/* x sends BIG_MESSAGES candidates of BIG_CHARS characters to its peer. */
static int fill_mailbox(lg_sess *x, int64_t deadline)
{
    char path[256];
    size_t cap = BIG_CHARS + 128;
    char *body = lg_xmalloc(cap);
    int rc = 0;
    lg_send_path(x, path, sizeof path);
    for (int k = 0; k < BIG_MESSAGES && rc == 0; k++) {
        int n = snprintf(body, cap, "{\"id\":\"onIceCandidate\",\"candidate\":{\"candidate\":\"");
        memset(body + n, '0' + k, BIG_CHARS);
        n += BIG_CHARS;
        n += snprintf(body + n, cap - (size_t)n, "\"}}");
        wait1 w = {0};
        int st = request(&x->send, "POST", path, body, (size_t)n, deadline, &w);
        if (st != 200) {
            lg_warn("slow: a 60 KB message was refused: status %d", st);
            rc = -1;
        }
    }
    free(body);
    return rc;
}

/* count /rtc/status round trips on c, until end; stops after 3 failures in
 * a row (a backend that answers nobody). */
static void status_rtts(lg_conn *c, long count, int64_t end, phase *p)
{
    int in_row = 0;
    for (long i = 0; i < count && lg_now_ns() < end && in_row < 3; i++) {
        if (lg_status(c, NULL, NULL, end) != 0) {
            in_row++;
            continue;
        }
        in_row = 0;
        lg_hist_add(&p->status, c->t_end - c->t_start);
    }
}

/* One measured stretch, added to p: messages relayed, then status round
 * trips, bounded by o->duration s and limit. */
static void measure(lg_loop *l, lg_sess *s, lg_conn *status, const lg_opts *o, long messages,
                    long statuses, int64_t limit, phase *p)
{
    int64_t t = lg_now_ns(), end = t + (int64_t)(o->duration * LG_NS_PER_S);
    if (end > limit) end = limit;
    uint64_t answered = p->status.count;
    lg_relay_run(l, &s[0], &s[1], status, messages, o->poll_timeout, end, &p->relay);
    status_rtts(status, statuses, end, p);
    /* unanswered: failed, or not asked before the bound */
    p->status_unanswered += statuses - (long long)(p->status.count - answered);
    p->secs += (double)(lg_now_ns() - t) / LG_NS_PER_S;
}

static void print_phase(const char *name, const phase *p)
{
    char key[64];
    printf("%s_messages=%lld\n%s_errors=%lld\n%s_lost=%lld\n%s_status_unanswered=%lld\n"
           "%s_duration_s=%.2f\n",
           name, p->relay.done, name, p->relay.errors, name, p->relay.lost, name,
           p->status_unanswered, name, p->secs);
    snprintf(key, sizeof key, "%s_relay", name);
    lg_hist_print(&p->relay.relay, key);
    snprintf(key, sizeof key, "%s_status", name);
    lg_hist_print(&p->status, key);
}

static double ratio(const lg_hist *with, const lg_hist *without)
{
    int64_t b = lg_hist_pct(without, 50);
    return with->count && b > 0 ? (double)lg_hist_pct(with, 50) / (double)b : 0;
}

/* Relay and status without, then with o->n slow readers; see the top. */
int lg_run_slow(const lg_opts *o)
{
    lg_loop l;
    lg_sess *s = NULL;
    lg_conn status;
    phase base = {0}, att = {0};
    int *fds = lg_xcalloc((size_t)o->n, sizeof *fds);
    long opened = 0, answering = 0, unread_total = 0;
    long long drop0 = -1, drop_during = -1, dropped = -1;
    int rc = 1, intact = 0, setup_ok = 0;
    if (lg_loop_init(&l, o->port) != 0) {
        free(fds);
        return 1;
    }
    lg_relay_init(&base.relay);
    lg_relay_init(&att.relay);
    lg_hist_init(&base.status);
    lg_hist_init(&att.status);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    double cpu0 = lg_cpu_seconds();
    s = lg_sess_alloc(&l, 4, 1);
    lg_conn_init(&status, &l);
    /* s[0] calls s[1] (the relay), s[2] calls s[3] (the big mailbox) */
    if (lg_sess_create(&l, s, 4, 2, end) != 0 || lg_sess_pair(&l, s, 2, 2, end) != 0 ||
        fill_mailbox(&s[2], end) != 0) {
        lg_warn("slow: setup failed");
        goto out;
    }
    /* a backend from before the fix has no dropped_slow: -1 below */
    int counts_drops = lg_status_int(&status, "dropped_slow", &drop0, end) == 0;
    setup_ok = 1;
    /* Without the attack: half before it, half after it (once the backend
     * dropped the attackers), so that the machine's drift over the run
     * weighs on both sides alike. */
    measure(&l, s, &status, o, o->iterations / 2, o->status_requests / 2, end, &base);

    /* The attack: each connection asks for Y's mailbox from the start
     * (after=0: nothing acknowledged, answered at once) and never reads. */
    char query[200];
    snprintf(query, sizeof query, "sid=%s&after=0&timeout=0", s[3].sid);
    for (long i = 0; i < o->n; i++) {
        fds[i] = lg_fcgi_connect(o->sockets[i % o->nsockets], ATTACK_RCVBUF);
        if (fds[i] < 0) break;
        opened++;
        if (lg_fcgi_request(fds[i], "GET", "/rtc/poll", query, l.host, "127.0.0.1") != 0) break;
    }
    /* Until the backend has begun every answer (bytes wait unread), at most
     * 5 s: the measurement starts with the attack in effect. */
    int64_t begun = lg_now_ns() + 5 * LG_NS_PER_S;
    do {
        answering = unread_total = 0;
        for (long i = 0; i < opened; i++) {
            long u = lg_fcgi_unread(fds[i]);
            if (u > 0) answering++, unread_total += u;
        }
        if (answering >= opened) break;
        usleep(20000);
    } while (lg_now_ns() < begun);
    measure(&l, s, &status, o, o->iterations, o->status_requests, end, &att);
    if (counts_drops && lg_status_int(&status, "dropped_slow", &drop_during, end) == 0)
        drop_during -= drop0;

    /* The backend drops them after LONGCALL_WRITE_TIMEOUT: wait for that
     * (at most o->drop_wait s), then close them. */
    int64_t wait_end = lg_now_ns() + (int64_t)(o->drop_wait * LG_NS_PER_S);
    if (wait_end > end) wait_end = end;
    while (counts_drops && lg_now_ns() < wait_end) {
        long long d;
        if (lg_status_int(&status, "dropped_slow", &d, wait_end) == 0) {
            dropped = d - drop0;
            if (dropped >= opened) break;
        }
        usleep(250000);
    }
    for (long i = 0; i < opened; i++) {
        close(fds[i]);
        fds[i] = -1;
    }

    measure(&l, s, &status, o, o->iterations - o->iterations / 2,
            o->status_requests - o->status_requests / 2, end, &base);

    /* Nothing lost: Y's mailbox is whole for its owner. */
    char path[256];
    wait1 w = {.s = &s[3]};
    lg_poll_path(&s[3], 0, path, sizeof path);
    int64_t check_end = lg_now_ns() + 15 * LG_NS_PER_S;
    if (request(&s[3].poll, "GET", path, NULL, 0, check_end < end ? check_end : end, &w) == 200 &&
        w.matched == BIG_MESSAGES && w.len >= (size_t)BIG_MESSAGES * BIG_CHARS)
        intact = 1;
    else
        lg_warn("slow: the big mailbox after the attack: status %d, %d candidates, %zu bytes",
                w.status, w.matched, w.len);
    rc = base.relay.done > 0 && att.relay.done > 0 && base.relay.errors + att.relay.errors == 0 &&
                 base.relay.lost + att.relay.lost == 0 &&
                 base.status_unanswered + att.status_unanswered == 0 && intact
             ? 0
             : 1;
out:;
    double secs = (double)(lg_now_ns() - t0) / LG_NS_PER_S;
    double cpu = lg_cpu_seconds() - cpu0;
    printf("scenario=slow\nattackers=%ld\nattackers_connected=%ld\nattackers_answered=%ld\n"
           "attack_unread_kb=%ld\n",
           o->n, opened, answering, unread_total / 1024);
    if (setup_ok) {
        print_phase("base", &base);
        print_phase("attack", &att);
    }
    printf("relay_p50_ratio=%.2f\nstatus_p50_ratio=%.2f\n",
           ratio(&att.relay.relay, &base.relay.relay), ratio(&att.status, &base.status));
    printf("dropped_during=%lld\ndropped_slow=%lld\nmailbox_intact=%d\n", drop_during, dropped,
           intact);
    printf("duration_s=%.2f\nloadgen_cpu_pct=%.0f\n", secs, secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# slow: %ld of %ld readers stalled (%ld KB unread); relay p50 %lld -> %lld us "
           "(x%.2f), p99 %lld -> %lld us; status p50 %lld -> %lld us (x%.2f), p99 %lld -> %lld "
           "us; lost %lld, errors %lld, status unanswered %lld; dropped %lld during the "
           "measurement, %lld in all; mailbox %s\n",
           answering, o->n, unread_total / 1024, (long long)lg_hist_pct(&base.relay.relay, 50),
           (long long)lg_hist_pct(&att.relay.relay, 50), ratio(&att.relay.relay, &base.relay.relay),
           (long long)lg_hist_pct(&base.relay.relay, 99),
           (long long)lg_hist_pct(&att.relay.relay, 99), (long long)lg_hist_pct(&base.status, 50),
           (long long)lg_hist_pct(&att.status, 50), ratio(&att.status, &base.status),
           (long long)lg_hist_pct(&base.status, 99), (long long)lg_hist_pct(&att.status, 99),
           base.relay.lost + att.relay.lost, base.relay.errors + att.relay.errors,
           base.status_unanswered + att.status_unanswered, drop_during, dropped,
           intact ? "whole" : "NOT whole");
    if (setup_ok && !o->no_close) lg_sess_close(&l, s, 4, 2, lg_now_ns() + 10 * LG_NS_PER_S);
    for (long i = 0; i < opened; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(fds);
    lg_conn_free(&status);
    lg_sess_free(s, 4);
    lg_relay_free(&base.relay);
    lg_relay_free(&att.relay);
    lg_hist_free(&base.status);
    lg_hist_free(&att.status);
    lg_loop_free(&l);
    return rc;
}
