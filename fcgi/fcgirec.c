/* fcgirec: FastCGI record framing of a hand-written answer. See fcgirec.h. */

#include "fcgirec.h"

/* Appends one record header (FastCGI 1.0, section 3.3): version 1, type,
 * request id and content length big-endian, no padding. */
static void header(buf *b, int type, int id, size_t len)
{
    unsigned char h[8] = {1,
                          (unsigned char)type,
                          (unsigned char)(id >> 8),
                          (unsigned char)id,
                          (unsigned char)(len >> 8),
                          (unsigned char)len,
                          0,
                          0};
    buf_append(b, h, sizeof h);
}

void fcgirec_answer(buf *out, int request_id, const char *data, size_t len)
{
    for (size_t off = 0; off < len; off += FCGIREC_MAX_CONTENT) {
        size_t n = len - off < FCGIREC_MAX_CONTENT ? len - off : FCGIREC_MAX_CONTENT;
        header(out, FCGIREC_STDOUT, request_id, n);
        buf_append(out, data + off, n);
    }
    header(out, FCGIREC_STDOUT, request_id, 0);
    header(out, FCGIREC_END_REQUEST, request_id, 8);
    buf_append(out, "\0\0\0\0\0\0\0\0", 8); /* app status 0, FCGI_REQUEST_COMPLETE */
}
