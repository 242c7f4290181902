/* proto: one function per message id; see proto.h. Every function returns
 * LC_OK / LC_QUOTA or a store failure (LC_ERR / LC_BUSY / LC_FULL), the
 * result of the store calls it made. */

#include "proto.h"

#include "addr.h"
#include "token.h"
#include "turn.h"
#include "wire.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

/* Most messages a wake record keeps for an answer from memory (more, and
 * the woken poll reads its mailbox instead). */
#define WAKE_MAX_MSGS 64
#define WAKE_MAX_BYTES (64 * 1024)

/* The wake record of session sid, created when it has none yet. */
static proto_wake *want_wake(proto_ctx *c, int64_t sid)
{
    for (int i = 0; i < c->nwake; i++)
        if (c->wake[i].session_id == sid) return &c->wake[i];
    if (c->nwake == c->capwake) {
        c->capwake = c->capwake ? c->capwake * 2 : 8;
        c->wake = xrealloc(c->wake, (size_t)c->capwake * sizeof *c->wake);
    }
    proto_wake *w = &c->wake[c->nwake++];
    *w = (proto_wake){.session_id = sid, .exact = 1};
    return w;
}

void proto_wake_session(proto_ctx *c, int64_t sid)
{
    proto_wake *w = want_wake(c, sid);
    w->exact = 0;
    buf_free(&w->msgs);
}

void proto_wake_mailbox(proto_ctx *c, int64_t sid, const store_mailbox *mb)
{
    proto_wake *w = want_wake(c, sid);
    w->mb = *mb;
    w->mb_known = 1;
}

/* Records message seq (body as stored) in the wake record of session to. */
static void note_queued(proto_ctx *c, int64_t to, const store_mailbox *mb, const char *body)
{
    int64_t seq = mb->seq;
    proto_wake *w = want_wake(c, to);
    w->acked = mb->acked;
    if (!w->exact) return;
    if (w->first && (seq != w->last + 1 || w->last - w->first + 1 >= WAKE_MAX_MSGS ||
                     w->msgs.len > WAKE_MAX_BYTES)) {
        w->exact = 0;
        buf_free(&w->msgs);
        return;
    }
    if (!w->first) {
        w->first = seq;
        w->poll_gen = mb->poll_gen;
    }
    w->last = seq;
    wire_message_add(&w->msgs, seq, body, strlen(body));
}

void proto_wake_free(proto_wake *w)
{
    buf_free(&w->msgs);
}

void proto_ctx_free(proto_ctx *c)
{
    for (int i = 0; i < c->nwake; i++)
        proto_wake_free(&c->wake[i]);
    free(c->wake);
    c->wake = NULL;
    c->nwake = c->capwake = 0;
    free(c->ev);
    c->ev = NULL;
    c->nev = c->capev = 0;
}

/* Notes a line for proto_log_committed (see proto_event). */
static void note(proto_ctx *c, const char *event, int64_t session, const store_call *call,
                 const char *outcome)
{
    if (c->nev == c->capev) {
        c->capev = c->capev ? c->capev * 2 : 4;
        c->ev = xrealloc(c->ev, (size_t)c->capev * sizeof *c->ev);
    }
    c->ev[c->nev++] = (proto_event){.event = event,
                                    .outcome = outcome,
                                    .session = session,
                                    .call = call ? call->id : 0,
                                    .caller = call ? call->caller_sid : 0,
                                    .callee = call ? call->callee_sid : 0};
}

void proto_log_committed(proto_ctx *c)
{
    for (int i = 0; i < c->nev; i++) {
        const proto_event *v = &c->ev[i];
        if (!v->call) {
            lc_log_event(LC_LOG_INFO, v->event, LC_FIELDS(LC_ID("session", v->session)),
                         "session %lld %s", (long long)v->session, v->outcome);
            continue;
        }
        lc_log_event(LC_LOG_INFO, v->event,
                     LC_FIELDS(LC_ID("session", v->session), LC_ID("call", v->call),
                               LC_ID("caller", v->caller), LC_ID("callee", v->callee),
                               LC_STR("outcome", v->outcome)),
                     "call %lld (session %lld calling session %lld) %s%s", (long long)v->call,
                     (long long)v->caller, (long long)v->callee,
                     strcmp(v->event, "call_started") == 0    ? "rings"
                     : strcmp(v->event, "call_answered") == 0 ? "was answered"
                                                              : "ended: ",
                     v->outcome ? v->outcome : "");
    }
    c->nev = 0;
}

/* ---- message text ------------------------------------------------------
 * A stored message is the compact JSON of {"id": type, ...body}: exactly
 * what json_dumps(JSON_COMPACT) writes, members in insertion order
 * (tests/unit/test_proto_text.c holds the two to the same bytes). It is
 * written here rather than by json_dumps because it is written under the
 * write lock, where every other request of the process waits: Jansson
 * writes a string through a callback per run of plain characters with a
 * UTF-8 decode per character, 25 us for a 2.5 KB SDP (its "\r\n" cut it
 * into a hundred runs), about a tenth of the lock's time in a call set-up
 * (BENCHMARKS.md); copied with a table it is a few microseconds. */

/* Jansson's escapes (no flag asks for more): '"', '\\' and the control
 * characters, the short forms where JSON has them; nothing else. */
static const char *const escape_of[0x20] = {
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\b",     "\\t",     "\\n",     "\\u000B", "\\f",     "\\r",     "\\u000E", "\\u000F",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001A", "\\u001B", "\\u001C", "\\u001D", "\\u001E", "\\u001F"};

/* s (n bytes of valid UTF-8, as every Jansson string is) as a JSON string
 * literal into b. */
static void put_string(buf *b, const char *s, size_t n)
{
    size_t run = 0; /* start of the plain characters not yet copied */
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        buf_append(b, s + run, i - run);
        buf_puts(b, ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : escape_of[ch]);
        run = i + 1;
    }
    buf_append(b, s + run, n - run);
    buf_append(b, "\"", 1);
}

/* Nesting written here at most; what lies deeper (only a client's value
 * can: a candidate object, say) is left to json_dumps, as all of it was
 * before, so that this recursion adds nothing to a thread's stack beyond
 * what Jansson's own already took. */
#define TEXT_DEPTH_MAX 16

/* v as Jansson writes it (compact) into b. */
static void put_dumped(buf *b, const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    buf_puts(b, t ? t : "null");
    free(t);
}

static void put_value(buf *b, const json_t *v, int depth)
{
    if (depth >= TEXT_DEPTH_MAX && (json_is_object(v) || json_is_array(v))) {
        put_dumped(b, v);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *m;
        int first = 1;
        buf_append(b, "{", 1);
        json_object_foreach((json_t *)v, key, m) {
            if (!first) buf_append(b, ",", 1);
            first = 0;
            put_string(b, key, strlen(key)); /* a key holds no NUL (json_object_set) */
            buf_append(b, ":", 1);
            put_value(b, m, depth + 1);
        }
        buf_append(b, "}", 1);
        break;
    }
    case JSON_ARRAY:
        buf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) buf_append(b, ",", 1);
            put_value(b, json_array_get(v, i), depth + 1);
        }
        buf_append(b, "]", 1);
        break;
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_TRUE:
        buf_puts(b, "true");
        break;
    case JSON_FALSE:
        buf_puts(b, "false");
        break;
    case JSON_NULL:
        buf_puts(b, "null");
        break;
    default: /* a real: Jansson's own formatting, as rare as it is subtle */
        put_dumped(b, v);
    }
}

/* The stored text of message m (see above), NUL-terminated; the caller
 * frees it. */
static char *message_text(const json_t *m)
{
    buf b = {0};
    put_value(&b, m, 0);
    return b.data;
}

/* Puts a message {"id": type, ...body} in session to's mailbox. body is
 * stolen (may be NULL). A relayed message (one peer to the other) records
 * the sender's name in the history; replies and notices record the server.
 * The mailbox rule of proto.h (proto_apply): a message to another session
 * counts against its quota and the sender's share of it; one to the sender
 * itself only against twice the quota; server events (c->self.id == 0)
 * against nothing: a notification that a call ended must never be refused.
 * On a refusal, c->refused says why and the result is LC_QUOTA. */
static int deliver_as(proto_ctx *c, int relayed, int64_t to, const char *to_name, const char *type,
                      json_t *body, int64_t call_id, int transient)
{
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(type));
    if (body) {
        json_object_update(m, body);
        json_decref(body);
    }
    char *text = message_text(m);
    json_decref(m);
    store_mailbox mb;
    int own = to == c->self.id;
    int quota = !c->self.id ? INT_MAX : own ? 2 * c->cfg->mailbox_quota : c->cfg->mailbox_quota;
    store_msg msg = {.session_id = to,
                     .sender = relayed && c->self.id ? c->self.name : NULL,
                     .recipient = to_name,
                     .type = type,
                     .body = text,
                     .call_id = call_id,
                     .created = c->now,
                     .transient = transient,
                     .sender_sid = c->self.id && !own ? c->self.id : 0};
    int rc = store_enqueue(c->st, &msg, quota, c->cfg->mailbox_share, &mb);
    if (own) c->self_written = 1;
    if (rc == LC_OK) {
        note_queued(c, to, &mb, text);
        c->mx.stored[metrics_type(type)]++;
    }
    free(text);
    if (rc == LC_QUOTA || rc == LC_SHARE) {
        c->refused = rc == LC_SHARE ? PROTO_MAILBOX_SHARE : PROTO_MAILBOX_FULL;
        c->refused_own = own;
        snprintf(c->refused_name, sizeof c->refused_name, "%s", to_name ? to_name : "");
        rc = LC_QUOTA;
    }
    return rc;
}

static int deliver(proto_ctx *c, int64_t to, const char *to_name, const char *type, json_t *body,
                   int64_t call_id)
{
    return deliver_as(c, 1, to, to_name, type, body, call_id, 0);
}

/* A message from the server to the sender itself, kept as history. */
static int reply(proto_ctx *c, const char *type, json_t *body, int64_t call_id)
{
    return deliver_as(c, 0, c->self.id, c->self.name, type, body, call_id, 0);
}

/* A reply to the sender that carries no user content (listResponse, pong,
 * registerResponse, error): delivered like any other, in order and once,
 * but not kept as history (store_msg.transient; README, "Storage and
 * history"), so that asking for it cannot grow the database. */
static int notice(proto_ctx *c, const char *type, json_t *body)
{
    return deliver_as(c, 0, c->self.id, c->self.name, type, body, 0, 1);
}

/* The wire names of enum proto_reason, in its order. */
static const char *const reason_names[PROTO_REASONS] = {
    [PROTO_INVALID_NAME] = "invalid_name",
    [PROTO_TAKEN] = "taken",
    [PROTO_RESERVED] = "reserved",
    [PROTO_IN_CALL] = "in_call",
    [PROTO_UNREGISTERED] = "unregistered",
    [PROTO_SELF] = "self",
    [PROTO_UNKNOWN] = "unknown",
    [PROTO_BUSY] = "busy",
    [PROTO_REJECTED] = "rejected",
    [PROTO_NO_ANSWER] = "no_answer",
    [PROTO_HUNG_UP] = "hung_up",
    [PROTO_CANCELLED] = "cancelled",
    [PROTO_CLOSED] = "closed",
    [PROTO_EXPIRED] = "expired",
    [PROTO_BAD_MESSAGE] = "bad_message",
    [PROTO_UNKNOWN_ID] = "unknown_id",
    [PROTO_MISSING_FIELD] = "missing_field",
    [PROTO_BAD_FIELD] = "bad_field",
    [PROTO_NO_INCOMING_CALL] = "no_incoming_call",
    [PROTO_WRONG_CALLER] = "wrong_caller",
    [PROTO_NOT_IN_CALL] = "not_in_call",
    [PROTO_LIST_ONCE] = "list_once",
    [PROTO_RATE_LIMITED] = "rate_limited",
    [PROTO_COOLDOWN] = "cooldown",
    [PROTO_BLOCKED] = "blocked",
    [PROTO_MAILBOX_FULL] = "mailbox_full",
    [PROTO_MAILBOX_SHARE] = "mailbox_share",
    [PROTO_ICE_ONCE] = "ice_servers_once",
};

const char *proto_reason_name(proto_reason r)
{
    return (unsigned)r < PROTO_REASONS ? reason_names[r] : NULL;
}

/* The body of a refusal: {response: "rejected", message, reason}, or
 * {message, reason} for an error (reason last: the members before it are
 * as they were before it existed). */
static json_t *refusal(int rejected, proto_reason why, const char *message)
{
    json_t *b = rejected ? json_pack("{ss}", "response", "rejected") : json_object();
    json_object_set_new(b, "message", json_string(message));
    json_object_set_new(b, "reason", json_string(proto_reason_name(why)));
    return b;
}

static int error_reply(proto_ctx *c, proto_reason why, const char *message)
{
    return notice(c, "error", refusal(0, why, message));
}

static int call_rejected(proto_ctx *c, proto_reason why, const char *message, int64_t call_id)
{
    return reply(c, "callResponse", refusal(1, why, message), call_id);
}

static int register_rejected(proto_ctx *c, proto_reason why, const char *message)
{
    return notice(c, "registerResponse", refusal(1, why, message));
}

/* Tells session to (name to_name) that call_id ended, and why. */
static int stop_communication(proto_ctx *c, int64_t to, const char *to_name, proto_reason why,
                              int64_t call_id)
{
    return deliver(c, to, to_name, "stopCommunication",
                   json_pack("{ss}", "reason", proto_reason_name(why)), call_id);
}

const char *proto_name_problem(const char *name)
{
    const uint8_t *s = (const uint8_t *)name;
    size_t n = strlen(name);
    if (n < 1 || n > LC_NAME_MAX) return "a name is 1 to 64 bytes of UTF-8";
    if (u8_check(s, n)) return "a name must be valid UTF-8";
    /* Every character: no control, format (zero-width, bidi), surrogate,
     * private-use or unassigned one (general category C), no line or
     * paragraph separator, no space but U+0020, nothing else a text shows
     * as nothing (Default_Ignorable_Code_Point: fillers, variation
     * selectors, ...). */
    uc_general_category_t bad = uc_general_category_or(
        uc_general_category_or(UC_CATEGORY_C, UC_CATEGORY_Zl), UC_CATEGORY_Zp);
    for (size_t i = 0; i < n;) {
        ucs4_t uc;
        int len = u8_mbtouc(&uc, s + i, n - i);
        if (len <= 0) return "a name must be valid UTF-8";
        if (uc_is_general_category(uc, bad) || uc_is_property_default_ignorable_code_point(uc) ||
            (uc != 0x20 && uc_is_general_category(uc, UC_CATEGORY_Zs)))
            return "a name may not contain control, format, invisible or bidi characters, nor "
                   "spaces other than U+0020";
        i += (size_t)len;
    }
    if (s[0] == ' ' || s[n - 1] == ' ') return "a name may not start or end with a space";
    size_t nlen = 0;
    uint8_t *nfc = u8_normalize(UNINORM_NFC, s, n, NULL, &nlen);
    if (!nfc) return "a name must be valid Unicode";
    int same = nlen == n && memcmp(nfc, s, n) == 0;
    free(nfc);
    if (!same)
        return "a name must be in Unicode normalization form C (NFC); normalize it first, e.g. "
               "with String.prototype.normalize('NFC')";
    return NULL;
}

int proto_name_valid(const char *name)
{
    return proto_name_problem(name) == NULL;
}

/* The live call of the sender: LC_OK with *call set, LC_NOTFOUND, or error. */
static int my_call(proto_ctx *c, store_call *call)
{
    return store_call_live(c->st, c->self.id, call);
}

/* The other party's name in call, seen from the sender. */
static const char *peer_name(const proto_ctx *c, const store_call *call)
{
    return call->caller_sid == c->self.id ? call->callee : call->caller;
}

static int64_t peer_sid(const proto_ctx *c, const store_call *call)
{
    return call->caller_sid == c->self.id ? call->callee_sid : call->caller_sid;
}

/* Accepts the sender's register of name (free, or reclaimed): releases
 * the name's reservations, gives the session a new reclaim key (only its
 * hash is stored) and answers registerResponse accepted with the key. */
static int register_accept(proto_ctx *c, const char *name)
{
    char key[TOKEN_LEN + 1];
    uint8_t hash[32];
    if (token_new(key, hash) != 0) return LC_ERR;
    int rc = store_name_unreserve(c->st, name);
    if (rc == LC_OK) rc = store_session_set_name_key(c->st, c->self.id, name, hash);
    if (rc != LC_OK) return rc;
    snprintf(c->self.name, sizeof c->self.name, "%s", name);
    return notice(c, "registerResponse",
                  json_pack("{ssss}", "response", "accepted", "reclaim", key));
}

/* register {name, reclaim?}: a valid name (proto_name_problem) that no
 * live session holds and that is not reserved -- or reserved for the
 * reclaim key presented (a session that expired within LONGCALL_NAME_GRACE
 * held it with that key). */
static int on_register(proto_ctx *c, json_t *msg)
{
    json_t *jname = json_object_get(msg, "name");
    json_t *jkey = json_object_get(msg, "reclaim");
    if (!jname) return error_reply(c, PROTO_MISSING_FIELD, "register: missing 'name'");
    if (jkey && !json_is_null(jkey) && !json_is_string(jkey))
        return error_reply(c, PROTO_BAD_FIELD, "register: 'reclaim' must be a string");
    const char *name = json_is_string(jname) ? json_string_value(jname) : "";
    char why[200];
    if (!json_is_string(jname) || json_string_length(jname) != strlen(name))
        return register_rejected(c, PROTO_INVALID_NAME, "a name is a string without NUL");
    const char *problem = proto_name_problem(name);
    if (problem) return register_rejected(c, PROTO_INVALID_NAME, problem);
    if (strcmp(name, c->self.name) == 0) return register_accept(c, name);
    store_call call;
    int rc = my_call(c, &call);
    if (rc == LC_OK) return register_rejected(c, PROTO_IN_CALL, "cannot change name during a call");
    if (rc != LC_NOTFOUND) return rc;
    int64_t holder;
    rc = store_session_by_name(c->st, name, &holder);
    if (rc == LC_OK) {
        snprintf(why, sizeof why, "name '%s' is already taken", name);
        return register_rejected(c, PROTO_TAKEN, why);
    }
    if (rc != LC_NOTFOUND) return rc;
    if (c->cfg->name_grace > 0) {
        uint8_t want[32], got[32];
        int64_t ended = 0;
        int64_t grace = (int64_t)c->cfg->name_grace * 1000;
        rc = store_name_reserved(c->st, name, c->now - grace, want, &ended);
        if (rc == LC_OK) {
            const char *key = json_string_value(jkey);
            if (!key || token_hash(key, got) != 0 || CRYPTO_memcmp(want, got, 32) != 0) {
                int64_t left = (ended + grace - c->now + 999) / 1000;
                snprintf(why, sizeof why,
                         "name '%s' is reserved for its previous holder, whose connection "
                         "dropped, for %lld more seconds",
                         name, (long long)(left > 0 ? left : 1));
                return register_rejected(c, PROTO_RESERVED, why);
            }
        } else if (rc != LC_NOTFOUND) {
            return rc;
        }
    }
    return register_accept(c, name);
}

static void add_name(void *arg, const char *name)
{
    json_array_append_new(arg, json_string(name));
}

/* A list refused (a second one in a batch, or over the rate): the error,
 * and a log line through addr_log_event (at most one per client address and
 * kind a minute, never per request). */
static int list_refused(proto_ctx *c, proto_reason why, const char *message)
{
    const char *addr = c->addr ? c->addr : "unknown";
    if (why == PROTO_LIST_ONCE)
        addr_log_event(c->wk, "list-once", addr, "had a list refused: a second list in one batch");
    else
        addr_log_event(c->wk, "LONGCALL_LIST_RATE", addr,
                       "had a list refused: over LONGCALL_LIST_RATE=%d a minute", c->cfg->list_rate);
    return error_reply(c, why, message);
}

/* An optional name-like member of a list message: absent or null (sets
 * *out to NULL), or a string of at most LC_NAME_MAX bytes without NUL.
 * Returns 0, or -1 when it is something else. */
static int list_member(json_t *msg, const char *key, const char **out)
{
    json_t *v = json_object_get(msg, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    if (json_string_length(v) != strlen(s) || strlen(s) > LC_NAME_MAX) return -1;
    *out = s;
    return 0;
}

/* The sender's allowance of one more `kind` at per_minute a minute, burst
 * of them at once (store_rate_allow's GCRA). Sets *allowed, and *wait (ms
 * until one is allowed again) when refused and wait is not NULL. LC_OK or
 * a store failure. */
static int rate_allow(proto_ctx *c, store_rate kind, int per_minute, int burst, int *allowed,
                      int64_t *wait)
{
    int64_t interval = 60000 / per_minute;
    if (interval < 1) interval = 1;
    return store_rate_allow(c->st, kind, c->self.id, c->now, interval, interval * (burst - 1),
                            allowed, wait);
}

/* list {prefix?, after?}: at most LONGCALL_LIST_MAX names, those starting
 * with prefix and sorted after `after`, with more (and next, the `after`
 * of the next page, when more is true). One list per batch and
 * LONGCALL_LIST_RATE a minute per session: the others get an error. */
static int on_list(proto_ctx *c, json_t *msg)
{
    char why[160];
    const char *prefix, *after;
    if (++c->lists > 1)
        return list_refused(c, PROTO_LIST_ONCE, "list: one list per batch; this one is ignored");
    if (list_member(msg, "prefix", &prefix) || list_member(msg, "after", &after))
        return error_reply(c, PROTO_BAD_FIELD,
                           "list: 'prefix' and 'after' must be strings of at most 64 bytes");
    int allowed = 0;
    int rc = rate_allow(c, STORE_RATE_LIST, c->cfg->list_rate, c->cfg->list_rate, &allowed, NULL);
    if (rc != LC_OK) return rc;
    if (!allowed) {
        snprintf(why, sizeof why, "list: at most %d lists a minute; try again in a few seconds",
                 c->cfg->list_rate);
        return list_refused(c, PROTO_RATE_LIMITED, why);
    }
    json_t *list = json_array();
    int more = 0;
    rc = store_names(c->st, prefix, after, c->cfg->list_max, add_name, list, &more);
    if (rc != LC_OK) {
        json_decref(list);
        return rc;
    }
    json_t *body = json_pack("{sosb}", "list", list, "more", more);
    size_t n = json_array_size(list);
    if (more && n) json_object_set(body, "next", json_array_get(list, n - 1));
    return notice(c, "listResponse", body);
}

static int on_ping(proto_ctx *c, json_t *msg)
{
    (void)msg;
    return notice(c, "pong", NULL);
}

/* iceServers {}: answers iceServers {iceServers: [...]} (a notice, like
 * pong: not kept as history) with LONGCALL_ICE_SERVERS' entries and, with a
 * TURN secret, a credential minted now (turn.c). One per batch and
 * LONGCALL_ICE_RATE a minute per session (a page asks before a call at
 * most); the others get an error, logged through addr_log_event. */
static int on_ice_servers(proto_ctx *c, json_t *msg)
{
    (void)msg;
    const char *addr = c->addr ? c->addr : "unknown";
    char why[160];
    if (++c->ice_asks > 1) {
        addr_log_event(c->wk, "ice-once", addr,
                       "had an iceServers refused: a second one in one batch");
        return error_reply(c, PROTO_ICE_ONCE,
                           "iceServers: one per batch; this one is ignored");
    }
    int allowed = 0;
    int rc = rate_allow(c, STORE_RATE_ICE, c->cfg->ice_rate, c->cfg->ice_rate, &allowed, NULL);
    if (rc != LC_OK) return rc;
    if (!allowed) {
        addr_log_event(c->wk, "LONGCALL_ICE_RATE", addr,
                       "had an iceServers refused: over LONGCALL_ICE_RATE=%d a minute",
                       c->cfg->ice_rate);
        snprintf(why, sizeof why,
                 "iceServers: at most %d a minute; use the ones you have, or retry in a minute",
                 c->cfg->ice_rate);
        return error_reply(c, PROTO_RATE_LIMITED, why);
    }
    json_t *list = turn_ice_servers(c->cfg, c->self.id, c->now / 1000);
    if (c->cfg->turn_secret) c->mx.turn++;
    return notice(c, "iceServers", json_pack("{so}", "iceServers", list));
}

/* A call refused by the call limits or a block: the caller gets
 * callResponse rejected with why and the sentence; nothing reaches the
 * callee. Transient (no history, like an error): the refusals an attacker
 * provokes leave no rows once read. Counted for api.c's summarised log. */
static int call_limited(proto_ctx *c, proto_reason why, const char *message, int64_t callee_sid)
{
    c->calls_refused++;
    c->call_refused_why = why;
    c->call_refused_to = callee_sid;
    return notice(c, "callResponse", refusal(1, why, message));
}

void proto_call_refusal_text(const proto_ctx *c, char *out, size_t n)
{
    const lc_config *cfg = c->cfg;
    switch (c->call_refused_why) {
    case PROTO_COOLDOWN:
        snprintf(out, n, "within LONGCALL_CALL_COOLDOWN=%d s of an unanswered call to session %lld",
                 cfg->call_cooldown, (long long)c->call_refused_to);
        break;
    case PROTO_BLOCKED:
        snprintf(out, n, "blocked by session %lld", (long long)c->call_refused_to);
        break;
    default: /* rate_limited: to no callee yet (the session's rate), or to one */
        if (c->call_refused_to)
            snprintf(out, n, "over LONGCALL_CALL_PAIR_RATE=%d calls a minute to session %lld",
                     cfg->call_pair_rate, (long long)c->call_refused_to);
        else
            snprintf(out, n, "over LONGCALL_CALL_RATE=%d calls a minute", cfg->call_rate);
        break;
    }
}

/* Seconds (rounded up, at least 1) in ms milliseconds. */
static long long secs_up(int64_t ms)
{
    long long s = (long long)((ms + 999) / 1000);
    return s < 1 ? 1 : s;
}

/* The limits of issue 12 (3a) on a call of c->self to callee_sid, once the
 * callee is known: a block of the callee's, the cooldown after an
 * unanswered ring, the rate to one callee. LC_OK with *refused = 0 when
 * the call may ring; with *refused = 1 the caller was answered. */
static int call_limits(proto_ctx *c, int64_t callee_sid, const char *callee, int *refused)
{
    char why[200];
    int blocked = 0;
    *refused = 1;
    int rc = store_blocked(c->st, callee_sid, c->self.id, c->self.name, &blocked);
    if (rc != LC_OK) return rc;
    if (blocked) {
        snprintf(why, sizeof why, "user '%.64s' has blocked your calls", callee);
        return call_limited(c, PROTO_BLOCKED, why, callee_sid);
    }
    if (c->cfg->call_cooldown > 0) {
        int64_t cool = (int64_t)c->cfg->call_cooldown * 1000, ended = 0;
        rc = store_call_cooldown(c->st, c->self.id, callee_sid, c->now - cool, &ended);
        if (rc == LC_OK) {
            snprintf(why, sizeof why,
                     "user '%.64s' did not answer a call from you (or from your network) a "
                     "moment ago; you may call again in %lld seconds",
                     callee, secs_up(ended + cool - c->now));
            return call_limited(c, PROTO_COOLDOWN, why, callee_sid);
        }
        if (rc != LC_NOTFOUND) return rc;
    }
    int64_t count = 0, oldest = 0;
    rc = store_call_pair(c->st, c->self.id, callee_sid, c->now - 60000, &count, &oldest);
    if (rc != LC_OK) return rc;
    if (count >= c->cfg->call_pair_rate) {
        snprintf(why, sizeof why,
                 "at most %d calls a minute to the same user; you may call '%.64s' again in %lld "
                 "seconds",
                 c->cfg->call_pair_rate, callee, secs_up(oldest + 60000 - c->now));
        return call_limited(c, PROTO_RATE_LIMITED, why, callee_sid);
    }
    *refused = 0;
    return LC_OK;
}

/* call {to, sdpOffer}: rings the callee unless a rule refuses it; every
 * refusal answers the caller alone (callResponse rejected with a reason).
 * The order: the message's fields, the caller's call rate (every call
 * counts, whatever follows), who the caller is, the callee, the callee's
 * blocks, the cooldown, the rate to this callee, busy. */
static int on_call(proto_ctx *c, json_t *msg)
{
    json_t *to = json_object_get(msg, "to");
    json_t *offer = json_object_get(msg, "sdpOffer");
    char why[200];
    if (!json_is_string(to))
        return error_reply(c, to ? PROTO_BAD_FIELD : PROTO_MISSING_FIELD,
                           "call: 'to' must be a string");
    if (!offer || json_is_null(offer))
        return error_reply(c, PROTO_MISSING_FIELD, "call: missing 'sdpOffer'");
    const char *callee = json_string_value(to);
    /* A quarter of a minute's calls in a burst (5 at the default 20). */
    int64_t wait = 0;
    int burst = c->cfg->call_rate / 4 > 1 ? c->cfg->call_rate / 4 : 1, allowed = 0, refused = 0;
    int rc = rate_allow(c, STORE_RATE_CALL, c->cfg->call_rate, burst, &allowed, &wait);
    if (rc != LC_OK) return rc;
    if (!allowed) {
        snprintf(why, sizeof why, "at most %d calls a minute; you may call again in %lld seconds",
                 c->cfg->call_rate, secs_up(wait));
        return call_limited(c, PROTO_RATE_LIMITED, why, 0);
    }
    if (!c->self.name[0]) return call_rejected(c, PROTO_UNREGISTERED, "register before calling", 0);
    if (strcmp(callee, c->self.name) == 0)
        return call_rejected(c, PROTO_SELF, "you cannot call yourself", 0);
    store_call cur;
    rc = my_call(c, &cur);
    if (rc == LC_OK) return call_rejected(c, PROTO_IN_CALL, "you are already in a call", 0);
    if (rc != LC_NOTFOUND) return rc;
    int64_t callee_sid;
    rc = store_session_by_name(c->st, callee, &callee_sid);
    if (rc == LC_NOTFOUND) {
        snprintf(why, sizeof why, "user '%.64s' is not registered", callee);
        return call_rejected(c, PROTO_UNKNOWN, why, 0);
    }
    if (rc != LC_OK) return rc;
    rc = call_limits(c, callee_sid, callee, &refused);
    if (rc != LC_OK || refused) return rc;
    rc = store_call_live(c->st, callee_sid, &cur);
    if (rc == LC_OK) {
        snprintf(why, sizeof why, "user '%.64s' is busy", callee);
        return call_rejected(c, PROTO_BUSY, why, 0);
    }
    if (rc != LC_NOTFOUND) return rc;
    store_call call = {.caller_sid = c->self.id, .callee_sid = callee_sid};
    snprintf(call.caller, sizeof call.caller, "%s", c->self.name);
    snprintf(call.callee, sizeof call.callee, "%s", callee);
    int64_t call_id;
    rc = store_call_create(c->st, &call, c->now, &call_id);
    if (rc != LC_OK) return rc;
    call.id = call_id;
    note(c, "call_started", c->self.id, &call, NULL);
    c->calls_placed++;
    return deliver(c, callee_sid, call.callee, "incomingCall",
                   json_pack("{sssO}", "from", c->self.name, "offer", offer), call_id);
}

static int on_call_response(proto_ctx *c, json_t *msg)
{
    json_t *janswer = json_object_get(msg, "callResponse");
    const char *answer = json_string_value(janswer);
    json_t *from = json_object_get(msg, "from");
    json_t *sdp = json_object_get(msg, "sdpOffer");
    json_t *jblock = json_object_get(msg, "block");
    char why[160];
    if (!answer || (strcmp(answer, "accept") != 0 && strcmp(answer, "reject") != 0))
        return error_reply(c, janswer ? PROTO_BAD_FIELD : PROTO_MISSING_FIELD,
                           "incomingCallResponse: 'callResponse' must be \"accept\" or \"reject\"");
    if (jblock && !json_is_boolean(jblock))
        return error_reply(c, PROTO_BAD_FIELD,
                           "incomingCallResponse: 'block' must be true or false");
    int block = json_is_true(jblock);
    if (block && strcmp(answer, "reject") != 0)
        return error_reply(c, PROTO_BAD_FIELD,
                           "incomingCallResponse: 'block' goes with \"reject\", not \"accept\"");
    store_call call;
    int rc = my_call(c, &call);
    if (rc == LC_NOTFOUND || (rc == LC_OK && (call.callee_sid != c->self.id || call.answered)))
        return error_reply(c, PROTO_NO_INCOMING_CALL,
                           "incomingCallResponse: there is no incoming call to answer");
    if (rc != LC_OK) return rc;
    if (from && json_is_string(from) && strcmp(json_string_value(from), call.caller) != 0) {
        snprintf(why, sizeof why, "incomingCallResponse: there is no incoming call from '%.64s'",
                 json_string_value(from));
        return error_reply(c, PROTO_WRONG_CALLER, why);
    }
    if (strcmp(answer, "reject") == 0) {
        rc = store_call_end(c->st, call.id, c->now, "rejected");
        if (rc == LC_OK) c->mx.ended[metrics_outcome("rejected")]++;
        if (rc == LC_OK)
            note(c, "call_ended", c->self.id, &call, block ? "rejected (blocked)" : "rejected");
        /* Blocked: that caller's session, and its name, for this session. */
        if (rc == LC_OK && block)
            rc = store_block_add(c->st, c->self.id, call.caller_sid, call.caller, c->now,
                                 c->cfg->max_blocks);
        if (rc != LC_OK) return rc;
        snprintf(why, sizeof why, "user '%s' rejected the call", call.callee);
        return deliver(c, call.caller_sid, call.caller, "callResponse",
                       refusal(1, PROTO_REJECTED, why), call.id);
    }
    if (!sdp || json_is_null(sdp))
        return error_reply(c, PROTO_MISSING_FIELD, "incomingCallResponse: missing 'sdpOffer'");
    rc = store_call_answer(c->st, call.id, c->now);
    if (rc == LC_OK) note(c, "call_answered", c->self.id, &call, NULL);
    if (rc == LC_OK)
        rc = deliver(c, call.caller_sid, call.caller, "callResponse",
                     json_pack("{sssO}", "response", "accepted", "sdpAnswer", sdp), call.id);
    if (rc == LC_OK) rc = reply(c, "startCommunication", NULL, call.id);
    return rc;
}

static int on_ice(proto_ctx *c, json_t *msg)
{
    json_t *cand = json_object_get(msg, "candidate");
    if (!cand) return error_reply(c, PROTO_MISSING_FIELD, "onIceCandidate: missing 'candidate'");
    int rc = c->ice_call_known ? LC_OK : my_call(c, &c->ice_call);
    if (rc == LC_NOTFOUND)
        return error_reply(c, PROTO_NOT_IN_CALL, "onIceCandidate: you are not in a call");
    if (rc != LC_OK) return rc;
    c->ice_call_known = 1;
    const store_call *call = &c->ice_call;
    return deliver(c, peer_sid(c, call), peer_name(c, call), "iceCandidate",
                   json_pack("{sO}", "candidate", cand), call->id);
}

/* Ends the sender's call (if any) with outcome; the peer gets
 * stopCommunication with reason why. */
static int end_call_of(proto_ctx *c, const store_call *call, const char *outcome, proto_reason why)
{
    const char *peer = peer_name(c, call);
    int rc = store_call_end(c->st, call->id, c->now, outcome);
    if (rc == LC_OK) c->mx.ended[metrics_outcome(outcome)]++;
    if (rc == LC_OK) note(c, "call_ended", c->self.id, call, outcome);
    if (rc != LC_OK) return rc;
    return stop_communication(c, peer_sid(c, call), peer, why, call->id);
}

static int on_stop(proto_ctx *c, json_t *msg)
{
    (void)msg;
    store_call call;
    int rc = my_call(c, &call);
    if (rc == LC_NOTFOUND) return LC_OK; /* already over: stop is idempotent */
    if (rc != LC_OK) return rc;
    if (call.answered) return end_call_of(c, &call, "completed", PROTO_HUNG_UP);
    if (call.caller_sid == c->self.id) return end_call_of(c, &call, "cancelled", PROTO_CANCELLED);
    return end_call_of(c, &call, "rejected", PROTO_REJECTED);
}

static int on_answer(proto_ctx *c, json_t *msg)
{
    json_t *sdp = json_object_get(msg, "sdp");
    if (!sdp || json_is_null(sdp))
        return error_reply(c, PROTO_MISSING_FIELD, "answer: missing 'sdp'");
    store_call call;
    int rc = my_call(c, &call);
    if (rc == LC_NOTFOUND)
        return error_reply(c, PROTO_NOT_IN_CALL, "answer: you are not in a call");
    if (rc != LC_OK) return rc;
    const char *peer = peer_name(c, &call);
    return deliver(c, peer_sid(c, &call), peer, "startCommunication",
                   json_pack("{sO}", "sdpAnswer", sdp), call.id);
}

static const struct {
    const char *id;
    int (*fn)(proto_ctx *, json_t *);
} handlers[] = {
    {"register", on_register},
    {"list", on_list},
    {"ping", on_ping},
    {"iceServers", on_ice_servers},
    {"call", on_call},
    {"incomingCallResponse", on_call_response},
    {"onIceCandidate", on_ice},
    {"stop", on_stop},
    {"answer", on_answer},
};

int proto_apply(proto_ctx *c, json_t *msg)
{
    char why[160];
    if (!json_is_object(msg))
        return error_reply(c, PROTO_BAD_MESSAGE, "each message must be a JSON object");
    json_t *jid = json_object_get(msg, "id");
    if (!json_is_string(jid))
        return error_reply(c, PROTO_BAD_MESSAGE, "a message needs an 'id' string");
    const char *id = json_string_value(jid);
    if (strcmp(id, "onIceCandidate") != 0) c->ice_call_known = 0;
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(id, handlers[i].id) == 0) return handlers[i].fn(c, msg);
    snprintf(why, sizeof why, "unknown message id '%.64s'", id);
    return error_reply(c, PROTO_UNKNOWN_ID, why);
}

int proto_end_session(proto_ctx *c, int64_t session_id, const char *reason)
{
    store_session saved = c->self;
    c->ice_call_known = 0;
    int rc = store_session_get(c->st, session_id, &c->self);
    if (rc != LC_OK) goto out;
    if (c->self.ended) goto out;
    store_call call;
    rc = my_call(c, &call);
    if (rc == LC_OK) {
        const char *outcome = call.caller_sid == session_id ? "caller left" : "callee left";
        /* The peer's notification is a server event: no quota. */
        int64_t self_id = c->self.id;
        const char *peer = peer_name(c, &call);
        int64_t to = peer_sid(c, &call);
        c->self.id = 0;
        rc = store_call_end(c->st, call.id, c->now, outcome);
        if (rc == LC_OK) c->mx.ended[metrics_outcome(outcome)]++;
        if (rc == LC_OK) note(c, "call_ended", self_id, &call, outcome);
        proto_reason why = strcmp(reason, "expired") == 0 ? PROTO_EXPIRED : PROTO_CLOSED;
        if (rc == LC_OK) rc = stop_communication(c, to, peer, why, call.id);
        c->self.id = self_id;
        if (rc != LC_OK) goto out;
    } else if (rc != LC_NOTFOUND) {
        goto out;
    }
    rc = store_session_end(c->st, session_id, c->now, reason);
    c->self_written = 1;
    if (rc == LC_OK)
        note(c, strcmp(reason, "expired") == 0 ? "session_expired" : "session_closed", session_id,
             NULL, strcmp(reason, "expired") == 0 ? "expired" : "closed");
    if (rc == LC_OK) {
        proto_wake *w = want_wake(c, session_id); /* its held poll answers 404 */
        w->exact = 0;
        buf_free(&w->msgs);
    }
out:
    c->self = saved;
    return rc;
}

int proto_ring_timeout(proto_ctx *c, int64_t call_id)
{
    store_call call;
    int ended = 0;
    int rc = store_call_get(c->st, call_id, &call, &ended);
    if (rc == LC_NOTFOUND || (rc == LC_OK && (ended || call.answered))) return LC_OK;
    if (rc != LC_OK) return rc;
    store_session saved = c->self;
    memset(&c->self, 0, sizeof c->self); /* server event: no sender, no quota */
    rc = store_call_end(c->st, call_id, c->now, "no answer");
    if (rc == LC_OK) c->mx.ended[metrics_outcome("no answer")]++;
    if (rc == LC_OK) note(c, "call_ended", 0, &call, "no answer");
    if (rc == LC_OK)
        rc = deliver(c, call.caller_sid, call.caller, "callResponse",
                     refusal(1, PROTO_NO_ANSWER, "no answer"), call_id);
    if (rc == LC_OK)
        rc = stop_communication(c, call.callee_sid, call.callee, PROTO_NO_ANSWER, call_id);
    c->self = saved;
    return rc;
}
