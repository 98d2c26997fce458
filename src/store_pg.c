/* store_pg.c: the scale-out store: PostgreSQL through libpq. One writer connection (the
 * leader's engine thread) whose writes are pipelined inside each batch's transaction and
 * collected at commit (one round trip per batch, not per row); reader connections (one per
 * HTTP thread, the CLI's verify). Every write transaction of a leader is fenced by its
 * leadership epoch (s2_leader), so a node that lost leadership can never commit. It must
 * never apply a domain rule; SQL stays in this file. See docs/OPERATIONS-PG.md. */
#include "store_impl.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schema ---- */

/* PostgreSQL's own schema versions (s2_schema), independent of SQLite's user_version. Each
 * step runs in one transaction; a version already applied is skipped, so opening is
 * idempotent. Version 1 is SQLite's schema 5 with PostgreSQL types, plus the cluster's
 * tables: the leader's fencing epoch and the nodes' directory. */
static const char *const pg_migrations[] = {
    /* 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE tokens(hash BYTEA PRIMARY KEY, kind TEXT NOT NULL, swarm TEXT, name TEXT,"
    "  created_at BIGINT NOT NULL);"
    "CREATE TABLE models(name TEXT PRIMARY KEY, tier BIGINT NOT NULL,"
    "  usd_in_micro BIGINT NOT NULL, usd_out_micro BIGINT NOT NULL);"
    "CREATE TABLE swarms(id TEXT PRIMARY KEY, role TEXT NOT NULL DEFAULT '',"
    "  relation INTEGER NOT NULL, capabilities TEXT NOT NULL DEFAULT '',"
    "  budget_micro BIGINT NOT NULL DEFAULT 0, branch TEXT, state INTEGER NOT NULL,"
    "  created_at BIGINT NOT NULL, spent_micro BIGINT NOT NULL DEFAULT 0,"
    "  alert_level INTEGER NOT NULL DEFAULT 0, idle_tasks TEXT, contract TEXT, slo BYTEA);"
    "CREATE TABLE agents(id TEXT PRIMARY KEY, swarm TEXT NOT NULL, model TEXT,"
    "  capabilities TEXT NOT NULL DEFAULT '', max_leases BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL, last_seen BIGINT NOT NULL DEFAULT 0,"
    "  spent_micro BIGINT NOT NULL DEFAULT 0, breaker_state INTEGER NOT NULL DEFAULT 0,"
    "  breaker_failures INTEGER NOT NULL DEFAULT 0, breaker_opened_at BIGINT NOT NULL DEFAULT 0,"
    "  help_accepted BIGINT NOT NULL DEFAULT 0, help_rejected BIGINT NOT NULL DEFAULT 0,"
    "  slo BYTEA);"
    "CREATE TABLE tasks(num BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, swarm TEXT NOT NULL,"
    "  phase BIGINT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL DEFAULT '',"
    "  requires TEXT NOT NULL DEFAULT '', min_tier BIGINT NOT NULL, priority BIGINT NOT NULL,"
    "  depends_on TEXT NOT NULL DEFAULT '', max_attempts BIGINT NOT NULL,"
    "  lease_ms BIGINT NOT NULL, backoff_ms BIGINT NOT NULL, approval TEXT NOT NULL,"
    "  phase_barrier INTEGER NOT NULL, estimate_h DOUBLE PRECISION NOT NULL DEFAULT 0,"
    "  estimate_micro BIGINT NOT NULL DEFAULT 0, max_cost_micro BIGINT NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, owner TEXT,"
    "  fence BIGINT NOT NULL DEFAULT 0, lease_hash BYTEA, lease_expires BIGINT NOT NULL DEFAULT 0,"
    "  ready_at BIGINT NOT NULL DEFAULT 0, approvals INTEGER NOT NULL DEFAULT 0,"
    "  cost_micro BIGINT NOT NULL DEFAULT 0, tokens_in BIGINT NOT NULL DEFAULT 0,"
    "  tokens_out BIGINT NOT NULL DEFAULT 0, result TEXT, reason TEXT,"
    "  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
    "  finished_at BIGINT NOT NULL DEFAULT 0, reserved_micro BIGINT NOT NULL DEFAULT 0,"
    "  kind INTEGER NOT NULL DEFAULT 0, help_for TEXT, paths TEXT);"
    "CREATE INDEX tasks_by_swarm_state ON tasks(swarm, state);"
    "CREATE TABLE approvals(task BIGINT NOT NULL, approver TEXT NOT NULL, at BIGINT NOT NULL,"
    "  PRIMARY KEY(task, approver));"
    "CREATE TABLE witness(seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, actor TEXT,"
    "  swarm TEXT, phase BIGINT, agent TEXT, task TEXT, op TEXT NOT NULL,"
    "  params TEXT NOT NULL, trace_id TEXT, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL);"
    "CREATE INDEX witness_by_task ON witness(task) WHERE task IS NOT NULL;"
    "CREATE TABLE checkpoints(tree_size BIGINT PRIMARY KEY, root_hash BYTEA NOT NULL,"
    "  time BIGINT NOT NULL, signature BYTEA NOT NULL, frontier TEXT);"
    "CREATE FUNCTION s2_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
    "  BEGIN RAISE EXCEPTION 'the witness log is append-only (table %)', TG_TABLE_NAME; END $$;"
    "CREATE TRIGGER witness_append_only BEFORE UPDATE OR DELETE ON witness"
    "  FOR EACH ROW EXECUTE FUNCTION s2_append_only();"
    "CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints"
    "  FOR EACH ROW EXECUTE FUNCTION s2_append_only();"
    "CREATE TRIGGER witness_no_truncate BEFORE TRUNCATE ON witness"
    "  FOR EACH STATEMENT EXECUTE FUNCTION s2_append_only();"
    "CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints"
    "  FOR EACH STATEMENT EXECUTE FUNCTION s2_append_only();"
    "CREATE TABLE blockers(task TEXT PRIMARY KEY, needs TEXT NOT NULL, reason TEXT NOT NULL,"
    "  agent TEXT, created_at BIGINT NOT NULL, state INTEGER NOT NULL,"
    "  escalated INTEGER NOT NULL DEFAULT 0, budget_micro BIGINT NOT NULL DEFAULT 0,"
    "  resolved_at BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE posts(id BIGINT PRIMARY KEY, task TEXT NOT NULL, agent TEXT, help_task TEXT,"
    "  body TEXT NOT NULL, created_at BIGINT NOT NULL, verdict INTEGER NOT NULL DEFAULT 0,"
    "  verdict_at BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX posts_by_task ON posts(task, id);"
    "CREATE TABLE escalations(id BIGINT PRIMARY KEY, kind TEXT NOT NULL, swarm TEXT, task TEXT,"
    "  agent TEXT, message TEXT NOT NULL, created_at BIGINT NOT NULL,"
    "  acked_at BIGINT NOT NULL DEFAULT 0, acked_by TEXT);"
    /* the cluster: one leader at a time (advisory lock), fenced by its epoch */
    "CREATE TABLE s2_leader(id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL,"
    "  node TEXT, since BIGINT NOT NULL DEFAULT 0);"
    "INSERT INTO s2_leader(id, epoch) VALUES(1, 0);"
    "CREATE TABLE s2_nodes(id TEXT PRIMARY KEY, url TEXT NOT NULL, started_at BIGINT NOT NULL,"
    "  heartbeat_at BIGINT NOT NULL, role TEXT NOT NULL);"
    "CREATE FUNCTION s2_fence(mine BIGINT) RETURNS void LANGUAGE plpgsql AS $$"
    "  BEGIN"
    "    PERFORM 1 FROM s2_leader WHERE id = 1 AND epoch = mine FOR SHARE;"
    "    IF NOT FOUND THEN"
    "      RAISE EXCEPTION 's2: this node is no longer the leader (its epoch % is over)', mine"
    "        USING ERRCODE = 'S2L01';"
    "    END IF;"
    "  END $$;",
};
#define PG_NMIGRATIONS ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

/* ---- statements (prepared on the writer connection) ---- */

enum pg_stmt {
    P_META_PUT,
    P_TOKEN_INSERT,
    P_SWARM_INSERT,
    P_SWARM_STATE,
    P_AGENT_INSERT,
    P_AGENT_SEEN,
    P_MODEL_PUT,
    P_TASK_INSERT,
    P_TASK_UPDATE,
    P_TASK_OUTCOME,
    P_APPROVAL_INSERT,
    P_WITNESS_INSERT,
    P_CHECKPOINT_INSERT,
    P_SWARM_LEDGER,
    P_SWARM_BUDGET,
    P_SWARM_IDLE,
    P_SWARM_CONTRACT,
    P_AGENT_GOV,
    P_BLOCKER_PUT,
    P_POST_INSERT,
    P_POST_VERDICT,
    P_ESCALATION_INSERT,
    P_ESCALATION_ACK,
    P_SWARM_SLO,
    P_AGENT_SLO,
    P_FENCE,
    P_NSTMTS
};

static const char *const pg_sql[P_NSTMTS] = {
    [P_META_PUT] = "INSERT INTO meta(key, value) VALUES($1, $2)"
                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [P_TOKEN_INSERT] = "INSERT INTO tokens(hash, kind, swarm, name, created_at)"
                       " VALUES($1, $2, $3, $4, $5)",
    [P_SWARM_INSERT] = "INSERT INTO swarms(id, role, relation, capabilities, budget_micro,"
                       " branch, state, created_at) VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
    [P_SWARM_STATE] = "UPDATE swarms SET state = $2 WHERE id = $1",
    [P_AGENT_INSERT] = "INSERT INTO agents(id, swarm, model, capabilities, max_leases,"
                       " created_at) VALUES($1, $2, $3, $4, $5, $6)",
    [P_AGENT_SEEN] = "UPDATE agents SET last_seen = $2 WHERE id = $1",
    [P_MODEL_PUT] = "INSERT INTO models(name, tier, usd_in_micro, usd_out_micro)"
                    " VALUES($1, $2, $3, $4) ON CONFLICT(name) DO UPDATE SET"
                    " tier = excluded.tier, usd_in_micro = excluded.usd_in_micro,"
                    " usd_out_micro = excluded.usd_out_micro",
    [P_TASK_INSERT] = "INSERT INTO tasks(num, id, swarm, phase, title, body, requires, min_tier,"
                      " priority, depends_on, max_attempts, lease_ms, backoff_ms, approval,"
                      " phase_barrier, estimate_h, estimate_micro, max_cost_micro, state,"
                      " created_at, updated_at, kind, help_for, paths) VALUES($1, $2, $3, $4, $5,"
                      " $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,"
                      " $20, $21, $22, $23)",
    [P_TASK_UPDATE] = "UPDATE tasks SET state = $2, attempts = $3, owner = $4, fence = $5,"
                      " lease_hash = $6, lease_expires = $7, ready_at = $8, cost_micro = $9,"
                      " tokens_in = $10, tokens_out = $11, approvals = $12, updated_at = $13,"
                      " reserved_micro = $14, min_tier = $15,"
                      " approval = coalesce($16::text, approval) WHERE num = $1",
    [P_TASK_OUTCOME] = "UPDATE tasks SET result = coalesce($2::text, result),"
                       " reason = coalesce($3::text, reason),"
                       " finished_at = CASE WHEN $4::bigint = 0 THEN finished_at ELSE $4 END"
                       " WHERE num = $1",
    [P_APPROVAL_INSERT] = "INSERT INTO approvals(task, approver, at) VALUES($1, $2, $3)",
    [P_WITNESS_INSERT] = "INSERT INTO witness(seq, time, actor, swarm, phase, agent, task, op,"
                         " params, trace_id, prev_hash, hash)"
                         " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    [P_CHECKPOINT_INSERT] = "INSERT INTO checkpoints(tree_size, root_hash, time, signature,"
                            " frontier) VALUES($1, $2, $3, $4, $5)",
    [P_SWARM_LEDGER] = "UPDATE swarms SET spent_micro = $2, alert_level = $3 WHERE id = $1",
    [P_SWARM_BUDGET] = "UPDATE swarms SET budget_micro = $2 WHERE id = $1",
    [P_SWARM_IDLE] = "UPDATE swarms SET idle_tasks = $2 WHERE id = $1",
    [P_SWARM_CONTRACT] = "UPDATE swarms SET contract = $2 WHERE id = $1",
    [P_AGENT_GOV] = "UPDATE agents SET spent_micro = $2, breaker_state = $3,"
                    " breaker_failures = $4, breaker_opened_at = $5, help_accepted = $6,"
                    " help_rejected = $7 WHERE id = $1",
    [P_BLOCKER_PUT] = "INSERT INTO blockers(task, needs, reason, agent, created_at, state,"
                      " escalated, budget_micro, resolved_at)"
                      " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                      " ON CONFLICT(task) DO UPDATE SET needs = excluded.needs,"
                      " reason = excluded.reason, agent = excluded.agent,"
                      " created_at = excluded.created_at, state = excluded.state,"
                      " escalated = excluded.escalated, budget_micro = excluded.budget_micro,"
                      " resolved_at = excluded.resolved_at",
    [P_POST_INSERT] = "INSERT INTO posts(id, task, agent, help_task, body, created_at)"
                      " VALUES($1, $2, $3, $4, $5, $6)",
    [P_POST_VERDICT] = "UPDATE posts SET verdict = $2, verdict_at = $3 WHERE id = $1",
    [P_ESCALATION_INSERT] = "INSERT INTO escalations(id, kind, swarm, task, agent, message,"
                            " created_at) VALUES($1, $2, $3, $4, $5, $6, $7)",
    [P_ESCALATION_ACK] = "UPDATE escalations SET acked_at = $2, acked_by = $3"
                         " WHERE id = $1 AND acked_at = 0",
    [P_SWARM_SLO] = "UPDATE swarms SET slo = $2 WHERE id = $1",
    [P_AGENT_SLO] = "UPDATE agents SET slo = $2 WHERE id = $1",
    [P_FENCE] = "SELECT s2_fence($1)",
};

/* Statements queued in the pipeline before the writer collects their results: bounds the
 * memory of both ends (a server that cannot send results stops reading queries). */
#define PIPELINE_MAX 1024
/* Rows fetched per round trip by scans and loads. */
#define PAGE 5000

struct pg_store {
    struct store base;
    PGconn *conn;
    char *url;
    enum durability durability;
    int prepared;
    int in_tx;
    int pipelined; /* in pipeline mode */
    int pending;   /* statements sent whose results are not collected */
    char *failed;  /* the first error of the transaction in hand (collected so far) */
    int failed_unavail;
    int64_t epoch; /* leadership epoch fencing every transaction; 0: not fenced */
    int64_t next_task, next_post, next_escalation; /* keys this writer gives out; 0: ask */
};

struct pg_reader {
    struct store_reader base;
    PGconn *conn;
    int in_tx;
    int ncursors;
};

struct pg_cursor {
    struct store_cursor base;
    struct pg_reader *rd;
    char name[32];
    PGresult *page;
    int row, nrows, done;
    int kind; /* 0 entries, 1 checkpoints */
};

/* ---- errors ---- */

/* SQLSTATEs that mean "the database cannot take this now, retry": connection failures,
 * shutdown, too many connections, serialization and deadlocks, read-only (a standby). */
static int sqlstate_unavailable(const char *state)
{
    if (!state)
        return 1; /* no state: the connection itself failed */
    return !strncmp(state, "08", 2) || !strncmp(state, "57P", 3) || !strncmp(state, "53", 2) ||
           !strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "25006") ||
           !strcmp(state, "S2L01");
}

static char *clean_msg(const char *m)
{
    char *s = xstrdup(m && *m ? m : "unknown error");
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = 0;
    for (char *p = s; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return s;
}

static int fail_result(struct s2_error *err, PGconn *conn, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char *msg = clean_msg(r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r)
                                                        : PQerrorMessage(conn));
    int unavail = sqlstate_unavailable(state) || PQstatus(conn) != CONNECTION_OK;
    int fenced = state && !strcmp(state, "S2L01");
    char code[32] = "";
    if (state)
        snprintf(code, sizeof code, " (sqlstate %s)", state);
    int rc = s2_fail(err, unavail ? S2_EUNAVAIL : S2_EINTERNAL,
                     fenced ? "not_leader" : unavail ? "store_unavailable" : "store_error",
                     "postgres: %s: %s%s", what, msg, code);
    free(msg);
    return rc;
}

static void notice_quiet(void *arg, const char *msg)
{
    (void)arg;
    log_debug("postgres: %s", msg);
}

/* Every session of this process is named "s2/NODE", so that another node can end them
 * all when this one stops answering while it leads (store_cluster_depose). */
static char app_name[64] = "s2";

void store_pg_set_node(const char *node_id)
{
    snprintf(app_name, sizeof app_name, "s2/%s", node_id);
}

static int pg_connect(PGconn **out, const char *url, struct s2_error *err)
{
    /* Defaults against a PostgreSQL that vanishes without closing the connection (a
     * network partition, a failover): without them a node waits in libpq for the kernel's
     * TCP keep-alive, two hours by default. Key words are taken in order, so the URL
     * overrides any of them; the session's name, after it, is always s2's. */
    static const char *const keys[] = {"connect_timeout",  "keepalives", "keepalives_idle",
                                       "keepalives_interval", "keepalives_count",
                                       "tcp_user_timeout", "dbname",     "application_name",
                                       NULL};
    const char *vals[] = {"10", "1", "10", "5", "3", "30000", url, app_name, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn)
        xalloc_die(0);
    if (PQstatus(conn) != CONNECTION_OK) {
        char *u = store_location_for_humans(url);
        char *m = clean_msg(PQerrorMessage(conn));
        s2_fail(err, S2_EUNAVAIL, "store_unavailable", "cannot connect to PostgreSQL at '%s': %s",
                u, m);
        free(u);
        free(m);
        PQfinish(conn);
        return S2_EUNAVAIL;
    }
    PQsetNoticeProcessor(conn, notice_quiet, NULL);
    PGresult *r = PQexec(conn, "SET bytea_output = 'hex'; SET client_min_messages = warning");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fail_result(err, conn, r, "session settings");
    PQclear(r);
    if (!ok) {
        PQfinish(conn);
        return S2_EUNAVAIL;
    }
    *out = conn;
    return 0;
}

/* Run sql (no parameters) and expect no rows. */
static int exec_cmd(PGconn *conn, const char *sql, struct s2_error *err)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = fail_result(err, conn, r, sql);
    PQclear(r);
    return rc;
}

/* ---- parameters and values ---- */

#define MAXP 64 /* the widest table, copied whole by s2 migrate (tasks: 38 columns) */
struct params {
    int n;
    const char *v[MAXP];
    int len[MAXP], fmt[MAXP];
    char num[MAXP][32];
};

static void p_text(struct params *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

static void p_int(struct params *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof p->num[p->n], "%" PRId64, x);
    p_text(p, p->num[p->n]);
}

static void p_double(struct params *p, double x)
{
    snprintf(p->num[p->n], sizeof p->num[p->n], "%.17g", x);
    p_text(p, p->num[p->n]);
}

/* Binary (bytea) parameter; NULL data: SQL NULL. */
static void p_blob(struct params *p, const void *data, size_t n)
{
    p->v[p->n] = data;
    p->len[p->n] = (int)n;
    p->fmt[p->n] = 1;
    p->n++;
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t ival(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A bytea column (hex output) decoded into a caller's buffer; returns its length, or -1
 * (NULL, malformed, or longer than max). */
static long bval(const PGresult *r, int row, int col, void *out, size_t max)
{
    if (PQgetisnull(r, row, col))
        return -1;
    const char *s = PQgetvalue(r, row, col);
    if (s[0] != '\\' || s[1] != 'x')
        return -1;
    s += 2;
    size_t n = strlen(s);
    if (n % 2 || n / 2 > max)
        return -1;
    uint8_t *o = out;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        o[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

/* A bytea column into a fixed-size field; a wrong size leaves zeros (and fails verify). */
static void bfixed(const PGresult *r, int row, int col, void *out, size_t n)
{
    uint8_t tmp[256];
    memset(out, 0, n);
    if (n <= sizeof tmp && bval(r, row, col, tmp, sizeof tmp) == (long)n)
        memcpy(out, tmp, n);
}

/* A bytea column of any size (caller frees; *len its size), or NULL. */
static void *bdup(const PGresult *r, int row, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(r, row, col))
        return NULL;
    size_t max = strlen(PQgetvalue(r, row, col)) / 2 + 1;
    void *out = xmalloc(max);
    long n = bval(r, row, col, out, max);
    if (n < 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

static char *sdup(const PGresult *r, int row, int col)
{
    const char *v = val(r, row, col);
    return v ? xstrdup(v) : NULL;
}

/* A query with parameters; rows expected (or a command). Caller clears the result. */
static PGresult *query(PGconn *conn, const char *sql, const struct params *p, const char *what,
                       struct s2_error *err)
{
    PGresult *r = PQexecParams(conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL,
                               p ? p->len : NULL, p ? p->fmt : NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        fail_result(err, conn, r, what);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* ---- migrations ---- */

static int schema_version_of(PGconn *conn, int *version, struct s2_error *err)
{
    PGresult *r = query(conn, "SELECT to_regclass('s2_schema') IS NOT NULL", NULL,
                        "read schema version", err);
    if (!r)
        return err->kind;
    int has = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    *version = 0;
    if (!has)
        return 0;
    r = query(conn, "SELECT coalesce(max(version), 0) FROM s2_schema", NULL,
              "read schema version", err);
    if (!r)
        return err->kind;
    *version = (int)ival(r, 0, 0);
    PQclear(r);
    return 0;
}

/* Bring the schema to the newest version, one transaction per step; a second process doing
 * the same waits on the schema table's lock and then finds nothing to do. */
static int pg_migrate(PGconn *conn, const char *url, struct s2_error *err)
{
    if (exec_cmd(conn, "CREATE TABLE IF NOT EXISTS s2_schema(version INTEGER PRIMARY KEY,"
                       " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                 err))
        return err->kind;
    for (;;) {
        if (exec_cmd(conn, "BEGIN; LOCK TABLE s2_schema IN EXCLUSIVE MODE", err))
            return err->kind;
        int v;
        if (schema_version_of(conn, &v, err)) {
            exec_cmd(conn, "ROLLBACK", NULL);
            return err->kind;
        }
        if (v > PG_NMIGRATIONS) {
            exec_cmd(conn, "ROLLBACK", NULL);
            char *u = store_location_for_humans(url);
            s2_fail(err, S2_EINVAL, "schema_too_new",
                    "database '%s' has s2 schema version %d, newer than this s2 (%d): upgrade s2",
                    u, v, PG_NMIGRATIONS);
            free(u);
            return S2_EINVAL;
        }
        if (v == PG_NMIGRATIONS) {
            exec_cmd(conn, "COMMIT", NULL);
            return 0;
        }
        char ins[96];
        snprintf(ins, sizeof ins, "INSERT INTO s2_schema(version) VALUES(%d)", v + 1);
        if (exec_cmd(conn, pg_migrations[v], err) || exec_cmd(conn, ins, err) ||
            exec_cmd(conn, "COMMIT", err)) {
            exec_cmd(conn, "ROLLBACK", NULL);
            return err->kind;
        }
        if (v > 0)
            log_info("store: migrated PostgreSQL schema to version %d", v + 1);
    }
}

/* Whether the database already holds an s2 deployment (a public key in meta). */
static int pg_initialised(PGconn *conn, char **public_key, struct s2_error *err)
{
    *public_key = NULL;
    PGresult *r = query(conn, "SELECT to_regclass('meta') IS NOT NULL", NULL, "inspect database",
                        err);
    if (!r)
        return err->kind;
    int has = !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    if (!has)
        return 0;
    r = query(conn, "SELECT value FROM meta WHERE key = 'public_key'", NULL, "inspect database",
              err);
    if (!r)
        return err->kind;
    if (PQntuples(r) == 1)
        *public_key = sdup(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_create(const char *url, struct s2_error *err)
{
    PGconn *conn;
    if (pg_connect(&conn, url, err))
        return err->kind;
    char *pub = NULL;
    int rc = pg_initialised(conn, &pub, err);
    if (!rc && pub) {
        char *u = store_location_for_humans(url);
        rc = s2_fail(err, S2_ECONFLICT, "exists",
                     "database '%s' already holds an s2 deployment (public key %s)", u, pub);
        free(u);
    }
    free(pub);
    if (!rc)
        rc = pg_migrate(conn, url, err);
    PQfinish(conn);
    return rc;
}

/* ---- the writer: pipelined statements, collected at commit ---- */

static void note_failure(struct pg_store *st, PGconn *conn, const PGresult *r, const char *what)
{
    if (st->failed)
        return;
    struct s2_error e = S2_ERROR_INIT;
    fail_result(&e, conn, r, what);
    st->failed = e.msg;
    st->failed_unavail = e.kind == S2_EUNAVAIL;
    e.msg = NULL;
}

/* Collect every outstanding result (a sync point): errors are remembered in st->failed.
 * Leaves pipeline mode. */
static void drain(struct pg_store *st)
{
    if (!st->pipelined)
        return;
    if (!PQpipelineSync(st->conn)) {
        note_failure(st, st->conn, NULL, "pipeline sync");
    } else {
        int nulls = 0;
        for (;;) {
            PGresult *r = PQgetResult(st->conn);
            if (!r) {
                /* a NULL ends each statement's results; several in a row with a broken
                 * connection mean nothing more will come */
                if (PQstatus(st->conn) != CONNECTION_OK && ++nulls > 2) {
                    note_failure(st, st->conn, NULL, "connection lost");
                    break;
                }
                continue;
            }
            nulls = 0;
            ExecStatusType s = PQresultStatus(r);
            if (s == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                break;
            }
            if (s == PGRES_FATAL_ERROR)
                note_failure(st, st->conn, r, "write");
            else if (s == PGRES_PIPELINE_ABORTED)
                note_failure(st, st->conn, r, "write (pipeline aborted)");
            PQclear(r);
        }
    }
    st->pending = 0;
    if (PQpipelineStatus(st->conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(st->conn)) {
        /* results still unread (a broken connection): nothing more can be trusted */
        note_failure(st, st->conn, NULL, "leave pipeline mode");
    }
    st->pipelined = 0;
}

static int send_stmt(struct pg_store *st, enum pg_stmt id, const struct params *p,
                     struct s2_error *err)
{
    if (!st->in_tx)
        return s2_fail(err, S2_EINTERNAL, "store_error", "postgres: write outside a transaction");
    if (st->failed)
        return s2_fail(err, st->failed_unavail ? S2_EUNAVAIL : S2_EINTERNAL, "store_unavailable",
                       "%s", st->failed);
    if (!st->pipelined) {
        if (!PQenterPipelineMode(st->conn))
            return fail_result(err, st->conn, NULL, "enter pipeline mode");
        st->pipelined = 1;
    }
    char name[16];
    snprintf(name, sizeof name, "s2_%d", (int)id);
    if (!PQsendQueryPrepared(st->conn, name, p->n, p->v, p->len, p->fmt, 0))
        return fail_result(err, st->conn, NULL, "send");
    if (++st->pending >= PIPELINE_MAX) {
        drain(st);
        if (st->failed)
            return s2_fail(err, st->failed_unavail ? S2_EUNAVAIL : S2_EINTERNAL,
                           "store_unavailable", "%s", st->failed);
    }
    return 0;
}

static int prepare_all(struct pg_store *st, struct s2_error *err)
{
    for (int i = 0; i < P_NSTMTS; i++) {
        char name[16];
        snprintf(name, sizeof name, "s2_%d", i);
        PGresult *r = PQprepare(st->conn, name, pg_sql[i], 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fail_result(err, st->conn, r, pg_sql[i]);
        PQclear(r);
        if (!ok)
            return err->kind;
    }
    st->prepared = 1;
    return 0;
}

/* A writer session: settings, statements. */
static int writer_setup(struct pg_store *st, struct s2_error *err)
{
    /* A writer that vanished mid-transaction must not hold the fencing row for long. */
    if (exec_cmd(st->conn, "SET idle_in_transaction_session_timeout = '30s'", err))
        return err->kind;
    if (st->durability == DURABILITY_RELAXED &&
        exec_cmd(st->conn, "SET synchronous_commit = off", err))
        return err->kind;
    st->next_task = st->next_post = st->next_escalation = 0;
    return prepare_all(st, err);
}

/* The connection broke (the server restarted, failed over, killed us): connect again, once
 * per call, and start afresh. What was in flight is lost and reported as such. */
static int writer_ensure(struct pg_store *st, struct s2_error *err)
{
    if (PQstatus(st->conn) == CONNECTION_OK)
        return 0;
    PQreset(st->conn);
    st->pipelined = st->pending = st->in_tx = 0;
    if (PQstatus(st->conn) != CONNECTION_OK)
        return fail_result(err, st->conn, NULL, "reconnect");
    PQsetNoticeProcessor(st->conn, notice_quiet, NULL);
    if (exec_cmd(st->conn, "SET bytea_output = 'hex'; SET client_min_messages = warning;"
                           " SET application_name = 's2'",
                 err))
        return err->kind;
    log_info("store: reconnected to PostgreSQL");
    return writer_setup(st, err);
}

static int pg_open(struct store **out, const char *url, enum durability d, struct s2_error *err)
{
    PGconn *conn;
    if (pg_connect(&conn, url, err))
        return err->kind;
    char *pub = NULL;
    if (pg_initialised(conn, &pub, err)) {
        PQfinish(conn);
        return err->kind;
    }
    int v = 0;
    if (!pub && !schema_version_of(conn, &v, err) && v == 0) {
        char *u = store_location_for_humans(url);
        s2_fail(err, S2_ENOTFOUND, "no_database",
                "database '%s' holds no s2 deployment: create one with `s2 init --store %s`", u,
                u);
        free(u);
        PQfinish(conn);
        return S2_ENOTFOUND;
    }
    free(pub);
    if (pg_migrate(conn, url, err)) {
        PQfinish(conn);
        return err->kind;
    }
    struct pg_store *st = xcalloc(1, sizeof *st);
    st->base.ops = &store_pg_ops;
    st->conn = conn;
    st->url = xstrdup(url);
    st->durability = d;
    if (writer_setup(st, err)) {
        PQfinish(conn);
        free(st->url);
        free(st);
        return err->kind;
    }
    *out = &st->base;
    return 0;
}

static void pg_close(struct store *st_)
{
    struct pg_store *st = (struct pg_store *)st_;
    if (st->pipelined)
        drain(st);
    if (st->in_tx)
        exec_cmd(st->conn, "ROLLBACK", NULL);
    PQfinish(st->conn);
    free(st->failed);
    free(st->url);
    free(st);
}

static int pg_flush(struct store *st, struct s2_error *err)
{
    (void)st, (void)err;
    return 0; /* a commit is durable when it returns (the server's synchronous_commit) */
}

static int pg_checkpoint(struct store *st, struct s2_error *err)
{
    (void)st, (void)err;
    return 0; /* the server checkpoints by itself */
}

static int pg_sync_commits(struct store *st, int on, struct s2_error *err)
{
    (void)st, (void)on, (void)err;
    return 0;
}

static int pg_commits_durable(struct store *st)
{
    (void)st;
    return 1;
}

static int pg_schema_version(struct store *st_)
{
    struct pg_store *st = (struct pg_store *)st_;
    struct s2_error err = S2_ERROR_INIT;
    drain(st);
    int v = -1;
    if (schema_version_of(st->conn, &v, &err))
        v = -1;
    s2_error_release(&err);
    return v;
}

static int pg_begin(struct store *st_, struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    if (st->in_tx)
        return s2_fail(err, S2_EINTERNAL, "store_error", "postgres: transaction already open");
    if (writer_ensure(st, err))
        return err->kind;
    free(st->failed);
    st->failed = NULL;
    if (!PQenterPipelineMode(st->conn))
        return fail_result(err, st->conn, NULL, "enter pipeline mode");
    st->pipelined = 1;
    if (!PQsendQueryParams(st->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) {
        fail_result(err, st->conn, NULL, "begin");
        drain(st);
        return err->kind;
    }
    st->pending++;
    st->in_tx = 1;
    if (st->epoch) {
        /* the fence: fails the whole transaction if another node has become the leader */
        struct params p = {0};
        p_int(&p, st->epoch);
        if (send_stmt(st, P_FENCE, &p, err))
            return err->kind;
    }
    return 0;
}

static void pg_rollback(struct store *st_)
{
    struct pg_store *st = (struct pg_store *)st_;
    drain(st);
    if (PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
        exec_cmd(st->conn, "ROLLBACK", NULL);
    st->in_tx = 0;
    /* keys handed out in the rolled-back transaction are free again: ask anew */
    st->next_task = st->next_post = st->next_escalation = 0;
    free(st->failed);
    st->failed = NULL;
}

static int pg_commit(struct store *st_, struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    if (!st->in_tx)
        return 0;
    if (!st->failed &&
        !PQsendQueryParams(st->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
        note_failure(st, st->conn, NULL, "commit");
    drain(st);
    if (st->failed) {
        int kind = st->failed_unavail ? S2_EUNAVAIL : S2_EINTERNAL;
        s2_fail(err, kind, strstr(st->failed, "S2L01") ? "not_leader" : "store_unavailable", "%s",
                st->failed);
        pg_rollback(st_);
        return kind;
    }
    st->in_tx = 0;
    return 0;
}

/* A read on the writer connection: what is queued is sent and collected first, so the read
 * sees it (and a failure so far fails the read). */
static PGresult *writer_read(struct pg_store *st, const char *sql, const struct params *p,
                             const char *what, struct s2_error *err)
{
    drain(st);
    if (st->failed) {
        s2_fail(err, st->failed_unavail ? S2_EUNAVAIL : S2_EINTERNAL, "store_unavailable", "%s",
                st->failed);
        return NULL;
    }
    if (!st->in_tx && writer_ensure(st, err))
        return NULL;
    return query(st->conn, sql, p, what, err);
}

/* The next key of a table the writer numbers itself (only the leader writes). */
static int next_key(struct pg_store *st, int64_t *slot, const char *sql, int64_t *key,
                    struct s2_error *err)
{
    if (!*slot) {
        PGresult *r = writer_read(st, sql, NULL, "next key", err);
        if (!r)
            return err->kind;
        *slot = ival(r, 0, 0) + 1;
        PQclear(r);
    }
    *key = (*slot)++;
    return 0;
}

static int pg_meta_put(struct store *st_, const char *key, const char *value, struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, key);
    p_text(&p, value);
    return send_stmt((struct pg_store *)st_, P_META_PUT, &p, err);
}

static char *pg_meta_get(struct store *st_, const char *key)
{
    struct pg_store *st = (struct pg_store *)st_;
    struct params p = {0};
    p_text(&p, key);
    struct s2_error err = S2_ERROR_INIT;
    PGresult *r = writer_read(st, "SELECT value FROM meta WHERE key = $1", &p, "meta get", &err);
    char *v = NULL;
    if (r && PQntuples(r) == 1)
        v = sdup(r, 0, 0);
    if (!r)
        log_warn("%s", err.msg);
    PQclear(r);
    s2_error_release(&err);
    return v;
}

static int pg_token_insert(struct store *st_, const uint8_t hash[TOKEN_HASH_BYTES],
                           const char *kind, const char *swarm, const char *name, int64_t now,
                           struct s2_error *err)
{
    struct params p = {0};
    p_blob(&p, hash, TOKEN_HASH_BYTES);
    p_text(&p, kind);
    p_text(&p, swarm);
    p_text(&p, name);
    p_int(&p, now);
    return send_stmt((struct pg_store *)st_, P_TOKEN_INSERT, &p, err);
}

static int pg_swarm_insert(struct store *st_, const struct swarm_spec *sp, int state, int64_t now,
                           struct s2_error *err)
{
    char *caps = strvec_join(&sp->caps, "\n");
    struct params p = {0};
    p_text(&p, sp->id);
    p_text(&p, sp->role ? sp->role : "");
    p_int(&p, sp->relation);
    p_text(&p, caps);
    p_int(&p, sp->budget_micro);
    p_text(&p, sp->branch);
    p_int(&p, state);
    p_int(&p, now);
    int rc = send_stmt((struct pg_store *)st_, P_SWARM_INSERT, &p, err);
    free(caps);
    return rc;
}

static int pg_swarm_set_state(struct store *st_, const char *id, int state, struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, id);
    p_int(&p, state);
    return send_stmt((struct pg_store *)st_, P_SWARM_STATE, &p, err);
}

static int pg_agent_insert(struct store *st_, const struct agent_spec *a, int64_t now,
                           struct s2_error *err)
{
    char *caps = strvec_join(&a->caps, "\n");
    struct params p = {0};
    p_text(&p, a->id);
    p_text(&p, a->swarm);
    p_text(&p, a->model);
    p_text(&p, caps);
    p_int(&p, a->max_leases);
    p_int(&p, now);
    int rc = send_stmt((struct pg_store *)st_, P_AGENT_INSERT, &p, err);
    free(caps);
    return rc;
}

static int pg_agent_seen(struct store *st_, const char *id, int64_t last_seen,
                         struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, id);
    p_int(&p, last_seen);
    return send_stmt((struct pg_store *)st_, P_AGENT_SEEN, &p, err);
}

static int pg_model_put(struct store *st_, const struct model_spec *m, struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, m->name);
    p_int(&p, m->tier);
    p_int(&p, m->usd_in_micro);
    p_int(&p, m->usd_out_micro);
    return send_stmt((struct pg_store *)st_, P_MODEL_PUT, &p, err);
}

static int pg_task_insert(struct store *st_, const struct task_spec *t, int state, int64_t now,
                          int64_t *rowid, struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    int64_t num;
    if (next_key(st, &st->next_task, "SELECT coalesce(max(num), 0) FROM tasks", &num, err))
        return err->kind;
    char *req = strvec_join(&t->requires, "\n");
    char *deps = strvec_join(&t->depends_on, "\n");
    char *paths = t->paths.n ? strvec_join(&t->paths, "\n") : NULL;
    char approval[32];
    model_format_approval(t->approval_kind, t->approval_n, approval, sizeof approval);
    struct params p = {0};
    p_int(&p, num);
    p_text(&p, t->id);
    p_text(&p, t->swarm);
    p_int(&p, t->phase);
    p_text(&p, t->title);
    p_text(&p, t->body ? t->body : "");
    p_text(&p, req);
    p_int(&p, t->min_tier);
    p_int(&p, t->priority);
    p_text(&p, deps);
    p_int(&p, t->max_attempts);
    p_int(&p, t->lease_ms);
    p_int(&p, t->backoff_ms);
    p_text(&p, approval);
    p_int(&p, t->phase_barrier);
    p_double(&p, t->estimate_h);
    p_int(&p, t->estimate_micro);
    p_int(&p, t->max_cost_micro);
    p_int(&p, state);
    p_int(&p, now);
    p_int(&p, t->kind);
    p_text(&p, t->help_for);
    p_text(&p, paths);
    int rc = send_stmt(st, P_TASK_INSERT, &p, err);
    free(req);
    free(deps);
    free(paths);
    if (!rc)
        *rowid = num;
    return rc;
}

static int pg_task_update(struct store *st_, const struct task_dyn *d, struct s2_error *err)
{
    struct params p = {0};
    p_int(&p, d->rowid);
    p_int(&p, d->state);
    p_int(&p, d->attempts);
    p_text(&p, d->owner);
    p_int(&p, (int64_t)d->fence);
    p_blob(&p, d->lease_hash, d->lease_hash ? TOKEN_HASH_BYTES : 0);
    p_int(&p, d->lease_expires);
    p_int(&p, d->ready_at);
    p_int(&p, d->cost_micro);
    p_int(&p, d->tokens_in);
    p_int(&p, d->tokens_out);
    p_int(&p, d->approvals);
    p_int(&p, d->updated_at);
    p_int(&p, d->reserved_micro);
    p_int(&p, d->min_tier);
    p_text(&p, d->approval);
    return send_stmt((struct pg_store *)st_, P_TASK_UPDATE, &p, err);
}

static int pg_task_outcome(struct store *st_, int64_t rowid, const char *result,
                           const char *reason, int64_t finished_at, struct s2_error *err)
{
    struct params p = {0};
    p_int(&p, rowid);
    p_text(&p, result);
    p_text(&p, reason);
    p_int(&p, finished_at);
    return send_stmt((struct pg_store *)st_, P_TASK_OUTCOME, &p, err);
}

static int pg_approval_insert(struct store *st_, int64_t task_rowid, const char *approver,
                              int64_t now, struct s2_error *err)
{
    struct params p = {0};
    p_int(&p, task_rowid);
    p_text(&p, approver);
    p_int(&p, now);
    return send_stmt((struct pg_store *)st_, P_APPROVAL_INSERT, &p, err);
}

static int pg_swarm_ledger(struct store *st_, const char *id, int64_t spent, int alert_level,
                           struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, id);
    p_int(&p, spent);
    p_int(&p, alert_level);
    return send_stmt((struct pg_store *)st_, P_SWARM_LEDGER, &p, err);
}

static int pg_swarm_budget(struct store *st_, const char *id, int64_t budget,
                           struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, id);
    p_int(&p, budget);
    return send_stmt((struct pg_store *)st_, P_SWARM_BUDGET, &p, err);
}

static int pg_slo(struct store *st_, int agent, const char *id, const void *blob, size_t len,
                  struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, id);
    p_blob(&p, blob ? blob : "", len);
    return send_stmt((struct pg_store *)st_, agent ? P_AGENT_SLO : P_SWARM_SLO, &p, err);
}

static int pg_swarm_text(struct store *st_, const char *id, int which, const char *json,
                         struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, id);
    p_text(&p, json);
    return send_stmt((struct pg_store *)st_,
                     which == STORE_SWARM_IDLE ? P_SWARM_IDLE : P_SWARM_CONTRACT, &p, err);
}

static int pg_agent_gov(struct store *st_, const struct agent_gov *g, struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, g->id);
    p_int(&p, g->spent_micro);
    p_int(&p, g->breaker_state);
    p_int(&p, g->breaker_failures);
    p_int(&p, g->breaker_opened_at);
    p_int(&p, g->accepted);
    p_int(&p, g->rejected);
    return send_stmt((struct pg_store *)st_, P_AGENT_GOV, &p, err);
}

static int pg_blocker_put(struct store *st_, const struct load_blocker *b, struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, b->task);
    p_text(&p, b->needs);
    p_text(&p, b->reason);
    p_text(&p, b->agent);
    p_int(&p, b->created_at);
    p_int(&p, b->state);
    p_int(&p, b->escalated);
    p_int(&p, b->budget_micro);
    p_int(&p, b->resolved_at);
    return send_stmt((struct pg_store *)st_, P_BLOCKER_PUT, &p, err);
}

static int pg_post_insert(struct store *st_, const char *task, const char *agent,
                          const char *help_task, const char *body, int64_t now, int64_t *id,
                          struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    int64_t key;
    if (next_key(st, &st->next_post, "SELECT coalesce(max(id), 0) FROM posts", &key, err))
        return err->kind;
    struct params p = {0};
    p_int(&p, key);
    p_text(&p, task);
    p_text(&p, agent);
    p_text(&p, help_task);
    p_text(&p, body);
    p_int(&p, now);
    int rc = send_stmt(st, P_POST_INSERT, &p, err);
    if (!rc)
        *id = key;
    return rc;
}

static int pg_post_verdict(struct store *st_, int64_t id, int verdict, int64_t now,
                           struct s2_error *err)
{
    struct params p = {0};
    p_int(&p, id);
    p_int(&p, verdict);
    p_int(&p, now);
    return send_stmt((struct pg_store *)st_, P_POST_VERDICT, &p, err);
}

static int pg_escalation_insert(struct store *st_, const char *kind, const char *swarm,
                                const char *task, const char *agent, const char *message,
                                int64_t now, int64_t *id, struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    int64_t key;
    if (next_key(st, &st->next_escalation, "SELECT coalesce(max(id), 0) FROM escalations", &key,
                 err))
        return err->kind;
    struct params p = {0};
    p_int(&p, key);
    p_text(&p, kind);
    p_text(&p, swarm);
    p_text(&p, task);
    p_text(&p, agent);
    p_text(&p, message);
    p_int(&p, now);
    int rc = send_stmt(st, P_ESCALATION_INSERT, &p, err);
    if (!rc)
        *id = key;
    return rc;
}

static int pg_escalation_ack(struct store *st_, int64_t id, const char *by, int64_t now,
                             struct s2_error *err)
{
    /* synchronous: whether the escalation exists is the answer */
    struct pg_store *st = (struct pg_store *)st_;
    struct params p = {0};
    p_int(&p, id);
    p_int(&p, now);
    p_text(&p, by);
    PGresult *r = writer_read(st, pg_sql[P_ESCALATION_ACK], &p, "escalation ack", err);
    if (!r)
        return err->kind;
    int changed = atoi(PQcmdTuples(r));
    PQclear(r);
    if (changed)
        return 0;
    /* either there is none, or it was acknowledged before: say which */
    struct params q = {0};
    p_int(&q, id);
    r = writer_read(st, "SELECT 1 FROM escalations WHERE id = $1", &q, "escalation ack", err);
    if (!r)
        return err->kind;
    int exists = PQntuples(r) == 1;
    PQclear(r);
    return exists ? s2_fail(err, S2_ECONFLICT, "already_acked",
                            "escalation %lld was already acknowledged", (long long)id)
                  : s2_fail(err, S2_ENOTFOUND, "not_found", "no escalation %lld", (long long)id);
}

static int pg_post_get(struct store *st_, int64_t id, char **task, char **agent, int *verdict,
                       struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    struct params p = {0};
    p_int(&p, id);
    PGresult *r = writer_read(st, "SELECT task, agent, verdict FROM posts WHERE id = $1", &p,
                              "read post", err);
    if (!r)
        return err->kind;
    int got = PQntuples(r) == 1;
    if (got) {
        *task = sdup(r, 0, 0);
        *agent = sdup(r, 0, 1);
        *verdict = (int)ival(r, 0, 2);
    }
    PQclear(r);
    return got;
}

static int pg_witness_append(struct store *st_, const struct witness_entry *w,
                             struct s2_error *err)
{
    struct params p = {0};
    p_int(&p, (int64_t)w->seq);
    p_int(&p, w->time);
    p_text(&p, w->actor);
    p_text(&p, w->swarm);
    if (w->has_phase)
        p_int(&p, w->phase);
    else
        p_text(&p, NULL);
    p_text(&p, w->agent);
    p_text(&p, w->task);
    p_text(&p, w->op);
    p_text(&p, w->params);
    p_text(&p, w->trace_id);
    p_blob(&p, w->prev_hash, MERKLE_HASH);
    p_blob(&p, w->hash, MERKLE_HASH);
    return send_stmt((struct pg_store *)st_, P_WITNESS_INSERT, &p, err);
}

static int pg_checkpoint_add(struct store *st_, const struct checkpoint *c, const char *frontier,
                             struct s2_error *err)
{
    struct params p = {0};
    p_int(&p, (int64_t)c->tree_size);
    p_blob(&p, c->root_hash, MERKLE_HASH);
    p_int(&p, c->time);
    p_blob(&p, c->signature, sizeof c->signature);
    p_text(&p, frontier);
    return send_stmt((struct pg_store *)st_, P_CHECKPOINT_INSERT, &p, err);
}

static char *pg_checkpoint_frontier(struct store *st_, uint64_t tree_size)
{
    struct pg_store *st = (struct pg_store *)st_;
    struct params p = {0};
    p_int(&p, (int64_t)tree_size);
    struct s2_error err = S2_ERROR_INIT;
    PGresult *r = writer_read(st, "SELECT frontier FROM checkpoints WHERE tree_size = $1", &p,
                              "read frontier", &err);
    char *v = r && PQntuples(r) == 1 ? sdup(r, 0, 0) : NULL;
    if (!r)
        log_warn("%s", err.msg);
    PQclear(r);
    s2_error_release(&err);
    return v;
}

/* ---- scans (writer or reader connection), in pages ---- */

#define WITNESS_COLS                                                                           \
    "seq, time, actor, swarm, phase, agent, task, op, params, trace_id, prev_hash, hash"
#define CHECKPOINT_COLS "tree_size, root_hash, time, signature"

static void fill_witness(const PGresult *r, int i, struct witness_entry *w)
{
    memset(w, 0, sizeof *w);
    w->seq = (uint64_t)ival(r, i, 0);
    w->time = ival(r, i, 1);
    w->actor = sdup(r, i, 2);
    w->swarm = sdup(r, i, 3);
    w->has_phase = !PQgetisnull(r, i, 4);
    w->phase = ival(r, i, 4);
    w->agent = sdup(r, i, 5);
    w->task = sdup(r, i, 6);
    w->op = sdup(r, i, 7);
    w->params = sdup(r, i, 8);
    w->trace_id = sdup(r, i, 9);
    bfixed(r, i, 10, w->prev_hash, MERKLE_HASH);
    bfixed(r, i, 11, w->hash, MERKLE_HASH);
}

static void fill_checkpoint(const PGresult *r, int i, struct checkpoint *c)
{
    memset(c, 0, sizeof *c);
    c->tree_size = (uint64_t)ival(r, i, 0);
    bfixed(r, i, 1, c->root_hash, MERKLE_HASH);
    c->time = ival(r, i, 2);
    bfixed(r, i, 3, c->signature, sizeof c->signature);
}

static int witness_query(PGconn *conn, const struct witness_filter *f,
                         int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                         struct s2_error *err)
{
    const char *sql =
        f->newest_first
            ? "SELECT " WITNESS_COLS " FROM witness WHERE seq <= $1"
              " AND ($2::text IS NULL OR task = $2) AND ($3::text IS NULL OR swarm = $3)"
              " AND ($4::text IS NULL OR agent = $4) ORDER BY seq DESC LIMIT $5"
            : "SELECT " WITNESS_COLS " FROM witness WHERE seq >= $1 AND seq <= $6"
              " AND ($2::text IS NULL OR task = $2) AND ($3::text IS NULL OR swarm = $3)"
              " AND ($4::text IS NULL OR agent = $4) ORDER BY seq LIMIT $5";
    int64_t cur = f->newest_first && !f->from ? INT64_MAX : (int64_t)f->from;
    int64_t left = f->limit > 0 ? f->limit : INT64_MAX;
    for (;;) {
        int64_t page = left < PAGE ? left : PAGE;
        struct params p = {0};
        p_int(&p, cur);
        p_text(&p, f->task);
        p_text(&p, f->swarm);
        p_text(&p, f->agent);
        p_int(&p, page);
        if (!f->newest_first)
            p_int(&p, f->until ? (int64_t)f->until : INT64_MAX);
        PGresult *r = query(conn, sql, &p, "read witness", err);
        if (!r)
            return err->kind;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            struct witness_entry w;
            fill_witness(r, i, &w);
            cur = f->newest_first ? (int64_t)w.seq - 1 : (int64_t)w.seq + 1;
            int stop = fn(ctx, &w);
            witness_entry_release(&w);
            if (stop) {
                PQclear(r);
                return stop;
            }
        }
        PQclear(r);
        left -= n;
        if (n < page || left <= 0 || cur < 1)
            return 0;
    }
}

static int checkpoint_query(PGconn *conn, uint64_t from, int limit, int newest_first,
                            int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                            struct s2_error *err)
{
    const char *sql = newest_first ? "SELECT " CHECKPOINT_COLS " FROM checkpoints"
                                     " WHERE tree_size <= $1 ORDER BY tree_size DESC LIMIT $2"
                                   : "SELECT " CHECKPOINT_COLS " FROM checkpoints"
                                     " WHERE tree_size >= $1 ORDER BY tree_size LIMIT $2";
    int64_t cur = newest_first && !from ? INT64_MAX : (int64_t)from;
    int64_t left = limit > 0 ? limit : INT64_MAX;
    for (;;) {
        int64_t page = left < PAGE ? left : PAGE;
        struct params p = {0};
        p_int(&p, cur);
        p_int(&p, page);
        PGresult *r = query(conn, sql, &p, "read checkpoints", err);
        if (!r)
            return err->kind;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            struct checkpoint c;
            fill_checkpoint(r, i, &c);
            cur = newest_first ? (int64_t)c.tree_size - 1 : (int64_t)c.tree_size + 1;
            int stop = fn(ctx, &c);
            if (stop) {
                PQclear(r);
                return stop;
            }
        }
        PQclear(r);
        left -= n;
        if (n < page || left <= 0 || cur < 1)
            return 0;
    }
}

static int pg_witness_scan(struct store *st_, const struct witness_filter *f,
                           int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                           struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    drain(st);
    if (!st->in_tx && writer_ensure(st, err))
        return err->kind;
    return witness_query(st->conn, f, fn, ctx, err);
}

static int pg_checkpoint_scan(struct store *st_, uint64_t from, int limit, int newest_first,
                              int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                              struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    drain(st);
    if (!st->in_tx && writer_ensure(st, err))
        return err->kind;
    return checkpoint_query(st->conn, from, limit, newest_first, fn, ctx, err);
}

/* ---- loading ---- */

static int64_t pg_task_count(struct store *st_)
{
    struct pg_store *st = (struct pg_store *)st_;
    struct s2_error err = S2_ERROR_INIT;
    PGresult *r = writer_read(st, "SELECT coalesce(max(num), 0) FROM tasks", NULL, "count", &err);
    int64_t n = r ? ival(r, 0, 0) : 0;
    PQclear(r);
    s2_error_release(&err);
    return n;
}

typedef int (*row_fn)(const PGresult *r, int i, const struct store_loader *ld);

/* Stream a table through the loader: all at once when small, else in pages keyed by
 * `key` (an integer column, first in the select list). */
static int load_rows(PGconn *conn, const char *sql, const char *paged_sql, row_fn row,
                     const struct store_loader *ld, struct s2_error *err)
{
    int64_t after = INT64_MIN;
    for (;;) {
        struct params p = {0};
        if (paged_sql) {
            p_int(&p, after);
            p_int(&p, PAGE);
        }
        PGresult *r = query(conn, paged_sql ? paged_sql : sql, paged_sql ? &p : NULL, "load", err);
        if (!r)
            return err->kind;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            int rc = row(r, i, ld);
            if (rc) {
                PQclear(r);
                s2_fail(err, S2_EINTERNAL, "load_failed",
                        "store: loading stopped at a row of: %.60s", paged_sql ? paged_sql : sql);
                return rc;
            }
        }
        if (paged_sql && n)
            after = ival(r, n - 1, 0);
        PQclear(r);
        if (!paged_sql || n < PAGE)
            return 0;
    }
}

static int row_token(const PGresult *r, int i, const struct store_loader *ld)
{
    uint8_t hash[TOKEN_HASH_BYTES];
    if (!ld->token || bval(r, i, 0, hash, sizeof hash) != TOKEN_HASH_BYTES)
        return 0;
    struct load_token t = {hash, val(r, i, 1), val(r, i, 2), val(r, i, 3)};
    return ld->token(ld->ctx, &t);
}

static int row_model(const PGresult *r, int i, const struct store_loader *ld)
{
    struct model_spec m = {(char *)val(r, i, 0), ival(r, i, 1), ival(r, i, 2), ival(r, i, 3)};
    return ld->model ? ld->model(ld->ctx, &m) : 0;
}

static int row_swarm(const PGresult *r, int i, const struct store_loader *ld)
{
    size_t slo_len;
    void *slo = bdup(r, i, 12, &slo_len);
    struct load_swarm w = {
        .id = val(r, i, 0),
        .role = val(r, i, 1),
        .relation = (int)ival(r, i, 2),
        .caps = val(r, i, 3),
        .budget_micro = ival(r, i, 4),
        .branch = val(r, i, 5),
        .state = (int)ival(r, i, 6),
        .created_at = ival(r, i, 7),
        .spent_micro = ival(r, i, 8),
        .alert_level = (int)ival(r, i, 9),
        .idle_tasks = val(r, i, 10),
        .contract = val(r, i, 11),
        .slo = slo,
        .slo_len = slo_len,
    };
    int rc = ld->swarm ? ld->swarm(ld->ctx, &w) : 0;
    free(slo);
    return rc;
}

static int row_agent(const PGresult *r, int i, const struct store_loader *ld)
{
    size_t slo_len;
    void *slo = bdup(r, i, 13, &slo_len);
    struct load_agent a = {
        .id = val(r, i, 0),
        .swarm = val(r, i, 1),
        .model = val(r, i, 2),
        .caps = val(r, i, 3),
        .max_leases = ival(r, i, 4),
        .created_at = ival(r, i, 5),
        .last_seen = ival(r, i, 6),
        .gov = {.id = val(r, i, 0),
                .spent_micro = ival(r, i, 7),
                .breaker_state = (int)ival(r, i, 8),
                .breaker_failures = (int)ival(r, i, 9),
                .breaker_opened_at = ival(r, i, 10),
                .accepted = ival(r, i, 11),
                .rejected = ival(r, i, 12)},
        .slo = slo,
        .slo_len = slo_len,
    };
    int rc = ld->agent ? ld->agent(ld->ctx, &a) : 0;
    free(slo);
    return rc;
}

static int row_task(const PGresult *r, int i, const struct store_loader *ld)
{
    uint8_t lease[TOKEN_HASH_BYTES];
    int has_lease = bval(r, i, 17, lease, sizeof lease) == TOKEN_HASH_BYTES;
    struct load_task t = {
        .rowid = ival(r, i, 0),
        .id = val(r, i, 1),
        .swarm = val(r, i, 2),
        .phase = ival(r, i, 3),
        .requires = val(r, i, 4),
        .min_tier = ival(r, i, 5),
        .priority = ival(r, i, 6),
        .depends_on = val(r, i, 7),
        .max_attempts = ival(r, i, 8),
        .lease_ms = ival(r, i, 9),
        .backoff_ms = ival(r, i, 10),
        .approval = val(r, i, 11),
        .phase_barrier = (int)ival(r, i, 12),
        .state = (int)ival(r, i, 13),
        .attempts = (int)ival(r, i, 14),
        .owner = val(r, i, 15),
        .fence = (uint64_t)ival(r, i, 16),
        .lease_hash = has_lease ? lease : NULL,
        .lease_expires = ival(r, i, 18),
        .ready_at = ival(r, i, 19),
        .approvals = (int)ival(r, i, 20),
        .cost_micro = ival(r, i, 21),
        .tokens_in = ival(r, i, 22),
        .tokens_out = ival(r, i, 23),
        .max_cost_micro = ival(r, i, 24),
        .created_at = ival(r, i, 25),
        .reserved_micro = ival(r, i, 26),
        .kind = (int)ival(r, i, 27),
        .help_for = val(r, i, 28),
        .estimate_micro = ival(r, i, 29),
        .paths = val(r, i, 30),
    };
    return ld->task ? ld->task(ld->ctx, &t) : 0;
}

static int row_approval(const PGresult *r, int i, const struct store_loader *ld)
{
    struct load_approval a = {ival(r, i, 0), val(r, i, 1)};
    return ld->approval ? ld->approval(ld->ctx, &a) : 0;
}

static int row_blocker(const PGresult *r, int i, const struct store_loader *ld)
{
    struct load_blocker b = {val(r, i, 0),  val(r, i, 1),       val(r, i, 2),
                             val(r, i, 3),  ival(r, i, 4),      (int)ival(r, i, 5),
                             (int)ival(r, i, 6), ival(r, i, 7), ival(r, i, 8)};
    return ld->blocker ? ld->blocker(ld->ctx, &b) : 0;
}

static int pg_load(struct store *st_, const struct store_loader *ld, struct s2_error *err)
{
    struct pg_store *st = (struct pg_store *)st_;
    drain(st);
    if (writer_ensure(st, err))
        return err->kind;
    /* one snapshot for the whole load */
    if (exec_cmd(st->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err))
        return err->kind;
    st->next_task = st->next_post = st->next_escalation = 0;
    int rc = load_rows(st->conn,
                       "SELECT name, tier, usd_in_micro, usd_out_micro FROM models ORDER BY name",
                       NULL, row_model, ld, err);
    if (!rc)
        rc = load_rows(st->conn, "SELECT hash, kind, swarm, name FROM tokens", NULL, row_token,
                       ld, err);
    if (!rc)
        rc = load_rows(st->conn,
                       "SELECT id, role, relation, capabilities, budget_micro, branch, state,"
                       " created_at, spent_micro, alert_level, idle_tasks, contract, slo"
                       " FROM swarms ORDER BY created_at, id",
                       NULL, row_swarm, ld, err);
    if (!rc)
        rc = load_rows(st->conn,
                       "SELECT id, swarm, model, capabilities, max_leases, created_at, last_seen,"
                       " spent_micro, breaker_state, breaker_failures, breaker_opened_at,"
                       " help_accepted, help_rejected, slo FROM agents ORDER BY created_at, id",
                       NULL, row_agent, ld, err);
    if (!rc)
        rc = load_rows(st->conn, NULL,
                       "SELECT num, id, swarm, phase, requires, min_tier, priority, depends_on,"
                       " max_attempts, lease_ms, backoff_ms, approval, phase_barrier, state,"
                       " attempts, owner, fence, lease_hash, lease_expires, ready_at, approvals,"
                       " cost_micro, tokens_in, tokens_out, max_cost_micro, created_at,"
                       " reserved_micro, kind, help_for, estimate_micro, paths FROM tasks"
                       " WHERE num > $1 ORDER BY num LIMIT $2",
                       row_task, ld, err);
    if (!rc)
        rc = load_rows(st->conn, "SELECT task, approver FROM approvals ORDER BY task, at", NULL,
                       row_approval, ld, err);
    if (!rc)
        rc = load_rows(st->conn,
                       "SELECT task, needs, reason, agent, created_at, state, escalated,"
                       " budget_micro, resolved_at FROM blockers WHERE state = 0"
                       " ORDER BY created_at",
                       NULL, row_blocker, ld, err);
    exec_cmd(st->conn, rc ? "ROLLBACK" : "COMMIT", NULL);
    return rc;
}

/* ---- readers ---- */

static int pg_reader_open(struct store_reader **out, const char *url, struct s2_error *err)
{
    PGconn *conn;
    if (pg_connect(&conn, url, err))
        return err->kind;
    struct pg_reader *rd = xcalloc(1, sizeof *rd);
    rd->base.ops = &store_pg_ops;
    rd->conn = conn;
    *out = &rd->base;
    return 0;
}

static void pg_reader_close(struct store_reader *rd_)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    PQfinish(rd->conn);
    free(rd);
}

/* A reader whose connection broke reconnects before its next read (not inside a read
 * transaction: that snapshot is gone and the read fails). */
static int reader_ensure(struct pg_reader *rd, struct s2_error *err)
{
    if (PQstatus(rd->conn) == CONNECTION_OK)
        return 0;
    if (rd->in_tx)
        return fail_result(err, rd->conn, NULL, "read snapshot lost");
    PQreset(rd->conn);
    if (PQstatus(rd->conn) != CONNECTION_OK)
        return fail_result(err, rd->conn, NULL, "reconnect");
    PQsetNoticeProcessor(rd->conn, notice_quiet, NULL);
    return exec_cmd(rd->conn, "SET bytea_output = 'hex'; SET client_min_messages = warning;"
                              " SET application_name = 's2'",
                    err);
}

#define TASK_COLS                                                                              \
    "num, id, swarm, title, body, requires, depends_on, approval, owner, result, reason,"      \
    " phase, priority, min_tier, max_attempts, lease_ms, backoff_ms, phase_barrier, state,"    \
    " attempts, approvals, fence, lease_expires, ready_at, cost_micro, tokens_in, tokens_out," \
    " max_cost_micro, estimate_micro, estimate_h, created_at, updated_at, finished_at, paths,"  \
    " kind, help_for"

static void fill_row(const PGresult *r, int i, struct task_row *t)
{
    t->rowid = ival(r, i, 0);
    t->id = sdup(r, i, 1);
    t->swarm = sdup(r, i, 2);
    t->title = sdup(r, i, 3);
    t->body = sdup(r, i, 4);
    t->requires = sdup(r, i, 5);
    t->depends_on = sdup(r, i, 6);
    t->approval = sdup(r, i, 7);
    t->owner = sdup(r, i, 8);
    t->result = sdup(r, i, 9);
    t->reason = sdup(r, i, 10);
    t->phase = ival(r, i, 11);
    t->priority = ival(r, i, 12);
    t->min_tier = ival(r, i, 13);
    t->max_attempts = ival(r, i, 14);
    t->lease_ms = ival(r, i, 15);
    t->backoff_ms = ival(r, i, 16);
    t->phase_barrier = (int)ival(r, i, 17);
    t->state = (int)ival(r, i, 18);
    t->attempts = (int)ival(r, i, 19);
    t->approvals = (int)ival(r, i, 20);
    t->fence = (uint64_t)ival(r, i, 21);
    t->lease_expires = ival(r, i, 22);
    t->ready_at = ival(r, i, 23);
    t->cost_micro = ival(r, i, 24);
    t->tokens_in = ival(r, i, 25);
    t->tokens_out = ival(r, i, 26);
    t->max_cost_micro = ival(r, i, 27);
    t->estimate_micro = ival(r, i, 28);
    t->estimate_h = PQgetisnull(r, i, 29) ? 0 : strtod(PQgetvalue(r, i, 29), NULL);
    t->created_at = ival(r, i, 30);
    t->updated_at = ival(r, i, 31);
    t->finished_at = ival(r, i, 32);
    t->paths = sdup(r, i, 33);
    t->kind = (int)ival(r, i, 34);
    t->help_for = sdup(r, i, 35);
}

static int get_one(struct pg_reader *rd, const char *sql, const struct params *p,
                   struct task_row *row, struct s2_error *err)
{
    if (reader_ensure(rd, err))
        return err->kind;
    PGresult *r = query(rd->conn, sql, p, "read task", err);
    if (!r)
        return err->kind;
    int got = PQntuples(r) == 1;
    if (got)
        fill_row(r, 0, row);
    PQclear(r);
    return got;
}

static int pg_task_get(struct store_reader *rd_, const char *id, struct task_row *row,
                       struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, id);
    return get_one((struct pg_reader *)rd_, "SELECT " TASK_COLS " FROM tasks WHERE id = $1", &p,
                   row, err);
}

static int pg_task_get_rowid(struct store_reader *rd_, int64_t rowid, struct task_row *row,
                             struct s2_error *err)
{
    struct params p = {0};
    p_int(&p, rowid);
    return get_one((struct pg_reader *)rd_, "SELECT " TASK_COLS " FROM tasks WHERE num = $1", &p,
                   row, err);
}

static int pg_task_list(struct store_reader *rd_, const struct task_filter *f,
                        void (*fn)(void *ctx, const struct task_row *row), void *ctx,
                        struct s2_error *err)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (reader_ensure(rd, err))
        return err->kind;
    struct params p = {0};
    p_text(&p, f->swarm);
    p_int(&p, f->state);
    p_int(&p, f->after);
    p_int(&p, f->limit);
    PGresult *r = query(rd->conn,
                        "SELECT " TASK_COLS " FROM tasks WHERE ($1::text IS NULL OR swarm = $1)"
                        " AND ($2::int < 0 OR state = $2) AND num > $3 ORDER BY num LIMIT $4",
                        &p, "list tasks", err);
    if (!r)
        return err->kind;
    for (int i = 0; i < PQntuples(r); i++) {
        struct task_row row;
        fill_row(r, i, &row);
        fn(ctx, &row);
        task_row_release(&row);
    }
    PQclear(r);
    return 0;
}

static int pg_reader_witness(struct store_reader *rd_, const struct witness_filter *f,
                             int (*fn)(void *ctx, const struct witness_entry *w), void *ctx,
                             struct s2_error *err)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (reader_ensure(rd, err))
        return err->kind;
    return witness_query(rd->conn, f, fn, ctx, err);
}

static int pg_reader_checkpoints(struct store_reader *rd_, uint64_t from, int limit,
                                 int newest_first,
                                 int (*fn)(void *ctx, const struct checkpoint *c), void *ctx,
                                 struct s2_error *err)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (reader_ensure(rd, err))
        return err->kind;
    return checkpoint_query(rd->conn, from, limit, newest_first, fn, ctx, err);
}

static int pg_reader_leaves(struct store_reader *rd_, uint64_t n, merkle_hash *out,
                            struct s2_error *err)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (reader_ensure(rd, err))
        return err->kind;
    uint64_t i = 0;
    while (i < n) {
        struct params p = {0};
        p_int(&p, (int64_t)i + 1);
        p_int(&p, (int64_t)n);
        p_int(&p, PAGE);
        PGresult *r = query(rd->conn,
                            "SELECT seq, hash FROM witness WHERE seq >= $1 AND seq <= $2"
                            " ORDER BY seq LIMIT $3",
                            &p, "read witness hashes", err);
        if (!r)
            return err->kind;
        int rows = PQntuples(r);
        for (int k = 0; k < rows; k++) {
            if ((uint64_t)ival(r, k, 0) != i + 1) {
                PQclear(r);
                return s2_fail(err, S2_EINTERNAL, "witness_gap",
                               "witness log has a gap before entry %" PRIu64, i + 1);
            }
            merkle_hash h;
            bfixed(r, k, 1, h, MERKLE_HASH);
            merkle_leaf(h, MERKLE_HASH, out[i++]);
        }
        PQclear(r);
        if (rows < PAGE)
            break;
    }
    if (i != n)
        return s2_fail(err, S2_ENOTFOUND, "witness_short",
                       "the witness log has %" PRIu64 " entries, fewer than %" PRIu64, i, n);
    return 0;
}

static char *pg_reader_meta(struct store_reader *rd_, const char *key)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    struct s2_error err = S2_ERROR_INIT;
    char *v = NULL;
    if (!reader_ensure(rd, &err)) {
        struct params p = {0};
        p_text(&p, key);
        PGresult *r = query(rd->conn, "SELECT value FROM meta WHERE key = $1", &p, "meta", &err);
        if (r && PQntuples(r) == 1)
            v = sdup(r, 0, 0);
        PQclear(r);
    }
    s2_error_release(&err);
    return v;
}

static int pg_reader_posts(struct store_reader *rd_, const char *task, json_t **out,
                           struct s2_error *err)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (reader_ensure(rd, err))
        return err->kind;
    struct params p = {0};
    p_text(&p, task);
    PGresult *r = query(rd->conn,
                        "SELECT id, agent, help_task, body, created_at, verdict, verdict_at"
                        " FROM posts WHERE task = $1 ORDER BY id",
                        &p, "read thread", err);
    if (!r)
        return err->kind;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t v = ival(r, i, 5);
        json_t *o = json_pack("{s:I,s:s?,s:s?,s:s,s:I,s:s}", "id", (json_int_t)ival(r, i, 0),
                              "agent", val(r, i, 1), "help_task", val(r, i, 2), "body",
                              val(r, i, 3) ? val(r, i, 3) : "", "created_at",
                              (json_int_t)ival(r, i, 4), "verdict",
                              v > 0 ? "accepted" : v < 0 ? "rejected" : "pending");
        if (o)
            json_array_append_new(a, o);
    }
    PQclear(r);
    *out = a;
    return 0;
}

static int pg_reader_escalations(struct store_reader *rd_, int all, int limit, json_t **out,
                                 struct s2_error *err)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (reader_ensure(rd, err))
        return err->kind;
    struct params p = {0};
    p_int(&p, all ? 1 : 0);
    p_int(&p, limit);
    PGresult *r = query(rd->conn,
                        "SELECT id, kind, swarm, task, agent, message, created_at, acked_at,"
                        " acked_by FROM escalations WHERE $1::int <> 0 OR acked_at = 0"
                        " ORDER BY id DESC LIMIT $2",
                        &p, "read escalations", err);
    if (!r)
        return err->kind;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *o = json_pack("{s:I,s:s,s:s?,s:s?,s:s?,s:s,s:I}", "id", (json_int_t)ival(r, i, 0),
                              "kind", val(r, i, 1), "swarm", val(r, i, 2), "task", val(r, i, 3),
                              "agent", val(r, i, 4), "message", val(r, i, 5), "created_at",
                              (json_int_t)ival(r, i, 6));
        if (!o)
            continue;
        int64_t acked = ival(r, i, 7);
        json_object_set_new(o, "acked_at", acked ? json_integer(acked) : json_null());
        json_object_set_new(o, "acked_by", val(r, i, 8) ? json_string(val(r, i, 8)) : json_null());
        json_array_append_new(a, o);
    }
    PQclear(r);
    *out = a;
    return 0;
}

static int pg_reader_begin(struct store_reader *rd_, struct s2_error *err)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (reader_ensure(rd, err))
        return err->kind;
    if (exec_cmd(rd->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err))
        return err->kind;
    rd->in_tx = 1;
    return 0;
}

static void pg_reader_end(struct store_reader *rd_)
{
    struct pg_reader *rd = (struct pg_reader *)rd_;
    if (rd->in_tx)
        exec_cmd(rd->conn, "COMMIT", NULL);
    rd->in_tx = 0;
}

/* ---- cursors: server-side, inside the reader's transaction, fetched in pages ---- */

static int cursor_open(struct pg_reader *rd, int kind, const char *sql, uint64_t from,
                       struct store_cursor **out, struct s2_error *err)
{
    if (!rd->in_tx)
        return s2_fail(err, S2_EINTERNAL, "store_error",
                       "postgres: a cursor needs a read transaction (store_reader_begin)");
    struct pg_cursor *c = xcalloc(1, sizeof *c);
    c->base.ops = &store_pg_ops;
    c->rd = rd;
    c->kind = kind;
    snprintf(c->name, sizeof c->name, "s2_cursor_%d", ++rd->ncursors);
    char *decl = xasprintf("DECLARE %s NO SCROLL CURSOR FOR %s", c->name, sql);
    struct params p = {0};
    p_int(&p, (int64_t)from);
    PGresult *r = query(rd->conn, decl, &p, "open cursor", err);
    free(decl);
    if (!r) {
        free(c);
        return err->kind;
    }
    PQclear(r);
    *out = &c->base;
    return 0;
}

static int pg_cursor_witness(struct store_reader *rd_, uint64_t from, struct store_cursor **out,
                             struct s2_error *err)
{
    return cursor_open((struct pg_reader *)rd_, 0,
                       "SELECT " WITNESS_COLS " FROM witness WHERE seq >= $1 ORDER BY seq", from,
                       out, err);
}

static int pg_cursor_checkpoints(struct store_reader *rd_, uint64_t from,
                                 struct store_cursor **out, struct s2_error *err)
{
    return cursor_open((struct pg_reader *)rd_, 1,
                       "SELECT " CHECKPOINT_COLS " FROM checkpoints WHERE tree_size >= $1"
                       " ORDER BY tree_size",
                       from, out, err);
}

/* 1 a row at c->row, 0 the end, <0 error. */
static int cursor_step(struct pg_cursor *c, struct s2_error *err)
{
    if (c->page && ++c->row < c->nrows)
        return 1;
    if (c->done)
        return 0;
    PQclear(c->page);
    c->page = NULL;
    char sql[64];
    snprintf(sql, sizeof sql, "FETCH %d FROM %s", PAGE, c->name);
    c->page = query(c->rd->conn, sql, NULL, "read cursor", err);
    if (!c->page)
        return err->kind;
    c->nrows = PQntuples(c->page);
    c->row = 0;
    if (c->nrows < PAGE)
        c->done = 1;
    return c->nrows > 0;
}

static int pg_cursor_next_entry(struct store_cursor *c_, struct witness_entry *w,
                                struct s2_error *err)
{
    struct pg_cursor *c = (struct pg_cursor *)c_;
    int rc = cursor_step(c, err);
    if (rc == 1)
        fill_witness(c->page, c->row, w);
    return rc;
}

static int pg_cursor_next_checkpoint(struct store_cursor *c_, struct checkpoint *cp,
                                     struct s2_error *err)
{
    struct pg_cursor *c = (struct pg_cursor *)c_;
    int rc = cursor_step(c, err);
    if (rc == 1)
        fill_checkpoint(c->page, c->row, cp);
    return rc;
}

static void pg_cursor_close(struct store_cursor *c_)
{
    struct pg_cursor *c = (struct pg_cursor *)c_;
    PQclear(c->page);
    if (PQstatus(c->rd->conn) == CONNECTION_OK &&
        PQtransactionStatus(c->rd->conn) == PQTRANS_INTRANS) {
        char sql[64];
        snprintf(sql, sizeof sql, "CLOSE %s", c->name);
        exec_cmd(c->rd->conn, sql, NULL);
    }
    free(c);
}

/* ---- copying in (s2 migrate) ---- */

struct store_import {
    struct pg_store w; /* a writer without statements: the pipeline and its collection */
};

static int pg_import_open(struct store_import **out, const char *url, struct s2_error *err)
{
    if (pg_create(url, err))
        return err->kind;
    struct store_import *im = xcalloc(1, sizeof *im);
    im->w.base.ops = &store_pg_ops;
    if (pg_connect(&im->w.conn, url, err)) {
        free(im);
        return err->kind;
    }
    if (exec_cmd(im->w.conn, "BEGIN", err)) {
        PQfinish(im->w.conn);
        free(im);
        return err->kind;
    }
    im->w.in_tx = 1;
    *out = im;
    return 0;
}

static int pg_import_row(struct store_import *im, const char *table, int ncols,
                         const char *const *names, const struct store_value *v,
                         struct s2_error *err)
{
    struct pg_store *st = &im->w;
    if (ncols > MAXP)
        return s2_fail(err, S2_EINTERNAL, "store_error", "postgres: table %s has %d columns",
                       table, ncols);
    struct buf sql = BUF_INIT;
    buf_addf(&sql, "INSERT INTO %s(", table);
    for (int i = 0; i < ncols; i++)
        buf_addf(&sql, "%s%s", i ? ", " : "", names[i]);
    buf_adds(&sql, ") VALUES(");
    for (int i = 0; i < ncols; i++)
        buf_addf(&sql, "%s$%d", i ? ", " : "", i + 1);
    buf_addch(&sql, ')');
    struct params p = {0};
    for (int i = 0; i < ncols; i++) {
        switch (v[i].type) {
        case SV_INT: p_int(&p, v[i].i); break;
        case SV_REAL: p_double(&p, v[i].d); break;
        case SV_TEXT: p_text(&p, v[i].p); break;
        case SV_BLOB: p_blob(&p, v[i].n ? v[i].p : "", v[i].n); break;
        default: p_text(&p, NULL); break;
        }
    }
    int rc = 0;
    if (st->failed) {
        rc = s2_fail(err, S2_EINTERNAL, "store_error", "%s", st->failed);
    } else {
        if (!st->pipelined) {
            if (!PQenterPipelineMode(st->conn))
                rc = fail_result(err, st->conn, NULL, "enter pipeline mode");
            else
                st->pipelined = 1;
        }
        if (!rc && !PQsendQueryParams(st->conn, sql.ptr, p.n, NULL, p.v, p.len, p.fmt, 0))
            rc = fail_result(err, st->conn, NULL, "copy row");
        if (!rc && ++st->pending >= PIPELINE_MAX) {
            drain(st);
            if (st->failed)
                rc = s2_fail(err, S2_EINTERNAL, "store_error", "copying %s: %s", table,
                             st->failed);
        }
    }
    buf_release(&sql);
    return rc;
}

static void pg_import_abort(struct store_import *im)
{
    drain(&im->w);
    PQfinish(im->w.conn);
    free(im->w.failed);
    free(im);
}

static int pg_import_commit(struct store_import *im, struct s2_error *err)
{
    struct pg_store *st = &im->w;
    drain(st);
    int rc = 0;
    if (st->failed)
        rc = s2_fail(err, S2_EINTERNAL, "store_error", "%s", st->failed);
    else
        rc = exec_cmd(st->conn, "COMMIT", err);
    if (rc)
        exec_cmd(st->conn, "ROLLBACK", NULL);
    PQfinish(st->conn);
    free(st->failed);
    free(im);
    return rc;
}

/* ---- the cluster (store.h "cluster"): leadership and the nodes' directory ---- */

/* The advisory lock's key: one leader per database. */
#define LEADER_LOCK "7411, 1"

struct store_cluster {
    PGconn *conn;
    char *url;
    int leading;
};

void store_set_fence(struct store *st_, int64_t epoch)
{
    if (st_->ops != &store_pg_ops)
        return;
    ((struct pg_store *)st_)->epoch = epoch;
}

int store_cluster_open(struct store_cluster **out, const char *location, struct s2_error *err)
{
    if (!store_location_is_pg(location))
        return s2_fail(err, S2_EINVAL, "not_postgres",
                       "a cluster needs a PostgreSQL store (postgres://...)");
    struct store_cluster *c = xcalloc(1, sizeof *c);
    c->url = xstrdup(location);
    if (pg_connect(&c->conn, location, err)) {
        free(c->url);
        free(c);
        return err->kind;
    }
    *out = c;
    return 0;
}

void store_cluster_close(struct store_cluster *c)
{
    if (!c)
        return;
    PQfinish(c->conn); /* ends the session: releases the lock if held */
    free(c->url);
    free(c);
}

int store_cluster_reconnect(struct store_cluster *c, struct s2_error *err)
{
    c->leading = 0; /* a new session holds no lock */
    PQreset(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail_result(err, c->conn, NULL, "reconnect");
    PQsetNoticeProcessor(c->conn, notice_quiet, NULL);
    return exec_cmd(c->conn, "SET client_min_messages = warning", err);
}

int store_cluster_depose(struct store_cluster *c, int64_t silent_ms, char **who,
                         struct s2_error *err)
{
    *who = NULL;
    /* The holder of the lock is silent when its session has sat idle that long: a leader
     * beats five times a second. Both times are the server's, so clocks of the nodes do
     * not matter. Ending every session of that node also ends a transaction it may hold
     * open on s2_leader, which would block the next epoch. */
    struct params p = {0};
    p_int(&p, silent_ms);
    PGresult *r = query(c->conn,
                        "WITH silent AS ("
                        "  SELECT a.pid, a.application_name AS app FROM pg_locks l"
                        "  JOIN pg_stat_activity a ON a.pid = l.pid"
                        "  WHERE l.locktype = 'advisory' AND l.classid = 7411 AND l.objid = 1"
                        "    AND l.granted AND a.state = 'idle'"
                        "    AND a.state_change < clock_timestamp() - $1::float8 * interval '1 millisecond')"
                        " SELECT s.app, count(*) FILTER (WHERE pg_terminate_backend(a.pid))"
                        " FROM silent s JOIN pg_stat_activity a ON a.pid = s.pid"
                        "   OR (s.app LIKE 's2/%' AND a.application_name = s.app)"
                        " WHERE a.pid <> pg_backend_pid() GROUP BY s.app",
                        &p, "depose a silent leader", err);
    if (!r)
        return -1;
    int n = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 1)) : 0;
    if (n)
        *who = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

int store_cluster_try_lead(struct store_cluster *c, int64_t now, int64_t *epoch,
                           struct s2_error *err)
{
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail_result(err, c->conn, NULL, "cluster connection");
    if (!c->leading) {
        PGresult *r = query(c->conn, "SELECT pg_try_advisory_lock(" LEADER_LOCK ")", NULL,
                            "leader lock", err);
        if (!r)
            return err->kind;
        int got = !strcmp(PQgetvalue(r, 0, 0), "t");
        PQclear(r);
        if (!got)
            return 0;
        c->leading = 1;
    }
    /* A new epoch fences out the previous leader: its transactions check the epoch under a
     * share lock of this row, so this waits for one in flight and fails every later one. */
    struct params p = {0};
    p_int(&p, now);
    PGresult *r = query(c->conn,
                        "UPDATE s2_leader SET epoch = epoch + 1, node = NULL, since = $1"
                        " WHERE id = 1 RETURNING epoch",
                        &p, "leader epoch", err);
    if (!r)
        return err->kind;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return s2_fail(err, S2_EINTERNAL, "store_error", "postgres: the s2_leader row is missing");
    }
    *epoch = ival(r, 0, 0);
    PQclear(r);
    return 1;
}

int store_cluster_publish(struct store_cluster *c, const char *node, int64_t epoch,
                          struct s2_error *err)
{
    struct params p = {0};
    p_text(&p, node);
    p_int(&p, epoch);
    PGresult *r = query(c->conn, "UPDATE s2_leader SET node = $1 WHERE id = 1 AND epoch = $2", &p,
                        "publish leader", err);
    if (!r)
        return err->kind;
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    if (n != 1)
        return s2_fail(err, S2_EUNAVAIL, "not_leader",
                       "another node became the leader (epoch %" PRId64 " is over)", epoch);
    return 0;
}

int store_cluster_resign(struct store_cluster *c, struct s2_error *err)
{
    if (!c->leading)
        return 0;
    c->leading = 0;
    PGresult *r = query(c->conn, "SELECT pg_advisory_unlock(" LEADER_LOCK ")", NULL,
                        "leader unlock", err);
    if (!r)
        return err->kind;
    PQclear(r);
    return 0;
}

int store_cluster_beat(struct store_cluster *c, const struct store_node *me,
                       struct store_leader *leader, struct s2_error *err)
{
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail_result(err, c->conn, NULL, "cluster connection");
    struct params p = {0};
    p_text(&p, me->id);
    p_text(&p, me->url);
    p_int(&p, me->started_at);
    p_int(&p, me->heartbeat_at);
    p_text(&p, me->role);
    PGresult *r = query(c->conn,
                        "INSERT INTO s2_nodes(id, url, started_at, heartbeat_at, role)"
                        " VALUES($1, $2, $3, $4, $5) ON CONFLICT(id) DO UPDATE SET"
                        " url = excluded.url, heartbeat_at = excluded.heartbeat_at,"
                        " role = excluded.role",
                        &p, "heartbeat", err);
    if (!r)
        return err->kind;
    PQclear(r);
    r = query(c->conn,
              "SELECT l.epoch, l.node, n.url, l.since FROM s2_leader l"
              " LEFT JOIN s2_nodes n ON n.id = l.node WHERE l.id = 1",
              NULL, "read leader", err);
    if (!r)
        return err->kind;
    memset(leader, 0, sizeof *leader);
    if (PQntuples(r) == 1) {
        leader->epoch = ival(r, 0, 0);
        leader->node = sdup(r, 0, 1);
        leader->url = sdup(r, 0, 2);
        leader->since = ival(r, 0, 3);
    }
    PQclear(r);
    if (c->leading) { /* the leader forgets nodes gone for ten minutes */
        struct params q = {0};
        p_int(&q, me->heartbeat_at - 600000);
        r = query(c->conn, "DELETE FROM s2_nodes WHERE heartbeat_at < $1", &q, "forget nodes",
                  err);
        if (!r)
            return err->kind;
        PQclear(r);
    }
    return 0;
}

void store_leader_release(struct store_leader *l)
{
    free(l->node);
    free(l->url);
    memset(l, 0, sizeof *l);
}

int store_cluster_nodes(struct store_cluster *c, json_t **out, struct s2_error *err)
{
    PGresult *r = query(c->conn,
                        "SELECT id, url, started_at, heartbeat_at, role FROM s2_nodes ORDER BY id",
                        NULL, "read nodes", err);
    if (!r)
        return err->kind;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:I,s:s}", "id", val(r, i, 0), "url",
                                           val(r, i, 1), "started_at", (json_int_t)ival(r, i, 2),
                                           "heartbeat_at", (json_int_t)ival(r, i, 3), "role",
                                           val(r, i, 4)));
    PQclear(r);
    *out = a;
    return 0;
}

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .import_open = pg_import_open,
    .import_row = pg_import_row,
    .import_commit = pg_import_commit,
    .import_abort = pg_import_abort,
    .create = pg_create,
    .open = pg_open,
    .reader_open = pg_reader_open,
    .flush = pg_flush,
    .checkpoint = pg_checkpoint,
    .sync_commits = pg_sync_commits,
    .commits_durable = pg_commits_durable,
    .schema_version = pg_schema_version,
    .begin = pg_begin,
    .commit = pg_commit,
    .meta_put = pg_meta_put,
    .meta_get = pg_meta_get,
    .token_insert = pg_token_insert,
    .swarm_insert = pg_swarm_insert,
    .swarm_set_state = pg_swarm_set_state,
    .agent_insert = pg_agent_insert,
    .agent_seen = pg_agent_seen,
    .model_put = pg_model_put,
    .task_insert = pg_task_insert,
    .task_update = pg_task_update,
    .task_outcome = pg_task_outcome,
    .approval_insert = pg_approval_insert,
    .swarm_ledger = pg_swarm_ledger,
    .swarm_budget = pg_swarm_budget,
    .slo = pg_slo,
    .swarm_text = pg_swarm_text,
    .agent_gov = pg_agent_gov,
    .blocker_put = pg_blocker_put,
    .post_insert = pg_post_insert,
    .post_verdict = pg_post_verdict,
    .escalation_insert = pg_escalation_insert,
    .escalation_ack = pg_escalation_ack,
    .post_get = pg_post_get,
    .witness_append = pg_witness_append,
    .checkpoint_add = pg_checkpoint_add,
    .checkpoint_frontier = pg_checkpoint_frontier,
    .witness_scan = pg_witness_scan,
    .checkpoint_scan = pg_checkpoint_scan,
    .task_count = pg_task_count,
    .load = pg_load,
    .task_get = pg_task_get,
    .task_get_rowid = pg_task_get_rowid,
    .reader_witness = pg_reader_witness,
    .reader_checkpoints = pg_reader_checkpoints,
    .reader_leaves = pg_reader_leaves,
    .reader_meta = pg_reader_meta,
    .reader_posts = pg_reader_posts,
    .reader_escalations = pg_reader_escalations,
    .reader_begin = pg_reader_begin,
    .cursor_witness = pg_cursor_witness,
    .cursor_checkpoints = pg_cursor_checkpoints,
    .cursor_next_entry = pg_cursor_next_entry,
    .cursor_next_checkpoint = pg_cursor_next_checkpoint,
    .task_list = pg_task_list,
    .close = pg_close,
    .rollback = pg_rollback,
    .reader_close = pg_reader_close,
    .reader_end = pg_reader_end,
    .cursor_close = pg_cursor_close,
};
