# sanwatch: the two commands are `make demo` (the whole pipeline on this machine)
# and `make test` (every test, including PostgreSQL and in-process Temporal).
GO          ?= go
BIN         := $(CURDIR)/bin
TEMPORAL_CLI_VERSION := v1.5.1
MAILPIT_VERSION      := v1.27.11
# SeaweedFS (no semver tags on the module proxy: a pseudo-version of 2026-11-09).
SEAWEEDFS_VERSION    := v0.0.0-20261109003541-7506e5f91cd6
TEST_TIMEOUT ?= 60m

.PHONY: all build tools s3-server test vet demo bench clean record-histories victoria-metrics prometheus

all: build

build:
	$(GO) build -o $(BIN)/worker ./worker
	$(GO) build -o $(BIN)/starter ./starter

# Pinned tools, built from the Go module proxy into ./bin (no downloads of prebuilt binaries).
$(BIN)/temporal:
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

# Mailpit with its web UI: the UI is built with npm from the module source
# (plain `go install` embeds an empty UI); without npm it falls back and says so.
$(BIN)/mailpit:
	GO=$(GO) ./scripts/build-mailpit.sh $(MAILPIT_VERSION) $(BIN)/mailpit

# SeaweedFS's weed: the real S3-compatible server the tests start on loopback
# (internal/blobstore/s3test). Built from the module source, as for Mailpit.
$(BIN)/weed:
	GO=$(GO) ./scripts/build-seaweedfs.sh $(SEAWEEDFS_VERSION) $(BIN)/weed

s3-server: $(BIN)/weed

tools: $(BIN)/temporal $(BIN)/mailpit

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# The samples-backend tests (internal/tsdb) run a real VictoriaMetrics:
# Debian's package, installed when missing (about 4 s with apt-get update).
victoria-metrics:
	@command -v victoria-metrics >/dev/null || (apt-get update && apt-get install -y victoria-metrics)

# The samples-backend tests also read from a real Prometheus (samples.api:
# prometheus): Debian's package (prometheus and promtool), installed when
# missing (about 5 s with apt-get update). On a host with systemd the package
# also starts its own server on :9090; the tests do not use it, they start
# theirs on loopback.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || (apt-get update && apt-get install -y --no-install-recommends prometheus)

# The CLI-compatibility tests drive the real `temporal` CLI, the batch store
# tests a real S3 server (SeaweedFS) and the samples-backend tests a real
# VictoriaMetrics and a real Prometheus, so all four come first.
test: $(BIN)/temporal $(BIN)/weed victoria-metrics prometheus vet
	SANWATCH_TEMPORAL_CLI=$(BIN)/temporal SANWATCH_S3_SERVER=$(BIN)/weed $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: build tools
	./scripts/demo.sh

# Record fresh workflow histories from real runs into the replay corpus.
record-histories: $(BIN)/temporal
	SANWATCH_TEMPORAL_CLI=$(BIN)/temporal GO=$(GO) ./scripts/record-histories.sh $(RECORD_RUN)

bench: build
	$(GO) run ./bench $(BENCH_ARGS)

clean:
	rm -rf $(BIN) data/demo
