# t0610-metrics: GET /metrics in the Prometheus text format: every family the operations
# guide promises is there, counts move with real work, and the exposition is well formed
# (each family's HELP and TYPE once, before its samples, its samples together).
. tests/lib.sh

s2_start
"$S2" bench --tasks 300 --clients 2 --push 20 >/dev/null 2>&1
expect_http 403 "metrics need the admin token" GET /metrics "" "$("$S2" swarm add m --json | jq -r .token)"
curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/metrics" >"$T_DIR/m.txt"
for fam in s2_http_requests_total s2_claim_seconds s2_push_seconds s2_tasks s2_leases_expired_total \
    s2_budget_spent_usd s2_budget_limit_usd s2_breakers_open s2_escalations_total \
    s2_witness_entries s2_witness_checkpoint_lag_entries s2_store_commit_seconds s2_batch_size \
    s2_blockers_open s2_swarms_tripped process_resident_memory_bytes; do
    check "family $fam" grep -q "^# TYPE $fam " "$T_DIR/m.txt"
done
# every claim that got a task is timed: as a push when it was waiting when the task became
# ready, else as a claim (on a loaded machine a push sample can arrive after its task)
is "$(awk '/^s2_(claim|push)_seconds_count /{n += $2} END {print n}' "$T_DIR/m.txt")" "320" \
    "every claim that got a task was timed"
is "$(awk '/^s2_push_seconds_count /{print ($2 >= 1)}' "$T_DIR/m.txt")" "1" "pushes were timed"
is "$(awk '/^s2_witness_checkpoint_lag_entries /{print $2}' "$T_DIR/m.txt")" "0" "no entry without a checkpoint"
is "$(awk '/^s2_tasks\{state="done"\}/{print $2}' "$T_DIR/m.txt")" "320" "tasks done"
is "$(metrics_malformed "$T_DIR/m.txt")" "" "the exposition is well formed"
check "a single server has no node families" sh -c "! grep -q '^s2_node_' '$T_DIR/m.txt'"
t_done
