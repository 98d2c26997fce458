/* cli_serve.c: `s2 init` and `s2 serve`: the only commands that touch the database directly. */
#include "cli.h"
#include "cluster.h"
#include "engine.h"
#include "events.h"
#include "http.h"
#include "governor.h"
#include "keys.h"
#include "store.h"
#include "webhook.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_DB "s2.db"
#define DEFAULT_KEY "s2.key" /* PostgreSQL: the shared signing key */

/* `s2 init --store postgres://...`: the key file is shared by every node (they all sign
 * the one log), so an existing one is used; a database already initialised with the same
 * key is left as it is (init is idempotent for deployment scripts), with another key it is
 * refused. */
static int init_pg(struct cli *c, const char *store, const char *keyfile)
{
    struct s2_error err = S2_ERROR_INIT;
    char *pub = NULL, *token = NULL, *have = NULL;
    int rc = EXIT_FAIL, made_key = 0;
    if (access(keyfile, F_OK) == 0) {
        uint8_t sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];
        if (keys_load(keyfile, sk, pk, &err))
            goto fail;
        sodium_memzero(sk, sizeof sk);
        pub = keys_pub_b64(pk);
    } else {
        if (keys_create(keyfile, &pub, &err))
            goto fail;
        made_key = 1;
    }
    struct store_reader *rd = NULL;
    if (store_reader_open(&rd, store, &err))
        goto fail;
    have = store_reader_meta(rd, "public_key");
    store_reader_close(rd);
    if (have) {
        if (strcmp(have, pub)) {
            rc = cli_failf("the database already holds an s2 deployment signed by another key "
                           "(public key %s, not %s from '%s'): use its key file, or another "
                           "database",
                           have, pub, keyfile);
            goto out;
        }
        if (c->json) {
            json_t *o = json_pack("{s:s,s:b,s:s,s:s}", "store", store, "already_initialised", 1,
                                  "public_key", pub, "key_file", keyfile);
            cli_print_json(o);
            json_decref(o);
        } else {
            printf("%s is already initialised with this key (%s): nothing to do\n", store, pub);
        }
        rc = EXIT_OK;
        goto out;
    }
    if (engine_init_db(store, keyfile, &token, &err))
        goto fail;
    if (c->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "store", store, "db", store, "admin_token",
                              token, "public_key", pub, "key_file", keyfile);
        cli_print_json(o);
        json_decref(o);
    } else {
        printf("initialised %s (signing key %s)\n", store, keyfile);
        printf("admin token: %s\n", token);
        printf("public key:  %s\n", pub);
        printf("The admin token is shown only now: store it (export S2_TOKEN=...).\n"
               "Every node serving this database needs a copy of the key file.\n");
    }
    sodium_memzero(token, strlen(token));
    rc = EXIT_OK;
    goto out;
fail:
    rc = cli_fail(&err);
    if (made_key)
        unlink(keyfile);
out:
    s2_error_release(&err);
    free(token);
    free(pub);
    free(have);
    return rc;
}

int cli_init(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *db = DEFAULT_DB, *key = NULL;
    static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                         {"store", required_argument, 0, 'd'},
                                         {"key", required_argument, 0, 'k'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    int rc;
    CLI_OPTIONS(c, argc, argv, opts, case 'd' : db = optarg; break; case 'k' : key = optarg;
                break;);
    if (optind < argc)
        return cli_usage(&c, "unexpected argument '%s'", argv[optind]);
    if (store_location_is_pg(db))
        return init_pg(&c, db, key ? key : DEFAULT_KEY);
    db = store_location_path(db);
    struct s2_error err = S2_ERROR_INIT;
    char *keyfile = key ? xstrdup(key) : xasprintf("%s.key", db);
    char *pub = NULL, *token = NULL;
    if (access(db, F_OK) == 0) {
        free(keyfile);
        return cli_failf("database '%s' already exists; its admin token was printed when it was "
                         "created", db);
    }
    if (access(keyfile, F_OK) == 0) {
        /* a key without its database: keep it rather than orphan what it signed */
        int rc = cli_failf("key file '%s' exists without its database: move it away first",
                           keyfile);
        free(keyfile);
        return rc;
    }
    if (keys_create(keyfile, &pub, &err)) {
        free(keyfile);
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    if (engine_init_db(db, keyfile, &token, &err)) {
        unlink(keyfile);
        free(keyfile);
        free(pub);
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    if (c.json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "db", db, "admin_token", token, "public_key",
                              pub, "key_file", keyfile);
        cli_print_json(o);
        json_decref(o);
    } else {
        printf("created %s (signing key %s)\n", db, keyfile);
        printf("admin token: %s\n", token);
        printf("public key:  %s\n", pub);
        printf("The admin token is shown only now: store it (export S2_TOKEN=...).\n");
    }
    sodium_memzero(token, strlen(token));
    free(token);
    free(pub);
    free(keyfile);
    rc = EXIT_OK;
out:
    return rc;
}

static int write_port_file(const char *path, int port)
{
    char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%d\n", port) > 0;
    if (f && fclose(f))
        ok = 0;
    if (ok && rename(tmp, path))
        ok = 0;
    free(tmp);
    return ok ? 0 : -1;
}

struct notify_ctx {
    struct engine *eng;
    struct webhook *wh;
};

/* A durable escalation: to the policy's webhook, if one is set (driver thread). */
static void on_escalation(void *ctx, const char *json)
{
    struct notify_ctx *nc = ctx;
    const struct policy *p = engine_policy(nc->eng);
    if (p->webhook_url)
        webhook_post(nc->wh, p->webhook_url, p->webhook_timeout_ms, p->webhook_retries, json);
}

/* A node of a PostgreSQL deployment: the database and the key are checked here, so that a
 * mistake is reported at once rather than by a cluster thread later. */
static int serve_cluster(const char *store, const char *key, enum durability durability,
                         const char *listen, size_t max_body, const char *advertise,
                         const char *node_id, int64_t leader_timeout_ms, const char *port_file,
                         sigset_t *sigs)
{
    struct s2_error err = S2_ERROR_INIT;
    uint8_t sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    if (keys_load(key, sk, pk, &err)) {
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    sodium_memzero(sk, sizeof sk);
    struct store_reader *rd = NULL;
    if (store_reader_open(&rd, store, &err)) {
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    char *want = store_reader_meta(rd, "public_key");
    store_reader_close(rd);
    char *have = keys_pub_b64(pk);
    int bad = !want || strcmp(want, have);
    if (bad) {
        int rc = want ? cli_failf("the signing key '%s' (public key %s) is not the one of this "
                                  "database (%s): every node needs the key `s2 init` used",
                                  key, have, want)
                      : cli_failf("'%s' holds no s2 deployment: create one with `s2 init "
                                  "--store URL --key %s`",
                                  store, key);
        free(want);
        free(have);
        return rc;
    }
    free(want);
    free(have);
    struct cluster *cl = NULL;
    struct http_server *srv = NULL;
    struct cluster_config cc = {.location = store, .key_path = key, .durability = durability,
                                .listen = listen, .max_body = max_body, .advertise = advertise,
                                .node_id = node_id, .leader_timeout_ms = leader_timeout_ms};
    if (cluster_start(&cl, &srv, &cc, &err)) {
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    int port = http_port(srv);
    log_info("s2 %s node serving port %d (PostgreSQL, durability %s)", S2_VERSION, port,
             durability == DURABILITY_FULL ? "full" : "relaxed");
    printf("listening on port %d (cluster node on PostgreSQL)\n", port);
    fflush(stdout);
    if (port_file && write_port_file(port_file, port))
        log_warn("cannot write port file '%s': %s", port_file, strerror(errno));
    int sig = 0;
    do {
        sigwait(sigs, &sig);
    } while (sig == SIGPIPE);
    char *fatal = cluster_fatal(cl);
    if (!fatal)
        log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    cluster_stop(cl);
    if (fatal) {
        int rc = cli_failf("%s", fatal);
        free(fatal);
        return rc;
    }
    log_info("stopped");
    return EXIT_OK;
}

int cli_serve(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *db = DEFAULT_DB, *listen = "127.0.0.1:7411", *port_file = NULL, *key = NULL;
    const char *advertise = NULL, *node_id = NULL;
    enum durability durability = DURABILITY_FULL;
    long long max_body = 16 * 1024 * 1024, leader_timeout = 10;
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},        {"listen", required_argument, 0, 'l'},
        {"store", required_argument, 0, 'd'},     {"key", required_argument, 0, 'k'},
        {"advertise", required_argument, 0, 'A'}, {"node-id", required_argument, 0, 'N'},
        {"durability", required_argument, 0, 'D'}, {"leader-timeout", required_argument, 0, 'T'},
        {"max-body", required_argument, 0, 'b'},  {"log-level", required_argument, 0, 'L'},
        {"port-file", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'},
        {0}};
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': db = optarg; break;
        case 'l': listen = optarg; break;
        case 'p': port_file = optarg; break;
        case 'k': key = optarg; break;
        case 'A': advertise = optarg; break;
        case 'N': node_id = optarg; break;
        case 'D':
            if (!strcmp(optarg, "full"))
                durability = DURABILITY_FULL;
            else if (!strcmp(optarg, "relaxed"))
                durability = DURABILITY_RELAXED;
            else
                return cli_usage(&c, "--durability must be full or relaxed (got '%s')", optarg);
            break;
        case 'b':
            if (cli_int(&c, "--max-body", optarg, 1024, 1LL << 30, &max_body))
                return EXIT_USAGE;
            break;
        case 'T':
            if (cli_int(&c, "--leader-timeout", optarg, 0, 86400, &leader_timeout))
                return EXIT_USAGE;
            break;
        case 'L':
            if (!strcmp(optarg, "debug"))
                log_set_level(LOG_DEBUG);
            else if (!strcmp(optarg, "info"))
                log_set_level(LOG_INFO);
            else if (!strcmp(optarg, "warn"))
                log_set_level(LOG_WARN);
            else if (!strcmp(optarg, "error"))
                log_set_level(LOG_ERROR);
            else
                return cli_usage(&c, "--log-level must be debug, info, warn or error");
            break;
        case 'h': cli_help(cmd); return EXIT_OK;
        default: return cli_bad_option(&c, opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage(&c, "unexpected argument '%s'", argv[optind]);

    /* Signals are taken by this thread alone (sigwait), never by a worker mid-request. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* A server allocates and frees steadily: keep freed memory rather than hand it back to
     * the kernel and fault it in again (each costs syscalls and TLB shootdowns). */
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    mallopt(M_TOP_PAD, 16 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);

    struct s2_error err = S2_ERROR_INIT;
    struct engine *eng = NULL;
    int pg = store_location_is_pg(db);
    if (pg)
        return serve_cluster(db, key ? key : DEFAULT_KEY, durability, listen, (size_t)max_body,
                             advertise, node_id, (int64_t)leader_timeout * 1000, port_file,
                             &sigs);
    struct engine_config ec = {.db_path = db, .key_path = key, .durability = durability};
    if (engine_open(&eng, &ec, &err)) {
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    struct events *ev = events_new(65536);
    engine_set_events(eng, ev);
    struct webhook *wh = webhook_new();
    struct notify_ctx nc = {eng, wh};
    engine_set_notify(eng, on_escalation, &nc);
    if (engine_start(eng, &err)) {
        int rc = cli_fail(&err);
        engine_free(eng);
        events_free(ev);
        s2_error_release(&err);
        return rc;
    }
    struct http_server *srv = NULL;
    struct http_config hc = {.listen = listen, .max_body = (size_t)max_body, .engine = eng,
                             .events = ev};
    if (http_start(&srv, &hc, &err)) {
        int rc = cli_fail(&err);
        engine_stop(eng);
        webhook_free(wh, 0);
        engine_free(eng);
        events_free(ev);
        s2_error_release(&err);
        return rc;
    }
    int port = http_port(srv);
    char host[256];
    const char *colon = strrchr(listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (!*host)
        snprintf(host, sizeof host, "127.0.0.1");
    log_info("s2 %s serving http://%s:%d (database %s, durability %s)", S2_VERSION, host, port,
             db, durability == DURABILITY_FULL ? "full" : "relaxed");
    printf("listening on http://%s:%d\ndashboard: http://%s:%d/\n", host, port, host, port);
    fflush(stdout);
    if (port_file && write_port_file(port_file, port))
        log_warn("cannot write port file '%s': %s", port_file, strerror(errno));

    int sig = 0;
    do {
        sigwait(&sigs, &sig);
    } while (sig == SIGPIPE);
    log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_stop(srv, 5000); /* waiting claims answered, last batch committed and synced */
    webhook_free(wh, 3000);
    engine_free(eng);
    events_free(ev);
    log_info("stopped");
    return EXIT_OK;
}

static void migrate_progress(void *ctx, const char *table, int64_t rows)
{
    struct cli *c = ctx;
    if (!c->json)
        printf("  %-12s %10lld rows\n", table, (long long)rows);
}

/* `s2 migrate --from sqlite:PATH --to postgres://...`: a deployment moves to PostgreSQL, its
 * witness log included and still verifying (rows are copied as they are). */
int cli_migrate(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *from = NULL, *to = NULL;
    static const struct option opts[] = {{"from", required_argument, 0, 'f'},
                                         {"to", required_argument, 0, 't'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    int rc;
    CLI_OPTIONS(c, argc, argv, opts, case 'f' : from = optarg; break; case 't' : to = optarg;
                break;);
    if (optind < argc)
        return cli_usage(&c, "unexpected argument '%s'", argv[optind]);
    if (!from || !to)
        return cli_usage(&c, "give both --from sqlite:PATH and --to postgres://...");
    if (store_location_is_pg(from))
        return cli_usage(&c, "--from must be a SQLite database (sqlite:PATH or PATH)");
    if (!store_location_is_pg(to))
        return cli_usage(&c, "--to must be a PostgreSQL URL (postgres://...)");
    struct s2_error err = S2_ERROR_INIT;
    uint64_t entries = 0;
    if (!c.json)
        printf("copying %s into %s\n", from, to);
    int64_t t0 = clock_mono_ns();
    if (store_copy(from, to, migrate_progress, &c, &entries, &err)) {
        rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    double secs = (clock_mono_ns() - t0) / 1e9;
    const char *path = store_location_path(from);
    if (c.json) {
        json_t *o = json_pack("{s:s,s:s,s:I,s:f}", "from", from, "to", to, "witness_entries",
                              (json_int_t)entries, "seconds", secs);
        cli_print_json(o);
        json_decref(o);
    } else {
        printf("done in %.1f s: %llu witness entries copied.\n"
               "Check it with `s2 witness verify --db %s`; serve it with `s2 serve --store %s "
               "--key %s.key` on every node (they share that key file). Changes the SQLite "
               "server made after the copy began are not in it: stop that server before the "
               "final copy.\n",
               secs, (unsigned long long)entries, to, to, path);
    }
    rc = EXIT_OK;
out:
    return rc;
}
