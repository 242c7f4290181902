/* notify: wake-ups between machines (nodes) that share a PostgreSQL store.
 * A write transaction sends its sessions' wake slots in a notification
 * (notify_slots, before its commit); one FastCGI process per machine (per
 * wake file: the holder of a lock on it) listens (notify_start) and posts
 * the slots of other machines' notifications into the wake file. It owns the payload's format
 * and the listening thread with its reconnecting; not the SQL (store_pg.c),
 * the slots (wake.c), nor which polls wait (park.c) or what they read
 * (wait.c, whose rule R8 says why no wake-up is lost). */
#ifndef LC_NOTIFY_H
#define LC_NOTIFY_H

#include "env.h"
#include "park.h"

#include <stdint.h>

/* Longest payload sent; PostgreSQL takes up to 7999 bytes. */
#define NOTIFY_PAYLOAD_MAX 7900

/* In e's open write transaction on a shared store (store_shared): sends
 * the n wake slots (duplicates sent once), in as few notifications as
 * NOTIFY_PAYLOAD_MAX allows, each "<origin> <slot> <slot>..." with origin
 * this machine's wake_origin in 16 hex digits. Nothing on SQLite. LC_OK,
 * or the store's failure (the caller rolls back). */
int notify_slots(lc_env *e, const uint32_t *slots, int n);

/* With a PostgreSQL LONGCALL_DB: when this process is the first of its
 * machine (it gets the write lock on a byte of the wake file, an open file
 * description lock), opens the listening connection (one try here, so that
 * it normally listens before the process serves a poll); starts the thread
 * that reads it, posts what other machines' commits notify (wk) and has
 * this process's parked polls looked at (pk). A lost connection is made
 * again (backoff 0.1 s doubling to 5 s), after which every slot is posted
 * once. In the machine's other processes the thread waits for the lock
 * and takes over when the listener's process ends. Nothing with SQLite.
 * Returns 0, or -1 when the thread cannot start (logged). */
int notify_start(const lc_config *cfg, wake *wk, park *pk);

#endif
