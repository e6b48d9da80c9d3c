# Pulse — make targets work across every module of go.work.
SHELL := /bin/bash
GO ?= go
BUILD_FLAGS := -trimpath -ldflags="-s -w"
SERVICES := ingest analyzer api
# `./...` at a go.work root without a go.mod matches nothing: list modules.
MODULES = $(shell $(GO) list -m -f '{{.Dir}}')
PKGS = $(addsuffix /...,$(MODULES))

.PHONY: all build run test test-go test-deploy lint eval bench clean

all: build

build:
	@mkdir -p bin
	@for s in $(SERVICES); do CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o bin/$$s ./$$s || exit 1; done
	@echo "built bin/ingest bin/analyzer bin/api"

# The whole pipeline on this machine: Redis (reused if REDIS_ADDR answers),
# ingest, two analyzers and the api. Ctrl-C stops everything it started.
run: build
	@./deployments/local/run.sh

test: lint test-go test-deploy

test-go: build
	$(GO) test -count=1 -shuffle=on -timeout 12m $(PKGS)

# Deployment checks: kustomize renders, strict Kubernetes decoding, promtool,
# amtool, and a real Prometheus scraping the services. Its own module (it
# pulls k8s.io and Prometheus), outside go.work.
test-deploy: build
	@out=$$(gofmt -l deployments/check); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	cd deployments/check && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin .run

# Accuracy of every detector on labelled synthetic data → docs/ACCURACY.md.
eval:
	$(GO) run ./internal/cmd/pulse-eval -out docs/ACCURACY.md -plot docs/accuracy.svg
