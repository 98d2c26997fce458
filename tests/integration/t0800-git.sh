# t0800-git: the git bridge on a temporary repository: instruction files imported
# idempotently (a malformed file reported with file:line while the valid ones go in, a changed
# task reported as a conflict and never overwritten), STATUS.md exported to each swarm's
# branch without touching the working tree, the hooks (a commit's new task is visible as soon
# as `git commit` returns, without polling; a push to a bare repository too), and the
# pre-commit guard (another agent's leased path refused, naming holder and task; the holder's
# own commit allowed; an expired or finished lease refused: fencing).
. tests/lib.sh

s2_start
"$S2" swarm add sip --budget 100 --capabilities integration:sip >/dev/null
"$S2" swarm add ndi --budget 100 >/dev/null
"$S2" swarm add h323 --budget 100 --branch status/h323 >/dev/null
"$S2" agent add sip-a1 --swarm sip --capabilities integration:sip >/dev/null
"$S2" agent add sip-a2 --swarm sip --capabilities integration:sip >/dev/null
"$S2" agent add ndi-a1 --swarm ndi >/dev/null

R=$T_DIR/repo
git init -q "$R"
g() { git -C "$R" -c user.name=tester -c user.email=t@example.com "$@"; }
entries() { http GET '/v1/witness?order=desc&limit=1'; j '.entries[0].seq'; }

cat >"$R/INSTRUCTIONS-sip-PHASE-1.md" <<'EOF'
---
swarm: sip
phase: 1
defaults:
  requires: [integration:sip]
  min_tier: 1
tasks:
  - id: sip-p1-t1
    title: Kamailio TLS configuration
    priority: 5
    paths: [deploy/kamailio/**]
    estimate_h: 2
  - id: sip-p1-t2
    title: "Monitoring: dashboards"
    depends_on: [sip-p1-t1]
    max_cost: 4
---
# Session sip - Phase 1

Free text before the first task section belongs to no task.

## sip-p1-t1: Kamailio TLS
- File: deploy/kamailio/tls.cfg

```
## not a heading: inside a code block
```

### Notes
still part of sip-p1-t1

## sip-p1-t2
Dashboards for the SIP proxies.

## Completion protocol
Commit and report.
EOF
mkdir -p "$R/instructions/ndi"
cat >"$R/instructions/ndi/INSTRUCTIONS-ndi-PHASE-1.md" <<'EOF'
---
tasks:
  - id: ndi-p1-t1
    title: NDI evidence stream
    body: |
      inline body
      on two lines
---
EOF
# malformed: an unknown field on line 7
cat >"$R/INSTRUCTIONS-ndi-PHASE-2.md" <<'EOF'
---
tasks:
  - id: ndi-p2-t1
    title: fine
  - id: ndi-p2-t2
    title: typo below
    prority: 3
---
EOF
# malformed: broken YAML on line 4
cat >"$R/INSTRUCTIONS-ndi-PHASE-3.md" <<'EOF'
---
tasks:
  - id: ndi-p3-t1
    title: [unclosed
---
EOF
# malformed: a field of the wrong type (line 5), and a file without front matter
cat >"$R/INSTRUCTIONS-h323-PHASE-1.md" <<'EOF'
---
tasks:
  - id: h323-p1-t1
    title: guardian council
    priority: high
---
EOF
printf '# just markdown\n' >"$R/INSTRUCTIONS-h323-PHASE-2.md"
printf -- '---\ntasks: []\n---\n' >"$R/INSTRUCTIONS-bad-name.md"
g add -A
g commit -qm "phase instructions"

"$S2" git import "$R" >"$T_DIR/imp1.out" 2>"$T_DIR/imp1.err"
is "$?" "1" "import exits 1 when files were reported"
err=$(cat "$T_DIR/imp1.err")
contains "$err" "INSTRUCTIONS-ndi-PHASE-2.md:7: tasks[1]: unknown field 'prority' (did you mean 'priority'?)" \
    "an unknown field is reported at file:line, with a suggestion"
contains "$err" "INSTRUCTIONS-ndi-PHASE-3.md:4: YAML: while parsing a flow sequence started here" "broken YAML is reported at its line"
contains "$err" "INSTRUCTIONS-h323-PHASE-1.md:5: task 'h323-p1-t1': field 'priority' must be" \
    "a value of the wrong type names its field's line"
contains "$err" "INSTRUCTIONS-h323-PHASE-2.md:1: an instruction file starts with" \
    "a file without front matter is reported"
contains "$err" "INSTRUCTIONS-bad-name.md: the name must be INSTRUCTIONS-<swarm>-PHASE-<n>.md" \
    "a badly named file is reported"
contains "$(cat "$T_DIR/imp1.out")" "3 tasks created" "the valid files are imported"
http GET /v1/tasks/sip-p1-t1
is "$(j '.task.title') $(j '.task.priority') $(j '.task.paths[0]') $(j '.task.requires[0]') $(j '.task.min_tier') $(j '.task.estimate_h')" \
    "Kamailio TLS configuration 5 deploy/kamailio/** integration:sip 1 2" "fields and defaults arrive"
is "$(j .task.body)" "$(printf -- '- File: deploy/kamailio/tls.cfg\n\n```\n## not a heading: inside a code block\n```\n\n### Notes\nstill part of sip-p1-t1')" \
    "the body is the task's markdown section (code blocks and sub-headings kept)"
http GET /v1/tasks/sip-p1-t2
is "$(j '.task.title')|$(j '.task.body')|$(j '.task.depends_on[0]')|$(j .task.max_cost)|$(j .task.state)" \
    "Monitoring: dashboards|Dashboards for the SIP proxies.|sip-p1-t1|4|pending" "second task: body, dependency"
http GET /v1/tasks/ndi-p1-t1
is "$(j .task.body)" "$(printf 'inline body\non two lines')" "a body may be given in the front matter"
expect_http 404 "the malformed file's valid task is not imported either" GET /v1/tasks/ndi-p2-t1

# re-import: nothing changes, not even the witness log
before=$(entries)
"$S2" git import "$R" --json >"$T_DIR/imp2.json" 2>/dev/null
is "$(jq -c '[.created, .unchanged, (.conflicts|length)]' "$T_DIR/imp2.json")" \
    '[[],["sip-p1-t1","sip-p1-t2","ndi-p1-t1"],0]' "re-import: everything unchanged"
is "$(entries)" "$before" "re-import writes nothing to the witness log"

# a changed task is a conflict, never overwritten; the fixed file is imported
sed -i 's/title: "Monitoring: dashboards"/title: "Monitoring v2"/' "$R/INSTRUCTIONS-sip-PHASE-1.md"
sed -i 's/prority: 3/priority: 3/' "$R/INSTRUCTIONS-ndi-PHASE-2.md"
g commit -qam "change a title, fix a typo"
"$S2" git import "$R" >"$T_DIR/imp3.out" 2>"$T_DIR/imp3.err"
contains "$(cat "$T_DIR/imp3.err")" "conflict: INSTRUCTIONS-sip-PHASE-1.md:13: task 'sip-p1-t2' exists in s2 with another [\"title\"]" \
    "a changed task is reported as a conflict at its line"
is "$("$S2" task show sip-p1-t2 --json | jq -r .task.title)" "Monitoring: dashboards" "...and left as it is"
is "$("$S2" task show ndi-p2-t2 --json | jq -r .task.priority)" "3" "the fixed file is imported"

# --ref reads another commit; --dry-run changes nothing
g checkout -q -b next
cat >"$R/INSTRUCTIONS-sip-PHASE-2.md" <<'EOF'
---
tasks:
  - id: sip-p2-t1
    title: phase two
    depends_on: [sip-p1-t2]
  - id: sip-p2-t2
    title: needs a task nobody defined
    depends_on: [no-such-task]
---
EOF
g add -A
g commit -qm "phase 2 on a branch"
g checkout -q master
"$S2" git import "$R" --ref next --dry-run --json >"$T_DIR/dry.json" 2>/dev/null
is "$(jq -c .created "$T_DIR/dry.json") $(jq .dry_run "$T_DIR/dry.json")" '["sip-p2-t1","sip-p2-t2"] true' "--dry-run says what it would create"
expect_http 404 "...and creates nothing" GET /v1/tasks/sip-p2-t1
"$S2" git import "$R" --ref next >"$T_DIR/imp4.out" 2>"$T_DIR/imp4.err"
contains "$(cat "$T_DIR/imp4.err")" "INSTRUCTIONS-sip-PHASE-2.md:8: task 'sip-p2-t2': depends_on names unknown task 'no-such-task'" \
    "a file the server refuses is reported at the task's line"
expect_http 404 "...and none of its tasks is created" GET /v1/tasks/sip-p2-t1
"$S2" git import "$R" --ref no-such-ref >/dev/null 2>"$T_DIR/imp5.err"
is "$?" "1" "an unknown ref fails"
contains "$(cat "$T_DIR/imp5.err")" "cannot resolve 'no-such-ref'" "...saying so"
check_fails "a directory that is no repository fails" "$S2" git import "$T_DIR/home"

# a swarm token imports its own swarm's files only
NDI_TOKEN=$(curl -s -X POST -H "Authorization: Bearer $S2_TOKEN" -d '{"id":"scoped"}' "$S2_SERVER/v1/swarms" | jq -r .token)
S2_TOKEN=$NDI_TOKEN "$S2" git import "$R" --json >"$T_DIR/imp6.json" 2>/dev/null
contains "$(jq -r '.errors[].message' "$T_DIR/imp6.json")" "this token is scoped to swarm 'scoped'" \
    "a swarm token's import skips other swarms' files, saying why"

# ---- export ----
head_before=$(g rev-parse HEAD)
status_before=$(g status --porcelain)
"$S2" git export "$R" --json >"$T_DIR/exp1.json"
is "$?" "0" "export succeeds"
is "$(jq -r '[.swarms[] | .branch] | join(",")' "$T_DIR/exp1.json")" "s2/sip,s2/ndi,status/h323,s2/scoped" \
    "each swarm to its branch (s2/<swarm>, or the one it names)"
is "$(g rev-parse HEAD) $(g status --porcelain)" "$head_before $status_before" "HEAD and the working tree are untouched"
md=$(g show s2/sip:STATUS.md)
contains "$md" 'status: "' "STATUS.md has the seed's status field"
seq=$(jq -r '.swarms[0].witness_seq' "$T_DIR/exp1.json")
size=$(jq -r '.swarms[0].tree_size' "$T_DIR/exp1.json")
root=$(jq -r '.swarms[0].root_hash' "$T_DIR/exp1.json")
http GET "/v1/witness/checkpoints?from=$size&limit=1"
is "$(j '.checkpoints[0].tree_size') $(j '.checkpoints[0].root_hash')" "$size $root" "the checkpoint named is a real signed checkpoint"
contains "$md" "\"root_hash\":\"$root\"" "STATUS.md names the checkpoint's root"
msg=$(g log -1 --format=%B s2/sip)
contains "$msg" "S2-Witness-Seq: $seq" "the commit message names the witness seq"
contains "$msg" "S2-Checkpoint: $size $root" "...and the checkpoint"
check "the checkpoint proves the status's last entry" "$S2" witness prove "$seq" --size "$size"
n1=$(g rev-list --count s2/sip)
"$S2" git export "$R" --swarm sip >/dev/null
is "$(g rev-list --count s2/sip)" "$n1" "an unchanged STATUS.md makes no new commit"
"$S2" task cancel ndi-p2-t1 >/dev/null
"$S2" git export "$R" --swarm ndi >"$T_DIR/exp2.out"
contains "$(cat "$T_DIR/exp2.out")" "ndi -> s2/ndi: committed" "a change is committed on top"
is "$(g rev-list --count s2/ndi)" "$(($(g rev-list --count master) + 2))" "...the branch grows by one commit per change"
g checkout -q s2/sip
check_fails "a branch checked out in the working tree is refused" "$S2" git export "$R" --swarm sip
g checkout -q master
"$S2" swarm add weird --branch 'bad..name' >/dev/null
check_fails "an invalid branch name is refused" "$S2" git export "$R" --swarm weird

# ---- hooks: a commit's tasks are visible when git commit returns ----
check_fails "hook install refuses a foreign hook" sh -c "printf '#!/bin/sh\necho foreign >>\"$T_DIR/foreign.log\"\n' >'$R/.git/hooks/post-commit' && chmod +x '$R/.git/hooks/post-commit' && '$S2' git hook install '$R'"
check "hook install --force keeps it" "$S2" git hook install "$R" --force
check "the foreign hook was kept as post-commit.pre-s2" test -x "$R/.git/hooks/post-commit.pre-s2"
is "$(g config s2.server)" "$S2_SERVER" "the server is recorded in git config"
lat=""
for i in 1 2 3 4 5; do
    cat >"$R/INSTRUCTIONS-ndi-PHASE-1$i.md" <<EOF
---
tasks:
  - id: hooked-$i
    title: pushed by a hook
---
EOF
    g add "INSTRUCTIONS-ndi-PHASE-1$i.md"
    t0=$(date +%s%N)
    g commit -qm "instructions $i" 2>"$T_DIR/hook$i.err"
    # one look, no polling: it is there or the test fails
    if curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks/hooked-$i" >/dev/null; then
        t1=$(date +%s%N)
        lat="$lat $(((t1 - t0) / 1000000))"
        ok "commit $i: hooked-$i is visible as soon as git commit returns"
    else
        not_ok "commit $i: hooked-$i is not visible after git commit"
        sed 's/^/# /' "$T_DIR/hook$i.err"
    fi
done
srv_ms=$(sed -n 's/.*(\([0-9.]*\) ms in s2, \([0-9.]*\) ms round trip).*/\1 (\2)/p' "$T_DIR"/hook*.err | tr '\n' ' ')
note "commit -> visible (whole git commit with both hooks, then one GET), ms:$lat"
note "import in s2 (notify round trip) per commit, from the hooks' reports, ms: $srv_ms"
is "$(wc -l <"$T_DIR/foreign.log" 2>/dev/null)" "5" "the kept foreign hook ran on every commit"
# the hook's own part: `s2 git notify` (what post-commit runs) started -> task visible
lat=""
for i in 1 2 3 4 5; do
    printf -- '---\ntasks:\n  - id: notified-%s\n    title: by notify\n---\n' "$i" >"$R/INSTRUCTIONS-ndi-PHASE-3$i.md"
    g add "INSTRUCTIONS-ndi-PHASE-3$i.md"
    g -c core.hooksPath=/dev/null commit -qm "no hooks $i"
    t0=$(date +%s%N)
    "$S2" git notify "$R" >/dev/null 2>&1
    curl -sf -H "Authorization: Bearer $S2_TOKEN" "$S2_SERVER/v1/tasks/notified-$i" >/dev/null &&
        lat="$lat $((($(date +%s%N) - t0) / 1000000))"
done
is "$(echo $lat | wc -w)" "5" "s2 git notify: each task visible when it returns"
note "hook (s2 git notify process start) -> visible, ms:$lat"
# the notification itself: POST /v1/git/notify sent -> answered (the task committed), 20 times
: >"$T_DIR/notify.ms"
for i in $(seq 1 20); do
    printf -- '---\ntasks:\n  - id: timed-%s\n    title: timed\n---\n' "$i" >"$R/INSTRUCTIONS-ndi-PHASE-5$i.md"
    g add "INSTRUCTIONS-ndi-PHASE-5$i.md"
    g -c core.hooksPath=/dev/null commit -qm "timed $i"
    curl -s -o "$T_DIR/n.json" -w '%{time_total}\n' -X POST -H "Authorization: Bearer $S2_TOKEN" \
        -d "{\"repo\":\"$R\"}" "$S2_SERVER/v1/git/notify" >>"$T_DIR/notify.ms"
    jq -e --arg id "timed-$i" '.created == [$id]' "$T_DIR/n.json" >/dev/null || not_ok "notify $i created timed-$i"
done
is "$(wc -l <"$T_DIR/notify.ms")" "20" "20 notifications, each creating its task"
note "POST /v1/git/notify -> task committed and visible, ms (sorted): $(awk '{printf "%.1f\n", $1 * 1000}' "$T_DIR/notify.ms" | sort -n | tr '\n' ' ')"

# a push to a bare repository: post-receive
B=$T_DIR/bare.git
git clone -q --bare "$R" "$B"
check "hook install in a bare repository" "$S2" git hook install "$B" --ref master
cat >"$R/INSTRUCTIONS-ndi-PHASE-20.md" <<'EOF'
---
tasks:
  - id: pushed-1
    title: arrives by push
---
EOF
g add -A
g commit -qm "pushed instructions" 2>/dev/null
g push -q "$B" master 2>"$T_DIR/push.err"
http GET /v1/tasks/pushed-1
is "$HTTP_STATUS $(j .task.title)" "200 arrives by push" "a push: the task is visible when git push returns"
g push -q "$B" master:other 2>/dev/null
note "push to a branch other than s2.ref imports nothing (checked by the absence of errors)"

# notify's bad input
expect_http 400 "notify: a relative path is refused" POST /v1/git/notify '{"repo":"repo"}'
expect_http 400 "notify: a path that is no repository" POST /v1/git/notify "{\"repo\":\"$T_DIR/home\"}"
expect_http 400 "notify: an unknown ref" POST /v1/git/notify "{\"repo\":\"$R\",\"ref\":\"nope\"}"
expect_http 400 "notify: unknown fields" POST /v1/git/notify "{\"repo\":\"$R\",\"x\":1}"
expect_http 400 "notify: a NUL in the path" POST /v1/git/notify '{"repo":"/tmp/a\u0000b"}'
"$S2" approver add alice --json >"$T_DIR/alice.json"
expect_http 403 "notify: an approver may not" POST /v1/git/notify "{\"repo\":\"$R\"}" "$(jq -r .token "$T_DIR/alice.json")"
http POST /v1/git/notify "{\"repo\":\"$R\"}"
is "$HTTP_STATUS $(j '.created | length')" "200 0" "notify again: nothing new"

# uninstall restores the foreign hook
check "hook uninstall" "$S2" git hook uninstall "$R"
contains "$(cat "$R/.git/hooks/post-commit")" "foreign" "...and restores the hook it kept"
check "no pre-commit left" test ! -e "$R/.git/hooks/pre-commit"
"$S2" git hook install "$R" --force >/dev/null

# ---- the pre-commit guard ----
"$S2" task add --swarm sip --id sip-parser --title "sip parser" --paths 'src/sip/**' --priority 100 >/dev/null
"$S2" task add --swarm sip --id sip-docs --title "sip docs" --paths 'docs/sip/**' --priority 99 >/dev/null
http POST /v1/claim '{"agent":"sip-a1"}'
is "$(j .task.id)" "sip-parser" "sip-a1 claims sip-parser (src/sip/**)"
L1=$(j .lease.token)
http POST /v1/claim '{"agent":"sip-a2"}'
is "$(j .task.id)" "sip-docs" "sip-a2 claims sip-docs (docs/sip/**)"
L2=$(j .lease.token)
mkdir -p "$R/src/sip" "$R/docs/sip"
echo "int parse;" >"$R/src/sip/parser.c"
g add src/sip/parser.c
g commit -qm "a human touches the parser" 2>"$T_DIR/guard1.err"
is "$?" "1" "a human's commit touching a leased path is refused"
contains "$(cat "$T_DIR/guard1.err")" "src/sip/parser.c: held by agent sip-a1 (swarm sip) for task sip-parser" \
    "...naming the holder and the task"
S2_LEASE=$L2 g commit -qm "another agent touches the parser" 2>"$T_DIR/guard2.err"
is "$?" "1" "another agent's commit (its lease covers other paths) is refused"
contains "$(cat "$T_DIR/guard2.err")" "held by agent sip-a1" "...naming the holder"
S2_LEASE=$L1 g commit -qm "the holder commits" 2>"$T_DIR/guard3.err"
is "$?" "0" "the holder's own commit is allowed"
echo "docs" >"$R/docs/sip/x.md"
g add docs/sip/x.md
"$S2" done sip-docs --lease "$L2" >/dev/null
S2_LEASE=$L2 g commit -qm "a zombie commits after its lease ended" 2>"$T_DIR/guard4.err"
is "$?" "1" "a commit under a finished lease is refused (fencing)"
contains "$(cat "$T_DIR/guard4.err")" "is no longer live" "...saying the lease is no longer live"
# an expired lease
"$S2" task add --swarm sip --id sip-short --title "short" --paths 'docs/sip/**' --lease-ms 300 --priority 200 >/dev/null
http POST /v1/claim '{"agent":"sip-a2"}'
is "$(j .task.id)" "sip-short" "sip-a2 claims a task with a 300 ms lease"
L3=$(j .lease.token)
wait_for 10 sh -c "curl -s -H 'Authorization: Bearer $S2_TOKEN' '$S2_SERVER/v1/tasks/sip-short' | jq -e '.task.state != \"claimed\"'"
S2_LEASE=$L3 g commit -qm "a zombie commits after its lease expired" 2>"$T_DIR/guard5.err"
is "$?" "1" "a commit under an expired lease is refused (fencing)"
contains "$(cat "$T_DIR/guard5.err")" "is no longer live" "...saying why"
S2_LEASE=$L3 S2_TOKEN= g commit -qm "the lease as the only credential" 2>"$T_DIR/guard6.err"
is "$?" "1" "an expired lease used as the bearer token is refused too"
# the server unreachable: an agent is refused, a human warned and let through
S2_SERVER=http://127.0.0.1:1 S2_LEASE=$L1 g commit -qm "agent, server down" 2>"$T_DIR/guard7.err"
is "$?" "1" "server unreachable: an agent's commit is refused (it cannot prove its lease)"
S2_SERVER=http://127.0.0.1:1 g commit -qm "human, server down" 2>"$T_DIR/guard8.err"
is "$?" "0" "server unreachable: a human's commit goes through"
contains "$(cat "$T_DIR/guard8.err")" "warning" "...with a warning"
g config s2.guardFailClosed true
echo more >>"$R/docs/sip/x.md"
g add docs/sip/x.md
S2_SERVER=http://127.0.0.1:1 g commit -qm "human, server down, fail closed" 2>/dev/null
is "$?" "1" "s2.guardFailClosed refuses a human's commit too when the server is down"
g config --unset s2.guardFailClosed
check "a commit touching nothing leased goes through" g commit -qm "free paths"
t_done
