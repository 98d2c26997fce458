/* cli.h: what every `s2 <command>` shares: the command table (the one source of --help and
 * docs/CLI.md), common options (--server, --json, --help), exit codes, and printing. */
#ifndef S2_CLI_H
#define S2_CLI_H

#include <getopt.h>
#include <jansson.h>

#include "client.h"
#include "error.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli_cmd {
    const char *name;     /* "task add" */
    int (*run)(const struct cli_cmd *cmd, int argc, char **argv);
    const char *synopsis; /* one line: "s2 task add --swarm S --title T [options]" */
    const char *help;     /* what it does, then its options, one per line */
};

extern const struct cli_cmd cli_cmds[];
extern const size_t cli_ncmds;

/* Options every client command accepts; append to a getopt_long table. */
#define CLI_COMMON_OPTS                                                                        \
    {"server", required_argument, 0, 0x100}, {"json", no_argument, 0, 0x101},                  \
        {"help", no_argument, 0, 'h'}
#define CLI_COMMON_HELP                                                                        \
    "  --server URL        s2 server (default $S2_SERVER or http://127.0.0.1:7411)\n"          \
    "  --json              print JSON (for scripts and agents)\n"                              \
    "  -h, --help          show this help\n"                                                   \
    "The token comes from $S2_TOKEN.\n"

struct cli {
    const struct cli_cmd *cmd;
    const char *server;
    int json;
    struct client client;
    int connected;
};

/* Handle a common option; returns 1 if it was one (and sets *exit_now for --help). */
int cli_common(struct cli *c, int opt, int *exit_now);
/* The usage error for what getopt_long returned for a bad option ('?' or ':'). */
int cli_bad_option(const struct cli *c, int opt, char **argv);

/* The option loop every command runs: common options handled, `cases` (switch cases on the
 * option) for the command's own. The caller declares `int rc` and an `out:` cleanup label;
 * on --help or a bad option rc is set and control goes to out. */
#define CLI_OPTIONS(c, argc, argv, opts, cases)                                                \
    do {                                                                                       \
        int opt_, exit_now_ = 0;                                                               \
        opterr = 0;                                                                            \
        while ((opt_ = getopt_long((argc), (argv), ":h", (opts), NULL)) != -1) {               \
            if (cli_common(&(c), opt_, &exit_now_)) {                                          \
                if (exit_now_) {                                                               \
                    rc = EXIT_OK;                                                              \
                    goto out;                                                                  \
                }                                                                              \
                continue;                                                                      \
            }                                                                                  \
            switch (opt_) {                                                                    \
                cases default : rc = cli_bad_option(&(c), opt_, (argv));                       \
                goto out;                                                                      \
            }                                                                                  \
        }                                                                                      \
    } while (0)
/* In option cases and argument checks: a usage error ends the command. */
#define USAGE_IF(expr)                                                                         \
    do {                                                                                       \
        if (expr) {                                                                            \
            rc = EXIT_USAGE;                                                                   \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)
/* Usage error: message, synopsis, hint; returns EXIT_USAGE. */
int cli_usage(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a command's help to stdout. */
void cli_help(const struct cli_cmd *cmd);
/* Print an error ("error: ...") and return the exit code for it. */
int cli_fail(const struct s2_error *err);
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Connect and call; on failure prints the error. Returns EXIT_OK or EXIT_FAIL. */
int cli_call(struct cli *c, const char *method, const char *path, json_t *body, json_t **out,
             long *status);
void cli_done(struct cli *c);
void cli_print_json(json_t *v);

/* Parsing helpers; each prints a usage error and returns EXIT_USAGE on bad input. */
int cli_int(const struct cli *c, const char *opt, const char *arg, long long lo, long long hi,
            long long *out);
int cli_num(const struct cli *c, const char *opt, const char *arg, double *out);
/* "a,b,c" -> JSON array of strings */
json_t *cli_list(const char *arg);
/* Read a whole file ("-" = stdin) into a fresh string; NULL with err. */
char *cli_read_file(const char *path, size_t max, struct s2_error *err);

/* A progress line on stderr for long work, redrawn in place: only on a terminal and
 * never with --json (cli_progress_wanted), cleared before anything else is printed. */
int cli_progress_wanted(const struct cli *c);
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_progress_clear(void);

/* Human output helpers */
void cli_fmt_time(long long ms, char *out, size_t outlen);     /* "2026-11-24 17:20:01" */
void cli_fmt_in(long long ms_from_now, char *out, size_t outlen); /* "in 4m59s" / "3s ago" */
const char *cli_str(json_t *o, const char *key);               /* "" if absent */

/* Lease tokens remembered between `s2 claim` and `s2 done` (per server, per task). */
int cli_lease_save(const char *server, const char *task, const char *lease);
char *cli_lease_load(const char *server, const char *task);
void cli_lease_forget(const char *server, const char *task);

/* STATUS.md of a swarm in the seed's format (cli_status.c): its fields as YAML front
 * matter, then the same for people, naming the signed checkpoint it reflects. *md (caller
 * frees); *meta (optional, caller owns): {"swarm","status","branch","witness_seq",
 * "tree_size","root_hash"}. Returns EXIT_OK or prints the error and returns EXIT_FAIL. */
int cli_status_md(struct cli *c, const char *swarm, char **md, json_t **meta);

#endif
