# t0010-basics: init, serve, and a round trip through every coordinator command with the
# real CLI (human and --json output), then a clean SIGTERM shutdown.
. tests/lib.sh

s2_start
check "healthz answers" curl -sf "$S2_SERVER/healthz"
check "s2 --help lists the commands" sh -c '"$S2" --help | grep -q "claim"'
check "s2 version" "$S2" version

check "swarm add" "$S2" swarm add sw1 --role "first swarm" --capabilities a,b --budget 10
out=$("$S2" swarm list)
contains "$out" "sw1" "swarm list shows sw1"
is "$("$S2" swarm show sw1 --json | jq -r .swarm.id)" "sw1" "swarm show --json"
check "agent add" "$S2" agent add ag1 --swarm sw1 --capabilities a,b
is "$("$S2" agent show ag1 --json | jq -r .agent.swarm)" "sw1" "agent show --json"
contains "$("$S2" agent list)" "ag1" "agent list shows ag1"

check "task add t1" "$S2" task add --swarm sw1 --id t1 --title "first task"
check "task add t2 depending on t1" "$S2" task add --swarm sw1 --id t2 --title second --depends-on t1
is "$("$S2" task show t1 --json | jq -r .task.state)" "ready" "t1 is ready"
is "$("$S2" task show t2 --json | jq -r .task.state)" "pending" "t2 waits for t1"

"$S2" claim --agent ag1 --json >"$T_DIR/claim.json"
is "$(jq -r .task.id "$T_DIR/claim.json")" "t1" "claim hands out t1"
lease=$(jq -r .lease.token "$T_DIR/claim.json")
check "heartbeat with the lease" "$S2" heartbeat t1 --lease "$lease"
check "done with the lease" "$S2" done t1 --lease "$lease" --result '{"ok":true}'
is "$("$S2" task show t1 --json | jq -r .task.state)" "done" "t1 is done"
is "$("$S2" task show t1 --json | jq -c .task.result)" '{"ok":true}' "result kept"
is "$("$S2" task show t2 --json | jq -r .task.state)" "ready" "t2 became ready"

# the CLI remembers the lease of its own claim
check "claim t2 (lease remembered)" "$S2" claim --agent ag1
check "fail t2 without --lease" "$S2" fail t2 --reason "flaky"
st=$("$S2" task show t2 --json | jq -r '.task.state + " " + (.task.attempts|tostring)')
is "$st" "ready 1" "failed t2 is back to ready after one attempt"

check "task cancel" "$S2" task cancel t2 --reason "not needed"
is "$("$S2" task show t2 --json | jq -r .task.state)" "cancelled" "t2 cancelled"

contains "$("$S2" task list)" "t1" "task list"
is "$("$S2" task list --state done --json | jq -r '.tasks | length')" "1" "task list --state done"
contains "$("$S2" status)" "sw1" "status overview"
check "status SWARM" "$S2" status sw1
check "model list" "$S2" model list

check "swarm pause" "$S2" swarm pause sw1
is "$("$S2" swarm show sw1 --json | jq -r .swarm.state)" "paused" "swarm paused"
check "swarm resume" "$S2" swarm resume sw1
is "$("$S2" swarm show sw1 --json | jq -r .swarm.state)" "active" "swarm active again"

# exit codes: 2 usage, 1 error
"$S2" claim >/dev/null 2>&1
is "$?" "2" "missing --agent is a usage error (exit 2)"
"$S2" task show nope >/dev/null 2>&1
is "$?" "1" "unknown task is an error (exit 1)"

s2_stop
is "$SRV_STATUS" "0" "serve exits 0 on SIGTERM"
t_done
