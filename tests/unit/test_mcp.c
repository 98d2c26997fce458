/* test_mcp: the MCP server's JSON-RPC dispatcher fed raw lines, with a fake s2 server behind
 * the tools: the initialize handshake and version negotiation, the tools/list schemas, every
 * error code path, silence for notifications, oversized and odd lines through the read loop,
 * the lease a claim leaves for done, server errors as isError results, and cancellation of
 * a waiting claim on the threaded path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "mcp.h"
#include "util/buf.h"
#include "util/xalloc.h"

/* ---- a fake s2 server and a captured stdout ---- */

struct fake {
    pthread_mutex_t lock;
    int ncalls;
    char method[8];
    char path[512];
    json_t *body;        /* the last request's body */
    /* the next reply */
    long status;
    const char *reply;   /* JSON text, or NULL */
    const char *reason;  /* S2-Reason of a 204 */
    int fail_kind;       /* nonzero: fail with this s2_err */
    const char *fail_code, *fail_msg;
    int block_until_abort; /* wait for should_abort, then answer anyway (a late claim) */
    atomic_int blocked;    /* set while blocking */
};

static struct fake F;
static struct buf OUT;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER; /* workers write, the test reads */

static int fake_call(void *ctx, const struct mcp_request *req, struct mcp_reply *rep,
                     struct s2_error *err)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->lock);
    f->ncalls++;
    snprintf(f->method, sizeof f->method, "%s", req->method);
    snprintf(f->path, sizeof f->path, "%s", req->path);
    json_decref(f->body);
    f->body = req->body ? json_deep_copy(req->body) : NULL;
    int block = f->block_until_abort;
    pthread_mutex_unlock(&f->lock);
    if (block) {
        atomic_store(&f->blocked, 1);
        /* at most 10 s: a broken cancel must fail the test, not hang it */
        for (int i = 0; i < 10000 && !(req->cancel && atomic_load(req->cancel)); i++) {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (f->fail_kind)
        return s2_fail(err, (enum s2_err)f->fail_kind, f->fail_code, "%s", f->fail_msg);
    rep->status = f->status ? f->status : 200;
    rep->body = f->reply ? json_loads(f->reply, 0, NULL) : NULL;
    snprintf(rep->reason, sizeof rep->reason, "%s", f->reason ? f->reason : "");
    return 0;
}

static int capture(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    assert_null(memchr(line, '\n', len)); /* one message, one line */
    pthread_mutex_lock(&out_lock);
    buf_add(&OUT, line, len);
    buf_addch(&OUT, '\n');
    pthread_mutex_unlock(&out_lock);
    return 0;
}

static struct mcp *server_with(const char *agent, int threaded)
{
    buf_release(&OUT);
    json_decref(F.body);
    memset(&F, 0, sizeof F);
    pthread_mutex_init(&F.lock, NULL);
    struct mcp_options o = {.agent = agent, .threaded = threaded, .call = fake_call,
                            .call_ctx = &F, .emit = capture, .max_line = 4096};
    return mcp_new(&o);
}

static void done_with(struct mcp *m)
{
    mcp_free(m);
    json_decref(F.body);
    F.body = NULL;
    buf_release(&OUT);
}

static void send(struct mcp *m, const char *line)
{
    mcp_handle(m, line, strlen(line));
}

/* The oldest reply not yet read (NULL when none); the caller decrefs. */
static json_t *reply(void)
{
    pthread_mutex_lock(&out_lock);
    if (!OUT.len) {
        pthread_mutex_unlock(&out_lock);
        return NULL;
    }
    char *nl = memchr(OUT.ptr, '\n', OUT.len);
    assert_non_null(nl);
    json_error_t je;
    json_t *j = json_loadb(OUT.ptr, (size_t)(nl - OUT.ptr), 0, &je);
    if (!j)
        fail_msg("reply is not JSON: %s", je.text);
    size_t rest = OUT.len - (size_t)(nl + 1 - OUT.ptr);
    memmove(OUT.ptr, nl + 1, rest);
    OUT.len = rest;
    OUT.ptr[rest] = 0;
    pthread_mutex_unlock(&out_lock);
    return j;
}

static void no_reply(void)
{
    pthread_mutex_lock(&out_lock);
    if (OUT.len)
        fail_msg("unexpected reply: %s", OUT.ptr);
    pthread_mutex_unlock(&out_lock);
}

/* Expect an error reply with code and id (want_id NULL: the null id; it is consumed);
 * returns the reply for more checks (caller decrefs). */
static json_t *expect_error(int code, json_t *want_id)
{
    json_t *r = reply();
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
    json_t *e = json_object_get(r, "error");
    if (!e)
        fail_msg("wanted error %d, got %s", code, json_dumps(r, JSON_COMPACT));
    assert_int_equal(json_integer_value(json_object_get(e, "code")), code);
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    assert_null(json_object_get(r, "result"));
    json_t *id = json_object_get(r, "id");
    assert_non_null(id); /* the member is always there, null when unknown */
    if (want_id)
        assert_true(json_equal(id, want_id));
    else
        assert_true(json_is_null(id));
    json_decref(want_id);
    return r;
}

static void expect_error_code(int code, json_t *want_id)
{
    json_decref(expect_error(code, want_id));
}

static const char *err_field(json_t *r)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(r, "error"), "data"), "field"));
}

static json_t *result_of(json_t *r)
{
    json_t *res = json_object_get(r, "result");
    if (!res)
        fail_msg("wanted a result, got %s", json_dumps(r, JSON_COMPACT));
    return res;
}

static void init(struct mcp *m, const char *version)
{
    char *line = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
                           "{\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":"
                           "{\"name\":\"test\",\"version\":\"1\"}}}",
                           version);
    send(m, line);
    free(line);
    json_t *r = reply();
    assert_string_equal(json_string_value(json_object_get(result_of(r), "protocolVersion")),
                        version);
    json_decref(r);
    send(m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    no_reply();
}

/* tools/call name with arguments (JSON text); returns the whole reply. */
static json_t *call(struct mcp *m, int id, const char *name, const char *args)
{
    char *line = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
                           "{\"name\":\"%s\",\"arguments\":%s}}",
                           id, name, args);
    send(m, line);
    free(line);
    json_t *r = reply();
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), id);
    return r;
}

static const char *text_of(json_t *r)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(result_of(r), "content"), 0), "text"));
}

static int is_error(json_t *r)
{
    return json_is_true(json_object_get(result_of(r), "isError"));
}

/* ---- the handshake ---- */

static void test_initialize(void **state)
{
    (void)state;
    struct mcp *m = server_with("ag1", 0);
    assert_null(mcp_version(m));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
            "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{\"roots\":{}},"
            "\"clientInfo\":{\"name\":\"c\",\"version\":\"9\"}}}");
    json_t *r = reply(), *res = result_of(r);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), "2025-11-25");
    assert_true(json_is_object(json_object_get(json_object_get(res, "capabilities"), "tools")));
    json_t *si = json_object_get(res, "serverInfo");
    assert_string_equal(json_string_value(json_object_get(si, "name")), "s2");
    assert_true(json_is_string(json_object_get(si, "version")));
    const char *ins = json_string_value(json_object_get(res, "instructions"));
    assert_non_null(ins);
    assert_non_null(strstr(ins, "s2_claim"));
    assert_non_null(strstr(ins, "'ag1'"));
    json_decref(r);
    assert_string_equal(mcp_version(m), "2025-11-25");
    send(m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    no_reply();
    /* only once */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{"
            "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{}}}");
    expect_error_code(-32600, json_integer(2));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
    r = reply();
    assert_string_equal(json_string_value(json_object_get(r, "id")), "p");
    assert_int_equal(json_object_size(result_of(r)), 0);
    json_decref(r);
    done_with(m);
}

static void test_version_negotiation(void **state)
{
    (void)state;
    for (int i = 0; mcp_versions[i]; i++) {
        struct mcp *m = server_with(NULL, 0);
        init(m, mcp_versions[i]); /* each one we speak is echoed */
        json_t *r;
        send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        r = reply();
        json_t *t0 = json_array_get(json_object_get(result_of(r), "tools"), 0);
        /* title came in 2025-06-18, annotations in 2025-03-26 */
        assert_int_equal(json_object_get(t0, "title") != NULL,
                         strcmp(mcp_versions[i], "2025-06-18") >= 0);
        assert_int_equal(json_object_get(t0, "annotations") != NULL,
                         strcmp(mcp_versions[i], "2025-03-26") >= 0);
        json_decref(r);
        done_with(m);
    }
    /* a version we do not know: we offer our newest, the client decides */
    struct mcp *m = server_with(NULL, 0);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
            "\"protocolVersion\":\"1999-01-01\",\"capabilities\":{},\"clientInfo\":{}}}");
    json_t *r = reply();
    assert_string_equal(json_string_value(json_object_get(result_of(r), "protocolVersion")),
                        MCP_VERSION_LATEST);
    json_decref(r);
    done_with(m);
    /* no version, or not a string */
    m = server_with(NULL, 0);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
            "\"protocolVersion\":20251125}}");
    r = expect_error(-32602, json_integer(1));
    assert_string_equal(err_field(r), "params.protocolVersion");
    json_decref(r);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\"}");
    r = expect_error(-32602, json_integer(2));
    assert_string_equal(err_field(r), "params");
    json_decref(r);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{"
            "\"protocolVersion\":\"2025-11-25\",\"capabilities\":[]}}");
    r = expect_error(-32602, json_integer(3));
    assert_string_equal(err_field(r), "params.capabilities");
    json_decref(r);
    assert_null(mcp_version(m)); /* failed attempts leave it uninitialised */
    /* before initialize: ping yes, anything else no */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}");
    json_decref(reply());
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}");
    expect_error_code(-32600, json_integer(5));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_status\"}}");
    expect_error_code(-32600, json_integer(6));
    assert_int_equal(F.ncalls, 0);
    done_with(m);
}

/* ---- tools/list ---- */

static void check_schema_shape(json_t *tool)
{
    const char *name = json_string_value(json_object_get(tool, "name"));
    assert_non_null(name);
    assert_true(strlen(name) <= 128);
    assert_true(json_string_length(json_object_get(tool, "description")) > 40);
    json_t *s = json_object_get(tool, "inputSchema");
    assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
    json_t *props = json_object_get(s, "properties");
    assert_true(json_is_object(props));
    assert_true(json_is_false(json_object_get(s, "additionalProperties")));
    json_t *req = json_object_get(s, "required");
    assert_true(json_is_array(req));
    size_t i;
    json_t *v;
    json_array_foreach(req, i, v) assert_non_null(json_object_get(props, json_string_value(v)));
    const char *k;
    json_object_foreach(props, k, v) {
        assert_true(json_string_length(json_object_get(v, "description")) > 5);
        const char *type = json_string_value(json_object_get(v, "type"));
        if (!strcmp(k, "result"))
            assert_null(type); /* any JSON */
        else
            assert_non_null(type);
    }
}

static json_t *find_tool(json_t *tools, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) if (!strcmp(json_string_value(json_object_get(t, "name")),
                                                name)) return t;
    fail_msg("no tool %s", name);
    return NULL;
}

static int requires(json_t *tool, const char *arg)
{
    json_t *req = json_object_get(json_object_get(tool, "inputSchema"), "required");
    size_t i;
    json_t *v;
    json_array_foreach(req, i, v) if (!strcmp(json_string_value(v), arg)) return 1;
    return 0;
}

static void test_tools_list(void **state)
{
    (void)state;
    static const char *const names[] = {"s2_claim",  "s2_heartbeat", "s2_done",   "s2_fail",
                                        "s2_block",  "s2_status",    "s2_ready",  "s2_task",
                                        "s2_thread", "s2_post",      "s2_review", "s2_unblock"};
    for (int with_agent = 0; with_agent < 2; with_agent++) {
        struct mcp *m = server_with(with_agent ? "ag1" : NULL, 0);
        init(m, "2025-11-25");
        send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}");
        json_t *r = reply(), *tools = json_object_get(result_of(r), "tools");
        assert_int_equal(json_array_size(tools), sizeof names / sizeof names[0]);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            check_schema_shape(find_tool(tools, names[i]));
        json_t *claim = find_tool(tools, "s2_claim");
        /* with a default agent the call may leave it out */
        assert_int_equal(requires(claim, "agent"), !with_agent);
        json_t *wait = json_object_get(
            json_object_get(json_object_get(claim, "inputSchema"), "properties"), "wait_seconds");
        assert_string_equal(json_string_value(json_object_get(wait, "type")), "integer");
        assert_int_equal(json_integer_value(json_object_get(wait, "maximum")), MCP_WAIT_MAX);
        assert_true(requires(find_tool(tools, "s2_done"), "task"));
        assert_false(requires(find_tool(tools, "s2_done"), "lease"));
        assert_true(requires(find_tool(tools, "s2_fail"), "reason"));
        assert_true(requires(find_tool(tools, "s2_block"), "needs"));
        assert_true(requires(find_tool(tools, "s2_post"), "text"));
        assert_true(requires(find_tool(tools, "s2_review"), "post"));
        assert_true(requires(find_tool(tools, "s2_review"), "accept"));
        json_t *ann = json_object_get(find_tool(tools, "s2_status"), "annotations");
        assert_true(json_is_true(json_object_get(ann, "readOnlyHint")));
        ann = json_object_get(find_tool(tools, "s2_claim"), "annotations");
        assert_true(json_is_false(json_object_get(ann, "readOnlyHint")));
        json_decref(r);
        /* there is one page: any cursor is invalid */
        send(m, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"cursor\":"
                "\"x\"}}");
        r = expect_error(-32602, json_integer(2));
        assert_string_equal(err_field(r), "params.cursor");
        json_decref(r);
        done_with(m);
    }
}

/* ---- every error path ---- */

static void test_error_codes(void **state)
{
    (void)state;
    struct mcp *m = server_with("ag1", 0);
    init(m, "2025-11-25");
    json_t *r;

    /* -32700: not JSON, never mind the id inside */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"");
    expect_error_code(-32700, NULL);
    send(m, "garbage");
    expect_error_code(-32700, NULL);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} trailing");
    expect_error_code(-32700, NULL);
    send(m, "{\"id\":1,\"id\":2,\"jsonrpc\":\"2.0\",\"method\":\"ping\"}"); /* duplicate key */
    expect_error_code(-32700, NULL);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"ping\"}"); /* not UTF-8 */
    expect_error_code(-32700, NULL);
    mcp_handle(m, "{\"a\":\"\0\"}", 9); /* a NUL byte */
    expect_error_code(-32700, NULL);

    /* -32600: JSON, but not a request */
    static const char *const not_objects[] = {"42", "\"x\"", "null", "true", "[1]"};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        send(m, not_objects[i]);
        expect_error_code(-32600, NULL);
    }
    send(m, "{}");
    expect_error_code(-32600, NULL);
    send(m, "{\"id\":7,\"method\":\"ping\"}"); /* no jsonrpc */
    r = expect_error(-32600, json_integer(7));
    assert_string_equal(err_field(r), "jsonrpc");
    json_decref(r);
    send(m, "{\"jsonrpc\":\"1.0\",\"id\":8,\"method\":\"ping\"}");
    expect_error_code(-32600, json_integer(8));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":5}");
    expect_error_code(-32600, json_integer(9));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":10}");
    expect_error_code(-32600, json_integer(10));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}");
    expect_error_code(-32600, NULL);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}"); /* MCP: never null */
    expect_error_code(-32600, NULL);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}");
    expect_error_code(-32600, NULL);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"ping\",\"params\":\"x\"}");
    expect_error_code(-32600, json_integer(11));
    /* batches exist only in 2025-03-26 */
    send(m, "[{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\"}]");
    expect_error_code(-32600, NULL);
    send(m, "[]");
    expect_error_code(-32600, NULL);

    /* -32601 */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"resources/list\"}");
    expect_error_code(-32601, json_integer(13));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"\"}");
    expect_error_code(-32601, json_string("s"));

    /* -32602, naming the field */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"tools/call\",\"params\":[1]}");
    r = expect_error(-32602, json_integer(14));
    assert_string_equal(err_field(r), "params");
    json_decref(r);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":15,\"method\":\"tools/call\"}");
    expect_error_code(-32602, json_integer(15));
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":16,\"method\":\"tools/call\",\"params\":{}}");
    r = expect_error(-32602, json_integer(16));
    assert_string_equal(err_field(r), "params.name");
    json_decref(r);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":17,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"rm_rf\"}}");
    r = expect_error(-32602, json_integer(17));
    assert_string_equal(err_field(r), "params.name");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
                                                             "message")),
                           "s2_claim"));
    json_decref(r);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":18,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_task\",\"arguments\":[\"t1\"]}}");
    r = expect_error(-32602, json_integer(18));
    assert_string_equal(err_field(r), "params.arguments");
    json_decref(r);
    assert_int_equal(F.ncalls, 0); /* none of it reached the server */

    /* 2025-11-25: bad tool arguments are a tool error the model can read */
    r = call(m, 19, "s2_claim", "{\"wait_seconds\":9000}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "wait_seconds"));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(result_of(r), "structuredContent"), "error"),
            "field")),
        "wait_seconds");
    json_decref(r);
    r = call(m, 20, "s2_done", "{}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "'task' is required"));
    json_decref(r);
    r = call(m, 21, "s2_done", "{\"task\":\"t1\",\"colour\":\"red\"}");
    assert_non_null(strstr(text_of(r), "unknown argument 'colour'"));
    json_decref(r);
    r = call(m, 22, "s2_done", "{\"task\":\"t1\",\"usage\":{\"tokens_in\":-5}}");
    assert_non_null(strstr(text_of(r), "usage.tokens_in"));
    json_decref(r);
    r = call(m, 23, "s2_block", "{\"task\":\"t1\",\"needs\":[],\"reason\":\"r\"}");
    assert_non_null(strstr(text_of(r), "needs"));
    json_decref(r);
    r = call(m, 24, "s2_fail", "{\"task\":\"t1\",\"reason\":\"x\",\"retry\":\"no\"}");
    assert_non_null(strstr(text_of(r), "'retry' must be true or false"));
    json_decref(r);
    assert_int_equal(F.ncalls, 0);
    done_with(m);

    /* before 2025-11-25 they were protocol errors */
    m = server_with(NULL, 0);
    init(m, "2025-06-18");
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_claim\",\"arguments\":{\"agent\":\"a\",\"wait_seconds\":-1}}}");
    r = expect_error(-32602, json_integer(1));
    assert_string_equal(err_field(r), "params.arguments.wait_seconds");
    json_decref(r);
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_claim\",\"arguments\":{}}}"); /* no default agent */
    r = expect_error(-32602, json_integer(2));
    assert_string_equal(err_field(r), "params.arguments.agent");
    json_decref(r);
    done_with(m);
}

static void test_batches_2025_03_26(void **state)
{
    (void)state;
    struct mcp *m = server_with(NULL, 0);
    init(m, "2025-03-26");
    send(m, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\"},"
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"},"
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{}},"
            "7]");
    json_t *r = reply();
    assert_true(json_is_array(r));
    assert_int_equal(json_array_size(r), 4); /* the notification gets nothing */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "id")), 1);
    assert_non_null(json_object_get(json_array_get(r, 0), "result"));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(r, 1), "error"), "code")),
                     -32601);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(r, 2), "error"), "code")),
                     -32600);
    assert_true(json_is_null(json_object_get(json_array_get(r, 3), "id")));
    json_decref(r);
    send(m, "[]");
    expect_error_code(-32600, NULL);
    /* a batch of notifications only: no reply at all */
    send(m, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/a\"}]");
    no_reply();
    done_with(m);
}

static void test_notifications_unanswered(void **state)
{
    (void)state;
    struct mcp *m = server_with("ag1", 0);
    /* before initialize too */
    send(m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    no_reply();
    init(m, "2025-11-25");
    static const char *const quiet[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":"
        "99,\"reason\":\"x\"}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/roots/list_changed\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"s2_claim\"}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"params\":[1,2]}",
        /* responses from the client: nothing waits for them */
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":{\"code\":-1,\"message\":\"x\"}}",
        "",
        "   ",
        "\r",
    };
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
        send(m, quiet[i]);
        no_reply();
    }
    assert_int_equal(F.ncalls, 0); /* a tools/call notification does nothing */
    done_with(m);
}

/* ---- the read loop ---- */

static int file_with(const char *data, size_t len)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fflush(f);
    int fd = dup(fileno(f));
    fclose(f);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static void test_serve_lines(void **state)
{
    (void)state;
    struct mcp *m = server_with(NULL, 0); /* max_line 4096 */
    struct buf in = BUF_INIT;
    buf_adds(&in, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                  "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{}}}\r\n");
    buf_adds(&in, "\n\n");
    buf_adds(&in, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"params\":{\"pad\":\"");
    for (int i = 0; i < 200000; i++) /* far past the limit, across many reads */
        buf_addch(&in, 'x');
    buf_adds(&in, "\"}}\n");
    buf_adds(&in, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\n");
    buf_adds(&in, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}"); /* no final newline */
    int fd = file_with(in.ptr, in.len);
    assert_int_equal(mcp_serve(m, fd), 0);
    close(fd);
    json_t *r = reply();
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    json_decref(r);
    r = expect_error(-32600, NULL);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
                                                             "message")),
                           "too large"));
    json_decref(r);
    for (int id = 3; id <= 4; id++) {
        r = reply();
        assert_int_equal(json_integer_value(json_object_get(r, "id")), id);
        assert_non_null(json_object_get(r, "result"));
        json_decref(r);
    }
    no_reply();
    buf_release(&in);
    done_with(m);

    /* an oversized last line without a newline, and exactly the limit is fine */
    m = server_with(NULL, 0);
    buf_init(&in, 0);
    buf_adds(&in, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"p\":\"");
    while (in.len < 4096 - 3)
        buf_addch(&in, 'y');
    buf_adds(&in, "\"}}\n");
    assert_int_equal(in.len, 4097);
    for (int i = 0; i < 5000; i++)
        buf_addch(&in, 'z');
    fd = file_with(in.ptr, in.len);
    assert_int_equal(mcp_serve(m, fd), 0);
    close(fd);
    r = reply();
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
    expect_error_code(-32600, NULL);
    no_reply();
    buf_release(&in);
    done_with(m);

    /* deep nesting is a parse error, not a stack overflow */
    m = server_with(NULL, 0);
    buf_init(&in, 0);
    for (int i = 0; i < 100000; i++)
        buf_addch(&in, '[');
    for (int i = 0; i < 100000; i++)
        buf_addch(&in, ']');
    mcp_handle(m, in.ptr, in.len);
    expect_error_code(-32700, NULL);
    buf_release(&in);
    done_with(m);
}

/* ---- tools against the fake server ---- */

static const char claim_reply[] =
    "{\"task\":{\"id\":\"t1\",\"swarm\":\"sw1\",\"phase\":1,\"title\":\"Write the parser\","
    "\"body\":\"Parse SIP INVITE.\",\"state\":\"claimed\",\"priority\":0,\"requires\":[\"a\"],"
    "\"attempts\":1,\"max_attempts\":3,\"lease_ms\":300000},"
    "\"lease\":{\"token\":\"s2l_1_secret\",\"fence\":1,\"expires_at\":99999999999999}}";

static void test_claim_then_done(void **state)
{
    (void)state;
    struct mcp *m = server_with("ag1", 0);
    init(m, "2025-11-25");
    F.reply = claim_reply;
    json_t *r = call(m, 1, "s2_claim", "{\"wait_seconds\":5}");
    assert_false(is_error(r));
    assert_string_equal(F.method, "POST");
    assert_string_equal(F.path, "/v1/claim");
    assert_string_equal(json_string_value(json_object_get(F.body, "agent")), "ag1");
    assert_int_equal(json_integer_value(json_object_get(F.body, "wait_ms")), 5000);
    assert_non_null(strstr(text_of(r), "t1"));
    assert_non_null(strstr(text_of(r), "Parse SIP INVITE."));
    json_t *sc = json_object_get(result_of(r), "structuredContent");
    assert_string_equal(json_string_value(json_object_get(json_object_get(sc, "task"), "id")),
                        "t1");
    json_decref(r);

    /* done needs only the task: the lease was remembered */
    F.reply = "{\"task\":{\"id\":\"t1\",\"state\":\"done\",\"attempts\":1}}";
    r = call(m, 2, "s2_done", "{\"task\":\"t1\",\"result\":{\"ok\":true},\"usage\":{\"model\":"
                              "\"sonnet\",\"tokens_in\":1200,\"tokens_out\":300}}");
    assert_false(is_error(r));
    assert_string_equal(F.path, "/v1/tasks/t1/done");
    assert_string_equal(json_string_value(json_object_get(F.body, "lease")), "s2l_1_secret");
    assert_true(json_is_true(json_object_get(json_object_get(F.body, "result"), "ok")));
    json_t *u = json_object_get(F.body, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "tokens_in")), 1200);
    assert_string_equal(json_string_value(json_object_get(u, "model")), "sonnet");
    json_decref(r);
    /* and then forgotten */
    int before = F.ncalls;
    r = call(m, 3, "s2_heartbeat", "{\"task\":\"t1\"}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "no lease"));
    assert_int_equal(F.ncalls, before);
    json_decref(r);
    /* an explicit lease still works */
    F.reply = "{\"task\":{\"id\":\"t9\",\"state\":\"claimed\",\"attempts\":1},\"lease\":"
              "{\"fence\":3,\"expires_at\":99999999999999}}";
    r = call(m, 4, "s2_heartbeat", "{\"task\":\"t9\",\"lease\":\"s2l_3_x\"}");
    assert_false(is_error(r));
    assert_string_equal(json_string_value(json_object_get(F.body, "lease")), "s2l_3_x");
    assert_string_equal(F.path, "/v1/tasks/t9/heartbeat");
    json_decref(r);
    /* ids are escaped into the path */
    F.reply = "{\"task\":{\"id\":\"a b/c\",\"state\":\"ready\"}}";
    r = call(m, 5, "s2_task", "{\"task\":\"a b/c\"}");
    assert_string_equal(F.path, "/v1/tasks/a%20b%2Fc");
    json_decref(r);
    done_with(m);
}

static void test_claim_nothing_and_fail(void **state)
{
    (void)state;
    struct mcp *m = server_with(NULL, 0);
    init(m, "2025-11-25");
    F.status = 204;
    F.reason = "swarm paused";
    json_t *r = call(m, 1, "s2_claim", "{\"agent\":\"ag2\",\"wait_seconds\":0}");
    assert_false(is_error(r)); /* waiting in vain is no error */
    assert_non_null(strstr(text_of(r), "swarm paused"));
    assert_non_null(strstr(text_of(r), "s2_claim again"));
    assert_true(json_is_null(
        json_object_get(json_object_get(result_of(r), "structuredContent"), "task")));
    assert_string_equal(json_string_value(json_object_get(F.body, "agent")), "ag2");
    assert_int_equal(json_integer_value(json_object_get(F.body, "wait_ms")), 0);
    json_decref(r);
    /* the default wait */
    r = call(m, 2, "s2_claim", "{\"agent\":\"ag2\"}");
    assert_int_equal(json_integer_value(json_object_get(F.body, "wait_ms")),
                     MCP_WAIT_DEFAULT * 1000);
    json_decref(r);

    /* fail: reason and retry travel, the lease goes */
    F.status = 0;
    F.reason = NULL;
    F.reply = claim_reply;
    json_decref(call(m, 3, "s2_claim", "{\"agent\":\"ag2\"}"));
    F.reply = "{\"task\":{\"id\":\"t1\",\"state\":\"dead\",\"attempts\":1,\"retry_at\":null}}";
    r = call(m, 4, "s2_fail", "{\"task\":\"t1\",\"reason\":\"tests crash\",\"retry\":false}");
    assert_false(is_error(r));
    assert_string_equal(json_string_value(json_object_get(F.body, "reason")), "tests crash");
    assert_true(json_is_false(json_object_get(F.body, "retry")));
    assert_non_null(strstr(text_of(r), "dead"));
    json_decref(r);
    done_with(m);
}

static void test_server_errors(void **state)
{
    (void)state;
    struct mcp *m = server_with("ag1", 0);
    init(m, "2025-06-18");
    F.reply = claim_reply;
    json_decref(call(m, 1, "s2_claim", "{}"));

    /* a stale lease: the model is told to stop, and the lease is dropped */
    F.fail_kind = -3; /* S2_ECONFLICT */
    F.fail_code = "stale_lease";
    F.fail_msg = "lease 1 of task 't1' is stale: the task was claimed again (current lease 2)";
    json_t *r = call(m, 2, "s2_done", "{\"task\":\"t1\"}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "claimed again (current lease 2)"));
    assert_non_null(strstr(text_of(r), "stop working on this task"));
    json_t *e = json_object_get(json_object_get(result_of(r), "structuredContent"), "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "stale_lease");
    json_decref(r);
    r = call(m, 3, "s2_heartbeat", "{\"task\":\"t1\"}");
    assert_non_null(strstr(text_of(r), "no lease"));
    json_decref(r);

    /* a server without the blocker endpoint */
    F.fail_kind = 0;
    F.reply = claim_reply;
    json_decref(call(m, 4, "s2_claim", "{}"));
    F.fail_kind = -2; /* S2_ENOTFOUND */
    F.fail_code = "no_such_route";
    F.fail_msg = "no such endpoint: POST /v1/tasks/t1/block";
    r = call(m, 5, "s2_block", "{\"task\":\"t1\",\"needs\":[\"code-analysis:rust\"],\"reason\":"
                               "\"borrow checker\"}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "not supported by this s2 server"));
    assert_non_null(strstr(text_of(r), "no such endpoint"));
    assert_string_equal(F.path, "/v1/tasks/t1/block");
    assert_string_equal(json_string_value(json_array_get(json_object_get(F.body, "needs"), 0)),
                        "code-analysis:rust");
    json_decref(r);
    r = call(m, 6, "s2_thread", "{\"task\":\"t1\"}");
    assert_non_null(strstr(text_of(r), "not supported"));
    json_decref(r);
    /* the lease survives a refused block */
    F.fail_kind = 0;
    F.reply = "{\"task\":{\"id\":\"t1\",\"state\":\"done\",\"attempts\":1}}";
    r = call(m, 7, "s2_done", "{\"task\":\"t1\"}");
    assert_false(is_error(r));
    json_decref(r);

    /* credentials, and an unreachable server */
    F.fail_kind = -4; /* S2_EUNAUTH */
    F.fail_code = "unauthorized";
    F.fail_msg = "unknown token";
    r = call(m, 8, "s2_status", "{\"swarm\":\"sw1\"}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "S2_TOKEN"));
    assert_string_equal(F.path, "/v1/swarms/sw1/status");
    json_decref(r);
    F.fail_kind = -7;
    F.fail_code = "unreachable";
    F.fail_msg = "cannot reach s2 at http://127.0.0.1:1: Couldn't connect to server";
    r = call(m, 9, "s2_ready", "{\"swarm\":\"sw1\",\"limit\":5}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "cannot reach s2"));
    assert_string_equal(F.path, "/v1/tasks?state=ready&limit=5&swarm=sw1");
    json_decref(r);
    done_with(m);
}

static void test_status_ready_thread(void **state)
{
    (void)state;
    struct mcp *m = server_with("ag1", 0);
    init(m, "2024-11-05");
    /* the default agent's swarm is looked up once */
    F.reply = "{\"agent\":{\"id\":\"ag1\",\"swarm\":\"sw7\"}}";
    json_t *r = call(m, 1, "s2_ready", "{}");
    assert_int_equal(F.ncalls, 2); /* the agent, then its swarm's ready tasks */
    assert_string_equal(F.path, "/v1/tasks?state=ready&limit=20&swarm=sw7");
    json_decref(r);
    F.reply = "{\"tasks\":[{\"id\":\"r1\",\"title\":\"Ready one\",\"phase\":2,\"priority\":5,"
              "\"requires\":[\"a\",\"b\"]}],\"next\":null}";
    r = call(m, 2, "s2_ready", "{}");
    assert_int_equal(F.ncalls, 3);
    assert_string_equal(F.path, "/v1/tasks?state=ready&limit=20&swarm=sw7");
    assert_non_null(strstr(text_of(r), "r1: Ready one"));
    assert_non_null(strstr(text_of(r), "requires a, b"));
    /* 2024-11-05 has no structuredContent: the JSON comes as a second text block */
    assert_null(json_object_get(result_of(r), "structuredContent"));
    json_t *c1 = json_array_get(json_object_get(result_of(r), "content"), 1);
    json_t *j = json_loads(json_string_value(json_object_get(c1, "text")), 0, NULL);
    assert_non_null(j);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "tasks"), 0), "id")),
        "r1");
    json_decref(j);
    json_decref(r);
    F.reply = "{\"id\":\"sw7\",\"status\":\"blocked\",\"reason\":\"waiting\",\"progress\":{},"
              "\"phases\":[],\"blocked_on\":[{\"task\":\"x9\",\"swarm\":\"sw2\",\"state\":"
              "\"ready\"}]}";
    r = call(m, 3, "s2_status", "{}");
    assert_string_equal(F.path, "/v1/swarms/sw7/status");
    assert_non_null(strstr(text_of(r), "blocked on: x9 of swarm sw2"));
    json_decref(r);
    F.reply = "{\"task\":\"t1\",\"posts\":[{\"id\":3,\"agent\":\"h1\",\"help_task\":"
              "\"t1.help-1\",\"body\":\"try a mutex\",\"created_at\":1,\"verdict\":"
              "\"pending\"}]}";
    r = call(m, 4, "s2_thread", "{\"task\":\"t1\"}");
    assert_string_equal(F.path, "/v1/tasks/t1/thread");
    assert_non_null(strstr(text_of(r), "#3 "));
    assert_non_null(strstr(text_of(r), "by h1 (helper, via t1.help-1) [pending]\ntry a mutex"));
    json_decref(r);
    done_with(m);
}

/* A helper posts with its help task's lease; the blocked agent judges with its own. */
static void test_blocker_thread(void **state)
{
    (void)state;
    struct mcp *m = server_with("h1", 0);
    init(m, "2025-11-25");
    /* nobody holds anything yet: nothing to post or judge with */
    int before = F.ncalls;
    json_t *r = call(m, 1, "s2_post", "{\"task\":\"t7\",\"text\":\"hello\"}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "no lease to post"));
    json_decref(r);
    r = call(m, 2, "s2_review", "{\"task\":\"t7\",\"post\":1,\"accept\":true}");
    assert_true(is_error(r));
    assert_int_equal(F.ncalls, before);
    json_decref(r);
    /* a help task, as the governor makes them */
    F.reply = "{\"task\":{\"id\":\"t7.help-1\",\"swarm\":\"sw1\",\"title\":\"help on t7: "
              "borrow checker\",\"state\":\"claimed\",\"lease_ms\":60000},\"lease\":{"
              "\"token\":\"s2l_9_help\",\"fence\":9,\"expires_at\":99999999999999}}";
    r = call(m, 3, "s2_claim", "{}");
    assert_non_null(strstr(text_of(r), "This is a help task: task t7"));
    assert_non_null(strstr(text_of(r), "s2_post (task \"t7\""));
    json_decref(r);
    F.reply = "{\"post\":4}";
    r = call(m, 4, "s2_post", "{\"task\":\"t7\",\"text\":\"use Rc<RefCell<_>>\"}");
    assert_false(is_error(r));
    assert_string_equal(F.method, "POST");
    assert_string_equal(F.path, "/v1/tasks/t7/thread");
    assert_string_equal(json_string_value(json_object_get(F.body, "lease")), "s2l_9_help");
    assert_string_equal(json_string_value(json_object_get(F.body, "body")), "use Rc<RefCell<_>>");
    assert_non_null(strstr(text_of(r), "Posted #4"));
    json_decref(r);
    /* the blocked agent's side: its own lease judges and unblocks */
    F.reply = "{\"task\":{\"id\":\"t7\",\"swarm\":\"sw2\",\"title\":\"Port the parser\","
              "\"state\":\"claimed\",\"lease_ms\":60000},\"lease\":{\"token\":\"s2l_2_own\","
              "\"fence\":2,\"expires_at\":99999999999999}}";
    json_decref(call(m, 5, "s2_claim", "{\"agent\":\"a7\"}"));
    F.reply = "{\"task\":\"t7\",\"state\":\"blocked\",\"escalated\":false,\"helpers\":2}";
    r = call(m, 6, "s2_block", "{\"task\":\"t7\",\"needs\":[\"code-analysis:rust\"],"
                               "\"reason\":\"borrow checker\"}");
    assert_non_null(strstr(text_of(r), "2 helpers"));
    assert_string_equal(json_string_value(json_object_get(F.body, "lease")), "s2l_2_own");
    json_decref(r);
    F.reply = "{\"ok\":true}";
    r = call(m, 7, "s2_review", "{\"task\":\"t7\",\"post\":4,\"accept\":false}");
    assert_false(is_error(r));
    assert_string_equal(F.path, "/v1/tasks/t7/thread/4/reject");
    assert_string_equal(json_string_value(json_object_get(F.body, "lease")), "s2l_2_own");
    json_decref(r);
    r = call(m, 8, "s2_unblock", "{\"task\":\"t7\"}");
    assert_false(is_error(r));
    assert_string_equal(F.path, "/v1/tasks/t7/unblock");
    assert_int_equal(json_object_size(F.body), 1); /* the lease alone */
    json_decref(r);
    /* a server that names the blocked task; paths shown */
    F.reply = "{\"task\":{\"id\":\"help-55-1\",\"kind\":\"help\",\"help_for\":\"t8\","
              "\"title\":\"help\",\"paths\":[\"src/sip/**\"],\"state\":\"claimed\"},"
              "\"lease\":{\"token\":\"s2l_5_h\",\"fence\":5,\"expires_at\":99999999999999}}";
    r = call(m, 10, "s2_claim", "{}");
    assert_non_null(strstr(text_of(r), "This is a help task: task t8"));
    assert_non_null(strstr(text_of(r), "paths (yours alone while you hold the lease): src/sip/**"));
    json_decref(r);
    F.reply = "{\"post\":5}";
    json_decref(call(m, 11, "s2_post", "{\"task\":\"t8\",\"text\":\"x\"}"));
    assert_string_equal(json_string_value(json_object_get(F.body, "lease")), "s2l_5_h");
    /* a closed thread says why */
    F.fail_kind = -3;
    F.fail_code = "not_blocked";
    F.fail_msg = "task 't7' has no open blocker: its thread is closed";
    r = call(m, 9, "s2_post", "{\"task\":\"t7\",\"text\":\"late\"}");
    assert_true(is_error(r));
    assert_non_null(strstr(text_of(r), "its thread is closed"));
    json_decref(r);
    done_with(m);
}

/* ---- threaded: ping stays live during a waiting claim; cancel drops its reply ---- */

static void wait_until(int (*cond)(void), const char *what)
{
    for (int i = 0; i < 5000; i++) {
        if (cond())
            return;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("timed out waiting for %s", what);
}

static int fake_blocked(void)
{
    return atomic_load(&F.blocked);
}

static int have_output(void)
{
    pthread_mutex_lock(&out_lock);
    int n = OUT.len > 0;
    pthread_mutex_unlock(&out_lock);
    return n;
}

static void test_cancel_waiting_claim(void **state)
{
    (void)state;
    struct mcp *m = server_with("ag1", 1);
    init(m, "2025-11-25");
    F.reply = claim_reply;
    F.block_until_abort = 1; /* the server grants the task just as the client cancels */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_claim\",\"arguments\":{\"wait_seconds\":300}}}");
    wait_until(fake_blocked, "the claim to wait");
    /* the reader is not stuck behind it */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
    json_t *r = reply();
    assert_string_equal(json_string_value(json_object_get(r, "id")), "p");
    json_decref(r);
    /* the same id again while in flight */
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_status\",\"arguments\":{}}}");
    expect_error_code(-32600, json_string("c1"));
    send(m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
            "\"requestId\":\"c1\",\"reason\":\"user pressed Esc\"}}");
    /* no reply for a cancelled request; the next claim gets the task it won meanwhile,
     * without asking the server again */
    F.block_until_abort = 0;
    int calls;
    for (int i = 0; i < 100; i++) { /* let the worker finish */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    no_reply();
    calls = F.ncalls;
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":\"c2\",\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_claim\",\"arguments\":{}}}");
    wait_until(have_output, "the second claim");
    r = reply();
    assert_string_equal(json_string_value(json_object_get(r, "id")), "c2");
    assert_false(is_error(r));
    assert_non_null(strstr(text_of(r), "claimed for you by a request that was cancelled"));
    assert_int_equal(F.ncalls, calls);
    json_decref(r);
    /* its lease is known too */
    F.reply = "{\"task\":{\"id\":\"t1\",\"state\":\"done\",\"attempts\":1}}";
    send(m, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"s2_done\",\"arguments\":{\"task\":\"t1\"}}}");
    wait_until(have_output, "done");
    r = reply();
    assert_false(is_error(r));
    assert_string_equal(json_string_value(json_object_get(F.body, "lease")), "s2l_1_secret");
    json_decref(r);
    done_with(m);
}

/* ---- mutated input and odd server replies: never a crash, always valid JSON-RPC out ---- */

static const char *const seeds[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-03-26\",\"capabilities\":{},\"clientInfo\":{\"name\":\"f\",\"version\":\"1\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":3}}",
    "[{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\",\"method\":\"n\"}]",
    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_claim\","
    "\"arguments\":{\"agent\":\"a\",\"wait_seconds\":0}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_done\","
    "\"arguments\":{\"task\":\"t1\",\"result\":{\"a\":[1,2]},\"usage\":{\"model\":\"m\","
    "\"tokens_in\":1,\"tokens_out\":2,\"usd\":0.5},\"lease\":\"l\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_fail\","
    "\"arguments\":{\"task\":\"t1\",\"reason\":\"r\",\"retry\":false,\"lease\":\"l\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_block\","
    "\"arguments\":{\"task\":\"t1\",\"needs\":[\"a\",\"b\"],\"reason\":\"r\",\"lease\":\"l\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_status\","
    "\"arguments\":{\"swarm\":\"s\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_ready\","
    "\"arguments\":{\"limit\":3}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_thread\","
    "\"arguments\":{\"task\":\"t1\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_post\","
    "\"arguments\":{\"task\":\"t1\",\"text\":\"hi\",\"lease\":\"l\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_review\","
    "\"arguments\":{\"task\":\"t1\",\"post\":2,\"accept\":true,\"lease\":\"l\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"tools/call\",\"params\":{\"name\":\"s2_task\","
    "\"arguments\":{\"task\":\"t1\"}}}",
};

/* What the fake server may answer: right, wrong-shaped, empty, or an error. */
static const char *const odd_replies[] = {
    NULL, "{}", "[]", "{\"task\":5}", "{\"task\":{\"id\":7,\"title\":[]},\"lease\":\"x\"}",
    "{\"tasks\":{},\"next\":3}", "{\"posts\":[1,\"x\",{\"id\":\"a\",\"body\":null}]}",
    "{\"id\":\"s\",\"phases\":[{}],\"working\":[null],\"agent_list\":5}",
    "{\"swarms\":[{\"tasks\":[]}]}", claim_reply,
    "{\"task\":{\"id\":\"t1.help-x\",\"title\":\"help on : \"},\"lease\":{}}",
    "{\"agent\":{\"swarm\":\"\"}}", "{\"post\":\"n\"}",
};

static unsigned rnd(unsigned n)
{
    return (unsigned)rand() % n;
}

static void mutate(struct buf *b)
{
    static const char alphabet[] = "{}[]\":,0123456789-.eE\\ntrufalsn \t\x01\x7f\xc3\xa9\xff";
    for (unsigned k = 1 + rnd(4); k; k--) {
        size_t n = b->len;
        unsigned op = rnd(5);
        if (!n)
            op = 2;
        if (op == 0) { /* flip a byte */
            b->ptr[rnd((unsigned)n)] = alphabet[rnd(sizeof alphabet - 1)];
        } else if (op == 1) { /* cut a range */
            size_t at = rnd((unsigned)n), len = 1 + rnd((unsigned)(n - at));
            memmove(b->ptr + at, b->ptr + at + len, n - at - len);
            b->len -= len;
            b->ptr[b->len] = 0;
        } else if (op == 2) { /* insert bytes */
            struct buf t = BUF_INIT;
            size_t at = n ? rnd((unsigned)n) : 0;
            buf_add(&t, b->ptr, at);
            for (unsigned i = 1 + rnd(6); i; i--)
                buf_addch(&t, alphabet[rnd(sizeof alphabet - 1)]);
            buf_add(&t, b->ptr + at, n - at);
            buf_release(b);
            *b = t;
        } else if (op == 3) { /* repeat a range (deep nesting, long strings) */
            size_t at = rnd((unsigned)n), len = 1 + rnd((unsigned)(n - at) < 16 ? (unsigned)(n - at) : 16);
            struct buf t = BUF_INIT;
            buf_add(&t, b->ptr, at + len);
            for (unsigned i = rnd(64); i; i--)
                buf_add(&t, b->ptr + at, len);
            buf_add(&t, b->ptr + at + len, n - at - len);
            buf_release(b);
            *b = t;
        } else { /* swap a value for one of another type */
            static const char *const values[] = {"null", "true", "-1", "1e999", "\"\"", "[]", "{}",
                                                 "9223372036854775807", "0.5", "\"\\u0000\""};
            char *colon = memchr(b->ptr + rnd((unsigned)n), ':', 1);
            if (!colon)
                colon = strchr(b->ptr, ':');
            if (!colon)
                continue;
            size_t at = (size_t)(colon - b->ptr) + 1;
            size_t end = at;
            while (end < b->len && b->ptr[end] != ',' && b->ptr[end] != '}')
                end++;
            struct buf t = BUF_INIT;
            buf_add(&t, b->ptr, at);
            buf_adds(&t, values[rnd(sizeof values / sizeof values[0])]);
            buf_add(&t, b->ptr + end, b->len - end);
            buf_release(b);
            *b = t;
        }
    }
}

/* Every line out is a JSON-RPC message (or a batch of them); returns how many. */
static int drain_valid(void)
{
    int n = 0;
    json_t *r;
    while ((r = reply())) {
        json_t *msgs = json_is_array(r) ? r : NULL;
        size_t count = msgs ? json_array_size(msgs) : 1;
        for (size_t i = 0; i < count; i++) {
            json_t *msg = msgs ? json_array_get(msgs, i) : r;
            assert_string_equal(json_string_value(json_object_get(msg, "jsonrpc")), "2.0");
            assert_non_null(json_object_get(msg, "id"));
            json_t *res = json_object_get(msg, "result"), *err = json_object_get(msg, "error");
            assert_true((res != NULL) != (err != NULL));
            if (err)
                assert_true(json_is_integer(json_object_get(err, "code")));
            if (res && json_object_get(res, "content"))
                assert_true(json_is_string(json_object_get(
                    json_array_get(json_object_get(res, "content"), 0), "text")));
        }
        json_decref(r);
        n++;
    }
    return n;
}

static void test_mutations(void **state)
{
    (void)state;
    srand(20261125);
    struct mcp *m = server_with("ag1", 0);
    init(m, "2025-03-26"); /* the revision with batches: the most paths */
    int answered = 0;
    for (int i = 0; i < 20000; i++) {
        if (i % 5000 == 4999) { /* now and then a fresh server, other versions */
            done_with(m);
            m = server_with(rnd(2) ? "ag1" : NULL, 0);
            if (rnd(4))
                init(m, mcp_versions[rnd(4)]);
        }
        F.reply = odd_replies[rnd(sizeof odd_replies / sizeof odd_replies[0])];
        F.status = rnd(4) ? 200 : 204;
        F.fail_kind = rnd(5) ? 0 : -1 - (int)rnd(11);
        F.fail_code = rnd(2) ? "stale_lease" : "no_such_route";
        F.fail_msg = "refused";
        struct buf b = BUF_INIT;
        buf_adds(&b, seeds[rnd(sizeof seeds / sizeof seeds[0])]);
        if (rnd(8))
            mutate(&b);
        mcp_handle(m, b.ptr, b.len);
        buf_release(&b);
        answered += drain_valid();
    }
    done_with(m);
    assert_true(answered > 5000); /* most of it was answered, not silently dropped */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initialize),
        cmocka_unit_test(test_version_negotiation),
        cmocka_unit_test(test_tools_list),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_batches_2025_03_26),
        cmocka_unit_test(test_notifications_unanswered),
        cmocka_unit_test(test_serve_lines),
        cmocka_unit_test(test_claim_then_done),
        cmocka_unit_test(test_claim_nothing_and_fail),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_status_ready_thread),
        cmocka_unit_test(test_blocker_thread),
        cmocka_unit_test(test_cancel_waiting_claim),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
