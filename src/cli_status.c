/* cli_status.c: `s2 status [SWARM]` (one screen, or one swarm in detail) and `s2 watch`
 * (the live event stream). */
#include "cli.h"
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

static void print_overview(json_t *out)
{
    json_t *swarms = json_object_get(out, "swarms");
    if (!json_array_size(swarms)) {
        printf("no swarms yet: create one with `s2 swarm add ID`\n");
        return;
    }
    printf("%-24s %-9s %-10s %5s %7s %6s %7s %6s %5s %5s\n", "SWARM", "RELATION", "STATUS",
           "PHASE", "PENDING", "READY", "CLAIMED", "DONE", "DEAD", "AGENTS");
    size_t i;
    json_t *s;
    json_array_foreach(swarms, i, s) {
        json_t *ph = json_object_get(s, "current_phase");
        char phase[16] = "-";
        if (json_is_integer(ph))
            snprintf(phase, sizeof phase, "%lld", (long long)json_integer_value(ph));
        printf("%-24s %-9s %-10s %5s %7lld %6lld %7lld %6lld %5lld %5lld\n", cli_str(s, "id"),
               cli_str(s, "relation"), cli_str(s, "status"), phase, cnt(s, "pending"),
               cnt(s, "ready"), cnt(s, "claimed"), cnt(s, "done"), cnt(s, "dead"),
               (long long)json_integer_value(json_object_get(s, "agents")));
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
    printf("  relation %s, state %s, budget $%.2f\n", cli_str(s, "relation"), cli_str(s, "state"),
           json_number_value(json_object_get(s, "budget")));
    printf("  progress: %lld done, %lld in progress, %lld remaining (%lld%%)\n",
           (long long)json_integer_value(json_object_get(p, "done")),
           (long long)json_integer_value(json_object_get(p, "in_progress")),
           (long long)json_integer_value(json_object_get(p, "remaining")),
           (long long)json_integer_value(json_object_get(p, "percent")));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "phases"), i, v)
        printf("  phase %-4lld %4lld/%-4lld done (%lld%%)\n",
               (long long)json_integer_value(json_object_get(v, "phase")),
               (long long)json_integer_value(json_object_get(v, "done")),
               (long long)json_integer_value(json_object_get(v, "tasks")),
               (long long)json_integer_value(json_object_get(v, "percent")));
    json_array_foreach(json_object_get(s, "working"), i, v) {
        char in[48];
        cli_fmt_in(json_integer_value(json_object_get(v, "expires_at")) - now, in, sizeof in);
        printf("  working: %s on %s (lease expires %s)\n", cli_str(v, "agent"),
               cli_str(v, "task"), in);
    }
    json_array_foreach(json_object_get(s, "blocked_on"), i, v)
        printf("  blocked on: %s of swarm %s (%s)\n", cli_str(v, "task"), cli_str(v, "swarm"),
               cli_str(v, "state"));
    json_array_foreach(json_object_get(s, "agent_list"), i, v)
        printf("  agent %-20s %-8s leases %lld/%lld  %s\n", cli_str(v, "id"), cli_str(v, "model"),
               (long long)json_integer_value(json_object_get(v, "leases_held")),
               (long long)json_integer_value(json_object_get(v, "max_leases")),
               cli_str(v, "health"));
}

int cli_status(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *out = NULL;
    char *path = NULL;
    int rc;
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, );
    if (argc - optind > 1) {
        rc = cli_usage(&c, "too many arguments");
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
            char *s = json_dumps(p, JSON_COMPACT);
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
