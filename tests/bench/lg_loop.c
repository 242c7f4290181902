/* lg_loop: owns the epoll set and the list of live connections; dispatches
 * socket events to their connection and, ten times a second, fails requests
 * that passed their deadline. Every run is bounded by a deadline. */
#include "lg_loop.h"

#include "lg_conn.h"
#include "lg_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define SCAN_NS (100 * LG_NS_PER_MS)

/* Creates the epoll set for target 127.0.0.1:port. */
int lg_loop_init(lg_loop *l, int port)
{
    memset(l, 0, sizeof *l);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        lg_warn("epoll_create1: %s", strerror(errno));
        return -1;
    }
    l->addr.sin_family = AF_INET;
    l->addr.sin_port = htons((uint16_t)port);
    l->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(l->host, sizeof l->host, "127.0.0.1:%d", port);
    l->next_scan = lg_now_ns() + SCAN_NS;
    return 0;
}

/* Closes the epoll set. */
void lg_loop_free(lg_loop *l)
{
    if (l->epfd >= 0) close(l->epfd);
    l->epfd = -1;
    free(l->conns);
    l->conns = NULL;
    l->nconns = l->cap = 0;
}

/* Registers a connection for deadline checks. */
void lg_loop_add(lg_loop *l, struct lg_conn *c)
{
    if (l->nconns == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->conns = lg_xrealloc(l->conns, l->cap * sizeof *l->conns);
    }
    c->reg = l->nconns;
    l->conns[l->nconns++] = c;
}

/* Unregisters a connection (swap with the last one). */
void lg_loop_remove(lg_loop *l, struct lg_conn *c)
{
    size_t i = c->reg;
    if (i >= l->nconns || l->conns[i] != c) return;
    l->conns[i] = l->conns[--l->nconns];
    l->conns[i]->reg = i;
}

static void scan_deadlines(lg_loop *l, int64_t now)
{
    /* A failing request's callback may free connections: walk backwards
     * and re-check the bound each step. */
    for (size_t i = l->nconns; i-- > 0;) {
        if (i >= l->nconns) continue;
        lg_conn_check_deadline(l->conns[i], now);
    }
}

/* Runs until done(arg), l->stop, or the deadline. */
int lg_loop_run(lg_loop *l, int (*done)(void *), void *arg, int64_t deadline_ns)
{
    struct epoll_event ev[MAX_EVENTS];
    l->stop = 0;
    for (;;) {
        if (done && done(arg)) return 1;
        if (l->stop) return 0;
        int64_t now = lg_now_ns();
        if (now >= deadline_ns) return 0;
        if (now >= l->next_scan) {
            scan_deadlines(l, now);
            l->next_scan = now + SCAN_NS;
            continue;
        }
        int64_t wait_ns = l->next_scan - now;
        if (deadline_ns - now < wait_ns) wait_ns = deadline_ns - now;
        int ms = (int)((wait_ns + LG_NS_PER_MS - 1) / LG_NS_PER_MS);
        int n = epoll_wait(l->epfd, ev, MAX_EVENTS, ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            lg_warn("epoll_wait: %s", strerror(errno));
            return 0;
        }
        for (int i = 0; i < n; i++)
            lg_conn_event(ev[i].data.ptr, ev[i].events);
    }
}
