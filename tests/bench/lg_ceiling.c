/* lg_ceiling: the plain request-rate scenario: o->conns keep-alive
 * connections each sending GET o->url back to back; after a warm-up,
 * counts answers and times each round trip for o->duration seconds (or
 * o->max_requests requests). */
#include "lg_conn.h"
#include "lg_hist.h"
#include "lg_loop.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct ceiling {
    const lg_opts *o;
    lg_conn *conns;
    lg_hist rtt;
    int64_t t_measure; /* end of the warm-up */
    int64_t t_stop;    /* no new request after this */
    long long issued, ok, errors, non200, inflight;
    int measuring;
} ceiling;

static void on_answer(lg_conn *c, int status, const char *body, size_t len, void *arg);

static void issue(ceiling *cl, lg_conn *c)
{
    int64_t now = lg_now_ns();
    if (now >= cl->t_stop) return;
    if (cl->o->max_requests && cl->issued >= cl->o->max_requests) return;
    if (lg_conn_request(c, "GET", cl->o->url, NULL, 0, 10000, on_answer, cl) != 0) {
        cl->errors++;
        return;
    }
    cl->inflight++;
    if (cl->measuring) cl->issued++;
}

static void on_answer(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    ceiling *cl = arg;
    (void)body;
    (void)len;
    cl->inflight--;
    if (!cl->measuring && c->t_start >= cl->t_measure) cl->measuring = 1;
    if (cl->measuring && c->t_start >= cl->t_measure) {
        if (status == 200) {
            cl->ok++;
            lg_hist_add(&cl->rtt, c->t_end - c->t_start);
        } else if (status > 0) {
            cl->non200++;
        } else {
            cl->errors++;
        }
    }
    issue(cl, c);
}

static int drained(void *arg)
{
    ceiling *cl = arg;
    return cl->inflight == 0;
}

/* N connections GET o->url for o->duration seconds. */
int lg_run_ceiling(const lg_opts *o)
{
    ceiling cl = {.o = o};
    lg_loop l;
    int rc = 1;
    size_t n = o->conns > 0 ? (size_t)o->conns : 1;
    if (lg_loop_init(&l, o->port) != 0) return 1;
    lg_hist_init(&cl.rtt);
    cl.conns = lg_xcalloc(n, sizeof *cl.conns);
    for (size_t i = 0; i < n; i++)
        lg_conn_init(&cl.conns[i], &l);
    int64_t t0 = lg_now_ns();
    cl.t_measure = t0 + (int64_t)(o->warmup * LG_NS_PER_S);
    cl.t_stop = cl.t_measure + (int64_t)(o->duration * LG_NS_PER_S);
    cl.measuring = o->warmup <= 0;
    double cpu0 = lg_cpu_seconds();
    for (size_t i = 0; i < n; i++)
        issue(&cl, &cl.conns[i]);
    lg_loop_run(&l, drained, &cl, cl.t_stop + 11 * LG_NS_PER_S);
    int64_t t_end = lg_now_ns();
    double cpu = lg_cpu_seconds() - cpu0;
    double secs = (double)(t_end - (cl.measuring ? cl.t_measure : t0)) / LG_NS_PER_S;
    if (secs > o->duration && !o->max_requests) secs = o->duration;
    if (secs <= 0) secs = 1e-9;
    printf("scenario=ceiling\nurl=%s\nconns=%zu\nduration_s=%.2f\n", o->url, n, secs);
    printf("requests=%lld\nerrors=%lld\nnon200=%lld\n", cl.ok, cl.errors, cl.non200);
    printf("rps=%.0f\n", (double)cl.ok / secs);
    lg_hist_print(&cl.rtt, "rtt");
    printf("loadgen_cpu_pct=%.0f\n", 100.0 * cpu / ((double)(t_end - t0) / LG_NS_PER_S));
    printf("# ceiling %s: %zu conns, %.0f req/s, round trip p50 %lld us p99 %lld us, "
           "%lld errors, %lld non-200\n",
           o->url, n, (double)cl.ok / secs, (long long)lg_hist_pct(&cl.rtt, 50),
           (long long)lg_hist_pct(&cl.rtt, 99), cl.errors, cl.non200);
    rc = cl.ok > 0 && cl.errors == 0 && cl.non200 == 0 ? 0 : 1;
    for (size_t i = 0; i < n; i++)
        lg_conn_free(&cl.conns[i]);
    free(cl.conns);
    lg_hist_free(&cl.rtt);
    lg_loop_free(&l);
    return rc;
}
