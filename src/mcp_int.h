/* mcp_int.h: what mcp.c (JSON-RPC framing, lifecycle, the serve loop) and mcp_tools.c (the
 * tools: schemas, argument checks, calls to the s2 server, text for the model) share.
 * Nothing outside these two files includes it. */
#ifndef S2_MCP_INT_H
#define S2_MCP_INT_H

#include "mcp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* A lease this session holds: what lets s2_done take only a task id. */
struct mcp_lease {
    char *task, *token, *agent;
    char *help_for;     /* a help task: the blocked task whose thread it may post on */
    int64_t expires_at; /* wall ms */
};

/* A claim that succeeded after its request was cancelled: the next s2_claim of that agent
 * hands it over instead of leaving a task leased to nobody who knows it. */
struct mcp_held {
    char *agent;
    json_t *reply; /* the server's {"task", "lease"} */
};

/* One tools/call in flight (threaded mode). */
struct mcp_job {
    struct mcp *m;
    json_t *id;     /* the request id */
    json_t *params; /* the request params */
    char version[16];
    atomic_int cancel;
    atomic_int done;
    int is_claim;
    pthread_t thread;
};

struct mcp {
    char *agent, *server;
    size_t max_line;
    int threaded, persist_leases;
    mcp_call_fn call;
    void *call_ctx;
    mcp_emit_fn emit;
    void *emit_ctx;

    char version[16]; /* negotiated; "" before initialize */
    int initialized;  /* the client sent notifications/initialized */
    atomic_int out_broken;

    pthread_mutex_t out_lock; /* one message at a time on the way out */
    pthread_mutex_t lock;     /* everything below */
    struct mcp_lease *leases;
    size_t nleases, aleases;
    struct mcp_held *held;
    size_t nheld, aheld;
    struct mcp_job **jobs;
    size_t njobs, ajobs;
    char *agent_swarm; /* the default agent's swarm, once looked up */
};

/* Result of one tools/call: either a CallToolResult (result) or a JSON-RPC error. */
struct mcp_outcome {
    json_t *result; /* owned */
    int rpc_code;   /* nonzero: a protocol error instead */
    char *rpc_msg;  /* owned */
    char *rpc_field; /* owned; the offending field ("params.name"), or NULL */
};

/* Run tools/call params for protocol version `version`; job is NULL inline. Never fails
 * otherwise: server errors become isError results. */
void mcp_tools_call(struct mcp *m, const char *version, json_t *params, struct mcp_job *job,
                    struct mcp_outcome *out);
void mcp_outcome_release(struct mcp_outcome *o);

/* The default call function: libcurl to m->server with $S2_TOKEN. */
int mcp_http_call(void *ctx, const struct mcp_request *req, struct mcp_reply *rep,
                  struct s2_error *err);

/* Send one message (compact JSON, one line); steals msg. */
void mcp_send(struct mcp *m, json_t *msg);

#endif
