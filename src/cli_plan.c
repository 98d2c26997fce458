/* cli_plan.c: `s2 plan validate|apply|export|simulate`. validate and simulate work offline
 * on the file; apply and export talk to the server (plan_apply.c computes what to change,
 * this file does the HTTP and the printing). */
#include "cli.h"
#include "plan.h"


#include "plan_apply.h"
#include "sim.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "banned.h"

static json_t *errors_json(const struct plan *p)
{
    json_t *a = json_array();
    for (size_t i = 0; i < p->nerrors; i++) {
        const struct plan_error *e = &p->errors[i];
        json_array_append_new(a, json_pack("{s:s,s:i,s:i,s:s}", "file", p->file, "line",
                                           (int)e->at.line, "column", (int)e->at.col, "message",
                                           e->msg));
    }
    return a;
}

static size_t count_phases(const struct plan *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nswarms; i++)
        n += p->swarms[i].nphases;
    return n;
}

/* ---- validate ---- */

int cli_plan_validate(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    struct plan p;
    int have = 0, rc;
    CLI_OPTIONS(c, argc, argv, opts, );
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the plan FILE is required" : "too many arguments");
        goto out;
    }
    plan_init(&p, argv[optind]);
    have = 1;
    int bad = plan_load(&p, argv[optind]);
    if (c.json) {
        json_t *o = json_pack("{s:s,s:b,s:o,s:{s:i,s:i,s:i,s:i,s:i}}", "file", p.file, "valid",
                              !bad, "errors", errors_json(&p), "summary", "swarms",
                              (int)p.nswarms, "agents", (int)p.nagents, "tasks", (int)p.ntasks,
                              "phases", (int)count_phases(&p), "idle_tasks", (int)p.nidle);
        if (p.errors_dropped)
            json_object_set_new(o, "errors_not_shown", json_integer((json_int_t)p.errors_dropped));
        cli_print_json(o);
        json_decref(o);
    } else if (bad) {
        plan_print_errors(&p, stderr);
        size_t n = p.nerrors + p.errors_dropped;
        fprintf(stderr, "%s: %zu error%s\n", p.file, n, n == 1 ? "" : "s");
    } else {
        printf("%s: valid (%zu swarms, %zu agents, %zu tasks in %zu phases, %zu idle tasks)\n",
               p.file, p.nswarms, p.nagents, p.ntasks, count_phases(&p), p.nidle);
    }
    rc = bad ? EXIT_FAIL : EXIT_OK;
out:
    if (have)
        plan_release(&p);
    return rc;
}

/* ---- simulate ---- */

int cli_plan_simulate(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {
        {"agents-per-swarm", required_argument, 0, 'n'}, {"policy", required_argument, 0, 'p'},
        {"seed", required_argument, 0, 's'},             {"jitter", required_argument, 0, 'j'},
        {"help-efficiency", required_argument, 0, 'e'},  CLI_COMMON_OPTS, {0}};
    struct sim_opts o;
    struct sim_result r;
    struct plan p;
    int have = 0, ran = 0, rc;
    long long v;
    sim_opts_init(&o);
    CLI_OPTIONS(c, argc, argv, opts,
                case 'n' : USAGE_IF(cli_int(&c, "--agents-per-swarm", optarg, 1, SIM_AGENTS_MAX, &v));
                o.agents_per_swarm = (long)v; break;
                case 'p' : if ((o.policy = sim_policy_parse(optarg)) < 0) {
                    rc = cli_usage(&c, "--policy must be idle or gang-up (got '%s')", optarg);
                    goto out;
                } break;
                case 's' : USAGE_IF(cli_int(&c, "--seed", optarg, 0, INT64_MAX, &v));
                o.seed = (uint64_t)v; break;
                case 'j' : USAGE_IF(cli_num(&c, "--jitter", optarg, &o.jitter));
                if (o.jitter < 0 || o.jitter > 0.9) {
                    rc = cli_usage(&c, "--jitter must be from 0 to 0.9 (got '%s')", optarg);
                    goto out;
                } break;
                case 'e' : USAGE_IF(cli_num(&c, "--help-efficiency", optarg, &o.help_efficiency));
                if (o.help_efficiency < 0 || o.help_efficiency > 1) {
                    rc = cli_usage(&c, "--help-efficiency must be from 0 to 1 (got '%s')", optarg);
                    goto out;
                } break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the plan FILE is required" : "too many arguments");
        goto out;
    }
    plan_init(&p, argv[optind]);
    have = 1;
    if (plan_load(&p, argv[optind])) {
        plan_print_errors(&p, stderr);
        rc = cli_failf("%s is not a valid plan (see `s2 plan validate`)", p.file);
        goto out;
    }
    struct s2_error err = S2_ERROR_INIT;
    if (sim_run(&p, &o, &r, &err)) {
        rc = cli_fail(&err);
        s2_error_release(&err);
        goto out;
    }
    ran = 1;
    if (c.json) {
        json_t *j = sim_json(&r, p.file);
        cli_print_json(j);
        json_decref(j);
    } else {
        sim_print(&r, p.file, stdout);
    }
    rc = EXIT_OK;
out:
    if (ran)
        sim_result_release(&r);
    if (have)
        plan_release(&p);
    return rc;
}

/* ---- talking to the server ---- */

/* One request; the error stays in err for the caller to judge (nothing printed). */
static int call(struct cli *c, const char *method, const char *path, json_t *body, json_t **out,
                struct s2_error *err)
{
    if (!c->connected) {
        if (client_init(&c->client, c->server, NULL, err))
            return -1;
        c->connected = 1;
    }
    if (out)
        *out = NULL;
    return client_call(&c->client, method, path, body, NULL, out, err) ? -1 : 0;
}

static int no_route(const struct s2_error *err)
{
    return err->kind == S2_ENOTFOUND && err->code && !strcmp(err->code, "no_such_route");
}

/* Every page of a paged list ("next" cursors) appended to into. */
static int get_all(struct cli *c, const char *base, const char *key, int numeric_cursor,
                   json_t *into, struct s2_error *err)
{
    char *after = NULL;
    int rc = 0;
    for (;;) {
        const char *sep = strchr(base, '?') ? "&" : "?";
        char *path = after ? xasprintf("%s%safter=%s", base, sep, after) : xstrdup(base);
        json_t *page;
        rc = call(c, "GET", path, NULL, &page, err);
        free(path);
        free(after);
        after = NULL;
        if (rc)
            break;
        json_array_extend(into, json_object_get(page, key));
        json_t *next = json_object_get(page, "next");
        if (json_is_string(next) && json_string_length(next))
            after = numeric_cursor ? xstrdup(json_string_value(next))
                                   : client_escape(json_string_value(next));
        json_decref(page);
        if (!after)
            break;
    }
    free(after);
    return rc;
}

/* GET one optional per-swarm section (idle tasks or contract) into into[id]; a server
 * without the endpoint clears *supported. */
static int read_section(struct cli *c, int contract, const char *id, const char *key,
                        json_t *into, int *supported, struct s2_error *err)
{
    if (!*supported)
        return 0;
    char *esc = client_escape(id);
    char *path = contract ? xasprintf(PLAN_EP_CONTRACT, esc) : xasprintf(PLAN_EP_IDLE, esc);
    json_t *o = NULL;
    int rc = call(c, "GET", path, NULL, &o, err);
    free(esc);
    free(path);
    if (rc) {
        if (!no_route(err))
            return -1;
        s2_error_release(err);
        *supported = 0;
        return 0;
    }
    json_object_set(into, id, json_object_get(o, key) ? json_object_get(o, key) : json_null());
    json_decref(o);
    return 0;
}

/* The server's state: models, swarms, agents, tasks, the policy (when the server has one),
 * and the idle tasks and contracts of the swarms the plan gives them (p NULL: of every
 * swarm, for export). */
static int read_live(struct cli *c, struct plan_live *l, const struct plan *p,
                     struct s2_error *err)
{
    json_t *o = NULL;
    if (call(c, "GET", PLAN_EP_MODELS, NULL, &o, err))
        return -1;
    json_array_extend(l->models, json_object_get(o, "models"));
    json_decref(o);
    if (get_all(c, PLAN_EP_SWARMS, "swarms", 0, l->swarms, err) ||
        call(c, "GET", PLAN_EP_AGENTS, NULL, &o, err))
        return -1;
    json_array_extend(l->agents, json_object_get(o, "agents"));
    json_decref(o);
    if (get_all(c, PLAN_EP_TASKS "?limit=1000", "tasks", 1, l->tasks, err))
        return -1;
    if (call(c, "GET", PLAN_EP_POLICY, NULL, &o, err)) {
        if (!no_route(err))
            return -1;
        s2_error_release(err); /* a server without a policy endpoint yet */
    } else {
        json_t *pol = json_object_get(o, "policy");
        l->policy = json_incref(json_is_object(pol) ? pol : o);
        l->policy_supported = 1;
        json_decref(o);
    }
    l->idle_supported = l->contract_supported = 1;
    size_t i;
    json_t *s;
    json_array_foreach(l->swarms, i, s) {
        const char *id = cli_str(s, "id");
        long k = p ? plan_find_swarm(p, id) : -1;
        int idle = !p || (k >= 0 && p->swarms[k].has_idle);
        int contract = !p || (k >= 0 && p->swarms[k].contract.present);
        if ((idle && read_section(c, 0, id, "idle_tasks", l->idle,
                                  &l->idle_supported, err)) ||
            (contract && read_section(c, 1, id, "contract", l->contracts,
                                      &l->contract_supported, err)))
            return -1;
    }
    return 0;
}

static const char *server_name(const struct cli *c)
{
    if (c->connected)
        return c->client.base;
    const char *s = c->server ? c->server : getenv("S2_SERVER");
    return s && *s ? s : S2_DEFAULT_SERVER;
}

/* ---- apply ---- */

static void print_change(const struct plan_change *ch, int verbose)
{
    printf("  %c %s\n", ch->create ? '+' : '~', ch->summary);
    if (!verbose || ch->section != PS_TASKS)
        return;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(ch->body, "tasks"), i, t)
        printf("      %s (swarm %s, phase %lld): %s\n", cli_str(t, "id"), cli_str(t, "swarm"),
               (long long)json_integer_value(json_object_get(t, "phase")), cli_str(t, "title"));
}

static json_t *change_json(const struct plan_change *ch, int applied, const char *error)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "section",
                          plan_section_names[ch->section], "action",
                          ch->create ? "create" : "change", "summary", ch->summary, "method",
                          ch->method, "path", ch->path, "applied", applied);
    if (ch->id)
        json_object_set_new(o, "id", json_string(ch->id));
    if (ch->section == PS_TASKS)
        json_object_set_new(o, "tasks", json_integer((json_int_t)ch->ntasks));
    if (error)
        json_object_set_new(o, "error", json_string(error));
    return o;
}

int cli_plan_apply(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {{"dry-run", no_argument, 0, 'n'},
                                         {"verbose", no_argument, 0, 'v'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    struct plan p;
    struct plan_live live;
    struct plan_diff d = {0};
    struct s2_error err = S2_ERROR_INIT;
    json_t *report = NULL, *tokens = json_object(), *errors = json_array();
    int have = 0, dry = 0, verbose = 0, rc;
    plan_live_init(&live);
    CLI_OPTIONS(c, argc, argv, opts, case 'n' : dry = 1; break; case 'v' : verbose = 1; break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the plan FILE is required" : "too many arguments");
        goto out;
    }
    plan_init(&p, argv[optind]);
    have = 1;
    if (plan_load(&p, argv[optind])) {
        plan_print_errors(&p, stderr);
        rc = cli_failf("%s is not a valid plan: nothing was changed", p.file);
        goto out;
    }
    if (read_live(&c, &live, &p, &err)) {
        rc = cli_fail(&err);
        goto out;
    }
    if (plan_diff(&p, &live, &d)) {
        plan_print_errors(&p, stderr);
        rc = cli_failf("the server's state conflicts with %s: nothing was changed", p.file);
        goto out;
    }
    report = json_array();
    if (!c.json) {
        if (!d.n)
            printf("%s: nothing to change on %s (%zu swarms, %zu agents, %zu tasks already as "
                   "planned)\n",
                   p.file, server_name(&c), d.unchanged[PS_SWARM], d.unchanged[PS_AGENT],
                   d.unchanged[PS_TASKS]);
        else
            printf("%s -> %s: %s\n", p.file, server_name(&c),
                   dry ? "would change (dry run)" : "changes");
        for (size_t i = 0; i < d.n; i++)
            print_change(&d.v[i], verbose);
    }
    /* apply, in order; a section the server lacks is an error of its own, anything else
     * stops the run (all that follows is left undone) */
    size_t applied = 0, failed = 0;
    int stopped = 0, unsupported[PS_NSECTIONS] = {0};
    /* a progress line on a terminal when there is much to send (quiet when not a TTY) */
    size_t tasks_total = 0, tasks_sent = 0;
    for (size_t i = 0; i < d.n; i++)
        tasks_total += d.v[i].ntasks;
    int progress = !dry && cli_progress_wanted(&c) && (d.n > 50 || tasks_total > 5000);
    for (size_t i = 0; i < d.n; i++) {
        struct plan_change *ch = &d.v[i];
        if (progress) {
            cli_progress("applying change %zu of %zu, %zu of %zu tasks sent", i + 1, d.n,
                         tasks_sent, tasks_total);
            tasks_sent += ch->ntasks;
        }
        const char *why = NULL;
        char *msg = NULL;
        int ok = 0;
        if (dry || stopped) {
            why = dry ? NULL : "not applied: an earlier change failed";
        } else if (unsupported[ch->section]) {
            why = "not applied: the server does not support it yet";
        } else {
            json_t *out = NULL;
            if (call(&c, ch->method, ch->path, ch->body, &out, &err) == 0) {
                ok = 1;
                applied++;
                if (ch->section == PS_SWARM && json_object_get(out, "token"))
                    json_object_set(tokens, ch->id, json_object_get(out, "token"));
            } else {
                failed++;
                if (no_route(&err) &&
                    (ch->section == PS_POLICY || ch->section == PS_CONTRACT ||
                     ch->section == PS_IDLE)) {
                    unsupported[ch->section] = 1;
                    msg = xasprintf("the server does not support %s yet (%s %s answered 404)",
                                    plan_section_names[ch->section], ch->method, ch->path);
                } else {
                    stopped = 1;
                    msg = xasprintf("%s: %s", ch->summary, err.msg ? err.msg : "failed");
                }
                json_array_append_new(errors, json_string(msg));
                if (progress)
                    cli_progress_clear();
                if (!c.json)
                    fprintf(stderr, "error: %s\n", msg);
                s2_error_release(&err);
                why = msg;
            }
            json_decref(out);
        }
        json_array_append_new(report, change_json(ch, ok, why));
        free(msg);
    }
    if (progress)
        cli_progress_clear();
    rc = failed ? EXIT_FAIL : EXIT_OK;
    if (c.json) {
        json_t *unch = json_object();
        for (int s = 0; s < PS_NSECTIONS; s++)
            json_object_set_new(unch, plan_section_names[s], json_integer((json_int_t)d.unchanged[s]));
        json_t *o = json_pack("{s:s,s:s,s:b,s:b,s:O,s:o,s:O,s:O}", "file", p.file, "server",
                              server_name(&c), "dry_run", dry, "nothing_to_change", d.n == 0,
                              "changes", report, "unchanged", unch, "errors", errors, "tokens",
                              tokens);
        cli_print_json(o);
        json_decref(o);
    } else if (!dry && d.n) {
        if (failed) {
            printf("applied %zu of %zu changes:\n", applied, d.n);
            size_t k;
            json_t *r;
            json_array_foreach(report, k, r) {
                const char *e = cli_str(r, "error");
                printf("  %-8s %s\n",
                       json_is_true(json_object_get(r, "applied")) ? "done"
                       : !strncmp(e, "not applied", 11)             ? "skipped"
                                                                    : "failed",
                       cli_str(r, "summary"));
            }
        } else {
            printf("applied %zu change%s\n", applied, applied == 1 ? "" : "s");
        }
        if (json_object_size(tokens)) {
            printf("swarm tokens (shown only now; each acts on its own swarm alone):\n");
            const char *k;
            json_t *v;
            json_object_foreach(tokens, k, v) printf("  %-24s %s\n", k, json_string_value(v));
        }
    } else if (dry && d.n) {
        printf("dry run: nothing was changed\n");
    }
out:
    s2_error_release(&err);
    json_decref(report);
    json_decref(tokens);
    json_decref(errors);
    plan_diff_release(&d);
    plan_live_release(&live);
    if (have)
        plan_release(&p);
    cli_done(&c);
    return rc;
}

/* ---- export ---- */

/* Write data to path atomically (a temporary file renamed over it). */
static int write_file(const char *path, const char *data, size_t len, struct s2_error *err)
{
    char *tmp = xasprintf("%s.tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = -1;
    if (fd < 0) {
        s2_fail(err, S2_EIO, "io", "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s2_fail(err, S2_EIO, "io", "cannot write '%s': %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            goto out;
        }
        off += (size_t)n;
    }
    if (fsync(fd) || close(fd) || rename(tmp, path)) {
        s2_fail(err, S2_EIO, "io", "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

int cli_plan_export(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {{"output", required_argument, 0, 'o'}, CLI_COMMON_OPTS,
                                         {0}};
    const char *output = NULL;
    struct plan p, back;
    struct plan_live live;
    struct s2_error err = S2_ERROR_INIT;
    struct buf yaml = BUF_INIT;
    int rc;
    plan_live_init(&live);
    plan_init(&p, "export");
    plan_init(&back, "export");
    CLI_OPTIONS(c, argc, argv, opts, case 'o' : output = optarg; break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (read_live(&c, &live, NULL, &err)) {
        rc = cli_fail(&err);
        goto out;
    }
    plan_from_live(&p, &live);
    buf_addf(&yaml, "# s2 plan export from %s\n", server_name(&c));
    if (plan_write_yaml(&p, &yaml, &err)) {
        rc = cli_fail(&err);
        goto out;
    }
    /* what was written must read back as a valid plan: say so when the live state breaks a
     * plan rule (the server does not enforce them all) */
    free(back.file);
    back.file = xstrdup(output ? output : "(exported plan)");
    if (plan_parse(&back, yaml.ptr, yaml.len)) {
        fprintf(stderr, "warning: the live state breaks %zu plan rule%s; the export will not "
                        "validate until they are fixed:\n",
                back.nerrors + back.errors_dropped, back.nerrors == 1 ? "" : "s");
        plan_print_errors(&back, stderr);
    }
    if (!live.policy_supported)
        fprintf(stderr, "note: the server does not report a policy; the export has none\n");
    if (!live.idle_supported)
        fprintf(stderr, "note: the server does not report idle tasks; the export has none\n");
    if (!live.contract_supported)
        fprintf(stderr, "note: the server does not report contracts; the export has none\n");
    if (output) {
        if (write_file(output, yaml.ptr, yaml.len, &err)) {
            rc = cli_fail(&err);
            goto out;
        }
        if (!c.json)
            fprintf(stderr, "wrote %s: %zu swarms, %zu agents, %zu tasks\n", output, p.nswarms,
                    p.nagents, p.ntasks);
    } else {
        fwrite(yaml.ptr, 1, yaml.len, stdout);
    }
    rc = EXIT_OK;
out:
    s2_error_release(&err);
    buf_release(&yaml);
    plan_live_release(&live);
    plan_release(&p);
    plan_release(&back);
    cli_done(&c);
    return rc;
}
