/* yamljson.h: load YAML (libyaml) into jansson values, for files people write by hand
 * (service contracts). Mappings become objects, sequences arrays; plain scalars become
 * null, booleans, integers or reals when they read as one (YAML 1.2 core schema), anything
 * else a string; quoted scalars are always strings. Anchors, aliases and tags other than
 * the core ones are refused rather than half-understood. */
#ifndef S2_YAMLJSON_H
#define S2_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"

/* Every document of text[0..len) as a JSON array (caller decrefs); NULL with err naming
 * "NAME:LINE:COL" on a syntax error. */
json_t *yaml_load_documents(const char *text, size_t len, const char *name, struct s2_error *err);

#endif
