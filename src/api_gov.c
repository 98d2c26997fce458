/* api_gov.c: the governor over HTTP: policy, budgets, breakers, blockers and their threads,
 * escalations, approvers, a swarm's idle tasks and contract. Handlers parse and check the
 * input; every rule is the engine's (engine_gov.c, governor.c). */
#include "api.h"
#include "json.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void bad_input(struct request *r, struct cmd *c, json_t *o, struct s2_error *err)
{
    json_decref(o);
    cmd_free(c);
    http_reply_error(r, err);
    s2_error_release(err);
}

/* Replies: the engine's JSON when it made one, else {"ok": true}. */
static void reply_out(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    json_t *j = c->out.json;
    c->out.json = NULL;
    http_reply_json(r, 200, j ? j : json_pack("{s:b}", "ok", 1));
}

/* ---- policy ---- */

void api_policy_get(struct request *r)
{
    api_query(r, Q_POLICY, NULL, 0);
}

void api_policy_put(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    if (!o) {
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    /* validate here too, so a bad policy gets its 400 without a trip to the engine */
    struct policy p;
    policy_default(&p);
    int bad = policy_from_json(&p, o, &err);
    policy_release(&p);
    if (bad) {
        json_decref(o);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    struct cmd *c = cmd_new(CMD_POLICY_PUT);
    c->in.policy.json = o;
    http_submit(r, c, reply_out);
}

/* ---- budgets and breakers ---- */

void api_budgets(struct request *r)
{
    const char *swarm = http_query(r, "swarm");
    if (swarm) {
        struct s2_error err = S2_ERROR_INIT;
        if (model_check_id(swarm, "query argument 'swarm'", &err)) {
            http_reply_error(r, &err);
            s2_error_release(&err);
            return;
        }
    }
    api_query(r, Q_BUDGETS, swarm, 0);
}

void api_budget_set(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"swarm", "budget", NULL};
    struct cmd *c = cmd_new(CMD_BUDGET_SET);
    double usd = 0;
    if (!o || json_only(o, fields, "", &err) ||
        json_str(o, "swarm", 0, &c->in.budget.swarm, "", &err) ||
        json_num(o, "budget", 1, &usd, "", &err) ||
        model_usd_to_micro(usd, &c->in.budget.budget_micro, "field 'budget'", &err) ||
        (c->in.budget.swarm && model_check_id(c->in.budget.swarm, "field 'swarm'", &err))) {
        bad_input(r, c, o, &err);
        return;
    }
    json_decref(o);
    http_submit(r, c, reply_out);
}

void api_breakers(struct request *r)
{
    api_query(r, Q_BREAKERS, NULL, 0);
}

void api_breaker_reset(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    const char *id = http_param(r, 0);
    if (model_check_id(id, "breaker id", &err)) {
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    struct cmd *c = cmd_new(CMD_BREAKER_RESET);
    c->in.breaker.id = xstrdup(id);
    http_submit(r, c, reply_out);
}

/* ---- blockers and threads ---- */

void api_block(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = api_lease_body(r, &err);
    static const char *const fields[] = {"lease", "needs", "reason", NULL};
    struct cmd *c = cmd_new(CMD_BLOCK);
    c->in.block.task = xstrdup(http_param(r, 0));
    if (!o || json_only(o, fields, "", &err) ||
        api_lease_field(r, o, &c->in.block.lease, &err) ||
        json_strlist(o, "needs", 1, S2_CAPS_MAX, &c->in.block.needs, "", &err) ||
        json_str(o, "reason", 1, &c->in.block.reason, "", &err) ||
        model_check_caps(&c->in.block.needs, "field 'needs'", &err) ||
        model_check_text(c->in.block.reason, S2_TEXT_MAX, 1, "field 'reason'", &err)) {
        bad_input(r, c, o, &err);
        return;
    }
    if (c->in.block.needs.n == 0) {
        s2_fail(&err, S2_EINVAL, "invalid_field",
                "field 'needs' must name at least one capability (what would unblock it)");
        bad_input(r, c, o, &err);
        return;
    }
    json_decref(o);
    http_submit(r, c, reply_out);
}

void api_unblock(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = api_lease_body(r, &err);
    static const char *const fields[] = {"lease", NULL};
    struct cmd *c = cmd_new(CMD_UNBLOCK);
    c->in.block.task = xstrdup(http_param(r, 0));
    if (!o || json_only(o, fields, "", &err) ||
        api_lease_field(r, o, &c->in.block.lease, &err)) {
        bad_input(r, c, o, &err);
        return;
    }
    json_decref(o);
    http_submit(r, c, reply_out);
}

void api_blockers(struct request *r)
{
    api_query(r, Q_BLOCKERS, http_query(r, "swarm"), 0);
}

/* The thread is read from the store after the engine confirmed the caller may see it. */
static void thread_read(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    struct s2_error err = S2_ERROR_INIT;
    struct store_reader *rd = http_reader(r, &err);
    json_t *posts = NULL;
    const char *task = json_string_value(json_object_get(c->out.json, "task"));
    if (!rd || !task || store_reader_posts(rd, task, &posts, &err)) {
        if (!err.kind)
            s2_fail(&err, S2_EINTERNAL, "internal", "cannot read the thread");
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    json_t *o = json_pack("{s:s,s:o}", "task", task, "posts", posts);
    http_reply_json(r, 200, o);
}

static void posted(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    http_reply_json(r, 201, json_pack("{s:I}", "post", (json_int_t)c->out.rowid));
}

void api_thread_get(struct request *r)
{
    /* an engine read first: it knows the task exists and whether this token may see it */
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_TASK_VISIBLE;
    c->in.query.arg = xstrdup(http_param(r, 0));
    http_submit(r, c, thread_read);
}

void api_thread_post(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = api_lease_body(r, &err);
    static const char *const fields[] = {"lease", "body", NULL};
    struct cmd *c = cmd_new(CMD_POST);
    c->in.thread.task = xstrdup(http_param(r, 0));
    if (!o || json_only(o, fields, "", &err) ||
        api_lease_field(r, o, &c->in.thread.lease, &err) ||
        json_str(o, "body", 1, &c->in.thread.body, "", &err) ||
        model_check_text(c->in.thread.body, S2_RESULT_MAX, 1, "field 'body'", &err)) {
        bad_input(r, c, o, &err);
        return;
    }
    if (!*c->in.thread.body) {
        s2_fail(&err, S2_EINVAL, "invalid_field", "field 'body' must not be empty");
        bad_input(r, c, o, &err);
        return;
    }
    json_decref(o);
    http_submit(r, c, posted);
}

static void verdict(struct request *r, int v)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = api_lease_body(r, &err);
    static const char *const fields[] = {"lease", NULL};
    struct cmd *c = cmd_new(CMD_VERDICT);
    c->in.thread.task = xstrdup(http_param(r, 0));
    c->in.thread.verdict = v;
    const char *p = http_param(r, 1);
    char *end;
    errno = 0;
    long long id = strtoll(p, &end, 10);
    if (errno || end == p || *end || id < 1) {
        s2_fail(&err, S2_EINVAL, "invalid_path", "post number '%.40s' must be a positive integer",
                p);
        bad_input(r, c, o, &err);
        return;
    }
    c->in.thread.post = id;
    if (!o || json_only(o, fields, "", &err) ||
        api_lease_field(r, o, &c->in.thread.lease, &err)) {
        bad_input(r, c, o, &err);
        return;
    }
    json_decref(o);
    http_submit(r, c, reply_out);
}

void api_thread_accept(struct request *r)
{
    verdict(r, 1);
}

void api_thread_reject(struct request *r)
{
    verdict(r, -1);
}

/* ---- escalations ---- */

void api_escalations(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    const char *all = http_query(r, "all");
    struct store_reader *rd = http_reader(r, &err);
    json_t *list = NULL;
    if (!rd || store_reader_escalations(rd, all && strcmp(all, "0"), 1000, &list, &err)) {
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    /* a swarm token sees its own swarm's */
    const struct principal *who = http_who(r);
    if (who->kind == PRIN_SWARM) {
        json_t *mine = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
        {
            const char *sw = json_string_value(json_object_get(v, "swarm"));
            if (sw && who->swarm && !strcmp(sw, who->swarm))
                json_array_append(mine, v);
        }
        json_decref(list);
        list = mine;
    }
    http_reply_json(r, 200, json_pack("{s:o}", "escalations", list));
}

void api_escalation_ack(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    const char *p = http_param(r, 0);
    char *end;
    errno = 0;
    long long id = strtoll(p, &end, 10);
    if (errno || end == p || *end || id < 1) {
        s2_fail(&err, S2_EINVAL, "invalid_path",
                "escalation number '%.40s' must be a positive integer", p);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    struct cmd *c = cmd_new(CMD_ESCALATION_ACK);
    c->in.ack.id = id;
    http_submit(r, c, reply_out);
}

/* ---- approvers ---- */

static void approver_made(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    http_reply_json(r, 201, json_pack("{s:s,s:s}", "name", c->in.approver.name, "token",
                                      c->out.token));
}

void api_approver_add(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"name", NULL};
    struct cmd *c = cmd_new(CMD_APPROVER_ADD);
    if (!o || json_only(o, fields, "", &err) ||
        json_str(o, "name", 1, &c->in.approver.name, "", &err) ||
        model_check_id(c->in.approver.name, "field 'name'", &err)) {
        bad_input(r, c, o, &err);
        return;
    }
    json_decref(o);
    http_submit(r, c, approver_made);
}

/* ---- a swarm's idle tasks and contract ---- */

static int check_idle(json_t *a, struct s2_error *err)
{
    if (!json_is_array(a))
        return s2_fail(err, S2_EINVAL, "invalid_field", "field 'idle_tasks' must be an array");
    if (json_array_size(a) > 100)
        return s2_fail(err, S2_ETOOBIG, "too_large", "field 'idle_tasks' holds at most 100 tasks");
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        char ctx[48];
        snprintf(ctx, sizeof ctx, "idle_tasks[%zu]", i);
        static const char *const fields[] = {"title", "body", "requires", NULL};
        char *title = NULL, *body = NULL;
        struct strvec req = STRVEC_INIT;
        if (!json_is_object(v)) {
            return s2_fail(err, S2_EINVAL, "invalid_field", "%s must be an object", ctx);
        }
        char what[80];
        snprintf(what, sizeof what, "%s: field 'title'", ctx);
        int bad = json_only(v, fields, ctx, err) || json_str(v, "title", 1, &title, ctx, err) ||
                  json_str(v, "body", 0, &body, ctx, err) ||
                  json_strlist(v, "requires", 0, S2_CAPS_MAX, &req, ctx, err) ||
                  model_check_text(title, S2_TITLE_MAX, 0, what, err) ||
                  (body && model_check_text(body, S2_BODY_MAX, 1, "field 'body'", err)) ||
                  model_check_caps(&req, "field 'requires'", err);
        free(title);
        free(body);
        strvec_release(&req);
        if (bad)
            return S2_EINVAL;
    }
    return 0;
}

static int check_contract(json_t *o, struct s2_error *err)
{
    static const char *const fields[] = {"swarm",  "version", "capabilities", "limits",
                                         "slos",   "network", "secrets",      NULL};
    if (!json_is_object(o))
        return s2_fail(err, S2_EINVAL, "invalid_field", "field 'contract' must be an object");
    if (json_only(o, fields, "contract", err))
        return S2_EINVAL;
    static const char *const limits[] = {"max_memory_mb", "max_cpu_percent",
                                         "max_api_calls_per_second",
                                         "max_execution_time_seconds", "max_pids", NULL};
    static const char *const slos[] = {"p99_latency_ms", "success_rate", "availability", NULL};
    json_t *sw = json_object_get(o, "swarm"), *ver = json_object_get(o, "version");
    if (sw && (!json_is_string(sw) || model_check_id(json_string_value(sw), "contract.swarm", err)))
        return err->kind ? err->kind
                         : s2_fail(err, S2_EINVAL, "invalid_field", "contract.swarm must be a swarm id");
    if (ver && (!json_is_string(ver) || json_string_length(ver) == 0 || json_string_length(ver) > 64))
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "contract.version must be a string of 1..64 characters (\"1.0.0\")");
    struct strvec caps = STRVEC_INIT;
    int cbad = json_strlist(o, "capabilities", 0, S2_CAPS_MAX, &caps, "contract", err) ||
               model_check_caps(&caps, "contract.capabilities", err);
    strvec_release(&caps);
    if (cbad)
        return S2_EINVAL;
    json_t *l = json_object_get(o, "limits"), *s = json_object_get(o, "slos");
    if (l && (!json_is_object(l) || json_only(l, limits, "contract.limits", err)))
        return err->kind ? err->kind
                         : s2_fail(err, S2_EINVAL, "invalid_field", "contract.limits must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(l, k, v) if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                                     json_integer_value(v) > 1000000) return s2_fail(
        err, S2_EINVAL, "invalid_field", "contract.limits.%s must be an integer 1..1000000", k);
    if (s && (!json_is_object(s) || json_only(s, slos, "contract.slos", err)))
        return err->kind ? err->kind
                         : s2_fail(err, S2_EINVAL, "invalid_field", "contract.slos must be an object");
    json_object_foreach(s, k, v)
    {
        double x = json_number_value(v);
        int ok = json_is_number(v) && (!strcmp(k, "p99_latency_ms") ? x > 0 && x <= 86400000
                                                                     : x >= 0 && x <= 1);
        if (!ok)
            return s2_fail(err, S2_EINVAL, "invalid_field",
                           "contract.slos.%s must be %s", k,
                           !strcmp(k, "p99_latency_ms") ? "a positive number of ms" : "0..1");
    }
    struct strvec list = STRVEC_INIT;
    int bad = json_strlist(o, "network", 0, 64, &list, "contract", err);
    for (size_t i = 0; !bad && i < list.n; i++) {
        const char *colon = strrchr(list.v[i], ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == list.v[i] || !end || *end || port < 1 || port > 65535 ||
            model_check_text(list.v[i], 255, 0, "contract.network entry", err) ||
            strpbrk(list.v[i], " /"))
            bad = s2_fail(err, S2_EINVAL, "invalid_field",
                          "contract.network[%zu] must be host:port (got '%.80s')", i, list.v[i]);
    }
    strvec_release(&list);
    if (!bad && !(bad = json_strlist(o, "secrets", 0, 64, &list, "contract", err)))
        for (size_t i = 0; !bad && i < list.n; i++)
            if (model_check_id(list.v[i], "contract.secrets entry", err))
                bad = S2_EINVAL;
    strvec_release(&list);
    return bad;
}

static void swarm_text(struct request *r, int which)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    const char *key = which == STORE_SWARM_IDLE ? "idle_tasks" : "contract";
    const char *const fields[] = {key, NULL};
    struct cmd *c = cmd_new(CMD_SWARM_TEXT);
    c->in.swarm_text.swarm = xstrdup(http_param(r, 0));
    c->in.swarm_text.which = which;
    if (!o || json_only(o, fields, "", &err)) {
        bad_input(r, c, o, &err);
        return;
    }
    json_t *v = json_object_get(o, key);
    if (!v) {
        s2_fail(&err, S2_EINVAL, "missing_field", "field '%s' is required (null clears it)", key);
        bad_input(r, c, o, &err);
        return;
    }
    if (!json_is_null(v) &&
        (which == STORE_SWARM_IDLE ? check_idle(v, &err) : check_contract(v, &err))) {
        bad_input(r, c, o, &err);
        return;
    }
    c->in.swarm_text.json = json_is_null(v) ? NULL : json_dumps(v, JSON_COMPACT);
    json_decref(o);
    http_submit(r, c, reply_out);
}

void api_swarm_idle_put(struct request *r)
{
    swarm_text(r, STORE_SWARM_IDLE);
}

void api_swarm_contract_put(struct request *r)
{
    swarm_text(r, STORE_SWARM_CONTRACT);
}

void api_swarm_idle_get(struct request *r)
{
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_IDLE_TASKS;
    c->in.query.arg = xstrdup(http_param(r, 0));
    http_submit(r, c, api_reply_query);
}

void api_paths_check(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"paths", "lease", NULL};
    struct strvec paths = STRVEC_INIT;
    char *lease = NULL;
    if (!o || json_only(o, fields, "", &err) ||
        json_strlist(o, "paths", 1, 100000, &paths, "", &err) ||
        json_str(o, "lease", 0, &lease, "", &err)) {
        json_decref(o);
        strvec_release(&paths);
        free(lease);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    for (size_t i = 0; i < paths.n; i++) {
        char what[48];
        snprintf(what, sizeof what, "field 'paths'[%zu]", i);
        if (model_check_path(paths.v[i], what, &err)) {
            json_decref(o);
            strvec_release(&paths);
            free(lease);
            http_reply_error(r, &err);
            s2_error_release(&err);
            return;
        }
    }
    strvec_release(&paths);
    free(lease);
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_PATHS;
    c->in.query.arg = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    http_submit(r, c, api_reply_query);
}

void api_slo(struct request *r)
{
    const char *id = http_param(r, 0); /* NULL on /v1/slo */
    api_query(r, Q_SLO, id, 0);
}

void api_swarm_contract_get(struct request *r)
{
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_CONTRACT;
    c->in.query.arg = xstrdup(http_param(r, 0));
    http_submit(r, c, api_reply_query);
}
