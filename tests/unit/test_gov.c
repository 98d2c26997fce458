/* test_gov: the governor's rules alone: policy presets and validation, capability matching,
 * budget arithmetic in micro-dollars (no drift over a million small charges), the breaker's
 * state machine, the token bucket, and pricing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "governor.h"
#include "model.h"

static void test_presets(void **state)
{
    (void)state;
    struct policy p;
    policy_default(&p);
    assert_string_equal(p.preset, "default");
    assert_int_equal(p.min_match_permille, 700);
    assert_int_equal(p.max_helpers, 3);
    assert_int_equal(p.max_cost_per_task, 10 * S2_MICRO);
    assert_int_equal(p.breaker_failures, 3);
    assert_int_equal(p.breaker_cooldown_ms, 3600 * 1000);
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(policy_preset(&p, "development", &err), 0);
    assert_int_equal(p.max_helpers, 5);
    assert_int_equal(p.max_cost_per_task, 25 * S2_MICRO);
    assert_int_equal(p.min_match_permille, 500);
    assert_int_equal(p.breaker_failures, 5);
    assert_int_equal(policy_preset(&p, "production", &err), 0);
    assert_int_equal(p.max_helpers, 2);
    assert_int_equal(p.max_cost_per_task, 5 * S2_MICRO);
    assert_int_equal(p.min_match_permille, 800);
    assert_int_equal(p.breaker_failures, 2);
    assert_int_not_equal(policy_preset(&p, "chaos", &err), 0);
    assert_non_null(strstr(err.msg, "chaos"));
    s2_error_release(&err);
    policy_release(&p);
}

static int apply(struct policy *p, const char *json, struct s2_error *err)
{
    json_t *o = json_loads(json, 0, NULL);
    int rc = policy_from_json(p, o, err);
    json_decref(o);
    return rc;
}

static void test_policy_json(void **state)
{
    (void)state;
    struct policy p;
    policy_default(&p);
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(apply(&p, "{\"min_capability_match\":0.85,\"max_helpers\":4,"
                               "\"max_cost_per_task\":2.5,\"webhook_url\":\"http://h/x\"}",
                           &err),
                     0);
    assert_int_equal(p.min_match_permille, 850);
    assert_int_equal(p.max_helpers, 4);
    assert_int_equal(p.max_cost_per_task, 2500000);
    assert_string_equal(p.webhook_url, "http://h/x");
    /* a preset sets what it governs, then the other members apply; the rest stays */
    assert_int_equal(apply(&p, "{\"preset\":\"production\",\"max_helpers\":9}", &err), 0);
    assert_int_equal(p.max_helpers, 9);
    assert_int_equal(p.min_match_permille, 800);
    assert_int_equal(p.max_cost_per_task, 5 * S2_MICRO);
    assert_string_equal(p.webhook_url, "http://h/x");
    /* all or nothing: a bad member leaves the policy as it was */
    const char *bad[] = {
        "{\"min_capability_match\":1.2}", "{\"max_helpers\":0}",   "{\"max_cost_per_task\":-1}",
        "{\"maxhelpers\":3}",             "{\"cascade\":\"yes\"}", "{\"webhook_url\":\"file:///x\"}",
        "{\"budget_alert_pct\":100}",     "{\"preset\":\"x\"}",    "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *o = json_loads(bad[i], 0, NULL);
        assert_int_not_equal(policy_from_json(&p, o, &err), 0);
        assert_non_null(err.msg);
        s2_error_release(&err);
        json_decref(o);
        assert_int_equal(p.max_helpers, 9);
    }
    json_t *j = policy_to_json(&p);
    assert_int_equal(json_integer_value(json_object_get(j, "max_helpers")), 9);
    struct policy q;
    policy_default(&q);
    assert_int_equal(policy_from_json(&q, j, &err), 0); /* its own output reads back */
    assert_int_equal(q.max_helpers, 9);
    assert_int_equal(q.min_match_permille, 800);
    json_decref(j);
    policy_release(&q);
    policy_release(&p);
}

static void test_match(void **state)
{
    (void)state;
    const uint32_t req[] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19};
    const uint32_t all[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
    const uint32_t seven[] = {1, 3, 5, 7, 9, 11, 13, 100};
    const uint32_t six[] = {1, 3, 5, 7, 9, 11};
    assert_int_equal(gov_match(req, 10, all, 19), 1000);
    assert_int_equal(gov_match(req, 10, seven, 8), 700);
    assert_int_equal(gov_match(req, 10, six, 6), 600);
    assert_int_equal(gov_match(req, 0, six, 6), 1000);
    assert_int_equal(gov_match(req, 10, NULL, 0), 0);
    struct policy p;
    policy_default(&p);
    assert_true(gov_qualifies(&p, 700));
    assert_false(gov_qualifies(&p, 699));
    /* 2 of 3 is 666 permille: below 0.7 */
    const uint32_t r3[] = {1, 2, 3}, c2[] = {1, 2};
    assert_false(gov_qualifies(&p, gov_match(r3, 3, c2, 2)));
    policy_release(&p);
}

static void test_ledger(void **state)
{
    (void)state;
    struct ledger l = {.limit = 40 * S2_MICRO};
    assert_true(gov_can_reserve(&l, 10 * S2_MICRO));
    l.reserved = 35 * S2_MICRO;
    assert_false(gov_can_reserve(&l, 6 * S2_MICRO));
    assert_true(gov_can_reserve(&l, 5 * S2_MICRO));
    assert_int_equal(gov_left(&l), 5 * S2_MICRO);
    /* settling: what was reserved comes back, what was spent stays */
    gov_settle(&l, 10 * S2_MICRO, 7 * S2_MICRO);
    assert_int_equal(l.reserved, 25 * S2_MICRO);
    assert_int_equal(l.spent, 7 * S2_MICRO);
    /* left never goes below zero, even after an overrun */
    gov_settle(&l, 25 * S2_MICRO, 60 * S2_MICRO);
    assert_int_equal(gov_left(&l), 0);
    assert_int_equal(l.reserved, 0);
    assert_int_equal(gov_level(&l, 80), 2);
    struct ledger none = {0};
    assert_true(gov_can_reserve(&none, INT64_MAX / 4));
    assert_int_equal(gov_left(&none), -1);
    assert_int_equal(gov_level(&none, 80), 0);
    /* levels at the edges: 80% exactly is an alert, a micro-dollar less is not */
    struct ledger m = {.limit = 10 * S2_MICRO, .spent = 8 * S2_MICRO};
    assert_int_equal(gov_level(&m, 80), 1);
    m.spent--;
    assert_int_equal(gov_level(&m, 80), 0);
    m.spent = 10 * S2_MICRO;
    assert_int_equal(gov_level(&m, 80), 2);
    /* a million charges of 0.1 cent add up exactly: integers do not drift */
    struct ledger d = {.limit = 1000 * S2_MICRO};
    for (int i = 0; i < 1000000; i++) {
        d.reserved += 1000;
        gov_settle(&d, 1000, 1000);
    }
    assert_int_equal(d.spent, 1000 * S2_MICRO);
    assert_int_equal(d.reserved, 0);
    assert_int_equal(gov_level(&d, 80), 2);
}

static void test_pricing(void **state)
{
    (void)state;
    /* sonnet: $3 in, $15 out per million tokens */
    assert_int_equal(model_price(1000000, 1000000, 3 * S2_MICRO, 15 * S2_MICRO), 18 * S2_MICRO);
    assert_int_equal(model_price(1000, 2000, 3 * S2_MICRO, 15 * S2_MICRO), 33000);
    assert_int_equal(model_price(0, 0, 3 * S2_MICRO, 15 * S2_MICRO), 0);
    /* haiku: 250 tokens in at $0.25/M is 62.5 micro-dollars: rounded, not truncated to 0 */
    int64_t p = model_price(250, 0, 250000, 1250000);
    assert_true(p == 62 || p == 63);
}

static void test_breaker(void **state)
{
    (void)state;
    struct policy p;
    policy_default(&p);
    struct breaker b = {0};
    int changed;
    int64_t now = 1000000;
    assert_true(gov_breaker_allows(&b, &p, now, &changed));
    assert_false(gov_breaker_failure(&b, &p, now));
    assert_false(gov_breaker_failure(&b, &p, now));
    /* a success between failures resets the count */
    assert_false(gov_breaker_success(&b));
    assert_int_equal(b.failures, 0);
    assert_false(gov_breaker_failure(&b, &p, now));
    assert_false(gov_breaker_failure(&b, &p, now));
    assert_true(gov_breaker_failure(&b, &p, now));
    assert_int_equal(b.state, BRK_OPEN);
    assert_false(gov_breaker_allows(&b, &p, now + p.breaker_cooldown_ms - 1, &changed));
    assert_false(changed);
    /* half-open after the cooldown: one trial at a time */
    assert_true(gov_breaker_allows(&b, &p, now + p.breaker_cooldown_ms, &changed));
    assert_true(changed);
    assert_int_equal(b.state, BRK_HALF_OPEN);
    gov_breaker_taken(&b);
    assert_false(gov_breaker_allows(&b, &p, now + p.breaker_cooldown_ms, &changed));
    /* the trial fails: open again at once, a new cooldown */
    assert_true(gov_breaker_failure(&b, &p, now + p.breaker_cooldown_ms + 5));
    assert_int_equal(b.state, BRK_OPEN);
    assert_false(gov_breaker_allows(&b, &p, now + p.breaker_cooldown_ms + 10, &changed));
    /* half-open, trial succeeds: closed */
    int64_t later = now + 3 * p.breaker_cooldown_ms;
    assert_true(gov_breaker_allows(&b, &p, later, &changed));
    gov_breaker_taken(&b);
    assert_true(gov_breaker_success(&b));
    assert_int_equal(b.state, BRK_CLOSED);
    assert_true(gov_breaker_allows(&b, &p, later, &changed));
    /* reset by hand from open */
    for (int i = 0; i < 3; i++)
        gov_breaker_failure(&b, &p, later);
    assert_int_equal(b.state, BRK_OPEN);
    gov_breaker_reset(&b);
    assert_int_equal(b.state, BRK_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_string_equal(breaker_state_name(BRK_HALF_OPEN), "half-open");
    policy_release(&p);
}

static void test_bucket(void **state)
{
    (void)state;
    struct bucket b = {0};
    int64_t wait = 0, t = 1000;
    for (int i = 0; i < 20; i++)
        assert_int_equal(gov_bucket_take(&b, 10, 20, t, &wait), 0);
    assert_int_equal(gov_bucket_take(&b, 10, 20, t, &wait), -1);
    assert_int_equal(wait, 100); /* 10 a second: one token in 100 ms */
    assert_int_equal(gov_bucket_take(&b, 10, 20, t + 99, &wait), -1);
    assert_int_equal(gov_bucket_take(&b, 10, 20, t + 100, &wait), 0);
    /* a long pause refills to the burst, no more */
    int ok = 0;
    while (gov_bucket_take(&b, 10, 20, t + 100000, &wait) == 0)
        ok++;
    assert_int_equal(ok, 20);
}

static void test_path_overlap(void **state)
{
    (void)state;
    struct {
        const char *a, *b;
        int overlap;
    } cases[] = {
        {"src/sip/**", "src/sip/parser.c", 1},  {"src/sip/parser.c", "src/sip/parser.c", 1},
        {"src/sip", "src/sip/parser.c", 1},     {"src/sip/*.c", "src/sip/x/y.h", 1},
        {"src/sip/**", "src/h323/**", 0},       {"src/sip.c", "src/sipx.c", 0},
        {"src/sip/a.c", "src/sip/b.c", 0},      {"docs/*.md", "src/x.c", 0},
        {"*.md", "docs/x.md", 1},               {"src/si*/a.c", "src/sip/a.c", 1},
        {"src/sip", "src/sipx/a.c", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (model_paths_overlap(cases[i].a, cases[i].b) != cases[i].overlap ||
            model_paths_overlap(cases[i].b, cases[i].a) != cases[i].overlap)
            fail_msg("'%s' vs '%s': expected %s", cases[i].a, cases[i].b,
                     cases[i].overlap ? "overlap" : "none");
    }
    struct s2_error err = S2_ERROR_INIT;
    const char *bad[] = {"/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (!model_check_path(bad[i], "path", &err))
            fail_msg("'%s' was accepted", bad[i]);
        s2_error_release(&err);
    }
    assert_int_equal(model_check_path("src/sip/**/*.c", "path", &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets), cmocka_unit_test(test_policy_json),
        cmocka_unit_test(test_match),   cmocka_unit_test(test_ledger),
        cmocka_unit_test(test_pricing), cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_bucket),  cmocka_unit_test(test_path_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
