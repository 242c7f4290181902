/* lg_idle: the cost of waiting. o->n sessions each keep one poll held
 * (timeout o->poll_timeout, put in again whenever one returns) for
 * o->duration seconds after all are held; prints "all_held=1" when the
 * server counts them all, so a caller can measure memory and CPU then. */
#include "lg_conn.h"
#include "lg_held.h"
#include "lg_loop.h"
#include "lg_rtc.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct idle {
    const lg_opts *o;
    int running;
    long long repolls, errors, answered;
} idle;

static idle I;

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    lg_sess *s = arg;
    (void)c;
    I.answered++;
    if (!I.running) return;
    if (status != 200) {
        if (I.errors++ < 3) lg_warn("idle: poll answered %d %.*s", status, (int)len, body);
        if (I.errors > 100) return; /* do not spin on a failing server */
    } else {
        lg_poll_read(s, body, len, NULL, NULL);
    }
    I.repolls++;
    if (lg_held_poll(s, I.o->poll_timeout, on_poll) != 0) I.errors++;
}

/* o->n sessions each holding a poll for o->duration seconds. */
int lg_run_idle(const lg_opts *o)
{
    lg_loop l;
    lg_sess *s = NULL;
    lg_conn status;
    size_t n = o->n > 0 ? (size_t)o->n : 1;
    long long held = 0, held_end = -1, sessions = -1;
    int rc = 1;
    I = (idle){.o = o};
    if (lg_loop_init(&l, o->port) != 0) return 1;
    lg_conn_init(&status, &l);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    s = lg_sess_alloc(&l, n, 0);
    if (lg_sess_create(&l, s, n, (size_t)o->setup_conns, end) != 0) {
        lg_warn("idle: session creation failed");
        goto out;
    }
    int64_t t1 = lg_now_ns();
    I.running = 1;
    int ramp = lg_held_ramp(s, n, o->poll_timeout, 500, on_poll, &status, end, &held);
    int64_t t2 = lg_now_ns();
    printf("scenario=idle\nsessions=%zu\ncreate_s=%.2f\nramp_s=%.2f\n", n,
           (double)(t1 - t0) / LG_NS_PER_S, (double)(t2 - t1) / LG_NS_PER_S);
    printf("all_held=%d\nheld=%lld\n", ramp == 0, held);
    printf("# idle: %lld of %zu polls held after %.1f s; holding for %.0f s\n", held, n,
           (double)(t2 - t1) / LG_NS_PER_S, o->duration);
    fflush(stdout);
    double cpu0 = lg_cpu_seconds();
    int64_t hold_end = t2 + (int64_t)(o->duration * LG_NS_PER_S);
    lg_loop_run(&l, NULL, NULL, hold_end < end ? hold_end : end);
    double secs = (double)(lg_now_ns() - t2) / LG_NS_PER_S;
    double cpu = lg_cpu_seconds() - cpu0;
    lg_status(&status, &held_end, &sessions, lg_now_ns() + 10 * LG_NS_PER_S);
    I.running = 0;
    printf("hold_s=%.2f\nheld_end=%lld\nserver_sessions=%lld\nrepolls=%lld\npoll_errors=%lld\n",
           secs, held_end, sessions, I.repolls, I.errors);
    printf("loadgen_cpu_pct=%.1f\n", secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# idle: held %lld at the end, %lld polls put in again, %lld errors\n", held_end,
           I.repolls, I.errors);
    rc = ramp == 0 && I.errors == 0 ? 0 : 1;
    if (!o->no_close) {
        int64_t tc = lg_now_ns();
        lg_sess_close(&l, s, n, (size_t)o->setup_conns, lg_now_ns() + 30 * LG_NS_PER_S);
        printf("close_s=%.2f\n", (double)(lg_now_ns() - tc) / LG_NS_PER_S);
    }
out:
    lg_conn_free(&status);
    lg_sess_free(s, n);
    lg_loop_free(&l);
    return rc;
}
