#!/bin/sh
# An honest program with a check that cannot run here: 2 passed, 1 skipped.
echo "1..3"
echo "ok - one"
echo "skip - two: the tool it needs is not installed"
echo "ok - three"
