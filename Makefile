# Bulwark: the two commands are `make run` and `make test`.
GO        ?= go
BIN       := bin/bulwark
# DATA_DIR: empty means .bulwark in the checkout, or /var/lib/bulwark/… when
# root runs a checkout the postgres user cannot reach (scripts/datadir.sh).
DATA_DIR  ?=
ADDR      ?= 127.0.0.1:8080
# Package parallelism: each test binary starts its own PostgreSQL cluster.
TEST_P    ?= 2
# The race detector is on: the pipeline, admission and the relay are
# concurrent by design (about 70 s for the suite on 2 cores).
TEST_FLAGS ?= -race

.PHONY: run test lint vulncheck build setup vet fuzz helm-check bench-ledger bench-overload bench-cdc bench-export bench-features crash-test crash-test-stream crash-test-export cdc-verify-long features-chaos clean

run: setup build
	@dir="$(DATA_DIR)"; [ -n "$$dir" ] || dir="$$(./scripts/datadir.sh)"; \
	echo "$(BIN) serve --data-dir $$dir --addr $(ADDR)"; exec $(BIN) serve --data-dir "$$dir" --addr $(ADDR)

# The race detector needs cgo: setup must find a C compiler (it installs
# gcc and libc6-dev as root) unless TEST_FLAGS drops -race.
test:
	@BULWARK_NEED_CC=$(if $(findstring -race,$(TEST_FLAGS)),1,0) ./scripts/setup.sh
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) -tags bulwark_invariants -p $(TEST_P) -count=1 -timeout 15m ./...

# The lint gate (run by .ci/run before make test): golangci-lint with
# .golangci.yml, then govulncheck against an offline database. Both tools
# are pinned in go.mod (tool directives): a fresh machine fetches them from
# the module proxy.
lint:
	@./scripts/setup.sh
	$(GO) tool golangci-lint run ./...
	./scripts/vulncheck.sh

vulncheck:
	./scripts/vulncheck.sh

build:
	$(GO) build -o $(BIN) ./cmd/bulwark

setup:
	@./scripts/setup.sh

fuzz: setup
	./scripts/fuzz.sh 30s

# The Helm chart: helm lint and helm template, with a helm built from the
# Go module proxy (no other download), then the chart test with that helm.
HELM_VERSION ?= v3.22.0
helm-check:
	GOBIN=$(CURDIR)/bin $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	bin/helm lint --strict deploy/helm/bulwark --set kafka.brokers=kafka:9092 --set postgres.url=postgres://db/bulwark --set adminKey.value=bwa_x
	bin/helm template bulwark deploy/helm/bulwark --set kafka.brokers=kafka:9092 --set postgres.url=postgres://db/bulwark --set adminKey.value=bwa_x >/dev/null
	BULWARK_HELM=$(CURDIR)/bin/helm $(GO) test -count=1 -run 'TestHelmChart' -v ./deploy/

# Benchmarks are programs: they print a table and write JSON, comparing the
# commit pipeline against the naive baseline measured in the same run.
bench-ledger: setup build
	$(BIN) bench ledger --workload hot --clients 32 --duration 10s --json bench-ledger-hot.json
	$(BIN) bench ledger --workload uniform --clients 32 --duration 10s --json bench-ledger-uniform.json

bench-overload: setup build
	$(BIN) bench overload --json bench-overload.json

bench-cdc: setup build
	$(BIN) bench cdc --rows 300000 --json bench-cdc.json

# Export throughput against COPY, peak RSS, and isolation of huge exports
# (docs/exports.md). EXPORT_ROWS entries (default 2,000,000).
EXPORT_ROWS ?= 2000000
bench-export: setup build
	$(BIN) bench export --rows $(EXPORT_ROWS) --json bench-export.json

# The velocity features engine (issue 9, docs/features.md#benchmark): 100,000
# Zipf entities, 20 features; the server runs as a child process.
bench-features: setup build
	$(BIN) bench features --json bench-features.json

# The long crash test: many SIGKILLs under load (the short one is in make test).
crash-test: setup
	BULWARK_CRASH_KILLS=20 $(GO) test -count=1 -timeout 60m -run TestCrashRecovery -v ./internal/server/

# The long export crash test: 20 SIGKILLs of the export worker process
# during an export of 1,000,000 entries; the file must be byte-identical
# to an uninterrupted export (the short one, 3 kills, is in make test).
crash-test-export: setup
	BULWARK_EXPORT_CRASH_KILLS=20 BULWARK_EXPORT_CRASH_TXS=500000 $(GO) test -count=1 -timeout 60m -run TestExportCrash -v ./internal/server/

# The long whole-process crash test of the change stream: 100 SIGKILLs of
# `bulwark serve` (relay and embedded broker die together) under load, each
# followed by a restart on the same data directory; a plain read_committed
# consumer checks exactly-once (the short one, 4 kills, is in make test).
# CRASH_STREAM_KILLS=N changes the count; replay with BULWARK_SEED.
CRASH_STREAM_KILLS ?= 100
crash-test-stream: setup
	BULWARK_CRASH_STREAM_KILLS=$(CRASH_STREAM_KILLS) $(GO) test -count=1 -timeout 90m -run TestCrashStream -v ./internal/server/

# The long change-stream verify: 50 SIGKILLs of the relay plus broker faults
# (the short one, 5 kills, is in make test). Replay with BULWARK_CDC_VERIFY_SEED.
cdc-verify-long: setup
	BULWARK_CDC_VERIFY_KILLS=50 BULWARK_CDC_VERIFY_TXNS=3000 $(GO) test -count=1 -timeout 60m -run TestVerify -v ./internal/cdc/verify/

# The long features chaos test: 100 SIGKILLs of two feature worker
# processes while events are fed (the short one, 3 kills, is in make test).
FEATURES_CHAOS_KILLS ?= 100
features-chaos: setup
	BULWARK_FEATURES_CHAOS_KILLS=$(FEATURES_CHAOS_KILLS) $(GO) test -count=1 -timeout 90m -run TestFeaturesChaos -v ./internal/server/

# A PostgreSQL server still running on $(DATA_DIR) is stopped first if it
# is orphaned; if a live `bulwark serve` runs it, clean refuses (stop serve).
clean:
	@dir="$(DATA_DIR)"; [ -n "$$dir" ] || dir="$$(./scripts/datadir.sh 2>/dev/null)"; \
	if [ -d "$$dir/postgres" ]; then $(GO) run ./cmd/bulwark pg stop --data-dir "$$dir" || exit 1; fi; \
	echo "rm -rf bin $$dir"; rm -rf bin "$$dir"
