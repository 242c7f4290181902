/* unit: the tiny assertion macro of the unit tests. Each CHECK prints
 * "ok - name" or "not ok - name: file:line: expression"; unit_done() prints
 * the plan "1..N" (N = CHECKs made) as the last line and returns the exit
 * status (1 if anything failed), so a test that crashes shows no plan and a
 * non-zero status (tests/run-tests counts both). Tests #include the .c files
 * under test to reach their static functions. */
#ifndef LC_UNIT_H
#define LC_UNIT_H

#include <stdio.h>

static int unit_failed;
static int unit_count;

#define CHECK(name, cond)                                                                          \
    do {                                                                                           \
        unit_count++;                                                                              \
        if (cond)                                                                                  \
            printf("ok - %s\n", name);                                                             \
        else {                                                                                     \
            printf("not ok - %s: %s:%d: %s\n", name, __FILE__, __LINE__, #cond);                   \
            unit_failed = 1;                                                                       \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

static inline int unit_done(void)
{
    printf("1..%d\n", unit_count);
    fflush(stdout);
    return unit_failed;
}

#endif
