/* turn: TURN REST credentials; see turn.h. */

#include "turn.h"

#include "util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The label the opaque-id key is derived under (changing it changes every
 * session's id: nothing stores them). */
#define ID_KEY_LABEL "longcall turn session id"

/* libcrypto failing an HMAC (out of memory) or a checked setting that no
 * longer parses: the OOM policy, abort after logging. */
static _Noreturn void turn_fail(const char *what)
{
    lc_log_event(LC_LOG_ERROR, "internal_error", LC_NOFIELDS, "turn: %s; aborting", what);
    abort();
}

void turn_opaque_id(const char *secret, size_t len, int64_t session_id, char out[TURN_ID_LEN + 1])
{
    unsigned char key[32], mac[32];
    unsigned int klen = 0, mlen = 0;
    char msg[40];
    int n = snprintf(msg, sizeof msg, "session:%lld", (long long)session_id);
    if (!HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)ID_KEY_LABEL,
              strlen(ID_KEY_LABEL), key, &klen) ||
        !HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, (size_t)n, mac, &mlen))
        turn_fail("HMAC-SHA256 failed");
    static const char id_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* 12 bytes -> 16 characters, 6 bits each, no padding. */
    for (int i = 0, o = 0; i < 12; i += 3) {
        uint32_t v = (uint32_t)mac[i] << 16 | (uint32_t)mac[i + 1] << 8 | mac[i + 2];
        out[o++] = id_alphabet[v >> 18 & 63];
        out[o++] = id_alphabet[v >> 12 & 63];
        out[o++] = id_alphabet[v >> 6 & 63];
        out[o++] = id_alphabet[v & 63];
    }
    out[TURN_ID_LEN] = '\0';
    OPENSSL_cleanse(key, sizeof key);
}

void turn_credential(const char *secret, size_t len, const char *username,
                     char out[TURN_CRED_LEN + 1])
{
    unsigned char mac[20];
    unsigned int mlen = 0;
    if (!HMAC(EVP_sha1(), secret, (int)len, (const unsigned char *)username, strlen(username), mac,
              &mlen) ||
        mlen != sizeof mac)
        turn_fail("HMAC-SHA1 failed");
    EVP_EncodeBlock((unsigned char *)out, mac, (int)sizeof mac); /* 28 characters and a NUL */
}

void turn_username(const char *secret, size_t len, int64_t session_id, int64_t now_s, int ttl_s,
                   char out[TURN_USER_MAX])
{
    char id[TURN_ID_LEN + 1];
    turn_opaque_id(secret, len, session_id, id);
    snprintf(out, TURN_USER_MAX, "%lld:%s", (long long)(now_s + ttl_s), id);
}

json_t *turn_ice_servers(const lc_config *cfg, int64_t session_id, int64_t now_s)
{
    json_t *list = json_loads(cfg->ice_servers ? cfg->ice_servers : "[]", 0, NULL);
    if (!json_is_array(list)) turn_fail("LONGCALL_ICE_SERVERS is not an array");
    if (!cfg->turn_secret || !cfg->turn_uris) return list;
    char user[TURN_USER_MAX], cred[TURN_CRED_LEN + 1];
    turn_username(cfg->turn_secret, cfg->turn_secret_len, session_id, now_s, cfg->turn_ttl, user);
    turn_credential(cfg->turn_secret, cfg->turn_secret_len, user, cred);
    json_t *urls = json_loads(cfg->turn_uris, 0, NULL);
    if (!json_is_array(urls)) turn_fail("LONGCALL_TURN_URIS is not an array");
    json_array_append_new(
        list, json_pack("{sossss}", "urls", urls, "username", user, "credential", cred));
    return list;
}

char *turn_ice_servers_text(const lc_config *cfg, int64_t session_id, int64_t now_s)
{
    /* Without TURN the configured text as it is (checked and compacted at
     * start): no JSON parsed per session. */
    if (!cfg->turn_secret || !cfg->turn_uris)
        return xstrdup(cfg->ice_servers ? cfg->ice_servers : "[]");
    json_t *list = turn_ice_servers(cfg, session_id, now_s);
    char *text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (!text) turn_fail("out of memory");
    return text;
}
