/* wire: the JSON bodies of the answers; see wire.h. */

#include "wire.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *wire_db_sentence(int rc)
{
    return rc == LC_BUSY ? WIRE_DB_BUSY : rc == LC_FULL ? WIRE_DB_FULL : WIRE_DB_UNAVAILABLE;
}

const char *wire_problem_sentence(store_problem p)
{
    switch (p) {
    case STORE_FINE:
        return "the database is available";
    case STORE_BUSY:
        return WIRE_DB_BUSY;
    case STORE_FULL:
        return WIRE_DB_FULL;
    case STORE_ACCESS:
        return "the server may not write its database (a file permission problem; its log says "
               "which); retry later";
    case STORE_CORRUPT:
        return "the server's database is damaged (its log says what to do); retry later";
    case STORE_NEWER:
        return "the server's database is from a newer longcall (its log says what to do); retry "
               "later";
    default:
        return "the database is unavailable (the server's log says why); retry later";
    }
}

/* Appends the item of seq and body, without a comma. */
static void put_item(buf *out, int64_t seq, const char *body, size_t len)
{
    /* Bodies are objects the server serialized itself (compact, "{...}"),
     * so seq is spliced in as the first member without parsing the body
     * again: after its '{' comes '}' (an empty object) or a member. */
    buf_printf(out, "{\"seq\":%lld", (long long)seq);
    if (len > 1 && body[1] != '}') buf_append(out, ",", 1);
    if (len > 1)
        buf_append(out, body + 1, len - 1);
    else
        buf_append(out, "}", 1); /* not an object: at least the item is one */
}

void wire_message_add(buf *list, int64_t seq, const char *body, size_t len)
{
    if (list->len) buf_append(list, ",", 1);
    put_item(list, seq, body, len);
}

void wire_poll_answer(buf *out, int ok, int64_t seq, const buf *list)
{
    buf_printf(out, "{%s\"seq\":%lld,\"messages\":[", ok ? "\"ok\":true," : "", (long long)seq);
    if (list && list->len) buf_append(out, list->data, list->len);
    buf_puts(out, "]}");
}

void wire_poll_rows(buf *out, int ok, int64_t seq, const store_rows *rows)
{
    buf_printf(out, "{%s\"seq\":%lld,\"messages\":[", ok ? "\"ok\":true," : "", (long long)seq);
    for (int i = 0; i < rows->n; i++) {
        if (i) buf_append(out, ",", 1);
        put_item(out, rows->row[i].seq, rows->row[i].body, rows->row[i].len);
    }
    buf_puts(out, "]}");
}

void wire_ok(buf *out)
{
    buf_puts(out, "{\"ok\":true}");
}

/* Appends s as a JSON string. A sentence that is not UTF-8 (Jansson
 * refuses it) is sent with its bytes above 0x7f as '?', rather than as "". */
static void sentence(buf *out, const char *s)
{
    json_t *probe = json_string(s);
    if (probe) {
        json_decref(probe);
        buf_json_string(out, s);
        return;
    }
    char *ascii = xstrdup(s);
    for (char *c = ascii; *c; c++)
        if ((unsigned char)*c > 0x7f) *c = '?';
    buf_json_string(out, ascii);
    free(ascii);
}

void wire_error(buf *out, const char *text)
{
    buf_puts(out, "{\"error\":");
    sentence(out, text);
    buf_puts(out, "}");
}

void wire_error_reason(buf *out, const char *text, const char *reason)
{
    buf_puts(out, "{\"error\":");
    sentence(out, text);
    buf_puts(out, ",\"reason\":");
    buf_json_string(out, reason);
    buf_puts(out, "}");
}

void wire_session(buf *out, const char *sid, int poll_s, int expires_s, const char *ice_servers,
                  int relay)
{
    buf_printf(out,
               "{\"sid\":\"%s\",\"poll\":%d,\"expires\":%d,\"iceServers\":%s,"
               "\"iceTransportPolicy\":\"%s\"}",
               sid, poll_s, expires_s, ice_servers, relay ? "relay" : "all");
}

void wire_status_answer(buf *out, const wire_status *s)
{
    buf_printf(out,
               "{\"ok\":true,\"version\":\"%s\",\"uptime\":%lld,\"sessions\":%lld,"
               "\"registered\":%lld,\"calls\":%lld,\"held_polls\":%lld,\"queued_messages\":%lld,"
               "\"processes\":%d,\"pid\":%d,\"held_here\":%d,\"dropped_slow\":%lld}",
               s->version, (long long)s->uptime_s, (long long)s->sessions, (long long)s->registered,
               (long long)s->calls, (long long)s->held_polls, (long long)s->queued_messages,
               s->processes, s->pid, s->held_here, (long long)s->dropped_slow);
}

void wire_status_down(buf *out, const char *text)
{
    buf_puts(out, "{\"ok\":false,\"error\":");
    sentence(out, text);
    buf_puts(out, "}");
}
