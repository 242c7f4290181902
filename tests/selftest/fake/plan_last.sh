#!/bin/sh
# An honest passing program with its plan as the last line.
echo "ok - one"
echo "ok - two"
echo "1..2"
