/* Unit tests of wire.c: the message item (seq spliced into a body), the
 * poll answer from items and from store rows, the error body's escaping,
 * the ok, session and status answers and the shared sentences -- byte for
 * byte, as clients and the integration tests read them. */
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/wire.c"
#include "unit.h"

#include <string.h>

/* 1 when b holds exactly want. */
static int is(const buf *b, const char *want)
{
    const char *got = b->data ? b->data : "";
    int same = b->len == strlen(want) && strcmp(got, want) == 0;
    if (!same) printf("# got  %s\n# want %s\n", got, want);
    return same;
}

static void test_message_items(void)
{
    static const struct {
        const char *name;
        const char *before; /* the list before (items already in it) */
        int64_t seq;
        const char *body;
        size_t len; /* 0: strlen(body) */
        const char *want;
    } cases[] = {
        {"item: the empty object", "", 1, "{}", 0, "{\"seq\":1}"},
        {"item: seq first, the body's members after", "", 7, "{\"id\":\"pong\"}", 0,
         "{\"seq\":7,\"id\":\"pong\"}"},
        {"item: nested objects and arrays are copied as they are", "", 42,
         "{\"id\":\"incomingCall\",\"from\":\"al\",\"offer\":{\"sdp\":\"o\",\"x\":[1,{},{\"y\":"
         "null}]}}",
         0,
         "{\"seq\":42,\"id\":\"incomingCall\",\"from\":\"al\",\"offer\":{\"sdp\":\"o\",\"x\":[1,{},"
         "{\"y\":null}]}}"},
        {"item: braces inside strings are text", "", 3, "{\"id\":\"error\",\"message\":\"} {\"}", 0,
         "{\"seq\":3,\"id\":\"error\",\"message\":\"} {\"}"},
        {"item: an object whose first member is an empty object", "", 4, "{\"a\":{}}", 0,
         "{\"seq\":4,\"a\":{}}"},
        {"item: the largest seq", "", INT64_MAX, "{\"id\":\"pong\"}", 0,
         "{\"seq\":9223372036854775807,\"id\":\"pong\"}"},
        {"item: len bytes of the body, not up to its NUL", "", 5, "{\"id\":\"a\"}trailing", 10,
         "{\"seq\":5,\"id\":\"a\"}"},
        {"item: after another item, a comma first", "{\"seq\":1}", 2, "{\"id\":\"pong\"}", 0,
         "{\"seq\":1},{\"seq\":2,\"id\":\"pong\"}"},
        {"item: not an object (never stored): still an object", "", 6, "", 0, "{\"seq\":6}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf list = {0};
        buf_puts(&list, cases[i].before);
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
        wire_message_add(&list, cases[i].seq, cases[i].body, len);
        CHECK(cases[i].name, is(&list, cases[i].want));
        /* Each item is a JSON object whose first member is "seq". */
        const char *item = list.data + strlen(cases[i].before) + (cases[i].before[0] ? 1 : 0);
        json_t *j = json_loads(item, 0, NULL);
        char name[160];
        snprintf(name, sizeof name, "%s: parses as an object with that seq", cases[i].name);
        CHECK(name,
              json_is_object(j) && json_integer_value(json_object_get(j, "seq")) == cases[i].seq);
        json_decref(j);
        buf_free(&list);
    }
}

static void test_poll_answers(void)
{
    static const char *const bodies[] = {"{\"id\":\"pong\"}", "{}",
                                         "{\"id\":\"listResponse\",\"list\":[\"a\",\"b\"]}"};
    static const struct {
        const char *name;
        int n;       /* rows / items: bodies[0..n-1], seqs 11.. */
        int64_t seq; /* the answer's seq */
        const char *want;
    } cases[] = {
        {"poll answer: no messages", 0, 10, "{\"seq\":10,\"messages\":[]}"},
        {"poll answer: one message", 1, 11,
         "{\"seq\":11,\"messages\":[{\"seq\":11,\"id\":\"pong\"}]}"},
        {"poll answer: three messages", 3, 13,
         "{\"seq\":13,\"messages\":[{\"seq\":11,\"id\":\"pong\"},{\"seq\":12},{\"seq\":13,\"id\":"
         "\"listResponse\",\"list\":[\"a\",\"b\"]}]}"},
    };
    char name[160];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* From items built in memory (proto's wake records)... */
        buf list = {0}, out = {0};
        for (int i = 0; i < cases[c].n; i++)
            wire_message_add(&list, 11 + i, bodies[i], strlen(bodies[i]));
        wire_poll_answer(&out, 0, cases[c].seq, &list);
        snprintf(name, sizeof name, "%s (items)", cases[c].name);
        CHECK(name, is(&out, cases[c].want));
        /* ... and from rows as store_fetch returns them: the same bytes. */
        store_row row[3];
        store_rows rows = {.row = row, .n = cases[c].n, .cap = 3};
        for (int i = 0; i < cases[c].n; i++)
            row[i] = (store_row){.seq = 11 + i, .body = bodies[i], .len = strlen(bodies[i])};
        buf out2 = {0};
        wire_poll_rows(&out2, 0, cases[c].seq, &rows);
        snprintf(name, sizeof name, "%s (rows)", cases[c].name);
        CHECK(name, is(&out2, cases[c].want));
        buf_free(&list);
        buf_free(&out);
        buf_free(&out2);
    }
    buf out = {0};
    wire_poll_answer(&out, 0, 0, NULL);
    CHECK("poll answer: a NULL list is no messages", is(&out, "{\"seq\":0,\"messages\":[]}"));
    buf_free(&out);
    wire_poll_answer(&out, 1, 3, NULL);
    CHECK("exchange answer: ok, then the poll answer's members",
          is(&out, "{\"ok\":true,\"seq\":3,\"messages\":[]}"));
    buf_free(&out);
}

static void test_errors(void)
{
    static const struct {
        const char *name, *sentence, *want;
    } cases[] = {
        {"error: a plain sentence", "unknown endpoint", "{\"error\":\"unknown endpoint\"}"},
        {"error: the empty sentence", "", "{\"error\":\"\"}"},
        {"error: quotes escaped", "say \"hi\"", "{\"error\":\"say \\\"hi\\\"\"}"},
        {"error: backslash escaped", "a\\b", "{\"error\":\"a\\\\b\"}"},
        {"error: control characters escaped",
         "a\x01"
         "b\nc\td\x1f",
         "{\"error\":\"a\\u0001b\\nc\\td\\u001F\"}"},
        {"error: UTF-8 kept as it is", "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80",
         "{\"error\":\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80\"}"},
        {"error: bytes that are not UTF-8 become '?'", "bad \xff byte \xc3",
         "{\"error\":\"bad ? byte ?\"}"},
        {"error: a sentence constant", WIRE_BODY_TOO_LARGE,
         "{\"error\":\"the request body is over the size limit (LONGCALL_MAX_BODY)\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf out = {0};
        wire_error(&out, cases[i].sentence);
        CHECK(cases[i].name, is(&out, cases[i].want));
        buf_free(&out);
    }
    buf out = {0};
    wire_status_down(&out, "say \"hi\"");
    CHECK("status down: ok false and the sentence escaped",
          is(&out, "{\"ok\":false,\"error\":\"say \\\"hi\\\"\"}"));
    buf_free(&out);
}

static void test_answers(void)
{
    buf out = {0};
    wire_ok(&out);
    CHECK("ok: {\"ok\":true}", is(&out, "{\"ok\":true}"));
    out.len = 0;
    wire_session(&out, "abc_DEF-123", 25, 60, "[{\"urls\":\"stun:stun.example.org\"}]", 0);
    CHECK("session: sid, poll, expires, the ICE servers as configured, policy all",
          is(&out, "{\"sid\":\"abc_DEF-123\",\"poll\":25,\"expires\":60,\"iceServers\":"
                   "[{\"urls\":\"stun:stun.example.org\"}],\"iceTransportPolicy\":\"all\"}"));
    out.len = 0;
    wire_session(&out, "x", 0, 1, "[]", 1);
    CHECK("session: no ICE servers, policy relay",
          is(&out, "{\"sid\":\"x\",\"poll\":0,\"expires\":1,"
                   "\"iceServers\":[],\"iceTransportPolicy\":\"relay\"}"));
    out.len = 0;
    wire_status s = {.version = "0.1.0",
                     .uptime_s = 3600,
                     .sessions = 5,
                     .registered = 4,
                     .calls = 2,
                     .held_polls = 3,
                     .queued_messages = 1,
                     .processes = 2,
                     .pid = 1234,
                     .held_here = 1,
                     .dropped_slow = 7};
    wire_status_answer(&out, &s);
    CHECK("status: every figure under its name, in order",
          is(&out, "{\"ok\":true,\"version\":\"0.1.0\",\"uptime\":3600,\"sessions\":5,"
                   "\"registered\":4,\"calls\":2,\"held_polls\":3,\"queued_messages\":1,"
                   "\"processes\":2,\"pid\":1234,\"held_here\":1,\"dropped_slow\":7}"));
    buf_free(&out);
}

static void test_sentences(void)
{
    CHECK("sentence: busy", strcmp(wire_db_sentence(LC_BUSY), WIRE_DB_BUSY) == 0);
    CHECK("sentence: full", strcmp(wire_db_sentence(LC_FULL), WIRE_DB_FULL) == 0);
    CHECK("sentence: any other failure is unavailable",
          strcmp(wire_db_sentence(LC_ERR), WIRE_DB_UNAVAILABLE) == 0);
    CHECK("sentence: a busy or full store says the same when it cannot open",
          strcmp(wire_problem_sentence(STORE_BUSY), WIRE_DB_BUSY) == 0 &&
              strcmp(wire_problem_sentence(STORE_FULL), WIRE_DB_FULL) == 0);
    int fine = 1;
    for (int p = STORE_FINE; p <= STORE_OTHER; p++) {
        const char *t = wire_problem_sentence((store_problem)p);
        if (!t || !*t || strchr(t, '/')) fine = 0;
    }
    CHECK("sentence: every open problem has one, without a path", fine);
    /* The sentences clients and tests read, pinned. */
    CHECK("sentence: the texts",
          strcmp(WIRE_DB_BUSY, "the database is busy; retry shortly") == 0 &&
              strcmp(WIRE_DB_FULL, "the server's storage is full; nothing "
                                   "was stored, retry later") == 0 &&
              strcmp(WIRE_DB_UNAVAILABLE, "the database is unavailable; retry shortly") == 0 &&
              strcmp(WIRE_TOO_MANY_HELD, "too many held polls on this "
                                         "server; retry shortly") == 0);
}

int main(void)
{
    lc_json_init();
    test_message_items();
    test_poll_answers();
    test_errors();
    test_answers();
    test_sentences();
    return unit_done();
}
