#!/bin/sh
# Plans 1, then never ends, printing a note every 10 ms: the limit must fire
# even while output keeps coming.
echo "1..1"
while :; do echo "# still working"; sleep 0.01; done
