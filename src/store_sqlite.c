/* store_sqlite.c: the embedded store: SQLite in WAL mode, one writer connection (the engine's
 * thread), a checkpointer connection (timer thread) and read-only connections (HTTP
 * threads). It must never apply a domain rule or write outside a transaction it was given. */
#include "store_impl.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pthread.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void sq_close(struct store *st_);
static void sq_rollback(struct store *st_);
static void sq_reader_close(struct store_reader *rd_);

/* ---- schema ---- */

static const char *const migrations[] = {
    /* 1: the coordinator core */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE tokens(hash BLOB PRIMARY KEY, kind TEXT NOT NULL, swarm TEXT, name TEXT,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE models(name TEXT PRIMARY KEY, tier INTEGER NOT NULL,"
    "  usd_in_micro INTEGER NOT NULL, usd_out_micro INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE swarms(id TEXT PRIMARY KEY, role TEXT NOT NULL DEFAULT '',"
    "  relation INTEGER NOT NULL, capabilities TEXT NOT NULL DEFAULT '',"
    "  budget_micro INTEGER NOT NULL DEFAULT 0, branch TEXT, state INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE agents(id TEXT PRIMARY KEY, swarm TEXT NOT NULL, model TEXT,"
    "  capabilities TEXT NOT NULL DEFAULT '', max_leases INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE tasks(num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, swarm TEXT NOT NULL,"
    "  phase INTEGER NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL DEFAULT '',"
    "  requires TEXT NOT NULL DEFAULT '', min_tier INTEGER NOT NULL, priority INTEGER NOT NULL,"
    "  depends_on TEXT NOT NULL DEFAULT '', max_attempts INTEGER NOT NULL,"
    "  lease_ms INTEGER NOT NULL, backoff_ms INTEGER NOT NULL, approval TEXT NOT NULL,"
    "  phase_barrier INTEGER NOT NULL, estimate_h REAL NOT NULL DEFAULT 0,"
    "  estimate_micro INTEGER NOT NULL DEFAULT 0, max_cost_micro INTEGER NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, owner TEXT,"
    "  fence INTEGER NOT NULL DEFAULT 0, lease_hash BLOB, lease_expires INTEGER NOT NULL DEFAULT 0,"
    "  ready_at INTEGER NOT NULL DEFAULT 0, approvals INTEGER NOT NULL DEFAULT 0,"
    "  cost_micro INTEGER NOT NULL DEFAULT 0, tokens_in INTEGER NOT NULL DEFAULT 0,"
    "  tokens_out INTEGER NOT NULL DEFAULT 0, result TEXT, reason TEXT,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tasks_by_swarm_state ON tasks(swarm, state);"
    "CREATE TABLE approvals(task INTEGER NOT NULL, approver TEXT NOT NULL, at INTEGER NOT NULL,"
    "  PRIMARY KEY(task, approver)) WITHOUT ROWID;",
    /* 2: the witness log (docs/WITNESS.md); append-only below the API too */
    "CREATE TABLE witness(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, actor TEXT,"
    "  swarm TEXT, phase INTEGER, agent TEXT, task TEXT, op TEXT NOT NULL,"
    "  params TEXT NOT NULL, trace_id TEXT, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
    "CREATE INDEX witness_by_task ON witness(task) WHERE task IS NOT NULL;"
    "CREATE TABLE checkpoints(tree_size INTEGER PRIMARY KEY, root_hash BLOB NOT NULL,"
    "  time INTEGER NOT NULL, signature BLOB NOT NULL, frontier TEXT);"
    "CREATE TRIGGER witness_no_update BEFORE UPDATE ON witness"
    "  BEGIN SELECT RAISE(ABORT, 'the witness log is append-only'); END;"
    "CREATE TRIGGER witness_no_delete BEFORE DELETE ON witness"
    "  BEGIN SELECT RAISE(ABORT, 'the witness log is append-only'); END;"
    "CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints"
    "  BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;"
    "CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints"
    "  BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;",
    /* 3: the governor: ledgers, breakers, blockers and their threads, escalations */
    "ALTER TABLE swarms ADD COLUMN spent_micro INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE swarms ADD COLUMN alert_level INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE swarms ADD COLUMN idle_tasks TEXT;"
    "ALTER TABLE swarms ADD COLUMN contract TEXT;"
    "ALTER TABLE agents ADD COLUMN spent_micro INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN breaker_state INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN breaker_failures INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN breaker_opened_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN help_accepted INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE agents ADD COLUMN help_rejected INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN reserved_micro INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN help_for TEXT;"
    "CREATE TABLE blockers(task TEXT PRIMARY KEY, needs TEXT NOT NULL, reason TEXT NOT NULL,"
    "  agent TEXT, created_at INTEGER NOT NULL, state INTEGER NOT NULL,"
    "  escalated INTEGER NOT NULL DEFAULT 0, budget_micro INTEGER NOT NULL DEFAULT 0,"
    "  resolved_at INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE posts(id INTEGER PRIMARY KEY, task TEXT NOT NULL, agent TEXT, help_task TEXT,"
    "  body TEXT NOT NULL, created_at INTEGER NOT NULL, verdict INTEGER NOT NULL DEFAULT 0,"
    "  verdict_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX posts_by_task ON posts(task, id);"
    "CREATE TABLE escalations(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, swarm TEXT, task TEXT,"
    "  agent TEXT, message TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  acked_at INTEGER NOT NULL DEFAULT 0, acked_by TEXT);",
    /* 4: service levels: the window of outcomes of each swarm and agent */
    "ALTER TABLE swarms ADD COLUMN slo BLOB;"
    "ALTER TABLE agents ADD COLUMN slo BLOB;",
    /* 5: path leases */
    "ALTER TABLE tasks ADD COLUMN paths TEXT;",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

enum stmt_id {
    S_META_PUT,
    S_META_GET,
    S_TOKEN_INSERT,
    S_SWARM_INSERT,
    S_SWARM_STATE,
    S_AGENT_INSERT,
    S_AGENT_SEEN,
    S_MODEL_PUT,
    S_TASK_INSERT,
    S_TASK_UPDATE,
    S_TASK_OUTCOME,
    S_APPROVAL_INSERT,
    S_WITNESS_INSERT,
    S_CHECKPOINT_INSERT,
    S_SWARM_LEDGER,
    S_SWARM_BUDGET,
    S_SWARM_IDLE,
    S_SWARM_CONTRACT,
    S_AGENT_GOV,
    S_BLOCKER_PUT,
    S_POST_INSERT,
    S_POST_VERDICT,
    S_ESCALATION_INSERT,
    S_ESCALATION_ACK,
    S_SWARM_SLO,
    S_AGENT_SLO,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_NSTMTS
};

static const char *const stmt_sql[S_NSTMTS] = {
    [S_META_PUT] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_TOKEN_INSERT] = "INSERT INTO tokens(hash, kind, swarm, name, created_at)"
                       " VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_SWARM_INSERT] = "INSERT INTO swarms(id, role, relation, capabilities, budget_micro,"
                       " branch, state, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_SWARM_STATE] = "UPDATE swarms SET state = ?2 WHERE id = ?1",
    [S_AGENT_INSERT] = "INSERT INTO agents(id, swarm, model, capabilities, max_leases,"
                       " created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [S_AGENT_SEEN] = "UPDATE agents SET last_seen = ?2 WHERE id = ?1",
    [S_MODEL_PUT] = "INSERT INTO models(name, tier, usd_in_micro, usd_out_micro)"
                    " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET"
                    " tier = excluded.tier, usd_in_micro = excluded.usd_in_micro,"
                    " usd_out_micro = excluded.usd_out_micro",
    [S_TASK_INSERT] = "INSERT INTO tasks(id, swarm, phase, title, body, requires, min_tier,"
                      " priority, depends_on, max_attempts, lease_ms, backoff_ms, approval,"
                      " phase_barrier, estimate_h, estimate_micro, max_cost_micro, state,"
                      " created_at, updated_at, kind, help_for, paths) VALUES(?1, ?2, ?3, ?4, ?5,"
                      " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19, ?20,"
                      " ?21, ?22)",
    [S_TASK_UPDATE] = "UPDATE tasks SET state = ?2, attempts = ?3, owner = ?4, fence = ?5,"
                      " lease_hash = ?6, lease_expires = ?7, ready_at = ?8, cost_micro = ?9,"
                      " tokens_in = ?10, tokens_out = ?11, approvals = ?12, updated_at = ?13,"
                      " reserved_micro = ?14, min_tier = ?15, approval = coalesce(?16, approval)"
                      " WHERE num = ?1",
    [S_TASK_OUTCOME] = "UPDATE tasks SET result = coalesce(?2, result),"
                       " reason = coalesce(?3, reason),"
                       " finished_at = CASE WHEN ?4 = 0 THEN finished_at ELSE ?4 END WHERE num = ?1",
    [S_APPROVAL_INSERT] = "INSERT INTO approvals(task, approver, at) VALUES(?1, ?2, ?3)",
    [S_WITNESS_INSERT] = "INSERT INTO witness(seq, time, actor, swarm, phase, agent, task, op,"
                         " params, trace_id, prev_hash, hash)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_CHECKPOINT_INSERT] = "INSERT INTO checkpoints(tree_size, root_hash, time, signature,"
                            " frontier) VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_SWARM_LEDGER] = "UPDATE swarms SET spent_micro = ?2, alert_level = ?3 WHERE id = ?1",
    [S_SWARM_BUDGET] = "UPDATE swarms SET budget_micro = ?2 WHERE id = ?1",
    [S_SWARM_IDLE] = "UPDATE swarms SET idle_tasks = ?2 WHERE id = ?1",
    [S_SWARM_CONTRACT] = "UPDATE swarms SET contract = ?2 WHERE id = ?1",
    [S_AGENT_GOV] = "UPDATE agents SET spent_micro = ?2, breaker_state = ?3, breaker_failures = ?4,"
                    " breaker_opened_at = ?5, help_accepted = ?6, help_rejected = ?7 WHERE id = ?1",
    [S_BLOCKER_PUT] = "INSERT INTO blockers(task, needs, reason, agent, created_at, state, escalated,"
                      " budget_micro, resolved_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                      " ON CONFLICT(task) DO UPDATE SET needs = excluded.needs,"
                      " reason = excluded.reason, agent = excluded.agent,"
                      " created_at = excluded.created_at, state = excluded.state,"
                      " escalated = excluded.escalated, budget_micro = excluded.budget_micro,"
                      " resolved_at = excluded.resolved_at",
    [S_POST_INSERT] = "INSERT INTO posts(task, agent, help_task, body, created_at)"
                      " VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_POST_VERDICT] = "UPDATE posts SET verdict = ?2, verdict_at = ?3 WHERE id = ?1",
    [S_ESCALATION_INSERT] = "INSERT INTO escalations(kind, swarm, task, agent, message, created_at)"
                            " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [S_ESCALATION_ACK] = "UPDATE escalations SET acked_at = ?2, acked_by = ?3"
                         " WHERE id = ?1 AND acked_at = 0",
    [S_SWARM_SLO] = "UPDATE swarms SET slo = ?2 WHERE id = ?1",
    [S_AGENT_SLO] = "UPDATE agents SET slo = ?2 WHERE id = ?1",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

struct sq_store {
    struct store base;
    sqlite3 *db;
    sqlite3_stmt *stmt[S_NSTMTS];
    char *path;
    enum durability durability;
    /* the checkpointer: its own connection, used by one timer thread */
    pthread_mutex_t sync_mu;
    sqlite3 *ckpt_db;
    int wal_fd;
};

struct sq_reader {
    struct store_reader base;
    sqlite3 *db;
    sqlite3_stmt *by_id, *by_rowid, *list;
};

static int db_fail(struct s2_error *err, sqlite3 *db, int rc, const char *what)
{
    int ext = db ? sqlite3_extended_errcode(db) : rc;
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    enum s2_err kind = S2_EINTERNAL;
    int prim = ext & 0xff;
    if (prim == SQLITE_FULL || prim == SQLITE_READONLY || prim == SQLITE_IOERR ||
        prim == SQLITE_BUSY || prim == SQLITE_LOCKED || prim == SQLITE_CANTOPEN ||
        prim == SQLITE_PERM)
        kind = S2_EUNAVAIL;
    return s2_fail(err, kind, kind == S2_EUNAVAIL ? "store_unavailable" : "store_error",
                   "store: %s: %s (sqlite %d)", what, msg, ext);
}

static int exec(sqlite3 *db, const char *sql, struct s2_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        s2_fail(err, (rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_READONLY ? S2_EUNAVAIL
                                                                                    : S2_EINTERNAL,
                "store_error", "store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return S2_EINTERNAL;
    }
    return 0;
}

static int open_db(sqlite3 **out, const char *path, int flags, struct s2_error *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        s2_fail(err, S2_EUNAVAIL, "store_unavailable", "cannot open database '%s': %s", path,
                db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return S2_EUNAVAIL;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_extended_result_codes(db, 1);
    *out = db;
    return 0;
}

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

/* Bring the schema to STORE_SCHEMA_VERSION, one transaction per step. */
static int migrate(sqlite3 *db, const char *path, struct s2_error *err)
{
    int v = user_version(db);
    int from = v;
    if (v < 0)
        return db_fail(err, db, SQLITE_ERROR, "read schema version");
    if (v > STORE_SCHEMA_VERSION)
        return s2_fail(err, S2_EINVAL, "schema_too_new",
                       "database '%s' has schema version %d, newer than this s2 (%d): upgrade s2",
                       path, v, STORE_SCHEMA_VERSION);
    for (; v < STORE_SCHEMA_VERSION; v++) {
        char set[64];
        snprintf(set, sizeof set, "PRAGMA user_version = %d", v + 1);
        if (exec(db, "BEGIN IMMEDIATE", err))
            return S2_EUNAVAIL;
        if (exec(db, migrations[v], err) || exec(db, set, err)) {
            exec(db, "ROLLBACK", NULL);
            return S2_EINTERNAL;
        }
        if (exec(db, "COMMIT", err))
            return S2_EUNAVAIL;
        if (from > 0) /* a new database is not news */
            log_info("store: migrated '%s' to schema version %d", path, v + 1);
    }
    return 0;
}

static int sq_create(const char *path, struct s2_error *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        return s2_fail(err, S2_ECONFLICT, "exists", "database '%s' already exists", path);
    sqlite3 *db;
    if (open_db(&db, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err))
        return S2_EUNAVAIL;
    /* tasks, results and threads are in it: readable by its owner only, like the key file
     * (SQLite gives the -wal and -shm files the database file's mode) */
    if (chmod(path, 0600) != 0)
        log_warn("cannot make '%s' private (mode 0600): %s", path, strerror(errno));
    int rc = exec(db, "PRAGMA journal_mode=WAL", err);
    if (!rc)
        rc = migrate(db, path, err);
    sqlite3_close(db);
    if (rc)
        unlink(path);
    return rc;
}

static int sq_schema_version(struct store *st_)
{
    struct sq_store *st = (struct sq_store *)st_;
    return user_version(st->db);
}

static int sq_open(struct store **out, const char *path, enum durability d, struct s2_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return s2_fail(err, S2_ENOTFOUND, "no_database",
                       "no database at '%s': create one with `s2 init --db %s`", path, path);
    sqlite3 *db;
    if (open_db(&db, path, SQLITE_OPEN_READWRITE, err))
        return S2_EUNAVAIL;
    /* Anything that isn't ours fails here, before we write to it. */
    sqlite3_stmt *probe;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &probe, NULL) !=
            SQLITE_OK ||
        sqlite3_step(probe) != SQLITE_ROW) {
        s2_fail(err, S2_EINVAL, "bad_database", "'%s' is not an s2 database: %s", path,
                sqlite3_errmsg(db));
        sqlite3_finalize(probe);
        sqlite3_close(db);
        return S2_EINVAL;
    }
    sqlite3_finalize(probe);
    char pragmas[512];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=0;"
             "PRAGMA cache_size=-131072; PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=OFF;"
             "PRAGMA mmap_size=268435456",
             d == DURABILITY_FULL ? "FULL" : "NORMAL");
    if (exec(db, pragmas, err) || migrate(db, path, err)) {
        sqlite3_close(db);
        return err && err->kind ? err->kind : S2_EINTERNAL;
    }
    struct sq_store *st = xcalloc(1, sizeof *st);
    st->base.ops = &store_sqlite_ops;
    st->db = db;
    st->path = xstrdup(path);
    st->durability = d;
    st->wal_fd = -1;
    pthread_mutex_init(&st->sync_mu, NULL);
    for (int i = 0; i < S_NSTMTS; i++) {
        int rc = sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                                    NULL);
        if (rc != SQLITE_OK) {
            db_fail(err, db, rc, stmt_sql[i]);
            sq_close(&st->base);
            return S2_EINTERNAL;
        }
    }
    *out = &st->base;
    return 0;
}

static void sq_close(struct store *st_)
{
    struct sq_store *st = (struct sq_store *)st_;
    if (!st)
        return;
    for (int i = 0; i < S_NSTMTS; i++)
        sqlite3_finalize(st->stmt[i]);
    if (st->ckpt_db)
        sqlite3_close(st->ckpt_db);
    if (st->wal_fd >= 0)
        close(st->wal_fd);
    /* A clean close checkpoints the WAL into the database file and removes the WAL: with
     * syncs, whatever mode commits ran in. */
    exec(st->db, "PRAGMA synchronous=FULL", NULL);
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->sync_mu);
    free(st->path);
    free(st);
}

/* The flusher's connection and WAL handle, opened on first use (the WAL exists once the
 * writer has committed). */
static int flusher_open(struct sq_store *st, struct s2_error *err)
{
    if (!st->ckpt_db) {
        if (open_db(&st->ckpt_db, st->path, SQLITE_OPEN_READWRITE, err))
            return S2_EUNAVAIL;
        exec(st->ckpt_db, "PRAGMA synchronous=NORMAL", NULL);
    }
    if (st->wal_fd < 0) {
        char *wal = xasprintf("%s-wal", st->path);
        st->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
        free(wal);
    }
    return 0;
}

static int sq_flush(struct store *st_, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    int rc = 0;
    pthread_mutex_lock(&st->sync_mu);
    if ((rc = flusher_open(st, err)))
        goto out;
    /* fdatasync of the WAL covers every frame written so far, whatever a checkpoint can
     * copy: what the writer committed before this call is on disk after it. */
    if (st->wal_fd >= 0 && fdatasync(st->wal_fd) != 0)
        rc = s2_fail(err, S2_EUNAVAIL, "store_unavailable", "store: fdatasync of WAL: %s",
                     strerror(errno));
out:
    pthread_mutex_unlock(&st->sync_mu);
    return rc;
}

static int sq_checkpoint(struct store *st_, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    int rc = 0;
    pthread_mutex_lock(&st->sync_mu);
    if ((rc = flusher_open(st, err)))
        goto out;
    /* Copy committed frames into the database so the WAL does not grow without bound; the
     * writer never checkpoints itself (wal_autocheckpoint=0) so it never stalls on it.
     * This connection syncs the WAL before copying and the database after. */
    int logn = 0, ckpt = 0;
    int src = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &logn, &ckpt);
    if (src != SQLITE_OK && src != SQLITE_BUSY)
        rc = db_fail(err, st->ckpt_db, src, "checkpoint");
out:
    pthread_mutex_unlock(&st->sync_mu);
    return rc;
}

static int sq_sync_commits(struct store *st_, int on, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    /* off: commits only write the WAL; the caller makes them durable with store_flush */
    return exec(st->db, on ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF", err);
}

/* ---- statements ---- */

static sqlite3_stmt *stmt(struct sq_store *st, enum stmt_id id)
{
    sqlite3_stmt *s = st->stmt[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static int run(struct sq_store *st, sqlite3_stmt *s, const char *what, struct s2_error *err)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_fail(err, st->db, rc, what);
    return 0;
}

static int sq_begin(struct store *st_, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    return run(st, stmt(st, S_BEGIN), "begin", err);
}

static int sq_commit(struct store *st_, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    int rc = run(st, stmt(st, S_COMMIT), "commit", err);
    if (rc && sqlite3_get_autocommit(st->db) == 0)
        sq_rollback(st_);
    return rc;
}

static void sq_rollback(struct store *st_)
{
    struct sq_store *st = (struct sq_store *)st_;
    if (sqlite3_get_autocommit(st->db))
        return;
    sqlite3_stmt *s = stmt(st, S_ROLLBACK);
    sqlite3_step(s);
    sqlite3_reset(s);
}

static int sq_meta_put(struct store *st_, const char *key, const char *val, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_META_PUT);
    bind_text(s, 1, key);
    bind_text(s, 2, val);
    return run(st, s, "meta put", err);
}

static char *sq_meta_get(struct store *st_, const char *key)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_META_GET);
    bind_text(s, 1, key);
    char *v = NULL;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = xstrdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    return v;
}

static int sq_token_insert(struct store *st_, const uint8_t hash[TOKEN_HASH_BYTES], const char *kind,
                       const char *swarm, const char *name, int64_t now, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_TOKEN_INSERT);
    sqlite3_bind_blob(s, 1, hash, TOKEN_HASH_BYTES, SQLITE_STATIC);
    bind_text(s, 2, kind);
    bind_text(s, 3, swarm);
    bind_text(s, 4, name);
    sqlite3_bind_int64(s, 5, now);
    return run(st, s, "token insert", err);
}

static int sq_swarm_insert(struct store *st_, const struct swarm_spec *sp, int state, int64_t now,
                       struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    char *caps = strvec_join(&sp->caps, "\n");
    sqlite3_stmt *s = stmt(st, S_SWARM_INSERT);
    bind_text(s, 1, sp->id);
    bind_text(s, 2, sp->role ? sp->role : "");
    sqlite3_bind_int(s, 3, sp->relation);
    bind_text(s, 4, caps);
    sqlite3_bind_int64(s, 5, sp->budget_micro);
    bind_text(s, 6, sp->branch);
    sqlite3_bind_int(s, 7, state);
    sqlite3_bind_int64(s, 8, now);
    int rc = run(st, s, "swarm insert", err);
    free(caps);
    return rc;
}

static int sq_swarm_set_state(struct store *st_, const char *id, int state, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_SWARM_STATE);
    bind_text(s, 1, id);
    sqlite3_bind_int(s, 2, state);
    return run(st, s, "swarm state", err);
}

static int sq_agent_insert(struct store *st_, const struct agent_spec *a, int64_t now,
                       struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    char *caps = strvec_join(&a->caps, "\n");
    sqlite3_stmt *s = stmt(st, S_AGENT_INSERT);
    bind_text(s, 1, a->id);
    bind_text(s, 2, a->swarm);
    bind_text(s, 3, a->model);
    bind_text(s, 4, caps);
    sqlite3_bind_int64(s, 5, a->max_leases);
    sqlite3_bind_int64(s, 6, now);
    int rc = run(st, s, "agent insert", err);
    free(caps);
    return rc;
}

static int sq_agent_seen(struct store *st_, const char *id, int64_t last_seen, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_AGENT_SEEN);
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, last_seen);
    return run(st, s, "agent seen", err);
}

static int sq_model_put(struct store *st_, const struct model_spec *m, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_MODEL_PUT);
    bind_text(s, 1, m->name);
    sqlite3_bind_int64(s, 2, m->tier);
    sqlite3_bind_int64(s, 3, m->usd_in_micro);
    sqlite3_bind_int64(s, 4, m->usd_out_micro);
    return run(st, s, "model put", err);
}

static int sq_task_insert(struct store *st_, const struct task_spec *t, int state, int64_t now,
                      int64_t *rowid, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    char *req = strvec_join(&t->requires, "\n");
    char *deps = strvec_join(&t->depends_on, "\n");
    char approval[32];
    model_format_approval(t->approval_kind, t->approval_n, approval, sizeof approval);
    sqlite3_stmt *s = stmt(st, S_TASK_INSERT);
    bind_text(s, 1, t->id);
    bind_text(s, 2, t->swarm);
    sqlite3_bind_int64(s, 3, t->phase);
    bind_text(s, 4, t->title);
    bind_text(s, 5, t->body ? t->body : "");
    bind_text(s, 6, req);
    sqlite3_bind_int64(s, 7, t->min_tier);
    sqlite3_bind_int64(s, 8, t->priority);
    bind_text(s, 9, deps);
    sqlite3_bind_int64(s, 10, t->max_attempts);
    sqlite3_bind_int64(s, 11, t->lease_ms);
    sqlite3_bind_int64(s, 12, t->backoff_ms);
    bind_text(s, 13, approval);
    sqlite3_bind_int(s, 14, t->phase_barrier);
    sqlite3_bind_double(s, 15, t->estimate_h);
    sqlite3_bind_int64(s, 16, t->estimate_micro);
    sqlite3_bind_int64(s, 17, t->max_cost_micro);
    sqlite3_bind_int(s, 18, state);
    sqlite3_bind_int64(s, 19, now);
    sqlite3_bind_int(s, 20, t->kind);
    bind_text(s, 21, t->help_for);
    char *paths = t->paths.n ? strvec_join(&t->paths, "\n") : NULL;
    bind_text(s, 22, paths);
    int rc = run(st, s, "task insert", err);
    free(paths);
    if (!rc)
        *rowid = sqlite3_last_insert_rowid(st->db);
    free(req);
    free(deps);
    return rc;
}

static int sq_task_update(struct store *st_, const struct task_dyn *d, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_TASK_UPDATE);
    sqlite3_bind_int64(s, 1, d->rowid);
    sqlite3_bind_int(s, 2, d->state);
    sqlite3_bind_int(s, 3, d->attempts);
    bind_text(s, 4, d->owner);
    sqlite3_bind_int64(s, 5, (int64_t)d->fence);
    if (d->lease_hash)
        sqlite3_bind_blob(s, 6, d->lease_hash, TOKEN_HASH_BYTES, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 6);
    sqlite3_bind_int64(s, 7, d->lease_expires);
    sqlite3_bind_int64(s, 8, d->ready_at);
    sqlite3_bind_int64(s, 9, d->cost_micro);
    sqlite3_bind_int64(s, 10, d->tokens_in);
    sqlite3_bind_int64(s, 11, d->tokens_out);
    sqlite3_bind_int(s, 12, d->approvals);
    sqlite3_bind_int64(s, 13, d->updated_at);
    sqlite3_bind_int64(s, 14, d->reserved_micro);
    sqlite3_bind_int64(s, 15, d->min_tier);
    bind_text(s, 16, d->approval);
    return run(st, s, "task update", err);
}

static int sq_task_outcome(struct store *st_, int64_t rowid, const char *result, const char *reason,
                       int64_t finished_at, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_TASK_OUTCOME);
    sqlite3_bind_int64(s, 1, rowid);
    bind_text(s, 2, result);
    bind_text(s, 3, reason);
    sqlite3_bind_int64(s, 4, finished_at);
    return run(st, s, "task outcome", err);
}

static int sq_approval_insert(struct store *st_, int64_t task_rowid, const char *approver, int64_t now,
                          struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_APPROVAL_INSERT);
    sqlite3_bind_int64(s, 1, task_rowid);
    bind_text(s, 2, approver);
    sqlite3_bind_int64(s, 3, now);
    return run(st, s, "approval insert", err);
}

static int sq_swarm_ledger(struct store *st_, const char *id, int64_t spent, int alert_level,
                       struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_SWARM_LEDGER);
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, spent);
    sqlite3_bind_int(s, 3, alert_level);
    return run(st, s, "swarm ledger", err);
}

static int sq_slo(struct store *st_, int agent, const char *id, const void *blob, size_t len,
              struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, agent ? S_AGENT_SLO : S_SWARM_SLO);
    bind_text(s, 1, id);
    sqlite3_bind_blob(s, 2, blob, (int)len, SQLITE_STATIC);
    return run(st, s, "slo window", err);
}

static int sq_swarm_budget(struct store *st_, const char *id, int64_t budget, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_SWARM_BUDGET);
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, budget);
    return run(st, s, "swarm budget", err);
}

static int sq_swarm_text(struct store *st_, const char *id, int which, const char *json,
                     struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, which == STORE_SWARM_IDLE ? S_SWARM_IDLE : S_SWARM_CONTRACT);
    bind_text(s, 1, id);
    bind_text(s, 2, json);
    return run(st, s, "swarm update", err);
}

static int sq_agent_gov(struct store *st_, const struct agent_gov *g, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_AGENT_GOV);
    bind_text(s, 1, g->id);
    sqlite3_bind_int64(s, 2, g->spent_micro);
    sqlite3_bind_int(s, 3, g->breaker_state);
    sqlite3_bind_int(s, 4, g->breaker_failures);
    sqlite3_bind_int64(s, 5, g->breaker_opened_at);
    sqlite3_bind_int64(s, 6, g->accepted);
    sqlite3_bind_int64(s, 7, g->rejected);
    return run(st, s, "agent governor state", err);
}

static int sq_blocker_put(struct store *st_, const struct load_blocker *b, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_BLOCKER_PUT);
    bind_text(s, 1, b->task);
    bind_text(s, 2, b->needs);
    bind_text(s, 3, b->reason);
    bind_text(s, 4, b->agent);
    sqlite3_bind_int64(s, 5, b->created_at);
    sqlite3_bind_int(s, 6, b->state);
    sqlite3_bind_int(s, 7, b->escalated);
    sqlite3_bind_int64(s, 8, b->budget_micro);
    sqlite3_bind_int64(s, 9, b->resolved_at);
    return run(st, s, "blocker", err);
}

static int sq_post_insert(struct store *st_, const char *task, const char *agent, const char *help_task,
                      const char *body, int64_t now, int64_t *id, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_POST_INSERT);
    bind_text(s, 1, task);
    bind_text(s, 2, agent);
    bind_text(s, 3, help_task);
    bind_text(s, 4, body);
    sqlite3_bind_int64(s, 5, now);
    int rc = run(st, s, "post insert", err);
    if (!rc)
        *id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

static int sq_post_verdict(struct store *st_, int64_t id, int verdict, int64_t now,
                       struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_POST_VERDICT);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, verdict);
    sqlite3_bind_int64(s, 3, now);
    return run(st, s, "post verdict", err);
}

static int sq_escalation_insert(struct store *st_, const char *kind, const char *swarm,
                            const char *task, const char *agent, const char *message, int64_t now,
                            int64_t *id, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_ESCALATION_INSERT);
    bind_text(s, 1, kind);
    bind_text(s, 2, swarm);
    bind_text(s, 3, task);
    bind_text(s, 4, agent);
    bind_text(s, 5, message);
    sqlite3_bind_int64(s, 6, now);
    int rc = run(st, s, "escalation insert", err);
    if (!rc)
        *id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

static int sq_escalation_ack(struct store *st_, int64_t id, const char *by, int64_t now,
                         struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_ESCALATION_ACK);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now);
    bind_text(s, 3, by);
    int rc = run(st, s, "escalation ack", err);
    if (!rc && sqlite3_changes(st->db) == 0) {
        /* either there is none, or it was acknowledged before: say which */
        sqlite3_stmt *q;
        int exists = 0;
        if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM escalations WHERE id = ?1", -1, &q, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_int64(q, 1, id);
            exists = sqlite3_step(q) == SQLITE_ROW;
            sqlite3_finalize(q);
        }
        rc = exists ? s2_fail(err, S2_ECONFLICT, "already_acked",
                              "escalation %lld was already acknowledged", (long long)id)
                    : s2_fail(err, S2_ENOTFOUND, "not_found", "no escalation %lld", (long long)id);
    }
    return rc;
}

/* ---- loading ---- */

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : NULL;
}

static int load_query(struct sq_store *st, const char *sql, struct s2_error *err,
                      int (*row)(sqlite3_stmt *s, const struct store_loader *ld),
                      const struct store_loader *ld)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(err, st->db, rc, sql);
    int ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ret = row(s, ld);
        if (ret) {
            s2_fail(err, S2_EINTERNAL, "load_failed", "store: loading stopped at a row of: %.60s",
                    sql);
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = db_fail(err, st->db, rc, sql);
    sqlite3_finalize(s);
    return ret;
}

static int row_token(sqlite3_stmt *s, const struct store_loader *ld)
{
    if (!ld->token || sqlite3_column_bytes(s, 0) != TOKEN_HASH_BYTES)
        return 0;
    struct load_token t = {sqlite3_column_blob(s, 0), col_text(s, 1), col_text(s, 2),
                           col_text(s, 3)};
    return ld->token(ld->ctx, &t);
}

static int row_model(sqlite3_stmt *s, const struct store_loader *ld)
{
    struct model_spec m = {(char *)col_text(s, 0), sqlite3_column_int64(s, 1),
                           sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3)};
    return ld->model ? ld->model(ld->ctx, &m) : 0;
}

static int row_swarm(sqlite3_stmt *s, const struct store_loader *ld)
{
    struct load_swarm w = {
        .id = col_text(s, 0),
        .role = col_text(s, 1),
        .relation = sqlite3_column_int(s, 2),
        .caps = col_text(s, 3),
        .budget_micro = sqlite3_column_int64(s, 4),
        .branch = col_text(s, 5),
        .state = sqlite3_column_int(s, 6),
        .created_at = sqlite3_column_int64(s, 7),
        .spent_micro = sqlite3_column_int64(s, 8),
        .alert_level = sqlite3_column_int(s, 9),
        .idle_tasks = col_text(s, 10),
        .contract = col_text(s, 11),
        .slo = sqlite3_column_blob(s, 12),
        .slo_len = (size_t)sqlite3_column_bytes(s, 12),
    };
    return ld->swarm ? ld->swarm(ld->ctx, &w) : 0;
}

static int row_agent(sqlite3_stmt *s, const struct store_loader *ld)
{
    struct load_agent a = {
        .id = col_text(s, 0),
        .swarm = col_text(s, 1),
        .model = col_text(s, 2),
        .caps = col_text(s, 3),
        .max_leases = sqlite3_column_int64(s, 4),
        .created_at = sqlite3_column_int64(s, 5),
        .last_seen = sqlite3_column_int64(s, 6),
        .gov = {.id = col_text(s, 0),
                .spent_micro = sqlite3_column_int64(s, 7),
                .breaker_state = sqlite3_column_int(s, 8),
                .breaker_failures = sqlite3_column_int(s, 9),
                .breaker_opened_at = sqlite3_column_int64(s, 10),
                .accepted = sqlite3_column_int64(s, 11),
                .rejected = sqlite3_column_int64(s, 12)},
        .slo = sqlite3_column_blob(s, 13),
        .slo_len = (size_t)sqlite3_column_bytes(s, 13),
    };
    return ld->agent ? ld->agent(ld->ctx, &a) : 0;
}

static int row_task(sqlite3_stmt *s, const struct store_loader *ld)
{
    struct load_task t = {
        .rowid = sqlite3_column_int64(s, 0),
        .id = col_text(s, 1),
        .swarm = col_text(s, 2),
        .phase = sqlite3_column_int64(s, 3),
        .requires = col_text(s, 4),
        .min_tier = sqlite3_column_int64(s, 5),
        .priority = sqlite3_column_int64(s, 6),
        .depends_on = col_text(s, 7),
        .max_attempts = sqlite3_column_int64(s, 8),
        .lease_ms = sqlite3_column_int64(s, 9),
        .backoff_ms = sqlite3_column_int64(s, 10),
        .approval = col_text(s, 11),
        .phase_barrier = sqlite3_column_int(s, 12),
        .state = sqlite3_column_int(s, 13),
        .attempts = sqlite3_column_int(s, 14),
        .owner = col_text(s, 15),
        .fence = (uint64_t)sqlite3_column_int64(s, 16),
        .lease_hash = sqlite3_column_bytes(s, 17) == TOKEN_HASH_BYTES ? sqlite3_column_blob(s, 17)
                                                                      : NULL,
        .lease_expires = sqlite3_column_int64(s, 18),
        .ready_at = sqlite3_column_int64(s, 19),
        .approvals = sqlite3_column_int(s, 20),
        .cost_micro = sqlite3_column_int64(s, 21),
        .tokens_in = sqlite3_column_int64(s, 22),
        .tokens_out = sqlite3_column_int64(s, 23),
        .max_cost_micro = sqlite3_column_int64(s, 24),
        .created_at = sqlite3_column_int64(s, 25),
        .reserved_micro = sqlite3_column_int64(s, 26),
        .kind = sqlite3_column_int(s, 27),
        .help_for = col_text(s, 28),
        .estimate_micro = sqlite3_column_int64(s, 29),
        .paths = col_text(s, 30),
    };
    return ld->task ? ld->task(ld->ctx, &t) : 0;
}

static int row_blocker(sqlite3_stmt *s, const struct store_loader *ld)
{
    struct load_blocker b = {col_text(s, 0), col_text(s, 1), col_text(s, 2), col_text(s, 3),
                             sqlite3_column_int64(s, 4), sqlite3_column_int(s, 5),
                             sqlite3_column_int(s, 6), sqlite3_column_int64(s, 7),
                             sqlite3_column_int64(s, 8)};
    return ld->blocker ? ld->blocker(ld->ctx, &b) : 0;
}

static int row_approval(sqlite3_stmt *s, const struct store_loader *ld)
{
    struct load_approval a = {sqlite3_column_int64(s, 0), col_text(s, 1)};
    return ld->approval ? ld->approval(ld->ctx, &a) : 0;
}

static int sq_load(struct store *st_, const struct store_loader *ld, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    int rc = exec(st->db, "BEGIN", err);
    if (rc)
        return rc;
    rc = load_query(st, "SELECT name, tier, usd_in_micro, usd_out_micro FROM models ORDER BY name",
                    err, row_model, ld);
    if (!rc)
        rc = load_query(st, "SELECT hash, kind, swarm, name FROM tokens", err, row_token, ld);
    if (!rc)
        rc = load_query(st,
                        "SELECT id, role, relation, capabilities, budget_micro, branch, state,"
                        " created_at, spent_micro, alert_level, idle_tasks, contract, slo"
                        " FROM swarms ORDER BY created_at, id",
                        err, row_swarm, ld);
    if (!rc)
        rc = load_query(st,
                        "SELECT id, swarm, model, capabilities, max_leases, created_at, last_seen,"
                        " spent_micro, breaker_state, breaker_failures, breaker_opened_at,"
                        " help_accepted, help_rejected, slo FROM agents ORDER BY created_at, id",
                        err, row_agent, ld);
    if (!rc)
        rc = load_query(st,
                        "SELECT num, id, swarm, phase, requires, min_tier, priority, depends_on,"
                        " max_attempts, lease_ms, backoff_ms, approval, phase_barrier, state,"
                        " attempts, owner, fence, lease_hash, lease_expires, ready_at, approvals,"
                        " cost_micro, tokens_in, tokens_out, max_cost_micro, created_at,"
                        " reserved_micro, kind, help_for, estimate_micro, paths FROM tasks"
                        " ORDER BY num",
                        err, row_task, ld);
    if (!rc)
        rc = load_query(st, "SELECT task, approver FROM approvals ORDER BY task, at", err,
                        row_approval, ld);
    if (!rc)
        rc = load_query(st,
                        "SELECT task, needs, reason, agent, created_at, state, escalated,"
                        " budget_micro, resolved_at FROM blockers WHERE state = 0"
                        " ORDER BY created_at",
                        err, row_blocker, ld);
    exec(st->db, "COMMIT", NULL);
    return rc;
}

/* ---- readers ---- */

#define TASK_COLS                                                                              \
    "num, id, swarm, title, body, requires, depends_on, approval, owner, result, reason,"      \
    " phase, priority, min_tier, max_attempts, lease_ms, backoff_ms, phase_barrier, state,"    \
    " attempts, approvals, fence, lease_expires, ready_at, cost_micro, tokens_in, tokens_out," \
    " max_cost_micro, estimate_micro, estimate_h, created_at, updated_at, finished_at, paths,"  \
    " kind, help_for"

static char *dup_col(sqlite3_stmt *s, int i)
{
    const char *t = col_text(s, i);
    return t ? xstrdup(t) : NULL;
}

static void fill_row(sqlite3_stmt *s, struct task_row *r)
{
    r->rowid = sqlite3_column_int64(s, 0);
    r->id = dup_col(s, 1);
    r->swarm = dup_col(s, 2);
    r->title = dup_col(s, 3);
    r->body = dup_col(s, 4);
    r->requires = dup_col(s, 5);
    r->depends_on = dup_col(s, 6);
    r->approval = dup_col(s, 7);
    r->owner = dup_col(s, 8);
    r->result = dup_col(s, 9);
    r->reason = dup_col(s, 10);
    r->phase = sqlite3_column_int64(s, 11);
    r->priority = sqlite3_column_int64(s, 12);
    r->min_tier = sqlite3_column_int64(s, 13);
    r->max_attempts = sqlite3_column_int64(s, 14);
    r->lease_ms = sqlite3_column_int64(s, 15);
    r->backoff_ms = sqlite3_column_int64(s, 16);
    r->phase_barrier = sqlite3_column_int(s, 17);
    r->state = sqlite3_column_int(s, 18);
    r->attempts = sqlite3_column_int(s, 19);
    r->approvals = sqlite3_column_int(s, 20);
    r->fence = (uint64_t)sqlite3_column_int64(s, 21);
    r->lease_expires = sqlite3_column_int64(s, 22);
    r->ready_at = sqlite3_column_int64(s, 23);
    r->cost_micro = sqlite3_column_int64(s, 24);
    r->tokens_in = sqlite3_column_int64(s, 25);
    r->tokens_out = sqlite3_column_int64(s, 26);
    r->max_cost_micro = sqlite3_column_int64(s, 27);
    r->estimate_micro = sqlite3_column_int64(s, 28);
    r->estimate_h = sqlite3_column_double(s, 29);
    r->created_at = sqlite3_column_int64(s, 30);
    r->updated_at = sqlite3_column_int64(s, 31);
    r->finished_at = sqlite3_column_int64(s, 32);
    r->paths = dup_col(s, 33);
    r->kind = sqlite3_column_int(s, 34);
    r->help_for = dup_col(s, 35);
}

static int sq_reader_open(struct store_reader **out, const char *path, struct s2_error *err)
{
    sqlite3 *db;
    if (open_db(&db, path, SQLITE_OPEN_READONLY, err))
        return S2_EUNAVAIL;
    struct sq_reader *rd = xcalloc(1, sizeof *rd);
    rd->base.ops = &store_sqlite_ops;
    rd->db = db;
    exec(db, "PRAGMA query_only=1; PRAGMA mmap_size=0; PRAGMA cache_size=-16384", NULL);
    const char *q1 = "SELECT " TASK_COLS " FROM tasks WHERE id = ?1";
    const char *q2 = "SELECT " TASK_COLS " FROM tasks WHERE num = ?1";
    const char *q3 = "SELECT " TASK_COLS " FROM tasks WHERE (?1 IS NULL OR swarm = ?1)"
                     " AND (?2 < 0 OR state = ?2) AND num > ?3"
                     " AND (?5 = 0 OR (approval <> 'none' AND state IN (0, 1) AND approvals <"
                     "  (CASE WHEN approval = 'human' THEN 1"
                     "   ELSE CAST(substr(approval, 8) AS INTEGER) END)))"
                     " ORDER BY num LIMIT ?4";
    int rc = sqlite3_prepare_v3(db, q1, -1, SQLITE_PREPARE_PERSISTENT, &rd->by_id, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(db, q2, -1, SQLITE_PREPARE_PERSISTENT, &rd->by_rowid, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(db, q3, -1, SQLITE_PREPARE_PERSISTENT, &rd->list, NULL);
    if (rc != SQLITE_OK) {
        db_fail(err, db, rc, "prepare reader");
        sq_reader_close(&rd->base);
        return S2_EINTERNAL;
    }
    *out = &rd->base;
    return 0;
}

static void sq_reader_close(struct store_reader *rd_)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    if (!rd)
        return;
    sqlite3_finalize(rd->by_id);
    sqlite3_finalize(rd->by_rowid);
    sqlite3_finalize(rd->list);
    sqlite3_close(rd->db);
    free(rd);
}

static int get_one(struct sq_reader *rd, sqlite3_stmt *s, struct task_row *row,
                   struct s2_error *err)
{
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        fill_row(s, row);
        ret = 1;
    } else if (rc != SQLITE_DONE) {
        ret = db_fail(err, rd->db, rc, "read task");
    }
    sqlite3_reset(s);
    return ret;
}

static int sq_task_get(struct store_reader *rd_, const char *id, struct task_row *row,
                   struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    sqlite3_bind_text(rd->by_id, 1, id, -1, SQLITE_STATIC);
    return get_one(rd, rd->by_id, row, err);
}

static int sq_task_get_rowid(struct store_reader *rd_, int64_t rowid, struct task_row *row,
                         struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    sqlite3_bind_int64(rd->by_rowid, 1, rowid);
    return get_one(rd, rd->by_rowid, row, err);
}

static int sq_task_list(struct store_reader *rd_, const struct task_filter *f,
                    void (*fn)(void *ctx, const struct task_row *row), void *ctx,
                    struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    sqlite3_stmt *s = rd->list;
    sqlite3_reset(s);
    if (f->swarm)
        sqlite3_bind_text(s, 1, f->swarm, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 1);
    sqlite3_bind_int(s, 2, f->state);
    sqlite3_bind_int64(s, 3, f->after);
    sqlite3_bind_int(s, 4, f->limit);
    sqlite3_bind_int(s, 5, f->awaiting_approval);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct task_row row;
        fill_row(s, &row);
        fn(ctx, &row);
        task_row_release(&row);
    }
    if (rc != SQLITE_DONE)
        ret = db_fail(err, rd->db, rc, "list tasks");
    sqlite3_reset(s);
    return ret;
}

/* ---- witness log ---- */

static int sq_witness_append(struct store *st_, const struct witness_entry *w, struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_WITNESS_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)w->seq);
    sqlite3_bind_int64(s, 2, w->time);
    bind_text(s, 3, w->actor);
    bind_text(s, 4, w->swarm);
    if (w->has_phase)
        sqlite3_bind_int64(s, 5, w->phase);
    else
        sqlite3_bind_null(s, 5);
    bind_text(s, 6, w->agent);
    bind_text(s, 7, w->task);
    bind_text(s, 8, w->op);
    bind_text(s, 9, w->params);
    bind_text(s, 10, w->trace_id);
    sqlite3_bind_blob(s, 11, w->prev_hash, MERKLE_HASH, SQLITE_STATIC);
    sqlite3_bind_blob(s, 12, w->hash, MERKLE_HASH, SQLITE_STATIC);
    return run(st, s, "witness append", err);
}

static char *col_dup(sqlite3_stmt *s, int i);

static int sq_checkpoint_add(struct store *st_, const struct checkpoint *c, const char *frontier,
                         struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s = stmt(st, S_CHECKPOINT_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)c->tree_size);
    sqlite3_bind_blob(s, 2, c->root_hash, MERKLE_HASH, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, c->time);
    sqlite3_bind_blob(s, 4, c->signature, sizeof c->signature, SQLITE_STATIC);
    bind_text(s, 5, frontier);
    return run(st, s, "checkpoint add", err);
}

static char *sq_checkpoint_frontier(struct store *st_, uint64_t tree_size)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s;
    char *v = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT frontier FROM checkpoints WHERE tree_size = ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(s, 1, (int64_t)tree_size);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = col_dup(s, 0);
    sqlite3_finalize(s);
    return v;
}

#define WITNESS_COLS                                                                           \
    "seq, time, actor, swarm, phase, agent, task, op, params, trace_id, prev_hash, hash"

static char *col_dup(sqlite3_stmt *s, int i)
{
    const char *t = col_text(s, i);
    return t ? xstrdup(t) : NULL;
}

/* A blob column into a fixed-size field; a wrong size leaves zeros (and fails verify). */
static void col_blob(sqlite3_stmt *s, int i, void *out, size_t n)
{
    memset(out, 0, n);
    if (sqlite3_column_type(s, i) == SQLITE_BLOB && (size_t)sqlite3_column_bytes(s, i) == n)
        memcpy(out, sqlite3_column_blob(s, i), n);
}

static void fill_witness(sqlite3_stmt *s, struct witness_entry *w)
{
    memset(w, 0, sizeof *w);
    w->seq = (uint64_t)sqlite3_column_int64(s, 0);
    w->time = sqlite3_column_int64(s, 1);
    w->actor = col_dup(s, 2);
    w->swarm = col_dup(s, 3);
    w->has_phase = sqlite3_column_type(s, 4) != SQLITE_NULL;
    w->phase = sqlite3_column_int64(s, 4);
    w->agent = col_dup(s, 5);
    w->task = col_dup(s, 6);
    w->op = col_dup(s, 7);
    w->params = col_dup(s, 8);
    w->trace_id = col_dup(s, 9);
    col_blob(s, 10, w->prev_hash, MERKLE_HASH);
    col_blob(s, 11, w->hash, MERKLE_HASH);
}

static void fill_checkpoint(sqlite3_stmt *s, struct checkpoint *c)
{
    c->tree_size = (uint64_t)sqlite3_column_int64(s, 0);
    col_blob(s, 1, c->root_hash, MERKLE_HASH);
    c->time = sqlite3_column_int64(s, 2);
    col_blob(s, 3, c->signature, sizeof c->signature);
}

static int witness_query(sqlite3 *db, const struct witness_filter *f,
                         int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                         struct s2_error *err)
{
    /* Newest first when asked (show), else in log order from a seq (export, verify). */
    const char *sql = f->newest_first
                          ? "SELECT " WITNESS_COLS " FROM witness WHERE seq <= ?1"
                            " AND (?2 IS NULL OR task = ?2) AND (?3 IS NULL OR swarm = ?3)"
                            " AND (?4 IS NULL OR agent = ?4) ORDER BY seq DESC LIMIT ?5"
                          : "SELECT " WITNESS_COLS " FROM witness WHERE seq >= ?1 AND seq <= ?6"
                            " AND (?2 IS NULL OR task = ?2) AND (?3 IS NULL OR swarm = ?3)"
                            " AND (?4 IS NULL OR agent = ?4) ORDER BY seq LIMIT ?5";
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(err, db, rc, "read witness");
    sqlite3_bind_int64(s, 1, f->newest_first && !f->from ? INT64_MAX : (int64_t)f->from);
    const char *keys[3] = {f->task, f->swarm, f->agent};
    for (int i = 0; i < 3; i++) {
        if (keys[i])
            sqlite3_bind_text(s, 2 + i, keys[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 2 + i);
    }
    sqlite3_bind_int64(s, 5, f->limit > 0 ? f->limit : -1);
    if (!f->newest_first)
        sqlite3_bind_int64(s, 6, f->until ? (int64_t)f->until : INT64_MAX);
    int ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct witness_entry w;
        fill_witness(s, &w);
        int stop = fn(ctx, &w);
        witness_entry_release(&w);
        if (stop) {
            ret = stop;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = db_fail(err, db, rc, "read witness");
    sqlite3_finalize(s);
    return ret;
}

static int checkpoint_query(sqlite3 *db, uint64_t from, int limit, int newest_first,
                            int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                            struct s2_error *err)
{
    const char *sql = newest_first ? "SELECT tree_size, root_hash, time, signature FROM checkpoints"
                                     " WHERE tree_size <= ?1 ORDER BY tree_size DESC LIMIT ?2"
                                   : "SELECT tree_size, root_hash, time, signature FROM checkpoints"
                                     " WHERE tree_size >= ?1 ORDER BY tree_size LIMIT ?2";
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(err, db, rc, "read checkpoints");
    sqlite3_bind_int64(s, 1, newest_first && !from ? INT64_MAX : (int64_t)from);
    sqlite3_bind_int64(s, 2, limit > 0 ? limit : -1);
    int ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct checkpoint c;
        fill_checkpoint(s, &c);
        if ((ret = fn(ctx, &c)))
            break;
    }
    if (!ret && rc != SQLITE_DONE)
        ret = db_fail(err, db, rc, "read checkpoints");
    sqlite3_finalize(s);
    return ret;
}

static int sq_witness_scan(struct store *st_, const struct witness_filter *f,
                       int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                       struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    return witness_query(st->db, f, fn, ctx, err);
}

static int sq_checkpoint_scan(struct store *st_, uint64_t from, int limit, int newest_first,
                          int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                          struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    return checkpoint_query(st->db, from, limit, newest_first, fn, ctx, err);
}

static int sq_reader_witness(struct store_reader *rd_, const struct witness_filter *f,
                         int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                         struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    return witness_query(rd->db, f, fn, ctx, err);
}

static int sq_reader_checkpoints(struct store_reader *rd_, uint64_t from, int limit, int newest_first,
                             int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                             struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    return checkpoint_query(rd->db, from, limit, newest_first, fn, ctx, err);
}

static int sq_reader_leaves(struct store_reader *rd_, uint64_t n, merkle_hash *out,
                        struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(rd->db, "SELECT seq, hash FROM witness WHERE seq <= ?1 ORDER BY seq",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(err, rd->db, rc, "read witness hashes");
    sqlite3_bind_int64(s, 1, (int64_t)n);
    uint64_t i = 0;
    int ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        merkle_hash h;
        if ((uint64_t)sqlite3_column_int64(s, 0) != i + 1) {
            ret = s2_fail(err, S2_EINTERNAL, "witness_gap", "witness log has a gap before entry %" PRIu64,
                          i + 1);
            break;
        }
        col_blob(s, 1, h, MERKLE_HASH);
        merkle_leaf(h, MERKLE_HASH, out[i++]);
    }
    if (!ret && rc != SQLITE_DONE)
        ret = db_fail(err, rd->db, rc, "read witness hashes");
    if (!ret && i != n)
        ret = s2_fail(err, S2_ENOTFOUND, "witness_short", "the witness log has %" PRIu64
                      " entries, fewer than %" PRIu64, i, n);
    sqlite3_finalize(s);
    return ret;
}

static char *sq_reader_meta(struct store_reader *rd_, const char *key)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    sqlite3_stmt *s;
    char *v = NULL;
    if (sqlite3_prepare_v2(rd->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL) !=
        SQLITE_OK)
        return NULL;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = col_dup(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int sq_reader_begin(struct store_reader *rd_, struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    return exec(rd->db, "BEGIN", err);
}

static void sq_reader_end(struct store_reader *rd_)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    exec(rd->db, "COMMIT", NULL);
}

/* ---- cursors (verify, export: entries and checkpoints walked side by side) ---- */

struct sq_cursor {
    struct store_cursor base;
    sqlite3 *db;
    sqlite3_stmt *s;
};

static int cursor_open(struct sq_reader *rd, const char *sql, uint64_t from,
                       struct store_cursor **out, struct s2_error *err)
{
    struct sq_cursor *c = xcalloc(1, sizeof *c);
    c->base.ops = &store_sqlite_ops;
    c->db = rd->db;
    int rc = sqlite3_prepare_v2(rd->db, sql, -1, &c->s, NULL);
    if (rc != SQLITE_OK) {
        free(c);
        return db_fail(err, rd->db, rc, "open cursor");
    }
    sqlite3_bind_int64(c->s, 1, (int64_t)from);
    *out = &c->base;
    return 0;
}

static int sq_cursor_witness(struct store_reader *rd_, uint64_t from, struct store_cursor **out,
                         struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    return cursor_open(rd, "SELECT " WITNESS_COLS " FROM witness WHERE seq >= ?1 ORDER BY seq",
                       from, out, err);
}

static int sq_cursor_checkpoints(struct store_reader *rd_, uint64_t from, struct store_cursor **out,
                             struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    return cursor_open(rd,
                       "SELECT tree_size, root_hash, time, signature FROM checkpoints"
                       " WHERE tree_size >= ?1 ORDER BY tree_size",
                       from, out, err);
}

static int cursor_step(struct sq_cursor *c, struct s2_error *err)
{
    int rc = sqlite3_step(c->s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(err, c->db, rc, "read cursor");
}

static int sq_cursor_next_entry(struct store_cursor *c_, struct witness_entry *w,
                            struct s2_error *err)
{
    struct sq_cursor *c = (struct sq_cursor *)c_;
    int rc = cursor_step(c, err);
    if (rc == 1)
        fill_witness(c->s, w);
    return rc;
}

static int sq_cursor_next_checkpoint(struct store_cursor *c_, struct checkpoint *cp,
                                 struct s2_error *err)
{
    struct sq_cursor *c = (struct sq_cursor *)c_;
    int rc = cursor_step(c, err);
    if (rc == 1)
        fill_checkpoint(c->s, cp);
    return rc;
}

static void sq_cursor_close(struct store_cursor *c_)
{
    struct sq_cursor *c = (struct sq_cursor *)c_;
    if (!c)
        return;
    sqlite3_finalize(c->s);
    free(c);
}

static int sq_post_get(struct store *st_, int64_t id, char **task, char **agent, int *verdict,
                   struct s2_error *err)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(st->db, "SELECT task, agent, verdict FROM posts WHERE id = ?1", -1,
                                &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(err, st->db, rc, "read post");
    sqlite3_bind_int64(s, 1, id);
    int ret = 0;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *task = col_dup(s, 0);
        *agent = col_dup(s, 1);
        *verdict = sqlite3_column_int(s, 2);
        ret = 1;
    } else if (rc != SQLITE_DONE) {
        ret = db_fail(err, st->db, rc, "read post");
    }
    sqlite3_finalize(s);
    return ret;
}

static int sq_reader_posts(struct store_reader *rd_, const char *task, json_t **out,
                       struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(rd->db,
                                "SELECT id, agent, help_task, body, created_at, verdict, verdict_at"
                                " FROM posts WHERE task = ?1 ORDER BY id",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(err, rd->db, rc, "read thread");
    sqlite3_bind_text(s, 1, task, -1, SQLITE_STATIC);
    json_t *a = json_array();
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int v = sqlite3_column_int(s, 5);
        json_t *o = json_pack("{s:I,s:s?,s:s?,s:s,s:I,s:s}", "id",
                              (json_int_t)sqlite3_column_int64(s, 0), "agent", col_text(s, 1),
                              "help_task", col_text(s, 2), "body", col_text(s, 3) ? col_text(s, 3) : "",
                              "created_at", (json_int_t)sqlite3_column_int64(s, 4), "verdict",
                              v > 0 ? "accepted" : v < 0 ? "rejected" : "pending");
        if (o)
            json_array_append_new(a, o);
    }
    int ret = 0;
    if (rc != SQLITE_DONE)
        ret = db_fail(err, rd->db, rc, "read thread");
    sqlite3_finalize(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    return 0;
}

static int sq_reader_escalations(struct store_reader *rd_, int all, int limit, json_t **out,
                             struct s2_error *err)
{
    struct sq_reader *rd = (struct sq_reader *)rd_;
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(rd->db,
                                "SELECT id, kind, swarm, task, agent, message, created_at, acked_at,"
                                " acked_by FROM escalations WHERE ?1 OR acked_at = 0"
                                " ORDER BY id DESC LIMIT ?2",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(err, rd->db, rc, "read escalations");
    sqlite3_bind_int(s, 1, all);
    sqlite3_bind_int(s, 2, limit);
    json_t *a = json_array();
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *o = json_pack("{s:I,s:s,s:s?,s:s?,s:s?,s:s,s:I}", "id",
                              (json_int_t)sqlite3_column_int64(s, 0), "kind", col_text(s, 1),
                              "swarm", col_text(s, 2), "task", col_text(s, 3), "agent",
                              col_text(s, 4), "message", col_text(s, 5), "created_at",
                              (json_int_t)sqlite3_column_int64(s, 6));
        if (!o)
            continue;
        int64_t acked = sqlite3_column_int64(s, 7);
        json_object_set_new(o, "acked_at", acked ? json_integer(acked) : json_null());
        json_object_set_new(o, "acked_by",
                            col_text(s, 8) ? json_string(col_text(s, 8)) : json_null());
        json_array_append_new(a, o);
    }
    int ret = 0;
    if (rc != SQLITE_DONE)
        ret = db_fail(err, rd->db, rc, "read escalations");
    sqlite3_finalize(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    return 0;
}

static int64_t sq_task_count(struct store *st_)
{
    struct sq_store *st = (struct sq_store *)st_;
    sqlite3_stmt *s;
    int64_t n = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT max(num) FROM tasks", -1, &s, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* ---- copying out (s2 migrate) ---- */

/* Every row of every table, in one read transaction: a consistent snapshot of a database
 * a server may be writing meanwhile (WAL). */
static int sq_dump(const char *path, int (*row)(void *ctx, const char *table, int ncols,
                                                const char *const *names,
                                                const struct store_value *v),
                   void *ctx, struct s2_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return s2_fail(err, S2_ENOTFOUND, "no_database", "no database at '%s'", path);
    sqlite3 *db;
    if (open_db(&db, path, SQLITE_OPEN_READONLY, err))
        return S2_EUNAVAIL;
    int v = user_version(db);
    int rc = 0;
    if (v != STORE_SCHEMA_VERSION) {
        rc = s2_fail(err, S2_EINVAL, "schema_version",
                     "'%s' has schema version %d, this s2 copies version %d: serve it once with "
                     "this s2 (which upgrades it), then copy",
                     path, v, STORE_SCHEMA_VERSION);
        goto out;
    }
    if ((rc = exec(db, "BEGIN", err)))
        goto out;
    for (int t = 0; !rc && store_tables[t]; t++) {
        char *sql = xasprintf("SELECT * FROM %s", store_tables[t]);
        sqlite3_stmt *st;
        int prc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        free(sql);
        if (prc != SQLITE_OK) {
            rc = db_fail(err, db, prc, "read for copy");
            break;
        }
        int n = sqlite3_column_count(st);
        const char **names = xcalloc((size_t)n, sizeof *names);
        struct store_value *vals = xcalloc((size_t)n, sizeof *vals);
        for (int i = 0; i < n; i++)
            names[i] = sqlite3_column_name(st, i);
        while ((prc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int i = 0; i < n; i++) {
                struct store_value *x = &vals[i];
                memset(x, 0, sizeof *x);
                switch (sqlite3_column_type(st, i)) {
                case SQLITE_INTEGER: x->type = SV_INT; x->i = sqlite3_column_int64(st, i); break;
                case SQLITE_FLOAT: x->type = SV_REAL; x->d = sqlite3_column_double(st, i); break;
                case SQLITE_TEXT:
                    x->type = SV_TEXT;
                    x->p = sqlite3_column_text(st, i);
                    break;
                case SQLITE_BLOB:
                    x->type = SV_BLOB;
                    x->p = sqlite3_column_blob(st, i);
                    x->n = (size_t)sqlite3_column_bytes(st, i);
                    break;
                default: x->type = SV_NULL; break;
                }
            }
            if (row(ctx, store_tables[t], n, names, vals)) {
                rc = S2_EINTERNAL;
                break;
            }
        }
        if (!rc && prc != SQLITE_DONE)
            rc = db_fail(err, db, prc, "read for copy");
        free(names);
        free(vals);
        sqlite3_finalize(st);
    }
    exec(db, "COMMIT", NULL);
out:
    sqlite3_close(db);
    return rc;
}

static int sq_commits_durable(struct store *st)
{
    (void)st;
    return 0; /* a commit is durable once store_flush (or a synchronous commit) says so */
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .dump = sq_dump,
    .create = sq_create,
    .open = sq_open,
    .reader_open = sq_reader_open,
    .flush = sq_flush,
    .checkpoint = sq_checkpoint,
    .sync_commits = sq_sync_commits,
    .schema_version = sq_schema_version,
    .begin = sq_begin,
    .commit = sq_commit,
    .meta_put = sq_meta_put,
    .meta_get = sq_meta_get,
    .token_insert = sq_token_insert,
    .swarm_insert = sq_swarm_insert,
    .swarm_set_state = sq_swarm_set_state,
    .agent_insert = sq_agent_insert,
    .agent_seen = sq_agent_seen,
    .model_put = sq_model_put,
    .task_insert = sq_task_insert,
    .task_update = sq_task_update,
    .task_outcome = sq_task_outcome,
    .approval_insert = sq_approval_insert,
    .swarm_ledger = sq_swarm_ledger,
    .swarm_budget = sq_swarm_budget,
    .slo = sq_slo,
    .swarm_text = sq_swarm_text,
    .agent_gov = sq_agent_gov,
    .blocker_put = sq_blocker_put,
    .post_insert = sq_post_insert,
    .post_verdict = sq_post_verdict,
    .escalation_insert = sq_escalation_insert,
    .escalation_ack = sq_escalation_ack,
    .post_get = sq_post_get,
    .witness_append = sq_witness_append,
    .checkpoint_add = sq_checkpoint_add,
    .checkpoint_frontier = sq_checkpoint_frontier,
    .witness_scan = sq_witness_scan,
    .checkpoint_scan = sq_checkpoint_scan,
    .task_count = sq_task_count,
    .load = sq_load,
    .task_get = sq_task_get,
    .task_get_rowid = sq_task_get_rowid,
    .reader_witness = sq_reader_witness,
    .reader_checkpoints = sq_reader_checkpoints,
    .reader_leaves = sq_reader_leaves,
    .reader_meta = sq_reader_meta,
    .reader_posts = sq_reader_posts,
    .reader_escalations = sq_reader_escalations,
    .reader_begin = sq_reader_begin,
    .cursor_witness = sq_cursor_witness,
    .cursor_checkpoints = sq_cursor_checkpoints,
    .cursor_next_entry = sq_cursor_next_entry,
    .cursor_next_checkpoint = sq_cursor_next_checkpoint,
    .task_list = sq_task_list,
    .close = sq_close,
    .rollback = sq_rollback,
    .reader_close = sq_reader_close,
    .reader_end = sq_reader_end,
    .cursor_close = sq_cursor_close,
    .commits_durable = sq_commits_durable,
};
