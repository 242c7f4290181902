/* lg_callsetup: whole call set-ups back to back, the way the browser library
 * makes them. P pairs, registered once; per set-up the caller sends `call`
 * with a 2.5 KB sdpOffer and trickles 10 candidates, the callee answers
 * incomingCall with an accept (a 2.5 KB answer) and 10 candidates, the
 * caller ends with `stop` once it has the answer and the candidates. Each
 * side is a small LongPollSocket (www/js/longpoll-socket.js): what the
 * application queues in one turn of the loop leaves together at its end (-I:
 * the first message at once, alone, as the library did before), one batch
 * in flight, what is queued meanwhile leaves together; in exchange mode (-x)
 * a batch is an exchange (the poll too) and a batch queued while it is held
 * leaves with prev= its id once the messages queued with it have joined
 * it: -X MS after it was due (as LongPollSocket's SECOND_AFTER: 0, the
 * next turn of the loop; 409 out_of_order: again 1 ms later, doubling).
 * Measures completed set-ups/s, set-up latency (call queued -> the last
 * message either side needs) and HTTP requests per set-up. Owns no wire
 * helpers (lg_rtc.c) and no other scenario. */
#include "lg_hist.h"
#include "lg_json.h"
#include "lg_rtc.h"
#include "lg_util.h"
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CS_CANDS 10 /* candidates each way per set-up */
#define CS_SDP 2500 /* bytes of each description */
#define CS_MAXQ 32  /* messages a side may have queued */
#define CS_SLOTS 3  /* batch requests a side may have out (first, second, settled) */
#define CS_STALL_NS (5 * LG_NS_PER_S)  /* a set-up not done by then stops its pair */
#define CS_RETRY_NS (1 * LG_NS_PER_MS) /* first retry of a 409 second batch (doubling) */
#define CS_ERR_RETRY_NS (20 * LG_NS_PER_MS)

enum { K_POLL, K_SEND, K_EXCHANGE, K_KINDS };

struct cs_side;

typedef struct cs_batch {
    struct cs_side *side;
    lg_conn conn;
    int active;   /* holds a batch (the first or the second) */
    int out;      /* its request is out */
    int exchange; /* sent as an exchange */
    int retries;
    int64_t t_sent; /* when its request was last written */
    char id[24];
    char prev[24]; /* the first's id (a second batch), or empty */
    char *body;
    size_t len, cap;
} cs_batch;

typedef struct cs_side {
    lg_sess *s;
    struct cs_pair *pair;
    int caller;
    char *queue[CS_MAXQ];
    size_t qlen[CS_MAXQ];
    int nq;
    cs_batch slot[CS_SLOTS];
    cs_batch *first, *second;
    int64_t retry_at; /* a timer: resend *retry (0: none) */
    cs_batch *retry;
    int64_t poll_at;   /* a timer: poll again (0: none) */
    int64_t second_at; /* a timer: send the second batch (-X; 0: none) */
    int64_t first_at;  /* a timer: send what the application queued (the end of this turn) */
    int second_due;    /* it fired: the second batch may leave */
    long batch_no;
    /* this set-up */
    int got_call, got_cands, got_stop, sent_stop;
} cs_side;

typedef struct cs_pair {
    cs_side a, b;
    int active;  /* a set-up is under way */
    int stopped; /* stalled: no more set-ups */
    int64_t t_call, t_last;
    long long req[K_KINDS]; /* requests of this set-up so far */
} cs_pair;

typedef struct cs_run {
    const lg_opts *o;
    lg_loop *loop;
    int running;  /* requests continue */
    int starting; /* new set-ups start */
    int64_t t_stop;
    long long inflight;
    cs_pair *p;
    size_t np;
    lg_hist latency;
    long long done, req[K_KINDS], out_of_order, out_of_order_promoted, errors, bad, stalled, other;
    long long in_window_after; /* set-ups completed after the window (not counted) */
    char sdp[CS_SDP + 1];
} cs_run;

static cs_run R;

static void pump(cs_side *d);
static void do_poll(cs_side *d);

/* LG_TRACE=N: the requests and answers of set-up N of pair 0 on stderr
 * (when each went out and came back, from its `call`), to see where a
 * set-up's time goes. */
static long trace_setup = -1;
static long setups_of_pair0;

static int tracing(const cs_side *d)
{
    return trace_setup >= 0 && d->pair == &R.p[0] && setups_of_pair0 == trace_setup;
}

static void trace(const cs_side *d, const char *what, const char *id, int status)
{
    if (!tracing(d)) return;
    lg_warn("trace %7.3f ms %s %s %s %d", (double)(lg_now_ns() - d->pair->t_call) / 1e6,
            d->caller ? "caller" : "callee", what, id ? id : "", status);
}

static void count_req(cs_side *d, int kind)
{
    d->pair->req[kind]++;
}

/* Queues one message (copied) and sends what can leave. */
static void queue_msg(cs_side *d, const char *m, size_t len)
{
    if (d->nq == CS_MAXQ) {
        if (R.errors++ < 3) lg_warn("callsetup: queue full");
        return;
    }
    d->queue[d->nq] = lg_xmalloc(len + 1);
    memcpy(d->queue[d->nq], m, len + 1);
    d->qlen[d->nq++] = len;
}

static void queue_candidates(cs_side *d)
{
    char m[320];
    for (int k = 0; k < CS_CANDS; k++) {
        int n = snprintf(m, sizeof m,
                         "{\"id\":\"onIceCandidate\",\"candidate\":{\"candidate\":\"candidate:%d "
                         "1 udp 2122260223 192.0.2.%d %d typ host generation 0 ufrag lgXy "
                         "network-id 1 network-cost 10\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,"
                         "\"usernameFragment\":\"lgXy\"}}",
                         842163049 + k, 10 + k, 50000 + k);
        queue_msg(d, m, (size_t)n);
    }
}

/* A free slot (no batch, no request out), or NULL. */
static cs_batch *free_slot(cs_side *d)
{
    for (int i = 0; i < CS_SLOTS; i++)
        if (!d->slot[i].active && !d->slot[i].out && !d->slot[i].conn.busy) return &d->slot[i];
    return NULL;
}

/* Moves what is queued into b as one batch (a JSON array) with a new id. */
static void take_batch(cs_side *d, cs_batch *b)
{
    size_t need = 2;
    for (int i = 0; i < d->nq; i++)
        need += d->qlen[i] + 1;
    if (b->cap < need + 1) {
        b->cap = need + 1;
        b->body = lg_xrealloc(b->body, b->cap);
    }
    size_t off = 0;
    b->body[off++] = '[';
    for (int i = 0; i < d->nq; i++) {
        if (i) b->body[off++] = ',';
        memcpy(b->body + off, d->queue[i], d->qlen[i]);
        off += d->qlen[i];
        free(d->queue[i]);
    }
    b->body[off++] = ']';
    b->body[off] = 0;
    b->len = off;
    d->nq = 0;
    snprintf(b->id, sizeof b->id, "c%ld", ++d->batch_no);
    b->prev[0] = 0;
    b->active = 1;
    b->retries = 0;
}

static void on_batch(lg_conn *c, int status, const char *body, size_t len, void *arg);

/* Posts batch b: an exchange (with the cursor and timeout) in exchange
 * mode, else a plain send. */
static void post(cs_side *d, cs_batch *b)
{
    char path[384];
    int n = snprintf(path, sizeof path, "/rtc/send?sid=%s&batch=%s", d->s->sid, b->id);
    if (b->prev[0]) n += snprintf(path + n, sizeof path - (size_t)n, "&prev=%s", b->prev);
    b->exchange = R.o->exchange;
    if (b->exchange)
        snprintf(path + n, sizeof path - (size_t)n, "&after=%lld&timeout=%d", d->s->seq,
                 R.o->poll_timeout);
    int timeout_ms = b->exchange ? (R.o->poll_timeout + 10) * 1000 : 10000;
    if (lg_conn_request(&b->conn, "POST", path, b->body, b->len, timeout_ms, on_batch, b) != 0) {
        if (R.errors++ < 3) lg_warn("callsetup: could not send");
        return;
    }
    b->out = 1;
    b->t_sent = lg_now_ns();
    trace(d, b->exchange ? (b->prev[0] ? "exchange+prev ->" : "exchange ->") : "send ->", b->id, 0);
    R.inflight++;
    count_req(d, b->exchange ? K_EXCHANGE : K_SEND);
}

/* Sends what is queued (the application's turn that queued it is over:
 * app_send): as the first batch when none is in flight; while the first is
 * an exchange out, as the second with prev= the first's id, -X ms after it
 * was due (the next turn of the loop for -X 0: what is queued in the same
 * turn joins it). */
static void pump(cs_side *d)
{
    if (!R.running || !d->nq) return;
    cs_batch *b;
    if (!d->first) {
        if (!(b = free_slot(d))) return; /* a settled request still out: its answer pumps */
        d->second_due = 0;
        take_batch(d, b);
        d->first = b;
        post(d, b);
        return;
    }
    if (d->second || !d->first->exchange || !d->first->out || d->second_at) return;
    if (!d->second_due) { /* LongPollSocket's SECOND_AFTER: what is queued with it joins */
        d->second_at = lg_now_ns() + (int64_t)R.o->second_after_ms * LG_NS_PER_MS;
        R.loop->stop = 1;
        return;
    }
    if (!(b = free_slot(d))) return;
    d->second_due = 0;
    take_batch(d, b);
    snprintf(b->prev, sizeof b->prev, "%s", d->first->id);
    d->second = b;
    post(d, b);
}

/* The application queued messages (LongPollSocket.send): with no batch in
 * flight they leave at the end of this turn, together with whatever else it
 * queues in it (LongPollSocket: a microtask); with -I at once, alone (the
 * library before it gathered a task's sends). Otherwise as pump() says. */
static void app_send(cs_side *d)
{
    if (!d->first && !R.o->first_at_once) {
        if (!d->first_at) {
            d->first_at = lg_now_ns();
            R.loop->stop = 1;
        }
        return;
    }
    pump(d);
}

/* An exchange of ours is out: it is the poll. */
static int exchange_out(const cs_side *d)
{
    return (d->first && d->first->exchange && d->first->out) ||
           (d->second && d->second->exchange && d->second->out);
}

static void setup_done(cs_pair *p);

/* One message of an answer: what the application does with it. */
static void handle(cs_side *d, const char *m, size_t len)
{
    cs_pair *p = d->pair;
    if (lgj_str_is(m, len, "id", "iceCandidate")) {
        d->got_cands++;
    } else if (!d->caller && lgj_str_is(m, len, "id", "incomingCall")) {
        char msg[CS_SDP + 256];
        d->got_call++;
        int n = snprintf(msg, sizeof msg,
                         "{\"id\":\"incomingCallResponse\",\"from\":\"%s\","
                         "\"callResponse\":\"accept\",\"sdpOffer\":\"%s\"}",
                         p->a.s->name, R.sdp);
        queue_msg(d, msg, (size_t)n);
        app_send(d);
        queue_candidates(d);
        app_send(d);
    } else if (d->caller && lgj_str_is(m, len, "id", "callResponse")) {
        if (lgj_str_is(m, len, "response", "accepted")) {
            d->got_call++;
        } else if (R.bad++ < 3) {
            lg_warn("callsetup: call refused: %.*s", (int)(len > 300 ? 300 : len), m);
        }
    } else if (!d->caller && lgj_str_is(m, len, "id", "stopCommunication")) {
        d->got_stop++;
    } else if ((!d->caller && lgj_str_is(m, len, "id", "startCommunication")) ||
               lgj_str_is(m, len, "id", "registerResponse")) {
        /* the reply to its own accept; to the registration */
    } else {
        if (R.other++ < 3) lg_warn("callsetup: unexpected %.*s", (int)(len > 300 ? 300 : len), m);
    }
    if (d->caller && d->got_call && d->got_cands >= CS_CANDS && !d->sent_stop) {
        d->sent_stop = 1;
        queue_msg(d, "{\"id\":\"stop\"}", 13);
        app_send(d);
    }
    if (p->active && p->a.got_call && p->a.got_cands >= CS_CANDS && p->b.got_call &&
        p->b.got_cands >= CS_CANDS && p->b.got_stop)
        setup_done(p);
}

typedef struct deliver_ctx {
    cs_side *d;
    int64_t t;
    int n;
} deliver_ctx;

static void deliver_one(const char *m, size_t len, void *arg)
{
    deliver_ctx *x = arg;
    long long seq;
    if (lgj_int(m, len, "seq", &seq) != 0) {
        R.bad++;
        return;
    }
    if (seq <= x->d->s->seq) return; /* seen already: dropped, as LongPollSocket does */
    x->d->s->seq = seq;
    x->n++;
    x->d->pair->t_last = x->t;
    if (tracing(x->d)) {
        char id[40] = "";
        lgj_str(m, len, "id", id, sizeof id);
        trace(x->d, "  got", id, (int)seq);
    }
    handle(x->d, m, len);
}

/* Takes a poll's or an exchange's answer: each message not seen before, in
 * order. */
static void deliver(cs_side *d, const lg_conn *c, const char *body, size_t len)
{
    deliver_ctx x = {.d = d, .t = c->t_end};
    if (lgj_each(body, len, "messages", deliver_one, &x) < 0 && R.bad++ < 3)
        lg_warn("callsetup: not a poll answer: %.*s", (int)(len > 200 ? 200 : len), body);
}

static void on_batch(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    cs_batch *b = arg;
    cs_side *d = b->side;
    R.inflight--;
    b->out = 0;
    trace(d,
          b == d->first    ? "<- first"
          : b == d->second ? "<- second"
                           : "<- settled",
          b->id, status);
    if (!R.running) {
        b->active = 0;
        return;
    }
    if (b != d->first && b != d->second) {
        /* settled by the second's answer: its messages are still news */
        if (status == 200 && b->exchange) deliver(d, c, body, len);
        pump(d);
        return;
    }
    if (status != 200) {
        if (status == 409) {
            /* out_of_order: the first was not stored yet when the second
             * came. Also when the first was answered meanwhile and the
             * second took its place (LongPollSocket then backs off as for
             * a lost answer, 0.25-0.5 s: counted apart) */
            R.out_of_order++;
            if (b == d->first) R.out_of_order_promoted++;
        } else if (R.errors++ < 3) {
            lg_warn("callsetup: %s answered %d %.*s", b->exchange ? "exchange" : "send", status,
                    (int)(len > 200 ? 200 : len), body);
        }
        if (b->exchange) do_poll(d);
        int64_t wait =
            status == 409 ? CS_RETRY_NS << (b->retries < 6 ? b->retries : 6) : CS_ERR_RETRY_NS;
        b->retries++;
        d->retry = b;
        d->retry_at = lg_now_ns() + wait;
        R.loop->stop = 1; /* the loop's deadline was set before this timer */
        return;
    }
    if (b == d->second) {
        /* stored after the first: the first is stored too */
        b->active = 0;
        if (d->first) d->first->active = 0; /* its answer, if still out, is settled */
        d->first = d->second = NULL;
    } else {
        b->active = 0;
        d->first = d->second;
        d->second = NULL; /* the second, if any, is the first now (still after b) */
    }
    if (b->exchange) deliver(d, c, body, len);
    if (!R.running) return;
    if (d->first) {
        pump(d);
        return;
    }
    if (d->nq)
        pump(d);
    else
        do_poll(d);
}

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    cs_side *d = arg;
    R.inflight--;
    trace(d, "<- poll", NULL, status);
    if (!R.running) return;
    if (status != 200) {
        if (R.errors++ < 3)
            lg_warn("callsetup: poll answered %d %.*s", status, (int)(len > 200 ? 200 : len), body);
        d->poll_at = lg_now_ns() + CS_ERR_RETRY_NS;
        R.loop->stop = 1;
        return;
    }
    deliver(d, c, body, len);
    do_poll(d);
}

/* Polls unless a poll or an exchange of d is out. */
static void do_poll(cs_side *d)
{
    char path[256];
    if (!R.running || d->s->poll.busy || exchange_out(d)) return;
    if (R.o->exchange && d->first_at) return; /* a batch leaves this turn: the poll too */
    lg_poll_path(d->s, R.o->poll_timeout, path, sizeof path);
    if (lg_conn_request(&d->s->poll, "GET", path, NULL, 0, (R.o->poll_timeout + 10) * 1000, on_poll,
                        d) != 0) {
        if (R.errors++ < 3) lg_warn("callsetup: could not poll");
        return;
    }
    R.inflight++;
    count_req(d, K_POLL);
    trace(d, "poll ->", NULL, 0);
}

/* Starts a set-up: the caller queues `call` and, right after, its 10
 * candidates. */
static void setup_start(cs_pair *p)
{
    char msg[CS_SDP + 256];
    p->active = 1;
    p->t_call = p->t_last = lg_now_ns();
    p->a.got_call = p->a.got_cands = p->a.got_stop = p->a.sent_stop = 0;
    p->b.got_call = p->b.got_cands = p->b.got_stop = p->b.sent_stop = 0;
    int n = snprintf(msg, sizeof msg,
                     "{\"id\":\"call\",\"from\":\"%s\",\"to\":\"%s\",\"sdpOffer\":\"%s\"}",
                     p->a.s->name, p->b.s->name, R.sdp);
    queue_msg(&p->a, msg, (size_t)n);
    app_send(&p->a);
    queue_candidates(&p->a);
    app_send(&p->a);
}

/* Both sides have everything: counted (when within the window), and the
 * next set-up starts. */
static void setup_done(cs_pair *p)
{
    p->active = 0;
    if (p == &R.p[0]) {
        if (tracing(&p->a)) lg_warn("trace %7.3f ms done", (double)(p->t_last - p->t_call) / 1e6);
        setups_of_pair0++;
    }
    if (p->t_last < R.t_stop) {
        R.done++;
        lg_hist_add(&R.latency, p->t_last - p->t_call);
        for (int k = 0; k < K_KINDS; k++)
            R.req[k] += p->req[k];
    } else {
        R.in_window_after++;
    }
    for (int k = 0; k < K_KINDS; k++)
        p->req[k] = 0;
    if (R.starting && lg_now_ns() < R.t_stop) setup_start(p);
}

/* Says what a stalled side has out and queued (stderr). */
static void side_state(const cs_side *d, const char *who)
{
    lg_warn("  %s: cursor %lld, %d queued, poll %s, first %s%s%s, second %s%s%s, retry %s, "
            "second timer %s",
            who, d->s->seq, d->nq, d->s->poll.busy ? "out" : "-", d->first ? d->first->id : "-",
            d->first && d->first->out ? " (out)" : "",
            d->first && d->first->exchange ? " (exchange)" : "", d->second ? d->second->id : "-",
            d->second && d->second->out ? " (out)" : "",
            d->second && d->second->prev[0] ? " (prev)" : "", d->retry_at ? "set" : "-",
            d->second_at ? "set" : "-");
}

/* Fires due timers (resends, polls again) and stops stalled pairs;
 * returns when the next timer is due (at most 10 ms on). */
static int64_t timers(int64_t now)
{
    int64_t next = now + 10 * LG_NS_PER_MS;
    for (size_t i = 0; i < R.np; i++) {
        cs_pair *p = &R.p[i];
        if (p->active && !p->stopped && now - p->t_call > CS_STALL_NS) {
            p->stopped = 1;
            p->active = 0;
            if (R.stalled++ < 3)
                lg_warn("callsetup: pair %zu: set-up not done after %lld s (caller: call %d, "
                        "candidates %d; callee: call %d, candidates %d, stop %d)",
                        i, CS_STALL_NS / LG_NS_PER_S, p->a.got_call, p->a.got_cands, p->b.got_call,
                        p->b.got_cands, p->b.got_stop);
            if (R.stalled <= 3) {
                side_state(&p->a, "caller");
                side_state(&p->b, "callee");
            }
        }
        cs_side *sides[2] = {&p->a, &p->b};
        for (int k = 0; k < 2; k++) {
            cs_side *d = sides[k];
            if (d->retry_at && d->retry_at <= now) {
                cs_batch *b = d->retry;
                d->retry_at = 0;
                d->retry = NULL;
                if (b && b->active && (b == d->first || b == d->second)) {
                    post(d, b);
                    /* What was queued meanwhile follows it now (LongPollSocket
                     * does not: it waits for this one's answer -- a held
                     * exchange, up to the hold -- see the report). */
                    pump(d);
                }
            }
            if (d->poll_at && d->poll_at <= now) {
                d->poll_at = 0;
                do_poll(d);
            }
            if (d->first_at && d->first_at <= now) {
                d->first_at = 0;
                pump(d);
                do_poll(d);
            }
            if (d->second_at && d->second_at <= now) {
                d->second_at = 0;
                d->second_due = 1;
                pump(d);
            }
            if (d->second_at && d->second_at < next) next = d->second_at;
            if (d->first_at && d->first_at < next) next = d->first_at;
            if (d->retry_at && d->retry_at < next) next = d->retry_at;
            if (d->poll_at && d->poll_at < next) next = d->poll_at;
        }
    }
    return next;
}

static int drained(void *arg)
{
    (void)arg;
    return R.inflight == 0;
}

static void on_end(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    (void)c, (void)status, (void)body, (void)len, (void)arg;
    R.inflight--;
}

static int all_idle(void)
{
    for (size_t i = 0; i < R.np; i++)
        if (R.p[i].active && !R.p[i].stopped) return 0;
    return 1;
}

/* o->n pairs setting up calls back to back for o->duration seconds. */
int lg_run_callsetup(const lg_opts *o)
{
    lg_loop l;
    size_t np = o->n > 0 ? (size_t)o->n : 1, ns = 2 * np;
    lg_sess *s = NULL;
    int rc = 1;
    if (lg_loop_init(&l, o->port) != 0) return 1;
    R = (cs_run){.o = o, .loop = &l, .np = np};
    const char *tr = getenv("LG_TRACE");
    trace_setup = tr ? atol(tr) : -1;
    setups_of_pair0 = 0;
    lg_hist_init(&R.latency);
    for (size_t i = 0; i < CS_SDP; i++)
        R.sdp[i] = (char)(i % 64 == 63 ? ' ' : 'a' + (char)(i % 26));
    R.sdp[CS_SDP] = 0;
    R.p = lg_xcalloc(np, sizeof *R.p);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    s = lg_sess_alloc(&l, ns, 0);
    for (size_t i = 0; i < np; i++) {
        cs_side *sides[2] = {&R.p[i].a, &R.p[i].b};
        for (int k = 0; k < 2; k++) {
            cs_side *d = sides[k];
            d->s = &s[2 * i + (size_t)k];
            d->pair = &R.p[i];
            d->caller = k == 0;
            for (int j = 0; j < CS_SLOTS; j++) {
                lg_conn_init(&d->slot[j].conn, &l);
                d->slot[j].side = d;
            }
        }
    }
    size_t setup = (size_t)o->setup_conns;
    if (lg_sess_create(&l, s, ns, setup, end) != 0 ||
        lg_sess_register(&l, s, np, setup, end) != 0) {
        lg_warn("callsetup: setup failed");
        goto out;
    }
    double cpu0 = lg_cpu_seconds();
    R.running = R.starting = 1;
    int64_t t_start = lg_now_ns();
    R.t_stop = t_start + (int64_t)(o->duration * LG_NS_PER_S);
    if (R.t_stop > end) R.t_stop = end;
    for (size_t i = 0; i < np; i++) {
        do_poll(&R.p[i].a);
        do_poll(&R.p[i].b);
    }
    for (size_t i = 0; i < np; i++)
        setup_start(&R.p[i]);
    int64_t now;
    while ((now = lg_now_ns()) < R.t_stop) {
        int64_t next = timers(now);
        lg_loop_run(&l, NULL, NULL, next < R.t_stop ? next : R.t_stop);
    }
    double secs = (double)(lg_now_ns() - t_start) / LG_NS_PER_S;
    double cpu = lg_cpu_seconds() - cpu0;
    /* no new set-ups; those under way finish (at most 5 s more) */
    R.starting = 0;
    int64_t bound = lg_now_ns() + CS_STALL_NS;
    while ((now = lg_now_ns()) < bound && now < end && !all_idle()) {
        int64_t next = timers(now);
        lg_loop_run(&l, NULL, NULL, next < bound ? next : bound);
    }
    /* end every held poll and exchange: a poll with timeout=0 of the same
     * session answers it at once */
    R.running = 0;
    for (size_t i = 0; i < ns; i++) {
        cs_side *d = i % 2 ? &R.p[i / 2].b : &R.p[i / 2].a;
        lg_conn *idle = !s[i].poll.busy ? &s[i].poll : NULL;
        for (int j = 0; j < CS_SLOTS && !idle; j++)
            if (!d->slot[j].conn.busy) idle = &d->slot[j].conn;
        char path[256];
        lg_poll_path(&s[i], 0, path, sizeof path);
        if (idle && lg_conn_request(idle, "GET", path, NULL, 0, 5000, on_end, NULL) == 0)
            R.inflight++;
    }
    lg_loop_run(&l, drained, NULL, lg_now_ns() + 3 * LG_NS_PER_S);
    long long reqs = R.req[K_POLL] + R.req[K_SEND] + R.req[K_EXCHANGE];
    double per = R.done ? (double)reqs / (double)R.done : 0;
    const char *mode = o->exchange ? "exchange" : "two-request";
    printf("scenario=callsetup\nmode=%s\npairs=%zu\nduration_s=%.2f\n", mode, np, secs);
    printf("setups=%lld\nsetups_per_s=%.1f\n", R.done, secs > 0 ? R.done / secs : 0);
    lg_hist_print(&R.latency, "setup");
    printf("requests_per_setup=%.2f\npolls_per_setup=%.2f\nsends_per_setup=%.2f\n"
           "exchanges_per_setup=%.2f\n",
           per, R.done ? (double)R.req[K_POLL] / R.done : 0,
           R.done ? (double)R.req[K_SEND] / R.done : 0,
           R.done ? (double)R.req[K_EXCHANGE] / R.done : 0);
    printf("out_of_order_promoted=%lld\n", R.out_of_order_promoted);
    printf("out_of_order=%lld\nerrors=%lld\nbad_answers=%lld\nunexpected=%lld\nstalled=%lld\n",
           R.out_of_order, R.errors, R.bad, R.other, R.stalled);
    printf("finished_after_window=%lld\n", R.in_window_after);
    printf("loadgen_cpu_pct=%.0f\n", secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# callsetup %zu (%s): %.1f set-ups/s (%lld in %.1f s), set-up p50 %.2f ms p99 %.2f "
           "ms, %.2f requests each (%.2f polls, %.2f sends, %.2f exchanges), %lld out_of_order "
           "retries, %lld errors, %lld stalled\n",
           np, mode, secs > 0 ? R.done / secs : 0, R.done, secs,
           (double)lg_hist_pct(&R.latency, 50) / 1000, (double)lg_hist_pct(&R.latency, 99) / 1000,
           per, R.done ? (double)R.req[K_POLL] / R.done : 0,
           R.done ? (double)R.req[K_SEND] / R.done : 0,
           R.done ? (double)R.req[K_EXCHANGE] / R.done : 0, R.out_of_order, R.errors, R.stalled);
    rc = R.done > 0 && R.errors == 0 && R.bad == 0 && R.other == 0 && R.stalled == 0 ? 0 : 1;
    if (!o->no_close) lg_sess_close(&l, s, ns, setup, lg_now_ns() + 30 * LG_NS_PER_S);
out:
    for (size_t i = 0; i < np; i++) {
        cs_side *sides[2] = {&R.p[i].a, &R.p[i].b};
        for (int k = 0; k < 2; k++) {
            for (int j = 0; j < CS_SLOTS; j++) {
                lg_conn_free(&sides[k]->slot[j].conn);
                free(sides[k]->slot[j].body);
            }
            for (int j = 0; j < sides[k]->nq; j++)
                free(sides[k]->queue[j]);
        }
    }
    free(R.p);
    lg_sess_free(s, ns);
    lg_hist_free(&R.latency);
    lg_loop_free(&l);
    return rc;
}
