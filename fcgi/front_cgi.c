/* front_cgi: one request per process; see front_cgi.h. */

#include "front_cgi.h"

#include "metrics.h"

#include "front.h"
#include "jobs.h"
#include "wire.h"

#include <stdio.h>

static long stdin_read(void *arg, char *p, size_t n)
{
    (void)arg;
    size_t got = fread(p, 1, n, stdin);
    return got > 0 ? (long)got : ferror(stdin) ? -1 : 0;
}

/* Holds poll p on this thread until it has an answer in *resp: woken
 * (its slot moved), its deadline, or an error. Meanwhile runs the jobs of
 * sc as they fall due (ring timeouts, expiry), then looks at its slot
 * again. Counted on its slot (so that a newer poll of the session makes
 * it yield) and in /rtc/status (held_polls, processes; the row is released
 * by wake_close). A process killed here leaves the slot count one too
 * high: a hint only, costing a write per poll on that slot. */
static void hold(lc_env *e, jobs *sc, wait_poll *p, http_response *resp)
{
    /* The row also counts this poll against its client address
     * (LONGCALL_ADDR_HELD), as a FastCGI process's park does. */
    int claimed = wake_proc_claim(e->wk) == 0;
    int counted = wake_addr_hold(e->wk, p->pe.addr_bucket, e->cfg->addr_held);
    if (counted < 0) {
        addr_log_refusal(e->wk, p->addr, "LONGCALL_ADDR_HELD", e->cfg->addr_held);
        wait_cannot_hold(p, resp, 429, WIRE_ADDR_HELD, WIRE_ADDR_HELD_RETRY);
        return;
    }
    wake_slot_held(e->wk, p->pe.slot, 1);
    if (claimed) wake_proc_held(e->wk, 1);
    for (;;) {
        uint32_t counter = wake_counter(e->wk);
        if (wake_slot_value(e->wk, p->pe.slot) != p->pe.seen) {
            if (wait_resume(e, p, NULL, resp) == WAIT_ANSWER) {
                /* Woken by a commit (another process's) and answered with
                 * messages: a relay. */
                if (resp->status == 200) {
                    metrics_wakeup(1, 1);
                    if (metrics_count_messages(resp->body.data, resp->body.len) > 0)
                        metrics_relayed(p->pe.slot);
                }
                break;
            }
            http_response_free(resp);
            *resp = (http_response){0};
            continue;
        }
        int64_t now = lc_mono_ms(), left = p->pe.deadline - now;
        if (left <= 0) {
            wait_expire(p, resp);
            break;
        }
        int64_t due = jobs_next(sc, e);
        if (due <= now) {
            wait_woken woken = {0};
            jobs_run_due(sc, e, &woken);
            wait_woken_free(&woken);
            continue;
        }
        wake_wait(e->wk, counter, (int)(due - now < left ? due - now : left));
    }
    wake_slot_held(e->wk, p->pe.slot, -1);
    if (counted == 0) wake_addr_release(e->wk, p->pe.addr_bucket);
}

/* Waits, on this thread, for held send p (wait.c, R9) until its slot
 * moves or its re-check time comes: returns 0 (run it again), or 1 with
 * its 409 in resp when it may not wait (LONGCALL_ADDR_HELD; counted like
 * a poll, on its slot and against its address). */
static int wait_send(lc_env *e, wait_poll *p, http_response *resp)
{
    /* The row first: without one wake_addr_hold counts nothing, and the
     * first wait of every process would pass LONGCALL_ADDR_HELD. */
    int claimed = wake_proc_claim(e->wk) == 0; /* counted in /rtc/status as a held poll */
    int counted = wake_addr_hold(e->wk, p->pe.addr_bucket, e->cfg->addr_held);
    if (counted < 0) {
        addr_log_refusal(e->wk, p->addr, "LONGCALL_ADDR_HELD", e->cfg->addr_held);
        wait_cannot_hold(p, resp, 429, WIRE_ADDR_HELD, WIRE_ADDR_HELD_RETRY);
        return 1;
    }
    wake_slot_held(e->wk, p->pe.slot, 1);
    if (claimed) wake_proc_held(e->wk, 1);
    for (;;) {
        uint32_t counter = wake_counter(e->wk);
        int64_t left = p->pe.deadline - lc_mono_ms();
        if (wake_slot_value(e->wk, p->pe.slot) != p->pe.seen || left <= 0) break;
        wake_wait(e->wk, counter, (int)left);
    }
    wake_slot_held(e->wk, p->pe.slot, -1);
    if (claimed) wake_proc_held(e->wk, -1);
    if (counted == 0) wake_addr_release(e->wk, p->pe.addr_bucket);
    return 0;
}

int front_cgi_run(const lc_config *cfg)
{
    lc_env e = {.cfg = cfg, .started_ms = lc_now_ms()};
    int64_t t0_us = lc_mono_ms() * 1000;
    jobs *sc = NULL;
    http_request req;
    api_result r = {0};
    buf out = {0};
    extern char **environ;
    store_problem why = STORE_FINE;
    http_parse(&req, environ);
    /* A CGI process opens the database (and takes the migration lock) for
     * every request: a lock held elsewhere is an answer, as it is in
     * FastCGI mode, not an exit without one (which the web server would
     * turn into its own 500). So is any other problem: its line in the log
     * (store, wake) says what is wrong and what to do. No PRAGMA
     * quick_check here: it would read every page per request. */
    /* A Host that is not allowed is answered (421, by front_serve) without
     * touching the state at all. */
    int host_ok = http_host_ok(&req, cfg) == 0;
    int rc = host_ok ? LC_OK : LC_ERR; /* why: STORE_FINE */
    /* PostgreSQL under plain CGI is refused (README "Which store"): each
     * request would be a process with a PostgreSQL connection of its own,
     * each held poll holding one, so max_connections would bound the users
     * and the overflow would fail on PostgreSQL's side, the FastCGI nodes'
     * connections included. Answered like any store problem (JSON 503). */
    if (rc == LC_OK && store_db_is_pg(cfg->db_path)) {
        lc_log_event(LC_LOG_ERROR, "config_invalid", LC_NOFIELDS,
                     "LONGCALL_DB: a PostgreSQL database is not served under plain "
                     "CGI (a process and a PostgreSQL connection per request); run the backend "
                     "as FastCGI (lighttpd, spawn-fcgi, mod_fcgid, the systemd units) or use a "
                     "SQLite file");
        why = STORE_OTHER;
        rc = LC_ERR;
    }
    if (rc == LC_OK) rc = front_open_shared(cfg, 0, &e.wk, &why);
    if (rc == LC_OK) rc = store_open_why(cfg->db_path, cfg->busy_timeout, 0, &e.st, &why);
    if (rc == LC_OK) {
        /* No resident process runs the background jobs in CGI mode: each
         * request runs those that are due (no checkpoint job: SQLite
         * checkpoints on commit; no acknowledgement job: each poll writes
         * its own). */
        sc = jobs_new(NULL);
        wait_woken woken = {0};
        if (jobs_next(sc, &e) <= lc_mono_ms()) jobs_run_due(sc, &e, &woken);
        wait_woken_free(&woken);
    }
    front_body rd = {stdin_read, NULL, 0, 0};
    front_serve(&e, rc == LC_OK ? STORE_FINE : why, &req, &rd, &r);
    while (r.park && r.poll.send) { /* a send waiting for its prev= */
        if (wait_send(&e, &r.poll, &r.resp)) {
            api_held_send_free(r.poll.send);
            r.poll.send = NULL;
            r.park = 0;
            break;
        }
        api_held_send *hs = r.poll.send;
        const char *allow = r.poll.allow_origin;
        r.poll.send = NULL;
        api_result_free(&r);
        api_send_resume(&e, hs, allow, &r);
    }
    if (r.then_poll) api_then_poll(&e, &r); /* the peers were woken by futex already */
    if (r.park) hold(&e, sc, &r.poll, &r.resp);
    int ep = metrics_endpoint(&req);
    if (r.resp.status == 200 && (ep == EP_POLL || ep == METRICS_EP_EXCHANGE))
        metrics_delivered(r.resp.body.data, r.resp.body.len);
    metrics_request(ep, r.resp.status, lc_mono_ms() * 1000 - t0_us);
    http_format(&r.resp, &out);
    int code = fwrite(out.data, 1, out.len, stdout) == out.len && fflush(stdout) == 0 ? 0 : 1;
    buf_free(&out);
    api_result_free(&r);
    jobs_free(sc);
    store_close(e.st);
    wake_close(e.wk);
    return code;
}
