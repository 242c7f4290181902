/* addr: the client address a per-address limit counts against -- REMOTE_ADDR,
 * or behind proxies the operator trusts (LONGCALL_TRUSTED_PROXIES) the
 * nearest untrusted address of X-Forwarded-For or Forwarded -- and the
 * summarised log of refusals (one line per address a minute, memo in the
 * wake file). It parses text only: no I/O, no limits' counting (store.c counts sessions, wake.c
 * held polls), no knowledge of HTTP beyond the headers' text. */
#ifndef LC_ADDR_H
#define LC_ADDR_H

#include <stddef.h>
#include <stdint.h>

struct wake; /* wake.h */

/* An address's key as text: an IPv4 address ("192.0.2.7") or an IPv6 /64
 * ("2001:db8:1:2::/64"), with room for a NUL. */
#define ADDR_KEY_MAX 64

/* One network: family 4 or 6, the address's bytes (4 or 16 used), prefix
 * length in bits. */
typedef struct addr_net {
    int family;
    uint8_t a[16];
    int bits;
} addr_net;

/* Which header a trusted proxy writes the client's address into. */
typedef enum { ADDR_HDR_XFF = 0, ADDR_HDR_FORWARDED } addr_header;

/* Parses a list of networks separated by spaces or commas ("10.0.0.0/8
 * 192.0.2.1 ::1 2001:db8::/32"; no prefix: one address). Returns 0 with
 * *out (malloc'ed, the caller frees) and *n set (NULL and 0 for an empty
 * list), or -1 with a sentence naming the bad item in why (size whyn). */
int addr_parse_nets(const char *list, addr_net **out, int *n, char *why, size_t whyn);

/* Parses one address as a header or REMOTE_ADDR gives it: "192.0.2.7",
 * "192.0.2.7:4711", "2001:db8::1", "[2001:db8::1]:4711", optionally in
 * double quotes (Forwarded); an IPv4-mapped IPv6 address is IPv4. Returns
 * 0 and fills *out (bits 32 or 128), or -1 (not an address: "unknown",
 * an obfuscated "_node", garbage). */
int addr_parse(const char *text, size_t len, addr_net *out);

/* 1 when a lies in one of the n networks of nets, else 0. */
int addr_in(const addr_net *a, const addr_net *nets, int n);

/* The key of address a (see ADDR_KEY_MAX): IPv6 keyed by its /64, since
 * one household or one host gets a whole /64. */
void addr_key(const addr_net *a, char out[ADDR_KEY_MAX]);

/* The client address of a request: remote (REMOTE_ADDR; NULL or not an
 * address: the key is "unknown"), unless it lies in trusted (ntrusted
 * networks, none: never), then the header's list (hdr: the value of
 * X-Forwarded-For or Forwarded, as chosen by which; NULL: absent) walked
 * from the right, each trusted entry skipped: the first untrusted one is
 * the client. An entry that is not an address ends the walk at the last
 * address seen (the proxy that wrote it knows no better), as does a list
 * of trusted entries only (its leftmost), or no list. At most 64 entries
 * are walked. Writes the key into out. */
void addr_client(const char *remote, const char *hdr, addr_header which, const addr_net *trusted,
                 int ntrusted, char out[ADDR_KEY_MAX]);

/* The one way to log an event a client can repeat at will (a refusal, a
 * dropped connection): at most one line per (kind, client key) a minute
 * over all processes, CGI included (wake_log_due_kind, memo in the wake
 * file w), so that attackers cannot fill the log. kind: a fixed word
 * naming the event (a setting's name, e.g. "LONGCALL_LIST_RATE"); fmt and
 * its arguments: what happened, a sentence that goes after the client,
 * never a session token nor unfiltered client text. The line is the event
 * client_gone (kind LONGCALL_WRITE_TIMEOUT) or limit_hit, with client=KEY
 * limit=KIND count=N (the events since the previous line, this one
 * included) and the sentence as msg, at warn level. With w NULL (no wake
 * file: a CGI request refused before opening it, a process whose state is
 * not open yet) each event is a debug line. Thread-safe. */
void addr_log_event(struct wake *w, const char *kind, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* addr_log_event of n such events at once (a batch's refused calls): one
 * memo update, the line (if due) counting the other n - 1 as "more". */
void addr_log_event_n(struct wake *w, const char *kind, const char *key, int n, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));

/* addr_log_event of a request of client key refused with 429 by limit
 * what (a setting's name, also the kind) of value limit: "client KEY is
 * over WHAT=LIMIT: refused with 429 (...)". */
void addr_log_refusal(struct wake *w, const char *key, const char *what, int limit);

#endif
