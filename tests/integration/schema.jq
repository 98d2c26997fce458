# schema.jq: the subset of JSON Schema (as OpenAPI 3.0 writes it) that docs/openapi.json
# uses, as jq functions; t0700-openapi.sh validates real replies with it.
# Supported: $ref (local), type (+ nullable), enum, required, properties,
# additionalProperties (false or a schema), items, minItems, maxItems, uniqueItems,
# minLength, maxLength, pattern, minimum, maximum, exclusiveMinimum, oneOf, allOf.
# Keywords it does not know are an error, so the document cannot use more than is checked.
# strict: an object schema that lists properties but says nothing of additionalProperties
# is treated as closed, so a reply field that the document does not name is reported.
# Every function returns an array of "path: problem" strings; [] means valid.

def known_keywords:
    ["$ref", "type", "nullable", "enum", "required", "properties", "additionalProperties",
     "items", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern",
     "minimum", "maximum", "exclusiveMinimum", "oneOf", "allOf",
     "description", "example", "default", "format"];

def deref($root):
    if type == "object" and has("$ref") then
        (.["$ref"] | ltrimstr("#/") | split("/")) as $k
        | ($root | getpath($k)) as $t
        | if $t == null then error("unresolved $ref " + .["$ref"]) else $t | deref($root) end
    else . end;

def jtype:
    if type == "number" then (if . == (. | floor) then "integer" else "number" end) else type end;

def type_ok($t):
    if $t == null then true
    elif $t == "integer" then jtype == "integer"
    elif $t == "number" then type == "number"
    else type == $t end;

def check($root; $strict; $schema; $path):
    . as $v
    | ($schema | deref($root)) as $s
    | ([$s | keys[] | select(. as $k | known_keywords | index([$k]) | not)]) as $unknown
    | if ($unknown | length) > 0 then ["\($path): schema uses unsupported keywords \($unknown)"]
      elif $v == null and ($s.nullable // false) then []
      elif $v == null and ($s.type != null or $s.properties != null) then ["\($path): is null"]
      else
        (if $s.type != null and ($v | type_ok($s.type) | not)
         then ["\($path): is \($v | jtype), want \($s.type)"] else [] end)
        + (if $s.enum != null and ($s.enum | index([$v]) | not)
           then ["\($path): \($v | tojson) is not one of \($s.enum | tojson)"] else [] end)
        + (if ($v | type) == "string" then
              (if $s.minLength != null and ($v | length) < $s.minLength then ["\($path): shorter than \($s.minLength)"] else [] end)
            + (if $s.maxLength != null and ($v | length) > $s.maxLength then ["\($path): longer than \($s.maxLength)"] else [] end)
            + (if $s.pattern != null and ($v | test($s.pattern) | not) then ["\($path): \($v | tojson) does not match \($s.pattern)"] else [] end)
           else [] end)
        + (if ($v | type) == "number" then
              (if $s.minimum != null and (if $s.exclusiveMinimum == true then $v <= $s.minimum else $v < $s.minimum end)
               then ["\($path): \($v) is below the minimum \($s.minimum)"] else [] end)
            + (if $s.maximum != null and $v > $s.maximum then ["\($path): \($v) is above the maximum \($s.maximum)"] else [] end)
           else [] end)
        + (if ($v | type) == "array" then
              (if $s.minItems != null and ($v | length) < $s.minItems then ["\($path): fewer than \($s.minItems) items"] else [] end)
            + (if $s.maxItems != null and ($v | length) > $s.maxItems then ["\($path): more than \($s.maxItems) items"] else [] end)
            + (if $s.uniqueItems == true and ($v | length) != ($v | unique | length) then ["\($path): items are not unique"] else [] end)
            + (if $s.items != null then
                 [range(0; $v | length) as $i | $v[$i] | check($root; $strict; $s.items; "\($path)[\($i)]")[]]
               else [] end)
           else [] end)
        + (if ($v | type) == "object" then
              [($s.required // [])[] | select(. as $k | $v | has($k) | not) | "\($path): missing '\(.)'"]
            + [($s.properties // {}) | to_entries[] | select(.key as $k | $v | has($k))
               | .key as $k | $v[$k] | check($root; $strict; $s.properties[$k]; "\($path).\($k)")[]]
            + (($s.properties // {}) as $p
               | [$v | keys[] | select(. as $k | $p | has($k) | not)] as $extra
               | if ($extra | length) == 0 then []
                 elif $s.additionalProperties == false
                      or ($strict and $s.properties != null and ($s | has("additionalProperties") | not))
                 then ["\($path): unexpected field(s) \($extra | join(", "))"]
                 elif ($s.additionalProperties | type) == "object"
                 then [$extra[] as $k | $v[$k] | check($root; $strict; $s.additionalProperties; "\($path).\($k)")[]]
                 else [] end)
           else [] end)
        + (if $s.allOf != null then [$s.allOf[] as $x | $v | check($root; $strict; $x; $path)[]] else [] end)
        + (if $s.oneOf != null then
              ([$s.oneOf[] as $x | $v | check($root; $strict; $x; $path)]) as $r
              | ([$r[] | select(length == 0)] | length) as $n
              | if $n == 1 then []
                else ["\($path): matches \($n) of \($r | length) oneOf schemas"
                      + (if $n == 0 then " (" + ([$r[] | .[0]] | join("; ")) + ")" else "" end)]
                end
           else [] end)
      end;

# The problems with one reply of operation $opid: its status must be documented, and a JSON
# body must validate (strictly) against the schema documented for that status. $body is the
# raw text of the reply.
def reply_errors($root; $opid; $status; $body):
    ([$root.paths[][] | select(.operationId == $opid)][0]) as $op
    | if $op == null then ["no operation \($opid) in the document"]
      elif ($op.responses[$status] // null) == null then
          ["status \($status) is not documented for \($opid) (documented: \($op.responses | keys | join(" ")))"]
      else
          ($op.responses[$status] | deref($root) | .content["application/json"].schema // null) as $s
          | if $s == null then []
            else (try ($body | fromjson | [.]) catch null) as $v
            | if $v == null then ["the body is not JSON: \($body[0:200])"]
              else $v[0] | check($root; true; $s; "$") end
            end
      end;
