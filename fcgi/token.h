/* token: session tokens -- 256 random bits from OpenSSL's CSPRNG, written
 * base64url (43 characters), and their SHA-256 digest, which is all the
 * database keeps. Owns no state. */
#ifndef LC_TOKEN_H
#define LC_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_LEN 43 /* base64url of 32 bytes, no padding */

/* Writes a new token (NUL-terminated) into out[TOKEN_LEN + 1] and its digest
 * into hash. Returns 0, or -1 after logging if the CSPRNG failed. */
int token_new(char out[TOKEN_LEN + 1], uint8_t hash[32]);

/* Digest of a token the client presented. Returns 0, or -1 when it is not
 * TOKEN_LEN base64url characters (then it cannot name any session). */
int token_hash(const char *token, uint8_t hash[32]);

#endif
