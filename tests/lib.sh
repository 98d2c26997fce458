# lib.sh: what integration tests share (sourced). Like git's test-lib and Redis'
# start_server: each test runs the real `s2 serve` on port 0 with a database in its own
# temporary directory, drives it with the real CLI and with curl, and reports TAP lines.
#   S2        the s2 binary under test (tests/run.sh sets it; default ./s2)
#   S2_LONG   1 for the long campaign (make check-long)
#   S2_STORE  pg: s2_init makes a fresh database in a throwaway PostgreSQL cluster (the one
#             in S2_PG_DIR, which tests/run.sh starts once, else one of the test's own)
set -u
: "${S2:=$(pwd)/s2}"
export S2
: "${S2_BUILD:=$(pwd)/build}"
: "${S2_LONG:=0}"
: "${S2_TEST_OUT:=$(pwd)/tests/out}"
mkdir -p "$S2_TEST_OUT"
T_NAME=$(basename "$0" .sh)
T_DIR=$(mktemp -d "$S2_TEST_OUT/$T_NAME.XXXXXX")
T_N=0
T_FAILED=0
SRV_PID=""
export NO_COLOR=1
unset S2_SERVER S2_TOKEN S2_LEASE
export S2_HOME="$T_DIR/home" # leases the CLI saves stay with the test

ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $*"; }
note() { echo "# $*"; }

# check DESCRIPTION CMD...: passes when CMD succeeds.
check() {
    d=$1
    shift
    if "$@" >"$T_DIR/check.out" 2>&1; then ok "$d"; else
        not_ok "$d"
        sed 's/^/# /' "$T_DIR/check.out" | head -20
    fi
}
# check_fails DESCRIPTION CMD...: passes when CMD fails.
check_fails() {
    d=$1
    shift
    if "$@" >"$T_DIR/check.out" 2>&1; then
        not_ok "$d (succeeded)"
        sed 's/^/# /' "$T_DIR/check.out" | head -20
    else ok "$d"; fi
}
# is GOT WANT DESCRIPTION
is() {
    if [ "$1" = "$2" ]; then ok "$3"; else
        not_ok "$3"
        note "got:  '$1'"
        note "want: '$2'"
    fi
}
# contains HAYSTACK NEEDLE DESCRIPTION
contains() {
    case $1 in *"$2"*) ok "$3" ;; *)
        not_ok "$3"
        note "'$2' not in:"
        printf '%s\n' "$1" | head -20 | sed 's/^/#   /'
        ;;
    esac
}

# wait_for SECONDS CMD...: poll CMD every 20 ms until it succeeds; fails at the deadline.
wait_for() {
    limit=$(($1 * 50))
    shift
    i=0
    while [ $i -lt $limit ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.02
        i=$((i + 1))
    done
    return 1
}

# pg_ensure: a PostgreSQL cluster for this test (S2_PG_DIR); skips the whole test (exit 0
# with "ok 1 # skip") only when postgresql cannot be installed at all.
PG_OWN=""
pg_ensure() {
    [ -n "${S2_PG_DIR:-}" ] && [ -s "$S2_PG_DIR/port" ] && return 0
    S2_PG_DIR=$T_DIR/pg
    PG_OWN=$S2_PG_DIR
    export S2_PG_DIR
    "$S2_TOP/scripts/pg.sh" start "$S2_PG_DIR" >/dev/null 2>"$T_DIR/pg-start.err"
    rc=$?
    if [ $rc = 3 ]; then
        echo "ok 1 # skip postgresql cannot be installed: $(cat "$T_DIR/pg-start.err")"
        echo "1..1"
        exit 0
    fi
    [ $rc = 0 ] || { not_ok "throwaway PostgreSQL started"; sed 's/^/# /' "$T_DIR/pg-start.err"; exit 1; }
}
pg_stop_own() { [ -n "$PG_OWN" ] && "$S2_TOP/scripts/pg.sh" stop "$PG_OWN" >/dev/null 2>&1; PG_OWN=""; }
# pg_newdb: a fresh, empty database in the cluster; prints its URL. Called as $(pg_newdb),
# in a subshell: the name is made unique by the clock, not by a counter the subshell loses.
pg_newdb() {
    pg_ensure
    "$S2_TOP/scripts/pg.sh" createdb "$S2_PG_DIR" "t_$(basename "$T_DIR" | tr -c 'a-zA-Z0-9\n' _ | tr 'A-Z' 'a-z')_$(date +%s%N | cut -c8-)"
}
S2_TOP=$(cd "$(dirname "$0")/../.." 2>/dev/null && pwd)
[ -x "$S2_TOP/scripts/pg.sh" ] || S2_TOP=$(pwd)
: "${S2_STORE:=sqlite}"
KEY=""

# s2_init [ARGS]: a fresh database in T_DIR (S2_STORE=pg: in PostgreSQL, with its key in
# T_DIR); sets DB, KEY, S2_TOKEN (admin) and S2_PUBKEY.
s2_init() {
    if [ "$S2_STORE" = pg ]; then
        pg_ensure
        DB=$(pg_newdb) || { not_ok "a fresh PostgreSQL database"; exit 1; }
        KEY=$T_DIR/s2.key
        set -- --key "$KEY" "$@"
    else
        DB=$T_DIR/s2.db
        KEY=$DB.key
    fi
    "$S2" init --db "$DB" --json "$@" >"$T_DIR/init.json" || {
        not_ok "s2 init"
        exit 1
    }
    S2_TOKEN=$(jq -r .admin_token "$T_DIR/init.json")
    S2_PUBKEY=$(jq -r .public_key "$T_DIR/init.json")
    export S2_TOKEN
}

# s2_start [SERVE ARGS]: serve DB on 127.0.0.1 port 0 (initialising it first when needed);
# sets S2_SERVER and SRV_PID, and waits until /healthz answers.
s2_start() {
    [ -n "${DB:-}" ] || s2_init
    rm -f "$T_DIR/port"
    "$S2" serve --db "$DB" --key "$KEY" --listen 127.0.0.1:0 --port-file "$T_DIR/port" "$@" \
        >>"$T_DIR/serve.log" 2>&1 &
    SRV_PID=$!
    if ! wait_for 20 test -s "$T_DIR/port"; then
        not_ok "s2 serve started"
        tail -20 "$T_DIR/serve.log" | sed 's/^/# /'
        exit 1
    fi
    S2_SERVER=http://127.0.0.1:$(cat "$T_DIR/port")
    export S2_SERVER
    wait_for 20 curl -sf "$S2_SERVER/healthz" || {
        not_ok "s2 serve healthy"
        exit 1
    }
}
# s2_stop: SIGTERM and wait (a clean shutdown must finish within 20 s).
s2_stop() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null
    i=0
    while kill -0 "$SRV_PID" 2>/dev/null && [ $i -lt 1000 ]; do sleep 0.02; i=$((i + 1)); done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        not_ok "s2 serve stops on SIGTERM within 20 s"
        kill -KILL "$SRV_PID" 2>/dev/null
    fi
    wait "$SRV_PID" 2>/dev/null
    SRV_STATUS=$?
    SRV_PID=""
}
# s2_kill: kill -9, no goodbye.
s2_kill() {
    [ -n "$SRV_PID" ] || return 0
    kill -KILL "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
}
# The sanitizer build reports into the server log; a report there fails the test.
s2_log_clean() {
    if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$T_DIR/serve.log" 2>/dev/null; then
        not_ok "no sanitizer report in the server log"
        grep -E -A12 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$T_DIR/serve.log" | head -40 | sed 's/^/# /'
    fi
}

# http METHOD PATH [BODY] [TOKEN]: sets HTTP_STATUS and HTTP_BODY. TOKEN "-" sends none.
http() {
    m=$1 p=$2 b=${3:-} tok=${4:-$S2_TOKEN}
    set -- -s -o "$T_DIR/http.body" -w '%{http_code}' -X "$m"
    [ "$tok" != "-" ] && set -- "$@" -H "Authorization: Bearer $tok"
    [ -n "$b" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$b"
    HTTP_STATUS=$(curl "$@" "$S2_SERVER$p")
    HTTP_BODY=$(cat "$T_DIR/http.body")
}
# expect_http STATUS DESCRIPTION METHOD PATH [BODY] [TOKEN]
expect_http() {
    want=$1 d=$2
    shift 2
    http "$@"
    if [ "$HTTP_STATUS" = "$want" ]; then ok "$d"; else
        not_ok "$d"
        note "$1 $2 -> $HTTP_STATUS, wanted $want: $HTTP_BODY"
    fi
}
# j FILTER: jq over HTTP_BODY.
j() { printf '%s' "$HTTP_BODY" | jq -r "$1"; }

t_done() {
    s2_log_clean
    s2_stop
    pg_stop_own
    [ "$T_FAILED" -eq 0 ] && rm -rf "$T_DIR"
    echo "1..$T_N"
    exit 0
}
trap 's2_kill; pg_stop_own' EXIT

# metrics_malformed FILE: what is wrong with a Prometheus text exposition (nothing: empty):
# HELP/TYPE once per family, before its samples, its samples together, numeric values.
metrics_malformed() {
    awk '
/^# HELP /{ if (help[$3]++) print "second HELP for " $3; next }
/^# TYPE /{ if (type[$3]++) print "second TYPE for " $3; fam=$3; kind[$3]=$4; next }
/^#/ { next }
/^$/ { next }
{ name=$1; sub(/\{.*/, "", name);
  base=name; if (kind[fam]=="histogram") sub(/_(bucket|sum|count)$/, "", base);
  if (!(base in type)) print "sample before its TYPE: " name;
  else if (base != fam) print "sample of " base " outside its group (in " fam ")";
  if (NF != 2 || $2 !~ /^[-+0-9.eE]+$/ && $2 != "+Inf" && $2 != "NaN") print "bad sample line: " $0 }
' "$1"
}
