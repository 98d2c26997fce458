/* governor.c: policy, matching, budget arithmetic, breakers and the rate limit. No state of
 * its own and no I/O: every rule here is a function of the values it is given. Amounts are
 * integer micro-dollars so that no sum drifts. */
#include "governor.h"
#include "json.h"
#include "model.h"
#include "util/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- policy ---- */

static const struct {
    const char *name;
    int helpers;
    int64_t max_cost_usd;
    int match_permille;
    int failures;
} presets[] = {
    {"development", 5, 25, 500, 5},
    {"default", 3, 10, 700, 3},
    {"production", 2, 5, 800, 2},
};

/* A preset sets what it governs (helpers, max cost, match, breaker threshold); everything
 * else (budgets, webhook, rate limits, gates) stays as it is. */
static int preset_apply(struct policy *p, const char *name, struct s2_error *err)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(presets[i].name, name))
            continue;
        snprintf(p->preset, sizeof p->preset, "%s", name);
        p->min_match_permille = presets[i].match_permille;
        p->max_helpers = presets[i].helpers;
        p->max_cost_per_task = presets[i].max_cost_usd * S2_MICRO;
        p->breaker_failures = presets[i].failures;
        return 0;
    }
    return s2_fail(err, S2_EINVAL, "invalid_field",
                   "field 'preset': unknown preset '%.40s' (development, default or production)",
                   name);
}

void policy_default(struct policy *p)
{
    struct s2_error err = S2_ERROR_INIT;
    memset(p, 0, sizeof *p);
    p->breaker_cooldown_ms = 3600 * 1000LL;
    p->cascade = 1;
    p->blocker_escalate_ms = 30 * 60 * 1000LL;
    p->budget_alert_pct = 80;
    p->rate_limit_rps = 1000;
    p->rate_limit_burst = 2000;
    p->webhook_timeout_ms = 5000;
    p->webhook_retries = 3;
    preset_apply(p, "default", &err);
}

int policy_preset(struct policy *p, const char *name, struct s2_error *err)
{
    return preset_apply(p, name, err);
}

void policy_release(struct policy *p)
{
    free(p->webhook_url);
    p->webhook_url = NULL;
}

void policy_copy(struct policy *dst, const struct policy *src)
{
    *dst = *src;
    dst->webhook_url = src->webhook_url ? xstrdup(src->webhook_url) : NULL;
}

static int usd_field(json_t *o, const char *key, int64_t min_micro, int64_t *out,
                     struct s2_error *err)
{
    double v;
    int rc = json_num(o, key, 0, &v, "", err);
    if (rc || !json_object_get(o, key) || json_is_null(json_object_get(o, key)))
        return rc;
    char what[64];
    snprintf(what, sizeof what, "field '%s'", key);
    int64_t m;
    if (model_usd_to_micro(v, &m, what, err))
        return S2_EINVAL;
    if (m < min_micro)
        return s2_fail(err, S2_EINVAL, "invalid_field", "field '%s' must be more than $0", key);
    *out = m;
    return 0;
}

static int int_field(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t scale,
                     int64_t *out, struct s2_error *err)
{
    int64_t v;
    int rc = json_int(o, key, 0, lo, hi, &v, "", err);
    if (rc || !json_object_get(o, key) || json_is_null(json_object_get(o, key)))
        return rc;
    *out = v * scale;
    return 0;
}

int policy_from_json(struct policy *p, json_t *o, struct s2_error *err)
{
    static const char *const fields[] = {
        "preset", "min_capability_match", "max_helpers", "max_cost_per_task", "global_budget",
        "breaker_failures", "breaker_cooldown_s", "cascade", "blocker_escalate_after_s",
        "budget_alert_pct", "rate_limit_rps", "rate_limit_burst", "approve_above_usd",
        "approve_top_tier_retry", "approve_network", "webhook_url", "webhook_timeout_s",
        "webhook_retries", NULL};
    if (!json_is_object(o))
        return s2_fail(err, S2_EINVAL, "invalid_json", "policy must be a JSON object");
    if (json_only(o, fields, "", err))
        return S2_EINVAL;
    struct policy n;
    policy_copy(&n, p);
    int rc = 0;
    char *preset = NULL;
    if ((rc = json_str(o, "preset", 0, &preset, "", err)))
        goto out;
    if (preset && (rc = policy_preset(&n, preset, err)))
        goto out;
    double match = -1;
    if ((rc = json_num(o, "min_capability_match", 0, &match, "", err)))
        goto out;
    if (json_is_number(json_object_get(o, "min_capability_match"))) {
        if (!(match >= 0 && match <= 1)) {
            rc = s2_fail(err, S2_EINVAL, "invalid_field",
                         "field 'min_capability_match' must be between 0 and 1 (got %g)", match);
            goto out;
        }
        n.min_match_permille = (int)lround(match * 1000);
    }
    int64_t v;
    v = n.max_helpers;
    if ((rc = int_field(o, "max_helpers", 1, 100, 1, &v, err)))
        goto out;
    n.max_helpers = (int)v;
    if ((rc = usd_field(o, "max_cost_per_task", 1, &n.max_cost_per_task, err)) ||
        (rc = usd_field(o, "global_budget", 0, &n.global_budget, err)) ||
        (rc = usd_field(o, "approve_above_usd", 0, &n.approve_above, err)))
        goto out;
    v = n.breaker_failures;
    if ((rc = int_field(o, "breaker_failures", 1, 100, 1, &v, err)))
        goto out;
    n.breaker_failures = (int)v;
    if ((rc = int_field(o, "breaker_cooldown_s", 1, 7 * 86400, 1000, &n.breaker_cooldown_ms, err)) ||
        (rc = int_field(o, "blocker_escalate_after_s", 1, 7 * 86400, 1000, &n.blocker_escalate_ms,
                        err)) ||
        (rc = int_field(o, "webhook_timeout_s", 1, 60, 1000, &n.webhook_timeout_ms, err)))
        goto out;
    v = n.budget_alert_pct;
    if ((rc = int_field(o, "budget_alert_pct", 1, 99, 1, &v, err)))
        goto out;
    n.budget_alert_pct = (int)v;
    v = n.rate_limit_rps;
    if ((rc = int_field(o, "rate_limit_rps", 0, 1000000, 1, &v, err)))
        goto out;
    n.rate_limit_rps = (int)v;
    v = n.rate_limit_burst;
    if ((rc = int_field(o, "rate_limit_burst", 1, 10000000, 1, &v, err)))
        goto out;
    n.rate_limit_burst = (int)v;
    v = n.webhook_retries;
    if ((rc = int_field(o, "webhook_retries", 0, 10, 1, &v, err)))
        goto out;
    n.webhook_retries = (int)v;
    const char *bools[] = {"cascade", "approve_top_tier_retry", "approve_network"};
    int *bvals[] = {&n.cascade, &n.approve_top_tier_retry, &n.approve_network};
    for (int i = 0; i < 3; i++)
        if ((rc = json_bool(o, bools[i], 0, bvals[i], "", err)))
            goto out;
    json_t *wh = json_object_get(o, "webhook_url");
    if (wh && json_is_null(wh)) {
        free(n.webhook_url);
        n.webhook_url = NULL;
    } else if (wh) {
        char *url = NULL;
        if ((rc = json_str(o, "webhook_url", 0, &url, "", err)))
            goto out;
        if (strlen(url) > POLICY_WEBHOOK_MAX ||
            (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) ||
            model_check_text(url, POLICY_WEBHOOK_MAX, 0, "field 'webhook_url'", err) ||
            strpbrk(url, " \t")) {
            if (!err->kind)
                s2_fail(err, S2_EINVAL, "invalid_field",
                        "field 'webhook_url' must be an http:// or https:// URL");
            else
                s2_fail(err, S2_EINVAL, "invalid_field",
                        "field 'webhook_url' must be an http:// or https:// URL");
            free(url);
            rc = S2_EINVAL;
            goto out;
        }
        free(n.webhook_url);
        n.webhook_url = url;
    }
out:
    free(preset);
    if (rc) {
        policy_release(&n);
        return rc;
    }
    policy_release(p);
    *p = n;
    return 0;
}

json_t *policy_to_json(const struct policy *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "preset", json_string(p->preset));
    json_object_set_new(o, "min_capability_match", json_real(p->min_match_permille / 1000.0));
    json_object_set_new(o, "max_helpers", json_integer(p->max_helpers));
    json_object_set_new(o, "max_cost_per_task", json_real((double)p->max_cost_per_task / S2_MICRO));
    json_object_set_new(o, "global_budget", json_real((double)p->global_budget / S2_MICRO));
    json_object_set_new(o, "breaker_failures", json_integer(p->breaker_failures));
    json_object_set_new(o, "breaker_cooldown_s", json_integer(p->breaker_cooldown_ms / 1000));
    json_object_set_new(o, "cascade", json_boolean(p->cascade));
    json_object_set_new(o, "blocker_escalate_after_s",
                        json_integer(p->blocker_escalate_ms / 1000));
    json_object_set_new(o, "budget_alert_pct", json_integer(p->budget_alert_pct));
    json_object_set_new(o, "rate_limit_rps", json_integer(p->rate_limit_rps));
    json_object_set_new(o, "rate_limit_burst", json_integer(p->rate_limit_burst));
    json_object_set_new(o, "approve_above_usd", json_real((double)p->approve_above / S2_MICRO));
    json_object_set_new(o, "approve_top_tier_retry", json_boolean(p->approve_top_tier_retry));
    json_object_set_new(o, "approve_network", json_boolean(p->approve_network));
    json_object_set_new(o, "webhook_url", p->webhook_url ? json_string(p->webhook_url) : json_null());
    json_object_set_new(o, "webhook_timeout_s", json_integer(p->webhook_timeout_ms / 1000));
    json_object_set_new(o, "webhook_retries", json_integer(p->webhook_retries));
    return o;
}

/* ---- matching ---- */

int gov_match(const uint32_t *req, uint32_t nreq, const uint32_t *caps, uint32_t ncaps)
{
    if (nreq == 0)
        return 1000;
    uint32_t hit = 0, j = 0;
    for (uint32_t i = 0; i < nreq; i++) {
        while (j < ncaps && caps[j] < req[i])
            j++;
        if (j < ncaps && caps[j] == req[i]) {
            hit++;
            j++;
        }
    }
    return (int)((hit * 1000ULL) / nreq);
}

int gov_qualifies(const struct policy *p, int match_permille)
{
    return match_permille >= p->min_match_permille;
}

/* ---- budgets ---- */

int gov_can_reserve(const struct ledger *l, int64_t amount)
{
    if (l->limit <= 0)
        return 1;
    return l->spent + l->reserved + amount <= l->limit;
}

int64_t gov_left(const struct ledger *l)
{
    if (l->limit <= 0)
        return -1;
    int64_t left = l->limit - l->spent - l->reserved;
    return left > 0 ? left : 0;
}

int gov_level(const struct ledger *l, int alert_pct)
{
    if (l->limit <= 0)
        return 0;
    if (l->spent >= l->limit)
        return 2;
    /* spent / limit >= pct / 100, in integers */
    if ((__int128)l->spent * 100 >= (__int128)l->limit * alert_pct)
        return 1;
    return 0;
}

void gov_settle(struct ledger *l, int64_t reserved_amount, int64_t cost)
{
    l->reserved -= reserved_amount;
    if (l->reserved < 0)
        l->reserved = 0;
    l->spent += cost;
}

/* ---- breakers ---- */

const char *breaker_state_name(int s)
{
    switch (s) {
    case BRK_OPEN: return "open";
    case BRK_HALF_OPEN: return "half-open";
    default: return "closed";
    }
}

int gov_breaker_allows(struct breaker *b, const struct policy *p, int64_t now, int *changed)
{
    *changed = 0;
    if (b->state == BRK_OPEN && now - b->opened_at >= p->breaker_cooldown_ms) {
        b->state = BRK_HALF_OPEN;
        b->trial = 0;
        *changed = 1;
    }
    if (b->state == BRK_OPEN)
        return 0;
    if (b->state == BRK_HALF_OPEN)
        return !b->trial;
    return 1;
}

void gov_breaker_taken(struct breaker *b)
{
    if (b->state == BRK_HALF_OPEN)
        b->trial = 1;
}

int gov_breaker_success(struct breaker *b)
{
    int changed = b->state != BRK_CLOSED;
    b->state = BRK_CLOSED;
    b->failures = 0;
    b->trial = 0;
    return changed;
}

int gov_breaker_failure(struct breaker *b, const struct policy *p, int64_t now)
{
    b->failures++;
    /* a failed half-open trial re-opens at once; closed trips at the threshold */
    if (b->state == BRK_HALF_OPEN || (b->state == BRK_CLOSED && b->failures >= p->breaker_failures)) {
        b->state = BRK_OPEN;
        b->opened_at = now;
        b->trial = 0;
        return 1;
    }
    return 0;
}

void gov_breaker_reset(struct breaker *b)
{
    memset(b, 0, sizeof *b);
}

/* ---- rate limit ---- */

int gov_bucket_take(struct bucket *b, int rps, int burst, int64_t now_ms, int64_t *retry_after_ms)
{
    int64_t cap = (int64_t)burst * 1000;
    if (b->at_ms == 0) {
        b->tokens_milli = cap;
        b->at_ms = now_ms;
    }
    if (now_ms > b->at_ms) {
        b->tokens_milli += (now_ms - b->at_ms) * rps; /* rps tokens a second = rps milli a ms */
        if (b->tokens_milli > cap)
            b->tokens_milli = cap;
        b->at_ms = now_ms;
    }
    if (b->tokens_milli >= 1000) {
        b->tokens_milli -= 1000;
        return 0;
    }
    int64_t need = 1000 - b->tokens_milli;
    *retry_after_ms = rps > 0 ? (need + rps - 1) / rps : 1000;
    return -1;
}
