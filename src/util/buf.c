/* buf.c: growable NUL-terminated buffer with a cap. */
#include "util/buf.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char buf_empty[1];

void buf_init(struct buf *b, size_t max)
{
    b->ptr = buf_empty;
    b->len = b->alloc = 0;
    b->max = max;
}

void buf_release(struct buf *b)
{
    if (b->alloc)
        free(b->ptr);
    buf_init(b, b->max);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->alloc)
        b->ptr[0] = 0;
}

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->max && (extra > b->max || b->len > b->max - extra))
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n *= 2;
    b->ptr = b->alloc ? xrealloc(b->ptr, n) : xmalloc(n);
    if (!b->alloc)
        b->ptr[0] = 0;
    b->alloc = n;
    return 0;
}

int buf_add(struct buf *b, const void *data, size_t n)
{
    if (buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = 0;
    return 0;
}

int buf_adds(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int buf_addch(struct buf *b, char c)
{
    return buf_add(b, &c, 1);
}

int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -1;
    if (buf_reserve(b, (size_t)n))
        return -1;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int buf_add_json_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len; /* all or nothing, like every append */
    int rc = buf_addch(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = buf_add(b, e, 2);
        } else if (c == '\n') {
            rc = buf_add(b, "\\n", 2);
        } else if (c == '\r') {
            rc = buf_add(b, "\\r", 2);
        } else if (c == '\t') {
            rc = buf_add(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = buf_add(b, e, 6);
        } else {
            rc = buf_addch(b, (char)c);
        }
    }
    if (!rc)
        rc = buf_addch(b, '"');
    if (rc) {
        b->len = start;
        b->ptr[start] = 0;
    }
    return rc;
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p = b->alloc ? b->ptr : xstrdup("");
    if (len)
        *len = b->len;
    buf_init(b, b->max);
    return p;
}
