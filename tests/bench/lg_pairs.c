/* lg_pairs: relay throughput. o->n calls, each ping-ponging one ICE
 * candidate: A sends, B's held poll returns, B polls again and sends back,
 * A's poll returns, and so on for o->duration seconds. In exchange mode
 * (-x) each message is an exchange (POST /rtc/send with after= and
 * timeout=), which is also its sender's poll: B's reply wakes A's held
 * exchange, so a relayed message costs one request. Counts the messages
 * delivered, the requests made, times each message from its send to its
 * arrival and each round trip (a message sent -> the peer's reply read).
 * The ping-pong itself (lg_pairs_run) is shared with the attack scenario. */
#include "lg_pairs.h"

#include "lg_conn.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>

enum { F_SEND_PENDING = 1, F_STOPPED = 2, F_AWAITING = 4 /* a message to it is on its way */ };

/* A message not delivered this long after its send started is counted as
 * lost: the pair has stopped (a held poll that was never woken). */
#define LOST_NS (2 * LG_NS_PER_S)

typedef struct pairs {
    int poll_timeout;
    int exchange; /* sends are exchanges (the sender's poll too) */
    lg_pp *r;
    int running;    /* sends and polls continue */
    int64_t t_stop; /* end of the measured window: no send after it */
    long long inflight;
    lg_sess *s;
    size_t ns;
} pairs;

static pairs P;

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg);
static void on_send(lg_conn *c, int status, const char *body, size_t len, void *arg);
static void on_xchg(lg_conn *c, int status, const char *body, size_t len, void *arg);

/* Counts a request made in the measured window. */
static void count_request(void)
{
    if (lg_now_ns() < P.t_stop) P.r->requests++;
}

static void poll_again(lg_sess *s)
{
    char path[256];
    if (!P.running || s->flags & F_STOPPED) return;
    if (P.exchange && (s->send.busy || s->poll.busy)) return; /* the exchange (poll) out polls */
    lg_poll_path(s, P.poll_timeout, path, sizeof path);
    if (lg_conn_request(&s->poll, "GET", path, NULL, 0, (P.poll_timeout + 10) * 1000, on_poll, s) ==
        0) {
        P.inflight++;
        count_request();
    } else {
        P.r->poll_errors++;
        s->flags |= F_STOPPED;
    }
}

/* Sends the next candidate to the peer (or remembers to, once the previous
 * send is answered). In exchange mode the send is an exchange with s's
 * cursor, held as s's poll; past the window s polls instead. */
static void send_next(lg_sess *s)
{
    char path[320], body[128];
    if (!P.running || lg_now_ns() >= P.t_stop) {
        if (P.exchange) poll_again(s);
        return;
    }
    if (s->send.busy) {
        s->flags |= F_SEND_PENDING;
        P.r->send_waits++;
        return;
    }
    s->flags &= ~F_SEND_PENDING;
    ++s->counter;
    if (P.exchange)
        snprintf(path, sizeof path, "/rtc/send?sid=%s&batch=p%lld&after=%lld&timeout=%d", s->sid,
                 s->counter, s->seq, P.poll_timeout);
    else
        lg_send_path(s, path, sizeof path);
    int n = snprintf(body, sizeof body, "{\"id\":\"onIceCandidate\",\"candidate\":{\"n\":%lld}}",
                     s->counter);
    s->t_sent = s->peer->t_mark = lg_now_ns();
    s->peer->flags |= F_AWAITING;
    int timeout_ms = P.exchange ? (P.poll_timeout + 10) * 1000 : 10000;
    if (lg_conn_request(&s->send, "POST", path, body, (size_t)n, timeout_ms,
                        P.exchange ? on_xchg : on_send, s) == 0) {
        P.inflight++;
        count_request();
    } else {
        P.r->send_errors++;
    }
}

/* s received got messages from its peer on c: counted, timed, and s sends
 * its reply. */
static void got_message(lg_sess *s, const lg_conn *c, int got)
{
    s->flags &= ~F_AWAITING;
    if (c->t_end < P.t_stop) {
        P.r->delivered += got;
        lg_hist_add(&P.r->relay, c->t_end - s->t_mark);
        if (s->t_sent) lg_hist_add(&P.r->round, c->t_end - s->t_sent);
    }
    send_next(s);
}

/* An exchange's answer: the peer's reply (then s sends the next), or empty
 * (its time-out, or superseded: s polls). */
static void on_xchg(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    lg_sess *s = arg;
    int got = 0;
    P.inflight--;
    if (!P.running) return;
    if (status != 200) {
        if (P.r->send_errors++ < 3)
            lg_warn("pairs: exchange answered %d %.*s", status, (int)(len > 200 ? 200 : len), body);
        if (P.r->send_errors > 1000) s->flags |= F_STOPPED;
        poll_again(s);
        return;
    }
    if (lg_poll_read(s, body, len, "iceCandidate", &got) < 0) P.r->bad++;
    if (!got) {
        P.r->empty_polls++;
        if (s->flags & F_SEND_PENDING)
            send_next(s);
        else
            poll_again(s);
        return;
    }
    got_message(s, c, got);
}

static void on_send(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    lg_sess *s = arg;
    (void)body;
    (void)len;
    P.inflight--;
    if (status != 200) {
        if (P.running && P.r->send_errors++ < 3) lg_warn("pairs: send answered %d", status);
        return;
    }
    if (c->t_start < P.t_stop) lg_hist_add(&P.r->send_rtt, c->t_end - c->t_start);
    if (s->flags & F_SEND_PENDING) send_next(s);
}

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    lg_sess *s = arg;
    int got = 0;
    P.inflight--;
    if (!P.running) return;
    if (status != 200) {
        if (P.r->poll_errors++ < 3) lg_warn("pairs: poll answered %d %.*s", status, (int)len, body);
        if (P.r->poll_errors > 1000) s->flags |= F_STOPPED;
        poll_again(s);
        return;
    }
    /* other messages than iceCandidate (an unexpected incomingCall from
     * the attack scenario's attackers) are ignored: an "empty" poll */
    if (lg_poll_read(s, body, len, "iceCandidate", &got) < 0) P.r->bad++;
    if (!got) {
        P.r->empty_polls++;
        poll_again(s);
        return;
    }
    /* in exchange mode the reply is the next poll */
    if (!P.exchange) poll_again(s);
    got_message(s, c, got);
}

static void on_end(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    (void)c, (void)status, (void)body, (void)len, (void)arg;
    P.inflight--;
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

/* Nothing on its way: every message sent has reached its poll. */
static int arrived(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < P.ns; i++)
        if (P.s[i].flags & F_AWAITING && !(P.s[i].flags & F_STOPPED)) return 0;
    return P.exchange || sends_idle(NULL); /* exchanges stay held */
}

/* Empty figures. */
void lg_pp_init(lg_pp *r)
{
    *r = (lg_pp){0};
    lg_hist_init(&r->relay);
    lg_hist_init(&r->send_rtt);
    lg_hist_init(&r->round);
}

/* Frees r's histograms. */
void lg_pp_free(lg_pp *r)
{
    lg_hist_free(&r->relay);
    lg_hist_free(&r->send_rtt);
    lg_hist_free(&r->round);
}

/* The ping-pong of np calls for duration seconds; see lg_pairs.h. */
void lg_pairs_run(lg_loop *l, lg_sess *s, size_t np, int poll_timeout, double duration, int64_t end,
                  int exchange, lg_pp *r)
{
    size_t ns = 2 * np;
    P = (pairs){.poll_timeout = poll_timeout, .exchange = exchange, .r = r, .s = s, .ns = ns};
    for (size_t i = 0; i < ns; i++) {
        s[i].flags = 0;
        s[i].t_sent = 0;
    }
    P.running = 1;
    int64_t t_start = lg_now_ns();
    P.t_stop = t_start + (int64_t)(duration * LG_NS_PER_S);
    if (P.t_stop > end) P.t_stop = end;
    for (size_t i = 0; i < ns; i++)
        poll_again(&s[i]);
    for (size_t i = 0; i < np; i++)
        send_next(&s[2 * i]);
    lg_loop_run(l, NULL, NULL, P.t_stop);
    r->secs += (double)(lg_now_ns() - t_start) / LG_NS_PER_S;
    int64_t now = lg_now_ns();
    for (size_t i = 0; i < ns; i++) {
        if (!(s[i].flags & F_AWAITING) || now - s[i].t_mark < LOST_NS) continue;
        s[i].flags |= F_STOPPED;
        if (r->lost++ < 3)
            lg_warn("pairs: session %zu: a message sent %.1f s ago never reached its held poll", i,
                    (double)(now - s[i].t_mark) / LG_NS_PER_S);
    }
    /* No more sends (t_stop passed); let the messages on their way arrive
     * and the sends in flight finish, then end the polls. */
    lg_loop_run(l, arrived, NULL, lg_now_ns() + 2 * LG_NS_PER_S);
    /* A poll of the same session answers the held one (poll or exchange)
     * at once: one with timeout=0 on each session's idle connection ends
     * them all, so that the server holds none of them afterwards. */
    P.running = 0;
    for (size_t i = 0; i < ns; i++) {
        char path[256];
        lg_conn *idle = !s[i].send.busy ? &s[i].send : !s[i].poll.busy ? &s[i].poll : NULL;
        lg_poll_path(&s[i], 0, path, sizeof path);
        if (idle && lg_conn_request(idle, "GET", path, NULL, 0, 5000, on_end, NULL) == 0)
            P.inflight++;
    }
    lg_loop_run(l, drained, NULL, lg_now_ns() + 3 * LG_NS_PER_S);
    for (size_t i = 0; i < ns; i++) {
        if (s[i].poll.busy) lg_conn_close(&s[i].poll);
        if (s[i].send.busy) lg_conn_close(&s[i].send);
    }
}

/* o->n calls ping-ponging for o->duration seconds. */
int lg_run_pairs(const lg_opts *o)
{
    lg_loop l;
    lg_sess *s = NULL;
    lg_pp r;
    size_t np = o->n > 0 ? (size_t)o->n : 1, ns = 2 * np;
    int rc = 1;
    if (lg_loop_init(&l, o->port) != 0) return 1;
    lg_pp_init(&r);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    s = lg_sess_alloc(&l, ns, 1);
    size_t setup = (size_t)o->setup_conns;
    if (lg_sess_create(&l, s, ns, setup, end) != 0 || lg_sess_pair(&l, s, np, setup, end) != 0) {
        lg_warn("pairs: setup failed");
        goto out;
    }
    double setup_s = (double)(lg_now_ns() - t0) / LG_NS_PER_S;
    double cpu0 = lg_cpu_seconds();
    lg_pairs_run(&l, s, np, o->poll_timeout, o->duration, end, o->exchange, &r);
    double secs = r.secs;
    double cpu = lg_cpu_seconds() - cpu0;
    const char *mode = o->exchange ? "exchange" : "two-request";
    printf("scenario=pairs\nmode=%s\npairs=%zu\nsetup_s=%.2f\nduration_s=%.2f\n", mode, np,
           setup_s, secs);
    printf("messages=%lld\nmsgs_per_s=%.0f\n", r.delivered, r.delivered / secs);
    printf("requests=%lld\nrequests_per_msg=%.2f\n", r.requests,
           r.delivered ? (double)r.requests / r.delivered : 0);
    printf("send_errors=%lld\npoll_errors=%lld\nempty_polls=%lld\nbad_answers=%lld\n",
           r.send_errors, r.poll_errors, r.empty_polls, r.bad);
    printf("lost=%lld\n", r.lost);
    lg_hist_print(&r.relay, "relay");
    lg_hist_print(&r.send_rtt, "send");
    lg_hist_print(&r.round, "round");
    printf("oneway_p50_us=%lld\noneway_p99_us=%lld\n", (long long)lg_hist_pct(&r.round, 50) / 2,
           (long long)lg_hist_pct(&r.round, 99) / 2);
    printf("send_waits=%lld\n", r.send_waits);
    printf("loadgen_cpu_pct=%.0f\n", secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# pairs %zu (%s): %.0f messages/s relayed (%lld in %.1f s, %.2f requests each), "
           "relay p50 %lld us p99 %lld us, round trip / 2 p50 %lld us, %lld send / %lld poll "
           "errors, %lld pairs stopped by a lost message\n",
           np, mode, r.delivered / secs, r.delivered, secs,
           r.delivered ? (double)r.requests / r.delivered : 0, (long long)lg_hist_pct(&r.relay, 50),
           (long long)lg_hist_pct(&r.relay, 99), (long long)lg_hist_pct(&r.round, 50) / 2,
           r.send_errors, r.poll_errors, r.lost);
    rc = r.delivered > 0 && r.send_errors == 0 && r.poll_errors == 0 && r.bad == 0 && r.lost == 0
             ? 0
             : 1;
    if (!o->no_close) lg_sess_close(&l, s, ns, setup, lg_now_ns() + 30 * LG_NS_PER_S);
out:
    lg_sess_free(s, ns);
    lg_pp_free(&r);
    lg_loop_free(&l);
    return rc;
}
