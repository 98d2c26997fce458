# t0500-mcp: `s2 mcp` driven like an agent CLI drives it (one JSON-RPC message per line on
# its stdin, replies read as they come): initialize, tools/list, a claim that waits while
# the task is created, ping answered during that wait, heartbeat and done with usage checked
# on the server, a lease shared with the shell's `s2 fail`, a blocker helped by an agent of
# another swarm through its own `s2 mcp` (help task, post, review, unblock), garbage
# answered with the right JSON-RPC errors while the process lives on, errors of an
# unreachable server, clean exit at EOF; then `s2 mcp config` for both clients and
# `s2 agent prompt`.
. tests/lib.sh

S2_HOME=$T_DIR/home # where leases are remembered between s2 mcp and s2 done
export S2_HOME
s2_start
"$S2" swarm add sw1 --role "SIP escalation calls" --relation critical \
    --capabilities integration:sip,telephony --budget 40 >/dev/null
"$S2" agent add ag1 --swarm sw1 --capabilities integration:sip >/dev/null
"$S2" swarm add sw2 --role "Rust services" --capabilities code-analysis:rust >/dev/null
"$S2" agent add h1 --swarm sw2 --capabilities code-analysis:rust >/dev/null

# two agent CLIs: ag1 (fd 3, its replies in mcp.out) and a helper h1 (fd 4, helper.out)
mkfifo "$T_DIR/mcp.in" "$T_DIR/helper.in"
"$S2" mcp --agent ag1 <"$T_DIR/mcp.in" >"$T_DIR/mcp.out" 2>"$T_DIR/mcp.err" &
MCP_PID=$!
"$S2" mcp --agent h1 <"$T_DIR/helper.in" >"$T_DIR/helper.out" 2>"$T_DIR/helper.err" &
HELPER_PID=$!
exec 3>"$T_DIR/mcp.in" 4>"$T_DIR/helper.in"
trap 'exec 3>&- 4>&-; kill $MCP_PID $HELPER_PID 2>/dev/null; s2_kill' EXIT
as() { # as ag1|h1: whom send, call and reply talk to
    case $1 in
    ag1) FD=3 OUT=$T_DIR/mcp.out ;;
    h1) FD=4 OUT=$T_DIR/helper.out ;;
    esac
}
as ag1

send() { printf '%s\n' "$1" >&$FD; }
# has_reply ID: a complete reply with that id is in the output
has_reply() { jq -e -s --argjson id "$1" 'any(.[]; type == "object" and .id == $id)' "$OUT" >/dev/null 2>&1; }
# reply ID: wait for it (30 s) and print it
reply() {
    wait_for 30 has_reply "$1" || { note "no reply with id $1"; return 1; }
    jq -c --argjson id "$1" 'select(.id == $id)' "$OUT"
}
# line_of ID: the line number of the reply with that id
line_of() { jq -c '.id' "$OUT" | grep -n -x -F -- "$1" | cut -d: -f1 | head -1; }
call() { # call ID TOOL ARGS-JSON
    send "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":$3}}"
}
text() { jq -r '.result.content[0].text'; }

# ---- handshake ----
send '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t0500","version":"1"}}}'
r=$(reply 1)
is "$(printf '%s' "$r" | jq -r .result.protocolVersion)" "2025-11-25" "initialize: protocol version agreed"
is "$(printf '%s' "$r" | jq -r .result.serverInfo.name)" "s2" "initialize: serverInfo"
is "$(printf '%s' "$r" | jq -c .result.capabilities.tools)" '{"listChanged":false}' "initialize: tools capability"
send '{"jsonrpc":"2.0","method":"notifications/initialized"}'
send '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
r=$(reply 2)
is "$(printf '%s' "$r" | jq -r '[.result.tools[].name] | sort | join(",")')" \
    "s2_block,s2_claim,s2_done,s2_fail,s2_heartbeat,s2_post,s2_ready,s2_review,s2_status,s2_task,s2_thread,s2_unblock" \
    "tools/list names every tool"
is "$(printf '%s' "$r" | jq -r '.result.tools[] | select(.name=="s2_claim") | .inputSchema.properties.wait_seconds.type')" \
    "integer" "s2_claim schema has wait_seconds"
is "$(printf '%s' "$r" | jq -r '.result.tools[] | select(.name=="s2_claim") | .inputSchema.required | length')" \
    "0" "with --agent, s2_claim needs no argument"
is "$(jq -s 'length' "$OUT")" "2" "the initialized notification got no reply"

# ---- a claim that waits; the task appears meanwhile; ping stays live ----
start=$(date +%s)
call 3 s2_claim '{"wait_seconds":30}'
waiting() { [ "$("$S2" swarm show sw1 --json | jq -r .swarm.waiting_claims)" = 1 ]; }
check "the claim waits on the server" wait_for 10 waiting
send '{"jsonrpc":"2.0","id":"p1","method":"ping"}'
check "ping is answered while the claim waits" wait_for 10 has_reply '"p1"'
is "$(has_reply 3 && echo replied || echo waiting)" "waiting" "the claim is still waiting"
"$S2" task add --swarm sw1 --id t1 --title "Parse SIP INVITE" --body "Write the parser." \
    --requires integration:sip >/dev/null
r=$(reply 3)
secs=$(($(date +%s) - start))
is "$(printf '%s' "$r" | jq -r .result.isError)" "false" "s2_claim succeeded"
is "$(printf '%s' "$r" | jq -r .result.structuredContent.task.id)" "t1" "s2_claim got the task created meanwhile"
contains "$(printf '%s' "$r" | text)" "Write the parser." "the claim shows the instructions"
check "pushed well before the wait ended ($secs s)" test "$secs" -lt 20
check "ping was answered before the claim" test "$(line_of '"p1"')" -lt "$(line_of 3)"
is "$("$S2" task show t1 --json | jq -r .task.owner)" "ag1" "t1 is claimed by ag1 on the server"

call 4 s2_heartbeat '{"task":"t1"}'
r=$(reply 4)
is "$(printf '%s' "$r" | jq -r .result.isError)" "false" "s2_heartbeat with only the task id"
contains "$(printf '%s' "$r" | text)" "extended" "heartbeat says the lease was extended"

call 5 s2_done '{"task":"t1","result":{"parser":"sip.c","tests":12},"usage":{"model":"haiku","tokens_in":1200,"tokens_out":300}}'
r=$(reply 5)
is "$(printf '%s' "$r" | jq -r .result.isError)" "false" "s2_done with result and usage"
st=$("$S2" task show t1 --json)
is "$(printf '%s' "$st" | jq -r .task.state)" "done" "t1 is done on the server"
is "$(printf '%s' "$st" | jq -c .task.result)" '{"parser":"sip.c","tests":12}' "the result reached the server"
is "$(printf '%s' "$st" | jq -r '"\(.task.tokens_in) \(.task.tokens_out)"')" "1200 300" "usage reached the server"
check "the usage was priced" test "$(printf '%s' "$st" | jq -r '.task.cost > 0')" = true

# a stale report: the lease is gone after done
call 6 s2_done '{"task":"t1"}'
r=$(reply 6)
is "$(printf '%s' "$r" | jq -r .result.isError)" "true" "a second s2_done is an error result"
contains "$(printf '%s' "$r" | text)" "no lease" "and says why"

# the lease of an MCP claim is found by the shell's s2 fail
"$S2" task add --swarm sw1 --id t2 --title "Second" >/dev/null
call 7 s2_claim '{"wait_seconds":5}'
is "$(reply 7 | jq -r .result.structuredContent.task.id)" "t2" "s2_claim t2"
check "s2 fail finds the lease s2 mcp remembered" "$S2" fail t2 --reason "handing over"
is "$("$S2" task show t2 --json | jq -r .task.state)" "ready" "t2 is back to ready"
call 8 s2_heartbeat '{"task":"t2"}'
r=$(reply 8)
is "$(printf '%s' "$r" | jq -r .result.isError)" "true" "the old lease is refused"
contains "$(printf '%s' "$r" | text)" "t2" "with the server's message naming the task"

# ---- a blocker, helped by an agent of another swarm through its own s2 mcp ----
call 9 s2_claim '{"wait_seconds":10}'
is "$(reply 9 | jq -r .result.structuredContent.task.id)" "t2" "s2_claim t2 again"
as h1
send '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"helper","version":"1"}}}'
is "$(reply 1 | jq -r .result.protocolVersion)" "2025-06-18" "helper: initialized"
send '{"jsonrpc":"2.0","method":"notifications/initialized"}'
call 100 s2_claim '{"wait_seconds":30}'
waiting2() { [ "$("$S2" swarm show sw2 --json | jq -r .swarm.waiting_claims)" = 1 ]; }
check "the helper waits for work" wait_for 10 waiting2
as ag1
call 10 s2_block '{"task":"t2","needs":["code-analysis:rust"],"reason":"borrow checker"}'
r=$(reply 10)
is "$(printf '%s' "$r" | jq -r .result.isError)" "false" "s2_block"
is "$(printf '%s' "$r" | jq -r .result.structuredContent.state)" "blocked" "the task is blocked"
contains "$(printf '%s' "$r" | text)" "s2_thread" "s2_block points to the thread"
as h1
r=$(reply 100)
help=$(printf '%s' "$r" | jq -r .result.structuredContent.task.id)
is "$help" "t2.help-1" "the waiting helper got a help task on t2"
contains "$(printf '%s' "$r" | text)" "This is a help task: task t2" "and is told what it is"
call 101 s2_post '{"task":"t2","text":"use Rc<RefCell<_>> for the shared dialog state"}'
r=$(reply 101)
is "$(printf '%s' "$r" | jq -r .result.isError)" "false" "the helper posts on t2's thread with its help lease"
as ag1
call 15 s2_thread '{"task":"t2"}'
r=$(reply 15)
contains "$(printf '%s' "$r" | text)" "use Rc<RefCell<_>>" "the blocked agent reads the post"
contains "$(printf '%s' "$r" | text)" "via t2.help-1" "with the help task it came through"
post=$(printf '%s' "$r" | jq -r '.result.structuredContent.posts[0].id')
call 16 s2_review "{\"task\":\"t2\",\"post\":$post,\"accept\":true}"
is "$(reply 16 | jq -r .result.isError)" "false" "s2_review accepts it"
is "$("$S2" thread t2 --json | jq -r '.posts[0].verdict')" "accepted" "the verdict is on the server"
as h1
call 102 s2_done "{\"task\":\"$help\",\"result\":\"posted the fix\",\"usage\":{\"usd\":0.02}}"
is "$(reply 102 | jq -r .result.isError)" "false" "the helper finishes its help task"
as ag1
call 17 s2_unblock '{"task":"t2"}'
is "$(reply 17 | jq -r .result.isError)" "false" "s2_unblock"
call 18 s2_post '{"task":"t2","text":"thanks"}'
contains "$(reply 18 | text)" "thread is closed" "a closed thread refuses posts, saying why"
call 11 s2_status '{}'
r=$(reply 11)
contains "$(printf '%s' "$r" | text)" "Swarm sw1" "s2_status shows the agent's swarm"
call 12 s2_ready '{"swarm":"sw1"}'
is "$(reply 12 | jq -r .result.isError)" "false" "s2_ready"
call 13 s2_task '{"task":"t1"}'
contains "$(reply 13 | text)" "state done" "s2_task"
call 14 s2_claim '{"wait_seconds":"soon"}'
r=$(reply 14)
is "$(printf '%s' "$r" | jq -r .result.isError)" "true" "a bad argument is an error result (2025-11-25)"
contains "$(printf '%s' "$r" | text)" "wait_seconds" "naming the argument"

# ---- garbage: answered, and the process lives on ----
send 'garbage'
send '{"jsonrpc":"2.0","id":'
send '[]'
send '42'
send '{"jsonrpc":"2.0","id":20,"method":"resources/list"}'
send '{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{}}'
send '{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"s2_nope"}}'
send '{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"s2_task","arguments":"t1"}}'
send '{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}'
send '{"jsonrpc":"2.0","method":"notifications/whatever","params":{"x":1}}'
head -c 5000000 /dev/zero | tr '\0' 'x' >&3 # 5 MB on one line
printf '\n' >&3
send '{"jsonrpc":"2.0","id":"alive","method":"ping"}'
r=$(reply '"alive"')
is "$(printf '%s' "$r" | jq -c .result)" "{}" "still alive after the garbage"
check "the process is running" kill -0 $MCP_PID
is "$(jq -c 'select(.id == null) | .error.code' "$OUT" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" \
    "-32600:4 -32700:2 " "null-id errors: 2 parse errors, 4 invalid requests (batch, number, id, huge line)"
is "$(reply 20 | jq -r .error.code)" "-32601" "unknown method: -32601"
is "$(reply 21 | jq -r .error.data.field)" "params.name" "missing tool name: -32602 naming params.name"
is "$(reply 22 | jq -r .error.code)" "-32602" "unknown tool: -32602"
is "$(reply 23 | jq -r .error.data.field)" "params.arguments" "arguments not an object: -32602"
contains "$(jq -r 'select(.id == null and .error.code == -32600) | .error.message' "$OUT")" \
    "too large" "the huge line is named as too large"

# ---- an unreachable server is an error result, not a crash ----
s2_stop
call 30 s2_status '{"swarm":"sw1"}'
r=$(reply 30)
is "$(printf '%s' "$r" | jq -r .result.isError)" "true" "server down: isError"
contains "$(printf '%s' "$r" | text)" "cannot reach s2" "server down: says so"

# ---- EOF: clean exit ----
exec 3>&- 4>&-
wait $MCP_PID
is "$?" "0" "s2 mcp exits 0 at end of input"
wait $HELPER_PID
is "$?" "0" "the helper's s2 mcp exits 0 too"
for f in mcp helper; do
    check "$f: stdout carries JSON-RPC messages only" sh -c \
        "jq -e -s 'all(.[]; (type == \"object\" and .jsonrpc == \"2.0\") or (type == \"array\"))' '$T_DIR/$f.out'"
    if grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$T_DIR/$f.err"; then
        not_ok "$f: no sanitizer report from s2 mcp"
        head -30 "$T_DIR/$f.err" | sed 's/^/# /'
    else
        ok "$f: no sanitizer report from s2 mcp"
    fi
done
trap 's2_kill' EXIT

# a piped script is answered in full, last line without newline included
r=$(printf '%s\n%s\n%s' \
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"pipe","version":"0"}}}' \
    '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
    '{"jsonrpc":"2.0","id":3,"method":"ping"}' | "$S2" mcp 2>/dev/null)
is "$(printf '%s\n' "$r" | jq -r .id | tr '\n' ' ')" "1 2 3 " "a piped session is answered in full"
is "$(printf '%s\n' "$r" | jq -r 'select(.id==1) | .result.protocolVersion')" "2024-11-05" "an older protocol version is agreed"
is "$(printf '%s\n' "$r" | jq -r 'select(.id==2) | .result.tools[0] | has("annotations")')" "false" \
    "2024-11-05 tools have no annotations"
"$S2" mcp extra </dev/null >/dev/null 2>&1
is "$?" "2" "s2 mcp with a stray argument: usage error"
"$S2" mcp --server ftp://x </dev/null >/dev/null 2>&1
is "$?" "2" "s2 mcp with a bad server URL: usage error"

# ---- s2 mcp config ----
SECRET=$S2_TOKEN
out=$("$S2" mcp config --client claude --agent ag1 2>/dev/null)
contains "$out" "claude mcp add s2 " "claude: the claude mcp add line"
contains "$out" '"mcpServers"' "claude: the .mcp.json snippet"
contains "$out" '${S2_TOKEN}' "claude: the token passed through from the environment"
contains "$out" "S2_SERVER=$S2_SERVER" "claude: the server written in"
case $out in *"$SECRET"*) not_ok "claude: the token value is not printed" ;; *) ok "claude: the token value is not printed" ;; esac
# run the printed command line against a stand-in for claude: the words it would get
line=$(printf '%s\n' "$out" | grep '^claude mcp add')
words=$(claude() { printf '%s\n' "$@"; }; eval "$line")
contains "$words" '--env
S2_TOKEN=${S2_TOKEN}' "claude: the shell leaves \${S2_TOKEN} for Claude Code to expand"
exe=$(printf '%s\n' "$words" | sed -n '/^--$/{n;p;}')
check "claude: the command is this s2 binary" test -x "$exe"
args=$(printf '%s\n' "$words" | sed -n '/^--$/,$p' | tail -n +3 | tr '\n' ' ')
is "$args" "mcp --agent ag1 " "claude: the server's arguments"
j=$("$S2" mcp config --client claude --agent ag1 --json 2>/dev/null)
is "$(printf '%s' "$j" | jq -r '.mcp_json.mcpServers.s2.args | join(" ")')" "mcp --agent ag1" "claude --json: args"
is "$(printf '%s' "$j" | jq -r '.mcp_json.mcpServers.s2.env.S2_TOKEN')" '${S2_TOKEN}' "claude --json: token reference"
out=$("$S2" mcp config --client claude --show-token 2>/dev/null)
contains "$out" "$SECRET" "claude --show-token prints the token"

out=$("$S2" mcp config --client codex --agent ag1 2>/dev/null)
contains "$out" "[mcp_servers.s2]" "codex: the config.toml table"
contains "$out" 'env_vars = ["S2_TOKEN"]' "codex: the token passed through by name"
case $out in *"$SECRET"*) not_ok "codex: the token value is not printed" ;; *) ok "codex: the token value is not printed" ;; esac
if command -v python3 >/dev/null && python3 -c 'import tomllib' 2>/dev/null; then
    t=$(printf '%s\n' "$out" | python3 -c 'import sys, tomllib, json; print(json.dumps(tomllib.loads(sys.stdin.read())))')
    is "$(printf '%s' "$t" | jq -r '.mcp_servers.s2.args | join(" ")')" "mcp --agent ag1" "codex: valid TOML with the arguments"
    is "$(printf '%s' "$t" | jq -r '.mcp_servers.s2.env.S2_SERVER')" "$S2_SERVER" "codex: S2_SERVER in env"
    is "$(printf '%s' "$t" | jq -r '.mcp_servers.s2.tool_timeout_sec > 300')" "true" "codex: tool timeout above the longest wait"
else
    note "python3 with tomllib missing: TOML not parsed"
fi
out=$("$S2" mcp config --client codex --show-token 2>/dev/null)
contains "$out" "S2_TOKEN = \"$SECRET\"" "codex --show-token writes the token into env"
"$S2" mcp config --client vim >/dev/null 2>&1
is "$?" "2" "mcp config: unknown client is a usage error"
"$S2" mcp config >/dev/null 2>&1
is "$?" "2" "mcp config: --client is required"
(unset S2_TOKEN; "$S2" mcp config --client codex --show-token >/dev/null 2>&1)
is "$?" "1" "mcp config --show-token without S2_TOKEN fails"

# ---- s2 agent prompt ----
s2_start
out=$("$S2" agent prompt ag1)
contains "$out" "You are agent ag1 of swarm sw1" "prompt: who it is"
contains "$out" "SIP escalation calls" "prompt: the swarm's role"
contains "$out" "relation: critical" "prompt: the relation"
contains "$out" "integration:sip, telephony" "prompt: the swarm's capabilities"
contains "$out" "s2 claim --agent ag1 --wait" "prompt: claim with wait"
contains "$out" "s2 heartbeat TASK" "prompt: heartbeat"
contains "$out" "s2 done TASK --result" "prompt: done with result"
contains "$out" "--tokens-in" "prompt: usage"
contains "$out" "s2 fail TASK --reason" "prompt: fail"
contains "$out" "Blocked on something" "prompt: blockers"
case $out in *"git pull"* | *"git fetch"*) not_ok "prompt: no git polling" ;; *) ok "prompt: no git polling" ;; esac
out=$("$S2" agent prompt ag1 --mcp)
contains "$out" "s2_claim (agent \"ag1\")" "prompt --mcp: s2_claim"
contains "$out" "s2_done (task, result, usage" "prompt --mcp: s2_done with usage"
contains "$out" "s2_block (task, needs" "prompt --mcp: s2_block"
contains "$out" "s2_thread" "prompt --mcp: s2_thread"
is "$("$S2" agent prompt ag1 --mcp --json | jq -r '.style + " " + .swarm.id')" "mcp sw1" "prompt --json"
"$S2" agent prompt nobody >/dev/null 2>&1
is "$?" "1" "prompt for an unknown agent fails"
"$S2" agent prompt >/dev/null 2>&1
is "$?" "2" "prompt without an agent: usage error"
t_done
