/* http.h: the HTTP server (libmicrohttpd): listening, routing, authentication, body limits,
 * JSON replies, long-polls (a request waits, suspended, for its engine command) and
 * Server-Sent Events. Resource handlers (api_*.c) see only this interface: they validate,
 * authorise, hand a command to the engine and turn its outcome into a reply. */
#ifndef S2_HTTP_H
#define S2_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "error.h"

struct http_server;
struct request;
struct store_reader;

struct http_config {
    const char *listen; /* "HOST:PORT"; port 0 picks a free port */
    size_t max_body;    /* bytes; larger bodies get 413 */
    /* One engine for the server's life (SQLite), the caller's to free after http_stop; or
     * NULL (a cluster node): engines come and go with http_lead. */
    struct engine *engine;
    struct events *events;
    const char *store_location; /* for readers; NULL: the engine's */
    /* A cluster node: frees an engine (and its events) the loop no longer needs. */
    void (*retire)(void *ctx, struct engine *e, struct events *ev);
    /* GET /v1/cluster: this node's view of the cluster (caller owns), or NULL. */
    json_t *(*status)(void *ctx);
    void *ctx;
};

/* Listen, and start the event loop thread that serves every connection and drives the
 * engine (engine_start must have run; the loop is the engine's driver from now on). */
int http_start(struct http_server **out, const struct http_config *cfg, struct s2_error *err);
/* A cluster node's leadership, changed from another thread and applied by the loop:
 * http_lead(e) makes the loop serve engine e (started, not yet driven; NULL: stop serving the
 * current one, which is stopped and later retired); http_follow(url) forwards every request
 * to the leader at url (NULL: none known, requests get 503 with Retry-After). */
void http_lead(struct http_server *s, struct engine *e, struct events *ev);
void http_follow(struct http_server *s, const char *leader_url);
/* The port actually bound. */
int http_port(const struct http_server *s);
/* Stop: the loop stops accepting, stops the engine (waiting claims are answered, the last
 * batch commits and syncs), ends event streams, sends what is pending for up to
 * timeout_ms, and exits; then the server is freed. */
void http_stop(struct http_server *s, int timeout_ms);
/* Prometheus lines for the HTTP layer's own counters, appended to b; with_node: this
 * node's own families too (s2_node_*, cluster nodes only). */
struct buf;
void http_metrics(struct http_server *s, struct buf *b, int with_node);
/* A cluster node's own families (s2_node_*, labelled with its id): a follower appends
 * them to the leader's /metrics it passes on. Nothing on a single server. */
void http_node_metrics(struct http_server *s, struct buf *b);
/* Name this server a cluster node (in its forwarded requests and node metrics). */
void http_set_node(struct http_server *s, const char *node_id);

/* ---- routes ---- */

enum route_auth {
    AUTH_NONE,  /* public */
    AUTH_TOKEN, /* any valid token; the handler checks scope */
    AUTH_ADMIN, /* the admin token only */
};

struct route {
    const char *method;
    const char *pattern; /* "/v1/tasks/:id/done": ":name" matches one segment */
    void (*handler)(struct request *r);
    enum route_auth auth;
};

extern const struct route api_routes[];
extern const size_t api_nroutes;

/* ---- for handlers ---- */

/* The i-th ":param" of the matched pattern. */
const char *http_param(struct request *r, int i);
/* A query-string argument or NULL. */
const char *http_query(struct request *r, const char *key);
const char *http_header(struct request *r, const char *key);
const struct principal *http_who(struct request *r);
/* The bearer token the request authenticated with, or NULL. */
const char *http_bearer(struct request *r);
struct engine *http_engine(struct request *r);
struct http_server *http_server_of(struct request *r);
/* Whether the request carried a body. */
int http_has_body(struct request *r);
/* The request body as a JSON object (caller owns), or NULL with err set. */
json_t *http_body_object(struct request *r, struct s2_error *err);
/* This thread's read-only store connection (opened on first use). */
struct store_reader *http_reader(struct request *r, struct s2_error *err);

/* Replies; exactly one per request. */
void http_reply_json(struct request *r, unsigned status, json_t *body /* stolen */);
void http_reply_error(struct request *r, const struct s2_error *err);
void http_reply_fail(struct request *r, enum s2_err kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void http_reply_raw(struct request *r, unsigned status, const char *type, const void *data,
                    size_t len);
/* The whole of f (a temporary file, taken and closed) as the body. */
void http_reply_file(struct request *r, unsigned status, const char *type, FILE *f);
/* 204 with an explanatory header (S2-Reason). */
void http_reply_none(struct request *r, const char *reason);
/* Add a header to the reply about to be made. */
void http_set_header(struct request *r, const char *name, const char *value);

/* Hand c to the engine; the request waits (suspended) until the engine is done with it,
 * then after(r, c) runs on an HTTP thread and must reply. c is freed afterwards. */
void http_submit(struct request *r, struct cmd *c, void (*after)(struct request *, struct cmd *));
/* Run work(arg) on the server's worker thread, with the request suspended: for work that
 * may block for a while (reading a git repository), so that the event loop never waits on
 * it. One worker runs jobs in arrival order. Then after(r, arg) runs on the event loop
 * thread, owns arg, and must reply (or http_submit). If the request ends before after could
 * run (shutdown), release(arg) frees it instead. work may engine_submit and wait. */
void http_defer(struct request *r, void (*work)(void *arg), void *arg,
                void (*after)(struct request *r, void *arg), void (*release)(void *arg));
/* Remember that this reply hands over a lease, so that it is released if the reply cannot
 * be delivered. */
void http_note_claim(struct request *r, const char *task, uint64_t fence);
/* Reply with the event stream (text/event-stream) from seq > after (EVENTS_LIVE: only new
 * events), optionally one swarm. */
void http_stream_events(struct request *r, uint64_t after, const char *swarm);

/* Map an error kind to its HTTP status. */
unsigned http_status_of(enum s2_err kind);

#endif
