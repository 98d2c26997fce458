/* store_impl.h: what a store implementation provides (store_sqlite.c, store_pg.c) and how
 * store.c dispatches the store_* API to it. Nothing outside the store modules includes this.
 * Each handle (store, reader, cursor) starts with its implementation's ops table; the
 * implementation's own struct embeds it first and casts back. */
#ifndef S2_STORE_IMPL_H
#define S2_STORE_IMPL_H

#include "store.h"

struct store_ops;

struct store {
    const struct store_ops *ops;
};
struct store_reader {
    const struct store_ops *ops;
};
struct store_cursor {
    const struct store_ops *ops;
};

/* X(return type, name, parameters, arguments, handle): every operation that dispatches on a
 * handle; store_<name> calls ops-><name>. The void ones are listed apart (STORE_OPS_VOID). */
#define STORE_OPS(X)                                                                            \
    X(int, flush, (struct store * st, struct s2_error * err), (st, err), st)                    \
    X(int, checkpoint, (struct store * st, struct s2_error * err), (st, err), st)               \
    X(int, sync_commits, (struct store * st, int on, struct s2_error * err), (st, on, err), st)  \
    X(int, commits_durable, (struct store * st), (st), st)                                      \
    X(int, schema_version, (struct store * st), (st), st)                                       \
    X(int, begin, (struct store * st, struct s2_error * err), (st, err), st)                    \
    X(int, commit, (struct store * st, struct s2_error * err), (st, err), st)                   \
    X(int, meta_put, (struct store * st, const char *key, const char *val, struct s2_error *err), \
      (st, key, val, err), st)                                                                  \
    X(char *, meta_get, (struct store * st, const char *key), (st, key), st)                    \
    X(int, token_insert,                                                                        \
      (struct store * st, const uint8_t hash[TOKEN_HASH_BYTES], const char *kind,               \
       const char *swarm, const char *name, int64_t now, struct s2_error *err),                 \
      (st, hash, kind, swarm, name, now, err), st)                                              \
    X(int, swarm_insert,                                                                        \
      (struct store * st, const struct swarm_spec *s, int state, int64_t now,                   \
       struct s2_error *err),                                                                   \
      (st, s, state, now, err), st)                                                             \
    X(int, swarm_set_state, (struct store * st, const char *id, int state, struct s2_error *err), \
      (st, id, state, err), st)                                                                 \
    X(int, agent_insert,                                                                        \
      (struct store * st, const struct agent_spec *a, int64_t now, struct s2_error *err),       \
      (st, a, now, err), st)                                                                    \
    X(int, agent_seen,                                                                          \
      (struct store * st, const char *id, int64_t last_seen, struct s2_error *err),             \
      (st, id, last_seen, err), st)                                                             \
    X(int, model_put, (struct store * st, const struct model_spec *m, struct s2_error *err),    \
      (st, m, err), st)                                                                         \
    X(int, task_insert,                                                                         \
      (struct store * st, const struct task_spec *t, int state, int64_t now, int64_t *rowid,    \
       struct s2_error *err),                                                                   \
      (st, t, state, now, rowid, err), st)                                                      \
    X(int, task_update, (struct store * st, const struct task_dyn *d, struct s2_error *err),    \
      (st, d, err), st)                                                                         \
    X(int, task_outcome,                                                                        \
      (struct store * st, int64_t rowid, const char *result, const char *reason,                \
       int64_t finished_at, struct s2_error *err),                                              \
      (st, rowid, result, reason, finished_at, err), st)                                        \
    X(int, approval_insert,                                                                     \
      (struct store * st, int64_t task_rowid, const char *approver, int64_t now,                \
       struct s2_error *err),                                                                   \
      (st, task_rowid, approver, now, err), st)                                                 \
    X(int, swarm_ledger,                                                                        \
      (struct store * st, const char *id, int64_t spent, int alert_level, struct s2_error *err), \
      (st, id, spent, alert_level, err), st)                                                    \
    X(int, swarm_budget,                                                                        \
      (struct store * st, const char *id, int64_t budget, struct s2_error *err),                \
      (st, id, budget, err), st)                                                                \
    X(int, slo,                                                                                 \
      (struct store * st, int agent, const char *id, const void *blob, size_t len,              \
       struct s2_error *err),                                                                   \
      (st, agent, id, blob, len, err), st)                                                      \
    X(int, swarm_text,                                                                          \
      (struct store * st, const char *id, int which, const char *json, struct s2_error *err),   \
      (st, id, which, json, err), st)                                                           \
    X(int, agent_gov, (struct store * st, const struct agent_gov *g, struct s2_error *err),     \
      (st, g, err), st)                                                                         \
    X(int, blocker_put, (struct store * st, const struct load_blocker *b, struct s2_error *err), \
      (st, b, err), st)                                                                         \
    X(int, post_insert,                                                                         \
      (struct store * st, const char *task, const char *agent, const char *help_task,           \
       const char *body, int64_t now, int64_t *id, struct s2_error *err),                       \
      (st, task, agent, help_task, body, now, id, err), st)                                     \
    X(int, post_verdict,                                                                        \
      (struct store * st, int64_t id, int verdict, int64_t now, struct s2_error *err),          \
      (st, id, verdict, now, err), st)                                                          \
    X(int, escalation_insert,                                                                   \
      (struct store * st, const char *kind, const char *swarm, const char *task,                \
       const char *agent, const char *message, int64_t now, int64_t *id, struct s2_error *err), \
      (st, kind, swarm, task, agent, message, now, id, err), st)                                \
    X(int, escalation_ack,                                                                      \
      (struct store * st, int64_t id, const char *by, int64_t now, struct s2_error *err),       \
      (st, id, by, now, err), st)                                                               \
    X(int, post_get,                                                                            \
      (struct store * st, int64_t id, char **task, char **agent, int *verdict,                  \
       struct s2_error *err),                                                                   \
      (st, id, task, agent, verdict, err), st)                                                  \
    X(int, witness_append,                                                                      \
      (struct store * st, const struct witness_entry *w, struct s2_error *err), (st, w, err),   \
      st)                                                                                       \
    X(int, checkpoint_add,                                                                      \
      (struct store * st, const struct checkpoint *c, const char *frontier,                     \
       struct s2_error *err),                                                                   \
      (st, c, frontier, err), st)                                                               \
    X(char *, checkpoint_frontier, (struct store * st, uint64_t tree_size), (st, tree_size), st) \
    X(int, witness_scan,                                                                        \
      (struct store * st, const struct witness_filter *f,                                       \
       int (*fn)(void *ctx, const struct witness_entry *w), void *ctx, struct s2_error *err),   \
      (st, f, fn, ctx, err), st)                                                                \
    X(int, checkpoint_scan,                                                                     \
      (struct store * st, uint64_t from, int limit, int newest_first,                           \
       int (*fn)(void *ctx, const struct checkpoint *c), void *ctx, struct s2_error *err),      \
      (st, from, limit, newest_first, fn, ctx, err), st)                                        \
    X(int64_t, task_count, (struct store * st), (st), st)                                       \
    X(int, load, (struct store * st, const struct store_loader *ld, struct s2_error *err),      \
      (st, ld, err), st)                                                                        \
    X(int, task_get,                                                                            \
      (struct store_reader * rd, const char *id, struct task_row *row, struct s2_error *err),   \
      (rd, id, row, err), rd)                                                                   \
    X(int, task_get_rowid,                                                                      \
      (struct store_reader * rd, int64_t rowid, struct task_row *row, struct s2_error *err),    \
      (rd, rowid, row, err), rd)                                                                \
    X(int, reader_witness,                                                                      \
      (struct store_reader * rd, const struct witness_filter *f,                                \
       int (*fn)(void *ctx, const struct witness_entry *w), void *ctx, struct s2_error *err),   \
      (rd, f, fn, ctx, err), rd)                                                                \
    X(int, reader_checkpoints,                                                                  \
      (struct store_reader * rd, uint64_t from, int limit, int newest_first,                    \
       int (*fn)(void *ctx, const struct checkpoint *c), void *ctx, struct s2_error *err),      \
      (rd, from, limit, newest_first, fn, ctx, err), rd)                                        \
    X(int, reader_leaves,                                                                       \
      (struct store_reader * rd, uint64_t n, merkle_hash *out, struct s2_error *err),           \
      (rd, n, out, err), rd)                                                                    \
    X(char *, reader_meta, (struct store_reader * rd, const char *key), (rd, key), rd)          \
    X(int, reader_posts,                                                                        \
      (struct store_reader * rd, const char *task, json_t **out, struct s2_error *err),         \
      (rd, task, out, err), rd)                                                                 \
    X(int, reader_escalations,                                                                  \
      (struct store_reader * rd, int all, int limit, json_t **out, struct s2_error *err),       \
      (rd, all, limit, out, err), rd)                                                           \
    X(int, reader_begin, (struct store_reader * rd, struct s2_error * err), (rd, err), rd)      \
    X(int, cursor_witness,                                                                      \
      (struct store_reader * rd, uint64_t from, struct store_cursor **out,                      \
       struct s2_error *err),                                                                   \
      (rd, from, out, err), rd)                                                                 \
    X(int, cursor_checkpoints,                                                                  \
      (struct store_reader * rd, uint64_t from, struct store_cursor **out,                      \
       struct s2_error *err),                                                                   \
      (rd, from, out, err), rd)                                                                 \
    X(int, cursor_next_entry,                                                                   \
      (struct store_cursor * c, struct witness_entry *w, struct s2_error *err), (c, w, err), c) \
    X(int, cursor_next_checkpoint,                                                              \
      (struct store_cursor * c, struct checkpoint *cp, struct s2_error *err), (c, cp, err), c)  \
    X(int, task_list,                                                                           \
      (struct store_reader * rd, const struct task_filter *f,                                   \
       void (*fn)(void *ctx, const struct task_row *row), void *ctx, struct s2_error *err),     \
      (rd, f, fn, ctx, err), rd)

/* X(name, parameter): the operations that return nothing (and accept NULL). */
#define STORE_OPS_VOID(X)                                                                       \
    X(close, struct store *st, st)                                                              \
    X(rollback, struct store *st, st)                                                           \
    X(reader_close, struct store_reader *rd, rd)                                                \
    X(reader_end, struct store_reader *rd, rd)                                                  \
    X(cursor_close, struct store_cursor *c, c)

/* A value of a row copied between stores. */
enum { SV_NULL, SV_INT, SV_REAL, SV_TEXT, SV_BLOB };
struct store_value {
    int type;
    int64_t i;
    double d;
    const void *p; /* text (NUL-terminated) or blob */
    size_t n;      /* blob size */
};
/* The tables of a deployment, in the order they are copied. */
extern const char *const store_tables[];

struct store_import;

struct store_ops {
    const char *name; /* "sqlite", "postgres" */
    /* Read every row of the tables (one snapshot); row's nonzero return stops. NULL: this
     * store cannot be a source. */
    int (*dump)(const char *location, int (*row)(void *ctx, const char *table, int ncols,
                                                 const char *const *names,
                                                 const struct store_value *v),
                void *ctx, struct s2_error *err);
    /* Create the schema at location and take rows in one transaction. NULL: cannot be a
     * target. */
    int (*import_open)(struct store_import **out, const char *location, struct s2_error *err);
    int (*import_row)(struct store_import *im, const char *table, int ncols,
                      const char *const *names, const struct store_value *v,
                      struct s2_error *err);
    int (*import_commit)(struct store_import *im, struct s2_error *err); /* and frees */
    void (*import_abort)(struct store_import *im);                       /* and frees */
    int (*create)(const char *location, struct s2_error *err);
    int (*open)(struct store **out, const char *location, enum durability d,
                struct s2_error *err);
    int (*reader_open)(struct store_reader **out, const char *location, struct s2_error *err);
#define STORE_OP_FIELD(ret, name, params, args, h) ret(*name) params;
    STORE_OPS(STORE_OP_FIELD)
#undef STORE_OP_FIELD
#define STORE_OP_VFIELD(name, param, h) void (*name)(param);
    STORE_OPS_VOID(STORE_OP_VFIELD)
#undef STORE_OP_VFIELD
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

#endif
