/* engine_gov.c: the governor inside the engine. It applies governor.c's rules to the
 * engine's state: the ledgers of every scope and the reservations that keep spend inside
 * them, circuit breakers, the tier cascade, policy gates, blockers and their helpers, the
 * help thread, idle work, and escalation to a human. Every change it makes is written and
 * witnessed in the batch's transaction, like the rest of the engine. Engine thread only. */
#include "engine_int.h"
#include "auth.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double usd(int64_t micro)
{
    return (double)micro / (double)S2_MICRO;
}

static int64_t reservation_of(const struct engine *e, const struct task *t)
{
    return t->max_cost_micro > 0 ? t->max_cost_micro : e->policy.max_cost_per_task;
}

/* ---- persistence of the governor's state ---- */

static void save_agent(struct engine *e, uint32_t ai)
{
    if (ai == NONE || eng_tx(e))
        return;
    struct agent *a = &e->agents[ai];
    struct agent_gov g = {a->id,          a->spent_micro, a->brk.state, a->brk.failures,
                          a->brk.opened_at, a->accepted,  a->rejected};
    struct s2_error err = S2_ERROR_INIT;
    if (store_agent_gov(e->store, &g, &err))
        eng_store_failed(e, &err);
    e->mutated = 1;
}

static void save_ledger(struct engine *e, uint32_t si)
{
    if (eng_tx(e))
        return;
    struct swarm *s = &e->swarms[si];
    struct s2_error err = S2_ERROR_INIT;
    if (store_swarm_ledger(e->store, s->id, s->ledger.spent, s->ledger.alert_level, &err))
        eng_store_failed(e, &err);
    e->mutated = 1;
}

static void save_policy(struct engine *e)
{
    if (eng_tx(e))
        return;
    json_t *j = policy_to_json(&e->policy);
    json_object_set_new(j, "global_alert_level", json_integer(e->global.alert_level));
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    struct s2_error err = S2_ERROR_INIT;
    if (store_meta_put(e->store, "policy", text, &err))
        eng_store_failed(e, &err);
    free(text);
    e->mutated = 1;
}

static void set_swarm_state(struct engine *e, uint32_t si, int to, const char *op, const char *why)
{
    struct swarm *s = &e->swarms[si];
    if (s->state == to || eng_tx(e))
        return;
    struct s2_error err = S2_ERROR_INIT;
    if (store_swarm_set_state(e->store, s->id, to, &err)) {
        eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    s->state = to;
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"why\":");
    buf_add_json_str(&p, why);
    buf_addch(&p, '}');
    eng_emit(e, op, si, NULL, NONE, p.ptr);
    buf_release(&p);
    if (to == SWARM_ACTIVE && s->nwaiting)
        eng_mark_dirty(e, si);
}

/* ---- escalation ---- */

void gov_escalate(struct engine *e, const char *kind, uint32_t si, uint32_t ti, uint32_t ai,
                  const char *fmt, ...)
{
    if (eng_tx(e))
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    const struct task *t = ti != NONE ? task_at(e, ti) : NULL;
    int64_t id = 0;
    struct s2_error err = S2_ERROR_INIT;
    if (store_escalation_insert(e->store, kind, si != NONE ? e->swarms[si].id : NULL,
                                t ? t->id : NULL, ai != NONE ? e->agents[ai].id : NULL, msg,
                                e->now, &id, &err)) {
        eng_store_failed(e, &err);
        free(msg);
        return;
    }
    e->mutated = 1;
    struct buf p = BUF_INIT;
    buf_addf(&p, "{\"id\":%" PRId64 ",\"kind\":\"%s\",\"message\":", id, kind);
    buf_add_json_str(&p, msg);
    buf_addch(&p, '}');
    eng_emit(e, "escalation", si, t, ai, p.ptr);
    buf_release(&p);
    if (e->nbev)
        e->bev[e->nbev - 1].notify = 1;
    e->stats.escalations++;
    log_warn("escalation %" PRId64 " (%s): %s", id, kind, msg);
    free(msg);
}

/* ---- budgets ---- */

/* After spend or a new limit: alert at the policy's share, trip the scope at 100%. */
static void check_swarm_budget(struct engine *e, uint32_t si)
{
    struct swarm *s = &e->swarms[si];
    int lvl = gov_level(&s->ledger, e->policy.budget_alert_pct);
    if (lvl == s->ledger.alert_level)
        return;
    int was = s->ledger.alert_level;
    s->ledger.alert_level = lvl;
    save_ledger(e, si);
    char p[256];
    snprintf(p, sizeof p,
             "{\"scope\":\"swarm\",\"spent\":%.6f,\"limit\":%.6f,\"reserved\":%.6f}",
             usd(s->ledger.spent), usd(s->ledger.limit), usd(s->ledger.reserved));
    if (lvl >= 1 && was < 1)
        eng_emit(e, "budget.alert", si, NULL, NONE, p);
    if (lvl == 2) {
        eng_emit(e, "budget.exhausted", si, NULL, NONE, p);
        set_swarm_state(e, si, SWARM_TRIPPED, "swarm.trip", "budget spent");
        gov_escalate(e, "budget_exhausted", si, NONE, NONE,
                     "swarm '%s' has spent $%.2f of its $%.2f budget: its claims are refused "
                     "until the budget is raised (s2 budget set --swarm %s USD)",
                     s->id, usd(s->ledger.spent), usd(s->ledger.limit), s->id);
    }
}

static void check_global_budget(struct engine *e)
{
    int lvl = gov_level(&e->global, e->policy.budget_alert_pct);
    if (lvl == e->global.alert_level)
        return;
    int was = e->global.alert_level;
    e->global.alert_level = lvl;
    save_policy(e);
    char p[256];
    snprintf(p, sizeof p, "{\"scope\":\"global\",\"spent\":%.6f,\"limit\":%.6f,\"reserved\":%.6f}",
             usd(e->global.spent), usd(e->global.limit), usd(e->global.reserved));
    if (lvl >= 1 && was < 1)
        eng_emit(e, "budget.alert", NONE, NULL, NONE, p);
    if (lvl == 2) {
        eng_emit(e, "budget.exhausted", NONE, NULL, NONE, p);
        gov_escalate(e, "budget_exhausted", NONE, NONE, NONE,
                     "the global budget is spent ($%.2f of $%.2f): every claim is refused until it "
                     "is raised (s2 budget set USD)",
                     usd(e->global.spent), usd(e->global.limit));
    }
}

int gov_may_claim(struct engine *e, uint32_t ai, struct s2_error *err)
{
    struct agent *a = &e->agents[ai];
    struct swarm *s = &e->swarms[a->swarm];
    if (gov_level(&e->global, e->policy.budget_alert_pct) == 2)
        return s2_fail(err, S2_ECONFLICT, "budget_exhausted",
                       "the global budget is spent ($%.2f of $%.2f): no new claims until it is "
                       "raised (s2 budget set USD)",
                       usd(e->global.spent), usd(e->global.limit));
    if (s->state == SWARM_TRIPPED)
        return s2_fail(err, S2_ECONFLICT, "budget_exhausted",
                       "swarm '%s' has spent $%.2f of its $%.2f budget and is tripped: no new "
                       "claims until the budget is raised (s2 budget set --swarm %s USD)",
                       s->id, usd(s->ledger.spent), usd(s->ledger.limit), s->id);
    int changed = 0;
    int ok = gov_breaker_allows(&a->brk, &e->policy, e->now, &changed);
    if (changed) {
        save_agent(e, ai);
        eng_emit(e, "breaker.half_open", a->swarm, NULL, ai, "{\"scope\":\"agent\"}");
    }
    if (!ok) {
        if (a->brk.state == BRK_HALF_OPEN)
            return s2_fail(err, S2_ECONFLICT, "breaker_open",
                           "agent '%s' is on probation (half-open breaker): its one trial lease "
                           "is still out",
                           a->id);
        int64_t left = a->brk.opened_at + e->policy.breaker_cooldown_ms - e->now;
        return s2_fail(err, S2_ECONFLICT, "breaker_open",
                       "agent '%s' is stopped by its circuit breaker after %d consecutive "
                       "failures; one trial claim is allowed in %" PRId64
                       " s, or reset it now (s2 breaker reset %s)",
                       a->id, a->brk.failures, (left + 999) / 1000, a->id);
    }
    return 0;
}

int gov_can_reserve_task(struct engine *e, uint32_t ti, struct s2_error *err)
{
    struct task *t = task_at(e, ti);
    struct swarm *s = &e->swarms[t->swarm];
    int64_t amount = reservation_of(e, t);
    if (!gov_can_reserve(&s->ledger, amount))
        return s2_fail(err, S2_ECONFLICT, "budget_exceeded",
                       "a lease of task '%s' reserves $%.2f (its max cost) but swarm '%s' has "
                       "$%.2f left of its $%.2f budget: raise it or lower the task's max_cost",
                       t->id, usd(amount), s->id, usd(gov_left(&s->ledger)),
                       usd(s->ledger.limit));
    if (!gov_can_reserve(&e->global, amount))
        return s2_fail(err, S2_ECONFLICT, "budget_exceeded",
                       "a lease of task '%s' reserves $%.2f but the global budget has $%.2f "
                       "left of $%.2f",
                       t->id, usd(amount), usd(gov_left(&e->global)), usd(e->global.limit));
    return 0;
}

void gov_reserve(struct engine *e, uint32_t ti, uint32_t ai)
{
    struct task *t = task_at(e, ti);
    int64_t amount = reservation_of(e, t);
    t->reserved_micro = amount;
    t->overrun = 0;
    e->swarms[t->swarm].ledger.reserved += amount;
    e->global.reserved += amount;
    gov_breaker_taken(&e->agents[ai].brk);
}

void gov_release(struct engine *e, struct task *t)
{
    struct ledger *l = &e->swarms[t->swarm].ledger;
    gov_settle(l, t->reserved_micro, 0);
    gov_settle(&e->global, t->reserved_micro, 0);
    t->reserved_micro = 0;
}

void gov_spend(struct engine *e, struct task *t, uint32_t ai, int64_t cost)
{
    if (cost <= 0)
        return;
    uint32_t si = t->swarm;
    struct swarm *s = &e->swarms[si];
    int64_t use = cost < t->reserved_micro ? cost : t->reserved_micro;
    t->cost_micro += cost;
    t->reserved_micro -= use;
    gov_settle(&s->ledger, use, cost);
    gov_settle(&e->global, use, cost);
    if (ai != NONE) {
        e->agents[ai].spent_micro += cost;
        save_agent(e, ai);
    }
    save_ledger(e, si);
    if (cost > use && !t->overrun && t->state == TASK_CLAIMED) {
        /* tasks in flight may report past their reservation, flagged once */
        t->overrun = 1;
        char p[160];
        snprintf(p, sizeof p, "{\"cost\":%.6f,\"max_cost\":%.6f}", usd(t->cost_micro),
                 usd(reservation_of(e, t)));
        eng_emit(e, "budget.overrun", si, t, ai, p);
    }
    check_swarm_budget(e, si);
    check_global_budget(e);
}

/* ---- service levels ---- */

static void save_slo(struct engine *e, int agent, const char *id, const struct slo_window *w)
{
    if (eng_tx(e))
        return;
    uint8_t blob[SLO_WINDOW * 5];
    size_t n = slo_encode(w, blob, sizeof blob);
    struct s2_error err = S2_ERROR_INIT;
    if (store_slo(e->store, agent, id, blob, n, &err))
        eng_store_failed(e, &err);
    e->mutated = 1;
}

void gov_outcome(struct engine *e, uint32_t ti, uint32_t ai, int result)
{
    struct task *t = task_at(e, ti);
    int64_t ms = e->now - t->claimed_at;
    int32_t lat = ms > INT32_MAX ? INT32_MAX : (int32_t)ms;
    struct swarm *s = &e->swarms[t->swarm];
    slo_record(&s->slo, lat, result);
    save_slo(e, 0, s->id, &s->slo);
    if (ai != NONE) {
        struct agent *a = &e->agents[ai];
        slo_record(&a->slo, lat, result);
        save_slo(e, 1, a->id, &a->slo);
    }
}

double gov_reputation(struct engine *e, uint32_t ai)
{
    struct agent *a = &e->agents[ai];
    struct slo_target tg;
    struct slo_stats st;
    slo_target_of(e->swarms[a->swarm].contract, &tg);
    slo_compute(&a->slo, &tg, &st);
    return st.reputation;
}

void gov_load_slo(struct slo_window *w, const void *blob, size_t len)
{
    slo_decode(w, blob, blob ? len : 0);
}

/* ---- breakers, cascade, outcomes ---- */

void gov_succeeded(struct engine *e, uint32_t ti, uint32_t ai)
{
    (void)ti;
    if (ai == NONE)
        return;
    struct agent *a = &e->agents[ai];
    int had = a->brk.failures || a->brk.state != BRK_CLOSED;
    if (gov_breaker_success(&a->brk))
        eng_emit(e, "breaker.close", a->swarm, NULL, ai, "{\"scope\":\"agent\",\"why\":\"success\"}");
    if (had)
        save_agent(e, ai);
}

void gov_failed(struct engine *e, uint32_t ti, uint32_t ai)
{
    (void)ti;
    if (ai == NONE)
        return;
    struct agent *a = &e->agents[ai];
    if (gov_breaker_failure(&a->brk, &e->policy, e->now)) {
        char p[96];
        snprintf(p, sizeof p, "{\"scope\":\"agent\",\"failures\":%d}", a->brk.failures);
        eng_emit(e, "breaker.open", a->swarm, NULL, ai, p);
        gov_escalate(e, "breaker_open", a->swarm, NONE, ai,
                     "agent '%s' failed %d times in a row and is stopped; it may try once more "
                     "in %" PRId64 " s (s2 breaker reset %s restores it now)",
                     a->id, a->brk.failures, e->policy.breaker_cooldown_ms / 1000, a->id);
    }
    save_agent(e, ai);
}

void gov_cascade(struct engine *e, uint32_t ti, uint32_t ai)
{
    struct task *t = task_at(e, ti);
    if (!e->policy.cascade || ai == NONE || t->kind == TASK_KIND_HELP)
        return;
    int tier = eng_agent_tier(e, &e->agents[ai]);
    int want = tier + 1 > e->top_tier ? e->top_tier : tier + 1;
    if (want <= t->min_tier)
        return;
    /* only where a stronger agent of its swarm could take it: else the retry stays put
     * rather than wait forever */
    const struct reqset *rs = &e->reqsets[t->reqset];
    int stronger = 0;
    for (uint32_t k = 0; k < e->nagents && !stronger; k++) {
        const struct agent *a = &e->agents[k];
        stronger = a->swarm == t->swarm && eng_agent_tier(e, a) >= want &&
                   gov_qualifies(&e->policy, gov_match(rs->caps, rs->n, a->capids, a->ncaps));
    }
    if (!stronger)
        return;
    int from = t->min_tier;
    t->min_tier = (uint8_t)want;
    t->queue = eng_queue_for(e, &e->swarms[t->swarm], t->reqset, want);
    char p[128];
    snprintf(p, sizeof p, "{\"min_tier\":%d,\"was\":%d,\"after_tier\":%d}", want, from, tier);
    eng_emit(e, "task.cascade", t->swarm, t, ai, p);
    if (e->policy.approve_top_tier_retry && want == e->top_tier &&
        t->approval_kind == APPROVAL_NONE) {
        /* the priciest tier: a human decides whether the retry is worth it */
        t->approval_kind = APPROVAL_HUMAN;
        t->approvals_needed = 1;
        t->approvals = 0;
        if (!t->approvers)
            t->approvers = xcalloc(1, sizeof *t->approvers);
        eng_emit(e, "task.gate", t->swarm, t, ai, "{\"approval\":\"human\",\"why\":\"top tier retry\"}");
    }
}

void gov_dead(struct engine *e, uint32_t ti, const char *reason)
{
    struct task *t = task_at(e, ti);
    if (t->kind == TASK_KIND_HELP)
        return; /* its blocker looks for another helper instead */
    gov_escalate(e, "task_dead", t->swarm, ti, t->owner,
                 "task '%s' is dead after %d attempt%s (%s): a human must decide", t->id,
                 t->attempts, t->attempts == 1 ? "" : "s", reason ? reason : "failed");
}

void gov_gate_task(struct engine *e, struct task_spec *t, uint32_t si)
{
    if (t->approval_kind != APPROVAL_NONE)
        return;
    const char *why = NULL;
    if (e->policy.approve_above > 0 &&
        (t->max_cost_micro > e->policy.approve_above || t->estimate_micro > e->policy.approve_above))
        why = "cost above approve_above_usd";
    else if (e->policy.approve_network && si != NONE && e->swarms[si].contract_grants)
        why = "its swarm's contract grants network or secrets";
    if (why) {
        t->approval_kind = APPROVAL_HUMAN;
        t->approval_n = 1;
    }
}

/* ---- blockers and help ---- */

static int blocker_open(const struct engine *e, uint32_t bi)
{
    return bi != NONE && bi < e->nblockers && e->blockers[bi].state == BLOCKER_OPEN;
}

/* Help tasks that still count against max_helpers: open, or done (they helped). */
static uint32_t active_helpers(const struct engine *e, const struct blocker *b)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < b->helps.n; k++) {
        int st = task_at(e, b->helps.v[k])->state;
        if (st != TASK_CANCELLED && st != TASK_DEAD)
            n++;
    }
    return n;
}

static int helping(const struct engine *e, const struct blocker *b, uint32_t ai)
{
    for (uint32_t k = 0; k < b->helps.n; k++) {
        const struct task *h = task_at(e, b->helps.v[k]);
        if (h->owner == ai && h->state != TASK_CANCELLED && h->state != TASK_DEAD)
            return 1;
    }
    return 0;
}

static int relation_rank(int relation)
{
    return relation == REL_CRITICAL ? 0 : relation == REL_PEER ? 1 : 2;
}

/* May agent ai help on blocker bi (another swarm, a good enough match, a free place)? */
static int may_help(const struct engine *e, uint32_t bi, uint32_t ai)
{
    const struct blocker *b = &e->blockers[bi];
    const struct agent *a = &e->agents[ai];
    const struct task *t = task_at(e, b->task);
    if (b->state != BLOCKER_OPEN || a->swarm == t->swarm || b->agent == ai)
        return 0;
    if (a->held >= a->max_leases || a->brk.state == BRK_OPEN)
        return 0;
    const struct reqset *rs = &e->reqsets[b->reqset];
    if (!gov_qualifies(&e->policy, gov_match(rs->caps, rs->n, a->capids, a->ncaps)))
        return 0;
    return active_helpers(e, b) < (uint32_t)e->policy.max_helpers && !helping(e, b, ai);
}

/* Make a help task on blocker bi for agent ai and lease it to c. 0 ok. */
static int give_help(struct engine *e, uint32_t bi, uint32_t ai, struct cmd *c)
{
    struct blocker *b = &e->blockers[bi];
    struct task *bt = task_at(e, b->task);
    struct task_spec sp;
    task_spec_init(&sp);
    char id[S2_ID_MAX + 1];
    uint32_t n = b->helps.n + 1;
    if (snprintf(id, sizeof id, "%s.help-%u", bt->id, n) >= (int)sizeof id ||
        map_get(&e->task_ix, id) != MAP_NONE)
        snprintf(id, sizeof id, "help-%" PRId64 "-%u", bt->rowid, n);
    sp.id = xstrdup(id);
    sp.swarm = xstrdup(e->swarms[bt->swarm].id);
    sp.phase = bt->phase;
    sp.title = xasprintf("help on %s: %.900s", bt->id, b->reason);
    sp.body = xasprintf("Task '%s' of swarm '%s' is blocked and needs help.\n\nReason: %s\n\n"
                        "Post what you find on its thread (s2 post %s --file F); the blocked "
                        "agent accepts or rejects each contribution.",
                        bt->id, e->swarms[bt->swarm].id, b->reason, bt->id);
    const struct reqset *rs = &e->reqsets[b->reqset];
    for (uint32_t k = 0; k < rs->n; k++)
        strvec_push(&sp.requires, e->capnames[rs->caps[k]]);
    sp.priority = bt->priority + 1;
    sp.max_attempts = 1;
    sp.lease_ms = bt->lease_ms;
    sp.backoff_ms = 0;
    sp.max_cost_micro = b->budget_micro / (e->policy.max_helpers > 0 ? e->policy.max_helpers : 1);
    if (sp.max_cost_micro <= 0)
        sp.max_cost_micro = 1;
    sp.kind = TASK_KIND_HELP;
    sp.help_for = xstrdup(bt->id);
    /* the help task's lease is charged to the blocked swarm: check before making it */
    struct ledger *l = &e->swarms[bt->swarm].ledger;
    if (!gov_can_reserve(l, sp.max_cost_micro) || !gov_can_reserve(&e->global, sp.max_cost_micro)) {
        task_spec_release(&sp);
        return -1;
    }
    uint32_t ti = eng_task_new(e, &sp, bt->swarm);
    task_spec_release(&sp);
    if (ti == NONE)
        return -1;
    struct task *ht = task_at(e, ti);
    if (ht->state != TASK_READY)
        return -1; /* gated for approval: it waits like any pending task */
    u32vec_push(&b->helps, ti);
    char p[96];
    snprintf(p, sizeof p, "{\"helper\":\"%s\",\"helpers\":%u}", e->agents[ai].id, active_helpers(e, b));
    eng_emit(e, "blocker.help", bt->swarm, bt, ai, p);
    return eng_claim_task(e, ti, ai, c);
}

/* Offer blocker bi to agents waiting for work in other swarms, best first. */
static void offer_waiters(struct engine *e, uint32_t bi)
{
    struct blocker *b = &e->blockers[bi];
    for (;;) {
        if (active_helpers(e, b) >= (uint32_t)e->policy.max_helpers || e->batch_failed)
            return;
        /* rank: match x reputation / cost, the DESIGN's order among candidates */
        uint32_t best = NONE;
        double best_score = -1;
        const struct reqset *rs = &e->reqsets[b->reqset];
        for (uint32_t wi = 0; wi < e->nwaiters; wi++) {
            const struct waiter *w = &e->waiters[wi];
            if (!w->cmd || !may_help(e, bi, w->agent))
                continue;
            const struct agent *a = &e->agents[w->agent];
            double match = gov_match(rs->caps, rs->n, a->capids, a->ncaps) / 1000.0;
            /* reputation: its service levels, and how its past help was judged */
            double rep = gov_reputation(e, w->agent) * (double)(a->accepted + 1) /
                         (double)(a->accepted + a->rejected + 1);
            double cost = a->model == NONE ? 1.0
                                           : 1.0 + usd(e->models[a->model].usd_in_micro +
                                                       e->models[a->model].usd_out_micro);
            double score = match * rep / cost;
            if (score > best_score) {
                best_score = score;
                best = wi;
            }
        }
        if (best == NONE)
            return;
        struct cmd *c = e->waiters[best].cmd;
        uint32_t ai = e->waiters[best].agent;
        eng_waiter_unlink(e, best);
        if (give_help(e, bi, ai, c) == 0)
            e->stats.pushes++;
        else
            c->out.got = 0;
        eng_reply(e, c);
    }
}

static int anyone_could_help(const struct engine *e, uint32_t bi)
{
    const struct blocker *b = &e->blockers[bi];
    const struct reqset *rs = &e->reqsets[b->reqset];
    uint32_t swarm = task_at(e, b->task)->swarm;
    for (uint32_t ai = 0; ai < e->nagents; ai++) {
        const struct agent *a = &e->agents[ai];
        if (a->swarm != swarm &&
            gov_qualifies(&e->policy, gov_match(rs->caps, rs->n, a->capids, a->ncaps)))
            return 1;
    }
    return 0;
}

int gov_find_work(struct engine *e, uint32_t ai, struct cmd *c)
{
    struct agent *a = &e->agents[ai];
    /* 1. help on a blocker it matches: critical swarms' blockers first, then the oldest */
    if (e->open_blockers) {
        uint32_t best = NONE;
        for (uint32_t bi = 0; bi < e->nblockers; bi++) {
            if (!may_help(e, bi, ai))
                continue;
            if (best == NONE) {
                best = bi;
                continue;
            }
            int rb = relation_rank(e->swarms[task_at(e, e->blockers[best].task)->swarm].relation);
            int rn = relation_rank(e->swarms[task_at(e, e->blockers[bi].task)->swarm].relation);
            if (rn < rb || (rn == rb && e->blockers[bi].created_at < e->blockers[best].created_at))
                best = bi;
        }
        if (best != NONE && give_help(e, best, ai, c) == 0)
            return 1;
    }
    /* 2. its swarm's idle tasks, round robin, those it qualifies for */
    struct swarm *s = &e->swarms[a->swarm];
    for (uint32_t k = 0; k < s->nidle; k++) {
        uint32_t i = (s->idle_next + k) % s->nidle;
        const struct idle_task *it = &s->idle[i];
        const struct reqset *rs = &e->reqsets[it->reqset];
        if (!gov_qualifies(&e->policy, gov_match(rs->caps, rs->n, a->capids, a->ncaps)))
            continue;
        if (!gov_can_reserve(&s->ledger, e->policy.max_cost_per_task) ||
            !gov_can_reserve(&e->global, e->policy.max_cost_per_task))
            return 0;
        s->idle_next = i + 1;
        struct task_spec sp;
        task_spec_init(&sp);
        char id[S2_ID_MAX + 1];
        snprintf(id, sizeof id, "%.80s.idle-%" PRId64, s->id, e->next_rowid);
        sp.id = xstrdup(id);
        sp.swarm = xstrdup(s->id);
        int64_t fo = eng_first_open_phase(s);
        sp.phase = fo > 0 ? fo : 1;
        sp.title = xstrdup(it->title);
        sp.body = xstrdup(it->body ? it->body : "");
        for (uint32_t q = 0; q < rs->n; q++)
            strvec_push(&sp.requires, e->capnames[rs->caps[q]]);
        sp.priority = -1;
        sp.kind = TASK_KIND_IDLE;
        uint32_t ti = eng_task_new(e, &sp, a->swarm);
        task_spec_release(&sp);
        if (ti == NONE || task_at(e, ti)->state != TASK_READY)
            return 0;
        return eng_claim_task(e, ti, ai, c) == 0;
    }
    return 0;
}

int gov_helps(struct engine *e, uint32_t ti, const char *swarm)
{
    const struct task *t = task_at(e, ti);
    if (!swarm || !blocker_open(e, t->blocker))
        return 0;
    const struct blocker *b = &e->blockers[t->blocker];
    for (uint32_t k = 0; k < b->helps.n; k++) {
        const struct task *h = task_at(e, b->helps.v[k]);
        if (h->state == TASK_CLAIMED && h->owner != NONE &&
            !strcmp(e->swarms[e->agents[h->owner].swarm].id, swarm))
            return 1;
    }
    return 0;
}

static void resolve_blocker(struct engine *e, uint32_t bi, const char *why)
{
    struct blocker *b = &e->blockers[bi];
    if (b->state != BLOCKER_OPEN)
        return;
    b->state = BLOCKER_RESOLVED;
    e->open_blockers--;
    struct task *t = task_at(e, b->task);
    t->blocker = NONE;
    /* help still under way is no longer needed */
    for (uint32_t k = 0; k < b->helps.n; k++) {
        uint32_t hi = b->helps.v[k];
        struct task *h = task_at(e, hi);
        if (h->state != TASK_READY && h->state != TASK_CLAIMED && h->state != TASK_PENDING)
            continue;
        uint32_t owner = h->state == TASK_CLAIMED ? h->owner : NONE;
        int was_open = eng_is_open(h->state);
        if (h->state == TASK_CLAIMED)
            eng_lease_end(e, h);
        else if (h->state == TASK_READY)
            eng_dequeue(e, hi);
        eng_set_state(e, h, TASK_CANCELLED);
        if (eng_persist(e, h))
            return;
        eng_emit(e, "task.cancel", h->swarm, h, owner, "{\"reason\":\"blocker resolved\"}");
        eng_settle(e, hi, was_open);
    }
    struct load_blocker lb = {t->id, e->reqsets[b->reqset].key, b->reason,
                              b->agent != NONE ? e->agents[b->agent].id : NULL,
                              b->created_at, b->state, b->escalated, b->budget_micro, e->now};
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_blocker_put(e->store, &lb, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    char p[128];
    snprintf(p, sizeof p, "{\"why\":\"%s\",\"helpers\":%u}", why, b->helps.n);
    eng_emit(e, "blocker.resolve", t->swarm, t, b->agent, p);
}

void gov_task_closed(struct engine *e, uint32_t ti)
{
    struct task *t = task_at(e, ti);
    if (blocker_open(e, t->blocker))
        resolve_blocker(e, t->blocker,
                        t->state == TASK_DONE ? "task done" : t->state == TASK_DEAD ? "task dead"
                                                                                   : "task cancelled");
    if (t->kind == TASK_KIND_HELP && t->help_for != NONE) {
        uint32_t bi = task_at(e, t->help_for)->blocker;
        /* a helper that failed frees its place: someone else may take it */
        if (blocker_open(e, bi) && (t->state == TASK_DEAD || t->state == TASK_CANCELLED))
            offer_waiters(e, bi);
    }
}

static int64_t blocker_deadline(const struct engine *e, const struct blocker *b)
{
    return b->created_at + e->policy.blocker_escalate_ms;
}

void gov_fire(struct engine *e)
{
    if (!e->open_blockers)
        return;
    for (uint32_t bi = 0; bi < e->nblockers && !e->batch_failed; bi++) {
        struct blocker *b = &e->blockers[bi];
        if (b->state != BLOCKER_OPEN || b->escalated || b->accepted ||
            blocker_deadline(e, b) > e->now)
            continue;
        b->escalated = 1;
        struct task *t = task_at(e, b->task);
        struct load_blocker lb = {t->id, e->reqsets[b->reqset].key, b->reason,
                                  b->agent != NONE ? e->agents[b->agent].id : NULL,
                                  b->created_at, b->state, 1, b->budget_micro, 0};
        struct s2_error err = S2_ERROR_INIT;
        if (eng_tx(e) || store_blocker_put(e->store, &lb, &err)) {
            if (err.kind)
                eng_store_failed(e, &err);
            return;
        }
        gov_escalate(e, "blocker_timeout", t->swarm, b->task, b->agent,
                     "task '%s' has been blocked for %" PRId64 " min with no accepted help (%u "
                     "helper%s): %s",
                     t->id, (e->now - b->created_at) / 60000, active_helpers(e, b),
                     active_helpers(e, b) == 1 ? "" : "s", b->reason);
    }
}

int64_t gov_next_timer(struct engine *e)
{
    int64_t at = -1;
    if (!e->open_blockers)
        return -1;
    for (uint32_t bi = 0; bi < e->nblockers; bi++) {
        const struct blocker *b = &e->blockers[bi];
        if (b->state != BLOCKER_OPEN || b->escalated || b->accepted)
            continue;
        int64_t d = blocker_deadline(e, b);
        if (at < 0 || d < at)
            at = d;
    }
    return at;
}

/* ---- commands ---- */

static void do_policy_put(struct engine *e, struct cmd *c)
{
    if (eng_admin_only(&c->who, "changing the policy", &c->err))
        return;
    struct policy np;
    policy_copy(&np, &e->policy);
    if (policy_from_json(&np, c->in.policy.json, &c->err)) {
        policy_release(&np);
        return;
    }
    policy_release(&e->policy);
    e->policy = np;
    e->global.limit = e->policy.global_budget;
    /* matching may have changed: every agent re-derives its queues, waiters get a look */
    for (uint32_t i = 0; i < e->nagents; i++)
        e->agents[i].elig_valid = 0;
    for (uint32_t i = 0; i < e->nswarms; i++)
        eng_mark_dirty(e, i);
    save_policy(e);
    json_t *j = policy_to_json(&e->policy);
    char *text = json_dumps(j, JSON_COMPACT);
    eng_emit(e, "policy.put", NONE, NULL, NONE, text);
    free(text);
    c->out.json = j;
    check_global_budget(e);
}

static void do_budget_set(struct engine *e, struct cmd *c)
{
    if (eng_admin_only(&c->who, "setting a budget", &c->err))
        return;
    int64_t v = c->in.budget.budget_micro;
    char p[160];
    if (!c->in.budget.swarm) {
        e->policy.global_budget = v;
        e->global.limit = v;
        snprintf(p, sizeof p, "{\"scope\":\"global\",\"limit\":%.6f}", usd(v));
        save_policy(e);
        eng_emit(e, "budget.set", NONE, NULL, NONE, p);
        e->global.alert_level = gov_level(&e->global, e->policy.budget_alert_pct);
        save_policy(e);
        for (uint32_t i = 0; i < e->nswarms; i++)
            eng_mark_dirty(e, i);
        return;
    }
    uint32_t si = map_get(&e->swarm_ix, c->in.budget.swarm);
    if (si == MAP_NONE) {
        s2_fail(&c->err, S2_ENOTFOUND, "not_found", "swarm '%s' does not exist",
                c->in.budget.swarm);
        return;
    }
    struct swarm *s = &e->swarms[si];
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_swarm_budget(e->store, s->id, v, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    s->ledger.limit = v;
    snprintf(p, sizeof p, "{\"scope\":\"swarm\",\"limit\":%.6f,\"spent\":%.6f}", usd(v),
             usd(s->ledger.spent));
    eng_emit(e, "budget.set", si, NULL, NONE, p);
    /* a raise re-arms the alert; one that covers the spend lifts the trip */
    s->ledger.alert_level = gov_level(&s->ledger, e->policy.budget_alert_pct);
    save_ledger(e, si);
    if (s->state == SWARM_TRIPPED && s->ledger.alert_level < 2)
        set_swarm_state(e, si, SWARM_ACTIVE, "swarm.resume", "budget raised");
}

static void do_breaker_reset(struct engine *e, struct cmd *c)
{
    if (eng_admin_only(&c->who, "resetting a breaker", &c->err))
        return;
    const char *id = c->in.breaker.id;
    uint32_t ai = map_get(&e->agent_ix, id);
    if (ai != MAP_NONE) {
        struct agent *a = &e->agents[ai];
        gov_breaker_reset(&a->brk);
        save_agent(e, ai);
        eng_emit(e, "breaker.reset", a->swarm, NULL, ai, "{\"scope\":\"agent\"}");
        eng_mark_dirty(e, a->swarm);
        return;
    }
    uint32_t si = map_get(&e->swarm_ix, id);
    if (si == MAP_NONE) {
        s2_fail(&c->err, S2_ENOTFOUND, "not_found", "no agent or swarm '%s'", id);
        return;
    }
    struct swarm *s = &e->swarms[si];
    if (s->state != SWARM_TRIPPED) {
        s2_fail(&c->err, S2_ECONFLICT, "not_tripped", "swarm '%s' is not tripped (it is %s)",
                s->id, swarm_state_name(s->state));
        return;
    }
    if (gov_level(&s->ledger, e->policy.budget_alert_pct) == 2) {
        s2_fail(&c->err, S2_ECONFLICT, "budget_exhausted",
                "swarm '%s' has spent $%.2f of its $%.2f budget: raise the budget first (s2 "
                "budget set --swarm %s USD)",
                s->id, usd(s->ledger.spent), usd(s->ledger.limit), s->id);
        return;
    }
    set_swarm_state(e, si, SWARM_ACTIVE, "breaker.reset", "reset by a human");
}

/* The task named by a lease-carrying command, checked against its current lease. */
static uint32_t leased_task(struct engine *e, struct cmd *c, const char *id, const char *lease)
{
    uint32_t ti = eng_find_task(e, id, &c->who, &c->err);
    if (ti == NONE)
        return NONE;
    if (!lease) {
        s2_fail(&c->err, S2_EINVAL, "missing_field", "field 'lease' is required");
        return NONE;
    }
    if (eng_check_lease(e, ti, lease, &c->err))
        return NONE;
    return ti;
}

static void do_block(struct engine *e, struct cmd *c)
{
    uint32_t ti = leased_task(e, c, c->in.block.task, c->in.block.lease);
    if (ti == NONE)
        return;
    struct task *t = task_at(e, ti);
    if (blocker_open(e, t->blocker)) {
        s2_fail(&c->err, S2_ECONFLICT, "already_blocked",
                "task '%s' is already blocked: post on its thread or unblock it first", t->id);
        return;
    }
    if (t->kind == TASK_KIND_HELP) {
        s2_fail(&c->err, S2_ECONFLICT, "help_task",
                "task '%s' is a help task: post what blocks you on the thread of '%s' instead",
                t->id, t->help_for != NONE ? task_at(e, t->help_for)->id : "?");
        return;
    }
    GROW(e, e->blockers, e->nblockers, e->capblockers);
    uint32_t bi = e->nblockers++;
    struct blocker *b = &e->blockers[bi];
    memset(b, 0, sizeof *b);
    b->task = ti;
    b->reqset = eng_reqset(e, &c->in.block.needs);
    b->reason = xstrdup(c->in.block.reason ? c->in.block.reason : "blocked");
    b->agent = t->owner;
    b->created_at = e->now;
    b->state = BLOCKER_OPEN;
    b->budget_micro = reservation_of(e, t);
    t->blocker = bi;
    e->open_blockers++;
    struct load_blocker lb = {t->id, e->reqsets[b->reqset].key, b->reason,
                              b->agent != NONE ? e->agents[b->agent].id : NULL,
                              b->created_at, BLOCKER_OPEN, 0, b->budget_micro, 0};
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_blocker_put(e->store, &lb, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"needs\":[");
    for (size_t k = 0; k < c->in.block.needs.n; k++) {
        if (k)
            buf_addch(&p, ',');
        buf_add_json_str(&p, c->in.block.needs.v[k]);
    }
    buf_adds(&p, "],\"reason\":");
    buf_add_json_str(&p, b->reason);
    buf_addch(&p, '}');
    eng_emit(e, "task.block", t->swarm, t, t->owner, p.ptr);
    buf_release(&p);
    if (!anyone_could_help(e, bi)) {
        b->escalated = 1;
        lb.escalated = 1;
        if (store_blocker_put(e->store, &lb, &err)) {
            eng_store_failed(e, &err);
            return;
        }
        gov_escalate(e, "no_helper", t->swarm, ti, t->owner,
                     "task '%s' is blocked (%s) and no agent of another swarm matches its needs "
                     "at %d%% or better: a human must help",
                     t->id, b->reason, e->policy.min_match_permille / 10);
    } else {
        offer_waiters(e, bi);
    }
    c->out.rowid = t->rowid;
    c->out.json = json_pack("{s:s,s:s,s:b,s:i}", "task", t->id, "state", "blocked", "escalated",
                            b->escalated, "helpers", (int)active_helpers(e, b));
}

static void do_unblock(struct engine *e, struct cmd *c)
{
    uint32_t ti = leased_task(e, c, c->in.block.task, c->in.block.lease);
    if (ti == NONE)
        return;
    struct task *t = task_at(e, ti);
    if (!blocker_open(e, t->blocker)) {
        s2_fail(&c->err, S2_ECONFLICT, "not_blocked", "task '%s' is not blocked", t->id);
        return;
    }
    resolve_blocker(e, t->blocker, "unblocked");
}

/* The blocker whose thread c names, and who is posting with c's lease. */
static uint32_t thread_author(struct engine *e, struct cmd *c, uint32_t *author, uint32_t *help)
{
    uint32_t ti = eng_find_task(e, c->in.thread.task, &c->who, &c->err);
    if (ti == NONE)
        return NONE;
    struct task *t = task_at(e, ti);
    if (!blocker_open(e, t->blocker)) {
        s2_fail(&c->err, S2_ECONFLICT, "not_blocked",
                "task '%s' has no open blocker: its thread is closed", t->id);
        return NONE;
    }
    if (!c->in.thread.lease) {
        s2_fail(&c->err, S2_EINVAL, "missing_field", "field 'lease' is required");
        return NONE;
    }
    uint8_t hash[TOKEN_HASH_BYTES];
    auth_hash(c->in.thread.lease, hash);
    if (t->state == TASK_CLAIMED && !sodium_memcmp(hash, t->lease_hash, TOKEN_HASH_BYTES)) {
        *author = t->owner;
        *help = NONE;
        return t->blocker;
    }
    struct blocker *b = &e->blockers[t->blocker];
    for (uint32_t k = 0; k < b->helps.n; k++) {
        struct task *h = task_at(e, b->helps.v[k]);
        if (h->state == TASK_CLAIMED && !sodium_memcmp(hash, h->lease_hash, TOKEN_HASH_BYTES)) {
            *author = h->owner;
            *help = b->helps.v[k];
            return t->blocker;
        }
    }
    s2_fail(&c->err, S2_ECONFLICT, "stale_lease",
            "only the blocked agent or one of its helpers, with a current lease, may write on "
            "the thread of '%s'",
            t->id);
    return NONE;
}

static void do_post(struct engine *e, struct cmd *c)
{
    uint32_t author, help;
    uint32_t bi = thread_author(e, c, &author, &help);
    if (bi == NONE)
        return;
    struct blocker *b = &e->blockers[bi];
    struct task *t = task_at(e, b->task);
    int64_t id = 0;
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) ||
        store_post_insert(e->store, t->id, author != NONE ? e->agents[author].id : NULL,
                          help != NONE ? task_at(e, help)->id : NULL, c->in.thread.body, e->now,
                          &id, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    /* the record carries the post itself when short, else its hash */
    struct buf p = BUF_INIT;
    size_t len = strlen(c->in.thread.body);
    buf_addf(&p, "{\"post\":%" PRId64 ",\"bytes\":%zu", id, len);
    if (help != NONE) {
        buf_adds(&p, ",\"help_task\":");
        buf_add_json_str(&p, task_at(e, help)->id);
    }
    if (len <= 2048) {
        buf_adds(&p, ",\"body\":");
        buf_add_json_str(&p, c->in.thread.body);
    } else {
        uint8_t h[32];
        char hex[65];
        crypto_hash_sha256(h, (const unsigned char *)c->in.thread.body, len);
        sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        buf_addf(&p, ",\"sha256\":\"%s\"", hex);
    }
    buf_addch(&p, '}');
    eng_emit(e, "thread.post", t->swarm, t, author, p.ptr);
    buf_release(&p);
    c->out.rowid = id;
}

static void do_verdict(struct engine *e, struct cmd *c)
{
    uint32_t ti = eng_find_task(e, c->in.thread.task, &c->who, &c->err);
    if (ti == NONE)
        return;
    struct task *t = task_at(e, ti);
    if (!blocker_open(e, t->blocker)) {
        s2_fail(&c->err, S2_ECONFLICT, "not_blocked",
                "task '%s' has no open blocker: its thread is closed", t->id);
        return;
    }
    if (!c->in.thread.lease || eng_check_lease(e, ti, c->in.thread.lease, &c->err)) {
        if (!c->err.kind)
            s2_fail(&c->err, S2_EINVAL, "missing_field", "field 'lease' is required");
        return;
    }
    char *task = NULL, *agent = NULL;
    int verdict = 0;
    struct s2_error err = S2_ERROR_INIT;
    int got = store_post_get(e->store, c->in.thread.post, &task, &agent, &verdict, &err);
    if (got < 0) {
        eng_store_failed(e, &err);
        return;
    }
    if (!got || strcmp(task, t->id)) {
        s2_fail(&c->err, S2_ENOTFOUND, "not_found", "no post %" PRId64 " on the thread of '%s'",
                c->in.thread.post, t->id);
        goto out;
    }
    if (verdict) {
        s2_fail(&c->err, S2_ECONFLICT, "already_judged", "post %" PRId64 " was already %s",
                c->in.thread.post, verdict > 0 ? "accepted" : "rejected");
        goto out;
    }
    uint32_t ai = agent ? map_get(&e->agent_ix, agent) : MAP_NONE;
    if (ai != MAP_NONE && ai == t->owner) {
        s2_fail(&c->err, S2_ECONFLICT, "own_post", "the blocked agent's own posts are not judged");
        goto out;
    }
    if (eng_tx(e) || store_post_verdict(e->store, c->in.thread.post, c->in.thread.verdict, e->now, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        goto out;
    }
    struct blocker *b = &e->blockers[t->blocker];
    if (c->in.thread.verdict > 0)
        b->accepted++;
    if (ai != MAP_NONE) {
        /* the helper's reputation: what the blocked agents made of its help */
        if (c->in.thread.verdict > 0)
            e->agents[ai].accepted++;
        else
            e->agents[ai].rejected++;
        save_agent(e, ai);
    }
    char p[96];
    snprintf(p, sizeof p, "{\"post\":%" PRId64 ",\"verdict\":\"%s\"}", c->in.thread.post,
             c->in.thread.verdict > 0 ? "accepted" : "rejected");
    eng_emit(e, "thread.verdict", t->swarm, t, ai != MAP_NONE ? ai : NONE, p);
out:
    free(task);
    free(agent);
}

static void do_escalation_ack(struct engine *e, struct cmd *c)
{
    if (eng_admin_only(&c->who, "acknowledging an escalation", &c->err))
        return;
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e))
        return;
    if (store_escalation_ack(e->store, c->in.ack.id, c->who.name ? c->who.name : "admin", e->now,
                             &err)) {
        if (err.kind == S2_ENOTFOUND || err.kind == S2_ECONFLICT)
            s2_error_move(&c->err, &err);
        else
            eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    char p[64];
    snprintf(p, sizeof p, "{\"id\":%" PRId64 "}", c->in.ack.id);
    eng_emit(e, "escalation.ack", NONE, NULL, NONE, p);
}

static void do_approver_add(struct engine *e, struct cmd *c)
{
    if (eng_admin_only(&c->who, "adding an approver", &c->err))
        return;
    uint8_t hash[TOKEN_HASH_BYTES];
    char *token = auth_token_new("s2p", hash);
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) ||
        store_token_insert(e->store, hash, "approver", NULL, c->in.approver.name, e->now, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        free(token);
        return;
    }
    e->mutated = 1;
    c->out.token = token;
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"name\":");
    buf_add_json_str(&p, c->in.approver.name);
    buf_addch(&p, '}');
    eng_emit(e, "approver.create", NONE, NULL, NONE, p.ptr);
    buf_release(&p);
}

/* Idle tasks from their JSON ([{title, body, requires}], checked by the API). */
static void set_idle(struct engine *e, struct swarm *s, const char *json)
{
    for (uint32_t k = 0; k < s->nidle; k++) {
        free(s->idle[k].title);
        free(s->idle[k].body);
    }
    free(s->idle);
    s->idle = NULL;
    s->nidle = s->idle_next = 0;
    json_t *a = json ? json_loads(json, 0, NULL) : NULL;
    size_t n = json_array_size(a);
    if (n)
        s->idle = xcalloc(n, sizeof *s->idle);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(a, i);
        const char *title = json_string_value(json_object_get(o, "title"));
        if (!title)
            continue;
        struct idle_task *it = &s->idle[s->nidle++];
        it->title = xstrdup(title);
        const char *body = json_string_value(json_object_get(o, "body"));
        it->body = body ? xstrdup(body) : NULL;
        struct strvec req = STRVEC_INIT;
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(o, "requires"), k, v)
            if (json_is_string(v))
                strvec_push(&req, json_string_value(v));
        it->reqset = eng_reqset(e, &req);
        strvec_release(&req);
    }
    json_decref(a);
}

static int contract_grants(const char *json)
{
    json_t *o = json ? json_loads(json, 0, NULL) : NULL;
    int g = json_array_size(json_object_get(o, "network")) > 0 ||
            json_array_size(json_object_get(o, "secrets")) > 0;
    json_decref(o);
    return g;
}

static void do_swarm_text(struct engine *e, struct cmd *c)
{
    uint32_t si = map_get(&e->swarm_ix, c->in.swarm_text.swarm);
    int contract = c->in.swarm_text.which == STORE_SWARM_CONTRACT;
    if (contract ? eng_admin_only(&c->who, "setting a contract", &c->err)
                 : eng_may_act(&c->who, c->in.swarm_text.swarm, &c->err))
        return;
    if (si == MAP_NONE) {
        s2_fail(&c->err, S2_ENOTFOUND, "not_found", "swarm '%s' does not exist",
                c->in.swarm_text.swarm);
        return;
    }
    struct swarm *s = &e->swarms[si];
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_swarm_text(e->store, s->id, c->in.swarm_text.which,
                                      c->in.swarm_text.json, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    const char *json = c->in.swarm_text.json;
    if (contract) {
        free(s->contract);
        s->contract = json ? xstrdup(json) : NULL;
        s->contract_grants = contract_grants(json);
        eng_emit(e, "swarm.contract", si, NULL, NONE, json ? json : "{}");
    } else {
        set_idle(e, s, json);
        char p[64];
        snprintf(p, sizeof p, "{\"idle_tasks\":%u}", s->nidle);
        eng_emit(e, "swarm.idle_tasks", si, NULL, NONE, p);
        if (s->nwaiting)
            eng_mark_dirty(e, si);
    }
}

void gov_command(struct engine *e, struct cmd *c)
{
    switch (c->kind) {
    case CMD_POLICY_PUT: do_policy_put(e, c); break;
    case CMD_BUDGET_SET: do_budget_set(e, c); break;
    case CMD_BREAKER_RESET: do_breaker_reset(e, c); break;
    case CMD_BLOCK: do_block(e, c); break;
    case CMD_UNBLOCK: do_unblock(e, c); break;
    case CMD_POST: do_post(e, c); break;
    case CMD_VERDICT: do_verdict(e, c); break;
    case CMD_ESCALATION_ACK: do_escalation_ack(e, c); break;
    case CMD_APPROVER_ADD: do_approver_add(e, c); break;
    case CMD_SWARM_TEXT: do_swarm_text(e, c); break;
    default: s2_fail(&c->err, S2_EINTERNAL, "internal", "not a governor command"); break;
    }
}

/* ---- read views ---- */

static json_t *ledger_json(const struct ledger *l, int alert_pct)
{
    int64_t left = gov_left(l);
    int lvl = gov_level(l, alert_pct);
    return json_pack("{s:o,s:f,s:f,s:o,s:s}", "limit", l->limit > 0 ? json_real(usd(l->limit)) : json_null(),
                     "spent", usd(l->spent), "reserved", usd(l->reserved), "left",
                     left < 0 ? json_null() : json_real(usd(left)), "level",
                     lvl == 2 ? "exhausted" : lvl == 1 ? "alert" : "ok");
}

static int sees(const struct cmd *c, const char *swarm)
{
    if (c->who.kind == PRIN_TASK)
        return 0;
    return c->who.kind != PRIN_SWARM || (c->who.swarm && !strcmp(c->who.swarm, swarm));
}

void gov_query(struct engine *e, struct cmd *c)
{
    const char *arg = c->in.query.arg;
    int pct = e->policy.budget_alert_pct;
    switch (c->in.query.what) {
    case Q_POLICY:
        c->out.json = policy_to_json(&e->policy);
        break;
    case Q_BUDGETS: {
        json_t *sw = json_array(), *ag = json_array();
        for (uint32_t i = 0; i < e->nswarms; i++) {
            const struct swarm *s = &e->swarms[i];
            if (!sees(c, s->id) || (arg && strcmp(arg, s->id)))
                continue;
            json_t *o = ledger_json(&s->ledger, pct);
            json_object_set_new(o, "swarm", json_string(s->id));
            json_object_set_new(o, "state", json_string(swarm_state_name(s->state)));
            json_array_append_new(sw, o);
        }
        for (uint32_t i = 0; i < e->nagents; i++) {
            const struct agent *a = &e->agents[i];
            const char *sid = e->swarms[a->swarm].id;
            if (!sees(c, sid) || (arg && strcmp(arg, sid)))
                continue;
            json_array_append_new(ag, json_pack("{s:s,s:s,s:f}", "agent", a->id, "swarm", sid,
                                                "spent", usd(a->spent_micro)));
        }
        c->out.json = json_pack("{s:o,s:o,s:o,s:f}", "global", ledger_json(&e->global, pct),
                                "swarms", sw, "agents", ag, "max_cost_per_task",
                                usd(e->policy.max_cost_per_task));
        break;
    }
    case Q_BREAKERS: {
        json_t *ag = json_array(), *sw = json_array();
        for (uint32_t i = 0; i < e->nagents; i++) {
            const struct agent *a = &e->agents[i];
            if (!sees(c, e->swarms[a->swarm].id))
                continue;
            json_t *o = json_pack("{s:s,s:s,s:s,s:i}", "agent", a->id, "swarm",
                                  e->swarms[a->swarm].id, "state", breaker_state_name(a->brk.state),
                                  "consecutive_failures", a->brk.failures);
            if (a->brk.state != BRK_CLOSED) {
                json_object_set_new(o, "opened_at", json_integer(a->brk.opened_at));
                json_object_set_new(o, "half_open_at",
                                    json_integer(a->brk.opened_at + e->policy.breaker_cooldown_ms));
            }
            json_array_append_new(ag, o);
        }
        for (uint32_t i = 0; i < e->nswarms; i++) {
            const struct swarm *s = &e->swarms[i];
            if (!sees(c, s->id))
                continue;
            json_array_append_new(sw, json_pack("{s:s,s:s,s:s}", "swarm", s->id, "state",
                                                s->state == SWARM_TRIPPED ? "open" : "closed",
                                                "why", s->state == SWARM_TRIPPED ? "budget spent" : ""));
        }
        c->out.json = json_pack("{s:o,s:o,s:s}", "agents", ag, "swarms", sw, "global",
                                gov_level(&e->global, pct) == 2 ? "open" : "closed");
        break;
    }
    case Q_BLOCKERS: {
        json_t *a = json_array();
        for (uint32_t bi = 0; bi < e->nblockers; bi++) {
            const struct blocker *b = &e->blockers[bi];
            const struct task *t = task_at(e, b->task);
            const char *sid = e->swarms[t->swarm].id;
            if (b->state != BLOCKER_OPEN || !sees(c, sid) || (arg && strcmp(arg, sid)))
                continue;
            json_t *helps = json_array();
            for (uint32_t k = 0; k < b->helps.n; k++) {
                const struct task *h = task_at(e, b->helps.v[k]);
                json_array_append_new(
                    helps, json_pack("{s:s,s:s?,s:s?,s:s}", "task", h->id, "agent",
                                     h->owner != NONE ? e->agents[h->owner].id : NULL, "swarm",
                                     h->owner != NONE ? e->swarms[e->agents[h->owner].swarm].id
                                                      : NULL,
                                     "state", task_state_name(h->state)));
            }
            json_t *needs = json_array();
            const struct reqset *rs = &e->reqsets[b->reqset];
            for (uint32_t k = 0; k < rs->n; k++)
                json_array_append_new(needs, json_string(e->capnames[rs->caps[k]]));
            json_array_append_new(
                a, json_pack("{s:s,s:s,s:s?,s:o,s:s,s:I,s:I,s:b,s:i,s:o}", "task", t->id, "swarm", sid,
                             "agent", b->agent != NONE ? e->agents[b->agent].id : NULL, "needs", needs,
                             "reason", b->reason, "created_at", (json_int_t)b->created_at,
                             "escalate_at", (json_int_t)blocker_deadline(e, b), "escalated",
                             b->escalated, "accepted", b->accepted, "helpers", helps));
        }
        c->out.json = json_pack("{s:o}", "blockers", a);
        break;
    }
    case Q_TASK_VISIBLE: {
        uint32_t ti = eng_find_task(e, arg ? arg : "", &c->who, &c->err);
        if (ti != NONE)
            c->out.json = json_pack("{s:s}", "task", task_at(e, ti)->id);
        break;
    }
    case Q_SLO: {
        json_t *list = json_array();
        for (uint32_t si = 0; si < e->nswarms; si++) {
            const struct swarm *s = &e->swarms[si];
            if (!sees(c, s->id) || (arg && strcmp(arg, s->id)))
                continue;
            struct slo_target tg;
            struct slo_stats st;
            slo_target_of(s->contract, &tg);
            slo_compute(&s->slo, &tg, &st);
            json_t *o = json_pack("{s:s,s:o,s:{s:f,s:f,s:f}}", "swarm", s->id, "slo",
                                  slo_stats_json(&st), "contract", "p99_latency_ms",
                                  tg.p99_latency_ms, "success_rate", tg.success_rate,
                                  "availability", tg.availability);
            if (arg) {
                json_t *agents = json_array();
                for (uint32_t ai = 0; ai < e->nagents; ai++) {
                    const struct agent *a = &e->agents[ai];
                    if (a->swarm != si)
                        continue;
                    struct slo_stats as;
                    slo_compute(&a->slo, &tg, &as);
                    json_array_append_new(agents, json_pack("{s:s,s:o}", "agent", a->id, "slo",
                                                            slo_stats_json(&as)));
                }
                json_object_set_new(o, "agents", agents);
            }
            json_array_append_new(list, o);
        }
        if (arg && !json_array_size(list)) {
            json_decref(list);
            s2_fail(&c->err, S2_ENOTFOUND, "not_found", "swarm '%s' does not exist", arg);
            break;
        }
        c->out.json = arg ? json_incref(json_array_get(list, 0)) : json_pack("{s:o}", "swarms", list);
        if (arg)
            json_decref(list);
        break;
    }
    case Q_CONTRACT: {
        uint32_t si = map_get(&e->swarm_ix, arg ? arg : "");
        if (si == MAP_NONE || !sees(c, e->swarms[si].id)) {
            s2_fail(&c->err, S2_ENOTFOUND, "not_found", "swarm '%s' does not exist",
                    arg ? arg : "");
            break;
        }
        const struct swarm *s = &e->swarms[si];
        json_t *ct = s->contract ? json_loads(s->contract, 0, NULL) : NULL;
        c->out.json = json_pack("{s:s,s:o}", "swarm", s->id, "contract", ct ? ct : json_null());
        break;
    }
    case Q_IDLE_TASKS: {
        uint32_t si = map_get(&e->swarm_ix, arg ? arg : "");
        if (si == MAP_NONE || !sees(c, e->swarms[si].id)) {
            s2_fail(&c->err, S2_ENOTFOUND, "not_found", "swarm '%s' does not exist",
                    arg ? arg : "");
            break;
        }
        /* the idle tasks as they were set: [{title, body, requires}] */
        const struct swarm *s = &e->swarms[si];
        json_t *a = json_array();
        for (uint32_t k = 0; k < s->nidle; k++) {
            const struct idle_task *it = &s->idle[k];
            json_t *o = json_pack("{s:s,s:o}", "title", it->title, "requires",
                                  engine_reqset_json(e, it->reqset));
            if (it->body)
                json_object_set_new(o, "body", json_string(it->body));
            json_array_append_new(a, o);
        }
        c->out.json = json_pack("{s:s,s:o}", "swarm", s->id, "idle_tasks", a);
        break;
    }
    default: s2_fail(&c->err, S2_EINTERNAL, "internal", "not a governor query"); break;
    }
}

/* ---- loading ---- */

void gov_load_swarm(struct engine *e, uint32_t si, const struct load_swarm *ls)
{
    struct swarm *s = &e->swarms[si];
    s->ledger.spent = ls->spent_micro;
    s->ledger.alert_level = ls->alert_level;
    set_idle(e, s, ls->idle_tasks);
    s->contract = ls->contract ? xstrdup(ls->contract) : NULL;
    s->contract_grants = contract_grants(ls->contract);
}

void gov_load_agent(struct engine *e, uint32_t ai, const struct agent_gov *g)
{
    struct agent *a = &e->agents[ai];
    a->spent_micro = g->spent_micro;
    a->brk.state = g->breaker_state;
    a->brk.failures = g->breaker_failures;
    a->brk.opened_at = g->breaker_opened_at;
    a->accepted = g->accepted;
    a->rejected = g->rejected;
}

int gov_load_blocker(struct engine *e, const struct load_blocker *lb)
{
    uint32_t ti = map_get(&e->task_ix, lb->task);
    if (ti == MAP_NONE) {
        log_warn("load: blocker of unknown task '%s' skipped", lb->task);
        return 0;
    }
    GROW(e, e->blockers, e->nblockers, e->capblockers);
    uint32_t bi = e->nblockers++;
    struct blocker *b = &e->blockers[bi];
    memset(b, 0, sizeof *b);
    b->task = ti;
    struct strvec needs = STRVEC_INIT;
    strvec_split(&needs, lb->needs ? lb->needs : "", '\n');
    b->reqset = eng_reqset(e, &needs);
    strvec_release(&needs);
    b->reason = xstrdup(lb->reason ? lb->reason : "");
    uint32_t ai = lb->agent ? map_get(&e->agent_ix, lb->agent) : MAP_NONE;
    b->agent = ai == MAP_NONE ? NONE : ai;
    b->created_at = lb->created_at;
    b->state = BLOCKER_OPEN;
    b->escalated = lb->escalated;
    b->budget_micro = lb->budget_micro;
    task_at(e, ti)->blocker = bi;
    e->open_blockers++;
    return 0;
}

int gov_load(struct engine *e, struct s2_error *err)
{
    char *text = store_meta_get(e->store, "policy");
    if (text) {
        json_t *j = json_loads(text, 0, NULL);
        free(text);
        int level = (int)json_integer_value(json_object_get(j, "global_alert_level"));
        json_object_del(j, "global_alert_level");
        if (!j || policy_from_json(&e->policy, j, err)) {
            json_decref(j);
            return s2_fail(err, S2_EINVAL, "bad_policy", "the stored policy is not valid: %s",
                           err->msg ? err->msg : "not JSON");
        }
        json_decref(j);
        e->global.alert_level = level;
    }
    e->global.limit = e->policy.global_budget;
    e->global.spent = 0;
    e->global.reserved = 0;
    for (uint32_t i = 0; i < e->nswarms; i++) {
        e->swarms[i].ledger.reserved = 0;
        e->global.spent += e->swarms[i].ledger.spent;
    }
    int any_help = 0;
    for (uint32_t ti = 0; ti < e->ntasks; ti++) {
        struct task *t = task_at(e, ti);
        if (t->state == TASK_CLAIMED) {
            e->swarms[t->swarm].ledger.reserved += t->reserved_micro;
            e->global.reserved += t->reserved_micro;
        }
        if (eng_is_open(t->state))
            eng_weigh(e, ti, 1);
        any_help |= t->kind == TASK_KIND_HELP;
    }
    if (any_help && e->open_blockers)
        for (uint32_t ti = 0; ti < e->ntasks; ti++) {
            struct task *t = task_at(e, ti);
            if (t->kind == TASK_KIND_HELP && t->help_for != NONE &&
                blocker_open(e, task_at(e, t->help_for)->blocker))
                u32vec_push(&e->blockers[task_at(e, t->help_for)->blocker].helps, ti);
        }
    return 0;
}
