/* json.h: strict reading of JSON request bodies (jansson underneath). Every error names the
 * field and what was expected ("tasks[2]: field 'priority' must be an integer"). Unknown
 * fields are errors, so a typo ("depend_on") is caught instead of silently ignored. */
#ifndef S2_JSON_H
#define S2_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "util/strvec.h"

/* Parse a request body that must be one JSON object (duplicate keys rejected). Caller owns
 * the result (json_decref). */
json_t *json_parse_object(const char *data, size_t len, struct s2_error *err);

/* Fail if obj has a key not in allowed (NULL-terminated). ctx prefixes messages ("" ok). */
int json_only(json_t *obj, const char *const *allowed, const char *ctx, struct s2_error *err);

/* Getters: 0 if absent and not required (out untouched), 0 and out set if present and
 * valid, <0 with err otherwise. null counts as absent. Strings are duplicated. */
int json_str(json_t *obj, const char *key, int required, char **out, const char *ctx,
             struct s2_error *err);
int json_int(json_t *obj, const char *key, int required, int64_t lo, int64_t hi, int64_t *out,
             const char *ctx, struct s2_error *err);
int json_num(json_t *obj, const char *key, int required, double *out, const char *ctx,
             struct s2_error *err);
int json_bool(json_t *obj, const char *key, int required, int *out, const char *ctx,
              struct s2_error *err);
/* An array of strings, at most max entries. */
int json_strlist(json_t *obj, const char *key, int required, size_t max, struct strvec *out,
                 const char *ctx, struct s2_error *err);

/* Compact serialisation (caller frees). */
char *json_text(const json_t *v);

#endif
