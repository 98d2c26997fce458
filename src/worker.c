/* worker.c: the claim-run-report loop around the chassis (see worker.h), plus the pieces
 * it is made of: secrets, redaction, usage lines, contracts, result and reason.
 * Never let a secret value leave the worker unredacted, and never give a task a secret its
 * swarm's contract does not grant. */
#include "worker.h"
#include "client.h"
#include "gitws.h"
#include "json.h"
#include "model.h"
#include "netproxy.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/yamljson.h"
#include "web.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_OUTPUT (256 * 1024)
#define DEFAULT_TIMEOUT_S 3600
#define DEFAULT_MEMORY_MB 1024
#define DEFAULT_PIDS 256
#define DEFAULT_OPEN_FILES 1024
#define DEFAULT_FILE_SIZE_MB 1024
#define DEFAULT_CPU_PERCENT 100
#define STDERR_KEEP (64 * 1024)
#define CONTRACT_TTL_MS 10000
#define SECRETS_MAX_BYTES (1 << 20)

/* ==== secrets ==== */

static int env_name_ok(const char *n, size_t len)
{
    if (!len || len > 128 || !(isalpha((unsigned char)n[0]) || n[0] == '_'))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)n[i]) || n[i] == '_'))
            return 0;
    return 1;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

int worker_secrets_load(struct secrets *s, const char *path, struct s2_error *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return s2_fail(err, S2_EIO, "io", "secrets file '%s': %s", path, strerror(errno));
    struct stat st;
    char *text = NULL;
    int rc = 0;
    if (fstat(fd, &st)) {
        rc = s2_fail(err, S2_EIO, "io", "secrets file '%s': %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = s2_fail(err, S2_EINVAL, "usage", "secrets file '%s' is not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        rc = s2_fail(err, S2_EINVAL, "usage",
                     "secrets file '%s' has mode %04o: others may read it; `chmod 600 %s` first",
                     path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        rc = s2_fail(err, S2_EINVAL, "usage",
                     "secrets file '%s' belongs to uid %u, not to this user (uid %u)", path,
                     (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if (st.st_size > SECRETS_MAX_BYTES) {
        rc = s2_fail(err, S2_ETOOBIG, "usage", "secrets file '%s' is larger than 1 MiB", path);
        goto out;
    }
    text = xmalloc((size_t)st.st_size + 1);
    size_t len = 0;
    ssize_t r;
    while (len < (size_t)st.st_size && (r = read(fd, text + len, (size_t)st.st_size - len)) > 0)
        len += (size_t)r;
    text[len] = 0;
    size_t lineno = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != '#') {
            if (!strncmp(p, "export ", 7))
                p += 7;
            char *eq = strchr(p, '=');
            size_t nl2 = eq ? (size_t)(eq - p) : 0;
            while (nl2 && (p[nl2 - 1] == ' ' || p[nl2 - 1] == '\t'))
                nl2--;
            if (!eq || !env_name_ok(p, nl2)) {
                rc = s2_fail(err, S2_EINVAL, "usage",
                             "%s:%zu: expected NAME=VALUE with NAME made of letters, digits and _",
                             path, lineno);
                goto out;
            }
            char *name = xstrndup(p, nl2);
            if (!strncmp(name, "S2_", 3) || worker_secret_get(s, name)) {
                rc = s2_fail(err, S2_EINVAL, "usage", "%s:%zu: secret '%s' %s", path, lineno, name,
                             strncmp(name, "S2_", 3) ? "is defined twice"
                                                     : "uses the reserved prefix S2_");
                free(name);
                goto out;
            }
            char *v = eq + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = strlen(v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0])
                v++, vl -= 2;
            s->v = xgrow(s->v, sizeof *s->v, s->n + 1, &s->cap);
            s->v[s->n++] = (struct secret){name, xstrndup(v, vl)};
            if (vl && vl < 4)
                log_warn("secret '%s' is only %zu bytes: redacting it will also hide ordinary "
                         "text that happens to match",
                         name, vl);
        }
        line = nl ? nl + 1 : NULL;
    }
out:
    if (text) {
        explicit_bzero(text, (size_t)st.st_size);
        free(text);
    }
    close(fd);
    if (rc)
        worker_secrets_release(s);
    return rc;
}

const char *worker_secret_get(const struct secrets *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].name, name))
            return s->v[i].value;
    return NULL;
}

void worker_secrets_release(struct secrets *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        wipe_free(s->v[i].value);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ==== redaction ==== */

static void redactor_push(struct redactor *r, const char *name, const char *value)
{
    size_t len = strlen(value);
    if (!len)
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].len == len && !memcmp(r->v[i].value, value, len))
            return;
    r->v = xgrow(r->v, sizeof *r->v, r->n + 1, &r->cap);
    /* keep the longest first: a value that contains another is replaced whole */
    size_t at = r->n;
    while (at > 0 && r->v[at - 1].len < len)
        at--;
    memmove(r->v + at + 1, r->v + at, (r->n - at) * sizeof *r->v);
    r->v[at] = (struct redaction){xstrdup(name), xstrdup(value), len};
    r->n++;
    if (len > r->longest)
        r->longest = len;
}

void worker_redactor_add(struct redactor *r, const char *name, const char *value)
{
    if (!value || !*value)
        return;
    redactor_push(r, name, value);
    /* the same value as it appears inside a JSON string */
    json_t *s = json_string(value);
    char *enc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    json_decref(s);
    if (enc && strlen(enc) >= 2) {
        enc[strlen(enc) - 1] = 0;
        if (strcmp(enc + 1, value))
            redactor_push(r, name, enc + 1);
    }
    free(enc);
}

void worker_redact(const struct redactor *r, const char *text, size_t len, struct buf *out)
{
    if (!r || !r->n) {
        buf_add(out, text, len);
        return;
    }
    unsigned char first[256] = {0};
    for (size_t k = 0; k < r->n; k++)
        first[(unsigned char)r->v[k].value[0]] = 1;
    size_t copied = 0;
    for (size_t i = 0; i < len;) {
        if (!first[(unsigned char)text[i]]) {
            i++;
            continue;
        }
        size_t k = 0;
        for (; k < r->n; k++)
            if (r->v[k].len <= len - i && !memcmp(text + i, r->v[k].value, r->v[k].len))
                break;
        if (k == r->n) {
            i++;
            continue;
        }
        buf_add(out, text + copied, i - copied);
        buf_addf(out, "[REDACTED:%s]", r->v[k].name);
        i += r->v[k].len;
        copied = i;
    }
    buf_add(out, text + copied, len - copied);
}

char *worker_redact_str(const struct redactor *r, const char *s)
{
    struct buf b = BUF_INIT;
    buf_init(&b, 0);
    worker_redact(r, s, strlen(s), &b);
    return buf_detach(&b, NULL);
}

void worker_redactor_release(struct redactor *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].name);
        wipe_free(r->v[i].value);
    }
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* ==== usage lines ==== */

static struct usage_model *usage_slot(struct worker_usage *u, const char *model)
{
    for (size_t i = 0; i < u->n; i++)
        if (!strcmp(u->v[i].model, model))
            return &u->v[i];
    u->v = xgrow(u->v, sizeof *u->v, u->n + 1, &u->cap);
    struct usage_model *m = &u->v[u->n++];
    memset(m, 0, sizeof *m);
    m->model = xstrdup(model);
    return m;
}

int worker_usage_line(struct worker_usage *u, const char *line, size_t len, struct s2_error *err)
{
    static const char tag[] = "S2-USAGE:";
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (len - i < sizeof tag - 1 || memcmp(line + i, tag, sizeof tag - 1))
        return 0;
    u->lines++;
    i += sizeof tag - 1;
    json_t *o = json_parse_object(line + i, len - i, err);
    static const char *const fields[] = {"model", "tokens_in", "tokens_out", "usd", NULL};
    char *model = NULL;
    int64_t tin = 0, tout = 0;
    double usd = -1;
    int rc = 1;
    if (!o || json_only(o, fields, "S2-USAGE", err) ||
        json_str(o, "model", 0, &model, "S2-USAGE", err) ||
        json_int(o, "tokens_in", 0, 0, S2_TOKENS_MAX, &tin, "S2-USAGE", err) ||
        json_int(o, "tokens_out", 0, 0, S2_TOKENS_MAX, &tout, "S2-USAGE", err) ||
        json_num(o, "usd", 0, &usd, "S2-USAGE", err) ||
        (model && model_check_id(model, "S2-USAGE: field 'model'", err))) {
        rc = S2_EINVAL;
        goto out;
    }
    json_t *given = json_object_get(o, "usd");
    if (given && !json_is_null(given) && (usd < 0 || usd > S2_USD_MAX || !isfinite(usd))) {
        rc = s2_fail(err, S2_EINVAL, "invalid_field",
                     "S2-USAGE: field 'usd' must be from 0 to %.0f", S2_USD_MAX);
        goto out;
    }
    struct usage_model *m = usage_slot(u, model ? model : "");
    if (m->tokens_in + tin > S2_TOKENS_MAX || m->tokens_out + tout > S2_TOKENS_MAX) {
        rc = s2_fail(err, S2_EINVAL, "invalid_field", "S2-USAGE: token counts overflow");
        goto out;
    }
    m->tokens_in += tin;
    m->tokens_out += tout;
    if (given && !json_is_null(given)) {
        m->usd += usd;
        m->has_usd = 1;
    }
out:
    if (rc < 0)
        u->bad++;
    free(model);
    json_decref(o);
    return rc;
}

json_t *worker_usage_take(struct worker_usage *u)
{
    while (u->n) {
        struct usage_model m = u->v[--u->n];
        json_t *o = NULL;
        if (m.tokens_in || m.tokens_out || m.has_usd) {
            o = json_object();
            if (*m.model)
                json_object_set_new(o, "model", json_string(m.model));
            json_object_set_new(o, "tokens_in", json_integer(m.tokens_in));
            json_object_set_new(o, "tokens_out", json_integer(m.tokens_out));
            if (m.has_usd)
                json_object_set_new(o, "usd", json_real(m.usd));
        }
        free(m.model);
        if (o)
            return o;
    }
    return NULL;
}

void worker_usage_put_back(struct worker_usage *u, json_t *usage)
{
    if (!usage)
        return;
    const char *model = json_string_value(json_object_get(usage, "model"));
    struct usage_model *m = usage_slot(u, model ? model : "");
    m->tokens_in += json_integer_value(json_object_get(usage, "tokens_in"));
    m->tokens_out += json_integer_value(json_object_get(usage, "tokens_out"));
    json_t *usd = json_object_get(usage, "usd");
    if (usd) {
        m->usd += json_number_value(usd);
        m->has_usd = 1;
    }
}

void worker_usage_release(struct worker_usage *u)
{
    for (size_t i = 0; i < u->n; i++)
        free(u->v[i].model);
    free(u->v);
    memset(u, 0, sizeof *u);
}

/* ==== contracts ==== */

void worker_contract_init(struct worker_contract *c)
{
    memset(c, 0, sizeof *c);
    c->memory_mb = c->cpu_percent = c->timeout_s = c->pids = c->open_files = c->file_size_mb = -1;
}

void worker_contract_release(struct worker_contract *c)
{
    strvec_release(&c->secrets);
    strvec_release(&c->network);
    worker_contract_init(c);
}

int worker_contract_parse(json_t *j, struct worker_contract *c, struct s2_error *err)
{
    worker_contract_init(c);
    if (!json_is_object(j))
        return s2_fail(err, S2_EINVAL, "invalid_field", "a contract must be an object");
    const char *ctx = "contract";
    if (json_strlist(j, "secrets", 0, 256, &c->secrets, ctx, err) ||
        json_strlist(j, "network", 0, 256, &c->network, ctx, err))
        goto fail;
    for (size_t i = 0; i < c->secrets.n; i++)
        if (!env_name_ok(c->secrets.v[i], strlen(c->secrets.v[i])) ||
            !strncmp(c->secrets.v[i], "S2_", 3)) {
            s2_fail(err, S2_EINVAL, "invalid_field",
                    "contract: secrets[%zu] '%s' is not a variable name", i, c->secrets.v[i]);
            goto fail;
        }
    for (size_t i = 0; i < c->network.n; i++) {
        struct netproxy_grant g;
        if (netproxy_grant_parse(c->network.v[i], &g, err))
            goto fail;
        netproxy_grant_release(&g);
    }
    json_t *l = json_object_get(j, "limits");
    if (l && !json_is_null(l)) {
        if (!json_is_object(l)) {
            s2_fail(err, S2_EINVAL, "invalid_field", "contract: field 'limits' must be an object");
            goto fail;
        }
        const char *lc = "contract.limits";
        if (json_int(l, "max_memory_mb", 0, 1, 1 << 24, &c->memory_mb, lc, err) ||
            json_int(l, "max_cpu_percent", 0, 1, 100000, &c->cpu_percent, lc, err) ||
            json_int(l, "max_execution_time_seconds", 0, 1, 30LL * 24 * 3600, &c->timeout_s, lc,
                     err) ||
            json_int(l, "max_pids", 0, 1, 1 << 22, &c->pids, lc, err) ||
            json_int(l, "max_open_files", 0, 16, 1 << 20, &c->open_files, lc, err) ||
            json_int(l, "max_file_size_mb", 0, 1, 1 << 24, &c->file_size_mb, lc, err))
            goto fail;
    }
    c->present = 1;
    return 0;
fail:
    worker_contract_release(c);
    return S2_EINVAL;
}

static int64_t lim_min(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

void worker_contract_merge(struct worker_contract *out, const struct worker_contract *a,
                           const struct worker_contract *b)
{
    worker_contract_init(out);
    if (!a->present && !b->present)
        return;
    if (!a->present || !b->present) {
        const struct worker_contract *c = a->present ? a : b;
        strvec_copy(&out->secrets, &c->secrets);
        strvec_copy(&out->network, &c->network);
        *out = (struct worker_contract){
            1,       out->secrets,  out->network,   c->memory_mb, c->cpu_percent, c->timeout_s,
            c->pids, c->open_files, c->file_size_mb};
        return;
    }
    out->present = 1;
    for (size_t i = 0; i < a->secrets.n; i++)
        if (strvec_find(&b->secrets, a->secrets.v[i]) >= 0)
            strvec_push(&out->secrets, a->secrets.v[i]);
    for (size_t i = 0; i < a->network.n; i++)
        if (strvec_find(&b->network, a->network.v[i]) >= 0)
            strvec_push(&out->network, a->network.v[i]);
    out->memory_mb = lim_min(a->memory_mb, b->memory_mb);
    out->cpu_percent = lim_min(a->cpu_percent, b->cpu_percent);
    out->timeout_s = lim_min(a->timeout_s, b->timeout_s);
    out->pids = lim_min(a->pids, b->pids);
    out->open_files = lim_min(a->open_files, b->open_files);
    out->file_size_mb = lim_min(a->file_size_mb, b->file_size_mb);
}

static int add_contract(json_t *map, json_t *c, const char *path, size_t idx, struct s2_error *err)
{
    struct worker_contract wc;
    const char *swarm = json_string_value(json_object_get(c, "swarm"));
    if (!json_is_object(c) || !swarm || model_check_id(swarm, "field 'swarm'", NULL))
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "%s: contract %zu must be an object with a valid 'swarm'", path, idx + 1);
    if (worker_contract_parse(c, &wc, err)) {
        char *m = xasprintf("%s: swarm '%s': %s", path, swarm, err->msg);
        s2_fail(err, S2_EINVAL, "invalid_field", "%s", m);
        free(m);
        return S2_EINVAL;
    }
    worker_contract_release(&wc);
    if (json_object_get(map, swarm))
        return s2_fail(err, S2_EINVAL, "invalid_field", "%s: two contracts for swarm '%s'", path,
                       swarm);
    json_object_set(map, swarm, c);
    return 0;
}

json_t *worker_contracts_load(const char *path, struct s2_error *err)
{
    struct stat st;
    char *text = NULL;
    json_t *docs = NULL, *map = json_object();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st)) {
        s2_fail(err, S2_EIO, "io", "contract file '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
        s2_fail(err, S2_EINVAL, "usage", "contract file '%s' is not a regular file under 1 MiB",
                path);
        goto fail;
    }
    text = xmalloc((size_t)st.st_size + 1);
    ssize_t r = read(fd, text, (size_t)st.st_size);
    if (r != st.st_size) {
        s2_fail(err, S2_EIO, "io", "contract file '%s': short read", path);
        goto fail;
    }
    text[r] = 0;
    docs = yaml_load_documents(text, (size_t)r, path, err);
    if (!docs)
        goto fail;
    size_t idx = 0;
    for (size_t i = 0; i < json_array_size(docs); i++) {
        json_t *d = json_array_get(docs, i);
        json_t *list = json_is_array(d) ? d : json_object_get(d, "contracts");
        if (json_is_null(d))
            continue;
        if (list) {
            if (!json_is_array(list)) {
                s2_fail(err, S2_EINVAL, "invalid_field", "%s: 'contracts' must be a list", path);
                goto fail;
            }
            for (size_t k = 0; k < json_array_size(list); k++)
                if (add_contract(map, json_array_get(list, k), path, idx++, err))
                    goto fail;
        } else if (add_contract(map, d, path, idx++, err)) {
            goto fail;
        }
    }
    free(text);
    json_decref(docs);
    close(fd);
    return map;
fail:
    if (fd >= 0)
        close(fd);
    free(text);
    json_decref(docs);
    json_decref(map);
    return NULL;
}

/* ==== result and reason ==== */

/* Valid UTF-8 copy of s[0..len): bad bytes become U+FFFD; with no_ctl, control characters
 * other than \n and \t become '?'. s must be NUL-terminated at len or later. */
static void add_utf8(struct buf *b, const char *s, size_t len, int no_ctl)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (no_ctl && (c < 0x20 || c == 0x7f) && c != '\n' && c != '\t')
                buf_addch(b, '?');
            else if (!c)
                buf_adds(b, "\xef\xbf\xbd");
            else
                buf_addch(b, (char)c);
            i++;
            continue;
        }
        int n = model_utf8_len(s + i);
        if (n && (size_t)n <= len - i) {
            buf_add(b, s + i, (size_t)n);
            i += (size_t)n;
        } else {
            buf_adds(b, "\xef\xbf\xbd");
            i++;
        }
    }
}

/* Bytes of s that fit in max without cutting a UTF-8 character. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

void worker_capture(const struct redactor *r, const char *raw, size_t rawlen, size_t total,
                    size_t max, int *truncated, struct buf *out)
{
    size_t cut = rawlen < max ? rawlen : max;
    /* a secret that starts before the cut is kept whole, so that it is replaced whole */
    for (size_t i = 0; r && i < cut && i < rawlen; i++)
        for (size_t k = 0; k < r->n; k++)
            if (r->v[k].len <= rawlen - i && !memcmp(raw + i, r->v[k].value, r->v[k].len) &&
                i + r->v[k].len > cut)
                cut = i + r->v[k].len;
    *truncated = total > cut || rawlen > cut;
    worker_redact(r, raw, cut, out);
}

json_t *worker_result(const char *text, size_t len, int truncated, size_t total)
{
    if (total < len)
        total = len;
    if (!truncated) {
        json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (j) {
            char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
            size_t tl = t ? strlen(t) : 0;
            free(t);
            if (tl <= S2_RESULT_MAX)
                return j;
            json_decref(j);
        }
    }
    size_t keep = len;
    for (;;) {
        struct buf b = BUF_INIT;
        buf_init(&b, 0);
        add_utf8(&b, text, keep, 0);
        if (!truncated && b.len && b.ptr[b.len - 1] == '\n')
            b.ptr[--b.len] = 0; /* "ok\n" is the result "ok" */
        json_t *s = json_stringn(b.ptr, b.len);
        buf_release(&b);
        json_t *out = truncated ? json_pack("{s:o,s:b,s:I}", "output", s, "truncated", 1, "bytes",
                                            (json_int_t)total)
                                : s;
        char *t = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t tl = t ? strlen(t) : 0;
        free(t);
        if (tl <= S2_RESULT_MAX || !keep)
            return out;
        /* escaping made it bigger than the server takes: keep less */
        json_decref(out);
        size_t excess = tl - S2_RESULT_MAX;
        keep = utf8_cut(text, keep, keep > excess + 1024 ? keep - excess - 1024 : keep / 2);
        truncated = 1;
    }
}

char *worker_reason(const char *how, const char *tail, size_t len)
{
    struct buf b = BUF_INIT;
    buf_init(&b, 0);
    add_utf8(&b, how, strlen(how), 1);
    /* the last lines of stderr, usage lines left out, up to 20 lines and 3000 bytes */
    size_t starts[21], nl = 0, end = len;
    while (end && (tail[end - 1] == '\n' || tail[end - 1] == '\r'))
        end--;
    size_t pos = end, bytes = 0;
    while (pos > 0 && nl < 20) {
        size_t s = pos;
        while (s > 0 && tail[s - 1] != '\n')
            s--;
        size_t ll = pos - s;
        const char *l = tail + s;
        while (ll && (*l == ' ' || *l == '\t'))
            l++, ll--;
        int usage = ll >= 9 && !memcmp(l, "S2-USAGE:", 9);
        if (!usage) {
            if (bytes + (pos - s) > 3000)
                break;
            bytes += pos - s + 1;
            starts[nl++] = s;
        }
        pos = s ? s - 1 : 0;
        if (!s)
            break;
    }
    if (nl) {
        buf_adds(&b, "\n--- last lines of stderr ---");
        for (size_t i = nl; i-- > 0;) {
            size_t s = starts[i], e = s;
            while (e < end && tail[e] != '\n')
                e++;
            const char *l = tail + s;
            size_t ll = e - s;
            if (ll >= 9 && !memcmp(l, "S2-USAGE:", 9))
                continue;
            buf_addch(&b, '\n');
            add_utf8(&b, l, ll && l[ll - 1] == '\r' ? ll - 1 : ll, 1);
        }
    }
    size_t keep = utf8_cut(b.ptr, b.len, S2_TEXT_MAX);
    b.ptr[keep] = 0;
    b.len = keep;
    return buf_detach(&b, NULL);
}

/* ==== the loop ==== */

struct contract_entry {
    char *swarm;
    struct worker_contract c; /* what the server said (present 0: none) */
    int64_t fetched_ms;
    struct contract_entry *next;
};

struct worker {
    const struct worker_config *cfg;
    struct chassis *ch;
    struct secrets secrets;
    struct redactor red; /* every secret value (whoever it is granted to) */
    json_t *local;       /* swarm -> contract from --contract */
    char *workdir;
    int made_workdir;
    char *server;       /* resolved server URL */
    char *server_grant; /* "host:port" of the server, for tasks with a task token */
    pthread_mutex_t mu; /* contracts cache, output lines */
    struct contract_entry *contracts;
    atomic_long claimed; /* tasks claimed (reserved before each claim) */
    atomic_uint seq;
    atomic_int stopping;
    atomic_int fatal;
    atomic_int unreported;
    int stop_pipe[2], force_pipe[2];
    struct gitws *git; /* --repo */
    char *wasm_runner; /* --wasm: the module built into a program (host path) */
    char *wasm_name;   /* its argv[0]: the module's file name */
};

static struct worker *the_worker; /* for the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    struct worker *w = the_worker;
    if (!w)
        return;
    int e = errno;
    ssize_t r;
    if (!atomic_exchange(&w->stopping, 1))
        r = write(w->stop_pipe[1], "s", 1);
    else
        r = write(w->force_pipe[1], "f", 1);
    (void)r;
    errno = e;
}

/* Sleep up to ms, or less if the worker is stopping. */
static void nap(struct worker *w, int64_t ms)
{
    struct pollfd pf = {w->stop_pipe[0], POLLIN, 0};
    poll(&pf, 1, ms > 60000 ? 60000 : (int)ms);
}

static void request_stop(struct worker *w)
{
    if (!atomic_exchange(&w->stopping, 1)) {
        ssize_t r = write(w->stop_pipe[1], "s", 1);
        (void)r;
    }
}

/* The contract the server holds for swarm (cached briefly); c->present 0 when none. */
static void server_contract(struct worker *w, struct client *cl, const char *swarm,
                            struct worker_contract *out)
{
    int64_t now = clock_wall_ms();
    worker_contract_init(out);
    pthread_mutex_lock(&w->mu);
    for (struct contract_entry *e = w->contracts; e; e = e->next)
        if (!strcmp(e->swarm, swarm) && now - e->fetched_ms < CONTRACT_TTL_MS) {
            struct worker_contract none;
            worker_contract_init(&none);
            worker_contract_merge(out, &e->c, &none);
            pthread_mutex_unlock(&w->mu);
            return;
        }
    pthread_mutex_unlock(&w->mu);
    struct s2_error err = S2_ERROR_INIT;
    char *id = client_escape(swarm);
    char *path = xasprintf("/v1/swarms/%s/contract", id);
    json_t *reply = NULL;
    long status = 0;
    struct worker_contract got;
    worker_contract_init(&got);
    if (client_call(cl, "GET", path, NULL, &status, &reply, &err)) {
        if (err.kind != S2_ENOTFOUND)
            log_warn("swarm %s: cannot read its contract (%s): running with no grants and the "
                     "default limits",
                     swarm, err.msg);
    } else {
        json_t *c = json_object_get(reply, "contract");
        if (c && !json_is_null(c) && worker_contract_parse(c, &got, &err))
            log_warn("swarm %s: the server's contract is unusable (%s): running with no grants "
                     "and the default limits",
                     swarm, err.msg);
    }
    s2_error_release(&err);
    json_decref(reply);
    free(path);
    free(id);
    struct worker_contract none;
    worker_contract_init(&none);
    worker_contract_merge(out, &got, &none);
    pthread_mutex_lock(&w->mu);
    struct contract_entry **pp = &w->contracts;
    while (*pp && strcmp((*pp)->swarm, swarm))
        pp = &(*pp)->next;
    if (!*pp) {
        *pp = xcalloc(1, sizeof **pp);
        (*pp)->swarm = xstrdup(swarm);
    } else {
        worker_contract_release(&(*pp)->c);
    }
    (*pp)->c = got;
    (*pp)->fetched_ms = now;
    pthread_mutex_unlock(&w->mu);
}

static void effective_contract(struct worker *w, struct client *cl, const char *swarm,
                               struct worker_contract *out)
{
    struct worker_contract srv, loc;
    server_contract(w, cl, swarm, &srv);
    worker_contract_init(&loc);
    json_t *lc = w->local ? json_object_get(w->local, swarm) : NULL;
    struct s2_error err = S2_ERROR_INIT;
    if (lc && worker_contract_parse(lc, &loc, &err))
        log_error("contract for swarm %s: %s", swarm, err.msg); /* checked at load: unreachable */
    s2_error_release(&err);
    worker_contract_merge(out, &srv, &loc);
    worker_contract_release(&srv);
    worker_contract_release(&loc);
}

/* Limits: the contract's, else the default; a limit given on the command line caps both. */
static int64_t pick(int64_t contract, int64_t flag, int64_t dflt)
{
    int64_t v = contract > 0 ? contract : dflt;
    if (flag > 0 && (contract <= 0 || flag < v))
        v = flag;
    return v;
}

struct task_run {
    struct worker *w;
    struct client *cl;
    const char *id;
    char *lease;
    int64_t lease_ms;
    struct worker_usage usage;
    struct netproxy *proxy;
    int lost; /* the server said the lease is no longer ours */
    int hb_failures;
};

/* POST /v1/tasks/{id}/VERB with retries on transient errors. 0 ok, 1 lease lost (409/404),
 * <0 failed (err). */
static int report(struct task_run *t, const char *verb, json_t *body, json_t **reply,
                  struct s2_error *err)
{
    char *id = client_escape(t->id);
    char *path = xasprintf("/v1/tasks/%s/%s", id, verb);
    free(id);
    int rc = -1;
    for (int attempt = 0; attempt < 6; attempt++) {
        s2_error_release(err);
        long status = 0;
        if (!client_call(t->cl, "POST", path, body, &status, reply, err)) {
            rc = 0;
            break;
        }
        if (err->kind == S2_ECONFLICT || err->kind == S2_ENOTFOUND) {
            rc = 1;
            break;
        }
        if (err->kind != S2_EUNAVAIL && err->kind != S2_EINTERNAL && err->kind != S2_ERATE)
            break;
        if (!strcmp(verb, "heartbeat"))
            break; /* the next tick tries again */
        nap(t->w, 200LL << attempt);
    }
    free(path);
    return rc;
}

static int on_tick(void *ctx)
{
    struct task_run *t = ctx;
    struct s2_error err = S2_ERROR_INIT;
    json_t *usage = worker_usage_take(&t->usage);
    json_t *body = json_pack("{s:s}", "lease", t->lease);
    if (usage)
        json_object_set(body, "usage", usage);
    /* the run waits for this call: a slow server must not delay the timeout much */
    long saved = t->cl->timeout_ms;
    t->cl->timeout_ms =
        t->lease_ms / 3 < 10000 ? (t->lease_ms / 3 > 1000 ? t->lease_ms / 3 : 1000) : 10000;
    int rc = report(t, "heartbeat", body, NULL, &err);
    t->cl->timeout_ms = saved;
    json_decref(body);
    if (rc == 0) {
        t->hb_failures = 0;
        /* more models pending: they go with the next beats */
    } else if (rc == 1) {
        log_warn("task %s: the lease is gone (%s): stopping the command", t->id, err.msg);
        t->lost = 1;
    } else {
        worker_usage_put_back(&t->usage, usage);
        t->hb_failures++;
        log_warn("task %s: heartbeat failed (%s)", t->id, err.msg);
    }
    json_decref(usage);
    s2_error_release(&err);
    return t->lost;
}

static void on_stderr_line(void *ctx, const char *line, size_t len)
{
    struct task_run *t = ctx;
    struct s2_error err = S2_ERROR_INIT;
    int u = worker_usage_line(&t->usage, line, len, &err);
    if (u < 0) {
        char *m = worker_redact_str(&t->w->red, err.msg);
        log_warn("task %s: ignored a malformed usage line: %s", t->id, m);
        free(m);
    } else if (u == 0 && log_get_level() <= LOG_DEBUG) {
        struct buf b = BUF_INIT;
        buf_init(&b, 0);
        worker_redact(&t->w->red, line, len, &b);
        log_debug("task %s: stderr: %s", t->id, b.ptr);
        buf_release(&b);
    }
    s2_error_release(&err);
}

static void on_connection(void *ctx, int fd)
{
    struct task_run *t = ctx;
    if (t->proxy)
        netproxy_handle(t->proxy, fd);
    else
        close(fd);
}

static int write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    ssize_t wr = write(fd, text, n);
    int e = errno;
    close(fd);
    errno = e;
    return wr == (ssize_t)n ? 0 : -1;
}

/* The result file, if the command wrote one: read without following links (the command
 * could point it anywhere the worker may read). 1 read, 0 none, <0 unreadable. */
static int read_result_file(const char *path, size_t max, struct buf *out, size_t *total)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    *total = (size_t)st.st_size;
    char tmp[65536];
    ssize_t r;
    while (out->len < max && (r = read(fd, tmp, sizeof tmp)) > 0)
        buf_add(out, tmp, out->len + (size_t)r > max ? max - out->len : (size_t)r);
    close(fd);
    return 1;
}

static int oom_hint(const char *tail)
{
    static const char *const pats[] = {
        "memory exhausted", "Cannot allocate memory", "MemoryError", "out of memory",
        "std::bad_alloc",   "Out of memory",          NULL};
    for (const char *const *p = pats; *p; p++)
        if (strstr(tail, *p))
            return 1;
    return 0;
}

static void emit(struct worker *w, json_t *line)
{
    if (!w->cfg->json)
        return;
    char *s = json_dumps(line, JSON_COMPACT);
    pthread_mutex_lock(&w->mu);
    printf("%s\n", s);
    fflush(stdout);
    pthread_mutex_unlock(&w->mu);
    free(s);
}

static void sanitize_name(char *out, size_t outlen, const char *id)
{
    size_t i = 0;
    for (; id[i] && i + 1 < outlen && i < 64; i++) {
        unsigned char c = (unsigned char)id[i];
        out[i] = isalnum(c) || c == '-' || c == '_' || c == '.' ? (char)c : '_';
    }
    out[i] = 0;
}

/* --repo, after a successful run: make sure the lease is still ours, commit the worktree on
 * the task's branch and add {"git": {"branch", "commit", ...}} to the result (an object
 * result gets the field; any other is wrapped as {"output": RESULT, "git": ...}). 0 done;
 * 1 with *how NULL: the lease or the branch went to a newer attempt (report nothing); 1
 * with *how: the commit failed (report fail). */
static int commit_work(struct task_run *t, struct gitws_task *gt, json_t *task, long long attempt,
                       uint64_t witness_seq, json_t **result, json_t **git, char **how)
{
    struct s2_error err = S2_ERROR_INIT;
    json_t *hb = json_pack("{s:s}", "lease", t->lease);
    int rc = report(t, "heartbeat", hb, NULL, &err);
    json_decref(hb);
    if (rc == 1) {
        log_warn("task %s: the lease is gone (%s): its work is not committed", t->id, err.msg);
        s2_error_release(&err);
        return 1;
    }
    if (rc < 0)
        log_warn("task %s: cannot confirm the lease before the commit (%s); committing anyway",
                 t->id, err.msg);
    s2_error_release(&err);
    const struct worker_config *cfg = t->w->cfg;
    struct gitws_commit_info ci = {
        .agent = cfg->agent,
        .task = t->id,
        .swarm = json_string_value(json_object_get(task, "swarm")),
        .title = json_string_value(json_object_get(task, "title")),
        .attempt = (long)attempt,
        .witness_seq = witness_seq,
    };
    if (gitws_commit(t->w->git, gt, &ci, git, &err)) {
        json_decref(*result);
        *result = NULL;
        if (err.kind == S2_ECONFLICT) {
            log_warn("task %s: %s: its work is not committed", t->id, err.msg);
            s2_error_release(&err);
            return 1;
        }
        *how = xasprintf("the command succeeded but its work could not be committed: %s", err.msg);
        s2_error_release(&err);
        return 1;
    }
    log_info("task %s: committed %s on %s (%lld files changed)", t->id,
             json_string_value(json_object_get(*git, "commit")), gt->branch,
             (long long)json_integer_value(json_object_get(*git, "files_changed")));
    json_t *r = *result;
    if (json_is_object(r) && !json_object_get(r, "git")) {
        json_object_set(r, "git", *git);
    } else {
        *result = json_pack("{s:o,s:O}", "output", r, "git", *git);
        r = *result;
    }
    char *text = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (len > S2_RESULT_MAX) {
        /* the git fields pushed a result at the cap over it: they win */
        json_decref(*result);
        *result = json_pack("{s:{s:b,s:I},s:O}", "output", "truncated", 1, "bytes", (json_int_t)len,
                            "git", *git);
    }
    return 0;
}

/* Run one claimed task and report it. */
static void run_task(struct worker *w, struct client *cl, json_t *claim)
{
    const struct worker_config *cfg = w->cfg;
    json_t *task = json_object_get(claim, "task"), *lease = json_object_get(claim, "lease");
    const char *id = json_string_value(json_object_get(task, "id"));
    const char *swarm = json_string_value(json_object_get(task, "swarm"));
    const char *token = json_string_value(json_object_get(lease, "token"));
    /* a task-scoped credential: a separate token, or (as s2 mints them) the lease token
     * itself when the lease says it is scoped to the task */
    const char *task_token = json_string_value(json_object_get(claim, "task_token"));
    if (!task_token)
        task_token = json_string_value(json_object_get(lease, "task_token"));
    if (!task_token && json_is_string(json_object_get(lease, "scope")))
        task_token = token;
    if (!id || !swarm || !token) {
        log_error("the claim reply lacks the task id, swarm or lease token; ignoring it");
        atomic_fetch_add(&w->unreported, 1);
        return;
    }
    struct task_run t = {.w = w, .cl = cl, .id = id, .lease = xstrdup(token)};
    int64_t lease_ms = json_integer_value(json_object_get(task, "lease_ms"));
    int64_t expires = json_integer_value(json_object_get(lease, "expires_at"));
    if (lease_ms <= 0 && expires > 0)
        lease_ms = expires - clock_wall_ms();
    if (lease_ms <= 0)
        lease_ms = S2_DEFAULT_LEASE_MS;
    t.lease_ms = lease_ms;
    long long attempt = json_integer_value(json_object_get(task, "attempts"));
    long long phase = json_integer_value(json_object_get(task, "phase"));
    struct worker_contract con;
    effective_contract(w, cl, swarm, &con);
    struct s2_error err = S2_ERROR_INIT;
    struct strvec env = STRVEC_INIT;
    struct redactor red = REDACTOR_INIT; /* w->red plus this task's token */
    char name[80], sid[70];
    sanitize_name(sid, sizeof sid, id);
    snprintf(name, sizeof name, "%u-%s", atomic_fetch_add(&w->seq, 1), sid);
    char *dir = xasprintf("%s/%s", w->workdir, name);
    char *ws = xasprintf("%s/ws", dir), *task_file = xasprintf("%s/task.json", dir);
    char *result_file = xasprintf("%s/result", dir);
    int strict = cfg->mode == CHASSIS_STRICT;
    const char *inside = strict ? CHASSIS_TASK_ROOT : dir;
    char *task_text = json_dumps(task, JSON_COMPACT);
    char *how = NULL, *reason = NULL;
    json_t *result = NULL, *line = NULL;
    struct chassis_result res;
    chassis_result_init(&res);
    int64_t t0 = clock_mono_ns();
    const char *outcome = "fail";
    struct gitws_task gt = {0};
    json_t *git = NULL;
    struct strvec argv = STRVEC_INIT;
    uint64_t witness_seq = (uint64_t)json_integer_value(json_object_get(lease, "witness_seq"));

    for (size_t i = 0; i < w->red.n; i++)
        redactor_push(&red, w->red.v[i].name, w->red.v[i].value);
    if (task_token)
        worker_redactor_add(&red, "S2_TOKEN", task_token);

    if (mkdir(dir, 0755) || mkdir(ws, 0755) || write_text(task_file, task_text, 0644) ||
        write_text(result_file, "", 0644) || unlink(result_file)) {
        how = xasprintf("worker: cannot prepare the task directory '%s': %s", dir, strerror(errno));
        goto report;
    }
    if (strict && geteuid() == 0 &&
        (chown(dir, CHASSIS_ROOT_MAP_ID, CHASSIS_ROOT_MAP_ID) ||
         chown(ws, CHASSIS_ROOT_MAP_ID, CHASSIS_ROOT_MAP_ID))) {
        how = xasprintf("worker: cannot hand '%s' to the sandbox user: %s", dir, strerror(errno));
        goto report;
    }
    if (w->git) {
        char *base = gitws_task_base(task);
        int grc = gitws_prepare(w->git, id, (long)attempt, base, &gt, &err);
        free(base);
        if (grc) {
            how = xasprintf("worker: cannot make the task's worktree: %s", err.msg);
            s2_error_release(&err);
            goto report;
        }
        log_info("task %s: worktree %s on branch %s from %s (%.12s)", id, gt.path, gt.branch,
                 gt.base_ref, gt.base);
    }
    if (w->wasm_runner) {
        /* the module's program, linked into the task directory: read-only to the command
         * (it belongs to the worker), reachable inside at /s2/module */
        char *m = xasprintf("%s/module", dir);
        if (link(w->wasm_runner, m)) {
            how = xasprintf("worker: cannot link the module's program into '%s': %s", dir,
                            strerror(errno));
            free(m);
            goto report;
        }
        strvec_push_nodup(&argv, strict ? xstrdup(CHASSIS_TASK_ROOT "/module") : m);
        if (strict) {
            free(m);
            strvec_push(&argv, "--dir=/s2:" CHASSIS_TASK_ROOT);
            strvec_push(&argv, "--dir=.:" CHASSIS_TASK_ROOT "/ws");
            strvec_push(&argv, "--dir=/tmp:/tmp");
        } else {
            strvec_push_nodup(&argv, xasprintf("--dir=/s2:%s", dir));
            strvec_push_nodup(&argv, xasprintf("--dir=.:%s", gt.path ? gt.path : ws));
        }
        strvec_push(&argv, "--");
        strvec_push(&argv, w->wasm_name);
    }
    for (char **a = cfg->argv; a && *a; a++)
        strvec_push(&argv, *a);
    strvec_push_nodup(&argv, NULL);

    /* the environment: exactly this, nothing of the worker's own */
    const char *path_env = getenv("PATH");
    strvec_push_nodup(
        &env,
        xasprintf("PATH=%s", path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin"));
    /* with --repo the workspace is committed: a home there would be too */
    strvec_push_nodup(&env,
                      gt.path ? xasprintf("HOME=%s", inside) : xasprintf("HOME=%s/ws", inside));
    strvec_push(&env, "TMPDIR=/tmp");
    strvec_push(&env, "LANG=C.UTF-8");
    for (size_t i = 0; cfg->env && i < cfg->env->n; i++) {
        const char *e = cfg->env->v[i];
        if (strchr(e, '='))
            strvec_push(&env, e);
        else if (getenv(e))
            strvec_push_nodup(&env, xasprintf("%s=%s", e, getenv(e)));
    }
    strvec_push_nodup(&env, xasprintf("S2_TASK_ID=%s", id));
    strvec_push_nodup(&env, xasprintf("S2_SWARM=%s", swarm));
    strvec_push_nodup(&env, xasprintf("S2_PHASE=%lld", phase));
    strvec_push_nodup(&env, xasprintf("S2_ATTEMPT=%lld", attempt));
    strvec_push_nodup(&env, xasprintf("S2_AGENT=%s", cfg->agent));
    strvec_push_nodup(&env, xasprintf("S2_SERVER=%s", w->server));
    strvec_push_nodup(&env, xasprintf("S2_LEASE=%s", token));
    if (task_token)
        strvec_push_nodup(&env, xasprintf("S2_TOKEN=%s", task_token));
    strvec_push_nodup(&env, xasprintf("S2_TASK_FILE=%s/task.json", inside));
    strvec_push_nodup(&env, xasprintf("S2_RESULT_FILE=%s/result", inside));
    if (gt.path && !strict)
        strvec_push_nodup(&env, xasprintf("S2_WORKSPACE=%s", gt.path));
    else
        strvec_push_nodup(&env, xasprintf("S2_WORKSPACE=%s/ws", inside));
    if (gt.branch) {
        strvec_push_nodup(&env, xasprintf("S2_GIT_BRANCH=%s", gt.branch));
        strvec_push_nodup(&env, xasprintf("S2_GIT_BASE=%s", gt.base));
        /* git inside: the worktree's records in the git directory belong to the worker, not
         * to the sandbox user, which git calls dubious ownership; this checkout is the
         * task's own (command-line scope, which git honours for safe.directory) */
        strvec_push(&env, "GIT_CONFIG_COUNT=1");
        strvec_push(&env, "GIT_CONFIG_KEY_0=safe.directory");
        strvec_push_nodup(&env, strict ? xstrdup("GIT_CONFIG_VALUE_0=" CHASSIS_TASK_ROOT "/ws")
                                       : xasprintf("GIT_CONFIG_VALUE_0=%s", gt.path));
    }
    /* the network: the contract's endpoints, and the server itself for a task token */
    if (strict && (con.network.n || (task_token && w->server_grant))) {
        t.proxy = netproxy_new(id);
        for (size_t i = 0; i < con.network.n; i++)
            if (netproxy_allow(t.proxy, con.network.v[i], &err)) {
                log_warn("task %s: %s", id, err.msg);
                s2_error_release(&err);
            }
        if (task_token && w->server_grant && netproxy_allow(t.proxy, w->server_grant, &err)) {
            log_warn("task %s: %s", id, err.msg);
            s2_error_release(&err);
        }
        static const char *const vars[] = {"http_proxy",  "https_proxy", "HTTP_PROXY",
                                           "HTTPS_PROXY", "ALL_PROXY",   "all_proxy"};
        for (size_t i = 0; i < 6; i++)
            strvec_push_nodup(&env,
                              xasprintf("%s=http://127.0.0.1:%d", vars[i], CHASSIS_PROXY_PORT));
        strvec_push_nodup(&env, xasprintf("S2_PROXY=http://127.0.0.1:%d", CHASSIS_PROXY_PORT));
    }
    /* secrets: the names the contract grants, and only those */
    for (size_t i = 0; i < con.secrets.n; i++) {
        const char *v = worker_secret_get(&w->secrets, con.secrets.v[i]);
        if (v)
            strvec_push_nodup(&env, xasprintf("%s=%s", con.secrets.v[i], v));
        else
            log_warn("task %s: secret '%s' granted by swarm %s's contract is not in the secrets "
                     "file",
                     id, con.secrets.v[i], swarm);
    }
    strvec_push_nodup(&env, NULL);

    int64_t timeout_s = pick(con.timeout_s, cfg->timeout_s, DEFAULT_TIMEOUT_S);
    int64_t cpu = pick(con.cpu_percent, cfg->cpu_percent, DEFAULT_CPU_PERCENT);
    size_t max_out = cfg->max_output ? cfg->max_output : DEFAULT_MAX_OUTPUT;
    const char *ro[2] = {w->git ? gitws_gitdir(w->git) : NULL, NULL};
    const char *masked[2] = {w->git ? gitws_dir(w->git) : NULL, NULL};
    struct chassis_spec spec = {
        .argv = argv.v,
        .exec_inside = w->wasm_runner && strict ? CHASSIS_TASK_ROOT "/module" : NULL,
        .envp = env.v,
        .task_dir = dir,
        .stdin_path = task_file,
        .workspace = gt.path,
        .ro_paths = w->git ? ro : NULL,
        .masked = w->git ? masked : NULL,
        .limits = {.memory_bytes = pick(con.memory_mb, cfg->memory_mb, DEFAULT_MEMORY_MB) << 20,
                   .cpu_percent = (int)cpu,
                   .cpu_seconds = (timeout_s * cpu + 99) / 100,
                   .pids = (int)pick(con.pids, cfg->pids, DEFAULT_PIDS),
                   .open_files = (int)pick(con.open_files, cfg->open_files, DEFAULT_OPEN_FILES),
                   .file_size_bytes =
                       pick(con.file_size_mb, cfg->file_size_mb, DEFAULT_FILE_SIZE_MB) << 20},
        .timeout_ms = timeout_s * 1000,
        .kill_grace_ms = 2000,
        .proxy = t.proxy != NULL,
        /* room past the cap so that a secret cut by it is still seen whole */
        .stdout_max = max_out + red.longest + 1,
        .stderr_keep = STDERR_KEEP,
        .stop_fd = w->stop_pipe[0],
        .stop_grace_ms = cfg->grace_ms,
        .force_fd = w->force_pipe[0],
        .tick_ms = (int)(lease_ms / 3 > 50 ? lease_ms / 3 : 50),
        .on_tick = on_tick,
        .on_connection = on_connection,
        .on_stderr_line = on_stderr_line,
        .ctx = &t,
    };
    spec.limits.tmp_bytes = spec.limits.memory_bytes;
    log_info("task %s (swarm %s, attempt %lld): running%s%s", id, swarm, attempt,
             con.present ? " under its contract" : "", t.proxy ? " with network grants" : "");
    if (chassis_run(w->ch, &spec, &res, &err)) {
        how = xasprintf("worker: cannot run the command: %s", err.msg);
        s2_error_release(&err);
        goto report;
    }
    for (size_t i = 0; i < res.notes.n; i++)
        log_warn("task %s: %s", id, res.notes.v[i]);
    if (t.lost) {
        outcome = "lost";
        goto done;
    }
    struct buf tail = BUF_INIT;
    buf_init(&tail, 0);
    worker_redact(&red, res.err.ptr, res.err.len, &tail);
    if (res.end == CHASSIS_EXITED && res.exit_code == 0) {
        struct buf text = BUF_INIT, raw = BUF_INIT;
        buf_init(&text, 0);
        buf_init(&raw, 0);
        size_t total = 0;
        int rf = read_result_file(result_file, max_out + red.longest + 1, &raw, &total);
        if (rf < 0) {
            how = xasprintf("the command exited 0 but its result file is unusable: %s",
                            strerror(errno));
        } else {
            if (rf == 0) {
                buf_add(&raw, res.out.ptr, res.out.len);
                total = res.out_total;
            }
            int cut = 0;
            worker_capture(&red, raw.ptr, raw.len, total, max_out, &cut, &text);
            result = worker_result(text.ptr, text.len, cut, total);
            /* a result is reported redacted even where a secret hid inside JSON escapes */
            char *rt = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
            char *rr = worker_redact_str(&red, rt);
            if (strcmp(rt, rr)) {
                json_t *again = json_loads(rr, JSON_DECODE_ANY, NULL);
                json_decref(result);
                result = again ? again : json_string(rr);
            }
            free(rt);
            free(rr);
            outcome = "done";
            if (w->git && commit_work(&t, &gt, task, attempt, witness_seq, &result, &git, &how))
                outcome = how ? "fail" : "lost";
        }
        buf_release(&text);
        buf_release(&raw);
    } else {
        char *d = chassis_describe_end(&res, &spec);
        int rl_mem = !(res.cgroup && strstr(chassis_mechanism(w->ch, "memory"), "cgroup"));
        if ((res.end == CHASSIS_EXITED || res.end == CHASSIS_SIGNALED) && rl_mem &&
            oom_hint(tail.ptr))
            how = xasprintf("oom: out of memory (limit %lld MiB, %s); %s",
                            (long long)(spec.limits.memory_bytes >> 20),
                            chassis_mechanism(w->ch, "memory"), d);
        else if (res.oom)
            how = xasprintf("oom: %s", d);
        else
            how = xstrdup(d);
        free(d);
    }
    if (!result && strcmp(outcome, "lost")) {
        reason = worker_reason(how, tail.ptr, tail.len);
        char *r2 = worker_redact_str(&red, reason);
        free(reason);
        reason = r2;
    }
    buf_release(&tail);
    if (!strcmp(outcome, "lost"))
        goto done; /* a newer attempt has the task: nothing to report */

report:
    if (!strcmp(outcome, "fail") && !reason)
        reason = worker_reason(how ? how : "failed", "", 0);
    {
        /* usage of other models goes with heartbeats first; the last with the report */
        json_t *usage = worker_usage_take(&t.usage);
        while (usage && t.usage.n) {
            json_t *hb = json_pack("{s:s,s:O}", "lease", t.lease, "usage", usage);
            if (report(&t, "heartbeat", hb, NULL, &err))
                log_warn("task %s: could not report usage: %s", id, err.msg);
            s2_error_release(&err);
            json_decref(hb);
            json_decref(usage);
            usage = worker_usage_take(&t.usage);
        }
        json_t *body = json_pack("{s:s}", "lease", t.lease);
        if (usage)
            json_object_set_new(body, "usage", usage);
        if (result)
            json_object_set(body, "result", result);
        if (reason)
            json_object_set_new(body, "reason", json_string(reason));
        json_t *reply = NULL;
        int rc = report(&t, result ? "done" : "fail", body, &reply, &err);
        json_decref(body);
        if (rc == 1) {
            outcome = "lost";
            log_warn("task %s: not reported, the lease is gone: %s", id, err.msg);
        } else if (rc < 0) {
            outcome = "unreported";
            atomic_fetch_add(&w->unreported, 1);
            log_error("task %s: cannot report %s: %s", id, result ? "done" : "fail", err.msg);
        }
        json_decref(reply);
        s2_error_release(&err);
    }
done:
    if (gt.path) {
        if (!strcmp(outcome, "done"))
            gitws_remove(w->git, &gt);
        else
            gitws_keep(w->git, &gt);
    }
    double ms = (double)(clock_mono_ns() - t0) / 1e6;
    if (!strcmp(outcome, "done"))
        log_info("task %s: done in %.0f ms", id, ms);
    else {
        /* one log line: the reason's lines joined */
        char *flat = xstrdup(reason ? reason : how ? how : "lease lost");
        for (char *p = flat; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        log_info("task %s: %s in %.0f ms: %s", id, outcome, ms, flat);
        free(flat);
    }
    line = json_pack("{s:s,s:s,s:I,s:s,s:f,s:f}", "task", id, "swarm", swarm, "attempt",
                     (json_int_t)attempt, "outcome", outcome, "ms", ms, "start_ms",
                     (double)res.start_ns / 1e6);
    if (reason)
        json_object_set_new(line, "reason", json_string(reason));
    if (res.end == CHASSIS_EXITED && res.started)
        json_object_set_new(line, "exit_code", json_integer(res.exit_code));
    if (git)
        json_object_set(line, "git", git);
    else if (gt.path)
        json_object_set_new(line, "worktree", json_string(gt.path));
    if (t.proxy) {
        unsigned served, refused;
        netproxy_counts(t.proxy, &served, &refused);
        json_object_set_new(line, "proxy",
                            json_pack("{s:i,s:i}", "served", served, "refused", refused));
    }
    emit(w, line);
    json_decref(line);
    netproxy_free(t.proxy);
    chassis_result_release(&res);
    if (!cfg->keep) {
        int dfd = open(w->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fs_rm_rf_at(dfd, name);
            close(dfd);
        }
    }
    free(dir);
    free(ws);
    free(task_file);
    free(result_file);
    free(task_text);
    free(how);
    free(reason);
    json_decref(result);
    json_decref(git);
    gitws_task_release(&gt);
    strvec_release(&argv);
    for (size_t i = 0; i < env.n; i++) /* granted secrets are among them */
        if (env.v[i])
            explicit_bzero(env.v[i], strlen(env.v[i]));
    strvec_release(&env);
    worker_redactor_release(&red);
    worker_usage_release(&t.usage);
    worker_contract_release(&con);
    free(t.lease);
}

static int fatal_claim_error(const struct s2_error *err)
{
    return err->kind == S2_EUNAUTH || err->kind == S2_EFORBIDDEN || err->kind == S2_ENOTFOUND ||
           err->kind == S2_EINVAL;
}

static void *slot_main(void *arg)
{
    struct worker *w = arg;
    const struct worker_config *cfg = w->cfg;
    struct client cl;
    struct s2_error err = S2_ERROR_INIT;
    if (client_init(&cl, w->server, NULL, &err)) {
        log_error("worker: %s", err.msg);
        atomic_store(&w->fatal, 1);
        request_stop(w);
        s2_error_release(&err);
        return NULL;
    }
    int64_t idle_since = clock_mono_ns(), backoff = 500;
    int wait_s = cfg->wait_s > 0 ? cfg->wait_s : 30;
    while (!atomic_load(&w->stopping)) {
        long n = atomic_fetch_add(&w->claimed, 1);
        if (cfg->max_tasks && n >= cfg->max_tasks) {
            atomic_fetch_sub(&w->claimed, 1);
            break;
        }
        int64_t wait_ms = (int64_t)wait_s * 1000;
        if (cfg->idle_exit_ms) {
            int64_t left = cfg->idle_exit_ms - (clock_mono_ns() - idle_since) / 1000000;
            if (left <= 0) {
                atomic_fetch_sub(&w->claimed, 1);
                log_info("worker: no task for %.0f s: slot done", (double)cfg->idle_exit_ms / 1000);
                break;
            }
            if (left < wait_ms)
                wait_ms = left;
        }
        json_t *body = json_pack("{s:s,s:I}", "agent", cfg->agent, "wait_ms", (json_int_t)wait_ms);
        json_t *reply = NULL;
        long status = 0;
        cl.timeout_ms = wait_ms + 30000;
        cl.cancel = &w->stopping;
        int rc = client_call(&cl, "POST", "/v1/claim", body, &status, &reply, &err);
        cl.cancel = NULL;
        cl.timeout_ms = 30000;
        json_decref(body);
        if (rc) {
            atomic_fetch_sub(&w->claimed, 1);
            if (atomic_load(&w->stopping)) {
                s2_error_release(&err);
                break;
            }
            if (fatal_claim_error(&err)) {
                log_error("worker: the server refused the claim: %s", err.msg);
                atomic_store(&w->fatal, 1);
                request_stop(w);
                s2_error_release(&err);
                break;
            }
            log_warn("worker: claim failed (%s); retrying in %.1f s", err.msg,
                     (double)backoff / 1000);
            s2_error_release(&err);
            nap(w, backoff);
            backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
            continue;
        }
        backoff = 500;
        if (status == 204 || !json_object_get(reply, "task")) {
            atomic_fetch_sub(&w->claimed, 1);
            json_decref(reply);
            continue;
        }
        run_task(w, &cl, reply);
        json_decref(reply);
        idle_since = clock_mono_ns();
    }
    client_release(&cl);
    return NULL;
}

/* "host:port" of a server URL, for the proxy grant that lets a task call back. */
static char *server_hostport(const char *url)
{
    int https = !strncmp(url, "https://", 8);
    const char *h = url + (https ? 8 : 7);
    size_t n = strcspn(h, "/?#");
    char *hp = xstrndup(h, n);
    const char *rb = hp[0] == '[' ? strchr(hp, ']') : NULL;
    const char *colon = rb ? strchr(rb, ':') : strrchr(hp, ':');
    if (!colon) {
        char *r = xasprintf("%s:%d", hp, https ? 443 : 80);
        free(hp);
        return r;
    }
    return hp;
}

/* Default work directories of workers that died without cleaning up (kill -9): named
 * s2-worker-PID after a process that no longer exists. */
static void reap_stale_workdirs(const char *parent)
{
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = pfd >= 0 ? fdopendir(pfd) : NULL;
    if (!d) {
        if (pfd >= 0)
            close(pfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (strncmp(n, "s2-worker-", 10) || n[10] < '1' || n[10] > '9')
            continue;
        char *end;
        long pid = strtol(n + 10, &end, 10);
        struct stat st;
        if (*end || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH ||
            fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode) ||
            st.st_uid != geteuid())
            continue;
        log_info("worker: removing %s/%s, left by a worker that is gone", parent, n);
        fs_rm_rf_at(dirfd(d), n);
    }
    closedir(d);
}

static int copy_file(const char *from, const char *to, mode_t mode, size_t max,
                     struct s2_error *err)
{
    int in = open(from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), out = -1, rc = 0;
    struct stat st;
    if (in < 0 || fstat(in, &st)) {
        rc = s2_fail(err, S2_EIO, "io", "cannot read '%s': %s", from, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        rc = s2_fail(err, S2_EINVAL, "io", "'%s' is not a regular file of at most %zu bytes", from,
                     max);
        goto out;
    }
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    if (out < 0) {
        rc = s2_fail(err, S2_EIO, "io", "cannot create '%s': %s", to, strerror(errno));
        goto out;
    }
    char b[65536];
    ssize_t r;
    while ((r = read(in, b, sizeof b)) > 0)
        if (write(out, b, (size_t)r) != r) {
            rc = s2_fail(err, S2_EIO, "io", "cannot write '%s': %s", to, strerror(errno));
            goto out;
        }
    if (r < 0)
        rc = s2_fail(err, S2_EIO, "io", "cannot read '%s': %s", from, strerror(errno));
out:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) && !rc)
        rc = s2_fail(err, S2_EIO, "io", "cannot write '%s': %s", to, strerror(errno));
    return rc;
}

/* --wasm: translate the module with wasm2c and compile it with the WASI host (src/wasm/)
 * into one program, once per worker, inside the sandbox (the module and the toolchain get
 * no more than a task would). The program is kept as <workdir>/wasm-module, owned by the
 * worker, and linked into each task's directory. */
static int wasm_build(struct worker *w, struct s2_error *err)
{
    const struct worker_config *cfg = w->cfg;
    int strict = cfg->mode == CHASSIS_STRICT, rc = 0;
    char *bdir = xasprintf("%s/wasm-build", w->workdir), *ws = xasprintf("%s/ws", bdir);
    char *mod = xasprintf("%s/module.wasm", ws), *host = xasprintf("%s/wasi_host.c", ws);
    char *built = xasprintf("%s/module", ws), *prog = xasprintf("%s/wasm-module", w->workdir);
    struct chassis_result res;
    chassis_result_init(&res);
    int fd = open(cfg->wasm, O_RDONLY | O_CLOEXEC);
    char magic[4] = {0};
    if (fd < 0 || read(fd, magic, 4) != 4 || memcmp(magic, "\0asm", 4)) {
        rc = s2_fail(err, S2_EINVAL, "usage", "--wasm '%s' is not a WebAssembly module: %s",
                     cfg->wasm, fd < 0 ? strerror(errno) : "no \\0asm header");
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    fs_rm_rf(bdir);
    if (mkdir(bdir, 0755) || mkdir(ws, 0755)) {
        rc = s2_fail(err, S2_EIO, "io", "cannot create '%s': %s", ws, strerror(errno));
        goto out;
    }
    if ((rc = copy_file(cfg->wasm, mod, 0644, (size_t)1 << 30, err)))
        goto out;
    if (wasm_assets_count < 1 || write_text(host, (const char *)wasm_assets[0].data, 0644)) {
        rc = s2_fail(err, S2_EIO, "io", "cannot write '%s': %s", host, strerror(errno));
        goto out;
    }
    if (strict && geteuid() == 0 && fs_chown_tree(bdir, CHASSIS_ROOT_MAP_ID, CHASSIS_ROOT_MAP_ID)) {
        rc = s2_fail(err, S2_EIO, "io", "cannot hand '%s' to the sandbox user: %s", bdir,
                     strerror(errno));
        goto out;
    }
    const char *cc = getenv("CC");
    if (!cc || !*cc || strpbrk(cc, "'\"$`\\;&|<> \t"))
        cc = "cc";
    /* the toolchain is not part of s2's own dependencies: say which packages bring it */
    {
        const char *path_env = getenv("PATH");
        char *pe = xasprintf("PATH=%s", path_env && *path_env ? path_env : "/usr/bin:/bin");
        char *penv[] = {pe, NULL};
        static const char *const need[][2] = {{"wasm2c", "wabt"}, {NULL, "gcc"}};
        for (size_t i = 0; i < 2 && !rc; i++) {
            const char *tool = need[i][0] ? need[i][0] : cc;
            struct s2_error e2 = S2_ERROR_INIT;
            char *found = chassis_find_command(tool, penv, &e2);
            if (!found)
                rc = s2_fail(err, S2_EINVAL, "wasm",
                             "--wasm needs '%s' (Debian package %s) to build the module: %s", tool,
                             need[i][1], e2.msg);
            free(found);
            s2_error_release(&e2);
        }
        free(pe);
        if (rc)
            goto out;
    }
    char *script = xasprintf(
        "wasm2c -n s2m module.wasm -o s2m.c && "
        /* a module that imports nothing from WASI is instantiated without the host */
        "if grep -q 'struct Z_wasi_snapshot_preview1_instance_t' s2m.h; then w=1; else w=0; fi && "
        "if grep -q 'Z_s2mZ_memory(' s2m.h; then m=1; else m=0; fi && "
        "%s -O1 -w -DS2M_IMPORTS_WASI=$w -DS2M_EXPORTS_MEMORY=$m -I. -I/usr/share/wabt/wasm2c "
        "s2m.c wasi_host.c "
        "-o module -lwasm-rt-impl -lm",
        cc);
    char *argv[] = {"sh", "-c", script, NULL};
    const char *path_env = getenv("PATH");
    char *pe =
        xasprintf("PATH=%s", path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
    char *home = xasprintf("HOME=%s", strict ? CHASSIS_TASK_ROOT "/ws" : ws);
    char *envp[] = {pe, home, "TMPDIR=/tmp", "LANG=C.UTF-8", NULL};
    struct chassis_spec spec = {
        .argv = argv,
        .envp = envp,
        .task_dir = bdir,
        .limits = {.memory_bytes = 4096LL << 20,
                   .cpu_percent = 100,
                   .cpu_seconds = 600,
                   .pids = 256,
                   .open_files = 1024,
                   .file_size_bytes = 1LL << 30,
                   .tmp_bytes = 1LL << 30},
        .timeout_ms = 600000,
        .stdout_max = 4096,
        .stderr_keep = 4096,
        .stop_fd = -1,
        .force_fd = -1,
    };
    int64_t t0 = clock_mono_ns();
    log_info("worker: building %s with wasm2c and %s (in the sandbox)", cfg->wasm, cc);
    rc = chassis_run(w->ch, &spec, &res, err);
    free(script);
    free(pe);
    free(home);
    if (rc)
        goto out;
    if (res.end != CHASSIS_EXITED || res.exit_code) {
        char *d = chassis_describe_end(&res, &spec);
        rc = s2_fail(err, S2_EINVAL, "wasm",
                     "cannot build '%s' (wasm2c and a C compiler are needed: Debian's wabt "
                     "and gcc): %s: %.*s",
                     cfg->wasm, d, (int)res.err.len, res.err.ptr ? res.err.ptr : "");
        free(d);
        goto out;
    }
    if ((rc = copy_file(built, prog, 0755, (size_t)1 << 31, err)))
        goto out;
    w->wasm_runner = realpath(prog, NULL);
    const char *base = strrchr(cfg->wasm, '/');
    w->wasm_name = xstrdup(base ? base + 1 : cfg->wasm);
    log_info("worker: %s built in %.0f ms", cfg->wasm, (double)(clock_mono_ns() - t0) / 1e6);
out:
    chassis_result_release(&res);
    fs_rm_rf(bdir);
    free(bdir);
    free(ws);
    free(mod);
    free(host);
    free(built);
    free(prog);
    return rc;
}

int worker_main(const struct worker_config *cfg)
{
    struct worker w = {.cfg = cfg, .stop_pipe = {-1, -1}, .force_pipe = {-1, -1}};
    struct s2_error err = S2_ERROR_INIT;
    int code = 1;
    pthread_t *th = NULL;
    int nth = 0;
    struct strvec hide = STRVEC_INIT;
    pthread_mutex_init(&w.mu, NULL);
    const char *server = cfg->server ? cfg->server : getenv("S2_SERVER");
    w.server = xstrdup(server && *server ? server : S2_DEFAULT_SERVER);
    if (strncmp(w.server, "http://", 7) && strncmp(w.server, "https://", 8)) {
        log_error("worker: server '%s' must start with http:// or https://", w.server);
        goto out;
    }
    w.server_grant = server_hostport(w.server);
    if (cfg->secrets_file) {
        if (worker_secrets_load(&w.secrets, cfg->secrets_file, &err)) {
            log_error("worker: %s", err.msg);
            goto out;
        }
        for (size_t i = 0; i < w.secrets.n; i++)
            worker_redactor_add(&w.red, w.secrets.v[i].name, w.secrets.v[i].value);
        strvec_push(&hide, cfg->secrets_file);
    }
    if (cfg->contract_file) {
        w.local = worker_contracts_load(cfg->contract_file, &err);
        if (!w.local) {
            log_error("worker: %s", err.msg);
            goto out;
        }
        strvec_push(&hide, cfg->contract_file);
    }
    if (cfg->workdir) {
        if (mkdir(cfg->workdir, 0711) && errno != EEXIST) {
            log_error("worker: cannot create the work directory '%s': %s", cfg->workdir,
                      strerror(errno));
            goto out;
        }
        w.workdir = realpath(cfg->workdir, NULL);
    } else {
        const char *tmp = getenv("TMPDIR");
        reap_stale_workdirs(tmp && *tmp ? tmp : "/tmp");
        char *d = xasprintf("%s/s2-worker-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
        if (mkdir(d, 0711) && errno != EEXIST) {
            log_error("worker: cannot create the work directory '%s': %s", d, strerror(errno));
            free(d);
            goto out;
        }
        w.made_workdir = 1;
        w.workdir = realpath(d, NULL);
        free(d);
    }
    if (!w.workdir) {
        log_error("worker: work directory: %s", strerror(errno));
        goto out;
    }
    for (size_t i = 0; cfg->hide && i < cfg->hide->n; i++)
        strvec_push(&hide, cfg->hide->v[i]);
    if (cfg->repo) {
        int to_nobody = cfg->mode == CHASSIS_STRICT && geteuid() == 0;
        struct gitws_config gc = {.repo = cfg->repo,
                                  .base = cfg->base,
                                  .dir = cfg->worktrees,
                                  .keep_failed = cfg->keep_failed,
                                  .owner = to_nobody ? CHASSIS_ROOT_MAP_ID : (uid_t)-1,
                                  .group = to_nobody ? CHASSIS_ROOT_MAP_ID : (gid_t)-1};
        if (gitws_open(&w.git, &gc, &err)) {
            log_error("worker: %s", err.msg);
            goto out;
        }
        size_t wl = strlen(w.workdir);
        const char *gd = gitws_gitdir(w.git);
        if (!strncmp(gd, w.workdir, wl) && (gd[wl] == '/' || !gd[wl])) {
            log_error("worker: the repository '%s' is inside the work directory '%s', which "
                      "tasks do not see: choose another --workdir",
                      gd, w.workdir);
            goto out;
        }
        /* other tasks' worktrees stay out of view */
        strvec_push(&hide, gitws_dir(w.git));
        log_info("worker: workspaces are worktrees of %s (from %s), kept under %s (%d failed "
                 "kept)",
                 gd, cfg->base ? cfg->base : "HEAD", gitws_dir(w.git), cfg->keep_failed);
    }
    struct chassis_config cc = {
        .mode = cfg->mode, .workdir = w.workdir, .hide = &hide, .expose = cfg->expose};
    if (chassis_new(&w.ch, &cc, &err)) {
        log_error("worker: %s", err.msg);
        goto out;
    }
    if (cfg->wasm && wasm_build(&w, &err)) {
        log_error("worker: %s", err.msg);
        goto out;
    }
    /* the command must exist before we take tasks for it */
    if (!cfg->wasm) {
        char **env = NULL;
        char *pe = getenv("PATH") ? xasprintf("PATH=%s", getenv("PATH")) : NULL;
        char *e2[2] = {pe, NULL};
        env = e2;
        char *found = chassis_find_command(cfg->argv[0], env, &err);
        free(pe);
        if (!found || chassis_command_visible(w.ch, found, &err)) {
            log_error("worker: %s", err.msg);
            free(found);
            goto out;
        }
        free(found);
    }
    if (pipe2(w.stop_pipe, O_CLOEXEC | O_NONBLOCK) || pipe2(w.force_pipe, O_CLOEXEC | O_NONBLOCK)) {
        log_error("worker: pipe: %s", strerror(errno));
        goto out;
    }
    the_worker = &w;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_info("worker: agent %s, %d slot%s, sandbox %s, limits: memory by %s, pids by %s, cpu by "
             "%s; tasks under %s",
             cfg->agent, cfg->concurrency, cfg->concurrency == 1 ? "" : "s",
             cfg->mode == CHASSIS_STRICT ? "strict" : "none", chassis_mechanism(w.ch, "memory"),
             chassis_mechanism(w.ch, "pids"), chassis_mechanism(w.ch, "cpu"), w.workdir);
    th = xcalloc((size_t)cfg->concurrency, sizeof *th);
    for (; nth < cfg->concurrency; nth++)
        if (pthread_create(&th[nth], NULL, slot_main, &w)) {
            log_error("worker: cannot start a thread: %s", strerror(errno));
            atomic_store(&w.fatal, 1);
            request_stop(&w);
            break;
        }
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    code = atomic_load(&w.fatal) || atomic_load(&w.unreported) ? 1 : 0;
    log_info("worker: stopped after %ld task%s", atomic_load(&w.claimed),
             atomic_load(&w.claimed) == 1 ? "" : "s");
out:
    the_worker = NULL;
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    free(th);
    chassis_free(w.ch);
    gitws_free(w.git);
    if (w.wasm_runner && unlink(w.wasm_runner) && errno != ENOENT)
        log_warn("worker: cannot remove '%s': %s", w.wasm_runner, strerror(errno));
    free(w.wasm_runner);
    free(w.wasm_name);
    if (w.made_workdir && w.workdir && rmdir(w.workdir) && errno != ENOENT)
        log_warn("worker: cannot remove '%s': %s", w.workdir, strerror(errno));
    for (int i = 0; i < 2; i++) {
        if (w.stop_pipe[i] >= 0)
            close(w.stop_pipe[i]);
        if (w.force_pipe[i] >= 0)
            close(w.force_pipe[i]);
    }
    while (w.contracts) {
        struct contract_entry *e = w.contracts;
        w.contracts = e->next;
        free(e->swarm);
        worker_contract_release(&e->c);
        free(e);
    }
    json_decref(w.local);
    worker_secrets_release(&w.secrets);
    worker_redactor_release(&w.red);
    strvec_release(&hide);
    pthread_mutex_destroy(&w.mu);
    free(w.workdir);
    free(w.server);
    free(w.server_grant);
    s2_error_release(&err);
    return code;
}
