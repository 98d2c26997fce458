# t0810-report: a small scripted run (claims, usage on two tiers, a failure and a retry, a
# dead task, an expired lease, a blocker cleared by a helper of another swarm) and then
# `s2 report --json` checked exactly: counts and costs against what the script did, durations
# against the witness log's own times (computed here with jq, independently). Also the
# Markdown and SVG forms, --since, and `s2 status` (overview states, STATUS.md fields and the
# checkpoint it names) while the blocker is open.
. tests/lib.sh

s2_start
"$S2" model set haiku --tier 1 --in 0.25 --out 1.25 >/dev/null
"$S2" model set sonnet --tier 2 --in 3 --out 15 >/dev/null
"$S2" model set opus --tier 3 --in 15 --out 75 >/dev/null
"$S2" swarm add alpha --budget 100 --capabilities dev >/dev/null
"$S2" swarm add beta --budget 100 --capabilities webrtc >/dev/null
"$S2" agent add a1 --swarm alpha --model haiku --capabilities dev >/dev/null
"$S2" agent add a2 --swarm alpha --model sonnet --capabilities dev >/dev/null
"$S2" agent add b1 --swarm beta --model haiku --capabilities webrtc >/dev/null
task() { "$S2" task add "$@" >/dev/null || not_ok "task add $*"; }
task --swarm alpha --id t1 --title one --requires dev --priority 50
task --swarm alpha --id t2 --title two --requires dev --priority 40
task --swarm alpha --id t3 --title three --requires dev --priority 30 --max-cost 5
task --swarm alpha --id tdead --title doomed --requires dev --priority 20 --max-attempts 1
task --swarm alpha --id texp --title slow --requires dev --priority 10 --max-attempts 1 --lease-ms 300
task --swarm beta --id u1 --title bridge --requires webrtc --backoff-ms 100

# more than one page of witness entries, so the report pages through the log
jq -n '{tasks: [range(0; 1100) | {id: "bulk-\(.)", swarm: "bulk", title: "bulk"}]}' >"$T_DIR/bulk.json"
"$S2" swarm add bulk >/dev/null
check "1100 tasks at once (a long log)" "$S2" task add --file "$T_DIR/bulk.json"

claim() { # claim AGENT: prints the task id, keeps the lease in $T_DIR/lease.TASK
    http POST /v1/claim "{\"agent\":\"$1\",\"wait_ms\":5000}"
    id=$(j .task.id)
    printf '%s' "$(j .lease.token)" >"$T_DIR/lease.$id"
    printf '%s' "$id"
}
lease() { cat "$T_DIR/lease.$1"; }

is "$(claim a1)" "t1" "a1 claims t1"
check "a1 heartbeats t1 with usage" "$S2" heartbeat t1 --lease "$(lease t1)" --tokens-in 1000 --tokens-out 400
check "a1 finishes t1 with usage" "$S2" done t1 --lease "$(lease t1)" --tokens-in 2000 --tokens-out 1000
is "$(claim a2)" "t2" "a2 (sonnet) claims t2"
check "a2 finishes t2" "$S2" done t2 --lease "$(lease t2)" --tokens-in 4000 --tokens-out 2000
is "$(claim b1)" "u1" "b1 claims u1"
check "b1 fails u1, reporting dollars" "$S2" fail u1 --lease "$(lease u1)" --reason flaky --usd 0.01
is "$(claim b1)" "u1" "b1 claims u1 again after the backoff"
check "b1 finishes u1" "$S2" done u1 --lease "$(lease u1)" --tokens-in 1000 --tokens-out 1000
is "$(claim a2)" "t3" "a2 claims t3"
check "a2 reports t3 blocked" "$S2" block t3 --lease "$(lease t3)" --needs webrtc --reason "needs the webrtc bridge"

# while it is blocked: b1 (beta, webrtc) is offered help on t3
help=$(claim b1)
http GET "/v1/tasks/$help"
is "$(j .task.kind) $(j .task.owner) $(j .task.help_for)" "help b1 t3" "b1 holds a help task on t3"
ov=$("$S2" status)
contains "$ov" "$(printf 'alpha                    peer      blocked ')" "overview: alpha is blocked"
contains "$ov" "$(printf 'beta                     peer      helping ')" "overview: beta is helping"
contains "$ov" "alpha                    blocked: task 't3' is blocked and waits for help" "overview: says why"
"$S2" status alpha --md >"$T_DIR/alpha.md"
md=$(cat "$T_DIR/alpha.md")
for f in 'status: "blocked"' 'reason: "task '"'"'t3'"'"' is blocked and waits for help"' 'blocked_on: [{"task":"t3","needs":["webrtc"],"reason":"needs the webrtc bridge"' \
    '"helpers":["b1"]' 'helping: []' 'can_help:' '  expertise_available: ["dev"]' '  current_load: "medium"' \
    'estimated_unblock: "20' 'current_task: {"id":"t3","title":"three","agent":"a2","phase":1,"milestone":"phase 1: 2 of 6 tasks done (33%)"}' \
    'progress: {"done":2,"in_progress":2,"remaining":2,"phase":1,"phase_completion":33,"overall":33}' \
    'health: {"status":"healthy","last_heartbeat":"20' 'budget: {"limit":100.0' 'breaker: {"swarm":"closed","state":"active"' \
    'slo: {"compliant":' 'witness: {"seq":'; do
    contains "$md" "$f" "STATUS.md (alpha) has $f"
done
seq=$(sed -n 's/^witness: {"seq":\([0-9]*\),.*/\1/p' "$T_DIR/alpha.md")
size=$(sed -n 's/^witness: .*"tree_size":\([0-9]*\),.*/\1/p' "$T_DIR/alpha.md")
root=$(sed -n 's/^witness: .*"root_hash":"\([0-9a-f]*\)".*/\1/p' "$T_DIR/alpha.md")
http GET "/v1/witness/checkpoints?from=$seq&limit=1"
is "$(j '.checkpoints[0].tree_size') $(j '.checkpoints[0].root_hash')" "$size $root" \
    "STATUS.md names the signed checkpoint covering the entries it reflects"
contains "$md" "The signed checkpoint covering them has tree size $size and root hash \`$root\`" "...in its text too"
"$S2" status beta --md >"$T_DIR/beta.md"
contains "$(cat "$T_DIR/beta.md")" 'status: "helping"' "STATUS.md (beta): helping"
contains "$(cat "$T_DIR/beta.md")" "helping: [{\"swarm\":\"alpha\",\"task\":\"t3\",\"agent\":\"b1\",\"help_task\":\"$help\"}]" \
    "STATUS.md (beta) says whom it helps"
check_fails "--md without a swarm is a usage error" "$S2" status --md

# the helper posts, finishes its help task; the blocked agent accepts and unblocks
http POST "/v1/tasks/t3/thread" "{\"lease\":\"$(lease "$help")\",\"body\":\"the bridge is fixed\"}"
is "$HTTP_STATUS" "201" "b1 posts on t3's thread"
check "b1 finishes its help task" "$S2" done "$help" --lease "$(lease "$help")" --tokens-in 500 --tokens-out 500
check "a2 unblocks t3" "$S2" unblock t3 --lease "$(lease t3)"
check "a2 finishes t3" "$S2" done t3 --lease "$(lease t3)" --tokens-in 1000 --tokens-out 0
is "$(claim a1)" "tdead" "a1 claims tdead"
check "a1 fails tdead: dead (one attempt)" "$S2" fail tdead --lease "$(lease tdead)" --reason broken
is "$(claim a1)" "texp" "a1 claims texp (300 ms lease)"
wait_for 10 sh -c "\"$S2\" task show texp --json | jq -e '.task.state == \"dead\"'"
is "$("$S2" task show texp --json | jq -r .task.state)" "dead" "texp's lease expired: dead"

# ---- the report, checked exactly ----
"$S2" report --json >"$T_DIR/r.json"
is "$?" "0" "s2 report --json"
rj() { jq -r "$1" "$T_DIR/r.json"; }
http GET '/v1/witness?limit=1000'
cp "$T_DIR/http.body" "$T_DIR/w1.json"
n1=$(jq '.next' "$T_DIR/w1.json")
: >"$T_DIR/wall.json"
next=1
while [ "$next" != "null" ]; do
    http GET "/v1/witness?from=$next&limit=1000"
    printf '%s\n' "$HTTP_BODY" | jq -c '.entries[]' >>"$T_DIR/wall.json"
    next=$(j .next)
done
is "$(rj .entries)" "$(wc -l <"$T_DIR/wall.json")" "the report read every entry (more than a page: $n1)"

# durations from the log itself: each claim paired with its lease's end
velocity() { # velocity SWARM|"" -> "sequential makespan leases done failed expired dead"
    jq -s -r --arg s "$1" '
      reduce (.[] | select(.task != null and ($s == "" or .swarm == $s))) as $e
        ({st: {}, seq: 0, first: null, last: null, leases: 0, done: 0, failed: 0, expired: 0, dead: 0};
         if $e.op == "task.claim" then
           .st[$e.task] = $e.time | .leases += 1 | .first = (if .first == null or $e.time < .first then $e.time else .first end)
         elif ($e.op | IN("task.done", "task.fail", "task.expire", "task.release", "task.cancel")) and .st[$e.task] != null then
           (if $e.op == "task.done" then .seq += ($e.time - .st[$e.task]) | .done += 1 else . end)
           | (if $e.op == "task.fail" then .failed += 1 else . end)
           | (if $e.op == "task.expire" then .expired += 1 else . end)
           | (if $e.params.next == "dead" then .dead += 1 else . end)
           | .last = (if .last == null or $e.time > .last then $e.time else .last end)
           | .st[$e.task] = null
         else . end)
      | "\(.seq) \(.last - .first) \(.leases) \(.done) \(.failed) \(.expired) \(.dead)"' "$T_DIR/wall.json"
}
sel() { # sel SWARM -> jq path of its numbers in the report
    [ -z "$1" ] && echo ".overall" || echo ".swarms[] | select(.swarm == \"$1\")"
}
for s in alpha beta ""; do
    p=$(sel "$s")
    got=$(rj "$p | \"\(.velocity.sequential_ms) \(.velocity.makespan_ms) \(.tasks.leases) \(.tasks.done) \(.tasks.failed) \(.tasks.expired) \(.tasks.dead)\"")
    is "$got" "$(velocity "$s")" "${s:-overall}: sequential, makespan and counts match the log"
done
is "$(rj '.swarms[] | select(.swarm == "alpha") | "\(.tasks.leases) \(.tasks.done) \(.tasks.failed) \(.tasks.expired) \(.tasks.dead)"')" \
    "6 4 1 1 2" "alpha: 6 leases (t1 t2 t3 help tdead texp), 4 done, 1 failed, 1 expired, 2 dead"
is "$(rj '.swarms[] | select(.swarm == "beta") | "\(.tasks.leases) \(.tasks.done) \(.tasks.failed)"')" "2 1 1" \
    "beta: u1 failed once, then done"
sp=$(rj '.overall | (.velocity.sequential_ms / .velocity.makespan_ms) - .velocity.speedup | fabs < 1e-9')
is "$sp" "true" "speedup = sequential / makespan"

# costs: the tokens the script reported, priced by hand (micro-dollars; prices per Mtok)
price() { echo $(((($1 * $3 + $2 * $4) + 500000) / 1000000)); } # tin tout in_micro out_micro
H_IN=250000 H_OUT=1250000 S_IN=3000000 S_OUT=15000000 O_IN=15000000 O_OUT=75000000
# alpha, tier 1 (haiku): t1's heartbeat and done, b1's help task (charged to the blocked swarm);
# tier 2 (sonnet): t2 and t3, both a2's
a_t1=$(($(price 1000 400 $H_IN $H_OUT) + $(price 2000 1000 $H_IN $H_OUT) + $(price 500 500 $H_IN $H_OUT)))
a_t1_top=$(($(price 1000 400 $O_IN $O_OUT) + $(price 2000 1000 $O_IN $O_OUT) + $(price 500 500 $O_IN $O_OUT)))
a_t2=$(($(price 4000 2000 $S_IN $S_OUT) + $(price 1000 0 $S_IN $S_OUT)))
a_t2_top=$(($(price 4000 2000 $O_IN $O_OUT) + $(price 1000 0 $O_IN $O_OUT)))
b_t1=$((10000 + $(price 1000 1000 $H_IN $H_OUT)))
b_t1_top=$((10000 + $(price 1000 1000 $O_IN $O_OUT))) # dollars reported as such: no saving claimed
is "$(rj '.swarms[] | select(.swarm == "alpha") | [.cost.tiers[] | "\(.tier):\(.usd_micro):\(.top_tier_usd_micro):\(.tokens_in):\(.tokens_out)"] | join(" ")')" \
    "1:$a_t1:$a_t1_top:3500:1900 2:$a_t2:$a_t2_top:5000:2000" "alpha: cost by tier, and the same tokens on the top tier"
is "$(rj '.swarms[] | select(.swarm == "beta") | [.cost.tiers[] | "\(.tier):\(.usd_micro):\(.top_tier_usd_micro)"] | join(" ")')" \
    "1:$b_t1:$b_t1_top" "beta: dollars reported as dollars, tokens priced"
total=$((a_t1 + a_t2 + b_t1))
top=$((a_t1_top + a_t2_top + b_t1_top))
is "$(rj '.overall.cost | "\(.usd_micro) \(.top_tier_usd_micro) \(.saving_usd_micro) \(.top_tier.model)"')" \
    "$total $top $((top - total)) opus" "overall: cost, top-tier cost and the saving"
is "$(rj '.overall.cost | ((.saving_pct - 100 * .saving_usd_micro / .top_tier_usd_micro) | fabs < 1e-9)')" "true" "saving_pct"
http GET /v1/budgets
is "$(rj '.overall.cost.usd_micro')" "$(j '(.global.spent * 1000000 + 0.5) | floor')" "the report's cost equals what the budgets spent"

# the blocker: times from the log
bl=$(jq -s -r '
  (map(select(.task == "t3" and .op == "task.block"))[0].time) as $b |
  (map(select(.task == "t3" and .op == "blocker.help"))[0].time) as $h |
  (map(select(.task == "t3" and .op == "blocker.resolve"))[0].time) as $r |
  "1 1 0 1 \($r - $b) \($h - $b) \($r - $h)"' "$T_DIR/wall.json")
is "$(rj '.overall.blockers | "\(.count) \(.resolved) \(.open) \(.helped) \(.blocked_ms) \(.time_to_first_helper_ms) \(.help_to_clear_ms)"')" \
    "$bl" "the blocker: time blocked, to the first helper, and help to clear, as in the log"
is "$(rj '.overall.blockers.helper_leases_done')" "1" "one helper lease finished"

# --since: only leases from then on
tclaim=$(jq -s -r 'map(select(.task == "t3" and .op == "task.claim"))[0].time' "$T_DIR/wall.json")
"$S2" report --json --since "$tclaim" >"$T_DIR/r2.json"
want=$(jq -s --argjson t "$tclaim" 'map(select(.op == "task.claim" and .time >= $t)) | length' "$T_DIR/wall.json")
is "$(jq .overall.tasks.leases "$T_DIR/r2.json")" "$want" "--since counts the leases that began from then on ($want)"
"$S2" report --json --since 2099-01-01 >"$T_DIR/r3.json"
is "$(jq '.overall.tasks.leases, .overall.cost.usd_micro' "$T_DIR/r3.json" | tr '\n' ' ')" "0 0 " "--since in the future: nothing"
is "$("$S2" report --json --since 1h | jq .overall.tasks.leases)" "$(rj .overall.tasks.leases)" "--since 1h: everything"
"$S2" report --since yesterday-ish >/dev/null 2>&1
is "$?" "2" "--since that is no time is a usage error"
is "$("$S2" report --json --swarm beta | jq -c '[.swarms[].swarm, .overall.tasks.leases]')" '["beta",2]' "--swarm: one swarm"

# the other forms
"$S2" report --md >"$T_DIR/r.md"
contains "$(cat "$T_DIR/r.md")" "| swarm | leases | done | failed | expired | dead | sequential | makespan | speedup |" "--md: the velocity table"
contains "$(cat "$T_DIR/r.md")" "| overall | 8 | 5 | 2 | 1 | 2 |" "--md: the overall row"
contains "$(cat "$T_DIR/r.md")" "The top tier is tier 3 (opus)" "--md: the cost table names the top tier"
check "--svg writes a chart" "$S2" report --svg "$T_DIR/r.svg"
head -c 4 "$T_DIR/r.svg" | grep -q '<svg' && tail -c 7 "$T_DIR/r.svg" | grep -q '</svg>' && ok "the chart is an SVG document" || not_ok "the chart is an SVG document"
if command -v python3 >/dev/null; then
    check "the SVG is well-formed XML" python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$T_DIR/r.svg"
fi
contains "$(cat "$T_DIR/r.svg")" "alpha" "the chart names the swarms"
"$S2" report --svg - >"$T_DIR/r2.svg"
cmp -s "$T_DIR/r.svg" "$T_DIR/r2.svg" && ok "--svg - prints the same chart" || not_ok "--svg - prints the same chart"

# a swarm token sees its own swarm only
BT=$(curl -s -X POST -H "Authorization: Bearer $S2_TOKEN" -d '{"id":"gamma"}' "$S2_SERVER/v1/swarms" | jq -r .token)
is "$(S2_TOKEN=$BT "$S2" report --json | jq -c '[.swarms[].swarm]')" '[]' "a swarm token's report holds only its own swarm"

# a tripped swarm shows in the overview
"$S2" swarm add zed --budget 0.001 >/dev/null
"$S2" agent add z1 --swarm zed >/dev/null
task --swarm zed --id z-t --title spend --max-cost 0.0005
task --swarm zed --id z-u --title more
is "$(claim z1)" "z-t" "z1 claims z-t"
check "z1 spends past the budget" "$S2" done z-t --lease "$(lease z-t)" --usd 0.002
contains "$("$S2" status)" "zed                      peer      blocked   tripped" "overview: a tripped swarm is blocked, state tripped"
contains "$("$S2" status zed --md)" 'reason: "circuit breaker tripped: its budget is spent"' "STATUS.md says why"
t_done
