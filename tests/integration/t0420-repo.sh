# t0420-repo: `s2 worker --repo`: every task attempt works in a fresh git worktree on its own
# branch s2/<task-id>, made from its base ref; two tasks on one repository run in parallel in
# separate worktrees and both commits land on their own branches (author the agent, message
# naming task, agent, attempt and the claim's witness seq); a failed attempt's worktree is
# kept (bounded) and the retry starts afresh; the repository's git directory is read-only
# inside and other tasks' worktrees are out of view; a tampered .git file changes nothing.
. tests/lib.sh

skip() { T_N=$((T_N + 1)); echo "ok $T_N # skip $*"; }

"$S2" worker --check --json >"$T_DIR/check.json" 2>/dev/null
if [ "$(jq -r .sandbox.strict "$T_DIR/check.json")" != true ]; then
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22; do
        skip "the strict sandbox is not available here: $(jq -r .sandbox.error "$T_DIR/check.json")"
    done
    t_done
fi

s2_start
"$S2" swarm add rs >/dev/null
"$S2" agent add ra --swarm rs --max-leases 2 >/dev/null
# failures on purpose below: keep the governor's breaker (3 in a row, t0600) out of it
expect_http 200 "policy: no breaker trips in this test" PUT /v1/policy '{"breaker_failures":100}'
WLOG=$T_DIR/worker.log
task() { "$S2" task show "$1" --json | jq -r ".task.$2"; }
taskc() { "$S2" task show "$1" --json | jq -c ".task.$2"; }

REPO=$T_DIR/repo
G() { git -C "$REPO" "$@"; }
git init -q -b main "$REPO"
G config user.name tester
G config user.email tester@example.com
echo "hello" >"$REPO/README"
echo "build/" >"$REPO/.gitignore"
G add -A && G commit -q -m "first"
G checkout -q -b feature && echo "feature" >"$REPO/feature.txt" && G add -A && G commit -q -m "feature"
G checkout -q main
MAIN=$(G rev-parse main)
FEATURE=$(G rev-parse feature)

"$S2" worker --agent ra --once --repo "$T_DIR/nope" -- true >/dev/null 2>"$T_DIR/bad.err"
is "$?" "1" "--repo of something that is not a repository is refused"
contains "$(cat "$T_DIR/bad.err")" "is not a git repository" "and the message says so"

# ---- two tasks in parallel, each in its own worktree on its own branch ----
"$S2" task add --swarm rs --id rt1 --title "first change" >/dev/null
"$S2" task add --swarm rs --id rt2 --title "second change" >/dev/null
cat >"$T_DIR/work.sh" <<'EOF'
start=$(date +%s%N)
echo "$S2_TASK_ID" > "$S2_TASK_ID.txt"
echo "changed by $S2_TASK_ID" >> README
mkdir -p build && echo junk > build/out.o
others=$(ls -a | tr '\n' ' ')
branch=$(git rev-parse --abbrev-ref HEAD 2>&1)
status=$(git status --porcelain 2>&1 | tr '\n' ' ')
sleep 2
echo "{\"start\": $start, \"end\": $(date +%s%N), \"ls\": \"$others\", \"branch\": \"$branch\", \"status\": \"$status\", \"pwd\": \"$(pwd)\"}"
EOF
"$S2" worker --json --wait 2 --agent ra --concurrency 2 --max-tasks 2 --repo "$REPO" \
    -- sh -c "$(cat "$T_DIR/work.sh")" >"$T_DIR/w.json" 2>>"$WLOG"
is "$?" "0" "the worker ran both tasks"
is "$(task rt1 state)/$(task rt2 state)" "done/done" "both are done"
s1=$(taskc rt1 result.start) e1=$(taskc rt1 result.end) s2=$(taskc rt2 result.start) e2=$(taskc rt2 result.end)
if [ "$s1" -lt "$e2" ] && [ "$s2" -lt "$e1" ]; then ok "they ran at the same time"; else not_ok "they ran at the same time ($s1-$e1, $s2-$e2)"; fi
is "$(task rt1 result.branch)/$(task rt2 result.branch)" "s2/rt1/s2/rt2" "each checkout is on its own branch (git works inside)"
contains "$(task rt1 result.ls)" "rt1.txt" "task 1 sees its own file"
case "$(task rt1 result.ls)" in *rt2.txt*) not_ok "task 1 does not see task 2's file";; *) ok "task 1 does not see task 2's file";; esac
case "$(task rt2 result.ls)" in *rt1.txt*) not_ok "task 2 does not see task 1's file";; *) ok "task 2 does not see task 1's file";; esac
contains "$(task rt1 result.status)" "M README" "git status inside sees the command's changes"
is "$(task rt1 result.git.branch)" "s2/rt1" "the result names the branch"
is "$(task rt1 result.git.commit)" "$(G rev-parse s2/rt1)" "and the commit, which is the branch's tip"
is "$(task rt2 result.git.commit)" "$(G rev-parse s2/rt2)" "task 2's commit is on its own branch"
is "$(task rt1 result.git.base)" "$MAIN" "the base is the repository's HEAD"
is "$(G show s2/rt1:rt1.txt)/$(G show s2/rt2:rt2.txt)" "rt1/rt2" "each branch holds its own task's file"
is "$(G show s2/rt1:README | tail -1)" "changed by rt1" "and its change to a tracked file"
check_fails "ignored files are not committed" G cat-file -e s2/rt1:build/out.o
check_fails "nor the other task's file" G cat-file -e s2/rt1:rt2.txt
msg=$(G log -1 --format='%an <%ae>%n%B' s2/rt1)
contains "$msg" "ra <ra@s2.invalid>" "the author is the agent"
contains "$msg" "Task: rt1" "the message names the task"
contains "$msg" "Agent: ra" "the agent"
contains "$msg" "Attempt: 1" "the attempt"
seq=$(printf '%s\n' "$msg" | sed -n 's/^Witness-Seq: //p')
if [ -n "$seq" ] && "$S2" witness show --task rt1 --json 2>/dev/null | jq -e --argjson s "$seq" '[.entries[] | select(.seq == $s and .op == "task.claim")] | length == 1' >/dev/null; then
    ok "and the witness seq of the claim ($seq)"
else
    not_ok "and the witness seq of the claim ('$seq')"
fi
is "$(G rev-parse main)" "$MAIN" "main did not move"
is "$(G worktree list | wc -l | tr -d ' ')" "1" "the worktrees of done tasks are removed"

# ---- a base ref from the task's front matter ----
printf -- '---\nbase_ref: feature\n---\nbuild on the feature\n' >"$T_DIR/body"
"$S2" task add --swarm rs --id rt3 --title "on feature" --body-file "$T_DIR/body" >/dev/null
"$S2" worker --json --wait 2 --agent ra --once --repo "$REPO" -- sh -c 'ls > listing; echo "$S2_GIT_BRANCH $S2_GIT_BASE"' >"$T_DIR/w.json" 2>>"$WLOG"
is "$(task rt3 result.output)" "s2/rt3 $FEATURE" "front matter base_ref: picks the base (S2_GIT_BASE)"
is "$(G rev-parse s2/rt3^)" "$FEATURE" "the commit's parent is that base"
contains "$(G show s2/rt3:listing)" "feature.txt" "the worktree was checked out from it"

"$S2" task add --swarm rs --id rt4 --title "bad base" --body-file - --max-attempts 1 >/dev/null <<'EOF'
---
base_ref: no-such-branch
---
EOF
"$S2" worker --json --wait 2 --agent ra --once --repo "$REPO" -- true >"$T_DIR/w.json" 2>>"$WLOG"
is "$(task rt4 state)" "dead" "an unknown base ref fails the task"
contains "$(task rt4 reason)" "base ref 'no-such-branch' is not in repository" "and the reason names it"

# ---- a failed attempt is kept; the retry starts afresh on the same branch ----
"$S2" task add --swarm rs --id rt5 --title "flaky" --backoff-ms 0 >/dev/null
cat >"$T_DIR/flaky.sh" <<'EOF'
ls > seen
if [ "$S2_ATTEMPT" = 1 ]; then echo "attempt 1 was here" > leftover; exit 3; fi
echo "second"
EOF
"$S2" worker --json --wait 2 --agent ra --once --repo "$REPO" -- sh -c "$(cat "$T_DIR/flaky.sh")" >"$T_DIR/w.json" 2>>"$WLOG"
kept=$(jq -r .worktree "$T_DIR/w.json")
is "$(task rt5 state)" "ready" "attempt 1 failed"
check "its worktree is kept for inspection" test -f "$kept/leftover"
contains "$(G worktree list)" "$kept" "and git knows it"
"$S2" worker --json --wait 2 --agent ra --once --repo "$REPO" -- sh -c "$(cat "$T_DIR/flaky.sh")" >"$T_DIR/w.json" 2>>"$WLOG"
is "$(task rt5 state)" "done" "attempt 2 succeeded"
case "$(G show s2/rt5:seen)" in *leftover*) not_ok "attempt 2 started from the base, not from attempt 1's files";; *) ok "attempt 2 started from the base, not from attempt 1's files";; esac
is "$(G rev-parse s2/rt5^)" "$MAIN" "the branch is attempt 2's commit on the base"
contains "$(G log -1 --format=%B s2/rt5)" "Attempt: 2" "naming attempt 2"
check "attempt 1's worktree is still there" test -f "$kept/leftover"
contains "$(G worktree list)" "detached" "detached from the branch the retry took"

# ---- kept worktrees are bounded ----
for i in 1 2 3; do "$S2" task add --swarm rs --id rf$i --title "fails" --max-attempts 1 >/dev/null; done
"$S2" worker --json --wait 2 --agent ra --max-tasks 3 --keep-failed 2 --repo "$REPO" -- sh -c 'echo x > f; exit 1' >"$T_DIR/w.json" 2>>"$WLOG"
is "$(task rf3 state)" "dead" "three attempts failed"
is "$(ls "$REPO/.git/s2-worktrees" | tr '\n' ' ')" "rf2-a1 rf3-a1 " "only the newest 2 failed worktrees are kept (--keep-failed 2), the oldest pruned"
is "$(cat "$REPO/.git/s2-worktrees/rf3-a1/f")" "x" "a kept worktree holds what the command left"
is "$(G worktree list | wc -l | tr -d ' ')" "3" "and git's records of the others are pruned"

# ---- the git directory is read-only inside, other worktrees out of view, .git tampering ----
"$S2" task add --swarm rs --id rt6 --title "tamper" >/dev/null
"$S2" worker --json --wait 2 --agent ra --once --repo "$REPO" -- sh -c '
    gd=$(sed -n "s/^gitdir: //p" .git); common=${gd%/worktrees/*}
    echo evil > "$common/refs/heads/main" 2>/dev/null && echo "WROTE-REF"
    git commit -q --allow-empty -m sneaky 2>/dev/null && echo "COMMITTED"
    ls "$common/s2-worktrees" 2>/dev/null | grep -q . && echo "SAW-OTHERS"
    echo "gitdir: /etc" > .git
    echo ok > work.txt; echo fine' >"$T_DIR/w.json" 2>>"$WLOG"
is "$(task rt6 result.output)" "fine" "writing the repository's refs, committing inside and listing other worktrees all fail"
is "$(G rev-parse main)" "$MAIN" "main is untouched"
is "$(G show s2/rt6:work.txt)" "ok" "a rewritten .git file does not stop the worker committing to the right place"
is "$(G show s2/rt6:.git 2>/dev/null | head -c 20)" "" "and the .git file is not committed"

if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$WLOG"; then
    not_ok "no sanitizer report in the worker log"
    grep -E -A12 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$WLOG" | head -40 | sed 's/^/# /'
fi
t_done
