/* mcp.h: `s2 mcp`, a Model Context Protocol server over stdio (JSON-RPC 2.0, one message
 * per line) that gives agent CLIs (Claude Code, Codex, ...) s2's agent loop as tools:
 * claim with wait, heartbeat, done/fail with usage, block, status, ready work, task,
 * thread. Each tool is a client of the s2 HTTP API. It must never write anything but
 * protocol messages to stdout, and no input, however malformed, may crash it. */
#ifndef S2_MCP_H
#define S2_MCP_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#include "error.h"

/* Protocol revisions this server speaks, newest first; MCP_VERSION_LATEST is offered to a
 * client that asks for one it does not know. */
#define MCP_VERSION_LATEST "2025-11-25"
extern const char *const mcp_versions[]; /* NULL-terminated */

/* JSON-RPC 2.0 error codes. */
enum {
    MCP_PARSE_ERROR = -32700,
    MCP_INVALID_REQUEST = -32600,
    MCP_METHOD_NOT_FOUND = -32601,
    MCP_INVALID_PARAMS = -32602,
    MCP_INTERNAL_ERROR = -32603,
};

#define MCP_MAX_LINE_DEFAULT (4u * 1024 * 1024) /* bytes in one message */
#define MCP_WAIT_DEFAULT 30                      /* s2_claim's wait_seconds */
#define MCP_WAIT_MAX 300
#define MCP_INFLIGHT_MAX 16                      /* concurrent tool calls (threaded mode) */

/* One HTTP exchange with the s2 server, as a tool makes it. */
struct mcp_request {
    const char *method; /* "GET", "POST" */
    const char *path;   /* "/v1/claim" (query string included) */
    json_t *body;       /* borrowed; NULL for none */
    long timeout_ms;
    atomic_int *cancel; /* NULL, or polled while waiting: nonzero abandons the request */
};
struct mcp_reply {
    long status;     /* 200, 204, ... */
    json_t *body;    /* owned by the reply; NULL when empty */
    char reason[256]; /* the S2-Reason header of a 204, or "" */
};

/* How tools reach the server: 0 and *rep filled on a 2xx; <0 with err carrying the
 * server's code and message otherwise (err->code "no_such_route" for an endpoint the server
 * lacks). Called from worker threads in threaded
 * mode: it must be thread-safe. NULL in the options: libcurl to opts.server. */
typedef int (*mcp_call_fn)(void *ctx, const struct mcp_request *req, struct mcp_reply *rep,
                           struct s2_error *err);

/* Where protocol messages go: one complete line (without its '\n'). Returns 0, or -1 when
 * the peer is gone (the serve loop then stops). NULL in the options: stdout. */
typedef int (*mcp_emit_fn)(void *ctx, const char *line, size_t len);

struct mcp_options {
    const char *agent;   /* default agent for s2_claim (and the swarm of s2_status); may be NULL */
    const char *server;  /* URL; NULL: $S2_SERVER or the default */
    size_t max_line;     /* 0: MCP_MAX_LINE_DEFAULT */
    int threaded;        /* run tools/call on worker threads (ping and cancel stay live) */
    int persist_leases;  /* also keep leases where `s2 done` finds them (cli_lease_*) */
    mcp_call_fn call;
    void *call_ctx;
    mcp_emit_fn emit;
    void *emit_ctx;
};

struct mcp;

/* A server in its pre-initialize state. Strings in opts are copied. Caller frees with
 * mcp_free. */
struct mcp *mcp_new(const struct mcp_options *opts);
void mcp_free(struct mcp *m);

/* Handle one message: the bytes of one line, without the newline (a trailing '\r' is
 * ignored). Replies, if any, go through emit; notifications are never answered. In threaded
 * mode tools/call returns at once and its reply follows from a worker thread. */
void mcp_handle(struct mcp *m, const char *line, size_t len);

/* Read messages from fd until end of file, handling each line; lines longer than max_line
 * are answered with an Invalid Request error and skipped. At EOF the calls in flight still
 * get their replies (a waiting claim is cancelled instead once nobody reads stdout any
 * more). Returns 0 at EOF, -1 when reading or writing failed. */
int mcp_serve(struct mcp *m, int fd);

/* The negotiated protocol version, or NULL before initialize. */
const char *mcp_version(const struct mcp *m);

/* The tool list as tools/list shows it for protocol version `version` (new reference). */
json_t *mcp_tools_json(const struct mcp *m, const char *version);

#endif
