# t0900-dashboard: the dashboard. Without a browser: every embedded asset is served with the
# content type of its extension and the same bytes as web/, the page references only its own
# assets, and the API it leans on answers (approvals waiting, agents in pages). With Debian's
# chromium driven by playwright-core: the seed-like swarms render with their status, events
# show up live, the buttons act (checked through the API), the page reconnects by itself
# after kill -9 and a restart, and a page of 10,000 swarms renders its first screen in time.
# No chromium (or no node/npm) on this machine: the browser part skips, it does not fail.
. tests/lib.sh

s2_start
PORT=$(cat "$T_DIR/port")

# ---- the assets, without a browser ---------------------------------------------------------
type_of() {
    case $1 in
    *.html) echo "text/html; charset=utf-8" ;;
    *.js) echo "text/javascript; charset=utf-8" ;;
    *.css) echo "text/css; charset=utf-8" ;;
    *.svg) echo "image/svg+xml" ;;
    *.png) echo "image/png" ;;
    *.ico) echo "image/x-icon" ;;
    *) echo "application/octet-stream" ;;
    esac
}
ctype() { curl -s -o "$T_DIR/asset" -w '%{http_code} %{content_type}' "$S2_SERVER$1"; }
is "$(ctype /)" "200 text/html; charset=utf-8" "/ serves the dashboard as HTML"
check "/ is web/index.html" cmp "$T_DIR/asset" web/index.html
for f in web/*; do
    name=${f#web/}
    is "$(ctype "/$name")" "200 $(type_of "$name")" "/$name is served as $(type_of "$name")"
    check "/$name is the file in web/" cmp "$T_DIR/asset" "$f"
done
is "$(curl -s -o /dev/null -w '%{http_code}' "$S2_SERVER/no-such-asset.js")" "404" "an unknown asset is 404"
is "$(curl -s -o /dev/null -w '%{http_code}' "$S2_SERVER/index.html")" "200" "the page needs no token to load"
# no CDN, no external fonts: the only absolute URL allowed is the SVG namespace (a name, never fetched)
ext=$(grep -noE "https?://[^'\"\` )<]*|[\"'(=]//[a-zA-Z0-9]" web/* | grep -v 'http://www.w3.org/2000/svg$' || true)
is "$ext" "" "the dashboard references no external URL"
refs=$(grep -oE '(src|href)="[^"]*"' web/index.html | sed -E 's/^(src|href)="//; s/"$//' | grep -v '^#')
for r in $refs; do
    case $r in
    /*) is "$(curl -s -o /dev/null -w '%{http_code}' "$S2_SERVER$r")" "200" "index.html's $r is served" ;;
    *) not_ok "index.html refers to '$r', not to a local absolute path" ;;
    esac
done
imports=$(grep -ohE "from '[^']*'" web/*.js | sort -u | sed -E "s/from '\.?(.*)'/\1/")
for m in $imports; do
    is "$(curl -s -o /dev/null -w '%{http_code}' "$S2_SERVER$m")" "200" "module $m is served"
done

# ---- a seed-like scenario --------------------------------------------------------------------
q() { "$@" >>"$T_DIR/fill.log" 2>&1 || note "failed: $*"; }
swarm() { q "$S2" swarm add "$@"; }
agent() { q "$S2" agent add "$@"; }
SIP=integration:sip,telephony:protocols
swarm s1-web --role "web frontend" --capabilities web:react,$SIP --budget 40
swarm s2-db --role "database layer" --capabilities db:postgres,$SIP --budget 30
swarm s3-api --role "public API" --relation support --capabilities api:rest,$SIP --budget 25
swarm s4-sip --role "SIP escalation calls" --relation critical --capabilities integration:sip --budget 40
swarm s5-legal --role contracts --relation support --capabilities legal:contracts --budget 10
swarm s6-ops --role operations --capabilities ops:k8s --budget 20
swarm s7-docs --role documentation --capabilities docs:writing --budget 5
agent a1 --swarm s1-web --model sonnet --capabilities web:react,$SIP
agent a2 --swarm s2-db --model haiku --capabilities db:postgres,$SIP
agent a3 --swarm s3-api --model opus --capabilities api:rest,$SIP
agent a4 --swarm s4-sip --model sonnet --capabilities integration:sip
agent a5 --swarm s5-legal --model haiku --capabilities legal:contracts
agent a6 --swarm s6-ops --model sonnet --capabilities ops:k8s
agent a7 --swarm s7-docs --model haiku --capabilities docs:writing
for s in s1-web s2-db s3-api s4-sip s5-legal s6-ops s7-docs; do
    for p in 1 2; do for i in 1 2 3; do
        q "$S2" task add --swarm $s --id $s-p$p-t$i --phase $p --title "task $i of phase $p"
    done; done
done
q "$S2" task add --swarm s6-ops --id deploy-prod --title "deploy to production" --approval human --no-phase-barrier
q "$S2" claim --agent a1
q "$S2" done s1-web-p1-t1 --usd 1.5
q "$S2" claim --agent a1
q "$S2" claim --agent a2
q "$S2" claim --agent a4
q "$S2" block s4-sip-p1-t1 --needs $SIP --reason "SIP INVITE never reaches the H.323 gateway"
q "$S2" claim --agent a5
q "$S2" block s5-legal-p1-t1 --needs legal:gdpr --reason "needs a GDPR lawyer"
q "$S2" swarm pause s7-docs
swarm s8-voice --role "voice gateway" --capabilities $SIP --budget 15
swarm s9-media --role "media relay" --relation support --capabilities $SIP --budget 15
agent a8 --swarm s8-voice --model sonnet --capabilities $SIP
agent a9 --swarm s9-media --model opus --capabilities $SIP
q "$S2" claim --agent a8
q "$S2" claim --agent a9
swarm s10-burn --role "load tests" --capabilities perf:load --budget 2
agent a10 --swarm s10-burn --model haiku --capabilities perf:load
q "$S2" task add --swarm s10-burn --id burn-1 --title "soak the cluster" --max-cost 2
q "$S2" claim --agent a10
q "$S2" done burn-1 --usd 2
swarm s11-flaky --role "flaky infra" --capabilities infra:dns --budget 20
agent a11 --swarm s11-flaky --model haiku --capabilities infra:dns
for i in 1 2 3; do
    q "$S2" task add --swarm s11-flaky --id dns-$i --title "fix dns $i" --max-attempts 1
    q "$S2" claim --agent a11
    q "$S2" fail dns-$i --reason "resolver timeout" --usd 0.05
done
is "$("$S2" status --json | jq '.swarms | length')" "11" "the scenario has 11 swarms"

# ---- the API the dashboard leans on ---------------------------------------------------------
http GET "/v1/tasks?approval=waiting"
is "$(j '[.tasks[].id] | join(",")')" "deploy-prod" "approval=waiting lists the task behind a human gate"
expect_http 400 "approval=other is refused" GET "/v1/tasks?approval=maybe"
http GET "/v1/agents?limit=4"
is "$(j '[.agents[].id] | join(",")') $(j .next)" "a1,a2,a3,a4 a4" "agents come in pages with a cursor"
http GET "/v1/agents?limit=4&after=a8"
is "$(j '[.agents[].id] | join(",")') $(j .next)" "a9,a10,a11 null" "...to the last page"
expect_http 400 "an agents page of 0 is refused" GET "/v1/agents?limit=0"

# ---- the browser -----------------------------------------------------------------------------
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
NODE_DIR=$(pwd)/build/node
PW_VERSION=1.65.1
skip_browser=""
if [ -z "$CHROMIUM" ]; then
    skip_browser="chromium is not installed (scripts/bootstrap.sh test installs Debian's)"
elif ! command -v node >/dev/null 2>&1; then
    skip_browser="node is not installed"
elif [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ]; then
    mkdir -p "$NODE_DIR"
    if ! (cd "$NODE_DIR" && npm install --no-audit --no-fund --no-save --silent \
        "playwright-core@$PW_VERSION") >"$T_DIR/npm.log" 2>&1; then
        skip_browser="cannot install playwright-core from npm ($(tail -1 "$T_DIR/npm.log"))"
    fi
fi
if [ -n "$skip_browser" ]; then
    T_N=$((T_N + 1))
    echo "ok $T_N # skip $skip_browser"
    t_done
fi

# a second server with 10,000 swarms and 100,000 tasks
BIG_DIR=$T_DIR/big
mkdir -p "$BIG_DIR"
"$S2" init --db "$BIG_DIR/s2.db" --json >"$BIG_DIR/init.json"
BIG_TOKEN=$(jq -r .admin_token "$BIG_DIR/init.json")
"$S2" serve --db "$BIG_DIR/s2.db" --listen 127.0.0.1:0 --port-file "$BIG_DIR/port" \
    --durability relaxed >"$BIG_DIR/serve.log" 2>&1 &
BIG_PID=$!
trap 's2_kill; kill -9 $BIG_PID 2>/dev/null' EXIT
wait_for 20 test -s "$BIG_DIR/port"
BIG_SERVER=http://127.0.0.1:$(cat "$BIG_DIR/port")
wait_for 20 curl -sf "$BIG_SERVER/healthz"
# (the sanitizer build fills five times slower: fewer tasks there, the same 10,000 swarms)
ntasks=100000
case $S2 in *asan*) ntasks=20000 ;; esac
start=$(date +%s)
check "fill 10,000 swarms and $ntasks tasks" env S2_SERVER="$BIG_SERVER" S2_TOKEN="$BIG_TOKEN" \
    "$S2" bench --keep --swarms 10000 --tasks $ntasks --push 0 --prefix big
note "filled in $(($(date +%s) - start)) s"

SHOTS=$S2_TEST_OUT
case $S2 in *asan*) SHOTS=$S2_TEST_OUT/asan ;; esac
mkdir -p "$SHOTS"
export SRV_PID DB T_DIR BIG_SERVER BIG_TOKEN SHOTS CHROMIUM
NODE_PATH="$NODE_DIR/node_modules" timeout 600 node tests/integration/dashboard_driver.js \
    >"$T_DIR/driver.out" 2>"$T_DIR/driver.err"
rc=$?
# the driver restarted the server: that process is the one to stop
[ -s "$T_DIR/srv.pid" ] && SRV_PID=$(cat "$T_DIR/srv.pid")
while IFS= read -r line; do
    case $line in
    "ok - "*) ok "${line#ok - }" ;;
    "not ok - "*) not_ok "${line#not ok - }" ;;
    "# "*) echo "$line" ;;
    esac
done <"$T_DIR/driver.out"
if [ "$rc" -ne 0 ]; then
    not_ok "the browser driver exits 0 (status $rc)"
    sed 's/^/# /' "$T_DIR/driver.err" | tail -20
fi
note "screenshots: $SHOTS/t0900-dashboard-*.png"
kill -TERM "$BIG_PID" 2>/dev/null
wait "$BIG_PID" 2>/dev/null
t_done
