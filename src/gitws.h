/* gitws.h: workspaces from git (`s2 worker --repo PATH`). Each task attempt gets a fresh
 * linked worktree of the repository on its own branch `s2/<task-id>`, made from the task's
 * base ref, so that parallel agents never write the same checkout. After a successful run
 * the worker commits what the command left there (the worker, not the command: inside the
 * sandbox the repository's git directory is read-only) and removes the worktree; the branch
 * stays. After a failure the worktree is kept for inspection, the newest N of them.
 *
 * Never follow what the command could have changed: the worktree's `.git` file is
 * rewritten before the worker opens it, the worktree is opened through the main repository,
 * and the branch moves only by compare-and-swap from the commit the attempt started at. */
#ifndef S2_GITWS_H
#define S2_GITWS_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct gitws_config {
    const char *repo; /* path of the repository (a work tree, a bare repo, a .git dir) */
    const char *base; /* default base ref (NULL: the repository's HEAD) */
    const char *dir;  /* where worktrees go (NULL: <git dir>/s2-worktrees) */
    int keep_failed;  /* worktrees of failed attempts kept (the newest N; 0: none) */
    uid_t owner;      /* hand each worktree to this uid/gid ((uid_t)-1: leave as is) */
    gid_t group;
};

struct gitws;

/* Open the repository, check that the default base resolves to a commit and create the
 * worktrees directory. Caller frees with gitws_free. The handle may be shared by threads:
 * each call opens the repository for itself. */
int gitws_open(struct gitws **out, const struct gitws_config *cfg, struct s2_error *err);
void gitws_free(struct gitws *g);
/* The repository's (common) git directory, canonical: shown read-only inside the sandbox. */
const char *gitws_gitdir(const struct gitws *g);
/* The worktrees directory, canonical: hidden inside the sandbox (other tasks' work). */
const char *gitws_dir(const struct gitws *g);

/* One attempt's worktree. */
struct gitws_task {
    char *name;     /* the worktree's name in the repository */
    char *path;     /* its working tree (host path) */
    char *branch;   /* "s2/<task-id>" */
    char *base_ref; /* the ref it was made from, as given */
    char base[41];  /* the commit it was made from (hex) */
    char *dotgit;   /* what its .git file says, restored before the commit */
};

/* Make the worktree of task_id's attempt on branch s2/<task-id> (created, or reset when an
 * earlier attempt left it) from base_ref (NULL: the configured default). A worktree that
 * still holds the branch (a failed or killed attempt) is detached from it first. On
 * failure t is untouched and err says why ("base ref 'x' is not in repository '...'"). */
int gitws_prepare(struct gitws *g, const char *task_id, long attempt, const char *base_ref,
                  struct gitws_task *t, struct s2_error *err);

struct gitws_commit_info {
    const char *agent, *task, *swarm, *title;
    long attempt;
    uint64_t witness_seq; /* 0: unknown */
};

/* Commit everything the command left in the worktree (new, changed and deleted files;
 * .gitignore respected) on its branch, as the agent. Returns a new object {"branch",
 * "commit", "base", "files_changed"} (caller decrefs); files_changed 0 and no new commit
 * when nothing changed. S2_ECONFLICT when a newer attempt took the branch meanwhile. */
int gitws_commit(struct gitws *g, struct gitws_task *t, const struct gitws_commit_info *ci,
                 json_t **out, struct s2_error *err);

/* After a successful attempt: remove the worktree (its branch stays). */
void gitws_remove(struct gitws *g, struct gitws_task *t);
/* After a failed one: keep it for inspection, and prune the kept worktrees past the newest
 * keep_failed (this worker's and those that dead workers left). */
void gitws_keep(struct gitws *g, struct gitws_task *t);
void gitws_task_release(struct gitws_task *t);

/* The base ref a task asks for: its "base_ref" field, else `base_ref:` in YAML front matter
 * at the top of its body (between two `---` lines). Caller frees; NULL when none. */
char *gitws_task_base(json_t *task);

#endif
