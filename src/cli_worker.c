/* cli_worker.c: `s2 worker`: parse its options into a worker_config and run the loop, or
 * with --check report what sandboxing this host offers. */
#include "chassis.h"
#include "cli.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    O_AGENT = 0x200,
    O_CONCURRENCY,
    O_ONCE,
    O_MAX_TASKS,
    O_SECRETS,
    O_CONTRACT,
    O_WORKDIR,
    O_TIMEOUT,
    O_SANDBOX,
    O_GRACE,
    O_IDLE,
    O_MAX_OUTPUT,
    O_MEMORY,
    O_PIDS,
    O_CPU,
    O_FILES,
    O_FSIZE,
    O_ENV,
    O_HIDE,
    O_EXPOSE,
    O_KEEP,
    O_WAIT,
    O_LOG,
    O_CHECK,
    O_REPO,
    O_BASE,
    O_WORKTREES,
    O_KEEP_FAILED,
    O_WASM,
};

static const char *yes(json_t *v)
{
    if (json_is_true(v))
        return "yes";
    if (json_is_string(v))
        return json_string_value(v);
    return "no";
}

static void print_check(json_t *o)
{
    json_t *un = json_object_get(o, "user_namespaces"), *ns = json_object_get(o, "namespaces");
    json_t *sc = json_object_get(o, "seccomp"), *cg = json_object_get(o, "cgroup_v2");
    json_t *sb = json_object_get(o, "sandbox"), *task = json_object_get(o, "task");
    printf("What this host offers a task (s2 worker --check)\n\n");
    printf("  kernel            %s%s\n", cli_str(o, "kernel"),
           json_is_true(json_object_get(o, "root")) ? " (running as root)" : "");
    printf("  user namespaces   %s; unprivileged: %s\n", yes(json_object_get(un, "available")),
           yes(json_object_get(un, "unprivileged")));
    if (!json_is_true(json_object_get(un, "unprivileged")))
        printf("                    (%s; see kernel.unprivileged_userns_clone, "
               "user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns)\n",
               cli_str(un, "error"));
    printf("  namespaces        ");
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(ns, k, v)
    {
        printf("%s%s %s", first ? "" : ", ", k, yes(v));
        first = 0;
    }
    printf("\n");
    printf("  seccomp           %s (libseccomp %s, %lld system calls denied with EPERM)\n",
           yes(json_object_get(sc, "available")), cli_str(sc, "libseccomp"),
           (long long)json_integer_value(json_object_get(sc, "denied_syscalls")));
    printf("  mount_setattr     %s\n", yes(json_object_get(o, "mount_setattr")));
    printf("  pidfd             %s\n", yes(json_object_get(o, "pidfd")));
    if (json_is_true(json_object_get(cg, "mounted"))) {
        printf("  cgroup v2         %s (this process: %s): %s\n", cli_str(cg, "mount"),
               cli_str(cg, "cgroup"),
               json_is_true(json_object_get(cg, "writable")) ? "writable" : "not writable");
        json_t *ctl = json_object_get(cg, "controllers");
        printf("                    controllers:");
        for (size_t i = 0; i < json_array_size(ctl); i++)
            printf(" %s", json_string_value(json_array_get(ctl, i)));
        printf("%s\n", json_array_size(ctl) ? "" : " none");
        printf("                    for tasks: memory %s, pids %s, cpu %s, cgroup.kill %s\n",
               yes(json_object_get(cg, "memory")), yes(json_object_get(cg, "pids")),
               yes(json_object_get(cg, "cpu")), yes(json_object_get(cg, "kill")));
    } else {
        printf("  cgroup v2         not mounted (limits use rlimits)\n");
    }
    if (json_is_true(json_object_get(sb, "strict")))
        printf("  strict sandbox    works (a real run of `true`: %.1f ms from clone to exec)\n",
               json_real_value(json_object_get(sb, "start_ms")));
    else
        printf("  strict sandbox    NOT available: %s\n", cli_str(sb, "error"));
    if (json_is_string(json_object_get(sb, "plan")))
        printf("\nMount plan of a task (inside paths):\n%s", cli_str(sb, "plan"));
    json_t *notes = json_object_get(sb, "notes");
    for (size_t i = 0; i < json_array_size(notes); i++)
        printf("                    note: %s\n", json_string_value(json_array_get(notes, i)));
    printf("\nA task gets:\n");
    static const char *const keys[] = {"isolation",  "user",      "memory", "pids",   "cpu",
                                       "open_files", "file_size", "kill",   "network"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        printf("  %-12s %s\n", keys[i], cli_str(task, keys[i]));
}

static int num_opt(const struct cli *c, const char *name, const char *arg, long long lo,
                   long long hi, int64_t *out)
{
    long long v;
    int rc = cli_int(c, name, arg, lo, hi, &v);
    if (!rc)
        *out = v;
    return rc;
}

int cli_worker(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct worker_config cfg = {.concurrency = 1,
                                .mode = CHASSIS_STRICT,
                                .grace_ms = 10000,
                                .wait_s = 30,
                                .keep_failed = 10};
    struct strvec env = STRVEC_INIT, hide = STRVEC_INIT, expose = STRVEC_INIT;
    int check = 0, rc = EXIT_OK, exit_now = 0, once = 0;
    int64_t v;
    static const struct option opts[] = {{"agent", required_argument, 0, O_AGENT},
                                         {"concurrency", required_argument, 0, O_CONCURRENCY},
                                         {"once", no_argument, 0, O_ONCE},
                                         {"max-tasks", required_argument, 0, O_MAX_TASKS},
                                         {"secrets", required_argument, 0, O_SECRETS},
                                         {"contract", required_argument, 0, O_CONTRACT},
                                         {"workdir", required_argument, 0, O_WORKDIR},
                                         {"timeout", required_argument, 0, O_TIMEOUT},
                                         {"sandbox", required_argument, 0, O_SANDBOX},
                                         {"grace", required_argument, 0, O_GRACE},
                                         {"idle-exit", required_argument, 0, O_IDLE},
                                         {"max-output", required_argument, 0, O_MAX_OUTPUT},
                                         {"memory", required_argument, 0, O_MEMORY},
                                         {"pids", required_argument, 0, O_PIDS},
                                         {"cpu", required_argument, 0, O_CPU},
                                         {"open-files", required_argument, 0, O_FILES},
                                         {"file-size", required_argument, 0, O_FSIZE},
                                         {"env", required_argument, 0, O_ENV},
                                         {"hide", required_argument, 0, O_HIDE},
                                         {"expose", required_argument, 0, O_EXPOSE},
                                         {"keep", no_argument, 0, O_KEEP},
                                         {"wait", required_argument, 0, O_WAIT},
                                         {"log-level", required_argument, 0, O_LOG},
                                         {"check", no_argument, 0, O_CHECK},
                                         {"repo", required_argument, 0, O_REPO},
                                         {"base", required_argument, 0, O_BASE},
                                         {"worktrees", required_argument, 0, O_WORKTREES},
                                         {"keep-failed", required_argument, 0, O_KEEP_FAILED},
                                         {"wasm", required_argument, 0, O_WASM},
                                         CLI_COMMON_OPTS,
                                         {0}};
    int opt;
    opterr = 0;
    /* "+": the command's own options after the first word that is not ours stay its own */
    while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (cli_common(&c, opt, &exit_now)) {
            if (exit_now)
                goto out;
            continue;
        }
        switch (opt) {
        case O_AGENT:
            cfg.agent = optarg;
            break;
        case O_CONCURRENCY:
            USAGE_IF(num_opt(&c, "--concurrency", optarg, 1, 256, &v));
            cfg.concurrency = (int)v;
            break;
        case O_ONCE:
            once = 1;
            break;
        case O_MAX_TASKS:
            USAGE_IF(num_opt(&c, "--max-tasks", optarg, 1, 1000000000, &v));
            cfg.max_tasks = (long)v;
            break;
        case O_SECRETS:
            cfg.secrets_file = optarg;
            break;
        case O_CONTRACT:
            cfg.contract_file = optarg;
            break;
        case O_WORKDIR:
            cfg.workdir = optarg;
            break;
        case O_TIMEOUT:
            USAGE_IF(num_opt(&c, "--timeout", optarg, 1, 30LL * 86400, &cfg.timeout_s));
            break;
        case O_SANDBOX:
            if (!strcmp(optarg, "strict"))
                cfg.mode = CHASSIS_STRICT;
            else if (!strcmp(optarg, "none"))
                cfg.mode = CHASSIS_NONE;
            else {
                rc = cli_usage(&c, "--sandbox must be strict or none, not '%s'", optarg);
                goto out;
            }
            break;
        case O_GRACE:
            USAGE_IF(num_opt(&c, "--grace", optarg, 0, 86400, &v));
            cfg.grace_ms = v * 1000;
            break;
        case O_IDLE:
            USAGE_IF(num_opt(&c, "--idle-exit", optarg, 1, 30LL * 86400, &v));
            cfg.idle_exit_ms = v * 1000;
            break;
        case O_MAX_OUTPUT:
            USAGE_IF(num_opt(&c, "--max-output", optarg, 1, 256 * 1024, &v));
            cfg.max_output = (size_t)v;
            break;
        case O_MEMORY:
            USAGE_IF(num_opt(&c, "--memory", optarg, 1, 1 << 24, &cfg.memory_mb));
            break;
        case O_PIDS:
            USAGE_IF(num_opt(&c, "--pids", optarg, 1, 1 << 22, &cfg.pids));
            break;
        case O_CPU:
            USAGE_IF(num_opt(&c, "--cpu", optarg, 1, 100000, &cfg.cpu_percent));
            break;
        case O_FILES:
            USAGE_IF(num_opt(&c, "--open-files", optarg, 16, 1 << 20, &cfg.open_files));
            break;
        case O_FSIZE:
            USAGE_IF(num_opt(&c, "--file-size", optarg, 1, 1 << 24, &cfg.file_size_mb));
            break;
        case O_ENV:
            if (!*optarg || *optarg == '=' || !strncmp(optarg, "S2_", 3)) {
                rc = cli_usage(&c, "--env takes NAME or NAME=VALUE (not S2_*), not '%s'", optarg);
                goto out;
            }
            strvec_push(&env, optarg);
            break;
        case O_HIDE:
        case O_EXPOSE:
            if (optarg[0] != '/') {
                rc = cli_usage(&c, "%s takes an absolute path, not '%s'",
                               opt == O_HIDE ? "--hide" : "--expose", optarg);
                goto out;
            }
            strvec_push(opt == O_HIDE ? &hide : &expose, optarg);
            break;
        case O_KEEP:
            cfg.keep = 1;
            break;
        case O_WAIT:
            USAGE_IF(num_opt(&c, "--wait", optarg, 1, 300, &v));
            cfg.wait_s = (int)v;
            break;
        case O_LOG:
            if (!strcmp(optarg, "debug"))
                log_set_level(LOG_DEBUG);
            else if (!strcmp(optarg, "info"))
                log_set_level(LOG_INFO);
            else if (!strcmp(optarg, "warn"))
                log_set_level(LOG_WARN);
            else if (!strcmp(optarg, "error"))
                log_set_level(LOG_ERROR);
            else {
                rc = cli_usage(&c, "--log-level must be debug, info, warn or error");
                goto out;
            }
            break;
        case O_CHECK:
            check = 1;
            break;
        case O_REPO:
            cfg.repo = optarg;
            break;
        case O_BASE:
            cfg.base = optarg;
            break;
        case O_WORKTREES:
            cfg.worktrees = optarg;
            break;
        case O_KEEP_FAILED:
            USAGE_IF(num_opt(&c, "--keep-failed", optarg, 0, 100000, &v));
            cfg.keep_failed = (int)v;
            break;
        case O_WASM:
            cfg.wasm = optarg;
            break;
        default:
            rc = cli_bad_option(&c, opt, argv);
            goto out;
        }
    }
    if (check) {
        if (optind < argc) {
            rc = cli_usage(&c, "--check takes no command");
            goto out;
        }
        struct chassis_config cc = {.mode = cfg.mode, .hide = &hide, .expose = &expose};
        json_t *o = chassis_check(&cc);
        if (c.json)
            cli_print_json(o);
        else
            print_check(o);
        json_decref(o);
        goto out;
    }
    if (!cfg.agent) {
        rc = cli_usage(&c, "--agent is required");
        goto out;
    }
    if (optind >= argc && !cfg.wasm) {
        rc = cli_usage(&c, "the command to run is missing (after --)");
        goto out;
    }
    if ((cfg.base || cfg.worktrees) && !cfg.repo) {
        rc = cli_usage(&c, "--base and --worktrees need --repo");
        goto out;
    }
    if (once && cfg.max_tasks > 1) {
        rc = cli_usage(&c, "--once and --max-tasks exclude each other");
        goto out;
    }
    if (once)
        cfg.max_tasks = 1;
    cfg.server = c.server;
    cfg.json = c.json;
    cfg.argv = argv + optind;
    cfg.env = &env;
    cfg.hide = &hide;
    cfg.expose = &expose;
    rc = worker_main(&cfg) ? EXIT_FAIL : EXIT_OK;
out:
    strvec_release(&env);
    strvec_release(&hide);
    strvec_release(&expose);
    return rc;
}
