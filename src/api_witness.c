/* api_witness.c: the witness log over HTTP: entries, checkpoints, the public key, proofs and
 * the full export. Reads committed rows through the thread's store reader; never writes. */
#include "api.h"
#include "keys.h"
#include "util/buf.h"
#include "util/xalloc.h"
#include "witness_db.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define WITNESS_PAGE_MAX 1000

/* A non-negative integer query argument; 0 with *v untouched when absent. */
static int query_u64(struct request *r, const char *key, uint64_t *v)
{
    const char *s = http_query(r, key);
    if (!s)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') {
        http_reply_fail(r, S2_EINVAL, "invalid_query",
                        "query argument '%s' must be a non-negative integer", key);
        return -1;
    }
    *v = x;
    return 0;
}

static int scoped_swarm(struct request *r, const char **swarm)
{
    const struct principal *who = http_who(r);
    if (who->kind == PRIN_TASK) {
        http_reply_fail(r, S2_EFORBIDDEN, "forbidden", "a lease token cannot read the witness log");
        return -1;
    }
    if (who->kind != PRIN_SWARM)
        return 0; /* admin and approvers read everything */
    if (*swarm && (!who->swarm || strcmp(*swarm, who->swarm))) {
        http_reply_fail(r, S2_EFORBIDDEN, "forbidden",
                        "this token is scoped to swarm '%s' and cannot read swarm '%.128s'",
                        who->swarm ? who->swarm : "?", *swarm);
        return -1;
    }
    *swarm = who->swarm;
    return 0;
}

struct page {
    json_t *list;
    uint64_t last;
    int export_form;
};

static int add_entry(void *ctx, const struct witness_entry *w)
{
    struct page *p = ctx;
    struct buf b = BUF_INIT;
    if (p->export_form) {
        witness_export_entry(&b, w);
    } else {
        witness_entry_json(&b, w, NULL);
    }
    json_t *o = json_loadb(b.ptr, b.len, 0, NULL);
    if (p->export_form)
        json_object_del(o, "type");
    json_array_append_new(p->list, o ? o : json_null());
    buf_release(&b);
    p->last = w->seq;
    return 0;
}

void api_witness_list(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    struct witness_filter f = {0};
    uint64_t limit = 100;
    const char *order = http_query(r, "order");
    const char *format = http_query(r, "format");
    f.task = http_query(r, "task");
    f.swarm = http_query(r, "swarm");
    f.agent = http_query(r, "agent");
    if (query_u64(r, "from", &f.from) || query_u64(r, "limit", &limit) ||
        scoped_swarm(r, &f.swarm))
        return;
    if (limit < 1 || limit > WITNESS_PAGE_MAX) {
        http_reply_fail(r, S2_EINVAL, "invalid_query", "limit must be 1..%d", WITNESS_PAGE_MAX);
        return;
    }
    if (order && strcmp(order, "asc") && strcmp(order, "desc")) {
        http_reply_fail(r, S2_EINVAL, "invalid_query", "order must be asc or desc");
        return;
    }
    if (format && strcmp(format, "export") && strcmp(format, "event")) {
        http_reply_fail(r, S2_EINVAL, "invalid_query", "format must be event or export");
        return;
    }
    f.newest_first = order && !strcmp(order, "desc");
    f.limit = (int)limit;
    struct store_reader *rd = http_reader(r, &err);
    struct page p = {.list = json_array(), .export_form = format && !strcmp(format, "export")};
    if (!rd || store_reader_witness(rd, &f, add_entry, &p, &err) < 0) {
        json_decref(p.list);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    json_t *o = json_pack("{s:o}", "entries", p.list);
    if (json_array_size(p.list) == limit && (!f.newest_first || p.last > 1))
        json_object_set_new(o, "next", json_integer((json_int_t)(f.newest_first ? p.last - 1
                                                                                 : p.last + 1)));
    http_reply_json(r, 200, o);
}

static int add_checkpoint(void *ctx, const struct checkpoint *c)
{
    json_array_append_new(ctx, witness_checkpoint_object(c));
    return 0;
}

static json_t *public_key_json(struct request *r)
{
    char *pub = keys_pub_b64(engine_public_key(http_engine(r)));
    json_t *s = json_string(pub);
    free(pub);
    return s;
}

void api_witness_checkpoints(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    uint64_t from = 0, limit = 100;
    const char *order = http_query(r, "order");
    if (query_u64(r, "from", &from) || query_u64(r, "limit", &limit))
        return;
    if (limit < 1 || limit > WITNESS_PAGE_MAX) {
        http_reply_fail(r, S2_EINVAL, "invalid_query", "limit must be 1..%d", WITNESS_PAGE_MAX);
        return;
    }
    int newest = order && !strcmp(order, "desc");
    if (order && !newest && strcmp(order, "asc")) {
        http_reply_fail(r, S2_EINVAL, "invalid_query", "order must be asc or desc");
        return;
    }
    struct store_reader *rd = http_reader(r, &err);
    json_t *list = json_array();
    if (!rd || store_reader_checkpoints(rd, from, (int)limit, newest, add_checkpoint, list, &err) <
                   0) {
        json_decref(list);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    http_reply_json(r, 200,
                    json_pack("{s:o,s:o}", "checkpoints", list, "public_key", public_key_json(r)));
}

void api_witness_key(struct request *r)
{
    http_reply_json(r, 200, json_pack("{s:o,s:s}", "public_key", public_key_json(r), "algorithm",
                                      "ed25519"));
}

void api_witness_inclusion(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    uint64_t seq = 0, size = 0;
    if (query_u64(r, "seq", &seq) || query_u64(r, "size", &size))
        return;
    if (!seq) {
        http_reply_fail(r, S2_EINVAL, "invalid_query", "query argument 'seq' is required (>= 1)");
        return;
    }
    struct store_reader *rd = http_reader(r, &err);
    json_t *b = rd ? witness_db_inclusion(rd, seq, size, &err) : NULL;
    if (b) {
        /* a swarm token proves only its own swarm's entries */
        const char *swarm = json_string_value(json_object_get(json_object_get(b, "entry"), "swarm"));
        const struct principal *who = http_who(r);
        if ((who->kind == PRIN_SWARM || who->kind == PRIN_TASK) &&
            (!swarm || !who->swarm || strcmp(swarm, who->swarm))) {
            json_decref(b);
            http_reply_fail(r, S2_EFORBIDDEN, "forbidden",
                            "entry %" PRIu64 " is not of this token's swarm", seq);
            return;
        }
        http_reply_json(r, 200, b);
        return;
    }
    http_reply_error(r, &err);
    s2_error_release(&err);
}

void api_witness_consistency(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    uint64_t old_size = 0, new_size = 0;
    if (query_u64(r, "old", &old_size) || query_u64(r, "new", &new_size))
        return;
    if (!old_size || !new_size) {
        http_reply_fail(r, S2_EINVAL, "invalid_query",
                        "query arguments 'old' and 'new' (tree sizes, >= 1) are required");
        return;
    }
    struct store_reader *rd = http_reader(r, &err);
    json_t *b = rd ? witness_db_consistency(rd, old_size, new_size, &err) : NULL;
    if (b) {
        http_reply_json(r, 200, b);
        return;
    }
    http_reply_error(r, &err);
    s2_error_release(&err);
}

void api_witness_export(struct request *r)
{
    struct s2_error err = S2_ERROR_INIT;
    struct store_reader *rd = http_reader(r, &err);
    FILE *f = rd ? tmpfile() : NULL;
    if (rd && !f)
        s2_fail(&err, S2_EINTERNAL, "io", "cannot create a temporary file for the export");
    if (!f || witness_db_export(rd, f, &err)) {
        if (f)
            fclose(f);
        http_reply_error(r, &err);
        s2_error_release(&err);
        return;
    }
    http_reply_file(r, 200, "application/x-ndjson", f);
}
