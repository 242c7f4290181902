/* wake: cross-process wake-ups through a small shared file next to the
 * database (<db>.wake, mapped like SQLite's -shm). A writer that committed a
 * message for session S bumps S's slot counter and a global counter, then
 * futex-wakes every process waiting on the global counter. Readers compare
 * slot values: no database query happens while nothing changes. The file
 * also holds per-process held-poll counts for /rtc/status. It does not know
 * which requests wait (that is park) nor what a message is (that is store).
 * Each process row also counts its held polls per client address (hashed
 * into WAKE_ADDR_BUCKETS buckets) for LONGCALL_ADDR_HELD. */
#ifndef LC_WAKE_H
#define LC_WAKE_H

#include <stdint.h>

#define WAKE_SLOTS 16384u /* power of two; more slots, fewer false wake-ups */
#define WAKE_PROCS 256u
#define WAKE_ADDR_BUCKETS 1024u /* per-address held-poll counters of each process row */
#define WAKE_LOG_BUCKETS 4096u  /* per-address log memos (one line a minute) */

typedef struct wake wake;

/* Maps (creating if needed) the wake file at path, its space allocated for
 * real (a full disk is an error here, not a SIGBUS later). A file that is
 * not a wake file of this layout (wrong size, magic or version: truncated,
 * overwritten) is rebuilt with a warning: it holds only hints. Returns 0
 * and sets *out, or -1 after logging (once per change of the message, for
 * a caller that retries) with errno saying why (ENOSPC: storage full). The
 * caller frees with wake_close. */
int wake_open(const char *path, wake **out);
void wake_close(wake *w);

/* The slot of a session: stable for the session's life. */
uint32_t wake_slot(int64_t session_id);

/* Current value of a slot (acquire). Read it BEFORE querying the database:
 * any commit after the query bumps the slot past the value read. */
uint32_t wake_slot_value(const wake *w, uint32_t slot);

/* Announces that session_id's mailbox or poll state changed (call after the
 * commit). Returns the slot's value before the bump. Wakes every process
 * blocked in wake_wait, and every OTHER process that claimed a row, through
 * its own futex word (wake_own_wait); the calling process must look at its
 * own parked polls itself. */
uint32_t wake_post(wake *w, int64_t session_id);

/* wake_post for slots by number (slots >= WAKE_SLOTS are skipped), all
 * bumped before the other processes are woken once; for wake-ups that
 * come from another machine (notify.c). */
void wake_post_slots(wake *w, const uint32_t *slots, int n);
/* Bumps every slot, then wakes the other processes: every held poll on
 * this machine reads its mailbox once, and every process's mailbox cache
 * entry is out of date (notify.c, after wake-ups may have been lost). */
void wake_post_every(wake *w);
/* The file's origin: a random non-zero number drawn when the file was
 * made, the same for every process of this machine that maps it. */
uint64_t wake_origin(const wake *w);

/* Marks session_id's slot: a change to that session is about to be
 * committed (call with the write lock held, before the commit) and is not
 * posted yet. wake_unmark takes the mark back (after wake_post, or after a
 * rollback). While a slot has marks, what a process remembers about a
 * mailbox on it must not be trusted (wait.c, R7): a writer killed between
 * its commit and its post leaves its mark behind for good, so the sessions
 * of that slot read the database from then on instead of missing the
 * change nobody announced. Such a mark costs those sessions (1/WAKE_SLOTS
 * of all) the cache's saving, never a message, until the wake file is made
 * anew. */
void wake_mark(wake *w, int64_t session_id);
void wake_unmark(wake *w, int64_t session_id);
/* Marks outstanding on a slot (acquire); read it after the slot value. */
uint32_t wake_slot_marks(const wake *w, uint32_t slot);

/* Counts a send of session_id that waits for its prev= batch (delta 1,
 * with the write lock held) and takes it back (-1) when it leaves
 * (wait.c, R9). A send that finds its slot counted commits with its own
 * session posted. A process killed while a send waits leaves the count one
 * too high: a hint, costing that slot's sessions a post of their own slot
 * per send and the poll part of their exchanges, until the file is made
 * anew. */
void wake_send_waits(wake *w, int64_t session_id, int delta);
uint32_t wake_slot_sends(const wake *w, uint32_t slot);

/* This process's own futex word (0 without a row), and a wait until it
 * differs from seen (spurious returns allowed). Without a row (all taken),
 * falls back to the global counter. Returns the current value. */
uint32_t wake_own_counter(const wake *w);
uint32_t wake_own_wait(wake *w, uint32_t seen);

/* The global change counter (acquire). */
uint32_t wake_counter(const wake *w);

/* Blocks until the global counter differs from seen, or timeout_ms passes
 * (-1: no limit). Returns the counter value at return. Spurious returns are
 * allowed; callers compare slot values. */
uint32_t wake_wait(wake *w, uint32_t seen, int timeout_ms);

/* Copies all slot values into dst (WAKE_SLOTS entries). */
void wake_snapshot(const wake *w, uint32_t *dst);

/* Per-slot count of polls parked anywhere on that slot. A new poll posts
 * its session (to make an older held poll of the same session yield) only
 * when this is non-zero, so a lone poll costs no wake-up. */
void wake_slot_held(wake *w, uint32_t slot, int delta);
uint32_t wake_slot_held_count(const wake *w, uint32_t slot);

/* Claims a per-process row for held-poll accounting (reusing rows of dead
 * processes). Returns 0, or -1 when all rows are taken (counts then stay
 * local). */
int wake_proc_claim(wake *w);
/* Adds delta to this process's held-poll count (kept in its row for
 * wake_held_total, and in w for wake_proc_held_here). */
void wake_proc_held(wake *w, int delta);
/* This process's held polls (through w). */
int wake_proc_held_here(const wake *w);
/* Counts an answer dropped because its reader took none of it for
 * LONGCALL_WRITE_TIMEOUT; the site's count since the file was made. */
void wake_count_dropped(wake *w);
uint32_t wake_dropped(const wake *w);

/* Sum of held polls over live processes, and how many processes are live. */
void wake_held_total(const wake *w, int64_t *held, int *procs);

/* The bucket of a client address key (addr.h): 1..WAKE_ADDR_BUCKETS (0 is
 * "not counted"). Addresses that share a bucket share its limit. */
uint32_t wake_addr_bucket(const char *key);
/* Counts one more held poll of bucket in this process's row, unless the
 * bucket's count over all live processes would then exceed limit. Returns
 * 0 (counted: release it with wake_addr_release), 1 (not counted: this
 * process has no row, or bucket is 0; release is then a no-op too) or -1
 * (over the limit: nothing counted). Rows of dead processes are not
 * counted (their counts are cleared when the row is claimed again). */
int wake_addr_hold(wake *w, uint32_t bucket, int limit);
/* Takes back one wake_addr_hold that returned 0. */
void wake_addr_release(wake *w, uint32_t bucket);

/* For a log that says at most one line per key a minute over every
 * process (CGI included): counts one event of key, and returns 1 when the
 * caller should log it now (the first of this minute in key's bucket),
 * with *before set to the events of that bucket since its previous line;
 * else 0. Keys sharing a bucket share its line (one of them may go
 * unlogged for a minute). */
int wake_log_due(wake *w, const char *key, long *before);
/* The same for one kind of event of key (kind: a fixed word, e.g. the
 * setting's name): each (kind, key) pair has its own memo, so that one
 * client's refusals of two kinds each get their line. Most callers want
 * addr_log_event (addr.h), which writes the line too. */
int wake_log_due_kind(wake *w, const char *kind, const char *key, long *before);
/* wake_log_due_kind for n events at once (n >= 1): they count as one
 * logged now plus n - 1 in *before, or as n more for the next line. */
int wake_log_due_kind_n(wake *w, const char *kind, const char *key, int n, long *before);

#endif
