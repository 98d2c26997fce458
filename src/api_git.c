/* api_git.c: POST /v1/git/notify: a git hook says that a repository changed, and its
 * instruction files are imported at once (docs/GIT.md). The repository is read on the
 * server's worker thread (http_defer), never on the event loop; tasks are created through
 * the engine like any POST /v1/tasks, all or nothing per file, never overwritten. */
#include "api.h"
#include "gitbridge.h"
#include "json.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NOTIFY_PATH_MAX 4096
#define NOTIFY_REF_MAX 256

struct notify {
    char *repo, *ref;
    struct principal who; /* who.swarm and who.name are borrowed and live forever */
    char trace[WITNESS_TRACE_MAX + 1];
    struct engine *engine;
    struct store_reader *rd;
    int64_t t0;
    /* the outcome */
    json_t *report;
    struct s2_error err;
    /* waiting for the engine (worker thread) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int cmd_done;
};

static void notify_free(void *arg)
{
    struct notify *n = arg;
    free(n->repo);
    free(n->ref);
    json_decref(n->report);
    s2_error_release(&n->err);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

static int op_lookup(void *ctx, const char *id, json_t **task, struct s2_error *err)
{
    struct notify *n = ctx;
    struct task_row row;
    int found = store_task_get(n->rd, id, &row, err);
    if (found <= 0)
        return found;
    *task = api_task_json(&row);
    task_row_release(&row);
    return 1;
}

static int op_may(void *ctx, const char *swarm, struct s2_error *err)
{
    struct notify *n = ctx;
    if (n->who.kind == PRIN_ADMIN)
        return 0;
    if (n->who.kind == PRIN_SWARM && n->who.swarm && !strcmp(n->who.swarm, swarm))
        return 0;
    return s2_fail(err, S2_EFORBIDDEN, "forbidden",
                   "this token is scoped to swarm '%s': the instructions of swarm '%s' were not "
                   "imported",
                   n->who.swarm ? n->who.swarm : "?", swarm);
}

/* engine thread: wake the worker waiting for this command */
static void cmd_finished(struct cmd *c)
{
    struct notify *n = c->ctx;
    pthread_mutex_lock(&n->mu);
    n->cmd_done = 1;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static int op_create(void *ctx, json_t *tasks, struct s2_error *err)
{
    struct notify *n = ctx;
    size_t cnt = json_array_size(tasks);
    struct cmd *c = cmd_new(CMD_TASK_ADD);
    c->in.tasks.v = xcalloc(cnt, sizeof *c->in.tasks.v);
    c->in.tasks.batch = 1;
    for (size_t i = 0; i < cnt; i++) {
        char what[32];
        snprintf(what, sizeof what, "tasks[%zu]", i);
        task_spec_init(&c->in.tasks.v[i]);
        c->in.tasks.n = i + 1;
        if (api_parse_task(json_array_get(tasks, i), &c->in.tasks.v[i], NULL, what, err)) {
            cmd_free(c);
            return S2_EINVAL;
        }
    }
    c->who = n->who;
    memcpy(c->trace_id, n->trace, sizeof c->trace_id);
    c->done = cmd_finished;
    c->ctx = n;
    n->cmd_done = 0;
    engine_submit(n->engine, c);
    pthread_mutex_lock(&n->mu);
    while (!n->cmd_done)
        pthread_cond_wait(&n->cv, &n->mu);
    pthread_mutex_unlock(&n->mu);
    int rc = 0;
    if (c->err.kind)
        rc = s2_fail(err, c->err.kind, c->err.code, "%s", c->err.msg ? c->err.msg : "refused");
    cmd_free(c);
    return rc;
}

/* worker thread: read the repository, compare, create */
static void notify_work(void *arg)
{
    struct notify *n = arg;
    struct gb_instructions in;
    if (store_reader_open(&n->rd, engine_db_path(n->engine), &n->err))
        return;
    if (gitbridge_check_repository(n->repo, &n->err) == 0 &&
        gitbridge_read(n->repo, n->ref, &in, &n->err) == 0) {
        struct gb_ops ops = {op_lookup, op_create, op_may, n};
        gitbridge_import(&in, &ops, 0, &n->report, &n->err);
        gitbridge_instructions_release(&in);
    }
    store_reader_close(n->rd);
    n->rd = NULL;
}

/* event loop: reply */
static void notify_after(struct request *r, void *arg)
{
    struct notify *n = arg;
    if (!n->report) {
        http_reply_error(r, &n->err);
    } else {
        json_t *o = n->report;
        n->report = NULL;
        json_object_set_new(o, "ms", json_real((clock_mono_ns() - n->t0) / 1e6));
        log_info("git notify %s %s: %zu created, %zu unchanged, %zu conflicts, %zu errors",
                 n->repo, n->ref, json_array_size(json_object_get(o, "created")),
                 json_array_size(json_object_get(o, "unchanged")),
                 json_array_size(json_object_get(o, "conflicts")),
                 json_array_size(json_object_get(o, "errors")));
        http_reply_json(r, 200, o);
    }
    notify_free(n);
}

void api_git_notify(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    const struct principal *who = http_who(r);
    if (who->kind != PRIN_ADMIN && who->kind != PRIN_SWARM) {
        http_reply_fail(r, S2_EFORBIDDEN, "forbidden",
                        "git notifications need the admin token or a swarm token");
        return;
    }
    json_t *o = http_body_object(r, &err);
    static const char *const fields[] = {"repo", "ref", NULL};
    char *repo = NULL, *ref = NULL;
    if (!o || json_only(o, fields, "", &err) || json_str(o, "repo", 1, &repo, "", &err) ||
        json_str(o, "ref", 0, &ref, "", &err))
        goto fail;
    if (strlen(repo) != json_string_length(json_object_get(o, "repo")) || repo[0] != '/' ||
        strlen(repo) > NOTIFY_PATH_MAX) {
        s2_fail(&err, S2_EINVAL, "invalid_field",
                "field 'repo' must be the absolute path of a repository on the server's host "
                "(at most %d bytes)",
                NOTIFY_PATH_MAX);
        goto fail;
    }
    if (ref && (!*ref || strlen(ref) != json_string_length(json_object_get(o, "ref")) ||
                strlen(ref) > NOTIFY_REF_MAX ||
                model_check_text(ref, NOTIFY_REF_MAX, 0, "field 'ref'", &err))) {
        if (!err.kind)
            s2_fail(&err, S2_EINVAL, "invalid_field", "field 'ref' must name a ref (1..%d bytes)",
                    NOTIFY_REF_MAX);
        goto fail;
    }
    json_decref(o);
    struct notify *n = xcalloc(1, sizeof *n);
    n->repo = repo;
    n->ref = ref ? ref : xstrdup("HEAD");
    n->who = *who;
    n->engine = http_engine(r);
    n->t0 = clock_mono_ns();
    if (witness_trace_from_headers(http_header(r, "S2-Trace-Id"), http_header(r, "traceparent"),
                                   n->trace))
        n->trace[0] = 0;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    http_defer(r, notify_work, n, notify_after, notify_free);
    return;
fail:
    free(repo);
    free(ref);
    json_decref(o);
    http_reply_error(r, &err);
    s2_error_release(&err);
}
