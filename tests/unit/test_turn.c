/* Unit tests of turn.c (TURN REST credentials) and of the TURN settings in
 * config.c: the credential against a vector computed independently with
 * Python's hmac, the username's format and expiry arithmetic, the opaque id
 * (stable per session, different between sessions), the iceServers list,
 * and the settings refused at start -- a secret file missing, empty or
 * unreadable, both secrets, URIs without a secret and the reverse, bad
 * URIs, TTL and policy -- with the secret never in the log. */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SECRET "longcall-test-secret"

static char tmpdir[] = "/tmp/longcall-turn-XXXXXX";

static const char *const turn_vars[] = {
    "LONGCALL_TURN_SECRET_FILE", "LONGCALL_TURN_SECRET", "LONGCALL_TURN_URIS",
    "LONGCALL_TURN_TTL",         "LONGCALL_ICE_RATE",    "LONGCALL_ICE_TRANSPORT_POLICY",
    "LONGCALL_ICE_SERVERS",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof turn_vars / sizeof turn_vars[0]; i++)
        unsetenv(turn_vars[i]);
}

/* config_load with stderr caught in log (n bytes, NUL-terminated): its
 * result; *cfg is freed unless keep. */
static int load_logged(lc_config *cfg, char *log, size_t n, int keep)
{
    char path[64];
    snprintf(path, sizeof path, "%s/log", tmpdir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    int rc = config_load(cfg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t got = read(fd, log, n - 1);
    log[got > 0 ? got : 0] = '\0';
    close(fd);
    if (!keep) config_free(cfg);
    return rc;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_vectors(void)
{
    char cred[TURN_CRED_LEN + 1], id[TURN_ID_LEN + 1], id2[TURN_ID_LEN + 1];
    /* python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
     *   b'longcall-test-secret', b'1700000000:abcdefghijklmnop',
     *   hashlib.sha1).digest()).decode())" */
    turn_credential(SECRET, strlen(SECRET), "1700000000:abcdefghijklmnop", cred);
    CHECK("credential: base64(HMAC-SHA1(secret, username)) as Python's hmac computes it",
          strcmp(cred, "2CO/R2DNAGnYnP7fR8f7L6JtlVw=") == 0);
    /* python3 -c "import hmac,hashlib,base64; k=hmac.new(b'longcall-test-secret',
     *   b'longcall turn session id', hashlib.sha256).digest();
     *   print(base64.urlsafe_b64encode(hmac.new(k, b'session:42',
     *   hashlib.sha256).digest()[:12]).decode())" */
    turn_opaque_id(SECRET, strlen(SECRET), 42, id);
    CHECK("opaque id: base64url of 12 bytes of HMAC-SHA256 under the derived key",
          strcmp(id, "3LlQzJAuendcL3MU") == 0);
    turn_opaque_id(SECRET, strlen(SECRET), 42, id2);
    CHECK("opaque id: stable for a session", strcmp(id, id2) == 0);
    turn_opaque_id(SECRET, strlen(SECRET), 43, id2);
    CHECK("opaque id: another session has another", strcmp(id, id2) != 0);
    turn_opaque_id("other", 5, 42, id2);
    CHECK("opaque id: another secret gives another", strcmp(id, id2) != 0);
    CHECK("opaque id: 16 characters of base64url",
          strlen(id) == TURN_ID_LEN &&
              strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789-_") == TURN_ID_LEN);

    char user[TURN_USER_MAX];
    turn_username(SECRET, strlen(SECRET), 42, 1700000000, 21600, user);
    CHECK("username: <now + ttl>:<opaque id>", strcmp(user, "1700021600:3LlQzJAuendcL3MU") == 0);
    turn_username(SECRET, strlen(SECRET), 42, 1700000000, 60, user);
    CHECK("username: the expiry follows the TTL", strncmp(user, "1700000060:", 11) == 0);
    turn_username(SECRET, strlen(SECRET), INT64_MAX, 4102444800LL, 604800, user);
    CHECK("username: the largest row id and a 2100 clock fit",
          strlen(user) == 10 + 1 + TURN_ID_LEN && strncmp(user, "4103049600:", 11) == 0);
}

static void test_ice_servers(void)
{
    lc_config cfg = {.ice_servers = "[{\"urls\":\"stun:s.example\"}]"};
    char *t = turn_ice_servers_text(&cfg, 7, 1700000000);
    CHECK("iceServers without a secret: the configured list as it is",
          strcmp(t, "[{\"urls\": \"stun:s.example\"}]") == 0 ||
              strcmp(t, "[{\"urls\":\"stun:s.example\"}]") == 0);
    free(t);
    cfg.turn_secret = SECRET;
    cfg.turn_secret_len = strlen(SECRET);
    cfg.turn_uris = "[\"turn:t.example:3478\"]";
    cfg.turn_ttl = 600;
    json_t *list = turn_ice_servers(&cfg, 42, 1700000000);
    json_t *e = json_array_get(list, 1);
    const char *u = json_string_value(json_object_get(e, "username"));
    const char *c = json_string_value(json_object_get(e, "credential"));
    char want[TURN_CRED_LEN + 1];
    if (u) turn_credential(SECRET, strlen(SECRET), u, want);
    CHECK("iceServers with a secret: the configured entry, then the TURN entry",
          json_array_size(list) == 2 && u && c &&
              strcmp(json_string_value(json_array_get(json_object_get(e, "urls"), 0)),
                     "turn:t.example:3478") == 0 &&
              strcmp(u, "1700000600:3LlQzJAuendcL3MU") == 0 && strcmp(c, want) == 0 &&
              json_object_size(e) == 3);
    json_decref(list);
}

static void test_config_ok(void)
{
    lc_config cfg;
    char log[4096], path[128];
    clear_env();
    CHECK("config: no TURN settings load", load_logged(&cfg, log, sizeof log, 1) == 0);
    CHECK("config: defaults: no secret, no URIs, TTL 21600, rate 10, policy all",
          !cfg.turn_secret && !cfg.turn_uris && cfg.turn_ttl == 21600 && cfg.ice_rate == 10 &&
              cfg.ice_relay == 0);
    config_free(&cfg);

    snprintf(path, sizeof path, "%s/secret", tmpdir);
    write_file(path, SECRET "\n");
    setenv("LONGCALL_TURN_SECRET_FILE", path, 1);
    setenv("LONGCALL_TURN_URIS",
           "turn:turn.example.org:3478?transport=udp  turn:turn.example.org:443?transport=tcp "
           "turns:turn.example.org:443?transport=tcp turn:[::1]:3478 turn:127.0.0.1",
           1);
    setenv("LONGCALL_TURN_TTL", "3600", 1);
    setenv("LONGCALL_ICE_TRANSPORT_POLICY", "relay", 1);
    CHECK("config: a secret file and five URIs load", load_logged(&cfg, log, sizeof log, 1) == 0);
    CHECK("config: the file's secret without its newline",
          cfg.turn_secret && cfg.turn_secret_len == strlen(SECRET) &&
              strcmp(cfg.turn_secret, SECRET) == 0);
    CHECK("config: the URIs as a JSON array, the TTL, relay",
          cfg.turn_uris &&
              strcmp(cfg.turn_uris,
                     "[\"turn:turn.example.org:3478?transport=udp\","
                     "\"turn:turn.example.org:443?transport=tcp\","
                     "\"turns:turn.example.org:443?transport=tcp\",\"turn:[::1]:3478\","
                     "\"turn:127.0.0.1\"]") == 0 &&
              cfg.turn_ttl == 3600 && cfg.ice_relay == 1);
    config_free(&cfg);
    write_file(path, SECRET "\r\n");
    CHECK("config: a CRLF ending is dropped too",
          load_logged(&cfg, log, sizeof log, 1) == 0 && cfg.turn_secret_len == strlen(SECRET));
    config_free(&cfg);
    unsetenv("LONGCALL_TURN_SECRET_FILE");
    setenv("LONGCALL_TURN_SECRET", SECRET, 1);
    CHECK("config: LONGCALL_TURN_SECRET is taken as it is",
          load_logged(&cfg, log, sizeof log, 1) == 0 && cfg.turn_secret &&
              strcmp(cfg.turn_secret, SECRET) == 0);
    config_free(&cfg);
    clear_env();
}

/* config_load with one variable changed from a good TURN setup refuses to
 * start; the log names want and never holds the secret. */
static void refused(const char *name, const char *var, const char *value, const char *want)
{
    lc_config cfg;
    char log[4096], what[200];
    setenv("LONGCALL_TURN_SECRET", SECRET, 1);
    setenv("LONGCALL_TURN_URIS", "turn:turn.example.org:3478", 1);
    if (value)
        setenv(var, value, 1);
    else
        unsetenv(var);
    int rc = load_logged(&cfg, log, sizeof log, 0);
    snprintf(what, sizeof what, "config refused: %s (log names %s, not the secret)", name, want);
    CHECK(what, rc == -1 && strstr(log, want) && !strstr(log, SECRET));
    if (rc != -1 || !strstr(log, want)) fprintf(stderr, "# log: %s", log);
    clear_env();
}

/* A secret file root cannot read either: as root, a mode 000 file is
 * still readable (CAP_DAC_OVERRIDE), so config_load runs in a child that
 * dropped to nobody; as another user, in the child as it is. Returns the
 * child's verdict: 1 when config_load refused naming the reason. */
static int unreadable_as_user(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("nobody");
            if (!pw || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) _exit(3);
        }
        lc_config cfg;
        char log[4096];
        setenv("LONGCALL_TURN_SECRET_FILE", path, 1);
        setenv("LONGCALL_TURN_URIS", "turn:t.example", 1);
        unsetenv("LONGCALL_TURN_SECRET");
        /* the child's log file must be writable by nobody */
        int rc = load_logged(&cfg, log, sizeof log, 0);
        _exit(rc == -1 && strstr(log, "LONGCALL_TURN_SECRET_FILE") &&
                      strstr(log, "Permission denied") && !strstr(log, SECRET)
                  ? 0
                  : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_config_refused(void)
{
    char path[128], empty[128], nl[128], secret000[128];
    snprintf(path, sizeof path, "%s/no-such-file", tmpdir);
    snprintf(empty, sizeof empty, "%s/empty", tmpdir);
    snprintf(nl, sizeof nl, "%s/newline", tmpdir);
    write_file(empty, "");
    write_file(nl, "\n");
    clear_env();
    setenv("LONGCALL_TURN_SECRET_FILE", path, 1);
    {
        lc_config cfg;
        char log[4096];
        setenv("LONGCALL_TURN_URIS", "turn:t.example", 1);
        int rc = load_logged(&cfg, log, sizeof log, 0);
        CHECK("config refused: secret file missing (names the variable and the reason)",
              rc == -1 && strstr(log, "LONGCALL_TURN_SECRET_FILE") &&
                  strstr(log, "No such file or directory"));
        setenv("LONGCALL_TURN_SECRET_FILE", empty, 1);
        rc = load_logged(&cfg, log, sizeof log, 0);
        CHECK("config refused: secret file empty",
              rc == -1 && strstr(log, "LONGCALL_TURN_SECRET_FILE") && strstr(log, "empty"));
        setenv("LONGCALL_TURN_SECRET_FILE", nl, 1);
        rc = load_logged(&cfg, log, sizeof log, 0);
        CHECK("config refused: secret file holding only a newline",
              rc == -1 && strstr(log, "empty"));
        /* Unreadable, way 1: a directory (read() fails with EISDIR, for
         * root too). */
        setenv("LONGCALL_TURN_SECRET_FILE", tmpdir, 1);
        rc = load_logged(&cfg, log, sizeof log, 0);
        CHECK("config refused: secret file unreadable (a directory)",
              rc == -1 && strstr(log, "LONGCALL_TURN_SECRET_FILE") &&
                  strstr(log, "Is a directory"));
        clear_env();
    }
    /* Unreadable, way 2: mode 000, read by a child running as nobody. */
    snprintf(secret000, sizeof secret000, "%s/secret000", tmpdir);
    write_file(secret000, SECRET "\n");
    chmod(secret000, 0);
    chmod(tmpdir, 0777); /* nobody writes the child's log there */
    char logpath[160];
    snprintf(logpath, sizeof logpath, "%s/log", tmpdir);
    unlink(logpath);
    CHECK("config refused: secret file unreadable (mode 000, as nobody): Permission denied",
          unreadable_as_user(secret000));
    unlink(logpath);
    chmod(tmpdir, 0700);

    refused("both secrets", "LONGCALL_TURN_SECRET_FILE", empty, "both set");
    refused("a secret without URIs", "LONGCALL_TURN_URIS", NULL, "LONGCALL_TURN_URIS");
    {
        lc_config cfg;
        char log[4096];
        setenv("LONGCALL_TURN_URIS", "turn:t.example", 1);
        int rc = load_logged(&cfg, log, sizeof log, 0);
        CHECK("config refused: URIs without a secret",
              rc == -1 && strstr(log, "LONGCALL_TURN_URIS") && strstr(log, "without a secret"));
        clear_env();
    }
    refused("a stun: URI", "LONGCALL_TURN_URIS", "stun:t.example", "turn: or turns:");
    refused("an http URI", "LONGCALL_TURN_URIS", "turn:t.example https://x", "turn: or turns:");
    refused("no host", "LONGCALL_TURN_URIS", "turn:", "host[:port]");
    refused("port 0", "LONGCALL_TURN_URIS", "turn:t.example:0", "host[:port]");
    refused("port 65536", "LONGCALL_TURN_URIS", "turn:t.example:65536", "host[:port]");
    refused("an empty port", "LONGCALL_TURN_URIS", "turn:t.example:", "empty port");
    refused("a user in the URI", "LONGCALL_TURN_URIS", "turn:u@t.example", "host[:port]");
    refused("transport=sctp", "LONGCALL_TURN_URIS", "turn:t.example?transport=sctp",
            "transport=udp");
    refused("another query", "LONGCALL_TURN_URIS", "turn:t.example?x=1", "transport=udp");
    refused("IPv6 without brackets", "LONGCALL_TURN_URIS", "turn:::1", "host[:port]");
    refused("TTL 59", "LONGCALL_TURN_TTL", "59", "LONGCALL_TURN_TTL");
    refused("TTL 604801", "LONGCALL_TURN_TTL", "604801", "LONGCALL_TURN_TTL");
    refused("ICE rate 0", "LONGCALL_ICE_RATE", "0", "LONGCALL_ICE_RATE");
    refused("policy none", "LONGCALL_ICE_TRANSPORT_POLICY", "none",
            "LONGCALL_ICE_TRANSPORT_POLICY");
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_vectors();
    test_ice_servers();
    test_config_ok();
    test_config_refused();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "# could not remove %s\n", tmpdir);
    return unit_done();
}
