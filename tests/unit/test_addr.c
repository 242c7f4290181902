/* Unit tests of addr.c: addresses as REMOTE_ADDR and the forwarding
 * headers give them, trusted networks, and the walk from the right that
 * finds the client behind trusted proxies. Data-driven: one row a case. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

#include <unistd.h>

/* addr_parse + addr_key: the text, and the key expected ("" = refused). */
static const struct {
    const char *text, *key;
} parses[] = {
    {"192.0.2.7", "192.0.2.7"},
    {" 192.0.2.7 ", "192.0.2.7"},
    {"192.0.2.7:4711", "192.0.2.7"},
    {"\"192.0.2.7:4711\"", "192.0.2.7"},
    {"2001:db8:cafe:1::17", "2001:db8:cafe:1::/64"},
    {"2001:db8:cafe:1:aaaa:bbbb:cccc:dddd", "2001:db8:cafe:1::/64"},
    {"[2001:db8:cafe:1::17]", "2001:db8:cafe:1::/64"},
    {"\"[2001:db8:cafe:1::17]:4711\"", "2001:db8:cafe:1::/64"},
    {"::ffff:192.0.2.9", "192.0.2.9"},
    {"::1", "::/64"},
    {"unknown", ""},
    {"_hidden", ""},
    {"", ""},
    {"192.0.2", ""},
    {"192.0.2.7:", ""},
    {"192.0.2.7:abc", ""},
    {"[2001:db8::1", ""},
    {"[2001:db8::1]x", ""},
    {"2001:db8::1%eth0", ""},
    {"256.1.1.1", ""},
    {"1.2.3.4.5", ""},
};

/* addr_parse_nets: the list, whether it is accepted, how many networks. */
static const struct {
    const char *list;
    int ok, n;
} nets[] = {
    {"", 1, 0},
    {"  ", 1, 0},
    {"10.0.0.0/8", 1, 1},
    {"10.0.0.0/8, 192.0.2.1 ::1 2001:db8::/32", 1, 4},
    {"127.0.0.1/32,::ffff:10.0.0.0/104", 1, 2},
    {"10.0.0.0/33", 0, 0},
    {"2001:db8::/129", 0, 0},
    {"10.0.0.0/", 0, 0},
    {"10.0.0.0/x", 0, 0},
    {"10.0.0.0/-1", 0, 0},
    {"example.org", 0, 0},
    {"10.0.0.1 nonsense", 0, 0},
};

/* addr_client with trusted = TRUSTED: REMOTE_ADDR, the header's value
 * (NULL: absent), which header, and the client key expected. */
#define TRUSTED "127.0.0.1 10.0.0.0/8 2001:db8:ffff::/48"
static const struct {
    const char *name, *remote, *hdr;
    addr_header which;
    const char *key;
} walks[] = {
    {"untrusted peer: its own address, the header ignored", "198.51.100.5", "203.0.113.9",
     ADDR_HDR_XFF, "198.51.100.5"},
    {"trusted peer, no header: the peer", "10.1.2.3", NULL, ADDR_HDR_XFF, "10.1.2.3"},
    {"trusted peer, one entry: that entry", "127.0.0.1", "203.0.113.9", ADDR_HDR_XFF,
     "203.0.113.9"},
    {"spoofed left entries are not believed", "127.0.0.1", "1.1.1.1, 2.2.2.2, 203.0.113.9",
     ADDR_HDR_XFF, "203.0.113.9"},
    {"trusted hops are skipped from the right", "127.0.0.1",
     "1.1.1.1, 203.0.113.9, 10.0.0.7, 10.9.9.9", ADDR_HDR_XFF, "203.0.113.9"},
    {"all hops trusted: the leftmost", "127.0.0.1", "10.0.0.1, 10.0.0.2", ADDR_HDR_XFF,
     "10.0.0.1"},
    {"garbage written by a trusted hop: that hop", "127.0.0.1", "203.0.113.9, unknown, 10.0.0.7",
     ADDR_HDR_XFF, "10.0.0.7"},
    {"garbage at the right: the peer", "127.0.0.1", "203.0.113.9, garbage", ADDR_HDR_XFF,
     "127.0.0.1"},
    {"empty elements skipped", "127.0.0.1", "203.0.113.9, , ", ADDR_HDR_XFF, "203.0.113.9"},
    {"entries with ports", "127.0.0.1", "203.0.113.9:5555, 10.0.0.7:80", ADDR_HDR_XFF,
     "203.0.113.9"},
    {"IPv6 client keyed by its /64", "127.0.0.1", "2001:db8:1:2:3:4:5:6", ADDR_HDR_XFF,
     "2001:db8:1:2::/64"},
    {"trusted IPv6 proxy", "2001:db8:ffff:1::1", "[2001:db8:aaaa:1::9]:443, 2001:db8:ffff:2::2",
     ADDR_HDR_XFF, "2001:db8:aaaa:1::/64"},
    {"IPv4-mapped peer", "::ffff:127.0.0.1", "203.0.113.9", ADDR_HDR_XFF, "203.0.113.9"},
    {"Forwarded: for= of the last element", "127.0.0.1",
     "for=1.1.1.1;proto=http, for=203.0.113.9;by=10.0.0.1", ADDR_HDR_FORWARDED, "203.0.113.9"},
    {"Forwarded: quoted IPv6 with port, case-insensitive key", "127.0.0.1",
     "For=\"[2001:db8:cafe::17]:4711\"", ADDR_HDR_FORWARDED, "2001:db8:cafe::/64"},
    {"Forwarded: trusted hops skipped", "127.0.0.1",
     "for=203.0.113.9, for=10.0.0.5;proto=https", ADDR_HDR_FORWARDED, "203.0.113.9"},
    {"Forwarded: an element without for= ends the walk", "127.0.0.1", "for=203.0.113.9, proto=https",
     ADDR_HDR_FORWARDED, "127.0.0.1"},
    {"Forwarded: obfuscated for= ends the walk", "127.0.0.1", "for=_hidden", ADDR_HDR_FORWARDED,
     "127.0.0.1"},
    {"Forwarded: a quoted comma is not a separator", "127.0.0.1", "for=\"a,b\", for=203.0.113.9",
     ADDR_HDR_FORWARDED, "203.0.113.9"},
    {"no REMOTE_ADDR: unknown", NULL, "203.0.113.9", ADDR_HDR_XFF, "unknown"},
    {"garbage REMOTE_ADDR: unknown", "x", NULL, ADDR_HDR_XFF, "unknown"},
};

/* The held polls per address and the log memo in the wake file. */
static void test_wake_counts(void)
{
    char dir[] = "/tmp/longcall-addr-XXXXXX", path[128];
    wake *w = NULL;
    long before = -1;
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/t.wake", dir);
    CHECK("wake: opens and claims a row", wake_open(path, &w) == 0 && wake_proc_claim(w) == 0);
    uint32_t a = wake_addr_bucket("192.0.2.1");
    int ok = 1;
    for (int i = 0; i < 3; i++)
        ok &= wake_addr_hold(w, a, 3) == 0;
    CHECK("wake: 3 held polls of an address within a limit of 3", ok);
    CHECK("wake: the 4th is refused", wake_addr_hold(w, a, 3) == -1);
    uint32_t b = wake_addr_bucket("192.0.2.2");
    CHECK("wake: another address (another bucket) is not", b == a || wake_addr_hold(w, b, 3) == 0);
    wake_addr_release(w, a);
    CHECK("wake: after a release one more is held", wake_addr_hold(w, a, 3) == 0);
    CHECK("wake: bucket 0 is not counted", wake_addr_hold(w, 0, 1) == 1);
    CHECK("wake: the first refusal of a minute is logged", wake_log_due(w, "192.0.2.1", &before) == 1);
    int later = 0;
    for (int i = 0; i < 100; i++)
        later += wake_log_due(w, "192.0.2.1", &before);
    CHECK("wake: the next 100 in the same minute are not (or one, at a minute's turn)", later <= 1);
    /* One memo per (kind, key): another kind of the same client gets its
     * own line, and its repeats are not logged either. */
    int k1 = wake_log_due_kind(w, "LONGCALL_LIST_RATE", "192.0.2.5", &before);
    int k2 = wake_log_due_kind(w, "LONGCALL_WRITE_TIMEOUT", "192.0.2.5", &before);
    CHECK("wake: two kinds of one client each get their first line", k1 == 1 && k2 == 1);
    later = 0;
    for (int i = 0; i < 100; i++)
        later += wake_log_due_kind(w, "LONGCALL_LIST_RATE", "192.0.2.5", &before);
    CHECK("wake: a kind's next 100 in the same minute are not (or one)", later <= 1);
    /* n events at once (a batch's refused calls): one line, n - 1 more. */
    before = -1;
    int n1 = wake_log_due_kind_n(w, "calls", "192.0.2.9", 5, &before);
    CHECK("wake: 5 events at once are one line counting 4 more", n1 == 1 && before == 4);
    wake_close(w);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    char key[ADDR_KEY_MAX], name[200], why[160];
    for (size_t i = 0; i < sizeof parses / sizeof parses[0]; i++) {
        addr_net a;
        int rc = addr_parse(parses[i].text, strlen(parses[i].text), &a);
        if (rc == 0) addr_key(&a, key);
        snprintf(name, sizeof name, "parse \"%s\" -> %s", parses[i].text,
                 *parses[i].key ? parses[i].key : "refused");
        CHECK(name, *parses[i].key ? rc == 0 && strcmp(key, parses[i].key) == 0 : rc == -1);
    }
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        addr_net *list;
        int n;
        int rc = addr_parse_nets(nets[i].list, &list, &n, why, sizeof why);
        snprintf(name, sizeof name, "networks \"%s\" %s", nets[i].list,
                 nets[i].ok ? "accepted" : "refused with a reason");
        CHECK(name, nets[i].ok ? rc == 0 && n == nets[i].n : rc == -1 && strstr(why, "not an"));
        free(list);
    }
    addr_net *trusted;
    int ntrusted;
    CHECK("trusted list parses", addr_parse_nets(TRUSTED, &trusted, &ntrusted, why, sizeof why) == 0);
    addr_net a;
    addr_parse("10.255.0.1", 10, &a);
    CHECK("in: inside a /8", addr_in(&a, trusted, ntrusted));
    addr_parse("11.0.0.1", 8, &a);
    CHECK("in: outside it", !addr_in(&a, trusted, ntrusted));
    addr_parse("2001:db8:ffff:ffff::1", 21, &a);
    CHECK("in: inside an IPv6 /48", addr_in(&a, trusted, ntrusted));
    addr_parse("2001:db8:fffe::1", 16, &a);
    CHECK("in: outside it", !addr_in(&a, trusted, ntrusted));
    for (size_t i = 0; i < sizeof walks / sizeof walks[0]; i++) {
        addr_client(walks[i].remote, walks[i].hdr, walks[i].which, trusted, ntrusted, key);
        snprintf(name, sizeof name, "client: %s (%s)", walks[i].name, key);
        CHECK(name, strcmp(key, walks[i].key) == 0);
    }
    addr_client("127.0.0.1", "203.0.113.9", ADDR_HDR_XFF, NULL, 0, key);
    CHECK("client: no trusted proxies: REMOTE_ADDR, whatever the header says",
          strcmp(key, "127.0.0.1") == 0);
    /* A header of 200 trusted hops: only the 64 rightmost are walked. */
    char *many = xmalloc(200 * 12 + 16);
    many[0] = '\0';
    strcat(many, "203.0.113.9");
    for (int i = 0; i < 200; i++)
        strcat(many, ", 10.0.0.1");
    addr_client("127.0.0.1", many, ADDR_HDR_XFF, trusted, ntrusted, key);
    CHECK("client: a long list of trusted hops stops after 64 (a trusted hop)",
          strcmp(key, "10.0.0.1") == 0);
    free(many);
    free(trusted);
    test_wake_counts();
    return unit_done();
}
