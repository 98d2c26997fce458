/* governor.h: the rules that decide who may take what, at what cost, and when to stop and
 * call a human: the policy (and its presets), capability matching, budget arithmetic in
 * integer micro-dollars, circuit breakers, and the per-swarm rate limit. Pure functions over
 * plain values; the engine holds the state and calls these, so each rule is testable alone
 * and lives in one place. */
#ifndef S2_GOVERNOR_H
#define S2_GOVERNOR_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"

/* ---- policy ---- */

struct policy {
    char preset[16];               /* the preset it started from */
    int min_match_permille;        /* min_capability_match x 1000 (700) */
    int max_helpers;               /* helpers per blocker (3) */
    int64_t max_cost_per_task;     /* micro-USD reserved by a claim of a task without max_cost */
    int64_t global_budget;         /* micro-USD, 0: none */
    int breaker_failures;          /* consecutive failures or expiries that trip an agent (3) */
    int64_t breaker_cooldown_ms;   /* open -> half-open (3600 s) */
    int cascade;                   /* a failed attempt makes the next need tier + 1 */
    int64_t blocker_escalate_ms;   /* a blocker with no accepted help escalates (30 min) */
    int budget_alert_pct;          /* alert at this share of a budget spent (80) */
    int rate_limit_rps;            /* API requests per second per swarm token, 0: off */
    int rate_limit_burst;          /* bucket size */
    int64_t approve_above;         /* micro-USD: tasks whose max_cost or estimate is above need a
                                      human approval (0: off) */
    int approve_top_tier_retry;    /* a retry escalated to the top tier needs a human */
    int approve_network;           /* tasks of swarms whose contract grants network or secrets
                                      need a human */
    char *webhook_url;             /* escalations are POSTed here (NULL: none) */
    int64_t webhook_timeout_ms;
    int webhook_retries;
};

#define POLICY_WEBHOOK_MAX 2048

/* The `default` preset. */
void policy_default(struct policy *p);
/* Reset p to a preset: development, default or production. */
int policy_preset(struct policy *p, const char *name, struct s2_error *err);
void policy_release(struct policy *p);
void policy_copy(struct policy *dst, const struct policy *src);
/* Apply the members of a JSON object on top of p (a "preset" member first resets it), all
 * or nothing; unknown members and bad values are errors naming the field. */
int policy_from_json(struct policy *p, json_t *o, struct s2_error *err);
/* The policy as JSON, in the units the API speaks (USD, seconds, 0..1). Caller owns. */
json_t *policy_to_json(const struct policy *p);

/* ---- matching ---- */

/* |requires ∩ caps| / |requires| in permille (1000 when nothing is required). Both lists
 * are sorted capability ids without duplicates. */
int gov_match(const uint32_t *req, uint32_t nreq, const uint32_t *caps, uint32_t ncaps);
int gov_qualifies(const struct policy *p, int match_permille);

/* ---- budgets (micro-USD; a limit of 0 means none) ---- */

struct ledger {
    int64_t limit;
    int64_t spent;
    int64_t reserved; /* promised to leases in flight */
    int alert_level;  /* 0 none, 1 alert sent, 2 exhausted */
};

/* May amount be reserved without overdrawing? */
int gov_can_reserve(const struct ledger *l, int64_t amount);
/* What is left to reserve: limit - spent - reserved, never below 0; -1 without a limit. */
int64_t gov_left(const struct ledger *l);
/* The level spending has reached: 0 below the alert share, 1 at or above it, 2 at or above
 * the limit (always 0 without a limit). */
int gov_level(const struct ledger *l, int alert_pct);
/* Settle a reservation at the actual cost: reserved -= reserved_amount, spent += cost. */
void gov_settle(struct ledger *l, int64_t reserved_amount, int64_t cost);

/* ---- circuit breakers ---- */

enum breaker_state { BRK_CLOSED, BRK_OPEN, BRK_HALF_OPEN };
struct breaker {
    int state;
    int failures;      /* consecutive */
    int64_t opened_at; /* ms */
    int trial;         /* half-open: the one trial lease is out */
};
const char *breaker_state_name(int s);

/* May the agent take a lease now? Moves OPEN to HALF_OPEN after the cooldown; in HALF_OPEN
 * one trial at a time. *changed is set when the state moved. */
int gov_breaker_allows(struct breaker *b, const struct policy *p, int64_t now, int *changed);
/* A lease was taken (counts the half-open trial). */
void gov_breaker_taken(struct breaker *b);
/* The agent finished a task: closes the breaker. Returns 1 if the state changed. */
int gov_breaker_success(struct breaker *b);
/* A failure or an expiry: returns 1 if this trips the breaker (now OPEN). */
int gov_breaker_failure(struct breaker *b, const struct policy *p, int64_t now);
void gov_breaker_reset(struct breaker *b);

/* ---- rate limit ---- */

struct bucket {
    int64_t tokens_milli; /* tokens x 1000 */
    int64_t at_ms;
};
/* Take one token; 0 ok, or -1 with *retry_after_ms until one is there. */
int gov_bucket_take(struct bucket *b, int rps, int burst, int64_t now_ms, int64_t *retry_after_ms);

#endif
