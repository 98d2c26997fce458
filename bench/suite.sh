#!/bin/sh
# suite.sh (make bench-suite): the measurements of docs/BENCHMARKS.md beyond `make bench`,
# each against a fresh `s2 serve` on a temporary database. Sections, all by default:
#   scale   1,000,000 ready tasks over 10,000 swarms: fill rate, claim p99, RSS, restart
#           to serving, `s2 witness verify` entries/s
#   gov     the governor at work (10,000 agents, 1,000 capabilities, budgets) beside the
#           same load without matching, in one run
#   plan    `s2 plan apply` of a 100,000-task plan; `s2 plan simulate` of the seed plan
#   hook    git commit -> task visible through `s2 git hook install` (post-commit hook)
# e.g. bench/suite.sh scale gov
set -eu
cd "$(dirname "$0")/.."
sections=${*:-scale gov plan hook}
out=bench/out
mkdir -p "$out"
S2=./s2
pid=""
dir=""

start() { # start DIR [serve options]: init and serve a fresh database in DIR
    dir=$1
    shift
    "$S2" init --db "$dir/s2.db" --json >"$dir/init.json"
    S2_TOKEN=$(sed -n 's/.*"admin_token": *"\([^"]*\)".*/\1/p' "$dir/init.json")
    export S2_TOKEN
    serve "$@"
}
serve() {
    rm -f "$dir/port"
    "$S2" serve --db "$dir/s2.db" --listen 127.0.0.1:0 --port-file "$dir/port" "$@" \
        >>"$dir/serve.log" 2>&1 &
    pid=$!
    i=0
    while [ ! -s "$dir/port" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i + 1)); done
    [ -s "$dir/port" ] || { echo "suite: server did not start, see $dir/serve.log" >&2; exit 1; }
    S2_SERVER=http://127.0.0.1:$(cat "$dir/port")
    export S2_SERVER
}
stop() { kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
ms_now() { date +%s%3N; }
trap 'stop; [ -n "$dir" ] && rm -rf "$dir"' EXIT

echo "== $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

for s in $sections; do
    case $s in
    scale)
        start "$(mktemp -d "$out/scale.XXXXXX")" --durability relaxed
        echo "== scale: 1,000,000 ready tasks over 10,000 swarms (relaxed)"
        t0=$(ms_now)
        "$S2" bench --tasks 1000000 --swarms 10000 --keep --prefix sc --push 0 >"$dir/fill.txt"
        echo "   filled in $((($(ms_now) - t0) / 1000)) s; RSS $(rss_mib) MiB"
        "$S2" bench --tasks 20000 --swarms 100 --prefix sc2 --clients 8 --push 500 >"$dir/claim.txt"
        sed 's/^/   /' "$dir/claim.txt"
        echo "   RSS with 1,020,000 tasks held: $(rss_mib) MiB"
        stop
        t0=$(ms_now)
        serve --durability relaxed
        until curl -sf -o /dev/null -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/swarms?limit=1"; do sleep 0.01; done
        echo "   restart: serving $(($(ms_now) - t0)) ms after exec; RSS $(rss_mib) MiB"
        stop
        n=$(sqlite3 "$dir/s2.db" 'SELECT count(*) FROM witness')
        t0=$(ms_now)
        "$S2" witness verify --db "$dir/s2.db" | sed 's/^/   /'
        t=$(($(ms_now) - t0))
        echo "   witness verify: $n entries in $t ms = $(awk "BEGIN{printf \"%.0f\", $n * 1000 / $t}") entries/s"
        rm -rf "$dir"
        dir=""
        ;;
    gov)
        start "$(mktemp -d "$out/gov.XXXXXX")" --durability relaxed
        echo "== governor: 100,000 tasks, 64 clients, 10,000 agents; without then with 1,000 capabilities and budgets"
        "$S2" bench --tasks 100000 --swarms 100 --clients 64 --agents 10000 --prefix g0 --push 500 \
            | sed 's/^/   plain: /'
        "$S2" bench --tasks 100000 --swarms 100 --clients 64 --agents 10000 --caps 1000 \
            --budget 1000000 --prefix g1 --push 500 | sed 's/^/   governed: /'
        stop
        rm -rf "$dir"
        dir=""
        ;;
    plan)
        start "$(mktemp -d "$out/plan.XXXXXX")"
        echo "== plan: apply 100,000 tasks (10 swarms x 10 phases x 1,000 tasks), simulate the seed"
        awk 'BEGIN {
            print "swarms:"
            for (s = 0; s < 10; s++) {
                printf "  - id: p%d\n    agents:\n      - {id: p%d-a1, model: sonnet}\n    phases:\n", s, s
                for (p = 1; p <= 10; p++) {
                    printf "      - phase: %d\n        tasks:\n", p
                    for (t = 0; t < 1000; t++)
                        printf "          - {id: p%d-%d-%d, title: task %d of phase %d, estimate_h: 1}\n", s, p, t, t, p
                }
            }
        }' >"$dir/big.yaml"
        t0=$(ms_now)
        "$S2" plan validate "$dir/big.yaml" | sed 's/^/   /'
        echo "   validate: $(($(ms_now) - t0)) ms"
        t0=$(ms_now)
        "$S2" plan apply "$dir/big.yaml" >"$dir/apply.txt"
        echo "   apply: $(($(ms_now) - t0)) ms ($(tail -1 "$dir/apply.txt"))"
        t0=$(ms_now)
        "$S2" plan apply "$dir/big.yaml" | tail -1 | sed 's/^/   again: /'
        echo "   apply again: $(($(ms_now) - t0)) ms"
        t0=$(ms_now)
        "$S2" plan simulate examples/seed-7x7.yaml >/dev/null
        echo "   simulate seed-7x7 (gang-up): $(($(ms_now) - t0)) ms"
        stop
        rm -rf "$dir"
        dir=""
        ;;
    hook)
        start "$(mktemp -d "$out/hook.XXXXXX")"
        echo "== git hook: commit of a new instruction file -> its task visible (100 commits)"
        "$S2" swarm add hk >/dev/null
        repo=$dir/repo
        git init -q "$repo"
        git -C "$repo" -c user.name=b -c user.email=b@b commit -q --allow-empty -m init
        printf '%s' "$S2_TOKEN" >"$dir/token"
        chmod 600 "$dir/token"
        "$S2" git hook install "$repo" --token-file "$dir/token" >/dev/null
        : >"$dir/lat"
        for i in $(seq 1 100); do
            printf -- '---\ntasks:\n  - id: h%d\n    title: hook %d\n---\n' "$i" "$i" >"$repo/INSTRUCTIONS-hk-PHASE-$i.md"
            git -C "$repo" add -A
            t0=$(date +%s%N)
            git -C "$repo" -c user.name=b -c user.email=b@b commit -q -m "h$i" 2>>"$dir/hook.err"
            until curl -sf -o /dev/null -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks/h$i"; do :; done
            echo $((($(date +%s%N) - t0) / 1000)) >>"$dir/lat"
        done
        sort -n "$dir/lat" | awk '{v[NR] = $1} END {printf "   commit -> visible (the whole git commit, hooks included): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", v[int(NR * 0.5)] / 1000, v[int(NR * 0.99)] / 1000, v[NR] / 1000}'
        sed -n 's/.*(\([0-9.]*\) ms in s2, \([0-9.]*\) ms round trip).*/\1 \2/p' "$dir/hook.err" | sort -n -k2 |
            awk '{a[NR] = $1; b[NR] = $2} END {if (NR) printf "   notify round trip (hook -> s2 -> hook): p50 %.1f ms, p99 %.1f ms; import inside s2 p50 %.1f ms\n", b[int(NR * 0.5)], b[int(NR * 0.99)], a[int(NR * 0.5)]}'
        stop
        rm -rf "$dir"
        dir=""
        ;;
    *) echo "suite: unknown section '$s' (scale, gov, plan, hook)" >&2; exit 2 ;;
    esac
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
