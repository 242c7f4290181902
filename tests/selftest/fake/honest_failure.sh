#!/bin/sh
# A failure it reports itself, then exit 1: one failure, not two.
echo "1..2"
echo "ok - one"
echo "not ok - two: it broke"
exit 1
