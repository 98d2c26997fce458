/* cli_prompt.c: `s2 agent prompt AGENT`, the seed's "universal restart prompt" made real:
 * launch instructions for an agent CLI, built from what the server knows of the agent and
 * its swarm, that tell it to wait on s2 (s2 commands or the MCP tools), never to poll git.
 * Commands it names are looked up in the command table, so it never names one this binary
 * lacks. */
#include "cli.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const relation_meaning[][2] = {
    {"critical", "its blockers get helpers first"},
    {"support", "its tasks serve the other swarms"},
    {"peer", "peers help each other"},
};

/* The command table lives in main.c, which unit-test binaries do not link; weak references
 * let them link this file anyway (the lookup then finds nothing). */
extern const struct cli_cmd cli_cmds[] __attribute__((weak));
extern const size_t cli_ncmds __attribute__((weak));

static const struct cli_cmd *find_cmd(const char *name)
{
    if (!&cli_ncmds)
        return NULL;
    for (size_t i = 0; i < cli_ncmds; i++)
        if (!strcmp(cli_cmds[i].name, name))
            return &cli_cmds[i];
    return NULL;
}

static void add_list(struct buf *b, json_t *a, const char *none)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) buf_addf(b, "%s%s", i ? ", " : "", json_string_value(v));
    if (!json_array_size(a))
        buf_adds(b, none);
}

static void who(struct buf *b, json_t *a, json_t *s, const char *server)
{
    const char *rel = cli_str(s, "relation");
    const char *meaning = "";
    for (size_t i = 0; i < sizeof relation_meaning / sizeof relation_meaning[0]; i++)
        if (!strcmp(rel, relation_meaning[i][0]))
            meaning = relation_meaning[i][1];
    buf_addf(b, "You are agent %s of swarm %s, coordinated by s2 (%s).\n\n", cli_str(a, "id"),
             cli_str(s, "id"), server);
    buf_addf(b, "Your swarm %s", cli_str(s, "id"));
    if (*cli_str(s, "role"))
        buf_addf(b, ": %s", cli_str(s, "role"));
    buf_addf(b, "\n  relation: %s%s%s%s\n", rel, *meaning ? " (" : "", meaning, *meaning ? ")" : "");
    buf_adds(b, "  capabilities: ");
    add_list(b, json_object_get(s, "capabilities"), "(none listed)");
    buf_addf(b, "\n  state: %s, status: %s", cli_str(s, "state"), cli_str(s, "status"));
    json_t *ph = json_object_get(s, "current_phase");
    if (json_is_integer(ph))
        buf_addf(b, ", current phase: %lld", (long long)json_integer_value(ph));
    buf_addf(b, ", budget: $%.2f\n", json_number_value(json_object_get(s, "budget")));
    if (*cli_str(s, "branch"))
        buf_addf(b, "  git branch: %s\n", cli_str(s, "branch"));
    buf_addf(b, "You: model %s (tier %lld); capabilities: ", cli_str(a, "model"),
             (long long)json_integer_value(json_object_get(a, "tier")));
    add_list(b, json_object_get(a, "capabilities"), "(none: only tasks that require nothing)");
    long long ml = json_integer_value(json_object_get(a, "max_leases"));
    buf_addf(b, "; you may hold %lld task%s at a time.\n", ml, ml == 1 ? "" : "s");
    buf_adds(b, "Tasks come to you by capability match and model tier; you do not pick them.\n\n");
}

static void cli_steps(struct buf *b, const char *agent, const char *swarm, const char *model)
{
    const struct cli_cmd *block = find_cmd("block"), *thread = find_cmd("thread"),
                         *post = find_cmd("post"), *unblock = find_cmd("unblock");
    buf_adds(b, "Work with the s2 command (S2_SERVER and S2_TOKEN are set in your "
                "environment). Never poll git, never sleep in a loop: s2 pushes work to you "
                "the moment it is ready.\n\n");
    buf_addf(b, "1. Get a task (waits up to 60 s; prints nothing when no task came: just run "
                "it again):\n     s2 claim --agent %s --wait 60\n"
                "   It prints the task id, title and instructions, and remembers the lease for "
                "the commands below.\n",
             agent);
    buf_adds(b, "2. Do the task: its title and instructions are your brief. Stay within it.\n");
    buf_adds(b, "3. Work that outlasts the lease (the claim says when it expires): extend it "
                "before then,\n   reporting what you spent so far:\n"
                "     s2 heartbeat TASK --tokens-in N --tokens-out N\n");
    buf_addf(b, "4. Finished: report the result and the cost (tokens since your last report, "
                "or --usd X):\n"
                "     s2 done TASK --result '{\"summary\": \"...\"}' --model %s --tokens-in N "
                "--tokens-out N\n"
                "   Could not do it: s2 fail TASK --reason \"what went wrong\" (--no-retry "
                "gives it up for good)\n",
             model);
    if (block) {
        buf_adds(b, "5. Blocked on something only another swarm can do: report it with the "
                    "capabilities it needs:\n     s2 block TASK --needs CAP1,CAP2 --reason "
                    "\"what you need\"\n   Keep heartbeating; helpers from other swarms post "
                    "on the blocker's thread.\n");
        if (thread)
            buf_adds(b, "   Read it, and accept or reject each contribution:\n"
                        "     s2 thread TASK          s2 thread TASK --accept N | --reject N\n");
        if (post)
            buf_adds(b, "   Answer on it: s2 post TASK --body TEXT (or --file F)\n");
        if (unblock)
            buf_adds(b, "   Once you can go on: s2 unblock TASK (s2 done closes it too)\n");
        if (post)
            buf_adds(b, "   A claim may give you a help task (id BLOCKED.help-N) for another "
                        "swarm's blocker:\n   read `s2 thread BLOCKED`, post what you find with "
                        "`s2 post BLOCKED --body TEXT`,\n   then `s2 done` the help task.\n");
    } else {
        buf_adds(b, "5. Blocked on something only another swarm can do: this s2 has no `s2 "
                    "block` yet; report it with\n     s2 fail TASK --reason \"blocked: what you "
                    "need\"\n");
    }
    buf_adds(b, "6. Go back to 1.\n\n");
    buf_addf(b, "Where things stand: s2 status %s; one task: s2 task show TASK.\n", swarm);
    buf_adds(b, "A report refused with a stale or expired lease means the task went to "
                "another agent: stop working on it and go back to 1.\n");
}

static void mcp_steps(struct buf *b, const char *agent, const char *swarm)
{
    buf_adds(b, "Work through the s2 MCP tools. Never poll git, never sleep in a loop: "
                "s2_claim waits for you and work is pushed the moment it is ready.\n\n");
    buf_addf(b, "1. s2_claim (agent \"%s\"): waits for work (wait_seconds, default 30) and "
                "returns a task with its\n   instructions and a lease. No task: call it "
                "again.\n",
             agent);
    buf_adds(b, "2. Do the task: its title and instructions are your brief. Stay within it.\n");
    buf_adds(b, "3. Work that outlasts the lease (the claim says when it expires): "
                "s2_heartbeat (task, usage) before then.\n");
    buf_adds(b, "4. Finished: s2_done (task, result, usage {model, tokens_in, tokens_out} or "
                "{usd}).\n   Could not do it: s2_fail (task, reason; retry false gives it up "
                "for good).\n");
    buf_adds(b, "5. Blocked on something only another swarm can do: s2_block (task, needs: "
                "[capabilities], reason),\n   keep heartbeating, follow the blocker's thread "
                "with s2_thread (task), judge each contribution\n   with s2_review (task, "
                "post, accept), answer with s2_post (task, text), and s2_unblock (task)\n   "
                "once you can go on.\n"
                "   A claim may give you a help task for another swarm's blocker: read its "
                "thread with s2_thread,\n   post what you find with s2_post (the blocked "
                "task's id), then s2_done the help task.\n");
    buf_adds(b, "6. Go back to 1.\n\n");
    buf_addf(b, "Where things stand: s2_status (swarm \"%s\"); work waiting: s2_ready; one "
                "task: s2_task.\n",
             swarm);
    buf_adds(b, "A report refused with a stale or expired lease means the task went to "
                "another agent: stop working on it and go back to 1.\n");
    buf_addf(b, "If the s2 tools are missing, `s2 mcp config --client claude --agent %s` (or "
                "--client codex) prints the configuration.\n",
             agent);
}

int cli_agent_prompt(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    int use_mcp = 0, rc;
    json_t *ra = NULL, *rs = NULL;
    char *e = NULL, *path = NULL;
    struct buf b = BUF_INIT;
    static const struct option opts[] = {{"mcp", no_argument, 0, 'm'}, CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'm' : use_mcp = 1; break;);
    if (optind != argc - 1) {
        rc = cli_usage(&c, optind >= argc ? "the AGENT id is required" : "too many arguments");
        goto out;
    }
    e = client_escape(argv[optind]);
    path = xasprintf("/v1/agents/%s", e);
    if ((rc = cli_call(&c, "GET", path, NULL, &ra, NULL)))
        goto out;
    json_t *a = json_object_get(ra, "agent");
    free(e);
    free(path);
    e = client_escape(cli_str(a, "swarm"));
    path = xasprintf("/v1/swarms/%s", e);
    if ((rc = cli_call(&c, "GET", path, NULL, &rs, NULL)))
        goto out;
    json_t *s = json_object_get(rs, "swarm");
    const char *server = c.server ? c.server : getenv("S2_SERVER");
    if (!server || !*server)
        server = S2_DEFAULT_SERVER;
    who(&b, a, s, server);
    if (use_mcp)
        mcp_steps(&b, cli_str(a, "id"), cli_str(s, "id"));
    else
        cli_steps(&b, cli_str(a, "id"), cli_str(s, "id"),
                  *cli_str(a, "model") ? cli_str(a, "model") : "MODEL");
    if (c.json) {
        json_t *o = json_pack("{s:O,s:O,s:s,s:s}", "agent", a, "swarm", s, "style",
                              use_mcp ? "mcp" : "cli", "prompt", b.ptr);
        if (o)
            cli_print_json(o);
        else
            rc = cli_failf("the prompt is not valid UTF-8");
        json_decref(o);
    } else {
        fputs(b.ptr, stdout);
    }
out:
    json_decref(ra);
    json_decref(rs);
    free(e);
    free(path);
    buf_release(&b);
    cli_done(&c);
    return rc;
}
