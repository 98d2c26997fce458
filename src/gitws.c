/* gitws.c: workspaces from git (see gitws.h), on libgit2. Each call opens the repository
 * for itself (libgit2 objects are not shared between threads); worktree creation and
 * pruning are serialised per worker, the branch update is a compare-and-swap.
 * Never trust a file the sandboxed command could have written: the .git file is
 * rewritten, the worktree is found through the main repository's own records. */
#include "gitws.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/yamljson.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_PREFIX "s2 worker "

struct gitws {
    char *gitdir; /* common git directory, canonical, no trailing slash */
    char *dir;    /* worktrees directory, canonical */
    char *base;   /* default base ref */
    int keep_failed;
    uid_t owner;
    gid_t group;
    pthread_mutex_t mu;
};

static int git_fail(struct s2_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int git_fail(struct s2_error *err, const char *fmt, ...)
{
    const git_error *e = git_error_last();
    va_list ap;
    va_start(ap, fmt);
    char *m = xvasprintf(fmt, ap);
    va_end(ap);
    int rc = s2_fail(err, S2_EIO, "git", "%s: %s", m, e && e->message ? e->message : "unknown");
    free(m);
    return rc;
}

static int open_repo(const struct gitws *g, git_repository **r, struct s2_error *err)
{
    if (git_repository_open_ext(r, g->gitdir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL))
        return git_fail(err, "cannot open the repository '%s'", g->gitdir);
    return 0;
}

static int resolve_commit(git_repository *r, const char *ref, const char *where, git_commit **out,
                          struct s2_error *err)
{
    git_object *o = NULL, *c = NULL;
    if (git_revparse_single(&o, r, ref)) {
        const git_error *e = git_error_last();
        return s2_fail(err, S2_EINVAL, "git", "base ref '%s' is not in repository '%s': %s", ref,
                       where, e && e->message ? e->message : "not found");
    }
    int rc = git_object_peel(&c, o, GIT_OBJECT_COMMIT);
    git_object_free(o);
    if (rc)
        return s2_fail(err, S2_EINVAL, "git", "base ref '%s' in '%s' does not name a commit", ref,
                       where);
    *out = (git_commit *)c;
    return 0;
}

int gitws_open(struct gitws **out, const struct gitws_config *cfg, struct s2_error *err)
{
    git_libgit2_init();
    /* the operator named this repository; its worktrees belong to the sandbox user */
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    struct gitws *g = xcalloc(1, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    g->keep_failed = cfg->keep_failed;
    g->owner = cfg->owner;
    g->group = cfg->group;
    g->base = xstrdup(cfg->base ? cfg->base : "HEAD");
    git_repository *r = NULL;
    git_commit *c = NULL;
    int rc = 0;
    if (git_repository_open_ext(&r, cfg->repo, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL)) {
        rc = git_fail(err, "--repo '%s' is not a git repository", cfg->repo);
        goto out;
    }
    g->gitdir = realpath(git_repository_commondir(r), NULL);
    if (!g->gitdir) {
        rc = s2_fail(err, S2_EIO, "io", "git directory of '%s': %s", cfg->repo, strerror(errno));
        goto out;
    }
    if ((rc = resolve_commit(r, g->base, cfg->repo, &c, err)))
        goto out;
    if (cfg->dir) {
        if (mkdir(cfg->dir, 0711) && errno != EEXIST) {
            rc = s2_fail(err, S2_EIO, "io", "cannot create the worktrees directory '%s': %s",
                         cfg->dir, strerror(errno));
            goto out;
        }
        g->dir = realpath(cfg->dir, NULL);
    } else {
        char *d = xasprintf("%s/s2-worktrees", g->gitdir);
        if (mkdir(d, 0711) && errno != EEXIST) {
            rc = s2_fail(err, S2_EIO, "io", "cannot create the worktrees directory '%s': %s", d,
                         strerror(errno));
            free(d);
            goto out;
        }
        g->dir = realpath(d, NULL);
        free(d);
    }
    if (!g->dir) {
        rc = s2_fail(err, S2_EIO, "io", "worktrees directory: %s", strerror(errno));
        goto out;
    }
out:
    git_commit_free(c);
    git_repository_free(r);
    if (rc) {
        gitws_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void gitws_free(struct gitws *g)
{
    if (!g)
        return;
    free(g->gitdir);
    free(g->dir);
    free(g->base);
    pthread_mutex_destroy(&g->mu);
    free(g);
    git_libgit2_shutdown();
}

const char *gitws_gitdir(const struct gitws *g)
{
    return g->gitdir;
}

const char *gitws_dir(const struct gitws *g)
{
    return g->dir;
}

void gitws_task_release(struct gitws_task *t)
{
    free(t->name);
    free(t->path);
    free(t->branch);
    free(t->base_ref);
    free(t->dotgit);
    memset(t, 0, sizeof *t);
}

/* "s2/<id>" as a valid branch name: ':' (allowed in task ids, not in refs) becomes '-';
 * whatever else git refuses ("..", a trailing ".lock") turns dots into '_'. */
static char *branch_for(const char *id)
{
    char *b = xasprintf("s2/%s", id);
    for (char *p = b; *p; p++)
        if (*p == ':')
            *p = '-';
    char *full = xasprintf("refs/heads/%s", b);
    int valid = 0;
    if (git_reference_name_is_valid(&valid, full) || !valid)
        for (char *p = b + 3; *p; p++)
            if (*p == '.')
                *p = '_';
    free(full);
    return b;
}

/* A name for paths and worktree records: [A-Za-z0-9_-] */
static void safe_name(struct buf *b, const char *id)
{
    for (const char *p = id; *p && b->len < 80; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        buf_addch(b, ok ? c : '_');
    }
}


/* Is the worktree locked by a live s2 worker (in use by a running task)? */
static int in_use(git_worktree *wt)
{
    git_buf reason = {0};
    int locked = git_worktree_is_locked(&reason, wt);
    int live = 0;
    if (locked > 0) {
        live = 1; /* locked by someone else (a person): leave it */
        if (reason.ptr && !strncmp(reason.ptr, LOCK_PREFIX, strlen(LOCK_PREFIX))) {
            long pid = strtol(reason.ptr + strlen(LOCK_PREFIX), NULL, 10);
            live = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
        }
    }
    git_buf_dispose(&reason);
    return live;
}

/* Before the branch is reset for a new attempt: no worktree may still hold it. One whose
 * directory is gone loses its record; one that exists (a kept failure, a killed or
 * superseded attempt) gets a detached HEAD at the commit it was on. */
static int free_branch(struct gitws *g, git_repository *r, const char *full, struct s2_error *err)
{
    git_strarray names = {0};
    if (git_worktree_list(&names, r))
        return git_fail(err, "cannot list the worktrees of '%s'", g->gitdir);
    char *want = xasprintf("ref: %s", full);
    int rc = 0;
    for (size_t i = 0; i < names.count && !rc; i++) {
        char *headp = xasprintf("%s/worktrees/%s/HEAD", g->gitdir, names.strings[i]);
        char *head = fs_read_file(headp, 1 << 16, O_NOFOLLOW, NULL);
        free(headp);
        size_t n = head ? strcspn(head, "\r\n") : 0;
        int holds = head && n == strlen(want) && !strncmp(head, want, n);
        free(head);
        if (!holds)
            continue;
        git_worktree *wt = NULL;
        if (git_worktree_lookup(&wt, r, names.strings[i]))
            continue;
        if (git_worktree_validate(wt)) {
            git_worktree_prune_options po = GIT_WORKTREE_PRUNE_OPTIONS_INIT;
            po.flags = GIT_WORKTREE_PRUNE_LOCKED;
            if (git_worktree_prune(wt, &po))
                rc = git_fail(err, "cannot prune the stale worktree '%s'", names.strings[i]);
        } else {
            git_repository *wr = NULL;
            git_oid tip;
            if (git_repository_open_from_worktree(&wr, wt) ||
                git_reference_name_to_id(&tip, r, full) ||
                git_repository_set_head_detached(wr, &tip))
                rc = git_fail(err, "cannot detach the worktree '%s' from its branch",
                              names.strings[i]);
            else
                log_info("git: worktree %s (an earlier attempt) detached from %s", names.strings[i],
                         full + 11);
            git_repository_free(wr);
        }
        git_worktree_free(wt);
    }
    free(want);
    git_strarray_dispose(&names);
    return rc;
}

int gitws_prepare(struct gitws *g, const char *task_id, long attempt, const char *base_ref,
                  struct gitws_task *t, struct s2_error *err)
{
    git_repository *r = NULL;
    git_commit *base = NULL;
    git_reference *ref = NULL, *old = NULL;
    git_worktree *wt = NULL;
    struct gitws_task nt = {0};
    int rc = 0, locked = 0;
    nt.branch = branch_for(task_id);
    nt.base_ref = xstrdup(base_ref ? base_ref : g->base);
    char *full = xasprintf("refs/heads/%s", nt.branch);
    if ((rc = open_repo(g, &r, err)) ||
        (rc = resolve_commit(r, nt.base_ref, g->gitdir, &base, err)))
        goto out;
    git_oid_tostr(nt.base, sizeof nt.base, git_commit_id(base));
    pthread_mutex_lock(&g->mu);
    locked = 1;
    if (!git_branch_lookup(&old, r, nt.branch, GIT_BRANCH_LOCAL) &&
        (rc = free_branch(g, r, full, err)))
        goto out;
    if (git_branch_create(&ref, r, nt.branch, base, 1)) {
        rc = git_fail(err, "cannot create the branch '%s'", nt.branch);
        goto out;
    }
    struct buf nb = BUF_INIT;
    buf_init(&nb, 0);
    safe_name(&nb, task_id);
    buf_addf(&nb, "-a%ld", attempt);
    size_t stem = nb.len;
    for (int k = 1;; k++) {
        free(nt.path);
        nt.path = xasprintf("%s/%s", g->dir, nb.ptr);
        char *rec = xasprintf("%s/worktrees/%s", g->gitdir, nb.ptr);
        struct stat st;
        int taken = !lstat(nt.path, &st) || !lstat(rec, &st);
        free(rec);
        if (!taken || k > 1000)
            break;
        nb.len = stem;
        buf_addf(&nb, "-%d", k);
    }
    nt.name = buf_detach(&nb, NULL);
    git_worktree_add_options ao = GIT_WORKTREE_ADD_OPTIONS_INIT;
    ao.ref = ref;
    if (git_worktree_add(&wt, r, nt.name, nt.path, &ao)) {
        rc = git_fail(err, "cannot add the worktree '%s'", nt.path);
        goto out;
    }
    char *why = xasprintf(LOCK_PREFIX "%ld: task %s", (long)getpid(), task_id);
    if (git_worktree_lock(wt, why))
        log_warn("git: cannot lock the worktree %s: %s", nt.name,
                 git_error_last() ? git_error_last()->message : "unknown");
    free(why);
    char *dg = xasprintf("%s/.git", nt.path);
    nt.dotgit = fs_read_file(dg, 1 << 16, O_NOFOLLOW, NULL);
    free(dg);
    if (!nt.dotgit) {
        rc = s2_fail(err, S2_EIO, "io", "cannot read '%s/.git': %s", nt.path, strerror(errno));
        goto out;
    }
    if (g->owner != (uid_t)-1 && fs_chown_tree(nt.path, g->owner, g->group)) {
        rc = s2_fail(err, S2_EIO, "io", "cannot hand the worktree '%s' to the sandbox user: %s",
                     nt.path, strerror(errno));
        goto out;
    }
out:
    if (locked)
        pthread_mutex_unlock(&g->mu);
    if (rc && wt) {
        fs_rm_rf(nt.path);
        git_worktree_prune_options po = GIT_WORKTREE_PRUNE_OPTIONS_INIT;
        po.flags = GIT_WORKTREE_PRUNE_VALID | GIT_WORKTREE_PRUNE_LOCKED;
        git_worktree_prune(wt, &po);
    }
    git_worktree_free(wt);
    git_reference_free(ref);
    git_reference_free(old);
    git_commit_free(base);
    git_repository_free(r);
    free(full);
    if (rc) {
        gitws_task_release(&nt);
        return rc;
    }
    *t = nt;
    return 0;
}

/* The .git file of the worktree exactly as it was made (the command owned it). */
static int restore_dotgit(struct gitws_task *t, struct s2_error *err)
{
    int dfd = open(t->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return s2_fail(err, S2_EIO, "io", "worktree '%s': %s", t->path, strerror(errno));
    int rc = 0;
    fs_rm_rf_at(dfd, ".git");
    int fd = openat(dfd, ".git", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    size_t n = strlen(t->dotgit);
    if (fd < 0 || write(fd, t->dotgit, n) != (ssize_t)n)
        rc = s2_fail(err, S2_EIO, "io", "cannot restore '%s/.git': %s", t->path, strerror(errno));
    if (fd >= 0)
        close(fd);
    close(dfd);
    return rc;
}

static void one_line(struct buf *b, const char *s, size_t max)
{
    size_t start = b->len;
    for (; s && *s && b->len - start < max; s++)
        buf_addch(b, *s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s);
}

int gitws_commit(struct gitws *g, struct gitws_task *t, const struct gitws_commit_info *ci,
                 json_t **out, struct s2_error *err)
{
    git_repository *r = NULL, *wr = NULL;
    git_worktree *wt = NULL;
    git_reference *head = NULL, *nref = NULL;
    git_commit *parent = NULL;
    git_tree *ptree = NULL, *ntree = NULL;
    git_index *idx = NULL;
    git_signature *author = NULL, *committer = NULL;
    git_diff *diff = NULL;
    git_oid start, toid, coid;
    struct buf msg = BUF_INIT;
    buf_init(&msg, 0);
    char *full = xasprintf("refs/heads/%s", t->branch);
    size_t changed = 0;
    int rc = 0;
    if ((rc = restore_dotgit(t, err)) || (rc = open_repo(g, &r, err)))
        goto out;
    if (git_worktree_lookup(&wt, r, t->name) || git_repository_open_from_worktree(&wr, wt)) {
        rc = git_fail(err, "cannot open the worktree '%s'", t->name);
        goto out;
    }
    /* a newer attempt of the task detaches this worktree when it takes the branch */
    const char *target = NULL;
    if (git_reference_lookup(&head, wr, "HEAD") ||
        !(target = git_reference_symbolic_target(head)) || strcmp(target, full)) {
        rc = s2_fail(err, S2_ECONFLICT, "superseded",
                     "the branch '%s' was taken over by a newer attempt of the task", t->branch);
        goto out;
    }
    if (git_oid_fromstr(&start, t->base) || git_commit_lookup(&parent, r, &start) ||
        git_commit_tree(&ptree, parent)) {
        rc = git_fail(err, "cannot read the base commit %s", t->base);
        goto out;
    }
    /* the index is rebuilt from the base: the whole work tree as the command left it */
    if (git_repository_index(&idx, wr) || git_index_read_tree(idx, ptree) ||
        git_index_add_all(idx, NULL, GIT_INDEX_ADD_DEFAULT, NULL, NULL) ||
        git_index_update_all(idx, NULL, NULL, NULL) || git_index_write_tree(&toid, idx) ||
        git_index_write(idx)) {
        rc = git_fail(err, "cannot stage the work tree '%s'", t->path);
        goto out;
    }
    coid = start;
    if (git_oid_cmp(&toid, git_tree_id(ptree))) {
        if (git_tree_lookup(&ntree, r, &toid) ||
            git_diff_tree_to_tree(&diff, r, ptree, ntree, NULL)) {
            rc = git_fail(err, "cannot compare the work with %s", t->base);
            goto out;
        }
        changed = git_diff_num_deltas(diff);
        char *email = xasprintf("%s@s2.invalid", ci->agent);
        if (git_signature_now(&author, ci->agent, email) ||
            git_signature_now(&committer, "s2 worker", "worker@s2.invalid")) {
            free(email);
            rc = git_fail(err, "cannot make a signature for agent '%s'", ci->agent);
            goto out;
        }
        free(email);
        buf_adds(&msg, "s2: ");
        one_line(&msg, ci->title && *ci->title ? ci->title : ci->task, 60);
        buf_addf(&msg, " (task %s)\n\n", ci->task);
        buf_addf(&msg, "Task: %s\nSwarm: %s\nAgent: %s\nAttempt: %ld\n", ci->task, ci->swarm,
                 ci->agent, ci->attempt);
        if (ci->witness_seq)
            buf_addf(&msg, "Witness-Seq: %llu\n", (unsigned long long)ci->witness_seq);
        buf_addf(&msg, "Base: %s (%s)\n", t->base_ref, t->base);
        const git_commit *parents[1] = {parent};
        if (git_commit_create(&coid, r, NULL, author, committer, NULL, msg.ptr, ntree, 1,
                              parents)) {
            rc = git_fail(err, "cannot commit the work of task '%s'", ci->task);
            goto out;
        }
        char *log = xasprintf("s2 worker: task %s attempt %ld", ci->task, ci->attempt);
        int e = git_reference_create_matching(&nref, r, full, &coid, 1, &start, log);
        free(log);
        if (e == GIT_EMODIFIED) {
            rc = s2_fail(err, S2_ECONFLICT, "superseded",
                         "the branch '%s' moved while the task ran (a newer attempt?)", t->branch);
            goto out;
        }
        if (e) {
            rc = git_fail(err, "cannot move the branch '%s'", t->branch);
            goto out;
        }
    }
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &coid);
    *out = json_pack("{s:s,s:s,s:s,s:I}", "branch", t->branch, "commit", hex, "base", t->base,
                     "files_changed", (json_int_t)changed);
out:
    git_diff_free(diff);
    git_signature_free(author);
    git_signature_free(committer);
    git_index_free(idx);
    git_tree_free(ptree);
    git_tree_free(ntree);
    git_commit_free(parent);
    git_reference_free(head);
    git_reference_free(nref);
    git_repository_free(wr);
    git_worktree_free(wt);
    git_repository_free(r);
    buf_release(&msg);
    free(full);
    return rc;
}

/* Remove a worktree: its files (whatever modes the command left), then its record. */
static void drop(struct gitws *g, git_repository *r, const char *name, const char *path)
{
    fs_rm_rf(path);
    git_worktree *wt = NULL;
    if (git_worktree_lookup(&wt, r, name))
        return;
    git_worktree_prune_options po = GIT_WORKTREE_PRUNE_OPTIONS_INIT;
    po.flags = GIT_WORKTREE_PRUNE_VALID | GIT_WORKTREE_PRUNE_LOCKED;
    if (git_worktree_prune(wt, &po))
        log_warn("git: cannot prune the worktree %s of %s: %s", name, g->gitdir,
                 git_error_last() ? git_error_last()->message : "unknown");
    git_worktree_free(wt);
}

void gitws_remove(struct gitws *g, struct gitws_task *t)
{
    struct s2_error err = S2_ERROR_INIT;
    git_repository *r = NULL;
    if (open_repo(g, &r, &err)) {
        log_warn("git: %s", err.msg);
        s2_error_release(&err);
        return;
    }
    drop(g, r, t->name, t->path);
    git_repository_free(r);
}

struct kept {
    char *name;
    struct timespec mtime;
};

static int newest_first(const void *a, const void *b)
{
    const struct kept *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
    return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : x->mtime.tv_nsec > y->mtime.tv_nsec ? -1 : 0;
}

void gitws_keep(struct gitws *g, struct gitws_task *t)
{
    struct s2_error err = S2_ERROR_INIT;
    git_repository *r = NULL;
    git_worktree *wt = NULL;
    if (open_repo(g, &r, &err)) {
        log_warn("git: %s", err.msg);
        s2_error_release(&err);
        return;
    }
    if (!git_worktree_lookup(&wt, r, t->name)) {
        git_worktree_unlock(wt);
        git_worktree_free(wt);
    }
    if (utimensat(AT_FDCWD, t->path, NULL, AT_SYMLINK_NOFOLLOW))
        log_debug("git: touch %s: %s", t->path, strerror(errno));
    /* the kept ones: worktrees of this repository in our directory that no live worker
     * is using; the newest keep_failed stay */
    pthread_mutex_lock(&g->mu);
    DIR *d = opendir(g->dir);
    struct kept *k = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || git_worktree_lookup(&wt, r, de->d_name))
            continue;
        int busy = in_use(wt);
        git_worktree_free(wt);
        struct stat st;
        if (busy || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
            continue;
        k = xgrow(k, sizeof *k, n + 1, &cap);
        k[n++] = (struct kept){xstrdup(de->d_name), st.st_mtim};
    }
    if (d)
        closedir(d);
    qsort(k, n, sizeof *k, newest_first);
    for (size_t i = 0; i < n; i++) {
        if (i >= (size_t)g->keep_failed) {
            char *p = xasprintf("%s/%s", g->dir, k[i].name);
            log_info("git: pruning the kept worktree %s (more than %d kept)", k[i].name,
                     g->keep_failed);
            drop(g, r, k[i].name, p);
            free(p);
        }
        free(k[i].name);
    }
    free(k);
    pthread_mutex_unlock(&g->mu);
    git_repository_free(r);
}

char *gitws_task_base(json_t *task)
{
    const char *b = json_string_value(json_object_get(task, "base_ref"));
    if (b && *b)
        return xstrdup(b);
    const char *body = json_string_value(json_object_get(task, "body"));
    if (!body || strncmp(body, "---", 3) || (body[3] != '\n' && body[3] != '\r'))
        return NULL;
    const char *start = strchr(body, '\n') + 1, *end = NULL;
    for (const char *p = start; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, "---", 3) && (p[3] == '\n' || p[3] == '\r' || !p[3])) {
            end = p;
            break;
        }
    if (!end)
        return NULL;
    struct s2_error err = S2_ERROR_INIT;
    json_t *docs = yaml_load_documents(start, (size_t)(end - start), "task body", &err);
    char *out = NULL;
    json_t *doc = json_array_get(docs, 0);
    const char *v = json_string_value(json_object_get(doc, "base_ref"));
    if (v && *v)
        out = xstrdup(v);
    else if (!docs)
        log_warn("task body front matter: %s", err.msg);
    json_decref(docs);
    s2_error_release(&err);
    return out;
}
