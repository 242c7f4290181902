/* lg_conn: one non-blocking keep-alive HTTP/1.1 connection with one request
 * in flight. Writes the request at once when it can, waits for EPOLLOUT
 * only when the socket is full or still connecting, parses the response as
 * it arrives and calls back. A request on a reused connection that the
 * server had closed before answering is resent once on a new connection. */
#include "lg_conn.h"

#include "lg_util.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection idle this long is replaced before reuse: lighttpd closes
 * idle keep-alive connections after 5 s and the close may cross our
 * request. */
#define IDLE_REUSE_NS (3 * LG_NS_PER_S)

/* Initialises c and registers it with the loop. */
void lg_conn_init(lg_conn *c, lg_loop *l)
{
    memset(c, 0, sizeof *c);
    c->loop = l;
    c->fd = -1;
    lg_loop_add(l, c);
}

static void close_fd(lg_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->loop->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->connecting = 0;
    c->events = 0;
    c->in_len = 0;
}

/* Ends the request in flight with status (HTTP status or LG_ERR_*). */
static void finish(lg_conn *c, int status)
{
    lg_done_fn fn = c->fn;
    void *arg = c->arg;
    c->busy = 0;
    c->fn = NULL;
    c->t_end = lg_now_ns();
    c->last_io = c->t_end;
    if (status < 0 || c->resp.close) close_fd(c);
    if (status < 0) lg_resp_reset(&c->resp);
    if (fn) fn(c, status, c->resp.body ? c->resp.body : "", c->resp.body_len, arg);
}

/* Closes the socket and frees everything c owns. */
void lg_conn_free(lg_conn *c)
{
    close_fd(c);
    lg_loop_remove(c->loop, c);
    free(c->out);
    free(c->in);
    lg_resp_free(&c->resp);
    c->out = c->in = NULL;
    c->busy = 0;
}

/* Closes the socket; a request in flight fails with LG_ERR_IO. */
void lg_conn_close(lg_conn *c)
{
    close_fd(c);
    if (c->busy) finish(c, LG_ERR_IO);
}

static int set_events(lg_conn *c, uint32_t want)
{
    if (c->events == want) return 0;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    int op = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(c->loop->epfd, op, c->fd, &ev) != 0) {
        lg_warn("epoll_ctl: %s", strerror(errno));
        return -1;
    }
    c->events = want;
    return 0;
}

/* Opens a non-blocking socket towards the target. */
static int open_socket(lg_conn *c)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lg_warn("socket: %s", strerror(errno));
        goto fail;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->src.s_addr) {
        struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr = c->src};
        if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0) {
            lg_warn("bind: %s", strerror(errno));
            goto fail;
        }
    }
    if (connect(fd, (struct sockaddr *)&c->loop->addr, sizeof c->loop->addr) != 0) {
        if (errno != EINPROGRESS) {
            lg_warn("connect: %s", strerror(errno));
            goto fail;
        }
        c->connecting = 1;
    }
    c->fd = fd;
    c->events = 0;
    c->reconnects++;
    return set_events(c, EPOLLIN | EPOLLOUT);
fail:
    if (fd >= 0) close(fd);
    return -1;
}

/* Writes what is left of the request. Returns 0, or -1 on a socket error. */
static int flush(lg_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return set_events(c, EPOLLIN | EPOLLOUT);
        return -1;
    }
    return set_events(c, EPOLLIN);
}

/* Starts (or restarts) writing the request held in c->out. */
static int start(lg_conn *c)
{
    c->out_off = 0;
    c->got = 0;
    c->in_len = 0;
    lg_resp_reset(&c->resp);
    c->reused = c->fd >= 0;
    if (c->fd < 0 && open_socket(c) != 0) return -1;
    if (c->connecting) return 0;
    if (flush(c) != 0) {
        close_fd(c);
        return -1;
    }
    return 0;
}

/* Sends one request; see lg_conn.h. */
int lg_conn_request(lg_conn *c, const char *method, const char *path, const char *body,
                    size_t body_len, int timeout_ms, lg_done_fn fn, void *arg)
{
    if (c->busy) {
        lg_warn("request on a busy connection");
        return -1;
    }
    int64_t now = lg_now_ns();
    if (c->fd >= 0 && now - c->last_io > IDLE_REUSE_NS) close_fd(c);
    int has_body = body != NULL || strcmp(method, "POST") == 0;
    size_t need = strlen(method) + strlen(path) + body_len + 256;
    if (c->out_cap < need) {
        c->out = lg_xrealloc(c->out, need);
        c->out_cap = need;
    }
    int n;
    if (has_body)
        n = snprintf(c->out, c->out_cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, c->loop->host, body_len);
    else
        n = snprintf(c->out, c->out_cap, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path,
                     c->loop->host);
    if (n < 0 || (size_t)n + body_len >= c->out_cap) return -1;
    if (body_len) memcpy(c->out + n, body, body_len);
    c->out_len = (size_t)n + body_len;
    c->fn = fn;
    c->arg = arg;
    c->retried = 0;
    c->t_start = now;
    c->deadline = now + (int64_t)timeout_ms * LG_NS_PER_MS;
    c->requests++;
    if (start(c) != 0) {
        c->fn = NULL;
        return -1;
    }
    c->busy = 1;
    return 0;
}

/* The server closed or reset the connection (or the socket failed). */
static void on_closed(lg_conn *c, int eof)
{
    if (!c->busy) {
        close_fd(c);
        return;
    }
    if (eof && lg_resp_eof(&c->resp) == LG_PARSE_DONE) {
        c->resp.close = 1;
        finish(c, c->resp.status);
        return;
    }
    /* Closed before any answer on a kept-alive connection: lighttpd closed
     * it while the request was on its way. Resend once. */
    if (c->reused && !c->got && !c->retried) {
        close_fd(c);
        c->retried = 1;
        if (start(c) == 0) return;
    }
    finish(c, LG_ERR_IO);
}

static void on_readable(lg_conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 16384) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
            c->in = lg_xrealloc(c->in, c->in_cap);
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            on_closed(c, n == 0);
            return;
        }
        if (!c->busy) { /* bytes nobody asked for */
            close_fd(c);
            return;
        }
        c->in_len += (size_t)n;
        c->got += (size_t)n;
        size_t used = 0;
        int rc = lg_resp_parse(&c->resp, c->in, c->in_len, &used);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (rc == LG_PARSE_ERROR) {
            lg_warn("malformed HTTP response");
            finish(c, LG_ERR_HTTP);
            return;
        }
        if (rc == LG_PARSE_DONE) {
            finish(c, c->resp.status);
            return;
        }
        if ((size_t)n < room) return; /* drained for now (level-triggered) */
    }
}

/* Handles epoll events for c. */
void lg_conn_event(lg_conn *c, uint32_t events)
{
    if (c->fd < 0) return;
    if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            lg_warn("connect: %s", strerror(err));
            on_closed(c, 0);
            return;
        }
        c->connecting = 0;
    }
    if (events & EPOLLOUT && c->busy && c->out_off < c->out_len) {
        if (flush(c) != 0) {
            on_closed(c, 0);
            return;
        }
    } else if (events & EPOLLOUT && !c->connecting) {
        set_events(c, EPOLLIN);
    }
    if (c->fd >= 0 && !c->connecting && events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
}

/* Fails the request in flight if its deadline passed. */
void lg_conn_check_deadline(lg_conn *c, int64_t now)
{
    if (!c->busy || now < c->deadline) return;
    close_fd(c);
    finish(c, LG_ERR_TIMEOUT);
}
