/* lg_latency: the relay latency of one message. One call (A and B); for
 * each iteration B's poll is put in, /rtc/status confirms it is held, then
 * A sends one onIceCandidate; the time from just before A's request is
 * written until B's poll answer is read in full is one sample. With -x A's
 * send is an exchange (after= its cursor, timeout=0): the server answers
 * B's held poll before the exchange's poll part runs, as with any
 * timeout=, so the sample times the exchange's path up to B; timeout=0
 * leaves nothing of A's held, and each sample starts as quiet as in
 * two-request mode. The measurement (lg_relay_run) is shared with the slow
 * and attack scenarios. */
#include "lg_latency.h"

#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>

/* How long B's held poll may take to return A's message before the
 * message counts as lost (the poll was not woken). */
#define LOST_NS (2 * LG_NS_PER_S)

typedef struct latency {
    lg_sess *a, *b;
    int exchange; /* A's sends are exchanges (lg_relay.exchange) */
    int send_done, poll_done;
    int send_status, poll_status;
    int got; /* iceCandidate messages in B's answer */
    long long bad;
} latency;

static void on_send(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    latency *lt = arg;
    (void)c;
    lt->send_done = 1;
    lt->send_status = status;
    /* an exchange's answer is A's poll answer too: it moves A's cursor
     * (nothing is sent to A here; anything would be counted bad) */
    int got = 0;
    if (lt->exchange && status == 200 &&
        (lg_poll_read(lt->a, body, len, "iceCandidate", &got) < 0 || got))
        lt->bad++;
}

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    latency *lt = arg;
    (void)c;
    lt->poll_done = 1;
    lt->poll_status = status;
    lt->got = 0;
    if (status == 200 && lg_poll_read(lt->b, body, len, "iceCandidate", &lt->got) < 0) lt->bad++;
}

static int both_done(void *arg)
{
    latency *lt = arg;
    return lt->send_done && lt->poll_done;
}

/* Puts B's poll in and waits until the server reports it held (at most 200
 * status requests). Returns 1 held, 2 still out but not seen held, 0
 * answered already, -1 failure. */
static int hold_b(latency *lt, lg_conn *status, int timeout_s, int64_t deadline)
{
    char path[256];
    lt->poll_done = 0;
    lg_poll_path(lt->b, timeout_s, path, sizeof path);
    if (lg_conn_request(&lt->b->poll, "GET", path, NULL, 0, (timeout_s + 10) * 1000, on_poll, lt) !=
        0)
        return -1;
    for (int tries = 0; tries < 200 && !lt->poll_done; tries++) {
        long long held = 0;
        if (lg_status(status, &held, NULL, deadline) != 0) return -1;
        if (held >= 1) return 1;
    }
    return lt->poll_done ? 0 : 2;
}

/* Empty counters and histograms. */
void lg_relay_init(lg_relay *r)
{
    *r = (lg_relay){0};
    lg_hist_init(&r->relay);
    lg_hist_init(&r->send_rtt);
}

/* Frees r's histograms. */
void lg_relay_free(lg_relay *r)
{
    lg_hist_free(&r->relay);
    lg_hist_free(&r->send_rtt);
}

/* Relays messages A -> B one by one; see lg_latency.h. */
void lg_relay_run(lg_loop *l, lg_sess *a, lg_sess *b, lg_conn *status, long iterations,
                  int poll_timeout, int64_t end, lg_relay *r)
{
    latency lt = {.a = a, .b = b, .exchange = r->exchange};
    long long errors = 0, lost = 0, unheld = 0;
    char path[256], body[128];
    lg_send_path(a, path, sizeof path);
    for (long k = 0; k < iterations && lg_now_ns() < end; k++) {
        int h = hold_b(&lt, status, poll_timeout, end);
        if (h < 0) {
            errors++;
            break;
        }
        if (h == 0) { /* answered before A sent anything: try again */
            unheld++;
            if (unheld > 50) break;
            k--;
            continue;
        }
        if (h == 2) r->unconfirmed++;
        int n =
            snprintf(body, sizeof body, "{\"id\":\"onIceCandidate\",\"candidate\":{\"n\":%ld}}", k);
        lt.send_done = 0;
        if (r->exchange) /* a fresh batch id each time; A's cursor as after= */
            snprintf(path, sizeof path, "/rtc/send?sid=%s&batch=l%lld&after=%lld&timeout=0", a->sid,
                     ++a->counter, a->seq);
        if (lg_conn_request(&a->send, "POST", path, body, (size_t)n, 10000, on_send, &lt) != 0) {
            errors++;
            break;
        }
        int64_t bound = lg_now_ns() + LOST_NS;
        if (bound > end) bound = end;
        int ran, others = 0;
        while ((ran = lg_loop_run(l, both_done, &lt, bound)) && lt.send_status == 200 &&
               lt.poll_status == 200 && lt.got == 0 && others < 20) {
            /* B's poll brought other messages only (an unexpected
             * incomingCall: the attack scenario's attackers call B): B
             * ignores them and polls again; the sample ends at the poll
             * that brings A's message. */
            others++;
            r->other++;
            lt.poll_done = 0;
            char bpath[256];
            lg_poll_path(b, poll_timeout, bpath, sizeof bpath);
            if (lg_conn_request(&b->poll, "GET", bpath, NULL, 0, (poll_timeout + 10) * 1000,
                                on_poll, &lt) != 0) {
                ran = 0;
                break;
            }
        }
        if (!ran) {
            if (lg_now_ns() >= end || !lt.send_done) break;
            /* Sent and answered, but B's held poll was not woken. */
            if (lost++ < 3)
                lg_warn("latency: message %ld was stored but B's held poll did not return "
                        "within %lld s",
                        k, LOST_NS / LG_NS_PER_S);
            lg_conn_close(&b->poll); /* ends B's poll; the next one picks it up */
            if (lost > 5) break;
            continue;
        }
        if (lt.send_status != 200 || lt.poll_status != 200 || lt.got != 1) {
            errors++;
            if (errors <= 3)
                lg_warn("latency: send %d, poll %d, %d messages", lt.send_status, lt.poll_status,
                        lt.got);
            if (errors > 20) break;
            continue;
        }
        lg_hist_add(&r->relay, b->poll.t_end - a->send.t_start);
        lg_hist_add(&r->send_rtt, a->send.t_end - a->send.t_start);
        r->done++;
    }
    /* a request still out (deadline, error) is ended: the caller may go on */
    if (b->poll.busy) lg_conn_close(&b->poll);
    if (a->send.busy) lg_conn_close(&a->send);
    r->errors += errors;
    r->lost += lost;
    r->unheld += unheld;
    r->bad += lt.bad;
}

/* One call; o->iterations messages timed one by one. */
int lg_run_latency(const lg_opts *o)
{
    lg_loop l;
    lg_relay r;
    lg_sess *s = NULL;
    lg_conn status;
    int rc = 1;
    if (lg_loop_init(&l, o->port) != 0) return 1;
    lg_relay_init(&r);
    r.exchange = o->exchange;
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    s = lg_sess_alloc(&l, 2, 1);
    lg_conn_init(&status, &l);
    if (lg_sess_create(&l, s, 2, 2, end) != 0 || lg_sess_pair(&l, s, 1, 2, end) != 0) {
        lg_warn("latency: setup failed");
        goto out;
    }
    double cpu0 = lg_cpu_seconds();
    int64_t t_run = lg_now_ns();
    lg_relay_run(&l, &s[0], &s[1], &status, o->iterations, o->poll_timeout, end, &r);
    double secs = (double)(lg_now_ns() - t_run) / LG_NS_PER_S;
    double cpu = lg_cpu_seconds() - cpu0;
    printf("scenario=latency\nmode=%s\nmessages=%lld\nerrors=%lld\nanswered_early=%lld\n"
           "held_unconfirmed=%lld\nbad_answers=%lld\nlost=%lld\n",
           o->exchange ? "exchange" : "two-request", r.done, r.errors, r.unheld, r.unconfirmed,
           r.bad, r.lost);
    lg_hist_print(&r.relay, "relay");
    lg_hist_print(&r.send_rtt, "send");
    printf("duration_s=%.2f\nloadgen_cpu_pct=%.0f\n", secs, secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# latency (%s): %lld messages, relay p50 %lld us p90 %lld us p99 %lld us "
           "(send round trip p50 %lld us), %lld errors, %lld lost (poll not woken)\n",
           o->exchange ? "exchange" : "two-request", r.done, (long long)lg_hist_pct(&r.relay, 50),
           (long long)lg_hist_pct(&r.relay, 90), (long long)lg_hist_pct(&r.relay, 99),
           (long long)lg_hist_pct(&r.send_rtt, 50), r.errors, r.lost);
    rc = r.done > 0 && r.errors == 0 && r.lost == 0 && r.bad == 0 ? 0 : 1;
    if (!o->no_close) lg_sess_close(&l, s, 2, 2, lg_now_ns() + 10 * LG_NS_PER_S);
out:
    lg_conn_free(&status);
    lg_sess_free(s, 2);
    lg_relay_free(&r);
    lg_loop_free(&l);
    return rc;
}
