#!/usr/bin/env python3
# Plans 3, passes 2, then dies of an uncaught exception (exit status 1).
print("1..3", flush=True)
print("ok - one", flush=True)
print("ok - two", flush=True)
raise RuntimeError("a bug in the test script")
