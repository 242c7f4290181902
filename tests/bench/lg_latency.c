/* lg_latency: the relay latency of one message. One call (A and B); for
 * each iteration B's poll is put in, /rtc/status confirms it is held, then
 * A sends one onIceCandidate; the time from just before A's request is
 * written until B's poll answer is read in full is one sample. */
#include "lg_conn.h"
#include "lg_hist.h"
#include "lg_loop.h"
#include "lg_rtc.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>

/* How long B's held poll may take to return A's message before the
 * message counts as lost (the poll was not woken). */
#define LOST_NS (2 * LG_NS_PER_S)

typedef struct latency {
    lg_sess *a, *b;
    int send_done, poll_done;
    int send_status, poll_status;
    int got; /* iceCandidate messages in B's answer */
    long long bad;
} latency;

static void on_send(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    latency *lt = arg;
    (void)c;
    (void)body;
    (void)len;
    lt->send_done = 1;
    lt->send_status = status;
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

/* One call; o->iterations messages timed one by one. */
int lg_run_latency(const lg_opts *o)
{
    latency lt = {0};
    lg_loop l;
    lg_hist relay, send_rtt;
    lg_sess *s = NULL;
    lg_conn status;
    int rc = 1, have_status = 0;
    long long done = 0, unheld = 0, unconfirmed = 0, errors = 0, lost = 0;
    char path[256], body[128];
    if (lg_loop_init(&l, o->port) != 0) return 1;
    lg_hist_init(&relay);
    lg_hist_init(&send_rtt);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    s = lg_sess_alloc(&l, 2, 1);
    lg_conn_init(&status, &l);
    have_status = 1;
    if (lg_sess_create(&l, s, 2, 2, end) != 0 || lg_sess_pair(&l, s, 1, 2, end) != 0) {
        lg_warn("latency: setup failed");
        goto out;
    }
    lt.a = &s[0];
    lt.b = &s[1];
    lg_send_path(lt.a, path, sizeof path);
    double cpu0 = lg_cpu_seconds();
    int64_t t_run = lg_now_ns();
    for (long k = 0; k < o->iterations && lg_now_ns() < end; k++) {
        int h = hold_b(&lt, &status, o->poll_timeout, end);
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
        if (h == 2) unconfirmed++;
        int n =
            snprintf(body, sizeof body, "{\"id\":\"onIceCandidate\",\"candidate\":{\"n\":%ld}}", k);
        lt.send_done = 0;
        if (lg_conn_request(&lt.a->send, "POST", path, body, (size_t)n, 10000, on_send, &lt) != 0) {
            errors++;
            break;
        }
        int64_t bound = lg_now_ns() + LOST_NS;
        if (!lg_loop_run(&l, both_done, &lt, bound < end ? bound : end)) {
            if (lg_now_ns() >= end || !lt.send_done) break;
            /* Sent and answered, but B's held poll was not woken. */
            if (lost++ < 3)
                lg_warn("latency: message %ld was stored but B's held poll did not return "
                        "within %lld s",
                        k, LOST_NS / LG_NS_PER_S);
            lg_conn_close(&lt.b->poll); /* ends B's poll; the next one picks it up */
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
        lg_hist_add(&relay, lt.b->poll.t_end - lt.a->send.t_start);
        lg_hist_add(&send_rtt, lt.a->send.t_end - lt.a->send.t_start);
        done++;
    }
    double secs = (double)(lg_now_ns() - t_run) / LG_NS_PER_S;
    double cpu = lg_cpu_seconds() - cpu0;
    printf("scenario=latency\nmessages=%lld\nerrors=%lld\nanswered_early=%lld\n"
           "held_unconfirmed=%lld\nbad_answers=%lld\nlost=%lld\n",
           done, errors, unheld, unconfirmed, lt.bad, lost);
    lg_hist_print(&relay, "relay");
    lg_hist_print(&send_rtt, "send");
    printf("duration_s=%.2f\nloadgen_cpu_pct=%.0f\n", secs, secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# latency: %lld messages, relay p50 %lld us p90 %lld us p99 %lld us "
           "(send round trip p50 %lld us), %lld errors, %lld lost (poll not woken)\n",
           done, (long long)lg_hist_pct(&relay, 50), (long long)lg_hist_pct(&relay, 90),
           (long long)lg_hist_pct(&relay, 99), (long long)lg_hist_pct(&send_rtt, 50), errors, lost);
    rc = done > 0 && errors == 0 && lost == 0 ? 0 : 1;
    if (!o->no_close) lg_sess_close(&l, s, 2, 2, lg_now_ns() + 10 * LG_NS_PER_S);
out:
    if (have_status) lg_conn_free(&status);
    lg_sess_free(s, 2);
    lg_hist_free(&relay);
    lg_hist_free(&send_rtt);
    lg_loop_free(&l);
    return rc;
}
