# wss-server — build, run, test. `make run` and `make test` are the two commands in README.md.
SWIFT   ?= swift
BIN     := .build/release/wss-server
CERTS   := certs
PYTEST  := python3 -m pytest -q -p no:cacheprovider

.PHONY: all build-deps build debug certs run run-plain test deps unit integration browser conformance \
        conformance-deflate conformance-full cluster bench-cluster fuzz fuzz-replay tlsfuzz testssl bench-resumption sanitize sanitize-address sanitize-thread bench bench-peers clean \
        install uninstall static man trust-ca test-uring

all: build

## The C headers the build needs (OpenSSL, zlib, hiredis, liburing), installed if missing.
build-deps:
	@scripts/build-deps.sh

build: build-deps
	$(SWIFT) build -c release

debug: build-deps
	$(SWIFT) build

## Local CA + localhost certificate in certs/ (idempotent; never committed).
certs:
	$(CERTS)/generate.sh

## Build, make certificates, serve wss:// and https:// on port 8443 (open https://localhost:8443/).
## After "listening on", prints the page to open and the one command that makes browsers trust it.
## RUN_ARGS adds flags (e.g. RUN_ARGS="--app chat").
run: build certs
	@$(BIN) --cert $(CERTS)/cert.pem --key $(CERTS)/key.pem $(RUN_ARGS) | while IFS= read -r line; do \
	    echo "$$line"; \
	    case "$$line" in "listening on "*) \
	        echo "open https://localhost:$${line##*:}/  (first time: run 'make trust-ca' so the browser trusts certs/ca.pem)";; \
	    esac; \
	done

## Trusts certs/ca.pem for Chromium (~/.pki/nssdb, created if new) and every Firefox profile
## found (~/.mozilla/firefox/*/ with an NSS database). Needs certutil (libnss3-tools). Restart
## the browser afterwards. Undo: certutil -d sql:DIR -D -n wss-server-ca.
trust-ca: certs
	@command -v certutil >/dev/null || { echo "trust-ca: certutil not found (apt-get install libnss3-tools)"; exit 1; }
	@mkdir -p "$(HOME)/.pki/nssdb"
	@for db in "$(HOME)/.pki/nssdb" $$(ls -d "$(HOME)"/.mozilla/firefox/*/ "$(HOME)"/snap/firefox/common/.mozilla/firefox/*/ 2>/dev/null); do \
	    case "$$db" in *nssdb) ;; *) [ -f "$$db/cert9.db" ] || continue ;; esac; \
	    certutil -d "sql:$$db" -D -n wss-server-ca >/dev/null 2>&1; \
	    certutil -d "sql:$$db" -A -t "C,," -n wss-server-ca -i $(CERTS)/ca.pem || exit 1; \
	    echo "trust-ca: certs/ca.pem trusted in $$db"; \
	done

## The same over plain ws:// and http:// on port 8080.
run-plain: build
	$(BIN)

## Everything CI runs: unit tests, integration (ws + wss), browser, Autobahn conformance
## (sections 1-7, 9, 10 over ws and wss; 12, 13 permessage-deflate over ws), fuzzing replay.
test: deps build unit integration browser conformance conformance-deflate fuzz-replay

deps:
	Tests/install-deps.sh

## Unit, integration and Autobahn 1-10 (ws + wss) again on the io_uring loop backend
## (WSS_IO=uring; a CI stage after `make test`). Fails at once if io_uring cannot run here,
## rather than testing the epoll fallback twice. The packaging tests (static install, the README package example) do
## not depend on the loop and take minutes: `make test` runs them once.
test-uring: build
	.build/release/uring-echo --probe
	WSS_IO=uring $(SWIFT) test --disable-swift-testing
	WSS_IO=uring WSS_SERVER=$(BIN) $(PYTEST) Tests/integration --ignore Tests/integration/test_adopt_install.py \
	    --ignore Tests/integration/test_adopt_package.py
	Tests/conformance/setup.sh
	WSS_IO=uring CONFORMANCE_REPORTS=$(CURDIR)/reports/uring WSS_SERVER=$(BIN) Tests/conformance/run.sh --transport both

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

## Autobahn 12.* and 13.* (permessage-deflate) over ws, in two halves at once: the Python 2
## client is the bottleneck (~20 min on one core, ~10 on two).
conformance-deflate: build
	Tests/conformance/setup.sh
	WSS_SERVER=$(BIN) Tests/conformance/deflate.sh

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

## Install: release binaries with the Swift runtime linked in (they need only libssl3, zlib and
## the C/C++ base libraries, no Swift toolchain), man pages generated from the argument parser,
## and the examples in share/wss-server/. `make install PREFIX=/usr/local` (DESTDIR for packaging).
PREFIX      ?= /usr/local
DESTDIR     ?=
STATIC      := .build-static
STATIC_BIN  := $(STATIC)/release
TOOLS       := wss-server wss-client wss-bench
BINDIR       = $(DESTDIR)$(PREFIX)/bin
MANDIR       = $(DESTDIR)$(PREFIX)/share/man/man1
SHAREDIR     = $(DESTDIR)$(PREFIX)/share/wss-server

static: build-deps
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path $(STATIC)

## One page per tool, from `TOOL --experimental-dump-help` by swift-argument-parser's
## generate-manual (the tool behind `swift package generate-manual`), into $(STATIC)/man.
man: static
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path $(STATIC) --product generate-manual
	mkdir -p $(STATIC)/man
	for t in $(TOOLS); do $(STATIC_BIN)/generate-manual $(STATIC_BIN)/$$t --output-directory $(STATIC)/man || exit 1; done

install: static man
	install -d $(BINDIR) $(MANDIR) $(SHAREDIR)
	for t in $(TOOLS); do install -m 755 $(STATIC_BIN)/$$t $(BINDIR)/$$t || exit 1; done
	for t in $(TOOLS); do install -m 644 $(STATIC)/man/$$t.1 $(MANDIR)/$$t.1 || exit 1; done
	install -m 644 share/wss-server/wss-server.service share/wss-server/nginx.conf \
	    share/wss-server/haproxy.cfg share/wss-server/wss-server.toml $(SHAREDIR)/
	install -m 755 share/wss-server/certbot-deploy-hook.sh $(SHAREDIR)/
	@echo "installed $(TOOLS) in $(BINDIR), man pages in $(MANDIR), examples in $(SHAREDIR)"

uninstall:
	for t in $(TOOLS); do rm -f $(BINDIR)/$$t $(MANDIR)/$$t.1; done
	rm -f $(SHAREDIR)/wss-server.service $(SHAREDIR)/nginx.conf $(SHAREDIR)/haproxy.cfg \
	    $(SHAREDIR)/wss-server.toml $(SHAREDIR)/certbot-deploy-hook.sh
	-rmdir $(SHAREDIR) 2>/dev/null

clean:
	rm -rf .build $(STATIC) reports
