/* turn: short-lived TURN credentials (draft-uberti-behave-turn-rest-00, what
 * coturn checks under use-auth-secret) and the iceServers list that carries
 * them. It owns the minting -- username "<expiry>:<opaque id>", credential
 * base64(HMAC-SHA1(secret, username)) -- and the opaque id. It does not own
 * the secret (config.c reads it; it lives in lc_config, in memory only),
 * the settings' checks, nor any rate (proto.c). No I/O, no state.
 *
 * The opaque id is base64url(HMAC-SHA256(K, "session:<row id>"))[0..16),
 * K = HMAC-SHA256(secret, "longcall turn session id"): stable for a session
 * (so a TURN server's log groups one session's allocations), different
 * between sessions, and it reveals nothing usable. Not the token (nor its
 * digest): a TURN server logs usernames, and anything derived from the token
 * alone could be matched against a token or its stored digest; the row id
 * is not secret, so it is keyed with a key only the secret's holders can
 * compute, and 96 bits of it leave no way back to the row id nor to a
 * token. */
#ifndef LC_TURN_H
#define LC_TURN_H

#include "config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TURN_ID_LEN 16   /* characters of the opaque id (12 bytes, base64url) */
#define TURN_USER_MAX 40 /* a username: up to 20 digits, ':', the id, NUL */
#define TURN_CRED_LEN 28 /* base64 of a 20-byte HMAC-SHA1, with padding */

/* The opaque id of session row id session_id under secret (len bytes),
 * NUL-terminated into out[TURN_ID_LEN + 1]. */
void turn_opaque_id(const char *secret, size_t len, int64_t session_id, char out[TURN_ID_LEN + 1]);

/* The credential of username (NUL-terminated): base64(HMAC-SHA1(secret,
 * username)), NUL-terminated into out[TURN_CRED_LEN + 1]. */
void turn_credential(const char *secret, size_t len, const char *username,
                     char out[TURN_CRED_LEN + 1]);

/* Mints the username of session_id at now_s (unix seconds): "<now_s +
 * ttl_s>:<opaque id>", NUL-terminated into out[TURN_USER_MAX]. */
void turn_username(const char *secret, size_t len, int64_t session_id, int64_t now_s, int ttl_s,
                   char out[TURN_USER_MAX]);

/* The iceServers array a client of session_id gets at now_s: the entries of
 * LONGCALL_ICE_SERVERS and, with a TURN secret configured, one entry
 * {"urls":[LONGCALL_TURN_URIS], "username":..., "credential":...} minted
 * now. Returns a new reference (the caller decrefs). */
json_t *turn_ice_servers(const lc_config *cfg, int64_t session_id, int64_t now_s);

/* The same as compact JSON text; the caller frees it (free()). */
char *turn_ice_servers_text(const lc_config *cfg, int64_t session_id, int64_t now_s);

#endif
