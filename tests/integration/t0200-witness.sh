# t0200-witness: the witness log end to end: every change witnessed, verify from the
# database and from an export, the tamper campaign, a database edited behind s2's back
# (caught by verify, refused by serve), proofs over HTTP and the CLI, trace ids, scoping,
# and kill -9 in the middle of batches: no gap, no fork.
. tests/lib.sh

s2_start
"$S2" swarm add wa --capabilities a >/dev/null
"$S2" swarm add wb --json >"$T_DIR/wb.json"
WB_TOKEN=$(jq -r .token "$T_DIR/wb.json")
"$S2" agent add aa --swarm wa --capabilities a >/dev/null
"$S2" agent add ab --swarm wb >/dev/null
# one batch of tasks: many entries under one checkpoint keeps the tamper campaign quick
tasks=$(jq -nc '{tasks: [range(0;12) | {id: "t\(.)", swarm: "wa", title: "task \(.)"}]}')
expect_http 201 "batch create" POST /v1/tasks "$tasks"
expect_http 201 "task in wb" POST /v1/tasks '{"id":"tb1","swarm":"wb","title":"b"}'
"$S2" claim --agent aa >/dev/null && "$S2" done t0 >/dev/null
curl -s -o /dev/null -H "Authorization: Bearer $S2_TOKEN" -H 'Content-Type: application/json' \
    -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
    -d '{"agent":"aa"}' "$S2_SERVER/v1/claim"
curl -s -o /dev/null -H "Authorization: Bearer $S2_TOKEN" -H 'Content-Type: application/json' \
    -H 'S2-Trace-Id: run-42.step:7' -d '{"reason":"no longer needed"}' "$S2_SERVER/v1/tasks/t5/cancel"

PUB=$(curl -sf "$S2_SERVER/v1/witness/key" | jq -r .public_key)
is "$PUB" "$S2_PUBKEY" "GET /v1/witness/key (no token) serves the key init printed"
check "verify --db while serving" "$S2" witness verify --db "$DB" --key "$PUB"
"$S2" witness export --output "$T_DIR/export.jsonl"
check "export from the server verifies" "$S2" witness verify --export "$T_DIR/export.jsonl" --key "$PUB"
"$S2" witness export --db "$DB" --output "$T_DIR/export-db.jsonl"
check "export --db verifies" "$S2" witness verify --export "$T_DIR/export-db.jsonl" --key "$PUB"

# every change is there, in order, with who did it
http GET "/v1/witness?task=t0&limit=100"
is "$(j '[.entries[].op] | join(",")')" "task.create,task.claim,task.done" "t0's history: create, claim, done"
http GET "/v1/witness?task=t1"
is "$(j '.entries[] | select(.op=="task.claim") | .trace_id')" "4bf92f3577b34da6a3ce929d0e0e4736" \
    "a W3C traceparent becomes the entry's trace_id"
http GET "/v1/witness?task=t5"
is "$(j '.entries[] | select(.op=="task.cancel") | .trace_id')" "run-42.step:7" "S2-Trace-Id is kept"
is "$(j '.entries[] | select(.op=="task.cancel") | .actor')" "admin" "the actor is recorded"

# a price set at run time is witnessed in the same shape as init's defaults (and the API's)
"$S2" model set cheapo --tier 1 --in 0.1 --out 2.5 >/dev/null
"$S2" witness export --output "$T_DIR/models.jsonl" # (params as the text hashed)
is "$(jq -rs '[.[] | select(.op=="model.put") | .params | fromjson | keys | join(",")] | unique | join(" ")' "$T_DIR/models.jsonl")" \
    "name,tier,usd_per_mtok_in,usd_per_mtok_out" "model.put entries have one shape, init's and run time's"
is "$(jq -r 'select(.op=="model.put") | .params | select(test("cheapo"))' "$T_DIR/models.jsonl")" \
    '{"name":"cheapo","tier":1,"usd_per_mtok_in":0.100000,"usd_per_mtok_out":2.500000}' \
    "...with exact six-decimal prices"
http GET "/v1/witness?limit=1000"
is "$(j '[.entries[].seq] == [range(1; (.entries|length)+1)]')" "true" "seqs run 1..N without a gap"
is "$(j '.entries[0].op')" "log.init" "the log opens with log.init"
is "$(j '.entries[0].params.public_key')" "$PUB" "log.init names the signing key"
expect_http 200 "a swarm token reads the log" GET "/v1/witness?limit=1000" "" "$WB_TOKEN"
is "$(j '[.entries[].swarm] | unique | join(",")')" "wb" "...only its own swarm's entries"
expect_http 403 "...and not another swarm's" GET "/v1/witness?swarm=wa" "" "$WB_TOKEN"
expect_http 400 "bad limit" GET "/v1/witness?limit=0"
expect_http 400 "bad from" GET "/v1/witness?from=-1"

# proofs
size=$(curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/witness/checkpoints?order=desc&limit=1" | jq '.checkpoints[0].tree_size')
for seq in 1 2 3 $((size / 2)) $size; do
    check "inclusion proof of entry $seq (tree size $size)" "$S2" witness prove "$seq" --key "$PUB"
done
"$S2" witness prove 3 --json --key "$PUB" >"$T_DIR/proof.json"
check "a saved proof verifies offline" "$S2" witness verify --proof "$T_DIR/proof.json" --key "$PUB"
jq '.entry.params = "{\"forged\":1}"' "$T_DIR/proof.json" >"$T_DIR/forged.json"
check_fails "a proof of a changed entry fails" "$S2" witness verify --proof "$T_DIR/forged.json" --key "$PUB"
first=$(curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/witness/checkpoints?limit=1" | jq '.checkpoints[0].tree_size')
check "consistency $first -> $size" "$S2" witness consistency "$first" "$size" --key "$PUB"
expect_http 404 "inclusion of an entry beyond the tree" GET "/v1/witness/proof/inclusion?seq=$((size + 100))"
expect_http 404 "consistency with no such checkpoint" GET "/v1/witness/proof/consistency?old=1&new=$((size + 100))"
expect_http 403 "a swarm token cannot prove another swarm's entry" GET "/v1/witness/proof/inclusion?seq=$size" "" "$WB_TOKEN"
expect_http 403 "the export needs the admin token" GET /v1/witness/export "" "$WB_TOKEN"

# the tamper campaign
"$S2_BUILD/tests/witness_tamper" "$T_DIR/export.jsonl" "$PUB" >"$T_DIR/tamper.tap" 2>&1
tstatus=$?
sed -n 's/^\(not ok\|ok\) [0-9]* - \(.*\)/\1 tamper: \2/p; /^#/p' "$T_DIR/tamper.tap" |
    while IFS= read -r l; do case $l in "#"*) echo "$l" ;; "not ok"*) echo "not ok - ${l#not ok }" ;; *) echo "ok - ${l#ok }" ;; esac; done
is "$tstatus" "0" "the tamper campaign passes as a whole"

# the events stream carries each entry with its seq and hash
curl -sN --max-time 2 -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/events?after=1" >"$T_DIR/sse.txt"
first_ev=$(grep -m1 '^data:' "$T_DIR/sse.txt" | sed 's/^data: *//')
is "$(printf '%s' "$first_ev" | jq -r '.seq')" "2" "SSE resumes after seq 1"
is "$(printf '%s' "$first_ev" | jq -r '.hash | length')" "64" "SSE events carry the entry hash"

# a database edited behind s2's back
s2_stop
if [ "$S2_STORE" = pg ]; then
    # copies of the database (CREATE DATABASE ... TEMPLATE), edited with psql
    base=${DB%/*}
    dbname=${DB##*/}
    pgq() { "$S2_TOP/scripts/pg.sh" psql "$S2_PG_DIR" "$@"; }
    pgq postgres -c "CREATE DATABASE ${dbname}_edited TEMPLATE $dbname" -c "CREATE DATABASE ${dbname}_cut TEMPLATE $dbname"
    EDITED=$base/${dbname}_edited
    CUT=$base/${dbname}_cut
    pgq "${dbname}_edited" -c "ALTER TABLE witness DISABLE TRIGGER witness_append_only" \
        -c "UPDATE witness SET params='{\"forged\":true}' WHERE seq=5" \
        -c "ALTER TABLE witness ENABLE TRIGGER witness_append_only"
    pgq "${dbname}_cut" -c "ALTER TABLE witness DISABLE TRIGGER witness_append_only" \
        -c "DELETE FROM witness WHERE seq=(SELECT max(seq) FROM witness)"
    EDITED_KEY=$KEY
    CUT_KEY=$KEY
else
    EDITED=$T_DIR/edited.db
    CUT=$T_DIR/cut.db
    cp "$DB" "$EDITED"
    cp "$DB.key" "$EDITED.key"
    sqlite3 "$EDITED" "DROP TRIGGER witness_no_update; UPDATE witness SET params='{\"forged\":true}' WHERE seq=5;"
    cp "$DB" "$CUT"
    cp "$DB.key" "$CUT.key"
    sqlite3 "$CUT" "DROP TRIGGER witness_no_delete; DELETE FROM witness WHERE seq=(SELECT max(seq) FROM witness);"
    EDITED_KEY=$EDITED.key
    CUT_KEY=$CUT.key
fi
out=$("$S2" witness verify --db "$EDITED" --key "$PUB" 2>&1)
st=$?
is "$st" "1" "verify exits 1 on an edited database"
contains "$out" "first bad entry: 5" "verify names entry 5"
"$S2" serve --db "$EDITED" --key "$EDITED_KEY" --listen 127.0.0.1:0 >"$T_DIR/edited.log" 2>&1 &
epid=$!
wait_for 10 sh -c "! kill -0 $epid 2>/dev/null"
wait $epid
is "$?" "1" "serve refuses an edited log"
contains "$(cat "$T_DIR/edited.log")" "fails its tail check" "...saying why"

check_fails "verify catches a deleted last entry" "$S2" witness verify --db "$CUT" --key "$PUB"
check_fails "serve refuses a log whose last entry was deleted" "$S2" serve --db "$CUT" --key "$CUT_KEY" --listen 127.0.0.1:0
"$S2" init --db "$T_DIR/other.db" >/dev/null
check_fails "serve refuses a database with another signing key" \
    "$S2" serve --db "$CUT" --key "$T_DIR/other.db.key" --listen 127.0.0.1:0
if [ "$S2_STORE" = pg ]; then
    pgq "${dbname}_edited" -c "UPDATE witness SET params='x'" 2>/dev/null
    pgq "${dbname}_edited" -c "DELETE FROM witness" 2>"$T_DIR/trig.err"
else
    sqlite3 "$EDITED" "UPDATE witness SET params='x'" 2>/dev/null
    sqlite3 "$EDITED" "DELETE FROM witness" 2>"$T_DIR/trig.err"
fi
contains "$(cat "$T_DIR/trig.err")" "append-only" "the witness table refuses DELETE below the API"

# kill -9 in the middle of batches, several times: no gap, no fork, old checkpoints still
# consistent with the new tree
rounds=3
[ "$S2_LONG" = 1 ] && rounds=10
before=$size
for r in $(seq 1 $rounds); do
    s2_start
    "$S2" bench --tasks 3000 --clients 4 --push 0 --prefix "crash$r" >/dev/null 2>&1 &
    lp=$!
    # kill it once the bench has written a few hundred entries: mid-batch, mid-load
    goal=$(($(curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/witness?order=desc&limit=1" | jq '.entries[0].seq') + 300))
    wait_for 30 sh -c "curl -sf -H 'Authorization: Bearer $S2_TOKEN' '$S2_SERVER/v1/witness?order=desc&limit=1' | jq -e '.entries[0].seq > $goal'"
    s2_kill
    wait $lp 2>/dev/null
done
check "after $rounds kill -9 rounds the log verifies" "$S2" witness verify --db "$DB" --key "$PUB"
s2_start
now=$(curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/witness/checkpoints?order=desc&limit=1" | jq '.checkpoints[0].tree_size')
check "the log grew across the crashes ($before -> $now)" test "$now" -gt "$before"
check "the tree before the crashes is a prefix of the tree after" "$S2" witness consistency "$before" "$now" --key "$PUB"
t_done
