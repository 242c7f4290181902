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
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WAKE_MAGIC 0x4c43574bu /* "LCWK" */
#define WAKE_VERSION 5u /* 2: per-address held counts, the log memo, dropped answers;
                          * 3: marks of changes committed but not posted yet;
                          * 4: the file's origin (wake_origin);
                          * 5: sends waiting for their prev= per slot */

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
    /* Version 2 (after the above, whose offsets tests read): held polls
     * of each process row per address bucket, the log memo, and the
     * answers dropped because their reader took none for too long. */
    _Atomic uint32_t addr_held[WAKE_PROCS][WAKE_ADDR_BUCKETS];
    _Atomic uint32_t log_minute[WAKE_LOG_BUCKETS]; /* wake_log_due: minute of the last line */
    _Atomic uint32_t log_count[WAKE_LOG_BUCKETS];  /* events since that line */
    _Atomic uint32_t dropped;
    /* Version 3: changes marked before their commit and not posted yet,
     * per slot (wake_mark). */
    _Atomic uint32_t marks[WAKE_SLOTS];
    /* Version 4: a random number drawn when the file was made: which
     * machine's posts a cross-node notification carries (notify.c). */
    uint64_t origin;
    /* Version 5: sends waiting for their prev= batch, per slot
     * (wake_send_waits; wait.c, R9). */
    _Atomic uint32_t sends[WAKE_SLOTS];
};

struct wake {
    struct wake_shm *shm;
    int proc;              /* our row in shm->proc, or -1 */
    _Atomic int held_here; /* this process's held polls, row or not */
};

/* Allocates the first size bytes of fd for real. A MAP_SHARED page of a
 * sparse file is allocated when first touched, and on a full disk that
 * touch is a SIGBUS: allocated here, a full disk is an error at open
 * instead. fallocate(2), not posix_fallocate(3): where the file system
 * cannot (EOPNOTSUPP), glibc's fallback writes a zero byte into each block
 * that reads as zero -- racing a peer's atomic increment of that very
 * byte. Such a file system keeps the old behaviour (sparse; it is rare on
 * Linux: tmpfs, ext4, xfs and btrfs all allocate). Returns 0 or an errno. */
static int allocate(int fd, size_t size)
{
    while (fallocate(fd, 0, 0, (off_t)size) != 0) {
        if (errno == EINTR) continue;
        if (errno == EOPNOTSUPP || errno == ENOSYS) return 0;
        return errno;
    }
    return 0;
}

/* Logs a failure of wake_open (once per change: retried every few seconds
 * by a server that could not start) and leaves err in errno. */
static char open_memo[LC_LOG_MEMO];

static int open_failed(int err, const char *path, const char *doing)
{
    const char *hint = err == ENOSPC || err == EDQUOT
                           ? ": storage full -- free space on that file system"
                           : err == EACCES || err == EPERM || err == EROFS
                                 ? ": give it (and its folder) to the user the backend runs as"
                                 : "";
    lc_log_changed(open_memo, LC_LOG_ERROR, "wake_file_failed",
                   "cannot %s wake file %s (%s)%s; requests get 503", doing, path, strerror(err),
                   hint);
    errno = err;
    return -1;
}

/* Rebuilds the mapped file m (file_size bytes on disk) from zero unless it
 * holds this layout. Called under the file's flock. */
static void check_layout(struct wake_shm *m, const char *path, size_t file_size)
{
    const size_t size = sizeof(struct wake_shm);
    if (m->magic != WAKE_MAGIC || m->version != WAKE_VERSION || file_size < size) {
        /* Truncated, overwritten, or from an other layout. (A longer file
         * with the right header is used as it is: shrinking it could
         * SIGBUS a peer that maps it.) It holds
         * only hints (wake-up counters, held-poll counts, which processes
         * run): rebuilt from zero, the worst that follows is a spurious
         * wake-up or a held poll answered at its time-out. This happens at
         * start only, never under a running peer that mapped the file
         * correctly: such a peer wrote the magic and the version, and the
         * size is never changed to a wrong one by longcall -- only an
         * outside hand can break the file under it (it would have lost its
         * row and its futex words then anyway). A new file (size 0, all
         * zero) is set up here too, silently. */
        if (file_size != 0)
            lc_log_event(
                LC_LOG_WARN, "wake_file_rebuilt", LC_NOFIELDS,
                "wake file %s was damaged (%lld bytes, expected %zu; magic %08x, version %u): "
                "rebuilt -- it holds only wake-up hints, no message is lost",
                path, (long long)file_size, size, (unsigned)m->magic, (unsigned)m->version);
        memset(m, 0, size);
        uint64_t origin = 0;
        while (origin == 0)
            if (getrandom(&origin, sizeof origin, 0) != (ssize_t)sizeof origin) origin = 0;
        m->origin = origin;
        m->version = WAKE_VERSION;
        atomic_thread_fence(memory_order_release);
        m->magic = WAKE_MAGIC;
    }
}

int wake_open(const char *path, wake **out)
{
    int fd = -1, rc = -1, err = 0;
    const size_t size = sizeof(struct wake_shm);
    struct wake_shm *m = MAP_FAILED;
    struct stat sb;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
    if (fd < 0) return open_failed(errno, path, "open");
    /* Two processes starting at once must not both repair the file (the
     * second would wipe the row the first claimed): the check and the
     * repair are done under an exclusive lock on the file. A process that
     * runs only maps the file and never takes this lock. */
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            rc = open_failed(errno, path, "lock");
            goto out;
        }
    }
    if (fstat(fd, &sb) != 0) {
        rc = open_failed(errno, path, "read the size of");
        goto out;
    }
    /* Only ever grown, never shrunk: a peer mapping the longer file would
     * take a SIGBUS on a page past the new end. Zero-filled pages are a
     * valid initial state. */
    if ((size_t)sb.st_size < size && ftruncate(fd, (off_t)size) != 0) {
        rc = open_failed(errno, path, "size");
        goto out;
    }
    if ((err = allocate(fd, size)) != 0) {
        rc = open_failed(err, path, "allocate space for the");
        goto out;
    }
    m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        rc = open_failed(errno, path, "map");
        goto out;
    }
    check_layout(m, path, (size_t)sb.st_size);
    wake *w = xcalloc(1, sizeof *w);
    w->shm = m;
    w->proc = -1;
    m = MAP_FAILED;
    open_memo[0] = '\0';
    *out = w;
    rc = 0;
out:
    err = errno;
    if (m != MAP_FAILED) munmap(m, size);
    /* Unlocked explicitly: the mapping keeps the open file (and so a flock
     * on it) alive after close(). */
    flock(fd, LOCK_UN);
    close(fd);
    errno = err;
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

/* Wakes every other resident process after slots were bumped. */
static void wake_others(wake *w)
{
    struct wake_shm *m = w->shm;
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
}

uint32_t wake_post(wake *w, int64_t session_id)
{
    uint32_t old = atomic_fetch_add(&w->shm->slot[wake_slot(session_id)], 1);
    wake_others(w);
    return old;
}

void wake_post_slots(wake *w, const uint32_t *slots, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++) {
        if (slots[i] >= WAKE_SLOTS) continue;
        atomic_fetch_add(&w->shm->slot[slots[i]], 1);
        any = 1;
    }
    if (any) wake_others(w);
}

void wake_post_every(wake *w)
{
    for (uint32_t s = 0; s < WAKE_SLOTS; s++)
        atomic_fetch_add(&w->shm->slot[s], 1);
    wake_others(w);
}

uint64_t wake_origin(const wake *w)
{
    return w->shm->origin;
}

void wake_mark(wake *w, int64_t session_id)
{
    atomic_fetch_add(&w->shm->marks[wake_slot(session_id)], 1);
}

void wake_unmark(wake *w, int64_t session_id)
{
    atomic_fetch_sub(&w->shm->marks[wake_slot(session_id)], 1);
}

uint32_t wake_slot_marks(const wake *w, uint32_t slot)
{
    return atomic_load_explicit(&w->shm->marks[slot], memory_order_acquire);
}

void wake_send_waits(wake *w, int64_t session_id, int delta)
{
    atomic_fetch_add(&w->shm->sends[wake_slot(session_id)], (uint32_t)delta);
}

uint32_t wake_slot_sends(const wake *w, uint32_t slot)
{
    return atomic_load_explicit(&w->shm->sends[slot], memory_order_acquire);
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
                if (cur != me) /* a dead process's counts */
                    for (uint32_t b = 0; b < WAKE_ADDR_BUCKETS; b++)
                        atomic_store(&w->shm->addr_held[i][b], 0);
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
    atomic_fetch_add(&w->held_here, delta);
    if (w->proc >= 0) atomic_fetch_add(&w->shm->proc[w->proc].held, delta);
}

void wake_count_dropped(wake *w)
{
    atomic_fetch_add(&w->shm->dropped, 1);
}

uint32_t wake_dropped(const wake *w)
{
    return atomic_load(&w->shm->dropped);
}

int wake_proc_held_here(const wake *w)
{
    return atomic_load(&w->held_here);
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

static uint32_t fnv1a(const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *c = key; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return h;
}

uint32_t wake_addr_bucket(const char *key)
{
    return 1 + fnv1a(key) % WAKE_ADDR_BUCKETS;
}

/* wake_log_due of memo bucket b. */
static int log_due(wake *w, uint32_t b, int n, long *before)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Monotonic minutes plus one: 0 is "never"; all processes of a machine
     * share the clock. */
    uint32_t minute = (uint32_t)(ts.tv_sec / 60) + 1;
    atomic_fetch_add(&w->shm->log_count[b], (uint32_t)n);
    uint32_t last = atomic_load(&w->shm->log_minute[b]);
    if (last == minute || !atomic_compare_exchange_strong(&w->shm->log_minute[b], &last, minute))
        return 0;
    *before = (long)atomic_exchange(&w->shm->log_count[b], 0) - 1;
    return 1;
}

int wake_log_due(wake *w, const char *key, long *before)
{
    return log_due(w, fnv1a(key) % WAKE_LOG_BUCKETS, 1, before);
}

int wake_log_due_kind_n(wake *w, const char *kind, const char *key, int n, long *before)
{
    /* FNV-1a over kind, a NUL, then key: ("ab", "c") and ("a", "bc") differ. */
    uint32_t h = (fnv1a(kind) ^ 0u) * 16777619u;
    for (const char *c = key; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return log_due(w, h % WAKE_LOG_BUCKETS, n < 1 ? 1 : n, before);
}

int wake_log_due_kind(wake *w, const char *kind, const char *key, long *before)
{
    return wake_log_due_kind_n(w, kind, key, 1, before);
}

/* Held polls of bucket b (0-based) over the rows; with check, only the
 * rows of processes still alive (a kill(2) per row). */
static int64_t addr_total(const wake *w, uint32_t b, int check)
{
    int64_t sum = 0;
    uint32_t rows = atomic_load(&w->shm->rows);
    for (uint32_t i = 0; i < rows && i < WAKE_PROCS; i++) {
        int32_t pid = atomic_load(&w->shm->proc[i].pid);
        if (pid == 0 || (check && (int)i != w->proc && !pid_alive(pid))) continue;
        sum += atomic_load(&w->shm->addr_held[i][b]);
    }
    return sum;
}

int wake_addr_hold(wake *w, uint32_t bucket, int limit)
{
    if (w->proc < 0 || bucket == 0 || bucket > WAKE_ADDR_BUCKETS) return 1;
    uint32_t b = bucket - 1;
    /* Counted first, then summed: two requests racing for the last place
     * may both be refused, never both let through. The liveness of the
     * other rows is checked only near the limit. */
    atomic_fetch_add(&w->shm->addr_held[w->proc][b], 1);
    if (addr_total(w, b, 0) <= limit || addr_total(w, b, 1) <= limit) return 0;
    atomic_fetch_sub(&w->shm->addr_held[w->proc][b], 1);
    return -1;
}

void wake_addr_release(wake *w, uint32_t bucket)
{
    if (w->proc < 0 || bucket == 0 || bucket > WAKE_ADDR_BUCKETS) return;
    atomic_fetch_sub(&w->shm->addr_held[w->proc][bucket - 1], 1);
}
