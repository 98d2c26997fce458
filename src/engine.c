/* engine.c: the domain rules and the batch loop. Only the engine thread runs this code
 * (engine_submit and engine_authenticate excepted). It must never answer a command before
 * the transaction holding its change has committed, and never leave memory and store
 * disagreeing: a failed batch is rolled back and the state reloaded from the store. */
#include "engine_int.h"
#include "keys.h"
#include "auth.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------ */
/* small helpers */

void u32vec_push(struct u32vec *v, uint32_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap;
        v->v = xgrow(v->v, sizeof *v->v, (size_t)v->n + 1, &cap);
        v->cap = (uint32_t)cap;
    }
    v->v[v->n++] = x;
}

void u32vec_release(struct u32vec *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

struct cmd *cmd_new(enum cmd_kind kind)
{
    struct cmd *c = xcalloc(1, sizeof *c);
    c->kind = kind;
    switch (kind) {
    case CMD_SWARM_ADD:
        swarm_spec_init(&c->in.swarm);
        break;
    case CMD_AGENT_ADD:
        agent_spec_init(&c->in.agent);
        break;
    case CMD_HEARTBEAT:
    case CMD_DONE:
    case CMD_FAIL:
        c->in.lease_op.usage.usd_micro = -1;
        c->in.lease_op.retry = 1;
        break;
    default:
        break;
    }
    return c;
}

void cmd_free(struct cmd *c)
{
    if (!c)
        return;
    switch (c->kind) {
    case CMD_SWARM_ADD:
        swarm_spec_release(&c->in.swarm);
        break;
    case CMD_SWARM_STATE:
        free(c->in.swarm_state.id);
        break;
    case CMD_AGENT_ADD:
        agent_spec_release(&c->in.agent);
        break;
    case CMD_MODEL_PUT:
        model_spec_release(&c->in.model);
        break;
    case CMD_TASK_ADD:
        for (size_t i = 0; i < c->in.tasks.n; i++)
            task_spec_release(&c->in.tasks.v[i]);
        free(c->in.tasks.v);
        break;
    case CMD_CLAIM:
        free(c->in.claim.agent);
        break;
    case CMD_HEARTBEAT:
    case CMD_DONE:
    case CMD_FAIL:
        free(c->in.lease_op.task);
        free(c->in.lease_op.lease);
        free(c->in.lease_op.result);
        free(c->in.lease_op.reason);
        usage_release(&c->in.lease_op.usage);
        break;
    case CMD_CANCEL:
        free(c->in.cancel.task);
        free(c->in.cancel.reason);
        break;
    case CMD_APPROVE:
        free(c->in.approve.task);
        free(c->in.approve.comment);
        break;
    case CMD_RELEASE:
        free(c->in.release.task);
        break;
    case CMD_QUERY:
        free(c->in.query.arg);
        free(c->in.query.after);
        break;
    case CMD_POLICY_PUT:
        json_decref(c->in.policy.json);
        break;
    case CMD_BUDGET_SET:
        free(c->in.budget.swarm);
        break;
    case CMD_BREAKER_RESET:
        free(c->in.breaker.id);
        break;
    case CMD_BLOCK:
    case CMD_UNBLOCK:
        free(c->in.block.task);
        free(c->in.block.lease);
        strvec_release(&c->in.block.needs);
        free(c->in.block.reason);
        break;
    case CMD_POST:
    case CMD_VERDICT:
        free(c->in.thread.task);
        free(c->in.thread.lease);
        free(c->in.thread.body);
        break;
    case CMD_ESCALATION_ACK:
        break;
    case CMD_APPROVER_ADD:
        free(c->in.approver.name);
        break;
    case CMD_SWARM_TEXT:
        free(c->in.swarm_text.swarm);
        free(c->in.swarm_text.json);
        break;
    }
    s2_error_release(&c->err);
    free(c->out.token);
    free(c->out.task_id);
    if (c->out.lease)
        sodium_memzero(c->out.lease, strlen(c->out.lease));
    free(c->out.lease);
    if (c->out.ids) {
        for (size_t i = 0; i < c->in.tasks.n; i++)
            free(c->out.ids[i]);
    }
    free(c->out.ids);
    free(c->out.rowids);
    free(c->out.states);
    if (c->out.json)
        json_decref(c->out.json);
    free(c);
}

static int is_write(const struct cmd *c)
{
    return c->kind != CMD_QUERY;
}

/* ------------------------------------------------------------------------------------ */
/* heaps */

static int ready_less(void *ctx, uint32_t a, uint32_t b)
{
    struct engine *e = ctx;
    const struct task *x = task_at(e, a), *y = task_at(e, b);
    /* critical path: each unfinished task a task transitively blocks adds one to its
     * priority, so a blocker is taken before equal work that blocks nothing */
    int64_t px = (int64_t)x->priority + x->weight, py = (int64_t)y->priority + y->weight;
    if (px != py)
        return px > py;
    return x->rowid < y->rowid;
}

static int due_less(void *ctx, uint32_t a, uint32_t b)
{
    struct engine *e = ctx;
    const struct task *x = task_at(e, a), *y = task_at(e, b);
    if (x->due != y->due)
        return x->due < y->due;
    return x->rowid < y->rowid;
}

static void task_setpos(void *ctx, uint32_t item, uint32_t pos)
{
    task_at(ctx, item)->hpos = pos;
}

static int waiter_less(void *ctx, uint32_t a, uint32_t b)
{
    struct engine *e = ctx;
    if (e->waiters[a].deadline != e->waiters[b].deadline)
        return e->waiters[a].deadline < e->waiters[b].deadline;
    return a < b;
}

static void waiter_setpos(void *ctx, uint32_t item, uint32_t pos)
{
    struct engine *e = ctx;
    e->waiters[item].hpos = pos;
}

/* ------------------------------------------------------------------------------------ */
/* interning */

uint32_t eng_cap(struct engine *e, const char *name)
{
    uint32_t id = map_get(&e->cap_ix, name);
    if (id != MAP_NONE)
        return id;
    GROW(e, e->capnames, e->ncapnames, e->capcapnames);
    e->capnames[e->ncapnames] = xstrdup(name);
    map_put(&e->cap_ix, e->capnames[e->ncapnames], e->ncapnames);
    return e->ncapnames++;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint32_t eng_reqset(struct engine *e, const struct strvec *caps)
{
    struct strvec sorted = STRVEC_INIT;
    strvec_copy(&sorted, caps);
    strvec_sort(&sorted);
    char *key = strvec_join(&sorted, "\n");
    uint32_t id = map_get(&e->reqset_ix, key);
    if (id != MAP_NONE) {
        free(key);
        strvec_release(&sorted);
        return id;
    }
    GROW(e, e->reqsets, e->nreqsets, e->capreqsets);
    struct reqset *rs = &e->reqsets[e->nreqsets];
    rs->key = key;
    rs->n = (uint32_t)sorted.n;
    rs->caps = xcalloc(sorted.n ? sorted.n : 1, sizeof *rs->caps);
    for (size_t i = 0; i < sorted.n; i++)
        rs->caps[i] = eng_cap(e, sorted.v[i]);
    qsort(rs->caps, rs->n, sizeof *rs->caps, cmp_u32);
    strvec_release(&sorted);
    map_put(&e->reqset_ix, rs->key, e->nreqsets);
    return e->nreqsets++;
}

/* ------------------------------------------------------------------------------------ */
/* the batch: transaction, events, replies */

int eng_tx(struct engine *e)
{
    if (e->batch_failed)
        return -1;
    if (e->in_tx)
        return 0;
    if (store_begin(e->store, &e->batch_err)) {
        e->batch_failed = 1;
        return -1;
    }
    e->in_tx = 1;
    return 0;
}

/* A store write failed: the whole batch will be rolled back. */
int eng_store_failed(struct engine *e, struct s2_error *err)
{
    if (!e->batch_failed) {
        s2_error_move(&e->batch_err, err);
        e->batch_failed = 1;
    }
    s2_error_release(err);
    return -1;
}

/* Who the current command acts for, as witness entries name it. */
static const char *actor_of(const struct cmd *c, char *buf, size_t len)
{
    if (!c)
        return "system";
    if (c->who.kind == PRIN_ADMIN)
        return "admin";
    if (c->who.kind == PRIN_TASK) {
        snprintf(buf, len, "task:%s", c->who.task);
        return buf;
    }
    if (c->who.kind == PRIN_APPROVER) {
        snprintf(buf, len, "approver:%s", c->who.name ? c->who.name : "?");
        return buf;
    }
    snprintf(buf, len, "swarm:%s", c->who.swarm ? c->who.swarm : "?");
    return buf;
}

/* Record a state change: one witness entry, written in the batch's transaction, and the
 * event the stream publishes once the batch commits. params: a JSON object text or NULL. */
void eng_emit(struct engine *e, const char *op, uint32_t swarm, const struct task *t,
                 uint32_t agent, const char *params)
{
    if (eng_tx(e))
        return; /* the batch is failing: it will be rolled back, entries and all */
    char actor[S2_ID_MAX + 16];
    struct witness_entry w = {0};
    w.time = e->now;
    w.actor = (char *)actor_of(e->cur, actor, sizeof actor);
    w.swarm = swarm != NONE ? e->swarms[swarm].id : NULL;
    w.task = t ? t->id : NULL;
    w.has_phase = t != NULL;
    w.phase = t ? t->phase : 0;
    w.agent = agent != NONE ? e->agents[agent].id : NULL;
    w.op = (char *)op;
    /* A task's state after the change is part of the record (and of its hash). */
    struct buf pb = BUF_INIT;
    if (!params)
        params = "{}";
    if (t) {
        buf_addf(&pb, "{\"state\":\"%s\"", task_state_name(t->state));
        if (strcmp(params, "{}"))
            buf_addch(&pb, ',');
        buf_adds(&pb, params + 1);
        params = pb.ptr;
    }
    w.params = (char *)params;
    if (e->cur && e->cur->trace_id[0]) {
        w.trace_id = (char *)e->cur->trace_id;
    } else {
        if (!e->timer_trace[0])
            witness_new_trace_id(e->timer_trace);
        w.trace_id = e->timer_trace;
    }
    witness_chain_append(&e->chain, &w);
    struct s2_error err = S2_ERROR_INIT;
    if (store_witness_append(e->store, &w, &err)) {
        buf_release(&pb);
        eng_store_failed(e, &err);
        return;
    }
    GROW(e, e->bev, e->nbev, e->capbev);
    struct event *ev = &e->bev[e->nbev++];
    struct buf b = BUF_INIT;
    char extra[48] = "";
    if (t)
        snprintf(extra, sizeof extra, ",\"state\":\"%s\"", task_state_name(t->state));
    witness_entry_json(&b, &w, extra);
    buf_release(&pb);
    ev->seq = w.seq;
    ev->swarm = swarm != NONE ? xstrdup(e->swarms[swarm].id) : NULL;
    ev->data = buf_detach(&b, &ev->len);
    e->stats.events++;
}

/* Close the batch's part of the witness log: a signed checkpoint of the new tree head and
 * the frontier a restart resumes from, in the same transaction. */
static int witness_seal(struct engine *e, struct s2_error *err)
{
    if (e->chain.seq == e->chain_saved.seq)
        return 0;
    struct checkpoint cp;
    witness_chain_checkpoint(&e->chain, e->now, e->sk, &cp);
    char *frontier = merkle_frontier_format(&e->chain.tree);
    int rc = store_checkpoint_add(e->store, &cp, frontier, err);
    free(frontier);
    if (!rc) {
        e->last_cp = cp;
        e->stats.checkpoints++;
    }
    return rc;
}

void eng_reply(struct engine *e, struct cmd *c)
{
    if (c->kind == CMD_CLAIM && c->err.kind == S2_OK) {
        if (c->out.got)
            e->stats.claims++;
    }
    GROW(e, e->replies, e->nreplies, e->capreplies);
    e->replies[e->nreplies++] = c;
}

/* ------------------------------------------------------------------------------------ */
/* tables */

static void model_set(struct engine *e, const struct model_spec *m)
{
    uint32_t i = map_get(&e->model_ix, m->name);
    if (i == MAP_NONE) {
        GROW(e, e->models, e->nmodels, e->capmodels);
        i = e->nmodels++;
        e->models[i].name = xstrdup(m->name);
        map_put(&e->model_ix, e->models[i].name, i);
    }
    e->models[i].tier = (int)m->tier;
    e->models[i].usd_in_micro = m->usd_in_micro;
    e->models[i].usd_out_micro = m->usd_out_micro;
    e->top_tier = 0;
    for (uint32_t k = 0; k < e->nmodels; k++)
        if (e->models[k].tier > e->top_tier)
            e->top_tier = e->models[k].tier;
}

static uint32_t swarm_insert(struct engine *e, const char *id, const char *role, int relation,
                             const char *caps_nl, const struct strvec *caps, int64_t budget,
                             const char *branch, int state, int64_t created_at)
{
    GROW(e, e->swarms, e->nswarms, e->capswarms);
    uint32_t i = e->nswarms++;
    struct swarm *s = &e->swarms[i];
    memset(s, 0, sizeof *s);
    s->id = xstrdup(id);
    s->role = xstrdup(role ? role : "");
    s->branch = branch ? xstrdup(branch) : NULL;
    s->relation = relation;
    s->state = state;
    if (caps)
        strvec_copy(&s->caps, caps);
    else
        strvec_split(&s->caps, caps_nl, '\n');
    s->ledger.limit = budget;
    s->created_at = created_at;
    s->wait_head = s->wait_tail = NONE;
    map_put(&e->swarm_ix, s->id, i);
    return i;
}

static uint32_t agent_insert(struct engine *e, const char *id, uint32_t swarm, uint32_t model,
                             const char *caps_nl, const struct strvec *caps, int64_t max_leases,
                             int64_t created_at, int64_t last_seen)
{
    GROW(e, e->agents, e->nagents, e->capagents);
    uint32_t i = e->nagents++;
    struct agent *a = &e->agents[i];
    memset(a, 0, sizeof *a);
    a->id = xstrdup(id);
    a->swarm = swarm;
    a->model = model;
    if (caps)
        strvec_copy(&a->caps, caps);
    else
        strvec_split(&a->caps, caps_nl, '\n');
    a->ncaps = (uint32_t)a->caps.n;
    a->capids = xcalloc(a->ncaps ? a->ncaps : 1, sizeof *a->capids);
    for (uint32_t k = 0; k < a->ncaps; k++)
        a->capids[k] = eng_cap(e, a->caps.v[k]);
    qsort(a->capids, a->ncaps, sizeof *a->capids, cmp_u32);
    a->max_leases = (uint32_t)max_leases;
    a->created_at = created_at;
    e->swarms[swarm].nagents++;
    a->last_seen = a->seen_stored = last_seen;
    map_put(&e->agent_ix, a->id, i);
    return i;
}

int eng_agent_tier(const struct engine *e, const struct agent *a)
{
    return a->model == NONE ? 0 : e->models[a->model].tier;
}

struct phase_slot *eng_phase_slot(struct swarm *s, int64_t phase)
{
    uint32_t lo = 0, hi = s->nphases;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (s->phases[mid].phase < phase)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->nphases && s->phases[lo].phase == phase)
        return &s->phases[lo];
    GROW(e, s->phases, s->nphases, s->capphases);
    memmove(&s->phases[lo + 1], &s->phases[lo], (s->nphases - lo) * sizeof *s->phases);
    s->nphases++;
    memset(&s->phases[lo], 0, sizeof s->phases[lo]);
    s->phases[lo].phase = phase;
    return &s->phases[lo];
}

/* The lowest phase of the swarm with unfinished tasks, or INT64_MAX. */
int64_t eng_first_open_phase(const struct swarm *s)
{
    for (uint32_t i = 0; i < s->nphases; i++)
        if (s->phases[i].open)
            return s->phases[i].phase;
    return INT64_MAX;
}

uint32_t eng_queue_for(struct engine *e, struct swarm *s, uint32_t reqset, int min_tier)
{
    for (uint32_t i = 0; i < s->nqueues; i++)
        if (s->queues[i].reqset == reqset && s->queues[i].min_tier == min_tier)
            return i;
    GROW(e, s->queues, s->nqueues, s->capqueues);
    struct readyq *q = &s->queues[s->nqueues];
    q->reqset = reqset;
    q->min_tier = min_tier;
    heap_init(&q->heap, ready_less, task_setpos, e);
    s->qgen++;
    return s->nqueues++;
}

int eng_is_open(int state)
{
    return state != TASK_DONE && state != TASK_CANCELLED;
}

static void count_state(struct engine *e, struct task *t, int from, int to)
{
    struct swarm *s = &e->swarms[t->swarm];
    if (from >= 0) {
        e->count[from]--;
        s->count[from]--;
    }
    e->count[to]++;
    s->count[to]++;
}

void eng_set_state(struct engine *e, struct task *t, int to)
{
    count_state(e, t, t->state, to);
    t->state = (uint8_t)to;
}

uint32_t eng_task_alloc(struct engine *e)
{
    uint32_t i = e->ntasks;
    uint32_t chunk = i >> TASK_CHUNK_BITS;
    if (chunk >= e->capchunks) {
        size_t cap = e->capchunks;
        e->chunks = xgrow(e->chunks, sizeof *e->chunks, (size_t)chunk + 1, &cap);
        for (size_t k = e->capchunks; k < cap; k++)
            e->chunks[k] = NULL;
        e->capchunks = (uint32_t)cap;
    }
    if (!e->chunks[chunk])
        e->chunks[chunk] = xcalloc(TASK_CHUNK, sizeof(struct task));
    e->ntasks++;
    struct task *t = task_at(e, i);
    memset(t, 0, sizeof *t);
    t->owner = NONE;
    t->hpos = HEAP_NONE;
    t->blocker = NONE;
    t->help_for = NONE;
    return i;
}

/* Link a task into the indexes (state as given, not yet queued). deps: indexes of the tasks
 * it depends on. */
void eng_task_link(struct engine *e, uint32_t ti, const uint32_t *deps, size_t ndeps)
{
    struct task *t = task_at(e, ti);
    struct swarm *s = &e->swarms[t->swarm];
    map_put(&e->task_ix, t->id, ti);
    t->queue = eng_queue_for(e, s, t->reqset, t->min_tier);
    struct phase_slot *ps = eng_phase_slot(s, t->phase);
    u32vec_push(&ps->tasks, ti);
    /* help and idle work made by the governor never holds a phase open: an agent always
     * finds idle work, so counting it would keep the next phase closed for ever */
    if (eng_is_open(t->state) && t->kind == TASK_KIND_NORMAL)
        ps->open++;
    for (size_t k = 0; k < ndeps; k++) {
        struct task *d = task_at(e, deps[k]);
        u32vec_push(&d->dependents, ti);
        u32vec_push(&t->deps, deps[k]);
        if (d->state != TASK_DONE)
            t->unmet++;
    }
    count_state(e, t, -1, t->state);
}

/* The critical path: a task's weight counts the unfinished tasks it transitively blocks.
 * When ti appears (delta +1) or goes away unfinished (-1), each distinct task it depends on,
 * directly or not, gains or loses one; ready ones move in their queue. Bounded, so a huge
 * chain costs at most WEIGH_MAX steps per task (beyond that the boost is approximate). */
#define WEIGH_MAX 4096

void eng_weigh(struct engine *e, uint32_t ti, int delta)
{
    struct task *t = task_at(e, ti);
    if (!t->deps.n)
        return;
    uint32_t gen = ++e->mark_gen;
    struct u32vec stack = {0};
    for (uint32_t k = 0; k < t->deps.n; k++)
        u32vec_push(&stack, t->deps.v[k]);
    uint32_t seen = 0;
    while (stack.n && seen < WEIGH_MAX) {
        uint32_t ai = stack.v[--stack.n];
        struct task *a = task_at(e, ai);
        if (a->mark == gen)
            continue;
        a->mark = gen;
        seen++;
        if (delta > 0 || a->weight > 0)
            a->weight = (uint32_t)((int64_t)a->weight + delta);
        if (a->state == TASK_READY && a->hpos != HEAP_NONE && a->due == 0)
            heap_fix(&e->swarms[a->swarm].queues[a->queue].heap, a->hpos);
        for (uint32_t k = 0; k < a->deps.n; k++)
            if (task_at(e, a->deps.v[k])->state != TASK_DONE)
                u32vec_push(&stack, a->deps.v[k]);
    }
    u32vec_release(&stack);
}

/* ------------------------------------------------------------------------------------ */
/* persistence of a task's dynamic fields */

int eng_persist(struct engine *e, struct task *t)
{
    if (eng_tx(e))
        return -1;
    struct task_dyn d = {
        .rowid = t->rowid,
        .state = t->state,
        .attempts = t->attempts,
        .owner = t->owner == NONE ? NULL : e->agents[t->owner].id,
        .fence = t->fence,
        .lease_hash = t->state == TASK_CLAIMED ? t->lease_hash : NULL,
        .lease_expires = t->state == TASK_CLAIMED ? t->due : 0,
        .ready_at = t->state == TASK_READY ? t->due : 0,
        .cost_micro = t->cost_micro,
        .tokens_in = t->tokens_in,
        .tokens_out = t->tokens_out,
        .approvals = t->approvals,
        .updated_at = e->now,
        .reserved_micro = t->reserved_micro,
        .min_tier = t->min_tier,
    };
    char approval[32];
    model_format_approval(t->approval_kind, t->approvals_needed, approval, sizeof approval);
    d.approval = approval;
    struct s2_error err = S2_ERROR_INIT;
    if (store_task_update(e->store, &d, &err))
        return eng_store_failed(e, &err);
    e->mutated = 1;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* readiness */

static int approved(const struct task *t)
{
    return t->approval_kind == APPROVAL_NONE || t->approvals >= t->approvals_needed;
}

int eng_can_be_ready(const struct engine *e, const struct task *t)
{
    if (t->unmet || !approved(t))
        return 0;
    if (t->phase_barrier && eng_first_open_phase(&e->swarms[t->swarm]) < t->phase)
        return 0;
    return 1;
}

void eng_mark_dirty(struct engine *e, uint32_t swarm)
{
    struct swarm *s = &e->swarms[swarm];
    if (!s->dirty && s->nwaiting) {
        s->dirty = 1;
        u32vec_push(&e->dirty_swarms, swarm);
    }
}

/* Put a READY task where claims find it: its queue, or the timer heap while it backs off. */
void eng_enqueue(struct engine *e, uint32_t ti)
{
    struct task *t = task_at(e, ti);
    if (t->due > e->now) {
        heap_push(&e->timers, ti);
        return;
    }
    t->due = 0;
    t->ready_ns = clock_mono_ns();
    heap_push(&e->swarms[t->swarm].queues[t->queue].heap, ti);
    eng_mark_dirty(e, t->swarm);
}

/* Take a READY task out of its queue or the timer heap. */
void eng_dequeue(struct engine *e, uint32_t ti)
{
    struct task *t = task_at(e, ti);
    if (t->hpos == HEAP_NONE)
        return;
    if (t->due > 0 && t->state == TASK_READY && e->timers.n > t->hpos &&
        e->timers.v[t->hpos] == ti)
        heap_remove(&e->timers, t->hpos);
    else
        heap_remove(&e->swarms[t->swarm].queues[t->queue].heap, t->hpos);
}

void eng_make_ready(struct engine *e, uint32_t ti, const char *why)
{
    struct task *t = task_at(e, ti);
    eng_set_state(e, t, TASK_READY);
    t->due = 0;
    if (eng_persist(e, t))
        return;
    eng_enqueue(e, ti);
    char params[96];
    snprintf(params, sizeof params, "{\"why\":\"%s\"}", why);
    eng_emit(e, "task.ready", t->swarm, t, NONE, params);
}

void eng_reevaluate(struct engine *e, uint32_t ti, const char *why)
{
    struct task *t = task_at(e, ti);
    if (t->state == TASK_PENDING && eng_can_be_ready(e, t))
        eng_make_ready(e, ti, why);
}

/* A READY task that may no longer run (an earlier phase got new work) goes back to pending. */
void eng_make_pending(struct engine *e, uint32_t ti, const char *why)
{
    struct task *t = task_at(e, ti);
    eng_dequeue(e, ti);
    eng_set_state(e, t, TASK_PENDING);
    t->due = 0;
    if (eng_persist(e, t))
        return;
    char params[96];
    snprintf(params, sizeof params, "{\"why\":\"%s\"}", why);
    eng_emit(e, "task.pending", t->swarm, t, NONE, params);
}

/* The phase barrier may have lifted: let waiting tasks of the new first open phase go. */
static void phase_changed(struct engine *e, uint32_t swarm)
{
    struct swarm *s = &e->swarms[swarm];
    int64_t first = eng_first_open_phase(s);
    for (uint32_t i = 0; i < s->nphases && s->phases[i].phase <= first; i++) {
        struct phase_slot *ps = &s->phases[i];
        if (!ps->open)
            continue;
        for (uint32_t k = 0; k < ps->tasks.n; k++)
            eng_reevaluate(e, ps->tasks.v[k], "phase");
    }
}

/* A task left the open set (done or cancelled): phase accounting and dependents. */
void eng_settle(struct engine *e, uint32_t ti, int was_open)
{
    struct task *t = task_at(e, ti);
    struct swarm *s = &e->swarms[t->swarm];
    if (was_open && !eng_is_open(t->state) && t->kind == TASK_KIND_NORMAL) {
        struct phase_slot *ps = eng_phase_slot(s, t->phase);
        int64_t before = eng_first_open_phase(s);
        ps->open--;
        if (eng_first_open_phase(s) != before)
            phase_changed(e, t->swarm);
    }
    if (t->state == TASK_DONE) {
        for (uint32_t k = 0; k < t->dependents.n; k++) {
            struct task *d = task_at(e, t->dependents.v[k]);
            if (d->unmet && --d->unmet == 0)
                eng_reevaluate(e, t->dependents.v[k], "dependencies");
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* leases */

static char *lease_token(uint64_t fence, uint8_t hash[TOKEN_HASH_BYTES])
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "s2l_%" PRIu64, fence);
    return auth_token_new(prefix, hash);
}

uint64_t engine_lease_fence(const char *lease)
{
    if (strncmp(lease, "s2l_", 4))
        return 0;
    /* digits only: strtoull alone would take signs and blanks */
    if (lease[4] < '0' || lease[4] > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(lease + 4, &end, 10);
    if (errno || *end != '_')
        return 0;
    return v;
}

static int64_t backoff_delay(const struct task *t)
{
    if (t->backoff_ms <= 0)
        return 0;
    int64_t d = t->backoff_ms;
    for (int i = 1; i < t->attempts && d < S2_BACKOFF_CAP_MS; i++)
        d *= 2;
    return d > S2_BACKOFF_CAP_MS ? S2_BACKOFF_CAP_MS : d;
}

void eng_agent_touch(struct engine *e, uint32_t ai)
{
    struct agent *a = &e->agents[ai];
    a->last_seen = e->now;
    if (a->seen_stored + 5000 <= e->now && a->touched_in != e->stats.batches) {
        a->touched_in = e->stats.batches;
        u32vec_push(&e->touched_agents, ai);
    }
}

/* Hand task ti to agent ai. Fills the claim outputs of c. */
int eng_claim_task(struct engine *e, uint32_t ti, uint32_t ai, struct cmd *c)
{
    struct task *t = task_at(e, ti);
    struct agent *a = &e->agents[ai];
    eng_dequeue(e, ti);
    eng_set_state(e, t, TASK_CLAIMED);
    t->attempts++;
    t->fence++;
    t->owner = ai;
    t->due = e->now + t->lease_ms;
    t->claimed_at = e->now;
    gov_reserve(e, ti, ai);
    char *lease = lease_token(t->fence, t->lease_hash);
    if (eng_persist(e, t)) {
        free(lease);
        return -1;
    }
    heap_push(&e->timers, ti);
    eng_lease_index(e, ti, 1);
    if (t->paths)
        u32vec_push(&e->pathed, ti);
    a->held++;
    eng_agent_touch(e, ai);
    c->out.got = 1;
    c->out.rowid = t->rowid;
    c->out.task_id = xstrdup(t->id);
    c->out.lease = lease;
    c->out.fence = t->fence;
    c->out.expires_at = t->due;
    c->out.attempts = t->attempts;
    c->out.state = t->state;
    char params[160];
    snprintf(params, sizeof params,
             "{\"fence\":%" PRIu64 ",\"attempt\":%d,\"expires_at\":%" PRId64 "}", t->fence,
             t->attempts, t->due);
    eng_emit(e, "task.claim", t->swarm, t, ai, params);
    c->out.witness_seq = e->chain.seq; /* the entry just appended */
    return 0;
}

/* The holder lets go of a claimed task (done, fail, expiry, cancel, release). */
void eng_lease_end(struct engine *e, struct task *t)
{
    gov_release(e, t);
    if (t->paths) {
        /* its paths are free again: tasks passed over for them may go now */
        for (uint32_t k = 0; k < e->pathed.n; k++)
            if (task_at(e, e->pathed.v[k]) == t) {
                e->pathed.v[k] = e->pathed.v[--e->pathed.n];
                break;
            }
        for (uint32_t si = 0; si < e->nswarms; si++)
            eng_mark_dirty(e, si);
    }
    if (t->lease_key) {
        map_del(&e->lease_ix, t->lease_key);
        free(t->lease_key);
        t->lease_key = NULL;
    }
    if (t->hpos != HEAP_NONE)
        heap_remove(&e->timers, t->hpos);
    if (t->owner != NONE && e->agents[t->owner].held)
        e->agents[t->owner].held--;
    sodium_memzero(t->lease_hash, sizeof t->lease_hash);
    t->due = 0;
}

/* A claimed task came back without success: retry after backoff, or dead. Returns the time
 * it may run again (0 if dead). */
int64_t eng_requeue_or_die(struct engine *e, uint32_t ti, const char *op, const char *reason,
                              int retry)
{
    struct task *t = task_at(e, ti);
    uint32_t owner = t->owner;
    gov_outcome(e, ti, owner, !strcmp(op, "task.expire") ? SLO_EXPIRED : SLO_FAILED);
    eng_lease_end(e, t);
    gov_failed(e, ti, owner);
    if (retry && t->attempts < t->max_attempts)
        gov_cascade(e, ti, owner);
    int64_t retry_at = 0;
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"reason\":");
    buf_add_json_str(&p, reason ? reason : "");
    if (retry && t->attempts < t->max_attempts) {
        /* back to the queue after a backoff, unless the rules now hold it (an earlier phase
         * of its swarm got new work meanwhile): then it waits, pending, like any task */
        int ready = eng_can_be_ready(e, t);
        eng_set_state(e, t, ready ? TASK_READY : TASK_PENDING);
        t->due = ready ? e->now + backoff_delay(t) : 0;
        retry_at = ready ? t->due : 0;
        if (!eng_persist(e, t) && ready)
            eng_enqueue(e, ti);
        if (ready)
            buf_addf(&p, ",\"next\":\"retry\",\"retry_at\":%" PRId64 "}", retry_at);
        else
            buf_adds(&p, ",\"next\":\"pending\"}");
    } else {
        eng_set_state(e, t, TASK_DEAD);
        eng_persist(e, t);
        buf_addf(&p, ",\"next\":\"dead\",\"attempts\":%d}", t->attempts);
    }
    eng_emit(e, op, t->swarm, t, owner, p.ptr);
    buf_release(&p);
    if (t->state == TASK_DEAD) {
        gov_dead(e, ti, reason);
        gov_task_closed(e, ti);
    }
    return retry_at;
}

static void expire(struct engine *e, uint32_t ti)
{
    struct task *t = task_at(e, ti);
    e->stats.expired++;
    struct s2_error err = S2_ERROR_INIT;
    char reason[96];
    snprintf(reason, sizeof reason, "lease %" PRIu64 " expired", t->fence);
    eng_requeue_or_die(e, ti, "task.expire", reason, 1);
    if (!e->batch_failed && eng_tx(e) == 0 &&
        store_task_outcome(e->store, t->rowid, NULL, reason, 0, &err))
        eng_store_failed(e, &err);
}

/* ------------------------------------------------------------------------------------ */
/* eligibility and picking */

void eng_agent_elig(struct engine *e, struct agent *a)
{
    struct swarm *s = &e->swarms[a->swarm];
    if (a->elig_valid && a->elig_gen == s->qgen)
        return;
    a->nelig = 0;
    int tier = eng_agent_tier(e, a);
    for (uint32_t q = 0; q < s->nqueues; q++) {
        const struct readyq *rq = &s->queues[q];
        const struct reqset *rs = &e->reqsets[rq->reqset];
        if (tier >= rq->min_tier &&
            gov_qualifies(&e->policy, gov_match(rs->caps, rs->n, a->capids, a->ncaps))) {
            GROW(e, a->elig, a->nelig, a->capelig);
            a->elig[a->nelig++] = q;
        }
    }
    a->elig_gen = s->qgen;
    a->elig_valid = 1;
}

/* The best ready task agent ai may take now, or NONE. O(queues of its swarm). */
/* The claimed task whose paths overlap ti's, or NONE. */
uint32_t eng_path_conflict(const struct engine *e, uint32_t ti)
{
    const struct task *t = task_at(e, ti);
    if (!t->paths)
        return NONE;
    for (uint32_t k = 0; k < e->pathed.n; k++) {
        uint32_t ci = e->pathed.v[k];
        const struct task *c = task_at(e, ci);
        if (ci == ti)
            continue;
        for (size_t x = 0; x < t->paths->n; x++)
            for (size_t y = 0; y < c->paths->n; y++)
                if (model_paths_overlap(t->paths->v[x], c->paths->v[y]))
                    return ci;
    }
    return NONE;
}

static uint32_t pick_top(struct engine *e, struct agent *a, struct swarm *s)
{
    uint32_t best = NONE;
    for (uint32_t k = 0; k < a->nelig; k++) {
        uint32_t top = heap_top(&s->queues[a->elig[k]].heap);
        if (top != HEAP_NONE && (best == NONE || ready_less(e, top, best)))
            best = top;
    }
    return best;
}

/* The best ready task agent ai may take now, or NONE. O(queues of its swarm), plus the tasks
 * passed over because their paths overlap a live claim (they go back to their queues). */
#define PATH_SKIP_MAX 64

uint32_t eng_pick(struct engine *e, uint32_t ai)
{
    struct agent *a = &e->agents[ai];
    struct swarm *s = &e->swarms[a->swarm];
    eng_agent_elig(e, a);
    uint32_t best = pick_top(e, a, s);
    if (best == NONE || !e->pathed.n)
        return best;
    uint32_t skipped[PATH_SKIP_MAX], n = 0;
    while (best != NONE && eng_path_conflict(e, best) != NONE) {
        struct task *t = task_at(e, best);
        if (n == PATH_SKIP_MAX) {
            best = NONE;
            break;
        }
        heap_remove(&s->queues[t->queue].heap, t->hpos);
        skipped[n++] = best;
        best = pick_top(e, a, s);
    }
    for (uint32_t k = 0; k < n; k++) {
        struct task *t = task_at(e, skipped[k]);
        heap_push(&s->queues[t->queue].heap, skipped[k]);
    }
    return best;
}

/* ------------------------------------------------------------------------------------ */
/* waiters (long-poll claims) */

void eng_waiter_unlink(struct engine *e, uint32_t wi)
{
    struct waiter *w = &e->waiters[wi];
    struct swarm *s = &e->swarms[w->swarm];
    if (w->prev != NONE)
        e->waiters[w->prev].next = w->next;
    else
        s->wait_head = w->next;
    if (w->next != NONE)
        e->waiters[w->next].prev = w->prev;
    else
        s->wait_tail = w->prev;
    s->nwaiting--;
    if (w->hpos != HEAP_NONE)
        heap_remove(&e->waiter_timers, w->hpos);
    w->cmd = NULL;
    w->next = e->free_waiter;
    e->free_waiter = wi;
}

static void waiter_add(struct engine *e, struct cmd *c, uint32_t ai, int64_t deadline)
{
    uint32_t wi = e->free_waiter;
    if (wi != NONE) {
        e->free_waiter = e->waiters[wi].next;
    } else {
        GROW(e, e->waiters, e->nwaiters, e->capwaiters);
        wi = e->nwaiters++;
    }
    struct waiter *w = &e->waiters[wi];
    struct agent *a = &e->agents[ai];
    struct swarm *s = &e->swarms[a->swarm];
    w->cmd = c;
    w->agent = ai;
    w->swarm = a->swarm;
    w->deadline = deadline;
    w->hpos = HEAP_NONE;
    w->next = NONE;
    w->prev = s->wait_tail;
    if (s->wait_tail != NONE)
        e->waiters[s->wait_tail].next = wi;
    else
        s->wait_head = wi;
    s->wait_tail = wi;
    s->nwaiting++;
    heap_push(&e->waiter_timers, wi);
}

/* Give newly ready work to claims waiting in the dirty swarms, oldest claim first. */
void eng_match_waiters(struct engine *e)
{
    for (uint32_t k = 0; k < e->dirty_swarms.n; k++) {
        uint32_t si = e->dirty_swarms.v[k];
        struct swarm *s = &e->swarms[si];
        s->dirty = 0;
        if (s->state != SWARM_ACTIVE)
            continue;
        for (uint32_t wi = s->wait_head; wi != NONE && !e->batch_failed;) {
            uint32_t next = e->waiters[wi].next;
            struct waiter *w = &e->waiters[wi];
            struct agent *a = &e->agents[w->agent];
            if (a->held < a->max_leases) {
                uint32_t ti = eng_pick(e, w->agent);
                if (ti != NONE) {
                    struct cmd *c = w->cmd;
                    uint32_t ai = w->agent;
                    eng_waiter_unlink(e, wi);
                    /* a budget or breaker that tripped meanwhile answers the waiter */
                    if (!gov_may_claim(e, ai, &c->err) && !gov_can_reserve_task(e, ti, &c->err) &&
                        eng_claim_task(e, ti, ai, c) == 0) {
                        e->stats.pushes++;
                        c->out.push_from_ns = task_at(e, ti)->ready_ns;
                    }
                    eng_reply(e, c);
                }
            }
            wi = next;
        }
    }
    e->dirty_swarms.n = 0;
}

/* ------------------------------------------------------------------------------------ */
/* authorisation */

int eng_may_act(const struct principal *who, const char *swarm, struct s2_error *err)
{
    if (who->kind == PRIN_ADMIN)
        return 0;
    if (who->kind == PRIN_APPROVER)
        return s2_fail(err, S2_EFORBIDDEN, "forbidden",
                       "approver '%s' can approve tasks and read, nothing else", who->name);
    if (who->kind == PRIN_TASK)
        return s2_fail(err, S2_EFORBIDDEN, "forbidden",
                       "a lease token acts on its own task (%s) only", who->task);
    if (who->swarm && !strcmp(who->swarm, swarm))
        return 0;
    return s2_fail(err, S2_EFORBIDDEN, "forbidden",
                   "this token is scoped to swarm '%s' and cannot act on swarm '%s'",
                   who->swarm ? who->swarm : "?", swarm);
}

int eng_admin_only(const struct principal *who, const char *what, struct s2_error *err)
{
    if (who->kind == PRIN_ADMIN)
        return 0;
    return s2_fail(err, S2_EFORBIDDEN, "forbidden", "%s needs the admin token", what);
}

uint32_t eng_find_task(struct engine *e, const char *id, const struct principal *who,
                          struct s2_error *err)
{
    uint32_t ti = map_get(&e->task_ix, id);
    if (ti == MAP_NONE) {
        s2_fail(err, S2_ENOTFOUND, "not_found", "task '%s' does not exist", id);
        return NONE;
    }
    /* A swarm token learns nothing about other swarms' tasks, not even that they exist,
     * except a help task one of its agents holds (it lives in the blocked swarm). */
    const struct task *t = task_at(e, ti);
    if (who->kind == PRIN_TASK) {
        /* a task's own lease reaches that task, and the thread of the task it helps */
        int helped = t->blocker != NONE && map_get(&e->task_ix, who->task) != MAP_NONE &&
                     task_at(e, map_get(&e->task_ix, who->task))->help_for == ti;
        if (strcmp(who->task, t->id) && !helped) {
            s2_fail(err, S2_EFORBIDDEN, "forbidden",
                    "this lease token acts on task '%s' only, not on '%s'", who->task, id);
            return NONE;
        }
        return ti;
    }
    if (who->kind == PRIN_SWARM &&
        (!who->swarm || strcmp(who->swarm, e->swarms[t->swarm].id)) &&
        !(t->kind == TASK_KIND_HELP && t->owner != NONE &&
          !strcmp(who->swarm ? who->swarm : "", e->swarms[e->agents[t->owner].swarm].id)) &&
        !gov_helps(e, ti, who->swarm)) {
        s2_fail(err, S2_ENOTFOUND, "not_found", "task '%s' does not exist", id);
        return NONE;
    }
    return ti;
}

/* ------------------------------------------------------------------------------------ */
/* commands */

static void do_swarm_add(struct engine *e, struct cmd *c)
{
    struct swarm_spec *sp = &c->in.swarm;
    if (eng_admin_only(&c->who, "creating a swarm", &c->err))
        return;
    if (map_get(&e->swarm_ix, sp->id) != MAP_NONE) {
        s2_fail(&c->err, S2_ECONFLICT, "swarm_exists", "swarm '%s' already exists", sp->id);
        return;
    }
    uint8_t hash[TOKEN_HASH_BYTES];
    char *token = auth_token_new("s2s", hash);
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_swarm_insert(e->store, sp, SWARM_ACTIVE, e->now, &err) ||
        store_token_insert(e->store, hash, "swarm", sp->id, sp->id, e->now, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        free(token);
        return;
    }
    e->mutated = 1;
    uint32_t si = swarm_insert(e, sp->id, sp->role, sp->relation, NULL, &sp->caps,
                               sp->budget_micro, sp->branch, SWARM_ACTIVE, e->now);
    c->out.token = token;
    struct buf p = BUF_INIT;
    buf_addf(&p, "{\"relation\":\"%s\",\"budget_micro\":%" PRId64 "}", relation_name(sp->relation),
             sp->budget_micro);
    eng_emit(e, "swarm.create", si, NULL, NONE, p.ptr);
    buf_release(&p);
}

static void do_swarm_state(struct engine *e, struct cmd *c)
{
    if (eng_admin_only(&c->who, c->in.swarm_state.pause ? "pausing a swarm" : "resuming a swarm",
                   &c->err))
        return;
    uint32_t si = map_get(&e->swarm_ix, c->in.swarm_state.id);
    if (si == MAP_NONE) {
        s2_fail(&c->err, S2_ENOTFOUND, "not_found", "swarm '%s' does not exist",
                c->in.swarm_state.id);
        return;
    }
    struct swarm *s = &e->swarms[si];
    int to = c->in.swarm_state.pause ? SWARM_PAUSED : SWARM_ACTIVE;
    if (s->state == to)
        return; /* idempotent */
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_swarm_set_state(e->store, s->id, to, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    s->state = to;
    eng_emit(e, to == SWARM_PAUSED ? "swarm.pause" : "swarm.resume", si, NULL, NONE, NULL);
    if (to == SWARM_ACTIVE && s->nwaiting) {
        s->dirty = 1;
        u32vec_push(&e->dirty_swarms, si);
    }
}

static uint32_t default_model(const struct engine *e)
{
    uint32_t best = NONE;
    for (uint32_t i = 0; i < e->nmodels; i++) {
        const struct model *m = &e->models[i];
        if (best == NONE || m->tier < e->models[best].tier ||
            (m->tier == e->models[best].tier &&
             m->usd_in_micro + m->usd_out_micro <
                 e->models[best].usd_in_micro + e->models[best].usd_out_micro))
            best = i;
    }
    return best;
}

static void do_agent_add(struct engine *e, struct cmd *c)
{
    struct agent_spec *a = &c->in.agent;
    if (eng_may_act(&c->who, a->swarm, &c->err))
        return;
    uint32_t si = map_get(&e->swarm_ix, a->swarm);
    if (si == MAP_NONE) {
        s2_fail(&c->err, S2_EINVAL, "unknown_swarm", "field 'swarm': swarm '%s' does not exist",
                a->swarm);
        return;
    }
    if (map_get(&e->agent_ix, a->id) != MAP_NONE) {
        s2_fail(&c->err, S2_ECONFLICT, "agent_exists", "agent '%s' already exists", a->id);
        return;
    }
    uint32_t mi;
    if (a->model) {
        mi = map_get(&e->model_ix, a->model);
        if (mi == MAP_NONE) {
            struct buf names = BUF_INIT;
            for (uint32_t i = 0; i < e->nmodels; i++)
                buf_addf(&names, "%s%s", i ? ", " : "", e->models[i].name);
            s2_fail(&c->err, S2_EINVAL, "unknown_model",
                    "field 'model': model '%s' is not in the model table (known: %s)", a->model,
                    names.ptr);
            buf_release(&names);
            return;
        }
    } else {
        mi = default_model(e);
        if (mi != NONE)
            a->model = xstrdup(e->models[mi].name);
    }
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_agent_insert(e->store, a, e->now, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    uint32_t ai = agent_insert(e, a->id, si, mi == MAP_NONE ? NONE : mi, NULL, &a->caps,
                               a->max_leases, e->now, 0);
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"model\":");
    buf_add_json_str(&p, a->model ? a->model : "");
    buf_adds(&p, ",\"capabilities\":[");
    for (size_t i = 0; i < a->caps.n; i++) {
        if (i)
            buf_addch(&p, ',');
        buf_add_json_str(&p, a->caps.v[i]);
    }
    buf_addf(&p, "],\"max_leases\":%" PRId64 "}", a->max_leases);
    eng_emit(e, "agent.create", si, NULL, ai, p.ptr);
    buf_release(&p);
}

/* A model.put entry's params, in the shape POST /v1/models takes (docs/WITNESS.md): init's
 * defaults and later changes read alike. Prices are whole micro-dollars, so six decimals
 * are exact. */
static void model_put_params(struct buf *p, const struct model_spec *m)
{
    buf_adds(p, "{\"name\":");
    buf_add_json_str(p, m->name);
    buf_addf(p, ",\"tier\":%" PRId64 ",\"usd_per_mtok_in\":%" PRId64 ".%06" PRId64
                ",\"usd_per_mtok_out\":%" PRId64 ".%06" PRId64 "}",
             m->tier, m->usd_in_micro / (int64_t)S2_MICRO, m->usd_in_micro % (int64_t)S2_MICRO,
             m->usd_out_micro / (int64_t)S2_MICRO, m->usd_out_micro % (int64_t)S2_MICRO);
}

static void do_model_put(struct engine *e, struct cmd *c)
{
    if (eng_admin_only(&c->who, "changing the model table", &c->err))
        return;
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_model_put(e->store, &c->in.model, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    e->mutated = 1;
    model_set(e, &c->in.model);
    /* a tier may have changed: every agent re-derives the queues it may take from */
    for (uint32_t i = 0; i < e->nagents; i++)
        e->agents[i].elig_valid = 0;
    struct buf p = BUF_INIT;
    model_put_params(&p, &c->in.model);
    eng_emit(e, "model.put", NONE, NULL, NONE, p.ptr);
    buf_release(&p);
}

/* Depth-first search over the batch's own dependency edges: a topological order (deps
 * first) into order[], or the path of a cycle in err. */
struct batch_graph {
    const struct task_spec *v;
    size_t n;
    struct map ix;      /* id -> batch index */
    uint8_t *color;     /* 0 new, 1 on stack, 2 done */
    size_t *order, norder;
    size_t *stack, nstack;
};

static int visit(struct batch_graph *g, size_t i, struct s2_error *err)
{
    g->color[i] = 1;
    g->stack[g->nstack++] = i;
    const struct task_spec *t = &g->v[i];
    for (size_t k = 0; k < t->depends_on.n; k++) {
        uint32_t j = map_get(&g->ix, t->depends_on.v[k]);
        if (j == MAP_NONE)
            continue;
        if (g->color[j] == 1) {
            struct buf path = BUF_INIT;
            size_t from = g->nstack;
            while (from > 0 && g->stack[from - 1] != j)
                from--;
            /* the path runs from j along "depends on" edges back to j */
            for (size_t s = from - 1; s < g->nstack; s++)
                buf_addf(&path, "%s -> ", g->v[g->stack[s]].id);
            buf_adds(&path, g->v[j].id);
            s2_fail(err, S2_EINVAL, "dependency_cycle",
                    "dependency cycle: %s (each task depends on the next)", path.ptr);
            buf_release(&path);
            return -1;
        }
        if (g->color[j] == 0 && visit(g, j, err))
            return -1;
    }
    g->color[i] = 2;
    g->nstack--;
    g->order[g->norder++] = i;
    return 0;
}

/* A task the engine makes itself (help and idle work): no dependencies, no phase barrier,
 * ready at once unless a gate holds it. Witnessed like any creation. NONE on failure. */
uint32_t eng_task_new(struct engine *e, struct task_spec *sp, uint32_t si)
{
    if (eng_tx(e))
        return NONE;
    gov_gate_task(e, sp, si);
    uint32_t ti = eng_task_alloc(e);
    struct task *x = task_at(e, ti);
    x->id = xstrdup(sp->id);
    x->rowid = e->next_rowid++;
    x->swarm = si;
    x->phase = sp->phase;
    x->priority = (int32_t)sp->priority;
    x->state = TASK_PENDING;
    x->min_tier = (uint8_t)sp->min_tier;
    x->approval_kind = (uint8_t)sp->approval_kind;
    x->approvals_needed = (uint16_t)sp->approval_n;
    if (sp->approval_kind != APPROVAL_NONE)
        x->approvers = xcalloc(1, sizeof *x->approvers);
    x->phase_barrier = 0;
    x->max_attempts = (uint16_t)sp->max_attempts;
    x->lease_ms = sp->lease_ms;
    x->backoff_ms = sp->backoff_ms;
    x->max_cost_micro = sp->max_cost_micro;
    x->estimate_micro = sp->estimate_micro;
    x->kind = (uint8_t)sp->kind;
    if (sp->help_for) {
        uint32_t hi = map_get(&e->task_ix, sp->help_for);
        x->help_for = hi == MAP_NONE ? NONE : hi;
    }
    x->reqset = eng_reqset(e, &sp->requires);
    eng_task_link(e, ti, NULL, 0);
    e->mutated = 1;
    if (eng_can_be_ready(e, x))
        eng_set_state(e, x, TASK_READY);
    int64_t rowid;
    struct s2_error err = S2_ERROR_INIT;
    if (store_task_insert(e->store, sp, x->state, e->now, &rowid, &err)) {
        eng_store_failed(e, &err);
        return NONE;
    }
    x->rowid = rowid;
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"title\":");
    buf_add_json_str(&p, sp->title);
    buf_addf(&p, ",\"kind\":\"%s\"", sp->kind == TASK_KIND_HELP ? "help" : "idle");
    if (sp->help_for) {
        buf_adds(&p, ",\"help_for\":");
        buf_add_json_str(&p, sp->help_for);
    }
    buf_addch(&p, '}');
    eng_emit(e, "task.create", si, x, NONE, p.ptr);
    buf_release(&p);
    return ti;
}

static void do_task_add(struct engine *e, struct cmd *c)
{
    struct task_spec *v = c->in.tasks.v;
    size_t n = c->in.tasks.n;
    struct batch_graph g = {.v = v, .n = n};
    map_init(&g.ix);
    g.color = xcalloc(n ? n : 1, 1);
    g.order = xcalloc(n ? n : 1, sizeof *g.order);
    g.stack = xcalloc(n ? n : 1, sizeof *g.stack);
    uint32_t *swarm_of = xcalloc(n ? n : 1, sizeof *swarm_of);
    uint32_t *index_of = xcalloc(n ? n : 1, sizeof *index_of);
    struct u32vec touched = {0};
    char prefix[48];

    /* 1. everything is checked before anything is written */
    for (size_t i = 0; i < n; i++) {
        struct task_spec *t = &v[i];
        if (n > 1)
            snprintf(prefix, sizeof prefix, "tasks[%zu]: ", i);
        else
            prefix[0] = 0;
        uint32_t si = map_get(&e->swarm_ix, t->swarm);
        if (si == MAP_NONE) {
            s2_fail(&c->err, S2_EINVAL, "unknown_swarm", "%sfield 'swarm': swarm '%s' does not exist",
                    prefix, t->swarm);
            goto out;
        }
        if (eng_may_act(&c->who, t->swarm, &c->err))
            goto out;
        swarm_of[i] = si;
        if (!t->id)
            continue;
        if (map_get(&e->task_ix, t->id) != MAP_NONE) {
            s2_fail(&c->err, S2_ECONFLICT, "task_exists", "%stask '%s' already exists", prefix,
                    t->id);
            goto out;
        }
        if (map_get(&g.ix, t->id) != MAP_NONE) {
            s2_fail(&c->err, S2_EINVAL, "duplicate_id", "%stask id '%s' appears twice in the request",
                    prefix, t->id);
            goto out;
        }
        map_put(&g.ix, t->id, (uint32_t)i);
    }
    /* ids the client left out: <swarm>.<n>, readable and unique */
    for (size_t i = 0; i < n; i++) {
        struct task_spec *t = &v[i];
        if (t->id)
            continue;
        if (strlen(t->swarm) > S2_ID_MAX - 24) {
            s2_fail(&c->err, S2_EINVAL, "missing_field",
                    "tasks[%zu]: field 'id' is required for swarm '%s' (its id is too long to "
                    "make one from)", i, t->swarm);
            goto out;
        }
        for (uint64_t k = 0; !t->id; k++) {
            char *id = k ? xasprintf("%s.%" PRId64 ".%" PRIu64, t->swarm,
                                     e->next_rowid + (int64_t)i, k)
                         : xasprintf("%s.%" PRId64, t->swarm, e->next_rowid + (int64_t)i);
            if (map_get(&e->task_ix, id) == MAP_NONE && map_get(&g.ix, id) == MAP_NONE) {
                t->id = id;
                map_put(&g.ix, t->id, (uint32_t)i);
            } else {
                free(id);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct task_spec *t = &v[i];
        for (size_t k = 0; k < t->depends_on.n; k++) {
            const char *d = t->depends_on.v[k];
            if (!strcmp(d, t->id)) {
                s2_fail(&c->err, S2_EINVAL, "dependency_cycle", "task '%s' depends on itself", d);
                goto out;
            }
            if (map_get(&g.ix, d) != MAP_NONE)
                continue;
            uint32_t di = map_get(&e->task_ix, d);
            if (di == MAP_NONE) {
                s2_fail(&c->err, S2_EINVAL, "unknown_dependency",
                        "task '%s': depends_on names unknown task '%s'", t->id, d);
                goto out;
            }
            int ds = task_at(e, di)->state;
            if (ds == TASK_CANCELLED || ds == TASK_DEAD) {
                s2_fail(&c->err, S2_EINVAL, "dead_dependency",
                        "task '%s': depends_on names task '%s', which is %s and will never be done",
                        t->id, d, task_state_name(ds));
                goto out;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (g.color[i] == 0 && visit(&g, i, &c->err))
            goto out;
    if (eng_tx(e))
        goto out;

    /* 2. link into memory, dependencies first so that rowids follow the dependency order
     * (a reload then resolves every dependency in one pass). Remember where each swarm's
     * phase barrier stood: this batch may reopen an earlier phase. */
    uint32_t first = e->ntasks;
    for (size_t i = 0; i < n; i++) {
        struct swarm *s = &e->swarms[swarm_of[i]];
        if (!s->dirty_mark) {
            s->dirty_mark = 1;
            s->mark_phase = eng_first_open_phase(s);
            u32vec_push(&touched, swarm_of[i]);
        }
    }
    uint32_t *dep_ix = xcalloc(S2_DEPS_MAX, sizeof *dep_ix);
    for (size_t k = 0; k < n; k++) {
        size_t i = g.order[k];
        struct task_spec *t = &v[i];
        gov_gate_task(e, t, swarm_of[i]);
        uint32_t ti = eng_task_alloc(e);
        index_of[i] = ti;
        struct task *x = task_at(e, ti);
        x->id = xstrdup(t->id);
        x->rowid = e->next_rowid++;
        x->swarm = swarm_of[i];
        x->phase = t->phase;
        x->priority = (int32_t)t->priority;
        x->state = TASK_PENDING;
        x->min_tier = (uint8_t)t->min_tier;
        x->approval_kind = (uint8_t)t->approval_kind;
        x->approvals_needed = (uint16_t)t->approval_n;
        x->phase_barrier = (uint8_t)t->phase_barrier;
        x->max_attempts = (uint16_t)t->max_attempts;
        x->lease_ms = t->lease_ms;
        x->backoff_ms = t->backoff_ms;
        x->max_cost_micro = t->max_cost_micro;
        x->estimate_micro = t->estimate_micro;
        x->kind = (uint8_t)t->kind;
        if (t->paths.n) {
            x->paths = xcalloc(1, sizeof *x->paths);
            strvec_copy(x->paths, &t->paths);
        }
        x->reqset = eng_reqset(e, &t->requires);
        if (t->approval_kind != APPROVAL_NONE)
            x->approvers = xcalloc(1, sizeof *x->approvers);
        for (size_t d = 0; d < t->depends_on.n; d++) {
            uint32_t bi = map_get(&g.ix, t->depends_on.v[d]);
            dep_ix[d] = bi != MAP_NONE ? index_of[bi] : map_get(&e->task_ix, t->depends_on.v[d]);
        }
        eng_task_link(e, ti, dep_ix, t->depends_on.n);
        eng_weigh(e, ti, 1);
    }
    free(dep_ix);
    e->mutated = 1;

    /* 3. ready work of later phases goes back to pending where the batch reopened an
     * earlier phase; then each new task's state is decided and written */
    for (uint32_t k = 0; k < touched.n; k++) {
        struct swarm *s = &e->swarms[touched.v[k]];
        s->dirty_mark = 0;
        int64_t fo = eng_first_open_phase(s);
        if (fo >= s->mark_phase)
            continue;
        for (uint32_t p = 0; p < s->nphases; p++) {
            struct phase_slot *ps = &s->phases[p];
            if (ps->phase <= fo)
                continue;
            for (uint32_t j = 0; j < ps->tasks.n; j++) {
                uint32_t ti = ps->tasks.v[j];
                struct task *t = task_at(e, ti);
                if (ti < first && t->state == TASK_READY && t->phase_barrier)
                    eng_make_pending(e, ti, "earlier phase reopened");
            }
        }
    }
    struct s2_error err = S2_ERROR_INIT;
    for (size_t k = 0; k < n && !e->batch_failed; k++) {
        size_t i = g.order[k];
        uint32_t ti = index_of[i];
        struct task *x = task_at(e, ti);
        if (eng_can_be_ready(e, x))
            eng_set_state(e, x, TASK_READY);
        int64_t rowid;
        if (store_task_insert(e->store, &v[i], x->state, e->now, &rowid, &err)) {
            eng_store_failed(e, &err);
            break;
        }
        if (rowid != x->rowid) {
            s2_fail(&err, S2_EINTERNAL, "store_error",
                    "store: task '%s' got key %" PRId64 ", expected %" PRId64, x->id, rowid,
                    x->rowid);
            eng_store_failed(e, &err);
            break;
        }
        if (x->state == TASK_READY)
            eng_enqueue(e, ti);
        struct buf p = BUF_INIT;
        buf_adds(&p, "{\"title\":");
        buf_add_json_str(&p, v[i].title);
        buf_addf(&p, ",\"priority\":%d,\"depends_on\":%zu}", x->priority, v[i].depends_on.n);
        eng_emit(e, "task.create", x->swarm, x, NONE, p.ptr);
        buf_release(&p);
    }
    if (e->batch_failed)
        goto out;
    c->out.rowids = xcalloc(n ? n : 1, sizeof *c->out.rowids);
    c->out.states = xcalloc(n ? n : 1, sizeof *c->out.states);
    c->out.ids = xcalloc(n ? n : 1, sizeof *c->out.ids);
    for (size_t i = 0; i < n; i++) {
        struct task *x = task_at(e, index_of[i]);
        c->out.rowids[i] = x->rowid;
        c->out.states[i] = x->state;
        c->out.ids[i] = xstrdup(x->id);
    }
    if (n == 1) {
        c->out.rowid = c->out.rowids[0];
        c->out.task_id = xstrdup(c->out.ids[0]);
        c->out.state = c->out.states[0];
    }
out:
    map_release(&g.ix);
    free(g.color);
    free(g.order);
    free(g.stack);
    free(swarm_of);
    free(index_of);
    u32vec_release(&touched);
}

static void do_claim(struct engine *e, struct cmd *c)
{
    uint32_t ai = map_get(&e->agent_ix, c->in.claim.agent);
    if (ai == MAP_NONE) {
        s2_fail(&c->err, S2_ENOTFOUND, "unknown_agent", "agent '%s' does not exist",
                c->in.claim.agent);
        eng_reply(e, c);
        return;
    }
    struct agent *a = &e->agents[ai];
    struct swarm *s = &e->swarms[a->swarm];
    if (eng_may_act(&c->who, s->id, &c->err)) {
        eng_reply(e, c);
        return;
    }
    if (a->held >= a->max_leases) {
        s2_fail(&c->err, S2_ECONFLICT, "agent_busy",
                "agent '%s' already holds %u lease%s (max_leases %u): finish or fail it first",
                a->id, a->held, a->held == 1 ? "" : "s", a->max_leases);
        eng_reply(e, c);
        return;
    }
    eng_agent_touch(e, ai);
    if (gov_may_claim(e, ai, &c->err)) {
        eng_reply(e, c);
        return;
    }
    if (s->state == SWARM_ACTIVE) {
        uint32_t ti = eng_pick(e, ai);
        if (ti != NONE) {
            if (!gov_can_reserve_task(e, ti, &c->err))
                eng_claim_task(e, ti, ai, c);
            eng_reply(e, c);
            return;
        }
        /* the idle-task protocol: help on a blocker, then the swarm's idle work */
        if (gov_find_work(e, ai, c)) {
            eng_reply(e, c);
            return;
        }
    }
    c->out.wait_reason = s->state == SWARM_PAUSED    ? "swarm paused"
                         : s->state == SWARM_TRIPPED ? "swarm tripped"
                                                     : "no ready task for this agent";
    if (c->in.claim.wait_ms > 0 && !e->stopping) {
        waiter_add(e, c, ai, e->now + c->in.claim.wait_ms);
        return;
    }
    eng_reply(e, c);
}

/* Check that lease is the current lease of task ti. On expiry, expires it now. */
int eng_check_lease(struct engine *e, uint32_t ti, const char *lease, struct s2_error *err)
{
    struct task *t = task_at(e, ti);
    uint64_t fence = engine_lease_fence(lease);
    if (t->state != TASK_CLAIMED) {
        if (t->state == TASK_DONE || t->state == TASK_CANCELLED || t->state == TASK_DEAD)
            return s2_fail(err, S2_ECONFLICT, "stale_lease",
                           "task '%s' is %s: lease %" PRIu64 " is no longer valid", t->id,
                           task_state_name(t->state), fence);
        return s2_fail(err, S2_ECONFLICT, "stale_lease",
                       "task '%s' is %s (no live lease): lease %" PRIu64
                       " expired or was released",
                       t->id, task_state_name(t->state), fence);
    }
    uint8_t hash[TOKEN_HASH_BYTES];
    auth_hash(lease, hash);
    if (sodium_memcmp(hash, t->lease_hash, TOKEN_HASH_BYTES) != 0) {
        if (fence && fence < t->fence)
            return s2_fail(err, S2_ECONFLICT, "stale_lease",
                           "lease %" PRIu64 " of task '%s' is stale: the task was claimed again "
                           "(current lease %" PRIu64 ")",
                           fence, t->id, t->fence);
        return s2_fail(err, S2_ECONFLICT, "stale_lease",
                       "lease does not match the current lease of task '%s'", t->id);
    }
    if (t->due <= e->now) {
        int64_t at = t->due;
        expire(e, ti);
        char when[32];
        clock_format_iso(at, when, sizeof when);
        return s2_fail(err, S2_ECONFLICT, "lease_expired",
                       "lease %" PRIu64 " of task '%s' expired at %s", fence, t->id, when);
    }
    return 0;
}

/* Price and record reported usage on a task. */
int eng_add_usage(struct engine *e, struct task *t, const struct usage *u, struct s2_error *err)
{
    if (!u->present)
        return 0;
    int64_t cost = u->usd_micro;
    uint32_t mi = NONE;
    if (u->model) {
        mi = map_get(&e->model_ix, u->model);
        if (mi == MAP_NONE)
            return s2_fail(err, S2_EINVAL, "unknown_model",
                           "field 'usage.model': model '%s' is not in the model table", u->model);
    } else if (t->owner != NONE) {
        mi = e->agents[t->owner].model;
    }
    if (cost < 0)
        cost = mi == NONE ? 0
                          : model_price(u->tokens_in, u->tokens_out, e->models[mi].usd_in_micro,
                                        e->models[mi].usd_out_micro);
    t->tokens_in += u->tokens_in;
    t->tokens_out += u->tokens_out;
    gov_spend(e, t, t->owner, cost);
    if (!u->tokens_in && !u->tokens_out && !cost)
        return 0; /* nothing was used: nothing to record */
    /* what was used, on which model and tier, at what price: the report's cost by tier and
     * its top-tier comparison are read from these entries */
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"model\":");
    if (mi == NONE)
        buf_adds(&p, "null");
    else
        buf_add_json_str(&p, e->models[mi].name);
    buf_addf(&p,
             ",\"tier\":%d,\"tokens_in\":%" PRId64 ",\"tokens_out\":%" PRId64
             ",\"usd_micro\":%" PRId64 ",\"priced\":\"%s\"}",
             mi == NONE ? 0 : e->models[mi].tier, u->tokens_in, u->tokens_out, cost,
             u->usd_micro < 0 ? "tokens" : "usd");
    eng_emit(e, "task.usage", t->swarm, t, t->owner, p.ptr);
    buf_release(&p);
    return 0;
}

static void do_heartbeat(struct engine *e, struct cmd *c)
{
    uint32_t ti = eng_find_task(e, c->in.lease_op.task, &c->who, &c->err);
    if (ti == NONE)
        return;
    struct task *t = task_at(e, ti);
    /* Validate usage before anything changes (an unknown model must not half-apply). */
    if (c->in.lease_op.usage.present && c->in.lease_op.usage.model &&
        map_get(&e->model_ix, c->in.lease_op.usage.model) == MAP_NONE) {
        s2_fail(&c->err, S2_EINVAL, "unknown_model",
                "field 'usage.model': model '%s' is not in the model table",
                c->in.lease_op.usage.model);
        return;
    }
    if (eng_check_lease(e, ti, c->in.lease_op.lease, &c->err))
        return;
    eng_add_usage(e, t, &c->in.lease_op.usage, &c->err);
    t->due = e->now + t->lease_ms;
    heap_fix(&e->timers, t->hpos);
    if (eng_persist(e, t))
        return;
    eng_agent_touch(e, t->owner);
    c->out.rowid = t->rowid;
    c->out.state = t->state;
    c->out.expires_at = t->due;
    c->out.fence = t->fence;
    c->out.attempts = t->attempts;
    char params[128];
    snprintf(params, sizeof params, "{\"fence\":%" PRIu64 ",\"expires_at\":%" PRId64 "}", t->fence,
             t->due);
    eng_emit(e, "task.heartbeat", t->swarm, t, t->owner, params);
}

static void do_finish(struct engine *e, struct cmd *c)
{
    int done = c->kind == CMD_DONE;
    uint32_t ti = eng_find_task(e, c->in.lease_op.task, &c->who, &c->err);
    if (ti == NONE)
        return;
    struct task *t = task_at(e, ti);
    if (c->in.lease_op.usage.present && c->in.lease_op.usage.model &&
        map_get(&e->model_ix, c->in.lease_op.usage.model) == MAP_NONE) {
        s2_fail(&c->err, S2_EINVAL, "unknown_model",
                "field 'usage.model': model '%s' is not in the model table",
                c->in.lease_op.usage.model);
        return;
    }
    if (eng_check_lease(e, ti, c->in.lease_op.lease, &c->err))
        return;
    eng_add_usage(e, t, &c->in.lease_op.usage, &c->err);
    eng_agent_touch(e, t->owner);
    struct s2_error err = S2_ERROR_INIT;
    c->out.fence = t->fence;
    if (done) {
        uint32_t owner = t->owner;
        gov_outcome(e, ti, owner, SLO_DONE);
        eng_lease_end(e, t);
        eng_set_state(e, t, TASK_DONE);
        if (eng_persist(e, t))
            return;
        if (store_task_outcome(e->store, t->rowid, c->in.lease_op.result, NULL, e->now, &err)) {
            eng_store_failed(e, &err);
            return;
        }
        char params[160];
        snprintf(params, sizeof params,
                 "{\"fence\":%" PRIu64 ",\"attempts\":%d,\"cost_micro\":%" PRId64 "}", t->fence,
                 t->attempts, t->cost_micro);
        eng_emit(e, "task.done", t->swarm, t, owner, params);
        eng_settle(e, ti, 1);
        gov_succeeded(e, ti, owner);
        gov_task_closed(e, ti);
    } else {
        const char *reason = c->in.lease_op.reason ? c->in.lease_op.reason : "failed";
        c->out.retry_at = eng_requeue_or_die(e, ti, "task.fail", reason, c->in.lease_op.retry);
        if (!e->batch_failed &&
            store_task_outcome(e->store, t->rowid, NULL, reason, 0, &err)) {
            eng_store_failed(e, &err);
            return;
        }
    }
    c->out.rowid = t->rowid;
    c->out.state = t->state;
    c->out.attempts = t->attempts;
}

static void do_cancel(struct engine *e, struct cmd *c)
{
    if (c->who.kind == PRIN_APPROVER || c->who.kind == PRIN_TASK) {
        s2_fail(&c->err, S2_EFORBIDDEN, "forbidden",
                "cancelling needs the admin token or the task's swarm token");
        return;
    }
    uint32_t ti = eng_find_task(e, c->in.cancel.task, &c->who, &c->err);
    if (ti == NONE)
        return;
    struct task *t = task_at(e, ti);
    if (t->state == TASK_DONE || t->state == TASK_CANCELLED) {
        s2_fail(&c->err, S2_ECONFLICT, "task_finished", "task '%s' is already %s", t->id,
                task_state_name(t->state));
        return;
    }
    int was_open = eng_is_open(t->state);
    uint32_t owner = t->state == TASK_CLAIMED ? t->owner : NONE;
    if (t->state == TASK_CLAIMED)
        eng_lease_end(e, t);
    else if (t->state == TASK_READY)
        eng_dequeue(e, ti);
    eng_set_state(e, t, TASK_CANCELLED);
    if (eng_persist(e, t))
        return;
    const char *reason = c->in.cancel.reason ? c->in.cancel.reason : "cancelled";
    struct s2_error err = S2_ERROR_INIT;
    if (store_task_outcome(e->store, t->rowid, NULL, reason, e->now, &err)) {
        eng_store_failed(e, &err);
        return;
    }
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"reason\":");
    buf_add_json_str(&p, reason);
    buf_adds(&p, ",\"by\":");
    buf_add_json_str(&p, c->who.name ? c->who.name : "");
    buf_addch(&p, '}');
    eng_emit(e, "task.cancel", t->swarm, t, owner, p.ptr);
    buf_release(&p);
    eng_settle(e, ti, was_open);
    if (was_open)
        eng_weigh(e, ti, -1);
    gov_task_closed(e, ti);
    c->out.rowid = t->rowid;
    c->out.state = t->state;
}

static void do_approve(struct engine *e, struct cmd *c)
{
    if (c->who.kind == PRIN_SWARM) {
        s2_fail(&c->err, S2_EFORBIDDEN, "forbidden",
                "approving a task needs the admin token or an approver's token");
        return;
    }
    uint32_t ti = eng_find_task(e, c->in.approve.task, &c->who, &c->err);
    if (ti == NONE)
        return;
    struct task *t = task_at(e, ti);
    const char *who = c->who.name ? c->who.name : "admin";
    if (t->approval_kind == APPROVAL_NONE) {
        s2_fail(&c->err, S2_ECONFLICT, "no_approval_needed", "task '%s' does not need approval",
                t->id);
        return;
    }
    if (approved(t)) {
        s2_fail(&c->err, S2_ECONFLICT, "already_approved",
                "task '%s' already has its %u approval%s", t->id, t->approvals_needed,
                t->approvals_needed == 1 ? "" : "s");
        return;
    }
    if (t->state != TASK_PENDING) {
        s2_fail(&c->err, S2_ECONFLICT, "task_not_pending",
                "task '%s' is %s: only a pending task can be approved", t->id,
                task_state_name(t->state));
        return;
    }
    if (strvec_find(t->approvers, who) >= 0) {
        s2_fail(&c->err, S2_ECONFLICT, "duplicate_approval",
                "'%s' already approved task '%s' (%u of %u approvals): another approver is needed",
                who, t->id, t->approvals, t->approvals_needed);
        return;
    }
    struct s2_error err = S2_ERROR_INIT;
    if (eng_tx(e) || store_approval_insert(e->store, t->rowid, who, e->now, &err)) {
        if (err.kind)
            eng_store_failed(e, &err);
        return;
    }
    strvec_push(t->approvers, who);
    t->approvals++;
    if (eng_persist(e, t))
        return;
    struct buf p = BUF_INIT;
    buf_adds(&p, "{\"by\":");
    buf_add_json_str(&p, who);
    buf_addf(&p, ",\"approvals\":%u,\"needed\":%u", t->approvals, t->approvals_needed);
    if (c->in.approve.comment) {
        buf_adds(&p, ",\"comment\":");
        buf_add_json_str(&p, c->in.approve.comment);
    }
    buf_addch(&p, '}');
    eng_emit(e, "task.approve", t->swarm, t, NONE, p.ptr);
    buf_release(&p);
    eng_reevaluate(e, ti, "approved");
    c->out.rowid = t->rowid;
    c->out.state = t->state;
}

static void do_release(struct engine *e, struct cmd *c)
{
    uint32_t ti = map_get(&e->task_ix, c->in.release.task);
    if (ti == MAP_NONE)
        return;
    struct task *t = task_at(e, ti);
    if (t->state != TASK_CLAIMED || t->fence != c->in.release.fence)
        return; /* already moved on */
    uint32_t owner = t->owner;
    eng_lease_end(e, t);
    int ready = eng_can_be_ready(e, t);
    eng_set_state(e, t, ready ? TASK_READY : TASK_PENDING);
    t->due = 0;
    if (t->attempts)
        t->attempts--; /* the claimer never saw it: not an attempt */
    if (eng_persist(e, t))
        return;
    if (ready)
        eng_enqueue(e, ti);
    char params[96];
    snprintf(params, sizeof params, "{\"fence\":%" PRIu64 ",\"why\":\"reply not delivered\"}",
             t->fence);
    eng_emit(e, "task.release", t->swarm, t, owner, params);
}

static void engine_reload(struct engine *e);

static void process(struct engine *e, struct cmd *c)
{
    e->stats.commands++;
    if (e->need_reload) {
        if (e->unavailable_until <= e->now)
            engine_reload(e);
        if (e->need_reload) {
            s2_fail(&c->err, S2_EUNAVAIL, "store_unavailable",
                    "the store is unavailable (%s); retry shortly",
                    e->batch_err.msg ? e->batch_err.msg : "reloading");
            eng_reply(e, c);
            return;
        }
    }
    if (is_write(c) && e->unavailable_until > e->now) {
        s2_fail(&c->err, S2_EUNAVAIL, "store_unavailable",
                "the store cannot take writes right now (%s); retry shortly",
                e->batch_err.msg ? e->batch_err.msg : "last commit failed");
        eng_reply(e, c);
        return;
    }
    if (e->stopping && c->kind == CMD_CLAIM)
        c->in.claim.wait_ms = 0;
    switch (c->kind) {
    case CMD_SWARM_ADD: do_swarm_add(e, c); break;
    case CMD_SWARM_STATE: do_swarm_state(e, c); break;
    case CMD_AGENT_ADD: do_agent_add(e, c); break;
    case CMD_MODEL_PUT: do_model_put(e, c); break;
    case CMD_TASK_ADD: do_task_add(e, c); break;
    case CMD_CLAIM:
        do_claim(e, c);
        eng_match_waiters(e);
        return; /* do_claim replies (or parks the command as a waiter) itself */
    case CMD_HEARTBEAT: do_heartbeat(e, c); break;
    case CMD_DONE:
    case CMD_FAIL: do_finish(e, c); break;
    case CMD_CANCEL: do_cancel(e, c); break;
    case CMD_APPROVE: do_approve(e, c); break;
    case CMD_RELEASE: do_release(e, c); break;
    case CMD_QUERY: engine_run_query(e, c); break;
    case CMD_POLICY_PUT:
    case CMD_BUDGET_SET:
    case CMD_BREAKER_RESET:
    case CMD_BLOCK:
    case CMD_UNBLOCK:
    case CMD_POST:
    case CMD_VERDICT:
    case CMD_ESCALATION_ACK:
    case CMD_APPROVER_ADD:
    case CMD_SWARM_TEXT: gov_command(e, c); break;
    }
    eng_match_waiters(e);
    eng_reply(e, c);
}

/* ------------------------------------------------------------------------------------ */
/* timers */

static void fire_timers(struct engine *e)
{
    uint32_t ti;
    while (!e->batch_failed && (ti = heap_top(&e->timers)) != HEAP_NONE &&
           task_at(e, ti)->due <= e->now) {
        struct task *t = task_at(e, ti);
        if (t->state == TASK_CLAIMED) {
            expire(e, ti);
        } else {
            heap_remove(&e->timers, t->hpos);
            if (t->state == TASK_READY) {
                t->due = 0;
                eng_enqueue(e, ti);
            }
        }
    }
    eng_match_waiters(e);
    uint32_t wi;
    while ((wi = heap_top(&e->waiter_timers)) != HEAP_NONE &&
           e->waiters[wi].deadline <= e->now) {
        struct cmd *c = e->waiters[wi].cmd;
        eng_waiter_unlink(e, wi);
        eng_reply(e, c);
    }
    if (!e->batch_failed)
        gov_fire(e);
}

/* Milliseconds until the next timer, or -1 if none. */
static int64_t next_timer(struct engine *e)
{
    int64_t at = INT64_MAX;
    uint32_t ti = heap_top(&e->timers);
    if (ti != HEAP_NONE)
        at = task_at(e, ti)->due;
    uint32_t wi = heap_top(&e->waiter_timers);
    if (wi != HEAP_NONE && e->waiters[wi].deadline < at)
        at = e->waiters[wi].deadline;
    int64_t g = gov_next_timer(e);
    if (g >= 0 && g < at)
        at = g;
    return at == INT64_MAX ? -1 : at;
}

/* ------------------------------------------------------------------------------------ */
/* loading */

static void engine_clear(struct engine *e);

struct loader_ctx {
    struct engine *e;
    char *last_req;
    uint32_t last_reqset;
    struct strvec appr_pending;
    long bad_deps;
};

static int load_token(void *ctx, const struct load_token *t)
{
    struct engine *e = ((struct loader_ctx *)ctx)->e;
    auth_add(e->auth, t->hash, t->kind, t->swarm, t->name);
    return 0;
}

static int load_model(void *ctx, const struct model_spec *m)
{
    model_set(((struct loader_ctx *)ctx)->e, m);
    return 0;
}

static int load_swarm(void *ctx, const struct load_swarm *s)
{
    struct engine *e = ((struct loader_ctx *)ctx)->e;
    uint32_t si = swarm_insert(e, s->id, s->role, s->relation, s->caps ? s->caps : "", NULL,
                               s->budget_micro, s->branch, s->state, s->created_at);
    gov_load_swarm(e, si, s);
    gov_load_slo(&e->swarms[si].slo, s->slo, s->slo_len);
    return 0;
}

static int load_agent(void *ctx, const struct load_agent *a)
{
    struct engine *e = ((struct loader_ctx *)ctx)->e;
    uint32_t si = map_get(&e->swarm_ix, a->swarm);
    if (si == MAP_NONE) {
        log_warn("load: agent '%s' names unknown swarm '%s': skipped", a->id, a->swarm);
        return 0;
    }
    uint32_t mi = a->model ? map_get(&e->model_ix, a->model) : MAP_NONE;
    uint32_t ai = agent_insert(e, a->id, si, mi == MAP_NONE ? NONE : mi, a->caps ? a->caps : "",
                               NULL, a->max_leases, a->created_at, a->last_seen);
    gov_load_agent(e, ai, &a->gov);
    gov_load_slo(&e->agents[ai].slo, a->slo, a->slo_len);
    return 0;
}

static int load_task(void *ctx, const struct load_task *lt)
{
    struct loader_ctx *lc = ctx;
    struct engine *e = lc->e;
    uint32_t si = map_get(&e->swarm_ix, lt->swarm);
    if (si == MAP_NONE) {
        log_error("load: task '%s' names unknown swarm '%s'", lt->id, lt->swarm);
        return -1;
    }
    uint32_t ti = eng_task_alloc(e);
    struct task *t = task_at(e, ti);
    t->id = xstrdup(lt->id);
    t->rowid = lt->rowid;
    t->swarm = si;
    t->phase = lt->phase;
    t->priority = (int32_t)lt->priority;
    t->state = (uint8_t)lt->state;
    t->min_tier = (uint8_t)lt->min_tier;
    int kind = APPROVAL_NONE, need = 0;
    model_parse_approval(lt->approval ? lt->approval : "none", &kind, &need, NULL);
    t->approval_kind = (uint8_t)kind;
    t->approvals_needed = (uint16_t)need;
    t->approvals = (uint16_t)lt->approvals;
    if (kind != APPROVAL_NONE)
        t->approvers = xcalloc(1, sizeof *t->approvers);
    t->phase_barrier = (uint8_t)lt->phase_barrier;
    t->attempts = (uint16_t)lt->attempts;
    t->max_attempts = (uint16_t)lt->max_attempts;
    t->lease_ms = lt->lease_ms;
    t->backoff_ms = lt->backoff_ms;
    t->fence = lt->fence;
    t->cost_micro = lt->cost_micro;
    t->tokens_in = lt->tokens_in;
    t->tokens_out = lt->tokens_out;
    t->max_cost_micro = lt->max_cost_micro;
    t->estimate_micro = lt->estimate_micro;
    t->reserved_micro = lt->state == TASK_CLAIMED ? lt->reserved_micro : 0;
    t->kind = (uint8_t)lt->kind;
    if (lt->paths && *lt->paths) {
        t->paths = xcalloc(1, sizeof *t->paths);
        strvec_split(t->paths, lt->paths, '\n');
    }
    if (lt->help_for) {
        uint32_t hi = map_get(&e->task_ix, lt->help_for);
        t->help_for = hi == MAP_NONE ? NONE : hi;
    }
    if (lt->owner) {
        uint32_t ai = map_get(&e->agent_ix, lt->owner);
        t->owner = ai == MAP_NONE ? NONE : ai;
    }
    if (t->state == TASK_CLAIMED) {
        t->due = lt->lease_expires;
        t->claimed_at = lt->lease_expires - lt->lease_ms; /* the latest it can have begun */
        if (lt->lease_hash)
            memcpy(t->lease_hash, lt->lease_hash, TOKEN_HASH_BYTES);
    } else if (t->state == TASK_READY) {
        t->due = lt->ready_at;
    }
    struct strvec deps = STRVEC_INIT;
    /* tasks of a plan share a few requirement sets: remember the last one seen */
    const char *rq = lt->requires ? lt->requires : "";
    if (lc->last_req && !strcmp(lc->last_req, rq)) {
        t->reqset = lc->last_reqset;
    } else {
        struct strvec req = STRVEC_INIT;
        strvec_split(&req, rq, '\n');
        t->reqset = eng_reqset(e, &req);
        strvec_release(&req);
        free(lc->last_req);
        lc->last_req = xstrdup(rq);
        lc->last_reqset = t->reqset;
    }
    if (lt->depends_on && *lt->depends_on)
        strvec_split(&deps, lt->depends_on, '\n');
    uint32_t dep_ix[S2_DEPS_MAX];
    size_t nd = 0;
    for (size_t k = 0; k < deps.n && nd < S2_DEPS_MAX; k++) {
        uint32_t di = map_get(&e->task_ix, deps.v[k]);
        if (di == MAP_NONE) {
            lc->bad_deps++;
            log_warn("load: task '%s' depends on '%s', which is not loaded before it", t->id,
                     deps.v[k]);
            continue;
        }
        dep_ix[nd++] = di;
    }
    eng_task_link(e, ti, dep_ix, nd);
    strvec_release(&deps);
    if (t->rowid >= e->next_rowid)
        e->next_rowid = t->rowid + 1;
    if (t->state == TASK_CLAIMED) {
        heap_push(&e->timers, ti);
        if (lt->lease_hash)
            eng_lease_index(e, ti, 1);
        if (t->paths)
            u32vec_push(&e->pathed, ti);
        if (t->owner != NONE)
            e->agents[t->owner].held++;
    }
    return 0;
}

static int load_blocker(void *ctx, const struct load_blocker *b)
{
    return gov_load_blocker(((struct loader_ctx *)ctx)->e, b);
}

static int load_approval(void *ctx, const struct load_approval *a)
{
    struct engine *e = ((struct loader_ctx *)ctx)->e;
    /* tasks are loaded in rowid order; find by scanning the index of rowids is costly, so
     * approvals name the task key: locate it with a binary search over rowids */
    uint32_t lo = 0, hi = e->ntasks;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (task_at(e, mid)->rowid < a->task_rowid)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < e->ntasks && task_at(e, lo)->rowid == a->task_rowid) {
        struct task *t = task_at(e, lo);
        if (t->approvers)
            strvec_push(t->approvers, a->approver);
    }
    return 0;
}

/* Build the in-memory state from the store, then settle what the store's states imply
 * (ready tasks into their queues; anything whose readiness changed is written back). */
/* Resume the witness log where it stands and check its tail: the last entries hash and
 * chain, the stored frontier matches them, and the latest checkpoint signs that frontier
 * with our key. Cheap (a few dozen rows); `s2 witness verify` checks everything. */
#define TAIL_CHECK 64

struct tail_ctx {
    struct witness_entry w[TAIL_CHECK];
    int n;
};

static int tail_row(void *ctx, const struct witness_entry *w)
{
    struct tail_ctx *tc = ctx;
    struct witness_entry *x = &tc->w[tc->n++];
    *x = *w;
    x->actor = w->actor ? xstrdup(w->actor) : NULL;
    x->swarm = w->swarm ? xstrdup(w->swarm) : NULL;
    x->agent = w->agent ? xstrdup(w->agent) : NULL;
    x->task = w->task ? xstrdup(w->task) : NULL;
    x->op = w->op ? xstrdup(w->op) : NULL;
    x->params = w->params ? xstrdup(w->params) : NULL;
    x->trace_id = w->trace_id ? xstrdup(w->trace_id) : NULL;
    return 0;
}

static int last_checkpoint(void *ctx, const struct checkpoint *c)
{
    *(struct checkpoint *)ctx = *c;
    return 1;
}

static int tail_fail(struct engine *e, struct s2_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tail_fail(struct engine *e, struct s2_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *why = xvasprintf(fmt, ap);
    va_end(ap);
    char *where = store_location_for_humans(e->db_path);
    s2_fail(err, S2_EINVAL, "witness_tampered",
            "the witness log of '%s' fails its tail check: %s; refusing to serve. Run `s2 "
            "witness verify --db %s` for a full report",
            where, why, where);
    free(where);
    free(why);
    return S2_EINVAL;
}

static int witness_resume(struct engine *e, struct s2_error *err)
{
    witness_chain_init(&e->chain);
    memset(&e->last_cp, 0, sizeof e->last_cp);
    struct tail_ctx tc = {.n = 0};
    struct witness_filter f = {.newest_first = 1, .limit = TAIL_CHECK};
    int rc = store_witness_scan(e->store, &f, tail_row, &tc, err);
    struct checkpoint cp = {0};
    if (!rc)
        rc = store_checkpoint_scan(e->store, 0, 1, 1, last_checkpoint, &cp, err);
    if (rc < 0)
        goto out;
    rc = 0;
    if (!tc.n && !cp.tree_size)
        goto out; /* a new log */
    char *frontier = cp.tree_size ? store_checkpoint_frontier(e->store, cp.tree_size) : NULL;
    if (!frontier) {
        rc = tail_fail(e, err, "entries exist but no checkpoint holds the tree's frontier");
        goto out;
    }
    int bad = merkle_frontier_parse(frontier, &e->chain.tree);
    free(frontier);
    if (bad) {
        rc = tail_fail(e, err, "the stored frontier is malformed");
        goto out;
    }
    uint64_t size = e->chain.tree.size;
    if (tc.n == 0 || tc.w[0].seq != size) {
        rc = tail_fail(e, err, "the last entry is %" PRIu64 " but the tree holds %" PRIu64,
                       tc.n ? tc.w[0].seq : 0, size);
        goto out;
    }
    /* newest first: w[i] follows w[i+1] */
    for (int i = 0; i < tc.n; i++) {
        struct witness_entry x = tc.w[i];
        witness_hash(&x);
        if (sodium_memcmp(x.hash, tc.w[i].hash, MERKLE_HASH)) {
            rc = tail_fail(e, err, "entry %" PRIu64 " does not match its hash", tc.w[i].seq);
            goto out;
        }
        if (i + 1 < tc.n && (tc.w[i + 1].seq + 1 != tc.w[i].seq ||
                             sodium_memcmp(tc.w[i].prev_hash, tc.w[i + 1].hash, MERKLE_HASH))) {
            rc = tail_fail(e, err, "entry %" PRIu64 " does not follow entry %" PRIu64,
                           tc.w[i].seq, tc.w[i + 1].seq);
            goto out;
        }
    }
    if (size & 1) { /* an odd tree ends in a lone leaf: it must be the last entry's */
        merkle_hash leaf;
        witness_leaf(&tc.w[0], leaf);
        if (sodium_memcmp(leaf, e->chain.tree.node[e->chain.tree.n - 1], MERKLE_HASH)) {
            rc = tail_fail(e, err, "the stored frontier does not end with entry %" PRIu64, size);
            goto out;
        }
    }
    merkle_hash root;
    merkle_frontier_root(&e->chain.tree, root);
    if (cp.tree_size != size || sodium_memcmp(cp.root_hash, root, MERKLE_HASH)) {
        rc = tail_fail(e, err, "the latest checkpoint (tree size %" PRIu64
                               ") does not match the log (%" PRIu64 " entries)",
                       cp.tree_size, size);
        goto out;
    }
    if (checkpoint_verify(&cp, e->pk)) {
        rc = tail_fail(e, err, "the latest checkpoint's signature is not valid for the "
                               "signing key");
        goto out;
    }
    e->chain.seq = size;
    memcpy(e->chain.head, tc.w[0].hash, MERKLE_HASH);
    e->last_cp = cp;
out:
    for (int i = 0; i < tc.n; i++)
        witness_entry_release(&tc.w[i]);
    e->chain_saved = e->chain;
    return rc;
}

static int engine_load(struct engine *e, struct s2_error *err)
{
    struct loader_ctx lc = {.e = e};
    struct store_loader ld = {&lc,      load_token, load_model,    load_swarm,
                              load_agent, load_task,  load_approval, load_blocker};
    e->next_rowid = 1;
    int64_t t0 = clock_mono_ns();
    map_reserve(&e->task_ix, (size_t)store_task_count(e->store));
    int lrc = store_load(e->store, &ld, err);
    free(lc.last_req);
    if (lrc)
        return err->kind ? err->kind : S2_EINTERNAL;
    if (witness_resume(e, err) || gov_load(e, err))
        return err->kind;
    e->now = e->clock();
    long fixed = 0;
    e->cur = NULL;
    e->timer_trace[0] = 0;
    for (uint32_t ti = 0; ti < e->ntasks; ti++) {
        struct task *t = task_at(e, ti);
        if (t->state != TASK_PENDING && t->state != TASK_READY)
            continue;
        int want = eng_can_be_ready(e, t) ? TASK_READY : TASK_PENDING;
        if (want != t->state) {
            /* witnessed like any change: the stored state disagreed with the rules */
            eng_set_state(e, t, want);
            t->due = 0;
            if (eng_persist(e, t))
                break;
            eng_emit(e, want == TASK_READY ? "task.ready" : "task.pending", t->swarm, t, NONE,
                 "{\"why\":\"load: readiness recomputed\"}");
            fixed++;
        }
        if (t->state == TASK_READY)
            eng_enqueue(e, ti);
    }
    if (e->in_tx) {
        struct s2_error werr = S2_ERROR_INIT;
        int rc = e->batch_failed ? -1 : witness_seal(e, &werr);
        if (!rc)
            rc = store_commit(e->store, &werr);
        if (rc || e->batch_failed) {
            store_rollback(e->store);
            s2_error_move(err, e->batch_failed ? &e->batch_err : &werr);
            s2_error_release(&werr);
            e->in_tx = e->batch_failed = 0;
            return err->kind ? err->kind : S2_EINTERNAL;
        }
        e->in_tx = 0;
        e->chain_saved = e->chain;
        for (size_t i = 0; i < e->nbev; i++) {
            free(e->bev[i].swarm);
            free(e->bev[i].data);
        }
        e->nbev = 0;
    }
    for (uint32_t i = 0; i < e->nswarms; i++)
        e->swarms[i].dirty = 0;
    e->dirty_swarms.n = 0;
    log_info("loaded %u swarms, %u agents, %u tasks (%u ready, %u claimed) in %.0f ms%s",
             e->nswarms, e->nagents, e->ntasks, e->count[TASK_READY], e->count[TASK_CLAIMED],
             (clock_mono_ns() - t0) / 1e6, fixed ? " (readiness corrected for some tasks)" : "");
    if (lc.bad_deps)
        log_warn("load: %ld dependencies could not be resolved", lc.bad_deps);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* the batch loop */

void engine_set_notify(struct engine *e, void (*fn)(void *ctx, const char *json), void *ctx)
{
    e->notify = fn;
    e->notify_ctx = ctx;
}

static void publish(struct engine *e, struct event *v, size_t n)
{
    /* escalations leave the server only once durable, like every other answer */
    for (size_t i = 0; i < n && e->notify; i++)
        if (v[i].notify)
            e->notify(e->notify_ctx, v[i].data);
    if (e->events && n) {
        events_publish(e->events, v, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].swarm);
        free(v[i].data);
    }
}

/* Latency buckets (microseconds), shared by commits, claims and pushes. */
static const int64_t lat_bounds_us[] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000,
                                        50000, 100000, 250000, 500000, 1000000};

static void lat_count(uint64_t *hist, uint64_t *total, uint64_t *count, int64_t ns)
{
    int b = 0;
    while (b < 13 && ns / 1000 > lat_bounds_us[b])
        b++;
    hist[b]++;
    *total += (uint64_t)(ns > 0 ? ns : 0);
    (*count)++;
}

static void answer(struct engine *e, struct cmd **v, size_t n)
{
    int64_t now = clock_mono_ns();
    for (size_t i = 0; i < n; i++) {
        struct cmd *c = v[i];
        if (c->kind == CMD_CLAIM && c->out.got && !c->err.kind) {
            /* a push is timed from the task becoming ready; a claim that found work, from
             * its arrival */
            struct engine_stats *st = &e->stats;
            if (c->out.push_from_ns)
                lat_count(st->push_hist, &st->push_ns_total, &st->pushes_timed,
                          now - c->out.push_from_ns);
            else
                lat_count(st->claim_hist, &st->claim_ns_total, &st->claims_timed,
                          now - c->t_submit_ns);
        }
        if (c->err.kind && c->out.lease) {
            sodium_memzero(c->out.lease, strlen(c->out.lease));
            free(c->out.lease);
            c->out.lease = NULL;
            c->out.got = 0;
        }
        c->done(c);
    }
}

/* Park the batch's replies and events until the flusher reports its commit durable. The
 * batch's replies move out of e->replies (so finish_batch answers none of them now). */
static void hold_batch(struct engine *e)
{
    GROW(e, e->held, e->nheld, e->capheld);
    struct held_batch *h = &e->held[e->nheld++];
    h->tag = ++e->commits_written;
    /* a batch may have no replies (a claim that went on waiting) or no events: memcpy
     * with a NULL pointer is undefined even for 0 bytes */
    h->replies = e->nreplies ? xmalloc(e->nreplies * sizeof *h->replies) : NULL;
    if (e->nreplies)
        memcpy(h->replies, e->replies, e->nreplies * sizeof *h->replies);
    h->nreplies = e->nreplies;
    h->events = e->nbev ? xmalloc(e->nbev * sizeof *h->events) : NULL;
    if (e->nbev)
        memcpy(h->events, e->bev, e->nbev * sizeof *h->events);
    h->nevents = e->nbev;
    e->nbev = 0;
    e->nreplies = 0;
    pthread_mutex_lock(&e->fl_mu);
    e->fl_want = h->tag;
    pthread_cond_signal(&e->fl_cv);
    pthread_mutex_unlock(&e->fl_mu);
}

/* Answer the held batches the flusher has made durable (or failed to). */
static void release_held(struct engine *e)
{
    if (!e->nheld)
        return;
    pthread_mutex_lock(&e->fl_mu);
    uint64_t done = e->fl_done;
    char *fail = e->fl_fail;
    e->fl_fail = NULL;
    uint64_t fail_upto = e->fl_fail_upto;
    pthread_mutex_unlock(&e->fl_mu);
    size_t k = 0;
    for (; k < e->nheld && e->held[k].tag <= done; k++) {
        struct held_batch *h = &e->held[k];
        if (h->tag <= fail_upto && fail) {
            /* committed but not known durable: say so rather than promise it */
            for (size_t i = 0; i < h->nreplies; i++) {
                s2_fail(&h->replies[i]->err, S2_EUNAVAIL, "store_unavailable",
                        "the change was written but could not be made durable (%s); it may "
                        "or may not survive a crash",
                        fail);
                h->replies[i]->out.got = 0;
            }
        }
        publish(e, h->events, h->nevents);
        answer(e, h->replies, h->nreplies);
        free(h->events);
        free(h->replies);
    }
    free(fail);
    if (k) {
        memmove(e->held, e->held + k, (e->nheld - k) * sizeof *e->held);
        e->nheld -= k;
    }
}

/* Rebuild the in-memory state from the store (after a failed commit). While that fails
 * (the database is down, or restarting) the engine holds no state: every command is
 * answered 503 and the reload is tried again, with the same back-off as writes. */
static void engine_reload(struct engine *e)
{
    engine_clear(e);
    struct s2_error lerr = S2_ERROR_INIT;
    int64_t t = e->clock();
    if (engine_load(e, &lerr)) {
        log_error("reload after failed commit failed (retrying): %s", lerr.msg);
        s2_error_move(&e->batch_err, &lerr);
        engine_clear(e);
        e->unavailable_backoff = e->unavailable_backoff ? e->unavailable_backoff * 2 : 100;
        if (e->unavailable_backoff > 5000)
            e->unavailable_backoff = 5000;
        e->unavailable_until = t + e->unavailable_backoff;
        return;
    }
    e->need_reload = 0;
    log_info("state reloaded from the store");
}

static void finish_batch(struct engine *e)
{
    int64_t t0 = clock_mono_ns();
    int ok = !e->batch_failed;
    struct s2_error err = S2_ERROR_INIT;
    struct checkpoint cp_before = e->last_cp;
    if (ok && e->in_tx && witness_seal(e, &err))
        ok = 0, eng_store_failed(e, &err);
    if (ok && e->in_tx) {
        if (store_commit(e->store, &err)) {
            ok = 0;
            eng_store_failed(e, &err);
        }
        int64_t dt = clock_mono_ns() - t0;
        e->stats.commits++;
        e->stats.commit_ns_total += (uint64_t)dt;
        int b = 0;
        while (b < 13 && dt / 1000 > lat_bounds_us[b])
            b++;
        e->stats.commit_hist[b]++;
    }
    if (!ok) {
        if (e->in_tx)
            store_rollback(e->store);
        e->stats.commit_failures++;
        log_error("batch of %zu commands rolled back: %s", e->nreplies,
                  e->batch_err.msg ? e->batch_err.msg : "unknown error");
        for (size_t i = 0; i < e->nbev; i++) {
            free(e->bev[i].swarm);
            free(e->bev[i].data);
        }
        e->nbev = 0;
        e->chain = e->chain_saved;
        e->last_cp = cp_before;
        for (size_t i = 0; i < e->nreplies; i++) {
            struct cmd *c = e->replies[i];
            s2_fail(&c->err, S2_EUNAVAIL, "store_unavailable", "%s",
                    e->batch_err.msg ? e->batch_err.msg : "store write failed");
            c->out.got = 0;
        }
        /* Waiting claims: their agents' indexes may change on reload. */
        for (uint32_t wi = 0; wi < e->nwaiters; wi++) {
            if (!e->waiters[wi].cmd)
                continue;
            struct cmd *c = e->waiters[wi].cmd;
            eng_waiter_unlink(e, wi);
            s2_fail(&c->err, S2_EUNAVAIL, "store_unavailable", "store write failed");
            GROW(e, e->replies, e->nreplies, e->capreplies);
            e->replies[e->nreplies++] = c;
        }
        e->unavailable_backoff = e->unavailable_backoff ? e->unavailable_backoff * 2 : 100;
        if (e->unavailable_backoff > 5000)
            e->unavailable_backoff = 5000;
        e->unavailable_until = e->now + e->unavailable_backoff;
        if (e->mutated) {
            /* the memory is ahead of the store: start again from what the store holds */
            e->in_tx = 0;
            e->batch_failed = 0;
            e->need_reload = 1;
            engine_reload(e);
        }
    } else {
        int wrote = e->in_tx;
        if (e->in_tx) {
            e->chain_saved = e->chain;
            e->unavailable_backoff = 0;
            s2_error_release(&e->batch_err);
        }
        for (uint32_t k = 0; k < e->touched_agents.n; k++) {
            struct agent *a = &e->agents[e->touched_agents.v[k]];
            a->seen_stored = a->last_seen; /* written in this batch, see step() */
        }
        /* tokens become usable once committed (their holder learns them only once durable) */
        for (size_t i = 0; i < e->nreplies; i++) {
            struct cmd *c = e->replies[i];
            if (c->kind == CMD_SWARM_ADD && c->out.token && !c->err.kind) {
                uint8_t hash[TOKEN_HASH_BYTES];
                auth_hash(c->out.token, hash);
                auth_add(e->auth, hash, "swarm", c->in.swarm.id, c->in.swarm.id);
            }
            if (c->kind == CMD_APPROVER_ADD && c->out.token && !c->err.kind) {
                uint8_t hash[TOKEN_HASH_BYTES];
                auth_hash(c->out.token, hash);
                auth_add(e->auth, hash, "approver", NULL, c->in.approver.name);
            }
        }
        if (wrote && e->flusher_on && e->durability == DURABILITY_FULL && !e->commits_durable) {
            /* durable only once the flusher has synced this commit: replies and events wait */
            hold_batch(e);
        } else {
            publish(e, e->bev, e->nbev);
            e->nbev = 0;
        }
    }
    e->touched_agents.n = 0;
    e->in_tx = 0;
    e->batch_failed = 0;
    e->mutated = 0;
    size_t n = e->nreplies;
    e->nreplies = 0;
    int bb = 0;
    while (bb < 11 && (size_t)1 << bb < n)
        bb++;
    e->stats.batch_hist[bb]++;
    answer(e, e->replies, n);
}

/* Write last_seen of agents seen in this batch (at most every 5 s per agent). */
static void store_touched(struct engine *e)
{
    if (!e->touched_agents.n || e->batch_failed || eng_tx(e))
        return;
    for (uint32_t k = 0; k < e->touched_agents.n; k++) {
        struct agent *a = &e->agents[e->touched_agents.v[k]];
        if (a->seen_stored == a->last_seen)
            continue;
        struct s2_error err = S2_ERROR_INIT;
        if (store_agent_seen(e->store, a->id, a->last_seen, &err)) {
            eng_store_failed(e, &err);
            return;
        }
    }
}

static struct cmd *take_queue(struct engine *e)
{
    pthread_mutex_lock(&e->mu);
    struct cmd *c = e->q_head;
    e->q_head = e->q_tail = NULL;
    e->q_signalled = 0;
    pthread_mutex_unlock(&e->mu);
    return c;
}

static int run_batch(struct engine *e, struct cmd *list)
{
    int n = 0;
    e->now = e->clock();
    e->stats.batches++;
    e->timer_trace[0] = 0;
    /* what fell due since the last batch first, so this batch's claims can see it */
    e->cur = NULL;
    fire_timers(e);
    while (list) {
        struct cmd *next = list->next;
        list->next = NULL;
        e->cur = list;
        process(e, list);
        list = next;
        n++;
    }
    e->cur = NULL;
    fire_timers(e);
    store_touched(e);
    finish_batch(e);
    return n;
}

int engine_step(struct engine *e)
{
    uint64_t v;
    if (e->wake_fd >= 0)
        while (read(e->wake_fd, &v, sizeof v) > 0) {
        }
    release_held(e);
    int n = run_batch(e, take_queue(e));
    release_held(e);
    return n;
}

int64_t engine_next_deadline(struct engine *e)
{
    pthread_mutex_lock(&e->mu);
    int queued = e->q_head != NULL;
    pthread_mutex_unlock(&e->mu);
    if (queued)
        return 0;
    return next_timer(e);
}

int engine_wake_fd(struct engine *e)
{
    return e->wake_fd;
}

void engine_set_driver(struct engine *e)
{
    e->driver = pthread_self();
    e->has_driver = 1;
}

static void wake(struct engine *e)
{
    uint64_t one = 1;
    if (e->wake_fd >= 0 && write(e->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("engine: cannot signal the event loop: %s", strerror(errno));
}

/* The flusher: makes commits durable in the background (fdatasync of the WAL), so the
 * engine goes on with the next batch meanwhile: every batch that committed before a sync
 * started shares it (group commit, pipelined). It also copies the WAL into the database
 * every second and, in relaxed mode, is the once-a-second fsync. */
static void *flusher_main(void *arg)
{
    struct engine *e = arg;
    int64_t last_ckpt = clock_mono_ns();
    int tick = 0;
    pthread_mutex_lock(&e->fl_mu);
    for (;;) {
        while (e->fl_want == e->fl_done && !e->fl_stop &&
               clock_mono_ns() - last_ckpt < 1000000000LL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&e->fl_cv, &e->fl_mu, &ts);
        }
        uint64_t want = e->fl_want;
        int stop = e->fl_stop;
        pthread_mutex_unlock(&e->fl_mu);
        struct s2_error err = S2_ERROR_INIT;
        if (want != e->fl_done || e->durability == DURABILITY_RELAXED) {
            int rc = store_flush(e->store, &err);
            pthread_mutex_lock(&e->fl_mu);
            if (rc) {
                log_error("%s", err.msg);
                free(e->fl_fail);
                e->fl_fail = xstrdup(err.msg);
                e->fl_fail_upto = want;
                s2_error_release(&err);
            }
            e->fl_done = want;
            pthread_mutex_unlock(&e->fl_mu);
            if (want)
                wake(e);
        }
        if (clock_mono_ns() - last_ckpt >= 1000000000LL || stop) {
            last_ckpt = clock_mono_ns();
            if (store_checkpoint(e->store, &err)) {
                log_warn("%s", err.msg);
                s2_error_release(&err);
            }
            if (e->events && ++tick % 5 == 0)
                events_kick(e->events); /* SSE keep-alives */
        }
        pthread_mutex_lock(&e->fl_mu);
        if (stop && e->fl_want == e->fl_done)
            break;
    }
    pthread_mutex_unlock(&e->fl_mu);
    return NULL;
}

void engine_submit(struct engine *e, struct cmd *c)
{
    c->next = NULL;
    c->t_submit_ns = clock_mono_ns();
    pthread_mutex_lock(&e->mu);
    if (e->stopped) {
        pthread_mutex_unlock(&e->mu);
        s2_fail(&c->err, S2_EUNAVAIL, "shutting_down", "the server is shutting down");
        c->done(c);
        return;
    }
    if (e->q_tail)
        e->q_tail->next = c;
    else
        e->q_head = c;
    e->q_tail = c;
    /* the driver itself steps the engine after its handlers ran: no need to wake it */
    int signal = !e->q_signalled && !(e->has_driver && pthread_equal(e->driver, pthread_self()));
    if (signal)
        e->q_signalled = 1;
    pthread_mutex_unlock(&e->mu);
    if (signal)
        wake(e);
}

/* ------------------------------------------------------------------------------------ */
/* lifecycle */

static void engine_init_tables(struct engine *e)
{
    map_init(&e->model_ix);
    map_init(&e->swarm_ix);
    map_init(&e->agent_ix);
    map_init(&e->task_ix);
    map_init(&e->cap_ix);
    map_init(&e->reqset_ix);
    map_init(&e->lease_ix);
    heap_init(&e->timers, due_less, task_setpos, e);
    heap_init(&e->waiter_timers, waiter_less, waiter_setpos, e);
    e->free_waiter = NONE;
}

static void engine_clear(struct engine *e)
{
    for (uint32_t i = 0; i < e->ntasks; i++) {
        struct task *t = task_at(e, i);
        free(t->id);
        free(t->lease_key);
        if (t->paths) {
            strvec_release(t->paths);
            free(t->paths);
        }
        u32vec_release(&t->deps);
        u32vec_release(&t->dependents);
        if (t->approvers) {
            strvec_release(t->approvers);
            free(t->approvers);
        }
    }
    for (uint32_t i = 0; i < e->capchunks; i++)
        free(e->chunks[i]);
    free(e->chunks);
    e->chunks = NULL;
    e->ntasks = e->capchunks = 0;
    for (uint32_t i = 0; i < e->nswarms; i++) {
        struct swarm *s = &e->swarms[i];
        free(s->id);
        free(s->role);
        free(s->branch);
        strvec_release(&s->caps);
        for (uint32_t k = 0; k < s->nidle; k++) {
            free(s->idle[k].title);
            free(s->idle[k].body);
        }
        free(s->idle);
        free(s->contract);
        for (uint32_t p = 0; p < s->nphases; p++)
            u32vec_release(&s->phases[p].tasks);
        free(s->phases);
        for (uint32_t q = 0; q < s->nqueues; q++)
            heap_release(&s->queues[q].heap);
        free(s->queues);
    }
    free(e->swarms);
    e->swarms = NULL;
    e->nswarms = e->capswarms = 0;
    for (uint32_t i = 0; i < e->nagents; i++) {
        struct agent *a = &e->agents[i];
        free(a->id);
        strvec_release(&a->caps);
        free(a->capids);
        free(a->elig);
    }
    free(e->agents);
    e->agents = NULL;
    e->nagents = e->capagents = 0;
    for (uint32_t i = 0; i < e->nmodels; i++)
        free(e->models[i].name);
    free(e->models);
    e->models = NULL;
    e->nmodels = e->capmodels = 0;
    for (uint32_t i = 0; i < e->ncapnames; i++)
        free(e->capnames[i]);
    free(e->capnames);
    e->capnames = NULL;
    e->ncapnames = e->capcapnames = 0;
    for (uint32_t i = 0; i < e->nreqsets; i++) {
        free(e->reqsets[i].key);
        free(e->reqsets[i].caps);
    }
    free(e->reqsets);
    e->reqsets = NULL;
    e->nreqsets = e->capreqsets = 0;
    free(e->waiters);
    e->waiters = NULL;
    e->nwaiters = e->capwaiters = 0;
    for (uint32_t i = 0; i < e->nblockers; i++) {
        free(e->blockers[i].reason);
        u32vec_release(&e->blockers[i].helps);
    }
    free(e->blockers);
    e->blockers = NULL;
    e->nblockers = e->capblockers = e->open_blockers = 0;
    memset(&e->global, 0, sizeof e->global);
    map_release(&e->model_ix);
    map_release(&e->swarm_ix);
    map_release(&e->agent_ix);
    map_release(&e->task_ix);
    map_release(&e->cap_ix);
    map_release(&e->reqset_ix);
    map_release(&e->lease_ix);
    u32vec_release(&e->pathed);
    heap_release(&e->timers);
    heap_release(&e->waiter_timers);
    memset(e->count, 0, sizeof e->count);
    engine_init_tables(e);
}

/* The database names the key that signs its log; serving it with another would fork it. */
static int engine_check_key(struct engine *e, struct s2_error *err)
{
    char *want = store_meta_get(e->store, "public_key");
    char *have = keys_pub_b64(e->pk);
    int rc = 0;
    if (want && strcmp(want, have)) {
        char *where = store_location_for_humans(e->db_path);
        rc = s2_fail(err, S2_EINVAL, "wrong_key",
                     "the signing key (public key %s) is not the one of database '%s' (%s)", have,
                     where, want);
        free(where);
    }
    free(want);
    free(have);
    return rc;
}

const struct policy *engine_policy(const struct engine *e)
{
    return &e->policy;
}

const uint8_t *engine_public_key(const struct engine *e)
{
    return e->pk;
}

int engine_open(struct engine **out, const struct engine_config *cfg, struct s2_error *err)
{
    if (sodium_init() < 0)
        return s2_fail(err, S2_EINTERNAL, "crypto", "libsodium failed to initialise");
    struct engine *e = xcalloc(1, sizeof *e);
    e->db_path = xstrdup(cfg->db_path);
    e->durability = cfg->durability;
    e->clock = cfg->now_ms ? cfg->now_ms : clock_wall_ms;
    e->auth = auth_new();
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->fl_mu, NULL);
    pthread_cond_init(&e->fl_cv, NULL);
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    engine_init_tables(e);
    policy_default(&e->policy);
    char *key_path = cfg->key_path ? xstrdup(cfg->key_path)
                                   : xasprintf("%s.key", store_location_path(cfg->db_path));
    int krc = keys_load(key_path, e->sk, e->pk, err);
    free(key_path);
    if (krc) {
        engine_free(e);
        return err->kind;
    }
    if (store_open(&e->store, cfg->db_path, cfg->durability, err)) {
        engine_free(e);
        return err->kind ? err->kind : S2_EINTERNAL;
    }
    store_set_fence(e->store, cfg->fence_epoch);
    e->commits_durable = store_commits_durable(e->store);
    if (engine_check_key(e, err) || engine_load(e, err)) {
        engine_free(e);
        return err->kind ? err->kind : S2_EINTERNAL;
    }
    *out = e;
    return 0;
}

int engine_start(struct engine *e, struct s2_error *err)
{
    if (e->events)
        events_set_last_seq(e->events, e->chain.seq);
    /* full durability: commits only write, the flusher syncs and then they are answered */
    if (e->durability == DURABILITY_FULL && store_sync_commits(e->store, 0, err))
        return err->kind;
    if (pthread_create(&e->flusher, NULL, flusher_main, e)) {
        store_sync_commits(e->store, 1, NULL);
        return s2_fail(err, S2_EINTERNAL, "thread", "cannot start the flusher thread");
    }
    e->flusher_on = 1;
    return 0;
}

void engine_stop(struct engine *e)
{
    if (e->stopped)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_mutex_unlock(&e->mu);
    /* what is queued, then every waiting claim answered "nothing", in a last batch */
    e->now = e->clock();
    struct cmd *list = take_queue(e);
    for (uint32_t wi = 0; wi < e->nwaiters; wi++) {
        if (!e->waiters[wi].cmd)
            continue;
        struct cmd *c = e->waiters[wi].cmd;
        eng_waiter_unlink(e, wi);
        eng_reply(e, c);
    }
    run_batch(e, list);
    pthread_mutex_lock(&e->mu);
    e->stopped = 1; /* from now on submissions are refused at once */
    pthread_mutex_unlock(&e->mu);
    if (e->flusher_on) {
        pthread_mutex_lock(&e->fl_mu);
        e->fl_stop = 1;
        pthread_cond_signal(&e->fl_cv);
        pthread_mutex_unlock(&e->fl_mu);
        pthread_join(e->flusher, NULL);
        e->flusher_on = 0;
        release_held(e);
        store_sync_commits(e->store, 1, NULL);
    }
    /* anything submitted meanwhile was queued before `stopped`: answer it too */
    struct cmd *late = take_queue(e);
    while (late) {
        struct cmd *next = late->next;
        s2_fail(&late->err, S2_EUNAVAIL, "shutting_down", "the server is shutting down");
        late->done(late);
        late = next;
    }
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    engine_clear(e);
    map_release(&e->model_ix);
    map_release(&e->swarm_ix);
    map_release(&e->agent_ix);
    map_release(&e->task_ix);
    map_release(&e->cap_ix);
    map_release(&e->reqset_ix);
    map_release(&e->lease_ix);
    heap_release(&e->timers);
    heap_release(&e->waiter_timers);
    for (size_t i = 0; i < e->nbev; i++) {
        free(e->bev[i].swarm);
        free(e->bev[i].data);
    }
    free(e->bev);
    free(e->replies);
    u32vec_release(&e->dirty_swarms);
    u32vec_release(&e->touched_agents);
    s2_error_release(&e->batch_err);
    store_close(e->store);
    policy_release(&e->policy);
    sodium_memzero(e->sk, sizeof e->sk);
    auth_free(e->auth);
    pthread_mutex_destroy(&e->mu);

    pthread_mutex_destroy(&e->fl_mu);
    pthread_cond_destroy(&e->fl_cv);
    if (e->wake_fd >= 0)
        close(e->wake_fd);
    free(e->held);
    free(e->fl_fail);
    free(e->db_path);
    free(e);
}

void engine_set_events(struct engine *e, struct events *ev)
{
    e->events = ev;
}

const char *engine_db_path(const struct engine *e)
{
    return e->db_path;
}

static void lease_key(const uint8_t hash[TOKEN_HASH_BYTES], char out[2 * TOKEN_HASH_BYTES + 1])
{
    sodium_bin2hex(out, 2 * TOKEN_HASH_BYTES + 1, hash, TOKEN_HASH_BYTES);
}

/* A claimed task's lease becomes a credential for it (and stops being one at lease end). */
void eng_lease_index(struct engine *e, uint32_t ti, int on)
{
    struct task *t = task_at(e, ti);
    if (t->lease_key) {
        map_del(&e->lease_ix, t->lease_key);
        free(t->lease_key);
        t->lease_key = NULL;
    }
    if (on) {
        t->lease_key = xmalloc(2 * TOKEN_HASH_BYTES + 1);
        lease_key(t->lease_hash, t->lease_key);
        map_put(&e->lease_ix, t->lease_key, ti);
    }
}

int engine_authenticate(struct engine *e, const char *token, struct principal *who)
{
    memset(who, 0, sizeof *who);
    if (!strncmp(token, "s2l_", 4)) {
        uint8_t hash[TOKEN_HASH_BYTES];
        char key[2 * TOKEN_HASH_BYTES + 1];
        auth_hash(token, hash);
        lease_key(hash, key);
        uint32_t ti = map_get(&e->lease_ix, key);
        if (ti == MAP_NONE)
            return S2_EUNAUTH;
        const struct task *t = task_at(e, ti);
        if (t->state != TASK_CLAIMED || sodium_memcmp(hash, t->lease_hash, TOKEN_HASH_BYTES) ||
            t->due <= e->clock())
            return S2_EUNAUTH;
        who->kind = PRIN_TASK;
        who->name = "task";
        snprintf(who->task, sizeof who->task, "%s", t->id);
        return 0;
    }
    if (auth_lookup(e->auth, token, who))
        return S2_EUNAUTH;
    return 0;
}

/* The model table new databases start with (USD per million tokens, as published for the
 * Claude 3 family the seed used). */
static const struct {
    const char *name;
    int tier;
    double in, out;
} default_models[] = {
    {"haiku", 1, 0.25, 1.25},
    {"sonnet", 2, 3.00, 15.00},
    {"opus", 3, 15.00, 75.00},
};

int engine_init_db(const char *path, const char *key_path, char **admin_token,
                   struct s2_error *err)
{
    if (sodium_init() < 0)
        return s2_fail(err, S2_EINTERNAL, "crypto", "libsodium failed to initialise");
    char *kp = key_path ? xstrdup(key_path) : xasprintf("%s.key", path);
    uint8_t sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    char *made = NULL;
    if (!key_path && access(kp, F_OK) != 0 && keys_create(kp, &made, err)) {
        free(kp);
        return err->kind;
    }
    free(made);
    int rc = keys_load(kp, sk, pk, err);
    free(kp);
    if (rc)
        return rc;
    if (store_create(path, err))
        return err->kind;
    struct store *st;
    if (store_open(&st, path, DURABILITY_FULL, err))
        return err->kind;
    uint8_t hash[TOKEN_HASH_BYTES];
    char *tok = auth_token_new("s2a", hash);
    char *pub = keys_pub_b64(pk);
    int64_t now = clock_wall_ms();
    struct witness_chain chain;
    witness_chain_init(&chain);
    char trace[33];
    witness_new_trace_id(trace);
    struct buf params = BUF_INIT;
    /* The genesis entry names the key, so the log says who may sign it. */
    buf_addf(&params, "{\"public_key\":\"%s\",\"schema\":%d}", pub, STORE_SCHEMA_VERSION);
    struct witness_entry w = {.time = now, .actor = "admin", .op = "log.init",
                              .params = params.ptr, .trace_id = trace};
    rc = store_begin(st, err);
    if (!rc) {
        witness_chain_append(&chain, &w);
        rc = store_witness_append(st, &w, err);
    }
    if (!rc)
        rc = store_token_insert(st, hash, "admin", NULL, "admin", now, err);
    for (size_t i = 0; !rc && i < sizeof default_models / sizeof default_models[0]; i++) {
        struct model_spec m = {(char *)default_models[i].name, default_models[i].tier,
                               (int64_t)(default_models[i].in * S2_MICRO + 0.5),
                               (int64_t)(default_models[i].out * S2_MICRO + 0.5)};
        rc = store_model_put(st, &m, err);
        if (!rc) {
            buf_reset(&params);
            model_put_params(&params, &m);
            struct witness_entry mw = {.time = now, .actor = "admin", .op = "model.put",
                                       .params = params.ptr, .trace_id = trace};
            witness_chain_append(&chain, &mw);
            rc = store_witness_append(st, &mw, err);
        }
    }
    char created[32];
    snprintf(created, sizeof created, "%" PRId64, now);
    if (!rc)
        rc = store_meta_put(st, "created_at", created, err);
    if (!rc)
        rc = store_meta_put(st, "public_key", pub, err);
    if (!rc) {
        struct checkpoint cp;
        witness_chain_checkpoint(&chain, now, sk, &cp);
        char *frontier = merkle_frontier_format(&chain.tree);
        rc = store_checkpoint_add(st, &cp, frontier, err);
        free(frontier);
    }
    if (!rc)
        rc = store_commit(st, err);
    else
        store_rollback(st);
    store_close(st);
    sodium_memzero(sk, sizeof sk);
    buf_release(&params);
    free(pub);
    if (rc) {
        free(tok);
        if (!store_location_is_pg(path))
            unlink(store_location_path(path));
        return rc;
    }
    *admin_token = tok;
    return 0;
}
