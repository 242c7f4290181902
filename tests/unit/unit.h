/* unit: the tiny assertion macro of the unit tests. Each CHECK prints
 * "ok - name" or "not ok - name: file:line: expression"; unit_done() returns
 * the exit status (1 if anything failed). Tests #include the .c files under
 * test to reach their static functions. */
#ifndef LC_UNIT_H
#define LC_UNIT_H

#include <stdio.h>

static int unit_failed;

#define CHECK(name, cond)                                                                          \
    do {                                                                                           \
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
    return unit_failed;
}

#endif
