/* crash.c: the load and the ledger behind t0030-crash.sh and t0060-restart.sh. Clients create
 * tasks and claim + finish them while the test kills and restarts the server under them;
 * every acknowledged (2xx) change goes into a ledger, and the check compares the ledger
 * with what the server holds after its last restart.
 *
 *   crash load DIR SWARM CREATORS WORKERS   run until DIR/stop exists, then drain the swarm;
 *                                           workers are agents SWARM-w0.. (they must exist),
 *                                           task ids are SWARM-CREATOR-N
 *   crash check DIR SWARM                    compare DIR/ledger with the server
 *
 * DIR/url holds the server's address; clients re-read it whenever the server cannot be
 * reached (the test rewrites it after each restart). The admin token comes from S2_TOKEN.
 * With CRASH_CLEAN=1 the server is only ever stopped cleanly (SIGTERM): then a request
 * that ends without an answer (but was not refused at connect) is a violation too.
 * Ledger lines, one per acknowledged outcome:
 *   C id            create answered 201        B id,id,...  batch create, outcome unknown
 *   M id            create, outcome unknown    K id fence agent   claim answered 200
 *   D id fence      done answered 200          R id fence code    done refused (409)
 *   A id fence      claim abandoned on purpose (its lease must expire)
 * The check prints "key value" lines and "# " lines for each violation; exit 0 if none. */
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
#include <unistd.h>

#define LOAD_DEADLINE_MS (300LL * 1000) /* the whole load, drain included */
#define RETRY_MS (30LL * 1000)          /* one request across restarts */
#define BACKLOG 60                      /* creators pause while this many tasks are open */

static const char *dir, *swarm;
static int64_t t_end;
static pthread_mutex_t ledger_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *ledger;
static atomic_long created, finished, violations;
static atomic_int stopping, drained;
static int clean; /* $CRASH_CLEAN=1: the server is stopped with SIGTERM only, never killed */

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&ledger_mu);
    vfprintf(ledger, fmt, ap);
    fputc('\n', ledger);
    fflush(ledger);
    pthread_mutex_unlock(&ledger_mu);
    va_end(ap);
}

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    if (atomic_fetch_add(&violations, 1) >= 30)
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&ledger_mu);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&ledger_mu);
    va_end(ap);
}

static int exists(const char *name)
{
    char *p = xasprintf("%s/%s", dir, name);
    int ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* A client that follows the server across restarts. */
struct conn {
    struct client c;
    char url[256];
    int ready;
};

static void conn_refresh(struct conn *k)
{
    char *p = xasprintf("%s/url", dir), now[256] = "";
    FILE *f = fopen(p, "r");
    free(p);
    if (f) {
        if (!fgets(now, sizeof now, f))
            now[0] = 0;
        fclose(f);
    }
    now[strcspn(now, "\r\n")] = 0;
    if (!*now || (k->ready && !strcmp(now, k->url)))
        return;
    if (k->ready)
        client_release(&k->c);
    struct s2_error err = S2_ERROR_INIT;
    k->ready = client_init(&k->c, now, NULL, &err) == 0;
    if (k->ready)
        k->c.timeout_ms = 10000;
    s2_error_release(&err);
    snprintf(k->url, sizeof k->url, "%s", now);
}

/* One request: the status (0: the server could not be reached; the client moved on to the
 * address in DIR/url). code: the server's error code, if any. */
static long call(struct conn *k, const char *method, const char *path, json_t *body,
                 json_t **out, char *code, size_t codelen)
{
    long status = 0;
    struct s2_error err = S2_ERROR_INIT;
    if (out)
        *out = NULL;
    if (code)
        code[0] = 0;
    if (!k->ready)
        conn_refresh(k);
    if (!k->ready)
        return 0;
    if (client_call(&k->c, method, path, body, &status, out, &err)) {
        if (err.code && !strcmp(err.code, "unreachable")) {
            /* a killed server refuses or resets at once; silence is a request it lost */
            if (err.msg && strstr(err.msg, "Timeout"))
                complain("%s %s: no answer within %ld ms", method, path, k->c.timeout_ms);
            /* a server that is only ever stopped cleanly answers what it accepted (new
             * connections are refused; curl retries a request on a kept-alive connection
             * the server closed before reading it) */
            else if (clean && err.msg && !strstr(err.msg, "Couldn't connect"))
                complain("%s %s: %s", method, path, err.msg);
            status = 0;
            conn_refresh(k);
        }
        if (code && err.code)
            snprintf(code, codelen, "%s", err.code);
    }
    s2_error_release(&err);
    return status;
}

/* Repeat a request until it has a definite answer (not unreachable, not 503). */
static long call_until_answered(struct conn *k, const char *method, const char *path,
                                json_t *body, json_t **out, char *code, size_t codelen)
{
    int64_t until = clock_wall_ms() + RETRY_MS;
    for (;;) {
        long st = call(k, method, path, body, out, code, codelen);
        if ((st != 0 && st != 503) || clock_wall_ms() > until)
            return st;
        if (out && *out) {
            json_decref(*out);
            *out = NULL;
        }
        msleep(30);
    }
}

/* ---- load ---- */

static void *creator(void *arg)
{
    int me = (int)(intptr_t)arg;
    struct conn k = {0};
    unsigned seed = (unsigned)me * 7919u + 1;
    long n = 0;
    while (!atomic_load(&stopping) && clock_wall_ms() < t_end) {
        if (atomic_load(&created) - atomic_load(&finished) > BACKLOG) {
            msleep(10);
            continue;
        }
        int batch = rand_r(&seed) % 5 == 0 ? 5 : 1;
        json_t *list = json_array();
        char ids[5][48];
        for (int i = 0; i < batch; i++, n++) {
            snprintf(ids[i], sizeof ids[i], "%.24s-%d-%ld", swarm, me, n);
            json_array_append_new(list,
                                  json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "id", ids[i], "swarm",
                                            swarm, "title", "crash load", "lease_ms", 3000,
                                            "max_attempts", 100, "retry_backoff_ms", 50));
        }
        json_t *body = batch == 1 ? json_incref(json_array_get(list, 0))
                                  : json_pack("{s:O}", "tasks", list);
        char code[64];
        long st = call(&k, "POST", "/v1/tasks", body, NULL, code, sizeof code);
        if (st == 201) {
            for (int i = 0; i < batch; i++)
                record("C %s", ids[i]);
            atomic_fetch_add(&created, batch);
        } else if (st == 0 || st == 503) {
            /* it may or may not have committed: the check accepts either, all or nothing */
            if (batch == 1) {
                record("M %s", ids[0]);
            } else {
                char all[5 * 48 + 8] = "";
                size_t off = 0;
                for (int i = 0; i < batch; i++)
                    off += (size_t)snprintf(all + off, sizeof all - off, "%s%s", i ? "," : "",
                                            ids[i]);
                record("B %s", all);
            }
            msleep(20);
        } else {
            complain("create %s -> %ld %s", ids[0], st, code);
        }
        json_decref(body);
        json_decref(list);
    }
    if (k.ready)
        client_release(&k.c);
    return NULL;
}

/* Whether the swarm has nothing left to do (everything done or cancelled or dead). */
static int swarm_drained(struct conn *k)
{
    char *path = xasprintf("/v1/swarms/%s/status", swarm);
    json_t *out = NULL;
    long st = call(k, "GET", path, NULL, &out, NULL, 0);
    free(path);
    int yes = 0;
    if (st == 200) {
        json_t *t = json_object_get(out, "tasks");
        yes = json_integer_value(json_object_get(t, "ready")) +
                  json_integer_value(json_object_get(t, "claimed")) +
                  json_integer_value(json_object_get(t, "pending")) ==
              0;
    }
    json_decref(out);
    return yes;
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    char agent[64];
    snprintf(agent, sizeof agent, "%.24s-w%d", swarm, me);
    struct conn k = {0};
    unsigned seed = (unsigned)me * 104729u + 3;
    json_t *claim = json_pack("{s:s,s:i}", "agent", agent, "wait_ms", 500);
    while (!atomic_load(&drained) && clock_wall_ms() < t_end) {
        json_t *out = NULL;
        char code[64];
        long st = call(&k, "POST", "/v1/claim", claim, &out, code, sizeof code);
        if (st == 0 || st == 503) {
            msleep(20);
            continue;
        }
        if (st == 204 || (st == 409 && !strcmp(code, "agent_busy"))) {
            /* nothing now, or its lost claims still hold its lease slots until they expire */
            json_decref(out);
            if (st == 409)
                msleep(50);
            if (atomic_load(&stopping) == 2 && swarm_drained(&k))
                atomic_store(&drained, 1);
            continue;
        }
        if (st != 200) {
            complain("claim by %s -> %ld %s", agent, st, code);
            json_decref(out);
            msleep(50);
            continue;
        }
        json_t *t = json_object_get(out, "task"), *l = json_object_get(out, "lease");
        char *id = xstrdup(json_string_value(json_object_get(t, "id")));
        char *lease = xstrdup(json_string_value(json_object_get(l, "token")));
        long long fence = json_integer_value(json_object_get(l, "fence"));
        json_decref(out);
        record("K %s %lld %s", id, fence, agent);
        if (rand_r(&seed) % 25 == 0) {
            record("A %s %lld", id, fence); /* walk away: the lease must expire */
        } else {
            char *path;
            json_t *body = json_pack("{s:s}", "lease", lease);
            if (rand_r(&seed) % 4 == 0) {
                path = xasprintf("/v1/tasks/%s/heartbeat", id);
                st = call_until_answered(&k, "POST", path, body, NULL, code, sizeof code);
                free(path);
            }
            json_object_set_new(body, "result", json_pack("{s:s,s:I}", "by", agent, "fence",
                                                          (json_int_t)fence));
            path = xasprintf("/v1/tasks/%s/done", id);
            st = call_until_answered(&k, "POST", path, body, NULL, code, sizeof code);
            free(path);
            json_decref(body);
            if (st == 200) {
                record("D %s %lld", id, fence);
                atomic_fetch_add(&finished, 1);
            } else if (st == 409) {
                /* by design only: the lease expired while the server was down, or a done
                 * that committed before a crash is repeated */
                record("R %s %lld %s", id, fence, code);
                if (strcmp(code, "stale_lease") && strcmp(code, "lease_expired"))
                    complain("done %s (fence %lld) refused with %s", id, fence, code);
            } else {
                complain("done %s (fence %lld) -> %ld %s", id, fence, st, code);
            }
        }
        free(id);
        free(lease);
    }
    json_decref(claim);
    if (k.ready)
        client_release(&k.c);
    return NULL;
}

static int load(int ncreators, int nworkers)
{
    char *p = xasprintf("%s/ledger", dir);
    ledger = fopen(p, "a");
    free(p);
    if (!ledger) {
        perror("ledger");
        return 1;
    }
    t_end = clock_wall_ms() + LOAD_DEADLINE_MS;
    pthread_t *th = xcalloc((size_t)(ncreators + nworkers), sizeof *th);
    for (int i = 0; i < ncreators; i++)
        pthread_create(&th[i], NULL, creator, (void *)(intptr_t)i);
    for (int i = 0; i < nworkers; i++)
        pthread_create(&th[ncreators + i], NULL, worker, (void *)(intptr_t)i);
    while (!exists("stop") && clock_wall_ms() < t_end)
        msleep(20);
    atomic_store(&stopping, 1);
    for (int i = 0; i < ncreators; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stopping, 2); /* no more creates: workers drain the swarm */
    for (int i = 0; i < nworkers; i++)
        pthread_join(th[ncreators + i], NULL);
    free(th);
    fclose(ledger);
    printf("load_drained %d\n", atomic_load(&drained));
    printf("load_violations %ld\n", atomic_load(&violations));
    return atomic_load(&drained) && !atomic_load(&violations) ? 0 : 1;
}

/* ---- check ---- */

struct entry {
    char *id;
    int created;      /* C lines */
    int maybe;        /* M or B lines */
    int listed;       /* seen in the server's listing */
    char state[16];
    long long fence;  /* the server's */
    long long done_fence; /* the D line's; 0 none */
    int dones;        /* D lines */
    long long *kf;    /* K fences */
    char **ka;        /* K agents */
    int nk;
};

static struct entry *ents;
static size_t nents, capents;

static struct entry *ent(const char *id)
{
    /* linear probe hash over ents (rebuilt on growth) */
    static size_t *ix;
    static size_t cap;
    if (nents * 2 >= cap) {
        size_t ncap = cap ? cap * 2 : 4096;
        free(ix);
        ix = xcalloc(ncap, sizeof *ix);
        cap = ncap;
        for (size_t i = 0; i < nents; i++) {
            size_t h = 5381;
            for (const char *p = ents[i].id; *p; p++)
                h = h * 33 + (unsigned char)*p;
            while (ix[h % cap])
                h++;
            ix[h % cap] = i + 1;
        }
    }
    size_t h = 5381;
    for (const char *p = id; *p; p++)
        h = h * 33 + (unsigned char)*p;
    while (ix[h % cap]) {
        struct entry *e = &ents[ix[h % cap] - 1];
        if (!strcmp(e->id, id))
            return e;
        h++;
    }
    if (nents == capents)
        ents = xgrow(ents, sizeof *ents, nents + 1, &capents);
    struct entry *e = &ents[nents];
    memset(e, 0, sizeof *e);
    e->id = xstrdup(id);
    ix[h % cap] = ++nents;
    return e;
}

static int check(void)
{
    char *p = xasprintf("%s/ledger", dir);
    FILE *f = fopen(p, "r");
    free(p);
    if (!f) {
        perror("ledger");
        return 1;
    }
    char line[1024];
    long nC = 0, nM = 0, nK = 0, nD = 0, nR = 0, nA = 0;
    struct {
        char *ids;
    } *batches = NULL;
    size_t nb = 0, capb = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char id[256], agent[64], code[64];
        long long fence;
        if (sscanf(line, "C %255s", id) == 1) {
            ent(id)->created++;
            nC++;
        } else if (sscanf(line, "M %255s", id) == 1) {
            ent(id)->maybe++;
            nM++;
        } else if (!strncmp(line, "B ", 2)) {
            if (nb == capb)
                batches = xgrow(batches, sizeof *batches, nb + 1, &capb);
            batches[nb++].ids = xstrdup(line + 2);
            nM++;
        } else if (sscanf(line, "K %255s %lld %63s", id, &fence, agent) == 3) {
            struct entry *e = ent(id);
            e->kf = xrealloc(e->kf, (size_t)(e->nk + 1) * sizeof *e->kf);
            e->ka = xrealloc(e->ka, (size_t)(e->nk + 1) * sizeof *e->ka);
            e->kf[e->nk] = fence;
            e->ka[e->nk++] = xstrdup(agent);
            nK++;
        } else if (sscanf(line, "D %255s %lld", id, &fence) == 2) {
            struct entry *e = ent(id);
            if (e->dones && e->done_fence != fence)
                complain("task %s acknowledged done twice: fences %lld and %lld", id,
                         e->done_fence, fence);
            else if (e->dones)
                complain("task %s acknowledged done twice with fence %lld", id, fence);
            e->dones++;
            e->done_fence = fence;
            nD++;
        } else if (sscanf(line, "R %255s %lld %63s", id, &fence, code) == 3) {
            nR++;
        } else if (sscanf(line, "A %255s %lld", id, &fence) == 2) {
            nA++;
        } else if (*line) {
            complain("unreadable ledger line '%s'", line);
        }
    }
    fclose(f);

    /* the server's view: every task of the swarm, in all states */
    struct conn k = {0};
    char *after = NULL;
    long listed = 0, phantom = 0;
    for (;;) {
        char *path = xasprintf("/v1/tasks?swarm=%s&limit=1000%s%s", swarm,
                               after ? "&after=" : "", after ? after : "");
        json_t *out = NULL;
        long st = call_until_answered(&k, "GET", path, NULL, &out, NULL, 0);
        free(path);
        if (st != 200) {
            printf("# cannot list tasks: %ld\n", st);
            return 1;
        }
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(out, "tasks"), i, t) {
            const char *id = json_string_value(json_object_get(t, "id"));
            struct entry *e = ent(id);
            if (e->listed++)
                complain("task %s listed twice", id);
            snprintf(e->state, sizeof e->state, "%s",
                     json_string_value(json_object_get(t, "state")));
            e->fence = json_integer_value(json_object_get(t, "fence"));
            listed++;
        }
        const char *next = json_string_value(json_object_get(out, "next"));
        free(after);
        after = next ? xstrdup(next) : NULL;
        json_decref(out);
        if (!after)
            break;
    }
    long lost_creates = 0, lost_dones = 0, unexplained = 0, shared = 0, not_done = 0;
    for (size_t i = 0; i < nents; i++) {
        struct entry *e = &ents[i];
        if (e->listed && !e->created && !e->maybe) {
            /* a member of a batch whose outcome is unknown is fine: checked below */
            int in_batch = 0;
            for (size_t b = 0; b < nb && !in_batch; b++) {
                const char *s = strstr(batches[b].ids, e->id);
                size_t l = strlen(e->id);
                in_batch = s && (s == batches[b].ids || s[-1] == ',') &&
                           (s[l] == ',' || !s[l]);
            }
            if (!in_batch) {
                phantom++;
                complain("task %s exists but was never asked for", e->id);
            }
        }
        if (e->created && !e->listed) {
            lost_creates++;
            complain("task %s was created (201) and is gone", e->id);
        }
        if (e->dones && (strcmp(e->state, "done") || e->fence != e->done_fence)) {
            lost_dones++;
            complain("task %s was done with fence %lld (200) and is now %s with fence %lld",
                     e->id, e->done_fence, e->state, e->fence);
        }
        if (e->listed && strcmp(e->state, "done")) {
            not_done++;
            if (not_done <= 5)
                complain("task %s is %s after the drain", e->id, e->state);
        }
        /* a fence is handed to one claimer only; a done needs the lease of a claim */
        for (int a = 0; a < e->nk; a++)
            for (int b = a + 1; b < e->nk; b++)
                if (e->kf[a] == e->kf[b]) {
                    shared++;
                    complain("task %s: fence %lld handed to %s and %s", e->id, e->kf[a],
                             e->ka[a], e->ka[b]);
                }
        if (e->listed && !strcmp(e->state, "done")) {
            int known = 0;
            for (int a = 0; a < e->nk; a++)
                known |= e->kf[a] == e->fence;
            if (!known) {
                unexplained++;
                complain("task %s is done with fence %lld, which no acknowledged claim held",
                         e->id, e->fence);
            }
        }
    }
    long torn = 0;
    for (size_t b = 0; b < nb; b++) {
        int have = 0, n = 0;
        char *s = batches[b].ids, *save = NULL;
        for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            n++;
            have += ent(tok)->listed ? 1 : 0;
        }
        if (have && have != n) {
            torn++;
            complain("batch create half applied: %d of %d tasks exist", have, n);
        }
        free(batches[b].ids);
    }
    free(batches);
    printf("created %ld\n", nC);
    printf("maybe_created %ld\n", nM);
    printf("claims %ld\n", nK);
    printf("dones %ld\n", nD);
    printf("refused %ld\n", nR);
    printf("abandoned %ld\n", nA);
    printf("listed %ld\n", listed);
    printf("lost_creates %ld\n", lost_creates);
    printf("lost_dones %ld\n", lost_dones);
    printf("shared_fences %ld\n", shared);
    printf("unexplained_dones %ld\n", unexplained);
    printf("phantoms %ld\n", phantom);
    printf("torn_batches %ld\n", torn);
    printf("not_done %ld\n", not_done);
    printf("violations %ld\n", atomic_load(&violations));
    if (k.ready)
        client_release(&k.c);
    return atomic_load(&violations) ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 6 && !strcmp(argv[1], "load")) {
        clean = getenv("CRASH_CLEAN") && !strcmp(getenv("CRASH_CLEAN"), "1");
        dir = argv[2];
        swarm = argv[3];
        return load(atoi(argv[4]), atoi(argv[5]));
    }
    if (argc == 4 && !strcmp(argv[1], "check")) {
        dir = argv[2];
        swarm = argv[3];
        return check();
    }
    fprintf(stderr, "usage: crash load DIR SWARM CREATORS WORKERS | crash check DIR SWARM\n");
    return 2;
}
