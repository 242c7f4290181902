#!/bin/sh
# Plans 1, prints 2.
echo "1..1"
echo "ok - one"
echo "ok - two"
