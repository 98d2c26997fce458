/* report.c: the velocity and cost report, computed from witness entries alone (models,
 * claims, lease ends, usage, blockers). It must never guess: a lease whose start it did not
 * see is not counted, and the numbers say what they measured (docs/REPORT.md). */
#include "report.h"
#include "model.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tier_cost {
    int tier;
    int64_t usd, top_usd, tokens_in, tokens_out, reports;
    struct strvec models;
};

struct stats {
    char *swarm; /* NULL: overall */
    int64_t seq_ms, first_claim, last_end; /* first_claim 0: no lease seen */
    int64_t leases, done, failed, expired, dead, cancelled;
    int64_t help_done, help_ms;
    struct tier_cost *tiers;
    size_t ntiers, captiers;
    int64_t blockers, resolved, helped, blocked_ms, max_blocked_ms, first_help_ms, help_clear_ms;
    int64_t open, open_ms;
};

struct trec {
    char *id;
    uint32_t swarm;
    int help;
    int leased;
    int64_t start;
    int blocked;
    int64_t block_start, first_help;
    int helpers;
};

struct mrec {
    char *name;
    int tier;
    int64_t in, out;
};

struct report {
    int64_t since;
    char *only;
    struct mrec *models;
    size_t nmodels, capmodels;
    struct map task_ix, swarm_ix;
    struct trec *tasks;
    size_t ntasks, captasks;
    struct stats *sw;
    size_t nsw, capsw;
    struct stats all;
    int64_t entries, skipped, until, from_time;
};

struct report *report_new(int64_t since_ms, const char *swarm)
{
    struct report *r = xcalloc(1, sizeof *r);
    r->since = since_ms;
    r->only = swarm ? xstrdup(swarm) : NULL;
    map_init(&r->task_ix);
    map_init(&r->swarm_ix);
    return r;
}

static void stats_release(struct stats *s)
{
    for (size_t i = 0; i < s->ntiers; i++)
        strvec_release(&s->tiers[i].models);
    free(s->tiers);
    free(s->swarm);
}

void report_free(struct report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nmodels; i++)
        free(r->models[i].name);
    for (size_t i = 0; i < r->ntasks; i++)
        free(r->tasks[i].id);
    for (size_t i = 0; i < r->nsw; i++)
        stats_release(&r->sw[i]);
    stats_release(&r->all);
    map_release(&r->task_ix);
    map_release(&r->swarm_ix);
    free(r->models);
    free(r->tasks);
    free(r->sw);
    free(r->only);
    free(r);
}

void report_model(struct report *r, const char *name, int tier, int64_t in, int64_t out)
{
    for (size_t i = 0; i < r->nmodels; i++)
        if (!strcmp(r->models[i].name, name)) {
            r->models[i].tier = tier;
            r->models[i].in = in;
            r->models[i].out = out;
            return;
        }
    r->models = xgrow(r->models, sizeof *r->models, r->nmodels + 1, &r->capmodels);
    r->models[r->nmodels++] = (struct mrec){xstrdup(name), tier, in, out};
}

/* The top tier's model: the highest tier; among equals, the dearest. */
static const struct mrec *top_model(const struct report *r)
{
    const struct mrec *best = NULL;
    for (size_t i = 0; i < r->nmodels; i++) {
        const struct mrec *m = &r->models[i];
        if (!best || m->tier > best->tier ||
            (m->tier == best->tier && m->in + m->out > best->in + best->out))
            best = m;
    }
    return best;
}

static uint32_t swarm_of(struct report *r, const char *id)
{
    if (!id)
        return MAP_NONE;
    uint32_t i = map_get(&r->swarm_ix, id);
    if (i != MAP_NONE)
        return i;
    /* the map's keys are the names' own allocations: they do not move with the table */
    r->sw = xgrow(r->sw, sizeof *r->sw, r->nsw + 1, &r->capsw);
    memset(&r->sw[r->nsw], 0, sizeof *r->sw);
    r->sw[r->nsw].swarm = xstrdup(id);
    map_put(&r->swarm_ix, r->sw[r->nsw].swarm, (uint32_t)r->nsw);
    return (uint32_t)r->nsw++;
}

static struct trec *task_of(struct report *r, const char *id, uint32_t swarm)
{
    uint32_t i = map_get(&r->task_ix, id);
    if (i != MAP_NONE)
        return &r->tasks[i];
    r->tasks = xgrow(r->tasks, sizeof *r->tasks, r->ntasks + 1, &r->captasks);
    struct trec *t = &r->tasks[r->ntasks];
    memset(t, 0, sizeof *t);
    t->id = xstrdup(id);
    t->swarm = swarm;
    map_put(&r->task_ix, t->id, (uint32_t)r->ntasks++);
    return t;
}

static struct tier_cost *tier_of(struct stats *s, int tier)
{
    for (size_t i = 0; i < s->ntiers; i++)
        if (s->tiers[i].tier == tier)
            return &s->tiers[i];
    s->tiers = xgrow(s->tiers, sizeof *s->tiers, s->ntiers + 1, &s->captiers);
    size_t i = s->ntiers++;
    /* kept sorted by tier */
    while (i && s->tiers[i - 1].tier > tier) {
        s->tiers[i] = s->tiers[i - 1];
        i--;
    }
    memset(&s->tiers[i], 0, sizeof s->tiers[i]);
    s->tiers[i].tier = tier;
    return &s->tiers[i];
}

static int64_t iget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *sget(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* A model.put price in micro-USD per million tokens: usd_per_mtok_DIR (dollars, as the
 * engine writes it), else usd_DIR_micro (micro-dollars), which logs written before the
 * two shapes were made one hold for changes made through POST /v1/models. */
static int64_t price_micro(json_t *o, const char *dir)
{
    char k[32];
    snprintf(k, sizeof k, "usd_per_mtok_%s", dir);
    json_t *v = json_object_get(o, k);
    if (json_is_number(v))
        return (int64_t)(json_number_value(v) * 1e6 + 0.5);
    snprintf(k, sizeof k, "usd_%s_micro", dir);
    return iget(o, k);
}

/* Apply fn to the swarm's stats and the overall ones. */
#define BOTH(r, si, stmt)                                                                      \
    do {                                                                                       \
        struct stats *S_ = &(r)->sw[si];                                                       \
        stmt;                                                                                  \
        S_ = &(r)->all;                                                                        \
        stmt;                                                                                  \
    } while (0)

static void lease_end(struct report *r, struct trec *t, int64_t time, int done)
{
    int64_t d = time - t->start;
    if (d < 0)
        d = 0;
    uint32_t si = t->swarm;
    BOTH(r, si, {
        if (time > S_->last_end)
            S_->last_end = time;
        if (done) {
            S_->done++;
            S_->seq_ms += d;
            if (t->help) {
                S_->help_done++;
                S_->help_ms += d;
            }
        }
    });
    t->leased = 0;
}

void report_add(struct report *r, json_t *e)
{
    const char *op = sget(e, "op"), *task = sget(e, "task"), *swarm = sget(e, "swarm");
    json_t *tm = json_object_get(e, "time");
    if (!op || !json_is_integer(tm)) {
        r->skipped++;
        return;
    }
    int64_t time = (int64_t)json_integer_value(tm);
    r->entries++;
    if (time > r->until)
        r->until = time;
    if (!r->from_time || time < r->from_time)
        r->from_time = time;
    json_t *p = json_object_get(e, "params"), *parsed = NULL;
    if (json_is_string(p))
        p = parsed = json_loads(json_string_value(p), 0, NULL);
    if (!json_is_object(p)) {
        r->skipped++;
        json_decref(parsed);
        return;
    }
    if (!strcmp(op, "model.put")) {
        const char *name = sget(p, "name");
        if (name) /* the engine writes USD per million tokens (usd_per_mtok_in/out) */
            report_model(r, name, (int)iget(p, "tier"), price_micro(p, "in"),
                         price_micro(p, "out"));
        goto out;
    }
    if (!task || !swarm || (r->only && strcmp(r->only, swarm)))
        goto out;
    uint32_t si = swarm_of(r, swarm);
    int in_window = time >= r->since;
    if (!strcmp(op, "task.create")) {
        const char *kind = sget(p, "kind");
        task_of(r, task, si)->help = kind && !strcmp(kind, "help");
    } else if (!strcmp(op, "task.claim")) {
        struct trec *t = task_of(r, task, si);
        if (!in_window) {
            t->leased = 0; /* began before the window: not counted */
            goto out;
        }
        t->leased = 1;
        t->start = time;
        BOTH(r, si, {
            S_->leases++;
            if (!S_->first_claim || time < S_->first_claim)
                S_->first_claim = time;
        });
    } else if (!strcmp(op, "task.done") || !strcmp(op, "task.fail") ||
               !strcmp(op, "task.expire") || !strcmp(op, "task.release") ||
               !strcmp(op, "task.cancel")) {
        struct trec *t = task_of(r, task, si);
        const char *next = sget(p, "next");
        int dead = next && !strcmp(next, "dead");
        if (!strcmp(op, "task.cancel") && in_window)
            BOTH(r, si, S_->cancelled++);
        if (!t->leased)
            goto out;
        if (!strcmp(op, "task.fail"))
            BOTH(r, si, { S_->failed++; S_->dead += dead; });
        else if (!strcmp(op, "task.expire"))
            BOTH(r, si, { S_->expired++; S_->dead += dead; });
        lease_end(r, t, time, !strcmp(op, "task.done"));
    } else if (!strcmp(op, "task.usage")) {
        if (!in_window)
            goto out;
        int tier = (int)iget(p, "tier");
        int64_t usd = iget(p, "usd_micro"), tin = iget(p, "tokens_in"), tout = iget(p, "tokens_out");
        const char *priced = sget(p, "priced"), *model = sget(p, "model");
        const struct mrec *top = top_model(r);
        /* the same tokens on the top tier; usage reported in dollars is taken as it is */
        int64_t top_usd = priced && !strcmp(priced, "tokens") && top
                              ? model_price(tin, tout, top->in, top->out)
                              : usd;
        BOTH(r, si, {
            struct tier_cost *tc = tier_of(S_, tier);
            tc->usd += usd;
            tc->top_usd += top_usd;
            tc->tokens_in += tin;
            tc->tokens_out += tout;
            tc->reports++;
            if (model && strvec_find(&tc->models, model) < 0)
                strvec_push(&tc->models, model);
        });
    } else if (!strcmp(op, "task.block")) {
        if (!in_window)
            goto out;
        struct trec *t = task_of(r, task, si);
        t->blocked = 1;
        t->block_start = time;
        t->first_help = 0;
        t->helpers = 0;
        BOTH(r, si, S_->blockers++);
    } else if (!strcmp(op, "blocker.help")) {
        struct trec *t = task_of(r, task, si);
        if (t->blocked) {
            if (!t->first_help)
                t->first_help = time;
            t->helpers++;
        }
    } else if (!strcmp(op, "blocker.resolve")) {
        struct trec *t = task_of(r, task, si);
        if (!t->blocked)
            goto out;
        int64_t d = time - t->block_start;
        BOTH(r, si, {
            S_->resolved++;
            S_->blocked_ms += d;
            if (d > S_->max_blocked_ms)
                S_->max_blocked_ms = d;
            if (t->first_help) {
                S_->helped++;
                S_->first_help_ms += t->first_help - t->block_start;
                S_->help_clear_ms += time - t->first_help;
            }
        });
        t->blocked = 0;
    }
out:
    json_decref(parsed);
}

static json_t *opt_real(int ok, double v)
{
    return ok && isfinite(v) ? json_real(v) : json_null();
}

static json_t *usd_json(int64_t micro)
{
    return json_real((double)micro / 1e6);
}

static json_t *stats_json(const struct report *r, const struct stats *s)
{
    /* blockers still open: their time so far, to the last entry read */
    int64_t open = 0, open_ms = 0;
    for (size_t i = 0; i < r->ntasks; i++) {
        const struct trec *t = &r->tasks[i];
        if (t->blocked && (!s->swarm || !strcmp(r->sw[t->swarm].swarm, s->swarm))) {
            open++;
            open_ms += r->until - t->block_start;
        }
    }
    int64_t makespan = s->first_claim && s->last_end > s->first_claim ? s->last_end - s->first_claim
                                                                       : 0;
    int64_t usd = 0, top = 0;
    json_t *tiers = json_array();
    for (size_t i = 0; i < s->ntiers; i++) {
        const struct tier_cost *tc = &s->tiers[i];
        usd += tc->usd;
        top += tc->top_usd;
        json_t *models = json_array();
        for (size_t k = 0; k < tc->models.n; k++)
            json_array_append_new(models, json_string(tc->models.v[k]));
        json_array_append_new(
            tiers, json_pack("{s:i,s:o,s:I,s:I,s:I,s:o,s:I,s:o,s:I}", "tier", tc->tier, "models",
                             models, "reports", (json_int_t)tc->reports, "tokens_in",
                             (json_int_t)tc->tokens_in, "tokens_out", (json_int_t)tc->tokens_out,
                             "usd", usd_json(tc->usd), "usd_micro", (json_int_t)tc->usd,
                             "top_tier_usd", usd_json(tc->top_usd), "top_tier_usd_micro",
                             (json_int_t)tc->top_usd));
    }
    const struct mrec *tm = top_model(r);
    json_t *o = json_object();
    json_object_set_new(o, "swarm", s->swarm ? json_string(s->swarm) : json_null());
    json_object_set_new(o, "tasks",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "leases", (json_int_t)s->leases,
                                  "done", (json_int_t)s->done, "failed", (json_int_t)s->failed,
                                  "expired", (json_int_t)s->expired, "dead", (json_int_t)s->dead,
                                  "cancelled", (json_int_t)s->cancelled));
    json_object_set_new(
        o, "velocity",
        json_pack("{s:I,s:I,s:o,s:o,s:o,s:f,s:f}", "sequential_ms", (json_int_t)s->seq_ms,
                  "makespan_ms", (json_int_t)makespan, "speedup",
                  opt_real(makespan > 0, (double)s->seq_ms / (double)makespan), "first_claim",
                  s->first_claim ? json_integer(s->first_claim) : json_null(), "last_end",
                  s->last_end ? json_integer(s->last_end) : json_null(), "sequential_h",
                  s->seq_ms / 3.6e6, "makespan_h", makespan / 3.6e6));
    json_object_set_new(
        o, "cost",
        json_pack("{s:o,s:I,s:o,s:I,s:o,s:I,s:o,s:o,s:o}", "usd", usd_json(usd), "usd_micro",
                  (json_int_t)usd, "top_tier_usd", usd_json(top), "top_tier_usd_micro",
                  (json_int_t)top, "saving_usd", usd_json(top - usd), "saving_usd_micro",
                  (json_int_t)(top - usd), "saving_pct",
                  opt_real(top > 0, 100.0 * (double)(top - usd) / (double)top), "top_tier",
                  tm ? json_pack("{s:i,s:s}", "tier", tm->tier, "model", tm->name) : json_null(),
                  "tiers", tiers));
    json_object_set_new(
        o, "blockers",
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:o,s:o,s:I,s:I}", "count",
                  (json_int_t)s->blockers, "resolved", (json_int_t)s->resolved, "open",
                  (json_int_t)open, "helped", (json_int_t)s->helped, "blocked_ms",
                  (json_int_t)s->blocked_ms, "mean_blocked_ms",
                  opt_real(s->resolved > 0, (double)s->blocked_ms / (double)s->resolved),
                  "max_blocked_ms", (json_int_t)s->max_blocked_ms, "open_ms", (json_int_t)open_ms,
                  "time_to_first_helper_ms", (json_int_t)s->first_help_ms,
                  "mean_time_to_first_helper_ms",
                  opt_real(s->helped > 0, (double)s->first_help_ms / (double)s->helped),
                  "mean_help_to_clear_ms",
                  opt_real(s->helped > 0, (double)s->help_clear_ms / (double)s->helped),
                  "help_to_clear_ms", (json_int_t)s->help_clear_ms, "helper_leases_done",
                  (json_int_t)s->help_done));
    json_object_set_new(json_object_get(o, "blockers"), "helper_ms", json_integer(s->help_ms));
    return o;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct stats *)a)->swarm, ((const struct stats *)b)->swarm);
}

json_t *report_json(struct report *r)
{
    /* sorted by swarm; the index is rebuilt for what follows */
    if (r->nsw > 1)
        qsort(r->sw, r->nsw, sizeof *r->sw, by_name);
    uint32_t *remap = xcalloc(r->nsw ? r->nsw : 1, sizeof *remap);
    for (size_t k = 0; k < r->nsw; k++)
        remap[map_get(&r->swarm_ix, r->sw[k].swarm)] = (uint32_t)k;
    map_release(&r->swarm_ix);
    map_init(&r->swarm_ix);
    for (size_t k = 0; k < r->nsw; k++)
        map_put(&r->swarm_ix, r->sw[k].swarm, (uint32_t)k);
    for (size_t i = 0; i < r->ntasks; i++)
        r->tasks[i].swarm = remap[r->tasks[i].swarm];
    free(remap);
    json_t *list = json_array();
    for (size_t k = 0; k < r->nsw; k++)
        json_array_append_new(list, stats_json(r, &r->sw[k]));
    json_t *o = json_object();
    json_object_set_new(o, "since", r->since ? json_integer(r->since) : json_null());
    json_object_set_new(o, "from", r->from_time ? json_integer(r->from_time) : json_null());
    json_object_set_new(o, "until", r->until ? json_integer(r->until) : json_null());
    json_object_set_new(o, "entries", json_integer(r->entries));
    json_object_set_new(o, "skipped", json_integer(r->skipped));
    json_object_set_new(o, "swarms", list);
    json_object_set_new(o, "overall", stats_json(r, &r->all));
    return o;
}

/* ---- Markdown ---- */

static double num(json_t *o, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

static void dur(char *out, size_t n, double ms)
{
    if (ms < 1000)
        snprintf(out, n, "%.0f ms", ms);
    else if (ms < 120000)
        snprintf(out, n, "%.1f s", ms / 1000);
    else if (ms < 7200000)
        snprintf(out, n, "%.1f min", ms / 60000);
    else
        snprintf(out, n, "%.1f h", ms / 3600000);
}

static void md_escape(struct buf *b, const char *s)
{
    for (; s && *s; s++)
        if (*s == '|')
            buf_adds(b, "\\|");
        else if (*s == '\n')
            buf_addch(b, ' ');
        else
            buf_addch(b, *s);
}

static const char *label(json_t *s)
{
    const char *n = json_string_value(json_object_get(s, "swarm"));
    return n ? n : "overall";
}

char *report_markdown(json_t *rep)
{
    struct buf b = BUF_INIT;
    json_t *all = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(rep, "swarms"), i, s) json_array_append(all, s);
    json_array_append(all, json_object_get(rep, "overall"));
    buf_adds(&b, "# Velocity and cost (measured from the witness log)\n\n");
    json_t *from = json_object_get(rep, "from"), *until = json_object_get(rep, "until");
    if (json_is_integer(from) && json_is_integer(until)) {
        char f[40], u[40];
        clock_format_iso(json_integer_value(from), f, sizeof f);
        clock_format_iso(json_integer_value(until), u, sizeof u);
        buf_addf(&b, "Entries %s to %s (%lld read).\n\n", f, u,
                 (long long)json_integer_value(json_object_get(rep, "entries")));
    }
    buf_adds(&b, "## Velocity\n\n| swarm | leases | done | failed | expired | dead | sequential "
                 "| makespan | speedup |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    json_array_foreach(all, i, s) {
        char sq[32], mk[32], sp[32] = "-";
        dur(sq, sizeof sq, num(s, "velocity", "sequential_ms"));
        dur(mk, sizeof mk, num(s, "velocity", "makespan_ms"));
        json_t *v = json_object_get(json_object_get(s, "velocity"), "speedup");
        if (json_is_number(v))
            snprintf(sp, sizeof sp, "%.2fx", json_number_value(v));
        json_t *t = json_object_get(s, "tasks");
        buf_adds(&b, "| ");
        md_escape(&b, label(s));
        buf_addf(&b, " | %lld | %lld | %lld | %lld | %lld | %s | %s | %s |\n",
                 (long long)iget(t, "leases"), (long long)iget(t, "done"),
                 (long long)iget(t, "failed"), (long long)iget(t, "expired"),
                 (long long)iget(t, "dead"), sq, mk, sp);
    }
    json_t *ov = json_object_get(rep, "overall");
    json_t *tt = json_object_get(json_object_get(ov, "cost"), "top_tier");
    buf_addf(&b, "\n## Cost by model tier\n\nThe top tier is tier %lld (%s): the same tokens priced "
                 "there give the comparison.\n\n| swarm | tier | models | tokens in | tokens out | "
                 "cost (USD) | at the top tier (USD) |\n|---|---:|---|---:|---:|---:|---:|\n",
             (long long)iget(tt, "tier"),
             json_string_value(json_object_get(tt, "model")) ? json_string_value(json_object_get(tt, "model"))
                                                             : "unknown");
    json_array_foreach(all, i, s) {
        size_t k;
        json_t *tc;
        json_array_foreach(json_object_get(json_object_get(s, "cost"), "tiers"), k, tc) {
            buf_adds(&b, "| ");
            md_escape(&b, label(s));
            buf_addf(&b, " | %lld | ", (long long)iget(tc, "tier"));
            size_t m;
            json_t *mv;
            json_array_foreach(json_object_get(tc, "models"), m, mv) {
                if (m)
                    buf_adds(&b, ", ");
                md_escape(&b, json_string_value(mv));
            }
            buf_addf(&b, " | %lld | %lld | %.6f | %.6f |\n", (long long)iget(tc, "tokens_in"),
                     (long long)iget(tc, "tokens_out"), json_number_value(json_object_get(tc, "usd")),
                     json_number_value(json_object_get(tc, "top_tier_usd")));
        }
    }
    buf_adds(&b, "\n| swarm | cost (USD) | all on the top tier (USD) | saving (USD) | saving |\n"
                 "|---|---:|---:|---:|---:|\n");
    json_array_foreach(all, i, s) {
        json_t *c = json_object_get(s, "cost");
        json_t *pct = json_object_get(c, "saving_pct");
        char p[32] = "-";
        if (json_is_number(pct))
            snprintf(p, sizeof p, "%.1f%%", json_number_value(pct));
        buf_adds(&b, "| ");
        md_escape(&b, label(s));
        buf_addf(&b, " | %.6f | %.6f | %.6f | %s |\n", num(s, "cost", "usd"),
                 num(s, "cost", "top_tier_usd"), num(s, "cost", "saving_usd"), p);
    }
    buf_adds(&b, "\n## Blockers\n\n| swarm | blockers | resolved | open | helped | time blocked "
                 "| mean to first helper | mean help to clear | helper time |\n"
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    json_array_foreach(all, i, s) {
        json_t *bl = json_object_get(s, "blockers");
        char tb[32], fh[32] = "-", hc[32] = "-", ht[32];
        dur(tb, sizeof tb, (double)(iget(bl, "blocked_ms") + iget(bl, "open_ms")));
        if (json_is_number(json_object_get(bl, "mean_time_to_first_helper_ms")))
            dur(fh, sizeof fh, num(s, "blockers", "mean_time_to_first_helper_ms"));
        if (json_is_number(json_object_get(bl, "mean_help_to_clear_ms")))
            dur(hc, sizeof hc, num(s, "blockers", "mean_help_to_clear_ms"));
        dur(ht, sizeof ht, (double)iget(bl, "helper_ms"));
        buf_adds(&b, "| ");
        md_escape(&b, label(s));
        buf_addf(&b, " | %lld | %lld | %lld | %lld | %s | %s | %s | %s |\n",
                 (long long)iget(bl, "count"), (long long)iget(bl, "resolved"),
                 (long long)iget(bl, "open"), (long long)iget(bl, "helped"), tb, fh, hc, ht);
    }
    buf_adds(&b, "\nDefinitions: docs/REPORT.md.\n");
    json_decref(all);
    return buf_detach(&b, NULL);
}

/* ---- SVG ---- */

static void xml(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': buf_adds(b, "&amp;"); break;
        case '<': buf_adds(b, "&lt;"); break;
        case '>': buf_adds(b, "&gt;"); break;
        case '"': buf_adds(b, "&quot;"); break;
        case '\'': buf_adds(b, "&#39;"); break;
        default:
            if ((unsigned char)*s >= 0x20)
                buf_addch(b, *s);
        }
    }
}

static void bar(struct buf *b, double x, double y, double w, double h, const char *color,
                const char *title)
{
    buf_addf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
             x, y, w > 0 ? w : 0, h, color);
    xml(b, title);
    buf_adds(b, "</title></rect>\n");
}

static void text(struct buf *b, double x, double y, const char *anchor, const char *weight,
                 const char *s)
{
    buf_addf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-weight=\"%s\">", x, y, anchor,
             weight);
    xml(b, s);
    buf_adds(b, "</text>\n");
}

char *report_svg(json_t *rep)
{
    const double W = 860, L = 170, R = 150, BAR = 12, GAP = 10;
    const double plot = W - L - R;
    json_t *all = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(rep, "swarms"), i, s) json_array_append(all, s);
    json_array_append(all, json_object_get(rep, "overall"));
    size_t n = json_array_size(all);
    double maxt = 0, maxc = 0;
    json_array_foreach(all, i, s) {
        maxt = fmax(maxt, fmax(num(s, "velocity", "sequential_ms"), num(s, "velocity", "makespan_ms")));
        maxc = fmax(maxc, fmax(num(s, "cost", "usd"), num(s, "cost", "top_tier_usd")));
    }
    double row = 2 * BAR + GAP;
    double h1 = 40 + n * row, h2 = 40 + n * row;
    double H = 30 + h1 + h2 + 40;
    struct buf b = BUF_INIT;
    buf_addf(&b,
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 "
             "%.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
             "<title>s2 report: velocity and cost measured from the witness log</title>\n"
             "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
             W, H, W, H);
    double y = 22;
    text(&b, 10, y, "start", "bold", "Velocity: sequential equivalent vs wall-clock makespan");
    y += 18;
    bar(&b, L, y - 9, 10, 8, "#9db4d8", "sequential");
    text(&b, L + 14, y, "start", "normal", "sequential (sum of task durations)");
    bar(&b, L + 240, y - 9, 10, 8, "#2f5fa7", "makespan");
    text(&b, L + 254, y, "start", "normal", "makespan (first claim to last lease end)");
    y += 10;
    json_array_foreach(all, i, s) {
        char t1[160], t2[160], lab[400], a[32], m[32];
        double sq = num(s, "velocity", "sequential_ms"), mk = num(s, "velocity", "makespan_ms");
        dur(a, sizeof a, sq);
        dur(m, sizeof m, mk);
        snprintf(t1, sizeof t1, "%s: sequential %s", label(s), a);
        snprintf(t2, sizeof t2, "%s: makespan %s", label(s), m);
        bar(&b, L, y, maxt > 0 ? plot * sq / maxt : 0, BAR, "#9db4d8", t1);
        bar(&b, L, y + BAR, maxt > 0 ? plot * mk / maxt : 0, BAR, "#2f5fa7", t2);
        text(&b, L - 8, y + BAR + 4, "end", i + 1 == n ? "bold" : "normal", label(s));
        json_t *sp = json_object_get(json_object_get(s, "velocity"), "speedup");
        if (json_is_number(sp))
            snprintf(lab, sizeof lab, "%.2fx (%s / %s)", json_number_value(sp), a, m);
        else
            snprintf(lab, sizeof lab, "- (%s / %s)", a, m);
        text(&b, W - R + 8, y + BAR + 4, "start", "normal", lab);
        y += row;
    }
    y += 24;
    text(&b, 10, y, "start", "bold", "Cost: as routed by tier vs the same tokens on the top tier (USD)");
    y += 18;
    bar(&b, L, y - 9, 10, 8, "#3c8d5a", "actual");
    text(&b, L + 14, y, "start", "normal", "actual cost");
    bar(&b, L + 240, y - 9, 10, 8, "#c9c9c9", "top tier");
    text(&b, L + 254, y, "start", "normal", "everything on the top tier");
    y += 10;
    json_array_foreach(all, i, s) {
        char t1[160], t2[160], lab[96];
        double c = num(s, "cost", "usd"), top = num(s, "cost", "top_tier_usd");
        snprintf(t1, sizeof t1, "%s: $%.6f", label(s), c);
        snprintf(t2, sizeof t2, "%s: $%.6f on the top tier", label(s), top);
        bar(&b, L, y, maxc > 0 ? plot * c / maxc : 0, BAR, "#3c8d5a", t1);
        bar(&b, L, y + BAR, maxc > 0 ? plot * top / maxc : 0, BAR, "#c9c9c9", t2);
        text(&b, L - 8, y + BAR + 4, "end", i + 1 == n ? "bold" : "normal", label(s));
        json_t *pct = json_object_get(json_object_get(s, "cost"), "saving_pct");
        if (json_is_number(pct))
            snprintf(lab, sizeof lab, "$%.4f, saves %.1f%%", c, json_number_value(pct));
        else
            snprintf(lab, sizeof lab, "$%.4f", c);
        text(&b, W - R + 8, y + BAR + 4, "start", "normal", lab);
        y += row;
    }
    json_t *bl = json_object_get(json_object_get(rep, "overall"), "blockers");
    char line[200], tb[32], fh[32] = "-", hc[32] = "-";
    dur(tb, sizeof tb, (double)(iget(bl, "blocked_ms") + iget(bl, "open_ms")));
    if (json_is_number(json_object_get(bl, "mean_time_to_first_helper_ms")))
        dur(fh, sizeof fh, json_number_value(json_object_get(bl, "mean_time_to_first_helper_ms")));
    if (json_is_number(json_object_get(bl, "mean_help_to_clear_ms")))
        dur(hc, sizeof hc, json_number_value(json_object_get(bl, "mean_help_to_clear_ms")));
    snprintf(line, sizeof line,
             "Blockers: %lld (%lld resolved, %lld open), %s blocked; first helper after %s, "
             "helpers cleared them in %s (means)",
             (long long)iget(bl, "count"), (long long)iget(bl, "resolved"),
             (long long)iget(bl, "open"), tb, fh, hc);
    text(&b, 10, y + 18, "start", "normal", line);
    buf_adds(&b, "</svg>\n");
    json_decref(all);
    return buf_detach(&b, NULL);
}
