#!/usr/bin/env bash
# Cross-instance fan-out (make bench-cluster): 1 publisher -> N subscribers (default 1000)
# through HAProxy (TCP, PROXY v2, leastconn) spread over 3 `wss-server --app chat` instances
# sharing the topic through one redis-server, without and with history; against one instance
# (direct, and behind the same HAProxy) in the same run. Each instance runs 1 loop thread.
# Free ports found at run time; kills only what it started. Env: BENCH_SECONDS (5),
# BENCH_WARMUP (1), BENCH_SUBSCRIBERS (1000).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECS="${BENCH_SECONDS:-5}"; WARM="${BENCH_WARMUP:-1}"; N="${BENCH_SUBSCRIBERS:-1000}"
SERVER=.build/release/wss-server; BENCH=.build/release/wss-bench
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/wss-cluster-bench.XXXXXX")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done; rm -rf "$SCRATCH"; }
trap cleanup EXIT
die() { echo "bench-cluster: $*" >&2; for f in "$SCRATCH"/*.log; do echo "== $f" >&2; tail -n 5 "$f" >&2; done; exit 1; }
for t in redis-server haproxy "$SERVER" "$BENCH"; do command -v "$t" >/dev/null || [ -x "$t" ] || die "missing $t"; done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; die "nothing on port $1"; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$SCRATCH/redis.log" 2>&1 &
PIDS+=($!); wait_port "$REDIS_PORT"

INST_PIDS=(); INST_PORTS=()
start_instances() {  # count, extra args...
    local n=$1; shift
    INST_PIDS=(); INST_PORTS=()
    for i in $(seq "$n"); do
        local port; port=$(free_port)
        "$SERVER" --app chat --threads 1 --host 127.0.0.1 --port "$port" "$@" >"$SCRATCH/inst-$port.log" 2>&1 &
        INST_PIDS+=($!); PIDS+=($!); INST_PORTS+=("$port"); wait_port "$port"
    done
}
stop_instances() { for p in "${INST_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
HAP_PID=""
start_haproxy() {  # backends' ports
    HAP_PORT=$(free_port)
    { printf 'global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n'
      printf 'frontend f\n  bind 127.0.0.1:%s\n  default_backend b\nbackend b\n  balance leastconn\n' "$HAP_PORT"
      for p in "$@"; do printf '  server s%s 127.0.0.1:%s send-proxy-v2\n' "$p" "$p"; done; } >"$SCRATCH/haproxy.cfg"
    haproxy -db -f "$SCRATCH/haproxy.cfg" >"$SCRATCH/haproxy.log" 2>&1 &
    HAP_PID=$!; PIDS+=($!); wait_port "$HAP_PORT"
}
stop_haproxy() { kill "$HAP_PID" 2>/dev/null; wait "$HAP_PID" 2>/dev/null; }

ROWS=()
measure() {  # label, url
    local out; out=$("$BENCH" --pubsub "$N" -s 64 --text -T "$SECS" -W "$WARM" -q "$2" 2>&1 | grep '^RESULT' | tail -1)
    [ -n "$out" ] || { ROWS+=("$1|failed"); return; }
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$out"; }
    ROWS+=("$1|$(get deliveries_per_s)|$(get p50_us)|$(get p99_us)|$(get gaps)/$(get duplicates)/$(get mismatches)")
}

PROXY=(--proxy-protocol --trusted-proxy 127.0.0.1)
start_instances 1;                     measure "1 instance, direct" "ws://127.0.0.1:${INST_PORTS[0]}/"; stop_instances
start_instances 1 "${PROXY[@]}"; start_haproxy "${INST_PORTS[@]}"
measure "1 instance, via HAProxy" "ws://127.0.0.1:$HAP_PORT/"; stop_haproxy; stop_instances
start_instances 3 "${PROXY[@]}" --backplane "redis://127.0.0.1:$REDIS_PORT"; start_haproxy "${INST_PORTS[@]}"
measure "3 instances + Redis, via HAProxy" "ws://127.0.0.1:$HAP_PORT/"; stop_haproxy; stop_instances
start_instances 3 "${PROXY[@]}" --backplane "redis://127.0.0.1:$REDIS_PORT" --history-size 100 --history-ttl 60; start_haproxy "${INST_PORTS[@]}"
measure "3 instances + Redis + history" "ws://127.0.0.1:$HAP_PORT/"; stop_haproxy; stop_instances

echo "cross-instance fan-out: 1 publisher -> $N subscribers, 64 B text, window 16, ${SECS} s after ${WARM} s warmup ($(nproc) cores, shared)"
printf '%-36s %14s %10s %10s %12s\n' "setup" "deliveries/s" "p50 us" "p99 us" "gaps/dup/bad"
for r in "${ROWS[@]}"; do IFS='|' read -r a b c d e <<<"$r"; printf '%-36s %14s %10s %10s %12s\n' "$a" "$b" "$c" "$d" "$e"; done
