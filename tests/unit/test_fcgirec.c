/* Unit tests of fcgirec.c: the FastCGI records of a hand-written answer,
 * byte for byte for a small one, and read back for sizes around the 65535
 * record limit and for the extreme request ids. */
#include "../../fcgi/fcgirec.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../fuzz/fcgirec_parse.h"
#include "unit.h"

#include <stdlib.h>

/* Frames len bytes (a pattern) for id and checks them read back. */
static int round_trip(int id, size_t len, size_t *records)
{
    char *data = xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 7 + i / 251);
    buf out = {0};
    fcgirec_answer(&out, id, data, len);
    const char *why = fcgirec_check((const unsigned char *)out.data, out.len, id, data, len);
    if (why) printf("# id %d len %zu: %s\n", id, len, why);
    *records = 0;
    for (size_t off = 0; off + 8 <= out.len; (*records)++)
        off +=
            8 + ((size_t)(unsigned char)out.data[off + 4] << 8 | (unsigned char)out.data[off + 5]);
    buf_free(&out);
    free(data);
    return why == NULL;
}

int main(void)
{
    buf out = {0};
    fcgirec_answer(&out, 0x1234, "hi", 2);
    static const unsigned char want[] = {1, 6, 0x12, 0x34, 0, 2, 0, 0, 'h', 'i', /* STDOUT */
                                         1, 6, 0x12, 0x34, 0, 0, 0, 0,           /* end of stream */
                                         1, 3, 0x12, 0x34, 0, 8, 0, 0,           /* END_REQUEST */
                                         0, 0, 0,    0,    0, 0, 0, 0};
    CHECK("a two-byte answer is STDOUT, empty STDOUT, END_REQUEST byte for byte",
          out.len == sizeof want && memcmp(out.data, want, sizeof want) == 0);
    buf_free(&out);
    fcgirec_answer(&out, 7, NULL, 0);
    CHECK("an empty answer is the empty STDOUT and END_REQUEST only",
          out.len == 24 && fcgirec_check((unsigned char *)out.data, out.len, 7, "", 0) == NULL);
    buf_free(&out);
    size_t r;
    CHECK("1 byte, request id 0: 3 records", round_trip(0, 1, &r) && r == 3);
    CHECK("65534 bytes: one STDOUT record", round_trip(1, 65534, &r) && r == 3);
    CHECK("65535 bytes: one full STDOUT record", round_trip(2, 65535, &r) && r == 3);
    CHECK("65536 bytes: two STDOUT records", round_trip(3, 65536, &r) && r == 4);
    CHECK("131070 bytes: two full STDOUT records", round_trip(4, 131070, &r) && r == 4);
    CHECK("300000 bytes, request id 65535: five STDOUT records",
          round_trip(65535, 300000, &r) && r == 7);
    CHECK("request id 256 is written big-endian", round_trip(256, 10, &r) && r == 3);
    fcgirec_answer(&out, 9, "abc", 3);
    out.data[6] = 1; /* the checker itself notices a wrong padding length */
    CHECK("the reader refuses a record with padding",
          fcgirec_check((unsigned char *)out.data, out.len, 9, "abc", 3) != NULL);
    buf_free(&out);
    return unit_done();
}
