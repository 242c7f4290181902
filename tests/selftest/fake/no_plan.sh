#!/bin/sh
# Two ok lines and no plan at all.
echo "ok - one"
echo "ok - two"
