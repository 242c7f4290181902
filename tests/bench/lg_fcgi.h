/* lg_fcgi: a FastCGI peer on the backend's own unix socket, as a web server
 * is one: connects, writes the records of one request (the slow-readers
 * attack then never reads the answer), and says how much of the answer
 * waits unread. It does not parse answers. */
#ifndef LG_FCGI_H
#define LG_FCGI_H

/* Connects to the unix socket path with SO_RCVBUF set to rcvbuf bytes
 * (0: the default). Returns the blocking socket, or -1 (warned). The
 * caller closes it. */
int lg_fcgi_connect(const char *path, int rcvbuf);

/* Writes one request (id 1, role responder, connection not kept):
 * BEGIN_REQUEST, PARAMS with REQUEST_METHOD, REQUEST_URI, QUERY_STRING,
 * SCRIPT_NAME, HTTP_HOST, CONTENT_LENGTH 0, REMOTE_ADDR remote (the client
 * address the backend counts it for), the empty PARAMS, the empty STDIN.
 * Returns 0, or -1 (warned). */
int lg_fcgi_request(int fd, const char *method, const char *script, const char *query,
                    const char *host, const char *remote);

/* Bytes of the answer received and not read on fd (FIONREAD); -1 on
 * error. */
long lg_fcgi_unread(int fd);

#endif
