/* yamljson.c: YAML event stream -> jansson values, with a depth limit. */
#include "util/yamljson.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define DEPTH_MAX 64

static json_t *scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(v, n);
    if (!n || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL"))
        return json_null();
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
        return json_true();
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
        return json_false();
    char *end;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (*v && !*end && !errno && (v[0] != '0' || n == 1 || (v[0] == '-' && n > 1)))
        return json_integer(i);
    errno = 0;
    double d = strtod(v, &end);
    if (*v && !*end && !errno && isfinite(d) && strspn(v, "+-0123456789.eE") == n)
        return json_real(d);
    return json_stringn(v, n);
}

static int fail_at(struct s2_error *err, const char *name, const yaml_mark_t *m, const char *what)
{
    return s2_fail(err, S2_EINVAL, "invalid_yaml", "%s:%zu:%zu: %s", name, m->line + 1,
                   m->column + 1, what);
}

/* Parse one node whose first event is ev (consumed by the caller). */
static json_t *node(yaml_parser_t *p, yaml_event_t *ev, int depth, const char *name,
                    struct s2_error *err)
{
    if (depth > DEPTH_MAX) {
        fail_at(err, name, &ev->start_mark, "nested too deeply");
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return scalar(ev);
    case YAML_ALIAS_EVENT:
        fail_at(err, name, &ev->start_mark, "aliases are not supported");
        return NULL;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int map = ev->type == YAML_MAPPING_START_EVENT;
        json_t *out = map ? json_object() : json_array();
        for (;;) {
            yaml_event_t k;
            if (!yaml_parser_parse(p, &k)) {
                fail_at(err, name, &p->problem_mark, p->problem ? p->problem : "syntax error");
                json_decref(out);
                return NULL;
            }
            if (k.type == (map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
                yaml_event_delete(&k);
                return out;
            }
            if (!map) {
                json_t *v = node(p, &k, depth + 1, name, err);
                yaml_event_delete(&k);
                if (!v) {
                    json_decref(out);
                    return NULL;
                }
                json_array_append_new(out, v);
                continue;
            }
            if (k.type != YAML_SCALAR_EVENT) {
                fail_at(err, name, &k.start_mark, "mapping keys must be plain text");
                yaml_event_delete(&k);
                json_decref(out);
                return NULL;
            }
            char *key = strndup((const char *)k.data.scalar.value, k.data.scalar.length);
            yaml_mark_t km = k.start_mark;
            yaml_event_delete(&k);
            yaml_event_t ve;
            if (!key || !yaml_parser_parse(p, &ve)) {
                fail_at(err, name, &p->problem_mark, p->problem ? p->problem : "syntax error");
                free(key);
                json_decref(out);
                return NULL;
            }
            json_t *v = node(p, &ve, depth + 1, name, err);
            yaml_event_delete(&ve);
            if (!v || json_object_get(out, key)) {
                if (v)
                    fail_at(err, name, &km, "duplicate key");
                json_decref(v);
                free(key);
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, key, v);
            free(key);
        }
    }
    default:
        fail_at(err, name, &ev->start_mark, "unexpected YAML event");
        return NULL;
    }
}

json_t *yaml_load_documents(const char *text, size_t len, const char *name, struct s2_error *err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        s2_fail(err, S2_EINTERNAL, "yaml", "cannot initialise the YAML parser");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    json_t *docs = json_array();
    int in_doc = 0, have_root = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            fail_at(err, name, &p.problem_mark, p.problem ? p.problem : "syntax error");
            goto fail;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            in_doc = 1, have_root = 0;
        } else if (t == YAML_DOCUMENT_END_EVENT) {
            if (!have_root)
                json_array_append_new(docs, json_null());
            in_doc = 0;
        } else if (in_doc && t != YAML_STREAM_START_EVENT) {
            json_t *v = node(&p, &ev, 0, name, err);
            if (!v) {
                yaml_event_delete(&ev);
                goto fail;
            }
            json_array_append_new(docs, v);
            have_root = 1;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return docs;
fail:
    yaml_parser_delete(&p);
    json_decref(docs);
    return NULL;
}
