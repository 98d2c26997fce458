/* sim.c: the plan simulator. Time is in hours; events are agents finishing what they do
 * (a task, a stretch of help, an idle task), kept in a heap ordered by time then agent
 * index, so that ties always resolve the same way. Randomness comes only from our own
 * PRNG (xoshiro256**, seeded by splitmix64 from --seed) and is drawn in event order: the
 * same seed gives the same run, byte for byte. Never touches a server or the clock. */
#include "sim.h"
#include "util/heap.h"
#include "util/xalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

#define NONE UINT32_MAX
#define EPS 1e-9

/* ---- PRNG ---- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* uniform in [0, 1) */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- state ---- */

enum { T_PENDING, T_READY, T_RUNNING, T_DONE };
enum { A_FREE, A_WORK, A_HELP, A_IDLE };

struct stask {
    const struct plan_task *pt;
    uint32_t swarm;
    int state;
    int cross;     /* a task of another swarm waits for it */
    double est;    /* reference hours */
    double start, finish;
    uint32_t owner;
    double work, rate, last; /* remaining reference hours, progress per hour, as of last */
    uint32_t *helpers;
    size_t nhelpers;
    uint32_t run_pos; /* in the running list */
};

struct sagent {
    char *id;
    uint32_t swarm;
    const struct strvec *caps;
    const struct plan_model *model;
    double speed, usd_h;
    int state;
    uint32_t what; /* task or idle task index */
    double start, until;
    uint32_t heap_pos;
    double h[3]; /* work, help, idle hours */
    size_t ntasks, nidle, nhelped;
};

struct sswarm {
    struct heap ready;
    uint32_t a0, na; /* its agents: sim.a[a0 .. a0 + na) */
    size_t nfree, remaining, running;
    uint8_t *idle_taken;
    double blocked_h, finished;
};

struct sim {
    const struct plan *p;
    const struct sim_opts *o;
    struct plan_policy_eff pol;
    size_t nt, nn;    /* tasks, nodes (tasks, then phase gates) */
    size_t *soff;     /* successors of each node, CSR */
    uint32_t *succ;
    uint32_t *unmet;  /* per node: predecessors not complete */
    uint32_t *pred;   /* per node: the predecessor that completed last */
    double *bl;       /* per node: bottom level (longest remaining path, reference hours) */
    struct stask *t;
    struct sagent *a;
    size_t na;
    struct sswarm *s;
    struct heap events;
    uint32_t *running;
    size_t nrunning;
    uint32_t *stack; /* for complete() */
    struct rng rng;
    double now;
    struct sim_result *r;
};

void sim_opts_init(struct sim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->policy = SIM_GANG_UP;
    o->seed = 1;
    o->jitter = SIM_DEFAULT_JITTER;
    o->help_efficiency = SIM_DEFAULT_HELP_EFFICIENCY;
}

const char *sim_policy_name(int policy)
{
    return policy == SIM_IDLE ? "idle" : "gang-up";
}

int sim_policy_parse(const char *s)
{
    if (!strcmp(s, "idle"))
        return SIM_IDLE;
    if (!strcmp(s, "gang-up"))
        return SIM_GANG_UP;
    return -1;
}

static double tier_speed(int64_t tier)
{
    return tier <= 1 ? SIM_SPEED_TIER1 : tier == 2 ? SIM_SPEED_TIER2 : SIM_SPEED_TIER3;
}

static double hourly_usd(const struct plan_model *m)
{
    return (SIM_MTOK_IN_PER_H * (double)m->spec.usd_in_micro +
            SIM_MTOK_OUT_PER_H * (double)m->spec.usd_out_micro) /
           (double)S2_MICRO;
}

/* ---- heaps ---- */

static int ready_less(void *ctx, uint32_t x, uint32_t y)
{
    struct sim *S = ctx;
    if (S->bl[x] != S->bl[y])
        return S->bl[x] > S->bl[y];
    int64_t px = S->t[x].pt->spec.priority, py = S->t[y].pt->spec.priority;
    if (px != py)
        return px > py;
    return x < y;
}

static void ready_pos(void *ctx, uint32_t item, uint32_t pos)
{
    (void)ctx, (void)item, (void)pos;
}

static int event_less(void *ctx, uint32_t x, uint32_t y)
{
    struct sim *S = ctx;
    if (S->a[x].until != S->a[y].until)
        return S->a[x].until < S->a[y].until;
    return x < y;
}

static void event_pos(void *ctx, uint32_t item, uint32_t pos)
{
    struct sim *S = ctx;
    S->a[item].heap_pos = pos;
}

/* ---- building ---- */

struct edge {
    uint32_t from, to;
};

static int cmp_swarm_phase(const void *x, const void *y, void *ctx)
{
    const struct plan *p = ctx;
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    const struct plan_task *ta = &p->tasks[a], *tb = &p->tasks[b];
    if (ta->swarm != tb->swarm)
        return ta->swarm < tb->swarm ? -1 : 1;
    if (ta->spec.phase != tb->spec.phase)
        return ta->spec.phase < tb->spec.phase ? -1 : 1;
    return a < b ? -1 : a > b;
}

static void add_edge(struct edge **e, size_t *n, size_t *cap, uint32_t from, uint32_t to)
{
    *e = xgrow(*e, sizeof **e, *n + 1, cap);
    (*e)[(*n)++] = (struct edge){from, to};
}

/* The wait-for graph: dependencies, and phase gates (the gate of a swarm's phase k
 * completes when every task of its earlier phases is done; barrier tasks wait for it). */
static void build_graph(struct sim *S)
{
    const struct plan *p = S->p;
    size_t nt = p->ntasks, ne = 0, ecap = 0, ng = 0;
    struct edge *e = NULL;
    struct map ix;
    map_init(&ix);
    for (size_t i = 0; i < nt; i++)
        map_put(&ix, p->tasks[i].spec.id, (uint32_t)i);
    for (size_t i = 0; i < nt; i++) {
        const struct strvec *d = &p->tasks[i].spec.depends_on;
        for (size_t k = 0; k < d->n; k++) {
            uint32_t j = map_get(&ix, d->v[k]);
            if (j != MAP_NONE && j < nt)
                add_edge(&e, &ne, &ecap, j, (uint32_t)i);
        }
    }
    map_release(&ix);
    uint32_t *order = xcalloc(nt + 1, sizeof *order);
    for (size_t i = 0; i < nt; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, nt, sizeof *order, cmp_swarm_phase, (void *)p);
    for (size_t i = 0; i < nt;) {
        uint32_t sw = p->tasks[order[i]].swarm;
        size_t prev_start = 0, prev_end = 0;
        uint32_t prev_gate = NONE;
        int have_prev = 0;
        while (i < nt && p->tasks[order[i]].swarm == sw) {
            int64_t ph = p->tasks[order[i]].spec.phase;
            size_t start = i;
            while (i < nt && p->tasks[order[i]].swarm == sw && p->tasks[order[i]].spec.phase == ph)
                i++;
            uint32_t gate = NONE;
            if (have_prev) {
                gate = (uint32_t)(nt + ng++);
                for (size_t k = prev_start; k < prev_end; k++)
                    add_edge(&e, &ne, &ecap, order[k], gate);
                if (prev_gate != NONE)
                    add_edge(&e, &ne, &ecap, prev_gate, gate);
                for (size_t k = start; k < i; k++)
                    if (p->tasks[order[k]].spec.phase_barrier)
                        add_edge(&e, &ne, &ecap, gate, order[k]);
            }
            prev_start = start;
            prev_end = i;
            prev_gate = gate;
            have_prev = 1;
        }
    }
    free(order);
    S->nt = nt;
    S->nn = nt + ng;
    S->soff = xcalloc(S->nn + 1, sizeof *S->soff);
    S->succ = xcalloc(ne + 1, sizeof *S->succ);
    S->unmet = xcalloc(S->nn + 1, sizeof *S->unmet);
    S->pred = xcalloc(S->nn + 1, sizeof *S->pred);
    S->bl = xcalloc(S->nn + 1, sizeof *S->bl);
    for (size_t k = 0; k < ne; k++) {
        S->soff[e[k].from + 1]++;
        S->unmet[e[k].to]++;
    }
    for (size_t k = 0; k < S->nn; k++)
        S->soff[k + 1] += S->soff[k];
    size_t *fill = xcalloc(S->nn + 1, sizeof *fill);
    for (size_t k = 0; k < ne; k++)
        S->succ[S->soff[e[k].from] + fill[e[k].from]++] = e[k].to;
    free(fill);
    free(e);
    for (size_t v = 0; v < S->nn; v++)
        S->pred[v] = NONE;

    /* bottom levels, in reverse topological order (Kahn); the plan is valid, so acyclic */
    uint32_t *deg = xcalloc(S->nn + 1, sizeof *deg), *topo = xcalloc(S->nn + 1, sizeof *topo);
    memcpy(deg, S->unmet, S->nn * sizeof *deg);
    size_t head = 0, tail = 0;
    for (size_t v = 0; v < S->nn; v++)
        if (!deg[v])
            topo[tail++] = (uint32_t)v;
    while (head < tail) {
        uint32_t v = topo[head++];
        for (size_t k = S->soff[v]; k < S->soff[v + 1]; k++)
            if (--deg[S->succ[k]] == 0)
                topo[tail++] = S->succ[k];
    }
    for (size_t i = tail; i-- > 0;) {
        uint32_t v = topo[i];
        double best = 0;
        for (size_t k = S->soff[v]; k < S->soff[v + 1]; k++)
            if (S->bl[S->succ[k]] > best)
                best = S->bl[S->succ[k]];
        S->bl[v] = best + (v < nt ? p->tasks[v].spec.estimate_h : 0);
    }
    free(deg);
    free(topo);
}

/* The model an agent runs on: its own, or the default (lowest tier, then cheapest). */
static const struct plan_model *agent_model(const struct plan *p, const struct plan_agent *a)
{
    if (a && a->spec.model) {
        long m = plan_find_model(p, a->spec.model);
        if (m >= 0)
            return &p->models[m];
    }
    const struct plan_model *best = NULL;
    for (size_t i = 0; i < p->nmodels; i++) {
        const struct plan_model *m = &p->models[i];
        if (!best || m->spec.tier < best->spec.tier ||
            (m->spec.tier == best->spec.tier && hourly_usd(m) < hourly_usd(best)))
            best = m;
    }
    return best;
}

static const struct plan_model *top_model(const struct plan *p)
{
    const struct plan_model *best = NULL;
    for (size_t i = 0; i < p->nmodels; i++) {
        const struct plan_model *m = &p->models[i];
        if (!best || m->spec.tier > best->spec.tier ||
            (m->spec.tier == best->spec.tier && hourly_usd(m) > hourly_usd(best)))
            best = m;
    }
    return best;
}

static int build_agents(struct sim *S, struct s2_error *err)
{
    const struct plan *p = S->p;
    long n = S->o->agents_per_swarm;
    const struct plan_model *top = top_model(p);
    size_t cap = 0;
    for (size_t si = 0; si < p->nswarms; si++) {
        const struct plan_swarm *sw = &p->swarms[si];
        struct sswarm *ss = &S->s[si];
        size_t nplan = 0;
        for (size_t i = 0; i < p->nagents; i++)
            nplan += p->agents[i].swarm == si;
        size_t want = n > 0 ? (size_t)n : nplan;
        int has_work = sw->ntasks || sw->nidle;
        for (size_t i = 0; i < p->ntasks && !has_work; i++)
            has_work = p->tasks[i].swarm == si;
        if (!want && has_work)
            return s2_fail(err, S2_EINVAL, "no_agents",
                           "swarm '%s' has tasks but no agents to simulate: add agents to the "
                           "plan or pass --agents-per-swarm N",
                           sw->spec.id);
        ss->a0 = (uint32_t)S->na;
        const struct plan_agent **mine = xcalloc(nplan + 1, sizeof *mine);
        size_t k = 0;
        for (size_t i = 0; i < p->nagents; i++)
            if (p->agents[i].swarm == si)
                mine[k++] = &p->agents[i];
        /* With --agents-per-swarm, keep the plan's mix: its agents fall in two groups, the
         * cheap ones (the swarm's lowest tier) and the strong ones (any higher tier); each
         * next agent comes from the group most under its share (Sainte-Lague), cycling
         * through the group's agents; copies past a group's size are named ID~2, ... */
        int64_t low = INT64_MAX;
        for (size_t i = 0; i < nplan; i++)
            if (agent_model(p, mine[i])->spec.tier < low)
                low = agent_model(p, mine[i])->spec.tier;
        int64_t *gtier = xcalloc(nplan + 1, sizeof *gtier);
        size_t *gcount = xcalloc(nplan + 1, sizeof *gcount), *gpicked = xcalloc(nplan + 1, sizeof *gpicked);
        size_t ng = 0;
        for (size_t i = 0; i < nplan; i++) {
            int64_t t = agent_model(p, mine[i])->spec.tier > low;
            size_t g;
            for (g = 0; g < ng && gtier[g] != t; g++)
                ;
            if (g == ng)
                gtier[ng++] = t;
            gcount[g]++;
        }
        for (size_t j = 0; j < want; j++) {
            S->a = xgrow(S->a, sizeof *S->a, S->na + 1, &cap);
            struct sagent *a = &S->a[S->na++];
            memset(a, 0, sizeof *a);
            a->swarm = (uint32_t)si;
            if (nplan && n <= 0) {
                const struct plan_agent *pa = mine[j];
                a->id = xstrdup(pa->spec.id);
                a->caps = &pa->spec.caps;
                a->model = agent_model(p, pa);
            } else if (nplan) {
                size_t g = 0;
                for (size_t h = 1; h < ng; h++)
                    if ((double)gcount[h] / (double)(2 * gpicked[h] + 1) >
                        (double)gcount[g] / (double)(2 * gpicked[g] + 1))
                        g = h;
                size_t nth = gpicked[g]++ % gcount[g], copy = (gpicked[g] - 1) / gcount[g];
                const struct plan_agent *pa = NULL;
                for (size_t i = 0, seen = 0; i < nplan && !pa; i++)
                    if ((agent_model(p, mine[i])->spec.tier > low) == gtier[g] && seen++ == nth)
                        pa = mine[i];
                a->id = copy ? xasprintf("%s~%zu", pa->spec.id, copy + 1) : xstrdup(pa->spec.id);
                a->caps = &pa->spec.caps;
                a->model = agent_model(p, pa);
            } else {
                /* no agents in the plan: stand-ins that can do all the swarm does */
                a->id = xasprintf("%s-sim%zu", sw->spec.id, j + 1);
                a->caps = &sw->spec.caps;
                a->model = top;
            }
            a->speed = tier_speed(a->model->spec.tier);
            a->usd_h = hourly_usd(a->model);
            a->state = A_FREE;
            a->heap_pos = HEAP_NONE;
        }
        free(gtier);
        free(gcount);
        free(gpicked);
        free(mine);
        ss->na = (uint32_t)(S->na - ss->a0);
        ss->nfree = ss->na;
    }
    return 0;
}

/* ---- running ---- */

static int qualifies(const struct sim *S, const struct sagent *a, const struct plan_task *t)
{
    return a->model->spec.tier >= t->spec.min_tier &&
           plan_match(&t->spec.requires, a->caps) + EPS >= S->pol.min_capability_match;
}

static double jittered(struct sim *S, double hours)
{
    double j = S->o->jitter;
    if (j <= 0)
        return hours;
    return hours * (1.0 + j * (2.0 * rng_unit(&S->rng) - 1.0));
}

static void make_ready(struct sim *S, uint32_t ti)
{
    struct stask *t = &S->t[ti];
    t->state = T_READY;
    heap_push(&S->s[t->swarm].ready, ti);
}

/* Node v is complete at S->now: its successors may become ready (gates cascade). */
static void complete(struct sim *S, uint32_t v)
{
    uint32_t *stack = S->stack;
    size_t n = 0;
    stack[n++] = v;
    while (n) {
        uint32_t u = stack[--n];
        for (size_t k = S->soff[u]; k < S->soff[u + 1]; k++) {
            uint32_t w = S->succ[k];
            if (--S->unmet[w])
                continue;
            S->pred[w] = u;
            if (w < S->nt)
                make_ready(S, w);
            else
                stack[n++] = w;
        }
    }
}

static void busy(struct sim *S, uint32_t ai, int state, uint32_t what, double until)
{
    struct sagent *a = &S->a[ai];
    a->state = state;
    a->what = what;
    a->start = S->now;
    a->until = until;
    S->s[a->swarm].nfree--;
    if (state != A_HELP)
        heap_push(&S->events, ai);
}

static void start_task(struct sim *S, uint32_t ti, uint32_t ai)
{
    struct stask *t = &S->t[ti];
    struct sagent *a = &S->a[ai];
    t->state = T_RUNNING;
    t->start = S->now;
    t->owner = ai;
    t->work = jittered(S, t->est);
    t->rate = a->speed;
    t->last = S->now;
    t->run_pos = (uint32_t)S->nrunning;
    S->running[S->nrunning++] = ti;
    S->s[t->swarm].running++;
    busy(S, ai, A_WORK, ti, S->now + t->work / t->rate);
}

static void finish_task(struct sim *S, uint32_t ti)
{
    struct stask *t = &S->t[ti];
    struct sswarm *ss = &S->s[t->swarm];
    t->state = T_DONE;
    t->finish = S->now;
    ss->remaining--;
    ss->running--;
    if (S->now > ss->finished)
        ss->finished = S->now;
    uint32_t last = S->running[--S->nrunning];
    S->running[t->run_pos] = last;
    S->t[last].run_pos = t->run_pos;
    if (t->cross) {
        S->r->blockers++;
        S->r->blocker_h += S->now - t->start;
    }
    for (size_t k = 0; k < t->nhelpers; k++) {
        struct sagent *h = &S->a[t->helpers[k]];
        h->h[1] += S->now - h->start;
        h->state = A_FREE;
        S->s[h->swarm].nfree++;
    }
    complete(S, ti);
}

/* The agent at the top of the event heap is done with what it was doing. */
static void finish_agent(struct sim *S, uint32_t ai)
{
    struct sagent *a = &S->a[ai];
    double took = S->now - a->start;
    if (a->state == A_WORK) {
        a->h[0] += took;
        a->ntasks++;
        finish_task(S, a->what);
    } else if (a->state == A_IDLE) {
        a->h[2] += took;
        a->nidle++;
        S->r->idle_done++;
    }
    a->state = A_FREE;
    S->s[a->swarm].nfree++;
}

static int waits_on(const struct sim *S, uint32_t ti, uint32_t swarm)
{
    for (size_t k = S->soff[ti]; k < S->soff[ti + 1]; k++) {
        uint32_t w = S->succ[k];
        if (w < S->nt && S->t[w].swarm == swarm)
            return 1;
    }
    return 0;
}

/* Gang up: the blocker this agent should help, or NONE. Blockers its own swarm waits on
 * first, then those of critical swarms, then the longest remaining path. */
static uint32_t pick_blocker(const struct sim *S, uint32_t ai)
{
    const struct sagent *a = &S->a[ai];
    uint32_t best = NONE;
    int bmine = 0, bcrit = 0;
    for (size_t k = 0; k < S->nrunning; k++) {
        uint32_t ti = S->running[k];
        const struct stask *t = &S->t[ti];
        if (!t->cross || t->swarm == a->swarm || (int64_t)t->nhelpers >= S->pol.max_helpers ||
            t->work - t->rate * (S->now - t->last) <= EPS || !qualifies(S, a, t->pt))
            continue;
        int mine = waits_on(S, ti, a->swarm);
        int crit = S->p->swarms[t->swarm].spec.relation == REL_CRITICAL;
        if (best != NONE) {
            if (mine != bmine) {
                if (mine < bmine)
                    continue;
            } else if (crit != bcrit) {
                if (crit < bcrit)
                    continue;
            } else if (S->bl[ti] != S->bl[best]) {
                if (S->bl[ti] < S->bl[best])
                    continue;
            } else if (ti > best) {
                continue;
            }
        }
        best = ti, bmine = mine, bcrit = crit;
    }
    return best;
}

static void join(struct sim *S, uint32_t ai, uint32_t ti)
{
    struct stask *t = &S->t[ti];
    struct sagent *a = &S->a[ai];
    t->work -= t->rate * (S->now - t->last);
    if (t->work < 0)
        t->work = 0;
    t->last = S->now;
    t->rate += S->o->help_efficiency * a->speed;
    if (!t->nhelpers) {
        t->helpers = xcalloc((size_t)S->pol.max_helpers, sizeof *t->helpers);
        S->r->blockers_helped++;
    }
    t->helpers[t->nhelpers++] = ai;
    S->r->helper_joins++;
    a->nhelped++;
    double until = S->now + t->work / t->rate;
    struct sagent *owner = &S->a[t->owner];
    owner->until = until;
    heap_fix(&S->events, owner->heap_pos);
    for (size_t k = 0; k < t->nhelpers; k++)
        S->a[t->helpers[k]].until = until;
    busy(S, ai, A_HELP, ti, until);
}

/* Would the task touch files a running task holds? (the coordinator's path leases) */
static int paths_busy(const struct sim *S, uint32_t ti)
{
    const struct strvec *mine = &S->t[ti].pt->spec.paths;
    if (!mine->n)
        return 0;
    for (size_t k = 0; k < S->nrunning; k++) {
        const struct strvec *theirs = &S->t[S->running[k]].pt->spec.paths;
        for (size_t i = 0; i < mine->n; i++)
            for (size_t j = 0; j < theirs->n; j++)
                if (model_paths_overlap(mine->v[i], theirs->v[j]))
                    return 1;
    }
    return 0;
}

static void dispatch(struct sim *S)
{
    const struct plan *p = S->p;
    uint32_t *later = xcalloc(S->nt + 1, sizeof *later);
    /* 1. each swarm's ready tasks, best first, to the cheapest free agent that qualifies */
    for (size_t si = 0; si < p->nswarms; si++) {
        struct sswarm *ss = &S->s[si];
        size_t nlater = 0;
        while (ss->nfree && ss->ready.n) {
            uint32_t ti = heap_pop(&ss->ready);
            uint32_t pick = NONE;
            for (uint32_t ai = ss->a0; ai < ss->a0 + ss->na && !paths_busy(S, ti); ai++) {
                const struct sagent *a = &S->a[ai];
                if (a->state != A_FREE || !qualifies(S, a, S->t[ti].pt))
                    continue;
                if (pick == NONE || a->model->spec.tier < S->a[pick].model->spec.tier ||
                    (a->model->spec.tier == S->a[pick].model->spec.tier &&
                     a->usd_h < S->a[pick].usd_h))
                    pick = ai;
            }
            if (pick == NONE)
                later[nlater++] = ti;
            else
                start_task(S, ti, pick);
        }
        for (size_t k = 0; k < nlater; k++)
            heap_push(&ss->ready, later[k]);
    }
    free(later);
    /* 2. agents left without work: help (gang-up), then idle tasks, then wait */
    for (uint32_t ai = 0; ai < S->na; ai++) {
        if (S->a[ai].state != A_FREE)
            continue;
        if (S->o->policy == SIM_GANG_UP) {
            uint32_t b = pick_blocker(S, ai);
            if (b != NONE) {
                join(S, ai, b);
                continue;
            }
        }
        const struct plan_swarm *sw = &p->swarms[S->a[ai].swarm];
        struct sswarm *ss = &S->s[S->a[ai].swarm];
        for (size_t k = 0; k < sw->nidle; k++) {
            const struct plan_task *it = &p->idle[sw->idle0 + k];
            if (ss->idle_taken[k] || !qualifies(S, &S->a[ai], it))
                continue;
            ss->idle_taken[k] = 1;
            double h = jittered(S, it->spec.estimate_h) / S->a[ai].speed;
            busy(S, ai, A_IDLE, (uint32_t)k, S->now + h);
            break;
        }
    }
}

/* Why a task cannot start, for the stall message. */
static void why_stuck(const struct sim *S, uint32_t ti, struct buf *b)
{
    const struct stask *t = &S->t[ti];
    const struct plan_task *pt = t->pt;
    if (t->state == T_READY) {
        buf_addf(b, "task '%s': no agent of swarm '%s' can take it (it needs tier >= %lld and "
                    "%.0f%% of its required capabilities)",
                 pt->spec.id, S->p->swarms[t->swarm].spec.id, (long long)pt->spec.min_tier,
                 S->pol.min_capability_match * 100);
        return;
    }
    buf_addf(b, "task '%s' waits for tasks that never finish", pt->spec.id);
}

int sim_run(const struct plan *p, const struct sim_opts *o, struct sim_result *r,
            struct s2_error *err)
{
    struct sim S0 = {0}, *S = &S0;
    int rc = 0;
    memset(r, 0, sizeof *r);
    if (!(o->jitter >= 0 && o->jitter <= 0.9))
        return s2_fail(err, S2_EINVAL, "usage", "jitter must be from 0 to 0.9");
    if (!(o->help_efficiency >= 0 && o->help_efficiency <= 1))
        return s2_fail(err, S2_EINVAL, "usage", "help efficiency must be from 0 to 1");
    if (o->agents_per_swarm < 0 || o->agents_per_swarm > SIM_AGENTS_MAX)
        return s2_fail(err, S2_EINVAL, "usage", "agents per swarm must be from 1 to %d",
                       SIM_AGENTS_MAX);
    if (p->nerrors || !p->nmodels)
        return s2_fail(err, S2_EINVAL, "invalid_plan", "the plan is not valid");
    S->p = p;
    S->o = o;
    S->r = r;
    plan_policy_effective(&p->policy, &S->pol);
    rng_seed(&S->rng, o->seed);
    r->policy = o->policy;
    r->seed = o->seed;
    r->jitter = o->jitter;
    r->help_efficiency = o->help_efficiency;
    r->ntasks = p->ntasks;
    r->nidle = p->nidle;
    for (size_t i = 0; i < p->nswarms; i++)
        r->nphases += p->swarms[i].nphases;

    build_graph(S);
    S->s = xcalloc(p->nswarms + 1, sizeof *S->s);
    S->t = xcalloc(S->nt + 1, sizeof *S->t);
    S->running = xcalloc(S->nt + 1, sizeof *S->running);
    S->stack = xcalloc(S->nn + 1, sizeof *S->stack);
    for (size_t si = 0; si < p->nswarms; si++) {
        heap_init(&S->s[si].ready, ready_less, ready_pos, S);
        S->s[si].idle_taken = xcalloc(p->swarms[si].nidle + 1, 1);
    }
    heap_init(&S->events, event_less, event_pos, S);
    if ((rc = build_agents(S, err)))
        goto out;
    r->nagents = S->na;
    for (size_t i = 0; i < S->nt; i++) {
        struct stask *t = &S->t[i];
        t->pt = &p->tasks[i];
        t->swarm = t->pt->swarm;
        t->est = t->pt->spec.estimate_h;
        S->s[t->swarm].remaining++;
        r->sequential_h += t->est;
        for (size_t k = S->soff[i]; k < S->soff[i + 1]; k++)
            if (S->succ[k] < S->nt && p->tasks[S->succ[k]].swarm != t->swarm)
                t->cross = 1;
    }
    for (size_t v = 0; v < S->nt; v++)
        if (!S->unmet[v])
            make_ready(S, (uint32_t)v);

    size_t remaining = S->nt;
    dispatch(S);
    while (S->events.n && remaining) {
        double t = S->a[heap_top(&S->events)].until;
        for (size_t si = 0; si < p->nswarms; si++) {
            struct sswarm *ss = &S->s[si];
            if (ss->remaining && !ss->running && !ss->ready.n)
                ss->blocked_h += t - S->now;
        }
        S->now = t;
        while (S->events.n && S->a[heap_top(&S->events)].until <= t) {
            uint32_t ai = heap_pop(&S->events);
            if (S->a[ai].state == A_WORK)
                remaining--;
            finish_agent(S, ai);
        }
        dispatch(S);
    }
    if (remaining) {
        struct buf b = BUF_INIT;
        size_t shown = 0;
        for (uint32_t i = 0; i < S->nt && shown < 3; i++)
            if (S->t[i].state == T_READY) {
                buf_adds(&b, shown++ ? "; " : "");
                why_stuck(S, i, &b);
            }
        for (uint32_t i = 0; i < S->nt && !shown; i++)
            if (S->t[i].state == T_PENDING) {
                why_stuck(S, i, &b);
                shown++;
            }
        rc = s2_fail(err, S2_EINVAL, "stalled",
                     "the plan stalls at %.2f h with %zu tasks not done: %s%s", S->now, remaining,
                     b.ptr,
                     o->agents_per_swarm > 0 ? " (with --agents-per-swarm a swarm may lack an "
                                               "agent of the tier or capabilities a task needs)"
                                             : "");
        buf_release(&b);
        goto out;
    }

    /* ---- results ---- */
    /* the plan is done: idle tasks still under way stop counting here (they are not the
     * plan's work, and the makespan is the plan's) */
    for (uint32_t ai = 0; ai < S->na; ai++)
        if (S->a[ai].state == A_IDLE)
            S->a[ai].h[2] += S->now - S->a[ai].start;
    r->makespan_h = S->now;
    r->speedup = r->makespan_h > 0 ? r->sequential_h / r->makespan_h : 0;
    const struct plan_model *top = top_model(p);
    r->top_model = xstrdup(top->spec.name);
    r->agents = xcalloc(S->na + 1, sizeof *r->agents);
    r->swarms = xcalloc(p->nswarms + 1, sizeof *r->swarms);
    r->nswarms = p->nswarms;
    size_t tcap = 0;
    for (size_t si = 0; si < p->nswarms; si++) {
        struct sim_swarm_result *sr = &r->swarms[si];
        sr->id = p->swarms[si].spec.id;
        sr->agents = S->s[si].na;
        sr->finished_h = S->s[si].finished;
        sr->blocked_h = S->s[si].blocked_h;
        r->blocked_h += sr->blocked_h;
    }
    for (size_t i = 0; i < S->nt; i++)
        r->swarms[S->t[i].swarm].tasks++;
    for (uint32_t ai = 0; ai < S->na; ai++) {
        struct sagent *a = &S->a[ai];
        struct sim_agent_result *ar = &r->agents[ai];
        double hours = a->h[0] + a->h[1] + a->h[2];
        ar->id = a->id;
        a->id = NULL;
        ar->swarm = p->swarms[a->swarm].spec.id;
        ar->model = a->model->spec.name;
        ar->tier = a->model->spec.tier;
        ar->work_h = a->h[0];
        ar->help_h = a->h[1];
        ar->idle_h = a->h[2];
        ar->usd = hours * a->usd_h;
        ar->tasks = a->ntasks;
        ar->idle_tasks = a->nidle;
        ar->helped = a->nhelped;
        r->work_h += a->h[0];
        r->help_h += a->h[1];
        r->idle_h += a->h[2];
        r->work_usd += a->h[0] * a->usd_h;
        r->help_usd += a->h[1] * a->usd_h;
        r->idle_usd += a->h[2] * a->usd_h;
        r->top_tier_usd += hours * hourly_usd(top);
        r->swarms[a->swarm].busy_h += hours;
        r->swarms[a->swarm].usd += ar->usd;
        size_t k;
        for (k = 0; k < r->ntiers && r->tiers[k].tier != ar->tier; k++)
            ;
        if (k == r->ntiers) {
            /* keep the tiers sorted */
            r->tiers = xgrow(r->tiers, sizeof *r->tiers, r->ntiers + 1, &tcap);
            for (k = r->ntiers; k > 0 && r->tiers[k - 1].tier > ar->tier; k--)
                r->tiers[k] = r->tiers[k - 1];
            memset(&r->tiers[k], 0, sizeof r->tiers[k]);
            r->tiers[k].tier = ar->tier;
            r->tiers[k].models = xstrdup(ar->model);
            r->ntiers++;
        } else {
            struct strvec names = STRVEC_INIT;
            strvec_split(&names, r->tiers[k].models, ',');
            int known = 0;
            for (size_t j = 0; j < names.n; j++)
                known |= !strcmp(names.v[j] + (names.v[j][0] == ' '), ar->model);
            strvec_release(&names);
            if (!known) {
                char *m = xasprintf("%s, %s", r->tiers[k].models, ar->model);
                free(r->tiers[k].models);
                r->tiers[k].models = m;
            }
        }
        r->tiers[k].hours += hours;
        r->tiers[k].usd += ar->usd;
    }
    r->usd = r->work_usd + r->help_usd + r->idle_usd;
    r->wait_h = (double)S->na * r->makespan_h - r->work_h - r->help_h - r->idle_h;
    if (r->wait_h < 0)
        r->wait_h = 0;
    /* the critical path: from the task that ended last, back along what made each ready */
    uint32_t end = NONE;
    for (uint32_t i = 0; i < S->nt; i++)
        if (end == NONE || S->t[i].finish > S->t[end].finish)
            end = i;
    if (end != NONE) {
        size_t n = 0;
        for (uint32_t v = end; v != NONE; v = S->pred[v])
            n += v < S->nt;
        r->critical_path.v = xcalloc(n + 1, sizeof *r->critical_path.v);
        r->critical_path.n = r->critical_path.cap = n;
        for (uint32_t v = end; v != NONE; v = S->pred[v])
            if (v < S->nt)
                r->critical_path.v[--n] = xstrdup(p->tasks[v].spec.id);
        r->critical_h = S->t[end].finish;
    }
out:
    for (size_t si = 0; S->s && si < p->nswarms; si++) {
        heap_release(&S->s[si].ready);
        free(S->s[si].idle_taken);
    }
    heap_release(&S->events);
    for (size_t i = 0; S->t && i < S->nt; i++)
        free(S->t[i].helpers);
    for (size_t i = 0; i < S->na; i++)
        free(S->a[i].id);
    free(S->a);
    free(S->s);
    free(S->t);
    free(S->running);
    free(S->stack);
    free(S->soff);
    free(S->succ);
    free(S->unmet);
    free(S->pred);
    free(S->bl);
    if (rc)
        sim_result_release(r);
    return rc;
}

void sim_result_release(struct sim_result *r)
{
    for (size_t i = 0; i < r->ntiers; i++)
        free(r->tiers[i].models);
    free(r->tiers);
    for (size_t i = 0; r->agents && i < r->nagents; i++)
        free(r->agents[i].id);
    free(r->agents);
    free(r->swarms);
    free(r->top_model);
    strvec_release(&r->critical_path);
    memset(r, 0, sizeof *r);
}

/* ---- output ---- */

static double pct(double part, double whole)
{
    return whole > 0 ? 100.0 * part / whole : 0;
}

void sim_print(const struct sim_result *r, const char *file, FILE *f)
{
    double avail = (double)r->nagents * r->makespan_h;
    fprintf(f, "simulation of %s: policy %s, seed %llu, jitter %.2f, help efficiency %.2f\n",
            file, sim_policy_name(r->policy), (unsigned long long)r->seed, r->jitter,
            r->help_efficiency);
    fprintf(f, "  %zu agents in %zu swarms; %zu tasks in %zu phases; %zu idle tasks (%zu done)\n\n",
            r->nagents, r->nswarms, r->ntasks, r->nphases, r->nidle, r->idle_done);
    fprintf(f, "  makespan         %10.2f h\n", r->makespan_h);
    fprintf(f, "  sequential       %10.2f h   every task one after another at reference speed\n",
            r->sequential_h);
    fprintf(f, "  speedup          %10.2fx\n", r->speedup);
    fprintf(f, "  cost             %10.2f $   work %.2f, helping %.2f, idle tasks %.2f\n", r->usd,
            r->work_usd, r->help_usd, r->idle_usd);
    for (size_t i = 0; i < r->ntiers; i++)
        fprintf(f, "    tier %-4lld      %10.2f $   %.2f agent-hours (%s)\n",
                (long long)r->tiers[i].tier, r->tiers[i].usd, r->tiers[i].hours,
                r->tiers[i].models);
    fprintf(f, "  all on top tier  %10.2f $   the same hours priced as %s\n", r->top_tier_usd,
            r->top_model);
    fprintf(f, "  utilisation      %10.1f %%   own tasks %.1f%%, helping %.1f%%, idle tasks %.1f%%\n",
            pct(r->work_h + r->help_h + r->idle_h, avail), pct(r->work_h, avail),
            pct(r->help_h, avail), pct(r->idle_h, avail));
    fprintf(f, "  agents waiting   %10.2f h   agent-hours with nothing they could do\n",
            r->wait_h);
    fprintf(f, "  swarms blocked   %10.2f h   swarm-hours with work left but none ready or running\n",
            r->blocked_h);
    fprintf(f, "  blockers         %10zu     tasks other swarms waited for: %.2f h running in all",
            r->blockers, r->blocker_h);
    if (r->blockers)
        fprintf(f, ", %.2f h each on average", r->blocker_h / (double)r->blockers);
    fprintf(f, "\n  helpers          %10zu     joined %zu blockers\n", r->helper_joins,
            r->blockers_helped);
    fprintf(f, "  critical path    %10zu     tasks, ending at %.2f h:\n", r->critical_path.n,
            r->critical_h);
    size_t col = 4;
    fprintf(f, "    ");
    for (size_t i = 0; i < r->critical_path.n; i++) {
        const char *id = r->critical_path.v[i];
        size_t n = strlen(id) + (i ? 4 : 0);
        if (i && col + n > 96) {
            fprintf(f, " ->\n    ");
            col = 4;
            n -= 4;
        } else if (i) {
            fprintf(f, " -> ");
        }
        fprintf(f, "%s", id);
        col += n;
    }
    fprintf(f, "\n\n  %-24s %6s %6s %10s %10s %7s %10s\n", "SWARM", "AGENTS", "TASKS", "FINISHED",
            "BLOCKED", "UTIL", "COST");
    for (size_t i = 0; i < r->nswarms; i++) {
        const struct sim_swarm_result *s = &r->swarms[i];
        fprintf(f, "  %-24s %6zu %6zu %8.2f h %8.2f h %6.1f%% %8.2f $\n", s->id, s->agents,
                s->tasks, s->finished_h, s->blocked_h,
                pct(s->busy_h, (double)s->agents * r->makespan_h), s->usd);
    }
}

json_t *sim_json(const struct sim_result *r, const char *file)
{
    double avail = (double)r->nagents * r->makespan_h;
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "policy", json_string(sim_policy_name(r->policy)));
    json_object_set_new(o, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(o, "jitter", json_real(r->jitter));
    json_object_set_new(o, "help_efficiency", json_real(r->help_efficiency));
    json_object_set_new(o, "agents", json_integer((json_int_t)r->nagents));
    json_object_set_new(o, "tasks", json_integer((json_int_t)r->ntasks));
    json_object_set_new(o, "phases", json_integer((json_int_t)r->nphases));
    json_object_set_new(o, "idle_tasks", json_integer((json_int_t)r->nidle));
    json_object_set_new(o, "idle_tasks_done", json_integer((json_int_t)r->idle_done));
    json_object_set_new(o, "makespan_h", json_real(r->makespan_h));
    json_object_set_new(o, "sequential_h", json_real(r->sequential_h));
    json_object_set_new(o, "speedup", json_real(r->speedup));
    json_t *tiers = json_array();
    for (size_t i = 0; i < r->ntiers; i++)
        json_array_append_new(tiers, json_pack("{s:I,s:s,s:f,s:f}", "tier",
                                               (json_int_t)r->tiers[i].tier, "models",
                                               r->tiers[i].models, "hours", r->tiers[i].hours,
                                               "usd", r->tiers[i].usd));
    json_object_set_new(o, "cost_usd",
                        json_pack("{s:f,s:f,s:f,s:f,s:o,s:f,s:s}", "total", r->usd, "work",
                                  r->work_usd, "help", r->help_usd, "idle", r->idle_usd,
                                  "by_tier", tiers, "all_on_top_tier", r->top_tier_usd,
                                  "top_model", r->top_model));
    json_object_set_new(o, "agent_hours",
                        json_pack("{s:f,s:f,s:f,s:f}", "work", r->work_h, "help", r->help_h,
                                  "idle", r->idle_h, "waiting", r->wait_h));
    json_object_set_new(o, "utilisation", json_real(avail > 0 ? (r->work_h + r->help_h +
                                                                   r->idle_h) / avail
                                                              : 0));
    json_object_set_new(o, "swarm_blocked_h", json_real(r->blocked_h));
    json_object_set_new(o, "blockers",
                        json_pack("{s:I,s:f,s:I,s:I}", "count", (json_int_t)r->blockers,
                                  "running_h", r->blocker_h, "helper_joins",
                                  (json_int_t)r->helper_joins, "helped",
                                  (json_int_t)r->blockers_helped));
    json_t *path = json_array();
    for (size_t i = 0; i < r->critical_path.n; i++)
        json_array_append_new(path, json_string(r->critical_path.v[i]));
    json_object_set_new(o, "critical_path",
                        json_pack("{s:o,s:f}", "tasks", path, "ends_at_h", r->critical_h));
    json_t *sw = json_array();
    for (size_t i = 0; i < r->nswarms; i++) {
        const struct sim_swarm_result *s = &r->swarms[i];
        json_array_append_new(
            sw, json_pack("{s:s,s:I,s:I,s:f,s:f,s:f,s:f}", "id", s->id, "agents",
                          (json_int_t)s->agents, "tasks", (json_int_t)s->tasks, "finished_h",
                          s->finished_h, "blocked_h", s->blocked_h, "busy_h", s->busy_h, "usd",
                          s->usd));
    }
    json_object_set_new(o, "swarms", sw);
    json_t *ag = json_array();
    for (size_t i = 0; i < r->nagents; i++) {
        const struct sim_agent_result *a = &r->agents[i];
        json_array_append_new(
            ag, json_pack("{s:s,s:s,s:s,s:I,s:f,s:f,s:f,s:f,s:I,s:I,s:I}", "id", a->id, "swarm",
                          a->swarm, "model", a->model, "tier", (json_int_t)a->tier, "work_h",
                          a->work_h, "help_h", a->help_h, "idle_h", a->idle_h, "usd", a->usd,
                          "tasks", (json_int_t)a->tasks, "idle_tasks", (json_int_t)a->idle_tasks,
                          "helped", (json_int_t)a->helped));
    }
    json_object_set_new(o, "agents", ag);
    return o;
}
