# PulseVault — `make dev` starts the whole local stack, `make test` runs every test.
# Both install what they need first (idempotent, quick when already installed).

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
APT_PACKAGES := ffmpeg nginx chromium fonts-liberation prometheus iproute2
export PULSEVAULT_BIN_DIR := $(BIN)
# Go 1.26.10 fixes standard-library vulnerabilities that govulncheck finds
# reachable at 1.26.8 (net/http, crypto/tls, crypto/x509); the go command
# fetches it from the module proxy once. go.mod names it too.
export GOTOOLCHAIN := go1.26.10

.PHONY: dev test unit test-faults fuzz vulncheck vitals bench bench-quick deps tools shared-tools build vet fmt check-fmt clean help

help:
	@echo "make dev    start the local stack (NATS, S3 with Object Lock, bootstrap) on 127.0.0.1"
	@echo "make test   install what the tests need and run them all"
	@echo "make unit   the unit tier (go test -short ./...): needs nothing installed or built, well under a minute"
	@echo "make test-faults  the reliability and security suite at full size (kills, cuts, load, bad input, fuzz, govulncheck)"
	@echo "make tools  build versitygw, faas-cli (0.13.13 and 0.18.12), the OpenFaaS gateway and kuberender into ./bin"
	@echo "make build  build ./bin/pulsevault"

dev: deps tools build vitals
	$(BIN)/pulsevault dev

test: deps tools build vitals check-fmt vet
	cd vitals && npm test
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz
	$(MAKE) vulncheck

# The unit tier: pure logic and in-process fakes (shared/testutil/fakestore,
# embedded NATS). Needs nothing installed or built, so it depends on no other
# target; tests that need versitygw, ffmpeg, nginx, a built pulsevault or the
# tools skip under -short with the reason (shared/testutil/tier).
unit:
	$(GO) test -short -count=1 ./...

# Issue #11 at full size: 100 process-fault trials, 100 cut uploads, slow and
# stalled clients, 50 concurrent uploads, sign-url at 500 req/s for 60 s, the
# bad-input corpus, then every fuzz target (FUZZ_SCALE=2) and govulncheck. Each
# family prints one SUMMARY line; any violation fails the run. `make test`
# runs the same tests at a bounded size. Full output: bin/test-faults.log.
FAULT_TESTS := ^(TestFaultsProcess|TestFaultsNetwork|TestFaultsTranscodeKilledOnEveryDelivery|TestLoadUploads|TestLoadSignURL|TestBadInputCorpus)$$
test-faults: deps tools build
	@mkdir -p $(BIN)
	set -o pipefail; PULSEVAULT_FAULTS=1 $(GO) test -count=1 -run '$(FAULT_TESTS)' -v -timeout 85m ./tests/ \
		| tee $(BIN)/test-faults.log | grep -E '^SUMMARY|^\s*--- (FAIL|PASS)|^(ok|FAIL)\b|violation'
	$(MAKE) fuzz FUZZ_SCALE=2
	$(MAKE) vulncheck

# Go fuzz targets (package:Fuzz:executions); seed corpora in testdata/fuzz.
# Budgets are counts, about 10 s each here, times FUZZ_SCALE: a -fuzztime
# duration races Go's fuzz coordinator on a loaded machine (golang/go#75804,
# fixed in Go 1.27): "context deadline exceeded" with no failing input.
FUZZ_TARGETS := ingest/s3event:FuzzDecode:100000 playback/token:FuzzVerify:200000 media/meta:FuzzDecode:30000 media/manifest:FuzzManifestRoundTrip:25000 ingest/probe:FuzzParse:70000 pulse/captoken:FuzzVerify:100000
FUZZ_SCALE ?= 1
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; n=$$(( $${rest#*:} * $(FUZZ_SCALE) )); \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $${n}x ./shared/$$pkg/ >$(BIN)/fuzz.log 2>&1 \
			|| { cat $(BIN)/fuzz.log; echo "fuzz $$pkg:$$fn: FAIL"; exit 1; }; \
		echo "SUMMARY family=fuzz target=$$pkg:$$fn execs=$$n $$(grep -o 'elapsed: [0-9]*s' $(BIN)/fuzz.log | tail -1 | tr -d ' ') failures=0"; \
	done

# Known vulnerabilities, against an offline copy of the Go vulnerability
# database taken from the module proxy (infra/security/README.md).
vulncheck: tools
	infra/security/govulncheck.sh

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
# TestRealGateway adds tus throughput through the real OpenFaaS gateway against the
# provider's own proxy (its BENCH line).
BENCH_RUN := PULSEVAULT_BENCH=1 $(GO) test -count=1 -run '^(TestBench|TestRealGateway)$$' -v -timeout 90m ./tests/
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
tools: $(BIN)/versitygw $(BIN)/faas-cli $(BIN)/kuberender shared-tools

$(BIN)/versitygw: infra/tools/go.mod infra/tools/go.sum
	@mkdir -p $(BIN)
	cd infra/tools && $(GO) build -o $(BIN)/versitygw github.com/versity/versitygw/cmd/versitygw

# faas-cli's tags lack the "v" prefix, so Go knows it only by pseudo-version;
# this one (October 2021, release 0.13.13) is what the module proxy serves here.
FAAS_CLI_VERSION := 0.13.13
$(BIN)/faas-cli: infra/tools/go.mod infra/tools/go.sum
	@mkdir -p $(BIN)
	cd infra/tools && $(GO) build -ldflags "-X github.com/openfaas/faas-cli/version.Version=$(FAAS_CLI_VERSION)" -o $(BIN)/faas-cli github.com/openfaas/faas-cli

# Helm's template engine and a strict decode into the Kubernetes API types
# (tests/helm_test.go renders infra/helm against the upstream charts with it).
$(BIN)/kuberender: infra/tools/go.mod infra/tools/go.sum infra/tools/kuberender/main.go
	@mkdir -p $(BIN)
	cd infra/tools && $(GO) build -o $(BIN)/kuberender ./kuberender

# Sources the module proxy cannot serve, kept beside the repository in
# ../shared/tools (README there): faas-cli 0.18.12, the release platform teams
# use today, and the OpenFaaS CE gateway, both with vendor/ (offline builds);
# the upstream OpenFaaS and NATS charts. Without that directory these tools are
# not built and the tests that need them skip (and fail under CI=true).
SHARED_TOOLS ?= $(firstword $(wildcard $(CURDIR)/../shared/tools $(CURDIR)/../../shared/tools))
export PULSEVAULT_SHARED_TOOLS := $(SHARED_TOOLS)
FAAS_CLI_NEW_VERSION := 0.18.12
GATEWAY_SRC := openfaas-gateway-2026-07
ifeq ($(SHARED_TOOLS),)
shared-tools:
	@echo "warning: ../shared/tools not found: faas-cli $(FAAS_CLI_NEW_VERSION) and the OpenFaaS gateway are not built"
else
shared-tools: $(BIN)/faas-cli-0.18 $(BIN)/of-gateway

$(BIN)/faas-cli-0.18: $(SHARED_TOOLS)/faas-cli-$(FAAS_CLI_NEW_VERSION).tar.gz
	@mkdir -p $(BIN)/src
	tar -xzf $< -C $(BIN)/src
	cd $(BIN)/src/faas-cli-$(FAAS_CLI_NEW_VERSION) && $(GO) build -mod=vendor \
		-ldflags "-X github.com/openfaas/faas-cli/version.Version=$(FAAS_CLI_NEW_VERSION)" -o $@ .

$(BIN)/of-gateway: $(SHARED_TOOLS)/$(GATEWAY_SRC).tar.gz
	@mkdir -p $(BIN)/src
	tar -xzf $< -C $(BIN)/src
	cd $(BIN)/src/$(GATEWAY_SRC)/gateway && $(GO) build -mod=vendor -o $@ .
endif

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
