/* error.c: error records. */
#include "error.h"
#include "util/xalloc.h"

#include <stdarg.h>
#include <stdlib.h>

const char *s2_err_code(enum s2_err kind)
{
    switch (kind) {
    case S2_OK: return "ok";
    case S2_EINVAL: return "invalid";
    case S2_ENOTFOUND: return "not_found";
    case S2_ECONFLICT: return "conflict";
    case S2_EUNAUTH: return "unauthorized";
    case S2_EFORBIDDEN: return "forbidden";
    case S2_ETOOBIG: return "too_large";
    case S2_EUNAVAIL: return "unavailable";
    case S2_EINTERNAL: return "internal";
    case S2_ERATE: return "rate_limited";
    case S2_EMETHOD: return "method_not_allowed";
    case S2_EIO: return "io";
    }
    return "internal";
}

int s2_fail(struct s2_error *err, enum s2_err kind, const char *code, const char *fmt, ...)
{
    if (!err)
        return kind;
    free(err->msg);
    va_list ap;
    va_start(ap, fmt);
    err->msg = xvasprintf(fmt, ap);
    va_end(ap);
    err->kind = kind;
    err->code = code ? code : s2_err_code(kind);
    return kind;
}

void s2_error_release(struct s2_error *err)
{
    free(err->msg);
    err->msg = NULL;
    err->kind = S2_OK;
    err->code = NULL;
}

void s2_error_move(struct s2_error *dst, struct s2_error *src)
{
    s2_error_release(dst);
    *dst = *src;
    src->msg = NULL;
    src->kind = S2_OK;
    src->code = NULL;
}
