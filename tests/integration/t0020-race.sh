# t0020-race: claims are atomic under contention. 16 claimers (threads of the race driver,
# each its own agent on its own keep-alive connection) drain 20,000 tasks with long-poll
# claims and done; the driver's ledger and the server's view must agree that each task was
# handed out once, done once, by the agent that held its lease. Then 16 claimers race for
# one task, again and again (also parked in long-polls when it appears): exactly one wins.
. tests/lib.sh

: "${S2_BUILD:=$(pwd)/build}"
RACE=$S2_BUILD/tests/race
[ -x "$RACE" ] || {
    not_ok "driver $RACE is built (make test-bins)"
    t_done
}
tasks=20000 rounds=100
case $S2 in *asan*) tasks=4000 rounds=30 ;; esac
[ "$S2_LONG" = 1 ] && tasks=100000 rounds=500
[ -n "${S2_RACE_TASKS:-}" ] && tasks=$S2_RACE_TASKS

s2_start

# run_driver NAME ARGS...: the driver with a deadline; its report lands in $T_DIR/NAME.out
run_driver() {
    name=$1
    shift
    "$RACE" "$@" >"$T_DIR/$name.out" 2>&1 &
    drv=$!
    if ! wait_for 400 sh -c "! kill -0 $drv 2>/dev/null"; then
        not_ok "$name: driver finished within 400 s"
        kill "$drv" 2>/dev/null
    fi
    wait "$drv"
    drv_status=$?
    grep '^#' "$T_DIR/$name.out" | head -20
}
val() { sed -n "s/^$2 //p" "$T_DIR/$1.out"; }
# alive WHERE: stop at once if the server died (a crash is reported, not waited out)
alive() {
    curl -sf --max-time 10 "$S2_SERVER/healthz" >/dev/null 2>&1 && return 0
    not_ok "the server is up $1"
    tail -15 "$T_DIR/serve.log" | sed 's/^/# /'
    kill -KILL "$SRV_PID" 2>/dev/null
    SRV_PID=""
    t_done
}

run_driver drain drain "$S2_SERVER" race "$tasks" 16
is "$drv_status" 0 "drain: the driver saw no violation"
is "$(val drain done)" "$tasks" "drain: $tasks done replies (200)"
is "$(val drain refused)" 0 "drain: no done refused"
is "$(val drain errors)" 0 "drain: no claim errors"
is "$(val drain overlaps)" 0 "drain: no task handed to a second agent while held"
is "$(val drain twice)" 0 "drain: no task claimed or done twice"
is "$(val drain never)" 0 "drain: no task left undone"
is "$(val drain server_done)" "$tasks" "drain: the server lists $tasks done tasks (paged)"
is "$(val drain server_bad)" 0 "drain: the server's owner and fence of each task match the ledger"
note "drained $tasks tasks in $(val drain seconds) s ($(val drain rate) tasks/s)"

alive "after the drain"
# the server's own counters agree
http GET "/v1/swarms/race/status"
is "$(j .tasks.done)" "$tasks" "status: $tasks done in swarm race"
is "$(j '.tasks.claimed + .tasks.ready + .tasks.pending + .tasks.dead')" 0 "status: nothing else left"

alive "after the status"
run_driver one one "$S2_SERVER" one "$rounds" 16
is "$drv_status" 0 "one task, 16 claimers: the driver saw no violation"
is "$(val one bad)" 0 "one task, 16 claimers: exactly one winner in each of $(val one rounds) rounds"
is "$(val one wins)" "$(val one rounds)" "one task, 16 claimers: one win per round"
http GET "/v1/tasks?swarm=one&state=done&limit=1000"
is "$(j '.tasks | length')" "$(val one rounds)" "one task, 16 claimers: every contended task done once"
is "$(j '[.tasks[] | select(.attempts != 1 or .fence != 1)] | length')" 0 \
    "one task, 16 claimers: each handed out once (attempts 1, fence 1)"

s2_stop
is "$SRV_STATUS" 0 "serve exits 0 on SIGTERM"
t_done
