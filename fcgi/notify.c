/* notify: cross-machine wake-ups through PostgreSQL's LISTEN/NOTIFY; see
 * notify.h and wait.c's rule R8. */

#include "notify.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Slots posted at once while reading one payload (a payload holds at most
 * about NOTIFY_PAYLOAD_MAX / 2 of them). */
#define POST_BATCH 512
/* The byte of the wake file whose write lock (an open file description
 * lock, F_OFD_SETLK) makes a process its machine's listener: far past the
 * file's end (a lock needs no data there; no other lock of longcall's is
 * on this file: wake_open's is a flock). */
#define LISTEN_LOCK_AT ((off_t)1 << 40)

static int slot_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int notify_slots(lc_env *e, const uint32_t *slots, int n)
{
    if (n <= 0 || !store_shared(e->st)) return LC_OK;
    uint32_t *s = xmalloc((size_t)n * sizeof *s);
    memcpy(s, slots, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, slot_cmp);
    char payload[NOTIFY_PAYLOAD_MAX + 1];
    int head = snprintf(payload, sizeof payload, "%016" PRIx64, wake_origin(e->wk));
    int len = head, rc = LC_OK;
    for (int i = 0; i < n && rc == LC_OK; i++) {
        if (i && s[i] == s[i - 1]) continue;
        char one[16];
        int k = snprintf(one, sizeof one, " %u", (unsigned)s[i]);
        if (len + k > NOTIFY_PAYLOAD_MAX) {
            rc = store_notify(e->st, payload);
            len = head;
        }
        memcpy(payload + len, one, (size_t)k + 1);
        len += k;
    }
    if (rc == LC_OK && len > head) rc = store_notify(e->st, payload);
    free(s);
    return rc;
}

/* ---- the listening thread ---------------------------------------------- */

static struct {
    const char *db, *wake_path;
    wake *wk;
    park *pk;
    store_listener *l;
    int lock_fd; /* the wake file, for the listener lock; -1: none */
    int mine;    /* this process holds the lock (or listens without one) */
} nt = {.lock_fd = -1};

/* Takes this machine's listener lock (block: waits until the process that
 * holds it ends). Returns 1 when this process is the listener now, 0 when
 * another process is (!block). A lock that cannot be had at all makes this
 * process listen anyway (logged): an extra listener costs wake-ups, never
 * a message. */
static int take_lock(int block)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = LISTEN_LOCK_AT,
                       .l_len = 1};
    while (nt.lock_fd < 0 || fcntl(nt.lock_fd, block ? F_OFD_SETLKW : F_OFD_SETLK, &fl) != 0) {
        if (nt.lock_fd >= 0 && errno == EINTR) continue;
        if (nt.lock_fd >= 0 && !block && (errno == EAGAIN || errno == EACCES)) return 0;
        lc_log_event(LC_LOG_WARN, "listener_lock_failed", LC_NOFIELDS,
                     "wake file %s: cannot take the listener lock (%s): this process listens for "
                     "other nodes' wake-ups too",
                     nt.wake_path, nt.lock_fd < 0 ? "cannot open it" : strerror(errno));
        return 1;
    }
    return 1;
}

/* Posts the slots of payload unless it came from this machine (whose
 * poster posted them itself: a second post would wake polls the poster
 * already answered). Sets *(int *)arg when it posted any. */
static void on_payload(void *arg, const char *payload)
{
    char *end;
    errno = 0;
    uint64_t origin = strtoull(payload, &end, 16);
    if (errno || end != payload + 16 || (*end != ' ' && *end != '\0') ||
        origin == wake_origin(nt.wk))
        return;
    uint32_t slots[POST_BATCH];
    int n = 0, any = 0;
    const char *p = end;
    while (*p == ' ') {
        unsigned long v = strtoul(p + 1, &end, 10);
        if (end == p + 1) break;
        if (v < WAKE_SLOTS) slots[n++] = (uint32_t)v; /* out of range: skipped */
        if (n == POST_BATCH) {
            wake_post_slots(nt.wk, slots, n);
            any = 1;
            n = 0;
        }
        p = end;
    }
    if (n) wake_post_slots(nt.wk, slots, n);
    if (n || any) *(int *)arg = 1;
}

/* Opens the listening connection, then posts every slot (R8: a poll that
 * read its slot before the LISTEN took effect reads its mailbox again, and
 * no mailbox cache entry of before is trusted). LC_OK or LC_ERR (logged). */
static int listen_again(void)
{
    if (store_listen_open(nt.db, &nt.l) != LC_OK) return LC_ERR;
    wake_post_every(nt.wk);
    park_poke(nt.pk);
    return LC_OK;
}

static void nap_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

static void *listen_loop(void *arg)
{
    (void)arg;
    int backoff = 0, lost = 0;
    if (!nt.mine) {
        nt.mine = take_lock(1); /* until the machine's listener ends */
        lc_log_event(LC_LOG_INFO, "listener_taken_over", LC_NOFIELDS,
                     "this process listens for other nodes' wake-ups now "
                     "(the one that did before it ended)");
    }
    for (;;) {
        if (!nt.l) {
            if (backoff) nap_ms(backoff);
            if (listen_again() != LC_OK) {
                backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
                if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
                continue;
            }
            if (lost)
                lc_log_event(LC_LOG_INFO, "listener_back", LC_NOFIELDS,
                             "listening for other nodes' wake-ups again");
            backoff = lost = 0;
        }
        int fd = store_listen_fd(nt.l), woke = 0, rc = LC_ERR;
        if (fd >= 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR) nap_ms(BACKOFF_MIN_MS);
            rc = store_listen_read(nt.l, on_payload, &woke);
        }
        if (woke) park_poke(nt.pk);
        if (rc != LC_OK) {
            lc_log_event(LC_LOG_WARN, "listener_lost", LC_NOFIELDS,
                         "the connection listening for other nodes' wake-ups was lost; "
                         "connecting again (meanwhile polls held here wake within a few seconds)");
            store_listen_close(nt.l);
            nt.l = NULL;
            lost = 1;
            backoff = BACKOFF_MIN_MS;
        }
    }
    return NULL;
}

int notify_start(const lc_config *cfg, wake *wk, park *pk)
{
    if (!store_db_is_pg(cfg->db_path)) return 0;
    nt.db = cfg->db_path;
    nt.wake_path = cfg->wake_path;
    nt.wk = wk;
    nt.pk = pk;
    nt.lock_fd = open(cfg->wake_path, O_RDWR | O_CLOEXEC);
    /* One listener per machine: its posts reach every process of the
     * machine through the wake file, and one post per notification wakes
     * each held poll once. The others wait for the lock in their thread
     * and take over when the listener's process ends. */
    nt.mine = take_lock(0);
    if (nt.mine) listen_again(); /* on failure the thread tries again */
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&th, &attr, listen_loop, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        lc_log_event(LC_LOG_ERROR, "thread_failed", LC_NOFIELDS,
                     "cannot start the wake-up listener: %s; raise the process or task limit "
                     "(ulimit -u, systemd TasksMax)",
                     strerror(err));
        return -1;
    }
    return 0;
}
