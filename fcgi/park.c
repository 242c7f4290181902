/* park: epoll + deadline heap + wake-slot buckets for held polls, and the
 * ready queue workers take them from. See park.h.
 * Threads: park_add(), park_take() and park_next() run on workers, the loop
 * on the park thread, all under one mutex. An epoll event names its entry by table
 * index and generation, never by pointer, so an event for an entry that a
 * worker took (and maybe freed) meanwhile is recognised as stale. */

#include "park.h"

#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct park {
    pthread_mutex_t mu;
    wake *wk;
    int max, count;       /* polls at most; polls and writers parked */
    int max_writers, nwriters;
    int addr_max; /* park_set_addr_max; 0: none */
    int addr_writers_max;  /* park_set_addr_writers; 0: none */
    uint32_t *addr_writers; /* writers parked per address bucket, [0..WAKE_ADDR_BUCKETS] */
    int epfd, evfd;
    uint32_t own_seen; /* this process's futex word when the park was made */
    park_entry *bucket[WAKE_SLOTS]; /* doubly linked lists by wake slot */
    park_entry **heap;              /* min-heap by deadline */
    park_entry **tab;               /* entries by tab_i, NULL = free */
    uint32_t *tab_gen;              /* bumped each time a tab row is reused */
    int *free_rows, nfree, rows;
    uint32_t *snap; /* slot values at the last scan */
    int64_t due;    /* the timer (park_due_hint), monotonic ms */
    /* When the park thread's epoll_wait ends by itself (its deadline or
     * timer, mu): only an earlier deadline or timer is worth waking it
     * with the eventfd -- on a VM each wake is two thread switches. */
    int64_t wake_at;
    atomic_int slots_moved; /* the listener saw another process post: scan */
    int due_fired;  /* the timer fired; no park_next has reported it yet */
    int closed;     /* park_close: no more polls are parked */
    park_entry **moved;                    /* scan_slots' scratch, max entries */
    pthread_cond_t ready_cv;               /* signalled when the queue or due_fired changes */
    park_entry *ready_head, *ready_tail;   /* left the park, for park_next */
};

/* epoll_event.data.u64 of the eventfd; entries use gen << 32 | row. */
#define EVFD_TAG UINT64_MAX

park *park_new(wake *w, int max_polls, int max_writers)
{
    int max = max_polls + max_writers; /* rows of the table and the heap */
    park *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready_cv, NULL);
    p->wk = w;
    p->max = max_polls;
    p->max_writers = max_writers;
    p->heap = xcalloc((size_t)max, sizeof *p->heap);
    p->moved = xcalloc((size_t)max, sizeof *p->moved);
    p->tab = xcalloc((size_t)max, sizeof *p->tab);
    p->tab_gen = xcalloc((size_t)max, sizeof *p->tab_gen);
    p->free_rows = xcalloc((size_t)max, sizeof *p->free_rows);
    p->addr_writers = xcalloc(WAKE_ADDR_BUCKETS + 1, sizeof *p->addr_writers);
    p->rows = max;
    for (int i = 0; i < max; i++)
        p->free_rows[i] = max - 1 - i;
    p->nfree = max;
    p->snap = xcalloc(WAKE_SLOTS, sizeof *p->snap);
    p->due = INT64_MAX;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    /* Read before any entry can be parked, not when the listener thread
     * first runs: a post landing between a park_add and that first read
     * would be taken for the starting value, and its poll would sleep
     * until its deadline. */
    p->own_seen = wake_own_counter(w);
    p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->epfd < 0 || p->evfd < 0) {
        lc_log_event(LC_LOG_ERROR, "park_failed", LC_NOFIELDS,
                     "park: cannot create epoll/eventfd: %s; raise the open-files limit "
                     "(LimitNOFILE, ulimit -n)",
                     strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EVFD_TAG};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) != 0) {
        lc_log_event(LC_LOG_ERROR, "park_failed", LC_NOFIELDS, "park: epoll_ctl: %s",
                     strerror(errno));
        goto fail;
    }
    wake_snapshot(w, p->snap);
    return p;
fail:
    park_free(p);
    return NULL;
}

void park_free(park *p)
{
    if (!p) return;
    if (p->epfd >= 0) close(p->epfd);
    if (p->evfd >= 0) close(p->evfd);
    free(p->heap);
    free(p->moved);
    free(p->tab);
    free(p->tab_gen);
    free(p->free_rows);
    free(p->addr_writers);
    free(p->snap);
    pthread_cond_destroy(&p->ready_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* --- deadline heap (caller holds mu) --- */
static void heap_swap(park *p, int a, int b)
{
    park_entry *t = p->heap[a];
    p->heap[a] = p->heap[b];
    p->heap[b] = t;
    p->heap[a]->heap_i = a;
    p->heap[b]->heap_i = b;
}

static void heap_up(park *p, int i)
{
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (p->heap[parent]->deadline <= p->heap[i]->deadline) break;
        heap_swap(p, i, parent);
        i = parent;
    }
}

static void heap_down(park *p, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->count && p->heap[l]->deadline < p->heap[m]->deadline) m = l;
        if (r < p->count && p->heap[r]->deadline < p->heap[m]->deadline) m = r;
        if (m == i) break;
        heap_swap(p, i, m);
        i = m;
    }
}

/* Takes e out of the heap, its bucket, epoll and the counters. mu held. */
static void unpark(park *p, park_entry *e)
{
    int i = e->heap_i;
    p->count--;
    if (i != p->count) {
        heap_swap(p, i, p->count);
        heap_down(p, i);
        heap_up(p, i);
    }
    e->heap_i = -1;
    p->tab[e->tab_i] = NULL;
    p->free_rows[p->nfree++] = e->tab_i;
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, e->fd, NULL);
    if (e->writer) {
        p->nwriters--;
        if (e->addr_counted) p->addr_writers[e->addr_bucket]--;
        e->addr_counted = 0;
        return;
    }
    if (e->prev)
        e->prev->next = e->next;
    else
        p->bucket[e->slot] = e->next;
    if (e->next) e->next->prev = e->prev;
    e->next = e->prev = NULL;
    wake_slot_held(p->wk, e->slot, -1);
    wake_proc_held(p->wk, -1);
    if (e->addr_counted) wake_addr_release(p->wk, e->addr_bucket);
    e->addr_counted = 0;
}

void park_set_addr_max(park *p, int max)
{
    p->addr_max = max;
}

void park_set_addr_writers(park *p, int max)
{
    p->addr_writers_max = max;
}

/* Gives e a free row, watched for events, and puts it into the deadline
 * heap. Returns 0, or -1 (logged) when epoll_ctl fails. mu held; a row is
 * free. */
static int enter(park *p, park_entry *e, uint32_t events)
{
    int row = p->free_rows[p->nfree - 1];
    struct epoll_event ev = {.events = events,
                             .data.u64 = (uint64_t)(p->tab_gen[row] + 1) << 32 | (uint32_t)row};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, e->fd, &ev) != 0) {
        /* Clients can make this happen for every poll (held polls past the
         * kernel's epoll watch limit): the first line at once, then one a
         * minute with the count. */
        static lc_log_rate watch_rate;
        int err = errno;
        long n = lc_log_due(&watch_rate, 60000);
        if (n)
            lc_log_event(LC_LOG_ERROR, "park_failed", LC_FIELDS(LC_NUM("count", n)),
                         "park: cannot watch fd %d: %s; this request is answered at once (%ld "
                         "such in this process since the previous line; at most one a minute): "
                         "raise the open-files limit or lower LONGCALL_MAX_HELD",
                         e->fd, strerror(err), n);
        return -1;
    }
    p->nfree--;
    p->tab_gen[row]++;
    p->tab[row] = e;
    e->tab_i = row;
    e->heap_i = p->count;
    p->heap[p->count++] = e;
    heap_up(p, e->heap_i);
    /* The park thread may be sleeping until a later deadline. */
    if (e->deadline < p->wake_at) {
        uint64_t one = 1;
        ssize_t w = write(p->evfd, &one, sizeof one);
        (void)w; /* EAGAIN: already signalled */
    }
    return 0;
}

park_add_rc park_add(park *p, park_entry *e)
{
    park_add_rc rc = PARK_ADDED;
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        rc = PARK_CLOSED;
        goto out;
    }
    if (p->count - p->nwriters >= p->max) {
        rc = PARK_FULL;
        goto out;
    }
    e->addr_counted = 0;
    if (p->addr_max > 0 && e->addr_bucket) {
        int h = wake_addr_hold(p->wk, e->addr_bucket, p->addr_max);
        if (h < 0) {
            rc = PARK_ADDR_FULL;
            goto out;
        }
        e->addr_counted = h == 0;
    }
    wake_slot_held(p->wk, e->slot, 1);
    /* Checked after raising the held count (and under mu, which the scan
     * also holds): a post either shows here, or wakes the park thread,
     * whose scan will find e in its bucket. */
    if (wake_slot_value(p->wk, e->slot) != e->seen) {
        wake_slot_held(p->wk, e->slot, -1);
        rc = PARK_MOVED;
        goto uncount;
    }
    e->writer = 0;
    if (enter(p, e, EPOLLIN | EPOLLRDHUP) != 0) {
        wake_slot_held(p->wk, e->slot, -1);
        rc = PARK_FAILED;
        goto uncount;
    }
    e->prev = NULL;
    e->next = p->bucket[e->slot];
    if (e->next) e->next->prev = e;
    p->bucket[e->slot] = e;
    wake_proc_held(p->wk, 1);
    goto out;
uncount:
    if (e->addr_counted) wake_addr_release(p->wk, e->addr_bucket);
    e->addr_counted = 0;
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* park_add_writer (kind 1, waits for EPOLLOUT) and park_add_drainer
 * (kind 2, EPOLLIN). */
static park_add_rc add_writer(park *p, park_entry *e, int kind)
{
    park_add_rc rc = PARK_ADDED;
    pthread_mutex_lock(&p->mu);
    e->writer = kind;
    e->next = e->prev = NULL;
    e->addr_counted = 0;
    int counted = p->addr_writers_max > 0 && e->addr_bucket > 0 &&
                  e->addr_bucket <= WAKE_ADDR_BUCKETS;
    if (p->nwriters >= p->max_writers)
        rc = PARK_FULL;
    else if (counted && p->addr_writers[e->addr_bucket] >= (uint32_t)p->addr_writers_max)
        rc = PARK_ADDR_FULL;
    else if (enter(p, e, kind == 1 ? EPOLLOUT | EPOLLRDHUP : EPOLLIN) != 0)
        rc = PARK_FAILED;
    else
        p->nwriters++;
    if (rc == PARK_ADDED && counted) {
        p->addr_writers[e->addr_bucket]++;
        e->addr_counted = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

park_add_rc park_add_writer(park *p, park_entry *e)
{
    return add_writer(p, e, 1);
}

park_add_rc park_add_drainer(park *p, park_entry *e)
{
    return add_writer(p, e, 2);
}

void park_due_hint(park *p, int64_t when)
{
    int earlier = 0;
    pthread_mutex_lock(&p->mu);
    if (when < p->due) {
        p->due = when;
        earlier = when < p->wake_at;
    }
    pthread_mutex_unlock(&p->mu);
    if (earlier) {
        uint64_t one = 1;
        ssize_t w = write(p->evfd, &one, sizeof one);
        (void)w;
    }
}

int park_take(park *p, uint32_t slot, park_entry **out, int max)
{
    int n = 0;
    pthread_mutex_lock(&p->mu);
    uint32_t v = wake_slot_value(p->wk, slot);
    park_entry *e = p->bucket[slot];
    while (e && n < max) {
        park_entry *next = e->next;
        if (e->seen != v) {
            unpark(p, e);
            out[n++] = e;
        }
        e = next;
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

int park_count(park *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->count - p->nwriters;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Takes e out of the park and queues it for park_next. mu held. */
static void release(park *p, park_entry *e, park_why why);

int park_close(park *p)
{
    int n = 0;
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    for (int i = 0; i < p->count; i++)
        if (!p->heap[i]->writer) p->moved[n++] = p->heap[i];
    for (int i = 0; i < n; i++)
        release(p, p->moved[i], PARK_TIMEOUT); /* after the walk: it reorders */
    pthread_mutex_unlock(&p->mu);
    return n;
}

void park_poke(park *p)
{
    atomic_store(&p->slots_moved, 1);
    uint64_t one = 1;
    ssize_t w = write(p->evfd, &one, sizeof one);
    (void)w; /* EAGAIN: already signalled */
}

/* The futex listener: turns changes of the shared counter into eventfd
 * writes, so the park thread can wait on epoll alone. */
static void *listener(void *arg)
{
    park *p = arg;
    uint32_t last = p->own_seen;
    for (;;) {
        uint32_t now = wake_own_wait(p->wk, last);
        if (now != last) {
            last = now;
            atomic_store(&p->slots_moved, 1);
            uint64_t one = 1;
            ssize_t w = write(p->evfd, &one, sizeof one);
            (void)w;
        }
    }
    return NULL;
}

static void release(park *p, park_entry *e, park_why why)
{
    unpark(p, e);
    e->why = why;
    e->next = NULL;
    if (p->ready_tail)
        p->ready_tail->next = e;
    else
        p->ready_head = e;
    p->ready_tail = e;
    pthread_cond_signal(&p->ready_cv);
}

park_entry *park_next(park *p, park_why *why)
{
    pthread_mutex_lock(&p->mu);
    while (!p->ready_head && !p->due_fired)
        pthread_cond_wait(&p->ready_cv, &p->mu);
    park_entry *e = p->ready_head;
    if (e) {
        p->ready_head = e->next;
        if (!p->ready_head) p->ready_tail = NULL;
        e->next = NULL;
        *why = e->why;
    } else {
        p->due_fired = 0;
        *why = PARK_DUE;
    }
    pthread_mutex_unlock(&p->mu);
    return e;
}

/* Wakes the entries whose slot moved. mu held. With few entries, looking at
 * each entry is cheaper than looking at every slot. */
static void scan_slots(park *p)
{
    if (p->count < (int)(WAKE_SLOTS / 8)) {
        int n = 0;
        for (int i = 0; i < p->count; i++) {
            park_entry *e = p->heap[i];
            if (!e->writer && wake_slot_value(p->wk, e->slot) != e->seen) p->moved[n++] = e;
        }
        for (int i = 0; i < n; i++)
            release(p, p->moved[i], PARK_WOKEN); /* after the walk: it reorders */
        return;
    }
    for (uint32_t s = 0; s < WAKE_SLOTS; s++) {
        uint32_t v = wake_slot_value(p->wk, s);
        if (v == p->snap[s]) continue;
        p->snap[s] = v;
        park_entry *e = p->bucket[s];
        while (e) {
            park_entry *next = e->next;
            if (e->seen != v) release(p, e, PARK_WOKEN);
            e = next;
        }
    }
}

int park_run(park *p)
{
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int err = pthread_create(&th, &attr, listener, p);
    pthread_attr_destroy(&attr);
    if (err) {
        lc_log_event(LC_LOG_ERROR, "thread_failed", LC_NOFIELDS,
                     "park: cannot start the wake listener: %s; raise the process or task limit "
                     "(ulimit -u, systemd TasksMax)",
                     strerror(err));
        return -1;
    }
    enum { MAX_EVENTS = 256 };
    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int64_t now = lc_mono_ms();
        int64_t next = p->due;
        if (p->count && p->heap[0]->deadline < next) next = p->heap[0]->deadline;
        p->wake_at = next;
        pthread_mutex_unlock(&p->mu);
        int timeout = next == INT64_MAX ? -1 : next <= now ? 0 : (int)(next - now);
        int n = epoll_wait(p->epfd, ev, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            lc_log_event(LC_LOG_ERROR, "park_failed", LC_NOFIELDS, "park: epoll_wait: %s",
                         strerror(errno));
            return -1;
        }
        int scan = 0;
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == EVFD_TAG) {
                uint64_t v;
                ssize_t r = read(p->evfd, &v, sizeof v);
                (void)r;
                /* A timer or deadline change alone needs no scan: polls
                 * posted by this process were taken by their poster. */
                scan = atomic_exchange(&p->slots_moved, 0);
                continue;
            }
            uint32_t row = (uint32_t)ev[i].data.u64, gen = (uint32_t)(ev[i].data.u64 >> 32);
            park_entry *e = row < (uint32_t)p->rows ? p->tab[row] : NULL;
            if (!e || p->tab_gen[row] != gen) continue; /* taken or replaced meanwhile */
            int can_go_on = e->writer == 2
                                ? (ev[i].events & EPOLLIN) && !(ev[i].events & EPOLLERR)
                                : (ev[i].events & EPOLLOUT) && !(ev[i].events & (EPOLLERR | EPOLLHUP));
            release(p, e, e->writer && can_go_on ? PARK_WRITABLE : PARK_GONE);
        }
        if (scan && p->count) scan_slots(p);
        now = lc_mono_ms();
        while (p->count && p->heap[0]->deadline <= now)
            release(p, p->heap[0], PARK_TIMEOUT);
        if (p->due <= now) {
            p->due = INT64_MAX; /* whoever runs what is due sets the next time */
            p->due_fired = 1;
            pthread_cond_signal(&p->ready_cv);
        }
        pthread_mutex_unlock(&p->mu);
    }
}
