/* sim.h: a deterministic discrete-event simulation of a plan (s2 plan simulate): its agents
 * work through the tasks as the coordinator would hand them out (dependencies, phase
 * barriers, capability match, min_tier, cheapest agent first), with durations from the
 * tasks' estimates, the agents' model speeds and a seeded jitter, and with the idle-time
 * policy under test. The model and its assumptions are in docs/PLAN.md "Simulation". Same
 * plan, options and seed: the same result, byte for byte. */
#ifndef S2_SIM_H
#define S2_SIM_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "plan.h"

enum sim_policy {
    SIM_IDLE,    /* nothing ready in its swarm: the swarm's idle tasks, else wait */
    SIM_GANG_UP, /* nothing ready: help a blocker it matches, else idle tasks, else wait */
};

/* Agent speed by model tier, relative to the estimates (which are hours for tier 2). */
#define SIM_SPEED_TIER1 1.5
#define SIM_SPEED_TIER2 1.0
#define SIM_SPEED_TIER3 0.8 /* and above */
/* Tokens an agent uses per working hour, to price hours from the model table. */
#define SIM_MTOK_IN_PER_H 0.4
#define SIM_MTOK_OUT_PER_H 0.1

#define SIM_DEFAULT_JITTER 0.2
#define SIM_DEFAULT_HELP_EFFICIENCY 0.5
#define SIM_AGENTS_MAX 1000 /* --agents-per-swarm */

struct sim_opts {
    int policy;             /* enum sim_policy */
    uint64_t seed;
    long agents_per_swarm;  /* 0: the plan's own agents */
    double jitter;          /* each duration is scaled by a uniform factor in [1-j, 1+j] */
    double help_efficiency; /* share of a helper's speed that goes into the blocker */
};
void sim_opts_init(struct sim_opts *o);

struct sim_tier {
    int64_t tier;
    char *models; /* the names of the models of this tier that worked, "haiku, ..." */
    double hours, usd;
};

struct sim_swarm_result {
    const char *id;
    size_t agents, tasks;
    double finished_h; /* when its last task was done */
    double blocked_h;  /* unfinished work, nothing ready and nothing running */
    double busy_h, usd;
};

struct sim_agent_result {
    char *id;
    const char *swarm, *model;
    int64_t tier;
    double work_h, help_h, idle_h, usd;
    size_t tasks, idle_tasks, helped;
};

struct sim_result {
    int policy;
    uint64_t seed;
    double jitter, help_efficiency;
    size_t nagents, ntasks, nphases, nidle, idle_done;
    double makespan_h, sequential_h, speedup;
    double work_h, help_h, idle_h, wait_h; /* agent-hours */
    double usd, work_usd, help_usd, idle_usd, top_tier_usd;
    char *top_model;
    struct sim_tier *tiers;
    size_t ntiers;
    double blocked_h; /* swarm-hours */
    size_t blockers;        /* tasks that other swarms waited on while they ran */
    double blocker_h;       /* their running time in all */
    size_t helper_joins, blockers_helped;
    struct strvec critical_path; /* task ids, first to last */
    double critical_h;
    struct sim_swarm_result *swarms;
    size_t nswarms;
    struct sim_agent_result *agents;
};

/* Run the simulation of a valid plan. 0, or <0 with err (the plan stalls: a task no agent
 * can take, or no agents). The result borrows strings from p: keep p alive while using it. */
int sim_run(const struct plan *p, const struct sim_opts *o, struct sim_result *r,
            struct s2_error *err);
void sim_result_release(struct sim_result *r);
const char *sim_policy_name(int policy);
int sim_policy_parse(const char *s); /* -1 if unknown */

/* Print for humans / as JSON (caller owns). Both are deterministic. */
void sim_print(const struct sim_result *r, const char *file, FILE *f);
json_t *sim_json(const struct sim_result *r, const char *file);

#endif
