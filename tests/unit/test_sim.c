/* test_sim: the plan simulator against schedules computed by hand (jitter 0), its
 * determinism (same seed, same bytes; another seed, another run), the helper rule and cap,
 * and the stall report. The hand computations are in the comments next to each case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <math.h>

#include "plan.h"
#include "sim.h"

static struct plan P;
static struct sim_result R;

static void load(const char *yaml)
{
    plan_release(&P);
    plan_init(&P, "t.yaml");
    if (plan_parse(&P, yaml, strlen(yaml))) {
        for (size_t i = 0; i < P.nerrors; i++)
            print_message("%u:%u: %s\n", P.errors[i].at.line, P.errors[i].at.col,
                          P.errors[i].msg);
        fail();
    }
}

static void run(int policy, double jitter, double eff, long per_swarm)
{
    struct sim_opts o;
    struct s2_error err = S2_ERROR_INIT;
    sim_opts_init(&o);
    o.policy = policy;
    o.jitter = jitter;
    o.help_efficiency = eff;
    o.agents_per_swarm = per_swarm;
    sim_result_release(&R);
    if (sim_run(&P, &o, &R, &err)) {
        print_message("sim: %s\n", err.msg);
        s2_error_release(&err);
        fail();
    }
}

static int teardown(void **state)
{
    (void)state;
    sim_result_release(&R);
    plan_release(&P);
    return 0;
}

#define near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

/* One swarm, two haiku (speed 1.5) and a sonnet (speed 1):
 *   phase 1: a (3 h, [x]), b (3 h, [x, y], min_tier 2), c (1.5 h, [x]); phase 2: d (1.5 h).
 * Bottom levels: a 4.5, b 4.5, c 3, d 1.5. At 0: a -> c1 (cheapest, 3/1.5 = 2 h), b -> s1
 * (only tier 2, 3 h), c -> c2 (1 h). At 3 b is done, phase 2 opens: d -> c1 (1 h) -> 4.
 * Makespan 4; sequential 9; critical path b -> d. Cost: haiku 0.4*0.25 + 0.1*1.25 = 0.225
 * $/h for 3 + 1 h, sonnet 0.4*3 + 0.1*15 = 2.7 $/h for 3 h: 0.9 + 8.1 = 9.0. */
static const char one_swarm[] =
    "swarms:\n"
    "  - id: s\n"
    "    capabilities: [x, y]\n"
    "    agents:\n"
    "      - {id: c1, model: haiku, capabilities: [x]}\n"
    "      - {id: c2, model: haiku, capabilities: [x]}\n"
    "      - {id: s1, model: sonnet, capabilities: [x, y]}\n"
    "    phases:\n"
    "      - phase: 1\n"
    "        tasks:\n"
    "          - {id: a, title: A, estimate_h: 3, requires: [x]}\n"
    "          - {id: b, title: B, estimate_h: 3, requires: [x, y], min_tier: 2}\n"
    "          - {id: c, title: C, estimate_h: 1.5, requires: [x]}\n"
    "      - phase: 2\n"
    "        tasks:\n"
    "          - {id: d, title: D, estimate_h: 1.5, requires: [x]}\n";

static void test_hand_schedule(void **state)
{
    (void)state;
    load(one_swarm);
    run(SIM_IDLE, 0, 0.5, 0);
    near(R.makespan_h, 4.0);
    near(R.sequential_h, 9.0);
    near(R.speedup, 2.25);
    near(R.usd, 9.0);
    near(R.work_h, 7.0);
    near(R.wait_h, 3 * 4.0 - 7.0);
    near(R.blocked_h, 0);
    assert_int_equal(R.critical_path.n, 2);
    assert_string_equal(R.critical_path.v[0], "b");
    assert_string_equal(R.critical_path.v[1], "d");
    assert_int_equal(R.ntiers, 2);
    assert_int_equal(R.tiers[0].tier, 1);
    near(R.tiers[0].hours, 4.0);
    near(R.tiers[1].usd, 8.1);
    near(R.agents[0].work_h, 3.0); /* c1: a, then d */
    assert_int_equal(R.agents[0].tasks, 2);
    near(R.agents[1].work_h, 1.0);
    near(R.agents[2].work_h, 3.0);
    /* the same hours all on opus: 7 h at 0.4*15 + 0.1*75 = 13.5 $/h */
    near(R.top_tier_usd, 7 * 13.5);
}

/* Two swarms; a's t3 (phase 2) waits for b's u1 (4 h), a cross-swarm blocker.
 *   a: a1 (sonnet) runs t1 (2 h) then t2 (1 h): free at 3, t3 waits for u1.
 *   b: b1 runs u1 from 0; b2 takes b's idle task (1 h).
 * idle:    u1 ends at 4, t3 runs 4 -> 7. a is blocked from 3 to 4.
 * gang-up: at 3, a1 helps u1: 1 h of work left, rate 1 + 0.5 * 1 = 1.5, done at 3 + 2/3;
 *          t3 runs to 6 + 2/3; a is blocked from 3 to 3 + 2/3 (nothing of its own runs). */
static const char two_swarms[] =
    "swarms:\n"
    "  - id: a\n"
    "    capabilities: [x]\n"
    "    agents: [{id: a1, model: sonnet, capabilities: [x]}]\n"
    "    phases:\n"
    "      - phase: 1\n"
    "        tasks:\n"
    "          - {id: t1, title: T1, estimate_h: 2}\n"
    "          - {id: t2, title: T2, estimate_h: 1}\n"
    "      - phase: 2\n"
    "        tasks:\n"
    "          - {id: t3, title: T3, estimate_h: 3, depends_on: [u1]}\n"
    "  - id: b\n"
    "    capabilities: [x]\n"
    "    agents: [{id: b1, model: sonnet, capabilities: [x]},\n"
    "             {id: b2, model: sonnet, capabilities: [x]}]\n"
    "    idle_tasks: [{id: bi, title: idle, estimate_h: 1}]\n"
    "    phases:\n"
    "      - phase: 1\n"
    "        tasks:\n"
    "          - {id: u1, title: U1, estimate_h: 4}\n";

static void test_gang_up_vs_idle(void **state)
{
    (void)state;
    load(two_swarms);
    run(SIM_IDLE, 0, 0.5, 0);
    near(R.makespan_h, 7.0);
    near(R.blocked_h, 1.0);
    assert_int_equal(R.helper_joins, 0);
    assert_int_equal(R.idle_done, 1);
    assert_int_equal(R.blockers, 1);
    near(R.blocker_h, 4.0);
    assert_string_equal(R.critical_path.v[0], "u1");
    assert_string_equal(R.critical_path.v[1], "t3");

    run(SIM_GANG_UP, 0, 0.5, 0);
    near(R.makespan_h, 6.0 + 2.0 / 3.0);
    near(R.blocked_h, 2.0 / 3.0);
    assert_int_equal(R.helper_joins, 1);
    assert_int_equal(R.blockers_helped, 1);
    near(R.help_h, 2.0 / 3.0);
    near(R.blocker_h, 3.0 + 2.0 / 3.0);
    near(R.agents[0].help_h, 2.0 / 3.0);
    assert_int_equal(R.agents[0].helped, 1);

    /* helpers that add nothing: the blocker takes as long as alone */
    run(SIM_GANG_UP, 0, 0, 0);
    near(R.makespan_h, 7.0);
}

/* Two helpers want the same blocker; max_helpers caps them.
 *   a: a1, a2 have nothing until u1 (4 h, b1) is done; t3 (3 h) follows.
 *   max_helpers 1: rate 1.5 -> u1 at 4/1.5 = 2.667, t3 to 5.667.
 *   max_helpers 2: rate 2 -> u1 at 2, t3 to 5. */
static const char capped[] =
    "policy: {max_helpers: %d}\n"
    "swarms:\n"
    "  - id: a\n"
    "    capabilities: [x]\n"
    "    agents: [{id: a1, model: sonnet, capabilities: [x]},\n"
    "             {id: a2, model: sonnet, capabilities: [x]}]\n"
    "    phases: [{phase: 1, tasks: [{id: t3, title: T3, estimate_h: 3, depends_on: [u1]}]}]\n"
    "  - id: b\n"
    "    capabilities: [x]\n"
    "    agents: [{id: b1, model: sonnet, capabilities: [x]}]\n"
    "    phases: [{phase: 1, tasks: [{id: u1, title: U1, estimate_h: 4}]}]\n";

static void test_max_helpers(void **state)
{
    (void)state;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, capped, 1);
    load(yaml);
    run(SIM_GANG_UP, 0, 0.5, 0);
    near(R.makespan_h, 4.0 / 1.5 + 3.0);
    assert_int_equal(R.helper_joins, 1);
    snprintf(yaml, sizeof yaml, capped, 2);
    load(yaml);
    run(SIM_GANG_UP, 0, 0.5, 0);
    near(R.makespan_h, 5.0);
    assert_int_equal(R.helper_joins, 2);
}

/* A helper must match the blocker: capabilities below min_capability_match, or a tier under
 * min_tier, keep it out. */
static void test_helper_must_match(void **state)
{
    (void)state;
    load("swarms:\n"
         "  - id: a\n"
         "    capabilities: [x, z]\n"
         "    agents: [{id: a1, model: sonnet, capabilities: [z]}]\n"
         "    phases: [{phase: 1, tasks: [{id: t3, title: T3, estimate_h: 3, requires: [z],\n"
         "                                 depends_on: [u1]}]}]\n"
         "  - id: b\n"
         "    capabilities: [x]\n"
         "    agents: [{id: b1, model: sonnet, capabilities: [x]}]\n"
         "    phases: [{phase: 1, tasks: [{id: u1, title: U1, estimate_h: 4, requires: [x]}]}]\n");
    run(SIM_GANG_UP, 0, 0.5, 0);
    assert_int_equal(R.helper_joins, 0);
    near(R.makespan_h, 7.0);
}

static void test_deterministic(void **state)
{
    (void)state;
    plan_release(&P);
    plan_init(&P, "examples/seed-7x7.yaml");
    assert_int_equal(plan_load(&P, "examples/seed-7x7.yaml"), 0);
    char *first = NULL;
    for (int i = 0; i < 3; i++) {
        run(SIM_GANG_UP, 0.2, 0.5, 0);
        json_t *j = sim_json(&R, "seed");
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
        json_decref(j);
        if (!first)
            first = s;
        else {
            assert_string_equal(first, s);
            free(s);
        }
    }
    /* another seed: another run */
    struct sim_opts o;
    struct s2_error err = S2_ERROR_INIT;
    sim_opts_init(&o);
    o.seed = 2;
    sim_result_release(&R);
    assert_int_equal(sim_run(&P, &o, &R, &err), 0);
    json_t *j = sim_json(&R, "seed");
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    assert_string_not_equal(first, s);
    free(s);
    free(first);
    /* and both policies on the seed plan: ganging up on the blockers shortens the run and
     * the time the blockers hold others up */
    run(SIM_IDLE, 0.2, 0.5, 0);
    double idle = R.makespan_h, idle_block = R.blocker_h / (double)R.blockers;
    assert_int_equal(R.nagents, 49);
    assert_int_equal(R.ntasks, 350);
    run(SIM_GANG_UP, 0.2, 0.5, 0);
    assert_true(R.makespan_h < idle);
    assert_true(R.blocker_h / (double)R.blockers < idle_block);
    assert_true(R.helper_joins > 0);
}

static void test_stall(void **state)
{
    (void)state;
    /* one agent per swarm is the cheap c1: a (0 -> 2), c (2 -> 3), then nobody can take the
     * tier-2 task b, and d waits behind it */
    load(one_swarm);
    struct sim_opts o;
    struct s2_error err = S2_ERROR_INIT;
    sim_opts_init(&o);
    o.agents_per_swarm = 1;
    o.jitter = 0;
    sim_result_release(&R);
    assert_int_equal(sim_run(&P, &o, &R, &err), S2_EINVAL);
    assert_string_equal(err.code, "stalled");
    assert_string_equal(err.msg,
                        "the plan stalls at 3.00 h with 2 tasks not done: task 'b': no agent of "
                        "swarm 's' can take it (it needs tier >= 2 and 70% of its required "
                        "capabilities) (with --agents-per-swarm a swarm may lack an agent of the "
                        "tier or capabilities a task needs)");
    s2_error_release(&err);
    /* with two, the mix keeps one of each group: cheap c1, strong s1 */
    run(SIM_IDLE, 0, 0.5, 2);
    assert_int_equal(R.nagents, 2);
    assert_string_equal(R.agents[0].id, "c1");
    assert_string_equal(R.agents[1].id, "s1");
    /* more agents than the plan has: copies, in the plan's 2:1 mix (Sainte-Lague order:
     * cheap, strong, cheap, cheap, strong) */
    run(SIM_IDLE, 0, 0.5, 5);
    assert_int_equal(R.nagents, 5);
    assert_string_equal(R.agents[2].id, "c2");
    assert_string_equal(R.agents[3].id, "c1~2");
    assert_string_equal(R.agents[4].id, "s1~2");
}

static void test_no_agents(void **state)
{
    (void)state;
    load("swarms: [{id: s, phases: [{phase: 1, tasks: [{id: t, title: T, estimate_h: 1}]}]}]\n");
    struct sim_opts o;
    struct s2_error err = S2_ERROR_INIT;
    sim_opts_init(&o);
    sim_result_release(&R);
    assert_int_equal(sim_run(&P, &o, &R, &err), S2_EINVAL);
    assert_string_equal(err.msg, "swarm 's' has tasks but no agents to simulate: add agents to "
                                 "the plan or pass --agents-per-swarm N");
    s2_error_release(&err);
    /* stand-ins run on the top tier (opus, speed 0.8): 1 h of work takes 1.25 h */
    run(SIM_IDLE, 0, 0.5, 1);
    near(R.makespan_h, 1.25);
}

/* Idle work still under way when the plan's last task ends does not stretch the makespan:
 * a1 runs t (2 h); a2 starts the 10 h idle task at 0 and is cut off at 2. */
static void test_idle_past_the_end(void **state)
{
    (void)state;
    load("swarms:\n"
         "  - id: s\n"
         "    agents: [{id: a1, model: sonnet}, {id: a2, model: sonnet}]\n"
         "    idle_tasks: [{id: i1, title: long idle, estimate_h: 10}]\n"
         "    phases: [{phase: 1, tasks: [{id: t, title: T, estimate_h: 2}]}]\n");
    run(SIM_IDLE, 0, 0.5, 0);
    near(R.makespan_h, 2.0);
    near(R.idle_h, 2.0);
    assert_int_equal(R.idle_done, 0);
    near(R.usd, 4 * 2.7);
}

/* Tasks whose paths overlap never run at once, even with agents free: a (2 h) and b (1 h)
 * both touch src/sip, so b waits for a: makespan 3; c (other files) runs beside them. */
static void test_path_leases(void **state)
{
    (void)state;
    load("swarms:\n"
         "  - id: s\n"
         "    agents: [{id: a1, model: sonnet}, {id: a2, model: sonnet}, {id: a3, model: sonnet}]\n"
         "    phases: [{phase: 1, tasks: [\n"
         "      {id: a, title: A, estimate_h: 2, paths: [src/sip/*.c]},\n"
         "      {id: b, title: B, estimate_h: 1, paths: [src/sip/ua.c]},\n"
         "      {id: c, title: C, estimate_h: 1, paths: [docs/x.md]}]}]\n");
    run(SIM_IDLE, 0, 0.5, 0);
    near(R.makespan_h, 3.0);
    near(R.agents[1].work_h, 1.0); /* a2 ran c at once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hand_schedule, teardown),
        cmocka_unit_test_teardown(test_gang_up_vs_idle, teardown),
        cmocka_unit_test_teardown(test_max_helpers, teardown),
        cmocka_unit_test_teardown(test_helper_must_match, teardown),
        cmocka_unit_test_teardown(test_deterministic, teardown),
        cmocka_unit_test_teardown(test_stall, teardown),
        cmocka_unit_test_teardown(test_no_agents, teardown),
        cmocka_unit_test_teardown(test_idle_past_the_end, teardown),
        cmocka_unit_test_teardown(test_path_leases, teardown),
    };
    plan_init(&P, "t.yaml");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
