/* mcp.c: the protocol side of `s2 mcp`: newline-delimited JSON-RPC 2.0 on stdio, the MCP
 * lifecycle (initialize with version negotiation, notifications/initialized, ping), dispatch
 * to the tools (mcp_tools.c), cancellation, and the read loop. Whatever arrives on stdin, it
 * answers with a result or a JSON-RPC error, or stays silent for a notification; it never
 * writes anything else to stdout (logs go to stderr). */
#include "mcp_int.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "version.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                                    NULL};

/* Batches existed only in this revision (added in 2025-03-26, removed in 2025-06-18). */
#define BATCH_VERSION "2025-03-26"

static const char instructions[] =
    "s2 coordinates swarms of AI agents. Work loop: s2_claim (waits for work and returns a "
    "task with its instructions and a lease) -> do the task -> s2_heartbeat before the lease "
    "expires when work takes long -> s2_done with the result and usage (tokens or USD), or "
    "s2_fail with the reason. Stuck on something another swarm must do: s2_block with the "
    "capabilities needed, follow s2_thread, judge helpers' posts with s2_review, s2_unblock "
    "when you can go on. A claim may give you a help task on another swarm's blocker: post "
    "your findings on its thread with s2_post. s2_status shows your swarm's state, s2_ready "
    "the work waiting. Never poll git or sleep in a loop: s2_claim waits for you.";

/* ---- output ---- */

static int emit_stdout(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    struct buf b = BUF_INIT;
    buf_add(&b, line, len);
    buf_addch(&b, '\n');
    size_t off = 0;
    int rc = 0;
    while (off < b.len) {
        ssize_t w = write(1, b.ptr + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = -1;
            break;
        }
        off += (size_t)w;
    }
    buf_release(&b);
    return rc;
}

void mcp_send(struct mcp *m, json_t *msg)
{
    /* compact: never a raw newline inside (strings escape theirs) */
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!s) {
        log_error("mcp: could not serialise a reply");
        return;
    }
    pthread_mutex_lock(&m->out_lock);
    if (!atomic_load(&m->out_broken) && m->emit(m->emit_ctx, s, strlen(s))) {
        atomic_store(&m->out_broken, 1);
        log_error("mcp: cannot write to the client (stdout closed?): stopping");
    }
    pthread_mutex_unlock(&m->out_lock);
    free(s);
}

static json_t *result_msg(json_t *id, json_t *result)
{
    return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* id NULL: the JSON-RPC null id (the request's could not be read). msg is copied. */
static json_t *error_msg(json_t *id, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static json_t *error_msg(json_t *id, int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    json_t *m = json_string(text);
    if (!m) /* bytes from the input that are not UTF-8 */
        m = json_string("invalid request (the message quoted bytes that are not UTF-8)");
    free(text);
    json_t *err = json_pack("{s:i,s:o}", "code", code, "message", m);
    if (field)
        json_object_set_new(err, "data", json_pack("{s:s}", "field", field));
    return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
                     err);
}

/* ---- lifecycle ---- */

static json_t *initialize(struct mcp *m, json_t *id, json_t *params, int in_batch)
{
    if (in_batch)
        return error_msg(id, MCP_INVALID_REQUEST, NULL, "initialize must not be part of a batch");
    if (m->version[0])
        return error_msg(id, MCP_INVALID_REQUEST, NULL,
                         "already initialized (protocol version %s): initialize is sent once",
                         m->version);
    if (!json_is_object(params))
        return error_msg(id, MCP_INVALID_PARAMS, "params",
                         "initialize needs params {\"protocolVersion\", \"capabilities\", "
                         "\"clientInfo\"}");
    json_t *pv = json_object_get(params, "protocolVersion");
    if (!json_is_string(pv))
        return error_msg(id, MCP_INVALID_PARAMS, "params.protocolVersion",
                         "params.protocolVersion must be a string naming a protocol revision "
                         "(this server speaks %s and older ones)",
                         MCP_VERSION_LATEST);
    json_t *caps = json_object_get(params, "capabilities");
    if (caps && !json_is_object(caps))
        return error_msg(id, MCP_INVALID_PARAMS, "params.capabilities",
                         "params.capabilities must be an object");
    json_t *info = json_object_get(params, "clientInfo");
    if (info && !json_is_object(info))
        return error_msg(id, MCP_INVALID_PARAMS, "params.clientInfo",
                         "params.clientInfo must be an object");
    /* the client's version when we speak it, else our newest: the client decides */
    const char *want = json_string_value(pv), *use = MCP_VERSION_LATEST;
    for (int i = 0; mcp_versions[i]; i++)
        if (!strcmp(mcp_versions[i], want))
            use = mcp_versions[i];
    snprintf(m->version, sizeof m->version, "%s", use);
    const char *cname = json_string_value(json_object_get(info, "name"));
    const char *cver = json_string_value(json_object_get(info, "version"));
    log_info("mcp: client %s %s asked for protocol %.32s, speaking %s", cname ? cname : "?",
             cver ? cver : "?", want, use);
    json_t *server = json_pack("{s:s,s:s}", "name", "s2", "version", S2_VERSION);
    if (strcmp(use, "2025-06-18") >= 0)
        json_object_set_new(server, "title", json_string("s2 swarm coordinator"));
    json_t *r = json_pack("{s:s,s:{s:{s:b}},s:o}", "protocolVersion", use, "capabilities",
                          "tools", "listChanged", 0, "serverInfo", server);
    if (strcmp(use, "2025-03-26") >= 0) {
        char *text = m->agent ? xasprintf("%s You are agent '%s': s2_claim uses it by "
                                          "default.",
                                          instructions, m->agent)
                              : xstrdup(instructions);
        json_t *t = json_string(text);
        json_object_set_new(r, "instructions", t ? t : json_string(instructions));
        free(text);
    }
    return result_msg(id, r);
}

static void cancelled(struct mcp *m, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    if (!rid)
        return;
    int found = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->njobs; i++)
        if (!atomic_load(&m->jobs[i]->done) && json_equal(m->jobs[i]->id, rid)) {
            atomic_store(&m->jobs[i]->cancel, 1);
            found = 1;
        }
    pthread_mutex_unlock(&m->lock);
    char *s = json_dumps(rid, JSON_COMPACT | JSON_ENCODE_ANY);
    log_info("mcp: request %s cancelled by the client%s", s ? s : "?",
             found ? "" : " (not in flight: nothing to stop)");
    free(s);
}

/* ---- tool calls on worker threads ---- */

static void job_free(struct mcp_job *j)
{
    json_decref(j->id);
    json_decref(j->params);
    free(j);
}

static void *job_main(void *arg)
{
    struct mcp_job *j = arg;
    struct mcp_outcome o;
    mcp_tools_call(j->m, j->version, j->params, j, &o);
    if (atomic_load(&j->cancel)) {
        /* a cancelled request gets no response */
        log_debug("mcp: dropping the reply to a cancelled request");
    } else if (o.rpc_code) {
        mcp_send(j->m, error_msg(j->id, o.rpc_code, o.rpc_field, "%s", o.rpc_msg));
    } else {
        mcp_send(j->m, result_msg(j->id, o.result));
        o.result = NULL;
    }
    mcp_outcome_release(&o);
    atomic_store(&j->done, 1);
    return NULL;
}

/* Join finished jobs. Called from the reading thread only, which alone adds jobs. */
static void reap(struct mcp *m)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->njobs;) {
        struct mcp_job *j = m->jobs[i];
        if (atomic_load(&j->done)) {
            m->jobs[i] = m->jobs[--m->njobs];
            pthread_mutex_unlock(&m->lock);
            pthread_join(j->thread, NULL);
            job_free(j);
            pthread_mutex_lock(&m->lock);
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

/* Join every job; with cancel_claims, first cancel the claims still waiting (nobody will
 * read their tasks). */
static void finish_jobs(struct mcp *m, int cancel_claims)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->njobs && cancel_claims; i++)
        if (m->jobs[i]->is_claim)
            atomic_store(&m->jobs[i]->cancel, 1);
    size_t n = m->njobs;
    struct mcp_job **jobs = m->jobs;
    m->jobs = NULL;
    m->njobs = m->ajobs = 0;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        pthread_join(jobs[i]->thread, NULL);
        job_free(jobs[i]);
    }
    free(jobs);
}

/* The reader of stdout has gone (a pipe whose other end closed). */
static int stdout_gone(void)
{
    struct pollfd p = {.fd = 1, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP | POLLNVAL));
}

/* End of input: calls in flight still get their replies (a script piped into `s2 mcp` is
 * answered in full), unless nobody reads them any more. */
static void drain_jobs(struct mcp *m)
{
    for (;;) {
        reap(m);
        pthread_mutex_lock(&m->lock);
        size_t n = m->njobs;
        pthread_mutex_unlock(&m->lock);
        if (!n)
            return;
        if (atomic_load(&m->out_broken) || (m->emit == emit_stdout && stdout_gone())) {
            log_info("mcp: the client is gone: cancelling %zu call%s in flight", n,
                     n == 1 ? "" : "s");
            finish_jobs(m, 1);
            return;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static json_t *start_job(struct mcp *m, json_t *id, json_t *params)
{
    reap(m);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->njobs; i++)
        if (json_equal(m->jobs[i]->id, id)) {
            pthread_mutex_unlock(&m->lock);
            return error_msg(id, MCP_INVALID_REQUEST, "id",
                             "request id already in use by a request in flight");
        }
    if (m->njobs >= MCP_INFLIGHT_MAX) {
        pthread_mutex_unlock(&m->lock);
        return error_msg(id, MCP_INTERNAL_ERROR, NULL,
                         "too many tool calls in flight (at most %d): wait for one to finish",
                         MCP_INFLIGHT_MAX);
    }
    struct mcp_job *j = xcalloc(1, sizeof *j);
    j->m = m;
    j->id = json_incref(id);
    j->params = json_incref(params);
    snprintf(j->version, sizeof j->version, "%s", m->version);
    const char *name = json_string_value(json_object_get(params, "name"));
    j->is_claim = name && !strcmp(name, "s2_claim");
    atomic_init(&j->cancel, 0);
    atomic_init(&j->done, 0);
    if (pthread_create(&j->thread, NULL, job_main, j)) {
        pthread_mutex_unlock(&m->lock);
        job_free(j);
        return error_msg(id, MCP_INTERNAL_ERROR, NULL, "cannot start a thread for this call");
    }
    m->jobs = xgrow(m->jobs, sizeof *m->jobs, m->njobs + 1, &m->ajobs);
    m->jobs[m->njobs++] = j;
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- dispatch ---- */

static const char *type_of(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static json_t *call_tool(struct mcp *m, json_t *id, json_t *params, int in_batch)
{
    if (!json_is_object(params))
        return error_msg(id, MCP_INVALID_PARAMS, "params",
                         "tools/call needs params {\"name\": TOOL, \"arguments\": {...}}");
    if (m->threaded && !in_batch)
        return start_job(m, id, params);
    struct mcp_outcome o;
    mcp_tools_call(m, m->version, params, NULL, &o);
    json_t *r;
    if (o.rpc_code) {
        r = error_msg(id, o.rpc_code, o.rpc_field, "%s", o.rpc_msg);
    } else {
        r = result_msg(id, o.result);
        o.result = NULL; /* the message owns it now */
    }
    mcp_outcome_release(&o);
    return r;
}

/* The reply to one message (NULL: none). */
static json_t *handle_message(struct mcp *m, json_t *msg, int in_batch)
{
    if (!json_is_object(msg))
        return error_msg(NULL, MCP_INVALID_REQUEST, NULL,
                         "a message must be a JSON-RPC object, not %s", type_of(msg));
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *jv = json_object_get(msg, "jsonrpc");
    json_t *params = json_object_get(msg, "params");
    int valid_id = json_is_string(id) || json_is_integer(id);
    if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
        /* a response: this server sends no requests, so nothing waits for it */
        log_debug("mcp: ignoring a response from the client");
        return NULL;
    }
    if (id && !valid_id)
        return error_msg(NULL, MCP_INVALID_REQUEST, "id",
                         "id must be a string or an integer, not %s", type_of(id));
    json_t *rid = valid_id ? id : NULL;
    if (!json_is_string(jv) || strcmp(json_string_value(jv), "2.0"))
        return error_msg(rid, MCP_INVALID_REQUEST, "jsonrpc",
                         "\"jsonrpc\" must be \"2.0\"");
    if (!json_is_string(method))
        return error_msg(rid, MCP_INVALID_REQUEST, "method",
                         method ? "\"method\" must be a string, not %s"
                                : "a request needs a \"method\"%s",
                         method ? type_of(method) : "");
    if (params && !json_is_object(params) && !json_is_array(params))
        return error_msg(rid, MCP_INVALID_REQUEST, "params",
                         "\"params\" must be an object or an array, not %s", type_of(params));
    const char *name = json_string_value(method);

    if (!id) { /* a notification: acted on or ignored, never answered */
        if (!strcmp(name, "notifications/initialized")) {
            if (m->version[0])
                m->initialized = 1;
            else
                log_warn("mcp: notifications/initialized before initialize: ignored");
        } else if (!strcmp(name, "notifications/cancelled")) {
            cancelled(m, params);
        } else {
            log_debug("mcp: ignoring notification '%s'", name);
        }
        return NULL;
    }
    if (params && json_is_array(params))
        return error_msg(id, MCP_INVALID_PARAMS, "params",
                         "params must be an object (MCP uses named parameters)");
    if (!strcmp(name, "initialize"))
        return initialize(m, id, params, in_batch);
    if (!strcmp(name, "ping"))
        return result_msg(id, json_object());
    if (!m->version[0])
        return error_msg(id, MCP_INVALID_REQUEST, NULL,
                         "not initialized: the first request must be 'initialize'");
    if (!strcmp(name, "tools/list")) {
        json_t *cursor = json_object_get(params, "cursor");
        if (cursor && !json_is_null(cursor))
            return error_msg(id, MCP_INVALID_PARAMS, "params.cursor",
                             "invalid cursor: the tool list has a single page");
        return result_msg(id, json_pack("{s:o}", "tools", mcp_tools_json(m, m->version)));
    }
    if (!strcmp(name, "tools/call"))
        return call_tool(m, id, params, in_batch);
    return error_msg(id, MCP_METHOD_NOT_FOUND, "method",
                     "method '%.100s' not found (this server offers initialize, ping, "
                     "tools/list and tools/call)",
                     name);
}

static void handle_batch(struct mcp *m, json_t *batch)
{
    if (strcmp(m->version, BATCH_VERSION)) {
        mcp_send(m, error_msg(NULL, MCP_INVALID_REQUEST, NULL,
                              "JSON-RPC batches are not supported %s%s: send one message per "
                              "line",
                              m->version[0] ? "in protocol version " : "before initialize",
                              m->version));
        return;
    }
    if (!json_array_size(batch)) {
        mcp_send(m, error_msg(NULL, MCP_INVALID_REQUEST, NULL, "empty batch"));
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *msg;
    json_array_foreach(batch, i, msg) {
        json_t *r = handle_message(m, msg, 1);
        if (r)
            json_array_append_new(out, r);
    }
    if (json_array_size(out))
        mcp_send(m, out);
    else
        json_decref(out);
}

void mcp_handle(struct mcp *m, const char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len) /* a blank line is no message */
        return;
    json_error_t je;
    json_t *msg = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!msg) {
        mcp_send(m, error_msg(NULL, MCP_PARSE_ERROR, NULL, "parse error at byte %d: %s",
                              je.position, je.text));
        return;
    }
    if (json_is_array(msg)) {
        handle_batch(m, msg);
    } else {
        json_t *r = handle_message(m, msg, 0);
        if (r)
            mcp_send(m, r);
    }
    json_decref(msg);
}

static void too_long(struct mcp *m, size_t n)
{
    log_warn("mcp: skipped a message of %zu bytes (limit %zu)", n, m->max_line);
    mcp_send(m, error_msg(NULL, MCP_INVALID_REQUEST, NULL,
                          "message too large: %zu bytes or more, the limit is %zu; it was "
                          "skipped",
                          n, m->max_line));
}

int mcp_serve(struct mcp *m, int fd)
{
    struct buf line = BUF_INIT;
    char chunk[65536];
    int discarding = 0, rc = 0;
    size_t discarded = 0;
    for (;;) {
        if (atomic_load(&m->out_broken)) {
            rc = -1;
            break;
        }
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error("mcp: reading stdin: %s", strerror(errno));
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        const char *p = chunk, *end = chunk + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t k = (size_t)((nl ? nl : end) - p);
            if (discarding) {
                discarded += k;
            } else if (line.len + k > m->max_line) {
                /* drop it now rather than hold an unbounded line in memory */
                discarding = 1;
                discarded = line.len + k;
                buf_release(&line);
            } else {
                buf_add(&line, p, k);
            }
            if (!nl)
                break;
            if (discarding) {
                too_long(m, discarded);
                discarding = 0;
            } else {
                mcp_handle(m, line.ptr, line.len);
                buf_reset(&line);
            }
            p = nl + 1;
        }
    }
    if (!rc) { /* a last line without its newline still counts */
        if (discarding)
            too_long(m, discarded);
        else if (line.len)
            mcp_handle(m, line.ptr, line.len);
    }
    buf_release(&line);
    drain_jobs(m);
    log_debug("mcp: end of input");
    return atomic_load(&m->out_broken) ? -1 : rc;
}

/* ---- life ---- */

struct mcp *mcp_new(const struct mcp_options *o)
{
    struct mcp *m = xcalloc(1, sizeof *m);
    m->agent = o->agent && *o->agent ? xstrdup(o->agent) : NULL;
    m->server = o->server ? xstrdup(o->server) : NULL;
    m->max_line = o->max_line ? o->max_line : MCP_MAX_LINE_DEFAULT;
    m->threaded = o->threaded;
    m->persist_leases = o->persist_leases;
    m->call = o->call;
    m->call_ctx = o->call_ctx;
    m->emit = o->emit ? o->emit : emit_stdout;
    m->emit_ctx = o->emit_ctx;
    atomic_init(&m->out_broken, 0);
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->out_lock, NULL);
    return m;
}

void mcp_free(struct mcp *m)
{
    if (!m)
        return;
    finish_jobs(m, 1);
    for (size_t i = 0; i < m->nleases; i++) {
        free(m->leases[i].task);
        free(m->leases[i].token);
        free(m->leases[i].agent);
        free(m->leases[i].help_for);
    }
    free(m->leases);
    for (size_t i = 0; i < m->nheld; i++) {
        free(m->held[i].agent);
        json_decref(m->held[i].reply);
    }
    free(m->held);
    free(m->agent_swarm);
    free(m->agent);
    free(m->server);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->out_lock);
    free(m);
}

const char *mcp_version(const struct mcp *m)
{
    return m->version[0] ? m->version : NULL;
}
