#!/bin/sh
# A test that cannot apply here fails and the program exits 1 because of it;
# the runner's SKIP table (--skip "cannot apply") turns it into a skip, which
# also explains the exit status: 1 passed, 0 failed.
echo "1..2"
echo "ok - one"
echo "not ok - cannot apply here: it failed, as expected here"
exit 1
