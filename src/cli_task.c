/* cli_task.c: `s2 task add|list|show|cancel` and `s2 approve`. */
#include "cli.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAX (64u * 1024 * 1024)

static void print_task(json_t *t)
{
    long long now = clock_wall_ms();
    char buf[64];
    printf("task %s (%s) in swarm %s, phase %lld\n", cli_str(t, "id"), cli_str(t, "state"),
           cli_str(t, "swarm"), (long long)json_integer_value(json_object_get(t, "phase")));
    printf("  title:      %s\n", cli_str(t, "title"));
    printf("  priority:   %lld   min tier: %lld   attempts: %lld of %lld\n",
           (long long)json_integer_value(json_object_get(t, "priority")),
           (long long)json_integer_value(json_object_get(t, "min_tier")),
           (long long)json_integer_value(json_object_get(t, "attempts")),
           (long long)json_integer_value(json_object_get(t, "max_attempts")));
    size_t i;
    json_t *v;
    if (json_array_size(json_object_get(t, "requires"))) {
        printf("  requires:  ");
        json_array_foreach(json_object_get(t, "requires"), i, v)
            printf("%s %s", i ? "," : "", json_string_value(v));
        printf("\n");
    }
    if (json_array_size(json_object_get(t, "depends_on"))) {
        printf("  depends on:");
        json_array_foreach(json_object_get(t, "depends_on"), i, v)
            printf("%s %s", i ? "," : "", json_string_value(v));
        printf("\n");
    }
    json_array_foreach(json_object_get(t, "waiting_on"), i, v)
        printf("  waits on:   %s (%s, swarm %s)\n", cli_str(v, "task"), cli_str(v, "state"),
               cli_str(v, "swarm"));
    if (strcmp(cli_str(t, "approval"), "none"))
        printf("  approval:   %s (%lld given)\n", cli_str(t, "approval"),
               (long long)json_integer_value(json_object_get(t, "approvals")));
    if (*cli_str(t, "owner"))
        printf("  owner:      %s\n", cli_str(t, "owner"));
    json_t *exp = json_object_get(t, "lease_expires_at");
    if (json_is_integer(exp)) {
        cli_fmt_in(json_integer_value(exp) - now, buf, sizeof buf);
        printf("  lease:      %lld, expires %s\n",
               (long long)json_integer_value(json_object_get(t, "fence")), buf);
    }
    json_t *ra = json_object_get(t, "ready_at");
    if (json_is_integer(ra) && json_integer_value(ra) > now) {
        cli_fmt_in(json_integer_value(ra) - now, buf, sizeof buf);
        printf("  retry:      %s\n", buf);
    }
    double cost = json_number_value(json_object_get(t, "cost"));
    if (cost > 0 || json_integer_value(json_object_get(t, "tokens_in")))
        printf("  cost:       $%.4f (%lld tokens in, %lld out)\n", cost,
               (long long)json_integer_value(json_object_get(t, "tokens_in")),
               (long long)json_integer_value(json_object_get(t, "tokens_out")));
    if (*cli_str(t, "reason"))
        printf("  reason:     %s\n", cli_str(t, "reason"));
    json_t *res = json_object_get(t, "result");
    if (res && !json_is_null(res)) {
        char *s = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
        printf("  result:     %.200s%s\n", s, strlen(s) > 200 ? "..." : "");
        free(s);
    }
    cli_fmt_time(json_integer_value(json_object_get(t, "created_at")), buf, sizeof buf);
    printf("  created:    %s\n", buf);
    if (*cli_str(t, "body"))
        printf("\n%s\n", cli_str(t, "body"));
}

int cli_task_add(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *body = json_object(), *out = NULL, *file = NULL;
    const char *file_path = NULL, *body_file = NULL;
    char *text = NULL;
    int rc;
    long long n;
    double d;
    static const struct option opts[] = {
        {"title", required_argument, 0, 't'},       {"swarm", required_argument, 0, 's'},
        {"id", required_argument, 0, 'i'},          {"phase", required_argument, 0, 'p'},
        {"no-phase-barrier", no_argument, 0, 'B'},  {"priority", required_argument, 0, 'P'},
        {"requires", required_argument, 0, 'r'},    {"min-tier", required_argument, 0, 'T'},
        {"depends-on", required_argument, 0, 'd'},  {"body", required_argument, 0, 'b'},
        {"body-file", required_argument, 0, 'f'},   {"max-attempts", required_argument, 0, 'm'},
        {"lease-ms", required_argument, 0, 'l'},    {"backoff-ms", required_argument, 0, 'k'},
        {"approval", required_argument, 0, 'a'},    {"estimate-h", required_argument, 0, 'e'},
        {"max-cost", required_argument, 0, 'M'},    {"estimate-usd", required_argument, 0, 'U'},
        {"paths", required_argument, 0, 'Q'},
        {"file", required_argument, 0, 'F'},        CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts,
                case 't' : json_object_set_new(body, "title", json_string(optarg)); break;
                case 's' : json_object_set_new(body, "swarm", json_string(optarg)); break;
                case 'i' : json_object_set_new(body, "id", json_string(optarg)); break;
                case 'B' : json_object_set_new(body, "phase_barrier", json_false()); break;
                case 'r' : json_object_set_new(body, "requires", cli_list(optarg)); break;
                case 'd' : json_object_set_new(body, "depends_on", cli_list(optarg)); break;
                case 'Q' : json_object_set_new(body, "paths", cli_list(optarg)); break;
                case 'b' : json_object_set_new(body, "body", json_string(optarg)); break;
                case 'a' : json_object_set_new(body, "approval", json_string(optarg)); break;
                case 'f' : body_file = optarg; break;
                case 'F' : file_path = optarg; break;
                case 'p' : USAGE_IF(cli_int(&c, "--phase", optarg, 0, 1000000, &n));
                json_object_set_new(body, "phase", json_integer(n)); break;
                case 'P' : USAGE_IF(cli_int(&c, "--priority", optarg, -1000000, 1000000, &n));
                json_object_set_new(body, "priority", json_integer(n)); break;
                case 'T' : USAGE_IF(cli_int(&c, "--min-tier", optarg, 0, 9, &n));
                json_object_set_new(body, "min_tier", json_integer(n)); break;
                case 'm' : USAGE_IF(cli_int(&c, "--max-attempts", optarg, 1, 100, &n));
                json_object_set_new(body, "max_attempts", json_integer(n)); break;
                case 'l' : USAGE_IF(cli_int(&c, "--lease-ms", optarg, 100, 86400000, &n));
                json_object_set_new(body, "lease_ms", json_integer(n)); break;
                case 'k' : USAGE_IF(cli_int(&c, "--backoff-ms", optarg, 0, 3600000, &n));
                json_object_set_new(body, "retry_backoff_ms", json_integer(n)); break;
                case 'e' : USAGE_IF(cli_num(&c, "--estimate-h", optarg, &d));
                json_object_set_new(body, "estimate_h", json_real(d)); break;
                case 'M' : USAGE_IF(cli_num(&c, "--max-cost", optarg, &d));
                json_object_set_new(body, "max_cost", json_real(d)); break;
                case 'U' : USAGE_IF(cli_num(&c, "--estimate-usd", optarg, &d));
                json_object_set_new(body, "estimate_usd", json_real(d)); break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    struct s2_error err = S2_ERROR_INIT;
    if (file_path) {
        if (json_object_size(body) || body_file) {
            rc = cli_usage(&c, "--file takes the whole request: no other task options with it");
            goto out;
        }
        text = cli_read_file(file_path, FILE_MAX, &err);
        if (!text) {
            rc = cli_fail(&err);
            s2_error_release(&err);
            goto out;
        }
        json_error_t je;
        file = json_loads(text, 0, &je);
        if (!file) {
            rc = cli_failf("%s:%d:%d: %s", file_path, je.line, je.column, je.text);
            goto out;
        }
    } else {
        if (!json_object_get(body, "title")) {
            rc = cli_usage(&c, "--title is required (or --file)");
            goto out;
        }
        if (body_file) {
            text = cli_read_file(body_file, 256 * 1024, &err);
            if (!text) {
                rc = cli_fail(&err);
                s2_error_release(&err);
                goto out;
            }
            json_object_set_new(body, "body", json_string(text));
            if (!json_object_get(body, "body")) {
                rc = cli_failf("'%s' is not valid UTF-8 text", body_file);
                goto out;
            }
        }
    }
    rc = cli_call(&c, "POST", "/v1/tasks", file ? file : body, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json) {
            cli_print_json(out);
        } else if (json_object_get(out, "task")) {
            json_t *t = json_object_get(out, "task");
            printf("created %s (%s)\n", cli_str(t, "id"), cli_str(t, "state"));
        } else {
            size_t i;
            json_t *t;
            json_array_foreach(json_object_get(out, "tasks"), i, t)
                printf("created %s (%s)\n", cli_str(t, "id"), cli_str(t, "state"));
        }
    }
out:
    free(text);
    json_decref(file);
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_task_list(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *swarm = NULL, *state = NULL, *after = NULL;
    long long limit = 100;
    int all = 0, rc;
    char *cursor = NULL;
    json_t *tasks = json_array();
    static const struct option opts[] = {
        {"swarm", required_argument, 0, 's'}, {"state", required_argument, 0, 'S'},
        {"limit", required_argument, 0, 'l'}, {"after", required_argument, 0, 'a'},
        {"all", no_argument, 0, 'A'},         CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 's' : swarm = optarg; break;
                case 'S' : state = optarg; break; case 'a' : after = optarg; break;
                case 'A' : all = 1; break;
                case 'l' : USAGE_IF(cli_int(&c, "--limit", optarg, 1, 1000, &limit)); break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    cursor = after ? client_escape(after) : NULL;
    const char *next = NULL;
    for (;;) {
        char *sw = swarm ? client_escape(swarm) : NULL, *st = state ? client_escape(state) : NULL;
        char *path = xasprintf("/v1/tasks?limit=%lld%s%s%s%s%s%s", limit, sw ? "&swarm=" : "",
                               sw ? sw : "", st ? "&state=" : "", st ? st : "",
                               cursor ? "&after=" : "", cursor ? cursor : "");
        free(sw);
        free(st);
        json_t *page;
        rc = cli_call(&c, "GET", path, NULL, &page, NULL);
        free(path);
        if (rc)
            goto out;
        json_array_extend(tasks, json_object_get(page, "tasks"));
        next = json_string_value(json_object_get(page, "next"));
        free(cursor);
        cursor = next ? client_escape(next) : NULL;
        json_decref(page);
        if (!all || !cursor)
            break;
    }
    if (c.json) {
        json_t *o = json_pack("{s:O,s:s?}", "tasks", tasks, "next", all ? NULL : cursor);
        cli_print_json(o);
        json_decref(o);
        goto out;
    }
    if (!json_array_size(tasks)) {
        printf("no tasks\n");
        goto out;
    }
    printf("%-28s %-20s %5s %-9s %4s %-16s %s\n", "TASK", "SWARM", "PHASE", "STATE", "PRIO",
           "OWNER", "TITLE");
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t)
        printf("%-28s %-20s %5lld %-9s %4lld %-16s %.60s\n", cli_str(t, "id"),
               cli_str(t, "swarm"), (long long)json_integer_value(json_object_get(t, "phase")),
               cli_str(t, "state"), (long long)json_integer_value(json_object_get(t, "priority")),
               *cli_str(t, "owner") ? cli_str(t, "owner") : "-", cli_str(t, "title"));
    if (!all && cursor)
        printf("(more: --after %s, or --all)\n", cursor);
out:
    free(cursor);
    json_decref(tasks);
    cli_done(&c);
    return rc;
}

/* Commands on one task: show, cancel, approve. */
static int one_task(const struct cli_cmd *cmd, int argc, char **argv, const char *method,
                    const char *suffix, int with_reason)
{
    struct cli c = {.cmd = cmd};
    const char *reason = NULL;
    char *id = NULL, *path = NULL;
    json_t *out = NULL, *body = NULL;
    int rc;
    static const struct option opts[] = {{"reason", required_argument, 0, 'r'}, CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'r' : if (!with_reason) { rc = cli_usage(&c, "--reason applies to `s2 task cancel` only"); goto out; } reason = optarg; break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the task ID is required" : "too many arguments");
        goto out;
    }
    id = client_escape(argv[optind]);
    path = xasprintf("/v1/tasks/%s%s", id, suffix);
    if (reason)
        body = json_pack("{s:s}", "reason", reason);
    rc = cli_call(&c, method, path, body, &out, NULL);
    if (rc == EXIT_OK) {
        json_t *t = json_object_get(out, "task");
        if (c.json)
            cli_print_json(out);
        else if (!*suffix)
            print_task(t);
        else
            printf("%s is %s\n", cli_str(t, "id"), cli_str(t, "state"));
    }
out:
    json_decref(body);
    json_decref(out);
    free(id);
    free(path);
    cli_done(&c);
    return rc;
}

int cli_task_show(const struct cli_cmd *cmd, int argc, char **argv)
{
    return one_task(cmd, argc, argv, "GET", "", 0);
}

int cli_task_cancel(const struct cli_cmd *cmd, int argc, char **argv)
{
    return one_task(cmd, argc, argv, "POST", "/cancel", 1);
}

int cli_approve(const struct cli_cmd *cmd, int argc, char **argv)
{
    return one_task(cmd, argc, argv, "POST", "/approve", 0);
}
