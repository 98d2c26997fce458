/* cli_witness.c: `s2 witness verify|export|show|prove|consistency`. verify works offline on
 * a database, an export or a proof bundle; the others read a database (--db) offline or ask
 * the server. Nothing here writes to a log. */
#include "cli.h"
#include "keys.h"
#include "store.h"
#include "util/buf.h"
#include "util/xalloc.h"
#include "witness_db.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_MAGIC "s2-ed25519-secret-key "

struct wopts {
    const char *db, *export_file, *proof_file, *key, *key_file, *output;
    const char *task, *swarm, *agent;
    long long from, limit, size;
};

static const struct option witness_opts[] = {
    {"db", required_argument, 0, 'd'},     {"export", required_argument, 0, 'e'},
    {"proof", required_argument, 0, 'p'},  {"key", required_argument, 0, 'k'},
    {"key-file", required_argument, 0, 'K'}, {"output", required_argument, 0, 'o'},
    {"task", required_argument, 0, 't'},   {"swarm", required_argument, 0, 's'},
    {"agent", required_argument, 0, 'a'},  {"from", required_argument, 0, 'f'},
    {"limit", required_argument, 0, 'n'},  {"size", required_argument, 0, 'S'},
    CLI_COMMON_OPTS,                        {0}};

#define WITNESS_CASES(c, o)                                                                    \
    case 'd' : (o).db = optarg; break;                                                         \
    case 'e' : (o).export_file = optarg; break;                                                \
    case 'p' : (o).proof_file = optarg; break;                                                 \
    case 'k' : (o).key = optarg; break;                                                        \
    case 'K' : (o).key_file = optarg; break;                                                   \
    case 'o' : (o).output = optarg; break;                                                     \
    case 't' : (o).task = optarg; break;                                                       \
    case 's' : (o).swarm = optarg; break;                                                      \
    case 'a' : (o).agent = optarg; break;                                                      \
    case 'f' : USAGE_IF(cli_int(&(c), "--from", optarg, 1, INT64_MAX, &(o).from)); break;      \
    case 'n' : USAGE_IF(cli_int(&(c), "--limit", optarg, 1, 1000, &(o).limit)); break;         \
    case 'S' : USAGE_IF(cli_int(&(c), "--size", optarg, 1, INT64_MAX, &(o).size)); break;

/* The public key to verify against, and a note on where it came from (static). The
 * strongest source is one the user names; a key taken from the thing being verified
 * proves only that it is self-consistent, and the output says so. */
static int resolve_key(struct cli *c, const struct wopts *o, struct store_reader *rd,
                       const char *export_key, uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                       const char **source)
{
    struct s2_error err = S2_ERROR_INIT;
    if (o->key) {
        if (witness_parse_key(o->key, pk))
            return cli_failf("--key must be an Ed25519 public key in base64 (as `s2 init` prints)");
        *source = "given with --key";
        return 0;
    }
    const char *kf = o->key_file;
    char *dbkey = NULL;
    if (!kf && o->db && !store_location_is_pg(o->db)) {
        dbkey = xasprintf("%s.key", o->db);
        if (access(dbkey, R_OK) == 0)
            kf = dbkey;
    }
    if (kf) {
        char *text = cli_read_file(kf, 4096, &err);
        int rc = EXIT_OK;
        if (!text) {
            rc = cli_fail(&err);
        } else if (!strncmp(text, KEY_MAGIC, strlen(KEY_MAGIC))) {
            uint8_t sk[crypto_sign_SECRETKEYBYTES];
            if (keys_load(kf, sk, pk, &err))
                rc = cli_fail(&err);
            sodium_memzero(sk, sizeof sk);
            *source = kf == dbkey ? "from the database's signing key file" : "from --key-file";
        } else {
            text[strcspn(text, "\r\n")] = 0;
            if (witness_parse_key(text, pk))
                rc = cli_failf("'%s' holds neither a signing key nor a base64 public key", kf);
            *source = "from --key-file";
        }
        free(text);
        free(dbkey);
        s2_error_release(&err);
        return rc;
    }
    free(dbkey);
    char *pub = NULL;
    if (rd) {
        pub = store_reader_meta(rd, "public_key");
        *source = "recorded in the database itself (pass --key to check against a key you trust)";
    } else if (export_key) {
        pub = xstrdup(export_key);
        *source = "named in the export itself (pass --key to check against a key you trust)";
    } else if (!o->db && !o->export_file && !o->proof_file) {
        json_t *out = NULL;
        if (cli_call(c, "GET", "/v1/witness/key", NULL, &out, NULL))
            return EXIT_FAIL;
        pub = xstrdup(cli_str(out, "public_key"));
        json_decref(out);
        *source = "as served by the server (pass --key to check against a key you trust)";
    }
    if (!pub || witness_parse_key(pub, pk)) {
        free(pub);
        return cli_failf("no public key to verify against: pass --key BASE64 or --key-file PATH");
    }
    free(pub);
    return 0;
}

static int open_db(const char *path, struct store_reader **rd)
{
    struct s2_error err = S2_ERROR_INIT;
    if (!store_location_is_pg(path) && access(store_location_path(path), R_OK) != 0)
        return cli_failf("cannot read database '%s': %s", path, strerror(errno));
    if (store_reader_open(rd, path, &err)) {
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    return 0;
}

static void print_report(const struct cli *c, int ok, const struct witness_report *rep,
                         const char *key_source, const struct s2_error *err)
{
    char root[2 * MERKLE_HASH + 1] = "";
    if (rep->checkpoints)
        merkle_hex(rep->last.root_hash, root);
    if (c->json) {
        json_t *o = json_pack("{s:b,s:I,s:I,s:s}", "ok", ok, "entries", (json_int_t)rep->entries,
                              "checkpoints", (json_int_t)rep->checkpoints, "key", key_source);
        if (rep->checkpoints)
            json_object_set_new(o, "latest", json_pack("{s:I,s:s,s:I}", "tree_size",
                                                       (json_int_t)rep->last.tree_size, "root_hash",
                                                       root, "time", (json_int_t)rep->last.time));
        if (!ok) {
            json_object_set_new(o, "error", json_string(err->msg ? err->msg : "invalid"));
            json_object_set_new(o, "first_bad_seq",
                                rep->first_bad ? json_integer((json_int_t)rep->first_bad)
                                               : json_null());
        }
        cli_print_json(o);
        json_decref(o);
        return;
    }
    if (ok) {
        char when[64];
        cli_fmt_time(rep->last.time, when, sizeof when);
        printf("ok: %" PRIu64 " entries and %" PRIu64 " signed checkpoints verified\n",
               rep->entries, rep->checkpoints);
        if (rep->checkpoints)
            printf("  latest checkpoint: tree size %" PRIu64 ", root %s, signed %s\n",
                   rep->last.tree_size, root, when);
        printf("  public key: %s\n", key_source);
    } else {
        fprintf(stderr, "error: %s\n", err->msg ? err->msg : "the log does not verify");
        if (rep->first_bad)
            fprintf(stderr, "first bad entry: %" PRIu64 "\n", rep->first_bad);
        fprintf(stderr, "(%" PRIu64 " entries and %" PRIu64 " checkpoints before it verified)\n",
                rep->first_bad ? rep->first_bad - 1 : rep->entries, rep->checkpoints);
    }
}

static int verify_export(struct cli *c, const struct wopts *o)
{
    FILE *f = !strcmp(o->export_file, "-") ? stdin : fopen(o->export_file, "r");
    if (!f)
        return cli_failf("cannot read '%s': %s", o->export_file, strerror(errno));
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    const char *source = "named in the export itself (pass --key to check against a key you trust)";
    int given = o->key || o->key_file;
    if (given && resolve_key(c, o, NULL, NULL, pk, &source)) {
        if (f != stdin)
            fclose(f);
        return EXIT_FAIL;
    }
    struct s2_error err = S2_ERROR_INIT;
    struct witness_report rep;
    int rc = witness_verify_export(f, given ? pk : NULL, &rep, &err);
    if (f != stdin)
        fclose(f);
    print_report(c, rc == 0, &rep, source, &err);
    s2_error_release(&err);
    return rc ? EXIT_FAIL : EXIT_OK;
}

static int verify_proof(struct cli *c, const struct wopts *o)
{
    struct s2_error err = S2_ERROR_INIT;
    char *text = cli_read_file(o->proof_file, 16 * 1024 * 1024, &err);
    if (!text) {
        int rc = cli_fail(&err);
        s2_error_release(&err);
        return rc;
    }
    json_t *b = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    if (!b)
        return cli_failf("'%s' is not JSON: expected a proof bundle from `s2 witness prove "
                         "--json` or `s2 witness consistency --json`",
                         o->proof_file);
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    const char *source = "";
    if (resolve_key(c, o, NULL, NULL, pk, &source)) {
        json_decref(b);
        return EXIT_FAIL;
    }
    char *summary = NULL;
    int rc = witness_check_bundle(b, pk, &summary, &err);
    json_decref(b);
    if (rc) {
        rc = cli_fail(&err);
    } else {
        printf("ok: %s\n  public key: %s\n", summary, source);
        rc = EXIT_OK;
    }
    free(summary);
    s2_error_release(&err);
    return rc;
}

/* A progress line on a terminal for long logs (quiet when stderr is not a TTY). */
struct verify_progress {
    uint64_t total;
    int shown;
};

static void show_progress(uint64_t entries, void *ctx)
{
    struct verify_progress *vp = ctx;
    cli_progress("verifying %" PRIu64 "/%" PRIu64 " entries (%.0f%%)", entries, vp->total,
                 vp->total ? 100.0 * (double)entries / (double)vp->total : 0.0);
    vp->shown = 1;
}

int cli_witness_verify(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct wopts o = {0};
    struct store_reader *rd = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, witness_opts, WITNESS_CASES(c, o));
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!!o.db + !!o.export_file + !!o.proof_file != 1) {
        rc = cli_usage(&c, "give exactly one of --db PATH, --export FILE or --proof FILE");
        goto out;
    }
    if (o.export_file) {
        rc = verify_export(&c, &o);
        goto out;
    }
    if (o.proof_file) {
        rc = verify_proof(&c, &o);
        goto out;
    }
    if ((rc = open_db(o.db, &rd)))
        goto out;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    const char *source = "";
    if ((rc = resolve_key(&c, &o, rd, NULL, pk, &source)))
        goto out;
    struct s2_error err = S2_ERROR_INIT;
    struct witness_report rep;
    struct checkpoint last = {0};
    struct verify_progress vp = {0};
    if (cli_progress_wanted(&c) && witness_db_checkpoint(rd, 0, &last, &err) > 0)
        vp.total = last.tree_size;
    s2_error_release(&err);
    int bad = witness_db_verify(rd, pk, &rep, vp.total ? show_progress : NULL, &vp, &err);
    if (vp.shown)
        cli_progress_clear();
    print_report(&c, bad == 0, &rep, source, &err);
    s2_error_release(&err);
    rc = bad ? EXIT_FAIL : EXIT_OK;
out:
    store_reader_close(rd);
    cli_done(&c);
    return rc;
}

int cli_witness_export(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct wopts o = {0};
    struct store_reader *rd = NULL;
    FILE *out = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, witness_opts, WITNESS_CASES(c, o));
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    char *tmp = NULL;
    if (o.output && strcmp(o.output, "-")) {
        tmp = xasprintf("%s.tmp", o.output);
        out = fopen(tmp, "w");
        if (!out) {
            rc = cli_failf("cannot write '%s': %s", tmp, strerror(errno));
            free(tmp);
            goto out;
        }
    } else {
        out = stdout;
    }
    struct s2_error err = S2_ERROR_INIT;
    if (o.db) {
        if ((rc = open_db(o.db, &rd)))
            goto done;
        if (witness_db_export(rd, out, &err)) {
            rc = cli_fail(&err);
            s2_error_release(&err);
            goto done;
        }
    } else {
        if ((rc = cli_call(&c, "GET", "/v1/witness/export", NULL, NULL, NULL)))
            goto done;
        const char *body = client_last_body(&c.client);
        if (body && fputs(body, out) < 0) {
            rc = cli_failf("cannot write the export: %s", strerror(errno));
            goto done;
        }
    }
    rc = EXIT_OK;
done:
    if (out && out != stdout) {
        if (fclose(out) != 0 && !rc)
            rc = cli_failf("cannot write '%s': %s", tmp, strerror(errno));
        if (!rc && rename(tmp, o.output))
            rc = cli_failf("cannot rename '%s' to '%s': %s", tmp, o.output, strerror(errno));
        if (rc)
            unlink(tmp);
    }
    free(tmp);
out:
    store_reader_close(rd);
    cli_done(&c);
    return rc;
}

static void print_entry_line(json_t *e)
{
    char when[64];
    cli_fmt_time(json_integer_value(json_object_get(e, "time")), when, sizeof when);
    json_t *p = json_object_get(e, "params");
    char *ps = json_is_string(p) ? xstrdup(json_string_value(p)) : json_dumps(p, JSON_COMPACT | JSON_REAL_PRECISION(15));
    printf("%8lld %s %-16s %-14s", (long long)json_integer_value(json_object_get(e, "seq")), when,
           cli_str(e, "op"), cli_str(e, "actor"));
    if (*cli_str(e, "swarm"))
        printf(" swarm=%s", cli_str(e, "swarm"));
    if (*cli_str(e, "task"))
        printf(" task=%s", cli_str(e, "task"));
    if (*cli_str(e, "agent"))
        printf(" agent=%s", cli_str(e, "agent"));
    printf(" %.160s%s\n", ps ? ps : "", ps && strlen(ps) > 160 ? "..." : "");
    free(ps);
}

struct show_ctx {
    json_t *list;
};

static int show_row(void *ctx, const struct witness_entry *w)
{
    struct show_ctx *sc = ctx;
    struct buf b = BUF_INIT;
    witness_entry_json(&b, w, NULL);
    json_t *o = json_loadb(b.ptr, b.len, 0, NULL);
    json_array_append_new(sc->list, o ? o : json_null());
    buf_release(&b);
    return 0;
}

int cli_witness_show(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct wopts o = {.limit = 50};
    struct store_reader *rd = NULL;
    json_t *out = NULL;
    char *path = NULL;
    int rc;
    CLI_OPTIONS(c, argc, argv, witness_opts, WITNESS_CASES(c, o));
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    /* the latest N, printed oldest first; --from SEQ: N from there on */
    int newest = o.from == 0;
    if (o.db) {
        if ((rc = open_db(o.db, &rd)))
            goto out;
        struct witness_filter f = {.from = (uint64_t)o.from, .limit = (int)o.limit,
                                   .newest_first = newest, .task = o.task, .swarm = o.swarm,
                                   .agent = o.agent};
        struct show_ctx sc = {json_array()};
        struct s2_error err = S2_ERROR_INIT;
        if (store_reader_witness(rd, &f, show_row, &sc, &err) < 0) {
            json_decref(sc.list);
            rc = cli_fail(&err);
            s2_error_release(&err);
            goto out;
        }
        out = json_pack("{s:o}", "entries", sc.list);
    } else {
        struct buf q = BUF_INIT;
        buf_addf(&q, "/v1/witness?limit=%lld&order=%s", o.limit, newest ? "desc" : "asc");
        if (o.from)
            buf_addf(&q, "&from=%lld", o.from);
        const char *keys[] = {"task", "swarm", "agent"};
        const char *vals[] = {o.task, o.swarm, o.agent};
        for (int i = 0; i < 3; i++)
            if (vals[i]) {
                char *e = client_escape(vals[i]);
                buf_addf(&q, "&%s=%s", keys[i], e);
                free(e);
            }
        path = buf_detach(&q, NULL);
        if ((rc = cli_call(&c, "GET", path, NULL, &out, NULL)))
            goto out;
    }
    json_t *list = json_object_get(out, "entries");
    if (newest) { /* oldest first on screen */
        json_t *rev = json_array();
        for (size_t i = json_array_size(list); i-- > 0;)
            json_array_append(rev, json_array_get(list, i));
        json_object_set_new(out, "entries", rev);
        list = rev;
    }
    if (c.json) {
        cli_print_json(out);
    } else if (!json_array_size(list)) {
        printf("no witness entries match\n");
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) print_entry_line(e);
    }
    rc = EXIT_OK;
out:
    free(path);
    json_decref(out);
    store_reader_close(rd);
    cli_done(&c);
    return rc;
}

/* prove and consistency: fetch a bundle (offline or from the server), check it, print. */
static int bundle_cmd(struct cli *c, const struct wopts *o, json_t *bundle)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    const char *source = "";
    struct store_reader *rd = NULL;
    if (o->db && open_db(o->db, &rd) == 0) {
        int krc = resolve_key(c, o, rd, NULL, pk, &source);
        store_reader_close(rd);
        if (krc)
            return EXIT_FAIL;
    } else if (resolve_key(c, o, NULL, NULL, pk, &source)) {
        return EXIT_FAIL;
    }
    struct s2_error err = S2_ERROR_INIT;
    char *summary = NULL;
    int rc = witness_check_bundle(bundle, pk, &summary, &err);
    if (rc) {
        rc = cli_fail(&err);
    } else if (c->json) {
        cli_print_json(bundle);
    } else {
        printf("ok: %s\n  public key: %s\n", summary, source);
        printf("  (save it with --json and check it later with `s2 witness verify --proof FILE "
               "--key KEY`)\n");
    }
    free(summary);
    s2_error_release(&err);
    return rc;
}

static json_t *fetch_bundle(struct cli *c, const struct wopts *o, uint64_t a, uint64_t b,
                            int inclusion)
{
    json_t *out = NULL;
    if (o->db) {
        struct store_reader *rd = NULL;
        if (open_db(o->db, &rd))
            return NULL;
        struct s2_error err = S2_ERROR_INIT;
        out = inclusion ? witness_db_inclusion(rd, a, b, &err)
                        : witness_db_consistency(rd, a, b, &err);
        if (!out)
            cli_fail(&err);
        s2_error_release(&err);
        store_reader_close(rd);
        return out;
    }
    char *path = inclusion
                     ? xasprintf("/v1/witness/proof/inclusion?seq=%" PRIu64 "&size=%" PRIu64, a, b)
                     : xasprintf("/v1/witness/proof/consistency?old=%" PRIu64 "&new=%" PRIu64, a, b);
    if (cli_call(c, "GET", path, NULL, &out, NULL))
        out = NULL;
    free(path);
    return out;
}

int cli_witness_prove(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct wopts o = {0};
    json_t *b = NULL;
    int rc;
    long long seq;
    CLI_OPTIONS(c, argc, argv, witness_opts, WITNESS_CASES(c, o));
    if (argc - optind != 1) {
        rc = cli_usage(&c, "give one entry number (SEQ)");
        goto out;
    }
    if ((rc = cli_int(&c, "SEQ", argv[optind], 1, INT64_MAX, &seq)))
        goto out;
    b = fetch_bundle(&c, &o, (uint64_t)seq, (uint64_t)o.size, 1);
    rc = b ? bundle_cmd(&c, &o, b) : EXIT_FAIL;
out:
    json_decref(b);
    cli_done(&c);
    return rc;
}

int cli_witness_consistency(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    struct wopts o = {0};
    json_t *b = NULL;
    int rc;
    long long a, z;
    CLI_OPTIONS(c, argc, argv, witness_opts, WITNESS_CASES(c, o));
    if (argc - optind != 2) {
        rc = cli_usage(&c, "give two tree sizes: OLD NEW");
        goto out;
    }
    if ((rc = cli_int(&c, "OLD", argv[optind], 1, INT64_MAX, &a)) ||
        (rc = cli_int(&c, "NEW", argv[optind + 1], 1, INT64_MAX, &z)))
        goto out;
    b = fetch_bundle(&c, &o, (uint64_t)a, (uint64_t)z, 0);
    rc = b ? bundle_cmd(&c, &o, b) : EXIT_FAIL;
out:
    json_decref(b);
    cli_done(&c);
    return rc;
}
