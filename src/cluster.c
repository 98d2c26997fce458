/* cluster.c: several `s2 serve` nodes on one PostgreSQL database. One thread per node keeps
 * a dedicated connection: it heartbeats into the nodes' directory, tries the leader lock
 * while it follows, and on winning it loads a fresh engine (fenced by a new epoch) and hands
 * it to the HTTP loop; when its connection (and with it the lock) is lost it steps down at
 * once. It never decides a domain rule and never serves a request itself. */
#include "cluster.h"
#include "events.h"
#include "governor.h"
#include "http.h"
#include "store.h"
#include "webhook.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How often the cluster thread beats and looks for the lock: a takeover starts within this
 * of the old leader's session ending. */
#define TICK_MS 200
/* How often a follower asks whether the leader has gone silent (store_cluster_depose). */
#define DEPOSE_EVERY_MS 1000
/* Reconnect back-off, between these. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

struct cluster {
    struct cluster_config cfg;
    char *node_id, *url;
    int64_t started_at;
    struct http_server *srv;
    struct store_cluster *sc;
    struct webhook *wh;
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    /* what /v1/cluster shows (under mu) */
    char *role;
    struct store_leader leader;
    json_t *nodes;
    /* the cluster thread's own */
    int leading;
    int64_t epoch;
    struct engine *eng; /* the engine it handed over (the loop drives it) */
    char *following;    /* the URL the loop forwards to */
    struct notify_ctx *notifies; /* one per engine made (freed at the end) */
    char *fatal; /* why this node cannot serve at all (under mu) */
    int loaded;  /* take_over's engine serves: its beat_while_loading stops (under mu) */
    int64_t depose_at;  /* monotonic ms of the next look for a silent leader */
    int depose_warned;  /* a failed look was logged at warn (later ones at debug) */
};

struct notify_ctx {
    struct cluster *c;
    struct engine *eng;
    struct notify_ctx *next;
};

/* A durable escalation: to the policy's webhook (the loop thread, like on a single node). */
static void on_escalation(void *ctx, const char *json)
{
    struct notify_ctx *nc = ctx;
    const struct policy *p = engine_policy(nc->eng);
    if (p->webhook_url)
        webhook_post(nc->c->wh, p->webhook_url, p->webhook_timeout_ms, p->webhook_retries, json);
}

/* The loop no longer needs an engine it served. */
static void retire(void *ctx, struct engine *e, struct events *ev)
{
    (void)ctx;
    engine_free(e);
    events_free(ev);
}

static json_t *status(void *ctx)
{
    struct cluster *c = ctx;
    pthread_mutex_lock(&c->mu);
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "node", c->node_id, "url", c->url, "role",
                          c->role, "started_at", (json_int_t)c->started_at);
    json_t *l = json_pack("{s:I,s:I}", "epoch", (json_int_t)c->leader.epoch, "since",
                          (json_int_t)c->leader.since);
    json_object_set_new(l, "node", c->leader.node ? json_string(c->leader.node) : json_null());
    json_object_set_new(l, "url", c->leader.url ? json_string(c->leader.url) : json_null());
    json_object_set_new(o, "leader", l);
    json_object_set_new(o, "nodes", c->nodes ? json_deep_copy(c->nodes) : json_array());
    pthread_mutex_unlock(&c->mu);
    return o;
}

static void set_role(struct cluster *c, const char *role)
{
    pthread_mutex_lock(&c->mu);
    c->role = (char *)role;
    pthread_mutex_unlock(&c->mu);
}

/* Sleep up to ms, or until cluster_stop (or *until, when given, turns true). Returns 1
 * when stopping (or *until). */
static int nap_until(struct cluster *c, int64_t ms, const int *until)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    if (!c->stop && !(until && *until))
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    int stop = c->stop || (until && *until);
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static int nap(struct cluster *c, int64_t ms)
{
    return nap_until(c, ms, NULL);
}

/* While this node loads the state as the new leader, its session must go on speaking:
 * silent for the leader timeout, the other nodes would depose it in mid-load. The cluster
 * connection is this thread's alone until take_over sets loaded. */
static void *beat_while_loading(void *arg)
{
    struct cluster *c = arg;
    while (!nap_until(c, TICK_MS, &c->loaded)) {
        struct store_node me = {c->node_id, c->url, "starting", c->started_at, clock_wall_ms()};
        struct store_leader l;
        struct s2_error err = S2_ERROR_INIT;
        if (store_cluster_beat(c->sc, &me, &l, &err)) {
            s2_error_release(&err); /* the cluster thread sees the same failure next */
            break;
        }
        store_leader_release(&l);
    }
    return NULL;
}

/* A follower that cannot take the lock: is its holder silent? Then end its sessions, so
 * that the next try wins (or another follower's does). */
static void depose_if_silent(struct cluster *c)
{
    int64_t t = clock_mono_ns() / 1000000;
    if (c->cfg.leader_timeout_ms <= 0 || t < c->depose_at)
        return;
    c->depose_at = t + DEPOSE_EVERY_MS;
    struct s2_error err = S2_ERROR_INIT;
    char *who = NULL;
    int n = store_cluster_depose(c->sc, c->cfg.leader_timeout_ms, &who, &err);
    if (n < 0) {
        if (!c->depose_warned)
            log_warn("cluster: cannot depose a silent leader (said once): %s", err.msg);
        else
            log_debug("cluster: %s", err.msg);
        c->depose_warned = 1;
        s2_error_release(&err);
    } else if (n > 0) {
        log_warn("cluster: the leader (sessions '%s') was silent for more than %lld ms: its %d "
                 "session(s) ended, so that another node takes the lead",
                 who, (long long)c->cfg.leader_timeout_ms, n);
    }
    free(who);
}

static void follow(struct cluster *c, const char *url)
{
    if ((!url && !c->following) || (url && c->following && !strcmp(url, c->following)))
        return;
    free(c->following);
    c->following = url ? xstrdup(url) : NULL;
    http_follow(c->srv, url);
    if (url)
        log_info("cluster: following the leader at %s", url);
    else if (!c->leading)
        log_info("cluster: no leader known; requests get 503 until one serves");
}

/* Lost the lock (or never had it anymore): stop serving at once. */
static void step_down(struct cluster *c, const char *why)
{
    if (!c->leading)
        return;
    log_warn("cluster: stepping down as leader (epoch %lld): %s", (long long)c->epoch, why);
    http_lead(c->srv, NULL, NULL);
    c->leading = 0;
    c->eng = NULL;
    set_role(c, "follower");
}

/* Won the lock with a new epoch: load the state and serve it. */
static int take_over(struct cluster *c, int64_t epoch, struct s2_error *err)
{
    int64_t t0 = clock_mono_ns();
    log_info("cluster: this node takes the lead (epoch %lld); loading the state",
             (long long)epoch);
    set_role(c, "starting");
    struct engine *e = NULL;
    struct engine_config ec = {.db_path = c->cfg.location, .key_path = c->cfg.key_path,
                               .durability = c->cfg.durability, .fence_epoch = epoch};
    pthread_mutex_lock(&c->mu);
    c->loaded = 0;
    pthread_mutex_unlock(&c->mu);
    pthread_t beater;
    int beating = !pthread_create(&beater, NULL, beat_while_loading, c);
    struct events *ev = NULL;
    int rc = engine_open(&e, &ec, err);
    if (!rc) {
        ev = events_new(65536);
        engine_set_events(e, ev);
        struct notify_ctx *nc = xcalloc(1, sizeof *nc);
        nc->c = c;
        nc->eng = e;
        nc->next = c->notifies;
        c->notifies = nc;
        engine_set_notify(e, on_escalation, nc);
        rc = engine_start(e, err);
    }
    pthread_mutex_lock(&c->mu);
    c->loaded = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (beating)
        pthread_join(beater, NULL);
    if (rc) {
        engine_free(e);
        events_free(ev);
        return err->kind;
    }
    http_lead(c->srv, e, ev);
    c->eng = e;
    c->leading = 1;
    c->epoch = epoch;
    follow(c, NULL);
    if (store_cluster_publish(c->sc, c->node_id, epoch, err)) {
        step_down(c, err->msg);
        return err->kind;
    }
    set_role(c, "leader");
    log_info("cluster: leader (epoch %lld) serving after %.0f ms", (long long)epoch,
             (clock_mono_ns() - t0) / 1e6);
    return 0;
}

static void *cluster_main(void *arg)
{
    struct cluster *c = arg;
    int64_t backoff = 0;
    int connected = 1;
    while (!nap(c, connected ? TICK_MS : backoff)) {
        struct s2_error err = S2_ERROR_INIT;
        if (!connected) {
            if (store_cluster_reconnect(c->sc, &err)) {
                log_warn("cluster: %s (retrying in %lld ms)", err.msg, (long long)backoff);
                s2_error_release(&err);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            log_info("cluster: reconnected to PostgreSQL");
            connected = 1;
        }
        int64_t now = clock_wall_ms();
        struct store_node me = {c->node_id, c->url, c->leading ? "leader" : "follower",
                                c->started_at, now};
        struct store_leader leader;
        if (store_cluster_beat(c->sc, &me, &leader, &err)) {
            /* the session is gone, and the lock with it: no longer the leader */
            step_down(c, err.msg);
            follow(c, NULL);
            log_warn("cluster: %s", err.msg);
            s2_error_release(&err);
            connected = 0;
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        json_t *nodes = NULL;
        if (store_cluster_nodes(c->sc, &nodes, &err))
            s2_error_release(&err);
        pthread_mutex_lock(&c->mu);
        store_leader_release(&c->leader);
        c->leader = leader;
        json_decref(c->nodes);
        c->nodes = nodes;
        pthread_mutex_unlock(&c->mu);
        if (c->leading) {
            if (leader.epoch != c->epoch) /* cannot happen while the lock is held */
                step_down(c, "the leadership epoch moved on");
            continue;
        }
        /* a follower: point at the leader, and try to become it */
        int64_t epoch = 0;
        int got = store_cluster_try_lead(c->sc, now, &epoch, &err);
        if (got < 0) {
            log_warn("cluster: %s", err.msg);
            s2_error_release(&err);
            continue;
        }
        if (got == 0)
            depose_if_silent(c);
        if (got == 1) {
            if (take_over(c, epoch, &err)) {
                log_error("cluster: cannot serve as leader: %s", err.msg);
                if (err.kind != S2_EUNAVAIL) {
                    /* not a passing failure (a tampered log, another key, a newer schema):
                     * no node can serve this database until a human looks */
                    pthread_mutex_lock(&c->mu);
                    c->fatal = xstrdup(err.msg);
                    pthread_mutex_unlock(&c->mu);
                    s2_error_release(&err);
                    kill(getpid(), SIGTERM); /* the main thread stops the node */
                    break;
                }
                s2_error_release(&err);
                struct s2_error rerr = S2_ERROR_INIT;
                if (store_cluster_resign(c->sc, &rerr))
                    s2_error_release(&rerr);
                set_role(c, "follower");
                nap(c, 1000); /* let another node try */
            }
            continue;
        }
        pthread_mutex_lock(&c->mu);
        char *url = c->leader.node && c->leader.url && strcmp(c->leader.node, c->node_id)
                        ? xstrdup(c->leader.url)
                        : NULL;
        pthread_mutex_unlock(&c->mu);
        follow(c, url);
        free(url);
    }
    return NULL;
}

int cluster_start(struct cluster **out, struct http_server **srv_out,
                  const struct cluster_config *cfg, struct s2_error *err)
{
    struct cluster *c = xcalloc(1, sizeof *c);
    c->cfg = *cfg;
    c->started_at = clock_wall_ms();
    c->role = "follower";
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->wh = webhook_new();
    struct http_config hc = {.listen = cfg->listen, .max_body = cfg->max_body,
                             .store_location = cfg->location, .retire = retire,
                             .status = status, .ctx = c};
    if (http_start(&c->srv, &hc, err))
        goto fail;
    int port = http_port(c->srv);
    if (cfg->advertise) {
        c->url = xstrdup(cfg->advertise);
    } else {
        char host[256];
        const char *colon = strrchr(cfg->listen, ':');
        snprintf(host, sizeof host, "%.*s", (int)(colon - cfg->listen), cfg->listen);
        if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "[::]"))
            snprintf(host, sizeof host, "127.0.0.1");
        c->url = xasprintf("http://%s:%d", host, port);
    }
    size_t ul = strlen(c->url);
    while (ul && c->url[ul - 1] == '/')
        c->url[--ul] = 0;
    if (cfg->node_id) {
        c->node_id = xstrdup(cfg->node_id);
    } else {
        char hn[128] = "node";
        gethostname(hn, sizeof hn - 1);
        c->node_id = xasprintf("%s:%d", hn, port);
    }
    store_pg_set_node(c->node_id);
    http_set_node(c->srv, c->node_id);
    if (store_cluster_open(&c->sc, cfg->location, err))
        goto fail;
    if (pthread_create(&c->thread, NULL, cluster_main, c)) {
        s2_fail(err, S2_EINTERNAL, "thread", "cannot start the cluster thread");
        goto fail;
    }
    c->running = 1;
    log_info("cluster: node %s (%s) joined; looking for the leader", c->node_id, c->url);
    *out = c;
    *srv_out = c->srv;
    return 0;
fail:
    cluster_stop(c);
    return err->kind ? err->kind : S2_EINTERNAL;
}

char *cluster_fatal(struct cluster *c)
{
    pthread_mutex_lock(&c->mu);
    char *m = c->fatal ? xstrdup(c->fatal) : NULL;
    pthread_mutex_unlock(&c->mu);
    return m;
}

int cluster_port(const struct cluster *c)
{
    return http_port(c->srv);
}

void cluster_stop(struct cluster *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->running)
        pthread_join(c->thread, NULL);
    /* the loop stops the engine (its last batch commits while the lock is still held) */
    http_stop(c->srv, 5000);
    store_cluster_close(c->sc); /* ends the session: the lock is free for the others */
    webhook_free(c->wh, 3000);
    store_leader_release(&c->leader);
    json_decref(c->nodes);
    while (c->notifies) {
        struct notify_ctx *n = c->notifies;
        c->notifies = n->next;
        free(n);
    }
    free(c->following);
    free(c->fatal);
    free(c->node_id);
    free(c->url);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
