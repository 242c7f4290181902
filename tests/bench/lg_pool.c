/* lg_pool: keeps nconns connections busy with a queue of independent
 * requests: as each answer arrives the next item goes out on the same
 * connection. Items that the caller wants again are queued at the end. */
#include "lg_pool.h"

#include "lg_util.h"

#include <stdlib.h>
#include <string.h>

typedef struct pool {
    lg_conn *conns;
    size_t *item; /* item in flight on each connection */
    size_t nconns;
    size_t nitems, next, ended;
    size_t *again; /* items to send again */
    size_t nagain, again_cap;
    unsigned char *tries;
    int timeout_ms;
    int stopping;
    lg_pool_make_fn make;
    lg_pool_done_fn done;
    void *arg;
    lg_pool_stats *st;
} pool;

static void on_done(lg_conn *c, int status, const char *body, size_t len, void *arg);

/* Puts the next item on connection k; items that cannot start end failed. */
static void feed(pool *p, size_t k)
{
    lg_req req;
    while (!p->stopping) {
        size_t i;
        if (p->nagain)
            i = p->again[--p->nagain];
        else if (p->next < p->nitems)
            i = p->next++;
        else
            return;
        memset(&req, 0, sizeof req);
        req.method = "GET";
        if (p->make(p->arg, i, &req) == 0) {
            p->item[k] = i;
            if (!p->st->t_first) p->st->t_first = lg_now_ns();
            if (lg_conn_request(&p->conns[k], req.method, req.path, req.has_body ? req.body : NULL,
                                req.body_len, p->timeout_ms, on_done, p) == 0)
                return;
        }
        p->st->failed++;
        p->ended++;
    }
}

static void on_done(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    pool *p = arg;
    size_t k = (size_t)(c - p->conns);
    size_t i = p->item[k];
    int again = p->done ? p->done(p->arg, i, status, body, len, c) : 0;
    p->st->t_last = c->t_end;
    if (again && !p->stopping && p->tries[i] < 3) {
        p->tries[i]++;
        p->st->retries++;
        if (p->nagain == p->again_cap) {
            p->again_cap = p->again_cap ? p->again_cap * 2 : 64;
            p->again = lg_xrealloc(p->again, p->again_cap * sizeof *p->again);
        }
        p->again[p->nagain++] = i;
    } else {
        if (status >= 200 && status < 300)
            p->st->ok++;
        else
            p->st->failed++;
        p->ended++;
    }
    feed(p, k);
}

static int all_ended(void *arg)
{
    pool *p = arg;
    return p->ended >= p->nitems;
}

/* Sends every item; see lg_pool.h. */
int lg_pool_run(lg_loop *l, size_t nconns, size_t nitems, int timeout_ms, lg_pool_make_fn make,
                lg_pool_done_fn done, void *arg, int64_t deadline_ns, lg_pool_stats *st)
{
    pool p = {0};
    memset(st, 0, sizeof *st);
    if (nconns > nitems) nconns = nitems;
    if (nconns == 0) {
        st->finished = 1;
        return 0;
    }
    p.conns = lg_xcalloc(nconns, sizeof *p.conns);
    p.item = lg_xcalloc(nconns, sizeof *p.item);
    p.tries = lg_xcalloc(nitems, 1);
    p.nconns = nconns;
    p.nitems = nitems;
    p.timeout_ms = timeout_ms;
    p.make = make;
    p.done = done;
    p.arg = arg;
    p.st = st;
    for (size_t k = 0; k < nconns; k++)
        lg_conn_init(&p.conns[k], l);
    for (size_t k = 0; k < nconns; k++)
        feed(&p, k);
    st->finished = lg_loop_run(l, all_ended, &p, deadline_ns);
    p.stopping = 1;
    for (size_t k = 0; k < nconns; k++) {
        lg_conn_close(&p.conns[k]); /* fails what is still in flight */
        lg_conn_free(&p.conns[k]);
    }
    if (p.ended < p.nitems) st->failed += p.nitems - p.ended; /* never sent */
    free(p.conns);
    free(p.item);
    free(p.tries);
    free(p.again);
    return st->finished && st->failed == 0 ? 0 : -1;
}
