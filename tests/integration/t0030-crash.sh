# t0030-crash: kill -9 loses no acknowledged change. First, leases across a crash: a lease
# held at the crash keeps its expiry (and keeps working), one that expired while the server
# was down is re-queued at restart, one that expires after the restart is expired by the
# timer. Then the crash campaign: clients create tasks (one at a time and in batches) and
# claim + finish them while the server is killed with SIGKILL and restarted on the same
# database, 5 rounds (20 with S2_LONG=1); the crash driver's ledger of every 2xx must match
# what the server holds after the last restart.
. tests/lib.sh

: "${S2_BUILD:=$(pwd)/build}"
CRASH=$S2_BUILD/tests/crash
[ -x "$CRASH" ] || {
    not_ok "driver $CRASH is built (make test-bins)"
    t_done
}
rounds=5
[ "$S2_LONG" = 1 ] && rounds=20

now_ms() { date +%s%3N; }
wait_until_ms() {
    lim=$(($(now_ms) + 30000))
    while [ "$(now_ms)" -le "$1" ] && [ "$(now_ms)" -le "$lim" ]; do sleep 0.02; done
}
state_is() {
    [ "$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks/$1" | jq -r .task.state)" = "$2" ]
}
# restart: a new server on the same database; the load follows it through $T_DIR/url
restart() {
    s2_start
    printf '%s\n' "$S2_SERVER" >"$T_DIR/url.tmp" && mv "$T_DIR/url.tmp" "$T_DIR/url"
}
# alive WHERE: stop at once if the server died (a crash is reported, not waited out)
alive() {
    curl -sf --max-time 10 "$S2_SERVER/healthz" >/dev/null 2>&1 && return 0
    not_ok "the server is up $1"
    tail -15 "$T_DIR/serve.log" | sed 's/^/# /'
    kill -KILL "$SRV_PID" 2>/dev/null
    SRV_PID=""
    t_done
}

restart
# the load abandons leases on purpose: keep the governor's agent breakers (3 failures in a
# row, tested in t0600) out of it
expect_http 200 "policy: no breaker trips in this test" PUT /v1/policy '{"breaker_failures":100}'

# ---- leases across a crash ----
check "swarm add lx" "$S2" swarm add lx
check "agent add lxa" "$S2" agent add lxa --swarm lx --max-leases 3
# one batch, then claims in priority order: L2, the shortest lease, last, so that its
# expiry cannot race the other claims on a loaded machine
expect_http 201 "create L1, L2, L3 (lease_ms 60000, 1000, 5000)" POST /v1/tasks '{"tasks":[
    {"id":"L1","swarm":"lx","title":"long lease","lease_ms":60000,"priority":3},
    {"id":"L2","swarm":"lx","title":"short lease","lease_ms":1000,"priority":1,"retry_backoff_ms":0},
    {"id":"L3","swarm":"lx","title":"mid lease","lease_ms":5000,"priority":2,"retry_backoff_ms":0}]}'
for t in L1 L3 L2; do
    http POST /v1/claim '{"agent":"lxa"}'
    is "$(j .task.id)" "$t" "lxa claims $t"
    eval "LEASE_$t=\$(j .lease.token) EXP_$t=\$(j .lease.expires_at)"
done
s2_kill
[ "$(now_ms)" -lt "$EXP_L2" ] || note "this machine is slow: L2 expired before the kill, not while the server was down"
wait_until_ms $((EXP_L2 + 100))
restart
task() { http GET "/v1/tasks/$1"; }
task L1
is "$(j .task.state) $(j .task.owner) $(j .task.fence)" "claimed lxa 1" "L1 is still claimed after kill -9"
is "$(j .task.lease_expires_at)" "$EXP_L1" "L1 keeps its expiry"
expect_http 200 "L1's lease still works after the restart" POST /v1/tasks/L1/heartbeat \
    "{\"lease\":\"$LEASE_L1\"}"
check "L2 (expired while the server was down) is re-queued at restart" wait_for 10 state_is L2 ready
task L2
is "$(j .task.attempts) $(j .task.reason)" "1 lease 1 expired" "L2: one attempt, the expiry recorded"
expect_http 409 "L2's old lease is refused" POST /v1/tasks/L2/done "{\"lease\":\"$LEASE_L2\"}"
task L3
if [ "$(now_ms)" -lt "$EXP_L3" ]; then
    is "$(j .task.state) $(j .task.lease_expires_at)" "claimed $EXP_L3" "L3 is still claimed, expiry kept"
    wait_until_ms "$EXP_L3"
    check "L3 expires at its time, by the restarted server's timer" wait_for 10 state_is L3 ready
    task L3
    check "L3's expiry happened on time ($(j .task.updated_at) vs $EXP_L3)" \
        test "$(j .task.updated_at)" -ge "$EXP_L3" -a "$(($(j .task.updated_at) - EXP_L3))" -lt 2000
else
    note "restart took longer than L3's lease: its timer check is skipped"
fi
expect_http 200 "L1 finishes after the crash" POST /v1/tasks/L1/done "{\"lease\":\"$LEASE_L1\"}"

alive "after the lease checks"
# ---- the crash campaign ----
# finished PID SECS: wait for a load to end, as long as the server stays up
finished() {
    n=0
    while kill -0 "$1" 2>/dev/null; do
        [ $n -ge $(($2 * 10)) ] && return 1
        if [ $((n % 20)) -eq 0 ] && ! curl -sf --max-time 10 "$S2_SERVER/healthz" >/dev/null 2>&1; then
            echo "the server is down"
            return 1
        fi
        sleep 0.1
        n=$((n + 1))
    done
}
check "swarm add kx" "$S2" swarm add kx
for i in 0 1 2 3; do check "agent add kx-w$i" "$S2" agent add kx-w$i --swarm kx --max-leases 8; done
T0=$(now_ms)
"$CRASH" load "$T_DIR" kx 2 4 >"$T_DIR/load.out" 2>&1 &
LOAD=$!
lines() { wc -l <"$T_DIR/ledger" 2>/dev/null || echo 0; }
# (cat: grep -c on a missing ledger would print nothing, on one without a match 0 and fail)
dones() { cat "$T_DIR/ledger" 2>/dev/null | grep -c '^D '; }
r=1
while [ $r -le $rounds ]; do
    # let the load make progress on this server, then pull the plug mid-flight
    want=$(($(dones) + 50 + r * 5))
    if ! wait_for 60 sh -c "[ \$(cat '$T_DIR/ledger' 2>/dev/null | grep -c '^D ') -ge $want ]"; then
        not_ok "round $r: the load makes progress (dones $(dones), wanted $want)"
        break
    fi
    s2_kill
    restart
    r=$((r + 1))
done
is "$((r - 1))" "$rounds" "kill -9 rounds under load ($(lines) ledger lines)"
note "campaign: $(($(now_ms) - T0)) ms for $rounds rounds"
touch "$T_DIR/stop"
# one more crash while the load winds down, then let the workers drain the swarm
s2_kill
restart
check "the load drains the swarm after the last restart" finished $LOAD 120
wait $LOAD
is "$?" 0 "the load saw only refusals that are by design"
note "drained after $(($(now_ms) - T0)) ms"
grep '^#' "$T_DIR/load.out" | head -10

alive "after the drain"
"$CRASH" check "$T_DIR" kx >"$T_DIR/check.out" 2>&1
is "$?" 0 "the ledger and the server agree"
grep '^#' "$T_DIR/check.out" | head -20
note "$(grep -v '^#' "$T_DIR/check.out" | tr '\n' ' ')"
val() { sed -n "s/^$1 //p" "$T_DIR/check.out"; }
is "$(val lost_creates)" 0 "every acknowledged create exists"
is "$(val lost_dones)" 0 "every acknowledged done is still done, with its fence"
is "$(val shared_fences)" 0 "no fence was handed to two claimers"
is "$(val unexplained_dones)" 0 "every done task was finished by the holder of an acknowledged claim"
is "$(val phantoms)" 0 "no task exists that was not asked for"
is "$(val torn_batches)" 0 "batch creates are all or nothing across crashes"
is "$(val not_done)" 0 "after the drain every task is done"
check "the campaign did real work ($(val created) created, $(val dones) done, $(val refused) refused, $(val abandoned) abandoned)" \
    test "$(val dones)" -ge 250 -a "$(val abandoned)" -ge 1

# the state survives one more crash at rest
s2_kill
restart
"$CRASH" check "$T_DIR" kx >"$T_DIR/check2.out" 2>&1
is "$?" 0 "and again after a kill -9 at rest"
s2_stop
is "$SRV_STATUS" 0 "serve exits 0 on SIGTERM"
t_done
