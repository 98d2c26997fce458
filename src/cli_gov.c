/* cli_gov.c: the governor from the shell: `s2 budget`, `s2 breaker`, `s2 block|unblock`,
 * `s2 post`, `s2 thread`, `s2 blockers`, `s2 escalations`, `s2 policy`, `s2 approver add`,
 * `s2 swarm idle|contract`. Each is a client of the HTTP API. */
#include "cli.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAX (16u * 1024 * 1024)

static double num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* prefix + the escaped id + suffix: "/v1/tasks/" "t%201" "/thread" */
static char *escaped_path(const char *prefix, const char *id, const char *suffix)
{
    char *e = client_escape(id);
    char *p = xasprintf("%s%s%s", prefix, e, suffix);
    free(e);
    return p;
}

/* The lease to act with on task: --lease, $S2_LEASE, the one `s2 claim` saved for it, or
 * (on a blocked task's thread) the saved lease of one of its help tasks. */
static char *find_lease(struct cli *c, const char *task, const char *given, int helpers)
{
    if (given)
        return xstrdup(given);
    const char *env = getenv("S2_LEASE");
    if (env && *env)
        return xstrdup(env);
    char *l = cli_lease_load(c->server, task);
    for (int n = 1; !l && helpers && n <= 32; n++) {
        char help[300];
        snprintf(help, sizeof help, "%s.help-%d", task, n);
        l = cli_lease_load(c->server, help);
    }
    return l;
}

static int no_lease(const char *task)
{
    return cli_failf("no lease for task '%s': pass --lease, set S2_LEASE, or claim it with `s2 "
                     "claim` on this machine",
                     task);
}

/* ---- budgets ---- */

static void print_ledger(const char *name, json_t *l)
{
    json_t *limit = json_object_get(l, "limit"), *left = json_object_get(l, "left");
    char lim[32] = "none", lft[32] = "-";
    if (json_is_number(limit))
        snprintf(lim, sizeof lim, "$%.2f", json_number_value(limit));
    if (json_is_number(left))
        snprintf(lft, sizeof lft, "$%.2f", json_number_value(left));
    printf("%-28s %10s %10.2f %10.2f %10s  %s\n", name, lim, num(l, "spent"), num(l, "reserved"),
           lft, cli_str(l, "level"));
}

int cli_budget(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *swarm = NULL;
    json_t *out = NULL;
    char *path = NULL;
    int rc;
    static const struct option opts[] = {{"swarm", required_argument, 0, 's'}, CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 's' : swarm = optarg; break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    path = swarm ? escaped_path("/v1/budgets?swarm=", swarm, "") : xstrdup("/v1/budgets");
    if ((rc = cli_call(&c, "GET", path, NULL, &out, NULL)))
        goto out;
    if (c.json) {
        cli_print_json(out);
        goto out;
    }
    printf("%-28s %10s %10s %10s %10s  %s\n", "SCOPE", "LIMIT", "SPENT", "RESERVED", "LEFT",
           "LEVEL");
    if (!swarm)
        print_ledger("global", json_object_get(out, "global"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(out, "swarms"), i, v)
    {
        char name[160];
        snprintf(name, sizeof name, "swarm %s%s", cli_str(v, "swarm"),
                 strcmp(cli_str(v, "state"), "tripped") ? "" : " (tripped)");
        print_ledger(name, v);
    }
    json_t *agents = json_object_get(out, "agents");
    int any = 0;
    json_array_foreach(agents, i, v) if (num(v, "spent") > 0) any = 1;
    if (any) {
        printf("\n%-28s %-20s %10s\n", "AGENT", "SWARM", "SPENT");
        json_array_foreach(agents, i, v) if (num(v, "spent") > 0)
            printf("%-28s %-20s %10.4f\n", cli_str(v, "agent"), cli_str(v, "swarm"), num(v, "spent"));
    }
    printf("\na claim reserves a task's max_cost (default $%.2f) until it reports its cost\n",
           num(out, "max_cost_per_task"));
out:
    free(path);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_budget_set(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *swarm = NULL;
    json_t *out = NULL, *body = NULL;
    int rc;
    double usd;
    static const struct option opts[] = {{"swarm", required_argument, 0, 's'}, CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 's' : swarm = optarg; break;);
    if (argc - optind != 1) {
        rc = cli_usage(&c, "give the budget in US dollars");
        goto out;
    }
    if ((rc = cli_num(&c, "USD", argv[optind], &usd)))
        goto out;
    body = json_pack("{s:f}", "budget", usd);
    if (swarm)
        json_object_set_new(body, "swarm", json_string(swarm));
    if ((rc = cli_call(&c, "POST", "/v1/budgets", body, &out, NULL)))
        goto out;
    if (c.json)
        cli_print_json(out);
    else
        printf("%s budget set to $%.2f\n", swarm ? swarm : "global", usd);
out:
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

/* ---- breakers ---- */

int cli_breaker_list(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *out = NULL;
    int rc;
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, );
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if ((rc = cli_call(&c, "GET", "/v1/breakers", NULL, &out, NULL)))
        goto out;
    if (c.json) {
        cli_print_json(out);
        goto out;
    }
    long long now = clock_wall_ms();
    printf("%-10s %-28s %-20s %-10s %s\n", "SCOPE", "ID", "SWARM", "STATE", "DETAIL");
    printf("%-10s %-28s %-20s %-10s\n", "global", "-", "-", cli_str(out, "global"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(out, "swarms"), i, v)
        printf("%-10s %-28s %-20s %-10s %s\n", "swarm", cli_str(v, "swarm"), cli_str(v, "swarm"),
               cli_str(v, "state"), cli_str(v, "why"));
    json_array_foreach(json_object_get(out, "agents"), i, v)
    {
        char detail[96] = "";
        json_t *ho = json_object_get(v, "half_open_at");
        if (!strcmp(cli_str(v, "state"), "open") && json_is_integer(ho)) {
            char in[48];
            cli_fmt_in(json_integer_value(ho) - now, in, sizeof in);
            snprintf(detail, sizeof detail, "half-open %s", in);
        } else if (json_integer_value(json_object_get(v, "consecutive_failures"))) {
            snprintf(detail, sizeof detail, "%lld consecutive failure(s)",
                     (long long)json_integer_value(json_object_get(v, "consecutive_failures")));
        }
        printf("%-10s %-28s %-20s %-10s %s\n", "agent", cli_str(v, "agent"), cli_str(v, "swarm"),
               cli_str(v, "state"), detail);
    }
out:
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_breaker_reset(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *out = NULL;
    char *path = NULL;
    int rc;
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, );
    if (argc - optind != 1) {
        rc = cli_usage(&c, "give the agent or swarm whose breaker to reset");
        goto out;
    }
    path = escaped_path("/v1/breakers/", argv[optind], "/reset");
    if ((rc = cli_call(&c, "POST", path, NULL, &out, NULL)))
        goto out;
    if (c.json)
        cli_print_json(out);
    else
        printf("breaker of %s reset: it may claim again\n", argv[optind]);
out:
    free(path);
    json_decref(out);
    cli_done(&c);
    return rc;
}

/* ---- blockers ---- */

int cli_block(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *needs = NULL, *reason = NULL, *lease_arg = NULL;
    json_t *out = NULL, *body = NULL;
    char *path = NULL, *lease = NULL;
    int rc;
    int unblock = !strcmp(cmd->name, "unblock");
    static const struct option opts[] = {{"needs", required_argument, 0, 'n'},
                                         {"reason", required_argument, 0, 'r'},
                                         {"lease", required_argument, 0, 'l'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'n' : needs = optarg; break;
                case 'r' : reason = optarg; break; case 'l' : lease_arg = optarg; break;);
    if (argc - optind != 1) {
        rc = cli_usage(&c, "give one task");
        goto out;
    }
    const char *task = argv[optind];
    if (!unblock && (!needs || !reason)) {
        rc = cli_usage(&c, "--needs and --reason are required");
        goto out;
    }
    if (!(lease = find_lease(&c, task, lease_arg, 0))) {
        rc = no_lease(task);
        goto out;
    }
    body = json_pack("{s:s}", "lease", lease);
    if (!unblock) {
        json_object_set_new(body, "needs", cli_list(needs));
        json_object_set_new(body, "reason", json_string(reason));
    }
    path = escaped_path("/v1/tasks/", task, unblock ? "/unblock" : "/block");
    if ((rc = cli_call(&c, "POST", path, body, &out, NULL)))
        goto out;
    if (c.json)
        cli_print_json(out);
    else if (unblock)
        printf("%s unblocked; help still under way was cancelled\n", task);
    else if (json_is_true(json_object_get(out, "escalated")))
        printf("%s blocked: no agent of another swarm matches its needs, so a human was called "
               "(s2 escalations)\n",
               task);
    else
        printf("%s blocked: %lld helper(s) at work now; more join as they ask for work. Read "
               "their posts with `s2 thread %s`\n",
               task, (long long)json_integer_value(json_object_get(out, "helpers")), task);
out:
    free(path);
    free(lease);
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_blockers(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *swarm = NULL;
    json_t *out = NULL;
    char *path = NULL;
    int rc;
    static const struct option opts[] = {{"swarm", required_argument, 0, 's'}, CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 's' : swarm = optarg; break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    path = swarm ? escaped_path("/v1/blockers?swarm=", swarm, "") : xstrdup("/v1/blockers");
    if ((rc = cli_call(&c, "GET", path, NULL, &out, NULL)))
        goto out;
    if (c.json) {
        cli_print_json(out);
        goto out;
    }
    json_t *list = json_object_get(out, "blockers");
    if (!json_array_size(list))
        printf("nothing is blocked\n");
    size_t i, k;
    json_t *b, *v;
    long long now = clock_wall_ms();
    json_array_foreach(list, i, b)
    {
        char ago[48];
        cli_fmt_in(json_integer_value(json_object_get(b, "created_at")) - now, ago, sizeof ago);
        printf("%s (swarm %s, agent %s) blocked %s%s: %s\n  needs:", cli_str(b, "task"),
               cli_str(b, "swarm"), cli_str(b, "agent"), ago,
               json_is_true(json_object_get(b, "escalated")) ? ", escalated" : "",
               cli_str(b, "reason"));
        json_array_foreach(json_object_get(b, "needs"), k, v) printf(" %s", json_string_value(v));
        printf("\n");
        json_array_foreach(json_object_get(b, "helpers"), k, v)
            printf("  helper %s of swarm %s on %s (%s)\n", cli_str(v, "agent"), cli_str(v, "swarm"),
                   cli_str(v, "task"), cli_str(v, "state"));
    }
out:
    free(path);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_post(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *file = NULL, *text = NULL, *lease_arg = NULL;
    json_t *out = NULL, *body = NULL;
    char *path = NULL, *lease = NULL, *content = NULL;
    int rc;
    static const struct option opts[] = {{"file", required_argument, 0, 'f'},
                                         {"body", required_argument, 0, 'b'},
                                         {"lease", required_argument, 0, 'l'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'f' : file = optarg; break;
                case 'b' : text = optarg; break; case 'l' : lease_arg = optarg; break;);
    if (argc - optind != 1 || !!file + !!text != 1) {
        rc = cli_usage(&c, "give the blocked task and one of --file F or --body TEXT");
        goto out;
    }
    const char *task = argv[optind];
    if (file) {
        struct s2_error err = S2_ERROR_INIT;
        if (!(content = cli_read_file(file, FILE_MAX, &err))) {
            rc = cli_fail(&err);
            s2_error_release(&err);
            goto out;
        }
        text = content;
    }
    if (!(lease = find_lease(&c, task, lease_arg, 1))) {
        rc = no_lease(task);
        goto out;
    }
    body = json_pack("{s:s,s:s}", "lease", lease, "body", text);
    if (!body) {
        rc = cli_failf("the post is not valid UTF-8 text");
        goto out;
    }
    path = escaped_path("/v1/tasks/", task, "/thread");
    if ((rc = cli_call(&c, "POST", path, body, &out, NULL)))
        goto out;
    if (c.json)
        cli_print_json(out);
    else
        printf("posted #%lld on the thread of %s\n",
               (long long)json_integer_value(json_object_get(out, "post")), task);
out:
    free(content);
    free(path);
    free(lease);
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_thread(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *lease_arg = NULL;
    long long accept = 0, reject = 0;
    json_t *out = NULL, *body = NULL;
    char *path = NULL, *lease = NULL;
    int rc;
    static const struct option opts[] = {{"accept", required_argument, 0, 'a'},
                                         {"reject", required_argument, 0, 'r'},
                                         {"lease", required_argument, 0, 'l'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts,
                case 'a' : USAGE_IF(cli_int(&c, "--accept", optarg, 1, INT64_MAX, &accept)); break;
                case 'r' : USAGE_IF(cli_int(&c, "--reject", optarg, 1, INT64_MAX, &reject)); break;
                case 'l' : lease_arg = optarg; break;);
    if (argc - optind != 1 || (accept && reject)) {
        rc = cli_usage(&c, "give one task, and at most one of --accept N or --reject N");
        goto out;
    }
    const char *task = argv[optind];
    if (accept || reject) {
        if (!(lease = find_lease(&c, task, lease_arg, 0))) {
            rc = no_lease(task);
            goto out;
        }
        char *t = client_escape(task);
        path = xasprintf("/v1/tasks/%s/thread/%lld/%s", t, accept ? accept : reject,
                         accept ? "accept" : "reject");
        free(t);
        body = json_pack("{s:s}", "lease", lease);
        if ((rc = cli_call(&c, "POST", path, body, &out, NULL)))
            goto out;
        if (c.json)
            cli_print_json(out);
        else
            printf("post #%lld %s\n", accept ? accept : reject, accept ? "accepted" : "rejected");
        goto out;
    }
    path = escaped_path("/v1/tasks/", task, "/thread");
    if ((rc = cli_call(&c, "GET", path, NULL, &out, NULL)))
        goto out;
    if (c.json) {
        cli_print_json(out);
        goto out;
    }
    json_t *posts = json_object_get(out, "posts");
    if (!json_array_size(posts))
        printf("no posts on the thread of %s yet\n", task);
    size_t i;
    json_t *p;
    json_array_foreach(posts, i, p)
    {
        char when[32];
        cli_fmt_time(json_integer_value(json_object_get(p, "created_at")), when, sizeof when);
        printf("#%lld %s by %s%s%s [%s]\n%s\n\n",
               (long long)json_integer_value(json_object_get(p, "id")), when,
               cli_str(p, "agent"), *cli_str(p, "help_task") ? " via " : "",
               cli_str(p, "help_task"), cli_str(p, "verdict"), cli_str(p, "body"));
    }
out:
    free(path);
    free(lease);
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

/* ---- escalations ---- */

int cli_escalations(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    int all = 0;
    json_t *out = NULL;
    char *path = NULL;
    int rc;
    static const struct option opts[] = {{"all", no_argument, 0, 'a'}, CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'a' : all = 1; break;);
    if (optind < argc && !strcmp(argv[optind], "ack")) {
        long long id;
        if (argc - optind != 2) {
            rc = cli_usage(&c, "give the escalation number to acknowledge");
            goto out;
        }
        if ((rc = cli_int(&c, "ID", argv[optind + 1], 1, INT64_MAX, &id)))
            goto out;
        path = xasprintf("/v1/escalations/%lld/ack", id);
        if ((rc = cli_call(&c, "POST", path, NULL, &out, NULL)))
            goto out;
        if (c.json)
            cli_print_json(out);
        else
            printf("escalation %lld acknowledged\n", id);
        goto out;
    }
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    path = xstrdup(all ? "/v1/escalations?all=1" : "/v1/escalations");
    if ((rc = cli_call(&c, "GET", path, NULL, &out, NULL)))
        goto out;
    if (c.json) {
        cli_print_json(out);
        goto out;
    }
    json_t *list = json_object_get(out, "escalations");
    if (!json_array_size(list))
        printf(all ? "no escalations\n" : "no open escalations\n");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        char when[32];
        cli_fmt_time(json_integer_value(json_object_get(v, "created_at")), when, sizeof when);
        printf("#%lld %s %-16s %s%s\n", (long long)json_integer_value(json_object_get(v, "id")),
               when, cli_str(v, "kind"), cli_str(v, "message"),
               json_is_null(json_object_get(v, "acked_at")) ? "" : " (acknowledged)");
    }
out:
    free(path);
    json_decref(out);
    cli_done(&c);
    return rc;
}

/* ---- policy ---- */

/* KEY=VALUE: the value as JSON when it parses (0.8, true, null, "x"), else as a string. */
static int set_member(json_t *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return -1;
    char *key = xstrndup(kv, (size_t)(eq - kv));
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
    if (!v)
        v = json_string(eq + 1);
    json_object_set_new(o, key, v ? v : json_null());
    free(key);
    return 0;
}

int cli_policy(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *out = NULL, *body = NULL;
    int rc;
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, );
    const char *verb = optind < argc ? argv[optind] : "show";
    if (!strcmp(verb, "show")) {
        if (argc - optind > 1) {
            rc = cli_usage(&c, "unexpected argument '%s'", argv[optind + 1]);
            goto out;
        }
        if ((rc = cli_call(&c, "GET", "/v1/policy", NULL, &out, NULL)))
            goto out;
    } else if (!strcmp(verb, "set") || !strcmp(verb, "preset")) {
        body = json_object();
        if (!strcmp(verb, "preset")) {
            if (argc - optind != 2) {
                rc = cli_usage(&c, "give a preset: development, default or production");
                goto out;
            }
            json_object_set_new(body, "preset", json_string(argv[optind + 1]));
        } else {
            if (argc - optind < 2) {
                rc = cli_usage(&c, "give at least one KEY=VALUE");
                goto out;
            }
            for (int i = optind + 1; i < argc; i++)
                if (set_member(body, argv[i])) {
                    rc = cli_usage(&c, "'%s' is not KEY=VALUE", argv[i]);
                    goto out;
                }
        }
        if ((rc = cli_call(&c, "PUT", "/v1/policy", body, &out, NULL)))
            goto out;
    } else {
        rc = cli_usage(&c, "unknown policy command '%s' (show, set, preset)", verb);
        goto out;
    }
    if (c.json) {
        cli_print_json(out);
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(out, k, v)
    {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
        printf("%-26s %s\n", k, s);
        free(s);
    }
out:
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

/* ---- approvers ---- */

int cli_approver_add(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *out = NULL, *body = NULL;
    int rc;
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, );
    if (argc - optind != 1) {
        rc = cli_usage(&c, "give the approver's name");
        goto out;
    }
    body = json_pack("{s:s}", "name", argv[optind]);
    if ((rc = cli_call(&c, "POST", "/v1/approvers", body, &out, NULL)))
        goto out;
    if (c.json) {
        cli_print_json(out);
    } else {
        printf("approver %s added\ntoken: %s\n", argv[optind], cli_str(out, "token"));
        printf("(shown only now: it can approve tasks and read, nothing else)\n");
    }
out:
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

/* ---- a swarm's idle tasks and contract ---- */

int cli_swarm_text(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *file = NULL;
    int clear = 0;
    int contract = !strcmp(cmd->name, "swarm contract");
    json_t *out = NULL, *body = NULL, *value = NULL;
    char *path = NULL, *text = NULL;
    int rc;
    static const struct option opts[] = {{"file", required_argument, 0, 'f'},
                                         {"clear", no_argument, 0, 'c'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'f' : file = optarg; break; case 'c' : clear = 1; break;);
    if (argc - optind != 1) {
        rc = cli_usage(&c, "give one swarm");
        goto out;
    }
    const char *swarm = argv[optind];
    path = escaped_path("/v1/swarms/", swarm, contract ? "/contract" : "/idle_tasks");
    if (!file && !clear) {
        if (!contract) {
            rc = cli_usage(&c, "give --file F (a JSON array of {title, body, requires}) or --clear");
            goto out;
        }
        if ((rc = cli_call(&c, "GET", path, NULL, &out, NULL)))
            goto out;
        cli_print_json(c.json ? out : json_object_get(out, "contract"));
        goto out;
    }
    if (file) {
        struct s2_error err = S2_ERROR_INIT;
        if (!(text = cli_read_file(file, FILE_MAX, &err))) {
            rc = cli_fail(&err);
            s2_error_release(&err);
            goto out;
        }
        json_error_t je;
        value = json_loads(text, JSON_REJECT_DUPLICATES, &je);
        if (!value) {
            rc = cli_failf("%s:%d:%d: %s", file, je.line, je.column, je.text);
            goto out;
        }
    }
    body = json_object();
    json_object_set(body, contract ? "contract" : "idle_tasks", value ? value : json_null());
    if ((rc = cli_call(&c, "PUT", path, body, &out, NULL)))
        goto out;
    if (c.json)
        cli_print_json(out);
    else
        printf("%s of swarm %s %s\n", contract ? "contract" : "idle tasks", swarm,
               clear ? "cleared" : "set");
out:
    free(text);
    free(path);
    json_decref(value);
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

/* ---- service levels ---- */

static void print_slo_line(const char *name, json_t *s)
{
    json_t *met = json_object_get(s, "met");
    int ok = json_is_true(json_object_get(met, "p99_latency_ms")) &&
             json_is_true(json_object_get(met, "success_rate")) &&
             json_is_true(json_object_get(met, "availability"));
    printf("%-28s %7lld %9.0f %9.0f %8.1f%% %8.1f%% %10.2f  %s\n", name,
           (long long)json_integer_value(json_object_get(s, "samples")), num(s, "p50_latency_ms"),
           num(s, "p99_latency_ms"), 100 * num(s, "success_rate"), 100 * num(s, "availability"),
           num(s, "reputation"), ok ? "met" : "MISSED");
}

int cli_slo(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *out = NULL;
    char *path = NULL;
    int rc;
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, );
    if (argc - optind > 1) {
        rc = cli_usage(&c, "give at most one swarm");
        goto out;
    }
    path = optind < argc ? escaped_path("/v1/swarms/", argv[optind], "/slo") : xstrdup("/v1/slo");
    if ((rc = cli_call(&c, "GET", path, NULL, &out, NULL)))
        goto out;
    if (c.json) {
        cli_print_json(out);
        goto out;
    }
    printf("%-28s %7s %9s %9s %9s %9s %10s  %s\n", "", "SAMPLES", "P50 MS", "P99 MS", "SUCCESS",
           "AVAIL", "REPUTATION", "CONTRACT");
    size_t i;
    json_t *v;
    if (optind < argc) {
        json_t *ct = json_object_get(out, "contract");
        char name[160];
        snprintf(name, sizeof name, "swarm %s", cli_str(out, "swarm"));
        print_slo_line(name, json_object_get(out, "slo"));
        json_array_foreach(json_object_get(out, "agents"), i, v)
        {
            snprintf(name, sizeof name, "  agent %s", cli_str(v, "agent"));
            print_slo_line(name, json_object_get(v, "slo"));
        }
        printf("\ncontract: p99 <= %.0f ms, success >= %.1f%%, availability >= %.1f%% (0: not "
               "asked)\n",
               num(ct, "p99_latency_ms"), 100 * num(ct, "success_rate"),
               100 * num(ct, "availability"));
    } else {
        json_array_foreach(json_object_get(out, "swarms"), i, v)
            print_slo_line(cli_str(v, "swarm"), json_object_get(v, "slo"));
    }
    printf("window: the last 100 leases; reputation = compliance x success rate\n");
out:
    free(path);
    json_decref(out);
    cli_done(&c);
    return rc;
}
