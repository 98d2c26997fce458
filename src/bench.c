/* bench.c: `s2 bench`, a load generator against a running server. It measures what the
 * peers' run_all.sh measures (claim+complete loops, a blocked claimer's push latency), with
 * the same client-side clock, and counts duplicates itself: every task carries its index in
 * its id, and each claim increments that task's counter. */
#include "cli.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILL_BATCH 5000

struct lat {
    int64_t *v;
    size_t n, cap;
};

static void lat_add(struct lat *l, int64_t ns)
{
    l->v = xgrow(l->v, sizeof *l->v, l->n + 1, &l->cap);
    l->v[l->n++] = ns;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(struct lat *l, double p)
{
    if (!l->n)
        return 0;
    size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
    return (double)l->v[i] / 1e6;
}

struct bench {
    const char *server;
    char *nodes[16]; /* --nodes: claim loops spread over these (default: server) */
    int nnodes;
    const char *prefix;
    long long tasks, clients, swarms, push, seconds;
    long long agents, caps; /* agents (>= clients) and the capability vocabulary (0: none) */
    _Atomic uint8_t *seen;
    atomic_long done, errors, finished;
    int64_t deadline_ns;
};

struct worker {
    struct bench *b;
    int index;
    struct lat claim, op;
    int64_t last_ns;
};

static long task_index(const struct bench *b, const char *id)
{
    const char *p = strrchr(id, 't');
    size_t pl = strlen(b->prefix);
    if (strncmp(id, b->prefix, pl) || !p)
        return -1;
    char *end;
    long v = strtol(p + 1, &end, 10);
    return *end || v < 0 || v >= b->tasks ? -1 : v;
}

static void *claim_loop(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    struct client c;
    struct s2_error err = S2_ERROR_INIT;
    if (client_init(&c, b->nnodes ? b->nodes[w->index % b->nnodes] : b->server, NULL, &err)) {
        atomic_fetch_add(&b->errors, 1);
        s2_error_release(&err);
        return NULL;
    }
    /* this thread's agents: every clients-th one, taken in turn until each has nothing */
    long long mine = 0;
    long long *ags = xcalloc((size_t)(b->agents / b->clients + 1), sizeof *ags);
    for (long long a = w->index; a < b->agents; a += b->clients)
        ags[mine++] = a;
    long long turn = 0;
    long errors = 0;
    while (mine && clock_mono_ns() < b->deadline_ns && errors < 100) {
        long long slot = turn++ % mine;
        char agent[160];
        snprintf(agent, sizeof agent, "%s-a%lld", b->prefix, ags[slot]);
        json_t *claim = json_pack("{s:s,s:i}", "agent", agent, "wait_ms", 0);
        int64_t t0 = clock_mono_ns();
        json_t *out = NULL;
        long status = 0;
        int rc = client_call(&c, "POST", "/v1/claim", claim, &status, &out, &err);
        json_decref(claim);
        if (rc) {
            errors++;
            s2_error_release(&err);
            continue;
        }
        int64_t t1 = clock_mono_ns();
        if (status == 204 || !out) {
            ags[slot] = ags[--mine]; /* nothing left for this agent */
            continue;
        }
        const char *id = json_string_value(json_object_get(json_object_get(out, "task"), "id"));
        const char *lease =
            json_string_value(json_object_get(json_object_get(out, "lease"), "token"));
        long ix = id ? task_index(b, id) : -1;
        if (ix >= 0)
            atomic_fetch_add(&b->seen[ix], 1);
        char *path = xasprintf("/v1/tasks/%s/done", id ? id : "?");
        json_t *body = json_pack("{s:s}", "lease", lease ? lease : "");
        json_t *done = NULL;
        if (client_call(&c, "POST", path, body, &status, &done, &err)) {
            errors++;
            s2_error_release(&err);
        } else {
            int64_t t2 = clock_mono_ns();
            lat_add(&w->claim, t1 - t0);
            lat_add(&w->op, t2 - t0);
            w->last_ns = t2;
            atomic_fetch_add(&b->done, 1);
        }
        free(path);
        json_decref(body);
        json_decref(done);
        json_decref(out);
    }
    atomic_fetch_add(&b->errors, errors);
    atomic_fetch_add(&b->finished, 1);
    free(ags);
    client_release(&c);
    return NULL;
}

/* push: a claimer waits; the producer creates one task at a time */
struct push {
    struct bench *b;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long handled;
    int ready, stop;
    _Atomic int64_t stamp;
    struct lat lat;
    long errors;
};

static void *push_consumer(void *arg)
{
    struct push *p = arg;
    struct client c;
    struct s2_error err = S2_ERROR_INIT;
    char agent[160];
    snprintf(agent, sizeof agent, "%s-push-a", p->b->prefix);
    /* with several nodes, the claimer waits on another node than the one the producer
     * creates tasks through: the push crosses nodes */
    const char *at = p->b->nnodes > 1 ? p->b->nodes[1] : p->b->server;
    int ok = client_init(&c, at, NULL, &err) == 0;
    json_t *claim = json_pack("{s:s,s:i}", "agent", agent, "wait_ms", 2000);
    pthread_mutex_lock(&p->mu);
    p->ready = ok ? 1 : -1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    while (ok) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        json_t *out = NULL;
        long status;
        if (client_call(&c, "POST", "/v1/claim", claim, &status, &out, &err)) {
            s2_error_release(&err);
            if (++p->errors > 20)
                break;
            continue;
        }
        int64_t t = clock_mono_ns();
        if (status == 204 || !out)
            continue;
        lat_add(&p->lat, t - atomic_load(&p->stamp));
        const char *id = json_string_value(json_object_get(json_object_get(out, "task"), "id"));
        char *path = xasprintf("/v1/tasks/%s/done", id ? id : "?");
        json_t *body = json_pack("{s:O}", "lease", json_object_get(json_object_get(out, "lease"),
                                                                   "token"));
        json_t *d = NULL;
        if (client_call(&c, "POST", path, body, &status, &d, &err)) {
            s2_error_release(&err);
            p->errors++;
        }
        json_decref(d);
        json_decref(body);
        free(path);
        json_decref(out);
        pthread_mutex_lock(&p->mu);
        p->handled++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    json_decref(claim);
    if (ok)
        client_release(&c);
    pthread_mutex_lock(&p->mu);
    p->ready = -1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int run_push(struct bench *b, struct client *ctl, struct push *p)
{
    struct s2_error err = S2_ERROR_INIT;
    char swarm[160], agent[160];
    snprintf(swarm, sizeof swarm, "%s-push", b->prefix);
    snprintf(agent, sizeof agent, "%s-push-a", b->prefix);
    json_t *s = json_pack("{s:s}", "id", swarm), *a = json_pack("{s:s,s:s}", "id", agent,
                                                                 "swarm", swarm);
    int rc = client_call(ctl, "POST", "/v1/swarms", s, NULL, NULL, &err) ||
             client_call(ctl, "POST", "/v1/agents", a, NULL, NULL, &err);
    json_decref(s);
    json_decref(a);
    if (rc) {
        cli_fail(&err);
        s2_error_release(&err);
        return -1;
    }
    p->b = b;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_t th;
    pthread_create(&th, NULL, push_consumer, p);
    pthread_mutex_lock(&p->mu);
    while (!p->ready)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    unsigned seed = (unsigned)getpid();
    for (long i = 0; i < b->push && p->ready > 0; i++) {
        /* let the consumer get back into its waiting claim, as the peers' loop does */
        struct timespec ts = {0, 1000000 + (long)(rand_r(&seed) % 1000) * 1000};
        nanosleep(&ts, NULL);
        char id[200];
        snprintf(id, sizeof id, "%s-push-%ld", b->prefix, i);
        json_t *t = json_pack("{s:s,s:s,s:s}", "id", id, "swarm", swarm, "title", "push");
        atomic_store(&p->stamp, clock_mono_ns());
        if (client_call(ctl, "POST", "/v1/tasks", t, NULL, NULL, &err)) {
            cli_fail(&err);
            s2_error_release(&err);
            json_decref(t);
            break;
        }
        json_decref(t);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 5;
        pthread_mutex_lock(&p->mu);
        while (p->handled <= i && p->ready > 0)
            if (pthread_cond_timedwait(&p->cv, &p->mu, &dl))
                break;
        int ok = p->handled > i;
        pthread_mutex_unlock(&p->mu);
        if (!ok) {
            fprintf(stderr, "bench: the waiting claimer did not get task %s within 5 s\n", id);
            break;
        }
    }
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    pthread_join(th, NULL);
    return 0;
}

static long long server_rss(struct client *ctl)
{
    /* /metrics is text: ask curl for it through a plain call and scan the line */
    struct s2_error err = S2_ERROR_INIT;
    json_t *out = NULL;
    long status;
    (void)client_call(ctl, "GET", "/metrics", NULL, &status, &out, &err);
    s2_error_release(&err);
    json_decref(out);
    const char *text = client_last_body(ctl);
    const char *p = text ? strstr(text, "\nprocess_resident_memory_bytes ") : NULL;
    return p ? atoll(p + 31) : -1;
}

/* --nodes URL,URL,... */
static void parse_nodes(struct bench *b, const char *arg)
{
    char *save = NULL, *list = xstrdup(arg);
    for (char *u = strtok_r(list, ",", &save); u && b->nnodes < 16; u = strtok_r(NULL, ",", &save))
        b->nodes[b->nnodes++] = xstrdup(u);
    free(list);
}

int cli_bench(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct bench b = {.tasks = 100000, .clients = 8, .swarms = 1, .push = 2000, .seconds = 60};
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bench-%d", (int)getpid());
    int keep = 0, rc;
    struct worker *w = NULL;
    pthread_t *th = NULL;
    struct push push = {0};
    struct lat claim = {0}, op = {0};
    json_t *report = NULL;
    struct s2_error err = S2_ERROR_INIT;
    static const struct option opts[] = {
        {"tasks", required_argument, 0, 'n'},   {"clients", required_argument, 0, 'c'},
        {"swarms", required_argument, 0, 's'},  {"push", required_argument, 0, 'p'},
        {"seconds", required_argument, 0, 'S'}, {"prefix", required_argument, 0, 'P'},
        {"keep", no_argument, 0, 'k'},          {"agents", required_argument, 0, 'A'},
        {"caps", required_argument, 0, 'C'},    {"budget", required_argument, 0, 'B'},
        {"nodes", required_argument, 0, 'N'},
        CLI_COMMON_OPTS,                        {0}};
    double budget = 0;
    CLI_OPTIONS(c, argc, argv, opts,
                case 'n' : USAGE_IF(cli_int(&c, "--tasks", optarg, 0, 100000000, &b.tasks)); break;
                case 'c' : USAGE_IF(cli_int(&c, "--clients", optarg, 1, 1024, &b.clients)); break;
                case 's' : USAGE_IF(cli_int(&c, "--swarms", optarg, 1, 100000, &b.swarms)); break;
                case 'p' : USAGE_IF(cli_int(&c, "--push", optarg, 0, 1000000, &b.push)); break;
                case 'S' : USAGE_IF(cli_int(&c, "--seconds", optarg, 1, 86400, &b.seconds)); break;
                case 'P' : snprintf(prefix, sizeof prefix, "%s", optarg); break;
                case 'k' : keep = 1; break;
                case 'A' : USAGE_IF(cli_int(&c, "--agents", optarg, 1, 1000000, &b.agents)); break;
                case 'C' : USAGE_IF(cli_int(&c, "--caps", optarg, 0, 100000, &b.caps)); break;
                case 'B' : USAGE_IF(cli_num(&c, "--budget", optarg, &budget)); break;
                case 'N' : parse_nodes(&b, optarg); break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    b.server = c.server;
    b.prefix = prefix;
    if (b.agents < b.clients)
        b.agents = b.clients;
    if (b.swarms > b.tasks && b.tasks)
        b.swarms = b.tasks;
    json_t *health = NULL;
    rc = cli_call(&c, "GET", "/healthz", NULL, &health, NULL);
    if (rc)
        goto out;
    char durability[16];
    snprintf(durability, sizeof durability, "%s", cli_str(health, "durability"));
    json_decref(health);
    int tty = cli_progress_wanted(&c);

    /* 1. swarms and agents */
    int64_t t0 = clock_mono_ns();
    for (long long s = 0; s < b.swarms; s++) {
        char id[160];
        snprintf(id, sizeof id, "%s-s%lld", prefix, s);
        json_t *o = json_pack("{s:s,s:s}", "id", id, "role", "bench");
        if (budget > 0)
            json_object_set_new(o, "budget", json_real(budget));
        rc = cli_call(&c, "POST", "/v1/swarms", o, NULL, NULL);
        json_decref(o);
        if (rc)
            goto out;
    }
    for (long long a = 0; a < b.agents; a++) {
        char id[160], sw[160];
        snprintf(id, sizeof id, "%s-a%lld", prefix, a);
        snprintf(sw, sizeof sw, "%s-s%lld", prefix, a % b.swarms);
        json_t *o = json_pack("{s:s,s:s}", "id", id, "swarm", sw);
        if (b.caps) {
            /* three capabilities each, from a vocabulary of --caps */
            json_t *caps = json_array();
            for (int k = 0; k < 3 && k < b.caps; k++) {
                char cap[32];
                snprintf(cap, sizeof cap, "cap-%lld", (a + k) % b.caps);
                json_array_append_new(caps, json_string(cap));
            }
            json_object_set_new(o, "capabilities", caps);
        }
        rc = cli_call(&c, "POST", "/v1/agents", o, NULL, NULL);
        json_decref(o);
        if (rc)
            goto out;
    }
    /* 2. fill: task i is meant for agent i % A (its swarm, and with --caps one of its
     * capabilities), so every task has a taker */
    long long takers = b.agents < b.swarms ? b.agents : b.swarms;
    int64_t f0 = clock_mono_ns();
    for (long long i = 0; i < b.tasks;) {
        json_t *list = json_array();
        for (long long k = 0; k < FILL_BATCH && i < b.tasks; k++, i++) {
            char id[160], sw[160];
            snprintf(id, sizeof id, "%s-t%lld", prefix, i);
            long long ag = i % b.agents;
            snprintf(sw, sizeof sw, "%s-s%lld", prefix, b.caps ? ag % b.swarms : i % takers);
            json_t *t = json_pack("{s:s,s:s,s:s}", "id", id, "swarm", sw, "title", "bench task");
            if (b.caps) {
                char cap[32];
                snprintf(cap, sizeof cap, "cap-%lld", ag % b.caps);
                json_object_set_new(t, "requires", json_pack("[s]", cap));
                json_object_set_new(t, "max_cost", json_real(0.01));
            }
            json_array_append_new(list, t);
        }
        json_t *o = json_pack("{s:o}", "tasks", list);
        rc = cli_call(&c, "POST", "/v1/tasks", o, NULL, NULL);
        json_decref(o);
        if (rc)
            goto out;
        if (tty)
            cli_progress("filling %lld/%lld tasks", i, b.tasks);
    }
    double fill_s = (clock_mono_ns() - f0) / 1e9;
    if (tty)
        cli_progress_clear();
    (void)t0;
    long long rss_filled = server_rss(&c.client);
    if (keep) {
        report = json_pack("{s:s,s:I,s:f,s:f,s:I}", "prefix", prefix, "tasks",
                           (json_int_t)b.tasks, "fill_seconds", fill_s, "fill_tasks_per_s",
                           fill_s > 0 ? b.tasks / fill_s : 0, "server_rss_bytes",
                           (json_int_t)rss_filled);
        goto print;
    }

    /* 3. claim + done */
    b.seen = xcalloc((size_t)(b.tasks ? b.tasks : 1), 1);
    w = xcalloc((size_t)b.clients, sizeof *w);
    th = xcalloc((size_t)b.clients, sizeof *th);
    int64_t start = clock_mono_ns();
    b.deadline_ns = start + b.seconds * 1000000000LL;
    for (long long i = 0; i < b.clients; i++) {
        w[i].b = &b;
        w[i].index = (int)i;
        pthread_create(&th[i], NULL, claim_loop, &w[i]);
    }
    while (tty && atomic_load(&b.done) < b.tasks && clock_mono_ns() < b.deadline_ns) {
        usleep(200000);
        cli_progress("claim+done %ld/%lld", atomic_load(&b.done), b.tasks);
        if (atomic_load(&b.finished) == b.clients)
            break;
    }
    if (tty)
        cli_progress_clear();
    int64_t end = start;
    for (long long i = 0; i < b.clients; i++) {
        pthread_join(th[i], NULL);
        if (w[i].last_ns > end)
            end = w[i].last_ns;
        for (size_t k = 0; k < w[i].claim.n; k++) {
            lat_add(&claim, w[i].claim.v[k]);
            lat_add(&op, w[i].op.v[k]);
        }
        free(w[i].claim.v);
        free(w[i].op.v);
    }
    qsort(claim.v, claim.n, sizeof *claim.v, cmp_i64);
    qsort(op.v, op.n, sizeof *op.v, cmp_i64);
    long long dups = 0, unseen = 0;
    for (long long i = 0; i < b.tasks; i++) {
        if (b.seen[i] > 1)
            dups += b.seen[i] - 1;
        unseen += !b.seen[i];
    }
    double secs = (end - start) / 1e9;
    long long rss = server_rss(&c.client);

    /* 4. push latency */
    if (b.push && run_push(&b, &c.client, &push) == 0)
        qsort(push.lat.v, push.lat.n, sizeof *push.lat.v, cmp_i64);

    report = json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:f,s:f,s:I,s:f,s:{s:f,s:f,s:f},s:{s:f,s:f},s:{s:I,s:f,s:f,s:f},"
        "s:I,s:I,s:I,s:I}",
        "prefix", prefix, "durability", durability, "tasks", (json_int_t)b.tasks, "clients",
        (json_int_t)b.clients, "swarms", (json_int_t)b.swarms, "fill_seconds", fill_s,
        "fill_tasks_per_s", fill_s > 0 ? b.tasks / fill_s : 0, "ops", (json_int_t)op.n,
        "ops_per_s", secs > 0 ? op.n / secs : 0, "claim_ms", "p50", pct_ms(&claim, 0.5), "p99",
        pct_ms(&claim, 0.99), "p999", pct_ms(&claim, 0.999), "claim_done_ms", "p50",
        pct_ms(&op, 0.5), "p99", pct_ms(&op, 0.99), "push_ms", "samples",
        (json_int_t)push.lat.n, "p50", pct_ms(&push.lat, 0.5), "p99", pct_ms(&push.lat, 0.99),
        "max", push.lat.n ? push.lat.v[push.lat.n - 1] / 1e6 : 0.0, "duplicates",
        (json_int_t)dups, "not_done", (json_int_t)unseen, "errors",
        (json_int_t)(atomic_load(&b.errors) + push.errors), "server_rss_bytes", (json_int_t)rss);
    (void)rss_filled;
print:
    if (c.json) {
        cli_print_json(report);
    } else if (keep) {
        printf("filled %lld tasks in %.2f s (%.0f tasks/s); server RSS %.1f MiB\n", b.tasks,
               fill_s, fill_s > 0 ? b.tasks / fill_s : 0, rss_filled / 1048576.0);
    } else {
        printf("s2 bench: %lld tasks, %lld clients, %lld swarm%s, durability %s\n", b.tasks,
               b.clients, b.swarms, b.swarms == 1 ? "" : "s", durability);
        printf("  fill          %.0f tasks/s (%.2f s)\n", json_number_value(json_object_get(report, "fill_tasks_per_s")), fill_s);
        printf("  claim+done    %.0f ops/s (%zu ops)\n",
               json_number_value(json_object_get(report, "ops_per_s")), op.n);
        printf("  claim         p50 %.3f ms  p99 %.3f ms  p999 %.3f ms\n", pct_ms(&claim, 0.5),
               pct_ms(&claim, 0.99), pct_ms(&claim, 0.999));
        printf("  claim+done    p50 %.3f ms  p99 %.3f ms\n", pct_ms(&op, 0.5), pct_ms(&op, 0.99));
        if (push.lat.n)
            printf("  push          p50 %.3f ms  p99 %.3f ms  (%zu samples)\n",
                   pct_ms(&push.lat, 0.5), pct_ms(&push.lat, 0.99), push.lat.n);
        printf("  duplicates    %lld\n  not done      %lld\n  errors        %ld\n", dups, unseen,
               atomic_load(&b.errors) + push.errors);
        printf("  server RSS    %.1f MiB\n", rss / 1048576.0);
    }
    rc = (json_integer_value(json_object_get(report, "duplicates")) ||
          json_integer_value(json_object_get(report, "errors")))
             ? EXIT_FAIL
             : EXIT_OK;
out:
    s2_error_release(&err);
    json_decref(report);
    free(claim.v);
    free(op.v);
    free(push.lat.v);
    for (int i = 0; i < b.nnodes; i++)
        free(b.nodes[i]);
    free(w);
    free(th);
    free((void *)b.seen);
    cli_done(&c);
    return rc;
}
