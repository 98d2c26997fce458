/* strvec.c: owned string arrays. */
#include "util/strvec.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

void strvec_push_nodup(struct strvec *sv, char *s)
{
    sv->v = xgrow(sv->v, sizeof *sv->v, sv->n + 1, &sv->cap);
    sv->v[sv->n++] = s;
}

void strvec_push(struct strvec *sv, const char *s)
{
    strvec_push_nodup(sv, xstrdup(s));
}

void strvec_release(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

long strvec_find(const struct strvec *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (!strcmp(sv->v[i], s))
            return (long)i;
    return -1;
}

char *strvec_join(const struct strvec *sv, const char *sep)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < sv->n; i++) {
        if (i)
            buf_adds(&b, sep);
        buf_adds(&b, sv->v[i]);
    }
    return buf_detach(&b, NULL);
}

void strvec_split(struct strvec *sv, const char *s, char ch)
{
    while (s && *s) {
        const char *e = strchr(s, ch);
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n)
            strvec_push_nodup(sv, xstrndup(s, n));
        s = e ? e + 1 : NULL;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strvec_sort(struct strvec *sv)
{
    if (sv->n > 1)
        qsort(sv->v, sv->n, sizeof *sv->v, cmp_str);
}

void strvec_copy(struct strvec *dst, const struct strvec *src)
{
    for (size_t i = 0; i < src->n; i++)
        strvec_push(dst, src->v[i]);
}
