# Shared by Tests/bench/bench.sh and Tests/bench/peers.sh (sourced, not run). Before sourcing, set
# BENCH_NAME (the prefix of every message) and ONLY (the comma list of selected groups).
# Gives: SCRATCH (a temporary folder, removed at exit), PIDS (every process started: killed at
# exit), say, die, want GROUP, PIN_SERVER / PIN_CLIENT (core 0 / core 1), free_port, stop_server.

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")"
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
die() { say "$BENCH_NAME: $*"; exit 1; }

# want GROUP → whether ONLY selects it
want() { [[ ",$ONLY," == *",$1,"* ]]; }

# Pinning: servers on core 0, load generators on core 1 (skipped on a single-core machine).
if [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0); PIN_CLIENT=(taskset -c 1)
else
    PIN_SERVER=(); PIN_CLIENT=(); say "$BENCH_NAME: fewer than 2 cores or no taskset: not pinning"
fi

# A free TCP port on 127.0.0.1 (for servers that cannot be told port 0).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $(( 20000 + RANDOM % 10000 ))
}

stop_server() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
