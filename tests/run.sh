#!/bin/sh
# run.sh (make test): every unit test and integration test, first on the normal build, then
# on the ASan+UBSan build. Each test speaks TAP ("ok N - what" / "not ok N - what"); this
# script counts them and ends with the line "N passed, N failed".
#   tests/run.sh [--long] [--only PATTERN] [--fast]   (--fast: skip the sanitizer pass)
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
only="" long=0 fast=0
while [ $# -gt 0 ]; do
    case $1 in
    --long) long=1 ;;
    --fast) fast=1 ;;
    --only) only=$2; shift ;;
    *) echo "usage: tests/run.sh [--long] [--fast] [--only PATTERN]" >&2; exit 2 ;;
    esac
    shift
done
out=$top/tests/out
rm -f "$out"/*.log # test dirs of other runs (and of failures to look at) stay
mkdir -p "$out"
passed=0 failed=0
failures=""

# run_one LABEL LOGFILE CMD...: run a TAP producer, count its lines, show failures.
run_one() {
    label=$1 log=$2
    shift 2
    start=$(date +%s)
    "$@" >"$log" 2>&1
    rc=$?
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # died without saying which check failed
        echo "not ok - $label exited with status $rc" >>"$log"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    secs=$(($(date +%s) - start))
    if [ "$f" -gt 0 ]; then
        printf 'FAIL %-50s %4d ok %3d failed %4ds  (%s)\n' "$label" "$p" "$f" "$secs" "$log"
        grep -E '^not ok|^# ' "$log" | head -20 | sed 's/^/    /'
        failures="$failures $label"
    else
        printf 'pass %-50s %4d ok %4ds\n' "$label" "$p" "$secs"
    fi
}

run_build() { # run_build BUILD_DIR S2_BINARY SUFFIX
    bdir=$1 bin=$2 sfx=$3
    for t in "$bdir"/tests/test_*; do
        [ -x "$t" ] || continue
        name=unit/$(basename "$t")$sfx
        case $name in *"$only"*) ;; *) continue ;; esac
        CMOCKA_MESSAGE_OUTPUT=TAP run_one "$name" "$out/$(basename "$t")$sfx.log" "$t"
    done
    for t in tests/integration/t*.sh; do
        [ -f "$t" ] || continue
        name=integration/$(basename "$t" .sh)$sfx
        case $name in *"$only"*) ;; *) continue ;; esac
        S2="$top/$bin" S2_BUILD="$top/$bdir" S2_LONG=$long S2_TEST_OUT="$out" \
            run_one "$name" "$out/$(basename "$t" .sh)$sfx.log" sh "$t"
    done
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_build build s2 ""
if [ "$fast" = 0 ] && [ -x build-asan/s2 ]; then
    run_build build-asan build-asan/s2 " [asan]"
fi
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
