#!/bin/sh
# Plans 2, passes 1, then hangs with a child in its process group and a
# "server" in a session of its own (as harness.Server starts them); the
# runner must kill all of them at its limit. Their PIDs go to $SELFTEST_PIDS.
echo "1..2"
echo "ok - one"
sleep 1000 &
echo $! >> "${SELFTEST_PIDS:-/dev/null}"
setsid sleep 1001 &
echo $! >> "${SELFTEST_PIDS:-/dev/null}"
sleep 1002
