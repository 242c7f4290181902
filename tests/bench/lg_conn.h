/* lg_conn: one keep-alive HTTP/1.1 client connection to the target with at
 * most one request in flight: connect, write, read, parse, call back;
 * reconnects when the server closed it. */
#ifndef LG_CONN_H
#define LG_CONN_H

#include "lg_http.h"
#include "lg_loop.h"

#include <stddef.h>
#include <stdint.h>

enum { LG_ERR_IO = -1, LG_ERR_TIMEOUT = -2, LG_ERR_HTTP = -3 };

struct lg_conn;

/* Called once per request: status is the HTTP status, or LG_ERR_* (then the
 * body is empty). The body stays valid until the next request on c
 * completes. */
typedef void (*lg_done_fn)(struct lg_conn *c, int status, const char *body, size_t len, void *arg);

typedef struct lg_conn {
    lg_loop *loop;
    int fd;
    size_t reg;      /* index in loop->conns */
    int connecting;  /* non-blocking connect in progress */
    int busy;        /* a request is in flight */
    int reused;      /* the request went out on a connection used before */
    int retried;     /* the request was already resent once */
    uint32_t events; /* the epoll interest set now */
    char *out;       /* the request being written */
    size_t out_len, out_off, out_cap;
    char *in; /* bytes read and not yet parsed */
    size_t in_len, in_cap;
    size_t got; /* response bytes received for this request */
    lg_resp resp;
    lg_done_fn fn;
    void *arg;
    int64_t t_start;  /* when the request was first written (ns) */
    int64_t t_end;    /* when its response was complete (ns) */
    int64_t deadline; /* request time-out (ns) */
    int64_t last_io;  /* last completed response (ns), for idle reuse */
    uint64_t requests, reconnects;
    struct in_addr src; /* source address bound before connect (0: any) */
} lg_conn;

/* Initialises c (no socket yet) and registers it with the loop. Set
 * c->src afterwards to make its sockets come from that loopback address
 * (the attack scenario's attackers: 127.0.0.2, ...). */
void lg_conn_init(lg_conn *c, lg_loop *l);

/* Closes the socket, unregisters c and frees its buffers. */
void lg_conn_free(lg_conn *c);

/* Sends one request: method and path, with body (may be NULL: no body; a
 * POST then sends Content-Length: 0) as application/json. fn is called once
 * with the outcome unless this returns -1 (could not even start; fn is not
 * called). timeout_ms bounds the whole exchange. */
int lg_conn_request(lg_conn *c, const char *method, const char *path, const char *body,
                    size_t body_len, int timeout_ms, lg_done_fn fn, void *arg);

/* Handles epoll events for c (called by the loop). */
void lg_conn_event(lg_conn *c, uint32_t events);

/* Fails c's request with LG_ERR_TIMEOUT if its deadline passed (called by
 * the loop). */
void lg_conn_check_deadline(lg_conn *c, int64_t now);

/* Closes the socket; a request in flight fails with LG_ERR_IO. */
void lg_conn_close(lg_conn *c);

#endif
