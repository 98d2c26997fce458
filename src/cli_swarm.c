/* cli_swarm.c: `s2 swarm add|list|show|pause|resume`. */
#include "cli.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long count(json_t *sw, const char *state)
{
    return json_integer_value(json_object_get(json_object_get(sw, "tasks"), state));
}

static void print_swarm(json_t *s)
{
    printf("swarm %s (%s, %s, %s)\n", cli_str(s, "id"), cli_str(s, "relation"),
           cli_str(s, "state"), cli_str(s, "status"));
    if (*cli_str(s, "role"))
        printf("  role:         %s\n", cli_str(s, "role"));
    json_t *caps = json_object_get(s, "capabilities");
    if (json_array_size(caps)) {
        printf("  capabilities:");
        size_t i;
        json_t *v;
        json_array_foreach(caps, i, v) printf("%s %s", i ? "," : "", json_string_value(v));
        printf("\n");
    }
    printf("  budget:       $%.2f\n", json_number_value(json_object_get(s, "budget")));
    if (*cli_str(s, "branch"))
        printf("  branch:       %s\n", cli_str(s, "branch"));
    printf("  tasks:        %lld pending, %lld ready, %lld claimed, %lld done, %lld dead, %lld "
           "cancelled\n",
           count(s, "pending"), count(s, "ready"), count(s, "claimed"), count(s, "done"),
           count(s, "dead"), count(s, "cancelled"));
    printf("  agents:       %lld (%lld waiting for work)\n",
           (long long)json_integer_value(json_object_get(s, "agents")),
           (long long)json_integer_value(json_object_get(s, "waiting_claims")));
}

int cli_swarm_add(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *body = json_object(), *out = NULL;
    static const struct option opts[] = {
        {"role", required_argument, 0, 'r'},         {"relation", required_argument, 0, 'R'},
        {"capabilities", required_argument, 0, 'c'}, {"budget", required_argument, 0, 'b'},
        {"branch", required_argument, 0, 'B'},       CLI_COMMON_OPTS, {0}};
    double budget;
    int rc;
    CLI_OPTIONS(c, argc, argv, opts,
                case 'r' : json_object_set_new(body, "role", json_string(optarg)); break;
                case 'R' : json_object_set_new(body, "relation", json_string(optarg)); break;
                case 'c' : json_object_set_new(body, "capabilities", cli_list(optarg)); break;
                case 'B' : json_object_set_new(body, "branch", json_string(optarg)); break;
                case 'b' : USAGE_IF(cli_num(&c, "--budget", optarg, &budget));
                json_object_set_new(body, "budget", json_real(budget)); break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the swarm ID is required" : "too many arguments");
        goto out;
    }
    json_object_set_new(body, "id", json_string(argv[optind]));
    rc = cli_call(&c, "POST", "/v1/swarms", body, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json) {
            cli_print_json(out);
        } else {
            print_swarm(json_object_get(out, "swarm"));
            printf("swarm token: %s\n(shown only now: it acts on this swarm alone)\n",
                   cli_str(out, "token"));
        }
    }
out:
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_swarm_list(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    json_t *all = json_array();
    char *after = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, opts, );
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    for (;;) {
        char *path = after ? xasprintf("/v1/swarms?after=%s", after) : xstrdup("/v1/swarms");
        json_t *page;
        rc = cli_call(&c, "GET", path, NULL, &page, NULL);
        free(path);
        free(after);
        after = NULL;
        if (rc)
            goto out;
        json_array_extend(all, json_object_get(page, "swarms"));
        const char *next = json_string_value(json_object_get(page, "next"));
        if (next)
            after = client_escape(next);
        json_decref(page);
        if (!after)
            break;
    }
    if (c.json) {
        json_t *o = json_pack("{s:O}", "swarms", all);
        cli_print_json(o);
        json_decref(o);
    } else if (!json_array_size(all)) {
        printf("no swarms yet: create one with `s2 swarm add ID`\n");
    } else {
        printf("%-24s %-9s %-8s %-10s %7s %7s %7s %7s %6s\n", "SWARM", "RELATION", "STATE",
               "STATUS", "PENDING", "READY", "CLAIMED", "DONE", "AGENTS");
        size_t i;
        json_t *s;
        json_array_foreach(all, i, s)
            printf("%-24s %-9s %-8s %-10s %7lld %7lld %7lld %7lld %6lld\n", cli_str(s, "id"),
                   cli_str(s, "relation"), cli_str(s, "state"), cli_str(s, "status"),
                   count(s, "pending"), count(s, "ready"), count(s, "claimed"), count(s, "done"),
                   (long long)json_integer_value(json_object_get(s, "agents")));
    }
out:
    free(after);
    json_decref(all);
    cli_done(&c);
    return rc;
}

static int one_swarm(const struct cli_cmd *cmd, int argc, char **argv, const char *method,
                     const char *suffix)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    char *id = NULL, *path = NULL;
    json_t *out = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, opts, );
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the swarm ID is required" : "too many arguments");
        goto out;
    }
    id = client_escape(argv[optind]);
    path = xasprintf("/v1/swarms/%s%s", id, suffix);
    rc = cli_call(&c, method, path, NULL, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json)
            cli_print_json(out);
        else
            print_swarm(json_object_get(out, "swarm"));
    }
out:
    json_decref(out);
    free(id);
    free(path);
    cli_done(&c);
    return rc;
}

int cli_swarm_show(const struct cli_cmd *cmd, int argc, char **argv)
{
    return one_swarm(cmd, argc, argv, "GET", "");
}

int cli_swarm_pause(const struct cli_cmd *cmd, int argc, char **argv)
{
    int pause = !strcmp(cmd->name, "swarm pause");
    return one_swarm(cmd, argc, argv, "POST", pause ? "/pause" : "/resume");
}
