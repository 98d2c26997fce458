/* buf.h: a growable byte buffer, always NUL-terminated, with an optional size cap (curl's
 * dynbuf "toobig"): appends that would pass the cap fail and leave the buffer unchanged. */
#ifndef S2_BUF_H
#define S2_BUF_H

#include <stddef.h>
#include <stdarg.h>

struct buf {
    char *ptr;   /* NUL-terminated contents ("" when empty, never NULL after buf_init) */
    size_t len;
    size_t alloc;
    size_t max;  /* 0: no cap */
};

extern char buf_empty[];
#define BUF_INIT {buf_empty, 0, 0, 0}

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
/* Append; 0 on success, -1 if the cap would be passed (nothing is appended). */
int buf_add(struct buf *b, const void *data, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Append s as a JSON string literal (with quotes). */
int buf_add_json_str(struct buf *b, const char *s);
/* Take ownership of the contents (caller frees); the buffer is left empty. */
char *buf_detach(struct buf *b, size_t *len);

#endif
