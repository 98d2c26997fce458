/* error.h: how s2 reports failure. Functions that can fail return 0 or a negative enum
 * s2_err and fill a struct s2_error with a code (stable, for programs) and a message a user
 * can act on (lowercase, no full stop, quoting what it names). HTTP maps kinds to statuses
 * in one table (http.c). */
#ifndef S2_ERROR_H
#define S2_ERROR_H

enum s2_err {
    S2_OK = 0,
    S2_EINVAL = -1,     /* 400: malformed or invalid input */
    S2_ENOTFOUND = -2,  /* 404 */
    S2_ECONFLICT = -3,  /* 409: state does not allow it (stale lease, duplicate id, ...) */
    S2_EUNAUTH = -4,    /* 401: no or unknown credentials */
    S2_EFORBIDDEN = -5, /* 403: credentials valid, not allowed here */
    S2_ETOOBIG = -6,    /* 413 */
    S2_EUNAVAIL = -7,   /* 503: store cannot write now (disk full, read-only, shutting down) */
    S2_EINTERNAL = -8,  /* 500 */
    S2_ERATE = -9,      /* 429 */
    S2_EMETHOD = -10,   /* 405 */
    S2_EIO = -11,       /* local I/O failure in a CLI command */
};

struct s2_error {
    enum s2_err kind;
    const char *code; /* static string: "invalid_field", "stale_lease", ... */
    char *msg;        /* owned; NULL when no error */
};

#define S2_ERROR_INIT {S2_OK, NULL, NULL}

/* Record an error (replacing any earlier one); returns kind so callers can
 * `return s2_fail(err, ...)`. err may be NULL. */
int s2_fail(struct s2_error *err, enum s2_err kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void s2_error_release(struct s2_error *err);
/* Move src into dst (dst released first); src is left empty. */
void s2_error_move(struct s2_error *dst, struct s2_error *src);
/* Default code string of a kind, e.g. "not_found". */
const char *s2_err_code(enum s2_err kind);

#endif
