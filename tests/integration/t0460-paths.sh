# t0460-paths: path leases against the merge-conflict race: two tasks whose paths overlap are
# never claimed at once (the later waits, another task is chosen), a freed path lets the
# waiting one go (pushed to a waiting claimer), and the pre-commit guard's check names the
# holder of a path and refuses a stale lease.
. tests/lib.sh

s2_start
"$S2" swarm add a >/dev/null
"$S2" swarm add b >/dev/null
for ag in a1 a2; do "$S2" agent add $ag --swarm a >/dev/null; done
"$S2" agent add b1 --swarm b >/dev/null
"$S2" task add --swarm a --id sip --title "sip adapter" --paths 'src/sip/**' --priority 10 >/dev/null
"$S2" task add --swarm b --id sipfix --title "fix sip parser" --paths 'src/sip/parser.c' --priority 10 >/dev/null
"$S2" task add --swarm a --id docs --title "docs" --paths 'docs/*.md' >/dev/null
"$S2" task add --swarm a --id other --title "free" --paths 'src/h323/**' --priority 5 >/dev/null
expect_http 400 "a path may not climb out" POST /v1/tasks '{"swarm":"a","title":"x","paths":["../etc/passwd"]}'
expect_http 400 "a path is relative" POST /v1/tasks '{"swarm":"a","title":"x","paths":["/etc/passwd"]}'

http POST /v1/claim '{"agent":"a1"}'
is "$(j .task.id)" "sip" "a1 claims sip (src/sip/**)"
LSIP=$(j .lease.token)
is "$(j '.task.paths[0]')" "src/sip/**" "the claim reply carries its paths"
http POST /v1/claim '{"agent":"b1"}'
is "$HTTP_STATUS" "204" "b1's sipfix (src/sip/parser.c) overlaps: not handed out"
http POST /v1/claim '{"agent":"a2"}'
is "$(j .task.id)" "other" "a2 is given other work instead of the overlapping task"
LOTHER=$(j .lease.token)

# the guard's question
http POST /v1/paths/check '{"paths":["src/sip/parser.c","README.md"]}'
is "$(j '.conflicts | length') $(j '.conflicts[0].task') $(j '.conflicts[0].agent')" "1 sip a1" \
    "src/sip/parser.c is held by a1's claim on sip"
http POST /v1/paths/check "{\"paths\":[\"src/sip/parser.c\"],\"lease\":\"$LSIP\"}"
is "$(j '.conflicts | length') $(j .lease.valid)" "0 true" "the holder itself may commit there"
http POST /v1/paths/check "{\"paths\":[\"src/sip/x.c\"],\"lease\":\"$LOTHER\"}"
is "$(j '.conflicts[0].task')" "sip" "another agent's lease does not cover it"

# a waiting claim gets the task the moment the overlapping lease ends
"$S2" claim --agent b1 --wait 10 --json >"$T_DIR/b1.json" &
waiter=$!
sleep 0.3
check "sip done: its paths are free" "$S2" done sip --lease "$LSIP"
wait $waiter
is "$(jq -r .task.id "$T_DIR/b1.json")" "sipfix" "the waiting b1 gets sipfix at once"
http POST /v1/paths/check "{\"paths\":[\"src/sip/parser.c\"],\"lease\":\"$LSIP\"}"
is "$(j .lease.valid) $(j '.conflicts[0].task')" "false sipfix" "a finished lease is no longer valid; sipfix holds the path"

# a small race: 8 tasks on the same file, 4 agents claiming in parallel: never two at once
"$S2" swarm add race >/dev/null
for i in 1 2 3 4; do "$S2" agent add r$i --swarm race >/dev/null; done
for i in $(seq 1 8); do "$S2" task add --swarm race --id same$i --title "same file $i" --paths 'src/shared.c' >/dev/null; done
for round in 1 2 3 4 5 6 7 8; do
    pids=""
    for i in 1 2 3 4; do
        "$S2" claim --agent r$i --json >"$T_DIR/r$i.json" 2>/dev/null &
        pids="$pids $!"
    done
    wait $pids # not a bare wait: the server is a child too
    held=$(cat "$T_DIR"/r?.json | jq -r 'select(.task.id != null) | .task.id' | wc -l)
    [ "$held" -le 1 ] || not_ok "round $round: $held tasks on src/shared.c claimed at once"
    for i in 1 2 3 4; do
        id=$(jq -r '.task.id // empty' "$T_DIR/r$i.json")
        [ -n "$id" ] && "$S2" done "$id" --lease "$(jq -r .lease.token "$T_DIR/r$i.json")" >/dev/null
    done
done
is "$("$S2" task list --swarm race --state done --json | jq '.tasks | length')" "8" "all eight done, one at a time"
t_done
