/* lg_fcgi: the FastCGI records of one request written to the backend's unix
 * socket, as lighttpd or nginx would write them (the slow scenario's
 * attackers); no answer parsing. */
#include "lg_fcgi.h"

#include "lg_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { FCGI_BEGIN_REQUEST = 1, FCGI_PARAMS = 4, FCGI_STDIN = 5, FCGI_RESPONDER = 1 };

/* Connects to path with a small receive buffer. */
int lg_fcgi_connect(const char *path, int rcvbuf)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        lg_warn("fcgi: socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lg_warn("fcgi: socket: %s", strerror(errno));
        return -1;
    }
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        lg_warn("fcgi: connect %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Appends a record header for content of len bytes (no padding). */
static size_t header(unsigned char *p, int type, size_t len)
{
    p[0] = 1; /* version */
    p[1] = (unsigned char)type;
    p[2] = 0; /* request id 1 */
    p[3] = 1;
    p[4] = (unsigned char)(len >> 8);
    p[5] = (unsigned char)(len & 0xff);
    p[6] = 0; /* padding */
    p[7] = 0;
    return 8;
}

/* Appends one name-value pair (both shorter than 128 bytes: one-byte
 * lengths). Returns the bytes written, 0 if it does not fit. */
static size_t pair(unsigned char *p, size_t room, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    if (n > 127 || v > 127 || 2 + n + v > room) return 0;
    p[0] = (unsigned char)n;
    p[1] = (unsigned char)v;
    memcpy(p + 2, name, n);
    memcpy(p + 2 + n, value, v);
    return 2 + n + v;
}

/* Writes the records of one request. */
int lg_fcgi_request(int fd, const char *method, const char *script, const char *query,
                    const char *host, const char *remote)
{
    unsigned char buf[1024], params[768];
    char uri[300];
    snprintf(uri, sizeof uri, "%s%s%s", script, *query ? "?" : "", query);
    const char *kv[][2] = {{"REQUEST_METHOD", method}, {"REQUEST_URI", uri},
                           {"QUERY_STRING", query},    {"SCRIPT_NAME", script},
                           {"HTTP_HOST", host},        {"CONTENT_LENGTH", "0"},
                           {"REMOTE_ADDR", remote}};
    size_t plen = 0;
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        size_t w = pair(params + plen, sizeof params - plen, kv[i][0], kv[i][1]);
        if (w == 0) {
            lg_warn("fcgi: parameter %s too long", kv[i][0]);
            return -1;
        }
        plen += w;
    }
    size_t len = header(buf, FCGI_BEGIN_REQUEST, 8);
    memset(buf + len, 0, 8);
    buf[len + 1] = FCGI_RESPONDER; /* role; flags 0: the connection is not kept */
    len += 8;
    len += header(buf + len, FCGI_PARAMS, plen);
    memcpy(buf + len, params, plen);
    len += plen;
    len += header(buf + len, FCGI_PARAMS, 0);
    len += header(buf + len, FCGI_STDIN, 0);
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            lg_warn("fcgi: write: %s", w < 0 ? strerror(errno) : "nothing written");
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

/* Bytes waiting unread on fd. */
long lg_fcgi_unread(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) != 0) return -1;
    return n;
}
