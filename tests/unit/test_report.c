/* test_report: the velocity and cost report over a hand-written log with round times:
 * sequential equivalent, makespan and speedup; leases that began before --since are left
 * out; cost by tier and the top-tier comparison (prices replayed from model.put; usage in
 * dollars claims no saving); blockers with their helper times; bad entries skipped; the
 * Markdown and SVG forms escape what they print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util/xalloc.h"

static void add(struct report *r, long long time, const char *op, const char *swarm,
                const char *task, const char *params)
{
    json_t *e = json_pack("{s:I,s:s,s:s?,s:s?,s:s}", "time", (json_int_t)time, "op", op, "swarm",
                          swarm, "task", task, "params", params);
    report_add(r, e); /* params as text: the export form */
    json_decref(e);
}

static void feed(struct report *r)
{
    /* as logs from before 2026-11-25 hold changes made after init: micro-dollars */
    add(r, 1, "model.put", NULL, NULL, "{\"name\":\"cheap\",\"tier\":1,\"usd_in_micro\":1000000,\"usd_out_micro\":2000000}");
    /* as the engine writes it: USD per million tokens */
    add(r, 2, "model.put", NULL, NULL, "{\"name\":\"top\",\"tier\":3,\"usd_per_mtok_in\":10.0,\"usd_per_mtok_out\":20.000000}");
    add(r, 3, "model.put", NULL, NULL, "{\"name\":\"also3\",\"tier\":3,\"usd_in_micro\":1,\"usd_out_micro\":1}");
    add(r, 10, "task.create", "s", "a", "{\"state\":\"ready\",\"title\":\"a\"}");
    add(r, 10, "task.create", "s", "b", "{\"state\":\"ready\",\"title\":\"b\"}");
    add(r, 10, "task.create", "t", "c", "{\"state\":\"ready\",\"title\":\"c\"}");
    /* a: 1000 ms, done; b: fails after 500, retried, done after 2000; c: expires, dead */
    add(r, 1000, "task.claim", "s", "a", "{\"state\":\"claimed\"}");
    add(r, 1000, "task.claim", "s", "b", "{\"state\":\"claimed\"}");
    add(r, 1500, "task.fail", "s", "b", "{\"state\":\"ready\",\"next\":\"retry\"}");
    add(r, 1600, "task.usage", "s", "a",
        "{\"state\":\"claimed\",\"model\":\"cheap\",\"tier\":1,\"tokens_in\":1000,\"tokens_out\":500,\"usd_micro\":2000,\"priced\":\"tokens\"}");
    add(r, 2000, "task.done", "s", "a", "{\"state\":\"done\"}");
    add(r, 2000, "task.claim", "s", "b", "{\"state\":\"claimed\"}");
    add(r, 2100, "task.block", "s", "b", "{\"state\":\"claimed\",\"needs\":[\"x\"]}");
    add(r, 2100, "task.create", "s", "b.help-1", "{\"state\":\"ready\",\"kind\":\"help\"}");
    add(r, 2400, "blocker.help", "s", "b", "{\"helper\":\"h1\"}");
    add(r, 2400, "task.claim", "s", "b.help-1", "{\"state\":\"claimed\"}");
    add(r, 3000, "task.done", "s", "b.help-1", "{\"state\":\"done\"}");
    add(r, 3100, "blocker.resolve", "s", "b", "{\"why\":\"unblock\"}");
    add(r, 3500, "task.usage", "s", "b",
        "{\"state\":\"claimed\",\"model\":\"cheap\",\"tier\":1,\"tokens_in\":0,\"tokens_out\":0,\"usd_micro\":700,\"priced\":\"usd\"}");
    add(r, 4000, "task.done", "s", "b", "{\"state\":\"done\"}");
    add(r, 1200, "task.claim", "t", "c", "{\"state\":\"claimed\"}");
    add(r, 5200, "task.expire", "t", "c", "{\"state\":\"dead\",\"next\":\"dead\"}");
    add(r, 5300, "task.block", "t", "c", "{}"); /* opened, never resolved */
    add(r, 5300, "garbage", NULL, NULL, "not json");
    json_t *bad = json_pack("{s:s}", "op", "task.claim"); /* no time */
    report_add(r, bad);
    json_decref(bad);
}

static json_t *get(json_t *o, const char *path)
{
    char *p = xstrdup(path), *save = NULL;
    json_t *v = o;
    for (char *k = strtok_r(p, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
    free(p);
    return v;
}

static long long iv(json_t *o, const char *path)
{
    json_t *v = get(o, path);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", path);
    return (long long)json_integer_value(v);
}

static void test_numbers(void **state)
{
    (void)state;
    struct report *r = report_new(0, NULL);
    feed(r);
    json_t *j = report_json(r);
    assert_int_equal(iv(j, "skipped"), 2);
    /* swarm s: a 1000 + b 2000 + help 600 */
    json_t *s = get(j, "swarms.0");
    assert_string_equal(json_string_value(get(s, "swarm")), "s");
    assert_int_equal(iv(s, "velocity.sequential_ms"), 3600);
    assert_int_equal(iv(s, "velocity.makespan_ms"), 3000);
    assert_true(json_real_value(get(s, "velocity.speedup")) == 1.2);
    assert_int_equal(iv(s, "tasks.leases"), 4);
    assert_int_equal(iv(s, "tasks.done"), 3);
    assert_int_equal(iv(s, "tasks.failed"), 1);
    /* cost: 2000 + 700; top: 1000 x 10 + 500 x 20 = 20000 (the dearer of the two tier-3
     * models), plus the 700 reported in dollars as it is */
    assert_int_equal(iv(s, "cost.usd_micro"), 2700);
    assert_int_equal(iv(s, "cost.top_tier_usd_micro"), 20700);
    assert_int_equal(iv(s, "cost.saving_usd_micro"), 18000);
    assert_string_equal(json_string_value(get(s, "cost.top_tier.model")), "top");
    assert_int_equal(iv(s, "cost.tiers.0.tier"), 1);
    assert_int_equal(iv(s, "cost.tiers.0.tokens_in"), 1000);
    /* the blocker: 1000 ms blocked, first helper after 300, cleared 700 later */
    assert_int_equal(iv(s, "blockers.count"), 1);
    assert_int_equal(iv(s, "blockers.resolved"), 1);
    assert_int_equal(iv(s, "blockers.blocked_ms"), 1000);
    assert_int_equal(iv(s, "blockers.time_to_first_helper_ms"), 300);
    assert_int_equal(iv(s, "blockers.help_to_clear_ms"), 700);
    assert_int_equal(iv(s, "blockers.helper_leases_done"), 1);
    assert_int_equal(iv(s, "blockers.helper_ms"), 600);
    /* swarm t: an expiry, dead; its blocker still open at the last entry */
    json_t *t = get(j, "swarms.1");
    assert_int_equal(iv(t, "tasks.expired"), 1);
    assert_int_equal(iv(t, "tasks.dead"), 1);
    assert_int_equal(iv(t, "velocity.sequential_ms"), 0);
    assert_int_equal(iv(t, "blockers.open"), 1);
    assert_int_equal(iv(t, "blockers.open_ms"), 0);
    assert_true(json_is_null(get(t, "cost.saving_pct")));
    /* overall: first claim 1000, last end 5200 */
    assert_int_equal(iv(j, "overall.velocity.makespan_ms"), 4200);
    assert_int_equal(iv(j, "overall.tasks.leases"), 5);
    assert_int_equal(iv(j, "overall.blockers.count"), 2);
    char *md = report_markdown(j), *svg = report_svg(j);
    assert_non_null(strstr(md, "| s | 4 | 3 | 1 | 0 | 0 |"));
    assert_non_null(strstr(svg, "</svg>"));
    free(md);
    free(svg);
    json_decref(j);
    report_free(r);
}

static void test_since_and_swarm(void **state)
{
    (void)state;
    struct report *r = report_new(1900, "s");
    feed(r);
    json_t *j = report_json(r);
    /* leases from 1900 on: b's second and the help task; a began at 1000: not counted */
    assert_int_equal(iv(j, "overall.tasks.leases"), 2);
    assert_int_equal(iv(j, "overall.tasks.done"), 2);
    assert_int_equal(iv(j, "overall.velocity.sequential_ms"), 2600);
    assert_int_equal(iv(j, "overall.cost.usd_micro"), 700);
    assert_int_equal(json_array_size(get(j, "swarms")), 1);
    json_decref(j);
    report_free(r);
}

static void test_escaping(void **state)
{
    (void)state;
    struct report *r = report_new(0, NULL);
    add(r, 1, "task.claim", "<a|b&\"c'>", "x", "{}");
    add(r, 5, "task.done", "<a|b&\"c'>", "x", "{}");
    json_t *j = report_json(r);
    char *md = report_markdown(j), *svg = report_svg(j);
    assert_non_null(strstr(md, "<a\\|b&\"c'>"));
    assert_null(strstr(svg, "<a|"));
    assert_non_null(strstr(svg, "&lt;a|b&amp;&quot;c&#39;&gt;"));
    free(md);
    free(svg);
    json_decref(j);
    report_free(r);
}

static void test_empty(void **state)
{
    (void)state;
    struct report *r = report_new(0, NULL);
    json_t *j = report_json(r); /* nothing fed: no swarm, no division by zero */
    assert_int_equal(json_array_size(get(j, "swarms")), 0);
    assert_int_equal(iv(j, "overall.tasks.leases"), 0);
    assert_true(json_is_null(get(j, "overall.velocity.speedup")));
    char *md = report_markdown(j), *svg = report_svg(j);
    assert_non_null(strstr(svg, "</svg>"));
    free(md);
    free(svg);
    json_decref(j);
    report_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_since_and_swarm),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
