/* front_fcgi: the FastCGI process -- accept workers, the park thread and
 * the queue workers, libfcgi requests, and the answers of parked polls
 * written as FastCGI records by hand (fcgirec). See front_fcgi.h. */

#include "front_fcgi.h"

#include "addr.h"
#include "fcgirec.h"
#include "front.h"
#include "park.h"
#include "jobs.h"
#include "metrics.h"
#include "notify.h"

#include <errno.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One FastCGI request from accept to answer. Owned by exactly one of: an
 * accept worker, a queue worker, or the park. */
typedef struct conn {
    FCGX_Request req; /* libfcgi's view, until the request is read */
    int raw_fd;       /* >= 0 once read: libfcgi's buffers are freed and the
                       * answer is written as FastCGI records by hand */
    int request_id;
    wait_poll poll;   /* poll.pe is what the park holds (a poll, or a writer) */
    char *origin;     /* copy of the allowed Origin for a parked poll's answer */
    buf out;          /* the answer's records, while they are written */
    size_t off;       /* how much of out the socket took */
    char addr[ADDR_KEY_MAX]; /* the client's address key (http_client_addr), for the log */
    int unread;              /* answered without reading the body (front_serve) */
    int kept;                /* the web server asked to keep the connection (FCGI_KEEP_CONN) */
    size_t drained;          /* bytes of that body thrown away since (drain) */
    int64_t t0_us;           /* when it was accepted (metrics) */
    int ep;                  /* its endpoint label (metrics_endpoint) */
} conn;

static struct {
    const lc_config *cfg;
    wake *wk;
    park *pk;
    jobs *sc;
    store *db;      /* the process's connection, shared by its threads */
    store *ckpt_db; /* a second one, for checkpoints (they fsync) */
    int64_t started_ms;
    char db_shown[512]; /* LONGCALL_DB for the log, without a password (store_db_describe) */
    _Atomic int failures; /* consecutive accept failures */
    /* 0 while the state (database, wake file) cannot be opened: every
     * request is answered 503 with down_why's sentence, and the main
     * thread tries again every FRONT_RETRY_S. Set (release) once db, wk
     * and the threads that use them are ready. */
    _Atomic int ready;
    _Atomic int down_why; /* store_problem */
    /* Stopping (SIGTERM): accept workers leave accept() and end, the park
     * holds no more polls; see stop_serving(). */
    _Atomic int stopping;
    _Atomic int conns;     /* requests accepted and not yet closed (conn_free) */
    _Atomic int accepting; /* accept workers still running */
    /* Each accept worker's thread, and 1 while it is (about to be) in
     * FCGX_Accept_r: only those are interrupted by stop_serving()'s signal. */
    pthread_t *acceptor;
    _Atomic int *in_accept;
} srv;

/* The signal that takes an accept worker out of accept() when the process
 * stops: blocked in every other thread. */
#define STOP_ACCEPT_SIGNAL SIGUSR2
/* How long a stopping process waits for its requests to finish. */
#define STOP_MS 1800

/* WAL size that starts a background checkpoint: SQLite's default
 * auto-checkpoint size (1000 pages) for its default page size, 4 KiB. */
#define CHECKPOINT_BYTES (1000 * 4096)

/* Accepts one request (blocking). Returns NULL when accept failed; exits
 * the process when it keeps failing. */
static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static conn *accept_one(int worker)
{
    conn *c = xcalloc(1, sizeof *c);
    c->raw_fd = -1;
    /* Interrupted (stop_serving()'s signal): accept() fails with EINTR instead of
     * starting again. */
    FCGX_InitRequest(&c->req, 0, FCGI_FAIL_ACCEPT_ON_INTR);
    atomic_store(&srv.in_accept[worker], 1);
    int rc = atomic_load(&srv.stopping) ? -1 : FCGX_Accept_r(&c->req);
    int err = rc == 0 ? 0 : atomic_load(&srv.stopping) ? EINTR : errno;
    atomic_store(&srv.in_accept[worker], 0);
    if (rc == 0) {
        atomic_store(&srv.failures, 0);
        atomic_fetch_add(&srv.conns, 1);
        c->t0_us = mono_us();
        return c;
    }
    FCGX_Free(&c->req, 1);
    free(c);
    if (err == EINTR) return NULL; /* stopping, or a stray STOP_ACCEPT_SIGNAL */
    /* A listening socket that keeps failing (closed, or libfcgi in its
     * shutdown state) must not turn into a busy loop. */
    if (err == EBADF || err == ENOTSOCK || atomic_fetch_add(&srv.failures, 1) > 100) {
        lc_log_event(LC_LOG_ERROR, "accept_failed", LC_NOFIELDS,
                     "accept keeps failing (%s); exiting: the web server or systemd starts the "
                     "backend again; if this repeats, raise the open-files limit (LimitNOFILE)",
                     strerror(err));
        exit(1);
    }
    return NULL;
}

static void conn_free(conn *c)
{
    api_held_send_free(c->poll.send); /* a send that waited for its prev= */
    buf_free(&c->out);
    free(c->origin);
    free(c);
    atomic_fetch_sub(&srv.conns, 1);
}

/* Takes the socket from libfcgi once the request is read to its end (or
 * answered without its body: c->unread, then drain reads the rest): its
 * ~18 KiB of stream buffers and parameters are freed, and the answer is
 * written as FastCGI records by hand (fcgirec). Every connection is closed
 * after its answer, also when the web server asked to keep it
 * (FCGI_KEEP_CONN: nginx fastcgi_keep_conn, Apache enablereuse): libfcgi
 * would keep it open for an FCGX_Request that is thrown away. */
static void take_socket(conn *c)
{
    if (c->raw_fd >= 0) return;
    c->raw_fd = c->req.ipcFd;
    c->request_id = c->req.requestId;
    FCGX_Free(&c->req, 0);
}

/* Drops a request: closes its socket, writes nothing (more); frees c. */
static void drop(conn *c)
{
    if (c->raw_fd >= 0)
        close(c->raw_fd);
    else
        FCGX_Free(&c->req, 1);
    conn_free(c);
}

/* c's answer was dropped because its reader took none of it for
 * LONGCALL_WRITE_TIMEOUT (or there was no room to wait): counted for
 * /rtc/status, and logged through addr_log_event (at most one line per
 * client address a minute). */
static void dropped_slow(const conn *c)
{
    wake_count_dropped(srv.wk);
    addr_log_event(srv.wk, "LONGCALL_WRITE_TIMEOUT", c->addr,
                   "took no part of an answer for %d s (LONGCALL_WRITE_TIMEOUT): its connection "
                   "was closed (a client that does not read, or an overloaded front end)",
                   srv.cfg->write_timeout);
}

/* Most of an unread body drain throws away: more is an attacker's, whose
 * connection is closed (reset) instead. */
#define DRAIN_MAX ((size_t)4 << 20)

/* c's answer is written, its request body was not read (front_serve
 * answered without it): reads and throws away what comes until the web
 * server closes the connection (it does once it has the answer), without
 * waiting -- what has not come yet waits in the park, at most
 * LONGCALL_WRITE_TIMEOUT of silence (not for a kept connection: what is
 * there is read, no more) -- then closes it and frees c. Closing
 * with unread input at once would reset the connection, and a web server
 * still sending the body (nginx) would answer its own 502 instead. */
static void drain(conn *c)
{
    char chunk[16384];
    while (c->drained < DRAIN_MAX) {
        ssize_t n = recv(c->raw_fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            c->drained += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        /* A kept connection is not waited on: once the web server has the
         * answer it may send its next request on it, which must not be
         * thrown away as this body (closed now, the web server sends it
         * again on a new connection). */
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !c->kept) {
            c->poll.pe.fd = c->raw_fd;
            c->poll.pe.deadline = lc_mono_ms() + (int64_t)srv.cfg->write_timeout * 1000;
            if (park_add_drainer(srv.pk, &c->poll.pe) == PARK_ADDED) return;
        }
        break; /* its end, an error, or no room to wait: close */
    }
    drop(c);
}

/* c's answer was not parked because its client address has
 * LONGCALL_ADDR_WRITERS answers parked in this process: its connection is
 * closed, counted with the dropped ones (dropped_slow in /rtc/status) and
 * logged through addr_log_event. */
static void writers_refused(const conn *c)
{
    wake_count_dropped(srv.wk);
    addr_log_event(srv.wk, "LONGCALL_ADDR_WRITERS", c->addr,
                   "has LONGCALL_ADDR_WRITERS=%d answers waiting for slow readers in this "
                   "process: closed another one's connection",
                   srv.cfg->addr_writers);
}

/* Writes what the socket takes of c's answer without waiting. All of it:
 * closes the socket and frees c. Not all: parks c as a writer until the
 * socket takes more or LONGCALL_WRITE_TIMEOUT passes (then the park hands
 * it back: serve_writer). No thread ever waits for a slow reader. */
static void flush(conn *c)
{
    while (c->off < c->out.len) {
        ssize_t w = send(c->raw_fd, c->out.data + c->off, c->out.len - c->off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            c->off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->poll.pe.fd = c->raw_fd;
            c->poll.pe.deadline = lc_mono_ms() + (int64_t)srv.cfg->write_timeout * 1000;
            park_add_rc rc = park_add_writer(srv.pk, &c->poll.pe);
            if (rc == PARK_ADDED) return;
            if (rc == PARK_ADDR_FULL)
                writers_refused(c); /* its address has its share of waiting answers */
            else
                dropped_slow(c); /* no room to wait for it either */
        }
        break; /* the web server went away: nothing to tell */
    }
    if (c->unread && c->off == c->out.len)
        drain(c);
    else
        drop(c);
}

/* Writes the answer and ends the request (now, or from the park); c is
 * no longer the caller's (resp stays the caller's). Returns how many
 * messages the answer carries (metrics). */
static int finish(conn *c, const http_response *resp)
{
    int msgs = 0;
    if (resp->status == 200 && (c->ep == EP_POLL || c->ep == METRICS_EP_EXCHANGE))
        msgs = metrics_delivered(resp->body.data, resp->body.len);
    metrics_request(c->ep, resp->status, mono_us() - c->t0_us);
    buf text = {0};
    http_format(resp, &text);
    take_socket(c);
    c->out.len = 0;
    c->off = 0;
    fcgirec_answer(&c->out, c->request_id, text.data, text.len);
    buf_free(&text);
    flush(c);
    return msgs;
}

/* A parked answer's socket can take more, or it waited too long, or it
 * failed. */
static void serve_writer(conn *c, park_why why)
{
    int draining = c->poll.pe.writer == 2;
    if (why == PARK_WRITABLE) {
        if (draining)
            drain(c);
        else
            flush(c);
        return;
    }
    if (why == PARK_TIMEOUT && !draining) dropped_slow(c);
    drop(c);
}

static void resume_send(lc_env *e, conn *c);

/* Parks c's poll (or its send waiting for its prev=), or answers it when
 * it cannot wait. */
static void hold(lc_env *e, conn *c)
{
    take_socket(c); /* input is read to its end (front_serve) */
    c->poll.pe.fd = c->raw_fd;
    http_response resp = {0};
    int w = wait_park(e, srv.pk, &c->poll, &resp);
    if (w == WAIT_ANSWER) finish(c, &resp);
    http_response_free(&resp);
    if (w == WAIT_AGAIN) resume_send(e, c);
}

static conn *conn_of(park_entry *pe)
{
    return (conn *)((char *)pe - offsetof(conn, poll.pe));
}

/* Serves a poll that left the park for why; woken (may be NULL): what the
 * request that woke it queued. */
static void serve_parked(lc_env *e, conn *c, park_why why, const wait_woken *woken)
{
    http_response resp = {0};
    if (c->poll.pe.writer) {
        serve_writer(c, why);
        return;
    }
    if (why == PARK_GONE) {
        drop(c);
        return;
    }
    if (c->poll.send) { /* its slot moved, or its re-check time came */
        resume_send(e, c);
        return;
    }
    if (why == PARK_TIMEOUT) {
        wait_expire(&c->poll, &resp);
        finish(c, &resp);
    } else if (wait_resume(e, &c->poll, woken, &resp) == WAIT_ANSWER) {
        uint32_t slot = c->poll.pe.slot;
        /* Woken by a commit and answered with messages: a relay. */
        if (finish(c, &resp) > 0 && why == PARK_WOKEN) metrics_relayed(slot);
    } else {
        hold(e, c);
    }
    http_response_free(&resp);
}

/* Serves, on this thread, the polls of this process that woken names from
 * its entry `from` on (the futex path would get there too, a few thread
 * switches later). */
static void serve_woken_here(lc_env *e, const wait_woken *woken, int from)
{
    park_entry *taken[32];
    for (int i = from; i < woken->n; i++) {
        int n;
        do {
            n = park_take(srv.pk, wake_slot(woken->w[i].session_id), taken, 32);
            metrics_wakeup(0, n);
            for (int j = 0; j < n; j++)
                serve_parked(e, conn_of(taken[j]), PARK_WOKEN, woken);
        } while (n == 32);
    }
}

/* Sets the park's timer to the next background job (jobs). */
static void arm_timer(lc_env *e)
{
    int64_t next = jobs_next(srv.sc, e);
    if (next != INT64_MAX) park_due_hint(srv.pk, next);
}

static long fcgi_read(void *arg, char *p, size_t n)
{
    FCGX_Stream *in = arg;
    int got = FCGX_GetStr(p, (int)n, in);
    return got > 0 ? got : FCGX_GetError(in) ? -1 : 0;
}

/* Does what api left in r for c (a new request's, or a held send's run
 * again; req: the new request, NULL for a held send): answers, parks, or
 * goes on as an exchange's poll; serves the polls r woke. c is no longer
 * the caller's. */
static void conclude(lc_env *e, conn *c, const http_request *req, api_result *r)
{
    int served = 0;
    if (r->then_poll) {
        /* An exchange: the peers its batch woke are answered before its
         * own poll part reads the mailbox (api.h). */
        serve_woken_here(e, &r->woken, 0);
        served = r->woken.n;
        api_then_poll(e, r);
    }
    if (r->park) {
        /* envp goes away with libfcgi's request: keep a copy (a held send
         * run again has it already). */
        if (r->poll.allow_origin && r->poll.allow_origin != c->origin) {
            free(c->origin);
            c->origin = xstrdup(r->poll.allow_origin);
        }
        c->poll = r->poll;
        c->poll.allow_origin = c->origin;
        r->poll.send = NULL; /* c's now */
        hold(e, c);
        serve_woken_here(e, &r->woken, served); /* an older poll of the session answers now */
    } else {
        /* Should its answer wait for a slow reader, it counts against its
         * client address (LONGCALL_ADDR_WRITERS). */
        if (req) http_client_addr(req, srv.cfg, c->poll.addr);
        c->poll.pe.addr_bucket = wake_addr_bucket(c->poll.addr);
        /* The recipients first: their messages are committed, and a peer
         * waiting for a message is what a call set-up waits on; the
         * sender's {"ok":true} follows a few microseconds later. */
        serve_woken_here(e, &r->woken, served);
        finish(c, &r->resp);
    }
}

/* c is a send that waited for its prev= (wait.c, R9) whose slot moved or
 * whose re-check time came: runs it again (api_send_resume) and goes on
 * with what that says. */
static void resume_send(lc_env *e, conn *c)
{
    api_result r;
    api_held_send *hs = c->poll.send;
    c->poll.send = NULL;
    api_send_resume(e, hs, c->origin, &r);
    conclude(e, c, NULL, &r);
    api_result_free(&r);
}

/* Serves a newly accepted request. */
static void serve_new(lc_env *e, conn *c)
{
    http_request req;
    api_result r;
    http_parse(&req, c->req.envp);
    c->ep = metrics_endpoint(&req);
    http_client_addr(&req, srv.cfg, c->addr);
    front_body rd = {fcgi_read, c->req.in, 1, 0};
    /* No connection yet: the state is not open (or opened a moment ago;
     * the next request of this worker finds it). */
    store_problem down = STORE_FINE;
    if (!e->st) down = (store_problem)atomic_load(&srv.down_why);
    if (!e->st && down == STORE_FINE) down = STORE_BUSY;
    front_serve(e, down, &req, &rd, &r);
    c->unread = rd.unread;
    c->kept = c->req.keepConnection;
    conclude(e, c, &req, &r);
    if (down == STORE_FINE) {
        jobs_note(srv.sc, r.due);
        arm_timer(e);
    }
    api_result_free(&r);
}

/* A worker's environment, on the process's shared connection (cfg only
 * while the state is not open). */
static void env_init(lc_env *e)
{
    *e = (lc_env){.cfg = srv.cfg,
                  .st = srv.db,
                  .wk = srv.wk,
                  .defer_acks = 1,
                  .started_ms = srv.started_ms};
}

/* An accept worker: accepts a request and serves it, again and again. All
 * of them block in accept() on the one listening socket, and the kernel
 * hands each new connection to one of them: no thread hand-off. Serving
 * never waits for a held poll, so they are always back in accept soon. */
static void *accept_worker(void *arg)
{
    int worker = (int)(intptr_t)arg;
    lc_env e = {.cfg = srv.cfg};
    sigset_t intr;
    sigemptyset(&intr);
    sigaddset(&intr, STOP_ACCEPT_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &intr, NULL);
    while (!atomic_load(&srv.stopping)) {
        conn *c = accept_one(worker);
        if (!c) continue;
        if (!e.st && atomic_load_explicit(&srv.ready, memory_order_acquire)) env_init(&e);
        serve_new(&e, c);
    }
    atomic_fetch_sub(&srv.accepting, 1);
    return NULL;
}

/* A queue worker: serves what leaves the park (polls woken by another
 * process, timed out or abandoned) and, when the park's timer fires, the
 * background jobs that are due. */
static void *queue_worker(void *arg)
{
    (void)arg;
    lc_env e;
    env_init(&e);
    for (;;) {
        park_why why;
        park_entry *pe = park_next(srv.pk, &why);
        if (pe) {
            if (why == PARK_WOKEN && !pe->writer) metrics_wakeup(1, 1);
            serve_parked(&e, conn_of(pe), why, NULL);
            continue;
        }
        wait_woken woken = {0};
        jobs_run_due(srv.sc, &e, &woken);
        serve_woken_here(&e, &woken, 0);
        wait_woken_free(&woken);
        arm_timer(&e);
    }
    return NULL;
}

static void *park_thread(void *arg)
{
    (void)arg;
    park_run(srv.pk);
    lc_log_event(LC_LOG_ERROR, "internal_error", LC_NOFIELDS,
                 "the park loop stopped (the line above says why); exiting: the web server or "
                 "systemd starts the backend again");
    exit(1);
}

static int start_thread_arg(void *(*fn)(void *), void *arg, size_t stack, pthread_t *id)
{
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(id ? id : &th, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (err)
        lc_log_event(LC_LOG_ERROR, "thread_failed", LC_NOFIELDS,
                     "cannot start a thread: %s; raise the process or task limit (ulimit -u, "
                     "systemd TasksMax) or lower LONGCALL_THREADS",
                     strerror(err));
    return err ? -1 : 0;
}

static int start_thread(void *(*fn)(void *), size_t stack)
{
    return start_thread_arg(fn, NULL, stack, NULL);
}

/* Opens the process's state (the database checked, its two connections,
 * the wake file) and starts the threads that need it: the park thread and
 * the queue workers. Returns LC_OK (srv.ready is set), an error with *why
 * when the state cannot be opened (nothing kept: try again later), or 1
 * when the process cannot run at all (logged). */
static int open_state(const lc_config *cfg, store_problem *why)
{
    wake *wk = NULL;
    store *db = NULL, *ckpt = NULL;
    int rc = front_open_shared(cfg, 1, &wk, why);
    if (rc == LC_OK) rc = store_open_why(cfg->db_path, cfg->busy_timeout, 0, &db, why);
    /* The checkpoint connection is SQLite's (PostgreSQL checkpoints by itself). */
    if (rc == LC_OK && !store_db_is_pg(cfg->db_path))
        rc = store_open_why(cfg->db_path, cfg->busy_timeout, 0, &ckpt, why);
    if (rc != LC_OK) {
        store_close(ckpt);
        store_close(db);
        wake_close(wk);
        return rc;
    }
    srv.wk = wk;
    srv.db = db;
    srv.ckpt_db = ckpt;
    store_defer_checkpoints(srv.db, CHECKPOINT_BYTES);
    wake_proc_claim(srv.wk);
    srv.pk = park_new(srv.wk, cfg->max_held, cfg->max_held);
    if (!srv.pk) return 1;
    park_set_addr_max(srv.pk, cfg->addr_held);
    park_set_addr_writers(srv.pk, cfg->addr_writers);
    /* Before the process serves a poll (wait.c, R8). */
    if (notify_start(cfg, srv.wk, srv.pk) != 0) return 1;
    srv.sc = jobs_new(srv.ckpt_db);
    /* Maintenance runs once at start (expiring what went idle while no
     * backend ran), then when the database says something is due. */
    jobs_note(srv.sc, lc_now_ms());
    lc_env e;
    env_init(&e);
    arm_timer(&e);
    if (start_thread(park_thread, 256 * 1024)) return 1;
    /* Two queue workers: one stuck writing to a slow socket or waiting for
     * the database lock does not hold up the others' answers. */
    for (int i = 0; i < 2; i++)
        if (start_thread(queue_worker, 512 * 1024)) return 1;
    atomic_store_explicit(&srv.ready, 1, memory_order_release);
    return LC_OK;
}

/* Waits for SIGTERM, SIGINT or SIGUSR1 (blocked in every thread: the
 * signal comes here alone). While the state is not open, tries to open it
 * every FRONT_RETRY_S. Returns when a signal came. */
static void wait_for_stop(const lc_config *cfg, const sigset_t *stop)
{
    const struct timespec retry = {FRONT_RETRY_S, 0};
    for (;;) {
        int sig = sigtimedwait(stop, NULL, atomic_load(&srv.ready) ? NULL : &retry);
        if (sig > 0) {
            lc_log_event(LC_LOG_INFO, "stopping", LC_FIELDS(LC_NUM("signal", sig)),
                         "stopping on signal %d", sig);
            return;
        }
        if (atomic_load(&srv.ready)) continue; /* EINTR */
        store_problem why = STORE_FINE;
        int rc = open_state(cfg, &why);
        if (rc > 0) exit(1);
        atomic_store(&srv.down_why, (int)why);
        if (rc == LC_OK)
            lc_log_event(LC_LOG_INFO, "serving", LC_FIELDS(LC_STR("db", srv.db_shown)),
                         "database %s opened: serving FastCGI with %d accept workers", srv.db_shown,
                         cfg->threads);
    }
}

static void on_stop_accept(int sig)
{
    (void)sig;
}

static void nap_ms(int ms)
{
    struct timespec t = {0, (long)ms * 1000000L};
    nanosleep(&t, NULL);
}

/* A stopping process (SIGTERM: systemd's stop, a web server's restart):
 * takes no more requests -- they wait in the listening socket for the
 * next process, or go to the other processes sharing it -- answers every
 * held poll now (empty: its client polls again, without an error), lets
 * the requests in flight finish, and returns once they have or after
 * STOP_MS. A poll's messages stay in its mailbox for the next poll. */
static void stop_serving(void)
{
    int64_t until = lc_mono_ms() + STOP_MS;
    atomic_store(&srv.stopping, 1);
    int polls = 0, first = 1;
    for (;;) {
        /* Again each round: a worker that was serving checks stopping
         * before its next accept, but one may have got past that check. */
        for (int i = 0; i < srv.cfg->threads; i++)
            if (atomic_load(&srv.in_accept[i])) pthread_kill(srv.acceptor[i], STOP_ACCEPT_SIGNAL);
        if (first && atomic_load_explicit(&srv.ready, memory_order_acquire)) {
            polls = park_close(srv.pk);
            lc_log_event(LC_LOG_INFO, "stop_polls_answered", LC_FIELDS(LC_NUM("polls", polls)),
                         "stopping: %d held polls answered; no new requests taken", polls);
        }
        first = 0;
        if ((atomic_load(&srv.accepting) == 0 && atomic_load(&srv.conns) == 0) ||
            lc_mono_ms() >= until)
            break;
        nap_ms(5);
    }
    int left = atomic_load(&srv.conns);
    if (left)
        lc_log_event(LC_LOG_WARN, "stopped", LC_FIELDS(LC_NUM("unfinished", left)),
                     "stopping with %d requests unfinished after %d ms (slow readers; their "
                     "clients retry)",
                     left, STOP_MS);
    else
        lc_log_event(LC_LOG_INFO, "stopped", LC_FIELDS(LC_NUM("unfinished", 0)),
                     "stopped: every request finished");
}

int front_fcgi_run(const lc_config *cfg)
{
    srv.cfg = cfg;
    srv.started_ms = lc_now_ms();
    store_db_describe(cfg->db_path, srv.db_shown, sizeof srv.db_shown);
    /* Every request allocates and frees libfcgi's 8 KiB stream buffers. Left
     * to its defaults, glibc gives arena memory back and takes it again,
     * and each munmap flushes the TLB of every thread: keep it instead. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    if (FCGX_Init() != 0) {
        lc_log_event(LC_LOG_ERROR, "internal_error", LC_NOFIELDS,
                     "FCGX_Init failed: libfcgi could not start; reinstall libfcgi0ldbl");
        return 1;
    }
    /* Signals go to this thread alone (sigwait), so that SIGTERM from the
     * web server ends the process with exit() -- normal exit lets the
     * sanitizers check for leaks -- and no worker is interrupted. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGUSR1); /* libfcgi's "finish and exit" */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    /* STOP_ACCEPT_SIGNAL: blocked here (so in every thread made from now
     * on), unblocked by the accept workers; its handler does nothing, and
     * without SA_RESTART it ends their accept() with EINTR. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_accept;
    sigemptyset(&sa.sa_mask);
    sigaction(STOP_ACCEPT_SIGNAL, &sa, NULL);
    sigset_t intr;
    sigemptyset(&intr);
    sigaddset(&intr, STOP_ACCEPT_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &intr, NULL);
    /* State that cannot be opened (a full disk, a file the backend may not
     * write, a damaged or newer database) does not end the process: the
     * web server would start it again and again (lighttpd does, at once).
     * It stays, answers every request 503 with the reason (the log line
     * says what to do), and tries again every FRONT_RETRY_S seconds, so
     * that fixing the file is enough -- no restart. */
    store_problem why = STORE_FINE;
    int rc = open_state(cfg, &why);
    if (rc > 0) return 1;
    atomic_store(&srv.down_why, (int)why);
    srv.acceptor = xcalloc((size_t)cfg->threads, sizeof *srv.acceptor);
    srv.in_accept = xcalloc((size_t)cfg->threads, sizeof *srv.in_accept);
    for (int i = 0; i < cfg->threads; i++) {
        atomic_fetch_add(&srv.accepting, 1);
        if (start_thread_arg(accept_worker, (void *)(intptr_t)i, 512 * 1024, &srv.acceptor[i]))
            return 1;
    }
    if (rc == LC_OK)
        lc_log_event(LC_LOG_INFO, "serving", LC_FIELDS(LC_STR("db", srv.db_shown)),
                     "serving FastCGI with %d accept workers, database %s, %s", cfg->threads,
                     srv.db_shown,
                     cfg->allowed_hosts ? "only the hosts of LONGCALL_ALLOWED_HOSTS"
                                        : "any Host (LONGCALL_ALLOWED_HOSTS is not set)");
    else
        lc_log_event(LC_LOG_WARN, "not_serving", LC_FIELDS(LC_STR("db", srv.db_shown)),
                     "not serving: every request gets 503 until the database %s can be opened "
                     "(the line above says why); trying again every %d s",
                     srv.db_shown, FRONT_RETRY_S);
    wait_for_stop(cfg, &stop);
    stop_serving();
    /* exit(), not a return: workers may still use the configuration that
     * main() would free. */
    exit(0);
}
