/* witness.c: entries, chain, checkpoints, export lines and the verifier. The canonical form
 * and the export lines are specified in docs/WITNESS.md; change neither without a new
 * format version, or every log written before stops verifying. */
#include "witness.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_MAGIC "s2-witness-entry-v1\n"
#define CHECKPOINT_MAGIC "s2-witness-checkpoint-v1\n"
#define EXPORT_FORMAT "s2-witness-export-v1"

void witness_entry_release(struct witness_entry *w)
{
    free(w->actor);
    free(w->swarm);
    free(w->agent);
    free(w->task);
    free(w->op);
    free(w->params);
    free(w->trace_id);
    memset(w, 0, sizeof *w);
}

/* ---- canonical form ---- */

static void field(struct buf *out, const char *name, const char *val, size_t len)
{
    buf_addf(out, "%s:%zu:", name, len);
    buf_add(out, val, len);
    buf_addch(out, '\n');
}

static void field_str(struct buf *out, const char *name, const char *val)
{
    field(out, name, val ? val : "", val ? strlen(val) : 0);
}

static void field_int(struct buf *out, const char *name, int present, int64_t v, int is_unsigned)
{
    char num[32];
    int n = 0;
    if (present)
        n = is_unsigned ? snprintf(num, sizeof num, "%" PRIu64, (uint64_t)v)
                        : snprintf(num, sizeof num, "%" PRId64, v);
    field(out, name, num, (size_t)n);
}

void witness_canonical(const struct witness_entry *w, struct buf *out)
{
    char hex[2 * MERKLE_HASH + 1];
    buf_adds(out, ENTRY_MAGIC);
    field_int(out, "seq", 1, (int64_t)w->seq, 1);
    field_int(out, "time", 1, w->time, 0);
    field_str(out, "actor", w->actor);
    field_str(out, "swarm", w->swarm);
    field_int(out, "phase", w->has_phase, w->phase, 0);
    field_str(out, "agent", w->agent);
    field_str(out, "task", w->task);
    field_str(out, "op", w->op);
    field_str(out, "params", w->params);
    field_str(out, "trace_id", w->trace_id);
    merkle_hex(w->prev_hash, hex);
    field(out, "prev_hash", hex, 2 * MERKLE_HASH);
}

void witness_hash(struct witness_entry *w)
{
    struct buf b = BUF_INIT;
    witness_canonical(w, &b);
    crypto_hash_sha256(w->hash, (const unsigned char *)b.ptr, b.len);
    buf_release(&b);
}

void witness_leaf(const struct witness_entry *w, merkle_hash out)
{
    merkle_leaf(w->hash, MERKLE_HASH, out);
}

/* ---- checkpoints ---- */

void checkpoint_message(const struct checkpoint *c, struct buf *out)
{
    char hex[2 * MERKLE_HASH + 1];
    merkle_hex(c->root_hash, hex);
    buf_addf(out, CHECKPOINT_MAGIC "%" PRIu64 "\n%s\n%" PRId64 "\n", c->tree_size, hex, c->time);
}

void checkpoint_sign(struct checkpoint *c, const uint8_t sk[crypto_sign_SECRETKEYBYTES])
{
    struct buf b = BUF_INIT;
    checkpoint_message(c, &b);
    crypto_sign_detached(c->signature, NULL, (const unsigned char *)b.ptr, b.len, sk);
    buf_release(&b);
}

int checkpoint_verify(const struct checkpoint *c, const uint8_t pk[crypto_sign_PUBLICKEYBYTES])
{
    struct buf b = BUF_INIT;
    checkpoint_message(c, &b);
    int rc = crypto_sign_verify_detached(c->signature, (const unsigned char *)b.ptr, b.len, pk);
    buf_release(&b);
    return rc ? -1 : 0;
}

/* ---- chain ---- */

void witness_chain_init(struct witness_chain *wc)
{
    memset(wc, 0, sizeof *wc);
    merkle_frontier_init(&wc->tree);
}

void witness_chain_append(struct witness_chain *wc, struct witness_entry *w)
{
    w->seq = wc->seq + 1;
    memcpy(w->prev_hash, wc->head, MERKLE_HASH);
    witness_hash(w);
    merkle_hash leaf;
    witness_leaf(w, leaf);
    merkle_frontier_add(&wc->tree, leaf);
    memcpy(wc->head, w->hash, MERKLE_HASH);
    wc->seq = w->seq;
}

void witness_chain_checkpoint(const struct witness_chain *wc, int64_t time,
                              const uint8_t sk[crypto_sign_SECRETKEYBYTES], struct checkpoint *c)
{
    memset(c, 0, sizeof *c);
    c->tree_size = wc->tree.size;
    merkle_frontier_root(&wc->tree, c->root_hash);
    c->time = time;
    checkpoint_sign(c, sk);
}

/* ---- export lines ---- */

static void json_str_or_null(struct buf *out, const char *s)
{
    if (s)
        buf_add_json_str(out, s);
    else
        buf_adds(out, "null");
}

static void json_hash(struct buf *out, const merkle_hash h)
{
    char hex[2 * MERKLE_HASH + 1];
    merkle_hex(h, hex);
    buf_addch(out, '"');
    buf_adds(out, hex);
    buf_addch(out, '"');
}

/* The members every entry form shares, from seq to hash; params_raw: params as JSON. */
static void entry_members(struct buf *out, const struct witness_entry *w, int params_raw)
{
    buf_addf(out, "\"seq\":%" PRIu64 ",\"time\":%" PRId64 ",\"actor\":", w->seq, w->time);
    json_str_or_null(out, w->actor);
    buf_adds(out, ",\"swarm\":");
    json_str_or_null(out, w->swarm);
    if (w->has_phase)
        buf_addf(out, ",\"phase\":%" PRId64, w->phase);
    else
        buf_adds(out, ",\"phase\":null");
    buf_adds(out, ",\"agent\":");
    json_str_or_null(out, w->agent);
    buf_adds(out, ",\"task\":");
    json_str_or_null(out, w->task);
    buf_adds(out, ",\"op\":");
    json_str_or_null(out, w->op);
    buf_adds(out, ",\"params\":");
    if (params_raw)
        buf_adds(out, w->params ? w->params : "{}");
    else
        json_str_or_null(out, w->params);
    buf_adds(out, ",\"trace_id\":");
    json_str_or_null(out, w->trace_id);
    buf_adds(out, ",\"prev_hash\":");
    json_hash(out, w->prev_hash);
    buf_adds(out, ",\"hash\":");
    json_hash(out, w->hash);
}

void witness_export_header(struct buf *out, const char *public_key_b64)
{
    buf_adds(out, "{\"type\":\"header\",\"format\":\"" EXPORT_FORMAT "\",\"public_key\":");
    json_str_or_null(out, public_key_b64);
    buf_adds(out, "}\n");
}

void witness_export_entry(struct buf *out, const struct witness_entry *w)
{
    buf_adds(out, "{\"type\":\"entry\",");
    entry_members(out, w, 0);
    buf_adds(out, "}\n");
}

static void checkpoint_members(struct buf *out, const struct checkpoint *c)
{
    char sig[2 * crypto_sign_BYTES + 1];
    sodium_bin2hex(sig, sizeof sig, c->signature, crypto_sign_BYTES);
    buf_addf(out, "\"tree_size\":%" PRIu64 ",\"root_hash\":", c->tree_size);
    json_hash(out, c->root_hash);
    buf_addf(out, ",\"time\":%" PRId64 ",\"signature\":\"%s\"", c->time, sig);
}

void witness_export_checkpoint(struct buf *out, const struct checkpoint *c)
{
    buf_adds(out, "{\"type\":\"checkpoint\",");
    checkpoint_members(out, c);
    buf_adds(out, "}\n");
}

void witness_export_end(struct buf *out, uint64_t entries, uint64_t checkpoints)
{
    buf_addf(out, "{\"type\":\"end\",\"entries\":%" PRIu64 ",\"checkpoints\":%" PRIu64 "}\n",
             entries, checkpoints);
}

void witness_entry_json(struct buf *out, const struct witness_entry *w, const char *extra)
{
    buf_addch(out, '{');
    entry_members(out, w, 1);
    if (extra)
        buf_adds(out, extra);
    buf_addch(out, '}');
}

void witness_checkpoint_json(struct buf *out, const struct checkpoint *c)
{
    buf_addch(out, '{');
    checkpoint_members(out, c);
    buf_addch(out, '}');
}

/* ---- parsing export lines ---- */

static int get_uint(json_t *o, const char *key, uint64_t *out, struct s2_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return s2_fail(err, S2_EINVAL, "bad_export", "field '%s' is missing", key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return s2_fail(err, S2_EINVAL, "bad_export", "field '%s' must be a non-negative integer",
                       key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_int(json_t *o, const char *key, int nullable, int *present, int64_t *out,
                   struct s2_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return s2_fail(err, S2_EINVAL, "bad_export", "field '%s' is missing", key);
    if (nullable && json_is_null(v)) {
        *present = 0;
        return 0;
    }
    if (!json_is_integer(v))
        return s2_fail(err, S2_EINVAL, "bad_export", "field '%s' must be an integer", key);
    if (present)
        *present = 1;
    *out = json_integer_value(v);
    return 0;
}

/* A string member; null allowed when nullable; "" never (absent is spelled null). */
static int get_str(json_t *o, const char *key, int nullable, char **out, struct s2_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return s2_fail(err, S2_EINVAL, "bad_export", "field '%s' is missing", key);
    if (json_is_null(v) && nullable) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return s2_fail(err, S2_EINVAL, "bad_export", "field '%s' must be a non-empty string%s",
                       key, nullable ? " or null" : "");
    *out = xstrdup(json_string_value(v));
    return 0;
}

static int get_hash(json_t *o, const char *key, merkle_hash out, struct s2_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_string(v) || merkle_unhex(json_string_value(v), out))
        return s2_fail(err, S2_EINVAL, "bad_export",
                       "field '%s' must be 64 lowercase hex digits", key);
    return 0;
}

int witness_entry_from_json(json_t *o, struct witness_entry *out, struct s2_error *err)
{
    struct witness_entry w;
    memset(&w, 0, sizeof w);
    if (get_uint(o, "seq", &w.seq, err) || get_int(o, "time", 0, NULL, &w.time, err) ||
        get_str(o, "actor", 1, &w.actor, err) || get_str(o, "swarm", 1, &w.swarm, err) ||
        get_int(o, "phase", 1, &w.has_phase, &w.phase, err) ||
        get_str(o, "agent", 1, &w.agent, err) || get_str(o, "task", 1, &w.task, err) ||
        get_str(o, "op", 0, &w.op, err) || get_str(o, "params", 0, &w.params, err) ||
        get_str(o, "trace_id", 1, &w.trace_id, err) ||
        get_hash(o, "prev_hash", w.prev_hash, err) || get_hash(o, "hash", w.hash, err)) {
        witness_entry_release(&w);
        return S2_EINVAL;
    }
    *out = w;
    return 0;
}

int witness_parse_line(const char *line, size_t len, struct witness_parsed *out,
                       struct s2_error *err)
{
    struct witness_parsed p;
    memset(&p, 0, sizeof p);
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    struct buf again = BUF_INIT;
    int rc = S2_EINVAL;
    if (!o) {
        s2_fail(err, S2_EINVAL, "bad_export", "malformed JSON at column %d: %s", je.column,
                je.text);
        goto out;
    }
    json_t *type = json_object_get(o, "type");
    const char *t = json_is_string(type) ? json_string_value(type) : "";
    if (!json_is_object(o) || !*t) {
        s2_fail(err, S2_EINVAL, "bad_export", "not an export line (no \"type\")");
        goto out;
    }
    if (!strcmp(t, "entry")) {
        p.kind = WL_ENTRY;
        if (witness_entry_from_json(o, &p.entry, err))
            goto out;
        witness_export_entry(&again, &p.entry);
    } else if (!strcmp(t, "checkpoint")) {
        struct checkpoint *c = &p.checkpoint;
        p.kind = WL_CHECKPOINT;
        json_t *sig = json_object_get(o, "signature");
        size_t bin = 0;
        const char *s = json_is_string(sig) ? json_string_value(sig) : "";
        int sig_ok = strlen(s) == 2 * crypto_sign_BYTES;
        for (const char *q = s; sig_ok && *q; q++)
            sig_ok = (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f');
        if (get_uint(o, "tree_size", &c->tree_size, err) ||
            get_hash(o, "root_hash", c->root_hash, err) ||
            get_int(o, "time", 0, NULL, &c->time, err))
            goto out;
        if (!sig_ok || sodium_hex2bin(c->signature, sizeof c->signature, s, strlen(s), NULL, &bin,
                                      NULL) ||
            bin != crypto_sign_BYTES) {
            s2_fail(err, S2_EINVAL, "bad_export",
                    "field 'signature' must be 128 lowercase hex digits");
            goto out;
        }
        witness_export_checkpoint(&again, c);
    } else if (!strcmp(t, "header")) {
        p.kind = WL_HEADER;
        json_t *f = json_object_get(o, "format");
        if (!json_is_string(f) || strcmp(json_string_value(f), EXPORT_FORMAT)) {
            s2_fail(err, S2_EINVAL, "bad_export", "unknown export format (want \"%s\")",
                    EXPORT_FORMAT);
            goto out;
        }
        if (get_str(o, "public_key", 0, &p.public_key, err))
            goto out;
        witness_export_header(&again, p.public_key);
    } else if (!strcmp(t, "end")) {
        p.kind = WL_END;
        if (get_uint(o, "entries", &p.entries, err) ||
            get_uint(o, "checkpoints", &p.checkpoints, err))
            goto out;
        witness_export_end(&again, p.entries, p.checkpoints);
    } else {
        s2_fail(err, S2_EINVAL, "bad_export", "unknown line type '%.20s'", t);
        goto out;
    }
    /* Exactly the bytes the exporter would write: nothing else can vary unnoticed. */
    if (again.len != len + 1 || memcmp(again.ptr, line, len) != 0) {
        s2_fail(err, S2_EINVAL, "bad_export",
                "line is not in canonical form (spacing, member order, escapes or extra members)");
        goto out;
    }
    *out = p;
    memset(&p, 0, sizeof p);
    rc = 0;
out:
    witness_parsed_release(&p);
    buf_release(&again);
    json_decref(o);
    return rc;
}

void witness_parsed_release(struct witness_parsed *p)
{
    witness_entry_release(&p->entry);
    free(p->public_key);
    p->public_key = NULL;
}

/* ---- verification ---- */

void witness_verifier_init(struct witness_verifier *v, const uint8_t pk[crypto_sign_PUBLICKEYBYTES])
{
    memset(v, 0, sizeof *v);
    memcpy(v->pk, pk, crypto_sign_PUBLICKEYBYTES);
    witness_chain_init(&v->chain);
}

static int bad_entry(struct witness_verifier *v, uint64_t seq, struct s2_error *err,
                     const char *what)
{
    if (!v->first_bad)
        v->first_bad = seq;
    return s2_fail(err, S2_EINVAL, "witness_bad", "entry %" PRIu64 ": %s", seq, what);
}

int witness_verify_entry(struct witness_verifier *v, const struct witness_entry *w,
                         struct s2_error *err)
{
    uint64_t want = v->chain.seq + 1;
    if (w->seq != want) {
        char msg[128];
        snprintf(msg, sizeof msg, "out of sequence: numbered %" PRIu64 " (%s)", w->seq,
                 w->seq < want ? "repeated or reordered" : "entries missing before it");
        return bad_entry(v, want, err, msg);
    }
    if (sodium_memcmp(w->prev_hash, v->chain.head, MERKLE_HASH) != 0)
        return bad_entry(v, w->seq, err, "prev_hash does not match the hash of the entry before");
    struct witness_entry x = *w;
    witness_hash(&x);
    if (sodium_memcmp(x.hash, w->hash, MERKLE_HASH) != 0)
        return bad_entry(v, w->seq, err, "hash does not match its contents");
    if (!w->op || !w->params)
        return bad_entry(v, w->seq, err, "op and params are required");
    witness_chain_append(&v->chain, &x);
    return 0;
}

int witness_verify_checkpoint(struct witness_verifier *v, const struct checkpoint *c,
                              struct s2_error *err)
{
    if (c->tree_size != v->chain.seq) {
        if (!v->first_bad)
            v->first_bad = c->tree_size > v->chain.seq ? v->chain.seq + 1 : c->tree_size;
        return s2_fail(err, S2_EINVAL, "witness_bad",
                       "checkpoint of tree size %" PRIu64 " found after entry %" PRIu64
                       ": %s",
                       c->tree_size, v->chain.seq,
                       c->tree_size > v->chain.seq ? "entries it covers are missing"
                                                   : "it is out of place");
    }
    if (c->tree_size <= v->last_cp_size && v->checkpoints)
        return s2_fail(err, S2_EINVAL, "witness_bad",
                       "checkpoint of tree size %" PRIu64 " repeats an earlier one", c->tree_size);
    merkle_hash root;
    merkle_frontier_root(&v->chain.tree, root);
    if (sodium_memcmp(root, c->root_hash, MERKLE_HASH) != 0) {
        if (!v->first_bad)
            v->first_bad = c->tree_size;
        return s2_fail(err, S2_EINVAL, "witness_bad",
                       "checkpoint of tree size %" PRIu64 ": root hash does not match the entries",
                       c->tree_size);
    }
    if (checkpoint_verify(c, v->pk))
        return s2_fail(err, S2_EINVAL, "witness_bad",
                       "checkpoint of tree size %" PRIu64 ": signature is not valid for this "
                       "public key",
                       c->tree_size);
    if (c->time < v->last_cp_time)
        return s2_fail(err, S2_EINVAL, "witness_bad",
                       "checkpoint of tree size %" PRIu64 ": time goes backwards", c->tree_size);
    v->checkpoints++;
    v->last_cp_size = c->tree_size;
    v->last_cp_time = c->time;
    return 0;
}

int witness_verify_finish(struct witness_verifier *v, struct s2_error *err)
{
    if (v->chain.seq != v->last_cp_size) {
        if (!v->first_bad)
            v->first_bad = v->last_cp_size + 1;
        return s2_fail(err, S2_EINVAL, "witness_bad",
                       "entries %" PRIu64 "..%" PRIu64 " are not covered by a signed checkpoint",
                       v->last_cp_size + 1, v->chain.seq);
    }
    return 0;
}

int witness_parse_key(const char *b64, uint8_t pk[crypto_sign_PUBLICKEYBYTES])
{
    size_t bin = 0;
    if (!b64 || sodium_base642bin(pk, crypto_sign_PUBLICKEYBYTES, b64, strlen(b64), NULL, &bin,
                                  NULL, sodium_base64_VARIANT_ORIGINAL) ||
        bin != crypto_sign_PUBLICKEYBYTES)
        return -1;
    return 0;
}

void witness_new_trace_id(char out[33])
{
    /* unique, not secret: a random per-thread prefix and a counter (no syscall per id) */
    static _Thread_local uint64_t prefix, counter;
    if (!prefix)
        randombytes_buf(&prefix, sizeof prefix);
    uint8_t r[16];
    uint64_t c = ++counter;
    memcpy(r, &prefix, 8);
    for (int i = 0; i < 8; i++)
        r[8 + i] = (uint8_t)(c >> (56 - 8 * i));
    sodium_bin2hex(out, 33, r, sizeof r);
}

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int witness_trace_from_headers(const char *s2_trace, const char *traceparent,
                               char out[WITNESS_TRACE_MAX + 1])
{
    if (s2_trace) {
        size_t n = strlen(s2_trace);
        if (n == 0 || n > WITNESS_TRACE_MAX)
            return -1;
        for (size_t i = 0; i < n; i++) {
            char c = s2_trace[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-'))
                return -1;
        }
        memcpy(out, s2_trace, n + 1);
        return 0;
    }
    /* version "-" trace-id "-" parent-id "-" flags; an all-zero trace-id is invalid */
    if (traceparent && strlen(traceparent) >= 55 && traceparent[2] == '-' &&
        traceparent[35] == '-' && is_lower_hex(traceparent, 2) &&
        is_lower_hex(traceparent + 3, 32) && strncmp(traceparent, "ff", 2) != 0 &&
        strspn(traceparent + 3, "0") < 32) {
        memcpy(out, traceparent + 3, 32);
        out[32] = 0;
        return 0;
    }
    return -1;
}
