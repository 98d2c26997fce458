/* cli_mcp.c: `s2 mcp` (the MCP server on stdio that agent CLIs start) and `s2 mcp config`
 * (the configuration to paste into Claude Code or Codex). The token never appears in what
 * `mcp config` prints unless asked: the snippets pass it through from the environment. */
#include "cli.h"
#include "mcp.h"
#include "model.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int set_log_level(const struct cli *c, const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) {
            log_set_level((enum log_level)i);
            return 0;
        }
    return cli_usage(c, "--log-level must be debug, info, warn or error (got '%s')", name);
}

int cli_mcp(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *agent = NULL;
    int rc;
    struct mcp *m = NULL;
    static const struct option opts[] = {{"agent", required_argument, 0, 'a'},
                                         {"log-level", required_argument, 0, 'L'},
                                         {"server", required_argument, 0, 0x100},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'a' : agent = optarg; break;
                case 'L' : USAGE_IF(set_log_level(&c, optarg)); break;);
    if (optind < argc) {
        rc = cli_usage(&c, optind == argc - 1 ? "unexpected argument '%s'"
                                              : "unexpected argument '%s' (and more)",
                       argv[optind]);
        goto out;
    }
    struct s2_error err = S2_ERROR_INIT;
    if (agent && model_check_id(agent, "--agent", &err)) {
        rc = cli_usage(&c, "%s", err.msg);
        s2_error_release(&err);
        goto out;
    }
    /* Check the server URL now, and initialise libcurl here on the main thread: its global
     * initialisation is not thread-safe, and tool calls run on worker threads. */
    struct client probe;
    if (client_init(&probe, c.server, NULL, &err)) {
        client_release(&probe);
        rc = cli_fail(&err);
        s2_error_release(&err);
        goto out;
    }
    client_release(&probe);
    signal(SIGPIPE, SIG_IGN); /* a vanished client is a write error, not a death */
    if (isatty(0))
        fprintf(stderr, "s2 mcp: a Model Context Protocol server on stdin/stdout, to be "
                        "started by an agent CLI (see `s2 mcp config`). Type JSON-RPC messages, "
                        "one per line, or Ctrl-D to quit.\n");
    struct mcp_options o = {.agent = agent, .server = c.server, .threaded = 1,
                            .persist_leases = 1};
    m = mcp_new(&o);
    rc = mcp_serve(m, 0) ? EXIT_FAIL : EXIT_OK;
out:
    mcp_free(m);
    return rc;
}

/* ---- mcp config ---- */

/* s, quoted for a POSIX shell when it needs to be. */
static void sh_quote(struct buf *b, const char *s)
{
    int plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("_./:=@%+,-", *p);
    if (plain) {
        buf_adds(b, s);
        return;
    }
    buf_addch(b, '\'');
    for (const char *p = s; *p; p++)
        if (*p == '\'')
            buf_adds(b, "'\\''");
        else
            buf_addch(b, *p);
    buf_addch(b, '\'');
}

/* s as a TOML basic string. */
static void toml_str(struct buf *b, const char *s)
{
    buf_addch(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_addf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_addf(b, "\\u%04x", *p);
        else
            buf_addch(b, (char)*p);
    }
    buf_addch(b, '"');
}

/* The path of this very binary, so the configuration works whatever PATH the agent CLI has. */
static char *self_path(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return xstrdup("s2");
    path[n] = 0;
    return xstrdup(path);
}

int cli_mcp_config(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *client = NULL, *agent = NULL;
    int show_token = 0, rc = EXIT_OK;
    char *exe = NULL;
    struct buf out = BUF_INIT, line = BUF_INIT;
    json_t *j = NULL;
    static const struct option opts[] = {{"client", required_argument, 0, 'c'},
                                         {"agent", required_argument, 0, 'a'},
                                         {"show-token", no_argument, 0, 't'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'c' : client = optarg; break;
                case 'a' : agent = optarg; break; case 't' : show_token = 1; break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!client) {
        rc = cli_usage(&c, "--client is required: claude or codex");
        goto out;
    }
    int claude = !strcmp(client, "claude") || !strcmp(client, "claude-code");
    if (!claude && strcmp(client, "codex")) {
        rc = cli_usage(&c, "--client must be claude or codex (got '%s')", client);
        goto out;
    }
    struct s2_error err = S2_ERROR_INIT;
    if (agent && model_check_id(agent, "--agent", &err)) {
        rc = cli_usage(&c, "%s", err.msg);
        s2_error_release(&err);
        goto out;
    }
    const char *server = c.server ? c.server : getenv("S2_SERVER");
    if (!server || !*server)
        server = S2_DEFAULT_SERVER;
    if (strncmp(server, "http://", 7) && strncmp(server, "https://", 8)) {
        rc = cli_usage(&c, "server '%s' must start with http:// or https://", server);
        goto out;
    }
    const char *token = getenv("S2_TOKEN");
    if (show_token && (!token || !*token)) {
        rc = cli_failf("--show-token: S2_TOKEN is not set in this environment");
        goto out;
    }
    if (!show_token && (!token || !*token))
        fprintf(stderr, "note: S2_TOKEN is not set here; export it in the environment the "
                        "agent CLI starts from\n");
    exe = self_path();
    const char *args[] = {"mcp", agent ? "--agent" : NULL, agent, NULL};

    if (claude) {
        /* the command line: project scope writes .mcp.json, where Claude Code expands
         * ${S2_TOKEN} from its own environment when it starts the server */
        buf_adds(&line, "claude mcp add s2 --transport stdio --scope project --env ");
        char *kv = xasprintf("S2_SERVER=%s", server);
        sh_quote(&line, kv);
        free(kv);
        buf_adds(&line, " --env ");
        if (show_token) {
            kv = xasprintf("S2_TOKEN=%s", token);
            sh_quote(&line, kv);
            free(kv);
        } else {
            buf_adds(&line, "'S2_TOKEN=${S2_TOKEN}'");
        }
        buf_adds(&line, " -- ");
        sh_quote(&line, exe);
        for (int i = 0; args[i]; i++) {
            buf_addch(&line, ' ');
            sh_quote(&line, args[i]);
        }
        json_t *a = json_array();
        for (int i = 0; args[i]; i++)
            json_array_append_new(a, json_string(args[i]));
        json_t *env = json_pack("{s:s,s:s}", "S2_SERVER", server, "S2_TOKEN",
                                show_token ? token : "${S2_TOKEN}");
        j = json_pack("{s:{s:{s:s,s:s,s:o,s:o}}}", "mcpServers", "s2", "type", "stdio",
                      "command", exe, "args", a, "env", env);
        if (!j) {
            rc = cli_failf("the token or server is not valid UTF-8");
            goto out;
        }
        if (c.json) {
            json_t *o = json_pack("{s:s,s:s,s:O}", "client", "claude", "command", line.ptr,
                                  "mcp_json", j);
            cli_print_json(o);
            json_decref(o);
            goto out;
        }
        char *snippet = json_dumps(j, JSON_INDENT(2));
        printf("# Claude Code: register s2 as an MCP server of this project (run in the "
               "project's root;\n# it writes .mcp.json).%s\n%s\n\n"
               "# Or write .mcp.json yourself:\n%s\n\n"
               "# s2_claim waits up to wait_seconds (default 30, at most 300) for work: keep "
               "Claude Code's\n# MCP_TOOL_TIMEOUT (milliseconds) above the wait you ask for. "
               "Check with `claude mcp list`.\n",
               show_token ? "" : " S2_TOKEN is read from the environment Claude Code\n# runs "
                                 "in when it starts the server: export it there.",
               line.ptr, snippet ? snippet : "");
        free(snippet);
        goto out;
    }

    buf_adds(&out, "[mcp_servers.s2]\ncommand = ");
    toml_str(&out, exe);
    buf_adds(&out, "\nargs = [");
    for (int i = 0; args[i]; i++) {
        buf_adds(&out, i ? ", " : "");
        toml_str(&out, args[i]);
    }
    buf_adds(&out, "]\nenv = { S2_SERVER = ");
    toml_str(&out, server);
    if (show_token) {
        buf_adds(&out, ", S2_TOKEN = ");
        toml_str(&out, token);
        buf_adds(&out, " }\n");
    } else {
        buf_adds(&out, " }\n# passed through from the environment Codex runs in\n"
                       "env_vars = [\"S2_TOKEN\"]\n");
    }
    buf_adds(&out, "# s2_claim may wait up to 300 s for work\ntool_timeout_sec = 330\n");
    if (c.json) {
        json_t *o = json_pack("{s:s,s:s?}", "client", "codex", "config_toml", out.ptr);
        if (!o) {
            rc = cli_failf("the token or server is not valid UTF-8");
            goto out;
        }
        cli_print_json(o);
        json_decref(o);
        goto out;
    }
    printf("# Codex: add this to ~/.codex/config.toml (or .codex/config.toml of a trusted "
           "project).\n%s%s",
           show_token ? "" : "# Export S2_TOKEN in the environment Codex starts from.\n",
           out.ptr);
out:
    json_decref(j);
    buf_release(&out);
    buf_release(&line);
    free(exe);
    cli_done(&c);
    return rc;
}
