#!/usr/bin/env bash
# Side-by-side benchmark against uWebSockets (called by `make bench-peers`; CI does not run it).
#
# Builds uWebSockets' echo servers from ../shared/peers/uws (into .build-uws/, git-ignored; only
# when missing or older than the peer's build script / echo program), builds our release binary,
# starts five servers pinned to core 0 — wss-server ws, wss-server wss, uWS echo_ws, uWS echo_wss,
# tools/tcpecho — and drives them from core 1, ours and uWebSockets alternately (the order flips
# every repetition), with both clients (wss-bench and tools/wsload):
#   echo 64 B text ×100 conns depth 1 and depth 16, 1 MiB binary ×4 conns depth 1 (ws and wss);
#   tcpecho under wsload for the 64 B scenarios (the syscall ceiling, in the same repetition), and
#   uring-echo (Tests/bench/uring-echo: the same raw echo on io_uring) beside it;
#   handshakes (connect + TLS + upgrade + close, 32 at once) with both clients;
#   RSS per idle connection (wsload --idle, fresh servers);
#   `openssl speed -evp aes-128-gcm` on core 0 (the AES-GCM limit for 1 MiB wss).
# Then Tests/bench/peers_table.py prints issue 16's table from the medians, with every ratio.
#
# Server CPU is what each client reads from /proc/PID/stat (utime + stime) at the start and the
# end of its measured window; efficiency = messages (MiB, handshakes) per server CPU-second.
#
# Environment: PEERS_QUICK=1 (1 repetition of 1 s, 0.5 s warmup, 1,000 idle connections: a smoke
# test of every row), PEERS_REPS (default 3), PEERS_SECONDS (2), PEERS_WARMUP (1),
# PEERS_IDLE_CONNS (10000), PEERS_UWS (folder with build.sh, echo.cpp and src/),
# PEERS_TOOLS (folder with wsload/ and tcpecho/), PEERS_ONLY (comma list of groups: echo,
# handshakes, idle, aes; default all). Kills only the processes it started.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if [[ "${PEERS_QUICK:-0}" == 1 ]]; then
    REPS="${PEERS_REPS:-1}" SECS="${PEERS_SECONDS:-1}" WARM="${PEERS_WARMUP:-0.5}" IDLE="${PEERS_IDLE_CONNS:-1000}"
else
    REPS="${PEERS_REPS:-3}" SECS="${PEERS_SECONDS:-2}" WARM="${PEERS_WARMUP:-1}" IDLE="${PEERS_IDLE_CONNS:-10000}"
fi
ONLY="${PEERS_ONLY:-echo,handshakes,idle,aes}"
SERVER="$ROOT/.build/release/wss-server"
BENCH="$ROOT/.build/release/wss-bench"
UWS_OUT="$ROOT/.build-uws"

BENCH_NAME=bench-peers
# shellcheck source=Tests/bench/common.sh
source "$ROOT/Tests/bench/common.sh"
for g in ${ONLY//,/ }; do
    case "$g" in echo|handshakes|idle|aes) ;; *) die "PEERS_ONLY: unknown group '$g' (echo, handshakes, idle, aes)";; esac
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "PEERS_REPS must be a positive integer, not '$REPS'"

# first_dir SUFFIX CANDIDATES… → the first candidate folder holding SUFFIX
first_dir() {
    local suffix="$1" d; shift
    for d in "$@"; do [[ -n "$d" && -e "$d/$suffix" ]] && { (cd "$d" && pwd); return 0; }; done
    return 1
}
PEERS="$(first_dir build.sh "${PEERS_UWS:-}" "$ROOT/../shared/peers/uws" "$ROOT/../../shared/peers/uws")" \
    || die "no uWebSockets peer folder (set PEERS_UWS to the folder with build.sh, echo.cpp and src/)"
TOOLS="$(first_dir wsload/wsload.c "${PEERS_TOOLS:-}" "$ROOT/../shared/tools" "$ROOT/../../shared/tools")" \
    || die "no tools folder with wsload/ and tcpecho/ (set PEERS_TOOLS)"

RESULTS="$SCRATCH/results.tsv"
: >"$RESULTS"
FAILED=0
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $((IDLE + 200)) ]]; then
    IDLE=$(( $(ulimit -n) - 200 ))
    say "bench-peers: ulimit -n is $(ulimit -n): idle runs use $IDLE connections"
fi

# ---- builds -----------------------------------------------------------------------------------
if [[ ! -x "$UWS_OUT/echo_ws" || ! -x "$UWS_OUT/echo_wss" || "$PEERS/build.sh" -nt "$UWS_OUT/echo_ws" \
      || "$PEERS/echo.cpp" -nt "$UWS_OUT/echo_ws" ]]; then
    say "bench-peers: building uWebSockets from $PEERS into $UWS_OUT…"
    UWS_COMMIT=66dcff3 US_COMMIT=86097c4 "$PEERS/build.sh" "$PEERS/src/uWebSockets" "$PEERS/src/uSockets" "$UWS_OUT" \
        >"$SCRATCH/uws-build.log" 2>&1 || { tail -20 "$SCRATCH/uws-build.log" >&2; die "uWebSockets build failed"; }
fi
say "bench-peers: building release…"
swift build -c release >"$SCRATCH/build.log" 2>&1 || { tail -30 "$SCRATCH/build.log" >&2; die "swift build failed"; }
URING_ECHO="$ROOT/.build/release/uring-echo"
[[ -x "$SERVER" && -x "$BENCH" && -x "$URING_ECHO" ]] || die "missing $SERVER, $BENCH or $URING_ECHO after the build"
gcc -O2 -o "$SCRATCH/wsload" "$TOOLS/wsload/wsload.c" -lssl -lcrypto -lpthread 2>"$SCRATCH/gcc.log" \
    || { cat "$SCRATCH/gcc.log" >&2; die "could not build wsload"; }
gcc -O2 -o "$SCRATCH/tcpecho" "$TOOLS/tcpecho/tcpecho.c" 2>>"$SCRATCH/gcc.log" \
    || { cat "$SCRATCH/gcc.log" >&2; die "could not build tcpecho"; }
"$ROOT/certs/generate.sh" "$SCRATCH/certs" >/dev/null 2>&1 || die "certs/generate.sh failed"
CERT="$SCRATCH/certs/cert.pem" KEY="$SCRATCH/certs/key.pem" CA="$SCRATCH/certs/ca.pem"

# ---- servers ----------------------------------------------------------------------------------
# wait_for LOG PATTERN PID → 0 once PATTERN is in LOG, 1 if PID died or 10 s passed
wait_for() {
    local i
    for i in $(seq 200); do
        grep -q "$2" "$1" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_ours NAME ws|wss [default-log] → SRV_PID, SRV_PORT. Logging: --log-level warning (which
# also turns the stderr access log off), or with default-log the default: info and the access
# log on stderr, which goes to the server's log file like the rest (every WebSocket then holds
# its access-log entry until it closes: what the second idle row measures).
start_ours() {
    local log="$SCRATCH/$1.log" tls=() logging=(--log-level warning)
    [[ "$2" == wss ]] && tls=(--cert "$CERT" --key "$KEY")
    [[ "${3:-}" == default-log ]] && logging=()
    : >"$log"
    "${PIN_SERVER[@]}" "$SERVER" --app echo --threads 1 --host 127.0.0.1 --port 0 --no-deflate \
        "${logging[@]}" "${tls[@]}" >"$log" 2>&1 &
    SRV_PID=$!; PIDS+=("$SRV_PID")
    wait_for "$log" "listening on" "$SRV_PID" || { cat "$log" >&2; die "wss-server ($1) did not start"; }
    SRV_PORT="$(grep -o 'listening on [a-z]*://[^ ]*' "$log" | head -1 | sed -E 's#.*:([0-9]+)/?.*#\1#')"
    [[ "$SRV_PORT" =~ ^[0-9]+$ ]] || { cat "$log" >&2; die "no port from wss-server ($1)"; }
}

# start_peer NAME ws|wss|tcp → SRV_PID, SRV_PORT (a free port found now; retried if taken meanwhile)
start_peer() {
    local log="$SCRATCH/$1.log" try cmd pattern
    for try in 1 2 3 4 5; do
        SRV_PORT="$(free_port)"
        case "$2" in
            ws)  cmd=("$UWS_OUT/echo_ws" "$SRV_PORT"); pattern=READY ;;
            wss) cmd=("$UWS_OUT/echo_wss" "$SRV_PORT" "$KEY" "$CERT"); pattern=READY ;;
            tcp) cmd=("$SCRATCH/tcpecho" "$SRV_PORT"); pattern=listening ;;
            uring) cmd=("$URING_ECHO" "$SRV_PORT"); pattern=listening ;;
        esac
        : >"$log"
        "${PIN_SERVER[@]}" "${cmd[@]}" >"$log" 2>&1 &
        SRV_PID=$!; PIDS+=("$SRV_PID")
        wait_for "$log" "$pattern" "$SRV_PID" && return 0
        kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null
    done
    cat "$log" >&2; die "$1 did not start"
}

declare -A PID_OF URL_OF
# start_all → the five servers of the echo and handshake groups
start_all() {
    start_ours ours-ws ws;   PID_OF[ours|ws]=$SRV_PID;  URL_OF[ours|ws]="ws://127.0.0.1:$SRV_PORT/"
    start_ours ours-wss wss; PID_OF[ours|wss]=$SRV_PID; URL_OF[ours|wss]="wss://127.0.0.1:$SRV_PORT/"
    start_peer uws-ws ws;    PID_OF[uws|ws]=$SRV_PID;   URL_OF[uws|ws]="ws://127.0.0.1:$SRV_PORT/"
    start_peer uws-wss wss;  PID_OF[uws|wss]=$SRV_PID;  URL_OF[uws|wss]="wss://127.0.0.1:$SRV_PORT/"
    start_peer tcpecho tcp;  PID_OF[tcp|tcp]=$SRV_PID;  URL_OF[tcp|tcp]="tcp://127.0.0.1:$SRV_PORT"
    # The io_uring raw echo, when this kernel allows io_uring (it says why not and exits 1).
    if ! "$URING_ECHO" --probe >"$SCRATCH/uring-probe.log" 2>&1; then
        say "bench-peers: $(cat "$SCRATCH/uring-probe.log"): no uring-echo row"
    else
        start_peer uring-echo uring; PID_OF[uring|tcp]=$SRV_PID; URL_OF[uring|tcp]="tcp://127.0.0.1:$SRV_PORT"
    fi
}

# ---- runs -------------------------------------------------------------------------------------
# cpu_ticks PID → "UTIME STIME" (clock ticks, every thread; fields 14 and 15 of /proc/PID/stat,
# counted after the command name, which may hold spaces)
cpu_ticks() { sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12, $13 }'; }
# sys_share "U0 S0" "U1 S1" → the kernel's share of the CPU between the two readings (whole run,
# warmup included), or nan
sys_share() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); u = y[1] - x[1]; s = y[2] - x[2]
        if (u + s > 0) printf "%.3f", s / (u + s); else print "nan" }'
}

# run SCENARIO CLIENT TRANSPORT SERVER REP ARGS… → appends one line to results.tsv
run() {
    local scen="$1" client="$2" tr="$3" srv="$4" rep="$5"; shift 5
    local pid="${PID_OF[$srv|$tr]}" url="${URL_OF[$srv|$tr]}" bin prefix extra=() log="$SCRATCH/run.log"
    if [[ "$client" == wsload ]]; then bin="$SCRATCH/wsload"; prefix="wsload:"
    else bin="$BENCH"; prefix="RESULT"; [[ "$tr" == wss ]] && extra=(--ca "$CA"); fi
    say "bench-peers: [$rep/$REPS] $scen, $client, $srv $tr"
    local before after
    before="$(cpu_ticks "$pid")"
    "${PIN_CLIENT[@]}" "$bin" -q "$@" "${extra[@]}" --server-pid "$pid" "$url" >"$log" 2>&1
    local rc=$? line
    after="$(cpu_ticks "$pid")"
    line="$(grep "^$prefix" "$log" | tail -1)"
    if [[ $rc -ne 0 || -z "$line" ]]; then
        # Never a silent lost cell: the exit status (a signal named), whether the result line
        # is missing, and the end of what the client printed.
        FAILED=1
        say "bench-peers: that run exited $rc$( ((rc > 128)) && echo " (signal $((rc - 128)))")$([[ -z "$line" ]] && echo ", no $prefix line"):"
        tail -5 "$log" | sed 's/^/    /' >&2
    fi
    [[ -z "$line" ]] && line="$prefix errors=-1"
    line="$line srv_sys_share=$(sys_share "$before" "$after")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$client" "$tr" "$srv" "$rep" "$line" >>"$RESULTS"
}

# pair SCENARIO CLIENT TRANSPORT REP ARGS… → ours and uWS back to back, the order flipping per rep
pair() {
    local scen="$1" client="$2" tr="$3" rep="$4"; shift 4
    if (( rep % 2 )); then run "$scen" "$client" "$tr" ours "$rep" "$@"; run "$scen" "$client" "$tr" uws "$rep" "$@"
    else run "$scen" "$client" "$tr" uws "$rep" "$@"; run "$scen" "$client" "$tr" ours "$rep" "$@"; fi
}

TIMING=(-T "$SECS" -W "$WARM")
SCENARIOS=("64B d1|-c 100 -d 1 -s 64 --text" "64B d16|-c 100 -d 16 -s 64 --text" "1MiB d1|-c 4 -d 1 -s 1048576 --binary")

if want echo || want handshakes; then
    start_all
    if want echo; then
        for s in "${SCENARIOS[@]}"; do
            scen="${s%%|*}"; read -r -a args <<<"${s#*|}"
            for client in wss-bench wsload; do
                for rep in $(seq "$REPS"); do
                    # The ceiling in the same repetition (wsload only: wss-bench speaks WebSocket).
                    if [[ "$client" == wsload && "$scen" == 64B* ]]; then
                        run "$scen" wsload tcp tcp "$rep" "${args[@]}" "${TIMING[@]}"
                        [[ -n "${PID_OF[uring|tcp]:-}" ]] && run "$scen" wsload tcp uring "$rep" "${args[@]}" "${TIMING[@]}"
                    fi
                    for tr in ws wss; do pair "$scen" "$client" "$tr" "$rep" "${args[@]}" "${TIMING[@]}"; done
                done
            done
        done
    fi
    if want handshakes; then
        for client in wss-bench wsload; do
            for rep in $(seq "$REPS"); do
                for tr in ws wss; do pair handshakes "$client" "$tr" "$rep" --handshakes -c 32 "${TIMING[@]}"; done
            done
        done
    fi
    for k in "${!PID_OF[@]}"; do stop_server "${PID_OF[$k]}"; done
fi

# Idle memory: a fresh server for every measurement (earlier runs leave reusable heap behind).
# ourslog: our server with the default logging (access log on), the configuration users run.
if want idle; then
    for rep in $(seq "$REPS"); do
        for tr in ws wss; do
            for srv in ours ourslog uws; do
                case "$srv" in
                    ours) start_ours "idle-ours-$tr" "$tr" ;;
                    ourslog) start_ours "idle-ourslog-$tr" "$tr" default-log ;;
                    uws) start_peer "idle-uws-$tr" "$tr" ;;
                esac
                PID_OF[$srv|$tr]=$SRV_PID
                URL_OF[$srv|$tr]="$tr://127.0.0.1:$SRV_PORT/"
                run idle wsload "$tr" "$srv" "$rep" --idle "$IDLE" -T "$SECS"
                stop_server "$SRV_PID"
            done
        done
    done
fi

AES=""
if want aes; then
    say "bench-peers: openssl speed -evp aes-128-gcm (core 0)…"
    AES="$("${PIN_SERVER[@]}" openssl speed -evp aes-128-gcm -bytes 16384 -seconds "$([[ "$SECS" == 1 ]] && echo 1 || echo 3)" 2>/dev/null \
        | awk '/^AES-128-GCM/ { v = $NF; sub(/k$/, "", v); printf "%.1f", v * 1000 / 1048576 }')"
    [[ -n "$AES" ]] || say "bench-peers: could not parse openssl speed's output (no AES-GCM row)"
fi

echo
echo "wss-server vs uWebSockets — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r)"
echo "servers on core 0, clients on core 1; medians of $REPS run(s) of $SECS s after $WARM s warmup; idle: $IDLE connections"
echo "ours: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) wss-server --app echo --threads 1 --no-deflate --log-level warning (access log off); uWS: $(head -1 "$UWS_OUT/BUILD-INFO.txt" 2>/dev/null)"
want idle && echo "second idle row (\"default logging\"): ours with the default logging instead (info, access log on stderr, to a file): the cost of its per-connection access-log state"
python3 "$ROOT/Tests/bench/peers_table.py" "$RESULTS" --aes-mib "${AES:-0}" --idle "$IDLE" || FAILED=1
[[ $FAILED -eq 0 ]] || { echo; echo "bench-peers: some runs failed (see above)"; exit 1; }
exit 0
