#!/usr/bin/env bash
# make cluster: redis-server, three `wss-server --app chat` instances sharing topics and
# history through it, HAProxy on https://localhost:8443/ in front (HTTP mode, sticky SSE and
# long-polling sessions). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${WSS_SERVER:-.build/release/wss-server}
REDIS_PORT=6390
RUN=$(mktemp -d /tmp/wss-cluster.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "$RUN/haproxy.pem"  # a copy of the private key
}
trap cleanup EXIT INT TERM

for tool in redis-server haproxy; do
  command -v "$tool" >/dev/null || { echo "cluster: $tool is missing (Tests/install-deps.sh installs it)" >&2; exit 1; }
done
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$RUN/redis.log" 2>&1 &
pids+=($!)
for i in 1 2 3; do
  "$BIN" --app chat --port "944$i" --host 127.0.0.1 --cert certs/cert.pem --key certs/key.pem \
    --backplane "redis://127.0.0.1:$REDIS_PORT" --history-size 100 --history-ttl 300 \
    --proxy-protocol --trusted-proxy 127.0.0.1 >"$RUN/instance$i.log" 2>&1 &
  pids+=($!)
done
# HAProxy terminates TLS (share/cluster/haproxy.cfg says why): it wants certificate and key in
# one file, made here in the private run directory and removed on exit.
(umask 077; cat certs/cert.pem certs/key.pem >"$RUN/haproxy.pem")
WSS_CLUSTER_FRONT=127.0.0.1:8443 WSS_CLUSTER_PEM="$RUN/haproxy.pem" WSS_CLUSTER_CA=certs/ca.pem \
WSS_CLUSTER_A=127.0.0.1:9441 WSS_CLUSTER_B=127.0.0.1:9442 WSS_CLUSTER_C=127.0.0.1:9443 \
  haproxy -db -f share/cluster/haproxy.cfg >"$RUN/haproxy.log" 2>&1 &
pids+=($!)
sleep 1
echo "cluster: redis 127.0.0.1:$REDIS_PORT, instances 127.0.0.1:9441-9443, HAProxy https://localhost:8443/"
echo "cluster: logs in $RUN; open https://localhost:8443/ in two browsers; Ctrl-C stops"
wait -n "${pids[@]}" || true
echo "cluster: a process exited; stopping (see $RUN)" >&2
