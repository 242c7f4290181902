/* jobs: the background work of a process -- ring time-outs, session expiry
 * and history pruning (api_maintain), deferred acknowledgements (wait) and
 * WAL checkpoints (store). Each job says when it is next due and how it
 * runs; both fronts ask jobs_next when to come back and jobs_run_due to
 * run what is due. It owns no thread and no timer: the FastCGI front runs
 * jobs on its queue workers when the park's timer fires, the CGI front on
 * its one thread before and while it holds a poll. */
#ifndef LC_JOBS_H
#define LC_JOBS_H

#include "env.h"
#include "wait.h"

#include <stdint.h>

typedef struct jobs jobs;

/* Creates the background jobs of a process whose threads use env-like
 * connections. ckpt: a connection of its own for checkpoints (they fsync),
 * watching e->st's WAL (store_defer_checkpoints); NULL: no checkpoint job
 * (SQLite checkpoints on commit, as in CGI). When maintenance is first due
 * is read from the database, unless jobs_note says it first. Free with jobs_free (the
 * store stays the caller's). */
jobs *jobs_new(store *ckpt);
void jobs_free(jobs *s);

/* Maintenance is due no later than due_wall (wall ms; INT64_MAX: nothing
 * new), as a request learned (api_result.due), or at once when a process
 * starts. Thread-safe. */
void jobs_note(jobs *s, int64_t due_wall);

/* The monotonic ms when the next job not running now is due (INT64_MAX:
 * none). May read the database (e's connection) to learn when maintenance
 * is due, once per process until it runs. Thread-safe. */
int64_t jobs_next(jobs *s, lc_env *e);

/* Runs, on this thread, each job that is due now and that no other thread
 * runs, appending the sessions they woke to woken (the caller serves its
 * polls of those sessions, then frees the list). Returns how many ran.
 * Thread-safe: concurrent callers never run the same job twice at once. */
int jobs_run_due(jobs *s, lc_env *e, wait_woken *woken);

#endif
