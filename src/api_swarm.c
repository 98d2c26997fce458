/* api_swarm.c: /v1/swarms: create, list, show, status, pause and resume. */
#include "api.h"
#include "json.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

static void created(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    const struct swarm_spec *s = &c->in.swarm;
    json_t *caps = json_array();
    for (size_t i = 0; i < s->caps.n; i++)
        json_array_append_new(caps, json_string(s->caps.v[i]));
    json_t *o = json_pack("{s:{s:s,s:s,s:s,s:o,s:f,s:s?,s:s},s:s}", "swarm", "id", s->id, "role",
                          s->role ? s->role : "", "relation", relation_name(s->relation),
                          "capabilities", caps, "budget", api_usd(s->budget_micro), "branch",
                          s->branch, "state", "active", "token", c->out.token);
    http_reply_json(r, 201, o);
}

void api_swarm_create(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"id", "role", "relation", "capabilities", "budget",
                                         "branch", NULL};
    struct cmd *c = cmd_new(CMD_SWARM_ADD);
    struct swarm_spec *s = &c->in.swarm;
    char *relation = NULL;
    double budget = 0;
    if (!o || json_only(o, fields, "", &err) || json_str(o, "id", 1, &s->id, "", &err) ||
        json_str(o, "role", 0, &s->role, "", &err) ||
        json_str(o, "relation", 0, &relation, "", &err) ||
        json_strlist(o, "capabilities", 0, S2_CAPS_MAX, &s->caps, "", &err) ||
        json_num(o, "budget", 0, &budget, "", &err) ||
        json_str(o, "branch", 0, &s->branch, "", &err) ||
        model_usd_to_micro(budget, &s->budget_micro, "field 'budget'", &err))
        goto fail;
    s->relation = REL_PEER;
    if (relation && (s->relation = relation_parse(relation)) < 0) {
        s2_fail(&err, S2_EINVAL, "invalid_field",
                "field 'relation' must be peer, critical or support (got '%.40s')", relation);
        goto fail;
    }
    if (swarm_spec_check(s, &err))
        goto fail;
    free(relation);
    json_decref(o);
    http_submit(r, c, created);
    return;
fail:
    free(relation);
    json_decref(o);
    cmd_free(c);
    http_reply_error(r, &err);
    s2_error_release(&err);
}

void api_swarm_list(struct request *r)
{
    const char *lim = http_query(r, "limit");
    int limit = lim ? atoi(lim) : 1000;
    if (limit < 1 || limit > 10000) {
        http_reply_fail(r, S2_EINVAL, "invalid_query", "limit must be from 1 to 10000");
        return;
    }
    api_query(r, Q_SWARMS, http_query(r, "after"), limit);
}

static void reply_swarm(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    json_t *j = c->out.json;
    c->out.json = NULL;
    http_reply_json(r, 200, json_pack("{s:o}", "swarm", j));
}

static void show(struct request *r, const char *id)
{
    struct cmd *q = cmd_new(CMD_QUERY);
    q->in.query.what = Q_SWARM;
    q->in.query.arg = xstrdup(id);
    http_submit(r, q, reply_swarm);
}

void api_swarm_get(struct request *r)
{
    show(r, http_param(r, 0));
}

void api_swarm_status(struct request *r)
{
    api_query(r, Q_SWARM_STATUS, http_param(r, 0), 0);
}

static void state_changed(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    /* show the swarm as it now is */
    show(r, c->in.swarm_state.id);
}

static void set_state(struct request *r, int pause)
{
    struct cmd *c = cmd_new(CMD_SWARM_STATE);
    c->in.swarm_state.id = xstrdup(http_param(r, 0));
    c->in.swarm_state.pause = pause;
    http_submit(r, c, state_changed);
}

void api_swarm_pause(struct request *r)
{
    set_state(r, 1);
}

void api_swarm_resume(struct request *r)
{
    set_state(r, 0);
}
