/* engine.h: the domain rules. One engine thread owns every swarm, agent and task in memory
 * and the store's writer; everything else talks to it by submitting commands. The engine
 * drains its queue in batches: one store transaction per batch (group commit), and no
 * command is answered before the transaction holding its change has committed. State
 * changes become events (engine_events) after the commit.
 *
 * Rules live here and only here: task states, dependencies, the phase barrier, approvals,
 * leases and fencing, retries with backoff, ready queues and the long-poll hand-off. */
#ifndef S2_ENGINE_H
#define S2_ENGINE_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "model.h"
#include "store.h"
#include "witness.h"

struct engine;
struct events;

/* Who is asking. Filled by the HTTP layer from the bearer token. */
/* admin: everything. swarm: one swarm's agents and tasks. approver: approves tasks (its name
 * counts once toward a quorum) and reads; nothing else. */
/* task: a lease token used as a bearer token: it acts on that one task (heartbeat, done,
 * fail, block, its thread) until the lease ends, and on nothing else. */
enum principal_kind { PRIN_ADMIN, PRIN_SWARM, PRIN_APPROVER, PRIN_TASK };
struct principal {
    enum principal_kind kind;
    const char *swarm; /* PRIN_SWARM: the swarm it is scoped to (borrowed, lives forever) */
    const char *name;  /* who, for approvals and logs (borrowed) */
    char task[S2_ID_MAX + 1]; /* PRIN_TASK: the task (copied: tasks can be reloaded) */
};

enum cmd_kind {
    CMD_SWARM_ADD,
    CMD_SWARM_STATE, /* pause / resume */
    CMD_AGENT_ADD,
    CMD_MODEL_PUT,
    CMD_TASK_ADD,
    CMD_CLAIM,
    CMD_HEARTBEAT,
    CMD_DONE,
    CMD_FAIL,
    CMD_CANCEL,
    CMD_APPROVE,
    CMD_RELEASE, /* a claim's reply never reached its client: give the task back */
    CMD_QUERY,   /* a read of in-memory state, answered as JSON */
    /* the governor (engine_gov.c) */
    CMD_POLICY_PUT,
    CMD_BUDGET_SET,
    CMD_BREAKER_RESET,
    CMD_BLOCK,
    CMD_UNBLOCK,
    CMD_POST,
    CMD_VERDICT,
    CMD_ESCALATION_ACK,
    CMD_APPROVER_ADD,
    CMD_SWARM_TEXT, /* idle tasks or contract */
};

enum query_kind {
    Q_SWARMS,       /* arg: optional cursor (swarm id); limit */
    Q_SWARM,        /* arg: swarm id */
    Q_SWARM_STATUS, /* arg: swarm id */
    Q_AGENTS,       /* arg: optional swarm filter; after: optional cursor (agent id); limit */
    Q_AGENT,        /* arg: agent id */
    Q_MODELS,
    Q_STATS,        /* counters for /metrics and /healthz */
    Q_OVERVIEW,     /* one line per swarm: counts, for `s2 status` */
    Q_POLICY,
    Q_BUDGETS,      /* arg: optional swarm */
    Q_BREAKERS,
    Q_BLOCKERS,     /* arg: optional swarm */
    Q_TASK_VISIBLE, /* arg: task id: {"task": id} if this principal may see it */
    Q_CONTRACT,     /* arg: swarm id */
    Q_IDLE_TASKS,   /* arg: swarm id */
    Q_SLO,          /* arg: swarm id, or NULL for every swarm */
    Q_PATHS,        /* arg: JSON {"paths": [...], "lease": optional}: live path leases hit */
};

struct cmd {
    enum cmd_kind kind;
    struct principal who;

    /* ---- input (owned by the command; released by cmd_free) ---- */
    union {
        struct swarm_spec swarm;
        struct {
            char *id;
            int pause; /* 1 pause, 0 resume */
        } swarm_state;
        struct agent_spec agent;
        struct model_spec model;
        struct {
            struct task_spec *v;
            size_t n;
            int batch; /* asked as {"tasks": [...]} */
        } tasks;
        struct {
            char *agent;
            int64_t wait_ms;
        } claim;
        struct {
            char *task;
            char *lease;
            struct usage usage;
            char *result;  /* done: JSON text */
            char *reason;  /* fail */
            int retry;     /* fail: 0 = give up now (dead) */
        } lease_op;
        struct {
            char *task;
            char *reason;
        } cancel;
        struct {
            char *task;
            char *comment; /* why, for the record (NULL: none) */
        } approve;
        struct {
            char *task;
            uint64_t fence;
        } release;
        struct {
            enum query_kind what;
            char *arg;
            char *after; /* Q_AGENTS: the page starts after this agent (NULL: first) */
            int limit;   /* 0: the query's default */
        } query;
        struct {
            json_t *json; /* CMD_POLICY_PUT: the members to change */
        } policy;
        struct {
            char *swarm; /* NULL: the global budget */
            int64_t budget_micro;
        } budget;
        struct {
            char *id; /* an agent or a swarm */
        } breaker;
        struct {
            char *task;
            char *lease;
            struct strvec needs; /* CMD_BLOCK */
            char *reason;        /* CMD_BLOCK */
        } block;
        struct {
            char *task;  /* the blocked task whose thread it is */
            char *lease; /* the blocked task's or one of its help tasks' lease */
            char *body;  /* CMD_POST */
            int64_t post; /* CMD_VERDICT */
            int verdict;  /* CMD_VERDICT: 1 accept, -1 reject */
        } thread;
        struct {
            int64_t id;
        } ack;
        struct {
            char *name;
        } approver;
        struct {
            char *swarm;
            int which; /* STORE_SWARM_IDLE or STORE_SWARM_CONTRACT */
            char *json; /* validated by the API; NULL clears */
        } swarm_text;
    } in;

    /* ---- output (valid in the done callback) ---- */
    struct s2_error err;
    struct {
        char *token;    /* CMD_SWARM_ADD: the swarm token, shown once */
        int64_t rowid;  /* the task concerned */
        char *task_id;  /* CMD_TASK_ADD (single) / CMD_CLAIM: the task's id */
        int state;      /* the task's state after the command */
        int attempts;
        int got;        /* CMD_CLAIM: 1 a task was claimed, 0 none */
        const char *wait_reason; /* CMD_CLAIM with got == 0: why nothing (static) */
        char *lease;    /* CMD_CLAIM: the lease token (secret) */
        uint64_t fence;
        uint64_t witness_seq; /* CMD_CLAIM: seq of the task.claim witness entry */
        int64_t expires_at; /* CMD_CLAIM, CMD_HEARTBEAT: lease expiry (ms) */
        int64_t retry_at;   /* CMD_FAIL: when the task can be claimed again, 0 if not */
        int64_t push_from_ns; /* CMD_CLAIM answered by a push: when its task became ready */
        int64_t *rowids;    /* CMD_TASK_ADD: per task, in request order */
        int *states;
        char **ids;
        json_t *json;       /* CMD_QUERY */
    } out;

    /* Called once, from the engine thread, after the command's transaction committed (or
     * failed: out.err says so). It must not block; it may free the command. */
    void (*done)(struct cmd *c);
    void *ctx;

    /* Trace id for the witness entries this command writes (the HTTP layer copies the
     * client's S2-Trace-Id or traceparent here); empty: the engine makes one. */
    char trace_id[WITNESS_TRACE_MAX + 1];

    /* engine-private */
    struct cmd *next;
    int64_t t_submit_ns;
};

/* A fresh zeroed command of the given kind (caller owns; cmd_free). */
struct cmd *cmd_new(enum cmd_kind kind);
void cmd_free(struct cmd *c);

struct engine_config {
    const char *db_path; /* the store's location: a SQLite path or a postgres:// URL */
    const char *key_path; /* the checkpoint signing key; NULL: db_path + ".key" */
    enum durability durability;
    int64_t (*now_ms)(void); /* NULL: the wall clock (tests inject one) */
    int64_t fence_epoch;     /* PostgreSQL: the leadership epoch fencing every commit (0: none) */
};

/* Open the store at cfg->db_path and build the in-memory state from it, after a quick
 * check of the witness log's tail against its latest signed checkpoint (a log edited
 * behind s2's back is refused here). Caller owns. */
int engine_open(struct engine **out, const struct engine_config *cfg, struct s2_error *err);
/* Start the flusher thread: from now on, in full durability, commits only write and a
 * batch is answered once the flusher has synced it (fdatasync of the WAL), while the
 * engine goes on with the next batch. Without it (unit tests), each commit syncs. */
int engine_start(struct engine *e, struct s2_error *err);
/* From the driving thread, once: answer what is queued, answer every waiting claim with
 * "nothing", commit, sync, stop the flusher. Later submissions get 503 at once. */
void engine_stop(struct engine *e);
void engine_free(struct engine *e);

/* Hand a command to the engine. Thread-safe; its done callback runs later in the driving
 * thread (inside engine_step). After engine_stop, the command is answered at once (503). */
void engine_submit(struct engine *e, struct cmd *c);

/* The engine has no thread of its own: one thread (the server's event loop; a unit test)
 * drives it. engine_step processes everything submitted and the timers due, in one
 * transaction, and answers the commands whose changes are durable. Returns the number of
 * commands processed. */
int engine_step(struct engine *e);
/* The thread calling this is the driver: its own submissions need no wake-up. */
void engine_set_driver(struct engine *e);
/* When engine_step should run next: 0 now (work queued), a time in ms since the epoch
 * (a timer), or -1 (nothing scheduled; wait for engine_wake_fd). */
int64_t engine_next_deadline(struct engine *e);
/* Readable when another thread queued a command or a flush finished: then step. */
int engine_wake_fd(struct engine *e);

/* Called (driver thread) with each escalation's event JSON once it is durable: the
 * webhook's feed. fn must not block. */
void engine_set_notify(struct engine *e, void (*fn)(void *ctx, const char *json), void *ctx);

/* The event stream the engine publishes to (set before engine_start; may be NULL). */
void engine_set_events(struct engine *e, struct events *ev);

/* The store path, for readers. */
const char *engine_db_path(const struct engine *e);

/* ---- tokens (thread-safe) ---- */

/* Resolve a bearer token to a principal; 0 ok, S2_EUNAUTH if unknown. Admin, swarm and
 * approver tokens resolve from any thread; a lease token (a task's own credential) only on
 * the driving thread, against the live lease. */
int engine_authenticate(struct engine *e, const char *token, struct principal *who);

/* ---- init (offline, before serving) ---- */

/* Create a new database at path with default models and an admin token, its witness log
 * opened by a signed genesis entry. key_path: the signing key (made by keys_create);
 * its public key is recorded so readers know which key signs the checkpoints.
 * *admin_token receives the token (caller frees); it is stored only hashed. */
int engine_init_db(const char *path, const char *key_path, char **admin_token,
                   struct s2_error *err);

/* The policy in force (the driving thread only: it changes between batches). */
struct policy;
const struct policy *engine_policy(const struct engine *e);

/* The public key that signs this engine's checkpoints. */
const uint8_t *engine_public_key(const struct engine *e);

/* Lease token format helpers (exposed for tests). */
uint64_t engine_lease_fence(const char *lease);

#endif
