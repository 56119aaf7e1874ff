#!/usr/bin/env bash
# Autobahn 12.* and 13.* (permessage-deflate) over ws in two halves at once, each with its own
# server and wstest (run.sh), reports in <reports>/deflate-a/ws and <reports>/deflate-b/ws.
# The Python 2 client is the bottleneck (one core, ~20 min for all 216 cases in one process),
# so two processes on two cores take about half as long. The halves are balanced by the
# measured case times (12.1-12.4 + 13.1: ~620 s; 12.5 + 13.2-13.7: ~600 s, 2026-12-03).
#
#   Tests/conformance/deflate.sh      (WSS_SERVER, AUTOBAHN_VENV, CONFORMANCE_REPORTS as run.sh)
#
# Exits non-zero if either half does; prints both halves' output, one after the other.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
REPORTS="${CONFORMANCE_REPORTS:-$REPO/reports}"
mkdir -p "$REPORTS" || { echo "conformance: error: cannot create '$REPORTS'" >&2; exit 2; }

HALF_A="12.1.* 12.2.* 12.3.* 12.4.* 13.1.*"
HALF_B="12.5.* 13.2.* 13.3.* 13.4.* 13.5.* 13.6.* 13.7.*"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; exit 130' INT TERM
CONFORMANCE_REPORTS="$REPORTS/deflate-a" "$HERE/run.sh" --cases "$HALF_A" --transport ws >"$REPORTS/deflate-a.log" 2>&1 &
pids+=($!)
CONFORMANCE_REPORTS="$REPORTS/deflate-b" "$HERE/run.sh" --cases "$HALF_B" --transport ws >"$REPORTS/deflate-b.log" 2>&1 &
pids+=($!)

status=0
wait "${pids[0]}" || status=1
wait "${pids[1]}" || status=1
for half in a b; do
    echo "--- deflate half $half"
    cat "$REPORTS/deflate-$half.log"
done
# Every case of both sections ran (a pattern that matched nothing would pass quietly).
ran=$(cat "$REPORTS"/deflate-[ab].log | sed -n 's/^ws: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' | awk '{s += $1 + $2} END {print s + 0}')
if [ "$ran" -ne 216 ]; then
    echo "conformance-deflate: $ran cases ran, expected 216 (90 in 12.*, 126 in 13.*)"
    status=1
fi
[ "$status" -eq 0 ] && echo "conformance-deflate: both halves passed" || echo "conformance-deflate: FAILED (see above)"
exit "$status"
