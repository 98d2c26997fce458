/* engine_query.c: read views of the engine's in-memory state as JSON (swarms, status,
 * agents, models, counters). Runs on the engine thread; changes nothing. */
#include "engine_int.h"
#include "auth.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HEALTH_WARN_MS (10LL * 60 * 1000)
#define HEALTH_FROZEN_MS (15LL * 60 * 1000)

static double usd(int64_t micro)
{
    return (double)micro / (double)S2_MICRO;
}

static json_t *strvec_json(const struct strvec *sv)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sv->n; i++)
        json_array_append_new(a, json_string(sv->v[i]));
    return a;
}

json_t *engine_reqset_json(const struct engine *e, uint32_t rs)
{
    json_t *a = json_array();
    const struct reqset *r = &e->reqsets[rs];
    for (uint32_t i = 0; i < r->n; i++)
        json_array_append_new(a, json_string(e->capnames[r->caps[i]]));
    return a;
}

static json_t *counts_json(const uint32_t *count)
{
    json_t *o = json_object();
    for (int s = 0; s < TASK_NSTATES; s++)
        json_object_set_new(o, task_state_name(s), json_integer(count[s]));
    return o;
}

static const char *health(const struct engine *e, int64_t last_seen)
{
    if (!last_seen)
        return "never seen";
    int64_t age = e->now - last_seen;
    return age < HEALTH_WARN_MS ? "healthy" : age < HEALTH_FROZEN_MS ? "warning" : "frozen";
}

/* What a swarm's agents are doing right now, from one pass over the claimed tasks and the
 * open blockers (so the overview of many swarms costs one pass, not one per swarm). */
struct activity {
    uint32_t working; /* leases on its own tasks that are not blocked */
    uint32_t helping; /* help leases its agents hold on other swarms' blockers */
    uint32_t blocked; /* its open blockers */
    uint32_t help_task, blocker_task; /* an example of each (task index), NONE if none */
};

static struct activity *activity_new(const struct engine *e)
{
    struct activity *act = xcalloc(e->nswarms ? e->nswarms : 1, sizeof *act);
    for (uint32_t i = 0; i < e->nswarms; i++)
        act[i].help_task = act[i].blocker_task = NONE;
    /* every claimed task sits in the timer heap */
    for (size_t k = 0; k < e->timers.n; k++) {
        uint32_t ti = e->timers.v[k];
        const struct task *t = task_at(e, ti);
        if (t->state != TASK_CLAIMED)
            continue;
        if (t->kind == TASK_KIND_HELP && t->owner != NONE) {
            struct activity *a = &act[e->agents[t->owner].swarm];
            a->helping++;
            if (a->help_task == NONE)
                a->help_task = ti;
        } else if (t->blocker == NONE) {
            act[t->swarm].working++;
        }
    }
    for (uint32_t bi = 0; bi < e->nblockers; bi++) {
        const struct blocker *b = &e->blockers[bi];
        if (b->state != BLOCKER_OPEN)
            continue;
        struct activity *a = &act[task_at(e, b->task)->swarm];
        a->blocked++;
        if (a->blocker_task == NONE)
            a->blocker_task = b->task;
    }
    return act;
}

/* The seed's STATUS vocabulary (waiting, working, blocked, helping, completed), from task
 * counts and what the agents are doing. A paused or tripped swarm is blocked: its state
 * field says which. reason is filled with why (at most len bytes). */
static const char *swarm_status(const struct engine *e, const struct swarm *s,
                                const struct activity *act, char *reason, size_t len)
{
    const uint32_t *c = s->count;
    uint32_t total = 0;
    for (int i = 0; i < TASK_NSTATES; i++)
        total += c[i];
    uint32_t open = c[TASK_PENDING] + c[TASK_READY] + c[TASK_CLAIMED] + c[TASK_DEAD];
    if (total && !open && !act->helping) { /* done, and not helping anyone either */
        snprintf(reason, len, "every task is done or cancelled");
        return "completed";
    }
    if (s->state == SWARM_PAUSED) {
        snprintf(reason, len, "paused by an operator");
        return "blocked";
    }
    if (s->state == SWARM_TRIPPED) {
        snprintf(reason, len, "circuit breaker tripped: its budget is spent");
        return "blocked";
    }
    if (act->working) {
        snprintf(reason, len, "%u lease%s held on its tasks", act->working,
                 act->working == 1 ? "" : "s");
        return "working";
    }
    if (act->helping) {
        const struct task *h = task_at(e, act->help_task);
        const struct task *bt = h->help_for != NONE ? task_at(e, h->help_for) : NULL;
        if (bt)
            snprintf(reason, len, "helping swarm '%s' on blocked task '%s'",
                     e->swarms[bt->swarm].id, bt->id);
        else
            snprintf(reason, len, "helping another swarm on a blocker");
        return "helping";
    }
    if (act->blocked) {
        snprintf(reason, len, "task '%s' is blocked and waits for help",
                 task_at(e, act->blocker_task)->id);
        return "blocked";
    }
    if (c[TASK_READY]) {
        snprintf(reason, len, "ready work, no agent holds it yet");
        return "waiting";
    }
    if (c[TASK_DEAD]) {
        snprintf(reason, len, "a task exhausted its attempts");
        return "blocked";
    }
    if (c[TASK_PENDING]) {
        snprintf(reason, len, "waiting for dependencies, an earlier phase or approval");
        return "blocked";
    }
    snprintf(reason, len, "no tasks");
    return "waiting";
}

static int64_t first_open(const struct swarm *s)
{
    for (uint32_t i = 0; i < s->nphases; i++)
        if (s->phases[i].open)
            return s->phases[i].phase;
    return -1;
}

static json_t *swarm_json(const struct engine *e, uint32_t si, const struct activity *act)
{
    const struct swarm *s = &e->swarms[si];
    char reason[256];
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "role", json_string(s->role));
    json_object_set_new(o, "relation", json_string(relation_name(s->relation)));
    json_object_set_new(o, "capabilities", strvec_json(&s->caps));
    json_object_set_new(o, "budget", json_real(usd(s->ledger.limit)));
    json_object_set_new(o, "spent", json_real(usd(s->ledger.spent)));
    json_object_set_new(o, "reserved", json_real(usd(s->ledger.reserved)));
    json_object_set_new(o, "idle_tasks", json_integer(s->nidle));
    json_object_set_new(o, "branch", s->branch ? json_string(s->branch) : json_null());
    json_object_set_new(o, "state", json_string(swarm_state_name(s->state)));
    json_object_set_new(o, "status",
                        json_string(swarm_status(e, s, &act[si], reason, sizeof reason)));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "open_blockers", json_integer(act[si].blocked));
    json_object_set_new(o, "help_leases", json_integer(act[si].helping));
    json_object_set_new(o, "created_at", json_integer(s->created_at));
    json_object_set_new(o, "tasks", counts_json(s->count));
    json_object_set_new(o, "agents", json_integer(s->nagents));
    json_object_set_new(o, "waiting_claims", json_integer(s->nwaiting));
    int64_t fo = first_open(s);
    json_object_set_new(o, "current_phase", fo < 0 ? json_null() : json_integer(fo));
    return o;
}

static json_t *agent_json(const struct engine *e, uint32_t ai, int detail)
{
    const struct agent *a = &e->agents[ai];
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(o, "swarm", json_string(e->swarms[a->swarm].id));
    json_object_set_new(o, "model", a->model == NONE ? json_null()
                                                     : json_string(e->models[a->model].name));
    json_object_set_new(o, "tier", json_integer(a->model == NONE ? 0 : e->models[a->model].tier));
    json_object_set_new(o, "capabilities", strvec_json(&a->caps));
    json_object_set_new(o, "max_leases", json_integer(a->max_leases));
    json_object_set_new(o, "leases_held", json_integer(a->held));
    json_object_set_new(o, "last_seen", a->last_seen ? json_integer(a->last_seen) : json_null());
    json_object_set_new(o, "health", json_string(health(e, a->last_seen)));
    json_object_set_new(o, "created_at", json_integer(a->created_at));
    json_object_set_new(o, "breaker", json_string(breaker_state_name(a->brk.state)));
    json_object_set_new(o, "consecutive_failures", json_integer(a->brk.failures));
    json_object_set_new(o, "spent", json_real(usd(a->spent_micro)));
    json_object_set_new(o, "help_accepted", json_integer(a->accepted));
    json_object_set_new(o, "help_rejected", json_integer(a->rejected));
    if (detail) {
        /* claimed tasks all sit in the timer heap: scan it rather than keep a second index */
        json_t *held = json_array();
        for (size_t k = 0; k < e->timers.n; k++) {
            const struct task *t = task_at(e, e->timers.v[k]);
            if (t->state == TASK_CLAIMED && t->owner == ai) {
                json_t *h = json_object();
                json_object_set_new(h, "task", json_string(t->id));
                json_object_set_new(h, "expires_at", json_integer(t->due));
                json_object_set_new(h, "attempt", json_integer(t->attempts));
                json_array_append_new(held, h);
            }
        }
        json_object_set_new(o, "leases", held);
    }
    return o;
}

static int forbidden_swarm(const struct cmd *c, const char *swarm)
{
    /* approvers read everything (to decide), swarm tokens only their own swarm */
    if (c->who.kind == PRIN_TASK)
        return 1; /* a lease token sees its task, nothing wider */
    return c->who.kind == PRIN_SWARM && (!c->who.swarm || strcmp(c->who.swarm, swarm));
}

static uint32_t find_swarm(struct engine *e, struct cmd *c)
{
    const char *id = c->in.query.arg ? c->in.query.arg : "";
    uint32_t si = map_get(&e->swarm_ix, id);
    if (si == MAP_NONE || forbidden_swarm(c, id)) {
        s2_fail(&c->err, S2_ENOTFOUND, "not_found", "swarm '%s' does not exist", id);
        return NONE;
    }
    return si;
}

/* When a claimed task is expected to end: the end of its current lease (an agent that
 * heartbeats keeps pushing it, so it is a horizon, not a promise). */
static int64_t expected_end(const struct task *t)
{
    return t->state == TASK_CLAIMED ? t->due : 0;
}

/* The seed's can_help: the expertise of its agents with room for another lease, its load,
 * and the open blockers of other swarms that one of those agents qualifies for. */
static json_t *can_help_json(const struct engine *e, uint32_t si)
{
    json_t *o = json_object(), *exp = json_array(), *blockers = json_array();
    uint32_t held = 0, cap = 0;
    struct map seen;
    map_init(&seen);
    for (uint32_t ai = 0; ai < e->nagents; ai++) {
        const struct agent *a = &e->agents[ai];
        if (a->swarm != si)
            continue;
        held += a->held;
        cap += a->max_leases;
        if (a->held >= a->max_leases || a->brk.state == BRK_OPEN)
            continue;
        for (size_t k = 0; k < a->caps.n; k++)
            if (map_get(&seen, a->caps.v[k]) == MAP_NONE) {
                map_put(&seen, a->caps.v[k], 1);
                json_array_append_new(exp, json_string(a->caps.v[k]));
            }
    }
    map_release(&seen);
    for (uint32_t bi = 0; bi < e->nblockers && json_array_size(blockers) < 50; bi++) {
        const struct blocker *b = &e->blockers[bi];
        const struct task *bt = task_at(e, b->task);
        if (b->state != BLOCKER_OPEN || bt->swarm == si)
            continue;
        const struct reqset *rs = &e->reqsets[b->reqset];
        int best = -1;
        for (uint32_t ai = 0; ai < e->nagents; ai++) {
            const struct agent *a = &e->agents[ai];
            if (a->swarm != si || a->held >= a->max_leases || a->brk.state == BRK_OPEN)
                continue;
            int m = gov_match(rs->caps, rs->n, a->capids, a->ncaps);
            if (gov_qualifies(&e->policy, m) && m > best)
                best = m;
        }
        if (best >= 0)
            json_array_append_new(blockers,
                                  json_pack("{s:s,s:s,s:o,s:f}", "task", bt->id, "swarm",
                                            e->swarms[bt->swarm].id, "needs",
                                            engine_reqset_json(e, b->reqset), "match",
                                            best / 1000.0));
    }
    /* load: share of its agents' lease slots in use */
    const char *load = !cap || held * 3 < cap ? "low" : held * 3 < cap * 2 ? "medium" : "high";
    json_object_set_new(o, "expertise_available", exp);
    json_object_set_new(o, "current_load", json_string(load));
    json_object_set_new(o, "leases_held", json_integer(held));
    json_object_set_new(o, "lease_slots", json_integer(cap));
    json_object_set_new(o, "blockers", blockers);
    return o;
}

static json_t *status_json(struct engine *e, uint32_t si, const struct activity *act)
{
    const struct swarm *s = &e->swarms[si];
    json_t *o = swarm_json(e, si, act);
    /* the witness entries this view reflects: 1..witness_seq (the checkpoint covering them
     * is the first with tree_size >= witness_seq) */
    json_object_set_new(o, "witness_seq", json_integer((json_int_t)e->chain.seq));

    json_t *phases = json_array();
    uint32_t total = 0, done = 0;
    for (uint32_t p = 0; p < s->nphases; p++) {
        const struct phase_slot *ps = &s->phases[p];
        uint32_t pd = 0;
        for (uint32_t k = 0; k < ps->tasks.n; k++)
            pd += task_at(e, ps->tasks.v[k])->state == TASK_DONE;
        json_t *j = json_object();
        json_object_set_new(j, "phase", json_integer(ps->phase));
        json_object_set_new(j, "tasks", json_integer(ps->tasks.n));
        json_object_set_new(j, "done", json_integer(pd));
        json_object_set_new(j, "open", json_integer(ps->open));
        json_object_set_new(j, "percent",
                            json_integer(ps->tasks.n ? (json_int_t)pd * 100 / ps->tasks.n : 100));
        json_array_append_new(phases, j);
        total += ps->tasks.n;
        done += pd;
    }
    json_object_set_new(o, "phases", phases);
    json_t *prog = json_object();
    json_object_set_new(prog, "done", json_integer(done));
    json_object_set_new(prog, "in_progress", json_integer(s->count[TASK_CLAIMED]));
    json_object_set_new(prog, "remaining", json_integer(total - done - s->count[TASK_CANCELLED] -
                                                            s->count[TASK_CLAIMED]));
    json_object_set_new(prog, "percent", json_integer(total ? (json_int_t)done * 100 / total : 0));
    json_object_set_new(o, "progress", prog);

    /* who works on what, and what other swarms' unfinished tasks hold this one up */
    json_t *working = json_array(), *blocked_on = json_array();
    struct map seen;
    map_init(&seen);
    for (uint32_t p = 0; p < s->nphases; p++) {
        const struct phase_slot *ps = &s->phases[p];
        for (uint32_t k = 0; k < ps->tasks.n; k++) {
            const struct task *t = task_at(e, ps->tasks.v[k]);
            if (t->state == TASK_CLAIMED) {
                json_t *w = json_object();
                json_object_set_new(w, "task", json_string(t->id));
                json_object_set_new(w, "agent", t->owner == NONE
                                                    ? json_null()
                                                    : json_string(e->agents[t->owner].id));
                json_object_set_new(w, "expires_at", json_integer(t->due));
                json_object_set_new(w, "phase", json_integer(t->phase));
                json_object_set_new(w, "kind", json_string(t->kind == TASK_KIND_HELP   ? "help"
                                                           : t->kind == TASK_KIND_IDLE ? "idle"
                                                                                       : "task"));
                json_object_set_new(w, "blocked", json_boolean(t->blocker != NONE));
                json_array_append_new(working, w);
            } else if (t->state == TASK_PENDING && t->unmet) {
                for (uint32_t d = 0; d < t->deps.n; d++) {
                    const struct task *dt = task_at(e, t->deps.v[d]);
                    if (dt->swarm == si || dt->state == TASK_DONE ||
                        map_get(&seen, dt->id) != MAP_NONE || json_array_size(blocked_on) >= 50)
                        continue;
                    map_put(&seen, dt->id, 1);
                    json_t *b = json_object();
                    json_object_set_new(b, "task", json_string(dt->id));
                    json_object_set_new(b, "swarm", json_string(e->swarms[dt->swarm].id));
                    json_object_set_new(b, "state", json_string(task_state_name(dt->state)));
                    json_object_set_new(b, "agent",
                                        dt->state == TASK_CLAIMED && dt->owner != NONE
                                            ? json_string(e->agents[dt->owner].id)
                                            : json_null());
                    int64_t end = expected_end(dt);
                    json_object_set_new(b, "expected_end", end ? json_integer(end) : json_null());
                    json_array_append_new(blocked_on, b);
                }
            }
        }
    }
    map_release(&seen);
    json_object_set_new(o, "working", working);
    json_object_set_new(o, "blocked_on", blocked_on);

    /* its own blocked tasks (s2 block), with their helpers */
    json_t *blockers = json_array();
    int unknown_unblock = 0;
    int64_t unblock = 0;
    for (uint32_t bi = 0; bi < e->nblockers && json_array_size(blockers) < 50; bi++) {
        const struct blocker *b = &e->blockers[bi];
        const struct task *bt = task_at(e, b->task);
        if (b->state != BLOCKER_OPEN || bt->swarm != si)
            continue;
        json_t *helpers = json_array();
        int64_t latest = 0;
        for (uint32_t k = 0; k < b->helps.n; k++) {
            const struct task *h = task_at(e, b->helps.v[k]);
            if (h->state != TASK_CLAIMED)
                continue;
            json_array_append_new(helpers,
                                  json_pack("{s:s,s:s?,s:s?,s:I}", "task", h->id, "agent",
                                            h->owner != NONE ? e->agents[h->owner].id : NULL,
                                            "swarm",
                                            h->owner != NONE
                                                ? e->swarms[e->agents[h->owner].swarm].id
                                                : NULL,
                                            "expires_at", (json_int_t)h->due));
            if (h->due > latest)
                latest = h->due;
        }
        /* helped: cleared, at the latest, when the helpers' leases end; unhelped: unknown */
        if (json_array_size(helpers)) {
            if (latest > unblock)
                unblock = latest;
        } else {
            unknown_unblock = 1;
        }
        json_array_append_new(
            blockers,
            json_pack("{s:s,s:s?,s:o,s:s,s:I,s:b,s:o}", "task", bt->id, "agent",
                      b->agent != NONE ? e->agents[b->agent].id : NULL, "needs",
                      engine_reqset_json(e, b->reqset), "reason", b->reason, "since",
                      (json_int_t)b->created_at, "escalated", b->escalated, "helpers", helpers));
    }
    json_object_set_new(o, "blockers", blockers);
    /* what blocks it on other swarms: cleared when those tasks' leases end, if they succeed */
    size_t i;
    json_t *v;
    json_array_foreach(blocked_on, i, v) {
        json_t *end = json_object_get(v, "expected_end");
        if (!json_is_integer(end))
            unknown_unblock = 1;
        else if (json_integer_value(end) > unblock)
            unblock = json_integer_value(end);
    }
    int blocked = json_array_size(blockers) || json_array_size(blocked_on);
    json_object_set_new(o, "estimated_unblock",
                        blocked && !unknown_unblock && unblock ? json_integer(unblock)
                                                               : json_null());

    /* the help its agents give other swarms */
    json_t *helping = json_array();
    for (size_t k = 0; k < e->timers.n && json_array_size(helping) < 50; k++) {
        const struct task *t = task_at(e, e->timers.v[k]);
        if (t->state != TASK_CLAIMED || t->kind != TASK_KIND_HELP || t->owner == NONE ||
            e->agents[t->owner].swarm != si)
            continue;
        const struct task *bt = t->help_for != NONE ? task_at(e, t->help_for) : NULL;
        json_array_append_new(helping,
                              json_pack("{s:s,s:s,s:s?,s:s?,s:I}", "task", t->id, "agent",
                                        e->agents[t->owner].id, "blocked_task",
                                        bt ? bt->id : NULL, "swarm",
                                        bt ? e->swarms[bt->swarm].id : NULL, "expires_at",
                                        (json_int_t)t->due));
    }
    json_object_set_new(o, "helping", helping);
    json_object_set_new(o, "can_help", can_help_json(e, si));

    /* health: from the swarm's most recent sign of life (claims, heartbeats, reports) */
    json_t *agents = json_array();
    int64_t last = 0;
    for (uint32_t k = 0; k < e->nagents; k++)
        if (e->agents[k].swarm == si) {
            json_array_append_new(agents, agent_json(e, k, 0));
            if (e->agents[k].last_seen > last)
                last = e->agents[k].last_seen;
        }
    json_object_set_new(o, "agent_list", agents);
    json_object_set_new(o, "health", json_pack("{s:s,s:o}", "status", health(e, last),
                                               "last_heartbeat",
                                               last ? json_integer(last) : json_null()));
    return o;
}

static json_t *stats_json(const struct engine *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "tasks", counts_json(e->count));
    json_object_set_new(o, "swarms", json_integer(e->nswarms));
    json_object_set_new(o, "agents", json_integer(e->nagents));
    const struct engine_stats *st0 = &e->stats;
    uint32_t waiting = 0, held = 0;
    for (uint32_t i = 0; i < e->nswarms; i++)
        waiting += e->swarms[i].nwaiting;
    for (uint32_t i = 0; i < e->nagents; i++)
        held += e->agents[i].held;
    json_object_set_new(o, "waiting_claims", json_integer(waiting));
    json_object_set_new(o, "leases_held", json_integer(held));
    json_object_set_new(o, "event_seq", json_integer((json_int_t)e->chain_saved.seq));
    json_object_set_new(o, "witness_entries", json_integer((json_int_t)e->chain_saved.seq));
    json_object_set_new(o, "witness_checkpoint_size", json_integer((json_int_t)e->last_cp.tree_size));
    json_object_set_new(o, "witness_checkpoint_time", json_integer((json_int_t)e->last_cp.time));
    json_object_set_new(o, "witness_checkpoints", json_integer((json_int_t)st0->checkpoints));
    json_object_set_new(o, "durability",
                        json_string(e->durability == DURABILITY_FULL ? "full" : "relaxed"));
    const struct engine_stats *st = &e->stats;
    json_object_set_new(o, "batches", json_integer((json_int_t)st->batches));
    json_object_set_new(o, "commands", json_integer((json_int_t)st->commands));
    json_object_set_new(o, "commits", json_integer((json_int_t)st->commits));
    json_object_set_new(o, "commit_failures", json_integer((json_int_t)st->commit_failures));
    json_object_set_new(o, "claims", json_integer((json_int_t)st->claims));
    json_object_set_new(o, "pushes", json_integer((json_int_t)st->pushes));
    json_object_set_new(o, "leases_expired", json_integer((json_int_t)st->expired));
    json_object_set_new(o, "events", json_integer((json_int_t)st->events));
    json_object_set_new(o, "commit_seconds_total", json_real(st->commit_ns_total / 1e9));
    json_t *ch = json_array(), *bh = json_array();
    for (int i = 0; i < 14; i++)
        json_array_append_new(ch, json_integer((json_int_t)st->commit_hist[i]));
    for (int i = 0; i < 12; i++)
        json_array_append_new(bh, json_integer((json_int_t)st->batch_hist[i]));
    json_object_set_new(o, "commit_hist", ch);
    json_object_set_new(o, "batch_hist", bh);
    json_t *clh = json_array(), *puh = json_array();
    for (int i = 0; i < 14; i++) {
        json_array_append_new(clh, json_integer((json_int_t)st->claim_hist[i]));
        json_array_append_new(puh, json_integer((json_int_t)st->push_hist[i]));
    }
    json_object_set_new(o, "claim_hist", clh);
    json_object_set_new(o, "push_hist", puh);
    json_object_set_new(o, "claim_seconds_total", json_real(st->claim_ns_total / 1e9));
    json_object_set_new(o, "push_seconds_total", json_real(st->push_ns_total / 1e9));
    json_object_set_new(o, "claims_timed", json_integer((json_int_t)st->claims_timed));
    json_object_set_new(o, "pushes_timed", json_integer((json_int_t)st->pushes_timed));
    json_object_set_new(o, "escalations", json_integer((json_int_t)st->escalations));
    /* the governor at a glance */
    int open = 0, half = 0, tripped = 0, alert = 0;
    for (uint32_t i = 0; i < e->nagents; i++) {
        open += e->agents[i].brk.state == BRK_OPEN;
        half += e->agents[i].brk.state == BRK_HALF_OPEN;
    }
    json_t *sw = json_array();
    for (uint32_t i = 0; i < e->nswarms; i++) {
        const struct swarm *s = &e->swarms[i];
        tripped += s->state == SWARM_TRIPPED;
        alert += s->ledger.alert_level >= 1;
        if (s->ledger.spent || s->ledger.limit)
            json_array_append_new(sw, json_pack("{s:s,s:f,s:f,s:f}", "swarm", s->id, "spent",
                                                s->ledger.spent / 1e6, "limit", s->ledger.limit / 1e6,
                                                "reserved", s->ledger.reserved / 1e6));
    }
    json_object_set_new(o, "breakers_open", json_integer(open));
    json_object_set_new(o, "breakers_half_open", json_integer(half));
    json_object_set_new(o, "swarms_tripped", json_integer(tripped));
    json_object_set_new(o, "swarms_over_alert", json_integer(alert));
    json_object_set_new(o, "budget_swarms", sw);
    json_object_set_new(o, "global_spent", json_real(e->global.spent / 1e6));
    json_object_set_new(o, "global_limit", json_real(e->global.limit / 1e6));
    json_object_set_new(o, "global_reserved", json_real(e->global.reserved / 1e6));
    json_object_set_new(o, "blockers_open", json_integer(e->open_blockers));
    json_object_set_new(o, "store_unavailable", json_boolean(e->unavailable_until > e->now));
    return o;
}

/* The pre-commit guard's question: which of these files are leased to another live claim,
 * and is the asker's own lease (if it names one) still current? */
static void path_check(struct engine *e, struct cmd *c)
{
    json_t *in = json_loads(c->in.query.arg ? c->in.query.arg : "{}", 0, NULL);
    const char *lease = json_string_value(json_object_get(in, "lease"));
    uint32_t own = NONE;
    json_t *out = json_object();
    if (lease) {
        struct s2_error err = S2_ERROR_INIT;
        uint8_t hash[TOKEN_HASH_BYTES];
        char key[2 * TOKEN_HASH_BYTES + 1];
        auth_hash(lease, hash);
        sodium_bin2hex(key, sizeof key, hash, TOKEN_HASH_BYTES);
        uint32_t ti = map_get(&e->lease_ix, key);
        int valid = ti != MAP_NONE && task_at(e, ti)->due > e->now;
        if (valid)
            own = ti;
        json_object_set_new(out, "lease",
                            json_pack("{s:b,s:s?}", "valid", valid, "task",
                                      valid ? task_at(e, ti)->id : NULL));
        s2_error_release(&err);
    }
    json_t *conflicts = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(in, "paths"), i, p)
    {
        const char *path = json_string_value(p);
        for (uint32_t k = 0; path && k < e->pathed.n; k++) {
            uint32_t ci = e->pathed.v[k];
            const struct task *t = task_at(e, ci);
            if (ci == own)
                continue;
            for (size_t g = 0; g < t->paths->n; g++)
                if (model_paths_overlap(path, t->paths->v[g])) {
                    /* a swarm token learns that a path is taken, not what another swarm
                     * is doing there */
                    if (c->who.kind != PRIN_ADMIN && c->who.kind != PRIN_APPROVER &&
                        (!c->who.swarm || strcmp(c->who.swarm, e->swarms[t->swarm].id)) &&
                        !(c->who.kind == PRIN_TASK && own != NONE &&
                          task_at(e, own)->swarm == t->swarm)) {
                        json_array_append_new(
                            conflicts, json_pack("{s:s,s:s,s:s,s:I}", "path", path, "glob",
                                                 t->paths->v[g], "holder", "another swarm",
                                                 "expires_at", (json_int_t)t->due));
                        break;
                    }
                    json_array_append_new(
                        conflicts,
                        json_pack("{s:s,s:s,s:s,s:s?,s:s,s:I}", "path", path, "glob", t->paths->v[g],
                                  "task", t->id, "agent",
                                  t->owner != NONE ? e->agents[t->owner].id : NULL, "swarm",
                                  e->swarms[t->swarm].id, "expires_at", (json_int_t)t->due));
                    break;
                }
        }
    }
    json_object_set_new(out, "conflicts", conflicts);
    json_decref(in);
    c->out.json = out;
}

void engine_run_query(struct engine *e, struct cmd *c)
{
    const char *arg = c->in.query.arg;
    switch (c->in.query.what) {
    case Q_PATHS:
        path_check(e, c);
        break;
    case Q_POLICY:
    case Q_BUDGETS:
    case Q_BREAKERS:
    case Q_BLOCKERS:
    case Q_TASK_VISIBLE:
    case Q_CONTRACT:
    case Q_IDLE_TASKS:
    case Q_SLO:
        gov_query(e, c);
        break;
    case Q_SWARMS:
    case Q_OVERVIEW: {
        json_t *a = json_array();
        struct activity *act = activity_new(e);
        uint32_t start = 0;
        if (arg) {
            uint32_t si = map_get(&e->swarm_ix, arg);
            start = si == MAP_NONE ? e->nswarms : si + 1;
        }
        int limit = c->in.query.limit > 0 ? c->in.query.limit : 1000;
        uint32_t i;
        for (i = start; i < e->nswarms && (int)json_array_size(a) < limit; i++) {
            if (forbidden_swarm(c, e->swarms[i].id))
                continue;
            json_array_append_new(a, swarm_json(e, i, act));
        }
        c->out.json = json_object();
        json_object_set_new(c->out.json, "swarms", a);
        json_object_set_new(c->out.json, "next",
                            i < e->nswarms && json_array_size(a)
                                ? json_string(e->swarms[i - 1].id)
                                : json_null());
        if (c->in.query.what == Q_OVERVIEW)
            json_object_set_new(c->out.json, "totals", counts_json(e->count));
        free(act);
        break;
    }
    case Q_SWARM: {
        uint32_t si = find_swarm(e, c);
        if (si != NONE) {
            struct activity *act = activity_new(e);
            c->out.json = swarm_json(e, si, act);
            free(act);
        }
        break;
    }
    case Q_SWARM_STATUS: {
        uint32_t si = find_swarm(e, c);
        if (si != NONE) {
            struct activity *act = activity_new(e);
            c->out.json = status_json(e, si, act);
            free(act);
        }
        break;
    }
    case Q_AGENTS: {
        uint32_t only = NONE;
        if (arg) {
            only = find_swarm(e, c);
            if (only == NONE)
                break;
        }
        json_t *a = json_array();
        uint32_t i = 0;
        if (c->in.query.after) {
            uint32_t ai = map_get(&e->agent_ix, c->in.query.after);
            i = ai == MAP_NONE ? e->nagents : ai + 1;
        }
        /* no limit: every agent (the CLI's list); with one, a page and its cursor */
        size_t limit = c->in.query.limit > 0 ? (size_t)c->in.query.limit : SIZE_MAX;
        for (; i < e->nagents && json_array_size(a) < limit; i++) {
            const struct agent *ag = &e->agents[i];
            if ((only != NONE && ag->swarm != only) ||
                forbidden_swarm(c, e->swarms[ag->swarm].id))
                continue;
            json_array_append_new(a, agent_json(e, i, 0));
        }
        c->out.json = json_object();
        json_object_set_new(c->out.json, "agents", a);
        if (c->in.query.limit > 0)
            json_object_set_new(c->out.json, "next",
                                i < e->nagents && json_array_size(a)
                                    ? json_string(e->agents[i - 1].id)
                                    : json_null());
        break;
    }
    case Q_AGENT: {
        uint32_t ai = map_get(&e->agent_ix, arg ? arg : "");
        if (ai == MAP_NONE || forbidden_swarm(c, e->swarms[e->agents[ai].swarm].id)) {
            s2_fail(&c->err, S2_ENOTFOUND, "not_found", "agent '%s' does not exist",
                    arg ? arg : "");
            break;
        }
        c->out.json = agent_json(e, ai, 1);
        break;
    }
    case Q_MODELS: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < e->nmodels; i++) {
            json_t *m = json_object();
            json_object_set_new(m, "name", json_string(e->models[i].name));
            json_object_set_new(m, "tier", json_integer(e->models[i].tier));
            json_object_set_new(m, "usd_per_mtok_in", json_real(usd(e->models[i].usd_in_micro)));
            json_object_set_new(m, "usd_per_mtok_out",
                                json_real(usd(e->models[i].usd_out_micro)));
            json_array_append_new(a, m);
        }
        c->out.json = json_object();
        json_object_set_new(c->out.json, "models", a);
        break;
    }
    case Q_STATS:
        c->out.json = stats_json(e);
        break;
    }
}
