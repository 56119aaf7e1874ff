# wss-server — build, run, test. `make run` and `make test` are the two commands in README.md.
SWIFT   ?= swift
BIN     := .build/release/wss-server
CERTS   := certs
PYTEST  := python3 -m pytest -q -p no:cacheprovider

.PHONY: all build debug certs run run-plain test deps unit integration browser conformance clean

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

## Everything CI runs: unit tests, integration (ws + wss), browser, Autobahn conformance.
test: deps build unit integration browser conformance

deps:
	Tests/install-deps.sh

unit:
	$(SWIFT) test

integration: build
	WSS_SERVER=$(BIN) $(PYTEST) Tests/integration

browser: build
	WSS_REQUIRE_BROWSER=1 WSS_SERVER=$(BIN) $(PYTEST) Tests/browser

## Autobahn|Testsuite sections 1-7, 9, 10 over ws and wss; fails unless every case is OK.
conformance: build
	Tests/conformance/setup.sh
	WSS_SERVER=$(BIN) Tests/conformance/run.sh --transport both

clean:
	rm -rf .build reports
