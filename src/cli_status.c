/* cli_status.c: `s2 status [SWARM]` (one screen, or one swarm in detail) and `s2 watch`
 * (the live event stream). */
#include "cli.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long cnt(json_t *o, const char *state)
{
    return json_integer_value(json_object_get(json_object_get(o, "tasks"), state));
}

static long long ival(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void print_overview(json_t *out)
{
    json_t *swarms = json_object_get(out, "swarms");
    if (!json_array_size(swarms)) {
        printf("no swarms yet: create one with `s2 swarm add ID`\n");
        return;
    }
    printf("%-24s %-9s %-9s %-7s %5s %7s %6s %7s %6s %5s %4s %4s %6s\n", "SWARM", "RELATION",
           "STATUS", "STATE", "PHASE", "PENDING", "READY", "CLAIMED", "DONE", "DEAD", "BLK",
           "HELP", "AGENTS");
    size_t i;
    json_t *s;
    int notes = 0;
    json_array_foreach(swarms, i, s) {
        json_t *ph = json_object_get(s, "current_phase");
        char phase[16] = "-";
        if (json_is_integer(ph))
            snprintf(phase, sizeof phase, "%lld", (long long)json_integer_value(ph));
        printf("%-24s %-9s %-9s %-7s %5s %7lld %6lld %7lld %6lld %5lld %4lld %4lld %6lld\n",
               cli_str(s, "id"), cli_str(s, "relation"), cli_str(s, "status"),
               cli_str(s, "state"), phase, cnt(s, "pending"), cnt(s, "ready"), cnt(s, "claimed"),
               cnt(s, "done"), cnt(s, "dead"), ival(s, "open_blockers"), ival(s, "help_leases"),
               ival(s, "agents"));
        const char *st = cli_str(s, "status");
        if (!strcmp(st, "blocked") || !strcmp(st, "helping") || strcmp(cli_str(s, "state"), "active"))
            notes++;
    }
    if (notes) { /* what needs a look, and why */
        printf("\n");
        int shown = 0;
        json_array_foreach(swarms, i, s) {
            const char *st = cli_str(s, "status"), *state = cli_str(s, "state");
            if (strcmp(st, "blocked") && strcmp(st, "helping") && !strcmp(state, "active"))
                continue;
            if (shown++ == 20) {
                printf("  ... and %d more\n", notes - 20);
                break;
            }
            printf("  %-24s %s%s%s: %s\n", cli_str(s, "id"), !strcmp(state, "active") ? "" : state,
                   !strcmp(state, "active") ? "" : ", ", st, cli_str(s, "reason"));
        }
    }
    json_t *t = json_object_get(out, "totals");
    long long total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v) total += json_integer_value(v);
    printf("\n%zu swarms, %lld tasks: %lld pending, %lld ready, %lld claimed, %lld done, %lld "
           "dead, %lld cancelled\n",
           json_array_size(swarms), total, (long long)json_integer_value(json_object_get(t, "pending")),
           (long long)json_integer_value(json_object_get(t, "ready")),
           (long long)json_integer_value(json_object_get(t, "claimed")),
           (long long)json_integer_value(json_object_get(t, "done")),
           (long long)json_integer_value(json_object_get(t, "dead")),
           (long long)json_integer_value(json_object_get(t, "cancelled")));
}

static void print_swarm_status(json_t *s)
{
    long long now = clock_wall_ms();
    json_t *p = json_object_get(s, "progress");
    printf("swarm %s: %s (%s)\n", cli_str(s, "id"), cli_str(s, "status"), cli_str(s, "reason"));
    printf("  relation %s, state %s, budget $%.2f, spent $%.2f\n", cli_str(s, "relation"),
           cli_str(s, "state"), json_number_value(json_object_get(s, "budget")),
           json_number_value(json_object_get(s, "spent")));
    json_t *h = json_object_get(s, "health");
    char ago[48] = "never";
    if (json_is_integer(json_object_get(h, "last_heartbeat")))
        cli_fmt_in(ival(h, "last_heartbeat") - now, ago, sizeof ago);
    printf("  health: %s (last heartbeat %s)\n", cli_str(h, "status"), ago);
    printf("  progress: %lld done, %lld in progress, %lld remaining (%lld%%)\n", ival(p, "done"),
           ival(p, "in_progress"), ival(p, "remaining"), ival(p, "percent"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "phases"), i, v)
        printf("  phase %-4lld %4lld/%-4lld done (%lld%%)\n", ival(v, "phase"), ival(v, "done"),
               ival(v, "tasks"), ival(v, "percent"));
    json_array_foreach(json_object_get(s, "working"), i, v) {
        char in[48];
        cli_fmt_in(ival(v, "expires_at") - now, in, sizeof in);
        printf("  working: %s on %s%s (lease expires %s)\n", cli_str(v, "agent"),
               cli_str(v, "task"),
               !strcmp(cli_str(v, "kind"), "help") ? " (helping it)"
               : json_is_true(json_object_get(v, "blocked")) ? " (blocked)"
                                                              : "",
               in);
    }
    json_array_foreach(json_object_get(s, "blockers"), i, v) {
        char *needs = json_dumps(json_object_get(v, "needs"), JSON_COMPACT | JSON_REAL_PRECISION(15));
        printf("  blocked: %s needs %s (%s); %zu helper(s)\n", cli_str(v, "task"), needs,
               cli_str(v, "reason"), json_array_size(json_object_get(v, "helpers")));
        free(needs);
    }
    json_array_foreach(json_object_get(s, "blocked_on"), i, v)
        printf("  blocked on: %s of swarm %s (%s)\n", cli_str(v, "task"), cli_str(v, "swarm"),
               cli_str(v, "state"));
    json_t *eu = json_object_get(s, "estimated_unblock");
    if (json_is_integer(eu)) {
        char in[48];
        cli_fmt_in(json_integer_value(eu) - now, in, sizeof in);
        printf("  estimated unblock: %s\n", in);
    }
    json_array_foreach(json_object_get(s, "helping"), i, v)
        printf("  helping: %s on %s of swarm %s\n", cli_str(v, "agent"), cli_str(v, "blocked_task"),
               cli_str(v, "swarm"));
    json_t *ch = json_object_get(s, "can_help");
    char *exp = json_dumps(json_object_get(ch, "expertise_available"), JSON_COMPACT | JSON_REAL_PRECISION(15));
    printf("  can help: load %s, expertise available %s\n", cli_str(ch, "current_load"),
           exp ? exp : "[]");
    free(exp);
    json_array_foreach(json_object_get(s, "agent_list"), i, v)
        printf("  agent %-20s %-8s leases %lld/%lld  %s  breaker %s\n", cli_str(v, "id"),
               cli_str(v, "model"), ival(v, "leases_held"), ival(v, "max_leases"),
               cli_str(v, "health"), cli_str(v, "breaker"));
}

/* ---- STATUS.md ---- */

static void iso(long long ms, char *out, size_t n)
{
    clock_format_iso(ms, out, (int)n);
}

/* key: value, the value written as JSON (JSON is YAML's flow style, so the front matter is
 * YAML a reader can parse with either) */
static void fm(struct buf *b, const char *key, json_t *v /* stolen */)
{
    char *s = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
    buf_addf(b, "%s: %s\n", key, s ? s : "null");
    free(s);
    json_decref(v);
}

static json_t *iso_json(json_t *ms)
{
    if (!json_is_integer(ms))
        return json_null();
    char t[40];
    iso(json_integer_value(ms), t, sizeof t);
    return json_string(t);
}

/* Markdown table cells: no pipes or newlines */
static void cell(struct buf *b, const char *s)
{
    buf_adds(b, "| ");
    for (; s && *s; s++)
        buf_adds(b, *s == '|' ? "\\|" : *s == '\n' || *s == '\r' ? " " : (char[]){*s, 0});
    buf_addch(b, ' ');
}

static json_t *find_by(json_t *list, const char *key, const char *val)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (!strcmp(cli_str(v, key), val)) return v;
    return NULL;
}

int cli_status_md(struct cli *c, const char *swarm, char **md, json_t **meta)
{
    json_t *s = NULL, *bud = NULL, *brk = NULL, *slo = NULL, *cps = NULL, *cur = NULL;
    char *id = client_escape(swarm), *path = NULL;
    struct buf b = BUF_INIT;
    int rc;
    path = xasprintf("/v1/swarms/%s/status", id);
    if ((rc = cli_call(c, "GET", path, NULL, &s, NULL)))
        goto out;
    free(path);
    path = xasprintf("/v1/budgets?swarm=%s", id);
    if ((rc = cli_call(c, "GET", path, NULL, &bud, NULL)) ||
        (rc = cli_call(c, "GET", "/v1/breakers", NULL, &brk, NULL)))
        goto out;
    free(path);
    path = xasprintf("/v1/swarms/%s/slo", id);
    if ((rc = cli_call(c, "GET", path, NULL, &slo, NULL)))
        goto out;
    /* the signed checkpoint that covers what this status reflects (entries 1..witness_seq) */
    long long seq = ival(s, "witness_seq");
    free(path);
    path = xasprintf("/v1/witness/checkpoints?from=%lld&limit=1", seq);
    if ((rc = cli_call(c, "GET", path, NULL, &cps, NULL)))
        goto out;
    json_t *cp = json_array_get(json_object_get(cps, "checkpoints"), 0);

    /* the current task: a lease on its own (not help) work, the first unblocked one */
    json_t *working = json_object_get(s, "working"), *w = NULL, *v;
    size_t i;
    json_array_foreach(working, i, v) {
        if (strcmp(cli_str(v, "kind"), "help") && !json_is_true(json_object_get(v, "blocked"))) {
            w = v;
            break;
        }
    }
    if (!w)
        w = json_array_get(working, 0);
    if (w) {
        char *tid = client_escape(cli_str(w, "task"));
        free(path);
        path = xasprintf("/v1/tasks/%s", tid);
        free(tid);
        if ((rc = cli_call(c, "GET", path, NULL, &cur, NULL)))
            goto out;
    }

    json_t *prog = json_object_get(s, "progress"), *phases = json_object_get(s, "phases");
    json_t *curphase = json_object_get(s, "current_phase");
    json_t *ph = NULL;
    json_array_foreach(phases, i, v) if (json_is_integer(curphase) &&
                                         ival(v, "phase") == json_integer_value(curphase)) ph = v;
    json_t *ctask = json_object_get(cur, "task");
    json_t *tph = NULL;
    if (ctask)
        json_array_foreach(phases, i, v) if (ival(v, "phase") == ival(ctask, "phase")) tph = v;
    json_t *sb = json_array_get(json_object_get(bud, "swarms"), 0);
    json_t *sbrk = find_by(json_object_get(brk, "swarms"), "swarm", swarm);
    json_t *open_agents = json_array();
    json_array_foreach(json_object_get(brk, "agents"), i, v) {
        if (!strcmp(cli_str(v, "swarm"), swarm) && strcmp(cli_str(v, "state"), "closed"))
            json_array_append_new(open_agents, json_pack("{s:s,s:s}", "agent", cli_str(v, "agent"),
                                                         "state", cli_str(v, "state")));
    }
    json_t *st = json_object_get(slo, "slo");
    json_t *met = json_object_get(st, "met");
    int slo_ok = !json_is_false(json_object_get(met, "p99_latency_ms")) &&
                 !json_is_false(json_object_get(met, "success_rate")) &&
                 !json_is_false(json_object_get(met, "availability"));

    /* blocked_on: its own blocked tasks, then other swarms' tasks it waits for */
    json_t *bo = json_array();
    json_array_foreach(json_object_get(s, "blockers"), i, v) {
        json_t *helpers = json_array();
        size_t k;
        json_t *hh;
        json_array_foreach(json_object_get(v, "helpers"), k, hh)
            json_array_append_new(helpers, json_string(cli_str(hh, "agent")));
        json_array_append_new(bo, json_pack("{s:s,s:O,s:s,s:o,s:o}", "task", cli_str(v, "task"),
                                            "needs", json_object_get(v, "needs"), "reason",
                                            cli_str(v, "reason"), "since",
                                            iso_json(json_object_get(v, "since")), "helpers",
                                            helpers));
    }
    json_array_foreach(json_object_get(s, "blocked_on"), i, v)
        json_array_append_new(bo, json_pack("{s:s,s:s,s:s,s:O}", "task", cli_str(v, "task"),
                                            "swarm", cli_str(v, "swarm"), "state",
                                            cli_str(v, "state"), "agent",
                                            json_object_get(v, "agent")));
    json_t *helping = json_array();
    json_array_foreach(json_object_get(s, "helping"), i, v)
        json_array_append_new(helping, json_pack("{s:s,s:s,s:s,s:s}", "swarm", cli_str(v, "swarm"),
                                                 "task", cli_str(v, "blocked_task"), "agent",
                                                 cli_str(v, "agent"), "help_task",
                                                 cli_str(v, "task")));
    json_t *ch = json_object_get(s, "can_help");
    json_t *chb = json_array();
    json_array_foreach(json_object_get(ch, "blockers"), i, v)
        json_array_append_new(chb, json_pack("{s:s,s:s,s:O}", "swarm", cli_str(v, "swarm"), "task",
                                             cli_str(v, "task"), "match",
                                             json_object_get(v, "match")));
    json_t *h = json_object_get(s, "health");

    /* ---- front matter: the seed's fields, machine-readable ---- */
    buf_adds(&b, "---\n");
    fm(&b, "swarm", json_string(swarm));
    fm(&b, "status", json_string(cli_str(s, "status")));
    fm(&b, "reason", json_string(cli_str(s, "reason")));
    fm(&b, "blocked_on", json_incref(bo));
    fm(&b, "helping", json_incref(helping));
    buf_adds(&b, "can_help:\n");
    buf_adds(&b, "  ");
    fm(&b, "expertise_available", json_incref(json_object_get(ch, "expertise_available")));
    buf_adds(&b, "  ");
    fm(&b, "current_load", json_string(cli_str(ch, "current_load")));
    buf_adds(&b, "  ");
    fm(&b, "blockers", json_incref(chb));
    fm(&b, "estimated_unblock",
       json_is_integer(json_object_get(s, "estimated_unblock"))
           ? iso_json(json_object_get(s, "estimated_unblock"))
       : json_array_size(bo) ? json_string("unknown")
                             : json_null());
    if (ctask) {
        /* its milestone: the current task's phase and how far that phase is */
        char *ms = tph ? xasprintf("phase %lld: %lld of %lld tasks done (%lld%%)",
                                   ival(ctask, "phase"), ival(tph, "done"), ival(tph, "tasks"),
                                   ival(tph, "percent"))
                       : xasprintf("phase %lld", ival(ctask, "phase"));
        fm(&b, "current_task",
           json_pack("{s:s,s:s,s:s,s:I,s:s}", "id", cli_str(ctask, "id"), "title",
                     cli_str(ctask, "title"), "agent", cli_str(w, "agent"), "phase",
                     (json_int_t)ival(ctask, "phase"), "milestone", ms));
        free(ms);
    } else {
        fm(&b, "current_task", json_null());
    }
    fm(&b, "progress",
       json_pack("{s:I,s:I,s:I,s:o,s:I,s:I}", "done", (json_int_t)ival(prog, "done"),
                 "in_progress", (json_int_t)ival(prog, "in_progress"), "remaining",
                 (json_int_t)ival(prog, "remaining"), "phase",
                 json_is_integer(curphase) ? json_incref(curphase) : json_null(),
                 "phase_completion", (json_int_t)(ph ? ival(ph, "percent") : 100), "overall",
                 (json_int_t)ival(prog, "percent")));
    fm(&b, "health", json_pack("{s:s,s:o}", "status", cli_str(h, "status"), "last_heartbeat",
                               iso_json(json_object_get(h, "last_heartbeat"))));
    fm(&b, "budget",
       json_pack("{s:O,s:O,s:O,s:O,s:s}", "limit", json_object_get(sb, "limit"), "spent",
                 json_object_get(sb, "spent"), "reserved", json_object_get(sb, "reserved"), "left",
                 json_object_get(sb, "left"), "level", cli_str(sb, "level")));
    fm(&b, "breaker", json_pack("{s:s,s:s,s:O}", "swarm", sbrk ? cli_str(sbrk, "state") : "closed",
                                "state", cli_str(s, "state"), "agents_not_closed", open_agents));
    fm(&b, "slo", json_pack("{s:b,s:O,s:O,s:O,s:O,s:O,s:O}", "compliant", slo_ok, "samples",
                            json_object_get(st, "samples"), "success_rate",
                            json_object_get(st, "success_rate"), "p99_latency_ms",
                            json_object_get(st, "p99_latency_ms"), "availability",
                            json_object_get(st, "availability"), "reputation",
                            json_object_get(st, "reputation"), "contract",
                            json_object_get(slo, "contract")));
    fm(&b, "witness",
       cp ? json_pack("{s:I,s:{s:O,s:O,s:o,s:O}}", "seq", (json_int_t)seq, "checkpoint",
                      "tree_size", json_object_get(cp, "tree_size"), "root_hash",
                      json_object_get(cp, "root_hash"), "time",
                      iso_json(json_object_get(cp, "time")), "signature",
                      json_object_get(cp, "signature"))
          : json_pack("{s:I,s:n}", "seq", (json_int_t)seq, "checkpoint"));
    buf_adds(&b, "---\n\n");

    /* ---- the same for people ---- */
    buf_addf(&b, "# STATUS: %s\n\n**%s**: %s\n\n", swarm, cli_str(s, "status"), cli_str(s, "reason"));
    if (*cli_str(s, "role"))
        buf_addf(&b, "Role: %s (relation: %s).\n\n", cli_str(s, "role"), cli_str(s, "relation"));
    if (ctask)
        buf_addf(&b, "Current task: `%s` %s (agent %s), phase %lld.\n\n", cli_str(ctask, "id"),
                 cli_str(ctask, "title"), cli_str(w, "agent"), ival(ctask, "phase"));
    buf_adds(&b, "## Progress\n\n| phase | tasks | done | open | completion |\n|---:|---:|---:|---:|---:|\n");
    json_array_foreach(phases, i, v)
        buf_addf(&b, "| %lld%s | %lld | %lld | %lld | %lld%% |\n", ival(v, "phase"),
                 v == ph ? " (current)" : "", ival(v, "tasks"), ival(v, "done"), ival(v, "open"),
                 ival(v, "percent"));
    buf_addf(&b, "\n%lld done, %lld in progress, %lld remaining (%lld%% overall).\n\n",
             ival(prog, "done"), ival(prog, "in_progress"), ival(prog, "remaining"),
             ival(prog, "percent"));
    if (json_array_size(working)) {
        buf_adds(&b, "## Working\n\n| agent | task | phase | kind | lease until |\n|---|---|---:|---|---|\n");
        json_array_foreach(working, i, v) {
            char t[40];
            iso(ival(v, "expires_at"), t, sizeof t);
            cell(&b, cli_str(v, "agent"));
            cell(&b, cli_str(v, "task"));
            buf_addf(&b, "| %lld ", ival(v, "phase"));
            cell(&b, json_is_true(json_object_get(v, "blocked")) ? "blocked" : cli_str(v, "kind"));
            cell(&b, t);
            buf_adds(&b, "|\n");
        }
        buf_adds(&b, "\n");
    }
    if (json_array_size(bo)) {
        buf_adds(&b, "## Blocked on\n\n");
        json_array_foreach(bo, i, v) {
            if (json_object_get(v, "needs")) {
                char *needs = json_dumps(json_object_get(v, "needs"), JSON_COMPACT | JSON_REAL_PRECISION(15));
                buf_addf(&b, "- task `%s` is blocked: %s (needs %s; helpers: %zu)\n",
                         cli_str(v, "task"), cli_str(v, "reason"), needs,
                         json_array_size(json_object_get(v, "helpers")));
                free(needs);
            } else {
                buf_addf(&b, "- task `%s` of swarm %s (%s)\n", cli_str(v, "task"),
                         cli_str(v, "swarm"), cli_str(v, "state"));
            }
        }
        buf_adds(&b, "\n");
    }
    if (json_array_size(helping)) {
        buf_adds(&b, "## Helping\n\n");
        json_array_foreach(helping, i, v)
            buf_addf(&b, "- %s helps swarm %s on `%s`\n", cli_str(v, "agent"), cli_str(v, "swarm"),
                     cli_str(v, "task"));
        buf_adds(&b, "\n");
    }
    char *exp = json_dumps(json_object_get(ch, "expertise_available"), JSON_COMPACT | JSON_REAL_PRECISION(15));
    buf_addf(&b, "## Can help\n\nLoad %s (%lld of %lld lease slots held); expertise available: %s.\n",
             cli_str(ch, "current_load"), ival(ch, "leases_held"), ival(ch, "lease_slots"), exp);
    free(exp);
    json_array_foreach(chb, i, v)
        buf_addf(&b, "- could help swarm %s on `%s`\n", cli_str(v, "swarm"), cli_str(v, "task"));
    buf_adds(&b, "\n## Agents\n\n| agent | model | tier | leases | last heartbeat | health | breaker "
                 "| spent (USD) |\n|---|---|---:|---:|---|---|---|---:|\n");
    json_array_foreach(json_object_get(s, "agent_list"), i, v) {
        char t[40] = "never";
        if (json_is_integer(json_object_get(v, "last_seen")))
            iso(ival(v, "last_seen"), t, sizeof t);
        cell(&b, cli_str(v, "id"));
        cell(&b, cli_str(v, "model"));
        buf_addf(&b, "| %lld | %lld/%lld ", ival(v, "tier"), ival(v, "leases_held"),
                 ival(v, "max_leases"));
        cell(&b, t);
        cell(&b, cli_str(v, "health"));
        cell(&b, cli_str(v, "breaker"));
        buf_addf(&b, "| %.4f |\n", json_number_value(json_object_get(v, "spent")));
    }
    char last[40] = "never";
    if (json_is_integer(json_object_get(h, "last_heartbeat")))
        iso(ival(h, "last_heartbeat"), last, sizeof last);
    buf_addf(&b, "\nHealth: %s (last heartbeat %s; healthy under 10 min, warning 10-15, presumed "
                 "frozen past 15).\n\n",
             cli_str(h, "status"), last);
    json_t *left = json_object_get(sb, "left"), *limit = json_object_get(sb, "limit");
    buf_addf(&b, "## Budget, breaker, service levels\n\n- budget: $%.4f spent, $%.4f reserved, ",
             json_number_value(json_object_get(sb, "spent")),
             json_number_value(json_object_get(sb, "reserved")));
    if (json_is_number(limit))
        buf_addf(&b, "$%.4f left of $%.4f (%s)\n", json_number_value(left),
                 json_number_value(limit), cli_str(sb, "level"));
    else
        buf_adds(&b, "no limit\n");
    buf_addf(&b, "- breaker: swarm %s (state %s); agents not closed: %zu\n",
             sbrk ? cli_str(sbrk, "state") : "closed", cli_str(s, "state"),
             json_array_size(open_agents));
    buf_addf(&b, "- SLO: %s over %lld leases: success %.3f, p99 %.0f ms, availability %.3f, "
                 "reputation %.3f\n\n",
             slo_ok ? "met" : "missed", ival(st, "samples"),
             json_number_value(json_object_get(st, "success_rate")),
             json_number_value(json_object_get(st, "p99_latency_ms")),
             json_number_value(json_object_get(st, "availability")),
             json_number_value(json_object_get(st, "reputation")));
    buf_adds(&b, "## Witness\n\n");
    if (cp) {
        char t[40];
        iso(ival(cp, "time"), t, sizeof t);
        buf_addf(&b,
                 "This status reflects witness entries 1..%lld. The signed checkpoint covering "
                 "them has tree size %lld and root hash `%s` (%s). Check it with `s2 witness "
                 "prove %lld --size %lld`.\n",
                 seq, ival(cp, "tree_size"), cli_str(cp, "root_hash"), t, seq > 0 ? seq : 1,
                 ival(cp, "tree_size"));
    } else {
        buf_addf(&b, "This status reflects witness entries 1..%lld (no signed checkpoint covers "
                     "them yet).\n",
                 seq);
    }
    *md = buf_detach(&b, NULL);
    if (meta)
        *meta = json_pack("{s:s,s:s,s:O,s:I,s:O,s:O}", "swarm", swarm, "status",
                          cli_str(s, "status"), "branch", json_object_get(s, "branch"),
                          "witness_seq", (json_int_t)seq, "tree_size",
                          cp ? json_object_get(cp, "tree_size") : json_null(), "root_hash",
                          cp ? json_object_get(cp, "root_hash") : json_null());
    json_decref(open_agents);
    json_decref(bo);
    json_decref(helping);
    json_decref(chb);
    rc = EXIT_OK;
out:
    buf_release(&b);
    free(id);
    free(path);
    json_decref(s);
    json_decref(bud);
    json_decref(brk);
    json_decref(slo);
    json_decref(cps);
    json_decref(cur);
    return rc;
}

int cli_status(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *out = NULL;
    char *path = NULL, *md = NULL;
    int rc, want_md = 0;
    static const struct option opts[] = {{"md", no_argument, 0, 'm'}, CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'm' : want_md = 1; break;);
    if (argc - optind > 1) {
        rc = cli_usage(&c, "too many arguments");
        goto out;
    }
    if (want_md && optind >= argc) {
        rc = cli_usage(&c, "--md renders one swarm's STATUS.md: name the swarm");
        goto out;
    }
    if (want_md && c.json) {
        rc = cli_usage(&c, "--md and --json are exclusive");
        goto out;
    }
    if (want_md) {
        rc = cli_status_md(&c, argv[optind], &md, NULL);
        if (rc == EXIT_OK)
            fputs(md, stdout);
        goto out;
    }
    if (optind < argc) {
        char *id = client_escape(argv[optind]);
        path = xasprintf("/v1/swarms/%s/status", id);
        free(id);
    } else {
        path = xstrdup("/v1/status");
    }
    rc = cli_call(&c, "GET", path, NULL, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json)
            cli_print_json(out);
        else if (optind < argc)
            print_swarm_status(out);
        else
            print_overview(out);
    }
out:
    free(md);
    free(path);
    json_decref(out);
    cli_done(&c);
    return rc;
}

struct watch {
    int json;
    long long left; /* events still to print; <0: no limit */
};

static int on_event(void *ctx, const char *id, const char *event, const char *data)
{
    struct watch *w = ctx;
    if (w->json) {
        printf("%s\n", data);
    } else if (strcmp(event, "message")) {
        printf("-- %s: %s\n", event, data);
    } else {
        json_t *e = json_loads(data, 0, NULL);
        char when[32] = "";
        json_t *tm = json_object_get(e, "time");
        if (json_is_integer(tm)) {
            long long ms = json_integer_value(tm);
            time_t s = (time_t)(ms / 1000);
            struct tm lt;
            localtime_r(&s, &lt);
            size_t n = strftime(when, sizeof when, "%H:%M:%S", &lt);
            snprintf(when + n, sizeof when - n, ".%03lld", ms % 1000);
        }
        printf("%s #%s %-15s", when, id ? id : "?", cli_str(e, "op"));
        if (*cli_str(e, "task"))
            printf(" %s (%s)", cli_str(e, "task"), cli_str(e, "state"));
        if (*cli_str(e, "swarm"))
            printf(" swarm=%s", cli_str(e, "swarm"));
        if (*cli_str(e, "agent"))
            printf(" agent=%s", cli_str(e, "agent"));
        json_t *p = json_object_get(e, "params");
        if (json_object_size(p)) {
            char *s = json_dumps(p, JSON_COMPACT | JSON_REAL_PRECISION(15));
            printf(" %s", s);
            free(s);
        }
        printf("\n");
        json_decref(e);
    }
    fflush(stdout);
    if (w->left > 0 && !strcmp(event, "message") && --w->left == 0)
        return 1;
    return 0;
}

int cli_watch(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *swarm = NULL, *from = NULL;
    long long count = -1;
    char *path = NULL;
    json_t *who = NULL;
    int rc;
    static const struct option opts[] = {{"swarm", required_argument, 0, 's'},
                                         {"from", required_argument, 0, 'f'},
                                         {"count", required_argument, 0, 'n'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    long long dummy;
    CLI_OPTIONS(c, argc, argv, opts, case 's' : swarm = optarg; break;
                case 'f' : USAGE_IF(cli_int(&c, "--from", optarg, 0, INT64_MAX, &dummy));
                from = optarg; break;
                case 'n' : USAGE_IF(cli_int(&c, "--count", optarg, 1, INT64_MAX, &count)); break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    /* a clear error for a bad token before the stream starts */
    rc = cli_call(&c, "GET", "/v1/whoami", NULL, &who, NULL);
    if (rc)
        goto out;
    char *sw = swarm ? client_escape(swarm) : NULL;
    path = xasprintf("/v1/events?x=1%s%s%s%s", sw ? "&swarm=" : "", sw ? sw : "",
                     from ? "&after=" : "", from ? from : "");
    free(sw);
    struct watch w = {c.json, count};
    struct s2_error err = S2_ERROR_INIT;
    if (client_stream(&c.client, path, on_event, &w, &err)) {
        rc = cli_fail(&err);
        s2_error_release(&err);
    }
out:
    json_decref(who);
    free(path);
    cli_done(&c);
    return rc;
}
