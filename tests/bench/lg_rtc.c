/* lg_rtc: the longcall-specific steps shared by the scenarios: sessions and
 * their connections, setup over a pool (create, register, call, accept,
 * first read of each mailbox), poll answers, /rtc/status and close. */
#include "lg_rtc.h"

#include "lg_json.h"
#include "lg_pool.h"
#include "lg_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Allocates n sessions with their connections. */
lg_sess *lg_sess_alloc(lg_loop *l, size_t n, int with_send)
{
    lg_sess *s = lg_xcalloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        lg_conn_init(&s[i].poll, l);
        if (with_send) lg_conn_init(&s[i].send, l);
        s[i].has_send = with_send;
    }
    return s;
}

/* Frees the sessions' connections and the array. */
void lg_sess_free(lg_sess *s, size_t n)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) {
        lg_conn_free(&s[i].poll);
        if (s[i].has_send) lg_conn_free(&s[i].send);
    }
    free(s);
}

/* The path of a poll of s. */
void lg_poll_path(const lg_sess *s, int timeout, char *out, size_t cap)
{
    snprintf(out, cap, "/rtc/poll?sid=%s&after=%lld&timeout=%d", s->sid, s->seq, timeout);
}

/* The path of a send for s. */
void lg_send_path(const lg_sess *s, char *out, size_t cap)
{
    snprintf(out, cap, "/rtc/send?sid=%s", s->sid);
}

typedef struct setup {
    lg_sess *s;
    size_t n;
    int step;
    char prefix[24];
    size_t bad;
} setup;

enum { STEP_CREATE, STEP_REGISTER, STEP_CALL, STEP_ACCEPT, STEP_READ, STEP_CLOSE };

static int make_setup(void *arg, size_t i, lg_req *r)
{
    setup *st = arg;
    lg_sess *s = st->s;
    int n = 0;
    r->method = "POST";
    r->has_body = 1;
    switch (st->step) {
    case STEP_CREATE:
        snprintf(r->path, sizeof r->path, "/rtc/session");
        r->has_body = 0;
        return 0;
    case STEP_REGISTER:
        lg_send_path(&s[i], r->path, sizeof r->path);
        snprintf(s[i].name, sizeof s[i].name, "%s%c%zu", st->prefix, i % 2 ? 'b' : 'a', i / 2);
        n = snprintf(r->body, sizeof r->body, "{\"id\":\"register\",\"name\":\"%s\"}", s[i].name);
        break;
    case STEP_CALL:
        lg_send_path(&s[2 * i], r->path, sizeof r->path);
        n = snprintf(r->body, sizeof r->body,
                     "{\"id\":\"call\",\"to\":\"%sb%zu\",\"sdpOffer\":\"x\"}", st->prefix, i);
        break;
    case STEP_ACCEPT:
        lg_send_path(&s[2 * i + 1], r->path, sizeof r->path);
        n = snprintf(r->body, sizeof r->body,
                     "{\"id\":\"incomingCallResponse\",\"from\":\"%sa%zu\","
                     "\"callResponse\":\"accept\",\"sdpOffer\":\"y\"}",
                     st->prefix, i);
        break;
    case STEP_READ:
        r->method = "GET";
        r->has_body = 0;
        lg_poll_path(&s[i], 0, r->path, sizeof r->path);
        return 0;
    case STEP_CLOSE:
        snprintf(r->path, sizeof r->path, "/rtc/close?sid=%s", s[i].sid);
        r->has_body = 0;
        return 0;
    }
    r->body_len = n > 0 ? (size_t)n : 0;
    return 0;
}

/* What the first read of a mailbox must show: the caller's callResponse
 * accepted, the callee's startCommunication. */
typedef struct read_check {
    int a_side;
    int ok;
} read_check;

static void check_msg(const char *m, size_t len, void *arg)
{
    read_check *rc = arg;
    if (rc->a_side && lgj_str_is(m, len, "id", "callResponse") &&
        lgj_str_is(m, len, "response", "accepted"))
        rc->ok = 1;
    if (!rc->a_side && lgj_str_is(m, len, "id", "startCommunication")) rc->ok = 1;
}

static int done_setup(void *arg, size_t i, int status, const char *body, size_t len,
                      const lg_conn *c)
{
    setup *st = arg;
    (void)c;
    if (status == 503) { /* busy: the pool sends it again (at most 3 times) */
        usleep(1000);
        return 1;
    }
    if (status != 200) {
        if (st->bad++ < 3)
            lg_warn("setup step %d item %zu: status %d %.*s", st->step, i, status,
                    (int)(len > 200 ? 200 : len), body);
        return 0;
    }
    if (st->step == STEP_CREATE) {
        if (lgj_str(body, len, "sid", st->s[i].sid, sizeof st->s[i].sid) != 0) st->bad++;
    } else if (st->step == STEP_READ) {
        read_check rc = {.a_side = i % 2 == 0, .ok = 0};
        long long seq = 0;
        if (lgj_int(body, len, "seq", &seq) == 0) st->s[i].seq = seq;
        lgj_each(body, len, "messages", check_msg, &rc);
        if (!rc.ok && st->bad++ < 3) lg_warn("session %zu not in a call: %.*s", i, (int)len, body);
    }
    return 0;
}

static int run_step(lg_loop *l, setup *st, int step, size_t items, size_t conns, int64_t deadline)
{
    lg_pool_stats ps;
    st->step = step;
    st->bad = 0;
    int rc = lg_pool_run(l, conns, items, LG_SETUP_TIMEOUT_MS, make_setup, done_setup, st, deadline,
                         &ps);
    if (rc != 0 || st->bad) {
        lg_warn("setup step %d: %zu ok, %zu failed, %zu bad%s", step, ps.ok, ps.failed, st->bad,
                ps.finished ? "" : " (deadline)");
        return -1;
    }
    return 0;
}

/* POST /rtc/session for each session. */
int lg_sess_create(lg_loop *l, lg_sess *s, size_t n, size_t conns, int64_t deadline)
{
    setup st = {.s = s, .n = n};
    return run_step(l, &st, STEP_CREATE, n, conns, deadline);
}

static unsigned prefix_counter;

/* Registers each with a unique name and sets the pairs' peers. */
int lg_sess_register(lg_loop *l, lg_sess *s, size_t pairs, size_t conns, int64_t deadline)
{
    setup st = {.s = s, .n = 2 * pairs};
    snprintf(st.prefix, sizeof st.prefix, "lg%ux%u", (unsigned)getpid(), prefix_counter++);
    for (size_t i = 0; i < pairs; i++) {
        s[2 * i].peer = &s[2 * i + 1];
        s[2 * i + 1].peer = &s[2 * i];
    }
    return run_step(l, &st, STEP_REGISTER, 2 * pairs, conns, deadline);
}

/* Registers, calls, accepts and reads each mailbox once. */
int lg_sess_pair(lg_loop *l, lg_sess *s, size_t pairs, size_t conns, int64_t deadline)
{
    setup st = {.s = s, .n = 2 * pairs};
    snprintf(st.prefix, sizeof st.prefix, "lg%ux%u", (unsigned)getpid(), prefix_counter++);
    for (size_t i = 0; i < pairs; i++) {
        s[2 * i].peer = &s[2 * i + 1];
        s[2 * i + 1].peer = &s[2 * i];
    }
    if (run_step(l, &st, STEP_REGISTER, 2 * pairs, conns, deadline) != 0 ||
        run_step(l, &st, STEP_CALL, pairs, conns, deadline) != 0 ||
        run_step(l, &st, STEP_ACCEPT, pairs, conns, deadline) != 0 ||
        run_step(l, &st, STEP_READ, 2 * pairs, conns, deadline) != 0)
        return -1;
    return 0;
}

/* POST /rtc/close for each session. */
int lg_sess_close(lg_loop *l, lg_sess *s, size_t n, size_t conns, int64_t deadline)
{
    setup st = {.s = s, .n = n};
    return run_step(l, &st, STEP_CLOSE, n, conns, deadline);
}

typedef struct read_count {
    const char *want;
    int matched;
    long long after; /* messages at or below it were seen already */
} read_count;

static void count_msg(const char *m, size_t len, void *arg)
{
    read_count *rc = arg;
    long long seq;
    if (lgj_int(m, len, "seq", &seq) == 0 && seq <= rc->after) return;
    if (rc->want && lgj_str_is(m, len, "id", rc->want)) rc->matched++;
}

/* Reads a poll answer; see lg_rtc.h. */
int lg_poll_read(lg_sess *s, const char *body, size_t len, const char *want, int *matched)
{
    read_count rc = {.want = want, .matched = 0, .after = s->seq};
    long long seq;
    if (matched) *matched = 0;
    if (lgj_int(body, len, "seq", &seq) != 0) return -1;
    int n = lgj_each(body, len, "messages", count_msg, &rc);
    if (n < 0) return -1;
    if (seq > s->seq) s->seq = seq;
    if (matched) *matched = rc.matched;
    return n;
}

typedef struct status_wait {
    int done;
    int status;
    long long held, sessions;
    const char *key; /* one more figure asked for (may be NULL) */
    long long value;
    int has_value;
} status_wait;

static void on_status(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    status_wait *w = arg;
    (void)c;
    w->done = 1;
    w->status = status;
    if (status == 200) {
        lgj_int(body, len, "held_polls", &w->held);
        lgj_int(body, len, "sessions", &w->sessions);
        if (w->key) w->has_value = lgj_int(body, len, w->key, &w->value) == 0;
    }
}

static int status_done(void *arg)
{
    return ((status_wait *)arg)->done;
}

/* GET /rtc/status and wait for it. */
int lg_status(lg_conn *c, long long *held, long long *sessions, int64_t deadline)
{
    status_wait w = {0};
    if (lg_conn_request(c, "GET", "/rtc/status", NULL, 0, 10000, on_status, &w) != 0) return -1;
    if (!lg_loop_run(c->loop, status_done, &w, deadline)) {
        lg_conn_close(c); /* calls on_status with an error */
        return -1;
    }
    if (w.status != 200) return -1;
    if (held) *held = w.held;
    if (sessions) *sessions = w.sessions;
    return 0;
}

/* GET /rtc/status and read one integer of it. */
int lg_status_int(lg_conn *c, const char *key, long long *value, int64_t deadline)
{
    status_wait w = {.key = key};
    if (lg_conn_request(c, "GET", "/rtc/status", NULL, 0, 10000, on_status, &w) != 0) return -1;
    if (!lg_loop_run(c->loop, status_done, &w, deadline)) {
        lg_conn_close(c);
        return -1;
    }
    if (w.status != 200 || !w.has_value) return -1;
    *value = w.value;
    return 0;
}
