/* plan.c: reading plan files. libyaml's event API builds a compact tree that keeps the
 * line:column of every node (no aliases: a plan is written out, so a billion-laughs file
 * is an error, not a hang); a walk then reads the tree into struct plan, reporting every
 * unknown key, wrong type and out-of-range value it meets, and plan_check (plan_check.c)
 * judges the whole. Nothing here may crash or stop early on bad input except a YAML syntax
 * error, after which there is no tree to walk. */
#include "plan.h"
#include "governor.h"
#include "util/xalloc.h"
#include "util/fs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "banned.h"

/* ------------------------------------------------------------------------------------ */
/* tables */

const struct plan_default_model plan_default_models[3] = {
    {"haiku", 1, 0.25, 1.25},
    {"sonnet", 2, 3.00, 15.00},
    {"opus", 3, 15.00, 75.00},
};

/* The governor's policy keys (PUT /v1/policy), their types and ranges. */
const struct plan_policy_keydef plan_policy_keys[PK_NKEYS] = {
    [PK_PRESET] = {"preset", PV_PRESET, 0, 0},
    [PK_MIN_CAPABILITY_MATCH] = {"min_capability_match", PV_RATIO, 0, 0},
    [PK_MAX_HELPERS] = {"max_helpers", PV_INT, 1, 100},
    [PK_MAX_COST_PER_TASK] = {"max_cost_per_task", PV_USD_POSITIVE, 0, 0},
    [PK_GLOBAL_BUDGET] = {"global_budget", PV_USD, 0, 0},
    [PK_BREAKER_FAILURES] = {"breaker_failures", PV_INT, 1, 100},
    [PK_BREAKER_COOLDOWN_S] = {"breaker_cooldown_s", PV_INT, 1, 7 * 86400},
    [PK_CASCADE] = {"cascade", PV_BOOL, 0, 0},
    [PK_BLOCKER_ESCALATE_AFTER_S] = {"blocker_escalate_after_s", PV_INT, 1, 7 * 86400},
    [PK_BUDGET_ALERT_PCT] = {"budget_alert_pct", PV_INT, 1, 99},
    [PK_RATE_LIMIT_RPS] = {"rate_limit_rps", PV_INT, 0, 1000000},
    [PK_RATE_LIMIT_BURST] = {"rate_limit_burst", PV_INT, 1, 10000000},
    [PK_APPROVE_ABOVE_USD] = {"approve_above_usd", PV_USD, 0, 0},
    [PK_APPROVE_TOP_TIER_RETRY] = {"approve_top_tier_retry", PV_BOOL, 0, 0},
    [PK_APPROVE_NETWORK] = {"approve_network", PV_BOOL, 0, 0},
    [PK_WEBHOOK_URL] = {"webhook_url", PV_URL, 0, 0},
    [PK_WEBHOOK_TIMEOUT_S] = {"webhook_timeout_s", PV_INT, 1, 60},
    [PK_WEBHOOK_RETRIES] = {"webhook_retries", PV_INT, 0, 10},
};

const char *const plan_limit_names[PL_NLIMITS] = {
    "max_memory_mb", "max_cpu_percent", "max_api_calls_per_second",
    "max_execution_time_seconds", "max_pids"};
/* a terabyte of memory, 64 CPUs, a million calls a second, a week, a million pids (the
 * API takes 1 to 1000000 for each) */
const int64_t plan_limit_max[PL_NLIMITS] = {1000000, 6400, 1000000, 7 * 86400, 1000000};
const char *const plan_slo_names[PS_NSLOS] = {"p99_latency_ms", "success_rate", "availability"};

int plan_preset(const char *name, struct plan_policy_eff *out)
{
    /* the governor's presets (governor.c) are the one source of these values */
    static const char *const names[] = {"development", "default", "production"};
    struct policy pol;
    memset(&pol, 0, sizeof pol);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i], name) || policy_preset(&pol, names[i], NULL))
            continue;
        out->preset = names[i];
        out->min_capability_match = pol.min_match_permille / 1000.0;
        out->max_helpers = pol.max_helpers;
        out->max_cost_per_task_micro = pol.max_cost_per_task;
        out->breaker_failures = pol.breaker_failures;
        policy_release(&pol);
        return 0;
    }
    return -1;
}

void plan_policy_effective(const struct plan_policy *pol, struct plan_policy_eff *out)
{
    const struct plan_policy_value *v = pol->v;
    if (!v[PK_PRESET].set || plan_preset(v[PK_PRESET].s, out))
        plan_preset("default", out);
    if (v[PK_MIN_CAPABILITY_MATCH].set)
        out->min_capability_match = v[PK_MIN_CAPABILITY_MATCH].num;
    if (v[PK_MAX_HELPERS].set)
        out->max_helpers = v[PK_MAX_HELPERS].i;
    if (v[PK_MAX_COST_PER_TASK].set)
        out->max_cost_per_task_micro = v[PK_MAX_COST_PER_TASK].i;
    if (v[PK_BREAKER_FAILURES].set)
        out->breaker_failures = v[PK_BREAKER_FAILURES].i;
}

/* ------------------------------------------------------------------------------------ */
/* errors and small helpers */

void plan_errorf(struct plan *p, struct plan_pos at, const char *fmt, ...)
{
    if (p->nerrors >= PLAN_ERRORS_MAX) {
        p->errors_dropped++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    p->errors = xgrow(p->errors, sizeof *p->errors, p->nerrors + 1, &p->errors_cap);
    p->errors[p->nerrors].at = at;
    p->errors[p->nerrors].msg = msg;
    p->nerrors++;
}

void plan_print_errors(const struct plan *p, FILE *f)
{
    for (size_t i = 0; i < p->nerrors; i++) {
        const struct plan_error *e = &p->errors[i];
        if (e->at.line)
            fprintf(f, "%s:%u:%u: %s\n", p->file, e->at.line, e->at.col, e->msg);
        else
            fprintf(f, "%s: %s\n", p->file, e->msg);
    }
    if (p->errors_dropped)
        fprintf(f, "%s: %zu more errors not shown\n", p->file, p->errors_dropped);
}

/* A user string for a message: clipped to about 60 bytes on a character boundary, control
 * characters escaped. Returned by value so that it can sit in an argument list. */
struct quoted {
    char s[80];
};
struct described {
    char s[96];
};
static struct quoted Q(const char *s)
{
    struct quoted q;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        char one[8];
        int l = 1;
        if (*p < 0x20 || *p == 0x7f)
            snprintf(one, sizeof one, "\\x%02x", *p);
        else if (*p < 0x80 || (l = model_utf8_len((const char *)p)) > 0) {
            memcpy(one, p, (size_t)l);
            one[l] = 0;
        } else {
            l = 1;
            snprintf(one, sizeof one, "\\x%02x", *p);
        }
        size_t n = strlen(one);
        if (o + n > 60)
            break;
        memcpy(q.s + o, one, n);
        o += n;
        p += l;
    }
    snprintf(q.s + o, sizeof q.s - o, "%s", *p ? "..." : "");
    return q;
}

size_t plan_distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if ((la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    if (la > 256 || lb > 256)
        return strcmp(a, b) ? cap + 1 : 0;
    size_t *prev2 = xcalloc(lb + 1, sizeof *prev2), *prev = xcalloc(lb + 1, sizeof *prev),
           *cur = xcalloc(lb + 1, sizeof *cur);
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    size_t d = cap + 1;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        size_t rowmin = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = prev[j - 1] + cost;
            if (prev[j] + 1 < v)
                v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1; /* transposition */
            cur[j] = v;
            if (v < rowmin)
                rowmin = v;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
        if (rowmin > cap)
            goto out; /* every path from here costs more than the cap */
    }
    d = prev[lb] > cap ? cap + 1 : prev[lb];
out:
    free(prev2);
    free(prev);
    free(cur);
    return d;
}

const char *plan_suggest(const char *s, const char *const *cand, size_t n)
{
    size_t len = strlen(s);
    size_t cap = len < 4 ? 1 : len < 9 ? 2 : 3;
    const char *best = NULL;
    size_t bd = cap + 1;
    for (size_t i = 0; i < n; i++) {
        if (!cand[i] || !strcmp(cand[i], s))
            continue;
        size_t d = plan_distance(s, cand[i], bd - 1 < cap ? bd - 1 : cap);
        if (d < bd) {
            bd = d;
            best = cand[i];
            if (d == 1)
                cap = 1; /* nothing beats one edit but another one edit: keep the first */
        }
    }
    return bd <= cap ? best : NULL;
}

/* ------------------------------------------------------------------------------------ */
/* the YAML tree */

enum { Y_SCALAR, Y_SEQ, Y_MAP, Y_BAD };
enum { YT_NONE, YT_STR, YT_INT, YT_FLOAT, YT_BOOL, YT_NULL, YT_SEQ, YT_MAP };

struct ynode {
    uint8_t kind;  /* Y_* */
    uint8_t plain; /* a plain scalar without a tag: its type comes from its text */
    uint8_t tag;   /* YT_*: an explicit standard tag */
    uint32_t line, col;
    uint32_t a, n; /* scalar: offset in text, length; collection: first kid, kid count */
};

struct ytree {
    struct ynode *v;
    size_t n, cap;
    uint32_t *kids; /* collections' children, each collection's contiguous */
    size_t nkids, kids_cap;
    struct buf text; /* scalars, each followed by a NUL */
    int root;        /* index of the root node, -1 if none */
};

static void tree_release(struct ytree *t)
{
    free(t->v);
    free(t->kids);
    buf_release(&t->text);
}

static struct plan_pos mark_pos(yaml_mark_t m)
{
    return (struct plan_pos){(uint32_t)m.line + 1, (uint32_t)m.column + 1};
}

/* Line and column (in characters) of a byte offset: reader errors carry only the offset. */
static struct plan_pos offset_pos(const char *data, size_t len, size_t off)
{
    struct plan_pos at = {1, 1};
    for (size_t i = 0; i < off && i < len; i++) {
        if (data[i] == '\n') {
            at.line++;
            at.col = 1;
        } else if (((unsigned char)data[i] & 0xc0) != 0x80) {
            at.col++;
        }
    }
    return at;
}

static int tag_of(const char *tag)
{
    static const struct {
        const char *name;
        int t;
    } tags[] = {{YAML_STR_TAG, YT_STR},     {YAML_INT_TAG, YT_INT},   {YAML_FLOAT_TAG, YT_FLOAT},
                {YAML_BOOL_TAG, YT_BOOL},   {YAML_NULL_TAG, YT_NULL}, {YAML_SEQ_TAG, YT_SEQ},
                {YAML_MAP_TAG, YT_MAP},     {"!", YT_NONE}};
    if (!tag)
        return YT_NONE;
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        if (!strcmp(tag, tags[i].name))
            return tags[i].t;
    return -1;
}

static uint32_t new_node(struct ytree *t, int kind, yaml_mark_t m)
{
    t->v = xgrow(t->v, sizeof *t->v, t->n + 1, &t->cap);
    struct ynode *n = &t->v[t->n];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = (uint32_t)m.line + 1;
    n->col = (uint32_t)m.column + 1;
    return (uint32_t)t->n++;
}

struct frame {
    uint32_t node;
    size_t first; /* where its children start on the pending stack */
};

/* Check a node's anchor and tag; 0 if fine, else the node is marked bad (error reported). */
static void node_props(struct plan *p, struct ytree *t, uint32_t ni, const yaml_char_t *anchor,
                       const yaml_char_t *tag, int want)
{
    struct ynode *n = &t->v[ni];
    struct plan_pos at = {n->line, n->col};
    if (anchor)
        plan_errorf(p, at, "anchors ('&%s') are not supported in plans: write the value out",
                    Q((const char *)anchor).s);
    int tg = tag_of((const char *)tag);
    if (tg < 0) {
        plan_errorf(p, at, "unsupported tag '%s' (plans use plain YAML values)",
                    Q((const char *)tag).s);
        n->kind = Y_BAD;
        return;
    }
    if (want && tg != YT_NONE && tg != want) {
        plan_errorf(p, at, "tag '%s' does not fit a %s", Q((const char *)tag).s,
                    want == YT_SEQ ? "list" : "mapping");
        n->kind = Y_BAD;
        return;
    }
    n->tag = (uint8_t)tg;
}

/* Build the tree from the event stream. Returns 0 if a complete tree was built (it may
 * still hold Y_BAD nodes, with their errors reported), -1 on a fatal error. */
static int build_tree(struct plan *p, struct ytree *t, const char *data, size_t len)
{
    yaml_parser_t ps;
    yaml_event_t ev;
    struct frame *stack = NULL;
    size_t depth = 0, stack_cap = 0;
    uint32_t *pending = NULL;
    size_t npending = 0, pending_cap = 0;
    int ndocs = 0, rc = -1, done = 0;

    t->root = -1;
    buf_init(&t->text, 0);
    if (!yaml_parser_initialize(&ps)) {
        plan_errorf(p, (struct plan_pos){0, 0}, "cannot initialise the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&ps, (const unsigned char *)data, len);
    while (!done) {
        if (!yaml_parser_parse(&ps, &ev)) {
            const char *problem = ps.problem ? ps.problem : "malformed YAML";
            if (ps.error == YAML_READER_ERROR) {
                struct plan_pos at = offset_pos(data, len, ps.problem_offset);
                if (ps.problem_value >= 0)
                    plan_errorf(p, at, "the file is not UTF-8 text: %s (byte 0x%02x)", problem,
                                (unsigned)ps.problem_value & 0xff);
                else
                    plan_errorf(p, at, "the file is not UTF-8 text: %s", problem);
            } else if (ps.context) {
                plan_errorf(p, mark_pos(ps.problem_mark), "invalid YAML: %s %s at %zu:%zu",
                            problem, ps.context, ps.context_mark.line + 1,
                            ps.context_mark.column + 1);
            } else {
                plan_errorf(p, mark_pos(ps.problem_mark), "invalid YAML: %s", problem);
            }
            goto out;
        }
        int fatal = 0;
        uint32_t made = UINT32_MAX; /* a completed node to hand to its parent */
        if (t->n >= PLAN_NODES_MAX) {
            plan_errorf(p, mark_pos(ev.start_mark),
                        "the plan has more than %u values: split it into several plans",
                        PLAN_NODES_MAX);
            fatal = 1;
        }
        switch (fatal ? YAML_NO_EVENT : ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs > 1) {
                plan_errorf(p, mark_pos(ev.start_mark),
                            "a second YAML document starts here: a plan is one document");
                fatal = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            made = new_node(t, Y_BAD, ev.start_mark);
            plan_errorf(p, mark_pos(ev.start_mark),
                        "aliases ('*%s') are not supported in plans: write the value out",
                        Q((const char *)ev.data.alias.anchor).s);
            break;
        case YAML_SCALAR_EVENT: {
            made = new_node(t, Y_SCALAR, ev.start_mark);
            struct ynode *n = &t->v[made];
            const char *v = (const char *)ev.data.scalar.value;
            size_t vl = ev.data.scalar.length;
            if (t->text.len + vl + 1 > UINT32_MAX) {
                plan_errorf(p, mark_pos(ev.start_mark), "the plan's text is too large");
                fatal = 1;
                break;
            }
            n->a = (uint32_t)t->text.len;
            n->n = (uint32_t)vl;
            buf_add(&t->text, v, vl);
            buf_addch(&t->text, 0);
            node_props(p, t, made, ev.data.scalar.anchor, ev.data.scalar.tag, 0);
            n = &t->v[made];
            n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n->tag == YT_NONE &&
                       !ev.data.scalar.tag;
            if (n->kind == Y_SCALAR && memchr(v, 0, vl)) {
                plan_errorf(p, (struct plan_pos){n->line, n->col},
                            "text must not contain NUL characters");
                n->kind = Y_BAD;
            }
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            int seq = ev.type == YAML_SEQUENCE_START_EVENT;
            if (depth >= PLAN_DEPTH_MAX) {
                plan_errorf(p, mark_pos(ev.start_mark),
                            "values nest deeper than %d levels", PLAN_DEPTH_MAX);
                fatal = 1;
                break;
            }
            uint32_t ni = new_node(t, seq ? Y_SEQ : Y_MAP, ev.start_mark);
            node_props(p, t, ni, seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor,
                       seq ? ev.data.sequence_start.tag : ev.data.mapping_start.tag,
                       seq ? YT_SEQ : YT_MAP);
            stack = xgrow(stack, sizeof *stack, depth + 1, &stack_cap);
            stack[depth].node = ni;
            stack[depth].first = npending;
            depth++;
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            struct frame *f = &stack[--depth];
            size_t k = npending - f->first;
            if (k) {
                t->kids = xgrow(t->kids, sizeof *t->kids, t->nkids + k, &t->kids_cap);
                memcpy(t->kids + t->nkids, pending + f->first, k * sizeof *pending);
            }
            struct ynode *n = &t->v[f->node];
            /* a bad tag made it Y_BAD: keep it bad, but its children were consumed */
            n->a = (uint32_t)t->nkids;
            n->n = (uint32_t)k;
            t->nkids += k;
            npending = f->first;
            made = f->node;
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (fatal)
            goto out;
        if (made != UINT32_MAX) {
            if (depth) {
                pending = xgrow(pending, sizeof *pending, npending + 1, &pending_cap);
                pending[npending++] = made;
            } else {
                t->root = (int)made;
            }
        }
    }
    if (ndocs == 0 || t->root < 0) {
        plan_errorf(p, (struct plan_pos){1, 1}, "the plan is empty");
        goto out;
    }
    rc = 0;
out:
    yaml_parser_delete(&ps);
    free(stack);
    free(pending);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* reading values */

struct walk {
    struct plan *p;
    const struct ytree *t;
};

static const struct ynode *node(const struct walk *w, uint32_t i)
{
    return &w->t->v[i];
}

static const struct ynode *kid(const struct walk *w, const struct ynode *n, uint32_t k)
{
    return &w->t->v[w->t->kids[n->a + k]];
}

static const char *text(const struct walk *w, const struct ynode *n)
{
    return w->t->text.ptr + n->a;
}

static struct plan_pos at(const struct ynode *n)
{
    return (struct plan_pos){n->line, n->col};
}

static int is_null(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return *out = 1, 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return *out = 0, 1;
    return 0;
}

/* YAML 1.2 core schema integers: decimal, 0x hex, 0o octal. 1 if s is one (*out set, or
 * *overflow set when it does not fit). */
static int parse_int(const char *s, int64_t *out, int *overflow)
{
    const char *d = s;
    int base = 10;
    *overflow = 0;
    if (!strncmp(s, "0x", 2))
        base = 16, d = s + 2;
    else if (!strncmp(s, "0o", 2))
        base = 8, d = s + 2;
    else if (*d == '-' || *d == '+')
        d++;
    if (!*d)
        return 0;
    for (const char *c = d; *c; c++) {
        int ok = base == 16 ? (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') ||
                                  (*c >= 'A' && *c <= 'F')
                 : base == 8 ? *c >= '0' && *c <= '7'
                             : *c >= '0' && *c <= '9';
        if (!ok)
            return 0;
    }
    errno = 0;
    long long v = base == 10 ? strtoll(s, NULL, 10) : strtoll(d, NULL, base);
    if (errno == ERANGE)
        *overflow = 1;
    *out = v;
    return 1;
}

/* Core schema floats (and integers, as numbers). */
static int parse_float(const char *s, double *out)
{
    const char *c = s;
    if (*c == '-' || *c == '+')
        c++;
    if (!strcmp(c, ".inf") || !strcmp(c, ".Inf") || !strcmp(c, ".INF")) {
        *out = *s == '-' ? -INFINITY : INFINITY;
        return 1;
    }
    if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) {
        *out = NAN;
        return 1;
    }
    int digits = 0;
    while (*c >= '0' && *c <= '9')
        c++, digits++;
    if (*c == '.') {
        c++;
        while (*c >= '0' && *c <= '9')
            c++, digits++;
    }
    if (!digits)
        return 0;
    if (*c == 'e' || *c == 'E') {
        c++;
        if (*c == '-' || *c == '+')
            c++;
        if (!(*c >= '0' && *c <= '9'))
            return 0;
        while (*c >= '0' && *c <= '9')
            c++;
    }
    if (*c)
        return 0;
    *out = strtod(s, NULL);
    return 1;
}

/* What a value is, for "must be X (got Y)". */
static struct described what_is(const struct walk *w, const struct ynode *n)
{
    struct described q;
    if (n->kind == Y_SEQ)
        snprintf(q.s, sizeof q.s, "a list");
    else if (n->kind == Y_MAP)
        snprintf(q.s, sizeof q.s, "a mapping");
    else if (n->kind == Y_SCALAR && (n->plain || n->tag == YT_NULL) && is_null(text(w, n)))
        snprintf(q.s, sizeof q.s, "nothing");
    else
        snprintf(q.s, sizeof q.s, "'%s'", Q(text(w, n)).s);
    return q;
}

/* Each reader: 0 and *out set, or -1 with the error reported (Y_BAD nodes: -1, silently:
 * their error is already out). ctx names the owner ("task 'x'"), key the field. */
static int read_scalar(const struct walk *w, const struct ynode *n, const char *ctx,
                       const char *key, const char *want)
{
    if (n->kind == Y_BAD)
        return -1;
    if (n->kind != Y_SCALAR) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be %s (got %s)", ctx, key, want,
                    what_is(w, n).s);
        return -1;
    }
    return 0;
}

static int read_text(const struct walk *w, const struct ynode *n, const char *ctx,
                     const char *key, size_t max, int multiline, char **out)
{
    if (read_scalar(w, n, ctx, key, "text"))
        return -1;
    const char *s = text(w, n);
    if ((n->plain || n->tag == YT_NULL) && is_null(s)) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be text (got nothing)", ctx, key);
        return -1;
    }
    struct s2_error err = S2_ERROR_INIT;
    char what[96];
    snprintf(what, sizeof what, "field '%s'", key);
    if (model_check_text(s, max, multiline, what, &err)) {
        plan_errorf(w->p, at(n), "%s: %s", ctx, err.msg);
        s2_error_release(&err);
        return -1;
    }
    *out = xstrdup(s);
    return 0;
}

static int read_name(const struct walk *w, const struct ynode *n, const char *ctx,
                     const char *key, int cap, char **out)
{
    char *s = NULL;
    if (read_text(w, n, ctx, key, S2_TEXT_MAX, 0, &s))
        return -1;
    struct s2_error err = S2_ERROR_INIT;
    char what[96];
    snprintf(what, sizeof what, "field '%s'", key);
    /* cap: 0 an id, 1 a capability, 2 a path glob */
    if (cap == 2   ? model_check_path(s, what, &err)
        : cap == 1 ? model_check_cap(s, what, &err)
                   : model_check_id(s, what, &err)) {
        plan_errorf(w->p, at(n), "%s: %s", ctx, err.msg);
        s2_error_release(&err);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int read_int(const struct walk *w, const struct ynode *n, const char *ctx,
                    const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    if (read_scalar(w, n, ctx, key, "a whole number"))
        return -1;
    const char *s = text(w, n);
    int64_t v;
    int overflow;
    if (!((n->plain || n->tag == YT_INT) && parse_int(s, &v, &overflow))) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be a whole number (got %s)", ctx, key,
                    what_is(w, n).s);
        return -1;
    }
    if (overflow || v < lo || v > hi) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be from %lld to %lld (got %s)", ctx, key,
                    (long long)lo, (long long)hi, Q(s).s);
        return -1;
    }
    *out = v;
    return 0;
}

static int read_num(const struct walk *w, const struct ynode *n, const char *ctx,
                    const char *key, double lo, double hi, const char *unit, double *out)
{
    if (read_scalar(w, n, ctx, key, "a number"))
        return -1;
    const char *s = text(w, n);
    double v;
    if (!((n->plain || n->tag == YT_INT || n->tag == YT_FLOAT) && parse_float(s, &v))) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be a number (got %s)", ctx, key,
                    what_is(w, n).s);
        return -1;
    }
    if (!(v >= lo && v <= hi)) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be from %g to %g%s (got %s)", ctx, key, lo,
                    hi, unit, Q(s).s);
        return -1;
    }
    *out = v;
    return 0;
}

/* US dollars into micro-dollars; positive: more than 0. */
static int read_usd(const struct walk *w, const struct ynode *n, const char *ctx,
                    const char *key, int positive, int64_t *out)
{
    double v;
    if (read_num(w, n, ctx, key, 0, S2_USD_MAX, " US dollars", &v))
        return -1;
    int64_t micro = (int64_t)llround(v * (double)S2_MICRO);
    if (positive && micro <= 0) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be more than $0 (got %s)", ctx, key,
                    Q(text(w, n)).s);
        return -1;
    }
    *out = micro;
    return 0;
}

static int read_bool(const struct walk *w, const struct ynode *n, const char *ctx,
                     const char *key, int *out)
{
    if (read_scalar(w, n, ctx, key, "true or false"))
        return -1;
    int v;
    if (!((n->plain || n->tag == YT_BOOL) && parse_bool(text(w, n), &v))) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be true or false (got %s)", ctx, key,
                    what_is(w, n).s);
        return -1;
    }
    *out = v;
    return 0;
}

/* A list of names (ids or capabilities): each valid, no duplicates, at most max. The
 * positions of the entries kept go to *pos (may be NULL). */
static int read_names(const struct walk *w, const struct ynode *n, const char *ctx,
                      const char *key, int cap, size_t max, struct strvec *out,
                      struct plan_pos **pos)
{
    if (n->kind == Y_BAD)
        return -1;
    if (n->kind == Y_SCALAR && (n->plain || n->tag == YT_NULL) && is_null(text(w, n)))
        return 0; /* "requires:" with nothing: an empty list */
    if (n->kind != Y_SEQ) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be a list (got %s)", ctx, key,
                    what_is(w, n).s);
        return -1;
    }
    if (n->n > max) {
        plan_errorf(w->p, at(n), "%s: field '%s' has %u entries (at most %zu)", ctx, key, n->n,
                    max);
        return -1;
    }
    int bad = 0;
    if (pos)
        *pos = xcalloc(n->n ? n->n : 1, sizeof **pos);
    for (uint32_t k = 0; k < n->n; k++) {
        const struct ynode *e = kid(w, n, k);
        char key_k[64];
        snprintf(key_k, sizeof key_k, "%s[%u]", key, k);
        char *s = NULL;
        if (read_name(w, e, ctx, key_k, cap, &s)) {
            bad = 1;
            continue;
        }
        if (strvec_find(out, s) >= 0) {
            plan_errorf(w->p, at(e), "%s: field '%s' lists '%s' twice", ctx, key, Q(s).s);
            free(s);
            bad = 1;
            continue;
        }
        if (pos)
            (*pos)[out->n] = at(e);
        strvec_push_nodup(out, s);
    }
    return bad ? -1 : 0;
}

/* Read a mapping's keys against allowed (NULL-terminated): vals[i] gets the value of
 * allowed[i] or NULL. Unknown keys (with a suggestion), non-text keys and duplicates are
 * reported. Returns -1 if n is not a mapping (reported). */
static int read_map(const struct walk *w, const struct ynode *n, const char *ctx,
                    const char *const *allowed, const struct ynode **vals)
{
    size_t na = 0;
    while (allowed[na])
        na++;
    for (size_t i = 0; i < na; i++)
        vals[i] = NULL;
    if (n->kind == Y_BAD)
        return -1;
    if (n->kind != Y_MAP) {
        plan_errorf(w->p, at(n), "%s must be a mapping of keys to values (got %s)", ctx,
                    what_is(w, n).s);
        return -1;
    }
    struct plan_pos *first = xcalloc(na ? na : 1, sizeof *first);
    for (uint32_t k = 0; k + 1 < n->n; k += 2) {
        const struct ynode *kn = kid(w, n, k), *vn = kid(w, n, k + 1);
        if (kn->kind == Y_BAD)
            continue;
        if (kn->kind != Y_SCALAR) {
            plan_errorf(w->p, at(kn), "%s: keys must be names (got %s)", ctx, what_is(w, kn).s);
            continue;
        }
        const char *key = text(w, kn);
        size_t i;
        for (i = 0; i < na; i++)
            if (!strcmp(allowed[i], key))
                break;
        if (i == na) {
            const char *s = plan_suggest(key, allowed, na);
            if (s)
                plan_errorf(w->p, at(kn), "%s: unknown key '%s' (did you mean '%s'?)", ctx,
                            Q(key).s, s);
            else
                plan_errorf(w->p, at(kn), "%s: unknown key '%s'", ctx, Q(key).s);
            continue;
        }
        if (vals[i]) {
            plan_errorf(w->p, at(kn), "%s: key '%s' appears twice (first at %u:%u)", ctx, key,
                        first[i].line, first[i].col);
            continue;
        }
        vals[i] = vn;
        first[i] = at(kn);
    }
    free(first);
    return 0;
}

/* How to name a mapping in messages before it is read: "KIND 'ID'" when its id key holds a
 * plain name, else the fallback (caller frees). */
static char *name_of(const struct walk *w, const struct ynode *m, const char *idkey,
                     const char *kind, const char *fallback)
{
    if (m->kind == Y_MAP)
        for (uint32_t k = 0; k + 1 < m->n; k += 2) {
            const struct ynode *kn = kid(w, m, k), *vn = kid(w, m, k + 1);
            if (kn->kind != Y_SCALAR || strcmp(text(w, kn), idkey) || vn->kind != Y_SCALAR)
                continue;
            struct s2_error err = S2_ERROR_INIT;
            const char *id = text(w, vn);
            int ok = !(vn->plain && is_null(id)) && !model_check_id(id, "id", &err);
            s2_error_release(&err);
            if (ok)
                return xasprintf("%s '%s'", kind, id);
            break;
        }
    return xstrdup(fallback);
}

/* A list of items; NULL (absent) or an explicit null is an empty list. */
static int read_list(const struct walk *w, const struct ynode *n, const char *ctx,
                     const char *key)
{
    if (!n || n->kind == Y_BAD)
        return -1;
    if (n->kind == Y_SCALAR && (n->plain || n->tag == YT_NULL) && is_null(text(w, n)))
        return -1;
    if (n->kind != Y_SEQ) {
        plan_errorf(w->p, at(n), "%s: field '%s' must be a list (got %s)", ctx, key,
                    what_is(w, n).s);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* the plan's parts */

static void read_policy(struct walk *w, const struct ynode *n)
{
    struct plan_policy *pol = &w->p->policy;
    const char *names[PK_NKEYS + 1];
    const struct ynode *vals[PK_NKEYS];
    for (int i = 0; i < PK_NKEYS; i++)
        names[i] = plan_policy_keys[i].name;
    names[PK_NKEYS] = NULL;
    pol->present = 1;
    pol->at = at(n);
    if (n->kind == Y_SCALAR && n->plain && is_null(text(w, n)))
        return; /* "policy:" alone: the default preset */
    if (read_map(w, n, "policy", names, vals))
        return;
    for (int i = 0; i < PK_NKEYS; i++) {
        const struct ynode *v = vals[i];
        if (!v)
            continue;
        struct plan_policy_value *pv = &pol->v[i];
        const struct plan_policy_keydef *d = &plan_policy_keys[i];
        int rc = -1;
        pv->at = at(v);
        switch (d->type) {
        case PV_PRESET: {
            char *s = NULL;
            struct plan_policy_eff eff;
            if (read_text(w, v, "policy", d->name, 64, 0, &s))
                break;
            if (plan_preset(s, &eff)) {
                plan_errorf(w->p, at(v),
                            "policy: field 'preset' must be development, default or production "
                            "(got '%s')",
                            Q(s).s);
                free(s);
                break;
            }
            pv->s = s;
            rc = 0;
            break;
        }
        case PV_RATIO:
            rc = read_num(w, v, "policy", d->name, 0, 1, "", &pv->num);
            break;
        case PV_INT:
            rc = read_int(w, v, "policy", d->name, d->lo, d->hi, &pv->i);
            break;
        case PV_USD:
        case PV_USD_POSITIVE:
            rc = read_usd(w, v, "policy", d->name, d->type == PV_USD_POSITIVE, &pv->i);
            break;
        case PV_BOOL: {
            int b = 0;
            rc = read_bool(w, v, "policy", d->name, &b);
            pv->i = b;
            break;
        }
        case PV_URL: {
            char *s = NULL;
            if (read_text(w, v, "policy", d->name, 2048, 0, &s))
                break;
            if ((strncmp(s, "http://", 7) && strncmp(s, "https://", 8)) || strpbrk(s, " \t")) {
                plan_errorf(w->p, at(v),
                            "policy: field 'webhook_url' must be an http:// or https:// URL "
                            "(got '%s')",
                            Q(s).s);
                free(s);
                break;
            }
            pv->s = s;
            rc = 0;
            break;
        }
        }
        pv->set = rc == 0;
    }
}

static void read_models(struct walk *w, const struct ynode *n)
{
    static const char *const keys[] = {"name", "tier", "usd_per_mtok_in", "usd_per_mtok_out",
                                       NULL};
    struct plan *p = w->p;
    p->has_models = 1;
    if (read_list(w, n, "plan", "models"))
        return;
    for (uint32_t k = 0; k < n->n; k++) {
        const struct ynode *m = kid(w, n, k), *v[4];
        char fb[64];
        snprintf(fb, sizeof fb, "model %u", k + 1);
        char *ctx = name_of(w, m, "name", "model", fb);
        if (read_map(w, m, ctx, keys, v)) {
            free(ctx);
            continue;
        }
        struct model_spec s = {0};
        int bad = 0;
        char *cx = NULL;
        if (!v[0]) {
            plan_errorf(p, at(m), "%s: field 'name' is required", ctx);
            bad = 1;
        } else if (read_name(w, v[0], ctx, "name", 0, &s.name)) {
            bad = 1;
        }
        cx = s.name ? xasprintf("model '%s'", s.name) : xstrdup(ctx);
        free(ctx);
        static const char *const req[] = {NULL, "tier", "usd_per_mtok_in", "usd_per_mtok_out"};
        for (int i = 1; i < 4; i++)
            if (!v[i]) {
                plan_errorf(p, at(m), "%s: field '%s' is required", cx, req[i]);
                bad = 1;
            }
        if (v[1] && read_int(w, v[1], cx, "tier", 1, S2_TIER_MAX, &s.tier))
            bad = 1;
        if (v[2] && read_usd(w, v[2], cx, "usd_per_mtok_in", 0, &s.usd_in_micro))
            bad = 1;
        if (v[3] && read_usd(w, v[3], cx, "usd_per_mtok_out", 0, &s.usd_out_micro))
            bad = 1;
        free(cx);
        if (bad) {
            model_spec_release(&s);
            continue;
        }
        long prev = plan_find_model(p, s.name);
        if (prev >= 0 && p->models[prev].from_plan) {
            plan_errorf(p, at(v[0]), "model '%s' is defined twice (first at %u:%u)", s.name,
                        p->models[prev].at.line, p->models[prev].at.col);
            model_spec_release(&s);
            continue;
        }
        struct plan_model *pm;
        if (prev >= 0) { /* the plan redefines a default model */
            pm = &p->models[prev];
            model_spec_release(&pm->spec);
        } else {
            pm = plan_add_model(p);
        }
        pm->spec = s;
        pm->from_plan = 1;
        pm->at = at(v[0]);
    }
}

static void read_contract(struct walk *w, struct plan_swarm *sw, const struct ynode *n,
                          const char *swctx)
{
    static const char *const keys[] = {"swarm", "version", "capabilities", "limits", "slos",
                                       "network", "secrets", NULL};
    struct plan_contract *c = &sw->contract;
    const struct ynode *v[7];
    char *ctx = xasprintf("contract of %s", swctx);
    c->present = 1;
    c->at = at(n);
    for (int i = 0; i < PS_NSLOS; i++)
        c->slos[i] = -1;
    if (read_map(w, n, ctx, keys, v))
        goto out;
    if (v[0])
        read_name(w, v[0], ctx, "swarm", 0, &c->swarm);
    if (v[1] && !read_text(w, v[1], ctx, "version", PLAN_VERSION_MAX, 0, &c->version)) {
        /* semantic versions: MAJOR.MINOR.PATCH, digits, optional -pre or +build */
        const char *s = c->version;
        int parts = 0, ok = 1;
        while (ok && parts < 3) {
            if (!(*s >= '0' && *s <= '9'))
                ok = 0;
            while (*s >= '0' && *s <= '9')
                s++;
            parts++;
            if (parts < 3) {
                if (*s == '.')
                    s++;
                else
                    ok = 0;
            }
        }
        if (ok && *s && *s != '-' && *s != '+')
            ok = 0;
        if (!ok) {
            plan_errorf(w->p, at(v[1]),
                        "%s: field 'version' must be a version like 1.0.0 (got '%s')", ctx,
                        Q(c->version).s);
            free(c->version);
            c->version = NULL;
        }
    }
    if (v[2])
        read_names(w, v[2], ctx, "capabilities", 1, S2_CAPS_MAX, &c->caps, &c->cap_at);
    if (v[3]) {
        const struct ynode *lv[PL_NLIMITS];
        const char *names[PL_NLIMITS + 1];
        for (int i = 0; i < PL_NLIMITS; i++)
            names[i] = plan_limit_names[i];
        names[PL_NLIMITS] = NULL;
        char *lctx = xasprintf("limits of %s", ctx);
        if (!read_map(w, v[3], lctx, names, lv))
            for (int i = 0; i < PL_NLIMITS; i++)
                if (lv[i])
                    read_int(w, lv[i], lctx, names[i], 1, plan_limit_max[i], &c->limits[i]);
        free(lctx);
    }
    if (v[4]) {
        const struct ynode *sv[PS_NSLOS];
        const char *names[PS_NSLOS + 1];
        for (int i = 0; i < PS_NSLOS; i++)
            names[i] = plan_slo_names[i];
        names[PS_NSLOS] = NULL;
        char *sctx = xasprintf("slos of %s", ctx);
        if (!read_map(w, v[4], sctx, names, sv)) {
            if (sv[0])
                read_num(w, sv[0], sctx, names[0], 1, 86400000, " milliseconds", &c->slos[0]);
            for (int i = 1; i < PS_NSLOS; i++)
                if (sv[i])
                    read_num(w, sv[i], sctx, names[i], 0, 1, "", &c->slos[i]);
        }
        free(sctx);
    }
    if (v[5] && !read_list(w, v[5], ctx, "network")) {
        if (v[5]->n > PLAN_NETWORK_MAX)
            plan_errorf(w->p, at(v[5]), "%s: field 'network' has %u entries (at most %d)", ctx,
                        v[5]->n, PLAN_NETWORK_MAX);
        for (uint32_t k = 0; k < v[5]->n && k < PLAN_NETWORK_MAX; k++) {
            const struct ynode *e = kid(w, v[5], k);
            char key[32], *s = NULL;
            snprintf(key, sizeof key, "network[%u]", k);
            if (read_text(w, e, ctx, key, PLAN_HOSTPORT_MAX, 0, &s))
                continue;
            /* host:port: a host name or IPv4 address, or [IPv6]; port 1..65535 */
            const char *colon = strrchr(s, ':');
            int ok = colon && colon > s;
            if (ok) {
                char *end;
                errno = 0;
                long port = strtol(colon + 1, &end, 10);
                ok = colon[1] >= '0' && colon[1] <= '9' && !*end && !errno && port >= 1 &&
                     port <= 65535;
            }
            if (ok && s[0] == '[') {
                ok = colon[-1] == ']' && colon - s > 2;
                for (const char *c2 = s + 1; ok && c2 < colon - 1; c2++)
                    ok = (*c2 >= '0' && *c2 <= '9') || (*c2 >= 'a' && *c2 <= 'f') ||
                         (*c2 >= 'A' && *c2 <= 'F') || *c2 == ':' || *c2 == '.';
            } else {
                for (const char *c2 = s; ok && c2 < colon; c2++)
                    ok = (*c2 >= 'a' && *c2 <= 'z') || (*c2 >= 'A' && *c2 <= 'Z') ||
                         (*c2 >= '0' && *c2 <= '9') || *c2 == '-' || *c2 == '.' ||
                         (*c2 == '*' && c2 == s && c2[1] == '.');
            }
            if (!ok) {
                plan_errorf(w->p, at(e),
                            "%s: field '%s' must be HOST:PORT, e.g. api.example.com:443 (got "
                            "'%s')",
                            ctx, key, Q(s).s);
                free(s);
                continue;
            }
            if (strvec_find(&c->network, s) >= 0) {
                plan_errorf(w->p, at(e), "%s: field 'network' lists '%s' twice", ctx, s);
                free(s);
                continue;
            }
            strvec_push_nodup(&c->network, s);
        }
    }
    if (v[6] && !read_list(w, v[6], ctx, "secrets")) {
        if (v[6]->n > PLAN_NETWORK_MAX)
            plan_errorf(w->p, at(v[6]), "%s: field 'secrets' has %u entries (at most %d)", ctx,
                        v[6]->n, PLAN_NETWORK_MAX);
        for (uint32_t k = 0; k < v[6]->n && k < PLAN_NETWORK_MAX; k++) {
            const struct ynode *e = kid(w, v[6], k);
            char key[32], *s = NULL;
            snprintf(key, sizeof key, "secrets[%u]", k);
            if (read_text(w, e, ctx, key, PLAN_SECRET_MAX, 0, &s))
                continue;
            /* the name of an environment variable */
            int ok = (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_';
            for (const char *c2 = s; ok && *c2; c2++)
                ok = (*c2 >= 'A' && *c2 <= 'Z') || (*c2 >= '0' && *c2 <= '9') || *c2 == '_';
            if (!ok) {
                plan_errorf(w->p, at(e),
                            "%s: field '%s' must be an environment variable name of A-Z, 0-9 "
                            "and _ (got '%s')",
                            ctx, key, Q(s).s);
                free(s);
                continue;
            }
            if (strvec_find(&c->secrets, s) >= 0) {
                plan_errorf(w->p, at(e), "%s: field 'secrets' lists '%s' twice", ctx, s);
                free(s);
                continue;
            }
            strvec_push_nodup(&c->secrets, s);
        }
    }
out:
    free(ctx);
}

static void read_agents(struct walk *w, struct plan_swarm *sw, uint32_t si,
                        const struct ynode *n, const char *swctx)
{
    static const char *const keys[] = {"id", "model", "capabilities", "max_leases", NULL};
    struct plan *p = w->p;
    sw->agent0 = p->nagents;
    if (read_list(w, n, swctx, "agents"))
        return;
    for (uint32_t k = 0; k < n->n; k++) {
        const struct ynode *m = kid(w, n, k), *v[4];
        char *fb = xasprintf("agent %u of %s", k + 1, swctx);
        char *ctx = name_of(w, m, "id", "agent", fb);
        free(fb);
        if (read_map(w, m, ctx, keys, v)) {
            free(ctx);
            continue;
        }
        struct plan_agent *a = plan_add_agent(p);
        a->swarm = si;
        a->at = at(m);
        a->spec.swarm = xstrdup(sw->spec.id ? sw->spec.id : "");
        if (!v[0])
            plan_errorf(p, at(m), "%s: field 'id' is required", ctx);
        else if (!read_name(w, v[0], ctx, "id", 0, &a->spec.id))
            a->id_at = at(v[0]);
        if (v[1] && !read_name(w, v[1], ctx, "model", 0, &a->spec.model))
            a->model_at = at(v[1]);
        if (v[2])
            read_names(w, v[2], ctx, "capabilities", 1, S2_CAPS_MAX, &a->spec.caps, &a->cap_at);
        if (v[3] && !read_int(w, v[3], ctx, "max_leases", 1, S2_LEASES_MAX, &a->spec.max_leases))
            a->has_max_leases = 1;
        free(ctx);
    }
    sw->nagents = p->nagents - sw->agent0;
}

/* One idle task: what the server keeps of one (title, body, requires; PUT
 * /v1/swarms/ID/idle_tasks), an optional id to name it, and estimate_h for the simulation. */
static void read_idle_task(struct walk *w, const struct ynode *m, struct plan_swarm *sw,
                           uint32_t si, const char *where)
{
    static const char *const keys[] = {"id", "title", "body", "requires", "estimate_h", NULL};
    const struct ynode *v[5];
    struct plan *p = w->p;
    char *ctx = name_of(w, m, "id", "idle task", where);
    if (read_map(w, m, ctx, keys, v))
        goto out;
    struct plan_task *t = plan_add_idle(p);
    struct task_spec *s = &t->spec;
    t->swarm = si;
    t->at = at(m);
    s->swarm = xstrdup(sw->spec.id ? sw->spec.id : "");
    if (v[0] && !read_name(w, v[0], ctx, "id", 0, &s->id))
        t->id_at = at(v[0]);
    if (!v[1])
        plan_errorf(p, at(m), "%s: field 'title' is required", ctx);
    else if (!read_text(w, v[1], ctx, "title", S2_TITLE_MAX, 0, &s->title) && !*s->title)
        plan_errorf(p, at(v[1]), "%s: field 'title' must not be empty", ctx);
    if (v[2] && !read_text(w, v[2], ctx, "body", S2_BODY_MAX, 1, &s->body))
        t->set |= PT_BODY;
    if (v[3])
        read_names(w, v[3], ctx, "requires", 1, S2_CAPS_MAX, &s->requires, &t->req_at);
    if (v[4] && !read_num(w, v[4], ctx, "estimate_h", 0, 1e6, " hours", &s->estimate_h))
        t->set |= PT_ESTIMATE_H;
out:
    free(ctx);
}

/* One task of a phase. */
static void read_task(struct walk *w, const struct ynode *m, struct plan_swarm *sw, uint32_t si,
                      int64_t phase, const char *where)
{
    static const char *const keys[] = {
        "id",          "title",    "body",         "requires",  "min_tier",
        "priority",    "estimate_h", "estimate_usd", "max_cost",  "depends_on",
        "max_attempts", "lease_ms", "retry_backoff_ms", "approval", "phase_barrier", "paths",
        NULL};
    const struct ynode *v[16];
    struct plan *p = w->p;
    char *ctx = name_of(w, m, "id", "task", where);
    if (read_map(w, m, ctx, keys, v))
        goto out;
    struct plan_task *t = plan_add_task(p);
    struct task_spec *s = &t->spec;
    t->swarm = si;
    t->at = at(m);
    s->swarm = xstrdup(sw->spec.id ? sw->spec.id : "");
    s->phase = phase;
    if (!v[0]) {
        plan_errorf(p, at(m), "%s: field 'id' is required", ctx);
    } else if (!read_name(w, v[0], ctx, "id", 0, &s->id)) {
        t->id_at = at(v[0]);
    }
    if (!v[1])
        plan_errorf(p, at(m), "%s: field 'title' is required", ctx);
    else if (!read_text(w, v[1], ctx, "title", S2_TITLE_MAX, 0, &s->title) && !*s->title) {
        plan_errorf(p, at(v[1]), "%s: field 'title' must not be empty", ctx);
    }
    if (v[2] && !read_text(w, v[2], ctx, "body", S2_BODY_MAX, 1, &s->body))
        t->set |= PT_BODY;
    if (v[3])
        read_names(w, v[3], ctx, "requires", 1, S2_CAPS_MAX, &s->requires, &t->req_at);
    if (v[4] && !read_int(w, v[4], ctx, "min_tier", 0, S2_TIER_MAX, &s->min_tier)) {
        t->set |= PT_MIN_TIER;
        t->min_tier_at = at(v[4]);
    }
    if (v[5] && !read_int(w, v[5], ctx, "priority", -S2_PRIORITY_MAX, S2_PRIORITY_MAX,
                          &s->priority))
        t->set |= PT_PRIORITY;
    if (v[6] && !read_num(w, v[6], ctx, "estimate_h", 0, 1e6, " hours", &s->estimate_h))
        t->set |= PT_ESTIMATE_H;
    if (v[7] && !read_usd(w, v[7], ctx, "estimate_usd", 0, &s->estimate_micro))
        t->set |= PT_ESTIMATE_USD;
    if (v[8] && !read_usd(w, v[8], ctx, "max_cost", 1, &s->max_cost_micro))
        t->set |= PT_MAX_COST;
    if (v[9])
        read_names(w, v[9], ctx, "depends_on", 0, S2_DEPS_MAX, &s->depends_on, &t->dep_at);
    if (v[10] && !read_int(w, v[10], ctx, "max_attempts", 1, S2_ATTEMPTS_MAX, &s->max_attempts))
        t->set |= PT_MAX_ATTEMPTS;
    if (v[11] && !read_int(w, v[11], ctx, "lease_ms", S2_LEASE_MS_MIN, S2_LEASE_MS_MAX,
                           &s->lease_ms))
        t->set |= PT_LEASE_MS;
    if (v[12] && !read_int(w, v[12], ctx, "retry_backoff_ms", 0, S2_BACKOFF_MS_MAX,
                           &s->backoff_ms))
        t->set |= PT_BACKOFF;
    if (v[13]) {
        char *a = NULL;
        if (!read_text(w, v[13], ctx, "approval", 64, 0, &a)) {
            struct s2_error err = S2_ERROR_INIT;
            if (model_parse_approval(a, &s->approval_kind, &s->approval_n, &err)) {
                plan_errorf(p, at(v[13]), "%s: %s", ctx, err.msg);
                s2_error_release(&err);
            } else {
                t->set |= PT_APPROVAL;
            }
        }
        free(a);
    }
    if (v[14] && !read_bool(w, v[14], ctx, "phase_barrier", &s->phase_barrier))
        t->set |= PT_PHASE_BARRIER;
    if (v[15])
        read_names(w, v[15], ctx, "paths", 2, S2_PATHS_MAX, &s->paths, NULL);
out:
    free(ctx);
}

static void read_phases(struct walk *w, struct plan_swarm *sw, uint32_t si,
                        const struct ynode *n, const char *swctx)
{
    static const char *const keys[] = {"phase", "tasks", NULL};
    struct plan *p = w->p;
    sw->task0 = p->ntasks;
    if (read_list(w, n, swctx, "phases"))
        return;
    int64_t *seen = xcalloc(n->n ? n->n : 1, sizeof *seen);
    struct plan_pos *seen_at = xcalloc(n->n ? n->n : 1, sizeof *seen_at);
    size_t nseen = 0;
    for (uint32_t k = 0; k < n->n; k++) {
        const struct ynode *m = kid(w, n, k), *v[2];
        char *ctx = xasprintf("phase %u of %s", k + 1, swctx);
        int64_t phase = 0;
        if (read_map(w, m, ctx, keys, v))
            goto next;
        if (!v[0]) {
            plan_errorf(p, at(m), "%s: field 'phase' is required", ctx);
            goto next;
        }
        if (read_int(w, v[0], ctx, "phase", 0, S2_PHASE_MAX, &phase))
            goto next;
        for (size_t i = 0; i < nseen; i++)
            if (seen[i] == phase) {
                plan_errorf(p, at(v[0]), "%s: phase %lld appears twice (first at %u:%u)", swctx,
                            (long long)phase, seen_at[i].line, seen_at[i].col);
                goto next;
            }
        seen[nseen] = phase;
        seen_at[nseen++] = at(v[0]);
        free(ctx);
        ctx = xasprintf("phase %lld of %s", (long long)phase, swctx);
        if (!v[1] || read_list(w, v[1], ctx, "tasks"))
            goto next;
        for (uint32_t j = 0; j < v[1]->n; j++) {
            char *where = xasprintf("task %u of %s", j + 1, ctx);
            read_task(w, kid(w, v[1], j), sw, si, phase, where);
            free(where);
        }
    next:
        free(ctx);
    }
    sw->nphases = nseen;
    sw->ntasks = p->ntasks - sw->task0;
    free(seen);
    free(seen_at);
}

static void read_swarms(struct walk *w, const struct ynode *n)
{
    static const char *const keys[] = {"id",       "role",   "relation", "capabilities",
                                       "budget",   "branch", "contract", "agents",
                                       "idle_tasks", "phases", NULL};
    struct plan *p = w->p;
    if (read_list(w, n, "plan", "swarms"))
        return;
    for (uint32_t k = 0; k < n->n; k++) {
        const struct ynode *m = kid(w, n, k), *v[10];
        char *fb = xasprintf("swarm %u", k + 1);
        char *ctx = name_of(w, m, "id", "swarm", fb);
        free(fb);
        if (read_map(w, m, ctx, keys, v)) {
            free(ctx);
            continue;
        }
        uint32_t si = (uint32_t)p->nswarms;
        struct plan_swarm *sw = plan_add_swarm(p);
        sw->at = at(m);
        if (!v[0]) {
            plan_errorf(p, at(m), "%s: field 'id' is required", ctx);
        } else if (!read_name(w, v[0], ctx, "id", 0, &sw->spec.id)) {
            sw->id_at = at(v[0]);
        }
        if (v[1])
            read_text(w, v[1], ctx, "role", S2_TEXT_MAX, 0, &sw->spec.role);
        sw->spec.relation = REL_PEER;
        if (v[2]) {
            char *r = NULL;
            sw->relation_at = at(v[2]);
            if (!read_text(w, v[2], ctx, "relation", 64, 0, &r)) {
                int rel = relation_parse(r);
                if (rel < 0) {
                    static const char *const rels[] = {"peer", "critical", "support"};
                    const char *s = plan_suggest(r, rels, 3);
                    plan_errorf(p, at(v[2]),
                                "%s: field 'relation' must be peer, critical or support (got "
                                "'%s')%s%s%s",
                                ctx, Q(r).s, s ? "; did you mean '" : "", s ? s : "",
                                s ? "'?" : "");
                } else {
                    sw->spec.relation = rel;
                }
            }
            free(r);
        }
        if (v[3])
            read_names(w, v[3], ctx, "capabilities", 1, S2_CAPS_MAX, &sw->spec.caps,
                       &sw->cap_at);
        if (v[4] && !read_usd(w, v[4], ctx, "budget", 0, &sw->spec.budget_micro)) {
            sw->has_budget = 1;
            sw->budget_at = at(v[4]);
        }
        if (v[5])
            read_text(w, v[5], ctx, "branch", S2_ID_MAX * 2, 0, &sw->spec.branch);
        if (v[6])
            read_contract(w, sw, v[6], ctx);
        if (v[7]) {
            read_agents(w, sw, si, v[7], ctx);
            sw = &p->swarms[si];
        } else {
            sw->agent0 = p->nagents;
        }
        sw->idle0 = p->nidle;
        if (v[8]) {
            sw->has_idle = 1;
            if (!read_list(w, v[8], ctx, "idle_tasks")) {
                if (v[8]->n > PLAN_IDLE_MAX)
                    plan_errorf(p, at(v[8]), "%s: field 'idle_tasks' has %u entries (at most %d)",
                                ctx, v[8]->n, PLAN_IDLE_MAX);
                for (uint32_t j = 0; j < v[8]->n; j++) {
                    char *where = xasprintf("idle task %u of %s", j + 1, ctx);
                    read_idle_task(w, kid(w, v[8], j), sw, si, where);
                    free(where);
                }
            }
        }
        sw->nidle = p->nidle - sw->idle0;
        if (v[9])
            read_phases(w, sw, si, v[9], ctx);
        else
            sw->task0 = p->ntasks;
        free(ctx);
    }
}

/* ------------------------------------------------------------------------------------ */
/* the plan */

void plan_init(struct plan *p, const char *file)
{
    memset(p, 0, sizeof *p);
    p->file = xstrdup(file ? file : "plan");
}

static void task_release(struct plan_task *t)
{
    task_spec_release(&t->spec);
    free(t->req_at);
    free(t->dep_at);
}

void plan_release(struct plan *p)
{
    for (int i = 0; i < PK_NKEYS; i++)
        free(p->policy.v[i].s);
    for (size_t i = 0; i < p->nmodels; i++)
        model_spec_release(&p->models[i].spec);
    for (size_t i = 0; i < p->nswarms; i++) {
        struct plan_swarm *s = &p->swarms[i];
        swarm_spec_release(&s->spec);
        free(s->cap_at);
        free(s->contract.swarm);
        free(s->contract.version);
        strvec_release(&s->contract.caps);
        free(s->contract.cap_at);
        strvec_release(&s->contract.network);
        strvec_release(&s->contract.secrets);
    }
    for (size_t i = 0; i < p->nagents; i++) {
        agent_spec_release(&p->agents[i].spec);
        free(p->agents[i].cap_at);
    }
    for (size_t i = 0; i < p->ntasks; i++)
        task_release(&p->tasks[i]);
    for (size_t i = 0; i < p->nidle; i++)
        task_release(&p->idle[i]);
    for (size_t i = 0; i < p->nerrors; i++)
        free(p->errors[i].msg);
    free(p->models);
    free(p->swarms);
    free(p->agents);
    free(p->tasks);
    free(p->idle);
    free(p->errors);
    free(p->file);
    memset(p, 0, sizeof *p);
}

struct plan_swarm *plan_add_swarm(struct plan *p)
{
    p->swarms = xgrow(p->swarms, sizeof *p->swarms, p->nswarms + 1, &p->swarms_cap);
    struct plan_swarm *s = &p->swarms[p->nswarms++];
    memset(s, 0, sizeof *s);
    swarm_spec_init(&s->spec);
    for (int i = 0; i < PS_NSLOS; i++)
        s->contract.slos[i] = -1;
    return s;
}

struct plan_agent *plan_add_agent(struct plan *p)
{
    p->agents = xgrow(p->agents, sizeof *p->agents, p->nagents + 1, &p->agents_cap);
    struct plan_agent *a = &p->agents[p->nagents++];
    memset(a, 0, sizeof *a);
    agent_spec_init(&a->spec);
    return a;
}

static struct plan_task *add_task(struct plan_task **v, size_t *n, size_t *cap)
{
    *v = xgrow(*v, sizeof **v, *n + 1, cap);
    struct plan_task *t = &(*v)[(*n)++];
    memset(t, 0, sizeof *t);
    task_spec_init(&t->spec);
    return t;
}

struct plan_task *plan_add_task(struct plan *p)
{
    return add_task(&p->tasks, &p->ntasks, &p->tasks_cap);
}

struct plan_task *plan_add_idle(struct plan *p)
{
    return add_task(&p->idle, &p->nidle, &p->idle_cap);
}

struct plan_model *plan_add_model(struct plan *p)
{
    p->models = xgrow(p->models, sizeof *p->models, p->nmodels + 1, &p->models_cap);
    struct plan_model *m = &p->models[p->nmodels++];
    memset(m, 0, sizeof *m);
    return m;
}

void plan_default_table(struct plan *p)
{
    for (size_t i = 0; i < 3; i++) {
        const struct plan_default_model *d = &plan_default_models[i];
        if (plan_find_model(p, d->name) >= 0)
            continue;
        struct plan_model *m = plan_add_model(p);
        m->spec.name = xstrdup(d->name);
        m->spec.tier = d->tier;
        m->spec.usd_in_micro = llround(d->usd_in * S2_MICRO);
        m->spec.usd_out_micro = llround(d->usd_out * S2_MICRO);
    }
}

long plan_find_swarm(const struct plan *p, const char *id)
{
    for (size_t i = 0; i < p->nswarms; i++)
        if (p->swarms[i].spec.id && !strcmp(p->swarms[i].spec.id, id))
            return (long)i;
    return -1;
}

long plan_find_model(const struct plan *p, const char *name)
{
    for (size_t i = 0; i < p->nmodels; i++)
        if (!strcmp(p->models[i].spec.name, name))
            return (long)i;
    return -1;
}

int64_t plan_top_tier(const struct plan *p)
{
    int64_t top = 0;
    for (size_t i = 0; i < p->nmodels; i++)
        if (p->models[i].spec.tier > top)
            top = p->models[i].spec.tier;
    return top;
}

double plan_match(const struct strvec *requires, const struct strvec *caps)
{
    if (!requires->n)
        return 1.0;
    size_t hit = 0;
    for (size_t i = 0; i < requires->n; i++)
        hit += strvec_find(caps, requires->v[i]) >= 0;
    return (double)hit / (double)requires->n;
}

static int cmp_error(const void *a, const void *b)
{
    const struct plan_error *x = a, *y = b;
    if (x->at.line != y->at.line)
        return x->at.line < y->at.line ? -1 : 1;
    if (x->at.col != y->at.col)
        return x->at.col < y->at.col ? -1 : 1;
    return 0;
}

/* A stable sort by position (insertion sort on the rare long lists would be slow; merge
 * by hand: qsort is not stable, so break ties on the original order). */
struct indexed_error {
    struct plan_error e;
    size_t i;
};
static int cmp_indexed(const void *a, const void *b)
{
    const struct indexed_error *x = a, *y = b;
    int c = cmp_error(&x->e, &y->e);
    return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

static void sort_errors(struct plan *p)
{
    if (p->nerrors < 2)
        return;
    struct indexed_error *v = xcalloc(p->nerrors, sizeof *v);
    for (size_t i = 0; i < p->nerrors; i++)
        v[i].e = p->errors[i], v[i].i = i;
    qsort(v, p->nerrors, sizeof *v, cmp_indexed);
    for (size_t i = 0; i < p->nerrors; i++)
        p->errors[i] = v[i].e;
    free(v);
}

int plan_parse(struct plan *p, const char *data, size_t len)
{
    struct ytree t = {0};
    plan_default_table(p);
    if (len > PLAN_FILE_MAX) {
        plan_errorf(p, (struct plan_pos){0, 0}, "the plan is larger than %u bytes",
                    PLAN_FILE_MAX);
        goto out;
    }
    if (build_tree(p, &t, data, len))
        goto out;
    struct walk w = {p, &t};
    static const char *const keys[] = {"policy", "models", "swarms", NULL};
    const struct ynode *v[3], *root = node(&w, (uint32_t)t.root);
    if (root->kind == Y_SCALAR && root->plain && is_null(text(&w, root))) {
        plan_errorf(p, at(root), "the plan is empty");
        goto out;
    }
    if (root->kind != Y_MAP && root->kind != Y_BAD) {
        plan_errorf(p, at(root),
                    "a plan is a mapping with the keys policy, models and swarms (got %s)",
                    what_is(&w, root).s);
        goto out;
    }
    if (read_map(&w, root, "plan", keys, v))
        goto out;
    if (v[0])
        read_policy(&w, v[0]);
    if (v[1])
        read_models(&w, v[1]);
    if (v[2])
        read_swarms(&w, v[2]);
    plan_check(p);
out:
    tree_release(&t);
    sort_errors(p);
    return p->nerrors || p->errors_dropped ? -1 : 0;
}

int plan_load(struct plan *p, const char *path)
{
    size_t len;
    char *text = fs_read_file(path, PLAN_FILE_MAX, 0, &len);
    if (!text) {
        if (errno == EFBIG)
            plan_errorf(p, (struct plan_pos){0, 0}, "the plan is larger than %u bytes",
                        PLAN_FILE_MAX);
        else
            plan_errorf(p, (struct plan_pos){0, 0}, "cannot read '%s': %s", path,
                        strerror(errno));
        return -1;
    }
    int rc = plan_parse(p, text, len);
    free(text);
    return rc;
}
