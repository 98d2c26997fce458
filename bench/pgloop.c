/* pgloop.c: the plain PostgreSQL queue that s2 on PostgreSQL is compared with (the peers'
 * peer_pg.c loop): THREADS workers, each its own connection, claim a task with
 * `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING` and mark
 * it done, each statement its own transaction (autocommit, synchronous_commit as the server
 * has it: both commits durable before the next step, as s2 replies only once durable).
 *
 *   pgloop CONNINFO TASKS THREADS    prints "tasks N", "seconds S", "tasks_per_s R",
 *                                    "claim_p50_ms", "claim_p99_ms", "duplicates D"
 * Uses (and drops) the table pgloop_tasks. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *conninfo;
static long ntasks;
static atomic_long done;
static _Atomic unsigned char *seen;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static PGconn *connect_or_die(void)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgloop: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static void exec_or_die(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgloop: %s: %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
}

struct worker {
    int64_t *lat;
    long n, cap;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    PGconn *c = connect_or_die();
    exec_or_die(c, "SET client_min_messages = warning");
    PGresult *r = PQprepare(c, "claim",
                            "UPDATE pgloop_tasks SET state = 'claimed', owner = $1 WHERE id ="
                            " (SELECT id FROM pgloop_tasks WHERE state = 'ready'"
                            " ORDER BY priority, id FOR UPDATE SKIP LOCKED LIMIT 1)"
                            " RETURNING id, payload",
                            1, NULL);
    PQclear(r);
    r = PQprepare(c, "done", "UPDATE pgloop_tasks SET state = 'done' WHERE id = $1", 1, NULL);
    PQclear(r);
    char owner[32];
    snprintf(owner, sizeof owner, "w%p", (void *)w);
    for (;;) {
        const char *a[1] = {owner};
        int64_t t0 = now_ns();
        r = PQexecPrepared(c, "claim", 1, a, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "pgloop: claim: %s", PQresultErrorMessage(r));
            exit(1);
        }
        if (PQntuples(r) == 0) {
            PQclear(r);
            break;
        }
        char id[32];
        snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        long ix = atol(id);
        if (ix >= 0 && ix < ntasks)
            atomic_fetch_add(&seen[ix], 1);
        const char *d[1] = {id};
        r = PQexecPrepared(c, "done", 1, d, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "pgloop: done: %s", PQresultErrorMessage(r));
            exit(1);
        }
        PQclear(r);
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 1024;
            w->lat = realloc(w->lat, (size_t)w->cap * sizeof *w->lat);
        }
        w->lat[w->n++] = now_ns() - t0;
        atomic_fetch_add(&done, 1);
    }
    PQfinish(c);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: pgloop CONNINFO TASKS THREADS\n");
        return 2;
    }
    conninfo = argv[1];
    ntasks = atol(argv[2]);
    int nthreads = atoi(argv[3]);
    if (ntasks < 1 || nthreads < 1 || nthreads > 1024) {
        fprintf(stderr, "pgloop: bad numbers\n");
        return 2;
    }
    PGconn *c = connect_or_die();
    exec_or_die(c, "SET client_min_messages = warning");
    exec_or_die(c, "DROP TABLE IF EXISTS pgloop_tasks");
    exec_or_die(c, "CREATE TABLE pgloop_tasks(id bigint PRIMARY KEY, state text NOT NULL,"
                   " owner text, priority int NOT NULL DEFAULT 0, payload text NOT NULL)");
    char fill[256];
    snprintf(fill, sizeof fill,
             "INSERT INTO pgloop_tasks(id, state, priority, payload)"
             " SELECT g, 'ready', 0, g::text FROM generate_series(0, %ld) g",
             ntasks - 1);
    exec_or_die(c, fill);
    exec_or_die(c, "CREATE INDEX pgloop_ready ON pgloop_tasks(priority, id) WHERE state = 'ready'");
    exec_or_die(c, "VACUUM ANALYZE pgloop_tasks");
    exec_or_die(c, "CHECKPOINT");
    seen = calloc((size_t)ntasks, 1);
    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    int64_t t0 = now_ns();
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, work, &w[i]);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    double secs = (now_ns() - t0) / 1e9;
    long n = 0, dups = 0, missing = 0;
    for (int i = 0; i < nthreads; i++)
        n += w[i].n;
    int64_t *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    long k = 0;
    for (int i = 0; i < nthreads; i++) {
        memcpy(all + k, w[i].lat, (size_t)w[i].n * sizeof *all);
        k += w[i].n;
        free(w[i].lat);
    }
    qsort(all, (size_t)n, sizeof *all, cmp);
    for (long i = 0; i < ntasks; i++) {
        dups += seen[i] > 1 ? seen[i] - 1 : 0;
        missing += !seen[i];
    }
    printf("tasks %ld\nseconds %.2f\ntasks_per_s %.0f\n", n, secs, n / secs);
    printf("claim_done_p50_ms %.3f\nclaim_done_p99_ms %.3f\n", n ? all[n / 2] / 1e6 : 0.0,
           n ? all[(long)(0.99 * (n - 1))] / 1e6 : 0.0);
    printf("duplicates %ld\nmissing %ld\n", dups, missing);
    exec_or_die(c, "DROP TABLE pgloop_tasks");
    PQfinish(c);
    free(all);
    free(w);
    free(th);
    free((void *)seen);
    return dups || missing ? 1 : 0;
}
