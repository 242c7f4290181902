/* Reads back what fcgirec_answer wrote, for its unit test and fuzz target:
 * checks every record (version 1, request id, no padding, reserved byte 0),
 * that STDOUT records carry at most 65535 bytes and are all non-empty but
 * the one that ends the stream, followed by exactly one END_REQUEST with
 * application status 0 and FCGI_REQUEST_COMPLETE, and nothing after it.
 * Returns NULL when all holds and the content equals data/len, else what
 * is wrong. */
#ifndef LC_FCGIREC_PARSE_H
#define LC_FCGIREC_PARSE_H

#include <stddef.h>
#include <string.h>

static const char *fcgirec_check(const unsigned char *p, size_t n, int id, const char *data,
                                 size_t len)
{
    size_t off = 0, got = 0;
    int ended_stdout = 0;
    for (;;) {
        if (n - off < 8) return "truncated record header";
        const unsigned char *h = p + off;
        size_t clen = (size_t)h[4] << 8 | h[5];
        if (h[0] != 1) return "version is not 1";
        if (((int)h[2] << 8 | h[3]) != id) return "wrong request id";
        if (h[6] != 0) return "padding where none is written";
        if (h[7] != 0) return "reserved byte not 0";
        off += 8;
        if (n - off < clen) return "truncated record content";
        if (h[1] == 6) {
            if (ended_stdout) return "STDOUT after the empty STDOUT";
            if (clen == 0) {
                ended_stdout = 1;
            } else {
                if (got + clen > len || memcmp(p + off, data + got, clen) != 0)
                    return "STDOUT content differs from the answer";
                got += clen;
            }
        } else if (h[1] == 3) {
            if (!ended_stdout) return "END_REQUEST before the empty STDOUT";
            if (clen != 8) return "END_REQUEST body is not 8 bytes";
            static const unsigned char zero[8];
            if (memcmp(p + off, zero, 8) != 0) return "END_REQUEST status is not 0/COMPLETE";
            if (off + 8 != n) return "bytes after END_REQUEST";
            return got == len ? NULL : "STDOUT content shorter than the answer";
        } else {
            return "unexpected record type";
        }
        off += clen;
    }
}

#endif
