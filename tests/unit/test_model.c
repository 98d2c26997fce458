/* test_model: the domain's vocabulary and input validation: state and relation names,
 * ids and capabilities, free text (control characters, UTF-8), approvals, dollar amounts,
 * pricing, and the spec checks every API input goes through. Pure functions: no I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util/xalloc.h"

/* Expect rc to be S2_EINVAL with code, the message mentioning each of the given strings. */
static void expect_invalid(int rc, struct s2_error *err, const char *code, const char *m1,
                           const char *m2)
{
    if (rc != S2_EINVAL)
        fail_msg("expected S2_EINVAL, got %d", rc);
    assert_int_equal(err->kind, S2_EINVAL);
    assert_string_equal(err->code, code);
    assert_non_null(err->msg);
    if (m1 && !strstr(err->msg, m1))
        fail_msg("message '%s' does not mention '%s'", err->msg, m1);
    if (m2 && !strstr(err->msg, m2))
        fail_msg("message '%s' does not mention '%s'", err->msg, m2);
    s2_error_release(err);
}

static void expect_ok(int rc, struct s2_error *err)
{
    if (rc)
        fail_msg("expected success, got %d: %s", rc, err->msg ? err->msg : "");
    assert_null(err->msg);
}

/* ------------------------------------------------------------------------------------ */

static void test_names(void **state)
{
    (void)state;
    for (int s = 0; s < TASK_NSTATES; s++)
        assert_int_equal(task_state_parse(task_state_name(s)), s);
    assert_string_equal(task_state_name(TASK_CANCELLED), "cancelled");
    assert_string_equal(task_state_name(TASK_NSTATES), "unknown");
    assert_string_equal(task_state_name(-1), "unknown");
    assert_int_equal(task_state_parse("Ready"), -1);
    assert_int_equal(task_state_parse(""), -1);
    assert_int_equal(task_state_parse("unknown"), -1);
    for (int r = REL_PEER; r <= REL_SUPPORT; r++)
        assert_int_equal(relation_parse(relation_name(r)), r);
    assert_int_equal(relation_parse("boss"), -1);
    assert_string_equal(relation_name(7), "unknown");
    assert_string_equal(swarm_state_name(SWARM_PAUSED), "paused");
    assert_string_equal(swarm_state_name(SWARM_TRIPPED + 1), "unknown");
}

static void test_ids(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    static const char *const good[] = {"a", "Z", "7", "session-4-sip", "a.b:c", "x-", "0.0.0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        expect_ok(model_check_id(good[i], "task id", &err), &err);
    char id[S2_ID_MAX + 2];
    memset(id, 'a', sizeof id);
    id[S2_ID_MAX] = 0;
    expect_ok(model_check_id(id, "task id", &err), &err);
    id[S2_ID_MAX] = 'a';
    id[S2_ID_MAX + 1] = 0;
    expect_invalid(model_check_id(id, "task id", &err), &err, "invalid_field", "too long",
                   "129 bytes, at most 128");

    expect_invalid(model_check_id("", "swarm id", &err), &err, "invalid_field",
                   "swarm id must not be empty", NULL);
    expect_invalid(model_check_id("-a", "task id", &err), &err, "invalid_field", "position 1",
                   "(not first)");
    expect_invalid(model_check_id(".a", "task id", &err), &err, "invalid_field", "'.'", NULL);
    expect_ok(model_check_id("a_b", "task id", &err), &err);
    expect_invalid(model_check_id("a=b", "task id", &err), &err, "invalid_field", "'='",
                   "position 2");
    expect_invalid(model_check_id("a b", "agent id", &err), &err, "invalid_field", "agent id",
                   "position 2");
    expect_invalid(model_check_id("a/b", "task id", &err), &err, "invalid_field", "'/'", NULL);
    expect_invalid(model_check_id("caf\xc3\xa9", "task id", &err), &err, "invalid_field",
                   "position 4", NULL);
    /* a control character is named as such and shown escaped, never raw */
    expect_invalid(model_check_id("ab\x01z", "task id", &err), &err, "invalid_field",
                   "control character", "ab\\x01z");
    expect_invalid(model_check_id("ab\x7f", "task id", &err), &err, "invalid_field",
                   "control character", "\\x7f");
    /* err may be NULL */
    assert_int_equal(model_check_id("", "x", NULL), S2_EINVAL);
}

/* Error messages quote what they name, clipped; a clipped quote must say so ("..."), also
 * when escaped control characters filled the room. */
static void test_quote_marks_clipping(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    char id[S2_ID_MAX * 2];
    memset(id, 'x', sizeof id);
    id[sizeof id - 1] = 0;
    assert_int_equal(model_check_id(id, "task id", &err), S2_EINVAL);
    assert_non_null(strstr(err.msg, "...'"));
    assert_true(strlen(err.msg) < 200);
    s2_error_release(&err);

    /* 26 bytes, 25 of them controls: escaped they need 101 bytes, more than the room */
    memset(id, 0x01, 26);
    id[0] = 'a';
    id[26] = 0;
    assert_int_equal(model_check_id(id, "task id", &err), S2_EINVAL);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err.msg);
    s2_error_release(&err);
    if (!strstr(msg, "...'"))
        fail_msg("clipped quote without '...': %s", msg);
}

/* Messages go back to clients inside JSON, which must be UTF-8: whatever bytes the input
 * had, the message is valid UTF-8 without control characters (quoted input clipped on a
 * character boundary, a lone byte shown escaped). http_reply_error cannot encode anything
 * else (json_pack fails, and the server aborts). */
static void expect_clean_message(int rc, struct s2_error *err, const char *what)
{
    assert_int_equal(rc, S2_EINVAL);
    struct s2_error chk = S2_ERROR_INIT;
    int bad = model_check_text(err->msg, (size_t)1 << 20, 0, "message", &chk);
    char msg[1024], why[256];
    snprintf(msg, sizeof msg, "%s", err->msg);
    snprintf(why, sizeof why, "%s", chk.msg ? chk.msg : "");
    s2_error_release(err);
    s2_error_release(&chk);
    if (bad)
        fail_msg("%s: the error message is not clean text (%s): %s", what, why, msg);
}

static void test_messages_are_valid_utf8(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    char long_e[2 * 100 + 1]; /* "ééé...": 200 bytes */
    for (int i = 0; i < 100; i++)
        memcpy(long_e + 2 * i, "\xc3\xa9", 2);
    long_e[200] = 0;
    char id_e[64];
    snprintf(id_e, sizeof id_e, "x%s", long_e + 140); /* 61 bytes: not too long */

    expect_clean_message(model_check_id("caf\xc3\xa9", "task id", &err), &err, "id café");
    expect_clean_message(model_check_id("\xe2\x82\xac", "task id", &err), &err, "id €");
    expect_clean_message(model_check_id(id_e, "task id", &err), &err, "id xéé...");
    expect_clean_message(model_check_id(long_e, "task id", &err), &err, "long id");
    expect_clean_message(model_check_id("a\xff", "task id", &err), &err, "id with 0xff");
    expect_clean_message(model_check_cap("lang/\xc3\xa9", "cap", &err), &err, "cap");
    expect_clean_message(model_parse_approval(long_e, NULL, NULL, &err), &err, "approval");
    char appr[256];
    snprintf(appr, sizeof appr, "quorum:%s", long_e);
    expect_clean_message(model_parse_approval(appr, NULL, NULL, &err), &err, "quorum:ééé");
}

static void test_capabilities(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    expect_ok(model_check_cap("lang/c++", "cap", &err), &err);
    expect_ok(model_check_cap("gpu:a100", "cap", &err), &err);
    expect_invalid(model_check_cap("+x", "cap", &err), &err, "invalid_field", "(not first)", NULL);
    expect_invalid(model_check_cap("/x", "cap", &err), &err, "invalid_field", NULL, NULL);
    expect_invalid(model_check_cap("a b", "cap", &err), &err, "invalid_field", NULL, NULL);
    expect_invalid(model_check_cap("", "cap", &err), &err, "invalid_field", "empty", NULL);

    struct strvec caps = STRVEC_INIT;
    expect_ok(model_check_caps(&caps, "field 'capabilities'", &err), &err);
    for (int i = 0; i < S2_CAPS_MAX; i++) {
        char c[16];
        snprintf(c, sizeof c, "c%d", i);
        strvec_push(&caps, c);
    }
    expect_ok(model_check_caps(&caps, "field 'capabilities'", &err), &err);
    strvec_push(&caps, "one-too-many");
    expect_invalid(model_check_caps(&caps, "field 'capabilities'", &err), &err, "invalid_field",
                   "65 entries", "at most 64");
    strvec_release(&caps);

    strvec_push(&caps, "rust");
    strvec_push(&caps, "go");
    strvec_push(&caps, "rust");
    expect_invalid(model_check_caps(&caps, "field 'requires'", &err), &err, "invalid_field",
                   "lists 'rust' twice", NULL);
    strvec_release(&caps);
    strvec_push(&caps, "ok");
    strvec_push(&caps, "not ok");
    expect_invalid(model_check_caps(&caps, "field 'requires'", &err), &err, "invalid_field",
                   "field 'requires'[1]", NULL);
    strvec_release(&caps);
}

static void test_text(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    expect_ok(model_check_text("", 10, 0, "f", &err), &err);
    expect_ok(model_check_text("plain text", 100, 0, "f", &err), &err);
    expect_ok(model_check_text("tab\there", 100, 0, "f", &err), &err);
    /* newlines and carriage returns only in multi-line text */
    expect_invalid(model_check_text("two\nlines", 100, 0, "field 'title'", &err), &err,
                   "invalid_field", "field 'title'", "0x0a at byte 4");
    expect_ok(model_check_text("two\nlines", 100, 1, "f", &err), &err);
    expect_invalid(model_check_text("cr\r", 100, 0, "f", &err), &err, "invalid_field", "0x0d",
                   NULL);
    expect_ok(model_check_text("crlf\r\n", 100, 1, "f", &err), &err);
    /* other controls never */
    expect_invalid(model_check_text("a\x01", 100, 1, "f", &err), &err, "invalid_field",
                   "0x01 at byte 2", NULL);
    expect_invalid(model_check_text("\x1b[31mred", 100, 1, "f", &err), &err, "invalid_field",
                   "0x1b at byte 1", NULL);
    expect_invalid(model_check_text("del\x7f", 100, 1, "f", &err), &err, "invalid_field", "0x7f",
                   NULL);
    /* length in bytes */
    expect_ok(model_check_text("12345", 5, 0, "f", &err), &err);
    expect_invalid(model_check_text("123456", 5, 0, "f", &err), &err, "invalid_field",
                   "6 bytes, at most 5", NULL);
    expect_invalid(model_check_text("\xc3\xa9\xc3\xa9\xc3\xa9", 5, 0, "f", &err), &err,
                   "invalid_field", "too long", NULL);
}

static void test_text_utf8(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    static const char *const good[] = {
        "caf\xc3\xa9",      /* é */
        "\xe2\x82\xac",     /* € */
        "\xf0\x9f\x98\x80", /* 😀 */
        "\xc2\x80",         /* U+0080, the smallest 2-byte */
        "\xe0\xa0\x80",     /* U+0800 */
        "\xed\x9f\xbf",     /* U+D7FF, below the surrogates */
        "\xee\x80\x80",     /* U+E000, above them */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last code point */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        expect_ok(model_check_text(good[i], 100, 0, "f", &err), &err);
    static const struct {
        const char *s;
        const char *at;
    } bad[] = {
        {"\x80", "byte 1"},             /* lone continuation */
        {"ab\xbf", "byte 3"},           /* lone continuation */
        {"\xc0\x80", "byte 1"},         /* overlong NUL */
        {"\xc1\xbf", "byte 1"},         /* overlong */
        {"\xe0\x80\x80", "byte 1"},     /* overlong 3-byte */
        {"\xed\xa0\x80", "byte 1"},     /* surrogate U+D800 */
        {"\xed\xbf\xbf", "byte 1"},     /* surrogate U+DFFF */
        {"\xf0\x80\x80\x80", "byte 1"}, /* overlong 4-byte */
        {"\xf4\x90\x80\x80", "byte 1"}, /* past U+10FFFF */
        {"\xf5\x80\x80\x80", "byte 1"},
        {"\xf8\x88\x80\x80\x80", "byte 1"}, /* 5-byte forms are gone */
        {"\xff", "byte 1"},
        {"x\xc3", "byte 2"}, /* cut short at the end */
        {"x\xe2\x82", "byte 2"},
        {"\xf0\x9f\x98", "byte 1"},
        {"\xc3(", "byte 1"}, /* continuation missing */
        {"ok \xe2\x28\xa1", "byte 4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = model_check_text(bad[i].s, 100, 1, "f", &err);
        if (rc != S2_EINVAL)
            fail_msg("bad[%zu] accepted", i);
        if (!strstr(err.msg, "not valid UTF-8") || !strstr(err.msg, bad[i].at))
            fail_msg("bad[%zu]: '%s' (expected %s)", i, err.msg, bad[i].at);
        s2_error_release(&err);
    }
}

static void test_approval(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    int kind = -7, n = -7;
    expect_ok(model_parse_approval("none", &kind, &n, &err), &err);
    assert_int_equal(kind, APPROVAL_NONE);
    assert_int_equal(n, 0);
    expect_ok(model_parse_approval("human", &kind, &n, &err), &err);
    assert_int_equal(kind, APPROVAL_HUMAN);
    assert_int_equal(n, 1);
    expect_ok(model_parse_approval("quorum:1", &kind, &n, &err), &err);
    assert_int_equal(kind, APPROVAL_QUORUM);
    assert_int_equal(n, 1);
    expect_ok(model_parse_approval("quorum:100", &kind, &n, &err), &err);
    assert_int_equal(n, 100);

    static const char *const bad[] = {"",
                                      "Human",
                                      "quorum",
                                      "quorum:",
                                      "quorum:0",
                                      "quorum:101",
                                      "quorum:-1",
                                      "quorum:+2",
                                      "quorum: 2",
                                      "quorum:2x",
                                      "quorum:2 ",
                                      "quorum:0x10",
                                      "quorum:99999999999999999999999",
                                      "none ",
                                      "quorum:3:4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kind = n = -7;
        int rc = model_parse_approval(bad[i], &kind, &n, &err);
        if (rc != S2_EINVAL)
            fail_msg("approval '%s' accepted", bad[i]);
        assert_non_null(strstr(err.msg, "none, human, quorum:N"));
        s2_error_release(&err);
        /* outputs untouched on failure */
        assert_int_equal(kind, -7);
        assert_int_equal(n, -7);
    }
    assert_int_equal(model_parse_approval("quorum:\x01", &kind, &n, &err), S2_EINVAL);
    assert_non_null(strstr(err.msg, "\\x01"));
    s2_error_release(&err);

    /* format and parse agree */
    char buf[16];
    int kinds[] = {APPROVAL_NONE, APPROVAL_HUMAN, APPROVAL_QUORUM, APPROVAL_QUORUM};
    int ns[] = {0, 1, 2, 100};
    for (size_t i = 0; i < 4; i++) {
        model_format_approval(kinds[i], ns[i], buf, sizeof buf);
        assert_int_equal(model_parse_approval(buf, &kind, &n, NULL), 0);
        assert_int_equal(kind, kinds[i]);
        assert_int_equal(n, ns[i]);
    }
    model_format_approval(APPROVAL_QUORUM, 7, buf, sizeof buf);
    assert_string_equal(buf, "quorum:7");
}

static void test_usd_to_micro(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    int64_t v = -1;
    expect_ok(model_usd_to_micro(0, &v, "field 'budget'", &err), &err);
    assert_int_equal(v, 0);
    expect_ok(model_usd_to_micro(1.5, &v, "f", &err), &err);
    assert_int_equal(v, 1500000);
    expect_ok(model_usd_to_micro(19.99, &v, "f", &err), &err);
    assert_int_equal(v, 19990000);
    expect_ok(model_usd_to_micro(0.1 + 0.2, &v, "f", &err), &err);
    assert_int_equal(v, 300000);
    expect_ok(model_usd_to_micro(0.0000006, &v, "f", &err), &err); /* to the nearest */
    assert_int_equal(v, 1);
    expect_ok(model_usd_to_micro(0.0000004, &v, "f", &err), &err);
    assert_int_equal(v, 0);
    expect_ok(model_usd_to_micro(S2_USD_MAX, &v, "f", &err), &err);
    assert_int_equal(v, 1000000000LL * S2_MICRO);
    expect_ok(model_usd_to_micro(-0.0, &v, "f", &err), &err);
    assert_int_equal(v, 0);

    static const double bad[] = {-0.01, -1e-12, -1e300, S2_USD_MAX + 1, 1e300, DBL_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        expect_invalid(model_usd_to_micro(bad[i], &v, "field 'budget'", &err), &err,
                       "invalid_field", "field 'budget'", "from 0 to 1000000000");
        assert_int_equal(v, 42); /* untouched */
    }
    v = 42;
    expect_invalid(model_usd_to_micro(NAN, &v, "f", &err), &err, "invalid_field", NULL, NULL);
    expect_invalid(model_usd_to_micro(-NAN, &v, "f", &err), &err, "invalid_field", NULL, NULL);
    expect_invalid(model_usd_to_micro(INFINITY, &v, "f", &err), &err, "invalid_field", NULL, NULL);
    expect_invalid(model_usd_to_micro(-INFINITY, &v, "f", &err), &err, "invalid_field", NULL, NULL);
    assert_int_equal(v, 42);
}

static void test_price(void **state)
{
    (void)state;
    /* sonnet: $3 / $15 per million */
    assert_int_equal(model_price(1000000, 0, 3000000, 15000000), 3000000);
    assert_int_equal(model_price(1000000, 100000, 3000000, 15000000), 4500000);
    assert_int_equal(model_price(0, 0, 3000000, 15000000), 0);
    /* to the nearest micro-dollar, halves up */
    assert_int_equal(model_price(1, 0, 500000, 0), 1);
    assert_int_equal(model_price(1, 0, 499999, 0), 0);
    assert_int_equal(model_price(3, 0, 250000, 0), 1); /* 0.75 */
    /* the largest inputs the limits allow do not overflow; past int64 it saturates */
    int64_t big_price = 1000000000LL * S2_MICRO; /* $1e9 per million tokens */
    assert_int_equal(model_price(S2_TOKENS_MAX, 0, 1, 0), 1000000);
    assert_true(model_price(S2_TOKENS_MAX, S2_TOKENS_MAX, big_price, big_price) == INT64_MAX);
    assert_int_equal(model_price(1000000, 0, big_price, 0), big_price);
}

/* ------------------------------------------------------------------------------------ */
/* specs */

static void valid_task(struct task_spec *t)
{
    task_spec_init(t);
    t->swarm = xstrdup("s");
    t->title = xstrdup("write the parser");
}

static void test_task_spec_defaults(void **state)
{
    (void)state;
    struct task_spec t;
    task_spec_init(&t);
    assert_null(t.id);
    assert_int_equal(t.phase, 1);
    assert_int_equal(t.max_attempts, S2_DEFAULT_MAX_ATTEMPTS);
    assert_int_equal(t.lease_ms, S2_DEFAULT_LEASE_MS);
    assert_int_equal(t.backoff_ms, S2_DEFAULT_BACKOFF_MS);
    assert_int_equal(t.phase_barrier, 1);
    assert_int_equal(t.approval_kind, APPROVAL_NONE);
    struct s2_error err = S2_ERROR_INIT;
    /* defaults plus the two required fields pass */
    valid_task(&t);
    expect_ok(task_spec_check(&t, "", &err), &err);
    t.body = xstrdup("step 1\nstep 2\r\n\tindented");
    strvec_push(&t.requires, "rust");
    strvec_push(&t.depends_on, "other-task");
    t.id = xstrdup("t-1");
    expect_ok(task_spec_check(&t, "", &err), &err);
    /* release leaves an initialised spec */
    task_spec_release(&t);
    assert_null(t.swarm);
    assert_null(t.title);
    assert_int_equal(t.requires.n, 0);
    assert_int_equal(t.max_attempts, S2_DEFAULT_MAX_ATTEMPTS);
    task_spec_release(&t);

    struct agent_spec a;
    agent_spec_init(&a);
    assert_int_equal(a.max_leases, 1);
    agent_spec_release(&a);
    struct usage u = {0};
    u.model = xstrdup("haiku");
    usage_release(&u);
    assert_null(u.model);
    assert_int_equal(u.usd_micro, -1);
}

static void test_task_spec_check(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    struct task_spec t;

    valid_task(&t);
    free(t.swarm);
    t.swarm = NULL;
    expect_invalid(task_spec_check(&t, "", &err), &err, "missing_field",
                   "field 'swarm' is required", NULL);
    task_spec_release(&t);

    valid_task(&t);
    free(t.title);
    t.title = NULL;
    expect_invalid(task_spec_check(&t, "tasks[3]", &err), &err, "missing_field",
                   "tasks[3]: field 'title' is required", NULL);
    t.title = xstrdup("");
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "must not be empty", NULL);
    free(t.title);
    t.title = xstrdup("two\nlines");
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "field 'title'", NULL);
    task_spec_release(&t);

    valid_task(&t);
    t.body = xstrdup("bad \x02 byte");
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "field 'body'", NULL);
    task_spec_release(&t);

    valid_task(&t);
    t.id = xstrdup("bad id");
    expect_invalid(task_spec_check(&t, "tasks[0]", &err), &err, "invalid_field",
                   "tasks[0]: task id", NULL);
    task_spec_release(&t);

    valid_task(&t);
    free(t.swarm);
    t.swarm = xstrdup("no/slash");
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "field 'swarm'", NULL);
    task_spec_release(&t);

    /* every numeric field at and past its limits */
    static const struct {
        size_t off;
        int64_t ok_lo, ok_hi, bad_lo, bad_hi;
        const char *name;
    } ranges[] = {
        {offsetof(struct task_spec, phase), 0, S2_PHASE_MAX, -1, S2_PHASE_MAX + 1, "phase"},
        {offsetof(struct task_spec, priority), -S2_PRIORITY_MAX, S2_PRIORITY_MAX,
         -S2_PRIORITY_MAX - 1, S2_PRIORITY_MAX + 1, "priority"},
        {offsetof(struct task_spec, min_tier), 0, S2_TIER_MAX, -1, S2_TIER_MAX + 1, "min_tier"},
        {offsetof(struct task_spec, max_attempts), 1, S2_ATTEMPTS_MAX, 0, S2_ATTEMPTS_MAX + 1,
         "max_attempts"},
        {offsetof(struct task_spec, lease_ms), S2_LEASE_MS_MIN, S2_LEASE_MS_MAX,
         S2_LEASE_MS_MIN - 1, S2_LEASE_MS_MAX + 1, "lease_ms"},
        {offsetof(struct task_spec, backoff_ms), 0, S2_BACKOFF_MS_MAX, -1, S2_BACKOFF_MS_MAX + 1,
         "retry_backoff_ms"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        int64_t vals[4] = {ranges[i].ok_lo, ranges[i].ok_hi, ranges[i].bad_lo, ranges[i].bad_hi};
        for (int k = 0; k < 4; k++) {
            valid_task(&t);
            memcpy((char *)&t + ranges[i].off, &vals[k], sizeof vals[k]);
            int rc = task_spec_check(&t, "tasks[2]", &err);
            if (k < 2) {
                if (rc)
                    fail_msg("%s = %lld refused: %s", ranges[i].name, (long long)vals[k], err.msg);
            } else {
                char want[64], got[48];
                snprintf(want, sizeof want, "tasks[2]: field '%s' must be from", ranges[i].name);
                snprintf(got, sizeof got, "(got %lld)", (long long)vals[k]);
                expect_invalid(rc, &err, "invalid_field", want, got);
            }
            task_spec_release(&t);
        }
    }

    static const double bad_h[] = {-1, 1e6 + 1, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_h / sizeof bad_h[0]; i++) {
        valid_task(&t);
        t.estimate_h = bad_h[i];
        expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "estimate_h", NULL);
        task_spec_release(&t);
    }

    valid_task(&t);
    strvec_push(&t.requires, "rust");
    strvec_push(&t.requires, "rust");
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "field 'requires'",
                   "twice");
    task_spec_release(&t);

    valid_task(&t);
    strvec_push(&t.depends_on, "a");
    strvec_push(&t.depends_on, "b");
    strvec_push(&t.depends_on, "a");
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field",
                   "field 'depends_on' lists 'a' twice", NULL);
    task_spec_release(&t);

    valid_task(&t);
    strvec_push(&t.depends_on, "ok");
    strvec_push(&t.depends_on, "not ok");
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "field 'depends_on[1]'",
                   NULL);
    task_spec_release(&t);

    valid_task(&t);
    for (int i = 0; i <= S2_DEPS_MAX; i++) {
        char d[16];
        snprintf(d, sizeof d, "d%d", i);
        strvec_push(&t.depends_on, d);
    }
    expect_invalid(task_spec_check(&t, "", &err), &err, "invalid_field", "257 entries",
                   "at most 256");
    task_spec_release(&t);
}

static void test_other_specs(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;

    struct swarm_spec s;
    swarm_spec_init(&s);
    expect_invalid(swarm_spec_check(&s, &err), &err, "missing_field", "'id'", NULL);
    s.id = xstrdup("session-4");
    expect_ok(swarm_spec_check(&s, &err), &err);
    s.role = xstrdup("writes\x07the docs");
    expect_invalid(swarm_spec_check(&s, &err), &err, "invalid_field", "field 'role'", NULL);
    free(s.role);
    s.role = xstrdup("writes the docs");
    strvec_push(&s.caps, "docs");
    strvec_push(&s.caps, "bad cap");
    expect_invalid(swarm_spec_check(&s, &err), &err, "invalid_field", "capabilities", NULL);
    swarm_spec_release(&s);
    assert_null(s.id);

    struct agent_spec a;
    agent_spec_init(&a);
    expect_invalid(agent_spec_check(&a, &err), &err, "missing_field", "'id'", NULL);
    a.id = xstrdup("a1");
    expect_invalid(agent_spec_check(&a, &err), &err, "missing_field", "'swarm'", NULL);
    a.swarm = xstrdup("s");
    expect_ok(agent_spec_check(&a, &err), &err);
    a.max_leases = 0;
    expect_invalid(agent_spec_check(&a, &err), &err, "invalid_field", "max_leases", NULL);
    a.max_leases = S2_LEASES_MAX + 1;
    expect_invalid(agent_spec_check(&a, &err), &err, "invalid_field", "max_leases", NULL);
    a.max_leases = S2_LEASES_MAX;
    expect_ok(agent_spec_check(&a, &err), &err);
    a.model = xstrdup("bad model");
    expect_invalid(agent_spec_check(&a, &err), &err, "invalid_field", "field 'model'", NULL);
    agent_spec_release(&a);

    struct model_spec m = {0};
    expect_invalid(model_spec_check(&m, &err), &err, "missing_field", "'name'", NULL);
    m.name = xstrdup("mini");
    m.tier = 0;
    expect_invalid(model_spec_check(&m, &err), &err, "invalid_field", "tier", NULL);
    m.tier = S2_TIER_MAX + 1;
    expect_invalid(model_spec_check(&m, &err), &err, "invalid_field", "tier", NULL);
    m.tier = S2_TIER_MAX;
    expect_ok(model_spec_check(&m, &err), &err);
    model_spec_release(&m);
    assert_null(m.name);
}

static void test_errors(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    assert_int_equal(s2_fail(&err, S2_ECONFLICT, "stale_lease", "lease %d of '%s'", 3, "t"),
                     S2_ECONFLICT);
    assert_string_equal(err.msg, "lease 3 of 't'");
    assert_string_equal(err.code, "stale_lease");
    /* a second failure replaces the first */
    s2_fail(&err, S2_EINVAL, NULL, "second");
    assert_string_equal(err.msg, "second");
    assert_string_equal(err.code, "invalid"); /* the kind's default code */
    assert_int_equal(err.kind, S2_EINVAL);
    struct s2_error dst = S2_ERROR_INIT;
    s2_error_move(&dst, &err);
    assert_string_equal(dst.msg, "second");
    assert_null(err.msg);
    assert_int_equal(err.kind, S2_OK);
    s2_error_release(&dst);
    s2_error_release(&dst);
    assert_null(dst.msg);
    assert_int_equal(s2_fail(NULL, S2_ENOTFOUND, "x", "y"), S2_ENOTFOUND);
    assert_string_equal(s2_err_code(S2_ENOTFOUND), "not_found");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_quote_marks_clipping),
        cmocka_unit_test(test_messages_are_valid_utf8),
        cmocka_unit_test(test_capabilities),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_text_utf8),
        cmocka_unit_test(test_approval),
        cmocka_unit_test(test_usd_to_micro),
        cmocka_unit_test(test_price),
        cmocka_unit_test(test_task_spec_defaults),
        cmocka_unit_test(test_task_spec_check),
        cmocka_unit_test(test_other_specs),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
