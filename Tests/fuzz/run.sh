#!/usr/bin/env bash
# Builds the libFuzzer targets for the WebSocket protocol core and runs each for SECONDS.
#
#   Tests/fuzz/run.sh [SECONDS]      (default 60 per target; 0 = only build and replay)
#
# Environment: FUZZ_OUT (scratch dir, default /tmp/wss-fuzz), FUZZ_TARGETS (subset, e.g. "frames"),
# SWIFTC (default swiftc), FUZZ_SWIFTFLAGS (extra swiftc flags), FUZZ_JOBS (libFuzzer -jobs/-workers per target, default 1).
#
# Per target: replays Tests/fuzz/crashers/<target>/* (regressions) and the seed corpus, then
# fuzzes a scratch copy of the seed corpus. A new crash is copied to Tests/fuzz/crashers/<target>/.
# Exits non-zero if any target crashed (or failed to build).
set -uo pipefail

SECONDS_PER_TARGET=${1:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${FUZZ_OUT:-/tmp/wss-fuzz}
SWIFTC=${SWIFTC:-swiftc}
TARGETS=${FUZZ_TARGETS:-"http handshake frames tls"}
JOBS=${FUZZ_JOBS:-1}

# The Swift runtime's crash backtracer fights ASan and libFuzzer over the crash; let them report.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}

source_for() {
    case $1 in
        http) echo FuzzHTTPHead.swift ;;
        handshake) echo FuzzHandshake.swift ;;
        frames) echo FuzzFrames.swift ;;
        tls) echo FuzzTLSRecords.swift ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

# The library sources compiled with a target: the WebSocket core, or the TLS record layer
# (self-contained apart from OpenSSL).
module_sources() {
    case $1 in
        tls) echo "$ROOT"/Sources/Transport/TLS/TLS13*.swift "$ROOT/Sources/Transport/TLS/TLSRecordError.swift" ;;
        *) echo "$ROOT"/Sources/WebSocket/*/*.swift ;;
    esac
}

mkdir -p "$OUT"
status=0
# Every C system module under Sources/ (COpenSSL, CZlib, ...) on the include path; the
# WebSocket module imports some of them.
includes=()
for m in "$ROOT"/Sources/C*/module.modulemap; do includes+=(-I "$(dirname "$m")"); done
declare -A RESULT

for t in $TARGETS; do
    src=$(source_for "$t") || { status=1; continue; }
    bin="$OUT/fuzz-$t"
    log="$OUT/$t.log"
    echo "== $t: building $bin"
    # One module: the library sources plus the target, so no `import WebSocket` is needed.
    # shellcheck disable=SC2086,SC2046
    # -package-name: the core uses `package` access (as SwiftPM builds it).
    if ! "$SWIFTC" ${FUZZ_SWIFTFLAGS:-} -O -g -sanitize=fuzzer,address -use-ld=lld -parse-as-library -package-name wss_server \
            -module-name WebSocketFuzz "${includes[@]}" \
            $(module_sources "$t") "$HERE/$src" -lssl -lcrypto -lz -o "$bin" >"$OUT/$t.build.log" 2>&1; then
        cat "$OUT/$t.build.log"
        RESULT[$t]="BUILD FAILED"
        status=1
        continue
    fi

    dict=()
    [ -f "$HERE/$t.dict" ] && dict=(-dict="$HERE/$t.dict")

    # 1. Regressions and seeds: libFuzzer runs the files given as arguments once each.
    replay=()
    [ -d "$HERE/crashers/$t" ] && replay+=("$HERE/crashers/$t"/*)
    replay+=("$HERE/corpus/$t"/*)
    replay=("${replay[@]}")
    existing=()
    for f in "${replay[@]}"; do [ -f "$f" ] && existing+=("$f"); done
    echo "== $t: replaying ${#existing[@]} regression/seed inputs"
    if ! "$bin" -timeout=5 -rss_limit_mb=2048 "${existing[@]}" >"$OUT/$t.replay.log" 2>&1; then
        grep -E "ORACLE|ERROR: AddressSanitizer|Fatal error|Running:|deadly signal|timeout" "$OUT/$t.replay.log" | tail -20
        RESULT[$t]="FAILED on a regression/seed input (see $OUT/$t.replay.log)"
        status=1
        continue
    fi

    if [ "$SECONDS_PER_TARGET" -le 0 ]; then
        RESULT[$t]="replayed ${#existing[@]} inputs, OK"
        continue
    fi

    # 2. Fuzz a scratch copy of the seed corpus (the repo corpus stays small).
    work="$OUT/corpus-$t"
    artifacts="$OUT/artifacts-$t/"
    rm -rf "$artifacts"
    mkdir -p "$work" "$artifacts"
    cp -n "$HERE/corpus/$t"/* "$work"/ 2>/dev/null || true
    echo "== $t: fuzzing for ${SECONDS_PER_TARGET}s (log $log)"
    par=()
    [ "$JOBS" -gt 1 ] && par=(-jobs="$JOBS" -workers="$JOBS")
    # FUZZ_RUNS (with FUZZ_SEED, default 1) makes a run reproducible: the same inputs every
    # time, so CI only fails on what a developer can replay. The time bound still applies.
    budget=(-max_total_time="$SECONDS_PER_TARGET")
    [ -n "${FUZZ_RUNS:-}" ] && budget+=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}")
    "$bin" "$work" "${dict[@]}" "${par[@]}" "${budget[@]}" -timeout=5 \
        -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1
    rc=$?
    crashes=("$artifacts"*)
    if [ $rc -ne 0 ] || [ -e "${crashes[0]}" ]; then
        mkdir -p "$HERE/crashers/$t"
        for c in "${crashes[@]}"; do [ -e "$c" ] && cp "$c" "$HERE/crashers/$t/"; done
        grep -E "ORACLE|ERROR: AddressSanitizer|Fatal error|deadly signal|Test unit written" "$log" | head -20
        RESULT[$t]="CRASH (rc=$rc), inputs copied to Tests/fuzz/crashers/$t/, log $log"
        status=1
    else
        stats=$(grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec" "$log" | awk '{print $2}' | paste -sd' ')
        last=$(grep -E "^#[0-9]+" "$log" | tail -1 | grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [0-9]+" || true)
        set -- $stats
        RESULT[$t]="OK: ${1:-?} runs, ${2:-?} exec/s, $last"
    fi
done

echo
for t in $TARGETS; do echo "fuzz $t: ${RESULT[$t]:-not run}"; done
exit $status
