/* cli_git.c: `s2 git import|export|notify|guard|hook`: the git workflow of the seed (phase
 * instructions in, STATUS.md out) without its polling. The repository work is gitbridge.c's;
 * this file talks to the server and prints. Hooks call notify and guard: they must never
 * hang a human's commit (timeouts) and must say clearly why they refuse one. */
#include "cli.h"
#include "gitbridge.h"
#include "model.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOOK_TIMEOUT_S 10

/* ---- server and token for commands a hook runs ---- */

/* $S2_SERVER and $S2_TOKEN win; else the repository's s2.server and s2.tokenFile (written
 * by `s2 git hook install`), so that hooks work from any shell. */
static void hook_env(const char *repo)
{
    if (!getenv("S2_SERVER") || !*getenv("S2_SERVER")) {
        char *srv = gitbridge_config(repo, "s2.server");
        if (srv)
            setenv("S2_SERVER", srv, 1);
        free(srv);
    }
    if (!getenv("S2_TOKEN") || !*getenv("S2_TOKEN")) {
        char *tf = gitbridge_config(repo, "s2.tokenFile");
        if (tf) {
            struct s2_error err = S2_ERROR_INIT;
            char *tok = cli_read_file(tf, 4096, &err);
            if (tok) {
                size_t n = strlen(tok);
                while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
                    tok[--n] = 0;
                setenv("S2_TOKEN", tok, 1);
                sodium_memzero(tok, strlen(tok));
                free(tok);
            } else {
                fprintf(stderr, "s2: warning: %s\n", err.msg);
            }
            s2_error_release(&err);
            free(tf);
        }
    }
}

static long timeout_of(const char *repo, long dflt)
{
    char *t = gitbridge_config(repo, "s2.timeout");
    long v = t ? strtol(t, NULL, 10) : 0;
    free(t);
    return v > 0 && v <= 3600 ? v : dflt;
}

static int connect_with_timeout(struct cli *c, long seconds)
{
    struct s2_error err = S2_ERROR_INIT;
    if (!c->connected) {
        if (client_init(&c->client, c->server, NULL, &err)) {
            int rc = cli_fail(&err);
            s2_error_release(&err);
            return rc;
        }
        c->connected = 1;
    }
    c->client.timeout_ms = seconds * 1000;
    return EXIT_OK;
}

/* ---- import ---- */

struct http_ops {
    struct cli *c;
    const char *scope; /* a swarm token's swarm, or NULL (admin) */
    int kind_task;     /* a lease token: it may create nothing */
};

static int http_lookup(void *ctx, const char *id, json_t **task, struct s2_error *err)
{
    struct http_ops *h = ctx;
    char *e = client_escape(id);
    char *path = xasprintf("/v1/tasks/%s", e);
    free(e);
    json_t *out = NULL;
    long status = 0;
    struct s2_error le = S2_ERROR_INIT;
    int rc = client_call(&h->c->client, "GET", path, NULL, &status, &out, &le);
    free(path);
    if (rc == 0) {
        *task = json_incref(json_object_get(out, "task"));
        json_decref(out);
        return *task ? 1 : 0;
    }
    if (le.kind == S2_ENOTFOUND) {
        s2_error_release(&le);
        return 0;
    }
    s2_fail(err, le.kind, le.code, "reading task '%s': %s", id, le.msg ? le.msg : "failed");
    s2_error_release(&le);
    return -1;
}

static int http_create(void *ctx, json_t *tasks, struct s2_error *err)
{
    struct http_ops *h = ctx;
    json_t *body = json_pack("{s:O}", "tasks", tasks), *out = NULL;
    long status = 0;
    int rc = client_call(&h->c->client, "POST", "/v1/tasks", body, &status, &out, err);
    json_decref(body);
    json_decref(out);
    return rc;
}

static int http_may(void *ctx, const char *swarm, struct s2_error *err)
{
    struct http_ops *h = ctx;
    if (h->kind_task)
        return s2_fail(err, S2_EFORBIDDEN, "forbidden", "a lease token cannot create tasks");
    if (h->scope && strcmp(h->scope, swarm))
        return s2_fail(err, S2_EFORBIDDEN, "forbidden",
                       "this token is scoped to swarm '%s': the instructions of swarm '%s' were "
                       "not imported",
                       h->scope, swarm);
    return 0;
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

/* A report of gitbridge_import (or of POST /v1/git/notify) for people; errors and conflicts
 * on stderr as "file:line: ...". Returns the number of problems. */
static size_t print_report(json_t *r, const char *prefix, int quiet)
{
    json_t *created = json_object_get(r, "created"), *unchanged = json_object_get(r, "unchanged"),
           *conflicts = json_object_get(r, "conflicts"), *errors = json_object_get(r, "errors");
    size_t i;
    json_t *v;
    const char *commit = cli_str(r, "commit");
    int dry = json_is_true(json_object_get(r, "dry_run"));
    if (!quiet || json_array_size(created)) {
        printf("%s%s %.12s: %lld instruction file%s (%lld imported): %zu task%s %s, %zu unchanged, "
               "%zu conflict%s, %zu error%s",
               prefix, cli_str(r, "ref"), commit, (long long)json_integer_value(json_object_get(r, "files")),
               plural((size_t)json_integer_value(json_object_get(r, "files"))),
               (long long)json_integer_value(json_object_get(r, "files_ok")),
               json_array_size(created), plural(json_array_size(created)),
               dry ? "to create" : "created", json_array_size(unchanged),
               json_array_size(conflicts), plural(json_array_size(conflicts)),
               json_array_size(errors), plural(json_array_size(errors)));
        json_t *ms = json_object_get(r, "ms"), *rt = json_object_get(r, "round_trip_ms");
        if (json_is_number(ms) && json_is_number(rt))
            printf(" (%.1f ms in s2, %.1f ms round trip)", json_number_value(ms),
                   json_number_value(rt));
        else if (json_is_number(ms))
            printf(" (%.1f ms)", json_number_value(ms));
        printf("\n");
        if (json_array_size(created) && json_array_size(created) <= 50) {
            printf("%s  %s:", prefix, dry ? "would create" : "created");
            json_array_foreach(created, i, v) printf(" %s", json_string_value(v));
            printf("\n");
        }
    }
    json_array_foreach(errors, i, v) {
        long long line = (long long)json_integer_value(json_object_get(v, "line"));
        if (line > 0)
            fprintf(stderr, "%serror: %s:%lld: %s\n", prefix, cli_str(v, "file"), line,
                    cli_str(v, "message"));
        else
            fprintf(stderr, "%serror: %s: %s\n", prefix, cli_str(v, "file"), cli_str(v, "message"));
    }
    json_array_foreach(conflicts, i, v) {
        char *f = json_dumps(json_object_get(v, "fields"), JSON_COMPACT | JSON_REAL_PRECISION(15));
        fprintf(stderr,
                "%sconflict: %s:%lld: task '%s' exists in s2 with another %s: left as it is (change "
                "it through the API or give the changed task a new id)\n",
                prefix, cli_str(v, "file"), (long long)json_integer_value(json_object_get(v, "line")),
                cli_str(v, "task"), f ? f : "[]");
        free(f);
    }
    return json_array_size(errors) + json_array_size(conflicts);
}

int cli_git_import(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *ref = NULL;
    int dry = 0, rc, have_in = 0;
    json_t *who = NULL, *report = NULL;
    struct gb_instructions in;
    struct s2_error err = S2_ERROR_INIT;
    static const struct option opts[] = {{"ref", required_argument, 0, 'r'},
                                         {"dry-run", no_argument, 0, 'n'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'r' : ref = optarg; break; case 'n' : dry = 1; break;);
    if (argc - optind != 1) {
        rc = cli_usage(&c, argc - optind ? "too many arguments" : "name the repository");
        goto out;
    }
    if (gitbridge_read(argv[optind], ref, &in, &err)) {
        rc = cli_fail(&err);
        goto out;
    }
    have_in = 1;
    if ((rc = cli_call(&c, "GET", "/v1/whoami", NULL, &who, NULL)))
        goto out;
    struct http_ops h = {&c, NULL, 0};
    if (!strcmp(cli_str(who, "kind"), "swarm"))
        h.scope = cli_str(who, "swarm");
    h.kind_task = !strcmp(cli_str(who, "kind"), "task") || !strcmp(cli_str(who, "kind"), "approver");
    struct gb_ops ops = {http_lookup, http_create, http_may, &h};
    if (gitbridge_import(&in, &ops, dry, &report, &err)) {
        rc = cli_fail(&err);
        goto out;
    }
    if (c.json)
        cli_print_json(report);
    size_t problems = c.json ? json_array_size(json_object_get(report, "errors")) +
                                   json_array_size(json_object_get(report, "conflicts"))
                             : print_report(report, "", 0);
    rc = problems ? EXIT_FAIL : EXIT_OK;
out:
    s2_error_release(&err);
    if (have_in)
        gitbridge_instructions_release(&in);
    json_decref(who);
    json_decref(report);
    cli_done(&c);
    return rc;
}

/* ---- export ---- */

static int export_one(struct cli *c, const char *repo, const char *swarm, const char *branch,
                      json_t *results)
{
    char *md = NULL, *commit = NULL, *msg = NULL, *br = NULL;
    json_t *meta = NULL;
    struct s2_error err = S2_ERROR_INIT;
    int changed = 0, rc = cli_status_md(c, swarm, &md, &meta);
    if (rc) {
        json_array_append_new(results, json_pack("{s:s,s:s}", "swarm", swarm, "error",
                                                 "cannot read its status"));
        goto out;
    }
    br = branch && *branch ? xstrdup(branch) : xasprintf("s2/%s", swarm);
    json_t *ts = json_object_get(meta, "tree_size");
    {
        struct buf m = BUF_INIT;
        long long seq = (long long)json_integer_value(json_object_get(meta, "witness_seq"));
        buf_addf(&m, "STATUS.md of swarm %s: %s\n\nReflects witness entries 1..%lld", swarm,
                 cli_str(meta, "status"), seq);
        if (json_is_integer(ts))
            buf_addf(&m, ", covered by the signed checkpoint of tree size %lld (root %s)",
                     (long long)json_integer_value(ts), cli_str(meta, "root_hash"));
        buf_adds(&m, ".\n");
        if (json_is_integer(ts))
            buf_addf(&m, "Check it: s2 witness prove %lld --size %lld\n", seq > 0 ? seq : 1,
                     (long long)json_integer_value(ts));
        buf_addf(&m, "\nS2-Witness-Seq: %lld\n", seq);
        if (json_is_integer(ts))
            buf_addf(&m, "S2-Checkpoint: %lld %s\n", (long long)json_integer_value(ts),
                     cli_str(meta, "root_hash"));
        msg = buf_detach(&m, NULL);
    }
    if (gitbridge_commit_file(repo, br, "STATUS.md", md, strlen(md), msg, &commit, &changed,
                              &err)) {
        fprintf(stderr, "error: swarm %s: %s\n", swarm, err.msg);
        json_array_append_new(results, json_pack("{s:s,s:s,s:s}", "swarm", swarm, "branch", br,
                                                 "error", err.msg));
        rc = EXIT_FAIL;
        goto out;
    }
    json_array_append_new(results,
                          json_pack("{s:s,s:s,s:s,s:b,s:O,s:O,s:O}", "swarm", swarm, "branch", br,
                                    "commit", commit, "changed", changed, "witness_seq",
                                    json_object_get(meta, "witness_seq"), "tree_size", ts,
                                    "root_hash", json_object_get(meta, "root_hash")));
out:
    s2_error_release(&err);
    free(md);
    free(commit);
    free(msg);
    free(br);
    json_decref(meta);
    return rc;
}

int cli_git_export(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *swarm = NULL;
    int rc, failed = 0;
    json_t *results = json_array(), *page = NULL;
    char *repo = NULL;
    static const struct option opts[] = {{"swarm", required_argument, 0, 's'}, CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 's' : swarm = optarg; break;);
    if (argc - optind != 1) {
        rc = cli_usage(&c, argc - optind ? "too many arguments" : "name the repository");
        goto out;
    }
    struct s2_error err = S2_ERROR_INIT;
    repo = gitbridge_git_dir(argv[optind], &err);
    if (!repo) {
        rc = cli_fail(&err);
        s2_error_release(&err);
        goto out;
    }
    if (swarm) {
        char *e = client_escape(swarm), *path = xasprintf("/v1/swarms/%s", e);
        free(e);
        rc = cli_call(&c, "GET", path, NULL, &page, NULL);
        free(path);
        if (rc)
            goto out;
        json_t *sw = json_object_get(page, "swarm");
        failed += export_one(&c, repo, swarm, json_string_value(json_object_get(sw, "branch")),
                             results) != EXIT_OK;
    } else {
        char *cursor = NULL;
        for (;;) {
            char *e = cursor ? client_escape(cursor) : NULL;
            char *path = xasprintf("/v1/swarms?limit=1000%s%s", e ? "&after=" : "", e ? e : "");
            free(e);
            json_decref(page);
            page = NULL;
            rc = cli_call(&c, "GET", path, NULL, &page, NULL);
            free(path);
            if (rc) {
                free(cursor);
                goto out;
            }
            size_t i;
            json_t *sw;
            json_array_foreach(json_object_get(page, "swarms"), i, sw)
                failed += export_one(&c, repo, cli_str(sw, "id"),
                                     json_string_value(json_object_get(sw, "branch")),
                                     results) != EXIT_OK;
            free(cursor);
            cursor = NULL;
            json_t *next = json_object_get(page, "next");
            if (!json_is_string(next))
                break;
            cursor = xstrdup(json_string_value(next));
        }
    }
    if (c.json) {
        json_t *o = json_pack("{s:s,s:O}", "repo", repo, "swarms", results);
        cli_print_json(o);
        json_decref(o);
    } else {
        size_t i;
        json_t *r;
        json_array_foreach(results, i, r) {
            if (json_object_get(r, "error"))
                continue;
            printf("%s -> %s: %s %.12s (witness seq %lld)\n", cli_str(r, "swarm"),
                   cli_str(r, "branch"),
                   json_is_true(json_object_get(r, "changed")) ? "committed" : "unchanged at",
                   cli_str(r, "commit"),
                   (long long)json_integer_value(json_object_get(r, "witness_seq")));
        }
    }
    rc = failed ? EXIT_FAIL : EXIT_OK;
out:
    free(repo);
    json_decref(page);
    json_decref(results);
    cli_done(&c);
    return rc;
}

/* ---- notify (post-commit, post-merge, post-receive) ---- */

/* "main" and "refs/heads/main" name the same branch */
static int same_ref(const char *a, const char *b)
{
    if (!strncmp(a, "refs/heads/", 11))
        a += 11;
    if (!strncmp(b, "refs/heads/", 11))
        b += 11;
    return !strcmp(a, b);
}

static int notify_one(struct cli *c, const char *gitdir, const char *ref, int hook, int *problems)
{
    json_t *body = json_pack("{s:s,s:s}", "repo", gitdir, "ref", ref), *out = NULL;
    int64_t t0 = clock_mono_ns();
    struct s2_error err = S2_ERROR_INIT;
    int rc = EXIT_OK;
    if (client_call(&c->client, "POST", "/v1/git/notify", body, NULL, &out, &err)) {
        if (hook)
            fprintf(stderr,
                    "s2: warning: could not tell s2 about %s: %s\n"
                    "s2: the commit stands; run `s2 git import %s --ref %s` once s2 is back\n",
                    ref, err.msg, gitdir, ref);
        else
            cli_fail(&err);
        rc = EXIT_FAIL;
    } else {
        json_object_set_new(out, "round_trip_ms", json_real((clock_mono_ns() - t0) / 1e6));
        if (c->json)
            cli_print_json(out);
        else
            *problems += (int)print_report(out, hook ? "s2: " : "", hook);
    }
    s2_error_release(&err);
    json_decref(body);
    json_decref(out);
    return rc;
}

int cli_git_notify(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *ref = NULL, *hook = NULL;
    long long tmo = 0;
    int rc, problems = 0;
    char *gitdir = NULL, *want = NULL, *head = NULL, *line = NULL;
    static const struct option opts[] = {{"ref", required_argument, 0, 'r'},
                                         {"hook", required_argument, 0, 'k'},
                                         {"timeout", required_argument, 0, 't'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'r' : ref = optarg; break; case 'k' : hook = optarg;
                break; case 't' : USAGE_IF(cli_int(&c, "--timeout", optarg, 1, 3600, &tmo)); break;);
    if (argc - optind > 1) {
        rc = cli_usage(&c, "too many arguments");
        goto out;
    }
    if (hook && strcmp(hook, "post-commit") && strcmp(hook, "post-merge") &&
        strcmp(hook, "post-receive")) {
        rc = cli_usage(&c, "--hook must be post-commit, post-merge or post-receive");
        goto out;
    }
    const char *where = optind < argc ? argv[optind] : NULL; /* NULL: as git tells a hook */
    struct s2_error err = S2_ERROR_INIT;
    gitdir = gitbridge_git_dir(where, &err);
    if (!gitdir) {
        rc = hook ? EXIT_OK : cli_fail(&err);
        if (hook)
            fprintf(stderr, "s2: warning: %s\n", err.msg);
        s2_error_release(&err);
        goto out;
    }
    hook_env(gitdir);
    if ((rc = connect_with_timeout(&c, tmo ? tmo : timeout_of(gitdir, HOOK_TIMEOUT_S)))) {
        if (hook)
            rc = EXIT_OK;
        goto out;
    }
    want = gitbridge_config(gitdir, "s2.ref"); /* the branch that carries instructions */
    if (hook && !strcmp(hook, "post-receive")) {
        /* "<old> <new> <ref>" per updated ref */
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) > 0) {
            char oldv[64], newv[64], name[1024];
            if (sscanf(line, "%63s %63s %1023s", oldv, newv, name) != 3)
                continue;
            if (strspn(newv, "0") == strlen(newv)) /* deleted */
                continue;
            if (want ? !same_ref(want, name) : strncmp(name, "refs/heads/", 11))
                continue;
            if (notify_one(&c, gitdir, name, 1, &problems))
                break;
        }
        rc = EXIT_OK;
        goto out;
    }
    if (!ref) {
        head = gitbridge_head_ref(gitdir);
        if (want && (!head || !same_ref(want, head))) {
            if (!hook)
                printf("HEAD is not on %s (git config s2.ref): nothing to import\n", want);
            rc = EXIT_OK;
            goto out;
        }
        ref = "HEAD";
    }
    rc = notify_one(&c, gitdir, ref, hook != NULL, &problems);
    if (hook)
        rc = EXIT_OK; /* a post-* hook cannot undo the commit: it only reports */
    else if (!rc && problems)
        rc = EXIT_FAIL;
out:
    free(line);
    free(gitdir);
    free(want);
    free(head);
    cli_done(&c);
    return rc;
}

/* ---- guard (pre-commit) ---- */

/* A path the server accepts for the check: the path itself, else (too long, odd bytes) its
 * longest acceptable directory, which overlaps every lease below it: stricter, never laxer. */
static char *checkable(const char *p)
{
    struct s2_error err = S2_ERROR_INIT;
    if (!model_check_path(p, "path", &err))
        return xstrdup(p);
    s2_error_release(&err);
    char *d = xstrdup(p);
    for (;;) {
        char *slash = strrchr(d, '/');
        if (!slash)
            break;
        *slash = 0;
        if (!model_check_path(d, "path", &err))
            return d;
        s2_error_release(&err);
    }
    free(d);
    return xstrdup("**"); /* nothing of it is acceptable: as if it touched everything */
}

static int guard_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int guard_refuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("s2: commit refused: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

int cli_git_guard(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    long long tmo = 0;
    int rc;
    char *gitdir = NULL, *fc = NULL;
    struct strvec paths = STRVEC_INIT;
    json_t *conflicts = json_array();
    static const struct option opts[] = {{"timeout", required_argument, 0, 't'}, CLI_COMMON_OPTS, {0}};
    CLI_OPTIONS(c, argc, argv, opts,
                case 't' : USAGE_IF(cli_int(&c, "--timeout", optarg, 1, 3600, &tmo)); break;);
    if (argc - optind > 1) {
        rc = cli_usage(&c, "too many arguments");
        goto out;
    }
    const char *where = optind < argc ? argv[optind] : NULL;
    const char *lease = getenv("S2_LEASE");
    if (lease && !*lease)
        lease = NULL;
    struct s2_error err = S2_ERROR_INIT;
    gitdir = gitbridge_git_dir(where, &err);
    if (!gitdir || gitbridge_staged_paths(where, &paths, &err)) {
        rc = guard_refuse("%s", err.msg);
        s2_error_release(&err);
        goto out;
    }
    if (!paths.n) {
        rc = EXIT_OK;
        goto out;
    }
    hook_env(gitdir);
    fc = gitbridge_config(gitdir, "s2.guardFailClosed");
    /* an agent (it holds a lease) cannot prove its lease without the server: refuse; a human
     * is never held up by an unreachable server (unless s2.guardFailClosed says so) */
    int fail_closed = lease || (fc && (!strcmp(fc, "true") || !strcmp(fc, "1")));
    if (lease && (!getenv("S2_TOKEN") || !*getenv("S2_TOKEN")))
        setenv("S2_TOKEN", lease, 1); /* the lease is a credential for its own task */
    if (!getenv("S2_TOKEN") || !*getenv("S2_TOKEN")) {
        if (fail_closed) {
            rc = guard_refuse("no s2 token to check path leases with (set S2_TOKEN, or git "
                              "config s2.tokenFile)");
        } else {
            fprintf(stderr, "s2: warning: no s2 token (S2_TOKEN or git config s2.tokenFile): "
                            "path leases not checked\n");
            rc = EXIT_OK;
        }
        goto out;
    }
    if ((rc = connect_with_timeout(&c, tmo ? tmo : timeout_of(gitdir, 5))))
        goto out;
    int lease_valid = 1;
    const char *lease_task = NULL;
    json_t *outs = json_array();
    /* in chunks: the server takes up to 100000 paths a request */
    for (size_t off = 0; off < paths.n; off += 10000) {
        json_t *list = json_array();
        for (size_t i = off; i < paths.n && i < off + 10000; i++) {
            char *p = checkable(paths.v[i]);
            json_array_append_new(list, json_string(p));
            free(p);
        }
        json_t *body = json_pack("{s:o}", "paths", list), *out = NULL;
        if (lease)
            json_object_set_new(body, "lease", json_string(lease));
        rc = client_call(&c.client, "POST", "/v1/paths/check", body, NULL, &out, &err);
        json_decref(body);
        if (rc) {
            if (err.kind == S2_EUNAUTH && lease && !strcmp(getenv("S2_TOKEN"), lease)) {
                rc = guard_refuse("your lease (S2_LEASE) is no longer live: it expired, was "
                                  "finished or was taken over. Fencing refuses stale work: claim "
                                  "the task again and redo the change on its current state");
            } else if (err.kind == S2_EUNAVAIL || err.kind == S2_EINTERNAL) {
                if (fail_closed)
                    rc = guard_refuse("%s\ns2: without s2 the lease cannot be checked "
                                      "(git commit --no-verify skips this check)",
                                      err.msg);
                else {
                    fprintf(stderr, "s2: warning: %s: path leases not checked\n", err.msg);
                    rc = EXIT_OK;
                }
            } else {
                rc = guard_refuse("%s", err.msg);
            }
            s2_error_release(&err);
            json_decref(outs);
            goto out;
        }
        json_t *l = json_object_get(out, "lease");
        if (lease && l && !json_is_true(json_object_get(l, "valid")))
            lease_valid = 0;
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(out, "conflicts"), i, v)
            json_array_append(conflicts, v);
        json_array_append_new(outs, out);
    }
    if (lease && lease_valid) {
        json_t *l = json_object_get(json_array_get(outs, 0), "lease");
        lease_task = json_string_value(json_object_get(l, "task"));
    }
    if (lease && !lease_valid) {
        rc = guard_refuse("your lease (S2_LEASE) is no longer live: it expired, was finished "
                          "or was taken over. Fencing refuses stale work: claim the task again "
                          "and redo the change on its current state");
        json_decref(outs);
        goto out;
    }
    if (json_array_size(conflicts)) {
        size_t i;
        json_t *v;
        long long now = clock_wall_ms();
        fprintf(stderr, "s2: commit refused: it touches path%s leased to another agent's live "
                        "claim:\n",
                json_array_size(conflicts) == 1 ? "" : "s");
        json_array_foreach(conflicts, i, v) {
            if (i == 20) {
                fprintf(stderr, "  ... and %zu more\n", json_array_size(conflicts) - 20);
                break;
            }
            char in[48];
            cli_fmt_in((long long)json_integer_value(json_object_get(v, "expires_at")) - now, in,
                       sizeof in);
            const char *agent = cli_str(v, "agent");
            fprintf(stderr, "  %s: held by agent %s (swarm %s) for task %s, lease %s %s (glob %s)\n",
                    cli_str(v, "path"), *agent ? agent : "?", cli_str(v, "swarm"),
                    cli_str(v, "task"), in[0] == 'i' ? "ends" : "ended", in, cli_str(v, "glob"));
        }
        fprintf(stderr, "s2: wait for that task to finish%s\n",
                lease ? "" : ", or (a human, knowingly) git commit --no-verify");
        rc = EXIT_FAIL;
        json_decref(outs);
        goto out;
    }
    if (!c.json && lease_task && getenv("S2_GUARD_VERBOSE"))
        fprintf(stderr, "s2: lease on %s is live; %zu path%s free\n", lease_task, paths.n,
                plural(paths.n));
    json_decref(outs);
    rc = EXIT_OK;
out:
    strvec_release(&paths);
    json_decref(conflicts);
    free(gitdir);
    free(fc);
    cli_done(&c);
    return rc;
}

/* ---- hook install / uninstall ---- */

int cli_git_hook(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct gb_hook_opts o = {0};
    int rc;
    json_t *report = NULL;
    char *self = NULL, *tokfile = NULL;
    static const struct option opts[] = {{"ref", required_argument, 0, 'r'},
                                         {"token-file", required_argument, 0, 'T'},
                                         {"force", no_argument, 0, 'f'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 'r' : o.ref = optarg; break;
                case 'T' : o.token_file = optarg; break; case 'f' : o.force = 1; break;);
    if (argc - optind != 2 || (strcmp(argv[optind], "install") && strcmp(argv[optind], "uninstall"))) {
        rc = cli_usage(&c, "say install or uninstall, and name the repository");
        goto out;
    }
    const char *repo = argv[optind + 1];
    struct s2_error err = S2_ERROR_INIT;
    if (!strcmp(argv[optind], "uninstall")) {
        rc = gitbridge_hooks_uninstall(repo, &report, &err);
    } else {
        self = realpath("/proc/self/exe", NULL);
        o.s2_path = self ? self : "s2";
        o.server = c.server ? c.server : getenv("S2_SERVER");
        if (o.server && !*o.server)
            o.server = NULL;
        if (o.token_file) {
            tokfile = realpath(o.token_file, NULL);
            struct stat st;
            if (!tokfile || stat(tokfile, &st)) {
                rc = cli_failf("token file '%s': %s", o.token_file, strerror(errno));
                goto out;
            }
            if (st.st_mode & 077)
                fprintf(stderr, "warning: %s is readable by others (chmod 600 it)\n", tokfile);
            o.token_file = tokfile;
        }
        if (o.ref && !*o.ref) {
            rc = cli_usage(&c, "--ref needs a branch name");
            goto out;
        }
        rc = gitbridge_hooks_install(repo, &o, &report, &err);
    }
    if (rc) {
        rc = cli_fail(&err);
        s2_error_release(&err);
        goto out;
    }
    if (c.json) {
        cli_print_json(report);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(report, "hooks"), i, v)
            printf("%s: %s\n", cli_str(v, "hook"), cli_str(v, "action"));
        if (!json_array_size(json_object_get(report, "hooks")))
            printf("no s2 hooks in %s\n", cli_str(report, "hooks_dir"));
        if (!strcmp(argv[optind], "install") && !o.server)
            printf("note: no server recorded: the hooks use $S2_SERVER (or the default) when "
                   "they run\n");
    }
    rc = EXIT_OK;
out:
    free(self);
    free(tokfile);
    json_decref(report);
    cli_done(&c);
    return rc;
}
