/* xalloc.h: allocation that never returns NULL. A coordinator that cannot allocate cannot
 * keep its promises, so out of memory aborts with a message (git's policy). */
#ifndef S2_XALLOC_H
#define S2_XALLOC_H

#include <stddef.h>
#include <stdarg.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grow an array to hold at least `need` elements of `size` bytes; *cap is updated. */
void *xgrow(void *p, size_t size, size_t need, size_t *cap);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formatted string in a fresh allocation; the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Test hook (unit builds): fail the Nth allocation from now by aborting through die(). */
void xalloc_die(size_t n) __attribute__((noreturn));

#endif
