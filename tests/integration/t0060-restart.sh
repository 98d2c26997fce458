# t0060-restart: a clean SIGTERM under load. Waiting long-poll claims are answered (204,
# not left to time out), event streams end, the process exits 0 within a few seconds, and
# after a restart everything acknowledged is there (the crash driver's ledger). The same
# with --durability relaxed, where a kill -9 of the process must not lose acknowledged
# changes either (relaxed only gives up the fsync; the writes are in the OS's hands).
. tests/lib.sh

CRASH=$S2_BUILD/tests/crash
[ -x "$CRASH" ] || {
    not_ok "driver $CRASH is built (make test-bins)"
    t_done
}
now_ms() { date +%s%3N; }
gone() { ! kill -0 "$1" 2>/dev/null; }
export S2_HOME=$T_DIR/home

# serve [ARGS]: (re)start on the same database; the loads follow through DIR/url
serve() {
    s2_start "$@"
    for d in "$FULL" "$RELAXED"; do
        printf '%s\n' "$S2_SERVER" >"$d/url.tmp" && mv "$d/url.tmp" "$d/url"
    done
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
# (cat: grep -c on a missing ledger would print nothing, on one without a match 0 and fail)
dones() { cat "$1/ledger" 2>/dev/null | grep -c '^D '; }
progress() { # progress DIR N: wait until the load in DIR acknowledged N more dones
    want=$(($(dones "$1") + $2))
    wait_for 60 sh -c "[ \$(cat '$1/ledger' 2>/dev/null | grep -c '^D ') -ge $want ]"
}
waiting_in() { # waiting_in SWARM N: N claims of SWARM wait on the server
    [ "$(curl -s -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/swarms/$1/status" | jq -r .waiting_claims)" -ge "$2" ]
}
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
# sigterm: stop the server cleanly, timing it; sets STOP_MS and SRV_STATUS
sigterm() {
    t0=$(now_ms)
    s2_stop
    STOP_MS=$(($(now_ms) - t0))
}
# check_ledger DIR SWARM WHAT
check_ledger() {
    "$CRASH" check "$1" "$2" >"$1/check.out" 2>&1
    is "$?" 0 "$3: the ledger and the server agree"
    grep '^#' "$1/check.out" | head -20
    note "$(grep -v '^#' "$1/check.out" | tr '\n' ' ')"
}

FULL=$T_DIR/full
RELAXED=$T_DIR/relaxed
mkdir -p "$FULL" "$RELAXED"
serve
# the load abandons leases on purpose: keep the governor's agent breakers (3 failures in a
# row, tested in t0600) out of it
expect_http 200 "policy: no breaker trips in this test" PUT /v1/policy '{"breaker_failures":100}'
check "swarm add rx" "$S2" swarm add rx
check "swarm add ri (idle)" "$S2" swarm add ri
for k in 0 1 2 3; do
    check "agent add rx-w$k" "$S2" agent add rx-w$k --swarm rx --max-leases 8
    check "agent add ia$k" "$S2" agent add ia$k --swarm ri
done

# ---- SIGTERM under load, full durability ----
# (CRASH_CLEAN: this load only ever sees clean stops: every request it sent is answered)
CRASH_CLEAN=1 "$CRASH" load "$FULL" rx 2 4 >"$FULL/load.out" 2>&1 &
LOAD=$!
alive "before: the load runs"
check "the load runs" progress "$FULL" 60
# (loop variables other than i: lib.sh's wait_for uses i)
for k in 0 1 2 3; do
    "$S2" claim --agent ia$k --wait 120 --json >"$T_DIR/idle$k.json" 2>"$T_DIR/idle$k.err" &
    eval "IDLE$k=\$!"
done
check "four long-poll claims wait on the idle swarm" wait_for 15 waiting_in ri 4
curl -sN -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/events" >"$T_DIR/events.sse" 2>&1 &
SSE=$!
check "the event stream flows" wait_for 10 grep -q '^id: ' "$T_DIR/events.sse"
alive "before the SIGTERM"
sigterm
is "$SRV_STATUS" 0 "SIGTERM under load: serve exits 0"
check "within a few seconds ($STOP_MS ms)" test "$STOP_MS" -lt 8000
for k in 0 1 2 3; do
    eval "p=\$IDLE$k"
    check "long-poll claim $k was answered at shutdown" wait_for 5 gone "$p"
    wait "$p"
    is "$?" 0 "long-poll claim $k exits 0"
    is "$(jq -r .task "$T_DIR/idle$k.json" 2>&1)" null "long-poll claim $k got nothing (204), not an error"
    [ -s "$T_DIR/idle$k.err" ] && sed 's/^/# /' "$T_DIR/idle$k.err"
done
check "the event stream ended with the server" wait_for 5 gone $SSE
grep -q 'stopped' "$T_DIR/serve.log"
is "$?" 0 "the server logged a clean stop"

serve
alive "before: the load continues on the restarted server"
check "the load continues on the restarted server" progress "$FULL" 30
touch "$FULL/stop"
check "the load drains" finished $LOAD 120
wait $LOAD
is "$?" 0 "the load saw only refusals that are by design"
grep '^#' "$FULL/load.out" | head
check_ledger "$FULL" rx "after SIGTERM"
is "$(sed -n 's/^lost_dones //p' "$FULL/check.out") $(sed -n 's/^lost_creates //p' "$FULL/check.out")" \
    "0 0" "after SIGTERM: no acknowledged create or done lost"

# ---- --durability relaxed ----
sigterm
is "$SRV_STATUS" 0 "idle SIGTERM: exit 0"
serve --durability relaxed
grep -q 'durability relaxed' "$T_DIR/serve.log"
is "$?" 0 "serving with --durability relaxed"
check "swarm add rr" "$S2" swarm add rr
for k in 0 1 2 3; do check "agent add rr-w$k" "$S2" agent add rr-w$k --swarm rr --max-leases 8; done
"$CRASH" load "$RELAXED" rr 2 4 >"$RELAXED/load.out" 2>&1 &
LOAD=$!
alive "before: relaxed: the load runs"
check "relaxed: the load runs" progress "$RELAXED" 60
sigterm
is "$SRV_STATUS" 0 "relaxed: SIGTERM under load, exit 0"
check "relaxed: within a few seconds ($STOP_MS ms)" test "$STOP_MS" -lt 8000
serve --durability relaxed
alive "before: relaxed: the load continues"
check "relaxed: the load continues" progress "$RELAXED" 60
s2_kill
serve --durability relaxed
alive "before: relaxed: the load continues after kill -9"
check "relaxed: the load continues after kill -9" progress "$RELAXED" 30
touch "$RELAXED/stop"
check "relaxed: the load drains" finished $LOAD 120
wait $LOAD
is "$?" 0 "relaxed: the load saw only refusals that are by design"
grep '^#' "$RELAXED/load.out" | head
check_ledger "$RELAXED" rr "relaxed, after SIGTERM and kill -9"

# back to full durability: both ledgers still hold
sigterm
is "$SRV_STATUS" 0 "relaxed: idle SIGTERM, exit 0"
serve
check_ledger "$FULL" rx "full durability again, first load"
check_ledger "$RELAXED" rr "full durability again, relaxed load"
sigterm
is "$SRV_STATUS" 0 "the last SIGTERM: exit 0"
t_done
