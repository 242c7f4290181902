/* The stored text of a message (proto.c, message_text): byte for byte what
 * json_dumps(JSON_COMPACT) writes for {"id": type, ...body}. Differential,
 * against Jansson itself: a hand corpus of the awkward cases (every
 * control character, quotes and backslashes, UTF-8, reals, integers at
 * their limits, nesting, keys that need escaping), then 3,000 random
 * messages from a fixed seed. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/proto.c"
#include "../../fcgi/token.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/store.c"
#include "../../fcgi/store_pg.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

/* message_text of msg's members behind "id", as deliver_as builds it,
 * compared with json_dumps. Returns 1 when equal (else prints both). */
static int same_text(json_t *msg)
{
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string("iceCandidate"));
    json_object_update(m, msg);
    char *want = json_dumps(m, JSON_COMPACT);
    char *got = message_text(m);
    int ok = want && got && strcmp(want, got) == 0;
    if (!ok) printf("# want %s\n#  got %s\n", want ? want : "(null)", got ? got : "(null)");
    free(want);
    free(got);
    json_decref(m);
    return ok;
}

static unsigned rng = 12345;
static unsigned next_rand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 16) & 0x7fff;
}

/* A random valid UTF-8 string of about len bytes, with the characters
 * Jansson escapes among ordinary ones. */
static json_t *rand_string(size_t len)
{
    static const char *pieces[] = {"a", "Z", "0", " ", "=", "/", "\"", "\\", "\n", "\r", "\t",
                                   "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80", "candidate:1 1 udp 2122260223 "};
    buf b = {0};
    buf_append(&b, "", 0);
    while (b.len < len)
        buf_puts(&b, pieces[next_rand() % (sizeof pieces / sizeof pieces[0])]);
    json_t *s = json_stringn(b.data, b.len);
    buf_free(&b);
    return s;
}

static json_t *rand_value(int depth)
{
    switch (next_rand() % (depth > 2 ? 6 : 8)) {
    case 0: return json_integer((json_int_t)next_rand() * (next_rand() % 2 ? -977 : 131071));
    case 1: return json_real((double)next_rand() / 7.0);
    case 2: return next_rand() % 2 ? json_true() : json_false();
    case 3: return json_null();
    case 4: return rand_string(next_rand() % 8);
    case 5: return rand_string(60 + next_rand() % 5 + (next_rand() % 4 ? 0 : 2600));
    case 6: {
        json_t *a = json_array();
        for (unsigned i = next_rand() % 4; i > 0; i--)
            json_array_append_new(a, rand_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = next_rand() % 4; i > 0; i--) {
            json_t *k = rand_string(1 + next_rand() % 6);
            json_object_set_new(o, json_string_value(k), rand_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

int main(void)
{
    lc_json_init();
    static const char *corpus[] = {
        "{}",
        "{\"to\":\"bob\"}",
        "{\"candidate\":{\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host\","
        "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}",
        "{\"sdpOffer\":\"v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n"
        "a=group:BUNDLE 0\\r\\na=msid-semantic: WMS\\r\\n\"}",
        "{\"x\":\"\\u0001\\u001f\\u007f \\\"quoted\\\" back\\\\slash /slash\"}",
        "{\"utf\":\"\\u00e9t\\u00e9 \\u20ac \\ud83d\\ude00 0123456789012345678901234567890123456789012345678901234567890\"}",
        "{\"n\":-9223372036854775807,\"m\":9223372036854775807,\"r\":0.1,\"r2\":1e300,\"r3\":-0.0,\"t\":true,\"f\":false,\"z\":null}",
        "{\"a\":[],\"o\":{},\"deep\":[[[{\"k\":[1,2,{\"\\\"\":\"\\n\"}]}]]]}",
        "{\"key with \\\"quote\\\" and \\n\":\"v\",\"\\u00e9\":1}",
        "{\"edge63\":\"012345678901234567890123456789012345678901234567890123456789012\","
        "\"edge64\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
        "{\"later\":1,\"earlier\":2,\"id\":\"overridden\"}",
    };
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        json_error_t err;
        json_t *msg = json_loads(corpus[i], 0, &err);
        char name[96];
        snprintf(name, sizeof name, "corpus %zu: same text as json_dumps", i);
        CHECK(name, msg && same_text(msg));
        json_decref(msg);
    }

    /* Nesting past what message_text writes itself (TEXT_DEPTH_MAX), up to
     * the parser's limit, objects and arrays mixed. */
    int deep_ok = 1;
    for (int depth = TEXT_DEPTH_MAX - 2; depth <= 2000; depth += depth < 40 ? 1 : 491) {
        json_t *v = json_pack("{ss}", "candidate", "c\"1\"");
        for (int k = 0; k < depth; k++)
            v = k % 3 ? json_pack("{so}", "a", v) : json_pack("[io]", k, v);
        json_t *msg = json_pack("{so}", "candidate", v);
        deep_ok &= msg && same_text(msg);
        json_decref(msg);
    }
    CHECK("values nested up to 2000 deep: same text as json_dumps", deep_ok);

    /* Every control character, alone and between plain ones. */
    int ctl_ok = 1;
    for (int ch = 0; ch < 0x20; ch++) {
        char raw[4] = {'a', (char)ch, 'b', 0};
        json_t *msg = json_pack("{so}", "s", json_stringn(raw, 3));
        ctl_ok &= msg && same_text(msg);
        json_decref(msg);
    }
    CHECK("each control character: escaped as Jansson escapes it", ctl_ok);

    int bad = 0, made = 0, long_strings = 0;
    for (int i = 0; i < 3000 && bad < 5; i++) {
        json_t *msg = json_object();
        for (unsigned k = 1 + next_rand() % 4; k > 0; k--) {
            char key[16];
            snprintf(key, sizeof key, "k%u", next_rand() % 6);
            json_object_set_new(msg, key, rand_value(0));
        }
        char *t = json_dumps(msg, JSON_COMPACT);
        long_strings += t && strlen(t) > 2000;
        free(t);
        if (!same_text(msg)) bad++;
        made++;
        json_decref(msg);
    }
    char name[128];
    snprintf(name, sizeof name,
             "3000 random messages (%d longer than 2 KB): same text as json_dumps", long_strings);
    CHECK(name, bad == 0 && made == 3000 && long_strings > 200);
    return unit_done();
}
