/* loadgen: the benchmark's HTTP/1.1 load generator: reads the command line,
 * raises the descriptor limit, and runs one scenario against
 * 127.0.0.1:PORT. Exit status 0 when the scenario ran without errors. */
#include "loadgen.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(void)
{
    fputs("usage: loadgen -p PORT [options] SCENARIO [N]\n"
          "scenarios:\n"
          "  ceiling      -c conns GET -u URL for -d s (after -w s warm-up; -n caps requests)\n"
          "  latency      one call; -k messages, each A send -> B's held poll, timed\n"
          "               (-x: A's sends are exchanges, timeout=0)\n"
          "  pairs P      P calls ping-ponging ICE candidates for -d s: messages/s\n"
          "               (-x: each message an exchange, the sender's poll too)\n"
          "  callsetup P  P pairs setting up calls back to back for -d s, batched as\n"
          "               LongPollSocket batches (-x: exchanges): set-ups/s, latency,\n"
          "               requests per set-up\n"
          "  idle N       N sessions each holding a poll for -d s after all are held\n"
          "  fanout N     N held polls, then one ping per session (-s sender connections)\n"
          "  slow N       latency (-k messages) and -r /rtc/status round trips, without and\n"
          "               with N FastCGI peers on the -U socket(s) that never read a 240 KB\n"
          "               poll answer; -d s bounds each phase; then waits -D s for the drops\n"
          "  attack N     latency (-k messages) and -P pairs (-d s), without and with N\n"
          "               attackers on 127.0.0.2.. flooding list, call (-A requests/s of\n"
          "               each) and -R slow readers each on the -U socket(s)\n"
          "options:\n"
          "  -p PORT      target port on 127.0.0.1 (required)\n"
          "  -c CONNS     ceiling connections (32)\n"
          "  -d SECONDS   measured duration (10; idle 15; slow: bound on each phase, 15)\n"
          "  -w SECONDS   ceiling warm-up (1)\n"
          "  -n COUNT     ceiling: at most COUNT requests\n"
          "  -u PATH      ceiling: path to GET (/)\n"
          "  -k COUNT     latency: messages (2000)\n"
          "  -t SECONDS   poll timeout= (30)\n"
          "  -s CONNS     fanout sender connections (16)\n"
          "  -S CONNS     setup/close connections (16)\n"
          "  -L SECONDS   hard bound on the whole scenario (120)\n"
          "  -U PATH      slow: a backend unix socket (repeat for several; round-robin)\n"
          "  -r COUNT     slow: /rtc/status round trips per phase (500)\n"
          "  -D SECONDS   slow: wait at most this long for the backend to drop them (20)\n"
          "  -P PAIRS     attack: honest ping-pong pairs (32)\n"
          "  -R COUNT     attack: slow readers per attacker address (4)\n"
          "  -A RATE      attack: requests/s of each kind (list, call, poll) per attacker (4)\n"
          "  -K KINDS     attack: which floods: l (list), c (call), s (slow readers) (lcs)\n"
          "  -W COUNT     attack: windows with the attack, as many without (4)\n"
          "  -C           leave the sessions open at the end\n"
          "  -x           pairs, callsetup, latency: exchange mode (POST /rtc/send with after=)\n"
          "  -I           callsetup: the first batch leaves as its first message is queued\n"
          "               (LongPollSocket before it gathered a task's sends)\n"
          "  -X MS        callsetup -x: a second batch (the first an exchange held) leaves\n"
          "               MS after it was due, with what was queued meanwhile\n"
          "               (LongPollSocket's SECOND_AFTER: 0, the next turn of the loop)\n"
          "environment: LG_TRACE=N  callsetup: set-up N of pair 0, request by request\n"
          "output: key=value lines, and '# ' lines for people\n",
          stderr);
}

/* Raises the soft descriptor limit to the hard one (idle/fanout hold one
 * socket per session). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Parses the command line and runs the scenario. */
int main(int argc, char **argv)
{
    lg_opts o = {.conns = 32,
                 .duration = -1,
                 .warmup = 1,
                 .url = "/",
                 .iterations = 2000,
                 .poll_timeout = 30,
                 .senders = 16,
                 .setup_conns = 16,
                 .limit = 120,
                 .status_requests = 500,
                 .drop_wait = 20,
                 .pairs = 32,
                 .slow_per = 4,
                 .attack_rate = 4,
                 .attack_kinds = "lcs",
                 .windows = 4};
    int c;
    while ((c = getopt(argc, argv, "p:c:d:w:n:u:k:t:s:S:L:U:r:D:P:R:A:K:W:CxX:Ih")) != -1) {
        switch (c) {
        case 'p':
            o.port = atoi(optarg);
            break;
        case 'c':
            o.conns = atoi(optarg);
            break;
        case 'd':
            o.duration = atof(optarg);
            break;
        case 'w':
            o.warmup = atof(optarg);
            break;
        case 'n':
            o.max_requests = atoll(optarg);
            break;
        case 'u':
            o.url = optarg;
            break;
        case 'k':
            o.iterations = atol(optarg);
            break;
        case 't':
            o.poll_timeout = atoi(optarg);
            break;
        case 's':
            o.senders = atoi(optarg);
            break;
        case 'S':
            o.setup_conns = atoi(optarg);
            break;
        case 'L':
            o.limit = atof(optarg);
            break;
        case 'U':
            if (o.nsockets == LG_MAX_SOCKETS) {
                fprintf(stderr, "loadgen: at most %d -U sockets\n", LG_MAX_SOCKETS);
                return 2;
            }
            o.sockets[o.nsockets++] = optarg;
            break;
        case 'r':
            o.status_requests = atol(optarg);
            break;
        case 'D':
            o.drop_wait = atof(optarg);
            break;
        case 'P':
            o.pairs = atol(optarg);
            break;
        case 'R':
            o.slow_per = atoi(optarg);
            break;
        case 'A':
            o.attack_rate = atof(optarg);
            break;
        case 'K':
            o.attack_kinds = optarg;
            break;
        case 'W':
            o.windows = atoi(optarg);
            break;
        case 'C':
            o.no_close = 1;
            break;
        case 'x':
            o.exchange = 1;
            break;
        case 'X':
            o.second_after_ms = atoi(optarg);
            break;
        case 'I':
            o.first_at_once = 1;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (o.port <= 0 || o.port > 65535 || optind >= argc || o.conns < 1 || o.senders < 1 ||
        o.setup_conns < 1 || o.poll_timeout < 0 || o.limit <= 0 || o.second_after_ms < 0) {
        usage();
        return 2;
    }
    const char *scenario = argv[optind];
    if (optind + 1 < argc) o.n = atol(argv[optind + 1]);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(scenario, "ceiling") == 0) {
        if (o.duration < 0) o.duration = 10;
        return lg_run_ceiling(&o);
    }
    if (strcmp(scenario, "latency") == 0) return lg_run_latency(&o);
    if (o.n <= 0) {
        fprintf(stderr, "loadgen: %s needs a count\n", scenario);
        return 2;
    }
    if (strcmp(scenario, "pairs") == 0) {
        if (o.duration < 0) o.duration = 10;
        return lg_run_pairs(&o);
    }
    if (strcmp(scenario, "callsetup") == 0) {
        if (o.duration < 0) o.duration = 10;
        return lg_run_callsetup(&o);
    }
    if (strcmp(scenario, "idle") == 0) {
        if (o.duration < 0) o.duration = 15;
        return lg_run_idle(&o);
    }
    if (strcmp(scenario, "fanout") == 0) return lg_run_fanout(&o);
    if (strcmp(scenario, "slow") == 0) {
        if (o.nsockets == 0) {
            fprintf(stderr, "loadgen: slow needs the backend's socket (-U PATH)\n");
            return 2;
        }
        if (o.duration < 0) o.duration = 15;
        return lg_run_slow(&o);
    }
    if (strcmp(scenario, "attack") == 0) {
        if (o.nsockets == 0 && o.slow_per > 0) {
            fprintf(stderr, "loadgen: attack needs the backend's socket (-U PATH) or -R 0\n");
            return 2;
        }
        if (o.duration < 0) o.duration = 10;
        return lg_run_attack(&o);
    }
    usage();
    return 2;
}
