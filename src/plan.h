/* plan.h: plan files (docs/PLAN.md): the YAML that declares a whole deployment (policy,
 * model table, swarms with their agents, contracts, idle tasks and phased tasks), parsed
 * with the line:column of every value and validated as a whole, so that one run reports
 * every error as FILE:LINE:COL: message. Offline and pure: no I/O beyond reading the file,
 * no server. Bad input never crashes the parser: it becomes errors. */
#ifndef S2_PLAN_H
#define S2_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/strvec.h"

/* ---- limits on the file itself (docs/PLAN.md "Limits") ---- */
#define PLAN_FILE_MAX (256u * 1024 * 1024) /* bytes */
#define PLAN_DEPTH_MAX 64                  /* nesting of mappings and lists */
#define PLAN_NODES_MAX 20000000u           /* YAML values in one file (about 400 MB of tree) */
#define PLAN_ERRORS_MAX 1000               /* errors kept; the rest are counted */
#define PLAN_SUGGEST_MAX 200               /* "did you mean" searches per validation */

/* ---- contract limits ---- */
#define PLAN_VERSION_MAX 64
#define PLAN_HOSTPORT_MAX 261 /* 253-byte host name, ':', port */
#define PLAN_SECRET_MAX 128
#define PLAN_NETWORK_MAX 64 /* entries of network and of secrets */
#define PLAN_IDLE_MAX 100   /* idle tasks of one swarm */

/* A position in the plan file, both 1-based; line 0 when it is not from the file. */
struct plan_pos {
    uint32_t line, col;
};

struct plan_error {
    struct plan_pos at;
    char *msg;
};

/* ---- policy: the same keys as PUT /v1/policy ---- */
enum plan_policy_key {
    PK_PRESET,
    PK_MIN_CAPABILITY_MATCH,
    PK_MAX_HELPERS,
    PK_MAX_COST_PER_TASK,
    PK_GLOBAL_BUDGET,
    PK_BREAKER_FAILURES,
    PK_BREAKER_COOLDOWN_S,
    PK_CASCADE,
    PK_BLOCKER_ESCALATE_AFTER_S,
    PK_BUDGET_ALERT_PCT,
    PK_RATE_LIMIT_RPS,
    PK_RATE_LIMIT_BURST,
    PK_APPROVE_ABOVE_USD,
    PK_APPROVE_TOP_TIER_RETRY,
    PK_APPROVE_NETWORK,
    PK_WEBHOOK_URL,
    PK_WEBHOOK_TIMEOUT_S,
    PK_WEBHOOK_RETRIES,
    PK_NKEYS
};
enum plan_value_type { PV_PRESET, PV_RATIO, PV_INT, PV_USD, PV_USD_POSITIVE, PV_BOOL, PV_URL };
struct plan_policy_keydef {
    const char *name;
    int type;
    int64_t lo, hi; /* PV_INT */
};
extern const struct plan_policy_keydef plan_policy_keys[PK_NKEYS];

struct plan_policy_value {
    int set;       /* named in the plan */
    double num;    /* PV_RATIO */
    int64_t i;     /* PV_INT, PV_BOOL, PV_USD* (micro-dollars) */
    char *s;       /* PV_PRESET, PV_URL */
    struct plan_pos at;
};

struct plan_policy {
    int present; /* the plan has a policy section */
    struct plan_pos at;
    struct plan_policy_value v[PK_NKEYS];
};

/* What the rules below use, after the preset (default "default") and the plan's keys. */
struct plan_policy_eff {
    const char *preset;
    double min_capability_match;
    int64_t max_helpers;
    int64_t max_cost_per_task_micro;
    int64_t breaker_failures;
};
/* The values of a preset (development, default, production); -1 if unknown. */
int plan_preset(const char *name, struct plan_policy_eff *out);
void plan_policy_effective(const struct plan_policy *pol, struct plan_policy_eff *out);

/* ---- the model table ---- */
struct plan_model {
    struct model_spec spec;
    int from_plan; /* 0: one of the defaults every new database starts with */
    struct plan_pos at;
};
/* The model table a new database starts with (engine.c): haiku 1, sonnet 2, opus 3. */
extern const struct plan_default_model {
    const char *name;
    int tier;
    double usd_in, usd_out;
} plan_default_models[3];

/* ---- service contract (DESIGN.md "Files") ---- */
enum plan_limit {
    PL_MAX_MEMORY_MB,
    PL_MAX_CPU_PERCENT,
    PL_MAX_API_CALLS_PER_SECOND,
    PL_MAX_EXECUTION_TIME_SECONDS,
    PL_MAX_PIDS,
    PL_NLIMITS
};
enum plan_slo { PS_P99_LATENCY_MS, PS_SUCCESS_RATE, PS_AVAILABILITY, PS_NSLOS };
extern const char *const plan_limit_names[PL_NLIMITS];
extern const int64_t plan_limit_max[PL_NLIMITS];
extern const char *const plan_slo_names[PS_NSLOS];

struct plan_contract {
    int present;
    struct plan_pos at;
    char *swarm; /* as written (must name the swarm it sits in), or NULL */
    char *version;
    struct strvec caps;
    struct plan_pos *cap_at;
    int64_t limits[PL_NLIMITS]; /* 0: not set */
    double slos[PS_NSLOS];      /* < 0: not set */
    struct strvec network, secrets;
};

/* ---- swarms, agents, tasks ---- */
struct plan_agent {
    struct agent_spec spec;
    uint32_t swarm; /* index in plan.swarms */
    int has_max_leases;
    struct plan_pos at, id_at, model_at;
    struct plan_pos *cap_at;
};

/* Which keys a task names explicitly (export writes only those that differ from the
 * defaults; apply compares what the plan says). */
enum {
    PT_PRIORITY = 1 << 0,
    PT_MIN_TIER = 1 << 1,
    PT_MAX_ATTEMPTS = 1 << 2,
    PT_LEASE_MS = 1 << 3,
    PT_APPROVAL = 1 << 4,
    PT_PHASE_BARRIER = 1 << 5,
    PT_ESTIMATE_H = 1 << 6,
    PT_ESTIMATE_USD = 1 << 7,
    PT_MAX_COST = 1 << 8,
    PT_BACKOFF = 1 << 9,
    PT_BODY = 1 << 10,
};

struct plan_task {
    struct task_spec spec; /* swarm and phase filled from where it sits */
    uint32_t swarm;        /* index in plan.swarms */
    unsigned set;          /* PT_* */
    struct plan_pos at, id_at, min_tier_at;
    struct plan_pos *req_at, *dep_at;
};

struct plan_swarm {
    struct swarm_spec spec;
    int has_budget;
    struct plan_pos at, id_at, relation_at, budget_at;
    struct plan_pos *cap_at;
    struct plan_contract contract;
    int has_idle;     /* the plan names idle_tasks (maybe empty: clears them) */
    size_t agent0, nagents; /* plan.agents[agent0 .. agent0 + nagents) */
    size_t idle0, nidle;    /* plan.idle[...] */
    size_t task0, ntasks;   /* plan.tasks[...] */
    size_t nphases;
};

struct plan {
    char *file; /* the name errors carry */
    struct plan_policy policy;
    struct plan_model *models; /* the effective table: defaults, then the plan's */
    size_t nmodels, models_cap;
    struct plan_swarm *swarms;
    size_t nswarms, swarms_cap;
    struct plan_agent *agents;
    size_t nagents, agents_cap;
    struct plan_task *tasks; /* phase tasks, swarm by swarm, in file order */
    size_t ntasks, tasks_cap;
    struct plan_task *idle; /* idle tasks, swarm by swarm */
    size_t nidle, idle_cap;
    int has_models; /* the plan has a models section */
    struct plan_error *errors; /* sorted by position once validation ends */
    size_t nerrors, errors_cap, errors_dropped;
    size_t suggestions; /* "did you mean" searches spent */
};

void plan_init(struct plan *p, const char *file);
void plan_release(struct plan *p);

/* Parse and validate len bytes of YAML (need not be NUL-terminated). Never fails on bad
 * input: what is wrong goes to p->errors (sorted by position), and what could be read is
 * in p. Returns 0 when the plan is valid, -1 when it has errors. */
int plan_parse(struct plan *p, const char *data, size_t len);
/* Read path ("-": stdin) and plan_parse it; an unreadable file is an error at 0:0. */
int plan_load(struct plan *p, const char *path);
/* Re-run the whole-plan checks (references, cycles, capabilities, budgets, tiers) on a plan
 * built in memory (export does this); errors are appended. Returns 0 if none were added. */
int plan_check(struct plan *p);

/* Record an error at a position (printf-style message, git style: lowercase, quoting). */
void plan_errorf(struct plan *p, struct plan_pos at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Print "FILE:LINE:COL: message" lines (and "FILE: message" for position 0). */
void plan_print_errors(const struct plan *p, FILE *f);

/* Append a swarm, agent, task, idle task or model, zero-initialised (specs initialised),
 * for plans built in memory. The pointer is valid until the next append of the same kind. */
struct plan_swarm *plan_add_swarm(struct plan *p);
struct plan_agent *plan_add_agent(struct plan *p);
struct plan_task *plan_add_task(struct plan *p);
struct plan_task *plan_add_idle(struct plan *p);
struct plan_model *plan_add_model(struct plan *p);
/* Put the default model table in (plan_parse does this itself). */
void plan_default_table(struct plan *p);

/* Index of an id, or -1. */
long plan_find_swarm(const struct plan *p, const char *id);
long plan_find_model(const struct plan *p, const char *name);
/* The highest tier of the effective model table (0 if it is empty). */
int64_t plan_top_tier(const struct plan *p);

/* Capability match in [0, 1]: |requires ∩ caps| / |requires| (1 when nothing is required). */
double plan_match(const struct strvec *requires, const struct strvec *caps);

/* Write the plan as YAML that plan_parse reads back to the same plan. 0, or -1 with err. */
int plan_write_yaml(const struct plan *p, struct buf *out, struct s2_error *err);

/* Damerau-Levenshtein distance (optimal string alignment), capped at cap + 1. */
size_t plan_distance(const char *a, const char *b, size_t cap);
/* The closest of n candidates to s when close enough to be a likely typo, else NULL. */
const char *plan_suggest(const char *s, const char *const *cand, size_t n);

#endif
