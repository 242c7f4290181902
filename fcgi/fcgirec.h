/* fcgirec: the FastCGI 1.0 record framing of an answer written by hand (a
 * parked poll, whose libfcgi streams were freed): FCGI_STDOUT records of at
 * most 65535 bytes, the empty FCGI_STDOUT that ends the stream, and
 * FCGI_END_REQUEST. It only builds bytes in a buffer; it does no I/O and
 * knows nothing of HTTP (front_fcgi.c writes the buffer to the socket). */
#ifndef LC_FCGIREC_H
#define LC_FCGIREC_H

#include "util.h"

#include <stddef.h>

enum { FCGIREC_END_REQUEST = 3, FCGIREC_STDOUT = 6, FCGIREC_MAX_CONTENT = 65535 };

/* Appends to out the records that answer request request_id (0..65535)
 * with data/len: ceil(len / 65535) FCGI_STDOUT records carrying data in
 * order (no padding), an empty FCGI_STDOUT, and FCGI_END_REQUEST with
 * application status 0 and protocol status FCGI_REQUEST_COMPLETE. No
 * return value (allocation failure aborts, see util.h); out stays the
 * caller's to free. */
void fcgirec_answer(buf *out, int request_id, const char *data, size_t len);

#endif
