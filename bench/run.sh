#!/bin/sh
# run.sh (make bench): start a fresh `s2 serve` on a temporary database and run `s2 bench`
# against it, in both durability modes. Arguments go to s2 bench, e.g.
#   make bench BENCH_ARGS="--tasks 200000 --clients 64"
set -eu
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
args=${BENCH_ARGS:-}
for mode in ${BENCH_MODES:-relaxed full}; do
    dir=$(mktemp -d "$out/run.XXXXXX")
    ./s2 init --db "$dir/s2.db" --json >"$dir/init.json"
    S2_TOKEN=$(sed -n 's/.*"admin_token": *"\([^"]*\)".*/\1/p' "$dir/init.json")
    export S2_TOKEN
    ./s2 serve --db "$dir/s2.db" --listen 127.0.0.1:0 --port-file "$dir/port" \
        --durability "$mode" >"$dir/serve.log" 2>&1 &
    pid=$!
    i=0
    while [ ! -s "$dir/port" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
    [ -s "$dir/port" ] || { echo "bench: server did not start, see $dir/serve.log" >&2; exit 1; }
    echo "== durability $mode ($(nproc) cores, $(uname -r))"
    # shellcheck disable=SC2086
    ./s2 bench --server "http://127.0.0.1:$(cat "$dir/port")" $args || true
    kill -TERM "$pid"
    wait "$pid" || true
    rm -rf "$dir"
done
