/* gitbridge.h: s2's side of git (libgit2). It reads INSTRUCTIONS-<swarm>-PHASE-<n>.md files
 * from a commit and imports their tasks idempotently (what exists and is identical is
 * skipped, what changed is reported as a conflict, never overwritten), commits a swarm's
 * STATUS.md to its branch, and installs the hooks that tell s2 about a commit at once.
 * It never touches a working tree or the index. The file format is in docs/GIT.md.
 *
 * Thread-safety: every function may run on any thread; one repository handle is never
 * shared between threads (each call opens its own). */
#ifndef S2_GITBRIDGE_H
#define S2_GITBRIDGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "util/strvec.h"

#define GB_FILE_MAX (1024 * 1024) /* bytes of one instruction file */
#define GB_FILES_MAX 10000        /* instruction files in one commit */

/* One task of an instruction file. */
struct gb_task {
    json_t *spec;  /* as POST /v1/tasks takes it, swarm and phase included (owned) */
    size_t file;   /* index in gb_instructions.files */
    int line;      /* where its definition starts (1-based) */
    json_t *lines; /* field name -> line of its value (owned) */
};

/* One instruction file. */
struct gb_file {
    char *path;  /* in the tree, e.g. "INSTRUCTIONS-sip-PHASE-2.md" */
    char *swarm;
    int64_t phase;
    size_t first, n; /* its tasks: tasks[first .. first+n) */
    int bad;         /* it has problems: none of its tasks is imported */
};

/* A problem with a file, at a line (0: the file as a whole). */
struct gb_problem {
    size_t file;
    int line;
    char *msg;
};

struct gb_instructions {
    char *repo;   /* the repository's git directory */
    char *ref;    /* as asked (HEAD by default) */
    char *commit; /* hex id of the commit read */
    struct gb_file *files;
    size_t nfiles, capfiles;
    struct gb_task *tasks;
    size_t ntasks, captasks;
    struct gb_problem *problems;
    size_t nproblems, capproblems;
};

/* 0 if path is a repository itself (its work tree's top or its git directory), without
 * looking in the directories above it; else S2_EINVAL naming the path. */
int gitbridge_check_repository(const char *path, struct s2_error *err);

void gitbridge_instructions_release(struct gb_instructions *in);

/* Read every instruction file of the commit ref names (NULL: HEAD) in repo (a path in or
 * at a repository; git's discovery rules), at the top of the tree and under
 * instructions/. Problems with single files are recorded in out (and the file marked
 * bad), not returned: <0 only when the repository or ref cannot be read (err). */
int gitbridge_read(const char *repo, const char *ref, struct gb_instructions *out,
                   struct s2_error *err);

/* Parse one file's bytes into `into` (exposed for tests): path is its name in the tree.
 * Records its tasks and problems; returns the number of problems found in it. */
size_t gitbridge_parse(struct gb_instructions *into, const char *path, const char *text,
                       size_t len);

/* Split "INSTRUCTIONS-<swarm>-PHASE-<n>.md" (the base name); 0 ok, -1 not that form. The
 * swarm is the text before the last "-PHASE-". *swarm is the caller's. */
int gitbridge_parse_name(const char *base, char **swarm, int64_t *phase);

/* What an import does with the server (or the engine): borrowed by gitbridge_import. */
struct gb_ops {
    /* The task with this id as the API shows it (GET /v1/tasks/{id}'s "task"): 1 and *task
     * (caller frees), 0 when there is none, <0 on error (err). */
    int (*lookup)(void *ctx, const char *id, json_t **task, struct s2_error *err);
    /* Create these tasks (a JSON array) all at once: 0, or <0 with err (whose message names
     * "tasks[i]" when one task is to blame). */
    int (*create)(void *ctx, json_t *tasks, struct s2_error *err);
    /* May the caller create tasks in this swarm? 0, or <0 with err (NULL: yes). */
    int (*may)(void *ctx, const char *swarm, struct s2_error *err);
    void *ctx;
};

/* Import what `in` holds: each task that does not exist is created (files whose creation the
 * server refuses are reported and left out, the rest still created), identical ones are
 * skipped, changed ones reported as conflicts. dry_run: compare only. Returns the report
 * (caller owns):
 *   {"repo","ref","commit","files":N,"created":[id],"unchanged":[id],
 *    "conflicts":[{"task","file","line","fields":[...]}],
 *    "errors":[{"file","line","message"}]}
 * <0 only when the lookup itself fails (err): nothing was created then. */
int gitbridge_import(struct gb_instructions *in, const struct gb_ops *ops, int dry_run,
                     json_t **report, struct s2_error *err);

/* The fields in which an existing task (as the API shows it) differs from the wanted spec
 * (as POST /v1/tasks takes it), as a JSON array of names (caller owns); empty if none.
 * Absent fields mean their defaults; a min_tier the server raised after a failure (the
 * cascade) and an approval a policy gate added are not differences. */
json_t *gitbridge_diff(json_t *want, json_t *have);

/* Commit `content` as `file` (e.g. "STATUS.md") on branch (refs/heads/<branch>) of repo,
 * on top of its tip (or of HEAD when the branch does not exist yet, or as its first commit
 * in an empty repository), without a working tree or index. Nothing is committed when the
 * file already has exactly this content: *changed = 0. *commit gets the hex id of the
 * branch tip after the call (caller frees). A branch checked out in a working tree is
 * refused (its files would fall behind). */
int gitbridge_commit_file(const char *repo, const char *branch, const char *file,
                          const char *content, size_t len, const char *message, char **commit,
                          int *changed, struct s2_error *err);

/* The git directory (absolute, without a trailing slash) of the repository at or above
 * path (caller frees); NULL with err. */
char *gitbridge_git_dir(const char *path, struct s2_error *err);

/* A config value of the repository (all levels), or NULL (caller frees). */
char *gitbridge_config(const char *repo, const char *key);

/* The branch HEAD points to ("refs/heads/x"), or NULL when detached or unborn. */
char *gitbridge_head_ref(const char *repo);

/* Paths the next commit would change (the index against HEAD, both sides of renames),
 * appended to out. */
int gitbridge_staged_paths(const char *repo, struct strvec *out, struct s2_error *err);

/* ---- hooks ---- */

struct gb_hook_opts {
    const char *s2_path;    /* the s2 binary the hooks run (absolute) */
    const char *server;     /* recorded as s2.server (NULL: leave as is) */
    const char *token_file; /* recorded as s2.tokenFile (NULL: leave as is) */
    const char *ref;        /* recorded as s2.ref: the branch that carries instructions */
    int force;              /* replace foreign hooks (kept as HOOK.pre-s2 and run first) */
};

/* Install the post-commit, post-merge, post-receive and pre-commit hooks in repo's hooks
 * directory (core.hooksPath respected). A hook that is not s2's is refused unless force:
 * then it is kept beside as HOOK.pre-s2 and run first. *report lists what was done
 * (caller owns). */
int gitbridge_hooks_install(const char *repo, const struct gb_hook_opts *o, json_t **report,
                            struct s2_error *err);
/* Remove s2's hooks (restoring HOOK.pre-s2 where one was kept). */
int gitbridge_hooks_uninstall(const char *repo, json_t **report, struct s2_error *err);

#endif
