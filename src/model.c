/* model.c: names, limits and spec validation. Pure functions. */
#include "model.h"
#include "util/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {"pending", "ready",  "claimed",
                                          "done",    "dead",   "cancelled"};
static const char *const relation_names[] = {"peer", "critical", "support"};
static const char *const swarm_state_names[] = {"active", "paused", "tripped"};

const char *task_state_name(int s)
{
    return s >= 0 && s < TASK_NSTATES ? state_names[s] : "unknown";
}

int task_state_parse(const char *s)
{
    for (int i = 0; i < TASK_NSTATES; i++)
        if (!strcmp(s, state_names[i]))
            return i;
    return -1;
}

const char *relation_name(int r)
{
    return r >= 0 && r <= REL_SUPPORT ? relation_names[r] : "unknown";
}

int relation_parse(const char *s)
{
    for (int i = 0; i <= REL_SUPPORT; i++)
        if (!strcmp(s, relation_names[i]))
            return i;
    return -1;
}

const char *swarm_state_name(int s)
{
    return s >= 0 && s <= SWARM_TRIPPED ? swarm_state_names[s] : "unknown";
}

/* Quote a user string for an error message, clipped and with controls escaped. Clipping
 * never splits a UTF-8 character (the message must stay valid UTF-8 to go out as JSON). */
static void quote(char *out, size_t outlen, const char *s)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        char one[8];
        int l = 1;
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(one, sizeof one, "\\x%02x", *p);
        } else if (*p < 0x80 || (l = model_utf8_len((const char *)p)) > 0) {
            memcpy(one, p, (size_t)l);
            one[l] = 0;
        } else {
            l = 1;
            snprintf(one, sizeof one, "\\x%02x", *p);
        }
        size_t n = strlen(one);
        if (o + n + 4 > outlen) /* keep room for "..." and the NUL */
            break;
        memcpy(out + o, one, n);
        o += n;
        p += l;
    }
    snprintf(out + o, outlen - o, "%s", *p ? "..." : "");
}

static int check_name(const char *s, size_t max, const char *extra, const char *what,
                      struct s2_error *err)
{
    char q[80];
    size_t n = strlen(s);
    if (n == 0)
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s must not be empty", what);
    if (n > max) {
        quote(q, 40, s);
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s '%s' is too long (%zu bytes, at most %zu)",
                       what, q, n, max);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!ok && i > 0 && strchr(extra, c) && c)
            ok = 1;
        if (!ok) {
            quote(q, sizeof q, s);
            if (c < 0x20 || c == 0x7f)
                return s2_fail(err, S2_EINVAL, "invalid_field",
                               "%s '%s' contains a control character", what, q);
            /* name the whole character: one byte of a UTF-8 sequence is not text */
            int l = c < 0x80 ? 1 : model_utf8_len(s + i);
            return s2_fail(err, S2_EINVAL, "invalid_field",
                           "%s '%s' has '%.*s' at position %zu: use letters, digits and %s%s",
                           what, q, l ? l : 1, l ? s + i : "?", i + 1, extra,
                           i == 0 ? " (not first)" : "");
        }
    }
    return 0;
}

int model_check_id(const char *id, const char *what, struct s2_error *err)
{
    return check_name(id, S2_ID_MAX, "._:-", what, err);
}

int model_check_cap(const char *cap, const char *what, struct s2_error *err)
{
    return check_name(cap, S2_CAP_MAX, "._:/+-", what, err);
}

int model_check_caps(const struct strvec *caps, const char *what, struct s2_error *err)
{
    if (caps->n > S2_CAPS_MAX)
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s has %zu entries (at most %d)", what,
                       caps->n, S2_CAPS_MAX);
    for (size_t i = 0; i < caps->n; i++) {
        char w[64];
        snprintf(w, sizeof w, "%s[%zu]", what, i);
        if (model_check_cap(caps->v[i], w, err))
            return S2_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(caps->v[i], caps->v[j]))
                return s2_fail(err, S2_EINVAL, "invalid_field", "%s lists '%s' twice", what,
                               caps->v[i]);
    }
    return 0;
}

int model_utf8_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (p[0] < 0x80)
        return 1;
    int n = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n || (n == 2 && p[0] < 0xc2) || (n == 4 && p[0] > 0xf4))
        return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && p[0] == 0xe0 && p[1] < 0xa0)
        return 0; /* overlong */
    if (n == 3 && p[0] == 0xed && p[1] >= 0xa0)
        return 0; /* surrogate */
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
        return 0;
    return n;
}

int model_check_text(const char *s, size_t max, int multiline, const char *what,
                     struct s2_error *err)
{
    size_t n = strlen(s);
    if (n > max)
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s is too long (%zu bytes, at most %zu)",
                       what, n, max);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p < 0x20 || *p == 0x7f) {
            int ok = *p == '\t' || (multiline && (*p == '\n' || *p == '\r'));
            if (!ok)
                return s2_fail(err, S2_EINVAL, "invalid_field",
                               "%s contains control character 0x%02x at byte %zu", what, *p,
                               (size_t)(p - (const unsigned char *)s) + 1);
            p++;
            continue;
        }
        int l = model_utf8_len((const char *)p);
        if (!l)
            return s2_fail(err, S2_EINVAL, "invalid_field", "%s is not valid UTF-8 at byte %zu",
                           what, (size_t)(p - (const unsigned char *)s) + 1);
        p += l;
    }
    return 0;
}

int model_parse_approval(const char *s, int *kind, int *n, struct s2_error *err)
{
    if (!strcmp(s, "none")) {
        *kind = APPROVAL_NONE, *n = 0;
        return 0;
    }
    if (!strcmp(s, "human")) {
        *kind = APPROVAL_HUMAN, *n = 1;
        return 0;
    }
    if (!strncmp(s, "quorum:", 7)) {
        char *end;
        long v = strtol(s + 7, &end, 10);
        if (s[7] >= '0' && s[7] <= '9' && !*end && v >= 1 && v <= 100) {
            *kind = APPROVAL_QUORUM, *n = (int)v;
            return 0;
        }
    }
    char q[80];
    quote(q, sizeof q, s);
    return s2_fail(err, S2_EINVAL, "invalid_field",
                   "approval '%s' is not one of none, human, quorum:N (N from 1 to 100)", q);
}

void model_format_approval(int kind, int n, char *out, size_t outlen)
{
    if (kind == APPROVAL_HUMAN)
        snprintf(out, outlen, "human");
    else if (kind == APPROVAL_QUORUM)
        snprintf(out, outlen, "quorum:%d", n);
    else
        snprintf(out, outlen, "none");
}

int model_usd_to_micro(double usd, int64_t *out, const char *what, struct s2_error *err)
{
    if (!isfinite(usd) || usd < 0 || usd > S2_USD_MAX)
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "%s must be a number of US dollars from 0 to %.0f", what, S2_USD_MAX);
    *out = (int64_t)llround(usd * (double)S2_MICRO);
    return 0;
}

int64_t model_price(int64_t tokens_in, int64_t tokens_out, int64_t usd_in_micro,
                    int64_t usd_out_micro)
{
    /* tokens <= 1e12 and prices <= 1e15 micro: split to stay inside int64 */
    __int128 v = (__int128)tokens_in * usd_in_micro + (__int128)tokens_out * usd_out_micro;
    v = (v + 500000) / 1000000;
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

void swarm_spec_init(struct swarm_spec *s)
{
    memset(s, 0, sizeof *s);
}

void swarm_spec_release(struct swarm_spec *s)
{
    free(s->id);
    free(s->role);
    free(s->branch);
    strvec_release(&s->caps);
    swarm_spec_init(s);
}

void agent_spec_init(struct agent_spec *a)
{
    memset(a, 0, sizeof *a);
    a->max_leases = 1;
}

void agent_spec_release(struct agent_spec *a)
{
    free(a->id);
    free(a->swarm);
    free(a->model);
    strvec_release(&a->caps);
    agent_spec_init(a);
}

void model_spec_release(struct model_spec *m)
{
    free(m->name);
    memset(m, 0, sizeof *m);
}

void task_spec_init(struct task_spec *t)
{
    memset(t, 0, sizeof *t);
    t->max_attempts = S2_DEFAULT_MAX_ATTEMPTS;
    t->lease_ms = S2_DEFAULT_LEASE_MS;
    t->backoff_ms = S2_DEFAULT_BACKOFF_MS;
    t->phase_barrier = 1;
    t->min_tier = 0;
    t->phase = 1;
}

void task_spec_release(struct task_spec *t)
{
    free(t->id);
    free(t->swarm);
    free(t->title);
    free(t->body);
    strvec_release(&t->requires);
    strvec_release(&t->depends_on);
    strvec_release(&t->paths);
    free(t->help_for);
    task_spec_init(t);
}

void usage_release(struct usage *u)
{
    free(u->model);
    memset(u, 0, sizeof *u);
    u->usd_micro = -1;
}

int swarm_spec_check(const struct swarm_spec *s, struct s2_error *err)
{
    if (!s->id)
        return s2_fail(err, S2_EINVAL, "missing_field", "field 'id' is required");
    if (model_check_id(s->id, "swarm id", err))
        return S2_EINVAL;
    if (s->role && model_check_text(s->role, S2_TEXT_MAX, 0, "field 'role'", err))
        return S2_EINVAL;
    if (s->branch && model_check_text(s->branch, S2_ID_MAX * 2, 0, "field 'branch'", err))
        return S2_EINVAL;
    return model_check_caps(&s->caps, "field 'capabilities'", err);
}

int agent_spec_check(const struct agent_spec *a, struct s2_error *err)
{
    if (!a->id)
        return s2_fail(err, S2_EINVAL, "missing_field", "field 'id' is required");
    if (!a->swarm)
        return s2_fail(err, S2_EINVAL, "missing_field", "field 'swarm' is required");
    if (model_check_id(a->id, "agent id", err) || model_check_id(a->swarm, "field 'swarm'", err))
        return S2_EINVAL;
    if (a->model && model_check_id(a->model, "field 'model'", err))
        return S2_EINVAL;
    if (a->max_leases < 1 || a->max_leases > S2_LEASES_MAX)
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "field 'max_leases' must be from 1 to %d", S2_LEASES_MAX);
    return model_check_caps(&a->caps, "field 'capabilities'", err);
}

int model_spec_check(const struct model_spec *m, struct s2_error *err)
{
    if (!m->name)
        return s2_fail(err, S2_EINVAL, "missing_field", "field 'name' is required");
    if (model_check_id(m->name, "model name", err))
        return S2_EINVAL;
    if (m->tier < 1 || m->tier > S2_TIER_MAX)
        return s2_fail(err, S2_EINVAL, "invalid_field", "field 'tier' must be from 1 to %d",
                       S2_TIER_MAX);
    return 0;
}

static int range(int64_t v, int64_t lo, int64_t hi, const char *prefix, const char *field,
                 struct s2_error *err)
{
    if (v >= lo && v <= hi)
        return 0;
    return s2_fail(err, S2_EINVAL, "invalid_field", "%s%sfield '%s' must be from %lld to %lld (got %lld)",
                   prefix, *prefix ? ": " : "", field, (long long)lo, (long long)hi, (long long)v);
}

int model_check_path(const char *p, const char *what, struct s2_error *err)
{
    size_t n = strlen(p);
    if (n == 0 || n > S2_PATH_MAX)
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s must be 1..%d bytes", what,
                       S2_PATH_MAX);
    if (model_check_text(p, S2_PATH_MAX, 0, what, err))
        return S2_EINVAL;
    if (p[0] == '/' || strchr(p, '\\'))
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "%s '%.80s' must be a relative path with '/' separators", what, p);
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
            return s2_fail(err, S2_EINVAL, "invalid_field",
                           "%s '%.80s' has an empty, '.' or '..' segment", what, p);
        s += l;
        if (*s == '/')
            s++;
    }
    return 0;
}

/* The literal directory part of a glob: its segments before the first with a wildcard. */
static size_t literal_prefix(const char *g, int *whole)
{
    size_t end = 0;
    const char *s = g;
    *whole = 1;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (memchr(s, '*', l) || memchr(s, '?', l) || memchr(s, '[', l)) {
            *whole = 0;
            return end;
        }
        end = (size_t)(s - g) + l;
        s += l;
        if (*s == '/')
            s++;
    }
    return end;
}

int model_paths_overlap(const char *a, const char *b)
{
    int wa, wb;
    size_t la = literal_prefix(a, &wa), lb = literal_prefix(b, &wb);
    if (wa && wb) /* two plain paths: the same, or one a directory of the other */
        return (la == lb && !memcmp(a, b, la)) ||
               (la < lb && !memcmp(a, b, la) && b[la] == '/') ||
               (lb < la && !memcmp(a, b, lb) && a[lb] == '/');
    /* a wildcard below a directory may reach anything under it */
    size_t l = la < lb ? la : lb;
    if (memcmp(a, b, l))
        return 0;
    if (la == lb)
        return 1;
    const char *longer = la > lb ? a : b;
    return l == 0 || longer[l] == '/';
}

int task_spec_check(const struct task_spec *t, const char *prefix, struct s2_error *err)
{
    char w[96];
    const char *sep = *prefix ? ": " : "";
    if (t->id) {
        snprintf(w, sizeof w, "%s%stask id", prefix, sep);
        if (model_check_id(t->id, w, err))
            return S2_EINVAL;
    }
    if (!t->swarm)
        return s2_fail(err, S2_EINVAL, "missing_field", "%s%sfield 'swarm' is required", prefix,
                       sep);
    snprintf(w, sizeof w, "%s%sfield 'swarm'", prefix, sep);
    if (model_check_id(t->swarm, w, err))
        return S2_EINVAL;
    if (!t->title)
        return s2_fail(err, S2_EINVAL, "missing_field", "%s%sfield 'title' is required", prefix,
                       sep);
    snprintf(w, sizeof w, "%s%sfield 'title'", prefix, sep);
    if (!*t->title)
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s must not be empty", w);
    if (model_check_text(t->title, S2_TITLE_MAX, 0, w, err))
        return S2_EINVAL;
    snprintf(w, sizeof w, "%s%sfield 'body'", prefix, sep);
    if (t->body && model_check_text(t->body, S2_BODY_MAX, 1, w, err))
        return S2_EINVAL;
    if (range(t->phase, 0, S2_PHASE_MAX, prefix, "phase", err) ||
        range(t->priority, -S2_PRIORITY_MAX, S2_PRIORITY_MAX, prefix, "priority", err) ||
        range(t->min_tier, 0, S2_TIER_MAX, prefix, "min_tier", err) ||
        range(t->max_attempts, 1, S2_ATTEMPTS_MAX, prefix, "max_attempts", err) ||
        range(t->lease_ms, S2_LEASE_MS_MIN, S2_LEASE_MS_MAX, prefix, "lease_ms", err) ||
        range(t->backoff_ms, 0, S2_BACKOFF_MS_MAX, prefix, "retry_backoff_ms", err))
        return S2_EINVAL;
    if (!isfinite(t->estimate_h) || t->estimate_h < 0 || t->estimate_h > 1e6)
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "%s%sfield 'estimate_h' must be from 0 to 1000000 hours", prefix, sep);
    snprintf(w, sizeof w, "%s%sfield 'requires'", prefix, sep);
    if (model_check_caps(&t->requires, w, err))
        return S2_EINVAL;
    if (t->paths.n > S2_PATHS_MAX)
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s%sfield 'paths' holds at most %d globs",
                       prefix, sep, S2_PATHS_MAX);
    for (size_t i = 0; i < t->paths.n; i++) {
        snprintf(w, sizeof w, "%s%sfield 'paths'[%zu]", prefix, sep, i);
        if (model_check_path(t->paths.v[i], w, err))
            return S2_EINVAL;
    }
    if (t->depends_on.n > S2_DEPS_MAX)
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "%s%sfield 'depends_on' has %zu entries (at most %d)", prefix, sep,
                       t->depends_on.n, S2_DEPS_MAX);
    for (size_t i = 0; i < t->depends_on.n; i++) {
        snprintf(w, sizeof w, "%s%sfield 'depends_on[%zu]'", prefix, sep, i);
        if (model_check_id(t->depends_on.v[i], w, err))
            return S2_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->depends_on.v[i], t->depends_on.v[j]))
                return s2_fail(err, S2_EINVAL, "invalid_field",
                               "%s%sfield 'depends_on' lists '%s' twice", prefix, sep,
                               t->depends_on.v[i]);
    }
    return 0;
}
