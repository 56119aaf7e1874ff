#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against wss-server (--app echo).
#
#   Tests/conformance/run.sh [--cases "1.* 2.* ..."] [--transport ws|wss|both] [--timeout SECONDS]
#
# Environment:
#   WSS_SERVER           server binary (default <repo>/.build/release/wss-server; not built here)
#   AUTOBAHN_VENV        venv made by setup.sh (default $HOME/.cache/wss-server/autobahn-venv)
#   CONFORMANCE_REPORTS  reports folder (default <repo>/reports); results in <reports>/<transport>/
#
# Exits non-zero if any case is not OK/INFORMATIONAL, or if anything fails to run.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

CASES="1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.*"
TRANSPORT="ws"
TIMEOUT=""

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
die() { echo "conformance: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --cases) [ $# -ge 2 ] || die "--cases needs a value"; CASES="$2"; shift 2 ;;
        --cases=*) CASES="${1#*=}"; shift ;;
        --transport) [ $# -ge 2 ] || die "--transport needs a value"; TRANSPORT="$2"; shift 2 ;;
        --transport=*) TRANSPORT="${1#*=}"; shift ;;
        --timeout) [ $# -ge 2 ] || die "--timeout needs a value"; TIMEOUT="$2"; shift 2 ;;
        --timeout=*) TIMEOUT="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

case "$TRANSPORT" in
    ws) TRANSPORTS=(ws) ;;
    wss) TRANSPORTS=(wss) ;;
    both) TRANSPORTS=(ws wss) ;;
    *) die "--transport must be ws, wss or both (got '$TRANSPORT')" ;;
esac
[ -n "$(echo $CASES)" ] || die "--cases is empty"
if [ -z "$TIMEOUT" ]; then
    # 12.* / 13.* (permessage-deflate) take ~7 min each with the Python 2 client.
    TIMEOUT=600
    for c in $CASES; do
        case "$c" in 12*|13*|\*) TIMEOUT=2400 ;; esac
    done
fi
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -gt 0 ] || die "--timeout must be a positive integer (got '$TIMEOUT')"

SERVER="${WSS_SERVER:-$REPO/.build/release/wss-server}"
VENV="${AUTOBAHN_VENV:-${HOME:-/root}/.cache/wss-server/autobahn-venv}"
WSTEST="$VENV/bin/wstest"
REPORTS="${CONFORMANCE_REPORTS:-$REPO/reports}"

[ -x "$SERVER" ] || die "server binary '$SERVER' not found or not executable (build it: swift build -c release, or set WSS_SERVER)"
[ -x "$WSTEST" ] || die "'$WSTEST' not found; run Tests/conformance/setup.sh first (or set AUTOBAHN_VENV)"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
command -v timeout >/dev/null 2>&1 || die "'timeout' (coreutils) not found"

mkdir -p "$REPORTS" || die "cannot create reports folder '$REPORTS'"
REPORTS="$(cd "$REPORTS" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/wss-conformance.XXXXXX")" || die "mktemp failed"

SERVER_PID=""
stop_server() {
    local pid="$SERVER_PID" i
    SERVER_PID=""
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}
WSTEST_PID=""
cleanup() {
    if [ -n "$WSTEST_PID" ]; then      # the `timeout` process; it passes the signal on to wstest
        kill -TERM "$WSTEST_PID" 2>/dev/null
        wait "$WSTEST_PID" 2>/dev/null
        WSTEST_PID=""
    fi
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "conformance: interrupted" >&2; exit 130' INT TERM

TOTAL_PASSED=0
TOTAL_FAILED=0
ERRORS=()

# run_transport ws|wss -> 0 if every case is OK/INFORMATIONAL
run_transport() {
    local t="$1" out="$WORK/server-$t.out" err="$WORK/server-$t.err"
    local args=(--app echo --host 127.0.0.1 --port 0 --max-message-size 16777216)
    local outdir="$REPORTS/$t" port="" i line

    echo "== conformance over $t: cases $CASES (timeout ${TIMEOUT}s)"
    rm -rf "$outdir"
    mkdir -p "$outdir"

    if [ "$t" = wss ]; then
        local gen="$REPO/certs/generate.sh"
        [ -f "$gen" ] || { ERRORS+=("$t: $gen is missing; cannot generate certificates for wss"); return 1; }
        if ! bash "$gen" "$WORK/certs" >"$WORK/certs.log" 2>&1; then
            cat "$WORK/certs.log" >&2
            ERRORS+=("$t: $gen $WORK/certs failed"); return 1
        fi
        [ -f "$WORK/certs/cert.pem" ] && [ -f "$WORK/certs/key.pem" ] \
            || { ERRORS+=("$t: $gen did not write cert.pem and key.pem"); return 1; }
        args+=(--cert "$WORK/certs/cert.pem" --key "$WORK/certs/key.pem")
    fi

    "$SERVER" "${args[@]}" >"$out" 2>"$err" </dev/null &
    SERVER_PID=$!
    for i in $(seq 1 300); do            # up to 30 s for the "listening on" line
        line="$(grep -m1 -E '^listening on wss?://' "$out" 2>/dev/null || true)"
        if [ -n "$line" ]; then
            port="$(printf '%s\n' "$line" | sed -nE 's#^listening on wss?://(\[[^]]*\]|[^:/]*):([0-9]+).*#\2#p')"
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "--- server stdout:" >&2; tail -n 20 "$out" >&2
        echo "--- server stderr:" >&2; tail -n 20 "$err" >&2
        stop_server
        ERRORS+=("$t: server did not print 'listening on $t://127.0.0.1:PORT' (cmd: $SERVER ${args[*]})")
        return 1
    fi
    local url="$t://127.0.0.1:$port"
    echo "server: $line (pid $SERVER_PID)"

    python3 - "$WORK/spec-$t.json" "$outdir" "$url" "$CASES" <<'PY' || { stop_server; ERRORS+=("$t: cannot write spec.json"); return 1; }
import json, sys
path, outdir, url, cases = sys.argv[1:5]
spec = {"outdir": outdir,
        "servers": [{"agent": "wss-server", "url": url}],
        "cases": cases.split(), "exclude-cases": [], "exclude-agent-cases": {}}
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
PY

    local start=$SECONDS rc
    # In the background + wait, so that a signal to this script is handled at once (see trap).
    (cd "$WORK" && PYTHONWARNINGS=ignore exec timeout -k 10 "$TIMEOUT" \
        "$WSTEST" -m fuzzingclient -s "spec-$t.json") >"$outdir/wstest.log" 2>&1 </dev/null &
    WSTEST_PID=$!
    wait "$WSTEST_PID"
    rc=$?
    WSTEST_PID=""
    echo "wstest over $t: exit $rc after $((SECONDS - start)) s (log: $outdir/wstest.log)"

    local alive=1
    kill -0 "$SERVER_PID" 2>/dev/null || alive=0
    stop_server
    cp "$err" "$outdir/server.log" 2>/dev/null

    local bad=0
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        ERRORS+=("$t: wstest timed out after ${TIMEOUT}s (raise --timeout)"); bad=1
    elif [ $rc -ne 0 ]; then
        tail -n 20 "$outdir/wstest.log" >&2
        ERRORS+=("$t: wstest exited with status $rc"); bad=1
    fi
    if [ $alive -eq 0 ]; then
        echo "--- server stderr (last lines):" >&2; tail -n 20 "$err" >&2
        ERRORS+=("$t: the server exited during the run"); bad=1
    fi
    if [ ! -f "$outdir/index.json" ]; then
        ERRORS+=("$t: no report written ($outdir/index.json missing)")
        return 1
    fi

    local counts="$WORK/counts-$t"
    python3 "$HERE/summarize.py" --label "$t" --counts "$counts" "$outdir/index.json"
    local src=$?
    if [ -f "$counts" ]; then
        read -r p f <"$counts"
        TOTAL_PASSED=$((TOTAL_PASSED + p))
        TOTAL_FAILED=$((TOTAL_FAILED + f))
    fi
    echo "report: $outdir/index.html"
    if [ $src -ne 0 ]; then
        ERRORS+=("$t: cases not OK/INFORMATIONAL (or no cases found) — see above"); bad=1
    fi
    return $bad
}

status=0
for t in "${TRANSPORTS[@]}"; do
    run_transport "$t" || status=1
    echo
done

if [ ${#ERRORS[@]} -gt 0 ]; then
    status=1
    for e in "${ERRORS[@]}"; do echo "conformance: FAIL: $e"; done
fi
echo "conformance: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
exit $status
