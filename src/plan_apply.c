/* plan_apply.c: plan vs live state. Creating is the only way most things change through the
 * API (a swarm, agent or task is made once; the model table is upserted; policy, contracts
 * and idle tasks are replaced whole), so apply creates what is missing, replaces what the
 * API can replace, and reports everything else that differs as a conflict naming the
 * field, before a single request is sent. Pure functions; no HTTP here. */
#include "plan_apply.h"
#include "util/xalloc.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

const char *const plan_section_names[PS_NSECTIONS] = {
    "policy", "models", "swarms", "budgets", "agents", "contracts", "idle tasks", "tasks"};

void plan_live_init(struct plan_live *l)
{
    memset(l, 0, sizeof *l);
    l->models = json_array();
    l->swarms = json_array();
    l->agents = json_array();
    l->tasks = json_array();
    l->idle = json_object();
    l->contracts = json_object();
}

void plan_live_release(struct plan_live *l)
{
    json_decref(l->models);
    json_decref(l->swarms);
    json_decref(l->agents);
    json_decref(l->tasks);
    json_decref(l->policy);
    json_decref(l->idle);
    json_decref(l->contracts);
    memset(l, 0, sizeof *l);
}

void plan_diff_release(struct plan_diff *d)
{
    for (size_t i = 0; i < d->n; i++) {
        struct plan_change *c = &d->v[i];
        free(c->id);
        free(c->summary);
        free(c->method);
        free(c->path);
        free(c->task_swarms);
        json_decref(c->body);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

/* ---- JSON helpers ---- */

static double usd(int64_t micro)
{
    return (double)micro / (double)S2_MICRO;
}

static int64_t micro_of(json_t *v)
{
    return json_is_number(v) ? (int64_t)llround(json_number_value(v) * (double)S2_MICRO) : 0;
}

static json_t *strvec_json(const struct strvec *sv)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sv->n; i++)
        json_array_append_new(a, json_string(sv->v[i]));
    return a;
}

static void json_strvec(json_t *a, struct strvec *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (json_is_string(v)) strvec_push(out, json_string_value(v));
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int64_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v)
           : json_is_real(v)  ? (int64_t)llround(json_real_value(v))
                              : 0;
}

static int all_strings(json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (!json_is_string(v)) return 0;
    return 1;
}

int plan_json_matches(json_t *plan, json_t *live)
{
    if (!plan || json_is_null(plan))
        return !live || json_is_null(live);
    if (!live)
        return 0;
    if (json_is_number(plan) && json_is_number(live)) {
        double a = json_number_value(plan), b = json_number_value(live);
        return fabs(a - b) <= 1e-9 * (fabs(a) > 1 ? fabs(a) : 1);
    }
    if (json_is_string(plan))
        return json_is_string(live) && !strcmp(json_string_value(plan), json_string_value(live));
    if (json_is_boolean(plan))
        return json_is_boolean(live) && json_is_true(plan) == json_is_true(live);
    if (json_is_object(plan)) {
        if (!json_is_object(live))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach(plan, k, v) if (!plan_json_matches(v, json_object_get(live, k))) return 0;
        return 1;
    }
    if (json_is_array(plan)) {
        if (!json_is_array(live) || json_array_size(plan) != json_array_size(live))
            return 0;
        size_t n = json_array_size(plan);
        if (all_strings(plan) && all_strings(live)) {
            for (size_t i = 0; i < n; i++) {
                const char *s = json_string_value(json_array_get(plan, i));
                size_t j;
                for (j = 0; j < n; j++)
                    if (!strcmp(s, json_string_value(json_array_get(live, j))))
                        break;
                if (j == n)
                    return 0;
            }
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            if (!plan_json_matches(json_array_get(plan, i), json_array_get(live, i)))
                return 0;
        return 1;
    }
    return 0;
}

int plan_json_same(json_t *a, json_t *b)
{
    return plan_json_matches(a, b) && plan_json_matches(b, a);
}

/* ---- request bodies ---- */

json_t *plan_task_json(const struct plan_task *t, int idle)
{
    const struct task_spec *s = &t->spec;
    json_t *o = json_object();
    if (idle) {
        json_object_set_new(o, "title", json_string(s->title));
        if (s->body)
            json_object_set_new(o, "body", json_string(s->body));
        json_object_set_new(o, "requires", strvec_json(&s->requires));
        return o;
    }
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "swarm", json_string(s->swarm));
    json_object_set_new(o, "phase", json_integer(s->phase));
    json_object_set_new(o, "title", json_string(s->title));
    if (s->body)
        json_object_set_new(o, "body", json_string(s->body));
    json_object_set_new(o, "requires", strvec_json(&s->requires));
    json_object_set_new(o, "min_tier", json_integer(s->min_tier));
    json_object_set_new(o, "priority", json_integer(s->priority));
    json_object_set_new(o, "estimate_h", json_real(s->estimate_h));
    json_object_set_new(o, "estimate_usd", json_real(usd(s->estimate_micro)));
    if (s->max_cost_micro)
        json_object_set_new(o, "max_cost", json_real(usd(s->max_cost_micro)));
    json_object_set_new(o, "depends_on", strvec_json(&s->depends_on));
    json_object_set_new(o, "paths", strvec_json(&s->paths));
    json_object_set_new(o, "max_attempts", json_integer(s->max_attempts));
    json_object_set_new(o, "lease_ms", json_integer(s->lease_ms));
    json_object_set_new(o, "retry_backoff_ms", json_integer(s->backoff_ms));
    char a[24];
    model_format_approval(s->approval_kind, s->approval_n, a, sizeof a);
    json_object_set_new(o, "approval", json_string(a));
    json_object_set_new(o, "phase_barrier", json_boolean(s->phase_barrier));
    return o;
}

json_t *plan_policy_json(const struct plan *p)
{
    const struct plan_policy *pol = &p->policy;
    json_t *o = json_object();
    /* the preset first resets every key; the plan's keys then override it */
    json_object_set_new(o, "preset",
                        json_string(pol->v[PK_PRESET].set ? pol->v[PK_PRESET].s : "default"));
    for (int i = 1; i < PK_NKEYS; i++) {
        const struct plan_policy_value *v = &pol->v[i];
        if (!v->set)
            continue;
        json_t *j = NULL;
        switch (plan_policy_keys[i].type) {
        case PV_RATIO:
            j = json_real(v->num);
            break;
        case PV_INT:
            j = json_integer(v->i);
            break;
        case PV_USD:
        case PV_USD_POSITIVE:
            j = json_real(usd(v->i));
            break;
        case PV_BOOL:
            j = json_boolean(v->i);
            break;
        default:
            j = json_string(v->s);
            break;
        }
        json_object_set_new(o, plan_policy_keys[i].name, j);
    }
    return o;
}

/* What the server's policy must say for the plan's to hold: the request, plus the core
 * values its preset implies. */
static json_t *policy_wanted(const struct plan *p)
{
    json_t *o = plan_policy_json(p);
    struct plan_policy_eff e;
    plan_policy_effective(&p->policy, &e);
    json_object_set_new(o, "min_capability_match", json_real(e.min_capability_match));
    json_object_set_new(o, "max_helpers", json_integer(e.max_helpers));
    json_object_set_new(o, "max_cost_per_task", json_real(usd(e.max_cost_per_task_micro)));
    json_object_set_new(o, "breaker_failures", json_integer(e.breaker_failures));
    return o;
}

json_t *plan_contract_json(const struct plan_swarm *sw)
{
    const struct plan_contract *c = &sw->contract;
    json_t *o = json_object();
    json_object_set_new(o, "swarm", json_string(sw->spec.id));
    if (c->version)
        json_object_set_new(o, "version", json_string(c->version));
    json_object_set_new(o, "capabilities", strvec_json(&c->caps));
    json_t *l = json_object(), *s = json_object();
    for (int i = 0; i < PL_NLIMITS; i++)
        if (c->limits[i] > 0)
            json_object_set_new(l, plan_limit_names[i], json_integer(c->limits[i]));
    for (int i = 0; i < PS_NSLOS; i++)
        if (c->slos[i] >= 0)
            json_object_set_new(s, plan_slo_names[i], json_real(c->slos[i]));
    json_object_set_new(o, "limits", l);
    json_object_set_new(o, "slos", s);
    json_object_set_new(o, "network", strvec_json(&c->network));
    json_object_set_new(o, "secrets", strvec_json(&c->secrets));
    return o;
}

json_t *plan_idle_json(const struct plan *p, size_t swarm)
{
    json_t *a = json_array();
    for (size_t i = 0; i < p->nidle; i++)
        if (p->idle[i].swarm == swarm)
            json_array_append_new(a, plan_task_json(&p->idle[i], 1));
    return json_pack("{s:o}", "idle_tasks", a);
}

/* ---- diff ---- */

static struct plan_change *add(struct plan_diff *d, int section, int create, const char *id,
                               char *summary, const char *method, char *path, json_t *body)
{
    d->v = xgrow(d->v, sizeof *d->v, d->n + 1, &d->cap);
    struct plan_change *c = &d->v[d->n++];
    memset(c, 0, sizeof *c);
    c->section = section;
    c->create = create;
    c->id = id ? xstrdup(id) : NULL;
    c->summary = summary;
    c->method = xstrdup(method);
    c->path = path;
    c->body = body;
    return c;
}

/* A short quoted form of a value for conflict messages. */
static void clip(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    buf_addch(b, '\'');
    size_t k = 0;
    while (k < n && k < 40) {
        int l = (unsigned char)s[k] < 0x80 ? 1 : model_utf8_len(s + k);
        if (!l || (unsigned char)s[k] < 0x20)
            break;
        k += (size_t)l;
    }
    buf_add(b, s, k);
    buf_adds(b, k < n ? "...'" : "'");
}

struct diffs {
    struct buf b;
    size_t n;
};

static void differs(struct diffs *d, const char *field, const char *live, const char *plan)
{
    buf_adds(&d->b, d->n++ ? ", " : "");
    buf_addf(&d->b, "%s ", field);
    clip(&d->b, live);
    buf_adds(&d->b, " (plan ");
    clip(&d->b, plan);
    buf_adds(&d->b, ")");
}

enum { NUM_INT, NUM_REAL, NUM_USD };
static void differs_num(struct diffs *d, const char *field, int kind, double live, double plan)
{
    char a[40], b[40];
    if (kind == NUM_USD) {
        snprintf(a, sizeof a, "$%.2f", live);
        snprintf(b, sizeof b, "$%.2f", plan);
    } else {
        snprintf(a, sizeof a, kind == NUM_INT ? "%.0f" : "%g", live);
        snprintf(b, sizeof b, kind == NUM_INT ? "%.0f" : "%g", plan);
    }
    buf_adds(&d->b, d->n++ ? ", " : "");
    buf_addf(&d->b, "%s %s (plan %s)", field, a, b);
}

static int same_set(json_t *live, const struct strvec *plan)
{
    if (json_array_size(live) != plan->n)
        return 0;
    for (size_t i = 0; i < plan->n; i++) {
        size_t j;
        json_t *v;
        int found = 0;
        json_array_foreach(live, j, v) found |= json_is_string(v) &&
                                                 !strcmp(json_string_value(v), plan->v[i]);
        if (!found)
            return 0;
    }
    return 1;
}

static void differs_set(struct diffs *d, const char *field, json_t *live,
                        const struct strvec *plan)
{
    struct strvec l = STRVEC_INIT;
    json_strvec(live, &l);
    char *a = strvec_join(&l, ", "), *b = strvec_join(plan, ", ");
    char *la = xasprintf("[%s]", a), *lb = xasprintf("[%s]", b);
    differs(d, field, la, lb);
    free(a);
    free(b);
    free(la);
    free(lb);
    strvec_release(&l);
}

static void index_array(json_t *a, const char *key, struct map *m)
{
    size_t i;
    json_t *v;
    map_init(m);
    json_array_foreach(a, i, v) {
        const char *id = json_string_value(json_object_get(v, key));
        if (id)
            map_put(m, id, (uint32_t)i);
    }
}

static json_t *lookup(json_t *a, struct map *m, const char *id)
{
    uint32_t i = map_get(m, id);
    return i == MAP_NONE ? NULL : json_array_get(a, i);
}

static void diff_policy(struct plan *p, const struct plan_live *live, struct plan_diff *d)
{
    if (!p->policy.present)
        return;
    json_t *want = policy_wanted(p);
    if (live->policy_supported && plan_json_matches(want, live->policy)) {
        d->unchanged[PS_POLICY]++;
        json_decref(want);
        return;
    }
    struct buf s = BUF_INIT;
    buf_adds(&s, "policy");
    if (live->policy_supported) {
        const char *k;
        json_t *v;
        size_t n = 0;
        json_object_foreach(want, k, v) {
            json_t *l = json_object_get(live->policy, k);
            if (plan_json_matches(v, l))
                continue;
            char *a = l ? json_dumps(l, JSON_ENCODE_ANY | JSON_COMPACT) : xstrdup("(none)");
            char *b = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            buf_addf(&s, "%s %s %s -> %s", n++ ? "," : ":", k, a, b);
            free(a);
            free(b);
        }
    } else {
        buf_adds(&s, ": set it (the server does not report a policy)");
    }
    json_decref(want);
    add(d, PS_POLICY, 0, NULL, buf_detach(&s, NULL), "PUT", xstrdup(PLAN_EP_POLICY),
        plan_policy_json(p));
}

static void diff_models(struct plan *p, const struct plan_live *live, struct plan_diff *d)
{
    struct map ix;
    index_array(live->models, "name", &ix);
    for (size_t i = 0; i < p->nmodels; i++) {
        const struct plan_model *m = &p->models[i];
        if (!m->from_plan)
            continue;
        json_t *l = lookup(live->models, &ix, m->spec.name);
        int64_t in = l ? micro_of(json_object_get(l, "usd_per_mtok_in")) : 0,
                out = l ? micro_of(json_object_get(l, "usd_per_mtok_out")) : 0,
                tier = l ? jint(l, "tier") : 0;
        if (l && tier == m->spec.tier && in == m->spec.usd_in_micro &&
            out == m->spec.usd_out_micro) {
            d->unchanged[PS_MODEL]++;
            continue;
        }
        char *sum;
        if (!l)
            sum = xasprintf("model '%s' (tier %lld, $%.2f/$%.2f per million tokens in/out)",
                            m->spec.name, (long long)m->spec.tier, usd(m->spec.usd_in_micro),
                            usd(m->spec.usd_out_micro));
        else
            sum = xasprintf("model '%s': tier %lld -> %lld, $%.2f/$%.2f -> $%.2f/$%.2f per "
                            "million tokens",
                            m->spec.name, (long long)tier, (long long)m->spec.tier, usd(in),
                            usd(out), usd(m->spec.usd_in_micro), usd(m->spec.usd_out_micro));
        json_t *body = json_pack("{s:s,s:I,s:f,s:f}", "name", m->spec.name, "tier",
                                 (json_int_t)m->spec.tier, "usd_per_mtok_in",
                                 usd(m->spec.usd_in_micro), "usd_per_mtok_out",
                                 usd(m->spec.usd_out_micro));
        add(d, PS_MODEL, !l, m->spec.name, sum, "POST", xstrdup(PLAN_EP_MODELS), body);
    }
    map_release(&ix);
}

static void diff_swarms(struct plan *p, const struct plan_live *live, struct plan_diff *d,
                        int *conflicts)
{
    struct map ix;
    index_array(live->swarms, "id", &ix);
    for (size_t i = 0; i < p->nswarms; i++) {
        const struct plan_swarm *sw = &p->swarms[i];
        const struct swarm_spec *s = &sw->spec;
        json_t *l = lookup(live->swarms, &ix, s->id);
        if (!l) {
            json_t *body = json_object();
            json_object_set_new(body, "id", json_string(s->id));
            if (s->role)
                json_object_set_new(body, "role", json_string(s->role));
            json_object_set_new(body, "relation", json_string(relation_name(s->relation)));
            json_object_set_new(body, "capabilities", strvec_json(&s->caps));
            json_object_set_new(body, "budget", json_real(usd(s->budget_micro)));
            if (s->branch)
                json_object_set_new(body, "branch", json_string(s->branch));
            char *sum = sw->has_budget && s->budget_micro
                            ? xasprintf("swarm '%s' (%s, budget $%.2f)", s->id,
                                        relation_name(s->relation), usd(s->budget_micro))
                            : xasprintf("swarm '%s' (%s)", s->id, relation_name(s->relation));
            add(d, PS_SWARM, 1, s->id, sum, "POST", xstrdup(PLAN_EP_SWARMS), body);
            continue;
        }
        struct diffs df = {BUF_INIT, 0};
        if (strcmp(jstr(l, "role"), s->role ? s->role : ""))
            differs(&df, "role", jstr(l, "role"), s->role ? s->role : "");
        if (strcmp(jstr(l, "relation"), relation_name(s->relation)))
            differs(&df, "relation", jstr(l, "relation"), relation_name(s->relation));
        if (!same_set(json_object_get(l, "capabilities"), &s->caps))
            differs_set(&df, "capabilities", json_object_get(l, "capabilities"), &s->caps);
        if (strcmp(jstr(l, "branch"), s->branch ? s->branch : ""))
            differs(&df, "branch", jstr(l, "branch"), s->branch ? s->branch : "");
        if (df.n) {
            plan_errorf(p, sw->id_at.line ? sw->id_at : sw->at,
                        "swarm '%s' exists on the server with %s; plan apply creates swarms and "
                        "sets their budgets but does not change them otherwise",
                        s->id, df.b.ptr);
            *conflicts = 1;
        } else {
            d->unchanged[PS_SWARM]++;
        }
        /* the budget is the one thing about a swarm the API changes */
        int64_t live_budget = micro_of(json_object_get(l, "budget"));
        if (sw->has_budget && live_budget != s->budget_micro)
            add(d, PS_BUDGET, 0, s->id,
                xasprintf("budget of swarm '%s': $%.2f -> $%.2f", s->id, usd(live_budget),
                          usd(s->budget_micro)),
                "POST", xstrdup(PLAN_EP_BUDGETS),
                json_pack("{s:s,s:f}", "swarm", s->id, "budget", usd(s->budget_micro)));
        buf_release(&df.b);
    }
    map_release(&ix);
}

static void diff_agents(struct plan *p, const struct plan_live *live, struct plan_diff *d,
                        int *conflicts)
{
    struct map ix;
    index_array(live->agents, "id", &ix);
    for (size_t i = 0; i < p->nagents; i++) {
        const struct plan_agent *a = &p->agents[i];
        const struct agent_spec *s = &a->spec;
        json_t *l = lookup(live->agents, &ix, s->id);
        if (!l) {
            json_t *body = json_object();
            json_object_set_new(body, "id", json_string(s->id));
            json_object_set_new(body, "swarm", json_string(s->swarm));
            if (s->model)
                json_object_set_new(body, "model", json_string(s->model));
            json_object_set_new(body, "capabilities", strvec_json(&s->caps));
            if (a->has_max_leases)
                json_object_set_new(body, "max_leases", json_integer(s->max_leases));
            add(d, PS_AGENT, 1, s->id,
                xasprintf("agent '%s' (swarm '%s', %s)", s->id, s->swarm,
                          s->model ? s->model : "the default model"),
                "POST", xstrdup(PLAN_EP_AGENTS), body);
            continue;
        }
        struct diffs df = {BUF_INIT, 0};
        if (strcmp(jstr(l, "swarm"), s->swarm))
            differs(&df, "swarm", jstr(l, "swarm"), s->swarm);
        if (s->model && strcmp(jstr(l, "model"), s->model))
            differs(&df, "model", jstr(l, "model"), s->model);
        if (!same_set(json_object_get(l, "capabilities"), &s->caps))
            differs_set(&df, "capabilities", json_object_get(l, "capabilities"), &s->caps);
        if (a->has_max_leases && jint(l, "max_leases") != s->max_leases)
            differs_num(&df, "max_leases", NUM_INT, (double)jint(l, "max_leases"),
                        (double)s->max_leases);
        if (df.n) {
            plan_errorf(p, a->id_at.line ? a->id_at : a->at,
                        "agent '%s' exists on the server with %s; plan apply creates agents but "
                        "does not change them",
                        s->id, df.b.ptr);
            *conflicts = 1;
        } else {
            d->unchanged[PS_AGENT]++;
        }
        buf_release(&df.b);
    }
    map_release(&ix);
}

/* Contracts, then idle tasks: each replaced whole when it differs. A swarm not yet on the
 * server has neither; a server without the endpoint is asked anyway, and its 404 is
 * reported as "not supported". */
static void diff_swarm_sections(struct plan *p, const struct plan_live *live,
                                struct plan_diff *d)
{
    struct map ix;
    index_array(live->swarms, "id", &ix);
    for (size_t i = 0; i < p->nswarms; i++) {
        const struct plan_swarm *sw = &p->swarms[i];
        if (!sw->contract.present)
            continue;
        json_t *l = lookup(live->swarms, &ix, sw->spec.id);
        json_t *want = plan_contract_json(sw);
        json_t *have =
            l && live->contract_supported ? json_object_get(live->contracts, sw->spec.id) : NULL;
        if (have && plan_json_same(want, have)) {
            d->unchanged[PS_CONTRACT]++;
            json_decref(want);
            continue;
        }
        add(d, PS_CONTRACT, !have || json_is_null(have), sw->spec.id,
            xasprintf("contract of swarm '%s'%s%s", sw->spec.id,
                      sw->contract.version ? " version " : "",
                      sw->contract.version ? sw->contract.version : ""),
            "PUT", xasprintf(PLAN_EP_CONTRACT, sw->spec.id), json_pack("{s:o}", "contract", want));
    }
    for (size_t i = 0; i < p->nswarms; i++) {
        const struct plan_swarm *sw = &p->swarms[i];
        if (!sw->has_idle)
            continue;
        json_t *l = lookup(live->swarms, &ix, sw->spec.id);
        json_t *want = plan_idle_json(p, i);
        json_t *have = l && live->idle_supported ? json_object_get(live->idle, sw->spec.id) : NULL;
        if ((have && plan_json_same(json_object_get(want, "idle_tasks"), have)) ||
            (!l && !sw->nidle)) { /* nothing to clear on a swarm about to be made */
            d->unchanged[PS_IDLE]++;
            json_decref(want);
            continue;
        }
        add(d, PS_IDLE, !have || !json_array_size(have), sw->spec.id,
            xasprintf("idle tasks of swarm '%s' (%zu)", sw->spec.id, sw->nidle), "PUT",
            xasprintf(PLAN_EP_IDLE, sw->spec.id), want);
    }
    map_release(&ix);
}

static void task_conflicts(struct plan *p, const struct plan_task *t, json_t *l, int *conflicts)
{
    const struct task_spec *s = &t->spec;
    struct diffs df = {BUF_INIT, 0};
    char a[24];
    if (strcmp(jstr(l, "swarm"), s->swarm))
        differs(&df, "swarm", jstr(l, "swarm"), s->swarm);
    if (jint(l, "phase") != s->phase)
        differs_num(&df, "phase", NUM_INT, (double)jint(l, "phase"), (double)s->phase);
    if (strcmp(jstr(l, "title"), s->title))
        differs(&df, "title", jstr(l, "title"), s->title);
    if (strcmp(jstr(l, "body"), s->body ? s->body : ""))
        differs(&df, "body", jstr(l, "body"), s->body ? s->body : "");
    if (!same_set(json_object_get(l, "requires"), &s->requires))
        differs_set(&df, "requires", json_object_get(l, "requires"), &s->requires);
    if (!same_set(json_object_get(l, "depends_on"), &s->depends_on))
        differs_set(&df, "depends_on", json_object_get(l, "depends_on"), &s->depends_on);
    if (!same_set(json_object_get(l, "paths"), &s->paths))
        differs_set(&df, "paths", json_object_get(l, "paths"), &s->paths);
    static const struct {
        const char *key;
        size_t off;
    } ints[] = {{"min_tier", offsetof(struct task_spec, min_tier)},
                {"priority", offsetof(struct task_spec, priority)},
                {"max_attempts", offsetof(struct task_spec, max_attempts)},
                {"lease_ms", offsetof(struct task_spec, lease_ms)},
                {"retry_backoff_ms", offsetof(struct task_spec, backoff_ms)}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t want = *(const int64_t *)((const char *)s + ints[i].off);
        if (json_object_get(l, ints[i].key) && jint(l, ints[i].key) != want)
            differs_num(&df, ints[i].key, NUM_INT, (double)jint(l, ints[i].key), (double)want);
    }
    model_format_approval(s->approval_kind, s->approval_n, a, sizeof a);
    if (strcmp(jstr(l, "approval"), a))
        differs(&df, "approval", jstr(l, "approval"), a);
    json_t *pb = json_object_get(l, "phase_barrier");
    if (json_is_boolean(pb) && json_is_true(pb) != !!s->phase_barrier)
        differs(&df, "phase_barrier", json_is_true(pb) ? "true" : "false",
                s->phase_barrier ? "true" : "false");
    double eh = json_number_value(json_object_get(l, "estimate_h"));
    if (fabs(eh - s->estimate_h) > 1e-9 * (s->estimate_h > 1 ? s->estimate_h : 1))
        differs_num(&df, "estimate_h", NUM_REAL, eh, s->estimate_h);
    if (micro_of(json_object_get(l, "estimate_usd")) != s->estimate_micro)
        differs_num(&df, "estimate_usd", NUM_USD, usd(micro_of(json_object_get(l, "estimate_usd"))),
                    usd(s->estimate_micro));
    if (micro_of(json_object_get(l, "max_cost")) != s->max_cost_micro)
        differs_num(&df, "max_cost", NUM_USD, usd(micro_of(json_object_get(l, "max_cost"))),
                    usd(s->max_cost_micro));
    if (df.n) {
        plan_errorf(p, t->id_at.line ? t->id_at : t->at,
                    "task '%s' exists on the server with %s; plan apply creates tasks but does "
                    "not change them",
                    s->id, df.b.ptr);
        *conflicts = 1;
    }
    buf_release(&df.b);
}

/* New tasks in dependency order (Kahn over the edges between new tasks; ties in plan
 * order), so that every chunk depends only on earlier chunks and live tasks. */
static size_t *task_order(const struct plan *p, const uint8_t *isnew, size_t nnew)
{
    struct map ix;
    map_init(&ix);
    for (size_t i = 0; i < p->ntasks; i++)
        if (isnew[i])
            map_put(&ix, p->tasks[i].spec.id, (uint32_t)i);
    uint32_t *deg = xcalloc(p->ntasks + 1, sizeof *deg);
    size_t *off = xcalloc(p->ntasks + 2, sizeof *off), ne = 0;
    for (size_t i = 0; i < p->ntasks; i++)
        if (isnew[i])
            for (size_t k = 0; k < p->tasks[i].spec.depends_on.n; k++) {
                uint32_t j = map_get(&ix, p->tasks[i].spec.depends_on.v[k]);
                if (j != MAP_NONE) {
                    deg[i]++;
                    off[j + 1]++;
                    ne++;
                }
            }
    for (size_t i = 0; i < p->ntasks; i++)
        off[i + 1] += off[i];
    uint32_t *dependents = xcalloc(ne + 1, sizeof *dependents);
    size_t *fill = xcalloc(p->ntasks + 1, sizeof *fill);
    for (size_t i = 0; i < p->ntasks; i++)
        if (isnew[i])
            for (size_t k = 0; k < p->tasks[i].spec.depends_on.n; k++) {
                uint32_t j = map_get(&ix, p->tasks[i].spec.depends_on.v[k]);
                if (j != MAP_NONE)
                    dependents[off[j] + fill[j]++] = (uint32_t)i;
            }
    size_t *order = xcalloc(nnew + 1, sizeof *order), n = 0, head = 0;
    for (size_t i = 0; i < p->ntasks; i++)
        if (isnew[i] && !deg[i])
            order[n++] = i;
    while (head < n) {
        size_t v = order[head++];
        for (size_t k = off[v]; k < off[v + 1]; k++)
            if (--deg[dependents[k]] == 0)
                order[n++] = dependents[k];
    }
    /* a valid plan has no cycle; should one slip through, keep the rest in plan order */
    for (size_t i = 0; i < p->ntasks && n < nnew; i++)
        if (isnew[i] && deg[i])
            order[n++] = i;
    free(deg);
    free(off);
    free(dependents);
    free(fill);
    map_release(&ix);
    return order;
}

static void diff_tasks(struct plan *p, const struct plan_live *live, struct plan_diff *d,
                       int *conflicts)
{
    struct map ix;
    index_array(live->tasks, "id", &ix);
    uint8_t *isnew = xcalloc(p->ntasks + 1, 1);
    size_t nnew = 0;
    for (size_t i = 0; i < p->ntasks; i++) {
        json_t *l = lookup(live->tasks, &ix, p->tasks[i].spec.id);
        if (!l) {
            isnew[i] = 1;
            nnew++;
            continue;
        }
        int c = 0;
        task_conflicts(p, &p->tasks[i], l, &c);
        if (c)
            *conflicts = 1;
        else
            d->unchanged[PS_TASKS]++;
    }
    map_release(&ix);
    d->new_tasks = nnew;
    size_t *order = task_order(p, isnew, nnew);
    size_t k = 0;
    while (k < nnew) {
        json_t *arr = json_array();
        size_t bytes = 0, n = 0;
        size_t *per = xcalloc(p->nswarms + 1, sizeof *per);
        while (k < nnew && n < PLAN_CHUNK_TASKS) {
            const struct plan_task *t = &p->tasks[order[k]];
            json_t *j = plan_task_json(t, 0);
            char *s = json_dumps(j, JSON_COMPACT);
            size_t len = s ? strlen(s) + 1 : 0;
            free(s);
            if (n && bytes + len > PLAN_CHUNK_BYTES) {
                json_decref(j);
                break;
            }
            json_array_append_new(arr, j);
            bytes += len;
            per[t->swarm]++;
            n++;
            k++;
        }
        struct buf sw = BUF_INIT;
        for (size_t i = 0; i < p->nswarms; i++)
            if (per[i])
                buf_addf(&sw, "%s%s %zu", sw.len ? ", " : "", p->swarms[i].spec.id, per[i]);
        free(per);
        struct plan_change *c =
            add(d, PS_TASKS, 1, NULL, xasprintf("%zu tasks (%s)", n, sw.ptr), "POST",
                xstrdup(PLAN_EP_TASKS), json_pack("{s:o}", "tasks", arr));
        c->ntasks = n;
        c->task_swarms = buf_detach(&sw, NULL);
    }
    free(order);
    free(isnew);
}

int plan_diff(struct plan *p, const struct plan_live *live, struct plan_diff *d)
{
    int conflicts = 0;
    memset(d, 0, sizeof *d);
    diff_policy(p, live, d);
    diff_models(p, live, d);
    diff_swarms(p, live, d, &conflicts);
    diff_agents(p, live, d, &conflicts);
    diff_swarm_sections(p, live, d);
    diff_tasks(p, live, d, &conflicts);
    return conflicts ? -1 : 0;
}

/* ---- export ---- */

static void task_from_json(struct plan_task *t, json_t *o, int idle, uint32_t swarm,
                           const char *swarm_id)
{
    struct task_spec *s = &t->spec;
    t->swarm = swarm;
    s->id = *jstr(o, "id") ? xstrdup(jstr(o, "id")) : NULL; /* idle tasks have none */
    s->swarm = xstrdup(swarm_id);
    s->title = xstrdup(jstr(o, "title"));
    if (*jstr(o, "body")) {
        s->body = xstrdup(jstr(o, "body"));
        t->set |= PT_BODY;
    }
    json_strvec(json_object_get(o, "requires"), &s->requires);
    if ((s->min_tier = jint(o, "min_tier")))
        t->set |= PT_MIN_TIER;
    if ((s->priority = jint(o, "priority")))
        t->set |= PT_PRIORITY;
    if ((s->estimate_h = json_number_value(json_object_get(o, "estimate_h"))) > 0)
        t->set |= PT_ESTIMATE_H;
    if ((s->estimate_micro = micro_of(json_object_get(o, "estimate_usd"))))
        t->set |= PT_ESTIMATE_USD;
    if ((s->max_cost_micro = micro_of(json_object_get(o, "max_cost"))))
        t->set |= PT_MAX_COST;
    if (idle)
        return;
    s->phase = jint(o, "phase");
    json_strvec(json_object_get(o, "depends_on"), &s->depends_on);
    json_strvec(json_object_get(o, "paths"), &s->paths);
    if (json_object_get(o, "max_attempts") &&
        (s->max_attempts = jint(o, "max_attempts")) != S2_DEFAULT_MAX_ATTEMPTS)
        t->set |= PT_MAX_ATTEMPTS;
    if (json_object_get(o, "lease_ms") && (s->lease_ms = jint(o, "lease_ms")) != S2_DEFAULT_LEASE_MS)
        t->set |= PT_LEASE_MS;
    if (json_object_get(o, "retry_backoff_ms") &&
        (s->backoff_ms = jint(o, "retry_backoff_ms")) != S2_DEFAULT_BACKOFF_MS)
        t->set |= PT_BACKOFF;
    if (model_parse_approval(jstr(o, "approval"), &s->approval_kind, &s->approval_n, NULL) == 0 &&
        s->approval_kind != APPROVAL_NONE)
        t->set |= PT_APPROVAL;
    json_t *pb = json_object_get(o, "phase_barrier");
    if (json_is_boolean(pb) && !json_is_true(pb)) {
        s->phase_barrier = 0;
        t->set |= PT_PHASE_BARRIER;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void plan_from_live(struct plan *p, const struct plan_live *live)
{
    size_t i;
    json_t *v;
    if (live->policy_supported && json_is_object(live->policy)) {
        struct plan_policy *pol = &p->policy;
        pol->present = 1;
        for (int k = 0; k < PK_NKEYS; k++) {
            json_t *j = json_object_get(live->policy, plan_policy_keys[k].name);
            struct plan_policy_value *pv = &pol->v[k];
            if (!j || json_is_null(j))
                continue;
            switch (plan_policy_keys[k].type) {
            case PV_PRESET:
            case PV_URL:
                if (!json_is_string(j))
                    continue;
                pv->s = xstrdup(json_string_value(j));
                break;
            case PV_RATIO:
                pv->num = json_number_value(j);
                break;
            case PV_INT:
                pv->i = jint(live->policy, plan_policy_keys[k].name);
                break;
            case PV_USD:
            case PV_USD_POSITIVE:
                pv->i = micro_of(j);
                break;
            case PV_BOOL:
                pv->i = json_is_true(j);
                break;
            }
            pv->set = 1;
        }
    }
    json_array_foreach(live->models, i, v) {
        struct plan_model *m = plan_add_model(p);
        m->spec.name = xstrdup(jstr(v, "name"));
        m->spec.tier = jint(v, "tier");
        m->spec.usd_in_micro = micro_of(json_object_get(v, "usd_per_mtok_in"));
        m->spec.usd_out_micro = micro_of(json_object_get(v, "usd_per_mtok_out"));
        m->from_plan = 1;
    }
    p->has_models = p->nmodels > 0;
    plan_default_table(p);
    json_array_foreach(live->swarms, i, v) {
        struct plan_swarm *sw = plan_add_swarm(p);
        struct swarm_spec *s = &sw->spec;
        s->id = xstrdup(jstr(v, "id"));
        if (*jstr(v, "role"))
            s->role = xstrdup(jstr(v, "role"));
        int rel = relation_parse(jstr(v, "relation"));
        s->relation = rel < 0 ? REL_PEER : rel;
        json_strvec(json_object_get(v, "capabilities"), &s->caps);
        s->budget_micro = micro_of(json_object_get(v, "budget"));
        sw->has_budget = s->budget_micro > 0;
        if (*jstr(v, "branch"))
            s->branch = xstrdup(jstr(v, "branch"));
        json_t *c = json_object_get(live->contracts, s->id);
        if (json_is_object(c)) {
            struct plan_contract *pc = &sw->contract;
            pc->present = 1;
            if (*jstr(c, "version"))
                pc->version = xstrdup(jstr(c, "version"));
            json_strvec(json_object_get(c, "capabilities"), &pc->caps);
            for (int k = 0; k < PL_NLIMITS; k++)
                pc->limits[k] = jint(json_object_get(c, "limits"), plan_limit_names[k]);
            for (int k = 0; k < PS_NSLOS; k++) {
                json_t *x = json_object_get(json_object_get(c, "slos"), plan_slo_names[k]);
                pc->slos[k] = json_is_number(x) ? json_number_value(x) : -1;
            }
            json_strvec(json_object_get(c, "network"), &pc->network);
            json_strvec(json_object_get(c, "secrets"), &pc->secrets);
        }
        json_t *idle = json_object_get(live->idle, s->id);
        if (json_is_array(idle)) {
            uint32_t si = (uint32_t)(p->nswarms - 1);
            size_t k;
            json_t *it;
            p->swarms[si].has_idle = 1;
            p->swarms[si].idle0 = p->nidle;
            json_array_foreach(idle, k, it)
                task_from_json(plan_add_idle(p), it, 1, si, p->swarms[si].spec.id);
            p->swarms[si].nidle = p->nidle - p->swarms[si].idle0;
        }
    }
    /* agents and tasks, grouped by swarm in the swarms' order */
    for (size_t si = 0; si < p->nswarms; si++) {
        struct plan_swarm *sw = &p->swarms[si];
        sw->agent0 = p->nagents;
        json_array_foreach(live->agents, i, v) {
            if (strcmp(jstr(v, "swarm"), sw->spec.id))
                continue;
            struct plan_agent *a = plan_add_agent(p);
            a->swarm = (uint32_t)si;
            a->spec.id = xstrdup(jstr(v, "id"));
            a->spec.swarm = xstrdup(sw->spec.id);
            if (*jstr(v, "model"))
                a->spec.model = xstrdup(jstr(v, "model"));
            json_strvec(json_object_get(v, "capabilities"), &a->spec.caps);
            if (json_object_get(v, "max_leases")) {
                a->spec.max_leases = jint(v, "max_leases");
                a->has_max_leases = a->spec.max_leases != 1;
            }
        }
        sw->nagents = p->nagents - sw->agent0;
        sw->task0 = p->ntasks;
        json_array_foreach(live->tasks, i, v) {
            if (strcmp(jstr(v, "swarm"), sw->spec.id))
                continue;
            task_from_json(plan_add_task(p), v, 0, (uint32_t)si, sw->spec.id);
        }
        sw->ntasks = p->ntasks - sw->task0;
        /* count distinct phases */
        int64_t *ph = xcalloc(sw->ntasks + 1, sizeof *ph);
        for (size_t k = 0; k < sw->ntasks; k++)
            ph[k] = p->tasks[sw->task0 + k].spec.phase;
        qsort(ph, sw->ntasks, sizeof *ph, cmp_i64);
        for (size_t k = 0; k < sw->ntasks; k++)
            sw->nphases += !k || ph[k] != ph[k - 1];
        free(ph);
    }
}
