/* The protocol cases tests/cases/NAME/{input,expected} run in-process: proto
 * and store on a fresh temporary database per case, with the format and
 * the matching rules of tests/integration/test_cases.py (its docstring),
 * which runs the same cases over HTTP. One result per case, and one saying
 * every reason (enum proto_reason) is pinned by some case. The folder is
 * $LONGCALL_CASES, else tests/cases under the working directory (the top
 * of the tree, where tests/run-tests runs it). With $LONGCALL_TEST_PG
 * (unit_pg.h) each case runs on a fresh PostgreSQL database instead.
 * Usage: test_cases [NAME ...] */
#include "../../fcgi/addr.c"
#include "../../fcgi/wake.c"
#include "../../fcgi/config.c"
#include "../../fcgi/proto.c"
#include "../../fcgi/token.c"
#include "../../fcgi/turn.c"
#include "../../fcgi/store.c"
#include "../../fcgi/store_pg.c"
#include "unit_pg.h"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/wire.c"
#include "../../fcgi/metrics.c"
#include "unit.h"

#include <dirent.h>

#define MAX_ACTIONS 1000
#define MAX_SESSIONS 64

/* One line of a case file: a send (payload), a command (payload NULL:
 * close or expire) or an expected message (payload). */
typedef struct action {
    int no;
    char label[64];
    char op;    /* '>', '=' (an exchange: stored as '>' stores it), '!', '?' or '<' */
    int expire; /* '!': expire (else close) */
    int ring;   /* '!': ring-timeout (every ringing call ends unanswered) */
    char refuse[32]; /* '?': the reason the send must be refused with */
    json_t *payload;
} action;

typedef struct session {
    char label[64];
    uint8_t hash[32];
    int64_t id;
    int closed;
    char key[64]; /* its latest reclaim key ("$label" in a send) */
    json_t *want; /* the expected messages, without seq */
} session;

static lc_config cfg;
static const char *cases_dir;
static int pinned[PROTO_REASONS]; /* reasons some expected line names */

static void free_actions(action *v, int n)
{
    for (int i = 0; i < n; i++)
        json_decref(v[i].payload);
}

/* Reads path's lines into v (at most MAX_ACTIONS), each op one of ops.
 * Returns the count, or -1 with the problem in why. */
static int parse(const char *path, const char *ops, action *v, buf *why)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        buf_printf(why, "cannot open %s", path);
        return -1;
    }
    char *text = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0, no = 0;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    while ((len = getline(&text, &cap, f)) >= 0) {
        no++;
        if (len && text[len - 1] == '\n') text[--len] = '\0';
        const char *p = text + strspn(text, " \t\r\f\v");
        if (!*p || *p == '#') continue;
        /* label, optional blanks, op, one optional blank, the rest */
        size_t lab =
            strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
        p = text + lab;
        p += strspn(p, " \t\r\f\v");
        if (!lab || lab >= sizeof v->label || !*p || !strchr(ops, *p) || n == MAX_ACTIONS) {
            buf_printf(why, "%s:%d: cannot read '%s'", base, no, text);
            goto fail;
        }
        action *a = &v[n];
        *a = (action){.no = no, .op = *p++};
        memcpy(a->label, text, lab);
        if (*p && strchr(" \t\r\f\v", *p)) p++;
        if (a->op == '!') {
            size_t k = strspn(p, " \t\r\f\v");
            size_t m = strcspn(p + k, " \t\r\f\v");
            int close = m == 5 && strncmp(p + k, "close", 5) == 0;
            a->expire = m == 6 && strncmp(p + k, "expire", 6) == 0;
            a->ring = m == 12 && strncmp(p + k, "ring-timeout", 12) == 0;
            if ((!close && !a->expire && !a->ring) ||
                p[k + m + strspn(p + k + m, " \t\r\f\v")]) {
                buf_printf(why, "%s:%d: unknown command '%s'", base, no, p);
                goto fail;
            }
        } else {
            if (a->op == '?') { /* REASON JSON */
                size_t k = strspn(p, " \t\r\f\v"), m = strcspn(p + k, " \t\r\f\v");
                if (!m || m >= sizeof a->refuse) {
                    buf_printf(why, "%s:%d: a refused send needs its reason first", base, no);
                    goto fail;
                }
                memcpy(a->refuse, p + k, m);
                p += k + m;
            }
            json_error_t jerr;
            a->payload = json_loads(p, JSON_DECODE_ANY, &jerr);
            if (!a->payload) {
                buf_printf(why, "%s:%d: bad JSON: %s", base, no, jerr.text);
                goto fail;
            }
        }
        n++;
    }
    free(text);
    fclose(f);
    return n;
fail:
    free_actions(v, n);
    free(text);
    fclose(f);
    return -1;
}

/* Every message in session id's mailbox, in seq order, as a JSON array (a
 * new reference), or NULL on a store error. The one place that knows what
 * store_fetch gives. */
static json_t *read_mailbox(store *st, int64_t id)
{
    json_t *all = json_array();
    int64_t after = 0;
    store_rows rows = {0};
    for (int round = 0; round < 50; round++) {
        int64_t last = after;
        int rc = store_begin_read(st);
        if (rc == LC_OK) rc = store_fetch(st, id, after, 100, 1 << 20, &rows, &last);
        store_rollback(st);
        for (int i = 0; rc == LC_OK && i < rows.n; i++) {
            json_t *m = json_loadb(rows.row[i].body, rows.row[i].len, 0, NULL);
            if (!m) rc = LC_ERR;
            json_array_append_new(all, m);
        }
        if (rc != LC_OK) break;
        if (rows.n == 0) {
            store_rows_free(&rows);
            return all;
        }
        after = last;
    }
    store_rows_free(&rows);
    json_decref(all);
    return NULL;
}

/* test_cases.py's match: expected equals actual, where the string "*"
 * matches any value (the member must still be there). */
static int match(json_t *e, json_t *a)
{
    if (!a) return 0;
    if (json_is_string(e) && strcmp(json_string_value(e), "*") == 0) return 1;
    if (json_is_object(e)) {
        if (!json_is_object(a) || json_object_size(e) != json_object_size(a)) return 0;
        const char *k;
        json_t *v;
        json_object_foreach(e, k, v)
        {
            if (!match(v, json_object_get(a, k))) return 0;
        }
        return 1;
    }
    if (json_is_array(e)) {
        if (!json_is_array(a) || json_array_size(e) != json_array_size(a)) return 0;
        for (size_t i = 0; i < json_array_size(e); i++)
            if (!match(json_array_get(e, i), json_array_get(a, i))) return 0;
        return 1;
    }
    if (json_is_integer(e) && json_is_integer(a))
        return json_integer_value(e) == json_integer_value(a);
    if (json_is_number(e) && json_is_number(a)) return json_number_value(e) == json_number_value(a);
    return json_equal(e, a);
}

/* Appends to why the differences between want and got (seq taken out). */
static void diff(const char *label, json_t *want, json_t *got, buf *why)
{
    size_t nw = json_array_size(want), ng = json_array_size(got);
    for (size_t i = 0; i < nw || i < ng; i++) {
        json_t *e = json_array_get(want, i), *g = json_array_get(got, i);
        if (g) json_object_del(g, "seq");
        if (e && g && match(e, g)) continue;
        char *et = e ? json_dumps(e, JSON_COMPACT) : NULL;
        char *gt = g ? json_dumps(g, JSON_COMPACT) : NULL;
        if (!e)
            buf_printf(why, "; %s #%zu unexpected %s", label, i + 1, gt);
        else if (!g)
            buf_printf(why, "; %s #%zu missing %s", label, i + 1, et);
        else
            buf_printf(why, "; %s #%zu expected %s got %s", label, i + 1, et, gt);
        free(et);
        free(gt);
    }
}

/* Notes each reason an expected message names; a name not in enum
 * proto_reason is a problem. */
static void note_reasons(const action *v, int n, buf *why)
{
    for (int i = 0; i < n; i++) {
        const char *r = json_string_value(json_object_get(v[i].payload, "reason"));
        if (!r) continue;
        int known = 0;
        for (int k = 0; k < PROTO_REASONS; k++)
            if (strcmp(r, proto_reason_name((proto_reason)k)) == 0) pinned[k] = known = 1;
        if (!known) buf_printf(why, "; expected:%d: reason '%s' is not in proto.h", v[i].no, r);
    }
}

static session *find(session *ss, int n, const char *label)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ss[i].label, label) == 0) return &ss[i];
    return NULL;
}

/* Applies one send (msg: an object or a batch) from s in one transaction,
 * as the send endpoint does. Returns LC_OK or what failed; with LC_QUOTA
 * (a mailbox refused it: nothing applied) *refused is the reason. */
static int send_as(store *st, const session *s, json_t *msg, int64_t now, proto_reason *refused)
{
    proto_ctx c = {.st = st, .cfg = &cfg, .now = now};
    int rc = store_begin(st);
    if (rc == LC_OK) rc = store_session_by_token(st, s->hash, &c.self);
    size_t n = json_is_array(msg) ? json_array_size(msg) : 1;
    for (size_t i = 0; i < n && rc == LC_OK; i++)
        rc = proto_apply(&c, json_is_array(msg) ? json_array_get(msg, i) : msg);
    if (rc == LC_OK) rc = store_commit(st);
    if (rc != LC_OK) store_rollback(st);
    *refused = c.refused;
    proto_ctx_free(&c);
    return rc;
}

/* Ends s as POST /rtc/close does ("closed"), or as the expiry job does
 * ("expired"). Returns LC_OK or what failed. */
static int close_session(store *st, const session *s, int64_t now, const char *reason)
{
    proto_ctx c = {.st = st, .cfg = &cfg, .now = now};
    int rc = store_begin(st);
    if (rc == LC_OK) rc = proto_end_session(&c, s->id, reason);
    if (rc == LC_OK) rc = store_commit(st);
    if (rc != LC_OK) store_rollback(st);
    proto_ctx_free(&c);
    return rc;
}

/* Ends every call ringing for longer than the ring timeout at now, as the
 * maintenance job does. Returns LC_OK or what failed. */
static int ring_timeout(store *st, int64_t now)
{
    int64_t ids[MAX_SESSIONS];
    int n = 0;
    proto_ctx c = {.st = st, .cfg = &cfg, .now = now};
    int rc = store_begin(st);
    if (rc == LC_OK)
        rc = store_calls_unanswered(st, now - (int64_t)cfg.ring_timeout * 1000, ids, MAX_SESSIONS,
                                    &n);
    for (int i = 0; i < n && rc == LC_OK; i++)
        rc = proto_ring_timeout(&c, ids[i]);
    if (rc == LC_OK) rc = store_commit(st);
    if (rc != LC_OK) store_rollback(st);
    proto_ctx_free(&c);
    return rc;
}

/* Notes in s->key the reclaim key of the latest registerResponse in its
 * mailbox (as test_cases.py does: the newest one it can read). */
static void note_key(store *st, session *s)
{
    json_t *all = read_mailbox(st, s->id);
    for (size_t i = 0; i < json_array_size(all); i++) {
        const char *k = json_string_value(json_object_get(json_array_get(all, i), "reclaim"));
        if (k) snprintf(s->key, sizeof s->key, "%s", k);
    }
    json_decref(all);
}

/* Replaces each string member "$label" of the message (or of each message
 * of a batch) with session label's latest reclaim key. */
static void put_keys(store *st, json_t *payload, session *ss, int nss)
{
    size_t n = json_is_array(payload) ? json_array_size(payload) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_is_array(payload) ? json_array_get(payload, i) : payload;
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v)
        {
            const char *t = json_string_value(v);
            session *o = t && t[0] == '$' ? find(ss, nss, t + 1) : NULL;
            if (!o) continue;
            if (!o->closed) note_key(st, o);
            json_object_set_new(m, k, json_string(o->key));
        }
    }
}

/* A new session for label (created in the store), or NULL with the
 * problem in why. */
static session *new_session(store *st, session *ss, int *nss, const action *a, int64_t now,
                            buf *why)
{
    if (*nss == MAX_SESSIONS) {
        buf_printf(why, "; input:%d: more than %d sessions", a->no, MAX_SESSIONS);
        return NULL;
    }
    session *s = &ss[(*nss)++];
    *s = (session){.want = json_array()};
    snprintf(s->label, sizeof s->label, "%s", a->label);
    s->hash[0] = (uint8_t)*nss;
    s->hash[1] = 0xCA;
    int rc = store_begin(st);
    /* One client address for every session of a case, as over HTTP. */
    if (rc == LC_OK) rc = store_session_create_addr(st, s->hash, now, "127.0.0.1", &s->id);
    if (rc == LC_OK) rc = store_commit(st);
    if (rc == LC_OK) return s;
    store_rollback(st);
    buf_printf(why, "; input:%d: session for %s not created (rc %d)", a->no, a->label, rc);
    return NULL;
}

/* Applies the input lines in order, as test_cases.py sends them: each send
 * and close must succeed (200), each refused send ('?') must be refused
 * with its reason (429: LC_QUOTA, nothing applied). Sessions go to ss. */
static void apply_input(store *st, action *in, int nin, session *ss, int *nss, buf *why)
{
    int64_t now = 1000000;
    for (int i = 0; i < nin && !why->len; i++) {
        action *a = &in[i];
        session *s = find(ss, *nss, a->label);
        now += 10;
        if (!s)
            s = new_session(st, ss, nss, a, now, why);
        else if (s->closed)
            buf_printf(why, "; input:%d: %s was closed before", a->no, a->label);
        if (why->len) break;
        int rc = LC_OK;
        if (a->op == '!' && a->ring) {
            /* The clock moves past the ring timeout, as the HTTP driver waits. */
            now += (int64_t)cfg.ring_timeout * 1000 + 2000;
            rc = ring_timeout(st, now);
        } else if (a->op == '!') {
            if (a->expire) note_key(st, s);
            rc = close_session(st, s, now, a->expire ? "expired" : "closed");
            s->closed = 1;
        } else if (!json_is_object(a->payload) && !json_is_array(a->payload)) {
            buf_printf(why, "; input:%d: a send is an object or an array (else 400)", a->no);
        } else if (json_is_array(a->payload) &&
                   json_array_size(a->payload) > (size_t)cfg.max_batch) {
            buf_printf(why, "; input:%d: a batch of over %d messages (else 413)", a->no,
                       cfg.max_batch);
        } else {
            put_keys(st, a->payload, ss, *nss);
            proto_reason refused = PROTO_REASONS;
            rc = send_as(st, s, a->payload, now, &refused);
            if (a->op == '?') {
                const char *got = rc == LC_QUOTA ? proto_reason_name(refused) : NULL;
                if (!got || strcmp(got, a->refuse) != 0)
                    buf_printf(why, "; input:%d: %s's send must be refused with %s (rc %d, %s)",
                               a->no, a->label, a->refuse, rc, got ? got : "-");
                else
                    pinned[refused] = 1;
                continue;
            }
        }
        if (rc != LC_OK)
            buf_printf(why, "; input:%d: %s %s failed (rc %d)", a->no, a->label,
                       a->op == '!' ? (a->ring ? "ring-timeout" : "close") : "send", rc);
    }
}

/* Compares each session's mailbox with the expected lines; a closed
 * session must be gone instead (its token finds nothing: 404). */
static void check_mailboxes(store *st, action *ex, int nex, session *ss, int nss, buf *why)
{
    for (int i = 0; i < nex && !why->len; i++) {
        session *s = find(ss, nss, ex[i].label);
        if (!s)
            buf_printf(why, "; expected:%d: session %s never appears in input", ex[i].no,
                       ex[i].label);
        else if (s->closed)
            buf_printf(why, "; expected lists messages for %s, which input closes", s->label);
        else
            json_array_append(s->want, ex[i].payload);
    }
    for (int i = 0; i < nss && !why->len; i++) {
        session *s = &ss[i];
        if (s->closed) {
            store_session x;
            int rc = store_begin_read(st);
            if (rc == LC_OK) rc = store_session_by_token(st, s->hash, &x);
            store_rollback(st);
            if (rc != LC_NOTFOUND)
                buf_printf(why, "; %s: closed, yet its token still finds it (rc %d)", s->label, rc);
            continue;
        }
        json_t *got = read_mailbox(st, s->id);
        if (!got)
            buf_printf(why, "; %s: mailbox not read", s->label);
        else
            diff(s->label, s->want, got, why);
        json_decref(got);
    }
}

/* Runs the lines of one case on st; the problems go to why. */
static void play(store *st, action *in, int nin, action *ex, int nex, buf *why)
{
    session ss[MAX_SESSIONS];
    int nss = 0;
    apply_input(st, in, nin, ss, &nss, why);
    check_mailboxes(st, ex, nex, ss, nss, why);
    for (int i = 0; i < nss; i++)
        json_decref(ss[i].want);
}

/* The case's settings: tests/cases/NAME/env (optional), one VAR=value a
 * line (# comments), set with setenv (set) or unset again (!set); the
 * configuration is loaded again either way. Returns 0, or -1 with the
 * problem in why. */
static int case_env(const char *name, int set, buf *why)
{
    char path[512], line[256];
    snprintf(path, sizeof path, "%s/%s/env", cases_dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!line[0] || line[0] == '#') continue;
        if (!eq || strncmp(line, "LONGCALL_", 9) != 0) {
            buf_printf(why, "; env: cannot read %s", line);
            continue;
        }
        *eq = '\0';
        if (set)
            setenv(line, eq + 1, 1);
        else
            unsetenv(line);
    }
    fclose(f);
    config_free(&cfg);
    if (config_load(&cfg) != 0) buf_printf(why, "; env: the settings do not load");
    return why->len ? -1 : 0;
}

/* Runs case name; prints its result. */
static void run_case(const char *name)
{
    static action in[MAX_ACTIONS], ex[MAX_ACTIONS];
    char path[512], dir[] = "/tmp/longcall-cases-XXXXXX", db[128];
    buf why = {0};
    int nin = -1, nex = -1;
    store *st = NULL;
    snprintf(path, sizeof path, "%s/%s/input", cases_dir, name);
    nin = parse(path, ">=!?", in, &why);
    snprintf(path, sizeof path, "%s/%s/expected", cases_dir, name);
    if (nin >= 0) nex = parse(path, "<", ex, &why);
    if (nex >= 0) note_reasons(ex, nex, &why);
    if (nex >= 0 && !why.len) case_env(name, 1, &why);
    if (nex < 0 || why.len) goto out;
    if (!mkdtemp(dir)) {
        buf_printf(&why, "; mkdtemp: %s", strerror(errno));
        goto out;
    }
    snprintf(db, sizeof db, "%s/t.db", dir);
    char pg[512] = "", pgname[160];
    snprintf(pgname, sizeof pgname, "case_%s", name);
    if (unit_pg_server() && unit_pg_database(pgname, pg, sizeof pg) != 0)
        buf_printf(&why, "; cannot make PostgreSQL database %s", pgname);
    else if (store_open(pg[0] ? pg : db, 1000, &st) != LC_OK)
        buf_printf(&why, "; store_open %s failed", pg[0] ? pgname : db);
    else
        play(st, in, nin, ex, nex, &why);
    store_close(st);
    if (pg[0]) unit_pg_drop(pgname);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", db, suffix[i]);
        unlink(path);
    }
    rmdir(dir);
out:
    case_env(name, 0, &why);
    if (nin > 0) free_actions(in, nin);
    if (nex > 0) free_actions(ex, nex);
    char title[1200];
    /* why starts with "; " (or a file problem without it) */
    const char *w = why.len && why.data[0] == ';' ? why.data + 2 : why.data;
    snprintf(title, sizeof title, "case %s%s%.1000s", name, why.len ? ": " : "", why.len ? w : "");
    CHECK(title, why.len == 0);
    buf_free(&why);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    lc_json_init();
    lc_log_set_level(LC_LOG_ERROR);
    cases_dir = getenv("LONGCALL_CASES");
    if (!cases_dir || !*cases_dir) cases_dir = "tests/cases";
    CHECK("configuration: the server's defaults load", config_load(&cfg) == 0);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run_case(argv[i]);
        config_free(&cfg);
        return unit_done();
    }
    char *names[512];
    int n = 0;
    DIR *d = opendir(cases_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 512) {
        char path[512];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", cases_dir, e->d_name);
        if (e->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            names[n++] = xstrdup(e->d_name);
    }
    if (d) closedir(d);
    CHECK("case folders exist (tests/cases, or $LONGCALL_CASES, from the top of the tree)", n > 0);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    for (int i = 0; i < n; i++) {
        run_case(names[i]);
        free(names[i]);
    }
    /* expired needs the clock as the cases do not move it (alice! expire
     * closes at once here): tests/integration/test_call.py and test_store.c
     * pin it. */
    buf missing = {0};
    for (int k = 0; k < PROTO_REASONS; k++)
        if (!pinned[k] && k != PROTO_EXPIRED)
            buf_printf(&missing, " %s", proto_reason_name((proto_reason)k));
    char title[400];
    snprintf(title, sizeof title,
             "every reason but expired is pinned by a case%s%.300s",
             missing.len ? "; not:" : "", missing.len ? missing.data : "");
    CHECK(title, n > 0 && missing.len == 0);
    buf_free(&missing);
    config_free(&cfg);
    return unit_done();
}
