/* engine_int.h: the engine's in-memory state, shared by engine.c (rules and the batch loop)
 * and engine_query.c (read views). Nothing outside the engine includes this. Every index is
 * a uint32 into a table the engine owns; only the engine thread touches any of it. */
#ifndef S2_ENGINE_INT_H
#define S2_ENGINE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "engine.h"
#include "events.h"
#include "governor.h"
#include "slo.h"
#include "witness.h"
#include "util/buf.h"
#include "util/heap.h"
#include "util/map.h"
#include "util/xalloc.h"

#define NONE UINT32_MAX

struct u32vec {
    uint32_t *v;
    uint32_t n, cap;
};

struct model {
    char *name;
    int tier;
    int64_t usd_in_micro, usd_out_micro;
};

/* A set of required capabilities, interned: tasks needing the same set share a queue. */
struct reqset {
    char *key;      /* canonical: sorted names joined by '\n' ("" for none) */
    uint32_t *caps; /* sorted capability ids */
    uint32_t n;
};

/* Ready tasks of one swarm that need the same capabilities and minimum tier. */
struct readyq {
    uint32_t reqset;
    int min_tier;
    struct heap heap; /* by priority (high first), then creation order */
};

/* The tasks of one phase of one swarm. */
struct phase_slot {
    int64_t phase;
    uint32_t open;        /* tasks neither done nor cancelled */
    struct u32vec tasks;  /* every task ever in this phase */
};

/* Work a swarm's agents do when nothing else is ready for them (DESIGN "idle_tasks"). */
struct idle_task {
    char *title, *body;
    uint32_t reqset;
};

struct swarm {
    char *id, *role, *branch;
    int relation, state;
    struct strvec caps;
    int64_t created_at;
    struct ledger ledger;           /* budget (limit), spent, reserved, alert level */
    struct idle_task *idle;
    uint32_t nidle, idle_next;
    char *contract;                 /* JSON of its service contract, or NULL */
    int contract_grants;            /* it grants network endpoints or secrets */
    struct slo_window slo;          /* how its last leases ended */
    struct phase_slot *phases; /* sorted by phase */
    uint32_t nphases, capphases;
    struct readyq *queues;
    uint32_t nqueues, capqueues;
    uint32_t qgen;                  /* bumped when a queue is added: agents re-derive theirs */
    uint32_t wait_head, wait_tail;  /* FIFO of waiting claims */
    uint32_t nwaiting;
    uint32_t nagents;
    uint32_t count[TASK_NSTATES];
    int dirty;                      /* something became ready: try the waiters */
    int dirty_mark;                 /* in the batch being created (task add) */
    int64_t mark_phase;             /* its first open phase before that batch */
};

struct agent {
    char *id;
    uint32_t swarm;
    uint32_t model; /* NONE: no model */
    struct strvec caps;
    uint32_t *capids; /* sorted */
    uint32_t ncaps;
    uint32_t max_leases, held;
    int64_t created_at, last_seen, seen_stored;
    uint64_t touched_in; /* batch number that queued its last_seen for writing */
    uint32_t *elig; /* queues of its swarm it may take from */
    uint32_t nelig, capelig, elig_gen;
    int elig_valid;
    struct breaker brk;
    int64_t spent_micro;
    int64_t accepted, rejected; /* its help contributions, as the blocked agents judged them */
    struct slo_window slo;
};

struct task {
    char *id;
    int64_t rowid;
    uint32_t swarm;
    uint32_t owner; /* agent holding (or last holding) it */
    int64_t phase;
    int32_t priority;
    uint8_t state;
    uint8_t min_tier;
    uint8_t approval_kind;
    uint8_t phase_barrier;
    uint16_t approvals_needed, approvals;
    uint16_t attempts, max_attempts;
    uint32_t unmet; /* dependencies not done */
    uint32_t queue; /* index of its ready queue in its swarm */
    uint32_t hpos;  /* position in the ready heap or the timer heap */
    uint32_t reqset;
    int64_t lease_ms, backoff_ms;
    int64_t due;        /* claimed: lease expiry; ready: not before */
    uint64_t fence;
    uint8_t lease_hash[TOKEN_HASH_BYTES];
    int64_t cost_micro, tokens_in, tokens_out;
    int64_t max_cost_micro;   /* 0: the policy's max_cost_per_task */
    int64_t estimate_micro;
    int64_t reserved_micro;   /* the current lease's reservation not yet used by reported cost */
    int64_t claimed_at;       /* when the current lease began (for latency) */
    int64_t ready_ns;         /* monotonic time it last entered a ready queue (push latency) */
    uint32_t weight;          /* unfinished tasks it transitively blocks: the critical path */
    uint32_t mark;            /* graph walks: visited in walk number e->mark_gen */
    uint32_t blocker;         /* its open blocker (index in e->blockers), or NONE */
    uint32_t help_for;        /* a help task: the blocked task it serves, or NONE */
    uint8_t kind;             /* TASK_KIND_* */
    uint8_t overrun;          /* its lease's cost went past the reservation (reported once) */
    struct u32vec deps;       /* tasks it depends on */
    struct u32vec dependents; /* tasks that depend on it */
    struct strvec *approvers; /* only for tasks behind an approval */
    char *lease_key;          /* claimed: its key in e->lease_ix (hex of lease_hash) */
    struct strvec *paths;     /* path globs it touches, or NULL */
};

/* A task reported blocked: the governor finds helpers in other swarms for it. */
enum { BLOCKER_OPEN, BLOCKER_RESOLVED };
struct blocker {
    uint32_t task;        /* the blocked task */
    uint32_t reqset;      /* what it needs */
    char *reason;
    uint32_t agent;       /* who is blocked (NONE if unknown) */
    int64_t created_at;
    int state, escalated;
    int accepted;         /* contributions the blocked agent accepted (in memory: a restart
                             re-arms the escalation timer of a blocker, not its verdicts) */
    int64_t budget_micro; /* for helpers, split between them */
    struct u32vec helps;  /* help tasks made for it */
};

/* A committed batch waiting for its fsync before it is answered and published. */
struct held_batch {
    uint64_t tag;
    struct cmd **replies;
    size_t nreplies;
    struct event *events;
    size_t nevents;
};

/* A claim waiting for work (long-poll). */
struct waiter {
    struct cmd *cmd; /* NULL: free slot */
    uint32_t agent, swarm;
    int64_t deadline;
    uint32_t hpos;
    uint32_t prev, next; /* in its swarm's FIFO, or the free list (next) */
};

#define TASK_CHUNK_BITS 12
#define TASK_CHUNK (1u << TASK_CHUNK_BITS)

struct engine_stats {
    uint64_t batches, commands, commits, commit_failures;
    uint64_t claims, pushes, expired, events, checkpoints;
    uint64_t commit_ns_total;
    uint64_t commit_hist[16]; /* commit latency buckets, see engine_query.c */
    uint64_t claim_hist[16], push_hist[16]; /* the same buckets, from submit / ready to reply */
    uint64_t claim_ns_total, push_ns_total, claims_timed, pushes_timed;
    uint64_t escalations;
    uint64_t batch_hist[12];  /* batch size buckets */
};

struct engine {
    struct store *store;
    char *db_path;
    enum durability durability;
    int64_t (*clock)(void);
    int64_t now;

    struct auth *auth;
    struct events *events;

    /* tables */
    struct model *models;
    uint32_t nmodels, capmodels;
    struct swarm *swarms;
    uint32_t nswarms, capswarms;
    struct agent *agents;
    uint32_t nagents, capagents;
    struct task **chunks;
    uint32_t ntasks, capchunks;
    struct waiter *waiters;
    uint32_t nwaiters, capwaiters, free_waiter;
    char **capnames;
    uint32_t ncapnames, capcapnames;
    struct reqset *reqsets;
    uint32_t nreqsets, capreqsets;

    struct map model_ix, swarm_ix, agent_ix, task_ix, cap_ix, reqset_ix;
    struct map lease_ix; /* live lease (hex of its hash) -> task: lease tokens as credentials */
    struct u32vec pathed; /* claimed tasks that declare paths: no overlapping second claim */

    struct heap timers;        /* tasks by due: lease expiries and retry backoffs */

    /* the governor's state (rules in governor.c, glue in engine_gov.c) */
    struct policy policy;
    struct ledger global;      /* limit: policy.global_budget; spent and reserved of all swarms */
    struct blocker *blockers;
    uint32_t nblockers, capblockers;
    uint32_t open_blockers;
    int top_tier;              /* highest tier in the model table */
    void (*notify)(void *ctx, const char *json); /* durable escalations, for the webhook */
    void *notify_ctx;
    uint32_t mark_gen;
    struct heap waiter_timers; /* waiters by deadline */

    int64_t next_rowid;

    /* the witness log: its head as committed (chain_saved) and as written in the batch in
     * hand (chain); a rolled-back batch goes back to chain_saved */
    struct witness_chain chain, chain_saved;
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    struct checkpoint last_cp; /* the latest committed checkpoint (tree_size 0: none) */
    const struct cmd *cur;     /* the command being processed: actor and trace of entries */
    char timer_trace[33];      /* trace id of the entries timers write in this batch */
    uint64_t task_counter; /* for generated ids */

    /* the batch in hand */
    int in_tx;
    int batch_failed;
    int mutated;
    struct s2_error batch_err;
    struct event *bev;
    size_t nbev, capbev;
    struct cmd **replies;
    size_t nreplies, capreplies;
    struct u32vec dirty_swarms;
    struct u32vec touched_agents;
    int64_t unavailable_until; /* after a failed commit: refuse writes until then */
    int need_reload;           /* the state was cleared and could not be loaded yet */
    int commits_durable;       /* the store's commits are durable when they return */
    int64_t unavailable_backoff;

    /* the queue of submitted commands (any thread) */
    pthread_mutex_t mu;
    struct cmd *q_head, *q_tail;
    int q_signalled;      /* wake_fd written since the queue was last taken */
    int stopping, stopped;
    int wake_fd;          /* eventfd: commands queued by another thread, or a flush done */
    pthread_t driver;     /* the thread that steps the engine (engine_set_driver) */
    int has_driver;

    /* batches committed but not yet durable, oldest first (full durability) */
    struct held_batch *held;
    size_t nheld, capheld;
    uint64_t commits_written;

    /* the flusher thread; fl_* under fl_mu */
    pthread_t flusher;
    int flusher_on;
    pthread_mutex_t fl_mu;
    pthread_cond_t fl_cv;
    uint64_t fl_want, fl_done; /* commits asked to be made durable / made durable */
    char *fl_fail;             /* the last flush failure not yet reported */
    uint64_t fl_fail_upto;
    int fl_stop;

    struct engine_stats stats;
    uint32_t count[TASK_NSTATES];
};

static inline struct task *task_at(const struct engine *e, uint32_t i)
{
    return &e->chunks[i >> TASK_CHUNK_BITS][i & (TASK_CHUNK - 1)];
}

void u32vec_push(struct u32vec *v, uint32_t x);
void u32vec_release(struct u32vec *v);

/* engine_query.c */
void engine_run_query(struct engine *e, struct cmd *c);
/* Capabilities of a reqset as a JSON array. */
json_t *engine_reqset_json(const struct engine *e, uint32_t rs);


/* ---- engine.c internals shared with engine_gov.c (engine thread only) ---- */

/* Room for one more element in an engine table (cap keeps its own integer type). */
#define GROW(e, arr, n, cap)                                                                   \
    do {                                                                                       \
        size_t c_ = (cap);                                                                     \
        (arr) = xgrow((arr), sizeof *(arr), (size_t)(n) + 1, &c_);                             \
        (cap) = c_;                                                                            \
    } while (0)

uint32_t eng_cap(struct engine *e, const char *name);
uint32_t eng_reqset(struct engine *e, const struct strvec *caps);
int eng_tx(struct engine *e);
int eng_store_failed(struct engine *e, struct s2_error *err);
void eng_emit(struct engine *e, const char *op, uint32_t swarm, const struct task *t, uint32_t agent, const char *params);
void eng_reply(struct engine *e, struct cmd *c);
int eng_agent_tier(const struct engine *e, const struct agent *a);
struct phase_slot *eng_phase_slot(struct swarm *s, int64_t phase);
int64_t eng_first_open_phase(const struct swarm *s);
uint32_t eng_queue_for(struct engine *e, struct swarm *s, uint32_t reqset, int min_tier);
int eng_is_open(int state);
void eng_set_state(struct engine *e, struct task *t, int to);
uint32_t eng_task_alloc(struct engine *e);
void eng_task_link(struct engine *e, uint32_t ti, const uint32_t *deps, size_t ndeps);
int eng_persist(struct engine *e, struct task *t);
int eng_can_be_ready(const struct engine *e, const struct task *t);
void eng_mark_dirty(struct engine *e, uint32_t swarm);
void eng_enqueue(struct engine *e, uint32_t ti);
void eng_dequeue(struct engine *e, uint32_t ti);
void eng_make_ready(struct engine *e, uint32_t ti, const char *why);
void eng_reevaluate(struct engine *e, uint32_t ti, const char *why);
void eng_make_pending(struct engine *e, uint32_t ti, const char *why);
void eng_settle(struct engine *e, uint32_t ti, int was_open);
void eng_agent_touch(struct engine *e, uint32_t ai);
int eng_claim_task(struct engine *e, uint32_t ti, uint32_t ai, struct cmd *c);
void eng_lease_end(struct engine *e, struct task *t);
int64_t eng_requeue_or_die(struct engine *e, uint32_t ti, const char *op, const char *reason, int retry);
void eng_agent_elig(struct engine *e, struct agent *a);
uint32_t eng_pick(struct engine *e, uint32_t ai);
uint32_t eng_path_conflict(const struct engine *e, uint32_t ti);
void eng_waiter_unlink(struct engine *e, uint32_t wi);
void eng_match_waiters(struct engine *e);
int eng_may_act(const struct principal *who, const char *swarm, struct s2_error *err);
int eng_admin_only(const struct principal *who, const char *what, struct s2_error *err);
uint32_t eng_find_task(struct engine *e, const char *id, const struct principal *who, struct s2_error *err);
int eng_check_lease(struct engine *e, uint32_t ti, const char *lease, struct s2_error *err);
int eng_add_usage(struct engine *e, struct task *t, const struct usage *u, struct s2_error *err);
void eng_weigh(struct engine *e, uint32_t ti, int delta);
void eng_lease_index(struct engine *e, uint32_t ti, int on);
uint32_t eng_task_new(struct engine *e, struct task_spec *sp, uint32_t si);

/* ---- engine_gov.c: the governor's glue (engine thread only) ---- */

/* Policy gates on a task about to be created: may put it behind a human approval. */
void gov_gate_task(struct engine *e, struct task_spec *t, uint32_t swarm);
/* The governor's commands (policy, budgets, breakers, blockers, threads, escalations,
 * approvers, idle tasks, contracts). */
void gov_command(struct engine *e, struct cmd *c);
/* Read views: Q_POLICY, Q_BUDGETS, Q_BREAKERS, Q_BLOCKERS. */
void gov_query(struct engine *e, struct cmd *c);
/* May agent ai take a lease now (global and swarm budgets, its breaker)? 0, or an error. */
int gov_may_claim(struct engine *e, uint32_t ai, struct s2_error *err);
/* Would a lease of task ti fit the budgets of its scopes? 0, or an error. */
int gov_can_reserve_task(struct engine *e, uint32_t ti, struct s2_error *err);
/* A lease begins: reserve the task's budget in every scope. */
void gov_reserve(struct engine *e, uint32_t ti, uint32_t ai);
/* A lease ends: give back what its reservation still holds. */
void gov_release(struct engine *e, struct task *t);
/* Reported cost: into the ledgers of the task, its agent, swarm and the whole. */
void gov_spend(struct engine *e, struct task *t, uint32_t ai, int64_t cost);
/* Outcomes of a lease, for the breaker, the cascade and escalation. */
void gov_succeeded(struct engine *e, uint32_t ti, uint32_t ai);
void gov_failed(struct engine *e, uint32_t ti, uint32_t ai);
/* Before a failed task is retried: the next attempt may need a stronger tier (cascade). */
void gov_cascade(struct engine *e, uint32_t ti, uint32_t ai);
void gov_dead(struct engine *e, uint32_t ti, const char *reason);
/* A lease ended (SLO_DONE, SLO_FAILED, SLO_EXPIRED): into its swarm's and agent's window. */
void gov_outcome(struct engine *e, uint32_t ti, uint32_t ai, int result);
/* An agent's reputation (0..1): its SLO window against its swarm's contract. */
double gov_reputation(struct engine *e, uint32_t ai);
/* A task left the claimed state for good or was cancelled: resolve its blocker, if any,
 * and, for a help task, its place among the blocker's helpers. */
void gov_task_closed(struct engine *e, uint32_t ti);
/* Nothing ready in its swarm for agent ai: help on a blocker it matches, else one of its
 * swarm's idle tasks. Claims it for c and returns 1, or 0. */
int gov_find_work(struct engine *e, uint32_t ai, struct cmd *c);
/* Does an agent of this swarm hold live help on task ti's open blocker? (Its swarm token
 * may then read and write ti's thread.) */
int gov_helps(struct engine *e, uint32_t ti, const char *swarm);
/* Timers of the governor (blockers escalating by themselves); the next one, or -1. */
void gov_fire(struct engine *e);
int64_t gov_next_timer(struct engine *e);
/* Raise an escalation (persisted, witnessed, and POSTed to the webhook once durable). */
void gov_escalate(struct engine *e, const char *kind, uint32_t swarm, uint32_t ti,
                  uint32_t ai, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Loading: a swarm's and an agent's governor state, an open blocker; then the policy from
 * the store and the ledgers and weights the loaded tasks imply. */
void gov_load_swarm(struct engine *e, uint32_t si, const struct load_swarm *s);
void gov_load_agent(struct engine *e, uint32_t ai, const struct agent_gov *g);
void gov_load_slo(struct slo_window *w, const void *blob, size_t len);
int gov_load_blocker(struct engine *e, const struct load_blocker *b);
int gov_load(struct engine *e, struct s2_error *err);

#endif
