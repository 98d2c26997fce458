/* mcp_tools.c: the tools `s2 mcp` offers an agent CLI: their arguments (one table gives both
 * the JSON Schema a client sees and the checks a call goes through, so they cannot drift),
 * the s2 HTTP calls behind them, and the text the model reads. A server error is a tool
 * result with isError set and the server's own message: the model must see why. */
#include "cli.h"
#include "client.h"
#include "mcp_int.h"
#include "model.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_MS 30000L
#define TEXT_MAX (64 * 1024)   /* s2_post text */
#define BRIEF_STR_MAX 2000     /* strings in the JSON text block are cut past this */
#define READY_DEFAULT 20
#define READY_MAX 100

/* ---- arguments: schema and checks from one table ---- */

enum arg_type { A_STR, A_INT, A_BOOL, A_STRLIST, A_ANY, A_USAGE };

struct arg {
    const char *name;
    enum arg_type type;
    int required;
    long long lo, hi; /* A_INT: range; A_STR, A_STRLIST: length bounds (lo: min) */
    const char *desc;
};

struct call {
    struct mcp *m;
    struct mcp_job *job;
    const struct tool *tool;
    json_t *args;      /* borrowed, checked */
    const char *agent; /* the agent argument or the default */
    struct buf text;
    json_t *data; /* structured result (an object) */
    int is_error;
};

struct tool {
    const char *name, *title, *desc;
    const struct arg *args;
    int read_only, destructive, idempotent;
    void (*run)(struct call *c);
};

#define ARG_END {NULL, 0, 0, 0, 0, NULL}
#define ARG_TASK                                                                               \
    {"task", A_STR, 1, 1, S2_ID_MAX, "The task id, e.g. \"sip-p1-t1\"."}
#define ARG_LEASE                                                                              \
    {"lease", A_STR, 0, 1, 256,                                                                \
     "The lease token. Leave it out: this server remembers the lease of every task claimed "   \
     "through it (and of tasks claimed with `s2 claim` on this machine). Needed only for a "   \
     "task claimed elsewhere."}
#define ARG_USAGE                                                                              \
    {"usage", A_USAGE, 0, 0, 0,                                                                \
     "What this work cost since your last report, for the swarm's budget: {\"model\": the "    \
     "model you run as (default: your agent's), \"tokens_in\": input tokens, \"tokens_out\": " \
     "output tokens} or {\"usd\": cost in US dollars}. Report honestly; s2 prices tokens "     \
     "from its model table."}

static void run_claim(struct call *c);
static void run_heartbeat(struct call *c);
static void run_done(struct call *c);
static void run_fail(struct call *c);
static void run_block(struct call *c);
static void run_status(struct call *c);
static void run_ready(struct call *c);
static void run_task(struct call *c);
static void run_thread(struct call *c);
static void run_post(struct call *c);
static void run_review(struct call *c);
static void run_unblock(struct call *c);

static const struct arg claim_args[] = {
    {"agent", A_STR, 1, 1, S2_ID_MAX,
     "Your agent id as registered in s2 (`s2 agent add`). Your capabilities and model tier "
     "decide which tasks you can get."},
    {"wait_seconds", A_INT, 0, 0, MCP_WAIT_MAX,
     "How long to wait for work when none is ready now (default 30, at most 300). The task "
     "is pushed the moment it becomes ready; there is no need to poll faster."},
    ARG_END};
static const struct arg heartbeat_args[] = {ARG_TASK, ARG_USAGE, ARG_LEASE, ARG_END};
static const struct arg done_args[] = {
    ARG_TASK,
    {"result", A_ANY, 0, 0, 0,
     "What you produced: any JSON value (an object such as {\"summary\": ..., \"files\": "
     "[...], \"commit\": ...} is most useful to whoever depends on this task), or plain "
     "text. At most 256 KiB."},
    ARG_USAGE, ARG_LEASE, ARG_END};
static const struct arg fail_args[] = {
    ARG_TASK,
    {"reason", A_STR, 1, 1, S2_TEXT_MAX,
     "What went wrong, specific enough for the next attempt (perhaps by a stronger model) "
     "to avoid it."},
    {"retry", A_BOOL, 0, 0, 0,
     "false gives the task up for good (it becomes dead and a human is told). Default true: "
     "it is retried after a backoff until its max_attempts."},
    ARG_USAGE, ARG_LEASE, ARG_END};
static const struct arg block_args[] = {
    ARG_TASK,
    {"needs", A_STRLIST, 1, 1, S2_CAPS_MAX,
     "The capabilities the missing piece needs, e.g. [\"integration:sip\", "
     "\"code-analysis:rust\"]: s2 offers help to agents of other swarms that have them."},
    {"reason", A_STR, 1, 1, S2_TEXT_MAX,
     "What exactly blocks you and what would unblock you."},
    ARG_LEASE, ARG_END};
static const struct arg status_args[] = {
    {"swarm", A_STR, 0, 1, S2_ID_MAX,
     "The swarm id. Default: your agent's swarm; without an agent, every swarm you may see."},
    ARG_END};
static const struct arg ready_args[] = {
    {"swarm", A_STR, 0, 1, S2_ID_MAX,
     "The swarm id. Default: your agent's swarm; without an agent, every swarm you may see."},
    {"limit", A_INT, 0, 1, READY_MAX, "How many tasks to list (default 20, at most 100)."},
    ARG_END};
static const struct arg task_args[] = {ARG_TASK, ARG_END};
static const struct arg thread_args[] = {
    {"task", A_STR, 1, 1, S2_ID_MAX, "The blocked task whose thread to read."}, ARG_END};
static const struct arg post_args[] = {
    {"task", A_STR, 1, 1, S2_ID_MAX,
     "The blocked task whose thread to post on (for a helper: the task named in its help "
     "task, not the help task itself)."},
    {"text", A_STR, 1, 1, TEXT_MAX,
     "Your message: what you found, what you did, or the result of your side of the help "
     "(Markdown is fine)."},
    ARG_LEASE, ARG_END};
static const struct arg review_args[] = {
    {"task", A_STR, 1, 1, S2_ID_MAX, "Your blocked task."},
    {"post", A_INT, 1, 1, 1000000000000000LL, "The number of the post (#N in s2_thread)."},
    {"accept", A_BOOL, 1, 0, 0,
     "true: the contribution helped; false: it did not. Helpers' reputations are made of "
     "these verdicts: judge fairly."},
    ARG_LEASE, ARG_END};
static const struct arg unblock_args[] = {ARG_TASK, ARG_LEASE, ARG_END};

static const struct tool tools[] = {
    {"s2_claim", "Claim work",
     "Get your next task from the s2 coordinator, waiting for one if none is ready. Returns "
     "the task (id, title, instructions) and starts a lease: you alone own the task until the "
     "lease expires. Work on it, call s2_heartbeat before the lease expires if it takes "
     "longer, then s2_done (or s2_fail / s2_block). If the wait ends with no task, call "
     "s2_claim again to keep waiting: never poll git or sleep in a loop instead.",
     claim_args, 0, 0, 0, run_claim},
    {"s2_heartbeat", "Extend a lease",
     "Tell s2 you are still working on a task you claimed: extends its lease by the task's "
     "lease length. Call it before the lease expires (the claim told you when), every few "
     "minutes during long work. A lease that expires is given to another agent, and your "
     "later s2_done is refused.",
     heartbeat_args, 0, 0, 1, run_heartbeat},
    {"s2_done", "Finish a task",
     "Report a claimed task finished, with its result and what it cost. Tasks that depend on "
     "it (in any swarm), and the next phase, may become ready at once. Your lease ends.",
     done_args, 0, 0, 0, run_done},
    {"s2_fail", "Report a failed task",
     "Report that you could not finish a claimed task, and why. It goes back to the queue "
     "after a backoff (the next attempt may go to a stronger model) until it has used its "
     "max_attempts; retry=false gives it up now. Your lease ends.",
     fail_args, 0, 1, 0, run_fail},
    {"s2_block", "Report a blocker",
     "Report that a claimed task is blocked on something you cannot do yourself, naming the "
     "capabilities needed. s2 offers help tasks to matching agents of other swarms (at most "
     "3) or escalates to a human; you keep the lease (keep heartbeating) and read their "
     "answers with s2_thread.",
     block_args, 0, 0, 0, run_block},
    {"s2_status", "Swarm status",
     "Show a swarm's STATUS: working, waiting, blocked or completed and why, progress per "
     "phase, who works on what with lease expiry, what other swarms' tasks it waits on, and "
     "its agents' health. Read-only.",
     status_args, 1, 0, 1, run_status},
    {"s2_ready", "List ready work",
     "List the tasks ready to be claimed in a swarm (id, title, priority, required "
     "capabilities). Read-only: to take work call s2_claim, which picks the best task you "
     "are eligible for.",
     ready_args, 1, 0, 1, run_ready},
    {"s2_task", "Show a task",
     "Show one task: state, owner and lease, attempts, what it depends on and still waits "
     "for, its instructions, and its result or last failure. Read-only.",
     task_args, 1, 0, 1, run_task},
    {"s2_thread", "Read a blocker's thread",
     "Read the thread of a blocked task: the numbered posts of its helpers from other swarms "
     "and of the blocked agent, each with its verdict (pending, accepted, rejected). "
     "Read-only.",
     thread_args, 1, 0, 1, run_thread},
    {"s2_post", "Post on a blocker's thread",
     "Post on the thread of a blocked task: as a helper (you claimed a help task for it), "
     "your side of the help: findings, a patch, an answer; as the blocked agent, a question "
     "or what you still need. Everyone on the thread sees it at once.",
     post_args, 0, 0, 0, run_post},
    {"s2_review", "Accept or reject a contribution",
     "As the blocked agent, judge a helper's post on your task's thread: accept=true if it "
     "helped, false if not. The verdict feeds the helper's reputation.",
     review_args, 0, 0, 1, run_review},
    {"s2_unblock", "Close a blocker",
     "As the blocked agent, close your task's blocker once you can go on (help still under "
     "way is cancelled). Finishing the task with s2_done closes it too.",
     unblock_args, 0, 0, 1, run_unblock},
};
#define NTOOLS (sizeof tools / sizeof tools[0])

/* ---- small helpers ---- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* A JSON string of s, with invalid UTF-8 bytes replaced by U+FFFD (json_string refuses
 * them, and a protocol message must never be lost to one bad byte). */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s ? s : "");
    if (j)
        return j;
    struct buf b = BUF_INIT;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(p + i, n - i);
        if (k) {
            buf_add(&b, p + i, k);
            i += k;
        } else {
            buf_adds(&b, "\xef\xbf\xbd");
            i++;
        }
    }
    j = json_string(b.ptr);
    buf_release(&b);
    return j ? j : json_string("");
}

/* A copy of v for the JSON text block: strings past BRIEF_STR_MAX bytes are cut (the full
 * text is in the summary and in structuredContent). */
static json_t *brief(json_t *v)
{
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n <= BRIEF_STR_MAX)
            return json_incref(v);
        const unsigned char *s = (const unsigned char *)json_string_value(v);
        size_t cut = BRIEF_STR_MAX;
        while (cut && (s[cut] & 0xc0) == 0x80) /* back to a character boundary */
            cut--;
        char *t = xasprintf("%.*s... [%zu bytes in all]", (int)cut, (const char *)s, n);
        json_t *j = jstr(t);
        free(t);
        return j;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) json_array_append_new(a, brief(e));
        return a;
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) json_object_set_new(o, k, brief(e));
        return o;
    }
    return json_incref(v);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long num(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void fmt_in(long long at_ms, char *out, size_t n)
{
    cli_fmt_in(at_ms - clock_wall_ms(), out, n);
}

static void add_list(struct buf *b, json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) buf_addf(b, "%s%s", i ? ", " : "", json_string_value(v));
}

static char *escape(const char *s)
{
    return client_escape(s);
}

/* ---- argument checks (from the same table as the schema) ---- */

static const char *type_name(enum arg_type t)
{
    switch (t) {
    case A_STR: return "a string";
    case A_INT: return "an integer";
    case A_BOOL: return "true or false";
    case A_STRLIST: return "an array of strings";
    case A_USAGE: return "an object";
    case A_ANY: return "any JSON value";
    }
    return "?";
}

static int is_whole(json_t *v)
{
    if (json_is_integer(v))
        return 1;
    double d = json_real_value(v);
    return json_is_real(v) && isfinite(d) && d == floor(d) && fabs(d) < 9e15;
}

static long long whole(json_t *v)
{
    return json_is_integer(v) ? (long long)json_integer_value(v)
                              : (long long)json_real_value(v);
}

static int check_usage(json_t *u, char **field, char **msg)
{
    const char *k;
    json_t *v;
    json_object_foreach(u, k, v) {
        if (json_is_null(v))
            continue;
        if (!strcmp(k, "model")) {
            if (!json_is_string(v) || !json_string_length(v) ||
                json_string_length(v) > S2_ID_MAX) {
                *msg = xasprintf("argument 'usage.model' must be a model name (1 to %d "
                                 "characters)", S2_ID_MAX);
                goto bad;
            }
        } else if (!strcmp(k, "tokens_in") || !strcmp(k, "tokens_out")) {
            if (!is_whole(v) || whole(v) < 0 || whole(v) > S2_TOKENS_MAX) {
                *msg = xasprintf("argument 'usage.%s' must be a whole number of tokens from 0 "
                                 "to %lld",
                                 k, (long long)S2_TOKENS_MAX);
                goto bad;
            }
        } else if (!strcmp(k, "usd")) {
            if (!json_is_number(v) || json_number_value(v) < 0 ||
                json_number_value(v) > S2_USD_MAX) {
                *msg = xasprintf("argument 'usage.usd' must be a number of US dollars from 0 "
                                 "to %.0f",
                                 S2_USD_MAX);
                goto bad;
            }
        } else {
            *msg = xasprintf("unknown field 'usage.%s' (usage takes model, tokens_in, "
                             "tokens_out, usd)",
                             k);
            goto bad;
        }
    }
    return 0;
bad:
    *field = xasprintf("usage.%s", k);
    return -1;
}

/* Check args against the tool's table; on failure *field and *msg (caller frees). */
static int check_args(const struct tool *t, json_t *args, int agent_default, char **field,
                      char **msg)
{
    const char *k;
    json_t *v;
    json_object_foreach(args, k, v) {
        const struct arg *a = t->args;
        while (a->name && strcmp(a->name, k))
            a++;
        if (!a->name) {
            struct buf names = BUF_INIT;
            for (a = t->args; a->name; a++)
                buf_addf(&names, "%s%s", a == t->args ? "" : ", ", a->name);
            *field = xstrdup(k);
            *msg = xasprintf("unknown argument '%s' (%s takes: %s)", k, t->name,
                             names.len ? names.ptr : "no arguments");
            buf_release(&names);
            return -1;
        }
    }
    for (const struct arg *a = t->args; a->name; a++) {
        v = json_object_get(args, a->name);
        int required = a->required && !(agent_default && !strcmp(a->name, "agent"));
        if (!v || json_is_null(v)) {
            if (required) {
                *field = xstrdup(a->name);
                *msg = xasprintf("argument '%s' is required: %s", a->name, a->desc);
                return -1;
            }
            continue;
        }
        int ok = 1;
        switch (a->type) {
        case A_STR: {
            size_t n = json_string_length(v);
            ok = json_is_string(v) && n >= (size_t)a->lo && n <= (size_t)a->hi;
            if (json_is_string(v) && !ok) {
                *field = xstrdup(a->name);
                *msg = xasprintf("argument '%s' must be %lld to %lld bytes long (got %zu)",
                                 a->name, a->lo, a->hi, n);
                return -1;
            }
            break;
        }
        case A_INT:
            ok = is_whole(v) && whole(v) >= a->lo && whole(v) <= a->hi;
            if (!ok) {
                *field = xstrdup(a->name);
                *msg = xasprintf("argument '%s' must be an integer from %lld to %lld", a->name,
                                 a->lo, a->hi);
                return -1;
            }
            break;
        case A_BOOL:
            ok = json_is_boolean(v);
            break;
        case A_STRLIST: {
            ok = json_is_array(v);
            if (!ok)
                break;
            size_t n = json_array_size(v), i;
            json_t *e;
            if (n < (size_t)a->lo || n > (size_t)a->hi) {
                *field = xstrdup(a->name);
                *msg = xasprintf("argument '%s' must list %lld to %lld strings (got %zu)",
                                 a->name, a->lo, a->hi, n);
                return -1;
            }
            json_array_foreach(v, i, e) {
                if (!json_is_string(e) || !json_string_length(e) ||
                    json_string_length(e) > S2_CAP_MAX) {
                    *field = xasprintf("%s[%zu]", a->name, i);
                    *msg = xasprintf("argument '%s[%zu]' must be a capability name (1 to %d "
                                     "characters)",
                                     a->name, i, S2_CAP_MAX);
                    return -1;
                }
            }
            break;
        }
        case A_USAGE:
            ok = json_is_object(v);
            if (ok && check_usage(v, field, msg))
                return -1;
            break;
        case A_ANY:
            break;
        }
        if (!ok) {
            *field = xstrdup(a->name);
            *msg = xasprintf("argument '%s' must be %s", a->name, type_name(a->type));
            return -1;
        }
    }
    return 0;
}

static json_t *arg_schema(const struct arg *a, const char *agent_default)
{
    json_t *s = json_object();
    char *desc = NULL;
    if (agent_default && !strcmp(a->name, "agent"))
        desc = xasprintf("%s Default: \"%s\".", a->desc, agent_default);
    json_object_set_new(s, "description", jstr(desc ? desc : a->desc));
    free(desc);
    switch (a->type) {
    case A_STR:
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "minLength", json_integer(a->lo));
        json_object_set_new(s, "maxLength", json_integer(a->hi));
        break;
    case A_INT:
        json_object_set_new(s, "type", json_string("integer"));
        json_object_set_new(s, "minimum", json_integer(a->lo));
        json_object_set_new(s, "maximum", json_integer(a->hi));
        if (!strcmp(a->name, "wait_seconds"))
            json_object_set_new(s, "default", json_integer(MCP_WAIT_DEFAULT));
        if (!strcmp(a->name, "limit"))
            json_object_set_new(s, "default", json_integer(READY_DEFAULT));
        break;
    case A_BOOL:
        json_object_set_new(s, "type", json_string("boolean"));
        json_object_set_new(s, "default", json_true());
        break;
    case A_STRLIST:
        json_object_set_new(s, "type", json_string("array"));
        json_object_set_new(s, "items", json_pack("{s:s,s:i,s:i}", "type", "string",
                                                  "minLength", 1, "maxLength", S2_CAP_MAX));
        json_object_set_new(s, "minItems", json_integer(a->lo));
        json_object_set_new(s, "maxItems", json_integer(a->hi));
        break;
    case A_USAGE:
        json_object_set_new(s, "type", json_string("object"));
        json_object_set_new(
            s, "properties",
            json_pack("{s:{s:s,s:s},s:{s:s,s:i,s:s},s:{s:s,s:i,s:s},s:{s:s,s:i,s:s}}", "model",
                      "type", "string", "description", "The model that did the work.",
                      "tokens_in", "type", "integer", "minimum", 0, "description",
                      "Input tokens.", "tokens_out", "type", "integer", "minimum", 0,
                      "description", "Output tokens.", "usd", "type", "number", "minimum", 0,
                      "description", "Cost in US dollars, instead of tokens."));
        json_object_set_new(s, "additionalProperties", json_false());
        break;
    case A_ANY:
        break;
    }
    return s;
}

static json_t *tool_json(const struct mcp *m, const struct tool *t, const char *version)
{
    json_t *props = json_object(), *req = json_array();
    for (const struct arg *a = t->args; a->name; a++) {
        json_object_set_new(props, a->name, arg_schema(a, m->agent));
        if (a->required && !(m->agent && !strcmp(a->name, "agent")))
            json_array_append_new(req, json_string(a->name));
    }
    json_t *schema = json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props,
                               "required", req, "additionalProperties", 0);
    json_t *o = json_pack("{s:s,s:s,s:o}", "name", t->name, "description", t->desc,
                          "inputSchema", schema);
    if (strcmp(version, "2025-06-18") >= 0)
        json_object_set_new(o, "title", json_string(t->title));
    if (strcmp(version, "2025-03-26") >= 0)
        json_object_set_new(o, "annotations",
                            json_pack("{s:s,s:b,s:b,s:b,s:b}", "title", t->title,
                                      "readOnlyHint", t->read_only, "destructiveHint",
                                      t->destructive, "idempotentHint", t->idempotent,
                                      "openWorldHint", 0));
    return o;
}

json_t *mcp_tools_json(const struct mcp *m, const char *version)
{
    json_t *a = json_array();
    for (size_t i = 0; i < NTOOLS; i++)
        json_array_append_new(a, tool_json(m, &tools[i], version ? version : MCP_VERSION_LATEST));
    return a;
}

/* ---- leases this session holds ---- */

static struct mcp_lease *lease_find(struct mcp *m, const char *task)
{
    for (size_t i = 0; i < m->nleases; i++)
        if (!strcmp(m->leases[i].task, task))
            return &m->leases[i];
    return NULL;
}

static void lease_put(struct mcp *m, const char *task, const char *token, const char *agent,
                      const char *help_for, int64_t expires)
{
    pthread_mutex_lock(&m->lock);
    struct mcp_lease *l = lease_find(m, task);
    if (!l) {
        m->leases = xgrow(m->leases, sizeof *m->leases, m->nleases + 1, &m->aleases);
        l = &m->leases[m->nleases++];
        l->task = xstrdup(task);
    } else {
        free(l->token);
        free(l->agent);
        free(l->help_for);
    }
    l->token = xstrdup(token);
    l->agent = xstrdup(agent ? agent : "");
    l->help_for = help_for && *help_for ? xstrdup(help_for) : NULL;
    l->expires_at = expires;
    pthread_mutex_unlock(&m->lock);
    if (m->persist_leases && cli_lease_save(m->server, task, token))
        log_warn("could not save the lease of task '%s' for `s2 done`", task);
}

/* The lease token for task (caller frees), or NULL. */
static char *lease_get(struct mcp *m, const char *task)
{
    pthread_mutex_lock(&m->lock);
    struct mcp_lease *l = lease_find(m, task);
    char *t = l ? xstrdup(l->token) : NULL;
    pthread_mutex_unlock(&m->lock);
    if (!t && m->persist_leases)
        t = cli_lease_load(m->server, task);
    return t;
}

static void lease_touch(struct mcp *m, const char *task, int64_t expires)
{
    pthread_mutex_lock(&m->lock);
    struct mcp_lease *l = lease_find(m, task);
    if (l)
        l->expires_at = expires;
    pthread_mutex_unlock(&m->lock);
}

/* Forget the lease of task, but only if it is still `token` (a newer claim keeps its own). */
static void lease_drop(struct mcp *m, const char *task, const char *token)
{
    pthread_mutex_lock(&m->lock);
    struct mcp_lease *l = lease_find(m, task);
    if (l && !strcmp(l->token, token)) {
        free(l->task);
        free(l->token);
        free(l->agent);
        free(l->help_for);
        *l = m->leases[--m->nleases];
    }
    pthread_mutex_unlock(&m->lock);
    if (m->persist_leases) {
        char *disk = cli_lease_load(m->server, task);
        if (disk && !strcmp(disk, token))
            cli_lease_forget(m->server, task);
        free(disk);
    }
}

/* The lease to write on the thread of blocked task `task` with (caller frees): the task's
 * own (its blocked agent), else one of a help task for it (a helper); NULL if none. Help
 * tasks are named TASK.help-N, which is where `s2 post` looks for them on disk too. */
static char *lease_for_thread(struct mcp *m, const char *task)
{
    /* this session's leases before the shared files: several agents on one machine share
     * those, and a helper must not post with the blocked agent's lease */
    char *t = NULL;
    pthread_mutex_lock(&m->lock);
    struct mcp_lease *own = lease_find(m, task);
    if (own)
        t = xstrdup(own->token);
    for (size_t i = 0; i < m->nleases && !t; i++)
        if (m->leases[i].help_for && !strcmp(m->leases[i].help_for, task))
            t = xstrdup(m->leases[i].token);
    pthread_mutex_unlock(&m->lock);
    if (!t && m->persist_leases)
        t = cli_lease_load(m->server, task);
    for (int n = 1; !t && m->persist_leases && n <= 32; n++) {
        char *help = xasprintf("%s.help-%d", task, n);
        t = cli_lease_load(m->server, help);
        free(help);
    }
    return t;
}

/* "t1 (expires in 4m10s), t2 (...)" for the leases of agent (or all), into b. */
static int leases_held(struct mcp *m, const char *agent, struct buf *b)
{
    int n = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nleases; i++) {
        const struct mcp_lease *l = &m->leases[i];
        if (agent && strcmp(l->agent, agent))
            continue;
        char in[48];
        fmt_in(l->expires_at, in, sizeof in);
        buf_addf(b, "%s%s (lease expires %s)", n++ ? ", " : "", l->task, in);
    }
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* ---- calling the server ---- */

static int server(struct call *c, const char *method, const char *path, json_t *body,
                  long timeout_ms, struct mcp_reply *rep, struct s2_error *err)
{
    struct mcp_request req = {method, path, body, timeout_ms, c->job ? &c->job->cancel : NULL};
    memset(rep, 0, sizeof *rep);
    mcp_call_fn fn = c->m->call ? c->m->call : mcp_http_call;
    void *ctx = c->m->call ? c->m->call_ctx : c->m;
    int rc = fn(ctx, &req, rep, err);
    if (!rc && !err->kind)
        return 0;
    if (!err->msg)
        s2_fail(err, S2_EINTERNAL, NULL, "the s2 server failed without saying why");
    json_decref(rep->body);
    rep->body = NULL;
    return rc ? rc : err->kind;
}

static int is_code(const struct s2_error *err, const char *code)
{
    return err->code && !strcmp(err->code, code);
}

/* A tool result reporting err; what names the action ("claim for agent 'a1'"). */
static void fail_with(struct call *c, const char *what, const struct s2_error *err)
{
    c->is_error = 1;
    buf_reset(&c->text);
    buf_addf(&c->text, "error: %s failed: %s", what, err->msg ? err->msg : "unknown error");
    if (err->kind == S2_EUNAUTH)
        buf_adds(&c->text, "\nhint: s2 refused the credentials: the MCP server needs S2_TOKEN in "
                           "its environment (an admin or swarm token; `s2 mcp config` shows "
                           "how to pass it)");
    else if (err->kind == S2_EFORBIDDEN)
        buf_adds(&c->text, "\nhint: the token in S2_TOKEN is scoped to another swarm");
    else if (is_code(err, "stale_lease") || is_code(err, "lease_expired"))
        buf_adds(&c->text, "\nhint: your lease is no longer current (it expired, or the task "
                           "was given to another agent): stop working on this task; its later "
                           "reports will be refused. Call s2_claim for new work.");
    else if (is_code(err, "agent_busy")) {
        struct buf held = BUF_INIT;
        if (leases_held(c->m, c->agent, &held))
            buf_addf(&c->text, "\nhint: you hold %s: finish it with s2_done or give it up "
                               "with s2_fail first",
                     held.ptr);
        else
            buf_adds(&c->text, "\nhint: finish (s2_done) or fail (s2_fail) the task you hold "
                               "first; s2_status shows which one it is");
        buf_release(&held);
    } else if (is_code(err, "unknown_agent"))
        buf_adds(&c->text, "\nhint: agents are registered by an operator with `s2 agent add "
                           "ID --swarm S --capabilities ...`");
    json_decref(c->data);
    c->data = json_pack("{s:{s:s,s:o}}", "error", "code",
                        err->code ? err->code : s2_err_code(err->kind), "message",
                        jstr(err->msg ? err->msg : ""));
}

/* The endpoint behind a tool is missing from this server (an older s2). */
static void not_supported(struct call *c, const char *what, const char *endpoint,
                          const struct s2_error *err)
{
    c->is_error = 1;
    buf_reset(&c->text);
    buf_addf(&c->text,
             "error: %s is not supported by this s2 server (it has no %s endpoint: %s). "
             "Upgrade `s2 serve`; meanwhile report the problem with s2_fail (reason) or keep "
             "working.",
             what, endpoint, err->msg ? err->msg : "no such endpoint");
    json_decref(c->data);
    c->data = json_pack("{s:{s:s,s:o}}", "error", "code", "not_supported", "message",
                        jstr(err->msg ? err->msg : ""));
}

static int missing_endpoint(const struct s2_error *err)
{
    return is_code(err, "no_such_route") || err->kind == S2_EMETHOD;
}

/* ---- rendering ---- */

static void render_task(struct buf *b, json_t *t, int with_body)
{
    buf_addf(b, "Task %s: %s\n", str(t, "id"), str(t, "title"));
    buf_addf(b, "  swarm %s, phase %lld, priority %lld, state %s", str(t, "swarm"),
             num(t, "phase"), num(t, "priority"), str(t, "state"));
    if (json_object_get(t, "attempts"))
        buf_addf(b, " (attempt %lld of %lld)", num(t, "attempts"), num(t, "max_attempts"));
    buf_addch(b, '\n');
    json_t *req = json_object_get(t, "requires");
    if (json_array_size(req) || num(t, "min_tier")) {
        buf_adds(b, "  requires: ");
        add_list(b, req);
        if (!json_array_size(req))
            buf_adds(b, "(no capability)");
        if (num(t, "min_tier"))
            buf_addf(b, "; model tier %lld or higher", num(t, "min_tier"));
        buf_addch(b, '\n');
    }
    json_t *paths = json_object_get(t, "paths");
    if (json_array_size(paths)) {
        buf_adds(b, "  paths (yours alone while you hold the lease): ");
        add_list(b, paths);
        buf_addch(b, '\n');
    }
    json_t *deps = json_object_get(t, "depends_on");
    if (json_array_size(deps)) {
        buf_adds(b, "  depends on: ");
        add_list(b, deps);
        buf_addch(b, '\n');
    }
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(t, "waiting_on"), i, w)
        buf_addf(b, "  still waiting on: %s (swarm %s, %s)\n", str(w, "task"), str(w, "swarm"),
                 str(w, "state"));
    if (*str(t, "approval") && strcmp(str(t, "approval"), "none"))
        buf_addf(b, "  approval: %s (%lld given)\n", str(t, "approval"), num(t, "approvals"));
    if (*str(t, "owner")) {
        buf_addf(b, "  owner: %s", str(t, "owner"));
        json_t *exp = json_object_get(t, "lease_expires_at");
        if (json_is_integer(exp)) {
            char in[48];
            fmt_in(json_integer_value(exp), in, sizeof in);
            buf_addf(b, ", lease expires %s", in);
        }
        buf_addch(b, '\n');
    }
    double cost = json_number_value(json_object_get(t, "cost"));
    if (cost > 0 || num(t, "tokens_in") || num(t, "tokens_out"))
        buf_addf(b, "  cost so far: $%.*f (%lld tokens in, %lld out)\n", cost < 0.01 ? 6 : 2,
                 cost, num(t, "tokens_in"), num(t, "tokens_out"));
    if (*str(t, "reason"))
        buf_addf(b, "  last failure: %s\n", str(t, "reason"));
    json_t *res = json_object_get(t, "result");
    if (res && !json_is_null(res)) {
        char *s = json_is_string(res) ? xstrdup(json_string_value(res))
                                      : json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
        buf_addf(b, "  result: %s\n", s ? s : "");
        free(s);
    }
    if (with_body && *str(t, "body"))
        buf_addf(b, "\nInstructions:\n%s\n", str(t, "body"));
}

static void render_status(struct buf *b, json_t *s)
{
    json_t *p = json_object_get(s, "progress");
    buf_addf(b, "Swarm %s: %s (%s)\n", str(s, "id"), str(s, "status"), str(s, "reason"));
    if (*str(s, "role"))
        buf_addf(b, "  role: %s\n", str(s, "role"));
    buf_addf(b, "  relation %s, state %s, budget $%.2f\n", str(s, "relation"), str(s, "state"),
             json_number_value(json_object_get(s, "budget")));
    json_t *caps = json_object_get(s, "capabilities");
    if (json_array_size(caps)) {
        buf_adds(b, "  capabilities: ");
        add_list(b, caps);
        buf_addch(b, '\n');
    }
    buf_addf(b, "  progress: %lld done, %lld in progress, %lld remaining (%lld%%)\n",
             num(p, "done"), num(p, "in_progress"), num(p, "remaining"), num(p, "percent"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "phases"), i, v)
        buf_addf(b, "  phase %lld: %lld of %lld done (%lld%%)\n", num(v, "phase"),
                 num(v, "done"), num(v, "tasks"), num(v, "percent"));
    json_array_foreach(json_object_get(s, "working"), i, v) {
        char in[48];
        fmt_in(num(v, "expires_at"), in, sizeof in);
        buf_addf(b, "  working: %s on %s (lease expires %s)\n", str(v, "agent"), str(v, "task"),
                 in);
    }
    json_array_foreach(json_object_get(s, "blocked_on"), i, v)
        buf_addf(b, "  blocked on: %s of swarm %s (%s)\n", str(v, "task"), str(v, "swarm"),
                 str(v, "state"));
    json_array_foreach(json_object_get(s, "agent_list"), i, v)
        buf_addf(b, "  agent %s: model %s, %lld of %lld leases, %s\n", str(v, "id"),
                 str(v, "model"), num(v, "leases_held"), num(v, "max_leases"),
                 str(v, "health"));
}

static void render_overview(struct buf *b, json_t *o)
{
    json_t *swarms = json_object_get(o, "swarms");
    if (!json_array_size(swarms)) {
        buf_adds(b, "No swarms yet.\n");
        return;
    }
    buf_addf(b, "%zu swarm%s:\n", json_array_size(swarms), json_array_size(swarms) == 1 ? "" : "s");
    size_t i;
    json_t *s;
    json_array_foreach(swarms, i, s) {
        json_t *t = json_object_get(s, "tasks");
        buf_addf(b, "  %s (%s, %s): %lld ready, %lld claimed, %lld pending, %lld done, %lld "
                    "dead\n",
                 str(s, "id"), str(s, "relation"), str(s, "status"), num(t, "ready"),
                 num(t, "claimed"), num(t, "pending"), num(t, "done"), num(t, "dead"));
    }
}

/* ---- the tools ---- */

static const char *arg_str(struct call *c, const char *name)
{
    return json_string_value(json_object_get(c->args, name));
}

/* The swarm a tool is about: its argument, else the agent's (looked up once), else NULL.
 * Returns -1 (with the result set) when the lookup failed. */
static int swarm_of(struct call *c, char **out)
{
    const char *s = arg_str(c, "swarm");
    *out = NULL;
    if (s) {
        *out = xstrdup(s);
        return 0;
    }
    if (!c->m->agent)
        return 0;
    pthread_mutex_lock(&c->m->lock);
    if (c->m->agent_swarm)
        *out = xstrdup(c->m->agent_swarm);
    pthread_mutex_unlock(&c->m->lock);
    if (*out)
        return 0;
    struct s2_error err = S2_ERROR_INIT;
    struct mcp_reply rep;
    char *e = escape(c->m->agent);
    char *path = xasprintf("/v1/agents/%s", e);
    int rc = server(c, "GET", path, NULL, CALL_TIMEOUT_MS, &rep, &err);
    if (rc) {
        char *what = xasprintf("looking up the swarm of agent '%s'", c->m->agent);
        fail_with(c, what, &err);
        free(what);
    } else {
        const char *sw = str(json_object_get(rep.body, "agent"), "swarm");
        *out = xstrdup(sw);
        pthread_mutex_lock(&c->m->lock);
        if (!c->m->agent_swarm && *sw)
            c->m->agent_swarm = xstrdup(sw);
        pthread_mutex_unlock(&c->m->lock);
    }
    json_decref(rep.body);
    free(e);
    free(path);
    s2_error_release(&err);
    return rc ? -1 : 0;
}

/* Take over a claim whose request was cancelled, if one waits for agent. */
static json_t *take_held(struct mcp *m, const char *agent)
{
    json_t *r = NULL;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nheld && !r; i++) {
        if (strcmp(m->held[i].agent, agent))
            continue;
        r = m->held[i].reply;
        free(m->held[i].agent);
        m->held[i] = m->held[--m->nheld];
    }
    pthread_mutex_unlock(&m->lock);
    return r;
}

static void hold(struct mcp *m, const char *agent, json_t *reply)
{
    pthread_mutex_lock(&m->lock);
    m->held = xgrow(m->held, sizeof *m->held, m->nheld + 1, &m->aheld);
    m->held[m->nheld].agent = xstrdup(agent);
    m->held[m->nheld++].reply = json_incref(reply);
    pthread_mutex_unlock(&m->lock);
}

/* The blocked task a help task serves (caller frees), or NULL: the task's help_for, or for a
 * server that does not say, what the governor's naming tells (help tasks are TASK.help-N,
 * titled "help on TASK: reason"). */
static char *help_for_of(json_t *t)
{
    if (*str(t, "help_for"))
        return xstrdup(str(t, "help_for"));
    if (*str(t, "kind") && strcmp(str(t, "kind"), "help"))
        return NULL;
    const char *id = str(t, "id"), *title = str(t, "title");
    const char *dot = strstr(id, ".help-");
    if (dot && dot > id && dot[6]) {
        const char *p = dot + 6;
        while (*p >= '0' && *p <= '9')
            p++;
        if (!*p)
            return xstrndup(id, (size_t)(dot - id));
    }
    if (!strncmp(title, "help on ", 8)) {
        const char *colon = strstr(title + 8, ": ");
        if (colon && colon > title + 8)
            return xstrndup(title + 8, (size_t)(colon - title - 8));
    }
    return NULL;
}

static void claimed(struct call *c, json_t *reply, int earlier)
{
    json_t *t = json_object_get(reply, "task"), *l = json_object_get(reply, "lease");
    const char *id = str(t, "id");
    long long exp = num(l, "expires_at");
    char *help_for = help_for_of(t);
    lease_put(c->m, id, str(l, "token"), c->agent, help_for, exp);
    char in[48], len[48];
    fmt_in(exp, in, sizeof in);
    cli_fmt_in(num(t, "lease_ms"), len, sizeof len);
    buf_addf(&c->text, "You claimed task %s%s. Your lease expires %s: call s2_heartbeat "
                       "(task \"%s\") before then if you need longer (each heartbeat extends "
                       "it by %s).\n\n",
             id, earlier ? " (claimed for you by a request that was cancelled)" : "", in, id,
             len + 3 /* skip "in " */);
    render_task(&c->text, t, 1);
    if (help_for)
        buf_addf(&c->text,
                 "\nThis is a help task: task %s of another agent is blocked. Read its thread "
                 "with s2_thread (task \"%s\") and post what you find with s2_post (task \"%s\", "
                 "text): this lease lets you post there. When your part is done: s2_done (task "
                 "\"%s\", result, usage).\n",
                 help_for, help_for, help_for, id);
    else
        buf_addf(&c->text,
                 "\nWhen it is finished: s2_done (task \"%s\", result, usage). If you cannot "
                 "finish it: s2_fail (task \"%s\", reason). If you are stuck on something only "
                 "another swarm can do: s2_block (task \"%s\", needs, reason).\n",
                 id, id, id);
    free(help_for);
    c->data = json_incref(reply);
}

static void run_claim(struct call *c)
{
    json_t *w = json_object_get(c->args, "wait_seconds");
    long long wait = w && !json_is_null(w) ? whole(w) : MCP_WAIT_DEFAULT;
    json_t *held = take_held(c->m, c->agent);
    if (held) {
        /* still ours only if its lease has not run out meanwhile */
        if (num(json_object_get(held, "lease"), "expires_at") > clock_wall_ms() + 1000) {
            claimed(c, held, 1);
            json_decref(held);
            return;
        }
        json_decref(held);
    }
    json_t *body = json_pack("{s:s,s:I}", "agent", c->agent, "wait_ms", (json_int_t)wait * 1000);
    struct s2_error err = S2_ERROR_INIT;
    struct mcp_reply rep;
    int rc = server(c, "POST", "/v1/claim", body, (long)wait * 1000 + CALL_TIMEOUT_MS, &rep, &err);
    json_decref(body);
    if (rc) {
        char *what = xasprintf("claim for agent '%s'", c->agent);
        fail_with(c, what, &err);
        free(what);
    } else if (rep.status == 204 || !json_is_object(json_object_get(rep.body, "task"))) {
        const char *why = rep.reason[0] ? rep.reason : "no ready task for this agent";
        buf_addf(&c->text,
                 "No task for agent %s after waiting %llds: %s. Nothing is lost by waiting: "
                 "call s2_claim again to keep waiting (work is pushed the moment it is "
                 "ready), or look at s2_status to see what the swarm waits for.\n",
                 c->agent, wait, why);
        c->data = json_pack("{s:n,s:o,s:I}", "task", "reason", jstr(why), "waited_seconds",
                            (json_int_t)wait);
    } else if (c->job && atomic_load(&c->job->cancel)) {
        /* the client gave up on this request, but the task is ours now: keep it for the
         * next s2_claim of this agent rather than strand it until its lease expires */
        char *hf = help_for_of(json_object_get(rep.body, "task"));
        lease_put(c->m, str(json_object_get(rep.body, "task"), "id"),
                  str(json_object_get(rep.body, "lease"), "token"), c->agent, hf,
                  num(json_object_get(rep.body, "lease"), "expires_at"));
        free(hf);
        hold(c->m, c->agent, rep.body);
        log_info("claim for '%s' was cancelled after it got task '%s': kept for the next "
                 "s2_claim",
                 c->agent, str(json_object_get(rep.body, "task"), "id"));
    } else {
        claimed(c, rep.body, 0);
    }
    json_decref(rep.body);
    s2_error_release(&err);
}

enum lease_verb { V_HEARTBEAT, V_DONE, V_FAIL, V_BLOCK, V_UNBLOCK };

static void run_lease_op(struct call *c, enum lease_verb verb)
{
    static const char *const verbs[] = {"heartbeat", "done", "fail", "block", "unblock"};
    const char *task = arg_str(c, "task");
    char *lease = arg_str(c, "lease") ? xstrdup(arg_str(c, "lease")) : lease_get(c->m, task);
    char *e = NULL, *path = NULL, *what = NULL;
    json_t *body = NULL;
    struct s2_error err = S2_ERROR_INIT;
    struct mcp_reply rep = {0};
    if (!lease) {
        c->is_error = 1;
        buf_addf(&c->text,
                 "error: no lease for task '%s' in this session: s2_%s needs the task to be "
                 "claimed through this MCP server (s2_claim) or with `s2 claim` on this "
                 "machine; pass the lease argument if it was claimed elsewhere",
                 task, verbs[verb]);
        c->data = json_pack("{s:{s:s,s:s}}", "error", "code", "no_lease", "message",
                            "no lease for this task in this session");
        goto out;
    }
    body = json_pack("{s:s}", "lease", lease);
    json_t *v;
    if ((v = json_object_get(c->args, "usage")) && !json_is_null(v))
        json_object_set(body, "usage", v);
    if (verb == V_DONE && (v = json_object_get(c->args, "result")) && !json_is_null(v))
        json_object_set(body, "result", v);
    if (verb == V_FAIL || verb == V_BLOCK)
        json_object_set(body, "reason", json_object_get(c->args, "reason"));
    if (verb == V_FAIL && (v = json_object_get(c->args, "retry")) && json_is_boolean(v))
        json_object_set(body, "retry", v);
    if (verb == V_BLOCK)
        json_object_set(body, "needs", json_object_get(c->args, "needs"));
    e = escape(task);
    path = xasprintf("/v1/tasks/%s/%s", e, verbs[verb]);
    what = xasprintf("s2_%s on task '%s'", verbs[verb], task);
    if (server(c, "POST", path, body, CALL_TIMEOUT_MS, &rep, &err)) {
        if ((verb == V_BLOCK || verb == V_UNBLOCK) && missing_endpoint(&err)) {
            char *ep = xasprintf("POST /v1/tasks/%s/%s", task, verbs[verb]);
            not_supported(c, verb == V_BLOCK ? "reporting a blocker" : "closing a blocker", ep,
                          &err);
            free(ep);
        } else {
            fail_with(c, what, &err);
            /* a lease the server says is dead is of no more use to anyone here */
            if (is_code(&err, "stale_lease") || is_code(&err, "lease_expired"))
                lease_drop(c->m, task, lease);
        }
        goto out;
    }
    json_t *t = json_object_get(rep.body, "task");
    char in[48];
    switch (verb) {
    case V_HEARTBEAT: {
        long long exp = num(json_object_get(rep.body, "lease"), "expires_at");
        lease_touch(c->m, task, exp);
        fmt_in(exp, in, sizeof in);
        buf_addf(&c->text, "Lease on %s extended: it now expires %s.\n", task, in);
        break;
    }
    case V_DONE:
        lease_drop(c->m, task, lease);
        buf_addf(&c->text, "Task %s is done. Call s2_claim for your next task.\n", task);
        break;
    case V_FAIL: {
        lease_drop(c->m, task, lease);
        json_t *ra = json_object_get(t, "retry_at");
        if (json_is_integer(ra)) {
            fmt_in(json_integer_value(ra), in, sizeof in);
            buf_addf(&c->text, "Task %s failed (attempt %lld); it will be retried %s. Call "
                               "s2_claim for your next task.\n",
                     task, num(t, "attempts"), in);
        } else {
            buf_addf(&c->text, "Task %s failed and is now %s (attempts: %lld): it will not be "
                               "retried. Call s2_claim for your next task.\n",
                     task, str(t, "state"), num(t, "attempts"));
        }
        break;
    }
    case V_BLOCK:
        if (json_is_true(json_object_get(rep.body, "escalated")))
            buf_addf(&c->text, "Task %s is blocked. No agent of another swarm matches its "
                               "needs, so a human was called.",
                     task);
        else
            buf_addf(&c->text, "Task %s is blocked; %lld helper%s from other swarms at work "
                               "now, more join as they ask for work.",
                     task, num(rep.body, "helpers"), num(rep.body, "helpers") == 1 ? "" : "s");
        buf_addf(&c->text, " Your lease stays yours: keep it alive with s2_heartbeat. Follow "
                           "the thread with s2_thread (task \"%s\"), judge each contribution "
                           "with s2_review, and call s2_unblock once you can go on.\n",
                 task);
        break;
    case V_UNBLOCK:
        buf_addf(&c->text, "The blocker of %s is closed (help still under way was "
                           "cancelled). Go on with the task.\n",
                 task);
        break;
    }
    c->data = rep.body;
    rep.body = NULL;
out:
    json_decref(rep.body);
    json_decref(body);
    s2_error_release(&err);
    free(lease);
    free(e);
    free(path);
    free(what);
}

static void run_heartbeat(struct call *c)
{
    run_lease_op(c, V_HEARTBEAT);
}
static void run_done(struct call *c)
{
    run_lease_op(c, V_DONE);
}
static void run_fail(struct call *c)
{
    run_lease_op(c, V_FAIL);
}
static void run_block(struct call *c)
{
    run_lease_op(c, V_BLOCK);
}
static void run_unblock(struct call *c)
{
    run_lease_op(c, V_UNBLOCK);
}

static void run_status(struct call *c)
{
    char *swarm = NULL, *path = NULL;
    if (swarm_of(c, &swarm))
        return;
    if (swarm) {
        char *e = escape(swarm);
        path = xasprintf("/v1/swarms/%s/status", e);
        free(e);
    } else {
        path = xstrdup("/v1/status");
    }
    struct s2_error err = S2_ERROR_INIT;
    struct mcp_reply rep;
    if (server(c, "GET", path, NULL, CALL_TIMEOUT_MS, &rep, &err)) {
        char *what = swarm ? xasprintf("status of swarm '%s'", swarm) : xstrdup("status");
        fail_with(c, what, &err);
        free(what);
    } else {
        if (swarm)
            render_status(&c->text, rep.body);
        else
            render_overview(&c->text, rep.body);
        c->data = rep.body;
        rep.body = NULL;
    }
    json_decref(rep.body);
    s2_error_release(&err);
    free(swarm);
    free(path);
}

static void run_ready(struct call *c)
{
    char *swarm = NULL;
    if (swarm_of(c, &swarm))
        return;
    json_t *lv = json_object_get(c->args, "limit");
    long long limit = lv && !json_is_null(lv) ? whole(lv) : READY_DEFAULT;
    struct buf path = BUF_INIT;
    buf_addf(&path, "/v1/tasks?state=ready&limit=%lld", limit);
    if (swarm) {
        char *e = escape(swarm);
        buf_addf(&path, "&swarm=%s", e);
        free(e);
    }
    struct s2_error err = S2_ERROR_INIT;
    struct mcp_reply rep;
    if (server(c, "GET", path.ptr, NULL, CALL_TIMEOUT_MS, &rep, &err)) {
        char *what = swarm ? xasprintf("listing ready tasks of swarm '%s'", swarm)
                           : xstrdup("listing ready tasks");
        fail_with(c, what, &err);
        free(what);
        goto out;
    }
    json_t *list = json_object_get(rep.body, "tasks");
    size_t n = json_array_size(list), i;
    json_t *t;
    if (!n) {
        buf_addf(&c->text, "No ready tasks%s%s. s2_claim with wait_seconds waits for the next "
                           "one; s2_status shows what the swarm waits for.\n",
                 swarm ? " in swarm " : "", swarm ? swarm : "");
    } else {
        buf_addf(&c->text, "%zu ready task%s%s%s%s:\n", n, n == 1 ? "" : "s",
                 swarm ? " in swarm " : "", swarm ? swarm : "",
                 json_is_string(json_object_get(rep.body, "next")) ? " (more exist)" : "");
        json_array_foreach(list, i, t) {
            buf_addf(&c->text, "  %s: %s (", str(t, "id"), str(t, "title"));
            if (!swarm)
                buf_addf(&c->text, "swarm %s, ", str(t, "swarm"));
            buf_addf(&c->text, "phase %lld, priority %lld", num(t, "phase"), num(t, "priority"));
            if (json_array_size(json_object_get(t, "requires"))) {
                buf_adds(&c->text, ", requires ");
                add_list(&c->text, json_object_get(t, "requires"));
            }
            if (num(t, "min_tier"))
                buf_addf(&c->text, ", tier >= %lld", num(t, "min_tier"));
            buf_adds(&c->text, ")\n");
        }
        buf_adds(&c->text, "To take work call s2_claim: it gives you the best of the tasks you "
                           "are eligible for (you cannot pick one by id).\n");
    }
    c->data = rep.body;
    rep.body = NULL;
out:
    json_decref(rep.body);
    s2_error_release(&err);
    buf_release(&path);
    free(swarm);
}

static void run_task(struct call *c)
{
    const char *task = arg_str(c, "task");
    char *e = escape(task), *path = xasprintf("/v1/tasks/%s", e);
    struct s2_error err = S2_ERROR_INIT;
    struct mcp_reply rep;
    if (server(c, "GET", path, NULL, CALL_TIMEOUT_MS, &rep, &err)) {
        char *what = xasprintf("showing task '%s'", task);
        fail_with(c, what, &err);
        free(what);
    } else {
        json_t *t = json_object_get(rep.body, "task");
        render_task(&c->text, t, 1);
        char *mine = lease_get(c->m, task);
        if (mine && !strcmp(str(t, "state"), "claimed"))
            buf_adds(&c->text, "\nThis session holds a lease on it: s2_heartbeat, s2_done, "
                               "s2_fail and s2_block need only the task id.\n");
        free(mine);
        c->data = rep.body;
        rep.body = NULL;
    }
    json_decref(rep.body);
    s2_error_release(&err);
    free(e);
    free(path);
}

/* A thread's posts, one block each: number, age, author (and the help task it came
 * through), verdict, text. */
static void render_thread(struct buf *b, const char *task, json_t *body)
{
    json_t *posts = json_object_get(body, "posts");
    size_t n = json_array_size(posts), i;
    json_t *p;
    if (!n) {
        buf_addf(b, "No posts on the thread of %s yet.\n", task);
        return;
    }
    buf_addf(b, "Thread of %s (%zu post%s):\n", task, n, n == 1 ? "" : "s");
    json_array_foreach(posts, i, p) {
        char when[48];
        fmt_in(num(p, "created_at"), when, sizeof when);
        buf_addf(b, "\n#%lld %s by %s", num(p, "id"), when, *str(p, "agent") ? str(p, "agent") : "?");
        if (*str(p, "help_task"))
            buf_addf(b, " (helper, via %s)", str(p, "help_task"));
        buf_addf(b, " [%s]\n%s\n", *str(p, "verdict") ? str(p, "verdict") : "pending",
                 str(p, "body"));
    }
}

static void run_thread(struct call *c)
{
    const char *task = arg_str(c, "task");
    char *e = escape(task), *path = xasprintf("/v1/tasks/%s/thread", e);
    struct s2_error err = S2_ERROR_INIT;
    struct mcp_reply rep;
    if (server(c, "GET", path, NULL, CALL_TIMEOUT_MS, &rep, &err)) {
        if (missing_endpoint(&err)) {
            char *ep = xasprintf("GET /v1/tasks/%s/thread", task);
            not_supported(c, "reading a task's thread", ep, &err);
            free(ep);
        } else {
            char *what = xasprintf("reading the thread of task '%s'", task);
            fail_with(c, what, &err);
            free(what);
        }
    } else {
        render_thread(&c->text, task, rep.body);
        char *mine = lease_get(c->m, task);
        if (mine && json_array_size(json_object_get(rep.body, "posts")))
            buf_addf(&c->text, "\nYou are the blocked agent: judge each pending contribution "
                               "with s2_review (task \"%s\", post, accept).\n",
                     task);
        free(mine);
        c->data = json_is_object(rep.body) ? json_incref(rep.body) : json_object();
    }
    json_decref(rep.body);
    s2_error_release(&err);
    free(e);
    free(path);
}

/* A write on a thread (post, accept, reject) with lease, reporting what as the action. */
static int thread_write(struct call *c, const char *path, json_t *body, const char *what,
                        struct mcp_reply *rep)
{
    struct s2_error err = S2_ERROR_INIT;
    int rc = server(c, "POST", path, body, CALL_TIMEOUT_MS, rep, &err);
    if (rc && missing_endpoint(&err)) {
        char *ep = xasprintf("POST %s", path);
        not_supported(c, what, ep, &err);
        free(ep);
    } else if (rc) {
        fail_with(c, what, &err);
        if (is_code(&err, "not_blocked"))
            buf_adds(&c->text, "\nhint: a thread is open only while its task is blocked (the "
                               "blocked agent closed it, or finished the task)");
    }
    s2_error_release(&err);
    return rc;
}

static void run_post(struct call *c)
{
    const char *task = arg_str(c, "task");
    char *lease = arg_str(c, "lease") ? xstrdup(arg_str(c, "lease")) : lease_for_thread(c->m, task);
    if (!lease) {
        c->is_error = 1;
        buf_addf(&c->text,
                 "error: no lease to post on the thread of '%s' with: only its blocked agent "
                 "(holding the task) or a helper (holding a help task for it, claimed with "
                 "s2_claim) may post there",
                 task);
        c->data = json_pack("{s:{s:s,s:s}}", "error", "code", "no_lease", "message",
                            "no lease for this thread in this session");
        return;
    }
    char *e = escape(task), *path = xasprintf("/v1/tasks/%s/thread", e);
    char *what = xasprintf("posting on the thread of '%s'", task);
    json_t *body = json_pack("{s:s,s:O}", "lease", lease, "body", json_object_get(c->args, "text"));
    struct mcp_reply rep = {0};
    if (!thread_write(c, path, body, what, &rep)) {
        buf_addf(&c->text, "Posted #%lld on the thread of %s.\n", num(rep.body, "post"), task);
        c->data = json_is_object(rep.body) ? json_incref(rep.body) : json_object();
    }
    json_decref(rep.body);
    json_decref(body);
    free(lease);
    free(e);
    free(path);
    free(what);
}

static void run_review(struct call *c)
{
    const char *task = arg_str(c, "task");
    long long post = whole(json_object_get(c->args, "post"));
    int accept = json_is_true(json_object_get(c->args, "accept"));
    char *lease = arg_str(c, "lease") ? xstrdup(arg_str(c, "lease")) : lease_get(c->m, task);
    if (!lease) {
        c->is_error = 1;
        buf_addf(&c->text, "error: no lease for task '%s' in this session: only the blocked "
                           "agent, holding the task, judges the posts on its thread",
                 task);
        c->data = json_pack("{s:{s:s,s:s}}", "error", "code", "no_lease", "message",
                            "no lease for this task in this session");
        return;
    }
    char *e = escape(task);
    char *path = xasprintf("/v1/tasks/%s/thread/%lld/%s", e, post, accept ? "accept" : "reject");
    char *what = xasprintf("%s post #%lld on the thread of '%s'", accept ? "accepting" : "rejecting",
                           post, task);
    json_t *body = json_pack("{s:s}", "lease", lease);
    struct mcp_reply rep = {0};
    if (!thread_write(c, path, body, what, &rep)) {
        buf_addf(&c->text, "Post #%lld on the thread of %s %s.\n", post, task,
                 accept ? "accepted" : "rejected");
        c->data = json_is_object(rep.body) ? json_incref(rep.body) : json_object();
    }
    json_decref(rep.body);
    json_decref(body);
    free(lease);
    free(e);
    free(path);
    free(what);
}

/* ---- tools/call ---- */


static void rpc_error(struct mcp_outcome *o, int code, const char *field, char *msg)
{
    o->rpc_code = code;
    o->rpc_msg = msg;
    o->rpc_field = field ? xstrdup(field) : NULL;
}

void mcp_outcome_release(struct mcp_outcome *o)
{
    json_decref(o->result);
    free(o->rpc_msg);
    free(o->rpc_field);
    memset(o, 0, sizeof *o);
}

void mcp_tools_call(struct mcp *m, const char *version, json_t *params, struct mcp_job *job,
                    struct mcp_outcome *out)
{
    memset(out, 0, sizeof *out);
    json_t *name = json_object_get(params, "name");
    json_t *args = json_object_get(params, "arguments");
    if (!json_is_string(name)) {
        rpc_error(out, MCP_INVALID_PARAMS, "params.name",
                  xstrdup(name ? "params.name must be a string: the tool to call"
                               : "params.name is required: the tool to call"));
        return;
    }
    const struct tool *t = NULL;
    for (size_t i = 0; i < NTOOLS && !t; i++)
        if (!strcmp(tools[i].name, json_string_value(name)))
            t = &tools[i];
    if (!t) {
        json_t *n = jstr(json_string_value(name));
        struct buf names = BUF_INIT;
        for (size_t i = 0; i < NTOOLS; i++)
            buf_addf(&names, "%s%s", i ? ", " : "", tools[i].name);
        rpc_error(out, MCP_INVALID_PARAMS, "params.name",
                  xasprintf("unknown tool '%.100s' (tools: %s)", json_string_value(n),
                            names.ptr));
        json_decref(n);
        buf_release(&names);
        return;
    }
    if (args && !json_is_null(args) && !json_is_object(args)) {
        rpc_error(out, MCP_INVALID_PARAMS, "params.arguments",
                  xstrdup("params.arguments must be an object of the tool's arguments"));
        return;
    }
    json_t *empty = json_object();
    if (!args || json_is_null(args))
        args = empty;
    char *field = NULL, *msg = NULL;
    struct call c = {.m = m, .job = job, .tool = t, .args = args};
    buf_init(&c.text, 0);
    if (check_args(t, args, m->agent != NULL, &field, &msg)) {
        if (strcmp(version, "2025-11-25") < 0) {
            /* before 2025-11-25 bad tool arguments were a protocol error */
            char *f = xasprintf("params.arguments.%s", field);
            rpc_error(out, MCP_INVALID_PARAMS, f, msg);
            free(f);
            free(field);
            goto done;
        }
        /* since 2025-11-25 the model sees them, so it can correct its call */
        c.is_error = 1;
        buf_addf(&c.text, "error: %s: %s", t->name, msg);
        c.data = json_pack("{s:{s:s,s:o,s:o}}", "error", "code", "invalid_argument", "field",
                           jstr(field), "message", jstr(msg));
        free(field);
        free(msg);
    } else {
        c.agent = arg_str(&c, "agent") ? arg_str(&c, "agent") : m->agent;
        t->run(&c);
    }
    json_t *content = json_array();
    json_array_append_new(content, json_pack("{s:s,s:o}", "type", "text", "text", jstr(c.text.ptr)));
    if (c.data && !c.is_error) {
        /* the same data as JSON, for clients that do not read structuredContent */
        json_t *b = brief(c.data);
        char *s = json_dumps(b, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(b);
        if (s)
            json_array_append_new(content, json_pack("{s:s,s:o}", "type", "text", "text", jstr(s)));
        free(s);
    }
    out->result = json_pack("{s:o,s:b}", "content", content, "isError", c.is_error);
    if (c.data && json_is_object(c.data) && strcmp(version, "2025-06-18") >= 0)
        json_object_set(out->result, "structuredContent", c.data);
done:
    json_decref(c.data);
    json_decref(empty);
    buf_release(&c.text);
}

/* ---- the default transport: libcurl ---- */

int mcp_http_call(void *ctx, const struct mcp_request *req, struct mcp_reply *rep,
                  struct s2_error *err)
{
    struct mcp *m = ctx;
    struct client cl;
    int rc = client_init(&cl, m->server, NULL, err);
    if (!rc) {
        cl.timeout_ms = req->timeout_ms;
        cl.cancel = req->cancel; /* the client polls it while the request waits */
        rc = client_call(&cl, req->method, req->path, req->body, &rep->status, &rep->body, err);
        if (!rc && rep->status == 204) {
            const char *why = client_last_header(&cl, "S2-Reason");
            snprintf(rep->reason, sizeof rep->reason, "%s", why ? why : "");
        }
    }
    client_release(&cl);
    return rc;
}
