#!/usr/bin/env bash
# Benchmark matrix for wss-server (called by `make bench`).
#
# Builds release, starts `wss-server --app echo --threads 1` pinned to core 0 (one ws://, one
# wss:// instance), drives it from core 1 with wss-bench, and prints one table:
#   echo: 64 B text ×100 conns depth 1 / depth 16, 16 KiB binary ×10 depth 4, 1 MiB binary ×4
#         depth 1, over ws and wss; tools/tcpecho + wsload tcp:// as the syscall ceiling for the
#         first three; wsload vs wss-bench on 64 B depth 16 ws (is the client the bottleneck?);
#   handshakes/s (ws, wss full TLS handshakes); server RSS per idle connection at 10,000 (ws, wss);
#   pub/sub fan-out against `--app chat`: 1 publisher → 1, 10, 100, 1000 subscribers on one path
#         (ws; wss for 1000), 64 B text, 16 publishes in flight (deliveries/s, send→subscriber latency);
#   permessage-deflate: 1 KiB JSON text ×10 conns depth 4 over ws, without and with compression
#         (same server, deflate on by default), with wire bytes per message and the CPU it costs;
#   fallbacks: 64 B text echo ×100 sessions depth 1 over SSE and long polling beside WebSocket
#         (POST up; event stream or polls down), and server RSS per idle session at 1,000 (an open
#         SSE stream, a held poll) beside 1,000 idle WebSocket connections, on plain http.
#
# Environment: BENCH_SECONDS (measured seconds per run, default 5), BENCH_WARMUP (default 1),
# BENCH_IDLE_CONNS (default 10000), BENCH_TOOLS (default ../shared/tools beside the repo),
# BENCH_ONLY (comma-separated groups to run: echo, handshakes, idle, pubsub, deflate, fallback;
# default all — e.g. BENCH_ONLY=pubsub for the fan-out rows alone), BENCH_PUBSUB_N (default
# "1 10 100 1000"), BENCH_FALLBACK_CONNS (sessions echoing, default 100), BENCH_FALLBACK_IDLE
# (idle sessions, default 1000).
# Kills only the processes it started. Exit status 1 if any run reported errors or mismatches.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECS="${BENCH_SECONDS:-5}"
WARM="${BENCH_WARMUP:-1}"
IDLE_CONNS="${BENCH_IDLE_CONNS:-10000}"
ONLY="${BENCH_ONLY:-echo,handshakes,idle,pubsub,deflate,fallback}"
FB_CONNS="${BENCH_FALLBACK_CONNS:-100}"
FB_IDLE="${BENCH_FALLBACK_IDLE:-1000}"
PUBSUB_N="${BENCH_PUBSUB_N:-1 10 100 1000}"
TOOLS="${BENCH_TOOLS:-$ROOT/../shared/tools}"
[[ -n "${BENCH_TOOLS:-}" || -d "$TOOLS" || ! -d "$ROOT/../../shared/tools" ]] || TOOLS="$ROOT/../../shared/tools"  # a worktree
SERVER="$ROOT/.build/release/wss-server"
BENCH="$ROOT/.build/release/wss-bench"
FAILED=()
BENCH_NAME=bench
# shellcheck source=Tests/bench/common.sh
source "$ROOT/Tests/bench/common.sh"

for g in ${ONLY//,/ }; do
    case "$g" in echo|handshakes|idle|pubsub|deflate|fallback) ;; *) die "BENCH_ONLY: unknown group '$g' (echo, handshakes, idle, pubsub, deflate, fallback)";; esac
done

# Idle connections need descriptors on both ends (children inherit the soft limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $((IDLE_CONNS + 200)) ]]; then
    say "bench: ulimit -n is $(ulimit -n); idle runs limited to $(( $(ulimit -n) - 200 )) connections"
    IDLE_CONNS=$(( $(ulimit -n) - 200 ))
fi

say "bench: building release…"
swift build -c release >"$SCRATCH/build.log" 2>&1 || { cat "$SCRATCH/build.log" >&2; die "swift build failed"; }
[[ -x "$SERVER" && -x "$BENCH" ]] || die "missing $SERVER or $BENCH after the build"

WSLOAD="" TCPECHO=""
if ! want echo; then
    :  # the C tools serve only the echo group
elif [[ -d "$TOOLS" ]]; then
    if [[ -f "$TOOLS/wsload/wsload.c" ]] && gcc -O2 -o "$SCRATCH/wsload" "$TOOLS/wsload/wsload.c" -lssl -lcrypto -lpthread 2>"$SCRATCH/gcc.log"; then
        WSLOAD="$SCRATCH/wsload"
    else say "bench: could not build wsload (no comparison row)"; fi
    if [[ -f "$TOOLS/tcpecho/tcpecho.c" ]] && gcc -O2 -o "$SCRATCH/tcpecho" "$TOOLS/tcpecho/tcpecho.c" 2>>"$SCRATCH/gcc.log"; then
        TCPECHO="$SCRATCH/tcpecho"
    else say "bench: could not build tcpecho (no ceiling ratio)"; fi
else
    say "bench: $TOOLS not found: no tcpecho ceiling, no wsload comparison"
fi

"$ROOT/certs/generate.sh" "$SCRATCH/certs" >/dev/null 2>&1 || die "certs/generate.sh failed"
CA="$SCRATCH/certs/ca.pem"

# [APP=chat] start_server NAME [extra args…] → sets SRV_PID, SRV_PORT (app: echo unless APP is set)
start_server() {
    local name="$1"; shift
    local log="$SCRATCH/$name.log"
    : >"$log"
    "${PIN_SERVER[@]}" "$SERVER" --app "${APP:-echo}" --threads 1 --host 127.0.0.1 --port 0 --log-level warning "$@" >"$log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    local i
    for i in $(seq 200); do
        grep -q "listening on" "$log" && break
        kill -0 "$SRV_PID" 2>/dev/null || { cat "$log" >&2; die "server $name exited"; }
        sleep 0.05
    done
    SRV_PORT="$(grep -o 'listening on [a-z]*://[^ ]*' "$log" | head -1 | sed -E 's#.*:([0-9]+)/?.*#\1#')"
    [[ "$SRV_PORT" =~ ^[0-9]+$ ]] || { cat "$log" >&2; die "no port from server $name"; }
}

# kv "LINE" KEY → value of KEY=… in a RESULT/wsload line ("" if absent)
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

# Results, keyed "scenario|transport".
declare -A R
ROWS=()

# run ID TRANSPORT TOOL(wss-bench|wsload) ARGS… → stores the last line in R[ID|TRANSPORT]
run() {
    local id="$1" tr="$2" tool="$3"; shift 3
    local log="$SCRATCH/run-${#ROWS[@]}.log" bin="$BENCH" prefix="RESULT"
    if [[ "$tool" == wsload ]]; then bin="$WSLOAD"; prefix="wsload:"; fi
    say "bench: $id ($tr, $tool)…"
    "${PIN_CLIENT[@]}" "$bin" "$@" >"$log" 2>&1
    local rc=$?
    local line
    line="$(grep "^$prefix" "$log" | tail -1)"
    if [[ $rc -ne 0 || -z "$line" ]]; then
        # Never a silent lost row: the exit status (a signal named), a missing result line, the log's end.
        FAILED+=("$id ($tr, $tool): exit $rc$( ((rc > 128)) && echo " (signal $((rc - 128)))")$([[ -z "$line" ]] && echo ", no $prefix line")")
        sed 's/^/    /' "$log" | tail -15 >&2
    fi
    if [[ -z "$line" ]]; then line="$prefix errors=-1"; fi
    R["$id|$tr"]="$line"
    ROWS+=("$id|$tr|$tool")
}

# ---------------------------------------------------------------------------------------------
COMMON=(-T "$SECS" -W "$WARM")
if want echo || want handshakes; then
start_server ws;  WS_PID=$SRV_PID;  WS_PORT=$SRV_PORT
start_server wss --cert "$SCRATCH/certs/cert.pem" --key "$SCRATCH/certs/key.pem"; WSS_PID=$SRV_PID; WSS_PORT=$SRV_PORT
WS_URL="ws://127.0.0.1:$WS_PORT/"
WSS_URL="wss://127.0.0.1:$WSS_PORT/"

SCEN_IDS=("64B text c100 d1" "64B text c100 d16" "16KiB bin c10 d4" "1MiB bin c4 d1")
SCEN_ARGS=("-c 100 -d 1 -s 64 --text" "-c 100 -d 16 -s 64 --text" "-c 10 -d 4 -s 16384 --binary" "-c 4 -d 1 -s 1048576 --binary")

# The ceiling runs right before each scenario's ws and wss rows, so all three see the same
# machine (it is shared: a ceiling measured minutes apart can differ by 30 %).
TCP_PID=""
if want echo && [[ -n "$WSLOAD" && -n "$TCPECHO" ]]; then
    TCP_PORT="$(free_port)"
    : >"$SCRATCH/tcpecho.log"
    "${PIN_SERVER[@]}" "$TCPECHO" "$TCP_PORT" >"$SCRATCH/tcpecho.log" 2>&1 &
    TCP_PID=$!; PIDS+=("$TCP_PID")
    for _ in $(seq 100); do grep -q listening "$SCRATCH/tcpecho.log" && break; sleep 0.05; done
    grep -q listening "$SCRATCH/tcpecho.log" || { say "bench: tcpecho did not start (port $TCP_PORT?)"; stop_server "$TCP_PID"; TCP_PID=""; }
fi

want echo && for i in "${!SCEN_IDS[@]}"; do
    # shellcheck disable=SC2206
    args=(${SCEN_ARGS[$i]})
    if [[ $i -le 2 && -n "$TCP_PID" ]]; then
        run "${SCEN_IDS[$i]}" tcp wsload -q "${args[@]}" "${COMMON[@]}" --server-pid "$TCP_PID" "tcp://127.0.0.1:$TCP_PORT"
    fi
    run "${SCEN_IDS[$i]}" ws  wss-bench "${args[@]}" "${COMMON[@]}" --server-pid "$WS_PID" "$WS_URL"
    if [[ $i -eq 1 && -n "$WSLOAD" ]]; then
        # Same scenario with the C yardstick, right after ours (the machine is shared and noisy).
        run "${SCEN_IDS[$i]} [wsload]" ws wsload -q "${args[@]}" "${COMMON[@]}" --server-pid "$WS_PID" "$WS_URL"
    fi
    run "${SCEN_IDS[$i]}" wss wss-bench "${args[@]}" "${COMMON[@]}" --server-pid "$WSS_PID" --ca "$CA" "$WSS_URL"
done

if want handshakes; then
    run "handshakes c32" ws  wss-bench --handshakes -c 32 "${COMMON[@]}" --server-pid "$WS_PID" "$WS_URL"
    run "handshakes c32" wss wss-bench --handshakes -c 32 "${COMMON[@]}" --server-pid "$WSS_PID" --ca "$CA" "$WSS_URL"
fi
stop_server "$WS_PID"; stop_server "$WSS_PID"
[[ -n "$TCP_PID" ]] && stop_server "$TCP_PID"
fi

# Idle memory: fresh servers, so earlier large-message runs do not leave reusable heap behind.
if want idle; then
    start_server idle-ws
    run "idle $IDLE_CONNS" ws wss-bench --idle "$IDLE_CONNS" -T "$SECS" --server-pid "$SRV_PID" "ws://127.0.0.1:$SRV_PORT/"
    stop_server "$SRV_PID"
    start_server idle-wss --cert "$SCRATCH/certs/cert.pem" --key "$SCRATCH/certs/key.pem"
    run "idle $IDLE_CONNS" wss wss-bench --idle "$IDLE_CONNS" -T "$SECS" --server-pid "$SRV_PID" --ca "$CA" "wss://127.0.0.1:$SRV_PORT/"
    stop_server "$SRV_PID"
fi

# Pub/sub fan-out: `--app chat` (every message on a path goes to every connection on that path),
# one publisher with 16 publishes in flight (a publish completes when the publisher gets it back),
# N subscribers, all on one client thread. msgs/s = deliveries/s (messages received by all
# subscribers); the publishes/s are in the note.
if want pubsub; then
    APP=chat start_server pubsub-ws
    for n in $PUBSUB_N; do
        run "pubsub 1→$n" ws wss-bench --pubsub "$n" -s 64 --text "${COMMON[@]}" --server-pid "$SRV_PID" "ws://127.0.0.1:$SRV_PORT/"
    done
    stop_server "$SRV_PID"
    APP=chat start_server pubsub-wss --cert "$SCRATCH/certs/cert.pem" --key "$SCRATCH/certs/key.pem"
    n="${PUBSUB_N##* }"
    run "pubsub 1→$n" wss wss-bench --pubsub "$n" -s 64 --text "${COMMON[@]}" --server-pid "$SRV_PID" --ca "$CA" "wss://127.0.0.1:$SRV_PORT/"
    stop_server "$SRV_PID"
fi

# permessage-deflate: the same 1 KiB JSON echo load without and with compression, one server
# (`--app echo`, deflate accepted by default; wss-bench --deflate exits 2 if it is not).
# wss-bench --json: text bodies of trade-like records, 64 distinct bodies cycled, so no message
# compresses against an identical predecessor still in the LZ77 window.
DEFLATE_NO="1KiB json c10 d4"
DEFLATE_YES="1KiB json c10 d4 +deflate"
if want deflate; then
    start_server deflate-ws
    DEFLATE_ARGS=(-c 10 -d 4 -s 1024 --text --json "${COMMON[@]}" --server-pid "$SRV_PID" "ws://127.0.0.1:$SRV_PORT/")
    run "$DEFLATE_NO" ws wss-bench "${DEFLATE_ARGS[@]}"
    run "$DEFLATE_YES" ws wss-bench --deflate "${DEFLATE_ARGS[@]}"
    stop_server "$SRV_PID"
fi

# Fallbacks (SSE, long polling) beside WebSocket, on one plain-http echo server: each session
# POSTs one message per request (keep-alive) and gets the echo on its event stream or its next
# poll. Then idle sessions, each group on a fresh server (RSS per session, as for connections).
FB_ECHO="fallback 64B c$FB_CONNS d1"
FB_IDLE_ID="idle $FB_IDLE sessions"
if want fallback; then
    start_server fallback-echo
    FB_URL="ws://127.0.0.1:$SRV_PORT/"
    FB_ARGS=(-c "$FB_CONNS" -d 1 -s 64 "${COMMON[@]}" --server-pid "$SRV_PID" "$FB_URL")
    run "$FB_ECHO" ws wss-bench --text "${FB_ARGS[@]}"
    run "$FB_ECHO" sse wss-bench --fallback sse "${FB_ARGS[@]}"
    run "$FB_ECHO" longpoll wss-bench --fallback longpoll "${FB_ARGS[@]}"
    stop_server "$SRV_PID"
    for tr in ws sse longpoll; do
        start_server "fallback-idle-$tr"
        mode=(); [[ "$tr" != ws ]] && mode=(--fallback "$tr")
        run "$FB_IDLE_ID" "$tr" wss-bench "${mode[@]}" --idle "$FB_IDLE" -T "$SECS" --server-pid "$SRV_PID" "ws://127.0.0.1:$SRV_PORT/"
        stop_server "$SRV_PID"
    done
fi

# ---------------------------------------------------------------------------------------------
num_or_dash() { [[ -n "$1" && "$1" != -1 && "$1" != -1.* && "$1" != "-100.0" ]] && printf '%s' "$1" || printf '%s' "-"; }

echo
echo "wss-server benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r)"
echo "server: wss-server --app echo --threads 1 (core 0; pubsub rows: --app chat); client: wss-bench, 1 thread (core 1); ${SECS} s per run after ${WARM} s warmup"
echo
FMT='%-28s | %-9s | %9s | %8s | %8s | %8s | %11s | %10s | %9s | %11s | %9s | %s\n'
printf "$FMT" scenario transport "msgs/s" "MiB/s" "p50 µs" "p99 µs" "server CPU%" efficiency "ratio tcp" "client CPU%" "runq s/c" note
printf "$FMT" "$(printf -- '-%.0s' {1..28})" --------- --------- -------- -------- -------- ----------- ---------- --------- ----------- --------- ----
for row in "${ROWS[@]}"; do
    IFS='|' read -r id tr tool <<<"$row"
    line="${R[$id|$tr]}"
    note=""
    if [[ "$id" == idle* ]]; then
        per="$(kv "$line" per_conn_bytes)" unit="B/conn"
        [[ "$tr" == sse || "$tr" == longpoll ]] && unit="B/session ($([[ "$tr" == sse ]] && echo "an open event stream" || echo "a held poll"))"
        printf "$FMT" "$id" "$tr" "-" "-" "$(num_or_dash "$(kv "$line" hs_p50_us)")" "$(num_or_dash "$(kv "$line" hs_p99_us)")" "-" "-" "-" "-" "-" \
            "server RSS $(num_or_dash "$per") $unit (up $(kv "$line" conns_up)/$(kv "$line" conns_target), setup $(kv "$line" setup_s) s; p50/p99 = connect→open)"
        continue
    fi
    rate="$(kv "$line" msgs_per_s)"; [[ -z "$rate" ]] && rate="$(kv "$line" hs_per_s)"
    cpu="$(kv "$line" server_cpu)"; ccpu="$(kv "$line" client_cpu)"
    cpu_pct="-"; eff="-"; ccpu_pct="-"
    if [[ -n "$cpu" && "$cpu" != -1* ]]; then
        cpu_pct="$(awk -v c="$cpu" 'BEGIN{printf "%.1f", c*100}')"
        eff="$(awk -v r="$rate" -v c="$cpu" 'BEGIN{ if (c > 0) printf "%.0f", r/c; else print "-" }')"
    fi
    [[ -n "$ccpu" && "$ccpu" != -1* ]] && ccpu_pct="$(awk -v c="$ccpu" 'BEGIN{printf "%.1f", c*100}')"
    runq="$(awk -v s="$(kv "$line" server_runq)" -v c="$(kv "$line" client_runq)" 'BEGIN{
        a = (s == "" || s < 0) ? "-" : sprintf("%.2f", s); b = (c == "" || c < 0) ? "-" : sprintf("%.2f", c); print a "/" b }')"
    ratio="-"
    base_id="${id% \[wsload\]}"
    tcp_line="${R[$base_id|tcp]:-}"
    if [[ "$tr" != tcp && -n "$tcp_line" && "$id" != handshakes* ]]; then
        tcp_rate="$(kv "$tcp_line" msgs_per_s)"
        tcp_cpu="$(kv "$tcp_line" server_cpu)"
        [[ -n "$tcp_rate" && -n "$rate" ]] && ratio="$(awk -v a="$rate" -v b="$tcp_rate" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }')"
        # The same ratio per server-CPU-second: robust when other work steals the cores.
        if [[ "$eff" != - && -n "$tcp_cpu" && "$tcp_cpu" != -1* ]]; then
            note="${note:+$note; }efficiency vs tcpecho $(awk -v e="$eff" -v r="$tcp_rate" -v c="$tcp_cpu" 'BEGIN{ if (c > 0 && r > 0) printf "%.2f", e/(r/c); else print "-" }')"
        fi
    fi
    mism="$(kv "$line" mismatches)"; errs="$(kv "$line" errors)"
    [[ "$tool" == wsload ]] && note="wsload (C yardstick)${note:+; $note}"
    [[ "$tr" == tcp ]] && note="tcpecho + wsload tcp:// (ceiling)"
    [[ "$id" == handshakes* ]] && note="msgs/s = handshakes/s; p50/p99 = connect→open"
    if [[ "$id" == pubsub* ]]; then
        note="msgs/s = deliveries/s; publishes/s $(num_or_dash "$(kv "$line" publishes_per_s)"); p50/p99 = send→subscriber"
        note="$note (max $(num_or_dash "$(kv "$line" max_us)") µs); publisher round trip p50 $(num_or_dash "$(kv "$line" pub_rtt_p50_us)") µs"
        [[ "$(kv "$line" tail_missing)" =~ ^[1-9] ]] && note="$note; undelivered at the end: $(kv "$line" tail_missing)"
    fi
    if [[ "$id" == "$DEFLATE_NO" || "$id" == "$DEFLATE_YES" ]]; then
        note="wire B/msg out $(num_or_dash "$(kv "$line" wire_bytes_per_msg_out)") in $(num_or_dash "$(kv "$line" wire_bytes_per_msg_in)") (payload 1024)"
        [[ "$id" == "$DEFLATE_YES" ]] && note="$note; permessage-deflate" || note="$note; uncompressed"
    fi
    if [[ "$id" == "$FB_ECHO" ]]; then
        case "$tr" in
            ws) note="WebSocket, for comparison" ;;
            sse) note="SSE: one POST per message up, the event stream down; p50/p99 = POST → echo" ;;
            longpoll) note="long polling: one POST per message up, polls down; p50/p99 = POST → echo" ;;
        esac
    fi
    [[ "${mism:-0}" != 0 || "${errs:-0}" != 0 ]] && note="$note ERRORS: mismatches=${mism:-?} errors=${errs:-?}"
    if [[ "$id" == *"[wsload]" ]]; then
        ol="${R[$base_id|ws]:-}"
        # Client CPU per message: if wss-bench costs no more than the server per message, the
        # server (one core) saturates first.
        note="$note; wss-bench/wsload msgs/s = $(awk -v a="$(kv "$ol" msgs_per_s)" -v b="$rate" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }')"
        note="$note; client CPU µs/msg: wss-bench $(awk -v c="$(kv "$ol" client_cpu)" -v r="$(kv "$ol" msgs_per_s)" 'BEGIN{ if (r > 0) printf "%.2f", c*1e6/r; else print "-" }')"
        note="$note, wsload $(awk -v c="$ccpu" -v r="$rate" 'BEGIN{ if (r > 0) printf "%.2f", c*1e6/r; else print "-" }')"
        note="$note; server µs/msg $(awk -v c="$(kv "$ol" server_cpu)" -v r="$(kv "$ol" msgs_per_s)" 'BEGIN{ if (r > 0 && c > 0) printf "%.2f", c*1e6/r; else print "-" }')"
        note="$note (under wss-bench), $(awk -v c="$cpu" -v r="$rate" 'BEGIN{ if (r > 0 && c > 0) printf "%.2f", c*1e6/r; else print "-" }') (under wsload)"
    fi
    # printf pads bytes: "→" is 3 bytes in one column.
    row_fmt="$FMT"; [[ "$id" == *→* ]] && row_fmt="${FMT/\%-28s/%-30s}"
    printf "$row_fmt" "$id" "$tr" "$(num_or_dash "$rate")" "$(num_or_dash "$(kv "$line" mib_per_s)")" \
        "$(num_or_dash "$(kv "$line" p50_us)")" "$(num_or_dash "$(kv "$line" p99_us)")" "$cpu_pct" "$eff" "$ratio" "$ccpu_pct" "$runq" "$note"
done
echo
echo "efficiency = msgs (or handshakes, or pub/sub deliveries) per server-CPU-second; ratio tcp = msgs/s ÷ tcpecho msgs/s for the same scenario"
echo "(\"efficiency vs tcpecho\" in the note: the same ratio per server-CPU-second, robust to CPU contention)"
echo "client CPU ≈ 100 % means the load generator, not the server, may be the limit; runq s/c = share of"
echo "the window the server / client spent runnable but waiting for a CPU (> 0.05: other work competed, numbers noisy)."
if [[ -n "${R[$DEFLATE_NO|ws]:-}" && -n "${R[$DEFLATE_YES|ws]:-}" ]]; then
    a="${R[$DEFLATE_NO|ws]}" b="${R[$DEFLATE_YES|ws]}"
    # Bytes: out + in per echoed message. CPU per message: server_cpu ÷ msgs/s (client likewise).
    awk -v ao="$(kv "$a" wire_bytes_per_msg_out)" -v ai="$(kv "$a" wire_bytes_per_msg_in)" \
        -v bo="$(kv "$b" wire_bytes_per_msg_out)" -v bi="$(kv "$b" wire_bytes_per_msg_in)" \
        -v ac="$(kv "$a" server_cpu)" -v ar="$(kv "$a" msgs_per_s)" -v bc="$(kv "$b" server_cpu)" -v br="$(kv "$b" msgs_per_s)" \
        -v acc="$(kv "$a" client_cpu)" -v bcc="$(kv "$b" client_cpu)" 'BEGIN{
        x = (ao > 0 && ai > 0 && bo > 0 && bi > 0) ? sprintf("%.1f", (ao + ai) / (bo + bi)) : "-"
        y = (ac > 0 && ar > 0 && bc > 0 && br > 0) ? sprintf("%.1f", (bc / br) / (ac / ar)) : "-"
        z = (acc > 0 && ar > 0 && bcc > 0 && br > 0) ? sprintf("%.1f", (bcc / br) / (acc / ar)) : "-"
        printf "compression: %s× fewer bytes, %s× the CPU per message (server; client %s×) — 1 KiB JSON echo, ws, permessage-deflate vs none\n", x, y, z }'
fi
echo
echo "raw result lines:"
for row in "${ROWS[@]}"; do
    IFS='|' read -r id tr tool <<<"$row"
    echo "  [$id | $tr] ${R[$id|$tr]}"
done

if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo
    echo "FAILED runs:"
    printf '  %s\n' "${FAILED[@]}"
    exit 1
fi
exit 0
