# t0110-bad-input: a table of bad requests. Each gets its own 4xx and an error body that is
# exactly {"error": {"code", "message"}} whose message names the offending field (or id, or
# cycle). Unknown fields are rejected everywhere (the rule of json.h: a typo must not be
# silently ignored). None of them writes anything: after the table the task count and the
# event sequence are what they were, the server is healthy, never answered 500, and its log
# shows no crash.
. tests/lib.sh

# Every curl of this test gives up after 10 s, and leaves the reply's headers in $T_DIR/headers.
mkdir -p "$T_DIR/curl"
printf 'max-time = 10\ndump-header = "%s"\n' "$T_DIR/headers" >"$T_DIR/curl/.curlrc"
export CURL_HOME="$T_DIR/curl"
header() { tr -d '\r' <"$T_DIR/headers" | grep -i "^$1:" | head -1 | sed 's/^[^:]*: *//'; }

# bad STATUS CODE NEEDLE DESCRIPTION METHOD PATH [BODY] [TOKEN]: the request gets STATUS,
# the body is exactly {"error":{"code":CODE,"message":"...NEEDLE..."}}. A BODY of "@FILE"
# sends that file (curl's syntax): one argument cannot hold more than 128 KiB.
bad() {
    st=$1 code=$2 needle=$3 d=$4
    shift 4
    http "$@"
    # one jq: "shape CODE MESSAGE" when the body has exactly that shape
    got=$(printf '%s' "$HTTP_BODY" | jq -r 'if (keys == ["error"]) and (.error | keys == ["code", "message"])
        and (.error.message | type == "string" and length > 0)
        then "shape \(.error.code) \(.error.message)" else "wrong shape" end' 2>/dev/null)
    if [ "$HTTP_STATUS" = "$st" ] && case $got in "shape $code "*"$needle"*) true ;; *) false ;; esac; then
        ok "$d: $st $code"
    else
        not_ok "$d"
        note "$1 $2 -> $HTTP_STATUS $(printf '%s' "$HTTP_BODY" | head -c 300)"
        note "wanted $st {\"error\":{\"code\":\"$code\",\"message\":\"...$needle...\"}}"
    fi
}
# rep N STRING: STRING N times.
rep() { awk -v n="$1" -v s="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", s }'; }
# task_count: every task, as the admin sees them.
task_count() { curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks?limit=1000" | jq '.tasks | length'; }
event_seq() { curl -s "$S2_SERVER/healthz" | jq -r .event_seq; }

MAX=300000
s2_start --max-body $MAX

# ---- a little world to be wrong about ----
expect_http 201 "swarm s1" POST /v1/swarms '{"id":"s1"}'
TS=$(j .token)
expect_http 201 "swarm s2" POST /v1/swarms '{"id":"s2"}'
expect_http 201 "agent a1 (one lease at a time)" POST /v1/agents '{"id":"a1","swarm":"s1"}'
expect_http 201 "agent a2" POST /v1/agents '{"id":"a2","swarm":"s1"}'
expect_http 201 "task t1" POST /v1/tasks '{"id":"t1","swarm":"s1","title":"one","priority":9}'
expect_http 201 "task t2" POST /v1/tasks '{"id":"t2","swarm":"s1","title":"two"}'
expect_http 201 "task gone (to be cancelled)" POST /v1/tasks '{"id":"gone","swarm":"s1","title":"x"}'
expect_http 200 "cancel gone" POST /v1/tasks/gone/cancel
expect_http 200 "a1 claims t1" POST /v1/claim '{"agent":"a1"}'
is "$(j .task.id)" "t1" "a1 holds t1"
L=$(j .lease.token)
TASKS=$(task_count)
SEQ=$(event_seq)
note "baseline: $TASKS tasks, event_seq $SEQ"

FF=$(printf '\377')
C3=$(printf '\303')
ID129=$(rep 129 x)
LONG_E=$(rep 70 'é') # 140 bytes: too long, and a clipped quote must not split a character

# ---- the body is not a JSON object ----
bad 400 invalid_json "malformed JSON" "malformed JSON" POST /v1/swarms '{"id":'
bad 400 invalid_json "malformed JSON" "single quotes" POST /v1/swarms "{'id':'x'}"
bad 400 invalid_json "malformed JSON" "trailing garbage" POST /v1/swarms '{"id":"x"} {"id":"y"}'
bad 400 invalid_json "malformed JSON" "trailing comma" POST /v1/agents '{"id":"x","swarm":"s1",}'
bad 400 invalid_json "must be a JSON object" "an array" POST /v1/swarms '[{"id":"x"}]'
bad 400 invalid_json "malformed JSON" "a string" POST /v1/tasks '"task"'
bad 400 invalid_json "malformed JSON" "a number" POST /v1/claim '42'
bad 400 invalid_json "malformed JSON" "null" POST /v1/claim 'null'
bad 400 invalid_json "request body is empty" "no body" POST /v1/claim ''
bad 400 invalid_json "request body is empty" "no body for a task" POST /v1/tasks ''
bad 400 invalid_json "duplicate object key" "a key twice" POST /v1/swarms '{"id":"x","id":"y"}'
bad 400 invalid_json "NaN" "NaN literal" POST /v1/swarms '{"id":"x","budget":NaN}'
bad 400 invalid_json "Infinity" "Infinity literal" POST /v1/swarms '{"id":"x","budget":Infinity}'
bad 400 invalid_json "malformed JSON" "-Infinity literal" POST /v1/claim '{"agent":"a2","wait_ms":-Infinity}'
bad 400 invalid_json "too big integer" "integer past 64 bits" POST /v1/tasks \
    '{"swarm":"s1","title":"x","priority":123456789012345678901234567890}'
bad 400 invalid_json "0xff" "invalid UTF-8 in a string" POST /v1/swarms "{\"id\":\"x\",\"role\":\"a${FF}b\"}"
bad 400 invalid_json "0xc3" "truncated UTF-8 sequence" POST /v1/tasks "{\"swarm\":\"s1\",\"title\":\"${C3}\"}"
bad 400 invalid_json "malformed JSON" "invalid UTF-8 in a key" POST /v1/swarms "{\"i${FF}d\":\"x\"}"
bad 400 invalid_json "invalid Unicode" "lone surrogate escape" POST /v1/swarms '{"id":"x","role":"\ud800"}'
bad 400 invalid_json "malformed JSON" "NUL escape in a string" POST /v1/swarms '{"id":"a\u0000b"}'
bad 400 invalid_json "maximum parsing depth" "3000 nested arrays" POST /v1/swarms "$(rep 3000 '[')"
bad 400 invalid_json "maximum parsing depth" "3000 nested objects in a field" POST /v1/tasks \
    "{\"swarm\":\"s1\",\"title\":\"x\",\"body\":$(rep 3000 '{"a":')1$(rep 3000 '}')}"
bad 400 invalid_field "'role'" "100 nested arrays where a string goes" POST /v1/swarms \
    "{\"id\":\"x\",\"role\":$(rep 100 '[')$(rep 100 ']')}"

# ---- POST /v1/swarms: every field, wrong ----
bad 400 missing_field "'id'" "swarm without id" POST /v1/swarms '{"role":"x"}'
bad 400 missing_field "'id'" "swarm with id null" POST /v1/swarms '{"id":null}'
bad 400 invalid_field "'id'" "swarm id a number" POST /v1/swarms '{"id":7}'
bad 400 invalid_field "'role'" "role a number" POST /v1/swarms '{"id":"x","role":1}'
bad 400 invalid_field "'relation'" "relation a number" POST /v1/swarms '{"id":"x","relation":1}'
bad 400 invalid_field "'relation'" "relation unknown" POST /v1/swarms '{"id":"x","relation":"boss"}'
bad 400 invalid_field "'capabilities'" "capabilities a string" POST /v1/swarms '{"id":"x","capabilities":"a,b"}'
bad 400 invalid_field "'capabilities[1]'" "capabilities with a number" POST /v1/swarms '{"id":"x","capabilities":["a",2]}'
bad 400 invalid_field "'capabilities'" "capability twice" POST /v1/swarms '{"id":"x","capabilities":["a","a"]}'
bad 400 invalid_field "'capabilities'" "capability with a space" POST /v1/swarms '{"id":"x","capabilities":["a b"]}'
bad 400 invalid_field "'capabilities'" "65 capabilities" POST /v1/swarms \
    "$(jq -nc '{id:"x",capabilities:[range(65)|"c\(.)"]}')"
bad 400 invalid_field "'budget'" "budget a string" POST /v1/swarms '{"id":"x","budget":"10"}'
bad 400 invalid_field "'budget'" "budget negative" POST /v1/swarms '{"id":"x","budget":-1}'
bad 400 invalid_field "'budget'" "budget absurd" POST /v1/swarms '{"id":"x","budget":1e300}'
bad 400 invalid_field "'branch'" "branch a boolean" POST /v1/swarms '{"id":"x","branch":true}'
bad 400 invalid_field "'role'" "role with a control character" POST /v1/swarms '{"id":"x","role":"bell\u0007"}'
bad 400 invalid_field "'role'" "role of 4097 bytes" POST /v1/swarms "{\"id\":\"x\",\"role\":\"$(rep 4097 r)\"}"
bad 400 unknown_field "'owner'" "swarm with an unknown field" POST /v1/swarms '{"id":"x","owner":"me"}'
bad 409 swarm_exists "'s1'" "swarm that exists" POST /v1/swarms '{"id":"s1"}'

# ---- ids: length, characters ----
bad 400 invalid_field "swarm id" "empty swarm id" POST /v1/swarms '{"id":""}'
bad 400 invalid_field "too long (129 bytes" "swarm id of 129 bytes" POST /v1/swarms "{\"id\":\"$ID129\"}"
bad 400 invalid_field "too long (140 bytes" "swarm id of 70 two-byte characters" POST /v1/swarms "{\"id\":\"$LONG_E\"}"
bad 400 invalid_field "has ' ' at position 2" "swarm id with a space" POST /v1/swarms '{"id":"a b"}'
bad 400 invalid_field "control character" "swarm id with a control character" POST /v1/swarms '{"id":"a\u0001b"}'
bad 400 invalid_field "control character" "swarm id with a tab" POST /v1/swarms '{"id":"a\tb"}'
bad 400 invalid_field "has 'é' at position 4" "swarm id with unicode" POST /v1/swarms '{"id":"café"}'
bad 400 invalid_field "has '€' at position 1" "swarm id that is one euro sign" POST /v1/swarms '{"id":"€"}'
bad 400 invalid_field "(not first)" "swarm id starting with '-'" POST /v1/swarms '{"id":"-x"}'
bad 400 invalid_field "agent id" "agent id with a slash" POST /v1/agents '{"id":"a/b","swarm":"s1"}'
bad 400 invalid_field "agent id" "agent id of 129 bytes" POST /v1/agents "{\"id\":\"$ID129\",\"swarm\":\"s1\"}"
bad 400 invalid_field "task id" "task id with a space" POST /v1/tasks '{"id":"t 3","swarm":"s1","title":"x"}'
bad 400 invalid_field "task id" "task id of 129 bytes" POST /v1/tasks "{\"id\":\"$ID129\",\"swarm\":\"s1\",\"title\":\"x\"}"
bad 400 invalid_field "task id" "task id with unicode" POST /v1/tasks '{"id":"tâche","swarm":"s1","title":"x"}'
bad 400 invalid_field "'depends_on[0]'" "dependency id with a newline" POST /v1/tasks \
    '{"swarm":"s1","title":"x","depends_on":["t\n1"]}'
bad 400 invalid_field "'agent'" "claim for an agent id with a space" POST /v1/claim '{"agent":"a 1"}'
bad 400 invalid_field "'agent'" "claim for an agent id of 129 bytes" POST /v1/claim "{\"agent\":\"$ID129\"}"

# ---- POST /v1/agents ----
bad 400 missing_field "'id'" "agent without id" POST /v1/agents '{"swarm":"s1"}'
bad 400 missing_field "'swarm'" "agent without swarm (admin)" POST /v1/agents '{"id":"a9"}'
bad 400 invalid_field "'id'" "agent id an array" POST /v1/agents '{"id":["a9"],"swarm":"s1"}'
bad 400 invalid_field "'swarm'" "agent swarm a number" POST /v1/agents '{"id":"a9","swarm":1}'
bad 400 invalid_field "'model'" "agent model a number" POST /v1/agents '{"id":"a9","swarm":"s1","model":3}'
bad 400 unknown_model "'gpt-9'" "agent model unknown" POST /v1/agents '{"id":"a9","swarm":"s1","model":"gpt-9"}'
bad 400 invalid_field "'capabilities'" "agent capabilities an object" POST /v1/agents '{"id":"a9","swarm":"s1","capabilities":{}}'
bad 400 invalid_field "'max_leases'" "max_leases a string" POST /v1/agents '{"id":"a9","swarm":"s1","max_leases":"2"}'
bad 400 invalid_field "'max_leases'" "max_leases 0" POST /v1/agents '{"id":"a9","swarm":"s1","max_leases":0}'
bad 400 invalid_field "'max_leases'" "max_leases -1" POST /v1/agents '{"id":"a9","swarm":"s1","max_leases":-1}'
bad 400 invalid_field "'max_leases'" "max_leases 1001" POST /v1/agents '{"id":"a9","swarm":"s1","max_leases":1001}'
bad 400 invalid_field "'max_leases'" "max_leases 1.5" POST /v1/agents '{"id":"a9","swarm":"s1","max_leases":1.5}'
bad 400 unknown_field "'colour'" "agent with an unknown field" POST /v1/agents '{"id":"a9","swarm":"s1","colour":"red"}'
bad 400 unknown_swarm "'nope'" "agent in an unknown swarm" POST /v1/agents '{"id":"a9","swarm":"nope"}'
bad 409 agent_exists "'a1'" "agent that exists" POST /v1/agents '{"id":"a1","swarm":"s1"}'

# ---- POST /v1/tasks, one task: every field, wrong ----
T='"swarm":"s1","title":"x"'
bad 400 missing_field "'title'" "task without title" POST /v1/tasks '{"swarm":"s1"}'
bad 400 missing_field "'swarm'" "task without swarm (admin)" POST /v1/tasks '{"title":"x"}'
bad 400 invalid_field "'id'" "task id a number" POST /v1/tasks "{$T,\"id\":5}"
bad 400 invalid_field "'swarm'" "task swarm a number" POST /v1/tasks '{"swarm":1,"title":"x"}'
bad 400 invalid_field "'title'" "title a number" POST /v1/tasks '{"swarm":"s1","title":1}'
bad 400 invalid_field "'title'" "title empty" POST /v1/tasks '{"swarm":"s1","title":""}'
bad 400 invalid_field "'title'" "title with a newline" POST /v1/tasks '{"swarm":"s1","title":"a\nb"}'
bad 400 invalid_field "'title'" "title of 1025 bytes" POST /v1/tasks "{\"swarm\":\"s1\",\"title\":\"$(rep 1025 t)\"}"
bad 400 invalid_field "'body'" "body an object" POST /v1/tasks "{$T,\"body\":{\"a\":1}}"
bad 400 invalid_field "'body'" "body with a control character" POST /v1/tasks "{$T,\"body\":\"a\\u0002\"}"
printf '{%s,"body":"%s"}' "$T" "$(rep 262145 b)" >"$T_DIR/body.json"
bad 400 invalid_field "'body'" "body of 256 KiB + 1" POST /v1/tasks "@$T_DIR/body.json"
bad 400 invalid_field "'phase'" "phase a string" POST /v1/tasks "{$T,\"phase\":\"1\"}"
bad 400 invalid_field "'phase'" "phase negative" POST /v1/tasks "{$T,\"phase\":-1}"
bad 400 invalid_field "'phase'" "phase absurd" POST /v1/tasks "{$T,\"phase\":1000001}"
bad 400 invalid_field "'phase'" "phase 1.5" POST /v1/tasks "{$T,\"phase\":1.5}"
bad 400 invalid_field "'priority'" "priority a string" POST /v1/tasks "{$T,\"priority\":\"high\"}"
bad 400 invalid_field "'priority'" "priority absurd" POST /v1/tasks "{$T,\"priority\":1000001}"
bad 400 invalid_field "'priority'" "priority absurdly negative" POST /v1/tasks "{$T,\"priority\":-1000001}"
bad 400 invalid_field "'priority'" "priority 1e300" POST /v1/tasks "{$T,\"priority\":1e300}"
bad 400 invalid_field "'min_tier'" "min_tier 10" POST /v1/tasks "{$T,\"min_tier\":10}"
bad 400 invalid_field "'min_tier'" "min_tier -1" POST /v1/tasks "{$T,\"min_tier\":-1}"
bad 400 invalid_field "'requires'" "requires a string" POST /v1/tasks "{$T,\"requires\":\"gpu\"}"
bad 400 invalid_field "'requires[0]'" "requires with a number" POST /v1/tasks "{$T,\"requires\":[1]}"
bad 400 invalid_field "'depends_on'" "depends_on a string" POST /v1/tasks "{$T,\"depends_on\":\"t1\"}"
bad 400 invalid_field "'depends_on'" "depends_on naming t2 twice" POST /v1/tasks "{$T,\"depends_on\":[\"t2\",\"t2\"]}"
bad 400 invalid_field "'depends_on'" "257 dependencies" POST /v1/tasks \
    "$(jq -nc '{swarm:"s1",title:"x",depends_on:[range(257)|"d\(.)"]}')"
bad 400 invalid_field "'max_attempts'" "max_attempts 0" POST /v1/tasks "{$T,\"max_attempts\":0}"
bad 400 invalid_field "'max_attempts'" "max_attempts -3" POST /v1/tasks "{$T,\"max_attempts\":-3}"
bad 400 invalid_field "'max_attempts'" "max_attempts 101" POST /v1/tasks "{$T,\"max_attempts\":101}"
bad 400 invalid_field "'max_attempts'" "max_attempts true" POST /v1/tasks "{$T,\"max_attempts\":true}"
bad 400 invalid_field "'lease_ms'" "lease_ms 99" POST /v1/tasks "{$T,\"lease_ms\":99}"
bad 400 invalid_field "'lease_ms'" "lease_ms negative" POST /v1/tasks "{$T,\"lease_ms\":-1000}"
bad 400 invalid_field "'lease_ms'" "lease_ms over a day" POST /v1/tasks "{$T,\"lease_ms\":86400001}"
bad 400 invalid_field "'retry_backoff_ms'" "retry_backoff_ms negative" POST /v1/tasks "{$T,\"retry_backoff_ms\":-1}"
bad 400 invalid_field "approval" "approval unknown" POST /v1/tasks "{$T,\"approval\":\"maybe\"}"
bad 400 invalid_field "approval" "approval quorum:0" POST /v1/tasks "{$T,\"approval\":\"quorum:0\"}"
bad 400 invalid_field "'approval'" "approval a number" POST /v1/tasks "{$T,\"approval\":1}"
bad 400 invalid_field "'phase_barrier'" "phase_barrier a string" POST /v1/tasks "{$T,\"phase_barrier\":\"no\"}"
bad 400 invalid_field "'estimate_h'" "estimate_h negative" POST /v1/tasks "{$T,\"estimate_h\":-1}"
bad 400 invalid_field "'estimate_h'" "estimate_h absurd" POST /v1/tasks "{$T,\"estimate_h\":1e7}"
bad 400 invalid_field "'estimate_usd'" "estimate_usd negative" POST /v1/tasks "{$T,\"estimate_usd\":-0.01}"
bad 400 invalid_field "'max_cost'" "max_cost absurd" POST /v1/tasks "{$T,\"max_cost\":1e10}"
bad 400 invalid_field "'max_cost'" "max_cost a string" POST /v1/tasks "{$T,\"max_cost\":\"5\"}"
bad 400 unknown_field "'depend_on'" "a typo (depend_on)" POST /v1/tasks "{$T,\"depend_on\":[\"t1\"]}"
bad 400 unknown_swarm "'nope'" "task in an unknown swarm" POST /v1/tasks '{"swarm":"nope","title":"x"}'
bad 409 task_exists "'t1'" "task id that exists" POST /v1/tasks "{$T,\"id\":\"t1\"}"
bad 400 unknown_dependency "'nope'" "unknown dependency (message names the id)" POST /v1/tasks \
    "{$T,\"id\":\"t9\",\"depends_on\":[\"t1\",\"nope\"]}"
bad 400 dead_dependency "'gone'" "dependency on a cancelled task" POST /v1/tasks "{$T,\"depends_on\":[\"gone\"]}"
bad 400 dependency_cycle "'t9'" "task depending on itself" POST /v1/tasks "{$T,\"id\":\"t9\",\"depends_on\":[\"t9\"]}"
bad 403 forbidden "swarm 's2'" "swarm token, task in another swarm" POST /v1/tasks '{"swarm":"s2","title":"x"}' "$TS"

# ---- POST /v1/tasks, a batch: all or nothing ----
OKT='{"id":"ok1","swarm":"s1","title":"fine"}'
bad 400 invalid_field "'tasks'" "tasks not an array" POST /v1/tasks '{"tasks":{"id":"x"}}'
bad 400 invalid_field "'tasks'" "tasks empty" POST /v1/tasks '{"tasks":[]}'
jq -nc '{tasks:[range(10001)|{title:"x"}]}' >"$T_DIR/batch.json"
bad 400 invalid_field "got 10001" "10001 tasks" POST /v1/tasks "@$T_DIR/batch.json" "$TS"
bad 400 invalid_field "tasks[1]" "a batch holding a number" POST /v1/tasks "{\"tasks\":[$OKT,5]}"
bad 400 unknown_field "'extra'" "a batch with a field beside tasks" POST /v1/tasks "{\"tasks\":[$OKT],\"extra\":1}"
bad 400 unknown_field "tasks[0]: unknown field 'bogus'" "a batch task with an unknown field" POST /v1/tasks \
    '{"tasks":[{"swarm":"s1","title":"x","bogus":1}]}'
bad 400 missing_field "tasks[1]: field 'title'" "second task without title" POST /v1/tasks \
    "{\"tasks\":[$OKT,{\"id\":\"ok2\",\"swarm\":\"s1\"}]}"
bad 400 invalid_field "tasks[2]: field 'priority'" "third task with a bad priority" POST /v1/tasks \
    "{\"tasks\":[$OKT,{\"id\":\"ok2\",$T},{\"id\":\"ok3\",$T,\"priority\":\"x\"}]}"
bad 400 invalid_field "tasks[1]: approval" "second task with a bad approval" POST /v1/tasks \
    "{\"tasks\":[$OKT,{\"id\":\"ok2\",$T,\"approval\":\"later\"}]}"
bad 400 duplicate_id "'d1'" "the same id twice in a batch" POST /v1/tasks \
    "{\"tasks\":[{\"id\":\"d1\",$T},{\"id\":\"d1\",$T}]}"
bad 409 task_exists "tasks[1]: task 't2'" "a batch reusing an existing id" POST /v1/tasks \
    "{\"tasks\":[$OKT,{\"id\":\"t2\",$T}]}"
bad 400 unknown_dependency "'zz'" "a batch whose last task names an unknown dependency" POST /v1/tasks \
    "{\"tasks\":[$OKT,{\"id\":\"ok2\",$T,\"depends_on\":[\"ok1\"]},{\"id\":\"ok3\",$T,\"depends_on\":[\"zz\"]}]}"
bad 400 dependency_cycle "c1 -> c2 -> c3 -> c1" "a cycle inside a batch (named)" POST /v1/tasks \
    "{\"tasks\":[$OKT,{\"id\":\"c1\",$T,\"depends_on\":[\"c2\"]},{\"id\":\"c2\",$T,\"depends_on\":[\"c3\"]},{\"id\":\"c3\",$T,\"depends_on\":[\"c1\"]}]}"
bad 400 dependency_cycle "c1 -> c2 -> c1" "a two-task cycle behind a valid chain" POST /v1/tasks \
    "{\"tasks\":[{\"id\":\"c0\",$T},{\"id\":\"c1\",$T,\"depends_on\":[\"c0\",\"c2\"]},{\"id\":\"c2\",$T,\"depends_on\":[\"c1\"]}]}"
bad 403 forbidden "swarm 's2'" "swarm token: a batch with one task of another swarm" POST /v1/tasks \
    '{"tasks":[{"id":"ok1","title":"x"},{"id":"ok2","swarm":"s2","title":"x"}]}' "$TS"
bad 400 unknown_swarm "'nope'" "a batch with one task in an unknown swarm" POST /v1/tasks \
    "{\"tasks\":[$OKT,{\"id\":\"ok2\",\"swarm\":\"nope\",\"title\":\"x\"}]}"
for id in ok1 ok2 ok3 d1 c0 c1 c2 c3 t9; do
    http GET "/v1/tasks/$id"
    [ "$HTTP_STATUS" = 404 ] || { not_ok "failed batches left task $id behind"; continue; }
done
is "$(task_count)" "$TASKS" "no failed create left a task behind (count unchanged)"

# ---- POST /v1/claim ----
bad 400 missing_field "'agent'" "claim without agent" POST /v1/claim '{}'
bad 400 invalid_field "'agent'" "agent a number" POST /v1/claim '{"agent":1}'
bad 400 invalid_field "'wait_ms'" "wait_ms negative" POST /v1/claim '{"agent":"a2","wait_ms":-1}'
bad 400 invalid_field "'wait_ms'" "wait_ms over 300 s" POST /v1/claim '{"agent":"a2","wait_ms":300001}'
bad 400 invalid_field "'wait_ms'" "wait_ms absurd" POST /v1/claim '{"agent":"a2","wait_ms":1e18}'
bad 400 invalid_field "'wait_ms'" "wait_ms a string" POST /v1/claim '{"agent":"a2","wait_ms":"5"}'
bad 400 unknown_field "'timeout'" "claim with an unknown field" POST /v1/claim '{"agent":"a2","timeout":5}'
bad 404 unknown_agent "'ghost'" "claim for an unknown agent" POST /v1/claim '{"agent":"ghost"}'
bad 404 unknown_agent "'ghost'" "claim with wait for an unknown agent" POST /v1/claim '{"agent":"ghost","wait_ms":50}'
bad 409 agent_busy "'a1'" "claim past max_leases" POST /v1/claim '{"agent":"a1"}'

# ---- heartbeat, done, fail ----
for op in heartbeat "done" fail; do
    bad 400 missing_field "'lease'" "$op without lease" POST "/v1/tasks/t1/$op" '{}'
    bad 400 invalid_field "'lease'" "$op with a numeric lease" POST "/v1/tasks/t1/$op" '{"lease":42}'
    bad 400 invalid_field "'usage'" "$op with usage a list" POST "/v1/tasks/t1/$op" "{\"lease\":\"$L\",\"usage\":[1]}"
    bad 400 invalid_field "'tokens_in'" "$op with negative tokens" POST "/v1/tasks/t1/$op" \
        "{\"lease\":\"$L\",\"usage\":{\"tokens_in\":-5}}"
    bad 400 invalid_field "'tokens_out'" "$op with absurd tokens" POST "/v1/tasks/t1/$op" \
        "{\"lease\":\"$L\",\"usage\":{\"tokens_out\":1000000000001}}"
    bad 400 invalid_field "'usage.usd'" "$op with negative usd" POST "/v1/tasks/t1/$op" \
        "{\"lease\":\"$L\",\"usage\":{\"usd\":-0.5}}"
    bad 400 invalid_field "'usage.usd'" "$op with absurd usd" POST "/v1/tasks/t1/$op" \
        "{\"lease\":\"$L\",\"usage\":{\"usd\":1e300}}"
    bad 400 invalid_field "'usd'" "$op with usd a string" POST "/v1/tasks/t1/$op" \
        "{\"lease\":\"$L\",\"usage\":{\"usd\":\"1\"}}"
    bad 400 unknown_model "'gpt-9'" "$op with an unknown model" POST "/v1/tasks/t1/$op" \
        "{\"lease\":\"$L\",\"usage\":{\"model\":\"gpt-9\"}}"
    bad 400 unknown_field "'cost'" "$op with an unknown usage field" POST "/v1/tasks/t1/$op" \
        "{\"lease\":\"$L\",\"usage\":{\"cost\":1}}"
    bad 400 unknown_field "'note'" "$op with an unknown field" POST "/v1/tasks/t1/$op" "{\"lease\":\"$L\",\"note\":1}"
    bad 409 stale_lease "'t1'" "$op with a made-up lease" POST "/v1/tasks/t1/$op" '{"lease":"s2l_1_madeup"}'
    bad 404 not_found "'nope'" "$op on an unknown task" POST "/v1/tasks/nope/$op" "{\"lease\":\"$L\"}"
    bad 409 stale_lease "'t2'" "$op on a task with no lease" POST "/v1/tasks/t2/$op" "{\"lease\":\"$L\"}"
done
bad 400 invalid_field "'lease'" "a lease of 300 bytes" POST /v1/tasks/t1/heartbeat "{\"lease\":\"$(rep 300 l)\"}"
bad 400 unknown_field "'result'" "heartbeat carrying a result" POST /v1/tasks/t1/heartbeat "{\"lease\":\"$L\",\"result\":1}"
bad 400 unknown_field "'reason'" "done carrying a reason" POST /v1/tasks/t1/done "{\"lease\":\"$L\",\"reason\":\"x\"}"
bad 400 unknown_field "'result'" "fail carrying a result" POST /v1/tasks/t1/fail "{\"lease\":\"$L\",\"result\":1}"
printf '{"lease":"%s","result":"%s"}' "$L" "$(rep 262200 r)" >"$T_DIR/result.json"
bad 413 too_large "'result'" "done with a result over 256 KiB" POST /v1/tasks/t1/done "@$T_DIR/result.json"
bad 400 invalid_field "'reason'" "fail with reason a number" POST /v1/tasks/t1/fail "{\"lease\":\"$L\",\"reason\":5}"
bad 400 invalid_field "'reason'" "fail with a control character in reason" POST /v1/tasks/t1/fail \
    "{\"lease\":\"$L\",\"reason\":\"a\\u001b[31m\"}"
bad 400 invalid_field "'reason'" "fail with a reason of 4097 bytes" POST /v1/tasks/t1/fail \
    "{\"lease\":\"$L\",\"reason\":\"$(rep 4097 r)\"}"
bad 400 invalid_field "'retry'" "fail with retry a string" POST /v1/tasks/t1/fail "{\"lease\":\"$L\",\"retry\":\"no\"}"
bad 400 unknown_field "'why'" "cancel with an unknown field" POST /v1/tasks/t2/cancel '{"why":"x"}'
bad 400 invalid_field "'reason'" "cancel with reason a number" POST /v1/tasks/t2/cancel '{"reason":1}'
bad 400 invalid_json "malformed JSON" "cancel with malformed JSON" POST /v1/tasks/t2/cancel '{"reason":'
bad 404 not_found "'nope'" "cancel an unknown task" POST /v1/tasks/nope/cancel
bad 409 task_finished "'gone'" "cancel a cancelled task" POST /v1/tasks/gone/cancel
bad 400 unknown_field "'note'" "approve with an unknown field" POST /v1/tasks/t2/approve '{"note":"x"}'
bad 409 no_approval_needed "'t2'" "approve a task that needs none" POST /v1/tasks/t2/approve

# ---- POST /v1/models ----
bad 400 missing_field "'usd_per_mtok_out'" "model without a price" POST /v1/models '{"name":"m","tier":1,"usd_per_mtok_in":1}'
bad 400 invalid_field "'tier'" "model tier 0" POST /v1/models '{"name":"m","tier":0,"usd_per_mtok_in":1,"usd_per_mtok_out":1}'
bad 400 invalid_field "'usd_per_mtok_in'" "model price negative" POST /v1/models '{"name":"m","tier":1,"usd_per_mtok_in":-1,"usd_per_mtok_out":1}'
bad 400 invalid_field "model name" "model name with a space" POST /v1/models '{"name":"m 1","tier":1,"usd_per_mtok_in":1,"usd_per_mtok_out":1}'
bad 400 unknown_field "'context'" "model with an unknown field" POST /v1/models '{"name":"m","tier":1,"usd_per_mtok_in":1,"usd_per_mtok_out":1,"context":8}'

# ---- query strings ----
bad 400 invalid_query "state 'bogus'" "task list by an unknown state" GET "/v1/tasks?state=bogus"
bad 400 invalid_query "limit" "task list limit 0" GET "/v1/tasks?limit=0"
bad 400 invalid_query "limit" "task list limit 1001" GET "/v1/tasks?limit=1001"
bad 400 invalid_query "limit" "task list limit not a number" GET "/v1/tasks?limit=ten"
bad 400 invalid_query "after" "task list cursor not a number" GET "/v1/tasks?after=-1"
bad 400 invalid_query "limit" "swarm list limit 0" GET "/v1/swarms?limit=0"
bad 400 invalid_query "after" "events from a bad position" GET "/v1/events?after=x"
bad 400 invalid_query "state '?'" "task list by a state that is not UTF-8" GET "/v1/tasks?state=%ff"

# ---- routes and methods ----
bad 404 no_such_route "/v1/nope" "unknown route" GET /v1/nope
bad 404 no_such_route "/v2/tasks" "unknown version" GET /v2/tasks
bad 404 no_such_route "/v1/tasks/t1/finish" "unknown task action" POST /v1/tasks/t1/finish '{}'
bad 404 no_such_route "no such endpoint" "unknown route without a token" GET /nope/deeper "" -
bad 404 no_such_route "no such endpoint" "a path that is not UTF-8, without a token" GET /%ff%fe "" -
bad 404 not_found "does not exist" "a task id that is not UTF-8" GET /v1/tasks/%ff
bad 404 not_found "does not exist" "a task id of 2000 bytes" GET "/v1/tasks/$(rep 2000 x)"
bad 403 forbidden "cannot list swarm" "a swarm filter that is not UTF-8 (swarm token)" GET "/v1/tasks?swarm=%c3" "" "$TS"
bad 405 method_not_allowed "allowed: GET" "DELETE a task" DELETE /v1/tasks/t1
is "$(header Allow)" "GET" "405 names the allowed methods in Allow"
bad 405 method_not_allowed "allowed: POST, GET" "PUT /v1/tasks" PUT /v1/tasks '{}'
is "$(header Allow)" "POST, GET" "Allow: POST, GET"
bad 405 method_not_allowed "allowed: POST" "GET /v1/claim" GET /v1/claim
is "$(header Allow)" "POST" "Allow: POST"
bad 405 method_not_allowed "allowed: POST" "GET a task action" GET /v1/tasks/t1/done
bad 405 method_not_allowed "allowed: GET" "POST to a swarm" POST /v1/swarms/s1 '{}'
bad 405 method_not_allowed "allowed: GET" "PATCH /healthz without a token" PATCH /healthz "" -

# ---- bodies past --max-body ----
# With a Content-Length past the limit and "Expect: 100-continue" (as clients send for big
# bodies) the server answers 413 at once, before the body is sent. Without it, a body up to
# 8 x the limit is read and dropped first (a client still sending would otherwise see the
# connection reset and lose the 413); a bigger one is refused at once.
rep $((MAX + 1)) ' ' >"$T_DIR/big.json"
code=$(curl -s -o "$T_DIR/big.out" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -H 'Expect: 100-continue' --data-binary @"$T_DIR/big.json" "$S2_SERVER/v1/tasks")
is "$code $(jq -r .error.code "$T_DIR/big.out")" "413 too_large" "a body one byte past --max-body: 413"
contains "$(jq -r .error.message "$T_DIR/big.out")" "$MAX bytes" "413 says the limit"
code=$(curl -s -o "$T_DIR/big.out" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -H 'Transfer-Encoding: chunked' --data-binary @"$T_DIR/big.json" "$S2_SERVER/v1/tasks")
is "$code $(jq -r .error.code "$T_DIR/big.out")" "413 too_large" \
    "the same body chunked (no Content-Length): 413, not a dropped connection"
code=$(curl -s -o "$T_DIR/big.out" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -H 'Transfer-Encoding: chunked' --data-binary @"$T_DIR/big.json" "$S2_SERVER/v1/claim")
is "$code" "413" "a chunked body past the limit on /v1/claim: 413"
code=$(curl -s -o "$T_DIR/big.out" -w '%{http_code}' -H 'Expect: 100-continue' \
    --data-binary @"$T_DIR/big.json" "$S2_SERVER/v1/tasks")
is "$code" "413" "a body past the limit without a token: 413 before anything else"
code=$(curl -s -o "$T_DIR/big.out" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -H 'Content-Type: application/json' -H "Content-Length: 99999999999" -d '{}' \
    "$S2_SERVER/v1/tasks")
is "$code" "413" "a Content-Length of 100 GB: 413 at once"
code=$(curl -s -o "$T_DIR/big.out" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -H 'Expect:' --data-binary @"$T_DIR/big.json" "$S2_SERVER/v1/tasks")
is "$code $(jq -r .error.code "$T_DIR/big.out")" "413 too_large" \
    "a body past the limit sent without waiting for 100 Continue: read, dropped, 413"
# exactly --max-body bytes is accepted as a body (then judged on its content)
pad=$((MAX - 20))
printf '{"id":"x","role":"%s"}' "$(rep $pad r)" >"$T_DIR/max.json"
is "$(wc -c <"$T_DIR/max.json" | tr -d ' ')" "$MAX" "(the next body is exactly --max-body bytes)"
code=$(curl -s -o "$T_DIR/max.out" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    --data-binary @"$T_DIR/max.json" "$S2_SERVER/v1/swarms")
is "$code $(jq -r .error.code "$T_DIR/max.out")" "400 invalid_field" \
    "a body of exactly --max-body bytes is read (and its role judged too long)"
contains "$(jq -r .error.message "$T_DIR/max.out")" "'role'" "... naming the field"

# ---- nothing was written, nothing broke ----
is "$(task_count)" "$TASKS" "the task count is unchanged"
is "$(event_seq)" "$SEQ" "no event was recorded: no bad request changed anything"
http GET /v1/tasks/t1
is "$(j '.task.state + " " + .task.owner + " " + (.task.attempts|tostring)')" "claimed a1 1" \
    "t1 is still claimed by a1, first attempt"
expect_http 200 "t1's lease still works" POST /v1/tasks/t1/heartbeat "{\"lease\":\"$L\"}"
expect_http 200 "GET /healthz" GET /healthz
is "$(j .status)" "ok" "healthz says ok"
http GET /metrics
is "$(printf '%s\n' "$HTTP_BODY" | grep 's2_http_requests_total' | grep -c 'status="500"')" "0" \
    "no request was answered 500"
check "the server process is alive" kill -0 "$SRV_PID"
s2_stop
is "$SRV_STATUS" "0" "serve exits 0 on SIGTERM"
is "$(grep -c -i -E 'fatal|panic|abort|out of memory|could not be built' "$T_DIR/serve.log")" "0" \
    "the server log shows no crash or internal error"
t_done
