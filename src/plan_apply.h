/* plan_apply.h: what `s2 plan apply` must change on a server to make it hold a plan, and
 * `s2 plan export`'s way back from the server's state to a plan. Pure: the live state comes
 * in as the JSON the HTTP API answered and the changes go out as requests to make
 * (method, path, body); cli_plan.c does the HTTP. docs/PLAN.md "Apply" is the contract. */
#ifndef S2_PLAN_APPLY_H
#define S2_PLAN_APPLY_H

#include <jansson.h>

#include "plan.h"

/* Endpoints, in one place. The sections whose endpoint a server may not have yet are
 * marked "optional": a 404 with code no_such_route means "not supported yet". */
#define PLAN_EP_POLICY "/v1/policy"                 /* GET, PUT (optional) */
#define PLAN_EP_MODELS "/v1/models"                 /* GET, POST (upsert) */
#define PLAN_EP_SWARMS "/v1/swarms"                 /* GET (paged), POST */
#define PLAN_EP_AGENTS "/v1/agents"                 /* GET, POST */
#define PLAN_EP_TASKS "/v1/tasks"                   /* GET (paged), POST {"tasks": [...]} */
#define PLAN_EP_BUDGETS "/v1/budgets"               /* POST {"swarm", "budget"} */
#define PLAN_EP_CONTRACT "/v1/swarms/%s/contract"   /* GET, PUT (optional) */
#define PLAN_EP_IDLE "/v1/swarms/%s/idle_tasks"     /* GET, PUT (optional) */

/* Tasks per create request, and its largest body (the server's default limit is 16 MiB). */
#define PLAN_CHUNK_TASKS S2_BATCH_MAX
#define PLAN_CHUNK_BYTES (8u * 1024 * 1024)

/* The server's state, as its API reports it. Arrays and objects are owned (json_decref). */
struct plan_live {
    json_t *models; /* [{"name", "tier", "usd_per_mtok_in", "usd_per_mtok_out"}] */
    json_t *swarms; /* [{"id", "role", "relation", "capabilities", "budget", "branch"}] */
    json_t *agents; /* [{"id", "swarm", "model", "capabilities", "max_leases"}] */
    json_t *tasks;  /* [task objects as GET /v1/tasks lists them] */
    json_t *policy; /* the policy object, or NULL when the server has none to report */
    int policy_supported;
    /* per swarm, for the swarms whose sections were read (GET PLAN_EP_IDLE and
     * PLAN_EP_CONTRACT): swarm id -> [{"title", "body", "requires"}], and swarm id ->
     * the contract object or null. *_supported: 1 read, 0 the server has no such
     * endpoint yet (404 no_such_route). */
    json_t *idle, *contracts;
    int idle_supported, contract_supported;
};
void plan_live_init(struct plan_live *l);
void plan_live_release(struct plan_live *l);

enum plan_section {
    PS_POLICY,
    PS_MODEL,
    PS_SWARM,
    PS_BUDGET, /* an existing swarm's budget (POST /v1/budgets) */
    PS_AGENT,
    PS_CONTRACT,
    PS_IDLE,
    PS_TASKS,
    PS_NSECTIONS
};
extern const char *const plan_section_names[PS_NSECTIONS];

struct plan_change {
    int section;      /* enum plan_section */
    int create;       /* 1: create, 0: change */
    char *id;         /* what it is about (swarm id, agent id, model name; NULL for policy) */
    char *summary;    /* one line for humans: "swarm 's' (critical, budget $40.00)" */
    char *method;
    char *path;       /* request path */
    json_t *body;     /* owned */
    size_t ntasks;    /* PS_TASKS: tasks in this request */
    char *task_swarms; /* PS_TASKS: "s1 12, s2 30" */
};

struct plan_diff {
    struct plan_change *v;
    size_t n, cap;
    size_t unchanged[PS_NSECTIONS]; /* already as planned */
    size_t new_tasks;
};
void plan_diff_release(struct plan_diff *d);

/* Compare the plan (valid) with the live state and list the requests that make the server
 * hold the plan, in the order to send them: policy, models, swarms, agents, contracts,
 * idle tasks, tasks (in dependency order, chunked). What exists and differs but cannot be
 * changed through the API (a swarm's budget, a task's title, ...) is a conflict: an error
 * at its position in the plan (added to p), and nothing should be sent. Returns 0, or -1
 * when there are conflicts. */
int plan_diff(struct plan *p, const struct plan_live *live, struct plan_diff *d);

/* Build a plan from the live state (export). p is initialised by the caller (plan_init);
 * sections the server did not report are left out. */
void plan_from_live(struct plan *p, const struct plan_live *live);

/* The request bodies (caller owns). An idle task is what the server keeps of one:
 * {"title", "body", "requires"}. */
json_t *plan_task_json(const struct plan_task *t, int idle);
json_t *plan_policy_json(const struct plan *p);
json_t *plan_contract_json(const struct plan_swarm *sw);
json_t *plan_idle_json(const struct plan *p, size_t swarm);

/* Does the plan's value match the live one? Objects: every member the plan gives matches
 * (the live object may carry more); null matches absent; numbers within 1e-9; lists of
 * strings as sets, other lists in order. */
int plan_json_matches(json_t *plan, json_t *live);
/* Both ways: the same members (null as absent), numbers within 1e-9, string lists as sets. */
int plan_json_same(json_t *a, json_t *b);

#endif
