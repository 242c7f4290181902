/* server: threads, the job queue, reading requests and writing answers for
 * FastCGI (libfcgi) and plain CGI. See server.h. */

#include "server.h"

#include "api.h"
#include "fcgirec.h"
#include "park.h"
#include "store.h"
#include "wake.h"
#include "wire.h"

#include <errno.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum job_kind { JOB_NEW, JOB_WOKEN, JOB_TIMEOUT, JOB_GONE, JOB_MAINT, JOB_CHECKPOINT, JOB_ACKS };

/* One FastCGI request from accept to answer. Owned by exactly one of: the
 * accept thread, the queue, a worker, or the park. */
typedef struct conn {
    FCGX_Request req; /* libfcgi's view, until the request is parked */
    int raw_fd;       /* >= 0 once parked: libfcgi's buffers are freed and the
                       * answer is written as FastCGI records by hand */
    int request_id;
    park_entry pe;
    api_poll poll;
    enum job_kind kind;
    int drained;  /* the request's input was read to its end */
    char *origin; /* copy of the allowed Origin for a parked poll's answer */
    struct conn *qnext;
} conn;

static struct {
    const lc_config *cfg;
    wake *wk;
    park *pk;
    int64_t started_ms;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    conn *qhead, *qtail;
    conn maint; /* the maintenance job (never freed) */
    int maint_queued;
    int64_t maint_due, acks_due; /* monotonic ms, INT64_MAX: none (under qmu) */
    store *db;                   /* the process's connection, shared by its threads */
    store *ckpt_db;              /* a second one, for checkpoints (they fsync) */
    conn ckpt;                   /* the checkpoint job (never freed) */
    int ckpt_queued;
    int64_t ckpt_last; /* lc_mono_ms() of the last checkpoint run */
    conn acks_job;     /* the acknowledgement-writing job (never freed) */
    api_ack *acks;     /* deferred acknowledgements, under qmu */
    int nacks, capacks;
    _Atomic int failures; /* consecutive accept failures */
    _Atomic int held;
    /* 0 while the state (database, wake file) cannot be opened: every
     * request is answered 503 with down_why's sentence, and the main
     * thread tries again every OPEN_RETRY_S. Set (release) once srv.db,
     * srv.wk and the threads that use them are ready. */
    _Atomic int ready;
    _Atomic int down_why; /* store_problem */
} srv = {.qmu = PTHREAD_MUTEX_INITIALIZER,
         .qcv = PTHREAD_COND_INITIALIZER,
         .maint_due = INT64_MAX,
         .acks_due = INT64_MAX};

/* Deferred acknowledgements wait this long for others to join them in one
 * transaction: under load a write per poll becomes one per many polls, and
 * one per session (api_write_acks merges them). The transaction holds the
 * write lock while sends wait: rarer and longer is cheaper than often. */
#define ACKS_DELAY_MS 50

/* Lowers *due (one of srv's timers) to when and tells the park thread,
 * whose one timer (park_due) stands for the earliest of them. */
static void due_at(int64_t *due, int64_t when)
{
    pthread_mutex_lock(&srv.qmu);
    if (when < *due) *due = when;
    pthread_mutex_unlock(&srv.qmu);
    park_due_hint(srv.pk, when);
}

/* The monotonic time of a wall-clock time (api schedules in wall ms, the
 * park waits in monotonic ms). */
static int64_t mono_of(int64_t wall_ms)
{
    return lc_mono_ms() + (wall_ms - lc_now_ms());
}

/* Queues a job for the workers. */
static void push(conn *c, enum job_kind kind)
{
    c->kind = kind;
    c->qnext = NULL;
    pthread_mutex_lock(&srv.qmu);
    if (srv.qtail)
        srv.qtail->qnext = c;
    else
        srv.qhead = c;
    srv.qtail = c;
    pthread_cond_signal(&srv.qcv);
    pthread_mutex_unlock(&srv.qmu);
}

/* Accepts one request (blocking). Returns NULL when accept
 * failed; exits the process when it keeps failing. */
static conn *accept_one(void)
{
    conn *c = xcalloc(1, sizeof *c);
    c->raw_fd = -1;
    FCGX_InitRequest(&c->req, 0, 0);
    if (FCGX_Accept_r(&c->req) == 0) {
        atomic_store(&srv.failures, 0);
        c->kind = JOB_NEW;
        return c;
    }
    int err = errno;
    FCGX_Free(&c->req, 1);
    free(c);
    /* A listening socket that keeps failing (closed, or libfcgi in its
     * shutdown state) must not turn into a busy loop. */
    if (err == EBADF || err == ENOTSOCK || atomic_fetch_add(&srv.failures, 1) > 100) {
        lc_log(LC_LOG_ERROR, "accept keeps failing (%s); exiting", strerror(err));
        exit(1);
    }
    return NULL;
}

/* Takes the next queued job (woken, timed-out or abandoned poll, or
 * maintenance), waiting for one. */
static conn *pop(void)
{
    pthread_mutex_lock(&srv.qmu);
    while (!srv.qhead)
        pthread_cond_wait(&srv.qcv, &srv.qmu);
    conn *c = srv.qhead;
    srv.qhead = c->qnext;
    if (!srv.qhead) srv.qtail = NULL;
    pthread_mutex_unlock(&srv.qmu);
    return c;
}

static void conn_free(conn *c)
{
    free(c->origin);
    free(c);
}

/* Writes resp to a parked request's socket as FCGI_STDOUT records and
 * FCGI_END_REQUEST (fcgirec), then closes it. A held poll keeps only its
 * socket, not libfcgi's ~18 KiB of stream buffers and parameters. */
static void finish_raw(conn *c, const buf *text)
{
    buf b = {0};
    fcgirec_answer(&b, c->request_id, text->data, text->len);
    for (size_t off = 0; off < b.len;) {
        ssize_t w = write(c->raw_fd, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break; /* the web server went away: nothing to tell */
        off += (size_t)w;
    }
    close(c->raw_fd);
    buf_free(&b);
}

/* Writes the answer and ends the request; frees c. */
static void finish(conn *c, http_response *resp)
{
    buf out = {0};
    http_format(resp, &out);
    if (c->raw_fd >= 0) {
        finish_raw(c, &out);
        buf_free(&out);
        http_response_free(resp);
        conn_free(c);
        return;
    }
    FCGX_PutStr(out.data, (int)out.len, c->req.out);
    /* With the input read to its end, nothing can arrive that would make
     * close() reset the connection: skip libfcgi's shutdown-and-drain
     * linger, which would hold this thread until the web server closes. */
    if (c->drained) FCGX_Detach(&c->req);
    FCGX_Finish_r(&c->req);
    buf_free(&out);
    http_response_free(resp);
    conn_free(c);
}

/* Drops a request whose client left: closes the socket, writes nothing. */
static void drop(conn *c)
{
    if (c->raw_fd >= 0)
        close(c->raw_fd);
    else
        FCGX_Free(&c->req, 1);
    conn_free(c);
}

/* Reads the request body into *body (NUL-terminated, caller frees), at most
 * max bytes. Returns 0, 1 when it is longer than max, -1 on a read error.
 * Reads to the end of the stream even for GET: a parked socket must have
 * nothing unread, so that readability means the client left. */
static int read_body(FCGX_Stream *in, size_t max, char **body, size_t *len)
{
    buf b = {0};
    char chunk[8192];
    int n, over = 0;
    buf_append(&b, "", 0);
    while ((n = FCGX_GetStr(chunk, sizeof chunk, in)) > 0) {
        if (b.len + (size_t)n > max)
            over = 1;
        else
            buf_append(&b, chunk, (size_t)n);
    }
    *body = b.data;
    *len = b.len;
    if (FCGX_GetError(in)) return -1;
    return over;
}

/* Parks c's poll, or answers it when it cannot be parked. */
static void hold(api_env *e, conn *c)
{
    if (c->raw_fd < 0) {
        /* Input is read to its end (serve_new), nothing was written yet:
         * from here on the socket is ours. */
        c->raw_fd = c->req.ipcFd;
        c->request_id = c->req.requestId;
        FCGX_Free(&c->req, 0);
    }
    for (;;) {
        c->pe.fd = c->raw_fd;
        c->pe.slot = c->poll.slot;
        c->pe.seen = c->poll.seen;
        c->pe.deadline = c->poll.deadline;
        int rc = park_add(srv.pk, &c->pe);
        if (rc == 0) {
            atomic_fetch_add(&srv.held, 1);
            return;
        }
        http_response resp = {0};
        if (rc < 0) {
            http_error(&resp, 503, WIRE_TOO_MANY_HELD);
            resp.retry_after = 2;
            resp.allow_origin = c->origin;
            finish(c, &resp);
            return;
        }
        /* Woken while parking: read again. */
        e->held_here = atomic_load(&srv.held);
        if (api_poll_resume(e, &c->poll, &resp) == API_DONE) {
            finish(c, &resp);
            return;
        }
        http_response_free(&resp);
    }
}

static void serve_parked(api_env *e, conn *c);

/* Serves, on this thread, the polls of this process that the last api call
 * woke (the futex path would get there too, a few thread switches later). */
static void serve_woken_here(api_env *e)
{
    park_entry *taken[32];
    for (int i = 0; i < e->nwoken; i++) {
        int n;
        do {
            n = park_take(srv.pk, wake_slot(e->woken[i].session_id), taken, 32);
            for (int j = 0; j < n; j++) {
                conn *w = (conn *)((char *)taken[j] - offsetof(conn, pe));
                w->kind = JOB_WOKEN;
                serve_parked(e, w);
            }
        } while (n == 32);
    }
    api_woken_clear(e);
}

static void serve_new(api_env *e, conn *c)
{
    http_request req;
    http_response resp = {0};
    char *body = NULL;
    size_t len = 0;
    http_parse(&req, c->req.envp);
    if (req.content_length > (long long)srv.cfg->max_body) {
        /* Not read at all: FCGX_Finish_r drains what lighttpd still sends. */
        http_error(&resp, 413, WIRE_BODY_TOO_LARGE);
        goto answer;
    }
    int rb = read_body(c->req.in, srv.cfg->max_body, &body, &len);
    c->drained = rb >= 0;
    if (rb != 0) {
        http_error(&resp, rb > 0 ? 413 : 400,
                   rb > 0 ? WIRE_BODY_TOO_LARGE : "the request body could not be read");
        goto answer;
    }
    e->held_here = atomic_load(&srv.held);
    if (api_handle(e, &req, body, len, &resp, &c->poll) == API_PARK) {
        free(body);
        if (c->poll.allow_origin) c->origin = xstrdup(c->poll.allow_origin);
        c->poll.allow_origin = c->origin; /* envp goes away with nothing; keep a copy */
        hold(e, c);
        serve_woken_here(e); /* an older poll of the same session answers now */
        return;
    }
    if (e->due_hint != INT64_MAX) due_at(&srv.maint_due, mono_of(e->due_hint));
    /* The recipients first: their messages are committed, and a peer
     * waiting for a message is what a call set-up waits on; the sender's
     * {"ok":true} follows a few microseconds later. */
    serve_woken_here(e);
answer:
    free(body);
    finish(c, &resp);
}

static void serve_parked(api_env *e, conn *c)
{
    http_response resp = {0};
    atomic_fetch_sub(&srv.held, 1);
    switch (c->kind) {
    case JOB_GONE:
        drop(c);
        return;
    case JOB_TIMEOUT:
        api_poll_expire(&c->poll, &resp);
        finish(c, &resp);
        return;
    default:
        e->held_here = atomic_load(&srv.held);
        if (api_poll_resume(e, &c->poll, &resp) == API_DONE)
            finish(c, &resp);
        else {
            http_response_free(&resp);
            hold(e, c);
        }
    }
}

static void run_maintenance(api_env *e)
{
    int64_t next;
    api_maintain(e, &next);
    serve_woken_here(e);
    int64_t when = mono_of(next);
    pthread_mutex_lock(&srv.qmu);
    srv.maint_queued = 0;
    srv.maint_due = when;
    pthread_mutex_unlock(&srv.qmu);
    park_due_hint(srv.pk, when);
}

/* Queues one checkpoint job unless one is queued already. Called by a
 * connection's WAL hook right after a commit. */
static void want_checkpoint(void *arg)
{
    (void)arg;
    int64_t now = lc_mono_ms();
    pthread_mutex_lock(&srv.qmu);
    /* At most one queued, and not again within 100 ms of the last run: a
     * checkpoint that could not finish (readers, another process's
     * checkpoint) is not retried on every commit. */
    int go = !srv.ckpt_queued && now - srv.ckpt_last >= 100;
    if (go) srv.ckpt_queued = 1;
    pthread_mutex_unlock(&srv.qmu);
    if (go) push(&srv.ckpt, JOB_CHECKPOINT);
}

static void run_checkpoint(void)
{
    store_checkpoint(srv.ckpt_db);
    pthread_mutex_lock(&srv.qmu);
    srv.ckpt_queued = 0;
    srv.ckpt_last = lc_mono_ms();
    pthread_mutex_unlock(&srv.qmu);
}

/* api's defer_ack: queues an acknowledgement; the first one sets the timer
 * of the job that writes them all, ACKS_DELAY_MS later. */
static void defer_ack(void *arg, int64_t session_id, int64_t after, int64_t now)
{
    (void)arg;
    pthread_mutex_lock(&srv.qmu);
    int first = srv.nacks == 0;
    if (srv.nacks == srv.capacks) {
        srv.capacks = srv.capacks ? srv.capacks * 2 : 64;
        srv.acks = xrealloc(srv.acks, (size_t)srv.capacks * sizeof *srv.acks);
    }
    srv.acks[srv.nacks++] = (api_ack){session_id, after, now};
    pthread_mutex_unlock(&srv.qmu);
    if (first) due_at(&srv.acks_due, lc_mono_ms() + ACKS_DELAY_MS);
}

static void run_acks(api_env *e)
{
    pthread_mutex_lock(&srv.qmu);
    api_ack *list = srv.acks;
    int n = srv.nacks;
    srv.acks = NULL;
    srv.nacks = srv.capacks = 0;
    pthread_mutex_unlock(&srv.qmu);
    api_write_acks(e, list, n);
    free(list);
}

/* WAL size that starts a background checkpoint: SQLite's default
 * auto-checkpoint size (1000 pages) for its default page size, 4 KiB. */
#define CHECKPOINT_BYTES (1000 * 4096)

/* A worker's environment, on the process's shared connection. */
static void env_init(api_env *e)
{
    *e = (api_env){.cfg = srv.cfg,
                   .st = srv.db,
                   .wk = srv.wk,
                   .started_ms = srv.started_ms,
                   .defer_ack = defer_ack};
}

/* Seconds between attempts to open the state while it cannot be, and the
 * Retry-After of the 503s meanwhile. */
#define OPEN_RETRY_S 3

/* The answer to req while the state cannot be opened (problem why): 503
 * with the reason (no path or user: those are in the log) and Retry-After,
 * whatever the endpoint; /rtc/status says {"ok": false, "error": ...}. A
 * preflight from an allowed origin is still answered, so that a page can
 * read the 503. */
static void down_answer(const lc_config *cfg, const http_request *req, store_problem why,
                        http_response *resp)
{
    const char *allow = NULL, *text = wire_problem_sentence(why);
    if (http_origin_ok(req, cfg, &allow) == 0 && strcmp(req->method, "OPTIONS") == 0 &&
        req->endpoint != EP_UNKNOWN) {
        resp->status = 204;
        resp->preflight = 1;
    } else if (req->endpoint == EP_STATUS) {
        resp->status = 503;
        wire_status_down(&resp->body, text);
    } else {
        http_error(resp, 503, text);
    }
    if (resp->status == 503) resp->retry_after = why == STORE_BUSY ? 1 : OPEN_RETRY_S;
    resp->allow_origin = allow;
}

/* Answers a request of a process whose state cannot be opened. */
static void serve_down(conn *c)
{
    http_request req;
    http_response resp = {0};
    char *body = NULL;
    size_t len = 0;
    http_parse(&req, c->req.envp);
    c->drained = read_body(c->req.in, srv.cfg->max_body, &body, &len) >= 0;
    free(body);
    down_answer(srv.cfg, &req, (store_problem)atomic_load(&srv.down_why), &resp);
    finish(c, &resp);
}

/* An accept worker: accepts a request and serves it, again and again. All
 * of them block in accept() on the one listening socket, and the kernel
 * hands each new connection to one of them: no thread hand-off. Serving
 * never waits for a held poll, so they are always back in accept soon. */
static void *accept_worker(void *arg)
{
    (void)arg;
    api_env e = {0};
    for (;;) {
        conn *c = accept_one();
        if (!c) continue;
        if (!atomic_load_explicit(&srv.ready, memory_order_acquire)) {
            serve_down(c);
            continue;
        }
        if (!e.st) env_init(&e);
        serve_new(&e, c);
    }
    return NULL;
}

/* The queue worker: polls the park thread hands back (woken by another
 * process, timed out, abandoned) and maintenance runs. */
static void *queue_worker(void *arg)
{
    (void)arg;
    api_env e;
    env_init(&e);
    for (;;) {
        conn *c = pop();
        if (c->kind == JOB_MAINT)
            run_maintenance(&e);
        else if (c->kind == JOB_CHECKPOINT)
            run_checkpoint();
        else if (c->kind == JOB_ACKS)
            run_acks(&e);
        else
            serve_parked(&e, c);
    }
    return NULL;
}

static void on_ready(void *arg, park_entry *pe, park_why why)
{
    (void)arg;
    conn *c = (conn *)((char *)pe - offsetof(conn, pe));
    push(c, why == PARK_WOKEN ? JOB_WOKEN : why == PARK_TIMEOUT ? JOB_TIMEOUT : JOB_GONE);
}

/* The park thread's timer fired: queues the maintenance and the
 * acknowledgement jobs that are due, and sets the timer for the rest. */
static void on_due(void *arg)
{
    (void)arg;
    int64_t now = lc_mono_ms();
    pthread_mutex_lock(&srv.qmu);
    int maint = srv.maint_due <= now && !srv.maint_queued;
    if (maint) {
        srv.maint_queued = 1;
        srv.maint_due = INT64_MAX; /* the run sets the next one */
    }
    /* The acks job is queued at most once: defer_ack arms acks_due only
     * when the list was empty, that is after run_acks took the last one. */
    int acks = srv.acks_due <= now;
    if (acks) srv.acks_due = INT64_MAX;
    int64_t next = srv.maint_due < srv.acks_due ? srv.maint_due : srv.acks_due;
    pthread_mutex_unlock(&srv.qmu);
    if (next != INT64_MAX) park_due_hint(srv.pk, next);
    if (maint) push(&srv.maint, JOB_MAINT);
    if (acks) push(&srv.acks_job, JOB_ACKS);
}

static void *park_thread(void *arg)
{
    (void)arg;
    park_run(srv.pk);
    lc_log(LC_LOG_ERROR, "the park loop stopped; exiting");
    exit(1);
}

static int start_thread(void *(*fn)(void *), size_t stack)
{
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&th, &attr, fn, NULL);
    pthread_attr_destroy(&attr);
    if (err) lc_log(LC_LOG_ERROR, "cannot start a thread: %s", strerror(err));
    return err ? -1 : 0;
}

/* The problem behind a wake_open failure (its errno). */
static store_problem wake_problem(int err)
{
    if (err == ENOSPC || err == EDQUOT) return STORE_FULL;
    if (err == EACCES || err == EPERM || err == EROFS) return STORE_ACCESS;
    return STORE_OTHER;
}

/* Opens the database once (migrating it; with check, PRAGMA quick_check
 * too) and the wake file beside it. Returns LC_OK, or an error with *why
 * set (logged by store or wake). */
static int open_shared(const lc_config *cfg, int check, wake **wk, store_problem *why)
{
    store *st = NULL;
    int rc = store_open_why(cfg->db_path, cfg->busy_timeout, check, &st, why);
    store_close(st);
    if (rc != LC_OK) return rc; /* LC_BUSY, LC_FULL or LC_ERR, logged */
    buf path = {0};
    buf_printf(&path, "%s.wake", cfg->db_path);
    if (wake_open(path.data, wk) != 0) {
        *why = wake_problem(errno);
        rc = *why == STORE_FULL ? LC_FULL : LC_ERR;
    }
    buf_free(&path);
    return rc;
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
    int rc = open_shared(cfg, 1, &wk, why);
    if (rc == LC_OK) rc = store_open_why(cfg->db_path, cfg->busy_timeout, 0, &db, why);
    if (rc == LC_OK) rc = store_open_why(cfg->db_path, cfg->busy_timeout, 0, &ckpt, why);
    if (rc != LC_OK) {
        store_close(ckpt);
        store_close(db);
        wake_close(wk);
        return rc;
    }
    srv.wk = wk;
    srv.db = db;
    srv.ckpt_db = ckpt;
    store_defer_checkpoints(srv.db, CHECKPOINT_BYTES, want_checkpoint, NULL);
    wake_proc_claim(srv.wk);
    srv.pk = park_new(srv.wk, cfg->max_held, on_ready, on_due, NULL);
    if (!srv.pk) return 1;
    /* Maintenance runs once at start (expiring what went idle while no
     * backend ran), then when the database says something is due. */
    due_at(&srv.maint_due, lc_mono_ms());
    if (start_thread(park_thread, 256 * 1024)) return 1;
    /* Two queue workers: one stuck writing to a slow socket or waiting for
     * the database lock does not hold up the others' answers. */
    for (int i = 0; i < 2; i++)
        if (start_thread(queue_worker, 512 * 1024)) return 1;
    atomic_store_explicit(&srv.ready, 1, memory_order_release);
    return LC_OK;
}

int server_run_fastcgi(const lc_config *cfg)
{
    srv.cfg = cfg;
    srv.started_ms = lc_now_ms();
    /* Every request allocates and frees libfcgi's 8 KiB stream buffers. Left
     * to its defaults, glibc gives arena memory back and takes it again,
     * and each munmap flushes the TLB of every thread: keep it instead. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    if (FCGX_Init() != 0) {
        lc_log(LC_LOG_ERROR, "FCGX_Init failed");
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
    /* State that cannot be opened (a full disk, a file the backend may not
     * write, a damaged or newer database) does not end the process: the
     * web server would start it again and again (lighttpd does, at once).
     * It stays, answers every request 503 with the reason (the log line
     * says what to do), and tries again every OPEN_RETRY_S seconds, so that
     * fixing the file is enough -- no restart. */
    store_problem why = STORE_FINE;
    int rc = open_state(cfg, &why);
    if (rc > 0) return 1;
    atomic_store(&srv.down_why, (int)why);
    for (int i = 0; i < cfg->threads; i++)
        if (start_thread(accept_worker, 512 * 1024)) return 1;
    if (rc == LC_OK)
        lc_log(LC_LOG_INFO, "serving FastCGI with %d accept workers, database %s", cfg->threads,
               cfg->db_path);
    else
        lc_log(LC_LOG_WARN,
               "not serving: every request gets 503 until the database %s can be opened "
               "(the line above says why); trying again every %d s",
               cfg->db_path, OPEN_RETRY_S);
    const struct timespec retry = {OPEN_RETRY_S, 0};
    for (;;) {
        int sig = sigtimedwait(&stop, NULL, atomic_load(&srv.ready) ? NULL : &retry);
        if (sig > 0) {
            lc_log(LC_LOG_INFO, "stopping on signal %d", sig);
            break;
        }
        if (atomic_load(&srv.ready)) continue; /* EINTR */
        rc = open_state(cfg, &why);
        if (rc > 0) exit(1);
        atomic_store(&srv.down_why, (int)why);
        if (rc == LC_OK)
            lc_log(LC_LOG_INFO, "database %s opened: serving FastCGI with %d accept workers",
                   cfg->db_path, cfg->threads);
    }
    /* exit(), not a return: workers may still use the configuration that
     * main() would free. */
    exit(0);
}

int server_run_cgi(const lc_config *cfg)
{
    api_env e = {.cfg = cfg, .started_ms = lc_now_ms(), .due_hint = INT64_MAX};
    http_request req;
    http_response resp = {0};
    api_poll poll;
    buf body = {0}, out = {0};
    int code = 1;
    extern char **environ;
    store_problem why = STORE_FINE;
    http_parse(&req, environ);
    int rc = open_shared(cfg, 0, &e.wk, &why);
    if (rc == LC_OK) rc = store_open_why(cfg->db_path, cfg->busy_timeout, 0, &e.st, &why);
    if (rc != LC_OK) {
        /* A CGI process opens the database (and takes the migration lock)
         * for every request: a lock held elsewhere is an answer, as it is in
         * FastCGI mode, not an exit without one (which the web server would
         * turn into its own 500). So is any other problem: its line in the
         * log (store, wake) says what is wrong and what to do. No
         * PRAGMA quick_check here: it would read every page per request. */
        down_answer(cfg, &req, why, &resp);
        goto answer;
    }
    /* No resident process runs maintenance in CGI mode: each request does
     * it when it is due. */
    int64_t live = INT64_MAX, history = INT64_MAX, next, now = lc_now_ms();
    rc = store_begin_read(e.st);
    if (rc == LC_OK)
        rc = store_next_due(e.st, (int64_t)cfg->session_expiry * 1000,
                            (int64_t)cfg->ring_timeout * 1000,
                            (int64_t)cfg->history_days * LC_DAY_MS, &live, &history);
    store_rollback(e.st);
    int64_t due = rc == LC_OK ? (live < history ? live : history) : INT64_MAX;
    if (due <= now && api_maintain(&e, &next) == LC_OK) due = next;

    char chunk[8192];
    size_t n;
    int over = req.content_length > (long long)cfg->max_body;
    while (!over && (n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (body.len + n > cfg->max_body)
            over = 1;
        else
            buf_append(&body, chunk, n);
    }
    buf_append(&body, "", 0);
    if (over) {
        http_error(&resp, 413, WIRE_BODY_TOO_LARGE);
    } else if (api_handle(&e, &req, body.data, body.len, &resp, &poll) == API_PARK) {
        /* Held like a poll parked in a resident process: counted on its slot
         * (so that a newer poll of the session makes it yield) and in
         * /rtc/status (held_polls, processes; the row is released by
         * wake_close). A process killed here leaves the slot count one too
         * high: a hint only, costing a write per poll on that slot. */
        wake_slot_held(e.wk, poll.slot, 1);
        if (wake_proc_claim(e.wk) == 0) wake_proc_held(e.wk, 1);
        for (;;) {
            uint32_t counter = wake_counter(e.wk);
            int64_t left = poll.deadline - lc_mono_ms();
            if (wake_slot_value(e.wk, poll.slot) != poll.seen) {
                if (api_poll_resume(&e, &poll, &resp) == API_DONE) break;
                http_response_free(&resp);
                continue;
            }
            if (left <= 0) {
                api_poll_expire(&poll, &resp);
                break;
            }
            int64_t wall = lc_now_ms();
            if (due <= wall) {
                /* A held CGI poll runs the maintenance that falls due while
                 * it waits (ring timeouts, expiry: no resident process would),
                 * then looks at its slot again. */
                if (api_maintain(&e, &due) != LC_OK || due <= wall) due = wall + 1000;
                continue;
            }
            wake_wait(e.wk, counter, (int)(due - wall < left ? due - wall : left));
        }
        wake_slot_held(e.wk, poll.slot, -1);
    }
answer:
    http_format(&resp, &out);
    code = fwrite(out.data, 1, out.len, stdout) == out.len && fflush(stdout) == 0 ? 0 : 1;
    buf_free(&body);
    buf_free(&out);
    http_response_free(&resp);
    api_env_free(&e);
    store_close(e.st);
    wake_close(e.wk);
    return code;
}
