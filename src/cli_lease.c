/* cli_lease.c: the agent's loop from the shell: `s2 claim`, `s2 heartbeat`, `s2 done`,
 * `s2 fail`. The lease token a claim returns is remembered locally (mode 0600) so that the
 * later commands find it without the agent copying secrets around. */
#include "cli.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_claim(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *agent = NULL;
    long long wait = 0;
    json_t *out = NULL, *body = NULL;
    long status = 0;
    int rc;
    static const struct option opts[] = {{"agent", required_argument, 0, 'a'},
                                         {"wait", required_argument, 0, 'w'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'a' : agent = optarg; break;
                case 'w' : USAGE_IF(cli_int(&c, "--wait", optarg, 0, 300, &wait)); break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!agent) {
        rc = cli_usage(&c, "--agent is required");
        goto out;
    }
    body = json_pack("{s:s,s:I}", "agent", agent, "wait_ms", (json_int_t)wait * 1000);
    /* The server may hold the claim for --wait seconds (up to 300): wait for its answer
     * longer than that, not the client's default per-request limit. */
    struct s2_error err = S2_ERROR_INIT;
    if (client_init(&c.client, c.server, NULL, &err)) {
        rc = cli_fail(&err);
        s2_error_release(&err);
        goto out;
    }
    c.connected = 1;
    c.client.timeout_ms += (long)wait * 1000;
    rc = cli_call(&c, "POST", "/v1/claim", body, &out, &status);
    if (rc)
        goto out;
    if (status == 204 || !out) {
        const char *why = client_last_header(&c.client, "S2-Reason");
        if (c.json) {
            json_t *o = json_pack("{s:n,s:s}", "task", "reason", why ? why : "no task");
            cli_print_json(o);
            json_decref(o);
        } else {
            fprintf(stderr, "no task for %s%s%s\n", agent, why ? ": " : "", why ? why : "");
        }
        goto out;
    }
    json_t *t = json_object_get(out, "task"), *l = json_object_get(out, "lease");
    const char *task = cli_str(t, "id"), *token = cli_str(l, "token");
    int saved = cli_lease_save(c.server, task, token) == 0;
    if (c.json) {
        cli_print_json(out);
    } else {
        char in[48];
        cli_fmt_in(json_integer_value(json_object_get(l, "expires_at")) - clock_wall_ms(), in,
                   sizeof in);
        printf("claimed %s (attempt %lld of %lld, lease expires %s)\n", task,
               (long long)json_integer_value(json_object_get(t, "attempts")),
               (long long)json_integer_value(json_object_get(t, "max_attempts")), in);
        printf("  title: %s\n", cli_str(t, "title"));
        printf("  lease: %s%s\n", token,
               saved ? "  (saved: `s2 done TASK` finds it)" : "  (could not save it: pass --lease)");
        if (*cli_str(t, "body"))
            printf("\n%s\n", cli_str(t, "body"));
    }
out:
    json_decref(body);
    json_decref(out);
    cli_done(&c);
    return rc;
}

enum lease_verb { V_HEARTBEAT, V_DONE, V_FAIL };

#define NOT_HERE(cond)                                                                         \
    do {                                                                                       \
        if (cond) {                                                                            \
            rc = cli_usage(&c, "option '%s' does not apply to `s2 %s`", argv[optind - 1],     \
                           cmd->name);                                                         \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)

static int lease_cmd(const struct cli_cmd *cmd, int argc, char **argv, enum lease_verb verb)
{
    struct cli c = {.cmd = cmd};
    const char *lease_arg = NULL, *result = NULL, *result_file = NULL, *reason = NULL;
    int no_retry = 0, rc;
    char *lease = NULL, *id = NULL, *path = NULL, *text = NULL;
    json_t *body = json_object(), *usage = json_object(), *out = NULL;
    long long n;
    double d;
    static const struct option opts[] = {
        {"lease", required_argument, 0, 'l'},      {"result", required_argument, 0, 'r'},
        {"result-file", required_argument, 0, 'f'}, {"reason", required_argument, 0, 'R'},
        {"no-retry", no_argument, 0, 'n'},         {"model", required_argument, 0, 'm'},
        {"tokens-in", required_argument, 0, 'i'},  {"tokens-out", required_argument, 0, 'o'},
        {"usd", required_argument, 0, 'u'},        CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'l' : lease_arg = optarg; break;
                case 'r' : NOT_HERE(verb != V_DONE); result = optarg; break;
                case 'f' : NOT_HERE(verb != V_DONE); result_file = optarg; break;
                case 'R' : NOT_HERE(verb != V_FAIL); reason = optarg; break;
                case 'n' : NOT_HERE(verb != V_FAIL); no_retry = 1; break;
                case 'm' : json_object_set_new(usage, "model", json_string(optarg)); break;
                case 'i' : USAGE_IF(cli_int(&c, "--tokens-in", optarg, 0, 1000000000000LL, &n));
                json_object_set_new(usage, "tokens_in", json_integer(n)); break;
                case 'o' : USAGE_IF(cli_int(&c, "--tokens-out", optarg, 0, 1000000000000LL, &n));
                json_object_set_new(usage, "tokens_out", json_integer(n)); break;
                case 'u' : USAGE_IF(cli_num(&c, "--usd", optarg, &d));
                json_object_set_new(usage, "usd", json_real(d)); break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the TASK id is required" : "too many arguments");
        goto out;
    }
    const char *task = argv[optind];
    if (verb == V_FAIL && !reason) {
        rc = cli_usage(&c, "--reason is required");
        goto out;
    }
    if (result && result_file) {
        rc = cli_usage(&c, "--result and --result-file exclude each other");
        goto out;
    }
    if (lease_arg)
        lease = xstrdup(lease_arg);
    else if (getenv("S2_LEASE") && *getenv("S2_LEASE"))
        lease = xstrdup(getenv("S2_LEASE"));
    else
        lease = cli_lease_load(c.server, task);
    if (!lease) {
        rc = cli_failf("no lease for task '%s': pass --lease, set S2_LEASE, or claim it with "
                       "`s2 claim` on this machine",
                       task);
        goto out;
    }
    json_object_set_new(body, "lease", json_string(lease));
    if (json_object_size(usage))
        json_object_set(body, "usage", usage);
    if (result_file) {
        struct s2_error err = S2_ERROR_INIT;
        text = cli_read_file(result_file, 256 * 1024, &err);
        if (!text) {
            rc = cli_fail(&err);
            s2_error_release(&err);
            goto out;
        }
        result = text;
    }
    if (result) {
        json_t *r = json_loads(result, JSON_DECODE_ANY, NULL);
        if (!r)
            r = json_string(result); /* plain text is a fine result too */
        if (!r) {
            rc = cli_failf("the result is neither JSON nor UTF-8 text");
            goto out;
        }
        json_object_set_new(body, "result", r);
    }
    if (reason)
        json_object_set_new(body, "reason", json_string(reason));
    if (no_retry)
        json_object_set_new(body, "retry", json_false());
    id = client_escape(task);
    static const char *const verbs[] = {"heartbeat", "done", "fail"};
    path = xasprintf("/v1/tasks/%s/%s", id, verbs[verb]);
    rc = cli_call(&c, "POST", path, body, &out, NULL);
    if (rc)
        goto out;
    if (verb != V_HEARTBEAT && !lease_arg)
        cli_lease_forget(c.server, task);
    json_t *t = json_object_get(out, "task");
    if (c.json) {
        cli_print_json(out);
    } else if (verb == V_HEARTBEAT) {
        char in[48];
        cli_fmt_in(json_integer_value(json_object_get(json_object_get(out, "lease"),
                                                      "expires_at")) -
                       clock_wall_ms(),
                   in, sizeof in);
        printf("%s: lease extended, expires %s\n", task, in);
    } else if (verb == V_DONE) {
        printf("%s is done\n", task);
    } else {
        json_t *ra = json_object_get(t, "retry_at");
        if (json_is_integer(ra)) {
            char in[48];
            cli_fmt_in(json_integer_value(ra) - clock_wall_ms(), in, sizeof in);
            printf("%s failed; it will be retried %s\n", task, in);
        } else {
            printf("%s failed and is %s (attempts: %lld)\n", task, cli_str(t, "state"),
                   (long long)json_integer_value(json_object_get(t, "attempts")));
        }
    }
out:
    free(lease);
    free(id);
    free(path);
    free(text);
    json_decref(body);
    json_decref(usage);
    json_decref(out);
    cli_done(&c);
    return rc;
}

int cli_heartbeat(const struct cli_cmd *cmd, int argc, char **argv)
{
    return lease_cmd(cmd, argc, argv, V_HEARTBEAT);
}

int cli_done_cmd(const struct cli_cmd *cmd, int argc, char **argv)
{
    return lease_cmd(cmd, argc, argv, V_DONE);
}

int cli_fail_cmd(const struct cli_cmd *cmd, int argc, char **argv)
{
    return lease_cmd(cmd, argc, argv, V_FAIL);
}
