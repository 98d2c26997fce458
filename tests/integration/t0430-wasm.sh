# t0430-wasm: `s2 worker --wasm MODULE.wasm`: a WASI module, built once with wasm2c and cc,
# runs per task in the same sandbox with the same limits. One that reads its task on stdin
# and writes its result succeeds; one that tries to create files outside its preopened
# directories is refused (and says so); one that loops forever is killed at the timeout;
# both are reported failed. The modules are built here from WebAssembly text (wat2wasm).
. tests/lib.sh

skip() { T_N=$((T_N + 1)); echo "ok $T_N # skip $*"; }
if ! command -v wat2wasm >/dev/null 2>&1 || ! command -v wasm2c >/dev/null 2>&1; then
    for i in $(seq 1 20); do skip "wat2wasm and wasm2c are not installed (Debian package wabt)"; done
    t_done
fi

W=$T_DIR/wasm
mkdir -p "$W"
# echo.wat: read the task (stdin) to the end, write it to /s2/result (fd 3, the /s2
# preopen) and to ./copy.json in the workspace (fd 4, "."), say "ok" on stdout.
cat >"$W/echo.wat" <<'EOF'
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 4)
  (data (i32.const 100) "result")
  (data (i32.const 110) "copy.json")
  (data (i32.const 120) "ok\n")
  ;; 0: an iovec, 16: a count, 20: an opened fd, 1024: the task text
  (func $write_all (param $fd i32) (param $len i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $len))
    (if (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16))
      (then (call $proc_exit (i32.const 3)))))
  (func $create (param $dir i32) (param $name i32) (param $len i32) (result i32)
    ;; oflags creat|trunc, rights fd_write
    (if (call $path_open (local.get $dir) (i32.const 0) (local.get $name) (local.get $len)
                         (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 20))
      (then (call $proc_exit (i32.const 2))))
    (i32.load (i32.const 20)))
  (func (export "_start") (local $len i32) (local $fd i32)
    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 200000) (local.get $len)))
        (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16))
          (then (call $proc_exit (i32.const 1))))
        (br_if $eof (i32.eqz (i32.load (i32.const 16))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 16))))
        (br $more)))
    (local.set $fd (call $create (i32.const 3) (i32.const 100) (i32.const 6)))
    (call $write_all (local.get $fd) (local.get $len))
    (drop (call $fd_close (local.get $fd)))
    (local.set $fd (call $create (i32.const 4) (i32.const 110) (i32.const 9)))
    (call $write_all (local.get $fd) (local.get $len))
    (drop (call $fd_close (local.get $fd)))
    (i32.store (i32.const 0) (i32.const 120))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))
)
EOF
# escape.wat: try to create escaped.txt outside the preopens: ../ from the workspace (fd
# 4), ../../ from /s2 (fd 3), an absolute path, and through a link out -> .. that it tries
# to make; exit 0 if any of them opened, 13 when all were refused.
cat >"$W/escape.wat" <<'EOF'
(module
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "../escaped.txt")
  (data (i32.const 200) "../../escaped.txt")
  (data (i32.const 300) "/escaped.txt")
  (data (i32.const 400) "..")
  (data (i32.const 410) "out")
  (data (i32.const 420) "out/escaped.txt")
  (func $try (param $dir i32) (param $p i32) (param $len i32)
    (if (i32.eqz (call $path_open (local.get $dir) (i32.const 1) (local.get $p) (local.get $len)
                         (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 0)))
      (then (call $proc_exit (i32.const 0)))))
  (func (export "_start")
    (call $try (i32.const 4) (i32.const 100) (i32.const 14))
    (call $try (i32.const 3) (i32.const 200) (i32.const 17))
    (call $try (i32.const 4) (i32.const 300) (i32.const 12))
    (drop (call $path_symlink (i32.const 400) (i32.const 2) (i32.const 4) (i32.const 410) (i32.const 3)))
    (call $try (i32.const 4) (i32.const 420) (i32.const 15))
    (call $proc_exit (i32.const 13)))
)
EOF
# spin.wat: loop forever (no WASI import, no memory: the host builds without them too)
cat >"$W/spin.wat" <<'EOF'
(module
  (func (export "_start") (loop $forever (br $forever))))
EOF
for m in echo escape spin; do
    check "wat2wasm $m.wat" wat2wasm "$W/$m.wat" -o "$W/$m.wasm"
done

"$S2" worker --check --json >"$T_DIR/check.json" 2>/dev/null
STRICT=$(jq -r .sandbox.strict "$T_DIR/check.json")
MODE=strict
[ "$STRICT" = true ] || MODE=none
note "sandbox: $MODE"

s2_start
"$S2" swarm add ws >/dev/null
"$S2" agent add wa --swarm ws --max-leases 2 >/dev/null
expect_http 200 "policy: no breaker trips in this test" PUT /v1/policy '{"breaker_failures":100}'
WLOG=$T_DIR/worker.log
task() { "$S2" task show "$1" --json | jq -r ".task.$2"; }
worker() { "$S2" worker --json --wait 2 --agent wa --sandbox "$MODE" "$@" >"$T_DIR/w.json" 2>>"$WLOG"; }

# ---- refused before any task is taken ----
echo "not wasm" >"$W/bad.wasm"
"$S2" worker --agent wa --once --wasm "$W/bad.wasm" >/dev/null 2>"$T_DIR/bad.err"
is "$?" "1" "a file that is not a module is refused"
contains "$(cat "$T_DIR/bad.err")" "is not a WebAssembly module" "and the message says so"
mkdir -p "$T_DIR/bin" && ln -s "$(command -v sh)" "$T_DIR/bin/sh"
PATH=$T_DIR/bin "$S2" worker --agent wa --once --wasm "$W/echo.wasm" >/dev/null 2>"$T_DIR/nowabt.err"
is "$?" "1" "without wasm2c the worker does not start"
contains "$(cat "$T_DIR/nowabt.err")" "needs 'wasm2c' (Debian package wabt)" "and names the package to install"
is "$("$S2" task list --swarm ws --json | jq '.tasks | length')" "0" "no task was taken meanwhile"

# ---- a module that works ----
"$S2" task add --swarm ws --id w1 --title "echo one" --body "first body" >/dev/null
"$S2" task add --swarm ws --id w2 --title "echo two" --body "second body" >/dev/null
worker --concurrency 2 --max-tasks 2 --keep --workdir "$T_DIR/wd" --wasm "$W/echo.wasm"
is "$?" "0" "the worker ran two tasks with the module"
is "$(task w1 state)/$(task w2 state)" "done/done" "both are done"
is "$(task w1 result.id)" "w1" "the result is what the module wrote to /s2/result: its task, read on stdin"
is "$(task w2 result.body)" "second body" "each task got its own stdin"
cp1=$(find "$T_DIR/wd" -path '*w1/ws/copy.json' | head -1)
check "the module wrote copy.json in its workspace (the preopened .)" test -s "$cp1"
is "$(jq -r .id "$cp1" 2>/dev/null)" "w1" "with the task in it"
contains "$(cat "$WLOG")" "built in" "the module was built once, at start"

# ---- a module that tries to write outside its directories ----
"$S2" task add --swarm ws --id esc --title "escape" --max-attempts 1 >/dev/null
worker --once --keep --workdir "$T_DIR/wd2" --wasm "$W/escape.wasm"
is "$(task esc state)" "dead" "a module that tries to leave its directories fails"
contains "$(task esc reason)" "exit status 13" "every attempt was refused (the module's own verdict)"
contains "$(task esc reason)" "wasi: denied: '../escaped.txt' leads outside the preopened directory '.'" "the reason names the refused path"
contains "$(task esc reason)" "wasi: denied: '..'" "a link leading out is refused too"
is "$(find "$T_DIR" -name escaped.txt | wc -l | tr -d ' ')" "0" "no escaped.txt anywhere"
check_fails "and no link out was made" sh -c "find '$T_DIR/wd2' -name out | grep -q ."

# ---- a module that never ends ----
"$S2" task add --swarm ws --id spin --title "spin" --max-attempts 1 >/dev/null
start=$(date +%s)
worker --once --timeout 2 --wasm "$W/spin.wasm"
took=$(($(date +%s) - start))
is "$(task spin state)" "dead" "a module that loops forever is killed"
contains "$(task spin reason)" "timed out after 2 s" "and reported as a timeout"
[ "$took" -lt 20 ] && ok "within the timeout and its grace, build included (${took}s)" || not_ok "killed late (${took}s)"

if grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$WLOG"; then
    not_ok "no sanitizer report in the worker log"
    grep -E -A12 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$WLOG" | head -40 | sed 's/^/# /'
fi
t_done
