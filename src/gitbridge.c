/* gitbridge.c: instruction files in, STATUS.md out, hooks (libgit2, libyaml). It must never
 * touch a working tree or an index, never overwrite a task that changed, and never let one
 * malformed file keep the others out. */
#include "gitbridge.h"
#include "api.h"
#include "json.h"
#include "model.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define YAML_NODES_MAX 100000 /* nodes converted from one front matter (aliases included) */
#define YAML_DEPTH_MAX 32
#define INSTR_DIR "instructions"
#define HOOK_MARK "# s2-hook"

static pthread_once_t git_once = PTHREAD_ONCE_INIT;

static void git_init_once(void)
{
    git_libgit2_init();
}

static void git_ready(void)
{
    pthread_once(&git_once, git_init_once);
}

static int git_fail(struct s2_error *err, const char *what, ...)
    __attribute__((format(printf, 2, 3)));
static int git_fail(struct s2_error *err, const char *what, ...)
{
    const git_error *ge = git_error_last();
    char *w;
    va_list ap;
    va_start(ap, what);
    w = xvasprintf(what, ap);
    va_end(ap);
    s2_fail(err, S2_EINVAL, "git", "%s: %s", w, ge && ge->message ? ge->message : "git error");
    free(w);
    return S2_EINVAL;
}

/* Open the repository at or above path. from_env: honour GIT_DIR, GIT_INDEX_FILE, ... as
 * git does inside a hook. */
static int open_repo(git_repository **repo, const char *path, struct s2_error *err)
{
    git_ready();
    unsigned flags = 0;
    if (!path) {
        flags = GIT_REPOSITORY_OPEN_FROM_ENV;
        path = NULL;
    }
    if (git_repository_open_ext(repo, path, flags, NULL))
        return git_fail(err, "cannot open a git repository at '%s'", path ? path : ".");
    return 0;
}

int gitbridge_check_repository(const char *path, struct s2_error *err)
{
    git_ready();
    git_repository *repo = NULL;
    /* exactly there: a server must not wander up into whatever repository holds the path */
    if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL))
        return git_fail(err, "'%s' is not a git repository (its top directory or git directory)",
                        path);
    git_repository_free(repo);
    return 0;
}

/* ---- the record of what was read ---- */

void gitbridge_instructions_release(struct gb_instructions *in)
{
    for (size_t i = 0; i < in->nfiles; i++) {
        free(in->files[i].path);
        free(in->files[i].swarm);
    }
    for (size_t i = 0; i < in->ntasks; i++) {
        json_decref(in->tasks[i].spec);
        json_decref(in->tasks[i].lines);
    }
    for (size_t i = 0; i < in->nproblems; i++)
        free(in->problems[i].msg);
    free(in->files);
    free(in->tasks);
    free(in->problems);
    free(in->repo);
    free(in->ref);
    free(in->commit);
    memset(in, 0, sizeof *in);
}

static void problem(struct gb_instructions *in, size_t file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void problem(struct gb_instructions *in, size_t file, int line, const char *fmt, ...)
{
    in->problems = xgrow(in->problems, sizeof *in->problems, in->nproblems + 1, &in->capproblems);
    struct gb_problem *p = &in->problems[in->nproblems++];
    va_list ap;
    va_start(ap, fmt);
    p->msg = xvasprintf(fmt, ap);
    va_end(ap);
    p->file = file;
    p->line = line;
    in->files[file].bad = 1;
}

int gitbridge_parse_name(const char *base, char **swarm, int64_t *phase)
{
    static const char pre[] = "INSTRUCTIONS-", mid[] = "-PHASE-", suf[] = ".md";
    size_t n = strlen(base);
    if (n < sizeof pre - 1 + sizeof mid - 1 + sizeof suf - 1 + 2 || strncmp(base, pre, sizeof pre - 1) ||
        strcmp(base + n - (sizeof suf - 1), suf))
        return -1;
    const char *m = NULL;
    for (const char *p = base + sizeof pre - 1; (p = strstr(p, mid)); p++)
        m = p;
    if (!m || m == base + sizeof pre - 1)
        return -1;
    const char *d = m + sizeof mid - 1, *end = base + n - (sizeof suf - 1);
    if (d == end || end - d > 7)
        return -1;
    int64_t v = 0;
    for (const char *p = d; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > S2_PHASE_MAX)
        return -1;
    *swarm = xstrndup(base + sizeof pre - 1, (size_t)(m - (base + sizeof pre - 1)));
    *phase = v;
    return 0;
}

/* ---- YAML front matter ---- */

static const char *const task_fields[] = {
    "id", "title", "body", "requires", "min_tier", "priority", "depends_on", "paths",
    "max_attempts", "lease_ms", "retry_backoff_ms", "approval", "phase_barrier",
    "estimate_h", "estimate_usd", "max_cost", NULL};
static const char *const top_fields[] = {"swarm", "phase", "defaults", "tasks", NULL};

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static const char *suggest(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t bd = 3;
    for (const char *const *k = known; *k; k++) {
        size_t d = edit_distance(key, *k);
        if (d < bd) {
            bd = d;
            best = *k;
        }
    }
    return best;
}

static int known(const char *key, const char *const *list)
{
    for (const char *const *k = list; *k; k++)
        if (!strcmp(*k, key))
            return 1;
    return 0;
}

struct yconv {
    struct gb_instructions *in;
    size_t file;
    yaml_document_t *doc;
    int line0;    /* file line of the front matter's first line, minus one */
    size_t nodes; /* converted so far */
    int failed;
};

static int yline(const struct yconv *y, const yaml_node_t *n)
{
    return (int)n->start_mark.line + y->line0 + 1;
}

/* A plain scalar the way YAML 1.2's core schema reads it; quoted ones are strings. */
static json_t *scalar_json(struct yconv *y, const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (memchr(s, 0, len)) {
        problem(y->in, y->file, yline(y, n), "a value holds a NUL character");
        y->failed = 1;
        return NULL;
    }
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(s, len);
    if (!len || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return json_false();
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o') && p == s) {
        base = p[1] == 'x' ? 16 : 8;
        p += 2;
    }
    int digits = 0, isint = *p != 0;
    for (const char *q = p; *q; q++) {
        int ok = base == 16 ? isxdigit((unsigned char)*q) : base == 8 ? (*q >= '0' && *q <= '7')
                                                                   : isdigit((unsigned char)*q);
        if (!ok) {
            isint = 0;
            break;
        }
        digits++;
    }
    if (isint && digits) {
        errno = 0;
        char *end;
        long long v = strtoll(base == 10 ? s : p, &end, base);
        if (errno || *end) {
            problem(y->in, y->file, yline(y, n), "number '%.40s' is out of range", s);
            y->failed = 1;
            return NULL;
        }
        return json_integer(v);
    }
    /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    p = s + (*s == '-' || *s == '+');
    int mant = 0;
    while (isdigit((unsigned char)*p))
        p++, mant++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, mant++;
    }
    if (mant && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        int ed = 0;
        while (isdigit((unsigned char)*p))
            p++, ed++;
        if (!ed)
            mant = 0;
    }
    if (mant && !*p) {
        double v = strtod(s, NULL);
        if (!isfinite(v)) {
            problem(y->in, y->file, yline(y, n), "number '%.40s' is out of range", s);
            y->failed = 1;
            return NULL;
        }
        return json_real(v);
    }
    if (!strcmp(s, ".inf") || !strcmp(s, "-.inf") || !strcmp(s, ".nan") || !strcmp(s, ".NaN")) {
        problem(y->in, y->file, yline(y, n), "'%s' is not a finite number", s);
        y->failed = 1;
        return NULL;
    }
    return json_stringn(s, len);
}

static json_t *node_json(struct yconv *y, yaml_node_t *n, int depth)
{
    if (!n || y->failed)
        return NULL;
    if (++y->nodes > YAML_NODES_MAX || depth > YAML_DEPTH_MAX) {
        problem(y->in, y->file, yline(y, n), "the front matter is too large or too deeply nested");
        y->failed = 1;
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return scalar_json(y, n);
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            json_t *v = node_json(y, yaml_document_get_node(y->doc, *it), depth + 1);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *k = yaml_document_get_node(y->doc, pr->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                problem(y->in, y->file, k ? yline(y, k) : yline(y, n), "a key must be plain text");
                y->failed = 1;
                json_decref(o);
                return NULL;
            }
            const char *key = (const char *)k->data.scalar.value;
            if (json_object_get(o, key)) {
                problem(y->in, y->file, yline(y, k), "key '%.60s' appears twice", key);
                y->failed = 1;
                json_decref(o);
                return NULL;
            }
            json_t *v = node_json(y, yaml_document_get_node(y->doc, pr->value), depth + 1);
            if (!v) {
                json_decref(o);
                return NULL;
            }
            json_object_set_new(o, key, v);
        }
        return o;
    }
    default:
        problem(y->in, y->file, yline(y, n), "empty YAML node");
        y->failed = 1;
        return NULL;
    }
}

/* The value node of key in mapping n, or NULL; *kline gets the key's line. */
static yaml_node_t *map_get_node(struct yconv *y, yaml_node_t *n, const char *key, int *kline)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, pr->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key)) {
            if (kline)
                *kline = yline(y, k);
            return yaml_document_get_node(y->doc, pr->value);
        }
    }
    return NULL;
}

/* Check the keys of mapping n against the known ones; a problem for each stranger. */
static int check_keys(struct yconv *y, yaml_node_t *n, const char *const *list, const char *what)
{
    int bad = 0;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, pr->key);
        if (!k || k->type != YAML_SCALAR_NODE)
            continue; /* node_json reports it */
        const char *key = (const char *)k->data.scalar.value;
        if (known(key, list))
            continue;
        const char *s = suggest(key, list);
        if (!strcmp(key, "swarm") || !strcmp(key, "phase"))
            problem(y->in, y->file, yline(y, k),
                    "%s: field '%s' is set by the file name (INSTRUCTIONS-<swarm>-PHASE-<n>.md)",
                    what, key);
        else if (s)
            problem(y->in, y->file, yline(y, k), "%s: unknown field '%.60s' (did you mean '%s'?)",
                    what, key, s);
        else
            problem(y->in, y->file, yline(y, k), "%s: unknown field '%.60s'", what, key);
        bad = 1;
    }
    return bad;
}

/* The line an error message is about: the line of the field it names, else the task's. */
static int line_of_message(const char *msg, json_t *lines, int dflt)
{
    const char *f = strstr(msg, "field '");
    if (!f) {
        /* "depends_on names unknown task 'x'": a field named as a word */
        const char *key;
        json_t *l;
        json_object_foreach(lines, key, l) {
            size_t kl = strlen(key);
            if (!strchr(key, '_') && strcmp(key, "requires") && strcmp(key, "paths") &&
                strcmp(key, "approval"))
                continue;
            for (const char *p = strstr(msg, key); p; p = strstr(p + 1, key))
                if ((p == msg || p[-1] == ' ' || p[-1] == '\'') &&
                    (p[kl] == ' ' || p[kl] == '\'' || p[kl] == ':' || !p[kl]))
                    return (int)json_integer_value(l);
        }
        return dflt;
    }
    f += 7;
    const char *e = strchr(f, '\'');
    if (!e || e - f > 64)
        return dflt;
    char name[72];
    memcpy(name, f, (size_t)(e - f));
    name[e - f] = 0;
    char *br = strchr(name, '[');
    if (br)
        *br = 0;
    if (!strncmp(name, "usage.", 6))
        return dflt;
    json_t *l = json_object_get(lines, name);
    return json_is_integer(l) ? (int)json_integer_value(l) : dflt;
}

/* ---- markdown bodies ---- */

struct section {
    const char *id; /* borrowed from the task's spec */
    int line;
    struct buf body;
    int level;
};

/* An ATX heading: its level (1..6) and text (trimmed), or 0. */
static int heading(const char *l, size_t n, const char **text, size_t *tlen)
{
    size_t i = 0;
    while (i < n && i < 3 && l[i] == ' ')
        i++;
    size_t h = 0;
    while (i + h < n && l[i + h] == '#')
        h++;
    if (h < 1 || h > 6 || (i + h < n && l[i + h] != ' ' && l[i + h] != '\t'))
        return 0;
    const char *t = l + i + h;
    size_t tl = n - i - h;
    while (tl && (*t == ' ' || *t == '\t'))
        t++, tl--;
    while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t' || t[tl - 1] == '\r'))
        tl--;
    while (tl && t[tl - 1] == '#') /* closing sequence */
        tl--;
    while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
        tl--;
    *text = t;
    *tlen = tl;
    return (int)h;
}

static int fence(const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && i < 3 && l[i] == ' ')
        i++;
    return n - i >= 3 && ((l[i] == '`' && l[i + 1] == '`' && l[i + 2] == '`') ||
                          (l[i] == '~' && l[i + 1] == '~' && l[i + 2] == '~'));
}

static void body_finish(struct section *s, json_t *spec)
{
    /* trim blank lines at both ends */
    char *p = s->body.ptr;
    size_t n = s->body.len;
    while (n && (*p == '\n' || *p == ' ' || *p == '\t')) {
        /* drop a leading line only when it is blank as a whole */
        char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) + 1 : n;
        int blank = 1;
        for (size_t i = 0; i + 1 < k || (i < k && !nl); i++)
            if (p[i] != ' ' && p[i] != '\t')
                blank = 0;
        if (!blank)
            break;
        p += k, n -= k;
    }
    while (n && (p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    json_object_set_new(spec, "body", json_stringn(p, n));
}

/* ---- one file ---- */

static size_t add_file(struct gb_instructions *in, const char *path)
{
    in->files = xgrow(in->files, sizeof *in->files, in->nfiles + 1, &in->capfiles);
    struct gb_file *f = &in->files[in->nfiles];
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    f->first = in->ntasks;
    return in->nfiles++;
}

/* The next line of text[*pos..len): its start and length without the newline. */
static int next_line(const char *text, size_t len, size_t *pos, const char **l, size_t *ln)
{
    if (*pos >= len)
        return 0;
    const char *s = text + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *l = s;
    *ln = n && s[n - 1] == '\r' ? n - 1 : n;
    *pos += n + (nl ? 1 : 0);
    return 1;
}

static int is_fence_line(const char *l, size_t n, int closing)
{
    if (n == 3 && !memcmp(l, "---", 3))
        return 1;
    return closing && n == 3 && !memcmp(l, "...", 3);
}

static void parse_tasks(struct gb_instructions *in, size_t fi, struct yconv *y, yaml_node_t *root);

size_t gitbridge_parse(struct gb_instructions *into, const char *path, const char *text,
                       size_t len)
{
    struct gb_instructions *in = into;
    size_t before = in->nproblems;
    size_t fi = add_file(in, path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (gitbridge_parse_name(base, &in->files[fi].swarm, &in->files[fi].phase)) {
        problem(in, fi, 0, "the name must be INSTRUCTIONS-<swarm>-PHASE-<n>.md");
        return in->nproblems - before;
    }
    struct s2_error err = S2_ERROR_INIT;
    if (model_check_id(in->files[fi].swarm, "the swarm in the file name", &err)) {
        problem(in, fi, 0, "%s", err.msg);
        s2_error_release(&err);
        return in->nproblems - before;
    }
    if (len > GB_FILE_MAX) {
        problem(in, fi, 0, "the file is larger than %d bytes", GB_FILE_MAX);
        return in->nproblems - before;
    }
    /* text, UTF-8, no NUL: report the first bad line */
    int line = 1;
    for (size_t i = 0; i < len;) {
        if (text[i] == '\n') {
            line++, i++;
            continue;
        }
        int l = text[i] ? model_utf8_len(text + i) : 0;
        if (l <= 0 || i + (size_t)l > len) {
            problem(in, fi, line, "the file is not UTF-8 text (byte 0x%02x)", (unsigned char)text[i]);
            return in->nproblems - before;
        }
        i += (size_t)l;
    }
    /* the front matter: "---" on line 1 to the next "---" (or "...") line */
    size_t pos = 0, fm_start = 0, fm_end = 0, body_pos = 0;
    const char *l;
    size_t ln;
    line = 0;
    int closed = 0, body_line = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        pos = 3; /* a byte order mark */
    if (!next_line(text, len, &pos, &l, &ln) || !is_fence_line(l, ln, 0)) {
        problem(in, fi, 1,
                "an instruction file starts with its tasks as YAML front matter ('---' on line 1)");
        return in->nproblems - before;
    }
    line = 1;
    fm_start = pos;
    while (next_line(text, len, &pos, &l, &ln)) {
        line++;
        if (is_fence_line(l, ln, 1)) {
            fm_end = (size_t)(l - text);
            body_pos = pos;
            body_line = line;
            closed = 1;
            break;
        }
    }
    if (!closed) {
        problem(in, fi, 1, "the front matter opened on line 1 is never closed with '---'");
        return in->nproblems - before;
    }

    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text + fm_start, fm_end - fm_start);
    if (!yaml_parser_load(&parser, &doc)) {
        /* the construct the problem was found in starts at the context mark: point there */
        int pl = (int)parser.problem_mark.line + 2, cl = (int)parser.context_mark.line + 2;
        if (parser.context && cl < pl)
            problem(in, fi, cl, "YAML: %s started here: %s (line %d)", parser.context,
                    parser.problem ? parser.problem : "cannot parse", pl);
        else
            problem(in, fi, pl, "YAML: %s%s%s", parser.problem ? parser.problem : "cannot parse",
                    parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return in->nproblems - before;
    }
    struct yconv y = {in, fi, &doc, 1, 0, 0};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        problem(in, fi, 2, "the front matter must be a mapping with a 'tasks' list");
    } else {
        parse_tasks(in, fi, &y, root);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (in->files[fi].bad)
        return in->nproblems - before;

    /* bodies: "## <task id>" sections of the markdown after the front matter */
    struct gb_file *f = &in->files[fi];
    size_t ns = f->n;
    struct section *secs = xcalloc(ns ? ns : 1, sizeof *secs);
    for (size_t k = 0; k < ns; k++) {
        secs[k].id = json_string_value(json_object_get(in->tasks[f->first + k].spec, "id"));
        buf_init(&secs[k].body, S2_BODY_MAX);
    }
    struct section *cur = NULL;
    int in_fence = 0;
    line = body_line;
    pos = body_pos;
    while (next_line(text, len, &pos, &l, &ln)) {
        line++;
        if (fence(l, ln))
            in_fence = !in_fence;
        const char *t;
        size_t tl;
        int h = in_fence ? 0 : heading(l, ln, &t, &tl);
        if (h) {
            /* "## <id>", "## <id> title" or "## <id>: title"; the longest id wins */
            struct section *hit = NULL;
            size_t hitlen = 0;
            for (size_t k = 0; k < ns; k++) {
                size_t w = strlen(secs[k].id);
                if (w > tl || memcmp(secs[k].id, t, w) || w <= hitlen)
                    continue;
                if (w == tl || t[w] == ' ' || t[w] == '\t' ||
                    (t[w] == ':' && (w + 1 == tl || t[w + 1] == ' ' || t[w + 1] == '\t'))) {
                    hit = &secs[k];
                    hitlen = w;
                }
            }
            if (hit || (cur && h <= cur->level))
                cur = NULL;
            if (hit) {
                if (hit->line) {
                    problem(in, fi, line, "task '%s' has a second section (the first is on line %d)",
                            hit->id, hit->line);
                    continue;
                }
                hit->line = line;
                hit->level = h;
                cur = hit;
                continue;
            }
        }
        if (cur && (buf_add(&cur->body, l, ln) || buf_addch(&cur->body, '\n'))) {
            problem(in, fi, cur->line, "the body of task '%s' is larger than %d bytes", cur->id,
                    S2_BODY_MAX);
            cur = NULL;
        }
    }
    for (size_t k = 0; k < ns; k++) {
        struct gb_task *t = &in->tasks[f->first + k];
        if (secs[k].line) {
            if (json_object_get(t->spec, "body")) {
                problem(in, fi, secs[k].line,
                        "task '%s' has a body both in its front matter (line %d) and here",
                        secs[k].id,
                        (int)json_integer_value(json_object_get(t->lines, "body")));
            } else {
                body_finish(&secs[k], t->spec);
                json_object_set_new(t->lines, "body", json_integer(secs[k].line));
            }
        }
        buf_release(&secs[k].body);
    }
    free(secs);
    if (f->bad)
        return in->nproblems - before;

    /* every task as the server will check it */
    for (size_t k = 0; k < f->n; k++) {
        struct gb_task *t = &in->tasks[f->first + k];
        struct task_spec sp;
        task_spec_init(&sp);
        if (api_parse_task(t->spec, &sp, NULL, "", &err)) {
            const char *id = json_string_value(json_object_get(t->spec, "id"));
            problem(in, fi, line_of_message(err.msg, t->lines, t->line), "task '%s': %s",
                    id ? id : "?", err.msg);
            s2_error_release(&err);
        }
        task_spec_release(&sp);
    }
    return in->nproblems - before;
}

static void parse_tasks(struct gb_instructions *in, size_t fi, struct yconv *y, yaml_node_t *root)
{
    struct gb_file *f = &in->files[fi];
    if (check_keys(y, root, top_fields, "front matter"))
        return;
    int kl = 2;
    yaml_node_t *sw = map_get_node(y, root, "swarm", &kl);
    if (sw) {
        json_t *v = node_json(y, sw, 0);
        if (v && (!json_is_string(v) || strcmp(json_string_value(v), f->swarm)))
            problem(in, fi, kl, "field 'swarm' says '%.60s' but the file name says '%s'",
                    json_is_string(v) ? json_string_value(v) : "(not text)", f->swarm);
        json_decref(v);
    }
    yaml_node_t *ph = map_get_node(y, root, "phase", &kl);
    if (ph) {
        json_t *v = node_json(y, ph, 0);
        if (v && (!json_is_integer(v) || json_integer_value(v) != f->phase))
            problem(in, fi, kl, "field 'phase' disagrees with the file name (phase %lld)",
                    (long long)f->phase);
        json_decref(v);
    }
    json_t *defaults = NULL, *dlines = json_object();
    yaml_node_t *dn = map_get_node(y, root, "defaults", &kl);
    if (dn) {
        if (dn->type != YAML_MAPPING_NODE) {
            problem(in, fi, kl, "field 'defaults' must be a mapping of task fields");
        } else if (!check_keys(y, dn, task_fields, "defaults")) {
            defaults = node_json(y, dn, 0);
            for (yaml_node_pair_t *pr = dn->data.mapping.pairs.start;
                 pr < dn->data.mapping.pairs.top; pr++) {
                yaml_node_t *k = yaml_document_get_node(y->doc, pr->key);
                if (k && k->type == YAML_SCALAR_NODE)
                    json_object_set_new(dlines, (const char *)k->data.scalar.value,
                                        json_integer(yline(y, k)));
            }
            if (json_object_get(defaults, "id") || json_object_get(defaults, "title") ||
                json_object_get(defaults, "body"))
                problem(in, fi, kl, "field 'defaults' cannot give an id, title or body");
        }
    }
    yaml_node_t *tn = map_get_node(y, root, "tasks", &kl);
    if (!tn) {
        problem(in, fi, 2, "the front matter has no 'tasks' list");
    } else if (tn->type != YAML_SEQUENCE_NODE) {
        problem(in, fi, kl, "field 'tasks' must be a list of tasks");
    } else if (tn->data.sequence.items.top == tn->data.sequence.items.start) {
        problem(in, fi, kl, "field 'tasks' is empty");
    } else if (tn->data.sequence.items.top - tn->data.sequence.items.start > S2_BATCH_MAX) {
        problem(in, fi, kl, "a file holds at most %d tasks", S2_BATCH_MAX);
    }
    if (f->bad || !tn) {
        json_decref(defaults);
        json_decref(dlines);
        return;
    }
    int idx = 0;
    for (yaml_node_item_t *it = tn->data.sequence.items.start; it < tn->data.sequence.items.top;
         it++, idx++) {
        yaml_node_t *n = yaml_document_get_node(y->doc, *it);
        if (!n || n->type != YAML_MAPPING_NODE) {
            problem(in, fi, n ? yline(y, n) : kl, "tasks[%d] must be a mapping of fields", idx);
            continue;
        }
        char what[32];
        snprintf(what, sizeof what, "tasks[%d]", idx);
        if (check_keys(y, n, task_fields, what))
            continue;
        json_t *o = node_json(y, n, 0);
        if (!o)
            continue;
        json_t *spec = defaults ? json_deep_copy(defaults) : json_object();
        json_t *lines = json_deep_copy(dlines);
        json_object_update(spec, o);
        json_decref(o);
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *k = yaml_document_get_node(y->doc, pr->key);
            json_object_set_new(lines, (const char *)k->data.scalar.value,
                                json_integer(yline(y, k)));
        }
        json_t *id = json_object_get(spec, "id");
        if (!json_is_string(id) || !*json_string_value(id)) {
            problem(in, fi, yline(y, n),
                    "%s: field 'id' is required and must be text (an import matches tasks by id)",
                    what);
            json_decref(spec);
            json_decref(lines);
            continue;
        }
        for (size_t k = f->first; k < in->ntasks; k++)
            if (!strcmp(json_string_value(json_object_get(in->tasks[k].spec, "id")),
                        json_string_value(id)))
                problem(in, fi, yline(y, n), "task id '%.128s' appears twice (first on line %d)",
                        json_string_value(id), in->tasks[k].line);
        json_object_set_new(spec, "swarm", json_string(f->swarm));
        json_object_set_new(spec, "phase", json_integer(f->phase));
        in->tasks = xgrow(in->tasks, sizeof *in->tasks, in->ntasks + 1, &in->captasks);
        struct gb_task *t = &in->tasks[in->ntasks++];
        t->spec = spec;
        t->lines = lines;
        t->file = fi;
        t->line = yline(y, n);
        f = &in->files[fi];
        f->n++;
    }
    json_decref(defaults);
    json_decref(dlines);
}

/* ---- reading a commit ---- */

struct walk {
    git_repository *repo;
    struct gb_instructions *in;
    struct s2_error *err;
};

static int is_instruction_name(const char *name)
{
    size_t n = strlen(name);
    return !strncmp(name, "INSTRUCTIONS-", 13) && n > 16 && !strcmp(name + n - 3, ".md");
}

static int read_blob(struct walk *w, const char *path, const git_oid *id)
{
    git_blob *blob;
    if (git_blob_lookup(&blob, w->repo, id))
        return git_fail(w->err, "cannot read '%s'", path);
    git_object_size_t size = git_blob_rawsize(blob);
    if (size > GB_FILE_MAX) {
        size_t fi = add_file(w->in, path);
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (gitbridge_parse_name(base, &w->in->files[fi].swarm, &w->in->files[fi].phase))
            w->in->files[fi].swarm = NULL;
        problem(w->in, fi, 0, "the file is larger than %d bytes", GB_FILE_MAX);
    } else {
        gitbridge_parse(w->in, path, git_blob_rawcontent(blob), (size_t)size);
    }
    git_blob_free(blob);
    return 0;
}

static int walk_tree(struct walk *w, git_tree *tree, const char *prefix, int deep, int depth)
{
    size_t n = git_tree_entrycount(tree);
    for (size_t i = 0; i < n; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(tree, i);
        const char *name = git_tree_entry_name(e);
        git_object_t type = git_tree_entry_type(e);
        char *path = xasprintf("%s%s", prefix, name);
        int rc = 0;
        if (type == GIT_OBJECT_BLOB && git_tree_entry_filemode(e) != GIT_FILEMODE_LINK &&
            is_instruction_name(name)) {
            if (w->in->nfiles >= GB_FILES_MAX)
                rc = s2_fail(w->err, S2_ETOOBIG, "too_many_files",
                             "the commit holds more than %d instruction files", GB_FILES_MAX);
            else
                rc = read_blob(w, path, git_tree_entry_id(e));
        } else if (type == GIT_OBJECT_TREE && depth < 16 &&
                   (deep || (depth == 0 && !strcmp(name, INSTR_DIR)))) {
            git_tree *sub;
            if (git_tree_lookup(&sub, w->repo, git_tree_entry_id(e))) {
                rc = git_fail(w->err, "cannot read directory '%s'", path);
            } else {
                char *p2 = xasprintf("%s/", path);
                rc = walk_tree(w, sub, p2, 1, depth + 1);
                free(p2);
                git_tree_free(sub);
            }
        }
        free(path);
        if (rc)
            return rc;
    }
    return 0;
}

char *gitbridge_git_dir(const char *path, struct s2_error *err)
{
    git_repository *repo;
    if (open_repo(&repo, path, err))
        return NULL;
    const char *p = git_repository_path(repo);
    char *real = realpath(p, NULL);
    char *out = xstrdup(real ? real : p);
    free(real);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = 0;
    git_repository_free(repo);
    return out;
}

int gitbridge_read(const char *repo_path, const char *ref, struct gb_instructions *out,
                   struct s2_error *err)
{
    git_repository *repo = NULL;
    git_object *obj = NULL, *peeled = NULL;
    git_tree *tree = NULL;
    int rc = S2_EINVAL;
    memset(out, 0, sizeof *out);
    if (!ref || !*ref)
        ref = "HEAD";
    if (open_repo(&repo, repo_path, err))
        return S2_EINVAL;
    if (git_revparse_single(&obj, repo, ref)) {
        git_fail(err, "cannot resolve '%s' in '%s'", ref, repo_path ? repo_path : ".");
        goto out;
    }
    if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT)) {
        git_fail(err, "'%s' does not name a commit", ref);
        goto out;
    }
    if (git_commit_tree(&tree, (git_commit *)peeled)) {
        git_fail(err, "cannot read the tree of '%s'", ref);
        goto out;
    }
    out->repo = xstrdup(git_repository_path(repo));
    size_t n = strlen(out->repo);
    while (n > 1 && out->repo[n - 1] == '/')
        out->repo[--n] = 0;
    out->ref = xstrdup(ref);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, git_object_id(peeled));
    out->commit = xstrdup(hex);
    struct walk w = {repo, out, err};
    if (walk_tree(&w, tree, "", 0, 0)) {
        gitbridge_instructions_release(out);
        goto out;
    }
    /* a task id given by two files: the later file (by path) is refused */
    for (size_t i = 0; i < out->ntasks; i++) {
        struct gb_task *a = &out->tasks[i];
        if (out->files[a->file].bad)
            continue;
        const char *id = json_string_value(json_object_get(a->spec, "id"));
        for (size_t j = 0; j < i; j++) {
            struct gb_task *b = &out->tasks[j];
            if (b->file != a->file && !out->files[b->file].bad &&
                !strcmp(id, json_string_value(json_object_get(b->spec, "id")))) {
                problem(out, a->file, a->line, "task id '%s' is also defined in %s:%d", id,
                        out->files[b->file].path, b->line);
                break;
            }
        }
    }
    rc = 0;
out:
    git_tree_free(tree);
    git_object_free(peeled);
    git_object_free(obj);
    git_repository_free(repo);
    return rc;
}

/* ---- comparing and importing ---- */

static int spec_of(json_t *o, struct task_spec *sp)
{
    static const char *const keep[] = {
        "id", "swarm", "phase", "title", "body", "requires", "min_tier", "priority",
        "depends_on", "max_attempts", "lease_ms", "retry_backoff_ms", "approval",
        "phase_barrier", "estimate_h", "estimate_usd", "max_cost", "paths", NULL};
    json_t *in = json_object();
    for (const char *const *k = keep; *k; k++) {
        json_t *v = json_object_get(o, *k);
        if (v && !json_is_null(v))
            json_object_set(in, *k, v);
    }
    struct s2_error err = S2_ERROR_INIT;
    task_spec_init(sp);
    int rc = api_parse_task(in, sp, NULL, "", &err);
    s2_error_release(&err);
    json_decref(in);
    return rc;
}

static int same_set(const struct strvec *a, const struct strvec *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strvec_find(b, a->v[i]) < 0)
            return 0;
    return 1;
}

static int same_str(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

json_t *gitbridge_diff(json_t *want, json_t *have)
{
    json_t *d = json_array();
    struct task_spec w, h;
    int bw = spec_of(want, &w), bh = spec_of(have, &h);
    if (bw || bh) {
        json_array_append_new(d, json_string(bw ? "(invalid in the file)" : "(unreadable)"));
        goto out;
    }
#define DIFF(name, cond)                                                                       \
    do {                                                                                       \
        if (!(cond))                                                                           \
            json_array_append_new(d, json_string(name));                                       \
    } while (0)
    DIFF("swarm", same_str(w.swarm, h.swarm));
    DIFF("phase", w.phase == h.phase);
    DIFF("title", same_str(w.title, h.title));
    DIFF("body", same_str(w.body, h.body));
    DIFF("requires", same_set(&w.requires, &h.requires));
    /* the server raises min_tier after a failure (the cascade): only a lower value differs */
    json_t *att = json_object_get(have, "attempts");
    int tried = json_is_integer(att) && json_integer_value(att) > 0;
    DIFF("min_tier", tried ? w.min_tier <= h.min_tier : w.min_tier == h.min_tier);
    DIFF("priority", w.priority == h.priority);
    DIFF("depends_on", same_set(&w.depends_on, &h.depends_on));
    DIFF("paths", same_set(&w.paths, &h.paths));
    DIFF("max_attempts", w.max_attempts == h.max_attempts);
    DIFF("lease_ms", w.lease_ms == h.lease_ms);
    DIFF("retry_backoff_ms", w.backoff_ms == h.backoff_ms);
    /* a policy gate may put a task behind approval: "none" in the file is not a difference */
    DIFF("approval", w.approval_kind == APPROVAL_NONE ||
                         (w.approval_kind == h.approval_kind && w.approval_n == h.approval_n));
    DIFF("phase_barrier", !w.phase_barrier == !h.phase_barrier);
    DIFF("estimate_h", fabs(w.estimate_h - h.estimate_h) < 1e-9);
    DIFF("estimate_usd", w.estimate_micro == h.estimate_micro);
    DIFF("max_cost", w.max_cost_micro == h.max_cost_micro);
#undef DIFF
out:
    task_spec_release(&w);
    task_spec_release(&h);
    return d;
}

/* "tasks[12]: ..." -> 12 and the message after the prefix; -1 without one. */
static long blamed(const char *msg, const char **rest)
{
    *rest = msg;
    if (strncmp(msg, "tasks[", 6))
        return -1;
    char *end;
    long i = strtol(msg + 6, &end, 10);
    if (end == msg + 6 || *end != ']' || i < 0)
        return -1;
    *rest = end[1] == ':' && end[2] == ' ' ? end + 3 : end + 1;
    return i;
}

static void report_error(json_t *errors, const struct gb_instructions *in, size_t file, int line,
                         const char *msg)
{
    json_array_append_new(errors, json_pack("{s:s,s:i,s:s}", "file", in->files[file].path,
                                            "line", line, "message", msg));
}

/* A refusal that is about the request (blame a file) rather than the server (stop). */
static int about_request(const struct s2_error *e)
{
    return e->kind == S2_EINVAL || e->kind == S2_ECONFLICT || e->kind == S2_ENOTFOUND ||
           e->kind == S2_ETOOBIG;
}

int gitbridge_import(struct gb_instructions *in, const struct gb_ops *ops, int dry_run,
                     json_t **report, struct s2_error *err)
{
    json_t *created = json_array(), *unchanged = json_array(), *conflicts = json_array(),
           *errors = json_array();
    /* want[i]: 1 if task i is to be created */
    char *want = xcalloc(in->ntasks ? in->ntasks : 1, 1);
    int rc = 0;
    /* the caller's scope first: of another swarm's file it learns that it was skipped and
     * why, not what is wrong inside */
    char *denied = xcalloc(in->nfiles ? in->nfiles : 1, 1);
    for (size_t fi = 0; fi < in->nfiles; fi++) {
        struct gb_file *f = &in->files[fi];
        struct s2_error e = S2_ERROR_INIT;
        if (ops->may && f->swarm && ops->may(ops->ctx, f->swarm, &e)) {
            report_error(errors, in, fi, 0, e.msg ? e.msg : "not allowed");
            f->bad = 1;
            denied[fi] = 1;
        }
        s2_error_release(&e);
    }
    for (size_t i = 0; i < in->nproblems; i++)
        if (in->problems[i].file >= in->nfiles || !denied[in->problems[i].file])
            report_error(errors, in, in->problems[i].file, in->problems[i].line,
                         in->problems[i].msg);
    free(denied);
    for (size_t i = 0; i < in->ntasks; i++) {
        struct gb_task *t = &in->tasks[i];
        if (in->files[t->file].bad)
            continue;
        const char *id = json_string_value(json_object_get(t->spec, "id"));
        json_t *have = NULL;
        int found = ops->lookup(ops->ctx, id, &have, err);
        if (found < 0) {
            rc = found;
            goto out;
        }
        if (!found) {
            want[i] = 1;
            continue;
        }
        json_t *d = gitbridge_diff(t->spec, have);
        if (json_array_size(d))
            json_array_append_new(conflicts, json_pack("{s:s,s:s,s:i,s:o}", "task", id, "file",
                                                       in->files[t->file].path, "line", t->line,
                                                       "fields", d));
        else {
            json_array_append_new(unchanged, json_string(id));
            json_decref(d);
        }
        json_decref(have);
    }
    /* create what is new, all at once; a file the server refuses is reported and left out,
     * and the others are tried again (each round drops one file or one task) */
    /* each round creates, drops a task or a file, or moves to the next file: bounded */
    size_t rounds = 3 * (in->nfiles + in->ntasks) + 4;
    int one_by_one = 0;
    size_t only = 0; /* one_by_one: the file being tried */
    while (!dry_run && rounds--) {
        json_t *batch = json_array();
        size_t *index = xcalloc(in->ntasks ? in->ntasks : 1, sizeof *index);
        for (size_t i = 0; i < in->ntasks; i++)
            if (want[i] && (!one_by_one || in->tasks[i].file == only)) {
                index[json_array_size(batch)] = i;
                json_array_append(batch, in->tasks[i].spec);
            }
        if (!json_array_size(batch)) {
            json_decref(batch);
            free(index);
            if (one_by_one && ++only < in->nfiles)
                continue;
            break;
        }
        struct s2_error e = S2_ERROR_INIT;
        if (ops->create(ops->ctx, batch, &e) == 0) {
            for (size_t k = 0; k < json_array_size(batch); k++) {
                json_array_append_new(created, json_string(json_string_value(
                                                   json_object_get(in->tasks[index[k]].spec, "id"))));
                want[index[k]] = 0;
            }
            json_decref(batch);
            free(index);
            if (one_by_one && ++only < in->nfiles)
                continue;
            break;
        }
        const char *rest = e.msg ? e.msg : "refused";
        long bi = e.msg ? blamed(e.msg, &rest) : -1;
        if (bi < 0 && e.msg && !strncmp(e.msg, "task '", 6)) {
            /* "task 'x': ...": the engine names the task by its id */
            const char *q = strchr(e.msg + 6, '\'');
            for (size_t k = 0; q && k < json_array_size(batch); k++) {
                const char *id = json_string_value(json_object_get(json_array_get(batch, k), "id"));
                if (id && strlen(id) == (size_t)(q - e.msg - 6) && !memcmp(id, e.msg + 6, strlen(id))) {
                    bi = (long)k;
                    rest = q[1] == ':' && q[2] == ' ' ? q + 3 : q + 1;
                    break;
                }
            }
        }
        if (bi < 0 && json_array_size(batch) == 1 && e.msg)
            bi = 0;
        if (!about_request(&e)) { /* the server, not the files: stop here */
            s2_fail(err, e.kind, e.code, "%s", e.msg ? e.msg : "tasks could not be created");
            s2_error_release(&e);
            json_decref(batch);
            free(index);
            rc = S2_EUNAVAIL;
            goto out;
        }
        if (bi >= 0 && (size_t)bi < json_array_size(batch)) {
            struct gb_task *t = &in->tasks[index[bi]];
            const char *id = json_string_value(json_object_get(t->spec, "id"));
            if (e.code && !strcmp(e.code, "task_exists")) {
                /* created meanwhile by someone else: compare it like the others */
                want[index[bi]] = 0;
                json_t *have = NULL;
                struct s2_error le = S2_ERROR_INIT;
                if (ops->lookup(ops->ctx, id, &have, &le) == 1) {
                    json_t *d = gitbridge_diff(t->spec, have);
                    if (json_array_size(d))
                        json_array_append_new(conflicts,
                                              json_pack("{s:s,s:s,s:i,s:o}", "task", id, "file",
                                                        in->files[t->file].path, "line", t->line,
                                                        "fields", d));
                    else {
                        json_array_append_new(unchanged, json_string(id));
                        json_decref(d);
                    }
                    json_decref(have);
                } else {
                    char *m = xasprintf("task '%s' already exists (in a swarm this token cannot "
                                        "see): not imported", id);
                    report_error(errors, in, t->file, t->line, m);
                    free(m);
                }
                s2_error_release(&le);
            } else {
                if (bi == 0 && json_array_size(batch) == 1 && rest == e.msg && !strncmp(rest, "task '", 6))
                    rest = strstr(rest, "': ") ? strstr(rest, "': ") + 3 : rest;
                char *m = xasprintf("task '%s': %s", id, rest);
                report_error(errors, in, t->file, line_of_message(rest, t->lines, t->line), m);
                free(m);
                in->files[t->file].bad = 1;
                for (size_t i = 0; i < in->ntasks; i++)
                    if (in->tasks[i].file == t->file)
                        want[i] = 0;
            }
        } else {
            /* nobody named: find the culprit one file at a time */
            if (!one_by_one) {
                one_by_one = 1;
                only = 0;
            } else {
                report_error(errors, in, only, 0, e.msg ? e.msg : "refused");
                in->files[only].bad = 1;
                for (size_t i = 0; i < in->ntasks; i++)
                    if (in->tasks[i].file == only)
                        want[i] = 0;
            }
        }
        s2_error_release(&e);
        json_decref(batch);
        free(index);
    }
    for (size_t i = 0; i < in->ntasks; i++) {
        if (!want[i])
            continue;
        const char *id = json_string_value(json_object_get(in->tasks[i].spec, "id"));
        if (dry_run) {
            json_array_append_new(created, json_string(id));
        } else { /* cannot happen (see rounds), but never drop a task without a word */
            char *m = xasprintf("task '%s' was not imported: the server kept refusing", id);
            report_error(errors, in, in->tasks[i].file, in->tasks[i].line, m);
            free(m);
        }
    }
out:
    free(want);
    if (rc) {
        json_decref(created);
        json_decref(unchanged);
        json_decref(conflicts);
        json_decref(errors);
        return rc;
    }
    size_t ok_files = 0;
    for (size_t fi = 0; fi < in->nfiles; fi++)
        ok_files += !in->files[fi].bad;
    *report = json_pack("{s:s?,s:s?,s:s?,s:i,s:i,s:b,s:o,s:o,s:o,s:o}", "repo", in->repo, "ref",
                        in->ref, "commit", in->commit, "files", (int)in->nfiles, "files_ok",
                        (int)ok_files, "dry_run", dry_run, "created", created, "unchanged",
                        unchanged, "conflicts", conflicts, "errors", errors);
    return 0;
}

/* ---- STATUS.md onto a branch ---- */

int gitbridge_commit_file(const char *repo_path, const char *branch, const char *file,
                          const char *content, size_t len, const char *message, char **commit,
                          int *changed, struct s2_error *err)
{
    git_repository *repo = NULL;
    git_reference *ref = NULL, *head = NULL;
    git_commit *parent = NULL;
    git_tree *base = NULL, *tree = NULL;
    git_treebuilder *tb = NULL;
    git_signature *sig = NULL;
    char *refname = xasprintf("refs/heads/%s", branch);
    int rc = S2_EINVAL, valid = 0;
    *changed = 0;
    if (open_repo(&repo, repo_path, err))
        goto out;
    if (git_reference_name_is_valid(&valid, refname) || !valid) {
        s2_fail(err, S2_EINVAL, "invalid_branch", "'%s' is not a valid branch name", branch);
        goto out;
    }
    if (!git_repository_is_bare(repo) && git_repository_head(&head, repo) == 0 &&
        !strcmp(git_reference_name(head), refname)) {
        s2_fail(err, S2_ECONFLICT, "checked_out",
                "branch '%s' is checked out in %s: committing to it would leave its working "
                "tree behind (use another branch for the swarm)",
                branch, git_repository_workdir(repo));
        goto out;
    }
    int have = git_reference_lookup(&ref, repo, refname);
    if (have == 0) {
        git_object *o;
        if (git_reference_peel(&o, ref, GIT_OBJECT_COMMIT)) {
            git_fail(err, "branch '%s' does not point to a commit", branch);
            goto out;
        }
        parent = (git_commit *)o;
    } else if (have == GIT_ENOTFOUND) {
        git_object *o;
        if (git_revparse_single(&o, repo, "HEAD") == 0) {
            git_object *c;
            if (git_object_peel(&c, o, GIT_OBJECT_COMMIT) == 0)
                parent = (git_commit *)c;
            git_object_free(o);
        }
    } else {
        git_fail(err, "cannot read branch '%s'", branch);
        goto out;
    }
    if (parent && git_commit_tree(&base, parent)) {
        git_fail(err, "cannot read the tree of branch '%s'", branch);
        goto out;
    }
    git_oid blob;
    if (git_blob_create_from_buffer(&blob, repo, content, len)) {
        git_fail(err, "cannot write %s", file);
        goto out;
    }
    const git_tree_entry *cur = base ? git_tree_entry_byname(base, file) : NULL;
    if (have == 0 && cur && git_oid_equal(git_tree_entry_id(cur), &blob)) {
        char hex[GIT_OID_HEXSZ + 1];
        git_oid_tostr(hex, sizeof hex, git_commit_id(parent));
        *commit = xstrdup(hex);
        rc = 0; /* already says exactly this */
        goto out;
    }
    git_oid tree_id, id;
    if (git_treebuilder_new(&tb, repo, base) ||
        git_treebuilder_insert(NULL, tb, file, &blob, GIT_FILEMODE_BLOB) ||
        git_treebuilder_write(&tree_id, tb) || git_tree_lookup(&tree, repo, &tree_id)) {
        git_fail(err, "cannot build the tree for %s", file);
        goto out;
    }
    if (git_signature_default(&sig, repo) && git_signature_now(&sig, "s2", "s2@localhost")) {
        git_fail(err, "cannot make a commit signature");
        goto out;
    }
    const git_commit *parents[1] = {parent};
    /* with update_ref, libgit2 refuses when the branch moved since we read its tip */
    if (git_commit_create(&id, repo, refname, sig, sig, NULL, message, tree, parent ? 1 : 0,
                          parents)) {
        git_fail(err, "cannot commit %s to branch '%s'", file, branch);
        goto out;
    }
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &id);
    *commit = xstrdup(hex);
    *changed = 1;
    rc = 0;
out:
    git_signature_free(sig);
    git_treebuilder_free(tb);
    git_tree_free(tree);
    git_tree_free(base);
    git_commit_free(parent);
    git_reference_free(ref);
    git_reference_free(head);
    git_repository_free(repo);
    free(refname);
    return rc;
}

/* ---- small helpers for hooks ---- */

char *gitbridge_config(const char *repo_path, const char *key)
{
    git_repository *repo;
    struct s2_error err = S2_ERROR_INIT;
    if (open_repo(&repo, repo_path, &err)) {
        s2_error_release(&err);
        return NULL;
    }
    git_config *cfg = NULL;
    git_buf b = {0};
    char *out = NULL;
    if (git_repository_config_snapshot(&cfg, repo) == 0 && git_config_get_string_buf(&b, cfg, key) == 0)
        out = xstrdup(b.ptr);
    git_buf_dispose(&b);
    git_config_free(cfg);
    git_repository_free(repo);
    return out;
}

char *gitbridge_head_ref(const char *repo_path)
{
    git_repository *repo;
    struct s2_error err = S2_ERROR_INIT;
    if (open_repo(&repo, repo_path, &err)) {
        s2_error_release(&err);
        return NULL;
    }
    git_reference *head = NULL;
    char *out = NULL;
    if (git_reference_lookup(&head, repo, "HEAD") == 0 &&
        git_reference_type(head) == GIT_REFERENCE_SYMBOLIC)
        out = xstrdup(git_reference_symbolic_target(head));
    git_reference_free(head);
    git_repository_free(repo);
    return out;
}

static int add_path_cb(const git_diff_delta *d, float progress, void *payload)
{
    (void)progress;
    struct strvec *sv = payload;
    if (d->old_file.path && strvec_find(sv, d->old_file.path) < 0)
        strvec_push(sv, d->old_file.path);
    if (d->new_file.path && strvec_find(sv, d->new_file.path) < 0)
        strvec_push(sv, d->new_file.path);
    return 0;
}

int gitbridge_staged_paths(const char *repo_path, struct strvec *out, struct s2_error *err)
{
    git_repository *repo = NULL;
    git_index *idx = NULL;
    git_object *head = NULL;
    git_tree *tree = NULL;
    git_diff *diff = NULL;
    int rc = S2_EINVAL;
    if (open_repo(&repo, repo_path, err))
        return S2_EINVAL;
    if (git_repository_index(&idx, repo)) {
        git_fail(err, "cannot read the index");
        goto out;
    }
    /* before the first commit there is no HEAD: everything staged is new */
    if (git_revparse_single(&head, repo, "HEAD^{tree}") == 0)
        tree = (git_tree *)head, head = NULL;
    if (git_diff_tree_to_index(&diff, repo, tree, idx, NULL)) {
        git_fail(err, "cannot compare the index with HEAD");
        goto out;
    }
    if (git_diff_foreach(diff, add_path_cb, NULL, NULL, NULL, out)) {
        git_fail(err, "cannot list the staged changes");
        goto out;
    }
    rc = 0;
out:
    git_diff_free(diff);
    git_tree_free(tree);
    git_object_free(head);
    git_index_free(idx);
    git_repository_free(repo);
    return rc;
}

/* ---- hooks ---- */

static const char *const hook_names[] = {"pre-commit", "post-commit", "post-merge",
                                         "post-receive", NULL};

/* 'it'\''s': s quoted for sh */
static void sh_quote(struct buf *b, const char *s)
{
    buf_addch(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            buf_adds(b, "'\\''");
        else
            buf_addch(b, *s);
    }
    buf_addch(b, '\'');
}

static char *hooks_dir(git_repository *repo)
{
    git_config *cfg = NULL;
    git_buf b = {0};
    char *out = NULL;
    if (git_repository_config_snapshot(&cfg, repo) == 0 &&
        git_config_get_path(&b, cfg, "core.hooksPath") == 0 && b.ptr && *b.ptr) {
        if (b.ptr[0] == '/')
            out = xstrdup(b.ptr);
        else {
            const char *wd = git_repository_workdir(repo);
            out = xasprintf("%s%s", wd ? wd : git_repository_path(repo), b.ptr);
        }
    }
    git_buf_dispose(&b);
    git_config_free(cfg);
    if (!out)
        out = xasprintf("%shooks", git_repository_path(repo));
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = 0;
    return out;
}

static char *hook_script(const char *name, const char *path, const char *s2)
{
    struct buf b = BUF_INIT;
    buf_addf(&b, "#!/bin/sh\n" HOOK_MARK " %s: installed by `s2 git hook install` (docs/GIT.md);\n"
                 "# `s2 git hook uninstall` removes it. Edits are lost on the next install.\n",
             name);
    buf_adds(&b, "orig=");
    char *orig = xasprintf("%s.pre-s2", path);
    sh_quote(&b, orig);
    free(orig);
    buf_adds(&b, "\ns2=");
    sh_quote(&b, s2);
    buf_adds(&b, "\n[ -x \"$s2\" ] || s2=$(command -v s2) || s2=\n");
    if (!strcmp(name, "pre-commit")) {
        buf_adds(&b,
                 "# refuse a commit touching paths another agent's live claim leases, or one\n"
                 "# made under an expired lease (fencing); see docs/GIT.md\n"
                 "if [ -x \"$orig\" ]; then \"$orig\" \"$@\" || exit $?; fi\n"
                 "if [ -z \"$s2\" ]; then\n"
                 "    if [ -n \"${S2_LEASE:-}\" ]; then\n"
                 "        echo \"s2: the s2 binary is missing: cannot check your lease, commit refused\" >&2\n"
                 "        exit 1\n"
                 "    fi\n"
                 "    echo \"s2: warning: the s2 binary is missing: path leases not checked\" >&2\n"
                 "    exit 0\n"
                 "fi\n"
                 "exec \"$s2\" git guard\n");
    } else if (!strcmp(name, "post-receive")) {
        buf_adds(&b, "# tell s2 at once that pushed refs may carry new instructions\n"
                     "input=$(cat)\n"
                     "if [ -x \"$orig\" ]; then printf '%s\\n' \"$input\" | \"$orig\" \"$@\"; fi\n"
                     "[ -n \"$s2\" ] || exit 0\n"
                     "printf '%s\\n' \"$input\" | \"$s2\" git notify --hook post-receive\n"
                     "exit 0\n");
    } else {
        buf_addf(&b, "# tell s2 at once that this commit may carry new instructions\n"
                     "if [ -x \"$orig\" ]; then \"$orig\" \"$@\"; fi\n"
                     "[ -n \"$s2\" ] || exit 0\n"
                     "\"$s2\" git notify --hook %s\n"
                     "exit 0\n",
                 name);
    }
    return buf_detach(&b, NULL);
}

static int is_ours(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    int ours = 0;
    for (int i = 0; i < 3 && fgets(line, sizeof line, f); i++)
        if (!strncmp(line, HOOK_MARK, strlen(HOOK_MARK)))
            ours = 1;
    fclose(f);
    return ours;
}

static int write_file(const char *path, const char *text, mode_t mode, struct s2_error *err)
{
    char *tmp = xasprintf("%s.s2tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t n = strlen(text);
    int rc = 0;
    if (fd < 0 || write(fd, text, n) != (ssize_t)n || fchmod(fd, mode) || close(fd) ||
        rename(tmp, path)) {
        rc = s2_fail(err, S2_EIO, "io", "cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int set_config(git_repository *repo, const char *key, const char *val, struct s2_error *err)
{
    git_config *cfg = NULL, *local = NULL;
    int rc = 0;
    if (git_repository_config(&cfg, repo) || git_config_open_level(&local, cfg, GIT_CONFIG_LEVEL_LOCAL) ||
        git_config_set_string(local, key, val))
        rc = git_fail(err, "cannot set %s in the repository's config", key);
    git_config_free(local);
    git_config_free(cfg);
    return rc;
}

int gitbridge_hooks_install(const char *repo_path, const struct gb_hook_opts *o, json_t **report,
                            struct s2_error *err)
{
    git_repository *repo;
    if (open_repo(&repo, repo_path, err))
        return S2_EINVAL;
    char *dir = hooks_dir(repo);
    json_t *done = json_array();
    int rc = 0;
    /* mkdir -p */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    if (mkdir(dir, 0755) && errno != EEXIST) {
        rc = s2_fail(err, S2_EIO, "io", "cannot create the hooks directory '%s': %s", dir,
                     strerror(errno));
        goto out;
    }
    /* first check every hook, so that a refusal changes nothing */
    for (const char *const *h = hook_names; *h; h++) {
        char *path = xasprintf("%s/%s", dir, *h);
        char *orig = xasprintf("%s.pre-s2", path);
        struct stat st;
        if (stat(path, &st) == 0 && !is_ours(path)) {
            if (!o->force)
                rc = s2_fail(err, S2_ECONFLICT, "hook_exists",
                             "hook '%s' exists and is not s2's: use --force to keep it as %s.pre-s2 "
                             "(run before s2's)",
                             path, *h);
            else if (stat(orig, &st) == 0)
                rc = s2_fail(err, S2_ECONFLICT, "hook_exists",
                             "hook '%s' is not s2's and '%s' exists already: move one of them away",
                             path, orig);
        }
        free(orig);
        free(path);
        if (rc)
            goto out;
    }
    for (const char *const *h = hook_names; *h; h++) {
        char *path = xasprintf("%s/%s", dir, *h);
        char *orig = xasprintf("%s.pre-s2", path);
        struct stat st;
        const char *what = "installed";
        if (stat(path, &st) == 0) {
            if (!is_ours(path)) {
                if (rename(path, orig))
                    rc = s2_fail(err, S2_EIO, "io", "cannot move '%s' aside: %s", path,
                                 strerror(errno));
                what = "installed (the old hook kept as .pre-s2, run first)";
            } else {
                what = "updated";
            }
        }
        char *script = rc ? NULL : hook_script(*h, path, o->s2_path);
        if (!rc)
            rc = write_file(path, script, 0755, err);
        if (!rc)
            json_array_append_new(done, json_pack("{s:s,s:s}", "hook", path, "action", what));
        free(script);
        free(orig);
        free(path);
        if (rc)
            goto out;
    }
    if ((o->server && set_config(repo, "s2.server", o->server, err)) ||
        (o->token_file && set_config(repo, "s2.tokenFile", o->token_file, err)) ||
        (o->ref && set_config(repo, "s2.ref", o->ref, err))) {
        rc = S2_EINVAL;
        goto out;
    }
out:
    if (!rc)
        *report = json_pack("{s:s,s:o}", "hooks_dir", dir, "hooks", done);
    else
        json_decref(done);
    free(dir);
    git_repository_free(repo);
    return rc;
}

int gitbridge_hooks_uninstall(const char *repo_path, json_t **report, struct s2_error *err)
{
    git_repository *repo;
    if (open_repo(&repo, repo_path, err))
        return S2_EINVAL;
    char *dir = hooks_dir(repo);
    json_t *done = json_array();
    int rc = 0;
    for (const char *const *h = hook_names; *h && !rc; h++) {
        char *path = xasprintf("%s/%s", dir, *h);
        char *orig = xasprintf("%s.pre-s2", path);
        struct stat st;
        if (is_ours(path)) {
            if (unlink(path))
                rc = s2_fail(err, S2_EIO, "io", "cannot remove '%s': %s", path, strerror(errno));
            else if (stat(orig, &st) == 0) {
                if (rename(orig, path))
                    rc = s2_fail(err, S2_EIO, "io", "cannot restore '%s': %s", orig,
                                 strerror(errno));
                else
                    json_array_append_new(done, json_pack("{s:s,s:s}", "hook", path, "action",
                                                          "removed (the old hook restored)"));
            } else {
                json_array_append_new(done,
                                      json_pack("{s:s,s:s}", "hook", path, "action", "removed"));
            }
        }
        free(orig);
        free(path);
    }
    if (!rc)
        *report = json_pack("{s:s,s:o}", "hooks_dir", dir, "hooks", done);
    else
        json_decref(done);
    free(dir);
    git_repository_free(repo);
    return rc;
}
