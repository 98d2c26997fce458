/* api_task.c: /v1/tasks: create (one or a batch, all or nothing), list, show, cancel,
 * approve. Reads come from this thread's read connection (committed rows only). */
#include "api.h"
#include "json.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *api_task_json(const struct task_row *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "swarm", json_string(t->swarm));
    json_object_set_new(o, "phase", json_integer(t->phase));
    json_object_set_new(o, "title", json_string(t->title));
    json_object_set_new(o, "body", json_string(t->body ? t->body : ""));
    json_object_set_new(o, "state", json_string(task_state_name(t->state)));
    json_object_set_new(o, "priority", json_integer(t->priority));
    json_object_set_new(o, "requires", api_list_json(t->requires));
    json_object_set_new(o, "min_tier", json_integer(t->min_tier));
    json_object_set_new(o, "depends_on", api_list_json(t->depends_on));
    json_object_set_new(o, "paths", api_list_json(t->paths));
    json_object_set_new(o, "kind", json_string(t->kind == TASK_KIND_HELP   ? "help"
                                               : t->kind == TASK_KIND_IDLE ? "idle"
                                                                           : "task"));
    if (t->help_for)
        json_object_set_new(o, "help_for", json_string(t->help_for));
    json_object_set_new(o, "phase_barrier", json_boolean(t->phase_barrier));
    json_object_set_new(o, "approval", json_string(t->approval));
    json_object_set_new(o, "approvals", json_integer(t->approvals));
    json_object_set_new(o, "attempts", json_integer(t->attempts));
    json_object_set_new(o, "max_attempts", json_integer(t->max_attempts));
    json_object_set_new(o, "lease_ms", json_integer(t->lease_ms));
    json_object_set_new(o, "retry_backoff_ms", json_integer(t->backoff_ms));
    json_object_set_new(o, "owner", t->owner ? json_string(t->owner) : json_null());
    json_object_set_new(o, "fence", json_integer((json_int_t)t->fence));
    json_object_set_new(o, "lease_expires_at",
                        t->state == TASK_CLAIMED ? json_integer(t->lease_expires) : json_null());
    json_object_set_new(o, "ready_at",
                        t->state == TASK_READY && t->ready_at ? json_integer(t->ready_at)
                                                              : json_null());
    json_object_set_new(o, "estimate_h", json_real(t->estimate_h));
    json_object_set_new(o, "estimate_usd", json_real(api_usd(t->estimate_micro)));
    json_object_set_new(o, "max_cost", t->max_cost_micro ? json_real(api_usd(t->max_cost_micro))
                                                         : json_null());
    json_object_set_new(o, "cost", json_real(api_usd(t->cost_micro)));
    json_object_set_new(o, "tokens_in", json_integer(t->tokens_in));
    json_object_set_new(o, "tokens_out", json_integer(t->tokens_out));
    json_t *result = NULL;
    if (t->result)
        result = json_loads(t->result, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "result", result ? result : json_null());
    json_object_set_new(o, "reason", t->reason ? json_string(t->reason) : json_null());
    json_object_set_new(o, "created_at", json_integer(t->created_at));
    json_object_set_new(o, "updated_at", json_integer(t->updated_at));
    json_object_set_new(o, "finished_at", t->finished_at ? json_integer(t->finished_at)
                                                         : json_null());
    return o;
}

int api_parse_task(json_t *o, struct task_spec *t, const char *default_swarm, const char *ctx,
                   struct s2_error *err)
{
    static const char *const fields[] = {
        "id", "swarm", "phase", "title", "body", "requires", "min_tier", "priority",
        "depends_on", "max_attempts", "lease_ms", "retry_backoff_ms", "approval",
        "phase_barrier", "estimate_h", "estimate_usd", "max_cost", "paths", NULL};
    char *approval = NULL;
    double est_usd = 0, max_cost = 0;
    int rc = S2_EINVAL;
    if (!json_is_object(o)) {
        s2_fail(err, S2_EINVAL, "invalid_field", "%s must be a JSON object", *ctx ? ctx : "task");
        return S2_EINVAL;
    }
    if (json_only(o, fields, ctx, err) || json_str(o, "id", 0, &t->id, ctx, err) ||
        json_str(o, "swarm", !default_swarm, &t->swarm, ctx, err) ||
        json_int(o, "phase", 0, 0, S2_PHASE_MAX, &t->phase, ctx, err) ||
        json_str(o, "title", 1, &t->title, ctx, err) || json_str(o, "body", 0, &t->body, ctx, err) ||
        json_strlist(o, "requires", 0, S2_CAPS_MAX, &t->requires, ctx, err) ||
        json_int(o, "min_tier", 0, 0, S2_TIER_MAX, &t->min_tier, ctx, err) ||
        json_int(o, "priority", 0, -S2_PRIORITY_MAX, S2_PRIORITY_MAX, &t->priority, ctx, err) ||
        json_strlist(o, "depends_on", 0, S2_DEPS_MAX, &t->depends_on, ctx, err) ||
        json_strlist(o, "paths", 0, S2_PATHS_MAX, &t->paths, ctx, err) ||
        json_int(o, "max_attempts", 0, 1, S2_ATTEMPTS_MAX, &t->max_attempts, ctx, err) ||
        json_int(o, "lease_ms", 0, S2_LEASE_MS_MIN, S2_LEASE_MS_MAX, &t->lease_ms, ctx, err) ||
        json_int(o, "retry_backoff_ms", 0, 0, S2_BACKOFF_MS_MAX, &t->backoff_ms, ctx, err) ||
        json_str(o, "approval", 0, &approval, ctx, err) ||
        json_bool(o, "phase_barrier", 0, &t->phase_barrier, ctx, err) ||
        json_num(o, "estimate_h", 0, &t->estimate_h, ctx, err) ||
        json_num(o, "estimate_usd", 0, &est_usd, ctx, err) ||
        json_num(o, "max_cost", 0, &max_cost, ctx, err))
        goto out;
    if (!t->swarm)
        t->swarm = xstrdup(default_swarm);
    if (approval && model_parse_approval(approval, &t->approval_kind, &t->approval_n, err)) {
        if (*ctx) { /* say which task of a batch */
            char *m = err->msg;
            err->msg = NULL;
            s2_fail(err, err->kind, err->code, "%s: %s", ctx, m);
            free(m);
        }
        goto out;
    }
    char what[64];
    snprintf(what, sizeof what, "%s%sfield 'estimate_usd'", ctx, *ctx ? ": " : "");
    if (model_usd_to_micro(est_usd, &t->estimate_micro, what, err))
        goto out;
    snprintf(what, sizeof what, "%s%sfield 'max_cost'", ctx, *ctx ? ": " : "");
    if (model_usd_to_micro(max_cost, &t->max_cost_micro, what, err))
        goto out;
    rc = task_spec_check(t, ctx, err);
out:
    free(approval);
    return rc;
}

/* ---- create ---- */

static void created(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    if (c->in.tasks.n == 1 && !c->in.tasks.batch) {
        struct s2_error err = S2_ERROR_INIT;
        struct store_reader *rd = http_reader(r, &err);
        struct task_row row;
        if (rd && store_task_get_rowid(rd, c->out.rowid, &row, &err) == 1) {
            http_reply_json(r, 201, json_pack("{s:o}", "task", api_task_json(&row)));
            task_row_release(&row);
            return;
        }
        /* committed but unreadable here: still a success */
        s2_error_release(&err);
    }
    json_t *a = json_array();
    for (size_t i = 0; i < c->in.tasks.n; i++)
        json_array_append_new(a, json_pack("{s:s,s:s}", "id", c->out.ids[i], "state",
                                           task_state_name(c->out.states[i])));
    http_reply_json(r, 201, json_pack("{s:o,s:I}", "tasks", a, "count",
                                      (json_int_t)c->in.tasks.n));
}

void api_task_create(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    struct cmd *c = cmd_new(CMD_TASK_ADD);
    const char *own = http_who(r)->kind == PRIN_ADMIN ? NULL : http_who(r)->swarm;
    if (!o)
        goto fail;
    json_t *list = json_object_get(o, "tasks");
    if (list) {
        static const char *const fields[] = {"tasks", NULL};
        if (json_only(o, fields, "", &err))
            goto fail;
        if (!json_is_array(list)) {
            s2_fail(&err, S2_EINVAL, "invalid_field", "field 'tasks' must be an array of tasks");
            goto fail;
        }
        size_t n = json_array_size(list);
        if (n == 0 || n > S2_BATCH_MAX) {
            s2_fail(&err, S2_EINVAL, "invalid_field",
                    "field 'tasks' must hold from 1 to %d tasks (got %zu)", S2_BATCH_MAX, n);
            goto fail;
        }
        c->in.tasks.v = xcalloc(n, sizeof *c->in.tasks.v);
        c->in.tasks.batch = 1;
        for (size_t i = 0; i < n; i++) {
            char ctx[32];
            snprintf(ctx, sizeof ctx, "tasks[%zu]", i);
            task_spec_init(&c->in.tasks.v[i]);
            c->in.tasks.n = i + 1;
            if (api_parse_task(json_array_get(list, i), &c->in.tasks.v[i], own, ctx, &err))
                goto fail;
        }
    } else {
        c->in.tasks.v = xcalloc(1, sizeof *c->in.tasks.v);
        task_spec_init(&c->in.tasks.v[0]);
        c->in.tasks.n = 1;
        if (api_parse_task(o, &c->in.tasks.v[0], own, "", &err))
            goto fail;
    }
    json_decref(o);
    http_submit(r, c, created);
    return;
fail:
    json_decref(o);
    cmd_free(c);
    http_reply_error(r, &err);
    s2_error_release(&err);
}

/* ---- read ---- */

/* A swarm token sees only its swarm: anything else is "not found". */
static int visible(struct request *r, const char *swarm, const char *id)
{
    const struct principal *who = http_who(r);
    if (who->kind == PRIN_TASK)
        return !strcmp(who->task, id);
    return who->kind != PRIN_SWARM || (who->swarm && !strcmp(who->swarm, swarm));
}

void api_task_get(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    const char *id = http_param(r, 0);
    struct store_reader *rd = http_reader(r, &err);
    struct task_row row;
    int found = rd ? store_task_get(rd, id, &row, &err) : -1;
    if (found < 0) {
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    if (found == 0 || !visible(r, row.swarm, row.id)) {
        if (found)
            task_row_release(&row);
        http_reply_fail(r, S2_ENOTFOUND, "not_found", "task '%s' does not exist", id);
        return;
    }
    json_t *o = api_task_json(&row);
    /* what it still waits for, by name and state */
    json_t *waiting = json_array();
    struct strvec deps = STRVEC_INIT;
    strvec_split(&deps, row.depends_on, '\n');
    for (size_t i = 0; i < deps.n; i++) {
        struct task_row d;
        if (store_task_get(rd, deps.v[i], &d, &err) == 1) {
            if (d.state != TASK_DONE)
                json_array_append_new(waiting, json_pack("{s:s,s:s,s:s}", "task", d.id, "swarm",
                                                         d.swarm, "state",
                                                         task_state_name(d.state)));
            task_row_release(&d);
        }
    }
    s2_error_release(&err);
    strvec_release(&deps);
    json_object_set_new(o, "waiting_on", waiting);
    task_row_release(&row);
    http_reply_json(r, 200, json_pack("{s:o}", "task", o));
}

struct list_ctx {
    json_t *tasks;
    int64_t last;
};

static void list_row(void *ctx, const struct task_row *row)
{
    struct list_ctx *lc = ctx;
    json_array_append_new(lc->tasks, api_task_json(row));
    lc->last = row->rowid;
}

static int parse_count(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

void api_task_list(struct request *r)
{
    struct task_filter f = {.swarm = http_query(r, "swarm"), .state = -1, .after = 0,
                            .limit = 100};
    const char *state = http_query(r, "state"), *lim = http_query(r, "limit"),
               *after = http_query(r, "after"), *approval = http_query(r, "approval");
    long long v;
    if (approval) {
        /* what waits for a human: the dashboard's approvals list, without paging through
         * every pending task */
        if (strcmp(approval, "waiting")) {
            http_reply_fail(r, S2_EINVAL, "invalid_query",
                            "approval '%.40s' is not a filter: use approval=waiting", approval);
            return;
        }
        f.awaiting_approval = 1;
    }
    if (state && (f.state = task_state_parse(state)) < 0) {
        http_reply_fail(r, S2_EINVAL, "invalid_query",
                        "state '%.40s' is not one of pending, ready, claimed, done, dead, "
                        "cancelled", state);
        return;
    }
    if (lim) {
        if (parse_count(lim, 1, 1000, &v)) {
            http_reply_fail(r, S2_EINVAL, "invalid_query", "limit must be from 1 to 1000");
            return;
        }
        f.limit = (int)v;
    }
    if (after) {
        if (parse_count(after, 0, INT64_MAX, &v)) {
            http_reply_fail(r, S2_EINVAL, "invalid_query",
                            "after must be the 'next' cursor of a previous page");
            return;
        }
        f.after = v;
    }
    const struct principal *who = http_who(r);
    if (who->kind == PRIN_TASK) {
        http_reply_fail(r, S2_EFORBIDDEN, "forbidden",
                        "a lease token reads its own task (GET /v1/tasks/%s), not lists",
                        who->task);
        return;
    }
    if (who->kind == PRIN_SWARM) {
        if (f.swarm && (!who->swarm || strcmp(f.swarm, who->swarm))) {
            http_reply_fail(r, S2_EFORBIDDEN, "forbidden",
                            "this token is scoped to swarm '%s' and cannot list swarm '%.128s'",
                            who->swarm ? who->swarm : "?", f.swarm);
            return;
        }
        f.swarm = who->swarm;
    }
    struct s2_error err = S2_ERROR_INIT;
    struct store_reader *rd = http_reader(r, &err);
    struct list_ctx lc = {json_array(), 0};
    if (!rd || store_task_list(rd, &f, list_row, &lc, &err)) {
        json_decref(lc.tasks);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    json_t *next = json_null();
    if ((int)json_array_size(lc.tasks) == f.limit) {
        char cur[32];
        snprintf(cur, sizeof cur, "%lld", (long long)lc.last);
        next = json_string(cur);
    }
    http_reply_json(r, 200, json_pack("{s:o,s:o}", "tasks", lc.tasks, "next", next));
}

/* ---- cancel, approve ---- */

static void show_after(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    struct s2_error err = S2_ERROR_INIT;
    struct store_reader *rd = http_reader(r, &err);
    struct task_row row;
    if (rd && store_task_get_rowid(rd, c->out.rowid, &row, &err) == 1) {
        http_reply_json(r, 200, json_pack("{s:o}", "task", api_task_json(&row)));
        task_row_release(&row);
        return;
    }
    s2_error_release(&err);
    http_reply_json(r, 200, json_pack("{s:{s:s}}", "task", "state", task_state_name(c->out.state)));
}

void api_task_cancel(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    struct cmd *c = cmd_new(CMD_CANCEL);
    c->in.cancel.task = xstrdup(http_param(r, 0));
    if (http_has_body(r)) {
        json_t *o = http_body_object(r, &err);
        static const char *const fields[] = {"reason", NULL};
        if (!o || json_only(o, fields, "", &err) ||
            json_str(o, "reason", 0, &c->in.cancel.reason, "", &err) ||
            (c->in.cancel.reason &&
             model_check_text(c->in.cancel.reason, S2_TEXT_MAX, 1, "field 'reason'", &err))) {
            json_decref(o);
            cmd_free(c);
            http_reply_error(r, &err);
            s2_error_release(&err);
            return;
        }
        json_decref(o);
    }
    http_submit(r, c, show_after);
}

void api_task_approve(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    char *comment = NULL;
    if (http_has_body(r)) {
        json_t *o = http_body_object(r, &err);
        static const char *const fields[] = {"comment", NULL};
        int bad = !o || json_only(o, fields, "", &err) ||
                  json_str(o, "comment", 0, &comment, "", &err) ||
                  (comment && model_check_text(comment, S2_TEXT_MAX, 1, "field 'comment'", &err));
        json_decref(o);
        if (bad) {
            free(comment);
            http_reply_error(r, &err);
            s2_error_release(&err);
            return;
        }
    }
    struct cmd *c = cmd_new(CMD_APPROVE);
    c->in.approve.task = xstrdup(http_param(r, 0));
    c->in.approve.comment = comment;
    http_submit(r, c, show_after);
}
