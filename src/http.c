/* http.c: server plumbing over libmicrohttpd (epoll, a thread pool, suspend/resume). It
 * must never apply a domain rule: handlers parse and authorise, the engine decides. A
 * request waiting for the engine is suspended (no thread is held), so thousands of agents
 * can long-poll at once. */
#include "http.h"
#include "witness.h"
#include "events.h"
#include "governor.h"
#include "json.h"
#include "model.h"
#include "store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/map.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PARAMS 4
#define CONN_LIMIT 20000

/* status codes counted per route for /metrics */
static const unsigned counted_status[] = {200, 201, 204, 400, 401, 403, 404,
                                          405, 409, 413, 429, 500, 503};
#define NSTATUS (sizeof counted_status / sizeof counted_status[0] + 1)

/* An engine this loop drives (a leader's), with its event stream. Requests dispatched to it
 * hold a reference, so that after a step-down it lives until the last of them is done. */
struct lead {
    struct engine *e;
    struct events *ev;
    int refs;
    int retired;
    int owned; /* freed through cfg.retire when retired and unreferenced */
    struct lead *next;
};

struct http_server {
    struct MHD_Daemon *mhd;
    pthread_t loop;
    int loop_started;
    int stop_fd;        /* eventfd: http_stop asks the loop to wind down */
    int stop_timeout_ms;
    struct lead *lead;    /* the engine served (NULL: a follower, or no leader) */
    struct lead *retired; /* stepped-down engines still referenced by requests */
    char *store_location;
    char *leader_url;     /* follower: where requests go (NULL: no leader known) */
    void (*retire)(void *ctx, struct engine *e, struct events *ev);
    json_t *(*status)(void *ctx);
    void *ctx;
    /* leadership changes, handed over to the loop (ctl_*: under ctl_mu) */
    pthread_mutex_t ctl_mu;
    int ctl_fd;
    int ctl_set_lead;               /* a new lead (ctl_lead, may be NULL: step down) */
    struct lead *ctl_lead;
    int ctl_set_url;
    char *ctl_url;
    int ep;                         /* the loop's epoll */
    /* the follower's forwarding (libcurl multi, driven by the same loop) */
    CURLM *multi;
    int64_t curl_deadline;          /* monotonic ms, -1 none */
    atomic_uint_fast64_t forwarded, forward_failed;
    struct request *fwds;           /* forwards in flight (to abandon on a change of leader) */
    char *node_id;                  /* a cluster node's id (NULL: one SQLite server) */
    size_t max_body;
    int port;
    atomic_int suspended;
    atomic_int live; /* requests begun and not yet completed */
    atomic_uint_fast64_t *counts; /* [(api_nroutes + 1) * NSTATUS] */
    /* per-swarm token buckets (the loop thread only) */
    struct map bucket_ix;
    struct bucket *buckets;
    char **bucket_names;
    size_t nbuckets, capbuckets;
    atomic_uint_fast64_t rate_limited;
    /* the worker thread for deferred work (http_defer): jobs in arrival order */
    pthread_t worker;
    int worker_started;
    pthread_mutex_t work_mu;
    pthread_cond_t work_cv;
    struct defer_job *work_head, *work_tail;
    int work_stop;
    int defer_fd; /* eventfd: deferred work finished, run libmicrohttpd to resume it */
};

struct defer_job {
    struct request *r;
    void (*work)(void *arg);
    void *arg;
    struct defer_job *next;
};

struct request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method, *url;
    struct buf body;
    int too_big;
    int dispatched;
    int route; /* index in api_routes, or -1 */
    char *segs;
    const char *params[MAX_PARAMS];
    struct principal who;
    struct cmd *cmd;
    void (*after)(struct request *, struct cmd *);
    atomic_int cmd_done;
    unsigned status;
    struct MHD_Response *resp;
    struct event_sub *sub;
    char *claim_task;
    uint64_t claim_fence;
    int64_t t0;
    /* http_defer: after runs on the loop thread once the worker has run the work */
    void (*defer_after)(struct request *, void *);
    void (*defer_release)(void *);
    void *defer_arg;
    atomic_int defer_done;
    struct lead *lead; /* the engine this request was dispatched to (a reference) */
    char *raw_uri;     /* as received, query string included (for forwarding) */
    /* forwarding to the leader */
    CURL *fwd;
    struct curl_slist *fwd_headers;
    struct buf fwd_body;   /* what the leader answered (a stream: what is not sent yet) */
    long fwd_status;
    char *fwd_type, *fwd_retry, *fwd_reason, *fwd_auth, *fwd_allow;
    int fwd_streaming;     /* the reply is an event stream, passed on as it comes */
    int fwd_done;          /* the leader's reply ended */
    int fwd_armed;         /* stream: the connection waits (suspended) for more */
    int fwd_paused;        /* stream: the transfer waits for the client to drain */
    char *fwd_to;          /* the leader it was sent to */
    struct request *fwd_prev, *fwd_next; /* the server's forwards in flight */
};

static pthread_key_t reader_key;
static pthread_once_t reader_once = PTHREAD_ONCE_INIT;

static void reader_free(void *p)
{
    store_reader_close(p);
}

static void reader_key_init(void)
{
    pthread_key_create(&reader_key, reader_free);
}

unsigned http_status_of(enum s2_err kind)
{
    switch (kind) {
    case S2_OK: return 200;
    case S2_EINVAL: return 400;
    case S2_ENOTFOUND: return 404;
    case S2_ECONFLICT: return 409;
    case S2_EUNAUTH: return 401;
    case S2_EFORBIDDEN: return 403;
    case S2_ETOOBIG: return 413;
    case S2_EUNAVAIL: return 503;
    case S2_ERATE: return 429;
    case S2_EMETHOD: return 405;
    case S2_EINTERNAL:
    case S2_EIO: return 500;
    }
    return 500;
}

static void http_free(struct http_server *s);

/* ---- leads ---- */

static void lead_unref(struct http_server *srv, struct lead *l)
{
    if (!l || --l->refs > 0 || !l->retired)
        return;
    struct lead **pp = &srv->retired;
    while (*pp && *pp != l)
        pp = &(*pp)->next;
    if (*pp)
        *pp = l->next;
    if (l->owned && srv->retire)
        srv->retire(srv->ctx, l->e, l->ev);
    free(l);
}

/* ---- replies ---- */

static void set_response(struct request *r, unsigned status, struct MHD_Response *resp)
{
    if (r->resp) { /* a handler replied twice: keep the first, it is a bug */
        log_error("http: second reply to %s %s ignored", r->method, r->url);
        MHD_destroy_response(resp);
        return;
    }
    r->status = status;
    r->resp = resp;
}

void http_set_header(struct request *r, const char *name, const char *value)
{
    if (r->resp)
        MHD_add_response_header(r->resp, name, value);
}

void http_reply_raw(struct request *r, unsigned status, const char *type, const void *data,
                    size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    set_response(r, status, resp);
}

void http_reply_json(struct request *r, unsigned status, json_t *body)
{
    if (!body) { /* a json_pack that failed (e.g. on text that is not UTF-8): a bug, not OOM */
        log_error("http: reply to %s %s could not be built as JSON", r->method, r->url);
        status = 500;
        body = json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message",
                         "internal error: the reply could not be encoded");
    }
    /* 15 significant digits: a micro-dollar amount reads as written (0.15, not 0.1499...) */
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(body);
    if (!s)
        xalloc_die(0);
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    set_response(r, status, resp);
}

/* A copy of s in which every byte that is not part of a valid UTF-8 sequence is '?' (caller
 * frees). Messages quote user input (URL paths, query arguments, clipped ids) and JSON
 * strings must be UTF-8. */
static char *utf8_clean(const char *s)
{
    char *out = xstrdup(s);
    for (char *p = out; *p;) {
        int l = model_utf8_len(p);
        if (!l) {
            *p++ = '?';
            continue;
        }
        for (int i = 0; i < l; i++) /* a sequence cut short by the NUL is invalid (0) */
            p++;
    }
    return out;
}

void http_reply_error(struct request *r, const struct s2_error *err)
{
    enum s2_err kind = err->kind ? err->kind : S2_EINTERNAL;
    char *msg = utf8_clean(err->msg ? err->msg : "internal error");
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", err->code ? err->code : s2_err_code(kind),
                          "message", msg);
    free(msg);
    unsigned status = http_status_of(kind);
    http_reply_json(r, status, o);
    if (status == 503)
        http_set_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401)
        http_set_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"s2\"");
}

void http_reply_fail(struct request *r, enum s2_err kind, const char *code, const char *fmt, ...)
{
    struct s2_error err = S2_ERROR_INIT;
    va_list ap;
    va_start(ap, fmt);
    err.msg = xvasprintf(fmt, ap);
    va_end(ap);
    err.kind = kind;
    err.code = code;
    http_reply_error(r, &err);
    s2_error_release(&err);
}

void http_reply_file(struct request *r, unsigned status, const char *type, FILE *f)
{
    fflush(f);
    off_t size = lseek(fileno(f), 0, SEEK_END);
    int fd = dup(fileno(f));
    fclose(f);
    if (size < 0 || fd < 0) {
        if (fd >= 0)
            close(fd);
        http_reply_fail(r, S2_EINTERNAL, "io", "cannot read the reply file");
        return;
    }
    /* MHD sends the file with sendfile and closes fd when done */
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64((uint64_t)size, fd, 0);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    set_response(r, status, resp);
}

void http_reply_none(struct request *r, const char *reason)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (reason)
        MHD_add_response_header(resp, "S2-Reason", reason);
    set_response(r, 204, resp);
}

/* ---- accessors ---- */

const char *http_param(struct request *r, int i)
{
    return i >= 0 && i < MAX_PARAMS ? r->params[i] : NULL;
}

const char *http_query(struct request *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct request *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}

const char *http_bearer(struct request *r)
{
    const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7))
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return h;
}

const struct principal *http_who(struct request *r)
{
    return &r->who;
}

struct engine *http_engine(struct request *r)
{
    return r->lead->e;
}

struct http_server *http_server_of(struct request *r)
{
    return r->srv;
}

int http_has_body(struct request *r)
{
    return r->body.len > 0;
}

json_t *http_body_object(struct request *r, struct s2_error *err)
{
    return json_parse_object(r->body.ptr, r->body.len, err);
}

static struct store_reader *thread_reader(struct http_server *srv, struct s2_error *err)
{
    pthread_once(&reader_once, reader_key_init);
    struct store_reader *rd = pthread_getspecific(reader_key);
    if (!rd) {
        if (store_reader_open(&rd, srv->store_location, err))
            return NULL;
        pthread_setspecific(reader_key, rd);
    }
    return rd;
}

struct store_reader *http_reader(struct request *r, struct s2_error *err)
{
    return thread_reader(r->srv, err);
}

/* ---- engine commands ---- */

static void cmd_finished(struct cmd *c)
{
    /* engine thread: only wake the request; the reply is built on an HTTP thread */
    struct request *r = c->ctx;
    atomic_store(&r->cmd_done, 1);
    atomic_fetch_sub(&r->srv->suspended, 1);
    MHD_resume_connection(r->conn);
}

void http_submit(struct request *r, struct cmd *c, void (*after)(struct request *, struct cmd *))
{
    c->who = r->who;
    if (witness_trace_from_headers(http_header(r, "S2-Trace-Id"), http_header(r, "traceparent"),
                                   c->trace_id))
        c->trace_id[0] = 0;
    c->done = cmd_finished;
    c->ctx = r;
    r->cmd = c;
    r->after = after;
    /* Suspend before submitting: the engine may finish (and resume) at once. */
    atomic_fetch_add(&r->srv->suspended, 1);
    MHD_suspend_connection(r->conn);
    engine_submit(r->lead->e, c);
}

void http_note_claim(struct request *r, const char *task, uint64_t fence)
{
    free(r->claim_task);
    r->claim_task = xstrdup(task);
    r->claim_fence = fence;
}

static void release_done(struct cmd *c)
{
    cmd_free(c);
}

/* ---- deferred work ---- */

static void *worker_main(void *arg)
{
    struct http_server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->work_mu);
        while (!srv->work_head && !srv->work_stop)
            pthread_cond_wait(&srv->work_cv, &srv->work_mu);
        struct defer_job *j = srv->work_head;
        if (!j) { /* stopping, nothing left */
            pthread_mutex_unlock(&srv->work_mu);
            return NULL;
        }
        srv->work_head = j->next;
        if (!srv->work_head)
            srv->work_tail = NULL;
        pthread_mutex_unlock(&srv->work_mu);
        j->work(j->arg);
        struct request *r = j->r;
        free(j);
        atomic_store(&r->defer_done, 1);
        atomic_fetch_sub(&srv->suspended, 1);
        MHD_resume_connection(r->conn);
        /* the loop may sleep in epoll_wait until its next timer: wake it now */
        uint64_t one = 1;
        if (write(srv->defer_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_warn("http: cannot wake the event loop: %s", strerror(errno));
    }
}

void http_defer(struct request *r, void (*work)(void *arg), void *arg,
                void (*after)(struct request *r, void *arg), void (*release)(void *arg))
{
    struct http_server *srv = r->srv;
    if (!srv->worker_started) { /* no worker thread could be made: do it here, late but done */
        work(arg);
        after(r, arg);
        return;
    }
    struct defer_job *j = xcalloc(1, sizeof *j);
    j->r = r;
    j->work = work;
    j->arg = arg;
    r->defer_after = after;
    r->defer_release = release;
    r->defer_arg = arg;
    atomic_store(&r->defer_done, 0);
    atomic_fetch_add(&srv->suspended, 1);
    MHD_suspend_connection(r->conn);
    pthread_mutex_lock(&srv->work_mu);
    if (srv->work_tail)
        srv->work_tail->next = j;
    else
        srv->work_head = j;
    srv->work_tail = j;
    pthread_cond_signal(&srv->work_cv);
    pthread_mutex_unlock(&srv->work_mu);
}

/* ---- server-sent events ---- */

/* Events older than the ring come from the witness log, in pages. */
#define BACKFILL_PAGE 256

struct backfill_page {
    struct buf *out;
    uint64_t last;
    int n;
};

static int backfill_row(void *ctx, const struct witness_entry *w)
{
    struct backfill_page *p = ctx;
    char extra[48] = "";
    json_t *params = json_loads(w->params, 0, NULL);
    const char *state = json_string_value(json_object_get(params, "state"));
    if (w->task && state)
        snprintf(extra, sizeof extra, ",\"state\":\"%.20s\"", state);
    json_decref(params);
    buf_addf(p->out, "id: %llu\ndata: ", (unsigned long long)w->seq);
    witness_entry_json(p->out, w, extra);
    buf_adds(p->out, "\n\n");
    p->last = w->seq;
    p->n++;
    return 0;
}

static int64_t sse_backfill(void *ctx, uint64_t from, uint64_t to, const char *swarm,
                            struct buf *out)
{
    struct http_server *srv = ctx;
    struct s2_error err = S2_ERROR_INIT;
    struct store_reader *rd = thread_reader(srv, &err);
    struct backfill_page p = {out, 0, 0};
    struct witness_filter f = {.from = from, .until = to, .limit = BACKFILL_PAGE, .swarm = swarm};
    if (!rd || store_reader_witness(rd, &f, backfill_row, &p, &err) < 0) {
        log_warn("event stream: cannot read the witness log: %s", err.msg);
        s2_error_release(&err);
        return -1;
    }
    /* a short page means nothing more matches up to `to` */
    return (int64_t)(p.n < BACKFILL_PAGE ? to : p.last);
}

static void sse_wake(void *arg)
{
    struct request *r = arg;
    atomic_fetch_sub(&r->srv->suspended, 1);
    MHD_resume_connection(r->conn);
}

static void sse_arm(void *arg)
{
    struct request *r = arg;
    atomic_fetch_add(&r->srv->suspended, 1);
    MHD_suspend_connection(r->conn);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct request *r = cls;
    ssize_t n = events_read(r->lead->ev, r->sub, buf, max, sse_arm, r);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

void http_stream_events(struct request *r, uint64_t after, const char *swarm)
{
    r->sub = events_subscribe(r->lead->ev, after, swarm, sse_wake, r);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, r, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    set_response(r, 200, resp);
}

/* ---- routing ---- */

/* Match url against pattern; on success the request's params point into r->segs. */
static int match(struct request *r, const char *pattern, const char *url)
{
    const char *p = pattern, *u = url;
    int np = 0;
    char *out = r->segs;
    while (*p && *u) {
        if (*p == ':') {
            while (*p && *p != '/')
                p++;
            const char *start = u;
            while (*u && *u != '/')
                u++;
            if (u == start || np == MAX_PARAMS)
                return 0;
            memcpy(out, start, (size_t)(u - start));
            out[u - start] = 0;
            r->params[np++] = out;
            out += u - start + 1;
            continue;
        }
        if (*p != *u)
            return 0;
        p++, u++;
    }
    if (*u == '/' && !u[1] && !*p) /* tolerate one trailing slash */
        u++;
    return !*p && !*u;
}

static void route(struct request *r)
{
    const char *url = r->url;
    size_t ulen = strlen(url);
    r->segs = xmalloc(ulen + MAX_PARAMS + 1);
    int path_matched = 0;
    struct buf allow = BUF_INIT;
    for (size_t i = 0; i < api_nroutes; i++) {
        const struct route *rt = &api_routes[i];
        memset(r->params, 0, sizeof r->params);
        if (!match(r, rt->pattern, url))
            continue;
        if (strcmp(rt->method, r->method)) {
            path_matched = 1;
            if (!strstr(allow.ptr, rt->method))
                buf_addf(&allow, "%s%s", allow.len ? ", " : "", rt->method);
            continue;
        }
        r->route = (int)i;
        buf_release(&allow);
        return;
    }
    memset(r->params, 0, sizeof r->params);
    if (path_matched) {
        http_reply_fail(r, S2_EMETHOD, "method_not_allowed", "%s is not allowed on %s (allowed: %s)",
                        r->method, url, allow.ptr);
        http_set_header(r, MHD_HTTP_HEADER_ALLOW, allow.ptr);
    } else {
        http_reply_fail(r, S2_ENOTFOUND, "no_such_route", "no such endpoint: %s %s", r->method,
                        url);
    }
    buf_release(&allow);
}

static int authenticate(struct request *r, enum route_auth need)
{
    const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h) {
        if (need == AUTH_NONE)
            return 0;
        http_reply_fail(r, S2_EUNAUTH, "unauthorized",
                        "missing bearer token: send 'Authorization: Bearer <token>' (the CLI "
                        "reads S2_TOKEN)");
        return -1;
    }
    if (strncasecmp(h, "Bearer ", 7)) {
        http_reply_fail(r, S2_EUNAUTH, "unauthorized",
                        "the Authorization header must be 'Bearer <token>'");
        return -1;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    if (engine_authenticate(r->lead->e, tok, &r->who)) {
        http_reply_fail(r, S2_EUNAUTH, "unauthorized", "unknown or revoked token");
        return -1;
    }
    if (need == AUTH_ADMIN && r->who.kind != PRIN_ADMIN) {
        http_reply_fail(r, S2_EFORBIDDEN, "forbidden", "this endpoint needs the admin token");
        return -1;
    }
    return 0;
}

/* Noisy neighbours: each swarm token draws from its swarm's bucket, so one runaway swarm
 * gets 429s while the others keep their share. */
static int rate_limited(struct request *r)
{
    struct http_server *srv = r->srv;
    const struct policy *p = engine_policy(r->lead->e);
    if (p->rate_limit_rps <= 0)
        return 0;
    uint32_t i = map_get(&srv->bucket_ix, r->who.swarm);
    if (i == MAP_NONE) {
        srv->buckets = xgrow(srv->buckets, sizeof *srv->buckets, srv->nbuckets + 1, &srv->capbuckets);
        size_t cap = srv->capbuckets;
        srv->bucket_names = xrealloc(srv->bucket_names, cap * sizeof *srv->bucket_names);
        i = (uint32_t)srv->nbuckets++;
        memset(&srv->buckets[i], 0, sizeof srv->buckets[i]);
        srv->bucket_names[i] = xstrdup(r->who.swarm);
        map_put(&srv->bucket_ix, srv->bucket_names[i], i);
    }
    int64_t wait_ms = 0;
    if (gov_bucket_take(&srv->buckets[i], p->rate_limit_rps, p->rate_limit_burst, clock_mono_ns() / 1000000,
                        &wait_ms) == 0)
        return 0;
    atomic_fetch_add(&srv->rate_limited, 1);
    char secs[24];
    snprintf(secs, sizeof secs, "%lld", (long long)((wait_ms + 999) / 1000));
    http_reply_fail(r, S2_ERATE, "rate_limited",
                    "swarm '%s' is over its request rate (%d/s, bursts of %d): retry in %lld ms",
                    r->who.swarm, p->rate_limit_rps, p->rate_limit_burst, (long long)wait_ms);
    http_set_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    return 1;
}

/* ---- a follower forwards every request to the leader (libcurl multi, same loop) ---- */

/* The largest stream backlog a slow client may leave before the transfer pauses. */
#define FWD_STREAM_MAX (1 << 20)

static void cluster_reply(struct request *r)
{
    struct http_server *srv = r->srv;
    json_t *o = srv->status ? srv->status(srv->ctx) : NULL;
    if (!o) {
        http_reply_fail(r, S2_ENOTFOUND, "no_cluster",
                        "this server is not part of a cluster (it serves one SQLite database)");
        return;
    }
    http_reply_json(r, 200, o);
}

static void fwd_wake(struct request *r)
{
    if (r->fwd_armed) {
        r->fwd_armed = 0;
        atomic_fetch_sub(&r->srv->suspended, 1);
        MHD_resume_connection(r->conn);
    }
}

static ssize_t fwd_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct request *r = cls;
    if (r->fwd_body.len) {
        size_t n = r->fwd_body.len < max ? r->fwd_body.len : max;
        memcpy(out, r->fwd_body.ptr, n);
        memmove(r->fwd_body.ptr, r->fwd_body.ptr + n, r->fwd_body.len - n);
        r->fwd_body.len -= n;
        r->fwd_body.ptr[r->fwd_body.len] = 0;
        if (r->fwd_paused && r->fwd_body.len < FWD_STREAM_MAX / 2 && r->fwd) {
            r->fwd_paused = 0;
            curl_easy_pause(r->fwd, CURLPAUSE_CONT);
        }
        return (ssize_t)n;
    }
    if (r->fwd_done || !r->fwd)
        return MHD_CONTENT_READER_END_OF_STREAM;
    /* nothing yet: wait, suspended, for the leader's next bytes */
    r->fwd_armed = 1;
    atomic_fetch_add(&r->srv->suspended, 1);
    MHD_suspend_connection(r->conn);
    return 0;
}

/* The leader's reply to a stream: passed on as it comes (once its headers are known). */
static void fwd_start_stream(struct request *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, fwd_read, r, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->fwd_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    set_response(r, (unsigned)r->fwd_status, resp);
    r->fwd_streaming = 1;
    /* the request waits suspended since forward_start: let MHD queue the reply */
    atomic_fetch_sub(&r->srv->suspended, 1);
    MHD_resume_connection(r->conn);
}

static size_t fwd_header(char *line, size_t size, size_t n, void *arg)
{
    struct request *r = arg;
    size_t len = size * n;
    struct {
        const char *name;
        char **slot;
    } keep[] = {{"content-type:", &r->fwd_type},
                {"retry-after:", &r->fwd_retry},
                {"s2-reason:", &r->fwd_reason},
                {"www-authenticate:", &r->fwd_auth},
                {"allow:", &r->fwd_allow}};
    if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
        /* a new status line (after a 100 Continue, say): forget what came before */
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
            free(*keep[i].slot);
            *keep[i].slot = NULL;
        }
        return len;
    }
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        size_t k = strlen(keep[i].name);
        if (len > k && !strncasecmp(line, keep[i].name, k)) {
            const char *v = line + k;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(line + len - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
                vl--;
            free(*keep[i].slot);
            *keep[i].slot = xstrndup(v, vl);
        }
    }
    if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) { /* end of the headers */
        curl_easy_getinfo(r->fwd, CURLINFO_RESPONSE_CODE, &r->fwd_status);
        if (r->fwd_status == 200 && r->fwd_type &&
            !strncmp(r->fwd_type, "text/event-stream", 17))
            fwd_start_stream(r);
    }
    return len;
}

static size_t fwd_write(char *data, size_t size, size_t n, void *arg)
{
    struct request *r = arg;
    size_t len = size * n;
    if (r->fwd_streaming && r->fwd_body.len > FWD_STREAM_MAX) {
        r->fwd_paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    buf_add(&r->fwd_body, data, len);
    if (r->fwd_streaming)
        fwd_wake(r);
    return len;
}

/* Stop forwarding r (done, or the client went away). */
static void forward_end(struct http_server *srv, struct request *r)
{
    curl_multi_remove_handle(srv->multi, r->fwd);
    curl_easy_cleanup(r->fwd);
    curl_slist_free_all(r->fwd_headers);
    r->fwd = NULL;
    r->fwd_headers = NULL;
    if (r->fwd_prev)
        r->fwd_prev->fwd_next = r->fwd_next;
    else
        srv->fwds = r->fwd_next;
    if (r->fwd_next)
        r->fwd_next->fwd_prev = r->fwd_prev;
    r->fwd_prev = r->fwd_next = NULL;
    free(r->fwd_to);
    r->fwd_to = NULL;
}

static void forward_unavailable(struct request *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void forward_unavailable(struct request *r, const char *code, const char *fmt, ...)
{
    struct s2_error err = S2_ERROR_INIT;
    va_list ap;
    va_start(ap, fmt);
    err.msg = xvasprintf(fmt, ap);
    va_end(ap);
    err.kind = S2_EUNAVAIL;
    err.code = code;
    http_reply_error(r, &err); /* 503 with Retry-After */
    s2_error_release(&err);
}

/* The forward is over: end the transfer and hand the connection back. An event stream
 * ends with what it passed on; any other request has its reply set by now. */
static void forward_finish(struct http_server *srv, struct request *r)
{
    r->fwd_done = 1;
    if (r->fwd_streaming) {
        fwd_wake(r);
        forward_end(srv, r);
        return;
    }
    forward_end(srv, r);
    atomic_fetch_sub(&srv->suspended, 1);
    MHD_resume_connection(r->conn);
}

static void forward_start(struct request *r)
{
    struct http_server *srv = r->srv;
    if (!srv->leader_url) {
        forward_unavailable(r, "no_leader",
                            "no leader is serving right now (one is being chosen or loading); "
                            "retry shortly");
        return;
    }
    CURL *h = curl_easy_init();
    if (!h)
        xalloc_die(0);
    char *url = xasprintf("%s%s", srv->leader_url, r->raw_uri ? r->raw_uri : r->url);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    static const char *const pass[] = {"Authorization", "Content-Type", "S2-Trace-Id",
                                       "traceparent",   "Last-Event-ID", "Accept"};
    struct curl_slist *hl = NULL;
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++) {
        const char *v = http_header(r, pass[i]);
        if (v) {
            char *line = xasprintf("%s: %s", pass[i], v);
            hl = curl_slist_append(hl, line);
            free(line);
        }
    }
    hl = curl_slist_append(hl, "Expect:");
    if (srv->node_id) { /* the leader leaves its own node metrics out of our /metrics */
        char *line = xasprintf("S2-Forwarded-By: %s", srv->node_id);
        hl = curl_slist_append(hl, line);
        free(line);
    }
    r->fwd_headers = hl;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    if (strcmp(r->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
        if (r->body.len || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT")) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)r->body.len);
            curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, r->body.ptr);
        }
    }
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fwd_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwd_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    r->fwd = h;
    r->fwd_to = xstrdup(srv->leader_url);
    r->fwd_prev = NULL;
    r->fwd_next = srv->fwds;
    if (srv->fwds)
        srv->fwds->fwd_prev = r;
    srv->fwds = r;
    atomic_fetch_add(&srv->forwarded, 1);
    atomic_fetch_add(&srv->suspended, 1);
    MHD_suspend_connection(r->conn);
    curl_multi_add_handle(srv->multi, h);
}

/* Transfers that ended: their replies go to the clients. */
static void forward_collect(struct http_server *srv)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(srv->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct request *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode res = m->data.result;
        if (r->fwd_streaming) { /* the stream ends with what was sent */
            forward_finish(srv, r);
            continue;
        }
        if (res != CURLE_OK) {
            atomic_fetch_add(&srv->forward_failed, 1);
            forward_unavailable(r, "leader_unreachable",
                                "the leader (%s) did not answer: %s; retry shortly",
                                srv->leader_url ? srv->leader_url : "none",
                                curl_easy_strerror(res));
        } else {
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (status == 200 && !strcmp(r->url, "/metrics") && !strcmp(r->method, "GET"))
                http_node_metrics(srv, &r->fwd_body); /* the leader's, then this node's own */
            http_reply_raw(r, (unsigned)status, r->fwd_type, r->fwd_body.ptr, r->fwd_body.len);
            const char *names[] = {MHD_HTTP_HEADER_RETRY_AFTER, "S2-Reason",
                                   MHD_HTTP_HEADER_WWW_AUTHENTICATE, MHD_HTTP_HEADER_ALLOW};
            char *vals[] = {r->fwd_retry, r->fwd_reason, r->fwd_auth, r->fwd_allow};
            for (int i = 0; i < 4; i++)
                if (vals[i])
                    http_set_header(r, names[i], vals[i]);
            http_set_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        }
        forward_finish(srv, r);
    }
}

/* The leader changed: what was sent to another node will not be answered by the leader
 * (a hung leader, deposed, may never answer at all). Replies that wait get 503 (the
 * client retries, as after a kill -9 of the leader); event streams end (the client
 * reconnects with Last-Event-ID). keep: the new leader's URL (NULL: abandon them all). */
static void forward_abandon(struct http_server *srv, const char *keep)
{
    struct request *next;
    for (struct request *r = srv->fwds; r; r = next) {
        next = r->fwd_next;
        if (keep && !strcmp(r->fwd_to, keep))
            continue;
        if (!r->fwd_streaming) {
            atomic_fetch_add(&srv->forward_failed, 1);
            forward_unavailable(r, "leader_unreachable",
                                "the leader changed while this request was with the one before "
                                "(%s); retry shortly",
                                r->fwd_to);
        }
        forward_finish(srv, r);
    }
}

/* libcurl tells which sockets to watch: into the loop's epoll, beside libmicrohttpd's. */
static int curl_socket_cb(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
    (void)h;
    struct http_server *srv = arg;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(srv->ep, EPOLL_CTL_DEL, fd, NULL);
        curl_multi_assign(srv->multi, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
                                       (what & CURL_POLL_OUT ? EPOLLOUT : 0),
                             .data.fd = fd};
    if (epoll_ctl(srv->ep, sockp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) && !sockp)
        log_warn("http: epoll_ctl for a forwarded request: %s", strerror(errno));
    if (!sockp)
        curl_multi_assign(srv->multi, fd, srv);
    return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *arg)
{
    (void)m;
    struct http_server *srv = arg;
    srv->curl_deadline = timeout_ms < 0 ? -1 : clock_mono_ns() / 1000000 + timeout_ms;
    return 0;
}

/* ---- leadership changes (from the cluster's thread; applied by the loop) ---- */

static void ctl_signal(struct http_server *s)
{
    uint64_t one = 1;
    if (write(s->ctl_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("http: cannot signal the event loop: %s", strerror(errno));
}

void http_lead(struct http_server *s, struct engine *e, struct events *ev)
{
    struct lead *l = NULL;
    if (e) {
        l = xcalloc(1, sizeof *l);
        l->e = e;
        l->ev = ev;
        l->owned = 1;
    }
    pthread_mutex_lock(&s->ctl_mu);
    if (s->ctl_set_lead && s->ctl_lead) { /* superseded before the loop took it */
        struct lead *old = s->ctl_lead;
        if (s->retire)
            s->retire(s->ctx, old->e, old->ev);
        free(old);
    }
    s->ctl_set_lead = 1;
    s->ctl_lead = l;
    pthread_mutex_unlock(&s->ctl_mu);
    ctl_signal(s);
}

void http_follow(struct http_server *s, const char *leader_url)
{
    pthread_mutex_lock(&s->ctl_mu);
    free(s->ctl_url);
    s->ctl_url = leader_url ? xstrdup(leader_url) : NULL;
    s->ctl_set_url = 1;
    pthread_mutex_unlock(&s->ctl_mu);
    ctl_signal(s);
}

static void lead_install(struct http_server *srv, struct lead *l)
{
    srv->lead = l;
    l->refs = 1; /* the server's own */
    engine_set_driver(l->e);
    if (l->ev)
        events_set_backfill(l->ev, sse_backfill, srv);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = engine_wake_fd(l->e)};
    if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, ev.data.fd, &ev))
        log_error("http: epoll_ctl: %s", strerror(errno));
}

/* Stop serving the current engine: its waiting claims are answered, its last batch commits
 * (or fails, fenced), its streams end; it is freed once no request holds it. */
static void lead_retire(struct http_server *srv)
{
    struct lead *l = srv->lead;
    if (!l)
        return;
    srv->lead = NULL;
    epoll_ctl(srv->ep, EPOLL_CTL_DEL, engine_wake_fd(l->e), NULL);
    engine_stop(l->e);
    if (l->ev)
        events_close(l->ev);
    l->retired = 1;
    l->next = srv->retired;
    srv->retired = l;
    lead_unref(srv, l);
}

static void ctl_apply(struct http_server *srv)
{
    uint64_t v;
    while (read(srv->ctl_fd, &v, sizeof v) > 0) {
    }
    pthread_mutex_lock(&srv->ctl_mu);
    int set_lead = srv->ctl_set_lead, set_url = srv->ctl_set_url;
    struct lead *l = srv->ctl_lead;
    char *url = srv->ctl_url;
    srv->ctl_set_lead = srv->ctl_set_url = 0;
    srv->ctl_lead = NULL;
    srv->ctl_url = NULL;
    pthread_mutex_unlock(&srv->ctl_mu);
    if (set_lead) {
        lead_retire(srv);
        if (l)
            lead_install(srv, l);
    }
    if (set_url) {
        free(srv->leader_url);
        srv->leader_url = url;
    }
    /* (a follower that merely lost sight of the leader, url NULL, keeps what it forwarded) */
    if (set_lead && l)
        forward_abandon(srv, NULL);
    else if (set_url && srv->leader_url)
        forward_abandon(srv, srv->leader_url);
}

static void dispatch(struct request *r)
{
    if (r->too_big) {
        http_reply_fail(r, S2_ETOOBIG, "too_large", "request body is larger than %zu bytes",
                        r->srv->max_body);
        return;
    }
    if (!strcmp(r->url, "/v1/cluster")) { /* every node's own: never forwarded */
        if (strcmp(r->method, "GET")) {
            http_reply_fail(r, S2_EMETHOD, "method_not_allowed",
                            "%s is not allowed on /v1/cluster (allowed: GET)", r->method);
            http_set_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
        } else {
            cluster_reply(r);
        }
        return;
    }
    if (!r->srv->lead) { /* not the leader: the leader answers, through us */
        forward_start(r);
        return;
    }
    r->lead = r->srv->lead;
    r->lead->refs++;
    route(r);
    if (r->resp)
        return;
    const struct route *rt = &api_routes[r->route];
    /* anonymous requests to public routes run as nobody in particular */
    r->who.kind = PRIN_SWARM;
    r->who.swarm = NULL;
    r->who.name = "anonymous";
    if (authenticate(r, rt->auth))
        return;
    if (r->who.kind == PRIN_SWARM && r->who.swarm && rate_limited(r))
        return;
    rt->handler(r);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct http_server *srv = cls;
    struct request *r = *con_cls;
    if (!r || !r->conn) {
        if (!r) {
            r = xcalloc(1, sizeof *r);
            buf_init(&r->fwd_body, 0);
        }
        r->srv = srv;
        r->conn = conn;
        r->url = url;
        r->method = method;
        r->route = -1;
        r->t0 = clock_mono_ns();
        buf_init(&r->body, srv->max_body);
        *con_cls = r;
        atomic_fetch_add(&srv->live, 1);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (len > srv->max_body)
            r->too_big = 1;
        /* A body somewhat too big is read and dropped before the 413: answering while the
         * client still sends makes the kernel reset the connection, and the client may never
         * see the reply. A client that waits for "100 Continue" sends nothing yet, and a
         * body far too big is not worth reading: those are refused at once. */
        const char *expect =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if (!r->too_big || (!(expect && strcasestr(expect, "100-continue")) &&
                            len <= 8 * (unsigned long long)srv->max_body + (1u << 20)))
            return MHD_YES;
    } else if (*upload_data_size) {
        if (!r->too_big && buf_add(&r->body, upload_data, *upload_data_size)) {
            r->too_big = 1;
            buf_release(&r->body);
        }
        *upload_data_size = 0;
        /* A body without Content-Length (chunked) that outgrows the limit: libmicrohttpd
         * takes no reply while the body is still arriving (queueing one fails and the
         * connection is dropped without a word), so discard the rest and answer 413 at the
         * end of the request. */
        return MHD_YES;
    }
    if (r->defer_after && atomic_load(&r->defer_done)) {
        void (*after)(struct request *, void *) = r->defer_after;
        void *arg = r->defer_arg;
        r->defer_after = NULL;
        r->defer_release = NULL;
        r->defer_arg = NULL;
        atomic_store(&r->defer_done, 0);
        after(r, arg); /* owns arg; replies, or submits a command */
        if (!r->resp && !r->cmd)
            http_reply_fail(r, S2_EINTERNAL, "internal", "no reply was made");
        if (!r->resp)
            return MHD_YES;
    } else if (r->cmd && atomic_load(&r->cmd_done)) {
        struct cmd *c = r->cmd;
        r->cmd = NULL;
        atomic_store(&r->cmd_done, 0);
        r->after(r, c); /* may reply, or submit a follow-up command */
        cmd_free(c);
        if (!r->resp && !r->cmd)
            http_reply_fail(r, S2_EINTERNAL, "internal", "no reply was made");
    } else if (!r->dispatched) {
        r->dispatched = 1;
        dispatch(r);
        if (!r->resp) /* waiting for the engine */
            return MHD_YES;
    }
    if (!r->resp)
        return MHD_YES;
    struct MHD_Response *resp = r->resp;
    enum MHD_Result ok = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* The URI as it arrived (query string included), before libmicrohttpd parses it: what a
 * follower forwards. Makes the request's state, which on_request completes. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    struct request *r = xcalloc(1, sizeof *r);
    buf_init(&r->fwd_body, 0);
    r->raw_uri = xstrdup(uri);
    return r;
}

static int status_slot(unsigned status)
{
    for (size_t i = 0; i < NSTATUS - 1; i++)
        if (counted_status[i] == status)
            return (int)i;
    return NSTATUS - 1;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    struct http_server *srv = cls;
    struct request *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    if (r->sub)
        events_unsubscribe(r->lead->ev, r->sub);
    if (r->fwd)
        forward_end(srv, r);
    if (r->claim_task && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        /* The client never got its lease: give the task back now rather than at expiry. */
        struct cmd *c = cmd_new(CMD_RELEASE);
        c->who.kind = PRIN_ADMIN;
        c->in.release.task = r->claim_task;
        c->in.release.fence = r->claim_fence;
        r->claim_task = NULL;
        c->done = release_done;
        engine_submit(r->lead->e, c);
    }
    int route = r->route >= 0 ? r->route : (int)api_nroutes;
    atomic_fetch_add(&srv->counts[(size_t)route * NSTATUS + (size_t)status_slot(r->status)], 1);
    if (log_get_level() <= LOG_DEBUG)
        log_debug("%s %s %u %.3f ms%s", r->method, r->url, r->status,
                  (clock_mono_ns() - r->t0) / 1e6,
                  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (not delivered)");
    if (r->defer_release && r->defer_arg) /* its work ran, but never its reply (shutdown) */
        r->defer_release(r->defer_arg);
    if (r->cmd && atomic_load(&r->cmd_done)) /* answered, but the client left first */
        cmd_free(r->cmd);
    else if (r->cmd) /* never finished: cannot happen once the engine has stopped */
        log_error("http: request %s %s ended with its command in flight", r->method, r->url);
    if (r->conn) /* counted when on_request began it */
        atomic_fetch_sub(&srv->live, 1);
    buf_release(&r->body);
    buf_release(&r->fwd_body);
    free(r->fwd_type);
    free(r->fwd_retry);
    free(r->fwd_reason);
    free(r->fwd_auth);
    free(r->fwd_allow);
    free(r->raw_uri);
    free(r->segs);
    free(r->claim_task);
    lead_unref(srv, r->lead);
    free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    log_warn("http: %s", msg);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                        struct s2_error *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1])
        return s2_fail(err, S2_EINVAL, "invalid_listen",
                       "listen address '%s' must be HOST:PORT (e.g. 127.0.0.1:7411)", listen);
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return s2_fail(err, S2_EINVAL, "invalid_listen", "listen host is too long");
    memcpy(host, listen, hl);
    host[hl] = 0;
    char *h = host;
    if (*h == '[' && hl >= 2 && h[hl - 1] == ']') {
        h[hl - 1] = 0;
        h++;
    }
    if (!*h)
        h = "127.0.0.1";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(h, colon + 1, &hints, &res);
    if (rc)
        return s2_fail(err, S2_EINVAL, "invalid_listen", "cannot use listen address '%s': %s",
                       listen, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* The event loop: wait for network activity, engine work (a command from another thread,
 * a finished flush), a forwarded request's progress, a leadership change or the next
 * timer; let libmicrohttpd run the handlers (which submit commands), step the engine (one
 * batch, one commit), and run libmicrohttpd again to send what the batch answered. Like
 * Redis' event loop, so a request costs no thread switch. */
static void *loop_main(void *arg)
{
    struct http_server *srv = arg;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    int mhd_fd = di ? di->epoll_fd : -1;
    int fds[4] = {mhd_fd, srv->stop_fd, srv->ctl_fd, srv->defer_fd};
    for (int i = 0; i < 4; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (fds[i] >= 0 && epoll_ctl(srv->ep, EPOLL_CTL_ADD, fds[i], &ev))
            log_error("http: epoll_ctl: %s", strerror(errno));
    }
    if (srv->lead)
        lead_install(srv, srv->lead);
    int stopping = 0;
    int64_t deadline = 0;
    for (;;) {
        int64_t to = -1;
        MHD_UNSIGNED_LONG_LONG mt;
        if (MHD_get_timeout(srv->mhd, &mt) == MHD_YES)
            to = mt > INT32_MAX ? INT32_MAX : (int64_t)mt;
        if (!stopping && srv->lead) {
            int64_t at = engine_next_deadline(srv->lead->e);
            if (at == 0) {
                to = 0;
            } else if (at > 0) {
                int64_t wait = at - clock_wall_ms();
                if (wait < 0)
                    wait = 0;
                if (to < 0 || wait < to)
                    to = wait;
            }
        } else if (stopping && (to < 0 || to > 10)) {
            to = 10;
        }
        if (srv->curl_deadline >= 0) {
            int64_t wait = srv->curl_deadline - clock_mono_ns() / 1000000;
            if (wait < 0)
                wait = 0;
            if (to < 0 || wait < to)
                to = wait;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(srv->ep, evs, 64, (int)to);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == srv->defer_fd) {
                uint64_t v;
                if (read(srv->defer_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_warn("http: eventfd: %s", strerror(errno));
            } else if (fd == srv->stop_fd) {
                if (stopping)
                    continue;
                stopping = 1;
                deadline = clock_mono_ns() + (int64_t)srv->stop_timeout_ms * 1000000;
                MHD_socket lfd = MHD_quiesce_daemon(srv->mhd);
                if (lfd != MHD_INVALID_SOCKET)
                    close(lfd);
                if (srv->lead) {
                    /* answers waiting claims, commits and syncs the last batch, ends streams */
                    engine_stop(srv->lead->e);
                    if (srv->lead->ev)
                        events_close(srv->lead->ev);
                }
            } else if (fd == srv->ctl_fd) {
                if (!stopping)
                    ctl_apply(srv);
            } else if (fd != mhd_fd && (!srv->lead || fd != engine_wake_fd(srv->lead->e))) {
                int mask = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                           (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                           (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
                int running;
                curl_multi_socket_action(srv->multi, fd, mask, &running);
            }
        }
        if (srv->curl_deadline >= 0 && clock_mono_ns() / 1000000 >= srv->curl_deadline) {
            int running;
            srv->curl_deadline = -1;
            curl_multi_socket_action(srv->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        forward_collect(srv);
        MHD_run(srv->mhd);
        if (!stopping && srv->lead) {
            engine_step(srv->lead->e);
            MHD_run(srv->mhd); /* send what the batch answered */
        }
        if (stopping) {
            /* every request answered and its reply handed to the socket, not only resumed */
            if (atomic_load(&srv->suspended) <= 0 && atomic_load(&srv->live) <= 0)
                break;
            if (clock_mono_ns() > deadline) {
                log_warn("http: %d requests still suspended at shutdown",
                         atomic_load(&srv->suspended));
                break;
            }
        }
    }
    return NULL;
}

int http_start(struct http_server **out, const struct http_config *cfg, struct s2_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (parse_listen(cfg->listen, &ss, &sslen, err))
        return S2_EINVAL;
    /* Every waiting agent holds a connection: allow many. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct http_server *srv = xcalloc(1, sizeof *srv);
    if (cfg->engine) { /* one engine for the server's life (SQLite; freed by the caller) */
        srv->lead = xcalloc(1, sizeof *srv->lead);
        srv->lead->e = cfg->engine;
        srv->lead->ev = cfg->events;
    }
    srv->store_location =
        xstrdup(cfg->store_location ? cfg->store_location : engine_db_path(cfg->engine));
    srv->retire = cfg->retire;
    srv->status = cfg->status;
    srv->ctx = cfg->ctx;
    pthread_mutex_init(&srv->ctl_mu, NULL);
    srv->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->ep = epoll_create1(EPOLL_CLOEXEC);
    srv->curl_deadline = -1;
    srv->multi = curl_multi_init();
    curl_multi_setopt(srv->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(srv->multi, CURLMOPT_SOCKETDATA, srv);
    curl_multi_setopt(srv->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(srv->multi, CURLMOPT_TIMERDATA, srv);
    /* keep connections to the leader open and many at once (long polls each hold one) */
    curl_multi_setopt(srv->multi, CURLMOPT_MAXCONNECTS, 1024L);
    srv->max_body = cfg->max_body;
    srv->counts = xcalloc((api_nroutes + 1) * NSTATUS, sizeof *srv->counts);
    map_init(&srv->bucket_ix);
    /* One thread serves every connection and drives the engine (see loop_main): no hand-off
     * between threads on the path of a request. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_TURBO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned limit = CONN_LIMIT;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)limit + 64)
        limit = rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64 : 64;
    srv->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->defer_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_END);
    if (!srv->mhd || srv->stop_fd < 0 || srv->ctl_fd < 0 || srv->ep < 0 || srv->defer_fd < 0) {
        if (srv->mhd)
            MHD_stop_daemon(srv->mhd);
        http_free(srv);
        return s2_fail(err, S2_EUNAVAIL, "listen_failed",
                       "cannot listen on %s (address in use, or not permitted?)", cfg->listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : 0;
    if (pthread_create(&srv->loop, NULL, loop_main, srv)) {
        MHD_stop_daemon(srv->mhd);
        http_free(srv);
        return s2_fail(err, S2_EINTERNAL, "thread", "cannot start the event loop thread");
    }
    srv->loop_started = 1;
    pthread_mutex_init(&srv->work_mu, NULL);
    pthread_cond_init(&srv->work_cv, NULL);
    if (pthread_create(&srv->worker, NULL, worker_main, srv) == 0)
        srv->worker_started = 1;
    else
        log_warn("http: cannot start the worker thread: deferred requests will wait");
    *out = srv;
    return 0;
}

int http_port(const struct http_server *s)
{
    return s->port;
}

/* Everything but the daemon and the loop (stopped before). */
static void http_free(struct http_server *s)
{
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    if (s->ctl_fd >= 0)
        close(s->ctl_fd);
    if (s->defer_fd >= 0)
        close(s->defer_fd);
    if (s->ep >= 0)
        close(s->ep);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    /* engines handed over but never installed, and those still retired */
    if (s->ctl_lead && s->retire)
        s->retire(s->ctx, s->ctl_lead->e, s->ctl_lead->ev);
    free(s->ctl_lead);
    free(s->ctl_url);
    while (s->retired) {
        struct lead *l = s->retired;
        s->retired = l->next;
        if (l->owned && s->retire)
            s->retire(s->ctx, l->e, l->ev);
        free(l);
    }
    if (s->lead) {
        if (s->lead->owned && s->retire)
            s->retire(s->ctx, s->lead->e, s->lead->ev);
        free(s->lead);
    }
    pthread_mutex_destroy(&s->ctl_mu);
    free(s->leader_url);
    free(s->node_id);
    free(s->store_location);
    free(s->counts);
    map_release(&s->bucket_ix);
    for (size_t i = 0; i < s->nbuckets; i++)
        free(s->bucket_names[i]);
    free(s->bucket_names);
    free(s->buckets);
    free(s);
}

void http_stop(struct http_server *s, int timeout_ms)
{
    if (!s)
        return;
    s->stop_timeout_ms = timeout_ms;
    uint64_t one = 1;
    if (write(s->stop_fd, &one, sizeof one) < 0)
        log_warn("http: cannot signal the event loop to stop: %s", strerror(errno));
    if (s->loop_started)
        pthread_join(s->loop, NULL);
    if (s->worker_started) { /* it finishes the jobs it has (the engine answers 503 now) */
        pthread_mutex_lock(&s->work_mu);
        s->work_stop = 1;
        pthread_cond_signal(&s->work_cv);
        pthread_mutex_unlock(&s->work_mu);
        pthread_join(s->worker, NULL);
        pthread_mutex_destroy(&s->work_mu);
        pthread_cond_destroy(&s->work_cv);
    }
    MHD_stop_daemon(s->mhd); /* completes every connection (forwards included) */
    http_free(s);
}

void http_set_node(struct http_server *s, const char *node_id)
{
    free(s->node_id);
    s->node_id = node_id ? xstrdup(node_id) : NULL;
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void add_label_value(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_addch(b, '\\');
        if (*v == '\n')
            buf_adds(b, "\\n");
        else
            buf_addch(b, *v);
    }
}

void http_node_metrics(struct http_server *s, struct buf *b)
{
    if (!s->node_id)
        return;
    json_t *st = s->status ? s->status(s->ctx) : NULL;
    const char *role = json_string_value(json_object_get(st, "role"));
    struct buf node = BUF_INIT;
    add_label_value(&node, s->node_id);
    buf_addf(b, "# HELP s2_node_info This node of the cluster (1): its id and role now.\n"
                "# TYPE s2_node_info gauge\ns2_node_info{node=\"%s\",role=\"%s\"} 1\n",
             node.ptr, role ? role : "unknown");
    buf_addf(b, "# HELP s2_node_forwarded_total Requests this node forwarded to the leader.\n"
                "# TYPE s2_node_forwarded_total counter\ns2_node_forwarded_total{node=\"%s\"} %llu\n"
                "# HELP s2_node_forward_failures_total Forwarded requests answered 503 "
                "leader_unreachable (no reply, or the leader changed).\n"
                "# TYPE s2_node_forward_failures_total counter\n"
                "s2_node_forward_failures_total{node=\"%s\"} %llu\n"
                "# HELP s2_node_suspended Requests waiting on this node (long-poll claims, event "
                "streams, forwards).\n"
                "# TYPE s2_node_suspended gauge\ns2_node_suspended{node=\"%s\"} %d\n",
             node.ptr, (unsigned long long)atomic_load(&s->forwarded), node.ptr,
             (unsigned long long)atomic_load(&s->forward_failed), node.ptr,
             atomic_load(&s->suspended));
    buf_release(&node);
    json_decref(st);
}

void http_metrics(struct http_server *s, struct buf *b, int with_node)
{
    buf_adds(b, "# HELP s2_http_requests_total HTTP requests answered, by route and status.\n"
                "# TYPE s2_http_requests_total counter\n");
    for (size_t rt = 0; rt <= api_nroutes; rt++) {
        for (size_t k = 0; k < NSTATUS; k++) {
            uint64_t n = atomic_load(&s->counts[rt * NSTATUS + k]);
            if (!n)
                continue;
            const char *method = rt < api_nroutes ? api_routes[rt].method : "";
            const char *pat = rt < api_nroutes ? api_routes[rt].pattern : "unmatched";
            char status[8];
            if (k < NSTATUS - 1)
                snprintf(status, sizeof status, "%u", counted_status[k]);
            else
                snprintf(status, sizeof status, "other");
            buf_addf(b, "s2_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
                     method, pat, status, (unsigned long long)n);
        }
    }
    buf_addf(b, "# HELP s2_http_rate_limited_total Requests refused with 429 (per-swarm rate limit).\n"
                "# TYPE s2_http_rate_limited_total counter\ns2_http_rate_limited_total %llu\n",
             (unsigned long long)atomic_load(&s->rate_limited));
    buf_addf(b, "# HELP s2_http_suspended Requests waiting (long-poll claims, event streams).\n"
                "# TYPE s2_http_suspended gauge\ns2_http_suspended %d\n",
             atomic_load(&s->suspended));
    if (with_node)
        http_node_metrics(s, b);
}
