/* api_lease.c: the lease lifecycle: POST /v1/claim (with long-poll), and
 * /v1/tasks/{id}/heartbeat|done|fail fenced by the lease token. */
#include "api.h"
#include "json.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

static void claimed(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    if (!c->out.got) {
        http_reply_none(r, c->out.wait_reason);
        return;
    }
    struct s2_error err = S2_ERROR_INIT;
    struct store_reader *rd = http_reader(r, &err);
    struct task_row row;
    json_t *task;
    if (rd && store_task_get_rowid(rd, c->out.rowid, &row, &err) == 1) {
        task = api_task_json(&row);
        task_row_release(&row);
    } else {
        /* committed, but this thread cannot read it back: the lease is what matters */
        task = json_pack("{s:s,s:s}", "id", c->out.task_id, "state", "claimed");
        s2_error_release(&err);
    }
    /* the row may already be older or newer than the claim: report the claim's own view */
    json_object_set_new(task, "state", json_string("claimed"));
    json_object_set_new(task, "attempts", json_integer(c->out.attempts));
    json_t *lease = json_pack("{s:s,s:I,s:I,s:s}", "token", c->out.lease, "fence",
                              (json_int_t)c->out.fence, "expires_at",
                              (json_int_t)c->out.expires_at, "scope",
                              "the token is also a bearer token for this task alone until the "
                              "lease ends");
    if (c->out.witness_seq)
        json_object_set_new(lease, "witness_seq", json_integer((json_int_t)c->out.witness_seq));
    http_note_claim(r, c->out.task_id, c->out.fence);
    http_reply_json(r, 200, json_pack("{s:o,s:o}", "task", task, "lease", lease));
}

void api_claim(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"agent", "wait_ms", NULL};
    struct cmd *c = cmd_new(CMD_CLAIM);
    if (!o || json_only(o, fields, "", &err) ||
        json_str(o, "agent", 1, &c->in.claim.agent, "", &err) ||
        json_int(o, "wait_ms", 0, 0, S2_WAIT_MS_MAX, &c->in.claim.wait_ms, "", &err) ||
        model_check_id(c->in.claim.agent, "field 'agent'", &err)) {
        json_decref(o);
        cmd_free(c);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    json_decref(o);
    http_submit(r, c, claimed);
}

static int parse_usage(json_t *o, struct usage *u, struct s2_error *err)
{
    json_t *v = json_object_get(o, "usage");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return s2_fail(err, S2_EINVAL, "invalid_field", "field 'usage' must be an object");
    static const char *const fields[] = {"model", "tokens_in", "tokens_out", "usd", NULL};
    double usd = -1;
    if (json_only(v, fields, "usage", err) || json_str(v, "model", 0, &u->model, "usage", err) ||
        json_int(v, "tokens_in", 0, 0, S2_TOKENS_MAX, &u->tokens_in, "usage", err) ||
        json_int(v, "tokens_out", 0, 0, S2_TOKENS_MAX, &u->tokens_out, "usage", err) ||
        json_num(v, "usd", 0, &usd, "usage", err))
        return S2_EINVAL;
    if (u->model && model_check_id(u->model, "field 'usage.model'", err))
        return S2_EINVAL;
    json_t *given = json_object_get(v, "usd");
    if (given && !json_is_null(given) &&
        model_usd_to_micro(usd, &u->usd_micro, "field 'usage.usd'", err))
        return S2_EINVAL;
    u->present = 1;
    return 0;
}

/* Parse the body shared by heartbeat, done and fail. */
static struct cmd *lease_cmd(struct request *r, enum cmd_kind kind, struct s2_error *err)
{
    json_t *o = api_lease_body(r, err);
    static const char *const hb[] = {"lease", "usage", NULL};
    static const char *const done[] = {"lease", "usage", "result", NULL};
    static const char *const fail[] = {"lease", "usage", "reason", "retry", NULL};
    struct cmd *c = cmd_new(kind);
    c->in.lease_op.task = xstrdup(http_param(r, 0));
    if (!o ||
        json_only(o, kind == CMD_HEARTBEAT ? hb : kind == CMD_DONE ? done : fail, "", err) ||
        api_lease_field(r, o, &c->in.lease_op.lease, err) ||
        parse_usage(o, &c->in.lease_op.usage, err))
        goto fail;
    if (strlen(c->in.lease_op.lease) > 256) {
        s2_fail(err, S2_EINVAL, "invalid_field", "field 'lease' is not a lease token");
        goto fail;
    }
    if (kind == CMD_DONE) {
        json_t *res = json_object_get(o, "result");
        if (res) {
            c->in.lease_op.result = json_text(res);
            if (strlen(c->in.lease_op.result) > S2_RESULT_MAX) {
                s2_fail(err, S2_ETOOBIG, "too_large",
                        "field 'result' is %zu bytes of JSON (at most %d)",
                        strlen(c->in.lease_op.result), S2_RESULT_MAX);
                goto fail;
            }
        }
    }
    if (kind == CMD_FAIL) {
        if (json_str(o, "reason", 0, &c->in.lease_op.reason, "", err) ||
            json_bool(o, "retry", 0, &c->in.lease_op.retry, "", err))
            goto fail;
        if (c->in.lease_op.reason &&
            model_check_text(c->in.lease_op.reason, S2_TEXT_MAX, 1, "field 'reason'", err))
            goto fail;
    }
    json_decref(o);
    return c;
fail:
    json_decref(o);
    cmd_free(c);
    return NULL;
}

static void finished(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    json_t *t = json_pack("{s:s,s:s,s:i}", "id", c->in.lease_op.task, "state",
                          task_state_name(c->out.state), "attempts", c->out.attempts);
    if (c->kind == CMD_FAIL)
        json_object_set_new(t, "retry_at",
                            c->out.retry_at ? json_integer(c->out.retry_at) : json_null());
    json_t *o = json_pack("{s:o}", "task", t);
    if (c->kind == CMD_HEARTBEAT)
        json_object_set_new(o, "lease", json_pack("{s:I,s:I}", "fence", (json_int_t)c->out.fence,
                                                  "expires_at", (json_int_t)c->out.expires_at));
    http_reply_json(r, 200, o);
}

static void lease_op(struct request *r, enum cmd_kind kind)
{
    struct s2_error err = S2_ERROR_INIT;
    struct cmd *c = lease_cmd(r, kind, &err);
    if (!c) {
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    http_submit(r, c, finished);
}

void api_heartbeat(struct request *r)
{
    lease_op(r, CMD_HEARTBEAT);
}

void api_done(struct request *r)
{
    lease_op(r, CMD_DONE);
}

void api_fail(struct request *r)
{
    lease_op(r, CMD_FAIL);
}
