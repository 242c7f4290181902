/* Unit tests of token.c: shape, uniqueness and digest of session tokens. */
#include "../../fcgi/token.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "unit.h"

int main(void)
{
    char a[TOKEN_LEN + 1], b[TOKEN_LEN + 1];
    uint8_t ha[32], hb[32], h2[32];
    CHECK("token: created", token_new(a, ha) == 0 && token_new(b, hb) == 0);
    CHECK("token: 43 base64url characters",
          strlen(a) == 43 && strspn(a, b64url) == 43 && strspn(b, b64url) == 43);
    CHECK("token: two tokens differ", strcmp(a, b) != 0 && memcmp(ha, hb, 32) != 0);
    CHECK("token: digest of the presented token matches",
          token_hash(a, h2) == 0 && memcmp(ha, h2, 32) == 0);
    CHECK("token: wrong length refused", token_hash("abc", h2) == -1);
    char bad[TOKEN_LEN + 1];
    memcpy(bad, a, sizeof bad);
    bad[5] = '/';
    CHECK("token: non-base64url character refused", token_hash(bad, h2) == -1);
    /* 1000 tokens, no duplicate first 8 bytes: the generator is not stuck. */
    static char seen[1000][TOKEN_LEN + 1];
    int dup = 0;
    for (int i = 0; i < 1000; i++) {
        token_new(seen[i], h2);
        for (int j = 0; j < i && !dup; j++)
            dup = memcmp(seen[i], seen[j], 8) == 0;
    }
    CHECK("token: 1000 tokens without a repeat", !dup);
    return unit_done();
}
