/* Unit test of history pruning (store.c) when a session's end is older by
 * the clock than a message in its mailbox: found by tests/fuzz/fuzz_proto,
 * whose sessions of the previous run were ended with an older time than
 * their messages. Pruning the session first let the next session take its
 * id (the highest) and inherit its mailbox. */
#include "../../fcgi/proto.c"
#include "../../fcgi/store.c"
#include "../../fcgi/util.c"
#include "../../fcgi/walvfs.c"
#include "../../fcgi/wire.c"
#include "unit.h"

#include <unistd.h>

int main(void)
{
    lc_json_init();
    lc_log_set_level(LC_LOG_ERROR);
    char dir[] = "/tmp/longcall-prune-XXXXXX", path[128];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    store *st = NULL;
    CHECK("store opens", store_open(path, 1000, &st) == LC_OK);
    uint8_t h[32] = {1, 2, 3};
    int64_t id = 0, id2 = 0;
    store_mailbox mb;
    store_begin(st);
    store_session_create(st, h, 1000, &id);
    /* A message queued at 5000 (the send read its clock before it waited
     * for the write lock) to a session a close then ended at 4000. */
    store_msg m = {.session_id = id, .type = "pong", .body = "{\"id\":\"pong\"}", .created = 5000};
    store_enqueue(st, &m, 100, &mb);
    store_session_end(st, id, 4000, "closed");
    store_commit(st);
    int deleted = 0;
    store_begin(st);
    int rc = store_prune(st, 4500, 100, &deleted); /* after the end, before the message */
    store_commit(st);
    h[0] = 9;
    store_begin(st);
    store_session_create(st, h, 6000, &id2);
    store_commit(st);
    store_rows rows = {.n = -1};
    int64_t last = -1;
    store_begin_read(st);
    int fetched = store_fetch(st, id2, 0, 100, 1 << 20, &rows, &last);
    store_rollback(st);
    CHECK("pruning keeps a session that still has a message", rc == LC_OK && id2 != id);
    CHECK("a new session's mailbox is empty", fetched == LC_OK && rows.n == 0 && last == 0);
    store_begin(st);
    rc = store_prune(st, 10000, 100, &deleted); /* both are old now */
    store_commit(st);
    store_session s;
    store_begin_read(st);
    int gone = store_session_get(st, id, &s) == LC_NOTFOUND;
    store_rollback(st);
    CHECK("once its messages are pruned, the session is", rc == LC_OK && gone);
    store_rows_free(&rows);
    store_close(st);
    char p[160];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
    return unit_done();
}
