/* worker.h: `s2 worker`, the claim-run-report loop. Each of N slots claims a task (long
 * poll), runs the command for it in the chassis with the task on stdin and in S2_*
 * variables, heartbeats at a third of the lease, and reports done (result: stdout or
 * $S2_RESULT_FILE, size-capped) or fail (exit status or signal and the last lines of
 * stderr), with the usage the command printed as `S2-USAGE: {...}` lines on stderr.
 * Secrets from the worker's file reach only tasks whose swarm contract grants them, and
 * every secret value is redacted from what the worker captures, reports and logs.
 * The pieces with logic of their own (secrets, redaction, usage lines, contracts, result
 * and reason) are exposed here for the unit tests. */
#ifndef S2_WORKER_H
#define S2_WORKER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "chassis.h"
#include "error.h"
#include "util/buf.h"
#include "util/strvec.h"

/* ---- secrets: NAME=VALUE lines in a file only its owner can read ---- */

struct secret {
    char *name;
    char *value;
};

struct secrets {
    struct secret *v;
    size_t n, cap;
};

/* Load path: regular file, owned by this user, mode 0600 or stricter (refused otherwise);
 * '#' comments and blank lines skipped, "export " allowed; NAME is [A-Za-z_][A-Za-z0-9_]*,
 * not S2_*; blanks around NAME and VALUE are dropped and a value may be wrapped in matching
 * quotes. Values are wiped from memory on release. */
int worker_secrets_load(struct secrets *s, const char *path, struct s2_error *err);
const char *worker_secret_get(const struct secrets *s, const char *name);
void worker_secrets_release(struct secrets *s);

/* ---- redaction ---- */

struct redactor {
    struct redaction {
        char *name;
        char *value;
        size_t len;
    } * v;
    size_t n, cap;
    size_t longest; /* bytes of the longest value */
};

#define REDACTOR_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

/* Redact value as "[REDACTED:NAME]" (also in its JSON-escaped form). Empty values are
 * ignored. Not thread-safe while adding; applying is read-only. */
void worker_redactor_add(struct redactor *r, const char *name, const char *value);
/* Append text[0..len) to out with every value replaced, longest values first. */
void worker_redact(const struct redactor *r, const char *text, size_t len, struct buf *out);
/* The same for a string (caller frees). */
char *worker_redact_str(const struct redactor *r, const char *s);
void worker_redactor_release(struct redactor *r);

/* ---- usage lines: S2-USAGE: {"model":...,"tokens_in":N,"tokens_out":N,"usd":X} ---- */

struct worker_usage {
    struct usage_model {
        char *model; /* "" when the line named none (the agent's model) */
        int64_t tokens_in, tokens_out;
        double usd;
        int has_usd;
    } * v;
    size_t n, cap;
    unsigned lines, bad; /* usage lines seen, and the malformed ones among them */
};

/* 1: a usage line, added to the pending totals; 0: not a usage line; <0: a usage line that
 * is malformed (err says why; nothing added). */
int worker_usage_line(struct worker_usage *u, const char *line, size_t len, struct s2_error *err);
/* Take one model's pending usage as a JSON object for a report (caller decrefs), or NULL. */
json_t *worker_usage_take(struct worker_usage *u);
/* Give back what a failed report did not deliver. */
void worker_usage_put_back(struct worker_usage *u, json_t *usage);
void worker_usage_release(struct worker_usage *u);

/* ---- service contracts (the parts a worker enforces) ---- */

struct worker_contract {
    int present;
    struct strvec secrets; /* names that may be injected */
    struct strvec network; /* "host:port" endpoints that may be reached through the proxy */
    /* limits; -1: not set */
    int64_t memory_mb, cpu_percent, timeout_s, pids, open_files, file_size_mb;
};

void worker_contract_init(struct worker_contract *c);
void worker_contract_release(struct worker_contract *c);
/* Read a contract object (DESIGN.md "Files": limits, network, secrets; other fields are
 * ignored). Fails naming the field on a wrong type or a malformed name or endpoint. */
int worker_contract_parse(json_t *j, struct worker_contract *c, struct s2_error *err);
/* What applies when both the server and the worker's own file have a contract for a
 * swarm: grants both allow, the smaller of each limit. Either alone applies alone. */
void worker_contract_merge(struct worker_contract *out, const struct worker_contract *a,
                           const struct worker_contract *b);
/* Load a local contract file (YAML or JSON): one contract, several YAML documents, a list,
 * or {"contracts": [...]}; each names its "swarm". Returns {swarm: contract} (caller
 * decrefs) or NULL with err. */
json_t *worker_contracts_load(const char *path, struct s2_error *err);

/* ---- what a run reports ---- */

/* Output as reported: raw[0..rawlen) is the start of what the command wrote (total bytes
 * in all; the caller reads up to max + r->longest + 1 bytes so that a secret crossing the
 * cap is seen whole). Cut at max, or just after a secret that crosses it, then redact
 * into out; *truncated says whether anything was cut. */
void worker_capture(const struct redactor *r, const char *raw, size_t rawlen, size_t total,
                    size_t max, int *truncated, struct buf *out);
/* The result of a successful run from its (redacted) output: the JSON value when the
 * output is JSON, else the text as a string (one trailing newline dropped); when it was
 * truncated an object {"output", "truncated": true, "bytes": total}. Always fits the
 * server's limit on results. Caller decrefs. */
json_t *worker_result(const char *text, size_t len, int truncated, size_t total);
/* The reason of a failed run: how it ended, then the last lines of stderr (usage lines
 * left out), as valid UTF-8 without control characters, at most 4096 bytes. */
char *worker_reason(const char *how, const char *stderr_tail, size_t len);

/* ---- the loop ---- */

struct worker_config {
    const char *server; /* NULL: $S2_SERVER or the default */
    const char *agent;
    int concurrency; /* slots (default 1) */
    long max_tasks;  /* 0: no limit (--once is 1) */
    const char *secrets_file;
    const char *contract_file;
    const char *workdir; /* NULL: $TMPDIR/s2-worker-PID (removed at exit) */
    enum chassis_mode mode;
    char **argv;              /* the command */
    const struct strvec *env; /* NAME or NAME=VALUE passed to the command */
    const struct strvec *hide, *expose;
    int64_t grace_ms;     /* on SIGTERM: how long running tasks may finish */
    int64_t idle_exit_ms; /* 0: never; else exit after that long without a task */
    size_t max_output;    /* bytes of result (default 256 KiB) */
    int keep;             /* keep task directories */
    int json;             /* one JSON line per task on stdout */
    int wait_s;           /* long-poll per claim (default 30) */
    /* limits given on the command line (ceilings over contracts); 0: not given */
    int64_t timeout_s, memory_mb, cpu_percent, pids, open_files, file_size_mb;
    /* --repo: each task's workspace is a worktree of this repository (see gitws.h) */
    const char *repo;
    const char *base;      /* default base ref (NULL: the repository's HEAD) */
    const char *worktrees; /* where worktrees go (NULL: <git dir>/s2-worktrees) */
    int keep_failed;       /* worktrees of failed attempts kept (default 10) */
    /* --wasm: run this WASI module per task instead of a command (argv: its arguments) */
    const char *wasm;
};

/* Run the loop until --once/--max-tasks/--idle-exit or SIGTERM/SIGINT. Returns the exit
 * code: 0, or 1 when the worker could not do its job (server refused it, a result could not
 * be reported); what the commands did is the tasks' business, reported to the server. */
int worker_main(const struct worker_config *cfg);

#endif
