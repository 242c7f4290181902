/* wake: shared-memory slot counters + futex. See wake.h. */

#include "wake.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WAKE_MAGIC 0x4c43574bu /* "LCWK" */

struct wake_shm {
    uint32_t magic;
    uint32_t version;
    _Atomic uint32_t counter; /* futex word; bumped by every post */
    _Atomic uint32_t waiters; /* processes blocked in wake_wait */
    _Atomic uint32_t slot[WAKE_SLOTS];
    _Atomic uint32_t held[WAKE_SLOTS]; /* polls parked per slot (hint only) */
    _Atomic uint32_t rows;             /* rows ever claimed (upper bound for scans) */
    struct {
        _Atomic int32_t pid;
        _Atomic int32_t held;
        _Atomic uint32_t futex; /* bumped by other processes' posts */
    } proc[WAKE_PROCS];
};

struct wake {
    struct wake_shm *shm;
    int proc; /* our row in shm->proc, or -1 */
};

int wake_open(const char *path, wake **out)
{
    int fd = -1, rc = -1;
    void *map = MAP_FAILED;
    wake *w = NULL;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
    if (fd < 0) {
        lc_log(LC_LOG_ERROR, "cannot open wake file %s: %s", path, strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (size_t)sb.st_size < sizeof(struct wake_shm)) {
        /* Growing only: every process may do this at once; zero-filled pages
         * are a valid initial state. */
        if (ftruncate(fd, sizeof(struct wake_shm)) != 0) {
            lc_log(LC_LOG_ERROR, "cannot size wake file %s: %s", path, strerror(errno));
            goto out;
        }
    }
    map = mmap(NULL, sizeof(struct wake_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        lc_log(LC_LOG_ERROR, "cannot map wake file %s: %s", path, strerror(errno));
        goto out;
    }
    w = xcalloc(1, sizeof *w);
    w->shm = map;
    w->proc = -1;
    w->shm->magic = WAKE_MAGIC;
    w->shm->version = 1;
    map = MAP_FAILED;
    *out = w;
    rc = 0;
out:
    if (map != MAP_FAILED) munmap(map, sizeof(struct wake_shm));
    if (fd >= 0) close(fd);
    return rc;
}

void wake_close(wake *w)
{
    if (!w) return;
    if (w->proc >= 0) {
        atomic_store(&w->shm->proc[w->proc].held, 0);
        atomic_store(&w->shm->proc[w->proc].pid, 0);
    }
    munmap(w->shm, sizeof(struct wake_shm));
    free(w);
}

uint32_t wake_slot(int64_t session_id)
{
    /* Fibonacci hashing: consecutive ids land far apart. */
    uint64_t h = (uint64_t)session_id * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & (WAKE_SLOTS - 1);
}

uint32_t wake_slot_value(const wake *w, uint32_t slot)
{
    return atomic_load_explicit(&w->shm->slot[slot], memory_order_acquire);
}

uint32_t wake_counter(const wake *w)
{
    return atomic_load_explicit(&w->shm->counter, memory_order_acquire);
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

uint32_t wake_post(wake *w, int64_t session_id)
{
    struct wake_shm *m = w->shm;
    uint32_t old = atomic_fetch_add(&m->slot[wake_slot(session_id)], 1);
    /* Every other resident process; never our own, whose poster serves its
     * own parked polls at once (park_take) -- waking ourselves would cost
     * two thread switches per message for nothing. The rows before the
     * global counter: a CGI process holding a poll claims a row but waits
     * on the counter, so this way its row has moved before it can wake,
     * answer and release it (test_frontend proves CGI wake-ups that way). */
    uint32_t rows = atomic_load(&m->rows);
    for (uint32_t i = 0; i < rows && i < WAKE_PROCS; i++) {
        if ((int)i == w->proc || atomic_load(&m->proc[i].pid) == 0) continue;
        atomic_fetch_add(&m->proc[i].futex, 1);
        futex(&m->proc[i].futex, FUTEX_WAKE, 1, NULL);
    }
    atomic_fetch_add(&m->counter, 1);
    if (atomic_load(&m->waiters) > 0) futex(&m->counter, FUTEX_WAKE, INT_MAX, NULL);
    return old;
}

uint32_t wake_own_counter(const wake *w)
{
    return w->proc >= 0 ? atomic_load(&w->shm->proc[w->proc].futex) : 0;
}

uint32_t wake_own_wait(wake *w, uint32_t seen)
{
    if (w->proc < 0) return wake_wait(w, seen, -1);
    _Atomic uint32_t *f = &w->shm->proc[w->proc].futex;
    if (atomic_load(f) == seen) futex(f, FUTEX_WAIT, seen, NULL);
    return atomic_load(f);
}

uint32_t wake_wait(wake *w, uint32_t seen, int timeout_ms)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    atomic_fetch_add(&w->shm->waiters, 1);
    /* FUTEX_WAIT returns at once if the counter already moved past seen, so
     * a post between our read and this call is never lost. */
    if (wake_counter(w) == seen) futex(&w->shm->counter, FUTEX_WAIT, seen, tsp);
    atomic_fetch_sub(&w->shm->waiters, 1);
    return wake_counter(w);
}

void wake_snapshot(const wake *w, uint32_t *dst)
{
    for (uint32_t i = 0; i < WAKE_SLOTS; i++)
        dst[i] = atomic_load_explicit(&w->shm->slot[i], memory_order_acquire);
}

void wake_slot_held(wake *w, uint32_t slot, int delta)
{
    atomic_fetch_add(&w->shm->held[slot], (uint32_t)delta);
}

uint32_t wake_slot_held_count(const wake *w, uint32_t slot)
{
    return atomic_load(&w->shm->held[slot]);
}

static int pid_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int wake_proc_claim(wake *w)
{
    int32_t me = (int32_t)getpid();
    for (uint32_t i = 0; i < WAKE_PROCS; i++) {
        int32_t cur = atomic_load(&w->shm->proc[i].pid);
        if (cur == me || cur == 0 || !pid_alive(cur)) {
            if (atomic_compare_exchange_strong(&w->shm->proc[i].pid, &cur, me)) {
                atomic_store(&w->shm->proc[i].held, 0);
                w->proc = (int)i;
                uint32_t rows = atomic_load(&w->shm->rows);
                while (rows < i + 1 && !atomic_compare_exchange_weak(&w->shm->rows, &rows, i + 1))
                    ;
                return 0;
            }
        }
    }
    return -1;
}

void wake_proc_held(wake *w, int delta)
{
    if (w->proc >= 0) atomic_fetch_add(&w->shm->proc[w->proc].held, delta);
}

void wake_held_total(const wake *w, int64_t *held, int *procs)
{
    *held = 0;
    *procs = 0;
    for (uint32_t i = 0; i < WAKE_PROCS; i++) {
        int32_t pid = atomic_load(&w->shm->proc[i].pid);
        if (!pid_alive(pid)) continue;
        (*procs)++;
        *held += atomic_load(&w->shm->proc[i].held);
    }
}
