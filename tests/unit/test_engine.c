/* test_engine: the domain rules, driven the way the HTTP layer drives them (cmd_new,
 * engine_submit) but processed synchronously with engine_step on a real store in a
 * temporary directory, under an injected clock: task states, retries and backoff,
 * dependencies and phases, batch creation, leases and fencing, ready order and
 * eligibility, long-poll, persistence across a reopen, approvals and authorisation.
 * After every scenario the in-memory indexes are checked against each other
 * (check_invariants), so a rule that leaves them inconsistent fails here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ------------------------------------------------------------------------------------ */
/* fixture: a fresh database per test, a clock the test moves */

#define T0 1700000000000LL

static int64_t fake_now;
static int64_t now_ms(void)
{
    return fake_now;
}

static const struct principal ADMIN = {PRIN_ADMIN, NULL, "admin"};

struct fx {
    char dir[64];
    char path[128];
    char *admin_token;
    struct engine *e;
};

static int fx_open(struct fx *f)
{
    struct engine_config cfg = {
        .db_path = f->path, .durability = DURABILITY_RELAXED, .now_ms = now_ms};
    struct s2_error err = S2_ERROR_INIT;
    if (engine_open(&f->e, &cfg, &err)) {
        print_error("engine_open: %s\n", err.msg ? err.msg : "?");
        s2_error_release(&err);
        f->e = NULL;
        return -1;
    }
    return 0;
}

/* Close the engine (never started) and open the same database again. */
static void fx_reopen(struct fx *f)
{
    engine_free(f->e);
    f->e = NULL;
    assert_int_equal(fx_open(f), 0);
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/s2-unit-engine-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/s2.db", f->dir);
    fake_now = T0;
    struct s2_error err = S2_ERROR_INIT;
    if (engine_init_db(f->path, NULL, &f->admin_token, &err) || fx_open(f)) {
        print_error("setup: %s\n", err.msg ? err.msg : "?");
        s2_error_release(&err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    engine_free(f->e);
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal", ".key"};
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f->admin_token);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* running commands */

static void on_done(struct cmd *c)
{
    (*(int *)c->ctx)++;
}

/* What a command answered, copied out so that the command can be freed at once. */
struct res {
    int rc;
    char code[48];
    char msg[1024];
    int got, state, attempts;
    uint64_t fence;
    int64_t expires_at, retry_at;
    char task[S2_ID_MAX + 1];
    char lease[160];
    char token[160];
    char wait_reason[64];
};

static struct res collect(const struct cmd *c)
{
    struct res r;
    memset(&r, 0, sizeof r);
    r.rc = c->err.kind;
    snprintf(r.code, sizeof r.code, "%s", c->err.code ? c->err.code : "");
    snprintf(r.msg, sizeof r.msg, "%s", c->err.msg ? c->err.msg : "");
    r.got = c->out.got;
    r.state = c->out.state;
    r.attempts = c->out.attempts;
    r.fence = c->out.fence;
    r.expires_at = c->out.expires_at;
    r.retry_at = c->out.retry_at;
    snprintf(r.task, sizeof r.task, "%s", c->out.task_id ? c->out.task_id : "");
    snprintf(r.lease, sizeof r.lease, "%s", c->out.lease ? c->out.lease : "");
    snprintf(r.token, sizeof r.token, "%s", c->out.token ? c->out.token : "");
    snprintf(r.wait_reason, sizeof r.wait_reason, "%s",
             c->out.wait_reason ? c->out.wait_reason : "");
    return r;
}

/* Submit, process in this thread, check the command was answered exactly once, free it. */
static struct res run(struct fx *f, struct cmd *c)
{
    int calls = 0;
    c->done = on_done;
    c->ctx = &calls;
    engine_submit(f->e, c);
    engine_step(f->e);
    if (calls != 1) {
        /* not parked as a waiter (no wait_ms here): the engine dropped it */
        int kind = c->kind, err = c->err.kind;
        char msg[256];
        snprintf(msg, sizeof msg, "%s", c->err.msg ? c->err.msg : "");
        if (calls == 0)
            cmd_free(c);
        fail_msg("command (kind %d) answered %d times, expected once (error %d: %s)", kind, calls,
                 err, msg);
    }
    struct res r = collect(c);
    cmd_free(c);
    return r;
}

/* Move the clock and run a batch without commands: timers due at the new time fire. */
static void tick(struct fx *f, int64_t ms)
{
    fake_now += ms;
    engine_step(f->e);
}

static struct res swarm_add_as(struct fx *f, const struct principal *who, const char *id)
{
    struct cmd *c = cmd_new(CMD_SWARM_ADD);
    c->who = *who;
    c->in.swarm.id = xstrdup(id);
    c->in.swarm.role = xstrdup("unit test swarm");
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(swarm_spec_check(&c->in.swarm, &err), 0);
    return run(f, c);
}

static void swarm_add(struct fx *f, const char *id)
{
    struct res r = swarm_add_as(f, &ADMIN, id);
    assert_int_equal(r.rc, 0);
    assert_true(strncmp(r.token, "s2s_", 4) == 0);
}

static struct res agent_add_as(struct fx *f, const struct principal *who, const char *id,
                               const char *swarm, const char *model, const char *caps,
                               int max_leases)
{
    struct cmd *c = cmd_new(CMD_AGENT_ADD);
    c->who = *who;
    c->in.agent.id = xstrdup(id);
    c->in.agent.swarm = xstrdup(swarm);
    c->in.agent.model = model ? xstrdup(model) : NULL;
    if (caps)
        strvec_split(&c->in.agent.caps, caps, ',');
    c->in.agent.max_leases = max_leases;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(agent_spec_check(&c->in.agent, &err), 0);
    return run(f, c);
}

static void agent_add(struct fx *f, const char *id, const char *swarm, const char *model,
                      const char *caps, int max_leases)
{
    struct res r = agent_add_as(f, &ADMIN, id, swarm, model, caps, max_leases);
    if (r.rc)
        fail_msg("agent_add %s: %s", id, r.msg);
}

/* Task options; zero means the default of task_spec_init. */
#define NO_BACKOFF (-1)
struct topt {
    int64_t phase;
    int64_t priority;
    const char *deps; /* comma-separated */
    const char *req;  /* comma-separated */
    int64_t min_tier;
    int64_t max_attempts;
    int64_t lease_ms;
    int64_t backoff_ms; /* NO_BACKOFF: 0 */
    const char *approval;
    int no_barrier;
};
#define O(...) (&(struct topt){__VA_ARGS__})

static struct cmd *tasks_new(const struct principal *who)
{
    struct cmd *c = cmd_new(CMD_TASK_ADD);
    c->who = *who;
    return c;
}

/* Append a task to a CMD_TASK_ADD (id NULL: let the engine make one up). */
static void tasks_push(struct cmd *c, const char *id, const char *swarm, const struct topt *o)
{
    size_t n = c->in.tasks.n;
    c->in.tasks.v = xrealloc(c->in.tasks.v, (n + 1) * sizeof *c->in.tasks.v);
    struct task_spec *t = &c->in.tasks.v[n];
    task_spec_init(t);
    c->in.tasks.n = n + 1;
    c->in.tasks.batch = n > 0;
    t->id = id ? xstrdup(id) : NULL;
    t->swarm = xstrdup(swarm);
    t->title = xasprintf("do %s", id ? id : "something");
    if (o) {
        if (o->phase)
            t->phase = o->phase;
        t->priority = o->priority;
        if (o->deps)
            strvec_split(&t->depends_on, o->deps, ',');
        if (o->req)
            strvec_split(&t->requires, o->req, ',');
        t->min_tier = o->min_tier;
        if (o->max_attempts)
            t->max_attempts = o->max_attempts;
        if (o->lease_ms)
            t->lease_ms = o->lease_ms;
        if (o->backoff_ms)
            t->backoff_ms = o->backoff_ms == NO_BACKOFF ? 0 : o->backoff_ms;
        if (o->approval)
            assert_int_equal(
                model_parse_approval(o->approval, &t->approval_kind, &t->approval_n, NULL), 0);
        if (o->no_barrier)
            t->phase_barrier = 0;
    }
    /* only what the API layer would let through reaches the engine */
    struct s2_error err = S2_ERROR_INIT;
    if (task_spec_check(t, "", &err))
        fail_msg("test bug: invalid spec: %s", err.msg);
}

static struct res task_add_as(struct fx *f, const struct principal *who, const char *id,
                              const char *swarm, const struct topt *o)
{
    struct cmd *c = tasks_new(who);
    tasks_push(c, id, swarm, o);
    return run(f, c);
}

static int task_add(struct fx *f, const char *id, const char *swarm, const struct topt *o)
{
    struct res r = task_add_as(f, &ADMIN, id, swarm, o);
    if (r.rc)
        fail_msg("task_add %s: %s", id ? id : "(null)", r.msg);
    assert_string_equal(r.task, id ? id : r.task);
    return r.state;
}

static struct res claim_as(struct fx *f, const struct principal *who, const char *agent)
{
    struct cmd *c = cmd_new(CMD_CLAIM);
    c->who = *who;
    c->in.claim.agent = xstrdup(agent);
    return run(f, c);
}

static struct res claim(struct fx *f, const char *agent)
{
    return claim_as(f, &ADMIN, agent);
}

/* Claim and insist on getting this task. */
static struct res claim_expect(struct fx *f, const char *agent, const char *task)
{
    struct res r = claim(f, agent);
    if (r.rc)
        fail_msg("claim by %s: %s", agent, r.msg);
    if (!r.got)
        fail_msg("claim by %s got nothing (%s), expected '%s'", agent, r.wait_reason, task);
    assert_string_equal(r.task, task);
    assert_true(r.lease[0] != 0);
    return r;
}

static void claim_nothing(struct fx *f, const char *agent)
{
    struct res r = claim(f, agent);
    assert_int_equal(r.rc, 0);
    if (r.got)
        fail_msg("claim by %s got '%s', expected nothing", agent, r.task);
    assert_true(r.wait_reason[0] != 0);
    assert_string_equal(r.lease, "");
}

static struct res lease_op_as(struct fx *f, const struct principal *who, enum cmd_kind k,
                              const char *task, const char *lease)
{
    struct cmd *c = cmd_new(k);
    c->who = *who;
    c->in.lease_op.task = xstrdup(task);
    c->in.lease_op.lease = xstrdup(lease);
    return run(f, c);
}

static struct res heartbeat(struct fx *f, const char *task, const char *lease)
{
    return lease_op_as(f, &ADMIN, CMD_HEARTBEAT, task, lease);
}

static struct res done(struct fx *f, const char *task, const char *lease)
{
    return lease_op_as(f, &ADMIN, CMD_DONE, task, lease);
}

static struct res fail_task(struct fx *f, const char *task, const char *lease, int retry,
                            const char *reason)
{
    struct cmd *c = cmd_new(CMD_FAIL);
    c->who = ADMIN;
    c->in.lease_op.task = xstrdup(task);
    c->in.lease_op.lease = xstrdup(lease);
    c->in.lease_op.retry = retry;
    c->in.lease_op.reason = reason ? xstrdup(reason) : NULL;
    return run(f, c);
}

static struct res cancel_as(struct fx *f, const struct principal *who, const char *task)
{
    struct cmd *c = cmd_new(CMD_CANCEL);
    c->who = *who;
    c->in.cancel.task = xstrdup(task);
    c->in.cancel.reason = xstrdup("not needed");
    return run(f, c);
}

static struct res cancel(struct fx *f, const char *task)
{
    return cancel_as(f, &ADMIN, task);
}

static struct res approve_as(struct fx *f, const struct principal *who, const char *task)
{
    struct cmd *c = cmd_new(CMD_APPROVE);
    c->who = *who;
    c->in.approve.task = xstrdup(task);
    return run(f, c);
}

static struct res pause_swarm(struct fx *f, const struct principal *who, const char *id, int pause)
{
    struct cmd *c = cmd_new(CMD_SWARM_STATE);
    c->who = *who;
    c->in.swarm_state.id = xstrdup(id);
    c->in.swarm_state.pause = pause;
    return run(f, c);
}

/* Finish a task in one go: claim it (it must be what the agent gets) and report done. */
static void claim_done(struct fx *f, const char *agent, const char *task)
{
    struct res c = claim_expect(f, agent, task);
    struct res d = done(f, task, c.lease);
    if (d.rc)
        fail_msg("done %s: %s", task, d.msg);
    assert_int_equal(d.state, TASK_DONE);
}

static void expect_err(const struct res *r, int kind, const char *code, const char *in_msg)
{
    if (r->rc != kind)
        fail_msg("expected error %d (%s), got %d: %s", kind, code, r->rc, r->msg);
    assert_string_equal(r->code, code);
    if (in_msg && !strstr(r->msg, in_msg))
        fail_msg("message '%s' does not mention '%s'", r->msg, in_msg);
}

/* ------------------------------------------------------------------------------------ */
/* looking inside */

static struct task *T(struct fx *f, const char *id)
{
    uint32_t i = map_get(&f->e->task_ix, id);
    if (i == MAP_NONE)
        fail_msg("task '%s' is not in memory", id);
    return task_at(f->e, i);
}

static int exists(struct fx *f, const char *id)
{
    return map_get(&f->e->task_ix, id) != MAP_NONE;
}

static struct agent *A(struct fx *f, const char *id)
{
    uint32_t i = map_get(&f->e->agent_ix, id);
    if (i == MAP_NONE)
        fail_msg("agent '%s' is not in memory", id);
    return &f->e->agents[i];
}

static void expect_state(struct fx *f, const char *id, int state)
{
    int s = T(f, id)->state;
    if (s != state)
        fail_msg("task '%s' is %s, expected %s", id, task_state_name(s), task_state_name(state));
}

/* The indexes agree with each other and with the rules: counts, heap positions, held
 * leases, open phases, unmet dependencies, and READY only where the rules allow it. */
static void check_invariants(struct engine *e)
{
    uint32_t count[TASK_NSTATES] = {0};
    uint32_t *held = xcalloc(e->nagents + 1, sizeof *held);
    uint32_t(*scount)[TASK_NSTATES] = xcalloc(e->nswarms + 1, sizeof *scount);
    for (uint32_t ti = 0; ti < e->ntasks; ti++) {
        const struct task *t = task_at(e, ti);
        assert_true(t->state < TASK_NSTATES);
        count[t->state]++;
        scount[t->swarm][t->state]++;
        assert_int_equal(map_get(&e->task_ix, t->id), ti);
        uint32_t unmet = 0;
        for (uint32_t k = 0; k < t->deps.n; k++)
            if (task_at(e, t->deps.v[k])->state != TASK_DONE)
                unmet++;
        if (t->unmet != unmet)
            fail_msg("task '%s': unmet %u, expected %u", t->id, t->unmet, unmet);
        const struct swarm *s = &e->swarms[t->swarm];
        switch (t->state) {
        case TASK_CLAIMED:
            assert_true(t->hpos < e->timers.n);
            assert_int_equal(e->timers.v[t->hpos], ti);
            assert_int_not_equal(t->owner, NONE);
            assert_true(t->due > 0);
            held[t->owner]++;
            break;
        case TASK_READY: {
            if (t->due > 0) {
                assert_true(t->hpos < e->timers.n);
                assert_int_equal(e->timers.v[t->hpos], ti);
            } else {
                const struct heap *h = &s->queues[t->queue].heap;
                assert_true(t->hpos < h->n);
                assert_int_equal(h->v[t->hpos], ti);
            }
            if (t->unmet)
                fail_msg("task '%s' is ready with %u unmet dependencies", t->id, t->unmet);
            if (t->approval_kind != APPROVAL_NONE && t->approvals < t->approvals_needed)
                fail_msg("task '%s' is ready without its approvals", t->id);
            if (t->phase_barrier)
                for (uint32_t p = 0; p < s->nphases && s->phases[p].phase < t->phase; p++)
                    if (s->phases[p].open)
                        fail_msg("task '%s' of phase %lld is ready while phase %lld of its "
                                 "swarm is open",
                                 t->id, (long long)t->phase, (long long)s->phases[p].phase);
            break;
        }
        default:
            if (t->hpos != HEAP_NONE)
                fail_msg("task '%s' (%s) still sits in a heap", t->id, task_state_name(t->state));
        }
    }
    for (int st = 0; st < TASK_NSTATES; st++)
        assert_int_equal(e->count[st], count[st]);
    for (uint32_t si = 0; si < e->nswarms; si++) {
        const struct swarm *s = &e->swarms[si];
        for (int st = 0; st < TASK_NSTATES; st++)
            assert_int_equal(s->count[st], scount[si][st]);
        for (uint32_t p = 0; p < s->nphases; p++) {
            uint32_t open = 0;
            for (uint32_t k = 0; k < s->phases[p].tasks.n; k++) {
                int st = task_at(e, s->phases[p].tasks.v[k])->state;
                open += st != TASK_DONE && st != TASK_CANCELLED;
            }
            assert_int_equal(s->phases[p].open, open);
        }
    }
    for (uint32_t ai = 0; ai < e->nagents; ai++)
        if (e->agents[ai].held != held[ai])
            fail_msg("agent '%s' holds %u leases, tasks say %u", e->agents[ai].id,
                     e->agents[ai].held, held[ai]);
    free(held);
    free(scount);
}

/* ------------------------------------------------------------------------------------ */
/* the state machine */

static void test_claim_done_lifecycle(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    assert_int_equal(task_add(f, "t1", "s", NULL), TASK_READY);
    assert_int_equal(task_add(f, "t2", "s", O(.deps = "t1")), TASK_PENDING);
    expect_state(f, "t1", TASK_READY);
    expect_state(f, "t2", TASK_PENDING);

    struct res c = claim_expect(f, "a", "t1");
    assert_int_equal(c.fence, 1);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(c.state, TASK_CLAIMED);
    assert_int_equal(c.expires_at, fake_now + S2_DEFAULT_LEASE_MS);
    assert_true(strncmp(c.lease, "s2l_1_", 6) == 0);
    assert_int_equal(engine_lease_fence(c.lease), 1);
    expect_state(f, "t1", TASK_CLAIMED);
    assert_string_equal(f->e->agents[T(f, "t1")->owner].id, "a");
    assert_int_equal(A(f, "a")->held, 1);
    check_invariants(f->e);

    fake_now += 10;
    struct cmd *d = cmd_new(CMD_DONE);
    d->who = ADMIN;
    d->in.lease_op.task = xstrdup("t1");
    d->in.lease_op.lease = xstrdup(c.lease);
    d->in.lease_op.result = xstrdup("{\"ok\":true}");
    struct res r = run(f, d);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_DONE);
    assert_int_equal(r.attempts, 1);
    expect_state(f, "t1", TASK_DONE);
    expect_state(f, "t2", TASK_READY);
    assert_int_equal(A(f, "a")->held, 0);

    /* the store has the outcome */
    struct store_reader *rd;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(store_reader_open(&rd, f->path, &err), 0);
    struct task_row row;
    assert_int_equal(store_task_get(rd, "t1", &row, &err), 1);
    assert_int_equal(row.state, TASK_DONE);
    assert_int_equal(row.attempts, 1);
    assert_int_equal(row.fence, 1);
    assert_string_equal(row.result, "{\"ok\":true}");
    assert_int_equal(row.finished_at, fake_now);
    task_row_release(&row);
    assert_int_equal(store_task_get(rd, "t2", &row, &err), 1);
    assert_int_equal(row.state, TASK_READY);
    task_row_release(&row);
    store_reader_close(rd);

    claim_done(f, "a", "t2");
    struct res n = claim(f, "a");
    assert_int_equal(n.rc, 0);
    assert_int_equal(n.got, 0);
    assert_string_equal(n.wait_reason, "no ready task for this agent");
    check_invariants(f->e);
}

static void test_fail_backoff_then_dead(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.max_attempts = 3, .backoff_ms = 1000));

    struct res c = claim_expect(f, "a", "t");
    struct res r = fail_task(f, "t", c.lease, 1, "boom");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_READY);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.retry_at, fake_now + 1000);
    assert_int_equal(T(f, "t")->due, fake_now + 1000);
    assert_int_equal(A(f, "a")->held, 0);
    check_invariants(f->e);

    /* not before ready_at */
    claim_nothing(f, "a");
    tick(f, 999);
    claim_nothing(f, "a");
    tick(f, 1);
    c = claim_expect(f, "a", "t");
    assert_int_equal(c.attempts, 2);
    assert_int_equal(c.fence, 2);

    /* the delay doubles */
    r = fail_task(f, "t", c.lease, 1, "boom again");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.retry_at, fake_now + 2000);
    tick(f, 1999);
    claim_nothing(f, "a");
    tick(f, 1);
    c = claim_expect(f, "a", "t");
    assert_int_equal(c.attempts, 3);

    /* the third failure is the last attempt: dead, no retry time */
    r = fail_task(f, "t", c.lease, 1, "boom for good");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_DEAD);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.retry_at, 0);
    expect_state(f, "t", TASK_DEAD);
    tick(f, 3600 * 1000);
    claim_nothing(f, "a");
    expect_state(f, "t", TASK_DEAD);
    check_invariants(f->e);

    struct store_reader *rd;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(store_reader_open(&rd, f->path, &err), 0);
    struct task_row row;
    assert_int_equal(store_task_get(rd, "t", &row, &err), 1);
    assert_int_equal(row.state, TASK_DEAD);
    assert_int_equal(row.attempts, 3);
    assert_string_equal(row.reason, "boom for good");
    task_row_release(&row);
    store_reader_close(rd);
}

static void test_fail_without_retry_is_dead(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.max_attempts = 5));
    struct res c = claim_expect(f, "a", "t");
    struct res r = fail_task(f, "t", c.lease, 0, "hopeless");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_DEAD);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.retry_at, 0);
    claim_nothing(f, "a");
    check_invariants(f->e);
}

/* The governor's policy (tests that fail one agent many times raise the breaker's
 * threshold: at the default of 3 the agent would be stopped, see test_gov.c). */
static void set_policy(struct fx *f, const char *json)
{
    struct cmd *c = cmd_new(CMD_POLICY_PUT);
    c->who = ADMIN;
    c->in.policy.json = json_loads(json, 0, NULL);
    struct res r = run(f, c);
    assert_int_equal(r.rc, 0);
}

static void test_backoff_doubles_to_cap(void **state)
{
    struct fx *f = *state;
    set_policy(f, "{\"breaker_failures\": 100}");
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "slow", "s", O(.max_attempts = 5, .backoff_ms = 400000));
    task_add(f, "now", "s", O(.max_attempts = 5, .backoff_ms = NO_BACKOFF, .priority = -1));

    struct res c = claim_expect(f, "a", "slow");
    struct res r = fail_task(f, "slow", c.lease, 1, NULL);
    assert_int_equal(r.retry_at, fake_now + 400000);
    tick(f, 400000);
    c = claim_expect(f, "a", "slow");
    r = fail_task(f, "slow", c.lease, 1, NULL);
    /* 800 s doubled, but never more than S2_BACKOFF_CAP_MS */
    assert_int_equal(r.retry_at, fake_now + S2_BACKOFF_CAP_MS);

    /* without backoff a failed task is claimable at once */
    c = claim_expect(f, "a", "now");
    r = fail_task(f, "now", c.lease, 1, NULL);
    assert_int_equal(r.state, TASK_READY);
    assert_int_equal(r.retry_at, fake_now);
    c = claim_expect(f, "a", "now");
    assert_int_equal(c.attempts, 2);
    check_invariants(f->e);
}

/* A claim in a batch whose clock is past a task's ready_at (or a lease's expiry) must see
 * the task: "not claimable before ready_at" means claimable from then on, whether or not a
 * timer-only batch happened to run in between. */
static void test_claim_sees_timers_due_now(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    agent_add(f, "b", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.backoff_ms = 1000));
    struct res c = claim_expect(f, "a", "t");
    struct res r = fail_task(f, "t", c.lease, 1, NULL);
    assert_int_equal(r.retry_at, fake_now + 1000);

    fake_now += 1500; /* no batch runs in between: the next one carries the claim */
    r = claim(f, "a");
    assert_int_equal(r.rc, 0);
    if (!r.got)
        fail_msg("a claim 500 ms after ready_at got nothing (%s)", r.wait_reason);
    assert_string_equal(r.task, "t");

    /* the same for a lease that ran out (no backoff): another agent's claim takes the task */
    task_add(f, "u", "s", O(.lease_ms = 1000, .backoff_ms = NO_BACKOFF));
    claim_expect(f, "b", "u");
    agent_add(f, "c", "s", NULL, NULL, 1);
    fake_now += 1500;
    r = claim(f, "c");
    assert_int_equal(r.rc, 0);
    if (!r.got)
        fail_msg("a claim after a lease expired got nothing (%s)", r.wait_reason);
    assert_string_equal(r.task, "u");
    check_invariants(f->e);
}

static void test_cancel_from_every_state(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);

    /* pending */
    task_add(f, "base", "s", O(.priority = -10));
    task_add(f, "pend", "s", O(.deps = "base"));
    struct res r = cancel(f, "pend");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_CANCELLED);
    expect_state(f, "pend", TASK_CANCELLED);
    check_invariants(f->e);

    /* ready: leaves its queue */
    task_add(f, "rdy", "s", O(.priority = 5));
    r = cancel(f, "rdy");
    assert_int_equal(r.rc, 0);
    expect_state(f, "rdy", TASK_CANCELLED);
    check_invariants(f->e);

    /* claimed: the lease becomes stale and the agent is free again */
    task_add(f, "clm", "s", O(.priority = 5));
    struct res c = claim_expect(f, "a", "clm");
    r = cancel(f, "clm");
    assert_int_equal(r.rc, 0);
    expect_state(f, "clm", TASK_CANCELLED);
    assert_int_equal(A(f, "a")->held, 0);
    r = heartbeat(f, "clm", c.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", "cancelled");
    r = done(f, "clm", c.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    expect_state(f, "clm", TASK_CANCELLED);
    check_invariants(f->e);

    /* ready but backing off (in the timer heap): the timer must not bring it back */
    task_add(f, "bck", "s", O(.priority = 5, .backoff_ms = 1000));
    c = claim_expect(f, "a", "bck");
    r = fail_task(f, "bck", c.lease, 1, NULL);
    assert_int_equal(r.state, TASK_READY);
    r = cancel(f, "bck");
    assert_int_equal(r.rc, 0);
    tick(f, 5000);
    expect_state(f, "bck", TASK_CANCELLED);
    check_invariants(f->e);

    /* dead */
    task_add(f, "ded", "s", O(.priority = 5, .max_attempts = 1));
    c = claim_expect(f, "a", "ded");
    r = fail_task(f, "ded", c.lease, 1, NULL);
    assert_int_equal(r.state, TASK_DEAD);
    r = cancel(f, "ded");
    assert_int_equal(r.rc, 0);
    expect_state(f, "ded", TASK_CANCELLED);

    /* the final states refuse */
    r = cancel(f, "ded");
    expect_err(&r, S2_ECONFLICT, "task_finished", "cancelled");
    claim_done(f, "a", "base");
    r = cancel(f, "base");
    expect_err(&r, S2_ECONFLICT, "task_finished", "done");
    expect_state(f, "base", TASK_DONE);
    r = cancel(f, "nope");
    expect_err(&r, S2_ENOTFOUND, "not_found", "'nope'");

    /* nothing cancelled comes back */
    claim_nothing(f, "a");
    check_invariants(f->e);
}

static void test_final_states_refuse_lease_ops(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "d", "s", O(.priority = 3));
    task_add(f, "x", "s", O(.priority = 2, .max_attempts = 1));
    task_add(f, "c", "s", O(.priority = 1));

    struct res cd = claim_expect(f, "a", "d");
    assert_int_equal(done(f, "d", cd.lease).rc, 0);
    struct res r = heartbeat(f, "d", cd.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", "is done");
    r = done(f, "d", cd.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    r = fail_task(f, "d", cd.lease, 1, NULL);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    expect_state(f, "d", TASK_DONE);
    assert_int_equal(T(f, "d")->attempts, 1);

    struct res cx = claim_expect(f, "a", "x");
    assert_int_equal(fail_task(f, "x", cx.lease, 1, NULL).state, TASK_DEAD);
    r = heartbeat(f, "x", cx.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", "is dead");
    r = done(f, "x", cx.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    expect_state(f, "x", TASK_DEAD);

    struct res cc = claim_expect(f, "a", "c");
    assert_int_equal(cancel(f, "c").rc, 0);
    r = fail_task(f, "c", cc.lease, 1, NULL);
    expect_err(&r, S2_ECONFLICT, "stale_lease", "is cancelled");
    expect_state(f, "c", TASK_CANCELLED);

    r = approve_as(f, &ADMIN, "d"); /* done, and never needed approval */
    if (r.rc != S2_ECONFLICT)
        fail_msg("approving a done task: expected S2_ECONFLICT, got %d", r.rc);
    r = heartbeat(f, "ghost", cd.lease);
    expect_err(&r, S2_ENOTFOUND, "not_found", "'ghost'");
    /* a made-up token for a live lease */
    task_add(f, "live", "s", NULL);
    claim_expect(f, "a", "live");
    r = done(f, "live", "s2l_1_not-the-token");
    expect_err(&r, S2_ECONFLICT, "stale_lease", "does not match");
    expect_state(f, "live", TASK_CLAIMED);
    check_invariants(f->e);
}

static void test_release_gives_task_back(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", NULL);
    struct res c = claim_expect(f, "a", "t");

    struct cmd *rel = cmd_new(CMD_RELEASE);
    rel->who = ADMIN;
    rel->in.release.task = xstrdup("t");
    rel->in.release.fence = c.fence + 1; /* not the current lease: ignored */
    run(f, rel);
    expect_state(f, "t", TASK_CLAIMED);

    rel = cmd_new(CMD_RELEASE);
    rel->who = ADMIN;
    rel->in.release.task = xstrdup("t");
    rel->in.release.fence = c.fence;
    run(f, rel);
    expect_state(f, "t", TASK_READY);
    assert_int_equal(T(f, "t")->attempts, 0); /* never seen by the claimer */
    assert_int_equal(A(f, "a")->held, 0);
    struct res r = heartbeat(f, "t", c.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    struct res c2 = claim_expect(f, "a", "t");
    assert_int_equal(c2.fence, 2);
    assert_int_equal(c2.attempts, 1);
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* dependencies and phases */

static void test_dependencies_across_swarms(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "front");
    swarm_add(f, "back");
    agent_add(f, "fa", "front", NULL, NULL, 1);
    agent_add(f, "ba", "back", NULL, NULL, 1);
    task_add(f, "api", "back", NULL);
    task_add(f, "b0", "front", NULL);
    assert_int_equal(task_add(f, "ui", "front", O(.deps = "api")), TASK_PENDING);
    assert_int_equal(task_add(f, "both", "front", O(.deps = "api,b0")), TASK_PENDING);
    assert_int_equal(T(f, "both")->unmet, 2);

    claim_done(f, "fa", "b0");
    expect_state(f, "both", TASK_PENDING);
    assert_int_equal(T(f, "both")->unmet, 1);
    claim_nothing(f, "fa");
    check_invariants(f->e);

    claim_done(f, "ba", "api");
    expect_state(f, "ui", TASK_READY);
    expect_state(f, "both", TASK_READY);
    claim_expect(f, "fa", "ui");
    check_invariants(f->e);

    /* a dependency that is already done is met from the start */
    assert_int_equal(task_add(f, "late", "back", O(.deps = "api")), TASK_READY);
    check_invariants(f->e);
}

static void test_phase_barrier(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    swarm_add(f, "other");
    agent_add(f, "a", "s", NULL, NULL, 10);
    agent_add(f, "o", "other", NULL, NULL, 1);
    assert_int_equal(task_add(f, "p1a", "s", O(.phase = 1)), TASK_READY);
    assert_int_equal(task_add(f, "p1b", "s", O(.phase = 1)), TASK_READY);
    assert_int_equal(task_add(f, "p2", "s", O(.phase = 2)), TASK_PENDING);
    assert_int_equal(task_add(f, "p2free", "s", O(.phase = 2, .no_barrier = 1)), TASK_READY);
    assert_int_equal(task_add(f, "p3", "s", O(.phase = 3)), TASK_PENDING);
    /* phases are per swarm */
    assert_int_equal(task_add(f, "o2", "other", O(.phase = 2)), TASK_READY);
    check_invariants(f->e);

    struct res a = claim_expect(f, "a", "p1a");
    struct res b = claim_expect(f, "a", "p1b");
    struct res free2 = claim_expect(f, "a", "p2free");
    claim_nothing(f, "a");
    assert_int_equal(done(f, "p1a", a.lease).rc, 0);
    expect_state(f, "p2", TASK_PENDING);
    claim_nothing(f, "a");
    assert_int_equal(done(f, "p1b", b.lease).rc, 0);
    expect_state(f, "p2", TASK_READY);
    expect_state(f, "p3", TASK_PENDING);
    claim_done(f, "a", "p2");
    /* p2free is still open: phase 2 is not all done */
    expect_state(f, "p3", TASK_PENDING);
    assert_int_equal(done(f, "p2free", free2.lease).rc, 0);
    expect_state(f, "p3", TASK_READY);
    claim_expect(f, "o", "o2");
    check_invariants(f->e);
}

/* New work in an earlier phase sends ready work of later phases back to pending. */
static void test_phase_reopened(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 5);
    task_add(f, "one", "s", O(.phase = 1));
    task_add(f, "two", "s", O(.phase = 2));
    claim_done(f, "a", "one");
    expect_state(f, "two", TASK_READY);

    assert_int_equal(task_add(f, "one-more", "s", O(.phase = 1)), TASK_READY);
    expect_state(f, "two", TASK_PENDING);
    check_invariants(f->e);
    claim_expect(f, "a", "one-more");
    claim_nothing(f, "a");
    assert_int_equal(cancel(f, "one-more").rc, 0);
    expect_state(f, "two", TASK_READY);
    check_invariants(f->e);
}

/* A later-phase task that was claimed when an earlier phase reopened, and then comes back
 * (fail with retry), must wait for the earlier phase like every other task of its phase:
 * the barrier holds for it as it does at creation, on reopen and on reload. */
static void test_phase_barrier_holds_for_retries(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 5);
    task_add(f, "one", "s", O(.phase = 1));
    task_add(f, "two", "s", O(.phase = 2, .backoff_ms = NO_BACKOFF));
    claim_done(f, "a", "one");
    struct res c2 = claim_expect(f, "a", "two");
    task_add(f, "fix", "s", O(.phase = 1)); /* phase 1 is open again */
    expect_state(f, "two", TASK_CLAIMED);

    struct res r = fail_task(f, "two", c2.lease, 1, "flaky");
    assert_int_equal(r.rc, 0);
    /* phase 1 has open work: "two" waits */
    expect_state(f, "two", TASK_PENDING);
    claim_expect(f, "a", "fix");
    claim_nothing(f, "a");
    check_invariants(f->e);
}

static void test_dead_task_holds_its_phase(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "one", "s", O(.phase = 1, .max_attempts = 1));
    task_add(f, "two", "s", O(.phase = 2));
    struct res c = claim_expect(f, "a", "one");
    assert_int_equal(fail_task(f, "one", c.lease, 1, NULL).state, TASK_DEAD);
    /* dead is not done: the phase stays open until someone cancels it */
    expect_state(f, "two", TASK_PENDING);
    claim_nothing(f, "a");
    assert_int_equal(cancel(f, "one").rc, 0);
    expect_state(f, "two", TASK_READY);
    check_invariants(f->e);
}

/* Only done satisfies a dependency: a cancelled (or dead) dependency leaves its dependents
 * pending, and new tasks may not name one. */
static void test_cancelled_and_dead_dependencies(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "dep", "s", NULL);
    task_add(f, "user", "s", O(.deps = "dep"));
    assert_int_equal(cancel(f, "dep").rc, 0);
    expect_state(f, "user", TASK_PENDING);
    assert_int_equal(T(f, "user")->unmet, 1);
    claim_nothing(f, "a");

    struct res r = task_add_as(f, &ADMIN, "late", "s", O(.deps = "dep"));
    expect_err(&r, S2_EINVAL, "dead_dependency", "'dep'");
    assert_false(exists(f, "late"));

    task_add(f, "doomed", "s", O(.max_attempts = 1));
    struct res c = claim_expect(f, "a", "doomed");
    assert_int_equal(fail_task(f, "doomed", c.lease, 0, NULL).state, TASK_DEAD);
    r = task_add_as(f, &ADMIN, "late", "s", O(.deps = "doomed"));
    expect_err(&r, S2_EINVAL, "dead_dependency", "dead");
    assert_false(exists(f, "late"));
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* batch creation */

static void test_batch_cycle_is_named(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    uint32_t before = f->e->ntasks;
    struct cmd *c = tasks_new(&ADMIN);
    tasks_push(c, "a", "s", O(.deps = "c"));
    tasks_push(c, "b", "s", O(.deps = "a"));
    tasks_push(c, "c", "s", O(.deps = "b"));
    tasks_push(c, "free", "s", NULL);
    struct res r = run(f, c);
    expect_err(&r, S2_EINVAL, "dependency_cycle", "a -> c -> b -> a");
    assert_int_equal(f->e->ntasks, before);
    assert_false(exists(f, "a"));
    assert_false(exists(f, "free"));

    c = tasks_new(&ADMIN);
    tasks_push(c, "x", "s", NULL);
    tasks_push(c, "y", "s", O(.deps = "x,y"));
    r = run(f, c);
    expect_err(&r, S2_EINVAL, "dependency_cycle", "'y' depends on itself");
    assert_false(exists(f, "x"));

    c = tasks_new(&ADMIN);
    tasks_push(c, "p", "s", O(.deps = "q"));
    tasks_push(c, "q", "s", O(.deps = "p"));
    r = run(f, c);
    expect_err(&r, S2_EINVAL, "dependency_cycle", "p -> q -> p");
    assert_int_equal(f->e->ntasks, before);
    check_invariants(f->e);
}

static void test_batch_order_and_ids(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    /* a task may name one listed after it; ids come back in request order */
    struct cmd *c = tasks_new(&ADMIN);
    tasks_push(c, "last", "s", O(.deps = "mid"));
    tasks_push(c, "mid", "s", O(.deps = "first"));
    tasks_push(c, "first", "s", NULL);
    tasks_push(c, NULL, "s", O(.deps = "first"));
    int calls = 0;
    c->done = on_done;
    c->ctx = &calls;
    engine_submit(f->e, c);
    engine_step(f->e);
    assert_int_equal(calls, 1);
    assert_int_equal(c->err.kind, 0);
    assert_string_equal(c->out.ids[0], "last");
    assert_string_equal(c->out.ids[1], "mid");
    assert_string_equal(c->out.ids[2], "first");
    assert_int_equal(c->out.states[0], TASK_PENDING);
    assert_int_equal(c->out.states[2], TASK_READY);
    char gen[S2_ID_MAX + 1];
    snprintf(gen, sizeof gen, "%s", c->out.ids[3]);
    assert_true(strncmp(gen, "s.", 2) == 0);
    assert_int_equal(c->out.rowids[3], T(f, gen)->rowid);
    cmd_free(c);
    /* dependencies get the lower keys, so a reload resolves them in one pass */
    assert_true(T(f, "first")->rowid < T(f, "mid")->rowid);
    assert_true(T(f, "mid")->rowid < T(f, "last")->rowid);

    /* generated ids never collide */
    struct res r1 = task_add_as(f, &ADMIN, NULL, "s", NULL);
    struct res r2 = task_add_as(f, &ADMIN, NULL, "s", NULL);
    assert_int_equal(r1.rc, 0);
    assert_int_equal(r2.rc, 0);
    assert_string_not_equal(r1.task, r2.task);
    assert_string_not_equal(r1.task, gen);
    assert_true(strncmp(r1.task, "s.", 2) == 0);
    check_invariants(f->e);
}

static void test_batch_unknown_dependency_all_or_nothing(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    uint32_t before = f->e->ntasks;
    struct cmd *c = tasks_new(&ADMIN);
    tasks_push(c, "ok1", "s", NULL);
    tasks_push(c, "ok2", "s", O(.deps = "ok1"));
    tasks_push(c, "bad", "s", O(.deps = "ok1,nope"));
    struct res r = run(f, c);
    expect_err(&r, S2_EINVAL, "unknown_dependency", "'nope'");
    assert_true(strstr(r.msg, "'bad'") != NULL);
    assert_int_equal(f->e->ntasks, before);
    assert_false(exists(f, "ok1"));

    c = tasks_new(&ADMIN);
    tasks_push(c, "ok1", "s", NULL);
    tasks_push(c, "elsewhere", "nosuchswarm", NULL);
    r = run(f, c);
    expect_err(&r, S2_EINVAL, "unknown_swarm", "tasks[1]");
    assert_false(exists(f, "ok1"));

    /* nothing was kept or reserved: the same batch, fixed, goes through */
    c = tasks_new(&ADMIN);
    tasks_push(c, "ok1", "s", NULL);
    tasks_push(c, "ok2", "s", O(.deps = "ok1"));
    r = run(f, c);
    assert_int_equal(r.rc, 0);
    expect_state(f, "ok1", TASK_READY);
    expect_state(f, "ok2", TASK_PENDING);

    /* and it is in the store too, after a reopen */
    fx_reopen(f);
    expect_state(f, "ok2", TASK_PENDING);
    assert_int_equal(f->e->ntasks, before + 2);
    check_invariants(f->e);
}

static void test_batch_duplicate_ids(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    task_add(f, "old", "s", NULL);
    uint32_t before = f->e->ntasks;

    struct cmd *c = tasks_new(&ADMIN);
    tasks_push(c, "n1", "s", NULL);
    tasks_push(c, "n2", "s", NULL);
    tasks_push(c, "n1", "s", NULL);
    struct res r = run(f, c);
    expect_err(&r, S2_EINVAL, "duplicate_id", "'n1'");
    assert_false(exists(f, "n1"));

    c = tasks_new(&ADMIN);
    tasks_push(c, "n3", "s", NULL);
    tasks_push(c, "old", "s", NULL);
    r = run(f, c);
    expect_err(&r, S2_ECONFLICT, "task_exists", "'old'");
    assert_false(exists(f, "n3"));

    r = task_add_as(f, &ADMIN, "old", "s", NULL);
    expect_err(&r, S2_ECONFLICT, "task_exists", "'old'");
    assert_int_equal(f->e->ntasks, before);
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* leases and fencing */

static void test_heartbeat_expiry_and_fencing(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    agent_add(f, "b", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.lease_ms = 1000, .backoff_ms = 500));

    struct res ca = claim_expect(f, "a", "t");
    assert_int_equal(ca.expires_at, T0 + 1000);
    assert_int_equal(ca.fence, 1);

    tick(f, 800);
    struct res h = heartbeat(f, "t", ca.lease);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.expires_at, T0 + 1800);
    assert_int_equal(h.fence, 1);
    assert_int_equal(T(f, "t")->due, T0 + 1800);

    /* past the first expiry, before the extended one: still held */
    tick(f, 700);
    expect_state(f, "t", TASK_CLAIMED);
    check_invariants(f->e);

    /* the timer alone expires it: ready again after the backoff, the attempt counted */
    tick(f, 300);
    expect_state(f, "t", TASK_READY);
    assert_int_equal(T(f, "t")->attempts, 1);
    assert_int_equal(T(f, "t")->due, T0 + 1800 + 500);
    assert_int_equal(A(f, "a")->held, 0);
    check_invariants(f->e);
    struct res r = heartbeat(f, "t", ca.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);

    tick(f, 500);
    struct res cb = claim_expect(f, "b", "t");
    assert_int_equal(cb.fence, 2);
    assert_int_equal(cb.attempts, 2);
    assert_true(strncmp(cb.lease, "s2l_2_", 6) == 0);
    assert_string_not_equal(cb.lease, ca.lease);

    /* the old holder is fenced off on every operation */
    r = heartbeat(f, "t", ca.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", "claimed again");
    r = done(f, "t", ca.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    r = fail_task(f, "t", ca.lease, 1, NULL);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    expect_state(f, "t", TASK_CLAIMED);
    assert_string_equal(f->e->agents[T(f, "t")->owner].id, "b");
    assert_int_equal(T(f, "t")->attempts, 2);

    /* the new holder's token works */
    tick(f, 100);
    h = heartbeat(f, "t", cb.lease);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.expires_at, fake_now + 1000);
    r = done(f, "t", cb.lease);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_DONE);
    assert_int_equal(r.attempts, 2);
    check_invariants(f->e);
}

static void test_expiries_exhaust_attempts(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.lease_ms = 1000, .max_attempts = 2, .backoff_ms = NO_BACKOFF));
    claim_expect(f, "a", "t");
    tick(f, 1000);
    expect_state(f, "t", TASK_READY);
    assert_int_equal(T(f, "t")->attempts, 1);
    struct res c = claim_expect(f, "a", "t");
    assert_int_equal(c.attempts, 2);
    tick(f, 999);
    expect_state(f, "t", TASK_CLAIMED);
    tick(f, 1);
    expect_state(f, "t", TASK_DEAD);
    assert_int_equal(A(f, "a")->held, 0);
    claim_nothing(f, "a");
    check_invariants(f->e);
}

/* A lease used after its expiry, before any timer noticed, is refused as expired and the
 * task goes back to ready at once. */
static void test_lease_used_after_expiry(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.lease_ms = 1000, .backoff_ms = NO_BACKOFF));
    struct res c = claim_expect(f, "a", "t");
    fake_now += 1000; /* no batch in between */
    struct res r = heartbeat(f, "t", c.lease);
    /* "lease_expired" when the command notices, "stale_lease" if a timer did first */
    if (strcmp(r.code, "lease_expired"))
        expect_err(&r, S2_ECONFLICT, "stale_lease", "expired");
    else
        expect_err(&r, S2_ECONFLICT, "lease_expired", "expired");
    expect_state(f, "t", TASK_READY);
    assert_int_equal(A(f, "a")->held, 0);
    r = done(f, "t", c.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    check_invariants(f->e);

    /* the expiry was committed, not just done in memory */
    fx_reopen(f);
    expect_state(f, "t", TASK_READY);
    assert_int_equal(T(f, "t")->attempts, 1);
    check_invariants(f->e);
}

static void test_lease_fence_parsing(void **state)
{
    struct fx *f = *state;
    assert_int_equal(engine_lease_fence("s2l_42_abcdef"), 42);
    assert_int_equal(engine_lease_fence("s2l_1_a_b-c"), 1);
    assert_true(engine_lease_fence("s2l_18446744073709551615_x") == UINT64_MAX);
    assert_int_equal(engine_lease_fence("s2l_18446744073709551616_x"), 0); /* overflow */
    assert_int_equal(engine_lease_fence("s2l_"), 0);
    assert_int_equal(engine_lease_fence("s2l_12"), 0); /* no separator */
    assert_int_equal(engine_lease_fence("s2l_12x_abc"), 0);
    assert_int_equal(engine_lease_fence("s2l_x_1"), 0);
    assert_int_equal(engine_lease_fence("s2a_5_abc"), 0);
    assert_int_equal(engine_lease_fence("S2L_5_abc"), 0);
    assert_int_equal(engine_lease_fence(""), 0);
    assert_int_equal(engine_lease_fence("garbage"), 0);

    /* every real token carries its fence */
    set_policy(f, "{\"breaker_failures\": 100}");
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.backoff_ms = NO_BACKOFF, .max_attempts = 20));
    for (uint64_t k = 1; k <= 12; k++) {
        struct res c = claim_expect(f, "a", "t");
        assert_int_equal(c.fence, k);
        assert_int_equal(engine_lease_fence(c.lease), k);
        assert_int_equal(fail_task(f, "t", c.lease, 1, NULL).rc, 0);
    }
}

/* The fence is a decimal number: signs and blanks are not part of the format (strtoull
 * would read "-1" as 18446744073709551615). */
static void test_lease_fence_rejects_signs(void **state)
{
    (void)state;
    assert_int_equal(engine_lease_fence("s2l_-1_abc"), 0);
    assert_int_equal(engine_lease_fence("s2l_+7_abc"), 0);
    assert_int_equal(engine_lease_fence("s2l_ 7_abc"), 0);
}

static void test_usage_is_priced(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", "sonnet", NULL, 1);
    task_add(f, "t", "s", NULL);
    struct res c = claim_expect(f, "a", "t");

    struct cmd *h = cmd_new(CMD_HEARTBEAT);
    h->who = ADMIN;
    h->in.lease_op.task = xstrdup("t");
    h->in.lease_op.lease = xstrdup(c.lease);
    h->in.lease_op.usage.present = 1;
    h->in.lease_op.usage.tokens_in = 1000000;
    h->in.lease_op.usage.tokens_out = 100000;
    assert_int_equal(run(f, h).rc, 0);
    /* sonnet: $3 in, $15 out per million */
    assert_int_equal(T(f, "t")->cost_micro, 4500000);
    assert_int_equal(T(f, "t")->tokens_in, 1000000);

    /* an unknown model is refused before anything changes */
    struct cmd *d = cmd_new(CMD_DONE);
    d->who = ADMIN;
    d->in.lease_op.task = xstrdup("t");
    d->in.lease_op.lease = xstrdup(c.lease);
    d->in.lease_op.usage.present = 1;
    d->in.lease_op.usage.model = xstrdup("gpt-nope");
    d->in.lease_op.usage.tokens_in = 5;
    struct res r = run(f, d);
    expect_err(&r, S2_EINVAL, "unknown_model", "'gpt-nope'");
    expect_state(f, "t", TASK_CLAIMED);
    assert_int_equal(T(f, "t")->cost_micro, 4500000);

    d = cmd_new(CMD_DONE);
    d->who = ADMIN;
    d->in.lease_op.task = xstrdup("t");
    d->in.lease_op.lease = xstrdup(c.lease);
    d->in.lease_op.usage.present = 1;
    d->in.lease_op.usage.usd_micro = 250;
    d->in.lease_op.usage.tokens_out = 7;
    assert_int_equal(run(f, d).rc, 0);
    assert_int_equal(T(f, "t")->cost_micro, 4500250);
    assert_int_equal(T(f, "t")->tokens_out, 100007);

    fx_reopen(f);
    assert_int_equal(T(f, "t")->cost_micro, 4500250);
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* ready order and eligibility */

static void test_ready_order(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "g", "s", NULL, "gpu", 20);
    task_add(f, "low", "s", NULL);
    task_add(f, "hi", "s", O(.priority = 5));
    task_add(f, "neg", "s", O(.priority = -3));
    task_add(f, "gpu-top", "s", O(.priority = 7, .req = "gpu"));
    task_add(f, "hi2", "s", O(.priority = 5));
    task_add(f, "gpu-mid", "s", O(.priority = 2, .req = "gpu"));
    task_add(f, "mid", "s", O(.priority = 2));
    task_add(f, "hi3", "s", O(.priority = 5, .req = "gpu"));
    static const char *const want[] = {"gpu-top", "hi",  "hi2", "hi3",
                                       "gpu-mid", "mid", "low", "neg"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        claim_expect(f, "g", want[i]);
    claim_nothing(f, "g");
    check_invariants(f->e);
}

/* A task that comes back keeps its place by priority and creation order, not by when it
 * came back. */
static void test_ready_order_after_requeue(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "first", "s", O(.backoff_ms = NO_BACKOFF));
    task_add(f, "second", "s", NULL);
    task_add(f, "urgent", "s", O(.priority = 9));
    struct res c = claim_expect(f, "a", "urgent");
    assert_int_equal(fail_task(f, "urgent", c.lease, 1, NULL).rc, 0);
    tick(f, 1000);
    c = claim_expect(f, "a", "urgent");
    assert_int_equal(done(f, "urgent", c.lease).rc, 0);
    c = claim_expect(f, "a", "first");
    assert_int_equal(fail_task(f, "first", c.lease, 1, NULL).rc, 0);
    claim_expect(f, "a", "first");
    check_invariants(f->e);
}

static void test_capabilities_and_tier(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "plain", "s", NULL, NULL, 1); /* default model: the cheapest tier */
    agent_add(f, "rusty", "s", "haiku", "rust", 1);
    agent_add(f, "polyglot", "s", "sonnet", "go,rust,c", 1);
    agent_add(f, "big", "s", "opus", NULL, 1);
    assert_string_equal(f->e->models[A(f, "plain")->model].name, "haiku");
    task_add(f, "rust-go", "s", O(.req = "rust,go"));
    task_add(f, "tier2", "s", O(.min_tier = 2));
    task_add(f, "rust-tier3", "s", O(.req = "rust", .min_tier = 3));

    claim_nothing(f, "plain");
    claim_nothing(f, "rusty"); /* lacks go; tier 1 */
    claim_expect(f, "big", "tier2");
    claim_expect(f, "polyglot", "rust-go");
    /* left: rust-tier3 */
    claim_nothing(f, "plain");
    claim_nothing(f, "rusty");
    check_invariants(f->e);

    /* a model's tier changes: eligibility follows */
    struct cmd *m = cmd_new(CMD_MODEL_PUT);
    m->who = ADMIN;
    m->in.model.name = xstrdup("haiku");
    m->in.model.tier = 3;
    m->in.model.usd_in_micro = 250000;
    m->in.model.usd_out_micro = 1250000;
    assert_int_equal(run(f, m).rc, 0);
    claim_nothing(f, "plain"); /* tier 3 now, but lacks rust */
    claim_expect(f, "rusty", "rust-tier3");
    check_invariants(f->e);
}

/* A waiting claim is not handed a task it may not take. */
static void test_long_poll_respects_capabilities(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "w", "s", NULL, "python", 1);
    int calls = 0;
    struct cmd *c = cmd_new(CMD_CLAIM);
    c->who = ADMIN;
    c->in.claim.agent = xstrdup("w");
    c->in.claim.wait_ms = 2000;
    c->done = on_done;
    c->ctx = &calls;
    engine_submit(f->e, c);
    engine_step(f->e);
    assert_int_equal(calls, 0);
    task_add(f, "needs-rust", "s", O(.req = "rust"));
    task_add(f, "needs-tier", "s", O(.min_tier = 2));
    assert_int_equal(calls, 0);
    tick(f, 2000);
    assert_int_equal(calls, 1);
    assert_int_equal(c->err.kind, 0);
    assert_int_equal(c->out.got, 0);
    cmd_free(c);
    expect_state(f, "needs-rust", TASK_READY);
    check_invariants(f->e);
}

static void test_swarm_pause(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 2);
    task_add(f, "t1", "s", NULL);
    task_add(f, "t2", "s", NULL);

    struct principal tok = {PRIN_SWARM, "s", "s"};
    struct res r = pause_swarm(f, &tok, "s", 1);
    expect_err(&r, S2_EFORBIDDEN, "forbidden", "admin");
    r = pause_swarm(f, &ADMIN, "nope", 1);
    expect_err(&r, S2_ENOTFOUND, "not_found", "'nope'");

    assert_int_equal(pause_swarm(f, &ADMIN, "s", 1).rc, 0);
    assert_int_equal(pause_swarm(f, &ADMIN, "s", 1).rc, 0); /* idempotent */
    r = claim(f, "a");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.got, 0);
    assert_string_equal(r.wait_reason, "swarm paused");

    /* a claim waiting through the pause gets work on resume */
    int calls = 0;
    struct cmd *c = cmd_new(CMD_CLAIM);
    c->who = ADMIN;
    c->in.claim.agent = xstrdup("a");
    c->in.claim.wait_ms = 10000;
    c->done = on_done;
    c->ctx = &calls;
    engine_submit(f->e, c);
    engine_step(f->e);
    assert_int_equal(calls, 0);
    task_add(f, "t3", "s", O(.priority = 1));
    assert_int_equal(calls, 0); /* still paused */

    assert_int_equal(pause_swarm(f, &ADMIN, "s", 0).rc, 0);
    assert_int_equal(calls, 1);
    assert_int_equal(c->err.kind, 0);
    assert_int_equal(c->out.got, 1);
    assert_string_equal(c->out.task_id, "t3");
    cmd_free(c);
    claim_expect(f, "a", "t1");

    /* the pause survives a reopen */
    assert_int_equal(pause_swarm(f, &ADMIN, "s", 1).rc, 0);
    fx_reopen(f);
    agent_add(f, "b", "s", NULL, NULL, 1);
    r = claim(f, "b");
    assert_int_equal(r.got, 0);
    assert_string_equal(r.wait_reason, "swarm paused");
    check_invariants(f->e);
}

static void test_max_leases_per_agent(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 2);
    task_add(f, "t1", "s", NULL);
    task_add(f, "t2", "s", NULL);
    task_add(f, "t3", "s", NULL);
    struct res c1 = claim_expect(f, "a", "t1");
    struct res c2 = claim_expect(f, "a", "t2");
    assert_int_equal(A(f, "a")->held, 2);
    assert_int_equal(done(f, "t1", c1.lease).rc, 0);
    assert_int_equal(A(f, "a")->held, 1);
    claim_expect(f, "a", "t3");
    assert_int_equal(A(f, "a")->held, 2);
    task_add(f, "t4", "s", NULL);
    check_invariants(f->e);

    /* full: refused, and t4 stays where it is */
    struct res r = claim(f, "a");
    expect_err(&r, S2_ECONFLICT, "agent_busy", "max_leases 2");
    expect_state(f, "t4", TASK_READY);
    assert_int_equal(fail_task(f, "t2", c2.lease, 0, NULL).rc, 0);
    claim_expect(f, "a", "t4");
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* long-poll */

struct waiting {
    int calls;
    struct cmd *c;
};

static void wait_claim(struct fx *f, struct waiting *w, const char *agent, int64_t wait_ms)
{
    w->calls = 0;
    w->c = cmd_new(CMD_CLAIM);
    w->c->who = ADMIN;
    w->c->in.claim.agent = xstrdup(agent);
    w->c->in.claim.wait_ms = wait_ms;
    w->c->done = on_done;
    w->c->ctx = &w->calls;
    engine_submit(f->e, w->c);
    engine_step(f->e);
}

static void test_long_poll_push(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    struct waiting w;
    wait_claim(f, &w, "a", 5000);
    assert_int_equal(w.calls, 0);
    assert_int_equal(f->e->swarms[0].nwaiting, 1);
    tick(f, 1000);
    assert_int_equal(w.calls, 0);

    task_add(f, "t", "s", NULL);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.c->err.kind, 0);
    assert_int_equal(w.c->out.got, 1);
    assert_string_equal(w.c->out.task_id, "t");
    assert_int_equal(w.c->out.fence, 1);
    assert_int_equal(w.c->out.expires_at, fake_now + S2_DEFAULT_LEASE_MS);
    char lease[160];
    snprintf(lease, sizeof lease, "%s", w.c->out.lease);
    cmd_free(w.c);
    expect_state(f, "t", TASK_CLAIMED);
    assert_int_equal(f->e->swarms[0].nwaiting, 0);
    /* the pushed lease is a real one */
    assert_int_equal(heartbeat(f, "t", lease).rc, 0);
    tick(f, 10000);
    check_invariants(f->e);
}

static void test_long_poll_deadline(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    struct waiting w;
    wait_claim(f, &w, "a", 5000);
    tick(f, 4999);
    assert_int_equal(w.calls, 0);
    tick(f, 1);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.c->err.kind, 0);
    assert_int_equal(w.c->out.got, 0);
    assert_null(w.c->out.lease);
    assert_string_equal(w.c->out.wait_reason, "no ready task for this agent");
    cmd_free(w.c);
    assert_int_equal(f->e->swarms[0].nwaiting, 0);
    /* work arriving later is not handed to the answered claim */
    assert_int_equal(task_add(f, "t", "s", NULL), TASK_READY);
    check_invariants(f->e);
}

static void test_long_poll_fifo_and_wakeups(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "h", "s", NULL, NULL, 1);
    agent_add(f, "w1", "s", NULL, NULL, 1);
    agent_add(f, "w2", "s", NULL, NULL, 1);
    task_add(f, "x", "s", O(.backoff_ms = 1000));
    task_add(f, "y", "s", O(.deps = "x"));
    struct res cx = claim_expect(f, "h", "x");

    struct waiting w1, w2;
    wait_claim(f, &w1, "w1", 60000);
    tick(f, 1);
    wait_claim(f, &w2, "w2", 60000);
    assert_int_equal(w1.calls + w2.calls, 0);

    /* a failure with backoff: the timer hands it to the oldest waiter */
    assert_int_equal(fail_task(f, "x", cx.lease, 1, NULL).rc, 0);
    assert_int_equal(w1.calls + w2.calls, 0);
    tick(f, 999);
    assert_int_equal(w1.calls + w2.calls, 0);
    tick(f, 1);
    assert_int_equal(w1.calls, 1);
    assert_int_equal(w2.calls, 0);
    assert_int_equal(w1.c->out.got, 1);
    assert_string_equal(w1.c->out.task_id, "x");
    char lease[160];
    snprintf(lease, sizeof lease, "%s", w1.c->out.lease);
    cmd_free(w1.c);

    /* a dependency done: its dependent goes to the next waiter */
    assert_int_equal(done(f, "x", lease).rc, 0);
    assert_int_equal(w2.calls, 1);
    assert_int_equal(w2.c->out.got, 1);
    assert_string_equal(w2.c->out.task_id, "y");
    cmd_free(w2.c);
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* persistence */

struct snap {
    int state, attempts, approvals;
    uint64_t fence;
    int64_t due;
    uint32_t owner;
};

static struct snap snap(struct fx *f, const char *id)
{
    struct task *t = T(f, id);
    struct snap s = {t->state, t->attempts, t->approvals, t->fence, t->due, t->owner};
    return s;
}

static void expect_snap(struct fx *f, const char *id, const struct snap *want)
{
    struct snap got = snap(f, id);
    if (got.state != want->state)
        fail_msg("'%s' reloaded as %s, was %s", id, task_state_name(got.state),
                 task_state_name(want->state));
    assert_int_equal(got.attempts, want->attempts);
    assert_int_equal(got.approvals, want->approvals);
    assert_int_equal(got.fence, want->fence);
    assert_int_equal(got.due, want->due);
    assert_int_equal(got.owner, want->owner);
}

static void test_persistence_roundtrip(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 5);
    task_add(f, "d", "s", O(.priority = 50));
    task_add(f, "c", "s", O(.priority = 40, .lease_ms = 60000));
    task_add(f, "r", "s", O(.priority = 30, .backoff_ms = 10000));
    task_add(f, "x", "s", O(.priority = 20, .max_attempts = 1));
    task_add(f, "k", "s", O(.priority = 10));
    task_add(f, "p", "s", O(.deps = "c"));
    task_add(f, "q", "s", O(.approval = "quorum:2", .priority = -1));
    task_add(f, "h", "s", O(.priority = -5));
    task_add(f, "two", "s", O(.phase = 2));

    claim_done(f, "a", "d");
    fake_now += 100;
    struct res cc = claim_expect(f, "a", "c");
    tick(f, 1000);
    assert_int_equal(heartbeat(f, "c", cc.lease).rc, 0);
    struct res cr = claim_expect(f, "a", "r");
    assert_int_equal(fail_task(f, "r", cr.lease, 1, "later").state, TASK_READY);
    struct res cx = claim_expect(f, "a", "x");
    assert_int_equal(fail_task(f, "x", cx.lease, 1, "no").state, TASK_DEAD);
    claim_expect(f, "a", "k");
    assert_int_equal(cancel(f, "k").rc, 0);
    struct principal alice = {PRIN_ADMIN, NULL, "alice"};
    assert_int_equal(approve_as(f, &alice, "q").rc, 0);
    check_invariants(f->e);

    static const char *const ids[] = {"d", "c", "r", "x", "k", "p", "q", "h", "two"};
    enum { N = sizeof ids / sizeof ids[0] };
    struct snap before[N];
    for (size_t i = 0; i < N; i++)
        before[i] = snap(f, ids[i]);
    assert_int_equal(before[1].state, TASK_CLAIMED);
    assert_int_equal(before[1].due, fake_now + 60000);
    assert_int_equal(before[2].state, TASK_READY);
    assert_true(before[2].due > fake_now);
    uint32_t count[TASK_NSTATES];
    memcpy(count, f->e->count, sizeof count);
    uint32_t held = A(f, "a")->held;
    int64_t c_rowid = T(f, "c")->rowid;

    fx_reopen(f);
    for (size_t i = 0; i < N; i++)
        expect_snap(f, ids[i], &before[i]);
    assert_memory_equal(count, f->e->count, sizeof count);
    assert_int_equal(A(f, "a")->held, held);
    assert_int_equal(T(f, "c")->rowid, c_rowid);
    check_invariants(f->e);

    /* the store agrees */
    struct store_reader *rd;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(store_reader_open(&rd, f->path, &err), 0);
    struct task_row row;
    assert_int_equal(store_task_get(rd, "c", &row, &err), 1);
    assert_int_equal(row.state, TASK_CLAIMED);
    assert_int_equal(row.lease_expires, before[1].due);
    assert_int_equal(row.fence, 1);
    assert_string_equal(row.owner, "a");
    task_row_release(&row);
    assert_int_equal(store_task_get(rd, "r", &row, &err), 1);
    assert_int_equal(row.ready_at, before[2].due);
    assert_string_equal(row.reason, "later");
    task_row_release(&row);
    store_reader_close(rd);

    /* the lease survives the restart; the approver list too */
    assert_int_equal(heartbeat(f, "c", cc.lease).rc, 0);
    struct res r = approve_as(f, &alice, "q");
    expect_err(&r, S2_ECONFLICT, "duplicate_approval", "'alice'");
    struct principal bob = {PRIN_ADMIN, NULL, "bob"};
    assert_int_equal(approve_as(f, &bob, "q").rc, 0);
    expect_state(f, "q", TASK_READY);

    /* the backoff survives too: r is not claimable before its time */
    claim_expect(f, "a", "q");
    claim_expect(f, "a", "h");
    claim_nothing(f, "a");
    fake_now = before[2].due;
    engine_step(f->e);
    struct res c2 = claim_expect(f, "a", "r");
    assert_int_equal(c2.fence, 2);
    assert_int_equal(c2.attempts, 2);

    /* new tasks do not reuse keys or generated ids */
    struct res g = task_add_as(f, &ADMIN, NULL, "s", NULL);
    assert_int_equal(g.rc, 0);
    assert_true(T(f, g.task)->rowid > T(f, "two")->rowid);
    check_invariants(f->e);
}

static void test_reopen_requeues_expired_lease(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.lease_ms = 1000, .backoff_ms = NO_BACKOFF));
    struct res c = claim_expect(f, "a", "t");
    engine_free(f->e);
    f->e = NULL;

    fake_now += 60000; /* the server was down past the lease's expiry */
    assert_int_equal(fx_open(f), 0);
    engine_step(f->e);
    expect_state(f, "t", TASK_READY);
    assert_int_equal(T(f, "t")->attempts, 1);
    assert_int_equal(A(f, "a")->held, 0);
    struct res r = heartbeat(f, "t", c.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", NULL);
    struct res c2 = claim_expect(f, "a", "t");
    assert_int_equal(c2.fence, 2);
    assert_int_equal(c2.attempts, 2);
    r = done(f, "t", c.lease);
    expect_err(&r, S2_ECONFLICT, "stale_lease", "claimed again");
    assert_int_equal(done(f, "t", c2.lease).rc, 0);
    check_invariants(f->e);

    struct store_reader *rd;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(store_reader_open(&rd, f->path, &err), 0);
    struct task_row row;
    assert_int_equal(store_task_get(rd, "t", &row, &err), 1);
    assert_int_equal(row.state, TASK_DONE);
    assert_int_equal(row.fence, 2);
    assert_int_equal(row.attempts, 2);
    task_row_release(&row);
    store_reader_close(rd);
}

/* A lease still valid at reopen keeps its expiry and its holder. */
static void test_reopen_keeps_live_lease(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", O(.lease_ms = 10000));
    struct res c = claim_expect(f, "a", "t");
    fake_now += 5000;
    fx_reopen(f);
    engine_step(f->e);
    expect_state(f, "t", TASK_CLAIMED);
    assert_int_equal(T(f, "t")->due, c.expires_at);
    assert_int_equal(A(f, "a")->held, 1);
    tick(f, 4999);
    expect_state(f, "t", TASK_CLAIMED);
    tick(f, 1);
    expect_state(f, "t", TASK_READY);
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* approvals */

static void test_approvals(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    agent_add(f, "a", "s", NULL, NULL, 5);
    struct principal alice = {PRIN_ADMIN, NULL, "alice"};
    struct principal bob = {PRIN_ADMIN, NULL, "bob"};
    struct principal carol = {PRIN_ADMIN, NULL, "carol"};
    struct principal anon = {PRIN_ADMIN, NULL, NULL};
    struct principal swarm_tok = {PRIN_SWARM, "s", "s"};

    assert_int_equal(task_add(f, "h", "s", O(.approval = "human")), TASK_PENDING);
    claim_nothing(f, "a");
    struct res r = approve_as(f, &swarm_tok, "h");
    expect_err(&r, S2_EFORBIDDEN, "forbidden", "admin");
    expect_state(f, "h", TASK_PENDING);
    r = approve_as(f, &alice, "h");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_READY);
    r = approve_as(f, &bob, "h");
    expect_err(&r, S2_ECONFLICT, "already_approved", "'h'");
    claim_expect(f, "a", "h");

    assert_int_equal(task_add(f, "q", "s", O(.approval = "quorum:3")), TASK_PENDING);
    assert_int_equal(approve_as(f, &alice, "q").state, TASK_PENDING);
    r = approve_as(f, &alice, "q");
    expect_err(&r, S2_ECONFLICT, "duplicate_approval", "'alice'");
    assert_int_equal(T(f, "q")->approvals, 1);
    assert_int_equal(approve_as(f, &anon, "q").state, TASK_PENDING); /* counts as "admin" */
    r = approve_as(f, &ADMIN, "q");
    expect_err(&r, S2_ECONFLICT, "duplicate_approval", "'admin'");
    claim_nothing(f, "a");
    assert_int_equal(approve_as(f, &carol, "q").state, TASK_READY);
    assert_int_equal(T(f, "q")->approvals, 3);
    claim_expect(f, "a", "q");

    /* approval and dependencies: both are needed */
    task_add(f, "dep", "s", NULL);
    assert_int_equal(task_add(f, "g", "s", O(.approval = "human", .deps = "dep")), TASK_PENDING);
    assert_int_equal(approve_as(f, &alice, "g").state, TASK_PENDING);
    claim_done(f, "a", "dep");
    expect_state(f, "g", TASK_READY);

    /* and phases */
    assert_int_equal(task_add(f, "later", "s", O(.phase = 2, .approval = "human")), TASK_PENDING);
    assert_int_equal(approve_as(f, &alice, "later").state, TASK_PENDING); /* phase 1 open */
    r = approve_as(f, &ADMIN, "nope");
    expect_err(&r, S2_ENOTFOUND, "not_found", "'nope'");
    task_add(f, "plain", "s", NULL);
    r = approve_as(f, &alice, "plain");
    expect_err(&r, S2_ECONFLICT, "no_approval_needed", "'plain'");
    check_invariants(f->e);
}

/* A finished task takes no more approvals: approving a cancelled one is refused like every
 * other operation on it, and records nothing. */
static void test_approve_refused_on_finished_task(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    task_add(f, "gate", "s", O(.approval = "quorum:2"));
    assert_int_equal(cancel(f, "gate").rc, 0);
    struct res r = approve_as(f, &ADMIN, "gate");
    if (r.rc != S2_ECONFLICT)
        fail_msg("approving a cancelled task: expected S2_ECONFLICT, got %d", r.rc);
    assert_non_null(strstr(r.msg, "cancelled"));
    assert_int_equal(T(f, "gate")->approvals, 0);
    expect_state(f, "gate", TASK_CANCELLED);
    check_invariants(f->e);
}

/* ------------------------------------------------------------------------------------ */
/* authorisation */

static void test_swarm_token_is_confined(void **state)
{
    struct fx *f = *state;
    struct res s1 = swarm_add_as(f, &ADMIN, "s1");
    assert_int_equal(s1.rc, 0);
    swarm_add(f, "s2");
    const struct principal P1 = {PRIN_SWARM, "s1", "s1"};

    /* tokens resolve to principals */
    struct principal who;
    assert_int_equal(engine_authenticate(f->e, s1.token, &who), 0);
    assert_int_equal(who.kind, PRIN_SWARM);
    assert_string_equal(who.swarm, "s1");
    assert_int_equal(engine_authenticate(f->e, f->admin_token, &who), 0);
    assert_int_equal(who.kind, PRIN_ADMIN);
    assert_int_equal(engine_authenticate(f->e, "s2s_not-a-token", &who), S2_EUNAUTH);

    struct res r = swarm_add_as(f, &P1, "s3");
    expect_err(&r, S2_EFORBIDDEN, "forbidden", NULL);
    r = agent_add_as(f, &P1, "intruder", "s2", NULL, NULL, 1);
    expect_err(&r, S2_EFORBIDDEN, "forbidden", "'s2'");
    assert_int_equal(map_get(&f->e->agent_ix, "intruder"), MAP_NONE);
    r = agent_add_as(f, &P1, "a1", "s1", NULL, NULL, 1);
    assert_int_equal(r.rc, 0);
    agent_add(f, "a2", "s2", NULL, NULL, 1);

    r = task_add_as(f, &P1, "t-in-s2", "s2", NULL);
    expect_err(&r, S2_EFORBIDDEN, "forbidden", "'s2'");
    struct cmd *c = tasks_new(&P1);
    tasks_push(c, "mine", "s1", NULL);
    tasks_push(c, "theirs", "s2", NULL);
    r = run(f, c);
    expect_err(&r, S2_EFORBIDDEN, "forbidden", NULL);
    assert_false(exists(f, "mine"));

    task_add(f, "t2", "s2", NULL);
    struct res c2 = claim_expect(f, "a2", "t2");

    /* another swarm's tasks and leases are out of reach */
    r = lease_op_as(f, &P1, CMD_HEARTBEAT, "t2", c2.lease);
    expect_err(&r, S2_ENOTFOUND, "not_found", "'t2'");
    r = lease_op_as(f, &P1, CMD_DONE, "t2", c2.lease);
    expect_err(&r, S2_ENOTFOUND, "not_found", NULL);
    r = lease_op_as(f, &P1, CMD_FAIL, "t2", c2.lease);
    expect_err(&r, S2_ENOTFOUND, "not_found", NULL);
    r = cancel_as(f, &P1, "t2");
    expect_err(&r, S2_ENOTFOUND, "not_found", NULL);
    /* told the same as for a task that does not exist */
    struct res ghost = cancel_as(f, &P1, "ghost");
    expect_err(&ghost, S2_ENOTFOUND, "not_found", NULL);
    expect_state(f, "t2", TASK_CLAIMED);
    assert_int_equal(T(f, "t2")->fence, 1);
    r = pause_swarm(f, &P1, "s2", 1);
    expect_err(&r, S2_EFORBIDDEN, "forbidden", NULL);
    assert_int_equal(f->e->swarms[map_get(&f->e->swarm_ix, "s2")].state, SWARM_ACTIVE);

    struct cmd *m = cmd_new(CMD_MODEL_PUT);
    m->who = P1;
    m->in.model.name = xstrdup("haiku");
    m->in.model.tier = 9;
    r = run(f, m);
    expect_err(&r, S2_EFORBIDDEN, "forbidden", NULL);
    assert_int_equal(f->e->models[map_get(&f->e->model_ix, "haiku")].tier, 1);

    /* in its own swarm it may work, and depend on another swarm's task */
    r = task_add_as(f, &P1, "mine", "s1", O(.deps = "t2"));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.state, TASK_PENDING);
    r = task_add_as(f, &P1, "mine2", "s1", NULL);
    assert_int_equal(r.rc, 0);
    struct res c1 = claim_as(f, &P1, "a1");
    assert_int_equal(c1.rc, 0);
    assert_string_equal(c1.task, "mine2");
    assert_int_equal(lease_op_as(f, &P1, CMD_HEARTBEAT, "mine2", c1.lease).rc, 0);
    assert_int_equal(lease_op_as(f, &P1, CMD_DONE, "mine2", c1.lease).rc, 0);
    assert_int_equal(cancel_as(f, &P1, "mine").rc, 0);

    /* a swarm principal without a swarm may do nothing */
    const struct principal nowhere = {PRIN_SWARM, NULL, "?"};
    r = task_add_as(f, &nowhere, "x", "s1", NULL);
    expect_err(&r, S2_EFORBIDDEN, "forbidden", NULL);
    check_invariants(f->e);

    /* and another swarm's agents (last: see test_claim_errors_are_answered) */
    r = claim_as(f, &P1, "a2");
    expect_err(&r, S2_EFORBIDDEN, "forbidden", NULL);
    r = claim_as(f, &nowhere, "a1");
    expect_err(&r, S2_EFORBIDDEN, "forbidden", NULL);
}

static void test_unknown_references(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s");
    struct res r = swarm_add_as(f, &ADMIN, "s");
    expect_err(&r, S2_ECONFLICT, "swarm_exists", "'s'");
    r = agent_add_as(f, &ADMIN, "a", "nowhere", NULL, NULL, 1);
    expect_err(&r, S2_EINVAL, "unknown_swarm", "'nowhere'");
    r = agent_add_as(f, &ADMIN, "a", "s", "gpt-9", NULL, 1);
    expect_err(&r, S2_EINVAL, "unknown_model", "haiku");
    agent_add(f, "a", "s", NULL, NULL, 1);
    r = agent_add_as(f, &ADMIN, "a", "s", NULL, NULL, 1);
    expect_err(&r, S2_ECONFLICT, "agent_exists", "'a'");
    r = task_add_as(f, &ADMIN, "t", "nowhere", NULL);
    expect_err(&r, S2_EINVAL, "unknown_swarm", "'nowhere'");
    assert_int_equal(f->e->nagents, 1);
    assert_int_equal(f->e->ntasks, 0);
    r = claim(f, "nobody");
    expect_err(&r, S2_ENOTFOUND, "unknown_agent", "'nobody'");
}

/* Every claim gets an answer, the refused ones too: the HTTP layer waits for the done
 * callback, so a claim the engine drops hangs its client (and leaks the command). */
static int claim_calls(struct fx *f, const struct principal *who, const char *agent, int *kind)
{
    int calls = 0;
    struct cmd *c = cmd_new(CMD_CLAIM);
    c->who = *who;
    c->in.claim.agent = xstrdup(agent);
    c->done = on_done;
    c->ctx = &calls;
    engine_submit(f->e, c);
    engine_step(f->e);
    *kind = c->err.kind;
    cmd_free(c); /* not waiting (no wait_ms): the engine holds no reference either way */
    return calls;
}

static void test_claim_errors_are_answered(void **state)
{
    struct fx *f = *state;
    swarm_add(f, "s1");
    swarm_add(f, "s2");
    agent_add(f, "a1", "s1", NULL, NULL, 1);
    agent_add(f, "a2", "s2", NULL, NULL, 1);
    task_add(f, "t", "s1", NULL);
    claim_expect(f, "a1", "t");
    const struct principal P2 = {PRIN_SWARM, "s2", "s2"};
    int kind, unknown, forbidden, busy;
    unknown = claim_calls(f, &ADMIN, "nobody", &kind);
    assert_int_equal(kind, S2_ENOTFOUND);
    forbidden = claim_calls(f, &P2, "a1", &kind);
    assert_int_equal(kind, S2_EFORBIDDEN);
    busy = claim_calls(f, &ADMIN, "a1", &kind);
    assert_int_equal(kind, S2_ECONFLICT);
    if (unknown != 1 || forbidden != 1 || busy != 1)
        fail_msg("refused claims answered: unknown agent %d, forbidden %d, agent busy %d "
                 "times (expected once each)",
                 unknown, forbidden, busy);
}

/* ------------------------------------------------------------------------------------ */
/* events */

static void no_arm(void *arg)
{
    (void)arg;
}

static void test_events_follow_commits(void **state)
{
    struct fx *f = *state;
    struct events *ev = events_new(256);
    engine_set_events(f->e, ev);
    /* as engine_start does: the stream continues the log's numbering */
    uint64_t start = f->e->chain.seq;
    events_set_last_seq(ev, start);
    struct event_sub *sub = events_subscribe(ev, EVENTS_LIVE, NULL, no_arm, NULL);

    swarm_add(f, "s");
    assert_int_equal(swarm_add_as(f, &ADMIN, "s").rc, S2_ECONFLICT); /* no event */
    agent_add(f, "a", "s", NULL, NULL, 1);
    task_add(f, "t", "s", NULL);
    struct res c = claim_expect(f, "a", "t");
    assert_int_equal(done(f, "t", c.lease).rc, 0);

    char buf[16384];
    ssize_t n = events_read(ev, sub, buf, sizeof buf - 1, no_arm, NULL);
    assert_true(n > 0);
    buf[n] = 0;
    static const char *const ops[] = {"swarm.create", "agent.create", "task.create", "task.claim",
                                      "task.done"};
    const char *p = buf;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"op\":\"%s\"", ops[i]);
        const char *q = strstr(p, want);
        if (!q)
            fail_msg("event %s missing or out of order in:\n%s", ops[i], buf);
        p = q + 1;
    }
    /* the refused second swarm.create left no trace */
    const char *first = strstr(buf, "\"op\":\"swarm.create\"");
    assert_null(strstr(first + 1, "\"op\":\"swarm.create\""));
    /* seqs follow on from the start, with no gap */
    uint64_t expect_seq = start + 1;
    for (const char *q = buf; (q = strstr(q, "id: ")); q++) {
        assert_int_equal(strtoull(q + 4, NULL, 10), expect_seq);
        expect_seq++;
    }
    assert_true(expect_seq - 1 >= start + 5);
    assert_int_equal(expect_seq - 1, events_last_seq(ev));

    /* the numbering carries across a restart */
    uint64_t last = events_last_seq(ev);
    engine_set_events(f->e, NULL);
    fx_reopen(f);
    engine_set_events(f->e, ev);
    assert_int_equal(f->e->chain.seq, last);
    task_add(f, "t2", "s", NULL);
    n = events_read(ev, sub, buf, sizeof buf - 1, no_arm, NULL);
    assert_true(n > 0);
    buf[n] = 0;
    char want[32];
    snprintf(want, sizeof want, "id: %llu\n", (unsigned long long)last + 1);
    assert_true(strncmp(buf, want, strlen(want)) == 0);
    assert_non_null(strstr(buf, "\"task.create\""));
    engine_set_events(f->e, NULL);
    events_unsubscribe(ev, sub);
    events_free(ev);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
#define T_(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T_(test_claim_done_lifecycle),
        T_(test_fail_backoff_then_dead),
        T_(test_fail_without_retry_is_dead),
        T_(test_backoff_doubles_to_cap),
        T_(test_claim_sees_timers_due_now),
        T_(test_cancel_from_every_state),
        T_(test_final_states_refuse_lease_ops),
        T_(test_release_gives_task_back),
        T_(test_dependencies_across_swarms),
        T_(test_phase_barrier),
        T_(test_phase_reopened),
        T_(test_phase_barrier_holds_for_retries),
        T_(test_dead_task_holds_its_phase),
        T_(test_cancelled_and_dead_dependencies),
        T_(test_batch_cycle_is_named),
        T_(test_batch_order_and_ids),
        T_(test_batch_unknown_dependency_all_or_nothing),
        T_(test_batch_duplicate_ids),
        T_(test_heartbeat_expiry_and_fencing),
        T_(test_expiries_exhaust_attempts),
        T_(test_lease_used_after_expiry),
        T_(test_lease_fence_parsing),
        T_(test_lease_fence_rejects_signs),
        T_(test_usage_is_priced),
        T_(test_ready_order),
        T_(test_ready_order_after_requeue),
        T_(test_capabilities_and_tier),
        T_(test_long_poll_respects_capabilities),
        T_(test_swarm_pause),
        T_(test_max_leases_per_agent),
        T_(test_long_poll_push),
        T_(test_long_poll_deadline),
        T_(test_long_poll_fifo_and_wakeups),
        T_(test_persistence_roundtrip),
        T_(test_reopen_requeues_expired_lease),
        T_(test_reopen_keeps_live_lease),
        T_(test_approvals),
        T_(test_approve_refused_on_finished_task),
        T_(test_swarm_token_is_confined),
        T_(test_unknown_references),
        T_(test_claim_errors_are_answered),
        T_(test_events_follow_commits),
#undef T_
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
