/* store.h: persistence. The engine writes through one `struct store` (its own thread, inside
 * transactions it opens and commits); HTTP threads read committed rows through their own
 * `struct store_reader`. No SQL escapes the store modules, and nothing here knows a domain
 * rule: the store keeps what it is told. Two implementations, chosen by location when a
 * store is created or opened (store.c dispatches): a path or "sqlite:PATH" is the embedded
 * SQLite in WAL mode (store_sqlite.c); "postgres://..." or "postgresql://..." is PostgreSQL
 * (store_pg.c), which several nodes share (docs/OPERATIONS-PG.md). */
#ifndef S2_STORE_H
#define S2_STORE_H

#include <stdint.h>
#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "model.h"
#include "witness.h"

struct store;
struct store_reader;

enum durability {
    DURABILITY_FULL,    /* fsync (WAL) before every commit returns */
    DURABILITY_RELAXED, /* no fsync on commit; the WAL is synced at least every second */
};

#define STORE_SCHEMA_VERSION 5
#define TOKEN_HASH_BYTES 32

/* ---- locations ---- */

/* Whether a location names PostgreSQL (postgres:// or postgresql://). */
int store_location_is_pg(const char *location);
/* The file path of a SQLite location ("sqlite:PATH" or PATH; borrowed from location). */
const char *store_location_path(const char *location);

/* ---- lifecycle ---- */

/* Create a new database at location with the current schema; fails if it exists (SQLite:
 * the file; PostgreSQL: a database that already holds an s2 schema). */
int store_create(const char *path, struct s2_error *err);
/* Open an existing database for writing, applying pending migrations. The caller owns the
 * result (store_close). */
int store_open(struct store **out, const char *path, enum durability d, struct s2_error *err);
void store_close(struct store *st);
/* "sqlite" or "postgres". */
const char *store_kind(const struct store *st);
/* 1 when a commit is durable as soon as store_commit returns (PostgreSQL: the server syncs
 * its WAL per synchronous_commit), so nothing waits for store_flush; 0 for SQLite. */
int store_commits_durable(struct store *st);
/* Make every commit so far durable (fdatasync of the WAL). From one thread other than the
 * writer's (the engine's flusher); commits may go on meanwhile. PostgreSQL: nothing to do
 * (its commits are durable when they return). */
int store_flush(struct store *st, struct s2_error *err);
/* Copy committed WAL frames into the database file (passive: never blocks the writer).
 * Same thread as store_flush. PostgreSQL: nothing (the server checkpoints by itself). */
int store_checkpoint(struct store *st, struct s2_error *err);
/* on: each commit syncs before it returns (SQLite synchronous=FULL). off: commits only
 * write; the caller makes them durable with store_flush before it tells anyone. Writer.
 * PostgreSQL: nothing (durability is the server's synchronous_commit; relaxed durability
 * sets synchronous_commit=off for the writer's session at open). */
int store_sync_commits(struct store *st, int on, struct s2_error *err);
/* Schema version recorded in the database. */
int store_schema_version(struct store *st);

/* ---- transactions (engine thread) ---- */
int store_begin(struct store *st, struct s2_error *err);
int store_commit(struct store *st, struct s2_error *err);
void store_rollback(struct store *st);

/* ---- writes (inside a transaction) ---- */
int store_meta_put(struct store *st, const char *key, const char *val, struct s2_error *err);
/* The value for key (caller frees), or NULL. */
char *store_meta_get(struct store *st, const char *key);

/* kind: "admin" | "swarm"; swarm may be NULL; name labels the token for humans. */
int store_token_insert(struct store *st, const uint8_t hash[TOKEN_HASH_BYTES], const char *kind,
                       const char *swarm, const char *name, int64_t now, struct s2_error *err);
int store_swarm_insert(struct store *st, const struct swarm_spec *s, int state, int64_t now,
                       struct s2_error *err);
int store_swarm_set_state(struct store *st, const char *id, int state, struct s2_error *err);
int store_agent_insert(struct store *st, const struct agent_spec *a, int64_t now,
                       struct s2_error *err);
int store_agent_seen(struct store *st, const char *id, int64_t last_seen, struct s2_error *err);
int store_model_put(struct store *st, const struct model_spec *m, struct s2_error *err);

/* Insert a task as specified (t->id set) in the given state; *rowid receives its key. */
int store_task_insert(struct store *st, const struct task_spec *t, int state, int64_t now,
                      int64_t *rowid, struct s2_error *err);

/* The fields of a task that change after creation. */
struct task_dyn {
    int64_t rowid;
    int state;
    int attempts;
    const char *owner; /* agent id or NULL */
    uint64_t fence;
    const uint8_t *lease_hash; /* TOKEN_HASH_BYTES or NULL */
    int64_t lease_expires;     /* ms since epoch, 0 if none */
    int64_t ready_at;          /* ms since epoch: not claimable before */
    int64_t cost_micro, tokens_in, tokens_out;
    int approvals;
    int64_t updated_at;
    int64_t reserved_micro;  /* what the current lease still holds of its budget reservation */
    int64_t min_tier;        /* raised by the cascade after a failure */
    const char *approval;    /* NULL: unchanged; else the new approval ("human" after a gate) */
};
int store_task_update(struct store *st, const struct task_dyn *d, struct s2_error *err);
/* Record the outcome text of a task: result (JSON text) and/or reason; NULL leaves a field
 * as it is. finished_at 0 leaves it as it is. */
int store_task_outcome(struct store *st, int64_t rowid, const char *result, const char *reason,
                       int64_t finished_at, struct s2_error *err);
int store_approval_insert(struct store *st, int64_t task_rowid, const char *approver, int64_t now,
                          struct s2_error *err);

/* ---- the governor's state ---- */

struct agent_gov;
struct load_blocker;

int store_swarm_ledger(struct store *st, const char *id, int64_t spent, int alert_level,
                       struct s2_error *err);
int store_swarm_budget(struct store *st, const char *id, int64_t budget, struct s2_error *err);
/* The window of outcomes of a swarm (agent 0) or an agent (agent 1). */
int store_slo(struct store *st, int agent, const char *id, const void *blob, size_t len,
              struct s2_error *err);
enum { STORE_SWARM_IDLE, STORE_SWARM_CONTRACT };
/* Set a swarm's idle tasks or contract (JSON text; NULL clears). */
int store_swarm_text(struct store *st, const char *id, int which, const char *json,
                     struct s2_error *err);
int store_agent_gov(struct store *st, const struct agent_gov *g, struct s2_error *err);
/* Insert or replace the blocker of a task. */
int store_blocker_put(struct store *st, const struct load_blocker *b, struct s2_error *err);
/* A post on a blocked task's thread; *id receives its number. */
int store_post_insert(struct store *st, const char *task, const char *agent, const char *help_task,
                      const char *body, int64_t now, int64_t *id, struct s2_error *err);
/* verdict: 1 accepted, -1 rejected. */
int store_post_verdict(struct store *st, int64_t id, int verdict, int64_t now,
                       struct s2_error *err);
int store_escalation_insert(struct store *st, const char *kind, const char *swarm,
                            const char *task, const char *agent, const char *message, int64_t now,
                            int64_t *id, struct s2_error *err);
int store_escalation_ack(struct store *st, int64_t id, const char *by, int64_t now,
                         struct s2_error *err);
/* A post's thread (the blocked task), author and verdict (*task, *agent: caller frees).
 * 1 found, 0 not, <0 error. Writer connection. */
int store_post_get(struct store *st, int64_t id, char **task, char **agent, int *verdict,
                   struct s2_error *err);

/* ---- witness log ---- */

/* Append one entry / one checkpoint (inside the transaction of the change it records). */
int store_witness_append(struct store *st, const struct witness_entry *w, struct s2_error *err);
int store_checkpoint_add(struct store *st, const struct checkpoint *c, const char *frontier,
                         struct s2_error *err);
/* The Merkle frontier stored with the checkpoint of that tree size (caller frees), or NULL. */
char *store_checkpoint_frontier(struct store *st, uint64_t tree_size);

struct witness_filter {
    uint64_t from;    /* oldest-first: seq >= from; newest-first: seq <= from (0: the end) */
    uint64_t until;   /* oldest-first: and seq <= until (0: no bound) */
    int limit;        /* <= 0: no limit */
    int newest_first;
    const char *task, *swarm, *agent; /* NULL: any */
};
/* Call fn for each matching entry (borrowed for the call); a nonzero return from fn stops
 * the scan and is returned. The same from the writer or a reader. */
int store_witness_scan(struct store *st, const struct witness_filter *f,
                       int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                       struct s2_error *err);
int store_checkpoint_scan(struct store *st, uint64_t from, int limit, int newest_first,
                          int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                          struct s2_error *err);

/* ---- loading (engine start, and after a failed commit) ---- */

/* Rows handed to the loader; strings are borrowed for the duration of the call. Lists
 * (capabilities, requires, depends_on) are newline-separated. */
struct load_token {
    const uint8_t *hash;
    const char *kind, *swarm, *name;
};
struct load_swarm {
    const char *id, *role, *caps, *branch;
    int relation, state;
    int64_t budget_micro, created_at;
    int64_t spent_micro;
    int alert_level;
    const char *idle_tasks; /* JSON array or NULL */
    const char *contract;   /* JSON object or NULL */
    const void *slo;        /* its window of outcomes (slo_encode) */
    size_t slo_len;
};
/* The governor's state of an agent (written with store_agent_gov). */
struct agent_gov {
    const char *id;
    int64_t spent_micro;
    int breaker_state, breaker_failures;
    int64_t breaker_opened_at;
    int64_t accepted, rejected;
};
struct load_agent {
    const char *id, *swarm, *model, *caps;
    int64_t max_leases, created_at, last_seen;
    struct agent_gov gov;
    const void *slo;
    size_t slo_len;
};
/* An open blocker (state 0; resolved ones are history, read by the API). */
struct load_blocker {
    const char *task, *needs, *reason, *agent;
    int64_t created_at;
    int state, escalated;
    int64_t budget_micro, resolved_at;
};
struct load_task {
    int64_t rowid;
    const char *id, *swarm, *requires, *depends_on, *approval, *owner;
    int64_t phase, priority, min_tier, max_attempts, lease_ms, backoff_ms;
    int phase_barrier;
    int state, attempts, approvals;
    uint64_t fence;
    const uint8_t *lease_hash; /* NULL or TOKEN_HASH_BYTES */
    int64_t lease_expires, ready_at, cost_micro, tokens_in, tokens_out, max_cost_micro;
    int64_t created_at;
    int64_t reserved_micro, estimate_micro;
    int kind;
    const char *help_for;
    const char *paths; /* newline-separated globs or NULL */
};
struct load_approval {
    int64_t task_rowid;
    const char *approver;
};

struct store_loader {
    void *ctx;
    int (*token)(void *ctx, const struct load_token *t);
    int (*model)(void *ctx, const struct model_spec *m);
    int (*swarm)(void *ctx, const struct load_swarm *s);
    int (*agent)(void *ctx, const struct load_agent *a);
    int (*task)(void *ctx, const struct load_task *t); /* in rowid order */
    int (*approval)(void *ctx, const struct load_approval *a);
    int (*blocker)(void *ctx, const struct load_blocker *b);
};
/* About how many tasks there are (the highest key; cheap), to size indexes before a load. */
int64_t store_task_count(struct store *st);
/* Stream every row through the loader (models, tokens, swarms, agents, tasks, approvals in
 * that order). A callback's nonzero return stops the load and is returned. */
int store_load(struct store *st, const struct store_loader *ld, struct s2_error *err);

/* ---- readers (one per HTTP thread) ---- */

struct task_row {
    int64_t rowid;
    char *id, *swarm, *title, *body, *requires, *depends_on, *approval, *owner;
    char *result; /* JSON text or NULL */
    char *reason;
    int64_t phase, priority, min_tier, max_attempts, lease_ms, backoff_ms;
    int phase_barrier;
    int state, attempts, approvals;
    uint64_t fence;
    int64_t lease_expires, ready_at, cost_micro, tokens_in, tokens_out, max_cost_micro,
        estimate_micro;
    double estimate_h;
    int64_t created_at, updated_at, finished_at;
    char *paths; /* newline-separated globs, or NULL */
    int kind;
    char *help_for;
};
void task_row_release(struct task_row *r);

int store_reader_open(struct store_reader **out, const char *path, struct s2_error *err);
void store_reader_close(struct store_reader *rd);
/* 1 found (row filled, caller releases), 0 not found, <0 error. */
int store_task_get(struct store_reader *rd, const char *id, struct task_row *row,
                   struct s2_error *err);
int store_task_get_rowid(struct store_reader *rd, int64_t rowid, struct task_row *row,
                         struct s2_error *err);

int store_reader_witness(struct store_reader *rd, const struct witness_filter *f,
                         int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                         struct s2_error *err);
int store_reader_checkpoints(struct store_reader *rd, uint64_t from, int limit, int newest_first,
                             int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                             struct s2_error *err);
/* The Merkle leaf hashes of entries 1..n into out[0..n-1]; fails if the log is shorter. */
int store_reader_leaves(struct store_reader *rd, uint64_t n, merkle_hash *out,
                        struct s2_error *err);
/* A meta value (caller frees) or NULL. */
char *store_reader_meta(struct store_reader *rd, const char *key);
/* A blocked task's thread, oldest first, as a JSON array (caller owns). */
int store_reader_posts(struct store_reader *rd, const char *task, json_t **out,
                       struct s2_error *err);
/* Escalations, newest first: the open ones, or all. */
int store_reader_escalations(struct store_reader *rd, int all, int limit, json_t **out,
                             struct s2_error *err);
/* A read transaction: everything read between these sees one snapshot. */
int store_reader_begin(struct store_reader *rd, struct s2_error *err);
void store_reader_end(struct store_reader *rd);

/* Cursors walk entries (seq >= from) or checkpoints (tree_size >= from) in order, so that
 * a verifier can take both side by side without holding either in memory. next: 1 a row
 * (an entry is the caller's to release), 0 the end, <0 error. */
struct store_cursor;
int store_cursor_witness(struct store_reader *rd, uint64_t from, struct store_cursor **out,
                         struct s2_error *err);
int store_cursor_checkpoints(struct store_reader *rd, uint64_t from, struct store_cursor **out,
                             struct s2_error *err);
int store_cursor_next_entry(struct store_cursor *c, struct witness_entry *w,
                            struct s2_error *err);
int store_cursor_next_checkpoint(struct store_cursor *c, struct checkpoint *cp,
                                 struct s2_error *err);
void store_cursor_close(struct store_cursor *c);

struct task_filter {
    const char *swarm; /* NULL: any */
    int state;         /* -1: any */
    int64_t after;     /* rowid cursor: rows after it */
    int limit;
    int awaiting_approval; /* 1: only unfinished tasks still short of their approvals */
};
/* Calls fn for each matching row in rowid order; the row is released after each call. */
int store_task_list(struct store_reader *rd, const struct task_filter *f,
                    void (*fn)(void *ctx, const struct task_row *row), void *ctx,
                    struct s2_error *err);

/* ---- copying a deployment (s2 migrate) ---- */

/* Copy every table of the deployment at `from` (SQLite, read in one snapshot: it may be in
 * use) into `to` (PostgreSQL: created here, refused if it already holds a deployment), rows
 * as they are, witness log and checkpoints included, in one transaction. progress (may be
 * NULL) is told each table's row count. *entries receives the witness log's length. */
int store_copy(const char *from, const char *to,
               void (*progress)(void *ctx, const char *table, int64_t rows), void *ctx,
               uint64_t *entries, struct s2_error *err);

/* ---- the cluster (PostgreSQL only; cluster.c drives it) ----
 * Several `s2 serve` nodes share one database; exactly one, the leader, runs the engine.
 * Leadership is a session advisory lock held by a dedicated connection (the cluster's, one
 * thread's), and each leadership has an epoch: the leader's store fences every transaction
 * by it, so a node that lost the lock can never commit again. */
struct store_cluster;
struct store_node {
    const char *id, *url, *role; /* role: "leader" | "follower" | "starting" */
    int64_t started_at, heartbeat_at;
};
struct store_leader {
    int64_t epoch, since;
    char *node; /* NULL while a new leader loads */
    char *url;
};
void store_leader_release(struct store_leader *l);
int store_cluster_open(struct store_cluster **out, const char *location, struct s2_error *err);
void store_cluster_close(struct store_cluster *c);
/* After a failure: connect again (a lock held by the lost session is gone). */
int store_cluster_reconnect(struct store_cluster *c, struct s2_error *err);
/* Take the leader lock if free and open a new epoch: 1 leader (*epoch set), 0 another node
 * holds it, <0 error. */
int store_cluster_try_lead(struct store_cluster *c, int64_t now, int64_t *epoch,
                           struct s2_error *err);
/* The leader has loaded and serves: name it in s2_leader (for its epoch only). */
int store_cluster_publish(struct store_cluster *c, const char *node, int64_t epoch,
                          struct s2_error *err);
/* Give the lock back (a leader stepping down while its session lives). */
int store_cluster_resign(struct store_cluster *c, struct s2_error *err);
/* Heartbeat: record this node, read who leads (leader: caller releases). Fails when the
 * cluster connection is lost (and with it the lock, if held). */
int store_cluster_beat(struct store_cluster *c, const struct store_node *me,
                       struct store_leader *leader, struct s2_error *err);
/* A follower's remedy for a leader that holds the lock but has not been heard from for
 * silent_ms (its process hangs, its machine is gone, the network to it is cut): end every
 * database session of that node, which frees the lock and fences it out. Returns the
 * number of sessions ended (0: the leader is alive, or there is none), *who the sessions'
 * name (caller frees), or <0 on error (a role that may not end them, for one). */
int store_cluster_depose(struct store_cluster *c, int64_t silent_ms, char **who,
                         struct s2_error *err);
/* Name this process's sessions after its node (before any store is opened). */
void store_pg_set_node(const char *node_id);
/* Every known node as a JSON array (caller owns). */
int store_cluster_nodes(struct store_cluster *c, json_t **out, struct s2_error *err);
/* Fence the writer's transactions by a leadership epoch (0: none). No-op on SQLite. */
void store_set_fence(struct store *st, int64_t epoch);

/* A store location fit for messages and logs: a URL's password replaced by ***.
 * Caller frees. */
char *store_location_for_humans(const char *location);

#endif
