/* lg_loop: the load generator's single epoll loop: the target address, the
 * registry of connections (for request time-outs) and running until a
 * condition holds or a deadline passes. */
#ifndef LG_LOOP_H
#define LG_LOOP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct lg_conn;

typedef struct lg_loop {
    int epfd;
    struct sockaddr_in addr; /* 127.0.0.1:port */
    char host[32];           /* Host header value */
    struct lg_conn **conns;  /* every initialised connection */
    size_t nconns, cap;
    int64_t next_scan; /* when request deadlines are next checked */
    int stop;          /* set by a callback to end lg_loop_run early */
} lg_loop;

/* Creates the epoll set; the target is 127.0.0.1:port. Returns 0 or -1. */
int lg_loop_init(lg_loop *l, int port);

/* Closes the epoll set (connections must be freed first). */
void lg_loop_free(lg_loop *l);

/* Registers / unregisters a connection for deadline checks. */
void lg_loop_add(lg_loop *l, struct lg_conn *c);
void lg_loop_remove(lg_loop *l, struct lg_conn *c);

/* Runs the loop until done(arg) is true (checked after every batch of
 * events; done may be NULL), l->stop is set, or deadline_ns (lg_now_ns
 * clock) passes. Returns 1 if done held, 0 at the deadline or stop. */
int lg_loop_run(lg_loop *l, int (*done)(void *), void *arg, int64_t deadline_ns);

#endif
