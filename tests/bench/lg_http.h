/* lg_http: an incremental HTTP/1.1 response parser (status line, the headers
 * that frame the body, Content-Length, chunked, or until close) that
 * collects the body into its own buffer. */
#ifndef LG_HTTP_H
#define LG_HTTP_H

#include <stddef.h>

enum lg_resp_state {
    LG_RESP_HEAD,       /* waiting for the whole header block */
    LG_RESP_BODY_LEN,   /* Content-Length body */
    LG_RESP_CHUNK_SIZE, /* chunked: the size line */
    LG_RESP_CHUNK_DATA, /* chunked: data of the current chunk */
    LG_RESP_CHUNK_CRLF, /* chunked: the CRLF after a chunk */
    LG_RESP_TRAILER,    /* chunked: trailer lines up to the empty one */
    LG_RESP_BODY_EOF,   /* no framing: the body ends when the peer closes */
    LG_RESP_DONE
};

enum { LG_PARSE_MORE = 0, LG_PARSE_DONE = 1, LG_PARSE_ERROR = -1 };

typedef struct lg_resp {
    enum lg_resp_state state;
    int status;  /* HTTP status code */
    int close;   /* the server said Connection: close (or HTTP/1.0) */
    size_t left; /* bytes left in the body or the current chunk */
    char *body;  /* the body, NUL-terminated */
    size_t body_len;
    size_t body_cap;
} lg_resp;

/* Makes r ready for the next response (keeps the body buffer's memory). */
void lg_resp_reset(lg_resp *r);

/* Frees the body buffer. */
void lg_resp_free(lg_resp *r);

/* Parses as much of buf[0..len) as it can; *used says how many bytes were
 * taken. Returns LG_PARSE_DONE when the response is complete, LG_PARSE_MORE
 * when more bytes are needed, LG_PARSE_ERROR on a malformed response. */
int lg_resp_parse(lg_resp *r, const char *buf, size_t len, size_t *used);

/* Called when the peer closed: completes a body framed by the close.
 * Returns LG_PARSE_DONE or LG_PARSE_ERROR (the response was cut short). */
int lg_resp_eof(lg_resp *r);

#endif
