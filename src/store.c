/* store.c: the store API dispatched to an implementation chosen by location at open time:
 * a path or "sqlite:PATH" is SQLite (store_sqlite.c), "postgres://..." or
 * "postgresql://..." is PostgreSQL (store_pg.c). No SQL here and no domain rule. */
#include "store_impl.h"

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
