# t0400-worker: `s2 worker` against the real server, every task run in the real sandbox:
# results and failures reported, usage summed, escapes refused from inside (network, writes
# outside the workspace, another swarm's secret), a fork bomb held by the pids limit, a
# memory hog and a sleeper killed and reported, SIGTERM releasing the lease at once, kill -9
# of the worker leaving nothing behind, and two workers finishing 40 tasks exactly once.
. tests/lib.sh

skip() { T_N=$((T_N + 1)); echo "ok $T_N # skip $*"; }

"$S2" worker --check --json >"$T_DIR/check.json" 2>"$T_DIR/check.err"
check "worker --check --json answers" jq -e .sandbox "$T_DIR/check.json"
STRICT=$(jq -r .sandbox.strict "$T_DIR/check.json")
UNPRIV=$(jq -r .user_namespaces.unprivileged "$T_DIR/check.json")
note "strict sandbox: $STRICT ($(jq -r '.sandbox.error // "ok"' "$T_DIR/check.json")); unprivileged user namespaces: $UNPRIV"
note "memory by $(jq -r .task.memory "$T_DIR/check.json"), pids by $(jq -r .task.pids "$T_DIR/check.json")"
if [ "$(id -u)" = 0 ]; then
    # as root on a kernel with user namespaces, the sandbox must really run
    is "$STRICT" "true" "as root, the strict sandbox works on this host"
fi
contains "$("$S2" worker --check)" "A task gets" "worker --check prints a report"

"$S2" worker >/dev/null 2>&1
is "$?" "2" "worker without --agent is a usage error"
"$S2" worker --agent x >/dev/null 2>&1
is "$?" "2" "worker without a command is a usage error"

s2_start
"$S2" swarm add sw1 >/dev/null && "$S2" swarm add sw2 >/dev/null && "$S2" swarm add sw3 >/dev/null
"$S2" agent add a1 --swarm sw1 --max-leases 2 >/dev/null
"$S2" agent add a2 --swarm sw2 >/dev/null
"$S2" agent add a3 --swarm sw3 --max-leases 2 >/dev/null
"$S2" agent add a4 --swarm sw3 --max-leases 2 >/dev/null
PORT=${S2_SERVER##*:}

# secrets: one per swarm; the contracts grant each swarm its own (and sw1 the server's port)
SECRETS=$T_DIR/secrets.env
printf 'SW1_KEY=sw1-value-1234567\nSW2_KEY=sw2-value-7654321\n' >"$SECRETS"
chmod 644 "$SECRETS"
CONTRACT=$T_DIR/contract.yaml
cat >"$CONTRACT" <<EOF
swarm: sw1
version: 1.0.0
limits: {max_pids: 40, max_execution_time_seconds: 60}
network: [127.0.0.1:$PORT]
secrets: [SW1_KEY]
---
swarm: sw2
secrets: [SW2_KEY]
EOF

WLOG=$T_DIR/worker.log
# worker ARGS -- CMD: one worker run, its JSON lines in $T_DIR/w.json, log appended to $WLOG
worker() {
    "$S2" worker --json --wait 2 "$@" >"$T_DIR/w.json" 2>>"$WLOG"
}
task() { "$S2" task show "$1" --json | jq -r ".task.$2"; }

"$S2" worker --agent a1 --once --secrets "$SECRETS" -- true >/dev/null 2>"$T_DIR/perm.err"
rc=$?
is "$rc" "1" "a secrets file others may read is refused"
contains "$(cat "$T_DIR/perm.err")" "chmod 600" "and the message says how to fix it"
chmod 600 "$SECRETS"

if [ "$STRICT" != true ]; then
    for what in "done with stdout" "fail with reason" "usage" "result file" "network" "writes" \
        "secrets" "server contract" "task token" "proxy" "fork bomb" "memory" "timeout" "SIGTERM" \
        "kill -9" "two workers"; do
        skip "the strict sandbox is not available here: $what"
    done
    t_done
fi

# ---- done / fail ----
"$S2" task add --swarm sw1 --id ok1 --title hello >/dev/null
worker --agent a1 --once -- sh -c 'echo "hello from $S2_TASK_ID"; echo "S2-USAGE: {\"tokens_in\": 120, \"tokens_out\": 30}" >&2; echo "S2-USAGE: {\"tokens_in\": 5}" >&2'
is "$(task ok1 state)" "done" "success: the task is done"
is "$(task ok1 result)" "hello from ok1" "its stdout is the result"
is "$(task ok1 tokens_in)/$(task ok1 tokens_out)" "125/30" "S2-USAGE lines are summed and reported"
is "$(jq -r .outcome "$T_DIR/w.json")" "done" "the worker reports done (--json)"

"$S2" task add --swarm sw1 --id ok2 --title json >/dev/null
worker --agent a1 --once -- sh -c 'echo "{\"n\": 41, \"task\": \"$S2_TASK_ID\", \"attempt\": $S2_ATTEMPT}"'
is "$("$S2" task show ok2 --json | jq -c .task.result)" '{"n":41,"task":"ok2","attempt":1}' "JSON output stays JSON"

"$S2" task add --swarm sw1 --id ok3 --title file >/dev/null
worker --agent a1 --once -- sh -c 'echo noise; read -r line; case $line in *\"ok3\"*) ;; *) exit 9;; esac; printf "{\"from\":\"file\"}" > "$S2_RESULT_FILE"'
is "$("$S2" task show ok3 --json | jq -c .task.result)" '{"from":"file"}' "the task arrives on stdin; \$S2_RESULT_FILE wins over stdout"

"$S2" task add --swarm sw1 --id bad1 --title failing --max-attempts 1 >/dev/null
worker --agent a1 --once -- sh -c 'echo "first line" >&2; echo "the reason" >&2; exit 3'
is "$(task bad1 state)" "dead" "exit 3: the task failed (no attempts left)"
r=$(task bad1 reason)
contains "$r" "exit status 3" "the reason names the exit status"
contains "$r" "the reason" "and the last lines of stderr"

"$S2" task add --swarm sw1 --id big1 --title big >/dev/null
worker --agent a1 --once --max-output 1000 -- sh -c 'head -c 5000 /dev/zero | tr "\0" a'
is "$("$S2" task show big1 --json | jq -c '[.task.result.truncated, .task.result.bytes, (.task.result.output|length)]')" '[true,5000,1000]' "output past --max-output is cut and the cut is noted"

# ---- escapes ----
"$S2" task add --swarm sw1 --id net1 --title network --max-attempts 1 >/dev/null
worker --agent a1 --once -- sh -c 'unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
    if curl -s -m 3 -o /dev/null http://1.1.1.1/; then echo REACHED-OUTSIDE; exit 0; fi
    if curl -s -m 3 -o /dev/null "http://127.0.0.1:'"$PORT"'/healthz"; then echo REACHED-HOST; exit 0; fi
    exit 4'
is "$(task net1 state)" "dead" "direct connections fail inside the sandbox (outside and host loopback)"
contains "$(task net1 reason)" "exit status 4" "both attempts were refused"

"$S2" task add --swarm sw1 --id wr1 --title writes --max-attempts 1 >/dev/null
worker --agent a1 --once -- sh -c 'echo x > /etc/s2-escape-'"$$"' && exit 0
    echo x > "'"$T_DIR"'/escape" && exit 0
    echo x > /tmp/inside && echo y > "$S2_WORKSPACE/mine" && exit 5'
is "$(task wr1 state)" "dead" "writes outside the workspace fail (read-only system)"
contains "$(task wr1 reason)" "exit status 5" "while /tmp and the workspace are writable"
check_fails "nothing reached /etc" test -e "/etc/s2-escape-$$"
check_fails "nothing reached the test directory" test -e "$T_DIR/escape"

"$S2" task add --swarm sw1 --id sec1 --title secrets >/dev/null
worker --agent a1 --once --secrets "$SECRETS" --contract "$CONTRACT" -- sh -c '
    echo "mine=$SW1_KEY other=${SW2_KEY:-none}"
    echo "file=$(cat '"$SECRETS"' 2>&1 | head -c 60)"
    echo "env=$(env | grep -c SW2_KEY)"'
res=$(task sec1 result)
contains "$res" "mine=[REDACTED:SW1_KEY]" "a granted secret is injected, and redacted from the result"
contains "$res" "other=none" "another swarm's secret is not injected"
contains "$res" "env=0" "nor anywhere in the environment"
case $res in *sw2-value*|*sw1-value*) not_ok "no secret value in the result";; *) ok "no secret value in the result";; esac
case $res in *"file=sw"*|*SW2_KEY=*) not_ok "the secrets file is not readable inside";; *) ok "the secrets file is not readable inside";; esac
grep -q 'value-' "$WLOG" && not_ok "no secret value in the worker's log" || ok "no secret value in the worker's log"

"$S2" task add --swarm sw1 --id sec2 --title "leak on stderr" --max-attempts 1 >/dev/null
worker --agent a1 --once --secrets "$SECRETS" --contract "$CONTRACT" -- sh -c 'echo "key is $SW1_KEY" >&2; exit 1'
contains "$(task sec2 reason)" "key is [REDACTED:SW1_KEY]" "secrets are redacted from the failure reason"

# the server's contract (set by the admin) grants and limits; a worker's own can only narrow it
printf '{"swarm":"sw2","secrets":["SW2_KEY"],"limits":{"max_pids":30}}' >"$T_DIR/sw2.json"
check "the admin sets swarm sw2's contract on the server" "$S2" swarm contract sw2 --file "$T_DIR/sw2.json"
"$S2" task add --swarm sw2 --id srv1 --title "server contract" >/dev/null
worker --agent a2 --once --secrets "$SECRETS" -- sh -c 'echo "k=$SW2_KEY o=${SW1_KEY:-none} p=$(awk "/Max processes/ {print \$3}" /proc/self/limits)"'
is "$(task srv1 result)" "k=[REDACTED:SW2_KEY] o=none p=30" "the server's contract grants sw2 its own secret and sets its limits"
printf 'swarm: sw2\nsecrets: []\n' >"$T_DIR/narrow.yaml"
"$S2" task add --swarm sw2 --id srv2 --title "narrowed" >/dev/null
worker --agent a2 --once --secrets "$SECRETS" --contract "$T_DIR/narrow.yaml" -- sh -c 'echo "k=${SW2_KEY:-none}"'
is "$(task srv2 result)" "k=none" "a worker's own contract narrows the server's grants"

# the lease token is the task's own credential: it works for its task, through the proxy,
# and for no other task
"$S2" task add --swarm sw1 --id cb1 --title callback >/dev/null
worker --agent a1 --once -- sh -c '
    hb=$(curl -s -o /dev/null -w "%{http_code}" -X POST -H "Authorization: Bearer $S2_TOKEN" \
        -d "{\"lease\":\"$S2_LEASE\",\"usage\":{\"tokens_in\":7}}" "$S2_SERVER/v1/tasks/$S2_TASK_ID/heartbeat")
    other=$(curl -s -o /dev/null -w "%{http_code}" -X POST -H "Authorization: Bearer $S2_TOKEN" \
        -d "{\"lease\":\"$S2_LEASE\",\"reason\":\"steal\"}" "$S2_SERVER/v1/tasks/ok1/fail")
    echo "own=$hb other=$other token=$S2_TOKEN"'
is "$(task cb1 result)" "own=200 other=403 token=[REDACTED:S2_TOKEN]" "a task's token heartbeats its own task (via the proxy), gets 403 on another, and is redacted"
is "$(task cb1 tokens_in)" "7" "usage the command reported itself counts"
is "$(task ok1 state)" "done" "the other task is untouched"

"$S2" task add --swarm sw1 --id px1 --title proxy --max-attempts 1 >/dev/null
worker --agent a1 --once --contract "$CONTRACT" -- sh -c '
    a=$(curl -sf -m 5 "$S2_SERVER/healthz" >/dev/null && echo ok || echo no)
    b=$(curl -sf -m 5 -p "$S2_SERVER/healthz" >/dev/null && echo ok || echo no)
    c=$(curl -s -m 5 -o /dev/null -w "%{http_code}" http://127.0.0.1:1/)
    d=$(curl -s -m 5 -o /dev/null -w "%{http_code}" http://example.com/)
    echo "granted=$a connect=$b other-port=$c other-host=$d"'
is "$(task px1 result)" "granted=ok connect=ok other-port=403 other-host=403" "the proxy lets through the granted endpoint only (plain and CONNECT)"
contains "$(cat "$WLOG")" "refused GET 127.0.0.1:1 (not granted)" "refusals are logged"

# ---- limits ----
"$S2" task add --swarm sw1 --id fb1 --title "fork bomb" >/dev/null
worker --agent a1 --once --contract "$CONTRACT" -- sh -c 'bomb() { bomb | bomb & }; bomb; sleep 3
    set -- /proc/[0-9]*; n=$#; kill -9 -1 2>/dev/null; echo "$n"'
n=$(task fb1 result)
if [ "$(task fb1 state)" = done ] && [ "$n" -ge 3 ] 2>/dev/null && [ "$n" -le 40 ]; then
    ok "a fork bomb is held by the pids limit ($n processes, limit 40)"
else
    not_ok "a fork bomb is held by the pids limit (state $(task fb1 state), result '$n')"
fi
check "the host is fine afterwards" curl -sf "$S2_SERVER/healthz"

"$S2" task add --swarm sw1 --id mem1 --title "memory hog" --max-attempts 1 >/dev/null
worker --agent a1 --once --memory 64 -- sh -c 'awk "BEGIN { s = \"x\"; while (1) s = s s }"'
is "$(task mem1 state)" "dead" "a memory hog fails"
contains "$(task mem1 reason)" "oom" "and is reported as out of memory"

"$S2" task add --swarm sw1 --id slow1 --title sleeper --max-attempts 1 >/dev/null
start=$(date +%s)
worker --agent a1 --once --timeout 2 -- sh -c '(trap "" TERM; sleep 100) & sleep 100'
took=$(($(date +%s) - start))
is "$(task slow1 state)" "dead" "a sleep past the timeout is killed"
contains "$(task slow1 reason)" "timed out after 2 s" "and reported as a timeout"
[ "$took" -lt 15 ] && ok "within the timeout and its grace (${took}s)" || not_ok "killed late (${took}s)"

# ---- stopping ----
"$S2" task add --swarm sw2 --id term1 --title "long one" --lease-ms 120000 >/dev/null
"$S2" worker --agent a2 --once --grace 1 -- sleep 300 >/dev/null 2>>"$WLOG" &
WPID=$!
wait_for 20 sh -c '[ "$("$S2" task show term1 --json | jq -r .task.state)" = claimed ]' || not_ok "the long task was claimed"
sleep 0.5
start=$(date +%s)
kill -TERM "$WPID"
wait "$WPID"
is "$?" "0" "the worker exits 0 after SIGTERM (its task reported)"
took=$(($(date +%s) - start))
[ "$took" -lt 10 ] && ok "it stopped within its grace period (${took}s)" || not_ok "it took ${took}s to stop"
is "$(task term1 reason)" "worker stopping" "the task is failed with reason \"worker stopping\""
check "and is ready again long before its 120 s lease would expire" wait_for 10 sh -c '[ "$("$S2" task show term1 --json | jq -r .task.state)" = ready ]'

# kill -9 of the worker: the sandbox dies with it, the lease expires, another worker re-runs
"$S2" task add --swarm sw2 --id k9 --title "orphan" --lease-ms 2000 >/dev/null
"$S2" cancel term1 >/dev/null 2>&1; "$S2" task cancel term1 >/dev/null 2>&1
"$S2" worker --agent a2 --once -- sh -c 'echo $$ > /dev/null; exec sleep 4242' >/dev/null 2>>"$WLOG" &
WPID=$!
wait_for 20 sh -c '[ "$("$S2" task show k9 --json | jq -r .task.state)" = claimed ]' || not_ok "k9 was claimed"
wait_for 10 sh -c 'ps -eo args | grep -q "^sleep 4242"'
kill -KILL "$WPID"
wait "$WPID" 2>/dev/null
check "the sandboxed command dies with its worker" wait_for 10 sh -c '! ps -eo args | grep -q "^sleep 4242"'
check "the killed worker left its work directory" test -d "${TMPDIR:-/tmp}/s2-worker-$WPID"
worker --agent a2 --once -- sh -c 'echo "rerun $S2_ATTEMPT"'
is "$(task k9 result)" "rerun 2" "after the lease expired, another worker ran it again"
check_fails "the next worker removed the dead one's work directory" test -e "${TMPDIR:-/tmp}/s2-worker-$WPID"
if [ "$(jq -r .cgroup_v2.writable "$T_DIR/check.json")" = true ] && [ "$(jq -r .cgroup_v2.cgroup "$T_DIR/check.json")" = / ]; then
    check_fails "and its cgroup" test -e "$(jq -r .cgroup_v2.mount "$T_DIR/check.json")/s2-worker-$WPID"
else
    skip "stale cgroups: this process cannot create cgroups at the root of cgroup v2"
fi

# ---- two workers, concurrency 2, 40 tasks, each exactly once ----
i=0
while [ $i -lt 40 ]; do
    printf '{"id":"c%02d","swarm":"sw3","title":"c"}\n' $i
    i=$((i + 1))
done | jq -s '{tasks: .}' >"$T_DIR/tasks.json"
"$S2" task add --file "$T_DIR/tasks.json" >/dev/null
"$S2" worker --json --wait 2 --agent a3 --concurrency 2 --max-tasks 20 -- sh -c 'echo "$S2_TASK_ID"' >"$T_DIR/wa.json" 2>>"$WLOG" &
PA=$!
"$S2" worker --json --wait 2 --agent a4 --concurrency 2 --max-tasks 20 -- sh -c 'echo "$S2_TASK_ID"' >"$T_DIR/wb.json" 2>>"$WLOG" &
PB=$!
wait "$PA"
ra=$?
wait "$PB"
rb=$?
is "$ra/$rb" "0/0" "both workers exit 0"
is "$(wc -l <"$T_DIR/wa.json" | tr -d ' ')/$(wc -l <"$T_DIR/wb.json" | tr -d ' ')" "20/20" "each ran 20 tasks"
is "$(cat "$T_DIR/wa.json" "$T_DIR/wb.json" | jq -r .task | sort -u | wc -l | tr -d ' ')" "40" "40 distinct tasks between them"
is "$("$S2" task list --swarm sw3 --state done --json | jq '.tasks | length')" "40" "all 40 are done"
is "$("$S2" task list --swarm sw3 --json | jq '[.tasks[] | select(.attempts != 1 or .result != .id)] | length')" "0" "each exactly once, with its own result"

# ---- an unprivileged worker (user namespaces without root) ----
if [ "$(id -u)" = 0 ] && [ "$UNPRIV" = true ] && command -v setpriv >/dev/null 2>&1; then
    "$S2" task add --swarm sw1 --id up1 --title unprivileged >/dev/null
    setpriv --reuid=65534 --regid=65534 --clear-groups env TMPDIR=/tmp \
        "$S2" worker --agent a1 --once --json --wait 2 -- sh -c 'id -u; grep CapEff /proc/self/status' \
        >"$T_DIR/w.json" 2>>"$WLOG"
    is "$(task up1 state)" "done" "an unprivileged worker runs its task in the strict sandbox"
    contains "$(task up1 result)" "CapEff:	0000000000000000" "with no capabilities"
else
    skip "unprivileged worker: needs root to switch users, setpriv and unprivileged user namespaces"
    skip "unprivileged worker: no capabilities"
fi

if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$WLOG"; then
    not_ok "no sanitizer report in the worker log"
    grep -E -A12 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$WLOG" | head -40 | sed 's/^/# /'
fi
t_done
