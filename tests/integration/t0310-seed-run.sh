# t0310-seed-run: the seed's 7x7 deployment run end to end. examples/seed-7x7.yaml is
# applied, then its 49 agents work through it as `s2 worker` processes running a scripted
# command (no sandbox: the command is ours), while this script plays the human who signs
# off the approval-gated tasks. Every one of the 350 planned tasks must end done exactly
# once, each claimed only after everything it depends on was done (witness order), with
# the usage the command reported on the ledgers and in `s2 report`.
. tests/lib.sh

SEED=examples/seed-7x7.yaml
s2_start
"$S2" plan apply "$SEED" >"$T_DIR/apply.out" 2>&1
is "$?" 0 "the seed plan applies"

# the agent: reads its task, reports usage, answers with the task's id
cat >"$T_DIR/agent.sh" <<'EOF'
#!/bin/sh
id=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
echo 'S2-USAGE: {"tokens_in": 2000, "tokens_out": 500}' >&2
printf '{"did": "%s"}\n' "$id"
EOF
chmod +x "$T_DIR/agent.sh"
agents=$("$S2" agent list --json | jq -r '.agents[].id')
is "$(echo "$agents" | wc -l)" 49 "49 agents"
wpids=""
for a in $agents; do
    "$S2" worker --agent "$a" --sandbox none --wait 2 -- "$T_DIR/agent.sh" \
        >"$T_DIR/worker.$a.log" 2>&1 &
    wpids="$wpids $!"
done
trap 'kill $wpids 2>/dev/null; s2_kill; pg_stop_own' EXIT

planned() { # the plan's tasks in a state (idle tasks, made on the way, are not the plan's)
    "$S2" task list --state "$1" --all --json | jq '[.tasks[] | select(.id | test("\\.idle-|\\.help-") | not)] | length'
}
i=0
while [ "$(planned done)" != 350 ] && [ $i -lt 240 ]; do
    # the human: sign off what waits for approval
    for t in $(curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks?approval=waiting&limit=1000" | jq -r '.tasks[].id'); do
        "$S2" approve "$t" >/dev/null 2>&1
    done
    sleep 0.5
    i=$((i + 1))
done
kill -TERM $wpids 2>/dev/null
for p in $wpids; do wait "$p" 2>/dev/null; done
is "$(planned done)" 350 "all 350 planned tasks done"
is "$(planned dead) $(planned cancelled)" "0 0" "none dead or cancelled"

# the witness log: each planned task done once, claimed only after its dependencies
"$S2" witness export --db "$DB" --output "$T_DIR/log.jsonl" >/dev/null
jq -c 'select(.seq != null and (.op == "task.claim" or .op == "task.done")) | {seq, op, task}' \
    "$T_DIR/log.jsonl" >"$T_DIR/ops.jsonl"
is "$(jq -r 'select(.op == "task.done") | .task' "$T_DIR/ops.jsonl" | grep -v -e '\.idle-' -e '\.help-' | sort | uniq -d | wc -l)" 0 \
    "no planned task done twice"
"$S2" task list --all --json | jq -c '.tasks[] | {id, depends_on}' >"$T_DIR/deps.jsonl"
jq -s --slurpfile deps "$T_DIR/deps.jsonl" '
    (map(select(.op == "task.done")) | map({(.task): .seq}) | add) as $done
    | [ .[] | select(.op == "task.claim") as $c
        | ($deps[] | select(.id == $c.task) | .depends_on // [])[]
        | select(($done[.] // 1e18) > $c.seq) ] | length' "$T_DIR/ops.jsonl" >"$T_DIR/early"
is "$(cat "$T_DIR/early")" 0 "no task claimed before every task it depends on was done"
contains "$(cat "$T_DIR"/worker.*.log)" "done" "the workers report what they finished"
"$S2" report --json >"$T_DIR/report.json"
is "$(jq '.overall.tasks.done >= 350' "$T_DIR/report.json")" true "s2 report counts the work done"
is "$(jq '.overall.cost.usd > 0 and .overall.cost.top_tier_usd > .overall.cost.usd' "$T_DIR/report.json")" true "...what the usage cost, and less than all on the top tier"
check "the witness log verifies after the run" "$S2" witness verify --db "$DB" --key "$S2_PUBKEY"
t_done
