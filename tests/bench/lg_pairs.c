/* lg_pairs: relay throughput. o->n calls, each ping-ponging one ICE
 * candidate: A sends, B's held poll returns, B polls again and sends back,
 * A's poll returns, and so on for o->duration seconds. Counts the messages
 * delivered through polls, and times each one from its send to its poll. */
#include "lg_conn.h"
#include "lg_hist.h"
#include "lg_loop.h"
#include "lg_rtc.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>

enum { F_SEND_PENDING = 1, F_STOPPED = 2, F_AWAITING = 4 /* a message to it is on its way */ };

/* A message not delivered this long after its send started is counted as
 * lost: the pair has stopped (a held poll that was never woken). */
#define LOST_NS (2 * LG_NS_PER_S)

typedef struct pairs {
    const lg_opts *o;
    lg_hist relay;
    lg_hist send_rtt;     /* send request round trips */
    long long send_waits; /* sends that waited for the previous one's answer */
    int running;          /* sends and polls continue */
    int64_t t_stop;       /* end of the measured window */
    long long delivered, send_errors, poll_errors, empty_polls, bad, inflight, lost;
    lg_sess *s;
    size_t ns;
} pairs;

static pairs P;

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg);
static void on_send(lg_conn *c, int status, const char *body, size_t len, void *arg);

static void poll_again(lg_sess *s)
{
    char path[256];
    if (!P.running || s->flags & F_STOPPED) return;
    lg_poll_path(s, P.o->poll_timeout, path, sizeof path);
    if (lg_conn_request(&s->poll, "GET", path, NULL, 0, (P.o->poll_timeout + 10) * 1000, on_poll,
                        s) == 0) {
        P.inflight++;
    } else {
        P.poll_errors++;
        s->flags |= F_STOPPED;
    }
}

/* Sends the next candidate to the peer (or remembers to, once the previous
 * send is answered). */
static void send_next(lg_sess *s)
{
    char path[256], body[128];
    if (!P.running || lg_now_ns() >= P.t_stop) return;
    if (s->send.busy) {
        s->flags |= F_SEND_PENDING;
        P.send_waits++;
        return;
    }
    s->flags &= ~F_SEND_PENDING;
    lg_send_path(s, path, sizeof path);
    int n = snprintf(body, sizeof body, "{\"id\":\"onIceCandidate\",\"candidate\":{\"n\":%lld}}",
                     ++s->counter);
    s->peer->t_mark = lg_now_ns();
    s->peer->flags |= F_AWAITING;
    if (lg_conn_request(&s->send, "POST", path, body, (size_t)n, 10000, on_send, s) == 0)
        P.inflight++;
    else
        P.send_errors++;
}

static void on_send(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    lg_sess *s = arg;
    (void)body;
    (void)len;
    P.inflight--;
    if (status != 200) {
        if (P.running && P.send_errors++ < 3) lg_warn("pairs: send answered %d", status);
        return;
    }
    if (c->t_start < P.t_stop) lg_hist_add(&P.send_rtt, c->t_end - c->t_start);
    if (s->flags & F_SEND_PENDING) send_next(s);
}

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    lg_sess *s = arg;
    int got = 0;
    P.inflight--;
    if (!P.running) return;
    if (status != 200) {
        if (P.poll_errors++ < 3) lg_warn("pairs: poll answered %d %.*s", status, (int)len, body);
        if (P.poll_errors > 1000) s->flags |= F_STOPPED;
        poll_again(s);
        return;
    }
    if (lg_poll_read(s, body, len, "iceCandidate", &got) < 0) P.bad++;
    poll_again(s);
    if (!got) {
        P.empty_polls++;
        return;
    }
    s->flags &= ~F_AWAITING;
    if (c->t_end < P.t_stop) {
        P.delivered += got;
        lg_hist_add(&P.relay, c->t_end - s->t_mark);
    }
    send_next(s);
}

static int drained(void *arg)
{
    (void)arg;
    return P.inflight == 0;
}

static int sends_idle(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < P.ns; i++)
        if (P.s[i].send.busy) return 0;
    return 1;
}

/* o->n calls ping-ponging for o->duration seconds. */
int lg_run_pairs(const lg_opts *o)
{
    lg_loop l;
    lg_sess *s = NULL;
    size_t np = o->n > 0 ? (size_t)o->n : 1, ns = 2 * np;
    int rc = 1;
    P = (pairs){.o = o};
    if (lg_loop_init(&l, o->port) != 0) return 1;
    lg_hist_init(&P.relay);
    lg_hist_init(&P.send_rtt);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    s = lg_sess_alloc(&l, ns, 1);
    P.s = s;
    P.ns = ns;
    size_t setup = (size_t)o->setup_conns;
    if (lg_sess_create(&l, s, ns, setup, end) != 0 || lg_sess_pair(&l, s, np, setup, end) != 0) {
        lg_warn("pairs: setup failed");
        goto out;
    }
    double setup_s = (double)(lg_now_ns() - t0) / LG_NS_PER_S;
    P.running = 1;
    double cpu0 = lg_cpu_seconds();
    int64_t t_start = lg_now_ns();
    P.t_stop = t_start + (int64_t)(o->duration * LG_NS_PER_S);
    if (P.t_stop > end) P.t_stop = end;
    for (size_t i = 0; i < ns; i++)
        poll_again(&s[i]);
    for (size_t i = 0; i < np; i++)
        send_next(&s[2 * i]);
    lg_loop_run(&l, NULL, NULL, P.t_stop);
    double secs = (double)(lg_now_ns() - t_start) / LG_NS_PER_S;
    double cpu = lg_cpu_seconds() - cpu0;
    int64_t now = lg_now_ns();
    for (size_t i = 0; i < ns; i++) {
        if (!(s[i].flags & F_AWAITING) || now - s[i].t_mark < LOST_NS) continue;
        if (P.lost++ < 3)
            lg_warn("pairs: session %zu: a message sent %.1f s ago never reached its held poll", i,
                    (double)(now - s[i].t_mark) / LG_NS_PER_S);
    }
    /* Let the sends in flight finish, then stop; closing ends the polls. */
    P.running = 0;
    lg_loop_run(&l, sends_idle, NULL, lg_now_ns() + 2 * LG_NS_PER_S);
    printf("scenario=pairs\npairs=%zu\nsetup_s=%.2f\nduration_s=%.2f\n", np, setup_s, secs);
    printf("messages=%lld\nmsgs_per_s=%.0f\n", P.delivered, P.delivered / secs);
    printf("send_errors=%lld\npoll_errors=%lld\nempty_polls=%lld\nbad_answers=%lld\n",
           P.send_errors, P.poll_errors, P.empty_polls, P.bad);
    printf("lost=%lld\n", P.lost);
    lg_hist_print(&P.relay, "relay");
    lg_hist_print(&P.send_rtt, "send");
    printf("send_waits=%lld\n", P.send_waits);
    printf("loadgen_cpu_pct=%.0f\n", secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# pairs %zu: %.0f messages/s relayed through polls (%lld in %.1f s), relay p50 %lld "
           "us p99 %lld us, %lld send / %lld poll errors, %lld pairs stopped by a lost message\n",
           np, P.delivered / secs, P.delivered, secs, (long long)lg_hist_pct(&P.relay, 50),
           (long long)lg_hist_pct(&P.relay, 99), P.send_errors, P.poll_errors, P.lost);
    rc = P.delivered > 0 && P.send_errors == 0 && P.poll_errors == 0 && P.bad == 0 && P.lost == 0
             ? 0
             : 1;
    if (!o->no_close) {
        lg_sess_close(&l, s, ns, setup, lg_now_ns() + 30 * LG_NS_PER_S);
        lg_loop_run(&l, drained, NULL, lg_now_ns() + 5 * LG_NS_PER_S);
    }
out:
    lg_sess_free(s, ns);
    lg_hist_free(&P.relay);
    lg_hist_free(&P.send_rtt);
    lg_loop_free(&l);
    return rc;
}
