/* lg_json: just enough JSON reading for the load generator: a member of the
 * top-level object (integer or string) and the elements of a member array,
 * without building a tree. */
#ifndef LG_JSON_H
#define LG_JSON_H

#include <stddef.h>

/* Finds member key of the object in s[0..n) and returns where its value
 * starts (*vlen = its length), or NULL. */
const char *lgj_member(const char *s, size_t n, const char *key, size_t *vlen);

/* The member key of the object s[0..n) as an integer. Returns 0 or -1. */
int lgj_int(const char *s, size_t n, const char *key, long long *out);

/* The member key of the object s[0..n) as a string (escapes are copied as
 * they are), NUL-terminated into out[cap]. Returns 0 or -1. */
int lgj_str(const char *s, size_t n, const char *key, char *out, size_t cap);

/* Does member key of the object s[0..n) hold the string want? */
int lgj_str_is(const char *s, size_t n, const char *key, const char *want);

typedef void (*lgj_elem_fn)(const char *elem, size_t len, void *arg);

/* Calls fn for each element of the array member key of the object s[0..n).
 * Returns the number of elements, or -1 (no such array, or bad JSON). */
int lgj_each(const char *s, size_t n, const char *key, lgj_elem_fn fn, void *arg);

#endif
