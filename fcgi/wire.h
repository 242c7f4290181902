/* wire: every JSON body longcall answers with -- the poll answer and the
 * form of a message item in it, {"ok":true}, {"error": ...}, the session
 * and status answers -- and the fixed sentences said in more than one place.
 * It does not own HTTP headers or status lines (http.c), nor what the
 * messages mean (proto.c); the store hands it rows and knows no JSON. */
#ifndef LC_WIRE_H
#define LC_WIRE_H

#include "store.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>

/* Sentences of the 503, 421, 413 and 404 answers said in more than one place (the
 * web pages and the tests read them: change them here or not at all). */
#define WIRE_DB_BUSY "the database is busy; retry shortly"
#define WIRE_DB_FULL "the server's storage is full; nothing was stored, retry later"
#define WIRE_DB_UNAVAILABLE "the database is unavailable; retry shortly"
#define WIRE_BODY_TOO_LARGE "the request body is over the size limit (LONGCALL_MAX_BODY)"
#define WIRE_TOO_MANY_HELD "too many held polls on this server; retry shortly"
#define WIRE_CANNOT_HOLD "this server cannot hold the poll now; retry shortly"
#define WIRE_UNKNOWN_SESSION "unknown or expired session; start a new one with POST /rtc/session"
#define WIRE_HOST_REFUSED                                                                         \
    "this server does not answer for this host name; see LONGCALL_ALLOWED_HOSTS"
/* The 429s of the per-address limits (README "Security"), each with the
 * seconds of its Retry-After (the session rate's is computed). */
#define WIRE_ADDR_RATE                                                                             \
    "too many new sessions from your address in the last minute "                                 \
    "(LONGCALL_ADDR_SESSIONS_PER_MIN); retry later"
#define WIRE_ADDR_SESSIONS                                                                         \
    "too many live sessions from your address (LONGCALL_ADDR_SESSIONS); close one or retry later"
#define WIRE_ADDR_SESSIONS_RETRY 10
#define WIRE_ADDR_HELD "too many polls held for your address (LONGCALL_ADDR_HELD); retry shortly"
#define WIRE_ADDR_HELD_RETRY 2
#define WIRE_EMPTY_BATCH "an empty batch holds no message; send at least one"
#define WIRE_SESSION_ENDED "the session ended; start a new one with POST /rtc/session"

/* The sentence of a 503 for a store failure rc (LC_BUSY: WIRE_DB_BUSY,
 * LC_FULL: WIRE_DB_FULL, anything else: WIRE_DB_UNAVAILABLE). Static text. */
const char *wire_db_sentence(int rc);

/* A sentence for the clients of a server whose database cannot be opened
 * (problem p, from store_open_why): no path or user name in it, those are
 * for the log. Static text. */
const char *wire_problem_sentence(store_problem p);

/* Appends to list one message item as a poll answer carries it: body (a
 * JSON object as serialized, "{...}", len bytes) with "seq":seq spliced in
 * as its first member -- {"seq":7,"id":"pong"} from {"id":"pong"}, and
 * {"seq":7} from {} -- preceded by a comma unless list is empty. list holds
 * the inside of the "messages" array. The one definition of that form, for
 * stored rows and for messages answered from memory alike. */
void wire_message_add(buf *list, int64_t seq, const char *body, size_t len);

/* Appends the poll answer {"seq":seq,"messages":[LIST]} to out, LIST being
 * list's text as wire_message_add built it (NULL or empty: no messages);
 * with ok (an exchange: a send that also polls), {"ok":true,"seq":...}. */
void wire_poll_answer(buf *out, int ok, int64_t seq, const buf *list);

/* The same from rows as store_fetch returned them: every row, in order. */
void wire_poll_rows(buf *out, int ok, int64_t seq, const store_rows *rows);

/* Appends {"ok":true}. */
void wire_ok(buf *out);

/* Appends {"error":SENTENCE}, the sentence as a JSON string (quotes,
 * backslashes and control characters escaped, UTF-8 kept as it is; a
 * sentence that is not UTF-8 has its bytes above 0x7f sent as '?'). */
void wire_error(buf *out, const char *sentence);

/* Appends {"error":SENTENCE,"reason":REASON}: an error with a name for
 * programs (reason: a proto_reason_name, plain ASCII). */
void wire_error_reason(buf *out, const char *sentence, const char *reason);

/* The answer of POST /rtc/session: {"sid":..,"poll":..,"expires":..,
 * "iceServers":ICE,"iceTransportPolicy":"all"|"relay"}; ice_servers is JSON
 * text (the configured list and the session's TURN credential, turn.c),
 * copied as it is; relay: 1 for "relay". */
void wire_session(buf *out, const char *sid, int poll_s, int expires_s, const char *ice_servers,
                  int relay);

/* The figures of GET /rtc/status. */
typedef struct wire_status {
    const char *version;
    int64_t uptime_s;
    int64_t sessions, registered, calls, held_polls, queued_messages;
    int processes, pid, held_here;
    int64_t dropped_slow; /* answers dropped: their reader took none of it in time */
} wire_status;

/* Appends the status answer {"ok":true,"version":..,...} of s. */
void wire_status_answer(buf *out, const wire_status *s);

/* Appends the status answer of a server that cannot open its state:
 * {"ok":false,"error":SENTENCE}. */
void wire_status_down(buf *out, const char *sentence);

#endif
