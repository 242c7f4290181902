/* park: the held polls of this process. A parked poll holds no thread: its
 * socket sits in an epoll set (readable = the web server closed it = the
 * client left), its deadline in a heap, and it waits on its wake slot. One
 * thread runs park_run(); it hands ready polls back through a callback. It
 * does not answer requests or touch the database. */
#ifndef LC_PARK_H
#define LC_PARK_H

#include "wake.h"

#include <stdint.h>

typedef enum { PARK_WOKEN, PARK_TIMEOUT, PARK_GONE } park_why;

typedef struct park_entry {
    /* Set by the caller before park_add: */
    int fd;           /* socket to watch for the client leaving */
    uint32_t slot;    /* wake_slot(session) */
    uint32_t seen;    /* slot value read before the database query */
    int64_t deadline; /* lc_mono_ms() time to give up */
    /* Private to park: */
    int heap_i, tab_i;
    struct park_entry *next, *prev;
} park_entry;

typedef struct park park;

/* Called on the park thread for each poll leaving the park (never under a
 * lock, after the entry is out of every park structure: the callee owns it
 * again). */
typedef void (*park_ready_fn)(void *arg, park_entry *e, park_why why);
/* Called on the park thread when the maintenance time set with park_due
 * arrives; it should arrange for maintenance and later call park_due. */
typedef void (*park_due_fn)(void *arg);

/* Creates the park for at most max entries. Returns NULL after logging if
 * epoll/eventfd cannot be had. Free with park_free (after park_run ends). */
park *park_new(wake *w, int max, park_ready_fn ready, park_due_fn due, void *arg);
void park_free(park *p);

/* Parks e. Returns 0 (parked: e belongs to park until ready), 1 (its slot
 * already moved past e->seen: not parked, resume it now), or -1 (full: not
 * parked, answer 503). Thread-safe. */
int park_add(park *p, park_entry *e);

/* Takes out of the park, for the caller to resume now, up to max entries
 * parked on slot whose value moved past what they saw (a commit of this
 * process just bumped it: serving them here saves the trip through the
 * futex and the park thread). Returns how many were put in out. */
int park_take(park *p, uint32_t slot, park_entry **out, int max);

/* Sets the next maintenance time (monotonic ms), replacing the current one;
 * park_due_hint only moves it earlier. Thread-safe. */
void park_due(park *p, int64_t when);
void park_due_hint(park *p, int64_t when);

/* Number of parked polls. */
int park_count(park *p);

/* Runs the park loop on the calling thread (starts the futex listener
 * thread itself). Returns -1 only if the loop cannot run. */
int park_run(park *p);

#endif
