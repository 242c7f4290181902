/* lg_fanout: delivering one message to each of o->n held polls. After all
 * are held, each session sends {"id":"ping"} on its own sid (over
 * o->senders concurrent connections); the server puts "pong" in that
 * session's mailbox, which wakes its held poll. Times from the first send
 * until every poll has returned with its pong. */
#include "lg_conn.h"
#include "lg_held.h"
#include "lg_hist.h"
#include "lg_loop.h"
#include "lg_pool.h"
#include "lg_rtc.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fanout {
    const lg_opts *o;
    lg_sess *s;
    size_t n;
    int running;
    long long delivered, early, errors, send_errors, repolls;
    int64_t t_last; /* when the last pong arrived */
    lg_hist deliver, send_rtt;
} fanout;

static fanout F;

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    lg_sess *s = arg;
    int got = 0;
    if (!F.running) return;
    if (status != 200 || lg_poll_read(s, body, len, "pong", &got) < 0) {
        if (F.errors++ < 3) lg_warn("fanout: poll answered %d %.*s", status, (int)len, body);
        if (F.errors > 100) return;
    }
    if (got && s->flags) { /* its ping went out: delivered */
        F.delivered++;
        F.t_last = c->t_end;
        lg_hist_add(&F.deliver, c->t_end - s->t_mark);
        return;
    }
    if (got) F.early++;
    F.repolls++;
    if (lg_held_poll(s, F.o->poll_timeout, on_poll) != 0) F.errors++;
}

static int make_ping(void *arg, size_t i, lg_req *r)
{
    lg_sess *s = &((fanout *)arg)->s[i];
    static const char ping[] = "{\"id\":\"ping\"}";
    r->method = "POST";
    lg_send_path(s, r->path, sizeof r->path);
    memcpy(r->body, ping, sizeof ping - 1);
    r->body_len = sizeof ping - 1;
    r->has_body = 1;
    s->flags = 1;
    s->t_mark = lg_now_ns();
    return 0;
}

static int done_ping(void *arg, size_t i, int status, const char *body, size_t len,
                     const lg_conn *c)
{
    fanout *f = arg;
    (void)i;
    if (status == 200) {
        lg_hist_add(&f->send_rtt, c->t_end - c->t_start);
    } else if (f->send_errors++ < 3) {
        lg_warn("fanout: send answered %d %.*s", status, (int)len, body);
    }
    return 0;
}

static int all_delivered(void *arg)
{
    fanout *f = arg;
    return f->delivered >= (long long)f->n;
}

/* o->n held polls, then one message to each. */
int lg_run_fanout(const lg_opts *o)
{
    lg_loop l;
    lg_conn status;
    lg_pool_stats ps;
    long long held = 0;
    size_t n = o->n > 0 ? (size_t)o->n : 1;
    int rc = 1;
    F = (fanout){.o = o, .n = n};
    if (lg_loop_init(&l, o->port) != 0) return 1;
    lg_hist_init(&F.deliver);
    lg_hist_init(&F.send_rtt);
    lg_conn_init(&status, &l);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    F.s = lg_sess_alloc(&l, n, 0);
    if (lg_sess_create(&l, F.s, n, (size_t)o->setup_conns, end) != 0) {
        lg_warn("fanout: session creation failed");
        goto out;
    }
    int64_t t1 = lg_now_ns();
    F.running = 1;
    int ramp = lg_held_ramp(F.s, n, o->poll_timeout, 500, on_poll, &status, end, &held);
    int64_t t2 = lg_now_ns();
    printf("scenario=fanout\nsessions=%zu\nsenders=%d\ncreate_s=%.2f\nramp_s=%.2f\n", n, o->senders,
           (double)(t1 - t0) / LG_NS_PER_S, (double)(t2 - t1) / LG_NS_PER_S);
    printf("all_held=%d\nheld=%lld\n", ramp == 0, held);
    fflush(stdout);
    lg_loop_run(&l, NULL, NULL, lg_now_ns() + LG_NS_PER_S / 2); /* let it settle */
    double cpu0 = lg_cpu_seconds();
    lg_pool_run(&l, (size_t)o->senders, n, 30000, make_ping, done_ping, &F, end, &ps);
    /* Every pong should be there by the time the last send is answered;
     * allow 10 s more before counting the rest as lost. */
    int64_t wait_end = lg_now_ns() + 10 * LG_NS_PER_S;
    lg_loop_run(&l, all_delivered, &F, wait_end < end ? wait_end : end);
    int64_t t3 = lg_now_ns();
    double cpu = lg_cpu_seconds() - cpu0;
    double fan_ms = F.delivered ? (double)(F.t_last - ps.t_first) / LG_NS_PER_MS : 0;
    double sends_ms = (double)(ps.t_last - ps.t_first) / LG_NS_PER_MS;
    printf("delivered=%lld\nlost=%lld\nsends_ok=%zu\nsend_errors=%zu\npoll_errors=%lld\n"
           "early=%lld\n",
           F.delivered, (long long)n - F.delivered, ps.ok, ps.failed, F.errors, F.early);
    printf("fanout_ms=%.1f\nsends_ms=%.1f\nsends_per_s=%.0f\n", fan_ms, sends_ms,
           sends_ms > 0 ? ps.ok / (sends_ms / 1000) : 0);
    lg_hist_print(&F.deliver, "deliver");
    lg_hist_print(&F.send_rtt, "send");
    printf("loadgen_cpu_pct=%.0f\n", 100.0 * cpu / ((double)(t3 - t2) / LG_NS_PER_S));
    printf("# fanout %zu: %lld delivered %.0f ms after the first send (sends took %.0f ms, "
           "%.0f/s); per message p50 %lld us p99 %lld us; %zu send / %lld poll errors\n",
           n, F.delivered, fan_ms, sends_ms, sends_ms > 0 ? ps.ok / (sends_ms / 1000) : 0,
           (long long)lg_hist_pct(&F.deliver, 50), (long long)lg_hist_pct(&F.deliver, 99),
           ps.failed, F.errors);
    rc = ramp == 0 && F.delivered == (long long)n && ps.failed == 0 && F.errors == 0 ? 0 : 1;
    F.running = 0;
    if (!o->no_close)
        lg_sess_close(&l, F.s, n, (size_t)o->setup_conns, lg_now_ns() + 30 * LG_NS_PER_S);
out:
    lg_conn_free(&status);
    lg_sess_free(F.s, n);
    lg_hist_free(&F.deliver);
    lg_hist_free(&F.send_rtt);
    lg_loop_free(&l);
    return rc;
}
