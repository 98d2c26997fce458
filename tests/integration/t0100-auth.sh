# t0100-auth: who may do what, through raw HTTP and the real CLI. No token or a bad one is
# 401 (with WWW-Authenticate); a swarm token acts on its own swarm only: another swarm's
# tasks, agents and the swarm itself are invisible (404) when named by id, and refused (403)
# when it asks to create in, claim for, list or watch that swarm explicitly; a lease of
# another swarm's task does not help (404, nothing changes); admin-only endpoints are 403.
# The admin sees everything. Tokens are stored only as their SHA-256.
. tests/lib.sh

# Every curl of this test (lib.sh's http too) gives up after 10 s rather than hang the
# suite, and leaves the reply's headers in $T_DIR/headers.
mkdir -p "$T_DIR/curl"
printf 'max-time = 10\ndump-header = "%s"\n' "$T_DIR/headers" >"$T_DIR/curl/.curlrc"
export CURL_HOME="$T_DIR/curl"
export S2_HOME="$T_DIR/home" # where the CLI remembers leases

# header NAME: that header of the last reply (without CR), empty when absent.
header() { tr -d '\r' <"$T_DIR/headers" | grep -i "^$1:" | head -1 | sed 's/^[^:]*: *//'; }
# expect_error STATUS CODE NEEDLE DESCRIPTION METHOD PATH [BODY] [TOKEN]
expect_error() {
    st=$1 code=$2 needle=$3 d=$4
    shift 4
    http "$@"
    got_code=$(printf '%s' "$HTTP_BODY" | jq -r '.error.code' 2>/dev/null)
    got_msg=$(printf '%s' "$HTTP_BODY" | jq -r '.error.message' 2>/dev/null)
    if [ "$HTTP_STATUS" = "$st" ] && [ "$got_code" = "$code" ] &&
        case $got_msg in *"$needle"*) true ;; *) false ;; esac; then
        ok "$d"
    else
        not_ok "$d"
        note "$1 $2 -> $HTTP_STATUS $HTTP_BODY"
        note "wanted $st $code with a message containing '$needle'"
    fi
}
# state TASK: "state owner attempts fence" as the admin sees it.
state() {
    http GET "/v1/tasks/$1" "" "$ADMIN"
    j '[.task.state, (.task.owner // "-"), .task.attempts, .task.fence] | map(tostring) | join(" ")'
}

s2_start
ADMIN=$S2_TOKEN

# ---- no token, bad tokens ----
expect_error 401 unauthorized "missing bearer token" "no token: 401" GET /v1/tasks "" -
is "$(header WWW-Authenticate)" 'Bearer realm="s2"' "401 carries WWW-Authenticate: Bearer"
contains "$HTTP_BODY" "Authorization: Bearer" "the message says how to authenticate"
expect_error 401 unauthorized "missing bearer token" "no token on an admin route: 401, not 403" \
    POST /v1/swarms '{"id":"x"}' -
expect_error 401 unauthorized "missing bearer token" "no token on POST /v1/claim: 401" \
    POST /v1/claim '{"agent":"a"}' -
expect_error 401 unauthorized "unknown or revoked token" "unknown token: 401" \
    GET /v1/tasks "" "s2s_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
is "$(header WWW-Authenticate)" 'Bearer realm="s2"' "unknown token: WWW-Authenticate too"
expect_error 401 unauthorized "unknown or revoked token" "admin token with a byte changed: 401" \
    GET /v1/tasks "" "${ADMIN%?}x"
expect_error 401 unauthorized "unknown or revoked token" "admin token with a suffix: 401" \
    GET /v1/tasks "" "${ADMIN}x"
expect_error 401 unauthorized "unknown or revoked token" "garbage token: 401" \
    GET /v1/swarms "" 'not a token at all'
code=$(curl -s -o "$T_DIR/basic.json" -w '%{http_code}' -H 'Authorization: Basic YWRtaW46YWRtaW4=' \
    "$S2_SERVER/v1/tasks")
is "$code $(jq -r .error.code "$T_DIR/basic.json")" "401 unauthorized" "Basic auth: 401"
contains "$(jq -r .error.message "$T_DIR/basic.json")" "Bearer <token>" \
    "Basic auth: the message asks for a bearer token"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer' "$S2_SERVER/v1/tasks")" \
    "401" "empty bearer: 401"
check "healthz needs no token" curl -sf "$S2_SERVER/healthz"

# the CLI says what went wrong and exits 1
unset S2_TOKEN
"$S2" task list >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI without S2_TOKEN exits 1"
contains "$(cat "$T_DIR/cli.out")" "missing bearer token" "CLI without S2_TOKEN: the server's message"
contains "$(cat "$T_DIR/cli.out")" "S2_TOKEN" "CLI without S2_TOKEN: a hint to set it"
S2_TOKEN=s2s_garbage "$S2" task list >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI with a garbage token exits 1"
contains "$(cat "$T_DIR/cli.out")" "unknown or revoked token" "CLI with a garbage token: 401 message"
export S2_TOKEN="$ADMIN"

# ---- swarms and their tokens ----
expect_http 201 "admin creates swarm alpha over HTTP" POST /v1/swarms '{"id":"alpha"}'
TA=$(j .token)
case $TA in s2s_?*) ok "POST /v1/swarms returns a swarm token" ;; *) not_ok "swarm token: '$TA'" ;; esac
"$S2" swarm add beta --json >"$T_DIR/beta.json"
is "$?" "0" "admin creates swarm beta with s2 swarm add"
TB=$(jq -r .token "$T_DIR/beta.json")
case $TB in s2s_?*) ok "s2 swarm add --json prints the swarm token" ;; *) not_ok "token: '$TB'" ;; esac
"$S2" swarm add gamma >"$T_DIR/gamma.txt" 2>&1
contains "$(cat "$T_DIR/gamma.txt")" "s2s_" "s2 swarm add (human) prints the token once"

http GET /v1/whoami "" "$TA"
is "$(j '.kind + " " + .swarm')" "swarm alpha" "whoami: the alpha token is scoped to alpha"
http GET /v1/whoami "" "$ADMIN"
is "$(j .kind)" "admin" "whoami: the admin token"

# ---- a swarm token works in its own swarm ----
expect_http 201 "alpha token registers an agent (swarm implied)" POST /v1/agents '{"id":"a1"}' "$TA"
is "$(j .agent.swarm)" "alpha" "the agent belongs to alpha"
expect_http 201 "alpha token registers an agent naming alpha" POST /v1/agents \
    '{"id":"a2","swarm":"alpha"}' "$TA"
check "CLI: alpha token adds an agent" env S2_TOKEN="$TA" "$S2" agent add a3
expect_http 201 "alpha token creates a task (swarm implied)" POST /v1/tasks \
    '{"id":"ta1","title":"alpha one"}' "$TA"
is "$(j .task.swarm)" "alpha" "the task belongs to alpha"
expect_http 201 "alpha token creates a batch in alpha" POST /v1/tasks \
    '{"tasks":[{"id":"ta2","title":"two"},{"id":"ta3","title":"three","swarm":"alpha","depends_on":["ta2"]}]}' "$TA"
check "CLI: alpha token adds a task" env S2_TOKEN="$TA" "$S2" task add --title "alpha four" --id ta4

# the admin fills beta
expect_http 201 "admin registers b1 in beta" POST /v1/agents '{"id":"b1","swarm":"beta"}'
expect_http 201 "admin creates tb1 in beta" POST /v1/tasks '{"id":"tb1","swarm":"beta","title":"beta one"}'
expect_http 201 "beta token creates tb2 (needs approval)" POST /v1/tasks \
    '{"id":"tb2","title":"beta two","approval":"human"}' "$TB"
expect_http 201 "beta token creates tb3" POST /v1/tasks '{"id":"tb3","title":"beta three"}' "$TB"

# ---- ... and not in another ----
expect_error 403 forbidden "cannot act on swarm 'beta'" "alpha token cannot register an agent in beta" \
    POST /v1/agents '{"id":"ax","swarm":"beta"}' "$TA"
expect_error 403 forbidden "cannot act on swarm 'beta'" "alpha token cannot create a task in beta" \
    POST /v1/tasks '{"id":"tx","swarm":"beta","title":"x"}' "$TA"
expect_error 403 forbidden "cannot act on swarm 'beta'" \
    "alpha token: a batch with one beta task is refused" \
    POST /v1/tasks '{"tasks":[{"id":"tok","title":"fine"},{"id":"tx","swarm":"beta","title":"x"}]}' "$TA"
expect_http 404 "... and creates none of it" GET /v1/tasks/tok
"$S2" agent show ax >/dev/null 2>&1
is "$?" "1" "no agent ax was created"
env S2_TOKEN="$TA" "$S2" agent add ax --swarm beta >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: alpha token cannot add an agent to beta (exit 1)"
contains "$(cat "$T_DIR/cli.out")" "scoped to swarm 'alpha'" "CLI: says the token is scoped"

# ---- reads: own swarm only ----
http GET /v1/tasks "" "$TA"
is "$(j '[.tasks[].id] | sort | join(",")')" "ta1,ta2,ta3,ta4" "alpha lists exactly its own tasks"
expect_error 403 forbidden "cannot list swarm 'beta'" "alpha cannot list beta's tasks (?swarm=beta)" \
    GET "/v1/tasks?swarm=beta" "" "$TA"
http GET "/v1/tasks?swarm=alpha" "" "$TA"
is "$(j '.tasks | length')" "4" "alpha may filter on its own swarm"
expect_error 404 not_found "task 'tb1' does not exist" "alpha cannot see tb1 (404, existence hidden)" \
    GET /v1/tasks/tb1 "" "$TA"
http GET /v1/swarms "" "$TA"
is "$(j '[.swarms[].id] | join(",")')" "alpha" "alpha lists only its own swarm"
expect_error 404 not_found "swarm 'beta' does not exist" "alpha cannot see swarm beta" \
    GET /v1/swarms/beta "" "$TA"
expect_error 404 not_found "swarm 'beta' does not exist" "alpha cannot see beta's status" \
    GET /v1/swarms/beta/status "" "$TA"
expect_http 200 "alpha sees its own swarm" GET /v1/swarms/alpha "" "$TA"
http GET /v1/agents "" "$TA"
is "$(j '[.agents[].id] | sort | join(",")')" "a1,a2,a3" "alpha lists only its own agents"
expect_error 404 not_found "swarm 'beta' does not exist" "alpha cannot list beta's agents" \
    GET "/v1/agents?swarm=beta" "" "$TA"
expect_error 404 not_found "agent 'b1' does not exist" "alpha cannot see agent b1" \
    GET /v1/agents/b1 "" "$TA"
http GET /v1/status "" "$TA"
is "$(j '[.swarms[].id] | join(",")')" "alpha" "status: alpha sees only its swarm"
is "$(j '.totals.ready + .totals.pending')" "4" \
    "status: alpha's totals count its own tasks only (not beta's)"
out=$(env S2_TOKEN="$TA" "$S2" task list 2>&1)
contains "$out" "ta1" "CLI: alpha's task list shows ta1"
case $out in *tb1*) not_ok "CLI: alpha's task list shows beta's tb1" ;; *) ok "CLI: alpha's task list hides tb1" ;; esac
env S2_TOKEN="$TA" "$S2" task show tb1 >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: alpha cannot show tb1 (exit 1)"
contains "$(cat "$T_DIR/cli.out")" "does not exist" "CLI: tb1 does not exist for alpha"

# ---- claims ----
expect_error 403 forbidden "cannot act on swarm 'beta'" "alpha cannot claim for beta's agent b1" \
    POST /v1/claim '{"agent":"b1"}' "$TA"
expect_error 403 forbidden "cannot act on swarm 'beta'" "... not even with wait_ms" \
    POST /v1/claim '{"agent":"b1","wait_ms":100}' "$TA"
is "$(state tb1)" "ready - 0 0" "tb1 was not claimed by those attempts"
expect_error 404 unknown_agent "agent 'ghost' does not exist" "claim for an unknown agent: 404" \
    POST /v1/claim '{"agent":"ghost"}' "$TA"
env S2_TOKEN="$TA" timeout 20 "$S2" claim --agent b1 >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: alpha cannot claim for b1 (exit 1)"

expect_http 200 "beta claims tb1 for b1" POST /v1/claim '{"agent":"b1"}' "$TB"
is "$(j .task.id)" "tb1" "b1 holds tb1"
LB=$(j .lease.token)
case $LB in s2l_?*) ok "the claim returns a lease token" ;; *) not_ok "lease token: '$LB'" ;; esac
# a lease token is a bearer token for its own task only (t0450 covers it in full)
expect_http 200 "a lease token reads its own task" GET /v1/tasks/tb1 "" "$LB"
expect_http 403 "...and lists nothing" GET /v1/tasks "" "$LB"
before=$(state tb1)
is "$before" "claimed b1 1 1" "tb1 claimed by b1, attempt 1, fence 1"
expect_http 200 "alpha claims ta1 for a1" POST /v1/claim '{"agent":"a1"}' "$TA"
LA=$(j .lease.token)
is "$(j .task.swarm)" "alpha" "a1 got an alpha task"
TA_TASK=$(j .task.id)

# ---- another swarm's lease does not open its task ----
for op in heartbeat "done" fail; do
    expect_error 404 not_found "task 'tb1' does not exist" \
        "alpha with beta's valid lease: $op tb1 is 404" \
        POST "/v1/tasks/tb1/$op" "{\"lease\":\"$LB\"}" "$TA"
done
expect_error 404 not_found "task 'tb1' does not exist" "alpha cannot cancel tb1" \
    POST /v1/tasks/tb1/cancel '{"reason":"mine now"}' "$TA"
expect_error 404 not_found "task 'tb3' does not exist" "alpha cannot cancel a ready beta task" \
    POST /v1/tasks/tb3/cancel "" "$TA"
expect_error 403 forbidden "admin token" "alpha cannot approve beta's tb2" \
    POST /v1/tasks/tb2/approve "" "$TA"
expect_error 403 forbidden "admin token" "beta cannot approve its own tb2 either (admin only)" \
    POST /v1/tasks/tb2/approve "" "$TB"
expect_error 404 not_found "task 'tb1' does not exist" "alpha's own lease does not open tb1" \
    POST /v1/tasks/tb1/heartbeat "{\"lease\":\"$LA\"}" "$TA"
expect_error 404 not_found "does not exist" "beta cannot heartbeat alpha's task with alpha's lease" \
    POST "/v1/tasks/$TA_TASK/heartbeat" "{\"lease\":\"$LA\"}" "$TB"
expect_error 409 stale_lease "lease" "admin: alpha's lease is not tb1's lease (409)" \
    POST /v1/tasks/tb1/heartbeat "{\"lease\":\"$LA\"}" "$ADMIN"
env S2_TOKEN="$TA" "$S2" done tb1 --lease "$LB" >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: alpha cannot finish tb1 with beta's lease (exit 1)"
env S2_TOKEN="$TA" "$S2" task cancel tb1 >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: alpha cannot cancel tb1 (exit 1)"
is "$(state tb1)" "$before" "tb1 is untouched: same state, owner, attempts and fence"
is "$(state tb3)" "ready - 0 0" "tb3 is untouched"
is "$(state tb2)" "pending - 0 0" "tb2 still waits for approval"
expect_http 200 "beta's lease still works for beta" POST /v1/tasks/tb1/heartbeat "{\"lease\":\"$LB\"}" "$TB"
expect_http 200 "beta finishes tb1 with its lease" POST /v1/tasks/tb1/done "{\"lease\":\"$LB\"}" "$TB"
is "$(state tb1 | cut -d' ' -f1)" "done" "tb1 done"
expect_http 200 "alpha heartbeats its own task" POST "/v1/tasks/$TA_TASK/heartbeat" "{\"lease\":\"$LA\"}" "$TA"
expect_http 200 "alpha cancels its own task" POST /v1/tasks/ta4/cancel '{"reason":"not needed"}' "$TA"

# ---- admin only ----
expect_error 403 forbidden "admin token" "swarm token cannot create swarms" POST /v1/swarms '{"id":"delta"}' "$TA"
expect_http 404 "... and no swarm delta exists" GET /v1/swarms/delta
expect_error 403 forbidden "admin token" "swarm token cannot change the model table" \
    POST /v1/models '{"name":"cheap","tier":1,"usd_per_mtok_in":0,"usd_per_mtok_out":0}' "$TA"
http GET /v1/models "" "$TA"
is "$(j '[.models[].name] | index("cheap")')" "null" "... and the model table is unchanged"
expect_error 403 forbidden "admin token" "swarm token cannot pause its own swarm" \
    POST /v1/swarms/alpha/pause "" "$TA"
expect_error 403 forbidden "admin token" "swarm token cannot pause another swarm" \
    POST /v1/swarms/beta/pause "" "$TA"
expect_error 403 forbidden "admin token" "swarm token cannot resume" POST /v1/swarms/alpha/resume "" "$TA"
expect_error 403 forbidden "admin token" "swarm token cannot read /metrics" GET /metrics "" "$TA"
expect_error 403 forbidden "admin token" "swarm token cannot export the witness log" \
    GET /v1/witness/export "" "$TA"
env S2_TOKEN="$TA" "$S2" swarm add delta >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: swarm token cannot add a swarm (exit 1)"
contains "$(cat "$T_DIR/cli.out")" "admin token" "CLI: says the admin token is needed"
env S2_TOKEN="$TA" "$S2" model set cheap --tier 1 --in 0 --out 0 >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: swarm token cannot set a model (exit 1)"
env S2_TOKEN="$TA" "$S2" approve tb2 >"$T_DIR/cli.out" 2>&1
is "$?" "1" "CLI: swarm token cannot approve (exit 1)"
expect_http 200 "admin approves tb2" POST /v1/tasks/tb2/approve
expect_http 200 "admin changes the model table" POST /v1/models \
    '{"name":"cheap","tier":1,"usd_per_mtok_in":0,"usd_per_mtok_out":0}'

# ---- events and the witness log: own swarm only ----
curl -s -N -m 2 -D /dev/null -H "Authorization: Bearer $TA" "$S2_SERVER/v1/events?after=0" \
    >"$T_DIR/ev.alpha"
curl -s -N -m 2 -D /dev/null -H "Authorization: Bearer $ADMIN" "$S2_SERVER/v1/events?after=0" \
    >"$T_DIR/ev.admin"
sed -n 's/^data: //p' "$T_DIR/ev.alpha" >"$T_DIR/ev.alpha.json"
sed -n 's/^data: //p' "$T_DIR/ev.admin" >"$T_DIR/ev.admin.json"
n=$(jq -s 'length' "$T_DIR/ev.alpha.json")
if [ "$n" -gt 3 ]; then ok "alpha's event stream replays alpha's events ($n)"; else not_ok "alpha saw $n events"; fi
is "$(jq -r -s 'map(.swarm) | unique | join(",")' "$T_DIR/ev.alpha.json")" "alpha" \
    "every event alpha sees is alpha's"
is "$(grep -c -e beta -e tb1 -e '"b1"' "$T_DIR/ev.alpha")" "0" "alpha's stream never mentions beta"
contains "$(jq -r -s 'map(.task // empty) | join(",")' "$T_DIR/ev.alpha.json")" "ta1" \
    "alpha's stream has ta1's events"
is "$(jq -r -s 'map(.swarm // empty) | unique | join(",")' "$T_DIR/ev.admin.json")" \
    "alpha,beta,gamma" "the admin's stream has every swarm"
expect_error 403 forbidden "cannot watch swarm 'beta'" "alpha cannot watch beta's events" \
    GET "/v1/events?swarm=beta" "" "$TA"

# live: a stream following the log gets alpha's new event and not beta's (it starts after
# the current sequence number, so it cannot miss what comes next however late it connects)
seq=$(curl -s "$S2_SERVER/healthz" | jq -r .event_seq)
curl -s -N -m 8 -D /dev/null -H "Authorization: Bearer $TA" "$S2_SERVER/v1/events?after=$seq" \
    >"$T_DIR/ev.live" &
live=$!
expect_http 201 "admin adds tb-live to beta" POST /v1/tasks '{"id":"tb-live","swarm":"beta","title":"x"}'
expect_http 201 "alpha adds ta-live" POST /v1/tasks '{"id":"ta-live","title":"x"}' "$TA"
check "the live stream delivers ta-live" wait_for 8 grep -q ta-live "$T_DIR/ev.live"
kill "$live" 2>/dev/null
wait "$live" 2>/dev/null
is "$(grep -c tb-live "$T_DIR/ev.live")" "0" "the live stream never shows beta's tb-live"

http GET "/v1/witness?limit=1000" "" "$TA"
is "$(j '[.entries[].swarm] | unique | join(",")')" "alpha" "alpha's witness entries are alpha's only"
expect_error 403 forbidden "cannot read swarm 'beta'" "alpha cannot read beta's witness entries" \
    GET "/v1/witness?swarm=beta" "" "$TA"

# ---- the admin sees everything ----
http GET "/v1/tasks?limit=1000"
is "$(j '[.tasks[].swarm] | unique | join(",")')" "alpha,beta" "admin lists every swarm's tasks"
expect_http 200 "admin sees tb1" GET /v1/tasks/tb1
expect_http 200 "admin sees swarm beta" GET /v1/swarms/beta
http GET /v1/agents
is "$(j '[.agents[].id] | sort | join(",")')" "a1,a2,a3,b1" "admin lists every agent"
http GET /v1/swarms
is "$(j '[.swarms[].id] | sort | join(",")')" "alpha,beta,gamma" "admin lists every swarm"
expect_http 200 "admin reads /metrics" GET /metrics

# ---- tokens are stored hashed ----
s2_stop
is "$SRV_STATUS" "0" "serve exits 0"
is "$(grep -c -F "$ADMIN" "$T_DIR/init.json")" "1" "(control: the search finds a token where it is)"
for name in ADMIN TA TB LA LB; do
    eval "tok=\$$name"
    hits=$(cat "$DB"* "$T_DIR/serve.log" 2>/dev/null | grep -c -a -F "$tok")
    is "$hits" "0" "token $name appears nowhere in the database files or the log"
done
is "$(sqlite3 "$DB" 'select count(*) from tokens')" "4" "four tokens stored (admin, alpha, beta, gamma)"
is "$(sqlite3 "$DB" 'select count(*) from tokens where typeof(hash) = "blob" and length(hash) = 32')" \
    "4" "each stored as a 32-byte hash"
for name in ADMIN TA TB; do
    eval "tok=\$$name"
    h=$(printf '%s' "$tok" | sha256sum | cut -d' ' -f1)
    is "$(sqlite3 "$DB" "select count(*) from tokens where lower(hex(hash)) = '$h'")" "1" \
        "token $name is stored as its SHA-256"
done
t_done
