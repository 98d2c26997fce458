# t0120-transcripts: replay every tests/transcripts/NAME.commands (one HTTP exchange) against
# a fresh server holding the standard fixture, normalise the reply and diff it against
# NAME.expected, as beanstalkd's sh-tests do. The format, the fixture and the placeholders
# are in tests/transcripts/README.md.
#   S2_TRANSCRIPT=PATTERN      only the pairs whose name contains PATTERN
#   S2_TRANSCRIPT_UPDATE=1     write NAME.expected from what the server answers (then read it!)
. tests/lib.sh

TR=$(pwd)/tests/transcripts
: "${S2_TRANSCRIPT:=}"
: "${S2_TRANSCRIPT_UPDATE:=0}"
mkdir -p "$T_DIR/curl"
printf 'max-time = 20\n' >"$T_DIR/curl/.curlrc" # a hung request fails its pair, not the suite
export CURL_HOME="$T_DIR/curl"

# ---- the fixture, built once and copied for every pair ----
fx() { # fx DESCRIPTION STATUS METHOD PATH BODY [TOKEN]
    d=$1 st=$2
    shift 2
    http "$@"
    [ "$HTTP_STATUS" = "$st" ] || {
        not_ok "fixture: $d"
        note "$1 $2 -> $HTTP_STATUS $HTTP_BODY"
        exit 1
    }
}
s2_start
ADMIN=$S2_TOKEN
H='"lease_ms":3600000' # fixture leases outlive the slowest run
fx "swarm alpha" 201 POST /v1/swarms \
    '{"id":"alpha","role":"the first swarm","capabilities":["c","docs"],"budget":100}'
SWARM=$(j .token)
fx "swarm beta" 201 POST /v1/swarms '{"id":"beta","role":"the other swarm","relation":"support"}'
OTHER=$(j .token)
fx "agent a1" 201 POST /v1/agents '{"id":"a1","capabilities":["c"]}' "$SWARM"
fx "agent a2" 201 POST /v1/agents '{"id":"a2","model":"sonnet"}' "$SWARM"
fx "agent b1" 201 POST /v1/agents '{"id":"b1","swarm":"beta"}'
fx "agent b2" 201 POST /v1/agents '{"id":"b2","swarm":"beta"}'
fx "tasks" 201 POST /v1/tasks "{\"tasks\":[
  {\"id\":\"t1\",\"title\":\"write the parser\",\"priority\":5,$H},
  {\"id\":\"t2\",\"title\":\"write the tests\",\"priority\":1,$H},
  {\"id\":\"t3\",\"title\":\"release\",\"depends_on\":[\"t1\"],$H},
  {\"id\":\"t4\",\"title\":\"announce\",\"approval\":\"human\",$H}]}" "$SWARM"
fx "task u1" 201 POST /v1/tasks "{\"id\":\"u1\",\"swarm\":\"beta\",\"title\":\"beta work\",$H}"
fx "a2 claims t1" 200 POST /v1/claim '{"agent":"a2"}' "$SWARM"
[ "$(j .task.id)" = t1 ] || { not_ok "fixture: a2 should hold t1, got $(j .task.id)"; exit 1; }
LEASE=$(j .lease.token)
fx "b1 claims u1" 200 POST /v1/claim '{"agent":"b1"}' "$OTHER"
OTHER_LEASE=$(j .lease.token)
s2_stop
mkdir -p "$T_DIR/template"
cp "$DB"* "$T_DIR/template/"
ok "fixture built"

# ---- replay ----
# request NAME: parse NAME.commands into $T_DIR/req.{line,body}.
request() {
    : >"$T_DIR/req.body"
    awk -v lease="$LEASE" -v other="$OTHER_LEASE" -v line="$T_DIR/req.line" -v body="$T_DIR/req.body" '
        function sub_all(s) { gsub(/\{\{lease\}\}/, lease, s); gsub(/\{\{other_lease\}\}/, other, s); return s }
        !started && (/^#/ || /^[ \t]*$/) { next }
        !started { print sub_all($0) > line; started = 1; next }
        { print sub_all($0) > body }
    ' "$1"
}
# normalise: the reply (status, chosen headers, body) in the form of NAME.expected.
normalise() {
    code=$1
    echo "HTTP $code"
    for h in Allow WWW-Authenticate S2-Reason Retry-After; do
        tr -d '\r' <"$T_DIR/resp.headers" | grep -i "^$h:" | sed "s/^[^:]*:[ ]*/$h: /"
    done
    [ -s "$T_DIR/resp.body" ] || return 0
    jq -S -f "$TR/normalise.jq" "$T_DIR/resp.body" 2>/dev/null || cat "$T_DIR/resp.body"
}

n=0
for cmds in "$TR"/*.commands; do
    [ -f "$cmds" ] || continue
    name=$(basename "$cmds" .commands)
    case $name in *"$S2_TRANSCRIPT"*) ;; *) continue ;; esac
    n=$((n + 1))
    rm -f "$DB"* "$T_DIR"/req.*
    cp "$T_DIR/template/"* "$T_DIR/"
    s2_start
    request "$cmds"
    set -f # a path may hold '?' or '*': no globbing
    set -- $(cat "$T_DIR/req.line")
    set +f
    method=$1 path=$2 who=${3:-admin}
    case $who in
    admin) tok=$ADMIN ;;
    swarm) tok=$SWARM ;;
    other) tok=$OTHER ;;
    bad) tok=s2s_not-a-token ;;
    none) tok= ;;
    *) tok=BAD; not_ok "$name: unknown token '$who' (admin, swarm, other, bad, none)" ;;
    esac
    set -- -s -o "$T_DIR/resp.body" -D "$T_DIR/resp.headers" -w '%{http_code}' -X "$method"
    [ -n "$tok" ] && set -- "$@" -H "Authorization: Bearer $tok"
    if [ -n "$(tr -d ' \t\n' <"$T_DIR/req.body" 2>/dev/null)" ]; then
        set -- "$@" -H 'Content-Type: application/json' --data-binary @"$T_DIR/req.body"
    fi
    rm -f "$T_DIR/resp.body"
    : >"$T_DIR/resp.headers"
    code=$(curl "$@" "$S2_SERVER$path")
    normalise "$code" >"$T_DIR/$name.got"
    s2_stop
    if [ "$S2_TRANSCRIPT_UPDATE" = 1 ]; then
        cp "$T_DIR/$name.got" "$TR/$name.expected"
        ok "transcript $name (expected written)"
    elif [ ! -f "$TR/$name.expected" ]; then
        not_ok "transcript $name: no $name.expected (S2_TRANSCRIPT_UPDATE=1 writes it)"
    elif diff -u "$TR/$name.expected" "$T_DIR/$name.got" >"$T_DIR/$name.diff"; then
        ok "transcript $name"
    else
        not_ok "transcript $name"
        head -40 "$T_DIR/$name.diff" | sed 's/^/#   /'
    fi
done
if [ "$n" -gt 0 ]; then ok "$n transcripts replayed"; else not_ok "no transcript matched '$S2_TRANSCRIPT'"; fi
is "$(grep -c -i -E 'fatal|out of memory|could not be built' "$T_DIR/serve.log")" "0" \
    "no server log shows a crash"
t_done
