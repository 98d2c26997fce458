# t0700-openapi: docs/openapi.json against the code and the live server, and docs/CLI.md
# against `s2 help --markdown`, so that neither document can drift.
#  (a) the (method, path, auth) set of the document equals src/api.c's route table, and the
#      live router agrees: every documented operation is routed (never the router's 404 or
#      405), answers 401 without a token unless public, 403 to a swarm token when admin-only;
#      another method on a documented path gets 405 whose Allow lists the documented methods;
#      undocumented paths get the router's 404; request bodies reject an unknown field and
#      accept every documented one
#  (b) real requests for (nearly) every operation: the status is one the document lists
#      for it, and the JSON body validates against its schema (tests/integration/schema.jq,
#      strict: a reply field the document does not name is an error), including 204, 401,
#      403, 404, 405, 409, 413, 429 and, where a private mount namespace can be had, 503
#  (c) docs/CLI.md is byte for byte `s2 help --markdown`
. tests/lib.sh

DOC=$(pwd)/docs/openapi.json
LIBDIR=$(pwd)/tests/integration
API_C=$(pwd)/src/api.c

# ---- the validator itself must be able to fail ----

# vjq SCHEMA_JSON VALUE_FILE: the errors (JSON array) of the value against the schema
vjq() {
    jq -n --slurpfile d "$DOC" --slurpfile v "$2" --argjson s "$1" -L "$LIBDIR" \
        'include "schema"; $v[0] | check($d[0]; true; $s; "$")'
}
printf '%s' '{"task":{"id":"t1","bogus":1}}' >"$T_DIR/bad.json"
n=$(vjq '{"$ref":"#/components/schemas/TaskCreated"}' "$T_DIR/bad.json" | jq length)
if [ "${n:-0}" -ge 2 ]; then ok "the validator reports missing and unexpected fields ($n errors)"; else
    not_ok "the validator reports missing and unexpected fields (got ${n:-none})"; fi
printf '%s' '{"error":{"code":7,"message":"m"}}' >"$T_DIR/bad.json"
is "$(vjq '{"$ref":"#/components/schemas/Error"}' "$T_DIR/bad.json" | jq -r '.[0]')" \
    '$.error.code: is integer, want string' "the validator reports a wrong type"
printf '%s' '{"status":"sideways","version":"x","durability":"full","event_seq":1.5}' >"$T_DIR/bad.json"
is "$(vjq '{"$ref":"#/components/schemas/Health"}' "$T_DIR/bad.json" | jq length)" "2" \
    "the validator reports an enum miss and a non-integer"
printf '%s' '{"x":1}' >"$T_DIR/bad.json"
contains "$(vjq '{"type":"object","propertyNames":{}}' "$T_DIR/bad.json")" "unsupported" \
    "the validator refuses keywords it does not check"

# ---- the document itself ----

check "docs/openapi.json is JSON" jq -e . "$DOC"
is "$(jq -r .openapi "$DOC")" "3.0.3" "OpenAPI version 3.0.3"
# every $ref resolves
is "$(jq -r '. as $root | [paths(type == "string") as $p | select($p[-1] == "$ref") | getpath($p)] |
    unique[] | select(. as $r | $root | getpath($r | ltrimstr("#/") | split("/")) == null)' "$DOC")" "" \
    "every \$ref resolves"
# path templates and path parameters agree, operation ids are unique
bad=$(jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[] |
    ([$p | scan("\\{([a-z_]+)\\}") | .[0]] | sort) as $want |
    ([(.value.parameters // [])[] | select(.in == "path") | .name] | sort) as $have |
    select($want != $have) | "\(.key) \($p): template \($want) vs parameters \($have)"' "$DOC")
is "$bad" "" "every path template has exactly its path parameters"
is "$(jq -r '[.paths[][] | .operationId] | group_by(.) | map(select(length > 1)) | length' "$DOC")" "0" \
    "operation ids are unique"
# the auth a route documents: security [] -> none, admin -> admin, token -> token
# doc-ops: METHOD PATH AUTH X-S2-AUTH OPID URL ALLOW, where URL is the path with each path
# parameter's example and ALLOW the path's methods
jq -r '.paths | to_entries[] | .key as $p | (.value | keys | map(ascii_upcase) | sort | join(",")) as $allow |
    .value | to_entries[] |
    (if .value.security == [] then "none" elif (.value.security[0] | has("admin")) then "admin"
     else "token" end) as $a |
    (reduce ((.value.parameters // [])[] | select(.in == "path")) as $q ($p;
        sub("\\{" + $q.name + "\\}"; ($q.example | tostring)))) as $url |
    "\(.key | ascii_upcase) \($p) \($a) \(.value["x-s2-auth"]) \(.value.operationId) \($url) \($allow)"' "$DOC" |
    sort >"$T_DIR/doc-ops"
is "$(awk '$3 != $4' "$T_DIR/doc-ops")" "" "security and x-s2-auth agree"

# ---- (a) the route table of src/api.c ----

sed -n '/api_routes\[\] = {/,/^};/p' "$API_C" |
    grep -o '{"[A-Z]*", "[^"]*", [a-z_]*, AUTH_[A-Z]*}' |
    sed -E 's/\{"([A-Z]+)", "([^"]*)", [a-z_]+, AUTH_([A-Z]+)\}/\1 \2 \3/' |
    awk '{ gsub(/:[a-z_]+/, "{&}", $2); gsub(/\{:/, "{", $2); print $1, $2, tolower($3) }' |
    sort >"$T_DIR/code-routes"
# the one route the HTTP layer answers itself (src/http.c dispatch(), on every node)
echo "GET /v1/cluster none" >>"$T_DIR/code-routes"
sort -o "$T_DIR/code-routes" "$T_DIR/code-routes"
n=$(wc -l <"$T_DIR/code-routes")
if [ "$n" -ge 40 ]; then ok "route table read from src/api.c ($n routes)"; else
    not_ok "route table read from src/api.c (only $n routes: did its layout change?)"; fi
awk '{print $1, $2, $3}' "$T_DIR/doc-ops" | sort >"$T_DIR/doc-routes"
if diff "$T_DIR/code-routes" "$T_DIR/doc-routes" >"$T_DIR/routes.diff"; then
    ok "documented (method, path, auth) = src/api.c's route table"
else
    not_ok "documented (method, path, auth) = src/api.c's route table (< code, > document)"
    sed 's/^/# /' "$T_DIR/routes.diff" | head -30
fi

# every request field the handlers accept (their "fields" lists) is documented somewhere
perl -0777 -ne 'while (/char \*const \w+\[\] = \{(.*?)\};/sg) { $b = $1; print "$1\n" while $b =~ /"(\w+)"/g }' \
    src/api_*.c src/governor.c | sort -u >"$T_DIR/code-fields"
jq -r '[.components.schemas[] | .. | objects | select(.additionalProperties == false) |
    .properties // {} | keys[]] | unique[]' "$DOC" >"$T_DIR/doc-fields"
n=$(wc -l <"$T_DIR/code-fields")
missing=$(comm -23 "$T_DIR/code-fields" "$T_DIR/doc-fields" | paste -sd' ' -)
if [ "$n" -ge 50 ] && [ -z "$missing" ]; then ok "the $n request fields the handlers accept are documented"; else
    not_ok "the request fields the handlers accept are documented ($n read; undocumented: $missing)"; fi

# ---- the live server ----

s2_start --max-body 65536
SW_TOKEN=$(curl -s -H "Authorization: Bearer $S2_TOKEN" -d '{"id":"probe"}' "$S2_SERVER/v1/swarms" |
    jq -r .token)
[ -n "$SW_TOKEN" ] && [ "$SW_TOKEN" != null ] || not_ok "a swarm token for the probes"

# req METHOD URLPATH [BODY] [TOKEN]: sets ST (status), RB (body file), RH (headers file).
# TOKEN "-" sends none. Long-lived replies (the event stream) are cut after 2 s.
RB=$T_DIR/resp.body RH=$T_DIR/resp.head
req() {
    _m=$1 _p=$2 _b=${3:-} _tok=${4:-$S2_TOKEN}
    set -- -s -m 2 -o "$RB" -D "$RH" -w '%{http_code}' -X "$_m"
    [ "$_tok" != "-" ] && set -- "$@" -H "Authorization: Bearer $_tok"
    [ -n "$_b" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$_b"
    ST=$(curl "$@" "$S2_SERVER$_p")
}
hdr() { tr -d '\r' <"$RH" | awk -v h="$1" 'index(tolower($0), tolower(h) ":") == 1 {sub(/^[^:]*: */, ""); print}' | tail -1; }
code() { jq -r '.error.code // empty' "$RB" 2>/dev/null; }
router_said_no() { # the router's own refusals (http.c route()): 405, or 404 no_such_route
    [ "$ST" = 405 ] || { [ "$ST" = 404 ] && [ "$(code)" = no_such_route ]; }
}

while read -r m tmpl auth _ opid url allow; do
    why=""
    req "$m" "$url" "" -
    if router_said_no; then why="$why; without a token the router answered $ST $(code)"; fi
    case $auth in
    none) [ "$ST" = 401 ] && why="$why; public but answered 401" ;;
    *) { [ "$ST" = 401 ] && [ -n "$(hdr WWW-Authenticate)" ]; } ||
        why="$why; without a token: $ST, want 401 with WWW-Authenticate" ;;
    esac
    req "$m" "$url" "" "$SW_TOKEN"
    if router_said_no; then why="$why; with a swarm token the router answered $ST $(code)"; fi
    admin_refusal=0
    [ "$ST" = 403 ] && grep -q 'this endpoint needs the admin token' "$RB" && admin_refusal=1
    case $auth in
    admin) [ $admin_refusal = 1 ] || why="$why; swarm token: $ST, want the router's admin-only 403" ;;
    *) [ $admin_refusal = 0 ] || why="$why; swarm token refused as admin-only" ;;
    esac
    # another method on the same path: 405 listing exactly the documented methods
    req PATCH "$url" "" "$SW_TOKEN"
    got=$(hdr Allow | tr -d ' ' | tr ',' '\n' | sort | paste -sd, -)
    { [ "$ST" = 405 ] && [ "$got" = "$allow" ]; } || why="$why; PATCH: $ST Allow '$got', want 405 Allow '$allow'"
    if [ -z "$why" ]; then ok "routed: $m $tmpl ($auth)"; else not_ok "routed: $m $tmpl ($auth)${why}"; fi
done <"$T_DIR/doc-ops"

for probe in "GET /v1/nope" "PUT /v1/nope" "GET /v1/swarms/a/b/c" "POST /v1/swarms/x/explode" \
    "GET /v2/swarms" "DELETE /v1/tasks/t1/thread/1" "GET /v1/witness/proof"; do
    set -- $probe
    req "$1" "$2"
    if [ "$ST" = 404 ] && [ "$(code)" = no_such_route ]; then ok "undocumented $probe: router 404"; else
        not_ok "undocumented $probe: router 404 (got $ST $(cat "$RB"))"; fi
done

# Request bodies: an unknown field is refused by name, every documented field is known.
jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[] | select(.value.requestBody) |
    .value.operationId' "$DOC" >"$T_DIR/body-ops"
while read -r opid; do
    set -- $(awk -v o="$opid" '$5 == o {print $1, $6}' "$T_DIR/doc-ops")
    m=$1 url=$2
    fields=$(jq -r --arg o "$opid" --slurpfile d "$DOC" -L "$LIBDIR" 'include "schema";
        [.paths[][] | select(.operationId == $o)][0].requestBody.content["application/json"].schema |
        deref($d[0]) | [(., (.oneOf // [])[]) | deref($d[0]) | (.properties // {}) | keys[]] | unique[]' "$DOC")
    closed=$(jq -r --arg o "$opid" --slurpfile d "$DOC" -L "$LIBDIR" 'include "schema";
        [.paths[][] | select(.operationId == $o)][0].requestBody.content["application/json"].schema |
        deref($d[0]) | [(if .oneOf then .oneOf[] else . end) | deref($d[0]) | .additionalProperties == false] | all' "$DOC")
    why=""
    [ "$closed" = true ] || why="$why; the document does not close the body (additionalProperties false)"
    req "$m" "$url" '{"zz_not_a_field":1}'
    { [ "$ST" = 400 ] && [ "$(code)" = unknown_field ] && grep -q zz_not_a_field "$RB"; } ||
        why="$why; unknown field: $ST $(cat "$RB")"
    for f in $fields; do
        req "$m" "$url" "{\"$f\":null}"
        [ "$(code)" = unknown_field ] && why="$why; documented field '$f' is unknown to the server"
    done
    if [ -z "$why" ]; then ok "body of $opid: unknown fields refused, documented ones known ($(echo $fields | wc -w))"
    else not_ok "body of $opid$why"; fi
done <"$T_DIR/body-ops"
# the optional bodies may be left out
for opid in cancelTask approveTask; do
    set -- $(awk -v o="$opid" '$5 == o {print $1, $6}' "$T_DIR/doc-ops")
    req "$1" "$2" ""
    if [ "$(code)" != invalid_json ] && [ "$ST" != 400 ]; then ok "$opid without a body is accepted"; else
        not_ok "$opid without a body is accepted (got $ST $(cat "$RB"))"; fi
done

# ---- (b) real replies against their documented schemas ----

# api WANT OPID URLPATH [BODY] [TOKEN]: one request; its status must be WANT and one that
# the document lists for OPID, and its JSON body must validate (strictly) against the schema
# documented for that status.
api() {
    _want=$1 _op=$2 _url=$3
    shift 3
    _m=$(awk -v o="$_op" '$5 == o {print $1}' "$T_DIR/doc-ops")
    req "$_m" "$_url" "$@"
    _why=""
    [ "$ST" = "$_want" ] || _why="; status $ST, want $_want: $(head -c 300 "$RB")"
    _errs=$(jq -rn --slurpfile d "$DOC" --rawfile body "$RB" --arg o "$_op" --arg st "$ST" \
        -L "$LIBDIR" 'include "schema"; reply_errors($d[0]; $o; $st; $body)[]' 2>&1)
    [ -z "$_errs" ] || _why="$_why; $(printf '%s' "$_errs" | head -5 | paste -sd'|' -)"
    if [ -z "$_why" ]; then ok "$_op $_m $_url -> $ST"; else not_ok "$_op $_m $_url -> $ST$_why"; fi
}
J() { jq -r "$1" "$RB"; }

api 200 health /healthz "" -
api 404 getCluster /v1/cluster "" -   # SQLite: no cluster (t1000 checks the 200 on PostgreSQL)
api 200 whoami /v1/whoami
api 200 whoami /v1/whoami "" "$SW_TOKEN"
api 401 whoami /v1/whoami "" -
api 401 whoami /v1/whoami "" not-a-token
api 200 witnessKey /v1/witness/key "" -
api 200 dashboard / "" -
api 200 dashboardAsset /index.html "" -
api 404 dashboardAsset /no-such-file.js "" -

api 201 createSwarm /v1/swarms '{"id":"sip","role":"SIP calls","relation":"critical","capabilities":["integration:sip","telephony"],"budget":40,"branch":"swarm/sip"}'
SIP=$(J .token)
api 201 createSwarm /v1/swarms '{"id":"web","capabilities":["web:frontend"]}'
WEB=$(J .token)
api 409 createSwarm /v1/swarms '{"id":"sip"}'
api 400 createSwarm /v1/swarms '{"id":"x","colour":"red"}'
is "$(J .error.code)" unknown_field "unknown field: code unknown_field"
api 400 createSwarm /v1/swarms '{"id":"bad id"}'
api 400 createSwarm /v1/swarms '{"id":'
is "$(J .error.code)" invalid_json "malformed JSON: code invalid_json"
api 403 createSwarm /v1/swarms '{"id":"x"}' "$SIP"
api 200 listSwarms '/v1/swarms?limit=1'
is "$(J .next)" probe "a full page names its cursor"
api 200 listSwarms '/v1/swarms?after=probe'
api 400 listSwarms '/v1/swarms?limit=0'
api 200 getSwarm /v1/swarms/sip
api 404 getSwarm /v1/swarms/web "" "$SIP"
api 200 swarmStatus /v1/swarms/sip/status "" "$SIP"
api 200 status /v1/status
api 200 status /v1/status "" "$SIP"

api 201 createAgent /v1/agents '{"id":"a1","swarm":"sip","model":"sonnet","capabilities":["integration:sip"]}'
api 201 createAgent /v1/agents '{"id":"a2","capabilities":["integration:sip"],"max_leases":2}' "$SIP"
api 201 createAgent /v1/agents '{"id":"w1","swarm":"web","capabilities":["web:frontend"]}'
api 400 createAgent /v1/agents '{"id":"a3","swarm":"sip","model":"nope"}'
api 409 createAgent /v1/agents '{"id":"a1","swarm":"sip"}'
api 403 createAgent /v1/agents '{"id":"a4","swarm":"web"}' "$SIP"
api 200 listAgents /v1/agents
api 200 listAgents '/v1/agents?swarm=sip'
api 404 listAgents '/v1/agents?swarm=nope'
api 200 getAgent /v1/agents/a1
api 200 listModels /v1/models
api 200 putModel /v1/models '{"name":"mini","tier":1,"usd_per_mtok_in":0.5,"usd_per_mtok_out":1}'
api 400 putModel /v1/models '{"name":"mini","tier":12,"usd_per_mtok_in":0.5,"usd_per_mtok_out":1}'

api 201 createTasks /v1/tasks '{"id":"t1","swarm":"sip","title":"adapter","body":"write it","requires":["integration:sip"],"priority":5,"max_cost":2}'
api 201 createTasks /v1/tasks '{"tasks":[{"id":"t2","title":"routing","depends_on":["t1"]},{"id":"t3","title":"gated","approval":"human"},{"id":"t4","title":"fails","max_attempts":1,"priority":-1}]}' "$SIP"
is "$(J .count)" 3 "batch create counts its tasks"
api 201 createTasks /v1/tasks '{"id":"t5","swarm":"web","title":"pathed","paths":["src/sip/**"]}'
api 201 createAgent /v1/agents '{"id":"w2"}' "$WEB"
api 200 claim /v1/claim '{"agent":"w2"}' "$WEB"
is "$(J .task.id) $(J '.task.paths[0]')" "t5 src/sip/**" "the web agent holds t5 and its path lease"
api 400 createTasks /v1/tasks '{"tasks":[{"id":"c1","swarm":"sip","title":"a","depends_on":["c2"]},{"id":"c2","swarm":"sip","title":"b","depends_on":["c1"]}]}'
is "$(J .error.code)" dependency_cycle "a cycle is refused: dependency_cycle"
api 400 createTasks /v1/tasks '{"swarm":"sip","title":"x","depends_on":["nope"]}'
api 409 createTasks /v1/tasks '{"id":"t1","swarm":"sip","title":"again"}'
api 200 listTasks '/v1/tasks?swarm=sip&limit=2'
is "$(J '.next | type')" string "a full page of tasks names its cursor"
api 200 listTasks "/v1/tasks?state=ready&after=$(J .next)"
api 400 listTasks '/v1/tasks?state=sideways'
api 403 listTasks '/v1/tasks?swarm=web' "" "$SIP"
api 200 getTask /v1/tasks/t2
is "$(J '.task.waiting_on[0].task')" t1 "t2 waits on t1"
api 404 getTask /v1/tasks/t1 "" "$WEB"

api 200 claim /v1/claim '{"agent":"a1","wait_ms":0}' "$SIP"
is "$(J .task.id)" t1 "the claim hands out t1"
L1=$(J .lease.token)
api 200 pathsCheck /v1/paths/check "{\"paths\":[\"src/sip/a.c\",\"README.md\"],\"lease\":\"$L1\"}" "$SIP"
is "$(J .lease.valid)" true "the committer's lease is current"
api 200 pathsCheck /v1/paths/check '{"paths":["src/sip/a.c"]}' "$WEB"
is "$(J '.conflicts[0].task')" t5 "a path leased to another claim is a conflict"
api 400 pathsCheck /v1/paths/check '{"paths":["../etc/passwd"]}' "$SIP"
# a git hook's notification: a real repository with one good and one malformed file
GR=$T_DIR/gitrepo
git init -q "$GR"
printf -- '---\ntasks:\n  - id: g1\n    title: from git\n---\n## g1\nbody\n' >"$GR/INSTRUCTIONS-sip-PHASE-1.md"
printf -- '---\ntasks:\n  - id: g2\n    titel: typo\n---\n' >"$GR/INSTRUCTIONS-web-PHASE-1.md"
git -C "$GR" add -A && git -C "$GR" -c user.name=t -c user.email=t@t commit -qm instructions
api 200 gitNotify /v1/git/notify "{\"repo\":\"$GR\"}" "$SIP"
is "$(J '.created | join(",")')" "g1" "gitNotify: a swarm token imports its own swarm's file"
contains "$(J '[.errors[].message] | join("|")')" "this token is scoped to swarm 'sip'" "...and says why it skips the other's"
api 200 gitNotify /v1/git/notify "{\"repo\":\"$GR\",\"ref\":\"HEAD\"}"
is "$(J '.unchanged | join(",")') $(J '.errors[0].line')" "g1 4" "gitNotify again: unchanged, the typo reported at its line"
api 400 gitNotify /v1/git/notify '{"repo":"relative/path"}'
api 400 gitNotify /v1/git/notify "{\"repo\":\"$T_DIR\"}"
api 409 claim /v1/claim '{"agent":"a1"}' "$SIP"
is "$(J .error.code)" agent_busy "a busy agent: agent_busy"
api 404 claim /v1/claim '{"agent":"ghost"}'
api 400 claim /v1/claim '{"agent":"a1","wait_ms":300001}'
# the lease token is also a bearer token, for its own task only
api 200 whoami /v1/whoami "" "$L1"
is "$(J .kind)" task "a lease token is a task principal"
api 200 heartbeat /v1/tasks/t1/heartbeat "" "$L1"
api 200 getTask /v1/tasks/t1 "" "$L1"
api 404 getTask /v1/tasks/t2 "" "$L1"
api 403 heartbeat /v1/tasks/t2/heartbeat "" "$L1"
api 403 listTasks /v1/tasks "" "$L1"
api 403 events /v1/events "" "$L1"
api 403 listWitness /v1/witness "" "$L1"
api 204 claim /v1/claim '{"agent":"w1","wait_ms":100}' "$WEB"
is "$(hdr S2-Reason)" "no ready task for this agent" "204 says why in S2-Reason"
api 200 heartbeat /v1/tasks/t1/heartbeat "{\"lease\":\"$L1\",\"usage\":{\"tokens_in\":1000,\"tokens_out\":100}}" "$SIP"
api 400 heartbeat /v1/tasks/t1/heartbeat "{\"lease\":\"$L1\",\"usage\":{\"tokens\":1}}" "$SIP"
api 409 heartbeat /v1/tasks/t1/heartbeat '{"lease":"s2l_9_stale"}' "$SIP"

api 200 blockTask /v1/tasks/t1/block "{\"lease\":\"$L1\",\"needs\":[\"wizardry\"],\"reason\":\"nobody knows this\"}" "$SIP"
is "$(J .escalated)" true "a blocker nobody can help escalates"
api 409 blockTask /v1/tasks/t1/block "{\"lease\":\"$L1\",\"needs\":[\"wizardry\"],\"reason\":\"again\"}" "$SIP"
api 200 listBlockers /v1/blockers
api 200 listBlockers '/v1/blockers?swarm=sip' "" "$SIP"
api 201 postThread /v1/tasks/t1/thread "{\"lease\":\"$L1\",\"body\":\"what I tried\"}" "$SIP"
POST=$(J .post)
api 200 getThread /v1/tasks/t1/thread "" "$SIP"
api 409 acceptPost "/v1/tasks/t1/thread/$POST/accept" "{\"lease\":\"$L1\"}" "$SIP"
is "$(J .error.code)" own_post "the blocked agent's own post is not judged"
api 409 rejectPost "/v1/tasks/t1/thread/$POST/reject" "{\"lease\":\"$L1\"}" "$SIP"
api 404 acceptPost /v1/tasks/t1/thread/999/accept "{\"lease\":\"$L1\"}" "$SIP"
api 400 acceptPost /v1/tasks/t1/thread/x/accept "{\"lease\":\"$L1\"}" "$SIP"
api 200 listEscalations /v1/escalations
ESC=$(J '.escalations[0].id')
api 200 listEscalations '/v1/escalations?all=1' "" "$SIP"
api 200 unblockTask /v1/tasks/t1/unblock "{\"lease\":\"$L1\"}" "$SIP"
api 409 unblockTask /v1/tasks/t1/unblock "{\"lease\":\"$L1\"}" "$SIP"
api 200 done /v1/tasks/t1/done "{\"lease\":\"$L1\",\"usage\":{\"model\":\"sonnet\",\"tokens_in\":12000,\"tokens_out\":3000},\"result\":{\"pr\":12}}" "$SIP"
is "$(J .task.state)" done "t1 is done"
api 409 done /v1/tasks/t1/done "{\"lease\":\"$L1\"}" "$SIP"
is "$(J .error.code)" stale_lease "a finished lease: stale_lease"
big=$(head -c 270000 /dev/zero | tr '\0' x)
api 200 claim /v1/claim '{"agent":"a1"}' "$SIP"
L2=$(J .lease.token) T2=$(J .task.id)
printf '{"lease":"%s","result":"%s"}' "$L2" "$big" >"$T_DIR/big.json"
api 413 done "/v1/tasks/$T2/done" "@$T_DIR/big.json" "$SIP"
api 200 fail "/v1/tasks/$T2/fail" "{\"lease\":\"$L2\",\"reason\":\"flaky\",\"usage\":{\"usd\":0.01}}" "$SIP"
is "$(J .task.state)" ready "a failed attempt goes back to ready"
api 200 claim /v1/claim '{"agent":"a1"}' "$SIP"
L3=$(J .lease.token) T3=$(J .task.id)
api 200 fail "/v1/tasks/$T3/fail" "{\"lease\":\"$L3\",\"retry\":false}" "$SIP"
is "$(J .task.state) $(J .task.retry_at)" "dead null" "retry false: dead"

api 200 cancelTask /v1/tasks/t4/cancel '{"reason":"not needed"}' "$SIP"
api 409 cancelTask /v1/tasks/t4/cancel
api 404 cancelTask /v1/tasks/nope/cancel
api 201 createApprover /v1/approvers '{"name":"alice"}'
ALICE=$(J .token)
api 400 createApprover /v1/approvers '{"name":"no spaces"}'
api 403 approveTask /v1/tasks/t3/approve "" "$SIP"
api 200 approveTask /v1/tasks/t3/approve '{"comment":"ok"}' "$ALICE"
api 409 approveTask /v1/tasks/t3/approve "" "$ALICE"
api 200 whoami /v1/whoami "" "$ALICE"

api 200 getPolicy /v1/policy "" "$SIP"
api 200 putPolicy /v1/policy '{"budget_alert_pct":75,"webhook_url":"http://127.0.0.1:9/hook"}'
api 400 putPolicy /v1/policy '{"budget_alert_pct":100}'
api 403 putPolicy /v1/policy '{"budget_alert_pct":70}' "$SIP"
api 200 getBudgets /v1/budgets
api 200 getBudgets '/v1/budgets?swarm=sip' "" "$SIP"
api 400 getBudgets '/v1/budgets?swarm=bad%20id'
api 200 setBudget /v1/budgets '{"swarm":"sip","budget":50}'
api 200 setBudget /v1/budgets '{"budget":1000}'
api 404 setBudget /v1/budgets '{"swarm":"nope","budget":1}'
api 200 listBreakers /v1/breakers "" "$SIP"
api 200 resetBreaker /v1/breakers/a1/reset
api 409 resetBreaker /v1/breakers/sip/reset
api 404 resetBreaker /v1/breakers/nope/reset
api 200 ackEscalation "/v1/escalations/$ESC/ack"
api 404 ackEscalation /v1/escalations/99999/ack
api 400 ackEscalation /v1/escalations/x/ack

api 200 putIdleTasks /v1/swarms/sip/idle_tasks '{"idle_tasks":[{"title":"tidy the docs","requires":["integration:sip"]}]}' "$SIP"
api 403 putIdleTasks /v1/swarms/web/idle_tasks '{"idle_tasks":null}' "$SIP"
api 400 putIdleTasks /v1/swarms/sip/idle_tasks '{}' "$SIP"
api 200 getIdleTasks /v1/swarms/sip/idle_tasks "" "$SIP"
is "$(J '.idle_tasks[0].title')" "tidy the docs" "getIdleTasks reads back what was put"
api 404 getIdleTasks /v1/swarms/web/idle_tasks "" "$SIP"  # another swarm reads as absent, as getSwarm
api 404 getIdleTasks /v1/swarms/nope/idle_tasks
api 200 getContract /v1/swarms/sip/contract "" "$SIP"
is "$(J .contract)" null "no contract yet"
api 200 putContract /v1/swarms/sip/contract '{"contract":{"version":"1.0.0","limits":{"max_memory_mb":256},"slos":{"success_rate":0.95},"network":["api.example.com:443"],"secrets":["SIP_API_KEY"]}}'
api 400 putContract /v1/swarms/sip/contract '{"contract":{"network":["no-port"]}}'
api 200 getContract /v1/swarms/sip/contract "" "$SIP"
is "$(J '.contract.network[0]')" api.example.com:443 "the contract as set"
api 200 listSlo /v1/slo
api 200 listSlo /v1/slo "" "$SIP"
api 200 swarmSlo /v1/swarms/sip/slo "" "$SIP"
is "$(J .slo.samples)" 3 "three leases ended in swarm sip"
api 404 swarmSlo /v1/swarms/web/slo "" "$SIP"
api 200 pauseSwarm /v1/swarms/web/pause
is "$(J .swarm.state)" paused "paused"
api 204 claim /v1/claim '{"agent":"w1"}' "$WEB"
is "$(hdr S2-Reason)" "swarm paused" "a paused swarm's claim says so"
api 200 resumeSwarm /v1/swarms/web/resume
api 404 pauseSwarm /v1/swarms/nope/pause

api 200 listWitness '/v1/witness?from=1&limit=5'
is "$(J .next)" 6 "a full witness page names the next from"
api 200 listWitness '/v1/witness?order=desc&limit=3&format=export'
api 200 listWitness '/v1/witness?task=t1' "" "$SIP"
api 403 listWitness '/v1/witness?swarm=web' "" "$SIP"
api 400 listWitness '/v1/witness?limit=5000'
api 200 listCheckpoints '/v1/witness/checkpoints?order=desc&limit=2'
SIZE=$(J '.checkpoints[0].tree_size')
api 200 inclusionProof "/v1/witness/proof/inclusion?seq=3&size=$SIZE"
api 400 inclusionProof /v1/witness/proof/inclusion
api 404 inclusionProof "/v1/witness/proof/inclusion?seq=$((SIZE + 100))"
api 200 consistencyProof "/v1/witness/proof/consistency?old=4&new=$SIZE"
api 400 consistencyProof '/v1/witness/proof/consistency?old=4'
api 200 witnessExport /v1/witness/export
is "$(head -1 "$RB" | jq -r .format)" s2-witness-export-v1 "the export starts with its header"
api 200 metrics /metrics
check "metrics are Prometheus text" grep -q '^s2_tasks{state="done"} ' "$RB"
api 403 metrics /metrics "" "$SIP"

# Server-Sent Events: every data line is an Event
api 200 events '/v1/events?after=1' "" "$SIP"
is "$(hdr Content-Type)" text/event-stream "events are text/event-stream"
sed -n 's/^data: //p' "$RB" >"$T_DIR/events"
n=0 bad=""
while read -r line; do
    n=$((n + 1))
    printf '%s' "$line" >"$T_DIR/event.json"
    e=$(vjq '{"$ref":"#/components/schemas/Event"}' "$T_DIR/event.json")
    [ "$e" = "[]" ] || bad="$bad $e"
done <"$T_DIR/events"
if [ "$n" -gt 5 ] && [ -z "$bad" ]; then ok "$n events of swarm sip validate as Event"; else
    not_ok "events validate as Event ($n read):$bad"; fi
api 400 events '/v1/events?after=x'
api 403 events '/v1/events?swarm=web' "" "$SIP"

# the router's 405, and 413 past --max-body (this server: 65536 bytes)
req DELETE /v1/swarms
is "$ST $(hdr Allow)" "405 POST, GET" "405 names the allowed methods"
printf '%s' "$(cat "$RB")" >"$T_DIR/e.json"
is "$(vjq '{"$ref":"#/components/schemas/Error"}' "$T_DIR/e.json")" "[]" "the 405 body is an Error"
head -c 70000 /dev/zero | tr '\0' ' ' >"$T_DIR/big.json"
api 413 createSwarm /v1/swarms "@$T_DIR/big.json"
is "$(J .error.code)" too_large "413: code too_large"

# 429: a swarm over its rate
api 200 putPolicy /v1/policy '{"rate_limit_rps":1,"rate_limit_burst":1}'
req GET /v1/whoami "" "$WEB"
api 429 whoami /v1/whoami "" "$WEB"
ra=$(hdr Retry-After)
case $ra in [1-9]*) ok "429 carries Retry-After ($ra s)" ;; *) not_ok "429 carries Retry-After (got '$ra')" ;; esac
api 200 whoami /v1/whoami "" # the admin token is not limited
api 200 putPolicy /v1/policy '{"rate_limit_rps":1000,"rate_limit_burst":2000}'

# 503: a store that cannot write (a full disk), in a private mount namespace when possible
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null &&
    unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs "$1"' sh "$T_DIR" 2>/dev/null; then
    s2_stop
    mkdir -p "$T_DIR/full"
    unshare -m sh -c 'mount -t tmpfs -o size=600k tmpfs "$1" && "$2" init --db "$1/s2.db" --json >"$3/full.json" &&
        exec "$2" serve --db "$1/s2.db" --listen 127.0.0.1:0 --port-file "$3/full.port"' \
        sh "$T_DIR/full" "$S2" "$T_DIR" >>"$T_DIR/serve.log" 2>&1 &
    SRV_PID=$!
    if wait_for 20 test -s "$T_DIR/full.port"; then
        S2_SERVER=http://127.0.0.1:$(cat "$T_DIR/full.port")
        S2_TOKEN=$(jq -r .admin_token "$T_DIR/full.json")
        wait_for 20 curl -sf "$S2_SERVER/healthz"
        req POST /v1/swarms '{"id":"s1"}'
        fill=$(head -c 60000 /dev/zero | tr '\0' x)
        i=0
        while [ $i -lt 100 ]; do
            req POST /v1/tasks "{\"swarm\":\"s1\",\"title\":\"t$i\",\"body\":\"$fill\"}"
            [ "$ST" = 201 ] || break
            i=$((i + 1))
        done
        api 503 createTasks /v1/tasks '{"swarm":"s1","title":"one more","body":"'"$fill"'"}'
        is "$(J .error.code)" store_unavailable "503: code store_unavailable"
        ra=$(hdr Retry-After)
        case $ra in [1-9]*) ok "503 carries Retry-After ($ra s)" ;; *) not_ok "503 carries Retry-After (got '$ra')" ;; esac
        api 200 listTasks '/v1/tasks?limit=1'
        api 200 getSwarm /v1/swarms/s1
    else
        not_ok "s2 serve on a small tmpfs started"
    fi
else
    ok "503 on a full disk # SKIP no private mount namespace here"
fi

# ---- (c) the CLI reference ----

"$S2" help --markdown >"$T_DIR/cli.md"
if cmp -s "$T_DIR/cli.md" docs/CLI.md; then ok "docs/CLI.md = s2 help --markdown"; else
    not_ok "docs/CLI.md = s2 help --markdown (regenerate: ./s2 help --markdown >docs/CLI.md)"
    diff docs/CLI.md "$T_DIR/cli.md" | head -20 | sed 's/^/# /'
fi

t_done
