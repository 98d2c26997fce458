# t1000-pg: s2 on PostgreSQL. The core round trip, the claim race, the witness and the
# governor suites run again on a PostgreSQL store; then several nodes on one database:
# claims racing through 2 and 3 nodes (every task done exactly once), a task created on one
# node pushed to a claimer waiting on another, 503 with Retry-After while no leader serves,
# kill -9 of the leader under load (nothing acknowledged lost, its leases re-queued after
# the takeover), PostgreSQL restarted under load (the nodes recover by themselves), budgets
# exact with claims racing through two nodes, and `s2 migrate` from SQLite (the witness log
# still verifies). The cluster is a throwaway one (scripts/pg.sh), as an unprivileged user.
. tests/lib.sh

S2_STORE=pg
pg_ensure
S2_SERVER=""
export S2_SERVER # set node by node below
PG=$S2_TOP/scripts/pg.sh
RACE=$S2_BUILD/tests/race
[ -x "$RACE" ] || {
    not_ok "driver $RACE is built (make test-bins)"
    t_done
}
tasks=50000 tasks3=20000 chaos=5000
case $S2 in *asan*) tasks=5000 tasks3=3000 chaos=2000 ;; esac
[ "$S2_LONG" = 1 ] && tasks=200000 tasks3=100000 chaos=50000
# T1000_SCALE=N divides the counts (a quick look while developing)
if [ -n "${T1000_SCALE:-}" ]; then
    tasks=$((tasks / T1000_SCALE)) tasks3=$((tasks3 / T1000_SCALE)) chaos=$((chaos / T1000_SCALE))
fi
T1000_SUITES=${T1000_SUITES-t0010-basics t0020-race t0200-witness t0600-governor}

# ---- the existing suites, on PostgreSQL ----
for t in $T1000_SUITES; do
    S2_STORE=pg S2_PG_DIR=$S2_PG_DIR S2_RACE_TASKS=4000 sh "tests/integration/$t.sh" \
        >"$T_DIR/$t.tap" 2>&1
    n=0
    while IFS= read -r l; do
        case $l in
        "ok "*) n=$((n + 1)); ok "pg $t: ${l#ok * - }" ;;
        "not ok "*) not_ok "pg $t: ${l#not ok * - }" ;;
        "# "*) echo "$l" ;;
        esac
    done <"$T_DIR/$t.tap"
    [ $n -gt 0 ] || { not_ok "pg $t ran"; tail -5 "$T_DIR/$t.tap" | sed 's/^/# /'; }
done

# ---- nodes ----
NODES=""
# node_start N [ARGS]: node N serves DB (its URL in NURL_N, its pid in NPID_N)
node_start() {
    n=$1
    shift
    rm -f "$T_DIR/port.$n"
    "$S2" serve --store "$DB" --key "$KEY" --listen 127.0.0.1:0 --port-file "$T_DIR/port.$n" \
        --node-id "n$n" "$@" >>"$T_DIR/node.$n.log" 2>&1 &
    eval "NPID_$n=$!"
    NODES="$NODES $n"
    wait_for 20 test -s "$T_DIR/port.$n" || { not_ok "node $n started"; tail -5 "$T_DIR/node.$n.log" | sed 's/^/# /'; }
    eval "NURL_$n=http://127.0.0.1:$(cat "$T_DIR/port.$n")"
}
npid() { eval "echo \${NPID_$1:-}"; }
nurl() { eval "echo \${NURL_$1:-}"; }
node_kill() {
    p=$(npid "$1")
    [ -n "$p" ] && kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    eval "NPID_$1="
}
node_stop() {
    p=$(npid "$1")
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null
    wait_for 20 sh -c "! kill -0 $p 2>/dev/null" || { not_ok "node $1 stops on SIGTERM"; kill -KILL "$p"; }
    wait "$p" 2>/dev/null
    eval "NPID_$1="
}
nodes_stop() { for n in $NODES; do node_stop "$n"; done; NODES=""; }
nodes_kill() { for n in $NODES; do node_kill "$n"; done; }
trap 'nodes_kill; s2_kill; pg_stop_own' EXIT
# leader: the number of the node that leads (as node $1 sees it)
leader() { curl -sf -m 5 "$(nurl "$1")/v1/cluster" | jq -r '.leader.node // empty' | sed 's/^n//'; }
# serving N: a request through node N reaches a leader
serving() { curl -sf -m 5 -H "Authorization: Bearer $S2_TOKEN" "$(nurl "$1")/v1/swarms" >/dev/null; }
all_serving() { for n in "$@"; do serving "$n" || return 1; done; }
nodes_log_clean() {
    for n in $NODES; do
        if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$T_DIR/node.$n.log"; then
            not_ok "no sanitizer report in node $n's log"
            grep -E -A12 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$T_DIR/node.$n.log" | head -30 | sed 's/^/# /'
        fi
    done
}
val() { sed -n "s/^$2 //p" "$T_DIR/$1.out"; }
# run_race NAME MODE URLS TASKS: the race driver in the background (RACE_PID)
run_race() {
    name=$1
    shift
    "$RACE" "$1" "$2" "$name" "$3" 32 >"$T_DIR/$name.out" 2>&1 &
    RACE_PID=$!
}
race_wait() {
    if ! wait_for 500 sh -c "! kill -0 $RACE_PID 2>/dev/null"; then
        not_ok "$1: driver finished within 500 s"
        kill "$RACE_PID" 2>/dev/null
    fi
    wait "$RACE_PID"
    race_status=$?
    grep '^#' "$T_DIR/$1.out" | head -20
}
done_count() { curl -sf -m 5 -H "Authorization: Bearer $S2_TOKEN" "$(nurl "$1")/v1/swarms/$2/status" | jq -r '.tasks.done // 0'; }

# ---- 2 nodes, 32 claimers through both ----
s2_init
node_start 1
wait_for 20 serving 1 || not_ok "node 1 leads"
node_start 2
check "node 2 follows node 1" wait_for 20 sh -c "[ \"\$(curl -sf $(nurl 2)/v1/cluster | jq -r .leader.node)\" = n1 ] && curl -sf -H 'Authorization: Bearer $S2_TOKEN' $(nurl 2)/v1/swarms >/dev/null"
S2_SERVER=$(nurl 2)
http GET /v1/cluster
is "$HTTP_STATUS $(j .role) $(j .leader.node) $(j '.nodes | length')" "200 follower n1 2" \
    "GET /v1/cluster on the follower: its role, the leader, both nodes"
is "$(jq -rn --slurpfile d docs/openapi.json --rawfile body "$T_DIR/http.body" -L tests/integration \
    'include "schema"; reply_errors($d[0]; "getCluster"; "200"; $body)[]' 2>&1)" "" \
    "...a reply that matches docs/openapi.json (getCluster 200)"
http GET /v1/cluster "" -
is "$HTTP_STATUS $(j .role)" "200 follower" "...asked without a token"
run_race two drain "$(nurl 1),$(nurl 2)" "$tasks"
race_wait two
is "$race_status" 0 "2 nodes: the driver saw no violation"
is "$(val two done)" "$tasks" "2 nodes: $tasks done replies (200)"
is "$(val two twice) $(val two overlaps) $(val two never)" "0 0 0" \
    "2 nodes: no task claimed or done twice, none handed over while held, none left"
is "$(val two server_done) $(val two server_bad)" "$tasks 0" \
    "2 nodes: the server agrees (owner and fence of each task)"
note "2 nodes: $tasks tasks in $(val two seconds) s ($(val two rate) tasks/s)"
# /metrics through a follower: the leader's families, then the follower's own node families
curl -sf -m 10 -H "Authorization: Bearer $S2_TOKEN" "$(nurl 2)/metrics" >"$T_DIR/m2.txt"
curl -sf -m 10 -H "Authorization: Bearer $S2_TOKEN" "$(nurl 1)/metrics" >"$T_DIR/m1.txt"
check "/metrics through a follower: the leader's engine families" grep -q '^# TYPE s2_tasks ' "$T_DIR/m2.txt"
check "...and the follower's own: s2_node_info{node=\"n2\",role=\"follower\"} 1" \
    grep -qx 's2_node_info{node="n2",role="follower"} 1' "$T_DIR/m2.txt"
fwd=$(awk '$1 == "s2_node_forwarded_total{node=\"n2\"}" {print $2}' "$T_DIR/m2.txt")
check "...with what it forwarded ($fwd requests)" test "${fwd:-0}" -ge "$((tasks / 2))"
is "$(metrics_malformed "$T_DIR/m2.txt")" "" "...a well-formed exposition (no family twice)"
check "the leader's /metrics: its own node families" grep -qx 's2_node_info{node="n1",role="leader"} 1' "$T_DIR/m1.txt"
check "...and not the follower's" sh -c "! grep -q 'node=\"n2\"' '$T_DIR/m1.txt'"
is "$(metrics_malformed "$T_DIR/m1.txt")" "" "...well formed"

# a task created on one node reaches a claimer waiting on the other, at once
S2_SERVER=$(nurl 1)
"$S2" swarm add push >/dev/null && "$S2" agent add pa --swarm push >/dev/null
for way in "2 1" "1 2"; do
    set -- $way
    S2_SERVER=$(nurl "$1") "$S2" claim --agent pa --wait 20 --json >"$T_DIR/pushed.json" 2>&1 &
    cp=$!
    wait_for 10 sh -c "curl -sf -H 'Authorization: Bearer $S2_TOKEN' $(nurl 1)/metrics | grep -q '^s2_waiting_claims 1'"
    t0=$(date +%s%N)
    S2_SERVER=$(nurl "$2") "$S2" task add --swarm push --id "p$1" --title push >/dev/null
    wait "$cp"
    ms=$((($(date +%s%N) - t0) / 1000000))
    is "$(jq -r .task.id "$T_DIR/pushed.json")" "p$1" "created on node $2, pushed to the claimer waiting on node $1 (${ms} ms)"
    check "...at once (under 2 s)" test "$ms" -lt 2000
    S2_SERVER=$(nurl "$1") "$S2" done "p$1" >/dev/null # the lease is kept per server
done
# events stream through a follower
curl -sN --max-time 2 -H "Authorization: Bearer $S2_TOKEN" "$(nurl 2)/v1/events?after=1" >"$T_DIR/sse.txt"
contains "$(grep -m1 '^data:' "$T_DIR/sse.txt")" '"seq":2' "the event stream passes through a follower"
check "2 nodes: the witness log verifies" "$S2" witness verify --db "$DB" --key "$S2_PUBKEY"
nodes_log_clean
nodes_stop

# ---- 3 nodes ----
s2_init
node_start 1
wait_for 20 serving 1
node_start 2
node_start 3
check "3 nodes: all serve" wait_for 20 all_serving 1 2 3
run_race three drain "$(nurl 1),$(nurl 2),$(nurl 3)" "$tasks3"
race_wait three
is "$race_status" 0 "3 nodes: the driver saw no violation"
is "$(val three done) $(val three twice) $(val three never) $(val three server_done) $(val three server_bad)" \
    "$tasks3 0 0 $tasks3 0" "3 nodes: $tasks3 tasks, each done exactly once, the server agrees"
note "3 nodes: $tasks3 tasks in $(val three seconds) s ($(val three rate) tasks/s)"

# ---- no leader: 503 with Retry-After; the lock freed, a node takes over ----
nodes_stop
"$PG" psql "$S2_PG_DIR" "${DB##*/}" -c "SELECT pg_advisory_lock(7411, 1)" -c "SELECT pg_sleep(4)" >/dev/null 2>&1 &
lockp=$!
wait_for 10 sh -c "'$PG' psql '$S2_PG_DIR' '${DB##*/}' -At -c \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted\" | grep -q 1"
node_start 1
sleep 1
curl -s -D "$T_DIR/nol.head" -o "$T_DIR/nol.body" -H "Authorization: Bearer $S2_TOKEN" "$(nurl 1)/v1/swarms"
contains "$(head -1 "$T_DIR/nol.head")" "503" "no leader: 503"
contains "$(cat "$T_DIR/nol.head")" "Retry-After: 1" "...with Retry-After"
# the lock's holder is no node: the node finds no leader, or the last one recorded gone
code=$(jq -r .error.code "$T_DIR/nol.body")
check "...saying no leader serves (no_leader or leader_unreachable: $code)" \
    test "$code" = no_leader -o "$code" = leader_unreachable
wait $lockp
check "the lock freed, the node takes the lead" wait_for 20 serving 1
nodes_stop

# ---- kill -9 of the leader under load ----
s2_init
node_start 1
wait_for 20 serving 1
node_start 2
wait_for 20 all_serving 1 2
S2_SERVER=$(nurl 2)
# leases held by an agent that will never finish: the new leader must re-queue them
"$S2" swarm add zombie >/dev/null && "$S2" agent add z1 --swarm zombie --max-leases 3 >/dev/null
for i in 1 2 3; do
    "$S2" task add --swarm zombie --id "z$i" --title zombie --lease-ms 4000 >/dev/null
done
run_race kill chaos "$(nurl 1),$(nurl 2)" "$chaos"
wait_for 60 sh -c "grep -q '^filled' '$T_DIR/kill.out' && [ \"\$(curl -sf -H 'Authorization: Bearer $S2_TOKEN' $(nurl 2)/v1/swarms/kill/status | jq -r '.tasks.done // 0')\" -gt $((chaos / 5)) ]"
for i in 1 2 3; do "$S2" claim --agent z1 >/dev/null; done # expire after the kill
old=$(leader 2)
t_kill=$(date +%s%N)
node_kill "$old"
note "killed the leader (node $old) with $(done_count 2 kill) of $chaos done"
other=$((3 - old))
check "a follower takes over" wait_for 20 sh -c "[ \"\$(curl -sf $(nurl $other)/v1/cluster | jq -r .leader.node)\" = n$other ]"
note "takeover after $((($(date +%s%N) - t_kill) / 1000000)) ms"
node_start "$old" # back, as a follower
race_wait kill
is "$race_status" 0 "kill -9: the driver saw no violation"
is "$(val kill twice) $(val kill server_done) $(val kill server_bad)" "0 $chaos 0" \
    "kill -9: every acknowledged done is done as acknowledged, nothing done twice, all $chaos done"
note "kill -9: $(val kill unavailable) 503/retries, $(val kill lost_replies) lost replies, $(val kill stale) stale leases"
S2_SERVER=$(nurl 1)
check "the zombie's leases expired and were re-queued by the new leader" wait_for 20 sh -c \
    "'$S2' task list --swarm zombie --json | jq -e '[.tasks[] | select(.state == \"ready\" and .attempts == 1)] | length == 3'"
check "kill -9: the witness log verifies (one chain across leaders)" "$S2" witness verify --db "$DB" --key "$S2_PUBKEY"
nodes_log_clean
nodes_stop

# ---- a leader that hangs (SIGSTOP) under load: its session goes silent, the other node
# deposes it after --leader-timeout (ending its sessions frees the lock), and when it wakes
# it is fenced out and follows. The same holds for a machine or a network that is gone. ----
s2_init
node_start 1 --leader-timeout 3
wait_for 20 serving 1
node_start 2 --leader-timeout 3
wait_for 20 all_serving 1 2
run_race hang chaos "$(nurl 1),$(nurl 2)" "$chaos"
wait_for 60 sh -c "grep -q '^filled' '$T_DIR/hang.out' && [ \"\$(curl -sf -H 'Authorization: Bearer $S2_TOKEN' $(nurl 2)/v1/swarms/hang/status | jq -r '.tasks.done // 0')\" -gt $((chaos / 5)) ]"
old=$(leader 2)
other=$((3 - old))
# a long-poll claim that the other node forwards to the leader just before it hangs
S2_SERVER=$(nurl 1) "$S2" swarm add lp >/dev/null && S2_SERVER=$(nurl 1) "$S2" agent add lpa --swarm lp >/dev/null
curl -s -m 60 -o "$T_DIR/lp.body" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -H 'Content-Type: application/json' -d '{"agent":"lpa","wait_ms":50000}' "$(nurl $other)/v1/claim" >"$T_DIR/lp.code" &
lp_pid=$!
sleep 1 # (parked in the leader by now; in flight would do as well)
note "stopping the leader (node $old) with $(done_count "$other" hang) of $chaos done"
t_stop=$(date +%s%N)
kill -STOP "$(npid "$old")"
check "a hung leader is deposed: the other node takes the lead" wait_for 30 sh -c \
    "[ \"\$(curl -sf $(nurl $other)/v1/cluster | jq -r .leader.node)\" = n$other ]"
note "takeover after $((($(date +%s%N) - t_stop) / 1000000)) ms (leader timeout 3 s)"
check "...and says why in its log" grep -q "was silent for more than 3000 ms" "$T_DIR/node.$other.log"
wait_for 10 sh -c "! kill -0 $lp_pid 2>/dev/null"
is "$(cat "$T_DIR/lp.code") $(jq -r .error.code "$T_DIR/lp.body" 2>/dev/null)" "503 leader_unreachable" \
    "a claim the new leader's node had forwarded to the hung one is answered at the takeover"
check "requests through the new leader are served while the old one still hangs" \
    test -n "$(done_count "$other" hang)"
sleep 1
kill -CONT "$(npid "$old")"
check "the old leader wakes up fenced out, as a follower" wait_for 20 sh -c \
    "[ \"\$(curl -sf $(nurl $old)/v1/cluster | jq -r .role)\" = follower ] && curl -sf -H 'Authorization: Bearer $S2_TOKEN' $(nurl $old)/v1/swarms >/dev/null"
race_wait hang
is "$race_status" 0 "hung leader: the driver saw no violation"
is "$(val hang twice) $(val hang server_done) $(val hang server_bad)" "0 $chaos 0" \
    "hung leader: nothing acknowledged lost, nothing done twice, all $chaos done"
note "hung leader: $(val hang unavailable) 503/retries, $(val hang lost_replies) lost replies"
check "hung leader: the witness log verifies (one chain across leaders)" "$S2" witness verify --db "$DB" --key "$S2_PUBKEY"
nodes_log_clean
nodes_stop

# ---- PostgreSQL restarted under load ----
s2_init
node_start 1
wait_for 20 serving 1
node_start 2
wait_for 20 all_serving 1 2
run_race restart chaos "$(nurl 1),$(nurl 2)" "$chaos"
wait_for 60 sh -c "grep -q '^filled' '$T_DIR/restart.out' && [ \"\$(curl -sf -H 'Authorization: Bearer $S2_TOKEN' $(nurl 2)/v1/swarms/restart/status | jq -r '.tasks.done // 0')\" -gt $((chaos / 5)) ]"
note "restarting PostgreSQL with $(done_count 2 restart) of $chaos done"
"$PG" restart "$S2_PG_DIR" || not_ok "PostgreSQL restarted"
race_wait restart
is "$race_status" 0 "PostgreSQL restart: the driver saw no violation"
is "$(val restart twice) $(val restart server_done) $(val restart server_bad)" "0 $chaos 0" \
    "PostgreSQL restart: nothing acknowledged lost, nothing done twice, all $chaos done"
note "restart: $(val restart unavailable) 503/retries, $(val restart lost_replies) lost replies"
check "both nodes serve again by themselves" wait_for 20 all_serving 1 2
check "PostgreSQL restart: the witness log verifies" "$S2" witness verify --db "$DB" --key "$S2_PUBKEY"
nodes_log_clean
nodes_stop

# ---- budgets stay exact with claims racing through two nodes ----
s2_init
node_start 1
wait_for 20 serving 1
node_start 2
wait_for 20 all_serving 1 2
S2_SERVER=$(nurl 1)
"$S2" swarm add money --budget 10 >/dev/null
jq -nc '{tasks: [range(0;40) | {id: "m\(.)", swarm: "money", title: "m", max_cost: 1}]}' >"$T_DIR/m.json"
http POST /v1/tasks "$(cat "$T_DIR/m.json")"
for i in $(seq 0 39); do "$S2" agent add "ma$i" --swarm money >/dev/null; done
# (wait for these requests by pid: a bare `wait` would also wait for the nodes)
cpids=""
for i in $(seq 0 39); do
    n=$((i % 2 + 1))
    curl -s -o "$T_DIR/mc.$i" -w '%{http_code}\n' -H "Authorization: Bearer $S2_TOKEN" \
        -H 'Content-Type: application/json' -d "{\"agent\":\"ma$i\"}" "$(nurl $n)/v1/claim" >"$T_DIR/ms.$i" &
    cpids="$cpids $!"
done
wait $cpids
is "$(cat "$T_DIR"/ms.* | grep -c '^200$')" 10 "40 claims racing through 2 nodes: exactly 10 reserve the \$10 budget"
is "$(cat "$T_DIR"/ms.* | grep -c '^409$')" 30 "...the other 30 are refused (409)"
http GET "/v1/budgets?swarm=money"
is "$(j '.swarms[0].reserved') $(j '.swarms[0].spent')" "10 0" "reserved exactly the budget, nothing spent yet"
dpids=""
for i in $(seq 0 39); do
    grep -q '^200$' "$T_DIR/ms.$i" || continue
    id=$(jq -r .task.id "$T_DIR/mc.$i") lease=$(jq -r .lease.token "$T_DIR/mc.$i")
    curl -s -o /dev/null -H "Authorization: Bearer $S2_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"lease\":\"$lease\",\"usage\":{\"usd\":1}}" "$(nurl $((i % 2 + 1)))/v1/tasks/$id/done" &
    dpids="$dpids $!"
done
wait $dpids
http GET "/v1/budgets?swarm=money"
is "$(j '.swarms[0].spent') $(j '.swarms[0].reserved')" "10 0" "spent exactly \$10 of \$10, never more"
nodes_log_clean
nodes_stop

# ---- s2 migrate: SQLite -> PostgreSQL, the witness log still verifies ----
SQ=$T_DIR/mig.db
"$S2" init --db "$SQ" --json >"$T_DIR/mig.json"
MIG_TOKEN=$(jq -r .admin_token "$T_DIR/mig.json")
MIG_PUB=$(jq -r .public_key "$T_DIR/mig.json")
"$S2" serve --db "$SQ" --listen 127.0.0.1:0 --port-file "$T_DIR/port.sq" >"$T_DIR/sq.log" 2>&1 &
sqp=$!
wait_for 20 test -s "$T_DIR/port.sq"
(
    export S2_SERVER=http://127.0.0.1:$(cat "$T_DIR/port.sq") S2_TOKEN=$MIG_TOKEN
    "$S2" swarm add mig --budget 50 >/dev/null
    "$S2" agent add mg1 --swarm mig >/dev/null
    for i in 1 2 3 4 5; do "$S2" task add --swarm mig --id "g$i" --title "g$i" >/dev/null; done
    "$S2" claim --agent mg1 >/dev/null && "$S2" done g1 --usd 2 >/dev/null
    "$S2" claim --agent mg1 >/dev/null
)
# copied while the SQLite server runs (one snapshot), then again after it stopped
MDB=$(pg_newdb)
check "s2 migrate copies a live deployment" "$S2" migrate --from "sqlite:$SQ" --to "$MDB"
check "the copy's witness log verifies" "$S2" witness verify --db "$MDB" --key "$MIG_PUB"
check_fails "migrate refuses a database that holds a deployment" "$S2" migrate --from "sqlite:$SQ" --to "$MDB"
kill -TERM $sqp
wait $sqp
MDB2=$(pg_newdb)
"$S2" migrate --from "$SQ" --to "$MDB2" --json >"$T_DIR/mig2.json"
is "$(jq -r .witness_entries "$T_DIR/mig2.json")" "$(sqlite3 "$SQ" 'SELECT count(*) FROM witness')" "every witness entry copied"
DB=$MDB2 KEY=$SQ.key
S2_TOKEN=$MIG_TOKEN
node_start 1
check "the migrated deployment serves on PostgreSQL" wait_for 20 serving 1
S2_SERVER=$(nurl 1)
is "$("$S2" task show g1 --json | jq -r '.task.state + " " + .task.owner')" "done mg1" "task states came along"
is "$("$S2" task show g2 --json | jq -r .task.state)" "claimed" "...leases too"
"$S2" agent add mg2 --swarm mig >/dev/null
check "work goes on: claim" "$S2" claim --agent mg2 --json
http GET "/v1/budgets?swarm=mig"
is "$(j '.swarms[0].spent')" "2" "the ledger came along"
node_stop 1
check "the log verifies after more work on PostgreSQL" "$S2" witness verify --db "$MDB2" --key "$MIG_PUB"
nodes_log_clean
S2_SERVER=""
t_done
