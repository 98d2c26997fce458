/* main.c: argv -> subcommand. The table below is the single source of every command's
 * synopsis and help (s2 help --markdown renders docs/CLI.md from it). */
#include "cli.h"
#include "version.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define CMD(fn) int fn(const struct cli_cmd *cmd, int argc, char **argv)
CMD(cli_init);
CMD(cli_serve);
CMD(cli_migrate);
CMD(cli_swarm_add);
CMD(cli_swarm_list);
CMD(cli_swarm_show);
CMD(cli_swarm_pause);
CMD(cli_agent_add);
CMD(cli_agent_list);
CMD(cli_agent_show);
CMD(cli_agent_prompt);
CMD(cli_model_list);
CMD(cli_model_set);
CMD(cli_task_add);
CMD(cli_task_list);
CMD(cli_task_show);
CMD(cli_task_cancel);
CMD(cli_approve);
CMD(cli_claim);
CMD(cli_heartbeat);
CMD(cli_done_cmd);
CMD(cli_fail_cmd);
CMD(cli_status);
CMD(cli_watch);
CMD(cli_bench);
CMD(cli_mcp);
CMD(cli_mcp_config);
CMD(cli_budget);
CMD(cli_budget_set);
CMD(cli_breaker_list);
CMD(cli_breaker_reset);
CMD(cli_block);
CMD(cli_blockers);
CMD(cli_post);
CMD(cli_thread);
CMD(cli_escalations);
CMD(cli_policy);
CMD(cli_approver_add);
CMD(cli_swarm_text);
CMD(cli_slo);
CMD(cli_witness_verify);
CMD(cli_witness_export);
CMD(cli_witness_show);
CMD(cli_witness_prove);
CMD(cli_witness_consistency);
CMD(cli_plan_validate);
CMD(cli_plan_simulate);
CMD(cli_plan_apply);
CMD(cli_plan_export);
CMD(cli_worker);
CMD(cli_git_import);
CMD(cli_git_export);
CMD(cli_git_notify);
CMD(cli_git_guard);
CMD(cli_git_hook);
CMD(cli_report);
static CMD(cli_help_cmd);
static CMD(cli_version);

const struct cli_cmd cli_cmds[] = {
    {"init", cli_init, "s2 init [--db PATH | --store postgres://...] [--key FILE] [--json]",
     "Create a new database (schema, default model table, admin token) and a signing key.\n"
     "The admin token is printed once and stored only hashed: keep it.\n\n"
     "  --db PATH           database file (default ./s2.db; the key goes to PATH.key)\n"
     "  --store URL         PostgreSQL instead (postgres://user@host:port/db): the schema is\n"
     "                      created; a database already initialised with the same key is\n"
     "                      left as it is, with another key refused\n"
     "  --key FILE          the signing key (PostgreSQL default ./s2.key, used if it exists:\n"
     "                      every node of the deployment needs a copy)\n"
     "  --json              print {\"db\", \"admin_token\", \"public_key\"}\n"
     "  -h, --help          show this help\n"},
    {"serve", cli_serve,
     "s2 serve [--db PATH] [--listen HOST:PORT] [--durability full|relaxed] [options]",
     "Run the coordinator: HTTP API, event stream and dashboard. Stops cleanly on SIGINT or\n"
     "SIGTERM (waiting claims are answered, the last batch commits).\n\n"
     "  --db PATH           database file (default ./s2.db)\n"
     "  --store URL         serve a PostgreSQL database (postgres://...) as one node of a\n"
     "                      cluster: the leader runs the engine, the others forward to it\n"
     "                      (docs/OPERATIONS-PG.md)\n"
     "  --key FILE          the signing key (default PATH.key; PostgreSQL ./s2.key)\n"
     "  --advertise URL     PostgreSQL: the URL other nodes reach this one at (default\n"
     "                      http://HOST:PORT of --listen)\n"
     "  --node-id ID        PostgreSQL: this node's name (default HOSTNAME:PORT)\n"
     "  --leader-timeout S  PostgreSQL: a leader silent this many seconds (its process\n"
     "                      hangs, its machine or network is gone) is deposed by the other\n"
     "                      nodes, which end its sessions (default 10; 0: never)\n"
     "  --listen HOST:PORT  address to listen on (default 127.0.0.1:7411; port 0 picks one)\n"
     "  --durability MODE   full: fsync before every reply (default); relaxed: fsync at\n"
     "                      most every second (an OS crash or power loss can lose up to the\n"
     "                      last second of acknowledged changes; a crash of s2 loses nothing)\n"
     "  --max-body BYTES    largest request body (default 16777216)\n"
     "  --log-level LEVEL   debug, info (default), warn or error\n"
     "  --port-file PATH    write the bound port there once listening (for scripts)\n"
     "  -h, --help          show this help\n"},
    {"plan validate", cli_plan_validate, "s2 plan validate FILE [--json]",
     "Check a plan file offline and report every error at once, one per line as\n"
     "FILE:LINE:COLUMN: message (unknown keys with a suggestion, wrong types, values out of\n"
     "range, duplicate ids, unknown dependencies, dependency cycles with their path, unknown\n"
     "models, capabilities nobody has, budgets below what the tasks may cost, ...). The format\n"
     "is in docs/PLAN.md. Exits 0 when the plan is valid, 1 when it is not.\n\n"
     "  --json              print {\"file\", \"valid\", \"errors\": [{\"file\", \"line\",\n"
     "                      \"column\", \"message\"}], \"summary\"}\n"
     "  -h, --help          show this help\n"},
    {"plan apply", cli_plan_apply, "s2 plan apply FILE [--dry-run] [--verbose] [--json]",
     "Make the server hold the plan (admin token). Reads the live state first (models,\n"
     "swarms, agents, tasks, policy), prints what it will create (+) or change (~), then\n"
     "sends it: policy, models, swarms, agents, contracts, idle tasks, and all new tasks in\n"
     "one atomic batch (split only past 10000 tasks or 8 MiB, in dependency order).\n"
     "Idempotent: applying the same plan again prints \"nothing to change\". Something that\n"
     "exists and differs but cannot be changed through the API (a swarm's budget, a task's\n"
     "title) is a conflict, reported as FILE:LINE:COLUMN before anything is sent. If a step\n"
     "fails, the output says exactly which changes were applied and which were not; a\n"
     "section the server does not support yet is reported as an error. Prints each new\n"
     "swarm's token once.\n\n"
     "  --dry-run           show what would change, change nothing\n"
     "  --verbose           list every task to be created\n" CLI_COMMON_HELP},
    {"plan export", cli_plan_export, "s2 plan export [--output FILE]",
     "Write the server's live state (policy, model table, swarms with their agents,\n"
     "contracts, idle tasks and tasks by phase) as a plan that `s2 plan validate` accepts and\n"
     "`s2 plan apply` re-applies as \"nothing to change\". Warns when the live state breaks a\n"
     "plan rule the server does not enforce.\n\n"
     "  --output FILE       write there (atomically) instead of stdout\n" CLI_COMMON_HELP},
    {"plan simulate", cli_plan_simulate,
     "s2 plan simulate FILE [--agents-per-swarm N] [--policy idle|gang-up] [--seed S] [--json]",
     "Simulate the plan offline: its agents work through the tasks as the coordinator hands\n"
     "them out (dependencies, phase barriers, capability match, min_tier, the cheapest\n"
     "agent that qualifies), each task taking its estimate_h scaled by the agent's model\n"
     "speed (tier 1: 1.5x, tier 2: 1x, tier 3+: 0.8x) and a seeded jitter. Prints the\n"
     "makespan, the speedup over doing one task at a time, the cost by model tier (hours\n"
     "priced at 0.4M input + 0.1M output tokens an hour), utilisation, time blocked and the\n"
     "critical path. The same seed gives the same output, byte for byte. The model and its\n"
     "assumptions: docs/PLAN.md \"Simulation\".\n\n"
     "  --agents-per-swarm N  simulate N agents per swarm (the plan's, repeated or cut;\n"
     "                      default: exactly the plan's agents)\n"
     "  --policy P          what an agent with nothing ready in its swarm does:\n"
     "                      idle: its swarm's idle tasks, else wait;\n"
     "                      gang-up (default): help a blocker of another swarm it matches\n"
     "                      (at most max_helpers each), else idle tasks, else wait\n"
     "  --seed S            seed of the jitter (default 1)\n"
     "  --jitter J          durations vary uniformly within +-J (default 0.2; 0: exactly\n"
     "                      the estimates)\n"
     "  --help-efficiency E share of a helper's speed that goes into the blocker\n"
     "                      (default 0.5; the seed measured about 0.11)\n"
     "  --json              print the results as JSON\n"
     "  -h, --help          show this help\n"},
    {"migrate", cli_migrate, "s2 migrate --from sqlite:PATH --to postgres://... [--json]",
     "Copy a deployment from SQLite into PostgreSQL: every table, the witness log and its\n"
     "checkpoints included (rows as they are, so `s2 witness verify --db URL` passes). The\n"
     "source is read in one snapshot and may be in use; the target database must hold no\n"
     "deployment yet (its schema is created). Serve the target with the source's key file\n"
     "(`s2 serve --store URL --key PATH.key`).\n\n"
     "  --from sqlite:PATH  the SQLite database (a plain path works too)\n"
     "  --to URL            the PostgreSQL database (postgres://user@host:port/db)\n"
     "  --json              print {\"from\", \"to\", \"witness_entries\", \"seconds\"}\n"
     "  -h, --help          show this help\n"},
    {"swarm add", cli_swarm_add,
     "s2 swarm add ID [--role TEXT] [--relation peer|critical|support] [--capabilities A,B] "
     "[--budget USD] [--branch NAME]",
     "Create a swarm (admin token). Prints the swarm's own token once: it can act only on\n"
     "that swarm's agents and tasks.\n\n"
     "  --role TEXT         what the swarm does\n"
     "  --relation REL      peer (default), critical or support\n"
     "  --capabilities A,B  what the swarm can do\n"
     "  --budget USD        budget in US dollars\n"
     "  --branch NAME       its git branch\n" CLI_COMMON_HELP},
    {"swarm list", cli_swarm_list, "s2 swarm list [--json]",
     "List swarms with their state and task counts.\n\n" CLI_COMMON_HELP},
    {"swarm show", cli_swarm_show, "s2 swarm show ID [--json]",
     "Show one swarm.\n\n" CLI_COMMON_HELP},
    {"swarm pause", cli_swarm_pause, "s2 swarm pause ID [--json]",
     "Pause a swarm (admin token): its agents get no new tasks; leases held keep running.\n\n"
     CLI_COMMON_HELP},
    {"swarm resume", cli_swarm_pause, "s2 swarm resume ID [--json]",
     "Resume a paused swarm (admin token); waiting claims are served at once.\n\n"
     CLI_COMMON_HELP},
    {"agent add", cli_agent_add,
     "s2 agent add ID [--swarm S] [--model NAME] [--capabilities A,B] [--max-leases N]",
     "Register an agent (admin token, or the swarm's token for its own swarm). Capabilities\n"
     "are granted here, never claimed by the agent itself.\n\n"
     "  --swarm S           its swarm (default: the swarm of a swarm token)\n"
     "  --model NAME        a model of the model table (default: the cheapest)\n"
     "  --capabilities A,B  what it may work on\n"
     "  --max-leases N      tasks it may hold at once (default 1)\n" CLI_COMMON_HELP},
    {"agent list", cli_agent_list, "s2 agent list [--swarm S] [--json]",
     "List agents with their model, leases held and health.\n\n"
     "  --swarm S           only this swarm's agents\n" CLI_COMMON_HELP},
    {"agent show", cli_agent_show, "s2 agent show ID [--json]",
     "Show one agent and the leases it holds.\n\n" CLI_COMMON_HELP},
    {"agent prompt", cli_agent_prompt, "s2 agent prompt AGENT [--mcp] [--json]",
     "Print the launch instructions for an agent CLI (Claude Code, Codex, ...) that works as\n"
     "AGENT: who it is, its swarm (role, relation, capabilities) and its own capabilities,\n"
     "and its loop: claim with wait, heartbeat, finish with usage, fail, report a blocker,\n"
     "read the blocker's thread. It waits on s2, never polls git. Paste it as the agent's\n"
     "first message (the seed's \"universal restart prompt\").\n\n"
     "  --mcp               phrase it with the MCP tools of `s2 mcp` instead of s2 commands\n"
     "  --json              print {\"agent\", \"swarm\", \"style\", \"prompt\"}\n"
     "  --server URL        s2 server (default $S2_SERVER or http://127.0.0.1:7411)\n"
     "  -h, --help          show this help\n"
     "The token comes from $S2_TOKEN.\n"},
    {"model list", cli_model_list, "s2 model list [--json]",
     "Show the model table: tiers and prices (USD per million tokens).\n\n" CLI_COMMON_HELP},
    {"model set", cli_model_set, "s2 model set NAME --tier N --in USD --out USD",
     "Add or change a model (admin token).\n\n"
     "  --tier N            1 (cheap) .. 9 (strong)\n"
     "  --in USD            price per million input tokens\n"
     "  --out USD           price per million output tokens\n" CLI_COMMON_HELP},
    {"task add", cli_task_add,
     "s2 task add --title TEXT [--swarm S] [--id ID] [options] | s2 task add --file FILE",
     "Create a task, or all the tasks of a JSON file at once (all or nothing).\n\n"
     "  --title TEXT        what to do (required)\n"
     "  --swarm S           its swarm (default: the swarm of a swarm token)\n"
     "  --id ID             its id (default: made up from the swarm)\n"
     "  --phase N           phase (default 1): waits until earlier phases of its swarm are done\n"
     "  --no-phase-barrier  run whatever the state of earlier phases\n"
     "  --priority N        higher first (default 0)\n"
     "  --requires A,B      capabilities an agent needs to take it\n"
     "  --min-tier N        lowest model tier allowed (default 0: any)\n"
     "  --depends-on X,Y    tasks (of any swarm) that must be done first\n"
     "  --paths G1,G2       path globs it touches (src/sip/**): never claimed while another\n"
     "                      claimed task's paths overlap\n"
     "  --body TEXT         instructions (or --body-file FILE, - for stdin)\n"
     "  --max-attempts N    tries before it is dead (default 3)\n"
     "  --lease-ms N        lease length (default 300000)\n"
     "  --backoff-ms N      first retry delay, doubling (default 1000)\n"
     "  --approval A        none, human or quorum:N\n"
     "  --estimate-h H      estimated hours\n"
     "  --estimate-usd X    estimated cost in US dollars\n"
     "  --max-cost X        most it may cost (US dollars): what a claim reserves of the budgets\n"
     "                      (default: the policy's max_cost_per_task)\n"
     "  --file FILE         JSON: one task object or {\"tasks\": [...]} (- for stdin)\n"
     CLI_COMMON_HELP},
    {"task list", cli_task_list, "s2 task list [--swarm S] [--state STATE] [--limit N] [--all]",
     "List tasks, oldest first, a page at a time.\n\n"
     "  --swarm S           only this swarm\n"
     "  --state STATE       pending, ready, claimed, done, dead or cancelled\n"
     "  --limit N           page size (default 100, at most 1000)\n"
     "  --after CURSOR      the page after this cursor\n"
     "  --all               every page\n" CLI_COMMON_HELP},
    {"task show", cli_task_show, "s2 task show ID [--json]",
     "Show a task: state, lease, attempts, what it waits on, result.\n\n" CLI_COMMON_HELP},
    {"task cancel", cli_task_cancel, "s2 task cancel ID [--reason TEXT]",
     "Cancel a task in any state but done (a held lease becomes stale).\n\n"
     "  --reason TEXT       why (recorded)\n" CLI_COMMON_HELP},
    {"approve", cli_approve, "s2 approve TASK [--json]",
     "Approve a task that waits for a human (admin token). quorum:N tasks need N distinct\n"
     "approvers.\n\n" CLI_COMMON_HELP},
    {"claim", cli_claim, "s2 claim --agent A [--wait SECONDS] [--json]",
     "Claim the best ready task for agent A. With --wait, wait up to SECONDS for one (it is\n"
     "pushed the moment it becomes ready). Prints the task and its lease token, which is\n"
     "also remembered so that `s2 heartbeat|done|fail TASK` find it. Prints nothing and\n"
     "exits 0 when there was no task.\n\n"
     "  --agent A           the claiming agent (required)\n"
     "  --wait SECONDS      wait for work, up to 300\n" CLI_COMMON_HELP},
    {"heartbeat", cli_heartbeat, "s2 heartbeat TASK [--lease TOKEN] [usage options]",
     "Extend the lease on TASK by its lease length.\n\n"
     "  --lease TOKEN       the lease (default $S2_LEASE, then the one `s2 claim` saved)\n"
     "  --model NAME        usage: the model used (default: the agent's)\n"
     "  --tokens-in N       usage: input tokens since the last report\n"
     "  --tokens-out N      usage: output tokens since the last report\n"
     "  --usd X             usage: cost in US dollars (instead of tokens)\n" CLI_COMMON_HELP},
    {"done", cli_done_cmd, "s2 done TASK [--lease TOKEN] [--result JSON | --result-file F] [usage]",
     "Finish TASK successfully. Tasks that depend on it, and the next phase, may become ready.\n\n"
     "  --lease TOKEN       the lease (default $S2_LEASE, then the one `s2 claim` saved)\n"
     "  --result JSON       the result (any JSON; text that is not JSON is sent as a string)\n"
     "  --result-file F     the result from a file (- for stdin)\n"
     "  --model, --tokens-in, --tokens-out, --usd   usage, as for heartbeat\n" CLI_COMMON_HELP},
    {"fail", cli_fail_cmd, "s2 fail TASK --reason TEXT [--lease TOKEN] [--no-retry] [usage]",
     "Report that TASK failed. It is retried after a backoff until max_attempts, then dead.\n\n"
     "  --reason TEXT       what went wrong (recorded)\n"
     "  --lease TOKEN       the lease (default $S2_LEASE, then the one `s2 claim` saved)\n"
     "  --no-retry          give up now: the task is dead\n"
     "  --model, --tokens-in, --tokens-out, --usd   usage, as for heartbeat\n" CLI_COMMON_HELP},
    {"status", cli_status, "s2 status [SWARM] [--md | --json]",
     "One screen over all swarms (status waiting, working, blocked, helping or completed; state\n"
     "active, paused or tripped; open blockers and helpers), with the reason of every swarm\n"
     "that is blocked, helping, paused or tripped. With SWARM: that swarm in detail (phases,\n"
     "who works on what, what it is blocked on, whom it helps, what it could help with,\n"
     "health from the last heartbeat).\n\n"
     "  --md                the swarm's STATUS.md in the seed's format: status, reason,\n"
     "                      blocked_on, helping, can_help (expertise_available, current_load),\n"
     "                      estimated_unblock, current_task and its milestone, progress and\n"
     "                      phase completion, health, budget, breaker, SLO compliance, and the\n"
     "                      signed witness checkpoint it reflects (`s2 git export` commits it)\n"
     CLI_COMMON_HELP},
    {"watch", cli_watch, "s2 watch [--swarm S] [--from SEQ] [--json]",
     "Follow every state change as it commits (the server's event stream).\n\n"
     "  --swarm S           only this swarm\n"
     "  --from SEQ          start after event SEQ (if still buffered)\n"
     "  --count N           stop after N events\n" CLI_COMMON_HELP},
    {"budget", cli_budget, "s2 budget [--swarm S] [--json]",
     "Show spend against budgets at every scope: global, each swarm (limit, spent, reserved by\n"
     "leases in flight, left, and whether it reached the alert share or is exhausted), and what\n"
     "each agent has spent. Amounts are priced from the model table.\n\n"
     "  --swarm S           one swarm\n" CLI_COMMON_HELP},
    {"budget set", cli_budget_set, "s2 budget set [--swarm S] USD",
     "Set a swarm's budget, or the global one (admin token). A budget that covers what was\n"
     "spent lifts the trip of a swarm that ran out; the alert re-arms.\n\n"
     "  --swarm S           that swarm's budget (without it: the global budget)\n" CLI_COMMON_HELP},
    {"breaker list", cli_breaker_list, "s2 breaker list [--json]",
     "Circuit breakers: agents stopped after consecutive failures (open, or half-open with one\n"
     "trial claim allowed), swarms tripped by their budget, and the global one.\n\n" CLI_COMMON_HELP},
    {"breaker reset", cli_breaker_reset, "s2 breaker reset AGENT|SWARM",
     "Close a breaker by hand (admin token): the agent may claim again; a swarm tripped by its\n"
     "budget resumes only once the budget covers its spend.\n\n" CLI_COMMON_HELP},
    {"block", cli_block, "s2 block TASK --needs CAPS --reason TEXT [--lease L]",
     "Report a claimed task blocked. The governor offers help tasks on it to agents of other\n"
     "swarms whose capabilities match the needs (at least min_capability_match), at most\n"
     "max_helpers, critical swarms first; if no agent anywhere matches, a human is called.\n"
     "The lease stays yours: keep heartbeating.\n\n"
     "  --needs A,B         the capabilities that would unblock it\n"
     "  --reason TEXT       what blocks it\n"
     "  --lease L           the task's lease (default: $S2_LEASE or the one `s2 claim` saved)\n"
     CLI_COMMON_HELP},
    {"unblock", cli_block, "s2 unblock TASK [--lease L]",
     "Close a task's blocker (help still under way is cancelled). Finishing the task does too.\n\n"
     "  --lease L           the task's lease\n" CLI_COMMON_HELP},
    {"blockers", cli_blockers, "s2 blockers [--swarm S] [--json]",
     "Open blockers: who is blocked on what, what it needs, and who is helping.\n\n"
     "  --swarm S           one swarm's\n" CLI_COMMON_HELP},
    {"post", cli_post, "s2 post TASK (--file F | --body TEXT) [--lease L]",
     "Post on a blocked task's thread: a helper's contribution (with its help task's lease) or\n"
     "the blocked agent's reply (with its own). Everyone on the thread sees it at once.\n\n"
     "  --file F            the post's text (- for stdin)\n"
     "  --body TEXT         or the text itself\n"
     "  --lease L           default: the saved lease of the task or of one of its help tasks\n"
     CLI_COMMON_HELP},
    {"thread", cli_thread, "s2 thread TASK [--accept N | --reject N] [--lease L]",
     "Read a blocked task's thread, or (the blocked agent) accept or reject contribution N;\n"
     "verdicts make the helper's reputation.\n\n"
     "  --accept N          accept post N\n"
     "  --reject N          reject post N\n"
     "  --lease L           the blocked task's lease\n" CLI_COMMON_HELP},
    {"escalations", cli_escalations, "s2 escalations [--all] [ack ID] [--json]",
     "What needs a human: blockers nobody can help with or left unhelped too long, budgets\n"
     "spent, breakers tripped, dead tasks. Also POSTed to policy.webhook_url.\n\n"
     "  --all               acknowledged ones too\n"
     "  ack ID              acknowledge escalation ID (admin token)\n" CLI_COMMON_HELP},
    {"policy", cli_policy, "s2 policy [show | set KEY=VALUE... | preset NAME] [--json]",
     "Show or change the governor's policy (admin token to change): min_capability_match,\n"
     "max_helpers, max_cost_per_task, global_budget, breaker_failures, breaker_cooldown_s,\n"
     "cascade, blocker_escalate_after_s, budget_alert_pct, rate_limit_rps, rate_limit_burst,\n"
     "approve_above_usd, approve_top_tier_retry, approve_network, webhook_url,\n"
     "webhook_timeout_s, webhook_retries. Presets: development, default, production.\n\n"
     CLI_COMMON_HELP},
    {"approver add", cli_approver_add, "s2 approver add NAME",
     "Make an approver (admin token) and print its token once: it can approve tasks (each\n"
     "approver counts once toward a quorum:N) and read, nothing else.\n\n" CLI_COMMON_HELP},
    {"swarm idle", cli_swarm_text, "s2 swarm idle SWARM (--file F | --clear)",
     "Set the idle tasks of a swarm: work its agents get when nothing of theirs is ready and\n"
     "no blocker needs them. F holds a JSON array of {\"title\", \"body\", \"requires\"}.\n\n"
     "  --file F            the idle tasks\n"
     "  --clear             remove them\n" CLI_COMMON_HELP},
    {"swarm contract", cli_swarm_text, "s2 swarm contract SWARM [--file F | --clear]",
     "Show or set a swarm's service contract (admin token to set): limits, SLOs, granted\n"
     "network endpoints and secret names (DESIGN \"Files\"); F is JSON.\n\n"
     "  --file F            the contract\n"
     "  --clear             remove it\n" CLI_COMMON_HELP},
    {"slo", cli_slo, "s2 slo [SWARM] [--json]",
     "Service levels over the last 100 leases: p50/p99 latency of successful leases, success\n"
     "rate, availability (leases the agent ended itself rather than let expire), whether the\n"
     "swarm's contract is met, and the reputation the governor ranks helpers by (compliance x\n"
     "success rate; compliance is x0.8 when the success SLO is missed, x0.9 for the p99).\n"
     "Without SWARM: one line per swarm; with it: the swarm and each of its agents.\n\n"
     CLI_COMMON_HELP},
    {"witness verify", cli_witness_verify,
     "s2 witness verify --db PATH | --export FILE | --proof FILE [--key BASE64 | --key-file F]",
     "Check a witness log offline: every entry's hash, the hash chain, the Merkle tree and\n"
     "every checkpoint signature (or one proof bundle). Names the first bad entry and exits\n"
     "1 when anything is wrong.\n\n"
     "  --db PATH           a database (read-only; may be in use by a server)\n"
     "  --export FILE       an export from `s2 witness export` (- for stdin)\n"
     "  --proof FILE        a bundle from `s2 witness prove|consistency --json`\n"
     "  --key BASE64        the public key to trust (as `s2 init` printed it)\n"
     "  --key-file F        a file holding it (or the signing key file itself)\n"
     "  --json              print {\"ok\", \"entries\", \"checkpoints\", \"first_bad_seq\", ...}\n"
     "  -h, --help          show this help\n"
     "Without --key: --db uses PATH.key when readable, else the key the database records;\n"
     "--export uses the key its header names. Both are said in the output: a key read\n"
     "from what is verified proves only that it is self-consistent.\n"},
    {"witness export", cli_witness_export, "s2 witness export [--db PATH] [--output FILE]",
     "Write the witness log as JSON Lines (header, entries, checkpoints, end line; format in\n"
     "docs/WITNESS.md), up to its latest signed checkpoint. Offline with --db, else from\n"
     "the server (admin token).\n\n"
     "  --db PATH           read this database instead of asking the server\n"
     "  --output FILE       write there (atomically) instead of stdout\n" CLI_COMMON_HELP},
    {"witness show", cli_witness_show,
     "s2 witness show [--task T | --swarm S | --agent A] [--from SEQ] [--limit N] [--db PATH]",
     "List witness entries: the latest N (default 50), or N from entry SEQ on; one line\n"
     "each: seq, time, op, actor, swarm, task, agent, params.\n\n"
     "  --task T, --swarm S, --agent A   only entries about it\n"
     "  --from SEQ          start at entry SEQ (oldest first)\n"
     "  --limit N           at most N entries (1..1000)\n"
     "  --db PATH           read this database instead of asking the server\n" CLI_COMMON_HELP},
    {"witness prove", cli_witness_prove, "s2 witness prove SEQ [--size N] [--db PATH] [--key K]",
     "Prove that entry SEQ is in the log: fetch its inclusion proof against the latest\n"
     "signed checkpoint (or the one of tree size N), check it and the signature, and print\n"
     "what was proven; --json prints the bundle to check later with `witness verify --proof`.\n\n"
     "  --size N            prove against the checkpoint of tree size N\n"
     "  --db PATH           read this database instead of asking the server\n"
     "  --key BASE64        the public key to trust (default: the server's or database's)\n"
     CLI_COMMON_HELP},
    {"witness consistency", cli_witness_consistency,
     "s2 witness consistency OLD NEW [--db PATH] [--key K]",
     "Prove that the log of tree size OLD is a prefix of the log of tree size NEW (nothing\n"
     "rewritten or removed between two checkpoints), check the proof and both signatures.\n\n"
     "  --db PATH           read this database instead of asking the server\n"
     "  --key BASE64        the public key to trust\n" CLI_COMMON_HELP},
    {"mcp", cli_mcp, "s2 mcp [--agent A] [--server URL] [--log-level LEVEL]",
     "Serve the Model Context Protocol on stdin/stdout (JSON-RPC 2.0, one message per line)\n"
     "so that agent CLIs such as Claude Code and Codex use s2 natively. An agent CLI starts\n"
     "it; `s2 mcp config` prints the configuration. Tools: s2_claim (waits for work and\n"
     "remembers the lease), s2_heartbeat, s2_done, s2_fail (with usage), s2_block, s2_thread,\n"
     "s2_post, s2_review, s2_unblock, s2_status, s2_ready, s2_task; docs/MCP.md describes\n"
     "each. Protocol versions 2025-11-25 (current) back to 2024-11-05. Logs go to stderr;\n"
     "stdout carries protocol messages only. Exits 0 when stdin ends.\n\n"
     "  --agent A           the agent s2_claim works for when the call names none\n"
     "  --server URL        s2 server (default $S2_SERVER or http://127.0.0.1:7411)\n"
     "  --log-level LEVEL   debug, info (default), warn or error\n"
     "  -h, --help          show this help\n"
     "The token comes from $S2_TOKEN. Leases are remembered where `s2 done` finds them too.\n"},
    {"mcp config", cli_mcp_config,
     "s2 mcp config --client claude|codex [--agent A] [--show-token] [--json]",
     "Print the configuration that registers `s2 mcp` with an agent CLI: for Claude Code the\n"
     "`claude mcp add` command line and the .mcp.json snippet, for Codex the\n"
     "~/.codex/config.toml [mcp_servers.s2] table. S2_SERVER is written in; S2_TOKEN is\n"
     "passed through from the agent CLI's environment and never printed unless asked.\n\n"
     "  --client NAME       claude or codex (required)\n"
     "  --agent A           the agent the server claims for by default\n"
     "  --show-token        write the value of $S2_TOKEN into the configuration\n"
     "  --json              print the configuration as JSON\n"
     "  --server URL        s2 server (default $S2_SERVER or http://127.0.0.1:7411)\n"
     "  -h, --help          show this help\n"},
    {"worker", cli_worker,
     "s2 worker --agent A [--concurrency N] [--once | --max-tasks N] [--repo PATH [--base REF]] "
     "[options] {-- COMMAND [ARGS...] | --wasm MODULE.wasm [-- ARGS...]}",
     "Run COMMAND for every task agent A claims, each in a sandbox: claim (waiting for work),\n"
     "run, heartbeat at a third of the lease, then report done (result: what the command\n"
     "wrote to $S2_RESULT_FILE, else its stdout; JSON stays JSON) or fail (exit status or\n"
     "signal, and the last lines of stderr). The command gets the task as JSON on stdin and\n"
     "in $S2_TASK_FILE, and S2_TASK_ID, S2_SWARM, S2_PHASE, S2_ATTEMPT, S2_AGENT, S2_SERVER,\n"
     "S2_LEASE (S2_TOKEN too when the server mints task tokens), S2_WORKSPACE, S2_RESULT_FILE;\n"
     "nothing of the worker's own environment. It may print lines\n"
     "  S2-USAGE: {\"model\": \"sonnet\", \"tokens_in\": N, \"tokens_out\": N, \"usd\": X}\n"
     "on stderr; they are summed and reported with heartbeats and the final report.\n"
     "Sandbox (strict): user, mount, pid, net, ipc, uts and cgroup namespaces; the system\n"
     "read-only, homes, /run, logs and the worker's files hidden; the task directory at /s2\n"
     "(ws/ is the working directory); a fresh /tmp; no capabilities, no_new_privs and a\n"
     "seccomp filter; limits by cgroup v2 where available, else rlimits; no network unless\n"
     "the swarm's contract grants endpoints, reached through the worker's proxy\n"
     "($https_proxy). On SIGTERM or SIGINT it stops claiming, lets running tasks finish for\n"
     "the grace period, then kills them and reports them failed (\"worker stopping\") so\n"
     "their leases are released at once; a second signal kills at once.\n"
     "With --repo, each task's workspace is a fresh git worktree of the repository on its own\n"
     "branch s2/<task-id>, made from the task's base ref (its body may start with YAML front\n"
     "matter naming base_ref: REF; default --base, else HEAD); the repository's git directory\n"
     "is read-only inside. On done the worker commits what the command left (author: the\n"
     "agent; the message names task, agent, attempt and the claim's witness seq), adds\n"
     "{\"git\": {\"branch\", \"commit\", \"base\", \"files_changed\"}} to the result and removes\n"
     "the worktree (the branch stays); on fail the worktree is kept, the newest --keep-failed.\n"
     "With --wasm, a WASI module runs per task instead of a command: built once at start with\n"
     "wasm2c and cc (Debian's wabt and gcc) into a native program, inside the same sandbox,\n"
     "with the same limits, stdin and S2_* environment; it sees /s2, its workspace as . and\n"
     "/tmp as WASI preopened directories, and nothing outside them. See docs/CHASSIS.md.\n\n"
     "  --agent A           the agent whose tasks to run (required)\n"
     "  --concurrency N     run up to N tasks at once (default 1; the agent's max leases\n"
     "                      must allow it)\n"
     "  --once              one task, then exit\n"
     "  --max-tasks N       N tasks, then exit\n"
     "  --idle-exit S       exit after S seconds without a task\n"
     "  --wait S            long-poll per claim (default 30)\n"
     "  --sandbox MODE      strict (default; refuses to start where the kernel cannot) or\n"
     "                      none (no isolation: trusted commands only)\n"
     "  --timeout S         wall-clock limit per task (default: the contract's, else 3600)\n"
     "  --memory MB         memory limit (default: the contract's, else 1024)\n"
     "  --pids N            process limit (default: the contract's, else 256)\n"
     "  --cpu PERCENT       CPU limit, 100 = one core (cgroup); without a cpu controller\n"
     "                      it sets the CPU time: timeout x PERCENT / 100\n"
     "  --open-files N      open files limit (default 1024)\n"
     "  --file-size MB      largest file the command may write (default 1024)\n"
     "                      (limits given here cap what a contract asks for)\n"
     "  --secrets FILE      NAME=VALUE lines (mode 0600, owned by you); a task gets only the\n"
     "                      names its swarm's contract grants; every value is redacted from\n"
     "                      results, reasons and logs\n"
     "  --contract FILE     contracts for swarms (YAML or JSON, DESIGN.md \"Files\"); where\n"
     "                      the server also has one, a task gets what both allow\n"
     "  --workdir DIR       where task directories go (default $TMPDIR/s2-worker-PID)\n"
     "  --keep              keep task directories after the report\n"
     "  --max-output BYTES  result size cap (default and most 262144); more is cut and noted\n"
     "  --grace S           on SIGTERM, how long running tasks may finish (default 10)\n"
     "  --env NAME[=VALUE]  pass a variable to the command (repeatable)\n"
     "  --hide PATH         also hide PATH inside the sandbox (repeatable)\n"
     "  --expose PATH       show PATH read-only although under a hidden one, e.g. a command\n"
     "                      kept in your home (repeatable)\n"
     "  --log-level LEVEL   debug (also logs the commands' stderr, redacted), info, warn,\n"
     "                      error\n"
     "  --repo PATH         workspaces are git worktrees of this repository (see above)\n"
     "  --base REF          the default base ref of task branches (default HEAD)\n"
     "  --worktrees DIR     where worktrees go (default <git dir>/s2-worktrees)\n"
     "  --keep-failed N     worktrees of failed attempts kept for inspection (default 10;\n"
     "                      older ones are pruned)\n"
     "  --wasm MODULE.wasm  run this WASI module per task (arguments after --)\n"
     "  --check             print what this host offers (namespaces, seccomp, cgroup v2)\n"
     "                      and what a task would get, then exit\n"
     "  --server URL        s2 server (default $S2_SERVER or http://127.0.0.1:7411)\n"
     "  --json              one JSON line per task on stdout ({\"task\", \"outcome\",\n"
     "                      \"reason\", \"ms\", ...}); with --check, the report as JSON\n"
     "  -h, --help          show this help\n"
     "The token comes from $S2_TOKEN (never passed to commands). Exit status: 0 when every\n"
     "task was run and reported, 1 when the worker could not do its job.\n"},
    {"report", cli_report,
     "s2 report [--since T] [--swarm S] [--json | --md] [--svg FILE]",
     "Velocity and cost measured from the witness log (read through the API, a page at a\n"
     "time), per swarm and overall: the sequential equivalent (sum of the durations of the\n"
     "leases that finished their task, claim to done) against the wall-clock makespan (first\n"
     "claim to last lease end) and their ratio, the speedup; cost by model tier from the\n"
     "usage agents reported, and the saving against pricing the same tokens at the top tier;\n"
     "blockers: time blocked, time to the first helper, how long helpers took to clear them;\n"
     "tasks done, failed attempts, expired leases, dead and cancelled. Definitions in\n"
     "docs/REPORT.md. A swarm token sees its own swarm.\n\n"
     "  --since T           only leases, blockers and usage from T on: an ISO 8601 time\n"
     "                      (2026-11-24T17:00:00Z, 2026-11-24), milliseconds since the epoch,\n"
     "                      or a duration ago (90s, 30m, 2h, 7d)\n"
     "  --swarm S           one swarm only\n"
     "  --md                Markdown tables (the seed's velocity and cost tables, measured)\n"
     "  --svg FILE          also write the numbers as an SVG chart to FILE (- for stdout)\n"
     CLI_COMMON_HELP},
    {"git import", cli_git_import, "s2 git import REPO [--ref R] [--dry-run] [--json]",
     "Read the INSTRUCTIONS-<swarm>-PHASE-<n>.md files of a commit (default HEAD; at the top\n"
     "of the tree and under instructions/) and create their tasks. Idempotent: a task that\n"
     "exists and is identical is skipped; one that differs is reported as a conflict and\n"
     "left as it is, never overwritten. A malformed file is reported as FILE:LINE: what is\n"
     "wrong, and skipped; the valid files are still imported. The format is in docs/GIT.md.\n"
     "Exits 1 when anything was reported.\n\n"
     "  --ref R             the commit to read: a branch, tag or commit id (default HEAD)\n"
     "  --dry-run           compare only: say what would be created\n" CLI_COMMON_HELP},
    {"git export", cli_git_export, "s2 git export REPO [--swarm S] [--json]",
     "Commit each swarm's STATUS.md (as `s2 status SWARM --md` renders it) to the swarm's\n"
     "branch (its --branch, else s2/<swarm>), without touching the working tree or the index,\n"
     "with a message naming the witness entries and the signed checkpoint it reflects. A\n"
     "branch that does not exist starts from HEAD; an unchanged STATUS.md makes no commit; a\n"
     "branch checked out in the repository's working tree is refused.\n\n"
     "  --swarm S           only this swarm (default: every swarm the token sees)\n"
     CLI_COMMON_HELP},
    {"git hook", cli_git_hook,
     "s2 git hook install|uninstall REPO [--ref BRANCH] [--token-file F] [--force]",
     "Install (or remove) s2's git hooks in REPO: post-commit, post-merge and post-receive\n"
     "run `s2 git notify`, so that new instructions are tasks at once instead of at the next\n"
     "poll; pre-commit runs `s2 git guard`, which refuses a commit touching paths leased to\n"
     "another agent's live claim, or made under a lease that is no longer live. Hooks that\n"
     "are not s2's are refused unless --force, which keeps them as HOOK.pre-s2, run first.\n"
     "The server ($S2_SERVER or --server) is recorded as git config s2.server.\n\n"
     "  --ref BRANCH        only commits on this branch carry instructions (git config s2.ref)\n"
     "  --token-file F      the hooks read their token from F (git config s2.tokenFile) when\n"
     "                      $S2_TOKEN is not set; keep it chmod 600\n"
     "  --force             keep foreign hooks as HOOK.pre-s2 instead of refusing\n"
     CLI_COMMON_HELP},
    {"git notify", cli_git_notify, "s2 git notify [REPO] [--ref R] [--hook NAME] [--timeout S]",
     "Tell s2 that REPO (default: the repository git runs the hook in) changed: the server\n"
     "imports the instruction files of R (default HEAD) at once, as `s2 git import` would,\n"
     "and answers with what it created. Run by the hooks; in a hook (--hook) it never fails\n"
     "the git command: problems are printed, and an unreachable server is a warning.\n\n"
     "  --ref R             the ref to import (default HEAD; with git config s2.ref set, only\n"
     "                      when HEAD is on that branch)\n"
     "  --hook NAME         post-commit, post-merge or post-receive (reads the pushed refs\n"
     "                      from stdin)\n"
     "  --timeout S         give up after S seconds (default 10, or git config s2.timeout)\n"
     CLI_COMMON_HELP},
    {"git guard", cli_git_guard, "s2 git guard [REPO] [--timeout S]",
     "The pre-commit check: the paths the commit changes (index against HEAD) are checked\n"
     "against the live path leases (POST /v1/paths/check). Refuses (exit 1), naming the\n"
     "holder and its task, when one is leased to another agent's claim; with $S2_LEASE set,\n"
     "also when that lease is no longer live (fencing: a zombie agent cannot land stale work).\n"
     "An unreachable server refuses an agent's commit (it has a lease to prove) and lets a\n"
     "human's through with a warning (git config s2.guardFailClosed true refuses those too).\n\n"
     "  --timeout S         give up after S seconds (default 5, or git config s2.timeout)\n"
     CLI_COMMON_HELP},
    {"bench", cli_bench, "s2 bench [--tasks N] [--clients C] [--swarms S] [--push N] [--json]",
     "Load-generate against a running server: create N tasks over S swarms, then C\n"
     "concurrent agents claim+done until all are done; then measure push latency (a waiting\n"
     "claimer gets a newly created task). Reports ops/s, claim p50/p99/p999, push p50/p99,\n"
     "duplicates (must be 0) and the server's RSS. Needs the admin token.\n\n"
     "  --tasks N           tasks to create and finish (default 100000)\n"
     "  --clients C         concurrent claim+done loops (default 8)\n"
     "  --swarms S          spread tasks and agents over S swarms (default 1)\n"
     "  --push N            push-latency samples (default 2000; 0 skips)\n"
     "  --seconds S         stop the claim loop after S seconds (default 60)\n"
     "  --prefix P          name swarms P-0.. (default bench-<pid>)\n"
     "  --keep              fill only; leave the tasks ready (for restart tests)\n"
     "  --agents N          agents (default: one per client; clients take turns over them)\n"
     "  --caps K            give agents 3 capabilities each from K, each task 1 to match\n"
     "                      (exercises the governor's matching; tasks carry max_cost $0.01)\n"
     "  --budget USD        a budget on each swarm (reservations and ledgers at work)\n"
     "  --nodes URL,URL     cluster nodes: claim loops spread over them, and the push\n"
     "                      claimer waits on the second while tasks are created through\n"
     "                      --server (cross-node push latency)\n"
     CLI_COMMON_HELP},
    {"help", cli_help_cmd, "s2 help [COMMAND] [--markdown]",
     "Show the commands, or one command's help. --markdown prints the CLI reference.\n"},
    {"version", cli_version, "s2 version", "Print the version.\n"},
};
const size_t cli_ncmds = sizeof cli_cmds / sizeof cli_cmds[0];

static void overview(FILE *f)
{
    fprintf(f, "s2 %s: coordination server for swarms of AI agents\n\nusage: s2 COMMAND "
               "[ARGS]\n\n",
            S2_VERSION);
    for (size_t i = 0; i < cli_ncmds; i++)
        fprintf(f, "  %-14s %s\n", cli_cmds[i].name, cli_cmds[i].synopsis + 3 + strlen(cli_cmds[i].name));
    fprintf(f, "\nRun 's2 COMMAND --help' for one command. Server: $S2_SERVER (default "
               "http://127.0.0.1:7411); token: $S2_TOKEN.\n");
}

static CMD(cli_version)
{
    (void)cmd, (void)argc, (void)argv;
    printf("s2 %s\n", S2_VERSION);
    return EXIT_OK;
}

static CMD(cli_help_cmd)
{
    (void)cmd;
    int markdown = argc > 1 && !strcmp(argv[argc - 1], "--markdown");
    if (markdown) {
        printf("# s2 command-line reference\n\n"
               "Generated by `s2 help --markdown` from the same table as `--help`; a test keeps "
               "this file in step.\n\nEvery command exits 0 on success, 1 on an error, 2 on a "
               "usage error. Client commands read the server from `--server` or `S2_SERVER` "
               "(default http://127.0.0.1:7411) and the token from `S2_TOKEN`.\n");
        for (size_t i = 0; i < cli_ncmds; i++)
            printf("\n## s2 %s\n\n```\n%s\n```\n\n```\n%s```\n", cli_cmds[i].name,
                   cli_cmds[i].synopsis, cli_cmds[i].help);
        return EXIT_OK;
    }
    if (argc > 1) {
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", argv[1], argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
        for (size_t i = 0; i < cli_ncmds; i++)
            if (!strcmp(cli_cmds[i].name, name) || !strcmp(cli_cmds[i].name, argv[1])) {
                cli_help(&cli_cmds[i]);
                return EXIT_OK;
            }
        fprintf(stderr, "error: no such command '%s'\n", name);
        return EXIT_USAGE;
    }
    overview(stdout);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    /* libsodium's userspace ChaCha20 generator (seeded from the kernel, per thread) rather
     * than a getrandom() syscall for every lease token and trace id */
    randombytes_set_implementation(&randombytes_internal_implementation);
    if (sodium_init() < 0) {
        fprintf(stderr, "error: libsodium failed to initialise\n");
        return EXIT_FAIL;
    }
    if (argc < 2) {
        overview(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cli_help_cmd(NULL, 1, argv);
    if (!strcmp(argv[1], "--version"))
        return cli_version(NULL, argc, argv);
    /* two-word commands first ("task add"), then one-word ones ("claim") */
    if (argc >= 3) {
        char name[64];
        snprintf(name, sizeof name, "%s %s", argv[1], argv[2]);
        for (size_t i = 0; i < cli_ncmds; i++)
            if (!strcmp(cli_cmds[i].name, name))
                return cli_cmds[i].run(&cli_cmds[i], argc - 2, argv + 2);
    }
    for (size_t i = 0; i < cli_ncmds; i++)
        if (!strcmp(cli_cmds[i].name, argv[1]))
            return cli_cmds[i].run(&cli_cmds[i], argc - 1, argv + 1);
    /* a group without its verb: list the verbs */
    size_t n = strlen(argv[1]);
    int group = 0;
    for (size_t i = 0; i < cli_ncmds; i++)
        if (!strncmp(cli_cmds[i].name, argv[1], n) && cli_cmds[i].name[n] == ' ') {
            if (!group++)
                fprintf(stderr, "%s'%s' needs a subcommand:\n",
                        argc >= 3 ? "error: unknown subcommand; " : "", argv[1]);
            fprintf(stderr, "  %s\n", cli_cmds[i].synopsis);
        }
    if (!group)
        fprintf(stderr, "error: unknown command '%s'; see 's2 --help'\n", argv[1]);
    return EXIT_USAGE;
}
