# PulseVault — `make dev` starts the whole local stack, `make test` runs every test.
# Both install what they need first (idempotent, quick when already installed).

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
APT_PACKAGES := ffmpeg nginx chromium fonts-liberation
export PULSEVAULT_BIN_DIR := $(BIN)

.PHONY: dev test vitals bench bench-quick deps tools build vet fmt check-fmt clean help

help:
	@echo "make dev    start the local stack (NATS, S3 with Object Lock, bootstrap) on 127.0.0.1"
	@echo "make test   install what the tests need and run them all"
	@echo "make tools  build versitygw and faas-cli into ./bin"
	@echo "make build  build ./bin/pulsevault"

dev: deps tools build vitals
	$(BIN)/pulsevault dev

test: deps tools build vitals check-fmt vet
	cd vitals && npm test
	$(GO) test -race -count=1 -timeout 30m ./...

# The Vitals PWA's static export (vitals/out), which `pulsevault dev` serves.
# npm ci only when the lock file changed; next build only when a source did.
vitals: vitals/node_modules/.package-lock.json vitals/out/index.html

vitals/node_modules/.package-lock.json: vitals/package-lock.json
	cd vitals && npm ci --no-audit --no-fund

vitals/out/index.html: vitals/node_modules/.package-lock.json $(shell find vitals/app vitals/components vitals/lib vitals/public -type f 2>/dev/null) vitals/next.config.ts
	cd vitals && NEXT_TELEMETRY_DISABLED=1 npm run build

# Measurements, not checks: each figure against a baseline taken in the same
# run, A B A B over several rounds; prints a table, writes bench/results.json.
# bench-quick (small clip, 2 rounds, < 3 min) checks only that every section
# produced a number: the CI smoke test.
BENCH_RUN := PULSEVAULT_BENCH=1 $(GO) test -count=1 -run '^TestBench$$' -v -timeout 90m ./tests/
bench: deps tools build
	set -o pipefail; $(BENCH_RUN) | grep -vE '^\s+\S+\.go:[0-9]+: .*: \[\{|^=== '

bench-quick: deps tools build
	set -o pipefail; PULSEVAULT_BENCH_QUICK=1 $(BENCH_RUN) | grep -vE '^\s+\S+\.go:[0-9]+: .*: \[\{|^=== '

# apt packages: installed only when missing (root, or sudo when available).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Tools live in their own module (infra/tools) so their dependencies stay out of
# ours; Go's build cache makes the second build take seconds.
tools: $(BIN)/versitygw $(BIN)/faas-cli

$(BIN)/versitygw: infra/tools/go.mod infra/tools/go.sum
	@mkdir -p $(BIN)
	cd infra/tools && $(GO) build -o $(BIN)/versitygw github.com/versity/versitygw/cmd/versitygw

# faas-cli's tags lack the "v" prefix, so Go knows it only by pseudo-version;
# this one (October 2021, release 0.13.13) is what the module proxy serves here.
FAAS_CLI_VERSION := 0.13.13
$(BIN)/faas-cli: infra/tools/go.mod infra/tools/go.sum
	@mkdir -p $(BIN)
	cd infra/tools && $(GO) build -ldflags "-X github.com/openfaas/faas-cli/version.Version=$(FAAS_CLI_VERSION)" -o $(BIN)/faas-cli github.com/openfaas/faas-cli

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/pulsevault ./cmd/pulsevault

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

check-fmt:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN)
