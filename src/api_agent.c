/* api_agent.c: /v1/agents: register (admin or the swarm's token), list, show. */
#include "api.h"
#include "json.h"
#include "util/xalloc.h"

#include <stdlib.h>

static void reply_agent(struct request *r, struct cmd *c, unsigned status)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    json_t *j = c->out.json;
    c->out.json = NULL;
    http_reply_json(r, status, json_pack("{s:o}", "agent", j));
}

static void reply_created(struct request *r, struct cmd *c)
{
    reply_agent(r, c, 201);
}

static void reply_found(struct request *r, struct cmd *c)
{
    reply_agent(r, c, 200);
}

static void show(struct request *r, const char *id, void (*after)(struct request *, struct cmd *))
{
    struct cmd *q = cmd_new(CMD_QUERY);
    q->in.query.what = Q_AGENT;
    q->in.query.arg = xstrdup(id);
    http_submit(r, q, after);
}

static void added(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    show(r, c->in.agent.id, reply_created);
}

void api_agent_create(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"id", "swarm", "model", "capabilities", "max_leases",
                                         NULL};
    struct cmd *c = cmd_new(CMD_AGENT_ADD);
    struct agent_spec *a = &c->in.agent;
    const struct principal *who = http_who(r);
    if (!o || json_only(o, fields, "", &err) || json_str(o, "id", 1, &a->id, "", &err) ||
        json_str(o, "swarm", who->kind == PRIN_ADMIN, &a->swarm, "", &err) ||
        json_str(o, "model", 0, &a->model, "", &err) ||
        json_strlist(o, "capabilities", 0, S2_CAPS_MAX, &a->caps, "", &err) ||
        json_int(o, "max_leases", 0, 1, S2_LEASES_MAX, &a->max_leases, "", &err))
        goto fail;
    if (!a->swarm && who->swarm) /* a swarm token registers agents of its own swarm */
        a->swarm = xstrdup(who->swarm);
    if (agent_spec_check(a, &err))
        goto fail;
    json_decref(o);
    http_submit(r, c, added);
    return;
fail:
    json_decref(o);
    cmd_free(c);
    http_reply_error(r, &err);
    s2_error_release(&err);
}

void api_agent_list(struct request *r)
{
    /* ?after=ID&limit=N pages (the dashboard with thousands of agents); no limit: all */
    const char *lim = http_query(r, "limit"), *after = http_query(r, "after");
    int limit = 0;
    if (lim) {
        char *end;
        long v = strtol(lim, &end, 10);
        if (end == lim || *end || v < 1 || v > 10000) {
            http_reply_fail(r, S2_EINVAL, "invalid_query", "limit must be from 1 to 10000");
            return;
        }
        limit = (int)v;
    }
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_AGENTS;
    c->in.query.arg = http_query(r, "swarm") ? xstrdup(http_query(r, "swarm")) : NULL;
    c->in.query.after = after ? xstrdup(after) : NULL;
    c->in.query.limit = limit;
    http_submit(r, c, api_reply_query);
}

void api_agent_get(struct request *r)
{
    show(r, http_param(r, 0), reply_found);
}
