# wss-server — build, run, test. `make run` and `make test` are the two commands in README.md.
SWIFT   ?= swift
BIN     := .build/release/wss-server
CERTS   := certs
PYTEST  := python3 -m pytest -q -p no:cacheprovider

.PHONY: all build debug certs run run-plain test deps unit integration browser conformance \
        conformance-deflate conformance-full cluster bench-cluster fuzz fuzz-replay tlsfuzz testssl bench-resumption sanitize sanitize-address sanitize-thread bench bench-peers clean

all: build

build:
	$(SWIFT) build -c release

debug:
	$(SWIFT) build

## Local CA + localhost certificate in certs/ (idempotent; never committed).
certs:
	$(CERTS)/generate.sh

## Build, make certificates, serve wss:// and https:// on port 8443 (open https://localhost:8443/).
run: build certs
	$(BIN) --cert $(CERTS)/cert.pem --key $(CERTS)/key.pem

## The same over plain ws:// and http:// on port 8080.
run-plain: build
	$(BIN)

## Everything CI runs: unit tests, integration (ws + wss), browser, Autobahn conformance
## (sections 1-7, 9, 10 over ws and wss; 12, 13 permessage-deflate over ws), fuzzing replay.
test: deps build unit integration browser conformance conformance-deflate fuzz-replay

deps:
	Tests/install-deps.sh

unit:
	$(SWIFT) test --disable-swift-testing

integration: build
	WSS_SERVER=$(BIN) $(PYTEST) Tests/integration

browser: build
	WSS_REQUIRE_BROWSER=1 WSS_SERVER=$(BIN) $(PYTEST) Tests/browser

## Autobahn|Testsuite sections 1-7, 9, 10 over ws and wss; fails unless every case is OK.
conformance: build
	Tests/conformance/setup.sh
	WSS_SERVER=$(BIN) Tests/conformance/run.sh --transport both

## Autobahn 12.* and 13.* (permessage-deflate, ~10 min with the Python 2 client) over ws.
conformance-deflate: build
	Tests/conformance/setup.sh
	WSS_SERVER=$(BIN) Tests/conformance/run.sh --cases "12.* 13.*" --transport ws

## All 517 Autobahn cases over ws and wss (about 25 minutes).
conformance-full: build
	Tests/conformance/setup.sh
	WSS_SERVER=$(BIN) Tests/conformance/run.sh --cases "*" --transport both

## tlsfuzzer: TLS 1.3 and TLS 1.2 scripts against our server (native records and
## --openssl-records) and `openssl s_server` with the same certificates; fails when ours fails
## a case s_server passes (Tests/tlsfuzz/run.py; TLSFUZZER_DIR = a tlsfuzzer checkout).
tlsfuzz: build
	WSS_SERVER=$(BIN) python3 Tests/tlsfuzz/run.py

## testssl.sh (Debian package) against the server, bounded to 10 minutes (~40 s here): no
## "VULNERABLE" / "potentially vulnerable" line, only AEAD suites for TLS 1.2. A CI stage.
testssl: build
	WSS_SERVER=$(BIN) Tests/tlsfuzz/testssl.sh

## Server CPU per TLS 1.3 connection, full vs resumed handshake (a measurement, printed).
bench-resumption: build
	WSS_SERVER=$(BIN) python3 Tests/tlsfuzz/handshake_cpu.py 2000

## libFuzzer + ASan on the HTTP head parser, handshake validator and frame decoder, 60 s each
## (FUZZ_RUNS=N FUZZ_SEED=S for a reproducible run of N inputs, as CI does).
fuzz:
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SEED=$(FUZZ_SEED) Tests/fuzz/run.sh $(or $(FUZZ_SECONDS),60)

## Replays the seed corpus and saved crashers only (fast; part of make test).
fuzz-replay:
	Tests/fuzz/run.sh 0

## The unit and library tests under AddressSanitizer and ThreadSanitizer.
## (LeakSanitizer on; Tests/lsan.supp silences one-off allocations inside Foundation/XCTest.)
sanitize: sanitize-address sanitize-thread

sanitize-address:
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp $(SWIFT) test --disable-swift-testing --sanitize=address --scratch-path .build-asan

sanitize-thread:
	$(SWIFT) test --disable-swift-testing --sanitize=thread --scratch-path .build-tsan

## redis-server + three chat instances (Redis backplane, history) + HAProxy on https://localhost:8443/.
cluster: build certs
	share/cluster/run.sh

## Cross-instance fan-out: 1 publisher -> 1,000 subscribers over 3 instances vs 1 instance.
bench-cluster: build
	Tests/bench/cluster.sh

## Benchmark matrix (server pinned to core 0, load on core 1), ws and wss, with tcpecho as ceiling.
bench:
	Tests/bench/bench.sh

## Side by side with uWebSockets (built from ../shared/peers/uws into .build-uws/), both clients,
## tcpecho as the ceiling; prints issue 16's table with ratios. PEERS_QUICK=1 for a short smoke run.
bench-peers:
	Tests/bench/peers.sh

clean:
	rm -rf .build reports
