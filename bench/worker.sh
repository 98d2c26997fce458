#!/bin/sh
# worker.sh (make bench-worker): `s2 worker` end to end on a fresh `s2 serve`: N trivial
# tasks (default 1000) through one worker running `true` in the strict sandbox with
# --concurrency 2, then tasks/s and the sandbox start (clone of the sandbox to exec of the
# command, as each task's JSON line reports it) p50/p90/p99.
#   bench/worker.sh [TASKS] [CONCURRENCY]      (S2_BENCH_SANDBOX=none to compare)
set -eu
cd "$(dirname "$0")/.."
tasks=${1:-1000} conc=${2:-2} mode=${S2_BENCH_SANDBOX:-strict}
out=bench/out
mkdir -p "$out"
dir=$(mktemp -d "$out/worker.XXXXXX")
./s2 init --db "$dir/s2.db" --json >"$dir/init.json"
S2_TOKEN=$(sed -n 's/.*"admin_token": *"\([^"]*\)".*/\1/p' "$dir/init.json")
export S2_TOKEN
./s2 serve --db "$dir/s2.db" --listen 127.0.0.1:0 --port-file "$dir/port" >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; [ -n "${S2_BENCH_KEEP:-}" ] || rm -rf "$dir"' EXIT
i=0
while [ ! -s "$dir/port" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
[ -s "$dir/port" ] || { echo "bench: server did not start, see $dir/serve.log" >&2; exit 1; }
S2_SERVER=http://127.0.0.1:$(cat "$dir/port")
export S2_SERVER
# the tasks, made by s2 bench's fill (one swarm bw-s0), and one agent to run them all
./s2 bench --tasks "$tasks" --swarms 1 --prefix bw --keep --push 0 >"$dir/fill.log"
./s2 agent add bwa --swarm bw-s0 --max-leases "$conc" >/dev/null
echo "== s2 worker: $tasks tasks of \`true\`, --concurrency $conc, sandbox $mode ($(nproc) cores, $(uname -r))"
t0=$(date +%s%N)
./s2 worker --agent bwa --concurrency "$conc" --max-tasks "$tasks" --wait 5 --json \
    --sandbox "$mode" -- true >"$dir/w.json" 2>"$dir/worker.log"
t1=$(date +%s%N)
done_n=$(jq -s '[.[] | select(.outcome == "done")] | length' "$dir/w.json")
awk -v n="$done_n" -v ns=$((t1 - t0)) 'BEGIN { printf "tasks done      %d in %.2f s: %.0f tasks/s\n", n, ns / 1e9, n / (ns / 1e9) }'
jq -r '.start_ms' "$dir/w.json" | sort -n | awk '
    { v[NR] = $1 }
    END { if (NR) printf "sandbox start   p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  (%d runs)\n",
              v[int(NR * 0.50 + 0.5)], v[int(NR * 0.90 + 0.5)], v[int(NR * 0.99 + 0.5)], NR }'
jq -r '.ms' "$dir/w.json" | sort -n | awk '
    { v[NR] = $1 }
    END { if (NR) printf "task (claim to report, in the worker) p50 %.2f ms  p99 %.2f ms\n",
              v[int(NR * 0.50 + 0.5)], v[int(NR * 0.99 + 0.5)] }'
[ "$done_n" -eq "$tasks" ] || { echo "bench: only $done_n of $tasks done, see $dir/worker.log" >&2; exit 1; }
