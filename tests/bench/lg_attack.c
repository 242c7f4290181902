/* lg_attack: the "under attack" scenario (issue 12, "Also"). Honest
 * clients (this process, from 127.0.0.1) measure the relay latency A -> B
 * (as the latency scenario) and the message rate of P ping-pong pairs (as
 * pairs P), in windows without and with the attack (B A A B B A A B ...).
 * The attack runs in a child process, in the windows the parent asks for:
 * N attackers, each on its own source address 127.0.0.2, 127.0.0.3, ...
 * (bind() before connect(); the FastCGI peers name it as REMOTE_ADDR), each
 * a registered session that sends batches of two `list`s (the second is
 * always refused, and the rate soon refuses the first), batches of `call`
 * + `stop` to the honest clients' names and to the other attackers, and
 * reads its own mailbox, each kind o->attack_rate times a second; plus
 * o->slow_per slow readers per address: FastCGI connections on the
 * backend's socket(s) that ask for a ~240 KB poll answer (another session
 * of the attacker, whose mailbox a third one filled) and never read it,
 * reopened when the backend drops them (-K picks which of the three run:
 * l, c, s). Owns the scenario's coordination and output, not the
 * measurements (lg_latency.c, lg_pairs.c). */
#include "lg_conn.h"
#include "lg_fcgi.h"
#include "lg_json.h"
#include "lg_latency.h"
#include "lg_loop.h"
#include "lg_pairs.h"
#include "lg_rtc.h"
#include "lg_util.h"
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ATTACKERS 200 /* 127.0.0.2 .. 127.0.0.201 */
#define MAX_SLOW 16       /* slow readers per attacker address */
#define BIG_MESSAGES 4    /* the slow readers' answer: 4 candidates ... */
#define BIG_CHARS 60000   /* ... of 60,000 characters */
#define CALLS_PER_BATCH 8 /* [call, stop] x 8 per call request */
#define SLOW_RCVBUF 4096
#define NKEYS 40 /* kinds of replies counted (id.reason) */

/* ---- the attackers (the child process) --------------------------------- */

typedef struct kind {
    long long sent, ok, http429, other, failed, skipped;
} kind;

typedef struct attacker {
    char addr[16];
    lg_conn setup, list, call, poll; /* all from addr */
    char f_sid[64], p_sid[64], s_sid[64];
    char f_name[48], p_name[48], s_name[48];
    long long seq; /* F's mailbox read so far */
    int64_t next_list, next_call, next_poll;
    int slow[MAX_SLOW];
    size_t cursor; /* the next target called */
} attacker;

typedef struct tally {
    char key[56];
    long long n;
} tally;

typedef struct attack {
    const lg_opts *o;
    attacker *a;
    int n;
    char **targets; /* names called: the honest ones, then the attackers' */
    size_t ntargets;
    kind list, call, poll;
    tally t[NKEYS];
    int nt;
    long long slow_opened, slow_dropped, slow_failed;
} attack;

static attack A;

typedef struct wait1 {
    int done, status;
    char body[512];
} wait1;

static void on_wait(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    wait1 *w = arg;
    (void)c;
    w->done = 1;
    w->status = status;
    if (len >= sizeof w->body) len = sizeof w->body - 1;
    memcpy(w->body, body, len);
    w->body[len] = 0;
}

static int is_done(void *arg)
{
    return ((wait1 *)arg)->done;
}

/* One request on c, waited for (at most until deadline). Returns the HTTP
 * status or LG_ERR_*; w->body holds the start of the answer. */
static int request(lg_conn *c, const char *method, const char *path, const char *body,
                   int64_t deadline, wait1 *w)
{
    w->done = 0;
    w->body[0] = 0;
    if (lg_conn_request(c, method, path, body, body ? strlen(body) : 0, 10000, on_wait, w) != 0)
        return LG_ERR_IO;
    if (!lg_loop_run(c->loop, is_done, w, deadline)) {
        lg_conn_close(c);
        return LG_ERR_TIMEOUT;
    }
    return w->status;
}

/* POSTs body to sid's send; 0 when answered 200, else -1 (warned). */
static int send_msg(attacker *at, const char *sid, const char *body, int64_t deadline)
{
    char path[160];
    wait1 w;
    snprintf(path, sizeof path, "/rtc/send?sid=%s", sid);
    int st = request(&at->setup, "POST", path, body, deadline, &w);
    if (st == 200) return 0;
    lg_warn("attack %s: a setup send answered %d %.120s", at->addr, st, w.body);
    return -1;
}

/* A new session's sid into out[64]; 0 or -1 (warned). */
static int new_session(attacker *at, char *out, int64_t deadline)
{
    wait1 w;
    int st = request(&at->setup, "POST", "/rtc/session", NULL, deadline, &w);
    if (st == 200 && lgj_str(w.body, strlen(w.body), "sid", out, 64) == 0) return 0;
    lg_warn("attack %s: POST /rtc/session answered %d %.120s", at->addr, st, w.body);
    return -1;
}

/* Attacker i's three sessions: F (the flooder, registered), and P calling
 * S (accepted), P then filling S's mailbox with the big candidates the
 * slow readers ask for. Returns 0 or -1 (warned). */
static int setup_attacker(attacker *at, int i, int64_t deadline)
{
    char body[256];
    unsigned pid = (unsigned)getppid();
    snprintf(at->f_name, sizeof at->f_name, "atk%uf%d", pid, i);
    snprintf(at->p_name, sizeof at->p_name, "atk%up%d", pid, i);
    snprintf(at->s_name, sizeof at->s_name, "atk%us%d", pid, i);
    if (new_session(at, at->f_sid, deadline) || new_session(at, at->p_sid, deadline) ||
        new_session(at, at->s_sid, deadline))
        return -1;
    const char *sids[3] = {at->f_sid, at->p_sid, at->s_sid};
    const char *names[3] = {at->f_name, at->p_name, at->s_name};
    for (int k = 0; k < 3; k++) {
        snprintf(body, sizeof body, "{\"id\":\"register\",\"name\":\"%s\"}", names[k]);
        if (send_msg(at, sids[k], body, deadline)) return -1;
    }
    snprintf(body, sizeof body, "{\"id\":\"call\",\"to\":\"%s\",\"sdpOffer\":\"x\"}", at->s_name);
    if (send_msg(at, at->p_sid, body, deadline)) return -1;
    snprintf(body, sizeof body,
             "{\"id\":\"incomingCallResponse\",\"from\":\"%s\",\"callResponse\":\"accept\","
             "\"sdpOffer\":\"y\"}",
             at->p_name);
    if (send_msg(at, at->s_sid, body, deadline)) return -1;
    size_t cap = BIG_CHARS + 128;
    char *big = lg_xmalloc(cap);
    int rc = 0;
    for (int k = 0; k < BIG_MESSAGES && rc == 0; k++) {
        int n = snprintf(big, cap, "{\"id\":\"onIceCandidate\",\"candidate\":{\"candidate\":\"");
        memset(big + n, 'a' + k, BIG_CHARS);
        n += BIG_CHARS;
        snprintf(big + n, cap - (size_t)n, "\"}}");
        rc = send_msg(at, at->p_sid, big, deadline);
    }
    free(big);
    return rc;
}

/* Counts one reply message of an attacker's mailbox by id and reason. */
static void tally_msg(const char *m, size_t len, void *arg)
{
    char id[24] = "?", reason[24] = "", key[56];
    (void)arg;
    lgj_str(m, len, "id", id, sizeof id);
    lgj_str(m, len, "reason", reason, sizeof reason);
    snprintf(key, sizeof key, "%s%s%s", id, *reason ? "." : "", reason);
    for (char *p = key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.'))
            *p = '_';
    int k;
    for (k = 0; k < A.nt; k++)
        if (strcmp(A.t[k].key, key) == 0) break;
    if (k == A.nt) {
        if (A.nt == NKEYS) return;
        snprintf(A.t[A.nt++].key, sizeof A.t[0].key, "%s", key);
    }
    A.t[k].n++;
}

static void count(kind *k, int status)
{
    if (status == 200)
        k->ok++;
    else if (status == 429)
        k->http429++;
    else if (status > 0)
        k->other++;
    else
        k->failed++;
}

static void on_list(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    (void)c, (void)body, (void)len, (void)arg;
    count(&A.list, status);
}

static void on_call(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    (void)c, (void)body, (void)len, (void)arg;
    count(&A.call, status);
}

static void on_poll(lg_conn *c, int status, const char *body, size_t len, void *arg)
{
    attacker *at = arg;
    long long seq;
    (void)c;
    count(&A.poll, status);
    if (status != 200) return;
    if (lgj_int(body, len, "seq", &seq) == 0 && seq > at->seq) at->seq = seq;
    lgj_each(body, len, "messages", tally_msg, NULL);
}

/* Issues at's requests that are due (one in flight per kind: when the
 * previous one is still out, this one is skipped). */
static void fire(attacker *at, int64_t now, int64_t period)
{
    char path[200], body[2048];
    if (now >= at->next_list && strchr(A.o->attack_kinds, 'l')) {
        at->next_list = at->next_list + period > now ? at->next_list + period : now + period;
        if (at->list.busy) {
            A.list.skipped++;
        } else {
            snprintf(path, sizeof path, "/rtc/send?sid=%s", at->f_sid);
            static const char two[] = "[{\"id\":\"list\"},{\"id\":\"list\"}]";
            if (lg_conn_request(&at->list, "POST", path, two, sizeof two - 1, 10000, on_list, at) ==
                0)
                A.list.sent++;
            else
                A.list.failed++;
        }
    }
    if (now >= at->next_call && strchr(A.o->attack_kinds, 'c')) {
        at->next_call = at->next_call + period > now ? at->next_call + period : now + period;
        if (at->call.busy) {
            A.call.skipped++;
        } else {
            size_t n = 0;
            n += (size_t)snprintf(body + n, sizeof body - n, "[");
            for (int k = 0; k < CALLS_PER_BATCH; k++) {
                const char *to = A.targets[at->cursor++ % A.ntargets];
                if (strcmp(to, at->f_name) == 0) to = A.targets[at->cursor++ % A.ntargets];
                n += (size_t)snprintf(body + n, sizeof body - n,
                                      "%s{\"id\":\"call\",\"to\":\"%s\",\"sdpOffer\":\"v=0 "
                                      "attack\"},{\"id\":\"stop\"}",
                                      k ? "," : "", to);
                if (n >= sizeof body - 2) break;
            }
            if (n < sizeof body - 2) {
                body[n++] = ']';
                body[n] = 0;
            }
            snprintf(path, sizeof path, "/rtc/send?sid=%s", at->f_sid);
            if (lg_conn_request(&at->call, "POST", path, body, n, 10000, on_call, at) == 0)
                A.call.sent++;
            else
                A.call.failed++;
        }
    }
    if (now >= at->next_poll) {
        at->next_poll = at->next_poll + period > now ? at->next_poll + period : now + period;
        if (at->poll.busy) {
            A.poll.skipped++;
        } else {
            snprintf(path, sizeof path, "/rtc/poll?sid=%s&after=%lld&timeout=0", at->f_sid,
                     at->seq);
            if (lg_conn_request(&at->poll, "GET", path, NULL, 0, 10000, on_poll, at) == 0)
                A.poll.sent++;
            else
                A.poll.failed++;
        }
    }
}

/* Opens slow reader j of attacker i (its address as REMOTE_ADDR): asks for
 * S's whole mailbox and will never read. */
static void open_slow(attacker *at, int i, int j, const char *host)
{
    char query[160];
    const lg_opts *o = A.o;
    at->slow[j] = lg_fcgi_connect(o->sockets[(i * o->slow_per + j) % o->nsockets], SLOW_RCVBUF);
    if (at->slow[j] < 0) {
        A.slow_failed++;
        return;
    }
    snprintf(query, sizeof query, "sid=%s&after=0&timeout=0", at->s_sid);
    if (lg_fcgi_request(at->slow[j], "GET", "/rtc/poll", query, host, at->addr) != 0) {
        close(at->slow[j]);
        at->slow[j] = -1;
        A.slow_failed++;
        return;
    }
    A.slow_opened++;
}

/* Reopens the slow readers the backend dropped (closed on its side);
 * returns how many have an answer waiting unread. */
static long check_slow(const char *host)
{
    long stalled = 0;
    for (int i = 0; i < A.n; i++) {
        attacker *at = &A.a[i];
        for (int j = 0; j < A.o->slow_per; j++) {
            if (at->slow[j] < 0) {
                open_slow(at, i, j, host);
                continue;
            }
            struct pollfd p = {.fd = at->slow[j], .events = POLLRDHUP};
            if (poll(&p, 1, 0) == 1 && p.revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                close(at->slow[j]);
                at->slow[j] = -1;
                A.slow_dropped++;
                open_slow(at, i, j, host);
                continue;
            }
            if (lg_fcgi_unread(at->slow[j]) > 0) stalled++;
        }
    }
    return stalled;
}

/* Reads the honest names (one a line) up to a line "GO" from fd; returns
 * 0, or -1 on end of file or error (the parent gave up). */
static int read_go(int fd)
{
    size_t cap = 65536, len = 0;
    char *buf = lg_xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) break;
        ssize_t r = read(fd, buf + len, 1); /* not past "GO\n": an "A" may follow */
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        buf[len] = 0;
        if (len >= 3 && strcmp(buf + len - 3, "GO\n") == 0) {
            size_t nt = 0, cap_t = (size_t)A.n + 64; /* room for the attackers' names */
            A.targets = lg_xmalloc(cap_t * sizeof *A.targets);
            for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
                if (strcmp(line, "GO") == 0) break;
                while (nt + (size_t)A.n + 1 >= cap_t) {
                    cap_t *= 2;
                    A.targets = lg_xrealloc(A.targets, cap_t * sizeof *A.targets);
                }
                A.targets[nt++] = strdup(line);
            }
            for (int i = 0; i < A.n; i++)
                A.targets[nt++] = strdup(A.a[i].f_name);
            A.ntargets = nt;
            free(buf);
            return 0;
        }
    }
    free(buf);
    return -1;
}

/* Closes every slow reader (the backend sees its peer gone). */
static void close_slow(void)
{
    for (int i = 0; i < A.n; i++)
        for (int j = 0; j < MAX_SLOW; j++)
            if (A.a[i].slow[j] >= 0) {
                close(A.a[i].slow[j]);
                A.a[i].slow[j] = -1;
            }
}

static int all_idle(void *arg)
{
    (void)arg;
    for (int i = 0; i < A.n; i++)
        if (A.a[i].list.busy || A.a[i].call.busy || A.a[i].poll.busy) return 0;
    return 1;
}

static void print_kind(const char *name, const kind *k)
{
    printf("attack_%s_requests=%lld\nattack_%s_http_ok=%lld\nattack_%s_http_429=%lld\n"
           "attack_%s_http_other=%lld\nattack_%s_failed=%lld\nattack_%s_skipped=%lld\n",
           name, k->sent, name, k->ok, name, k->http429, name, k->other, name, k->failed, name,
           k->skipped);
}

static long long tally_of(const char *key)
{
    for (int k = 0; k < A.nt; k++)
        if (strcmp(A.t[k].key, key) == 0) return A.t[k].n;
    return 0;
}

/* The child: sets up the attackers, says 'R' on rep, waits for the names
 * and "GO" on ctl, then attacks in the windows ctl asks for ('A' ... 'P';
 * see below) until 'Q' or the end of ctl (or o->limit), then closes its
 * sessions and prints its counts. Returns the exit status. */
static int attackers_main(const lg_opts *o, int ctl, int rep)
{
    lg_loop l;
    int rc = 1, setup_ok = 0;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (lg_loop_init(&l, o->port) != 0) return 1;
    A = (attack){.o = o, .n = (int)o->n};
    A.a = lg_xcalloc((size_t)A.n, sizeof *A.a);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    double cpu0 = lg_cpu_seconds();
    for (int i = 0; i < A.n; i++) {
        attacker *at = &A.a[i];
        struct in_addr src = {.s_addr = htonl(INADDR_LOOPBACK + 1 + (uint32_t)i)};
        inet_ntop(AF_INET, &src, at->addr, sizeof at->addr);
        lg_conn *cs[4] = {&at->setup, &at->list, &at->call, &at->poll};
        for (int k = 0; k < 4; k++) {
            lg_conn_init(cs[k], &l);
            cs[k]->src = src;
        }
        for (int j = 0; j < MAX_SLOW; j++)
            at->slow[j] = -1;
    }
    int64_t setup_end = lg_now_ns() + 60 * LG_NS_PER_S;
    for (int i = 0; i < A.n; i++)
        if (setup_attacker(&A.a[i], i, setup_end < end ? setup_end : end) != 0) {
            lg_warn("attack: attacker %d (%s) could not be set up", i, A.a[i].addr);
            goto out;
        }
    setup_ok = 1;
    if (write(rep, "R", 1) != 1 || read_go(ctl) != 0) goto out;

    /* The attack, in windows: 'A' on ctl starts one (answered 'E' once
     * the slow readers' answers are stalled, at most 5 s), 'P' ends it
     * (the slow readers closed, the requests out answered; answered 'P'),
     * 'Q' or the end of ctl ends all. */
    int64_t period = (int64_t)(LG_NS_PER_S / o->attack_rate), t_go = 0;
    int attacking = 0, effect = 0, slow_on = strchr(o->attack_kinds, 's') != NULL;
    long stalled = 0, stalled_max = 0, total_slow = slow_on ? (long)A.n * o->slow_per : 0;
    int64_t next_check = 0;
    double secs = 0;
    for (;;) {
        int64_t now = lg_now_ns();
        if (now >= end) {
            lg_warn("attack: stopped by the -L bound, no word from the measuring process");
            break;
        }
        struct pollfd p = {.fd = ctl, .events = POLLIN};
        if (poll(&p, 1, attacking ? 0 : 50) == 1) {
            char cmd;
            if (read(ctl, &cmd, 1) != 1 || cmd == 'Q') break;
            if (cmd == 'A' && !attacking) {
                attacking = 1;
                effect = 0;
                t_go = now;
                for (int i = 0; i < A.n; i++) { /* spread over the first period */
                    int64_t off = period * i / A.n;
                    A.a[i].next_list = t_go + off;
                    A.a[i].next_call = t_go + off + period / 3;
                    A.a[i].next_poll = t_go + off + 2 * period / 3;
                }
            } else if (cmd == 'P' && attacking) {
                attacking = 0;
                secs += (double)(now - t_go) / LG_NS_PER_S;
                close_slow();
                lg_loop_run(&l, all_idle, NULL, lg_now_ns() + 3 * LG_NS_PER_S);
                if (write(rep, "P", 1) != 1) break;
            }
            continue;
        }
        if (!attacking) continue;
        for (int i = 0; i < A.n; i++)
            fire(&A.a[i], now, period);
        if (now >= next_check) {
            stalled = slow_on ? check_slow(l.host) : 0;
            if (stalled > stalled_max) stalled_max = stalled;
            if (!effect && (stalled >= total_slow || now - t_go > 5 * LG_NS_PER_S)) {
                effect = 1;
                if (write(rep, "E", 1) != 1) break;
            }
            next_check = now + 50 * LG_NS_PER_MS;
        }
        lg_loop_run(&l, NULL, NULL, now + 5 * LG_NS_PER_MS);
    }
    if (attacking) secs += (double)(lg_now_ns() - t_go) / LG_NS_PER_S;
    close_slow();
    lg_loop_run(&l, all_idle, NULL, lg_now_ns() + 3 * LG_NS_PER_S);
    double cpu = lg_cpu_seconds() - cpu0;
    printf("attack_secs=%.2f\nattack_rate_per_kind=%g\nattack_calls_per_batch=%d\n"
           "attack_targets=%zu\nattacker_cpu_pct=%.0f\n",
           secs, o->attack_rate, CALLS_PER_BATCH, A.ntargets, secs > 0 ? 100.0 * cpu / secs : 0);
    print_kind("list", &A.list);
    print_kind("call", &A.call);
    print_kind("poll", &A.poll);
    for (int k = 0; k < A.nt; k++)
        printf("attack_reply.%s=%lld\n", A.t[k].key, A.t[k].n);
    long long lists_refused = tally_of("error.list_once") + tally_of("error.rate_limited");
    long long calls_refused = 0;
    char reasons[512] = "";
    size_t rl = 0;
    for (int k = 0; k < A.nt; k++)
        if (strncmp(A.t[k].key, "callResponse.", 13) == 0) {
            calls_refused += A.t[k].n;
            rl += (size_t)snprintf(reasons + rl, rl < sizeof reasons ? sizeof reasons - rl : 0,
                                   "%s%s %lld", rl ? ", " : "", A.t[k].key + 13, A.t[k].n);
            if (rl >= sizeof reasons) rl = sizeof reasons - 1;
        }
    printf("attack_lists=%lld\nattack_lists_answered=%lld\nattack_lists_refused=%lld\n"
           "attack_lists_refused_once=%lld\nattack_lists_refused_rate=%lld\n",
           2 * A.list.ok, tally_of("listResponse"), lists_refused, tally_of("error.list_once"),
           tally_of("error.rate_limited"));
    printf("attack_calls=%lld\nattack_calls_refused=%lld\nattack_calls_refused_by=%s\n"
           "attack_incoming_calls=%lld\n",
           CALLS_PER_BATCH * A.call.ok, calls_refused, *reasons ? reasons : "none",
           tally_of("incomingCall"));
    printf("attack_slow_readers=%ld\nattack_slow_stalled_max=%ld\nattack_slow_opened=%lld\n"
           "attack_slow_dropped=%lld\nattack_slow_failed=%lld\n",
           total_slow, stalled_max, A.slow_opened, A.slow_dropped, A.slow_failed);
    printf("# attack: %d attackers (%s ..), %g requests/s each of list, call and poll: "
           "%lld list requests (%lld refused lists), %lld call requests (%lld calls refused: "
           "%s), %lld HTTP 429; %lld slow readers opened, %lld dropped by the backend\n",
           A.n, A.n ? A.a[0].addr : "-", o->attack_rate, A.list.sent, lists_refused, A.call.sent,
           calls_refused, *reasons ? reasons : "none",
           A.list.http429 + A.call.http429 + A.poll.http429, A.slow_opened, A.slow_dropped);
    rc = (A.list.ok > 0 || !strchr(o->attack_kinds, 'l')) &&
                 (A.call.ok > 0 || !strchr(o->attack_kinds, 'c')) &&
                 (total_slow == 0 || A.slow_opened > 0)
             ? 0
             : 1;
out:
    if (!setup_ok) {
        if (write(rep, "F", 1) != 1) rc = 1;
    }
    /* the attackers' sessions end (their names are free) */
    int64_t close_end = lg_now_ns() + 10 * LG_NS_PER_S;
    for (int i = 0; i < A.n; i++) {
        char path[160];
        wait1 w;
        const char *sids[3] = {A.a[i].f_sid, A.a[i].p_sid, A.a[i].s_sid};
        for (int k = 0; k < 3 && !o->no_close; k++) {
            if (!*sids[k] || lg_now_ns() >= close_end) continue;
            snprintf(path, sizeof path, "/rtc/close?sid=%s", sids[k]);
            request(&A.a[i].setup, "POST", path, NULL, close_end, &w);
        }
    }
    fflush(stdout);
    for (int i = 0; i < A.n; i++) {
        lg_conn_free(&A.a[i].setup);
        lg_conn_free(&A.a[i].list);
        lg_conn_free(&A.a[i].call);
        lg_conn_free(&A.a[i].poll);
        for (int j = 0; j < MAX_SLOW; j++)
            if (A.a[i].slow[j] >= 0) close(A.a[i].slow[j]);
    }
    for (size_t k = 0; k < A.ntargets; k++)
        free(A.targets[k]);
    free(A.targets);
    free(A.a);
    lg_loop_free(&l);
    return rc;
}

/* ---- the honest clients (this process) --------------------------------- */

typedef struct phase {
    lg_relay relay;
    lg_pp pp;
} phase;

static void phase_init(phase *p)
{
    lg_relay_init(&p->relay);
    lg_pp_init(&p->pp);
}

static void phase_free(phase *p)
{
    lg_relay_free(&p->relay);
    lg_pp_free(&p->pp);
}

/* One measured stretch added to p: messages relays A -> B, then the pairs
 * ping-pong for secs seconds. */
static void measure(lg_loop *l, lg_sess *lat, lg_sess *pp, size_t np, lg_conn *status,
                    const lg_opts *o, long messages, double secs, int64_t end, phase *p)
{
    lg_relay_run(l, &lat[0], &lat[1], status, messages, o->poll_timeout, end, &p->relay);
    lg_pairs_run(l, pp, np, o->poll_timeout, secs, end, 0, &p->pp);
}

static double rate(const lg_pp *p)
{
    return p->secs > 0 ? (double)p->delivered / p->secs : 0;
}

static void print_phase(const char *name, const phase *p)
{
    char key[64];
    printf("%s_relay_messages=%lld\n%s_relay_errors=%lld\n%s_relay_lost=%lld\n"
           "%s_relay_other=%lld\n",
           name, p->relay.done, name, p->relay.errors, name, p->relay.lost, name, p->relay.other);
    snprintf(key, sizeof key, "%s_relay", name);
    lg_hist_print(&p->relay.relay, key);
    printf("%s_pairs_messages=%lld\n%s_pairs_secs=%.2f\n%s_pairs_msgs_per_s=%.0f\n"
           "%s_pairs_send_errors=%lld\n%s_pairs_poll_errors=%lld\n%s_pairs_lost=%lld\n"
           "%s_pairs_other_polls=%lld\n",
           name, p->pp.delivered, name, p->pp.secs, name, rate(&p->pp), name, p->pp.send_errors,
           name, p->pp.poll_errors, name, p->pp.lost, name, p->pp.empty_polls);
    snprintf(key, sizeof key, "%s_pairs_relay", name);
    lg_hist_print(&p->pp.relay, key);
}

/* Waits for one byte on fd until deadline; returns it, or 0. */
static char wait_byte(int fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - lg_now_ns();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left / LG_NS_PER_MS) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        return n == 1 ? c : 0;
    }
}

/* Writes all of s to fd; 0 or -1. */
static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Waits for the child to end (at most until deadline; then kills it).
 * Returns its exit status, or -1. */
static int reap(pid_t pid, int64_t deadline)
{
    int st;
    while (lg_now_ns() < deadline) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r < 0 && errno != EINTR) return -1;
        usleep(20000);
    }
    lg_warn("attack: the attackers' process did not end: killed");
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static double p50_ratio(const lg_hist *with, const lg_hist *without)
{
    int64_t b = lg_hist_pct(without, 50);
    return with->count && b > 0 ? (double)lg_hist_pct(with, 50) / (double)b : 0;
}

/* The honest clients' figures without, then with the attack; see the top. */
int lg_run_attack(const lg_opts *o)
{
    int ctl[2], rep[2];
    if (o->n < 1 || o->n > MAX_ATTACKERS || o->slow_per < 0 || o->slow_per > MAX_SLOW ||
        o->attack_rate <= 0 || o->attack_rate > 1000 || o->pairs < 1 || o->windows < 1 ||
        o->windows > 50) {
        lg_warn("attack: 1-%d attackers, 0-%d slow readers each (-R), a rate in (0, 1000] (-A), "
                "1 or more pairs (-P) and 1-50 windows (-W)",
                MAX_ATTACKERS, MAX_SLOW);
        return 2;
    }
    if (pipe(ctl) != 0 || pipe(rep) != 0) {
        lg_warn("attack: pipe: %s", strerror(errno));
        return 1;
    }
    /* The child first, before this process has any socket. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        lg_warn("attack: fork: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(ctl[1]);
        close(rep[0]);
        int crc = attackers_main(o, ctl[0], rep[1]);
        fflush(stdout);
        _exit(crc);
    }
    close(ctl[0]);
    close(rep[1]);

    lg_loop l;
    lg_sess *lat = NULL, *pp = NULL;
    lg_conn status;
    phase base, att;
    size_t np = (size_t)o->pairs;
    int rc = 1, setup_ok = 0, child_rc = -1, attacked = 0;
    long long drop0 = -1, drop1 = -1;
    if (lg_loop_init(&l, o->port) != 0) {
        close(ctl[1]);
        reap(pid, lg_now_ns() + 15 * LG_NS_PER_S);
        return 1;
    }
    phase_init(&base);
    phase_init(&att);
    int64_t t0 = lg_now_ns(), end = t0 + (int64_t)(o->limit * LG_NS_PER_S);
    double cpu0 = lg_cpu_seconds();
    lat = lg_sess_alloc(&l, 2, 1);
    pp = lg_sess_alloc(&l, 2 * np, 1);
    lg_conn_init(&status, &l);
    size_t setup = (size_t)o->setup_conns;
    if (lg_sess_create(&l, lat, 2, 2, end) != 0 || lg_sess_pair(&l, lat, 1, 2, end) != 0 ||
        lg_sess_create(&l, pp, 2 * np, setup, end) != 0 ||
        lg_sess_pair(&l, pp, np, setup, end) != 0) {
        lg_warn("attack: the honest clients' setup failed");
        goto out;
    }
    char r = wait_byte(rep[0], lg_now_ns() + 90 * LG_NS_PER_S);
    if (r != 'R') {
        lg_warn("attack: the attackers were not set up (%s)", r ? "they failed" : "no word");
        goto out;
    }
    setup_ok = 1;
    lg_status_int(&status, "dropped_slow", &drop0, end);

    /* The honest names to the child, then "GO": it waits for 'A'. */
    size_t cap = 64 + (2 * np + 2) * sizeof lat[0].name, len = 0;
    char *names = lg_xmalloc(cap);
    for (size_t i = 0; i < 2; i++)
        len += (size_t)snprintf(names + len, cap - len, "%s\n", lat[i].name);
    for (size_t i = 0; i < 2 * np; i++)
        len += (size_t)snprintf(names + len, cap - len, "%s\n", pp[i].name);
    len += (size_t)snprintf(names + len, cap - len, "GO\n");
    int sent = write_all(ctl[1], names, len);
    free(names);
    if (sent != 0) goto out;

    /* 2 x o->windows windows, without (B) and with (A) the attack in the
     * order B A A B B A A B ...: this machine's speed drifts by a third
     * within a minute, and this way a steady drift weighs on both sides
     * alike. Each window: o->iterations / o->windows relays, then the
     * pairs for o->duration / o->windows s. */
    long msgs = o->iterations / o->windows;
    double wsecs = o->duration / o->windows;
    for (int w = 0; w < 2 * o->windows; w++) {
        if (w % 4 == 0 || w % 4 == 3) {
            measure(&l, lat, pp, np, &status, o, msgs, wsecs, end, &base);
            continue;
        }
        if (write_all(ctl[1], "A", 1) != 0 ||
            wait_byte(rep[0], lg_now_ns() + 20 * LG_NS_PER_S) != 'E') {
            lg_warn("attack: the attack did not start");
            goto out;
        }
        attacked++;
        measure(&l, lat, pp, np, &status, o, msgs, wsecs, end, &att);
        if (write_all(ctl[1], "P", 1) != 0 ||
            wait_byte(rep[0], lg_now_ns() + 20 * LG_NS_PER_S) != 'P') {
            lg_warn("attack: the attack did not stop");
            goto out;
        }
    }
    if (drop0 >= 0 && lg_status_int(&status, "dropped_slow", &drop1, end) == 0) drop1 -= drop0;
    if (write_all(ctl[1], "Q", 1) != 0) lg_warn("attack: could not tell the attackers to stop");
    child_rc = reap(pid, lg_now_ns() + 25 * LG_NS_PER_S);
    pid = 0;
    rc = base.relay.done > 0 && att.relay.done > 0 && base.pp.delivered > 0 &&
                 att.pp.delivered > 0 && child_rc == 0 &&
                 base.relay.errors + att.relay.errors + base.relay.lost + att.relay.lost == 0 &&
                 base.pp.lost + att.pp.lost + base.pp.send_errors + att.pp.send_errors +
                         base.pp.poll_errors + att.pp.poll_errors ==
                     0
             ? 0
             : 1;
out:
    close(ctl[1]); /* the child stops at this end of file, if still running */
    if (pid > 0) child_rc = reap(pid, lg_now_ns() + 25 * LG_NS_PER_S);
    close(rep[0]);
    double secs = (double)(lg_now_ns() - t0) / LG_NS_PER_S;
    double cpu = lg_cpu_seconds() - cpu0;
    printf("scenario=attack\nattackers=%ld\npairs=%zu\nattackers_exit=%d\nattack_ran=%d\n", o->n,
           np, child_rc, attacked);
    if (setup_ok) {
        print_phase("base", &base);
        print_phase("attack", &att);
    }
    double rr = p50_ratio(&att.relay.relay, &base.relay.relay);
    double pr = rate(&base.pp) > 0 ? rate(&att.pp) / rate(&base.pp) : 0;
    printf("relay_p50_ratio=%.2f\npairs_rate_ratio=%.2f\ndropped_slow_during=%lld\n"
           "windows=%d\n",
           rr, pr, drop1, o->windows);
    printf("duration_s=%.2f\nloadgen_cpu_pct=%.0f\n", secs, secs > 0 ? 100.0 * cpu / secs : 0);
    printf("# attack: relay p50 %lld -> %lld us (x%.2f), p99 %lld -> %lld us; pairs %zu %.0f -> "
           "%.0f msg/s (x%.2f); lost %lld, errors %lld; slow answers dropped meanwhile %lld\n",
           (long long)lg_hist_pct(&base.relay.relay, 50),
           (long long)lg_hist_pct(&att.relay.relay, 50), rr,
           (long long)lg_hist_pct(&base.relay.relay, 99),
           (long long)lg_hist_pct(&att.relay.relay, 99), np, rate(&base.pp), rate(&att.pp), pr,
           base.relay.lost + att.relay.lost + base.pp.lost + att.pp.lost,
           base.relay.errors + att.relay.errors + base.pp.send_errors + att.pp.send_errors +
               base.pp.poll_errors + att.pp.poll_errors,
           drop1);
    if (setup_ok && !o->no_close) {
        lg_sess_close(&l, lat, 2, 2, lg_now_ns() + 10 * LG_NS_PER_S);
        lg_sess_close(&l, pp, 2 * np, setup, lg_now_ns() + 10 * LG_NS_PER_S);
    }
    lg_conn_free(&status);
    lg_sess_free(lat, 2);
    lg_sess_free(pp, 2 * np);
    phase_free(&base);
    phase_free(&att);
    lg_loop_free(&l);
    return rc;
}
