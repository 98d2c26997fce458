/* api_system.c: the server itself: /healthz, /metrics (Prometheus text), /v1/whoami,
 * /v1/status, /v1/models, /v1/events (SSE) and the dashboard's static files. */
#include "api.h"
#include "events.h"
#include "json.h"
#include "util/buf.h"
#include "util/xalloc.h"
#include "version.h"
#include "web.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void health_reply(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    int degraded = json_is_true(json_object_get(c->out.json, "store_unavailable"));
    json_t *o = json_pack("{s:s,s:s,s:O,s:O}", "status", degraded ? "degraded" : "ok",
                          "version", S2_VERSION, "durability",
                          json_object_get(c->out.json, "durability"), "event_seq",
                          json_object_get(c->out.json, "event_seq"));
    http_reply_json(r, degraded ? 503 : 200, o);
    if (degraded)
        http_set_header(r, "Retry-After", "1");
}

void api_healthz(struct request *r)
{
    /* answered by the engine thread, so a wedged engine shows as a hung health check */
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_STATS;
    http_submit(r, c, health_reply);
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static void metric(struct buf *b, const char *name, const char *type, const char *help,
                   json_t *v)
{
    buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
             json_number_value(v));
}

static void histogram(struct buf *b, const char *name, const char *help, json_t *counts,
                      const double *bounds, size_t nb, double sum, double count)
{
    buf_addf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    double acc = 0;
    for (size_t i = 0; i <= nb; i++) {
        acc += (double)json_integer_value(json_array_get(counts, i));
        if (i < nb)
            buf_addf(b, "%s_bucket{le=\"%g\"} %.0f\n", name, bounds[i], acc);
        else
            buf_addf(b, "%s_bucket{le=\"+Inf\"} %.0f\n", name, acc);
    }
    buf_addf(b, "%s_sum %.9g\n%s_count %.0f\n", name, sum, name, count);
}

static void metrics_reply(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    json_t *s = c->out.json;
    struct buf b = BUF_INIT;
    buf_adds(&b, "# HELP s2_tasks Tasks by state.\n# TYPE s2_tasks gauge\n");
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(s, "tasks"), key, v)
        buf_addf(&b, "s2_tasks{state=\"%s\"} %lld\n", key, (long long)json_integer_value(v));
    metric(&b, "s2_swarms", "gauge", "Swarms.", json_object_get(s, "swarms"));
    metric(&b, "s2_agents", "gauge", "Registered agents.", json_object_get(s, "agents"));
    metric(&b, "s2_waiting_claims", "gauge", "Claims waiting for work (long-poll).",
           json_object_get(s, "waiting_claims"));
    metric(&b, "s2_leases_held", "gauge", "Live leases.", json_object_get(s, "leases_held"));
    metric(&b, "s2_claims_total", "counter", "Tasks handed to agents.",
           json_object_get(s, "claims"));
    metric(&b, "s2_pushes_total", "counter", "Tasks handed to a claim that was waiting.",
           json_object_get(s, "pushes"));
    metric(&b, "s2_leases_expired_total", "counter", "Leases that expired.",
           json_object_get(s, "leases_expired"));
    metric(&b, "s2_events_total", "counter", "State-change events.", json_object_get(s, "events"));
    metric(&b, "s2_batches_total", "counter", "Engine batches.", json_object_get(s, "batches"));
    metric(&b, "s2_commands_total", "counter", "Engine commands.", json_object_get(s, "commands"));
    metric(&b, "s2_store_commit_failures_total", "counter", "Failed store commits.",
           json_object_get(s, "commit_failures"));
    static const double commit_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                           0.025,  0.05,    0.1,    0.25,  0.5,    1};
    histogram(&b, "s2_store_commit_seconds", "Store commit latency (one per batch).",
              json_object_get(s, "commit_hist"), commit_bounds, 13,
              json_number_value(json_object_get(s, "commit_seconds_total")),
              json_number_value(json_object_get(s, "commits")));
    histogram(&b, "s2_claim_seconds",
              "Claims that found a task: arrival to reply (durable), for claims not pushed.",
              json_object_get(s, "claim_hist"), commit_bounds, 13,
              json_number_value(json_object_get(s, "claim_seconds_total")),
              json_number_value(json_object_get(s, "claims_timed")));
    histogram(&b, "s2_push_seconds",
              "Push: a task becomes ready to a waiting claimer's reply (durable).",
              json_object_get(s, "push_hist"), commit_bounds, 13,
              json_number_value(json_object_get(s, "push_seconds_total")),
              json_number_value(json_object_get(s, "pushes_timed")));
    metric(&b, "s2_breakers_open", "gauge", "Agents stopped by their circuit breaker.",
           json_object_get(s, "breakers_open"));
    metric(&b, "s2_breakers_half_open", "gauge", "Agents on a half-open breaker (one trial).",
           json_object_get(s, "breakers_half_open"));
    metric(&b, "s2_swarms_tripped", "gauge", "Swarms tripped by a spent budget.",
           json_object_get(s, "swarms_tripped"));
    metric(&b, "s2_swarms_budget_alert", "gauge", "Swarms past the budget alert share.",
           json_object_get(s, "swarms_over_alert"));
    metric(&b, "s2_blockers_open", "gauge", "Tasks reported blocked and not yet resolved.",
           json_object_get(s, "blockers_open"));
    metric(&b, "s2_escalations_total", "counter", "Escalations raised since start.",
           json_object_get(s, "escalations"));
    /* one family at a time: the exposition format wants each family's samples together */
    static const char *const fam[3][3] = {
        {"spent", "Spent, per swarm and global.", "global_spent"},
        {"limit", "Budget, per swarm and global (0: none).", "global_limit"},
        {"reserved", "Reserved by leases in flight.", "global_reserved"}};
    for (int f = 0; f < 3; f++) {
        buf_addf(&b, "# HELP s2_budget_%s_usd %s\n# TYPE s2_budget_%s_usd gauge\n", fam[f][0],
                 fam[f][1], fam[f][0]);
        buf_addf(&b, "s2_budget_%s_usd{scope=\"global\"} %.6f\n", fam[f][0],
                 json_number_value(json_object_get(s, fam[f][2])));
        size_t bi;
        json_t *bv;
        json_array_foreach(json_object_get(s, "budget_swarms"), bi, bv)
        {
            /* swarm ids are [A-Za-z0-9._:-]: nothing to escape in a label value */
            buf_addf(&b, "s2_budget_%s_usd{scope=\"swarm\",swarm=\"%s\"} %.6f\n", fam[f][0],
                     json_string_value(json_object_get(bv, "swarm")),
                     json_number_value(json_object_get(bv, fam[f][0])));
        }
    }
    metric(&b, "s2_witness_entries", "gauge", "Entries in the witness log.",
           json_object_get(s, "witness_entries"));
    metric(&b, "s2_witness_checkpoint_size", "gauge", "Tree size of the latest signed checkpoint.",
           json_object_get(s, "witness_checkpoint_size"));
    buf_addf(&b, "# HELP s2_witness_checkpoint_lag_entries Entries not yet under a signed checkpoint.\n"
                 "# TYPE s2_witness_checkpoint_lag_entries gauge\ns2_witness_checkpoint_lag_entries %lld\n",
             (long long)(json_integer_value(json_object_get(s, "witness_entries")) -
                         json_integer_value(json_object_get(s, "witness_checkpoint_size"))));
    buf_addf(&b, "# HELP s2_witness_checkpoint_timestamp_seconds When the latest checkpoint was "
                 "signed (Unix seconds).\n# TYPE s2_witness_checkpoint_timestamp_seconds gauge\n"
                 "s2_witness_checkpoint_timestamp_seconds %.3f\n",
             json_integer_value(json_object_get(s, "witness_checkpoint_time")) / 1000.0);
    static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    double batches = json_number_value(json_object_get(s, "batches"));
    histogram(&b, "s2_batch_size", "Commands per engine batch (group commit).",
              json_object_get(s, "batch_hist"), batch_bounds, 11,
              json_number_value(json_object_get(s, "commands")), batches);
    buf_addf(&b, "# HELP process_resident_memory_bytes Resident memory.\n"
                 "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
             rss_bytes());
    /* a follower that forwarded this adds its own node families; the leader's would clash */
    http_metrics(http_server_of(r), &b, !http_header(r, "S2-Forwarded-By"));
    http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr, b.len);
    buf_release(&b);
}

void api_metrics(struct request *r)
{
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_STATS;
    http_submit(r, c, metrics_reply);
}

void api_whoami(struct request *r)
{
    const struct principal *who = http_who(r);
    json_t *o = json_pack("{s:s,s:s?,s:s?}", "kind",
                          who->kind == PRIN_ADMIN      ? "admin"
                          : who->kind == PRIN_APPROVER ? "approver"
                          : who->kind == PRIN_TASK     ? "task"
                                                       : "swarm",
                          "swarm", who->swarm, "name", who->name);
    if (who->kind == PRIN_TASK) /* a lease token: which task it acts on */
        json_object_set_new(o, "task", json_string(who->task));
    http_reply_json(r, 200, o);
}

static void status_reply(struct request *r, struct cmd *c)
{
    /* The engine's totals count every swarm; a swarm token may see its own swarm's only. */
    if (!c->err.kind && c->out.json && http_who(r)->kind >= PRIN_SWARM &&
        http_who(r)->kind != PRIN_APPROVER) {
        json_t *totals = json_object(), *s, *v;
        size_t i;
        const char *key;
        json_array_foreach(json_object_get(c->out.json, "swarms"), i, s) {
            json_object_foreach(json_object_get(s, "tasks"), key, v) {
                json_int_t n = json_integer_value(json_object_get(totals, key));
                json_object_set_new(totals, key, json_integer(n + json_integer_value(v)));
            }
        }
        json_object_foreach(json_object_get(c->out.json, "totals"), key, v) {
            if (!json_object_get(totals, key))
                json_object_set_new(totals, key, json_integer(0));
        }
        json_object_set_new(c->out.json, "totals", totals);
    }
    api_reply_query(r, c);
}

void api_status(struct request *r)
{
    struct cmd *c = cmd_new(CMD_QUERY);
    c->in.query.what = Q_OVERVIEW;
    c->in.query.arg = http_query(r, "after") ? xstrdup(http_query(r, "after")) : NULL;
    http_submit(r, c, status_reply);
}

void api_models_list(struct request *r)
{
    api_query(r, Q_MODELS, NULL, 0);
}

static void model_done(struct request *r, struct cmd *c)
{
    if (c->err.kind) {
        http_reply_error(r, &c->err);
        return;
    }
    api_query(r, Q_MODELS, NULL, 0);
}

void api_model_put(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"name", "tier", "usd_per_mtok_in", "usd_per_mtok_out",
                                         NULL};
    struct cmd *c = cmd_new(CMD_MODEL_PUT);
    struct model_spec *m = &c->in.model;
    double in = 0, out = 0;
    if (!o || json_only(o, fields, "", &err) || json_str(o, "name", 1, &m->name, "", &err) ||
        json_int(o, "tier", 1, 1, S2_TIER_MAX, &m->tier, "", &err) ||
        json_num(o, "usd_per_mtok_in", 1, &in, "", &err) ||
        json_num(o, "usd_per_mtok_out", 1, &out, "", &err) ||
        model_usd_to_micro(in, &m->usd_in_micro, "field 'usd_per_mtok_in'", &err) ||
        model_usd_to_micro(out, &m->usd_out_micro, "field 'usd_per_mtok_out'", &err) ||
        model_spec_check(m, &err)) {
        json_decref(o);
        cmd_free(c);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    json_decref(o);
    http_submit(r, c, model_done);
}

void api_events(struct request *r)
{
    const struct principal *who = http_who(r);
    const char *swarm = http_query(r, "swarm");
    const char *after = http_query(r, "after");
    if (!after)
        after = http_header(r, "Last-Event-ID");
    uint64_t from = EVENTS_LIVE; /* no position given: from now on */
    if (after) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(after, &end, 10);
        if (errno || end == after || *end) {
            http_reply_fail(r, S2_EINVAL, "invalid_query",
                            "after (or Last-Event-ID) must be an event id");
            return;
        }
        from = v;
    }
    if (who->kind == PRIN_TASK) {
        http_reply_fail(r, S2_EFORBIDDEN, "forbidden", "a lease token cannot watch the event stream");
        return;
    }
    if (who->kind == PRIN_SWARM) {
        if (swarm && (!who->swarm || strcmp(swarm, who->swarm))) {
            http_reply_fail(r, S2_EFORBIDDEN, "forbidden",
                            "this token is scoped to swarm '%s' and cannot watch swarm '%.128s'",
                            who->swarm ? who->swarm : "?", swarm);
            return;
        }
        swarm = who->swarm;
    }
    http_stream_events(r, from, swarm);
}

static void serve_asset(struct request *r, const char *path)
{
    for (unsigned i = 0; i < web_assets_count; i++) {
        if (!strcmp(web_assets[i].path, path)) {
            http_reply_raw(r, 200, web_assets[i].type, web_assets[i].data, web_assets[i].len);
            http_set_header(r, "Cache-Control", "no-cache");
            return;
        }
    }
    http_reply_fail(r, S2_ENOTFOUND, "no_such_route", "no such endpoint: GET %s", path);
}

void api_index(struct request *r)
{
    serve_asset(r, "/index.html");
}

void api_asset(struct request *r)
{
    char path[160];
    snprintf(path, sizeof path, "/%s", http_param(r, 0));
    serve_asset(r, path);
}
