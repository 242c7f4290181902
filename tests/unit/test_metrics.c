/* Unit tests of metrics.c: counters shared through the file (a second
 * mapping sees them), a poll answer's messages counted by type (a nested
 * "id" in a message's content is not a message), histogram buckets
 * cumulative in the exposition, and the label mappings. */
#include "../../fcgi/metrics.c"
#include "../../fcgi/util.c"
#include "../../fcgi/log.c"
#include "unit.h"

#include <sys/wait.h>

int main(void)
{
    char path[] = "/tmp/longcall-metrics-XXXXXX";
    int tmp = mkstemp(path);
    if (tmp < 0) return 1;
    close(tmp);
    buf out = {0};
    metrics_gauges g = {.held_polls = 2, .sessions = 5, .db_bytes = 4096, .wal_bytes = -1};
    CHECK("render before open: refused", metrics_render(&g, &out) == -1 && out.len == 0);
    CHECK("open", metrics_open(path) == 0);
    metrics_request(EP_POLL, 200, 300);     /* 0.3 ms */
    metrics_request(EP_POLL, 200, 2000000); /* 2 s */
    metrics_request(EP_SEND, 429, 100);
    metrics_request(EP_SEND, 418, 100); /* a code not listed: "other" */
    /* Another process adds to the same counters. */
    pid_t child = fork();
    if (child == 0) {
        mx = NULL;
        if (metrics_open(path) != 0) _exit(1);
        metrics_request(EP_POLL, 200, 300);
        metrics_limit("LONGCALL_LIST_RATE", 3);
        metrics_limit("LONGCALL_NO_SUCH", 1);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    const char body[] = "{\"seq\":7,\"messages\":[{\"seq\":6,\"id\":\"iceCandidate\",\"candidate\":"
                        "{\"seq\":1,\"id\":\"x\"}},{\"seq\":7,\"id\":\"stopCommunication\"}]}";
    CHECK("a poll answer's messages are counted (not a nested id)",
          metrics_delivered(body, sizeof body - 1) == 2);
    CHECK("an answer without messages has none",
          metrics_delivered("{\"seq\":3,\"messages\":[]}", 24) == 0);
    metrics_tx tx = {0};
    tx.stored[metrics_type("incomingCall")] = 2;
    tx.ended[metrics_outcome("no answer")] = 1;
    tx.ended[metrics_outcome("some new outcome")] = 1;
    tx.turn = 1;
    metrics_committed(&tx);
    CHECK("committed: zeroed for the next transaction",
          tx.stored[metrics_type("incomingCall")] == 0 && tx.ended[metrics_outcome("no answer")] == 0 &&
              tx.turn == 0);
    CHECK("an unknown type maps to other", metrics_type("zzz") == METRICS_TYPES - 1);
    CHECK("render", metrics_render(&g, &out) == 0 && out.len > 0);
    buf_append(&out, "", 1);
    const char *t = out.data;
    CHECK("requests by endpoint and code (both processes)",
          strstr(t, "longcall_requests_total{endpoint=\"poll\",code=\"200\"} 3\n") &&
              strstr(t, "longcall_requests_total{endpoint=\"send\",code=\"429\"} 1\n") &&
              strstr(t, "longcall_requests_total{endpoint=\"send\",code=\"other\"} 1\n"));
    CHECK("histogram buckets are cumulative, +Inf is the count",
          strstr(t, "longcall_request_duration_seconds_bucket{endpoint=\"poll\",le=\"0.0005\"} 2\n") &&
              strstr(t, "longcall_request_duration_seconds_bucket{endpoint=\"poll\",le=\"2.5\"} 3\n") &&
              strstr(t, "longcall_request_duration_seconds_bucket{endpoint=\"poll\",le=\"+Inf\"} 3\n") &&
              strstr(t, "longcall_request_duration_seconds_count{endpoint=\"poll\"} 3\n"));
    CHECK("delivered by type", strstr(t, "longcall_messages_delivered_total{type=\"iceCandidate\"} 1\n") &&
                                   strstr(t, "longcall_messages_delivered_total{type=\"stopCommunication\"} 1\n"));
    CHECK("stored by type, calls ended by outcome",
          strstr(t, "longcall_messages_stored_total{type=\"incomingCall\"} 2\n") &&
              strstr(t, "longcall_calls_ended_total{outcome=\"no_answer\"} 1\n") &&
              strstr(t, "longcall_calls_ended_total{outcome=\"other\"} 1\n"));
    CHECK("limit hits by setting (an unknown one: other)",
          strstr(t, "longcall_limit_hits_total{limit=\"LONGCALL_LIST_RATE\"} 3\n") &&
              strstr(t, "longcall_limit_hits_total{limit=\"other\"} 1\n"));
    CHECK("gauges; an unknown one (-1) is left out",
          strstr(t, "longcall_held_polls 2\n") && strstr(t, "longcall_database_size_bytes 4096\n") &&
              !strstr(t, "longcall_wal_size_bytes"));
    CHECK("every metric has its HELP and TYPE",
          strstr(t, "# TYPE longcall_relay_latency_seconds histogram\n") &&
              strstr(t, "# TYPE longcall_requests_total counter\n"));
    buf_free(&out);
    unlink(path);
    char mpath[sizeof path + 16];
    snprintf(mpath, sizeof mpath, "%s.metrics", path);
    unlink(mpath);
    return unit_done();
}
