# t0600-governor: the seed's failure stories replayed against the real server: expertise
# mismatch (never help without a match; escalate instead, webhook called), session 4 blocked
# (three matching helpers at most), cost spiral (alert, exhaustion, refusal, raise), tier
# cascade, critical path, breakers, quorum approvals, and a noisy neighbour held by 429s.
. tests/lib.sh

"$S2_BUILD/tests/webhook_sink" "$T_DIR/hook.port" "$T_DIR/hook.out" &
SINK=$!
trap 's2_kill; kill $SINK 2>/dev/null' EXIT
wait_for 10 test -s "$T_DIR/hook.port"
HOOK="http://127.0.0.1:$(cat "$T_DIR/hook.port")/hook"

s2_start
swarm() { "$S2" swarm add "$@" --json | jq -r .token; }
agent() { "$S2" agent add "$@" >/dev/null; }
task() { "$S2" task add "$@" >/dev/null; }
# claim AGENT: prints the task id (or "none"); the lease goes to $T_DIR/lease.AGENT
claimed() {
    "$S2" claim --agent "$1" --json >"$T_DIR/claim.$1" 2>"$T_DIR/claim.$1.err"
    jq -r '.lease.token // ""' "$T_DIR/claim.$1" 2>/dev/null >"$T_DIR/lease.$1"
    jq -r '.task.id // "none"' "$T_DIR/claim.$1" 2>/dev/null || echo none
}
lease() { cat "$T_DIR/lease.$1"; }

expect_http 200 "policy: webhook and short escalation" PUT /v1/policy \
    "{\"webhook_url\":\"$HOOK\",\"webhook_retries\":2,\"blocker_escalate_after_s\":600}"
is "$(j .webhook_url)" "$HOOK" "the policy names the webhook"
expect_http 400 "policy: a match above 1 is refused" PUT /v1/policy '{"min_capability_match":1.5}'
contains "$(j .error.message)" "min_capability_match" "...naming the field"
expect_http 400 "policy: an unknown key is refused" PUT /v1/policy '{"max_helper":3}'
contains "$(j .error.message)" "max_helper" "...naming it"
expect_http 400 "policy: an unknown preset" PUT /v1/policy '{"preset":"yolo"}'
expect_http 400 "policy: a webhook that is not http(s)" PUT /v1/policy '{"webhook_url":"ftp://x"}'
expect_http 403 "policy: a swarm token cannot change it" PUT /v1/policy '{"max_helpers":5}' \
    "$(swarm probe)"

# ---- 1. expertise mismatch: a legal swarm never "helps" on a Rust bug ----------------------
swarm rust --capabilities code-analysis:rust >/dev/null
swarm legal --capabilities legal:contracts >/dev/null
agent r1 --swarm rust --capabilities code-analysis:rust
agent lw1 --swarm legal --capabilities legal:contracts
task --swarm rust --id async-bug --title "tokio deadlock"
is "$(claimed r1)" "async-bug" "r1 claims the Rust task"
out=$("$S2" block async-bug --needs code-analysis:rust,async:tokio --reason "deadlock under load")
contains "$out" "a human was called" "no other swarm matches: the block escalates at once"
is "$(claimed lw1)" "none" "the legal agent is given nothing to do on it"
wait_for 15 grep -q no_helper "$T_DIR/hook.out"
check "the webhook received the escalation" grep -q '"kind":"no_helper"' "$T_DIR/hook.out"
check "...naming the blocked task" grep -q '"task":"async-bug"' "$T_DIR/hook.out"
contains "$("$S2" escalations)" "no_helper" "s2 escalations lists it"
eid=$("$S2" escalations --json | jq '.escalations[0].id')
check "acknowledge it" "$S2" escalations ack "$eid"
is "$("$S2" escalations --json | jq '.escalations | length')" "0" "nothing open after the ack"

# ---- 2. session 4 blocked: three matching helpers, never a non-matching one ----------------
swarm s4 --relation critical --capabilities integration:sip >/dev/null
agent s4a --swarm s4 --capabilities integration:sip
for n in 1 2 3 6; do
    swarm "s$n" --capabilities integration:sip,telephony:protocols >/dev/null
    agent "s${n}a" --swarm "s$n" --capabilities "integration:sip,telephony:protocols,extra:s$n"
done
swarm s5 --relation support --capabilities telephony:protocols >/dev/null
agent s5a --swarm s5 --capabilities telephony:protocols
task --swarm s4 --id bridge --title "SIP bridge to H.323"
is "$(claimed s4a)" "bridge" "session 4 claims its bridge"
check "session 4 reports the blocker" "$S2" block bridge --needs integration:sip,telephony:protocols \
    --reason "SIP INVITE never reaches the H.323 gateway"
is "$(claimed s5a)" "none" "session 5 (a 50% match) is not given help"
h1=$(claimed s1a); h2=$(claimed s2a); h3=$(claimed s3a)
is "$h1 $h2 $h3" "bridge.help-1 bridge.help-2 bridge.help-3" "sessions 1-3 each get a help task"
is "$(claimed s6a)" "none" "a fourth matching swarm is turned away: at most max_helpers"
http GET /v1/blockers
is "$(j '.blockers[] | select(.task=="bridge") | .helpers | length')" "3" "the blocker lists three helpers"
is "$(j '[.blockers[] | select(.task=="bridge") | .helpers[].swarm] | sort | join(",")')" "s1,s2,s3" "...from sessions 1-3"
# a helper posts, the blocked agent accepts: the helper's reputation grows
expect_http 201 "a helper posts on the thread with its help task's lease" POST /v1/tasks/bridge/thread \
    "{\"lease\":\"$(lease s1a)\",\"body\":\"the INVITE is dropped: SDP offer missing\"}"
post=$(j .post)
expect_http 409 "an outsider's lease cannot post" POST /v1/tasks/bridge/thread \
    "{\"lease\":\"$(lease r1)\",\"body\":\"noise\"}"
contains "$("$S2" thread bridge)" "SDP offer missing" "s2 thread shows the post"
check "the blocked agent accepts it" "$S2" thread bridge --accept "$post" --lease "$(lease s4a)"
expect_http 409 "a post is judged once" POST "/v1/tasks/bridge/thread/$post/reject" \
    "{\"lease\":\"$(lease s4a)\"}"
is "$("$S2" agent show s1a --json | jq .agent.help_accepted)" "1" "the helper's accepted count grows"
check "s2 witness shows the thread" sh -c '"$S2" witness show --task bridge | grep -q thread.verdict'
check "finishing the blocked task" "$S2" done bridge --lease "$(lease s4a)"
is "$("$S2" task show bridge.help-2 --json | jq -r .task.state)" "cancelled" "open help is cancelled with the blocker"
is "$("$S2" blockers --json | jq '[.blockers[] | select(.task=="bridge")] | length')" "0" "the bridge's blocker is closed"

# ---- 3. cost spiral: alert at 80%, refusal at 100%, resume on a raise ------------------
swarm spend --budget 10 --capabilities work >/dev/null
agent sp1 --swarm spend --capabilities work
for i in 1 2 3 4; do task --swarm spend --id c$i --title "cost $i" --max-cost 2; done
is "$(claimed sp1)" "c1" "claim c1 (reserves its \$2 max cost)"
http GET "/v1/budgets?swarm=spend"
is "$(j '.swarms[0].reserved')" "2" "the claim reserved \$2"
check "c1 reports \$8.50 of usage" "$S2" done c1 --usd 8.5 --lease "$(lease sp1)"
http GET "/v1/budgets?swarm=spend"
is "$(j '.swarms[0].spent') $(j '.swarms[0].reserved') $(j '.swarms[0].level')" "8.5 0 alert" \
    "spent 8.5 of 10: reservation settled, alert level"
check "the alert is an event in the log" sh -c '"$S2" witness show --swarm spend | grep -q budget.alert'
http POST /v1/claim '{"agent":"sp1"}'
is "$HTTP_STATUS $(j .error.code)" "409 budget_exceeded" "a claim reserving \$2 with \$1.50 left is refused"
contains "$(j .error.message)" "left of its \$10.00 budget" "...saying what is left"
check "raise the budget to 20" "$S2" budget set --swarm spend 20
is "$(claimed sp1)" "c2" "claims resume"
check "c2 overruns: \$12 more" "$S2" done c2 --usd 12 --lease "$(lease sp1)"
http GET "/v1/budgets?swarm=spend"
is "$(j '.swarms[0].level') $(j '.swarms[0].state')" "exhausted tripped" "spend passed the budget: the swarm is tripped"
http POST /v1/claim '{"agent":"sp1"}'
is "$HTTP_STATUS $(j .error.code)" "409 budget_exhausted" "claims are refused with a clear error"
contains "$(j .error.message)" "raised" "...telling how to go on"
wait_for 15 grep -q budget_exhausted "$T_DIR/hook.out"
check "the webhook heard of it" grep -q '"kind":"budget_exhausted"' "$T_DIR/hook.out"
check_fails "a breaker reset cannot lift it while the money is spent" "$S2" breaker reset spend
check "raise to 40" "$S2" budget set --swarm spend 40
is "$("$S2" swarm show spend --json | jq -r .swarm.state)" "active" "the swarm resumes"
is "$(claimed sp1)" "c3" "and claims again"
check "finish c3" "$S2" done c3 --lease "$(lease sp1)"

# ---- 4. cascade: a task failing on tier 1 goes to tier 2 --------------------------------
swarm tiers --capabilities work >/dev/null
agent cheap --swarm tiers --model haiku --capabilities work
agent strong --swarm tiers --model sonnet --capabilities work
task --swarm tiers --id hard --title "hard one" --backoff-ms 0
is "$(claimed cheap)" "hard" "the cheap agent takes it first"
check "it fails" "$S2" fail hard --reason "too hard" --lease "$(lease cheap)"
is "$("$S2" task show hard --json | jq .task.min_tier)" "2" "the next attempt needs tier 2"
is "$(claimed cheap)" "none" "the tier-1 agent is not given it again"
is "$(claimed strong)" "hard" "the tier-2 agent is"
check "done" "$S2" done hard --lease "$(lease strong)"

# ---- 5. critical path: the blocker goes first among equals -------------------------------
swarm cp --capabilities work >/dev/null
agent cpa --swarm cp --capabilities work
task --swarm cp --id plain --title "blocks nothing"
task --swarm cp --id root --title "blocks two"
task --swarm cp --id leaf1 --title l1 --depends-on root
task --swarm cp --id leaf2 --title l2 --depends-on root
is "$(claimed cpa)" "root" "the task that blocks two others is claimed before older equal work"
check "done" "$S2" done root --lease "$(lease cpa)"

# ---- 6. breakers and quorum ---------------------------------------------------------
swarm brk --capabilities work >/dev/null
agent flaky --swarm brk --capabilities work
for i in 1 2 3 4; do task --swarm brk --id f$i --title "f$i" --backoff-ms 100 --max-attempts 1; done
for i in 1 2 3; do
    id=$(claimed flaky)
    "$S2" fail "$id" --reason "crash $i" --lease "$(lease flaky)" >/dev/null
done
http POST /v1/claim '{"agent":"flaky"}'
is "$HTTP_STATUS $(j .error.code)" "409 breaker_open" "three failures in a row trip the agent's breaker"
contains "$("$S2" breaker list)" "open" "s2 breaker list shows it open"
check "a human resets it" "$S2" breaker reset flaky
is "$(claimed flaky)" "f4" "the agent claims again"
check "done" "$S2" done f4 --lease "$(lease flaky)"
is "$("$S2" escalations --all --json | jq '[.escalations[] | select(.kind=="breaker_open")] | length')" "1" \
    "the trip was escalated"
is "$("$S2" escalations --all --json | jq '[.escalations[] | select(.kind=="task_dead")] | length')" "3" \
    "each task that died was escalated"

"$S2" approver add alice --json >"$T_DIR/alice.json"
"$S2" approver add bob --json >"$T_DIR/bob.json"
ALICE=$(jq -r .token "$T_DIR/alice.json")
BOB=$(jq -r .token "$T_DIR/bob.json")
task --swarm brk --id risky --title "deploy" --approval quorum:2
expect_http 200 "alice approves" POST /v1/tasks/risky/approve "" "$ALICE"
is "$("$S2" task show risky --json | jq -r .task.state)" "pending" "one approval of two: still pending"
expect_http 409 "alice cannot approve twice" POST /v1/tasks/risky/approve "" "$ALICE"
expect_http 403 "an approver can do nothing else" POST /v1/tasks '{"swarm":"brk","title":"x"}' "$ALICE"
expect_http 200 "an approver reads" GET /v1/tasks/risky "" "$ALICE"
expect_http 200 "bob approves" POST /v1/tasks/risky/approve "" "$BOB"
is "$("$S2" task show risky --json | jq -r .task.state)" "ready" "two distinct approvers: ready"

# ---- 7. noisy neighbour ----------------------------------------------------------------
expect_http 200 "a tight rate limit" PUT /v1/policy '{"rate_limit_rps":20,"rate_limit_burst":20}'
NOISY=$(swarm noisy --capabilities work)
QUIET=$(swarm quiet --capabilities work)
"$S2" agent add qa --swarm quiet --capabilities work >/dev/null
task --swarm quiet --id q1 --title q1
curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $NOISY" \
    "$S2_SERVER/v1/tasks?swarm=noisy&n=[1-150]" >"$T_DIR/flood.codes" &
flood=$!
http POST /v1/claim '{"agent":"qa"}' "$QUIET"
is "$HTTP_STATUS $(j .task.id)" "200 q1" "the quiet swarm claims during the flood"
wait $flood
n429=$(grep -c 429 "$T_DIR/flood.codes")
n200=$(grep -c 200 "$T_DIR/flood.codes")
check "the flooding swarm got 429s ($n429 of 150)" test "$n429" -gt 0
check "...after its burst was served ($n200 ok)" test "$n200" -ge 20
curl -s -D "$T_DIR/h429" -o /dev/null -H "Authorization: Bearer $NOISY" "$S2_SERVER/v1/tasks?swarm=noisy&n=[1-60]"
check "a 429 says when to retry" grep -qi '^retry-after: [0-9]' "$T_DIR/h429"
expect_http 200 "admin requests are not limited" GET /v1/swarms
t_done
