/* park: the held polls of this process, and the timer of its background
 * work. A parked poll holds no thread: its socket sits in an epoll set
 * (readable = the web server closed it = the client left), its deadline in
 * a heap, and it waits on its wake slot. One thread runs park_run(); workers
 * take what leaves the park (and the timer's firing) with park_next. It
 * does not answer requests, decide what a poll waits for (wait) or what
 * background work there is (jobs), nor touch the database. */
#ifndef LC_PARK_H
#define LC_PARK_H

#include "wake.h"

#include <stdint.h>

/* Why park_next returned: a poll was woken, reached its deadline, or its
 * client left; a writer's socket can take more (or its deadline passed, or
 * it failed: PARK_TIMEOUT, PARK_GONE); or (no entry) the time set with
 * park_due_hint came. */
typedef enum { PARK_WOKEN, PARK_TIMEOUT, PARK_GONE, PARK_WRITABLE, PARK_DUE } park_why;

/* park_add's answer. */
typedef enum {
    PARK_ADDED = 0, /* parked: the entry belongs to the park until park_next or park_take */
    PARK_MOVED,     /* its slot already moved past e->seen: not parked, resume it now */
    PARK_FULL,      /* max entries are parked: not parked, answer 503 */
    PARK_FAILED,    /* its socket cannot be watched (logged): not parked, answer 503 */
    PARK_ADDR_FULL, /* its client address holds its limit of polls: not parked, answer 429 */
    PARK_CLOSED,    /* the process is stopping (park_close): not parked, answer it now */
} park_add_rc;

typedef struct park_entry {
    /* Set by the caller before park_add: */
    int fd;           /* socket to watch for the client leaving */
    uint32_t slot;    /* wake_slot(session) */
    uint32_t seen;    /* slot value read before the database query */
    int64_t deadline; /* lc_mono_ms() time to give up */
    uint32_t addr_bucket; /* wake_addr_bucket of its client; 0: not counted */
    /* Private to park: */
    int addr_counted; /* wake_addr_hold counted it (a writer: the park's own count) */
    int heap_i, tab_i;
    int writer;                     /* parked by park_add_writer (1) or park_add_drainer (2) */
    park_why why;                   /* while in the ready queue */
    struct park_entry *next, *prev; /* bucket list, then the ready queue */
} park_entry;

typedef struct park park;

/* Creates the park for at most max polls and max_writers writers. Returns
 * NULL after logging if epoll/eventfd cannot be had. Free with park_free
 * (only when no thread runs park_run or waits in park_next: in the
 * program, never). */
park *park_new(wake *w, int max, int max_writers);
void park_free(park *p);

/* Sets the held polls one client address may have over all processes
 * (wake_addr_hold); 0 (the default): no such limit. Call before park_add. */
void park_set_addr_max(park *p, int max);

/* Sets the answers one client address (e->addr_bucket) may have parked as
 * writers (park_add_writer) in this process at once; 0 (the default): no
 * such limit. Each may hold up to a poll answer's 256 KiB: this bounds
 * what one client's slow readers make a process keep. Call before
 * park_add_writer. */
void park_set_addr_writers(park *p, int max);

/* Parks e (see park_add_rc). Thread-safe. */
park_add_rc park_add(park *p, park_entry *e);

/* Parks e, an answer whose socket e->fd could not take all of it, until
 * the socket can take more (PARK_WRITABLE), e->deadline passes
 * (PARK_TIMEOUT) or the socket fails or is closed (PARK_GONE). e->slot and
 * e->seen are not used. Returns PARK_ADDED, PARK_FULL (max_writers are
 * parked), PARK_ADDR_FULL (e->addr_bucket, when not 0, has its
 * park_set_addr_writers answers parked here) or PARK_FAILED (logged).
 * Thread-safe. */
park_add_rc park_add_writer(park *p, park_entry *e);

/* Parks e, a socket whose answer is written but whose input (a request
 * body the answer did not need) is still coming, until it can be read
 * (PARK_WRITABLE: "go on"), e->deadline passes (PARK_TIMEOUT) or it fails
 * (PARK_GONE). Counted with the writers; returns as park_add_writer. */
park_add_rc park_add_drainer(park *p, park_entry *e);

/* Takes out of the park, for the caller to resume now, up to max entries
 * parked on slot whose value moved past what they saw (a commit of this
 * process just bumped it: serving them here saves the trip through the
 * futex and the park thread). Returns how many were put in out. */
int park_take(park *p, uint32_t slot, park_entry **out, int max);

/* Makes the park thread compare the slots of every parked poll with what
 * they saw (as when another process posted): for slots this process
 * bumped itself without taking their polls (notify.c). Thread-safe. */
void park_poke(park *p);

/* Sets the timer to when (monotonic ms) if that is earlier than it is set
 * now. Once it fires, one park_next returns PARK_DUE and the timer is off
 * until set again. Thread-safe. */
void park_due_hint(park *p, int64_t when);

/* Waits for the next thing a worker must do: returns an entry that left
 * the park (the caller owns it again) with *why PARK_WOKEN, PARK_TIMEOUT
 * or PARK_GONE, or NULL with *why PARK_DUE when the timer fired. Many
 * threads may wait at once; each event goes to one of them. */
park_entry *park_next(park *p, park_why *why);

/* Stops holding polls, for a stopping process: every parked poll leaves
 * now as PARK_TIMEOUT (answered empty by the workers), and park_add
 * answers PARK_CLOSED from now on. Writers and drainers stay until done.
 * Returns how many polls left. Thread-safe; it cannot be undone. */
int park_close(park *p);

/* Number of parked polls (writers not counted). */
int park_count(park *p);

/* Runs the park loop on the calling thread (starts the futex listener
 * thread itself); it never returns unless it cannot run (-1, logged). */
int park_run(park *p);

#endif
