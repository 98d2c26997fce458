/* test_json: strict reading of request bodies: one object, no duplicate keys, no unknown
 * fields, typed getters with ranges and messages that name the field; outputs untouched on
 * failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "model.h"
#include "util/xalloc.h"

static json_t *parse(const char *text)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = json_parse_object(text, strlen(text), &err);
    if (!o)
        fail_msg("parse %s: %s", text, err.msg);
    return o;
}

static void expect_err(int rc, struct s2_error *err, const char *code, const char *in_msg)
{
    if (rc != S2_EINVAL)
        fail_msg("expected S2_EINVAL, got %d", rc);
    assert_string_equal(err->code, code);
    if (in_msg && !strstr(err->msg, in_msg))
        fail_msg("message '%s' does not mention '%s'", err->msg, in_msg);
    s2_error_release(err);
}

static void test_parse_object(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = json_parse_object("{\"a\":1}", 7, &err);
    assert_non_null(o);
    json_decref(o);
    /* len bounds the input: trailing bytes are not read */
    o = json_parse_object("{\"a\":1}garbage", 7, &err);
    assert_non_null(o);
    json_decref(o);

    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "empty"},
        {"[1,2]", "must be a JSON object"},
        {"\"str\"", ""}, /* jansson refuses bare scalars itself */
        {"42", ""},
        {"null", ""},
        {"[{\"a\":1}]", "must be a JSON object"},
        {"{\"a\":1,\"a\":2}", "malformed JSON"}, /* duplicate keys */
        {"{\"a\":1", "malformed JSON"},
        {"{\"a\":1}{}", "malformed JSON"},
        {"{'a':1}", "line 1"},
        {"{\"a\":\"x\\u0000y\"}", "malformed JSON"}, /* NUL inside a string */
        {"{\"a\":\"\xc3\"}", "malformed JSON"},      /* not UTF-8 */
        {"{\"a\":NaN}", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = json_parse_object(bad[i].text, strlen(bad[i].text), &err);
        if (o)
            fail_msg("accepted %s", bad[i].text);
        assert_string_equal(err.code, "invalid_json");
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("%s: '%s' lacks '%s'", bad[i].text, err.msg, bad[i].msg);
        s2_error_release(&err);
    }
}

static void test_only(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    static const char *const allowed[] = {"id", "title", "depends_on", NULL};
    json_t *o = parse("{\"id\":\"t\",\"title\":\"x\"}");
    assert_int_equal(json_only(o, allowed, "", &err), 0);
    json_decref(o);
    o = parse("{}");
    assert_int_equal(json_only(o, allowed, "", &err), 0);
    json_decref(o);

    o = parse("{\"id\":\"t\",\"depend_on\":[]}");
    expect_err(json_only(o, allowed, "tasks[2]", &err), &err, "unknown_field",
               "tasks[2]: unknown field 'depend_on'");
    expect_err(json_only(o, allowed, "", &err), &err, "unknown_field", "unknown field");
    json_decref(o);

    /* long and odd keys are clipped and made printable in the message */
    char text[512];
    char key[201];
    memset(key, 'k', 200);
    key[200] = 0;
    snprintf(text, sizeof text, "{\"%s\":1}", key);
    o = parse(text);
    assert_int_equal(json_only(o, allowed, "", &err), S2_EINVAL);
    assert_non_null(strstr(err.msg, "..."));
    assert_true(strlen(err.msg) < 120);
    s2_error_release(&err);
    json_decref(o);
    o = parse("{\"a\\nb\\u0001\":1}");
    assert_int_equal(json_only(o, allowed, "", &err), S2_EINVAL);
    assert_null(strchr(err.msg, '\n'));
    assert_null(strchr(err.msg, '\x01'));
    s2_error_release(&err);
    json_decref(o);
}

/* The message names the key as given, clipped on a character boundary: messages go back
 * inside JSON and must stay valid UTF-8 (see test_model's test_messages_are_valid_utf8). */
static void test_only_clips_utf8_keys(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT, chk = S2_ERROR_INIT;
    static const char *const allowed[] = {"id", NULL};
    char text[512], key[128];
    memset(key, 'k', 59);
    memcpy(key + 59, "\xc3\xa9\xc3\xa9", 4); /* "é" straddles the 60-byte clip */
    key[63] = 0;
    snprintf(text, sizeof text, "{\"%s\":1}", key);
    json_t *o = parse(text);
    int rc = json_only(o, allowed, "", &err);
    json_decref(o);
    assert_int_equal(rc, S2_EINVAL);
    int bad = model_check_text(err.msg, 4096, 0, "message", &chk);
    char msg[512], why[256];
    snprintf(msg, sizeof msg, "%s", err.msg);
    snprintf(why, sizeof why, "%s", chk.msg ? chk.msg : "");
    s2_error_release(&err);
    s2_error_release(&chk);
    if (bad)
        fail_msg("message is not clean UTF-8 (%s): %s", why, msg);
}

static void test_str(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = parse("{\"s\":\"caf\\u00e9\",\"n\":1,\"z\":null,\"e\":\"\"}");
    char *s = NULL;
    assert_int_equal(json_str(o, "s", 1, &s, "", &err), 0);
    assert_string_equal(s, "caf\xc3\xa9");
    /* a second read replaces (and frees) the first */
    assert_int_equal(json_str(o, "e", 1, &s, "", &err), 0);
    assert_string_equal(s, "");
    /* absent or null: fine unless required; out untouched */
    assert_int_equal(json_str(o, "missing", 0, &s, "", &err), 0);
    assert_int_equal(json_str(o, "z", 0, &s, "", &err), 0);
    assert_string_equal(s, "");
    expect_err(json_str(o, "missing", 1, &s, "tasks[1]", &err), &err, "missing_field",
               "tasks[1]: field 'missing' is required");
    expect_err(json_str(o, "z", 1, &s, "", &err), &err, "missing_field", "'z'");
    expect_err(json_str(o, "n", 1, &s, "", &err), &err, "invalid_field",
               "field 'n' must be a string");
    assert_string_equal(s, "");
    free(s);
    json_decref(o);
}

static void test_int(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = parse("{\"i\":42,\"neg\":-5,\"r\":3.0,\"f\":3.5,\"s\":\"7\",\"b\":true,"
                      "\"huge\":1e300,\"big\":9007199254740993,\"edge\":8.9e15,\"over\":9.1e15,"
                      "\"z\":null}");
    int64_t v = -1;
    assert_int_equal(json_int(o, "i", 1, 0, 100, &v, "", &err), 0);
    assert_int_equal(v, 42);
    assert_int_equal(json_int(o, "neg", 1, -10, 10, &v, "", &err), 0);
    assert_int_equal(v, -5);
    assert_int_equal(json_int(o, "r", 1, 0, 10, &v, "", &err), 0); /* 3.0 is an integer */
    assert_int_equal(v, 3);
    assert_int_equal(json_int(o, "big", 1, 0, INT64_MAX, &v, "", &err), 0);
    assert_int_equal(v, 9007199254740993LL); /* exact: not through a double */
    assert_int_equal(json_int(o, "edge", 1, 0, INT64_MAX, &v, "", &err), 0);
    assert_int_equal(v, 8900000000000000LL);

    v = 77;
    expect_err(json_int(o, "f", 1, 0, 10, &v, "", &err), &err, "invalid_field",
               "field 'f' must be an integer");
    expect_err(json_int(o, "s", 1, 0, 10, &v, "", &err), &err, "invalid_field", "integer");
    expect_err(json_int(o, "b", 1, 0, 10, &v, "", &err), &err, "invalid_field", "integer");
    expect_err(json_int(o, "huge", 1, 0, INT64_MAX, &v, "", &err), &err, "invalid_field",
               "integer");
    expect_err(json_int(o, "over", 1, 0, INT64_MAX, &v, "", &err), &err, "invalid_field",
               "integer");
    expect_err(json_int(o, "i", 1, 0, 41, &v, "tasks[0]", &err), &err, "invalid_field",
               "tasks[0]: field 'i' must be from 0 to 41 (got 42)");
    expect_err(json_int(o, "neg", 1, 0, 10, &v, "", &err), &err, "invalid_field", "(got -5)");
    expect_err(json_int(o, "nope", 1, 0, 10, &v, "", &err), &err, "missing_field", "'nope'");
    assert_int_equal(json_int(o, "nope", 0, 0, 10, &v, "", &err), 0);
    assert_int_equal(json_int(o, "z", 0, 0, 10, &v, "", &err), 0);
    assert_int_equal(v, 77); /* untouched throughout */
    json_decref(o);
}

static void test_num_and_bool(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = parse("{\"d\":2.5,\"i\":3,\"s\":\"1\",\"t\":true,\"f\":false,\"n\":0}");
    double d = -1;
    assert_int_equal(json_num(o, "d", 1, &d, "", &err), 0);
    assert_true(d == 2.5);
    assert_int_equal(json_num(o, "i", 1, &d, "", &err), 0);
    assert_true(d == 3.0);
    expect_err(json_num(o, "s", 1, &d, "", &err), &err, "invalid_field", "must be a number");
    assert_true(d == 3.0);
    expect_err(json_num(o, "x", 1, &d, "", &err), &err, "missing_field", NULL);

    int b = -1;
    assert_int_equal(json_bool(o, "t", 1, &b, "", &err), 0);
    assert_int_equal(b, 1);
    assert_int_equal(json_bool(o, "f", 1, &b, "", &err), 0);
    assert_int_equal(b, 0);
    b = 9;
    expect_err(json_bool(o, "n", 1, &b, "", &err), &err, "invalid_field", "true or false");
    expect_err(json_bool(o, "s", 0, &b, "", &err), &err, "invalid_field", NULL);
    assert_int_equal(json_bool(o, "absent", 0, &b, "", &err), 0);
    assert_int_equal(b, 9);
    json_decref(o);
}

static void test_strlist(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = parse("{\"l\":[\"a\",\"b\",\"c\"],\"e\":[],\"mixed\":[\"a\",1],"
                      "\"s\":\"a\",\"z\":null}");
    struct strvec v = STRVEC_INIT;
    assert_int_equal(json_strlist(o, "l", 1, 10, &v, "", &err), 0);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.v[2], "c");
    /* a second read replaces the list */
    assert_int_equal(json_strlist(o, "l", 1, 10, &v, "", &err), 0);
    assert_int_equal(v.n, 3);

    /* errors leave the list as it was */
    expect_err(json_strlist(o, "l", 1, 2, &v, "tasks[4]", &err), &err, "invalid_field",
               "tasks[4]: field 'l' has 3 entries (at most 2)");
    expect_err(json_strlist(o, "mixed", 1, 10, &v, "", &err), &err, "invalid_field",
               "field 'mixed[1]' must be a string");
    expect_err(json_strlist(o, "s", 1, 10, &v, "", &err), &err, "invalid_field",
               "an array of strings");
    expect_err(json_strlist(o, "z", 1, 10, &v, "", &err), &err, "missing_field", NULL);
    assert_int_equal(json_strlist(o, "absent", 0, 10, &v, "", &err), 0);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.v[0], "a");

    assert_int_equal(json_strlist(o, "e", 1, 0, &v, "", &err), 0);
    assert_int_equal(v.n, 0);
    strvec_release(&v);
    json_decref(o);
}

static void test_text(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:i,s:[s,s]}", "a", 1, "b", "x", "y\n");
    char *s = json_text(o);
    /* compact, one line (the newline is escaped) */
    assert_null(strchr(s, '\n'));
    assert_null(strstr(s, ": "));
    json_t *back = json_loads(s, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(o, back));
    json_decref(back);
    free(s);
    json_decref(o);
    json_t *str = json_string("bare");
    s = json_text(str); /* any value, not only objects */
    assert_string_equal(s, "\"bare\"");
    free(s);
    json_decref(str);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_object),
        cmocka_unit_test(test_only),
        cmocka_unit_test(test_only_clips_utf8_keys),
        cmocka_unit_test(test_str),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_num_and_bool),
        cmocka_unit_test(test_strlist),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
