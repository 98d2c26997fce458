/* witness_db.c: verification, export and proofs over a database's witness log. Reads only,
 * inside one read transaction, so what it checks or writes is one consistent snapshot. */
#include "witness_db.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

json_t *witness_checkpoint_object(const struct checkpoint *c)
{
    struct buf b = BUF_INIT;
    witness_checkpoint_json(&b, c);
    json_t *o = json_loadb(b.ptr, b.len, 0, NULL);
    buf_release(&b);
    return o;
}

int witness_checkpoint_parse(json_t *o, struct checkpoint *c, struct s2_error *err)
{
    /* The export line parser holds the rules; give it the line it would read. */
    if (!json_is_object(o))
        return s2_fail(err, S2_EINVAL, "bad_proof", "checkpoint must be an object");
    json_t *x = json_deep_copy(o);
    json_t *line = json_object();
    json_object_set_new(line, "type", json_string("checkpoint"));
    json_object_update(line, x);
    json_decref(x);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    struct witness_parsed p;
    int rc = witness_parse_line(text, strlen(text), &p, err);
    free(text);
    if (rc)
        return rc;
    *c = p.checkpoint;
    witness_parsed_release(&p);
    return 0;
}

struct walk {
    struct store_reader *rd;
    struct store_cursor *ec, *cc;
    struct checkpoint cp;
    int have_cp;
};

static int walk_open(struct walk *w, struct store_reader *rd, struct s2_error *err)
{
    memset(w, 0, sizeof *w);
    w->rd = rd;
    if (store_reader_begin(rd, err))
        return err->kind;
    if (store_cursor_witness(rd, 1, &w->ec, err) || store_cursor_checkpoints(rd, 1, &w->cc, err))
        return err->kind;
    int rc = store_cursor_next_checkpoint(w->cc, &w->cp, err);
    if (rc < 0)
        return rc;
    w->have_cp = rc;
    return 0;
}

static void walk_close(struct walk *w)
{
    store_cursor_close(w->ec);
    store_cursor_close(w->cc);
    store_reader_end(w->rd);
}

static int next_cp(struct walk *w, struct s2_error *err)
{
    int rc = store_cursor_next_checkpoint(w->cc, &w->cp, err);
    if (rc < 0)
        return rc;
    w->have_cp = rc;
    return 0;
}

int witness_db_verify(struct store_reader *rd, const uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                      struct witness_report *rep, void (*progress)(uint64_t entries, void *ctx),
                      void *ctx, struct s2_error *err)
{
    struct witness_verifier v;
    struct walk w;
    witness_verifier_init(&v, pk);
    memset(rep, 0, sizeof *rep);
    int rc = walk_open(&w, rd, err);
    while (!rc) {
        struct witness_entry e;
        int got = store_cursor_next_entry(w.ec, &e, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        rc = witness_verify_entry(&v, &e, err);
        witness_entry_release(&e);
        if (progress && !(v.chain.seq & 0xffff))
            progress(v.chain.seq, ctx);
        while (!rc && w.have_cp && w.cp.tree_size <= v.chain.seq) {
            rc = witness_verify_checkpoint(&v, &w.cp, err);
            if (!rc)
                rc = next_cp(&w, err);
        }
    }
    if (!rc && w.have_cp) /* a checkpoint beyond the last entry: entries are missing */
        rc = witness_verify_checkpoint(&v, &w.cp, err);
    if (!rc)
        rc = witness_verify_finish(&v, err);
    walk_close(&w);
    rep->entries = v.chain.seq;
    rep->checkpoints = v.checkpoints;
    rep->first_bad = v.first_bad;
    if (rc && !rep->first_bad && err->code && !strcmp(err->code, "witness_bad"))
        rep->first_bad = v.chain.seq + 1;
    if (v.checkpoints) {
        rep->last.tree_size = v.last_cp_size;
        rep->last.time = v.last_cp_time;
        merkle_frontier_root(&v.chain.tree, rep->last.root_hash);
    }
    return rc;
}

static int flush_buf(FILE *out, struct buf *b, struct s2_error *err)
{
    if (b->len && fwrite(b->ptr, 1, b->len, out) != b->len)
        return s2_fail(err, S2_EIO, "io", "cannot write the export");
    buf_reset(b);
    return 0;
}

int witness_db_export(struct store_reader *rd, FILE *out, struct s2_error *err)
{
    struct walk w;
    struct buf b = BUF_INIT;
    uint64_t entries = 0, cps = 0;
    char *pub = store_reader_meta(rd, "public_key");
    int rc = walk_open(&w, rd, err);
    if (!rc) {
        struct checkpoint last = {0};
        /* only what a checkpoint covers: the export must verify on its own */
        if (witness_db_checkpoint(rd, 0, &last, err) < 0)
            rc = err->kind;
        witness_export_header(&b, pub);
        while (!rc && entries < last.tree_size) {
            struct witness_entry e;
            int got = store_cursor_next_entry(w.ec, &e, err);
            if (got <= 0) {
                rc = got;
                break;
            }
            witness_export_entry(&b, &e);
            witness_entry_release(&e);
            entries++;
            while (!rc && w.have_cp && w.cp.tree_size <= entries) {
                witness_export_checkpoint(&b, &w.cp);
                cps++;
                rc = next_cp(&w, err);
            }
            if (!rc && b.len > 1 << 16)
                rc = flush_buf(out, &b, err);
        }
        if (!rc) {
            witness_export_end(&b, entries, cps);
            rc = flush_buf(out, &b, err);
        }
    }
    walk_close(&w);
    buf_release(&b);
    free(pub);
    return rc;
}

static int one_checkpoint(void *ctx, const struct checkpoint *c)
{
    *(struct checkpoint *)ctx = *c;
    return 1;
}

int witness_db_checkpoint(struct store_reader *rd, uint64_t size, struct checkpoint *out,
                          struct s2_error *err)
{
    struct checkpoint c = {0};
    int rc = store_reader_checkpoints(rd, size, 1, size == 0, one_checkpoint, &c, err);
    if (rc < 0)
        return rc;
    if (!rc || (size && c.tree_size != size))
        return 0;
    *out = c;
    return 1;
}

static json_t *path_json(const merkle_hash *path, unsigned n)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < n; i++) {
        char hex[2 * MERKLE_HASH + 1];
        merkle_hex(path[i], hex);
        json_array_append_new(a, json_string(hex));
    }
    return a;
}

static int one_entry(void *ctx, const struct witness_entry *w)
{
    struct buf *b = ctx;
    witness_export_entry(b, w);
    return 1;
}

/* The leaves of the first `size` entries (caller frees). */
static merkle_hash *leaves_of(struct store_reader *rd, uint64_t size, struct s2_error *err)
{
    merkle_hash *leaves = xmalloc((size_t)(size ? size : 1) * sizeof *leaves);
    if (store_reader_leaves(rd, size, leaves, err)) {
        free(leaves);
        return NULL;
    }
    return leaves;
}

json_t *witness_db_inclusion(struct store_reader *rd, uint64_t seq, uint64_t size,
                             struct s2_error *err)
{
    json_t *out = NULL;
    struct checkpoint cp;
    struct buf eb = BUF_INIT;
    merkle_hash *leaves = NULL;
    if (store_reader_begin(rd, err))
        return NULL;
    int got = witness_db_checkpoint(rd, size, &cp, err);
    if (got <= 0) {
        if (got == 0)
            s2_fail(err, S2_ENOTFOUND, "no_checkpoint",
                    size ? "no checkpoint of tree size %" PRIu64 : "no checkpoint yet%.0" PRIu64,
                    size);
        goto out;
    }
    if (seq == 0 || seq > cp.tree_size) {
        s2_fail(err, S2_ENOTFOUND, "not_in_tree",
                "entry %" PRIu64 " is not in the tree of size %" PRIu64, seq, cp.tree_size);
        goto out;
    }
    struct witness_filter f = {.from = seq, .limit = 1};
    if (store_reader_witness(rd, &f, one_entry, &eb, err) < 0)
        goto out;
    if (!(leaves = leaves_of(rd, cp.tree_size, err)))
        goto out;
    merkle_hash path[MERKLE_MAX_PATH];
    unsigned n = 0;
    merkle_inclusion_proof(leaves, cp.tree_size, seq - 1, path, &n);
    json_t *entry = json_loadb(eb.ptr, eb.len, 0, NULL);
    json_object_del(entry, "type");
    out = json_pack("{s:s,s:o,s:I,s:o,s:o}", "type", "inclusion", "entry", entry, "leaf_index",
                    (json_int_t)(seq - 1), "checkpoint", witness_checkpoint_object(&cp), "path",
                    path_json(path, n));
out:
    store_reader_end(rd);
    free(leaves);
    buf_release(&eb);
    return out;
}

json_t *witness_db_consistency(struct store_reader *rd, uint64_t old_size, uint64_t new_size,
                               struct s2_error *err)
{
    json_t *out = NULL;
    struct checkpoint a, b;
    merkle_hash *leaves = NULL;
    if (store_reader_begin(rd, err))
        return NULL;
    int ga = witness_db_checkpoint(rd, old_size, &a, err);
    int gb = ga < 0 ? ga : witness_db_checkpoint(rd, new_size, &b, err);
    if (ga <= 0 || gb <= 0) {
        if (ga == 0 || gb == 0)
            s2_fail(err, S2_ENOTFOUND, "no_checkpoint", "no checkpoint of tree size %" PRIu64,
                    ga == 0 ? old_size : new_size);
        goto out;
    }
    if (a.tree_size > b.tree_size) {
        s2_fail(err, S2_EINVAL, "invalid_query",
                "the old tree size (%" PRIu64 ") is larger than the new (%" PRIu64 ")",
                a.tree_size, b.tree_size);
        goto out;
    }
    if (!(leaves = leaves_of(rd, b.tree_size, err)))
        goto out;
    merkle_hash path[MERKLE_MAX_PATH];
    unsigned n = 0;
    merkle_consistency_proof(leaves, a.tree_size, b.tree_size, path, &n);
    out = json_pack("{s:s,s:o,s:o,s:o}", "type", "consistency", "old",
                    witness_checkpoint_object(&a), "new", witness_checkpoint_object(&b), "path",
                    path_json(path, n));
out:
    store_reader_end(rd);
    free(leaves);
    return out;
}

static int parse_path(json_t *a, merkle_hash path[MERKLE_MAX_PATH], unsigned *n,
                      struct s2_error *err)
{
    if (!json_is_array(a) || json_array_size(a) > MERKLE_MAX_PATH)
        return s2_fail(err, S2_EINVAL, "bad_proof", "path must be an array of at most %d hashes",
                       MERKLE_MAX_PATH);
    *n = 0;
    size_t i;
    json_t *h;
    json_array_foreach(a, i, h)
    {
        if (!json_is_string(h) || merkle_unhex(json_string_value(h), path[*n]))
            return s2_fail(err, S2_EINVAL, "bad_proof", "path[%zu] is not a hash", i);
        (*n)++;
    }
    return 0;
}

static int signed_cp(json_t *o, const char *what, const uint8_t *pk, struct checkpoint *c,
                     struct s2_error *err)
{
    if (witness_checkpoint_parse(o, c, err))
        return s2_fail(err, S2_EINVAL, "bad_proof", "%s checkpoint: %s", what, err->msg);
    if (checkpoint_verify(c, pk))
        return s2_fail(err, S2_EINVAL, "bad_signature",
                       "%s checkpoint (tree size %" PRIu64 "): signature is not valid for this key",
                       what, c->tree_size);
    return 0;
}

int witness_check_bundle(json_t *bundle, const uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                         char **summary, struct s2_error *err)
{
    const char *type = json_string_value(json_object_get(bundle, "type"));
    merkle_hash path[MERKLE_MAX_PATH];
    unsigned n = 0;
    char root[2 * MERKLE_HASH + 1];
    if (type && !strcmp(type, "inclusion")) {
        struct checkpoint cp;
        struct witness_entry w;
        if (signed_cp(json_object_get(bundle, "checkpoint"), "the", pk, &cp, err) ||
            parse_path(json_object_get(bundle, "path"), path, &n, err))
            return err->kind;
        if (witness_entry_from_json(json_object_get(bundle, "entry"), &w, err))
            return s2_fail(err, S2_EINVAL, "bad_proof", "entry: %s", err->msg);
        struct witness_entry x = w;
        witness_hash(&x);
        int rc = 0;
        if (sodium_memcmp(x.hash, w.hash, MERKLE_HASH))
            rc = s2_fail(err, S2_EINVAL, "bad_proof",
                         "entry %" PRIu64 ": hash does not match its contents", w.seq);
        merkle_hash leaf;
        witness_leaf(&w, leaf);
        if (!rc && merkle_verify_inclusion(leaf, w.seq - 1, cp.tree_size, path, n, cp.root_hash))
            rc = s2_fail(err, S2_EINVAL, "bad_proof",
                         "entry %" PRIu64 " is NOT proven in the tree of size %" PRIu64, w.seq,
                         cp.tree_size);
        if (!rc) {
            merkle_hex(cp.root_hash, root);
            *summary = xasprintf("entry %" PRIu64 " (%s) is in the tree of size %" PRIu64
                                 " with root %s, signed at %" PRId64 " (%u hashes)",
                                 w.seq, w.op, cp.tree_size, root, cp.time, n);
        }
        witness_entry_release(&w);
        return rc;
    }
    if (type && !strcmp(type, "consistency")) {
        struct checkpoint a, b;
        if (signed_cp(json_object_get(bundle, "old"), "old", pk, &a, err) ||
            signed_cp(json_object_get(bundle, "new"), "new", pk, &b, err) ||
            parse_path(json_object_get(bundle, "path"), path, &n, err))
            return err->kind;
        if (merkle_verify_consistency(a.tree_size, b.tree_size, a.root_hash, b.root_hash, path, n))
            return s2_fail(err, S2_EINVAL, "bad_proof",
                           "the tree of size %" PRIu64 " is NOT proven a prefix of the tree of "
                           "size %" PRIu64,
                           a.tree_size, b.tree_size);
        *summary = xasprintf("the tree of size %" PRIu64 " is a prefix of the tree of size %" PRIu64
                             " (%u hashes; both checkpoints signed)",
                             a.tree_size, b.tree_size, n);
        return 0;
    }
    return s2_fail(err, S2_EINVAL, "bad_proof",
                   "not a proof bundle: \"type\" must be \"inclusion\" or \"consistency\"");
}

/* err's message prefixed with the line it is about, unless it already says one */
static int at_line(struct s2_error *err, long lineno)
{
    if (err->msg && strncmp(err->msg, "line ", 5)) {
        char *m = xasprintf("line %ld: %s", lineno, err->msg);
        const char *code = err->code;
        s2_fail(err, S2_EINVAL, code, "%s", m);
        free(m);
    }
    return S2_EINVAL;
}

int witness_verify_export(FILE *f, const uint8_t *pk, struct witness_report *rep,
                          struct s2_error *err)
{
    struct witness_verifier v;
    uint8_t key[crypto_sign_PUBLICKEYBYTES] = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0, ended = 0, started = 0;
    memset(rep, 0, sizeof *rep);
    witness_verifier_init(&v, key);
    while (!rc && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (ended) {
            rc = s2_fail(err, S2_EINVAL, "bad_export", "line %ld: data after the end line",
                         lineno);
            break;
        }
        if (n == 0 || line[n - 1] != '\n') {
            rc = s2_fail(err, S2_EINVAL, "bad_export",
                         "line %ld: the export is truncated (no newline at its end)", lineno);
            if (started)
                v.first_bad = v.first_bad ? v.first_bad : v.chain.seq + 1;
            break;
        }
        struct witness_parsed p;
        if (witness_parse_line(line, (size_t)n - 1, &p, err)) {
            /* a line that does not parse stands where the next entry should */
            if (started)
                v.first_bad = v.first_bad ? v.first_bad : v.chain.seq + 1;
            rc = at_line(err, lineno);
            break;
        }
        if (!started) {
            if (p.kind != WL_HEADER) {
                rc = s2_fail(err, S2_EINVAL, "bad_export",
                             "line 1: an export starts with its header line");
            } else if (witness_parse_key(p.public_key, key)) {
                rc = s2_fail(err, S2_EINVAL, "bad_export",
                             "line 1: the header's public_key is not an Ed25519 key in base64");
            } else if (pk && sodium_memcmp(pk, key, sizeof key)) {
                /* the header is not signed: it must at least agree with the trusted key */
                rc = s2_fail(err, S2_EINVAL, "bad_export",
                             "line 1: the export names another public key than the one given");
            } else {
                witness_verifier_init(&v, pk ? pk : key);
                started = 1;
            }
        } else if (p.kind == WL_ENTRY) {
            rc = witness_verify_entry(&v, &p.entry, err);
        } else if (p.kind == WL_CHECKPOINT) {
            rc = witness_verify_checkpoint(&v, &p.checkpoint, err);
        } else if (p.kind == WL_END) {
            ended = 1;
            if (p.entries != v.chain.seq || p.checkpoints != v.checkpoints)
                rc = s2_fail(err, S2_EINVAL, "bad_export",
                             "the end line counts %" PRIu64 " entries and %" PRIu64
                             " checkpoints, the export holds %" PRIu64 " and %" PRIu64,
                             p.entries, p.checkpoints, v.chain.seq, v.checkpoints);
        } else {
            rc = s2_fail(err, S2_EINVAL, "bad_export", "a second header");
        }
        if (rc)
            at_line(err, lineno);
        witness_parsed_release(&p);
    }
    free(line);
    if (!rc && !started)
        rc = s2_fail(err, S2_EINVAL, "bad_export", "the export is empty");
    else if (!rc && !ended)
        rc = s2_fail(err, S2_EINVAL, "bad_export",
                     "the export ends without its end line: it is truncated");
    if (!rc)
        rc = witness_verify_finish(&v, err);
    rep->entries = v.chain.seq;
    rep->checkpoints = v.checkpoints;
    rep->first_bad = v.first_bad;
    rep->last.tree_size = v.last_cp_size;
    rep->last.time = v.last_cp_time;
    merkle_frontier_root(&v.chain.tree, rep->last.root_hash);
    return rc;
}
