#!/usr/bin/env bash
# testssl.sh (Debian's `testssl`) against wss-server on 127.0.0.1 with the CI certificate:
# protocols, cipher suites per protocol, vulnerabilities. Fails on any "VULNERABLE" or
# "potentially vulnerable" line and on any TLS 1.2 suite that is not AEAD (GCM, ChaCha20).
# Bounded by TESTSSL_TIMEOUT (default 600 s). Usage: WSS_SERVER=bin Tests/tlsfuzz/testssl.sh
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; REPO="$(cd "$HERE/../.." && pwd)"
BIN="${WSS_SERVER:-$REPO/.build/release/wss-server}"
TESTSSL="$(command -v testssl || command -v testssl.sh)" || { echo "testssl: testssl.sh not installed (apt-get install testssl.sh)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "testssl: no server binary at $BIN" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$REPO/certs/generate.sh" "$tmp/certs" >/dev/null
"$BIN" --host 127.0.0.1 --port 0 --cert "$tmp/certs/cert.pem" --key "$tmp/certs/key.pem" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/out" && break; sleep 0.1; done
port="$(sed -n 's/^listening on wss:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")"
[ -n "$port" ] || { echo "testssl: server did not start: $(cat "$tmp/err")" >&2; exit 1; }
report="${TESTSSL_OUT:-$REPO/reports/testssl.txt}"; mkdir -p "$(dirname "$report")"
timeout "${TESTSSL_TIMEOUT:-600}" "$TESTSSL" --quiet --color 0 --warnings off --ip one -p -E -U "127.0.0.1:$port" >"$report" 2>&1
rc=$?
[ $rc -eq 124 ] && { echo "testssl: timed out; partial report in $report" >&2; exit 1; }
fail=0
if grep -Ei "potentially vulnerable|[^T] VULNERABLE" "$report" | grep -vi "not vulnerable"; then fail=1; fi
# -E lists suites per protocol: the TLS 1.2 block must name only GCM or CHACHA20 suites.
tls12="$(awk '/^TLS 1\.2/{on=1; next} /^TLS 1\.3|^ Done/{on=0} on' "$report" | grep -E '^ *x[0-9a-f]+ ')"
[ -n "$tls12" ] || { echo "testssl: no TLS 1.2 suite listed (report format changed?)"; fail=1; }
# The OpenSSL suite name (second column) must name GCM or ChaCha20-Poly1305.
echo "$tls12" | awk '{print $2}' | grep -vE 'GCM|CHACHA20-POLY1305' && fail=1
echo "testssl: report in $report"
[ $fail -eq 0 ] && echo "testssl: ok (no vulnerable line, TLS 1.2 AEAD only)" || echo "testssl: FAILED"
exit $fail
