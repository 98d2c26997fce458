# t0300-plan: plan files end to end with the real binary: validate (a good plan, and a bad
# one that lists every error with its position), apply --dry-run, apply, apply again
# (nothing to change, nothing written), a conflicting edit refused before any write, export
# and validate the export, the seed plan applied, and the simulation of both policies on
# the seed plan (deterministic, and ganging up on the blocker measurably faster).
. tests/lib.sh

SEED=examples/seed-7x7.yaml

# ---- validate, offline ----
out=$("$S2" plan validate "$SEED" 2>&1)
is "$?" "0" "the seed plan is valid"
is "$out" "$SEED: valid (7 swarms, 49 agents, 350 tasks in 70 phases, 17 idle tasks)" \
    "validate summarises the seed plan"

cat >"$T_DIR/bad.yaml" <<'EOF'
policy: {min_capabilty_match: 0.7, max_helpers: 0}
swarms:
  - id: s4
    relation: critcal
    capabilities: [integration:sip]
    budget: 5
    agents:
      - {id: a1, model: sonet, capabilities: [integration:sip, telephony]}
    phases:
      - phase: 1
        tasks:
          - {id: t1, title: one, requires: [integration:sipp], depends_on: [t3]}
          - {id: t2, title: two, estimate_h: lots, depends_on: [t1]}
          - {id: t3, title: three, depends_on: [t2]}
          - {id: t4, title: four, depends_on: [t33]}
EOF
"$S2" plan validate "$T_DIR/bad.yaml" >"$T_DIR/bad.out" 2>&1
is "$?" "1" "an invalid plan exits 1"
bad=$(sed "s|$T_DIR/||" "$T_DIR/bad.out")
B=bad.yaml
contains "$bad" "$B:1:10: policy: unknown key 'min_capabilty_match' (did you mean 'min_capability_match'?)" "unknown key, with a suggestion"
contains "$bad" "$B:1:49: policy: field 'max_helpers' must be from 1 to 100 (got 0)" "policy range"
contains "$bad" "$B:4:15: swarm 's4': field 'relation' must be peer, critical or support (got 'critcal'); did you mean 'critical'?" "relation"
contains "$bad" "$B:6:13: swarm 's4': budget \$5.00 is below the \$40.00 its 4 tasks may cost" "budget below the tasks' max cost"
contains "$bad" "$B:8:25: agent 'a1': unknown model 'sonet' (did you mean 'sonnet'?)" "unknown model"
contains "$bad" "$B:8:64: agent 'a1': capability 'telephony' is not among those of its swarm 's4'" "agent capability outside its swarm"
contains "$bad" "$B:12:45: task 't1' requires 'integration:sipp', which no swarm or agent in the plan has (did you mean 'integration:sip'?)" "capability typo"
contains "$bad" "$B:12:77: dependency cycle: t1 -> t3 -> t2 -> t1 (each waits for the next)" "cycle with its path"
contains "$bad" "$B:13:46: task 't2': field 'estimate_h' must be a number (got 'lots')" "wrong type"
contains "$bad" "$B:15:48: task 't4' depends on unknown task 't33' (did you mean 't3'?)" "unknown dependency"
contains "$bad" "$B: 10 errors" "every error is listed, with the count"
"$S2" plan validate "$T_DIR/bad.yaml" --json >"$T_DIR/bad.json"
is "$?" "1" "--json: still exit 1"
is "$(jq -r '.valid, (.errors | length), .errors[0].line, .errors[0].column, .errors[0].file' "$T_DIR/bad.json" | tr '\n' ' ')" \
    "false 10 1 10 $T_DIR/bad.yaml " "--json lists errors as {file, line, column, message}"
"$S2" plan validate >/dev/null 2>&1
is "$?" "2" "validate without FILE is a usage error"
"$S2" plan validate "$T_DIR/missing.yaml" >"$T_DIR/missing.out" 2>&1
is "$?" "1" "an unreadable file is an error"
contains "$(cat "$T_DIR/missing.out")" "cannot read '$T_DIR/missing.yaml': No such file or directory" "and says why"
printf 'a: &x 1\nb: *x\n---\nc: 1\n' >"$T_DIR/hostile.yaml"
"$S2" plan validate "$T_DIR/hostile.yaml" >"$T_DIR/hostile.out" 2>&1
is "$?" "1" "a hostile file is invalid, not a crash"
contains "$(cat "$T_DIR/hostile.out")" "aliases ('*x') are not supported in plans" "aliases are refused"

# ---- apply ----
s2_start
cat >"$T_DIR/small.yaml" <<'EOF'
models:
  - {name: gpt-x, tier: 2, usd_per_mtok_in: 1.25, usd_per_mtok_out: 10}
swarms:
  - id: demo-sip
    role: SIP escalation
    relation: critical
    capabilities: [integration:sip, docs]
    budget: 40
    agents:
      - {id: demo-sip-a1, model: sonnet, capabilities: [integration:sip, docs]}
      - {id: demo-sip-a2, model: haiku, capabilities: [docs], max_leases: 2}
    phases:
      - phase: 1
        tasks:
          - {id: demo-sip-p1-t1, title: SIP user agent, requires: [integration:sip], min_tier: 2, estimate_h: 2, max_cost: 6, paths: [src/sip/*.c]}
          - {id: demo-sip-p1-t2, title: "10", body: "multi\nline\n", max_cost: 1, approval: human}
      - phase: 2
        tasks:
          - {id: demo-sip-p2-t1, title: bridge, depends_on: [demo-ndi-p1-t1], max_cost: 6, priority: 5}
  - id: demo-ndi
    capabilities: [streaming:ndi]
    agents: [{id: demo-ndi-a1, capabilities: [streaming:ndi]}]
    phases:
      - phase: 1
        tasks: [{id: demo-ndi-p1-t1, title: capture, requires: [streaming:ndi], estimate_h: 1.5, estimate_usd: 0.4, lease_ms: 60000}]
EOF
check "the small plan is valid" "$S2" plan validate "$T_DIR/small.yaml"
out=$("$S2" plan apply "$T_DIR/small.yaml" --dry-run 2>&1)
is "$?" "0" "apply --dry-run exits 0"
contains "$out" "+ model 'gpt-x' (tier 2" "dry run shows the model"
contains "$out" "+ swarm 'demo-sip' (critical, budget \$40.00)" "dry run shows a swarm"
contains "$out" "+ agent 'demo-sip-a2' (swarm 'demo-sip', haiku)" "dry run shows an agent"
contains "$out" "+ 4 tasks (demo-sip 3, demo-ndi 1)" "dry run shows the tasks, in one batch"
contains "$out" "dry run: nothing was changed" "dry run says it changed nothing"
is "$("$S2" swarm list --json | jq '.swarms | length')" "0" "a dry run creates nothing"

seq0=$(curl -s "$S2_SERVER/healthz" | jq .event_seq)
out=$("$S2" plan apply "$T_DIR/small.yaml" 2>&1)
is "$?" "0" "apply exits 0"
contains "$out" "applied 7 changes" "apply reports what it applied"
contains "$out" "swarm tokens (shown only now" "apply prints the new swarms' tokens"
is "$("$S2" swarm show demo-sip --json | jq -r '.swarm.relation + " " + (.swarm.budget|tostring)')" "critical 40" "the swarm is live"
is "$("$S2" agent show demo-sip-a2 --json | jq -r '.agent.model + " " + (.agent.max_leases|tostring)')" "haiku 2" "the agent is live"
is "$("$S2" task show demo-sip-p2-t1 --json | jq -r '.task.depends_on[0] + " " + (.task.priority|tostring)')" "demo-ndi-p1-t1 5" "cross-swarm dependency applied"
is "$("$S2" task show demo-sip-p1-t2 --json | jq -r '.task.body + "|" + .task.approval')" "multi
line
|human" "body and approval applied"
is "$("$S2" task show demo-sip-p1-t1 --json | jq -r '.task.paths[0]')" "src/sip/*.c" "the task's paths applied"
is "$("$S2" model list --json | jq -r '.models[] | select(.name == "gpt-x") | .tier')" "2" "the model is live"

seq1=$(curl -s "$S2_SERVER/healthz" | jq .event_seq)
out=$("$S2" plan apply "$T_DIR/small.yaml" 2>&1)
is "$?" "0" "a second apply exits 0"
contains "$out" "nothing to change" "a second apply has nothing to change"
is "$(curl -s "$S2_SERVER/healthz" | jq .event_seq)" "$seq1" "a second apply writes nothing (no witness entry)"
test "$seq1" -gt "$seq0"
is "$?" "0" "the first apply did write"
"$S2" plan apply "$T_DIR/small.yaml" --json >"$T_DIR/again.json"
is "$(jq -r '.nothing_to_change, (.changes|length), .unchanged.tasks' "$T_DIR/again.json" | tr '\n' ' ')" \
    "true 0 4 " "apply --json: nothing to change, 4 tasks as planned"

# a conflicting edit: refused with its position, before anything is sent
sed -e 's/title: capture/title: capture frames/' -e 's/budget: 40/budget: 50/' -e 's/role: SIP escalation/role: SIP calls/' \
    -e 's/{id: demo-sip-p1-t1,/{id: demo-sip-p1-t0, title: new, max_cost: 1}\n          - {id: demo-sip-p1-t1,/' \
    "$T_DIR/small.yaml" >"$T_DIR/edited.yaml"
"$S2" plan apply "$T_DIR/edited.yaml" >"$T_DIR/edited.out" 2>&1
is "$?" "1" "a conflicting plan is refused"
edited=$(sed "s|$T_DIR/||" "$T_DIR/edited.out")
contains "$edited" "edited.yaml:4:9: swarm 'demo-sip' exists on the server with role 'SIP escalation' (plan 'SIP calls'); plan apply creates swarms and sets their budgets but does not change them otherwise" "the swarm conflict names the field"
contains "$edited" "edited.yaml:26:22: task 'demo-ndi-p1-t1' exists on the server with title 'capture' (plan 'capture frames'); plan apply creates tasks but does not change them" "the task conflict names the field"
contains "$edited" "nothing was changed" "and nothing was changed"
is "$("$S2" task show demo-sip-p1-t0 --json 2>/dev/null | jq -r .task.id)" "" "the new task of the refused plan was not created"
is "$("$S2" swarm show demo-sip --json | jq -r .swarm.budget)" "40" "nor the budget changed"
# a budget is the one thing about a swarm apply changes
sed -e 's/budget: 40/budget: 55.5/' "$T_DIR/small.yaml" >"$T_DIR/budget.yaml"
out=$("$S2" plan apply "$T_DIR/budget.yaml" 2>&1)
is "$?" "0" "a new budget applies"
contains "$out" "~ budget of swarm 'demo-sip': \$40.00 -> \$55.50" "and is shown as a change"
is "$("$S2" swarm show demo-sip --json | jq -r .swarm.budget)" "55.5" "the budget is live"
contains "$("$S2" plan apply "$T_DIR/budget.yaml" 2>&1)" "nothing to change" "then nothing to change"

# ---- export ----
"$S2" plan export --output "$T_DIR/export.yaml" 2>"$T_DIR/export.err"
is "$?" "0" "export exits 0"
check "the export validates" "$S2" plan validate "$T_DIR/export.yaml"
out=$("$S2" plan apply "$T_DIR/export.yaml" 2>&1)
contains "$out" "nothing to change" "the export re-applies as nothing to change"
is "$(grep -c 'id: demo-sip-p' "$T_DIR/export.yaml")" "3" "the export holds the tasks"
contains "$(cat "$T_DIR/export.yaml")" "title: '10'" "a numeric-looking title stays a string"
"$S2" plan export >"$T_DIR/export2.yaml" 2>/dev/null
is "$(tail -n +2 "$T_DIR/export2.yaml" | md5sum)" "$(tail -n +2 "$T_DIR/export.yaml" | md5sum)" "export to stdout and to a file agree"

# ---- the seed plan ----
"$S2" plan apply "$SEED" >"$T_DIR/seed.out" 2>&1
seed_rc=$?
is "$("$S2" task list --all --json | jq '[.tasks[] | select(.id | test("^(ndi|webrtc|h323|sip|cli|talent|bus)-p"))] | length')" \
    "350" "the seed plan's 350 tasks are live"
is "$("$S2" agent list --json | jq '.agents | length')" "52" "its 49 agents are live (with the small plan's 3)"
is "$("$S2" task show ndi-p4-t1 --json | jq -r '.task.depends_on[0]')" "sip-p4-t1" "phase 4 of session 1 waits on session 4's bridge"
is "$seed_rc" "0" "the seed plan applies (policy, models, swarms, agents, contracts, idle tasks, tasks)"
is "$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/policy" | jq -r '.preset + " " + (.max_helpers|tostring)')" \
    "default 3" "its policy is live"
is "$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/swarms/session-4-sip/contract" | jq -r '.contract.version + " " + .contract.secrets[0]')" \
    "1.0.0 SIP_API_KEY" "session 4's contract is live"
is "$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/swarms/session-1-ndi/idle_tasks" | jq -r '.idle_tasks | length')" \
    "3" "session 1's idle tasks are live"
out=$("$S2" plan apply "$SEED" 2>&1)
contains "$out" "nothing to change" "the seed plan re-applies as nothing to change"
"$S2" plan export --output "$T_DIR/seed-export.yaml" 2>/dev/null
check "the export of the seed deployment validates" "$S2" plan validate "$T_DIR/seed-export.yaml"
exp=$(cat "$T_DIR/seed-export.yaml")
contains "$exp" "policy:" "the export has the policy"
contains "$exp" "secrets: [SIP_API_KEY]" "the export has the contract"
contains "$exp" "Help session 2: review WebRTC mesh documentation" "the export has the idle tasks"
out=$("$S2" plan apply "$T_DIR/seed-export.yaml" 2>&1)
contains "$out" "nothing to change" "the seed deployment's export re-applies as nothing to change"

# ---- simulate ----
"$S2" plan simulate "$SEED" --policy idle --seed 7 >"$T_DIR/idle.txt"
is "$?" "0" "simulate --policy idle"
"$S2" plan simulate "$SEED" --policy gang-up --seed 7 >"$T_DIR/gang.txt"
is "$?" "0" "simulate --policy gang-up"
for f in idle gang; do
    for field in makespan sequential speedup cost "tier 1" "all on top tier" utilisation "swarms blocked" "critical path"; do
        grep -q "^ *$field " "$T_DIR/$f.txt" || not_ok "$f: no '$field' line"
    done
done
ok "both runs print makespan, cost by tier, speedup, utilisation, blocked time, critical path"
"$S2" plan simulate "$SEED" --policy gang-up --seed 7 >"$T_DIR/gang2.txt"
check "the same seed gives the same output, byte for byte" cmp "$T_DIR/gang.txt" "$T_DIR/gang2.txt"
"$S2" plan simulate "$SEED" --policy gang-up --seed 8 >"$T_DIR/gang3.txt"
check_fails "another seed gives another run" cmp -s "$T_DIR/gang.txt" "$T_DIR/gang3.txt"
"$S2" plan simulate "$SEED" --policy idle --seed 7 --json >"$T_DIR/idle.json"
"$S2" plan simulate "$SEED" --policy gang-up --seed 7 --json >"$T_DIR/gang.json"
idle_m=$(jq .makespan_h "$T_DIR/idle.json")
gang_m=$(jq .makespan_h "$T_DIR/gang.json")
note "seed plan, seed 7: makespan idle $idle_m h, gang-up $gang_m h"
is "$(jq -n "$gang_m < $idle_m")" "true" "ganging up on the blocker shortens the seed plan's makespan"
is "$(jq -n "$(jq .swarm_blocked_h "$T_DIR/gang.json") < $(jq .swarm_blocked_h "$T_DIR/idle.json")")" "true" "and the time swarms spend blocked"
is "$(jq '.blockers.helper_joins > 0' "$T_DIR/gang.json") $(jq '.blockers.helper_joins' "$T_DIR/idle.json")" "true 0" "helpers join only under gang-up"
is "$(jq '.critical_path.tasks | length > 0' "$T_DIR/idle.json")" "true" "--json has the critical path"
"$S2" plan simulate "$SEED" --policy lazy >/dev/null 2>&1
is "$?" "2" "an unknown policy is a usage error"
"$S2" plan simulate "$T_DIR/bad.yaml" >/dev/null 2>&1
is "$?" "1" "an invalid plan is not simulated"

t_done
