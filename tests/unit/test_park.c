/* Unit tests of wake.c and park.c: a parked entry is woken by a post to its
 * session (also from another process), times out at its deadline, leaves
 * when its socket closes, is refused when the park is full, and is not
 * parked when its slot moved before parking. */
#include "../../fcgi/park.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/wake.c"
#include "unit.h"

#include <sys/socket.h>
#include <sys/wait.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static park_entry *got[16];
static park_why why_of[16];
static int ngot, ndue;

static void ready(void *arg, park_entry *e, park_why why)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    got[ngot] = e;
    why_of[ngot++] = why;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void due(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    ndue++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Waits (at most 10 s: a bound, not a timing assertion) for event n. */
static int wait_event(int n, park_entry *e, park_why *why)
{
    int64_t end = lc_mono_ms() + 10000;
    pthread_mutex_lock(&mu);
    while (ngot <= n && lc_mono_ms() < end) {
        struct timespec ts = {0, 10 * 1000000};
        pthread_mutex_unlock(&mu);
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&mu);
    }
    int ok = ngot > n && got[n] == e;
    if (ok) *why = why_of[n];
    pthread_mutex_unlock(&mu);
    return ok;
}

static void *runner(void *arg)
{
    park_run(arg);
    return NULL;
}

/* A queue worker: takes what park_next hands out, and records it. */
static void *collector(void *arg)
{
    for (;;) {
        park_why why;
        park_entry *e = park_next(arg, &why);
        if (e)
            ready(NULL, e, why);
        else
            due(NULL);
    }
    return NULL;
}

static void entry(park_entry *e, wake *w, int64_t session, int fd, int64_t ms)
{
    memset(e, 0, sizeof *e);
    e->fd = fd;
    e->slot = wake_slot(session);
    e->seen = wake_slot_value(w, e->slot);
    e->deadline = lc_mono_ms() + ms;
}

/* The wake file: allocated for real (not sparse), and a damaged one
 * (truncated, overwritten) rebuilt at open. */
static void test_wake_repair(void)
{
    char path[] = "/tmp/longcall-wake-repair-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    close(fd);
    wake *w = NULL;
    struct stat sb;
    CHECK("wake repair: a new file is set up", wake_open(path, &w) == 0);
    CHECK("wake repair: its space is allocated, not sparse",
          stat(path, &sb) == 0 && (size_t)sb.st_size == sizeof(struct wake_shm) &&
              (size_t)sb.st_blocks * 512 >= sizeof(struct wake_shm));
    wake_post(w, 5);
    uint32_t slot5 = wake_slot_value(w, wake_slot(5));
    wake_close(w);
    w = NULL;
    CHECK("wake repair: a good file is kept as it is",
          wake_open(path, &w) == 0 && wake_slot_value(w, wake_slot(5)) == slot5 && slot5 == 1);
    wake_close(w);
    w = NULL;
    CHECK("wake repair: truncate", truncate(path, 100) == 0);
    CHECK("wake repair: a truncated file is grown and rebuilt",
          wake_open(path, &w) == 0 && stat(path, &sb) == 0 &&
              (size_t)sb.st_size == sizeof(struct wake_shm) && w->shm->magic == WAKE_MAGIC &&
              wake_slot_value(w, wake_slot(5)) == 0);
    wake_close(w);
    w = NULL;
    fd = open(path, O_WRONLY);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    for (size_t off = 0; fd >= 0 && off < sizeof(struct wake_shm); off += sizeof junk)
        if (pwrite(fd, junk, sizeof junk, (off_t)off) < 0) break;
    if (fd >= 0) close(fd);
    CHECK("wake repair: a garbage file is rebuilt",
          wake_open(path, &w) == 0 && w->shm->magic == WAKE_MAGIC &&
              w->shm->version == WAKE_VERSION && wake_counter(w) == 0 &&
              atomic_load(&w->shm->rows) == 0);
    wake_close(w);
    w = NULL;
    CHECK("wake repair: a missing folder is an error with errno",
          wake_open("/nonexistent-longcall/x.wake", &w) == -1 && errno == ENOENT && !w);
    unlink(path);
}

/* Writers per client address (park_set_addr_writers): one address's
 * answers beyond the limit are refused (PARK_ADDR_FULL), another
 * address's and uncounted ones (bucket 0) are not. No park thread runs:
 * the entries stay parked until park_free. */
static void test_addr_writers(wake *w)
{
    park *p = park_new(w, 4, 8);
    park_set_addr_writers(p, 2);
    int sv[5][2];
    park_entry e[5];
    park_add_rc rc[5];
    uint32_t bucket[5] = {7, 7, 7, 8, 0};
    for (int i = 0; i < 5; i++) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]);
        entry(&e[i], w, 0, sv[i][0], 60000);
        e[i].addr_bucket = bucket[i];
        rc[i] = park_add_writer(p, &e[i]);
    }
    CHECK("park: an address's writers up to LONGCALL_ADDR_WRITERS are parked",
          rc[0] == PARK_ADDED && rc[1] == PARK_ADDED);
    CHECK("park: one more of that address is refused", rc[2] == PARK_ADDR_FULL);
    CHECK("park: another address's writer is parked", rc[3] == PARK_ADDED);
    CHECK("park: a writer without an address is not counted", rc[4] == PARK_ADDED);
    park_free(p);
    for (int i = 0; i < 5; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

/* park_close (a stopping process): every parked poll leaves at once as a
 * time-out, writers stay, and no poll is parked afterwards. */
static void test_close(wake *w)
{
    int64_t held0, held;
    int procs;
    wake_held_total(w, &held0, &procs);
    park *p = park_new(w, 8, 2);
    int sv[5][2];
    park_entry e[5];
    for (int i = 0; i < 5; i++) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]);
        entry(&e[i], w, 300 + i, sv[i][0], 60000);
    }
    int parked = 0;
    for (int i = 0; i < 3; i++)
        parked += park_add(p, &e[i]) == PARK_ADDED;
    CHECK("park_close: (3 polls and a writer parked)",
          parked == 3 && park_add_writer(p, &e[3]) == PARK_ADDED);
    CHECK("park_close: says how many polls it let go", park_close(p) == 3);
    CHECK("park_close: no poll is held any more", park_count(p) == 0);
    int left = 0, timeouts = 0;
    park_why why;
    for (int i = 0; i < 3; i++) {
        park_entry *out = park_next(p, &why);
        left += out == &e[0] || out == &e[1] || out == &e[2];
        timeouts += why == PARK_TIMEOUT;
    }
    CHECK("park_close: each poll leaves as a time-out (answered empty)",
          left == 3 && timeouts == 3);
    pthread_mutex_lock(&p->mu);
    int writer_stays = p->nwriters == 1 && !p->ready_head;
    pthread_mutex_unlock(&p->mu);
    CHECK("park_close: a writer stays until its answer is written", writer_stays);
    CHECK("park_close: a poll parked afterwards is refused (answered at once)",
          park_add(p, &e[4]) == PARK_CLOSED && park_count(p) == 0);
    wake_held_total(w, &held, &procs);
    CHECK("park_close: the shared held count is back to what it was", held == held0);
    park_free(p);
    for (int i = 0; i < 5; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

int main(void)
{
    char path[] = "/tmp/longcall-wake-XXXXXX";
    int tmp = mkstemp(path);
    if (tmp < 0) return 1;
    close(tmp);
    wake *w = NULL;
    CHECK("wake: file mapped", wake_open(path, &w) == 0);
    uint32_t s1 = wake_slot(1), before = wake_slot_value(w, s1);
    CHECK("wake: post returns the old value and bumps the slot",
          wake_post(w, 1) == before && wake_slot_value(w, s1) == before + 1);
    CHECK("wake: slots spread consecutive sessions", wake_slot(1) != wake_slot(2));
    CHECK("wake: process row claimed", wake_proc_claim(w) == 0);

    park *p = park_new(w, 4, 2);
    CHECK("park: created", p != NULL);
    pthread_t th, th2;
    pthread_create(&th, NULL, runner, p);
    pthread_create(&th2, NULL, collector, p);
    park_why why;
    int sv[4][2];
    for (int i = 0; i < 4; i++)
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]);

    park_entry e1, e2, e3, e4, e5, stale;
    entry(&e1, w, 10, sv[0][0], 60000);
    CHECK("park: entry parked", park_add(p, &e1) == PARK_ADDED && park_count(p) == 1);
    int64_t held;
    int procs;
    wake_held_total(w, &held, &procs);
    CHECK("park: held poll counted in the shared file", held == 1 && procs == 1);
    /* A second mapping without a process row posts like another process
     * (or a CGI request) would. */
    wake *other = NULL;
    wake_open(path, &other);
    wake_post(other, 10);
    CHECK("park: a post from elsewhere wakes the entry",
          wait_event(0, &e1, &why) && why == PARK_WOKEN);
    CHECK("park: woken entry left the park", park_count(p) == 0);

    entry(&stale, w, 11, sv[1][0], 60000);
    wake_post(w, 11);
    CHECK("park: an entry whose slot moved is not parked", park_add(p, &stale) == PARK_MOVED);

    entry(&e2, w, 12, sv[1][0], 50);
    CHECK("park: short entry parked", park_add(p, &e2) == PARK_ADDED);
    CHECK("park: deadline gives a timeout", wait_event(1, &e2, &why) && why == PARK_TIMEOUT);

    entry(&e3, w, 13, sv[2][0], 60000);
    park_add(p, &e3);
    close(sv[2][1]);
    CHECK("park: a closed socket means the client left",
          wait_event(2, &e3, &why) && why == PARK_GONE);

    entry(&e4, w, 14, sv[3][0], 60000);
    park_add(p, &e4);
    pid_t child = fork();
    if (child == 0) {
        wake *cw = NULL;
        if (wake_open(path, &cw) != 0) _exit(1);
        wake_post(cw, 14);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    CHECK("park: a post from another process wakes the entry",
          wait_event(3, &e4, &why) && why == PARK_WOKEN);

    /* Our own posts do not wake our park thread: the poster takes the
     * entries itself. */
    park_entry e6, *taken[4];
    entry(&e6, w, 15, dup(sv[3][0]), 60000);
    CHECK("park: entry parked for a local wake", park_add(p, &e6) == PARK_ADDED);
    CHECK("park: nothing to take before the post", park_take(p, e6.slot, taken, 4) == 0);
    wake_post(w, 15);
    CHECK("park: the poster takes the entry its post woke",
          park_take(p, e6.slot, taken, 4) == 1 && taken[0] == &e6 && park_count(p) == 0);
    close(e6.fd);

    park_entry fill[4];
    int parked = 0;
    for (int i = 0; i < 4; i++) {
        entry(&fill[i], w, 100 + i, sv[0][0], 60000);
        /* the same fd cannot be in one epoll set twice: use dup()s */
        fill[i].fd = dup(sv[0][0]);
        parked += park_add(p, &fill[i]) == PARK_ADDED;
    }
    entry(&e5, w, 200, dup(sv[1][0]), 60000);
    CHECK("park: full park refuses", parked == 4 && park_add(p, &e5) == PARK_FULL);

    /* Writers: an answer whose socket is full waits for EPOLLOUT. */
    int wv[4][2];
    for (int i = 0; i < 4; i++)
        socketpair(AF_UNIX, SOCK_STREAM, 0, wv[i]);
    char junk[4096] = {0}, sink[65536];
    for (int i = 0; i < 4; i += 3) /* wv[0] and wv[3] full: nobody reads them yet */
        while (send(wv[i][0], junk, sizeof junk, MSG_DONTWAIT) > 0)
            ;
    park_entry w1, w2, w3, w4;
    entry(&w1, w, 0, wv[0][0], 60000);
    entry(&w2, w, 0, wv[3][0], 60000);
    entry(&w3, w, 0, wv[2][0], 60000);
    CHECK("park: a full park still takes a writer (polls and writers are counted apart)",
          park_add_writer(p, &w1) == PARK_ADDED && park_count(p) == 4);
    wake_held_total(w, &held, &procs);
    CHECK("park: a writer is not a held poll", held == 4);
    CHECK("park: writers are limited too",
          park_add_writer(p, &w2) == PARK_ADDED && park_add_writer(p, &w3) == PARK_FULL);
    while (recv(wv[0][1], sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
    CHECK("park: a full socket that the reader empties becomes writable",
          wait_event(4, &w1, &why) && why == PARK_WRITABLE);
    CHECK("park: a socket with room is writable at once",
          park_add_writer(p, &w3) == PARK_ADDED && wait_event(5, &w3, &why) &&
              why == PARK_WRITABLE);
    /* w2's reader never reads: out at its deadline. w4 (its peer gone): out at once. */
    close(wv[1][1]);
    entry(&w4, w, 0, wv[1][0], 60000);
    CHECK("park: a writer whose reader closed is gone",
          park_add_writer(p, &w4) == PARK_ADDED && wait_event(6, &w4, &why) &&
              why == PARK_GONE);
    pthread_mutex_lock(&p->mu);
    w2.deadline = lc_mono_ms() + 50; /* as if parked 50 ms before its end */
    heap_up(p, w2.heap_i);
    pthread_mutex_unlock(&p->mu);
    park_due_hint(p, lc_mono_ms()); /* wakes the park thread to look at the heap */
    CHECK("park: a writer whose reader never reads reaches its deadline",
          wait_event(7, &w2, &why) && why == PARK_TIMEOUT);
    /* Drainers: an answered socket whose unread input (a body the answer
     * did not need) is still coming waits until it can be read. */
    int dv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, dv);
    park_entry d1;
    entry(&d1, w, 0, dv[0], 60000);
    CHECK("park: a drainer is parked", park_add_drainer(p, &d1) == PARK_ADDED);
    struct timespec pause = {0, 100 * 1000000};
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&mu);
    int quiet = ngot == 8;
    pthread_mutex_unlock(&mu);
    CHECK("park: a drainer with nothing to read waits", quiet);
    send(dv[1], "x", 1, MSG_NOSIGNAL);
    CHECK("park: a drainer whose input comes goes on",
          wait_event(8, &d1, &why) && why == PARK_WRITABLE);
    char one;
    CHECK("park: (its input is there)", recv(dv[0], &one, 1, MSG_DONTWAIT) == 1);
    close(dv[1]);
    CHECK("park: a drainer whose peer closed goes on (to read the end)",
          park_add_drainer(p, &d1) == PARK_ADDED && wait_event(9, &d1, &why) &&
              why == PARK_WRITABLE && recv(dv[0], &one, 1, MSG_DONTWAIT) == 0);
    close(dv[0]);
    for (int i = 0; i < 4; i++) {
        close(wv[i][0]);
        if (i != 1) close(wv[i][1]);
    }
    /* The timer set above fired once (due() counted it): start afresh. */
    for (int64_t end = lc_mono_ms() + 10000; lc_mono_ms() < end;) {
        pthread_mutex_lock(&mu);
        int d = ndue;
        ndue = 0;
        pthread_mutex_unlock(&mu);
        if (d) break;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }

    park_due_hint(p, lc_mono_ms() + 60000);
    park_due_hint(p, lc_mono_ms()); /* only ever earlier */
    int64_t end = lc_mono_ms() + 10000;
    while (lc_mono_ms() < end) {
        pthread_mutex_lock(&mu);
        int d = ndue;
        pthread_mutex_unlock(&mu);
        if (d) break;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK("park: the timer fires once, through park_next", ndue == 1);
    test_addr_writers(w);
    test_close(w);
    wake_close(other);
    unlink(path);
    test_wake_repair();
    return unit_done();
}
