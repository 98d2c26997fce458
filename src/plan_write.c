/* plan_write.c: a plan back to YAML (s2 plan export), through libyaml's emitter so that any
 * text is quoted correctly. Strings that would read back as another type (a title "10",
 * an id "true") are forced into quotes: what plan_parse reads from the output is the plan
 * that was written. */
#include "plan.h"
#include "util/xalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "banned.h"

struct out {
    yaml_emitter_t em;
    int failed;
    struct s2_error *err;
};

static int on_write(void *data, unsigned char *buffer, size_t size)
{
    return buf_add(data, buffer, size) ? 0 : 1;
}

static void emit(struct out *o, yaml_event_t *ev, int made)
{
    if (o->failed) {
        if (made)
            yaml_event_delete(ev);
        return;
    }
    if (!made || !yaml_emitter_emit(&o->em, ev)) {
        o->failed = 1;
        s2_fail(o->err, S2_EINTERNAL, "yaml",
                "cannot write YAML: %s", o->em.problem ? o->em.problem : "emitter error");
    }
}

/* Would this text, written plain, read back as something other than a string? */
static int looks_typed(const char *s)
{
    if (!*s || !strcmp(s, "~"))
        return 1;
    static const char *const words[] = {"null", "Null", "NULL", "true", "True", "TRUE",
                                        "false", "False", "FALSE", ".inf", ".Inf", ".INF",
                                        "-.inf", "+.inf", ".nan", ".NaN", ".NAN",
                                        /* YAML 1.1 booleans, for other readers' sake */
                                        "y", "Y", "n", "N", "yes", "Yes", "YES", "no", "No",
                                        "NO", "on", "On", "ON", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(s, words[i]))
            return 1;
    /* anything number-like: digits with signs, dots, exponents, 0x/0o prefixes */
    const char *c = s;
    if (*c == '+' || *c == '-')
        c++;
    if (!(*c == '.' || (*c >= '0' && *c <= '9')))
        return 0;
    for (const char *d = c; *d; d++)
        if (!strchr("0123456789.eE+-xXoabcdefABCDEF_", *d))
            return 0;
    return 1;
}

static void str(struct out *o, const char *s)
{
    yaml_event_t ev;
    int multiline = strchr(s, '\n') != NULL;
    int made = yaml_scalar_event_initialize(
        &ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), !looks_typed(s), 1,
        multiline ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    emit(o, &ev, made);
}

/* A number or boolean, written plain. */
static void raw(struct out *o, const char *s)
{
    yaml_event_t ev;
    int made = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1,
                                            0, YAML_PLAIN_SCALAR_STYLE);
    emit(o, &ev, made);
}

static void num(struct out *o, double v)
{
    char s[40];
    /* the shortest text that reads back as the same double */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    raw(o, s);
}

static void integer(struct out *o, int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    raw(o, s);
}

/* Micro-dollars as exact decimal dollars: 1500000 -> 1.5 */
static void dollars(struct out *o, int64_t micro)
{
    char s[40];
    snprintf(s, sizeof s, "%lld.%06lld", (long long)(micro / S2_MICRO),
             (long long)(micro % S2_MICRO));
    size_t n = strlen(s);
    while (s[n - 1] == '0')
        s[--n] = 0;
    if (s[n - 1] == '.')
        s[--n] = 0;
    raw(o, s);
}

static void boolean(struct out *o, int v)
{
    raw(o, v ? "true" : "false");
}

static void map_start(struct out *o, int flow)
{
    yaml_event_t ev;
    emit(o, &ev,
         yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                             flow ? YAML_FLOW_MAPPING_STYLE
                                                  : YAML_BLOCK_MAPPING_STYLE));
}

static void map_end(struct out *o)
{
    yaml_event_t ev;
    emit(o, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void seq_start(struct out *o, int flow)
{
    yaml_event_t ev;
    emit(o, &ev,
         yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                              flow ? YAML_FLOW_SEQUENCE_STYLE
                                                   : YAML_BLOCK_SEQUENCE_STYLE));
}

static void seq_end(struct out *o)
{
    yaml_event_t ev;
    emit(o, &ev, yaml_sequence_end_event_initialize(&ev));
}

static void key(struct out *o, const char *k)
{
    str(o, k);
}

static void list(struct out *o, const char *k, const struct strvec *v)
{
    key(o, k);
    seq_start(o, 1);
    for (size_t i = 0; i < v->n; i++)
        str(o, v->v[i]);
    seq_end(o);
}

static void write_policy(struct out *o, const struct plan_policy *pol)
{
    key(o, "policy");
    map_start(o, 0);
    for (int i = 0; i < PK_NKEYS; i++) {
        const struct plan_policy_value *v = &pol->v[i];
        if (!v->set)
            continue;
        key(o, plan_policy_keys[i].name);
        switch (plan_policy_keys[i].type) {
        case PV_PRESET:
        case PV_URL:
            str(o, v->s);
            break;
        case PV_RATIO:
            num(o, v->num);
            break;
        case PV_INT:
            integer(o, v->i);
            break;
        case PV_USD:
        case PV_USD_POSITIVE:
            dollars(o, v->i);
            break;
        case PV_BOOL:
            boolean(o, (int)v->i);
            break;
        }
    }
    map_end(o);
}

static void write_task(struct out *o, const struct plan_task *t, int idle)
{
    const struct task_spec *s = &t->spec;
    map_start(o, 0);
    if (s->id || !idle) {
        key(o, "id");
        str(o, s->id ? s->id : "");
    }
    key(o, "title");
    str(o, s->title ? s->title : "");
    if ((t->set & PT_BODY) && s->body) {
        key(o, "body");
        str(o, s->body);
    }
    if (s->requires.n)
        list(o, "requires", &s->requires);
    if (!idle && s->depends_on.n)
        list(o, "depends_on", &s->depends_on);
    if (!idle && s->paths.n)
        list(o, "paths", &s->paths);
    if (t->set & PT_MIN_TIER) {
        key(o, "min_tier");
        integer(o, s->min_tier);
    }
    if (t->set & PT_PRIORITY) {
        key(o, "priority");
        integer(o, s->priority);
    }
    if (t->set & PT_ESTIMATE_H) {
        key(o, "estimate_h");
        num(o, s->estimate_h);
    }
    if (t->set & PT_ESTIMATE_USD) {
        key(o, "estimate_usd");
        dollars(o, s->estimate_micro);
    }
    if (t->set & PT_MAX_COST) {
        key(o, "max_cost");
        dollars(o, s->max_cost_micro);
    }
    if (!idle) {
        if (t->set & PT_MAX_ATTEMPTS) {
            key(o, "max_attempts");
            integer(o, s->max_attempts);
        }
        if (t->set & PT_LEASE_MS) {
            key(o, "lease_ms");
            integer(o, s->lease_ms);
        }
        if (t->set & PT_BACKOFF) {
            key(o, "retry_backoff_ms");
            integer(o, s->backoff_ms);
        }
        if (t->set & PT_APPROVAL) {
            char a[24];
            model_format_approval(s->approval_kind, s->approval_n, a, sizeof a);
            key(o, "approval");
            str(o, a);
        }
        if (t->set & PT_PHASE_BARRIER) {
            key(o, "phase_barrier");
            boolean(o, s->phase_barrier);
        }
    }
    map_end(o);
}

static void write_contract(struct out *o, const struct plan_swarm *sw)
{
    const struct plan_contract *c = &sw->contract;
    key(o, "contract");
    map_start(o, 0);
    if (c->swarm) {
        key(o, "swarm");
        str(o, c->swarm);
    }
    if (c->version) {
        key(o, "version");
        str(o, c->version);
    }
    if (c->caps.n)
        list(o, "capabilities", &c->caps);
    int any = 0;
    for (int i = 0; i < PL_NLIMITS; i++)
        any |= c->limits[i] > 0;
    if (any) {
        key(o, "limits");
        map_start(o, 0);
        for (int i = 0; i < PL_NLIMITS; i++)
            if (c->limits[i] > 0) {
                key(o, plan_limit_names[i]);
                integer(o, c->limits[i]);
            }
        map_end(o);
    }
    any = 0;
    for (int i = 0; i < PS_NSLOS; i++)
        any |= c->slos[i] >= 0;
    if (any) {
        key(o, "slos");
        map_start(o, 0);
        for (int i = 0; i < PS_NSLOS; i++)
            if (c->slos[i] >= 0) {
                key(o, plan_slo_names[i]);
                num(o, c->slos[i]);
            }
        map_end(o);
    }
    if (c->network.n)
        list(o, "network", &c->network);
    if (c->secrets.n)
        list(o, "secrets", &c->secrets);
    map_end(o);
}

static int cmp_phase(const void *a, const void *b, void *ctx)
{
    const struct plan *p = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int64_t px = p->tasks[x].spec.phase, py = p->tasks[y].spec.phase;
    if (px != py)
        return px < py ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void write_swarm(struct out *o, const struct plan *p, size_t si)
{
    const struct plan_swarm *sw = &p->swarms[si];
    const struct swarm_spec *s = &sw->spec;
    map_start(o, 0);
    key(o, "id");
    str(o, s->id ? s->id : "");
    if (s->role && *s->role) {
        key(o, "role");
        str(o, s->role);
    }
    key(o, "relation");
    str(o, relation_name(s->relation));
    if (s->caps.n)
        list(o, "capabilities", &s->caps);
    if (sw->has_budget) {
        key(o, "budget");
        dollars(o, s->budget_micro);
    }
    if (s->branch && *s->branch) {
        key(o, "branch");
        str(o, s->branch);
    }
    if (sw->contract.present)
        write_contract(o, sw);
    size_t na = 0;
    for (size_t i = 0; i < p->nagents; i++)
        na += p->agents[i].swarm == si;
    if (na) {
        key(o, "agents");
        seq_start(o, 0);
        for (size_t i = 0; i < p->nagents; i++) {
            const struct plan_agent *a = &p->agents[i];
            if (a->swarm != si)
                continue;
            map_start(o, 1);
            key(o, "id");
            str(o, a->spec.id ? a->spec.id : "");
            if (a->spec.model) {
                key(o, "model");
                str(o, a->spec.model);
            }
            if (a->spec.caps.n)
                list(o, "capabilities", &a->spec.caps);
            if (a->has_max_leases) {
                key(o, "max_leases");
                integer(o, a->spec.max_leases);
            }
            map_end(o);
        }
        seq_end(o);
    }
    size_t ni = 0;
    for (size_t i = 0; i < p->nidle; i++)
        ni += p->idle[i].swarm == si;
    if (sw->has_idle || ni) {
        key(o, "idle_tasks");
        seq_start(o, 0);
        for (size_t i = 0; i < p->nidle; i++)
            if (p->idle[i].swarm == si)
                write_task(o, &p->idle[i], 1);
        seq_end(o);
    }
    size_t *ix = xcalloc(p->ntasks + 1, sizeof *ix), nt = 0;
    for (size_t i = 0; i < p->ntasks; i++)
        if (p->tasks[i].swarm == si)
            ix[nt++] = i;
    qsort_r(ix, nt, sizeof *ix, cmp_phase, (void *)p);
    if (nt) {
        key(o, "phases");
        seq_start(o, 0);
        for (size_t i = 0; i < nt;) {
            int64_t ph = p->tasks[ix[i]].spec.phase;
            map_start(o, 0);
            key(o, "phase");
            integer(o, ph);
            key(o, "tasks");
            seq_start(o, 0);
            for (; i < nt && p->tasks[ix[i]].spec.phase == ph; i++)
                write_task(o, &p->tasks[ix[i]], 0);
            seq_end(o);
            map_end(o);
        }
        seq_end(o);
    }
    free(ix);
    map_end(o);
}

int plan_write_yaml(const struct plan *p, struct buf *out, struct s2_error *err)
{
    struct out o = {.err = err};
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&o.em))
        return s2_fail(err, S2_EINTERNAL, "yaml", "cannot initialise the YAML emitter");
    yaml_emitter_set_output(&o.em, on_write, out);
    yaml_emitter_set_unicode(&o.em, 1);
    yaml_emitter_set_width(&o.em, 100);
    yaml_emitter_set_indent(&o.em, 2);
    emit(&o, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&o, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    map_start(&o, 0);
    if (p->policy.present)
        write_policy(&o, &p->policy);
    size_t nm = 0;
    for (size_t i = 0; i < p->nmodels; i++)
        nm += p->models[i].from_plan;
    if (nm) {
        key(&o, "models");
        seq_start(&o, 0);
        for (size_t i = 0; i < p->nmodels; i++) {
            const struct plan_model *m = &p->models[i];
            if (!m->from_plan)
                continue;
            map_start(&o, 1);
            key(&o, "name");
            str(&o, m->spec.name);
            key(&o, "tier");
            integer(&o, m->spec.tier);
            key(&o, "usd_per_mtok_in");
            dollars(&o, m->spec.usd_in_micro);
            key(&o, "usd_per_mtok_out");
            dollars(&o, m->spec.usd_out_micro);
            map_end(&o);
        }
        seq_end(&o);
    }
    key(&o, "swarms");
    seq_start(&o, 0);
    for (size_t i = 0; i < p->nswarms; i++)
        write_swarm(&o, p, i);
    seq_end(&o);
    map_end(&o);
    emit(&o, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&o, &ev, yaml_stream_end_event_initialize(&ev));
    if (!o.failed && !yaml_emitter_flush(&o.em)) {
        o.failed = 1;
        s2_fail(err, S2_EINTERNAL, "yaml", "cannot write YAML");
    }
    yaml_emitter_delete(&o.em);
    return o.failed ? -1 : 0;
}
