/* race.c: the claim-race driver behind t0020-race.sh. Claimers are threads, each its own
 * agent with its own keep-alive connection; the driver keeps a ledger of what the server
 * acknowledged and compares it with the server's own view. It never trusts one side alone.
 *
 *   race drain URL SWARM TASKS CLAIMERS   create TASKS tasks, drain them with long-poll
 *                                         claims + done; each must be done exactly once
 *   race one URL SWARM ROUNDS CLAIMERS    CLAIMERS race for one task, ROUNDS times (wait_ms
 *                                         0), then 3 rounds parked in long-polls: one wins
 *   race chaos URL SWARM TASKS CLAIMERS   drain while the test breaks things (kills the leader,
 *                                         restarts the database): 503s and lost replies are
 *                                         retried; every acknowledged done must stay done,
 *                                         with the owner and fence acknowledged; nothing done
 *                                         twice; in the end every task is done
 *
 * URL may be a comma-separated list (the nodes of a cluster): claimer i talks to URL i mod
 * n, so claims race through every node. RACE_LEASE_MS sets the tasks' lease (chaos: 4000).
 *
 * The admin token comes from S2_TOKEN. Output: "key value" lines the test compares, "# "
 * lines explaining any violation; exit 0 only when every invariant held. */
#include "client.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEADLINE_MS (600LL * 1000) /* the whole run; the shell has its own, shorter one */

static const char *url, *swarm;
static char *urls[16];
static int nurls;
static int chaos;
static atomic_int stop_all;
static atomic_long unavailable_total, lost_reply_total, stale_total, busy_total;
static long ntasks, nclaimers;
static int64_t t_end;

/* the ledger: one slot per task, indexed by the number in its id "r-N" */
struct slot {
    atomic_int claims;   /* 200 claim replies naming it */
    atomic_int holder;   /* agent number + 1 while a claim reply is unanswered by done */
    atomic_int dones;    /* 200 done replies */
    int agent;           /* who claimed it (first claim) */
    long long fence;
    int done_agent;      /* chaos: who was acknowledged done, with which fence */
    long long done_fence;
};
static struct slot *slots;
static atomic_long done_total, refused_total, overlap_total, errors_total, empty_claims;
static pthread_mutex_t say_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int said;

/* A violation: print the first few, count them all. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (atomic_fetch_add(&said, 1) >= 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&say_mu);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&say_mu);
    va_end(ap);
}

static const char *str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

static void die(const char *what, struct s2_error *err)
{
    printf("# fatal: %s: %s\n", what, err && err->msg ? err->msg : "?");
    exit(1);
}

/* One HTTP call; returns the status (0 on a transport failure, err filled). */
static long call(struct client *c, const char *method, const char *path, json_t *body,
                 json_t **out, struct s2_error *err)
{
    long status = 0;
    if (out)
        *out = NULL;
    s2_error_release(err);
    if (client_call(c, method, path, body, &status, out, err) && err->code &&
        !strcmp(err->code, "unreachable"))
        return 0;
    return status;
}

static void must(struct client *c, const char *method, const char *path, json_t *body,
                 long want)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *out = NULL;
    long st = call(c, method, path, body, &out, &err);
    if (st != want) {
        printf("# %s %s -> %ld (wanted %ld): %s\n", method, path, st, want,
               err.msg ? err.msg : "");
        exit(1);
    }
    json_decref(out);
    json_decref(body);
    s2_error_release(&err);
}

static long task_index(const char *id)
{
    char *end;
    if (!id || strncmp(id, "r-", 2))
        return -1;
    long v = strtol(id + 2, &end, 10);
    return *end || v < 0 || v >= ntasks ? -1 : v;
}

static void setup_agents(struct client *c, const char *prefix)
{
    for (long i = 0; i < nclaimers; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s%ld", prefix, i);
        must(c, "POST", "/v1/agents", json_pack("{s:s,s:s}", "id", id, "swarm", swarm), 201);
    }
}

/* ---- drain ---- */

static void *claimer(void *arg)
{
    int me = (int)(intptr_t)arg;
    char agent[64];
    snprintf(agent, sizeof agent, "ra%d", me);
    struct client c;
    struct s2_error err = S2_ERROR_INIT;
    if (client_init(&c, urls[me % nurls], NULL, &err))
        die("client", &err);
    json_t *claim = json_pack("{s:s,s:i}", "agent", agent, "wait_ms", 1000);
    while (atomic_load(&done_total) + atomic_load(&refused_total) < ntasks &&
           clock_wall_ms() < t_end) {
        json_t *out = NULL;
        long st = call(&c, "POST", "/v1/claim", claim, &out, &err);
        if (st == 204) {
            atomic_fetch_add(&empty_claims, 1);
            continue;
        }
        if (st != 200) {
            atomic_fetch_add(&errors_total, 1);
            say("claim by %s -> %ld: %s", agent, st, err.msg ? err.msg : "");
            json_decref(out);
            if (st == 0 || atomic_load(&errors_total) > 50)
                break;
            continue;
        }
        json_t *t = json_object_get(out, "task"), *l = json_object_get(out, "lease");
        const char *id = json_string_value(json_object_get(t, "id"));
        const char *lease = json_string_value(json_object_get(l, "token"));
        long long fence = json_integer_value(json_object_get(l, "fence"));
        long ix = task_index(id);
        if (ix < 0 || !lease) {
            say("claim by %s returned an unknown task or no lease: %s", agent, id ? id : "?");
            atomic_fetch_add(&errors_total, 1);
            json_decref(out);
            continue;
        }
        struct slot *s = &slots[ix];
        int expect = 0;
        if (!atomic_compare_exchange_strong(&s->holder, &expect, me + 1)) {
            atomic_fetch_add(&overlap_total, 1);
            say("task %s handed to ra%d while ra%d holds it", id, me, expect - 1);
        }
        if (atomic_fetch_add(&s->claims, 1) == 0) {
            s->agent = me;
            s->fence = fence;
        } else {
            say("task %s claimed again by ra%d (fence %lld)", id, me, fence);
        }
        char *path = xasprintf("/v1/tasks/%s/done", id);
        json_t *body = json_pack("{s:s,s:{s:s,s:i}}", "lease", lease, "result", "by", agent,
                                 "fence", (int)fence);
        json_t *dout = NULL;
        st = call(&c, "POST", path, body, &dout, &err);
        if (st == 200 &&
            !strcmp(json_string_value(json_object_get(json_object_get(dout, "task"), "state")),
                    "done")) {
            atomic_fetch_add(&s->dones, 1);
            atomic_fetch_add(&done_total, 1);
        } else {
            atomic_fetch_add(&refused_total, 1);
            say("done %s by %s (fence %lld) -> %ld: %s", id, agent, fence, st,
                err.msg ? err.msg : "");
        }
        expect = me + 1;
        atomic_compare_exchange_strong(&s->holder, &expect, 0);
        json_decref(dout);
        json_decref(body);
        free(path);
        json_decref(out);
    }
    json_decref(claim);
    s2_error_release(&err);
    client_release(&c);
    return NULL;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reconnect c to the next node of the list (node: its index). */
static void other_node(struct client *c, int *node)
{
    if (nurls < 2)
        return;
    struct s2_error err = S2_ERROR_INIT;
    *node = (*node + 1) % nurls;
    client_release(c);
    if (client_init(c, urls[*node], NULL, &err))
        die("client", &err);
}

/* A claimer that rides out faults: a 503 or a dropped connection is waited out and
 * retried (through another node when its own is gone); a done whose reply was lost is
 * retried with the same lease until the server says what became of it. */
static void *chaos_claimer(void *arg)
{
    int me = (int)(intptr_t)arg;
    char agent[64];
    snprintf(agent, sizeof agent, "ra%d", me);
    struct client c;
    struct s2_error err = S2_ERROR_INIT;
    int node = me % nurls;
    if (client_init(&c, urls[node], NULL, &err))
        die("client", &err);
    json_t *claim = json_pack("{s:s,s:i}", "agent", agent, "wait_ms", 1000);
    while (!atomic_load(&stop_all) && clock_wall_ms() < t_end) {
        json_t *out = NULL;
        long st = call(&c, "POST", "/v1/claim", claim, &out, &err);
        if (st == 204) {
            atomic_fetch_add(&empty_claims, 1);
            json_decref(out);
            continue;
        }
        if (st == 0 || st == 503 || st == 502) {
            atomic_fetch_add(&unavailable_total, 1);
            json_decref(out);
            if (st == 0) /* the node is gone: go on through another, as a client would */
                other_node(&c, &node);
            nap_ms(50);
            continue;
        }
        if (st == 409) { /* agent_busy: a lease whose reply was lost is still running */
            atomic_fetch_add(&busy_total, 1);
            json_decref(out);
            nap_ms(100);
            continue;
        }
        if (st != 200) {
            atomic_fetch_add(&errors_total, 1);
            say("claim by %s -> %ld: %s", agent, st, err.msg ? err.msg : "");
            json_decref(out);
            nap_ms(50);
            continue;
        }
        json_t *t = json_object_get(out, "task"), *l = json_object_get(out, "lease");
        const char *id = json_string_value(json_object_get(t, "id"));
        const char *lease = json_string_value(json_object_get(l, "token"));
        long long fence = json_integer_value(json_object_get(l, "fence"));
        long ix = task_index(id);
        if (ix < 0 || !lease) {
            say("claim by %s returned an unknown task or no lease: %s", agent, id ? id : "?");
            atomic_fetch_add(&errors_total, 1);
            json_decref(out);
            continue;
        }
        struct slot *s = &slots[ix];
        atomic_fetch_add(&s->claims, 1);
        char *path = xasprintf("/v1/tasks/%s/done", id);
        json_t *body = json_pack("{s:s,s:{s:s,s:i}}", "lease", lease, "result", "by", agent,
                                 "fence", (int)fence);
        for (int tries = 0; clock_wall_ms() < t_end && !atomic_load(&stop_all); tries++) {
            json_t *dout = NULL;
            st = call(&c, "POST", path, body, &dout, &err);
            const char *msg = json_string_value(
                json_object_get(json_object_get(dout, "error"), "message"));
            if (st == 200) {
                if (atomic_fetch_add(&s->dones, 1) == 0) {
                    s->done_agent = me;
                    s->done_fence = fence;
                }
                atomic_fetch_add(&done_total, 1);
            } else if (st == 409 && tries && msg && strstr(msg, "is done")) {
                atomic_fetch_add(&lost_reply_total, 1); /* an earlier try went through */
            } else if (st == 409) {
                atomic_fetch_add(&stale_total, 1); /* the lease ran out meanwhile */
            } else if (st == 0 || st == 503 || st == 502) {
                atomic_fetch_add(&unavailable_total, 1);
                json_decref(dout);
                if (st == 0)
                    other_node(&c, &node);
                nap_ms(50);
                continue;
            } else {
                atomic_fetch_add(&refused_total, 1);
                say("done %s by %s (fence %lld) -> %ld: %s", id, agent, fence, st,
                    msg ? msg : err.msg ? err.msg : "");
            }
            json_decref(dout);
            break;
        }
        json_decref(body);
        free(path);
        json_decref(out);
    }
    json_decref(claim);
    s2_error_release(&err);
    client_release(&c);
    return NULL;
}

/* Page through the server's done tasks of the swarm: each once, owner and fence as the
 * ledger has them. Returns the violations. */
static long server_view(struct client *c, long *listed)
{
    long bad = 0;
    unsigned char *seen = xcalloc((size_t)ntasks, 1);
    char *after = NULL;
    struct s2_error err = S2_ERROR_INIT;
    *listed = 0;
    for (;;) {
        char *path = xasprintf("/v1/tasks?swarm=%s&state=done&limit=1000%s%s", swarm,
                               after ? "&after=" : "", after ? after : "");
        json_t *out = NULL;
        long st = call(c, "GET", path, NULL, &out, &err);
        free(path);
        if (st != 200)
            die("listing done tasks", &err);
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(out, "tasks"), i, t) {
            const char *id = json_string_value(json_object_get(t, "id"));
            long ix = task_index(id);
            (*listed)++;
            if (ix < 0) {
                say("server lists unknown done task %s", id ? id : "?");
                bad++;
                continue;
            }
            if (seen[ix]++) {
                say("server lists task %s twice", id);
                bad++;
            }
            char agent[64];
            snprintf(agent, sizeof agent, "ra%d", chaos ? slots[ix].done_agent : slots[ix].agent);
            const char *owner = json_string_value(json_object_get(t, "owner"));
            long long fence = json_integer_value(json_object_get(t, "fence"));
            json_t *res = json_object_get(t, "result");
            if (chaos && !slots[ix].dones)
                continue; /* its done reply was lost: whoever did it, it is done */
            long long want_fence = chaos ? slots[ix].done_fence : slots[ix].fence;
            if (!owner || strcmp(owner, agent) || fence != want_fence ||
                strcmp(str_or(json_string_value(json_object_get(res, "by")), ""), agent)) {
                say("task %s: server says owner %s fence %lld; ledger says %s fence %lld", id,
                    owner ? owner : "null", fence, agent, want_fence);
                bad++;
            }
        }
        const char *next = json_string_value(json_object_get(out, "next"));
        free(after);
        after = next ? xstrdup(next) : NULL;
        json_decref(out);
        if (!after)
            break;
    }
    /* nothing may be left in any other state */
    static const char *const others[] = {"pending", "ready", "claimed", "dead", "cancelled"};
    for (size_t k = 0; k < 5; k++) {
        char *path = xasprintf("/v1/tasks?swarm=%s&state=%s&limit=5", swarm, others[k]);
        json_t *out = NULL;
        if (call(c, "GET", path, NULL, &out, &err) != 200)
            die("listing tasks", &err);
        size_t n = json_array_size(json_object_get(out, "tasks"));
        if (n) {
            say("%zu+ tasks still %s", n, others[k]);
            bad++;
        }
        json_decref(out);
        free(path);
    }
    free(seen);
    s2_error_release(&err);
    return bad;
}

static int drain(void)
{
    struct client c;
    struct s2_error err = S2_ERROR_INIT;
    if (client_init(&c, url, NULL, &err))
        die("client", &err);
    must(&c, "POST", "/v1/swarms", json_pack("{s:s}", "id", swarm), 201);
    setup_agents(&c, "ra");
    slots = xcalloc((size_t)ntasks, sizeof *slots);
    for (long i = 0; i < ntasks;) {
        json_t *list = json_array();
        for (long k = 0; k < 1000 && i < ntasks; k++, i++) {
            char id[32];
            snprintf(id, sizeof id, "r-%ld", i);
            json_t *t = json_pack("{s:s,s:s,s:s}", "id", id, "swarm", swarm, "title", "race");
            const char *lm = getenv("RACE_LEASE_MS");
            if (lm || chaos)
                json_object_set_new(t, "lease_ms", json_integer(lm ? atol(lm) : 4000));
            json_array_append_new(list, t);
        }
        must(&c, "POST", "/v1/tasks", json_pack("{s:o}", "tasks", list), 201);
    }
    int64_t t0 = clock_mono_ns();
    printf("filled %ld\n", ntasks); /* the test may start breaking things now */
    pthread_t *th = xcalloc((size_t)nclaimers, sizeof *th);
    for (long i = 0; i < nclaimers; i++)
        pthread_create(&th[i], NULL, chaos ? chaos_claimer : claimer, (void *)(intptr_t)i);
    int node = 0; /* the node c talks to: the test may kill any of them */
    if (chaos) {      /* the server says when everything is done (lost replies included) */
        char *path = xasprintf("/v1/swarms/%s/status", swarm);
        while (clock_wall_ms() < t_end) {
            json_t *out = NULL;
            long st = call(&c, "GET", path, NULL, &out, &err);
            if (st != 200) /* ask the next node next time */
                other_node(&c, &node);
            long long done = json_integer_value(
                json_object_get(json_object_get(out, "tasks"), "done"));
            json_decref(out);
            if (st == 200 && done >= ntasks)
                break;
            nap_ms(200);
        }
        free(path);
        atomic_store(&stop_all, 1);
    }
    for (long i = 0; i < nclaimers; i++)
        pthread_join(th[i], NULL);
    double secs = (clock_mono_ns() - t0) / 1e9;
    free(th);

    long twice = 0, never = 0;
    for (long i = 0; i < ntasks; i++) {
        if ((!chaos && slots[i].claims > 1) || slots[i].dones > 1)
            twice++;
        if (slots[i].dones == 0)
            never++;
    }
    long listed = 0, bad = server_view(&c, &listed);
    printf("seconds %.1f\n", secs);
    printf("rate %.0f\n", secs > 0 ? ntasks / secs : 0);
    printf("done %ld\n", atomic_load(&done_total));
    printf("refused %ld\n", atomic_load(&refused_total));
    printf("errors %ld\n", atomic_load(&errors_total));
    printf("overlaps %ld\n", atomic_load(&overlap_total));
    printf("twice %ld\n", twice);
    printf("never %ld\n", never);
    printf("server_done %ld\n", listed);
    printf("server_bad %ld\n", bad);
    client_release(&c);
    if (chaos) {
        printf("unavailable %ld\n", atomic_load(&unavailable_total));
        printf("lost_replies %ld\n", atomic_load(&lost_reply_total));
        printf("stale %ld\n", atomic_load(&stale_total));
        printf("busy %ld\n", atomic_load(&busy_total));
        return !refused_total && !errors_total && !twice && listed == ntasks && !bad ? 0 : 1;
    }
    return done_total == ntasks && !refused_total && !errors_total && !overlap_total && !twice &&
                   !never && listed == ntasks && !bad
               ? 0
               : 1;
}

/* ---- one task, many claimers ---- */

static pthread_barrier_t go, finished;
static long rounds;
static atomic_int round_wait_ms;
static long *status_of;  /* per claimer, this round */
static char **task_of;   /* per claimer, this round: what it got */
static char **lease_of;

static void *racer(void *arg)
{
    int me = (int)(intptr_t)arg;
    char agent[64];
    snprintf(agent, sizeof agent, "oa%d", me);
    struct client c;
    struct s2_error err = S2_ERROR_INIT;
    if (client_init(&c, url, NULL, &err))
        die("client", &err);
    for (;;) {
        pthread_barrier_wait(&go);
        int wait_ms = atomic_load(&round_wait_ms);
        if (wait_ms < 0)
            break;
        json_t *body = json_pack("{s:s,s:i}", "agent", agent, "wait_ms", wait_ms), *out = NULL;
        long st = call(&c, "POST", "/v1/claim", body, &out, &err);
        status_of[me] = st;
        free(task_of[me]);
        free(lease_of[me]);
        task_of[me] = lease_of[me] = NULL;
        if (st == 200) {
            json_t *t = json_object_get(out, "task"), *l = json_object_get(out, "lease");
            task_of[me] = xstrdup(str_or(json_string_value(json_object_get(t, "id")), "?"));
            lease_of[me] = xstrdup(str_or(json_string_value(json_object_get(l, "token")), ""));
        } else if (st != 204) {
            say("claim by %s -> %ld: %s", agent, st, err.msg ? err.msg : "");
        }
        json_decref(out);
        json_decref(body);
        pthread_barrier_wait(&finished);
    }
    s2_error_release(&err);
    client_release(&c);
    return NULL;
}

/* Parked claims, from the server's own gauge. */
static long waiting_claims(struct client *c)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *out = NULL;
    long st = call(c, "GET", "/metrics", NULL, &out, &err);
    json_decref(out);
    s2_error_release(&err);
    const char *text = client_last_body(c);
    if (st != 200 || !text)
        return -1;
    const char *p = strstr(text, "\ns2_waiting_claims ");
    return p ? strtol(p + 19, NULL, 10) : -1;
}

/* One round: the task exists (or appears while they wait); count the winners. */
static int one_round(struct client *c, long r, int wait_ms, long *wins_total)
{
    char id[32];
    snprintf(id, sizeof id, "one-%ld", r);
    json_t *task = json_pack("{s:s,s:s,s:s}", "id", id, "swarm", swarm, "title", "contended");
    atomic_store(&round_wait_ms, wait_ms);
    if (!wait_ms) {
        must(c, "POST", "/v1/tasks", task, 201);
        pthread_barrier_wait(&go);
    } else {
        pthread_barrier_wait(&go);
        int64_t until = clock_wall_ms() + 20000;
        while (waiting_claims(c) < nclaimers && clock_wall_ms() < until) {
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
        must(c, "POST", "/v1/tasks", task, 201);
    }
    pthread_barrier_wait(&finished);
    int wins = 0, bad = 0;
    for (long i = 0; i < nclaimers; i++) {
        if (status_of[i] == 200) {
            wins++;
            if (strcmp(task_of[i], id)) {
                say("round %ld: oa%ld got %s, not %s", r, i, task_of[i], id);
                bad++;
            }
            char *path = xasprintf("/v1/tasks/%s/done", id);
            must(c, "POST", path, json_pack("{s:s}", "lease", lease_of[i]), 200);
            free(path);
        } else if (status_of[i] != 204) {
            bad++;
        }
    }
    if (wins != 1) {
        say("round %ld (wait_ms %d): %d claimers won task %s", r, wait_ms, wins, id);
        bad++;
    }
    *wins_total += wins;
    return bad;
}

static int one(void)
{
    struct client c;
    struct s2_error err = S2_ERROR_INIT;
    if (client_init(&c, url, NULL, &err))
        die("client", &err);
    must(&c, "POST", "/v1/swarms", json_pack("{s:s}", "id", swarm), 201);
    setup_agents(&c, "oa");
    pthread_barrier_init(&go, NULL, (unsigned)nclaimers + 1);
    pthread_barrier_init(&finished, NULL, (unsigned)nclaimers + 1);
    status_of = xcalloc((size_t)nclaimers, sizeof *status_of);
    task_of = xcalloc((size_t)nclaimers, sizeof *task_of);
    lease_of = xcalloc((size_t)nclaimers, sizeof *lease_of);
    pthread_t *th = xcalloc((size_t)nclaimers, sizeof *th);
    for (long i = 0; i < nclaimers; i++)
        pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i);
    long bad = 0, wins = 0, r = 0;
    for (; r < rounds; r++)
        bad += one_round(&c, r, 0, &wins);
    long parked = 3;
    for (long k = 0; k < parked; k++, r++)
        bad += one_round(&c, r, 1500, &wins);
    atomic_store(&round_wait_ms, -1);
    pthread_barrier_wait(&go);
    for (long i = 0; i < nclaimers; i++)
        pthread_join(th[i], NULL);
    printf("rounds %ld\n", r);
    printf("wins %ld\n", wins);
    printf("bad %ld\n", bad);
    for (long i = 0; i < nclaimers; i++) {
        free(task_of[i]);
        free(lease_of[i]);
    }
    free(th);
    free(status_of);
    free(task_of);
    free(lease_of);
    client_release(&c);
    return bad || wins != r ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: race drain|one|chaos URL SWARM TASKS|ROUNDS CLAIMERS\n");
        return 2;
    }
    url = argv[2];
    char *save = NULL;
    for (char *u = strtok_r(xstrdup(url), ",", &save); u && nurls < 16;
         u = strtok_r(NULL, ",", &save))
        urls[nurls++] = u;
    if (!nurls) {
        fprintf(stderr, "race: no URL\n");
        return 2;
    }
    url = urls[0];
    swarm = argv[3];
    long n = atol(argv[4]);
    nclaimers = atol(argv[5]);
    if (n < 1 || nclaimers < 1 || nclaimers > 256) {
        fprintf(stderr, "race: bad numbers\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    t_end = clock_wall_ms() + DEADLINE_MS;
    if (!strcmp(argv[1], "drain") || !strcmp(argv[1], "chaos")) {
        ntasks = n;
        chaos = !strcmp(argv[1], "chaos");
        return drain();
    }
    if (!strcmp(argv[1], "one")) {
        rounds = n;
        return one();
    }
    fprintf(stderr, "race: unknown mode '%s'\n", argv[1]);
    return 2;
}
