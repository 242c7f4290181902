#!/bin/sh
# An honest passing program.
echo "1..2"
echo "# a note"
echo "ok - one"
echo "ok - two"
