#!/usr/bin/env bash
# Counts the instructions the frame receiver spends on ReceiveDriver's workload (100,000
# frames in 16 KiB reads and in 61-byte reads) with callgrind; prints the instructions spent inside receiveAll per read size.
#
#   Tests/fuzz/bench/callgrind.sh        (needs valgrind; SWIFTC overrides swiftc)
#
# -wmo as SwiftPM release builds (cross-file inlining).
# SOURCES=dir measures another checkout's Sources/ (e.g. `git archive` of the commit before).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${BENCH_OUT:-/tmp/wss-callgrind}
mkdir -p "$OUT"
includes=()
for m in "$ROOT"/Sources/C*/module.modulemap; do includes+=(-I "$(dirname "$m")"); done
# shellcheck disable=SC2086
cd "$OUT"  # swiftc -wmo leaves module files in the working directory
"${SWIFTC:-swiftc}" -O -wmo -g -parse-as-library -package-name wss_server -module-name ReceiveBench "${includes[@]}" \
    "${SOURCES:-$ROOT/Sources}"/WebSocket/*/*.swift "$HERE/ReceiveDriver.swift" -lssl -lcrypto -lz -o "$OUT/receive-driver"
for size in 16384 61; do
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$size.out" --toggle-collect='*receiveAll*' \
        "$OUT/receive-driver" "$size" >/dev/null 2>"$OUT/valgrind.$size.log"
    ir=$(grep -E "^summary:|^totals:" "$OUT/callgrind.$size.out" | head -1 | awk '{print $2}')
    echo "reads of $size bytes: $ir instructions for 100,000 frames ($((ir / 100000)) per frame)"
done
