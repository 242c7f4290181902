/* jobs: the background jobs; see jobs.h. One mutex guards the jobs' state;
 * it is never held while a job runs. Every time is monotonic ms. */

#include "jobs.h"

#include "metrics.h"

#include "api.h"

#include <pthread.h>
#include <time.h>
#include <stdlib.h>

/* Deferred acknowledgements wait this long for others to join them in one
 * transaction: under load a write per poll becomes one per many polls, and
 * one per session. The transaction holds the write lock while sends wait:
 * rarer and longer is cheaper than often. */
#define ACKS_DELAY_MS 50
/* A checkpoint that could not finish (readers, another process's
 * checkpoint) is not retried sooner than this. */
#define CHECKPOINT_GAP_MS 100

enum { JOB_MAINTAIN, JOB_ACKS, JOB_CHECKPOINT, JOB_COUNT };

struct jobs {
    pthread_mutex_t mu;
    store *ckpt;
    int64_t maint_due; /* INT64_MIN: not known yet (ask the database) */
    int64_t ckpt_last; /* when the last checkpoint ran */
    int running[JOB_COUNT];
};

/* ---- the jobs: when each is next due (mu held), and its run (mu not held) */

static int64_t maintain_due(jobs *s, lc_env *e)
{
    (void)e;
    return s->maint_due;
}

static void maintain_run(jobs *s, lc_env *e, wait_woken *woken)
{
    /* A request that notes an earlier time while this runs keeps it: the
     * run may have read the database before that request committed. */
    pthread_mutex_lock(&s->mu);
    s->maint_due = INT64_MAX;
    pthread_mutex_unlock(&s->mu);
    int64_t next;
    api_maintain(e, woken, &next);
    next = lc_mono_of(next);
    pthread_mutex_lock(&s->mu);
    if (next < s->maint_due) s->maint_due = next;
    pthread_mutex_unlock(&s->mu);
}

static int64_t acks_due(jobs *s, lc_env *e)
{
    (void)s;
    if (!e->defer_acks) return INT64_MAX;
    int64_t since = wait_acks_since();
    return since == INT64_MAX ? INT64_MAX : since + ACKS_DELAY_MS;
}

static void acks_run(jobs *s, lc_env *e, wait_woken *woken)
{
    (void)s;
    (void)woken;
    wait_write_acks(e);
}

static int64_t checkpoint_due(jobs *s, lc_env *e)
{
    if (!s->ckpt || !store_checkpoint_wanted(e->st)) return INT64_MAX;
    return s->ckpt_last + CHECKPOINT_GAP_MS;
}

static void checkpoint_run(jobs *s, lc_env *e, wait_woken *woken)
{
    (void)woken;
    store_checkpoint_take(e->st);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    store_checkpoint(s->ckpt);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    metrics_checkpoint((int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 +
                       (t1.tv_nsec - t0.tv_nsec) / 1000);
    pthread_mutex_lock(&s->mu);
    s->ckpt_last = lc_mono_ms();
    pthread_mutex_unlock(&s->mu);
}

static const struct job {
    const char *name;
    int64_t (*due)(jobs *s, lc_env *e);
    void (*run)(jobs *s, lc_env *e, wait_woken *woken);
} job_table[JOB_COUNT] = {
    [JOB_MAINTAIN] = {"maintenance", maintain_due, maintain_run},
    [JOB_ACKS] = {"acknowledgements", acks_due, acks_run},
    [JOB_CHECKPOINT] = {"checkpoint", checkpoint_due, checkpoint_run},
};

/* ---- the jobs' clock -------------------------------------------------------- */

jobs *jobs_new(store *ckpt)
{
    jobs *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->ckpt = ckpt;
    s->maint_due = INT64_MIN;
    s->ckpt_last = INT64_MIN / 2;
    return s;
}

void jobs_free(jobs *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void jobs_note(jobs *s, int64_t due_wall)
{
    if (due_wall == INT64_MAX) return;
    int64_t when = lc_mono_of(due_wall);
    pthread_mutex_lock(&s->mu);
    if (s->maint_due == INT64_MIN || when < s->maint_due) s->maint_due = when;
    pthread_mutex_unlock(&s->mu);
}

/* Learns when maintenance is first due, from the database (not under mu:
 * it reads). A process that starts runs what fell due while none ran. */
static void learn_maintenance(jobs *s, lc_env *e)
{
    pthread_mutex_lock(&s->mu);
    int known = s->maint_due != INT64_MIN;
    pthread_mutex_unlock(&s->mu);
    if (known) return;
    int64_t when;
    api_maintain_due(e, &when); /* on failure: a second from now */
    when = lc_mono_of(when);
    pthread_mutex_lock(&s->mu);
    if (s->maint_due == INT64_MIN || when < s->maint_due) s->maint_due = when;
    pthread_mutex_unlock(&s->mu);
}

int64_t jobs_next(jobs *s, lc_env *e)
{
    learn_maintenance(s, e);
    int64_t next = INT64_MAX;
    pthread_mutex_lock(&s->mu);
    for (int j = 0; j < JOB_COUNT; j++) {
        if (s->running[j]) continue;
        int64_t t = job_table[j].due(s, e);
        if (t < next) next = t;
    }
    pthread_mutex_unlock(&s->mu);
    return next;
}

int jobs_run_due(jobs *s, lc_env *e, wait_woken *woken)
{
    int ran = 0;
    learn_maintenance(s, e);
    for (int j = 0; j < JOB_COUNT; j++) {
        pthread_mutex_lock(&s->mu);
        int go = !s->running[j] && job_table[j].due(s, e) <= lc_mono_ms();
        if (go) s->running[j] = 1;
        pthread_mutex_unlock(&s->mu);
        if (!go) continue;
        lc_log_event(LC_LOG_DEBUG, "job_run", LC_FIELDS(LC_STR("job", job_table[j].name)),
                     "running %s", job_table[j].name);
        job_table[j].run(s, e, woken);
        pthread_mutex_lock(&s->mu);
        s->running[j] = 0;
        pthread_mutex_unlock(&s->mu);
        ran++;
    }
    return ran;
}
