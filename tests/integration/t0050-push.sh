# t0050-push: work is pushed, not polled. A long-poll claim (`s2 claim --wait`) returns the
# moment a task is created, released by a dependency or by the phase barrier; a claim that
# finds nothing ends with HTTP 204 after its wait. The event stream (SSE) carries one event
# per state change with increasing ids, resumes from Last-Event-ID, shows a swarm token only
# its own swarm, and `s2 watch` prints it.
. tests/lib.sh

now_ms() { date +%s%3N; }
metric() { curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/metrics" | sed -n "s/^$1 //p"; }
parked() { [ "$(metric s2_waiting_claims)" -ge "$1" ]; }
gone() { ! kill -0 "$1" 2>/dev/null; }
state_is() {
    [ "$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks/$1" | jq -r .task.state)" = "$2" ]
}
# the push must beat this by far (a poller would need its whole interval)
slow=1500
case $S2 in *asan*) slow=3000 ;; esac

export S2_HOME=$T_DIR/home # where the CLI keeps the leases it claims
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
check "swarm add pp" "$S2" swarm add pp
check "swarm add pq" "$S2" swarm add pq
for a in pa1 pa2; do check "agent add $a" "$S2" agent add $a --swarm pp; done
check "agent add pb1" "$S2" agent add pb1 --swarm pq

# ---- a long-poll claim gets a new task at once ----
"$S2" claim --agent pa1 --wait 10 --json >"$T_DIR/c1.json" 2>"$T_DIR/c1.err" &
cpid=$!
check "the claim waits on the server" wait_for 10 parked 1
expect_http 201 "create p1 while pa1 waits" POST /v1/tasks '{"id":"p1","swarm":"pp","title":"pushed"}'
t1=$(now_ms)
check "the waiting claim returns" wait_for 15 gone $cpid
t2=$(now_ms)
wait $cpid
is "$?" 0 "s2 claim --wait exits 0"
is "$(jq -r .task.id "$T_DIR/c1.json")" p1 "it returns the new task"
is "$(jq -r .task.owner "$T_DIR/c1.json")" pa1 "owned by the waiting agent"
check "within a fraction of a second of its creation ($((t2 - t1)) ms)" test $((t2 - t1)) -lt $slow
check "s2 done finds the lease the claim saved" "$S2" done p1

alive "after the long-poll"
# ---- nothing ready: 204 after the wait ----
t0=$(now_ms)
"$S2" claim --agent pa1 --wait 1 >"$T_DIR/c2.out" 2>"$T_DIR/c2.err"
rc=$?
t1=$(now_ms)
is "$rc" 0 "s2 claim --wait 1 with nothing ready exits 0"
is "$(cat "$T_DIR/c2.out")" "" "and prints nothing on stdout"
contains "$(cat "$T_DIR/c2.err")" "no task for pa1: no ready task for this agent" "it says why on stderr"
check "it waited its second ($((t1 - t0)) ms)" test $((t1 - t0)) -ge 950 -a $((t1 - t0)) -lt 8000
is "$("$S2" claim --agent pa1 --wait 1 --json | jq -c .)" \
    '{"task":null,"reason":"no ready task for this agent"}' "s2 claim --json says so too"
st=$(curl -s -D "$T_DIR/h204" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $S2_TOKEN" \
    -d '{"agent":"pa1","wait_ms":300}' "$S2_SERVER/v1/claim")
is "$st" 204 "POST /v1/claim with wait_ms and nothing ready: 204"
contains "$(cat "$T_DIR/h204")" "S2-Reason: no ready task for this agent" "with the reason in S2-Reason"

# a wait longer than the CLI's usual per-request limit (60 s): the long campaign only
if [ "$S2_LONG" = 1 ]; then
    t0=$(now_ms)
    "$S2" claim --agent pa1 --wait 75 --json >"$T_DIR/c5.json" 2>"$T_DIR/c5.err" &
    cpid=$!
    check "a 75 s claim waits" wait_for 10 parked 1
    lim=$((t0 + 65000))
    while [ "$(now_ms)" -lt "$lim" ] && ! gone $cpid; do sleep 0.2; done
    check "s2 claim --wait 75 is still waiting after 65 s" kill -0 "$cpid"
    expect_http 201 "create p75" POST /v1/tasks '{"id":"p75","swarm":"pp","title":"late"}'
    check "and gets the task created then" wait_for 15 gone $cpid
    wait $cpid
    is "$? $(jq -r .task.id "$T_DIR/c5.json")" "0 p75" "s2 claim --wait 75 returns p75, exit 0"
    sed 's/^/# /' "$T_DIR/c5.err"
    check "s2 done p75" "$S2" done p75
fi
alive "after the empty claims"
# ---- the phase barrier lifts: the next phase's task is pushed ----
expect_http 201 "create ph1 (phase 1) and ph2 (phase 2)" POST /v1/tasks \
    '{"tasks":[{"id":"ph1","swarm":"pp","title":"first","phase":1},{"id":"ph2","swarm":"pp","title":"second","phase":2}]}'
is "$(j '[.tasks[].state] | join(" ")')" "ready pending" "ph2 waits for phase 1"
http POST /v1/claim '{"agent":"pa1"}'
is "$(j .task.id)" ph1 "pa1 claims ph1"
LP=$(j .lease.token)
"$S2" claim --agent pa2 --wait 10 --json >"$T_DIR/c3.json" 2>"$T_DIR/c3.err" &
cpid=$!
check "pa2 waits (phase 2 is not open)" wait_for 10 parked 1
check "ph2 is still pending" state_is ph2 pending
expect_http 200 "ph1 done" POST /v1/tasks/ph1/done "{\"lease\":\"$LP\"}"
t1=$(now_ms)
check "pa2's claim returns" wait_for 15 gone $cpid
t2=$(now_ms)
wait $cpid
is "$(jq -r .task.id "$T_DIR/c3.json")" ph2 "pa2 is handed ph2 when phase 1 completes"
check "at once ($((t2 - t1)) ms)" test $((t2 - t1)) -lt $slow
check "pa2 finishes ph2" "$S2" done ph2

alive "after the phase barrier"
# ---- a dependency is done: the dependent task (another swarm) is pushed ----
expect_http 201 "create dep-a in pp" POST /v1/tasks '{"id":"dep-a","swarm":"pp","title":"upstream","phase":3}'
expect_http 201 "create dep-b in pq, depending on dep-a" POST /v1/tasks \
    '{"id":"dep-b","swarm":"pq","title":"downstream","depends_on":["dep-a"]}'
is "$(j .task.state)" pending "dep-b waits for dep-a"
http POST /v1/claim '{"agent":"pa1"}'
is "$(j .task.id)" dep-a "pa1 claims dep-a"
LA=$(j .lease.token)
"$S2" claim --agent pb1 --wait 10 --json >"$T_DIR/c4.json" 2>"$T_DIR/c4.err" &
cpid=$!
check "pb1 waits" wait_for 10 parked 1
expect_http 200 "dep-a done" POST /v1/tasks/dep-a/done "{\"lease\":\"$LA\"}"
t1=$(now_ms)
check "pb1's claim returns" wait_for 15 gone $cpid
t2=$(now_ms)
wait $cpid
is "$(jq -r .task.id "$T_DIR/c4.json")" dep-b "pb1 is handed dep-b when dep-a is done"
check "at once ($((t2 - t1)) ms)" test $((t2 - t1)) -lt $slow
check "pb1 finishes dep-b" "$S2" done dep-b

alive "after the dependency"
# ---- server-sent events ----
sse() { # sse NAME TOKEN QUERY [CURL ARGS]: stream /v1/events?QUERY into $T_DIR/NAME.sse
    n=$1 tok=$2 q=$3
    shift 3
    curl -sN -H "Authorization: Bearer $tok" "$@" "$S2_SERVER/v1/events?$q" >"$T_DIR/$n.sse" 2>&1 &
    SSE_PID=$!
}
ids() { sed -n 's/^id: //p' "$T_DIR/$1.sse"; }
datas() { sed -n 's/^data: //p' "$T_DIR/$1.sse"; }
has() { datas "$1" | jq -s -e "map(select($2)) | length > 0" >/dev/null 2>&1; }
stop_sse() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
# connected SWARM NAME...: create marker tasks in SWARM (that no agent can take) until every
# stream NAME has seen the same one (then each is subscribed: what follows reaches it)
MARKS=0
connected() {
    msw=$1
    shift
    while [ $MARKS -lt 40 ]; do
        MARKS=$((MARKS + 1))
        http POST /v1/tasks "{\"id\":\"mark$MARKS\",\"swarm\":\"$msw\",\"title\":\"marker\",\"requires\":[\"nobody-has-this\"]}"
        seen=1
        for s in "$@"; do wait_for 1 has "$s" ".task == \"mark$MARKS\"" || seen=0; done
        [ $seen = 1 ] && return 0
    done
    return 1
}
contiguous() { # the ids of stream NAME go up by one, from its first
    ids "$1" | awk 'NR > 1 && $1 != prev + 1 { bad = 1 } { prev = $1 } END { exit bad || NR == 0 }'
}

ST=$("$S2" swarm add ss --json | jq -r .token)
SO=$("$S2" swarm add so --json | jq -r .token)
check "agent add sa1" "$S2" agent add sa1 --swarm ss
sse all "$S2_TOKEN" ""
ALL=$SSE_PID
sse mine "$ST" ""
MINE=$SSE_PID
check "the two streams are open" connected ss all mine

expect_http 201 "create o1 in swarm so" POST /v1/tasks '{"id":"o1","swarm":"so","title":"other"}'
expect_http 201 "create s1 in swarm ss" POST /v1/tasks '{"id":"s1","swarm":"ss","title":"seen"}'
http POST /v1/claim '{"agent":"sa1"}'
LS=$(j .lease.token)
expect_http 200 "heartbeat s1" POST /v1/tasks/s1/heartbeat "{\"lease\":\"$LS\"}"
expect_http 200 "s1 done" POST /v1/tasks/s1/done "{\"lease\":\"$LS\"}"
expect_http 200 "cancel o1" POST /v1/tasks/o1/cancel
check "the admin stream sees s1 done" wait_for 10 has all '.op == "task.done" and .task == "s1"'
check "and o1 cancelled" wait_for 10 has all '.op == "task.cancel" and .task == "o1"'
check "the swarm stream sees s1 done" wait_for 10 has mine '.op == "task.done" and .task == "s1"'
stop_sse $ALL

is "$(datas all | jq -r 'select(.task == "s1") | .op' | tr '\n' ' ')" \
    "task.create task.claim task.heartbeat task.done " "one event per change of s1, in order"
is "$(datas all | jq -r 'select(.task == "s1") | .state' | tr '\n' ' ')" \
    "ready claimed claimed done " "each carries the task's state after it"
check "admin stream: ids go up by one" contiguous all
is "$(ids all | tr '\n' ' ')" "$(datas all | jq -r .seq | tr '\n' ' ')" "each id is the event's seq"

alive "after the first streams"
# resume after the claim event: exactly what followed it, again
K=$(datas all | jq -r 'select(.task == "s1" and .op == "task.claim") | .seq')
last=$(ids all | tail -1)
sse resume "$S2_TOKEN" "" -H "Last-Event-ID: $K"
check "a stream resumed with Last-Event-ID: $K replays up to $last" wait_for 10 sh -c \
    "sed -n 's/^id: //p' '$T_DIR/resume.sse' | grep -qx $last"
stop_sse $SSE_PID
is "$(ids resume | head -1)" $((K + 1)) "it starts right after $K"
is "$(datas resume | jq -c . | head -$((last - K)))" "$(datas all | jq -c "select(.seq > $K)")" \
    "with the same events"
sse after "$S2_TOKEN" "after=$K"
check "?after=$K does the same" wait_for 10 sh -c "sed -n 's/^id: //p' '$T_DIR/after.sse' | grep -qx $last"
stop_sse $SSE_PID
is "$(ids after | head -1)" $((K + 1)) "?after starts right after $K too"

alive "after the resumed streams"
# the swarm token: its own swarm only
stop_sse $MINE
check "the swarm stream saw s1's events" has mine '.task == "s1"'
is "$(datas mine | jq -r 'select(.swarm != "ss") | .seq' | head -5)" "" \
    "a swarm token sees no other swarm's events (nor swarm-less ones)"
check "swarm stream: ids go up" sh -c "sed -n 's/^id: //p' '$T_DIR/mine.sse' | sort -n -c"
st=$(curl -s -o "$T_DIR/forbidden.json" -w '%{http_code}' -H "Authorization: Bearer $ST" \
    --max-time 10 "$S2_SERVER/v1/events?swarm=so")
is "$st" 403 "a swarm token cannot ask for another swarm's stream"
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$S2_SERVER/v1/events")
is "$st" 401 "no token, no stream"
sse so "$S2_TOKEN" "swarm=so"
check "the stream of swarm so is open" connected so so
expect_http 201 "create o2 in swarm so" POST /v1/tasks '{"id":"o2","swarm":"so","title":"other"}'
check "admin ?swarm=so sees o2" wait_for 10 has so '.task == "o2"'
stop_sse $SSE_PID
is "$(datas so | jq -r 'select(.swarm != "so") | .seq')" "" "admin ?swarm=so: only swarm so"

alive "after the swarm streams"
# ---- s2 watch ----
# the watchers start after the newest event, so that they need not race the creates
sse tail "$S2_TOKEN" ""
TAIL=$SSE_PID
check "a fresh stream is open" connected ss tail
LAST=$(ids tail | tail -1)
stop_sse $TAIL
"$S2" watch --from "$LAST" --count 2 >"$T_DIR/watch.txt" 2>&1 &
wpid=$!
"$S2" watch --json --swarm ss --from "$LAST" --count 2 >"$T_DIR/watch.json" 2>&1 &
jpid=$!
expect_http 201 "create o3 in so" POST /v1/tasks '{"id":"o3","swarm":"so","title":"w"}'
expect_http 201 "create w1 in ss" POST /v1/tasks '{"id":"w1","swarm":"ss","title":"w"}'
expect_http 201 "create w2 in ss" POST /v1/tasks '{"id":"w2","swarm":"ss","title":"w"}'
check "s2 watch --count 2 exits after two events" wait_for 10 gone $wpid
check "s2 watch --json --swarm ss --count 2 exits" wait_for 10 gone $jpid
wait $wpid
is "$?" 0 "s2 watch exits 0"
contains "$(cat "$T_DIR/watch.txt")" "task.create" "s2 watch prints the operation"
contains "$(cat "$T_DIR/watch.txt")" "o3 (ready)" "and the task with its state"
contains "$(cat "$T_DIR/watch.txt")" "swarm=so" "and its swarm"
is "$(jq -r .task "$T_DIR/watch.json" | tr '\n' ' ')" "w1 w2 " "s2 watch --json --swarm ss: one JSON event per line, that swarm only"
first=$(datas all | jq -r .seq | head -1)
"$S2" watch --from 0 --count 1 --json >"$T_DIR/from0.json" 2>&1 &
wpid=$!
check "s2 watch --from 0 replays what is buffered" wait_for 10 gone $wpid
kill $wpid 2>/dev/null
wait $wpid 2>/dev/null
is "$(jq -r 'select(.seq) | .op + " " + .swarm' "$T_DIR/from0.json" 2>&1 | head -1)" "swarm.create pp" \
    "s2 watch --from 0 starts with the oldest buffered event (before event $first, seen live)"

s2_stop
is "$SRV_STATUS" 0 "serve exits 0 on SIGTERM"
t_done
