#!/usr/bin/env bash
# The whole longcall benchmark, one command, bounded (about 12 minutes):
#   bash tests/bench/run.sh [RESULTS.md]        (from anywhere; `make bench` calls it)
# 1. builds the backend (make), the ceiling responder, the store's floor and
#    the load generator into build/bench/;
# 2. lighttpd + the no-work ceiling responder (a generated config in a temp
#    dir): requests/s and round trip -- the ceiling; then the store's floor
#    (tests/bench/floor.c: one bare SQLite write transaction, p50);
# 3. lighttpd + the real backend with the shipped conf/lighttpd.conf, started
#    as tests/lib/harness.py does: relay latency, ping-pong pairs 1/8/32/128,
#    1000 and 5000 idle held polls (backend RSS/PSS from smaps_rollup, CPU
#    from /proc/PID/stat over 10 s), fan-out to 5000 held polls;
# 3b. more rounds of the two ratio targets (ceiling, then latency and pairs
#    32 on a fresh real server each; the floor again): their median decides;
#    in every round the ceiling server stays up beside the real one and is
#    measured again after the real server's figures: a round's ratios are to
#    the mean of its two ceiling measurements, which bracket them in time;
# 3c. slow readers (issue 12): relay latency and /rtc/status round trips
#    without, then with 64 FastCGI connections on the backend's sockets that
#    never read a 240 KB answer (fresh server, LONGCALL_WRITE_TIMEOUT short);
# 3d. under attack (issue 12): relay latency and pairs 32 without, then with
#    16 attackers on 127.0.0.2..17 flooding list, call and slow reads
#    (fresh server, the backend's default limits but the per-address ones);
# 3e. exchanges (issue 14), on the servers of 2 and 3b: relay latency in
#    exchange mode, quiet and one-way as latency measures it (latency -x:
#    the measure of the issue's "today 1.85x", the target's) and in
#    ping-pong (pairs 1 -x: round trip / 2, the issue's W1), and pairs
#    1/8/32/128 -x (each
#    message an exchange, one request); call set-ups (callsetup P, a fresh
#    server with the call limits LONGCALL_CALL_RATE, _CALL_PAIR_RATE and
#    _CALL_COOLDOWN out of the way: P pairs call back to back) at P = 1, 8,
#    32, 128 in both modes, and callsetup 32 again in each round;
# 4. prints one table with the targets as ratios to this run's ceiling and
#    writes it to RESULTS.md (default build/bench/results.md), and every
#    figure as scenario.key=value to RESULTS.kv beside it.
# Every server is stopped by PID on exit, failure or Ctrl-C. Only loopback: 127.0.0.1,
# and 127.0.0.2-17 as the attack scenario's source addresses.
# Knobs (environment): BENCH_PROCS (backend processes; default the Makefile's
# PROCS, what `make run` uses), BENCH_DURATION
# (seconds per throughput run, 10), BENCH_ROUNDS (rounds of the two ratio
# targets, 5; the verdict is on their median), BENCH_NO_MAKE=1 (skip `make`),
# BENCH_BIN (the backend binary, default build/longcall: e.g. an older
# commit's, built in another worktree), BENCH_ONLY=slow (only the slow-readers
# scenario, about 20 s), BENCH_SLOW_WRITE_TIMEOUT (its server's
# LONGCALL_WRITE_TIMEOUT, 8), BENCH_ONLY=attack (only the under-attack
# scenario, about 70 s), BENCH_ATTACKERS (16), BENCH_ATTACK_RATE (requests/s
# of each kind -- list, call, poll -- per attacker, 4), BENCH_ATTACK_SLOW
# (slow readers per attacker address, 4), BENCH_ATTACK_WRITE_TIMEOUT (that
# server's LONGCALL_WRITE_TIMEOUT, 2), BENCH_ONLY=exchange (the ceiling and
# the exchange figures of 3e with their rounds, pairs 1, 32 and latency in
# two-request mode beside them; about 2 + 4 x BENCH_ROUNDS runs of
# BENCH_DURATION: BENCH_ROUNDS=1 BENCH_DURATION=3 for a quick look),
# BENCH_ONLY=store (the rows BENCHMARKS.md compares between stores: ceiling,
# relay latency, pairs 1/8/32/128 in both modes, call set-ups, 1000 idle
# held polls, with their rounds; about 6 min with BENCH_ROUNDS=2
# BENCH_DURATION=5).
# Stores (issue 15): BENCH_STORE=sqlite (default) or pg: a PostgreSQL of its
# own (tests/bench/pg.py: initdb in a temporary folder as the unprivileged
# postgres user, 127.0.0.1, PostgreSQL's default durability -- fsync,
# synchronous_commit on), a fresh database for each real server, stopped by
# PID at the end; its processes' CPU is a column of every row.
# BENCH_NODES=2 (with BENCH_STORE=pg): each server is two lighttpd + backend
# nodes (own state folders and wake files) behind nginx as a round-robin
# balancer (as tests/integration/test_nodes.py starts it; upstream
# keep-alive), the load generator against nginx -- the ceiling too (two
# ceiling responders behind the same nginx). The slow-readers and attack
# scenarios then talk to node 1's sockets. BENCH_PG_SETTINGS: more server
# settings, NAME=VALUE separated by spaces (e.g. synchronous_commit=off).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${1:-$ROOT/build/bench/results.md}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac # relative to where it was called
cd "$ROOT" || exit 1
# Backend processes: BENCH_PROCS, else the Makefile's PROCS (what make run uses).
PROCS=${BENCH_PROCS:-$(sed -n 's/^PROCS[[:space:]]*?=[[:space:]]*\([0-9]*\).*/\1/p' Makefile | head -n 1)}
PROCS=${PROCS:-2}
# Threads of each ceiling responder: 4, the reference every run since the
# first was measured with (the backend's default until it became one per CPU
# plus one). Not tied to the backend's count: fewer lower the ceiling (3:
# about 7% fewer requests/s here, its threads wait in libfcgi's close
# linger), more raise it (8: about 8% more). BENCHMARKS.md has the figures.
CEIL_THREADS=${BENCH_CEILING_THREADS:-4}
DUR=${BENCH_DURATION:-10}
# The scenarios open thousands of sessions (idle 5000) and hold as many polls
# from 127.0.0.1: the per-address limits (README "Security") are set out of
# their way here, unless given in the environment.
export LONGCALL_ADDR_SESSIONS_PER_MIN=${LONGCALL_ADDR_SESSIONS_PER_MIN:-1000000}
export LONGCALL_ADDR_SESSIONS=${LONGCALL_ADDR_SESSIONS:-1000000}
export LONGCALL_ADDR_HELD=${LONGCALL_ADDR_HELD:-1000000}
ROUNDS=${BENCH_ROUNDS:-5}
BACKEND=${BENCH_BIN:-$ROOT/build/longcall}
case $BACKEND in /*) ;; *) BACKEND=$PWD/$BACKEND ;; esac
ONLY=${BENCH_ONLY:-}
case $ONLY in "" | slow | attack | exchange | store) ;; *) echo "bench: BENCH_ONLY=$ONLY: only 'slow', 'attack', 'exchange' and 'store' are known" >&2; exit 2 ;; esac
STORE=${BENCH_STORE:-sqlite}
PG_EXTRA=${BENCH_PG_SETTINGS:-}
NODES=${BENCH_NODES:-1}
case $STORE in sqlite | pg) ;; *) echo "bench: BENCH_STORE=$STORE: 'sqlite' or 'pg'" >&2; exit 2 ;; esac
case $NODES in 1) ;; 2) [ "$STORE" = pg ] || { echo "bench: BENCH_NODES=2 needs BENCH_STORE=pg" >&2; exit 2; } ;;
*) echo "bench: BENCH_NODES=$NODES: 1 or 2" >&2; exit 2 ;; esac
# Call set-ups (callsetup): P pairs call each other back to back, hundreds of
# calls a second between the same two sessions: the call limits (README
# "Security": rate per caller, per pair, cool-down after an unanswered ring)
# would refuse them, so that server has them out of the way; and the mailbox
# quota and share: one pair makes up to 4000 messages/s to the same mailbox,
# and acknowledgements are written 50 ms late, so 250 (the default share)
# unacknowledged ones from one sender are reached (429 mailbox_share).
CALL_ENV="LONGCALL_CALL_RATE=1000000 LONGCALL_CALL_PAIR_RATE=1000000 LONGCALL_CALL_COOLDOWN=0 LONGCALL_MAILBOX_QUOTA=100000 LONGCALL_MAILBOX_SHARE=100000"
# Issue 14's targets: pairs 32 in exchange mode >= XPAIRS_TARGET % of the
# ceiling's requests/s; exchange relay latency (round trip / 2) p50 <=
# XLAT_TARGET x the ceiling's round trip; call set-ups/s at 32 pairs in
# exchange mode >= CS_TARGET x the two-request mode's, with at most
# CS_REQ_TARGET requests per set-up; set-up p99 at 128 pairs (exchange)
# <= CS_TAIL_TARGET x its p50.
XPAIRS_TARGET=60
XLAT_TARGET=1.6
CS_TARGET=1.8
CS_REQ_TARGET=7
CS_TAIL_TARGET=2
# Slow readers: the attackers, and LONGCALL_WRITE_TIMEOUT of that server:
# longer than the measurement with the attack (about 2 s here), so that the
# attack holds for all of it; the scenario then waits for the drops.
SLOW_N=64
SLOW_WT=${BENCH_SLOW_WRITE_TIMEOUT:-8}
# Under attack: attackers (each its own address 127.0.0.2, ...), requests/s
# of each kind per attacker, slow readers per attacker address; the target:
# the honest figures with the attack at least ATTACK_TARGET of without.
ATTACKERS=${BENCH_ATTACKERS:-16}
ATTACK_RATE=${BENCH_ATTACK_RATE:-4}
ATTACK_SLOW=${BENCH_ATTACK_SLOW:-4}
# LONGCALL_WRITE_TIMEOUT of that server: shorter than an attack window (about
# 4 s), so that the slow readers are dropped and come back within each.
ATTACK_WT=${BENCH_ATTACK_WRITE_TIMEOUT:-2}
ATTACK_WINDOWS=4
ATTACK_TARGET=0.7
BIN=build/bench
LG=$BIN/loadgen
CC=${CC:-cc}
WARN="-std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes"
TICK=$(getconf CLK_TCK)
T_START=$(date +%s)

WORK=$(mktemp -d /tmp/longcall-bench.XXXXXX)
SERVER_PID=""   # lighttpd (leader of its own process group)
SERVER_KIDS=""  # its backends, remembered at start
SERVER_STATE="" # its state directory (the backends' sockets)
SERVER_ENV=""   # extra VAR=value settings for the next real server
LG_PID=""       # a load generator running in the background
EXTRA_LIGHTTPD="" # BENCH_NODES=2: the other nodes' lighttpd (SERVER_PID is node 1's)
NGINX_PID=""    # BENCH_NODES=2: the balancer in front of the nodes
# A server set aside (set_aside): the ceiling, kept up while the real server
# is measured, to be measured again after it (on_aside).
ASIDE_PID="" ASIDE_KIDS="" ASIDE_STATE="" ASIDE_LOG="" ASIDE_PORT="" ASIDE_EXTRA="" ASIDE_NGINX=""
PG_PID=""       # BENCH_STORE=pg: the postmaster, its folder, its port
PG_DIR=""
PG_PORT=""
DB_URI=""       # the database of the real server up now (BENCH_STORE=pg)
DB_N=0
ERRORS=0        # scenarios that reported errors or could not run

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# stop_lighttpd PID [KIDS...]: that server (its process group) and its
# children, by PID.
stop_lighttpd() {
    local pid=$1 kids
    shift
    kids="$* $(children "$pid")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null
    for k in $kids; do kill -KILL "$k" 2>/dev/null; done
    wait "$pid" 2>/dev/null
}

stop_server() {
    local pid
    for pid in $NGINX_PID $SERVER_PID $EXTRA_LIGHTTPD; do
        # shellcheck disable=SC2086
        stop_lighttpd "$pid" $SERVER_KIDS
    done
    SERVER_PID=""
    SERVER_KIDS=""
    EXTRA_LIGHTTPD=""
    NGINX_PID=""
    if [ -n "$DB_URI" ]; then # its database goes (the disk is shared)
        pg_sql "DROP DATABASE IF EXISTS ${DB_URI##*/} WITH (FORCE)" >/dev/null 2>&1
        DB_URI=""
    fi
}

# swap_server: exchanges the server up now (SERVER_PID, its kids, state, log,
# PORT, EXTRA_LIGHTTPD, NGINX_PID) with the one set aside. DB_URI stays: only
# a real server has one, and it is never set aside.
swap_server() {
    local a=$SERVER_PID b=$SERVER_KIDS c=$SERVER_STATE d=$SERVER_LOG e=${PORT:-} g=$EXTRA_LIGHTTPD h=$NGINX_PID
    SERVER_PID=$ASIDE_PID SERVER_KIDS=$ASIDE_KIDS SERVER_STATE=$ASIDE_STATE SERVER_LOG=$ASIDE_LOG
    PORT=$ASIDE_PORT EXTRA_LIGHTTPD=$ASIDE_EXTRA NGINX_PID=$ASIDE_NGINX
    ASIDE_PID=$a ASIDE_KIDS=$b ASIDE_STATE=$c ASIDE_LOG=$d ASIDE_PORT=$e ASIDE_EXTRA=$g ASIDE_NGINX=$h
}

# set_aside: the server up now keeps running but is set aside (none is set
# aside already); the next start_server starts another beside it.
set_aside() { swap_server; }

# on_aside CMD...: CMD (run_lg ...) against the server set aside, then back.
on_aside() {
    swap_server
    "$@"
    swap_server
}

# stop_aside: stops the server set aside (by PID, as stop_server), if any.
stop_aside() {
    [ -n "$ASIDE_PID" ] || return 0
    local db=$DB_URI
    DB_URI="" # the real server's database is not the ceiling's to drop
    swap_server
    stop_server
    swap_server
    DB_URI=$db
}

# BENCH_STORE=pg: SQL on the bench's PostgreSQL (database postgres).
PG_BIN_DIR=/usr/lib/postgresql/15/bin
PG_SETTINGS=""
pg_sql() {
    $PG_BIN_DIR/psql -X -q -A -t -v ON_ERROR_STOP=1 \
        -d "postgresql://postgres@127.0.0.1:$PG_PORT/postgres" -c "$1"
}

start_pg() {
    local line
    # shellcheck disable=SC2086
    line=$(python3 "$ROOT/tests/bench/pg.py" start $PG_EXTRA) || die "PostgreSQL did not start"
    read -r PG_PID PG_DIR PG_PORT <<<"$line"
    PG_SETTINGS=$(pg_sql "SELECT 'fsync ' || current_setting('fsync') || ', synchronous_commit ' || current_setting('synchronous_commit') || ', full_page_writes ' || current_setting('full_page_writes') || ', wal_sync_method ' || current_setting('wal_sync_method') || ', shared_buffers ' || current_setting('shared_buffers')")
    [ -z "$PG_EXTRA" ] || PG_SETTINGS="$PG_SETTINGS; BENCH_PG_SETTINGS: $PG_EXTRA"
    say "bench: PostgreSQL: postmaster pid $PG_PID, port $PG_PORT, $PG_DIR ($PG_SETTINGS)"
}

stop_pg() {
    [ -n "$PG_PID" ] || return 0
    kill -QUIT "$PG_PID" 2>/dev/null # immediate shutdown
    for _ in $(seq 100); do
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$PG_PID" 2>/dev/null
    PG_PID=""
    [ -z "$PG_DIR" ] || rm -rf "$PG_DIR"
    PG_DIR=""
}

cleanup() {
    if [ -n "$LG_PID" ]; then
        kill -TERM "$LG_PID" 2>/dev/null
        wait "$LG_PID" 2>/dev/null
        LG_PID=""
    fi
    stop_server
    stop_aside
    stop_pg
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'say "bench: interrupted"; exit 130' INT TERM

# ---- process figures from /proc ------------------------------------------

# PIDs whose parent is $1: pgrep (procps) when there, one process; else
# a walk over /proc (a sed and an awk per process: slow on a busy machine).
children() {
    if command -v pgrep >/dev/null; then
        pgrep -P "$1"
        return 0
    fi
    local d ppid
    for d in /proc/[0-9]*; do
        [ -r "$d/stat" ] || continue
        ppid=$(sed -e 's/^.*) //' "$d/stat" 2>/dev/null | awk '{print $2}')
        [ "$ppid" = "$1" ] && echo "${d#/proc/}"
    done
}

# The lighttpd of every node up now; their children (the backends); the
# balancer's processes (master, workers); PostgreSQL's (postmaster, its
# connections and workers). Empty when not running.
lighttpd_pids() { echo $SERVER_PID $EXTRA_LIGHTTPD; }
backend_pids() {
    local p
    for p in $SERVER_PID $EXTRA_LIGHTTPD; do children "$p"; done
}
nginx_pids() { [ -z "$NGINX_PID" ] || { echo "$NGINX_PID"; children "$NGINX_PID"; }; }
pg_pids() { [ -z "$PG_PID" ] || { echo "$PG_PID"; children "$PG_PID"; }; }

# Sum of utime+stime (clock ticks) of the given PIDs.
cpu_ticks() {
    local p sum=0 t
    for p in "$@"; do
        t=$(sed -e 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}

# "RSS_KB PSS_KB" summed over the given PIDs (smaps_rollup).
mem_kb() {
    local p rss=0 pss=0 r s
    for p in "$@"; do
        read -r r s < <(awk '/^Rss:/{r=$2} /^Pss:/{s=$2} END{print r+0, s+0}' \
            "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        rss=$((rss + ${r:-0}))
        pss=$((pss + ${s:-0}))
    done
    echo "$rss $pss"
}

# Busy clock ticks of the whole machine (all CPUs) from /proc/stat.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

now_ms() { date +%s%3N; }

# CPU % of one core used by PIDs between two tick counts over MS milliseconds.
cpu_pct() { awk -v a="$1" -v b="$2" -v ms="$3" -v hz="$TICK" \
    'BEGIN{ if (ms <= 0) ms = 1; printf "%.1f", (b - a) / hz * 100000 / ms }'; }

# Value of KEY in a loadgen output file.
kv() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

calc() { awk "BEGIN{ printf \"$1\", $2 }"; }

# ---- build ---------------------------------------------------------------

build() {
    if [ -z "${BENCH_NO_MAKE:-}" ]; then
        make --no-print-directory all >&2 || die "make failed"
    fi
    [ -x "$BACKEND" ] || die "$BACKEND is missing (run make)"
    mkdir -p "$BIN"
    local fcgi
    fcgi=$(pkg-config --cflags --libs fcgi 2>/dev/null) || fcgi=-lfcgi
    say "  CC    $BIN/ceiling"
    # shellcheck disable=SC2086
    $CC $WARN -O2 -g -D_GNU_SOURCE -o "$BIN/ceiling" tests/bench/ceiling.c $fcgi -lpthread ||
        die "ceiling did not build"
    say "  CC    $BIN/floor"
    local sqlite
    sqlite=$(pkg-config --cflags --libs sqlite3 2>/dev/null) || sqlite=-lsqlite3
    # shellcheck disable=SC2086
    $CC $WARN -O2 -g -D_GNU_SOURCE -o "$BIN/floor" tests/bench/floor.c fcgi/walvfs.c $sqlite ||
        die "floor did not build"
    say "  CC    $BIN/loadgen"
    # shellcheck disable=SC2086
    $CC $WARN -O2 -g -D_GNU_SOURCE -o "$LG" tests/bench/loadgen.c tests/bench/lg_*.c ||
        die "loadgen did not build"
}

# ---- servers -------------------------------------------------------------

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768-)
        port_free "$p" && { echo "$p"; return 0; }
    done
    return 1
}

# Waits until PATH on the server answers 200 (or lighttpd exits).
wait_ready() {
    local path=$1
    for _ in $(seq 150); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        "$LG" -p "$PORT" -c 1 -n 1 -w 0 -d 5 -u "$path" ceiling >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# start_lighttpd ceiling|real [NODE]: lighttpd in its own session, PID in
# SERVER_PID, port in PORT; the real backend on DB_URI when set.
start_lighttpd() {
    local kind=$1 node=${2:-} conf log ready state
    for attempt in 1 2 3; do
        PORT=$(pick_port) || die "no free port"
        state=$WORK/$kind$node-$attempt
        [ ! -e "$state" ] || state=$(mktemp -d "$WORK/$kind$node-$attempt.XXXX")
        mkdir -p "$state"
        log=$state/lighttpd.log
        if [ "$kind" = ceiling ]; then
            conf=$state/ceiling.conf
            cat >"$conf" <<EOF
# generated by tests/bench/run.sh: lighttpd + the no-work ceiling responder
server.modules += ( "mod_fastcgi" )
server.document-root = "$state"
server.bind = "127.0.0.1"
server.port = $PORT
server.max-fds = 20000
server.max-connections = 9900
fastcgi.server = ( "/ceiling" => ((
    "bin-path" => "$ROOT/$BIN/ceiling",
    "socket" => "$state/ceiling.sock",
    "max-procs" => $PROCS,
    "check-local" => "disable",
    "bin-environment" => ( "CEILING_THREADS" => "$CEIL_THREADS" ),
)))
EOF
            setsid lighttpd -D -f "$conf" >"$log" 2>&1 &
            ready=/ceiling
        else
            # exactly as tests/lib/harness.py starts it (on PostgreSQL: a
            # copy of the shipped file naming the database, as harness.py's
            # _pg_conf, and the wake file where SQLite's would be)
            conf=conf/lighttpd.conf
            local pgenv=""
            if [ -n "$DB_URI" ]; then
                conf=$state/lighttpd.conf
                sed "s|var.lc_state + \"/longcall.db\"|\"$DB_URI\"|" conf/lighttpd.conf >"$conf"
                pgenv="LONGCALL_WAKE_FILE=$state/longcall.db.wake"
            fi
            # shellcheck disable=SC2086
            env $SERVER_ENV $pgenv LONGCALL_ROOT="$ROOT" LONGCALL_BIN="$BACKEND" LONGCALL_STATE="$state" \
                LONGCALL_PORT="$PORT" LONGCALL_PROCS="$PROCS" \
                setsid lighttpd -D -f "$conf" >"$log" 2>&1 &
            ready=/rtc/status
        fi
        SERVER_PID=$!
        SERVER_LOG=$log
        SERVER_STATE=$state
        if wait_ready "$ready"; then
            sleep 0.3
            SERVER_KIDS=$(children "$SERVER_PID" | tr '\n' ' ')
            say "bench: $kind server: lighttpd pid $SERVER_PID, backends $SERVER_KIDS, port $PORT"
            return 0
        fi
        say "bench: $kind server did not come up (attempt $attempt):"
        tail -n 5 "$log" >&2
        stop_lighttpd "$SERVER_PID"
        SERVER_PID=""
    done
    die "could not start the $kind server"
}

# start_nginx PORT...: nginx on a free port (PORT), round-robin over the
# given nodes' ports with no stickiness, as tests/integration/test_nodes.py
# starts it, plus upstream keep-alive (without it each request is a new
# connection to a node: tens of thousands in TIME_WAIT in a run) and room
# for thousands of held polls; PID in NGINX_PID.
start_nginx() {
    local d=$WORK/nginx-$RANDOM ups="" p sub
    mkdir -p "$d"
    for sub in body proxy fastcgi scgi uwsgi; do
        mkdir -p "$d/$sub"
        chown www-data: "$d/$sub" 2>/dev/null
    done
    for p in "$@"; do ups="$ups        server 127.0.0.1:$p max_fails=0;
"; done
    PORT=$(pick_port) || die "no free port"
    cat >"$d/nginx.conf" <<EOF
# generated by tests/bench/run.sh: the balancer of BENCH_NODES=2
user www-data;
worker_processes auto;
worker_rlimit_nofile 50000;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    scgi_temp_path $d/scgi;
    uwsgi_temp_path $d/uwsgi;
    upstream nodes {
$ups        keepalive 256;
        # closed by nginx before lighttpd closes it (its
        # max-keep-alive-requests 1000, max-keep-alive-idle 5 s): else a
        # request sent on a connection lighttpd is closing gets a 502
        keepalive_requests 500;
        keepalive_timeout 4s;
    }
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location / {
            proxy_pass http://nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_buffering off;
            proxy_pass_header X-Accel-Buffering;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout;
            client_max_body_size 2m;
        }
    }
}
EOF
    setsid nginx -c "$d/nginx.conf" -e "$d/error.log" -g "daemon off;" >"$d/stderr.log" 2>&1 &
    NGINX_PID=$!
}

# start_server ceiling|real: one lighttpd (SERVER_PID), or with
# BENCH_NODES=2 two (SERVER_PID, EXTRA_LIGHTTPD) behind nginx (NGINX_PID);
# PORT is where the load generator goes. A real server on PostgreSQL gets a
# fresh database (DB_URI, dropped by stop_server).
start_server() {
    local kind=$1 n pids="" ports="" kids="" state="" logs="" ready=/ceiling
    if [ "$kind" = real ] && [ "$STORE" = pg ]; then
        DB_N=$((DB_N + 1))
        pg_sql "CREATE DATABASE lc_$DB_N" >/dev/null || die "CREATE DATABASE lc_$DB_N failed"
        DB_URI="postgresql://postgres@127.0.0.1:$PG_PORT/lc_$DB_N"
    fi
    if [ "$NODES" = 1 ]; then
        start_lighttpd "$kind"
        return
    fi
    for n in $(seq "$NODES"); do
        SERVER_PID=""
        start_lighttpd "$kind" "$n"
        pids="$pids $SERVER_PID" ports="$ports $PORT" kids="$kids $SERVER_KIDS" logs="$logs $SERVER_LOG"
        EXTRA_LIGHTTPD=$pids # stopped on exit from here on
        [ -n "$state" ] || state=$SERVER_STATE
    done
    read -r SERVER_PID EXTRA_LIGHTTPD <<<"$pids"
    EXTRA_LIGHTTPD=${EXTRA_LIGHTTPD:-}
    SERVER_KIDS=$kids SERVER_STATE=$state SERVER_LOG=${logs# }
    # shellcheck disable=SC2086
    start_nginx $ports
    [ "$kind" = real ] && ready=/rtc/status
    for _ in $(seq 150); do
        kill -0 "$NGINX_PID" 2>/dev/null || break
        if "$LG" -p "$PORT" -c 1 -n 1 -w 0 -d 5 -u "$ready" ceiling >/dev/null 2>&1; then
            sleep 0.3
            say "bench: $kind: nginx pid $NGINX_PID on port $PORT in front of ports$ports"
            return 0
        fi
        sleep 0.1
    done
    cat "$WORK"/nginx-*/stderr.log "$WORK"/nginx-*/error.log 2>/dev/null | tail -n 5 >&2
    die "nginx did not come up in front of the $kind nodes"
}

# Lines in the server log other than the usual start-up ones: backend
# warnings and errors, lighttpd complaints, a backend that died.
server_trouble() {
    # shellcheck disable=SC2086
    cat $SERVER_LOG 2>/dev/null | grep -vE "server started|(^| )level=(info|debug) " |
        sed -e 's/^[0-9-]* [0-9:]*: //' -e 's/^time=[^ ]* //' -e 's/ pid=[0-9]* / /' |
        sed -e 's/ count=[0-9]* / /' | sort | uniq -c |
        sort -rn | head -n 5 | sed "s/^ */$1: /; s/: \([0-9]*\) /: \1 x /"
}

# run_lg NAME ARGS...: loadgen in the foreground, output in $WORK/NAME.out,
# with lighttpd's and the backends' CPU % over the run in NAME.cpu.
run_lg() {
    local name=$1 out=$WORK/$1.out t0 t1 l0 l1 b0 b1 m0 m1 kids rc n0 n1 q0 q1
    shift
    kids=$(backend_pids)
    # shellcheck disable=SC2046,SC2086
    l0=$(cpu_ticks $(lighttpd_pids)) b0=$(cpu_ticks $kids) m0=$(machine_ticks) t0=$(now_ms)
    # shellcheck disable=SC2046
    n0=$(cpu_ticks $(nginx_pids)) q0=$(cpu_ticks $(pg_pids))
    # in the background and waited for, so that a signal stops it at once
    "$LG" -p "$PORT" "$@" >"$out" 2>"$WORK/$name.err" &
    LG_PID=$!
    wait "$LG_PID"
    rc=$?
    LG_PID=""
    # shellcheck disable=SC2046,SC2086
    l1=$(cpu_ticks $(lighttpd_pids)) b1=$(cpu_ticks $kids) m1=$(machine_ticks) t1=$(now_ms)
    # shellcheck disable=SC2046
    n1=$(cpu_ticks $(nginx_pids)) q1=$(cpu_ticks $(pg_pids))
    {
        echo "machine_cpu_pct=$(cpu_pct "$m0" "$m1" $((t1 - t0)))"
        echo "lighttpd_cpu_pct=$(cpu_pct "$l0" "$l1" $((t1 - t0)))"
        echo "backend_cpu_pct=$(cpu_pct "$b0" "$b1" $((t1 - t0)))"
        [ -z "$NGINX_PID" ] || echo "nginx_cpu_pct=$(cpu_pct "$n0" "$n1" $((t1 - t0)))"
        [ -z "$PG_PID" ] || echo "postgres_cpu_pct=$(cpu_pct "$q0" "$q1" $((t1 - t0)))"
    } >>"$out"
    grep '^# ' "$out" >&2
    if [ -s "$WORK/$name.err" ]; then head -n 5 "$WORK/$name.err" | sed 's/^/   /' >&2; fi
    if [ $rc -ne 0 ]; then
        say "bench: $name: loadgen exit status $rc"
        ERRORS=$((ERRORS + 1))
    fi
    return 0
}

# run_floor NAME: the store's floor (tests/bench/floor.c) in the work folder,
# on the file system the real servers' state is on: what one bare SQLite
# write transaction costs, the reference beside the ceiling's round trip.
run_floor() {
    local out=$WORK/$1.out
    if "$BIN/floor" "$WORK" 20000 >"$out" 2>"$WORK/$1.err"; then
        grep '^# ' "$out" >&2
    else
        say "bench: $1: floor failed: $(head -c 300 "$WORK/$1.err")"
        ERRORS=$((ERRORS + 1))
    fi
    return 0
}

# run_idle NAME N: loadgen idle N in the background; once the server counts
# all N held, measures backend memory and 10 s of CPU of backends, lighttpd.
run_idle() {
    local name=$1 n=$2 out=$WORK/$1.out kids base rss pss lrss lpss t0 t1 b0 b1 l0 l1 m0 m1 q0 q1 ok=0
    kids=$(backend_pids)
    # shellcheck disable=SC2086
    read -r base_rss base < <(mem_kb $kids)
    "$LG" -p "$PORT" -d 14 -L 150 idle "$n" >"$out" 2>"$WORK/$name.err" &
    LG_PID=$!
    for _ in $(seq 1200); do
        grep -q '^all_held=' "$out" 2>/dev/null && { ok=1; break; }
        kill -0 "$LG_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ $ok = 1 ] && [ "$(kv "$out" all_held)" = 1 ]; then
        sleep 1
        kids=$(backend_pids)
        # shellcheck disable=SC2086
        read -r rss pss < <(mem_kb $kids)
        # shellcheck disable=SC2046
        read -r lrss lpss < <(mem_kb $(lighttpd_pids))
        # shellcheck disable=SC2046,SC2086
        b0=$(cpu_ticks $kids) l0=$(cpu_ticks $(lighttpd_pids)) m0=$(machine_ticks) t0=$(now_ms)
        # shellcheck disable=SC2046
        q0=$(cpu_ticks $(pg_pids))
        sleep 10
        # shellcheck disable=SC2046,SC2086
        b1=$(cpu_ticks $kids) l1=$(cpu_ticks $(lighttpd_pids)) m1=$(machine_ticks) t1=$(now_ms)
        # shellcheck disable=SC2046
        q1=$(cpu_ticks $(pg_pids))
        {
            echo "base_backend_rss_kb=$base_rss"
            echo "base_backend_pss_kb=$base"
            echo "backend_rss_kb=$rss"
            echo "backend_pss_kb=$pss"
            echo "lighttpd_rss_kb=$lrss"
            echo "lighttpd_pss_kb=$lpss"
            echo "idle_backend_cpu_pct=$(cpu_pct "$b0" "$b1" $((t1 - t0)))"
            echo "idle_lighttpd_cpu_pct=$(cpu_pct "$l0" "$l1" $((t1 - t0)))"
            echo "idle_machine_cpu_pct=$(cpu_pct "$m0" "$m1" $((t1 - t0)))"
            [ -z "$PG_PID" ] || echo "idle_postgres_cpu_pct=$(cpu_pct "$q0" "$q1" $((t1 - t0)))"
            echo "measured=1"
        } >>"$WORK/$name.mem"
    else
        say "bench: $name: the polls were not all held"
        ERRORS=$((ERRORS + 1))
    fi
    wait "$LG_PID"
    local rc=$?
    LG_PID=""
    [ -f "$WORK/$name.mem" ] && cat "$WORK/$name.mem" >>"$out"
    grep '^# ' "$out" >&2
    if [ -s "$WORK/$name.err" ]; then head -n 5 "$WORK/$name.err" | sed 's/^/   /' >&2; fi
    if [ $rc -ne 0 ]; then
        say "bench: $name: loadgen exit status $rc"
        ERRORS=$((ERRORS + 1))
    fi
}

# backend_sockets: socks=(-U SOCKET ...), every backend socket of the
# server started last (lighttpd's bin-path makes one per process:
# longcall.sock-0, -1, ...).
backend_sockets() {
    local s
    socks=()
    for s in "$SERVER_STATE"/longcall.sock*; do
        [ -S "$s" ] && socks+=(-U "$s")
    done
}

# run_slow: the slow-readers scenario on a fresh real server whose
# LONGCALL_WRITE_TIMEOUT is SLOW_WT; loadgen gets every backend socket
# (lighttpd's bin-path makes one per process: longcall.sock-0, -1, ...).
run_slow() {
    SERVER_ENV="LONGCALL_WRITE_TIMEOUT=$SLOW_WT"
    start_server real
    SERVER_ENV=""
    backend_sockets
    if [ ${#socks[@]} -eq 0 ]; then
        say "bench: slow: no backend socket in $SERVER_STATE"
        ERRORS=$((ERRORS + 1))
    else
        run_lg slow -k 1000 -r 500 -d 15 -D $((SLOW_WT + 10)) -L 90 "${socks[@]}" slow "$SLOW_N"
    fi
    # the drops are the scenario's point, not trouble
    TROUBLE_E=$(server_trouble slow | grep -v "took no part of an answer")
    stop_server
}

# run_attack: the under-attack scenario on a fresh real server (the
# backend's defaults -- LONGCALL_LIST_RATE, the call limits -- but
# LONGCALL_WRITE_TIMEOUT=ATTACK_WT and the per-address limits, out of the way
# as for every scenario here since the honest clients are all 127.0.0.1).
run_attack() {
    SERVER_ENV="LONGCALL_WRITE_TIMEOUT=$ATTACK_WT"
    start_server real
    SERVER_ENV=""
    backend_sockets
    if [ ${#socks[@]} -eq 0 ]; then
        say "bench: attack: no backend socket in $SERVER_STATE"
        ERRORS=$((ERRORS + 1))
    else
        run_lg attack -k 1000 -d "$DUR" -P 32 -R "$ATTACK_SLOW" -A "$ATTACK_RATE" \
            -W "$ATTACK_WINDOWS" -L 150 \
            "${socks[@]}" attack "$ATTACKERS"
    fi
    # the limits' summary lines and the slow readers' drops are the
    # scenario's point: counted, not listed as trouble
    ATTACK_LOG=$(grep -cE "at most one such line per client a minute" "$SERVER_LOG" 2>/dev/null)
    TROUBLE_F=$(server_trouble attack | grep -vE "took no part of an answer|at most one such line per client a minute")
    stop_server
}

# run_exchange SFX: on the real server up now, the exchange relay latency in
# ping-pong (pairs 1 -x: one message at a time, round trip / 2) and pairs 32
# -x. (The quiet one, latency -x, runs right after the two-request latency,
# before any pairs run, so that the two quiet figures are taken side by side
# on the same database and machine state.)
run_exchange() {
    run_lg "xlat$1" -d 5 -L 60 -x pairs 1
    run_lg "pairsx32$1" -d "$DUR" -L 90 -x pairs 32
}

# run_callsetup SFX P...: a fresh real server with the call limits out of the
# way (CALL_ENV); callsetup P in two-request mode (csP), then in exchange
# mode as LongPollSocket batches (csxP: what the application queues in one
# turn leaves together; a batch queued while an exchange is held leaves with
# prev= once what is queued in the same turn joined it, SECOND_AFTER = 0),
# for each P.
run_callsetup() {
    local sfx=$1 p t
    shift
    SERVER_ENV=$CALL_ENV
    start_server real
    SERVER_ENV=""
    run_lg "warmcs$sfx" -c 32 -d 3 -w 1 -u /rtc/status ceiling
    for p in "$@"; do
        run_lg "cs$p$sfx" -d "$DUR" -L 90 callsetup "$p"
        run_lg "csx$p$sfx" -d "$DUR" -L 90 -x -X 0 callsetup "$p"
    done
    # once, for comparison: the library before it gathered a turn's messages
    # (-I: the first message leaves alone), in both modes; two-request -I is
    # the client before issue 14
    if [ -z "$sfx" ]; then
        run_lg csi32 -d "$DUR" -L 90 -I callsetup 32
        run_lg csxi32 -d "$DUR" -L 90 -x -X 0 -I callsetup 32
    fi
    t=$(server_trouble "callsetup$sfx")
    [ -z "$t" ] || TROUBLE_G="$TROUBLE_G${TROUBLE_G:+
}$t"
    stop_server
}

# ---- the run -------------------------------------------------------------

ulimit -n 20000 2>/dev/null || {
    say "bench: cannot raise the open-file limit to 20000 (hard limit $(ulimit -Hn)); using it"
    ulimit -n "$(ulimit -Hn)"
}
command -v lighttpd >/dev/null || die "lighttpd is not installed (make deps)"
# What was built: the commit, and whether the backend's sources differed.
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=""
if git status --porcelain -- fcgi db conf Makefile 2>/dev/null | grep -q .; then
    DIRTY=" + uncommitted changes in fcgi/, db/, conf/ or Makefile"
fi
build
say "bench: backend $BACKEND"
if [ "$STORE" = pg ]; then
    start_pg
    say "bench: store PostgreSQL, $NODES node(s)"
fi

# How busy the machine already is (other processes): the figures below
# share its cores with whatever this shows.
M0=$(machine_ticks) T0=$(now_ms)
sleep 2
PRE_BUSY=$(cpu_pct "$M0" "$(machine_ticks)" $(($(now_ms) - T0)))
say "bench: machine busy before the run: $PRE_BUSY% of $(($(nproc) * 100))%"

TROUBLE_A="" TROUBLE_B="" TROUBLE_C="" TROUBLE_D="" TROUBLE_E="" TROUBLE_F="" TROUBLE_G="" ATTACK_LOG=""
# every figure of the main part (not only exchange's subset)
FULL=""
[ -n "$ONLY" ] && [ "$ONLY" != store ] || FULL=1
if [ -z "$ONLY" ] || [ "$ONLY" = exchange ] || [ "$ONLY" = store ]; then
say "== ceiling: lighttpd + a no-work FastCGI responder (max-procs $PROCS, $CEIL_THREADS threads each)"
start_server ceiling
run_lg ceil1 -c 1 -d 5 -w 1 -u /ceiling ceiling
run_lg ceil32 -c 32 -d "$DUR" -w 1 -u /ceiling ceiling
set_aside # measured again after the real server's figures (ceil1b, ceil32b)
run_floor floor

say "== real backend: conf/lighttpd.conf, build/longcall (max-procs $PROCS)"
start_server real
run_lg status32 -c 32 -d 5 -w 1 -u /rtc/status ceiling
run_lg latency -k 2000 -L 60 latency
run_lg xlatq -k 2000 -L 60 -x latency
if [ -n "$FULL" ]; then P_LIST="1 8 32 128"; else P_LIST="1 32"; fi
for p in $P_LIST; do
    run_lg "pairs$p" -d "$DUR" -L 90 pairs "$p"
done
say "== exchanges: relay latency (pairs 1 -x, round trip / 2), pairs 1/8/32/128 -x (same server)"
run_lg xlat -d 5 -L 60 -x pairs 1
for p in 1 8 32 128; do
    run_lg "pairsx$p" -d "$DUR" -L 90 -x pairs "$p"
done
TROUBLE_A=$(server_trouble latency+pairs)
say "== ceiling again (the server set aside), after the real server's figures"
on_aside run_lg ceil1b -c 1 -d 5 -w 1 -u /ceiling ceiling
on_aside run_lg ceil32b -c 32 -d "$DUR" -w 1 -u /ceiling ceiling
stop_server
stop_aside

# More rounds of the two ratio targets: ceiling, then the real backend's
# latency and pairs 32, again and again. This machine's speed moves by a
# third between minutes, so one pair of runs decides little; the verdict is
# on the median of the rounds' ratios, each ratio taken within its round.
for r in $(seq 2 "$ROUNDS"); do
    say "== round $r of $ROUNDS: ceiling, then latency and pairs 32, then the ceiling again (fresh servers)"
    start_server ceiling
    run_lg "ceil1_r$r" -c 1 -d 5 -w 1 -u /ceiling ceiling
    run_lg "ceil32_r$r" -c 32 -d "$DUR" -w 1 -u /ceiling ceiling
    set_aside
    run_floor "floor_r$r"
    start_server real
    # as round 1, where latency follows 5 s of GET /rtc/status: a fresh
    # backend's first seconds are slower (caches, allocator)
    run_lg "warm_r$r" -c 32 -d 5 -w 1 -u /rtc/status ceiling
    [ -z "$FULL" ] || run_lg "latency_r$r" -k 2000 -L 60 latency
    run_lg "xlatq_r$r" -k 2000 -L 60 -x latency
    [ -z "$FULL" ] || run_lg "pairs32_r$r" -d "$DUR" -L 90 pairs 32
    run_exchange "_r$r"
    t=$(server_trouble "round $r")
    [ -z "$t" ] || TROUBLE_A="$TROUBLE_A${TROUBLE_A:+
}$t"
    on_aside run_lg "ceil1b_r$r" -c 1 -d 5 -w 1 -u /ceiling ceiling
    on_aside run_lg "ceil32b_r$r" -c 32 -d "$DUR" -w 1 -u /ceiling ceiling
    stop_server
    stop_aside
done

say "== call set-ups: callsetup 1/8/32/128, two-request then exchange mode (fresh server; $CALL_ENV)"
run_callsetup "" 1 8 32 128
for r in $(seq 2 "$ROUNDS"); do
    say "== call set-ups, round $r of $ROUNDS: callsetup 32 in both modes (fresh server)"
    run_callsetup "_r$r" 32
done
fi

# Not with two nodes: the load generator counts held polls through
# /rtc/status, and each node counts only its own.
if { [ -z "$ONLY" ] || [ "$ONLY" = store ]; } && [ "$NODES" = 1 ]; then
say "== 1000 idle held polls (fresh server)"
start_server real
run_idle idle1000 1000
TROUBLE_B=$(server_trouble idle1000)
stop_server
fi

if [ -z "$ONLY" ]; then

say "== 5000 idle held polls (fresh server)"
start_server real
run_idle idle5000 5000
TROUBLE_C=$(server_trouble idle5000)
stop_server

say "== fan-out to 5000 held polls (fresh server)"
start_server real
run_lg fanout5000 -s 16 -L 120 fanout 5000
TROUBLE_D=$(server_trouble fanout5000)
stop_server
fi

if [ -z "$ONLY" ] || [ "$ONLY" = slow ]; then
    say "== slow readers: $SLOW_N FastCGI connections never read a 240 KB poll answer (fresh server, LONGCALL_WRITE_TIMEOUT=$SLOW_WT)"
    run_slow
fi
if [ -z "$ONLY" ] || [ "$ONLY" = attack ]; then
    say "== under attack: relay latency and pairs 32 without, then with $ATTACKERS attackers on 127.0.0.2.. (list, call: $ATTACK_RATE requests/s each; $ATTACK_SLOW slow readers each; fresh server)"
    run_attack
fi

# ---- the table -----------------------------------------------------------

f() { local v; v=$(kv "$WORK/$1.out" "$2" 2>/dev/null); echo "${v:-n/a}"; }
isnum() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
# ratio_of A B: A / B to two places (no newline), n/a unless both are numbers
ratio_of() { if isnum "$1" && isnum "$2"; then calc "%.2f" "$1 / ($2 > 0 ? $2 : 1)"; else printf n/a; fi; }
# verdict A OP B: PASS/MISS (n/a when a figure is missing)
verdict() {
    if ! isnum "$1" || ! isnum "$3"; then
        echo "n/a"
        return
    fi
    awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN{
        ok = (op == "<=") ? (a <= b) : (a >= b); print ok ? "PASS" : "MISS" }'
}

# ceil_of N SFX FIELD: the ceiling's FIELD (of ceilN in round SFX, "" or
# _rN) as a round's ratios take it: the mean of its measurement before the
# real server's figures and the one after them (ceilNb), which bracket them
# in time; the one there is if only one is; n/a if none.
ceil_of() {
    local a b
    a=$(f "ceil$1$2" "$3") b=$(f "ceil$1b$2" "$3")
    if isnum "$a" && isnum "$b"; then calc "%.1f" "($a + $b) / 2"
    elif isnum "$a"; then printf '%s' "$a"
    else printf '%s' "$b"; fi
}
# ceil_cell N SFX FIELD: "before / after (mean M)" for a table cell.
ceil_cell() { printf '%s / %s (mean %s)' "$(f "ceil$1$2" "$3")" "$(f "ceil$1b$2" "$3")" "$(ceil_of "$@")"; }
R_P50=$(f latency relay_p50_us)
P32=$(f pairs32 msgs_per_s)
# round_ratio R: "latency_ratio pairs32_percent" of round R (n/a if missing)
round_ratio() {
    local s=""
    [ "$1" = 1 ] || s=_r$1
    local c1 c32 l p
    c1=$(ceil_of 1 "$s" rtt_p50_us) c32=$(ceil_of 32 "$s" rps) l=$(f "latency$s" relay_p50_us)
    p=$(f "pairs32$s" msgs_per_s)
    if isnum "$c1" && isnum "$l"; then calc "%.2f" "$l / ($c1 > 0 ? $c1 : 1)"; else printf n/a; fi
    printf ' '
    if isnum "$c32" && isnum "$p"; then calc "%.1f" "100 * $p / ($c32 > 0 ? $c32 : 1)"; else printf n/a; fi
    echo
}
# median of numbers on stdin (n/a lines ignored; n/a when none)
median() { grep -E '^[0-9.]+$' | sort -g | awk '{v[NR]=$1} END{
    if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'; }
LAT_ROUNDS="" P32_ROUNDS=""
for r in $(seq 1 "$ROUNDS"); do
    read -r rl rp < <(round_ratio "$r")
    LAT_ROUNDS="$LAT_ROUNDS $rl" P32_ROUNDS="$P32_ROUNDS $rp"
    echo "round${r}.latency_ratio=$rl" >>"$WORK/rounds.out"
    echo "round${r}.pairs32_pct=$rp" >>"$WORK/rounds.out"
done
LAT_ROUNDS=${LAT_ROUNDS# } P32_ROUNDS=${P32_ROUNDS# }
I5_PSS=$(f idle5000 backend_pss_kb)
I5_CPU=$(f idle5000 idle_backend_cpu_pct)

RATIO_LAT=$(tr ' ' '\n' <<<"$LAT_ROUNDS" | median)
RATIO_P32=$(tr ' ' '\n' <<<"$P32_ROUNDS" | median)
{ echo "latency_ratio_median=$RATIO_LAT"; echo "pairs32_pct_median=$RATIO_P32"; } >>"$WORK/rounds.out"
PER_POLL5=$(isnum "$I5_PSS" && calc "%.1f" "$I5_PSS / 5000" || echo n/a)
PER_POLL1=$(isnum "$(f idle1000 backend_pss_kb)" && calc "%.1f" "$(f idle1000 backend_pss_kb) / 1000" || echo n/a)
MARG5=$(isnum "$I5_PSS" && isnum "$(f idle5000 base_backend_pss_kb)" &&
    calc "%.2f" "($I5_PSS - $(f idle5000 base_backend_pss_kb)) / 5000" || echo n/a)
LPP5=$(isnum "$(f idle5000 lighttpd_pss_kb)" && calc "%.1f" "$(f idle5000 lighttpd_pss_kb) / 5000" || echo n/a)

V_LAT=$(verdict "$RATIO_LAT" "<=" 2)
V_P32=$(verdict "$RATIO_P32" ">=" 40)
V_MEM=$(verdict "$PER_POLL5" "<=" 12)
V_CPU=$(verdict "$I5_CPU" "<=" 1.0)

NCPU=$(nproc)
cpu_of() {
    local x=""
    [ "$(f "$1" nginx_cpu_pct)" = n/a ] || x="$x, nginx $(f "$1" nginx_cpu_pct)%"
    [ "$(f "$1" postgres_cpu_pct)" = n/a ] || x="$x, postgres $(f "$1" postgres_cpu_pct)%"
    echo "lighttpd $(f "$1" lighttpd_cpu_pct)%, backends $(f "$1" backend_cpu_pct)%$x, loadgen $(f "$1" loadgen_cpu_pct)%; machine $(f "$1" machine_cpu_pct)% of $((NCPU * 100))%"
}
pairs_row() {
    echo "| pairs $1: relayed messages/s | **$(f "pairs$1" msgs_per_s) msg/s** (relay p50 $(f "pairs$1" relay_p50_us) µs, p99 $(f "pairs$1" relay_p99_us) µs; send/poll errors $(f "pairs$1" send_errors)/$(f "pairs$1" poll_errors); pairs stopped by a lost message $(f "pairs$1" lost)) | $2 | $3 | $4 | $(cpu_of "pairs$1") |"
}

# slow_verdict WHAT: PASS when the attack's p50 of WHAT (relay|status) is
# within 2x of the same run's without it, every message was relayed and
# nothing lost (the big mailbox whole, every status answered); n/a without
# figures.
slow_verdict() {
    local r v
    r=$(f slow "$1_p50_ratio")
    isnum "$r" || { echo n/a; return; }
    v=$(verdict "$r" "<=" 2)
    if [ "$r" = 0.00 ] || [ "$(f slow base_lost)$(f slow attack_lost)" != 00 ] ||
        [ "$(f slow base_errors)$(f slow attack_errors)" != 00 ] ||
        [ "$(f slow mailbox_intact)" != 1 ] ||
        { [ "$1" = status ] && [ "$(f slow base_status_unanswered)$(f slow attack_status_unanswered)" != 00 ]; }; then
        v=MISS
    fi
    echo "$v"
}
slow_rows() {
    local drops
    drops="dropped by the backend: $(f slow dropped_during) during the measurement, $(f slow dropped_slow) in all (LONGCALL_WRITE_TIMEOUT=$SLOW_WT s)"
    [ "$(f slow dropped_slow)" = -1 ] && drops="this backend counts no drops (no dropped_slow)"
    echo "| slow readers: relay latency A -> B, without / with $(f slow attackers) FastCGI connections that never read a 240 KB poll answer | p50 $(f slow base_relay_p50_us) / **$(f slow attack_relay_p50_us) µs** (x$(f slow relay_p50_ratio)), p99 $(f slow base_relay_p99_us) / $(f slow attack_relay_p99_us) µs; $(f slow base_messages) / $(f slow attack_messages) messages relayed, $(f slow base_lost) / $(f slow attack_lost) lost; $(f slow attackers_answered) of $(f slow attackers) answers begun and stalled ($(f slow attack_unread_kb) KB unread), $drops; big mailbox whole afterwards: $(f slow mailbox_intact) | p50 with <= 2x without, nothing lost | | **$(slow_verdict relay)** | $(cpu_of slow) |"
    echo "| slow readers: GET /rtc/status round trip, without / with | p50 $(f slow base_status_p50_us) / **$(f slow attack_status_p50_us) µs** (x$(f slow status_p50_ratio)), p99 $(f slow base_status_p99_us) / $(f slow attack_status_p99_us) µs; unanswered $(f slow base_status_unanswered) / $(f slow attack_status_unanswered) of 500 | p50 with <= 2x without, all answered | | **$(slow_verdict status)** | |"
}

# attack_verdict relay|pairs: PASS when the attack run's figure is within
# the target of the same run's without it (relay p50: with x 0.7 <=
# without; pairs: with >= 0.7 x without) and nothing was lost or failed.
attack_verdict() {
    local b a v
    if [ "$1" = relay ]; then
        b=$(f attack base_relay_p50_us) a=$(f attack attack_relay_p50_us)
        isnum "$a" && isnum "$b" || { echo n/a; return; }
        v=$(verdict "$(calc "%.2f" "$a * $ATTACK_TARGET")" "<=" "$b")
    else
        b=$(f attack base_pairs_msgs_per_s) a=$(f attack attack_pairs_msgs_per_s)
        isnum "$a" && isnum "$b" || { echo n/a; return; }
        v=$(verdict "$a" ">=" "$(calc "%.2f" "$b * $ATTACK_TARGET")")
    fi
    local k bad=0
    for k in relay_lost relay_errors pairs_lost pairs_send_errors pairs_poll_errors; do
        [ "$(f attack "base_$k")$(f attack "attack_$k")" = 00 ] || bad=1
    done
    { [ "$(f attack attack_ran)" = "$ATTACK_WINDOWS" ] && [ "$(f attack attackers_exit)" = 0 ]; } || bad=1
    [ $bad = 0 ] || v=MISS
    echo "$v"
}
attack_rows() {
    local pct
    pct=$(calc "%.0f" "$ATTACK_TARGET * 100")
    echo "| under attack: relay latency A -> B, without / with $(f attack attackers) attackers | p50 $(f attack base_relay_p50_us) / **$(f attack attack_relay_p50_us) µs** (x$(f attack relay_p50_ratio)), p99 $(f attack base_relay_p99_us) / $(f attack attack_relay_p99_us) µs; $(f attack base_relay_messages) / $(f attack attack_relay_messages) messages, $(f attack base_relay_lost) / $(f attack attack_relay_lost) lost, $(f attack base_relay_errors) / $(f attack attack_relay_errors) failed | p50 with <= without / $ATTACK_TARGET (>= $pct% of the speed), nothing lost | | **$(attack_verdict relay)** | $(cpu_of attack) |"
    echo "| under attack: pairs $(f attack pairs) relayed messages/s, without / with | $(f attack base_pairs_msgs_per_s) / **$(f attack attack_pairs_msgs_per_s) msg/s** (x$(f attack pairs_rate_ratio)); relay p50 $(f attack base_pairs_relay_p50_us) / $(f attack attack_pairs_relay_p50_us) µs; lost $(f attack base_pairs_lost) / $(f attack attack_pairs_lost), send/poll errors $(f attack base_pairs_send_errors)/$(f attack base_pairs_poll_errors) / $(f attack attack_pairs_send_errors)/$(f attack attack_pairs_poll_errors) | with >= $ATTACK_TARGET x without, nothing lost | | **$(attack_verdict pairs)** | attackers' process $(f attack attacker_cpu_pct)% |"
    echo "| under attack: the attack ($(f attack attack_ran) windows, $(f attack attack_secs) s in all; LONGCALL_WRITE_TIMEOUT=$ATTACK_WT; each of $(f attack attackers) addresses: $ATTACK_RATE list + $ATTACK_RATE call + $ATTACK_RATE poll requests/s, $ATTACK_SLOW slow readers) | $(f attack attack_list_requests) list requests ($(f attack attack_lists) lists: $(f attack attack_lists_answered) answered, $(f attack attack_lists_refused) refused -- list_once $(f attack attack_lists_refused_once), rate_limited $(f attack attack_lists_refused_rate)); $(f attack attack_call_requests) call requests ($(f attack attack_calls) calls, each followed by a stop: refused $(f attack attack_calls_refused) -- $(f attack attack_calls_refused_by); $(f attack attack_incoming_calls) rang another attacker); HTTP 429: $(f attack attack_list_http_429) / $(f attack attack_call_http_429) / $(f attack attack_poll_http_429) (list/call/poll), other non-200: $(f attack attack_list_http_other) / $(f attack attack_call_http_other) / $(f attack attack_poll_http_other); slow readers: $(f attack attack_slow_opened) opened, at most $(f attack attack_slow_stalled_max) of $(f attack attack_slow_readers) stalled at once, $(f attack attack_slow_dropped) dropped by the backend ($(f attack dropped_slow_during) counted in /rtc/status during the measurement); ${ATTACK_LOG:-0} warning lines in the server log | | | | |"
}

# xround_ratio R: "xlat_ratio pairsx32_percent callsetup32_ratio
# pingpong_ratio" of round R (the quiet one-way exchange relay p50, latency
# -x / ceiling round trip p50; pairs 32 -x msg/s / ceiling req/s; callsetup
# 32 set-ups/s exchange / two-request; the exchange relay in ping-pong,
# pairs 1 -x round trip / 2 / ceiling round trip p50), n/a if missing.
xround_ratio() {
    local s=""
    [ "$1" = 1 ] || s=_r$1
    local c1 c32 xq xl px cs csx
    c1=$(ceil_of 1 "$s" rtt_p50_us) c32=$(ceil_of 32 "$s" rps) xl=$(f "xlat$s" oneway_p50_us)
    xq=$(f "xlatq$s" relay_p50_us)
    px=$(f "pairsx32$s" msgs_per_s) cs=$(f "cs32$s" setups_per_s) csx=$(f "csx32$s" setups_per_s)
    ratio_of "$xq" "$c1"
    printf ' '
    if isnum "$c32" && isnum "$px"; then calc "%.1f" "100 * $px / ($c32 > 0 ? $c32 : 1)"; else printf n/a; fi
    printf ' '
    ratio_of "$csx" "$cs"
    printf ' '
    ratio_of "$xl" "$c1"
    echo
}
XLAT_ROUNDS="" XP32_ROUNDS="" CS_ROUNDS="" CSREQ_ROUNDS="" XPP_ROUNDS=""
for r in $(seq 1 "$ROUNDS"); do
    read -r xl xp xc xpp < <(xround_ratio "$r")
    sfx=""
    [ "$r" = 1 ] || sfx=_r$r
    XLAT_ROUNDS="$XLAT_ROUNDS $xl" XP32_ROUNDS="$XP32_ROUNDS $xp" CS_ROUNDS="$CS_ROUNDS $xc"
    XPP_ROUNDS="$XPP_ROUNDS $xpp"
    CSREQ_ROUNDS="$CSREQ_ROUNDS $(f "csx32$sfx" requests_per_setup)"
    {
        echo "round${r}.xlatency_ratio=$xl"
        echo "round${r}.xpingpong_ratio=$xpp"
        echo "round${r}.pairsx32_pct=$xp"
        echo "round${r}.callsetup32_ratio=$xc"
    } >>"$WORK/rounds.out"
done
XLAT_ROUNDS=${XLAT_ROUNDS# } XP32_ROUNDS=${XP32_ROUNDS# } CS_ROUNDS=${CS_ROUNDS# } CSREQ_ROUNDS=${CSREQ_ROUNDS# }
XPP_ROUNDS=${XPP_ROUNDS# }
RATIO_XLAT=$(tr ' ' '\n' <<<"$XLAT_ROUNDS" | median)
RATIO_XPP=$(tr ' ' '\n' <<<"$XPP_ROUNDS" | median)
RATIO_XP32=$(tr ' ' '\n' <<<"$XP32_ROUNDS" | median)
RATIO_CS=$(tr ' ' '\n' <<<"$CS_ROUNDS" | median)
CS_REQ=$(tr ' ' '\n' <<<"$CSREQ_ROUNDS" | median)
CS_TAIL=n/a
if isnum "$(f csx128 setup_p99_us)" && isnum "$(f csx128 setup_p50_us)"; then
    CS_TAIL=$(calc "%.2f" "$(f csx128 setup_p99_us) / ($(f csx128 setup_p50_us) > 0 ? $(f csx128 setup_p50_us) : 1)")
fi
{
    echo "xlatency_ratio_median=$RATIO_XLAT"
    echo "xpingpong_ratio_median=$RATIO_XPP"
    echo "pairsx32_pct_median=$RATIO_XP32"
    echo "callsetup32_ratio_median=$RATIO_CS"
    echo "callsetup32_requests_median=$CS_REQ"
    echo "callsetup128_tail_ratio=$CS_TAIL"
} >>"$WORK/rounds.out"
V_XLAT=$(verdict "$RATIO_XLAT" "<=" "$XLAT_TARGET")
V_XP32=$(verdict "$RATIO_XP32" ">=" "$XPAIRS_TARGET")
V_CS=$(verdict "$RATIO_CS" ">=" "$CS_TARGET")
V_CSREQ=$(verdict "$CS_REQ" "<=" "$CS_REQ_TARGET")
V_TAIL=$(verdict "$CS_TAIL" "<=" "$CS_TAIL_TARGET")
ms() { if isnum "$1"; then calc "%.2f" "$1 / 1000"; else echo n/a; fi; }
# server CPU (lighttpd + backends) per set-up of run $1, ms (approximate:
# the CPU % covers the whole loadgen run, session setup included)
cpu_per_setup() {
    local l b r
    l=$(f "$1" lighttpd_cpu_pct) b=$(f "$1" backend_cpu_pct) r=$(f "$1" setups_per_s)
    if isnum "$l" && isnum "$b" && isnum "$r" && [ "$r" != 0.0 ]; then
        calc "%.2f" "($l + $b) * 10 / $r"
    else
        echo n/a
    fi
}
# floor_bound SFX: the ceiling's round trip + the floor's transaction p50 of
# round SFX ("" or _rN), over the ceiling's round trip: the least ratio a
# relay that commits once can have here (n/a if missing).
floor_bound() {
    local c1 fl
    c1=$(ceil_of 1 "$1" rtt_p50_us) fl=$(f "floor$1" txn_p50_us)
    if isnum "$c1" && isnum "$fl"; then ratio_of "$(calc "%.1f" "$c1 + $fl")" "$c1"; else printf n/a; fi
}
floor_row() {
    echo "| store floor: one bare SQLite write transaction (BEGIN IMMEDIATE, an UPDATE, a 200-byte INSERT, COMMIT; walvfs, 1 KiB pages, WAL, synchronous=NORMAL; tests/bench/floor.c), on the state's file system | p50 $(f floor txn_p50_us) µs (BEGIN $(f floor begin_p50_us), COMMIT $(f floor commit_p50_us); CPU $(f floor cpu_p50_us) µs), p99 $(f floor txn_p99_us) µs | | reference: a relay that commits once is at least the ceiling's round trip + this, $(floor_bound "")x | | |"
}
exchange_rows() {
    local p tgt rat v
    echo "| exchange relay latency: A's exchange -> B's held poll, quiet, one at a time (latency -x: as the relay latency row, A's send an exchange with timeout=0) | p50 **$(f xlatq relay_p50_us) µs**, p90 $(f xlatq relay_p90_us) µs, p99 $(f xlatq relay_p99_us) µs ($(f xlatq messages) messages, $(f xlatq lost) lost, $(f xlatq bad_answers) bad answers; A's exchange round trip p50 $(f xlatq send_p50_us) µs; two-request mode, the same measure: $(f latency relay_p50_us) µs) | p50 <= ${XLAT_TARGET}x ceiling round trip p50 (median of $ROUNDS rounds) | ${RATIO_XLAT}x (rounds: ${XLAT_ROUNDS// /, }) | **$V_XLAT** | $(cpu_of xlatq) |"
    echo "| exchange relay latency in ping-pong: one message at a time, round trip / 2 (pairs 1 -x, the issue's W1) | p50 $(f xlat oneway_p50_us) µs, p99 $(f xlat oneway_p99_us) µs (round trip p50 $(f xlat round_p50_us) µs; $(f xlat messages) messages, $(f xlat requests_per_msg) requests each, $(f xlat lost) lost; two-request mode, the same measure: $(f pairs1 oneway_p50_us) µs) | (for comparison) | ${RATIO_XPP}x (rounds: ${XPP_ROUNDS// /, }) | | $(cpu_of xlat) |"
    for p in 1 8 32 128; do
        tgt="" rat="" v=""
        if [ "$p" = 32 ]; then
            tgt=">= $XPAIRS_TARGET% of ceiling req/s (median of $ROUNDS rounds)"
            rat="${RATIO_XP32}% (rounds: ${XP32_ROUNDS// /, })"
            v="**$V_XP32**"
        fi
        echo "| pairs $p, exchange mode: relayed messages/s | **$(f "pairsx$p" msgs_per_s) msg/s** (two-request: $(f "pairs$p" msgs_per_s)); $(f "pairsx$p" requests_per_msg) requests per message (two-request: $(f "pairs$p" requests_per_msg)); relay p50 $(f "pairsx$p" relay_p50_us) µs, p99 $(f "pairsx$p" relay_p99_us) µs; errors $(f "pairsx$p" send_errors)/$(f "pairsx$p" poll_errors), lost $(f "pairsx$p" lost) | $tgt | $rat | $v | $(cpu_of "pairsx$p") |"
    done
    for p in 1 8 32 128; do
        tgt="" rat="" v=""
        if [ "$p" = 32 ]; then
            tgt="exchange >= ${CS_TARGET}x two-request (median of $ROUNDS rounds)"
            rat="${RATIO_CS}x (rounds: ${CS_ROUNDS// /, })"
            v="**$V_CS**"
        fi
        if [ "$p" = 128 ]; then
            tgt="exchange p99 <= ${CS_TAIL_TARGET}x its p50"
            rat="p99 / p50 = ${CS_TAIL}"
            v="**$V_TAIL**"
        fi
        echo "| call set-ups, $p pair(s) back to back: set-ups/s, two-request / exchange | $(f "cs$p" setups_per_s) / **$(f "csx$p" setups_per_s)** set-ups/s; set-up p50 $(ms "$(f "cs$p" setup_p50_us)") / **$(ms "$(f "csx$p" setup_p50_us)") ms**, p99 $(ms "$(f "cs$p" setup_p99_us)") / $(ms "$(f "csx$p" setup_p99_us)") ms; requests per set-up $(f "cs$p" requests_per_setup) ($(f "cs$p" polls_per_setup) polls + $(f "cs$p" sends_per_setup) sends) / $(f "csx$p" requests_per_setup) ($(f "csx$p" polls_per_setup) polls + $(f "csx$p" exchanges_per_setup) exchanges, $(f "csx$p" out_of_order) out_of_order retries); server CPU per set-up about $(cpu_per_setup "cs$p") / $(cpu_per_setup "csx$p") ms; stalled $(f "cs$p" stalled) / $(f "csx$p" stalled), errors $(f "cs$p" errors) / $(f "csx$p" errors) | $tgt | $rat | $v | $(cpu_of "csx$p") (exchange) |"
    done
    echo "| call set-ups, 32 pairs, the library before it gathered a turn's messages (\`-I\`: the first message leaves alone; two-request \`-I\` is the client before issue 14): two-request / exchange | $(f csi32 setups_per_s) / **$(f csxi32 setups_per_s)** set-ups/s; p50 $(ms "$(f csi32 setup_p50_us)") / $(ms "$(f csxi32 setup_p50_us)") ms, p99 $(ms "$(f csi32 setup_p99_us)") / $(ms "$(f csxi32 setup_p99_us)") ms; requests per set-up $(f csi32 requests_per_setup) ($(f csi32 polls_per_setup) polls + $(f csi32 sends_per_setup) sends) / $(f csxi32 requests_per_setup) ($(f csxi32 polls_per_setup) polls + $(f csxi32 exchanges_per_setup) exchanges); server CPU per set-up about $(cpu_per_setup csi32) / $(cpu_per_setup csxi32) ms; this run's exchange mode (row above) is $(ratio_of "$(f csx32 setups_per_s)" "$(f csi32 setups_per_s)")x the client before issue 14 | (for comparison) | | | $(cpu_of csxi32) (exchange) |"
    echo "| call set-ups, 32 pairs, exchange: HTTP requests per set-up (both sides) | **$CS_REQ** (median of rounds: ${CSREQ_ROUNDS// /, }) | <= $CS_REQ_TARGET | | **$V_CSREQ** | |"
}
exchange_notes() {
    echo
    echo "Exchange figures (issue 14): \`pairs P -x\` sends each reply as an exchange"
    echo "(\`POST /rtc/send?...&after=N&timeout=T\`, the sender's poll too), so a relayed"
    echo "message costs one request. The exchange relay latency (\`latency -x\`, the target's"
    echo "figure: the issue's \"today 1.85x\" was the two-request relay latency row's ratio)"
    echo "is measured as that row: B's poll confirmed held, then A's send, here an"
    echo "exchange (\`after=\` A's cursor, \`timeout=0\`: the server answers B before the"
    echo "exchange's poll part, whatever its timeout, and nothing of A's stays held);"
    echo "the ping-pong row is one message at a time, one-way = round trip / 2 (the issue's W1)."
    echo "\`callsetup P\`: P pairs, registered once, set up calls back to"
    echo "back the way the browser library does (\`call\` with a 2.5 KB sdpOffer, the callee's"
    echo "accept with a 2.5 KB answer, 10 candidates each way queued right after each"
    echo "description, \`stop\` once the caller has the answer and the candidates; each side"
    echo "batches as LongPollSocket: what it queues in one turn leaves together (a microtask"
    echo "later in LongPollSocket; one row, \`-I\`, sends the first message alone, as the"
    echo "library did before), and what is queued while a request is out leaves together next;"
    echo "in exchange mode a batch queued while an exchange is held leaves with \`prev=\` once"
    echo "what is queued in the same turn joined it, as LongPollSocket's SECOND_AFTER = 0;"
    echo "the server holds one that overtakes its first;"
    echo "a 409 out_of_order is sent again 1 ms later, doubling). Latency: from the \`call\` queued to the last message"
    echo "either side needs (the callee's stopCommunication, mostly). That server runs with"
    echo "$CALL_ENV:"
    echo "the call limits would refuse calls back to back."
    echo
    echo "| round | ceiling round trip p50 (before / after the real server) | store floor p50 (least ratio) | exchange relay p50, quiet (latency -x) | ratio | in ping-pong (pairs 1 -x, round trip / 2) | ratio | ceiling req/s (before / after) | pairs 32 -x msg/s | % of ceiling | callsetup 32 two-request / exchange | ratio | requests per set-up (exchange) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    local r sfx xl xp xc xpp
    for r in $(seq 1 "$ROUNDS"); do
        sfx=""
        [ "$r" = 1 ] || sfx=_r$r
        read -r xl xp xc xpp < <(xround_ratio "$r")
        echo "| $r | $(ceil_cell 1 "$sfx" rtt_p50_us) µs | $(f "floor$sfx" txn_p50_us) µs ($(floor_bound "$sfx")x) | $(f "xlatq$sfx" relay_p50_us) µs | ${xl}x | $(f "xlat$sfx" oneway_p50_us) µs | ${xpp}x | $(ceil_cell 32 "$sfx" rps) | $(f "pairsx32$sfx" msgs_per_s) | ${xp}% | $(f "cs32$sfx" setups_per_s) / $(f "csx32$sfx" setups_per_s) | ${xc}x | $(f "csx32$sfx" requests_per_setup) |"
    done
}

LOST=""
for n in latency pairs1 pairs8 pairs32 pairs128 fanout5000 xlatq xlat pairsx1 pairsx8 pairsx32 pairsx128 $(for r in $(seq 2 "$ROUNDS"); do echo "latency_r$r pairs32_r$r xlatq_r$r xlat_r$r pairsx32_r$r"; done); do
    v=$(f "$n" lost)
    if isnum "$v" && [ "$v" != 0 ]; then LOST="$LOST $n: $v;"; fi
done

MACHINE="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(lighttpd -v 2>&1 | head -n 1 | sed 's/ (.*//;s/ -.*//')"
TOTAL=$(($(date +%s) - T_START))
if [ "$STORE" = pg ]; then
    STORE_LINE="PostgreSQL $($PG_BIN_DIR/postgres -V 2>/dev/null | awk '{print $3}') ($PG_SETTINGS), one database for all nodes, a fresh one per server; $NODES node(s)"
    [ "$NODES" = 1 ] || STORE_LINE="$STORE_LINE: each lighttpd + $PROCS backend processes with its own state folder and wake file, behind nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') (round-robin, no stickiness, upstream keep-alive) -- the ceiling rows too (two ceiling responders behind it)"
else
    STORE_LINE="SQLite (the shipped settings: WAL, synchronous=NORMAL as fcgi/store.c sets them), one node"
fi

if [ "$ONLY" = store ]; then
{
    echo "# longcall benchmark results: the store comparison rows (BENCH_ONLY=store)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT$DIRTY; backend $BACKEND; run took ${TOTAL} s"
    echo "- machine: $MACHINE"
    echo "- store: $STORE_LINE"
    echo "- backend processes (max-procs): $PROCS per node; throughput runs ${DUR} s each, $ROUNDS round(s); load generator on the same machine; machine busy before the run (other processes): $PRE_BUSY% of $((NCPU * 100))%"
    echo
    echo "| figure | measured | target | vs this run's ceiling | result | CPU during the run (% of one core) |"
    echo "|---|---|---|---|---|---|"
    echo "| ceiling, 1 connection: round trip | p50 $(f ceil1 rtt_p50_us) µs, p90 $(f ceil1 rtt_p90_us) µs, p99 $(f ceil1 rtt_p99_us) µs ($(f ceil1 rps) req/s); again after the real server's figures: p50 $(f ceil1b rtt_p50_us) µs | | reference: the mean of the two | | $(cpu_of ceil1) |"
    echo "| ceiling, 32 connections: requests/s | $(f ceil32 rps) req/s (p50 $(f ceil32 rtt_p50_us) µs, p99 $(f ceil32 rtt_p99_us) µs); again after the real server's figures: $(f ceil32b rps) req/s | | reference: the mean of the two | | $(cpu_of ceil32) |"
    floor_row
    echo "| real backend, GET /rtc/status, 32 connections | $(f status32 rps) req/s (p50 $(f status32 rtt_p50_us) µs, p99 $(f status32 rtt_p99_us) µs) | | | | $(cpu_of status32) |"
    echo "| relay latency: A's send -> B's held poll | p50 **$(f latency relay_p50_us) µs**, p90 $(f latency relay_p90_us) µs, p99 $(f latency relay_p99_us) µs ($(f latency messages) messages, $(f latency lost) lost; A's send round trip p50 $(f latency send_p50_us) µs) | p50 <= 2x ceiling round trip p50 (median of $ROUNDS rounds) | ${RATIO_LAT}x (rounds: ${LAT_ROUNDS// /, }) | **$V_LAT** | $(cpu_of latency) |"
    pairs_row 1 "" "" ""
    pairs_row 8 "" "" ""
    pairs_row 32 ">= 40% of ceiling req/s (median of $ROUNDS rounds)" "${RATIO_P32}% (rounds: ${P32_ROUNDS// /, })" "**$V_P32**"
    pairs_row 128 "" "" ""
    echo "| 1000 idle held polls | held $(f idle1000 held_end); backends RSS $(f idle1000 backend_rss_kb) KiB, PSS $(f idle1000 backend_pss_kb) KiB = ${PER_POLL1} KiB/poll ($(f idle1000 base_backend_pss_kb) KiB before); lighttpd RSS $(f idle1000 lighttpd_rss_kb) KiB | | | | backends $(f idle1000 idle_backend_cpu_pct)%, lighttpd $(f idle1000 idle_lighttpd_cpu_pct)%, postgres $(f idle1000 idle_postgres_cpu_pct)% over 10 s; machine $(f idle1000 idle_machine_cpu_pct)% |"
    exchange_rows
    echo
    echo "The two ratio targets per round (each round starts fresh servers):"
    echo
    echo "| round | ceiling round trip p50 (before / after the real server) | relay p50 | ratio | ceiling req/s (32 conn., before / after) | pairs 32 msg/s | % of ceiling |"
    echo "|---|---|---|---|---|---|---|"
    for r in $(seq 1 "$ROUNDS"); do
        sfx=""
        [ "$r" = 1 ] || sfx=_r$r
        read -r rl rp < <(round_ratio "$r")
        echo "| $r | $(ceil_cell 1 "$sfx" rtt_p50_us) µs | $(f "latency$sfx" relay_p50_us) µs | ${rl}x | $(ceil_cell 32 "$sfx" rps) | $(f "pairs32$sfx" msgs_per_s) | ${rp}% |"
    done
    exchange_notes
    if [ -n "$TROUBLE_A$TROUBLE_B$TROUBLE_G" ]; then
        echo
        echo "Server log lines of note:"
        echo
        printf '%s\n' "$TROUBLE_A" "$TROUBLE_B" "$TROUBLE_G" | grep . | sed 's/^/    /'
    fi
    if [ "$LOST" != "" ]; then
        echo
        echo "**Messages lost**:$LOST"
    fi
    if [ "$ERRORS" -ne 0 ]; then
        echo
        echo "**$ERRORS scenario(s) reported errors** (see the lines above the table)."
    fi
} >"$WORK/results.md"
elif [ -n "$ONLY" ]; then
{
    if [ "$ONLY" = slow ]; then
        echo "# longcall benchmark results: the slow-readers scenario only (BENCH_ONLY=slow)"
    elif [ "$ONLY" = exchange ]; then
        echo "# longcall benchmark results: the exchange figures and the ceiling only (BENCH_ONLY=exchange)"
    else
        echo "# longcall benchmark results: the under-attack scenario only (BENCH_ONLY=attack)"
    fi
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT$DIRTY; backend $BACKEND; run took ${TOTAL} s"
    echo "- machine: $MACHINE"
    echo "- backend processes (max-procs): $PROCS; machine busy before the run (other processes): $PRE_BUSY% of $((NCPU * 100))%"
    echo "- store: $STORE_LINE"
    echo
    [ "$ONLY" != exchange ] || echo "- throughput runs ${DUR} s each, $ROUNDS round(s); load generator on the same machine"
    echo
    echo "| figure | measured | target | | result | CPU during the run (% of one core) |"
    echo "|---|---|---|---|---|---|"
    if [ "$ONLY" = slow ]; then
        slow_rows
    elif [ "$ONLY" = exchange ]; then
        echo "| ceiling, 1 connection: round trip | p50 $(f ceil1 rtt_p50_us) µs, p90 $(f ceil1 rtt_p90_us) µs, p99 $(f ceil1 rtt_p99_us) µs ($(f ceil1 rps) req/s); again after the real server's figures: p50 $(f ceil1b rtt_p50_us) µs | | reference: the mean of the two | | $(cpu_of ceil1) |"
        echo "| ceiling, 32 connections: requests/s | $(f ceil32 rps) req/s (p50 $(f ceil32 rtt_p50_us) µs, p99 $(f ceil32 rtt_p99_us) µs); again after the real server's figures: $(f ceil32b rps) req/s | | reference: the mean of the two | | $(cpu_of ceil32) |"
        floor_row
        echo "| relay latency (two-request): A's send -> B's held poll | p50 $(f latency relay_p50_us) µs, p99 $(f latency relay_p99_us) µs | | $(isnum "$(f latency relay_p50_us)" && isnum "$(ceil_of 1 "" rtt_p50_us)" && calc "%.2f" "$(f latency relay_p50_us) / $(ceil_of 1 "" rtt_p50_us)")x | | $(cpu_of latency) |"
        pairs_row 32 "" "" ""
        exchange_rows
    else
        attack_rows
    fi
    [ "$ONLY" != exchange ] || exchange_notes
    if [ -n "$TROUBLE_A$TROUBLE_E$TROUBLE_F$TROUBLE_G" ]; then
        echo
        echo "Server log lines of note:"
        echo
        printf '%s\n' "$TROUBLE_A" "$TROUBLE_E" "$TROUBLE_F" "$TROUBLE_G" | grep . | sed 's/^/    /'
    fi
    if [ "$LOST" != "" ]; then
        echo
        echo "**Messages lost**:$LOST"
    fi
    if [ "$ERRORS" -ne 0 ]; then
        echo
        echo "**$ERRORS scenario(s) reported errors** (see the lines above the table)."
    fi
} >"$WORK/results.md"
else
{
    echo "# longcall benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT$DIRTY; run took ${TOTAL} s"
    echo "- machine: $MACHINE"
    echo "- backend processes (max-procs): $PROCS, for the ceiling responder too ($CEIL_THREADS threads each; the backend's accept workers: ${LONGCALL_THREADS:-one per CPU plus one}); throughput runs ${DUR} s each; load generator on the same machine"
    echo "- machine busy before the run (other processes): $PRE_BUSY% of $((NCPU * 100))%"
    echo "- store: $STORE_LINE"
    echo
    echo "| figure | measured | target | vs this run's ceiling | result | CPU during the run (% of one core) |"
    echo "|---|---|---|---|---|---|"
    echo "| ceiling, 1 connection: round trip | p50 $(f ceil1 rtt_p50_us) µs, p90 $(f ceil1 rtt_p90_us) µs, p99 $(f ceil1 rtt_p99_us) µs ($(f ceil1 rps) req/s); again after the real server's figures: p50 $(f ceil1b rtt_p50_us) µs | | reference: the mean of the two | | $(cpu_of ceil1) |"
    echo "| ceiling, 32 connections: requests/s | $(f ceil32 rps) req/s (p50 $(f ceil32 rtt_p50_us) µs, p99 $(f ceil32 rtt_p99_us) µs); again after the real server's figures: $(f ceil32b rps) req/s | | reference: the mean of the two | | $(cpu_of ceil32) |"
    floor_row
    echo "| real backend, GET /rtc/status, 32 connections | $(f status32 rps) req/s (p50 $(f status32 rtt_p50_us) µs, p99 $(f status32 rtt_p99_us) µs) | | | | $(cpu_of status32) |"
    echo "| relay latency: A's send -> B's held poll | p50 **$(f latency relay_p50_us) µs**, p90 $(f latency relay_p90_us) µs, p99 $(f latency relay_p99_us) µs ($(f latency messages) messages, $(f latency lost) lost; A's send round trip p50 $(f latency send_p50_us) µs) | p50 <= 2x ceiling round trip p50 (median of $ROUNDS rounds) | ${RATIO_LAT}x (rounds: ${LAT_ROUNDS// /, }) | **$V_LAT** | $(cpu_of latency) |"
    pairs_row 1 "" "" ""
    pairs_row 8 "" "" ""
    pairs_row 32 ">= 40% of ceiling req/s (median of $ROUNDS rounds)" "${RATIO_P32}% (rounds: ${P32_ROUNDS// /, })" "**$V_P32**"
    pairs_row 128 "" "" ""
    echo "| 1000 idle held polls | held $(f idle1000 held_end); backends RSS $(f idle1000 backend_rss_kb) KiB, PSS $(f idle1000 backend_pss_kb) KiB = ${PER_POLL1} KiB/poll ($(f idle1000 base_backend_pss_kb) KiB before); lighttpd RSS $(f idle1000 lighttpd_rss_kb) KiB | | | | backends $(f idle1000 idle_backend_cpu_pct)%, lighttpd $(f idle1000 idle_lighttpd_cpu_pct)% over 10 s; machine $(f idle1000 idle_machine_cpu_pct)% |"
    echo "| 5000 idle held polls: memory | held $(f idle5000 held_end); backends RSS $(f idle5000 backend_rss_kb) KiB, PSS $(f idle5000 backend_pss_kb) KiB = **${PER_POLL5} KiB/poll** (${MARG5} KiB/poll above the $(f idle5000 base_backend_pss_kb) KiB before); lighttpd RSS $(f idle5000 lighttpd_rss_kb) KiB, PSS $(f idle5000 lighttpd_pss_kb) KiB (${LPP5} KiB/poll) | PSS/5000 <= 12 KiB | | **$V_MEM** | |"
    echo "| 5000 idle held polls: CPU | backends **$(f idle5000 idle_backend_cpu_pct)%**, lighttpd $(f idle5000 idle_lighttpd_cpu_pct)% over 10 s | ~0% (<= 1% of a core) | | **$V_CPU** | machine $(f idle5000 idle_machine_cpu_pct)% of $((NCPU * 100))% |"
    exchange_rows
    slow_rows
    attack_rows
    echo "| fan-out: one message to each of 5000 held polls | all delivered in **$(f fanout5000 fanout_ms) ms** ($(f fanout5000 delivered) delivered, $(f fanout5000 lost) lost; $(f fanout5000 sends_per_s) sends/s over $(f fanout5000 senders) connections; per message p50 $(f fanout5000 deliver_p50_us) µs, p99 $(f fanout5000 deliver_p99_us) µs) | | | | $(cpu_of fanout5000) |"
    echo
    echo "The two ratio targets per round (round 1 is the table above; each round starts"
    echo "fresh servers: the ceiling, then the real backend; the verdict is on the median):"
    echo
    echo "| round | ceiling round trip p50 (before / after the real server) | relay p50 | ratio | ceiling req/s (32 conn., before / after) | pairs 32 msg/s | % of ceiling |"
    echo "|---|---|---|---|---|---|---|"
    for r in $(seq 1 "$ROUNDS"); do
        sfx=""
        [ "$r" = 1 ] || sfx=_r$r
        read -r rl rp < <(round_ratio "$r")
        echo "| $r | $(ceil_cell 1 "$sfx" rtt_p50_us) µs | $(f "latency$sfx" relay_p50_us) µs | ${rl}x | $(ceil_cell 32 "$sfx" rps) | $(f "pairs32$sfx" msgs_per_s) | ${rp}% |"
    done
    echo
    exchange_notes
    echo
    echo "Fan-out: each of the 5000 sessions sends \`{\"id\":\"ping\"}\` on its own sid; the"
    echo "server puts \`pong\` in that session's mailbox, which wakes its held poll."
    echo "Timed from the first send written to the last poll answer read."
    if [ -n "$TROUBLE_A$TROUBLE_B$TROUBLE_C$TROUBLE_D$TROUBLE_E$TROUBLE_F$TROUBLE_G" ]; then
        echo
        echo "Server log lines of note:"
        echo
        printf '%s\n' "$TROUBLE_A" "$TROUBLE_B" "$TROUBLE_C" "$TROUBLE_D" "$TROUBLE_E" "$TROUBLE_F" "$TROUBLE_G" | grep . | sed 's/^/    /'
    fi
    if [ "$LOST" != "" ]; then
        echo
        echo "**Messages lost** (stored and acknowledged to the sender, but the recipient's"
        echo "held poll was not answered within 2 s; a lost one stops a ping-pong pair):$LOST"
    fi
    if [ "$ERRORS" -ne 0 ]; then
        echo
        echo "**$ERRORS scenario(s) reported errors** (see the lines above the table)."
    fi
} >"$WORK/results.md"
fi

mkdir -p "$(dirname "$OUT")"
cp "$WORK/results.md" "$OUT"
# every figure, as scenario.key=value, beside the table
for o in "$WORK"/*.out; do
    sed -e '/^#/d' -e "s/^/$(basename "$o" .out)./" "$o"
done >"${OUT%.md}.kv"
echo
cat "$OUT"
echo
say "bench: table written to $OUT (${TOTAL} s)"
[ "$ERRORS" -eq 0 ]
