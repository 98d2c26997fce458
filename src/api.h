/* api.h: what the resource handlers (api_*.c) share: the task's JSON shape and parsing of a
 * task from a request. Handlers validate and authorise; rules belong to the engine. */
#ifndef S2_API_H
#define S2_API_H

#include <jansson.h>

#include "governor.h"
#include "http.h"
#include "model.h"
#include "store.h"

/* Handlers, one file per resource. */
void api_swarm_create(struct request *r);
void api_swarm_list(struct request *r);
void api_swarm_get(struct request *r);
void api_swarm_status(struct request *r);
void api_swarm_pause(struct request *r);
void api_swarm_resume(struct request *r);
void api_agent_create(struct request *r);
void api_agent_list(struct request *r);
void api_agent_get(struct request *r);
void api_task_create(struct request *r);
void api_task_list(struct request *r);
void api_task_get(struct request *r);
void api_task_cancel(struct request *r);
void api_task_approve(struct request *r);
void api_claim(struct request *r);
void api_heartbeat(struct request *r);
void api_done(struct request *r);
void api_fail(struct request *r);
void api_events(struct request *r);
void api_policy_get(struct request *r);
void api_policy_put(struct request *r);
void api_budgets(struct request *r);
void api_budget_set(struct request *r);
void api_breakers(struct request *r);
void api_breaker_reset(struct request *r);
void api_block(struct request *r);
void api_unblock(struct request *r);
void api_blockers(struct request *r);
void api_thread_get(struct request *r);
void api_thread_post(struct request *r);
void api_thread_accept(struct request *r);
void api_thread_reject(struct request *r);
void api_escalations(struct request *r);
void api_escalation_ack(struct request *r);
void api_approver_add(struct request *r);
void api_swarm_idle_get(struct request *r);
void api_swarm_idle_put(struct request *r);
void api_swarm_contract_get(struct request *r);
void api_slo(struct request *r);
void api_paths_check(struct request *r);
void api_git_notify(struct request *r);
void api_swarm_contract_put(struct request *r);
void api_witness_list(struct request *r);
void api_witness_checkpoints(struct request *r);
void api_witness_key(struct request *r);
void api_witness_export(struct request *r);
void api_witness_inclusion(struct request *r);
void api_witness_consistency(struct request *r);
void api_models_list(struct request *r);
void api_model_put(struct request *r);
void api_healthz(struct request *r);
void api_metrics(struct request *r);
void api_whoami(struct request *r);
void api_status(struct request *r);
void api_asset(struct request *r);
void api_index(struct request *r);

/* The public JSON form of a task row. */
json_t *api_task_json(const struct task_row *row);
/* Parse one task object of a create request into t (initialised by the caller). default_swarm
 * is used when the object names none (a swarm token's own swarm). */
int api_parse_task(json_t *o, struct task_spec *t, const char *default_swarm, const char *ctx,
                   struct s2_error *err);
/* Reply with the outcome of an engine query (its JSON, or its error). */
void api_reply_query(struct request *r, struct cmd *c);
/* Submit a read of in-memory state. */
void api_query(struct request *r, enum query_kind what, const char *arg, int limit);
/* A newline-joined list as a JSON array. */
json_t *api_list_json(const char *nl);
/* The body of a lease operation: the JSON object sent, or {} when the caller sent none and
 * authenticated with the lease itself (a task token). */
json_t *api_lease_body(struct request *r, struct s2_error *err);
/* Its "lease": the field, else the bearer when that is the lease; else a clear error. */
int api_lease_field(struct request *r, json_t *o, char **out, struct s2_error *err);
/* Dollars from micro-dollars. */
double api_usd(int64_t micro);

#endif
