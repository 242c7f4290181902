/* token: random session ids and their digests; see token.h. */
#include "token.h"

#include "util.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* SHA-256, fetched from the provider once: EVP_sha256() makes every
 * EVP_Digest look it up again, under OpenSSL's locks, which the threads of
 * a busy process then queue on (two digests per relayed message). */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256) {
        lc_log_event(LC_LOG_ERROR, "internal_error", LC_NOFIELDS,
                     "OpenSSL has no SHA-256: reinstall libssl3");
        abort();
    }
}

static void digest(const char *token, uint8_t hash[32])
{
    unsigned int n = 32;
    pthread_once(&sha256_once, sha256_fetch);
    EVP_Digest(token, strlen(token), hash, &n, sha256, NULL);
}

int token_new(char out[TOKEN_LEN + 1], uint8_t hash[32])
{
    uint8_t raw[33] = {0};
    if (RAND_bytes(raw, 32) != 1) {
        lc_log_event(LC_LOG_ERROR, "internal_error", LC_NOFIELDS,
                     "the random number generator failed: this session request gets 500; check "
                     "that /dev/urandom and getrandom(2) work");
        return -1;
    }
    /* 32 bytes = 10 groups of 3 + 2 bytes -> 40 + 3 characters. */
    size_t o = 0;
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        if (o < TOKEN_LEN) out[o++] = b64url[v & 63];
    }
    out[TOKEN_LEN] = '\0';
    digest(out, hash);
    return 0;
}

int token_hash(const char *token, uint8_t hash[32])
{
    if (strlen(token) != TOKEN_LEN || strspn(token, b64url) != TOKEN_LEN) return -1;
    digest(token, hash);
    return 0;
}
