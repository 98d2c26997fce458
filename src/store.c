/* store.c: the store API dispatched to an implementation chosen by location at open time:
 * a path or "sqlite:PATH" is SQLite (store_sqlite.c), "postgres://..." or
 * "postgresql://..." is PostgreSQL (store_pg.c). No SQL here and no domain rule. */
#include "store_impl.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

int store_location_is_pg(const char *location)
{
    return location && (!strncmp(location, "postgres://", 11) ||
                        !strncmp(location, "postgresql://", 13));
}

const char *store_location_path(const char *location)
{
    if (location && !strncmp(location, "sqlite:", 7))
        return location + 7;
    return location;
}

static const struct store_ops *ops_for(const char *location)
{
    return store_location_is_pg(location) ? &store_pg_ops : &store_sqlite_ops;
}

/* What an implementation is given: the URL as it is, or the SQLite path without its prefix. */
static const char *target(const char *location)
{
    return store_location_is_pg(location) ? location : store_location_path(location);
}

int store_create(const char *location, struct s2_error *err)
{
    return ops_for(location)->create(target(location), err);
}

int store_open(struct store **out, const char *location, enum durability d, struct s2_error *err)
{
    return ops_for(location)->open(out, target(location), d, err);
}

int store_reader_open(struct store_reader **out, const char *location, struct s2_error *err)
{
    return ops_for(location)->reader_open(out, target(location), err);
}

const char *store_kind(const struct store *st)
{
    return st->ops->name;
}

#define STORE_DISPATCH(ret, name, params, args, h)                                              \
    ret store_##name params                                                                     \
    {                                                                                           \
        return h->ops->name args;                                                               \
    }
STORE_OPS(STORE_DISPATCH)
#undef STORE_DISPATCH

#define STORE_DISPATCH_VOID(name, param, h)                                                     \
    void store_##name(param)                                                                    \
    {                                                                                           \
        if (h)                                                                                  \
            h->ops->name(h);                                                                    \
    }
STORE_OPS_VOID(STORE_DISPATCH_VOID)
#undef STORE_DISPATCH_VOID

const char *const store_tables[] = {"meta",   "tokens",    "models",      "swarms",
                                    "agents", "tasks",     "approvals",   "witness",
                                    "checkpoints", "blockers", "posts", "escalations", NULL};

struct copy_ctx {
    const struct store_ops *to;
    struct store_import *im;
    struct s2_error *err;
    const char *table;
    int64_t rows;
    uint64_t entries;
    void (*progress)(void *ctx, const char *table, int64_t rows);
    void *pctx;
};

static int copy_row(void *ctx, const char *table, int ncols, const char *const *names,
                    const struct store_value *v)
{
    struct copy_ctx *cc = ctx;
    if (cc->table && strcmp(cc->table, table) && cc->progress)
        cc->progress(cc->pctx, cc->table, cc->rows);
    if (!cc->table || strcmp(cc->table, table)) {
        cc->table = table;
        cc->rows = 0;
    }
    cc->rows++;
    if (!strcmp(table, "witness"))
        cc->entries++;
    return cc->to->import_row(cc->im, table, ncols, names, v, cc->err) ? -1 : 0;
}

int store_copy(const char *from, const char *to,
               void (*progress)(void *ctx, const char *table, int64_t rows), void *ctx,
               uint64_t *entries, struct s2_error *err)
{
    const struct store_ops *src = ops_for(from), *dst = ops_for(to);
    if (!src->dump)
        return s2_fail(err, S2_EINVAL, "unsupported", "cannot copy from a %s store", src->name);
    if (!dst->import_open)
        return s2_fail(err, S2_EINVAL, "unsupported", "cannot copy into a %s store (only into "
                       "PostgreSQL)", dst->name);
    struct copy_ctx cc = {.to = dst, .err = err, .progress = progress, .pctx = ctx};
    if (dst->import_open(&cc.im, target(to), err))
        return err->kind;
    struct s2_error derr = S2_ERROR_INIT;
    int rc = src->dump(target(from), copy_row, &cc, &derr);
    if (rc) {
        if (!err->kind) /* the source failed, not the target */
            s2_error_move(err, &derr);
        s2_error_release(&derr);
        dst->import_abort(cc.im);
        return err->kind ? err->kind : S2_EINTERNAL;
    }
    if (cc.table && progress)
        progress(ctx, cc.table, cc.rows);
    if (dst->import_commit(cc.im, err))
        return err->kind;
    *entries = cc.entries;
    return 0;
}

void task_row_release(struct task_row *r)
{
    free(r->id);
    free(r->swarm);
    free(r->title);
    free(r->body);
    free(r->requires);
    free(r->depends_on);
    free(r->approval);
    free(r->owner);
    free(r->result);
    free(r->reason);
    free(r->paths);
    free(r->help_for);
    memset(r, 0, sizeof *r);
}

char *store_location_for_humans(const char *location)
{
    const char *scheme = strstr(location, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (!at || !colon || colon > at)
        return xstrdup(location);
    return xasprintf("%.*s:***%s", (int)(colon - location), location, at);
}
