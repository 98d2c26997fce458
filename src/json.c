/* json.c: strict field access for request bodies. */
#include "json.h"
#include "model.h"
#include "util/xalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

json_t *json_parse_object(const char *data, size_t len, struct s2_error *err)
{
    if (len == 0) {
        s2_fail(err, S2_EINVAL, "invalid_json", "request body is empty: expected a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        s2_fail(err, S2_EINVAL, "invalid_json", "malformed JSON at line %d, column %d: %s",
                je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        s2_fail(err, S2_EINVAL, "invalid_json", "request body must be a JSON object");
        json_decref(v);
        return NULL;
    }
    return v;
}

static const char *sep(const char *ctx)
{
    return ctx && *ctx ? ": " : "";
}

int json_only(json_t *obj, const char *const *allowed, const char *ctx, struct s2_error *err)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, key)) {
                ok = 1;
                break;
            }
        if (!ok) {
            /* quote at most 60 bytes, cut on a character boundary; controls and bytes that
             * are not UTF-8 become '?', so the message is always clean text */
            char q[72];
            size_t o = 0;
            const char *p = key;
            while (*p && o < 60) {
                int l = model_utf8_len(p);
                if (l <= 0 || (unsigned char)*p < 0x20) {
                    q[o++] = '?';
                    p++;
                    continue;
                }
                if (o + (size_t)l > 60)
                    break;
                memcpy(q + o, p, (size_t)l);
                o += (size_t)l;
                p += l;
            }
            snprintf(q + o, sizeof q - o, "%s", *p ? "..." : "");
            return s2_fail(err, S2_EINVAL, "unknown_field", "%s%sunknown field '%s'",
                           ctx ? ctx : "", sep(ctx), q);
        }
    }
    return 0;
}

static json_t *get(json_t *obj, const char *key, int required, const char *ctx,
                   struct s2_error *err, int *rc)
{
    json_t *v = json_object_get(obj, key);
    *rc = 0;
    if (!v || json_is_null(v)) {
        if (required)
            *rc = s2_fail(err, S2_EINVAL, "missing_field", "%s%sfield '%s' is required",
                          ctx ? ctx : "", sep(ctx), key);
        return NULL;
    }
    return v;
}

static int type_error(const char *key, const char *want, const char *ctx, struct s2_error *err)
{
    return s2_fail(err, S2_EINVAL, "invalid_field", "%s%sfield '%s' must be %s", ctx ? ctx : "",
                   sep(ctx), key, want);
}

int json_str(json_t *obj, const char *key, int required, char **out, const char *ctx,
             struct s2_error *err)
{
    int rc;
    json_t *v = get(obj, key, required, ctx, err, &rc);
    if (!v)
        return rc;
    if (!json_is_string(v))
        return type_error(key, "a string", ctx, err);
    free(*out);
    *out = xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

int json_int(json_t *obj, const char *key, int required, int64_t lo, int64_t hi, int64_t *out,
             const char *ctx, struct s2_error *err)
{
    int rc;
    json_t *v = get(obj, key, required, ctx, err, &rc);
    if (!v)
        return rc;
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (int64_t)json_real_value(v); /* 3.0 is an integer too */
    } else {
        return type_error(key, "an integer", ctx, err);
    }
    if (x < lo || x > hi)
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "%s%sfield '%s' must be from %lld to %lld (got %lld)", ctx ? ctx : "",
                       sep(ctx), key, (long long)lo, (long long)hi, (long long)x);
    *out = x;
    return 0;
}

int json_num(json_t *obj, const char *key, int required, double *out, const char *ctx,
             struct s2_error *err)
{
    int rc;
    json_t *v = get(obj, key, required, ctx, err, &rc);
    if (!v)
        return rc;
    if (!json_is_number(v))
        return type_error(key, "a number", ctx, err);
    *out = json_number_value(v);
    return 0;
}

int json_bool(json_t *obj, const char *key, int required, int *out, const char *ctx,
              struct s2_error *err)
{
    int rc;
    json_t *v = get(obj, key, required, ctx, err, &rc);
    if (!v)
        return rc;
    if (!json_is_boolean(v))
        return type_error(key, "true or false", ctx, err);
    *out = json_is_true(v);
    return 0;
}

int json_strlist(json_t *obj, const char *key, int required, size_t max, struct strvec *out,
                 const char *ctx, struct s2_error *err)
{
    int rc;
    json_t *v = get(obj, key, required, ctx, err, &rc);
    if (!v)
        return rc;
    if (!json_is_array(v))
        return type_error(key, "an array of strings", ctx, err);
    if (json_array_size(v) > max)
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "%s%sfield '%s' has %zu entries (at most %zu)", ctx ? ctx : "", sep(ctx),
                       key, json_array_size(v), max);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x))
            return s2_fail(err, S2_EINVAL, "invalid_field",
                           "%s%sfield '%s[%zu]' must be a string", ctx ? ctx : "", sep(ctx), key,
                           i);
    }
    strvec_release(out);
    json_array_foreach(v, i, x)
        strvec_push_nodup(out, xstrndup(json_string_value(x), json_string_length(x)));
    return 0;
}

char *json_text(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        xalloc_die(0);
    return s;
}
