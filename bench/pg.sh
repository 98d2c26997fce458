#!/bin/sh
# pg.sh (make bench-pg): s2 on PostgreSQL, two nodes, against the plain SKIP LOCKED queue
# (bench/pgloop.c, the peers' loop) on the same throwaway PostgreSQL, in one run:
# claim+done throughput with the same number of concurrent workers, and the push latency of
# a task created through one node to a claimer waiting on the other.
#   BENCH_TASKS=20000 BENCH_CLIENTS=32 BENCH_PUSH=1000 make bench-pg
set -eu
cd "$(dirname "$0")/.."
tasks=${BENCH_TASKS:-20000}
clients=${BENCH_CLIENTS:-32}
push=${BENCH_PUSH:-1000}
out=bench/out
mkdir -p "$out"
dir=$(mktemp -d "$out/pg.XXXXXX")
pgdir=$dir/pg
pids=""
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
base=$(scripts/pg.sh start "$pgdir")
echo "== PostgreSQL $(scripts/pg.sh psql "$pgdir" postgres -At -c 'SHOW server_version'), fsync on, synchronous_commit on; $(nproc) cores, $(uname -r)"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. the plain loop
loopdb=$(scripts/pg.sh createdb "$pgdir" pgloop)
echo "== plain SKIP LOCKED loop: $tasks tasks, $clients workers (claim, then done: 2 commits each)"
build/bench/pgloop "$loopdb" "$tasks" "$clients" | tee "$dir/pgloop.out" | sed 's/^/   /'

# 2. s2, two nodes
db=$(scripts/pg.sh createdb "$pgdir" s2)
./s2 init --store "$db" --key "$dir/s2.key" --json >"$dir/init.json"
S2_TOKEN=$(sed -n 's/.*"admin_token": *"\([^"]*\)".*/\1/p' "$dir/init.json")
export S2_TOKEN
for n in 1 2; do
    ./s2 serve --store "$db" --key "$dir/s2.key" --listen 127.0.0.1:0 --port-file "$dir/port.$n" \
        --node-id "n$n" >"$dir/node.$n.log" 2>&1 &
    pids="$pids $!"
    i=0
    while [ ! -s "$dir/port.$n" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
    [ $n = 1 ] && while ! curl -sf -H "Authorization: Bearer $S2_TOKEN" "http://127.0.0.1:$(cat "$dir/port.1")/v1/swarms" >/dev/null; do sleep 0.1; done
done
n1=http://127.0.0.1:$(cat "$dir/port.1") n2=http://127.0.0.1:$(cat "$dir/port.2")
while ! curl -sf -H "Authorization: Bearer $S2_TOKEN" "$n2/v1/swarms" >/dev/null; do sleep 0.1; done
echo "== s2, 2 nodes (leader $n1, follower $n2): $tasks tasks, $clients clients over both nodes"
./s2 bench --server "$n1" --nodes "$n1,$n2" --tasks "$tasks" --clients "$clients" --push "$push" \
    --json >"$dir/s2.json" || true
jq -c '{tasks_per_s: .ops_per_s, claim_ms, claim_done_ms, push_cross_node_ms: .push_ms, duplicates, not_done, errors}' "$dir/s2.json" 2>/dev/null || cat "$dir/s2.json"
plain=$(sed -n 's/^tasks_per_s //p' "$dir/pgloop.out")
ours=$(jq -r '.ops_per_s // 0' "$dir/s2.json" 2>/dev/null || echo 0)
echo "== s2 on 2 nodes / plain loop: $ours / $plain tasks/s = $(awk "BEGIN{printf \"%.0f%%\", 100 * $ours / $plain}")"
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
