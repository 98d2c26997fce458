/* plan_check.c: the rules a plan is held to as a whole, once each part has been read: ids
 * unique, references resolved (with a suggestion for typos), no dependency cycle (phase
 * barriers included, since they make tasks wait too), capabilities and tiers that some
 * agent can meet, budgets that cover what the tasks may cost. Every error is reported; the
 * checks never stop at the first. */
#include "plan.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

static struct plan_pos pos_or(struct plan_pos a, struct plan_pos b)
{
    return a.line ? a : b;
}

static void usd(char *out, size_t n, int64_t micro)
{
    snprintf(out, n, "$%.2f", (double)micro / (double)S2_MICRO);
}

/* A suggestion for s among cand, within the plan's budget of searches. */
static const char *suggest(struct plan *p, const char *s, const char *const *cand, size_t n)
{
    if (p->suggestions >= PLAN_SUGGEST_MAX)
        return NULL;
    p->suggestions++;
    return plan_suggest(s, cand, n);
}

/* " (did you mean 'x'?)" or "" */
static const char *dym(char *out, size_t n, const char *s)
{
    if (s)
        snprintf(out, n, " (did you mean '%s'?)", s);
    else
        out[0] = 0;
    return out;
}

/* ---- cycles ---- */

/* The wait-for graph: tasks 0..nt-1, then one gate per (swarm, phase after its first): the
 * gate of phase k waits for every task of the phase before and for that phase's gate, and
 * each barrier task of phase k waits for its gate. Edges in CSR form. */
struct graph {
    size_t nt, n;
    size_t *off; /* n + 1 */
    uint32_t *to;
    /* per gate: its swarm and the phases it joins (for messages) */
    struct gate {
        uint32_t swarm;
        int64_t phase, prev;
    } *gates;
    /* per task: which depends_on entry an edge came from (-1: the phase gate) */
    int32_t *via;
};

struct edge {
    uint32_t from, to;
    int32_t via;
};

static int cmp_u32_by_swarm_phase(const void *a, const void *b, void *ctx)
{
    const struct plan *p = ctx;
    const struct plan_task *x = &p->tasks[*(const uint32_t *)a], *y = &p->tasks[*(const uint32_t *)b];
    if (x->swarm != y->swarm)
        return x->swarm < y->swarm ? -1 : 1;
    if (x->spec.phase != y->spec.phase)
        return x->spec.phase < y->spec.phase ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static void build_graph(const struct plan *p, struct map *task_ix, struct graph *g)
{
    size_t nt = p->ntasks;
    struct edge *e = NULL;
    size_t ne = 0, ecap = 0;
    uint32_t *order = xcalloc(nt ? nt : 1, sizeof *order);
    for (size_t i = 0; i < nt; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, nt, sizeof *order, cmp_u32_by_swarm_phase, (void *)p);
    memset(g, 0, sizeof *g);
    g->nt = nt;
    size_t ngates = 0, gcap = 0;
    for (size_t i = 0; i < nt; i++) {
        const struct plan_task *t = &p->tasks[i];
        for (size_t k = 0; k < t->spec.depends_on.n; k++) {
            uint32_t d = map_get(task_ix, t->spec.depends_on.v[k]);
            if (d == MAP_NONE || d >= nt)
                continue;
            e = xgrow(e, sizeof *e, ne + 1, &ecap);
            e[ne++] = (struct edge){(uint32_t)i, d, (int32_t)k};
        }
    }
    /* walk each swarm's tasks phase by phase */
    for (size_t i = 0; i < nt;) {
        uint32_t sw = p->tasks[order[i]].swarm;
        size_t prev_start = 0, prev_end = 0; /* the previous phase's run in order[] */
        uint32_t prev_gate = UINT32_MAX;
        int have_prev = 0;
        while (i < nt && p->tasks[order[i]].swarm == sw) {
            int64_t ph = p->tasks[order[i]].spec.phase;
            size_t start = i;
            while (i < nt && p->tasks[order[i]].swarm == sw && p->tasks[order[i]].spec.phase == ph)
                i++;
            uint32_t gate = UINT32_MAX;
            if (have_prev) {
                gate = (uint32_t)(nt + ngates);
                g->gates = xgrow(g->gates, sizeof *g->gates, ngates + 1, &gcap);
                g->gates[ngates].swarm = sw;
                g->gates[ngates].phase = ph;
                g->gates[ngates].prev = p->tasks[order[prev_start]].spec.phase;
                ngates++;
                for (size_t k = prev_start; k < prev_end; k++) {
                    e = xgrow(e, sizeof *e, ne + 1, &ecap);
                    e[ne++] = (struct edge){gate, order[k], -1};
                }
                if (prev_gate != UINT32_MAX) {
                    e = xgrow(e, sizeof *e, ne + 1, &ecap);
                    e[ne++] = (struct edge){gate, prev_gate, -1};
                }
                for (size_t k = start; k < i; k++)
                    if (p->tasks[order[k]].spec.phase_barrier) {
                        e = xgrow(e, sizeof *e, ne + 1, &ecap);
                        e[ne++] = (struct edge){order[k], gate, -1};
                    }
            }
            prev_start = start;
            prev_end = i;
            prev_gate = gate;
            have_prev = 1;
        }
    }
    g->n = nt + ngates;
    g->off = xcalloc(g->n + 1, sizeof *g->off);
    g->to = xcalloc(ne ? ne : 1, sizeof *g->to);
    g->via = xcalloc(ne ? ne : 1, sizeof *g->via);
    for (size_t k = 0; k < ne; k++)
        g->off[e[k].from + 1]++;
    for (size_t k = 0; k < g->n; k++)
        g->off[k + 1] += g->off[k];
    size_t *fill = xcalloc(g->n + 1, sizeof *fill);
    for (size_t k = 0; k < ne; k++) {
        size_t at = g->off[e[k].from] + fill[e[k].from]++;
        g->to[at] = e[k].to;
        g->via[at] = e[k].via;
    }
    free(fill);
    free(e);
    free(order);
}

static void graph_release(struct graph *g)
{
    free(g->off);
    free(g->to);
    free(g->via);
    free(g->gates);
}

static void node_name(const struct plan *p, const struct graph *g, uint32_t v, struct buf *b)
{
    if (v < g->nt) {
        buf_adds(b, p->tasks[v].spec.id ? p->tasks[v].spec.id : "(a task without id)");
        return;
    }
    size_t k = v - g->nt;
    const char *sw = p->swarms[g->gates[k].swarm].spec.id;
    buf_addf(b, "[phase %lld of swarm '%s' waits for phase %lld]", (long long)g->gates[k].phase,
             sw ? sw : "?", (long long)g->gates[k].prev);
}

/* Report one cycle per strongly connected component that has one (Tarjan, iterative). */
static void find_cycles(struct plan *p, struct map *task_ix)
{
    struct graph g;
    build_graph(p, task_ix, &g);
    size_t n = g.n;
    uint32_t *index = xcalloc(n ? n : 1, sizeof *index), *low = xcalloc(n ? n : 1, sizeof *low);
    uint32_t *comp = xcalloc(n ? n : 1, sizeof *comp);
    uint8_t *on = xcalloc(n ? n : 1, 1);
    uint32_t *stack = xcalloc(n ? n : 1, sizeof *stack);
    struct {
        uint32_t v;
        size_t e;
    } *call = xcalloc(n ? n : 1, sizeof *call);
    size_t sp = 0, cp = 0;
    uint32_t next = 1, ncomp = 0;
    uint32_t *members = xcalloc(n ? n : 1, sizeof *members);
    uint32_t *prev = xcalloc(n ? n : 1, sizeof *prev), *queue = xcalloc(n ? n : 1, sizeof *queue);
    for (size_t r = 0; r < n; r++) {
        if (index[r])
            continue;
        call[cp].v = (uint32_t)r, call[cp].e = g.off[r], cp++;
        index[r] = low[r] = next++;
        stack[sp++] = (uint32_t)r, on[r] = 1;
        while (cp) {
            uint32_t v = call[cp - 1].v;
            if (call[cp - 1].e < g.off[v + 1]) {
                uint32_t w = g.to[call[cp - 1].e++];
                if (!index[w]) {
                    index[w] = low[w] = next++;
                    stack[sp++] = w, on[w] = 1;
                    call[cp].v = w, call[cp].e = g.off[w], cp++;
                } else if (on[w] && index[w] < low[v]) {
                    low[v] = index[w];
                }
                continue;
            }
            cp--;
            if (cp && low[v] < low[call[cp - 1].v])
                low[call[cp - 1].v] = low[v];
            if (low[v] != index[v])
                continue;
            /* v roots a component: pop it */
            size_t nm = 0;
            uint32_t c = ++ncomp, w;
            do {
                w = stack[--sp];
                on[w] = 0;
                comp[w] = c;
                members[nm++] = w;
            } while (w != v);
            uint32_t start = UINT32_MAX;
            for (size_t k = 0; k < nm; k++)
                if (members[k] < g.nt && members[k] < start)
                    start = members[k];
            int self = 0;
            if (nm == 1 && start != UINT32_MAX)
                for (size_t k = g.off[start]; k < g.off[start + 1]; k++)
                    self |= g.to[k] == start;
            if (start == UINT32_MAX || (nm == 1 && !self))
                continue;
            /* the shortest way round from start, inside the component (BFS) */
            size_t qh = 0, qt = 0;
            uint32_t last = UINT32_MAX;
            for (size_t k = 0; k < nm; k++)
                prev[members[k]] = UINT32_MAX;
            queue[qt++] = start;
            prev[start] = start;
            while (qh < qt && last == UINT32_MAX) {
                uint32_t u = queue[qh++];
                for (size_t k = g.off[u]; k < g.off[u + 1]; k++) {
                    uint32_t x = g.to[k];
                    if (comp[x] != c)
                        continue;
                    if (x == start) {
                        last = u;
                        break;
                    }
                    if (prev[x] == UINT32_MAX) {
                        prev[x] = u;
                        queue[qt++] = x;
                    }
                }
            }
            /* path start -> ... -> last -> start */
            size_t len = 0;
            for (uint32_t x = last; x != start; x = prev[x])
                queue[len++] = x;
            struct buf b = BUF_INIT;
            node_name(p, &g, start, &b);
            for (size_t k = len; k-- > 0;) {
                buf_adds(&b, " -> ");
                node_name(p, &g, queue[k], &b);
            }
            buf_adds(&b, " -> ");
            node_name(p, &g, start, &b);
            /* point at the depends_on entry that leaves start */
            uint32_t second = len ? queue[len - 1] : start;
            struct plan_task *t = &p->tasks[start];
            struct plan_pos where = pos_or(t->id_at, t->at);
            for (size_t k = g.off[start]; k < g.off[start + 1]; k++)
                if (g.to[k] == second && g.via[k] >= 0 && t->dep_at)
                    where = pos_or(t->dep_at[g.via[k]], where);
            plan_errorf(p, where, "dependency cycle: %s (each waits for the next)", b.ptr);
            buf_release(&b);
        }
    }
    free(index);
    free(low);
    free(comp);
    free(on);
    free(stack);
    free(call);
    free(members);
    free(prev);
    free(queue);
    graph_release(&g);
}

/* ---- the checks ---- */

/* The tier of an agent: its model's, or the default model's (lowest tier, then cheapest);
 * -1 when its model is unknown. */
static int64_t agent_tier(const struct plan *p, const struct plan_agent *a)
{
    if (a->spec.model) {
        long m = plan_find_model(p, a->spec.model);
        return m < 0 ? -1 : p->models[m].spec.tier;
    }
    const struct plan_model *best = NULL;
    for (size_t i = 0; i < p->nmodels; i++) {
        const struct plan_model *m = &p->models[i];
        if (!best || m->spec.tier < best->spec.tier ||
            (m->spec.tier == best->spec.tier &&
             m->spec.usd_in_micro + m->spec.usd_out_micro <
                 best->spec.usd_in_micro + best->spec.usd_out_micro))
            best = m;
    }
    return best ? best->spec.tier : 0;
}

static void check_task(struct plan *p, struct plan_task *t, int idle, const struct map *caps,
                       const char *const *capv, size_t ncap, int64_t top, const char *top_name,
                       const struct plan_policy_eff *pol, struct map *task_ix,
                       const char *const *taskv, size_t ntaskv)
{
    const char *kind = idle ? "idle task" : "task";
    char sug[200], anon[160];
    const char *id = t->spec.id;
    if (!id && !idle)
        return; /* reported when it was read */
    if (!id) { /* idle tasks need no id: name it by its title */
        snprintf(anon, sizeof anon, "%.100s", t->spec.title ? t->spec.title : "?");
        id = anon;
    }
    for (size_t k = 0; k < t->spec.requires.n; k++) {
        const char *c = t->spec.requires.v[k];
        if (map_get(caps, c) != MAP_NONE)
            continue;
        plan_errorf(p, pos_or(t->req_at ? t->req_at[k] : t->at, t->at),
                    "%s '%s' requires '%s', which no swarm or agent in the plan has%s", kind, id,
                    c, dym(sug, sizeof sug, suggest(p, c, capv, ncap)));
    }
    if (t->spec.min_tier > top)
        plan_errorf(p, pos_or(t->min_tier_at, t->at),
                    "%s '%s': min_tier %lld is above the top tier of the model table (%lld, %s)",
                    kind, id, (long long)t->spec.min_tier, (long long)top, top_name);
    for (size_t k = 0; k < t->spec.depends_on.n; k++) {
        const char *d = t->spec.depends_on.v[k];
        struct plan_pos where = pos_or(t->dep_at ? t->dep_at[k] : t->at, t->at);
        uint32_t di = map_get(task_ix, d);
        if (di == MAP_NONE)
            plan_errorf(p, where, "task '%s' depends on unknown task '%s'%s", id, d,
                        dym(sug, sizeof sug, suggest(p, d, taskv, ntaskv)));
        else if (di >= p->ntasks)
            plan_errorf(p, where,
                        "task '%s' depends on '%s', an idle task (idle tasks are done only when "
                        "there is nothing else; nothing may wait for one)",
                        id, d);
    }
    /* some agent of its swarm must be able to take it */
    const struct plan_swarm *sw = &p->swarms[t->swarm];
    if (!sw->nagents || t->spec.min_tier > top)
        return;
    int64_t best_tier = -1;
    double best_match = -1;
    for (size_t a = sw->agent0; a < sw->agent0 + sw->nagents; a++) {
        int64_t tier = agent_tier(p, &p->agents[a]);
        if (tier < 0)
            return; /* an unknown model: already reported, and no verdict possible */
        double m = plan_match(&t->spec.requires, &p->agents[a].spec.caps);
        if (tier >= t->spec.min_tier && m + 1e-9 >= pol->min_capability_match)
            return;
        if (tier > best_tier)
            best_tier = tier;
        if (m > best_match)
            best_match = m;
    }
    plan_errorf(p, pos_or(t->id_at, t->at),
                "%s '%s': no agent of swarm '%s' can take it (it needs tier >= %lld and %.0f%% of "
                "its %zu required capabilities; the swarm's agents reach tier %lld and %.0f%%)",
                kind, id, sw->spec.id ? sw->spec.id : "?", (long long)t->spec.min_tier,
                pol->min_capability_match * 100, t->spec.requires.n, (long long)best_tier,
                best_match * 100);
}

static int64_t task_cost(const struct plan_task *t, const struct plan_policy_eff *pol)
{
    return t->spec.max_cost_micro > 0 ? t->spec.max_cost_micro : pol->max_cost_per_task_micro;
}

int plan_check(struct plan *p)
{
    size_t before = p->nerrors + p->errors_dropped;
    struct plan_policy_eff pol;
    plan_policy_effective(&p->policy, &pol);
    struct map swarm_ix, agent_ix, task_ix, caps;
    map_init(&swarm_ix);
    map_init(&agent_ix);
    map_init(&task_ix);
    map_init(&caps);
    struct strvec capv = STRVEC_INIT;
    const char **taskv = xcalloc(p->ntasks + 1, sizeof *taskv);
    size_t ntaskv = 0;
    char sug[200];

    /* ids: unique per kind; tasks and idle tasks share one namespace */
    for (size_t i = 0; i < p->nswarms; i++) {
        struct plan_swarm *s = &p->swarms[i];
        if (!s->spec.id)
            continue;
        uint32_t j = map_get(&swarm_ix, s->spec.id);
        if (j != MAP_NONE)
            plan_errorf(p, pos_or(s->id_at, s->at), "swarm id '%s' is used twice (first at %u:%u)",
                        s->spec.id, p->swarms[j].id_at.line, p->swarms[j].id_at.col);
        else
            map_put(&swarm_ix, s->spec.id, (uint32_t)i);
        for (size_t k = 0; k < s->spec.caps.n; k++)
            if (map_get(&caps, s->spec.caps.v[k]) == MAP_NONE) {
                map_put(&caps, s->spec.caps.v[k], 1);
                strvec_push(&capv, s->spec.caps.v[k]);
            }
    }
    for (size_t i = 0; i < p->nagents; i++) {
        struct plan_agent *a = &p->agents[i];
        if (!a->spec.id)
            continue;
        uint32_t j = map_get(&agent_ix, a->spec.id);
        if (j != MAP_NONE)
            plan_errorf(p, pos_or(a->id_at, a->at), "agent id '%s' is used twice (first at %u:%u)",
                        a->spec.id, p->agents[j].id_at.line, p->agents[j].id_at.col);
        else
            map_put(&agent_ix, a->spec.id, (uint32_t)i);
        for (size_t k = 0; k < a->spec.caps.n; k++)
            if (map_get(&caps, a->spec.caps.v[k]) == MAP_NONE) {
                map_put(&caps, a->spec.caps.v[k], 1);
                strvec_push(&capv, a->spec.caps.v[k]);
            }
    }
    for (size_t i = 0; i < p->ntasks + p->nidle; i++) {
        struct plan_task *t = i < p->ntasks ? &p->tasks[i] : &p->idle[i - p->ntasks];
        if (!t->spec.id)
            continue;
        uint32_t j = map_get(&task_ix, t->spec.id);
        if (j != MAP_NONE) {
            const struct plan_task *f = j < p->ntasks ? &p->tasks[j] : &p->idle[j - p->ntasks];
            plan_errorf(p, pos_or(t->id_at, t->at), "task id '%s' is used twice (first at %u:%u)",
                        t->spec.id, f->id_at.line, f->id_at.col);
            continue;
        }
        map_put(&task_ix, t->spec.id, (uint32_t)i);
        if (i < p->ntasks)
            taskv[ntaskv++] = t->spec.id;
    }

    /* agents: known model, capabilities within their swarm's */
    const char **modelv = xcalloc(p->nmodels + 1, sizeof *modelv);
    for (size_t i = 0; i < p->nmodels; i++)
        modelv[i] = p->models[i].spec.name;
    for (size_t i = 0; i < p->nagents; i++) {
        struct plan_agent *a = &p->agents[i];
        const struct plan_swarm *s = &p->swarms[a->swarm];
        const char *id = a->spec.id ? a->spec.id : "?";
        if (a->spec.model && plan_find_model(p, a->spec.model) < 0)
            plan_errorf(p, pos_or(a->model_at, a->at), "agent '%s': unknown model '%s'%s", id,
                        a->spec.model,
                        dym(sug, sizeof sug,
                            suggest(p, a->spec.model, modelv, p->nmodels)));
        for (size_t k = 0; k < a->spec.caps.n; k++) {
            const char *c = a->spec.caps.v[k];
            if (strvec_find(&s->spec.caps, c) >= 0)
                continue;
            plan_errorf(p, pos_or(a->cap_at ? a->cap_at[k] : a->at, a->at),
                        "agent '%s': capability '%s' is not among those of its swarm '%s'%s", id,
                        c, s->spec.id ? s->spec.id : "?",
                        dym(sug, sizeof sug,
                            suggest(p, c, (const char *const *)s->spec.caps.v, s->spec.caps.n)));
        }
    }
    free(modelv);

    /* contracts: about their own swarm, granting only its capabilities */
    for (size_t i = 0; i < p->nswarms; i++) {
        struct plan_swarm *s = &p->swarms[i];
        struct plan_contract *c = &s->contract;
        if (!c->present || !s->spec.id)
            continue;
        if (c->swarm && strcmp(c->swarm, s->spec.id))
            plan_errorf(p, c->at,
                        "contract of swarm '%s' names swarm '%s': a contract inside a swarm is "
                        "that swarm's",
                        s->spec.id, c->swarm);
        for (size_t k = 0; k < c->caps.n; k++)
            if (strvec_find(&s->spec.caps, c->caps.v[k]) < 0)
                plan_errorf(p, pos_or(c->cap_at ? c->cap_at[k] : c->at, c->at),
                            "contract of swarm '%s': capability '%s' is not among the swarm's%s",
                            s->spec.id, c->caps.v[k],
                            dym(sug, sizeof sug,
                                suggest(p, c->caps.v[k], (const char *const *)s->spec.caps.v,
                                        s->spec.caps.n)));
    }

    /* tasks: capabilities someone has, tiers that exist, dependencies that resolve */
    int64_t top = plan_top_tier(p);
    const char *top_name = "none";
    for (size_t i = 0; i < p->nmodels; i++)
        if (p->models[i].spec.tier == top) {
            top_name = p->models[i].spec.name;
            break;
        }
    for (size_t i = 0; i < p->ntasks; i++)
        check_task(p, &p->tasks[i], 0, &caps, (const char *const *)capv.v, capv.n, top, top_name,
                   &pol, &task_ix, taskv, ntaskv);
    for (size_t i = 0; i < p->nidle; i++)
        check_task(p, &p->idle[i], 1, &caps, (const char *const *)capv.v, capv.n, top, top_name,
                   &pol, &task_ix, taskv, ntaskv);
    /* a task without an id cannot be waited for, so every task on a cycle has one */
    find_cycles(p, &task_ix);

    /* budgets: a swarm's must cover what its tasks may cost (claims reserve max_cost, or
     * the policy's max_cost_per_task). Idle tasks are not counted: the coordinator hands
     * them out again and again while the budget allows, so they have no total to check. */
    char b1[32], b2[32], b3[32];
    int64_t all = 0;
    for (size_t i = 0; i < p->nswarms; i++) {
        struct plan_swarm *s = &p->swarms[i];
        int64_t sum = 0;
        size_t n = 0, defaulted = 0;
        for (size_t k = 0; k < p->ntasks; k++) {
            const struct plan_task *t = &p->tasks[k];
            if (t->swarm != i)
                continue;
            sum += task_cost(t, &pol);
            n++;
            defaulted += t->spec.max_cost_micro <= 0;
        }
        all += sum;
        if (!s->has_budget || s->spec.budget_micro <= 0 || sum <= s->spec.budget_micro)
            continue;
        usd(b1, sizeof b1, s->spec.budget_micro);
        usd(b2, sizeof b2, sum);
        usd(b3, sizeof b3, pol.max_cost_per_task_micro);
        if (defaulted)
            plan_errorf(p, pos_or(s->budget_at, s->at),
                        "swarm '%s': budget %s is below the %s its %zu tasks may cost (%zu of "
                        "them without max_cost count the policy's max_cost_per_task, %s)",
                        s->spec.id ? s->spec.id : "?", b1, b2, n, defaulted, b3);
        else
            plan_errorf(p, pos_or(s->budget_at, s->at),
                        "swarm '%s': budget %s is below the %s its %zu tasks may cost (the sum "
                        "of their max_cost)",
                        s->spec.id ? s->spec.id : "?", b1, b2, n);
    }
    const struct plan_policy_value *gb = &p->policy.v[PK_GLOBAL_BUDGET];
    if (gb->set && gb->i > 0 && all > gb->i) {
        usd(b1, sizeof b1, gb->i);
        usd(b2, sizeof b2, all);
        plan_errorf(p, gb->at, "policy: global_budget %s is below the %s all tasks may cost", b1,
                    b2);
    }

    free(taskv);
    strvec_release(&capv);
    map_release(&swarm_ix);
    map_release(&agent_ix);
    map_release(&task_ix);
    map_release(&caps);
    return p->nerrors + p->errors_dropped > before ? -1 : 0;
}
