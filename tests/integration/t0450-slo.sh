# t0450-slo: the server side of the chassis: a swarm's service contract (validated, admin
# only), task-scoped credentials (a lease token acts on its own task alone and dies with the
# lease), and service levels computed from how leases end, kept across a restart.
. tests/lib.sh

s2_start
expect_http 200 "no breaker trips here" PUT /v1/policy '{"breaker_failures":100}'
"$S2" swarm add sw --json >"$T_DIR/sw.json"
SW=$(jq -r .token "$T_DIR/sw.json")
"$S2" agent add a1 --swarm sw >/dev/null
"$S2" agent add a2 --swarm sw >/dev/null

# ---- the contract --------------------------------------------------------------------
contract='{"contract":{"version":"1.0.0","limits":{"max_memory_mb":256,"max_pids":64},"slos":{"p99_latency_ms":60000,"success_rate":0.9,"availability":0.95},"network":["api.example.com:443"],"secrets":["SIP_API_KEY"]}}'
expect_http 403 "a swarm token cannot grant itself network or secrets" PUT /v1/swarms/sw/contract "$contract" "$SW"
expect_http 200 "the admin sets the contract" PUT /v1/swarms/sw/contract "$contract"
expect_http 200 "the swarm reads its contract" GET /v1/swarms/sw/contract "" "$SW"
is "$(j '.contract.secrets[0]') $(j '.contract.slos.success_rate')" "SIP_API_KEY 0.9" "what was set comes back"
expect_http 400 "a network grant must be host:port" PUT /v1/swarms/sw/contract '{"contract":{"network":["api.example.com"]}}'
contains "$(j .error.message)" "host:port" "...saying so"
expect_http 400 "an unknown contract member" PUT /v1/swarms/sw/contract '{"contract":{"slo":{}}}'
expect_http 400 "an SLO out of range" PUT /v1/swarms/sw/contract '{"contract":{"slos":{"success_rate":2}}}'
expect_http 404 "no such swarm" PUT /v1/swarms/nope/contract "$contract"

# ---- task-scoped credentials ----------------------------------------------------------
"$S2" task add --swarm sw --id t1 --title one >/dev/null
"$S2" task add --swarm sw --id t2 --title two >/dev/null
http POST /v1/claim '{"agent":"a1"}'
L1=$(j .lease.token)
is "$(j .task.id)" "t1" "claim t1"
expect_http 200 "the lease alone, as bearer, heartbeats its task (no body needed)" POST /v1/tasks/t1/heartbeat "" "$L1"
expect_http 200 "...and reads it" GET /v1/tasks/t1 "" "$L1"
expect_http 404 "...but not another task" GET /v1/tasks/t2 "" "$L1"
expect_http 403 "...nor act on it" POST /v1/tasks/t2/cancel '{}' "$L1"
expect_http 403 "...nor list tasks" GET /v1/tasks "" "$L1"
expect_http 403 "...nor claim" POST /v1/claim '{"agent":"a1"}' "$L1"
expect_http 403 "...nor read the log" GET /v1/witness "" "$L1"
expect_http 403 "...nor create tasks" POST /v1/tasks '{"swarm":"sw","title":"x"}' "$L1"
http GET /v1/whoami "" "$L1"
is "$(j .kind)" "task" "whoami says task"
expect_http 200 "done with the lease as bearer" POST /v1/tasks/t1/done '{"result":"ok"}' "$L1"
expect_http 401 "once the lease ended the token is dead" POST /v1/tasks/t1/heartbeat "" "$L1"
http GET "/v1/witness?task=t1"
is "$(j '[.entries[] | select(.op=="task.done")][0].actor')" "task:t1" "the log names the task as the actor"

# ---- service levels -----------------------------------------------------------------
check "t2 is not part of the next round" "$S2" task cancel t2
for i in $(seq 1 9); do "$S2" task add --swarm sw --id s$i --title "s$i" --max-attempts 1 >/dev/null; done
ok=0
for i in $(seq 1 9); do
    http POST /v1/claim '{"agent":"a2"}'
    id=$(j .task.id)
    L=$(j .lease.token)
    if [ $i -le 7 ]; then
        http POST "/v1/tasks/$id/done" "{\"lease\":\"$L\"}"
    else
        http POST "/v1/tasks/$id/fail" "{\"lease\":\"$L\",\"reason\":\"broken\"}"
    fi
    [ "$HTTP_STATUS" = 200 ] && ok=$((ok + 1))
done
is "$ok" "9" "seven done, two failed"
http GET /v1/swarms/sw/slo
is "$(j .slo.samples) $(j .slo.done) $(j .slo.failed)" "10 8 2" "the swarm's window: 10 leases, 8 done, 2 failed"
is "$(j .slo.success_rate)" "0.8" "success rate 0.8"
is "$(j .slo.met.success_rate) $(j .slo.met.p99_latency_ms)" "false true" "below the contract's 0.9; p99 within 60 s"
is "$(j .slo.compliance) $(j '.slo.reputation * 1000 | round')" "0.8 640" "compliance x0.8, reputation = 0.8 x 0.8"
is "$(j '.agents[] | select(.agent=="a2") | .slo.samples')" "9" "a2's own window: 9 leases"
contains "$("$S2" slo sw)" "MISSED" "s2 slo shows the missed contract"
contains "$("$S2" slo)" "sw" "s2 slo lists the swarm"
# an expired lease counts against availability
"$S2" task add --swarm sw --id e1 --title expiring --lease-ms 200 --max-attempts 1 >/dev/null
http POST /v1/claim '{"agent":"a1"}'
is "$HTTP_STATUS $(j .task.id)" "200 e1" "a1 claims e1 and lets its lease lapse"
check "e1 is dead by expiry" wait_for 10 sh -c "\"$S2\" task show e1 --json | jq -e '.task.state == \"dead\"'"
http GET /v1/swarms/sw/slo
is "$(j .slo.expired) $(j '.slo.availability * 1000 | round')" "1 909" "the expiry lowers availability (10 of 11)"
is "$(j .slo.met.availability)" "false" "below the contract's 0.95"
expect_http 200 "a swarm token reads its own SLOs" GET /v1/swarms/sw/slo "" "$SW"
s2_stop
s2_start
http GET /v1/swarms/sw/slo
is "$(j .slo.samples) $(j '.slo.reputation * 1000 | round')" "11 582" "the window survives a restart (0.8 x 8/11)"
t_done
