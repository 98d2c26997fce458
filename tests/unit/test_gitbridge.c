/* test_gitbridge: instruction files parsed without a repository: names, front matter,
 * defaults, bodies from Markdown sections, every error at its line, hostile input (aliases,
 * NUL, bad UTF-8, huge nesting) refused without a crash; the comparison rules of an import
 * (defaults, sets, the cascade's min_tier, a gate's approval); the import loop with fake
 * operations: skip identical, report conflicts, drop a file the server refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitbridge.h"
#include "util/xalloc.h"

static size_t parse(struct gb_instructions *in, const char *name, const char *text)
{
    return gitbridge_parse(in, name, text, strlen(text));
}

/* The problems of the last file as "LINE: msg" lines. */
static void expect_problem(struct gb_instructions *in, int line, const char *needle)
{
    for (size_t i = 0; i < in->nproblems; i++)
        if (in->problems[i].line == line && strstr(in->problems[i].msg, needle))
            return;
    for (size_t i = 0; i < in->nproblems; i++)
        fprintf(stderr, "  problem %d: %s\n", in->problems[i].line, in->problems[i].msg);
    fail_msg("no problem at line %d mentioning '%s'", line, needle);
}

static void test_names(void **state)
{
    (void)state;
    char *s = NULL;
    int64_t p = 0;
    assert_int_equal(gitbridge_parse_name("INSTRUCTIONS-sip-PHASE-2.md", &s, &p), 0);
    assert_string_equal(s, "sip");
    assert_int_equal(p, 2);
    free(s);
    assert_int_equal(gitbridge_parse_name("INSTRUCTIONS-a-PHASE-b-PHASE-10.md", &s, &p), 0);
    assert_string_equal(s, "a-PHASE-b"); /* the last -PHASE- splits */
    assert_int_equal(p, 10);
    free(s);
    const char *bad[] = {"INSTRUCTIONS-sip-PHASE-.md", "INSTRUCTIONS--PHASE-1.md",
                         "INSTRUCTIONS-sip-PHASE-1.txt", "INSTRUCTIONS-sip-PHASE-x.md",
                         "instructions-sip-PHASE-1.md", "INSTRUCTIONS-sip-PHASE-99999999.md",
                         "INSTRUCTIONS-sip.md", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (!gitbridge_parse_name(bad[i], &s, &p))
            fail_msg("'%s' accepted", bad[i]);
}

static void test_valid_file(void **state)
{
    (void)state;
    struct gb_instructions in = {0};
    const char *f = "---\n"
                    "defaults:\n"
                    "  requires: [dev]\n"
                    "  priority: 3\n"
                    "tasks:\n"
                    "  - id: a-1\n"
                    "    title: \"1.0\"\n"
                    "    priority: 7\n"
                    "  - id: a:2\n"
                    "    title: second\n"
                    "    depends_on: [a-1]\n"
                    "    estimate_h: 1.5\n"
                    "---\n"
                    "preamble\n"
                    "# a-1 big title\n"
                    "line one\n"
                    "~~~\n"
                    "# a:2 inside a fence\n"
                    "~~~\n"
                    "## sub\n"
                    "kept\n"
                    "# a:2: second\n"
                    "\n"
                    "body two\n"
                    "\n"
                    "# other\n"
                    "not in any task\n";
    assert_int_equal(parse(&in, "INSTRUCTIONS-a-PHASE-3.md", f), 0);
    assert_int_equal(in.ntasks, 2);
    json_t *t1 = in.tasks[0].spec, *t2 = in.tasks[1].spec;
    assert_string_equal(json_string_value(json_object_get(t1, "title")), "1.0");
    assert_int_equal(json_integer_value(json_object_get(t1, "priority")), 7);
    assert_int_equal(json_integer_value(json_object_get(t2, "priority")), 3); /* default */
    assert_string_equal(json_string_value(json_array_get(json_object_get(t2, "requires"), 0)), "dev");
    assert_string_equal(json_string_value(json_object_get(t1, "swarm")), "a");
    assert_int_equal(json_integer_value(json_object_get(t1, "phase")), 3);
    assert_string_equal(json_string_value(json_object_get(t1, "body")),
                        "line one\n~~~\n# a:2 inside a fence\n~~~\n## sub\nkept");
    assert_string_equal(json_string_value(json_object_get(t2, "body")), "body two");
    assert_int_equal(in.tasks[0].line, 6);
    assert_int_equal(in.tasks[1].line, 9);
    gitbridge_instructions_release(&in);
}

static void test_errors_at_their_line(void **state)
{
    (void)state;
    struct gb_instructions in = {0};
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "no front matter\n");
    expect_problem(&in, 1, "starts with its tasks as YAML front matter");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n");
    expect_problem(&in, 1, "never closed");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    titel: y\n---\n");
    expect_problem(&in, 4, "unknown field 'titel' (did you mean 'title'?)");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    title: y\n    swarm: b\n---\n");
    expect_problem(&in, 5, "set by the file name");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\nswarm: b\ntasks:\n  - {id: x, title: y}\n---\n");
    expect_problem(&in, 2, "file name says 'a'");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\nphase: 2\ntasks:\n  - {id: x, title: y}\n---\n");
    expect_problem(&in, 2, "disagrees with the file name");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - title: no id\n---\n");
    expect_problem(&in, 3, "field 'id' is required");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md",
          "---\ntasks:\n  - id: x\n    title: y\n  - id: x\n    title: z\n---\n");
    expect_problem(&in, 5, "appears twice");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    title: y\n    title: z\n---\n");
    expect_problem(&in, 5, "key 'title' appears twice");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md",
          "---\ntasks:\n  - id: x\n    title: y\n    min_tier: 12\n---\n");
    expect_problem(&in, 5, "field 'min_tier'");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md",
          "---\ntasks:\n  - id: x\n    title: y\n    paths: [../etc]\n---\n");
    expect_problem(&in, 5, "'..' segment");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md",
          "---\ntasks:\n  - id: x\n    title: y\n    body: inline\n---\n# x\nand a section\n");
    expect_problem(&in, 7, "has a body both in its front matter (line 5) and here");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    title: y\n---\n# x\n1\n# x\n2\n");
    expect_problem(&in, 8, "second section");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks: []\n---\n");
    expect_problem(&in, 2, "is empty");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\n- just\n- a list\n---\n");
    expect_problem(&in, 2, "must be a mapping");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    title: [oops\n---\n");
    expect_problem(&in, 4, "YAML");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    title: y\n    priority: .nan\n---\n");
    expect_problem(&in, 5, "not a finite number");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    title: y\n    priority: 99999999999999999999\n---\n");
    expect_problem(&in, 5, "out of range");
    for (size_t i = 0; i < in.nfiles; i++)
        assert_true(in.files[i].bad);
    gitbridge_instructions_release(&in);
}

static void test_hostile(void **state)
{
    (void)state;
    struct gb_instructions in = {0};
    /* a NUL byte, bytes that are not UTF-8 */
    const char nul[] = "---\ntasks:\n  - id: x\n    title: a\0b\n---\n";
    gitbridge_parse(&in, "INSTRUCTIONS-a-PHASE-1.md", nul, sizeof nul - 1);
    expect_problem(&in, 4, "not UTF-8");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "---\ntasks:\n  - id: x\n    title: \xff\xfe\n---\n");
    expect_problem(&in, 4, "not UTF-8");
    /* aliases that would expand exponentially: 10^12 nodes if converted naively */
    char *list = xstrdup("&a0 [x, x, x, x, x, x, x, x, x, x]");
    for (int i = 1; i < 12; i++) {
        char *n = xasprintf("%s, &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]",
                            list, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                            i - 1);
        free(list);
        list = n;
    }
    char *bomb = xasprintf("---\ntasks:\n  - id: x\n    title: y\n    requires: [%s]\n---\n", list);
    free(list);
    size_t before = in.nproblems;
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", bomb);
    expect_problem(&in, 5, "too large or too deeply nested");
    assert_true(in.nproblems > before);
    free(bomb);
    /* deep nesting */
    char deep[4096];
    size_t o = (size_t)snprintf(deep, sizeof deep, "---\ntasks:\n  - id: x\n    title: ");
    for (int i = 0; i < 200; i++)
        deep[o++] = '[';
    for (int i = 0; i < 200; i++)
        deep[o++] = ']';
    snprintf(deep + o, sizeof deep - o, "\n---\n");
    before = in.nproblems;
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", deep);
    expect_problem(&in, 4, "too large or too deeply nested");
    assert_true(in.nproblems > before);
    /* a bad name, an overlong one, an empty file */
    parse(&in, "INSTRUCTIONS-.md", "---\n---\n");
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md", "");
    expect_problem(&in, 1, "front matter");
    gitbridge_instructions_release(&in);
}

static json_t *obj(const char *text)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o)
        fail_msg("bad JSON in the test: %s", je.text);
    return o;
}

static char *diff(const char *want, const char *have)
{
    json_t *w = obj(want), *h = obj(have);
    json_t *d = gitbridge_diff(w, h);
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(w);
    json_decref(h);
    json_decref(d);
    return s;
}

static void expect_diff(const char *want, const char *have, const char *fields)
{
    char *s = diff(want, have);
    if (strcmp(s, fields))
        fail_msg("diff %s vs %s: got %s, want %s", want, have, s, fields);
    free(s);
}

static void test_diff(void **state)
{
    (void)state;
    const char *have = "{\"id\":\"x\",\"swarm\":\"a\",\"phase\":1,\"title\":\"t\",\"body\":\"\","
                       "\"requires\":[\"b\",\"a\"],\"min_tier\":2,\"priority\":0,\"depends_on\":[],"
                       "\"paths\":[],\"max_attempts\":3,\"lease_ms\":300000,"
                       "\"retry_backoff_ms\":1000,\"approval\":\"human\",\"phase_barrier\":true,"
                       "\"estimate_h\":0,\"estimate_usd\":0,\"max_cost\":null,\"attempts\":0,"
                       "\"state\":\"ready\"}";
    /* defaults, set order, a gate's approval: identical */
    expect_diff("{\"id\":\"x\",\"swarm\":\"a\",\"phase\":1,\"title\":\"t\",\"requires\":[\"a\",\"b\"],"
                "\"min_tier\":2}",
                have, "[]");
    expect_diff("{\"id\":\"x\",\"swarm\":\"a\",\"phase\":1,\"title\":\"T\",\"requires\":[\"a\"],"
                "\"min_tier\":2,\"priority\":1,\"body\":\"b\"}",
                have, "[\"title\",\"body\",\"requires\",\"priority\"]");
    /* min_tier: lower in the file differs before any attempt, not after (the cascade) */
    expect_diff("{\"id\":\"x\",\"swarm\":\"a\",\"phase\":1,\"title\":\"t\",\"requires\":[\"a\",\"b\"]}",
                have, "[\"min_tier\"]");
    char *h2 = xstrdup(have);
    memcpy(strstr(h2, "\"attempts\":0"), "\"attempts\":1", 12);
    expect_diff("{\"id\":\"x\",\"swarm\":\"a\",\"phase\":1,\"title\":\"t\",\"requires\":[\"a\",\"b\"]}",
                h2, "[]");
    expect_diff("{\"id\":\"x\",\"swarm\":\"a\",\"phase\":1,\"title\":\"t\",\"requires\":[\"a\",\"b\"],"
                "\"min_tier\":3}",
                h2, "[\"min_tier\"]");
    free(h2);
    /* an approval the file asks for must match */
    expect_diff("{\"id\":\"x\",\"swarm\":\"a\",\"phase\":1,\"title\":\"t\",\"requires\":[\"a\",\"b\"],"
                "\"min_tier\":2,\"approval\":\"quorum:2\"}",
                have, "[\"approval\"]");
    expect_diff("{\"id\":\"x\",\"swarm\":\"a\",\"phase\":2,\"title\":\"t\",\"requires\":[\"a\",\"b\"],"
                "\"min_tier\":2,\"max_cost\":3,\"estimate_h\":1}",
                have, "[\"phase\",\"estimate_h\",\"max_cost\"]");
}

/* ---- the import loop with fake operations ---- */

struct fake {
    json_t *existing; /* id -> task */
    int creates;
    const char *refuse_id; /* the server refuses batches holding this task */
};

static int f_lookup(void *ctx, const char *id, json_t **task, struct s2_error *err)
{
    (void)err;
    struct fake *f = ctx;
    json_t *t = json_object_get(f->existing, id);
    if (!t)
        return 0;
    *task = json_incref(t);
    return 1;
}

static int f_create(void *ctx, json_t *tasks, struct s2_error *err)
{
    struct fake *f = ctx;
    f->creates++;
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) {
        const char *id = json_string_value(json_object_get(t, "id"));
        if (f->refuse_id && !strcmp(id, f->refuse_id))
            return s2_fail(err, S2_EINVAL, "unknown_dependency",
                           "task '%s': depends_on names unknown task 'zz'", id);
    }
    json_array_foreach(tasks, i, t) {
        json_t *c = json_deep_copy(t);
        json_object_set_new(c, "attempts", json_integer(0));
        json_object_set_new(f->existing, json_string_value(json_object_get(t, "id")), c);
    }
    return 0;
}

static void test_import_loop(void **state)
{
    (void)state;
    struct gb_instructions in = {0};
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md",
          "---\ntasks:\n  - {id: a1, title: one}\n  - {id: a2, title: two}\n---\n");
    parse(&in, "INSTRUCTIONS-b-PHASE-1.md",
          "---\ntasks:\n  - {id: b1, title: one}\n  - id: b2\n    title: two\n    depends_on: [zz]\n---\n");
    parse(&in, "INSTRUCTIONS-c-PHASE-1.md", "---\ntasks:\n  - {id: c1, title: one, priority: x}\n---\n");
    struct fake f = {json_object(), 0, "b2"};
    struct gb_ops ops = {f_lookup, f_create, NULL, &f};
    json_t *rep = NULL;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(gitbridge_import(&in, &ops, 0, &rep, &err), 0);
    char *s = json_dumps(json_object_get(rep, "created"), JSON_COMPACT);
    assert_string_equal(s, "[\"a1\",\"a2\"]"); /* b's file refused as a whole, c malformed */
    free(s);
    json_t *errors = json_object_get(rep, "errors");
    assert_int_equal(json_array_size(errors), 2);
    json_t *e = json_array_get(errors, 1);
    assert_string_equal(json_string_value(json_object_get(e, "file")), "INSTRUCTIONS-b-PHASE-1.md");
    assert_int_equal(json_integer_value(json_object_get(e, "line")), 6); /* depends_on's line */
    assert_int_equal(f.creates, 2);
    json_decref(rep);
    gitbridge_instructions_release(&in);

    /* again, with a changed title: one unchanged, one conflict, nothing created */
    memset(&in, 0, sizeof in);
    parse(&in, "INSTRUCTIONS-a-PHASE-1.md",
          "---\ntasks:\n  - {id: a1, title: one}\n  - {id: a2, title: TWO}\n---\n");
    f.creates = 0;
    assert_int_equal(gitbridge_import(&in, &ops, 0, &rep, &err), 0);
    assert_int_equal(f.creates, 0);
    assert_int_equal(json_array_size(json_object_get(rep, "unchanged")), 1);
    json_t *c = json_array_get(json_object_get(rep, "conflicts"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "task")), "a2");
    assert_int_equal(json_integer_value(json_object_get(c, "line")), 4);
    json_decref(rep);
    gitbridge_instructions_release(&in);
    json_decref(f.existing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),          cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_errors_at_their_line), cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_diff),           cmocka_unit_test(test_import_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
