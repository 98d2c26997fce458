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

struct http_server {
    struct MHD_Daemon *mhd;
    pthread_t loop;
    int loop_started;
    int stop_fd;        /* eventfd: http_stop asks the loop to wind down */
    int stop_timeout_ms;
    struct engine *engine;
    struct events *events;
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
    return r->srv->engine;
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
        if (store_reader_open(&rd, engine_db_path(srv->engine), err))
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
    engine_submit(r->srv->engine, c);
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
    ssize_t n = events_read(r->srv->events, r->sub, buf, max, sse_arm, r);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

void http_stream_events(struct request *r, uint64_t after, const char *swarm)
{
    r->sub = events_subscribe(r->srv->events, after, swarm, sse_wake, r);
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
    if (engine_authenticate(r->srv->engine, tok, &r->who)) {
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
    const struct policy *p = engine_policy(srv->engine);
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

static void dispatch(struct request *r)
{
    if (r->too_big) {
        http_reply_fail(r, S2_ETOOBIG, "too_large", "request body is larger than %zu bytes",
                        r->srv->max_body);
        return;
    }
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
    if (!r) {
        r = xcalloc(1, sizeof *r);
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
        if (cl && strtoull(cl, NULL, 10) > srv->max_body)
            r->too_big = 1;
        if (!r->too_big)
            return MHD_YES;
        /* refuse at once rather than read a body we will not keep */
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
        events_unsubscribe(srv->events, r->sub);
    if (r->claim_task && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        /* The client never got its lease: give the task back now rather than at expiry. */
        struct cmd *c = cmd_new(CMD_RELEASE);
        c->who.kind = PRIN_ADMIN;
        c->in.release.task = r->claim_task;
        c->in.release.fence = r->claim_fence;
        r->claim_task = NULL;
        c->done = release_done;
        engine_submit(srv->engine, c);
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
    atomic_fetch_sub(&srv->live, 1);
    buf_release(&r->body);
    free(r->segs);
    free(r->claim_task);
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
 * a finished flush) or the next timer; let libmicrohttpd run the handlers (which submit
 * commands), step the engine (one batch, one commit), and run libmicrohttpd again to send
 * what the batch answered. Like Redis' event loop, so a request costs no thread switch. */
static void *loop_main(void *arg)
{
    struct http_server *srv = arg;
    struct engine *e = srv->engine;
    engine_set_driver(e);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    int fds[4] = {di ? di->epoll_fd : -1, engine_wake_fd(e), srv->stop_fd, srv->defer_fd};
    for (int i = 0; i < 4; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (fds[i] >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev))
            log_error("http: epoll_ctl: %s", strerror(errno));
    }
    int stopping = 0;
    int64_t deadline = 0;
    for (;;) {
        int64_t to = -1;
        MHD_UNSIGNED_LONG_LONG mt;
        if (MHD_get_timeout(srv->mhd, &mt) == MHD_YES)
            to = mt > INT32_MAX ? INT32_MAX : (int64_t)mt;
        if (!stopping) {
            int64_t at = engine_next_deadline(e);
            if (at == 0) {
                to = 0;
            } else if (at > 0) {
                int64_t wait = at - clock_wall_ms();
                if (wait < 0)
                    wait = 0;
                if (to < 0 || wait < to)
                    to = wait;
            }
        } else if (to < 0 || to > 10) {
            to = 10;
        }
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, (int)to);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == srv->defer_fd) {
                uint64_t v;
                if (read(srv->defer_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_warn("http: eventfd: %s", strerror(errno));
            }
            if (evs[i].data.fd == srv->stop_fd && !stopping) {
                stopping = 1;
                deadline = clock_mono_ns() + (int64_t)srv->stop_timeout_ms * 1000000;
                MHD_socket lfd = MHD_quiesce_daemon(srv->mhd);
                if (lfd != MHD_INVALID_SOCKET)
                    close(lfd);
                engine_stop(e); /* answers waiting claims, commits and syncs the last batch */
                if (srv->events)
                    events_close(srv->events); /* ends event streams */
            }
        }
        MHD_run(srv->mhd);
        if (!stopping) {
            engine_step(e);
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
    close(ep);
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
    srv->engine = cfg->engine;
    srv->events = cfg->events;
    if (srv->events)
        events_set_backfill(srv->events, sse_backfill, srv);
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
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!srv->mhd || srv->stop_fd < 0 || srv->defer_fd < 0) {
        if (srv->mhd)
            MHD_stop_daemon(srv->mhd);
        if (srv->stop_fd >= 0)
            close(srv->stop_fd);
        if (srv->defer_fd >= 0)
            close(srv->defer_fd);
        free(srv->counts);
        free(srv);
        return s2_fail(err, S2_EUNAVAIL, "listen_failed",
                       "cannot listen on %s (address in use, or not permitted?)", cfg->listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : 0;
    if (pthread_create(&srv->loop, NULL, loop_main, srv)) {
        MHD_stop_daemon(srv->mhd);
        close(srv->stop_fd);
        close(srv->defer_fd);
        free(srv->counts);
        free(srv);
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
    MHD_stop_daemon(s->mhd);
    close(s->stop_fd);
    close(s->defer_fd);
    free(s->counts);
    map_release(&s->bucket_ix);
    for (size_t i = 0; i < s->nbuckets; i++)
        free(s->bucket_names[i]);
    free(s->bucket_names);
    free(s->buckets);
    free(s);
}

void http_metrics(struct http_server *s, struct buf *b)
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
}
