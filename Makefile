# PulseVault — `make dev` starts the whole local stack, `make test` runs every test.
# Both install what they need first (idempotent, quick when already installed).

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
APT_PACKAGES := ffmpeg nginx
export PULSEVAULT_BIN_DIR := $(BIN)

.PHONY: dev test bench deps tools build vet fmt check-fmt clean help

help:
	@echo "make dev    start the local stack (NATS, S3 with Object Lock, bootstrap) on 127.0.0.1"
	@echo "make test   install what the tests need and run them all"
	@echo "make tools  build versitygw and faas-cli into ./bin"
	@echo "make build  build ./bin/pulsevault"

dev: deps tools build
	$(BIN)/pulsevault dev

test: deps tools build check-fmt vet
	$(GO) test -race -count=1 -timeout 20m ./...

# Measurements, not checks: each figure against a baseline taken in the same run.
bench: deps tools build
	set -o pipefail; PULSEVAULT_BENCH=1 $(GO) test -count=1 -run 'Overhead|AuditAppendThroughput|IngestThroughput' -v ./tests/ | grep -E '^\s+\S+\.go:[0-9]+: |^(ok|FAIL|---)'
	set -o pipefail; PULSEVAULT_BENCH=1 $(GO) test -count=1 -run 'FanoutCost' -v ./shared/transcode/ | grep -E '^\s+\S+\.go:[0-9]+: |^(ok|FAIL|---)'

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
