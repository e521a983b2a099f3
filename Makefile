# jobcast developer tasks. `make help` lists them.
GO        ?= go
PKGS      ?= ./...
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME  ?= 10s

.PHONY: help build test test-race lint bench bench-idle bench-load bench-smoke fuzz demo cluster-demo bench-cluster clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/jobcast
	$(GO) build -o bin/jobcast ./cmd/jobcast

test: ## run every test with the race detector (what CI runs)
	$(GO) test -race -count=1 $(PKGS)

test-race: test ## same as test

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck $(PKGS)

bench: ## run the benchmarks (see docs/benchmarks.md)
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

bench-idle: ## memory per idle connection at 10,000 connections (a second process)
	JOBCAST_BENCH_IDLE=1 $(GO) test -run='^$$' -bench=IdleConnections -benchtime=1x -v ./bench/

bench-load: ## jobcast loadgen scenarios against a server process (docs/loadgen.md); SCENARIOS= picks some
	bench/load.sh $(SCENARIOS)

bench-cluster: ## cluster numbers against serve processes on embedded NATS (docs/cluster.md#numbers); SCENARIOS= picks some
	bench/cluster.sh $(SCENARIOS)

bench-smoke: ## run every benchmark once, so none can rot
	$(GO) test -run='^$$' -bench=. -benchtime=1x $(PKGS)

fuzz: ## run each fuzz target for FUZZTIME
	@.ci/fuzz $(FUZZTIME)

demo: ## run the live demo (embedded mode, no services needed)
	$(GO) run ./cmd/jobcast demo

cluster-demo: ## 3 nodes on this machine: embedded NATS, ClickHouse if one runs, traffic; DURATION=2m stops it (docs/cluster.md)
	scripts/cluster-demo.sh $(if $(DURATION),-duration $(DURATION))

clean: ## remove build output and demo data
	rm -rf bin jobcast-demo-data
