# t0040-lease: leases expire by the server's timer (no request needed), the stale holder is
# fenced off with 409 and a clear error, heartbeats move the expiry forward, a task that
# keeps expiring dies after max_attempts, and retry backoff shows in ready_at.
# The expiry checks read tasks with GET /v1/tasks/ID only: those are served from the store
# by the HTTP threads and never reach the engine, so only its timer can change the task.
. tests/lib.sh

now_ms() { date +%s%3N; }
# wait_until_ms MS: let the wall clock pass MS (at most 30 s), without talking to the server
wait_until_ms() {
    lim=$(($(now_ms) + 30000))
    while [ "$(now_ms)" -le "$1" ] && [ "$(now_ms)" -le "$lim" ]; do sleep 0.02; done
}
state_is() { # state_is TASK STATE
    [ "$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks/$1" | jq -r .task.state)" = "$2" ]
}
task() { http GET "/v1/tasks/$1"; }
claim() { http POST /v1/claim "{\"agent\":\"$1\",\"wait_ms\":${2:-0}}"; }
add() { expect_http 201 "create $1" POST /v1/tasks "$2"; }
# alive WHERE: stop at once if the server died (a crash is reported, not waited out)
alive() {
    curl -sf --max-time 10 "$S2_SERVER/healthz" >/dev/null 2>&1 && return 0
    not_ok "the server is up $1"
    tail -15 "$T_DIR/serve.log" | sed 's/^/# /'
    kill -KILL "$SRV_PID" 2>/dev/null
    SRV_PID=""
    t_done
}

s2_start
# one agent lets many leases lapse here on purpose: keep the governor's breaker (3 in a row,
# tested in t0600) out of these lease mechanics
expect_http 200 "policy: no breaker trips in this test" PUT /v1/policy '{"breaker_failures":100}'
check "swarm add" "$S2" swarm add ls
check "agent add la1" "$S2" agent add la1 --swarm ls
check "agent add la2" "$S2" agent add la2 --swarm ls

# ---- expiry by the timer ----
# (4 s: long enough for the re-claimer below to finish its checks on a loaded machine)
add e1 '{"id":"e1","swarm":"ls","title":"short lease","lease_ms":4000,"retry_backoff_ms":0}'
claim la1
is "$HTTP_STATUS $(j .task.id) $(j .lease.fence)" "200 e1 1" "la1 claims e1 (fence 1)"
L1=$(j .lease.token)
X1=$(j .lease.expires_at)
d=$((X1 - $(now_ms)))
check "the lease expires at most lease_ms after the claim ($d ms from now)" test "$d" -le 4000
wait_until_ms "$X1"
check "e1 is ready again without any request to the engine" wait_for 10 state_is e1 ready
task e1
is "$(j .task.attempts)" 1 "the expired claim counts as an attempt"
is "$(j .task.lease_expires_at)" null "no lease on a ready task"
is "$(j .task.reason)" "lease 1 expired" "the reason names the expired lease"
upd=$(j .task.updated_at)
check "the expiry happened on time (at $upd, lease ended $X1)" \
    test "$upd" -ge "$X1" -a "$((upd - X1))" -lt 2000
ra=$(j .task.ready_at)
check "no backoff asked: ready at once (ready_at $ra)" test "$ra" = null -o "$ra" -le "$upd"

alive "after the timer expiry"
# ---- the stale holder is refused ----
for verb in heartbeat done fail; do
    body="{\"lease\":\"$L1\"}"
    [ $verb = fail ] && body="{\"lease\":\"$L1\",\"reason\":\"late\"}"
    expect_http 409 "$verb with the expired lease: 409" POST "/v1/tasks/e1/$verb" "$body"
    is "$(j .error.code)" stale_lease "$verb: error code stale_lease"
    contains "$(j .error.message)" "lease 1" "$verb: the message names the lease"
done
contains "$(j .error.message)" "task 'e1' is ready" "the message says what became of the task"
task e1
is "$(j .task.state) $(j .task.attempts)" "ready 1" "refused requests changed nothing"

claim la2
is "$HTTP_STATUS $(j .task.id) $(j .lease.fence) $(j .task.attempts)" "200 e1 2 2" \
    "la2 claims e1 again (fence 2, attempt 2)"
L2=$(j .lease.token)
expect_http 409 "done with the first lease after a re-claim: 409" POST /v1/tasks/e1/done \
    "{\"lease\":\"$L1\"}"
contains "$(j .error.message)" "claimed again (current lease 2)" "the message says the task was claimed again"
expect_http 409 "heartbeat with the first lease after a re-claim: 409" POST /v1/tasks/e1/heartbeat \
    "{\"lease\":\"$L1\"}"
expect_http 409 "a lease that was never issued: 409" POST /v1/tasks/e1/done '{"lease":"s2l_2_forged"}'
task e1
is "$(j .task.state) $(j .task.owner) $(j .task.fence)" "claimed la2 2" "the current holder keeps e1"
expect_http 200 "done with the current lease" POST /v1/tasks/e1/done "{\"lease\":\"$L2\"}"
is "$(j .task.state)" done "e1 is done"
expect_http 409 "done again with the same lease: 409" POST /v1/tasks/e1/done "{\"lease\":\"$L2\"}"
contains "$(j .error.message)" "is done" "the message says the task is done"

alive "after the stale-lease checks"
# ---- heartbeat extends the lease ----
add h1 '{"id":"h1","swarm":"ls","title":"heartbeats","lease_ms":3000}'
claim la1
is "$(j .task.id)" h1 "la1 claims h1"
LH=$(j .lease.token)
XH=$(j .lease.expires_at)
wait_until_ms $((XH - 2500))
expect_http 200 "heartbeat" POST /v1/tasks/h1/heartbeat "{\"lease\":\"$LH\"}"
XH2=$(j .lease.expires_at)
check "heartbeat moves expires_at forward ($XH -> $XH2)" test "$XH2" -ge $((XH + 400))
task h1
is "$(j .task.lease_expires_at)" "$XH2" "the task shows the new expiry"
wait_until_ms $((XH2 - 2500))
out=$("$S2" heartbeat h1 --lease "$LH" 2>&1)
contains "$out" "lease extended" "s2 heartbeat extends it too"
XH3=$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks/h1" | jq -r .task.lease_expires_at)
check "s2 heartbeat moved it again ($XH2 -> $XH3)" test "$XH3" -gt "$XH2"
wait_until_ms $((XH + 200))
check "h1 is still claimed past its first expiry" state_is h1 claimed
expect_http 200 "done after heartbeats" POST /v1/tasks/h1/done "{\"lease\":\"$LH\"}"

alive "after the heartbeats"
# ---- a waiting claimer gets an expired task pushed ----
# (3 s: the new holder gets the same lease to finish in, on a loaded machine too)
add w1 '{"id":"w1","swarm":"ls","title":"abandoned","lease_ms":3000,"retry_backoff_ms":0}'
claim la1
is "$(j .task.id)" w1 "la1 claims w1 and abandons it"
XW=$(j .lease.expires_at)
curl -s -o "$T_DIR/w1.json" -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -d '{"agent":"la2","wait_ms":10000}' "$S2_SERVER/v1/claim" >"$T_DIR/w1.status" &
wpid=$!
check "la2's waiting claim returns" wait_for 15 sh -c "! kill -0 $wpid 2>/dev/null"
got=$(now_ms)
wait $wpid
is "$(cat "$T_DIR/w1.status") $(jq -r .task.id "$T_DIR/w1.json") $(jq -r .lease.fence "$T_DIR/w1.json")" \
    "200 w1 2" "la2 is handed w1 when la1's lease expires"
check "not before the expiry ($got >= $XW)" test "$got" -ge "$XW"
check "promptly after it ($((got - XW)) ms)" test $((got - XW)) -lt 3000
expect_http 200 "la2 finishes w1" POST /v1/tasks/w1/done \
    "{\"lease\":\"$(jq -r .lease.token "$T_DIR/w1.json")\"}"

alive "after the pushed expiry"
# ---- max_attempts expiries: dead ----
add d1 '{"id":"d1","swarm":"ls","title":"keeps expiring","lease_ms":200,"max_attempts":2,"retry_backoff_ms":0}'
claim la1
is "$(j .task.id) $(j .task.attempts)" "d1 1" "d1 attempt 1"
wait_until_ms "$(j .lease.expires_at)"
check "d1 back to ready after its first expiry" wait_for 10 state_is d1 ready
claim la1
is "$(j .task.id) $(j .task.attempts)" "d1 2" "d1 attempt 2"
LD=$(j .lease.token)
wait_until_ms "$(j .lease.expires_at)"
check "d1 is dead after max_attempts (2) expiries" wait_for 10 state_is d1 dead
task d1
is "$(j .task.attempts) $(j .task.reason)" "2 lease 2 expired" "dead after 2 attempts, reason kept"
claim la1
is "$HTTP_STATUS" 204 "a dead task is not handed out"
expect_http 409 "done on a dead task: 409" POST /v1/tasks/d1/done "{\"lease\":\"$LD\"}"
contains "$(j .error.message)" "dead" "the message says the task is dead"

alive "after max_attempts"
# ---- retry backoff ----
add b1 '{"id":"b1","swarm":"ls","title":"backs off","retry_backoff_ms":2500,"max_attempts":5}'
claim la1
LB=$(j .lease.token)
expect_http 200 "fail b1" POST /v1/tasks/b1/fail "{\"lease\":\"$LB\",\"reason\":\"flaky\"}"
RB=$(j .task.retry_at)
is "$(j .task.state)" ready "a failed task with attempts left is ready"
claim la1
t=$(now_ms)
if [ "$HTTP_STATUS" = 204 ]; then
    ok "b1 is not handed out during its backoff"
    task b1
    is "$(j .task.ready_at)" "$RB" "ready_at is the retry_at the fail reply named"
    is "$(($(j .task.ready_at) - $(j .task.updated_at)))" 2500 "ready_at = failure time + retry_backoff_ms"
    claim la1 10000
    at=$(now_ms)
    is "$HTTP_STATUS $(j .task.id) $(j .task.attempts)" "200 b1 2" "a waiting claim gets b1 when its backoff ends"
    check "not before ready_at ($at >= $RB)" test "$at" -ge "$RB"
elif [ "$t" -ge "$RB" ]; then
    note "this machine took the whole backoff to send one claim: the backoff check is skipped"
    is "$HTTP_STATUS $(j .task.id) $(j .task.attempts)" "200 b1 2" "after its backoff b1 is handed out"
else
    not_ok "b1 is not handed out during its backoff (got $HTTP_STATUS at $t, ready at $RB)"
fi
LB=$(j .lease.token)
task b1
is "$(j .task.state) $(j .task.reason)" "claimed flaky" "the failure reason is kept"
expect_http 200 "fail b1 again" POST /v1/tasks/b1/fail "{\"lease\":\"$LB\",\"reason\":\"again\"}"
RB2=$(j .task.retry_at)
task b1
is "$(j .task.ready_at)" "$RB2" "ready_at is the retry_at of the second failure"
is "$(($(j .task.ready_at) - $(j .task.updated_at)))" 5000 "ready_at = failure time + backoff, doubled on the second failure"
expect_http 200 "cancel b1" POST /v1/tasks/b1/cancel

add x1 '{"id":"x1","swarm":"ls","title":"expires into backoff","lease_ms":200,"retry_backoff_ms":700}'
claim la1
wait_until_ms "$(j .lease.expires_at)"
check "x1 expires to ready" wait_for 10 state_is x1 ready
task x1
is "$(($(j .task.ready_at) - $(j .task.updated_at)))" 700 "an expiry backs off too: ready_at = expiry + retry_backoff_ms"
expect_http 200 "cancel x1" POST /v1/tasks/x1/cancel

alive "after the backoffs"
# ---- refused claims are answered at once, even with wait_ms ----
add q1 '{"id":"q1","swarm":"ls","title":"held"}'
claim la1
is "$(j .task.id)" q1 "la1 claims q1 (max_leases 1)"
LQ=$(j .lease.token)
# claim_now AGENT TOKEN: POST /v1/claim with wait_ms 5000, at most 10 s; sets ST, MS, BODY
claim_now() {
    t0=$(now_ms)
    ST=$(curl -s --max-time 10 -o "$T_DIR/q.json" -w '%{http_code}' -H "Authorization: Bearer $2" \
        -d "{\"agent\":\"$1\",\"wait_ms\":5000}" "$S2_SERVER/v1/claim")
    MS=$(($(now_ms) - t0))
    BODY=$(cat "$T_DIR/q.json")
}
claim_now la1 "$S2_TOKEN"
is "$ST $(printf '%s' "$BODY" | jq -r .error.code)" "409 agent_busy" "a claim by an agent at max_leases: 409 agent_busy"
check "at once, not after its wait ($MS ms)" test "$MS" -lt 2000
claim_now nobody "$S2_TOKEN"
is "$ST $(printf '%s' "$BODY" | jq -r .error.code)" "404 unknown_agent" "a claim by an unknown agent: 404"
check "at once ($MS ms)" test "$MS" -lt 2000
OTHER=$("$S2" swarm add lo --json | jq -r .token)
claim_now la1 "$OTHER"
is "$ST $(printf '%s' "$BODY" | jq -r .error.code)" "403 forbidden" "a claim with another swarm's token: 403"
check "at once ($MS ms)" test "$MS" -lt 2000
expect_http 200 "q1 done" POST /v1/tasks/q1/done "{\"lease\":\"$LQ\"}"

alive "after the refused claims"
# ---- the events say the same ----
"$S2" watch --from 1 --count 1000 --json >"$T_DIR/events.json" 2>&1 &
wpid=$!
check "the event stream has the expiries" wait_for 10 sh -c \
    "jq -s '[.[] | select(.op == \"task.expire\" and .task == \"d1\")] | length' '$T_DIR/events.json' | grep -qx 2"
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
is "$(jq -s -c '[.[] | select(.op == "task.expire" and .task == "d1") | .params.next]' "$T_DIR/events.json")" \
    '["retry","dead"]' "d1 expired into a retry, then into dead"

s2_stop
is "$SRV_STATUS" 0 "serve exits 0 on SIGTERM"
t_done
