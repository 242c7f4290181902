/* libFuzzer target: the FastCGI records of a parked poll's answer
 * (fcgi/fcgirec.c). Input: 2 bytes request id (0..65535), 3 bytes answer
 * length (modulo 300 KiB + 1), then the bytes the answer is made of
 * (repeated to the length; zeros when none). The records are read back
 * (tests/fuzz/fcgirec_parse.h): content, ids, padding and end record. */
#include "../../fcgi/fcgirec.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "fcgirec_parse.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_ANSWER (300 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5) return 0;
    int id = data[0] << 8 | data[1];
    size_t len = ((size_t)data[2] << 16 | (size_t)data[3] << 8 | data[4]) % (MAX_ANSWER + 1);
    const uint8_t *src = data + 5;
    size_t nsrc = size - 5;
    char *answer = xmalloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        answer[i] = nsrc ? (char)src[i % nsrc] : 0;
    buf out = {0};
    fcgirec_answer(&out, id, answer, len);
    const char *why = fcgirec_check((const unsigned char *)out.data, out.len, id, answer, len);
    size_t records = len / FCGIREC_MAX_CONTENT + (len % FCGIREC_MAX_CONTENT != 0) + 2;
    if (!why && out.len != len + 8 * records + 8) why = "unexpected total size";
    if (why) {
        fprintf(stderr, "fuzz_fcgirec: request %d, %zu bytes: %s\n", id, len, why);
        abort();
    }
    buf_free(&out);
    free(answer);
    return 0;
}
