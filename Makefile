# sanwatch: the two commands are `make demo` (the whole pipeline on this machine)
# and `make test` (every test, including PostgreSQL and in-process Temporal).
GO          ?= go
BIN         := $(CURDIR)/bin
TEMPORAL_CLI_VERSION := v1.5.1
MAILPIT_VERSION      := v1.27.11
TEST_TIMEOUT ?= 60m

.PHONY: all build tools test vet demo bench clean record-histories victoria-metrics

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

tools: $(BIN)/temporal $(BIN)/mailpit

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# The samples-backend tests (internal/tsdb) run a real VictoriaMetrics:
# Debian's package, installed when missing (about 4 s with apt-get update).
victoria-metrics:
	@command -v victoria-metrics >/dev/null || (apt-get update && apt-get install -y victoria-metrics)

# The CLI-compatibility tests drive the real `temporal` CLI, so it is built first.
test: $(BIN)/temporal victoria-metrics vet
	SANWATCH_TEMPORAL_CLI=$(BIN)/temporal $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: build tools
	./scripts/demo.sh

# Record fresh workflow histories from real runs into the replay corpus.
record-histories: $(BIN)/temporal
	SANWATCH_TEMPORAL_CLI=$(BIN)/temporal GO=$(GO) ./scripts/record-histories.sh $(RECORD_RUN)

bench: build
	$(GO) run ./bench $(BENCH_ARGS)

clean:
	rm -rf $(BIN) data/demo
