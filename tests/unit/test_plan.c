/* test_plan: the plan parser and validator. One case per kind of error, each asserting the
 * exact FILE:LINE:COL and message; hostile input (aliases, several documents, bad bytes,
 * deep nesting, tags, NUL) gives errors and never a crash; the seed plan is valid and
 * survives a write/read round trip unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "plan.h"
#include "plan_apply.h"
#include "util/xalloc.h"

static struct plan P;

static int parse(const char *yaml)
{
    plan_release(&P);
    plan_init(&P, "t.yaml");
    return plan_parse(&P, yaml, strlen(yaml));
}

static void dump(void)
{
    for (size_t i = 0; i < P.nerrors; i++)
        print_message("  %u:%u: %s\n", P.errors[i].at.line, P.errors[i].at.col, P.errors[i].msg);
}

/* The plan has an error at line:col with exactly this message. */
static void expect(unsigned line, unsigned col, const char *msg)
{
    for (size_t i = 0; i < P.nerrors; i++)
        if (P.errors[i].at.line == line && P.errors[i].at.col == col &&
            !strcmp(P.errors[i].msg, msg))
            return;
    print_message("wanted %u:%u: %s\namong:\n", line, col, msg);
    dump();
    fail();
}

static void expect_count(size_t n)
{
    if (P.nerrors != n) {
        print_message("wanted %zu errors, got %zu:\n", n, P.nerrors);
        dump();
        fail();
    }
}

static int teardown(void **state)
{
    (void)state;
    plan_release(&P);
    return 0;
}

/* A valid two-swarm plan the cases below start from. */
static const char base[] =
    "swarms:\n"                                                          /* 1 */
    "  - id: s1\n"                                                       /* 2 */
    "    capabilities: [integration:sip, docs]\n"                        /* 3 */
    "    budget: 100\n"                                                  /* 4 */
    "    agents:\n"                                                      /* 5 */
    "      - {id: a1, model: sonnet, capabilities: [integration:sip, docs]}\n" /* 6 */
    "    phases:\n"                                                      /* 7 */
    "      - phase: 1\n"                                                 /* 8 */
    "        tasks:\n"                                                   /* 9 */
    "          - {id: t1, title: one, requires: [integration:sip]}\n"    /* 10 */
    "          - {id: t2, title: two, depends_on: [t1]}\n";              /* 11 */

static void test_valid_base(void **state)
{
    (void)state;
    assert_int_equal(parse(base), 0);
    expect_count(0);
    assert_int_equal(P.nswarms, 1);
    assert_int_equal(P.nagents, 1);
    assert_int_equal(P.ntasks, 2);
    assert_string_equal(P.tasks[1].spec.depends_on.v[0], "t1");
    assert_int_equal(P.tasks[1].dep_at[0].line, 11);
    assert_int_equal(P.tasks[1].dep_at[0].col, 47);
    assert_int_equal(P.nmodels, 3); /* the default table */
}

static void test_unknown_key(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: t1, title: one, depend_on: [t2]}\n"
                           "          - {id: t2, title: two, colour: red}\n"),
                     -1);
    expect(6, 34, "task 't1': unknown key 'depend_on' (did you mean 'depends_on'?)");
    expect(7, 34, "task 't2': unknown key 'colour'");
    expect_count(2);
}

static void test_wrong_types(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    capabilities: cap\n"
                           "    phases:\n"
                           "      - phase: one\n"
                           "      - phase: 2\n"
                           "        tasks:\n"
                           "          - {id: t1, title: [a], estimate_h: two}\n"
                           "          - {id: t2, title: b, phase_barrier: yes}\n"
                           "          - {id: t3, title: c, requires: {a: 1}}\n"),
                     -1);
    expect(3, 19, "swarm 's': field 'capabilities' must be a list (got 'cap')");
    expect(5, 16, "phase 1 of swarm 's': field 'phase' must be a whole number (got 'one')");
    expect(8, 29, "task 't1': field 'title' must be text (got a list)");
    expect(8, 46, "task 't1': field 'estimate_h' must be a number (got 'two')");
    expect(9, 47, "task 't2': field 'phase_barrier' must be true or false (got 'yes')");
    expect(10, 42, "task 't3': field 'requires' must be a list (got a mapping)");
    expect_count(6);
}

static void test_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    budget: -5\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: t1, title: a, min_tier: 12, max_attempts: 0}\n"
                           "          - {id: t2, title: b, lease_ms: 5, priority: 2000000}\n"
                           "          - {id: t3, title: c, approval: quorum:0, max_cost: 0}\n"
                           "          - {id: t4, title: '', estimate_h: 1e7}\n"),
                     -1);
    expect(3, 13, "swarm 's': field 'budget' must be from 0 to 1e+09 US dollars (got -5)");
    expect(7, 42, "task 't1': field 'min_tier' must be from 0 to 9 (got 12)");
    expect(7, 60, "task 't1': field 'max_attempts' must be from 1 to 100 (got 0)");
    expect(8, 42, "task 't2': field 'lease_ms' must be from 100 to 86400000 (got 5)");
    expect(8, 55, "task 't2': field 'priority' must be from -1000000 to 1000000 (got 2000000)");
    expect(9, 42,
           "task 't3': approval 'quorum:0' is not one of none, human, quorum:N (N from 1 to 100)");
    expect(9, 62, "task 't3': field 'max_cost' must be more than $0 (got 0)");
    expect(10, 29, "task 't4': field 'title' must not be empty");
    expect(10, 45, "task 't4': field 'estimate_h' must be from 0 to 1e+06 hours (got 1e7)");
    expect_count(9);
}

static void test_bad_names(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: 'bad id'\n"
                           "    capabilities: [ok, 'no way']\n"),
                     -1);
    expect(2, 9, "swarm 1: field 'id' 'bad id' has ' ' at position 4: use letters, digits and "
                 "._:-");
    expect(3, 24, "swarm 1: field 'capabilities[1]' 'no way' has ' ' at position 3: use letters, "
                  "digits and ._:/+-");
    expect_count(2);
}

static void test_missing_required(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - role: nameless\n"
                           "    phases:\n"
                           "      - tasks: []\n"
                           "      - phase: 2\n"
                           "        tasks:\n"
                           "          - {title: no id}\n"
                           "          - {id: t2}\n"),
                     -1);
    expect(2, 5, "swarm 1: field 'id' is required");
    expect(4, 9, "phase 1 of swarm 1: field 'phase' is required");
    expect(7, 13, "task 1 of phase 2 of swarm 1: field 'id' is required");
    expect(8, 13, "task 't2': field 'title' is required");
    expect_count(4);
}

static void test_duplicates(void **state)
{
    (void)state;
    assert_int_equal(
        parse("models:\n"
              "  - {name: m1, tier: 1, usd_per_mtok_in: 1, usd_per_mtok_out: 1}\n"
              "  - {name: m1, tier: 2, usd_per_mtok_in: 1, usd_per_mtok_out: 1}\n"
              "swarms:\n"
              "  - id: s\n"
              "    capabilities: [c, c]\n"
              "    agents: [{id: a, model: m1}, {id: a, model: m1}]\n"
              "    phases:\n"
              "      - phase: 1\n"
              "        tasks:\n"
              "          - {id: t, title: x, title: y}\n"
              "          - {id: t, title: z, depends_on: [t0, t0]}\n"
              "      - phase: 1\n"
              "  - id: s\n"),
        -1);
    expect(3, 12, "model 'm1' is defined twice (first at 2:12)");
    expect(6, 23, "swarm 's': field 'capabilities' lists 'c' twice");
    expect(7, 39, "agent id 'a' is used twice (first at 7:19)");
    expect(11, 31, "task 't': key 'title' appears twice (first at 11:21)");
    expect(12, 18, "task id 't' is used twice (first at 11:18)");
    expect(12, 44, "task 't' depends on unknown task 't0' (did you mean 't'?)");
    expect(12, 48, "task 't': field 'depends_on' lists 't0' twice");
    expect(13, 16, "swarm 's': phase 1 appears twice (first at 9:16)");
    expect(14, 9, "swarm id 's' is used twice (first at 5:9)");
    expect_count(9);
}

static void test_unknown_dependency(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: build-parser, title: a}\n"
                           "          - {id: t2, title: b, depends_on: [build-parsr, zzzzzz]}\n"),
                     -1);
    expect(7, 45, "task 't2' depends on unknown task 'build-parsr' (did you mean "
                  "'build-parser'?)");
    expect(7, 58, "task 't2' depends on unknown task 'zzzzzz'");
    expect_count(2);
}

static void test_cycles(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: a, title: A, depends_on: [b]}\n"
                           "          - {id: b, title: B, depends_on: [c]}\n"
                           "          - {id: c, title: C, depends_on: [a]}\n"
                           "          - {id: d, title: D, depends_on: [d]}\n"
                           "          - {id: e, title: E, depends_on: [f]}\n"
                           "      - phase: 2\n"
                           "        tasks:\n"
                           "          - {id: f, title: F}\n"),
                     -1);
    expect(6, 44, "dependency cycle: a -> b -> c -> a (each waits for the next)");
    expect(9, 44, "dependency cycle: d -> d (each waits for the next)");
    expect(10, 44, "dependency cycle: e -> f -> [phase 2 of swarm 's' waits for phase 1] -> e "
                   "(each waits for the next)");
    expect_count(3);
    /* without the barrier, f does not wait for phase 1: no cycle */
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks: [{id: e, title: E, depends_on: [f]}]\n"
                           "      - phase: 2\n"
                           "        tasks: [{id: f, title: F, phase_barrier: false}]\n"),
                     0);
}

static void test_unknown_model(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    agents: [{id: a1, model: sonet}, {id: a2, model: gpt}]\n"),
                     -1);
    expect(3, 30, "agent 'a1': unknown model 'sonet' (did you mean 'sonnet'?)");
    expect(3, 54, "agent 'a2': unknown model 'gpt'");
    expect_count(2);
}

static void test_capability_typo(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    capabilities: [integration:sip, telephony:protocols]\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: t, title: x, requires: [integration:sipp]}\n"),
                     -1);
    expect(7, 42, "task 't' requires 'integration:sipp', which no swarm or agent in the plan has "
                  "(did you mean 'integration:sip'?)");
    expect_count(1);
}

static void test_agent_caps_subset(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    capabilities: [streaming:ndi]\n"
                           "    agents: [{id: a, capabilities: [streaming:ndi, streaming:ndii, x]}]\n"),
                     -1);
    expect(4, 52, "agent 'a': capability 'streaming:ndii' is not among those of its swarm 's' "
                  "(did you mean 'streaming:ndi'?)");
    expect(4, 68, "agent 'a': capability 'x' is not among those of its swarm 's'");
    expect_count(2);
}

static void test_budget_exact(void **state)
{
    (void)state;
    assert_int_equal(parse("policy: {max_cost_per_task: 5, global_budget: 12}\n"
                           "swarms:\n"
                           "  - id: s\n"
                           "    budget: 13\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: t1, title: a, max_cost: 4}\n"
                           "          - {id: t2, title: b}\n"
                           "  - id: r\n"
                           "    budget: 7.5\n"
                           "    phases: [{phase: 1, tasks: [{id: u, title: u, max_cost: 8}]}]\n"),
                     -1);
    expect(11, 13, "swarm 'r': budget $7.50 is below the $8.00 its 1 tasks may cost (the sum of "
                   "their max_cost)");
    expect(1, 47, "policy: global_budget $12.00 is below the $17.00 all tasks may cost");
    expect_count(2);
    /* at the limit is fine; the policy's max_cost_per_task counts where max_cost is absent */
    assert_int_equal(parse("policy: {max_cost_per_task: 5}\n"
                           "swarms:\n"
                           "  - id: s\n"
                           "    budget: 9\n"
                           "    phases: [{phase: 1, tasks: [{id: t1, title: a, max_cost: 4},\n"
                           "                                {id: t2, title: b}]}]\n"),
                     0);
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    budget: 13\n"
                           "    phases: [{phase: 1, tasks: [{id: t1, title: a, max_cost: 4},\n"
                           "                                {id: t2, title: b}]}]\n"),
                     -1);
    expect(3, 13, "swarm 's': budget $13.00 is below the $14.00 its 2 tasks may cost (1 of them "
                  "without max_cost count the policy's max_cost_per_task, $10.00)");
}

static void test_relation(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    relation: critcal\n"
                           "  - id: r\n"
                           "    relation: boss\n"),
                     -1);
    expect(3, 15, "swarm 's': field 'relation' must be peer, critical or support (got 'critcal'); "
                  "did you mean 'critical'?");
    expect(5, 15, "swarm 'r': field 'relation' must be peer, critical or support (got 'boss')");
    expect_count(2);
}

static void test_min_tier_above_top(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    phases: [{phase: 1, tasks: [{id: t, title: x, min_tier: 4}]}]\n"),
                     -1);
    expect(3, 61, "task 't': min_tier 4 is above the top tier of the model table (3, opus)");
    expect_count(1);
    /* a plan's own model raises the top tier */
    assert_int_equal(parse("models: [{name: big, tier: 4, usd_per_mtok_in: 1, usd_per_mtok_out: 2}]\n"
                           "swarms:\n"
                           "  - id: s\n"
                           "    phases: [{phase: 1, tasks: [{id: t, title: x, min_tier: 4}]}]\n"),
                     0);
}

static void test_no_agent_can_take_it(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    capabilities: [a, b, c]\n"
                           "    agents: [{id: x, model: haiku, capabilities: [a]}]\n"
                           "    phases: [{phase: 1, tasks: [{id: t, title: x, requires: [a, b],\n"
                           "                                 min_tier: 2}]}]\n"),
                     -1);
    expect(5, 38, "task 't': no agent of swarm 's' can take it (it needs tier >= 2 and 70% of "
                  "its 2 required capabilities; the swarm's agents reach tier 1 and 50%)");
    expect_count(1);
}

static void test_policy(void **state)
{
    (void)state;
    assert_int_equal(parse("policy:\n"
                           "  preset: prod\n"
                           "  min_capability_match: 1.5\n"
                           "  max_helpers: 0\n"
                           "  max_cost_per_task: 0\n"
                           "  max_helper: 3\n"
                           "  webhook_url: ftp://x\n"),
                     -1);
    expect(2, 11, "policy: field 'preset' must be development, default or production (got "
                  "'prod')");
    expect(3, 25, "policy: field 'min_capability_match' must be from 0 to 1 (got 1.5)");
    expect(4, 16, "policy: field 'max_helpers' must be from 1 to 100 (got 0)");
    expect(5, 22, "policy: field 'max_cost_per_task' must be more than $0 (got 0)");
    expect(6, 3, "policy: unknown key 'max_helper' (did you mean 'max_helpers'?)");
    expect(7, 16, "policy: field 'webhook_url' must be an http:// or https:// URL (got "
                  "'ftp://x')");
    expect_count(6);
    /* presets set the values the checks use */
    assert_int_equal(parse("policy: {preset: production}\n"), 0);
    struct plan_policy_eff e;
    plan_policy_effective(&P.policy, &e);
    assert_int_equal(e.max_helpers, 2);
    assert_int_equal(e.max_cost_per_task_micro, 5 * S2_MICRO);
    assert_true(e.min_capability_match > 0.79 && e.min_capability_match < 0.81);
    assert_int_equal(parse("policy: {preset: development, max_helpers: 4}\n"), 0);
    plan_policy_effective(&P.policy, &e);
    assert_int_equal(e.max_helpers, 4);
    assert_int_equal(e.max_cost_per_task_micro, 25 * S2_MICRO);
}

static void test_contract(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    capabilities: [integration:sip]\n"
                           "    contract:\n"
                           "      swarm: other\n"
                           "      version: v1\n"
                           "      capabilities: [integration:sip, telephony:protocols]\n"
                           "      limits: {max_memory_mb: 0, max_pids: 64, max_cpus: 2}\n"
                           "      slos: {p99_latency_ms: 500, success_rate: 1.5}\n"
                           "      network: [api.example.com:443, 'bad host:1', x.org:70000]\n"
                           "      secrets: [SIP_API_KEY, lower]\n"),
                     -1);
    expect(5, 7, "contract of swarm 's' names swarm 'other': a contract inside a swarm is that "
                 "swarm's");
    expect(6, 16, "contract of swarm 's': field 'version' must be a version like 1.0.0 (got "
                  "'v1')");
    expect(7, 39, "contract of swarm 's': capability 'telephony:protocols' is not among the "
                  "swarm's");
    expect(8, 31, "limits of contract of swarm 's': field 'max_memory_mb' must be from 1 to "
                  "1000000 (got 0)");
    expect(8, 48, "limits of contract of swarm 's': unknown key 'max_cpus'");
    expect(9, 49, "slos of contract of swarm 's': field 'success_rate' must be from 0 to 1 (got "
                  "1.5)");
    expect(10, 38, "contract of swarm 's': field 'network[1]' must be HOST:PORT, e.g. "
                   "api.example.com:443 (got 'bad host:1')");
    expect(10, 52, "contract of swarm 's': field 'network[2]' must be HOST:PORT, e.g. "
                   "api.example.com:443 (got 'x.org:70000')");
    expect(11, 30, "contract of swarm 's': field 'secrets[1]' must be an environment variable "
                   "name of A-Z, 0-9 and _ (got 'lower')");
    expect_count(9);
}

static void test_idle_tasks(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    capabilities: [docs]\n"
                           "    idle_tasks:\n"
                           "      - {id: i1, title: docs, depends_on: [t], min_tier: 2}\n"
                           "      - {title: no id is fine, requires: [doc]}\n"
                           "      - {body: but a title is needed}\n"
                           "    phases: [{phase: 1, tasks: [{id: t, title: x, depends_on: [i1]}]}]\n"),
                     -1);
    expect(5, 31, "idle task 'i1': unknown key 'depends_on'");
    expect(5, 48, "idle task 'i1': unknown key 'min_tier'");
    expect(6, 43, "idle task 'no id is fine' requires 'doc', which no swarm or agent in the plan "
                  "has (did you mean 'docs'?)");
    expect(7, 9, "idle task 3 of swarm 's': field 'title' is required");
    expect(8, 64, "task 't' depends on 'i1', an idle task (idle tasks are done only when there is "
                  "nothing else; nothing may wait for one)");
    expect_count(5);
    /* at most 100 per swarm, as the server takes them */
    struct buf b = BUF_INIT;
    buf_adds(&b, "swarms:\n  - id: s\n    idle_tasks:\n");
    for (int i = 0; i < 101; i++)
        buf_addf(&b, "      - {title: idle %d}\n", i);
    assert_int_equal(parse(b.ptr), -1);
    expect(4, 7, "swarm 's': field 'idle_tasks' has 101 entries (at most 100)");
    expect_count(1);
    buf_release(&b);
}

static void test_every_error_at_once_sorted(void **state)
{
    (void)state;
    assert_int_equal(parse("policy: {max_helpers: 0}\n"
                           "swarms:\n"
                           "  - id: s\n"
                           "    relation: boss\n"
                           "    agents: [{id: a, model: sonet}]\n"
                           "    phases: [{phase: 1, tasks: [{id: t, title: x, depends_on: [u]}]}]\n"),
                     -1);
    expect_count(4);
    for (size_t i = 1; i < P.nerrors; i++)
        assert_true(P.errors[i - 1].at.line < P.errors[i].at.line ||
                    (P.errors[i - 1].at.line == P.errors[i].at.line &&
                     P.errors[i - 1].at.col <= P.errors[i].at.col));
    assert_int_equal(P.errors[0].at.line, 1);
    assert_int_equal(P.errors[3].at.line, 6);
}

/* ---- hostile input ---- */

static void test_aliases_and_anchors(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - &s {id: s}\n"
                           "  - *s\n"),
                     -1);
    expect(2, 5, "anchors ('&s') are not supported in plans: write the value out");
    expect(3, 5, "aliases ('*s') are not supported in plans: write the value out");
    expect_count(2);
    /* a billion laughs is rejected at its first alias, in no time */
    assert_int_equal(parse("a: &a [x, x, x, x, x, x, x, x, x]\n"
                           "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                           "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                           "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"),
                     -1);
    expect(2, 8, "aliases ('*a') are not supported in plans: write the value out");
}

static void test_documents(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms: []\n---\nswarms: []\n"), -1);
    expect(2, 1, "a second YAML document starts here: a plan is one document");
    expect_count(1);
    assert_int_equal(parse(""), -1);
    expect(1, 1, "the plan is empty");
    assert_int_equal(parse("# only a comment\n"), -1);
    expect(1, 1, "the plan is empty");
    assert_int_equal(parse("~\n"), -1);
    expect(1, 1, "the plan is empty");
    assert_int_equal(parse("- a\n- b\n"), -1);
    expect(1, 1, "a plan is a mapping with the keys policy, models and swarms (got a list)");
    assert_int_equal(parse("swarms:\n  - id: s\n    phases: {\n"), -1);
    expect(4, 1, "invalid YAML: did not find expected node content while parsing a flow node at "
                 "4:1");
    expect_count(1);
}

static void test_bad_bytes(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n  - id: s\xff\n"), -1);
    expect(2, 10, "the file is not UTF-8 text: invalid leading UTF-8 octet (byte 0xff)");
    expect_count(1);
    static const char nul[] = "swarms:\n  - id: \"a\\0b\"\n";
    assert_int_equal(parse(nul), -1);
    expect(2, 9, "text must not contain NUL characters");
    expect_count(1);
    assert_int_equal(parse("swarms:\n  - id: s\n    role: \"bell\\a\"\n"), -1);
    expect(3, 11, "swarm 's': field 'role' contains control character 0x07 at byte 5");
    /* random bytes: errors, never a crash */
    unsigned char junk[4096];
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof junk; i++) {
            x = x * 1103515245 + 12345;
            junk[i] = (unsigned char)(x >> 16);
        }
        plan_release(&P);
        plan_init(&P, "junk");
        assert_int_equal(plan_parse(&P, (const char *)junk, sizeof junk), -1);
        assert_true(P.nerrors > 0);
    }
}

static void test_tags(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - !!python/object:os.system {id: s}\n"
                           "  - id: !!str 12\n"
                           "    budget: !!str 5\n"),
                     -1);
    expect(2, 5, "unsupported tag 'tag:yaml.org,2002:python/object:os.system' (plans use plain "
                 "YAML values)");
    expect(4, 13, "swarm '12': field 'budget' must be a number (got '5')");
    expect_count(2);
    assert_string_equal(P.swarms[0].spec.id, "12");
}

static void test_deep_nesting(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_adds(&b, "swarms: ");
    for (int i = 0; i < 10000; i++)
        buf_addch(&b, '[');
    for (int i = 0; i < 10000; i++)
        buf_addch(&b, ']');
    buf_addch(&b, '\n');
    assert_int_equal(parse(b.ptr), -1);
    expect(1, 72, "values nest deeper than 64 levels");
    expect_count(1);
    buf_release(&b);
}

static void test_huge(void **state)
{
    (void)state;
    /* over the size limit: refused before a byte is read */
    static const char tiny[] = "swarms: []\n";
    plan_release(&P);
    plan_init(&P, "big.yaml");
    assert_int_equal(plan_parse(&P, tiny, (size_t)PLAN_FILE_MAX + 1), -1);
    expect(0, 0, "the plan is larger than 268435456 bytes");
    /* a large valid plan: 20000 tasks in one swarm, a chain of dependencies */
    struct buf b = BUF_INIT;
    buf_adds(&b, "swarms:\n  - id: s\n    phases:\n      - phase: 1\n        tasks:\n");
    for (int i = 0; i < 20000; i++)
        buf_addf(&b, "          - {id: t%d, title: task %d%s%d%s}\n", i, i,
                 i ? ", depends_on: [t" : "", i ? i - 1 : 0, i ? "]" : "");
    assert_int_equal(parse(b.ptr), 0);
    assert_int_equal(P.ntasks, 20000);
    /* the same chain closed into a cycle: one error, with the whole path */
    buf_reset(&b);
    buf_adds(&b, "swarms:\n  - id: s\n    phases:\n      - phase: 1\n        tasks:\n");
    for (int i = 0; i < 5000; i++)
        buf_addf(&b, "          - {id: t%d, title: x, depends_on: [t%d]}\n", i, (i + 1) % 5000);
    assert_int_equal(parse(b.ptr), -1);
    expect_count(1);
    assert_true(strlen(P.errors[0].msg) > 5000 * 4);
    buf_release(&b);
}

/* ---- the seed plan, and writing plans back ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct buf b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    return buf_detach(&b, NULL);
}

static void test_seed_plan_valid(void **state)
{
    (void)state;
    plan_release(&P);
    plan_init(&P, "examples/seed-7x7.yaml");
    int rc = plan_load(&P, "examples/seed-7x7.yaml");
    if (rc)
        dump();
    assert_int_equal(rc, 0);
    assert_int_equal(P.nswarms, 7);
    assert_int_equal(P.nagents, 49);
    for (size_t i = 0; i < P.nswarms; i++) {
        const struct plan_swarm *s = &P.swarms[i];
        assert_int_equal(s->nagents, 7);
        assert_int_equal(s->nphases, 10);
        size_t cheap = 0;
        for (size_t a = s->agent0; a < s->agent0 + s->nagents; a++)
            cheap += !strcmp(P.agents[a].spec.model, "haiku");
        assert_int_equal(cheap, 5);
        assert_true(s->nidle > 0);
    }
    long sip = plan_find_swarm(&P, "session-4-sip");
    assert_true(sip >= 0);
    assert_int_equal(P.swarms[sip].spec.relation, REL_CRITICAL);
    assert_int_equal(P.swarms[plan_find_swarm(&P, "session-5-cli")].spec.relation, REL_SUPPORT);
    /* phase 4 of sessions 1-3 waits on session 4's bridges */
    const char *const bridged[] = {"ndi-p4-t1", "webrtc-p4-t1", "h323-p4-t1"};
    for (int k = 0; k < 3; k++) {
        size_t i;
        for (i = 0; i < P.ntasks && strcmp(P.tasks[i].spec.id, bridged[k]); i++)
            ;
        assert_true(i < P.ntasks);
        assert_int_equal(P.tasks[i].spec.phase, 4);
        assert_int_equal(P.tasks[i].spec.depends_on.n, 1);
        assert_int_equal(strncmp(P.tasks[i].spec.depends_on.v[0], "sip-p4-", 7), 0);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    char *seed = slurp("examples/seed-7x7.yaml");
    assert_int_equal(parse(seed), 0);
    free(seed);
    struct buf one = BUF_INIT, two = BUF_INIT;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(plan_write_yaml(&P, &one, &err), 0);
    size_t ntasks = P.ntasks, nidle = P.nidle;
    assert_int_equal(parse(one.ptr), 0);
    assert_int_equal(P.ntasks, ntasks);
    assert_int_equal(P.nidle, nidle);
    assert_int_equal(plan_write_yaml(&P, &two, &err), 0);
    assert_string_equal(one.ptr, two.ptr);
    buf_release(&one);
    buf_release(&two);

    /* strings that look like other types stay strings; odd text survives */
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    role: \"true\"\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: '10', title: '1.5', body: \"a: b\\n  # c\\n- d\\n\"}\n"
                           "          - {id: y, title: 'null', depends_on: ['10']}\n"),
                     0);
    assert_int_equal(plan_write_yaml(&P, &one, &err), 0);
    assert_int_equal(parse(one.ptr), 0);
    assert_string_equal(P.swarms[0].spec.role, "true");
    assert_string_equal(P.tasks[0].spec.id, "10");
    assert_string_equal(P.tasks[0].spec.title, "1.5");
    assert_string_equal(P.tasks[0].spec.body, "a: b\n  # c\n- d\n");
    assert_string_equal(P.tasks[1].spec.title, "null");
    buf_release(&one);
}

static void test_paths(void **state)
{
    (void)state;
    assert_int_equal(parse("swarms:\n"
                           "  - id: s\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: t1, title: a, paths: [src/sip/*.c, docs/SIP.md]}\n"
                           "          - {id: t2, title: b, paths: [/etc/passwd, src/../x, src/a, src/a]}\n"),
                     -1);
    expect(7, 40, "task 't2': field 'paths[0]' '/etc/passwd' must be a relative path with '/' "
                  "separators");
    expect(7, 53, "task 't2': field 'paths[1]' 'src/../x' has an empty, '.' or '..' segment");
    expect(7, 70, "task 't2': field 'paths' lists 'src/a' twice");
    expect_count(3);
    assert_int_equal(P.tasks[0].spec.paths.n, 2);
    assert_string_equal(P.tasks[0].spec.paths.v[0], "src/sip/*.c");
    /* they go to the server and come back in an export */
    json_t *j = plan_task_json(&P.tasks[0], 0);
    assert_int_equal(json_array_size(json_object_get(j, "paths")), 2);
    json_decref(j);
    struct buf b = BUF_INIT;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(parse("swarms: [{id: s, phases: [{phase: 1, tasks: [{id: t1, title: a,\n"
                           "  paths: [src/sip/*.c]}]}]}]\n"),
                     0);
    assert_int_equal(plan_write_yaml(&P, &b, &err), 0);
    assert_int_equal(parse(b.ptr), 0);
    assert_string_equal(P.tasks[0].spec.paths.v[0], "src/sip/*.c");
    buf_release(&b);
}

static void test_suggest(void **state)
{
    (void)state;
    assert_int_equal(plan_distance("sonnet", "sonet", 3), 1);
    assert_int_equal(plan_distance("depends_on", "depnedson", 5), 2);
    assert_int_equal(plan_distance("ab", "ba", 2), 1);
    assert_int_equal(plan_distance("abc", "xyzabcdef", 2), 3);
    static const char *const c[] = {"haiku", "sonnet", "opus"};
    assert_string_equal(plan_suggest("opsu", c, 3), "opus");
    assert_null(plan_suggest("gpt", c, 3));
    assert_null(plan_suggest("haiku", c, 3)); /* itself is no suggestion */
}

static void test_policy_json_and_diff(void **state)
{
    (void)state;
    /* the diff against an empty server creates everything, tasks in dependency order */
    assert_int_equal(parse("policy: {preset: production, max_helpers: 4}\n"
                           "swarms:\n"
                           "  - id: s\n"
                           "    phases:\n"
                           "      - phase: 1\n"
                           "        tasks:\n"
                           "          - {id: b, title: B, depends_on: [a]}\n"
                           "          - {id: a, title: A}\n"),
                     0);
    struct plan_live live;
    struct plan_diff d;
    plan_live_init(&live);
    assert_int_equal(plan_diff(&P, &live, &d), 0);
    assert_int_equal(d.n, 3); /* policy, swarm, one batch of tasks */
    assert_int_equal(d.v[0].section, PS_POLICY);
    assert_string_equal(json_string_value(json_object_get(d.v[0].body, "preset")), "production");
    assert_int_equal(json_integer_value(json_object_get(d.v[0].body, "max_helpers")), 4);
    assert_int_equal(d.v[2].section, PS_TASKS);
    json_t *tasks = json_object_get(d.v[2].body, "tasks");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tasks, 0), "id")), "a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tasks, 1), "id")), "b");
    /* a live state that matches: nothing to do; one that differs: a conflict at the task */
    live.policy = json_pack("{s:s,s:f,s:i,s:f,s:i,s:i}", "preset", "production",
                            "min_capability_match", 0.8, "max_helpers", 4, "max_cost_per_task",
                            5.0, "breaker_failures", 2, "rate_limit_rps", 200);
    live.policy_supported = 1;
    json_array_append_new(live.swarms, json_pack("{s:s,s:s,s:s,s:[],s:f,s:n}", "id", "s", "role",
                                                 "", "relation", "peer", "capabilities",
                                                 "budget", 0.0, "branch"));
    json_array_append_new(live.tasks, plan_task_json(&P.tasks[0], 0));
    json_t *a = plan_task_json(&P.tasks[1], 0);
    json_object_set_new(a, "title", json_string("A changed"));
    json_array_append_new(live.tasks, a);
    plan_diff_release(&d);
    assert_int_equal(plan_diff(&P, &live, &d), -1);
    assert_int_equal(d.n, 0);
    expect(8, 18, "task 'a' exists on the server with title 'A changed' (plan 'A'); plan apply "
                  "creates tasks but does not change them");
    plan_diff_release(&d);
    plan_live_release(&live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_valid_base, teardown),
        cmocka_unit_test_teardown(test_unknown_key, teardown),
        cmocka_unit_test_teardown(test_wrong_types, teardown),
        cmocka_unit_test_teardown(test_out_of_range, teardown),
        cmocka_unit_test_teardown(test_bad_names, teardown),
        cmocka_unit_test_teardown(test_missing_required, teardown),
        cmocka_unit_test_teardown(test_duplicates, teardown),
        cmocka_unit_test_teardown(test_unknown_dependency, teardown),
        cmocka_unit_test_teardown(test_cycles, teardown),
        cmocka_unit_test_teardown(test_unknown_model, teardown),
        cmocka_unit_test_teardown(test_capability_typo, teardown),
        cmocka_unit_test_teardown(test_agent_caps_subset, teardown),
        cmocka_unit_test_teardown(test_budget_exact, teardown),
        cmocka_unit_test_teardown(test_relation, teardown),
        cmocka_unit_test_teardown(test_min_tier_above_top, teardown),
        cmocka_unit_test_teardown(test_no_agent_can_take_it, teardown),
        cmocka_unit_test_teardown(test_policy, teardown),
        cmocka_unit_test_teardown(test_contract, teardown),
        cmocka_unit_test_teardown(test_idle_tasks, teardown),
        cmocka_unit_test_teardown(test_every_error_at_once_sorted, teardown),
        cmocka_unit_test_teardown(test_aliases_and_anchors, teardown),
        cmocka_unit_test_teardown(test_documents, teardown),
        cmocka_unit_test_teardown(test_bad_bytes, teardown),
        cmocka_unit_test_teardown(test_tags, teardown),
        cmocka_unit_test_teardown(test_deep_nesting, teardown),
        cmocka_unit_test_teardown(test_huge, teardown),
        cmocka_unit_test_teardown(test_seed_plan_valid, teardown),
        cmocka_unit_test_teardown(test_round_trip, teardown),
        cmocka_unit_test_teardown(test_paths, teardown),
        cmocka_unit_test_teardown(test_suggest, teardown),
        cmocka_unit_test_teardown(test_policy_json_and_diff, teardown),
    };
    plan_init(&P, "t.yaml");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
