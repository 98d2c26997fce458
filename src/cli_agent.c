/* cli_agent.c: `s2 agent add|list|show` and `s2 model list|set`. */
#include "cli.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_agent(json_t *a)
{
    char seen[48] = "never";
    json_t *ls = json_object_get(a, "last_seen");
    if (json_is_integer(ls))
        cli_fmt_in(json_integer_value(ls) - clock_wall_ms(), seen, sizeof seen);
    printf("agent %s (swarm %s, model %s tier %lld)\n", cli_str(a, "id"), cli_str(a, "swarm"),
           cli_str(a, "model"), (long long)json_integer_value(json_object_get(a, "tier")));
    printf("  capabilities: ");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(a, "capabilities"), i, v)
        printf("%s%s", i ? ", " : "", json_string_value(v));
    printf("%s\n", json_array_size(json_object_get(a, "capabilities")) ? "" : "(none)");
    printf("  leases:       %lld of %lld\n",
           (long long)json_integer_value(json_object_get(a, "leases_held")),
           (long long)json_integer_value(json_object_get(a, "max_leases")));
    printf("  last seen:    %s (%s)\n", seen, cli_str(a, "health"));
    json_array_foreach(json_object_get(a, "leases"), i, v) {
        char in[48];
        cli_fmt_in(json_integer_value(json_object_get(v, "expires_at")) - clock_wall_ms(), in,
                   sizeof in);
        printf("  holds %s (attempt %lld, lease expires %s)\n", cli_str(v, "task"),
               (long long)json_integer_value(json_object_get(v, "attempt")), in);
    }
}

int cli_agent_add(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *body = json_object(), *out = NULL;
    static const struct option opts[] = {
        {"swarm", required_argument, 0, 's'},      {"model", required_argument, 0, 'm'},
        {"capabilities", required_argument, 0, 'c'}, {"max-leases", required_argument, 0, 'x'},
        CLI_COMMON_OPTS, {0}};
    long long n;
    int rc;
    CLI_OPTIONS(c, argc, argv, opts,
                case 's' : json_object_set_new(body, "swarm", json_string(optarg)); break;
                case 'm' : json_object_set_new(body, "model", json_string(optarg)); break;
                case 'c' : json_object_set_new(body, "capabilities", cli_list(optarg)); break;
                case 'x' : USAGE_IF(cli_int(&c, "--max-leases", optarg, 1, 1000, &n));
                json_object_set_new(body, "max_leases", json_integer(n)); break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the agent ID is required" : "too many arguments");
        goto out;
    }
    json_object_set_new(body, "id", json_string(argv[optind]));
    rc = cli_call(&c, "POST", "/v1/agents", body, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json)
            cli_print_json(out);
        else
            print_agent(json_object_get(out, "agent"));
    }
out:
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_agent_list(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *swarm = NULL;
    static const struct option opts[] = {{"swarm", required_argument, 0, 's'}, CLI_COMMON_OPTS,
                                         {0}};
    char *e = NULL, *path = NULL;
    json_t *out = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, opts, case 's' : swarm = optarg; break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    e = swarm ? client_escape(swarm) : NULL;
    path = e ? xasprintf("/v1/agents?swarm=%s", e) : xstrdup("/v1/agents");
    rc = cli_call(&c, "GET", path, NULL, &out, NULL);
    if (rc == EXIT_OK) {
        json_t *list = json_object_get(out, "agents");
        if (c.json) {
            cli_print_json(out);
        } else if (!json_array_size(list)) {
            printf("no agents%s\n", swarm ? " in this swarm" : "");
        } else {
            printf("%-24s %-20s %-8s %4s %6s %-10s %s\n", "AGENT", "SWARM", "MODEL", "TIER",
                   "LEASES", "HEALTH", "CAPABILITIES");
            size_t i;
            json_t *a;
            json_array_foreach(list, i, a) {
                char caps[256] = "";
                size_t k, o = 0;
                json_t *v;
                json_array_foreach(json_object_get(a, "capabilities"), k, v)
                    if (o < sizeof caps)
                        o += (size_t)snprintf(caps + o, sizeof caps - o, "%s%s", k ? "," : "",
                                              json_string_value(v));
                printf("%-24s %-20s %-8s %4lld %3lld/%-2lld %-10s %s\n", cli_str(a, "id"),
                       cli_str(a, "swarm"), cli_str(a, "model"),
                       (long long)json_integer_value(json_object_get(a, "tier")),
                       (long long)json_integer_value(json_object_get(a, "leases_held")),
                       (long long)json_integer_value(json_object_get(a, "max_leases")),
                       cli_str(a, "health"), caps);
            }
        }
    }
out:
    json_decref(out);
    free(e);
    free(path);
    cli_done(&c);
    return rc;
}

int cli_agent_show(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    char *e = NULL, *path = NULL;
    json_t *out = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, opts, );
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the agent ID is required" : "too many arguments");
        goto out;
    }
    e = client_escape(argv[optind]);
    path = xasprintf("/v1/agents/%s", e);
    rc = cli_call(&c, "GET", path, NULL, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json)
            cli_print_json(out);
        else
            print_agent(json_object_get(out, "agent"));
    }
out:
    json_decref(out);
    free(e);
    free(path);
    cli_done(&c);
    return rc;
}

static void print_models(json_t *out)
{
    printf("%-16s %4s %12s %12s\n", "MODEL", "TIER", "$/MTOK IN", "$/MTOK OUT");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(out, "models"), i, m)
        printf("%-16s %4lld %12.2f %12.2f\n", cli_str(m, "name"),
               (long long)json_integer_value(json_object_get(m, "tier")),
               json_number_value(json_object_get(m, "usd_per_mtok_in")),
               json_number_value(json_object_get(m, "usd_per_mtok_out")));
}

int cli_model_list(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    static const struct option opts[] = {CLI_COMMON_OPTS, {0}};
    json_t *out = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, opts, );
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    rc = cli_call(&c, "GET", "/v1/models", NULL, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json)
            cli_print_json(out);
        else
            print_models(out);
    }
out:
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_model_set(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    json_t *body = json_object(), *out = NULL;
    int rc;
    static const struct option opts[] = {{"tier", required_argument, 0, 't'},
                                         {"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    long long tier;
    double v;
    CLI_OPTIONS(c, argc, argv, opts,
                case 't' : USAGE_IF(cli_int(&c, "--tier", optarg, 1, 9, &tier));
                json_object_set_new(body, "tier", json_integer(tier)); break;
                case 'i' : USAGE_IF(cli_num(&c, "--in", optarg, &v));
                json_object_set_new(body, "usd_per_mtok_in", json_real(v)); break;
                case 'o' : USAGE_IF(cli_num(&c, "--out", optarg, &v));
                json_object_set_new(body, "usd_per_mtok_out", json_real(v)); break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the model NAME is required" : "too many arguments");
        goto out;
    }
    json_object_set_new(body, "name", json_string(argv[optind]));
    rc = cli_call(&c, "POST", "/v1/models", body, &out, NULL);
    if (rc == EXIT_OK) {
        if (c.json)
            cli_print_json(out);
        else
            print_models(out);
    }
out:
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}
