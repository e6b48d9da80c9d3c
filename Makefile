# Pulse — make targets work across every module of go.work.
SHELL := /bin/bash
GO ?= go
# go.work names the toolchain (a patch release without known
# vulnerabilities); auto lets go fetch it through the module proxy.
export GOTOOLCHAIN := auto
# gin without MessagePack: Pulse speaks JSON only, and the binaries shrink
# by a third (20.4 → 14.0 MB). Tests, vet and tools build the same code.
export GOFLAGS := -tags=nomsgpack
BUILD_FLAGS := -trimpath -tags nomsgpack -ldflags="-s -w"
SERVICES := ingest analyzer api
# `./...` at a go.work root without a go.mod matches nothing: list modules.
MODULES = $(shell $(GO) list -m -f '{{.Dir}}')
PKGS = $(addsuffix /...,$(MODULES))

.PHONY: all build run test test-go test-deploy deploy-tools lint eval nab bench locust clean fuzz chaos chaos-race race staticcheck vuln

all: build

build:
	@mkdir -p bin
	@for s in $(SERVICES); do CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o bin/$$s ./$$s || exit 1; done
	@echo "built bin/ingest bin/analyzer bin/api"

# The whole pipeline on this machine: Redis (reused if REDIS_ADDR answers),
# ingest, two analyzers and the api. Ctrl-C stops everything it started.
run: build
	@./deployments/local/run.sh

# Everything CI runs: lint, every module's tests (unit, integration against
# real redis-server processes, end to end, the short chaos run), the
# deployment checks, the race detector, short fuzzing, staticcheck and
# govulncheck.
test: lint test-go test-deploy race fuzz staticcheck vuln

test-go: build
	$(GO) test -count=1 -shuffle=on -timeout 12m $(PKGS)

# Deployment checks: kustomize renders, strict Kubernetes decoding, promtool,
# amtool, and a real Prometheus scraping the services. Its own module (it
# pulls k8s.io and Prometheus), outside go.work.
test-deploy: build deploy-tools
	@out=$$(gofmt -l deployments/check); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	cd deployments/check && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...

# promtool, prometheus and amtool at the releases the manifests deploy, from
# the tool directives of deployments/check/tools/*/go.mod. Built here, not
# inside go test's timeout: the first build compiles them (about 8 CPU
# minutes); go caches the executables after that (under 2 s).
deploy-tools:
	cd deployments/check/tools/prometheus && GOFLAGS= GOWORK=off $(GO) tool -n promtool >/dev/null && GOFLAGS= GOWORK=off $(GO) tool -n prometheus >/dev/null
	cd deployments/check/tools/alertmanager && GOFLAGS= GOWORK=off $(GO) tool -n amtool >/dev/null

# Every module stands on its own: its go.mod and go.sum are tidy, and it
# builds without the workspace.
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy -diff >/dev/null) || { echo "go mod tidy would change $${m#$(CURDIR)/}: run (cd $${m#$(CURDIR)/} && GOWORK=off go mod tidy)"; exit 1; }; done
	@for s in $(SERVICES); do (cd $$s && GOWORK=off $(GO) build -o /dev/null .) || { echo "$$s does not build with GOWORK=off"; exit 1; }; done

clean:
	rm -rf bin .run

# Pulse's alerts on real labelled data: every NAB series through the
# detector, score and alert code in process, scored with a Go port of NAB's
# scorer, ASD as a held-out check → the NAB section of docs/ACCURACY.md.
# NAB_FLAGS=-python=python3 also scores the same files with NAB's run.py
# (needs pandas) and reports both.
NAB_DIR ?= ../shared/nab
ASD_DIR ?= ../shared/asd
nab:
	@test -f $(NAB_DIR)/labels/combined_windows.json || { echo "no NAB checkout at $(NAB_DIR): git clone https://github.com/numenta/NAB there, or set NAB_DIR" >&2; exit 1; }
	$(GO) run ./tools/cmd/pulse-nab -nab $(NAB_DIR) -asd $(ASD_DIR) -out docs/ACCURACY.md $(NAB_FLAGS)

# Whole-pipeline benchmark on this machine: its own Redis and services on
# loopback → docs/bench/<UTC time>.json and docs/BENCHMARKS.md (about 2 min;
# BENCH_FLAGS=-long for the 60 s sustained runs, -pprof for profiles).
bench:
	$(GO) run ./tools/cmd/pulse-bench $(BENCH_FLAGS)

# Locust against `make run` (start it first), headless and bounded in time.
LOCUST_USERS ?= 50
LOCUST_RATE ?= 10
LOCUST_TIME ?= 60s
LOCUST_MIX ?= classic
INGEST_URL ?= http://127.0.0.1:8080
API_URL ?= http://127.0.0.1:8081
locust:
	@command -v locust >/dev/null || { echo "locust not found: sudo apt-get install -y python3-locust (or pip install -r locust/requirements.txt)" >&2; exit 1; }
	locust -f locust/locustfile.py --headless -u $(LOCUST_USERS) -r $(LOCUST_RATE) -t $(LOCUST_TIME) \
		--ingest-host $(INGEST_URL) --api-host $(API_URL) --mix $(LOCUST_MIX) --stop-timeout 5

# Accuracy of every detector on labelled synthetic data → docs/ACCURACY.md.
eval:
	$(GO) run ./tools/cmd/pulse-eval -out docs/ACCURACY.md -plot docs/accuracy.svg

# Each fuzz target for FUZZTIME, a count of inputs rather than a duration,
# so a loaded machine runs the same work instead of timing out. Whatever a fuzzer finds is saved under the
# package's testdata/fuzz/<Target>/ and fails go test until fixed: commit it
# with the fix as the regression test.
FUZZTIME ?= 20000x
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' $(MODULES) | xargs -n1 dirname | sort -u); do \
		for t in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz $${dir#$(CURDIR)/} $$t for $(FUZZTIME)"; \
			(cd $$dir && $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) .); \
		done; \
	done

# Faults under load against the real binaries: analyzers, ingest and Redis
# (AOF always and everysec) killed and restarted; prints the table.
chaos: build
	$(GO) run ./tools/cmd/pulse-chaos -bin bin -workdir .run/chaos $(CHAOS_FLAGS)

chaos-race:
	@mkdir -p .run/race-bin
	@for s in $(SERVICES); do CGO_ENABLED=1 $(GO) build -race -o .run/race-bin/$$s ./$$s || exit 1; done
	$(GO) run ./tools/cmd/pulse-chaos -bin .run/race-bin -workdir .run/chaos-race -load 45s $(CHAOS_FLAGS)

# The race detector on every package that uses sync, atomics or errgroup;
# e2e runs the services as separate binaries (chaos-race covers those).
RACE_PKGS = $(shell $(GO) list -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}}' $(PKGS) | \
	awk '/ (sync|sync\/atomic|golang.org\/x\/sync\/errgroup)( |$$)/ && $$1 !~ /\/e2e$$/ {print $$1}')
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)

STATICCHECK_VERSION ?= v0.8.2
staticcheck:
	@rc=0; for m in $(MODULES) $(CURDIR)/deployments/check; do echo "staticcheck $${m#$(CURDIR)/}"; \
		w=; [ "$$m" = $(CURDIR)/deployments/check ] && w=off; \
		(cd $$m && GOWORK=$$w $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...) || rc=1; done; exit $$rc

# govulncheck, offline: the database is built from golang.org/x/vulndb as the
# Go module proxy serves it (vuln.go.dev is out of reach here). The version
# is pinned so CI is reproducible; make vuln VULNDB_VERSION=latest checks
# against today's.
VULNCHECK_VERSION ?= v1.9.0
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULNDB_DIR = $(CURDIR)/.run/vulndb/$(VULNDB_VERSION)
vuln:
	@set -e; if [ "$(VULNDB_VERSION)" = latest ] || [ ! -f $(VULNDB_DIR)/index/modules.json ]; then \
		echo "building the vulnerability database golang.org/x/vulndb@$(VULNDB_VERSION) in $(VULNDB_DIR)"; \
		src=$$(cd $$(mktemp -d) && GOWORK=off GOFLAGS= $(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
		test -d "$$src/data/osv" || { echo "golang.org/x/vulndb@$(VULNDB_VERSION) has no data/osv"; exit 1; }; \
		rm -rf $(VULNDB_DIR); \
		GOWORK=off $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns $$src/data/osv -out $(VULNDB_DIR); \
	fi
	@rc=0; for m in $(MODULES) $(CURDIR)/deployments/check; do echo "govulncheck $${m#$(CURDIR)/}"; \
		w=; [ "$$m" = $(CURDIR)/deployments/check ] && w=off; \
		(cd $$m && GOWORK=$$w $(GO) run golang.org/x/vuln/cmd/govulncheck@$(VULNCHECK_VERSION) -db file://$(VULNDB_DIR) ./...) || rc=1; done; exit $$rc
