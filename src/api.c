/* api.c: the route table and helpers shared by the resource handlers. */
#include "api.h"
#include "json.h"
#include "util/xalloc.h"

#include <stdlib.h>

const struct route api_routes[] = {
    {"GET", "/healthz", api_healthz, AUTH_NONE},
    {"GET", "/metrics", api_metrics, AUTH_ADMIN},
    {"GET", "/v1/whoami", api_whoami, AUTH_TOKEN},
    {"GET", "/v1/status", api_status, AUTH_TOKEN},
    {"POST", "/v1/swarms", api_swarm_create, AUTH_ADMIN},
    {"GET", "/v1/swarms", api_swarm_list, AUTH_TOKEN},
    {"GET", "/v1/swarms/:id", api_swarm_get, AUTH_TOKEN},
    {"GET", "/v1/swarms/:id/status", api_swarm_status, AUTH_TOKEN},
    {"POST", "/v1/swarms/:id/pause", api_swarm_pause, AUTH_ADMIN},
    {"POST", "/v1/swarms/:id/resume", api_swarm_resume, AUTH_ADMIN},
    {"POST", "/v1/agents", api_agent_create, AUTH_TOKEN},
    {"GET", "/v1/agents", api_agent_list, AUTH_TOKEN},
    {"GET", "/v1/agents/:id", api_agent_get, AUTH_TOKEN},
    {"GET", "/v1/models", api_models_list, AUTH_TOKEN},
    {"POST", "/v1/models", api_model_put, AUTH_ADMIN},
    {"POST", "/v1/tasks", api_task_create, AUTH_TOKEN},
    {"GET", "/v1/tasks", api_task_list, AUTH_TOKEN},
    {"GET", "/v1/tasks/:id", api_task_get, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/heartbeat", api_heartbeat, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/done", api_done, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/fail", api_fail, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/cancel", api_task_cancel, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/approve", api_task_approve, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/block", api_block, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/unblock", api_unblock, AUTH_TOKEN},
    {"GET", "/v1/tasks/:id/thread", api_thread_get, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/thread", api_thread_post, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/thread/:post/accept", api_thread_accept, AUTH_TOKEN},
    {"POST", "/v1/tasks/:id/thread/:post/reject", api_thread_reject, AUTH_TOKEN},
    {"GET", "/v1/blockers", api_blockers, AUTH_TOKEN},
    {"GET", "/v1/policy", api_policy_get, AUTH_TOKEN},
    {"PUT", "/v1/policy", api_policy_put, AUTH_ADMIN},
    {"GET", "/v1/budgets", api_budgets, AUTH_TOKEN},
    {"POST", "/v1/budgets", api_budget_set, AUTH_ADMIN},
    {"GET", "/v1/breakers", api_breakers, AUTH_TOKEN},
    {"POST", "/v1/breakers/:id/reset", api_breaker_reset, AUTH_ADMIN},
    {"GET", "/v1/escalations", api_escalations, AUTH_TOKEN},
    {"POST", "/v1/escalations/:id/ack", api_escalation_ack, AUTH_ADMIN},
    {"POST", "/v1/approvers", api_approver_add, AUTH_ADMIN},
    {"GET", "/v1/swarms/:id/idle_tasks", api_swarm_idle_get, AUTH_TOKEN},
    {"PUT", "/v1/swarms/:id/idle_tasks", api_swarm_idle_put, AUTH_TOKEN},
    {"GET", "/v1/swarms/:id/contract", api_swarm_contract_get, AUTH_TOKEN},
    {"GET", "/v1/swarms/:id/slo", api_slo, AUTH_TOKEN},
    {"GET", "/v1/slo", api_slo, AUTH_TOKEN},
    {"POST", "/v1/paths/check", api_paths_check, AUTH_TOKEN},
    {"POST", "/v1/git/notify", api_git_notify, AUTH_TOKEN},
    {"PUT", "/v1/swarms/:id/contract", api_swarm_contract_put, AUTH_ADMIN},
    {"POST", "/v1/claim", api_claim, AUTH_TOKEN},
    {"GET", "/v1/events", api_events, AUTH_TOKEN},
    {"GET", "/v1/witness", api_witness_list, AUTH_TOKEN},
    {"GET", "/v1/witness/checkpoints", api_witness_checkpoints, AUTH_TOKEN},
    {"GET", "/v1/witness/key", api_witness_key, AUTH_NONE},
    {"GET", "/v1/witness/export", api_witness_export, AUTH_ADMIN},
    {"GET", "/v1/witness/proof/inclusion", api_witness_inclusion, AUTH_TOKEN},
    {"GET", "/v1/witness/proof/consistency", api_witness_consistency, AUTH_TOKEN},
    {"GET", "/", api_index, AUTH_NONE},
    {"GET", "/:asset", api_asset, AUTH_NONE},
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];

json_t *api_lease_body(struct request *r, struct s2_error *err)
{
    if (!http_has_body(r) && http_who(r)->kind == PRIN_TASK)
        return json_object(); /* the bearer is the lease: nothing else is needed */
    return http_body_object(r, err);
}

int api_lease_field(struct request *r, json_t *o, char **out, struct s2_error *err)
{
    if (json_str(o, "lease", 0, out, "", err))
        return S2_EINVAL;
    if (*out)
        return 0;
    if (http_who(r)->kind == PRIN_TASK && http_bearer(r)) {
        *out = xstrdup(http_bearer(r));
        return 0;
    }
    return s2_fail(err, S2_EINVAL, "missing_field",
                   "field 'lease' is required (or send the lease itself as the bearer token)");
}

double api_usd(int64_t micro)
{
    return (double)micro / (double)S2_MICRO;
}

json_t *api_list_json(const char *nl)
{
    json_t *a = json_array();
    struct strvec sv = STRVEC_INIT;
    strvec_split(&sv, nl ? nl : "", '\n');
    for (size_t i = 0; i < sv.n; i++)
        json_array_append_new(a, json_string(sv.v[i]));
    strvec_release(&sv);
    return a;
}

void api_reply_query(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    json_t *j = c->out.json;
    c->out.json = NULL;
    http_reply_json(r, 200, j ? j : json_object());
}

void api_query(struct request *r, enum query_kind what, const char *arg, int limit)
{
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = what;
    c->in.query.arg = arg ? xstrdup(arg) : NULL;
    c->in.query.limit = limit;
    http_submit(r, c, api_reply_query);
}
